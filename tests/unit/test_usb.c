/*
 * test_usb.c - enroll/usb: parsing of --usb VID:PID and --usb-interface,
 * hostile values included (the transport itself runs under umockdev in
 * tests/integration/station/usb.sh).
 */
#include <string.h>

#include "enroll/usb.h"
#include "tests/unit/check_main.h"

START_TEST(test_usb_parse_ok)
{
	struct enr_usb_match m;
	struct idp_error err;
	ck_assert_int_eq(enr_usb_parse("1d50:6189", NULL, &m, &err), IDP_OK);
	ck_assert_uint_eq(m.vid, 0x1d50);
	ck_assert_uint_eq(m.pid, 0x6189);
	ck_assert_uint_eq(m.iface, 0);
	ck_assert_int_eq(enr_usb_parse("1D50:*", "2", &m, &err), IDP_OK);
	ck_assert_uint_eq(m.vid, 0x1d50);
	ck_assert_uint_eq(m.pid, 0);
	ck_assert_uint_eq(m.iface, 2);
	ck_assert_int_eq(enr_usb_parse("1:2", "255", &m, &err), IDP_OK);
	ck_assert_uint_eq(m.vid, 1);
	ck_assert_uint_eq(m.iface, 255);
}
END_TEST

START_TEST(test_usb_parse_refused)
{
	static const char *const bad[] = {
	        "",          "1d50",      ":6189",     "1d50:",  "0000:6189", "1d50:0000",
	        "1d50:61890", "12345:1",  "1d5g:6189", "1d50:-1", "1d50:6189:1", "1d50: 6189",
	        "*:6189",    "1d50:**",   "-1d5:6189",
	};
	struct enr_usb_match m;
	struct idp_error err;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(enr_usb_parse(bad[i], NULL, &m, &err) == IDP_E_ARG, "%s", bad[i]);
		ck_assert_msg(strstr(err.msg, "is not VENDOR:PRODUCT") != NULL, "%s", err.msg);
	}
	ck_assert_int_eq(enr_usb_parse(NULL, NULL, &m, &err), IDP_E_ARG);
	static const char *const bad_if[] = {"", "-1", "256", "1x", " 1", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad_if) / sizeof(bad_if[0]); i++) {
		ck_assert_msg(enr_usb_parse("1d50:6189", bad_if[i], &m, &err) == IDP_E_ARG, "%s",
		              bad_if[i]);
		ck_assert_msg(strstr(err.msg, "interface") != NULL, "%s", err.msg);
	}
	/* A long hostile value is quoted, not copied whole. */
	char long_ids[600];
	memset(long_ids, 'a', sizeof(long_ids) - 1);
	long_ids[sizeof(long_ids) - 1] = '\0';
	ck_assert_int_eq(enr_usb_parse(long_ids, NULL, &m, &err), IDP_E_ARG);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("usb");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, test_usb_parse_ok);
	tcase_add_test(tc, test_usb_parse_refused);
	suite_add_tcase(s, tc);
	return s;
}
