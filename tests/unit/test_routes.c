/*
 * test_routes.c - server/routes.h: the table idprovd runs is consistent
 * (fits SRV_HTTP_ROUTES_MAX, no path+method twice, one authentication per
 * path, every /v1/admin/ path and /metrics need the admin credential,
 * /v1/batches a station certificate, the device API none), and the
 * lookups: exact paths only, 405 candidates, Allow, body limits.
 */
#include <string.h>

#include "server/routes.h"
#include "tests/unit/check_main.h"

START_TEST(test_srv_routes_table_consistent)
{
	size_t n = 0;
	const struct srv_route *r = srv_routes(&n);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_le(n, SRV_HTTP_ROUTES_MAX);
	for (size_t i = 0; i < n; i++) {
		ck_assert(r[i].fn != NULL);
		ck_assert_msg(r[i].path[0] == '/', "%s", r[i].path);
		if (strncmp(r[i].path, "/v1/admin/", 10) == 0 || strcmp(r[i].path, "/metrics") == 0)
			ck_assert_msg(r[i].auth == SRV_AUTH_ADMIN, "%s is not admin", r[i].path);
		for (size_t j = i + 1; j < n; j++) {
			if (strcmp(r[i].path, r[j].path) != 0)
				continue;
			ck_assert_msg(r[i].method != r[j].method, "%s twice", r[i].path);
			ck_assert_msg(r[i].auth == r[j].auth, "%s: two auth kinds", r[i].path);
		}
	}
	const char *open_paths[] = {"/v1/health", "/v1/nonce", "/v1/provision",
	                            "/v1/token/exchange", "/v1/token/renew"};
	for (size_t i = 0; i < sizeof(open_paths) / sizeof(open_paths[0]); i++) {
		const struct srv_route *f =
		        srv_route_find(r, n, open_paths[i], strlen(open_paths[i]), 0);
		ck_assert_ptr_nonnull(f);
		ck_assert_int_eq(srv_route_auth(f), SRV_AUTH_NONE);
	}
	const struct srv_route *b = srv_route_find(r, n, "/v1/batches", 11, EVHTTP_REQ_POST);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(srv_route_auth(b), SRV_AUTH_STATION);
}
END_TEST

static void noop(struct srv_ctx *ctx, struct evhttp_request *req)
{
	(void)ctx;
	(void)req;
}

static const struct srv_route demo[] = {
        {"/a", EVHTTP_REQ_GET, 0, noop, SRV_AUTH_NONE},
        {"/a", EVHTTP_REQ_POST, 7, noop, SRV_AUTH_NONE},
        {"/m", EVHTTP_REQ_POST, SRV_ROUTE_MANIFEST, noop, SRV_AUTH_STATION},
        {"/v1/admin/x", EVHTTP_REQ_GET, 0, noop, SRV_AUTH_NONE},
};
#define N_DEMO (sizeof(demo) / sizeof(demo[0]))

START_TEST(test_srv_route_find_allow_and_limits)
{
	/* Exact paths: no prefix, no trailing slash, no longer path. */
	ck_assert_ptr_eq(srv_route_find(demo, N_DEMO, "/a", 2, EVHTTP_REQ_POST), &demo[1]);
	ck_assert_ptr_eq(srv_route_find(demo, N_DEMO, "/a", 2, 0), &demo[0]);
	ck_assert_ptr_null(srv_route_find(demo, N_DEMO, "/a/", 3, 0));
	ck_assert_ptr_null(srv_route_find(demo, N_DEMO, "/", 1, 0));
	ck_assert_ptr_null(srv_route_find(demo, N_DEMO, "/ab", 3, 0));
	/* A method the path does not take: its first route (answered 405). */
	ck_assert_ptr_eq(srv_route_find(demo, N_DEMO, "/m", 2, EVHTTP_REQ_GET), &demo[2]);
	char allow[SRV_ROUTE_ALLOW_MAX];
	srv_route_allow(demo, N_DEMO, "/a", 2, allow);
	ck_assert_str_eq(allow, "GET, HEAD, POST");
	srv_route_allow(demo, N_DEMO, "/m", 2, allow);
	ck_assert_str_eq(allow, "POST");
	srv_route_allow(demo, N_DEMO, "/none", 5, allow);
	ck_assert_str_eq(allow, "");
	struct srv_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_body = 100;
	cfg.max_manifest = 5000;
	ck_assert_uint_eq(srv_route_max_body(&demo[0], &cfg), 100);
	ck_assert_uint_eq(srv_route_max_body(&demo[1], &cfg), 7);
	ck_assert_uint_eq(srv_route_max_body(&demo[2], &cfg), 5000);
	ck_assert_uint_eq(srv_route_max_body(NULL, &cfg), 100);
	/* Under /v1/admin/ a route is admin whatever the table says. */
	ck_assert_int_eq(srv_route_auth(&demo[3]), SRV_AUTH_ADMIN);
	ck_assert_int_eq(srv_route_auth(&demo[2]), SRV_AUTH_STATION);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("routes");
	TCase *tc = tcase_create("routes");
	tcase_add_test(tc, test_srv_routes_table_consistent);
	tcase_add_test(tc, test_srv_route_find_allow_and_limits);
	suite_add_tcase(s, tc);
	return s;
}
