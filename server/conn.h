/*
 * conn.h - inside idprovd's HTTPS front (server/httpd.h), shared by its
 * three files and nothing else: httpd.c (listeners, TLS context, event
 * loops and their threads), conn.c (per connection: the filter in front of
 * evhttp with its deadlines, head checks and output watermark, and the
 * dispatch of each request to its route) and reply.c (the srv_http_*
 * helpers handlers answer with).
 *
 * Thread-safety: a loop and its connections belong to the loop's thread;
 * struct srv_httpd is read-only once the loops run.
 */
#ifndef IDP_SERVER_CONN_H
#define IDP_SERVER_CONN_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "server/httpd.h"

struct srv_conn; /* one client connection (conn.c) */

/* One event loop with its listeners, its store connection (in ctx) and its
 * connections. */
struct srv_loop {
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
	unsigned n_conns; /* kept by conn.c */
	unsigned max_conns;
	struct srv_conn *conns; /* kept by conn.c */
	struct event *durable_ev;      /* the syncer made more commits durable */
	struct srv_held *held, *held_tail; /* replies waiting for their commits (httpd.c) */
	/* Requests waiting for the store's write lock (conn.c, srv_http_defer). */
	struct srv_retry *retry_head, *retry_tail;
	struct srv_retry *cur; /* the request a route handler runs now; NULL: none */
	struct event *retry_ev; /* made at the first deferral */
	unsigned retry_ms;      /* the next wait */
};

struct srv_httpd {
	const struct srv_config *cfg;
	const struct srv_state *state;
	const struct srv_route *routes;
	size_t n_routes;
	SSL_CTX *ssl_ctx;
	struct srv_tickets *tickets; /* session ticket keys (httpd.c); NULL: no tickets */
	X509_STORE *admin_store;   /* admin-ca alone: which client certificates are an admin's */
	X509_STORE *station_store; /* station-ca alone, when admin-ca shares the handshake */
	struct srv_loop *loops;
	size_t n_loops;
	/* Group commit: the loops' store connections commit into sync, and the
	 * syncer thread's one fsync covers them all before replies go out. */
	struct srv_store_sync *sync;
	pthread_t syncer;
	bool syncer_on;
	bool sync_stop;          /* under sync_lock */
	uint64_t sync_wanted;    /* under sync_lock: the count of commits replies wait for */
	bool sync_failed;        /* under sync_lock: the last flush failed */
	pthread_mutex_t sync_lock;
	pthread_cond_t sync_cv;   /* wakes the syncer */
	pthread_cond_t synced_cv; /* after each flush (a loop waiting without memory) */
	size_t max_body_any; /* the largest body any route takes */
	char bound_text[SRV_CONFIG_LISTEN_MAX][SRV_CONFIG_ADDR_TEXT];
	size_t n_listen;
	bool started;
};

/* ---------------------------------------------------------------- httpd.c */

/* Start or stop accepting on every listener of l (never starts once l is
 * stopping). */
void srv_loop_accept(struct srv_loop *l, bool on);

/* End l's event loop when it is stopping and its last connection closed. */
void srv_loop_check_done(struct srv_loop *l);

/* ---------------------------------------------------------------- conn.c */

/* evhttp's bufferevent factory (evhttp_set_bevcb; arg: the struct
 * srv_loop): a TLS bufferevent under the connection's filter. NULL when out
 * of memory. */
struct bufferevent *srv_conn_new(struct event_base *base, void *arg);

/* evhttp's generic callback (evhttp_set_gencb; arg: the struct srv_loop):
 * answer a refused request's recorded error, or 404/405/413, or run the
 * route's handler; log the request. */
void srv_conn_dispatch(struct evhttp_request *req, void *arg);

/* Close every connection of l that is idle (no request under way, nothing
 * unread): the start of a graceful stop. */
void srv_conn_close_idle(struct srv_loop *l);

/* Answer every request of l waiting for the store's lock with 503 (a
 * stopping loop), and, with release, free what the waits used (the loop's
 * end; requests evhttp still owns are left to it). */
void srv_conn_retry_end(struct srv_loop *l, bool release);

/* The connection of req (NULL when it has none). */
struct srv_conn *srv_conn_of(struct evhttp_request *req);

/* The server c belongs to. */
const struct srv_httpd *srv_conn_httpd(const struct srv_conn *c);

/* The loop c belongs to. */
struct srv_loop *srv_conn_loop(const struct srv_conn *c);

/* Record the status of the reply c sends (for the request log). */
void srv_conn_replied(struct srv_conn *c, int code);

/* The manifest body of c's current request, spooled to a temporary file as
 * it arrived (server/spool.h; routes whose body limit is max-manifest): the
 * request evhttp dispatches then has an empty body. NULL when there is none.
 * Borrowed: freed when the request completes. */
struct srv_spool *srv_conn_upload(struct srv_conn *c);

/* A handler streaming a long answer (evhttp_send_reply_chunk): call fn(arg)
 * once c's unsent output is under the low watermark (at once when it is
 * already), so the answer is produced as fast as the client reads it and
 * never piles up. Each wake re-arms the connection deadline; a client that
 * stops reading is cut at it (evhttp's close callback then tells the
 * handler). One waiter at a time; srv_conn_stream_end() cancels it. */
void srv_conn_when_drained(struct srv_conn *c, void (*fn)(void *arg), void *arg);
void srv_conn_stream_end(struct srv_conn *c);

/* ---------------------------------------------------------------- reply.c */

/* vsnprintf into buf[size], always NUL-terminated (cut when too long). */
void srv_http_vformat(char *buf, size_t size, const char *fmt, va_list ap) IDP_PRINTF(3, 0);

/* srv_http_station on the TLS session ssl (NULL: none) of a connection to
 * h (NULL: no station-ca check of its own). */
IDP_MUST_CHECK enum idp_err srv_http_ssl_station(const struct srv_httpd *h, SSL *ssl,
                                                 char id[static SRV_STORE_ID_MAX + 1],
                                                 struct idp_error *err);

/* The CN of ssl's client certificate when it chains to h's admin CA (not
 * merely to the handshake's store, which holds the station CA too); ""
 * otherwise. The handshake proved the key. */
void srv_http_ssl_admin_cn(const struct srv_httpd *h, SSL *ssl,
                           char cn[static SRV_HTTP_ADMIN_CN_MAX + 1]);

/* Called by srv_http_reply for each answer: true when the answer must wait
 * for a commit that is not durable yet (then req is answered with code and
 * reason, a static string, by the loop once the syncer's fsync covers the
 * commits counted now); false: send it now. */
bool srv_loop_hold_reply(struct srv_loop *l, struct evhttp_request *req, int code,
                         const char *reason);

/* The same for a streamed answer (srv_http_reply_start), whose chunks are
 * not replies: false when the commits counted now are durable (send the
 * chunk now); true when fn(arg, true) will run on l's thread once they
 * are. A server stopped before that calls fn(arg, false) (send nothing;
 * the connection's close callback follows). */
bool srv_loop_when_durable(struct srv_loop *l, void (*fn)(void *arg, bool durable), void *arg);

#endif /* IDP_SERVER_CONN_H */
