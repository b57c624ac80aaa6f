/*
 * test_buf.c - formats/buf: growth, the cap (exact fit, sticky failure),
 * size arithmetic that would wrap, printf-append, fixed storage, wiping of
 * secret buffers, handing the content over.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/buf.h"
#include "tests/unit/check_main.h"

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

START_TEST(test_buf_add_grows)
{
	struct fmt_buf b;
	fmt_buf_init(&b, 100000, 0);
	ck_assert_ptr_null(b.p);
	uint8_t chunk[1000];
	for (size_t i = 0; i < 50; i++) {
		memset(chunk, (int)('a' + i % 26), sizeof(chunk));
		fmt_buf_add(&b, chunk, sizeof(chunk));
	}
	ck_assert_int_eq(fmt_buf_status(&b), IDP_OK);
	ck_assert_uint_eq(b.len, 50000);
	ck_assert_uint_gt(b.size, b.len);
	ck_assert_uint_le(b.size, 100001);
	ck_assert_uint_eq(b.p[b.len], '\0');
	for (size_t i = 0; i < 50; i++)
		ck_assert_uint_eq(b.p[i * 1000 + 999], 'a' + i % 26);
	fmt_buf_free(&b);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len, 0);
	fmt_buf_free(NULL);
}
END_TEST

START_TEST(test_buf_cap_reached)
{
	struct fmt_buf b;
	struct idp_error err = {0};
	fmt_buf_init(&b, 10, 0);
	fmt_buf_add_str(&b, "12345678");
	fmt_buf_add_str(&b, "90"); /* exactly max: fits */
	ck_assert_int_eq(fmt_buf_check(&b, "body", &err), IDP_OK);
	ck_assert_str_eq((const char *)b.p, "1234567890");
	ck_assert_uint_eq(b.size, 11); /* never more than max + the NUL */

	fmt_buf_add_str(&b, "x");
	ck_assert_int_eq(fmt_buf_status(&b), IDP_E_LIMIT);
	/* Sticky: a later append that would fit is dropped too. */
	fmt_buf_clear(&b);
	fmt_buf_add_str(&b, "123456789");
	fmt_buf_add_str(&b, "ab");
	fmt_buf_add_str(&b, "c");
	ck_assert_uint_eq(b.len, 9);
	ck_assert_str_eq((const char *)b.p, "123456789");
	ck_assert_ptr_null(fmt_buf_room(&b, 0));
	fmt_buf_addf(&b, "%d", 1);
	ck_assert_uint_eq(b.len, 9);
	ck_assert_int_eq(fmt_buf_check(&b, "body", &err), IDP_E_LIMIT);
	ck_assert_str_eq(err.msg, "body: longer than 10 bytes");
	ck_assert_ptr_null(fmt_buf_detach(&b, NULL));
	fmt_buf_free(&b);
}
END_TEST

START_TEST(test_buf_size_arithmetic_overflow)
{
	struct fmt_buf b;
	/* max is clamped so that max + 1 (the NUL) cannot wrap. */
	fmt_buf_init(&b, SIZE_MAX, 0);
	ck_assert_uint_eq(b.max, SIZE_MAX - 1);
	fmt_buf_add_str(&b, "abc");
	size_t size = b.size;
	/* len + n + 1 would wrap to 2: must be refused, not allocated small. */
	ck_assert_ptr_null(fmt_buf_room(&b, SIZE_MAX - 2));
	ck_assert_int_eq(fmt_buf_status(&b), IDP_E_LIMIT);
	ck_assert_uint_eq(b.size, size);
	ck_assert_str_eq((const char *)b.p, "abc");
	fmt_buf_free(&b);

	/* Fits max but no object can be that large: refused before malloc. */
	fmt_buf_init(&b, SIZE_MAX, 0);
	fmt_buf_add_str(&b, "abc");
	ck_assert_ptr_null(fmt_buf_room(&b, SIZE_MAX / 2 + 10));
	ck_assert_int_eq(fmt_buf_status(&b), IDP_E_LIMIT);
	fmt_buf_free(&b);

	/* Committing more than the room given is refused. */
	fmt_buf_init(&b, 1000, 0);
	uint8_t *r = fmt_buf_room(&b, 4);
	ck_assert_ptr_nonnull(r);
	memcpy(r, "wxyz", 4);
	fmt_buf_commit(&b, b.size); /* one byte more than there is */
	ck_assert_int_eq(fmt_buf_status(&b), IDP_E_LIMIT);
	ck_assert_uint_eq(b.len, 0);
	fmt_buf_free(&b);

	fmt_buf_init(&b, 8, 0);
	r = fmt_buf_room(&b, 4);
	ck_assert_ptr_nonnull(r);
	memcpy(r, "wxyz", 4);
	fmt_buf_commit(&b, 4);
	fmt_buf_commit(&b, SIZE_MAX); /* max - len must be what is compared */
	ck_assert_int_eq(fmt_buf_status(&b), IDP_E_LIMIT);
	ck_assert_uint_eq(b.len, 4);
	ck_assert_str_eq((const char *)b.p, "wxyz");
	fmt_buf_free(&b);
}
END_TEST

START_TEST(test_buf_addf_short_and_long)
{
	struct fmt_buf b;
	fmt_buf_init(&b, 4096, 0);
	fmt_buf_addf(&b, "%s=%d;", "n", 42);
	char big[1000];
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fmt_buf_addf(&b, "[%s]", big); /* longer than the stack attempt */
	ck_assert_int_eq(fmt_buf_status(&b), IDP_OK);
	ck_assert_uint_eq(b.len, 5 + 1 + 999 + 1);
	ck_assert_mem_eq(b.p, "n=42;[qqq", 9);
	ck_assert_uint_eq(b.p[b.len - 1], ']');
	ck_assert_uint_eq(b.p[b.len], '\0');
	fmt_buf_free(&b);

	fmt_buf_init(&b, 500, 0);
	fmt_buf_addf(&b, "%s", big);
	ck_assert_int_eq(fmt_buf_status(&b), IDP_E_LIMIT);
	ck_assert_uint_eq(b.len, 0);
	fmt_buf_free(&b);
}
END_TEST

START_TEST(test_buf_fixed_storage)
{
	char mem[8];
	struct fmt_buf b;
	/* max < size: always a string. */
	fmt_buf_init_fixed(&b, mem, sizeof(mem), sizeof(mem) - 1, 0);
	fmt_buf_add_str(&b, "abc");
	fmt_buf_addf(&b, "%04d", 12);
	ck_assert_int_eq(fmt_buf_status(&b), IDP_OK);
	ck_assert_str_eq(mem, "abc0012");
	fmt_buf_add_str(&b, "h");
	ck_assert_int_eq(fmt_buf_status(&b), IDP_E_LIMIT);
	ck_assert_str_eq(mem, "abc0012");
	ck_assert_ptr_null(fmt_buf_detach(&b, NULL)); /* never handed over */
	fmt_buf_free(&b);
	ck_assert_ptr_eq(b.p, (uint8_t *)mem); /* the caller's, not freed */

	/* max == size: the last byte may be used, the NUL then dropped. */
	memset(mem, '#', sizeof(mem));
	fmt_buf_init_fixed(&b, mem, sizeof(mem), SIZE_MAX, 0);
	ck_assert_uint_eq(b.max, sizeof(mem));
	fmt_buf_addf(&b, "%s", "12345678");
	ck_assert_int_eq(fmt_buf_status(&b), IDP_OK);
	ck_assert_mem_eq(mem, "12345678", 8);
	fmt_buf_add(&b, "9", 1);
	ck_assert_int_eq(fmt_buf_status(&b), IDP_E_LIMIT);
	fmt_buf_free(&b);
}
END_TEST

START_TEST(test_buf_secret_wiped)
{
	/* A fixed secret buffer: free wipes all of the caller's storage. */
	uint8_t mem[64];
	memset(mem, 0x77, sizeof(mem));
	struct fmt_buf b;
	fmt_buf_init_fixed(&b, mem, sizeof(mem), sizeof(mem) - 1, FMT_BUF_SECRET);
	fmt_buf_add_str(&b, "token=eyJhbGciOi");
	fmt_buf_free(&b);
	ck_assert(all_zero(mem, sizeof(mem)));

	/* ... also after a failed append. */
	memset(mem, 0x77, sizeof(mem));
	fmt_buf_init_fixed(&b, mem, sizeof(mem), 10, FMT_BUF_SECRET);
	fmt_buf_add_str(&b, "0123456789abcdef");
	ck_assert_int_eq(fmt_buf_status(&b), IDP_E_LIMIT);
	fmt_buf_free(&b);
	ck_assert(all_zero(mem, sizeof(mem)));

	/* A growable secret buffer: clear wipes the whole allocation, grown
	 * through several sizes; a non-secret one keeps the old bytes. */
	fmt_buf_init(&b, 1 << 20, FMT_BUF_SECRET);
	for (int i = 0; i < 100; i++)
		fmt_buf_addf(&b, "secret-%03d;", i);
	ck_assert_int_eq(fmt_buf_status(&b), IDP_OK);
	ck_assert_uint_gt(b.size, 1000);
	fmt_buf_clear(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert(all_zero(b.p, b.size));
	fmt_buf_free(&b);

	fmt_buf_init(&b, 1 << 20, 0);
	fmt_buf_add_str(&b, "public");
	fmt_buf_clear(&b);
	ck_assert_mem_eq(b.p + 1, "ublic", 5);
	fmt_buf_free(&b);
}
END_TEST

START_TEST(test_buf_detach)
{
	struct fmt_buf b;
	size_t len = 99;
	fmt_buf_init(&b, 100, 0);
	uint8_t *p = fmt_buf_detach(&b, &len); /* empty: still a string */
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(p[0], '\0');
	free(p);

	fmt_buf_add(&b, "a\0b", 3);
	p = fmt_buf_detach(&b, &len);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(p, "a\0b\0", 4);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len, 0);
	free(p);
	fmt_buf_add_str(&b, "again"); /* reusable after */
	ck_assert_str_eq((const char *)b.p, "again");
	fmt_buf_free(&b);
}
END_TEST

START_TEST(test_buf_room_commit_reads)
{
	/* The read loop shape: room, write some, commit what was written. */
	struct fmt_buf b;
	fmt_buf_init(&b, 10, 0);
	uint8_t *r = fmt_buf_room(&b, 6);
	ck_assert_ptr_nonnull(r);
	memcpy(r, "abc", 3);
	fmt_buf_commit(&b, 3);
	r = fmt_buf_room(&b, 7);
	ck_assert_ptr_nonnull(r);
	memcpy(r, "defghij", 7);
	fmt_buf_commit(&b, 7);
	ck_assert_int_eq(fmt_buf_status(&b), IDP_OK);
	ck_assert_str_eq((const char *)b.p, "abcdefghij");
	ck_assert_ptr_null(fmt_buf_room(&b, 1));
	fmt_buf_free(&b);

	/* Room asked and nothing written: still an empty string. */
	fmt_buf_init(&b, 10, 0);
	ck_assert_ptr_nonnull(fmt_buf_room(&b, 5));
	ck_assert_uint_eq(b.p[0], '\0');
	fmt_buf_free(&b);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_buf_add_grows);
	tcase_add_test(tc, test_buf_cap_reached);
	tcase_add_test(tc, test_buf_size_arithmetic_overflow);
	tcase_add_test(tc, test_buf_addf_short_and_long);
	tcase_add_test(tc, test_buf_fixed_storage);
	tcase_add_test(tc, test_buf_secret_wiped);
	tcase_add_test(tc, test_buf_detach);
	tcase_add_test(tc, test_buf_room_commit_reads);
	suite_add_tcase(s, tc);
	return s;
}
