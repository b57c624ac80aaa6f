/*
 * token.h - device tokens: JWT in JWS compact form, signed with ES256 (P-256)
 * or EdDSA (Ed25519), bound to the device key by cnf.jkt (RFC 7800, RFC 7638).
 * Spec: formats/token.md.
 *
 * The verifier is strict: one header shape, an algorithm that must be the one
 * the selected key's type implies, a closed set of typed claims, and it says
 * which check failed. Pure: no I/O, logging or globals (the only outside input
 * is OpenSSL's RAND_bytes for jti); every function is thread-safe.
 *
 * WARNING: a token is a bearer credential. Tokens returned here are freed with
 * fmt_token_free(), which cleanses them; never log one.
 */
#ifndef IDP_FORMATS_TOKEN_H
#define IDP_FORMATS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/id.h"
#include "formats/keys.h"

#define FMT_TOKEN_MAX          4096u /* bytes of a whole compact token */
#define FMT_TOKEN_KID_MAX      64u   /* bytes of kid: [A-Za-z0-9._:-] */
#define FMT_TOKEN_ISS_MAX      255u  /* bytes of iss */
#define FMT_TOKEN_AUD_MAX      255u  /* bytes of aud */
#define FMT_TOKEN_SUB_MAX      FMT_ID_MAX /* sub is a device ID: formats/id.h */
#define FMT_TOKEN_JTI_LEN      22u   /* base64url of 16 random bytes */
#define FMT_TOKEN_JKT_LEN      43u   /* base64url of a SHA-256 thumbprint */
#define FMT_TOKEN_KEYS_MAX     16u   /* most keys in one verification key set */
#define FMT_TOKEN_JWKS_MAX     8192u /* bytes of a JWK Set of FMT_TOKEN_KEYS_MAX keys */
#define FMT_TOKEN_SKEW         60    /* seconds of clock skew allowed on iat/nbf/exp */
#define FMT_TOKEN_LIFETIME_MIN 60    /* seconds; shortest exp - iat */

#define FMT_TOKEN_PROVISION_LIFETIME_DEFAULT 300      /* 5 minutes */
#define FMT_TOKEN_PROVISION_LIFETIME_MAX     900      /* 15 minutes */
#define FMT_TOKEN_DEVICE_LIFETIME_DEFAULT    2592000  /* 30 days */
#define FMT_TOKEN_DEVICE_LIFETIME_MAX        31622400 /* 366 days */

/* Token kinds; the values are bits so that a policy can accept several. */
enum fmt_token_kind {
	FMT_TOKEN_PROVISION = 1, /* "provisioning": short-lived, only exchanged for a device token */
	FMT_TOKEN_DEVICE = 2,    /* "device": the normal token, renewed at half its lifetime */
};

/* Which check refused a token (fmt_token_verify); distinct from the error code
 * so that callers and tests can tell the checks apart. */
enum fmt_token_check {
	FMT_TOKEN_CHECK_OK = 0,
	FMT_TOKEN_CHECK_ARGS,      /* the caller's key set or policy is invalid (IDP_E_ARG) */
	FMT_TOKEN_CHECK_SIZE,      /* empty, or longer than FMT_TOKEN_MAX */
	FMT_TOKEN_CHECK_STRUCTURE, /* not three canonical base64url parts */
	FMT_TOKEN_CHECK_HEADER,    /* header not JSON, wrong typ, unknown or extra members */
	FMT_TOKEN_CHECK_ALG,       /* alg not allowed, or not the one the key's type implies */
	FMT_TOKEN_CHECK_KID,       /* kid names no key of the set */
	FMT_TOKEN_CHECK_SIGNATURE, /* signature does not verify (or is high-S ECDSA) */
	FMT_TOKEN_CHECK_CLAIMS,    /* payload not JSON, a claim missing, mistyped, unknown */
	FMT_TOKEN_CHECK_ISS,       /* issuer is not the expected one */
	FMT_TOKEN_CHECK_AUD,       /* audience is not the expected one */
	FMT_TOKEN_CHECK_KIND,      /* kind is not one the caller accepts */
	FMT_TOKEN_CHECK_SUB,       /* subject is not the expected device */
	FMT_TOKEN_CHECK_NOT_YET,   /* nbf or iat is later than now + skew */
	FMT_TOKEN_CHECK_EXPIRED,   /* exp is at or before now - skew */
	FMT_TOKEN_CHECK_LIFETIME,  /* exp - iat outside what the kind allows */
	FMT_TOKEN_CHECK_CNF,       /* cnf.jkt is not the expected device key */
};

/* The claims of a token. Strings are NUL-terminated copies. */
struct fmt_token_claims {
	char iss[FMT_TOKEN_ISS_MAX + 1];
	char aud[FMT_TOKEN_AUD_MAX + 1];
	char sub[FMT_TOKEN_SUB_MAX + 1];
	char jti[FMT_TOKEN_JTI_LEN + 1];
	char jkt[FMT_TOKEN_JKT_LEN + 1]; /* cnf.jkt */
	enum fmt_token_kind kind;
	int64_t iat, nbf, exp; /* seconds since the epoch (UTC) */
};

/* One verification key: kid (NUL-terminated) and the public key (borrowed). */
struct fmt_token_key {
	const char *kid;
	const struct fmt_key *key;
};

/* What a verifier requires. iss and aud are required (NUL-terminated); sub and
 * jkt are checked when not NULL. kinds is a non-empty OR of fmt_token_kind. */
struct fmt_token_policy {
	const char *iss;
	const char *aud;
	const char *sub;
	const char *jkt;
	unsigned kinds;
	int64_t now; /* seconds since the epoch (UTC) */
};

/* RFC 7638 JWK thumbprint of key's public half, base64url (43 characters and a
 * NUL in out). */
IDP_MUST_CHECK enum idp_err fmt_token_jkt(const struct fmt_key *key,
                                          char out[static FMT_TOKEN_JKT_LEN + 1],
                                          struct idp_error *err);

/* The JWK Set (RFC 7517 section 5) of the public halves of keys[0..nkeys)
 * (nkeys <= FMT_TOKEN_KEYS_MAX): {"keys":[...]}, one JWK per key in order,
 * P-256 as {"kty":"EC","crv":"P-256","x","y"} (RFC 7518 section 6.2),
 * Ed25519 as {"kty":"OKP","crv":"Ed25519","x"} (RFC 8037), each with its
 * "kid", "use":"sig" and "alg" (ES256 / EdDSA). *out gets a new
 * NUL-terminated string of *len bytes (free()); NULL on failure. IDP_E_ARG
 * for a missing key or a bad kid. Spec: formats/token.md, "Key set". */
IDP_MUST_CHECK enum idp_err fmt_token_jwks_encode(const struct fmt_token_key *keys, size_t nkeys,
                                                  char **out, size_t *len,
                                                  struct idp_error *err);

/* Sign a token with key (alg ES256 for P-256, EdDSA for Ed25519) under kid.
 * claims is in/out: the caller sets iss, aud, sub, kind and jkt; this sets
 * iat = nbf = now, exp = now + lifetime (0: the kind's default) and jti: a
 * fresh random one when jti is NULL (always, outside tests), else a copy of
 * jti (22 base64url characters; for known-answer tests). *token gets a new
 * NUL-terminated token of *len bytes; free it with fmt_token_free().
 * IDP_E_ARG names a bad claim, kid, jti or lifetime. */
IDP_MUST_CHECK enum idp_err fmt_token_sign(const struct fmt_key *key, const char *kid,
                                           struct fmt_token_claims *claims, int64_t now,
                                           int64_t lifetime, const char *jti, char **token,
                                           size_t *len, struct idp_error *err);

/* Verify buf[0..len) (need not be NUL-terminated) against the key set
 * keys[0..nkeys) and policy. IDP_OK fills *out (may be NULL). On refusal *failed
 * (may be NULL) names the check, err says why, and *out is zeroed. Codes:
 * IDP_E_LIMIT (too long, or an oversized part or claim), IDP_E_FORMAT (empty,
 * structure, header, claims), IDP_E_UNSUPPORTED (alg), IDP_E_NOTFOUND (kid), IDP_E_VERIFY
 * (signature), IDP_E_DENIED (iss, aud, kind, sub, lifetime, cnf), IDP_E_EXPIRED (not yet valid,
 * expired), IDP_E_ARG (bad key set or policy). */
IDP_MUST_CHECK enum idp_err fmt_token_verify(const uint8_t *buf, size_t len,
                                             const struct fmt_token_key *keys, size_t nkeys,
                                             const struct fmt_token_policy *policy,
                                             struct fmt_token_claims *out,
                                             enum fmt_token_check *failed, struct idp_error *err);

/* WARNING: no signature, issuer, audience or time check. For the device agent,
 * which holds no verification key and only needs its own token's times: checks
 * the structure and decodes the claims (all present and typed) into *out. */
IDP_MUST_CHECK enum idp_err fmt_token_decode_unverified(const uint8_t *buf, size_t len,
                                                        struct fmt_token_claims *out,
                                                        struct idp_error *err);

/* When to renew: iat + (exp - iat) / 2 (half the lifetime). */
int64_t fmt_token_renew_at(const struct fmt_token_claims *claims);

/* "provisioning" or "device" ("unknown" for other values). The one token
 * kind enum and its names: API answers (formats/api.h), the server's token
 * rows and the agent's state use them too. */
const char *fmt_token_kind_name(enum fmt_token_kind kind);

/* The kind named s[0..len) ("provisioning", "device"), or 0 when none is. */
enum fmt_token_kind fmt_token_kind_of(const char *s, size_t len);

/* Short stable name of a check ("signature", "expired", ...); never NULL. */
const char *fmt_token_check_name(enum fmt_token_check check);

/* Cleanse and free a token from fmt_token_sign(). NULL is a no-op. */
void fmt_token_free(char *token);

#endif /* IDP_FORMATS_TOKEN_H */
