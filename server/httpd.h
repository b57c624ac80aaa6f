/*
 * httpd.h - idprovd's HTTPS front: libevent evhttp over bufferevent_openssl,
 * one event loop per thread, each with its own SO_REUSEPORT listener per
 * address and its own store connection (handlers never share a connection,
 * so one request's crypto and database write do not hold up the others).
 *
 * TLS 1.2 and 1.3 only, with the state directory's server certificate;
 * client certificates are requested (not required) when a station CA is
 * configured. In front of evhttp each connection has a small filter that
 * enforces what evhttp cannot: a deadline for the TLS handshake and the
 * request head (slow-loris), one for the body, the head size, and the
 * body size of the route the head names, and the route's authentication
 * (admin bearer, station certificate), answering 413/431/411/401/403 with
 * a JSON error before any body is read. It hands evhttp one request at a time,
 * and none while a connection's unsent answers exceed a watermark (a
 * client that pipelines and reads nothing is held, and cut off by the
 * request timeout). Open connections are bounded per loop
 * (max-connections split over the threads): at the bound the loop stops
 * accepting until one closes.
 *
 * Errors are JSON: {"error":{"code":"...","message":"..."}}, also for
 * requests evhttp would refuse with its own HTML page: the filter refuses
 * those heads first (formats/api.md §9 lists the one exception).
 *
 * Files: httpd.c (listeners, TLS, loops), conn.c (the connection filter
 * and dispatch), head.c (the head checks), reply.c (the srv_http_* helpers).
 *
 * Threads: srv_httpd_start() runs the loops; handlers run on their loop's
 * thread with that loop's struct srv_ctx. srv_httpd_shutdown() may be
 * called from any one thread (not from a handler).
 */
#ifndef IDP_SERVER_HTTPD_H
#define IDP_SERVER_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "formats/api.h"
#include "formats/error.h"
#include "server/config.h"
#include "server/state.h"
#include "server/store.h"

#define SRV_HTTP_EXPORTER_LEN   FMT_API_EXPORTER_LEN /* RFC 9266 (formats/io/tls.h) */
#define SRV_HTTP_ROUTES_MAX     64u

/* What a handler gets: its loop's own store connection and the shared,
 * read-only server state. */
struct srv_ctx {
	unsigned loop;           /* index of the event loop (0..threads-1) */
	struct srv_store *store; /* this loop's connection */
	const struct srv_state *state;
	const struct srv_config *cfg;
	void *app; /* the handlers' shared data, as given to srv_httpd_new */
};

/* A handler answers req exactly once (srv_http_* below or evhttp_send_reply). */
typedef void srv_handler_fn(struct srv_ctx *ctx, struct evhttp_request *req);

struct srv_route; /* server/routes.h */
struct srv_httpd;

/* Bind every listen address once per loop (SO_REUSEPORT; port 0 is chosen
 * by the first loop and reused by the others; IDP_E_IO naming the address
 * when another process, e.g. a second idprovd, listens there already, with
 * or without SO_REUSEPORT), set up TLS and open one store
 * connection per loop. Nothing runs until srv_httpd_start(). routes must
 * outlive the server. Caller frees *out with srv_httpd_free(). */
IDP_MUST_CHECK enum idp_err srv_httpd_new(const struct srv_config *cfg,
                                          const struct srv_state *state,
                                          const struct srv_route *routes, size_t n_routes,
                                          void *app, struct srv_httpd **out, struct idp_error *err);

/* Check that the CA file path of key (station-ca, admin-ca) loads as
 * srv_httpd_new loads it: readable, and holding at least one PEM
 * certificate. Pure: reads the file, changes nothing (idprovd
 * --check-config). IDP_E_IO or IDP_E_CRYPTO naming key and path. */
IDP_MUST_CHECK enum idp_err srv_httpd_ca_check(const char *key, const char *path,
                                               struct idp_error *err);

/* The address listener i is bound to, as "ADDR:PORT" (the real port when
 * 0 was asked for). NULL when i is out of range. */
const char *srv_httpd_bound(const struct srv_httpd *h, size_t i);

/* Start one thread per loop. */
IDP_MUST_CHECK enum idp_err srv_httpd_start(struct srv_httpd *h, struct idp_error *err);

/* CPU time (user + system, seconds) the loop threads and the group-commit
 * syncer have used since srv_httpd_start(): every handshake, request,
 * commit and fsync runs on them.
 * For benchmarks, which take differences over a run; 0 before the start.
 * Any thread. */
double srv_httpd_cpu_seconds(const struct srv_httpd *h);

/* The group commit the loops' store connections commit into (server/store.h
 * srv_store_sync_*): no answer leaves before the commits it may rest on
 * are durable. Borrowed; for /metrics and tests. */
const struct srv_store_sync *srv_httpd_store_sync(const struct srv_httpd *h);

/* Graceful stop: stop accepting, close idle connections, let requests in
 * flight finish (bounded by the header, body and request timeouts), then
 * join the threads and close the store connections. */
void srv_httpd_shutdown(struct srv_httpd *h);

/* Release everything (after srv_httpd_shutdown when started). NULL is a no-op. */
void srv_httpd_free(struct srv_httpd *h);

/* ---------------------------------------------------------------- for handlers */

/* Send body[0..len) with status code and content type. */
void srv_http_reply(struct evhttp_request *req, int code, const char *content_type,
                    const void *body, size_t len);

/* Start a chunked answer (the headers of srv_http_reply) whose body the
 * handler sends with evhttp_send_reply_chunk*() and ends with
 * evhttp_send_reply_end(): an answer too large to hold (the audit export). */
void srv_http_reply_start(struct evhttp_request *req, int code, const char *content_type);

/* Send obj as JSON with status code. */
void srv_http_json(struct evhttp_request *req, int code, const cJSON *obj);

/* Send the error body of code (formats/api.md §9, fmt_api_error_body) with
 * code's HTTP status: the one way any error leaves idprovd. The message is
 * formatted from fmt and may hold client text: whatever its bytes, the body
 * parses with fmt_api_error_parse. */
void srv_http_error(struct evhttp_request *req, enum fmt_api_err_code code, const char *fmt, ...)
	IDP_PRINTF(3, 4);

/* The store's write lock is held by another connection (srv_store_was_busy
 * after an IDP_E_AGAIN): true when req, the request a route handler runs
 * now, is to be run again from the start on a timer of its loop (nothing
 * was written, and the handler must not answer it or touch it again);
 * false when its bound (SRV_STORE_BUSY_MS since it arrived) has passed, or
 * the server is stopping: then answer it (503 unavailable). The loop never
 * sleeps on the lock meanwhile (server/conn.c, "Busy store"). */
bool srv_http_defer(struct evhttp_request *req);
/* Whether req is such a run again (then throttles are not charged twice). */
bool srv_http_retrying(struct evhttp_request *req);
/* Whether req, the request a route handler runs now, was deferred in this
 * run (srv_http_defer said true): it is not answered yet, so its outcome
 * (a log line) belongs to the run that answers it. */
bool srv_http_deferred(struct evhttp_request *req);
/* For req deferred in this run (srv_http_deferred): the outcome line to log
 * should its wait end with no run that answers it (503 past the bound or as
 * the server stops, or the client left): event (a literal), fields (already
 * escaped; copied), then code=unavailable and reason= naming the busy
 * database. A later run that answers req logs its own outcome instead, so
 * the request has one either way. No-op when req was not deferred. */
void srv_http_defer_outcome(struct evhttp_request *req, const char *event, const char *fields);

/* The request body as one contiguous buffer (borrowed until the reply). */
void srv_http_body(struct evhttp_request *req, const uint8_t **buf, size_t *len);

/* The station a request authenticated as with its client certificate:
 * the certificate verified against station-ca and its subject CN (a valid
 * ID) copied to id. IDP_E_DENIED (401) without a certificate, IDP_E_VERIFY
 * (403) when it did not verify or its CN is not an ID. */
IDP_MUST_CHECK enum idp_err srv_http_station(struct evhttp_request *req,
                                             char id[static SRV_STORE_ID_MAX + 1],
                                             struct idp_error *err);

/* The CN of the request's client certificate when it verified against the
 * configured admin-ca (not merely the station CA); "" otherwise. The CN
 * names an admin credential (server/admin.h). */
#define SRV_HTTP_ADMIN_CN_MAX SRV_STORE_CRED_NAME_MAX
void srv_http_admin_cn(struct evhttp_request *req, char cn[static SRV_HTTP_ADMIN_CN_MAX + 1]);

/* The TLS session of the request's connection (borrowed). */
SSL *srv_http_ssl(struct evhttp_request *req);

/* RFC 9266 tls-exporter value of the request's connection:
 * SSL_export_keying_material with label "EXPORTER-Channel-Binding", an
 * empty context (use_context = 1, length 0; differs from no context under
 * TLS 1.2), 32 bytes. */
IDP_MUST_CHECK enum idp_err srv_http_channel_binding(struct evhttp_request *req,
                                                     uint8_t out[static SRV_HTTP_EXPORTER_LEN],
                                                     struct idp_error *err);

/* Process-wide counts since the start, for GET /metrics: answers sent
 * with status code (100..SRV_HTTP_STATUS_MAX; 0 for other codes),
 * connections accepted, connections open now. Any thread. */
#define SRV_HTTP_STATUS_MAX 599u
uint64_t srv_http_answered(int code);
uint64_t srv_http_connections_total(void);
int64_t srv_http_connections_open(void);

/* The peer's address as text (for logs). */
const char *srv_http_peer(struct evhttp_request *req, char buf[static 64]);

#endif /* IDP_SERVER_HTTPD_H */
