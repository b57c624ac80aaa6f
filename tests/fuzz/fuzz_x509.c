/*
 * fuzz_x509.c - libFuzzer target for formats/x509: PEM certificate lists
 * (manifests' station certificates and chains, the API's ca_pem, stored
 * CAs, the agent's pinned CA). Byte 0 picks the flags and the maximum, the
 * rest is the text. No input may crash; a list accepted under
 * FMT_X509_STRICT is accepted without it with the same certificates; a
 * list holds 1..max certificates; the trust store and the first
 * certificate agree with the list; a commonName found is NUL-free and
 * within its buffer.
 * Seeds: tests/fuzz/corpus/fuzz_x509/ (the sample stations' certificates).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "formats/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	unsigned flags = data[0] & 1u ? FMT_X509_STRICT : 0;
	size_t max = 1 + (size_t)((data[0] >> 1) % FMT_X509_LIST_MAX);
	const uint8_t *b = data + 1;
	size_t n = size - 1;
	STACK_OF(X509) *l = NULL, *loose = NULL;
	if (fmt_x509_list_parse(b, n, max, flags, &l, NULL) == IDP_OK) {
		int k = sk_X509_num(l);
		if (k < 1 || (size_t)k > max)
			abort(); /* a list outside 1..max */
		if (flags != 0) {
			if (fmt_x509_list_parse(b, n, max, 0, &loose, NULL) != IDP_OK ||
			    sk_X509_num(loose) != k)
				abort(); /* strict accepted what loose refuses */
			for (int i = 0; i < k; i++)
				if (X509_cmp(sk_X509_value(l, i), sk_X509_value(loose, i)) != 0)
					abort();
		}
		for (int i = 0; i < k; i++) {
			char cn[65];
			size_t cl = 0;
			if (fmt_x509_cn(sk_X509_value(l, i), cn, sizeof(cn), &cl, NULL) == IDP_OK &&
			    (cl == 0 || cl >= sizeof(cn) || strlen(cn) != cl))
				abort(); /* a commonName with a NUL or past its buffer */
		}
		X509 *first = NULL;
		X509_STORE *st = NULL;
		if (max == FMT_X509_LIST_MAX) {
			if (fmt_x509_parse_first(b, n, &first, NULL) != IDP_OK ||
			    X509_cmp(first, sk_X509_value(l, 0)) != 0)
				abort(); /* the first certificate differs from the list's */
			if (fmt_x509_store_parse(b, n, max, &st, NULL) != IDP_OK)
				abort(); /* the list parses, its store does not */
		}
		X509_free(first);
		X509_STORE_free(st);
	}
	sk_X509_pop_free(l, X509_free);
	sk_X509_pop_free(loose, X509_free);
	ERR_clear_error();
	return 0;
}
