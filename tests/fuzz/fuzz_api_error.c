/*
 * fuzz_api_error.c - libFuzzer oracle for the one error path
 * (fmt_api_error_body, formats/api.md §9): for any code, retry_after and
 * message bytes, the body the encoder writes is accepted by the project's
 * own parsers (fmt_api_error_parse and fmt_api_answer_parse) with the same
 * code and retry_after; a message that already is a valid message comes
 * back unchanged; and re-encoding the parsed error gives the same bytes.
 * Input: byte 0 picks the code, bytes 1-3 the retry_after, the rest is the
 * message. Seeds: tests/fuzz/corpus/fuzz_api_error/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/api.h"
#include "formats/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The message type of formats/api.md §3: 1..256 bytes of UTF-8 without
 * control characters. */
static int valid_message(const uint8_t *m, size_t n)
{
	if (n == 0 || n > FMT_API_MESSAGE_MAX || !fmt_utf8_valid(m, n))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (m[i] < 0x20 || m[i] == 0x7f)
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4 || size > 4096)
		return 0;
	enum fmt_api_err_code code =
	        (enum fmt_api_err_code)(1 + data[0] % FMT_API_ERR_STORAGE_FULL);
	int64_t retry = ((int64_t)data[1] << 16 | (int64_t)data[2] << 8 | data[3]) % 100000;
	if (retry > FMT_API_RETRY_MAX)
		retry = 0;
	const uint8_t *m = data + 4;
	size_t n = size - 4;
	static char body[FMT_API_ERROR_BODY_MAX], again[FMT_API_ERROR_BODY_MAX];
	size_t len = 0, len2 = 0;
	if (fmt_api_error_body(code, (const char *)m, n, retry, body, sizeof(body), &len, NULL) !=
	    IDP_OK)
		abort(); /* every known code and any message must encode */
	struct fmt_api_error e;
	if (fmt_api_error_parse((const uint8_t *)body, len, &e, NULL) != IDP_OK)
		abort(); /* the encoder wrote what its own parser refuses */
	if (e.code != code || e.retry_after != retry)
		abort();
	if (valid_message(m, n) && (strlen(e.message) != n || memcmp(e.message, m, n) != 0))
		abort(); /* a valid message was changed */
	static struct fmt_api_answer a;
	if (fmt_api_answer_parse((const uint8_t *)body, len, &a, NULL) != IDP_OK || !a.is_error)
		abort();
	if (fmt_api_error_encode(&e, again, sizeof(again), &len2, NULL) != IDP_OK || len2 != len ||
	    memcmp(body, again, len) != 0)
		abort(); /* one error, one encoding */
	return 0;
}
