/*
 * admin.h - idprovd's admin API under /v1/admin/ (docs/administrator.md,
 * "Admin API"): trust stations and factory CAs, import a manifest by file,
 * list devices and decide on them, release values for reuse, list flags,
 * take a backup of the database, list and verify the audit hash chain
 * (formats/audit.md), report manifest devices never provisioned.
 *
 * Every request carries the admin credential as "Authorization: Bearer
 * <secret>", checked with srv_state_admin_check (a SHA-256 of it compared
 * in constant time with the hash loaded at start; no file read, no KDF); anything else is answered 401 with a JSON error and
 * changes nothing. The secret is never logged. Each change is one store
 * transaction with its audit entry.
 *
 * Thread-safety: as the handlers (one loop's store connection).
 */
#ifndef IDP_SERVER_ADMIN_H
#define IDP_SERVER_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "server/httpd.h"

#define SRV_ADMIN_AUTH_MAX 256u /* longest Authorization header accepted */
#define SRV_ADMIN_LIST_MAX 1000 /* most rows one listing answers */

/* Whether an Authorization header value h[0..len) is "Bearer <admin
 * credential>" (*ok). Fails only when the credential cannot be checked.
 * Also called by the connection filter on the request head, before any
 * body is read (server/httpd.c). */
IDP_MUST_CHECK enum idp_err srv_admin_bearer_check(const struct srv_state *state, const char *h,
                                                   size_t len, bool *ok, struct idp_error *err);

/* The handlers, registered in the route table (server/handlers.c). Bodies:
 * docs/administrator.md ("Admin API"). */
srv_handler_fn srv_admin_station_add;     /* POST /v1/admin/stations */
srv_handler_fn srv_admin_station_disable; /* POST /v1/admin/stations/disable */
srv_handler_fn srv_admin_ca_add;          /* POST /v1/admin/cas */
srv_handler_fn srv_admin_import;          /* POST /v1/admin/import */
srv_handler_fn srv_admin_approve;         /* POST /v1/admin/devices/approve */
srv_handler_fn srv_admin_reject;          /* POST /v1/admin/devices/reject */
srv_handler_fn srv_admin_revoke;          /* POST /v1/admin/devices/revoke */
srv_handler_fn srv_admin_release;         /* POST /v1/admin/release */
srv_handler_fn srv_admin_station_list;    /* GET /v1/admin/stations */
srv_handler_fn srv_admin_device_list;     /* GET /v1/admin/devices[?state=S&after=ID] */
srv_handler_fn srv_admin_flag_list;       /* GET /v1/admin/flags */
srv_handler_fn srv_admin_backup;          /* POST /v1/admin/backup: the database snapshot */
srv_handler_fn srv_admin_token_rotate;    /* POST /v1/admin/token-keys/rotate */
srv_handler_fn srv_admin_audit_list;      /* GET /v1/admin/audit[?after=SEQ] */
srv_handler_fn srv_admin_audit_verify;    /* GET /v1/admin/audit/verify */
srv_handler_fn srv_admin_report_unprovisioned; /* GET /v1/admin/report/unprovisioned */

/* True when req carries the admin credential; otherwise it has been
 * answered 401 (for handlers outside /v1/admin/, e.g. GET /metrics). */
bool srv_admin_authorized(struct srv_ctx *ctx, struct evhttp_request *req);

#endif /* IDP_SERVER_ADMIN_H */
