/*
 * test_session.c - server/session: a session lets its cookie read and, with
 * its CSRF token and from its own origin, change; a forged, truncated,
 * doubled or other session's cookie, a missing or other session's CSRF
 * token, another origin and a viewer's change are refused; idle and absolute
 * expiry, logout and eviction end sessions; the raw-head reader finds the
 * same headers evhttp would. Also: every file of the web UI has its route.
 */
#include <stdio.h>
#include <string.h>

#include "server/routes.h"
#include "server/session.h"
#include "server/ui.h"
#include "tests/unit/check_main.h"

#define T0 1000000

struct sess {
	char id[SRV_SESSION_HEX + 1];
	char csrf[SRV_SESSION_HEX + 1];
	char cookie[256];
};

static void login(struct sess *s, enum srv_role role, int64_t now)
{
	ck_assert_int_eq(srv_session_new(role, role == SRV_ROLE_ADMIN ? "admin" : "ops-viewer", now,
	                                 s->id, s->csrf, NULL),
	                 IDP_OK);
	ck_assert_uint_eq(strlen(s->id), SRV_SESSION_HEX);
	(void)snprintf(s->cookie, sizeof(s->cookie), "theme=dark; " SRV_SESSION_COOKIE "=%s; x=1",
	               s->id);
}

/* The verdict for cookie + csrf (NULL: absent) on a GET or POST at now. */
static enum srv_session_verdict check(const char *cookie, const char *csrf, const char *origin,
                                      bool unsafe, int64_t now, enum srv_role *role)
{
	struct srv_session_creds c = {.cookie = cookie,
	                              .cookie_len = cookie != NULL ? strlen(cookie) : 0,
	                              .csrf = csrf,
	                              .csrf_len = csrf != NULL ? strlen(csrf) : 0,
	                              .origin = origin,
	                              .origin_len = origin != NULL ? strlen(origin) : 0,
	                              .host = "127.0.0.1:8443",
	                              .host_len = 14,
	                              .unsafe = unsafe};
	struct srv_session_info si;
	enum srv_session_verdict v = srv_session_check(&c, now, &si);
	if (role != NULL)
		*role = si.role;
	return v;
}

START_TEST(test_session_check_allows)
{
	struct sess a;
	enum srv_role role = SRV_ROLE_NONE;
	login(&a, SRV_ROLE_ADMIN, T0);
	ck_assert_int_eq(check(a.cookie, NULL, NULL, false, T0 + 1, &role), SRV_SESSION_OK);
	ck_assert_int_eq(role, SRV_ROLE_ADMIN);
	ck_assert_int_eq(check(a.cookie, a.csrf, NULL, true, T0 + 2, NULL), SRV_SESSION_OK);
	ck_assert_int_eq(check(a.cookie, a.csrf, "https://127.0.0.1:8443", true, T0 + 3, NULL),
	                 SRV_SESSION_OK);
	struct srv_session_creds c = {.cookie = a.cookie, .cookie_len = strlen(a.cookie)};
	struct srv_session_info si;
	ck_assert_int_eq(srv_session_check(&c, T0 + 4, &si), SRV_SESSION_OK);
	ck_assert_str_eq(si.csrf, a.csrf);
	ck_assert_str_eq(si.name, "admin");
	/* Nothing about a session leaks out for a cookie that is not one. */
	c.cookie = SRV_SESSION_COOKIE "=00";
	c.cookie_len = strlen(c.cookie);
	ck_assert_int_eq(srv_session_check(&c, T0 + 4, &si), SRV_SESSION_UNKNOWN);
	ck_assert_int_eq(si.role, SRV_ROLE_NONE);
	ck_assert_str_eq(si.csrf, "");
	ck_assert_str_eq(si.name, "");
}
END_TEST

START_TEST(test_session_check_refusals)
{
	struct sess a, b;
	login(&a, SRV_ROLE_ADMIN, T0);
	login(&b, SRV_ROLE_ADMIN, T0);
	ck_assert_str_ne(a.id, b.id);
	ck_assert_str_ne(a.csrf, b.csrf);
	ck_assert_int_eq(check(NULL, a.csrf, NULL, true, T0, NULL), SRV_SESSION_NO_COOKIE);
	ck_assert_int_eq(check("theme=dark", a.csrf, NULL, true, T0, NULL), SRV_SESSION_NO_COOKIE);
	/* Forged, truncated, extended and doubled cookies. */
	char forged[256];
	(void)snprintf(forged, sizeof(forged), SRV_SESSION_COOKIE "=%s", a.id);
	forged[sizeof(SRV_SESSION_COOKIE)] ^= 1;
	ck_assert_int_eq(check(forged, a.csrf, NULL, false, T0, NULL), SRV_SESSION_UNKNOWN);
	(void)snprintf(forged, sizeof(forged), SRV_SESSION_COOKIE "=%.63s", a.id);
	ck_assert_int_eq(check(forged, NULL, NULL, false, T0, NULL), SRV_SESSION_UNKNOWN);
	(void)snprintf(forged, sizeof(forged), SRV_SESSION_COOKIE "=%s0", a.id);
	ck_assert_int_eq(check(forged, NULL, NULL, false, T0, NULL), SRV_SESSION_UNKNOWN);
	ck_assert_int_eq(check(SRV_SESSION_COOKIE "=", NULL, NULL, false, T0, NULL),
	                 SRV_SESSION_UNKNOWN);
	(void)snprintf(forged, sizeof(forged), SRV_SESSION_COOKIE "=%s; " SRV_SESSION_COOKIE "=%s",
	               a.id, b.id);
	ck_assert_int_eq(check(forged, a.csrf, NULL, false, T0, NULL), SRV_SESSION_UNKNOWN);
	/* The CSRF token: absent, another session's, truncated. */
	ck_assert_int_eq(check(a.cookie, NULL, NULL, true, T0, NULL), SRV_SESSION_CSRF);
	ck_assert_int_eq(check(a.cookie, b.csrf, NULL, true, T0, NULL), SRV_SESSION_CSRF);
	char shorter[SRV_SESSION_HEX];
	memcpy(shorter, a.csrf, sizeof(shorter) - 1);
	shorter[sizeof(shorter) - 1] = '\0';
	ck_assert_int_eq(check(a.cookie, shorter, NULL, true, T0, NULL), SRV_SESSION_CSRF);
	ck_assert_int_eq(check(a.cookie, "", NULL, true, T0, NULL), SRV_SESSION_CSRF);
	/* Another origin, even with the right token. */
	ck_assert_int_eq(check(a.cookie, a.csrf, "https://evil.example", true, T0, NULL),
	                 SRV_SESSION_ORIGIN);
	ck_assert_int_eq(check(a.cookie, a.csrf, "null", true, T0, NULL), SRV_SESSION_ORIGIN);
	ck_assert_int_eq(check(a.cookie, a.csrf, "http://127.0.0.1:8443", true, T0, NULL),
	                 SRV_SESSION_ORIGIN);
	ck_assert_int_eq(check(a.cookie, a.csrf, "https://127.0.0.1:8443.evil", true, T0, NULL),
	                 SRV_SESSION_ORIGIN);
	/* A viewer reads but does not change. */
	struct sess v;
	enum srv_role role = SRV_ROLE_NONE;
	login(&v, SRV_ROLE_VIEWER, T0);
	ck_assert_int_eq(check(v.cookie, NULL, NULL, false, T0, &role), SRV_SESSION_OK);
	ck_assert_int_eq(role, SRV_ROLE_VIEWER);
	ck_assert_int_eq(check(v.cookie, v.csrf, NULL, true, T0, NULL), SRV_SESSION_ROLE);
	ck_assert_int_ne(srv_session_new(SRV_ROLE_NONE, "admin", T0, a.id, a.csrf, NULL), IDP_OK);
	ck_assert_int_ne(srv_session_new(SRV_ROLE_ADMIN, "", T0, a.id, a.csrf, NULL), IDP_OK);
	ck_assert_int_ne(srv_session_new(SRV_ROLE_ADMIN, NULL, T0, a.id, a.csrf, NULL), IDP_OK);
	ck_assert_int_ne(srv_session_new(SRV_ROLE_ADMIN, "a-name-of-thirty-three-bytes-xxxx", T0,
	                                 a.id, a.csrf, NULL),
	                 IDP_OK);
}
END_TEST

START_TEST(test_session_expiry_and_logout)
{
	struct sess a;
	login(&a, SRV_ROLE_ADMIN, T0);
	/* Idle: each request restarts the idle time... */
	int64_t t = T0;
	while (t + SRV_SESSION_IDLE - 1 < T0 + SRV_SESSION_ABSOLUTE - 1) {
		t += SRV_SESSION_IDLE - 1;
		ck_assert_int_eq(check(a.cookie, NULL, NULL, false, t, NULL), SRV_SESSION_OK);
	}
	/* ...but not beyond the absolute lifetime. */
	ck_assert_int_eq(check(a.cookie, NULL, NULL, false, T0 + SRV_SESSION_ABSOLUTE, NULL),
	                 SRV_SESSION_UNKNOWN);
	login(&a, SRV_ROLE_ADMIN, T0);
	ck_assert_int_eq(check(a.cookie, NULL, NULL, false, T0 + SRV_SESSION_IDLE, NULL),
	                 SRV_SESSION_UNKNOWN);
	/* A refused request does not keep a session alive. */
	login(&a, SRV_ROLE_ADMIN, T0);
	ck_assert_int_eq(check(a.cookie, NULL, NULL, true, T0 + SRV_SESSION_IDLE - 1, NULL),
	                 SRV_SESSION_CSRF);
	ck_assert_int_eq(check(a.cookie, NULL, NULL, false, T0 + SRV_SESSION_IDLE, NULL),
	                 SRV_SESSION_UNKNOWN);
	login(&a, SRV_ROLE_ADMIN, T0);
	size_t before = srv_session_count(T0);
	ck_assert(srv_session_end(a.cookie, strlen(a.cookie)));
	ck_assert_uint_eq(srv_session_count(T0), before - 1);
	ck_assert_int_eq(check(a.cookie, a.csrf, NULL, true, T0, NULL), SRV_SESSION_UNKNOWN);
	ck_assert(!srv_session_end(a.cookie, strlen(a.cookie)));
	ck_assert(!srv_session_end("x=1", 3));
}
END_TEST

START_TEST(test_session_table_full)
{
	struct sess first, s;
	login(&first, SRV_ROLE_ADMIN, T0);
	for (unsigned i = 0; i < SRV_SESSION_MAX - 1; i++)
		login(&s, SRV_ROLE_ADMIN, T0 + 1);
	ck_assert_uint_eq(srv_session_count(T0 + 1), SRV_SESSION_MAX);
	ck_assert_int_eq(check(first.cookie, NULL, NULL, false, T0 + 2, NULL), SRV_SESSION_OK);
	/* first was used last: the next login ends another one, not first. */
	login(&s, SRV_ROLE_ADMIN, T0 + 3);
	ck_assert_uint_eq(srv_session_count(T0 + 3), SRV_SESSION_MAX);
	ck_assert_int_eq(check(first.cookie, NULL, NULL, false, T0 + 3, NULL), SRV_SESSION_OK);
	ck_assert_int_eq(check(s.cookie, NULL, NULL, false, T0 + 3, NULL), SRV_SESSION_OK);
}
END_TEST

START_TEST(test_session_creds_from_head)
{
	static const char head[] = "POST /v1/admin/devices/approve HTTP/1.1\r\n"
	                           "Host: 127.0.0.1:8443\r\n"
	                           "cookie:  a=1; b=2 \r\n"
	                           "Cookie: second=1\r\n"
	                           "X-CSRF-Token: abc\r\n"
	                           "Origin: https://127.0.0.1:8443\r\n"
	                           "\r\n";
	struct srv_session_creds c;
	srv_session_creds_from_head((const uint8_t *)head, sizeof(head) - 1, &c);
	ck_assert(c.unsafe);
	ck_assert_uint_eq(c.cookie_len, 8);
	ck_assert_int_eq(memcmp(c.cookie, "a=1; b=2", 8), 0);
	ck_assert_uint_eq(c.csrf_len, 3);
	ck_assert_uint_eq(c.host_len, 14);
	ck_assert(srv_session_origin_ok(&c));
	static const char get[] = "GET /v1/admin/devices HTTP/1.1\r\nHost: h\r\n\r\n";
	srv_session_creds_from_head((const uint8_t *)get, sizeof(get) - 1, &c);
	ck_assert(!c.unsafe);
	ck_assert_ptr_null(c.cookie);
	ck_assert_ptr_null(c.origin);
	static const char head_m[] = "HEAD /ui/ HTTP/1.1\n\n";
	srv_session_creds_from_head((const uint8_t *)head_m, sizeof(head_m) - 1, &c);
	ck_assert(!c.unsafe);
	static const char get_lower[] = "get /ui/ HTTP/1.1\n\n"; /* not GET: unsafe */
	srv_session_creds_from_head((const uint8_t *)get_lower, sizeof(get_lower) - 1, &c);
	ck_assert(c.unsafe);
}
END_TEST

START_TEST(test_ui_every_file_routed)
{
	size_t n = 0;
	const struct srv_route *r = srv_routes(&n);
	ck_assert_uint_gt(srv_ui_assets_n, 0);
	for (size_t i = 0; i < srv_ui_assets_n; i++) {
		size_t j = 0;
		while (j < n && strcmp(r[j].path, srv_ui_assets[i].path) != 0)
			j++;
		ck_assert_msg(j < n, "%s has no route in server/routes.c", srv_ui_assets[i].path);
		ck_assert(r[j].fn == srv_ui_file);
	}
	/* and every route to srv_ui_file names a file (or the index) */
	for (size_t j = 0; j < n; j++) {
		if (r[j].fn != srv_ui_file || strcmp(r[j].path, "/ui") == 0 ||
		    strcmp(r[j].path, "/ui/") == 0)
			continue;
		size_t i = 0;
		while (i < srv_ui_assets_n && strcmp(r[j].path, srv_ui_assets[i].path) != 0)
			i++;
		ck_assert_msg(i < srv_ui_assets_n, "route %s names no file of server/ui/", r[j].path);
	}
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("session");
	TCase *tc = tcase_create("session");
	tcase_add_test(tc, test_session_check_allows);
	tcase_add_test(tc, test_session_check_refusals);
	tcase_add_test(tc, test_session_expiry_and_logout);
	tcase_add_test(tc, test_session_table_full);
	tcase_add_test(tc, test_session_creds_from_head);
	tcase_add_test(tc, test_ui_every_file_routed);
	suite_add_tcase(s, tc);
	return s;
}
