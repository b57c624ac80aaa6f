/*
 * httpc.c - the shared HTTPS client (see httpc.h). One CURL easy handle
 * per client, reset before each request so that connections, TLS sessions
 * and the parsed CA file are kept but no option leaks from one request into
 * the next.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "formats/io/httpc.h"

#include "formats/buf.h"
#include "formats/io/log.h"

struct fio_httpc {
	CURL *curl;
	CURLSH *share; /* TLS sessions, kept across fio_httpc_disconnect */
	char *base_url, *ca_file, *client_cert, *client_key;
	bool no_verify;
	long timeout_s, connect_timeout_s;
	unsigned attempts, backoff_ms, backoff_max_ms;
	int64_t retry_after_max;
	size_t answer_max;
};

/* A body read from a file as it is sent (fio_httpc_do_file). */
struct upload {
	const struct fio_httpc_file *f;
	int fd;
	uint64_t size; /* when opened: the Content-Length */
};

/* What the callbacks of one attempt share. */
struct xfer {
	struct fio_httpc *c;
	const struct fio_httpc_req *r;
	const struct upload *up; /* or NULL: r's body */
	uint8_t *made;     /* body made by body_fn on this connection */
	bool built;
	size_t off;
	struct idp_error body_err; /* body_fn's or the sink's failure, reported after perform */
	bool body_failed;
	struct fmt_buf ans; /* the answer, capped at answer_max; secret (tokens) */
	int to_sink;        /* the answer goes to r->sink: -1 not known yet, 0 no, 1 yes */
	uint64_t sunk;      /* bytes of it given to the sink */
	int64_t retry_after;
	bool tls_seen, tls_resumed;
	/* A file upload's progress bound (on_progress): when the upload last
	 * moved, and how far; stalled names the bound that ended it. */
	int64_t moved_ms;
	curl_off_t sent, got;
	const char *stalled;
	long stalled_s;
};

static char *dup_opt(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* ---------------------------------------------------------------- TLS sessions */

/* A new easy handle on c's share of TLS sessions (made on first use): a
 * handle replaced by fio_httpc_disconnect still resumes the sessions its
 * predecessor received. NULL when out of memory. */
static CURL *sessions_init(struct fio_httpc *c)
{
	if (c->share == NULL) {
		c->share = curl_share_init();
		if (c->share != NULL &&
		    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
		            CURLSHE_OK) {
			curl_share_cleanup(c->share);
			c->share = NULL;
		}
		if (c->share == NULL)
			return NULL;
	}
	CURL *e = curl_easy_init();
	if (e != NULL && curl_easy_setopt(e, CURLOPT_SHARE, c->share) != CURLE_OK) {
		curl_easy_cleanup(e);
		e = NULL;
	}
	return e;
}

enum idp_err fio_httpc_disconnect(struct fio_httpc *c, struct idp_error *err)
{
	CURL *e = sessions_init(c);
	if (e == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "https client: out of memory");
	curl_easy_cleanup(c->curl); /* closes its connection (close_notify) */
	c->curl = e;
	return IDP_OK;
}

/* Whether the transfer's TLS session was resumed, read once per attempt
 * while the connection is live (its first header line). */
static void note_resumed(struct xfer *x)
{
	const struct curl_tlssessioninfo *ti = NULL;
	if (x->tls_seen)
		return;
	x->tls_seen = true;
	if (curl_easy_getinfo(x->c->curl, CURLINFO_TLS_SSL_PTR, &ti) == CURLE_OK && ti != NULL &&
	    ti->backend == CURLSSLBACKEND_OPENSSL && ti->internals != NULL)
		x->tls_resumed = SSL_session_reused(ti->internals) == 1;
}

void fio_httpc_free(struct fio_httpc *c)
{
	if (c == NULL)
		return;
	curl_easy_cleanup(c->curl);
	curl_share_cleanup(c->share); /* after its last easy handle */
	free(c->base_url);
	free(c->ca_file);
	free(c->client_cert);
	free(c->client_key);
	free(c);
}

enum idp_err fio_httpc_new(const struct fio_httpc_opts *o, struct fio_httpc **out,
                           struct idp_error *err)
{
	*out = NULL;
	if (o->base_url == NULL || strncmp(o->base_url, "https://", 8) != 0 ||
	    strnlen(o->base_url, FIO_HTTPC_URL_MAX) >= FIO_HTTPC_URL_MAX / 2)
		return idp_error_set(err, IDP_E_ARG, "https client: the server URL must be https://");
	if (o->ca_file == NULL && !o->no_verify)
		return idp_error_set(err, IDP_E_ARG, "https client: no CA to check the server with");
	if ((o->client_cert == NULL) != (o->client_key == NULL))
		return idp_error_set(err, IDP_E_ARG,
		                     "https client: a client certificate needs its key, and back");
	if (o->attempts > FIO_HTTPC_ATTEMPTS_MAX)
		return idp_error_set(err, IDP_E_ARG, "https client: %u attempts, max %u", o->attempts,
		                     FIO_HTTPC_ATTEMPTS_MAX);
	struct fio_httpc *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "https client: out of memory");
	c->curl = sessions_init(c);
	c->base_url = dup_opt(o->base_url);
	c->ca_file = dup_opt(o->ca_file);
	c->client_cert = dup_opt(o->client_cert);
	c->client_key = dup_opt(o->client_key);
	if (c->curl == NULL || c->base_url == NULL || (o->ca_file != NULL && c->ca_file == NULL) ||
	    (o->client_cert != NULL && (c->client_cert == NULL || c->client_key == NULL))) {
		fio_httpc_free(c);
		return idp_error_set(err, IDP_E_NOMEM, "https client: out of memory");
	}
	size_t bl = strlen(c->base_url);
	while (bl > 8 && c->base_url[bl - 1] == '/')
		c->base_url[--bl] = '\0';
	c->no_verify = o->no_verify;
	c->timeout_s = o->timeout_s > 0 ? o->timeout_s : 30;
	c->connect_timeout_s = o->connect_timeout_s > 0 ? o->connect_timeout_s : 10;
	c->attempts = o->attempts > 0 ? o->attempts : 1;
	c->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 500;
	c->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000;
	c->answer_max = o->answer_max > 0 ? o->answer_max : FIO_HTTPC_ANSWER_DEFAULT;
	c->retry_after_max = o->retry_after_max > 0 && o->retry_after_max < FIO_HTTPC_RETRY_AFTER_MAX
	                             ? o->retry_after_max
	                             : FIO_HTTPC_RETRY_AFTER_MAX;
	*out = c;
	return IDP_OK;
}

void fio_httpc_resp_free(struct fio_httpc_resp *resp)
{
	if (resp == NULL)
		return;
	if (resp->body != NULL) {
		OPENSSL_cleanse(resp->body, resp->len); /* answers carry tokens */
		free(resp->body);
	}
	OPENSSL_cleanse(resp, sizeof(*resp));
}

/* ---------------------------------------------------------------- callbacks */

/* The next piece of a file body, read straight into libcurl's buffer and
 * shown to the check before it leaves. A file that ends early, a read
 * error or a refusal aborts the transfer: the server never gets the whole
 * body it was promised (Content-Length), so it has nothing to act on. */
static size_t read_file(struct xfer *x, char *buf, size_t cap)
{
	const struct upload *up = x->up;
	uint64_t left = up->size - x->off;
	size_t k = left < cap ? (size_t)left : cap, got = 0;
	while (got < k) {
		ssize_t n = pread(up->fd, buf + got, k - got, (off_t)(x->off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			(void)idp_error_set(&x->body_err, IDP_E_IO, "%s: reading: %s", up->f->path,
			                    strerror(errno));
		else if (n == 0)
			(void)idp_error_set(&x->body_err, IDP_E_FORMAT,
			                    "%s: ends at byte %llu, it had %llu when the upload began",
			                    up->f->path, (unsigned long long)x->off + got,
			                    (unsigned long long)up->size);
		if (n <= 0) {
			x->body_failed = true;
			return CURL_READFUNC_ABORT;
		}
		got += (size_t)n;
	}
	if (up->f->check != NULL && k > 0 &&
	    up->f->check(up->f->check_arg, (uint64_t)x->off, (const uint8_t *)buf, k,
	                 x->off + k == up->size, &x->body_err) != IDP_OK) {
		idp_error_prefix(&x->body_err, "%s", up->f->path);
		x->body_failed = true;
		return CURL_READFUNC_ABORT;
	}
	x->off += k;
	return k;
}

/* The body: fixed, made now from this connection's exporter, or a file's. */
static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	if (x->up != NULL)
		return read_file(x, buf, size * n);
	const struct fio_httpc_req *r = x->r;
	const uint8_t *src = r->body;
	if (r->body_fn != NULL) {
		if (!x->built) {
			const struct curl_tlssessioninfo *ti = NULL;
			uint8_t exp[FIO_TLS_EXPORTER_LEN];
			enum idp_err rc;
			if (curl_easy_getinfo(x->c->curl, CURLINFO_TLS_SSL_PTR, &ti) != CURLE_OK ||
			    ti == NULL || ti->backend != CURLSSLBACKEND_OPENSSL)
				rc = idp_error_set(&x->body_err, IDP_E_CRYPTO,
				                   "https client: no TLS session to bind to");
			else
				rc = fio_tls_exporter(ti->internals, exp, &x->body_err);
			if (rc == IDP_OK)
				rc = r->body_fn(r->body_arg, exp, x->made, r->body_len, &x->body_err);
			OPENSSL_cleanse(exp, sizeof(exp));
			if (rc != IDP_OK) {
				x->body_failed = true;
				return CURL_READFUNC_ABORT;
			}
			x->built = true;
		}
		src = x->made;
	}
	size_t k = r->body_len - x->off;
	if (k > size * n)
		k = size * n;
	if (k > 0)
		memcpy(buf, src + x->off, k);
	x->off += k;
	return k;
}

/* The seconds an upload of size bytes may wait for its answer once sent:
 * the client's timeout, plus the server's time to act on that many bytes. */
static long answer_wait_s(const struct fio_httpc *c, uint64_t size)
{
	return c->timeout_s + (long)(size / FIO_HTTPC_UPLOAD_ANSWER_RATE);
}

/* A file upload has no bound on its whole time (a large manifest on a slow
 * or loaded link takes what it takes): it ends when it makes no progress
 * for timeout_s (body or answer bytes), or when, all sent, the answer does
 * not begin within answer_wait_s. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	(void)dltotal;
	struct xfer *x = arg;
	int64_t now = fio_mono_ms();
	if (ulnow != x->sent || dlnow != x->got || x->moved_ms == 0) {
		x->sent = ulnow;
		x->got = dlnow;
		x->moved_ms = now;
		return 0;
	}
	/* All sent (a sink's request may have no body), nothing answered yet. */
	bool waiting = (ultotal > 0 || x->up == NULL) && ulnow >= ultotal && dlnow == 0;
	long bound = waiting ? answer_wait_s(x->c, x->up != NULL ? x->up->size : 0)
	                     : x->c->timeout_s;
	if (now - x->moved_ms < (int64_t)bound * 1000)
		return 0;
	x->stalled = waiting ? "no answer" : "no progress";
	x->stalled_s = bound;
	return 1;
}

/* libcurl rewinds when it must send the body again on a new connection:
 * that connection has another exporter, so the body is made again. */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct xfer *x = arg;
	if (origin != SEEK_SET || offset != 0)
		return CURL_SEEKFUNC_CANTSEEK;
	x->off = 0;
	x->built = false;
	return CURL_SEEKFUNC_OK;
}

/* Give buf[0..len) of a 2xx answer to the sink; false when it refused. */
static bool sink_put(struct xfer *x, const char *buf, size_t len)
{
	if (x->r->sink(x->r->sink_arg, x->sunk, (const uint8_t *)buf, len, &x->body_err) !=
	    IDP_OK) {
		x->body_failed = true;
		return false;
	}
	x->sunk += len;
	return true;
}

/* The answer: a 2xx one to the sink when there is one, else kept (capped). */
static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	if (x->to_sink < 0) {
		long status = 0;
		(void)curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &status);
		x->to_sink = x->r->sink != NULL && status >= 200 && status < 300;
	}
	if (x->to_sink > 0)
		return sink_put(x, p, len) ? len : 0;
	fmt_buf_add(&x->ans, p, len);
	return fmt_buf_status(&x->ans) == IDP_OK ? len : 0;
}

/* Retry-After: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3). */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	note_resumed(x);
	if (len <= sizeof(name) - 1 || strncasecmp(p, name, sizeof(name) - 1) != 0)
		return len;
	char v[64];
	size_t i = sizeof(name) - 1, k = 0;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	while (i < len && p[i] != '\r' && p[i] != '\n' && k < sizeof(v) - 1)
		v[k++] = p[i++];
	v[k] = '\0';
	int64_t secs = 0;
	size_t d = 0;
	while (d < k && v[d] >= '0' && v[d] <= '9' && secs <= 10 * FIO_HTTPC_RETRY_AFTER_MAX)
		secs = secs * 10 + (v[d++] - '0');
	if (d == 0 || d != k) {
		time_t t = curl_getdate(v, NULL);
		secs = t > 0 ? (int64_t)t - (int64_t)time(NULL) : 0;
	}
	x->retry_after = secs > 0 ? secs : 0;
	return len;
}

/* ---------------------------------------------------------------- request */

static enum idp_err add_header(struct curl_slist **h, const char *line, struct idp_error *err)
{
	struct curl_slist *n = curl_slist_append(*h, line);
	if (n == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "https client: out of memory");
	*h = n;
	return IDP_OK;
}

/* The header list of r; the bearer line is wiped from it by free_headers. */
static enum idp_err make_headers(const struct fio_httpc_req *r, struct curl_slist **h,
                                 struct idp_error *err)
{
	char line[FIO_HTTPC_HEADER_MAX];
	enum idp_err rc = add_header(h, "Expect:", err); /* no 100-continue round trip */
	if (rc == IDP_OK && r->content_type != NULL) {
		int n = snprintf(line, sizeof(line), "Content-Type: %s", r->content_type);
		rc = n < 0 || (size_t)n >= sizeof(line)
		             ? idp_error_set(err, IDP_E_ARG, "https client: content type too long")
		             : add_header(h, line, err);
	}
	if (rc == IDP_OK && r->bearer != NULL) {
		size_t bl = strnlen(r->bearer, FIO_HTTPC_BEARER_MAX + 1);
		if (bl == 0 || bl > FIO_HTTPC_BEARER_MAX || strpbrk(r->bearer, "\r\n") != NULL)
			rc = idp_error_set(err, IDP_E_ARG, "https client: the credential is %s",
			                   bl == 0 ? "empty" : "malformed or too long");
		else {
			(void)snprintf(line, sizeof(line), "Authorization: Bearer %s", r->bearer);
			rc = add_header(h, line, err);
			OPENSSL_cleanse(line, sizeof(line));
		}
	}
	for (size_t i = 0; rc == IDP_OK && r->headers != NULL && r->headers[i] != NULL; i++) {
		if (strpbrk(r->headers[i], "\r\n") != NULL)
			rc = idp_error_set(err, IDP_E_ARG, "https client: a header holds a line break");
		else
			rc = add_header(h, r->headers[i], err);
	}
	return rc;
}

static void free_headers(struct curl_slist *h)
{
	for (struct curl_slist *p = h; p != NULL; p = p->next)
		OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

static void set_options(struct fio_httpc *c, const struct fio_httpc_req *r, const char *url,
                        struct curl_slist *h, struct xfer *x, char *errbuf)
{
	CURL *e = c->curl;
	curl_easy_reset(e);
	(void)curl_easy_setopt(e, CURLOPT_URL, url);
	(void)curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	(void)curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	/* A file upload or an answer to a sink is bounded by its progress
	 * instead (on_progress). */
	bool streams = x->up != NULL || r->sink != NULL;
	(void)curl_easy_setopt(e, CURLOPT_TIMEOUT, streams ? 0L : c->timeout_s);
	if (streams) {
		(void)curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
		(void)curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
		(void)curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
	}
	(void)curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, c->connect_timeout_s);
	(void)curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->no_verify) {
		(void)curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		(void)curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	} else {
		/* Only the given CA: never the system's bundle or directory. */
		(void)curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
		(void)curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
		/* Parse the CA file once per client, not per connection: libcurl
		 * keeps the X509_STORE in the handle (CAINFO alone, no CAPATH,
		 * blob or CRL) for this long. libcurl still makes an SSL_CTX per
		 * connection, and connections are kept between requests. */
		(void)curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, FIO_HTTPC_CA_CACHE_S);
	}
	if (c->client_cert != NULL) {
		(void)curl_easy_setopt(e, CURLOPT_SSLCERT, c->client_cert);
		(void)curl_easy_setopt(e, CURLOPT_SSLKEY, c->client_key);
	}
	(void)curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	(void)curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	(void)curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	(void)curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	(void)curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	bool has_body = r->body != NULL || r->body_fn != NULL || x->up != NULL;
	if (has_body) {
		(void)curl_easy_setopt(e, CURLOPT_POST, 1L);
		(void)curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
		(void)curl_easy_setopt(e, CURLOPT_READDATA, x);
		(void)curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
		(void)curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
		(void)curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		                       (curl_off_t)(x->up != NULL ? x->up->size : r->body_len));
	}
	if (strcmp(r->method, "HEAD") == 0)
		(void)curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(r->method, has_body ? "POST" : "GET") != 0)
		(void)curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
}

/* The idp_err an HTTP error status stands for. */
static enum idp_err status_err(long status)
{
	switch (status) {
	case 400: return IDP_E_FORMAT;
	case 401:
	case 403: return IDP_E_DENIED;
	case 404: return IDP_E_NOTFOUND;
	case 409: return IDP_E_CONFLICT;
	case 413: return IDP_E_LIMIT;
	case 429:
	case 503: return IDP_E_AGAIN;
	default: return IDP_E_IO;
	}
}

/* A transport failure after which nothing can have reached the server. */
static bool nothing_sent(CURLcode cc)
{
	return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
	       cc == CURLE_SSL_CONNECT_ERROR;
}

/* Sleep ms milliseconds (restarted after signals). */
static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Delay before try number `next` (2, 3, ...): backoff doubled per try, half
 * of it random (so a line of devices restarted together spreads out), and
 * never less than the server's Retry-After. */
static unsigned delay_ms(const struct fio_httpc *c, unsigned next, int64_t retry_after)
{
	uint64_t base = c->backoff_ms;
	for (unsigned i = 2; i < next && base < c->backoff_max_ms; i++)
		base *= 2;
	if (base > c->backoff_max_ms)
		base = c->backoff_max_ms;
	uint32_t rnd = 0;
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = (uint32_t)time(NULL);
	uint64_t d = base / 2 + (base > 1 ? rnd % (base / 2 + 1) : 0);
	if ((uint64_t)retry_after * 1000u > d)
		d = (uint64_t)retry_after * 1000u;
	return (unsigned)d;
}

static enum idp_err one_attempt(struct fio_httpc *c, const struct fio_httpc_req *r,
                                const struct upload *up, const char *url, struct curl_slist *h,
                                struct fio_httpc_resp *resp, CURLcode *ccp, bool *body_failed,
                                struct idp_error *err)
{
	struct xfer x = {.c = c, .r = r, .up = up, .to_sink = -1};
	fmt_buf_init(&x.ans, c->answer_max, FMT_BUF_SECRET);
	char errbuf[CURL_ERROR_SIZE] = "";
	if (r->body_fn != NULL) {
		x.made = malloc(r->body_len > 0 ? r->body_len : 1);
		if (x.made == NULL)
			return idp_error_set(err, IDP_E_NOMEM, "https client: out of memory");
	}
	set_options(c, r, url, h, &x, errbuf);
	CURLcode cc = curl_easy_perform(c->curl);
	*ccp = cc;
	resp->status = 0;
	(void)curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	/* A whole 2xx answer with no body still begins at offset 0 for the sink:
	 * what an earlier, cut attempt gave is not the answer. */
	if (cc == CURLE_OK && r->sink != NULL && x.to_sink < 0 && resp->status >= 200 &&
	    resp->status < 300)
		(void)sink_put(&x, "", 0);
	resp->retry_after = x.retry_after;
	resp->tls_resumed = x.tls_resumed;
	bool overflow = fmt_buf_status(&x.ans) == IDP_E_LIMIT;
	/* No answer bytes: no body, as callers test. */
	resp->len = 0;
	resp->body = x.ans.p != NULL ? fmt_buf_detach(&x.ans, &resp->len) : NULL;
	fmt_buf_free(&x.ans);
	if (x.made != NULL) {
		OPENSSL_cleanse(x.made, r->body_len);
		free(x.made);
	}
	*body_failed = x.body_failed;
	if (x.body_failed) {
		if (err != NULL)
			*err = x.body_err;
		return x.body_err.code != IDP_OK ? x.body_err.code : IDP_E_CRYPTO;
	}
	if (cc == CURLE_OK)
		return IDP_OK;
	const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc);
	if (overflow)
		return idp_error_set(err, IDP_E_LIMIT, "%s: answer over %zu bytes", c->base_url,
		                     c->answer_max);
	if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
		return idp_error_set(err, IDP_E_VERIFY, "%s: server not trusted: %s", c->base_url, why);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return idp_error_set(err, IDP_E_TIMEOUT, "%s: %s", c->base_url, why);
	if (cc == CURLE_ABORTED_BY_CALLBACK && x.stalled != NULL)
		return idp_error_set(err, IDP_E_TIMEOUT, "%s: %s for %ld s", c->base_url, x.stalled,
		                     x.stalled_s);
	return idp_error_set(err, IDP_E_IO, "%s: %s", c->base_url, why);
}

/* fio_httpc_do, with the body read from up when it is not NULL. */
static enum idp_err do_request(struct fio_httpc *c, const struct fio_httpc_req *r,
                               const struct upload *up, struct fio_httpc_resp *resp,
                               struct idp_error *err)
{
	if (r->method == NULL || r->path == NULL || r->path[0] != '/' ||
	    (r->body != NULL && r->body_fn != NULL))
		return idp_error_set(err, IDP_E_ARG, "https client: bad request description");
	char url[FIO_HTTPC_URL_MAX];
	int n = snprintf(url, sizeof(url), "%s%s", c->base_url, r->path);
	if (n < 0 || (size_t)n >= sizeof(url))
		return idp_error_set(err, IDP_E_LIMIT, "https client: URL longer than %u bytes",
		                     FIO_HTTPC_URL_MAX - 1);
	struct curl_slist *h = NULL;
	enum idp_err rc = make_headers(r, &h, err);
	for (unsigned attempt = 1; rc == IDP_OK; attempt++) {
		fio_httpc_resp_free(resp);
		CURLcode cc = CURLE_OK;
		bool body_failed = false;
		resp->attempts = attempt;
		rc = one_attempt(c, r, up, url, h, resp, &cc, &body_failed, err);
		resp->local = body_failed;
		if (body_failed)
			break; /* the body could not be made or read: sending it again cannot help */
		bool again;
		if (rc == IDP_OK && resp->status >= 200 && resp->status < 300)
			break;
		if (rc == IDP_OK) {
			again = resp->status == 429 || resp->status == 503;
			rc = status_err(resp->status);
			resp->has_api_error =
			        resp->body != NULL &&
			        fmt_api_error_parse(resp->body, resp->len, &resp->api, NULL) == IDP_OK;
			if (resp->has_api_error)
				(void)idp_error_set(err, rc, "server refused (%ld %s): %s", resp->status,
				                    resp->api.code_text, resp->api.message);
			else
				(void)idp_error_set(err, rc, "server answered %ld without an API error",
				                    resp->status);
		} else {
			again = rc == IDP_E_IO || rc == IDP_E_TIMEOUT;
			again = again && (nothing_sent(cc) || r->idempotent);
		}
		if (!again || attempt >= c->attempts || resp->retry_after > c->retry_after_max)
			break;
		sleep_ms(delay_ms(c, attempt + 1, resp->retry_after));
		rc = IDP_OK;
	}
	free_headers(h);
	return rc;
}

enum idp_err fio_httpc_do(struct fio_httpc *c, const struct fio_httpc_req *r,
                          struct fio_httpc_resp *resp, struct idp_error *err)
{
	memset(resp, 0, sizeof(*resp));
	return do_request(c, r, NULL, resp, err);
}

/* ---------------------------------------------------------------- upload from a file */

enum idp_err fio_httpc_do_file(struct fio_httpc *c, const struct fio_httpc_req *r,
                               const struct fio_httpc_file *f, struct fio_httpc_resp *resp,
                               struct idp_error *err)
{
	memset(resp, 0, sizeof(*resp));
	if (f == NULL || f->path == NULL || r->body != NULL || r->body_fn != NULL)
		return idp_error_set(err, IDP_E_ARG, "https client: bad file upload description");
	struct upload up = {.f = f, .fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOCTTY)};
	if (up.fd < 0) {
		resp->local = true;
		return idp_error_set(err, errno == ENOENT ? IDP_E_NOTFOUND : IDP_E_IO, "%s: %s",
		                     f->path, strerror(errno));
	}
	struct stat sb;
	enum idp_err rc = IDP_OK;
	if (fstat(up.fd, &sb) != 0)
		rc = idp_error_set(err, IDP_E_IO, "%s: %s", f->path, strerror(errno));
	else if (!S_ISREG(sb.st_mode))
		rc = idp_error_set(err, IDP_E_ARG, "%s: not a regular file", f->path);
	up.size = rc == IDP_OK ? (uint64_t)sb.st_size : 0;
	/* An empty file sends no piece: the check sees its end here. */
	if (rc == IDP_OK && up.size == 0 && f->check != NULL &&
	    (rc = f->check(f->check_arg, 0, (const uint8_t *)"", 0, true, err)) != IDP_OK)
		idp_error_prefix(err, "%s", f->path);
	if (rc == IDP_OK)
		rc = do_request(c, r, &up, resp, err);
	else
		resp->local = true;
	(void)close(up.fd);
	return rc;
}
