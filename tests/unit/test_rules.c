/*
 * test_rules.c - rules.h: the three checksums on known values and on
 * values with one digit changed or transposed; rules parsed from their text,
 * with errors naming the bad part; records checked per product, with the
 * error naming the field, the value and the rule.
 */
#include <string.h>

#include "server/rules.h"
#include "tests/unit/check_main.h"

START_TEST(test_rules_checksums)
{
	/* Luhn: the ISO/IEC 7812 example and a card-style number. */
	ck_assert(srv_check_luhn("79927398713"));
	ck_assert(!srv_check_luhn("79927398710"));
	ck_assert(!srv_check_luhn("79927398731")); /* transposed */
	ck_assert(srv_check_luhn("SN-7992-7398-713"));
	ck_assert(!srv_check_luhn("0"));
	/* ISO 7064 MOD 97-10: 123456789 with check digits 78; an IBAN rearranged. */
	ck_assert(srv_check_mod97_10("12345678978"));
	ck_assert(!srv_check_mod97_10("12345678987"));
	ck_assert(srv_check_mod97_10("WEST12345698765432GB82"));
	ck_assert(!srv_check_mod97_10("WEST12345698765432GB83"));
	ck_assert(!srv_check_mod97_10("1"));
	/* Divisible by 7 (the seed's sample). */
	ck_assert(srv_check_div7("SN00000007"));
	ck_assert(srv_check_div7("700000000000000000000000000000000000000007"));
	ck_assert(!srv_check_div7("SN00000008"));
	ck_assert(!srv_check_div7("SN"));
}
END_TEST

START_TEST(test_rules_parse_and_check)
{
	struct srv_rules r = {.n = 0};
	struct idp_error err = {0};
	ck_assert_int_eq(srv_rules_add(&r,
	                               "product=sensor-x field=serial pattern=^SN[0-9]{8}$ "
	                               "check=div7",
	                               &err),
	                 IDP_OK);
	ck_assert_int_eq(srv_rules_add(&r, "product=* field=id check=luhn", &err), IDP_OK);
	ck_assert_int_eq(srv_rules_check(&r, "sensor-x", "79927398713", "SN00000014", &err),
	                 IDP_OK);
	ck_assert_int_eq(srv_rules_check(&r, "sensor-x", "79927398713", "SN00000015", &err),
	                 IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "serial SN00000015 fails the div7 check"));
	ck_assert_int_eq(srv_rules_check(&r, "sensor-x", "79927398713", "XX00000014", &err),
	                 IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "does not match the pattern"));
	ck_assert_int_eq(srv_rules_check(&r, "other", "79927398710", "anything", &err),
	                 IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "id 79927398710 fails the luhn check"));
	ck_assert_int_eq(srv_rules_check(NULL, "x", "y", "z", &err), IDP_OK);

	static const char *const bad[] = {
	        "field=serial check=luhn",                 /* no product */
	        "product=x check=luhn",                    /* no field */
	        "product=x field=mac check=luhn",          /* bad field */
	        "product=x field=id check=crc",            /* bad check */
	        "product=x field=id",                      /* nothing to check */
	        "product=x field=id pattern=([",           /* bad pattern */
	        "product=x field=id check=luhn colour=red" /* unknown part */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(srv_rules_add(&r, bad[i], &err) == IDP_E_FORMAT, "accepted %s",
		              bad[i]);
	ck_assert_uint_eq(r.n, 2);
	srv_rules_free(&r);
	ck_assert_uint_eq(r.n, 0);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("rules");
	TCase *tc = tcase_create("rules");
	tcase_add_test(tc, test_rules_checksums);
	tcase_add_test(tc, test_rules_parse_and_check);
	suite_add_tcase(s, tc);
	return s;
}
