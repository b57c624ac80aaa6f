/*
 * fuzz_keys.c - libFuzzer target for the key parsers of formats/keys: the
 * SubjectPublicKeyInfo DER a device sends (canonical only), public and
 * private PEM (station, token and agent key files). Byte 0 picks the
 * parser, the rest is the input. No input may crash; an SPKI that parses
 * re-encodes to exactly its bytes (one key, one spelling), and so does the
 * public half of any PEM key that parses.
 * Seeds: tests/fuzz/corpus/fuzz_keys/ (fresh P-256 and Ed25519 keys).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "formats/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 16384)
		return 0;
	const uint8_t *b = data + 1;
	size_t n = size - 1;
	struct fmt_key *k = NULL, *again = NULL;
	enum idp_err rc = data[0] % 3 == 0   ? fmt_key_parse_spki_der(b, n, &k, NULL)
	                  : data[0] % 3 == 1 ? fmt_key_parse_public_pem(b, n, &k, NULL)
	                                     : fmt_key_parse_private_pem(b, n, &k, NULL);
	if (rc == IDP_OK) {
		uint8_t der[FMT_KEY_SPKI_MAX];
		size_t dl = 0;
		if (fmt_key_spki_der(k, der, &dl, NULL) != IDP_OK)
			abort(); /* parsed a key that has no SPKI */
		if (data[0] % 3 == 0 && (dl != n || memcmp(der, b, n) != 0))
			abort(); /* another spelling of a key was accepted */
		if (fmt_key_parse_spki_der(der, dl, &again, NULL) != IDP_OK ||
		    !fmt_key_equal(k, again))
			abort(); /* its own SPKI does not parse back to it */
		if (data[0] % 3 == 2 && !fmt_key_has_private(k))
			abort();
	} else if (k != NULL) {
		abort(); /* a failed parse left a key */
	}
	fmt_key_free(k);
	fmt_key_free(again);
	ERR_clear_error();
	return 0;
}
