/*
 * handlers.c - see handlers.h. Error codes and statuses: formats/api.md §9.
 *
 * Order of checks (formats/api.md §5.3): parse and proof first, so that an
 * unauthenticated request writes nothing; then nonce, token and decision in
 * one store transaction (server/provision.c).
 */
#include "server/handlers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "formats/b64.h"
#include "formats/pop.h"
#include "server/import.h"
#include "formats/io/log.h"
#include "server/checkpoint.h"
#include "server/conn.h"
#include "server/fault.h"
#include "server/site.h"
#include "server/spool.h"

#define ANSWER_MAX ((size_t)2 * FMT_API_BODY_MAX)

enum idp_err srv_app_init(struct srv_app *app, const struct srv_config *cfg,
                          const char *first_bound, struct idp_error *err)
{
	memset(app, 0, sizeof(*app));
	int n;
	if (cfg->server_url[0] != '\0') {
		n = snprintf(app->server_url, sizeof(app->server_url), "%s", cfg->server_url);
	} else {
		char host[256];
		if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
			(void)snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		const char *colon = first_bound != NULL ? strrchr(first_bound, ':') : NULL;
		n = snprintf(app->server_url, sizeof(app->server_url), "https://%s:%s", host,
		             colon != NULL ? colon + 1 : "8443");
	}
	if (n < 0 || (size_t)n >= sizeof(app->server_url) ||
	    strncmp(app->server_url, "https://", 8) != 0)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "server-url: must be https:// and at most %u bytes",
		                     FMT_API_URL_MAX);
	n = snprintf(app->audience, sizeof(app->audience), "%s", cfg->token_audience);
	if (n <= 0 || (size_t)n >= sizeof(app->audience))
		return idp_error_set(err, IDP_E_FORMAT, "token-audience: 1 to %u bytes",
		                     FMT_TOKEN_AUD_MAX);
	app->pcfg.issuer = app->server_url;
	app->pcfg.audience = app->audience;
	app->pcfg.provisioning_lifetime = cfg->provisioning_token_lifetime;
	app->pcfg.device_lifetime = cfg->token_lifetime;
	app->pcfg.retry_after = cfg->pending_retry_after;
	app->pcfg.pending.max_total = cfg->max_pending;
	app->pcfg.pending.max_per_source = cfg->max_pending_per_address;
	app->pcfg.pending.lifetime = cfg->pending_lifetime;
	app->pcfg.mac_mismatch = cfg->mac_mismatch;
	app->pcfg.identity_reuse = cfg->identity_reuse;
	app->pop_skew = FMT_API_POP_SKEW_DEFAULT;
	app->nonce_lifetime = cfg->nonce_lifetime;
	for (size_t i = 0; i < cfg->n_rules; i++) {
		enum idp_err rc = srv_rules_add(&app->rules, cfg->rules[i], err);
		if (rc != IDP_OK) {
			srv_rules_free(&app->rules);
			return rc;
		}
	}
	const struct {
		unsigned per_minute, burst;
		struct srv_throttle **t;
	} th[] = {
	        {cfg->throttle_per_minute, cfg->throttle_burst, &app->throttle},
	        {cfg->throttle_device_per_minute, cfg->throttle_device_burst, &app->throttle_device},
	        {cfg->throttle_station_per_minute, cfg->throttle_station_burst,
	         &app->throttle_station},
	        {cfg->throttle_oob_per_minute, cfg->throttle_oob_burst, &app->throttle_oob},
	};
	for (size_t i = 0; i < sizeof(th) / sizeof(th[0]); i++) {
		if (th[i].per_minute == 0)
			continue;
		enum idp_err rc = srv_throttle_new(th[i].per_minute, th[i].burst, th[i].t, err);
		if (rc != IDP_OK) {
			srv_app_free(app);
			return rc;
		}
	}
	return IDP_OK;
}

void srv_app_free(struct srv_app *app)
{
	srv_rules_free(&app->rules);
	srv_throttle_free(app->throttle);
	srv_throttle_free(app->throttle_device);
	srv_throttle_free(app->throttle_station);
	srv_throttle_free(app->throttle_oob);
	app->throttle = app->throttle_device = app->throttle_station = app->throttle_oob = NULL;
}

enum fmt_api_err_code srv_handlers_fail(struct srv_ctx *ctx, struct evhttp_request *req,
                                        enum idp_err rc, enum fmt_api_err_origin origin,
                                        const struct idp_error *err)
{
	/* Another process holds the store's lock: run again later, off the loop. */
	if (rc == IDP_E_AGAIN && srv_store_was_busy(ctx->store) && srv_http_defer(req))
		return FMT_API_ERR_UNAVAILABLE;
	enum fmt_api_err_code code = fmt_api_err_of(rc, origin);
	if (fmt_api_err_http_status(code) < 500) {
		srv_http_error(req, code, "%s", err->msg);
		return code;
	}
	if (srv_fault_answer(ctx->loop, req, code, err)) /* storage_full, unavailable */
		return code;
	char ebuf[FIO_LOG_ESC_MAX];
	fio_log(FIO_LOG_ERROR, "request.error", "loop=%u code=%s error=%s", ctx->loop,
	        fmt_api_err_code_name(code), fio_log_err(err, ebuf));
	srv_http_error(req, code, "%s", "server error (details in its log)");
	return code;
}

/* GET /v1/health: the server answers and its store connection works; also
 * the count of log lines the rate limit dropped (formats/io/log.h). */
void srv_handlers_health(struct srv_ctx *ctx, struct evhttp_request *req)
{
	int64_t version = 0;
	struct idp_error err = {0};
	if (srv_store_schema_version(ctx->store, &version, &err) != IDP_OK) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_ERROR, "health.store", "loop=%u error=%s", ctx->loop,
		        fio_log_err(&err, ebuf));
		srv_http_error(req, FMT_API_ERR_UNAVAILABLE, "store unavailable");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || cJSON_AddStringToObject(o, "status", "ok") == NULL ||
	    cJSON_AddStringToObject(o, "version", SRV_VERSION) == NULL ||
	    cJSON_AddNumberToObject(o, "schema", (double)version) == NULL ||
	    cJSON_AddStringToObject(o, "ca_fingerprint", ctx->state->ca_fingerprint) == NULL ||
	    cJSON_AddNumberToObject(o, "log_suppressed", (double)fio_log_suppressed_total()) ==
	            NULL) {
		cJSON_Delete(o);
		srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
		return;
	}
	srv_http_json(req, 200, o);
	cJSON_Delete(o);
}

/* GET /v1/ca: the CA certificate devices pin. */
void srv_handlers_ca(struct srv_ctx *ctx, struct evhttp_request *req)
{
	srv_http_reply(req, 200, "application/x-pem-file", ctx->state->ca_pem,
	               ctx->state->ca_pem_len);
}

/* GET /v1/keys and /.well-known/jwks.json: the token-verification keys as a
 * JWK Set (formats/token.md, "Key set"): the current key and every retired
 * one whose tokens may still be alive, so a hub can verify device tokens. */
void srv_handlers_jwks(struct srv_ctx *ctx, struct evhttp_request *req)
{
	struct fmt_token_key keys[SRV_STATE_TOKEN_KEYS_MAX];
	size_t n = srv_state_token_keys(ctx->state, (int64_t)time(NULL), keys);
	char *body = NULL;
	size_t len = 0;
	struct idp_error err = {0};
	if (fmt_token_jwks_encode(keys, n, &body, &len, &err) != IDP_OK) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_ERROR, "jwks.error", "loop=%u error=%s", ctx->loop,
		        fio_log_err(&err, ebuf));
		srv_http_error(req, FMT_API_ERR_INTERNAL, "cannot encode the key set");
		return;
	}
	srv_http_reply(req, 200, "application/jwk-set+json", body, len);
	free(body);
}

/* POST /v1/nonce: a fresh single-use nonce (expired ones are purged in the
 * same transaction). */
static bool throttled(struct srv_ctx *ctx, struct evhttp_request *req);

void srv_handlers_nonce(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (throttled(ctx, req))
		return;
	const struct srv_app *app = ctx->app;
	struct fmt_api_nonce n = {.time = (int64_t)time(NULL)};
	n.expires = n.time + app->nonce_lifetime;
	struct idp_error err = {0};
	if (RAND_bytes(n.nonce, sizeof(n.nonce)) != 1) {
		srv_http_error(req, FMT_API_ERR_INTERNAL, "no randomness");
		return;
	}
	enum idp_err rc = srv_store_begin(ctx->store, &err);
	if (rc == IDP_OK)
		rc = srv_store_nonce_purge(ctx->store, n.time, &err);
	if (rc == IDP_OK)
		rc = srv_store_nonce_insert(ctx->store, n.nonce, sizeof(n.nonce), n.expires, &err);
	if (rc == IDP_OK)
		rc = srv_store_commit(ctx->store, &err);
	else
		srv_store_rollback(ctx->store);
	char body[256];
	size_t len = 0;
	if (rc == IDP_OK)
		rc = fmt_api_nonce_encode(&n, body, sizeof(body), &len, &err);
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	srv_http_reply(req, 200, "application/json", body, len);
}

static enum fmt_api_reason reason_of(enum srv_refusal r)
{
	switch (r) {
	case SRV_REFUSE_KEY_MISMATCH:
		return FMT_API_REASON_KEY_MISMATCH;
	case SRV_REFUSE_MAC_MISMATCH:
		return FMT_API_REASON_MAC_MISMATCH;
	case SRV_REFUSE_KEY_IN_USE:
		return FMT_API_REASON_KEY_REUSED;
	case SRV_REFUSE_REVOKED:
		return FMT_API_REASON_REVOKED;
	case SRV_REFUSE_OOB_MISMATCH:
		return FMT_API_REASON_OOB_MISMATCH;
	default:
		return FMT_API_REASON_REJECTED;
	}
}

static void set_rejected(struct fmt_api_status *s, enum srv_refusal r)
{
	s->status = FMT_API_REJECTED;
	s->reason = reason_of(r);
	(void)snprintf(s->reason_code, sizeof(s->reason_code), "%s",
	               fmt_api_reason_name(s->reason));
}

/* Send a decision (formats/api.md §6). Its ca_pem, when present, is the
 * state's, checked once at open (server/state.h). */
static void send_status(struct evhttp_request *req, struct fmt_api_status *s)
{
	char *body = malloc(ANSWER_MAX);
	size_t len = 0;
	struct idp_error err = {0};
	if (body == NULL ||
	    fmt_api_status_encode_ca_checked(s, body, ANSWER_MAX, &len, &err) != IDP_OK) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_ERROR, "answer.error", "error=%s", fio_log_err(&err, ebuf));
		srv_http_error(req, FMT_API_ERR_INTERNAL, "cannot encode the answer");
	} else {
		if (s->status == FMT_API_PENDING) {
			char ra[24];
			(void)snprintf(ra, sizeof(ra), "%lld", (long long)s->retry_after);
			(void)evhttp_add_header(evhttp_request_get_output_headers(req),
			                        "Retry-After", ra);
		}
		srv_http_reply(req, fmt_api_status_http_status(s->status), "application/json", body,
		               len);
	}
	if (body != NULL) {
		OPENSSL_cleanse(body, ANSWER_MAX); /* it may hold a token */
		free(body);
	}
}

/* The client address that counts for the per-address pending cap: an IPv4
 * address, or the /64 prefix of an IPv6 one (a host picks addresses in its
 * /64 at will). NULL when unknown. */
static const char *source_of(struct evhttp_request *req, char buf[static SRV_STORE_SOURCE_MAX + 1])
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;
	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, &addr, &port);
	if (addr == NULL)
		return NULL;
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];
	int n;
	if (inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_V4MAPPED(&a6)) {
		struct in_addr a4;
		memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
		if (inet_ntop(AF_INET, &a4, text, sizeof(text)) == NULL)
			return NULL;
		n = snprintf(buf, SRV_STORE_SOURCE_MAX + 1, "%s", text);
	} else if (inet_pton(AF_INET6, addr, &a6) == 1) {
		memset(&a6.s6_addr[8], 0, 8);
		if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) == NULL)
			return NULL;
		n = snprintf(buf, SRV_STORE_SOURCE_MAX + 1, "%s/64", text);
	} else {
		n = snprintf(buf, SRV_STORE_SOURCE_MAX + 1, "%s", addr);
	}
	return n > 0 && (size_t)n <= SRV_STORE_SOURCE_MAX ? buf : NULL;
}

void srv_handlers_error_retry(struct evhttp_request *req, enum fmt_api_err_code code,
                              const char *msg, int64_t wait)
{
	char ra[24], body[FMT_API_ERROR_BODY_MAX];
	size_t len = 0;
	(void)snprintf(ra, sizeof(ra), "%lld", (long long)wait);
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
	if (wait < 1 || wait > FMT_API_RETRY_MAX ||
	    fmt_api_error_body(code, msg, strlen(msg), wait, body, sizeof(body), &len, NULL) !=
	            IDP_OK)
		srv_http_error(req, code, "%s", msg);
	else
		srv_http_reply(req, fmt_api_err_http_status(code), "application/json", body, len);
}

/* Whether key (of kind: "source", "device", "station") is over its bucket
 * in t (server/throttle.h; NULL: off): then req has been answered 429 with
 * Retry-After, and nothing was written. peek: take nothing when allowed. */
static bool key_throttled(struct srv_ctx *ctx, struct evhttp_request *req, struct srv_throttle *t,
                          const char *kind, const char *key, bool peek)
{
	if (t == NULL || srv_http_retrying(req)) /* charged on its first run */
		return false;
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	int64_t wait = 0;
	if (peek ? srv_throttle_peek(t, key, now, &wait) : srv_throttle_take(t, key, now, &wait))
		return false;
	char wbuf[SRV_STORE_ID_MAX * 4 + 8]; /* an escaped ID or address */
	(void)fio_log_esc(key, strnlen(key, SRV_STORE_ID_MAX), wbuf, sizeof(wbuf));
	fio_log(FIO_LOG_WARN, "request.throttled", "loop=%u %s=%s retry_after=%lld", ctx->loop,
	        kind, wbuf, (long long)wait);
	char msg[IDP_ERROR_MSG_MAX];
	(void)snprintf(msg, sizeof(msg), "too many requests %s %s; retry after %lld s",
	               strcmp(kind, "source") == 0 ? "from" : "for", wbuf, (long long)wait);
	srv_handlers_error_retry(req, FMT_API_ERR_THROTTLED, msg, wait);
	return true;
}

/* Whether req's client address is over its throttle (server/throttle.h):
 * then it has been answered 429 with Retry-After, and nothing was written. */
static bool throttled(struct srv_ctx *ctx, struct evhttp_request *req)
{
	const struct srv_app *app = ctx->app;
	char source[SRV_STORE_SOURCE_MAX + 1];
	const char *who = source_of(req, source);
	return who != NULL && key_throttled(ctx, req, app->throttle, "source", who, false);
}

/* Log what became of an out-of-band proof; a wrong one takes from the ID's
 * oob bucket (server/throttle.h). */
static void oob_outcome(struct srv_ctx *ctx, struct evhttp_request *req, const char *idbuf,
                        const char *device_id, enum srv_oob_outcome o)
{
	static const char *const names[] = {
	        [SRV_OOB_ABSENT] = "absent",     [SRV_OOB_NO_ENTRY] = "no-entry",
	        [SRV_OOB_EXPIRED] = "expired",   [SRV_OOB_USED] = "used",
	        [SRV_OOB_MISMATCH] = "mismatch", [SRV_OOB_PROVEN] = "proven",
	};
	const struct srv_app *app = ctx->app;
	if (o == SRV_OOB_ABSENT)
		return;
	char pbuf[64];
	fio_log(o == SRV_OOB_PROVEN || o == SRV_OOB_NO_ENTRY ? FIO_LOG_INFO : FIO_LOG_WARN,
	        "device.oob", "loop=%u device=%s outcome=%s peer=%s", ctx->loop, idbuf, names[o],
	        srv_http_peer(req, pbuf));
	if (o == SRV_OOB_MISMATCH && app->throttle_oob != NULL) {
		struct timespec ts;
		int64_t wait = 0;
		(void)clock_gettime(CLOCK_MONOTONIC, &ts);
		(void)srv_throttle_take(app->throttle_oob, device_id,
		                        (double)ts.tv_sec + (double)ts.tv_nsec / 1e9, &wait);
	}
}

/* The shared part of the device endpoints: parse, verify the proof on this
 * connection, then decide. */
static void device_request(struct srv_ctx *ctx, struct evhttp_request *req,
                           enum fmt_api_purpose purpose)
{
	const struct srv_app *app = ctx->app;
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	if (ct != NULL && strncmp(ct, "application/json", 16) != 0) {
		srv_http_error(req, FMT_API_ERR_MEDIA_TYPE, "send application/json");
		return;
	}
	const uint8_t *buf = NULL;
	size_t len = 0;
	srv_http_body(req, &buf, &len);
	if (len == 0) { /* formats/api.md §9: no body where one is needed */
		srv_http_error(req, FMT_API_ERR_BAD_REQUEST,
		               "body: empty; send the request as JSON");
		return;
	}
	uint8_t exporter[FMT_API_EXPORTER_LEN];
	struct idp_error err = {0};
	enum idp_err rc = srv_http_channel_binding(req, exporter, &err);
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_POP, &err);
		return;
	}
	int64_t now = (int64_t)time(NULL);
	struct fmt_api_request *r = malloc(sizeof(*r));
	struct fmt_key *key = NULL;
	struct srv_issued out;
	memset(&out, 0, sizeof(out));
	char idbuf[FIO_LOG_ESC_MAX];
	if (r == NULL) {
		srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
		return;
	}
	/* The key the proof was verified with: one import per request. */
	rc = fmt_api_request_accept_key(purpose, buf, len, exporter, now, app->pop_skew, r, &key,
	                                &err);
	if (rc != IDP_OK) {
		enum fmt_api_err_code code = srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_POP, &err);
		fio_log(FIO_LOG_INFO, "device.refused", "loop=%u check=%s", ctx->loop,
		        fmt_api_err_code_name(code));
		goto out;
	}
	(void)fio_log_esc(r->device_id, strlen(r->device_id), idbuf, sizeof(idbuf));
	if (key_throttled(ctx, req, app->throttle_device, "device", r->device_id, false))
		goto out;
	const uint8_t *nonce_p = r->pop.has_nonce ? r->pop.nonce : NULL;
	enum fmt_token_check failed = FMT_TOKEN_CHECK_OK;
	/* The proof is used once (formats/api.md §5.3): its signed bytes are
	 * remembered until its timestamp leaves the skew window. */
	struct srv_proof proof = {.expires_at = r->pop.ts + app->pop_skew + 1};
	uint8_t msg[FMT_API_POP_MSG_MAX];
	size_t msg_len = 0;
	rc = fmt_api_pop_message(r, exporter, msg, &msg_len, &err);
	if (rc != IDP_OK || SHA256(msg, msg_len, proof.hash) == NULL) {
		srv_http_error(req, FMT_API_ERR_INTERNAL, "cannot hash the proof");
		goto out;
	}
	/* A wrong out-of-band proof costs a token of the ID's oob bucket; with
	 * none left, no proof of that ID is checked (formats/api.md §15). */
	if (purpose == FMT_API_PROVISION && r->has_oob_proof &&
	    key_throttled(ctx, req, app->throttle_oob, "device", r->device_id, true))
		goto out;
	if (purpose == FMT_API_PROVISION) {
		char mac[FMT_MAC_TEXT_LEN + 1], source[SRV_STORE_SOURCE_MAX + 1];
		fmt_mac_format(r->mac, mac);
		const struct srv_provision_req pr = {.device_id = r->device_id,
		                                     .mac = mac,
		                                     .key = key,
		                                     .nonce = nonce_p,
		                                     .proof = &proof,
		                                     .now = now,
		                                     .source = source_of(req, source),
		                                     .oob_proof = r->has_oob_proof ? r->oob_proof
		                                                                   : NULL,
		                                     .exporter = exporter};
		rc = srv_provision(ctx->store, ctx->state, &app->pcfg, &pr, &out, &err);
		oob_outcome(ctx, req, idbuf, r->device_id, out.oob);
	} else if (purpose == FMT_API_EXCHANGE) {
		rc = srv_token_exchange(ctx->store, ctx->state, &app->pcfg,
		                        (const uint8_t *)r->token, strlen(r->token), r->device_id,
		                        key, nonce_p, &proof, now, &out, &failed, &err);
	} else {
		rc = srv_token_renew(ctx->store, ctx->state, &app->pcfg, (const uint8_t *)r->token,
		                     strlen(r->token), r->device_id, key, nonce_p, &proof, now,
		                     &out, &failed, &err);
	}
	struct fmt_api_status s;
	memset(&s, 0, sizeof(s));
	if (rc != IDP_OK) {
		fio_log(FIO_LOG_INFO, "device.refused",
		        "loop=%u device=%s purpose=%d refusal=%s check=%s", ctx->loop, idbuf,
		        (int)purpose, srv_refusal_name(out.refusal), fmt_token_check_name(failed));
		if (out.refusal == SRV_REFUSE_NONCE)
			srv_http_error(req, FMT_API_ERR_NONCE_INVALID, "nonce unknown, expired or used");
		else if (out.refusal == SRV_REFUSE_PROOF)
			srv_http_error(req, FMT_API_ERR_POP_INVALID,
			               "pop: already used; sign a new one");
		else if (out.refusal == SRV_REFUSE_TOKEN)
			srv_http_error(req, FMT_API_ERR_TOKEN_INVALID, "%s", err.msg);
		else if (out.refusal == SRV_REFUSE_PENDING_LIMIT)
			srv_handlers_error_retry(req,
			                 rc == IDP_E_LIMIT ? FMT_API_ERR_THROTTLED
			                                   : FMT_API_ERR_UNAVAILABLE,
			                 err.msg, app->pcfg.retry_after);
		else if (out.refusal != SRV_REFUSE_NONE) {
			set_rejected(&s, out.refusal);
			send_status(req, &s);
		} else {
			(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		}
		goto out;
	}
	fio_log(FIO_LOG_INFO, "device.decision",
	        "loop=%u device=%s purpose=%d decision=%d refusal=%s", ctx->loop, idbuf,
	        (int)purpose, (int)out.decision, srv_refusal_name(out.refusal));
	if (out.decision == SRV_DECISION_APPROVED) {
		s.status = FMT_API_APPROVED;
		s.token_kind = purpose == FMT_API_PROVISION ? FMT_TOKEN_PROVISION : FMT_TOKEN_DEVICE;
		(void)snprintf(s.token, sizeof(s.token), "%s", out.token);
		s.expires = out.expires_at;
		if (purpose == FMT_API_PROVISION) {
			(void)snprintf(s.server_url, sizeof(s.server_url), "%s", app->server_url);
			(void)snprintf(s.ca_pem, sizeof(s.ca_pem), "%s", ctx->state->ca_pem);
		}
	} else if (out.decision == SRV_DECISION_PENDING) {
		s.status = FMT_API_PENDING;
		s.retry_after = out.retry_after;
	} else {
		set_rejected(&s, out.refusal);
	}
	send_status(req, &s);
	fmt_api_status_wipe(&s);
out:
	srv_issued_clear(&out);
	fmt_key_free(key);
	fmt_api_request_wipe(r);
	free(r);
}

void srv_handlers_provision(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!throttled(ctx, req) && !srv_site_refused(ctx, req))
		device_request(ctx, req, FMT_API_PROVISION);
}

void srv_handlers_exchange(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!srv_site_refused(ctx, req))
		device_request(ctx, req, FMT_API_EXCHANGE);
}

void srv_handlers_renew(struct srv_ctx *ctx, struct evhttp_request *req)
{
	device_request(ctx, req, FMT_API_RENEW);
}

#define SIG_HEADER_MAX 12288u /* base64 of a detached signature (formats/api.md §8) */

/* POST /v1/batches: a station uploads its signed manifest (client
 * certificate authentication); imported whole or not at all. */
void srv_handlers_batches(struct srv_ctx *ctx, struct evhttp_request *req)
{
	char station[SRV_STORE_ID_MAX + 1];
	struct idp_error err = {0};
	enum idp_err rc = srv_http_station(req, station, &err);
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_AUTH, &err);
		return;
	}
	const struct srv_app *app = ctx->app;
	if (!key_throttled(ctx, req, app->throttle_station, "station", station, false))
		srv_handlers_import(ctx, req, station);
}

void srv_handlers_import(struct srv_ctx *ctx, struct evhttp_request *req, const char *station)
{
	struct idp_error err = {0};
	enum idp_err rc;
	if (station != NULL) /* the audit's actor; an admin import has its caller's */
		srv_store_set_actor(ctx->store, station);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *ct = evhttp_find_header(in, "Content-Type");
	if (ct == NULL || strcmp(ct, "application/vnd.idprov.manifest") != 0) {
		srv_http_error(req, FMT_API_ERR_MEDIA_TYPE, "send application/vnd.idprov.manifest");
		return;
	}
	const char *sig64 = evhttp_find_header(in, "Idprov-Signature");
	size_t sig64_len = sig64 != NULL ? strnlen(sig64, SIG_HEADER_MAX + 1) : 0;
	if (sig64_len == 0 || sig64_len > SIG_HEADER_MAX) {
		srv_http_error(req, FMT_API_ERR_BAD_REQUEST, "Idprov-Signature: missing or too long");
		return;
	}
	uint8_t *sig = malloc(fmt_b64_decoded_max(sig64_len));
	size_t sig_len = 0;
	if (sig == NULL) {
		srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
		return;
	}
	rc = fmt_b64_decode(FMT_B64_STD, sig64, sig64_len, sig, fmt_b64_decoded_max(sig64_len),
	                    &sig_len, &err);
	if (rc != IDP_OK) {
		free(sig);
		srv_http_error(req, FMT_API_ERR_BAD_REQUEST, "Idprov-Signature: not base64");
		return;
	}
	/* The body was spooled to a file as it arrived (server/conn.c); an
	 * empty one is all evhttp holds. */
	const struct srv_rules *rules = &((const struct srv_app *)ctx->app)->rules;
	struct srv_conn *c = srv_conn_of(req);
	struct srv_spool *sp = c != NULL ? srv_conn_upload(c) : NULL;
	struct srv_import_result r;
	char sbuf[FIO_LOG_ESC_MAX];
	const char *who = station != NULL ? station : "(admin)";
	(void)fio_log_esc(who, strlen(who), sbuf, sizeof(sbuf));
	if (sp != NULL) {
		struct srv_import_src src;
		rc = srv_spool_source(sp, &src, &err);
		if (rc == IDP_OK) {
			if (!srv_http_retrying(req)) /* once, not per run for the lock */
				fio_log(FIO_LOG_INFO, "batch.upload", "loop=%u station=%s bytes=%llu",
				        ctx->loop, sbuf, (unsigned long long)src.len);
			rc = srv_import_stream(ctx->store, &src, sig, sig_len, station, rules,
			                       (int64_t)time(NULL), &r, &err);
		}
	} else {
		const uint8_t *body = NULL;
		size_t len = 0;
		srv_http_body(req, &body, &len);
		rc = srv_import(ctx->store, body, len, sig, sig_len, station, rules,
		                (int64_t)time(NULL), &r, &err);
	}
	free(sig);
	if (rc != IDP_OK) {
		enum fmt_api_err_code code =
		        srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		/* Waiting for the store's lock is no refusal: the run that
		 * answers logs the batch's outcome, once, or if none does (503
		 * past the bound), the wait logs it (srv_http_defer_outcome). */
		if (srv_http_deferred(req)) {
			char fields[FIO_LOG_ESC_MAX + 64];
			(void)snprintf(fields, sizeof(fields), "loop=%u station=%s", ctx->loop, sbuf);
			srv_http_defer_outcome(req, "batch.refused", fields);
		} else {
			char ebuf[FIO_LOG_ESC_MAX];
			fio_log(FIO_LOG_INFO, "batch.refused", "loop=%u station=%s code=%s reason=%s",
			        ctx->loop, sbuf, fmt_api_err_code_name(code), fio_log_err(&err, ebuf));
		}
		return;
	}
	fio_log(FIO_LOG_INFO, "batch.imported",
	        "loop=%u station=%s batch=%s devices=%lld created=%s gap=%s", ctx->loop, sbuf,
	        r.batch_id, (long long)r.devices, r.created ? "yes" : "no", r.gap ? "yes" : "no");
	struct fmt_api_batch b = {
	        .sequence = r.sequence, .devices = r.devices, .created = r.created, .gap = r.gap};
	(void)snprintf(b.batch_id, sizeof(b.batch_id), "%s", r.batch_id);
	char out[512];
	size_t olen = 0;
	if (fmt_api_batch_encode(&b, out, sizeof(out), &olen, &err) != IDP_OK) {
		srv_http_error(req, FMT_API_ERR_INTERNAL, "cannot encode the answer");
		return;
	}
	srv_http_reply(req, r.created ? 201 : 200, "application/json", out, olen);
}
