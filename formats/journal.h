/*
 * journal.h - the station's crash-safe batch journal: one self-checking
 * binary entry per event (batch opened, device PASSed, batch closed).
 * Spec: formats/journal.md.
 *
 * Pure: encodes and decodes entries in memory buffers; the append (write +
 * fsync) is the program's (enroll/journal_file.h). Thread-safe.
 */
#ifndef IDP_FORMATS_JOURNAL_H
#define IDP_FORMATS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/id.h"
#include "formats/keys.h"
#include "formats/mac.h"

#define FMT_JOURNAL_MAGIC       "IDJ1"
#define FMT_JOURNAL_HEADER_LEN  8u    /* magic (4), type, flags, len (2) */
#define FMT_JOURNAL_CRC_LEN     4u    /* CRC-32C over header + payload */
#define FMT_JOURNAL_PAYLOAD_MAX 1024u /* bytes of one entry's payload */
#define FMT_JOURNAL_ENTRY_MAX                                                                      \
	(FMT_JOURNAL_HEADER_LEN + FMT_JOURNAL_PAYLOAD_MAX + FMT_JOURNAL_CRC_LEN)
#define FMT_JOURNAL_PRODUCT_MAX 64u /* as FMT_MANIFEST_PRODUCT_MAX */
#define FMT_JOURNAL_NONCE_LEN   32u /* as FMT_WIRE_NONCE_LEN */
#define FMT_JOURNAL_SIG_LEN     64u /* as FMT_WIRE_SIG_LEN */

enum fmt_journal_type {
	FMT_JOURNAL_OPEN = 1,   /* a batch begins: batch, station, product, target count */
	FMT_JOURNAL_DEVICE = 2, /* one device PASSed: identity, key, nonce and proof */
	FMT_JOURNAL_CLOSE = 3,  /* the batch is closed: count */
};

/* One entry; which fields are meaningful depends on type (journal.md §3).
 * Strings are NUL-terminated; their bytes follow formats/id.h (product:
 * printable ASCII without '"' and '\\'). */
struct fmt_journal_entry {
	enum fmt_journal_type type;
	int64_t time; /* seconds since the epoch, all types */
	/* OPEN */
	char batch[FMT_ID_MAX + 1];
	char station[FMT_ID_MAX + 1];
	char product[FMT_JOURNAL_PRODUCT_MAX + 1];
	uint64_t target; /* devices wanted; 0 = open-ended */
	/* DEVICE */
	char id[FMT_ID_MAX + 1];
	uint8_t mac[FMT_MAC_LEN];
	char serial[FMT_ID_MAX + 1];
	enum fmt_key_type key_type;
	size_t spki_len;
	uint8_t spki[FMT_KEY_SPKI_MAX];
	uint8_t nonce[FMT_JOURNAL_NONCE_LEN];
	uint8_t sig[FMT_JOURNAL_SIG_LEN];
	/* CLOSE */
	uint64_t count;
};

/* What fmt_journal_next found at the position. */
enum fmt_journal_item {
	FMT_JOURNAL_ITEM_ENTRY = 1, /* *e holds a whole, checked entry */
	FMT_JOURNAL_ITEM_END = 2,   /* no bytes left */
	FMT_JOURNAL_ITEM_TORN = 3,  /* the rest is a torn last write: drop it (journal.md §4) */
};

/* Encode e as one entry into out; *len gets its size. Every field is checked
 * as the decoder checks it (IDP_E_FORMAT / IDP_E_LIMIT naming the field). */
IDP_MUST_CHECK enum idp_err fmt_journal_encode(const struct fmt_journal_entry *e,
                                               uint8_t out[static FMT_JOURNAL_ENTRY_MAX],
                                               size_t *len, struct idp_error *err);

/* Decode the entry at buf[*pos..len) (a whole journal in memory). On
 * FMT_JOURNAL_ITEM_ENTRY *pos moves past it; on END and TORN *pos stays, so
 * *pos is then the length of the good prefix. A damaged entry that is not a
 * torn tail (good or non-zero bytes follow it) is IDP_E_FORMAT naming its
 * offset: the journal is refused rather than silently shortened. */
IDP_MUST_CHECK enum idp_err fmt_journal_next(const uint8_t *buf, size_t len, size_t *pos,
                                             struct fmt_journal_entry *e,
                                             enum fmt_journal_item *item, struct idp_error *err);

/* As fmt_journal_next, for buf[0..len) a window of a journal read in pieces
 * that starts at offset base of the file: offsets in messages are base +
 * position. The caller keeps at least FMT_JOURNAL_ENTRY_MAX bytes past *pos
 * in the window until the file's end, and takes TORN before the end only
 * when every byte after base + *pos in the file is zero (journal.md §4). */
IDP_MUST_CHECK enum idp_err fmt_journal_next_at(const uint8_t *buf, size_t len, size_t *pos,
                                                uint64_t base, struct fmt_journal_entry *e,
                                                enum fmt_journal_item *item,
                                                struct idp_error *err);

#endif /* IDP_FORMATS_JOURNAL_H */
