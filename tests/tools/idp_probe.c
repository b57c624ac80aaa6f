/*
 * idp_probe.c - a hostile HTTPS client for idprovd's connection tests
 * (tests/integration/server/conn_*.sh). Loopback only: it connects to
 * 127.0.0.1:PORT and does not verify the server (the tests attack the
 * server, they do not trust it). Every wait is bounded.
 *
 *   idp_probe flood PORT REQUESTS ROUNDS PATH
 *       Each round: one TLS connection that pipelines REQUESTS "GET PATH"
 *       requests, never reads an answer, and when all are written (or the
 *       server has taken nothing for 2 s) resets the connection (SO_LINGER
 *       0). Prints "round N sent BYTES". Exit 1 when a round cannot connect.
 *   idp_probe hold PORT REQUESTS PATH
 *       Like one flood round, but after writing prints "held sent=BYTES"
 *       and keeps the connection (reading nothing) until stdin ends.
 *   idp_probe pipe PORT REQUESTS PATH
 *       Pipelines REQUESTS "GET PATH" requests on one connection while
 *       reading the answers; prints "answers=N" (status lines 200 seen).
 *   idp_probe raw PORT
 *       Sends stdin as it is (binary), then prints everything the server
 *       sends until it closes (or 10 s of silence).
 *   idp_probe listen PORT plain|reuseport
 *       Listens on 127.0.0.1:PORT (0: any), with SO_REUSEPORT or without,
 *       prints "port=N" and holds the port until stdin ends.
 *   idp_probe slow PORT CONNS BODY HEADFILE
 *       Opens CONNS connections, sends the request head in HEADFILE on
 *       each, then trickles up to BODY body bytes on each (64 KiB per
 *       connection per round) until the server answers or closes. Prints
 *       one line per connection: "conn I sent=BYTES status=CODE" (0: no
 *       answer).
 *   idp_probe cut PORT BYTES
 *       A TCP relay (TLS passes through it untouched) on 127.0.0.1, a port
 *       the kernel picks, printed as "port=N", to 127.0.0.1:PORT: the first
 *       connection is reset on both sides once BYTES bytes from the client
 *       have been passed on, as a server or network failing in the middle
 *       of an upload; later connections are relayed whole. Prints "conn I
 *       up=BYTES cut" or "conn I up=BYTES closed" as each ends; runs until
 *       stdin ends (or 120 s without a connection).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define STALL_MS   2000
#define SILENCE_MS 10000
#define CONNS_MAX  64u
#define CHUNK      65536u

static SSL_CTX *ctx;

static long now_ms(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned long number(const char *s, const char *what)
{
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0') {
		fprintf(stderr, "idp_probe: %s: '%s' is not a number\n", what, s);
		exit(2);
	}
	return v;
}

/* A TLS connection to 127.0.0.1:port, handshake done, socket non-blocking. */
static SSL *connect_tls(unsigned port, int *fd_out)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
	int one = 1;
	SSL *ssl = NULL;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    connect(fd, (const struct sockaddr *)&a, sizeof(a)) != 0)
		goto fail;
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1)
		goto fail;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		goto fail;
	*fd_out = fd;
	return ssl;
fail:
	ERR_print_errors_fp(stderr);
	SSL_free(ssl);
	(void)close(fd);
	return NULL;
}

/* Drop the connection with a TCP reset. */
static void reset(SSL *ssl, int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	SSL_free(ssl);
	(void)close(fd);
}

/* Wait until fd is ready for ev, at most ms. */
static bool wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = {.fd = fd, .events = ev};
	return poll(&p, 1, ms) > 0;
}

/* Write buf[0..len) on a non-blocking connection; stops when the peer took
 * nothing for STALL_MS (or the connection failed). Returns bytes written. */
static size_t write_all(SSL *ssl, int fd, const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;
		int w = SSL_write(ssl, buf + off, (int)n);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		int e = SSL_get_error(ssl, w);
		if (e == SSL_ERROR_WANT_WRITE) {
			if (!wait_fd(fd, POLLOUT, STALL_MS))
				break;
		} else if (e == SSL_ERROR_WANT_READ) {
			if (!wait_fd(fd, POLLIN, STALL_MS))
				break;
		} else {
			break;
		}
	}
	ERR_clear_error();
	return off;
}

/* n pipelined GET requests for path. Caller frees. */
static char *requests(unsigned long n, const char *path, size_t *len)
{
	char one[512];
	int k = snprintf(one, sizeof(one), "GET %s HTTP/1.1\r\nHost: idprovd\r\n\r\n", path);
	if (k <= 0 || (size_t)k >= sizeof(one) || n == 0 || n > 10000000ul)
		return NULL;
	char *buf = malloc(n * (size_t)k);
	for (unsigned long i = 0; buf != NULL && i < n; i++)
		memcpy(buf + i * (size_t)k, one, (size_t)k);
	*len = n * (size_t)k;
	return buf;
}

static int cmd_flood(unsigned port, unsigned long n, unsigned long rounds, const char *path,
                     bool hold)
{
	size_t len = 0;
	char *buf = requests(n, path, &len);
	if (buf == NULL)
		return 2;
	for (unsigned long r = 0; r < rounds; r++) {
		int fd = -1;
		SSL *ssl = connect_tls(port, &fd);
		if (ssl == NULL) {
			fprintf(stderr, "idp_probe: round %lu: cannot connect\n", r);
			free(buf);
			return 1;
		}
		size_t sent = write_all(ssl, fd, buf, len);
		if (hold) {
			printf("held sent=%zu\n", sent);
			(void)fflush(stdout);
			char c;
			while (read(0, &c, 1) > 0)
				;
		} else {
			printf("round %lu sent %zu\n", r, sent);
			(void)fflush(stdout);
		}
		reset(ssl, fd);
	}
	free(buf);
	return 0;
}

/* Count "HTTP/1.1 200 " at the start of lines in data (a status line
 * split between reads is carried in tail). */
static unsigned long count_ok(const char *data, size_t n, char tail[static 16], size_t *tl)
{
	static const char pat[] = "\nHTTP/1.1 200 ";
	const size_t pl = sizeof(pat) - 1;
	char buf[CHUNK + 16];
	memcpy(buf, tail, *tl);
	memcpy(buf + *tl, data, n);
	size_t total = *tl + n;
	unsigned long c = 0;
	for (size_t i = 0; i + pl <= total; i++)
		if (buf[i] == '\n' && memcmp(buf + i, pat, pl) == 0)
			c++;
	*tl = total < pl - 1 ? total : pl - 1;
	memcpy(tail, buf + total - *tl, *tl);
	return c;
}

static int cmd_pipe(unsigned port, unsigned long n, const char *path)
{
	size_t len = 0;
	char *buf = requests(n, path, &len);
	int fd = -1;
	SSL *ssl = buf != NULL ? connect_tls(port, &fd) : NULL;
	if (ssl == NULL) {
		free(buf);
		return 1;
	}
	size_t off = 0;
	unsigned long answers = 0;
	char tail[16] = "\n";
	size_t tl = 1;
	long last = now_ms();
	while (answers < n && now_ms() - last < SILENCE_MS) {
		bool progress = false;
		if (off < len) {
			size_t k = len - off < CHUNK ? len - off : CHUNK;
			int w = SSL_write(ssl, buf + off, (int)k);
			if (w > 0) {
				off += (size_t)w;
				progress = true;
			}
		}
		char rb[CHUNK];
		int r = SSL_read(ssl, rb, sizeof(rb));
		if (r > 0) {
			answers += count_ok(rb, (size_t)r, tail, &tl);
			progress = true;
		} else if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ &&
		           SSL_get_error(ssl, r) != SSL_ERROR_WANT_WRITE) {
			break;
		}
		ERR_clear_error();
		if (progress)
			last = now_ms();
		else
			(void)wait_fd(fd, off < len ? POLLIN | POLLOUT : POLLIN, 100);
	}
	printf("answers=%lu\n", answers);
	SSL_free(ssl);
	(void)close(fd);
	free(buf);
	return 0;
}

/* Read what the server sends until it closes or SILENCE_MS pass; to out
 * when not NULL. Returns the bytes read, and the answer's status code in
 * *status (0: none). */
static size_t read_answer(SSL *ssl, int fd, FILE *out, int *status, int wait_ms)
{
	char rb[CHUNK];
	char head[16] = "";
	size_t got = 0;
	for (;;) {
		int r = SSL_read(ssl, rb, sizeof(rb));
		if (r > 0) {
			if (got < sizeof(head) - 1) {
				size_t k = (size_t)r < sizeof(head) - 1 - got
				                   ? (size_t)r
				                   : sizeof(head) - 1 - got;
				memcpy(head + got, rb, k);
				head[got + k] = '\0';
			}
			got += (size_t)r;
			if (out != NULL)
				(void)fwrite(rb, 1, (size_t)r, out);
			continue;
		}
		int e = SSL_get_error(ssl, r);
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
		    wait_fd(fd, POLLIN, wait_ms))
			continue;
		break;
	}
	ERR_clear_error();
	*status = 0;
	if (strncmp(head, "HTTP/1.", 7) == 0 && strlen(head) >= 12)
		for (size_t i = 9; i < 12 && head[i] >= '0' && head[i] <= '9'; i++)
			*status = *status * 10 + (head[i] - '0');
	return got;
}

static int cmd_raw(unsigned port)
{
	static char in[1u << 20];
	size_t n = fread(in, 1, sizeof(in), stdin);
	int fd = -1;
	SSL *ssl = connect_tls(port, &fd);
	if (ssl == NULL)
		return 1;
	(void)write_all(ssl, fd, in, n);
	int status = 0;
	(void)read_answer(ssl, fd, stdout, &status, SILENCE_MS);
	SSL_free(ssl);
	(void)close(fd);
	return 0;
}

/* Whether application data (or the end of the connection) is waiting. */
static bool has_answer(SSL *ssl)
{
	char b;
	int r = SSL_peek(ssl, &b, 1);
	int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, r);
	ERR_clear_error();
	return e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

static int cmd_slow(unsigned port, unsigned long conns, unsigned long body, const char *headfile)
{
	static char head[16384];
	FILE *f = fopen(headfile, "rb");
	if (f == NULL || conns == 0 || conns > CONNS_MAX) {
		fprintf(stderr, "idp_probe: slow: cannot read %s or bad count\n", headfile);
		if (f != NULL)
			(void)fclose(f);
		return 2;
	}
	size_t hl = fread(head, 1, sizeof(head), f);
	(void)fclose(f);
	SSL *ssl[CONNS_MAX] = {0};
	int fd[CONNS_MAX];
	size_t sent[CONNS_MAX] = {0};
	int status[CONNS_MAX] = {0};
	bool done[CONNS_MAX] = {0};
	for (unsigned long i = 0; i < conns; i++) {
		ssl[i] = connect_tls(port, &fd[i]);
		if (ssl[i] == NULL || write_all(ssl[i], fd[i], head, hl) != hl) {
			fprintf(stderr, "idp_probe: slow: connection %lu failed\n", i);
			return 1;
		}
	}
	static char zeros[CHUNK];
	memset(zeros, 'x', sizeof(zeros));
	unsigned long left = conns;
	while (left > 0) {
		for (unsigned long i = 0; i < conns; i++) {
			if (done[i])
				continue;
			/* An answer (or a close) ends this connection; session
			 * tickets do not. */
			if ((wait_fd(fd[i], POLLIN, 0) && has_answer(ssl[i])) || sent[i] >= body) {
				(void)read_answer(ssl[i], fd[i], NULL, &status[i],
				                  sent[i] >= body ? SILENCE_MS : 200);
				done[i] = true;
				left--;
				continue;
			}
			size_t k = body - sent[i] < CHUNK ? body - sent[i] : CHUNK;
			size_t w = write_all(ssl[i], fd[i], zeros, k);
			sent[i] += w;
			if (w < k) { /* the server stopped taking the body */
				(void)read_answer(ssl[i], fd[i], NULL, &status[i], SILENCE_MS);
				done[i] = true;
				left--;
			}
		}
		(void)usleep(20000);
	}
	for (unsigned long i = 0; i < conns; i++) {
		printf("conn %lu sent=%zu status=%d\n", i, sent[i], status[i]);
		SSL_free(ssl[i]);
		(void)close(fd[i]);
	}
	return 0;
}

static int cmd_listen(unsigned port, const char *mode)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof(a);
	if (fd < 0 ||
	    (strcmp(mode, "reuseport") == 0 &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
	    bind(fd, (const struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
		perror("idp_probe: listen");
		return 1;
	}
	printf("port=%u\n", (unsigned)ntohs(a.sin_port));
	(void)fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
	(void)close(fd);
	return 0;
}

#define RELAY_MAX 8u

/* One relayed connection: client side a, server side b. */
struct relay {
	int a, b;
	unsigned long id, up;
	bool cut_it;
};

static void relay_end(struct relay *r, bool cut)
{
	printf("conn %lu up=%lu %s\n", r->id, r->up, cut ? "cut" : "closed");
	(void)fflush(stdout);
	if (cut) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		(void)setsockopt(r->a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		(void)setsockopt(r->b, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	(void)close(r->a);
	(void)close(r->b);
	r->a = r->b = -1;
}

/* Pass what is waiting on from to to (blocking write); false at the end. */
static bool relay_pass(int from, int to, size_t max, size_t *moved)
{
	static char buf[CHUNK];
	ssize_t n = read(from, buf, max < sizeof(buf) ? max : sizeof(buf));
	if (n <= 0)
		return false;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));
		if (w <= 0)
			return false;
		off += w;
	}
	*moved = (size_t)n;
	return true;
}

static int cmd_cut(unsigned port, unsigned long cut_at)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof(a);
	if (ls < 0 || bind(ls, (const struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 8) != 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) != 0) {
		perror("idp_probe: cut: listen");
		return 1;
	}
	printf("port=%u\n", (unsigned)ntohs(a.sin_port));
	(void)fflush(stdout);
	struct relay r[RELAY_MAX];
	for (unsigned i = 0; i < RELAY_MAX; i++)
		r[i].a = r[i].b = -1;
	unsigned long conns = 0;
	long idle_since = now_ms();
	for (;;) {
		struct pollfd p[2 + 2 * RELAY_MAX];
		p[0] = (struct pollfd){.fd = 0, .events = POLLIN};
		p[1] = (struct pollfd){.fd = ls, .events = POLLIN};
		unsigned np = 2, busy = 0;
		for (unsigned i = 0; i < RELAY_MAX; i++) {
			p[np++] = (struct pollfd){.fd = r[i].a, .events = POLLIN};
			p[np++] = (struct pollfd){.fd = r[i].b, .events = POLLIN};
			busy += r[i].a >= 0;
		}
		if (busy == 0 && now_ms() - idle_since > 120000)
			break;
		if (poll(p, np, 1000) < 0 && errno != EINTR)
			break;
		char c;
		if ((p[0].revents & (POLLIN | POLLHUP)) != 0 && read(0, &c, 1) <= 0)
			break;
		if ((p[1].revents & POLLIN) != 0) {
			int cl = accept(ls, NULL, NULL);
			int sv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			struct sockaddr_in t = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
			t.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			unsigned slot = 0;
			while (slot < RELAY_MAX && r[slot].a >= 0)
				slot++;
			if (cl < 0 || sv < 0 || slot == RELAY_MAX ||
			    connect(sv, (const struct sockaddr *)&t, sizeof(t)) != 0) {
				if (cl >= 0)
					(void)close(cl);
				if (sv >= 0)
					(void)close(sv);
			} else {
				r[slot] = (struct relay){cl, sv, ++conns, 0, conns == 1};
			}
		}
		for (unsigned i = 0; i < RELAY_MAX; i++) {
			struct relay *x = &r[i];
			short ra = p[2 + 2 * i].revents, rb = p[3 + 2 * i].revents;
			if (x->a < 0 || p[2 + 2 * i].fd != x->a)
				continue; /* slot filled by this round's accept */
			size_t moved = 0;
			if ((ra & (POLLIN | POLLHUP | POLLERR)) != 0) {
				size_t max = x->cut_it ? cut_at - x->up : CHUNK;
				if (!relay_pass(x->a, x->b, max, &moved)) {
					relay_end(x, false);
					continue;
				}
				x->up += moved;
				if (x->cut_it && x->up >= cut_at) {
					relay_end(x, true);
					continue;
				}
			}
			if ((rb & (POLLIN | POLLHUP | POLLERR)) != 0 && !relay_pass(x->b, x->a, CHUNK, &moved))
				relay_end(x, false);
		}
		if (busy > 0)
			idle_since = now_ms();
	}
	for (unsigned i = 0; i < RELAY_MAX; i++)
		if (r[i].a >= 0)
			relay_end(&r[i], false);
	(void)close(ls);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: idp_probe flood|hold|pipe|raw|slow|listen|cut PORT ...\n");
		return 2;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return 2;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	unsigned port = (unsigned)number(argv[2], "port");
	const char *cmd = argv[1];
	int rc = 2;
	if (strcmp(cmd, "flood") == 0 && argc == 6)
		rc = cmd_flood(port, number(argv[3], "requests"), number(argv[4], "rounds"),
		               argv[5], false);
	else if (strcmp(cmd, "hold") == 0 && argc == 5)
		rc = cmd_flood(port, number(argv[3], "requests"), 1, argv[4], true);
	else if (strcmp(cmd, "pipe") == 0 && argc == 5)
		rc = cmd_pipe(port, number(argv[3], "requests"), argv[4]);
	else if (strcmp(cmd, "listen") == 0 && argc == 4)
		rc = cmd_listen(port, argv[3]);
	else if (strcmp(cmd, "cut") == 0 && argc == 4)
		rc = cmd_cut(port, number(argv[3], "bytes"));
	else if (strcmp(cmd, "raw") == 0 && argc == 3)
		rc = cmd_raw(port);
	else if (strcmp(cmd, "slow") == 0 && argc == 6)
		rc = cmd_slow(port, number(argv[3], "connections"), number(argv[4], "body bytes"),
		              argv[5]);
	else
		fprintf(stderr, "idp_probe: bad arguments for %s\n", cmd);
	SSL_CTX_free(ctx);
	return rc;
}
