/*
 * fuzz_api.c - libFuzzer target for every provisioning API parser
 * (formats/api.h) and fmt_mac_parse. The first input byte picks the parser,
 * the rest is the body. No input may crash a parser; whatever parses must
 * encode, parse again and encode to the same bytes (one canonical form); a
 * request's proof never verifies (no seed is signed for the exporter used
 * here), and fmt_api_request_accept agrees with parse + fmt_api_pop_verify.
 * Seeds: tests/fuzz/corpus/fuzz_api/ (selector byte + a valid body).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/api.h"
#include "formats/pop.h"
#include "formats/mac.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char enc1[FMT_API_BODY_MAX + 1], enc2[FMT_API_BODY_MAX + 1];

static void same(size_t l1, size_t l2)
{
	if (l1 != l2 || memcmp(enc1, enc2, l1) != 0)
		abort(); /* re-encoding is not stable */
}

static const uint8_t exporter[FMT_API_EXPORTER_LEN] = {0x11};

static void request(enum fmt_api_purpose p, const uint8_t *b, size_t n)
{
	static struct fmt_api_request r, r2;
	size_t l1 = 0, l2 = 0;
	enum idp_err parsed = fmt_api_request_parse(p, b, n, &r, NULL);
	/* The one-step server entry agrees with parse then verify. */
	enum idp_err accepted = fmt_api_request_accept(p, b, n, exporter, 1, 0, &r2, NULL);
	if (parsed != IDP_OK) {
		if (accepted != parsed)
			abort();
		return;
	}
	if (accepted == IDP_OK || accepted != fmt_api_pop_verify(&r, exporter, 1, 0, NULL))
		abort();
	/* No seed is signed for this exporter: a proof that verifies is a forgery. */
	if (fmt_api_pop_verify(&r, exporter, r.pop.ts, 0, NULL) == IDP_OK)
		abort();
	if (fmt_api_request_encode(&r, enc1, sizeof(enc1), &l1, NULL) != IDP_OK ||
	    fmt_api_request_parse(p, (const uint8_t *)enc1, l1, &r2, NULL) != IDP_OK ||
	    fmt_api_request_encode(&r2, enc2, sizeof(enc2), &l2, NULL) != IDP_OK)
		abort();
	same(l1, l2);
}

static void status(const uint8_t *b, size_t n)
{
	static struct fmt_api_status s, s2;
	size_t l1 = 0, l2 = 0;
	if (fmt_api_status_parse(b, n, &s, NULL) != IDP_OK)
		return;
	if (fmt_api_status_encode(&s, enc1, sizeof(enc1), &l1, NULL) != IDP_OK ||
	    fmt_api_status_parse((const uint8_t *)enc1, l1, &s2, NULL) != IDP_OK ||
	    fmt_api_status_encode(&s2, enc2, sizeof(enc2), &l2, NULL) != IDP_OK)
		abort();
	same(l1, l2);
}

static void error_body(const uint8_t *b, size_t n)
{
	struct fmt_api_error e, e2;
	size_t l1 = 0, l2 = 0;
	if (fmt_api_error_parse(b, n, &e, NULL) != IDP_OK || e.code == FMT_API_ERR_UNKNOWN)
		return;
	if (fmt_api_error_encode(&e, enc1, sizeof(enc1), &l1, NULL) != IDP_OK ||
	    fmt_api_error_parse((const uint8_t *)enc1, l1, &e2, NULL) != IDP_OK ||
	    fmt_api_error_encode(&e2, enc2, sizeof(enc2), &l2, NULL) != IDP_OK)
		abort();
	same(l1, l2);
}

static void answer(const uint8_t *b, size_t n)
{
	static struct fmt_api_answer a;
	if (fmt_api_answer_parse(b, n, &a, NULL) == IDP_OK && a.is_error &&
	    fmt_api_err_http_status(a.error.code) == 0 && a.error.code != FMT_API_ERR_UNKNOWN)
		abort(); /* every known code has a status */
}

static void nonce(const uint8_t *b, size_t n)
{
	struct fmt_api_nonce x, y;
	size_t l1 = 0, l2 = 0;
	if (fmt_api_nonce_parse(b, n, &x, NULL) != IDP_OK)
		return;
	if (fmt_api_nonce_encode(&x, enc1, sizeof(enc1), &l1, NULL) != IDP_OK ||
	    fmt_api_nonce_parse((const uint8_t *)enc1, l1, &y, NULL) != IDP_OK ||
	    fmt_api_nonce_encode(&y, enc2, sizeof(enc2), &l2, NULL) != IDP_OK)
		abort();
	same(l1, l2);
}

static void batch(const uint8_t *b, size_t n)
{
	struct fmt_api_batch x, y;
	size_t l1 = 0, l2 = 0;
	if (fmt_api_batch_parse(b, n, &x, NULL) != IDP_OK)
		return;
	if (fmt_api_batch_encode(&x, enc1, sizeof(enc1), &l1, NULL) != IDP_OK ||
	    fmt_api_batch_parse((const uint8_t *)enc1, l1, &y, NULL) != IDP_OK ||
	    fmt_api_batch_encode(&y, enc2, sizeof(enc2), &l2, NULL) != IDP_OK)
		abort();
	same(l1, l2);
}

static void mac(const uint8_t *b, size_t n)
{
	uint8_t m[FMT_MAC_LEN];
	char text[FMT_MAC_TEXT_LEN + 1];
	if (fmt_mac_parse((const char *)b, n, m, NULL) != IDP_OK)
		return;
	fmt_mac_format(m, text);
	if (n != FMT_MAC_TEXT_LEN || memcmp(text, b, n) != 0)
		abort(); /* two spellings of one address were accepted */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FMT_API_BODY_MAX + 2)
		return 0;
	const uint8_t *b = data + 1;
	size_t n = size - 1;
	switch (data[0] % 9) {
	case 0: request(FMT_API_PROVISION, b, n); break;
	case 1: request(FMT_API_EXCHANGE, b, n); break;
	case 2: request(FMT_API_RENEW, b, n); break;
	case 3: status(b, n); break;
	case 4: error_body(b, n); break;
	case 5: answer(b, n); break;
	case 6: nonce(b, n); break;
	case 7: batch(b, n); break;
	default: mac(b, n); break;
	}
	return 0;
}
