/*
 * ui.c - see ui.h. The page itself only calls the admin API (/v1/admin/...,
 * GET /metrics) with its session cookie and CSRF token; this file serves its
 * files and runs the session's life: login, state, logout.
 */
#include "server/ui.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "formats/json.h"
#include "server/handlers.h"
#include "formats/io/log.h"

#define UI_JSON_DEPTH 2u
#define UI_CREDENTIAL_MAX 256u /* as SRV_ADMIN_AUTH_MAX less "Bearer " */

/* No script, style, image or connection from anywhere but idprovd itself,
 * nothing inline, no plugin, no framing, forms only to idprovd. */
#define UI_CSP                                                                                     \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "             \
	"frame-ancestors 'none'"

static void ui_headers(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	(void)evhttp_add_header(h, "Content-Security-Policy", UI_CSP);
	(void)evhttp_add_header(h, "X-Frame-Options", "DENY");
	(void)evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	(void)evhttp_add_header(h, "Cross-Origin-Opener-Policy", "same-origin");
	/* Another site cannot load the page's scripts into its own page. */
	(void)evhttp_add_header(h, "Cross-Origin-Resource-Policy", "same-origin");
}

/* What req presents, read from its evhttp headers. */
static void creds_of(struct evhttp_request *req, struct srv_session_creds *c)
{
	const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	memset(c, 0, sizeof(*c));
	c->cookie = evhttp_find_header(in, "Cookie");
	c->cookie_len = c->cookie != NULL ? strlen(c->cookie) : 0;
	c->csrf = evhttp_find_header(in, SRV_SESSION_CSRF_HDR);
	c->csrf_len = c->csrf != NULL ? strlen(c->csrf) : 0;
	c->origin = evhttp_find_header(in, "Origin");
	c->origin_len = c->origin != NULL ? strlen(c->origin) : 0;
	c->host = evhttp_find_header(in, "Host");
	c->host_len = c->host != NULL ? strlen(c->host) : 0;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	c->unsafe = m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD;
}

static enum fmt_api_err_code verdict_code(enum srv_session_verdict v)
{
	return v == SRV_SESSION_UNKNOWN || v == SRV_SESSION_NO_COOKIE ? FMT_API_ERR_UNAUTHORIZED
	                                                              : FMT_API_ERR_FORBIDDEN;
}

/* Answer a refused session check (and log it). */
static void refuse(struct srv_ctx *ctx, struct evhttp_request *req, enum srv_session_verdict v)
{
	char peer[64];
	fio_log(FIO_LOG_WARN, "ui.refused", "loop=%u peer=%s why=\"%s\"", ctx->loop,
	        srv_http_peer(req, peer), srv_session_verdict_text(v));
	srv_http_error(req, verdict_code(v), "%s", srv_session_verdict_text(v));
}

int srv_ui_admin_session(struct srv_ctx *ctx, struct evhttp_request *req,
                         struct srv_admin_who *who)
{
	struct srv_session_creds c;
	struct srv_session_info si;
	creds_of(req, &c);
	memset(who, 0, sizeof(*who));
	enum srv_session_verdict v = srv_session_check(&c, (int64_t)time(NULL), &si);
	OPENSSL_cleanse(si.csrf, sizeof(si.csrf));
	who->role = si.role;
	(void)snprintf(who->name, sizeof(who->name), "%s", si.name);
	if (v == SRV_SESSION_NO_COOKIE)
		return 0;
	if (v != SRV_SESSION_OK) {
		refuse(ctx, req, v);
		return -1;
	}
	/* A named credential revoked since the login ends its sessions too. */
	if (strcmp(who->name, SRV_ADMIN_BUILTIN) != 0) {
		struct srv_credential cr = {.role = SRV_ROLE_NONE};
		struct idp_error err = {0};
		enum idp_err rc = srv_store_credential_by_name(ctx->store, who->name, &cr, &err);
		OPENSSL_cleanse(cr.hash, sizeof(cr.hash));
		if (rc != IDP_OK || cr.role != who->role) {
			(void)srv_session_end(c.cookie, c.cookie_len);
			refuse(ctx, req, SRV_SESSION_UNKNOWN);
			return -1;
		}
	}
	return 1;
}

int srv_ui_head_session(const uint8_t *p, size_t n, enum fmt_api_err_code *code, char *msg,
                        size_t size)
{
	struct srv_session_creds c;
	struct srv_session_info si;
	srv_session_creds_from_head(p, n, &c);
	enum srv_session_verdict v = srv_session_check(&c, (int64_t)time(NULL), &si);
	OPENSSL_cleanse(si.csrf, sizeof(si.csrf));
	if (v == SRV_SESSION_NO_COOKIE)
		return 0;
	if (v == SRV_SESSION_OK)
		return 1;
	*code = verdict_code(v);
	(void)snprintf(msg, size, "%s", srv_session_verdict_text(v));
	fio_log(FIO_LOG_WARN, "ui.refused", "phase=head why=\"%s\"", srv_session_verdict_text(v));
	return -1;
}

/* ---------------------------------------------------------------- files */

void srv_ui_file(struct srv_ctx *ctx, struct evhttp_request *req)
{
	(void)ctx;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path == NULL || strcmp(path, "/ui") == 0 || strcmp(path, "/ui/") == 0)
		path = "/ui/index.html";
	for (size_t i = 0; i < srv_ui_assets_n; i++) {
		if (strcmp(srv_ui_assets[i].path, path) != 0)
			continue;
		ui_headers(req);
		srv_http_reply(req, 200, srv_ui_assets[i].type, srv_ui_assets[i].data,
		               srv_ui_assets[i].len);
		return;
	}
	ui_headers(req);
	srv_http_error(req, FMT_API_ERR_NOT_FOUND, "no such file of the web UI");
}

/* ---------------------------------------------------------------- session */

/* Answer {"name", "role", "csrf", "idle_timeout"} with status 200. */
static void send_session(struct evhttp_request *req, const struct srv_session_info *si)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || cJSON_AddStringToObject(o, "name", si->name) == NULL ||
	    cJSON_AddStringToObject(o, "role", srv_role_name(si->role)) == NULL ||
	    cJSON_AddStringToObject(o, "csrf", si->csrf) == NULL ||
	    cJSON_AddNumberToObject(o, "idle_timeout", SRV_SESSION_IDLE) == NULL)
		srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
	else
		srv_http_json(req, 200, o);
	cJSON_Delete(o);
}

/* The name and role of credential s[0..len) in si (role SRV_ROLE_NONE
 * when it is none): admin.token ("admin", role admin) or a named
 * credential of the store, as a bearer would be identified (server/admin.h). */
static enum idp_err credential_role(struct srv_ctx *ctx, const char *s, size_t len,
                                    struct srv_session_info *si, struct idp_error *err)
{
	memset(si, 0, sizeof(*si));
	char bearer[SRV_ADMIN_AUTH_MAX + 1];
	int n = snprintf(bearer, sizeof(bearer), "Bearer %.*s", (int)len, s);
	if (n < 0 || (size_t)n >= sizeof(bearer))
		return IDP_OK; /* longer than any credential */
	struct srv_admin_who who;
	enum idp_err rc =
	        srv_admin_identify(ctx->state, ctx->store, bearer, (size_t)n, NULL, &who, err);
	OPENSSL_cleanse(bearer, sizeof(bearer));
	if (rc == IDP_OK && who.role != SRV_ROLE_NONE) {
		si->role = who.role;
		(void)snprintf(si->name, sizeof(si->name), "%s", who.name);
	}
	return rc;
}

/* POST /ui/login {"credential": "<admin credential>"}: a new session, its
 * cookie (HttpOnly, Secure, SameSite=Strict, Path=/, no Max-Age: gone
 * when the browser closes) and its CSRF token in the answer. */
void srv_ui_login(struct srv_ctx *ctx, struct evhttp_request *req)
{
	ui_headers(req);
	struct srv_session_creds c;
	creds_of(req, &c);
	char peer[64];
	(void)srv_http_peer(req, peer);
	/* A login from another site's page would plant the attacker's session. */
	if (!srv_session_origin_ok(&c)) {
		fio_log(FIO_LOG_WARN, "ui.refused", "loop=%u peer=%s why=\"login from another origin\"",
		        ctx->loop, peer);
		srv_http_error(req, FMT_API_ERR_FORBIDDEN, "%s",
		               srv_session_verdict_text(SRV_SESSION_ORIGIN));
		return;
	}
	const uint8_t *body = NULL;
	size_t len = 0;
	srv_http_body(req, &body, &len);
	static const char *const keys[] = {"credential"};
	cJSON *o = NULL;
	const char *s = NULL;
	size_t slen = 0;
	struct idp_error err = {0};
	enum idp_err rc = fmt_json_parse(body, len, UI_JSON_DEPTH, &o, &err);
	if (rc == IDP_OK && !cJSON_IsObject(o))
		rc = idp_error_set(&err, IDP_E_FORMAT, "body: not a JSON object");
	if (rc == IDP_OK)
		rc = fmt_json_only_keys(o, keys, 1, &err);
	if (rc == IDP_OK)
		rc = fmt_json_get_string(o, "credential", true, false, UI_CREDENTIAL_MAX, &s, &slen,
		                         &err);
	struct srv_session_info si = {.role = SRV_ROLE_NONE};
	if (rc == IDP_OK)
		rc = credential_role(ctx, s, slen, &si, &err);
	if (rc != IDP_OK) {
		cJSON_Delete(o);
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, "credential");
	OPENSSL_cleanse(item->valuestring, slen); /* cJSON_Delete does not wipe */
	cJSON_Delete(o);
	if (si.role == SRV_ROLE_NONE) {
		fio_log(FIO_LOG_WARN, "admin.unauthorized", "loop=%u peer=%s phase=ui-login",
		        ctx->loop, peer);
		srv_http_error(req, FMT_API_ERR_UNAUTHORIZED, "credential: not an admin credential");
		return;
	}
	/* A login replaces the browser's earlier session rather than leaving
	 * it alive beside the new one. */
	(void)srv_session_end(c.cookie, c.cookie_len);
	char id[SRV_SESSION_HEX + 1];
	rc = srv_session_new(si.role, si.name, (int64_t)time(NULL), id, si.csrf, &err);
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	char cookie[160];
	(void)snprintf(cookie, sizeof(cookie),
	               SRV_SESSION_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict", id);
	OPENSSL_cleanse(id, sizeof(id));
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", cookie);
	OPENSSL_cleanse(cookie, sizeof(cookie));
	fio_log(FIO_LOG_INFO, "ui.login", "loop=%u peer=%s name=%s role=%s", ctx->loop, peer,
	        si.name, srv_role_name(si.role));
	send_session(req, &si);
	OPENSSL_cleanse(si.csrf, sizeof(si.csrf));
}

/* GET /ui/session: the live session's role and CSRF token (a reloaded page
 * gets its token back; another origin cannot read the answer); role "none"
 * and an empty token without a live session. */
void srv_ui_session(struct srv_ctx *ctx, struct evhttp_request *req)
{
	ui_headers(req);
	struct srv_session_creds c;
	struct srv_session_info si;
	creds_of(req, &c);
	enum srv_session_verdict v = srv_session_check(&c, (int64_t)time(NULL), &si);
	(void)ctx;
	/* No session is an answer, not an error: the page then shows its login. */
	if (v != SRV_SESSION_OK)
		memset(&si, 0, sizeof(si));
	send_session(req, &si);
	OPENSSL_cleanse(si.csrf, sizeof(si.csrf));
}

/* POST /ui/logout: end the session (it needs its CSRF token, so another
 * site cannot log the administrator out either) and clear the cookie. */
void srv_ui_logout(struct srv_ctx *ctx, struct evhttp_request *req)
{
	ui_headers(req);
	struct srv_session_creds c;
	struct srv_session_info si;
	creds_of(req, &c);
	enum srv_session_verdict v = srv_session_check(&c, (int64_t)time(NULL), &si);
	OPENSSL_cleanse(si.csrf, sizeof(si.csrf));
	/* A viewer may log out: that changes nothing but its own session. */
	if (v != SRV_SESSION_OK && v != SRV_SESSION_ROLE) {
		refuse(ctx, req, v);
		return;
	}
	(void)srv_session_end(c.cookie, c.cookie_len);
	char peer[64];
	fio_log(FIO_LOG_INFO, "ui.logout", "loop=%u peer=%s name=%s role=%s", ctx->loop,
	        srv_http_peer(req, peer), si.name, srv_role_name(si.role));
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie",
	                        SRV_SESSION_COOKIE
	                        "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || cJSON_AddBoolToObject(o, "ok", 1) == NULL)
		srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
	else
		srv_http_json(req, 200, o);
	cJSON_Delete(o);
}
