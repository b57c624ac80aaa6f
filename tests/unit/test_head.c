/*
 * test_head.c - server/head.h on memory buffers: where a head ends (LF and
 * CRLF), the fields that bound the body (path, Content-Length copies,
 * Transfer-Encoding, Authorization), and the refusals that keep the filter
 * and evhttp in step (NUL byte, bare CR, obs-fold, non-token names, absolute
 * targets, bodies on GET, Expect, keep-alive POST without a length). The
 * same refusals are tested over TLS in tests/integration/server/conn_smuggle.sh.
 */
#include <string.h>

#include "server/head.h"
#include "tests/unit/check_main.h"

/* Parse the whole head s (its length by strlen: test input only). */
static void parse(const char *s, struct srv_head *hi)
{
	srv_head_parse((const uint8_t *)s, strlen(s), hi);
}

/* The refusal of the whole head s, or NULL; *code the reason's code. */
static const char *refusal(const char *s, enum fmt_api_err_code *code)
{
	struct srv_head hi;
	parse(s, &hi);
	ck_assert_ptr_null(hi.bad);
	return srv_head_refusal((const uint8_t *)s, strlen(s), &hi, code);
}

START_TEST(test_srv_head_end_lf_crlf_and_partial)
{
	const char *crlf = "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
	ck_assert_uint_eq(srv_head_end((const uint8_t *)crlf, strlen(crlf)), strlen(crlf) - 4);
	const char *lf = "GET / HTTP/1.1\nHost: a\n\nBODY";
	ck_assert_uint_eq(srv_head_end((const uint8_t *)lf, strlen(lf)), strlen(lf) - 4);
	const char *part = "GET / HTTP/1.1\r\nHost: a\r\n\r";
	ck_assert_uint_eq(srv_head_end((const uint8_t *)part, strlen(part)), 0);
	ck_assert_uint_eq(srv_head_end((const uint8_t *)"", 0), 0);
}
END_TEST

START_TEST(test_srv_head_parse_fields)
{
	struct srv_head hi;
	parse("POST /v1/admin/import?x=1 HTTP/1.0\r\ncontent-LENGTH: 12 \r\n"
	      "Content-Length: 12\r\nAuthorization:  Bearer abc \t\r\n"
	      "Authorization: Bearer second\r\n\r\n",
	      &hi);
	ck_assert_ptr_null(hi.bad);
	ck_assert(hi.http10);
	ck_assert_uint_eq(hi.path_len, strlen("/v1/admin/import"));
	ck_assert_int_eq(memcmp(hi.path, "/v1/admin/import", hi.path_len), 0);
	ck_assert(hi.has_length);
	ck_assert_uint_eq(hi.length, 12);
	ck_assert(!hi.chunked);
	ck_assert_uint_eq(hi.auth_len, strlen("Bearer abc"));
	ck_assert_int_eq(memcmp(hi.auth, "Bearer abc", hi.auth_len), 0);
	parse("POST /v1/batches HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &hi);
	ck_assert_ptr_null(hi.bad);
	ck_assert(hi.chunked);
	ck_assert(!hi.http10);
	ck_assert(!hi.has_length);
}
END_TEST

START_TEST(test_srv_head_parse_refuses_smuggling)
{
	static const char *bad[] = {
	        /* Content-Length copies that differ, or are not digits. */
	        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	        "POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n",
	        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
	        /* Targets that are not paths. */
	        "GET http://x/v1/health HTTP/1.1\r\n\r\n",
	        "GET * HTTP/1.1\r\n\r\n",
	        "GET\r\n\r\n",
	};
	struct srv_head hi;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(bad[i], &hi);
		ck_assert_msg(hi.bad != NULL, "accepted %s", bad[i]);
	}
	/* A NUL byte hides what follows from evhttp. */
	const char nul[] = "GET / HTTP/1.1\r\n\0GET /v1/admin/flags HTTP/1.1\r\n\r\n";
	srv_head_parse((const uint8_t *)nul, sizeof(nul) - 1, &hi);
	ck_assert_ptr_nonnull(hi.bad);
}
END_TEST

START_TEST(test_srv_head_refusal_rules)
{
	enum fmt_api_err_code code = FMT_API_ERR_UNKNOWN;
	ck_assert_ptr_null(refusal("GET /v1/health HTTP/1.1\r\nHost: a\r\n\r\n", &code));
	ck_assert_ptr_null(refusal("POST /v1/nonce HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &code));
	ck_assert_ptr_null(refusal("POST /v1/nonce HTTP/1.1\r\nConnection: close\r\n\r\n", &code));
	ck_assert_ptr_null(refusal("POST /v1/nonce HTTP/1.1\r\nExpect: 100-Continue \r\n"
	                           "Content-Length: 0\r\n\r\n",
	                           &code));
	const char *bad[] = {
	        "GET /v1/health HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",     /* bare CR */
	        "GET /v1/health HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",     /* obs-fold */
	        "GET /v1/health HTTP/1.1\r\nHo st: a\r\n\r\n",          /* name not a token */
	        "GET /v1/health HTTP/1.1\r\n: a\r\n\r\n",               /* empty name */
	        "GET /v1/health HTTP/2.0\r\n\r\n",                      /* version */
	        "GET /v1/health\r\n\r\n",                               /* HTTP/0.9 */
	        "G(T /v1/health HTTP/1.1\r\n\r\n",                      /* method */
	        "GET /v1/health HTTP/1.1\r\nContent-Length: 3\r\n\r\n", /* body on GET */
	        "POST /v1/nonce HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		code = FMT_API_ERR_UNKNOWN;
		ck_assert_msg(refusal(bad[i], &code) != NULL, "accepted %s", bad[i]);
		ck_assert_int_eq(code, FMT_API_ERR_BAD_REQUEST);
	}
	ck_assert_ptr_nonnull(
	        refusal("POST /v1/nonce HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", &code));
	ck_assert_int_eq(code, FMT_API_ERR_LENGTH_REQUIRED);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("head");
	TCase *tc = tcase_create("head");
	tcase_add_test(tc, test_srv_head_end_lf_crlf_and_partial);
	tcase_add_test(tc, test_srv_head_parse_fields);
	tcase_add_test(tc, test_srv_head_parse_refuses_smuggling);
	tcase_add_test(tc, test_srv_head_refusal_rules);
	suite_add_tcase(s, tc);
	return s;
}
