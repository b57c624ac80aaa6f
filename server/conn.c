/*
 * conn.c - one client connection of idprovd's HTTPS front (server/conn.h):
 * a bufferevent_openssl on the socket, under a filtering bufferevent
 * (conn_filter) that evhttp reads from. The filter passes the request head
 * to evhttp only once it is whole, checks it (server/head.h), its size and
 * the body size it announces against the route, and passes exactly the
 * body bytes announced; a refused request is replaced by a tiny synthetic
 * one ("GET /") so that evhttp calls the dispatcher, which answers the
 * recorded JSON error and closes. Deadlines: the TLS handshake and head,
 * the body, held output, and the linger after a refusal. The body's is
 * a minimum data rate (Apache mod_reqtimeout's MinRate): body-timeout,
 * extended by one second for every body-min-rate bytes received, so a
 * slow honest upload finishes while a client trickling bytes is cut.
 *
 * A manifest upload (a route whose body limit is max-manifest) never
 * reaches evhttp's memory: the filter holds its head, writes the body to a
 * spool (server/spool.h: a temporary file, hashed on the way) and, once the
 * body is whole, passes the head with "Content-Length: 0"; the handler
 * imports from the spool (srv_conn_upload).
 *
 * WARNING: evhttp frees a connection as soon as the reply has left the
 * filter, i.e. before TLS has sent it. So evhttp must never close a
 * connection itself: when a request completes we strip what would make it
 * close (Connection: close, HTTP/1.0) and close the socket ourselves once
 * the TLS output is flushed; the client still sees "Connection: close".
 *
 * Thread-safety: a connection lives on its loop's thread.
 */
#include "server/conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>

#include "formats/api.h"
#include "server/admin.h"
#include "server/fault.h"
#include "server/head.h"
#include "formats/io/log.h"
#include "server/routes.h"
#include "server/spool.h"
#include "server/ui.h"

#define ERROR_MSG_MAX 256u
#define FLUSH_POLL_MS 20
/* Pipelining: the next request head is passed to evhttp only when the
 * answers waiting to be sent are under OUT_HIGH bytes; reading resumes
 * once they drained to OUT_LOW. While held, at most HOLD_INPUT_MAX bytes
 * of unparsed requests are read from the client (plus one TLS record). */
#define OUT_HIGH          ((size_t)256 * 1024)
#define OUT_LOW           ((size_t)64 * 1024)
#define HOLD_INPUT_MAX    ((size_t)64 * 1024)
#define LINGER_S          2u /* seconds a refused client may send on */
#define SYNTHETIC_REQUEST "GET / HTTP/1.1\r\nHost: idprovd\r\n\r\n"

enum conn_state {
	C_HEAD,   /* reading a request head */
	C_BODY,   /* passing the announced body */
	C_REJECT, /* refused: everything further is dropped */
	C_SPOOL,  /* writing a manifest body to the spool; its head is held */
};

struct srv_conn {
	struct srv_loop *loop;
	struct srv_conn *prev, *next;
	struct bufferevent *bev; /* the filter evhttp owns */
	struct bufferevent *tls; /* the TLS bufferevent under it */
	struct event *deadline;
	struct event *flush_close;         /* close once the TLS output is flushed */
	struct event *kick;                /* push evhttp's output through the filter */
	bool kick_ref;                     /* kick is pending and holds a reference on bev */
	struct evbuffer_cb_entry *drained; /* on the TLS output: resume when paused */
	struct event *drain_ev;            /* runs drain_fn (srv_conn_when_drained) */
	void (*drain_fn)(void *arg);
	void *drain_arg;
	enum conn_state state;
	size_t body_left;
	bool in_request;  /* a head was passed and its response is not complete */
	bool paused;      /* holding the next head until the output drains */
	bool read_off;    /* reading from the client stopped while holding */
	bool lingering;   /* refused and answered: dropping input until closed */
	bool http10;      /* the last head passed was HTTP/1.0 */
	bool close_after; /* close once the current reply is sent */
	bool nodelay;
	bool counted;                      /* in conns_open (set once srv_conn_new succeeded) */
	int status;                        /* status of the last reply, for the log */
	enum fmt_api_err_code reject_code; /* of a refused request; FMT_API_ERR_UNKNOWN: none */
	const char *reject_hdr;            /* a header for the refusal (NULL when none) */
	char reject_hdr_value[48];         /* ... and its value */
	char reject_msg[ERROR_MSG_MAX];
	int64_t body_t0;         /* C_BODY, C_SPOOL: when the body began (fio_mono_ms) */
	int64_t body_last;       /* ... when its last bytes came */
	uint64_t body_got;       /* ... and its bytes received so far */
	struct idp_error reject_err; /* the cause of a storage_full refusal, for its log */
	struct srv_spool *spool; /* the upload of the current request, or NULL */
	uint8_t *held;           /* C_SPOOL: the head to pass once the body is spooled */
	size_t held_len;
};

/* Connections accepted and open, for GET /metrics (server/metrics.h).
 * Relaxed atomics: each is one independent count. */
static atomic_uint_least64_t conns_total;
static atomic_int_least64_t conns_open;

uint64_t srv_http_connections_total(void)
{
	return atomic_load_explicit(&conns_total, memory_order_relaxed);
}

int64_t srv_http_connections_open(void)
{
	return atomic_load_explicit(&conns_open, memory_order_relaxed);
}

struct srv_conn *srv_conn_of(struct evhttp_request *req)
{
	SSL *ssl = srv_http_ssl(req);
	return ssl != NULL ? SSL_get_app_data(ssl) : NULL;
}

const struct srv_httpd *srv_conn_httpd(const struct srv_conn *c)
{
	return c->loop->h;
}

struct srv_loop *srv_conn_loop(const struct srv_conn *c)
{
	return c->loop;
}

void srv_conn_replied(struct srv_conn *c, int code)
{
	c->status = code;
}

struct srv_spool *srv_conn_upload(struct srv_conn *c)
{
	return c->state == C_SPOOL ? NULL : c->spool;
}

/* Forget the upload of c (spooled or half-spooled). */
static void conn_upload_drop(struct srv_conn *c)
{
	srv_spool_free(c->spool);
	c->spool = NULL;
	free(c->held);
	c->held = NULL;
	c->held_len = 0;
}

static void conn_close_now(struct srv_conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->tls);
	if (fd >= 0)
		(void)shutdown(fd, SHUT_RDWR);
}

/* When the body's deadline is, for the bytes received so far: body-timeout
 * after it began, plus a second for every body-min-rate bytes received
 * (so never later than body-timeout + Content-Length / body-min-rate, the
 * length being bounded by the route: max-body, max-manifest), and never
 * more than body-timeout after the last bytes (a client that sent much
 * quickly and then stops is not kept for the credit it earned). */
static int64_t body_due(const struct srv_conn *c)
{
	const struct srv_config *cfg = c->loop->h->cfg;
	int64_t t = (int64_t)cfg->body_timeout * 1000;
	if (cfg->body_min_rate == 0)
		return c->body_t0 + t;
	/* got <= max-manifest <= 1 GiB: no overflow */
	int64_t due = c->body_t0 + t + (int64_t)(c->body_got * 1000 / cfg->body_min_rate);
	return due < c->body_last + t ? due : c->body_last + t;
}

/* n more bytes of the body came. */
static void body_received(struct srv_conn *c, size_t n)
{
	if (n == 0)
		return;
	c->body_got += n;
	c->body_last = fio_mono_ms();
}

/* The timer is not moved for every read: when it fires early, it is set
 * again for the deadline the bytes received since have earned. */
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct srv_conn *c = arg;
	bool body = c->state == C_BODY || c->state == C_SPOOL;
	int64_t left = body ? body_due(c) - fio_mono_ms() : 0;
	if (left > 0) {
		struct timeval tv = {.tv_sec = (time_t)(left / 1000),
		                     .tv_usec = (suseconds_t)(left % 1000) * 1000};
		(void)evtimer_add(c->deadline, &tv);
		return;
	}
	if (body)
		fio_log(FIO_LOG_INFO, "conn.deadline",
		        "loop=%u phase=body got=%llu left=%llu min_rate=%u", c->loop->ctx.loop,
		        (unsigned long long)c->body_got, (unsigned long long)c->body_left,
		        c->loop->h->cfg->body_min_rate);
	else
		fio_log(FIO_LOG_INFO, "conn.deadline", "loop=%u phase=%s", c->loop->ctx.loop,
		        c->lingering ? "linger"
		        : c->paused  ? "output"
		                     : "head");
	conn_close_now(c);
}

static void arm(struct srv_conn *c, unsigned seconds)
{
	struct timeval tv = {.tv_sec = (time_t)seconds, .tv_usec = 0};
	(void)evtimer_add(c->deadline, &tv);
}

/* The body of the current request begins: its deadline is body-timeout
 * from now, moved on as its bytes arrive (body_due). */
static void body_arm(struct srv_conn *c)
{
	c->body_t0 = fio_mono_ms();
	c->body_last = c->body_t0;
	c->body_got = 0;
	arm(c, c->loop->h->cfg->body_timeout);
}

static void flush_close_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct srv_conn *c = arg;
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
	struct srv_conn *c = arg;
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
	struct srv_conn *c = arg;
	if (info->n_added == 0 || c->kick_ref)
		return;
	c->kick_ref = true;
	bufferevent_incref(c->bev);
	event_active(c->kick, EV_TIMEOUT, 1);
}

/* Bytes of answers c has not sent yet. */
static size_t conn_out_pending(const struct srv_conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->tls)) +
	       evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Let the filter look at the unparsed input again: after a request
 * completed or the output drained. Deferred, so it runs after evhttp is
 * done with the current call; the TLS bufferevent's deferred callback is
 * cancelled with it, and once the filter is freed its read callback is
 * unset, so this never reaches a freed filter. */
static void conn_pump(struct srv_conn *c)
{
	if (c->read_off) {
		c->read_off = false;
		(void)bufferevent_enable(c->tls, EV_READ);
	}
	bufferevent_trigger(c->tls, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The TLS output shrank: resume a paused connection at the low watermark,
 * and wake a streaming handler (deferred: it adds output). */
static void output_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct srv_conn *c = arg;
	if (info->n_deleted == 0 || conn_out_pending(c) > OUT_LOW)
		return;
	if (c->drain_fn != NULL)
		event_active(c->drain_ev, EV_TIMEOUT, 1);
	if (!c->paused)
		return;
	(void)buf;
	c->paused = false;
	arm(c, c->loop->h->cfg->header_timeout);
	conn_pump(c);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct srv_conn *c = arg;
	void (*fn)(void *) = c->drain_fn;
	c->drain_fn = NULL;
	if (fn == NULL)
		return;
	arm(c, c->loop->h->cfg->header_timeout); /* progress: the client reads */
	fn(c->drain_arg);
}

void srv_conn_when_drained(struct srv_conn *c, void (*fn)(void *arg), void *arg)
{
	c->drain_fn = fn;
	c->drain_arg = arg;
	if (conn_out_pending(c) <= OUT_LOW)
		event_active(c->drain_ev, EV_TIMEOUT, 1);
	else /* a client that stops reading is cut at the deadline */
		arm(c, c->loop->h->cfg->header_timeout);
}

void srv_conn_stream_end(struct srv_conn *c)
{
	c->drain_fn = NULL;
	(void)event_del(c->drain_ev);
	(void)event_del(c->deadline);
}

/* Close c once what it has to send is sent. */
static void conn_close_when_flushed(struct srv_conn *c)
{
	struct timeval tv = {.tv_sec = 0, .tv_usec = (suseconds_t)FLUSH_POLL_MS * 1000};
	(void)event_add(c->flush_close, &tv);
}

/* The filter's context is freed with the filter, which evhttp frees with the
 * connection: the one place a connection's bookkeeping ends. */
static void conn_free(void *arg)
{
	struct srv_conn *c = arg;
	struct srv_loop *l = c->loop;
	/* A connection whose setup failed in srv_conn_new was never linked nor
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
	/* A TLS session that ended between requests ended well: OpenSSL drops
	 * from its cache a session whose connection ends without close_notify,
	 * and a TLS 1.2 client without tickets (libcurl) could not resume it
	 * (server/httpd.c, session tickets). Marked, not sent: the client may
	 * be gone, and a write would raise SIGPIPE in a program that embeds
	 * the server without ignoring it. */
	SSL *ssl = c->tls != NULL ? bufferevent_openssl_get_ssl(c->tls) : NULL;
	if (ssl != NULL && !c->in_request && SSL_is_init_finished(ssl))
		SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_SENT_SHUTDOWN);
	event_free(c->deadline);
	event_free(c->flush_close);
	event_free(c->kick);
	if (c->drain_ev != NULL)
		event_free(c->drain_ev);
	if (c->drained != NULL)
		(void)evbuffer_remove_cb_entry(bufferevent_get_output(c->tls), c->drained);
	conn_upload_drop(c);
	free(c);
	if (!linked)
		return;
	l->n_conns--;
	if (l->n_conns < l->max_conns)
		srv_loop_accept(l, true);
	srv_loop_check_done(l);
}

/* Refuse the current request: drop its bytes, hand evhttp a synthetic
 * request instead, and remember what to answer. */
static void conn_reject(struct srv_conn *c, struct evbuffer *src, struct evbuffer *dst,
                        enum fmt_api_err_code code, const char *fmt, ...) IDP_PRINTF(5, 6);

static void conn_reject(struct srv_conn *c, struct evbuffer *src, struct evbuffer *dst,
                        enum fmt_api_err_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	srv_http_vformat(c->reject_msg, sizeof(c->reject_msg), fmt, ap);
	va_end(ap);
	c->reject_code = code;
	conn_upload_drop(c);
	c->state = C_REJECT;
	c->in_request = true;
	(void)evbuffer_drain(src, evbuffer_get_length(src));
	(void)evbuffer_add(dst, SYNTHETIC_REQUEST, sizeof(SYNTHETIC_REQUEST) - 1);
	(void)event_del(c->deadline);
}

/* Authenticate the head hi for route r before any body is read; when it
 * fails, the request is refused (401/403) and false returned. */
static bool head_authorized(struct srv_conn *c, const struct srv_route *r,
                            const struct srv_head *hi, struct evbuffer *src, struct evbuffer *dst)
{
	struct idp_error err = {0};
	enum fmt_api_err_code code = FMT_API_ERR_UNAUTHORIZED;
	switch (srv_route_auth(r)) {
	case SRV_AUTH_NONE:
		return true;
	case SRV_AUTH_ADMIN: {
		struct srv_admin_who who;
		int ui = 0;
		char cn[SRV_HTTP_ADMIN_CN_MAX + 1];
		srv_http_ssl_admin_cn(c->loop->h, bufferevent_openssl_get_ssl(c->tls), cn);
		if (srv_admin_identify(c->loop->ctx.state, c->loop->ctx.store, hi->auth,
		                       hi->auth_len, cn, &who, &err) != IDP_OK) {
			char ebuf[FIO_LOG_ESC_MAX];
			fio_log(FIO_LOG_ERROR, "admin.check", "loop=%u error=%s",
			        c->loop->ctx.loop, fio_log_err(&err, ebuf));
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
			fio_log(FIO_LOG_WARN, "admin.unauthorized", "loop=%u phase=head",
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
		        srv_http_ssl_station(c->loop->h, bufferevent_openssl_get_ssl(c->tls), id, &err);
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

/* Copy p[0..len) to out + n; the new length. */
static size_t put(uint8_t *out, size_t n, const void *p, size_t len)
{
	memcpy(out + n, p, len);
	return n + len;
}

/* The head p[0..end) as evhttp gets it after its body went to the spool:
 * the same request line and fields, but "Content-Length: 0" and no Expect
 * (answered here). *expect_continue says whether it asked for 100-continue. */
static uint8_t *head_without_body(const uint8_t *p, size_t end, size_t *len,
                                  bool *expect_continue)
{
	static const char tail[] = "Content-Length: 0\r\n\r\n";
	*expect_continue = false;
	const uint8_t *lf = memchr(p, '\n', end);
	uint8_t *out = lf != NULL ? malloc(end + sizeof(tail)) : NULL;
	if (out == NULL)
		return NULL;
	size_t n = (size_t)(lf - p) + 1;
	memcpy(out, p, n);
	const uint8_t *pos = NULL;
	struct srv_head_field f;
	while (srv_head_next_field(p, end, &pos, &f)) {
		if (f.name_len == 6 && strncasecmp(f.name, "expect", 6) == 0) {
			*expect_continue = true;
			continue;
		}
		if (f.name_len == 14 && strncasecmp(f.name, "content-length", 14) == 0)
			continue;
		/* name ": " value CRLF is never longer than the line it came from. */
		static const uint8_t colon[2] = {':', ' '}, crlf[2] = {'\r', '\n'};
		n = put(out, n, f.name, f.name_len);
		n = put(out, n, colon, sizeof(colon));
		n = put(out, n, f.value, f.value_len);
		n = put(out, n, crlf, sizeof(crlf));
	}
	memcpy(out + n, tail, sizeof(tail) - 1);
	*len = n + sizeof(tail) - 1;
	return out;
}

/* Refuse the upload whose spool failed with err: storage running out
 * (IDP_E_FULL) is answered like any full store, 503 storage_full with
 * Retry-After and logged as store.full (server/fault.h, from the
 * dispatcher); anything else 500, logged here. The spool goes with the
 * refusal (conn_reject), and its space with it. */
static void conn_spool_refuse(struct srv_conn *c, struct evbuffer *src, struct evbuffer *dst,
                              const struct idp_error *err)
{
	enum fmt_api_err_code code = fmt_api_err_of(err->code, FMT_API_ORIGIN_SERVER);
	if (code != FMT_API_ERR_STORAGE_FULL) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_ERROR, "upload.spool", "loop=%u error=%s", c->loop->ctx.loop,
		        fio_log_err(err, ebuf));
		code = FMT_API_ERR_INTERNAL;
	}
	conn_reject(c, src, dst, code, "cannot store the upload");
	c->reject_err = *err;
}

/* Start spooling the body of the manifest upload whose head is p[0..end) in
 * src; false when refused (answered with the error). */
static bool conn_spool_start(struct srv_conn *c, const uint8_t *p, size_t end, uint64_t length,
                             struct evbuffer *src, struct evbuffer *dst)
{
	struct idp_error err = {0};
	bool expect = false;
	conn_upload_drop(c);
	c->held = head_without_body(p, end, &c->held_len, &expect);
	if (c->held == NULL) {
		conn_reject(c, src, dst, FMT_API_ERR_INTERNAL, "out of memory");
		return false;
	}
	if (srv_spool_new(c->loop->h->cfg->state_dir, &c->spool, &err) != IDP_OK) {
		conn_spool_refuse(c, src, dst, &err);
		return false;
	}
	(void)evbuffer_drain(src, end);
	/* evhttp never sees this Expect: answer it here, straight to TLS (the
	 * filter passes evhttp's output only while evhttp writes). An earlier
	 * answer has left the filter once its request completed; if one has
	 * not, the client waits its own timeout and sends the body anyway. */
	if (expect && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		(void)bufferevent_write(c->tls, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	c->state = C_SPOOL;
	c->in_request = true;
	c->body_left = (size_t)length;
	(void)event_del(c->deadline);
	body_arm(c);
	return true;
}

/* Move up to c->body_left bytes of src into the spool; false when refused. */
static bool conn_spool_some(struct srv_conn *c, struct evbuffer *src, struct evbuffer *dst)
{
	size_t n = evbuffer_get_length(src);
	size_t k = n < c->body_left ? n : c->body_left;
	struct idp_error err = {0};
	while (k > 0) {
		struct evbuffer_iovec v[8];
		int nv = evbuffer_peek(src, (ev_ssize_t)k, NULL, v, 8);
		size_t done = 0;
		for (int i = 0; i < nv && i < 8 && done < k; i++) {
			size_t m = v[i].iov_len < k - done ? v[i].iov_len : k - done;
			if (srv_spool_write(c->spool, v[i].iov_base, m, &err) != IDP_OK) {
				conn_spool_refuse(c, src, dst, &err);
				return false;
			}
			done += m;
		}
		if (done == 0 || evbuffer_drain(src, done) != 0)
			return false;
		k -= done;
		c->body_left -= done;
	}
	return true;
}

static enum bufferevent_filter_result conn_filter(struct evbuffer *src, struct evbuffer *dst,
                                                  ev_ssize_t dst_limit,
                                                  enum bufferevent_flush_mode mode, void *arg)
{
	(void)dst_limit;
	(void)mode;
	struct srv_conn *c = arg;
	const struct srv_config *cfg = c->loop->h->cfg;
	bool produced = false, spooled = false;
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
		if (c->state == C_SPOOL) {
			size_t left = c->body_left;
			if (!conn_spool_some(c, src, dst))
				return c->state == C_REJECT ? BEV_OK : BEV_ERROR;
			body_received(c, left - c->body_left);
			/* evhttp sees nothing of a spooled body: BEV_OK tells it the
			 * connection is not silent (resets its request-timeout). */
			spooled = spooled || left != c->body_left;
			if (c->body_left == 0) {
				/* Whole: now evhttp may see the request. */
				if (evbuffer_add(dst, c->held, c->held_len) != 0)
					return BEV_ERROR;
				free(c->held);
				c->held = NULL;
				produced = true;
				c->state = C_HEAD;
				(void)event_del(c->deadline);
			}
			continue;
		}
		if (c->state == C_BODY) {
			size_t k = n < c->body_left ? n : c->body_left;
			if (evbuffer_remove_buffer(src, dst, k) != (int)k)
				return BEV_ERROR;
			produced = true;
			c->body_left -= k;
			body_received(c, k);
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
		size_t end = srv_head_end(p, look);
		if (end == 0 || end > cfg->max_headers) {
			if (n <= cfg->max_headers)
				break; /* wait for the rest; the deadline runs */
			conn_reject(c, src, dst, FMT_API_ERR_HEADERS_TOO_LARGE,
			            "request head is larger than %zu bytes", cfg->max_headers);
			return BEV_OK;
		}
		struct srv_head hi;
		srv_head_parse(p, end, &hi);
		const struct srv_route *r =
		        hi.bad != NULL ? NULL : srv_route_find(c->loop->h->routes, c->loop->h->n_routes, hi.path,
		                                          hi.path_len, 0);
		size_t max = srv_route_max_body(r, cfg);
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
		const char *why = srv_head_refusal(p, end, &hi, &why_code);
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
		c->http10 = hi.http10;
		if (r != NULL && r->max_body == SRV_ROUTE_MANIFEST && hi.has_length &&
		    hi.length > 0) {
			if (!conn_spool_start(c, p, end, hi.length, src, dst))
				return BEV_OK;
			continue;
		}
		if (evbuffer_remove_buffer(src, dst, end) != (int)end)
			return BEV_ERROR;
		produced = true;
		c->in_request = true;
		(void)event_del(c->deadline);
		if (hi.has_length && hi.length > 0) {
			c->state = C_BODY;
			c->body_left = (size_t)hi.length;
			body_arm(c);
		}
	}
	return produced || spooled ? BEV_OK : BEV_NEED_MORE;
}

struct bufferevent *srv_conn_new(struct event_base *base, void *arg)
{
	struct srv_loop *l = arg;
	struct srv_conn *c = calloc(1, sizeof(*c));
	SSL *ssl = c != NULL ? SSL_new(l->h->ssl_ctx) : NULL;
	if (ssl == NULL) {
		free(c);
		fio_log(FIO_LOG_ERROR, "conn.error", "loop=%u what=out-of-memory", l->ctx.loop);
		return NULL;
	}
	c->loop = l;
	SSL_set_app_data(ssl, c);
	c->deadline = evtimer_new(base, deadline_cb, c);
	c->flush_close = event_new(base, -1, EV_PERSIST, flush_close_cb, c);
	c->kick = event_new(base, -1, 0, kick_cb, c);
	c->drain_ev = event_new(base, -1, 0, drain_cb, c);
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
	c->drained = c->tls != NULL
	                     ? evbuffer_add_cb(bufferevent_get_output(c->tls), output_drained, c)
	                     : NULL;
	if (c->deadline == NULL || c->flush_close == NULL || c->kick == NULL ||
	    c->drain_ev == NULL || c->bev == NULL ||
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
		if (c->drain_ev != NULL)
			event_free(c->drain_ev);
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
		srv_loop_accept(l, false);
	arm(c, l->h->cfg->header_timeout);
	return c->bev;
}

static void request_done(struct evhttp_request *req, void *arg)
{
	struct srv_conn *c = arg;
	c->in_request = false;
	conn_upload_drop(c);
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

/* ---------------------------------------------------------------- busy store
 * Another process (the sqlite3 CLI, a backup tool) may hold the database's
 * write lock for long. SQLite's busy handler would sleep in the loop's
 * thread for up to SRV_STORE_BUSY_MS, stalling every connection of the
 * loop, reads included. Instead a route handler runs with a short wait
 * (BUSY_SLICE_MS: the other loops' transactions are that short), and a
 * request that still meets the lock is queued (srv_http_defer) and run
 * again from the start on a timer, backing off from RETRY_MIN_MS to
 * RETRY_MAX_MS. Each tick runs the oldest request only (without any wait):
 * while the lock is held one handler run per tick is all it costs, and once
 * it goes through, the rest run in order. A request still waiting when its
 * bound passes is answered 503 unavailable with Retry-After. */
#define BUSY_SLICE_MS SRV_STORE_BUSY_SLICE_MS
#define RETRY_MIN_MS  10u
#define RETRY_MAX_MS  200u

struct srv_retry {
	struct srv_retry *next;
	struct evhttp_request *req;
	srv_handler_fn *fn;
	int64_t deadline; /* CLOCK_MONOTONIC ms: answer 503 from then on */
	bool deferred;    /* its handler asked to run again */
	bool again;       /* this is a run again */
	unsigned runs;
	char peer[64];
	char path[FIO_LOG_ESC_MAX];
	const char *outcome; /* srv_http_defer_outcome: its event, or NULL */
	char outcome_fields[FIO_LOG_ESC_MAX + 64];
};

bool srv_http_defer(struct evhttp_request *req)
{
	struct srv_conn *c = srv_conn_of(req);
	struct srv_loop *l = c != NULL ? c->loop : NULL;
	if (l == NULL || l->cur == NULL || l->cur->req != req || l->stopping ||
	    fio_mono_ms() >= l->cur->deadline)
		return false;
	l->cur->deferred = true;
	return true;
}

bool srv_http_retrying(struct evhttp_request *req)
{
	struct srv_conn *c = srv_conn_of(req);
	return c != NULL && c->loop->cur != NULL && c->loop->cur->req == req && c->loop->cur->again;
}

bool srv_http_deferred(struct evhttp_request *req)
{
	struct srv_conn *c = srv_conn_of(req);
	return c != NULL && c->loop->cur != NULL && c->loop->cur->req == req &&
	       c->loop->cur->deferred;
}

void srv_http_defer_outcome(struct evhttp_request *req, const char *event, const char *fields)
{
	struct srv_conn *c = srv_conn_of(req);
	struct srv_retry *e = c != NULL ? c->loop->cur : NULL;
	if (e == NULL || e->req != req || !e->deferred)
		return;
	e->outcome = event;
	(void)snprintf(e->outcome_fields, sizeof(e->outcome_fields), "%s", fields);
}

/* The outcome its handler left for e (srv_http_defer_outcome), now that e
 * ends without a run that answers it; why: the busy store. */
static void retry_outcome(const struct srv_retry *e, const struct idp_error *why)
{
	if (e->outcome == NULL)
		return;
	char ebuf[FIO_LOG_ESC_MAX];
	fio_log(FIO_LOG_INFO, e->outcome, "%s code=%s reason=%s", e->outcome_fields,
	        fmt_api_err_code_name(FMT_API_ERR_UNAVAILABLE), fio_log_err(why, ebuf));
}

/* The request log line of a request once answered (runs: of its handler;
 * more than one when it waited for the lock). */
static void request_log(const struct srv_loop *l, const char *peer, const char *path, int status,
                        unsigned runs)
{
	if (runs > 1)
		fio_log(FIO_LOG_INFO, "http.request", "loop=%u peer=%s path=%s status=%d runs=%u",
		        l->ctx.loop, peer, path, status, runs);
	else
		fio_log(FIO_LOG_INFO, "http.request", "loop=%u peer=%s path=%s status=%d",
		        l->ctx.loop, peer, path, status);
}

/* Run e's handler once, waiting wait_ms at most for the lock. */
static void retry_run(struct srv_loop *l, struct srv_retry *e, int wait_ms)
{
	struct srv_retry *outer = l->cur; /* a reply may dispatch a pipelined request */
	l->cur = e;
	e->deferred = false;
	e->runs++;
	srv_store_set_busy_ms(l->ctx.store, wait_ms);
	srv_store_set_actor(l->ctx.store, NULL); /* admin.c sets the caller's */
	e->fn(&l->ctx, e->req);
	srv_store_set_actor(l->ctx.store, NULL);
	srv_store_set_busy_ms(l->ctx.store, SRV_STORE_BUSY_MS);
	l->cur = outer;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg);

/* Queue e (at the head when first) and arm the tick. */
static void retry_queue(struct srv_loop *l, struct srv_retry *e, bool first)
{
	if (first) {
		e->next = l->retry_head;
		l->retry_head = e;
		if (l->retry_tail == NULL)
			l->retry_tail = e;
	} else {
		e->next = NULL;
		if (l->retry_tail != NULL)
			l->retry_tail->next = e;
		else
			l->retry_head = e;
		l->retry_tail = e;
	}
	if (l->retry_ev == NULL)
		l->retry_ev = evtimer_new(l->base, retry_cb, l);
	if (l->retry_ev != NULL && !evtimer_pending(l->retry_ev, NULL)) {
		struct timeval tv = {.tv_sec = 0, .tv_usec = (suseconds_t)l->retry_ms * 1000};
		(void)evtimer_add(l->retry_ev, &tv);
	}
}

static struct srv_retry *retry_pop(struct srv_loop *l)
{
	struct srv_retry *e = l->retry_head;
	if (e != NULL) {
		l->retry_head = e->next;
		if (l->retry_head == NULL)
			l->retry_tail = NULL;
		e->next = NULL;
	}
	return e;
}

/* Answer e 503 (its bound passed, or the loop stops); the caller frees e. */
static void retry_give_up(struct srv_loop *l, struct srv_retry *e)
{
	struct idp_error err = {0};
	(void)idp_error_set(&err, IDP_E_AGAIN,
	                    "store: busy: another process held the write lock for %d ms "
	                    "(%u runs)%s",
	                    SRV_STORE_BUSY_MS, e->runs, l->stopping ? "; stopping" : "");
	struct srv_conn *c = srv_conn_of(e->req); /* NULL: the client left */
	retry_outcome(e, &err);
	(void)srv_fault_answer(l->ctx.loop, e->req, FMT_API_ERR_UNAVAILABLE, &err);
	request_log(l, e->peer, e->path, c != NULL ? c->status : 0, e->runs);
}

/* Run e again; true when it was answered (then e is freed). */
static bool retry_again(struct srv_loop *l, struct srv_retry *e, int wait_ms)
{
	if (evhttp_request_get_connection(e->req) == NULL) {
		/* The client left: evhttp detached the request, sending frees it. */
		struct idp_error err = {0};
		(void)idp_error_set(&err, IDP_E_AGAIN,
		                    "store: busy: the client left while another process held "
		                    "the write lock (%u runs)",
		                    e->runs);
		retry_outcome(e, &err);
		evhttp_send_reply(e->req, 503, "Service Unavailable", NULL);
		request_log(l, e->peer, e->path, 0, e->runs);
		free(e);
		return true;
	}
	struct srv_conn *c = srv_conn_of(e->req);
	e->again = true;
	retry_run(l, e, wait_ms);
	if (e->deferred)
		return false;
	request_log(l, e->peer, e->path, c != NULL ? c->status : 0, e->runs);
	free(e);
	return true;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct srv_loop *l = arg;
	int64_t now = fio_mono_ms();
	/* Past their bound: answered 503, in order. */
	for (struct srv_retry **p = &l->retry_head; *p != NULL;) {
		struct srv_retry *e = *p;
		if (e->deadline > now) {
			p = &e->next;
			continue;
		}
		*p = e->next;
		if (l->retry_tail == e)
			l->retry_tail = NULL;
		retry_give_up(l, e);
		free(e);
	}
	if (l->retry_tail == NULL)
		for (struct srv_retry *e = l->retry_head; e != NULL; e = e->next)
			l->retry_tail = e;
	/* The oldest probes the lock without waiting; once it passes, the rest
	 * follow with the short wait of a first run. */
	int wait_ms = 0;
	struct srv_retry *e;
	while ((e = retry_pop(l)) != NULL) {
		if (!retry_again(l, e, wait_ms)) {
			l->retry_ms = wait_ms == 0 && l->retry_ms < RETRY_MAX_MS ? l->retry_ms * 2
			                                                        : RETRY_MIN_MS;
			if (l->retry_ms > RETRY_MAX_MS)
				l->retry_ms = RETRY_MAX_MS;
			retry_queue(l, e, true);
			return;
		}
		wait_ms = BUSY_SLICE_MS;
		l->retry_ms = RETRY_MIN_MS;
	}
}

void srv_conn_retry_end(struct srv_loop *l, bool release)
{
	struct srv_retry *e;
	while ((e = retry_pop(l)) != NULL) {
		if (!release)
			retry_give_up(l, e);
		else if (evhttp_request_get_connection(e->req) == NULL)
			evhttp_request_free(e->req); /* detached: ours to free */
		/* else evhttp frees it with its connection */
		free(e);
	}
	if (release && l->retry_ev != NULL) {
		event_free(l->retry_ev);
		l->retry_ev = NULL;
	}
}

/* Run route r's handler for req, the request first seen now: queued when
 * it meets the store's lock (above); logged once answered. */
static void conn_run(struct srv_loop *l, struct srv_conn *c, const struct srv_route *r,
                     struct evhttp_request *req, const char *peer, const char *path)
{
	struct srv_retry now = {
	    .req = req, .fn = r->fn, .deadline = fio_mono_ms() + SRV_STORE_BUSY_MS};
	/* While others wait for the lock, a new request does not sleep on it. */
	retry_run(l, &now, l->retry_head != NULL ? 0 : BUSY_SLICE_MS);
	if (!now.deferred) {
		request_log(l, peer, path, c != NULL ? c->status : 0, now.runs);
		return;
	}
	struct srv_retry *e = malloc(sizeof(*e));
	if (e == NULL) {
		(void)snprintf(now.peer, sizeof(now.peer), "%s", peer);
		(void)snprintf(now.path, sizeof(now.path), "%s", path);
		retry_give_up(l, &now);
		return;
	}
	*e = now;
	(void)snprintf(e->peer, sizeof(e->peer), "%s", peer);
	(void)snprintf(e->path, sizeof(e->path), "%s", path);
	if (l->retry_ms == 0)
		l->retry_ms = RETRY_MIN_MS;
	fio_log(FIO_LOG_INFO, "request.waiting", "loop=%u peer=%s path=%s lock=busy bound_ms=%d",
	        l->ctx.loop, e->peer, e->path, SRV_STORE_BUSY_MS);
	retry_queue(l, e, false);
}

void srv_conn_dispatch(struct evhttp_request *req, void *arg)
{
	struct srv_loop *l = arg;
	struct srv_conn *c = srv_conn_of(req);
	const char *uri = evhttp_request_get_uri(req);
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u != NULL ? evhttp_uri_get_path(u) : NULL;
	char pbuf[FIO_LOG_ESC_MAX], peer[64];
	/* Taken before the reply: the request may be gone after it. */
	(void)srv_http_peer(req, peer);
	if (c != NULL && c->reject_code != 0)
		(void)snprintf(pbuf, sizeof(pbuf), "-");
	else
		(void)fio_log_esc(uri != NULL ? uri : "", uri != NULL ? strnlen(uri, 4096) : 0,
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
	const struct srv_route *r = path != NULL ? srv_route_find(l->h->routes, l->h->n_routes, path,
		                                                     strlen(path), cmd) : NULL;
	if (c != NULL && c->reject_code != FMT_API_ERR_UNKNOWN) {
		if (c->reject_hdr != NULL)
			(void)evhttp_add_header(evhttp_request_get_output_headers(req),
			                        c->reject_hdr, c->reject_hdr_value);
		if (c->reject_code != FMT_API_ERR_STORAGE_FULL ||
		    !srv_fault_answer(l->ctx.loop, req, c->reject_code,
		                      c->reject_err.code != IDP_OK ? &c->reject_err : NULL))
			srv_http_error(req, c->reject_code, "%s", c->reject_msg);
	} else if (path == NULL) {
		srv_http_error(req, FMT_API_ERR_BAD_REQUEST, "malformed request target");
	} else if (r == NULL) {
		srv_http_error(req, FMT_API_ERR_NOT_FOUND, "no such path");
	} else if (cmd != r->method) {
		char allow[SRV_ROUTE_ALLOW_MAX];
		srv_route_allow(l->h->routes, l->h->n_routes, path, strlen(path), allow);
		(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
		srv_http_error(req, FMT_API_ERR_METHOD_NOT_ALLOWED, "use %s", allow);
	} else if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) >
	           srv_route_max_body(r, l->h->cfg)) {
		srv_http_error(req, FMT_API_ERR_TOO_LARGE, "body too large for this path");
	} else {
		conn_run(l, c, r, req, peer, pbuf); /* logs once answered */
		return;
	}
	request_log(l, peer, pbuf, c != NULL ? c->status : 0, 1);
}

void srv_conn_close_idle(struct srv_loop *l)
{
	for (struct srv_conn *c = l->conns; c != NULL; c = c->next) {
		if (!c->in_request && c->state == C_HEAD &&
		    evbuffer_get_length(bufferevent_get_input(c->tls)) == 0)
			conn_close_now(c);
	}
}
