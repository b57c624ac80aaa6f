/*
 * test_token.c - token.h: ES256 and EdDSA tokens round-trip and interoperate
 * with plain OpenSSL; every refusal names its check (alg none, HS256 keyed
 * with the public key, alg/key confusion, forged, moved and high-S signatures,
 * header members, claims, issuer, audience, kind, subject, times, lifetime,
 * key binding, truncation, flipped bytes, non-canonical base64url, size);
 * RFC 8037 / RFC 9449 thumbprints as known answers; the JWK Set of a key set
 * gives back the same keys (rebuilt from x/y without token.c) that verify
 * its tokens, and a bad kid or too many keys are refused.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "formats/b64.h"
#include "formats/json.h"
#include "formats/token.h"
#include "tests/unit/check_main.h"
#include "tests/unit/helpers.h"

#define NOW 1800000000LL

static struct fmt_key *es_key, *ed_key, *dev_key;
static struct fmt_token_key keyset[2];
static char dev_jkt[FMT_TOKEN_JKT_LEN + 1];

static void setup(void)
{
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &es_key, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_ED25519, &ed_key, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_ED25519, &dev_key, NULL), IDP_OK);
	ck_assert_int_eq(fmt_token_jkt(dev_key, dev_jkt, NULL), IDP_OK);
	keyset[0] = (struct fmt_token_key){"es-1", es_key};
	keyset[1] = (struct fmt_token_key){"ed-1", ed_key};
}

static void teardown(void)
{
	fmt_key_free(es_key);
	fmt_key_free(ed_key);
	fmt_key_free(dev_key);
}

static struct fmt_token_claims base_claims(enum fmt_token_kind kind)
{
	struct fmt_token_claims c;
	memset(&c, 0, sizeof(c));
	snprintf(c.iss, sizeof(c.iss), "%s", "https://idprovd.local:8443");
	snprintf(c.aud, sizeof(c.aud), "%s", "idprov");
	snprintf(c.sub, sizeof(c.sub), "%s", "dev-0001");
	memcpy(c.jkt, dev_jkt, sizeof(c.jkt));
	c.kind = kind;
	return c;
}

static struct fmt_token_policy base_policy(void)
{
	return (struct fmt_token_policy){.iss = "https://idprovd.local:8443",
	                                 .aud = "idprov",
	                                 .sub = NULL,
	                                 .jkt = NULL,
	                                 .kinds = FMT_TOKEN_DEVICE,
	                                 .now = NOW};
}

/* A signed device token by key i of the key set. */
static char *make_token(int i, struct fmt_token_claims *c)
{
	*c = base_claims(FMT_TOKEN_DEVICE);
	char *t = NULL;
	size_t len = 0;
	ck_assert_int_eq(
	        fmt_token_sign(keyset[i].key, keyset[i].kid, c, NOW, 0, NULL, &t, &len, NULL),
	        IDP_OK);
	ck_assert_uint_eq(len, strlen(t));
	return t;
}

/* Verify s with the key set and p; returns the check that failed (OK on
 * success) and asserts the error code belongs to it. */
static enum fmt_token_check verify_p(const char *s, size_t len, const struct fmt_token_policy *p,
                                     struct idp_error *err)
{
	static const enum idp_err code[] = {
	        [FMT_TOKEN_CHECK_OK] = IDP_OK,
	        [FMT_TOKEN_CHECK_ARGS] = IDP_E_ARG,
	        [FMT_TOKEN_CHECK_SIZE] = IDP_E_LIMIT,
	        [FMT_TOKEN_CHECK_STRUCTURE] = IDP_E_FORMAT,
	        [FMT_TOKEN_CHECK_HEADER] = IDP_E_FORMAT,
	        [FMT_TOKEN_CHECK_ALG] = IDP_E_UNSUPPORTED,
	        [FMT_TOKEN_CHECK_KID] = IDP_E_NOTFOUND,
	        [FMT_TOKEN_CHECK_SIGNATURE] = IDP_E_VERIFY,
	        [FMT_TOKEN_CHECK_CLAIMS] = IDP_E_FORMAT,
	        [FMT_TOKEN_CHECK_ISS] = IDP_E_DENIED,
	        [FMT_TOKEN_CHECK_AUD] = IDP_E_DENIED,
	        [FMT_TOKEN_CHECK_KIND] = IDP_E_DENIED,
	        [FMT_TOKEN_CHECK_SUB] = IDP_E_DENIED,
	        [FMT_TOKEN_CHECK_NOT_YET] = IDP_E_EXPIRED,
	        [FMT_TOKEN_CHECK_EXPIRED] = IDP_E_EXPIRED,
	        [FMT_TOKEN_CHECK_LIFETIME] = IDP_E_DENIED,
	        [FMT_TOKEN_CHECK_CNF] = IDP_E_DENIED,
	};
	struct fmt_token_claims out;
	memset(&out, 0x5a, sizeof(out));
	enum fmt_token_check chk = (enum fmt_token_check)99;
	enum idp_err rc = fmt_token_verify((const uint8_t *)s, len, keyset, 2, p, &out, &chk, err);
	ck_assert_int_ne(chk, 99);
	/* Size, part and claim limits answer IDP_E_LIMIT within their check. */
	bool limit_ok = rc == IDP_E_LIMIT &&
	                (chk == FMT_TOKEN_CHECK_STRUCTURE || chk == FMT_TOKEN_CHECK_CLAIMS ||
	                 chk == FMT_TOKEN_CHECK_HEADER);
	bool empty_ok = rc == IDP_E_FORMAT && chk == FMT_TOKEN_CHECK_SIZE && len == 0;
	if (!limit_ok && !empty_ok)
		ck_assert_msg(rc == code[chk], "check %s with code %s (%s)",
		              fmt_token_check_name(chk), idp_err_name(rc), err ? err->msg : "");
	if (rc != IDP_OK) {
		struct fmt_token_claims zero;
		memset(&zero, 0, sizeof(zero));
		ck_assert_mem_eq(&out, &zero, sizeof(out));
	}
	return chk;
}

static enum fmt_token_check verify(const char *s, struct idp_error *err)
{
	struct fmt_token_policy p = base_policy();
	return verify_p(s, strlen(s), &p, err);
}

#define ASSERT_CHECK(tok, want, errp)                                                              \
	do {                                                                                       \
		enum fmt_token_check got_ = verify((tok), (errp));                                 \
		ck_assert_msg(got_ == (want), "got check %s, want %s (%s)",                        \
		              fmt_token_check_name(got_), fmt_token_check_name(want),              \
		              (errp)->msg);                                                        \
	} while (0)

/* base64url of s[0..n) in a new string. */
static char *b64u(const void *s, size_t n)
{
	char *o = malloc(fmt_b64_encoded_len(FMT_B64_URL, n) + 1);
	ck_assert_ptr_nonnull(o);
	fmt_b64_encode(FMT_B64_URL, s, n, o);
	return o;
}

/* header.payload.sig from the JSON texts and raw signature bytes. */
static char *assemble(const char *header, const char *payload, const uint8_t *sig, size_t sn)
{
	char *h = b64u(header, strlen(header)), *p = b64u(payload, strlen(payload));
	char *s = b64u(sig, sn);
	size_t n = strlen(h) + strlen(p) + strlen(s) + 3;
	char *t = malloc(n);
	ck_assert_ptr_nonnull(t);
	snprintf(t, n, "%s.%s.%s", h, p, s);
	free(h);
	free(p);
	free(s);
	return t;
}

/* A token of arbitrary header and payload text, signed correctly by k (ECDSA
 * retried until low-S, so that only the forged part can be refused). */
static char *forge(const struct fmt_key *k, const char *header, const char *payload)
{
	char *t = assemble(header, payload, (const uint8_t *)"", 0);
	size_t in = strlen(t) - 1; /* drop the trailing '.' */
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t sn = 0;
	for (int tries = 0; tries < 64; tries++) {
		ck_assert_int_eq(
		        fmt_key_sign(k, FMT_SIG_RAW, (const uint8_t *)t, in, sig, &sn, NULL),
		        IDP_OK);
		if (fmt_key_type(k) == FMT_KEY_ED25519 || sig[32] < 0x7f)
			break;
	}
	free(t);
	return assemble(header, payload, sig, sn);
}

static cJSON *claims_obj(const struct fmt_token_claims *c)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "iss", c->iss);
	cJSON_AddStringToObject(o, "aud", c->aud);
	cJSON_AddStringToObject(o, "sub", c->sub);
	cJSON_AddStringToObject(o, "kind", fmt_token_kind_name(c->kind));
	cJSON_AddNumberToObject(o, "iat", (double)c->iat);
	cJSON_AddNumberToObject(o, "nbf", (double)c->nbf);
	cJSON_AddNumberToObject(o, "exp", (double)c->exp);
	cJSON_AddStringToObject(o, "jti", "AAAAAAAAAAAAAAAAAAAAAA");
	cJSON *cnf = cJSON_AddObjectToObject(o, "cnf");
	cJSON_AddStringToObject(cnf, "jkt", c->jkt);
	return o;
}

/* Canonical claims of a device token issued at NOW for 30 days. */
static cJSON *std_claims(void)
{
	struct fmt_token_claims c = base_claims(FMT_TOKEN_DEVICE);
	c.iat = c.nbf = NOW;
	c.exp = NOW + FMT_TOKEN_DEVICE_LIFETIME_DEFAULT;
	return claims_obj(&c);
}

/* The standard claims as JSON text; caller frees. */
static char *std_payload(void)
{
	cJSON *o = std_claims();
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* A header {"alg":alg,"typ":"JWT","kid":kid} into h. */
static void header_of(char h[static 96], const char *alg, const char *kid)
{
	snprintf(h, 96, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
}

/* forge() with the standard header of key i and the JSON text of o. */
static char *forge_obj(int i, cJSON *o)
{
	char *payload = cJSON_PrintUnformatted(o);
	char header[96];
	header_of(header, i == 0 ? "ES256" : "EdDSA", keyset[i].kid);
	char *t = forge(keyset[i].key, header, payload);
	free(payload);
	cJSON_Delete(o);
	return t;
}

/* Base64url-decode part idx (0..2) of token t into out. */
static size_t part(const char *t, int idx, uint8_t *out, size_t max)
{
	const char *s = t;
	for (int i = 0; i < idx; i++)
		s = strchr(s, '.') + 1;
	const char *e = strchr(s, '.');
	size_t n = e ? (size_t)(e - s) : strlen(s), got = 0;
	ck_assert_int_eq(fmt_b64_decode(FMT_B64_URL, s, n, out, max, &got, NULL), IDP_OK);
	return got;
}

START_TEST(test_token_round_trip)
{
	int i = _i;
	struct fmt_token_claims c, out, c2;
	char *t = make_token(i, &c);
	ck_assert_int_eq(c.iat, NOW);
	ck_assert_int_eq(c.nbf, NOW);
	ck_assert_int_eq(c.exp, NOW + FMT_TOKEN_DEVICE_LIFETIME_DEFAULT);
	ck_assert_uint_eq(strlen(c.jti), FMT_TOKEN_JTI_LEN);

	struct fmt_token_policy p = base_policy();
	p.sub = "dev-0001";
	p.jkt = dev_jkt;
	enum fmt_token_check chk = FMT_TOKEN_CHECK_SIZE;
	struct idp_error err;
	ck_assert_int_eq(
	        fmt_token_verify((const uint8_t *)t, strlen(t), keyset, 2, &p, &out, &chk, &err),
	        IDP_OK);
	ck_assert_int_eq(chk, FMT_TOKEN_CHECK_OK);
	ck_assert_mem_eq(&out, &c, sizeof(c));

	/* The header is exactly the documented one. */
	uint8_t h[256];
	size_t hn = part(t, 0, h, sizeof(h));
	const char *want = i == 0 ? "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"es-1\"}"
	                          : "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\"}";
	ck_assert_uint_eq(hn, strlen(want));
	ck_assert_mem_eq(h, want, hn);

	/* Plain OpenSSL verifies the JWS: the signing input is header.payload, the
	 * signature R||S (ES256, RFC 7518 3.4) or the Ed25519 signature. */
	uint8_t sig[128];
	size_t sn = part(t, 2, sig, sizeof(sig));
	ck_assert_uint_eq(sn, 64);
	size_t signed_len = (size_t)(strrchr(t, '.') - t);
	ck_assert_int_eq(idp_test_ossl_verify_raw(fmt_key_evp(keyset[i].key), (const uint8_t *)t,
	                                          signed_len, sig),
	                 1);

	/* The payload is plain JSON with the claims. */
	uint8_t pl[1024];
	size_t pn = part(t, 1, pl, sizeof(pl));
	cJSON *o = cJSON_ParseWithLength((const char *)pl, pn);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "sub")->valuestring, "dev-0001");
	ck_assert_str_eq(cJSON_GetObjectItem(o, "kind")->valuestring, "device");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "cnf"), "jkt")->valuestring,
	                 dev_jkt);
	cJSON_Delete(o);

	/* A second token has another jti; a provisioning token verifies where
	 * accepted, with its short default lifetime. */
	char *t2 = make_token(i, &c2);
	ck_assert_str_ne(c.jti, c2.jti);
	fmt_token_free(t2);
	/* Signing the same claims struct again draws a new jti too. */
	char old_jti[FMT_TOKEN_JTI_LEN + 1];
	memcpy(old_jti, c2.jti, sizeof(old_jti));
	size_t len;
	ck_assert_int_eq(
	        fmt_token_sign(keyset[i].key, keyset[i].kid, &c2, NOW, 0, NULL, &t2, &len, NULL),
	        IDP_OK);
	ck_assert_str_ne(old_jti, c2.jti);
	fmt_token_free(t2);
	c2 = base_claims(FMT_TOKEN_PROVISION);
	ck_assert_int_eq(
	        fmt_token_sign(keyset[i].key, keyset[i].kid, &c2, NOW, 0, NULL, &t2, &len, NULL),
	        IDP_OK);
	ck_assert_int_eq(c2.exp - c2.iat, FMT_TOKEN_PROVISION_LIFETIME_DEFAULT);
	p.kinds = FMT_TOKEN_PROVISION | FMT_TOKEN_DEVICE;
	ck_assert_int_eq(verify_p(t2, len, &p, NULL), FMT_TOKEN_CHECK_OK);
	fmt_token_free(t2);
	fmt_token_free(t);
}
END_TEST

START_TEST(test_token_thumbprint_known_answers)
{
	/* RFC 8037 A.3: the Ed25519 key of RFC 8032 test 1. */
	uint8_t pk[32];
	size_t n = 0;
	ck_assert_int_eq(fmt_b64_decode(FMT_B64_URL, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
	                                43, pk, sizeof(pk), &n, NULL),
	                 IDP_OK);
	EVP_PKEY *e = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_from_evp(e, &k, NULL), IDP_OK);
	EVP_PKEY_free(e);
	char jkt[FMT_TOKEN_JKT_LEN + 1];
	ck_assert_int_eq(fmt_token_jkt(k, jkt, NULL), IDP_OK);
	ck_assert_str_eq(jkt, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
	fmt_key_free(k);

	/* RFC 9449 section 6.1: the P-256 key of its DPoP examples (x, y), put
	 * into an SPKI. */
	static const uint8_t prefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
	                                 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
	                                 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};
	uint8_t spki[91];
	memcpy(spki, prefix, sizeof(prefix));
	ck_assert_int_eq(fmt_b64_decode(FMT_B64_URL, "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
	                                43, spki + 27, 32, &n, NULL),
	                 IDP_OK);
	ck_assert_int_eq(fmt_b64_decode(FMT_B64_URL, "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
	                                43, spki + 59, 32, &n, NULL),
	                 IDP_OK);
	ck_assert_int_eq(fmt_key_parse_spki_der(spki, sizeof(spki), &k, NULL), IDP_OK);
	ck_assert_int_eq(fmt_token_jkt(k, jkt, NULL), IDP_OK);
	ck_assert_str_eq(jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
	fmt_key_free(k);

	/* A private key has the thumbprint of its public half. */
	char a[FMT_TOKEN_JKT_LEN + 1], b[FMT_TOKEN_JKT_LEN + 1];
	uint8_t der[FMT_KEY_SPKI_MAX];
	ck_assert_int_eq(fmt_key_spki_der(es_key, der, &n, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_parse_spki_der(der, n, &k, NULL), IDP_OK);
	ck_assert_int_eq(fmt_token_jkt(es_key, a, NULL), IDP_OK);
	ck_assert_int_eq(fmt_token_jkt(k, b, NULL), IDP_OK);
	ck_assert_str_eq(a, b);
	ck_assert_int_eq(fmt_token_jkt(ed_key, b, NULL), IDP_OK);
	ck_assert_str_ne(a, b);
	fmt_key_free(k);
}
END_TEST

/* The P-256 thumbprint reads the point from the key's SPKI bytes: for
 * fresh keys, and for keys imported from them, it is the RFC 7638
 * thumbprint of the coordinates OpenSSL reports. */
START_TEST(test_token_thumbprint_matches_openssl_coordinates)
{
	for (int i = 0; i < 16; i++) {
		struct fmt_key *k = NULL, *pub = NULL;
		ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &k, NULL), IDP_OK);
		uint8_t der[FMT_KEY_SPKI_MAX];
		size_t n = 0;
		ck_assert_int_eq(fmt_key_spki_der(k, der, &n, NULL), IDP_OK);
		ck_assert_int_eq(fmt_key_parse_spki_der(der, n, &pub, NULL), IDP_OK);
		BIGNUM *bx = NULL, *by = NULL;
		uint8_t x[32], y[32];
		ck_assert_int_eq(EVP_PKEY_get_bn_param(fmt_key_evp(k), "qx", &bx), 1);
		ck_assert_int_eq(EVP_PKEY_get_bn_param(fmt_key_evp(k), "qy", &by), 1);
		ck_assert_int_eq(BN_bn2binpad(bx, x, 32), 32);
		ck_assert_int_eq(BN_bn2binpad(by, y, 32), 32);
		BN_free(bx);
		BN_free(by);
		char ex[44], ey[44], jwk[160], want[FMT_TOKEN_JKT_LEN + 1];
		fmt_b64_encode(FMT_B64_URL, x, 32, ex);
		fmt_b64_encode(FMT_B64_URL, y, 32, ey);
		int w = snprintf(jwk, sizeof(jwk),
		                 "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", ex,
		                 ey);
		ck_assert(w > 0 && (size_t)w < sizeof(jwk));
		uint8_t d[32];
		ck_assert_ptr_nonnull(SHA256((const uint8_t *)jwk, (size_t)w, d));
		fmt_b64_encode(FMT_B64_URL, d, sizeof(d), want);
		char a[FMT_TOKEN_JKT_LEN + 1], b[FMT_TOKEN_JKT_LEN + 1];
		ck_assert_int_eq(fmt_token_jkt(k, a, NULL), IDP_OK);
		ck_assert_int_eq(fmt_token_jkt(pub, b, NULL), IDP_OK);
		ck_assert_str_eq(a, want);
		ck_assert_str_eq(b, want);
		fmt_key_free(k);
		fmt_key_free(pub);
	}
}
END_TEST

START_TEST(test_token_eddsa_known_answer)
{
	/* Ed25519 is deterministic: with the RFC 8032 test 1 key, a fixed jti
	 * and time, the token is fixed. Any change of the format shows here. */
	uint8_t sk[32];
	size_t n;
	ck_assert_int_eq(fmt_b64_decode(FMT_B64_URL, "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
	                                43, sk, sizeof(sk), &n, NULL),
	                 IDP_OK);
	EVP_PKEY *e = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_from_evp(e, &k, NULL), IDP_OK);
	EVP_PKEY_free(e);
	struct fmt_token_claims c = base_claims(FMT_TOKEN_PROVISION);
	ck_assert_int_eq(fmt_token_jkt(k, c.jkt, NULL), IDP_OK);
	ck_assert_str_eq(c.jkt, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
	char *t = NULL;
	size_t len;
	ck_assert_int_eq(fmt_token_sign(k, "ed-2026", &c, NOW, 600, "AAECAwQFBgcICQoLDA0ODw", &t,
	                                &len, NULL),
	                 IDP_OK);
	/* Checked independently with the stock openssl command:
	 * openssl pkeyutl -verify -pubin -inkey RFC8032-TEST1.pub -rawin -in HEADER.PAYLOAD
	 * -sigfile SIG gives "Signature Verified Successfully". */
	static const char known[] = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6ImVkLTIwMjYifQ.eyJpc"
	                            "3MiOiJodHRwczovL2lkcHJvdmQubG9jYWw6ODQ0MyIsImF1ZCI6ImlkcHJvdiIsI"
	                            "nN1YiI6ImRldi0wMDAxIiwia2luZCI6InByb3Zpc2lvbmluZyIsImlhdCI6MTgwM"
	                            "DAwMDAwMCwibmJmIjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDA2MDAsImp0aSI6I"
	                            "kFBRUNBd1FGQmdjSUNRb0xEQTBPRHciLCJjbmYiOnsiamt0Ijoia1ByS19xbXhWV"
	                            "2FZVkE5d3dCRjZJdW8zdlZ6ejdUeEhDVHdYQnlnclM0ayJ9fQ.1g5VxzGVPZYtV_"
	                            "wAUBf64rP0Tb_HvBBq-mNqprX5InBzBs274HvnAGZ346o6jE5mOKMbrmI5FZiFtc"
	                            "QsXHREBQ";
	ck_assert_str_eq(t, known);
	struct fmt_token_key set[1] = {{"ed-2026", k}};
	struct fmt_token_policy p = base_policy();
	p.kinds = FMT_TOKEN_PROVISION;
	p.jkt = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
	struct fmt_token_claims out;
	ck_assert_int_eq(fmt_token_verify((const uint8_t *)known, sizeof(known) - 1, set, 1, &p,
	                                  &out, NULL, NULL),
	                 IDP_OK);
	ck_assert_str_eq(out.jti, "AAECAwQFBgcICQoLDA0ODw");
	ck_assert_int_eq(out.exp, NOW + 600);
	fmt_token_free(t);
	fmt_key_free(k);
}
END_TEST

START_TEST(test_token_alg_none_refused)
{
	char *payload = std_payload();
	static const char *const headers[] = {
	        "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"ed-1\"}",
	        "{\"alg\":\"None\",\"typ\":\"JWT\",\"kid\":\"ed-1\"}",
	        "{\"alg\":\"NONE\",\"typ\":\"JWT\",\"kid\":\"es-1\"}",
	        "{\"alg\":\"\",\"typ\":\"JWT\",\"kid\":\"es-1\"}",
	};
	struct idp_error err;
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		/* The unsecured JWS of RFC 7515 A.5: empty signature. */
		char *t = assemble(headers[i], payload, (const uint8_t *)"", 0);
		enum fmt_token_check want =
		        i == 3 ? FMT_TOKEN_CHECK_HEADER : FMT_TOKEN_CHECK_ALG; /* "" is no alg */
		ASSERT_CHECK(t, want, &err);
		free(t);
		/* Even with a valid EdDSA signature over it. */
		t = forge(ed_key, headers[i], payload);
		ASSERT_CHECK(t, want, &err);
		free(t);
	}
	char *t = assemble(headers[0], payload, (const uint8_t *)"", 0);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_ALG, &err);
	ck_assert_msg(strstr(err.msg, "alg \"none\" is not allowed") != NULL, "%s", err.msg);
	free(t);
	free(payload);
}
END_TEST

START_TEST(test_token_hs256_with_public_key_refused)
{
	/* The classic confusion: HMAC keyed with the verifier's public key PEM,
	 * which an attacker knows. */
	char *payload = std_payload();
	static const char *const algs[] = {"HS256", "HS384", "HS512"};
	for (int k = 0; k < 2; k++) {
		char *pem = NULL;
		size_t pem_len = 0;
		ck_assert_int_eq(fmt_key_public_pem(keyset[k].key, &pem, &pem_len, NULL), IDP_OK);
		for (size_t a = 0; a < 3; a++) {
			char header[96];
			header_of(header, algs[a], keyset[k].kid);
			char *unsigned_t = assemble(header, payload, (const uint8_t *)"", 0);
			size_t in = strlen(unsigned_t) - 1;
			uint8_t mac[EVP_MAX_MD_SIZE];
			unsigned mac_len = 0;
			const EVP_MD *md = a == 0   ? EVP_sha256()
			                   : a == 1 ? EVP_sha384()
			                            : EVP_sha512();
			ck_assert_ptr_nonnull(HMAC(md, pem, (int)pem_len,
			                           (const uint8_t *)unsigned_t, in, mac, &mac_len));
			free(unsigned_t);
			char *t = assemble(header, payload, mac, mac_len);
			struct idp_error err;
			ASSERT_CHECK(t, FMT_TOKEN_CHECK_ALG, &err);
			ck_assert_ptr_nonnull(strstr(err.msg, algs[a]));
			free(t);
		}
		free(pem);
	}
	free(payload);
}
END_TEST

START_TEST(test_token_alg_key_confusion_refused)
{
	char *payload = std_payload();
	struct idp_error err;
	/* ES256 header naming the Ed25519 key, signed by that key. */
	char *t = forge(ed_key, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"ed-1\"}", payload);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_ALG, &err);
	ck_assert_msg(strstr(err.msg, "does not fit") != NULL, "%s", err.msg);
	free(t);
	/* EdDSA header naming the P-256 key, signed by that key. */
	t = forge(es_key, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"es-1\"}", payload);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_ALG, &err);
	free(t);
	/* Algorithms never allowed, whatever the key. */
	static const char *const algs[] = {"RS256", "PS256", "ES384",  "ES512", "ES256K", "Ed25519",
	                                   "es256", "eddsa", "ES256 ", "HS256", "A128KW", "dir"};
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		for (int k = 0; k < 2; k++) {
			char header[96];
			header_of(header, algs[i], keyset[k].kid);
			t = forge(keyset[k].key, header, payload);
			ASSERT_CHECK(t, FMT_TOKEN_CHECK_ALG, &err);
			free(t);
		}
	}
	/* alg of the wrong JSON type. */
	t = forge(es_key, "{\"alg\":1,\"typ\":\"JWT\",\"kid\":\"es-1\"}", payload);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_HEADER, &err);
	free(t);
	free(payload);
}
END_TEST

START_TEST(test_token_header_members_refused)
{
	char *payload = std_payload();
	static const char *const headers[] = {
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\",\"crit\":[\"exp\"]}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\",\"jku\":\"https://x/k\"}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\",\"jwk\":{\"kty\":\"OKP\"}}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\",\"x5u\":\"https://x/c\"}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\",\"x5c\":[\"MII\"]}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\",\"cty\":\"JWT\"}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\",\"b64\":false}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\",\"zip\":\"DEF\"}",
	        "{\"alg\":\"EdDSA\",\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\"}",
	        "{\"alg\":\"EdDSA\",\"kid\":\"ed-1\"}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"jwt\",\"kid\":\"ed-1\"}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT+x\",\"kid\":\"ed-1\"}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"\"}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed 1\"}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":[\"ed-1\"]}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":"
	        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	        "aaaaaaaaaaaaaaaaaaaaaaaa\"}",
	        "[\"EdDSA\",\"JWT\",\"ed-1\"]",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\"",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\"} {}",
	        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed\\u0000-1\"}",
	};
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		char *t = forge(ed_key, headers[i], payload);
		struct idp_error err;
		enum fmt_token_check got = verify(t, &err);
		ck_assert_msg(got == FMT_TOKEN_CHECK_HEADER, "%s: check %s (%s)", headers[i],
		              fmt_token_check_name(got), err.msg);
		free(t);
	}
	/* Member order and spacing do not matter. */
	struct idp_error err;
	char *t = forge(ed_key, " { \"kid\" : \"ed-1\", \"typ\":\"JWT\" ,\"alg\":\"EdDSA\" } ",
	                payload);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_OK, &err);
	free(t);
	free(payload);
}
END_TEST

START_TEST(test_token_kid_and_key_set)
{
	char *payload = std_payload();
	struct idp_error err;
	/* Unknown kid. */
	char *t = forge(ed_key, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-9\"}", payload);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_KID, &err);
	ck_assert_ptr_nonnull(strstr(err.msg, "\"ed-9\""));
	free(t);
	/* Signed by another key of the same type under a known kid. */
	for (int k = 0; k < 2; k++) {
		struct fmt_key *other = NULL;
		ck_assert_int_eq(fmt_key_generate(fmt_key_type(keyset[k].key), &other, NULL),
		                 IDP_OK);
		char header[96];
		header_of(header, k == 0 ? "ES256" : "EdDSA", keyset[k].kid);
		t = forge(other, header, payload);
		ASSERT_CHECK(t, FMT_TOKEN_CHECK_SIGNATURE, &err);
		free(t);
		fmt_key_free(other);
	}
	/* Rotation: a token of the old key verifies while the old key is in the
	 * set, not after. */
	struct fmt_key *old = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &old, NULL), IDP_OK);
	struct fmt_token_claims c = base_claims(FMT_TOKEN_DEVICE);
	size_t len;
	ck_assert_int_eq(fmt_token_sign(old, "es-0", &c, NOW, 0, NULL, &t, &len, NULL), IDP_OK);
	struct fmt_token_key set[3] = {keyset[0], keyset[1], {"es-0", old}};
	struct fmt_token_policy p = base_policy();
	enum fmt_token_check chk;
	ck_assert_int_eq(fmt_token_verify((const uint8_t *)t, len, set, 3, &p, NULL, &chk, NULL),
	                 IDP_OK);
	ck_assert_int_eq(fmt_token_verify((const uint8_t *)t, len, set, 2, &p, NULL, &chk, NULL),
	                 IDP_E_NOTFOUND);
	ck_assert_int_eq(chk, FMT_TOKEN_CHECK_KID);
	/* A bad key set or policy is the caller's error. */
	set[2].kid = "es-1";
	ck_assert_int_eq(fmt_token_verify((const uint8_t *)t, len, set, 3, &p, NULL, &chk, &err),
	                 IDP_E_ARG);
	ck_assert_int_eq(chk, FMT_TOKEN_CHECK_ARGS);
	ck_assert_int_eq(fmt_token_verify((const uint8_t *)t, len, set, 0, &p, NULL, &chk, &err),
	                 IDP_E_ARG);
	set[2].kid = "bad kid";
	ck_assert_int_eq(fmt_token_verify((const uint8_t *)t, len, set, 3, &p, NULL, &chk, &err),
	                 IDP_E_ARG);
	p.aud = NULL;
	ck_assert_int_eq(fmt_token_verify((const uint8_t *)t, len, set, 2, &p, NULL, &chk, &err),
	                 IDP_E_ARG);
	p = base_policy();
	p.kinds = 0;
	ck_assert_int_eq(fmt_token_verify((const uint8_t *)t, len, set, 2, &p, NULL, &chk, &err),
	                 IDP_E_ARG);
	p.kinds = 4;
	ck_assert_int_eq(fmt_token_verify((const uint8_t *)t, len, set, 2, &p, NULL, &chk, &err),
	                 IDP_E_ARG);
	fmt_token_free(t);
	fmt_key_free(old);
	free(payload);
}
END_TEST

START_TEST(test_token_signature_moved_swapped_high_s)
{
	int i = _i;
	struct fmt_token_claims c;
	char *a = make_token(i, &c), *b = make_token(i, &c);
	struct idp_error err;
	/* b's header and payload with a's signature. */
	char *mix = strdup(b);
	snprintf(strrchr(mix, '.'), strlen(strrchr(mix, '.')) + 1, "%s", strrchr(a, '.'));
	ASSERT_CHECK(mix, FMT_TOKEN_CHECK_SIGNATURE, &err);
	free(mix);
	/* Header and payload swapped. */
	const char *d1 = strchr(a, '.'), *d2 = strrchr(a, '.');
	size_t n = strlen(a) + 1;
	char *sw = malloc(n);
	snprintf(sw, n, "%.*s.%.*s%s", (int)(d2 - d1 - 1), d1 + 1, (int)(d1 - a), a, d2);
	ASSERT_CHECK(sw, FMT_TOKEN_CHECK_HEADER, &err);
	free(sw);
	/* A signature of the wrong size (one byte short, one byte long). */
	uint8_t sig[128];
	size_t sn = part(a, 2, sig, sizeof(sig));
	for (int d = -1; d <= 1; d += 2) {
		char *s = b64u(sig, (size_t)((int)sn + d));
		char *t = malloc(n + 8);
		snprintf(t, n + 8, "%.*s%s", (int)(d2 - a + 1), a, s);
		ASSERT_CHECK(t, FMT_TOKEN_CHECK_SIGNATURE, &err);
		free(s);
		free(t);
	}
	if (i == 0) {
		/* (r, n - s) is the same ECDSA signature mathematically: OpenSSL
		 * accepts it, the token verifier does not (one token, one spelling). */
		idp_test_ecdsa_twin(sig);
		size_t signed_len = (size_t)(d2 - a);
		ck_assert_int_eq(idp_test_ossl_verify_raw(fmt_key_evp(es_key), (const uint8_t *)a,
		                                          signed_len, sig),
		                 1);
		char *hs = b64u(sig, 64);
		char *t = malloc(n);
		snprintf(t, n, "%.*s%s", (int)(signed_len + 1), a, hs);
		ASSERT_CHECK(t, FMT_TOKEN_CHECK_SIGNATURE, &err);
		ck_assert_msg(strstr(err.msg, "low-s") != NULL, "%s", err.msg);
		free(hs);
		free(t);
	}
	fmt_token_free(a);
	fmt_token_free(b);
}
END_TEST

START_TEST(test_token_every_truncation_and_flip)
{
	int i = _i;
	struct fmt_token_claims c;
	char *t = make_token(i, &c);
	size_t len = strlen(t);
	struct fmt_token_policy p = base_policy();
	for (size_t n = 0; n < len; n++)
		ck_assert_msg(verify_p(t, n, &p, NULL) != FMT_TOKEN_CHECK_OK, "prefix %zu accepted",
		              n);
	/* One more byte than the token, from a longer buffer. */
	char *longer = malloc(len + 2);
	memcpy(longer, t, len);
	longer[len] = 'A';
	longer[len + 1] = '\0';
	ck_assert_int_ne(verify_p(longer, len + 1, &p, NULL), FMT_TOKEN_CHECK_OK);
	free(longer);
	/* Every byte of each part, changed three ways. */
	static const uint8_t masks[] = {0x01, 0x02, 0x20};
	size_t seen[3] = {0, 0, 0};
	for (size_t k = 0; k < len; k++) {
		if (t[k] == '.')
			continue;
		for (size_t m = 0; m < 3; m++) {
			t[k] ^= (char)masks[m];
			enum fmt_token_check got = verify_p(t, len, &p, NULL);
			ck_assert_msg(got != FMT_TOKEN_CHECK_OK, "byte %zu ^ %u accepted", k,
			              masks[m]);
			t[k] ^= (char)masks[m];
		}
		seen[(k > (size_t)(strchr(t, '.') - t)) + (k > (size_t)(strrchr(t, '.') - t))]++;
	}
	ck_assert(seen[0] > 0 && seen[1] > 0 && seen[2] == 86);
	ck_assert_int_eq(verify_p(t, len, &p, NULL), FMT_TOKEN_CHECK_OK);
	fmt_token_free(t);
}
END_TEST

START_TEST(test_token_noncanonical_base64url_refused)
{
	struct fmt_token_claims c;
	char *t = make_token(1, &c);
	size_t len = strlen(t);
	size_t d1 = (size_t)(strchr(t, '.') - t), d2 = (size_t)(strrchr(t, '.') - t);
	char *b = malloc(len + 8);
	struct idp_error err;
	/* '=' padding after each part, and whitespace. */
	const size_t at[] = {d1, d2, len};
	const char *ins[] = {"=", "==", " ", "\n", "\r\n"};
	for (size_t i = 0; i < 3; i++) {
		for (size_t j = 0; j < sizeof(ins) / sizeof(ins[0]); j++) {
			snprintf(b, len + 8, "%.*s%s%s", (int)at[i], t, ins[j], t + at[i]);
			ASSERT_CHECK(b, FMT_TOKEN_CHECK_STRUCTURE, &err);
		}
	}
	/* The standard alphabet's '+' and '/' for '-' and '_'. */
	for (size_t k = 0; k < len; k++) {
		if (t[k] != '-' && t[k] != '_')
			continue;
		memcpy(b, t, len + 1);
		b[k] = t[k] == '-' ? '+' : '/';
		ASSERT_CHECK(b, FMT_TOKEN_CHECK_STRUCTURE, &err);
	}
	/* Non-zero unused bits in the last symbol of the signature (86 symbols
	 * carry 516 bits for 512): same bytes, another spelling. */
	static const char alpha[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	memcpy(b, t, len + 1);
	size_t v = (size_t)(strchr(alpha, b[len - 1]) - alpha);
	b[len - 1] = alpha[v ^ 1];
	ASSERT_CHECK(b, FMT_TOKEN_CHECK_STRUCTURE, &err);
	ck_assert_msg(strstr(err.msg, "non-canonical") != NULL, "%s", err.msg);
	/* Wrong number of parts, empty parts. */
	static const char *const shapes[] = {
	        "a",   "a.b",     "a.b.c.d", ".b.c",      "a..c",      "..",
	        "...", "e30.e30", "e30",     "e30..AAAA", ".e30.AAAA", "e30.e30.AAAA.",
	};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		ASSERT_CHECK(shapes[i], FMT_TOKEN_CHECK_STRUCTURE, &err);
	/* "{}" as header and payload is well-formed: refused by the next check. */
	ASSERT_CHECK("e30.e30.", FMT_TOKEN_CHECK_HEADER, &err);
	free(b);
	fmt_token_free(t);
}
END_TEST

START_TEST(test_token_size_limits)
{
	struct idp_error err;
	char *big = malloc(FMT_TOKEN_MAX + 2);
	memset(big, 'A', FMT_TOKEN_MAX + 1);
	big[10] = '.';
	big[20] = '.';
	big[FMT_TOKEN_MAX + 1] = '\0';
	struct fmt_token_policy p = base_policy();
	ck_assert_int_eq(verify_p(big, FMT_TOKEN_MAX + 1, &p, &err), FMT_TOKEN_CHECK_SIZE);
	ck_assert_msg(strstr(err.msg, "max 4096") != NULL, "%s", err.msg);
	/* At the limit it is read (and refused for what it is). */
	ck_assert_int_eq(verify_p(big, FMT_TOKEN_MAX, &p, &err), FMT_TOKEN_CHECK_STRUCTURE);
	ck_assert_int_eq(verify_p("", 0, &p, &err), FMT_TOKEN_CHECK_SIZE);
	free(big);
	/* A signed token with an oversized claim. */
	cJSON *o = std_claims();
	char iss[FMT_TOKEN_ISS_MAX + 2];
	memset(iss, 'i', sizeof(iss) - 1);
	iss[sizeof(iss) - 1] = '\0';
	cJSON_ReplaceItemInObject(o, "iss", cJSON_CreateString(iss));
	char *t = forge_obj(1, o);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_CLAIMS, &err);
	ck_assert_msg(strstr(err.msg, "iss: longer than 255") != NULL, "%s", err.msg);
	free(t);
	/* A signed payload too big for the whole token. */
	o = std_claims();
	char *pad = malloc(3200);
	memset(pad, 'x', 3199);
	pad[3199] = '\0';
	cJSON_AddStringToObject(o, "pad", pad);
	free(pad);
	t = forge_obj(0, o);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_SIZE, &err);
	free(t);
	/* The signer refuses to make what the verifier would refuse. */
	struct fmt_token_claims c = base_claims(FMT_TOKEN_DEVICE);
	memset(c.iss, '"', FMT_TOKEN_ISS_MAX); /* every quote escaped: 510 bytes */
	memset(c.aud, '\\', FMT_TOKEN_AUD_MAX);
	memset(c.sub, 'd', FMT_TOKEN_SUB_MAX); /* an ID has nothing to escape */
	size_t len;
	ck_assert_int_eq(fmt_token_sign(es_key, "es-1", &c, NOW, 0, NULL, &t, &len, &err), IDP_OK);
	ck_assert_uint_le(len, FMT_TOKEN_MAX);
	ck_assert_int_eq(verify(t, &err), FMT_TOKEN_CHECK_ISS);
	fmt_token_free(t);
}
END_TEST

/* Mutations of the standard claims, each refused as CLAIMS. */
static void drop(cJSON *o, const char *k)
{
	cJSON_DeleteItemFromObject(o, k);
}

START_TEST(test_token_claims_refused)
{
	static const char *const names[] = {"iss", "aud", "sub", "kind", "iat",
	                                    "nbf", "exp", "jti", "cnf"};
	struct idp_error err;
	for (size_t i = 0; i < 9; i++) {
		cJSON *o = std_claims();
		drop(o, names[i]);
		char *t = forge_obj((int)(i % 2), o);
		ASSERT_CHECK(t, FMT_TOKEN_CHECK_CLAIMS, &err);
		ck_assert_msg(strstr(err.msg, names[i]) && strstr(err.msg, "missing"), "%s",
		              err.msg);
		free(t);
	}
	static const struct {
		const char *name, *json, *msg;
	} bad[] = {
	        {"exp", "\"1802592000\"", "expected a number"},
	        {"iat", "1800000000.5", "not a plain integer"},
	        /* Integral spellings cJSON reads as the same number: one spelling only. */
	        {"iat", "1800000000.0", "not a plain integer"},
	        {"exp", "1.8025920e9", "not a plain integer"},
	        {"exp", "1802592000E0", "not a plain integer"},
	        {"nbf", "01800000000", "not a plain integer"},
	        {"nbf", "-1", "outside"},
	        {"exp", "9007199254740993", "expected an integer"},
	        {"aud", "[\"idprov\"]", "expected a string"},
	        {"iss", "\"\"", "empty"},
	        {"sub", "\"dev\\u0007\"", "control"},
	        {"sub", "null", "expected a string"},
	        {"kind", "\"admin\"", "kind"},
	        {"kind", "\"Device\"", "kind"},
	        {"jti", "\"AAAAAAAAAAAAAAAAAAAAA\"", "jti"},
	        {"jti", "\"AAAAAAAAAAAAAAAAAAAAAB\"", "jti"},
	        {"jti", "\"AAAAAAAAAAAAAAAAAAAA+A\"", "jti"},
	        {"cnf", "\"x\"", "expected an object"},
	        {"cnf", "{}", "jkt: missing"},
	        {"cnf", "{\"jkt\":\"x\",\"x5t\":\"y\"}", "unknown field \"x5t\""},
	        {"cnf", "{\"jkt\":\"x\",\"jwk\":{}}", "nested deeper"},
	        {"cnf", "{\"jkt\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4\"}", "jkt"},
	        {"cnf", "{\"jkt\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4l\"}", "jkt"},
	        {"extra", "1", "unknown field \"extra\""},
	        {"nbf", "1799999999", "iat <= nbf"},
	        {"exp", "1800000000", "nbf < exp"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *o = std_claims();
		cJSON *v = cJSON_CreateRaw(bad[i].json); /* verbatim, no re-printing */
		ck_assert_ptr_nonnull(v);
		if (cJSON_GetObjectItem(o, bad[i].name))
			cJSON_ReplaceItemInObject(o, bad[i].name, v);
		else
			cJSON_AddItemToObject(o, bad[i].name, v);
		char *t = forge_obj((int)(i % 2), o);
		enum fmt_token_check got = verify(t, &err);
		ck_assert_msg(got == FMT_TOKEN_CHECK_CLAIMS && strstr(err.msg, bad[i].msg),
		              "%s=%s: %s (%s)", bad[i].name, bad[i].json, fmt_token_check_name(got),
		              err.msg);
		free(t);
	}
	/* Duplicate claim, payload not an object, payload not JSON. */
	char *pl = std_payload();
	size_t n = strlen(pl) + 32;
	char *dup = malloc(n);
	snprintf(dup, n, "{\"sub\":\"dev-0002\",%s", pl + 1);
	static const char *const payloads[3] = {NULL, "[1,2]", "{\"iss\":"};
	for (int i = 0; i < 3; i++) {
		char *t = forge(ed_key, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\"}",
		                i == 0 ? dup : payloads[i]);
		ASSERT_CHECK(t, FMT_TOKEN_CHECK_CLAIMS, &err);
		if (i == 0)
			ck_assert_msg(strstr(err.msg, "duplicate key \"sub\"") != NULL, "%s",
			              err.msg);
		free(t);
	}
	free(dup);
	free(pl);
	/* Unchanged standard claims pass: the refusals above are the mutation's. */
	char *t = forge_obj(0, std_claims());
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_OK, &err);
	free(t);
}
END_TEST

START_TEST(test_token_policy_checks)
{
	struct fmt_token_claims c;
	char *t = make_token(_i, &c);
	size_t len = strlen(t);
	struct idp_error err;
	struct fmt_token_policy p = base_policy();
	p.iss = "https://rogue.local:8443";
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_ISS);
	p = base_policy();
	p.aud = "hub";
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_AUD);
	ck_assert_msg(strstr(err.msg, "audience \"idprov\" is not \"hub\"") != NULL, "%s", err.msg);
	p = base_policy();
	p.kinds = FMT_TOKEN_PROVISION;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_KIND);
	p = base_policy();
	p.sub = "dev-0002";
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_SUB);
	p = base_policy();
	char other[FMT_TOKEN_JKT_LEN + 1];
	ck_assert_int_eq(fmt_token_jkt(es_key, other, NULL), IDP_OK);
	p.jkt = other;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_CNF);
	p.jkt = dev_jkt;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_OK);
	/* A provisioning token is not a device token. */
	fmt_token_free(t);
	c = base_claims(FMT_TOKEN_PROVISION);
	ck_assert_int_eq(
	        fmt_token_sign(keyset[_i].key, keyset[_i].kid, &c, NOW, 0, NULL, &t, &len, NULL),
	        IDP_OK);
	p = base_policy();
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_KIND);
	ck_assert_msg(strstr(err.msg, "provisioning token is not accepted") != NULL, "%s", err.msg);
	p.kinds = FMT_TOKEN_PROVISION;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_OK);
	fmt_token_free(t);
}
END_TEST

START_TEST(test_token_times)
{
	struct fmt_token_claims c;
	char *t = make_token(_i, &c);
	size_t len = strlen(t);
	struct idp_error err;
	struct fmt_token_policy p = base_policy();
	/* nbf = iat = NOW; skew 60 s either side. */
	p.now = NOW - FMT_TOKEN_SKEW;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_OK);
	p.now = NOW - FMT_TOKEN_SKEW - 1;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_NOT_YET);
	ck_assert_msg(strstr(err.msg, "not valid before 1800000000") != NULL, "%s", err.msg);
	p.now = 0;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_NOT_YET);
	p.now = c.exp + FMT_TOKEN_SKEW - 1;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_OK);
	p.now = c.exp + FMT_TOKEN_SKEW;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_EXPIRED);
	ck_assert_msg(strstr(err.msg, "expired at") != NULL, "%s", err.msg);
	p.now = FMT_JSON_INT_MAX;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_EXPIRED);
	p.now = -1;
	ck_assert_int_eq(verify_p(t, len, &p, &err), FMT_TOKEN_CHECK_ARGS);
	fmt_token_free(t);

	/* A future nbf, checked on its own. */
	cJSON *o = std_claims();
	cJSON_ReplaceItemInObject(o, "nbf", cJSON_CreateNumber((double)(NOW + 3600)));
	t = forge_obj(_i, o);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_NOT_YET, &err);
	free(t);
	/* Lifetimes beyond what the kind allows, though signed. */
	o = std_claims();
	cJSON_ReplaceItemInObject(o, "exp", cJSON_CreateNumber((double)(NOW + 40000000)));
	t = forge_obj(_i, o);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_LIFETIME, &err);
	free(t);
	o = std_claims();
	cJSON_ReplaceItemInObject(o, "exp", cJSON_CreateNumber((double)(NOW + 30)));
	t = forge_obj(_i, o);
	ASSERT_CHECK(t, FMT_TOKEN_CHECK_LIFETIME, &err);
	free(t);
	o = std_claims();
	cJSON_ReplaceItemInObject(o, "kind", cJSON_CreateString("provisioning"));
	cJSON_ReplaceItemInObject(o, "exp", cJSON_CreateNumber((double)(NOW + 901)));
	t = forge_obj(_i, o);
	p = base_policy();
	p.kinds = FMT_TOKEN_PROVISION;
	ck_assert_int_eq(verify_p(t, strlen(t), &p, &err), FMT_TOKEN_CHECK_LIFETIME);
	free(t);
}
END_TEST

START_TEST(test_token_decode_unverified_and_renewal)
{
	struct fmt_token_claims c, out;
	char *t = make_token(0, &c);
	size_t len = strlen(t);
	ck_assert_int_eq(fmt_token_decode_unverified((const uint8_t *)t, len, &out, NULL), IDP_OK);
	ck_assert_mem_eq(&out, &c, sizeof(c));
	ck_assert_int_eq(fmt_token_renew_at(&out), NOW + FMT_TOKEN_DEVICE_LIFETIME_DEFAULT / 2);
	/* No signature check (documented): another key's token decodes too. */
	t[len - 2] = t[len - 2] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(fmt_token_decode_unverified((const uint8_t *)t, len, &out, NULL), IDP_OK);
	/* But structure and claims are checked. */
	struct idp_error err;
	for (size_t n = 0; n < len; n++)
		ck_assert_int_ne(fmt_token_decode_unverified((const uint8_t *)t, n, &out, &err),
		                 IDP_OK);
	cJSON *o = std_claims();
	drop(o, "exp");
	char *bad = forge_obj(1, o);
	ck_assert_int_eq(fmt_token_decode_unverified((const uint8_t *)bad, strlen(bad), &out, &err),
	                 IDP_E_FORMAT);
	ck_assert_msg(strstr(err.msg, "exp: missing") != NULL, "%s", err.msg);
	struct fmt_token_claims zero;
	memset(&zero, 0, sizeof(zero));
	ck_assert_mem_eq(&out, &zero, sizeof(out));
	free(bad);
	fmt_token_free(t);
	/* Renewal is half the lifetime, for odd lifetimes too. */
	c.iat = 1000;
	c.exp = 1301;
	ck_assert_int_eq(fmt_token_renew_at(&c), 1150);
	c = base_claims(FMT_TOKEN_PROVISION);
	ck_assert_int_eq(fmt_token_sign(ed_key, "ed-1", &c, NOW, 0, NULL, &t, &len, NULL), IDP_OK);
	ck_assert_int_eq(fmt_token_decode_unverified((const uint8_t *)t, len, &out, NULL), IDP_OK);
	ck_assert_int_eq(fmt_token_renew_at(&out), NOW + FMT_TOKEN_PROVISION_LIFETIME_DEFAULT / 2);
	fmt_token_free(t);
}
END_TEST

START_TEST(test_token_sign_refuses_bad_input)
{
	struct idp_error err;
	char *t = (char *)1;
	size_t len = 1;
	struct fmt_token_claims c;
	const char *jti = NULL;
#define SIGN_REFUSED(key, kid, now, life, want)                                                    \
	do {                                                                                       \
		ck_assert_int_eq(                                                                  \
		        fmt_token_sign((key), (kid), &c, (now), (life), jti, &t, &len, &err),      \
		        IDP_E_ARG);                                                                \
		ck_assert_ptr_null(t);                                                             \
		ck_assert_msg(strstr(err.msg, (want)) != NULL, "%s", err.msg);                     \
	} while (0)
	c = base_claims(FMT_TOKEN_DEVICE);
	SIGN_REFUSED(ed_key, "ed 1", NOW, 0, "kid");
	SIGN_REFUSED(ed_key, "", NOW, 0, "kid");
	SIGN_REFUSED(ed_key, NULL, NOW, 0, "kid");
	SIGN_REFUSED(ed_key, "ed-1", NOW, 59, "lifetime 59");
	SIGN_REFUSED(ed_key, "ed-1", NOW, FMT_TOKEN_DEVICE_LIFETIME_MAX + 1, "lifetime");
	SIGN_REFUSED(ed_key, "ed-1", -1, 0, "time");
	SIGN_REFUSED(ed_key, "ed-1", FMT_JSON_INT_MAX, 0, "time");
	c.iss[0] = '\0';
	SIGN_REFUSED(ed_key, "ed-1", NOW, 0, "iss is empty");
	c = base_claims(FMT_TOKEN_DEVICE);
	snprintf(c.sub, sizeof(c.sub), "%s", "dev\n0001");
	SIGN_REFUSED(ed_key, "ed-1", NOW, 0, "sub");
	c = base_claims(FMT_TOKEN_DEVICE);
	snprintf(c.aud, sizeof(c.aud), "%s", "\xc3\x28");
	SIGN_REFUSED(ed_key, "ed-1", NOW, 0, "aud");
	c = base_claims(FMT_TOKEN_DEVICE);
	memset(c.sub, 'a', sizeof(c.sub)); /* not terminated */
	SIGN_REFUSED(ed_key, "ed-1", NOW, 0, "sub longer than 64");
	c = base_claims(FMT_TOKEN_DEVICE);
	c.jkt[5] = '+';
	SIGN_REFUSED(ed_key, "ed-1", NOW, 0, "jkt");
	c = base_claims(FMT_TOKEN_DEVICE);
	jti = "short";
	SIGN_REFUSED(ed_key, "ed-1", NOW, 0, "jti");
	jti = "AAAAAAAAAAAAAAAAAAAAAB"; /* non-canonical last symbol */
	SIGN_REFUSED(ed_key, "ed-1", NOW, 0, "jti");
	jti = NULL;
	c = base_claims(FMT_TOKEN_PROVISION);
	SIGN_REFUSED(ed_key, "ed-1", NOW, FMT_TOKEN_PROVISION_LIFETIME_MAX + 1, "for provision");
	c = base_claims((enum fmt_token_kind)3);
	SIGN_REFUSED(ed_key, "ed-1", NOW, 0, "kind");
	/* A public key cannot sign. */
	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t sl;
	struct fmt_key *pub = NULL;
	ck_assert_int_eq(fmt_key_spki_der(ed_key, spki, &sl, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_parse_spki_der(spki, sl, &pub, NULL), IDP_OK);
	c = base_claims(FMT_TOKEN_DEVICE);
	SIGN_REFUSED(pub, "ed-1", NOW, 0, "private");
	fmt_key_free(pub);
#undef SIGN_REFUSED
	fmt_token_free(NULL);
	ck_assert_str_eq(fmt_token_check_name(FMT_TOKEN_CHECK_CNF), "cnf");
	ck_assert_str_eq(fmt_token_check_name((enum fmt_token_check)1000), "unknown");
}
END_TEST

START_TEST(test_token_jwks_gives_back_the_verifying_keys)
{
	char *jwks = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_token_jwks_encode(keyset, 2, &jwks, &len, NULL), IDP_OK);
	ck_assert_uint_eq(len, strlen(jwks));
	cJSON *doc = cJSON_ParseWithLength(jwks, len);
	ck_assert_ptr_nonnull(doc);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "keys");
	ck_assert(cJSON_IsArray(arr));
	ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
	static const char *const algs[] = {"ES256", "EdDSA"};
	static const char *const ktys[] = {"EC", "OKP"};
	for (int i = 0; i < 2; i++) {
		const cJSON *jwk = cJSON_GetArrayItem(arr, i);
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(jwk, "kid")->valuestring,
		                 keyset[i].kid);
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(jwk, "alg")->valuestring, algs[i]);
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(jwk, "kty")->valuestring, ktys[i]);
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(jwk, "use")->valuestring, "sig");
		ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(jwk, "d")); /* public only */
		ck_assert_int_eq(cJSON_GetArraySize(jwk), i == 0 ? 7 : 6);
		struct fmt_key *back = idp_test_jwk_key(jwk);
		ck_assert_ptr_nonnull(back);
		ck_assert(fmt_key_equal(back, keyset[i].key));
		/* A token of that key verifies with the key taken from the JWK. */
		struct fmt_token_claims c;
		char *t = make_token(i, &c);
		const struct fmt_token_key one = {keyset[i].kid, back};
		const struct fmt_token_policy pol = base_policy();
		ck_assert_int_eq(fmt_token_verify((const uint8_t *)t, strlen(t), &one, 1, &pol, NULL,
		                                  NULL, NULL),
		                 IDP_OK);
		fmt_token_free(t);
		fmt_key_free(back);
	}
	cJSON_Delete(doc);
	free(jwks);

	/* Refusals: a kid the token header could not carry, no key, too many. */
	struct fmt_token_key bad[FMT_TOKEN_KEYS_MAX + 1];
	for (size_t i = 0; i < FMT_TOKEN_KEYS_MAX + 1; i++)
		bad[i] = keyset[0];
	bad[0].kid = "bad kid\"";
	struct idp_error err = {0};
	ck_assert_int_eq(fmt_token_jwks_encode(bad, 1, &jwks, &len, &err), IDP_E_ARG);
	ck_assert_ptr_null(jwks);
	bad[0].kid = "k";
	bad[0].key = NULL;
	ck_assert_int_eq(fmt_token_jwks_encode(bad, 1, &jwks, &len, &err), IDP_E_ARG);
	bad[0] = keyset[0];
	ck_assert_int_eq(fmt_token_jwks_encode(bad, FMT_TOKEN_KEYS_MAX + 1, &jwks, &len, &err),
	                 IDP_E_ARG);
	/* The largest set fits: 16 keys with 64-byte kids. */
	char kids[FMT_TOKEN_KEYS_MAX][FMT_TOKEN_KID_MAX + 1];
	for (size_t i = 0; i < FMT_TOKEN_KEYS_MAX; i++) {
		memset(kids[i], 'k', FMT_TOKEN_KID_MAX);
		kids[i][FMT_TOKEN_KID_MAX] = '\0';
		bad[i].kid = kids[i];
	}
	ck_assert_int_eq(fmt_token_jwks_encode(bad, FMT_TOKEN_KEYS_MAX, &jwks, &len, &err), IDP_OK);
	ck_assert_uint_lt(len, FMT_TOKEN_JWKS_MAX);
	free(jwks);
	/* An empty set is a valid (empty) JWK Set. */
	ck_assert_int_eq(fmt_token_jwks_encode(bad, 0, &jwks, &len, &err), IDP_OK);
	ck_assert_str_eq(jwks, "{\"keys\":[]}");
	free(jwks);
}
END_TEST

/* The one token-kind enum: names and lookups agree; anything else is none. */
START_TEST(test_token_kind_names)
{
	static const enum fmt_token_kind kinds[] = {FMT_TOKEN_PROVISION, FMT_TOKEN_DEVICE};
	for (size_t i = 0; i < 2; i++) {
		const char *n = fmt_token_kind_name(kinds[i]);
		ck_assert_int_eq(fmt_token_kind_of(n, strlen(n)), kinds[i]);
	}
	ck_assert_str_eq(fmt_token_kind_name(FMT_TOKEN_PROVISION), "provisioning");
	ck_assert_str_eq(fmt_token_kind_name(FMT_TOKEN_DEVICE), "device");
	ck_assert_str_eq(fmt_token_kind_name((enum fmt_token_kind)3), "unknown");
	static const char *const bad[] = {"", "Device", "devic", "device ", "provision", "unknown"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(fmt_token_kind_of(bad[i], strlen(bad[i])), 0);
	ck_assert_int_eq(fmt_token_kind_of("device\0", 7), 0);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("token");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_token_round_trip, 0, 2);
	tcase_add_test(tc, test_token_kind_names);
	tcase_add_test(tc, test_token_thumbprint_known_answers);
	tcase_add_test(tc, test_token_thumbprint_matches_openssl_coordinates);
	tcase_add_test(tc, test_token_eddsa_known_answer);
	tcase_add_test(tc, test_token_alg_none_refused);
	tcase_add_test(tc, test_token_hs256_with_public_key_refused);
	tcase_add_test(tc, test_token_alg_key_confusion_refused);
	tcase_add_test(tc, test_token_header_members_refused);
	tcase_add_test(tc, test_token_kid_and_key_set);
	tcase_add_loop_test(tc, test_token_signature_moved_swapped_high_s, 0, 2);
	tcase_add_loop_test(tc, test_token_every_truncation_and_flip, 0, 2);
	tcase_add_test(tc, test_token_noncanonical_base64url_refused);
	tcase_add_test(tc, test_token_size_limits);
	tcase_add_test(tc, test_token_claims_refused);
	tcase_add_loop_test(tc, test_token_policy_checks, 0, 2);
	tcase_add_loop_test(tc, test_token_times, 0, 2);
	tcase_add_test(tc, test_token_decode_unverified_and_renewal);
	tcase_add_test(tc, test_token_sign_refuses_bad_input);
	tcase_add_test(tc, test_token_jwks_gives_back_the_verifying_keys);
	suite_add_tcase(s, tc);
	return s;
}
