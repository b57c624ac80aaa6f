/*
 * admin.c - see admin.h. Error bodies and statuses: formats/api.md §9.
 *
 * Order: the credential first (nothing is parsed for an unauthenticated
 * request), then the JSON body (strict, known members only), then one store
 * transaction holding the change and its audit entry.
 */
#include "server/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "formats/admin_api.h"
#include "formats/api.h"
#include "formats/b64.h"
#include "formats/id.h"
#include "formats/json.h"
#include "formats/keys.h"
#include "formats/mac.h"
#include "server/checkpoint.h"
#include "server/fault.h"
#include "server/handlers.h"
#include "formats/io/log.h"
#include "server/provision.h"
#include "server/ui.h"


enum idp_err srv_admin_bearer_check(const struct srv_state *state, const char *h, size_t len,
                                    bool *ok, struct idp_error *err)
{
	*ok = false;
	if (h == NULL || len <= 7 || len > SRV_ADMIN_AUTH_MAX || strncasecmp(h, "Bearer ", 7) != 0)
		return IDP_OK;
	return srv_state_admin_check(state, h + 7, len - 7, ok, err);
}

enum idp_err srv_admin_identify(const struct srv_state *state, struct srv_store *st, const char *h,
                                size_t len, const char *cert_cn, struct srv_admin_who *who,
                                struct idp_error *err)
{
	memset(who, 0, sizeof(*who));
	if (h == NULL && cert_cn != NULL && cert_cn[0] != '\0' && st != NULL) {
		/* No bearer: an admin-ca certificate names its credential. */
		struct srv_credential c;
		enum idp_err rc = srv_store_credential_by_name(st, cert_cn, &c, err);
		if (rc == IDP_OK) {
			(void)snprintf(who->name, sizeof(who->name), "%s", c.name);
			who->role = c.role;
		}
		OPENSSL_cleanse(c.hash, sizeof(c.hash));
		return rc == IDP_E_NOTFOUND ? IDP_OK : rc;
	}
	bool ok = false;
	enum idp_err rc = srv_admin_bearer_check(state, h, len, &ok, err);
	if (rc != IDP_OK || ok) {
		if (ok) {
			(void)snprintf(who->name, sizeof(who->name), "%s", SRV_ADMIN_BUILTIN);
			who->role = SRV_ROLE_ADMIN;
		}
		return rc;
	}
	if (h == NULL || len <= 7 || len > SRV_ADMIN_AUTH_MAX || strncasecmp(h, "Bearer ", 7) != 0 ||
	    st == NULL)
		return IDP_OK;
	uint8_t hash[SRV_STORE_CRED_HASH_LEN];
	(void)SHA256((const uint8_t *)h + 7, len - 7, hash);
	struct srv_credential c;
	rc = srv_store_credential_find(st, hash, &c, err);
	OPENSSL_cleanse(hash, sizeof(hash));
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	if (rc == IDP_OK) {
		(void)snprintf(who->name, sizeof(who->name), "%s", c.name);
		who->role = c.role;
	}
	OPENSSL_cleanse(c.hash, sizeof(c.hash));
	return rc;
}

bool srv_admin_role_allows(enum srv_role role, bool read_only)
{
	return role == SRV_ROLE_ADMIN || (role == SRV_ROLE_VIEWER && read_only);
}

void srv_admin_denied(unsigned loop, struct srv_store *st, const struct srv_admin_who *who,
                      const char *path, size_t path_len, char *msg, size_t size)
{
	char detail[160];
	int n = (int)(path_len < 128 ? path_len : 128);
	(void)snprintf(detail, sizeof(detail), "%.*s", n, path);
	for (char *p = detail; *p != '\0'; p++) /* the path as logged: printable only */
		if (*p < 0x21 || *p > 0x7e || *p == '"')
			*p = '?';
	fio_log(FIO_LOG_WARN, "admin.denied", "loop=%u actor=%s role=%s path=%s", loop, who->name,
	        srv_role_name(who->role), detail);
	const struct srv_audit_event ev = {.at = (int64_t)time(NULL),
	                                   .event = "admin.denied",
	                                   .detail = detail,
	                                   .actor = who->name};
	struct idp_error err = {0};
	char ebuf[FIO_LOG_ESC_MAX];
	if (srv_store_audit_append(st, &ev, &err) != IDP_OK)
		fio_log(FIO_LOG_ERROR, "admin.denied_audit", "loop=%u error=%s", loop,
		        fio_log_err(&err, ebuf));
	(void)snprintf(msg, size,
	               "role %s: read-only (GET only); %s needs a credential of role admin",
	               srv_role_name(who->role), detail);
}

/* The hex SHA-256 of spki[0..len) (a key's fingerprint as listings show it). */
static void key_hex(const uint8_t *spki, size_t len, char hex[static 65])
{
	uint8_t fp[32];
	(void)SHA256(spki, len, fp);
	fmt_key_fingerprint_hex(fp, hex);
}

bool srv_admin_caller(struct srv_ctx *ctx, struct evhttp_request *req, struct srv_admin_who *who)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	size_t len = h != NULL ? strnlen(h, SRV_ADMIN_AUTH_MAX + 1) : 0;
	int ui = h == NULL ? srv_ui_admin_session(ctx, req, who) : 0; /* the web UI (ui.h) */
	if (ui > 0)
		srv_store_set_actor(ctx->store, who->name);
	if (ui != 0)
		return ui > 0;
	struct idp_error err = {0};
	char cn[SRV_HTTP_ADMIN_CN_MAX + 1];
	srv_http_admin_cn(req, cn);
	if (srv_admin_identify(ctx->state, ctx->store, h, len, cn, who, &err) != IDP_OK) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_ERROR, "admin.check", "loop=%u error=%s", ctx->loop,
		        fio_log_err(&err, ebuf));
		srv_http_error(req, FMT_API_ERR_INTERNAL, "cannot check the admin credential");
		return false;
	}
	if (who->role == SRV_ROLE_NONE) {
		char pbuf[64];
		fio_log(FIO_LOG_WARN, "admin.unauthorized", "loop=%u peer=%s", ctx->loop,
		        srv_http_peer(req, pbuf));
		(void)evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		                        "Bearer realm=\"idprov-admin\"");
		srv_http_error(req, FMT_API_ERR_UNAUTHORIZED, "%s",
		               h == NULL ? "authorization: missing admin credential"
		                         : "authorization: not an admin credential");
		return false;
	}
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (!srv_admin_role_allows(who->role, cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)) {
		const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
		char msg[256];
		srv_admin_denied(ctx->loop, ctx->store, who, path != NULL ? path : "",
		                 path != NULL ? strlen(path) : 0, msg, sizeof(msg));
		srv_http_error(req, FMT_API_ERR_FORBIDDEN, "%s", msg);
		return false;
	}
	/* The audit entries of this request name the caller (httpd.c clears it after). */
	srv_store_set_actor(ctx->store, who->name);
	return true;
}

/* True when req carries an admin credential allowing its method; otherwise
 * it has been answered 401/403. The secret is never logged. */
static bool authorized(struct srv_ctx *ctx, struct evhttp_request *req)
{
	struct srv_admin_who who;
	return srv_admin_caller(ctx, req, &who);
}

bool srv_admin_authorized(struct srv_ctx *ctx, struct evhttp_request *req)
{
	return authorized(ctx, req);
}

/* The request body parsed as kind into *out (formats/admin_api.h; strings
 * borrowed from doc, free it with fmt_admin_doc_free); answered 400 (and
 * false returned) otherwise. */
bool srv_admin_parse_body(struct srv_ctx *ctx, struct evhttp_request *req, enum fmt_admin_kind kind,
                          void *out, struct fmt_admin_doc *doc)
{
	const uint8_t *body = NULL;
	size_t len = 0;
	srv_http_body(req, &body, &len);
	if (len == 0) { /* formats/api.md §9: no body where one is needed */
		srv_http_error(req, FMT_API_ERR_BAD_REQUEST, "body: empty; send a JSON object");
		return false;
	}
	struct idp_error err = {0};
	enum idp_err rc = fmt_admin_parse(kind, body, len, out, doc, &err);
	if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	return rc == IDP_OK;
}

void srv_admin_encode_failed(struct srv_ctx *ctx, struct evhttp_request *req,
                             const struct idp_error *err)
{
	char ebuf[FIO_LOG_ESC_MAX];
	fio_log(FIO_LOG_ERROR, "admin.encode", "loop=%u error=\"%s\"", ctx->loop,
	        fio_log_err(err, ebuf));
	srv_http_error(req, FMT_API_ERR_INTERNAL, "cannot encode the answer");
}

/* Answer v (a struct of kind) with status 200; an encoder failure (a stored
 * value out of its type) is logged and answered 500. */
void srv_admin_send_body(struct srv_ctx *ctx, struct evhttp_request *req, enum fmt_admin_kind kind,
                         const void *v)
{
	cJSON *o = NULL;
	struct idp_error err = {0};
	if (fmt_admin_encode(kind, v, &o, &err) != IDP_OK) {
		srv_admin_encode_failed(ctx, req, &err);
		return;
	}
	srv_http_json(req, 200, o);
	cJSON_Delete(o);
}

/* One change and its audit entry in one transaction: fn(st, arg) then the
 * audit event. */
typedef enum idp_err change_fn(struct srv_store *st, const void *arg, int64_t now,
                               struct idp_error *err);

static enum idp_err in_transaction(struct srv_store *st, change_fn *fn, const void *arg,
                                   const char *event, const char *subject, const char *detail,
                                   int64_t now, struct idp_error *err)
{
	enum idp_err rc = srv_store_begin(st, err);
	if (rc != IDP_OK)
		return rc;
	rc = fn(st, arg, now, err);
	const struct srv_audit_event ev = {
	        .at = now, .event = event, .subject = subject, .detail = detail};
	return srv_admin_commit(st, rc, &ev, err);
}

enum idp_err srv_admin_commit(struct srv_store *st, enum idp_err rc,
                              const struct srv_audit_event *ev, struct idp_error *err)
{
	if (rc == IDP_OK)
		rc = srv_store_audit_append(st, ev, err);
	if (rc == IDP_OK)
		return srv_store_commit(st, err);
	srv_store_rollback(st);
	return rc;
}

/* Answer d ({"ok":true, ...}, 200) or the error of rc; log name=value. */
static void answer(struct srv_ctx *ctx, struct evhttp_request *req, const char *event,
                   enum idp_err rc, const struct idp_error *err, const char *name,
                   const char *value, const struct fmt_admin_done *d)
{
	char vbuf[FIO_LOG_ESC_MAX];
	(void)fio_log_esc(value, strlen(value), vbuf, sizeof(vbuf));
	if (rc != IDP_OK) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_INFO, "admin.refused", "loop=%u action=%s %s=%s error=%s",
		        ctx->loop, event, name, vbuf, fio_log_err(err, ebuf));
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, err);
		return;
	}
	fio_log(FIO_LOG_INFO, "admin.done", "loop=%u action=%s %s=%s", ctx->loop, event, name,
	        vbuf);
	srv_admin_send_body(ctx, req, FMT_ADMIN_DONE, d);
}

/* answer() for a change whose answer names the station or device id. */
static void answer_id(struct srv_ctx *ctx, struct evhttp_request *req, const char *event,
                      enum idp_err rc, const struct idp_error *err, const char *id)
{
	const struct fmt_admin_done d = {.id = id};
	answer(ctx, req, event, rc, err, "id", id, &d);
}

/* ---------------------------------------------------------------- stations */

/* A public key given as SPKI PEM or base64 SPKI DER, as canonical DER. */
static enum idp_err parse_public_key(const char *s, size_t len,
                                     uint8_t der[static FMT_KEY_SPKI_MAX], size_t *der_len,
                                     struct idp_error *err)
{
	struct fmt_key *key = NULL;
	enum idp_err rc;
	if (len > 10 && memcmp(s, "-----BEGIN", 10) == 0) {
		rc = fmt_key_parse_public_pem((const uint8_t *)s, len, &key, err);
	} else {
		size_t max = fmt_b64_decoded_max(len);
		uint8_t *buf = malloc(max > 0 ? max : 1);
		size_t n = 0;
		if (buf == NULL)
			return idp_error_set(err, IDP_E_NOMEM, "public_key: out of memory");
		rc = fmt_b64_decode(FMT_B64_STD, s, len, buf, max, &n, err);
		if (rc == IDP_OK)
			rc = fmt_key_parse_spki_der(buf, n, &key, err);
		free(buf);
	}
	if (rc == IDP_OK)
		rc = fmt_key_spki_der(key, der, der_len, err);
	fmt_key_free(key);
	/* WARNING: formatting err->msg into itself lost the reason (and err may be NULL). */
	if (rc != IDP_OK)
		idp_error_prefix(err, "public_key: not an SPKI PEM or base64 DER key");
	return rc;
}

struct key_owner {
	const struct srv_station *s; /* the station being added */
	char other[SRV_STORE_ID_MAX + 1];
	bool other_enabled;
};

static int find_key_owner(void *ctx, const struct srv_station *o)
{
	struct key_owner *k = ctx;
	if (strcmp(o->id, k->s->id) == 0 || o->pubkey_len != k->s->pubkey_len ||
	    memcmp(o->pubkey, k->s->pubkey, o->pubkey_len) != 0)
		return 0;
	(void)snprintf(k->other, sizeof(k->other), "%s", o->id);
	k->other_enabled = o->enabled;
	return o->enabled ? 1 : 0; /* an enabled holder decides; keep looking otherwise */
}

/* Put the station, unless its key is already another station's: one key
 * under two enabled IDs would let either sign as the other, so that is
 * refused (409); a key moving from a disabled station to a new ID is
 * allowed, with a "station-key-reuse" flag and a warning. */
static enum idp_err station_put(struct srv_store *st, const void *arg, int64_t now,
                                struct idp_error *err)
{
	const struct srv_station *s = arg;
	struct key_owner k = {.s = s};
	enum idp_err rc = srv_store_station_foreach(st, find_key_owner, &k, err);
	if (rc == IDP_OK && k.other_enabled)
		return idp_error_set(err, IDP_E_CONFLICT,
		                     "public_key: already the key of station %s; disable that "
		                     "station first",
		                     k.other);
	if (rc == IDP_OK && k.other[0] != '\0') {
		char detail[SRV_STORE_DETAIL_MAX];
		(void)snprintf(detail, sizeof(detail), "key of disabled station %s", k.other);
		fio_log(FIO_LOG_WARN, "admin.station_key_reused", "station=%s other=%s", s->id,
		        k.other);
		rc = srv_store_flag_add(st, "station-key-reuse", s->id, detail, now, err);
	}
	if (rc == IDP_OK)
		rc = srv_store_station_put(st, s, err);
	return rc;
}

/* POST /v1/admin/stations {"id", "public_key"}: trust a station's signing
 * key (a station of that ID is replaced, and enabled). */
void srv_admin_station_add(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!authorized(ctx, req))
		return;
	struct fmt_admin_station_add a;
	struct fmt_admin_doc doc;
	if (!srv_admin_parse_body(ctx, req, FMT_ADMIN_STATION_ADD, &a, &doc))
		return;
	struct idp_error err = {0};
	struct srv_station s = {.enabled = true, .created_at = (int64_t)time(NULL)};
	enum idp_err rc =
	        parse_public_key(a.public_key, strlen(a.public_key), s.pubkey, &s.pubkey_len, &err);
	(void)snprintf(s.id, sizeof(s.id), "%s", a.id);
	fmt_admin_doc_free(&doc);
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	rc = in_transaction(ctx->store, station_put, &s, "admin.station_added", s.id, NULL,
	                    s.created_at, &err);
	answer_id(ctx, req, "station_add", rc, &err, s.id);
}

static enum idp_err station_disable(struct srv_store *st, const void *arg, int64_t now,
                                    struct idp_error *err)
{
	(void)now;
	struct srv_station s;
	enum idp_err rc = srv_store_station_get(st, arg, &s, err);
	if (rc == IDP_OK && !s.enabled)
		rc = idp_error_set(err, IDP_E_CONFLICT, "station %s: already disabled", s.id);
	s.enabled = false;
	if (rc == IDP_OK)
		rc = srv_store_station_put(st, &s, err);
	return rc;
}

/* The "id" member of a JSON body {"id"} (answered 400 when it is not an ID). */
static bool body_id(struct srv_ctx *ctx, struct evhttp_request *req,
                    char id[static SRV_STORE_ID_MAX + 1])
{
	struct fmt_admin_target t;
	struct fmt_admin_doc doc;
	if (!srv_admin_parse_body(ctx, req, FMT_ADMIN_TARGET, &t, &doc))
		return false;
	(void)snprintf(id, SRV_STORE_ID_MAX + 1, "%s", t.id);
	fmt_admin_doc_free(&doc);
	return true;
}

/* POST /v1/admin/stations/disable {"id"}: stop trusting a station (its
 * imported batches stay; new manifests it signs are refused). */
void srv_admin_station_disable(struct srv_ctx *ctx, struct evhttp_request *req)
{
	char id[SRV_STORE_ID_MAX + 1];
	if (!authorized(ctx, req) || !body_id(ctx, req, id))
		return;
	struct idp_error err = {0};
	enum idp_err rc = in_transaction(ctx->store, station_disable, id, "admin.station_disabled",
	                                 id, NULL, (int64_t)time(NULL), &err);
	answer_id(ctx, req, "station_disable", rc, &err, id);
}

/* ---------------------------------------------------------------- factory CAs */

struct ca_add {
	const char *name;
	const char *pem;
	size_t len;
};

static enum idp_err ca_put(struct srv_store *st, const void *arg, int64_t now,
                           struct idp_error *err)
{
	const struct ca_add *a = arg;
	return srv_store_factory_ca_add(st, a->name, a->pem, a->len, now, err);
}

/* pem[0..len) as exactly one CA certificate; its SHA-256 fingerprint in hex. */
static enum idp_err check_ca(const char *pem, size_t len, char fp_hex[static 65],
                             struct idp_error *err)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	enum idp_err rc = IDP_OK;
	if (x == NULL)
		rc = idp_error_set(err, IDP_E_FORMAT, "pem: not a PEM certificate");
	else if (X509_check_ca(x) == 0)
		rc = idp_error_set(err, IDP_E_FORMAT, "pem: certificate is not a CA");
	if (rc == IDP_OK) {
		X509 *extra = PEM_read_bio_X509(b, NULL, NULL, NULL);
		if (extra != NULL)
			rc = idp_error_set(err, IDP_E_FORMAT, "pem: more than one certificate");
		X509_free(extra);
	}
	unsigned char md[32];
	unsigned int md_len = 0;
	if (rc == IDP_OK && (X509_digest(x, EVP_sha256(), md, &md_len) != 1 || md_len != 32))
		rc = idp_error_set(err, IDP_E_CRYPTO, "pem: cannot hash the certificate");
	if (rc == IDP_OK)
		fmt_key_fingerprint_hex(md, fp_hex);
	X509_free(x);
	BIO_free(b);
	return rc;
}

/* POST /v1/admin/cas {"pem", "name"?}: trust a factory CA (the stations'
 * certificates chain to it). The name defaults to the certificate's SHA-256
 * fingerprint; the same name twice is a conflict. */
void srv_admin_ca_add(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!authorized(ctx, req))
		return;
	struct fmt_admin_ca_add c;
	struct fmt_admin_doc doc;
	if (!srv_admin_parse_body(ctx, req, FMT_ADMIN_CA_ADD, &c, &doc))
		return;
	struct idp_error err = {0};
	char fp[65];
	size_t pem_len = strlen(c.pem);
	enum idp_err rc = check_ca(c.pem, pem_len, fp, &err);
	if (rc != IDP_OK) {
		fmt_admin_doc_free(&doc);
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	char nbuf[SRV_STORE_ID_MAX + 1];
	(void)snprintf(nbuf, sizeof(nbuf), "%.64s", c.name != NULL ? c.name : fp);
	const struct ca_add a = {.name = nbuf, .pem = c.pem, .len = pem_len};
	rc = in_transaction(ctx->store, ca_put, &a, "admin.ca_added", nbuf, fp, (int64_t)time(NULL),
	                    &err);
	fmt_admin_doc_free(&doc);
	const struct fmt_admin_done d = {.name = nbuf};
	answer(ctx, req, "ca_add", rc, &err, "name", nbuf, &d);
}

/* ---------------------------------------------------------------- import */

/* POST /v1/admin/import: a manifest by file, signed by any trusted station
 * (body and Idprov-Signature as POST /v1/batches). */
void srv_admin_import(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (authorized(ctx, req))
		srv_handlers_import(ctx, req, NULL);
}

/* ---------------------------------------------------------------- token keys */

static enum idp_err no_change(struct srv_store *st, const void *arg, int64_t now,
                              struct idp_error *err)
{
	(void)st;
	(void)arg;
	(void)now;
	(void)err;
	return IDP_OK;
}

/* POST /v1/admin/token-keys/rotate {}: a new token-signing key signs from now
 * on; the old one stays in the verification set (and GET /v1/keys) until
 * every token it signed has expired (server/state.h). */
void srv_admin_token_rotate(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!authorized(ctx, req))
		return;
	struct fmt_admin_rotate r;
	struct fmt_admin_doc doc;
	if (!srv_admin_parse_body(ctx, req, FMT_ADMIN_ROTATE, &r, &doc))
		return;
	fmt_admin_doc_free(&doc);
	struct idp_error err = {0};
	const struct fmt_key *old_key = NULL;
	char old[SRV_STATE_KID_MAX], kid[SRV_STATE_KID_MAX];
	int64_t now = (int64_t)time(NULL);
	srv_state_token_signer(ctx->state, &old_key, old);
	enum idp_err rc = srv_state_token_rotate(ctx->state, now, kid, &err);
	if (rc == IDP_OK) {
		fio_log(FIO_LOG_WARN, "token.key_rotated", "loop=%u kid=%s retired=%s", ctx->loop,
		        kid, old);
		rc = in_transaction(ctx->store, no_change, NULL, "admin.token_key_rotated", kid, old,
		                    now, &err);
	}
	const struct fmt_admin_done d = {.kid = kid};
	answer(ctx, req, "token_key_rotate", rc, &err, "kid", rc == IDP_OK ? kid : old, &d);
}

/* ---------------------------------------------------------------- devices */

static void decide(struct srv_ctx *ctx, struct evhttp_request *req, enum srv_admin_action action,
                   const char *what)
{
	char id[SRV_STORE_ID_MAX + 1];
	if (!authorized(ctx, req) || !body_id(ctx, req, id))
		return;
	struct idp_error err = {0};
	enum idp_err rc =
	        srv_admin_decide(ctx->store, id, action, NULL, (int64_t)time(NULL), NULL, &err);
	answer_id(ctx, req, what, rc, &err, id);
}

/* POST /v1/admin/devices/approve {"id", "key_sha256"?}: approve a pending
 * (or rejected) device with the key named by its SHA-256 fingerprint (the
 * key on record when absent; required for a contested ID). The answer names
 * the approved key. */
void srv_admin_approve(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!authorized(ctx, req))
		return;
	struct fmt_admin_approve a;
	struct fmt_admin_doc doc;
	if (!srv_admin_parse_body(ctx, req, FMT_ADMIN_APPROVE, &a, &doc))
		return;
	struct idp_error err = {0};
	char id[SRV_STORE_ID_MAX + 1], want[FMT_ADMIN_SHA256_HEX + 1], got[65];
	(void)snprintf(id, sizeof(id), "%s", a.id);
	if (a.key_sha256 != NULL)
		(void)snprintf(want, sizeof(want), "%s", a.key_sha256);
	const bool keyed = a.key_sha256 != NULL;
	fmt_admin_doc_free(&doc);
	enum idp_err rc = srv_admin_decide(ctx->store, id, SRV_ADMIN_APPROVE, keyed ? want : NULL,
	                                   (int64_t)time(NULL), got, &err);
	if (rc != IDP_OK || got[0] == '\0') {
		answer_id(ctx, req, "approve", rc, &err, id);
		return;
	}
	fio_log(FIO_LOG_INFO, "admin.done", "loop=%u action=approve id=%s key=sha256:%s", ctx->loop,
	        id, got);
	const struct fmt_admin_done d = {.id = id, .key_sha256 = got};
	srv_admin_send_body(ctx, req, FMT_ADMIN_DONE, &d);
}

void srv_admin_reject(struct srv_ctx *ctx, struct evhttp_request *req)
{
	decide(ctx, req, SRV_ADMIN_REJECT, "reject");
}

void srv_admin_revoke(struct srv_ctx *ctx, struct evhttp_request *req)
{
	decide(ctx, req, SRV_ADMIN_REVOKE, "revoke");
}

/* ---------------------------------------------------------------- release */

struct release {
	enum srv_ident_kind kind;
	const uint8_t *value;
	size_t len;
};

static enum idp_err release_put(struct srv_store *st, const void *arg, int64_t now,
                                struct idp_error *err)
{
	const struct release *r = arg;
	return srv_store_release_add(st, r->kind, r->value, r->len, now, err);
}

/* POST /v1/admin/release {"kind": "id"|"serial"|"mac"|"key", "value"}: allow
 * a later batch to reuse a value another device holds. A MAC is given in its
 * canonical text form, a key as SPKI PEM or base64 DER. */
void srv_admin_release(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!authorized(ctx, req))
		return;
	struct fmt_admin_release a;
	struct fmt_admin_doc doc;
	if (!srv_admin_parse_body(ctx, req, FMT_ADMIN_RELEASE, &a, &doc))
		return;
	struct idp_error err = {0};
	const char *kind = a.kind, *value = a.value;
	size_t value_len = strlen(value);
	struct release r = {.value = (const uint8_t *)value, .len = value_len};
	uint8_t buf[FMT_KEY_SPKI_MAX];
	enum idp_err rc = IDP_OK;
	if (strcmp(kind, "id") == 0) {
		r.kind = SRV_IDENT_ID;
		rc = fmt_id_check(value, value_len, "value", &err);
	} else if (strcmp(kind, "serial") == 0) {
		r.kind = SRV_IDENT_SERIAL;
		rc = fmt_id_check(value, value_len, "value", &err);
	} else if (strcmp(kind, "mac") == 0) {
		uint8_t mac[FMT_MAC_LEN];
		r.kind = SRV_IDENT_MAC;
		rc = fmt_mac_parse(value, value_len, mac, &err);
	} else { /* "key": the parser allows no other kind */
		r.kind = SRV_IDENT_KEY;
		rc = parse_public_key(value, value_len, buf, &r.len, &err);
		r.value = buf;
	}
	if (rc != IDP_OK) {
		fmt_admin_doc_free(&doc);
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	char shown[SRV_STORE_DETAIL_MAX / 2], detail[SRV_STORE_DETAIL_MAX];
	if (r.kind == SRV_IDENT_KEY) {
		char hex[65];
		key_hex(r.value, r.len, hex);
		(void)snprintf(shown, sizeof(shown), "sha256:%s", hex);
	} else {
		(void)fio_log_esc(value, value_len, shown, sizeof(shown));
	}
	(void)snprintf(detail, sizeof(detail), "%s %s", kind, shown);
	rc = in_transaction(ctx->store, release_put, &r, "admin.released", NULL, detail,
	                    (int64_t)time(NULL), &err);
	char kbuf[SRV_STORE_KIND_MAX + 1];
	(void)snprintf(kbuf, sizeof(kbuf), "%s", kind);
	fmt_admin_doc_free(&doc);
	const struct fmt_admin_done d = {.kind = kbuf, .value = shown};
	answer(ctx, req, "release", rc, &err, kbuf, shown, &d);
}

/* ---------------------------------------------------------------- listings */

/* A list answer being built (formats/admin_api.h) by a store callback. */
struct list {
	enum fmt_admin_kind kind;
	cJSON *top;
	cJSON *rows;
	size_t n;
	enum idp_err rc; /* of the first row that could not be encoded */
	struct idp_error err;
	char last[SRV_STORE_ID_MAX + 1];
	struct srv_store *st; /* for per-row lookups (contenders) */
	int64_t now;          /* the report's clock */
};

/* Append row to l; 1 (stop) when it cannot be. */
static int list_add(struct list *l, const void *row)
{
	l->rc = fmt_admin_list_add(l->rows, l->kind, row, &l->err);
	if (l->rc != IDP_OK)
		return 1;
	l->n++;
	return 0;
}

/* s as text an answer can carry: s itself when it is valid UTF-8 (all the
 * server writes), else escaped into buf[size] (a row altered outside the
 * server), so one such row does not make the whole listing unanswerable. */
static const char *answer_text(const char *s, char *buf, size_t size)
{
	if (fmt_utf8_valid((const uint8_t *)s, strlen(s)))
		return s;
	return fio_log_esc(s, strlen(s), buf, size);
}

/* v, or NULL when v is "" (an absent value is NULL in the store too). */
static const char *text(const char *v)
{
	return v[0] != '\0' ? v : NULL;
}

/* The other keys presented for a contested ID, at most FMT_ADMIN_LIST_MAX. */
struct contenders {
	struct fmt_admin_contender *rows;
	char (*hex)[65];
	char (*mac)[SRV_STORE_MAC_MAX + 1];
	size_t n, cap;
	bool failed;
};

static int add_contender(void *ctx, const struct srv_contender *c)
{
	struct contenders *cs = ctx;
	if (cs->n == FMT_ADMIN_LIST_MAX)
		return 1;
	if (cs->n == cs->cap) {
		size_t cap = cs->cap == 0 ? 4 : cs->cap * 2;
		struct fmt_admin_contender *r = realloc(cs->rows, cap * sizeof(*r));
		if (r != NULL)
			cs->rows = r;
		char(*h)[65] = realloc(cs->hex, cap * sizeof(*h));
		if (h != NULL)
			cs->hex = h;
		char(*m)[SRV_STORE_MAC_MAX + 1] = realloc(cs->mac, cap * sizeof(*m));
		if (m != NULL)
			cs->mac = m;
		if (r == NULL || h == NULL || m == NULL) {
			cs->failed = true;
			return 1;
		}
		cs->cap = cap;
	}
	key_hex(c->pubkey, c->pubkey_len, cs->hex[cs->n]);
	(void)snprintf(cs->mac[cs->n], sizeof(cs->mac[0]), "%s", c->mac);
	cs->rows[cs->n] = (struct fmt_admin_contender){.first_seen = c->first_seen,
	                                               .last_seen = c->last_seen,
	                                               .attempts = c->attempts};
	cs->n++;
	return 0;
}

static int add_station(void *ctx, const struct srv_station *s)
{
	char hex[65];
	key_hex(s->pubkey, s->pubkey_len, hex);
	const struct fmt_admin_station row = {
	        .id = s->id, .enabled = s->enabled, .key_sha256 = hex, .created_at = s->created_at};
	struct list *l = ctx;
	int stop = list_add(l, &row);
	if (stop == 0)
		(void)snprintf(l->last, sizeof(l->last), "%s", s->id);
	return stop;
}

static int add_device(void *ctx, const struct srv_device *d)
{
	struct list *l = ctx;
	char hex[65] = "";
	if (d->pubkey_len > 0)
		key_hex(d->pubkey, d->pubkey_len, hex);
	/* A contested ID lists the other keys presented for it. */
	struct contenders cs = {0};
	struct idp_error err = {0};
	enum idp_err rc = srv_store_contender_foreach(l->st, d->id, add_contender, &cs, &err);
	if (rc == IDP_OK && cs.failed)
		rc = idp_error_set(&err, IDP_E_NOMEM, "devices: out of memory");
	for (size_t i = 0; i < cs.n; i++) {
		cs.rows[i].key_sha256 = cs.hex[i];
		cs.rows[i].mac = text(cs.mac[i]);
	}
	const struct fmt_admin_device row = {.id = d->id,
	                                     .state = srv_device_state_name(d->state),
	                                     .mac = text(d->mac),
	                                     .serial = text(d->serial),
	                                     .batch_id = text(d->batch_id),
	                                     .has_key = d->pubkey_len > 0,
	                                     .key_sha256 = text(hex),
	                                     .updated_at = d->updated_at,
	                                     .attempts = d->attempts,
	                                     .contested = d->batch_id[0] == '\0' && cs.n > 0,
	                                     .other_keys = cs.rows,
	                                     .n_other_keys = cs.n};
	int stop = 1;
	if (rc != IDP_OK) {
		l->rc = rc;
		l->err = err;
	} else {
		stop = list_add(l, &row);
	}
	free(cs.rows);
	free(cs.hex);
	free(cs.mac);
	if (stop == 0)
		(void)snprintf(l->last, sizeof(l->last), "%s", d->id);
	return stop;
}

static int add_flag(void *ctx, const struct srv_flag *f)
{
	struct list *l = ctx;
	char kind[FMT_ADMIN_KIND_MAX + 1], subject[FMT_ID_MAX + 1], detail[FMT_ADMIN_DETAIL_MAX + 1];
	const struct fmt_admin_flag row = {.seq = f->seq,
	                                   .kind = answer_text(f->kind, kind, sizeof(kind)),
	                                   .subject = answer_text(f->subject, subject, sizeof(subject)),
	                                   .detail = answer_text(f->detail, detail, sizeof(detail)),
	                                   .count = f->count,
	                                   .first_seen = f->created_at,
	                                   .last_seen = f->last_seen};
	int stop = list_add(l, &row);
	if (stop == 0)
		(void)snprintf(l->last, sizeof(l->last), "%lld", (long long)f->seq);
	return stop;
}

/* Start the list answer of rows of kind in l; answered 500 (false) when it
 * cannot be. */
static bool list_start(struct evhttp_request *req, enum fmt_admin_kind kind, struct list *l)
{
	l->kind = kind;
	if (fmt_admin_list_new(kind, &l->top, &l->rows, &l->err) != IDP_OK) {
		srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
		return false;
	}
	return true;
}

/* Answer l (plus "next" when the page is full, and "now" for the report),
 * or the error of the store's rc; a row that could not be encoded is
 * logged and answered 500. */
static void send_list(struct srv_ctx *ctx, struct evhttp_request *req, struct list *l,
                      enum idp_err rc, const struct idp_error *err)
{
	const char *next = l->n == SRV_ADMIN_LIST_MAX && l->last[0] != '\0' ? l->last : NULL;
	if (rc == IDP_OK && l->rc == IDP_OK)
		l->rc = fmt_admin_list_end(l->top, next, l->now, &l->err);
	if (l->rc != IDP_OK)
		srv_admin_encode_failed(ctx, req, &l->err);
	else if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, err);
	else
		srv_http_json(req, 200, l->top);
	cJSON_Delete(l->top);
	l->top = NULL;
}

/* GET /v1/admin/stations[?after=ID]: stations in ID order with their key's
 * SHA-256, at most SRV_ADMIN_LIST_MAX; "next" names the ID to continue
 * after. */
void srv_admin_station_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"after"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 1))
		return;
	const char *after = evhttp_find_header(&q, "after");
	struct idp_error err = {0};
	enum idp_err rc = after != NULL ? fmt_id_check(after, strlen(after), "after", &err) : IDP_OK;
	struct list l = {0};
	if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	else if (list_start(req, FMT_ADMIN_STATION, &l)) {
		rc = srv_store_station_page(ctx->store, after, SRV_ADMIN_LIST_MAX, add_station, &l,
		                            &err);
		send_list(ctx, req, &l, rc, &err);
	}
	evhttp_clear_headers(&q);
}

/* GET /v1/admin/devices[?state=S][&after=ID]: devices in ID order, at most
 * SRV_ADMIN_LIST_MAX; "next" names the ID to continue after. */
void srv_admin_device_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"state", "after"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 2))
		return;
	const char *state = evhttp_find_header(&q, "state");
	const char *after = evhttp_find_header(&q, "after");
	enum srv_device_state s = 0;
	for (int i = SRV_DEV_PRELOADED; state != NULL && i <= SRV_DEV_REVOKED; i++)
		if (strcmp(state, srv_device_state_name((enum srv_device_state)i)) == 0)
			s = (enum srv_device_state)i;
	struct idp_error err = {0};
	enum idp_err rc = IDP_OK;
	if (state != NULL && s == 0)
		rc = idp_error_set(&err, IDP_E_FORMAT,
		                   "state: must be preloaded, pending, approved, rejected or revoked");
	else if (after != NULL)
		rc = fmt_id_check(after, strlen(after), "after", &err);
	struct list l = {.st = ctx->store};
	if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	else if (list_start(req, FMT_ADMIN_DEVICE, &l)) {
		rc = srv_store_device_foreach(ctx->store, s, after, SRV_ADMIN_LIST_MAX, add_device,
		                              &l, &err);
		send_list(ctx, req, &l, rc, &err);
	}
	evhttp_clear_headers(&q);
}

/* A flag kind as given in a query: 1..SRV_STORE_KIND_MAX of [a-z0-9-]. */
static enum idp_err check_kind(const char *k, struct idp_error *err)
{
	size_t n = strnlen(k, SRV_STORE_KIND_MAX + 1);
	if (n == 0 || n > SRV_STORE_KIND_MAX ||
	    strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
		return idp_error_set(err, IDP_E_FORMAT, "kind: 1 to %u of [a-z0-9-]",
		                     SRV_STORE_KIND_MAX);
	return IDP_OK;
}

/* The query of req parsed into q (answered 400, false returned, when it is
 * malformed or has a parameter not in names[0..n), or one twice). Free q
 * with evhttp_clear_headers() either way. */
static bool parse_query_names(struct srv_ctx *ctx, struct evhttp_request *req, struct evkeyvalq *q,
                        const char *const *names, size_t n)
{
	TAILQ_INIT(q);
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (query != NULL && evhttp_parse_query_str(query, q) != 0) {
		srv_http_error(req, FMT_API_ERR_BAD_REQUEST, "query: malformed");
		return false;
	}
	for (const struct evkeyval *kv = TAILQ_FIRST(q); kv != NULL; kv = TAILQ_NEXT(kv, next)) {
		size_t i = 0;
		while (i < n && strcmp(kv->key, names[i]) != 0)
			i++;
		/* Twice is refused too: which one a handler reads is no answer. */
		const struct evkeyval *first = TAILQ_FIRST(q);
		while (strcmp(first->key, kv->key) != 0) /* ends at kv at the latest */
			first = TAILQ_NEXT(first, next);
		if (i == n || first != kv) {
			char kbuf[FIO_LOG_ESC_MAX];
			(void)fio_log_esc(kv->key, strnlen(kv->key, 256), kbuf, sizeof(kbuf));
			struct idp_error err = {0};
			(void)idp_error_set(&err, IDP_E_FORMAT, "query: %s parameter %s",
			                    i == n ? "unknown" : "repeated", kbuf);
			(void)srv_handlers_fail(ctx, req, IDP_E_FORMAT, FMT_API_ORIGIN_SERVER, &err);
			return false;
		}
	}
	return true;
}

/* An authorized GET with a query of names[0..n) only, parsed into q (free
 * it with evhttp_clear_headers() when true is returned); otherwise answered
 * and false returned. */
bool srv_admin_query(struct srv_ctx *ctx, struct evhttp_request *req, struct evkeyvalq *q,
                     const char *const *names, size_t n)
{
	TAILQ_INIT(q);
	if (!authorized(ctx, req))
		return false;
	if (parse_query_names(ctx, req, q, names, n))
		return true;
	evhttp_clear_headers(q);
	return false;
}

/* v (NULL: keep *out) as a positive decimal integer of at most 18 digits
 * (so that it fits int64_t), for the query parameter name. */
static enum idp_err query_count(const char *v, const char *name, int64_t *out,
                                struct idp_error *err)
{
	if (v == NULL)
		return IDP_OK;
	size_t n = strnlen(v, 20);
	if (n == 0 || n > 18 || strspn(v, "0123456789") != n || strtoll(v, NULL, 10) <= 0)
		return idp_error_set(err, IDP_E_FORMAT, "%s: not a positive integer", name);
	*out = strtoll(v, NULL, 10);
	return IDP_OK;
}

/* GET /v1/admin/flags[?kind=K][&device=ID][&after=SEQ][&state=open|resolved]:
 * the open (or resolved) flags,
 * newest first, one row per (kind, subject) with its count and first and
 * last time seen; at most SRV_ADMIN_LIST_MAX, "next" the seq to continue
 * after. */
void srv_admin_flag_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"kind", "device", "after", "state"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 4))
		return;
	const char *state = evhttp_find_header(&q, "state");
	struct srv_flag_query fq = {.limit = SRV_ADMIN_LIST_MAX,
	                            .kind = evhttp_find_header(&q, "kind"),
	                            .subject = evhttp_find_header(&q, "device")};
	struct idp_error err = {0};
	enum idp_err rc = IDP_OK;
	if (fq.kind != NULL)
		rc = check_kind(fq.kind, &err);
	if (rc == IDP_OK && fq.subject != NULL)
		rc = fmt_id_check(fq.subject, strlen(fq.subject), "device", &err);
	if (rc == IDP_OK)
		rc = query_count(evhttp_find_header(&q, "after"), "after", &fq.before_seq, &err);
	if (rc == IDP_OK && state != NULL && strcmp(state, "open") != 0 &&
	    strcmp(state, "resolved") != 0)
		rc = idp_error_set(&err, IDP_E_FORMAT, "state: must be open or resolved");
	fq.resolved = rc == IDP_OK && state != NULL && strcmp(state, "resolved") == 0;
	struct list l = {0};
	if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	else if (list_start(req, FMT_ADMIN_FLAG, &l)) {
		rc = srv_store_flag_foreach(ctx->store, &fq, add_flag, &l, &err);
		send_list(ctx, req, &l, rc, &err);
	}
	evhttp_clear_headers(&q);
}

/* POST /v1/admin/flags/resolve {"seq"}: an administrator reviewed the open
 * flag seq; it leaves the open list (GET flags?state=resolved lists it) and
 * an audit entry admin.flag_resolved names its subject, kind and seq. */
void srv_admin_flag_resolve(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!authorized(ctx, req))
		return;
	struct fmt_admin_flag_resolve a;
	struct fmt_admin_doc doc;
	if (!srv_admin_parse_body(ctx, req, FMT_ADMIN_FLAG_RESOLVE, &a, &doc))
		return;
	fmt_admin_doc_free(&doc);
	struct idp_error err = {0};
	struct srv_flag f;
	int64_t now = (int64_t)time(NULL);
	enum idp_err rc = srv_store_begin(ctx->store, &err);
	if (rc == IDP_OK) {
		rc = srv_store_flag_resolve(ctx->store, a.seq, &f, &err);
		char detail[SRV_STORE_KIND_MAX + 32];
		(void)snprintf(detail, sizeof(detail), "%s #%lld", f.kind, (long long)a.seq);
		const struct srv_audit_event ev = {.at = now,
		                                   .event = "admin.flag_resolved",
		                                   .subject = text(f.subject),
		                                   .detail = detail};
		rc = srv_admin_commit(ctx->store, rc, &ev, &err);
	}
	char seq[24];
	(void)snprintf(seq, sizeof(seq), "%lld", (long long)a.seq);
	const struct fmt_admin_done d = {.seq = a.seq};
	answer(ctx, req, "flag_resolve", rc, &err, "seq", seq, &d);
}

/* ---------------------------------------------------------------- audit */

static int add_audit(void *ctx, const struct srv_audit_row *r)
{
	struct list *l = ctx;
	char hex[65] = "";
	if (r->hash_len == 32)
		fmt_key_fingerprint_hex(r->hash, hex);
	char event[FMT_ADMIN_KIND_MAX + 1], subject[FMT_ID_MAX + 1], detail[FMT_ADMIN_DETAIL_MAX + 1];
	char actor[FMT_ID_MAX + 1];
	const struct fmt_admin_audit_entry row = {
	        .seq = r->seq,
	        .at = r->at,
	        .event = answer_text(r->event, event, sizeof(event)),
	        .subject = text(answer_text(r->subject, subject, sizeof(subject))),
	        .detail = text(answer_text(r->detail, detail, sizeof(detail))),
	        .actor = text(answer_text(r->actor, actor, sizeof(actor))),
	        .hash = text(hex)};
	int stop = list_add(l, &row);
	if (stop == 0)
		(void)snprintf(l->last, sizeof(l->last), "%lld", (long long)r->seq);
	return stop;
}

/* GET /v1/admin/audit[?after=SEQ][&subject=ID]: audit entries in seq order
 * with their chain hash (formats/audit.md), at most SRV_ADMIN_LIST_MAX, of
 * one subject only when given (a device's history); "next" the seq to
 * continue after. */
void srv_admin_audit_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"after", "subject"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 2))
		return;
	struct idp_error err = {0};
	int64_t after = 0;
	enum idp_err rc = query_count(evhttp_find_header(&q, "after"), "after", &after, &err);
	char subject[SRV_STORE_ID_MAX + 1] = "";
	const char *sv = evhttp_find_header(&q, "subject");
	if (rc == IDP_OK && sv != NULL)
		rc = fmt_id_check(sv, strlen(sv), "subject", &err);
	if (rc == IDP_OK && sv != NULL)
		(void)snprintf(subject, sizeof(subject), "%s", sv);
	evhttp_clear_headers(&q);
	struct list l = {0};
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	if (!list_start(req, FMT_ADMIN_AUDIT_ENTRY, &l))
		return;
	rc = srv_store_audit_foreach(ctx->store, after, SRV_ADMIN_LIST_MAX, text(subject), add_audit,
	                             &l, &err);
	send_list(ctx, req, &l, rc, &err);
}

/* GET /v1/admin/audit/verify: recompute the chain and check the signed
 * checkpoints; FMT_ADMIN_AUDIT_CHECK, with "broken_seq" and "reason"
 * naming the first entry that does not verify when broken. A broken chain is logged
 * (audit.broken) and answered 200: the check itself worked. */
void srv_admin_audit_verify(struct srv_ctx *ctx, struct evhttp_request *req)
{
	struct evkeyvalq q; /* no parameters */
	if (!srv_admin_query(ctx, req, &q, NULL, 0))
		return;
	evhttp_clear_headers(&q);
	struct srv_audit_check c;
	struct idp_error err = {0};
	enum idp_err rc = srv_store_audit_verify(ctx->store, &c, &err);
	/* Signed checkpoints: forged or deleted ones, a truncated tail
	 * (server/checkpoint.h); they may re-check the chain, so before hex. */
	struct srv_ckpt_check ck;
	if (rc == IDP_OK)
		rc = srv_ckpt_check(ctx->store, ctx->state->dir, &c, &ck, &err);
	bool chain_broken = rc == IDP_OK && c.broken_seq != 0;
	if (rc == IDP_OK && !chain_broken && ck.truncated)
		c.broken_seq = c.head_seq + 1;
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	char hex[65];
	fmt_key_fingerprint_hex(c.head_hash, hex);
	const char *reason = chain_broken ? c.reason : ck.reason;
	bool intact = reason[0] == '\0';
	if (intact)
		fio_log(FIO_LOG_INFO, "audit.verified", "loop=%u entries=%lld head=%s", ctx->loop,
		        (long long)c.entries, hex);
	else
		fio_log(FIO_LOG_WARN, "audit.broken", "loop=%u seq=%lld verified=%lld", ctx->loop,
		        (long long)c.broken_seq, (long long)c.entries);
	/* checkpoint_*: the newest checkpoint that verified (server/checkpoint.h) */
	const struct fmt_admin_audit_check a = {.intact = intact,
	                                        .entries = c.entries,
	                                        .head_seq = c.head_seq,
	                                        .head_hash = hex,
	                                        .broken_seq = c.broken_seq,
	                                        .broken_checkpoint = ck.bad_n,
	                                        .reason = intact ? NULL : reason,
	                                        .checkpoints = ck.checkpoints,
	                                        .checkpoint_seq = ck.last_seq,
	                                        .checkpoint_at = ck.last_at,
	                                        .truncated = ck.truncated};
	srv_admin_send_body(ctx, req, FMT_ADMIN_AUDIT_CHECK, &a);
}

/* ---------------------------------------------------------------- reports */

static int add_unprov(void *ctx, const struct srv_unprov *u)
{
	struct list *l = ctx;
	const struct fmt_admin_unprovisioned row = {.id = u->id,
	                                            .state = srv_device_state_name(u->state),
	                                            .batch_id = u->batch_id,
	                                            .station_id = u->station_id,
	                                            .imported_at = u->imported_at,
	                                            .age = l->now - u->imported_at,
	                                            .attempts = u->attempts};
	int stop = list_add(l, &row);
	if (stop == 0)
		(void)snprintf(l->last, sizeof(l->last), "%s", u->id);
	return stop;
}

/* GET /v1/admin/report/unprovisioned[?older_than=SECONDS][&batch=ID]
 * [&after=ID]: the hostage report. Devices a manifest named that never
 * provisioned (preloaded, or held pending), with batch, station, import
 * time and age, in ID order, at most SRV_ADMIN_LIST_MAX; "next" the ID to
 * continue after. older_than keeps batches imported at least that long ago. */
void srv_admin_report_unprovisioned(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"older_than", "batch", "after"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 3))
		return;
	struct list l = {.now = (int64_t)time(NULL)};
	int64_t older = 0;
	struct srv_unprov_query uq = {.batch_id = evhttp_find_header(&q, "batch"),
	                              .after_id = evhttp_find_header(&q, "after"),
	                              .limit = SRV_ADMIN_LIST_MAX};
	struct idp_error err = {0};
	enum idp_err rc =
	        query_count(evhttp_find_header(&q, "older_than"), "older_than", &older, &err);
	if (rc == IDP_OK && uq.batch_id != NULL)
		rc = fmt_id_check(uq.batch_id, strlen(uq.batch_id), "batch", &err);
	if (rc == IDP_OK && uq.after_id != NULL)
		rc = fmt_id_check(uq.after_id, strlen(uq.after_id), "after", &err);
	uq.imported_before = l.now - older;
	if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	else if (list_start(req, FMT_ADMIN_UNPROVISIONED, &l)) {
		rc = srv_store_unprovisioned_foreach(ctx->store, &uq, add_unprov, &l, &err);
		send_list(ctx, req, &l, rc, &err);
	}
	evhttp_clear_headers(&q);
}

/* ---------------------------------------------------------------- backup */

/* WARNING: test-only fault points (srv_fault_test): write the first half of
 * the snapshot db[0..len) as a 200 answer straight to the connection, then
 * end the process (exit status 99) as a crash would. backup.cut announces
 * the whole length (the answer is cut mid-body), backup.short the half (a
 * well-framed answer that holds a truncated database); backup.stall is
 * backup.cut that hangs (the loop's thread sleeps until the process is
 * killed) instead of ending. Returns when none is set. */
static void backup_fault(struct evhttp_request *req, const uint8_t *db, size_t len)
{
	bool stall = srv_fault_test("backup.stall");
	bool cut = stall || srv_fault_test("backup.cut");
	SSL *ssl = srv_http_ssl(req);
	if ((!cut && !srv_fault_test("backup.short")) || ssl == NULL)
		return;
	char head[160];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.sqlite3\r\n"
	                 "Content-Length: %zu\r\n\r\n",
	                 cut ? len : len / 2);
	int fd = SSL_get_fd(ssl), fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
	if (n > 0 && fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0) {
		const uint8_t *parts[2] = {(const uint8_t *)head, db};
		size_t lens[2] = {(size_t)n, len / 2};
		for (size_t i = 0; i < 2; i++)
			for (size_t off = 0, k; off < lens[i]; off += k) {
				int w = SSL_write(ssl, parts[i] + off,
				                  lens[i] - off > 65536 ? 65536 : (int)(lens[i] - off));
				if (w <= 0)
					_exit(99);
				k = (size_t)w;
			}
	}
	if (stall)
		for (;;)
			(void)pause(); /* until killed */
	_exit(99);
}

/* The cleanup of a backup answer's buffer: map is the mapping itself. */
static void unmap_snapshot(const void *data, size_t len, void *map)
{
	(void)data;
	(void)munmap(map, len);
}

/* POST /v1/admin/backup: a consistent snapshot of the database (VACUUM INTO
 * a temporary file in the state directory, served as
 * application/vnd.sqlite3, then gone). The file is created here (0600,
 * O_EXCL) and unlinked before it is served; it is never the database file,
 * whose locks an open()/close() would drop (docs/store.md). */
void srv_admin_backup(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static atomic_uint counter;
	if (!authorized(ctx, req))
		return;
	const uint8_t *body = NULL;
	size_t body_len = 0;
	srv_http_body(req, &body, &body_len);
	if (body_len != 0) {
		srv_http_error(req, FMT_API_ERR_BAD_REQUEST, "body: a backup request has no body");
		return;
	}
	char path[SRV_STATE_PATH_MAX + 64];
	int n = snprintf(path, sizeof(path), "%s/.backup-%ld-%u.tmp", ctx->state->dir,
	                 (long)getpid(), atomic_fetch_add(&counter, 1u));
	struct idp_error err = {0};
	enum idp_err rc = IDP_OK;
	int fd = -1;
	if (n < 0 || (size_t)n >= sizeof(path))
		rc = idp_error_set(&err, IDP_E_LIMIT, "backup: state directory path too long");
	if (rc == IDP_OK &&
	    (fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
		rc = idp_error_set(&err, IDP_E_IO, "backup: %s: %s", path, strerror(errno));
	if (rc == IDP_OK)
		rc = srv_store_snapshot(ctx->store, path, &err);
	if (fd >= 0)
		(void)unlink(path);
	struct stat sb;
	void *map = MAP_FAILED;
	if (rc == IDP_OK && (fstat(fd, &sb) != 0 || sb.st_size <= 0))
		rc = idp_error_set(&err, IDP_E_IO, "backup: snapshot is empty");
	if (rc == IDP_OK &&
	    (map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
		rc = idp_error_set(&err, IDP_E_IO, "backup: map snapshot: %s", strerror(errno));
	if (fd >= 0)
		(void)close(fd);
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	backup_fault(req, map, (size_t)sb.st_size);
	/* By reference: the answer is sent from the mapping, which is unmapped
	 * once the last byte has left (a copy would cost the server the
	 * database's size in memory). */
	if (evbuffer_add_reference(evhttp_request_get_output_buffer(req), map, (size_t)sb.st_size,
	                           unmap_snapshot, map) != 0) {
		(void)munmap(map, (size_t)sb.st_size);
		srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
		return;
	}
	srv_http_reply(req, 200, "application/vnd.sqlite3", NULL, 0);
	fio_log(FIO_LOG_INFO, "admin.done", "loop=%u action=backup bytes=%lld", ctx->loop,
	        (long long)sb.st_size);
}

/* ---------------------------------------------------------------- credentials */

/* GET /v1/admin/whoami: the caller's credential name and role (any role). */
void srv_admin_whoami(struct srv_ctx *ctx, struct evhttp_request *req)
{
	struct srv_admin_who who;
	struct evkeyvalq q; /* no parameters */
	if (!srv_admin_caller(ctx, req, &who) || !srv_admin_query(ctx, req, &q, NULL, 0))
		return;
	evhttp_clear_headers(&q);
	const struct fmt_admin_whoami w = {.name = who.name, .role = srv_role_name(who.role)};
	srv_admin_send_body(ctx, req, FMT_ADMIN_WHOAMI, &w);
}

/* A credential name: 1..SRV_STORE_CRED_NAME_MAX bytes of [A-Za-z0-9._-]. */
static enum idp_err check_cred_name(const char *s, size_t len, struct idp_error *err)
{
	if (len == 0 || len > SRV_STORE_CRED_NAME_MAX)
		return idp_error_set(err, IDP_E_FORMAT, "name: 1 to %u bytes",
		                     SRV_STORE_CRED_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return idp_error_set(err, IDP_E_FORMAT,
			                     "name: only letters, digits, '.', '_' and '-'");
	}
	return IDP_OK;
}

static enum idp_err cred_add(struct srv_store *st, const void *arg, int64_t now,
                             struct idp_error *err)
{
	(void)now;
	return srv_store_credential_add(st, arg, err);
}

/* POST /v1/admin/credentials {"name", "role"}: a new named credential; the
 * answer carries its secret, the only time it is shown (201). */
void srv_admin_credential_add(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!authorized(ctx, req))
		return;
	struct fmt_admin_credential_add in;
	struct fmt_admin_doc doc;
	if (!srv_admin_parse_body(ctx, req, FMT_ADMIN_CREDENTIAL_ADD, &in, &doc))
		return;
	struct idp_error err = {0};
	struct srv_credential c = {.created_at = (int64_t)time(NULL)};
	size_t name_len = strlen(in.name);
	enum idp_err rc = check_cred_name(in.name, name_len, &err);
	if (rc == IDP_OK && strcmp(in.name, SRV_ADMIN_BUILTIN) == 0)
		rc = idp_error_set(&err, IDP_E_DUPLICATE,
		                   "name: \"admin\" is the state directory's credential");
	if (rc == IDP_OK && !srv_role_parse(in.role, &c.role))
		rc = idp_error_set(&err, IDP_E_FORMAT, "role: must be admin or viewer");
	if (rc == IDP_OK)
		memcpy(c.name, in.name, name_len);
	fmt_admin_doc_free(&doc);
	uint8_t raw[32];
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	if (rc == IDP_OK && RAND_bytes(raw, sizeof(raw)) != 1)
		rc = idp_error_set(&err, IDP_E_CRYPTO, "credential: no randomness");
	if (rc == IDP_OK) {
		(void)fmt_b64_encode(FMT_B64_URL, raw, sizeof(raw), secret);
		(void)SHA256((const uint8_t *)secret, strlen(secret), c.hash);
		char detail[32];
		(void)snprintf(detail, sizeof(detail), "role=%s", srv_role_name(c.role));
		rc = in_transaction(ctx->store, cred_add, &c, "admin.credential_added", c.name,
		                    detail, c.created_at, &err);
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(c.hash, sizeof(c.hash));
	if (rc != IDP_OK) {
		OPENSSL_cleanse(secret, sizeof(secret));
		const struct fmt_admin_done d = {.name = c.name};
		answer(ctx, req, "credential_add", rc, &err, "name", c.name, &d);
		return;
	}
	fio_log(FIO_LOG_INFO, "admin.done", "loop=%u action=credential_add name=%s role=%s",
	        ctx->loop, c.name, srv_role_name(c.role));
	const struct fmt_admin_secret out = {
	        .name = c.name, .role = srv_role_name(c.role), .secret = secret};
	cJSON *a = NULL;
	if (fmt_admin_encode(FMT_ADMIN_SECRET, &out, &a, &err) != IDP_OK)
		srv_http_error(req, FMT_API_ERR_INTERNAL, "cannot encode the answer");
	else
		srv_http_json(req, 201, a);
	OPENSSL_cleanse(secret, sizeof(secret));
	cJSON *sv = cJSON_GetObjectItemCaseSensitive(a, "secret");
	if (sv != NULL && cJSON_IsString(sv))
		OPENSSL_cleanse(sv->valuestring, strlen(sv->valuestring));
	cJSON_Delete(a);
}

static int add_credential(void *ctx, const struct srv_credential *c)
{
	const struct fmt_admin_credential row = {.name = c->name,
	                                         .role = srv_role_name(c->role),
	                                         .source = "store",
	                                         .created_at = c->created_at,
	                                         .revoked_at = c->revoked_at};
	struct list *l = ctx;
	int stop = list_add(l, &row);
	if (stop == 0)
		(void)snprintf(l->last, sizeof(l->last), "%s", c->name);
	return stop;
}

/* GET /v1/admin/credentials[?after=NAME]: the state directory's "admin"
 * (first page only), then the named credentials by name, revoked ones too
 * (never a secret or hash), at most SRV_ADMIN_LIST_MAX; "next" names the
 * credential to continue after. */
void srv_admin_credential_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"after"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 1))
		return;
	const char *after = evhttp_find_header(&q, "after");
	struct idp_error err = {0};
	enum idp_err rc = after != NULL ? check_cred_name(after, strlen(after), &err) : IDP_OK;
	if (rc != IDP_OK) /* named as the parameter it is here */
		(void)idp_error_set(&err, rc, "after: not a credential name (1 to %u of "
		                              "[A-Za-z0-9._-])",
		                    SRV_STORE_CRED_NAME_MAX);
	struct list l = {0};
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	} else if (list_start(req, FMT_ADMIN_CREDENTIAL, &l)) {
		const struct fmt_admin_credential builtin = {
		        .name = SRV_ADMIN_BUILTIN, .role = "admin", .source = "state-dir"};
		if (after != NULL || list_add(&l, &builtin) == 0)
			rc = srv_store_credential_page(ctx->store, after,
			                               (int64_t)(SRV_ADMIN_LIST_MAX - l.n),
			                               add_credential, &l, &err);
		send_list(ctx, req, &l, rc, &err);
	}
	evhttp_clear_headers(&q);
}

static enum idp_err cred_revoke(struct srv_store *st, const void *arg, int64_t now,
                                struct idp_error *err)
{
	return srv_store_credential_revoke(st, arg, now, err);
}

/* POST /v1/admin/credentials/revoke {"name"}: the credential stops working
 * with the next request (every request looks it up). */
void srv_admin_credential_revoke(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!authorized(ctx, req))
		return;
	struct fmt_admin_name in;
	struct fmt_admin_doc doc;
	if (!srv_admin_parse_body(ctx, req, FMT_ADMIN_NAME, &in, &doc))
		return;
	struct idp_error err = {0};
	char name[SRV_STORE_CRED_NAME_MAX + 1] = "";
	enum idp_err rc = check_cred_name(in.name, strlen(in.name), &err);
	if (rc == IDP_OK)
		(void)snprintf(name, sizeof(name), "%s", in.name);
	fmt_admin_doc_free(&doc);
	if (rc == IDP_OK && strcmp(name, SRV_ADMIN_BUILTIN) == 0)
		rc = idp_error_set(&err, IDP_E_CONFLICT,
		                   "credential admin: the state directory's credential; replace it "
		                   "with idprovd --reset-admin");
	if (rc == IDP_OK)
		rc = in_transaction(ctx->store, cred_revoke, name, "admin.credential_revoked", name,
		                    NULL, (int64_t)time(NULL), &err);
	const struct fmt_admin_done d = {.name = name};
	answer(ctx, req, "credential_revoke", rc, &err, "name", name, &d);
}

/* ---------------------------------------------------------------- out-of-band secrets */

#define OOB_EXPIRES_DEFAULT 604800   /* 7 days */
#define OOB_EXPIRES_MAX     31622400 /* 366 days */

static enum idp_err oob_put(struct srv_store *st, const void *arg, int64_t now,
                            struct idp_error *err)
{
	(void)now;
	return srv_store_oob_put(st, arg, err);
}

/* POST /v1/admin/oob {"device_id", "verifier", "expires_in"?}: the verifier
 * of a device's label secret (formats/api.md §15; the client runs the KDF,
 * the secret never reaches the server), valid for expires_in seconds
 * (default 7 days) and once. An entry for the same ID is replaced. */
void srv_admin_oob_add(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!authorized(ctx, req))
		return;
	struct fmt_admin_oob_add in;
	struct fmt_admin_doc doc;
	if (!srv_admin_parse_body(ctx, req, FMT_ADMIN_OOB_ADD, &in, &doc))
		return;
	struct idp_error err = {0};
	size_t id_len = strlen(in.device_id), n = 0;
	const char *id = in.device_id;
	int64_t expires_in = in.expires_in != 0 ? in.expires_in : OOB_EXPIRES_DEFAULT;
	struct srv_oob e = {.created_at = (int64_t)time(NULL)};
	uint8_t raw[SRV_STORE_OOB_VERIFIER_LEN + 3];
	enum idp_err rc = fmt_b64_decode(FMT_B64_STD, in.verifier, strlen(in.verifier), raw,
	                                 sizeof(raw), &n, &err);
	if (rc == IDP_OK && n != SRV_STORE_OOB_VERIFIER_LEN)
		rc = idp_error_set(&err, IDP_E_FORMAT, "verifier: %zu bytes, expected %u", n,
		                   SRV_STORE_OOB_VERIFIER_LEN);
	if (rc == IDP_OK && (expires_in < 60 || expires_in > OOB_EXPIRES_MAX))
		rc = idp_error_set(&err, IDP_E_FORMAT, "expires_in: must be 60..%d seconds",
		                   OOB_EXPIRES_MAX);
	if (rc == IDP_OK) {
		memcpy(e.device_id, id, id_len);
		memcpy(e.verifier, raw, sizeof(e.verifier));
		e.expires_at = e.created_at + expires_in;
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	fmt_admin_doc_free(&doc); /* the verifier's text: not a secret (a KDF of one) */
	if (rc == IDP_OK) {
		char detail[48];
		(void)snprintf(detail, sizeof(detail), "expires %lld", (long long)e.expires_at);
		rc = in_transaction(ctx->store, oob_put, &e, "admin.oob_added", e.device_id, detail,
		                    e.created_at, &err);
	}
	OPENSSL_cleanse(e.verifier, sizeof(e.verifier));
	const struct fmt_admin_done d = {.device_id = e.device_id};
	answer(ctx, req, "oob_add", rc, &err, "device_id", e.device_id, &d);
}

static int add_oob(void *ctx, const struct srv_oob *e)
{
	struct list *l = ctx;
	const struct fmt_admin_oob row = {.device_id = e->device_id,
	                                  .created_at = e->created_at,
	                                  .expires_at = e->expires_at,
	                                  .used_at = e->used_at,
	                                  .failures = e->failures};
	int stop = list_add(l, &row);
	if (stop == 0)
		(void)snprintf(l->last, sizeof(l->last), "%s", e->device_id);
	return stop;
}

/* GET /v1/admin/oob[?after=ID]: the entries in ID order (never a verifier),
 * at most SRV_ADMIN_LIST_MAX; "next" names the ID to continue after. */
void srv_admin_oob_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"after"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 1))
		return;
	const char *after = evhttp_find_header(&q, "after");
	struct idp_error err = {0};
	enum idp_err rc = after != NULL ? fmt_id_check(after, strlen(after), "after", &err) : IDP_OK;
	struct list l = {0};
	if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	else if (list_start(req, FMT_ADMIN_OOB, &l)) {
		rc = srv_store_oob_foreach(ctx->store, after, SRV_ADMIN_LIST_MAX, add_oob, &l, &err);
		send_list(ctx, req, &l, rc, &err);
	}
	evhttp_clear_headers(&q);
}
