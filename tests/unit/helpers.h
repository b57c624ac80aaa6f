/*
 * helpers.h - fixtures shared by the unit tests (linked into every one):
 * known edwards25519 encodings that must be refused, and ECDSA signature
 * spellings that must be refused. Known-answer data, written from RFC 8032
 * and checked independently in test_keys.c; not taken from formats/. And a
 * JWK-to-key conversion written without formats/token.c. And the one
 * test certificate maker (idp_test_cert).
 */
#ifndef IDP_TESTS_UNIT_HELPERS_H
#define IDP_TESTS_UNIT_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cjson/cJSON.h>

#include "formats/keys.h"

#define IDP_TEST_SMALL_ORDER_N    8u /* the whole torsion subgroup of edwards25519 */
#define IDP_TEST_NONCANONICAL_N   6u
#define IDP_TEST_ED25519_SPKI_LEN 44u

/* The eight points of order 1, 2, 4, 8 in canonical encoding; [0] is the
 * identity 01 00..00. */
extern const uint8_t idp_test_small_order[IDP_TEST_SMALL_ORDER_N][32];

/* Encodings RFC 8032 decoding refuses: y >= p (p, p + 1, 2^255 - 1, p with
 * the sign bit) and x = 0 with the sign bit set (y = 1, y = p - 1). */
extern const uint8_t idp_test_noncanonical[IDP_TEST_NONCANONICAL_N][32];

/* The canonical Ed25519 SPKI DER of the 32 key bytes pub. */
void idp_test_ed25519_spki(const uint8_t pub[static 32],
                           uint8_t out[static IDP_TEST_ED25519_SPKI_LEN]);

/* The SPKI DER of a freshly generated key of type t into out; its length. */
size_t idp_test_fresh_spki(enum fmt_key_type t, uint8_t out[static FMT_KEY_SPKI_MAX]);

/* sig (P-256 r||s) -> its malleable twin (r, n - s). */
void idp_test_ecdsa_twin(uint8_t sig[static 64]);

/* Plain OpenSSL verification of a raw signature (P-256 r||s over SHA-256, or
 * Ed25519) by pkey: 1 when it verifies, 0 when not. No project code. */
int idp_test_ossl_verify_raw(EVP_PKEY *pkey, const uint8_t *msg, size_t len,
                             const uint8_t sig[static 64]);

/* The public key a JWK (RFC 7517) describes, rebuilt independently of
 * formats/token.c: the SPKI DER is assembled from the fixed P-256 / Ed25519
 * prefixes and the JWK's x (and y), then parsed. Only {"kty":"EC",
 * "crv":"P-256"} and {"kty":"OKP","crv":"Ed25519"} are known. NULL for any
 * other or malformed JWK. Caller frees with fmt_key_free(). */
struct fmt_key *idp_test_jwk_key(const cJSON *jwk);

/* What idp_test_cert() makes; a zero field takes its default. */
struct idp_test_cert_spec {
	const char *const *cns; /* commonNames; none: an O entry "no cn" instead */
	size_t ncn;
	X509 *issuer;           /* NULL: self-signed */
	EVP_PKEY *issuer_key;   /* NULL: the certificate's own key */
	bool ca;                /* basicConstraints critical,CA:TRUE (else CA:FALSE) */
	bool no_ext;            /* no extensions at all (overrides ca, key_usage, san) */
	const char *key_usage;  /* keyUsage value, e.g. "critical,digitalSignature" */
	const char *san;        /* subjectAltName value, e.g. "IP:127.0.0.1" */
	long serial;            /* 0: a fresh one per call */
	long valid_from;        /* seconds relative to now; 0: -3600 */
	long valid_for;         /* seconds after now; 0: one day */
};

/* A version 3 certificate for key as spec says, signed with SHA-256. Fails
 * the running test on any OpenSSL error. Caller frees. */
X509 *idp_test_cert(EVP_PKEY *key, const struct idp_test_cert_spec *spec);

/* A certificate with the one commonName cn for key, signed by issuer_key
 * (self-signed when issuer is NULL); ca as in struct idp_test_cert_spec. */
X509 *idp_test_cert_cn(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                       bool ca);

#endif /* IDP_TESTS_UNIT_HELPERS_H */
