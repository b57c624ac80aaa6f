/*
 * test_json.c - strict JSON: duplicate keys, UTF-8, depth, NUL, trailing data,
 * control bytes, non-integer number spellings and typed getters are refused or
 * accepted as json.h says.
 */
#include <stdio.h>
#include <string.h>

#include "formats/b64.h"
#include "formats/buf.h"
#include "formats/json.h"
#include "tests/unit/check_main.h"

static enum idp_err parse(const char *s, struct idp_error *err)
{
	cJSON *j = NULL;
	enum idp_err rc = fmt_json_parse((const uint8_t *)s, strlen(s), FMT_JSON_DEPTH_MAX, &j, err);
	if (rc == IDP_OK)
		ck_assert_ptr_nonnull(j);
	else
		ck_assert_ptr_null(j);
	cJSON_Delete(j);
	return rc;
}

START_TEST(test_json_parse_refusals)
{
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{"{\"a\":1,\"a\":2}", "duplicate key \"a\""},
		{"{\"x\":{\"b\":1,\"c\":2,\"b\":3}}", "duplicate key \"b\""},
		{"{\"a\":\"\xc3\x28\"}", "UTF-8"},
		{"{\"a\":\"\xed\xa0\x80\"}", "UTF-8"},  /* encoded surrogate */
		{"{\"a\":\"\xc0\xaf\"}", "UTF-8"},      /* overlong '/' */
		{"{\"a\":\"\\u0000\"}", "\\u0000"},
		{"{\"a\":1} x", "trailing data"},
		{"{\"a\":1}{}", "trailing data"},
		{"{\"a\":", "syntax error"},
		{"", "syntax error"},
		{"[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]", "nested deeper"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct idp_error err;
		ck_assert_msg(parse(bad[i].in, &err) != IDP_OK, "accepted %s", bad[i].in);
		ck_assert_msg(strstr(err.msg, bad[i].msg) != NULL, "'%s' for %s", err.msg, bad[i].in);
	}
	ck_assert_int_eq(parse(" {\"a\":[1,2,{\"b\":\"\xc3\xa9\"}]}\n", NULL), IDP_OK);
}
END_TEST

START_TEST(test_json_getters)
{
	const char *doc = "{\"s\":\"abc\",\"e\":\"\",\"i\":42,\"f\":\"1\","
	                  "\"big\":9007199254740992,\"b\":true,\"o\":{},\"n\":null}";
	cJSON *j = NULL;
	ck_assert_int_eq(fmt_json_parse((const uint8_t *)doc, strlen(doc), 4, &j, NULL), IDP_OK);
	struct idp_error err;
	const char *s;
	size_t len;
	ck_assert_int_eq(fmt_json_get_string(j, "s", true, false, 3, &s, &len, NULL), IDP_OK);
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(fmt_json_get_string(j, "s", true, false, 2, &s, &len, &err), IDP_E_LIMIT);
	ck_assert_str_eq(err.msg, "s: longer than 2 bytes");
	ck_assert_int_eq(fmt_json_get_string(j, "e", true, false, 9, &s, &len, &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_json_get_string(j, "e", true, true, 9, &s, &len, NULL), IDP_OK);
	ck_assert_int_eq(fmt_json_get_string(j, "i", true, false, 9, &s, &len, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "i: expected a string");
	ck_assert_int_eq(fmt_json_get_string(j, "zz", true, false, 9, &s, &len, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "zz: missing");
	ck_assert_int_eq(fmt_json_get_string(j, "zz", false, false, 9, &s, &len, NULL), IDP_OK);
	ck_assert_ptr_null(s);

	int64_t v = 0;
	bool present;
	ck_assert_int_eq(fmt_json_get_int(j, "i", true, 0, 100, &v, &present, NULL), IDP_OK);
	ck_assert(present && v == 42);
	ck_assert_int_eq(fmt_json_get_int(j, "i", true, 0, 41, &v, NULL, &err), IDP_E_LIMIT);
	ck_assert_int_eq(fmt_json_get_int(j, "f", true, 0, 41, &v, NULL, &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_json_get_int(j, "big", true, 0, 41, &v, NULL, &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_json_get_int(j, "n", true, 0, 41, &v, NULL, &err), IDP_E_FORMAT);
	bool b = false;
	ck_assert_int_eq(fmt_json_get_bool(j, "b", true, &b, NULL, NULL), IDP_OK);
	ck_assert(b);
	const cJSON *o;
	ck_assert_int_eq(fmt_json_get_object(j, "o", true, &o, NULL), IDP_OK);
	ck_assert_int_eq(fmt_json_get_object(j, "s", true, &o, &err), IDP_E_FORMAT);

	static const char *const allowed[] = {"s", "e", "i", "f", "big", "b", "o"};
	ck_assert_int_eq(fmt_json_only_keys(j, allowed, 7, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "unknown field \"n\"");
	cJSON_Delete(j);
}
END_TEST

/* Numbers: one spelling per integer. cJSON reads every one of these refused
 * spellings as an integral double, so without the lexical check a token's
 * "exp":1.8e9 or a PoP's "ts":1.7e9 would pass as integers that another
 * parser reads differently (or refuses). */
START_TEST(test_json_numbers_plain_integers_only)
{
	static const char *const bad[] = {
	        "{\"a\":1e3}",   "{\"a\":1E3}",  "{\"a\":1.0}",  "{\"a\":1.5}",
	        "{\"a\":01}",    "{\"a\":-0}",   "{\"a\":00}",   "{\"a\":-01}",
	        "{\"a\":1e+3}",  "{\"a\":10e-1}", "[1,2.0]",      "{\"a\":-}",
	        "{\"a\":9007199254740991.4}", "{\"a\":[0,-0.0]}", "1800000000.0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct idp_error err;
		ck_assert_msg(parse(bad[i], &err) == IDP_E_FORMAT, "accepted %s", bad[i]);
		ck_assert_msg(strstr(err.msg, "not a plain integer") != NULL, "'%s' for %s",
		              err.msg, bad[i]);
	}
	static const char *const good[] = {
	        "0", "-1", "{\"a\":0}", "{\"a\":-9007199254740991}", "[1,-2,30,400]",
	        "{\"a\":true,\"b\":false,\"c\":null,\"d\":\"1e3 1.0 -0\"}",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(parse(good[i], NULL) == IDP_OK, "refused %s", good[i]);
}
END_TEST

/* Control bytes: cJSON takes any byte up to 0x20 as whitespace and raw
 * control bytes inside strings; RFC 8259 allows neither. */
START_TEST(test_json_control_bytes_refused)
{
	static const char *const bad[] = {
	        "{\"a\":\"x\x01y\"}", "{\"a\":\"x\ty\"}", "{\"a\":\"x\ny\"}",
	        "{\x0c\"a\":1}",        "{\"a\":1}\x0b",      "\x1f{}",
	        "{\"a\x1b\":1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct idp_error err;
		ck_assert_msg(parse(bad[i], &err) == IDP_E_FORMAT, "accepted #%zu", i);
		ck_assert_msg(strstr(err.msg, "control byte") != NULL, "'%s' for #%zu", err.msg, i);
	}
	ck_assert_int_eq(parse(" \t\r\n{ \"a\" :\t\"\\t\\n\\u0001\" }\r\n", NULL), IDP_OK);
}
END_TEST

START_TEST(test_json_quote_round_trip)
{
	const char in[] = "a\"b\\c\n\x01 \xc3\xa9/";
	char out[64];
	size_t n = fmt_json_quote(in, sizeof(in) - 1, out);
	ck_assert_uint_le(n, fmt_json_quoted_max(sizeof(in) - 1));
	ck_assert_mem_eq(out, "\"a\\\"b\\\\c\\n\\u0001 \xc3\xa9/\"", n);
	char doc[80];
	int d = snprintf(doc, sizeof(doc), "{\"k\":%.*s}", (int)n, out);
	cJSON *j = NULL;
	ck_assert_int_eq(fmt_json_parse((const uint8_t *)doc, (size_t)d, 2, &j, NULL), IDP_OK);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "k")->valuestring, in);
	cJSON_Delete(j);
}
END_TEST

/* The writer: member order as written, commas only between members, strings
 * escaped as fmt_json_quote, long values in slices that join seamlessly, and
 * the result parses back to the same values. */
START_TEST(test_json_put_writer)
{
	char big[700]; /* several slices, with escapes across their edges */
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = i % 127 == 0 ? '"' : (char)('a' + i % 26);
	big[sizeof(big) - 1] = '\0';
	uint8_t bin[400];
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)(i * 7);
	struct fmt_buf b;
	fmt_buf_init(&b, 1 << 16, 0);
	fmt_buf_add_str(&b, "{");
	fmt_json_put_str(&b, "s", "x\ny");
	fmt_json_put_int(&b, "i", -42);
	fmt_json_put_bool(&b, "t", true);
	fmt_json_put_key(&b, "o");
	fmt_buf_add_str(&b, "{");
	fmt_json_put_bool(&b, "f", false);
	fmt_buf_add_str(&b, "}");
	fmt_json_put_str(&b, "big", big);
	fmt_json_put_b64(&b, "bin", bin, sizeof(bin));
	fmt_buf_add_str(&b, "}");
	ck_assert_int_eq(fmt_buf_check(&b, "doc", NULL), IDP_OK);
	ck_assert_mem_eq(b.p, "{\"s\":\"x\\ny\",\"i\":-42,\"t\":true,\"o\":{\"f\":false},\"big\":\"",
	                 47);
	cJSON *j = NULL;
	ck_assert_int_eq(fmt_json_parse(b.p, b.len, 2, &j, NULL), IDP_OK);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "big")->valuestring, big);
	char b64[600];
	fmt_b64_encode(FMT_B64_STD, bin, sizeof(bin), b64);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "bin")->valuestring, b64);
	cJSON_Delete(j);
	fmt_buf_free(&b);

	/* Exactly as long as the escaped text: fits, though the worst case
	 * (six bytes an input byte) would not. */
	char out[8];
	fmt_buf_init_fixed(&b, out, sizeof(out), sizeof(out) - 1, 0);
	fmt_json_put_quoted(&b, "a\"bc", 4);
	ck_assert_int_eq(fmt_buf_status(&b), IDP_OK);
	ck_assert_str_eq(out, "\"a\\\"bc\"");
	fmt_json_put_quoted(&b, "", 0);
	ck_assert_int_eq(fmt_buf_status(&b), IDP_E_LIMIT);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_json_parse_refusals);
	tcase_add_test(tc, test_json_getters);
	tcase_add_test(tc, test_json_numbers_plain_integers_only);
	tcase_add_test(tc, test_json_control_bytes_refused);
	tcase_add_test(tc, test_json_quote_round_trip);
	tcase_add_test(tc, test_json_put_writer);
	suite_add_tcase(s, tc);
	return s;
}
