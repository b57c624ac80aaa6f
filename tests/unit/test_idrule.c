/*
 * test_idrule.c - ID/serial validation rules: checksum known answers, the
 * errors each checksum must catch, pattern anchoring, and refusal of bad rules.
 */
#include <stdio.h>
#include <string.h>

#include "formats/idrule.h"
#include "tests/unit/check_main.h"

static struct fmt_idrule *rule(const char *spec)
{
	struct fmt_idrule *r = NULL;
	struct idp_error err;
	ck_assert_msg(fmt_idrule_parse(spec, strlen(spec), &r, &err) == IDP_OK, "%s: %s", spec,
	              err.msg);
	return r;
}

START_TEST(test_idrule_checksum_known_answers)
{
	ck_assert(fmt_idrule_luhn_valid("79927398713", 11));
	ck_assert(!fmt_idrule_luhn_valid("79927398710", 11));
	ck_assert(fmt_idrule_luhn_valid("4539-1488-0343-6467", 19)); /* separators ignored */
	ck_assert(!fmt_idrule_luhn_valid("0", 1));                     /* too short to mean anything */
	/* ISO 7064 MOD 97-10 as IBAN uses it (country and check digits moved to the end). */
	ck_assert(fmt_idrule_mod97_10_valid("WEST12345698765432GB82", 22));
	ck_assert(!fmt_idrule_mod97_10_valid("WEST12345698765432GB83", 22));
	ck_assert(fmt_idrule_mod97_10_valid("12345678978", 11));
	/* The seed's rule: divisible by 7. */
	ck_assert(fmt_idrule_divisible("SN-000105", 9, 7));
	ck_assert(!fmt_idrule_divisible("SN-000106", 9, 7));
	ck_assert(!fmt_idrule_divisible("SN-", 3, 7));
	ck_assert(fmt_idrule_divisible("99999999999999999999999999999999999999999999999999", 50, 9));
}
END_TEST

START_TEST(test_idrule_checksums_catch_typing_errors)
{
	/* Luhn catches every single-digit substitution; MOD 97-10 also every
	 * transposition of adjacent characters. Tried exhaustively on one value. */
	char v[] = "79927398713";
	for (size_t i = 0; i < sizeof(v) - 1; i++) {
		char orig = v[i];
		for (char d = '0'; d <= '9'; d++) {
			if (d == orig)
				continue;
			v[i] = d;
			ck_assert_msg(!fmt_idrule_luhn_valid(v, sizeof(v) - 1), "luhn missed %s", v);
			v[i] = orig;
		}
	}
	char m[] = "12345678978";
	for (size_t i = 0; i < sizeof(m) - 1; i++) {
		char orig = m[i];
		for (char d = '0'; d <= '9'; d++) {
			if (d == orig)
				continue;
			m[i] = d;
			ck_assert_msg(!fmt_idrule_mod97_10_valid(m, sizeof(m) - 1), "mod97 missed %s", m);
			m[i] = orig;
		}
		if (i + 1 < sizeof(m) - 1 && m[i] != m[i + 1]) {
			char t = m[i];
			m[i] = m[i + 1];
			m[i + 1] = t;
			ck_assert_msg(!fmt_idrule_mod97_10_valid(m, sizeof(m) - 1), "mod97 missed %s", m);
			m[i + 1] = m[i];
			m[i] = t;
		}
	}
}
END_TEST

START_TEST(test_idrule_pattern_is_anchored)
{
	struct fmt_idrule *r = rule("pattern=SX1-[0-9]{4}-[0-9]{6}");
	struct idp_error err;
	ck_assert_int_eq(fmt_idrule_check(r, "SX1-2026-000001", 15, "serial", &err), IDP_OK);
	ck_assert_int_eq(fmt_idrule_check(r, "xSX1-2026-000001", 16, "serial", &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg,
	                 "serial: \"xSX1-2026-000001\" does not match the product's pattern");
	ck_assert_int_eq(fmt_idrule_check(r, "SX1-2026-0000012", 16, "serial", &err), IDP_E_FORMAT);
	/* An alternation cannot escape the anchors either. */
	fmt_idrule_free(r);
	r = rule("pattern=A|B");
	ck_assert_int_eq(fmt_idrule_check(r, "A", 1, "id", NULL), IDP_OK);
	ck_assert_int_eq(fmt_idrule_check(r, "AB", 2, "id", &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_idrule_check(r, "xB", 2, "id", &err), IDP_E_FORMAT);
	/* A value that is not an ID never reaches the pattern. */
	ck_assert_int_eq(fmt_idrule_check(r, "A B", 3, "id", &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "id: byte 0x20"));
	fmt_idrule_free(r);
}
END_TEST

START_TEST(test_idrule_pattern_and_check_together)
{
	struct fmt_idrule *r = rule("pattern=SN-[0-9]{6} check=div:7");
	struct idp_error err;
	ck_assert_str_eq(fmt_idrule_text(r), "pattern=SN-[0-9]{6} check=div:7");
	ck_assert_int_eq(fmt_idrule_check(r, "SN-000105", 9, "serial", NULL), IDP_OK);
	ck_assert_int_eq(fmt_idrule_check(r, "SN-000106", 9, "serial", &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "serial: \"SN-000106\" is not divisible by 7");
	fmt_idrule_free(r);
	r = rule("check=luhn");
	ck_assert_int_eq(fmt_idrule_check(r, "79927398710", 11, "serial", &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "serial: \"79927398710\" fails the luhn check");
	fmt_idrule_free(r);
}
END_TEST

START_TEST(test_idrule_refuses_bad_rules)
{
	static const struct {
		const char *spec, *msg;
	} bad[] = {
		{"", "rule: empty"},
		{"   ", "rule: empty"},
		{"pattern", "is not key=value"},
		{"colour=red", "\"colour\" is unknown or repeated"},
		{"check=luhn check=luhn", "\"check\" is unknown or repeated"},
		{"pattern=a pattern=b", "\"pattern\" is unknown or repeated"},
		{"check=crc", "check \"crc\" is not luhn, mod97-10 or div:N"},
		{"check=div:1", "is not luhn, mod97-10 or div:N"},
		{"check=div:07", "is not luhn, mod97-10 or div:N"},
		{"check=div:99999999999", "is not luhn, mod97-10 or div:N"},
		{"pattern=(", "rule: pattern \"(\""},
		{"pattern=", "rule: pattern is 0 bytes"},
		{"pattern=a\tb", "not printable ASCII"},
		{"pattern=E++", "stacked quantifiers at offset 2"},
		{"pattern=E+*", "stacked quantifiers"},
		{"pattern=a{2}+", "stacked quantifiers"},
		{"pattern=a*b*c*d*e*f*g*h*i*j*k*l*m*n*o*p*q*", "more than 16 quantifiers"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fmt_idrule *r = (struct fmt_idrule *)1;
		struct idp_error err;
		ck_assert_msg(fmt_idrule_parse(bad[i].spec, strlen(bad[i].spec), &r, &err) != IDP_OK,
		              "accepted %s", bad[i].spec);
		ck_assert_ptr_null(r);
		ck_assert_msg(strstr(err.msg, bad[i].msg) != NULL, "'%s' for '%s'", err.msg,
		              bad[i].spec);
	}
	char big[FMT_IDRULE_SPEC_MAX + 2];
	memset(big, 'a', sizeof(big));
	struct fmt_idrule *r = NULL;
	ck_assert_int_eq(fmt_idrule_parse(big, sizeof(big), &r, NULL), IDP_E_LIMIT);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("idrule");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_idrule_checksum_known_answers);
	tcase_add_test(tc, test_idrule_checksums_catch_typing_errors);
	tcase_add_test(tc, test_idrule_pattern_is_anchored);
	tcase_add_test(tc, test_idrule_pattern_and_check_together);
	tcase_add_test(tc, test_idrule_refuses_bad_rules);
	suite_add_tcase(s, tc);
	return s;
}
