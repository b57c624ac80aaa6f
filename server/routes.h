/*
 * routes.h - idprovd's route table: method + exact path -> handler, with
 * the body limit and the authentication the connection filter checks on
 * the request head before any body is read (server/conn.c), and how the
 * table is searched. Adding an endpoint is one line in routes.c.
 *
 * The table is static and read-only: any thread.
 */
#ifndef IDP_SERVER_ROUTES_H
#define IDP_SERVER_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include <event2/http.h>

#include "server/config.h"
#include "server/httpd.h"

#define SRV_ROUTE_MANIFEST  SIZE_MAX /* a route's max_body: the configured max-manifest */
#define SRV_ROUTE_ALLOW_MAX 32u      /* bytes of an Allow header value, NUL included */

/* Who may send a route a body, checked on the request head before any of
 * the body is read (the handler checks again). */
enum srv_route_auth {
	SRV_AUTH_NONE = 0,
	SRV_AUTH_ADMIN,   /* "Authorization: Bearer <admin credential>" (server/admin.h),
	                   * or a web UI session (server/ui.h) */
	SRV_AUTH_STATION, /* a client certificate verified against station-ca */
};

struct srv_route {
	const char *path;            /* exact path, e.g. "/v1/health" */
	enum evhttp_cmd_type method; /* EVHTTP_REQ_GET, EVHTTP_REQ_POST, ... */
	size_t max_body;             /* 0: the configured max-body */
	srv_handler_fn *fn;
	enum srv_route_auth auth; /* the same for every route of one path; routes
	                           * under /v1/admin/ are always SRV_AUTH_ADMIN */
};

/* idprovd's routes, their count in *n. Static: valid for the whole run. */
const struct srv_route *srv_routes(size_t *n);

/* The route of path[0..len) for method (0: the first of any method); when
 * no route of that path has the method, the first of the path (to be
 * answered 405); NULL when no route has the path. */
const struct srv_route *srv_route_find(const struct srv_route *routes, size_t n, const char *path,
                                       size_t len, enum evhttp_cmd_type method);

/* The methods path[0..len) takes, for an Allow header ("" when none). */
void srv_route_allow(const struct srv_route *routes, size_t n, const char *path, size_t len,
                     char out[static SRV_ROUTE_ALLOW_MAX]);

/* The largest body r takes under cfg (r NULL: the configured max-body). */
size_t srv_route_max_body(const struct srv_route *r, const struct srv_config *cfg);

/* The authentication r needs (SRV_AUTH_ADMIN for any path under /v1/admin/). */
enum srv_route_auth srv_route_auth(const struct srv_route *r);

#endif /* IDP_SERVER_ROUTES_H */
