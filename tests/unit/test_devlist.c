/*
 * test_devlist.c - formats/devlist: CSV with and without its header row,
 * JSON Lines, comments and CR LF, PEM paths handed back, and refusals that
 * name the field and the line.
 */
#include <string.h>

#include "formats/devlist.h"
#include "tests/unit/check_main.h"

static const char p256_b64[] = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqcKK/OjPXf7iJUl8U/FliS0zcF9/"
                               "CdAwsq6dgahoOfEBUgS/8oBvNOy+oeeITGqnzbjq7179FbELXwxGVYYqEw==";

/* Read every record of list; returns the count, stops at the first error. */
static int read_all(enum fmt_devlist_format f, const char *list, struct fmt_manifest_record *out,
                    int max, enum idp_err *rc, struct idp_error *err, uint64_t *lineno)
{
	struct fmt_devlist d = {.format = f};
	char pem[FMT_DEVLIST_PATH_MAX + 1];
	int n = 0;
	for (;;) {
		int got = 0;
		struct fmt_manifest_record r;
		*rc = fmt_devlist_next(&d, (const uint8_t *)list, strlen(list), &r, pem, &got, err);
		*lineno = d.lineno;
		if (*rc != IDP_OK || got == 0)
			return n;
		ck_assert_int_lt(n, max);
		out[n++] = r;
	}
}

START_TEST(test_devlist_csv_header_comments_crlf)
{
	char list[512];
	snprintf(list, sizeof(list),
	         "# a comment\r\n\r\nID,Mac,Serial,Pub\r\n"
	         "dev-1,02:00:00:00:00:01,S-1,%s\r\n"
	         "dev-2,02:00:00:00:00:02,S-2,\n"
	         "dev-3,02:00:00:00:00:03,S-3",
	         p256_b64);
	struct fmt_manifest_record r[4];
	enum idp_err rc;
	struct idp_error err;
	uint64_t line;
	ck_assert_int_eq(read_all(FMT_DEVLIST_CSV, list, r, 4, &rc, &err, &line), 3);
	ck_assert_int_eq(rc, IDP_OK);
	ck_assert_str_eq(r[0].id, "dev-1");
	ck_assert_str_eq(r[0].serial, "S-1");
	ck_assert_uint_eq(r[0].pub_len, 91);
	ck_assert_uint_eq(r[0].mac[5], 1);
	ck_assert_uint_eq(r[1].pub_len, 0);
	ck_assert_str_eq(r[2].id, "dev-3");
}
END_TEST

/* A header row is only a header on the first line; later it is a device
 * whose MAC does not parse. */
START_TEST(test_devlist_header_only_first)
{
	struct fmt_manifest_record r[4];
	enum idp_err rc;
	struct idp_error err;
	uint64_t line;
	ck_assert_int_eq(read_all(FMT_DEVLIST_CSV, "d1,02:00:00:00:00:01,S1\nid,mac,serial\n", r, 4,
	                          &rc, &err, &line),
	                 1);
	ck_assert_int_eq(rc, IDP_E_FORMAT);
	ck_assert_uint_eq(line, 2);
	ck_assert_ptr_nonnull(strstr(err.msg, "mac"));
}
END_TEST

START_TEST(test_devlist_pem_path_handed_back)
{
	struct fmt_devlist d = {.format = FMT_DEVLIST_CSV};
	const char *list = "d1,02:00:00:00:00:01,S1,keys/d1.pem\n";
	char pem[FMT_DEVLIST_PATH_MAX + 1];
	struct fmt_manifest_record r;
	int got = 0;
	ck_assert_int_eq(fmt_devlist_next(&d, (const uint8_t *)list, strlen(list), &r, pem, &got, NULL),
	                 IDP_OK);
	ck_assert_int_eq(got, 1);
	ck_assert_str_eq(pem, "keys/d1.pem");
	ck_assert_uint_eq(r.pub_len, 0);
}
END_TEST

START_TEST(test_devlist_refusals_name_field)
{
	static const struct {
		const char *list, *want;
	} cases[] = {
	        {"d1,02:00:00:00:00:01\n", "csv: 2 fields, expected id,mac,serial[,pub]"},
	        {"d1,02:00:00:00:00:01,S1,,x\n", "csv: 5 or more fields"},
	        {"d1,02:00:00:00:00:01,S1,!!!!\n", "pub: "},
	        {"d1,nomac,S1\n", "mac"},
	        {"d1,02:00:00:00:00:01,"
	         "S12345678901234567890123456789012345678901234567890123456789012345\n",
	         "serial: 66 bytes, max 64"},
	        {"{\"id\":\"d1\"}\n", NULL}, /* JSON in a CSV list: one field */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fmt_manifest_record r[2];
		enum idp_err rc;
		struct idp_error err;
		uint64_t line;
		ck_assert_int_eq(read_all(FMT_DEVLIST_CSV, cases[i].list, r, 2, &rc, &err, &line), 0);
		ck_assert_int_ne(rc, IDP_OK);
		ck_assert_uint_eq(line, 1);
		if (cases[i].want != NULL)
			ck_assert_msg(strstr(err.msg, cases[i].want) != NULL, "case %zu: %s", i,
			              err.msg);
	}
}
END_TEST

START_TEST(test_devlist_jsonl)
{
	const char *list = "# devices\n{\"serial\":\"S1\",\"mac\":\"02:00:00:00:00:01\",\"id\":\"d1\"}\n"
	                   "{\"id\":\"d2\",\"mac\":\"02:00:00:00:00:02\",\"serial\":\"S2\","
	                   "\"attrs\":{\"hw\":\"B\"}}\n";
	struct fmt_manifest_record r[3];
	enum idp_err rc;
	struct idp_error err;
	uint64_t line;
	ck_assert_int_eq(read_all(FMT_DEVLIST_JSONL, list, r, 3, &rc, &err, &line), 2);
	ck_assert_int_eq(rc, IDP_OK);
	ck_assert_str_eq(r[1].id, "d2");
	ck_assert_uint_eq(r[1].nattrs, 1);
	ck_assert_int_eq(read_all(FMT_DEVLIST_JSONL, "d1,02:00:00:00:00:01,S1\n", r, 3, &rc, &err,
	                          &line),
	                 0);
	ck_assert_int_ne(rc, IDP_OK);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("devlist");
	TCase *tc = tcase_create("read");
	tcase_add_test(tc, test_devlist_csv_header_comments_crlf);
	tcase_add_test(tc, test_devlist_header_only_first);
	tcase_add_test(tc, test_devlist_pem_path_handed_back);
	tcase_add_test(tc, test_devlist_refusals_name_field);
	tcase_add_test(tc, test_devlist_jsonl);
	suite_add_tcase(s, tc);
	return s;
}
