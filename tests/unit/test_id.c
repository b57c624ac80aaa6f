/*
 * test_id.c - the one ID rule: what it accepts, what it refuses and how the
 * refusal is named; and that wire, API and token parsers apply the same rule.
 */
#include <string.h>

#include "formats/api.h"
#include "formats/id.h"
#include "tests/unit/check_main.h"

START_TEST(test_id_accepts_and_refuses)
{
	static const char *good[] = {"a", "dev-0001", "SX1.2026_000001", "urn:dev:42", "0",
	                             "A234567890123456789012345678901234567890123456789012345678901234"};
	static const char *bad[] = {"", "-dev", ".x", ":x", "dev 1", "dev/1", "dév", "a\"b", "a\\b",
	                            "a\nb",
	                            "A2345678901234567890123456789012345678901234567890123456789012345"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(fmt_id_valid(good[i], strlen(good[i])), "refused %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct idp_error err;
		ck_assert_msg(!fmt_id_valid(bad[i], strlen(bad[i])), "accepted %s", bad[i]);
		ck_assert_int_ne(fmt_id_check(bad[i], strlen(bad[i]), "device_id", &err), IDP_OK);
		ck_assert_msg(strncmp(err.msg, "device_id: ", 11) == 0, "%s", err.msg);
	}
	struct idp_error err;
	ck_assert_int_eq(fmt_id_check("ab!c", 4, "serial", &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "byte 0x21 at offset 2"));
}
END_TEST

START_TEST(test_id_same_rule_in_api)
{
	struct idp_error err;
	ck_assert_int_eq(fmt_api_check_id("urn:dev:42", 10, "device_id", NULL), IDP_OK);
	ck_assert_int_eq(fmt_api_check_id("-x", 2, "device_id", &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_api_check_id("x!", 2, "device_id", &err), IDP_E_FORMAT);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("id");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_id_accepts_and_refuses);
	tcase_add_test(tc, test_id_same_rule_in_api);
	suite_add_tcase(s, tc);
	return s;
}
