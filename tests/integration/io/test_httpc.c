/*
 * test_httpc.c - formats/io/httpc against a real TLS server on loopback (an
 * OpenSSL server thread in this test that answers from a script and records
 * what it received, including its own RFC 9266 exporter of each
 * connection): answers and API errors, Retry-After, retries only when safe,
 * the answer cap, server verification, the bearer, and a body built from
 * the live connection's exporter under TLS 1.3 and 1.2.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "formats/io/httpc.h"
#include "tests/unit/check_main.h"
#include "tests/unit/helpers.h"

#define SCRIPT_MAX 8

struct step {
	int status;          /* 0: close the connection without answering */
	const char *headers; /* extra header lines, each ending in \r\n */
	const char *body;
	size_t body_repeat;  /* body sent this many times (for the cap) */
};

/* Step i's manner of answering (set before start_server; zero by default). */
static struct {
	unsigned delay_ms; /* wait this long after the request before answering */
	bool hold;         /* never answer: wait until the client closes */
	size_t cut_at;     /* >0: send only this many body bytes, then hang up */
	bool may_leave;    /* the client may hang up mid-body: a failed write ends it */
} manner[SCRIPT_MAX];

struct seen {
	char head[4096];
	char body[1024];
	size_t body_len;
	uint8_t exporter[FIO_TLS_EXPORTER_LEN];   /* RFC 9266: empty context */
	uint8_t no_context[FIO_TLS_EXPORTER_LEN]; /* the pre-RFC spelling */
};

static struct server {
	int lfd;
	unsigned port;
	SSL_CTX *ctx;
	pthread_t thread;
	struct step script[SCRIPT_MAX];
	size_t n_steps, next;
	struct seen seen[SCRIPT_MAX];
	size_t n_seen;
	size_t handshakes; /* TLS connections accepted */
	int max_proto;
} srv;

static char dir[64], ca_path[128], other_ca_path[128];
static bool no_resumption; /* the next server refuses TLS session resumption */

/* A self-signed P-256 certificate for 127.0.0.1, written to path. */
static void make_cert(const char *path, EVP_PKEY **key_out, X509 **cert_out)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(k);
	const char *cn = "127.0.0.1";
	const struct idp_test_cert_spec spec = {
	        .cns = &cn, .ncn = 1, .ca = true, .san = "IP:127.0.0.1", .valid_from = -60,
	        .valid_for = 3600};
	X509 *x = idp_test_cert(k, &spec);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_X509(f, x), 1);
	fclose(f);
	*key_out = k;
	*cert_out = x;
}

/* Read one request head and its Content-Length body; false at EOF. */
static bool read_request(SSL *s, struct seen *out)
{
	size_t n = 0;
	while (n < sizeof(out->head) - 1) {
		int r = SSL_read(s, out->head + n, 1);
		if (r <= 0)
			return false;
		n++;
		out->head[n] = '\0';
		if (n >= 4 && memcmp(out->head + n - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	out->body_len = 0;
	const char *cl = strstr(out->head, "\r\nContent-Length: ");
	size_t want = cl != NULL ? strtoul(cl + 18, NULL, 10) : 0;
	/* A body larger than out->body is read whole, its start kept. */
	char scratch[4096];
	while (out->body_len < want) {
		size_t room = sizeof(out->body) - 1 - (out->body_len < sizeof(out->body) - 1
		                                               ? out->body_len
		                                               : sizeof(out->body) - 1);
		char *dst = room > 0 ? out->body + out->body_len : scratch;
		size_t k = want - out->body_len;
		if (k > (room > 0 ? room : sizeof(scratch)))
			k = room > 0 ? room : sizeof(scratch);
		int r = SSL_read(s, dst, (int)k);
		if (r <= 0)
			return false;
		out->body_len += (size_t)r;
	}
	out->body[out->body_len < sizeof(out->body) ? out->body_len : sizeof(out->body) - 1] = '\0';
	return true;
}

/* Answer st; with cut > 0 send only that many bytes of its body. */
static void answer(SSL *s, const struct step *st, size_t cut, bool may_leave)
{
	size_t blen = st->body != NULL ? strlen(st->body) : 0;
	size_t rep = st->body_repeat > 0 ? st->body_repeat : 1;
	char head[512];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sContent-Length: "
	                 "%zu\r\n\r\n",
	                 st->status, st->headers != NULL ? st->headers : "", blen * rep);
	ck_assert_int_eq(SSL_write(s, head, n), n);
	size_t left = cut > 0 ? cut : blen * rep;
	for (size_t i = 0; i < rep && left > 0; i++) {
		int k = (int)(blen < left ? blen : left);
		int w = SSL_write(s, st->body, k);
		if (w <= 0 && may_leave)
			return; /* the client has gone: what it saw is what the test checks */
		ck_assert_int_eq(w, k);
		left -= (size_t)k;
	}
}

/* Serve connections one after another until the script is done. */
static void *serve(void *arg)
{
	(void)arg;
	while (srv.next < srv.n_steps) {
		int fd = accept(srv.lfd, NULL, NULL);
		if (fd < 0)
			break;
		SSL *s = SSL_new(srv.ctx);
		SSL_set_fd(s, fd);
		if (SSL_accept(s) == 1) {
			srv.handshakes++;
			while (srv.next < srv.n_steps) {
				struct seen *sn = &srv.seen[srv.n_seen];
				if (!read_request(s, sn))
					break;
				static const unsigned char empty[1] = {0};
				SSL_export_keying_material(s, sn->exporter, FIO_TLS_EXPORTER_LEN,
				                           FMT_API_EXPORTER_LABEL,
				                           strlen(FMT_API_EXPORTER_LABEL), empty, 0, 1);
				SSL_export_keying_material(s, sn->no_context, FIO_TLS_EXPORTER_LEN,
				                           FMT_API_EXPORTER_LABEL,
				                           strlen(FMT_API_EXPORTER_LABEL), NULL, 0, 0);
				srv.n_seen++;
				bool hold = manner[srv.next].hold;
				unsigned delay_ms = manner[srv.next].delay_ms;
				size_t cut = manner[srv.next].cut_at;
				bool may_leave = manner[srv.next].may_leave;
				const struct step *st = &srv.script[srv.next++];
				if (hold) {
					char b;
					while (SSL_read(s, &b, 1) > 0)
						;
				}
				if (st->status == 0 || hold)
					break;
				if (delay_ms > 0)
					(void)usleep(delay_ms * 1000u);
				answer(s, st, cut, may_leave);
				if (cut > 0)
					break; /* hang up mid-body */
			}
		}
		SSL_free(s);
		close(fd);
	}
	return NULL;
}

static void start_server(const struct step *steps, size_t n, int max_proto)
{
	memset(&srv, 0, sizeof(srv));
	ck_assert_uint_le(n, SCRIPT_MAX);
	memcpy(srv.script, steps, n * sizeof(*steps));
	srv.n_steps = n;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	make_cert(ca_path, &k, &x);
	srv.ctx = SSL_CTX_new(TLS_server_method());
	ck_assert_ptr_nonnull(srv.ctx);
	SSL_CTX_set_min_proto_version(srv.ctx, TLS1_2_VERSION);
	if (max_proto != 0)
		SSL_CTX_set_max_proto_version(srv.ctx, max_proto);
	if (no_resumption) { /* every connection verifies the certificate again */
		SSL_CTX_set_options(srv.ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_session_cache_mode(srv.ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_num_tickets(srv.ctx, 0);
	}
	ck_assert_int_eq(SSL_CTX_use_certificate(srv.ctx, x), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey(srv.ctx, k), 1);
	EVP_PKEY_free(k);
	X509_free(x);
	srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(srv.lfd, 8), 0);
	socklen_t al = sizeof(a);
	ck_assert_int_eq(getsockname(srv.lfd, (struct sockaddr *)&a, &al), 0);
	srv.port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&srv.thread, NULL, serve, NULL), 0);
}

static void stop_server(void)
{
	shutdown(srv.lfd, SHUT_RDWR);
	pthread_join(srv.thread, NULL);
	close(srv.lfd);
	SSL_CTX_free(srv.ctx);
}

static struct fio_httpc *client(unsigned attempts, size_t answer_max, const char *ca)
{
	char url[64];
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/", srv.port);
	struct fio_httpc_opts o = {.base_url = url,
	                           .ca_file = ca,
	                           .attempts = attempts,
	                           .backoff_ms = 10,
	                           .answer_max = answer_max};
	struct fio_httpc *c = NULL;
	struct idp_error err = {0};
	ck_assert_msg(fio_httpc_new(&o, &c, &err) == IDP_OK, "%s", err.msg);
	return c;
}

static void setup(void)
{
	/* The script's server writes with OpenSSL's socket BIO (write(2)): a
	 * client that went away (an aborted upload, an answer over the cap)
	 * must give it EPIPE, not end the test process. */
	(void)signal(SIGPIPE, SIG_IGN);
	no_resumption = false;
	memset(manner, 0, sizeof(manner));
	snprintf(dir, sizeof(dir), "/tmp/idp-httpc-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
	snprintf(other_ca_path, sizeof(other_ca_path), "%s/other.pem", dir);
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	make_cert(other_ca_path, &k, &x);
	EVP_PKEY_free(k);
	X509_free(x);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_httpc_get_sends_bearer_and_keeps_answer)
{
	static const struct step s[] = {{200, NULL, "{\"ok\":true}", 0}};
	start_server(s, 1, 0);
	struct fio_httpc *c = client(1, 0, ca_path);
	struct fio_httpc_req r = {.method = "GET", .path = "/v1/ca", .bearer = "s3cret"};
	struct fio_httpc_resp resp;
	struct idp_error err = {0};
	ck_assert_msg(fio_httpc_do(c, &r, &resp, &err) == IDP_OK, "%s", err.msg);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_str_eq((const char *)resp.body, "{\"ok\":true}");
	ck_assert_uint_eq(resp.attempts, 1);
	ck_assert_ptr_nonnull(strstr(srv.seen[0].head, "GET /v1/ca HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strstr(srv.seen[0].head, "\r\nAuthorization: Bearer s3cret\r\n"));
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server();
}
END_TEST

/* 429 with Retry-After is tried again no sooner than asked; an API error
 * comes back as its code and message and is not retried. */
START_TEST(test_httpc_retry_after_then_api_error)
{
	static const struct step s[] = {
	        {429, "Retry-After: 1\r\n",
	         "{\"error\":{\"code\":\"throttled\",\"message\":\"slow down\"}}", 0},
	        {403, NULL, "{\"error\":{\"code\":\"forbidden\",\"message\":\"device revoked\"}}", 0},
	};
	start_server(s, 2, 0);
	struct fio_httpc *c = client(5, 0, ca_path);
	static const uint8_t body[] = "{}";
	struct fio_httpc_req r = {.method = "POST",
	                          .path = "/v1/token/renew",
	                          .content_type = "application/json",
	                          .body = body,
	                          .body_len = 2};
	struct fio_httpc_resp resp;
	struct idp_error err = {0};
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_DENIED);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_uint_eq(resp.attempts, 2);
	ck_assert_int_ge(t1.tv_sec - t0.tv_sec + (t1.tv_nsec >= t0.tv_nsec ? 0 : -1), 1);
	ck_assert(resp.has_api_error);
	ck_assert_int_eq(resp.api.code, FMT_API_ERR_FORBIDDEN);
	ck_assert_str_eq(err.msg, "server refused (403 forbidden): device revoked");
	ck_assert_ptr_nonnull(strstr(srv.seen[1].head, "Content-Type: application/json\r\n"));
	ck_assert_str_eq(srv.seen[1].body, "{}");
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server();
}
END_TEST

/* A Retry-After over the client's retry_after_max (a suspended site says
 * 300 s) ends the request with that answer after one attempt, and
 * resp.retry_after says how long the server asked for (one within it is
 * waited: test_httpc_retry_after_then_api_error). */
START_TEST(test_httpc_long_retry_after_returned)
{
	static const struct step s[] = {
	        {503, "Retry-After: 300\r\n",
	         "{\"error\":{\"code\":\"suspended\",\"message\":\"provisioning suspended\"}}", 0},
	};
	start_server(s, 1, 0);
	char url[64];
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/", srv.port);
	const struct fio_httpc_opts o = {.base_url = url, .ca_file = ca_path, .attempts = 3,
	                                 .backoff_ms = 10, .retry_after_max = 30};
	struct fio_httpc *c = NULL;
	struct idp_error err = {0};
	ck_assert_msg(fio_httpc_new(&o, &c, &err) == IDP_OK, "%s", err.msg);
	struct fio_httpc_req r = {.method = "GET", .path = "/v1/health", .idempotent = true};
	struct fio_httpc_resp resp;
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_AGAIN);
	ck_assert_uint_eq(resp.attempts, 1);
	ck_assert_uint_eq(srv.n_seen, 1);
	ck_assert_int_eq(resp.retry_after, 300);
	ck_assert(resp.has_api_error);
	ck_assert_str_eq(err.msg, "server refused (503 suspended): provisioning suspended");
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server();
}
END_TEST

/* A request that may have reached the server is sent once unless it is
 * safe to repeat. */
START_TEST(test_httpc_retries_only_when_safe)
{
	/* Each 0 step reads the request, then hangs up without an answer. */
	static const struct step s[] = {{0, NULL, NULL, 0}, {0, NULL, NULL, 0}, {200, NULL, "{}", 0}};
	start_server(s, 3, 0);
	struct fio_httpc *c = client(3, 0, ca_path);
	static const uint8_t body[] = "x";
	struct fio_httpc_req r = {.method = "POST", .path = "/v1/token/exchange", .body = body,
	                          .body_len = 1};
	struct fio_httpc_resp resp;
	struct idp_error err = {0};
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_IO);
	ck_assert_uint_eq(resp.attempts, 1);
	ck_assert_uint_eq(srv.n_seen, 1);
	fio_httpc_resp_free(&resp);
	r.idempotent = true;
	ck_assert_msg(fio_httpc_do(c, &r, &resp, &err) == IDP_OK, "%s", err.msg);
	ck_assert_uint_eq(resp.attempts, 2);
	ck_assert_uint_eq(srv.n_seen, 3);
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server();
}
END_TEST

/* The CA file is read once per client, not per connection
 * (CURLOPT_CA_CACHE_TIMEOUT): the client's second connection is verified
 * with the store it loaded first, even after the file was replaced by
 * another CA; a new client reads the file again and refuses the server
 * the file no longer names. */
START_TEST(test_httpc_ca_read_once_per_client)
{
	static const struct step s[] = {{200, "Connection: close\r\n", "{}", 0},
	                                {200, "Connection: close\r\n", "{}", 0},
	                                {200, NULL, "{}", 0}};
	no_resumption = true; /* a resumed session would skip the certificate */
	start_server(s, 3, 0);
	struct fio_httpc *c = client(1, 0, ca_path);
	struct fio_httpc_req r = {.method = "GET", .path = "/v1/health"};
	struct fio_httpc_resp resp;
	struct idp_error err = {0};
	ck_assert_msg(fio_httpc_do(c, &r, &resp, &err) == IDP_OK, "%s", err.msg);
	fio_httpc_resp_free(&resp);
	ck_assert_uint_eq(srv.handshakes, 1);
	ck_assert_int_eq(rename(other_ca_path, ca_path), 0);
	ck_assert_msg(fio_httpc_do(c, &r, &resp, &err) == IDP_OK, "%s", err.msg);
	fio_httpc_resp_free(&resp);
	ck_assert_uint_eq(srv.handshakes, 2); /* a new connection, and no new read */
	struct fio_httpc *fresh = client(1, 0, ca_path);
	ck_assert_int_eq(fio_httpc_do(fresh, &r, &resp, &err), IDP_E_VERIFY);
	ck_assert_ptr_nonnull(strstr(err.msg, "server not trusted"));
	fio_httpc_resp_free(&resp);
	fio_httpc_free(fresh);
	fio_httpc_free(c);
	stop_server();
}
END_TEST

START_TEST(test_httpc_refused_connection_retried_then_reported)
{
	static const struct step s[] = {{200, NULL, "{}", 0}};
	start_server(s, 1, 0);
	unsigned port = srv.port;
	struct fio_httpc *c = client(3, 0, ca_path);
	struct fio_httpc_req r = {.method = "GET", .path = "/v1/ca"};
	struct fio_httpc_resp resp;
	struct idp_error err = {0};
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_OK);
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server(); /* nobody listens on port now */
	char url[64];
	snprintf(url, sizeof(url), "https://127.0.0.1:%u", port);
	struct fio_httpc_opts o = {.base_url = url, .ca_file = ca_path, .attempts = 3,
	                           .backoff_ms = 5};
	ck_assert_int_eq(fio_httpc_new(&o, &c, NULL), IDP_OK);
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_IO);
	ck_assert_uint_eq(resp.attempts, 3);
	ck_assert_ptr_nonnull(strstr(err.msg, url));
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
}
END_TEST

START_TEST(test_httpc_answer_cap_and_unknown_ca)
{
	/* The second step keeps the server accepting for the second client. */
	static const struct step s[] = {{200, NULL, "0123456789abcdef", 100}, {200, NULL, "{}", 0}};
	start_server(s, 2, 0);
	struct fio_httpc *c = client(1, 1000, ca_path);
	struct fio_httpc_req r = {.method = "GET", .path = "/big"};
	struct fio_httpc_resp resp;
	struct idp_error err = {0};
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "answer over 1000 bytes"));
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	/* The same server checked against another CA: refused, never retried. */
	c = client(3, 0, other_ca_path);
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_VERIFY);
	ck_assert_uint_eq(resp.attempts, 1);
	ck_assert_ptr_nonnull(strstr(err.msg, "server not trusted"));
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server();
}
END_TEST

START_TEST(test_httpc_bad_options_and_headers)
{
	struct fio_httpc *c = NULL;
	struct idp_error err = {0};
	struct fio_httpc_opts o = {.base_url = "http://127.0.0.1:1", .ca_file = "x"};
	ck_assert_int_eq(fio_httpc_new(&o, &c, &err), IDP_E_ARG);
	ck_assert_ptr_null(c);
	o.base_url = "https://127.0.0.1:1";
	o.ca_file = NULL;
	ck_assert_int_eq(fio_httpc_new(&o, &c, &err), IDP_E_ARG);
	o.ca_file = "x";
	o.client_cert = "c.pem";
	ck_assert_int_eq(fio_httpc_new(&o, &c, &err), IDP_E_ARG);
	o.client_cert = NULL;
	ck_assert_int_eq(fio_httpc_new(&o, &c, &err), IDP_OK);
	struct fio_httpc_req r = {.method = "GET", .path = "/x", .bearer = "a\r\nX-Evil: 1"};
	struct fio_httpc_resp resp;
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_ARG);
	ck_assert_str_eq(err.msg, "https client: the credential is malformed or too long");
	static const char *const hs[] = {"X-A: 1\nX-B: 2", NULL};
	r.bearer = NULL;
	r.headers = hs;
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_ARG);
	fio_httpc_free(c);
}
END_TEST

struct bound {
	uint8_t seen[FIO_TLS_EXPORTER_LEN];
	int calls;
};

/* The body is the hex of the exporter the client was given. */
static enum idp_err make_body(void *arg, const uint8_t exporter[static FIO_TLS_EXPORTER_LEN],
                              uint8_t *out, size_t len, struct idp_error *err)
{
	(void)err;
	struct bound *b = arg;
	ck_assert_uint_eq(len, 2 * FIO_TLS_EXPORTER_LEN);
	memcpy(b->seen, exporter, FIO_TLS_EXPORTER_LEN);
	b->calls++;
	char hex[2 * FIO_TLS_EXPORTER_LEN + 1];
	for (size_t i = 0; i < FIO_TLS_EXPORTER_LEN; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", exporter[i]);
	memcpy(out, hex, len);
	return IDP_OK;
}

/* Both ends compute the same RFC 9266 value, with an empty context; under
 * TLS 1.2 that differs from the value without a context. */
START_TEST(test_httpc_body_bound_to_live_exporter)
{
	static const int protos[] = {0, TLS1_2_VERSION};
	for (size_t p = 0; p < 2; p++) {
		static const struct step s[] = {{200, NULL, "{}", 0}};
		start_server(s, 1, protos[p]);
		struct fio_httpc *c = client(1, 0, ca_path);
		struct bound b = {.calls = 0};
		struct fio_httpc_req r = {.method = "POST",
		                          .path = "/v1/provision",
		                          .body_fn = make_body,
		                          .body_arg = &b,
		                          .body_len = 2 * FIO_TLS_EXPORTER_LEN};
		struct fio_httpc_resp resp;
		struct idp_error err = {0};
		ck_assert_msg(fio_httpc_do(c, &r, &resp, &err) == IDP_OK, "%s", err.msg);
		ck_assert_int_eq(b.calls, 1);
		ck_assert_mem_eq(b.seen, srv.seen[0].exporter, FIO_TLS_EXPORTER_LEN);
		char hex[2 * FIO_TLS_EXPORTER_LEN + 1];
		for (size_t i = 0; i < FIO_TLS_EXPORTER_LEN; i++)
			(void)snprintf(hex + 2 * i, 3, "%02x", srv.seen[0].exporter[i]);
		ck_assert_str_eq(srv.seen[0].body, hex);
		if (protos[p] == TLS1_2_VERSION)
			ck_assert(memcmp(srv.seen[0].exporter, srv.seen[0].no_context,
			                 FIO_TLS_EXPORTER_LEN) != 0);
		fio_httpc_resp_free(&resp);
		fio_httpc_free(c);
		stop_server();
	}
}
END_TEST

/* fio_httpc_disconnect closes the connection and keeps the TLS session:
 * the next request resumes it (TLS 1.3 ticket) on a new connection whose
 * exporter differs from the first's and is what the body is made from; a
 * server that refuses resumption gets a full handshake, reported so. */
START_TEST(test_httpc_resumes_after_disconnect)
{
	for (int refuse = 0; refuse < 2; refuse++) {
		no_resumption = refuse == 1;
		static const struct step s[] = {{200, NULL, "{}", 0}, {200, NULL, "{}", 0}};
		start_server(s, 2, 0);
		struct fio_httpc *c = client(1, 0, ca_path);
		struct bound b[2] = {{.calls = 0}, {.calls = 0}};
		struct fio_httpc_resp resp[2];
		struct idp_error err = {0};
		for (int i = 0; i < 2; i++) {
			struct fio_httpc_req r = {.method = "POST",
			                          .path = "/v1/token/renew",
			                          .body_fn = make_body,
			                          .body_arg = &b[i],
			                          .body_len = 2 * FIO_TLS_EXPORTER_LEN};
			ck_assert_msg(fio_httpc_do(c, &r, &resp[i], &err) == IDP_OK, "%s", err.msg);
			ck_assert_int_eq(b[i].calls, 1);
			ck_assert_mem_eq(b[i].seen, srv.seen[i].exporter, FIO_TLS_EXPORTER_LEN);
			if (i == 0)
				ck_assert_int_eq(fio_httpc_disconnect(c, &err), IDP_OK);
		}
		ck_assert_uint_eq(srv.handshakes, 2); /* the connection was closed */
		ck_assert(!resp[0].tls_resumed);
		ck_assert_msg(resp[1].tls_resumed == !refuse, "resumed %d, server refuses %d",
		              resp[1].tls_resumed, refuse);
		ck_assert_mem_ne(srv.seen[0].exporter, srv.seen[1].exporter, FIO_TLS_EXPORTER_LEN);
		fio_httpc_resp_free(&resp[0]);
		fio_httpc_resp_free(&resp[1]);
		fio_httpc_free(c);
		stop_server();
	}
}
END_TEST

/* What a file body's check saw. */
struct pieces {
	unsigned starts;   /* pieces at offset 0: attempts */
	uint64_t bytes;    /* bytes seen since the last start */
	bool last_seen;
	const char *shrink; /* a file to cut to 1000 bytes at the first piece */
	bool refuse_last;   /* refuse the piece that ends the file */
};

static enum idp_err see_piece(void *arg, uint64_t offset, const uint8_t *buf, size_t len,
                              bool last, struct idp_error *err)
{
	struct pieces *p = arg;
	(void)buf;
	if (offset == 0) {
		p->starts++;
		p->bytes = 0;
	}
	ck_assert_uint_eq(offset, p->bytes);
	p->bytes += len;
	p->last_seen = last;
	if (p->shrink != NULL && offset == 0)
		ck_assert_int_eq(truncate(p->shrink, 1000), 0);
	if (last && p->refuse_last)
		return idp_error_set(err, IDP_E_FORMAT, "line 3: torn");
	return IDP_OK;
}

/* A file of n bytes (a repeated pattern) at dir/name; its path in path. */
static void make_file(const char *name, size_t n, char path[static 160])
{
	snprintf(path, 160, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_ne(fputc('a' + (int)(i % 26), f), EOF);
	ck_assert_int_eq(fclose(f), 0);
}

/* A body sent from a file: whole, with its length; after a connection lost
 * during the request, the idempotent request sends the file again from its
 * start (the check sees a new start) and the server gets it whole. */
START_TEST(test_httpc_file_body_sent_again_from_start)
{
	static const struct step s[] = {{0, NULL, NULL, 0}, {201, NULL, "{}", 0}};
	start_server(s, 2, 0);
	char path[160];
	make_file("m.manifest", 700, path);
	struct fio_httpc *c = client(3, 0, ca_path);
	struct pieces p = {0};
	const struct fio_httpc_file f = {path, see_piece, &p};
	struct fio_httpc_req r = {.method = "POST", .path = "/v1/batches",
	                          .content_type = "application/vnd.idprov.manifest",
	                          .idempotent = true};
	struct fio_httpc_resp resp;
	struct idp_error err = {0};
	ck_assert_msg(fio_httpc_do_file(c, &r, &f, &resp, &err) == IDP_OK, "%s", err.msg);
	ck_assert_int_eq(resp.status, 201);
	ck_assert_uint_eq(resp.attempts, 2);
	ck_assert(!resp.local);
	ck_assert_uint_eq(p.starts, 2);
	ck_assert_uint_eq(p.bytes, 700);
	ck_assert(p.last_seen);
	ck_assert_uint_eq(srv.n_seen, 2);
	for (size_t i = 0; i < 2; i++) {
		ck_assert_ptr_nonnull(strstr(srv.seen[i].head, "\r\nContent-Length: 700\r\n"));
		ck_assert_uint_eq(srv.seen[i].body_len, 700);
		ck_assert_int_eq(srv.seen[i].body[0], 'a');
		ck_assert_int_eq(srv.seen[i].body[699], 'a' + 699 % 26);
	}
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server();
}
END_TEST

/* A missing file or a directory: refused before anything is sent. A file
 * that shrinks during the upload, or whose check refuses its last piece:
 * the transfer is aborted before the body is whole (the server never reads
 * a complete request), not retried, and the error names the file. */
START_TEST(test_httpc_file_body_refused_or_cut)
{
	static const struct step s[] = {{201, NULL, "{}", 0}};
	start_server(s, 1, 0);
	struct fio_httpc *c = client(3, 0, ca_path);
	struct pieces p = {0};
	char path[160];
	snprintf(path, sizeof(path), "%s/none.manifest", dir);
	struct fio_httpc_file f = {path, see_piece, &p};
	struct fio_httpc_req r = {.method = "POST", .path = "/v1/batches", .idempotent = true};
	struct fio_httpc_resp resp;
	struct idp_error err = {0};
	ck_assert_int_eq(fio_httpc_do_file(c, &r, &f, &resp, &err), IDP_E_NOTFOUND);
	ck_assert(resp.local);
	ck_assert_ptr_nonnull(strstr(err.msg, path));
	fio_httpc_resp_free(&resp);
	f.path = dir;
	ck_assert_int_eq(fio_httpc_do_file(c, &r, &f, &resp, &err), IDP_E_ARG);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
	fio_httpc_resp_free(&resp);
	ck_assert_uint_eq(srv.handshakes, 0);

	make_file("big.manifest", 300000, path);
	f.path = path;
	p.shrink = path;
	ck_assert_int_eq(fio_httpc_do_file(c, &r, &f, &resp, &err), IDP_E_FORMAT);
	ck_assert(resp.local);
	ck_assert_uint_eq(resp.attempts, 1);
	ck_assert_uint_eq(p.starts, 1);
	ck_assert_msg(strstr(err.msg, "it had 300000 when the upload began") != NULL, "%s", err.msg);
	ck_assert_ptr_nonnull(strstr(err.msg, path));
	fio_httpc_resp_free(&resp);

	make_file("torn.manifest", 200000, path);
	p = (struct pieces){.refuse_last = true};
	ck_assert_int_eq(fio_httpc_do_file(c, &r, &f, &resp, &err), IDP_E_FORMAT);
	ck_assert(resp.local);
	ck_assert_uint_eq(resp.attempts, 1);
	ck_assert_uint_eq(p.starts, 1);
	ck_assert(p.last_seen);
	char want[200];
	snprintf(want, sizeof(want), "%s: line 3: torn", path);
	ck_assert_str_eq(err.msg, want);
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server();
	/* No request reached the server whole. */
	ck_assert_uint_eq(srv.n_seen, 0);
}
END_TEST

/* A file upload has no bound on its whole time: with a 1 s timeout, an
 * answer that comes 2 s after the body was sent is waited for (the bound
 * grows with the file: 1 s plus 1 s per FIO_HTTPC_UPLOAD_ANSWER_RATE bytes,
 * 5 s here); an answer that never comes ends the attempt with a timeout
 * naming it, which an idempotent upload tries again. */
START_TEST(test_httpc_file_upload_bounded_by_progress)
{
	static const struct step s[] = {{201, NULL, "{}", 0}, {0, NULL, NULL, 0}, {0, NULL, NULL, 0}};
	manner[0].delay_ms = 2000;
	manner[1].hold = manner[2].hold = true;
	start_server(s, 3, 0);
	char url[64];
	snprintf(url, sizeof(url), "https://127.0.0.1:%u", srv.port);
	struct fio_httpc_opts o = {.base_url = url, .ca_file = ca_path, .timeout_s = 1,
	                           .attempts = 2, .backoff_ms = 10};
	struct fio_httpc *c = NULL;
	struct idp_error err = {0};
	ck_assert_msg(fio_httpc_new(&o, &c, &err) == IDP_OK, "%s", err.msg);
	char path[160];
	make_file("slow.manifest", 4 * FIO_HTTPC_UPLOAD_ANSWER_RATE, path);
	const struct fio_httpc_file f = {path, NULL, NULL};
	struct fio_httpc_req r = {.method = "POST", .path = "/v1/batches", .idempotent = true};
	struct fio_httpc_resp resp;
	ck_assert_msg(fio_httpc_do_file(c, &r, &f, &resp, &err) == IDP_OK, "%s", err.msg);
	ck_assert_int_eq(resp.status, 201);
	ck_assert_uint_eq(resp.attempts, 1);
	fio_httpc_resp_free(&resp);

	make_file("quiet.manifest", 700, path);
	ck_assert_int_eq(fio_httpc_do_file(c, &r, &f, &resp, &err), IDP_E_TIMEOUT);
	ck_assert_msg(strstr(err.msg, ": no answer for 1 s") != NULL, "%s", err.msg);
	ck_assert_uint_eq(resp.attempts, 2);
	ck_assert(!resp.local);
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server();
	ck_assert_uint_eq(srv.n_seen, 3);
	ck_assert_uint_eq(srv.seen[0].body_len, 4 * FIO_HTTPC_UPLOAD_ANSWER_RATE);
	ck_assert_uint_eq(srv.seen[2].body_len, 700);
}
END_TEST

/* What a sink was given (see_answer). */
struct answer_seen {
	unsigned starts;   /* pieces at offset 0 */
	uint64_t bytes;    /* since the last start */
	bool in_order;     /* every byte the pattern's at its offset */
	uint64_t refuse_past; /* >0: refuse a piece that goes past this */
};

/* The sink of the tests: the answers are "0123456789" repeated. */
static enum idp_err see_answer(void *arg, uint64_t offset, const uint8_t *buf, size_t len,
                               struct idp_error *err)
{
	struct answer_seen *a = arg;
	if (offset == 0) {
		a->starts++;
		a->bytes = 0;
		a->in_order = true;
	}
	ck_assert_uint_eq(offset, a->bytes);
	for (size_t i = 0; i < len; i++)
		a->in_order = a->in_order && buf[i] == '0' + (offset + i) % 10;
	a->bytes += len;
	if (a->refuse_past > 0 && a->bytes > a->refuse_past)
		return idp_error_set(err, IDP_E_FORMAT, "longer than wanted");
	return IDP_OK;
}

/* A 2xx answer goes to the sink as it arrives, not into resp.body and not
 * under answer_max (4 KiB here, the answer 1 MB); cut mid-body, the
 * idempotent request is tried again and the sink starts over at offset 0,
 * ending with the whole second answer only. An error answer is kept as
 * without a sink (the sink never sees it); a whole empty 2xx answer after a
 * cut one still starts the sink over (an empty piece at 0). */
START_TEST(test_httpc_answer_to_sink_started_over)
{
	static const struct step s[] = {
	        {200, NULL, "0123456789", 100000},
	        {200, NULL, "0123456789", 100000},
	        {404, NULL, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such\"}}", 0},
	        {200, NULL, "0123456789", 1000},
	        {200, NULL, NULL, 0},
	};
	manner[0].cut_at = 300000;
	manner[3].cut_at = 5000;
	start_server(s, 5, 0);
	struct fio_httpc *c = client(3, 4096, ca_path);
	struct answer_seen a = {0};
	struct fio_httpc_req r = {.method = "POST", .path = "/v1/admin/backup", .idempotent = true,
	                          .sink = see_answer, .sink_arg = &a};
	struct fio_httpc_resp resp;
	struct idp_error err = {0};
	ck_assert_msg(fio_httpc_do(c, &r, &resp, &err) == IDP_OK, "%s", err.msg);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_uint_eq(resp.attempts, 2);
	ck_assert_ptr_null(resp.body);
	ck_assert_uint_eq(resp.len, 0);
	ck_assert_uint_eq(a.starts, 2);
	ck_assert_uint_eq(a.bytes, 1000000);
	ck_assert(a.in_order);
	fio_httpc_resp_free(&resp);

	a = (struct answer_seen){0};
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_NOTFOUND);
	ck_assert(resp.has_api_error);
	ck_assert_str_eq(err.msg, "server refused (404 not_found): no such");
	ck_assert_uint_eq(a.starts, 0);
	fio_httpc_resp_free(&resp);

	ck_assert_msg(fio_httpc_do(c, &r, &resp, &err) == IDP_OK, "%s", err.msg);
	ck_assert_uint_eq(resp.attempts, 2);
	ck_assert_uint_eq(a.starts, 2);
	ck_assert_uint_eq(a.bytes, 0);
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server();
	ck_assert_uint_eq(srv.n_seen, 5);
}
END_TEST

/* A request that is not idempotent, cut mid-answer, is not tried again and
 * fails; a sink that refuses a piece aborts the transfer, which is not tried
 * again: its error comes back and resp.local says it was refused here. */
START_TEST(test_httpc_answer_to_sink_cut_or_refused)
{
	static const struct step s[] = {
	        {200, NULL, "0123456789", 100000},
	        {200, NULL, "0123456789", 3000},
	};
	manner[0].cut_at = 300000;
	manner[1].may_leave = true; /* the refusing client closes while it is sent */
	start_server(s, 2, 0);
	struct fio_httpc *c = client(3, 0, ca_path);
	struct answer_seen a = {0};
	struct fio_httpc_req r = {.method = "POST", .path = "/v1/admin/backup", .sink = see_answer,
	                          .sink_arg = &a};
	struct fio_httpc_resp resp;
	struct idp_error err = {0};
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_IO);
	ck_assert_uint_eq(resp.attempts, 1);
	ck_assert(!resp.local);
	ck_assert_uint_eq(a.starts, 1);
	ck_assert_uint_eq(a.bytes, 300000);
	fio_httpc_resp_free(&resp);

	a = (struct answer_seen){.refuse_past = 20000};
	r.idempotent = true;
	ck_assert_int_eq(fio_httpc_do(c, &r, &resp, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "longer than wanted");
	ck_assert(resp.local);
	ck_assert_uint_eq(resp.attempts, 1);
	ck_assert_uint_eq(a.starts, 1);
	fio_httpc_resp_free(&resp);
	fio_httpc_free(c);
	stop_server();
	ck_assert_uint_eq(srv.n_seen, 2);
}
END_TEST

Suite *idp_test_suite(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	Suite *s = suite_create("httpc");
	TCase *tc = tcase_create("tls");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_httpc_get_sends_bearer_and_keeps_answer);
	tcase_add_test(tc, test_httpc_retry_after_then_api_error);
	tcase_add_test(tc, test_httpc_retries_only_when_safe);
	tcase_add_test(tc, test_httpc_long_retry_after_returned);
	tcase_add_test(tc, test_httpc_refused_connection_retried_then_reported);
	tcase_add_test(tc, test_httpc_ca_read_once_per_client);
	tcase_add_test(tc, test_httpc_answer_cap_and_unknown_ca);
	tcase_add_test(tc, test_httpc_bad_options_and_headers);
	tcase_add_test(tc, test_httpc_body_bound_to_live_exporter);
	tcase_add_test(tc, test_httpc_resumes_after_disconnect);
	tcase_add_test(tc, test_httpc_file_body_sent_again_from_start);
	tcase_add_test(tc, test_httpc_file_body_refused_or_cut);
	tcase_add_test(tc, test_httpc_file_upload_bounded_by_progress);
	tcase_add_test(tc, test_httpc_answer_to_sink_started_over);
	tcase_add_test(tc, test_httpc_answer_to_sink_cut_or_refused);
	suite_add_tcase(s, tc);
	return s;
}
