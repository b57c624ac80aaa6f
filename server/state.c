/*
 * state.c - see state.h.
 */
#include "server/state.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "formats/api.h"
#include "formats/b64.h"
#include "formats/buf.h"
#include "formats/file.h"
#include "formats/keyfile.h"
#include "formats/x509.h"
#include "server/lock.h"

/* The admin credential is 256 random bits: a plain SHA-256 of it is as
 * strong as any KDF (nothing to guess), and costs a microsecond, so a
 * flood of bogus bearers costs the event loop nothing. */
#define ADMIN_HASH_LEN   32u
#define ADMIN_FILE_MAX   256u
#define ADMIN_SECRET_RAW 32u
#define ADMIN_CHECK_MAX  256u /* longest credential compared */
#define SAN_MAX          8192u
#define RETIRED_FILE_MAX 8192u
#define PRIVATE_FORBID   ((mode_t)077) /* keys, admin files: owner only */
#define PUBLIC_FORBID    ((mode_t)022) /* certificates, public keys: not writable by others */

struct srv_admin_cred {
	pthread_mutex_t lock;
	uint8_t hash[ADMIN_HASH_LEN];
};

/* One token key. Entries are only appended while running and freed by
 * srv_state_free, so a borrowed pointer stays valid. */
struct token_entry {
	struct fmt_key *key;
	char kid[SRV_STATE_KID_MAX];
	int64_t not_after; /* retired: verified until then; current: 0 */
};

struct srv_token_ring {
	pthread_rwlock_t lock;   /* n, current, not_after */
	pthread_mutex_t rotate;  /* one rotation (file writes) at a time */
	struct token_entry e[SRV_STATE_TOKEN_KEYS_MAX];
	size_t n;
	size_t current;
	int64_t keep;
	enum fmt_key_type type;
	char dir[SRV_STATE_PATH_MAX];
};

/* dir/name into out; IDP_E_LIMIT when too long. */
static enum idp_err path_in(const char *dir, const char *name, char *out, size_t size,
                            struct idp_error *err)
{
	int n = snprintf(out, size, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= size)
		return idp_error_set(err, IDP_E_LIMIT, "state: %s/%s: path too long", dir, name);
	return IDP_OK;
}

static enum idp_err path_of(const struct srv_state *s, const char *name, char *out, size_t size,
                            struct idp_error *err)
{
	return path_in(s->dir, name, out, size, err);
}

/* Refuse st (of path) unless it is owned by us and has none of the forbid
 * bits; kind names what it is in the message. */
static enum idp_err check_owner_mode(const char *path, const struct stat *st, mode_t forbid,
                                     const char *kind, struct idp_error *err)
{
	if (st->st_uid != geteuid())
		return idp_error_set(err, IDP_E_DENIED,
		                     "state: %s: owned by uid %u, not by the server's uid %u; run "
		                     "'chown %u %s'",
		                     path, (unsigned)st->st_uid, (unsigned)geteuid(),
		                     (unsigned)geteuid(), path);
	if ((st->st_mode & forbid) != 0) {
		unsigned want = (unsigned)(st->st_mode & 0777 & ~forbid);
		return idp_error_set(err, IDP_E_DENIED,
		                     "state: %s: mode %03o lets others %s this %s; run 'chmod %03o "
		                     "%s'%s",
		                     path, (unsigned)(st->st_mode & 0777),
		                     (st->st_mode & 022) != 0 ? "write" : "read", kind, want, path,
		                     forbid == PRIVATE_FORBID && S_ISREG(st->st_mode)
		                             ? " and consider the key exposed"
		                             : "");
	}
	return IDP_OK;
}

/* Read dir/name whole (at most max bytes) through one descriptor opened
 * without following symlinks, after checking it with fstat: a regular file,
 * ours, none of the forbid bits. IDP_E_NOTFOUND when absent. Free *out with
 * fmt_file_free_secret(*out, *len). */
static enum idp_err read_checked(const char *dir, const char *name, mode_t forbid, size_t max,
                                 uint8_t **out, size_t *len, struct idp_error *err)
{
	*out = NULL;
	*len = 0;
	char path[SRV_STATE_PATH_MAX + 32];
	enum idp_err rc = path_in(dir, name, path, sizeof(path), err);
	if (rc != IDP_OK)
		return rc;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		return idp_error_set(err, e == ENOENT ? IDP_E_NOTFOUND : IDP_E_IO, "state: %s: %s",
		                     path, e == ELOOP ? "is a symlink" : strerror(e));
	}
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	if (fstat(fd, &st) != 0) {
		rc = idp_error_set(err, IDP_E_IO, "state: %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = idp_error_set(err, IDP_E_IO, "state: %s: not a regular file", path);
		goto out;
	}
	rc = check_owner_mode(path, &st, forbid, forbid == PRIVATE_FORBID ? "private file" : "file",
	                      err);
	if (rc != IDP_OK)
		goto out;
	rc = fmt_file_read_fd(fd, path, max, &buf, &got, err);
out:
	(void)close(fd);
	if (rc != IDP_OK)
		return rc;
	*out = buf;
	*len = got;
	return IDP_OK;
}

/* Create dir with mode 0700, or check the existing one: it may be a
 * symlink (systemd's DynamicUser= makes the state directory one) to a
 * directory that is ours and that nobody else may enter. */
static enum idp_err ensure_dir(const char *dir, bool *created, struct idp_error *err)
{
	*created = false;
	if (mkdir(dir, 0700) == 0) {
		*created = true;
		if (chmod(dir, 0700) != 0)
			return idp_error_set(err, IDP_E_IO, "state: %s: chmod: %s", dir,
			                     strerror(errno));
		return fmt_file_sync_dir(dir, err);
	}
	if (errno != EEXIST)
		return idp_error_set(err, IDP_E_IO, "state: %s: %s", dir, strerror(errno));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return idp_error_set(err, IDP_E_IO, "state: %s: %s", dir,
		                     errno == ENOTDIR ? "not a directory" : strerror(errno));
	struct stat st;
	enum idp_err rc = IDP_OK;
	if (fstat(fd, &st) != 0)
		rc = idp_error_set(err, IDP_E_IO, "state: %s: %s", dir, strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		rc = idp_error_set(err, IDP_E_IO, "state: %s: not a directory", dir);
	else
		rc = check_owner_mode(dir, &st, PRIVATE_FORBID, "directory", err);
	(void)close(fd);
	return rc;
}

/* Load dir/name as a private key (checked as a private file). */
static enum idp_err key_load(const char *dir, const char *name, struct fmt_key **out,
                             struct idp_error *err)
{
	*out = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = read_checked(dir, name, PRIVATE_FORBID, FMT_KEY_PEM_MAX, &buf, &len, err);
	if (rc != IDP_OK)
		return rc;
	rc = fmt_key_parse_private_pem(buf, len, out, err);
	fmt_file_free_secret(buf, len);
	if (rc != IDP_OK)
		idp_error_prefix(err, "state: %s/%s", dir, name);
	return rc;
}

/* Load DIR/name as a P-256 private key, or generate one and save it. */
/* Load DIR/name, or make a key of type (saving its public half as
 * DIR/pub_name too when that is not NULL); *created says which. */
static enum idp_err key_load_or_make(const struct srv_state *s, const char *name,
                                     enum fmt_key_type type, const char *pub_name,
                                     struct fmt_key **out, bool *created, struct idp_error *err)
{
	char path[SRV_STATE_PATH_MAX + 32], pub[SRV_STATE_PATH_MAX + 32];
	*created = false;
	enum idp_err rc = path_of(s, name, path, sizeof(path), err);
	if (rc == IDP_OK && pub_name != NULL)
		rc = path_of(s, pub_name, pub, sizeof(pub), err);
	if (rc != IDP_OK)
		return rc;
	rc = key_load(s->dir, name, out, err);
	if (rc != IDP_E_NOTFOUND)
		return rc;
	rc = fmt_key_generate(type, out, err);
	if (rc == IDP_OK)
		rc = fmt_keyfile_save(*out, path, pub_name != NULL ? pub : NULL, err);
	if (rc != IDP_OK) {
		fmt_key_free(*out);
		*out = NULL;
	}
	*created = rc == IDP_OK;
	return rc;
}

static enum idp_err cert_pem(X509 *cert, char **pem, size_t *len, struct idp_error *err)
{
	*pem = NULL;
	*len = 0;
	BIO *bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509(bio, cert) != 1) {
		BIO_free(bio);
		return idp_error_ssl(err, IDP_E_CRYPTO, "state: encode certificate");
	}
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	enum idp_err rc = IDP_OK;
	if (n <= 0 || data == NULL) {
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "state: encode certificate");
	} else {
		*pem = malloc((size_t)n + 1);
		if (*pem == NULL) {
			rc = idp_error_set(err, IDP_E_NOMEM, "state: out of memory");
		} else {
			memcpy(*pem, data, (size_t)n);
			(*pem)[n] = '\0';
			*len = (size_t)n;
		}
	}
	BIO_free(bio);
	return rc;
}

/* Read DIR/name as one PEM certificate; IDP_E_NOTFOUND when absent. */
static enum idp_err cert_load(const struct srv_state *s, const char *name, X509 **out,
                              struct idp_error *err)
{
	*out = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = read_checked(s->dir, name, PUBLIC_FORBID, SRV_STATE_CERT_PEM_MAX, &buf,
	                               &len, err);
	if (rc != IDP_OK)
		return rc;
	rc = fmt_x509_parse_first(buf, len, out, err);
	fmt_file_free_secret(buf, len);
	if (rc != IDP_OK)
		idp_error_prefix(err, "state: %s/%s", s->dir, name);
	return rc;
}

static enum idp_err cert_save(const struct srv_state *s, const char *name, X509 *cert,
                              struct idp_error *err)
{
	char path[SRV_STATE_PATH_MAX + 32];
	enum idp_err rc = path_of(s, name, path, sizeof(path), err);
	char *pem = NULL;
	size_t len = 0;
	if (rc == IDP_OK)
		rc = cert_pem(cert, &pem, &len, err);
	if (rc == IDP_OK)
		rc = fmt_file_write_atomic(path, (const uint8_t *)pem, len, 0644, err);
	free(pem);
	return rc;
}

/* Add extension nid=value to cert, issued by issuer. */
static enum idp_err add_ext(X509 *cert, X509 *issuer, int nid, const char *value,
                            struct idp_error *err)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return idp_error_ssl(err, IDP_E_CRYPTO, "state: extension %s", OBJ_nid2sn(nid));
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	if (ok != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "state: extension %s", OBJ_nid2sn(nid));
	return IDP_OK;
}

struct ext {
	int nid;
	const char *value;
};

/* Issue a v3 certificate: random 127-bit serial, subject O=idprov, CN=cn,
 * valid from an hour ago for days, for key, with the extensions exts[0..n),
 * signed by issuer_key; issuer NULL makes it self-signed. */
static enum idp_err cert_issue(const char *cn, int days, const struct fmt_key *key, X509 *issuer,
                               const struct fmt_key *issuer_key, const struct ext *exts, size_t n,
                               X509 **out, struct idp_error *err)
{
	*out = NULL;
	X509 *c = X509_new();
	BIGNUM *bn = BN_new();
	X509_NAME *name = X509_NAME_new();
	enum idp_err rc = IDP_OK;
	if (c == NULL || bn == NULL || name == NULL ||
	    BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)) == NULL ||
	    X509_set_version(c, 2) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"idprov",
	                               -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
	                               0) != 1 ||
	    X509_set_subject_name(c, name) != 1 ||
	    X509_set_issuer_name(c, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(c), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(c), days, 0, NULL) == NULL ||
	    X509_set_pubkey(c, fmt_key_evp(key)) != 1)
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "state: new certificate %s", cn);
	for (size_t i = 0; rc == IDP_OK && i < n; i++)
		rc = add_ext(c, issuer != NULL ? issuer : c, exts[i].nid, exts[i].value, err);
	const EVP_MD *md = fmt_key_type(issuer_key) == FMT_KEY_P256 ? EVP_sha256() : NULL;
	if (rc == IDP_OK && X509_sign(c, fmt_key_evp(issuer_key), md) <= 0)
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "state: sign certificate %s", cn);
	BN_free(bn);
	X509_NAME_free(name);
	if (rc != IDP_OK) {
		X509_free(c);
		return rc;
	}
	*out = c;
	return IDP_OK;
}

static void host_name(char out[static 256])
{
	if (gethostname(out, 255) != 0 || out[0] == '\0')
		(void)snprintf(out, 256, "localhost");
	out[255] = '\0';
}

static enum idp_err make_ca(struct srv_state *s, X509 **out, struct idp_error *err)
{
	static const struct ext exts[] = {
	        {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
	        {NID_key_usage, "critical,keyCertSign,cRLSign"},
	        {NID_subject_key_identifier, "hash"},
	};
	char host[256], cn[64];
	host_name(host);
	(void)snprintf(cn, sizeof(cn), "idprov CA %.50s", host); /* cut: it is only a label */
	return cert_issue(cn, SRV_STATE_CA_DAYS, s->ca_key, NULL, s->ca_key, exts,
	                  sizeof(exts) / sizeof(exts[0]), out, err);
}

static bool is_ip(const char *name)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* A name fit for a certificate: an address literal, or letters, digits,
 * '-', '.' and a leading "*." (no commas: they separate the SAN list). */
static bool name_ok(const char *name)
{
	size_t n = strnlen(name, SRV_STATE_NAME_MAX + 1);
	if (n == 0 || n > SRV_STATE_NAME_MAX)
		return false;
	if (is_ip(name))
		return true;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || (c == '*' && i == 0 && n > 2 && name[1] == '.')))
			return false;
	}
	return true;
}

/* Every name the server certificate must hold, in names[]; *n gets the count. */
static enum idp_err cert_names(const struct srv_state_opts *o, char host[static 256],
                               const char *names[static SRV_STATE_NAMES_MAX + 4], size_t *n,
                               struct idp_error *err)
{
	*n = 0;
	host_name(host);
	if (name_ok(host) && strcmp(host, "localhost") != 0)
		names[(*n)++] = host;
	names[(*n)++] = "localhost";
	names[(*n)++] = "127.0.0.1";
	names[(*n)++] = "::1";
	if (o->n_names > SRV_STATE_NAMES_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "state: %zu server names, max %u",
		                     o->n_names, SRV_STATE_NAMES_MAX);
	for (size_t i = 0; i < o->n_names; i++) {
		if (!name_ok(o->names[i]))
			return idp_error_set(
			        err, IDP_E_FORMAT,
			        "state: server name '%.64s' is not a host name or address",
			        o->names[i]);
		names[(*n)++] = o->names[i];
	}
	return IDP_OK;
}

static enum idp_err make_server_cert(struct srv_state *s, const char *const *names, size_t n,
                                     X509 **out, struct idp_error *err)
{
	char san[SAN_MAX];
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(san + used, sizeof(san) - used, "%s%s:%s", i == 0 ? "" : ",",
		                 is_ip(names[i]) ? "IP" : "DNS", names[i]);
		if (w < 0 || (size_t)w >= sizeof(san) - used)
			return idp_error_set(err, IDP_E_LIMIT, "state: server names too long");
		used += (size_t)w;
	}
	const struct ext exts[] = {
	        {NID_basic_constraints, "critical,CA:FALSE"},
	        {NID_key_usage, "critical,digitalSignature"},
	        {NID_ext_key_usage, "serverAuth"},
	        {NID_subject_key_identifier, "hash"},
	        {NID_authority_key_identifier, "keyid:always"},
	        {NID_subject_alt_name, san},
	};
	return cert_issue(names[0], SRV_STATE_SERVER_DAYS, s->server_key, s->ca_cert, s->ca_key,
	                  exts, sizeof(exts) / sizeof(exts[0]), out, err);
}

/* True when the loaded server certificate is still fit: its key, signed by
 * our CA, every name present, not expiring soon. */
static bool server_cert_fit(const struct srv_state *s, X509 *c, const char *const *names, size_t n)
{
	if (X509_check_private_key(c, fmt_key_evp(s->server_key)) != 1 ||
	    X509_verify(c, X509_get0_pubkey(s->ca_cert)) != 1) {
		ERR_clear_error();
		return false;
	}
	time_t soon = time(NULL) + (time_t)SRV_STATE_RENEW_DAYS * 86400;
	if (X509_cmp_time(X509_get0_notAfter(c), &soon) <= 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		int ok = is_ip(names[i]) ? X509_check_ip_asc(c, names[i], 0)
		                         : X509_check_host(c, names[i], 0,
		                                           X509_CHECK_FLAG_NO_WILDCARDS, NULL);
		if (ok != 1)
			return false;
	}
	return true;
}

/* ---------------------------------------------------------------- admin credential */

static void admin_digest(const char *secret, size_t len, uint8_t out[static ADMIN_HASH_LEN])
{
	(void)SHA256((const uint8_t *)secret, len, out);
}

/* Parse admin.hash ("sha256 HASH\n") of dir into hash. */
static enum idp_err admin_load(const char *dir, uint8_t hash[static ADMIN_HASH_LEN],
                               struct idp_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = read_checked(dir, "admin.hash", PRIVATE_FORBID, ADMIN_FILE_MAX, &buf, &len,
	                               err);
	if (rc != IDP_OK)
		return rc;
	const char *p = (const char *)buf;
	size_t got = 0;
	if (len >= 7 && memcmp(p, "scrypt ", 7) == 0) {
		rc = idp_error_set(err, IDP_E_UNSUPPORTED,
		                   "state: %s/admin.hash: an scrypt hash from an older idprovd, no "
		                   "longer accepted; run 'idprovd --reset-admin --state-dir %s' to "
		                   "make a new admin credential (in %s/admin.token)",
		                   dir, dir, dir);
	} else if (len < 8 || memcmp(p, "sha256 ", 7) != 0 || p[len - 1] != '\n' ||
	           fmt_b64_decode(FMT_B64_URL, p + 7, len - 8, hash, ADMIN_HASH_LEN, &got, NULL) !=
	                   IDP_OK ||
	           got != ADMIN_HASH_LEN) {
		rc = idp_error_set(err, IDP_E_FORMAT,
		                   "state: %s/admin.hash: not a \"sha256 HASH\" line; run 'idprovd "
		                   "--reset-admin --state-dir %s'",
		                   dir, dir);
	}
	fmt_file_free_secret(buf, len);
	return rc;
}

/* Write a new credential to dir/admin.token and its hash to dir/admin.hash;
 * hash gets the hash, secret the credential (cleansed on failure). */
static enum idp_err admin_create(const char *dir, uint8_t hash[static ADMIN_HASH_LEN],
                                 char secret[static SRV_STATE_ADMIN_SECRET_LEN + 1],
                                 struct idp_error *err)
{
	uint8_t raw[ADMIN_SECRET_RAW];
	char hash_b64[48], line[ADMIN_FILE_MAX], tok_path[SRV_STATE_PATH_MAX + 32],
	        hash_path[SRV_STATE_PATH_MAX + 32];
	enum idp_err rc = path_in(dir, "admin.token", tok_path, sizeof(tok_path), err);
	if (rc == IDP_OK)
		rc = path_in(dir, "admin.hash", hash_path, sizeof(hash_path), err);
	if (rc != IDP_OK)
		return rc;
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "state: random admin credential");
		goto out;
	}
	(void)fmt_b64_encode(FMT_B64_URL, raw, sizeof(raw), secret);
	admin_digest(secret, SRV_STATE_ADMIN_SECRET_LEN, hash);
	(void)fmt_b64_encode(FMT_B64_URL, hash, ADMIN_HASH_LEN, hash_b64);
	int n = snprintf(line, sizeof(line), "%s\n", secret);
	/* The credential first: a crash before the hash is written leaves the
	 * old credential working and a reset to run again. */
	if (n > 0 && (size_t)n < sizeof(line))
		rc = fmt_file_write_atomic(tok_path, (const uint8_t *)line, (size_t)n, 0600, err);
	OPENSSL_cleanse(line, sizeof(line));
	n = snprintf(line, sizeof(line), "sha256 %s\n", hash_b64);
	if (rc == IDP_OK && n > 0 && (size_t)n < sizeof(line))
		rc = fmt_file_write_atomic(hash_path, (const uint8_t *)line, (size_t)n, 0600, err);
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	if (rc != IDP_OK)
		OPENSSL_cleanse(secret, SRV_STATE_ADMIN_SECRET_LEN + 1);
	return rc;
}

enum idp_err srv_state_admin_check(const struct srv_state *state, const char *secret, size_t len,
                                   bool *ok, struct idp_error *err)
{
	(void)err;
	*ok = false;
	if (len == 0 || len > ADMIN_CHECK_MAX)
		return IDP_OK;
	uint8_t got[ADMIN_HASH_LEN], want[ADMIN_HASH_LEN];
	admin_digest(secret, len, got);
	(void)pthread_mutex_lock(&state->admin->lock);
	memcpy(want, state->admin->hash, sizeof(want));
	(void)pthread_mutex_unlock(&state->admin->lock);
	*ok = CRYPTO_memcmp(got, want, sizeof(got)) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(want, sizeof(want));
	return IDP_OK;
}

enum idp_err srv_state_admin_reload(const struct srv_state *state, struct idp_error *err)
{
	uint8_t hash[ADMIN_HASH_LEN];
	enum idp_err rc = admin_load(state->dir, hash, err);
	if (rc == IDP_OK) {
		(void)pthread_mutex_lock(&state->admin->lock);
		memcpy(state->admin->hash, hash, sizeof(hash));
		(void)pthread_mutex_unlock(&state->admin->lock);
	}
	OPENSSL_cleanse(hash, sizeof(hash));
	return rc;
}

enum idp_err srv_state_admin_reset(const char *dir, char path[static SRV_STATE_PATH_MAX + 32],
                                   struct idp_error *err)
{
	path[0] = '\0';
	if (dir == NULL)
		dir = SRV_STATE_DEFAULT_DIR;
	size_t n = strnlen(dir, SRV_STATE_PATH_MAX);
	if (n == 0 || n >= SRV_STATE_PATH_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "state: directory path empty or too long");
	bool created = false;
	uint8_t hash[ADMIN_HASH_LEN];
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1], hash_path[SRV_STATE_PATH_MAX + 32];
	/* Root may reset the credential of a server that runs as another user
	 * (systemd DynamicUser=): the directory's owner then gets the files. */
	struct stat st;
	bool for_owner = false;
	int fd = geteuid() == 0 ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (fd >= 0) {
		for_owner = fstat(fd, &st) == 0 && st.st_uid != 0;
		(void)close(fd);
	}
	enum idp_err rc = IDP_OK;
	if (!for_owner)
		rc = ensure_dir(dir, &created, err);
	else if ((st.st_mode & PRIVATE_FORBID) != 0)
		rc = idp_error_set(err, IDP_E_DENIED,
		                   "state: %s: mode %03o lets others in this directory; run 'chmod "
		                   "700 %s'",
		                   dir, (unsigned)(st.st_mode & 0777), dir);
	if (rc == IDP_OK)
		rc = path_in(dir, "admin.token", path, SRV_STATE_PATH_MAX + 32, err);
	if (rc == IDP_OK)
		rc = path_in(dir, "admin.hash", hash_path, sizeof(hash_path), err);
	if (rc == IDP_OK)
		rc = admin_create(dir, hash, secret, err);
	if (rc == IDP_OK && for_owner &&
	    (chown(path, st.st_uid, st.st_gid) != 0 || chown(hash_path, st.st_uid, st.st_gid) != 0))
		rc = idp_error_set(err, IDP_E_IO, "state: %s: chown to uid %u: %s", dir,
		                   (unsigned)st.st_uid, strerror(errno));
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(hash, sizeof(hash));
	return rc;
}

/* ---------------------------------------------------------------- token keys */

/* The kid of a token key: "t-" and the first 16 hex digits of the SHA-256
 * of its SPKI DER (formats/token.md, "Key IDs"). */
static enum idp_err kid_of(const struct fmt_key *key, char kid[static SRV_STATE_KID_MAX],
                           struct idp_error *err)
{
	uint8_t fp[FMT_KEY_FINGERPRINT_LEN];
	char hex[65];
	enum idp_err rc = fmt_key_fingerprint(key, fp, err);
	if (rc != IDP_OK)
		return rc;
	fmt_key_fingerprint_hex(fp, hex);
	(void)snprintf(kid, SRV_STATE_KID_MAX, "t-%.16s", hex);
	return IDP_OK;
}

/* Append key (owned by the ring from now on) with not_after; the caller
 * holds the write lock or is the only thread. */
static enum idp_err ring_add(struct srv_token_ring *r, struct fmt_key *key, int64_t not_after,
                             struct idp_error *err)
{
	if (r->n >= SRV_STATE_TOKEN_KEYS_MAX) {
		fmt_key_free(key);
		return idp_error_set(err, IDP_E_LIMIT,
		                     "state: token keys: %u in this run already; restart idprovd to "
		                     "drop expired ones",
		                     SRV_STATE_TOKEN_KEYS_MAX);
	}
	struct token_entry *e = &r->e[r->n];
	enum idp_err rc = kid_of(key, e->kid, err);
	if (rc != IDP_OK) {
		fmt_key_free(key);
		return rc;
	}
	e->key = key;
	e->not_after = not_after;
	r->n++;
	return IDP_OK;
}

static bool ring_has(const struct srv_token_ring *r, const char *kid)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->e[i].kid, kid) == 0)
			return true;
	return false;
}

/* dir/token.retired: one line per retired key, "KID NOT_AFTER SPKI-B64", the
 * entries e[0..n) other than e[current] that are still valid at now. */
static enum idp_err retired_save(const char *dir, const struct token_entry *e, size_t n,
                                 size_t current, int64_t now, struct idp_error *err)
{
	char path[SRV_STATE_PATH_MAX + 32];
	enum idp_err rc = path_in(dir, "token.retired", path, sizeof(path), err);
	if (rc != IDP_OK)
		return rc;
	struct fmt_buf b;
	fmt_buf_init(&b, RETIRED_FILE_MAX - 1, 0);
	for (size_t i = 0; rc == IDP_OK && i < n; i++) {
		if (i == current || e[i].not_after < now)
			continue;
		uint8_t der[FMT_KEY_SPKI_MAX];
		char b64[FMT_KEY_SPKI_MAX * 2];
		size_t dlen = 0;
		rc = fmt_key_spki_der(e[i].key, der, &dlen, err);
		if (rc != IDP_OK)
			break;
		(void)fmt_b64_encode(FMT_B64_STD, der, dlen, b64);
		fmt_buf_addf(&b, "%s %lld %s\n", e[i].kid, (long long)e[i].not_after, b64);
		if (fmt_buf_status(&b) != IDP_OK)
			rc = idp_error_set(err, fmt_buf_status(&b), "state: %s: too many retired keys",
			                   path);
	}
	if (rc == IDP_OK)
		rc = fmt_file_write_atomic(path, b.p, b.len, 0644, err);
	fmt_buf_free(&b);
	return rc;
}

/* Load token.retired into r: keys still valid at now that are not already
 * in r. A damaged line is an error naming the file and line. */
static enum idp_err retired_load(struct srv_token_ring *r, int64_t now, struct idp_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = read_checked(r->dir, "token.retired", PUBLIC_FORBID, RETIRED_FILE_MAX, &buf,
	                               &len, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	if (rc != IDP_OK)
		return rc;
	const char *p = (const char *)buf, *end = p + len;
	for (unsigned line = 1; rc == IDP_OK && p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *sp1 = nl != NULL ? memchr(p, ' ', (size_t)(nl - p)) : NULL;
		const char *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1)) : NULL;
		char kid[SRV_STATE_KID_MAX], num[24];
		uint8_t der[FMT_KEY_SPKI_MAX];
		size_t dlen = 0;
		struct fmt_key *key = NULL;
		char *num_end = NULL;
		long long not_after = 0;
		bool ok = sp2 != NULL && (size_t)(sp1 - p) < sizeof(kid) &&
		          (size_t)(sp2 - sp1 - 1) < sizeof(num) && sp2 - sp1 > 1;
		if (ok) {
			(void)snprintf(kid, sizeof(kid), "%.*s", (int)(sp1 - p), p);
			(void)snprintf(num, sizeof(num), "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
			errno = 0;
			not_after = strtoll(num, &num_end, 10);
			ok = errno == 0 && *num_end == '\0' && not_after > 0 &&
			     fmt_b64_decode(FMT_B64_STD, sp2 + 1, (size_t)(nl - sp2 - 1), der,
			                    sizeof(der), &dlen, NULL) == IDP_OK &&
			     fmt_key_parse_spki_der(der, dlen, &key, NULL) == IDP_OK;
		}
		char want[SRV_STATE_KID_MAX];
		if (ok && (kid_of(key, want, NULL) != IDP_OK || strcmp(want, kid) != 0))
			ok = false;
		if (!ok) {
			fmt_key_free(key);
			rc = idp_error_set(err, IDP_E_FORMAT,
			                   "state: %s/token.retired:%u: not \"KID NOT_AFTER SPKI-B64\" "
			                   "of a matching key",
			                   r->dir, line);
			break;
		}
		if ((int64_t)not_after < now || ring_has(r, kid))
			fmt_key_free(key);
		else
			rc = ring_add(r, key, (int64_t)not_after, err);
		p = nl + 1;
	}
	free(buf);
	return rc;
}

/* Remove the temporary snapshots (".backup-*.tmp", server/admin.c) a
 * server killed during a backup left behind. Only the lock holder calls
 * this, so no backup of another server is in progress. Best effort: a file
 * that cannot be removed stays, as it would have without the sweep. */
static void sweep_stale_backups(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	const struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t n = strnlen(e->d_name, sizeof(e->d_name));
		if (n > 12 && strncmp(e->d_name, ".backup-", 8) == 0 &&
		    strcmp(e->d_name + n - 4, ".tmp") == 0)
			(void)unlinkat(dirfd(d), e->d_name, 0);
	}
	(void)closedir(d);
}

/* Load or make the token key into a new ring for s. A token.key made anew
 * while a token.pub of another key remains retires that key (its tokens
 * keep verifying for the keep time) instead of forgetting it. */
static enum idp_err tokens_open(struct srv_state *s, enum fmt_key_type type, int64_t keep,
                                struct idp_error *err)
{
	struct srv_token_ring *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "state: out of memory");
	if (pthread_rwlock_init(&r->lock, NULL) != 0) {
		free(r);
		return idp_error_set(err, IDP_E_NOMEM, "state: token key lock");
	}
	if (pthread_mutex_init(&r->rotate, NULL) != 0) {
		(void)pthread_rwlock_destroy(&r->lock);
		free(r);
		return idp_error_set(err, IDP_E_NOMEM, "state: token key lock");
	}
	s->tokens = r;
	r->keep = keep;
	(void)snprintf(r->dir, sizeof(r->dir), "%s", s->dir);
	int64_t now = (int64_t)time(NULL);
	struct fmt_key *key = NULL, *old = NULL;
	enum idp_err rc = key_load(s->dir, "token.key", &key, err);
	if (rc == IDP_E_NOTFOUND) {
		uint8_t *buf = NULL;
		size_t len = 0;
		rc = read_checked(s->dir, "token.pub", PUBLIC_FORBID, FMT_KEY_PEM_MAX, &buf, &len,
		                  err);
		if (rc == IDP_OK) {
			rc = fmt_key_parse_public_pem(buf, len, &old, err);
			if (rc != IDP_OK)
				idp_error_prefix(err, "state: %s/token.pub", s->dir);
		} else if (rc == IDP_E_NOTFOUND) {
			rc = IDP_OK;
		}
		free(buf);
		if (rc == IDP_OK)
			rc = fmt_key_generate(type, &key, err);
		s->token_key_created = rc == IDP_OK;
	}
	if (rc == IDP_OK)
		rc = ring_add(r, key, 0, err); /* the ring owns key from here, even on failure */
	if (rc == IDP_OK && old != NULL) {
		rc = ring_add(r, old, now + keep, err);
		old = NULL;
		if (rc == IDP_OK)
			(void)snprintf(s->token_replaced, sizeof(s->token_replaced), "%s",
			               r->e[1].kid);
	}
	fmt_key_free(old);
	if (rc == IDP_OK)
		rc = retired_load(r, now, err);
	if (rc == IDP_OK && s->token_key_created) {
		/* Retired list first, then the new key: a crash in between leaves
		 * the old key retired and no key current, which the next start
		 * makes again. */
		char priv[SRV_STATE_PATH_MAX + 32], pub[SRV_STATE_PATH_MAX + 32];
		rc = retired_save(r->dir, r->e, r->n, 0, now, err);
		if (rc == IDP_OK)
			rc = path_of(s, "token.key", priv, sizeof(priv), err);
		if (rc == IDP_OK)
			rc = path_of(s, "token.pub", pub, sizeof(pub), err);
		if (rc == IDP_OK)
			rc = fmt_keyfile_save(r->e[0].key, priv, pub, err);
	}
	if (rc == IDP_OK) {
		r->type = fmt_key_type(r->e[0].key);
		s->token_key = r->e[0].key;
		(void)snprintf(s->token_kid, sizeof(s->token_kid), "%s", r->e[0].kid);
	}
	return rc;
}

static void tokens_free(struct srv_token_ring *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		fmt_key_free(r->e[i].key);
	(void)pthread_rwlock_destroy(&r->lock);
	(void)pthread_mutex_destroy(&r->rotate);
	free(r);
}

void srv_state_token_signer(const struct srv_state *state, const struct fmt_key **key,
                            char kid[static SRV_STATE_KID_MAX])
{
	struct srv_token_ring *r = state->tokens;
	(void)pthread_rwlock_rdlock(&r->lock);
	*key = r->e[r->current].key;
	memcpy(kid, r->e[r->current].kid, SRV_STATE_KID_MAX);
	(void)pthread_rwlock_unlock(&r->lock);
}

size_t srv_state_token_keys(const struct srv_state *state, int64_t now,
                            struct fmt_token_key keys[static SRV_STATE_TOKEN_KEYS_MAX])
{
	struct srv_token_ring *r = state->tokens;
	(void)pthread_rwlock_rdlock(&r->lock);
	size_t n = 0;
	keys[n].kid = r->e[r->current].kid;
	keys[n++].key = r->e[r->current].key;
	for (size_t i = 0; i < r->n; i++) {
		if (i == r->current || r->e[i].not_after < now)
			continue;
		keys[n].kid = r->e[i].kid;
		keys[n++].key = r->e[i].key;
	}
	(void)pthread_rwlock_unlock(&r->lock);
	return n;
}

enum idp_err srv_state_token_rotate(const struct srv_state *state, int64_t now,
                                    char kid[static SRV_STATE_KID_MAX], struct idp_error *err)
{
	struct srv_token_ring *r = state->tokens;
	kid[0] = '\0';
	(void)pthread_mutex_lock(&r->rotate);
	struct fmt_key *key = NULL;
	char priv[SRV_STATE_PATH_MAX + 32], pub[SRV_STATE_PATH_MAX + 32];
	enum idp_err rc = IDP_OK;
	if (r->n >= SRV_STATE_TOKEN_KEYS_MAX)
		rc = idp_error_set(err, IDP_E_LIMIT,
		                   "state: token keys: %u in this run already; restart idprovd to "
		                   "drop expired ones",
		                   SRV_STATE_TOKEN_KEYS_MAX);
	if (rc == IDP_OK)
		rc = path_in(r->dir, "token.key", priv, sizeof(priv), err);
	if (rc == IDP_OK)
		rc = path_in(r->dir, "token.pub", pub, sizeof(pub), err);
	if (rc == IDP_OK)
		rc = fmt_key_generate(r->type, &key, err);
	if (rc != IDP_OK)
		goto out;
	/* Only the rotation mutex's holder appends, so the new entry can be
	 * built outside the write lock; readers see it once n and current move. */
	size_t old = r->current, fresh = r->n;
	struct token_entry *e = &r->e[fresh];
	rc = kid_of(key, e->kid, err);
	if (rc != IDP_OK) {
		fmt_key_free(key);
		goto out;
	}
	e->key = key;
	e->not_after = 0;
	/* The files: the retired list with the old key (as it will be), then
	 * the new key. A crash in between leaves the old key current and
	 * listed as retired too, which loading tolerates. */
	int64_t old_not_after = now + r->keep;
	struct token_entry view[SRV_STATE_TOKEN_KEYS_MAX];
	memcpy(view, r->e, (fresh + 1) * sizeof(view[0]));
	view[old].not_after = old_not_after;
	rc = retired_save(r->dir, view, fresh + 1, fresh, now, err);
	if (rc == IDP_OK)
		rc = fmt_keyfile_save(key, priv, pub, err);
	if (rc != IDP_OK) {
		fmt_key_free(key);
		memset(e, 0, sizeof(*e));
		goto out;
	}
	(void)pthread_rwlock_wrlock(&r->lock);
	r->e[old].not_after = old_not_after;
	r->n = fresh + 1;
	r->current = fresh;
	(void)pthread_rwlock_unlock(&r->lock);
	memcpy(kid, e->kid, SRV_STATE_KID_MAX);
out:
	(void)pthread_mutex_unlock(&r->rotate);
	return rc;
}

enum idp_err srv_state_open(const struct srv_state_opts *opts, struct srv_state **out,
                            char admin_secret[static SRV_STATE_ADMIN_SECRET_LEN + 1],
                            struct idp_error *err)
{
	*out = NULL;
	admin_secret[0] = '\0';
	bool made = false; /* a key made anew (the certificates say so themselves) */
	struct srv_state *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "state: out of memory");
	s->lock_fd = -1;
	const char *dir = opts->dir != NULL ? opts->dir : SRV_STATE_DEFAULT_DIR;
	enum idp_err rc = IDP_OK;
	int w = snprintf(s->dir, sizeof(s->dir), "%s", dir);
	if (w <= 0 || (size_t)w >= sizeof(s->dir)) {
		rc = idp_error_set(err, IDP_E_LIMIT, "state: directory path empty or too long");
		goto out;
	}
	rc = path_of(s, "idprov.db", s->db_path, sizeof(s->db_path), err);
	char host[256];
	const char *names[SRV_STATE_NAMES_MAX + 4];
	size_t n_names = 0;
	if (rc == IDP_OK)
		rc = cert_names(opts, host, names, &n_names, err);
	if (rc == IDP_OK)
		rc = ensure_dir(s->dir, &s->created, err);
	/* From here on the resolved path: a symlinked state directory (systemd's
	 * DynamicUser=) then reaches the store as a path without symlinks, which
	 * SQLite's SQLITE_OPEN_NOFOLLOW requires. */
	if (rc == IDP_OK) {
		char *real = realpath(s->dir, NULL);
		if (real == NULL) {
			rc = idp_error_set(err, IDP_E_IO, "state: %s: %s", s->dir, strerror(errno));
		} else {
			w = snprintf(s->dir, sizeof(s->dir), "%s", real);
			free(real);
			if (w <= 0 || (size_t)w >= sizeof(s->dir))
				rc = idp_error_set(err, IDP_E_LIMIT, "state: directory path too long");
		}
	}
	if (rc == IDP_OK)
		rc = path_of(s, "idprov.db", s->db_path, sizeof(s->db_path), err);
	if (rc == IDP_OK && opts->lock)
		rc = srv_lock_take(s->dir, &s->lock_fd, err);
	if (rc == IDP_OK && opts->lock)
		sweep_stale_backups(s->dir);

	/* The CA: its key is the root of everything; never replaced once made. */
	if (rc == IDP_OK)
		rc = key_load_or_make(s, "ca.key", FMT_KEY_P256, NULL, &s->ca_key, &made, err);
	if (rc == IDP_OK) {
		rc = cert_load(s, "ca.pem", &s->ca_cert, err);
		if (rc == IDP_E_NOTFOUND) {
			rc = make_ca(s, &s->ca_cert, err);
			if (rc == IDP_OK)
				rc = cert_save(s, "ca.pem", s->ca_cert, err);
		} else if (rc == IDP_OK &&
		           X509_check_private_key(s->ca_cert, fmt_key_evp(s->ca_key)) != 1) {
			rc = idp_error_ssl(err, IDP_E_CONFLICT,
			                   "state: %s/ca.pem does not belong to ca.key", s->dir);
		}
	}

	/* The server certificate: re-issued whenever it no longer fits. */
	if (rc == IDP_OK)
		rc = key_load_or_make(s, "server.key", FMT_KEY_P256, NULL, &s->server_key, &made,
		                      err);
	if (rc == IDP_OK) {
		rc = cert_load(s, "server.pem", &s->server_cert, err);
		if (rc == IDP_OK && !server_cert_fit(s, s->server_cert, names, n_names)) {
			X509_free(s->server_cert);
			s->server_cert = NULL;
			rc = IDP_E_NOTFOUND;
		}
		if (rc == IDP_E_NOTFOUND) {
			rc = make_server_cert(s, names, n_names, &s->server_cert, err);
			if (rc == IDP_OK)
				rc = cert_save(s, "server.pem", s->server_cert, err);
			s->server_cert_issued = rc == IDP_OK;
		}
	}

	if (rc == IDP_OK)
		rc = tokens_open(s, opts->token_key != 0 ? opts->token_key : FMT_KEY_P256,
		                 opts->token_keep > 0
		                         ? opts->token_keep
		                         : (int64_t)FMT_TOKEN_DEVICE_LIFETIME_MAX + FMT_TOKEN_SKEW,
		                 err);

	/* The admin credential: its hash is loaded once, here. */
	if (rc == IDP_OK) {
		s->admin = calloc(1, sizeof(*s->admin));
		if (s->admin == NULL || pthread_mutex_init(&s->admin->lock, NULL) != 0) {
			free(s->admin);
			s->admin = NULL;
			rc = idp_error_set(err, IDP_E_NOMEM, "state: out of memory");
		}
	}
	if (rc == IDP_OK) {
		rc = admin_load(s->dir, s->admin->hash, err);
		if (rc == IDP_E_NOTFOUND) {
			rc = admin_create(s->dir, s->admin->hash, admin_secret, err);
			s->admin_created = rc == IDP_OK;
		}
	}

	if (rc == IDP_OK)
		rc = cert_pem(s->ca_cert, &s->ca_pem, &s->ca_pem_len, err);
	/* Checked once here: each approval carries it unparsed
	 * (fmt_api_status_encode_ca_checked). */
	if (rc == IDP_OK)
		rc = fmt_api_ca_pem_check(s->ca_pem, s->ca_pem_len, err);
	if (rc == IDP_OK) {
		uint8_t md[EVP_MAX_MD_SIZE];
		unsigned mdlen = 0;
		if (X509_digest(s->ca_cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
			rc = idp_error_ssl(err, IDP_E_CRYPTO, "state: ca fingerprint");
		else
			fmt_key_fingerprint_hex(md, s->ca_fingerprint);
	}
out:
	if (rc != IDP_OK) {
		OPENSSL_cleanse(admin_secret, SRV_STATE_ADMIN_SECRET_LEN + 1);
		srv_state_free(s);
		return rc;
	}
	*out = s;
	return IDP_OK;
}

void srv_state_free(struct srv_state *s)
{
	if (s == NULL)
		return;
	X509_free(s->ca_cert);
	X509_free(s->server_cert);
	fmt_key_free(s->ca_key);
	fmt_key_free(s->server_key);
	tokens_free(s->tokens); /* s->token_key is one of its keys */
	if (s->admin != NULL) {
		OPENSSL_cleanse(s->admin->hash, sizeof(s->admin->hash));
		(void)pthread_mutex_destroy(&s->admin->lock);
		free(s->admin);
	}
	free(s->ca_pem);
	srv_lock_release(s->lock_fd);
	free(s);
}

/* ---------------------------------------------------------------- audit key */

enum idp_err srv_state_audit_key(const struct srv_state *s, struct fmt_key **out, bool *created,
                                 struct idp_error *err)
{
	return key_load_or_make(s, "audit.key", FMT_KEY_ED25519, "audit.pub", out, created, err);
}

enum idp_err srv_state_read_public(const char *dir, const char *name, size_t max, uint8_t **out,
                                   size_t *len, struct idp_error *err)
{
	return read_checked(dir, name, PUBLIC_FORBID, max, out, len, err);
}
