/*
 * httpd.c - see httpd.h.
 *
 * Per connection: a bufferevent_openssl on the socket, under a filtering
 * bufferevent (conn_filter) that evhttp reads from. The filter passes the
 * request head to evhttp only once it is whole, checks its size and the
 * body size it announces against the route, and passes exactly the body
 * bytes announced; a refused request is replaced by a tiny synthetic one
 * ("GET /") so that evhttp calls the dispatcher, which answers the
 * recorded JSON error and closes.
 *
 * WARNING: evhttp frees a connection as soon as the reply has left the
 * filter, i.e. before TLS has sent it. So evhttp must never close a
 * connection itself: when a request completes we strip what would make it
 * close (Connection: close, HTTP/1.0) and close the socket ourselves once
 * the TLS output is flushed; the client still sees "Connection: close".
 */
#include "server/httpd.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "formats/api.h"
#include "formats/id.h"
#include "formats/io/tls.h"
#include "formats/json.h"
#include "formats/x509.h"
#include "server/admin.h"
#include "server/ui.h"
#include "server/log.h"

#define LISTEN_BACKLOG    511
#define ERROR_MSG_MAX     256u
#define FLUSH_POLL_MS     20
/* Pipelining: the next request head is passed to evhttp only when the
 * answers waiting to be sent are under OUT_HIGH bytes; reading resumes
 * once they drained to OUT_LOW. While held, at most HOLD_INPUT_MAX bytes
 * of unparsed requests are read from the client (plus one TLS record). */
#define OUT_HIGH       ((size_t)256 * 1024)
#define OUT_LOW        ((size_t)64 * 1024)
#define HOLD_INPUT_MAX ((size_t)64 * 1024)
#define LINGER_S          2u /* seconds a refused client may send on */
#define SYNTHETIC_REQUEST "GET / HTTP/1.1\r\nHost: idprovd\r\n\r\n"

struct loop;

enum conn_state {
	C_HEAD,   /* reading a request head */
	C_BODY,   /* passing the announced body */
	C_REJECT, /* refused: everything further is dropped */
};

struct conn {
	struct loop *loop;
	struct conn *prev, *next;
	struct bufferevent *bev; /* the filter evhttp owns */
	struct bufferevent *tls; /* the TLS bufferevent under it */
	struct event *deadline;
	struct event *flush_close; /* close once the TLS output is flushed */
	struct event *kick;        /* push evhttp's output through the filter */
	bool kick_ref;             /* kick is pending and holds a reference on bev */
	struct evbuffer_cb_entry *drained; /* on the TLS output: resume when paused */
	enum conn_state state;
	size_t body_left;
	bool in_request;  /* a head was passed and its response is not complete */
	bool paused;      /* holding the next head until the output drains */
	bool read_off;    /* reading from the client stopped while holding */
	bool lingering;   /* refused and answered: dropping input until closed */
	bool http10;      /* the last head passed was HTTP/1.0 */
	bool close_after; /* close once the current reply is sent */
	bool nodelay;
	bool counted; /* in conns_open (set once conn_new succeeded) */
	int status; /* status of the last reply, for the log */
	enum fmt_api_err_code reject_code; /* of a refused request; FMT_API_ERR_UNKNOWN: none */
	const char *reject_hdr;            /* a header for the refusal (NULL when none) */
	char reject_hdr_value[48];         /* ... and its value */
	char reject_msg[ERROR_MSG_MAX];
};

struct loop {
	struct srv_httpd *h;
	struct srv_ctx ctx;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound[SRV_CONFIG_LISTEN_MAX];
	size_t n_bound;
	struct event *stop_ev;
	struct event *grace_ev;
	pthread_t thread;
	bool started;
	bool stopping;
	bool accepting;
	unsigned n_conns;
	unsigned max_conns;
	struct conn *conns;
};

struct srv_httpd {
	const struct srv_config *cfg;
	const struct srv_state *state;
	const struct srv_route *routes;
	size_t n_routes;
	SSL_CTX *ssl_ctx;
	X509_STORE *admin_store; /* admin-ca alone: which client certificates are an admin's */
	X509_STORE *station_store; /* station-ca alone, when admin-ca shares the handshake */
	struct loop *loops;
	size_t n_loops;
	size_t max_body_any; /* the largest body any route takes */
	char bound_text[SRV_CONFIG_LISTEN_MAX][SRV_CONFIG_ADDR_TEXT];
	size_t n_listen;
	bool started;
};

static struct conn *conn_of(struct evhttp_request *req);

/* ---------------------------------------------------------------- replies */

/* vsnprintf into buf[size], always NUL-terminated (cut when too long). */
static void srv_vformat(char *buf, size_t size, const char *fmt, va_list ap) IDP_PRINTF(3, 0);

static void srv_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	/* clang-tidy 14 reports an uninitialized va_list here, falsely, and only
	 * when several files are checked in one run. */
	// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
	if (vsnprintf(buf, size, fmt, ap) < 0)
		buf[0] = '\0';
}

/* Process-wide counters for GET /metrics (server/metrics.h): answers by
 * status, connections accepted and open. Relaxed atomics: each is one
 * independent count. */
static atomic_uint_least64_t answered[SRV_HTTP_STATUS_MAX + 1];
static atomic_uint_least64_t conns_total;
static atomic_int_least64_t conns_open;

uint64_t srv_http_answered(int code)
{
	if (code < 100 || code > (int)SRV_HTTP_STATUS_MAX)
		return 0;
	return atomic_load_explicit(&answered[code], memory_order_relaxed);
}

uint64_t srv_http_connections_total(void)
{
	return atomic_load_explicit(&conns_total, memory_order_relaxed);
}

int64_t srv_http_connections_open(void)
{
	return atomic_load_explicit(&conns_open, memory_order_relaxed);
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
	struct conn *c = conn_of(req);
	if (c != NULL)
		c->status = code;
	if (code >= 100 && code <= (int)SRV_HTTP_STATUS_MAX)
		(void)atomic_fetch_add_explicit(&answered[code], 1, memory_order_relaxed);
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
	srv_vformat(msg, sizeof(msg), fmt, ap);
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

/* srv_http_station on the TLS session ssl (NULL: none). */
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

static enum idp_err ssl_station(const struct srv_httpd *h, SSL *ssl,
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
	struct conn *c = conn_of(req);
	return ssl_station(c != NULL ? c->loop->h : NULL, srv_http_ssl(req), id, err);
}

/* The CN of ssl's client certificate when it chains to the admin CA (not
 * merely to the handshake's store, which holds the station CA too); ""
 * otherwise. The handshake proved the key. */
static void ssl_admin_cn(const struct srv_httpd *h, SSL *ssl,
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
	struct conn *c = conn_of(req);
	cn[0] = '\0';
	if (c != NULL)
		ssl_admin_cn(c->loop->h, srv_http_ssl(req), cn);
}

static struct conn *conn_of(struct evhttp_request *req)
{
	SSL *ssl = srv_http_ssl(req);
	return ssl != NULL ? SSL_get_app_data(ssl) : NULL;
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

/* ---------------------------------------------------------------- connections */

static void conn_close_now(struct conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->tls);
	if (fd >= 0)
		(void)shutdown(fd, SHUT_RDWR);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	srv_log(SRV_LOG_INFO, "conn.deadline", "loop=%u phase=%s", c->loop->ctx.loop,
	        c->state == C_BODY ? "body"
	        : c->lingering     ? "linger"
	        : c->paused        ? "output"
	                           : "head");
	conn_close_now(c);
}

static void arm(struct conn *c, unsigned seconds)
{
	struct timeval tv = {.tv_sec = (time_t)seconds, .tv_usec = 0};
	(void)evtimer_add(c->deadline, &tv);
}

static void flush_close_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	if (evbuffer_get_length(bufferevent_get_output(c->tls)) != 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
		return;
	(void)event_del(c->flush_close);
	/* A refused client may still be sending the body we will not read:
	 * closing now would reset the connection and could destroy our
	 * answer before the client reads it. Send FIN and drop what comes
	 * until the client closes or LINGER_S pass. */
	evutil_socket_t sfd = bufferevent_getfd(c->tls);
	if (c->state == C_REJECT && !c->lingering && sfd >= 0) {
		c->lingering = true;
		(void)shutdown(sfd, SHUT_WR);
		if (c->read_off) {
			c->read_off = false;
			(void)bufferevent_enable(c->tls, EV_READ);
		}
		arm(c, LINGER_S);
		return;
	}
	conn_close_now(c);
}

/* libevent 2.1's filter moves output only when data is added while
 * writing is enabled, but evhttp adds a reply and then enables writing: the
 * reply would sit in the filter. So every addition schedules a flush for
 * when evhttp is done with the current call.
 * WARNING: the pending kick holds a reference on the filter. Without it,
 * evhttp could free the filter first, and the flush would take and drop a
 * reference on the dead filter, finalizing it a second time (issue 8, the
 * use-after-free in conn_free; tests/integration/server/conn_reset.sh).
 * (Deferring the buffer's callbacks instead is no cure: libevent 2.1 then
 * finalizes the filter with the buffer as its argument.) */
static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	struct bufferevent *bev = c->bev;
	c->kick_ref = false;
	(void)bufferevent_flush(bev, EV_WRITE, BEV_NORMAL);
	(void)bufferevent_decref(bev); /* may free c: touch nothing after */
}

/* Data is only added by evhttp, which holds the filter: the reference
 * taken here is never the first one on a freed filter. */
static void output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	(void)buf;
	struct conn *c = arg;
	if (info->n_added == 0 || c->kick_ref)
		return;
	c->kick_ref = true;
	bufferevent_incref(c->bev);
	event_active(c->kick, EV_TIMEOUT, 1);
}

/* Bytes of answers c has not sent yet. */
static size_t conn_out_pending(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->tls)) +
	       evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Let the filter look at the unparsed input again: after a request
 * completed or the output drained. Deferred, so it runs after evhttp is
 * done with the current call; the TLS bufferevent's deferred callback is
 * cancelled with it, and once the filter is freed its read callback is
 * unset, so this never reaches a freed filter. */
static void conn_pump(struct conn *c)
{
	if (c->read_off) {
		c->read_off = false;
		(void)bufferevent_enable(c->tls, EV_READ);
	}
	bufferevent_trigger(c->tls, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The TLS output shrank: resume a paused connection at the low watermark. */
static void output_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;
	if (!c->paused || info->n_deleted == 0 || conn_out_pending(c) > OUT_LOW)
		return;
	(void)buf;
	c->paused = false;
	arm(c, c->loop->h->cfg->header_timeout);
	conn_pump(c);
}

/* Close c once what it has to send is sent. */
static void conn_close_when_flushed(struct conn *c)
{
	struct timeval tv = {.tv_sec = 0, .tv_usec = (suseconds_t)FLUSH_POLL_MS * 1000};
	(void)event_add(c->flush_close, &tv);
}

static void loop_check_done(struct loop *l)
{
	if (l->stopping && l->n_conns == 0)
		(void)event_base_loopexit(l->base, NULL);
}

static void loop_accept(struct loop *l, bool on)
{
	if (l->accepting == on || (on && l->stopping))
		return;
	for (size_t i = 0; i < l->n_bound; i++) {
		struct evconnlistener *lev = evhttp_bound_socket_get_listener(l->bound[i]);
		if (lev != NULL)
			(void)(on ? evconnlistener_enable(lev) : evconnlistener_disable(lev));
	}
	l->accepting = on;
}

/* The filter's context is freed with the filter, which evhttp frees with the
 * connection: the one place a connection's bookkeeping ends. */
static void conn_free(void *arg)
{
	struct conn *c = arg;
	struct loop *l = c->loop;
	/* A connection whose setup failed in conn_new was never linked nor
	 * counted: unlinking it would drop the loop's list of connections. */
	bool linked = c->counted;
	if (c->counted)
		(void)atomic_fetch_sub_explicit(&conns_open, 1, memory_order_relaxed);
	if (linked && c->prev != NULL)
		c->prev->next = c->next;
	else if (linked)
		l->conns = c->next;
	if (linked && c->next != NULL)
		c->next->prev = c->prev;
	event_free(c->deadline);
	event_free(c->flush_close);
	event_free(c->kick);
	if (c->drained != NULL)
		(void)evbuffer_remove_cb_entry(bufferevent_get_output(c->tls), c->drained);
	free(c);
	if (!linked)
		return;
	l->n_conns--;
	if (l->n_conns < l->max_conns)
		loop_accept(l, true);
	loop_check_done(l);
}

/* Refuse the current request: drop its bytes, hand evhttp a synthetic
 * request instead, and remember what to answer. */
static void conn_reject(struct conn *c, struct evbuffer *src, struct evbuffer *dst,
                        enum fmt_api_err_code code, const char *fmt, ...) IDP_PRINTF(5, 6);

static void conn_reject(struct conn *c, struct evbuffer *src, struct evbuffer *dst,
                        enum fmt_api_err_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	srv_vformat(c->reject_msg, sizeof(c->reject_msg), fmt, ap);
	va_end(ap);
	c->reject_code = code;
	c->state = C_REJECT;
	c->in_request = true;
	(void)evbuffer_drain(src, evbuffer_get_length(src));
	(void)evbuffer_add(dst, SYNTHETIC_REQUEST, sizeof(SYNTHETIC_REQUEST) - 1);
	(void)event_del(c->deadline);
}

/* Offset just past the blank line that ends the head in p[0..n), or 0. */
static size_t head_end(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n')
			return i + 2;
		if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

struct head_info {
	const uint8_t *raw; /* the whole head (for the web UI's session check) */
	size_t raw_len;
	bool http10;
	const char *path;
	size_t path_len;
	bool has_length;
	uint64_t length;
	bool chunked;
	const char *auth; /* the first Authorization value (NULL: none) */
	size_t auth_len;
	bool read_only; /* GET or HEAD: what a viewer credential may send */
	const char *bad; /* why the head is refused (400); NULL when it is not */
};

/* Just enough of the head to bound the body: the target's path,
 * Content-Length (digits, all copies equal) and Transfer-Encoding. evhttp
 * parses the head fully after us (head_refusal keeps the two in step).
 * Refused here already: a NUL byte anywhere (evhttp ends a head at a line
 * starting with NUL, so a second request, a chunked body or a body could
 * hide behind it) and a target that is not a path (the routes, their body
 * limits and authentication are looked up by the path seen here). */
static void head_parse(const uint8_t *p, size_t n, struct head_info *hi)
{
	memset(hi, 0, sizeof(*hi));
	hi->raw = p;
	hi->raw_len = n;
	const uint8_t *end = p + n;
	hi->read_only = (n > 4 && memcmp(p, "GET ", 4) == 0) || (n > 5 && memcmp(p, "HEAD ", 5) == 0);
	if (memchr(p, '\0', n) != NULL) {
		hi->bad = "request head: a NUL byte";
		return;
	}
	const uint8_t *sp = memchr(p, ' ', n);
	if (sp == NULL || sp + 1 == end || sp[1] != '/') {
		hi->bad = "request line: the target is not a path (origin form)";
		return;
	}
	const uint8_t *t = sp + 1;
	const uint8_t *te = t;
	while (te < end && *te != ' ' && *te != '?' && *te != '\r' && *te != '\n')
		te++;
	hi->path = (const char *)t;
	hi->path_len = (size_t)(te - t);
	const uint8_t *line = memchr(p, '\n', n);
	if (line != NULL && line - p >= 8) {
		const uint8_t *v = line[-1] == '\r' ? line - 9 : line - 8;
		hi->http10 = v >= p && memcmp(v, "HTTP/1.0", 8) == 0;
	}
	while (line != NULL && line + 1 < end) {
		line++;
		const uint8_t *le = memchr(line, '\n', (size_t)(end - line));
		if (le == NULL)
			break;
		const uint8_t *colon = memchr(line, ':', (size_t)(le - line));
		if (colon != NULL) {
			size_t nlen = (size_t)(colon - line);
			const uint8_t *v = colon + 1;
			while (v < le && (*v == ' ' || *v == '\t'))
				v++;
			if (nlen == 14 &&
			    strncasecmp((const char *)line, "content-length", 14) == 0) {
				uint64_t x = 0;
				const uint8_t *d = v;
				while (d < le && *d >= '0' && *d <= '9' && x < (UINT64_C(1) << 50))
					x = x * 10 + (uint64_t)(*d++ - '0');
				while (d < le && (*d == ' ' || *d == '\t' || *d == '\r'))
					d++;
				if (d == v || d != le || (hi->has_length && hi->length != x))
					hi->bad = "content-length: malformed or not all equal";
				hi->has_length = true;
				hi->length = x;
			} else if (nlen == 17 &&
			           strncasecmp((const char *)line, "transfer-encoding", 17) == 0) {
				hi->chunked = true;
			} else if (nlen == 13 && hi->auth == NULL &&
			           strncasecmp((const char *)line, "authorization", 13) == 0) {
				const uint8_t *ve = le; /* trimmed as evhttp does */
				while (ve > v &&
				       (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
					ve--;
				hi->auth = (const char *)v;
				hi->auth_len = (size_t)(ve - v);
			}
		}
		line = le;
	}
}

/* The methods path takes, for an Allow header ("" when no route has it). */
static void route_allow(const struct srv_httpd *h, const char *path, size_t len, char out[static 32])
{
	bool get = false, post = false;
	for (size_t i = 0; i < h->n_routes; i++) {
		if (strlen(h->routes[i].path) != len || memcmp(h->routes[i].path, path, len) != 0)
			continue;
		get = get || h->routes[i].method == EVHTTP_REQ_GET;
		post = post || h->routes[i].method == EVHTTP_REQ_POST;
	}
	(void)snprintf(out, 32, "%s%s%s", get ? "GET, HEAD" : "", get && post ? ", " : "",
	               post ? "POST" : "");
}

/* The route of path for method (0: the first of any method); when no route
 * of path has that method, the first of path (answered 405). */
static const struct srv_route *route_find(const struct srv_httpd *h, const char *path, size_t len,
                                          enum evhttp_cmd_type method)
{
	const struct srv_route *first = NULL;
	for (size_t i = 0; i < h->n_routes; i++) {
		if (strlen(h->routes[i].path) != len || memcmp(h->routes[i].path, path, len) != 0)
			continue;
		if (method == 0 || h->routes[i].method == method)
			return &h->routes[i];
		if (first == NULL)
			first = &h->routes[i];
	}
	return first;
}

static size_t route_max_body(const struct srv_httpd *h, const struct srv_route *r)
{
	if (r != NULL && r->max_body == SRV_ROUTE_MANIFEST)
		return h->cfg->max_manifest;
	return r != NULL && r->max_body != 0 ? r->max_body : h->cfg->max_body;
}

/* An RFC 9110 token character (methods, header field names). */
static bool tchar(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* p[0..n) without a trailing CR. */
static size_t chomp(const uint8_t *p, size_t n)
{
	return n > 0 && p[n - 1] == '\r' ? n - 1 : n;
}

/* p[0..n) equals the lower-case word w, ignoring case and outer blanks. */
static bool value_is(const uint8_t *p, size_t n, const char *w)
{
	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return n == strlen(w) && strncasecmp((const char *)p, w, n) == 0;
}

/* Why evhttp would refuse the whole head p[0..n) with its own HTML page
 * (libevent 2.1 has no error callback), or NULL: so the filter refuses it
 * first and the answer is JSON. A CR only before an LF; the request line
 * METHOD SP TARGET SP HTTP/1.x with a target evhttp's own URI parser takes;
 * each header line NAME ":" VALUE (so no obs-fold); no Expect but 100-continue (evhttp: 417); a body only on
 * POST, PUT and PATCH (evhttp reads none for other methods and would parse
 * it as the next request); and on those, no Connection other than "close"
 * without a Content-Length (evhttp: 400). *code is set with the reason. */
static const char *head_refusal(const uint8_t *p, size_t n, const struct head_info *hi,
                                enum fmt_api_err_code *code)
{
	*code = FMT_API_ERR_BAD_REQUEST;
	for (const uint8_t *cr = memchr(p, '\r', n); cr != NULL;
	     cr = memchr(cr + 1, '\r', n - (size_t)(cr + 1 - p)))
		if (cr + 1 == p + n || cr[1] != '\n')
			return "request head: a CR not followed by LF";
	const uint8_t *lf = memchr(p, '\n', n);
	size_t ll = chomp(p, lf != NULL ? (size_t)(lf - p) : n);
	const uint8_t *sp1 = memchr(p, ' ', ll);
	const uint8_t *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - p)) : NULL;
	if (lf == NULL || sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1)
		return "request line: not METHOD TARGET VERSION";
	size_t mlen = (size_t)(sp1 - p), tlen = (size_t)(sp2 - sp1 - 1);
	size_t vlen = ll - (size_t)(sp2 + 1 - p);
	for (size_t i = 0; i < mlen; i++)
		if (!tchar(p[i]))
			return "request line: the method is not a token";
	if (vlen != 8 || (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return "request line: the version is not HTTP/1.1 or HTTP/1.0";
	for (size_t i = 0; i < tlen; i++)
		if (sp1[1 + i] <= 0x20 || sp1[1 + i] >= 0x7f)
			return "request line: the target has a byte outside printable ASCII";
	char *t = malloc(tlen + 1);
	if (t == NULL) {
		*code = FMT_API_ERR_INTERNAL;
		return "out of memory";
	}
	memcpy(t, sp1 + 1, tlen);
	t[tlen] = '\0';
	struct evhttp_uri *u = evhttp_uri_parse_with_flags(t, EVHTTP_URI_NONCONFORMANT);
	free(t);
	if (u == NULL)
		return "request line: the target is not a URI";
	evhttp_uri_free(u);
	bool body_method = (mlen == 4 && memcmp(p, "POST", 4) == 0) ||
	                   (mlen == 3 && memcmp(p, "PUT", 3) == 0) ||
	                   (mlen == 5 && memcmp(p, "PATCH", 5) == 0);
	bool seen_connection = false, keep_open = false;
	const uint8_t *end = p + n;
	for (const uint8_t *line = lf + 1; line < end;) {
		const uint8_t *le = memchr(line, '\n', (size_t)(end - line));
		size_t len = chomp(line, le != NULL ? (size_t)(le - line) : (size_t)(end - line));
		if (len == 0)
			break; /* the blank line that ends the head */
		const uint8_t *colon = memchr(line, ':', len);
		if (colon == NULL || colon == line)
			return "header: a line is not NAME: VALUE";
		size_t nlen = (size_t)(colon - line);
		for (size_t i = 0; i < nlen; i++)
			if (!tchar(line[i]))
				return "header: a field name is not a token";
		const uint8_t *v = colon + 1;
		size_t vl = len - nlen - 1;
		if (nlen == 6 && strncasecmp((const char *)line, "expect", 6) == 0 &&
		    !value_is(v, vl, "100-continue"))
			return "expect: only 100-continue is supported";
		if (nlen == 10 && strncasecmp((const char *)line, "connection", 10) == 0 &&
		    !seen_connection) {
			seen_connection = true;
			keep_open = !value_is(v, vl, "close");
		}
		if (le == NULL)
			break;
		line = le + 1;
	}
	if (!body_method && hi->has_length && hi->length > 0)
		return "body: only POST requests carry one";
	if (body_method && !hi->has_length && keep_open) {
		*code = FMT_API_ERR_LENGTH_REQUIRED;
		return "content-length: missing (send 0 for an empty body)";
	}
	return NULL;
}

static enum srv_route_auth route_auth(const struct srv_route *r)
{
	if (r->auth == SRV_AUTH_NONE && strncmp(r->path, "/v1/admin/", 10) == 0)
		return SRV_AUTH_ADMIN;
	return r->auth;
}

/* Authenticate the head hi for route r before any body is read; when it
 * fails, the request is refused (401/403) and false returned. */
static bool head_authorized(struct conn *c, const struct srv_route *r, const struct head_info *hi,
                            struct evbuffer *src, struct evbuffer *dst)
{
	struct idp_error err = {0};
	enum fmt_api_err_code code = FMT_API_ERR_UNAUTHORIZED;
	switch (route_auth(r)) {
	case SRV_AUTH_NONE:
		return true;
	case SRV_AUTH_ADMIN: {
		struct srv_admin_who who;
		char cn[SRV_HTTP_ADMIN_CN_MAX + 1];
		int ui = 0;
		ssl_admin_cn(c->loop->h, bufferevent_openssl_get_ssl(c->tls), cn);
		if (srv_admin_identify(c->loop->ctx.state, c->loop->ctx.store, hi->auth,
		                       hi->auth_len, cn, &who, &err) != IDP_OK) {
			srv_log(SRV_LOG_ERROR, "admin.check", "loop=%u error=\"%s\"",
			        c->loop->ctx.loop, err.msg);
			code = FMT_API_ERR_INTERNAL;
			(void)snprintf(err.msg, sizeof(err.msg),
			               "cannot check the admin credential");
		} else if (who.role != SRV_ROLE_NONE &&
		           srv_admin_role_allows(who.role, hi->read_only)) {
			return true;
		} else if (who.role != SRV_ROLE_NONE) {
			srv_admin_denied(c->loop->ctx.loop, c->loop->ctx.store, &who, hi->path,
			                 hi->path_len, err.msg, sizeof(err.msg));
			code = FMT_API_ERR_FORBIDDEN;
		} else if (hi->auth == NULL && (ui = srv_ui_head_session(hi->raw, hi->raw_len, &code,
		                                                       err.msg, sizeof(err.msg))) != 0) {
			if (ui > 0)
				return true; /* a live web UI session (server/ui.h) */
		} else {
			srv_log(SRV_LOG_WARN, "admin.unauthorized", "loop=%u phase=head",
			        c->loop->ctx.loop);
			c->reject_hdr = "WWW-Authenticate";
			(void)snprintf(c->reject_hdr_value, sizeof(c->reject_hdr_value),
			               "Bearer realm=\"idprov-admin\"");
			(void)snprintf(err.msg, sizeof(err.msg), "authorization: %s",
			               hi->auth == NULL ? "missing admin credential"
			                                : "not an admin credential");
		}
		break;
	}
	case SRV_AUTH_STATION: {
		char id[SRV_STORE_ID_MAX + 1];
		enum idp_err rc =
		        ssl_station(c->loop->h, bufferevent_openssl_get_ssl(c->tls), id, &err);
		if (rc == IDP_OK)
			return true;
		if (rc != IDP_E_DENIED)
			code = FMT_API_ERR_FORBIDDEN;
		break;
	}
	}
	conn_reject(c, src, dst, code, "%s", err.msg);
	return false;
}

static enum bufferevent_filter_result conn_filter(struct evbuffer *src, struct evbuffer *dst,
                                                  ev_ssize_t dst_limit,
                                                  enum bufferevent_flush_mode mode, void *arg)
{
	(void)dst_limit;
	(void)mode;
	struct conn *c = arg;
	const struct srv_config *cfg = c->loop->h->cfg;
	bool produced = false;
	if (!c->nodelay) {
		int one = 1;
		evutil_socket_t fd = bufferevent_getfd(c->tls);
		if (fd >= 0)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->nodelay = true;
	}
	for (;;) {
		size_t n = evbuffer_get_length(src);
		if (n == 0)
			break;
		if (c->state == C_REJECT) {
			(void)evbuffer_drain(src, n);
			break;
		}
		if (c->state == C_BODY) {
			size_t k = n < c->body_left ? n : c->body_left;
			if (evbuffer_remove_buffer(src, dst, k) != (int)k)
				return BEV_ERROR;
			produced = true;
			c->body_left -= k;
			if (c->body_left == 0) {
				c->state = C_HEAD;
				(void)event_del(c->deadline);
			}
			continue;
		}
		/* One request at a time, and none while answers pile up: a
		 * client that pipelines and reads nothing is held here. */
		if (c->in_request || conn_out_pending(c) > OUT_HIGH) {
			if (!c->in_request && !c->paused) {
				c->paused = true;
				arm(c, cfg->request_timeout);
			}
			if (n > HOLD_INPUT_MAX && !c->read_off) {
				c->read_off = true;
				(void)bufferevent_disable(c->tls, EV_READ);
			}
			break;
		}
		size_t look = n < cfg->max_headers + 3 ? n : cfg->max_headers + 3;
		const uint8_t *p = evbuffer_pullup(src, (ev_ssize_t)look);
		if (p == NULL)
			return BEV_ERROR;
		size_t end = head_end(p, look);
		if (end == 0 || end > cfg->max_headers) {
			if (n <= cfg->max_headers)
				break; /* wait for the rest; the deadline runs */
			conn_reject(c, src, dst, FMT_API_ERR_HEADERS_TOO_LARGE,
			            "request head is larger than %zu bytes", cfg->max_headers);
			return BEV_OK;
		}
		struct head_info hi;
		head_parse(p, end, &hi);
		const struct srv_route *r =
		        hi.bad != NULL ? NULL : route_find(c->loop->h, hi.path, hi.path_len, 0);
		size_t max = route_max_body(c->loop->h, r);
		if (hi.bad != NULL) {
			conn_reject(c, src, dst, FMT_API_ERR_BAD_REQUEST, "%s", hi.bad);
			return BEV_OK;
		}
		if (r != NULL && !head_authorized(c, r, &hi, src, dst))
			return BEV_OK;
		if (hi.chunked) {
			conn_reject(c, src, dst, FMT_API_ERR_LENGTH_REQUIRED,
			            "send the body with a Content-Length");
			return BEV_OK;
		}
		enum fmt_api_err_code why_code = FMT_API_ERR_BAD_REQUEST;
		const char *why = head_refusal(p, end, &hi, &why_code);
		if (why != NULL) {
			conn_reject(c, src, dst, why_code, "%s", why);
			return BEV_OK;
		}
		if (hi.has_length && hi.length > max) {
			conn_reject(c, src, dst, FMT_API_ERR_TOO_LARGE,
			            "body is %llu bytes, max %zu for this path",
			            (unsigned long long)hi.length, max);
			return BEV_OK;
		}
		if (evbuffer_remove_buffer(src, dst, end) != (int)end)
			return BEV_ERROR;
		produced = true;
		c->in_request = true;
		c->http10 = hi.http10;
		(void)event_del(c->deadline);
		if (hi.has_length && hi.length > 0) {
			c->state = C_BODY;
			c->body_left = (size_t)hi.length;
			arm(c, cfg->body_timeout);
		}
	}
	return produced ? BEV_OK : BEV_NEED_MORE;
}

/* evhttp's bufferevent factory: a TLS bufferevent under our filter. */
static struct bufferevent *conn_new(struct event_base *base, void *arg)
{
	struct loop *l = arg;
	struct conn *c = calloc(1, sizeof(*c));
	SSL *ssl = c != NULL ? SSL_new(l->h->ssl_ctx) : NULL;
	if (ssl == NULL) {
		free(c);
		srv_log(SRV_LOG_ERROR, "conn.error", "loop=%u what=out-of-memory", l->ctx.loop);
		return NULL;
	}
	c->loop = l;
	SSL_set_app_data(ssl, c);
	c->deadline = evtimer_new(base, deadline_cb, c);
	c->flush_close = event_new(base, -1, EV_PERSIST, flush_close_cb, c);
	c->kick = event_new(base, -1, 0, kick_cb, c);
	c->tls = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                        BEV_OPT_CLOSE_ON_FREE);
	if (c->tls == NULL)
		SSL_free(ssl);
	else
		bufferevent_openssl_set_allow_dirty_shutdown(c->tls, 1);
	c->bev = c->tls != NULL
	                 ? bufferevent_filter_new(c->tls, conn_filter, NULL,
	                                          BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS,
	                                          conn_free, c)
	                 : NULL;
	c->drained = c->tls != NULL ? evbuffer_add_cb(bufferevent_get_output(c->tls),
	                                              output_drained, c)
	                            : NULL;
	if (c->deadline == NULL || c->flush_close == NULL || c->kick == NULL || c->bev == NULL ||
	    c->drained == NULL ||
	    evbuffer_add_cb(bufferevent_get_output(c->bev), output_added, c) == NULL) {
		if (c->bev != NULL) {
			bufferevent_free(c->bev); /* frees c through conn_free */
			return NULL;
		}
		if (c->tls != NULL)
			bufferevent_free(c->tls);
		event_free(c->deadline);
		event_free(c->flush_close);
		event_free(c->kick);
		free(c);
		return NULL;
	}
	c->next = l->conns;
	if (l->conns != NULL)
		l->conns->prev = c;
	l->conns = c;
	l->n_conns++;
	(void)atomic_fetch_add_explicit(&conns_total, 1, memory_order_relaxed);
	(void)atomic_fetch_add_explicit(&conns_open, 1, memory_order_relaxed);
	c->counted = true;
	if (l->n_conns >= l->max_conns)
		loop_accept(l, false);
	arm(c, l->h->cfg->header_timeout);
	return c->bev;
}

/* ---------------------------------------------------------------- dispatch */

static void request_done(struct evhttp_request *req, void *arg)
{
	struct conn *c = arg;
	c->in_request = false;
	/* Runs before evhttp decides whether to close: keep it from closing
	 * (see the WARNING at the top) and close after the flush instead. */
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	(void)evhttp_remove_header(in, "Connection");
	(void)evhttp_remove_header(evhttp_request_get_output_headers(req), "Connection");
	if (c->http10)
		(void)evhttp_add_header(in, "Connection", "keep-alive");
	if (c->close_after || c->loop->stopping) {
		conn_close_when_flushed(c);
		return;
	}
	if (c->state == C_HEAD) {
		arm(c, c->loop->h->cfg->header_timeout);
		conn_pump(c); /* a pipelined head may be waiting */
	}
}

static void dispatch(struct evhttp_request *req, void *arg)
{
	struct loop *l = arg;
	struct conn *c = conn_of(req);
	const char *uri = evhttp_request_get_uri(req);
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u != NULL ? evhttp_uri_get_path(u) : NULL;
	char pbuf[SRV_LOG_ESC_MAX], peer[64];
	/* Taken before the reply: the request may be gone after it. */
	(void)srv_http_peer(req, peer);
	if (c != NULL && c->reject_code != 0)
		(void)snprintf(pbuf, sizeof(pbuf), "-");
	else
		(void)srv_log_esc(uri != NULL ? uri : "", uri != NULL ? strnlen(uri, 4096) : 0,
		                  pbuf, sizeof(pbuf));
	if (c != NULL) {
		evhttp_request_set_on_complete_cb(req, request_done, c);
		const char *ch =
		        evhttp_find_header(evhttp_request_get_input_headers(req), "Connection");
		bool keep = ch != NULL && strcasecmp(ch, "keep-alive") == 0;
		c->close_after = l->stopping || c->reject_code != 0 ||
		                 (ch != NULL && strcasecmp(ch, "close") == 0) ||
		                 (c->http10 && !keep);
		if (c->close_after)
			(void)evhttp_add_header(evhttp_request_get_output_headers(req),
			                        "Connection", "close");
	}
	/* HEAD is GET without the body (srv_http_reply leaves it out). */
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (cmd == EVHTTP_REQ_HEAD)
		cmd = EVHTTP_REQ_GET;
	const struct srv_route *r = path != NULL ? route_find(l->h, path, strlen(path), cmd) : NULL;
	if (c != NULL && c->reject_code != FMT_API_ERR_UNKNOWN) {
		if (c->reject_hdr != NULL)
			(void)evhttp_add_header(evhttp_request_get_output_headers(req),
			                        c->reject_hdr, c->reject_hdr_value);
		srv_http_error(req, c->reject_code, "%s", c->reject_msg);
	} else if (path == NULL) {
		srv_http_error(req, FMT_API_ERR_BAD_REQUEST, "malformed request target");
	} else if (r == NULL) {
		srv_http_error(req, FMT_API_ERR_NOT_FOUND, "no such path");
	} else if (cmd != r->method) {
		char allow[32];
		route_allow(l->h, path, strlen(path), allow);
		(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
		srv_http_error(req, FMT_API_ERR_METHOD_NOT_ALLOWED, "use %s", allow);
	} else if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) >
	           route_max_body(l->h, r)) {
		srv_http_error(req, FMT_API_ERR_TOO_LARGE, "body too large for this path");
	} else {
		srv_store_set_actor(l->ctx.store, NULL); /* admin.c sets the caller's */
		r->fn(&l->ctx, req);
		srv_store_set_actor(l->ctx.store, NULL);
	}
	srv_log(SRV_LOG_INFO, "http.request", "loop=%u peer=%s path=%s status=%d", l->ctx.loop,
	        peer, pbuf, c != NULL ? c->status : 0);
}

/* ---------------------------------------------------------------- loops */

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct loop *l = arg;
	srv_log(SRV_LOG_WARN, "http.stop_forced", "loop=%u open=%u", l->ctx.loop, l->n_conns);
	(void)event_base_loopbreak(l->base);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct loop *l = arg;
	l->stopping = true;
	for (size_t i = 0; i < l->n_bound; i++)
		evhttp_del_accept_socket(l->http, l->bound[i]);
	l->n_bound = 0;
	l->accepting = false;
	for (struct conn *c = l->conns; c != NULL; c = c->next) {
		if (!c->in_request && c->state == C_HEAD &&
		    evbuffer_get_length(bufferevent_get_input(c->tls)) == 0)
			conn_close_now(c);
	}
	const struct srv_config *cfg = l->h->cfg;
	struct timeval tv = {
	        .tv_sec = (time_t)(cfg->header_timeout + cfg->body_timeout + cfg->request_timeout),
	        .tv_usec = 0};
	(void)evtimer_add(l->grace_ev, &tv);
	loop_check_done(l);
}

static void *loop_run(void *arg)
{
	struct loop *l = arg;
	(void)event_base_dispatch(l->base);
	return NULL;
}

/* Whether nobody else listens on addr: the loops' listeners share their
 * port through SO_REUSEPORT, which would let a second server (or any
 * program of the same user that sets it) join the group silently and take
 * part of the connections. A bind without SO_REUSEPORT fails when anyone
 * holds the port. */
static enum idp_err port_free(const struct srv_listen *ls, const struct sockaddr_storage *addr,
                              socklen_t len, int v6only, struct idp_error *err)
{
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (addr->ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) ||
	    bind(fd, (const struct sockaddr *)addr, len) != 0) {
		int e = errno;
		if (fd >= 0)
			(void)close(fd);
		if (e == EADDRINUSE)
			return idp_error_set(err, IDP_E_IO,
			                     "listen %s: address already in use by another "
			                     "process (another idprovd?)",
			                     ls->text);
		return idp_error_set(err, IDP_E_IO, "listen %s: %s", ls->text, strerror(e));
	}
	(void)close(fd);
	return IDP_OK;
}

/* A listening socket for addr (port already fixed for loops after the
 * first, which checks that the port is free: probe). */
static enum idp_err listen_socket(const struct srv_config *cfg, size_t idx,
                                  const struct sockaddr_storage *addr, socklen_t len, bool probe,
                                  evutil_socket_t *out, struct idp_error *err)
{
	const struct srv_listen *ls = &cfg->listen[idx];
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return idp_error_set(err, IDP_E_IO, "listen %s: socket: %s", ls->text,
		                     strerror(errno));
	int one = 1;
	int v6only = 1;
	if (ls->dual_stack) {
		v6only = 0;
		/* An explicit IPv4 wildcard on the same port takes IPv4 itself. */
		uint16_t port = ((const struct sockaddr_in6 *)addr)->sin6_port;
		for (size_t j = 0; j < cfg->n_listen; j++) {
			const struct sockaddr_in *o =
			        (const struct sockaddr_in *)&cfg->listen[j].addr;
			if (o->sin_family == AF_INET && o->sin_port == port)
				v6only = 1;
		}
	}
	uint16_t port = addr->ss_family == AF_INET6
	                        ? ((const struct sockaddr_in6 *)addr)->sin6_port
	                        : ((const struct sockaddr_in *)addr)->sin_port;
	if (probe && port != 0) {
		enum idp_err rc = port_free(ls, addr, len, v6only, err);
		if (rc != IDP_OK) {
			(void)close(fd);
			return rc;
		}
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    (addr->ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) ||
	    bind(fd, (const struct sockaddr *)addr, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		int e = errno;
		(void)close(fd);
		return idp_error_set(err, IDP_E_IO, "listen %s: %s", ls->text, strerror(e));
	}
	*out = fd;
	return IDP_OK;
}

static void addr_text(const struct sockaddr_storage *a, char out[static SRV_CONFIG_ADDR_TEXT])
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
		(void)inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
		port = ntohs(a6->sin6_port);
		(void)snprintf(out, SRV_CONFIG_ADDR_TEXT, "[%s]:%u", host, port);
	} else {
		const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
		(void)inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
		port = ntohs(a4->sin_port);
		(void)snprintf(out, SRV_CONFIG_ADDR_TEXT, "%s:%u", host, port);
	}
}

/* Bind every address on loop l; addrs[] holds the resolved addresses, and
 * the first loop fills in ports chosen by the kernel. */
static enum idp_err loop_bind(struct loop *l, struct sockaddr_storage *addrs, socklen_t *lens,
                              struct idp_error *err)
{
	const struct srv_config *cfg = l->h->cfg;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		evutil_socket_t fd = -1;
		bool probe = l->ctx.loop == 0;
		enum idp_err rc = listen_socket(cfg, i, &addrs[i], lens[i], probe, &fd, err);
		if (rc == IDP_E_IO && cfg->listen[i].dual_stack && errno == EAFNOSUPPORT) {
			/* No IPv6 on this host: the default falls back to IPv4. */
			struct sockaddr_in *a4 = (struct sockaddr_in *)&addrs[i];
			uint16_t port = ((struct sockaddr_in6 *)&addrs[i])->sin6_port;
			memset(&addrs[i], 0, sizeof(addrs[i]));
			a4->sin_family = AF_INET;
			a4->sin_port = port;
			a4->sin_addr.s_addr = htonl(INADDR_ANY);
			lens[i] = sizeof(*a4);
			rc = listen_socket(cfg, i, &addrs[i], lens[i], probe, &fd, err);
		}
		if (rc != IDP_OK)
			return rc;
		if (l->ctx.loop == 0) {
			socklen_t sl = lens[i];
			if (getsockname(fd, (struct sockaddr *)&addrs[i], &sl) != 0) {
				(void)close(fd);
				return idp_error_set(err, IDP_E_IO, "listen %s: getsockname: %s",
				                     cfg->listen[i].text, strerror(errno));
			}
			addr_text(&addrs[i], l->h->bound_text[i]);
		}
		struct evconnlistener *lev =
		        evconnlistener_new(l->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, -1, fd);
		if (lev == NULL) {
			(void)close(fd);
			return idp_error_set(err, IDP_E_NOMEM, "listen %s: out of memory",
			                     cfg->listen[i].text);
		}
		l->bound[l->n_bound] = evhttp_bind_listener(l->http, lev);
		if (l->bound[l->n_bound] == NULL) {
			evconnlistener_free(lev);
			return idp_error_set(err, IDP_E_NOMEM, "listen %s: out of memory",
			                     cfg->listen[i].text);
		}
		l->n_bound++;
	}
	l->accepting = true;
	return IDP_OK;
}

static enum idp_err loop_init(struct srv_httpd *h, struct loop *l, unsigned idx,
                              struct sockaddr_storage *addrs, socklen_t *lens, void *app,
                              struct idp_error *err)
{
	const struct srv_config *cfg = h->cfg;
	l->h = h;
	l->ctx.loop = idx;
	l->ctx.state = h->state;
	l->ctx.cfg = cfg;
	l->ctx.app = app;
	unsigned per = (cfg->max_connections + (unsigned)h->n_loops - 1) / (unsigned)h->n_loops;
	l->max_conns = per > 0 ? per : 1;
	l->base = event_base_new();
	l->http = l->base != NULL ? evhttp_new(l->base) : NULL;
	l->stop_ev = l->base != NULL ? event_new(l->base, -1, 0, stop_cb, l) : NULL;
	l->grace_ev = l->base != NULL ? evtimer_new(l->base, grace_cb, l) : NULL;
	if (l->http == NULL || l->stop_ev == NULL || l->grace_ev == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "httpd: out of memory");
	evhttp_set_bevcb(l->http, conn_new, l);
	evhttp_set_gencb(l->http, dispatch, l);
	evhttp_set_max_headers_size(l->http, (ev_ssize_t)cfg->max_headers);
	evhttp_set_max_body_size(l->http, (ev_ssize_t)h->max_body_any);
	evhttp_set_timeout(l->http, (int)cfg->request_timeout);
	/* Every method, unknown ones included, reaches dispatch, which answers
	 * 404 or 405 in JSON; evhttp would answer a method it does not allow
	 * with its own HTML 501. */
	evhttp_set_allowed_methods(l->http, UINT16_MAX);
	enum idp_err rc = srv_store_open(h->state->db_path, &l->ctx.store, err);
	if (rc != IDP_OK)
		return rc;
	return loop_bind(l, addrs, lens, err);
}

static enum idp_err tls_init(struct srv_httpd *h, struct idp_error *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return idp_error_ssl(err, IDP_E_CRYPTO, "tls: new context");
	h->ssl_ctx = ctx;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_use_certificate(ctx, h->state->server_cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, fmt_key_evp(h->state->server_key)) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "tls: server certificate");
	(void)SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	                                       SSL_OP_NO_COMPRESSION);
	static const unsigned char sid[] = "idprovd";
	if (SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "tls: session id context");
	const char *ca = h->cfg->station_ca;
	if (ca[0] != '\0') {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
		if (names == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			return idp_error_ssl(err, IDP_E_CRYPTO, "tls: station-ca %s", ca);
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		/* Ask for a certificate, do not require one: devices have none. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	const char *aca = h->cfg->admin_ca;
	if (aca[0] != '\0') {
		/* Trusted in the handshake beside the station CA; ssl_admin_cn then
		 * checks a certificate against the admin CA alone. */
		h->admin_store = X509_STORE_new();
		h->station_store = ca[0] != '\0' ? X509_STORE_new() : NULL;
		STACK_OF(X509_NAME) *names = SSL_CTX_get_client_CA_list(ctx);
		bool ok = h->admin_store != NULL && X509_STORE_load_file(h->admin_store, aca) == 1 &&
		          (ca[0] == '\0' || (h->station_store != NULL &&
		                             X509_STORE_load_file(h->station_store, ca) == 1)) &&
		          SSL_CTX_load_verify_locations(ctx, aca, NULL) == 1;
		if (ok && names != NULL) {
			ok = SSL_add_file_cert_subjects_to_stack(names, aca) == 1;
		} else if (ok) {
			names = SSL_load_client_CA_file(aca);
			ok = names != NULL;
			if (ok)
				SSL_CTX_set_client_CA_list(ctx, names);
		}
		if (!ok)
			return idp_error_ssl(err, IDP_E_CRYPTO, "tls: admin-ca %s", aca);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	return IDP_OK;
}

/* libevent's locking, once per process, before the first event base. */
static int threads_rc = -1;
static void threads_init(void)
{
	threads_rc = evthread_use_pthreads();
}

enum idp_err srv_httpd_new(const struct srv_config *cfg, const struct srv_state *state,
                           const struct srv_route *routes, size_t n_routes, void *app,
                           struct srv_httpd **out, struct idp_error *err)
{
	*out = NULL;
	if (n_routes > SRV_HTTP_ROUTES_MAX || cfg->n_listen == 0 || cfg->threads == 0)
		return idp_error_set(err, IDP_E_ARG, "httpd: bad routes, listen or threads");
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	if (pthread_once(&once, threads_init) != 0 || threads_rc != 0)
		return idp_error_set(err, IDP_E_ARG, "httpd: libevent has no pthreads support");
	struct srv_httpd *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "httpd: out of memory");
	h->cfg = cfg;
	h->state = state;
	h->routes = routes;
	h->n_routes = n_routes;
	h->n_listen = cfg->n_listen;
	h->max_body_any = cfg->max_body;
	for (size_t i = 0; i < n_routes; i++) {
		size_t m = routes[i].max_body == SRV_ROUTE_MANIFEST ? cfg->max_manifest
		                                                    : routes[i].max_body;
		if (m > h->max_body_any)
			h->max_body_any = m;
	}
	h->n_loops = cfg->threads;
	h->loops = calloc(h->n_loops, sizeof(*h->loops));
	if (h->loops == NULL) {
		free(h);
		return idp_error_set(err, IDP_E_NOMEM, "httpd: out of memory");
	}
	enum idp_err rc = tls_init(h, err);
	struct sockaddr_storage addrs[SRV_CONFIG_LISTEN_MAX];
	socklen_t lens[SRV_CONFIG_LISTEN_MAX];
	memset(addrs, 0, sizeof(addrs));
	memset(lens, 0, sizeof(lens));
	for (size_t i = 0; i < cfg->n_listen; i++) {
		addrs[i] = cfg->listen[i].addr;
		lens[i] = cfg->listen[i].addr_len;
	}
	for (size_t i = 0; rc == IDP_OK && i < h->n_loops; i++)
		rc = loop_init(h, &h->loops[i], (unsigned)i, addrs, lens, app, err);
	if (rc != IDP_OK) {
		srv_httpd_free(h);
		return rc;
	}
	*out = h;
	return IDP_OK;
}

const char *srv_httpd_bound(const struct srv_httpd *h, size_t i)
{
	return i < h->n_listen ? h->bound_text[i] : NULL;
}

enum idp_err srv_httpd_start(struct srv_httpd *h, struct idp_error *err)
{
	for (size_t i = 0; i < h->n_loops; i++) {
		int e = pthread_create(&h->loops[i].thread, NULL, loop_run, &h->loops[i]);
		if (e != 0) {
			srv_httpd_shutdown(h);
			return idp_error_set(err, IDP_E_IO, "httpd: thread: %s", strerror(e));
		}
		h->loops[i].started = true;
	}
	h->started = true;
	return IDP_OK;
}

void srv_httpd_shutdown(struct srv_httpd *h)
{
	for (size_t i = 0; i < h->n_loops; i++)
		if (h->loops[i].started)
			event_active(h->loops[i].stop_ev, EV_READ, 0);
	for (size_t i = 0; i < h->n_loops; i++) {
		if (h->loops[i].started) {
			(void)pthread_join(h->loops[i].thread, NULL);
			h->loops[i].started = false;
		}
	}
}

void srv_httpd_free(struct srv_httpd *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; h->loops != NULL && i < h->n_loops; i++) {
		struct loop *l = &h->loops[i];
		l->stopping = false; /* no loopexit calls on a base being torn down */
		l->n_bound = 0;      /* evhttp_free frees the listeners first */
		if (l->http != NULL)
			evhttp_free(l->http); /* closes listeners and connections */
		if (l->stop_ev != NULL)
			event_free(l->stop_ev);
		if (l->grace_ev != NULL)
			event_free(l->grace_ev);
		if (l->base != NULL)
			event_base_free(l->base);
		srv_store_close(l->ctx.store);
	}
	free(h->loops);
	SSL_CTX_free(h->ssl_ctx);
	X509_STORE_free(h->admin_store);
	X509_STORE_free(h->station_store);
	free(h);
}
