/*
 * token.c - see token.h. Spec: formats/token.md.
 *
 * JWS compact serialisation over keys.h (raw R||S / Ed25519 signatures), b64.h
 * (canonical unpadded base64url) and json.h (strict parsing). The verifier
 * decodes and checks the header, selects the key and checks the signature
 * before it parses a single byte of the payload.
 */
#include "formats/token.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "formats/b64.h"
#include "formats/buf.h"
#include "formats/id.h"
#include "formats/json.h"

/* Decoded bytes of all three parts of a token of at most FMT_TOKEN_MAX
 * characters (a part of n characters decodes to at most n * 3 / 4 bytes). */
#define PARTS_MAX    (FMT_TOKEN_MAX / 4u * 3u)
#define SIG_B64_LEN  86u /* base64url of a 64-byte signature */
#define JTI_BYTES    16u
#define ALG_SHOW_MAX 16 /* characters of an unknown alg quoted in an error */
#define PAYLOAD_ROOM 4608u

static const char *alg_of(enum fmt_key_type t)
{
	return t == FMT_KEY_P256 ? "ES256" : "EdDSA";
}

const char *fmt_token_kind_name(enum fmt_token_kind kind)
{
	switch (kind) {
	case FMT_TOKEN_PROVISION:
		return "provisioning";
	case FMT_TOKEN_DEVICE:
		return "device";
	}
	return "unknown";
}

enum fmt_token_kind fmt_token_kind_of(const char *s, size_t len)
{
	static const enum fmt_token_kind kinds[] = {FMT_TOKEN_PROVISION, FMT_TOKEN_DEVICE};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const char *name = fmt_token_kind_name(kinds[i]);
		if (strlen(name) == len && memcmp(name, s, len) == 0)
			return kinds[i];
	}
	return (enum fmt_token_kind)0;
}

const char *fmt_token_check_name(enum fmt_token_check check)
{
	static const char *const names[] = {
	        [FMT_TOKEN_CHECK_OK] = "ok",           [FMT_TOKEN_CHECK_ARGS] = "args",
	        [FMT_TOKEN_CHECK_SIZE] = "size",       [FMT_TOKEN_CHECK_STRUCTURE] = "structure",
	        [FMT_TOKEN_CHECK_HEADER] = "header",   [FMT_TOKEN_CHECK_ALG] = "alg",
	        [FMT_TOKEN_CHECK_KID] = "kid",         [FMT_TOKEN_CHECK_SIGNATURE] = "signature",
	        [FMT_TOKEN_CHECK_CLAIMS] = "claims",   [FMT_TOKEN_CHECK_ISS] = "iss",
	        [FMT_TOKEN_CHECK_AUD] = "aud",         [FMT_TOKEN_CHECK_KIND] = "kind",
	        [FMT_TOKEN_CHECK_SUB] = "sub",         [FMT_TOKEN_CHECK_NOT_YET] = "not-yet-valid",
	        [FMT_TOKEN_CHECK_EXPIRED] = "expired", [FMT_TOKEN_CHECK_LIFETIME] = "lifetime",
	        [FMT_TOKEN_CHECK_CNF] = "cnf",
	};
	if ((unsigned)check < sizeof(names) / sizeof(names[0]) && names[check] != NULL)
		return names[check];
	return "unknown";
}

/* kid: 1..FMT_TOKEN_KID_MAX characters of [A-Za-z0-9._:-]; safe in logs and
 * in JSON without escaping. */
static bool kid_valid(const char *s, size_t n)
{
	if (n == 0 || n > FMT_TOKEN_KID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

/* A string claim: valid UTF-8 without control characters (they end in logs). */
static bool text_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return fmt_utf8_valid((const uint8_t *)s, n);
}

/* Exactly want characters of canonical base64url decoding to bytes bytes. */
static bool b64url_exact(const char *s, size_t n, size_t want, size_t bytes)
{
	uint8_t tmp[32];
	size_t got = 0;
	return n == want && bytes <= sizeof(tmp) &&
	       fmt_b64_decode(FMT_B64_URL, s, n, tmp, bytes, &got, NULL) == IDP_OK && got == bytes;
}

static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

/* ---------------------------------------------------------------- thumbprint */

/* x and y of a P-256 key read from its kept SPKI DER when that is the
 * canonical form (RFC 5480: a 26-byte header, then 04 || X || Y): two
 * EVP_PKEY_get_bn_param calls cost about 20 us, a renewal needs the
 * thumbprint once. False for any other form (the caller asks OpenSSL). */
static bool p256_spki_point(const struct fmt_key *key, uint8_t x[static 32], uint8_t y[static 32])
{
	static const uint8_t head[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
	                               0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
	                               0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};
	uint8_t der[FMT_KEY_SPKI_MAX];
	size_t len = 0;
	if (fmt_key_spki_der(key, der, &len, NULL) != IDP_OK || len != sizeof(head) + 64 ||
	    memcmp(der, head, sizeof(head)) != 0)
		return false;
	memcpy(x, der + sizeof(head), 32);
	memcpy(y, der + sizeof(head) + 32, 32);
	return true;
}

/* The base64url public coordinates of key: x and y for P-256 (*ec true), x
 * alone for Ed25519. what names the caller in errors. */
static enum idp_err jwk_coords(const struct fmt_key *key, char bx[static 44], char by[static 44],
                               bool *ec, const char *what, struct idp_error *err)
{
	EVP_PKEY *pkey = fmt_key_evp(key);
	uint8_t x[32], y[32];
	bx[0] = by[0] = '\0';
	*ec = fmt_key_type(key) == FMT_KEY_P256;
	if (*ec && p256_spki_point(key, x, y)) {
		fmt_b64_encode(FMT_B64_URL, x, 32, bx);
		fmt_b64_encode(FMT_B64_URL, y, 32, by);
		return IDP_OK;
	}
	if (*ec) {
		BIGNUM *bnx = NULL, *bny = NULL;
		int ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &bnx) == 1 &&
		         EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &bny) == 1 &&
		         BN_bn2binpad(bnx, x, 32) == 32 && BN_bn2binpad(bny, y, 32) == 32;
		BN_free(bnx);
		BN_free(bny);
		if (!ok)
			return idp_error_ssl(err, IDP_E_CRYPTO, "%s: read p256 public point", what);
		fmt_b64_encode(FMT_B64_URL, x, 32, bx);
		fmt_b64_encode(FMT_B64_URL, y, 32, by);
		return IDP_OK;
	}
	size_t len = sizeof(x);
	if (EVP_PKEY_get_raw_public_key(pkey, x, &len) != 1 || len != 32)
		return idp_error_ssl(err, IDP_E_CRYPTO, "%s: read ed25519 public key", what);
	fmt_b64_encode(FMT_B64_URL, x, 32, bx);
	return IDP_OK;
}

enum idp_err fmt_token_jkt(const struct fmt_key *key, char out[static FMT_TOKEN_JKT_LEN + 1],
                           struct idp_error *err)
{
	char bx[44], by[44];
	char jwk[160];
	bool ec = false;
	int n;
	out[0] = '\0';
	enum idp_err rc = jwk_coords(key, bx, by, &ec, "jkt", err);
	if (rc != IDP_OK)
		return rc;
	if (ec)
		/* RFC 7638 section 3.2: required members only, in lexicographic order. */
		n = snprintf(jwk, sizeof(jwk),
		             "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", bx,
		             by);
	else
		/* RFC 8037 section 2: an Ed25519 JWK is kty OKP, crv Ed25519, x. */
		n = snprintf(jwk, sizeof(jwk), "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}",
		             bx);
	if (n <= 0 || (size_t)n >= sizeof(jwk))
		return idp_error_set(err, IDP_E_CRYPTO, "jkt: jwk does not fit");
	uint8_t digest[SHA256_DIGEST_LENGTH];
	if (SHA256((const uint8_t *)jwk, (size_t)n, digest) == NULL)
		return idp_error_ssl(err, IDP_E_CRYPTO, "jkt: sha-256");
	fmt_b64_encode(FMT_B64_URL, digest, sizeof(digest), out);
	return IDP_OK;
}

enum idp_err fmt_token_jwks_encode(const struct fmt_token_key *keys, size_t nkeys, char **out,
                                   size_t *len, struct idp_error *err)
{
	*out = NULL;
	*len = 0;
	if (nkeys > FMT_TOKEN_KEYS_MAX)
		return idp_error_set(err, IDP_E_ARG, "jwks: %zu keys, max %u", nkeys,
		                     FMT_TOKEN_KEYS_MAX);
	char *buf = malloc(FMT_TOKEN_JWKS_MAX);
	if (buf == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "jwks: out of memory");
	size_t used = 0;
	int w = snprintf(buf, FMT_TOKEN_JWKS_MAX, "{\"keys\":[");
	enum idp_err rc = IDP_OK;
	used = (size_t)w;
	for (size_t i = 0; i < nkeys; i++) {
		size_t kid_len = keys[i].kid != NULL ? strnlen(keys[i].kid, FMT_TOKEN_KID_MAX + 1) : 0;
		if (keys[i].key == NULL || kid_len == 0 || kid_len > FMT_TOKEN_KID_MAX ||
		    !kid_valid(keys[i].kid, kid_len)) {
			rc = idp_error_set(err, IDP_E_ARG, "jwks: key %zu: no key or a bad kid", i);
			break;
		}
		char bx[44], by[44];
		bool ec = false;
		rc = jwk_coords(keys[i].key, bx, by, &ec, "jwks", err);
		if (rc != IDP_OK)
			break;
		/* Members: kty, crv, x (, y) as RFC 7517/7518/8037 define them,
		 * then kid, use and alg. */
		if (ec)
			w = snprintf(buf + used, FMT_TOKEN_JWKS_MAX - used,
			             "%s{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\","
			             "\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"ES256\"}",
			             i == 0 ? "" : ",", bx, by, keys[i].kid);
		else
			w = snprintf(buf + used, FMT_TOKEN_JWKS_MAX - used,
			             "%s{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\","
			             "\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"EdDSA\"}",
			             i == 0 ? "" : ",", bx, keys[i].kid);
		if (w < 0 || (size_t)w >= FMT_TOKEN_JWKS_MAX - used) {
			rc = idp_error_set(err, IDP_E_LIMIT, "jwks: longer than %u bytes",
			                   FMT_TOKEN_JWKS_MAX);
			break;
		}
		used += (size_t)w;
	}
	if (rc == IDP_OK) {
		w = snprintf(buf + used, FMT_TOKEN_JWKS_MAX - used, "]}");
		if (w < 0 || (size_t)w >= FMT_TOKEN_JWKS_MAX - used)
			rc = idp_error_set(err, IDP_E_LIMIT, "jwks: longer than %u bytes",
			                   FMT_TOKEN_JWKS_MAX);
		else
			used += (size_t)w;
	}
	if (rc != IDP_OK) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = used;
	return IDP_OK;
}

/* ---------------------------------------------------------------- signing */

/* A claim string of a fixed-size field: 1..max bytes, text_valid. */
static enum idp_err check_text_field(const char *s, size_t size, size_t max, const char *name,
                                     size_t *len, struct idp_error *err)
{
	size_t n = strnlen(s, size);
	if (n == size || n > max)
		return idp_error_set(err, IDP_E_ARG, "token: %s longer than %zu bytes", name, max);
	if (n == 0)
		return idp_error_set(err, IDP_E_ARG, "token: %s is empty", name);
	if (!text_valid(s, n))
		return idp_error_set(err, IDP_E_ARG,
		                     "token: %s is not UTF-8 text without control characters",
		                     name);
	*len = n;
	return IDP_OK;
}

static int64_t lifetime_max(enum fmt_token_kind kind)
{
	return kind == FMT_TOKEN_PROVISION ? FMT_TOKEN_PROVISION_LIFETIME_MAX
	                                   : FMT_TOKEN_DEVICE_LIFETIME_MAX;
}

/* Check what fmt_token_sign takes from the caller; fill in jti, times. */
static enum idp_err prepare_claims(const char *kid, struct fmt_token_claims *c, int64_t now,
                                   int64_t lifetime, const char *jti, struct idp_error *err)
{
	size_t n = 0;
	enum idp_err rc;
	if (kid == NULL || !kid_valid(kid, strnlen(kid, FMT_TOKEN_KID_MAX + 1)))
		return idp_error_set(err, IDP_E_ARG,
		                     "token: kid must be 1..%u characters of [A-Za-z0-9._:-]",
		                     FMT_TOKEN_KID_MAX);
	if ((rc = check_text_field(c->iss, sizeof(c->iss), FMT_TOKEN_ISS_MAX, "iss", &n, err)) ||
	    (rc = check_text_field(c->aud, sizeof(c->aud), FMT_TOKEN_AUD_MAX, "aud", &n, err)) ||
	    (rc = check_text_field(c->sub, sizeof(c->sub), FMT_TOKEN_SUB_MAX, "sub", &n, err)) ||
	    (rc = fmt_id_check(c->sub, n, "sub", err)))
		return rc;
	if (c->kind != FMT_TOKEN_PROVISION && c->kind != FMT_TOKEN_DEVICE)
		return idp_error_set(err, IDP_E_ARG, "token: kind %d is unknown", (int)c->kind);
	if (!b64url_exact(c->jkt, strnlen(c->jkt, sizeof(c->jkt)), FMT_TOKEN_JKT_LEN, 32))
		return idp_error_set(err, IDP_E_ARG,
		                     "token: jkt is not a base64url SHA-256 thumbprint");
	if (lifetime == 0)
		lifetime = c->kind == FMT_TOKEN_PROVISION ? FMT_TOKEN_PROVISION_LIFETIME_DEFAULT
		                                          : FMT_TOKEN_DEVICE_LIFETIME_DEFAULT;
	if (lifetime < FMT_TOKEN_LIFETIME_MIN || lifetime > lifetime_max(c->kind))
		return idp_error_set(
		        err, IDP_E_ARG, "token: lifetime %lld s is outside %d..%lld for %s",
		        (long long)lifetime, FMT_TOKEN_LIFETIME_MIN,
		        (long long)lifetime_max(c->kind), fmt_token_kind_name(c->kind));
	if (now < 0 || now > FMT_JSON_INT_MAX - lifetime)
		return idp_error_set(err, IDP_E_ARG, "token: time %lld is out of range",
		                     (long long)now);
	if (jti == NULL) {
		uint8_t r[JTI_BYTES];
		if (RAND_bytes(r, (int)sizeof(r)) != 1)
			return idp_error_ssl(err, IDP_E_CRYPTO, "token: random jti");
		fmt_b64_encode(FMT_B64_URL, r, sizeof(r), c->jti);
	} else {
		size_t jn = strnlen(jti, FMT_TOKEN_JTI_LEN + 1);
		if (!b64url_exact(jti, jn, FMT_TOKEN_JTI_LEN, JTI_BYTES))
			return idp_error_set(err, IDP_E_ARG,
			                     "token: jti is not base64url of %u bytes", JTI_BYTES);
		memcpy(c->jti, jti, FMT_TOKEN_JTI_LEN + 1);
	}
	c->iat = now;
	c->nbf = now;
	c->exp = now + lifetime;
	return IDP_OK;
}

/* The payload JSON, members in a fixed order (the order carries no meaning). */
static enum idp_err build_payload(const struct fmt_token_claims *c, struct fmt_buf *b,
                                  struct idp_error *err)
{
	fmt_buf_add_str(b, "{");
	fmt_json_put_str(b, "iss", c->iss);
	fmt_json_put_str(b, "aud", c->aud);
	fmt_json_put_str(b, "sub", c->sub);
	fmt_json_put_str(b, "kind", fmt_token_kind_name(c->kind));
	fmt_json_put_int(b, "iat", c->iat);
	fmt_json_put_int(b, "nbf", c->nbf);
	fmt_json_put_int(b, "exp", c->exp);
	fmt_json_put_str(b, "jti", c->jti);
	fmt_json_put_key(b, "cnf");
	fmt_buf_add_str(b, "{");
	fmt_json_put_str(b, "jkt", c->jkt);
	fmt_buf_add_str(b, "}}");
	if (fmt_buf_status(b) != IDP_OK)
		return idp_error_set(err, IDP_E_LIMIT, "token: payload longer than %zu bytes",
		                     b->max);
	return IDP_OK;
}

enum idp_err fmt_token_sign(const struct fmt_key *key, const char *kid,
                            struct fmt_token_claims *claims, int64_t now, int64_t lifetime,
                            const char *jti, char **token, size_t *len, struct idp_error *err)
{
	*token = NULL;
	*len = 0;
	enum idp_err rc = prepare_claims(kid, claims, now, lifetime, jti, err);
	if (rc != IDP_OK)
		return rc;
	char header[128];
	int hn = snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
	                  alg_of(fmt_key_type(key)), kid);
	if (hn <= 0 || (size_t)hn >= sizeof(header))
		return idp_error_set(err, IDP_E_ARG, "token: header does not fit");
	char payload[PAYLOAD_ROOM];
	struct fmt_buf pb;
	fmt_buf_init_fixed(&pb, payload, sizeof(payload), sizeof(payload), 0);
	rc = build_payload(claims, &pb, err);
	if (rc != IDP_OK)
		return rc;
	size_t eh = fmt_b64_encoded_len(FMT_B64_URL, (size_t)hn);
	size_t ep = fmt_b64_encoded_len(FMT_B64_URL, pb.len);
	size_t total = eh + 1 + ep + 1 + SIG_B64_LEN;
	if (total > FMT_TOKEN_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "token: %zu bytes, max %u", total,
		                     FMT_TOKEN_MAX);
	char *t = malloc(total + 1);
	if (t == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "token: out of memory");
	fmt_b64_encode(FMT_B64_URL, (const uint8_t *)header, (size_t)hn, t);
	t[eh] = '.';
	fmt_b64_encode(FMT_B64_URL, (const uint8_t *)payload, pb.len, t + eh + 1);
	t[eh + 1 + ep] = '.';
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t sn = 0;
	rc = fmt_key_sign(key, FMT_SIG_RAW, (const uint8_t *)t, eh + 1 + ep, sig, &sn, err);
	if (rc == IDP_OK && sn != FMT_KEY_RAW_SIG_LEN)
		rc = idp_error_set(err, IDP_E_CRYPTO, "token: signature is %zu bytes", sn);
	if (rc != IDP_OK) {
		/* Not yet NUL-terminated at its end: fmt_token_free() cannot be used. */
		OPENSSL_cleanse(t, total + 1);
		free(t);
		return rc;
	}
	fmt_b64_encode(FMT_B64_URL, sig, sn, t + eh + 1 + ep + 1);
	*token = t;
	*len = total;
	return IDP_OK;
}

void fmt_token_free(char *token)
{
	if (token == NULL)
		return;
	OPENSSL_cleanse(token, strlen(token));
	free(token);
}

/* ---------------------------------------------------------------- parsing */

/* A token split into its parts, each decoded. */
struct parts {
	size_t signed_len;                     /* bytes of header.payload, the JWS signing input */
	const uint8_t *header, *payload, *sig; /* into bytes */
	size_t header_len, payload_len, sig_len, used;
	uint8_t bytes[PARTS_MAX];
};

/* Decode s[0..n) into the free room of p->bytes; *out points at it. */
static enum idp_err decode_part(struct parts *p, const char *s, size_t n, const char *what,
                                const uint8_t **out, size_t *out_len, struct idp_error *err)
{
	uint8_t *dst = p->bytes + p->used;
	enum idp_err rc =
	        fmt_b64_decode(FMT_B64_URL, s, n, dst, sizeof(p->bytes) - p->used, out_len, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "token: %s", what);
		return rc == IDP_E_LIMIT ? rc : IDP_E_FORMAT;
	}
	*out = dst;
	p->used += *out_len;
	return IDP_OK;
}

/* Cleanse (the decoded parts reassemble the bearer token) and free. */
static void parts_free(struct parts *p)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p->bytes, p->used);
	free(p);
}

/* Size and structure: three parts, each canonical base64url, the first two
 * not empty. */
static enum idp_err split(const uint8_t *buf, size_t len, struct parts *p,
                          enum fmt_token_check *chk, struct idp_error *err)
{
	*chk = FMT_TOKEN_CHECK_SIZE;
	if (len == 0)
		return idp_error_set(err, IDP_E_FORMAT, "token: empty");
	if (len > FMT_TOKEN_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "token: %zu bytes, max %u", len,
		                     FMT_TOKEN_MAX);
	*chk = FMT_TOKEN_CHECK_STRUCTURE;
	const char *s = (const char *)buf;
	size_t dot[2], ndots = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '.')
			continue;
		if (ndots == 2)
			return idp_error_set(err, IDP_E_FORMAT, "token: more than three parts");
		dot[ndots++] = i;
	}
	if (ndots != 2)
		return idp_error_set(err, IDP_E_FORMAT, "token: %zu parts, expected 3", ndots + 1);
	if (dot[0] == 0 || dot[1] == dot[0] + 1)
		return idp_error_set(err, IDP_E_FORMAT, "token: empty %s",
		                     dot[0] == 0 ? "header" : "payload");
	enum idp_err rc;
	if ((rc = decode_part(p, s, dot[0], "header", &p->header, &p->header_len, err)) ||
	    (rc = decode_part(p, s + dot[0] + 1, dot[1] - dot[0] - 1, "payload", &p->payload,
	                      &p->payload_len, err)) ||
	    (rc = decode_part(p, s + dot[1] + 1, len - dot[1] - 1, "signature", &p->sig,
	                      &p->sig_len, err)))
		return rc;
	p->signed_len = dot[1];
	return IDP_OK;
}

/* Header, alg allow-list, kid, alg against the key's type; *key gets the key. */
static enum idp_err check_header(const struct parts *p, const struct fmt_token_key *keys,
                                 size_t nkeys, const struct fmt_key **key,
                                 enum fmt_token_check *chk, struct idp_error *err)
{
	static const char *const allowed[] = {"alg", "typ", "kid"};
	*chk = FMT_TOKEN_CHECK_HEADER;
	cJSON *h = NULL;
	enum idp_err rc = fmt_json_parse(p->header, p->header_len, 1, &h, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "token header");
		return rc;
	}
	const char *alg, *typ, *kid;
	size_t alen, tlen, klen;
	if (!cJSON_IsObject(h)) {
		rc = idp_error_set(err, IDP_E_FORMAT, "token header: not an object");
		goto out;
	}
	/* crit, jku, jwk, x5u, x5c, cty, b64, zip, ...: all refused here. */
	if ((rc = fmt_json_only_keys(h, allowed, sizeof(allowed) / sizeof(allowed[0]), err)) ||
	    (rc = fmt_json_get_string(h, "typ", true, false, 8, &typ, &tlen, err)) ||
	    (rc = fmt_json_get_string(h, "alg", true, false, 64, &alg, &alen, err)) ||
	    (rc = fmt_json_get_string(h, "kid", true, false, FMT_TOKEN_KID_MAX, &kid, &klen,
	                              err))) {
		idp_error_prefix(err, "token header");
		goto out;
	}
	if (tlen != 3 || memcmp(typ, "JWT", 3) != 0) {
		rc = idp_error_set(err, IDP_E_FORMAT, "token header: typ is not \"JWT\"");
		goto out;
	}
	if (!kid_valid(kid, klen)) {
		rc = idp_error_set(err, IDP_E_FORMAT,
		                   "token header: kid has characters outside "
		                   "[A-Za-z0-9._:-]");
		goto out;
	}
	*chk = FMT_TOKEN_CHECK_ALG;
	bool es256 = alen == 5 && memcmp(alg, "ES256", 5) == 0;
	bool eddsa = alen == 5 && memcmp(alg, "EdDSA", 5) == 0;
	if (!es256 && !eddsa) {
		if (alen <= ALG_SHOW_MAX && printable(alg, alen))
			rc = idp_error_set(err, IDP_E_UNSUPPORTED,
			                   "token: alg \"%.*s\" is not allowed (ES256, EdDSA)",
			                   (int)alen, alg);
		else
			rc = idp_error_set(err, IDP_E_UNSUPPORTED,
			                   "token: alg is not allowed (ES256, EdDSA)");
		goto out;
	}
	*chk = FMT_TOKEN_CHECK_KID;
	*key = NULL;
	for (size_t i = 0; i < nkeys && *key == NULL; i++)
		if (strlen(keys[i].kid) == klen && memcmp(keys[i].kid, kid, klen) == 0)
			*key = keys[i].key;
	if (*key == NULL) {
		rc = idp_error_set(err, IDP_E_NOTFOUND, "token: kid \"%.*s\" is not a known key",
		                   (int)klen, kid);
		goto out;
	}
	*chk = FMT_TOKEN_CHECK_ALG;
	enum fmt_key_type want = es256 ? FMT_KEY_P256 : FMT_KEY_ED25519;
	if (fmt_key_type(*key) != want) {
		rc = idp_error_set(err, IDP_E_UNSUPPORTED,
		                   "token: alg %s does not fit key \"%.*s\" (%s, needs %s)",
		                   es256 ? "ES256" : "EdDSA", (int)klen, kid,
		                   fmt_key_type_name(fmt_key_type(*key)),
		                   alg_of(fmt_key_type(*key)));
		goto out;
	}
out:
	cJSON_Delete(h);
	return rc;
}

static enum idp_err check_signature(const uint8_t *buf, const struct parts *p,
                                    const struct fmt_key *key, struct idp_error *err)
{
	if (p->sig_len != FMT_KEY_RAW_SIG_LEN)
		return idp_error_set(err, IDP_E_VERIFY,
		                     "token: signature is %zu bytes, expected %u", p->sig_len,
		                     FMT_KEY_RAW_SIG_LEN);
	/* fmt_key_sign makes low-s signatures; the twin (r, n - s) is refused. */
	if (fmt_key_sig_high_s(key, p->sig, p->sig_len))
		return idp_error_set(err, IDP_E_VERIFY, "token: ecdsa signature is not low-s");
	enum idp_err rc =
	        fmt_key_verify(key, FMT_SIG_RAW, buf, p->signed_len, p->sig, p->sig_len, err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "token");
	return rc;
}

/* A required string claim into a fixed-size field. */
static enum idp_err get_text(const cJSON *o, const char *name, size_t max, char *dst,
                             struct idp_error *err)
{
	const char *s;
	size_t n;
	enum idp_err rc = fmt_json_get_string(o, name, true, false, max, &s, &n, err);
	if (rc != IDP_OK)
		return rc;
	if (!text_valid(s, n))
		return idp_error_set(err, IDP_E_FORMAT, "%s: has control characters", name);
	memcpy(dst, s, n);
	dst[n] = '\0';
	return IDP_OK;
}

/* A required claim of exactly len canonical base64url characters of bytes bytes. */
static enum idp_err get_b64(const cJSON *o, const char *name, size_t len, size_t bytes, char *dst,
                            struct idp_error *err)
{
	const char *s;
	size_t n;
	enum idp_err rc = fmt_json_get_string(o, name, true, false, len, &s, &n, err);
	if (rc != IDP_OK)
		return rc;
	if (!b64url_exact(s, n, len, bytes))
		return idp_error_set(err, IDP_E_FORMAT, "%s: not %zu characters of base64url", name,
		                     len);
	memcpy(dst, s, n + 1);
	return IDP_OK;
}

/* Payload: every claim present, typed and bounded; no other claim. */
static enum idp_err parse_claims(const struct parts *p, struct fmt_token_claims *c,
                                 struct idp_error *err)
{
	static const char *const allowed[] = {"iss", "aud", "sub", "kind", "iat",
	                                      "nbf", "exp", "jti", "cnf"};
	static const char *const cnf_allowed[] = {"jkt"};
	memset(c, 0, sizeof(*c));
	cJSON *o = NULL;
	enum idp_err rc = fmt_json_parse(p->payload, p->payload_len, 2, &o, err);
	if (rc != IDP_OK)
		goto out;
	if (!cJSON_IsObject(o)) {
		rc = idp_error_set(err, IDP_E_FORMAT, "not an object");
		goto out;
	}
	const cJSON *cnf = NULL;
	const char *kind;
	size_t klen;
	if ((rc = fmt_json_only_keys(o, allowed, sizeof(allowed) / sizeof(allowed[0]), err)) ||
	    (rc = get_text(o, "iss", FMT_TOKEN_ISS_MAX, c->iss, err)) ||
	    (rc = get_text(o, "aud", FMT_TOKEN_AUD_MAX, c->aud, err)) ||
	    (rc = get_text(o, "sub", FMT_TOKEN_SUB_MAX, c->sub, err)) ||
	    (rc = fmt_id_check(c->sub, strlen(c->sub), "sub", err)) ||
	    (rc = fmt_json_get_string(o, "kind", true, false, 16, &kind, &klen, err)) ||
	    (rc = fmt_json_get_int(o, "iat", true, 0, FMT_JSON_INT_MAX, &c->iat, NULL, err)) ||
	    (rc = fmt_json_get_int(o, "nbf", true, 0, FMT_JSON_INT_MAX, &c->nbf, NULL, err)) ||
	    (rc = fmt_json_get_int(o, "exp", true, 0, FMT_JSON_INT_MAX, &c->exp, NULL, err)) ||
	    (rc = get_b64(o, "jti", FMT_TOKEN_JTI_LEN, JTI_BYTES, c->jti, err)) ||
	    (rc = fmt_json_get_object(o, "cnf", true, &cnf, err)))
		goto out;
	if ((rc = fmt_json_only_keys(cnf, cnf_allowed, 1, err)) ||
	    (rc = get_b64(cnf, "jkt", FMT_TOKEN_JKT_LEN, 32, c->jkt, err))) {
		idp_error_prefix(err, "cnf");
		goto out;
	}
	c->kind = fmt_token_kind_of(kind, klen);
	if (c->kind == 0) {
		rc = idp_error_set(err, IDP_E_FORMAT, "kind: not \"provisioning\" or \"device\"");
		goto out;
	}
	if (c->nbf < c->iat || c->exp <= c->nbf)
		rc = idp_error_set(err, IDP_E_FORMAT,
		                   "times: need iat <= nbf < exp, got %lld, %lld, "
		                   "%lld",
		                   (long long)c->iat, (long long)c->nbf, (long long)c->exp);
out:
	cJSON_Delete(o);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "token claims");
		memset(c, 0, sizeof(*c));
	}
	return rc;
}

/* The checks of the claims against the policy, in the documented order. */
static enum idp_err check_claims(const struct fmt_token_claims *c,
                                 const struct fmt_token_policy *pol, enum fmt_token_check *chk,
                                 struct idp_error *err)
{
	*chk = FMT_TOKEN_CHECK_ISS;
	if (strcmp(c->iss, pol->iss) != 0)
		return idp_error_set(err, IDP_E_DENIED, "token: issuer \"%s\" is not \"%s\"",
		                     c->iss, pol->iss);
	*chk = FMT_TOKEN_CHECK_AUD;
	if (strcmp(c->aud, pol->aud) != 0)
		return idp_error_set(err, IDP_E_DENIED, "token: audience \"%s\" is not \"%s\"",
		                     c->aud, pol->aud);
	*chk = FMT_TOKEN_CHECK_KIND;
	if ((pol->kinds & (unsigned)c->kind) == 0)
		return idp_error_set(err, IDP_E_DENIED, "token: a %s token is not accepted here",
		                     fmt_token_kind_name(c->kind));
	*chk = FMT_TOKEN_CHECK_SUB;
	if (pol->sub != NULL && strcmp(c->sub, pol->sub) != 0)
		return idp_error_set(err, IDP_E_DENIED, "token: subject \"%s\" is not \"%s\"",
		                     c->sub, pol->sub);
	*chk = FMT_TOKEN_CHECK_NOT_YET;
	if (c->nbf > pol->now + FMT_TOKEN_SKEW)
		return idp_error_set(err, IDP_E_EXPIRED,
		                     "token: not valid before %lld (now %lld, skew %d s)",
		                     (long long)c->nbf, (long long)pol->now, FMT_TOKEN_SKEW);
	*chk = FMT_TOKEN_CHECK_EXPIRED;
	if (pol->now - FMT_TOKEN_SKEW >= c->exp)
		return idp_error_set(err, IDP_E_EXPIRED,
		                     "token: expired at %lld (now %lld, skew %d s)",
		                     (long long)c->exp, (long long)pol->now, FMT_TOKEN_SKEW);
	*chk = FMT_TOKEN_CHECK_LIFETIME;
	int64_t life = c->exp - c->iat;
	if (life < FMT_TOKEN_LIFETIME_MIN || life > lifetime_max(c->kind))
		return idp_error_set(err, IDP_E_DENIED,
		                     "token: lifetime %lld s is outside %d..%lld for a %s token",
		                     (long long)life, FMT_TOKEN_LIFETIME_MIN,
		                     (long long)lifetime_max(c->kind),
		                     fmt_token_kind_name(c->kind));
	*chk = FMT_TOKEN_CHECK_CNF;
	if (pol->jkt != NULL && CRYPTO_memcmp(c->jkt, pol->jkt, sizeof(c->jkt)) != 0)
		return idp_error_set(err, IDP_E_DENIED,
		                     "token: not bound to this device key (cnf.jkt)");
	*chk = FMT_TOKEN_CHECK_OK;
	return IDP_OK;
}

static enum idp_err check_args(const struct fmt_token_key *keys, size_t nkeys,
                               const struct fmt_token_policy *pol, struct idp_error *err)
{
	if (keys == NULL || nkeys == 0 || nkeys > FMT_TOKEN_KEYS_MAX)
		return idp_error_set(err, IDP_E_ARG, "token: key set needs 1..%u keys",
		                     FMT_TOKEN_KEYS_MAX);
	for (size_t i = 0; i < nkeys; i++) {
		if (keys[i].key == NULL || keys[i].kid == NULL ||
		    !kid_valid(keys[i].kid, strnlen(keys[i].kid, FMT_TOKEN_KID_MAX + 1)))
			return idp_error_set(err, IDP_E_ARG, "token: key set entry %zu is invalid",
			                     i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(keys[i].kid, keys[j].kid) == 0)
				return idp_error_set(err, IDP_E_ARG,
				                     "token: kid \"%s\" twice in the key set",
				                     keys[i].kid);
	}
	if (pol == NULL || pol->iss == NULL || pol->aud == NULL)
		return idp_error_set(err, IDP_E_ARG, "token: policy needs iss and aud");
	if (pol->kinds == 0 || (pol->kinds & ~(unsigned)(FMT_TOKEN_PROVISION | FMT_TOKEN_DEVICE)))
		return idp_error_set(err, IDP_E_ARG, "token: policy kinds 0x%x is invalid",
		                     pol->kinds);
	if (pol->now < 0 || pol->now > FMT_JSON_INT_MAX)
		return idp_error_set(err, IDP_E_ARG, "token: policy time is out of range");
	if (pol->jkt != NULL && strnlen(pol->jkt, FMT_TOKEN_JKT_LEN + 1) != FMT_TOKEN_JKT_LEN)
		return idp_error_set(err, IDP_E_ARG, "token: policy jkt is not %u characters",
		                     FMT_TOKEN_JKT_LEN);
	return IDP_OK;
}

enum idp_err fmt_token_verify(const uint8_t *buf, size_t len, const struct fmt_token_key *keys,
                              size_t nkeys, const struct fmt_token_policy *policy,
                              struct fmt_token_claims *out, enum fmt_token_check *failed,
                              struct idp_error *err)
{
	enum fmt_token_check chk = FMT_TOKEN_CHECK_ARGS;
	struct fmt_token_claims c;
	memset(&c, 0, sizeof(c));
	struct parts *p = calloc(1, sizeof(*p));
	enum idp_err rc;
	const struct fmt_key *key = NULL;
	if (p == NULL) {
		rc = idp_error_set(err, IDP_E_NOMEM, "token: out of memory");
		goto out;
	}
	if ((rc = check_args(keys, nkeys, policy, err)) || (rc = split(buf, len, p, &chk, err)) ||
	    (rc = check_header(p, keys, nkeys, &key, &chk, err)))
		goto out;
	chk = FMT_TOKEN_CHECK_SIGNATURE;
	if ((rc = check_signature(buf, p, key, err)))
		goto out;
	chk = FMT_TOKEN_CHECK_CLAIMS;
	if ((rc = parse_claims(p, &c, err)) || (rc = check_claims(&c, policy, &chk, err)))
		goto out;
out:
	parts_free(p);
	if (rc != IDP_OK)
		memset(&c, 0, sizeof(c));
	if (out != NULL)
		*out = c;
	if (failed != NULL)
		*failed = rc == IDP_OK ? FMT_TOKEN_CHECK_OK : chk;
	return rc;
}

enum idp_err fmt_token_decode_unverified(const uint8_t *buf, size_t len,
                                         struct fmt_token_claims *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	struct parts *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "token: out of memory");
	enum fmt_token_check chk;
	enum idp_err rc = split(buf, len, p, &chk, err);
	if (rc == IDP_OK && p->sig_len != FMT_KEY_RAW_SIG_LEN)
		rc = idp_error_set(err, IDP_E_FORMAT, "token: signature is %zu bytes, expected %u",
		                   p->sig_len, FMT_KEY_RAW_SIG_LEN);
	if (rc == IDP_OK)
		rc = parse_claims(p, out, err);
	parts_free(p);
	return rc;
}

int64_t fmt_token_renew_at(const struct fmt_token_claims *claims)
{
	return claims->iat + (claims->exp - claims->iat) / 2;
}
