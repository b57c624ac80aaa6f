/*
 * fuzz_label.c - libFuzzer target for formats/label: any input either is
 * refused or parses to an ID and fingerprint that encode back to exactly
 * the input (less a trailing newline): one payload, one spelling.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/label.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[FMT_ID_MAX + 1], again[FMT_LABEL_MAX];
	uint8_t fp[FMT_KEY_FINGERPRINT_LEN];
	if (fmt_label_parse((const char *)data, size, id, fp, NULL) != IDP_OK)
		return 0;
	size_t n = 0;
	if (fmt_label_encode(id, strnlen(id, sizeof(id)), fp, again, &n, NULL) != IDP_OK)
		abort(); /* parsed what the encoder refuses */
	size_t want = size > 0 && data[size - 1] == '\n' ? size - 1 : size;
	if (n != want || memcmp(again, data, n) != 0)
		abort(); /* another spelling was accepted */
	return 0;
}
