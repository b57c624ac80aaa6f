/*
 * idp_attack.c - a hostile device client for tests/stress/attack.sh: it
 * speaks the provisioning API (formats/api.md) to idprovd on 127.0.0.1 over
 * real TLS, signs proofs over the exporter of the connection it chooses,
 * and breaks them on purpose. Loopback only; it does not verify the server
 * (it attacks it, it does not trust it). Every wait is bounded (10 s of
 * silence, 60 s for a whole slow-client run).
 *
 * Each answer is printed as one line "answer STATUS CODE" (CODE: the error
 * code, or the decision: approved, pending, rejected; "-" when the body is
 * not an API answer). Options before the command: -s ADDR binds the client
 * to that loopback source address (floods from one address).
 *
 *   idp_attack key FILE p256|ed25519
 *       Writes a new private key (PEM, 0600).
 *   idp_attack send PORT KEY PURPOSE ID MAC MODE [TOKEN-IN [TOKEN-OUT]]
 *       One request of PURPOSE (provision, exchange, renew) for device ID
 *       with MAC, signed by the key in file KEY, carrying the token in file
 *       TOKEN-IN (exchange, renew; "-": none). An approved answer's token is
 *       written to TOKEN-OUT. MODE says how it is broken:
 *         good          signed over this connection's exporter
 *         other-key     signed by a fresh key; the body names KEY's key
 *         sig-flip      one signature bit flipped
 *         claim-flip    the MAC changed after signing
 *         stale, future ts 1000 s in the past / in the future
 *         replay-conn   a good request, then the same bytes on that connection
 *         replay-new    a good request, then the same bytes on a new connection
 *         replay-resumed a good request, then the same bytes on a new
 *                       connection that resumes the first one's TLS session
 *                       (its ticket); prints "resumed 0|1" before the answer
 *         relay         signed over the exporter of a TLS relay in between
 *                       (a thread that terminates TLS with its own
 *                       certificate and forwards the bytes on its own
 *                       connection to the server)
 *         nonce-unknown signed with a nonce the server never issued
 *         nonce-reuse   a good request with a server nonce, then a new proof
 *                       with the same nonce on a new connection
 *       The two-step modes (replay-*, nonce-reuse) wait for a line on stdin
 *       between their requests when IDP_ATTACK_PAUSE is set.
 *         purpose-swap  signed for PURPOSE, sent to the other token endpoint
 *                       (provision: to /v1/token/exchange)
 *   idp_attack forge STATE-DIR TOKEN-IN HOW TOKEN-OUT
 *       A forgery of the token in TOKEN-IN (its claims kept): alg-none (the
 *       header says "none", no signature), other-key (signed by a key of
 *       the attacker under the server's kid), and, signed by the server's own
 *       key (STATE-DIR/token.key, which a real attacker does not have: each
 *       proves the claim check behind the signature), wrong-kid, expired,
 *       aud (another audience), sub (another device).
 *   idp_attack flood PORT N PATH
 *       N "POST PATH" with an empty body on one keep-alive connection;
 *       prints "flood STATUS=COUNT ..." and "retry_after=N code=CODE" of
 *       the last refusal.
 *   idp_attack loris PORT N
 *       N connections that each send a request head one byte every 200 ms
 *       and never finish it; prints "loris closed=K sent=BYTES" once the
 *       server has closed all of them (or 60 s passed: closed < N).
 *   idp_attack stall PORT
 *       Sends stdin (a head without its end, or a body shorter than its
 *       Content-Length), then reads until the server closes (at most 60 s);
 *       prints "stall closed=0|1 status=CODE" (0: no answer).
 *   idp_attack hold PORT N
 *       N TLS connections opened one after another (handshake done), then
 *       silent; prints "held N" when all are open and "closed K" when the
 *       server has closed them (at most 60 s).
 *   idp_attack pace PORT RATE
 *       Sends stdin (one request: its head at once, then its body at a
 *       steady RATE bytes a second, a slice every 100 ms) until the body is
 *       sent or the server answers or closes, then reads until the server
 *       closes (at most 120 s in all); prints "pace sent=BODY-BYTES
 *       closed=0|1 status=CODE" (0: no answer).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "formats/api.h"
#include "formats/b64.h"
#include "formats/error.h"
#include "formats/file.h"
#include "formats/io/tls.h"
#include "formats/keys.h"
#include "formats/mac.h"
#include "formats/pop.h"
#include "formats/token.h"

#define SILENCE_S  10
#define LORIS_MAX  64u
#define ANSWER_MAX (4 * FMT_API_BODY_MAX)

static SSL_CTX *cctx;
static const char *src_addr = "127.0.0.1";
static unsigned port;

static void die(const char *what, const struct idp_error *err)
{
	fprintf(stderr, "idp_attack: %s%s%s\n", what, err != NULL ? ": " : "",
	        err != NULL ? err->msg : "");
	exit(2);
}

/* A TCP connection from src_addr to 127.0.0.1:port (blocking, 10 s bounds). */
static int tcp_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct sockaddr_in s = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {.tv_sec = SILENCE_S, .tv_usec = 0};
	int one = 1;
	if (fd < 0 || inet_pton(AF_INET, src_addr, &s.sin_addr) != 1 ||
	    bind(fd, (const struct sockaddr *)&s, sizeof(s)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    connect(fd, (const struct sockaddr *)&a, sizeof(a)) != 0) {
		perror("idp_attack: connect");
		if (fd >= 0)
			(void)close(fd);
		return -1;
	}
	return fd;
}

/* A TLS connection to the server, handshake done. */
static SSL *tls_connect(void)
{
	int fd = tcp_connect();
	if (fd < 0)
		return NULL;
	SSL *ssl = SSL_new(cctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
		ERR_print_errors_fp(stderr);
		SSL_free(ssl);
		(void)close(fd);
		return NULL;
	}
	return ssl;
}

/* A TLS connection resuming sess (a session received on an earlier one). */
static SSL *tls_resume(SSL_SESSION *sess)
{
	int fd = tcp_connect();
	if (fd < 0)
		return NULL;
	SSL *ssl = SSL_new(cctx);
	if (ssl == NULL || SSL_set_session(ssl, sess) != 1 || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_connect(ssl) != 1) {
		ERR_print_errors_fp(stderr);
		SSL_free(ssl);
		(void)close(fd);
		return NULL;
	}
	return ssl;
}

static void tls_close(SSL *ssl)
{
	if (ssl == NULL)
		return;
	int fd = SSL_get_fd(ssl);
	SSL_free(ssl);
	(void)close(fd);
}

static bool write_all(SSL *ssl, const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		int w = SSL_write(ssl, buf + off, (int)(len - off));
		if (w <= 0) {
			ERR_clear_error();
			return false;
		}
		off += (size_t)w;
	}
	return true;
}

/* One HTTP message read from ssl: the head up to its blank line and a body
 * of its Content-Length. */
struct msg {
	char head[8192];
	size_t head_len;
	char body[ANSWER_MAX + 1];
	size_t body_len;
	char start[256]; /* the request or status line */
	long length;     /* Content-Length, -1: none */
	long retry_after;
	int status;
};

/* Read bytes until the head is whole, then the body. False when the peer
 * closed or went silent first. extra/extra_len: bytes read past a previous
 * message (none here: one request at a time). */
static bool read_msg(SSL *ssl, struct msg *m)
{
	memset(m, 0, sizeof(*m));
	m->length = -1;
	char *end = NULL;
	while (end == NULL) {
		if (m->head_len >= sizeof(m->head) - 1)
			return false;
		int r = SSL_read(ssl, m->head + m->head_len,
		                 (int)(sizeof(m->head) - 1 - m->head_len));
		if (r <= 0) {
			ERR_clear_error();
			return false;
		}
		m->head_len += (size_t)r;
		m->head[m->head_len] = '\0';
		end = strstr(m->head, "\r\n\r\n");
	}
	size_t hl = (size_t)(end - m->head) + 4;
	size_t over = m->head_len - hl;
	const char *eol = strstr(m->head, "\r\n");
	(void)snprintf(m->start, sizeof(m->start), "%.*s", (int)(eol - m->head), m->head);
	if (strncmp(m->start, "HTTP/1.", 7) == 0 && strlen(m->start) >= 12)
		m->status = (int)strtol(m->start + 9, NULL, 10);
	for (const char *l = eol + 2; l < end; l = strstr(l, "\r\n") + 2) {
		if (strncasecmp(l, "Content-Length:", 15) == 0)
			m->length = strtol(l + 15, NULL, 10);
		else if (strncasecmp(l, "Retry-After:", 12) == 0)
			m->retry_after = strtol(l + 12, NULL, 10);
	}
	size_t want = m->length > 0 ? (size_t)m->length : 0;
	if (want > ANSWER_MAX)
		return false;
	memcpy(m->body, m->head + hl, over < want ? over : want);
	m->body_len = over < want ? over : want;
	m->head_len = hl;
	m->head[hl] = '\0';
	while (m->body_len < want) {
		int r = SSL_read(ssl, m->body + m->body_len, (int)(want - m->body_len));
		if (r <= 0) {
			ERR_clear_error();
			return false;
		}
		m->body_len += (size_t)r;
	}
	m->body[m->body_len] = '\0';
	return true;
}

static bool post(SSL *ssl, const char *path, const char *body, size_t len)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
	                 "POST %s HTTP/1.1\r\nHost: idprovd\r\nContent-Type: application/json\r\n"
	                 "Content-Length: %zu\r\n\r\n",
	                 path, len);
	return n > 0 && (size_t)n < sizeof(head) && write_all(ssl, head, (size_t)n) &&
	       write_all(ssl, body, len);
}

/* Print the answer line of m; an approved token goes to out (when set). */
static void print_answer(const struct msg *m, const char *token_out)
{
	struct fmt_api_answer a;
	const char *code = "-";
	if (fmt_api_answer_parse((const uint8_t *)m->body, m->body_len, &a, NULL) == IDP_OK) {
		if (a.is_error)
			code = fmt_api_err_code_name(a.error.code);
		else if (a.status.status == FMT_API_APPROVED)
			code = "approved";
		else if (a.status.status == FMT_API_PENDING)
			code = "pending";
		else
			code = "rejected";
		if (!a.is_error && a.status.status == FMT_API_APPROVED && token_out != NULL) {
			struct idp_error err = {0};
			if (fmt_file_write_atomic(token_out, (const uint8_t *)a.status.token,
			                          strnlen(a.status.token, sizeof(a.status.token)),
			                          0600, &err) != IDP_OK)
				die("token-out", &err);
		}
	}
	printf("answer %d %s\n", m->status, code);
	(void)fflush(stdout);
	fmt_api_answer_wipe(&a);
}

static char *read_text(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		die(path, NULL);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	(void)fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	char *s = malloc(n + 1);
	if (s == NULL)
		die("out of memory", NULL);
	memcpy(s, buf, n + 1);
	*len = n;
	return s;
}

static struct fmt_key *load_key(const char *path)
{
	size_t n = 0;
	char *pem = read_text(path, &n);
	struct fmt_key *k = NULL;
	struct idp_error err = {0};
	if (fmt_key_parse_private_pem((const uint8_t *)pem, n, &k, &err) != IDP_OK)
		die(path, &err);
	OPENSSL_cleanse(pem, n);
	free(pem);
	return k;
}

/* ---------------------------------------------------------------- relay */

/* A relay that terminates the device's TLS with its own certificate: it
 * reads one request from the device, sends the same bytes to the server on
 * its own connection and hands the answer back. */
struct relay {
	int fd; /* its end of the device's socket */
	SSL_CTX *sctx;
};

static SSL_CTX *relay_ctx(void)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	SSL_CTX *s = SSL_CTX_new(TLS_server_method());
	X509_NAME *nm = x != NULL ? X509_get_subject_name(x) : NULL;
	if (pk == NULL || x == NULL || s == NULL || nm == NULL ||
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"relay", -1,
	                               -1, 0) != 1 ||
	    X509_set_issuer_name(x, nm) != 1 || X509_set_pubkey(x, pk) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL ||
	    X509_sign(x, pk, EVP_sha256()) <= 0 || SSL_CTX_use_certificate(s, x) != 1 ||
	    SSL_CTX_use_PrivateKey(s, pk) != 1)
		die("relay certificate", NULL);
	X509_free(x);
	EVP_PKEY_free(pk);
	return s;
}

static void *relay_run(void *arg)
{
	struct relay *r = arg;
	SSL *dev = SSL_new(r->sctx);
	struct msg *m = calloc(1, sizeof(*m));
	SSL *up = NULL;
	if (dev == NULL || m == NULL || SSL_set_fd(dev, r->fd) != 1 || SSL_accept(dev) != 1 ||
	    !read_msg(dev, m))
		goto out;
	up = tls_connect();
	if (up == NULL || !write_all(up, m->head, m->head_len) ||
	    !write_all(up, m->body, m->body_len) || !read_msg(up, m))
		goto out;
	(void)write_all(dev, m->head, m->head_len);
	(void)write_all(dev, m->body, m->body_len);
out:
	ERR_clear_error();
	tls_close(up);
	SSL_free(dev);
	free(m);
	return NULL;
}

/* ---------------------------------------------------------------- send */

static const char *path_of(enum fmt_api_purpose p)
{
	return p == FMT_API_PROVISION  ? "/v1/provision"
	       : p == FMT_API_EXCHANGE ? "/v1/token/exchange"
	                               : "/v1/token/renew";
}

struct dev {
	struct fmt_key *key;
	struct fmt_api_request req; /* members filled in, not signed */
	const char *token_out;
};

/* Sign d's request for the connection ssl (exporter), with ts offset and
 * nonce; the encoded body into body/len. */
static void sign_for(struct dev *d, SSL *ssl, const struct fmt_key *signer, int64_t skew,
                     const uint8_t *nonce, char *body, size_t *len)
{
	uint8_t ex[FIO_TLS_EXPORTER_LEN];
	struct idp_error err = {0};
	if (fio_tls_exporter(ssl, ex, &err) != IDP_OK ||
	    fmt_api_pop_sign(&d->req, signer, ex, (int64_t)time(NULL) + skew, nonce, &err) !=
	            IDP_OK)
		die("sign", &err);
	if (signer != d->key) { /* the body names the device's key */
		if (fmt_key_spki_der(d->key, d->req.spki, &d->req.spki_len, &err) != IDP_OK)
			die("spki", &err);
		d->req.key_type = fmt_key_type(d->key);
	}
	if (fmt_api_request_encode(&d->req, body, FMT_API_BODY_MAX, len, &err) != IDP_OK)
		die("encode", &err);
}

/* Send body on ssl to path and print the answer. */
static void exchange_on(SSL *ssl, const char *path, const char *body, size_t len,
                        const char *token_out)
{
	struct msg *m = calloc(1, sizeof(*m));
	if (m == NULL)
		die("out of memory", NULL);
	if (post(ssl, path, body, len) && read_msg(ssl, m))
		print_answer(m, token_out);
	else
		printf("answer 0 closed\n");
	(void)fflush(stdout);
	free(m);
}

/* Between the two requests of a two-step mode: with IDP_ATTACK_PAUSE set,
 * wait for a line on stdin (the test takes the database's digest there). */
static void pause_step(void)
{
	if (getenv("IDP_ATTACK_PAUSE") == NULL)
		return;
	char line[16];
	if (fgets(line, sizeof(line), stdin) == NULL)
		die("pause: stdin ended", NULL);
}

/* POST /v1/nonce on ssl; the nonce into out. */
static void get_nonce(SSL *ssl, uint8_t out[static FMT_API_NONCE_LEN])
{
	struct msg *m = calloc(1, sizeof(*m));
	struct fmt_api_nonce n;
	struct idp_error err = {0};
	if (m == NULL || !post(ssl, "/v1/nonce", "", 0) || !read_msg(ssl, m) ||
	    fmt_api_nonce_parse((const uint8_t *)m->body, m->body_len, &n, &err) != IDP_OK)
		die("nonce", &err);
	memcpy(out, n.nonce, FMT_API_NONCE_LEN);
	free(m);
}

static int cmd_send(char **av)
{
	struct dev d;
	memset(&d, 0, sizeof(d));
	const char *purpose = av[1], *mode = av[4];
	struct idp_error err = {0};
	d.key = load_key(av[0]);
	d.req.purpose = strcmp(purpose, "provision") == 0  ? FMT_API_PROVISION
	                : strcmp(purpose, "exchange") == 0 ? FMT_API_EXCHANGE
	                : strcmp(purpose, "renew") == 0    ? FMT_API_RENEW
	                                                   : 0;
	if (d.req.purpose == 0 || strlen(av[2]) > FMT_API_ID_MAX)
		die("bad purpose or ID", NULL);
	(void)snprintf(d.req.device_id, sizeof(d.req.device_id), "%s", av[2]);
	if (fmt_mac_parse(av[3], strlen(av[3]), d.req.mac, &err) != IDP_OK)
		die("mac", &err);
	if (d.req.purpose == FMT_API_PROVISION)
		(void)snprintf(d.req.agent_version, sizeof(d.req.agent_version), "attack-1");
	if (av[5] != NULL && strcmp(av[5], "-") != 0) {
		size_t n = 0;
		char *t = read_text(av[5], &n);
		(void)snprintf(d.req.token, sizeof(d.req.token), "%s", t);
		OPENSSL_cleanse(t, n);
		free(t);
	}
	d.token_out = av[5] != NULL ? av[6] : NULL;
	const char *path = path_of(d.req.purpose);
	static char body[FMT_API_BODY_MAX + 1];
	size_t len = 0;
	SSL *ssl = tls_connect();
	if (ssl == NULL)
		return 1;
	if (strcmp(mode, "replay-resumed") == 0) {
		sign_for(&d, ssl, d.key, 0, NULL, body, &len);
		exchange_on(ssl, path, body, len, d.token_out);
		SSL_SESSION *sess = SSL_get1_session(ssl); /* with the ticket the answer brought */
		(void)SSL_shutdown(ssl);
		tls_close(ssl);
		ssl = sess != NULL ? tls_resume(sess) : NULL;
		SSL_SESSION_free(sess);
		if (ssl == NULL)
			return 1;
		(void)printf("resumed %d\n", SSL_session_reused(ssl));
		exchange_on(ssl, path, body, len, NULL);
	} else if (strcmp(mode, "good") == 0 || strcmp(mode, "replay-conn") == 0 ||
	           strcmp(mode, "replay-new") == 0) {
		sign_for(&d, ssl, d.key, 0, NULL, body, &len);
		exchange_on(ssl, path, body, len, d.token_out);
		if (strcmp(mode, "good") != 0)
			pause_step();
		if (strcmp(mode, "replay-new") == 0) {
			tls_close(ssl);
			ssl = tls_connect();
			if (ssl == NULL)
				return 1;
		}
		if (strcmp(mode, "good") != 0)
			exchange_on(ssl, path, body, len, NULL);
	} else if (strcmp(mode, "other-key") == 0) {
		struct fmt_key *other = NULL;
		if (fmt_key_generate(fmt_key_type(d.key), &other, &err) != IDP_OK)
			die("key", &err);
		sign_for(&d, ssl, other, 0, NULL, body, &len);
		fmt_key_free(other);
		exchange_on(ssl, path, body, len, NULL);
	} else if (strcmp(mode, "sig-flip") == 0 || strcmp(mode, "claim-flip") == 0) {
		sign_for(&d, ssl, d.key, 0, NULL, body, &len);
		if (strcmp(mode, "sig-flip") == 0)
			d.req.pop.sig[17] ^= 0x04;
		else
			d.req.mac[5] ^= 0x10;
		if (fmt_api_request_encode(&d.req, body, sizeof(body) - 1, &len, &err) != IDP_OK)
			die("encode", &err);
		exchange_on(ssl, path, body, len, NULL);
	} else if (strcmp(mode, "stale") == 0 || strcmp(mode, "future") == 0) {
		sign_for(&d, ssl, d.key, strcmp(mode, "stale") == 0 ? -1000 : 1000, NULL, body,
		         &len);
		exchange_on(ssl, path, body, len, NULL);
	} else if (strcmp(mode, "nonce-unknown") == 0) {
		uint8_t nonce[FMT_API_NONCE_LEN];
		if (RAND_bytes(nonce, sizeof(nonce)) != 1)
			die("rand", NULL);
		sign_for(&d, ssl, d.key, 0, nonce, body, &len);
		exchange_on(ssl, path, body, len, NULL);
	} else if (strcmp(mode, "nonce-reuse") == 0) {
		uint8_t nonce[FMT_API_NONCE_LEN];
		get_nonce(ssl, nonce);
		sign_for(&d, ssl, d.key, 0, nonce, body, &len);
		exchange_on(ssl, path, body, len, d.token_out);
		pause_step();
		tls_close(ssl);
		ssl = tls_connect();
		if (ssl == NULL)
			return 1;
		sign_for(&d, ssl, d.key, 0, nonce, body, &len);
		exchange_on(ssl, path, body, len, NULL);
	} else if (strcmp(mode, "purpose-swap") == 0) {
		sign_for(&d, ssl, d.key, 0, NULL, body, &len);
		exchange_on(ssl,
		            path_of(d.req.purpose == FMT_API_EXCHANGE ? FMT_API_RENEW
		                                                      : FMT_API_EXCHANGE),
		            body, len, NULL);
	} else if (strcmp(mode, "relay") == 0) {
		/* The device talks to the relay, not to the server. */
		tls_close(ssl);
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			die("socketpair", NULL);
		struct relay r = {.fd = sv[1], .sctx = relay_ctx()};
		pthread_t th;
		if (pthread_create(&th, NULL, relay_run, &r) != 0)
			die("thread", NULL);
		ssl = SSL_new(cctx);
		if (ssl == NULL || SSL_set_fd(ssl, sv[0]) != 1 || SSL_connect(ssl) != 1)
			die("relay handshake", NULL);
		sign_for(&d, ssl, d.key, 0, NULL, body, &len);
		exchange_on(ssl, path, body, len, NULL);
		(void)pthread_join(th, NULL);
		(void)close(sv[1]);
		SSL_CTX_free(r.sctx);
	} else {
		die("unknown mode", NULL);
	}
	tls_close(ssl);
	fmt_api_request_wipe(&d.req);
	fmt_key_free(d.key);
	return 0;
}

/* ---------------------------------------------------------------- forge */

/* The kid of a token's header (base64url JSON), into kid. */
static void token_kid(const char *tok, char kid[static FMT_TOKEN_KID_MAX + 1], char *hdr,
                      size_t hdr_max)
{
	const char *dot = strchr(tok, '.');
	size_t n = 0;
	if (dot == NULL || fmt_b64_decode(FMT_B64_URL, tok, (size_t)(dot - tok), (uint8_t *)hdr,
	                                  hdr_max - 1, &n, NULL) != IDP_OK)
		die("token header", NULL);
	hdr[n] = '\0';
	const char *k = strstr(hdr, "\"kid\":\"");
	const char *e = k != NULL ? strchr(k + 7, '"') : NULL;
	if (e == NULL || (size_t)(e - k - 7) > FMT_TOKEN_KID_MAX)
		die("token kid", NULL);
	(void)snprintf(kid, FMT_TOKEN_KID_MAX + 1, "%.*s", (int)(e - k - 7), k + 7);
}

static int cmd_forge(char **av)
{
	const char *state = av[0], *how = av[2];
	size_t tl = 0;
	char *tok = read_text(av[1], &tl);
	struct fmt_token_claims cl;
	struct idp_error err = {0};
	if (fmt_token_decode_unverified((const uint8_t *)tok, tl, &cl, &err) != IDP_OK)
		die("token", &err);
	char kid[FMT_TOKEN_KID_MAX + 1], hdr[512];
	token_kid(tok, kid, hdr, sizeof(hdr));
	char *out = NULL;
	size_t out_len = 0;
	int64_t now = (int64_t)time(NULL);
	int64_t life = cl.exp - cl.iat;
	if (strcmp(how, "alg-none") == 0) {
		/* The original header with alg "none", its payload, no signature. */
		char *alg = strstr(hdr, "\"alg\":\"");
		char *ae = alg != NULL ? strchr(alg + 7, '"') : NULL;
		if (ae == NULL)
			die("token alg", NULL);
		char h2[600];
		(void)snprintf(h2, sizeof(h2), "%.*s\"alg\":\"none\"%s", (int)(alg - hdr), hdr,
		               ae + 1);
		const char *p = strchr(tok, '.') + 1;
		const char *pe = strchr(p, '.');
		out = malloc(FMT_TOKEN_MAX + 1);
		if (out == NULL || pe == NULL)
			die("token", NULL);
		out_len = fmt_b64_encode(FMT_B64_URL, (const uint8_t *)h2, strlen(h2), out);
		out_len += (size_t)snprintf(out + out_len, FMT_TOKEN_MAX + 1 - out_len, ".%.*s.",
		                            (int)(pe - p), p);
	} else {
		struct fmt_key *k = NULL;
		if (strcmp(how, "other-key") == 0) {
			if (fmt_key_generate(FMT_KEY_P256, &k, &err) != IDP_OK)
				die("key", &err);
		} else {
			char path[4096];
			(void)snprintf(path, sizeof(path), "%s/token.key", state);
			k = load_key(path);
		}
		if (strcmp(how, "wrong-kid") == 0)
			(void)snprintf(kid, sizeof(kid), "t-0123456789abcdef");
		else if (strcmp(how, "expired") == 0)
			now -= life + 3600;
		else if (strcmp(how, "aud") == 0)
			(void)snprintf(cl.aud, sizeof(cl.aud), "another-service");
		else if (strcmp(how, "sub") == 0)
			(void)snprintf(cl.sub, sizeof(cl.sub), "dev-someone-else");
		else if (strcmp(how, "other-key") != 0)
			die("unknown forgery", NULL);
		if (fmt_token_sign(k, kid, &cl, now, life, NULL, &out, &out_len, &err) != IDP_OK)
			die("sign token", &err);
		fmt_key_free(k);
	}
	if (fmt_file_write_atomic(av[3], (const uint8_t *)out, out_len, 0600, &err) != IDP_OK)
		die(av[3], &err);
	OPENSSL_cleanse(out, out_len);
	free(out);
	OPENSSL_cleanse(tok, tl);
	free(tok);
	return 0;
}

/* ---------------------------------------------------------------- floods */

static int cmd_flood(unsigned long n, const char *path)
{
	SSL *ssl = tls_connect();
	if (ssl == NULL)
		return 1;
	struct msg *m = calloc(1, sizeof(*m));
	unsigned long by[600] = {0};
	long ra = 0;
	char code[FMT_API_CODE_MAX + 1] = "-";
	for (unsigned long i = 0; m != NULL && i < n; i++) {
		if (!post(ssl, path, "", 0) || !read_msg(ssl, m))
			break;
		by[m->status >= 0 && m->status < 600 ? m->status : 0]++;
		struct fmt_api_answer a;
		if (m->status != 200 &&
		    fmt_api_answer_parse((const uint8_t *)m->body, m->body_len, &a, NULL) ==
		            IDP_OK &&
		    a.is_error) {
			(void)snprintf(code, sizeof(code), "%s",
			               fmt_api_err_code_name(a.error.code));
			ra = a.error.retry_after == m->retry_after ? m->retry_after : -1;
		}
	}
	printf("flood");
	for (int s = 0; s < 600; s++)
		if (by[s] != 0)
			printf(" %d=%lu", s, by[s]);
	printf("\nretry_after=%ld code=%s\n", ra, code);
	free(m);
	tls_close(ssl);
	return 0;
}

static long now_ms(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether the server closed fd (EOF or error; data is read and dropped). */
static bool closed_by_peer(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 0) <= 0)
		return false;
	char b[4096];
	ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static int cmd_loris(unsigned long n)
{
	static const char head[] = "POST /v1/provision HTTP/1.1\r\nHost: idprovd\r\n"
	                           "Content-Type: application/json\r\nX-Slow: ";
	SSL *ssl[LORIS_MAX] = {0};
	bool closed[LORIS_MAX] = {0};
	size_t sent = 0;
	if (n == 0 || n > LORIS_MAX)
		die("loris: 1..64 connections", NULL);
	for (unsigned long i = 0; i < n; i++)
		if ((ssl[i] = tls_connect()) == NULL)
			return 1;
	unsigned long left = n;
	long t0 = now_ms();
	for (size_t k = 0; left > 0 && now_ms() - t0 < 60000; k++) {
		for (unsigned long i = 0; i < n; i++) {
			if (closed[i])
				continue;
			int fd = SSL_get_fd(ssl[i]);
			char c = k < sizeof(head) - 1 ? head[k] : 'a';
			/* Raw TLS records: one byte each, never the blank line. */
			if (closed_by_peer(fd) || SSL_write(ssl[i], &c, 1) != 1) {
				ERR_clear_error();
				closed[i] = true;
				left--;
			} else if (i == 0) {
				sent++;
			}
		}
		(void)usleep(200000);
	}
	printf("loris closed=%lu sent=%zu\n", n - left, sent);
	for (unsigned long i = 0; i < n; i++)
		tls_close(ssl[i]);
	return 0;
}

/* Read what comes (keeping its first bytes in head) until the server
 * closes or t_end passes; true when it closed. */
static bool read_until_closed(SSL *ssl, char head[static 16], size_t *got, long t_end)
{
	int fd = SSL_get_fd(ssl);
	while (now_ms() < t_end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (SSL_pending(ssl) == 0 && poll(&p, 1, 200) <= 0)
			continue;
		char b[4096];
		int r = SSL_read(ssl, b, sizeof(b));
		if (r > 0) {
			size_t k = (size_t)r < 15 - *got ? (size_t)r : 15 - *got;
			memcpy(head + *got, b, k);
			*got += k;
			head[*got] = '\0';
			continue;
		}
		int e = SSL_get_error(ssl, r);
		ERR_clear_error();
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return true;
	}
	return false;
}

static int cmd_stall(void)
{
	static char in[1u << 16];
	size_t n = fread(in, 1, sizeof(in), stdin);
	SSL *ssl = tls_connect();
	if (ssl == NULL)
		return 1;
	bool ok = write_all(ssl, in, n);
	/* Whatever comes back (an answer or nothing) until the server closes. */
	char head[16] = "";
	size_t got = 0;
	bool closed = ok && read_until_closed(ssl, head, &got, now_ms() + 60000);
	int status =
	        strncmp(head, "HTTP/1.", 7) == 0 && got >= 12 ? (int)strtol(head + 9, NULL, 10) : 0;
	printf("stall closed=%d status=%d\n", closed ? 1 : 0, status);
	tls_close(ssl);
	return 0;
}

/* Whether the server answered or closed: a readable socket may only hold
 * a TLS 1.3 session ticket, which a peek consumes (without blocking). */
static bool answered(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (SSL_pending(ssl) == 0 && poll(&p, 1, 0) <= 0)
		return false;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		return true;
	char b;
	int r = SSL_peek(ssl, &b, 1);
	int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, r);
	ERR_clear_error();
	(void)fcntl(fd, F_SETFL, fl);
	return e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

static int cmd_pace(unsigned long rate)
{
	enum { PACE_IN_MAX = 16 << 20, PACE_TICK_MS = 100 };
	char *in = malloc(PACE_IN_MAX);
	size_t n = in != NULL ? fread(in, 1, PACE_IN_MAX, stdin) : 0;
	size_t head_len = 0, sent = 0;
	for (size_t i = 0; head_len == 0 && i + 4 <= n; i++)
		if (memcmp(in + i, "\r\n\r\n", 4) == 0)
			head_len = i + 4;
	if (head_len == 0 || rate == 0)
		die("pace: stdin is not a request head (and body), or RATE is 0", NULL);
	SSL *ssl = tls_connect();
	if (ssl == NULL)
		return 1;
	long t0 = now_ms(), t_end = t0 + 120000;
	bool ok = write_all(ssl, in, head_len);
	t0 = now_ms();
	/* Steady: after t ms, t * RATE / 1000 body bytes are out, never more. */
	while (ok && sent < n - head_len && now_ms() < t_end) {
		(void)usleep(PACE_TICK_MS * 1000);
		if (answered(ssl))
			break; /* an answer or a close before the whole body */
		size_t due = (size_t)((unsigned long)(now_ms() - t0) * rate / 1000);
		if (due > n - head_len)
			due = n - head_len;
		if (due > sent) {
			ok = write_all(ssl, in + head_len + sent, due - sent);
			sent = ok ? due : sent;
		}
	}
	char head[16] = "";
	size_t got = 0;
	bool closed = read_until_closed(ssl, head, &got, t_end);
	int status =
	        strncmp(head, "HTTP/1.", 7) == 0 && got >= 12 ? (int)strtol(head + 9, NULL, 10) : 0;
	printf("pace sent=%zu closed=%d status=%d\n", sent, closed ? 1 : 0, status);
	tls_close(ssl);
	free(in);
	return 0;
}

static int cmd_hold(unsigned long n)
{
	SSL *ssl[LORIS_MAX] = {0};
	bool closed[LORIS_MAX] = {0};
	if (n == 0 || n > LORIS_MAX)
		die("hold: 1..64 connections", NULL);
	for (unsigned long i = 0; i < n; i++) {
		/* Beyond the server's bound the handshake waits for a free slot
		 * (the 10 s socket bound covers one header deadline). */
		if ((ssl[i] = tls_connect()) == NULL) {
			printf("held %lu\n", i);
			return 1;
		}
	}
	printf("held %lu\n", n);
	(void)fflush(stdout);
	unsigned long left = n;
	long t0 = now_ms();
	while (left > 0 && now_ms() - t0 < 60000) {
		for (unsigned long i = 0; i < n; i++)
			if (!closed[i] && closed_by_peer(SSL_get_fd(ssl[i]))) {
				closed[i] = true;
				left--;
			}
		(void)usleep(50000);
	}
	printf("closed %lu\n", n - left);
	for (unsigned long i = 0; i < n; i++)
		tls_close(ssl[i]);
	return 0;
}

static unsigned long number(const char *s)
{
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		die("not a number", NULL);
	return v;
}

int main(int argc, char **argv)
{
	(void)signal(SIGPIPE, SIG_IGN);
	int a = 1;
	if (argc > 2 && strcmp(argv[1], "-s") == 0) {
		src_addr = argv[2];
		a = 3;
	}
	if (argc - a < 2) {
		fprintf(stderr,
		        "usage: idp_attack [-s ADDR] key|send|forge|flood|loris|stall|hold|pace ...\n");
		return 2;
	}
	const char *cmd = argv[a];
	int n = argc - a - 1;
	char **av = argv + a + 1;
	if (strcmp(cmd, "key") == 0 && n == 2) {
		struct fmt_key *k = NULL;
		char *pem = NULL;
		size_t len = 0;
		struct idp_error err = {0};
		if (fmt_key_generate(strcmp(av[1], "ed25519") == 0 ? FMT_KEY_ED25519 : FMT_KEY_P256,
		                     &k, &err) != IDP_OK ||
		    fmt_key_private_pem(k, &pem, &len, &err) != IDP_OK ||
		    fmt_file_write_atomic(av[0], (const uint8_t *)pem, len, 0600, &err) != IDP_OK)
			die("key", &err);
		fmt_key_free_secret(pem, len);
		fmt_key_free(k);
		return 0;
	}
	if (strcmp(cmd, "forge") == 0 && n == 4)
		return cmd_forge(av);
	cctx = SSL_CTX_new(TLS_client_method());
	if (cctx == NULL)
		return 2;
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	port = (unsigned)number(av[0]);
	int rc = 2;
	if (strcmp(cmd, "send") == 0 && n >= 6 && n <= 8) {
		char *args[7] = {av[1],
		                 av[2],
		                 av[3],
		                 av[4],
		                 av[5],
		                 n >= 7 ? av[6] : NULL,
		                 n >= 8 ? av[7] : NULL};
		rc = cmd_send(args);
	} else if (strcmp(cmd, "flood") == 0 && n == 3) {
		rc = cmd_flood(number(av[1]), av[2]);
	} else if (strcmp(cmd, "loris") == 0 && n == 2) {
		rc = cmd_loris(number(av[1]));
	} else if (strcmp(cmd, "stall") == 0 && n == 1) {
		rc = cmd_stall();
	} else if (strcmp(cmd, "hold") == 0 && n == 2) {
		rc = cmd_hold(number(av[1]));
	} else if (strcmp(cmd, "pace") == 0 && n == 2) {
		rc = cmd_pace(number(av[1]));
	} else {
		fprintf(stderr, "idp_attack: bad arguments for %s\n", cmd);
	}
	SSL_CTX_free(cctx);
	return rc;
}
