/*
 * bench_provision.c - provisioning requests per second with a fresh TLS
 * connection per request from concurrent libcurl clients (each request
 * signs its proof with its own connection's exporter), against the ceiling
 * measured in the same run: a plain OpenSSL server on the same certificate
 * that only does the handshake and a tiny answer, driven by the same
 * clients. Both servers run one thread per core in this process; every
 * request of ours is a first-time approval of a different preloaded device
 * (proof verified, decision committed with synchronous=FULL, token signed).
 * A second ceiling, the "decision ceiling", is the same kind of blocking
 * server doing, per request, only the decision's unavoidable work with no
 * server around it: read the request, fmt_api_request_accept_key (parse,
 * one P-256 verify of the proof over the connection's RFC 9266 exporter),
 * for a renewal fmt_token_verify of the device token, one token signed with
 * idprovd's token key (fmt_token_sign), and one durable SQLite commit to a
 * WAL file (synchronous=NORMAL, then a group fsync of the WAL as idprovd's
 * syncer does: see struct ceiling_db). Provisioning and renewals are also
 * compared with it. Token renewals likewise: every renewal spends a different preloaded
 * device token of an approved device (proof verified, token checked, used
 * once, a new one signed and committed), on fresh full handshakes and on
 * resumed TLS sessions (each client thread keeps its session in a curl
 * share handle, as a renewing agent would). Alternated slices, medians
 * compared (goals: provisioning and renewal >= 0.75 of the plain server,
 * resumed renewals >= 1.5 of renewals on full handshakes).
 *
 * The clients keep one CA store for the whole run (CURLOPT_SSL_CTX_FUNCTION
 * hands every connection the same X509_STORE): libcurl would otherwise
 * re-read the CA file for each connection, a cost on both sides of the
 * ratio that hid the server's own. Server CPU time is also measured per
 * request (the CPU clocks of the server threads over each slice), which
 * does not depend on the load generator sharing the cores. Exits non-zero
 * only when an operation fails (or a resumed slice did not resume).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/prctl.h>

#include "formats/api.h"
#include "formats/pop.h"
#include "formats/token.h"
#include "formats/io/tls.h"
#include "server/handlers.h"
#include "server/routes.h"
#include "server/httpd.h"
#include "formats/io/log.h"
#include "server/provision.h"
#include "server/state.h"
#include "server/store.h"

#define CLIENTS       8
#define SLICE_SECONDS 1.5
#define ROUNDS        3
#define DEVICES       12000u
#define RENEWALS      16000u

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char ca_path[128];
static X509_STORE *ca_store; /* loaded once; every client connection shares it */
static struct fmt_key *keys[DEVICES];
static struct fmt_key *renew_keys[RENEWALS];
static char *renew_tokens[RENEWALS];
static atomic_uint next_device, next_renewal;
static atomic_uint next_ceiling; /* the decision ceiling reuses the keys and tokens, in turn */
static atomic_int failures;
static atomic_long resumed; /* connections of the resumed slices that did resume */

/* ---------------------------------------------------------------- plain server */

/* The decision ceiling's store: one connection to a real WAL database
 * (synchronous=NORMAL, as idprovd's loops), used under a mutex (so no busy
 * waits and no page cache invalidated by another connection), one row per
 * decision; then group commit as idprovd's: the WAL is fsynced through a
 * second connection's descriptor, one fsync at a time, and a commit that an
 * fsync started after it already covered waits for nothing more (every
 * answer leaves after the fsync covering its commit). */
struct ceiling_db {
	sqlite3 *db, *syncdb;
	sqlite3_stmt *begin, *insert, *commit;
	pthread_mutex_t lock, sync_lock;
	uint64_t committed, durable, flushes; /* committed under lock, the rest under sync_lock */
};

struct plain {
	int fd;
	SSL_CTX *ctx;
	atomic_bool stop;
	pthread_t threads[16];
	int n;
	/* The decision ceiling (NULL: the bare handshake ceiling). */
	struct ceiling_db *cdb;
	const struct srv_state *state;
	const struct srv_provision_cfg *pcfg;
};

static int ceiling_db_open(struct ceiling_db *c, const char *path)
{
	if (pthread_mutex_init(&c->lock, NULL) != 0 || pthread_mutex_init(&c->sync_lock, NULL) != 0)
		return -1;
	const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK ||
	    sqlite3_exec(c->db,
	                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	                 "CREATE TABLE decisions (jti TEXT PRIMARY KEY, device_id TEXT NOT NULL,"
	                 " at INTEGER NOT NULL)",
	                 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(c->db, "BEGIN IMMEDIATE", -1, SQLITE_PREPARE_PERSISTENT, &c->begin,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(c->db, "INSERT INTO decisions VALUES (?1, ?2, ?3)", -1,
	                       SQLITE_PREPARE_PERSISTENT, &c->insert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(c->db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &c->commit,
	                       NULL) != SQLITE_OK ||
	    sqlite3_open_v2(path, &c->syncdb, flags, NULL) != SQLITE_OK ||
	    sqlite3_exec(c->syncdb, "SELECT count(*) FROM decisions", NULL, NULL, NULL) !=
	            SQLITE_OK)
		return -1;
	return 0;
}

static void ceiling_db_close(struct ceiling_db *c)
{
	(void)sqlite3_finalize(c->begin);
	(void)sqlite3_finalize(c->insert);
	(void)sqlite3_finalize(c->commit);
	(void)sqlite3_close(c->db);
	(void)sqlite3_close(c->syncdb);
}

static int step_done(sqlite3_stmt *s)
{
	int r = sqlite3_step(s);
	(void)sqlite3_reset(s);
	return r == SQLITE_DONE ? 0 : -1;
}

/* One decision's row, committed and on disk when this returns 0. */
static int ceiling_commit(struct ceiling_db *c, const char *jti, const char *device_id,
                          int64_t now)
{
	(void)pthread_mutex_lock(&c->lock);
	int rc = step_done(c->begin);
	if (rc == 0) {
		(void)sqlite3_bind_text(c->insert, 1, jti, -1, SQLITE_STATIC);
		(void)sqlite3_bind_text(c->insert, 2, device_id, -1, SQLITE_STATIC);
		(void)sqlite3_bind_int64(c->insert, 3, now);
		rc = step_done(c->insert);
		(void)sqlite3_clear_bindings(c->insert);
		if (rc == 0)
			rc = step_done(c->commit);
		if (rc != 0)
			(void)sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	}
	uint64_t seq = rc == 0 ? ++c->committed : 0;
	(void)pthread_mutex_unlock(&c->lock);
	if (rc != 0)
		return -1;
	(void)pthread_mutex_lock(&c->sync_lock);
	if (c->durable < seq) {
		(void)pthread_mutex_lock(&c->lock);
		uint64_t target = c->committed; /* every counted commit is in the WAL file */
		(void)pthread_mutex_unlock(&c->lock);
		sqlite3_file *f = NULL;
		if (sqlite3_file_control(c->syncdb, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) !=
		            SQLITE_OK ||
		    f == NULL || f->pMethods == NULL || f->pMethods->xSync(f, SQLITE_SYNC_NORMAL) !=
		                                                SQLITE_OK)
			rc = -1;
		else {
			c->durable = target;
			c->flushes++;
		}
	}
	(void)pthread_mutex_unlock(&c->sync_lock);
	return rc;
}

/* The value of header name (lower case, with its colon) in the head
 * head[0..end), or NULL. */
static const char *header(const char *head, const char *end, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = strstr(head, "\r\n"); l != NULL && l < end;
	     l = strstr(l + 2, "\r\n"))
		if (strncasecmp(l + 2, name, n) == 0)
			return l + 2 + n;
	return NULL;
}

/* Read the request head and, for the decision ceiling, its body (up to
 * Content-Length) into buf; *body at its start. */
static int read_request(SSL *ssl, char *buf, size_t cap, bool want_body, char **body,
                        size_t *body_len)
{
	size_t got = 0;
	char *end = NULL;
	bool continued = false;
	*body = NULL;
	*body_len = 0;
	while (got < cap - 1) {
		int r = SSL_read(ssl, buf + got, (int)(cap - 1 - got));
		if (r <= 0)
			return -1;
		got += (size_t)r;
		buf[got] = '\0';
		if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL && !want_body)
			return 0;
		if (end != NULL && !continued) {
			/* libcurl asks before sending a body over 1 KiB. */
			const char *ex = header(buf, end, "expect:");
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			if (ex != NULL && strncasecmp(ex + strspn(ex, " "), "100-continue", 12) == 0 &&
			    SSL_write(ssl, cont, (int)sizeof(cont) - 1) != (int)sizeof(cont) - 1)
				return -1;
			continued = true;
		}
		if (end != NULL) {
			const char *cl = header(buf, end, "content-length:");
			size_t want = cl != NULL ? strtoul(cl, NULL, 10) : 0;
			size_t have = got - (size_t)(end + 4 - buf);
			if (have >= want) {
				*body = end + 4;
				*body_len = want;
				return 0;
			}
		}
	}
	return -1;
}

/* The decision's unavoidable work on one request (see the top of the
 * file); the token goes in *answer. */
static int decide_ceiling(const struct plain *p, SSL *ssl, const char *head, const char *body,
                          size_t len, char *answer, size_t cap)
{
	bool renew = strncmp(head, "POST /renew ", 12) == 0;
	enum fmt_api_purpose purpose = renew ? FMT_API_RENEW : FMT_API_PROVISION;
	uint8_t exporter[FMT_API_EXPORTER_LEN];
	static _Thread_local struct fmt_api_request req;
	struct fmt_key *key = NULL;
	int64_t now = (int64_t)time(NULL);
	struct fmt_token_claims claims;
	memset(&claims, 0, sizeof(claims));
	char *tok = NULL;
	size_t tok_len = 0;
	char kid[SRV_STATE_KID_MAX];
	const struct fmt_key *signer = NULL;
	int rc = -1;
	if (fio_tls_exporter(ssl, exporter, NULL) != IDP_OK ||
	    fmt_api_request_accept_key(purpose, (const uint8_t *)body, len, exporter, now,
	                               FMT_API_POP_SKEW_DEFAULT, &req, &key, NULL) != IDP_OK ||
	    fmt_token_jkt(key, claims.jkt, NULL) != IDP_OK)
		goto out;
	if (renew) {
		struct fmt_token_key tkeys[SRV_STATE_TOKEN_KEYS_MAX];
		size_t nkeys = srv_state_token_keys(p->state, now, tkeys);
		const struct fmt_token_policy policy = {.iss = p->pcfg->issuer,
		                                        .aud = p->pcfg->audience,
		                                        .sub = req.device_id,
		                                        .jkt = claims.jkt,
		                                        .kinds = FMT_TOKEN_DEVICE,
		                                        .now = now};
		struct fmt_token_claims old;
		if (fmt_token_verify((const uint8_t *)req.token, strlen(req.token), tkeys, nkeys,
		                     &policy, &old, NULL, NULL) != IDP_OK)
			goto out;
	}
	srv_state_token_signer(p->state, &signer, kid);
	(void)snprintf(claims.iss, sizeof(claims.iss), "%s", p->pcfg->issuer);
	(void)snprintf(claims.aud, sizeof(claims.aud), "%s", p->pcfg->audience);
	(void)snprintf(claims.sub, sizeof(claims.sub), "%s", req.device_id);
	claims.kind = renew ? FMT_TOKEN_DEVICE : FMT_TOKEN_PROVISION;
	if (fmt_token_sign(signer, kid, &claims, now,
	                   renew ? p->pcfg->device_lifetime : p->pcfg->provisioning_lifetime, NULL,
	                   &tok, &tok_len, NULL) != IDP_OK ||
	    ceiling_commit(p->cdb, claims.jti, req.device_id, now) != 0)
		goto out;
	int n = snprintf(answer, cap,
	                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n{\"token\":\"%s\"}",
	                 tok_len + 12, tok);
	rc = n > 0 && (size_t)n < cap ? n : -1;
out:
	fmt_token_free(tok);
	fmt_key_free(key);
	fmt_api_request_wipe(&req);
	return rc;
}

static void *plain_run(void *arg)
{
	struct plain *p = arg;
	(void)prctl(PR_SET_NAME, p->cdb != NULL ? "ceiling-tls" : "plain-tls", 0, 0, 0);
	static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	                             "Connection: close\r\n\r\nok";
	static const char refused[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
	                              "Connection: close\r\n\r\n";
	while (!atomic_load(&p->stop)) {
		int c = accept(p->fd, NULL, NULL);
		if (c < 0)
			continue;
		SSL *ssl = SSL_new(p->ctx);
		char buf[FMT_API_BODY_MAX + 1024], out[FMT_TOKEN_MAX + 256];
		char *body = NULL;
		size_t len = 0;
		if (ssl != NULL && SSL_set_fd(ssl, c) == 1 && SSL_accept(ssl) == 1) {
			int r = read_request(ssl, buf, sizeof(buf), p->cdb != NULL, &body, &len);
			if (p->cdb == NULL)
				(void)SSL_write(ssl, answer, (int)sizeof(answer) - 1);
			else if (r == 0 && (r = decide_ceiling(p, ssl, buf, body, len, out,
			                                       sizeof(out))) > 0)
				(void)SSL_write(ssl, out, r);
			else
				(void)SSL_write(ssl, refused, (int)sizeof(refused) - 1);
			(void)SSL_shutdown(ssl);
		}
		SSL_free(ssl);
		(void)close(c);
		ERR_clear_error();
	}
	return NULL;
}

static int plain_start(struct plain *p, const struct srv_state *state, int threads, int *port)
{
	p->ctx = SSL_CTX_new(TLS_server_method());
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int one = 1;
	p->fd = socket(AF_INET, SOCK_STREAM, 0);
	/* One TLS 1.3 ticket per connection, as idprovd sends (OpenSSL's
	 * default is two): the same handshake work on both sides. */
	if (p->ctx == NULL || SSL_CTX_set_min_proto_version(p->ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_num_tickets(p->ctx, 1) != 1 ||
	    SSL_CTX_use_certificate(p->ctx, state->server_cert) != 1 ||
	    SSL_CTX_use_PrivateKey(p->ctx, fmt_key_evp(state->server_key)) != 1 || p->fd < 0 ||
	    setsockopt(p->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(p->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(p->fd, 511) != 0 ||
	    getsockname(p->fd, (struct sockaddr *)&a, &al) != 0)
		return -1;
	*port = ntohs(a.sin_port);
	p->n = threads;
	for (int i = 0; i < threads; i++)
		if (pthread_create(&p->threads[i], NULL, plain_run, p) != 0)
			return -1;
	return 0;
}

/* CPU seconds p's threads have used (as srv_httpd_cpu_seconds). */
static double plain_cpu(const struct plain *p)
{
	double sum = 0;
	for (int i = 0; i < p->n; i++) {
		clockid_t id;
		struct timespec ts;
		if (pthread_getcpuclockid(p->threads[i], &id) == 0 && clock_gettime(id, &ts) == 0)
			sum += (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	}
	return sum;
}

static void plain_stop(struct plain *p)
{
	if (p->n == 0)
		return;
	atomic_store(&p->stop, true);
	(void)shutdown(p->fd, SHUT_RDWR);
	for (int i = 0; i < p->n; i++)
		(void)pthread_join(p->threads[i], NULL);
	(void)close(p->fd);
	SSL_CTX_free(p->ctx);
}

/* ---------------------------------------------------------------- clients */

struct call {
	CURL *curl;
	struct fmt_api_request req;
	const struct fmt_key *key;
	char body[FMT_API_BODY_MAX + 64];
	size_t len, off;
	bool built;
	bool resume; /* count whether the connection resumed a session */
};

static int build(struct call *c, const uint8_t exporter[static FMT_API_EXPORTER_LEN])
{
	size_t len = 0;
	if (fmt_api_pop_sign(&c->req, c->key, exporter, (int64_t)time(NULL), NULL, NULL) !=
	            IDP_OK ||
	    fmt_api_request_encode(&c->req, c->body, sizeof(c->body), &len, NULL) != IDP_OK)
		return -1;
	c->len = len;
	return 0;
}

static size_t read_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct call *c = arg;
	if (!c->built) {
		const struct curl_tlssessioninfo *ti = NULL;
		uint8_t exporter[FMT_API_EXPORTER_LEN];
		size_t want = c->len;
		if (curl_easy_getinfo(c->curl, CURLINFO_TLS_SSL_PTR, &ti) != CURLE_OK ||
		    ti == NULL || fio_tls_exporter(ti->internals, exporter, NULL) != IDP_OK ||
		    build(c, exporter) != 0 || c->len != want)
			return CURL_READFUNC_ABORT;
		if (c->resume && SSL_session_reused(ti->internals) == 1)
			atomic_fetch_add(&resumed, 1);
		c->built = true;
	}
	size_t k = c->len - c->off < size * n ? c->len - c->off : size * n;
	memcpy(buf, c->body + c->off, k);
	c->off += k;
	return k;
}

static size_t sink(char *buf, size_t size, size_t n, void *arg)
{
	(void)buf;
	(void)arg;
	return size * n;
}

/* Every connection verifies the server with the one CA store of the run. */
static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *arg)
{
	(void)curl;
	(void)arg;
	if (X509_STORE_up_ref(ca_store) != 1)
		return CURLE_SSL_CERTPROBLEM;
	SSL_CTX_set_cert_store(ssl_ctx, ca_store);
	return CURLE_OK;
}

enum kind { PLAIN, PROVISION, RENEW, RESUMED, HEALTH, CEIL_PROVISION, CEIL_RENEW };
#define KINDS 7

struct client {
	pthread_t thread;
	const char *url;
	enum kind kind;
	double until;
	long done;
	CURLSH *share; /* RESUMED: this thread's TLS session, kept between connections */
};

static int one_request(struct client *cl)
{
	CURL *curl = curl_easy_init();
	if (curl == NULL)
		return -1;
	struct call c;
	memset(&c, 0, sizeof(c));
	c.curl = curl;
	c.resume = cl->kind == RESUMED;
	struct curl_slist *h = NULL;
	curl_easy_setopt(curl, CURLOPT_URL, cl->url);
	curl_easy_setopt(curl, CURLOPT_CAINFO, NULL);
	curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
	curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
	if (cl->share != NULL)
		curl_easy_setopt(curl, CURLOPT_SHARE, cl->share);
	if (cl->kind != PLAIN && cl->kind != HEALTH) {
		bool prov = cl->kind == PROVISION || cl->kind == CEIL_PROVISION;
		unsigned i = 0;
		if (cl->kind == CEIL_PROVISION || cl->kind == CEIL_RENEW)
			i = atomic_fetch_add(&next_ceiling, 1) % (prov ? DEVICES : RENEWALS);
		else if ((i = atomic_fetch_add(prov ? &next_device : &next_renewal, 1)) >=
		         (prov ? DEVICES : RENEWALS)) {
			curl_easy_cleanup(curl);
			return 1; /* out of devices: stop early */
		}
		c.key = prov ? keys[i] : renew_keys[i];
		c.req.purpose = prov ? FMT_API_PROVISION : FMT_API_RENEW;
		(void)snprintf(c.req.device_id, sizeof(c.req.device_id), "%s-%06u",
		               prov ? "bench" : "renew", i);
		c.req.mac[0] = 0x02;
		c.req.mac[2] = prov ? 0 : 1;
		c.req.mac[3] = (uint8_t)(i >> 16);
		c.req.mac[4] = (uint8_t)(i >> 8);
		c.req.mac[5] = (uint8_t)i;
		if (prov)
			(void)snprintf(c.req.agent_version, sizeof(c.req.agent_version), "bench");
		else
			(void)snprintf(c.req.token, sizeof(c.req.token), "%s", renew_tokens[i]);
		/* Dummy exporter to learn the length (the PoP refuses all zero). */
		uint8_t dummy[FMT_API_EXPORTER_LEN];
		memset(dummy, 0x5a, sizeof(dummy));
		if (build(&c, dummy) != 0) {
			curl_easy_cleanup(curl);
			return -1;
		}
		h = curl_slist_append(NULL, "Content-Type: application/json");
		curl_easy_setopt(curl, CURLOPT_POST, 1L);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(curl, CURLOPT_READDATA, &c);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c.len);
	}
	long status = 0;
	int rc = curl_easy_perform(curl) == CURLE_OK &&
	                         curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) ==
	                                 CURLE_OK &&
	                         status == 200
	                 ? 0
	                 : -1;
	curl_slist_free_all(h);
	curl_easy_cleanup(curl);
	fmt_api_request_wipe(&c.req);
	return rc;
}

static void *client_run(void *arg)
{
	struct client *cl = arg;
	(void)prctl(PR_SET_NAME, "bench-client", 0, 0, 0);
	while (now_s() < cl->until) {
		int rc = one_request(cl);
		if (rc > 0)
			break;
		if (rc < 0)
			atomic_fetch_add(&failures, 1);
		else
			cl->done++;
	}
	return NULL;
}

/* One slice of CLIENTS concurrent clients: requests per second, and in
 * *ops / *cpu the requests answered and the CPU seconds the server threads
 * spent meanwhile (cpu_of(arg)). */
static double slice(const char *url, enum kind kind, double (*cpu_of)(const void *),
                    const void *server, long *ops, double *cpu)
{
	struct client cl[CLIENTS];
	double cpu0 = cpu_of(server);
	double t0 = now_s();
	int started = 0;
	for (int i = 0; i < CLIENTS; i++) {
		cl[i] = (struct client){
		        .url = url, .kind = kind, .until = t0 + SLICE_SECONDS};
		if (kind == RESUMED &&
		    ((cl[i].share = curl_share_init()) == NULL ||
		     curl_share_setopt(cl[i].share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
		             CURLSHE_OK)) {
			curl_share_cleanup(cl[i].share);
			break;
		}
		if (pthread_create(&cl[i].thread, NULL, client_run, &cl[i]) != 0) {
			curl_share_cleanup(cl[i].share);
			break;
		}
		started++;
	}
	long done = 0;
	for (int i = 0; i < started; i++) {
		(void)pthread_join(cl[i].thread, NULL);
		done += cl[i].done;
		curl_share_cleanup(cl[i].share);
	}
	double t1 = now_s();
	double rate = (double)done / (t1 - t0);
	/* For a profile by kind (tests/bench/perf-top.py --slices): each
	 * slice's CLOCK_MONOTONIC window and requests, on stderr. */
	if (getenv("IDP_BENCH_SLICES") != NULL) {
		static const char *const names[KINDS] = {"plain",  "provision",      "renew",
		                                         "resumed", "health",       "ceiling-provision",
		                                         "ceiling-renew"};
		fprintf(stderr, "slice %s %.6f %.6f %ld\n", names[kind], t0, t1, done);
	}
	*ops += done;
	*cpu += cpu_of(server) - cpu0;
	return started == CLIENTS ? rate : -1;
}

static double cpu_plain(const void *p)
{
	return plain_cpu(p);
}

static double cpu_ours(const void *h)
{
	return srv_httpd_cpu_seconds(h);
}

/* Insert n devices <prefix>-NNNNNN (MAC 02:00:<tag>:...) in state, each
 * with a fresh key kept in keys[] (inside the caller's transaction). */
static int preload(struct srv_store *db, const char *prefix, unsigned tag,
                   enum srv_device_state state, struct fmt_key **k, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct srv_device d;
		memset(&d, 0, sizeof(d));
		(void)snprintf(d.id, sizeof(d.id), "%s-%06u", prefix, i);
		(void)snprintf(d.mac, sizeof(d.mac), "02:00:%02x:%02x:%02x:%02x", tag,
		               (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
		d.state = state;
		if (fmt_key_generate(FMT_KEY_P256, &k[i], NULL) != IDP_OK ||
		    fmt_key_spki_der(k[i], d.pubkey, &d.pubkey_len, NULL) != IDP_OK ||
		    srv_store_device_insert(db, &d, NULL) != IDP_OK)
			return -1;
	}
	return 0;
}

/* A recorded device token for each renewal device, in one transaction, as
 * the server would have issued it at exchange time. */
static int mint_device_tokens(struct srv_store *db, const struct srv_state *state,
                              const struct srv_provision_cfg *pcfg)
{
	char kid[SRV_TOKEN_KID_MAX];
	int64_t now = (int64_t)time(NULL);
	if (srv_token_kid(state, kid, NULL) != IDP_OK || srv_store_begin(db, NULL) != IDP_OK)
		return -1;
	for (unsigned i = 0; i < RENEWALS; i++) {
		struct fmt_token_claims claims;
		memset(&claims, 0, sizeof(claims));
		(void)snprintf(claims.iss, sizeof(claims.iss), "%s", pcfg->issuer);
		(void)snprintf(claims.aud, sizeof(claims.aud), "%s", pcfg->audience);
		(void)snprintf(claims.sub, sizeof(claims.sub), "renew-%06u", i);
		claims.kind = FMT_TOKEN_DEVICE;
		size_t len = 0;
		struct srv_token t = {.kind = FMT_TOKEN_DEVICE};
		if (fmt_token_jkt(renew_keys[i], claims.jkt, NULL) != IDP_OK ||
		    fmt_token_sign(state->token_key, kid, &claims, now, pcfg->device_lifetime, NULL,
		                   &renew_tokens[i], &len, NULL) != IDP_OK) {
			srv_store_rollback(db);
			return -1;
		}
		t.issued_at = claims.iat;
		t.expires_at = claims.exp;
		(void)snprintf(t.jti, sizeof(t.jti), "%s", claims.jti);
		(void)snprintf(t.device_id, sizeof(t.device_id), "%s", claims.sub);
		if (srv_store_token_insert(db, &t, NULL) != IDP_OK) {
			srv_store_rollback(db);
			return -1;
		}
	}
	return srv_store_commit(db, NULL) == IDP_OK ? 0 : -1;
}

/* The requests-per-second and server-CPU ratios of what against a
 * ceiling (goals >= 0.75). */
static void print_ratios(const char *what, const char *ceiling, double rate, double ceiling_rate,
                         double cpu, double ceiling_cpu)
{
	printf("%s ratio against %s: %.2f (goal >= 0.75)\n", what, ceiling, rate / ceiling_rate);
	printf("%s CPU ratio against %s: %.2f (goal >= 0.75)\n", what, ceiling,
	       cpu > 0 ? ceiling_cpu / cpu : 0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(void)
{
	char dir[] = "/tmp/idp-bench-prov-XXXXXX";
	fio_log_set_level(FIO_LOG_WARN); /* one log line per request would flood the terminal */
	if (mkdtemp(dir) == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	int rc = 1;
	struct srv_config cfg;
	srv_config_defaults(&cfg);
	(void)snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s/state", dir);
	cfg.n_listen = 0;
	/* All load comes from 127.0.0.1: the per-address throttle would answer
	 * most of it 429 and the ratio would measure the throttle. */
	cfg.throttle_per_minute = 0;
	struct srv_state *state = NULL;
	struct srv_httpd *h = NULL;
	struct srv_store *db = NULL;
	static struct srv_app app;
	struct plain plain = {0}, ceiling = {0};
	struct ceiling_db cdb;
	memset(&cdb, 0, sizeof(cdb));
	bool plain_on = false;
	char cdb_path[sizeof(dir) + 16];
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	struct srv_state_opts so = {.dir = cfg.state_dir};
	size_t nr = 0;
	const struct srv_route *routes = srv_routes(&nr);
	if (srv_config_set(&cfg, "listen", "127.0.0.1:0", NULL) != IDP_OK ||
	    srv_state_open(&so, &state, secret, NULL) != IDP_OK ||
	    srv_store_open(state->db_path, &db, NULL) != IDP_OK)
		goto out;
	(void)snprintf(ca_path, sizeof(ca_path), "%s/state/ca.pem", dir);
	/* Preload the devices, with their keys, in one transaction. */
	if (srv_store_begin(db, NULL) != IDP_OK)
		goto out;
	if (preload(db, "bench", 0, SRV_DEV_PRELOADED, keys, DEVICES) != 0 ||
	    preload(db, "renew", 1, SRV_DEV_APPROVED, renew_keys, RENEWALS) != 0)
		goto out;
	if (srv_store_commit(db, NULL) != IDP_OK)
		goto out;
	if (srv_httpd_new(&cfg, state, routes, nr, &app, &h, NULL) != IDP_OK ||
	    srv_app_init(&app, &cfg, srv_httpd_bound(h, 0), NULL) != IDP_OK ||
	    mint_device_tokens(db, state, &app.pcfg) != 0 || srv_httpd_start(h, NULL) != IDP_OK)
		goto out;
	int port = 0;
	if (plain_start(&plain, state, (int)cfg.threads, &port) != 0)
		goto out;
	plain_on = true;
	/* The decision ceiling: one thread per client, as a blocking server
	 * needs to overlap its waits for the fsync (idprovd's loops do not
	 * wait: answers are held until the fsync). */
	int ceiling_port = 0;
	(void)snprintf(cdb_path, sizeof(cdb_path), "%s/ceiling.db", dir);
	ceiling.cdb = &cdb;
	ceiling.state = state;
	ceiling.pcfg = &app.pcfg;
	if (ceiling_db_open(&cdb, cdb_path) != 0 ||
	    plain_start(&ceiling, state, CLIENTS, &ceiling_port) != 0)
		goto out;
	char ceil_prov[128], ceil_renew[128];
	(void)snprintf(ceil_prov, sizeof(ceil_prov), "https://127.0.0.1:%d/provision",
	               ceiling_port);
	(void)snprintf(ceil_renew, sizeof(ceil_renew), "https://127.0.0.1:%d/renew", ceiling_port);
	char ours[128], theirs[128];
	(void)snprintf(ours, sizeof(ours), "https://%s/v1/provision", srv_httpd_bound(h, 0));
	(void)snprintf(theirs, sizeof(theirs), "https://127.0.0.1:%d/", port);
	char renewal[128];
	(void)snprintf(renewal, sizeof(renewal), "https://%s/v1/token/renew",
	               srv_httpd_bound(h, 0));
	char health[128];
	(void)snprintf(health, sizeof(health), "https://%s/v1/health", srv_httpd_bound(h, 0));
	/* Slices alternate between the kinds, so a burst of other load on the
	 * machine hits every kind alike. */
	const struct {
		const char *url;
		double (*cpu_of)(const void *);
		const void *server;
	} k[KINDS] = {[PLAIN] = {theirs, cpu_plain, &plain},
	              [PROVISION] = {ours, cpu_ours, h},
	              [RENEW] = {renewal, cpu_ours, h},
	              [RESUMED] = {renewal, cpu_ours, h},
	              [HEALTH] = {health, cpu_ours, h},
	              [CEIL_PROVISION] = {ceil_prov, cpu_plain, &ceiling},
	              [CEIL_RENEW] = {ceil_renew, cpu_plain, &ceiling}};
	double rate[KINDS][ROUNDS], cpu[KINDS] = {0}, med[KINDS], per[KINDS];
	const struct srv_store_sync *group = srv_httpd_store_sync(h);
	uint64_t commits0 = srv_store_sync_committed(group), flushes0 = srv_store_sync_flushes(group);
	long ops[KINDS] = {0};
	if ((ca_store = X509_STORE_new()) == NULL || X509_STORE_load_file(ca_store, ca_path) != 1)
		goto out;
	for (int i = 0; i < ROUNDS; i++)
		for (int j = 0; j < KINDS; j++)
			if ((rate[j][i] = slice(k[j].url, (enum kind)j, k[j].cpu_of, k[j].server,
			                        &ops[j], &cpu[j])) < 0)
				goto out;
	if (atomic_load(&failures) != 0) {
		fprintf(stderr, "bench_provision: %d requests failed\n", atomic_load(&failures));
		goto out;
	}
	/* The decision ceiling did its work: one committed row per answer. */
	sqlite3_stmt *count = NULL;
	long rows = -1;
	if (sqlite3_prepare_v2(cdb.db, "SELECT count(*) FROM decisions", -1, &count, NULL) ==
	            SQLITE_OK &&
	    sqlite3_step(count) == SQLITE_ROW)
		rows = (long)sqlite3_column_int64(count, 0);
	(void)sqlite3_finalize(count);
	if (rows != ops[CEIL_PROVISION] + ops[CEIL_RENEW] || cdb.durable != cdb.committed) {
		(void)fprintf(stderr, "bench_provision: the decision ceiling stored %ld decisions "
		                      "for %ld answers\n",
		              rows, ops[CEIL_PROVISION] + ops[CEIL_RENEW]);
		goto out;
	}
	/* Each client's first connection is a full handshake; all others resume. */
	if (atomic_load(&resumed) < ops[RESUMED] - (long)(ROUNDS * CLIENTS)) {
		fprintf(stderr, "bench_provision: %ld of %ld renewals resumed their session\n",
		        atomic_load(&resumed), ops[RESUMED]);
		goto out;
	}
	for (int j = 0; j < KINDS; j++) {
		qsort(rate[j], ROUNDS, sizeof(double), cmp_double);
		med[j] = rate[j][ROUNDS / 2];
		per[j] = ops[j] > 0 ? cpu[j] / (double)ops[j] * 1e3 : 0;
	}
	printf("provision, fresh TLS connection each, %d clients, %u threads: %.0f req/s "
	       "(%.0f..%.0f); plain TLS handshake + tiny answer: %.0f req/s (%.0f..%.0f)\n",
	       CLIENTS, cfg.threads, med[PROVISION], rate[PROVISION][0],
	       rate[PROVISION][ROUNDS - 1], med[PLAIN], rate[PLAIN][0], rate[PLAIN][ROUNDS - 1]);
	printf("server CPU: %.3f ms per provisioning decision, %.3f ms per plain TLS "
	       "handshake\n",
	       per[PROVISION], per[PLAIN]);
	print_ratios("provision", "a bare handshake", med[PROVISION], med[PLAIN], per[PROVISION],
	             per[PLAIN]);
	printf("token renewal, fresh TLS connection each: %.0f req/s (%.0f..%.0f); "
	       "server CPU %.3f ms per renewal\n",
	       med[RENEW], rate[RENEW][0], rate[RENEW][ROUNDS - 1], per[RENEW]);
	print_ratios("renewal", "a bare handshake", med[RENEW], med[PLAIN], per[RENEW],
	             per[PLAIN]);
	printf("token renewal, resumed TLS session: %.0f req/s (%.0f..%.0f); server CPU %.3f ms "
	       "per renewal\n",
	       med[RESUMED], rate[RESUMED][0], rate[RESUMED][ROUNDS - 1], per[RESUMED]);
	printf("resumed renewal ratio (to renewal on a full handshake): %.2f (goal >= 1.50)\n",
	       med[RESUMED] / med[RENEW]);
	printf("resumed renewal CPU ratio: %.2f (goal >= 1.50)\n",
	       per[RESUMED] > 0 ? per[RENEW] / per[RESUMED] : 0);
	/* The same handshake and HTTP loop with no decision: what the loop
	 * adds to a handshake, and what the decision adds to both. */
	printf("server CPU: %.3f ms per GET /v1/health on a fresh TLS connection (handshake "
	       "and HTTP, no decision): %.3f ms more than a plain handshake; a decision adds "
	       "%.3f ms (provisioning), %.3f ms (renewal)\n",
	       per[HEALTH], per[HEALTH] - per[PLAIN], per[PROVISION] - per[HEALTH],
	       per[RENEW] - per[HEALTH]);
	/* Against the decision ceiling: the same handshake and the decision's
	 * unavoidable work, with no server around them. */
	printf("decision ceiling (handshake + proof verify + token signature + durable commit, "
	       "%d threads): provisioning %.0f req/s (%.0f..%.0f), %.3f ms server CPU; "
	       "renewal %.0f req/s (%.0f..%.0f), %.3f ms server CPU\n",
	       CLIENTS, med[CEIL_PROVISION], rate[CEIL_PROVISION][0],
	       rate[CEIL_PROVISION][ROUNDS - 1], per[CEIL_PROVISION], med[CEIL_RENEW],
	       rate[CEIL_RENEW][0], rate[CEIL_RENEW][ROUNDS - 1], per[CEIL_RENEW]);
	/* What the goal against a bare handshake would leave even a server that
	 * did nothing but the decision's unavoidable work. */
	printf("decision ceiling against a bare handshake: provisioning %.2f req/s, %.2f CPU; "
	       "renewal %.2f req/s, %.2f CPU\n",
	       med[CEIL_PROVISION] / med[PLAIN],
	       per[CEIL_PROVISION] > 0 ? per[PLAIN] / per[CEIL_PROVISION] : 0,
	       med[CEIL_RENEW] / med[PLAIN], per[CEIL_RENEW] > 0 ? per[PLAIN] / per[CEIL_RENEW] : 0);
	print_ratios("provision", "the decision ceiling", med[PROVISION], med[CEIL_PROVISION],
	             per[PROVISION], per[CEIL_PROVISION]);
	print_ratios("renewal", "the decision ceiling", med[RENEW], med[CEIL_RENEW], per[RENEW],
	             per[CEIL_RENEW]);
	printf("decision ceiling group commit: %llu commits, %llu fsyncs (%.1f commits per "
	       "fsync)\n",
	       (unsigned long long)cdb.committed, (unsigned long long)cdb.flushes,
	       cdb.flushes > 0 ? (double)cdb.committed / (double)cdb.flushes : 0);
	uint64_t commits = srv_store_sync_committed(group) - commits0;
	uint64_t flushes = srv_store_sync_flushes(group) - flushes0;
	printf("group commit: %llu commits, %llu fsyncs (%.1f commits per fsync)\n",
	       (unsigned long long)commits, (unsigned long long)flushes,
	       flushes > 0 ? (double)commits / (double)flushes : 0);
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "bench_provision: failed\n");
	if (plain_on) {
		plain_stop(&plain);
		plain_stop(&ceiling);
	}
	ceiling_db_close(&cdb);
	if (h != NULL) {
		srv_httpd_shutdown(h);
		srv_httpd_free(h);
	}
	srv_store_close(db);
	srv_state_free(state);
	for (unsigned i = 0; i < DEVICES; i++)
		fmt_key_free(keys[i]);
	for (unsigned i = 0; i < RENEWALS; i++) {
		fmt_key_free(renew_keys[i]);
		fmt_token_free(renew_tokens[i]);
	}
	X509_STORE_free(ca_store);
	curl_global_cleanup();
	char cmd[128];
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
