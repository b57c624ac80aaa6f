/*
 * test_rules.c - rules.h: rules parsed from their text (product, field and
 * a formats/idrule.h rule), with errors naming the bad part; records checked
 * against the rules of their product only, the error naming the field and
 * the value. The checksums themselves are formats/idrule's (test_idrule.c).
 */
#include <string.h>

#include "server/rules.h"
#include "tests/unit/check_main.h"

START_TEST(test_rules_parse_and_check)
{
	struct srv_rules r = {.n = 0};
	struct idp_error err = {0};
	ck_assert_msg(srv_rules_add(&r,
	                            "product=sensor-x field=serial pattern=SN[0-9]{8} check=div:7",
	                            &err) == IDP_OK,
	              "%s", err.msg);
	ck_assert_int_eq(srv_rules_add(&r, "field=id check=luhn product=*", &err), IDP_OK);
	ck_assert_int_eq(srv_rules_check(&r, "sensor-x", "79927398713", "SN00000014", &err),
	                 IDP_OK);
	ck_assert_int_eq(srv_rules_check(&r, "sensor-x", "79927398713", "SN00000015", &err),
	                 IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "serial"));
	ck_assert_ptr_nonnull(strstr(err.msg, "SN00000015"));
	ck_assert_int_ne(srv_rules_check(&r, "sensor-x", "79927398713", "XX00000014", &err),
	                 IDP_OK);
	ck_assert_ptr_nonnull(strstr(err.msg, "XX00000014"));
	/* The id rule is for every product; the serial rule for sensor-x only. */
	ck_assert_int_eq(srv_rules_check(&r, "other", "79927398713", "anything", &err), IDP_OK);
	ck_assert_int_ne(srv_rules_check(&r, "other", "79927398710", "anything", &err), IDP_OK);
	ck_assert_ptr_nonnull(strstr(err.msg, "id"));
	ck_assert_int_eq(srv_rules_check(NULL, "x", "y", "z", &err), IDP_OK);

	static const char *const bad[] = {
	        "field=serial check=luhn",                  /* no product */
	        "product=x check=luhn",                     /* no field */
	        "product=x field=mac check=luhn",           /* bad field */
	        "product=x product=y field=id check=luhn",  /* product twice */
	        "product=x field=id check=crc",             /* bad check */
	        "product=x field=id",                       /* nothing to check */
	        "product=x field=id pattern=([",            /* bad pattern */
	        "product=x field=id check=luhn colour=red", /* unknown part */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(srv_rules_add(&r, bad[i], &err) != IDP_OK, "accepted %s", bad[i]);
	ck_assert_uint_eq(r.n, 2);
	srv_rules_free(&r);
	ck_assert_uint_eq(r.n, 0);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("rules");
	TCase *tc = tcase_create("rules");
	tcase_add_test(tc, test_rules_parse_and_check);
	suite_add_tcase(s, tc);
	return s;
}
