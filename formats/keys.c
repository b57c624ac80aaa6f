/*
 * keys.c - see keys.h. Spec: formats/keys.md.
 */
#include "formats/keys.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

struct fmt_key {
	EVP_PKEY *pkey;
	enum fmt_key_type type;
	bool has_private;
	bool in_provider; /* the private half stays in its provider (fmt_key_from_provider) */
	/* Where signing is fetched: NULL and "" for every other key. OpenSSL
	 * 3.0 fetches the signature from the library context it is given, not
	 * from the key's provider, so a provider-held key names both. */
	OSSL_LIB_CTX *libctx;
	char propq[80];
	/* The public key's SPKI DER, taken once when the key is made (the key
	 * never changes): every proof and fingerprint needs it, and exporting
	 * a P-256 point costs about 20 us. spki_len 0: not taken (the export
	 * failed then), fmt_key_spki_der exports on each call. */
	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t spki_len;
};

/* Type of pkey, or 0 when it is neither P-256 nor Ed25519. */
static enum fmt_key_type type_of(EVP_PKEY *pkey)
{
	if (EVP_PKEY_is_a(pkey, "ED25519"))
		return FMT_KEY_ED25519;
	if (EVP_PKEY_is_a(pkey, "EC")) {
		char group[64];
		size_t glen = 0;
		if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                   sizeof(group), &glen) == 1 &&
		    strcmp(group, "prime256v1") == 0)
			return FMT_KEY_P256;
	}
	return 0;
}

static const char *describe(EVP_PKEY *pkey)
{
	const char *name = EVP_PKEY_get0_type_name(pkey);
	return name != NULL ? name : "unknown";
}

#define ED25519_KEY_LEN 32u

/*
 * The eight points of small order (1, 2, 4 and 8) of edwards25519, each in
 * its one canonical encoding: y little-endian, bit 255 the sign of x. A key
 * among them verifies "signatures" made without any private key (for the
 * identity, R = identity and S = 0 verifies for every message in OpenSSL
 * 3.0), so the parser refuses them. tests/unit/test_keys.c checks the table
 * independently (X25519 of each point's Montgomery u is zero) and forges a
 * signature for each with plain OpenSSL. The six non-canonical encodings of
 * these points (y = p and y = p + 1 with either sign, x = 0 with the sign
 * bit set) are refused by ed25519_check as not canonical.
 */
static const uint8_t ed25519_small_order[8][ED25519_KEY_LEN] = {
        /* identity (0, 1), order 1 */
        {0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
         0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
         0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
        /* (0, p - 1), order 2 */
        {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
        /* (sqrt(-1), 0) and (-sqrt(-1), 0), order 4 */
        {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
         0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
         0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
        {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
         0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
         0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80},
        /* the four points of order 8: two values of y, each with both signs of x */
        {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,
         0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
         0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
        {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,
         0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
         0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x85},
        {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,
         0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
         0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
        {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,
         0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
         0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0xfa},
};

/* Refuse an Ed25519 public key of small order or in a non-canonical
 * encoding (RFC 8032 section 5.1.3 decoding fails: y >= p = 2^255 - 19, or
 * x = 0 with the sign bit set). Keys are public: plain compares are fine. */
static enum idp_err ed25519_check(const uint8_t pub[static ED25519_KEY_LEN], struct idp_error *err)
{
	for (size_t i = 0; i < sizeof(ed25519_small_order) / sizeof(ed25519_small_order[0]); i++)
		if (memcmp(pub, ed25519_small_order[i], ED25519_KEY_LEN) == 0)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "key: ed25519 public key is of small order");
	/* y is the low 255 bits; p is ed ff .. ff 7f little-endian. */
	bool y_ge_p = pub[0] >= 0xed && (pub[31] & 0x7f) == 0x7f;
	for (size_t i = 1; i < ED25519_KEY_LEN - 1 && y_ge_p; i++)
		y_ge_p = pub[i] == 0xff;
	/* x = 0 only for y = 1 and y = p - 1 (table rows 0 and 1, sign bit clear). */
	bool neg_zero = false;
	if ((pub[31] & 0x80) != 0) {
		uint8_t y[ED25519_KEY_LEN];
		memcpy(y, pub, sizeof(y));
		y[31] &= 0x7f;
		neg_zero = memcmp(y, ed25519_small_order[0], sizeof(y)) == 0 ||
		           memcmp(y, ed25519_small_order[1], sizeof(y)) == 0;
	}
	if (y_ge_p || neg_zero)
		return idp_error_set(err, IDP_E_FORMAT, "key: ed25519 public key is not canonical");
	return IDP_OK;
}

/* ed25519_check on the public half of an Ed25519 pkey. */
static enum idp_err ed25519_pkey_check(EVP_PKEY *pkey, struct idp_error *err)
{
	uint8_t pub[ED25519_KEY_LEN];
	size_t n = sizeof(pub);
	if (EVP_PKEY_get_raw_public_key(pkey, pub, &n) != 1 || n != sizeof(pub))
		return idp_error_ssl(err, IDP_E_CRYPTO, "key: read ed25519 public key");
	return ed25519_check(pub, err);
}

static enum idp_err spki_export(const struct fmt_key *key, uint8_t out[static FMT_KEY_SPKI_MAX],
                               size_t *len, struct idp_error *err);

/* Wrap pkey (takes ownership of the caller's reference in every case). Every
 * key the module hands out passes here, so the Ed25519 key checks live here:
 * wire, API, manifests, station keys and certificates all inherit them.
 * spki: the key's canonical SPKI DER when the caller has it (len bytes), or
 * NULL to export it here. known: the type when the caller made pkey as one
 * (asking OpenSSL costs 1 % of a proof check), or 0 to ask. */
static enum idp_err wrap_spki(EVP_PKEY *pkey, bool priv, const uint8_t *spki, size_t spki_len,
                              enum fmt_key_type known, struct fmt_key **out,
                              struct idp_error *err)
{
	*out = NULL;
	enum fmt_key_type t = known != 0 ? known : type_of(pkey);
	if (t == 0) {
		(void)idp_error_set(err, IDP_E_UNSUPPORTED,
		                    "key: type %s is not supported (use p256 or ed25519)",
		                    describe(pkey));
		EVP_PKEY_free(pkey);
		return IDP_E_UNSUPPORTED;
	}
	if (t == FMT_KEY_ED25519) {
		enum idp_err rc = ed25519_pkey_check(pkey, err);
		if (rc != IDP_OK) {
			EVP_PKEY_free(pkey);
			return rc;
		}
	}
	struct fmt_key *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		EVP_PKEY_free(pkey);
		(void)idp_error_set(err, IDP_E_NOMEM, "key: out of memory");
		return IDP_E_NOMEM;
	}
	k->pkey = pkey;
	k->type = t;
	k->has_private = priv;
	if (spki != NULL && spki_len <= sizeof(k->spki)) {
		memcpy(k->spki, spki, spki_len);
		k->spki_len = spki_len;
	} else if (spki_export(k, k->spki, &k->spki_len, NULL) != IDP_OK) {
		k->spki_len = 0; /* fmt_key_spki_der tries again and names the failure */
		ERR_clear_error();
	}
	*out = k;
	return IDP_OK;
}

static enum idp_err wrap(EVP_PKEY *pkey, bool priv, struct fmt_key **out, struct idp_error *err)
{
	return wrap_spki(pkey, priv, NULL, 0, 0, out, err);
}

enum idp_err fmt_key_generate(enum fmt_key_type type, struct fmt_key **out, struct idp_error *err)
{
	*out = NULL;
	EVP_PKEY *pkey = NULL;
	if (type == FMT_KEY_P256)
		pkey = EVP_EC_gen("P-256");
	else if (type == FMT_KEY_ED25519)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		return idp_error_set(err, IDP_E_UNSUPPORTED, "key: type %d is not supported",
		                     (int)type);
	if (pkey == NULL)
		return idp_error_ssl(err, IDP_E_CRYPTO, "key: generate %s", fmt_key_type_name(type));
	return wrap(pkey, true, out, err);
}

static enum idp_err check_len(size_t len, size_t max, const char *what, struct idp_error *err)
{
	if (len == 0)
		return idp_error_set(err, IDP_E_FORMAT, "%s: empty", what);
	if (len > max || len > INT_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "%s: %zu bytes, max %zu", what, len, max);
	return IDP_OK;
}

static EVP_PKEY *pem_spki_fast(const uint8_t *buf, size_t len,
                               uint8_t spki[static FMT_KEY_SPKI_MAX], size_t *spki_len,
                               enum fmt_key_type *type);

/*
 * True when buf holds a PEM block that OpenSSL's armor reader (PEM_read_bio)
 * reads whole, looking at the blocks in turn as OpenSSL's key readers do.
 * Both of them (the 3.0 decoders and the legacy reader they fall back to)
 * take their DER from such a block, so text without one holds no key. This
 * costs microseconds, while PEM_read_bio_PrivateKey and _PUBKEY set up
 * OpenSSL 3.0's decoders (about 250 us, thousands of allocations) before
 * they look at the text at all: a file that is not PEM (a DER key, a
 * truncated or damaged file) is refused without that cost.
 */
static bool pem_block_in(const uint8_t *buf, size_t len)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	if (bio == NULL) {
		ERR_clear_error();
		return true; /* let OpenSSL's reader say what is wrong */
	}
	(void)ERR_set_mark();
	bool found = false;
	size_t left = len;
	while (!found && left > 0) {
		char *name = NULL, *header = NULL;
		unsigned char *data = NULL;
		long n = 0;
		found = PEM_read_bio(bio, &name, &header, &data, &n) == 1;
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		size_t now = (size_t)BIO_pending(bio);
		if (now >= left) /* no progress: the end of the text */
			break;
		left = now;
	}
	(void)ERR_pop_to_mark();
	BIO_free(bio);
	return found;
}

enum idp_err fmt_key_parse_private_pem(const uint8_t *buf, size_t len, struct fmt_key **out,
                                       struct idp_error *err)
{
	*out = NULL;
	enum idp_err rc = check_len(len, FMT_KEY_PEM_MAX, "private key", err);
	if (rc != IDP_OK)
		return rc;
	if (!pem_block_in(buf, len))
		return idp_error_set(err, IDP_E_FORMAT, "private key: not an unencrypted PKCS#8 "
		                                        "PEM key: no complete PEM block");
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	if (bio == NULL)
		return idp_error_ssl(err, IDP_E_NOMEM, "private key: out of memory");
	/* An empty password callback result makes encrypted keys fail, not prompt. */
	char nopass[1] = {0};
	EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, nopass);
	BIO_free(bio);
	if (pkey == NULL)
		return idp_error_ssl(err, IDP_E_FORMAT,
		                     "private key: not an unencrypted PKCS#8 PEM key");
	return wrap(pkey, true, out, err);
}

enum idp_err fmt_key_parse_public_pem(const uint8_t *buf, size_t len, struct fmt_key **out,
                                      struct idp_error *err)
{
	*out = NULL;
	enum idp_err rc = check_len(len, FMT_KEY_PEM_MAX, "public key", err);
	if (rc != IDP_OK)
		return rc;
	if (!pem_block_in(buf, len))
		return idp_error_set(err, IDP_E_FORMAT,
		                     "public key: not an SPKI PEM key: no complete PEM block");
	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t spki_len = 0;
	enum fmt_key_type type = 0;
	EVP_PKEY *fast = pem_spki_fast(buf, len, spki, &spki_len, &type);
	if (fast != NULL)
		return wrap_spki(fast, false, spki, spki_len, type, out, err);
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	if (bio == NULL)
		return idp_error_ssl(err, IDP_E_NOMEM, "public key: out of memory");
	EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL)
		return idp_error_ssl(err, IDP_E_FORMAT, "public key: not an SPKI PEM key");
	return wrap(pkey, false, out, err);
}

/*
 * The canonical SPKI DER of either key type is a fixed header followed by the
 * key itself: the uncompressed P-256 point (RFC 5480) or the 32 Ed25519 bytes
 * (RFC 8410). OpenSSL 3.0's generic decoder and encoder cost about 230 and
 * 300 us per key on the reference machine (Debian 12, OpenSSL 3.0), against
 * about 35 and 1 us for importing or exporting the key bytes; every
 * provisioning request and every manifest record carries a key, so the
 * canonical forms take this path and all else the generic one, which also
 * names what is wrong. OpenSSL still validates the key (the point must be on
 * the curve), and the unit tests check these headers against i2d_PUBKEY.
 */
static const uint8_t spki_p256_head[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a,
                                         0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                                         0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
                                         0x01, 0x07, 0x03, 0x42, 0x00};
static const uint8_t spki_ed25519_head[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                            0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
#define P256_POINT_LEN 65u /* 0x04 || X || Y */

/* A P-256 public key from its uncompressed point, the generic way: OpenSSL
 * 3.0 builds a new EC_GROUP from the curve's name for every key (about 40 of
 * its 70-90 us). NULL when OpenSSL refuses the point. */
static EVP_PKEY *p256_fromdata(const uint8_t pt[static P256_POINT_LEN])
{
	char group[] = "prime256v1";
	uint8_t point[P256_POINT_LEN];
	memcpy(point, pt, sizeof(point));
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

/* The P-256 base point G, uncompressed: the public key of the template. */
static const uint8_t p256_base[P256_POINT_LEN] = {
        0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5,
        0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4,
        0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a,
        0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33,
        0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5};

/*
 * The one process-wide object of this module: a P-256 public key (the base
 * point) made on first use and never changed after, which every P-256
 * import copies. Copying it duplicates its group (about 15 us with the new
 * point) instead of building one from the curve's name (about 70 us), the
 * largest cost of a provisioning request's key besides the signature
 * itself. WARNING: read-only after p256_template_init; nothing may set a
 * parameter on it. Never freed (it lives as long as the process).
 */
static CRYPTO_ONCE p256_once = CRYPTO_ONCE_STATIC_INIT;
static EVP_PKEY *p256_template;

static void p256_template_init(void)
{
	p256_template = p256_fromdata(p256_base);
	ERR_clear_error();
}

/* A P-256 public key from its uncompressed point: a copy of the template
 * with the point set (OpenSSL checks it is on the curve, as for
 * p256_fromdata). NULL when refused or out of memory. */
static EVP_PKEY *p256_import(const uint8_t pt[static P256_POINT_LEN])
{
	if (CRYPTO_THREAD_run_once(&p256_once, p256_template_init) != 1 || p256_template == NULL)
		return p256_fromdata(pt);
	EVP_PKEY *pkey = EVP_PKEY_dup(p256_template);
	if (pkey == NULL || EVP_PKEY_set1_encoded_public_key(pkey, pt, P256_POINT_LEN) != 1) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

/* A key from canonical SPKI bytes. *tried is false when buf is in neither
 * canonical form; then NULL. With *tried, NULL means OpenSSL refused the key. */
static EVP_PKEY *spki_fast_parse(const uint8_t *buf, size_t len, bool *tried)
{
	size_t eh = sizeof(spki_ed25519_head), ph = sizeof(spki_p256_head);
	*tried = false;
	if (len == eh + ED25519_KEY_LEN && memcmp(buf, spki_ed25519_head, eh) == 0) {
		*tried = true;
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, buf + eh, ED25519_KEY_LEN);
	}
	if (len != ph + P256_POINT_LEN || memcmp(buf, spki_p256_head, ph) != 0 || buf[ph] != 0x04)
		return NULL;
	*tried = true;
	return p256_import(buf + ph);
}

/*
 * The key of a public PEM text whose first block is what fmt_key_public_pem
 * writes: PUBLIC KEY, no headers, a canonical SPKI; its DER into spki
 * and its type into *type; NULL otherwise, or when OpenSSL refuses the key (then PEM_read_bio_PUBKEY,
 * which also reads the first block first, decides and names the problem).
 * Saves PEM_read_bio_PUBKEY's decoder setup (about 250 us) per key: an
 * audit export carries its key this way.
 */
static EVP_PKEY *pem_spki_fast(const uint8_t *buf, size_t len,
                               uint8_t spki[static FMT_KEY_SPKI_MAX], size_t *spki_len,
                               enum fmt_key_type *type)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long n = 0;
	EVP_PKEY *pkey = NULL;
	bool tried = false;
	(void)ERR_set_mark();
	if (bio != NULL && PEM_read_bio(bio, &name, &header, &data, &n) == 1 &&
	    strcmp(name, "PUBLIC KEY") == 0 && header[0] == '\0' && n > 0 &&
	    (size_t)n <= FMT_KEY_SPKI_MAX) {
		pkey = spki_fast_parse(data, (size_t)n, &tried);
		if (pkey != NULL) {
			memcpy(spki, data, (size_t)n);
			*spki_len = (size_t)n;
			*type = (size_t)n == sizeof(spki_ed25519_head) + ED25519_KEY_LEN
			                ? FMT_KEY_ED25519
			                : FMT_KEY_P256;
		}
	}
	(void)ERR_pop_to_mark();
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	return pkey;
}

/* Canonical SPKI of key into out when its public key exports in canonical
 * form (an EC key set to compressed points does not); false otherwise. */
static bool spki_fast_encode(const struct fmt_key *key, uint8_t out[static FMT_KEY_SPKI_MAX],
                             size_t *len)
{
	size_t n = 0;
	if (key->type == FMT_KEY_ED25519) {
		size_t eh = sizeof(spki_ed25519_head);
		n = ED25519_KEY_LEN;
		if (EVP_PKEY_get_raw_public_key(key->pkey, out + eh, &n) != 1 || n != ED25519_KEY_LEN)
			goto no;
		memcpy(out, spki_ed25519_head, eh);
		*len = eh + n;
		return true;
	}
	size_t ph = sizeof(spki_p256_head);
	if (EVP_PKEY_get_octet_string_param(key->pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out + ph,
	                                    P256_POINT_LEN, &n) != 1 ||
	    n != P256_POINT_LEN || out[ph] != 0x04)
		goto no;
	memcpy(out, spki_p256_head, ph);
	*len = ph + n;
	return true;
no:
	ERR_clear_error();
	return false;
}

enum idp_err fmt_key_parse_spki_der(const uint8_t *buf, size_t len, struct fmt_key **out,
                                    struct idp_error *err)
{
	*out = NULL;
	enum idp_err rc = check_len(len, FMT_KEY_SPKI_MAX, "public key", err);
	if (rc != IDP_OK)
		return rc;
	bool tried = false;
	EVP_PKEY *fast = spki_fast_parse(buf, len, &tried);
	if (tried && fast == NULL)
		return idp_error_ssl(err, IDP_E_FORMAT, "public key: not an SPKI DER key");
	if (fast != NULL) /* canonical by construction, and its form names the type */
		return wrap_spki(fast, false, buf, len,
		                 len == sizeof(spki_ed25519_head) + ED25519_KEY_LEN ? FMT_KEY_ED25519
		                                                                    : FMT_KEY_P256,
		                 out, err);
	const unsigned char *p = buf;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)len);
	if (pkey == NULL)
		return idp_error_ssl(err, IDP_E_FORMAT, "public key: not an SPKI DER key");
	if (p != buf + len) {
		EVP_PKEY_free(pkey);
		return idp_error_set(err, IDP_E_FORMAT, "public key: %zu trailing bytes after SPKI",
		                     (size_t)(buf + len - p));
	}
	struct fmt_key *k = NULL;
	rc = wrap(pkey, false, &k, err);
	if (rc != IDP_OK)
		return rc;
	/* One key, one encoding: refuse BER variants and compressed points. */
	uint8_t again[FMT_KEY_SPKI_MAX];
	size_t alen = 0;
	rc = fmt_key_spki_der(k, again, &alen, err);
	if (rc == IDP_OK && (alen != len || memcmp(again, buf, len) != 0))
		rc = idp_error_set(err, IDP_E_FORMAT, "public key: SPKI is not in canonical form");
	if (rc != IDP_OK) {
		fmt_key_free(k);
		return rc;
	}
	*out = k;
	return IDP_OK;
}

/* P-256's curve constant b (the curve is y^2 = x^3 - 3x + b over the NIST
 * prime p, BN_get0_nist_prime_256). */
static const uint8_t p256_b[32] = {0x5a, 0xc6, 0x35, 0xd8, 0xaa, 0x3a, 0x93, 0xe7,
                                   0xb3, 0xeb, 0xbd, 0x55, 0x76, 0x98, 0x86, 0xbc,
                                   0x65, 0x1d, 0x06, 0xb0, 0xcc, 0x53, 0xb0, 0xf6,
                                   0x3b, 0xce, 0x3c, 0x3e, 0x27, 0xd2, 0x60, 0x4b};

/* 1 when pt (0x04 || X || Y) is a point of P-256: X < p, Y < p and
 * Y^2 = X^3 - 3X + b (mod p), what EC_POINT_oct2point checks of an
 * uncompressed point (the curve has cofactor 1, so every such point is in
 * the group), in about 1-2 us instead of the 40 us a new EC_GROUP costs;
 * BN_nist_mod_256 reduces (BN_mod_mul's division tripled the time). 0 when
 * it is not; -1 when out of memory. Public data: no constant time needed. */
static int p256_on_curve(const uint8_t pt[static P256_POINT_LEN])
{
	const BIGNUM *p = BN_get0_nist_prime_256();
	BN_CTX *ctx = BN_CTX_new();
	if (ctx == NULL)
		return -1;
	BN_CTX_start(ctx);
	BIGNUM *b = BN_CTX_get(ctx), *x = BN_CTX_get(ctx), *y = BN_CTX_get(ctx);
	BIGNUM *lhs = BN_CTX_get(ctx), *rhs = BN_CTX_get(ctx), *t = BN_CTX_get(ctx);
	int ok = -1;
	if (t != NULL && BN_bin2bn(p256_b, 32, b) != NULL && BN_bin2bn(pt + 1, 32, x) != NULL &&
	    BN_bin2bn(pt + 33, 32, y) != NULL) {
		/* All values stay in [0, p^2), what BN_nist_mod_256 takes:
		 * rhs = (x^3 mod p) + b + 3p - 3x lies in (0, 5p). */
		if (pt[0] != 0x04 || BN_cmp(x, p) >= 0 || BN_cmp(y, p) >= 0)
			ok = 0;
		else if (BN_sqr(t, y, ctx) == 1 && BN_nist_mod_256(lhs, t, p, ctx) == 1 &&
		         BN_sqr(t, x, ctx) == 1 && BN_nist_mod_256(t, t, p, ctx) == 1 &&
		         BN_mul(rhs, t, x, ctx) == 1 && BN_nist_mod_256(rhs, rhs, p, ctx) == 1 &&
		         BN_add(rhs, rhs, b) == 1 && BN_lshift1(t, p) == 1 && BN_add(t, t, p) == 1 &&
		         BN_add(rhs, rhs, t) == 1 && BN_lshift1(t, x) == 1 && BN_add(t, t, x) == 1 &&
		         BN_sub(rhs, rhs, t) == 1 && BN_nist_mod_256(rhs, rhs, p, ctx) == 1)
			ok = BN_cmp(lhs, rhs) == 0;
	}
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	return ok;
}

EC_GROUP *fmt_key_p256_group(void)
{
	return EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

enum idp_err fmt_key_spki_check(const uint8_t *buf, size_t len, const EC_GROUP *p256,
                                enum fmt_key_type *type, struct idp_error *err)
{
	/* The same two canonical forms as spki_fast_parse (DER is unique, so
	 * matching them is what parse-and-re-encode would ensure). */
	size_t eh = sizeof(spki_ed25519_head), ph = sizeof(spki_p256_head);
	if (len == eh + ED25519_KEY_LEN && memcmp(buf, spki_ed25519_head, eh) == 0) {
		/* OpenSSL accepts any 32 bytes as an Ed25519 public key; we do not. */
		enum idp_err rc = ed25519_check(buf + eh, err);
		if (rc == IDP_OK)
			*type = FMT_KEY_ED25519;
		return rc;
	}
	if (len == ph + P256_POINT_LEN && memcmp(buf, spki_p256_head, ph) == 0 && buf[ph] == 0x04) {
		int ok;
		if (p256 != NULL) {
			EC_POINT *pt = EC_POINT_new(p256);
			if (pt == NULL)
				return idp_error_ssl(err, IDP_E_NOMEM, "public key: out of memory");
			/* Fails unless the point is on the curve. */
			ok = EC_POINT_oct2point(p256, pt, buf + ph, P256_POINT_LEN, NULL);
			EC_POINT_free(pt);
		} else {
			ok = p256_on_curve(buf + ph);
		}
		if (ok < 0)
			return idp_error_ssl(err, IDP_E_NOMEM, "public key: out of memory");
		if (ok != 1)
			return idp_error_ssl(err, IDP_E_FORMAT,
			                     "public key: P-256 point is not on the curve");
		*type = FMT_KEY_P256;
		return IDP_OK;
	}
	/* Not one of the two: the full parse names the problem (slow, refusals only). */
	struct fmt_key *k = NULL;
	enum idp_err rc = fmt_key_parse_spki_der(buf, len, &k, err);
	fmt_key_free(k);
	if (rc == IDP_OK)
		rc = idp_error_set(err, IDP_E_FORMAT, "public key: SPKI is not in canonical form");
	return rc;
}

/* Copy a memory BIO's content into a new NUL-terminated buffer. */
static enum idp_err bio_take(BIO *bio, char **pem, size_t *len, const char *what,
                             struct idp_error *err)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	if (n <= 0 || data == NULL)
		return idp_error_ssl(err, IDP_E_CRYPTO, "%s: encode", what);
	char *copy = malloc((size_t)n + 1);
	if (copy == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "%s: out of memory", what);
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	*pem = copy;
	*len = (size_t)n;
	return IDP_OK;
}

enum idp_err fmt_key_private_pem(const struct fmt_key *key, char **pem, size_t *len,
                                 struct idp_error *err)
{
	*pem = NULL;
	*len = 0;
	if (!key->has_private)
		return idp_error_set(err, IDP_E_ARG, "private key: key has no private half");
	if (key->in_provider)
		return idp_error_set(err, IDP_E_ARG,
		                     "private key: held by its provider, never exported");
	BIO *bio = BIO_new(BIO_s_secmem());
	if (bio == NULL)
		bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		return idp_error_ssl(err, IDP_E_NOMEM, "private key: out of memory");
	enum idp_err rc;
	if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) != 1)
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "private key: encode PKCS#8");
	else
		rc = bio_take(bio, pem, len, "private key", err);
	/* WARNING: the BIO held the key; free it cleansed. */
	BIO_free(bio);
	return rc;
}

enum idp_err fmt_key_public_pem(const struct fmt_key *key, char **pem, size_t *len,
                                struct idp_error *err)
{
	*pem = NULL;
	*len = 0;
	BIO *bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		return idp_error_ssl(err, IDP_E_NOMEM, "public key: out of memory");
	enum idp_err rc;
	if (PEM_write_bio_PUBKEY(bio, key->pkey) != 1)
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "public key: encode SPKI");
	else
		rc = bio_take(bio, pem, len, "public key", err);
	BIO_free(bio);
	return rc;
}

/* The SPKI DER of key's public half, exported from OpenSSL. */
static enum idp_err spki_export(const struct fmt_key *key, uint8_t out[static FMT_KEY_SPKI_MAX],
                               size_t *len, struct idp_error *err)
{
	*len = 0;
	if (spki_fast_encode(key, out, len))
		return IDP_OK;
	int n = i2d_PUBKEY(key->pkey, NULL);
	if (n <= 0)
		return idp_error_ssl(err, IDP_E_CRYPTO, "public key: encode SPKI");
	if ((size_t)n > FMT_KEY_SPKI_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "public key: SPKI is %d bytes, max %u", n,
		                     FMT_KEY_SPKI_MAX);
	unsigned char *p = out;
	if (i2d_PUBKEY(key->pkey, &p) != n)
		return idp_error_ssl(err, IDP_E_CRYPTO, "public key: encode SPKI");
	*len = (size_t)n;
	return IDP_OK;
}

enum idp_err fmt_key_spki_der(const struct fmt_key *key, uint8_t out[static FMT_KEY_SPKI_MAX],
                              size_t *len, struct idp_error *err)
{
	if (key->spki_len == 0)
		return spki_export(key, out, len, err);
	memcpy(out, key->spki, key->spki_len);
	*len = key->spki_len;
	return IDP_OK;
}

enum idp_err fmt_key_fingerprint(const struct fmt_key *key,
                                 uint8_t out[static FMT_KEY_FINGERPRINT_LEN], struct idp_error *err)
{
	uint8_t der[FMT_KEY_SPKI_MAX];
	size_t len = 0;
	enum idp_err rc = fmt_key_spki_der(key, der, &len, err);
	if (rc != IDP_OK)
		return rc;
	if (SHA256(der, len, out) == NULL)
		return idp_error_ssl(err, IDP_E_CRYPTO, "public key: fingerprint");
	return IDP_OK;
}

void fmt_key_fingerprint_hex(const uint8_t fp[static FMT_KEY_FINGERPRINT_LEN], char out[static 65])
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < FMT_KEY_FINGERPRINT_LEN; i++) {
		out[2 * i] = hex[fp[i] >> 4];
		out[2 * i + 1] = hex[fp[i] & 15];
	}
	out[64] = '\0';
}

/* P-256 group order n, and floor(n / 2): an ECDSA s above it is "high". */
static const uint8_t p256_order[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                       0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
static const uint8_t p256_half_order[32] = {0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00,
                                            0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                            0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42,
                                            0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8};

bool fmt_key_sig_high_s(const struct fmt_key *key, const uint8_t *sig, size_t sig_len)
{
	return key->type == FMT_KEY_P256 && sig_len == FMT_KEY_RAW_SIG_LEN &&
	       memcmp(sig + 32, p256_half_order, 32) > 0;
}

/* ECDSA s -> n - s when s > n/2, so that a message has one valid signature
 * (ECDSA signatures are otherwise malleable: (r, n - s) verifies too). The
 * arithmetic is on the 32 big-endian bytes: s is public, and a BIGNUM round
 * trip cost a few us of a 70 us signature. */
static enum idp_err p256_low_s(uint8_t s[static 32], struct idp_error *err)
{
	if (memcmp(s, p256_half_order, 32) <= 0)
		return IDP_OK;
	if (memcmp(s, p256_order, 32) >= 0)
		return idp_error_set(err, IDP_E_CRYPTO, "sign: ecdsa s is not below the order");
	unsigned borrow = 0;
	for (size_t i = 32; i-- > 0;) {
		unsigned d = (unsigned)p256_order[i] - s[i] - borrow;
		s[i] = (uint8_t)d;
		borrow = (d >> 8) & 1u;
	}
	return IDP_OK;
}

/* One DER INTEGER at *p (before end) of an ECDSA signature: positive,
 * minimal, at most 32 bytes of value, left-padded into out. */
static bool der_int32(const uint8_t **p, const uint8_t *end, uint8_t out[static 32])
{
	const uint8_t *q = *p;
	if (end - q < 3 || q[0] != 0x02)
		return false;
	size_t n = q[1];
	q += 2;
	if (n == 0 || n > (size_t)(end - q) || (q[0] & 0x80) != 0)
		return false;
	if (n > 1 && q[0] == 0 && (q[1] & 0x80) == 0)
		return false; /* not minimal */
	if (q[0] == 0 && n > 1) {
		q++;
		n--;
	}
	if (n > 32)
		return false;
	memset(out, 0, 32 - n);
	memcpy(out + 32 - n, q, n);
	*p = q + n;
	return true;
}

/* DER ECDSA signature (SEQUENCE { r, s }, short-form lengths, as P-256
 * signatures always are) -> 64-byte r||s. */
static enum idp_err der_to_raw(const uint8_t *der, size_t len, uint8_t raw[static 64],
                               struct idp_error *err)
{
	if (len < 2 || der[0] != 0x30 || der[1] != len - 2)
		return idp_error_set(err, IDP_E_VERIFY, "signature: not a DER ECDSA signature");
	const uint8_t *p = der + 2, *end = der + len;
	if (!der_int32(&p, end, raw) || !der_int32(&p, end, raw + 32) || p != end)
		return idp_error_set(err, IDP_E_VERIFY, "signature: not a DER ECDSA signature");
	return IDP_OK;
}

/* One 32-byte big-endian value as a minimal positive DER INTEGER at out. */
static size_t der_put_int32(const uint8_t v[static 32], uint8_t *out)
{
	size_t skip = 0;
	while (skip < 31 && v[skip] == 0)
		skip++;
	size_t n = 32 - skip, pad = (v[skip] & 0x80) != 0 ? 1u : 0u;
	out[0] = 0x02;
	out[1] = (uint8_t)(n + pad);
	out[2] = 0;
	memcpy(out + 2 + pad, v + skip, n);
	return 2 + pad + n;
}

/* 64-byte r||s -> DER ECDSA signature in der (at most 72 bytes, so the
 * lengths are short-form). */
static void raw_to_der(const uint8_t raw[static 64], uint8_t der[static FMT_KEY_SIG_MAX],
                       size_t *len)
{
	size_t n = der_put_int32(raw, der + 2);
	n += der_put_int32(raw + 32, der + 2 + n);
	der[0] = 0x30;
	der[1] = (uint8_t)n;
	*len = n + 2;
}

enum idp_err fmt_key_sign(const struct fmt_key *key, enum fmt_sig_enc enc, const uint8_t *msg,
                          size_t len, uint8_t sig[static FMT_KEY_SIG_MAX], size_t *sig_len,
                          struct idp_error *err)
{
	*sig_len = 0;
	if (!key->has_private)
		return idp_error_set(err, IDP_E_ARG, "sign: key has no private half");
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return idp_error_ssl(err, IDP_E_NOMEM, "sign: out of memory");
	enum idp_err rc = IDP_OK;
	const char *md = key->type == FMT_KEY_P256 ? "SHA256" : NULL;
	size_t n = FMT_KEY_SIG_MAX;
	if (EVP_DigestSignInit_ex(ctx, NULL, md, key->libctx,
	                          key->propq[0] != '\0' ? key->propq : NULL, key->pkey, NULL) != 1 ||
	    EVP_DigestSign(ctx, sig, &n, msg, len) != 1) {
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "sign: %s", fmt_key_type_name(key->type));
		goto out;
	}
	if (key->type == FMT_KEY_P256) {
		/* Low s in both encodings: one signature per message and key. */
		uint8_t raw[64] = {0};
		rc = der_to_raw(sig, n, raw, err);
		if (rc == IDP_OK)
			rc = p256_low_s(raw + 32, err);
		if (rc == IDP_OK && enc == FMT_SIG_RAW) {
			memcpy(sig, raw, sizeof(raw));
			n = sizeof(raw);
		} else if (rc == IDP_OK) {
			raw_to_der(raw, sig, &n);
		}
		if (rc != IDP_OK)
			goto out;
	}
	*sig_len = n;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

enum idp_err fmt_key_verify(const struct fmt_key *key, enum fmt_sig_enc enc, const uint8_t *msg,
                            size_t len, const uint8_t *sig, size_t sig_len, struct idp_error *err)
{
	uint8_t der[FMT_KEY_SIG_MAX];
	if (key->type == FMT_KEY_ED25519 || enc == FMT_SIG_RAW) {
		if (sig_len != FMT_KEY_RAW_SIG_LEN)
			return idp_error_set(err, IDP_E_VERIFY, "signature: %zu bytes, expected %u",
			                     sig_len, FMT_KEY_RAW_SIG_LEN);
	} else if (sig_len == 0 || sig_len > FMT_KEY_SIG_MAX) {
		return idp_error_set(err, IDP_E_VERIFY, "signature: %zu bytes is not a P-256 signature",
		                     sig_len);
	}
	if (enc == FMT_SIG_RAW && fmt_key_sig_high_s(key, sig, sig_len))
		return idp_error_set(err, IDP_E_VERIFY,
		                     "signature: ecdsa s is above n/2 (not low-s)");
	if (key->type == FMT_KEY_P256 && enc == FMT_SIG_RAW) {
		size_t n = 0;
		raw_to_der(sig, der, &n);
		sig = der;
		sig_len = n;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return idp_error_ssl(err, IDP_E_NOMEM, "verify: out of memory");
	const char *md = key->type == FMT_KEY_P256 ? "SHA256" : NULL;
	enum idp_err rc = IDP_OK;
	if (EVP_DigestVerifyInit_ex(ctx, NULL, md, NULL, NULL, key->pkey, NULL) != 1) {
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "verify: %s", fmt_key_type_name(key->type));
		goto out;
	}
	if (EVP_DigestVerify(ctx, sig, sig_len, msg, len) != 1)
		rc = idp_error_ssl(err, IDP_E_VERIFY, "signature: does not match");
out:
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

enum fmt_key_type fmt_key_type(const struct fmt_key *key)
{
	return key->type;
}

const char *fmt_key_type_name(enum fmt_key_type type)
{
	switch (type) {
	case FMT_KEY_P256: return "p256";
	case FMT_KEY_ED25519: return "ed25519";
	}
	return "unknown";
}

enum idp_err fmt_key_type_parse(const char *s, size_t len, enum fmt_key_type *type,
                                struct idp_error *err)
{
	if (len == 4 && memcmp(s, "p256", 4) == 0) {
		*type = FMT_KEY_P256;
		return IDP_OK;
	}
	if (len == 7 && memcmp(s, "ed25519", 7) == 0) {
		*type = FMT_KEY_ED25519;
		return IDP_OK;
	}
	char q[IDP_QUOTE_MAX];
	return idp_error_set(err, IDP_E_UNSUPPORTED,
	                     "key type: \"%s\" is not supported (use p256 or ed25519)",
	                     idp_quote(s, len, q));
}

bool fmt_key_has_private(const struct fmt_key *key)
{
	return key->has_private;
}

bool fmt_key_equal(const struct fmt_key *a, const struct fmt_key *b)
{
	return a->type == b->type && EVP_PKEY_eq(a->pkey, b->pkey) == 1;
}

EVP_PKEY *fmt_key_evp(const struct fmt_key *key)
{
	return key->pkey;
}

enum idp_err fmt_key_from_evp(EVP_PKEY *pkey, struct fmt_key **out, struct idp_error *err)
{
	*out = NULL;
	if (pkey == NULL || EVP_PKEY_up_ref(pkey) != 1)
		return idp_error_set(err, IDP_E_ARG, "key: no key");
	/* A key with a private half answers a private-key parameter query. */
	bool priv;
	if (EVP_PKEY_is_a(pkey, "EC")) {
		BIGNUM *d = NULL;
		priv = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1;
		BN_clear_free(d);
	} else {
		size_t n = 0;
		priv = EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, NULL, 0, &n) ==
		       1;
	}
	ERR_clear_error();
	return wrap(pkey, priv, out, err);
}

enum idp_err fmt_key_from_provider(EVP_PKEY *pkey, OSSL_LIB_CTX *libctx, struct fmt_key **out,
                                   struct idp_error *err)
{
	*out = NULL;
	const OSSL_PROVIDER *prov = pkey != NULL ? EVP_PKEY_get0_provider(pkey) : NULL;
	const char *name = prov != NULL ? OSSL_PROVIDER_get0_name(prov) : NULL;
	char propq[sizeof((*out)->propq)];
	int n = name != NULL ? snprintf(propq, sizeof(propq), "?provider=%s", name) : -1;
	if (n < 0 || (size_t)n >= sizeof(propq))
		return idp_error_set(err, IDP_E_ARG, "key: not a provider's key");
	if (EVP_PKEY_up_ref(pkey) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "key: reference");
	enum idp_err rc = wrap(pkey, true, out, err);
	if (rc == IDP_OK) {
		(*out)->in_provider = true;
		(*out)->libctx = libctx;
		memcpy((*out)->propq, propq, sizeof(propq));
	}
	return rc;
}

bool fmt_key_in_provider(const struct fmt_key *key)
{
	return key->in_provider;
}

void fmt_key_free(struct fmt_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

void fmt_key_free_secret(char *buf, size_t len)
{
	if (buf == NULL)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}
