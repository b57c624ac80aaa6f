/*
 * test_mac.c - formats/mac.h: the one canonical text form of an EUI-48,
 * every other spelling refused with a message naming it, nothing written on
 * failure, no read past the given length.
 */
#include <stdint.h>
#include <string.h>

#include "formats/mac.h"
#include "tests/unit/check_main.h"

static const uint8_t mac_1[FMT_MAC_LEN] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x01};

START_TEST(test_mac_parse_format)
{
	uint8_t m[FMT_MAC_LEN];
	char text[FMT_MAC_TEXT_LEN + 1];
	ck_assert_int_eq(fmt_mac_parse("02:00:5e:10:00:01", 17, m, NULL), IDP_OK);
	ck_assert_mem_eq(m, mac_1, FMT_MAC_LEN);
	fmt_mac_format(m, text);
	ck_assert_str_eq(text, "02:00:5e:10:00:01");
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{"02:00:5E:10:00:01", "mac: \"02:00:5E:10:00:01\" is not in canonical form"},
		{"02-00-5e-10-00-01", "not in canonical form"},
		{"02:00:5e:10:00:0", "mac: \"02:00:5e:10:00:0\" is not an EUI-48 address"},
		{"02:00:5e:10:00:011", "not an EUI-48 address"},
		{"0200.5e10.0001", "not in canonical form"},
		{"02005e100001", "not in canonical form"},
		{"01:00:5e:10:00:01", "group (multicast)"},
		{"00:00:00:00:00:00", "all-zero"},
		{"02:00:5e:10:00:g1", "not an EUI-48 address"},
		{"02:00:5e:10:00:0\x1b", "\"02:00:5e:10:00:0\\x1b\" is not an EUI-48"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct idp_error err;
		memset(m, 0xaa, sizeof(m));
		ck_assert_int_eq(fmt_mac_parse(bad[i].in, strlen(bad[i].in), m, &err), IDP_E_FORMAT);
		ck_assert_msg(strstr(err.msg, bad[i].msg) != NULL, "'%s' for %s", err.msg, bad[i].in);
		ck_assert_int_eq(m[0], 0xaa); /* unchanged on failure */
	}
	/* Length is what the caller says: no read past it, no NUL needed. */
	char noterm[17];
	memcpy(noterm, "02:00:5e:10:00:01", 17);
	ck_assert_int_eq(fmt_mac_parse(noterm, 17, m, NULL), IDP_OK);
}
END_TEST

START_TEST(test_mac_check_bytes)
{
	struct idp_error err;
	ck_assert_int_eq(fmt_mac_check(mac_1, NULL), IDP_OK);
	static const uint8_t zero[FMT_MAC_LEN] = {0};
	ck_assert_int_eq(fmt_mac_check(zero, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "all-zero"));
	static const uint8_t group[FMT_MAC_LEN] = {0x01, 0x00, 0x5e, 0x10, 0x00, 0x01};
	ck_assert_int_eq(fmt_mac_check(group, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "group (multicast)"));
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("mac");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_mac_parse_format);
	tcase_add_test(tc, test_mac_check_bytes);
	suite_add_tcase(s, tc);
	return s;
}
