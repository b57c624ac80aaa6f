/*
 * fuzz_idrule.c - libFuzzer target for ID/serial rules: the first byte says
 * how much of the input is the rule's text, the rest is checked against it.
 * Nothing may crash, and a value a rule accepts must be a valid ID.
 */
#include <stdint.h>
#include <stdlib.h>

#include "formats/id.h"
#include "formats/idrule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = data[0];
	if (n > size - 1)
		n = size - 1;
	const char *spec = (const char *)data + 1;
	const char *value = spec + n;
	size_t vlen = size - 1 - n;
	struct fmt_idrule *r = NULL;
	if (fmt_idrule_parse(spec, n, &r, NULL) != IDP_OK)
		return 0;
	if (fmt_idrule_check(r, value, vlen, "serial", NULL) == IDP_OK && !fmt_id_valid(value, vlen))
		abort();
	fmt_idrule_free(r);
	return 0;
}
