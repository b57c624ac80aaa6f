/*
 * agent.c - the device agent library (see agent.h). Site mode follows
 * formats/api.md (provision, exchange, renew, each signed on its own TLS
 * connection through fio_httpc's body_fn); factory mode follows
 * formats/wire.md section 6.2 (device side, one answer cache).
 */
#include "device-agent/agent.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "formats/buf.h"
#include "formats/file.h"
#include "formats/id.h"
#include "formats/io/dnssd.h"
#include "formats/io/httpc.h"
#include "formats/io/keystore.h"
#include "formats/io/log.h"
#include "formats/json.h"
#include "formats/keyfile.h"
#include "formats/oob.h"
#include "formats/pop.h"
#include "formats/token.h"
#include "formats/wire.h"
#include "formats/x509.h"

#define NAME_MAX_LEN   32u                   /* longest file name in the state dir */
#define FILE_PATH_MAX  (AGT_PATH_MAX + NAME_MAX_LEN)
#define STATE_FILE_MAX 16384u                /* bytes of state.json */
#define FP_HEX_LEN     64u
#define LOG_MSG_MAX    512u
#define DISCOVER_MAX     32u            /* instances kept by one DNS-SD browse */
#define DISCOVER_WAIT_MS 5000           /* default bound of one browse */
#define DISCOVER_MIN_MS  2000           /* least time one browse listens (dnssd.h) */
/* A longer Retry-After (a suspended site says 300 s) ends the request at
 * once: run --once exits 4 naming the answer, the daemon retries on its own
 * schedule, rather than sleeping through it inside one request. */
#define RETRY_AFTER_WAIT_S 30
#define SERVICE_TYPE     "_idprov._tcp" /* formats/api.md §11 */

struct agt_ctx {
	struct agt_config cfg; /* strings point at the copies below */
	char *s_dir, *s_id, *s_mac, *s_iface, *s_serial, *s_fw, *s_url, *s_ca, *s_fp, *s_oob;
	char *s_kuri, *s_kprov;
	int lock_fd;
	struct fmt_key *key;    /* owned, or borrowed from ks */
	struct fio_keystore *ks; /* the key's store when cfg.key_uri is set */
	struct fmt_key *len_key; /* with ks: a software key of the same type (see post_signed) */
	uint8_t mac[FMT_MAC_LEN];
	atomic_int stop;
	bool use_nonce;
	/* state.json */
	char provision_url[FMT_API_URL_MAX + 1];
	char server_url[FMT_API_URL_MAX + 1];
	bool has_token;
	enum fmt_token_kind kind;
	char token[FMT_API_TOKEN_MAX + 1]; /* secret */
	struct fmt_token_claims claims;
	/* ca.pem */
	char ca_fp[FP_HEX_LEN + 1];
	char disc_fp[FP_HEX_LEN + 1]; /* the CA fingerprint DNS-SD named; "" when none */
	/* the last rejection */
	enum fmt_api_reason reason;
	char reason_code[FMT_API_CODE_MAX + 1];
	struct fio_httpc *http; /* for provision_url, verified by ca.pem */
	bool tls_resumed;       /* the last answer came on a resumed TLS session */
	bool renew_now;
	uint8_t oob_key[FMT_OOB_LEN]; /* the label secret's verifier (formats/oob.h); secret */
	bool has_oob_key;
	int64_t last_proof_ms;
};

/* ---------------------------------------------------------------- small helpers */

static void say(const struct agt_ctx *c, enum agt_log_level lvl, const char *event,
                const char *fmt, ...) IDP_PRINTF(4, 5);
static void say(const struct agt_ctx *c, enum agt_log_level lvl, const char *event,
                const char *fmt, ...)
{
	if (c->cfg.log == NULL || lvl > c->cfg.log_level)
		return;
	char msg[LOG_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	c->cfg.log(c->cfg.log_arg, lvl, event, msg);
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static bool stopped(const struct agt_ctx *c)
{
	return atomic_load(&c->stop) != 0;
}

/* Sleep ms milliseconds in short slices so that agt_stop is seen; false
 * when stopped. */
static bool nap(const struct agt_ctx *c, int64_t ms)
{
	while (ms > 0 && !stopped(c)) {
		int64_t k = ms < 100 ? ms : 100;
		struct timespec ts = {0, (long)k * 1000000L};
		(void)nanosleep(&ts, NULL);
		ms -= k;
	}
	return !stopped(c);
}

static enum idp_err path_of(const struct agt_ctx *c, const char *name,
                            char out[static FILE_PATH_MAX], struct idp_error *err)
{
	int n = snprintf(out, FILE_PATH_MAX, "%s/%s", c->cfg.state_dir, name);
	if (n < 0 || (size_t)n >= FILE_PATH_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "state dir: path too long");
	return IDP_OK;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static char *dup_str(const char *s, bool *oom)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	if (d == NULL)
		*oom = true;
	return d;
}

static void free_secret_str(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* ---------------------------------------------------------------- CA pin */

/* SHA-256 of the DER of the first certificate in pem[0..len), as hex; *cert
 * gets it when not NULL (caller frees). */
static enum idp_err cert_fp(const uint8_t *pem, size_t len, char hex[static FP_HEX_LEN + 1],
                            X509 **cert, struct idp_error *err)
{
	if (len == 0 || len > FMT_API_CA_PEM_MAX)
		return idp_error_set(err, IDP_E_FORMAT, "ca: %zu bytes, must be 1..%u", len,
		                     FMT_API_CA_PEM_MAX);
	X509 *x = NULL;
	enum idp_err rc = fmt_x509_parse_first(pem, len, &x, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "ca");
		return rc;
	}
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != FMT_KEY_FINGERPRINT_LEN) {
		X509_free(x);
		return idp_error_ssl(err, IDP_E_CRYPTO, "ca: fingerprint");
	}
	fmt_key_fingerprint_hex(md, hex);
	if (cert != NULL)
		*cert = x;
	else
		X509_free(x);
	return IDP_OK;
}

static enum idp_err file_fp(const char *path, char hex[static FP_HEX_LEN + 1],
                            struct idp_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = fmt_file_read(path, FMT_API_CA_PEM_MAX, &buf, &len, err);
	if (rc == IDP_OK)
		rc = cert_fp(buf, len, hex, NULL, err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "%s", path);
	free(buf);
	return rc;
}

/* Trust on first use: fetch GET /v1/ca without verification, check it is a
 * CA (and its fingerprint when one is configured), pin it. */
static enum idp_err pin_tofu(struct agt_ctx *c, const char *url, const char *ca_path,
                             struct idp_error *err)
{
	/* WARNING: no_verify is only for this fetch; the certificate is checked
	 * against the configured fingerprint, and everything after it (which
	 * carries secrets) is verified against the pin. */
	const struct fio_httpc_opts o = {.base_url = url, .no_verify = true, .attempts = 3};
	struct fio_httpc *h = NULL;
	struct fio_httpc_resp resp;
	memset(&resp, 0, sizeof(resp));
	X509 *x = NULL;
	char fp[FP_HEX_LEN + 1];
	enum idp_err rc = fio_httpc_new(&o, &h, err);
	if (rc == IDP_OK) {
		const struct fio_httpc_req r = {.method = "GET", .path = "/v1/ca", .idempotent = true};
		rc = fio_httpc_do(h, &r, &resp, err);
	}
	if (rc == IDP_OK)
		rc = cert_fp(resp.body, resp.len, fp, &x, err);
	if (rc == IDP_OK && X509_check_ca(x) < 1)
		rc = idp_error_set(err, IDP_E_VERIFY, "ca: the server's /v1/ca is not a CA certificate");
	/* The configured fingerprint, else the one DNS-SD carried. */
	const char *want = c->cfg.ca_fingerprint != NULL ? c->cfg.ca_fingerprint
	                   : c->disc_fp[0] != '\0'       ? c->disc_fp
	                                                 : NULL;
	if (rc == IDP_OK && want != NULL && strcasecmp(fp, want) != 0)
		rc = idp_error_set(
		        err, IDP_E_VERIFY,
		        "ca: the server's CA has fingerprint %s, expected %.64s%s: refused", fp,
		        want, want == c->disc_fp ? " (from DNS-SD)" : "");
	BIO *b = NULL;
	if (rc == IDP_OK) {
		/* Pin exactly the certificate whose fingerprint was checked. */
		b = BIO_new(BIO_s_mem());
		char *p = NULL;
		long n = 0;
		if (b == NULL || PEM_write_bio_X509(b, x) != 1 || (n = BIO_get_mem_data(b, &p)) <= 0)
			rc = idp_error_ssl(err, IDP_E_CRYPTO, "ca: cannot encode");
		else
			rc = fmt_file_write_atomic(ca_path, (const uint8_t *)p, (size_t)n, 0644, err);
	}
	if (rc == IDP_OK) {
		memcpy(c->ca_fp, fp, sizeof(c->ca_fp));
		say(c, AGT_LOG_INFO, "ca.pinned", "source=%s fingerprint=%s",
		    want == c->disc_fp ? "dns-sd" : "first-use", fp);
	}
	BIO_free(b);
	X509_free(x);
	fio_httpc_resp_free(&resp);
	fio_httpc_free(h);
	return rc;
}

/* The fingerprint of ca.pem into c->ca_fp. A copy of a configured CA file
 * that does not parse (a power cut after its unsynced write) is ignored:
 * c->ca_fp stays "" and ensure_pin copies the file again. */
static enum idp_err load_pin(struct agt_ctx *c, const char *ca_path, struct idp_error *err)
{
	c->ca_fp[0] = '\0';
	struct idp_error e = {0};
	enum idp_err rc = file_fp(ca_path, c->ca_fp, &e);
	if (rc != IDP_OK && c->cfg.ca_file != NULL) {
		c->ca_fp[0] = '\0';
		say(c, AGT_LOG_WARN, "ca.copy_unreadable", "copied again from the configured CA file");
		return IDP_OK;
	}
	if (rc != IDP_OK && err != NULL)
		*err = e;
	return rc;
}

/* Make sure ca.pem holds the pin: a pre-loaded CA is copied there on first
 * use, and must stay the same; without one, trust on first use. */
static enum idp_err ensure_pin(struct agt_ctx *c, const char *url, struct idp_error *err)
{
	char ca_path[FILE_PATH_MAX];
	enum idp_err rc = path_of(c, "ca.pem", ca_path, err);
	if (rc != IDP_OK)
		return rc;
	c->ca_fp[0] = '\0';
	if (exists(ca_path)) {
		rc = load_pin(c, ca_path, err);
		if (rc != IDP_OK)
			return rc;
	}
	if (c->ca_fp[0] != '\0') {
		if (c->cfg.ca_file == NULL)
			return IDP_OK;
		char fp[FP_HEX_LEN + 1];
		rc = file_fp(c->cfg.ca_file, fp, err);
		if (rc == IDP_OK && strcmp(fp, c->ca_fp) != 0)
			rc = idp_error_set(err, IDP_E_VERIFY,
			                   "ca: %s (%s) is not the pinned CA (%s): refused",
			                   c->cfg.ca_file, fp, c->ca_fp);
		return rc;
	}
	if (c->cfg.ca_file == NULL)
		return pin_tofu(c, url, ca_path, err);
	uint8_t *buf = NULL;
	size_t len = 0;
	rc = fmt_file_read(c->cfg.ca_file, FMT_API_CA_PEM_MAX, &buf, &len, err);
	if (rc == IDP_OK) {
		rc = cert_fp(buf, len, c->ca_fp, NULL, err);
		if (rc != IDP_OK)
			idp_error_prefix(err, "%s", c->cfg.ca_file);
	}
	/* A copy of the configured file, made again from it when lost or
	 * unreadable (load_pin): no fsync of its own, it becomes durable
	 * with the state written after the answer. */
	if (rc == IDP_OK)
		rc = fmt_file_write_atomic_ex(ca_path, buf, len, 0644,
		                              FMT_FILE_NO_DATA_SYNC | FMT_FILE_NO_DIR_SYNC, err);
	free(buf);
	if (rc == IDP_OK)
		say(c, AGT_LOG_INFO, "ca.pinned", "source=file fingerprint=%s", c->ca_fp);
	return rc;
}

/* A pin copied from the configured CA file may be lost or garbled by a
 * power cut that kept the token written after it (the copy has no fsync of
 * its own): copy it again. A pin trusted on first use is durable at once. */
static enum idp_err pin_again(struct agt_ctx *c, struct idp_error *err)
{
	char ca_path[FILE_PATH_MAX];
	enum idp_err rc = path_of(c, "ca.pem", ca_path, err);
	if (rc != IDP_OK || c->cfg.ca_file == NULL || (exists(ca_path) && c->ca_fp[0] != '\0'))
		return rc;
	return ensure_pin(c, c->provision_url, err);
}

/* ---------------------------------------------------------------- state.json */

static void token_forget(struct agt_ctx *c)
{
	OPENSSL_cleanse(c->token, sizeof(c->token));
	memset(&c->claims, 0, sizeof(c->claims));
	c->has_token = false;
}

/* Write state.json; flags as fmt_file_write_atomic_ex (0: durable now). */
static enum idp_err state_save(struct agt_ctx *c, unsigned flags, struct idp_error *err)
{
	char path[FILE_PATH_MAX];
	enum idp_err rc = path_of(c, "state.json", path, err);
	if (rc != IDP_OK)
		return rc;
	struct fmt_buf b; /* holds the token: wiped as it grows and when freed */
	fmt_buf_init(&b, STATE_FILE_MAX, FMT_BUF_SECRET);
	fmt_buf_add_str(&b, "{");
	fmt_json_put_str(&b, "provision_url", c->provision_url);
	fmt_json_put_str(&b, "server_url", c->server_url);
	if (c->has_token) {
		fmt_json_put_str(&b, "token_kind", fmt_token_kind_name(c->kind));
		fmt_json_put_str(&b, "token", c->token);
	}
	fmt_buf_add_str(&b, "}\n");
	rc = fmt_buf_check(&b, "state", err);
	if (rc == IDP_OK)
		rc = fmt_file_write_atomic_ex(path, b.p, b.len, 0600, flags, err);
	fmt_buf_free(&b);
	return rc;
}

/* Make earlier deferred writes in the state directory durable; best effort
 * (a failure only costs a provisioning again after a power cut). */
static void state_sync(const struct agt_ctx *c)
{
	char path[FILE_PATH_MAX];
	struct idp_error err = {0};
	if (path_of(c, "state.json", path, &err) != IDP_OK || fmt_file_sync_dir(path, &err) != IDP_OK)
		say(c, AGT_LOG_WARN, "state.sync", "error=\"%s\"", err.msg);
}

static enum idp_err copy_member(const cJSON *o, const char *name, bool required, char *out,
                                size_t max, struct idp_error *err)
{
	const char *s = NULL;
	size_t len = 0;
	enum idp_err rc = fmt_json_get_string(o, name, required, true, max - 1, &s, &len, err);
	if (rc == IDP_OK && s != NULL) {
		memcpy(out, s, len);
		out[len] = '\0';
	}
	return rc;
}

static enum idp_err state_load(struct agt_ctx *c, struct idp_error *err)
{
	char path[FILE_PATH_MAX];
	enum idp_err rc = path_of(c, "state.json", path, err);
	uint8_t *buf = NULL;
	size_t len = 0;
	cJSON *o = NULL;
	token_forget(c);
	if (rc == IDP_OK)
		rc = fmt_file_read(path, STATE_FILE_MAX, &buf, &len, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	if (rc == IDP_OK)
		rc = fmt_json_parse(buf, len, 1, &o, err);
	if (rc == IDP_OK && !cJSON_IsObject(o))
		rc = idp_error_set(err, IDP_E_FORMAT, "not an object");
	if (rc == IDP_OK)
		rc = copy_member(o, "provision_url", true, c->provision_url,
		                 sizeof(c->provision_url), err);
	if (rc == IDP_OK)
		rc = copy_member(o, "server_url", true, c->server_url, sizeof(c->server_url), err);
	char kind[16] = "";
	if (rc == IDP_OK)
		rc = copy_member(o, "token_kind", false, kind, sizeof(kind), err);
	if (rc == IDP_OK)
		rc = copy_member(o, "token", false, c->token, sizeof(c->token), err);
	if (rc == IDP_OK && c->token[0] != '\0') {
		c->kind = fmt_token_kind_of(kind, strlen(kind)) == FMT_TOKEN_DEVICE
		                  ? FMT_TOKEN_DEVICE
		                  : FMT_TOKEN_PROVISION;
		rc = fmt_token_decode_unverified((const uint8_t *)c->token, strlen(c->token),
		                                 &c->claims, err);
		c->has_token = rc == IDP_OK;
	}
	cJSON_Delete(o);
	fmt_file_free_secret(buf, len);
	if (rc != IDP_OK) {
		token_forget(c);
		idp_error_prefix(err, "%s", path);
	}
	return rc;
}

/* ---------------------------------------------------------------- key, MAC */

static enum idp_err write_public(struct agt_ctx *c, struct idp_error *err)
{
	char path[FILE_PATH_MAX];
	enum idp_err rc = path_of(c, "key.pub", path, err);
	if (rc != IDP_OK || exists(path))
		return rc;
	char *pem = NULL;
	size_t len = 0;
	rc = fmt_key_public_pem(c->key, &pem, &len, err);
	if (rc == IDP_OK)
		rc = fmt_file_write_atomic(path, (const uint8_t *)pem, len, 0644, err);
	free(pem);
	return rc;
}

static void key_fp_hex(const struct fmt_key *k, char hex[static FP_HEX_LEN + 1])
{
	uint8_t fp[FMT_KEY_FINGERPRINT_LEN];
	hex[0] = '\0';
	if (fmt_key_fingerprint(k, fp, NULL) == IDP_OK)
		fmt_key_fingerprint_hex(fp, hex);
}

/* The key behind cfg.key_uri, which must be the device's one identity: no
 * key.pem beside it, and the key key.pub names when there is one. */
static enum idp_err key_from_store(struct agt_ctx *c, struct idp_error *err)
{
	char path[FILE_PATH_MAX];
	enum idp_err rc = path_of(c, "key.pem", path, err);
	if (rc == IDP_OK && exists(path))
		return idp_error_set(err, IDP_E_CONFLICT,
		                     "device key: %s exists and a key URI is set: one identity only "
		                     "(remove one of them)",
		                     path);
	if (rc == IDP_OK)
		rc = fio_keystore_open(c->cfg.key_uri, c->cfg.key_providers, &c->ks, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "device key");
		return rc;
	}
	c->key = fio_keystore_key(c->ks);
	char hex[FP_HEX_LEN + 1], old[FP_HEX_LEN + 1];
	key_fp_hex(c->key, hex);
	rc = path_of(c, "key.pub", path, err);
	if (rc == IDP_OK && exists(path)) {
		struct fmt_key *pub = NULL;
		rc = fmt_keyfile_load_public(path, &pub, err);
		if (rc == IDP_OK) {
			key_fp_hex(pub, old);
			if (hex[0] == '\0' || strcmp(hex, old) != 0)
				rc = idp_error_set(err, IDP_E_CONFLICT,
				                   "device key: the key URI names key %s, but this device "
				                   "is %s (%s): refused",
				                   hex, old, path);
		}
		fmt_key_free(pub);
	}
	if (rc == IDP_OK)
		say(c, AGT_LOG_INFO, "key.loaded", "source=store type=%s fingerprint=%s",
		    fmt_key_type_name(fmt_key_type(c->key)), hex);
	return rc;
}

/* Load key.pem, or create it once: written as key.pem.new, then hard-linked
 * to key.pem, which fails if a key.pem appeared meanwhile, so an existing key
 * is never replaced, whatever the timing of a crash. A key.pub without
 * key.pem means the key lived elsewhere (a store URI no longer configured):
 * no new identity is made then. */
static enum idp_err key_load_or_create(struct agt_ctx *c, struct idp_error *err)
{
	if (c->cfg.key_uri != NULL)
		return key_from_store(c, err);
	char path[FILE_PATH_MAX], tmp[FILE_PATH_MAX], pub[FILE_PATH_MAX];
	enum idp_err rc = path_of(c, "key.pem", path, err);
	if (rc == IDP_OK)
		rc = path_of(c, "key.pem.new", tmp, err);
	if (rc == IDP_OK)
		rc = path_of(c, "key.pub", pub, err);
	if (rc != IDP_OK)
		return rc;
	if (exists(path)) {
		rc = fmt_keyfile_load_private(path, &c->key, err);
		if (rc != IDP_OK)
			idp_error_prefix(err, "device key (kept as it is)");
		return rc;
	}
	if (errno != ENOENT)
		return idp_error_set(err, IDP_E_IO, "%s: %s", path, strerror(errno));
	if (exists(pub))
		return idp_error_set(err, IDP_E_CONFLICT,
		                     "device key: %s exists without key.pem: the key is elsewhere "
		                     "(configure its key URI); not making another",
		                     pub);
	/* First boot: wait until the kernel's pool is initialised (no
	 * GRND_NONBLOCK) before drawing a key from it. */
	uint8_t b;
	while (getrandom(&b, 1, 0) < 0 && errno == EINTR)
		;
	enum fmt_key_type t = c->cfg.key_type != 0 ? c->cfg.key_type : FMT_KEY_P256;
	char *pem = NULL;
	size_t len = 0;
	rc = fmt_key_generate(t, &c->key, err);
	if (rc == IDP_OK)
		rc = fmt_key_private_pem(c->key, &pem, &len, err);
	if (rc == IDP_OK)
		rc = fmt_file_write_atomic(tmp, (const uint8_t *)pem, len, 0600, err);
	fmt_key_free_secret(pem, len);
	if (rc != IDP_OK)
		return rc;
	if (link(tmp, path) != 0) {
		int e = errno;
		(void)unlink(tmp);
		if (e != EEXIST)
			return idp_error_set(err, IDP_E_IO, "%s: link: %s", path, strerror(e));
		fmt_key_free(c->key);
		c->key = NULL;
		return fmt_keyfile_load_private(path, &c->key, err);
	}
	(void)unlink(tmp);
	rc = fmt_file_sync_dir(path, err);
	if (rc == IDP_OK) {
		char hex[FP_HEX_LEN + 1];
		key_fp_hex(c->key, hex);
		say(c, AGT_LOG_INFO, "key.created", "type=%s fingerprint=%s",
		    fmt_key_type_name(t), hex);
	}
	return rc;
}

static enum idp_err read_mac(struct agt_ctx *c, struct idp_error *err)
{
	if (c->cfg.mac != NULL)
		return fmt_mac_parse(c->cfg.mac, strlen(c->cfg.mac), c->mac, err);
	const char *iface = c->cfg.mac_iface != NULL ? c->cfg.mac_iface : "eth0";
	if (strchr(iface, '/') != NULL || strnlen(iface, 32) >= 32)
		return idp_error_set(err, IDP_E_ARG, "mac interface: not an interface name");
	char path[96];
	(void)snprintf(path, sizeof(path), "/sys/class/net/%s/address", iface);
	uint8_t *buf = NULL;
	size_t len = 0;
	/* A sysfs attribute's size is a whole page (4096, or 64 KiB pages), whatever
	 * it holds: bound the read by that, fmt_mac_parse checks what it holds. */
	enum idp_err rc = fmt_file_read(path, 65536, &buf, &len, err);
	while (rc == IDP_OK && len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		len--;
	if (rc == IDP_OK)
		rc = fmt_mac_parse((const char *)buf, len, c->mac, err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "mac from %s", path);
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------- open, close */

static enum idp_err copy_config(struct agt_ctx *c, const struct agt_config *cfg,
                                struct idp_error *err)
{
	bool oom = false;
	c->cfg = *cfg;
	c->cfg.state_dir = c->s_dir = dup_str(cfg->state_dir, &oom);
	c->cfg.device_id = c->s_id = dup_str(cfg->device_id, &oom);
	c->cfg.mac = c->s_mac = dup_str(cfg->mac, &oom);
	c->cfg.mac_iface = c->s_iface = dup_str(cfg->mac_iface, &oom);
	c->cfg.serial = c->s_serial = dup_str(cfg->serial, &oom);
	c->cfg.fw_version = c->s_fw = dup_str(cfg->fw_version, &oom);
	c->cfg.server_url = c->s_url = dup_str(cfg->server_url, &oom);
	c->cfg.ca_file = c->s_ca = dup_str(cfg->ca_file, &oom);
	c->cfg.ca_fingerprint = c->s_fp = dup_str(cfg->ca_fingerprint, &oom);
	c->cfg.oob_secret = c->s_oob = dup_str(cfg->oob_secret, &oom);
	c->cfg.key_uri = c->s_kuri = dup_str(cfg->key_uri, &oom);
	c->cfg.key_providers = c->s_kprov = dup_str(cfg->key_providers, &oom);
	if (c->cfg.log_level == 0)
		c->cfg.log_level = AGT_LOG_INFO;
	if (c->cfg.proof_interval_ms <= 0)
		c->cfg.proof_interval_ms = 1000;
	if (oom)
		return idp_error_set(err, IDP_E_NOMEM, "agent: out of memory");
	return IDP_OK;
}

static enum idp_err check_config(const struct agt_config *cfg, struct idp_error *err)
{
	if (cfg->state_dir == NULL || cfg->state_dir[0] == '\0' ||
	    strnlen(cfg->state_dir, AGT_PATH_MAX) >= AGT_PATH_MAX)
		return idp_error_set(err, IDP_E_ARG, "state dir: missing or too long");
	if (cfg->device_id == NULL)
		return idp_error_set(err, IDP_E_ARG, "device id: missing");
	enum idp_err rc =
	        fmt_id_check(cfg->device_id, strnlen(cfg->device_id, FMT_ID_MAX + 1), "device id", err);
	if (rc == IDP_OK && cfg->serial != NULL)
		rc = fmt_id_check(cfg->serial, strnlen(cfg->serial, FMT_ID_MAX + 1), "serial", err);
	if (rc == IDP_OK && cfg->key_type != 0 && cfg->key_type != FMT_KEY_P256 &&
	    cfg->key_type != FMT_KEY_ED25519)
		rc = idp_error_set(err, IDP_E_ARG, "key type: p256 or ed25519");
	if (rc == IDP_OK && cfg->key_uri != NULL &&
	    (cfg->key_uri[0] == '\0' || strnlen(cfg->key_uri, FIO_KEYSTORE_URI_MAX + 1) >
	                                         FIO_KEYSTORE_URI_MAX))
		rc = idp_error_set(err, IDP_E_ARG, "key uri: empty or over %u bytes",
		                   FIO_KEYSTORE_URI_MAX);
	if (rc == IDP_OK && cfg->attempts > AGT_ATTEMPTS_MAX)
		rc = idp_error_set(err, IDP_E_ARG, "attempts: %u, at most %u", cfg->attempts,
		                   AGT_ATTEMPTS_MAX);
	if (rc == IDP_OK && cfg->key_providers != NULL && cfg->key_uri == NULL)
		rc = idp_error_set(err, IDP_E_ARG, "key providers: set without a key uri");
	if (rc == IDP_OK && cfg->server_url != NULL &&
	    (strncmp(cfg->server_url, "https://", 8) != 0 ||
	     strnlen(cfg->server_url, FMT_API_URL_MAX + 1) > FMT_API_URL_MAX))
		rc = idp_error_set(err, IDP_E_ARG, "server url: must be https:// and at most %u bytes",
		                   FMT_API_URL_MAX);
	if (rc == IDP_OK && cfg->ca_fingerprint != NULL) {
		size_t n = strnlen(cfg->ca_fingerprint, FP_HEX_LEN + 1);
		for (size_t i = 0; i < n; i++)
			if (strchr("0123456789abcdefABCDEF", cfg->ca_fingerprint[i]) == NULL)
				n = 0;
		if (n != FP_HEX_LEN)
			rc = idp_error_set(err, IDP_E_ARG, "ca fingerprint: must be 64 hex digits");
	}
	if (rc == IDP_OK && cfg->oob_secret != NULL &&
	    fmt_oob_secret_check(cfg->oob_secret, strnlen(cfg->oob_secret, FMT_OOB_SECRET_MAX + 1),
	                         NULL) != IDP_OK) /* never quote the value */
		rc = idp_error_set(err, IDP_E_ARG,
		                   "out-of-band secret: 1..%u printable characters, no space",
		                   FMT_OOB_SECRET_MAX);
	return rc;
}

/* agt_open for reading only: the key must exist; nothing is written. A key
 * in a store is read from key.pub: a status beside a running agent must not
 * compete for the hardware. */
static enum idp_err read_only_open(struct agt_ctx *c, struct idp_error *err)
{
	char path[FILE_PATH_MAX];
	bool store = c->cfg.key_uri != NULL;
	enum idp_err rc = path_of(c, store ? "key.pub" : "key.pem", path, err);
	if (rc == IDP_OK && store)
		rc = fmt_keyfile_load_public(path, &c->key, err);
	else if (rc == IDP_OK)
		rc = fmt_keyfile_load_private(path, &c->key, err);
	if (rc == IDP_OK && (c->cfg.mac != NULL || c->cfg.mac_iface != NULL))
		rc = read_mac(c, err);
	if (rc == IDP_OK)
		rc = state_load(c, err);
	if (rc == IDP_OK && path_of(c, "ca.pem", path, NULL) == IDP_OK && exists(path))
		rc = load_pin(c, path, err);
	return rc;
}

enum idp_err agt_open(const struct agt_config *cfg, struct agt_ctx **out, struct idp_error *err)
{
	*out = NULL;
	enum idp_err rc = check_config(cfg, err);
	if (rc != IDP_OK)
		return rc;
	struct agt_ctx *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "agent: out of memory");
	c->lock_fd = -1;
	atomic_init(&c->stop, 0);
	c->use_nonce = cfg->use_nonce;
	rc = copy_config(c, cfg, err);
	if (rc == IDP_OK && cfg->read_only) {
		rc = read_only_open(c, err);
		goto done;
	}
	if (rc == IDP_OK && mkdir(c->cfg.state_dir, 0700) != 0 && errno != EEXIST)
		rc = idp_error_set(err, IDP_E_IO, "%s: mkdir: %s", c->cfg.state_dir, strerror(errno));
	char path[FILE_PATH_MAX];
	if (rc == IDP_OK)
		rc = path_of(c, "lock", path, err);
	if (rc == IDP_OK) {
		c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (c->lock_fd < 0)
			rc = idp_error_set(err, IDP_E_IO, "%s: %s", path, strerror(errno));
		else if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0)
			rc = idp_error_set(err, errno == EWOULDBLOCK ? IDP_E_CONFLICT : IDP_E_IO,
			                   "%s: another agent uses this state dir", c->cfg.state_dir);
	}
	if (rc == IDP_OK)
		rc = read_mac(c, err);
	if (rc == IDP_OK)
		rc = key_load_or_create(c, err);
	if (rc == IDP_OK)
		rc = write_public(c, err);
	if (rc == IDP_OK)
		rc = state_load(c, err);
	if (rc == IDP_OK && path_of(c, "ca.pem", path, NULL) == IDP_OK && exists(path))
		rc = load_pin(c, path, err);
done:
	if (rc != IDP_OK) {
		agt_close(c);
		return rc;
	}
	*out = c;
	return IDP_OK;
}

void agt_close(struct agt_ctx *c)
{
	if (c == NULL)
		return;
	fio_httpc_free(c->http);
	fmt_key_free(c->len_key);
	if (c->ks != NULL)
		fio_keystore_free(c->ks); /* c->key is its key */
	else
		fmt_key_free(c->key);
	if (c->lock_fd >= 0)
		(void)close(c->lock_fd); /* releases the flock */
	free(c->s_dir);
	free(c->s_id);
	free(c->s_mac);
	free(c->s_iface);
	free(c->s_serial);
	free(c->s_fw);
	free(c->s_url);
	free(c->s_ca);
	free(c->s_fp);
	free_secret_str(c->s_oob);
	free_secret_str(c->s_kuri); /* a PKCS#11 URI may carry a PIN */
	free(c->s_kprov);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

void agt_stop(struct agt_ctx *c)
{
	atomic_store(&c->stop, 1);
}

void agt_renew_now(struct agt_ctx *c)
{
	c->renew_now = true;
}

enum idp_err agt_public_pem(const struct agt_ctx *c, char **pem, size_t *len, struct idp_error *err)
{
	return fmt_key_public_pem(c->key, pem, len, err);
}

enum fmt_api_reason agt_last_reason(const struct agt_ctx *c, char *code)
{
	if (code != NULL)
		(void)snprintf(code, FMT_API_CODE_MAX + 1, "%s", c->reason_code);
	return c->reason;
}

static bool is_sealed(const struct agt_ctx *c)
{
	char path[FILE_PATH_MAX];
	return path_of(c, "sealed", path, NULL) == IDP_OK && exists(path);
}

/* Write the seal; flags as fmt_file_write_atomic_ex. Its existence alone
 * counts, so its content needs no fsync of its own when the caller says so. */
static enum idp_err seal_write(struct agt_ctx *c, unsigned flags, struct idp_error *err)
{
	char path[FILE_PATH_MAX];
	enum idp_err rc = path_of(c, "sealed", path, err);
	if (rc != IDP_OK || exists(path))
		return rc;
	static const char text[] = "sealed: factory mode is closed on this device\n";
	rc = fmt_file_write_atomic_ex(path, (const uint8_t *)text, sizeof(text) - 1, 0644, flags,
	                              err);
	if (rc == IDP_OK)
		say(c, AGT_LOG_INFO, "factory.sealed", "device=%s", c->cfg.device_id);
	return rc;
}

enum idp_err agt_seal(struct agt_ctx *c, struct idp_error *err)
{
	return seal_write(c, 0, err);
}

void agt_status(const struct agt_ctx *c, struct agt_status *st)
{
	memset(st, 0, sizeof(*st));
	(void)snprintf(st->device_id, sizeof(st->device_id), "%s", c->cfg.device_id);
	fmt_mac_format(c->mac, st->mac);
	st->key_type = fmt_key_type(c->key);
	key_fp_hex(c->key, st->key_fingerprint);
	st->key_in_store = c->cfg.key_uri != NULL;
	memcpy(st->provision_url, c->provision_url, sizeof(st->provision_url));
	memcpy(st->server_url, c->server_url, sizeof(st->server_url));
	memcpy(st->ca_fingerprint, c->ca_fp, sizeof(st->ca_fingerprint));
	st->has_token = c->has_token;
	if (c->has_token) {
		st->device_token = c->kind == FMT_TOKEN_DEVICE;
		st->token_expires = c->claims.exp;
		st->next_renewal = st->device_token ? fmt_token_renew_at(&c->claims) : now_s();
	}
	st->sealed = is_sealed(c);
}

/* ---------------------------------------------------------------- API calls */

/* The body of a signed request, made on the live connection. */
struct pop_call {
	const struct agt_ctx *c;
	const struct fmt_key *key; /* signs: the device key, or len_key to learn the length */
	struct fmt_api_request *req;
	const uint8_t *nonce;
	int64_t ts;
	char *buf; /* FMT_API_BODY_MAX + 1 */
};

static enum idp_err pop_encode(struct pop_call *p, const uint8_t exporter[static 32], size_t *len,
                               struct idp_error *err)
{
	enum idp_err rc = IDP_OK;
	if (p->req->has_oob_proof) {
		/* The label secret proven on this connection (formats/api.md §15);
		 * the proof of possession then covers it. Made for the device key
		 * (its public half) even while len_key only measures the body. */
		uint8_t spki[FMT_KEY_SPKI_MAX];
		size_t spki_len = 0;
		rc = fmt_key_spki_der(p->c->key, spki, &spki_len, err);
		if (rc == IDP_OK)
			rc = fmt_oob_proof(p->c->oob_key, exporter, p->req->device_id, spki, spki_len,
			                   p->req->oob_proof, err);
	}
	if (rc == IDP_OK)
		rc = fmt_api_pop_sign(p->req, p->key, exporter, p->ts, p->nonce, err);
	if (rc == IDP_OK)
		rc = fmt_api_request_encode(p->req, p->buf, FMT_API_BODY_MAX + 1, len, err);
	return rc;
}

static enum idp_err pop_body(void *arg, const uint8_t exporter[static FIO_TLS_EXPORTER_LEN],
                             uint8_t *out, size_t len, struct idp_error *err)
{
	struct pop_call *p = arg;
	size_t n = 0;
	enum idp_err rc = pop_encode(p, exporter, &n, err);
	if (rc == IDP_OK && n != len)
		rc = idp_error_set(err, IDP_E_ARG, "proof: body is %zu bytes, announced %zu", n, len);
	if (rc == IDP_OK)
		memcpy(out, p->buf, len);
	OPENSSL_cleanse(p->buf, FMT_API_BODY_MAX + 1);
	return rc;
}

static enum idp_err client(struct agt_ctx *c, struct idp_error *err)
{
	if (c->http != NULL)
		return IDP_OK;
	char ca[FILE_PATH_MAX];
	enum idp_err rc = path_of(c, "ca.pem", ca, err);
	/* One try per call: post_signed retries, each time on a new
	 * connection with a new proof (a proof is bound to its connection). */
	const struct fio_httpc_opts o = {
	        .base_url = c->provision_url, .ca_file = ca, .attempts = 1,
	        .retry_after_max = RETRY_AFTER_WAIT_S};
	if (rc == IDP_OK)
		rc = fio_httpc_new(&o, &c->http, err);
	return rc;
}

/* "resumed" or "full": how the last answer's TLS session began. */
static const char *tls_kind(const struct agt_ctx *c)
{
	return c->tls_resumed ? "resumed" : "full";
}

/* Before a long wait: drop the connection (the server would), keep the TLS
 * session, so the next request resumes it without the certificate. */
static void idle(struct agt_ctx *c)
{
	struct idp_error err = {0};
	if (c->http != NULL && fio_httpc_disconnect(c->http, &err) != IDP_OK)
		say(c, AGT_LOG_WARN, "http.idle", "error=\"%s\"", err.msg);
}

/* Fetch a server nonce; *ts gets the server's time to sign with. */
static enum idp_err get_nonce(struct agt_ctx *c, uint8_t nonce[static FMT_API_NONCE_LEN],
                              int64_t *ts, struct idp_error *err)
{
	const struct fio_httpc_req r = {
	        .method = "POST", .path = "/v1/nonce", .body = (const uint8_t *)"", .body_len = 0};
	struct fio_httpc_resp resp;
	struct fmt_api_nonce n;
	enum idp_err rc = fio_httpc_do(c->http, &r, &resp, err);
	if (rc == IDP_OK)
		rc = fmt_api_nonce_parse(resp.body, resp.len, &n, err);
	if (rc == IDP_OK) {
		memcpy(nonce, n.nonce, FMT_API_NONCE_LEN);
		*ts = n.time;
	}
	fio_httpc_resp_free(&resp);
	return rc;
}

/* One try of post_signed: its nonce when one is used, then the POST;
 * *retry_after gets the answer's Retry-After (seconds, 0: none). */
static enum idp_err post_once(struct agt_ctx *c, struct fmt_api_request *req,
                              struct fmt_api_answer *ans, long *status, int64_t *retry_after,
                              struct idp_error *err)
{
	static const char *const paths[] = {"", "/v1/provision", "/v1/token/exchange",
	                                    "/v1/token/renew"};
	*status = 0;
	*retry_after = 0;
	memset(ans, 0, sizeof(*ans));
	enum idp_err rc = client(c, err);
	if (rc != IDP_OK)
		return rc;
	uint8_t nonce[FMT_API_NONCE_LEN];
	struct pop_call p = {.c = c, .key = c->key, .req = req, .ts = now_s()};
	if (c->use_nonce) {
		rc = get_nonce(c, nonce, &p.ts, err);
		if (rc != IDP_OK)
			return rc;
		p.nonce = nonce;
	}
	p.buf = malloc(FMT_API_BODY_MAX + 1);
	if (p.buf == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "agent: out of memory");
	/* The length is fixed by the members: sign once with a dummy exporter
	 * to learn it (not all zero: the signer refuses that). It does not
	 * depend on the key's bytes, only on its type (SPKI and signature
	 * sizes are fixed per type), so a key in hardware, slow to sign with,
	 * is stood in for by a software key of its type; pop_body checks the
	 * real length against this one. */
	if (c->ks != NULL && c->len_key == NULL)
		rc = fmt_key_generate(fmt_key_type(c->key), &c->len_key, err);
	uint8_t dummy[FMT_API_EXPORTER_LEN];
	memset(dummy, 0x5a, sizeof(dummy));
	size_t len = 0;
	if (rc == IDP_OK) {
		p.key = c->ks != NULL ? c->len_key : c->key;
		rc = pop_encode(&p, dummy, &len, err);
		p.key = c->key;
	}
	OPENSSL_cleanse(p.buf, FMT_API_BODY_MAX + 1);
	struct fio_httpc_resp resp;
	memset(&resp, 0, sizeof(resp));
	if (rc == IDP_OK) {
		const struct fio_httpc_req r = {.method = "POST",
		                                .path = paths[req->purpose],
		                                .content_type = "application/json",
		                                .body_fn = pop_body,
		                                .body_arg = &p,
		                                .body_len = len};
		rc = fio_httpc_do(c->http, &r, &resp, err);
		c->tls_resumed = resp.tls_resumed;
		*retry_after = resp.retry_after;
		if (rc == IDP_E_VERIFY)
			idp_error_prefix(err, "not the pinned CA's server (%s)", c->ca_fp);
	}
	free(p.buf);
	if (resp.status != 0 && resp.body != NULL) {
		/* A transport error already in err stays the one reported. */
		enum idp_err prc =
		        fmt_api_answer_parse(resp.body, resp.len, ans, rc == IDP_OK ? err : NULL);
		if (prc == IDP_OK) {
			*status = resp.status;
			rc = IDP_OK;
		} else if (rc == IDP_OK) {
			rc = prc;
			idp_error_prefix(err, "server answer");
		}
	}
	fio_httpc_resp_free(&resp);
	return rc;
}

/* Delay before pending poll number n (0, 1, ...): the server's retry_after,
 * doubled from 1 s per poll when that is longer, capped, plus up to 25 %
 * jitter so that a line of devices powered together spreads out. */
static int64_t pending_delay_ms(int64_t retry_after, unsigned n)
{
	int64_t d = (int64_t)1 << (n < 9 ? n : 9);
	if (d < retry_after)
		d = retry_after;
	if (d > AGT_WAIT_CAP_S)
		d = AGT_WAIT_CAP_S;
	uint32_t rnd = 0;
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = 0;
	return d * 1000 + (int64_t)(rnd % (uint32_t)(d * 250 + 1));
}

/* Whether a try of post_signed ended without a decision and may be made
 * again: a transport failure (no answer, a reset, half an answer: the
 * request may have been decided, and a new request with a new proof is
 * what the server expects after a lost answer, formats/api.md §6.1), or
 * 429 / 503 with a Retry-After the agent waits for (throttled,
 * storage_full, unavailable). Never an answer that is a decision or a
 * refusal. */
static bool no_decision(enum idp_err rc, long status, const struct fmt_api_answer *a,
                        int64_t retry_after)
{
	if (status == 0)
		return rc == IDP_E_IO || rc == IDP_E_TIMEOUT;
	return rc == IDP_OK && a->is_error && (status == 429 || status == 503) && retry_after > 0 &&
	       retry_after <= RETRY_AFTER_WAIT_S;
}

/* POST req (its purpose's path) with a proof bound to the connection; *ans
 * gets the answer (decision or API error) when one arrived (*status != 0).
 * A transport failure returns its code with *status = 0. Tried up to
 * cfg.attempts times while no decision comes back (no_decision), each time
 * on a new connection with a new proof (agent.h, attempts). */
static enum idp_err post_signed(struct agt_ctx *c, struct fmt_api_request *req,
                                struct fmt_api_answer *ans, long *status, struct idp_error *err)
{
	static const char *const names[] = {"", "provision", "exchange", "renew"};
	unsigned attempts = c->cfg.attempts > 0 ? c->cfg.attempts : AGT_ATTEMPTS_DEFAULT;
	int64_t start = fio_mono_ms();
	for (unsigned n = 1;; n++) {
		int64_t retry_after = 0;
		enum idp_err rc = post_once(c, req, ans, status, &retry_after, err);
		if (n >= attempts || !no_decision(rc, *status, ans, retry_after))
			return rc;
		int64_t d = pending_delay_ms(retry_after, n - 1);
		if (fio_mono_ms() - start + d > (int64_t)AGT_RETRY_TIME_S * 1000)
			return rc;
		char why[64];
		if (*status != 0)
			(void)snprintf(why, sizeof(why), "%ld_%s", *status, ans->error.code_text);
		else
			(void)snprintf(why, sizeof(why), "%s", idp_err_name(rc));
		say(c, AGT_LOG_WARN, "request.retry",
		    "device=%s request=%s attempt=%u of=%u after=%s retry_after=%lld wait_ms=%lld",
		    c->cfg.device_id, names[req->purpose], n + 1, attempts, why,
		    (long long)retry_after, (long long)d);
		idle(c); /* a new connection: the next proof is bound to it */
		if (!nap(c, d))
			return rc;
	}
}

/* Fill the members every request carries. */
static void request_init(const struct agt_ctx *c, struct fmt_api_request *req,
                         enum fmt_api_purpose purpose)
{
	memset(req, 0, sizeof(*req));
	req->purpose = purpose;
	(void)snprintf(req->device_id, sizeof(req->device_id), "%s", c->cfg.device_id);
	memcpy(req->mac, c->mac, FMT_MAC_LEN);
}

/* An API error answer as our error; a nonce demand switches nonces on. */
static enum idp_err api_error(struct agt_ctx *c, const struct fmt_api_answer *a, long status,
                              bool *again, struct idp_error *err)
{
	const struct fmt_api_error *e = &a->error;
	*again = false;
	if (e->code == FMT_API_ERR_NONCE_INVALID && !c->use_nonce) {
		c->use_nonce = true;
		*again = true;
		say(c, AGT_LOG_INFO, "api.nonce", "the server asks for a nonce");
		return IDP_OK;
	}
	/* Throttled or suspended (429, 503) after the client's own retries is
	 * temporary like a server fault: IDP_E_AGAIN is kept for "pending". */
	enum idp_err code = e->code == FMT_API_ERR_TOKEN_INVALID ? IDP_E_EXPIRED
	                    : status == 429 || status >= 500      ? IDP_E_IO
	                                                          : IDP_E_DENIED;
	return idp_error_set(err, code, "server refused (%ld %s): %s", status, e->code_text,
	                     e->message);
}

static void note_rejection(struct agt_ctx *c, const struct fmt_api_status *s)
{
	c->reason = s->reason;
	(void)snprintf(c->reason_code, sizeof(c->reason_code), "%s", s->reason_code);
	say(c, AGT_LOG_ERROR, "provision.rejected", "device=%s reason=%s", c->cfg.device_id,
	    s->reason_code);
}

/* Keep an approved token (atomically, with the URLs); flags as state_save. */
static enum idp_err keep_token(struct agt_ctx *c, const struct fmt_api_status *s, unsigned flags,
                               struct idp_error *err)
{
	struct fmt_token_claims cl;
	enum idp_err rc =
	        fmt_token_decode_unverified((const uint8_t *)s->token, strlen(s->token), &cl, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "server answer: token");
		return rc;
	}
	memcpy(c->token, s->token, sizeof(c->token));
	c->claims = cl;
	c->kind = s->token_kind;
	c->has_token = true;
	if (s->server_url[0] != '\0')
		memcpy(c->server_url, s->server_url, sizeof(c->server_url));
	return state_save(c, flags, err);
}

/* Wipe and free a request and its answer (either may be NULL). */
static void exchange_free(struct fmt_api_request *req, struct fmt_api_answer *a)
{
	if (req != NULL)
		fmt_api_request_wipe(req);
	if (a != NULL)
		fmt_api_answer_wipe(a);
	free(req);
	free(a);
}

/* Exchange or renew the token held; IDP_E_EXPIRED when the server refuses it
 * (expired, spent, revoked): the caller provisions again. */
static enum idp_err token_call(struct agt_ctx *c, enum fmt_api_purpose purpose,
                               struct idp_error *err)
{
	struct fmt_api_request *req = malloc(sizeof(*req));
	struct fmt_api_answer *a = malloc(sizeof(*a));
	enum idp_err rc = IDP_OK;
	long status = 0;
	if (req == NULL || a == NULL) {
		rc = idp_error_set(err, IDP_E_NOMEM, "agent: out of memory");
		goto out;
	}
	for (int tries = 0; tries < 2; tries++) {
		request_init(c, req, purpose);
		memcpy(req->token, c->token, sizeof(req->token));
		rc = post_signed(c, req, a, &status, err);
		if (rc != IDP_OK)
			goto out;
		bool again = false;
		if (!a->is_error)
			break;
		rc = api_error(c, a, status, &again, err);
		if (!again)
			goto out;
	}
	const char *what = purpose == FMT_API_EXCHANGE ? "exchange" : "renew";
	if (a->is_error) {
		rc = idp_error_set(err, IDP_E_DENIED, "%s: the server keeps asking for a nonce", what);
	} else if (a->status.status == FMT_API_REJECTED) {
		note_rejection(c, &a->status);
		rc = idp_error_set(err, IDP_E_EXPIRED, "%s: rejected (%s)", what,
		                   a->status.reason_code);
	} else if (a->status.status != FMT_API_APPROVED ||
	           a->status.token_kind != FMT_TOKEN_DEVICE) {
		rc = idp_error_set(err, IDP_E_FORMAT, "%s: the server answered without a device token",
		                   what);
	} else {
		/* The first device token closes factory mode: the token and the
		 * seal (no content fsync: it counts by existing) become durable
		 * under one directory fsync, the seal's. */
		bool seal = !is_sealed(c);
		rc = keep_token(c, &a->status, seal ? FMT_FILE_NO_DIR_SYNC : 0, err);
		if (rc == IDP_OK)
			say(c, AGT_LOG_INFO, purpose == FMT_API_EXCHANGE ? "token.exchanged" : "token.renewed",
			    "device=%s expires=%lld renew_at=%lld tls=%s", c->cfg.device_id,
			    (long long)c->claims.exp, (long long)fmt_token_renew_at(&c->claims),
			    tls_kind(c));
		if (rc == IDP_OK && seal)
			rc = seal_write(c, FMT_FILE_NO_DATA_SYNC, err);
	}
out:
	exchange_free(req, a);
	return rc;
}

/* ---------------------------------------------------------------- DNS-SD */

struct discovery {
	struct fio_dnssd_found *found; /* DISCOVER_MAX */
	size_t n;
	size_t seen;       /* instances reported, kept or not */
	size_t unresolved; /* seen but not resolved: they may name another CA */
	const struct agt_ctx *c;
};

static void on_found(void *arg, const struct fio_dnssd_found *f)
{
	struct discovery *d = arg;
	d->seen++;
	if (!f->resolved) {
		d->unresolved++;
		char q[IDP_QUOTE_MAX];
		say(d->c, AGT_LOG_WARN, "discover.unresolved", "name=\"%s\"",
		    idp_quote(f->name, strnlen(f->name, FIO_DNSSD_NAME_MAX), q));
	} else if (d->n < DISCOVER_MAX)
		d->found[d->n++] = *f;
}

static bool is_fp(const char *s)
{
	if (s == NULL || strnlen(s, FP_HEX_LEN + 1) != FP_HEX_LEN)
		return false;
	for (size_t i = 0; i < FP_HEX_LEN; i++)
		if (strchr("0123456789abcdef", s[i]) == NULL || s[i] == '\0')
			return false;
	return true;
}

/* An instance of this API (formats/api.md §11): v=1, path=/v1, a
 * fingerprint. Its address may still be unusable (link-local). */
static bool usable(const struct agt_ctx *c, const struct fio_dnssd_found *f)
{
	const char *v = fio_dnssd_txt_get(f, "v"), *path = fio_dnssd_txt_get(f, "path");
	const char *why = NULL;
	if (v == NULL || strcmp(v, "1") != 0)
		why = "version";
	else if (path == NULL || strcmp(path, "/v1") != 0)
		why = "path";
	else if (!is_fp(fio_dnssd_txt_get(f, "fp")))
		why = "fingerprint";
	if (why != NULL) {
		char q[IDP_QUOTE_MAX];
		say(c, AGT_LOG_DEBUG, "discover.skipped", "name=\"%s\" addr=%s reason=%s",
		    idp_quote(f->name, strnlen(f->name, FIO_DNSSD_NAME_MAX), q), f->addr, why);
	}
	return why == NULL;
}

/* The documented order among instances that agree: IPv4 before IPv6, then
 * by instance name, then by address text. */
static int found_cmp(const void *pa, const void *pb)
{
	const struct fio_dnssd_found *a = pa, *b = pb;
	if (a->ipv6 != b->ipv6)
		return a->ipv6 ? 1 : -1;
	int r = strcmp(a->name, b->name);
	return r != 0 ? r : strcmp(a->addr, b->addr);
}

/* The CA fingerprint this agent already trusts: the pinned ca.pem, else a
 * pre-loaded CA file, else the configured fingerprint; "" when none. */
static enum idp_err trusted_fp(const struct agt_ctx *c, char fp[static FP_HEX_LEN + 1],
                               struct idp_error *err)
{
	char path[FILE_PATH_MAX];
	fp[0] = '\0';
	enum idp_err rc = path_of(c, "ca.pem", path, err);
	if (rc == IDP_OK && exists(path))
		return file_fp(path, fp, err);
	if (rc == IDP_OK && c->cfg.ca_file != NULL)
		return file_fp(c->cfg.ca_file, fp, err);
	if (rc == IDP_OK && c->cfg.ca_fingerprint != NULL)
		for (size_t i = 0; i <= FP_HEX_LEN; i++)
			fp[i] = (char)tolower((unsigned char)c->cfg.ca_fingerprint[i]);
	return rc;
}

/* Find the server by DNS-SD (formats/api.md §11) and set provision_url and
 * disc_fp. With a trusted CA, only instances carrying its fingerprint
 * count; without one, instances that disagree on the fingerprint are
 * refused (IDP_E_VERIFY): the agent does not choose between CAs. Among
 * instances that agree, found_cmp's order picks one. */
static enum idp_err discover(struct agt_ctx *c, struct idp_error *err)
{
	struct discovery d = {.found = calloc(DISCOVER_MAX, sizeof(*d.found)), .c = c};
	if (d.found == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "agent: out of memory");
	char trust[FP_HEX_LEN + 1];
	bool complete = false;
	int64_t wait = c->cfg.discover_wait_ms > 0 ? c->cfg.discover_wait_ms : DISCOVER_WAIT_MS;
	enum idp_err rc = trusted_fp(c, trust, err);
	if (rc == IDP_OK) {
		bool by_auto = false;
		fio_dnssd_use(c->cfg.dnssd_backend);
		enum fio_dnssd_backend b = fio_dnssd_backend_current(&by_auto);
		say(c, AGT_LOG_INFO, "discover.backend", "backend=%s chosen=%s",
		    fio_dnssd_backend_name(b),
		    !by_auto                   ? "dnssd-backend"
		    : b == FIO_DNSSD_EMBEDDED ? "auto:no-avahi-daemon"
		                              : "auto:avahi-daemon");
		/* --iface names the device's network link: the embedded
		 * querier browses there only (the daemon keeps its own). */
		const char *ifs[1] = {c->cfg.mac_iface};
		size_t n_ifs = c->cfg.mac_iface != NULL ? 1 : 0;
		rc = fio_dnssd_use_interfaces(n_ifs > 0 ? ifs : NULL, n_ifs, err);
		if (rc == IDP_OK && b == FIO_DNSSD_EMBEDDED)
			say(c, AGT_LOG_INFO, "discover.interfaces", "names=%s",
			    n_ifs > 0 ? c->cfg.mac_iface : "all");
	}
	if (rc == IDP_OK)
		rc = fio_dnssd_browse(SERVICE_TYPE, wait < DISCOVER_MIN_MS ? wait : DISCOVER_MIN_MS,
		                      wait, on_found, &d, &complete, err);
	if (rc != IDP_OK)
		goto out;
	/* Every instance of the API counts for the CA check, whatever its
	 * address: a rogue must not be ignored for publishing a link-local
	 * one. Only the choice needs an address a URL can name. */
	size_t valid = 0, matching = 0, kept = 0;
	char first[FP_HEX_LEN + 1] = "";
	bool disagree = false;
	for (size_t i = 0; i < d.n; i++) {
		const struct fio_dnssd_found *f = &d.found[i];
		if (!usable(c, f))
			continue;
		valid++;
		const char *fp = fio_dnssd_txt_get(f, "fp");
		say(c, AGT_LOG_INFO, "discover.found", "addr=%s port=%u fp=%s own=%s", f->addr,
		    f->port, fp, f->own ? "yes" : "no");
		if (trust[0] != '\0' && strcmp(fp, trust) != 0)
			continue;
		matching++;
		if (first[0] == '\0')
			memcpy(first, fp, sizeof(first));
		else if (strcmp(first, fp) != 0)
			disagree = true;
		if (f->link_local)
			continue;
		d.found[kept++] = *f; /* kept <= i: an entry already read */
	}
	if (valid == 0) {
		rc = idp_error_set(
		        err, IDP_E_IO,
		        "server: none configured, and DNS-SD found no usable %s instance "
		        "(%zu seen%s)",
		        SERVICE_TYPE, d.seen, complete ? "" : ", browse timed out");
		goto out;
	}
	if (matching == 0) {
		rc = idp_error_set(
		        err, IDP_E_VERIFY,
		        "server: DNS-SD found %zu instance(s), none with the trusted CA %s: "
		        "refused",
		        valid, trust);
		goto out;
	}
	if (trust[0] == '\0' && d.unresolved > 0) {
		rc = idp_error_set(
		        err, IDP_E_IO,
		        "server: DNS-SD saw %zu instance(s) it could not resolve, which may "
		        "name another CA; not choosing now (retry later)",
		        d.unresolved);
		goto out;
	}
	if (disagree) {
		rc = idp_error_set(err, IDP_E_VERIFY,
		                   "server: DNS-SD found %zu instances naming different CAs; not "
		                   "choosing one (configure the server URL or the CA fingerprint): "
		                   "refused",
		                   matching);
		goto out;
	}
	if (kept == 0) {
		rc = idp_error_set(
		        err, IDP_E_IO,
		        "server: DNS-SD found only link-local addresses, which a URL cannot "
		        "name; configure the server URL");
		goto out;
	}
	qsort(d.found, kept, sizeof(*d.found), found_cmp);
	const struct fio_dnssd_found *f = &d.found[0];
	int n = snprintf(c->provision_url, sizeof(c->provision_url),
	                 f->ipv6 ? "https://[%s]:%u" : "https://%s:%u", f->addr, f->port);
	if (n < 0 || (size_t)n >= sizeof(c->provision_url)) {
		c->provision_url[0] = '\0';
		rc = idp_error_set(err, IDP_E_LIMIT, "server: discovered URL too long");
		goto out;
	}
	memcpy(c->disc_fp, fio_dnssd_txt_get(f, "fp"), FP_HEX_LEN + 1);
	fio_httpc_free(c->http);
	c->http = NULL;
	say(c, AGT_LOG_INFO, "discover.chosen", "url=%s fp=%s host=%s instances=%zu",
	    c->provision_url, c->disc_fp, f->host, kept);
out:
	free(d.found);
	return rc;
}

/* Where to provision: the configured URL, else the one stored, else DNS-SD. */
static enum idp_err server_of(struct agt_ctx *c, struct idp_error *err)
{
	const char *url = c->cfg.server_url != NULL ? c->cfg.server_url : c->provision_url;
	if (url[0] == '\0')
		return discover(c, err);
	if (strcmp(url, c->provision_url) != 0) {
		(void)snprintf(c->provision_url, sizeof(c->provision_url), "%s", url);
		fio_httpc_free(c->http);
		c->http = NULL;
	}
	return IDP_OK;
}

static enum idp_err provision(struct agt_ctx *c, struct idp_error *err)
{
	enum idp_err rc = server_of(c, err);
	if (rc == IDP_OK)
		rc = ensure_pin(c, c->provision_url, err);
	if (rc != IDP_OK)
		return rc;
	if (c->cfg.oob_secret != NULL && !c->has_oob_key) {
		/* The KDF once per run; the secret itself never leaves the device. */
		rc = fmt_oob_verifier(c->cfg.device_id, c->cfg.oob_secret,
		                      strlen(c->cfg.oob_secret), c->oob_key, err);
		if (rc != IDP_OK)
			return rc;
		c->has_oob_key = true;
	}
	struct fmt_api_request *req = malloc(sizeof(*req));
	struct fmt_api_answer *a = malloc(sizeof(*a));
	if (req == NULL || a == NULL) {
		rc = idp_error_set(err, IDP_E_NOMEM, "agent: out of memory");
		goto out;
	}
	int64_t start = fio_mono_ms();
	for (unsigned n = 0;; n++) {
		if (stopped(c)) {
			rc = idp_error_set(err, IDP_E_AGAIN, "provision: stopped");
			goto out;
		}
		request_init(c, req, FMT_API_PROVISION);
		(void)snprintf(req->agent_version, sizeof(req->agent_version), "%s", AGT_VERSION);
		req->has_oob_proof = c->has_oob_key; /* computed on the connection */
		long status = 0;
		rc = post_signed(c, req, a, &status, err);
		if (rc != IDP_OK)
			goto out;
		if (a->is_error) {
			bool again = false;
			rc = api_error(c, a, status, &again, err);
			if (again)
				continue;
			goto out;
		}
		const struct fmt_api_status *s = &a->status;
		if (s->status == FMT_API_REJECTED) {
			note_rejection(c, s);
			token_forget(c);
			(void)state_save(c, 0, NULL);
			rc = idp_error_set(err, IDP_E_DENIED, "provision: rejected (%s)%s%s",
			                   s->reason_code, s->message[0] != '\0' ? ": " : "",
			                   s->message);
			goto out;
		}
		if (s->status == FMT_API_APPROVED)
			break;
		int64_t d = pending_delay_ms(s->retry_after, n);
		if (c->cfg.pending_wait_s > 0 &&
		    fio_mono_ms() - start + d > c->cfg.pending_wait_s * 1000) {
			rc = idp_error_set(err, IDP_E_AGAIN, "provision: still pending after %lld s",
			                   (long long)((fio_mono_ms() - start) / 1000));
			goto out;
		}
		say(c, AGT_LOG_INFO, "provision.pending",
		    "device=%s retry_after=%lld wait_ms=%lld tls=%s", c->cfg.device_id,
		    (long long)s->retry_after, (long long)d, tls_kind(c));
		idle(c);
		(void)nap(c, d);
	}
	const struct fmt_api_status *s = &a->status;
	char fp[FP_HEX_LEN + 1];
	if (s->token_kind != FMT_TOKEN_PROVISION) {
		rc = idp_error_set(err, IDP_E_FORMAT, "provision: approved without a provisioning token");
		goto out;
	}
	rc = cert_fp((const uint8_t *)s->ca_pem, strlen(s->ca_pem), fp, NULL, err);
	if (rc == IDP_OK && strcmp(fp, c->ca_fp) != 0)
		rc = idp_error_set(err, IDP_E_VERIFY,
		                   "provision: the approval names CA %s, not the pinned %s: refused", fp,
		                   c->ca_fp);
	/* The provisioning token (and a pin copied from the configured file)
	 * become durable with the device token's directory fsync: exchanged at
	 * once, it is kept alone only when the exchange fails. A power cut
	 * before that provisions again. */
	if (rc == IDP_OK)
		rc = keep_token(c, s, FMT_FILE_NO_DIR_SYNC, err);
	if (rc != IDP_OK)
		goto out;
	say(c, AGT_LOG_INFO, "provision.approved", "device=%s server=%s tls=%s", c->cfg.device_id,
	    c->server_url, tls_kind(c));
	rc = token_call(c, FMT_API_EXCHANGE, err);
	if (rc != IDP_OK)
		state_sync(c);
out:
	exchange_free(req, a);
	return rc;
}

/* agt_run_once without dropping the connection at the end. */
static enum idp_err run_step(struct agt_ctx *c, struct idp_error *err)
{
	c->reason = FMT_API_REASON_OTHER;
	c->reason_code[0] = '\0';
	enum idp_err rc = IDP_OK;
	for (unsigned i = 0; i < AGT_REPROVISION_MAX; i++) {
		int64_t now = now_s();
		if (c->has_token && c->cfg.server_url != NULL &&
		    strcmp(c->cfg.server_url, c->provision_url) != 0) {
			say(c, AGT_LOG_INFO, "server.changed", "provisioning again at the configured URL");
			token_forget(c);
		}
		if (!c->has_token || c->claims.exp <= now) {
			if (c->has_token)
				say(c, AGT_LOG_INFO, "token.expired", "device=%s", c->cfg.device_id);
			token_forget(c);
			rc = provision(c, err);
		} else {
			rc = server_of(c, err);
			if (rc == IDP_OK)
				rc = pin_again(c, err);
			if (rc == IDP_OK && c->kind == FMT_TOKEN_PROVISION)
				rc = token_call(c, FMT_API_EXCHANGE, err);
			else if (rc == IDP_OK &&
			         (c->renew_now || now >= fmt_token_renew_at(&c->claims)))
				rc = token_call(c, FMT_API_RENEW, err);
			if (rc == IDP_OK)
				c->renew_now = false;
		}
		/* A device token without the seal (a cut between the two):
		 * factory mode closes now. */
		if (rc == IDP_OK && c->has_token && c->kind == FMT_TOKEN_DEVICE && !is_sealed(c))
			rc = agt_seal(c, err);
		if (rc != IDP_E_EXPIRED)
			return rc;
		say(c, AGT_LOG_WARN, "token.refused", "device=%s provisioning again",
		    c->cfg.device_id);
		token_forget(c);
		rc = state_save(c, 0, err);
		if (rc != IDP_OK)
			return rc;
	}
	return idp_error_set(err, IDP_E_DENIED, "token: refused %u times after provisioning",
	                     AGT_REPROVISION_MAX);
}

enum idp_err agt_run_once(struct agt_ctx *c, struct idp_error *err)
{
	enum idp_err rc = run_step(c, err);
	idle(c); /* the caller waits until the next renewal or retry */
	return rc;
}

/* ---------------------------------------------------------------- factory mode */

static enum idp_err write_all(int fd, const uint8_t *buf, size_t len, struct idp_error *err)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			(void)poll(&p, 1, 100);
			continue;
		}
		if (w <= 0)
			return idp_error_set(err, IDP_E_IO, "console: write: %s",
			                     w < 0 ? strerror(errno) : "no progress");
		buf += w;
		len -= (size_t)w;
	}
	return IDP_OK;
}

struct session {
	struct fmt_wire_cache cache;
	struct fmt_wire_msg in, out;
	uint8_t line[FMT_WIRE_LINE_MAX];
	bool proof_given; /* in this HELLO session (true before the first HELLO) */
};

static void wire_error(struct fmt_wire_msg *m, uint16_t code, const char *text)
{
	m->type = FMT_WIRE_ERROR;
	m->u.error.code = code;
	(void)snprintf(m->u.error.text, sizeof(m->u.error.text), "%s", text);
	m->u.error.text_len = strlen(m->u.error.text);
}

static enum idp_err fill_info(const struct agt_ctx *c, struct fmt_wire_info *info,
                              struct idp_error *err)
{
	memset(info, 0, sizeof(*info));
	(void)snprintf(info->device_id, sizeof(info->device_id), "%s", c->cfg.device_id);
	info->device_id_len = strlen(info->device_id);
	memcpy(info->mac, c->mac, FMT_MAC_LEN);
	if (c->cfg.serial != NULL)
		(void)snprintf(info->serial, sizeof(info->serial), "%s", c->cfg.serial);
	info->serial_len = strlen(info->serial);
	info->key_type = fmt_key_type(c->key);
	if (c->cfg.fw_version != NULL)
		(void)snprintf(info->fw_version, sizeof(info->fw_version), "%s", c->cfg.fw_version);
	info->fw_version_len = strlen(info->fw_version);
	(void)snprintf(info->agent_version, sizeof(info->agent_version), "%s", AGT_VERSION);
	info->agent_version_len = strlen(info->agent_version);
	return fmt_key_spki_der(c->key, info->spki, &info->spki_len, err);
}

/* The answer to one parsed request, in s->out. */
static void answer(struct agt_ctx *c, struct session *s)
{
	struct idp_error e = {0};
	struct fmt_wire_msg *o = &s->out;
	memset(o, 0, sizeof(*o));
	switch (s->in.type) {
	case FMT_WIRE_HELLO:
		s->proof_given = false;
		if (fmt_wire_version_pick(s->in.u.hello.versions, 1u << FMT_WIRE_VERSION) == 0) {
			wire_error(o, FMT_WIRE_ERR_VERSION, "hello: no common version");
			break;
		}
		o->type = FMT_WIRE_HELLO_ACK;
		o->u.hello.role = FMT_WIRE_ROLE_DEVICE;
		o->u.hello.versions = 1u << FMT_WIRE_VERSION;
		say(c, AGT_LOG_INFO, "factory.hello", "session opened");
		break;
	case FMT_WIRE_INFO_REQ:
		o->type = FMT_WIRE_INFO;
		if (fill_info(c, &o->u.info, &e) != IDP_OK)
			wire_error(o, FMT_WIRE_ERR_INTERNAL, "info: cannot encode the key");
		break;
	case FMT_WIRE_CHALLENGE: {
		int64_t t = fio_mono_ms();
		if (is_sealed(c)) {
			wire_error(o, FMT_WIRE_ERR_INTERNAL, "challenge: device is sealed");
			say(c, AGT_LOG_WARN, "factory.refused", "reason=sealed");
		} else if (s->proof_given) {
			wire_error(o, FMT_WIRE_ERR_BUSY, "challenge: one proof per session");
			say(c, AGT_LOG_WARN, "factory.refused", "reason=second-proof");
		} else if (c->last_proof_ms != 0 && t - c->last_proof_ms < c->cfg.proof_interval_ms) {
			wire_error(o, FMT_WIRE_ERR_BUSY, "challenge: rate limited");
			say(c, AGT_LOG_WARN, "factory.refused", "reason=rate");
		} else {
			struct fmt_wire_info info;
			o->type = FMT_WIRE_PROOF;
			if (fill_info(c, &info, &e) != IDP_OK ||
			    fmt_wire_proof_sign(c->key, &s->in.u.challenge, &info, &o->u.proof, &e) !=
			            IDP_OK) {
				wire_error(o, FMT_WIRE_ERR_INTERNAL, "challenge: cannot sign");
			} else {
				s->proof_given = true;
				c->last_proof_ms = t;
				say(c, AGT_LOG_INFO, "factory.proof", "signed");
			}
		}
		break;
	}
	default:
		wire_error(o, FMT_WIRE_ERR_TYPE, "request: unexpected type");
		break;
	}
}

/* Handle one checked frame: cache (wire.md 6.2), parse, answer. */
static enum idp_err on_frame(struct agt_ctx *c, struct session *s, int out_fd,
                             const struct fmt_wire_frame *f, struct idp_error *err)
{
	if ((f->type & 0x80u) != 0)
		return IDP_OK; /* a response (our own echo): not for us */
	enum fmt_wire_cache_hit hit = fmt_wire_cache_lookup(&s->cache, f);
	if (hit == FMT_WIRE_CACHE_REPLAY)
		return write_all(out_fd, s->cache.line, s->cache.line_len, err);
	struct idp_error e = {0};
	memset(&s->out, 0, sizeof(s->out));
	if (hit == FMT_WIRE_CACHE_CONFLICT) {
		wire_error(&s->out, FMT_WIRE_ERR_SEQ_REUSED, "request: seq reused");
	} else {
		enum idp_err prc = fmt_wire_msg_parse(f, &s->in, &e);
		if (prc == IDP_E_UNSUPPORTED && f->version != FMT_WIRE_VERSION)
			wire_error(&s->out, FMT_WIRE_ERR_VERSION, "frame: version not spoken");
		else if (prc == IDP_E_UNSUPPORTED)
			wire_error(&s->out, FMT_WIRE_ERR_TYPE, "request: unknown type");
		else if (prc != IDP_OK)
			wire_error(&s->out, FMT_WIRE_ERR_PAYLOAD, "request: payload does not parse");
		else
			answer(c, s);
	}
	s->out.seq = f->seq;
	size_t len = 0;
	enum idp_err rc = fmt_wire_msg_encode(&s->out, s->line, sizeof(s->line), &len, err);
	if (rc == IDP_OK)
		rc = write_all(out_fd, s->line, len, err);
	if (rc == IDP_OK && hit == FMT_WIRE_CACHE_MISS)
		fmt_wire_cache_store(&s->cache, f, s->line, len);
	OPENSSL_cleanse(&s->in, sizeof(s->in));
	return rc;
}

enum idp_err agt_factory_serve(struct agt_ctx *c, int in_fd, int out_fd, struct idp_error *err)
{
	struct fmt_wire_decoder *d = fmt_wire_decoder_new();
	struct session *s = calloc(1, sizeof(*s));
	struct fmt_wire_frame *f = malloc(sizeof(*f));
	enum idp_err rc = IDP_OK;
	if (d == NULL || s == NULL || f == NULL) {
		rc = idp_error_set(err, IDP_E_NOMEM, "factory: out of memory");
		goto out;
	}
	s->proof_given = true; /* no proof before the first HELLO */
	say(c, AGT_LOG_INFO, "factory.ready", "device=%s sealed=%s", c->cfg.device_id,
	    is_sealed(c) ? "yes" : "no");
	uint8_t buf[512];
	while (rc == IDP_OK && !stopped(c)) {
		struct pollfd p = {.fd = in_fd, .events = POLLIN};
		int pr = poll(&p, 1, 200);
		if (pr < 0 && errno != EINTR) {
			rc = idp_error_set(err, IDP_E_IO, "console: poll: %s", strerror(errno));
			break;
		}
		if (pr <= 0)
			continue;
		ssize_t n = read(in_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0 && errno == EIO) /* a pty whose other side closed */
			break;
		if (n < 0) {
			rc = idp_error_set(err, IDP_E_IO, "console: read: %s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		size_t off = 0;
		while (rc == IDP_OK && off < (size_t)n) {
			size_t used = 0;
			bool got = false;
			rc = fmt_wire_feed(d, buf + off, (size_t)n - off, &used, f, &got, err);
			off += used;
			if (rc == IDP_OK && got)
				rc = on_frame(c, s, out_fd, f, err);
			if (used == 0 && !got)
				break;
		}
	}
out:
	fmt_wire_decoder_free(d);
	if (s != NULL)
		OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	free(f);
	return rc;
}

/* ---------------------------------------------------------------- console */

static speed_t speed_of(unsigned baud)
{
	switch (baud) {
	case 9600: return B9600;
	case 19200: return B19200;
	case 38400: return B38400;
	case 57600: return B57600;
	case 230400: return B230400;
	case 460800: return B460800;
	case 921600: return B921600;
	default: return B115200;
	}
}

enum idp_err agt_console_raw(int fd, unsigned baud, struct idp_error *err)
{
	struct termios t;
	if (!isatty(fd))
		return IDP_OK;
	if (tcgetattr(fd, &t) != 0)
		return idp_error_set(err, IDP_E_IO, "console: tcgetattr: %s", strerror(errno));
	cfmakeraw(&t); /* no echo, no line discipline, 8 bits */
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cflag &= ~(tcflag_t)(CSTOPB | PARENB | CRTSCTS);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (baud != 0 && (cfsetispeed(&t, speed_of(baud)) != 0 || cfsetospeed(&t, speed_of(baud)) != 0))
		return idp_error_set(err, IDP_E_IO, "console: speed %u: %s", baud, strerror(errno));
	if (tcsetattr(fd, TCSANOW, &t) != 0)
		return idp_error_set(err, IDP_E_IO, "console: tcsetattr: %s", strerror(errno));
	/* Drop what waited on the line before the agent listened: requests a
	 * station sent earlier would be answered late (under seqs it no longer
	 * waits for) and spend the one proof the rate limit allows; output an
	 * earlier writer left untransmitted may be half a frame. */
	if (tcflush(fd, TCIOFLUSH) != 0)
		return idp_error_set(err, IDP_E_IO, "console: tcflush: %s", strerror(errno));
	return IDP_OK;
}

enum idp_err agt_console_open(const char *path, unsigned baud, int *fd, struct idp_error *err)
{
	*fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*fd < 0)
		return idp_error_set(err, IDP_E_IO, "%s: %s", path, strerror(errno));
	enum idp_err rc = agt_console_raw(*fd, baud, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "%s", path);
		(void)close(*fd);
		*fd = -1;
	}
	return rc;
}
