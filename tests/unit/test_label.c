/*
 * test_label.c - formats/label: the payload round-trips; other versions,
 * other spellings, bad IDs and truncated or oversized fingerprints are
 * refused.
 */
#include <string.h>

#include "formats/label.h"
#include "tests/unit/check_main.h"

static const uint8_t fp[32] = {0x0b, 0x5e, 0x01, 0x02, [31] = 0xc1};

START_TEST(test_label_round_trip)
{
	char out[FMT_LABEL_MAX], id[FMT_ID_MAX + 1];
	size_t n = 0;
	uint8_t back[32];
	ck_assert_int_eq(fmt_label_encode("sx1-000117", 10, fp, out, &n, NULL), IDP_OK);
	ck_assert_uint_eq(n, 6 + 10 + 1 + 64);
	ck_assert_int_eq(memcmp(out, "IDPL1;sx1-000117;0b5e0102", 25), 0);
	ck_assert_int_eq(fmt_label_parse(out, n, id, back, NULL), IDP_OK);
	ck_assert_str_eq(id, "sx1-000117");
	ck_assert_mem_eq(back, fp, 32);
	out[n] = '\n';
	ck_assert_int_eq(fmt_label_parse(out, n + 1, id, back, NULL), IDP_OK);
}
END_TEST

START_TEST(test_label_refusals)
{
	char out[FMT_LABEL_MAX + 8], id[FMT_ID_MAX + 1];
	size_t n = 0;
	uint8_t back[32];
	struct idp_error err;
	ck_assert_int_eq(fmt_label_encode("bad;id", 6, fp, out, &n, &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_label_encode("dev-1", 5, fp, out, &n, NULL), IDP_OK);
	char v2[FMT_LABEL_MAX];
	memcpy(v2, out, n);
	v2[4] = '2';
	ck_assert_int_eq(fmt_label_parse(v2, n, id, back, &err), IDP_E_UNSUPPORTED);
	ck_assert_int_eq(fmt_label_parse("hello", 5, id, back, &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_label_parse(out, n - 1, id, back, &err), IDP_E_FORMAT); /* short */
	out[n] = '0';
	ck_assert_int_eq(fmt_label_parse(out, n + 1, id, back, &err), IDP_E_FORMAT); /* long */
	memcpy(v2, out, n);
	v2[n - 1] = 'C'; /* upper-case hex is another spelling */
	ck_assert_int_eq(fmt_label_parse(v2, n, id, back, &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_label_parse("IDPL1;;00", 9, id, back, &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_label_parse("IDPL1;dev-1", 11, id, back, &err), IDP_E_FORMAT);
	ck_assert_str_eq(id, "");
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("label");
	TCase *tc = tcase_create("payload");
	tcase_add_test(tc, test_label_round_trip);
	tcase_add_test(tc, test_label_refusals);
	suite_add_tcase(s, tc);
	return s;
}
