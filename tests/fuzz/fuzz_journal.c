/*
 * fuzz_journal.c - libFuzzer target for formats/journal: the input is a
 * whole journal. The decoder must stay inside it, make progress on every
 * entry, stop at END, TORN or an error, and every entry it returns must
 * re-encode to exactly the bytes it was read from.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fmt_journal_entry e;
	static uint8_t again[FMT_JOURNAL_ENTRY_MAX];
	size_t pos = 0;
	for (size_t steps = 0; steps <= size / 12 + 1; steps++) {
		size_t before = pos;
		enum fmt_journal_item item;
		enum idp_err rc = fmt_journal_next(data, size, &pos, &e, &item, NULL);
		if (pos > size)
			abort(); /* ran past the input */
		if (rc != IDP_OK || item != FMT_JOURNAL_ITEM_ENTRY) {
			if (pos != before)
				abort(); /* moved without returning an entry */
			return 0;
		}
		size_t n = 0;
		if (fmt_journal_encode(&e, again, &n, NULL) != IDP_OK)
			abort(); /* decoded what the encoder refuses */
		if (n != pos - before || memcmp(again, data + before, n) != 0)
			abort(); /* one entry, two spellings */
	}
	abort(); /* more entries than the input can hold */
}
