/*
 * idprov-load.c - the load generator and checker of `make stress`
 * (tests/stress/stress.sh, docs/reliability.md). A program of its own that
 * drives a running idprovd over HTTPS as many devices at once, through the
 * project's one client (formats/io/httpc) and the device side of the
 * protocol (formats/api, formats/pop): every device request goes on a fresh
 * TLS connection and signs its proof of possession over that connection's
 * RFC 9266 exporter, as idprov-agent does. Threads; every loop is bounded
 * in count and time.
 *
 *   idprov-load prepare --dir DIR --devices N [--prefix P] [--tag T]
 *       N new P-256 device keys: DIR/devices.csv (id,mac,serial,pub: the
 *       device list of formats/devlist.md, for idprov-manifest create) and
 *       DIR/keys.pem (the private keys, in the same order).
 *   idprov-load run --server URL --ca CA --dir DIR --answers FILE
 *               [--first I] [--count N] [--clients C] [--seconds S]
 *               [--renew-rate R] [--renewers K] [--list-rate L]
 *               [--token-file F] [--nonce-every K] [--retry-seconds S]
 *               [--stop-file F]
 *       C threads each take the next device of DIR (from I, at most N) and
 *       provision it then exchange its provisioning token; K threads renew
 *       device tokens of devices done so far at R per second in all; one
 *       thread lists devices (GET /v1/admin/devices, credential in F) at L
 *       per second. Every K-th device request first fetches a server nonce.
 *       A request that fails (no answer, 429, 5xx) is retried on a new
 *       connection with a new proof until it has failed for S seconds (the
 *       operation then gives up). Stops after S seconds, when every device
 *       is done (with --stop-file: renewals and listings go on), or when the
 *       stop file exists. Each decision answered 200
 *       is appended to FILE at once: "KIND DEVICE JTI SIG NONCE" (SIG the
 *       proof's signature, NONCE the server nonce or "-", both base64url). Prints the figures:
 *       requests/s, p50/p99 latency of answered requests, failed attempts
 *       by kind with one message each, operations given up.
 *   idprov-load check --db DB --answers FILE
 *       Read-only checks of a server database against the answers file:
 *       every answered token present once for its device and kind (else
 *       "lost"), no token and no proof or nonce answered twice, at most one
 *       live token per device, no token redeemed into two live tokens, the
 *       approved devices approved, PRAGMA integrity_check ok. Prints one
 *       line of counts; exit 1 when any check fails.
 *
 * Exit status: 0 done, 1 a failure (run: an operation gave up, or an
 * error answer that retrying does not cure), 2 usage.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sqlite3.h>

#include "formats/api.h"
#include "formats/b64.h"
#include "formats/io/httpc.h"
#include "formats/keys.h"
#include "formats/mac.h"
#include "formats/pop.h"
#include "formats/token.h"

#define DEVICES_MAX   200000u
#define THREADS_MAX   256u
#define LAT_MAX       (1u << 21) /* latencies kept (beyond: not in the percentiles) */
#define KINDS_MAX     48u
#define PATH_MAX_LOAD 1024u
#define ANSWER_LINE   512u

enum op { OP_PROVISION, OP_EXCHANGE, OP_RENEW, OP_LIST, OP_NONCE, OP_N };
static const char *const op_names[OP_N] = {"provision", "exchange", "renew", "list", "nonce"};
static const char *const op_paths[] = {"/v1/provision", "/v1/token/exchange", "/v1/token/renew"};

/* One preloaded device of DIR. */
struct device {
	char id[FMT_API_ID_MAX + 1];
	uint8_t mac[FMT_MAC_LEN];
	struct fmt_key *key;
	atomic_int ready; /* 1: holds a device token; renewers take it by 1 -> 2 */
	char token[FMT_API_TOKEN_MAX + 1];
};

static struct {
	const char *server, *ca, *dir, *answers, *token_file, *stop_file, *db;
	unsigned first, count, clients, renewers, nonce_every;
	double seconds, renew_rate, list_rate, retry_seconds;
	unsigned devices;
	const char *prefix;
	unsigned tag;
} opt = {.count = DEVICES_MAX, .clients = 8, .renewers = 1, .nonce_every = 4,
         .seconds = 30, .retry_seconds = 60, .prefix = "load", .tag = 0x4c};

static struct device *devs;
static unsigned n_devs;
static atomic_uint next_dev;
static atomic_uint done_devs;
static unsigned ready_list[DEVICES_MAX]; /* indexes of devices holding a device token */
static atomic_uint n_ready;
static double t_start, t_end; /* t_end is set before the threads start */
static atomic_bool stop_all;
static char bearer[FIO_HTTPC_BEARER_MAX + 1];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *answers;
static double *lat; /* ms */
static atomic_uint n_lat;
static atomic_ulong ok_by_op[OP_N];
static atomic_ulong gave_up, answered;
static struct {
	char kind[96];
	char sample[256];
	unsigned long n;
} kinds[KINDS_MAX];
static unsigned n_kinds;

static double now_s(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	(void)nanosleep(&ts, NULL);
}

static bool stopping(void)
{
	if (atomic_load(&stop_all) || now_s() >= t_end)
		return true;
	return opt.stop_file != NULL && access(opt.stop_file, F_OK) == 0;
}

/* Count one failed attempt under its kind, keeping the first message. */
static void fail_note(enum op op, long status, const char *code, const char *msg)
{
	char kind[96];
	if (status == 0)
		(void)snprintf(kind, sizeof(kind), "%s: no answer (%s)", op_names[op], code);
	else
		(void)snprintf(kind, sizeof(kind), "%s: %ld %s", op_names[op], status, code);
	(void)pthread_mutex_lock(&mu);
	unsigned i = 0;
	while (i < n_kinds && strcmp(kinds[i].kind, kind) != 0)
		i++;
	if (i == n_kinds && n_kinds < KINDS_MAX) {
		n_kinds++;
		(void)snprintf(kinds[i].kind, sizeof(kinds[i].kind), "%s", kind);
		(void)snprintf(kinds[i].sample, sizeof(kinds[i].sample), "%s", msg);
	}
	if (i < n_kinds)
		kinds[i].n++;
	(void)pthread_mutex_unlock(&mu);
}

static void lat_note(enum op op, double t0)
{
	unsigned i = atomic_fetch_add(&n_lat, 1);
	if (i < LAT_MAX)
		lat[i] = (now_s() - t0) * 1000.0;
	atomic_fetch_add(&ok_by_op[op], 1);
}

/* ---------------------------------------------------------------- prepare */

static int prepare(void)
{
	char path[PATH_MAX_LOAD];
	if (opt.dir == NULL || opt.devices == 0 || opt.devices > DEVICES_MAX) {
		(void)fprintf(stderr, "idprov-load prepare: --dir and --devices 1..%u required\n",
		        DEVICES_MAX);
		return 2;
	}
	(void)mkdir(opt.dir, 0700);
	(void)snprintf(path, sizeof(path), "%s/devices.csv", opt.dir);
	FILE *csv = fopen(path, "w");
	(void)snprintf(path, sizeof(path), "%s/keys.pem", opt.dir);
	FILE *pem = fopen(path, "w");
	int rc = csv != NULL && pem != NULL && fchmod(fileno(pem), 0600) == 0 ? 0 : 1;
	if (rc != 0)
		(void)fprintf(stderr, "idprov-load prepare: %s: %s\n", path, strerror(errno));
	if (rc == 0 && fprintf(csv, "id,mac,serial,pub\n") < 0)
		rc = 1;
	for (unsigned i = 0; rc == 0 && i < opt.devices; i++) {
		struct fmt_key *k = NULL;
		uint8_t spki[FMT_KEY_SPKI_MAX];
		size_t spki_len = 0;
		char b64[2 * FMT_KEY_SPKI_MAX];
		struct idp_error err = {0};
		if (fmt_key_generate(FMT_KEY_P256, &k, &err) != IDP_OK ||
		    fmt_key_spki_der(k, spki, &spki_len, &err) != IDP_OK) {
			(void)fprintf(stderr, "idprov-load prepare: key: %s\n", err.msg);
			rc = 1;
		}
		if (rc == 0) {
			(void)fmt_b64_encode(FMT_B64_STD, spki, spki_len, b64);
			if (fprintf(csv, "%s-%06u,02:%02x:%02x:%02x:%02x:%02x,SN-%s-%06u,%s\n",
			            opt.prefix, i, opt.tag & 0xff, (i >> 24) & 0xff, (i >> 16) & 0xff,
			            (i >> 8) & 0xff, i & 0xff, opt.prefix, i, b64) < 0 ||
			    PEM_write_PrivateKey(pem, fmt_key_evp(k), NULL, NULL, 0, NULL, NULL) != 1)
				rc = 1;
		}
		fmt_key_free(k);
	}
	if (csv != NULL && fclose(csv) != 0)
		rc = 1;
	if (pem != NULL && fclose(pem) != 0)
		rc = 1;
	if (rc == 0)
		(void)printf("prepared %u devices in %s\n", opt.devices, opt.dir);
	return rc;
}

/* Load devices [first, first + count) of DIR. */
static int load_devices(void)
{
	char path[PATH_MAX_LOAD];
	(void)snprintf(path, sizeof(path), "%s/devices.csv", opt.dir);
	FILE *csv = fopen(path, "r");
	(void)snprintf(path, sizeof(path), "%s/keys.pem", opt.dir);
	FILE *pem = fopen(path, "r");
	devs = calloc(DEVICES_MAX, sizeof(*devs));
	if (csv == NULL || pem == NULL || devs == NULL) {
		(void)fprintf(stderr, "idprov-load: %s: cannot read the prepared devices\n", opt.dir);
		if (csv != NULL)
			(void)fclose(csv);
		if (pem != NULL)
			(void)fclose(pem);
		return -1;
	}
	char line[1024];
	unsigned i = 0;
	int rc = 0;
	(void)fgets(line, sizeof(line), csv); /* header */
	while (rc == 0 && n_devs < opt.count && fgets(line, sizeof(line), csv) != NULL) {
		EVP_PKEY *pk = PEM_read_PrivateKey(pem, NULL, NULL, NULL);
		char *comma = strchr(line, ',');
		if (pk == NULL || comma == NULL) {
			rc = -1;
		} else if (i++ >= opt.first) {
			struct device *d = &devs[n_devs];
			size_t idl = (size_t)(comma - line);
			struct idp_error err = {0};
			if (idl > FMT_API_ID_MAX ||
			    fmt_mac_parse(comma + 1, FMT_MAC_TEXT_LEN, d->mac, &err) != IDP_OK ||
			    fmt_key_from_evp(pk, &d->key, &err) != IDP_OK) {
				(void)fprintf(stderr, "idprov-load: %s line %u: %s\n", path, i, err.msg);
				rc = -1;
			} else {
				memcpy(d->id, line, idl);
				d->id[idl] = '\0';
				n_devs++;
			}
		}
		EVP_PKEY_free(pk);
	}
	(void)fclose(csv);
	(void)fclose(pem);
	if (rc == 0 && n_devs == 0)
		(void)fprintf(stderr, "idprov-load: no device from %u in %s\n", opt.first, opt.dir);
	return rc == 0 && n_devs > 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- signed requests */

struct call {
	struct fmt_api_request req;
	const struct fmt_key *key;
	const uint8_t *nonce;
	int64_t ts;
	char body[FMT_API_BODY_MAX + 1];
};

static enum idp_err call_encode(struct call *c, const uint8_t exporter[static 32], size_t *len,
                                struct idp_error *err)
{
	enum idp_err rc = fmt_api_pop_sign(&c->req, c->key, exporter, c->ts, c->nonce, err);
	if (rc == IDP_OK)
		rc = fmt_api_request_encode(&c->req, c->body, sizeof(c->body), len, err);
	return rc;
}

static enum idp_err call_body(void *arg, const uint8_t exporter[static FIO_TLS_EXPORTER_LEN],
                              uint8_t *out, size_t len, struct idp_error *err)
{
	struct call *c = arg;
	size_t n = 0;
	enum idp_err rc = call_encode(c, exporter, &n, err);
	if (rc == IDP_OK && n != len)
		rc = idp_error_set(err, IDP_E_ARG, "proof: body is %zu bytes, announced %zu", n, len);
	if (rc == IDP_OK)
		memcpy(out, c->body, len);
	return rc;
}

/* A client on a new connection (each device request gets its own). */
static struct fio_httpc *client_new(void)
{
	const struct fio_httpc_opts o = {.base_url = opt.server,
	                                 .ca_file = opt.ca,
	                                 .attempts = 1,
	                                 .timeout_s = 60,
	                                 .connect_timeout_s = 30};
	struct fio_httpc *h = NULL;
	struct idp_error err = {0};
	if (fio_httpc_new(&o, &h, &err) != IDP_OK)
		(void)fprintf(stderr, "idprov-load: client: %s\n", err.msg);
	return h;
}

static void record(enum op op, const struct device *d, const char *token,
                   const struct call *c)
{
	struct fmt_token_claims cl;
	char sig[2 * FMT_KEY_RAW_SIG_LEN], nonce[2 * FMT_API_NONCE_LEN] = "-";
	if (fmt_token_decode_unverified((const uint8_t *)token, strlen(token), &cl, NULL) !=
	    IDP_OK) {
		fail_note(op, 200, "bad_token", "a token that does not decode");
		return;
	}
	(void)fmt_b64_encode(FMT_B64_URL, c->req.pop.sig, sizeof(c->req.pop.sig), sig);
	if (c->nonce != NULL)
		(void)fmt_b64_encode(FMT_B64_URL, c->nonce, FMT_API_NONCE_LEN, nonce);
	(void)pthread_mutex_lock(&mu);
	(void)fprintf(answers, "%s %s %s %s %s\n", op_names[op], d->id, cl.jti, sig, nonce);
	(void)fflush(answers);
	(void)pthread_mutex_unlock(&mu);
	atomic_fetch_add(&answered, 1);
}

/* Worth another try: no answer, or not a whole one (the server died while
 * sending it), 429, 5xx, and a used nonce: libcurl sends a request again
 * on a new connection when a reused one died before any answer, so a
 * request the killed server had committed (its nonce used) reaches the
 * restarted one; idprov-agent likewise takes a new nonce. Any other 4xx
 * answer is a refusal. */
static bool retryable(const struct fio_httpc_resp *resp)
{
	return resp->status < 400 || resp->status == 429 || resp->status >= 500 ||
	       (resp->has_api_error && resp->api.code == FMT_API_ERR_NONCE_INVALID);
}

/* One attempt of op for d on a new connection. 1: answered 200 (the new
 * token in out); 0: failed, worth another try; -1: refused for good. */
static int attempt(enum op op, struct device *d, const char *token, bool use_nonce,
                   char out[static FMT_API_TOKEN_MAX + 1])
{
	struct fio_httpc *h = client_new();
	if (h == NULL)
		return -1;
	struct call *c = calloc(1, sizeof(*c));
	struct fio_httpc_resp resp;
	memset(&resp, 0, sizeof(resp));
	struct idp_error err = {0};
	uint8_t nonce[FMT_API_NONCE_LEN];
	int res = 0;
	double t0 = now_s();
	if (c == NULL)
		goto out;
	c->key = d->key;
	c->ts = (int64_t)time(NULL);
	c->req.purpose = op == OP_PROVISION  ? FMT_API_PROVISION
	                 : op == OP_EXCHANGE ? FMT_API_EXCHANGE
	                                     : FMT_API_RENEW;
	(void)snprintf(c->req.device_id, sizeof(c->req.device_id), "%s", d->id);
	memcpy(c->req.mac, d->mac, FMT_MAC_LEN);
	if (op == OP_PROVISION)
		(void)snprintf(c->req.agent_version, sizeof(c->req.agent_version), "load");
	else
		(void)snprintf(c->req.token, sizeof(c->req.token), "%s", token);
	if (use_nonce) {
		const struct fio_httpc_req r = {
		        .method = "POST", .path = "/v1/nonce", .body = (const uint8_t *)"",
		        .body_len = 0};
		struct fmt_api_nonce n;
		double tn = now_s();
		enum idp_err rc = fio_httpc_do(h, &r, &resp, &err);
		if (rc == IDP_OK && fmt_api_nonce_parse(resp.body, resp.len, &n, &err) == IDP_OK) {
			memcpy(nonce, n.nonce, sizeof(nonce));
			c->nonce = nonce;
			c->ts = n.time;
			lat_note(OP_NONCE, tn);
		} else {
			fail_note(OP_NONCE, resp.status,
			          resp.has_api_error ? resp.api.code_text : idp_err_name(rc), err.msg);
			res = retryable(&resp) ? 0 : -1;
			goto out;
		}
		fio_httpc_resp_free(&resp);
		t0 = now_s();
	}
	uint8_t dummy[FMT_API_EXPORTER_LEN];
	memset(dummy, 0x5a, sizeof(dummy)); /* learns the length; all-zero is refused */
	size_t len = 0;
	if (call_encode(c, dummy, &len, &err) != IDP_OK) {
		fail_note(op, 0, "encode", err.msg);
		res = -1;
		goto out;
	}
	const struct fio_httpc_req r = {.method = "POST",
	                                .path = op_paths[op],
	                                .content_type = "application/json",
	                                .body_fn = call_body,
	                                .body_arg = c,
	                                .body_len = len};
	enum idp_err rc = fio_httpc_do(h, &r, &resp, &err);
	struct fmt_api_answer ans;
	memset(&ans, 0, sizeof(ans));
	if (rc == IDP_OK && resp.status == 200 &&
	    fmt_api_answer_parse(resp.body, resp.len, &ans, &err) == IDP_OK && !ans.is_error &&
	    ans.status.status == FMT_API_APPROVED) {
		lat_note(op, t0);
		(void)snprintf(out, FMT_API_TOKEN_MAX + 1, "%s", ans.status.token);
		record(op, d, out, c);
		res = 1;
	} else {
		const char *code = resp.has_api_error ? resp.api.code_text
		                   : resp.status == 0  ? idp_err_name(rc)
		                   : rc == IDP_OK      ? "not_approved"
		                                       : idp_err_name(rc);
		fail_note(op, resp.status, code, err.msg[0] != '\0' ? err.msg : "(no message)");
		res = retryable(&resp) ? 0 : -1;
	}
	fmt_api_answer_wipe(&ans);
out:
	fio_httpc_resp_free(&resp);
	fio_httpc_free(h);
	if (c != NULL) {
		fmt_api_request_wipe(&c->req);
		OPENSSL_cleanse(c, sizeof(*c));
		free(c);
	}
	return res;
}

/* op for d until answered, refused, stopped or failing for retry_seconds. */
static bool operate(enum op op, struct device *d, const char *token, unsigned *seq,
                    char out[static FMT_API_TOKEN_MAX + 1])
{
	double since = now_s();
	double backoff = 0.02;
	while (true) {
		bool use_nonce = opt.nonce_every > 0 && (*seq)++ % opt.nonce_every == 0;
		int r = attempt(op, d, token, use_nonce, out);
		if (r > 0)
			return true;
		/* In-flight operations finish (or give up) after a stop. */
		if (r < 0 || now_s() - since > opt.retry_seconds) {
			atomic_fetch_add(&gave_up, 1);
			(void)fprintf(stderr, "idprov-load: %s %s: gave up\n", op_names[op], d->id);
			return false;
		}
		nap(backoff);
		backoff = backoff * 2 > 0.5 ? 0.5 : backoff * 2;
	}
}

static void *provisioner(void *arg)
{
	unsigned seq = (unsigned)(uintptr_t)arg;
	char *tok = malloc(2 * ((size_t)FMT_API_TOKEN_MAX + 1));
	if (tok == NULL)
		return NULL;
	char *dev_tok = tok + FMT_API_TOKEN_MAX + 1;
	while (!stopping()) {
		unsigned i = atomic_fetch_add(&next_dev, 1);
		if (i >= n_devs)
			break;
		struct device *d = &devs[i];
		if (!operate(OP_PROVISION, d, NULL, &seq, tok) ||
		    !operate(OP_EXCHANGE, d, tok, &seq, dev_tok))
			continue;
		(void)snprintf(d->token, sizeof(d->token), "%s", dev_tok);
		atomic_store(&d->ready, 1);
		(void)pthread_mutex_lock(&mu);
		ready_list[atomic_load(&n_ready)] = i;
		atomic_fetch_add(&n_ready, 1);
		(void)pthread_mutex_unlock(&mu);
		atomic_fetch_add(&done_devs, 1);
	}
	OPENSSL_cleanse(tok, 2 * ((size_t)FMT_API_TOKEN_MAX + 1));
	free(tok);
	return NULL;
}

/* Renew tokens of ready devices, round robin, at rate per second. */
static void *renewer(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	unsigned seq = me, pos = me;
	double period = opt.renew_rate > 0 ? (double)opt.renewers / opt.renew_rate : 0;
	double next = now_s();
	char *tok = malloc(FMT_API_TOKEN_MAX + 1);
	if (tok == NULL || period <= 0) {
		free(tok);
		return NULL;
	}
	while (!stopping()) {
		nap(next - now_s());
		next += period;
		(void)pthread_mutex_lock(&mu);
		unsigned n = atomic_load(&n_ready);
		unsigned at = n > 0 ? ready_list[pos++ % n] : 0;
		(void)pthread_mutex_unlock(&mu);
		if (n == 0)
			continue;
		struct device *d = &devs[at];
		int one = 1;
		if (!atomic_compare_exchange_strong(&d->ready, &one, 2))
			continue;
		if (operate(OP_RENEW, d, d->token, &seq, tok))
			(void)snprintf(d->token, sizeof(d->token), "%s", tok);
		atomic_store(&d->ready, 1);
	}
	OPENSSL_cleanse(tok, FMT_API_TOKEN_MAX + 1);
	free(tok);
	return NULL;
}

/* Administrator listings on one kept connection, at rate per second. */
static void *lister(void *arg)
{
	(void)arg;
	struct fio_httpc *h = client_new();
	double period = 1.0 / opt.list_rate, next = now_s();
	unsigned n = 0;
	while (h != NULL && !stopping()) {
		nap(next - now_s());
		next += period;
		char path[96];
		(void)snprintf(path, sizeof(path), "/v1/admin/devices?limit=50%s",
		               n++ % 2 == 0 ? "&state=approved" : "");
		const struct fio_httpc_req r = {
		        .method = "GET", .path = path, .bearer = bearer, .idempotent = true};
		struct fio_httpc_resp resp;
		struct idp_error err = {0};
		double t0 = now_s();
		enum idp_err rc = fio_httpc_do(h, &r, &resp, &err);
		if (rc == IDP_OK)
			lat_note(OP_LIST, t0);
		else
			fail_note(OP_LIST, resp.status,
			          resp.has_api_error ? resp.api.code_text : idp_err_name(rc), err.msg);
		fio_httpc_resp_free(&resp);
	}
	fio_httpc_free(h);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int read_bearer(void)
{
	FILE *f = fopen(opt.token_file, "r");
	if (f == NULL || fgets(bearer, sizeof(bearer), f) == NULL) {
		(void)fprintf(stderr, "idprov-load: %s: cannot read the credential\n", opt.token_file);
		if (f != NULL)
			(void)fclose(f);
		return -1;
	}
	(void)fclose(f);
	bearer[strcspn(bearer, "\r\n")] = '\0';
	return 0;
}

static int run(void)
{
	if (opt.server == NULL || opt.ca == NULL || opt.dir == NULL || opt.answers == NULL ||
	    opt.clients + opt.renewers + 1 > THREADS_MAX || opt.clients == 0 ||
	    (opt.list_rate > 0 && opt.token_file == NULL)) {
		(void)fprintf(stderr, "idprov-load run: --server, --ca, --dir, --answers required; "
		                "--clients 1..%u; --list-rate needs --token-file\n",
		        THREADS_MAX - 2);
		return 2;
	}
	if (load_devices() != 0 || (opt.token_file != NULL && read_bearer() != 0))
		return 1;
	answers = fopen(opt.answers, "a");
	lat = calloc(LAT_MAX, sizeof(*lat));
	if (answers == NULL || lat == NULL) {
		(void)fprintf(stderr, "idprov-load: %s: %s\n", opt.answers, strerror(errno));
		return 1;
	}
	pthread_t th[THREADS_MAX];
	unsigned nth = 0;
	t_start = now_s();
	t_end = t_start + opt.seconds;
	for (unsigned i = 0; i < opt.clients; i++)
		if (pthread_create(&th[nth], NULL, provisioner, (void *)(uintptr_t)i) == 0)
			nth++;
	for (unsigned i = 0; opt.renew_rate > 0 && i < opt.renewers; i++)
		if (pthread_create(&th[nth], NULL, renewer, (void *)(uintptr_t)i) == 0)
			nth++;
	if (opt.list_rate > 0 && pthread_create(&th[nth], NULL, lister, NULL) == 0)
		nth++;
	/* The provisioners end when the devices run out; the others then stop,
	 * or with a stop file they go on until it exists (or the time is up). */
	for (unsigned i = 0; i < opt.clients && i < nth; i++)
		(void)pthread_join(th[i], NULL);
	double t_prov = now_s() - t_start;
	while (opt.stop_file != NULL && !stopping())
		nap(0.05);
	atomic_store(&stop_all, true); /* renewers and lister stop at their next turn */
	for (unsigned i = opt.clients; i < nth; i++)
		(void)pthread_join(th[i], NULL);
	double secs = now_s() - t_start;
	unsigned nl = atomic_load(&n_lat) < LAT_MAX ? atomic_load(&n_lat) : LAT_MAX;
	qsort(lat, nl, sizeof(double), cmp_double);
	unsigned long total = 0, failed = 0;
	for (int o = 0; o < OP_N; o++)
		total += atomic_load(&ok_by_op[o]);
	for (unsigned i = 0; i < n_kinds; i++)
		failed += kinds[i].n;
	(void)printf("load: clients=%u renewers=%u devices=%u done=%u seconds=%.1f requests=%lu "
	       "rps=%.0f p50_ms=%.1f p99_ms=%.1f answered=%lu failed_attempts=%lu gave_up=%lu\n",
	       opt.clients, opt.renew_rate > 0 ? opt.renewers : 0, n_devs,
	       atomic_load(&done_devs), secs, total, (double)total / secs,
	       nl > 0 ? lat[nl / 2] : 0.0, nl > 0 ? lat[(size_t)((double)nl * 0.99)] : 0.0,
	       atomic_load(&answered), failed, atomic_load(&gave_up));
	(void)printf("load: devices/s=%.0f", (double)atomic_load(&done_devs) / t_prov);
	for (int o = 0; o < OP_N; o++)
		(void)printf(" %s=%lu", op_names[o], atomic_load(&ok_by_op[o]));
	(void)printf("\n");
	for (unsigned i = 0; i < n_kinds; i++)
		(void)printf("failed: %lu x %s: %s\n", kinds[i].n, kinds[i].kind, kinds[i].sample);
	(void)fclose(answers);
	for (unsigned i = 0; i < n_devs; i++) {
		fmt_key_free(devs[i].key);
		OPENSSL_cleanse(devs[i].token, sizeof(devs[i].token));
	}
	free(devs);
	free(lat);
	return atomic_load(&gave_up) == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- check */

struct answer {
	char kind[16];
	char dev[FMT_API_ID_MAX + 1];
	char jti[FMT_TOKEN_JTI_LEN + 1];
	char sig[2 * FMT_KEY_RAW_SIG_LEN];
	char nonce[2 * FMT_API_NONCE_LEN];
};

/* Split line at spaces into at most n fields; the count found. */
static size_t split(char *line, char **f, size_t n)
{
	size_t k = 0;
	char *p = line;
	while (k < n) {
		while (*p == ' ')
			p++;
		if (*p == '\0' || *p == '\n')
			break;
		f[k++] = p;
		p += strcspn(p, " \n");
		if (*p == '\0')
			break;
		*p++ = '\0';
	}
	return k;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Values of the strings p[0..n) that occur more than once ("-" skipped). */
static unsigned dups(char **p, size_t n)
{
	unsigned d = 0;
	qsort(p, n, sizeof(char *), cmp_str);
	for (size_t i = 1; i < n; i++)
		if (strcmp(p[i], "-") != 0 && strcmp(p[i], p[i - 1]) == 0)
			d++;
	return d;
}

static long long one_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	long long v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else
		(void)fprintf(stderr, "idprov-load check: %s: %s\n", sql, sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return v;
}

static int check(void)
{
	if (opt.db == NULL || opt.answers == NULL) {
		(void)fprintf(stderr, "idprov-load check: --db and --answers required\n");
		return 2;
	}
	FILE *f = fopen(opt.answers, "r");
	size_t cap = 1024, n = 0;
	struct answer *a = malloc(cap * sizeof(*a));
	if (f == NULL || a == NULL) {
		(void)fprintf(stderr, "idprov-load check: %s: %s\n", opt.answers, strerror(errno));
		free(a);
		if (f != NULL)
			(void)fclose(f);
		return 1;
	}
	char line[ANSWER_LINE];
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strchr(line, '\n') == NULL)
			break; /* a line still being written */
		if (n == cap) {
			struct answer *b = realloc(a, 2 * cap * sizeof(*a));
			if (b == NULL)
				break;
			a = b;
			cap *= 2;
		}
		struct answer *x = &a[n];
		char *fl[5];
		if (split(line, fl, 5) != 5 ||
		    snprintf(x->kind, sizeof(x->kind), "%s", fl[0]) >= (int)sizeof(x->kind) ||
		    snprintf(x->dev, sizeof(x->dev), "%s", fl[1]) >= (int)sizeof(x->dev) ||
		    snprintf(x->jti, sizeof(x->jti), "%s", fl[2]) >= (int)sizeof(x->jti) ||
		    snprintf(x->sig, sizeof(x->sig), "%s", fl[3]) >= (int)sizeof(x->sig) ||
		    snprintf(x->nonce, sizeof(x->nonce), "%s", fl[4]) >= (int)sizeof(x->nonce)) {
			(void)fprintf(stderr, "idprov-load check: %s: bad line %zu\n", opt.answers, n + 1);
			continue;
		}
		n++;
	}
	(void)fclose(f);
	sqlite3 *db = NULL;
	int rc = 1;
	char uri[PATH_MAX_LOAD + 16];
	(void)snprintf(uri, sizeof(uri), "file:%s?mode=ro", opt.db);
	if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 10000) != SQLITE_OK) {
		(void)fprintf(stderr, "idprov-load check: %s: %s\n", opt.db, sqlite3_errmsg(db));
		goto out;
	}
	/* One read transaction: every figure from the same snapshot. */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	sqlite3_stmt *tok = NULL, *dev = NULL;
	unsigned lost = 0, wrong = 0, not_approved = 0;
	if (sqlite3_prepare_v2(db, "SELECT device_id, kind FROM tokens WHERE jti = ?", -1, &tok,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT state FROM devices WHERE id = ?", -1, &dev, NULL) !=
	            SQLITE_OK) {
		(void)fprintf(stderr, "idprov-load check: %s\n", sqlite3_errmsg(db));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *want = strcmp(a[i].kind, "provision") == 0 ? "provisioning" : "device";
		(void)sqlite3_bind_text(tok, 1, a[i].jti, -1, SQLITE_STATIC);
		if (sqlite3_step(tok) != SQLITE_ROW) {
			if (lost++ < 5)
				(void)fprintf(stderr, "lost: %s %s %s\n", a[i].kind, a[i].dev, a[i].jti);
		} else if (strcmp((const char *)sqlite3_column_text(tok, 0), a[i].dev) != 0 ||
		           strcmp((const char *)sqlite3_column_text(tok, 1), want) != 0) {
			if (wrong++ < 5)
				(void)fprintf(stderr, "wrong: %s %s %s\n", a[i].kind, a[i].dev, a[i].jti);
		}
		(void)sqlite3_reset(tok);
		(void)sqlite3_bind_text(dev, 1, a[i].dev, -1, SQLITE_STATIC);
		if (sqlite3_step(dev) != SQLITE_ROW ||
		    strcmp((const char *)sqlite3_column_text(dev, 0), "approved") != 0)
			not_approved++;
		(void)sqlite3_reset(dev);
	}
	sqlite3_finalize(tok);
	sqlite3_finalize(dev);
	char **p = malloc((n + 1) * sizeof(char *));
	unsigned dup_jti = 0, dup_sig = 0, dup_nonce = 0;
	if (p != NULL) {
		for (size_t i = 0; i < n; i++)
			p[i] = a[i].jti;
		dup_jti = dups(p, n);
		for (size_t i = 0; i < n; i++)
			p[i] = a[i].sig;
		dup_sig = dups(p, n);
		for (size_t i = 0; i < n; i++)
			p[i] = a[i].nonce;
		dup_nonce = dups(p, n);
		free(p);
	}
	long long multi_live = one_int(
	        db, "SELECT count(*) FROM (SELECT device_id FROM tokens WHERE used = 0 AND "
	            "revoked_at = 0 AND expires_at > unixepoch() GROUP BY device_id "
	            "HAVING count(*) > 1)");
	long long twice = one_int(
	        db, "SELECT count(*) FROM (SELECT parent FROM tokens WHERE parent IS NOT NULL "
	            "AND revoked_at = 0 GROUP BY parent HAVING count(*) > 1)");
	char integrity[64] = "?";
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		(void)snprintf(integrity, sizeof(integrity), "%s", sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	(void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	(void)printf("check: answered=%zu lost=%u wrong=%u not_approved=%u dup_token=%u dup_proof=%u "
	       "dup_nonce=%u multi_live=%lld parent_twice=%lld integrity=%s\n",
	       n, lost, wrong, not_approved, dup_jti, dup_sig, dup_nonce, multi_live, twice,
	       integrity);
	rc = lost == 0 && wrong == 0 && not_approved == 0 && dup_jti == 0 && dup_sig == 0 &&
	                     dup_nonce == 0 && multi_live == 0 && twice == 0 &&
	                     strcmp(integrity, "ok") == 0
	             ? 0
	             : 1;
out:
	sqlite3_close(db);
	free(a);
	return rc;
}

/* ---------------------------------------------------------------- main */

static int usage(void)
{
	(void)fprintf(stderr, "usage: idprov-load prepare|run|check [OPTIONS] (see the source's "
	                "header and docs/reliability.md)\n");
	return 2;
}

static bool num(const char *s, double lo, double hi, double *out)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		(void)fprintf(stderr, "idprov-load: '%s' is not a number in %g..%g\n", s, lo, hi);
		return false;
	}
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	for (int i = 2; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		double d = 0;
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(k, "--server") == 0)
			opt.server = v;
		else if (strcmp(k, "--ca") == 0)
			opt.ca = v;
		else if (strcmp(k, "--dir") == 0)
			opt.dir = v;
		else if (strcmp(k, "--answers") == 0)
			opt.answers = v;
		else if (strcmp(k, "--token-file") == 0)
			opt.token_file = v;
		else if (strcmp(k, "--stop-file") == 0)
			opt.stop_file = v;
		else if (strcmp(k, "--db") == 0)
			opt.db = v;
		else if (strcmp(k, "--prefix") == 0)
			opt.prefix = v;
		else if (strcmp(k, "--devices") == 0 && num(v, 1, DEVICES_MAX, &d))
			opt.devices = (unsigned)d;
		else if (strcmp(k, "--tag") == 0 && num(v, 0, 255, &d))
			opt.tag = (unsigned)d;
		else if (strcmp(k, "--first") == 0 && num(v, 0, DEVICES_MAX, &d))
			opt.first = (unsigned)d;
		else if (strcmp(k, "--count") == 0 && num(v, 1, DEVICES_MAX, &d))
			opt.count = (unsigned)d;
		else if (strcmp(k, "--clients") == 0 && num(v, 1, THREADS_MAX - 2, &d))
			opt.clients = (unsigned)d;
		else if (strcmp(k, "--renewers") == 0 && num(v, 1, 64, &d))
			opt.renewers = (unsigned)d;
		else if (strcmp(k, "--nonce-every") == 0 && num(v, 0, 1e6, &d))
			opt.nonce_every = (unsigned)d;
		else if (strcmp(k, "--seconds") == 0 && num(v, 0.1, 86400, &d))
			opt.seconds = d;
		else if (strcmp(k, "--retry-seconds") == 0 && num(v, 0, 3600, &d))
			opt.retry_seconds = d;
		else if (strcmp(k, "--renew-rate") == 0 && num(v, 0, 1e5, &d))
			opt.renew_rate = d;
		else if (strcmp(k, "--list-rate") == 0 && num(v, 0, 1e4, &d))
			opt.list_rate = d;
		else
			return usage();
	}
	if (strcmp(argv[1], "prepare") == 0)
		return prepare();
	if (strcmp(argv[1], "check") == 0)
		return check();
	if (strcmp(argv[1], "run") != 0)
		return usage();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	int rc = run();
	curl_global_cleanup();
	return rc;
}
