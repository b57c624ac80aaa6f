/*
 * reply.c - the srv_http_* helpers of server/httpd.h that handlers answer
 * with: replies and JSON errors (counted by status for /metrics), the
 * request body, and what the request's TLS session says (station
 * certificate, channel binding, peer). Any loop's thread.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "formats/id.h"
#include "formats/io/tls.h"
#include "formats/x509.h"
#include "server/conn.h"
#include "server/httpd.h"

void srv_http_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	/* clang-tidy 14 reports an uninitialized va_list here, falsely, and only
	 * when several files are checked in one run. */
	// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
	if (vsnprintf(buf, size, fmt, ap) < 0)
		buf[0] = '\0';
}

/* Answers by status since the start, for GET /metrics (server/metrics.h).
 * Relaxed atomics: each is one independent count. */
static atomic_uint_least64_t answered[SRV_HTTP_STATUS_MAX + 1];

uint64_t srv_http_answered(int code)
{
	if (code < 100 || code > (int)SRV_HTTP_STATUS_MAX)
		return 0;
	return atomic_load_explicit(&answered[code], memory_order_relaxed);
}

void srv_http_reply_start(struct evhttp_request *req, int code, const char *content_type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	(void)evhttp_add_header(h, "Content-Type", content_type);
	(void)evhttp_add_header(h, "Cache-Control", "no-store");
	(void)evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	struct srv_conn *c = srv_conn_of(req);
	if (c != NULL)
		srv_conn_replied(c, code);
	if (code >= 100 && code <= (int)SRV_HTTP_STATUS_MAX)
		(void)atomic_fetch_add_explicit(&answered[code], 1, memory_order_relaxed);
	evhttp_send_reply_start(req, code, code == 200 ? "OK" : "Error");
}

void srv_http_reply(struct evhttp_request *req, int code, const char *content_type,
                    const void *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	(void)evhttp_add_header(h, "Content-Type", content_type);
	(void)evhttp_add_header(h, "Cache-Control", "no-store");
	(void)evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* evhttp 2.1 would send a HEAD answer's body, and no length. */
		char cl[24];
		(void)snprintf(cl, sizeof(cl), "%zu", len);
		(void)evhttp_add_header(h, "Content-Length", cl);
	} else if (len > 0 && evbuffer_add(out, body, len) != 0) {
		code = 500;
	}
	const char *reason = code == 200   ? "OK"
	                     : code == 201 ? "Created"
	                     : code == 202 ? "Accepted"
	                     : code == 400 ? "Bad Request"
	                     : code == 401 ? "Unauthorized"
	                     : code == 403 ? "Forbidden"
	                     : code == 404 ? "Not Found"
	                     : code == 405 ? "Method Not Allowed"
	                     : code == 408 ? "Request Timeout"
	                     : code == 409 ? "Conflict"
	                     : code == 415 ? "Unsupported Media Type"
	                     : code == 411 ? "Length Required"
	                     : code == 413 ? "Content Too Large"
	                     : code == 429 ? "Too Many Requests"
	                     : code == 431 ? "Request Header Fields Too Large"
	                     : code == 500 ? "Internal Server Error"
	                     : code == 503 ? "Service Unavailable"
	                                   : "Error";
	struct srv_conn *c = srv_conn_of(req);
	if (c != NULL)
		srv_conn_replied(c, code);
	if (code >= 100 && code <= (int)SRV_HTTP_STATUS_MAX)
		(void)atomic_fetch_add_explicit(&answered[code], 1, memory_order_relaxed);
	/* Group commit: no answer leaves before the commits it may rest on
	 * are on disk (server/conn.h). */
	if (c != NULL && srv_loop_hold_reply(srv_conn_loop(c), req, code, reason))
		return;
	evhttp_send_reply(req, code, reason, NULL);
}

void srv_http_json(struct evhttp_request *req, int code, const cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	if (text == NULL) {
		srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
		return;
	}
	srv_http_reply(req, code, "application/json", text, strlen(text));
	cJSON_free(text);
}

void srv_http_error(struct evhttp_request *req, enum fmt_api_err_code code, const char *fmt, ...)
{
	char msg[IDP_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	srv_http_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char body[FMT_API_ERROR_BODY_MAX];
	size_t len = 0;
	if (fmt_api_error_body(code, msg, strlen(msg), 0, body, sizeof(body), &len, NULL) !=
	    IDP_OK) {
		/* Only a code that is not in the table gets here: a server bug. */
		code = FMT_API_ERR_INTERNAL;
		if (fmt_api_error_body(code, NULL, 0, 0, body, sizeof(body), &len, NULL) != IDP_OK)
			len = 0;
	}
	srv_http_reply(req, fmt_api_err_http_status(code), "application/json", body, len);
}

void srv_http_body(struct evhttp_request *req, const uint8_t **buf, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	*len = evbuffer_get_length(in);
	*buf = *len > 0 ? evbuffer_pullup(in, -1) : (const uint8_t *)"";
	if (*buf == NULL) {
		*buf = (const uint8_t *)"";
		*len = 0;
	}
}

SSL *srv_http_ssl(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	struct bufferevent *tls = bev != NULL ? bufferevent_get_underlying(bev) : NULL;
	return tls != NULL ? bufferevent_openssl_get_ssl(tls) : NULL;
}

/* Whether ssl's client certificate chains to store alone (the handshake's
 * store may hold the station and the admin CA together). */
static bool chains_to(X509_STORE *store, SSL *ssl, X509 *cert)
{
	X509_STORE_CTX *vc = X509_STORE_CTX_new();
	bool ok = vc != NULL &&
	          X509_STORE_CTX_init(vc, store, cert, SSL_get_peer_cert_chain(ssl)) == 1 &&
	          X509_STORE_CTX_set_purpose(vc, X509_PURPOSE_SSL_CLIENT) == 1 &&
	          X509_verify_cert(vc) == 1;
	X509_STORE_CTX_free(vc);
	ERR_clear_error();
	return ok;
}

enum idp_err srv_http_ssl_station(const struct srv_httpd *h, SSL *ssl,
                                  char id[static SRV_STORE_ID_MAX + 1], struct idp_error *err)
{
	id[0] = '\0';
	X509 *cert = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
	if (cert == NULL)
		return idp_error_set(err, IDP_E_DENIED, "station: no client certificate");
	if (SSL_get_verify_result(ssl) != X509_V_OK ||
	    (h != NULL && h->station_store != NULL && !chains_to(h->station_store, ssl, cert)))
		return idp_error_set(err, IDP_E_VERIFY, "station: certificate not trusted");
	size_t n = 0;
	if (fmt_x509_cn(cert, id, SRV_STORE_ID_MAX + 1, &n, NULL) != IDP_OK ||
	    fmt_id_check(id, n, "station", err) != IDP_OK) {
		id[0] = '\0';
		return idp_error_set(err, IDP_E_VERIFY,
		                     "station: certificate CN is not a station ID");
	}
	return IDP_OK;
}

enum idp_err srv_http_station(struct evhttp_request *req, char id[static SRV_STORE_ID_MAX + 1],
                              struct idp_error *err)
{
	struct srv_conn *c = srv_conn_of(req);
	return srv_http_ssl_station(c != NULL ? srv_conn_httpd(c) : NULL, srv_http_ssl(req), id,
	                            err);
}

void srv_http_ssl_admin_cn(const struct srv_httpd *h, SSL *ssl,
                           char cn[static SRV_HTTP_ADMIN_CN_MAX + 1])
{
	cn[0] = '\0';
	X509 *cert = ssl != NULL && h->admin_store != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK ||
	    !chains_to(h->admin_store, ssl, cert))
		return;
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
	                                  SRV_HTTP_ADMIN_CN_MAX + 1);
	if (n <= 0 || (size_t)n > SRV_HTTP_ADMIN_CN_MAX || strlen(cn) != (size_t)n)
		cn[0] = '\0';
}

void srv_http_admin_cn(struct evhttp_request *req, char cn[static SRV_HTTP_ADMIN_CN_MAX + 1])
{
	struct srv_conn *c = srv_conn_of(req);
	cn[0] = '\0';
	if (c != NULL)
		srv_http_ssl_admin_cn(srv_conn_httpd(c), srv_http_ssl(req), cn);
}

enum idp_err srv_http_channel_binding(struct evhttp_request *req,
                                      uint8_t out[static SRV_HTTP_EXPORTER_LEN],
                                      struct idp_error *err)
{
	SSL *ssl = srv_http_ssl(req);
	if (ssl == NULL)
		return idp_error_set(err, IDP_E_ARG, "tls: no session on this request");
	/* RFC 9266 needs TLS 1.3, or 1.2 with the extended master secret. */
	if (SSL_version(ssl) < TLS1_3_VERSION && SSL_get_extms_support(ssl) != 1)
		return idp_error_set(
		        err, IDP_E_DENIED,
		        "tls: channel binding needs TLS 1.3 or extended master secret");
	return fio_tls_exporter(ssl, out, err); /* RFC 9266: empty context, not none */
}

const char *srv_http_peer(struct evhttp_request *req, char buf[static 64])
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;
	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, &addr, &port);
	(void)snprintf(buf, 64, "%s:%u", addr != NULL ? addr : "?", (unsigned)port);
	return buf;
}
