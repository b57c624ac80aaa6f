/*
 * ui.h - idprovd's web UI under /ui/ (docs/administrator.md, "Web UI"): the
 * page's files, compiled in from server/ui/ (server/ui/embed.sh writes
 * srv_ui_assets), login, logout and the session's state, and the session
 * path of admin authentication (server/session.h) that the admin routes
 * take when a request carries no bearer credential.
 *
 * Every /ui/ answer carries a strict Content-Security-Policy (no inline
 * script or style, nothing from another origin, no framing), X-Frame-Options
 * DENY, X-Content-Type-Options nosniff and Referrer-Policy no-referrer.
 *
 * Thread-safety: as the handlers; the session table is locked inside.
 */
#ifndef IDP_SERVER_UI_H
#define IDP_SERVER_UI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/api.h"
#include "server/admin.h"
#include "server/httpd.h"
#include "server/session.h"

/* One file of the page, served at path with type. */
struct srv_ui_asset {
	const char *path; /* "/ui/app.js" */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

/* Generated from server/ui/ at build time (one entry per file). */
extern const struct srv_ui_asset srv_ui_assets[];
extern const size_t srv_ui_assets_n;

srv_handler_fn srv_ui_file;    /* GET /ui and /ui/<file> (/ui/ is index.html) */
srv_handler_fn srv_ui_login;   /* POST /ui/login {"credential"} */
srv_handler_fn srv_ui_logout;  /* POST /ui/logout (session + CSRF token) */
srv_handler_fn srv_ui_session; /* GET /ui/session: role and CSRF token */

/* The session path of admin authentication, for a request that has no
 * Authorization header. Returns 1 when req carries a live session allowed
 * to do what it asks (*who set to the session's credential), 0 when it
 * carries no session cookie (the caller goes on as without one), -1 when it
 * has been answered 401/403. */
int srv_ui_admin_session(struct srv_ctx *ctx, struct evhttp_request *req,
                         struct srv_admin_who *who);

/* The same check on a raw request head p[0..n), for the connection filter
 * before any body is read: 1 accepted, 0 no session cookie, -1 refused
 * with *code and msg[0..size) saying why. */
int srv_ui_head_session(const uint8_t *p, size_t n, enum fmt_api_err_code *code, char *msg,
                        size_t size);

#endif /* IDP_SERVER_UI_H */
