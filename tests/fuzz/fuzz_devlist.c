/*
 * fuzz_devlist.c - libFuzzer target for formats/devlist: the first input
 * byte picks CSV or JSON Lines, the rest is a whole device list. The reader
 * must consume its input in bounded steps, never run past it, and every
 * record it returns must either be refused by the manifest encoder or
 * re-parse from its canonical line to the same record.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/devlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	struct fmt_devlist d = {.format = (data[0] & 1) ? FMT_DEVLIST_JSONL : FMT_DEVLIST_CSV};
	const uint8_t *buf = data + 1;
	size_t len = size - 1;
	static struct fmt_manifest_record r, again;
	static char pem[FMT_DEVLIST_PATH_MAX + 1];
	static uint8_t line[FMT_MANIFEST_LINE_MAX];
	for (size_t steps = 0; steps <= len + 1; steps++) {
		int got = 0;
		size_t before = d.pos;
		enum idp_err rc = fmt_devlist_next(&d, buf, len, &r, pem, &got, NULL);
		if (d.pos > len || (d.pos == before && (got || rc != IDP_OK) && len > 0 && before < len))
			abort(); /* ran past the input, or made no progress */
		if (rc != IDP_OK || got == 0)
			return 0;
		if (strnlen(pem, sizeof(pem)) == sizeof(pem))
			abort(); /* the path is not terminated */
		size_t n = 0;
		if (fmt_manifest_encode_record(&r, line, &n, NULL) != IDP_OK)
			continue;
		if (fmt_manifest_parse_record(line, n, true, &again, NULL) != IDP_OK)
			abort(); /* the encoder wrote what its reader refuses */
		if (strcmp(again.id, r.id) != 0 || memcmp(again.mac, r.mac, sizeof(r.mac)) != 0 ||
		    strcmp(again.serial, r.serial) != 0 || again.pub_len != r.pub_len ||
		    memcmp(again.pub, r.pub, r.pub_len) != 0)
			abort(); /* the record changed on its way through the manifest */
	}
	abort(); /* more calls than lines: the reader does not end */
}
