/*
 * fuzz_b64.c - libFuzzer target for the strict base64 decoders: no input may
 * crash them, and whatever decodes must re-encode to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	static uint8_t out[4096];
	static char again[8192];
	for (int a = 0; a < 2; a++) {
		enum fmt_b64_alphabet al = a ? FMT_B64_URL : FMT_B64_STD;
		size_t n = 0;
		if (fmt_b64_decode(al, (const char *)data, size, out, sizeof(out), &n, NULL) != IDP_OK)
			continue;
		size_t e = fmt_b64_encode(al, out, n, again);
		if (e != size || memcmp(again, data, size) != 0)
			abort(); /* two spellings of one value were accepted */
	}
	return 0;
}
