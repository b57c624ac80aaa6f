/*
 * state.c - see state.h.
 */
#include "server/state.h"

#include <arpa/inet.h>
#include <errno.h>
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
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "formats/b64.h"
#include "formats/file.h"
#include "formats/keyfile.h"
#include "server/lock.h"

/* scrypt cost for the admin credential: 16 MiB and ~50 ms per check. The
 * credential is 256 random bits, so the cost only guards a stolen hash file
 * against being a free oracle. */
#define ADMIN_SCRYPT_N   16384u
#define ADMIN_SCRYPT_R   8u
#define ADMIN_SCRYPT_P   1u
#define ADMIN_SALT_LEN   16u
#define ADMIN_HASH_LEN   32u
#define ADMIN_FILE_MAX   256u
#define ADMIN_SECRET_RAW 32u
#define SAN_MAX          8192u

/* DIR/name into out; IDP_E_LIMIT when too long. */
static enum idp_err path_of(const struct srv_state *s, const char *name, char *out, size_t size,
                            struct idp_error *err)
{
	int n = snprintf(out, size, "%s/%s", s->dir, name);
	if (n < 0 || (size_t)n >= size)
		return idp_error_set(err, IDP_E_LIMIT, "state: %s/%s: path too long", s->dir, name);
	return IDP_OK;
}

/* Create dir with mode 0700, or check that the existing one is ours and not
 * writable by others. */
static enum idp_err ensure_dir(struct srv_state *s, struct idp_error *err)
{
	if (mkdir(s->dir, 0700) == 0) {
		s->created = true;
		if (chmod(s->dir, 0700) != 0)
			return idp_error_set(err, IDP_E_IO, "state: %s: chmod: %s", s->dir,
			                     strerror(errno));
		return fmt_file_sync_dir(s->dir, err);
	}
	if (errno != EEXIST)
		return idp_error_set(err, IDP_E_IO, "state: %s: %s", s->dir, strerror(errno));
	struct stat st;
	if (lstat(s->dir, &st) != 0)
		return idp_error_set(err, IDP_E_IO, "state: %s: %s", s->dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return idp_error_set(err, IDP_E_IO, "state: %s: not a directory", s->dir);
	if (st.st_uid != geteuid())
		return idp_error_set(err, IDP_E_DENIED, "state: %s: owned by uid %u, not by us",
		                     s->dir, (unsigned)st.st_uid);
	if ((st.st_mode & 022) != 0)
		return idp_error_set(err, IDP_E_DENIED,
		                     "state: %s: mode %03o lets others write; use 0700", s->dir,
		                     (unsigned)(st.st_mode & 0777));
	return IDP_OK;
}

/* Load DIR/name as a private key, or generate (type) and save it with its
 * public half at DIR/pub_name (may be NULL). */
static enum idp_err key_load_or_make(struct srv_state *s, const char *name, const char *pub_name,
                                     enum fmt_key_type type, struct fmt_key **out,
                                     struct idp_error *err)
{
	char path[SRV_STATE_PATH_MAX + 32], pub[SRV_STATE_PATH_MAX + 32];
	enum idp_err rc = path_of(s, name, path, sizeof(path), err);
	if (rc == IDP_OK && pub_name != NULL)
		rc = path_of(s, pub_name, pub, sizeof(pub), err);
	if (rc != IDP_OK)
		return rc;
	rc = fmt_keyfile_load_private(path, out, err);
	if (rc != IDP_E_NOTFOUND)
		return rc;
	rc = fmt_key_generate(type, out, err);
	if (rc == IDP_OK)
		rc = fmt_keyfile_save(*out, path, pub_name != NULL ? pub : NULL, err);
	if (rc != IDP_OK) {
		fmt_key_free(*out);
		*out = NULL;
	}
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
	char path[SRV_STATE_PATH_MAX + 32];
	enum idp_err rc = path_of(s, name, path, sizeof(path), err);
	if (rc != IDP_OK)
		return rc;
	uint8_t *buf = NULL;
	size_t len = 0;
	rc = fmt_file_read(path, SRV_STATE_CERT_PEM_MAX, &buf, &len, err);
	if (rc != IDP_OK)
		return rc;
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	if (bio != NULL)
		*out = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	free(buf);
	if (*out == NULL)
		return idp_error_ssl(err, IDP_E_FORMAT, "state: %s: not a PEM certificate", path);
	return IDP_OK;
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

/* Derive the scrypt hash of secret with salt and the given cost. */
static enum idp_err admin_hash(const char *secret, size_t len, const uint8_t *salt, size_t salt_len,
                               uint64_t n, uint32_t r, uint32_t p,
                               uint8_t out[static ADMIN_HASH_LEN], struct idp_error *err)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {
	        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
	                                          (void *)(uintptr_t)secret, len),
	        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)salt,
	                                          salt_len),
	        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
	        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
	        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
	        OSSL_PARAM_construct_end(),
	};
	enum idp_err rc = IDP_OK;
	if (ctx == NULL || EVP_KDF_derive(ctx, out, ADMIN_HASH_LEN, params) != 1)
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "state: admin credential hash");
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* Create the admin credential: secret out, "scrypt N r p SALT HASH" in the file. */
static enum idp_err admin_create(struct srv_state *s, const char *path,
                                 char secret[static SRV_STATE_ADMIN_SECRET_LEN + 1],
                                 struct idp_error *err)
{
	uint8_t raw[ADMIN_SECRET_RAW], salt[ADMIN_SALT_LEN], hash[ADMIN_HASH_LEN];
	char salt_b64[32], hash_b64[48], line[ADMIN_FILE_MAX];
	enum idp_err rc = IDP_OK;
	if (RAND_bytes(raw, sizeof(raw)) != 1 || RAND_bytes(salt, sizeof(salt)) != 1) {
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "state: random admin credential");
		goto out;
	}
	(void)fmt_b64_encode(FMT_B64_URL, raw, sizeof(raw), secret);
	rc = admin_hash(secret, SRV_STATE_ADMIN_SECRET_LEN, salt, sizeof(salt), ADMIN_SCRYPT_N,
	                ADMIN_SCRYPT_R, ADMIN_SCRYPT_P, hash, err);
	if (rc != IDP_OK)
		goto out;
	(void)fmt_b64_encode(FMT_B64_URL, salt, sizeof(salt), salt_b64);
	(void)fmt_b64_encode(FMT_B64_URL, hash, sizeof(hash), hash_b64);
	int n = snprintf(line, sizeof(line), "scrypt %u %u %u %s %s\n", ADMIN_SCRYPT_N,
	                 ADMIN_SCRYPT_R, ADMIN_SCRYPT_P, salt_b64, hash_b64);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		rc = idp_error_set(err, IDP_E_LIMIT, "state: admin hash line too long");
		goto out;
	}
	rc = fmt_file_write_atomic(path, (const uint8_t *)line, (size_t)n, 0600, err);
	if (rc == IDP_OK)
		s->admin_created = true;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(hash, sizeof(hash));
	if (rc != IDP_OK)
		OPENSSL_cleanse(secret, SRV_STATE_ADMIN_SECRET_LEN + 1);
	return rc;
}

/* Parse one unsigned decimal field of the admin file at *p (bounded by end). */
static bool parse_uint(const char **p, const char *end, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;
	const char *q = *p;
	while (q < end && *q >= '0' && *q <= '9') {
		x = x * 10 + (uint64_t)(*q - '0');
		if (x > max)
			return false;
		q++;
	}
	if (q == *p || q >= end || *q != ' ')
		return false;
	*p = q + 1;
	*v = x;
	return true;
}

enum idp_err srv_state_admin_check(const struct srv_state *state, const char *secret, size_t len,
                                   bool *ok, struct idp_error *err)
{
	*ok = false;
	char path[SRV_STATE_PATH_MAX + 32];
	enum idp_err rc = path_of(state, "admin.hash", path, sizeof(path), err);
	if (rc != IDP_OK)
		return rc;
	uint8_t *buf = NULL;
	size_t blen = 0;
	rc = fmt_file_read(path, ADMIN_FILE_MAX, &buf, &blen, err);
	if (rc != IDP_OK)
		return rc;
	const char *p = (const char *)buf, *end = p + blen;
	uint64_t n = 0, r = 0, par = 0;
	uint8_t salt[ADMIN_SALT_LEN], want[ADMIN_HASH_LEN], got[ADMIN_HASH_LEN];
	size_t salt_len = 0, want_len = 0;
	const char *sp1 = NULL, *sp2 = NULL;
	if ((size_t)(end - p) < 7 || memcmp(p, "scrypt ", 7) != 0)
		goto bad;
	p += 7;
	if (!parse_uint(&p, end, 1u << 20, &n) || n < 1024 || (n & (n - 1)) != 0 ||
	    !parse_uint(&p, end, 32, &r) || r == 0 || !parse_uint(&p, end, 16, &par) || par == 0)
		goto bad;
	sp1 = memchr(p, ' ', (size_t)(end - p));
	if (sp1 == NULL)
		goto bad;
	sp2 = memchr(sp1 + 1, '\n', (size_t)(end - sp1 - 1));
	if (sp2 == NULL || sp2 + 1 != end)
		goto bad;
	if (fmt_b64_decode(FMT_B64_URL, p, (size_t)(sp1 - p), salt, sizeof(salt), &salt_len,
	                   NULL) != IDP_OK ||
	    salt_len != sizeof(salt) ||
	    fmt_b64_decode(FMT_B64_URL, sp1 + 1, (size_t)(sp2 - sp1 - 1), want, sizeof(want),
	                   &want_len, NULL) != IDP_OK ||
	    want_len != sizeof(want))
		goto bad;
	free(buf);
	if (len == 0 || len > 256)
		return IDP_OK;
	rc = admin_hash(secret, len, salt, salt_len, n, (uint32_t)r, (uint32_t)par, got, err);
	if (rc == IDP_OK)
		*ok = CRYPTO_memcmp(got, want, sizeof(got)) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return rc;
bad:
	free(buf);
	return idp_error_set(err, IDP_E_FORMAT, "state: %s: not an admin hash line", path);
}

enum idp_err srv_state_open(const struct srv_state_opts *opts, struct srv_state **out,
                            char admin_secret[static SRV_STATE_ADMIN_SECRET_LEN + 1],
                            struct idp_error *err)
{
	*out = NULL;
	admin_secret[0] = '\0';
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
		rc = ensure_dir(s, err);
	if (rc == IDP_OK && opts->lock)
		rc = srv_lock_take(s->dir, &s->lock_fd, err);

	/* The CA: its key is the root of everything; never replaced once made. */
	if (rc == IDP_OK)
		rc = key_load_or_make(s, "ca.key", NULL, FMT_KEY_P256, &s->ca_key, err);
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
		rc = key_load_or_make(s, "server.key", NULL, FMT_KEY_P256, &s->server_key, err);
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
		rc = key_load_or_make(s, "token.key", "token.pub",
		                      opts->token_key != 0 ? opts->token_key : FMT_KEY_P256,
		                      &s->token_key, err);

	if (rc == IDP_OK) {
		char path[SRV_STATE_PATH_MAX + 32];
		rc = path_of(s, "admin.hash", path, sizeof(path), err);
		if (rc == IDP_OK && access(path, F_OK) != 0)
			rc = admin_create(s, path, admin_secret, err);
	}

	if (rc == IDP_OK)
		rc = cert_pem(s->ca_cert, &s->ca_pem, &s->ca_pem_len, err);
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
	fmt_key_free(s->token_key);
	free(s->ca_pem);
	srv_lock_release(s->lock_fd);
	free(s);
}
