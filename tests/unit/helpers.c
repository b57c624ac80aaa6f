/*
 * helpers.c - see helpers.h.
 */
#include "tests/unit/helpers.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/obj_mac.h>
#include <openssl/x509v3.h>

#include "formats/b64.h"
#include "tests/unit/check_main.h"

const uint8_t idp_test_small_order[IDP_TEST_SMALL_ORDER_N][32] = {
        /* (0, 1): order 1 */
        {0x01},
        /* (0, -1): order 2 */
        {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
        /* (+-sqrt(-1), 0): order 4 */
        {0x00},
        {[31] = 0x80},
        /* order 8 */
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

#define FF15                                                                                       \
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
const uint8_t idp_test_noncanonical[IDP_TEST_NONCANONICAL_N][32] = {
        {0xed, FF15, FF15, 0x7f}, /* y = p (0 mod p) */
        {0xee, FF15, FF15, 0x7f}, /* y = p + 1 (1 mod p) */
        {0xff, FF15, FF15, 0x7f}, /* y = 2^255 - 1 */
        {0xed, FF15, FF15, 0xff}, /* y = p, sign bit set */
        {0x01, [31] = 0x80},      /* identity, x = 0 with the sign bit */
        {0xec, FF15, FF15, 0xff}, /* (0, -1), x = 0 with the sign bit */
};

void idp_test_ed25519_spki(const uint8_t pub[static 32],
                           uint8_t out[static IDP_TEST_ED25519_SPKI_LEN])
{
	/* RFC 8410: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING { key } } */
	static const uint8_t head[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
	                               0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
	memcpy(out, head, sizeof(head));
	memcpy(out + sizeof(head), pub, 32);
}

size_t idp_test_fresh_spki(enum fmt_key_type t, uint8_t out[static FMT_KEY_SPKI_MAX])
{
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_generate(t, &k, NULL), IDP_OK);
	size_t n = 0;
	ck_assert_int_eq(fmt_key_spki_der(k, out, &n, NULL), IDP_OK);
	fmt_key_free(k);
	return n;
}

void idp_test_ecdsa_twin(uint8_t sig[static 64])
{
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	ck_assert_ptr_nonnull(g);
	BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(BN_sub(s, EC_GROUP_get0_order(g), s), 1);
	ck_assert_int_eq(BN_bn2binpad(s, sig + 32, 32), 32);
	BN_free(s);
	EC_GROUP_free(g);
}

int idp_test_ossl_verify_raw(EVP_PKEY *pkey, const uint8_t *msg, size_t len,
                             const uint8_t sig[static 64])
{
	uint8_t der[80];
	const uint8_t *sp = sig;
	size_t sn = 64;
	bool ec = EVP_PKEY_is_a(pkey, "EC");
	if (ec) {
		ECDSA_SIG *es = ECDSA_SIG_new();
		ck_assert_ptr_nonnull(es);
		ck_assert_int_eq(
		        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)),
		        1);
		unsigned char *dp = der;
		int dn = i2d_ECDSA_SIG(es, &dp);
		ck_assert_int_gt(dn, 0);
		ECDSA_SIG_free(es);
		sp = der;
		sn = (size_t)dn;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, ec ? EVP_sha256() : NULL, NULL, pkey), 1);
	int ok = EVP_DigestVerify(ctx, sp, sn, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* The P-256 SubjectPublicKeyInfo header (RFC 5480) up to the point's x. */
static const uint8_t p256_prefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                      0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                      0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};

/* base64url member name of jwk, exactly 32 bytes, into out. */
static bool jwk_coord(const cJSON *jwk, const char *name, uint8_t out[static 32])
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(jwk, name);
	size_t n = 0;
	return cJSON_IsString(v) &&
	       fmt_b64_decode(FMT_B64_URL, v->valuestring, strlen(v->valuestring), out, 32, &n,
	                      NULL) == IDP_OK &&
	       n == 32;
}

static bool jwk_member_is(const cJSON *jwk, const char *name, const char *want)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(jwk, name);
	return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

struct fmt_key *idp_test_jwk_key(const cJSON *jwk)
{
	uint8_t der[FMT_KEY_SPKI_MAX], x[32], y[32];
	size_t len = 0;
	if (jwk_member_is(jwk, "kty", "EC") && jwk_member_is(jwk, "crv", "P-256") &&
	    jwk_coord(jwk, "x", x) && jwk_coord(jwk, "y", y)) {
		memcpy(der, p256_prefix, sizeof(p256_prefix));
		memcpy(der + sizeof(p256_prefix), x, 32);
		memcpy(der + sizeof(p256_prefix) + 32, y, 32);
		len = sizeof(p256_prefix) + 64;
	} else if (jwk_member_is(jwk, "kty", "OKP") && jwk_member_is(jwk, "crv", "Ed25519") &&
	           jwk_coord(jwk, "x", x)) {
		idp_test_ed25519_spki(x, der);
		len = IDP_TEST_ED25519_SPKI_LEN;
	} else {
		return NULL;
	}
	struct fmt_key *key = NULL;
	if (fmt_key_parse_spki_der(der, len, &key, NULL) != IDP_OK)
		return NULL;
	return key;
}

/* Adds the extension nid = value to cert, issued by issuer. */
static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	ck_assert_msg(ext != NULL, "extension %d = %s", nid, value);
	ck_assert_int_eq(X509_add_ext(cert, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

X509 *idp_test_cert(EVP_PKEY *key, const struct idp_test_cert_spec *spec)
{
	static long next_serial = 1000;
	X509 *c = X509_new();
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(X509_set_version(c, 2), 1);
	long serial = spec->serial != 0 ? spec->serial : next_serial++;
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(c), serial), 1);
	ck_assert_ptr_nonnull(
	        X509_gmtime_adj(X509_getm_notBefore(c), spec->valid_from != 0 ? spec->valid_from : -3600));
	ck_assert_ptr_nonnull(
	        X509_gmtime_adj(X509_getm_notAfter(c), spec->valid_for != 0 ? spec->valid_for : 86400));
	X509_NAME *name = X509_get_subject_name(c);
	for (size_t i = 0; i < spec->ncn; i++)
		ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
		                                            (const unsigned char *)spec->cns[i], -1,
		                                            -1, 0),
		                 1);
	if (spec->ncn == 0)
		ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
		                                            (const unsigned char *)"no cn", -1, -1,
		                                            0),
		                 1);
	X509 *issuer = spec->issuer != NULL ? spec->issuer : c;
	ck_assert_int_eq(X509_set_issuer_name(c, X509_get_subject_name(issuer)), 1);
	ck_assert_int_eq(X509_set_pubkey(c, key), 1);
	if (!spec->no_ext) {
		add_ext(c, issuer, NID_basic_constraints, spec->ca ? "critical,CA:TRUE" : "CA:FALSE");
		if (spec->key_usage != NULL)
			add_ext(c, issuer, NID_key_usage, spec->key_usage);
		if (spec->san != NULL)
			add_ext(c, issuer, NID_subject_alt_name, spec->san);
	}
	EVP_PKEY *signer = spec->issuer_key != NULL ? spec->issuer_key : key;
	ck_assert_int_gt(X509_sign(c, signer, EVP_sha256()), 0);
	return c;
}

X509 *idp_test_cert_cn(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                       bool ca)
{
	const struct idp_test_cert_spec spec = {
	        .cns = &cn, .ncn = 1, .issuer = issuer, .issuer_key = issuer_key, .ca = ca};
	return idp_test_cert(key, &spec);
}
