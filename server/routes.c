/*
 * routes.c - see routes.h: the table, and how it is searched.
 */
#include "server/routes.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "formats/api.h"
#include "server/admin.h"
#include "server/admin_views.h"
#include "server/checkpoint.h"
#include "server/handlers.h"
#include "server/metrics.h"
#include "server/site.h"
#include "server/ui.h"

/* One line per endpoint: path, method, body limit (0: max-body), handler,
 * authentication. Its handler's header documents the body. */
/* clang-format off */
static const struct srv_route table[] = {
	/* Device API (formats/api.md) and its public keys */
	{"/v1/health", EVHTTP_REQ_GET, 0, srv_handlers_health, SRV_AUTH_NONE},
	{"/v1/ca", EVHTTP_REQ_GET, 0, srv_handlers_ca, SRV_AUTH_NONE},
	{"/v1/keys", EVHTTP_REQ_GET, 0, srv_handlers_jwks, SRV_AUTH_NONE},
	{"/.well-known/jwks.json", EVHTTP_REQ_GET, 0, srv_handlers_jwks, SRV_AUTH_NONE},
	{"/v1/nonce", EVHTTP_REQ_POST, 0, srv_handlers_nonce, SRV_AUTH_NONE},
	{"/v1/provision", EVHTTP_REQ_POST, FMT_API_BODY_MAX, srv_handlers_provision, SRV_AUTH_NONE},
	{"/v1/token/exchange", EVHTTP_REQ_POST, FMT_API_BODY_MAX, srv_handlers_exchange, SRV_AUTH_NONE},
	{"/v1/token/renew", EVHTTP_REQ_POST, FMT_API_BODY_MAX, srv_handlers_renew, SRV_AUTH_NONE},
	{"/v1/batches", EVHTTP_REQ_POST, SRV_ROUTE_MANIFEST, srv_handlers_batches, SRV_AUTH_STATION},
	/* Admin API (server/admin.h, docs/administrator.md) and GET /metrics */
	{"/v1/admin/stations", EVHTTP_REQ_POST, 0, srv_admin_station_add, SRV_AUTH_ADMIN},
	{"/v1/admin/stations/disable", EVHTTP_REQ_POST, 0, srv_admin_station_disable, SRV_AUTH_ADMIN},
	{"/v1/admin/cas", EVHTTP_REQ_POST, 0, srv_admin_ca_add, SRV_AUTH_ADMIN},
	{"/v1/admin/import", EVHTTP_REQ_POST, SRV_ROUTE_MANIFEST, srv_admin_import, SRV_AUTH_ADMIN},
	{"/v1/admin/devices/approve", EVHTTP_REQ_POST, 0, srv_admin_approve, SRV_AUTH_ADMIN},
	{"/v1/admin/devices/reject", EVHTTP_REQ_POST, 0, srv_admin_reject, SRV_AUTH_ADMIN},
	{"/v1/admin/devices/revoke", EVHTTP_REQ_POST, 0, srv_admin_revoke, SRV_AUTH_ADMIN},
	{"/v1/admin/release", EVHTTP_REQ_POST, 0, srv_admin_release, SRV_AUTH_ADMIN},
	{"/v1/admin/stations", EVHTTP_REQ_GET, 0, srv_admin_station_list, SRV_AUTH_ADMIN},
	{"/v1/admin/devices", EVHTTP_REQ_GET, 0, srv_admin_device_list, SRV_AUTH_ADMIN},
	{"/v1/admin/flags", EVHTTP_REQ_GET, 0, srv_admin_flag_list, SRV_AUTH_ADMIN},
	{"/v1/admin/backup", EVHTTP_REQ_POST, 0, srv_admin_backup, SRV_AUTH_ADMIN},
	{"/v1/admin/token-keys/rotate", EVHTTP_REQ_POST, 0, srv_admin_token_rotate, SRV_AUTH_ADMIN},
	{"/metrics", EVHTTP_REQ_GET, 0, srv_metrics_get, SRV_AUTH_ADMIN},
	{"/v1/admin/audit", EVHTTP_REQ_GET, 0, srv_admin_audit_list, SRV_AUTH_ADMIN},
	{"/v1/admin/audit/verify", EVHTTP_REQ_GET, 0, srv_admin_audit_verify, SRV_AUTH_ADMIN},
	{"/v1/admin/report/unprovisioned", EVHTTP_REQ_GET, 0, srv_admin_report_unprovisioned, SRV_AUTH_ADMIN},
	{"/v1/admin/whoami", EVHTTP_REQ_GET, 0, srv_admin_whoami, SRV_AUTH_ADMIN},
	{"/v1/admin/credentials", EVHTTP_REQ_POST, 0, srv_admin_credential_add, SRV_AUTH_ADMIN},
	{"/v1/admin/credentials", EVHTTP_REQ_GET, 0, srv_admin_credential_list, SRV_AUTH_ADMIN},
	{"/v1/admin/credentials/revoke", EVHTTP_REQ_POST, 0, srv_admin_credential_revoke, SRV_AUTH_ADMIN},
	{"/v1/admin/oob", EVHTTP_REQ_POST, 0, srv_admin_oob_add, SRV_AUTH_ADMIN},
	{"/v1/admin/oob", EVHTTP_REQ_GET, 0, srv_admin_oob_list, SRV_AUTH_ADMIN},
	/* server/site.h: suspension and the allow-list */
	{"/v1/admin/suspend", EVHTTP_REQ_POST, 0, srv_site_suspend, SRV_AUTH_ADMIN},
	{"/v1/admin/resume", EVHTTP_REQ_POST, 0, srv_site_resume, SRV_AUTH_ADMIN},
	{"/v1/admin/suspension", EVHTTP_REQ_GET, 0, srv_site_status, SRV_AUTH_ADMIN},
	{"/v1/admin/allow", EVHTTP_REQ_POST, 0, srv_site_allow_add, SRV_AUTH_ADMIN},
	{"/v1/admin/allow/remove", EVHTTP_REQ_POST, 0, srv_site_allow_remove, SRV_AUTH_ADMIN},
	{"/v1/admin/allow", EVHTTP_REQ_GET, 0, srv_site_allow_list, SRV_AUTH_ADMIN},
	/* server/checkpoint.h: the audit export */
	{"/v1/admin/audit/export", EVHTTP_REQ_GET, 0, srv_ckpt_export, SRV_AUTH_ADMIN},
	/* The web UI (server/ui.h): one route per file of server/ui/, and
	 * the listings it reads (server/admin_views.h). */
	{"/ui", EVHTTP_REQ_GET, 0, srv_ui_file, SRV_AUTH_NONE},
	{"/ui/", EVHTTP_REQ_GET, 0, srv_ui_file, SRV_AUTH_NONE},
	{"/ui/index.html", EVHTTP_REQ_GET, 0, srv_ui_file, SRV_AUTH_NONE},
	{"/ui/style.css", EVHTTP_REQ_GET, 0, srv_ui_file, SRV_AUTH_NONE},
	{"/ui/app.js", EVHTTP_REQ_GET, 0, srv_ui_file, SRV_AUTH_NONE},
	{"/ui/api.js", EVHTTP_REQ_GET, 0, srv_ui_file, SRV_AUTH_NONE},
	{"/ui/pages.js", EVHTTP_REQ_GET, 0, srv_ui_file, SRV_AUTH_NONE},
	{"/ui/label.js", EVHTTP_REQ_GET, 0, srv_ui_file, SRV_AUTH_NONE},
	{"/ui/login", EVHTTP_REQ_POST, 0, srv_ui_login, SRV_AUTH_NONE},
	{"/ui/logout", EVHTTP_REQ_POST, 0, srv_ui_logout, SRV_AUTH_NONE},
	{"/ui/session", EVHTTP_REQ_GET, 0, srv_ui_session, SRV_AUTH_NONE},
	{"/v1/admin/batches", EVHTTP_REQ_GET, 0, srv_admin_batch_list, SRV_AUTH_ADMIN},
	{"/v1/admin/cas", EVHTTP_REQ_GET, 0, srv_admin_ca_list, SRV_AUTH_ADMIN},
	{"/v1/admin/flags/resolve", EVHTTP_REQ_POST, 0, srv_admin_flag_resolve, SRV_AUTH_ADMIN},
};
/* clang-format on */

const struct srv_route *srv_routes(size_t *n)
{
	*n = sizeof(table) / sizeof(table[0]);
	return table;
}

/* Whether r's path is path[0..len). */
static bool route_is(const struct srv_route *r, const char *path, size_t len)
{
	return strlen(r->path) == len && memcmp(r->path, path, len) == 0;
}

void srv_route_allow(const struct srv_route *routes, size_t n, const char *path, size_t len,
                     char out[static SRV_ROUTE_ALLOW_MAX])
{
	bool get = false, post = false;
	for (size_t i = 0; i < n; i++) {
		if (!route_is(&routes[i], path, len))
			continue;
		get = get || routes[i].method == EVHTTP_REQ_GET;
		post = post || routes[i].method == EVHTTP_REQ_POST;
	}
	(void)snprintf(out, SRV_ROUTE_ALLOW_MAX, "%s%s%s", get ? "GET, HEAD" : "",
	               get && post ? ", " : "", post ? "POST" : "");
}

const struct srv_route *srv_route_find(const struct srv_route *routes, size_t n, const char *path,
                                       size_t len, enum evhttp_cmd_type method)
{
	const struct srv_route *first = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!route_is(&routes[i], path, len))
			continue;
		if (method == 0 || routes[i].method == method)
			return &routes[i];
		if (first == NULL)
			first = &routes[i];
	}
	return first;
}

size_t srv_route_max_body(const struct srv_route *r, const struct srv_config *cfg)
{
	if (r != NULL && r->max_body == SRV_ROUTE_MANIFEST)
		return cfg->max_manifest;
	return r != NULL && r->max_body != 0 ? r->max_body : cfg->max_body;
}

enum srv_route_auth srv_route_auth(const struct srv_route *r)
{
	if (r->auth == SRV_AUTH_NONE && strncmp(r->path, "/v1/admin/", 10) == 0)
		return SRV_AUTH_ADMIN;
	return r->auth;
}
