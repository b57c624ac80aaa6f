/*
 * admin.h - idprovd's admin API under /v1/admin/ (spec formats/admin-api.md;
 * operators: docs/administrator.md, "Admin API"): trust stations and factory CAs, import a manifest by file,
 * list devices and decide on them, release values for reuse, list flags,
 * take a backup of the database, list and verify the audit hash chain
 * (formats/audit.md), report manifest devices never provisioned.
 *
 * Bodies: formats/admin_api.h (encoder and parser), spec
 * formats/admin-api.md.
 * Every request carries an admin credential as "Authorization: Bearer
 * <secret>": the state directory's (named "admin", role admin; checked with
 * srv_state_admin_check) or a named credential of the store
 * (srv_store_credential_find), each a SHA-256 compared in constant time, no
 * file read, no KDF; or, without an Authorization header, a web UI session
 * (server/ui.h: its cookie, and its CSRF token on a POST) of such a
 * credential. Anything else is answered 401 with a JSON error and
 * changes nothing; a viewer's request other than GET/HEAD is answered 403
 * (forbidden, "role viewer: read-only ...") and audited (admin.denied, the
 * viewer as actor). The secret is never logged. Each change is one store
 * transaction with its audit entry, whose actor is the caller's name.
 *
 * Thread-safety: as the handlers (one loop's store connection).
 */
#ifndef IDP_SERVER_ADMIN_H
#define IDP_SERVER_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "formats/admin_api.h"
#include "server/httpd.h"

#define SRV_ADMIN_AUTH_MAX 256u /* longest Authorization header accepted */
#define SRV_ADMIN_LIST_MAX FMT_ADMIN_LIST_MAX /* most rows one listing answers */

/* Whether an Authorization header value h[0..len) is "Bearer <admin
 * credential>" (*ok). Fails only when the credential cannot be checked.
 * Also called by the connection filter on the request head, before any
 * body is read (server/conn.c). */
IDP_MUST_CHECK enum idp_err srv_admin_bearer_check(const struct srv_state *state, const char *h,
                                                   size_t len, bool *ok, struct idp_error *err);

/* Who sent an admin request. */
struct srv_admin_who {
	char name[SRV_STORE_CRED_NAME_MAX + 1]; /* "admin" for the state directory's */
	enum srv_role role;                      /* SRV_ROLE_NONE: not authenticated */
};
#define SRV_ADMIN_BUILTIN "admin" /* the name of the state directory's credential */

/* Who the Authorization value h[0..len) (may be NULL) names; without one,
 * the credential that cert_cn (the CN of a client certificate verified
 * against admin-ca, srv_http_admin_cn; NULL or "" for none) names. A bearer,
 * when sent, decides alone. who->role is SRV_ROLE_NONE when neither is a
 * valid credential. Fails only when the store cannot be read. Called on the
 * request head (server/conn.c) and again by the handlers. */
IDP_MUST_CHECK enum idp_err srv_admin_identify(const struct srv_state *state,
                                               struct srv_store *st, const char *h, size_t len,
                                               const char *cert_cn, struct srv_admin_who *who,
                                               struct idp_error *err);

/* Whether role may send a request (read_only: GET or HEAD). */
bool srv_admin_role_allows(enum srv_role role, bool read_only);

/* A refused request of who for path[0..path_len): log it, audit it
 * (admin.denied, actor who->name, subject none, detail the path) and put
 * the answer's message in msg[0..size). */
void srv_admin_denied(unsigned loop, struct srv_store *st, const struct srv_admin_who *who,
                      const char *path, size_t path_len, char *msg, size_t size);

/* The handlers, registered in the route table (server/routes.c). Bodies:
 * formats/admin-api.md, encoded and parsed by formats/admin_api.h. */
srv_handler_fn srv_admin_station_add;     /* POST /v1/admin/stations */
srv_handler_fn srv_admin_station_disable; /* POST /v1/admin/stations/disable */
srv_handler_fn srv_admin_ca_add;          /* POST /v1/admin/cas */
srv_handler_fn srv_admin_import;          /* POST /v1/admin/import */
srv_handler_fn srv_admin_approve;         /* POST /v1/admin/devices/approve */
srv_handler_fn srv_admin_reject;          /* POST /v1/admin/devices/reject */
srv_handler_fn srv_admin_revoke;          /* POST /v1/admin/devices/revoke */
srv_handler_fn srv_admin_release;         /* POST /v1/admin/release */
srv_handler_fn srv_admin_station_list;    /* GET /v1/admin/stations[?after=ID] */
srv_handler_fn srv_admin_device_list;     /* GET /v1/admin/devices[?state=S&after=ID] */
srv_handler_fn srv_admin_flag_list;       /* GET /v1/admin/flags */
srv_handler_fn srv_admin_flag_resolve;    /* POST /v1/admin/flags/resolve */
srv_handler_fn srv_admin_backup;          /* POST /v1/admin/backup: the database snapshot */
srv_handler_fn srv_admin_token_rotate;    /* POST /v1/admin/token-keys/rotate */
srv_handler_fn srv_admin_audit_list;      /* GET /v1/admin/audit[?after=SEQ&subject=ID] */
srv_handler_fn srv_admin_audit_verify;    /* GET /v1/admin/audit/verify */
srv_handler_fn srv_admin_report_unprovisioned; /* GET /v1/admin/report/unprovisioned */
srv_handler_fn srv_admin_whoami;          /* GET /v1/admin/whoami: {"name","role"} */
srv_handler_fn srv_admin_credential_add;  /* POST /v1/admin/credentials {"name","role"} */
srv_handler_fn srv_admin_credential_list; /* GET /v1/admin/credentials[?after=NAME] */
srv_handler_fn srv_admin_credential_revoke; /* POST /v1/admin/credentials/revoke {"name"} */
srv_handler_fn srv_admin_oob_add;         /* POST /v1/admin/oob {"device_id","verifier",...} */
srv_handler_fn srv_admin_oob_list;        /* GET /v1/admin/oob[?after=ID] */

/* True when req carries an admin credential whose role allows its method;
 * otherwise it has been answered 401/403 (for handlers outside /v1/admin/,
 * e.g. GET /metrics). */
bool srv_admin_authorized(struct srv_ctx *ctx, struct evhttp_request *req);

/* An authorized request whose query has parameters of names[0..n) only
 * (n may be 0), each once, parsed into q (free it with
 * evhttp_clear_headers() when true is returned); otherwise answered
 * (401/403, or 400 naming a malformed query, an unknown parameter or one
 * repeated) and false returned. Every admin GET parses its query here. */
bool srv_admin_query(struct srv_ctx *ctx, struct evhttp_request *req, struct evkeyvalq *q,
                     const char *const *names, size_t n);

/* As srv_admin_authorized, and *who gets the caller (for handlers that
 * show or act on the caller, e.g. the web UI's session). */
bool srv_admin_caller(struct srv_ctx *ctx, struct evhttp_request *req, struct srv_admin_who *who);

/* The request body parsed as kind into *out (formats/admin_api.h; strings
 * borrowed from doc: free it with fmt_admin_doc_free) and true; otherwise
 * answered 400 and false. */
bool srv_admin_parse_body(struct srv_ctx *ctx, struct evhttp_request *req,
                          enum fmt_admin_kind kind, void *out, struct fmt_admin_doc *doc);

/* Answer v (a struct of kind) with 200; an encoder failure (a stored value
 * out of its type) is logged and answered 500. */
void srv_admin_send_body(struct srv_ctx *ctx, struct evhttp_request *req, enum fmt_admin_kind kind,
                         const void *v);

/* Log the encoder's refusal err (admin.encode) and answer 500. */
void srv_admin_encode_failed(struct srv_ctx *ctx, struct evhttp_request *req,
                             const struct idp_error *err);

/* End the change made in st's open transaction: when rc is IDP_OK, append
 * ev (its audit entry) and commit, so both are written or neither; else, or
 * when that fails, roll back. Returns the first failure. */
IDP_MUST_CHECK enum idp_err srv_admin_commit(struct srv_store *st, enum idp_err rc,
                                             const struct srv_audit_event *ev,
                                             struct idp_error *err);

#endif /* IDP_SERVER_ADMIN_H */
