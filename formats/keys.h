/*
 * keys.h - device and station keys: ECDSA P-256 and Ed25519 only.
 * Spec: formats/keys.md.
 *
 * Generation, PEM (PKCS#8 private, SPKI public) and SPKI DER encodings, the
 * SHA-256 fingerprint of the SPKI DER, and signatures in two encodings:
 * "der" (ECDSA-SHA256 as X9.62 DER, Ed25519 as its 64 bytes: what the stock
 * openssl command makes) and "raw" (ECDSA as 64-byte R||S, Ed25519 as its 64
 * bytes: what JWS and the wire protocol carry). Any other key type is refused.
 *
 * Pure (no I/O; see keyfile.h for files). A struct fmt_key may be used from
 * several threads at once for signing and verifying.
 */
#ifndef IDP_FORMATS_KEYS_H
#define IDP_FORMATS_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "formats/error.h"

#define FMT_KEY_FINGERPRINT_LEN 32u  /* SHA-256 of the SPKI DER */
#define FMT_KEY_SPKI_MAX        128u /* P-256 SPKI is 91 bytes, Ed25519 44 */
#define FMT_KEY_SIG_MAX         80u  /* DER ECDSA P-256 is at most 72 bytes */
#define FMT_KEY_RAW_SIG_LEN     64u  /* R||S, or an Ed25519 signature */
#define FMT_KEY_PEM_MAX         8192u /* longest key PEM accepted */

enum fmt_key_type {
	FMT_KEY_P256 = 1,    /* ECDSA over NIST P-256 (prime256v1) with SHA-256 */
	FMT_KEY_ED25519 = 2, /* Ed25519 (pure EdDSA) */
};

enum fmt_sig_enc {
	FMT_SIG_DER, /* ECDSA: DER SEQUENCE{r,s}; Ed25519: 64 bytes */
	FMT_SIG_RAW, /* ECDSA: 32-byte r || 32-byte s; Ed25519: 64 bytes */
};

struct fmt_key; /* opaque; public key, and private key when loaded or generated */

/* Generate a new key pair. Caller frees *out with fmt_key_free(). */
IDP_MUST_CHECK enum idp_err fmt_key_generate(enum fmt_key_type type, struct fmt_key **out,
                                             struct idp_error *err);

/* Parse a PKCS#8 private key PEM ("-----BEGIN PRIVATE KEY-----"; "EC PRIVATE
 * KEY" is accepted for P-256). Encrypted keys and other types are refused.
 * Caller frees *out; NULL on failure. */
IDP_MUST_CHECK enum idp_err fmt_key_parse_private_pem(const uint8_t *buf, size_t len,
                                                      struct fmt_key **out,
                                                      struct idp_error *err);

/* Parse an SPKI public key PEM ("-----BEGIN PUBLIC KEY-----"). */
IDP_MUST_CHECK enum idp_err fmt_key_parse_public_pem(const uint8_t *buf, size_t len,
                                                     struct fmt_key **out, struct idp_error *err);

/* Parse SPKI DER. The whole of buf must be one SPKI, re-encoding to the same
 * bytes (so a key has exactly one accepted encoding). Every parser and
 * constructor here refuses an Ed25519 public key of small order ("key:
 * ed25519 public key is of small order") or in a non-canonical encoding
 * ("... is not canonical"), IDP_E_FORMAT: anyone can sign for such a key. */
IDP_MUST_CHECK enum idp_err fmt_key_parse_spki_der(const uint8_t *buf, size_t len,
                                                   struct fmt_key **out, struct idp_error *err);

/* Check that buf[0..len) is the canonical SPKI DER of a P-256 key (a point
 * on the curve, uncompressed) or of an Ed25519 key, without building a key:
 * OpenSSL 3.0's d2i_PUBKEY costs about 250 us a call, this about 3 us, for
 * readers that check a key per device. p256 may be a P-256 group the caller
 * keeps for repeated calls (see fmt_key_p256_group), or NULL (the curve
 * equation is then checked with plain modular arithmetic, also about 3 us).
 * *type gets the key type. Refusals carry the same errors as
 * fmt_key_parse_spki_der. */
IDP_MUST_CHECK enum idp_err fmt_key_spki_check(const uint8_t *buf, size_t len,
                                               const EC_GROUP *p256, enum fmt_key_type *type,
                                               struct idp_error *err);

/* A new P-256 group for fmt_key_spki_check; free with EC_GROUP_free().
 * NULL when out of memory. */
EC_GROUP *fmt_key_p256_group(void);

/* Private key as PKCS#8 PEM in a new NUL-terminated buffer; free it with
 * fmt_key_free_secret(*pem, *len). IDP_E_ARG when key has no private half. */
IDP_MUST_CHECK enum idp_err fmt_key_private_pem(const struct fmt_key *key, char **pem, size_t *len,
                                                struct idp_error *err);

/* Public key as SPKI PEM in a new NUL-terminated buffer; caller free()s. */
IDP_MUST_CHECK enum idp_err fmt_key_public_pem(const struct fmt_key *key, char **pem, size_t *len,
                                               struct idp_error *err);

/* Public key as SPKI DER into out; *len gets its length. The bytes are
 * taken once when the key is made (a key never changes), so this is a copy. */
IDP_MUST_CHECK enum idp_err fmt_key_spki_der(const struct fmt_key *key,
                                             uint8_t out[static FMT_KEY_SPKI_MAX], size_t *len,
                                             struct idp_error *err);

/* SHA-256 of the SPKI DER. */
IDP_MUST_CHECK enum idp_err fmt_key_fingerprint(const struct fmt_key *key,
                                                uint8_t out[static FMT_KEY_FINGERPRINT_LEN],
                                                struct idp_error *err);

/* Lower-case hex of a fingerprint into out (65 bytes with the NUL). */
void fmt_key_fingerprint_hex(const uint8_t fp[static FMT_KEY_FINGERPRINT_LEN], char out[static 65]);

/* Sign msg[0..len) (ECDSA hashes with SHA-256; Ed25519 signs msg itself).
 * *sig_len gets the length. ECDSA signatures always have a low s (s <= n/2),
 * in both encodings. IDP_E_ARG when key has no private half. */
IDP_MUST_CHECK enum idp_err fmt_key_sign(const struct fmt_key *key, enum fmt_sig_enc enc,
                                         const uint8_t *msg, size_t len,
                                         uint8_t sig[static FMT_KEY_SIG_MAX], size_t *sig_len,
                                         struct idp_error *err);

/* Verify sig over msg. IDP_OK when it matches; IDP_E_VERIFY when it does not
 * (including malformed or wrongly sized signatures). FMT_SIG_RAW ECDSA
 * signatures with a high s are refused (one signature, one spelling: JWS,
 * wire and API proofs); FMT_SIG_DER accepts either s, because manifests may
 * be signed with the stock openssl command, which does not normalise s. */
IDP_MUST_CHECK enum idp_err fmt_key_verify(const struct fmt_key *key, enum fmt_sig_enc enc,
                                           const uint8_t *msg, size_t len, const uint8_t *sig,
                                           size_t sig_len, struct idp_error *err);

/* True when key is P-256 and sig is a 64-byte r||s whose s is above n/2
 * (the malleable twin (r, n - s) of a low-s signature, or s >= n). Callers
 * that verify FMT_SIG_RAW use it to name that refusal; fmt_key_verify
 * refuses such signatures itself. */
bool fmt_key_sig_high_s(const struct fmt_key *key, const uint8_t *sig, size_t sig_len);

/* The key's type. */
enum fmt_key_type fmt_key_type(const struct fmt_key *key);

/* "p256" or "ed25519". */
const char *fmt_key_type_name(enum fmt_key_type type);

/* Parse "p256" / "ed25519" (s[0..len)); IDP_E_UNSUPPORTED names anything else. */
IDP_MUST_CHECK enum idp_err fmt_key_type_parse(const char *s, size_t len, enum fmt_key_type *type,
                                               struct idp_error *err);

/* True when key holds a private half. */
bool fmt_key_has_private(const struct fmt_key *key);

/* True when a and b are the same public key. */
bool fmt_key_equal(const struct fmt_key *a, const struct fmt_key *b);

/* The OpenSSL key inside (borrowed: valid while key lives; do not free). For
 * the few places that hand a key to OpenSSL directly (CMS, TLS, X.509). */
EVP_PKEY *fmt_key_evp(const struct fmt_key *key);

/* Wrap an OpenSSL key (takes a new reference; the caller keeps its own,
 * and must not change the key through it afterwards: its SPKI is taken
 * here). Refuses types other than P-256 and Ed25519. */
IDP_MUST_CHECK enum idp_err fmt_key_from_evp(EVP_PKEY *pkey, struct fmt_key **out,
                                             struct idp_error *err);

/* Wrap a private key that its provider keeps (a TPM through tpm2-openssl, a
 * secure element through a PKCS#11 provider), loaded in libctx (NULL: the
 * default context): fmt_key_sign signs through libctx, preferring the key's
 * own provider, and fmt_key_private_pem refuses it (IDP_E_ARG), so its
 * private half is never asked for. Takes a new reference (the caller keeps
 * its own); libctx and the provider must outlive *out. Types as
 * fmt_key_from_evp. */
IDP_MUST_CHECK enum idp_err fmt_key_from_provider(EVP_PKEY *pkey, OSSL_LIB_CTX *libctx,
                                                  struct fmt_key **out, struct idp_error *err);

/* True when key came from fmt_key_from_provider. */
bool fmt_key_in_provider(const struct fmt_key *key);

/* Release key (private material is cleansed by OpenSSL). NULL is a no-op. */
void fmt_key_free(struct fmt_key *key);

/* Cleanse and free a secret buffer returned by this module. NULL is a no-op. */
void fmt_key_free_secret(char *buf, size_t len);

#endif /* IDP_FORMATS_KEYS_H */
