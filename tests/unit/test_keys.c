/*
 * test_keys.c - keys.h: both key types round-trip through every
 * encoding, signatures verify and forgeries do not, other key types are
 * refused (key files: test_keyfile.c). Includes RFC 8032 test 1 as a known answer.
 * Ed25519 keys anyone can sign for (the eight small-order points, shown
 * forgeable with plain OpenSSL) and non-canonical encodings are refused by
 * every parser; P-256 signatures are made low-s and raw high-s ones refused.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "formats/b64.h"
#include "formats/file.h"
#include "formats/keys.h"
#include "tests/unit/check_main.h"
#include "tests/unit/helpers.h"

static const enum fmt_key_type types[] = {FMT_KEY_P256, FMT_KEY_ED25519};

static void hex2bin(const char *hex, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;
		for (int j = 0; j < 2; j++) {
			char c = hex[2 * i + (size_t)j];
			v = v * 16 + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
		}
		out[i] = (uint8_t)v;
	}
}

START_TEST(test_key_round_trip_pem_and_der)
{
	enum fmt_key_type t = types[_i];
	struct fmt_key *k = NULL, *priv = NULL, *pub = NULL, *der = NULL;
	ck_assert_int_eq(fmt_key_generate(t, &k, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_type(k), t);
	ck_assert(fmt_key_has_private(k));

	char *pem = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_key_private_pem(k, &pem, &len, NULL), IDP_OK);
	ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
	ck_assert_int_eq(fmt_key_parse_private_pem((const uint8_t *)pem, len, &priv, NULL), IDP_OK);
	fmt_key_free_secret(pem, len);
	ck_assert(fmt_key_equal(k, priv));

	ck_assert_int_eq(fmt_key_public_pem(k, &pem, &len, NULL), IDP_OK);
	ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
	ck_assert_int_eq(fmt_key_parse_public_pem((const uint8_t *)pem, len, &pub, NULL), IDP_OK);
	free(pem);
	ck_assert(fmt_key_equal(k, pub));
	ck_assert(!fmt_key_has_private(pub));

	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t slen = 0;
	ck_assert_int_eq(fmt_key_spki_der(k, spki, &slen, NULL), IDP_OK);
	ck_assert_uint_eq(slen, t == FMT_KEY_P256 ? 91 : 44);
	ck_assert_int_eq(fmt_key_parse_spki_der(spki, slen, &der, NULL), IDP_OK);
	ck_assert(fmt_key_equal(k, der));
	/* keys.c writes and reads canonical SPKI itself: it must be OpenSSL's. */
	unsigned char *ossl = NULL;
	int olen = i2d_PUBKEY(fmt_key_evp(k), &ossl);
	ck_assert_int_eq(olen, (int)slen);
	ck_assert_mem_eq(ossl, spki, slen);
	OPENSSL_free(ossl);
	uint8_t again[FMT_KEY_SPKI_MAX];
	size_t alen = 0;
	ck_assert_int_eq(fmt_key_spki_der(der, again, &alen, NULL), IDP_OK);
	ck_assert_uint_eq(alen, slen);
	ck_assert_mem_eq(again, spki, slen);

	uint8_t fp[FMT_KEY_FINGERPRINT_LEN], want[32];
	ck_assert_int_eq(fmt_key_fingerprint(pub, fp, NULL), IDP_OK);
	SHA256(spki, slen, want);
	ck_assert_mem_eq(fp, want, 32);
	char hex[65];
	fmt_key_fingerprint_hex(fp, hex);
	ck_assert_uint_eq(strlen(hex), 64);

	fmt_key_free(k);
	fmt_key_free(priv);
	fmt_key_free(pub);
	fmt_key_free(der);
}
END_TEST

START_TEST(test_key_sign_verify_and_forgery)
{
	enum fmt_key_type t = types[_i / 2];
	enum fmt_sig_enc enc = _i % 2 ? FMT_SIG_RAW : FMT_SIG_DER;
	struct fmt_key *k = NULL, *other = NULL;
	ck_assert_int_eq(fmt_key_generate(t, &k, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_generate(t, &other, NULL), IDP_OK);
	const uint8_t msg[] = "idprov test message";
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t n = 0;
	ck_assert_int_eq(fmt_key_sign(k, enc, msg, sizeof(msg), sig, &n, NULL), IDP_OK);
	if (enc == FMT_SIG_RAW || t == FMT_KEY_ED25519)
		ck_assert_uint_eq(n, 64);
	ck_assert_int_eq(fmt_key_verify(k, enc, msg, sizeof(msg), sig, n, NULL), IDP_OK);

	struct idp_error err;
	/* Every single-bit flip of the signature fails. */
	for (size_t i = 0; i < n * 8; i++) {
		sig[i / 8] ^= (uint8_t)(1u << (i % 8));
		ck_assert_int_eq(fmt_key_verify(k, enc, msg, sizeof(msg), sig, n, &err),
		                 IDP_E_VERIFY);
		sig[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	/* Altered message, truncated signature, another key, empty signature. */
	uint8_t msg2[sizeof(msg)];
	memcpy(msg2, msg, sizeof(msg));
	msg2[0] ^= 1;
	ck_assert_int_eq(fmt_key_verify(k, enc, msg2, sizeof(msg2), sig, n, &err), IDP_E_VERIFY);
	ck_assert_int_eq(fmt_key_verify(k, enc, msg, sizeof(msg), sig, n - 1, &err), IDP_E_VERIFY);
	ck_assert_int_eq(fmt_key_verify(other, enc, msg, sizeof(msg), sig, n, &err), IDP_E_VERIFY);
	ck_assert_int_eq(fmt_key_verify(k, enc, msg, sizeof(msg), sig, 0, &err), IDP_E_VERIFY);
	/* A public-only key cannot sign. */
	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t slen;
	struct fmt_key *pub = NULL;
	ck_assert_int_eq(fmt_key_spki_der(k, spki, &slen, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_parse_spki_der(spki, slen, &pub, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_sign(pub, enc, msg, sizeof(msg), sig, &n, &err), IDP_E_ARG);
	fmt_key_free(pub);
	fmt_key_free(k);
	fmt_key_free(other);
}
END_TEST

START_TEST(test_key_ed25519_rfc8032_known_answer)
{
	uint8_t sk[32], pk[32], want[64];
	hex2bin("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", sk, 32);
	hex2bin("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", pk, 32);
	hex2bin("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
	        want, 64);
	EVP_PKEY *p = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
	ck_assert_ptr_nonnull(p);
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_from_evp(p, &k, NULL), IDP_OK);
	EVP_PKEY_free(p);
	ck_assert(fmt_key_has_private(k));
	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t slen;
	ck_assert_int_eq(fmt_key_spki_der(k, spki, &slen, NULL), IDP_OK);
	ck_assert_mem_eq(spki + 12, pk, 32);
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t n;
	ck_assert_int_eq(fmt_key_sign(k, FMT_SIG_RAW, (const uint8_t *)"", 0, sig, &n, NULL), IDP_OK);
	ck_assert_uint_eq(n, 64);
	ck_assert_mem_eq(sig, want, 64);
	fmt_key_free(k);
}
END_TEST

START_TEST(test_key_raw_and_der_interoperate)
{
	/* A raw r||s signature verifies only as raw (it is not DER), and an
	 * all-zero r||s is refused. Both S and n-S verify here (ECDSA is
	 * malleable); formats that need one spelling (tokens) enforce low S. */
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &k, NULL), IDP_OK);
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t n;
	ck_assert_int_eq(fmt_key_sign(k, FMT_SIG_RAW, (const uint8_t *)"m", 1, sig, &n, NULL), IDP_OK);
	uint8_t zero[64] = {0};
	ck_assert_int_eq(fmt_key_verify(k, FMT_SIG_RAW, (const uint8_t *)"m", 1, zero, 64, NULL),
	                 IDP_E_VERIFY);
	ck_assert_int_eq(fmt_key_verify(k, FMT_SIG_DER, (const uint8_t *)"m", 1, sig, n, NULL),
	                 IDP_E_VERIFY);
	ck_assert_int_eq(fmt_key_verify(k, FMT_SIG_RAW, (const uint8_t *)"m", 1, sig, n, NULL), IDP_OK);
	fmt_key_free(k);
}
END_TEST

/* PEM of a freshly generated key of an OpenSSL algorithm name. */
static char *other_pem(const char *alg, const char *param, int private_half)
{
	EVP_PKEY *p = param ? EVP_PKEY_Q_keygen(NULL, NULL, alg, param)
	                    : EVP_PKEY_Q_keygen(NULL, NULL, alg);
	if (p == NULL && strcmp(alg, "RSA") == 0)
		p = EVP_PKEY_Q_keygen(NULL, NULL, alg, (size_t)1024);
	ck_assert_ptr_nonnull(p);
	BIO *b = BIO_new(BIO_s_mem());
	if (private_half)
		ck_assert_int_eq(PEM_write_bio_PrivateKey(b, p, NULL, NULL, 0, NULL, NULL), 1);
	else
		ck_assert_int_eq(PEM_write_bio_PUBKEY(b, p), 1);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *s = strndup(data, (size_t)n);
	BIO_free(b);
	EVP_PKEY_free(p);
	return s;
}

START_TEST(test_key_refuses_other_types)
{
	static const struct {
		const char *alg, *param;
	} other[] = {{"EC", "P-384"}, {"X25519", NULL}, {"ED448", NULL}, {"EC", "secp256k1"}};
	struct idp_error err;
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		for (int priv = 0; priv < 2; priv++) {
			char *pem = other_pem(other[i].alg, other[i].param, priv);
			struct fmt_key *k = (struct fmt_key *)1;
			int rc = priv ? fmt_key_parse_private_pem((const uint8_t *)pem, strlen(pem), &k,
			                                          &err)
			              : fmt_key_parse_public_pem((const uint8_t *)pem, strlen(pem), &k,
			                                         &err);
			ck_assert_int_eq(rc, IDP_E_UNSUPPORTED);
			ck_assert_ptr_null(k);
			ck_assert_msg(strstr(err.msg, "not supported") != NULL, "%s", err.msg);
			free(pem);
		}
	}
	enum fmt_key_type t;
	ck_assert_int_eq(fmt_key_type_parse("rsa", 3, &t, &err), IDP_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(err.msg, "\"rsa\""));
	ck_assert_int_eq(fmt_key_type_parse("p256", 4, &t, NULL), IDP_OK);
	ck_assert_int_eq(t, FMT_KEY_P256);
}
END_TEST

START_TEST(test_key_refuses_bad_encodings)
{
	struct fmt_key *k = NULL;
	struct idp_error err;
	uint8_t spki[FMT_KEY_SPKI_MAX + 2];
	size_t slen;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &k, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_spki_der(k, spki, &slen, NULL), IDP_OK);
	struct fmt_key *bad = (struct fmt_key *)1;
	/* Trailing byte. */
	spki[slen] = 0;
	ck_assert_int_eq(fmt_key_parse_spki_der(spki, slen + 1, &bad, &err), IDP_E_FORMAT);
	ck_assert_ptr_null(bad);
	/* Every truncation. */
	for (size_t n = 0; n < slen; n++)
		ck_assert_int_ne(fmt_key_parse_spki_der(spki, n, &bad, NULL), IDP_OK);
	/* Point not on the curve. */
	spki[slen - 1] ^= 1;
	ck_assert_int_ne(fmt_key_parse_spki_der(spki, slen, &bad, NULL), IDP_OK);
	spki[slen - 1] ^= 1;
	/* Hybrid point form (0x06/0x07), same length: not canonical. */
	spki[26] = 0x06;
	ck_assert_int_ne(fmt_key_parse_spki_der(spki, slen, &bad, NULL), IDP_OK);
	ck_assert_ptr_null(bad);
	spki[26] = 0x04;
	/* Compressed point: a valid key, but not its canonical encoding. */
	EVP_PKEY *cp = EVP_PKEY_dup(fmt_key_evp(k));
	ck_assert_ptr_nonnull(cp);
	ck_assert_int_eq(EVP_PKEY_set_utf8_string_param(cp, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
	                                                "compressed"),
	                 1);
	unsigned char *cder = NULL;
	int clen = i2d_PUBKEY(cp, &cder);
	ck_assert_int_eq(clen, 59);
	ck_assert_int_eq(fmt_key_parse_spki_der(cder, (size_t)clen, &bad, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "public key: SPKI is not in canonical form");
	OPENSSL_free(cder);
	EVP_PKEY_free(cp);
	/* Garbage PEM, encrypted PEM. */
	ck_assert_int_eq(fmt_key_parse_public_pem((const uint8_t *)"hello", 5, &bad, &err),
	                 IDP_E_FORMAT);
	ck_assert_int_eq(fmt_key_parse_private_pem((const uint8_t *)"", 0, &bad, &err), IDP_E_FORMAT);
	BIO *b = BIO_new(BIO_s_mem());
	ck_assert_int_eq(PEM_write_bio_PKCS8PrivateKey(b, fmt_key_evp(k), EVP_aes_256_cbc(), "pw", 2,
	                                               NULL, NULL),
	                 1);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	ck_assert_int_eq(fmt_key_parse_private_pem((const uint8_t *)data, (size_t)n, &bad, &err),
	                 IDP_E_FORMAT);
	ck_assert_ptr_null(bad);
	BIO_free(b);
	fmt_key_free(k);
}
END_TEST

/* Text with no complete PEM block is refused before OpenSSL's decoders are
 * set up (formats/keys.c pem_block_in), and says so; a key after text and
 * after a damaged block is still found, as OpenSSL's readers find it. */
START_TEST(test_key_pem_without_block_refused_early)
{
	enum fmt_key_type t = types[_i];
	struct fmt_key *k = NULL, *got = NULL;
	struct idp_error err;
	ck_assert_int_eq(fmt_key_generate(t, &k, NULL), IDP_OK);
	char *priv = NULL, *pub = NULL;
	size_t plen = 0, ulen = 0;
	ck_assert_int_eq(fmt_key_private_pem(k, &priv, &plen, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_public_pem(k, &pub, &ulen, NULL), IDP_OK);
	for (int half = 0; half < 2; half++) {
		const char *pem = half ? pub : priv;
		size_t len = half ? ulen : plen;
		const char *label = half ? "PUBLIC KEY" : "PRIVATE KEY";
		enum idp_err (*parse)(const uint8_t *, size_t, struct fmt_key **,
		                      struct idp_error *) =
		        half ? fmt_key_parse_public_pem : fmt_key_parse_private_pem;
		/* Cut before its END line, or its END line damaged: no block. */
		const char *end = strstr(pem, "-----END");
		ck_assert_ptr_nonnull(end);
		ck_assert_int_eq(parse((const uint8_t *)pem, (size_t)(end - pem), &got, &err),
		                 IDP_E_FORMAT);
		ck_assert_ptr_null(got);
		ck_assert_ptr_nonnull(strstr(err.msg, ": no complete PEM block"));
		char text[1024];
		int n = snprintf(text, sizeof(text), "%.*s-----END %sX-----\n",
		                 (int)(end - pem), pem, label);
		ck_assert_int_gt(n, 0);
		ck_assert_int_eq(parse((const uint8_t *)text, (size_t)n, &got, &err), IDP_E_FORMAT);
		ck_assert_ptr_nonnull(strstr(err.msg, ": no complete PEM block"));
		/* The key after a comment and a block whose body is not base64. */
		n = snprintf(text, sizeof(text),
		             "comment\n-----BEGIN %s-----\n!!!!\n-----END %s-----\n%.*s", label,
		             label, (int)len, pem);
		ck_assert_int_gt(n, 0);
		ck_assert_int_eq(parse((const uint8_t *)text, (size_t)n, &got, &err), IDP_OK);
		ck_assert(fmt_key_equal(k, got));
		fmt_key_free(got);
		got = NULL;
	}
	fmt_key_free_secret(priv, plen);
	free(pub);
	fmt_key_free(k);
}
END_TEST

/* The key of PEM_read_bio_PUBKEY for text, or NULL. */
static EVP_PKEY *ossl_pubkey(const char *text, size_t len)
{
	BIO *b = BIO_new_mem_buf(text, (int)len);
	ck_assert_ptr_nonnull(b);
	EVP_PKEY *p = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	return p;
}

/* fmt_key_parse_public_pem reads the canonical form itself (no decoder
 * setup) and leaves every other text to OpenSSL: the key is OpenSSL's in
 * every case, the first of two, a compressed P-256 point (not canonical:
 * OpenSSL's path), a point off the curve (refused either way). */
START_TEST(test_key_public_pem_agrees_with_openssl)
{
	enum fmt_key_type t = types[_i];
	struct fmt_key *k = NULL, *k2 = NULL, *got = NULL;
	ck_assert_int_eq(fmt_key_generate(t, &k, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_generate(t, &k2, NULL), IDP_OK);
	char *pem = NULL, *pem2 = NULL;
	size_t len = 0, len2 = 0;
	ck_assert_int_eq(fmt_key_public_pem(k, &pem, &len, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_public_pem(k2, &pem2, &len2, NULL), IDP_OK);
	char text[2048];
	int n = snprintf(text, sizeof(text), "%s%s", pem, pem2);
	ck_assert_int_gt(n, 0);
	const char *texts[] = {pem, text};
	size_t lens[] = {len, (size_t)n};
	for (size_t i = 0; i < 2; i++) {
		EVP_PKEY *o = ossl_pubkey(texts[i], lens[i]);
		ck_assert_ptr_nonnull(o);
		ck_assert_int_eq(fmt_key_parse_public_pem((const uint8_t *)texts[i], lens[i], &got,
		                                          NULL),
		                 IDP_OK);
		ck_assert_int_eq(EVP_PKEY_eq(fmt_key_evp(got), o), 1);
		ck_assert(fmt_key_equal(got, k));
		ck_assert_int_eq(fmt_key_type(got), t);
		fmt_key_free(got);
		got = NULL;
		EVP_PKEY_free(o);
	}
	if (t == FMT_KEY_P256) {
		/* Compressed point: OpenSSL's reader takes it. */
		EVP_PKEY *cp = EVP_PKEY_dup(fmt_key_evp(k));
		ck_assert_ptr_nonnull(cp);
		ck_assert_int_eq(EVP_PKEY_set_utf8_string_param(
		                         cp, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"),
		                 1);
		BIO *b = BIO_new(BIO_s_mem());
		ck_assert_int_eq(PEM_write_bio_PUBKEY(b, cp), 1);
		char *data;
		long dn = BIO_get_mem_data(b, &data);
		EVP_PKEY *o = ossl_pubkey(data, (size_t)dn);
		ck_assert_ptr_nonnull(o);
		ck_assert_int_eq(fmt_key_parse_public_pem((const uint8_t *)data, (size_t)dn, &got, NULL),
		                 IDP_OK);
		ck_assert_int_eq(EVP_PKEY_eq(fmt_key_evp(got), o), 1);
		fmt_key_free(got);
		got = NULL;
		EVP_PKEY_free(o);
		BIO_free(b);
		EVP_PKEY_free(cp);
		/* Canonical form, point off the curve: refused by both. */
		uint8_t spki[FMT_KEY_SPKI_MAX];
		size_t sl = 0;
		ck_assert_int_eq(fmt_key_spki_der(k, spki, &sl, NULL), IDP_OK);
		spki[sl - 1] ^= 1;
		n = snprintf(text, sizeof(text), "-----BEGIN PUBLIC KEY-----\n");
		n += (int)fmt_b64_encode(FMT_B64_STD, spki, sl, text + n);
		n += snprintf(text + n, sizeof(text) - (size_t)n, "\n-----END PUBLIC KEY-----\n");
		ck_assert_ptr_null(ossl_pubkey(text, (size_t)n));
		ck_assert_int_eq(fmt_key_parse_public_pem((const uint8_t *)text, (size_t)n, &got, NULL),
		                 IDP_E_FORMAT);
		ck_assert_ptr_null(got);
	}
	free(pem);
	free(pem2);
	fmt_key_free(k);
	fmt_key_free(k2);
}
END_TEST

/* Montgomery u = (1 + y) / (1 - y) of an Edwards y (RFC 7748 section 4.1),
 * little-endian into u; false for y = 1 (the identity has no u). */
static bool edwards_to_u(const uint8_t enc[static 32], uint8_t u[static 32])
{
	uint8_t be[32];
	for (size_t i = 0; i < 32; i++)
		be[i] = enc[31 - i];
	be[0] &= 0x7f;
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *p = NULL, *y = BN_bin2bn(be, 32, NULL), *num = BN_new(), *den = BN_new();
	ck_assert_int_gt(
	        BN_hex2bn(&p, "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed"),
	        0);
	ck_assert_int_eq(BN_mod_add(num, BN_value_one(), y, p, ctx), 1);
	ck_assert_int_eq(BN_mod_sub(den, BN_value_one(), y, p, ctx), 1);
	bool ok = !BN_is_zero(den);
	if (ok) {
		ck_assert_ptr_nonnull(BN_mod_inverse(den, den, p, ctx));
		ck_assert_int_eq(BN_mod_mul(num, num, den, p, ctx), 1);
		ck_assert_int_eq(BN_bn2lebinpad(num, u, 32), 32);
	}
	BN_free(p);
	BN_free(y);
	BN_free(num);
	BN_free(den);
	BN_CTX_free(ctx);
	return ok;
}

/* 1 when X25519 with a fresh private key and peer u gives a shared secret;
 * OpenSSL refuses the all-zero result that every small-order u gives. */
static int x25519_derives(const uint8_t u[static 32])
{
	EVP_PKEY *mine = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, u, 32);
	ck_assert_ptr_nonnull(mine);
	ck_assert_ptr_nonnull(peer);
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(mine, NULL);
	uint8_t out[32];
	size_t n = sizeof(out);
	int ok = c != NULL && EVP_PKEY_derive_init(c) == 1 &&
	         EVP_PKEY_derive_set_peer(c, peer) == 1 && EVP_PKEY_derive(c, out, &n) == 1;
	EVP_PKEY_CTX_free(c);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(mine);
	return ok;
}

/* Every public-key entry point refuses the 32 key bytes pub with want. */
static void assert_ed25519_refused(const uint8_t pub[static 32], const char *want)
{
	uint8_t spki[IDP_TEST_ED25519_SPKI_LEN];
	idp_test_ed25519_spki(pub, spki);
	struct fmt_key *k = NULL;
	struct idp_error err = {0};
	ck_assert_int_eq(fmt_key_parse_spki_der(spki, sizeof(spki), &k, &err), IDP_E_FORMAT);
	ck_assert_ptr_null(k);
	ck_assert_str_eq(err.msg, want);
	enum fmt_key_type t = 0;
	ck_assert_int_eq(fmt_key_spki_check(spki, sizeof(spki), NULL, &t, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, want);
	char pem[160];
	int pn = snprintf(pem, sizeof(pem), "-----BEGIN PUBLIC KEY-----\n");
	pn += (int)fmt_b64_encode(FMT_B64_STD, spki, sizeof(spki), pem + pn);
	pn += snprintf(pem + pn, sizeof(pem) - (size_t)pn, "\n-----END PUBLIC KEY-----\n");
	ck_assert_int_eq(fmt_key_parse_public_pem((const uint8_t *)pem, (size_t)pn, &k, &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, want);
	/* OpenSSL itself takes the key; fmt_key_from_evp (certificates) does not. */
	EVP_PKEY *e = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(fmt_key_from_evp(e, &k, &err), IDP_E_FORMAT);
	ck_assert_ptr_null(k);
	ck_assert_str_eq(err.msg, want);
	EVP_PKEY_free(e);
}

START_TEST(test_key_ed25519_small_order_refused)
{
	const uint8_t *pub = idp_test_small_order[_i];
	/* The table is what it claims, checked without our code: the identity
	 * by its definition (0, 1); the others have Montgomery u of small order,
	 * on which X25519 yields zero. A real key's u derives fine. */
	uint8_t u[32];
	if (_i == 0) {
		ck_assert_uint_eq(pub[0], 1);
		ck_assert(!edwards_to_u(pub, u));
	} else {
		ck_assert(edwards_to_u(pub, u));
		ck_assert_int_eq(x25519_derives(u), 0);
	}
	struct fmt_key *real = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_ED25519, &real, NULL), IDP_OK);
	uint8_t rp[32];
	size_t rn = sizeof(rp);
	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(fmt_key_evp(real), rp, &rn), 1);
	ck_assert(edwards_to_u(rp, u));
	ck_assert_int_eq(x25519_derives(u), 1);
	fmt_key_free(real);

	/* The forgery: plain OpenSSL verifies a "signature" (R, S = 0) made
	 * without any private key, R one of the small-order points, for some
	 * message among the first 64 (for the identity, R = identity and
	 * every message). */
	EVP_PKEY *e = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	ck_assert_ptr_nonnull(e);
	bool forged = false;
	for (unsigned m = 0; m < 64 && !forged; m++) {
		uint8_t msg[32];
		int ml = snprintf((char *)msg, sizeof(msg), "forged message %u", m);
		for (size_t r = 0; r < IDP_TEST_SMALL_ORDER_N && !forged; r++) {
			uint8_t sig[64] = {0};
			memcpy(sig, idp_test_small_order[r], 32);
			forged = idp_test_ossl_verify_raw(e, msg, (size_t)ml, sig) == 1;
		}
		ck_assert(_i != 0 || forged);
	}
	ck_assert_msg(forged, "no forgery found for small-order key %d", _i);
	EVP_PKEY_free(e);

	assert_ed25519_refused(pub, "key: ed25519 public key is of small order");
}
END_TEST

START_TEST(test_key_ed25519_noncanonical_refused)
{
	assert_ed25519_refused(idp_test_noncanonical[_i],
	                       "key: ed25519 public key is not canonical");
	/* Near misses stay accepted: y = p - 2 and y = 2 are canonical. */
	if (_i == 0) {
		uint8_t ok[32];
		memcpy(ok, idp_test_noncanonical[0], 32);
		ok[0] = 0xeb; /* p - 2 */
		uint8_t spki[IDP_TEST_ED25519_SPKI_LEN];
		enum fmt_key_type t = 0;
		struct idp_error err = {0};
		idp_test_ed25519_spki(ok, spki);
		enum idp_err rc = fmt_key_spki_check(spki, sizeof(spki), NULL, &t, &err);
		ck_assert_msg(rc == IDP_OK, "%s", err.msg);
	}
}
END_TEST

START_TEST(test_key_p256_low_s_only)
{
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &k, NULL), IDP_OK);
	const uint8_t msg[] = "one signature, one spelling";
	struct idp_error err = {0};
	/* 64 signatures: about half would have a high s without normalising. */
	for (int i = 0; i < 64; i++) {
		uint8_t sig[FMT_KEY_SIG_MAX], der[FMT_KEY_SIG_MAX];
		size_t n = 0, dn = 0;
		ck_assert_int_eq(fmt_key_sign(k, FMT_SIG_RAW, msg, sizeof(msg), sig, &n, NULL),
		                 IDP_OK);
		ck_assert(!fmt_key_sig_high_s(k, sig, n));
		ck_assert_int_eq(fmt_key_sign(k, FMT_SIG_DER, msg, sizeof(msg), der, &dn, NULL),
		                 IDP_OK);
		const uint8_t *dp = der;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)dn);
		ck_assert_ptr_nonnull(es);
		uint8_t raw[64];
		ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32), 32);
		ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32), 32);
		ECDSA_SIG_free(es);
		ck_assert(!fmt_key_sig_high_s(k, raw, sizeof(raw)));
		ck_assert_int_eq(fmt_key_verify(k, FMT_SIG_DER, msg, sizeof(msg), der, dn, NULL),
		                 IDP_OK);
		/* The twin (r, n - s): valid for OpenSSL, refused raw by us. */
		idp_test_ecdsa_twin(sig);
		ck_assert(fmt_key_sig_high_s(k, sig, n));
		ck_assert_int_eq(idp_test_ossl_verify_raw(fmt_key_evp(k), msg, sizeof(msg), sig),
		                 1);
		ck_assert_int_eq(fmt_key_verify(k, FMT_SIG_RAW, msg, sizeof(msg), sig, n, &err),
		                 IDP_E_VERIFY);
		ck_assert_str_eq(err.msg, "signature: ecdsa s is above n/2 (not low-s)");
	}
	fmt_key_free(k);
}
END_TEST

/* keys.c converts ECDSA signatures between DER and r||s itself: its DER is
 * OpenSSL's (i2d_ECDSA_SIG of the same values) and its r||s verifies, also
 * for the rare values whose DER is shorter (a leading zero byte of r or s)
 * or padded (r with its top bit set), found by signing until each shows. */
START_TEST(test_key_p256_der_raw_edges)
{
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &k, NULL), IDP_OK);
	bool short_r = false, short_s = false, padded_r = false;
	for (int i = 0; i < 8192 && !(short_r && short_s && padded_r); i++) {
		uint8_t msg[8], der[FMT_KEY_SIG_MAX], raw[FMT_KEY_SIG_MAX];
		memcpy(msg, &i, sizeof(i));
		memset(msg + sizeof(i), 0, sizeof(msg) - sizeof(i));
		size_t dn = 0, rn = 0;
		ck_assert_int_eq(fmt_key_sign(k, FMT_SIG_DER, msg, sizeof(msg), der, &dn, NULL),
		                 IDP_OK);
		const uint8_t *dp = der;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)dn);
		ck_assert_ptr_nonnull(es);
		ck_assert_ptr_eq(dp, der + dn);
		unsigned char *again = NULL;
		ck_assert_int_eq(i2d_ECDSA_SIG(es, &again), (int)dn);
		ck_assert_mem_eq(again, der, dn);
		OPENSSL_free(again);
		uint8_t vals[64];
		ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_r(es), vals, 32), 32);
		ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_s(es), vals + 32, 32), 32);
		ECDSA_SIG_free(es);
		short_r |= vals[0] == 0;
		short_s |= vals[32] == 0;
		padded_r |= (vals[0] & 0x80) != 0;
		/* The same values as r||s (what fmt_key_verify turns back into DER). */
		ck_assert_int_eq(fmt_key_verify(k, FMT_SIG_RAW, msg, sizeof(msg), vals, 64, NULL),
		                 IDP_OK);
		ck_assert_int_eq(fmt_key_sign(k, FMT_SIG_RAW, msg, sizeof(msg), raw, &rn, NULL),
		                 IDP_OK);
		ck_assert_uint_eq(rn, 64);
		ck_assert_int_eq(idp_test_ossl_verify_raw(fmt_key_evp(k), msg, sizeof(msg), raw), 1);
	}
	ck_assert_msg(short_r && short_s && padded_r, "short r %d, short s %d, padded r %d",
	              short_r, short_s, padded_r);
	fmt_key_free(k);
}
END_TEST

/* OpenSSL's own generic decoder (no project code) takes spki whole. */
static bool ossl_takes_spki(const uint8_t *spki, size_t n)
{
	const unsigned char *p = spki;
	EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)n);
	bool ok = k != NULL && p == spki + n;
	EVP_PKEY_free(k);
	ERR_clear_error();
	return ok;
}

/* The canonical P-256 SPKI of the affine point (x, y), each written as 32
 * bytes (values up to 2^256 - 1, so coordinates >= p can be spelled). */
static void p256_spki_of(const BIGNUM *x, const BIGNUM *y, uint8_t out[static FMT_KEY_SPKI_MAX])
{
	uint8_t any[FMT_KEY_SPKI_MAX];
	ck_assert_uint_eq(idp_test_fresh_spki(FMT_KEY_P256, any), 91);
	memcpy(out, any, 26); /* the fixed header, then 0x04 || X || Y */
	out[26] = 0x04;
	ck_assert_int_eq(BN_bn2binpad(x, out + 27, 32), 32);
	ck_assert_int_eq(BN_bn2binpad(y, out + 59, 32), 32);
}

/* Every P-256 import path (the parser, which copies one template key, and
 * the key check with and without a group) takes exactly the points OpenSSL's
 * generic decoder takes; and every imported key is its own: it re-encodes to
 * its own bytes and verifies its own signatures only, also after refusals
 * and after importing the template's own point. */
START_TEST(test_key_p256_import_agrees_with_openssl)
{
	EC_GROUP *g = fmt_key_p256_group();
	BN_CTX *bn = BN_CTX_new();
	BIGNUM *p = BN_new(), *x = BN_new(), *y = BN_new(), *t = BN_new();
	ck_assert(g != NULL && bn != NULL && p != NULL && x != NULL && y != NULL && t != NULL);
	ck_assert_int_eq(EC_GROUP_get_curve(g, p, NULL, NULL, bn), 1);
	struct fmt_key *a = NULL, *b = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &a, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &b, NULL), IDP_OK);
	const uint8_t msg[] = "one key, one import";
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t slen = 0;
	ck_assert_int_eq(fmt_key_sign(a, FMT_SIG_RAW, msg, sizeof(msg), sig, &slen, NULL), IDP_OK);

	enum { N = 8 };
	uint8_t c[N][FMT_KEY_SPKI_MAX];
	size_t n = 0;
	ck_assert_int_eq(fmt_key_spki_der(a, c[0], &n, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_spki_der(b, c[1], &n, NULL), IDP_OK);
	/* The base point G (the template's own public key). */
	ck_assert_int_eq(EC_POINT_get_affine_coordinates(g, EC_GROUP_get0_generator(g), x, y, bn),
	                 1);
	p256_spki_of(x, y, c[2]);
	/* -A = (x, p - y): on the curve, another key. */
	ck_assert_ptr_nonnull(BN_bin2bn(c[0] + 27, 32, x));
	ck_assert_ptr_nonnull(BN_bin2bn(c[0] + 59, 32, y));
	ck_assert_int_eq(BN_sub(t, p, y), 1);
	p256_spki_of(x, t, c[3]);
	/* A with y + 1: off the curve. */
	ck_assert_int_eq(BN_add_word(y, 1), 1);
	p256_spki_of(x, y, c[4]);
	/* (0, 0): off the curve (b != 0). */
	BN_zero(x);
	p256_spki_of(x, x, c[5]);
	/* A point P with a small x, and -P, each written with x + p: the same
	 * points modulo p, and OpenSSL refuses coordinates >= p. (A y + p
	 * fits in 32 bytes only for a y below 2^224: no such point is at hand.) */
	EC_POINT *pt = EC_POINT_new(g);
	ck_assert_ptr_nonnull(pt);
	int found = 0;
	for (BN_ULONG w = 1; w < 64 && !found; w++)
		found = BN_set_word(x, w) == 1 &&
		        EC_POINT_set_compressed_coordinates(g, pt, x, 0, bn) == 1;
	ERR_clear_error();
	ck_assert(found);
	ck_assert_int_eq(EC_POINT_get_affine_coordinates(g, pt, x, y, bn), 1);
	ck_assert_int_eq(BN_add(t, x, p), 1);
	p256_spki_of(t, y, c[6]);
	ck_assert_int_eq(BN_sub(y, p, y), 1);
	p256_spki_of(t, y, c[7]);
	EC_POINT_free(pt);
	const bool expect[N] = {true, true, true, true, false, false, false, false};

	struct fmt_key *k[N] = {0};
	for (size_t i = 0; i < N; i++) {
		bool want = ossl_takes_spki(c[i], 91);
		ck_assert_msg(want == expect[i], "case %zu: OpenSSL says %d", i, want);
		enum fmt_key_type type;
		struct idp_error err;
		bool parsed = fmt_key_parse_spki_der(c[i], 91, &k[i], &err) == IDP_OK;
		bool fast = fmt_key_spki_check(c[i], 91, NULL, &type, NULL) == IDP_OK;
		bool grp = fmt_key_spki_check(c[i], 91, g, &type, NULL) == IDP_OK;
		ck_assert_msg(parsed == want && fast == want && grp == want,
		              "case %zu: openssl %d parse %d check %d check+group %d", i, want, parsed,
		              fast, grp);
		if (!parsed)
			continue;
		uint8_t again[FMT_KEY_SPKI_MAX];
		size_t alen = 0;
		ck_assert_int_eq(fmt_key_spki_der(k[i], again, &alen, NULL), IDP_OK);
		ck_assert_uint_eq(alen, 91);
		ck_assert_mem_eq(again, c[i], 91);
		unsigned char *ossl = NULL;
		ck_assert_int_eq(i2d_PUBKEY(fmt_key_evp(k[i]), &ossl), 91);
		ck_assert_mem_eq(ossl, c[i], 91);
		OPENSSL_free(ossl);
	}
	/* Only A's own import verifies A's signature. */
	ck_assert(fmt_key_equal(k[0], a) && !fmt_key_equal(k[1], a) && !fmt_key_equal(k[3], a));
	ck_assert_int_eq(fmt_key_verify(k[0], FMT_SIG_RAW, msg, sizeof(msg), sig, slen, NULL), IDP_OK);
	for (size_t i = 1; i < 4; i++)
		ck_assert_int_eq(fmt_key_verify(k[i], FMT_SIG_RAW, msg, sizeof(msg), sig, slen, NULL),
		                 IDP_E_VERIFY);
	/* After the refusals, a new import of A is still A. */
	struct fmt_key *again = NULL;
	ck_assert_int_eq(fmt_key_parse_spki_der(c[0], 91, &again, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_verify(again, FMT_SIG_RAW, msg, sizeof(msg), sig, slen, NULL),
	                 IDP_OK);
	fmt_key_free(again);
	for (size_t i = 0; i < N; i++)
		fmt_key_free(k[i]);
	fmt_key_free(a);
	fmt_key_free(b);
	BN_free(p);
	BN_free(x);
	BN_free(y);
	BN_free(t);
	BN_CTX_free(bn);
	EC_GROUP_free(g);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, test_key_round_trip_pem_and_der, 0, 2);
	tcase_add_loop_test(tc, test_key_sign_verify_and_forgery, 0, 4);
	tcase_add_test(tc, test_key_ed25519_rfc8032_known_answer);
	tcase_add_test(tc, test_key_raw_and_der_interoperate);
	tcase_add_test(tc, test_key_refuses_other_types);
	tcase_add_test(tc, test_key_refuses_bad_encodings);
	tcase_add_loop_test(tc, test_key_pem_without_block_refused_early, 0, 2);
	tcase_add_loop_test(tc, test_key_public_pem_agrees_with_openssl, 0, 2);
	tcase_add_loop_test(tc, test_key_ed25519_small_order_refused, 0, IDP_TEST_SMALL_ORDER_N);
	tcase_add_loop_test(tc, test_key_ed25519_noncanonical_refused, 0, IDP_TEST_NONCANONICAL_N);
	tcase_add_test(tc, test_key_p256_low_s_only);
	tcase_add_test(tc, test_key_p256_import_agrees_with_openssl);
	tcase_add_test(tc, test_key_p256_der_raw_edges);
	suite_add_tcase(s, tc);
	return s;
}
