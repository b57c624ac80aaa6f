/*
 * httpd.c - see httpd.h: the listeners (one SO_REUSEPORT socket per address
 * and loop), the TLS context, the event loops with their threads, and the
 * graceful stop. A connection's life is in conn.c, the replies in reply.c
 * (server/conn.h ties the three together).
 */
#include "server/httpd.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "server/conn.h"
#include "formats/io/log.h"
#include "server/routes.h"

#define LISTEN_BACKLOG 511

void srv_loop_check_done(struct srv_loop *l)
{
	if (l->stopping && l->n_conns == 0)
		(void)event_base_loopexit(l->base, NULL);
}

void srv_loop_accept(struct srv_loop *l, bool on)
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

/* ---------------------------------------------------------------- group commit */

/* A reply held until the commits counted when it was made are durable; or
 * (fn set) a callback waiting for them (srv_loop_when_durable). */
struct srv_held {
	struct srv_held *next;
	struct evhttp_request *req;
	int code;
	const char *reason;
	void (*fn)(void *arg, bool durable);
	void *arg;
	uint64_t seq;
};

/* Ask the syncer for a flush covering seq (call with sync_lock held). */
static void want_locked(struct srv_httpd *h, uint64_t seq)
{
	if (h->sync_wanted < seq)
		h->sync_wanted = seq;
	(void)pthread_cond_signal(&h->sync_cv);
}

/* Queue what on l until the commits counted now are durable; false when
 * they already are (or when, out of memory, this waited for them). */
static bool hold(struct srv_loop *l, const struct srv_held *what)
{
	struct srv_httpd *h = l->h;
	if (h->sync == NULL)
		return false;
	/* Whatever this answer says may rest on any commit counted so far
	 * (its own, or one another loop made and it read). */
	uint64_t seq = srv_store_sync_committed(h->sync);
	if (seq <= srv_store_sync_durable(h->sync))
		return false;
	struct srv_held *held = malloc(sizeof(*held));
	(void)pthread_mutex_lock(&h->sync_lock);
	want_locked(h, seq);
	if (held == NULL) {
		/* No memory to hold it: wait here for the flush instead. */
		while (!h->sync_stop && srv_store_sync_durable(h->sync) < seq)
			(void)pthread_cond_wait(&h->synced_cv, &h->sync_lock);
		(void)pthread_mutex_unlock(&h->sync_lock);
		return false;
	}
	(void)pthread_mutex_unlock(&h->sync_lock);
	*held = *what;
	held->next = NULL;
	held->seq = seq;
	if (l->held_tail != NULL)
		l->held_tail->next = held;
	else
		l->held = held;
	l->held_tail = held;
	return true;
}

bool srv_loop_hold_reply(struct srv_loop *l, struct evhttp_request *req, int code,
                         const char *reason)
{
	const struct srv_held what = {.req = req, .code = code, .reason = reason};
	return hold(l, &what);
}

bool srv_loop_when_durable(struct srv_loop *l, void (*fn)(void *arg, bool durable), void *arg)
{
	const struct srv_held what = {.fn = fn, .arg = arg};
	return hold(l, &what);
}

/* The syncer made more commits durable: send the replies they cover. A
 * reply's completion may dispatch the connection's next request, whose
 * reply may be held again: the list is re-read each time. */
static void durable_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct srv_loop *l = arg;
	uint64_t d = srv_store_sync_durable(l->h->sync);
	while (l->held != NULL && l->held->seq <= d) {
		struct srv_held *held = l->held;
		l->held = held->next;
		if (l->held == NULL)
			l->held_tail = NULL;
		/* A request whose client left meanwhile was detached by evhttp;
		 * sending frees it. */
		if (held->fn != NULL)
			held->fn(held->arg, true);
		else
			evhttp_send_reply(held->req, held->code, held->reason, NULL);
		free(held);
	}
}

static void *sync_run(void *arg)
{
	struct srv_httpd *h = arg;
	(void)prctl(PR_SET_NAME, "idprovd/sync", 0, 0, 0);
	(void)pthread_mutex_lock(&h->sync_lock);
	for (;;) {
		while (!h->sync_stop && h->sync_wanted <= srv_store_sync_durable(h->sync))
			(void)pthread_cond_wait(&h->sync_cv, &h->sync_lock);
		if (h->sync_wanted <= srv_store_sync_durable(h->sync) ||
		    (h->sync_stop && h->sync_failed))
			break; /* stopping, with nothing (more that can be) made durable */
		(void)pthread_mutex_unlock(&h->sync_lock);
		/* Commits made while the previous fsync ran are all covered by this
		 * one: under load each fsync covers many decisions. */
		uint64_t durable = 0;
		struct idp_error err = {0};
		bool ok = srv_store_sync_flush(h->sync, &durable, &err) == IDP_OK;
		if (ok) {
			for (size_t i = 0; i < h->n_loops; i++)
				event_active(h->loops[i].durable_ev, EV_READ, 0);
		} else {
			char ebuf[FIO_LOG_ESC_MAX];
			fio_log(FIO_LOG_ERROR, "store.sync", "error=%s", fio_log_err(&err, ebuf));
			struct timespec pause = {.tv_sec = 0, .tv_nsec = 100000000L};
			(void)nanosleep(&pause, NULL); /* replies stay held: retry */
		}
		(void)pthread_mutex_lock(&h->sync_lock);
		h->sync_failed = !ok;
		(void)pthread_cond_broadcast(&h->synced_cv);
	}
	(void)pthread_cond_broadcast(&h->synced_cv);
	(void)pthread_mutex_unlock(&h->sync_lock);
	return NULL;
}

static void sync_stop(struct srv_httpd *h)
{
	if (!h->syncer_on)
		return;
	(void)pthread_mutex_lock(&h->sync_lock);
	h->sync_stop = true;
	(void)pthread_cond_signal(&h->sync_cv);
	(void)pthread_mutex_unlock(&h->sync_lock);
	(void)pthread_join(h->syncer, NULL);
	h->syncer_on = false;
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct srv_loop *l = arg;
	fio_log(FIO_LOG_WARN, "http.stop_forced", "loop=%u open=%u", l->ctx.loop, l->n_conns);
	(void)event_base_loopbreak(l->base);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct srv_loop *l = arg;
	l->stopping = true;
	for (size_t i = 0; i < l->n_bound; i++)
		evhttp_del_accept_socket(l->http, l->bound[i]);
	l->n_bound = 0;
	l->accepting = false;
	srv_conn_retry_end(l, false); /* waiting for the store's lock: 503 now */
	srv_conn_close_idle(l);
	const struct srv_config *cfg = l->h->cfg;
	struct timeval tv = {
	        .tv_sec = (time_t)(cfg->header_timeout + cfg->body_timeout + cfg->request_timeout),
	        .tv_usec = 0};
	(void)evtimer_add(l->grace_ev, &tv);
	srv_loop_check_done(l);
}

static void *loop_run(void *arg)
{
	struct srv_loop *l = arg;
	/* Named for top -H and perf report --sort comm (15 bytes at most). */
	char name[16];
	(void)snprintf(name, sizeof(name), "idprovd/%u", l->ctx.loop % 1000u);
	(void)prctl(PR_SET_NAME, name, 0, 0, 0);
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
static enum idp_err loop_bind(struct srv_loop *l, struct sockaddr_storage *addrs, socklen_t *lens,
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

static enum idp_err loop_init(struct srv_httpd *h, struct srv_loop *l, unsigned idx,
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
	l->durable_ev = l->base != NULL ? event_new(l->base, -1, 0, durable_cb, l) : NULL;
	if (l->http == NULL || l->stop_ev == NULL || l->grace_ev == NULL || l->durable_ev == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "httpd: out of memory");
	evhttp_set_bevcb(l->http, srv_conn_new, l);
	evhttp_set_gencb(l->http, srv_conn_dispatch, l);
	evhttp_set_max_headers_size(l->http, (ev_ssize_t)cfg->max_headers);
	evhttp_set_max_body_size(l->http, (ev_ssize_t)h->max_body_any);
	evhttp_set_timeout(l->http, (int)cfg->request_timeout);
	/* Every method, unknown ones included, reaches srv_conn_dispatch, which answers
	 * 404 or 405 in JSON; evhttp would answer a method it does not allow
	 * with its own HTML 501. */
	evhttp_set_allowed_methods(l->http, UINT16_MAX);
	enum idp_err rc = srv_store_open(h->state->db_path, &l->ctx.store, err);
	if (rc == IDP_OK)
		rc = srv_store_sync_join(l->ctx.store, h->sync, err);
	if (rc != IDP_OK)
		return rc;
	return loop_bind(l, addrs, lens, err);
}

/* ---------------------------------------------------------------- session tickets */

/* Session tickets (RFC 8446 §4.6.1, RFC 5077) let a client that reconnects,
 * such as a renewing agent, skip the certificate and its signature. The
 * ticket keys live in memory only, are made at start and rotate every
 * tls-session-lifetime: a ticket is sealed with the current key and still
 * opened with the previous one (and then replaced), so a ticket resumes for
 * its whole lifetime and no key outlives two periods. A restart forgets
 * every key, and every client does a full handshake once. */
#define TICKET_NAME_LEN 16

struct ticket_key {
	uint8_t name[TICKET_NAME_LEN];
	uint8_t aes[32];  /* AES-256-CBC */
	uint8_t hmac[32]; /* HMAC-SHA256 */
	bool set;
};

struct srv_tickets {
	pthread_mutex_t lock;
	int64_t period;  /* seconds */
	int64_t rotated; /* CLOCK_MONOTONIC seconds of the last rotation */
	struct ticket_key cur, prev;
};

static int64_t mono_s(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* Make t->cur new, keeping the old one as t->prev (with t->lock held, or
 * before any thread runs). */
static bool ticket_rotate(struct srv_tickets *t, int64_t now)
{
	struct ticket_key k = {.set = true};
	if (RAND_bytes(k.name, sizeof(k.name)) != 1 || RAND_priv_bytes(k.aes, sizeof(k.aes)) != 1 ||
	    RAND_priv_bytes(k.hmac, sizeof(k.hmac)) != 1) {
		OPENSSL_cleanse(&k, sizeof(k));
		return false;
	}
	OPENSSL_cleanse(&t->prev, sizeof(t->prev));
	t->prev = t->cur;
	t->cur = k;
	OPENSSL_cleanse(&k, sizeof(k));
	t->rotated = now;
	return true;
}

/* OpenSSL's ticket key callback: enc = 1 seals a new ticket with the
 * current key; enc = 0 opens one by its key name: 1 (current key), 2
 * (previous key: accepted, and a new ticket is sent), 0 (unknown or
 * retired: a full handshake), -1 on error. Any loop's thread. */
static int ticket_cb(SSL *ssl, unsigned char name[TICKET_NAME_LEN],
                     unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
	struct srv_tickets *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	struct ticket_key k = {.set = false};
	int rc = 0;
	int64_t now = mono_s();
	(void)pthread_mutex_lock(&t->lock);
	if (now - t->rotated >= t->period && !ticket_rotate(t, now))
		rc = -1;
	else if (enc || memcmp(name, t->cur.name, TICKET_NAME_LEN) == 0)
		rc = 1;
	else if (t->prev.set && memcmp(name, t->prev.name, TICKET_NAME_LEN) == 0)
		rc = 2;
	if (rc > 0)
		k = rc == 2 ? t->prev : t->cur;
	/* TLS 1.3 clients use a ticket once (RFC 8446 §C.4; OpenSSL's do): a
	 * resumed connection gets a new one, or the next would be a full
	 * handshake. */
	if (rc == 1 && !enc && SSL_version(ssl) >= TLS1_3_VERSION)
		rc = 2;
	(void)pthread_mutex_unlock(&t->lock);
	if (rc <= 0)
		return rc;
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac,
	                                                         sizeof(k.hmac)),
	                       OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
	                       OSSL_PARAM_construct_end()};
	if (enc) {
		memcpy(name, k.name, TICKET_NAME_LEN);
		if (RAND_bytes(iv, 16) != 1 ||
		    EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
			rc = -1;
	} else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
		rc = -1;
	}
	if (rc > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
		rc = -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

/* Tickets on ctx as cfg says (tls-session-lifetime; 0: none, and no
 * resumption at all). A ticket carries the whole session. TLS 1.2 clients
 * that send no ticket extension (libcurl sets SSL_OP_NO_TICKET) resume by
 * session ID from OpenSSL's server cache (its default 20480 sessions), which
 * lives as long as a ticket. */
static enum idp_err tickets_init(struct srv_httpd *h, SSL_CTX *ctx, struct idp_error *err)
{
	int64_t period = h->cfg->tls_session_lifetime;
	if (period <= 0) {
		(void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		(void)SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		if (SSL_CTX_set_num_tickets(ctx, 0) != 1)
			return idp_error_ssl(err, IDP_E_CRYPTO, "tls: tickets off");
		return IDP_OK;
	}
	struct srv_tickets *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "tls: out of memory");
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		return idp_error_set(err, IDP_E_NOMEM, "tls: out of memory");
	}
	h->tickets = t;
	t->period = period;
	/* One ticket per connection: a renewing agent resumes one session. */
	if (!ticket_rotate(t, mono_s()) || SSL_CTX_set_app_data(ctx, t) != 1 ||
	    SSL_CTX_set_num_tickets(ctx, 1) != 1 ||
	    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "tls: session tickets");
	(void)SSL_CTX_set_timeout(ctx, (long)period);
	return IDP_OK;
}

static void tickets_free(struct srv_tickets *t)
{
	if (t == NULL)
		return;
	(void)pthread_mutex_destroy(&t->lock);
	OPENSSL_cleanse(t, sizeof(*t));
	free(t);
}

enum idp_err srv_httpd_ca_check(const char *key, const char *path, struct idp_error *err)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return idp_error_set(err, IDP_E_IO, "tls: %s %s: %s", key, path, strerror(errno));
	(void)fclose(f);
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(path);
	X509_STORE *store = X509_STORE_new();
	bool ok = names != NULL && store != NULL && X509_STORE_load_file(store, path) == 1;
	sk_X509_NAME_pop_free(names, X509_NAME_free);
	X509_STORE_free(store);
	if (!ok)
		return idp_error_ssl(err, IDP_E_CRYPTO, "tls: %s %s", key, path);
	return IDP_OK;
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
	enum idp_err rc = tickets_init(h, ctx, err);
	if (rc != IDP_OK)
		return rc;
	const char *ca = h->cfg->station_ca;
	const char *aca = h->cfg->admin_ca;
	/* The checks of idprovd --check-config, so both say the same. */
	if (ca[0] != '\0' && (rc = srv_httpd_ca_check("station-ca", ca, err)) != IDP_OK)
		return rc;
	if (aca[0] != '\0' && (rc = srv_httpd_ca_check("admin-ca", aca, err)) != IDP_OK)
		return rc;
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
		size_t m = srv_route_max_body(&routes[i], cfg);
		if (m > h->max_body_any)
			h->max_body_any = m;
	}
	h->n_loops = cfg->threads;
	h->loops = calloc(h->n_loops, sizeof(*h->loops));
	if (h->loops == NULL) {
		free(h);
		return idp_error_set(err, IDP_E_NOMEM, "httpd: out of memory");
	}
	if (pthread_mutex_init(&h->sync_lock, NULL) != 0 ||
	    pthread_cond_init(&h->sync_cv, NULL) != 0 ||
	    pthread_cond_init(&h->synced_cv, NULL) != 0) {
		free(h->loops);
		free(h);
		return idp_error_set(err, IDP_E_NOMEM, "httpd: out of memory");
	}
	enum idp_err rc = tls_init(h, err);
	if (rc == IDP_OK)
		rc = srv_store_sync_new(state->db_path, &h->sync, err);
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
	int se = pthread_create(&h->syncer, NULL, sync_run, h);
	if (se != 0)
		return idp_error_set(err, IDP_E_IO, "httpd: sync thread: %s", strerror(se));
	h->syncer_on = true;
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

const struct srv_store_sync *srv_httpd_store_sync(const struct srv_httpd *h)
{
	return h->sync;
}

double srv_httpd_cpu_seconds(const struct srv_httpd *h)
{
	double sum = 0;
	for (size_t i = 0; i < h->n_loops; i++) {
		clockid_t id;
		struct timespec ts;
		if (h->loops[i].started && pthread_getcpuclockid(h->loops[i].thread, &id) == 0 &&
		    clock_gettime(id, &ts) == 0)
			sum += (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	}
	clockid_t id;
	struct timespec ts;
	if (h->syncer_on && pthread_getcpuclockid(h->syncer, &id) == 0 &&
	    clock_gettime(id, &ts) == 0)
		sum += (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	return sum;
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
	sync_stop(h); /* after the loops: their last replies may wait for it */
}

void srv_httpd_free(struct srv_httpd *h)
{
	if (h == NULL)
		return;
	sync_stop(h);
	for (size_t i = 0; h->loops != NULL && i < h->n_loops; i++) {
		struct srv_loop *l = &h->loops[i];
		/* Only a forced stop leaves replies held; evhttp_free below frees
		 * their requests with their connections. */
		while (l->held != NULL) {
			struct srv_held *held = l->held;
			l->held = held->next;
			if (held->fn != NULL)
				held->fn(held->arg, false);
			free(held);
		}
		if (l->durable_ev != NULL)
			event_free(l->durable_ev);
		srv_conn_retry_end(l, true); /* requests waiting for the store's lock */
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
	srv_store_sync_free(h->sync);
	(void)pthread_mutex_destroy(&h->sync_lock);
	(void)pthread_cond_destroy(&h->sync_cv);
	(void)pthread_cond_destroy(&h->synced_cv);
	SSL_CTX_free(h->ssl_ctx);
	tickets_free(h->tickets);
	X509_STORE_free(h->admin_store);
	X509_STORE_free(h->station_store);
	free(h);
}
