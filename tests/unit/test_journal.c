/*
 * test_journal.c - formats/journal: round trip of every entry type, torn
 * tails (every prefix of the last entry, zero-filled tails) dropped, damage
 * before good entries refused with its offset, encoder refusals.
 */
#include <stdlib.h>
#include <string.h>

#include "formats/crc32c.h"
#include "formats/journal.h"
#include "tests/unit/check_main.h"

static void fill_device(struct fmt_journal_entry *e, int i)
{
	memset(e, 0, sizeof(*e));
	e->type = FMT_JOURNAL_DEVICE;
	snprintf(e->id, sizeof(e->id), "dev-%d", i);
	snprintf(e->serial, sizeof(e->serial), "SN-%06d", i);
	const uint8_t mac[6] = {0x02, 0, 0, 0, 0, (uint8_t)(i + 1)};
	memcpy(e->mac, mac, 6);
	e->key_type = FMT_KEY_ED25519;
	e->spki_len = 44;
	memset(e->spki, 0x30 + i, e->spki_len);
	memset(e->nonce, 0xa0 + i, sizeof(e->nonce));
	memset(e->sig, 0x50 + i, sizeof(e->sig));
	e->time = 1790000000 + i;
}

/* A journal: OPEN, n DEVICE entries, optionally CLOSE; *ends gets each end offset. */
static size_t build(uint8_t *buf, int n, bool close, size_t *ends)
{
	struct fmt_journal_entry e;
	memset(&e, 0, sizeof(e));
	e.type = FMT_JOURNAL_OPEN;
	strcpy(e.batch, "b-1");
	strcpy(e.station, "st-1");
	strcpy(e.product, "Sensor X1 rev B");
	e.target = 10;
	e.time = 1790000000;
	size_t len = 0, k = 0;
	ck_assert_int_eq(fmt_journal_encode(&e, buf, &k, NULL), IDP_OK);
	len = k;
	ends[0] = len;
	for (int i = 0; i < n; i++) {
		fill_device(&e, i);
		ck_assert_int_eq(fmt_journal_encode(&e, buf + len, &k, NULL), IDP_OK);
		len += k;
		ends[i + 1] = len;
	}
	if (close) {
		memset(&e, 0, sizeof(e));
		e.type = FMT_JOURNAL_CLOSE;
		e.count = (uint64_t)n;
		ck_assert_int_eq(fmt_journal_encode(&e, buf + len, &k, NULL), IDP_OK);
		len += k;
		ends[n + 1] = len;
	}
	return len;
}

/* Walk buf; returns entries read, *item the last status, *good the good prefix. */
static int walk(const uint8_t *buf, size_t len, enum fmt_journal_item *item, size_t *good,
                enum idp_err *rc, struct idp_error *err)
{
	size_t pos = 0;
	int n = 0;
	struct fmt_journal_entry e;
	for (;;) {
		*rc = fmt_journal_next(buf, len, &pos, &e, item, err);
		if (*rc != IDP_OK || *item != FMT_JOURNAL_ITEM_ENTRY)
			break;
		n++;
	}
	*good = pos;
	return n;
}

START_TEST(test_journal_round_trip)
{
	uint8_t buf[8192];
	size_t ends[8];
	size_t len = build(buf, 3, true, ends);
	size_t pos = 0;
	struct fmt_journal_entry e, want;
	enum fmt_journal_item item;
	ck_assert_int_eq(fmt_journal_next(buf, len, &pos, &e, &item, NULL), IDP_OK);
	ck_assert_int_eq(item, FMT_JOURNAL_ITEM_ENTRY);
	ck_assert_int_eq(e.type, FMT_JOURNAL_OPEN);
	ck_assert_str_eq(e.batch, "b-1");
	ck_assert_str_eq(e.product, "Sensor X1 rev B");
	ck_assert_uint_eq(e.target, 10);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(fmt_journal_next(buf, len, &pos, &e, &item, NULL), IDP_OK);
		ck_assert_int_eq(item, FMT_JOURNAL_ITEM_ENTRY);
		fill_device(&want, i);
		ck_assert_str_eq(e.id, want.id);
		ck_assert_str_eq(e.serial, want.serial);
		ck_assert_mem_eq(e.mac, want.mac, 6);
		ck_assert_uint_eq(e.spki_len, 44);
		ck_assert_mem_eq(e.spki, want.spki, 44);
		ck_assert_mem_eq(e.nonce, want.nonce, 32);
		ck_assert_mem_eq(e.sig, want.sig, 64);
		ck_assert_int_eq(e.time, want.time);
	}
	ck_assert_int_eq(fmt_journal_next(buf, len, &pos, &e, &item, NULL), IDP_OK);
	ck_assert_int_eq(e.type, FMT_JOURNAL_CLOSE);
	ck_assert_uint_eq(e.count, 3);
	ck_assert_int_eq(fmt_journal_next(buf, len, &pos, &e, &item, NULL), IDP_OK);
	ck_assert_int_eq(item, FMT_JOURNAL_ITEM_END);
	ck_assert_uint_eq(pos, len);
}
END_TEST

/* Every prefix of the last entry is a torn tail: dropped, never half-read. */
START_TEST(test_journal_torn_every_prefix)
{
	uint8_t buf[8192];
	size_t ends[8];
	size_t len = build(buf, 3, false, ends);
	for (size_t cut = ends[2] + 1; cut < len; cut++) {
		enum fmt_journal_item item;
		size_t good;
		enum idp_err rc;
		int n = walk(buf, cut, &item, &good, &rc, NULL);
		ck_assert_int_eq(rc, IDP_OK);
		ck_assert_int_eq(n, 3); /* OPEN + 2 devices */
		ck_assert_int_eq(item, FMT_JOURNAL_ITEM_TORN);
		ck_assert_uint_eq(good, ends[2]);
	}
}
END_TEST

/* A last entry with a bad byte, or zeros where it should be, is torn too. */
START_TEST(test_journal_torn_zero_fill_and_bad_last)
{
	uint8_t buf[8192];
	size_t ends[8];
	size_t len = build(buf, 2, false, ends);
	enum fmt_journal_item item;
	size_t good;
	enum idp_err rc;
	uint8_t copy[8192];
	memcpy(copy, buf, len);
	copy[len - 10] ^= 0x01;
	ck_assert_int_eq(walk(copy, len, &item, &good, &rc, NULL), 2);
	ck_assert_int_eq(rc, IDP_OK);
	ck_assert_int_eq(item, FMT_JOURNAL_ITEM_TORN);
	ck_assert_uint_eq(good, ends[1]);
	memcpy(copy, buf, len);
	memset(copy + ends[1], 0, len - ends[1]);
	ck_assert_int_eq(walk(copy, len + 100, &item, &good, &rc, NULL), 2);
	ck_assert_int_eq(item, FMT_JOURNAL_ITEM_TORN);
	ck_assert_uint_eq(good, ends[1]);
}
END_TEST

/* Damage before good entries is refused with its offset, not skipped. */
START_TEST(test_journal_damage_in_middle_refused)
{
	uint8_t buf[8192];
	size_t ends[8];
	size_t len = build(buf, 3, true, ends);
	enum fmt_journal_item item;
	size_t good;
	enum idp_err rc;
	struct idp_error err;
	buf[ends[1] + 12] ^= 0x40; /* inside device 1's payload */
	ck_assert_int_eq(walk(buf, len, &item, &good, &rc, &err), 2);
	ck_assert_int_eq(rc, IDP_E_FORMAT);
	char want[64];
	snprintf(want, sizeof(want), "journal: offset %zu: crc mismatch", ends[1]);
	ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
	buf[ends[1] + 12] ^= 0x40;
	buf[ends[1]] = 'X'; /* magic of device 1 */
	ck_assert_int_eq(walk(buf, len, &item, &good, &rc, &err), 2);
	ck_assert_int_eq(rc, IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "not an entry header"));
}
END_TEST

/* A window of a journal at file offset base: entries decode as at 0, and
 * a damaged one is named at its offset in the file, not the window's. */
START_TEST(test_journal_next_at_names_file_offsets)
{
	uint8_t buf[8192];
	size_t ends[8];
	size_t len = build(buf, 3, true, ends);
	static struct fmt_journal_entry e;
	enum fmt_journal_item item;
	struct idp_error err = {0};
	size_t pos = 0;
	const uint64_t base = 5000000000ull;
	ck_assert_int_eq(fmt_journal_next_at(buf, len, &pos, base, &e, &item, &err), IDP_OK);
	ck_assert_int_eq(item, FMT_JOURNAL_ITEM_ENTRY);
	ck_assert_uint_eq(pos, ends[0]);
	buf[ends[1] + 12] ^= 0x40;
	ck_assert_int_eq(fmt_journal_next_at(buf, len, &pos, base, &e, &item, &err), IDP_OK);
	ck_assert_int_eq(fmt_journal_next_at(buf, len, &pos, base, &e, &item, &err), IDP_E_FORMAT);
	char want[80];
	snprintf(want, sizeof(want), "journal: offset %llu: crc mismatch",
	         (unsigned long long)(base + ends[1]));
	ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
}
END_TEST

START_TEST(test_journal_encode_refusals)
{
	struct fmt_journal_entry e;
	uint8_t out[FMT_JOURNAL_ENTRY_MAX];
	size_t n;
	struct idp_error err;
	fill_device(&e, 1);
	strcpy(e.id, "bad id");
	ck_assert_int_eq(fmt_journal_encode(&e, out, &n, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "journal: id"));
	fill_device(&e, 1);
	memset(e.mac, 0, 6);
	ck_assert_int_ne(fmt_journal_encode(&e, out, &n, &err), IDP_OK);
	fill_device(&e, 1);
	e.spki_len = 0;
	ck_assert_int_eq(fmt_journal_encode(&e, out, &n, &err), IDP_E_LIMIT);
	fill_device(&e, 1);
	e.serial[0] = '\0';
	ck_assert_int_eq(fmt_journal_encode(&e, out, &n, &err), IDP_E_FORMAT);
	memset(&e, 0, sizeof(e));
	e.type = FMT_JOURNAL_OPEN;
	strcpy(e.batch, "b");
	strcpy(e.station, "s");
	strcpy(e.product, "quote\"d");
	ck_assert_int_eq(fmt_journal_encode(&e, out, &n, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "journal: product"));
}
END_TEST

/* A good CRC over a payload that does not parse is damage, not a tail. */
START_TEST(test_journal_good_crc_bad_payload)
{
	uint8_t buf[64] = {'I', 'D', 'J', '1', 9, 0, 0, 1, 0x00};
	uint32_t crc = fmt_crc32c(0, buf, 9);
	for (int i = 0; i < 4; i++)
		buf[9 + i] = (uint8_t)(crc >> (24 - 8 * i));
	size_t pos = 0;
	struct fmt_journal_entry e;
	enum fmt_journal_item item;
	struct idp_error err;
	ck_assert_int_eq(fmt_journal_next(buf, 13, &pos, &e, &item, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "type 9 unknown"));
	ck_assert_uint_eq(pos, 0);
}
END_TEST

/* A NUL inside a string's declared length is refused, not cut off: "b-1\0x"
 * read as "b-1" would re-encode to other bytes (found by fuzz_journal). */
START_TEST(test_journal_nul_in_string_refused)
{
	static const char *const fields[] = {"batch", "station", "product"};
	for (int f = 0; f < 3; f++) {
		uint8_t buf[64] = {'I', 'D', 'J', '1', FMT_JOURNAL_OPEN, 0, 0, 0};
		size_t p = 8;
		const char *val[] = {"b-1", "st-1", "Sensor X"};
		for (int i = 0; i < 3; i++) {
			size_t n = strlen(val[i]);
			buf[p++] = (uint8_t)(n + (i == f ? 2 : 0));
			memcpy(buf + p, val[i], n);
			p += n;
			if (i == f) {
				buf[p++] = 0x00;
				buf[p++] = 'x';
			}
		}
		p += 16; /* target and time, zero */
		buf[7] = (uint8_t)(p - 8);
		uint32_t crc = fmt_crc32c(0, buf, p);
		for (int i = 0; i < 4; i++)
			buf[p + (size_t)i] = (uint8_t)(crc >> (24 - 8 * i));
		size_t pos = 0;
		struct fmt_journal_entry e;
		enum fmt_journal_item item;
		struct idp_error err;
		ck_assert_int_eq(fmt_journal_next(buf, p + 4, &pos, &e, &item, &err), IDP_E_FORMAT);
		ck_assert_ptr_nonnull(strstr(err.msg, fields[f]));
		ck_assert_ptr_nonnull(strstr(err.msg, "byte 0x00"));
		ck_assert_uint_eq(pos, 0);
	}
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, test_journal_round_trip);
	tcase_add_test(tc, test_journal_torn_every_prefix);
	tcase_add_test(tc, test_journal_torn_zero_fill_and_bad_last);
	tcase_add_test(tc, test_journal_damage_in_middle_refused);
	tcase_add_test(tc, test_journal_next_at_names_file_offsets);
	tcase_add_test(tc, test_journal_encode_refusals);
	tcase_add_test(tc, test_journal_good_crc_bad_payload);
	tcase_add_test(tc, test_journal_nul_in_string_refused);
	suite_add_tcase(s, tc);
	return s;
}
