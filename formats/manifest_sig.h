/*
 * manifest_sig.h - the detached signature of a batch manifest body
 * (NAME.manifest.sig): streaming signer and verifier for the three kinds of
 * formats/manifest.md: cms (CMS SignedData, detached, DER, P-256 station key
 * with its X.509 chain inside), es256 (ECDSA P-256 over SHA-256(body), DER)
 * and ed25519 (Ed25519 over the 32 bytes of SHA-256(body)).
 *
 * All three hash the body with SHA-256 as it streams, so signing and
 * verifying take constant memory whatever the number of devices.
 *
 * The verifier also parses the header line it sees stream past (canonical
 * form) and checks that its sig kind and station key fingerprint are the ones
 * that made the signature, and (cms) that its station ID is the signer
 * certificate's one commonName. Verify first, then read records with
 * formats/manifest.h.
 *
 * Pure: no I/O. A signer or verifier belongs to one thread; the keys and the
 * X509_STORE it borrows may be shared read-only.
 */
#ifndef IDP_FORMATS_MANIFEST_SIG_H
#define IDP_FORMATS_MANIFEST_SIG_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "formats/error.h"
#include "formats/keys.h"
#include "formats/manifest.h"
#include "formats/x509.h"

#define FMT_MANIFEST_SIG_MAX  65536u /* bytes of a .sig file (a CMS with its chain) */
#define FMT_MANIFEST_CERTS_MAX FMT_X509_LIST_MAX /* certificates in a PEM bundle or a CMS */

/* What to trust: exactly one of the two. */
struct fmt_manifest_trust {
	const struct fmt_key *station_key; /* es256 (P-256) or ed25519: the station's key */
	X509_STORE *store;                 /* cms: the trusted factory CA(s) */
};

/* What a successful verification vouches for. */
struct fmt_manifest_verified {
	struct fmt_manifest_header header;          /* the signed header line */
	uint8_t body_sha256[FMT_MANIFEST_HASH_LEN]; /* the next manifest's prev */
	uint64_t body_len;
};

struct fmt_manifest_signer;   /* opaque */
struct fmt_manifest_verifier; /* opaque */

/* Start signing a body of the given kind with key (borrowed until _free;
 * must hold its private half). cms needs cert (the station certificate for
 * key) and may add chain (intermediate CAs; may be NULL); both borrowed.
 * IDP_E_UNSUPPORTED when the key type does not fit the kind. */
IDP_MUST_CHECK enum idp_err fmt_manifest_signer_new(enum fmt_manifest_sig kind,
                                                    const struct fmt_key *key, X509 *cert,
                                                    STACK_OF(X509) *chain,
                                                    struct fmt_manifest_signer **out,
                                                    struct idp_error *err);

/* Feed the next body bytes. */
IDP_MUST_CHECK enum idp_err fmt_manifest_signer_update(struct fmt_manifest_signer *s,
                                                       const uint8_t *buf, size_t len,
                                                       struct idp_error *err);

/* Finish: *sig gets the .sig bytes (caller free()s), body_sha256 (may be NULL)
 * the body's SHA-256. The signer is spent afterwards. */
IDP_MUST_CHECK enum idp_err fmt_manifest_signer_final(struct fmt_manifest_signer *s,
                                                      uint8_t **sig, size_t *sig_len,
                                                      uint8_t *body_sha256,
                                                      struct idp_error *err);

/* Release s. NULL is a no-op. */
void fmt_manifest_signer_free(struct fmt_manifest_signer *s);

/* One call: sign body[0..len). */
IDP_MUST_CHECK enum idp_err fmt_manifest_sign(enum fmt_manifest_sig kind,
                                              const struct fmt_key *key, X509 *cert,
                                              STACK_OF(X509) *chain, const uint8_t *body,
                                              size_t len, uint8_t **sig, size_t *sig_len,
                                              struct idp_error *err);

/* Start verifying against sig[0..sig_len) (copied) and trust (borrowed until
 * _free). The kind follows from trust: a store means cms, a P-256 key es256,
 * an Ed25519 key ed25519. A .sig that cannot be of that kind fails here
 * (IDP_E_VERIFY); a malformed trust fails with IDP_E_ARG. */
IDP_MUST_CHECK enum idp_err fmt_manifest_verifier_new(const uint8_t *sig, size_t sig_len,
                                                      const struct fmt_manifest_trust *trust,
                                                      struct fmt_manifest_verifier **out,
                                                      struct idp_error *err);

/* Feed the next body bytes (any chunking). */
IDP_MUST_CHECK enum idp_err fmt_manifest_verifier_update(struct fmt_manifest_verifier *v,
                                                         const uint8_t *buf, size_t len,
                                                         struct idp_error *err);

/* IDP_OK only when the signature matches the whole body, (cms) the signer
 * certificate chains to the store and its one commonName is the header's
 * station, and the header line names this kind and this station key's
 * fingerprint; then *out is filled. IDP_E_VERIFY (or
 * IDP_E_FORMAT for an unreadable header) otherwise. */
IDP_MUST_CHECK enum idp_err fmt_manifest_verifier_final(struct fmt_manifest_verifier *v,
                                                        struct fmt_manifest_verified *out,
                                                        struct idp_error *err);

/* As _final for a body hashed elsewhere (a server that hashes an upload as
 * it arrives and keeps it on disk): header[0..header_len) is the body's
 * first line with its LF (a line without one is not a complete header),
 * digest the SHA-256 of all body_len bytes. Same checks and result as
 * _final; IDP_E_ARG when v was fed with _update. The caller vouches that
 * digest is the body's: read the body again only through a check of it. */
IDP_MUST_CHECK enum idp_err
fmt_manifest_verifier_final_digest(struct fmt_manifest_verifier *v, const uint8_t *header,
                                   size_t header_len,
                                   const uint8_t digest[static FMT_MANIFEST_HASH_LEN],
                                   uint64_t body_len, struct fmt_manifest_verified *out,
                                   struct idp_error *err);

/* Release v. NULL is a no-op. */
void fmt_manifest_verifier_free(struct fmt_manifest_verifier *v);

/* One call: verify body[0..len) against sig. */
IDP_MUST_CHECK enum idp_err fmt_manifest_verify(const uint8_t *sig, size_t sig_len,
                                                const struct fmt_manifest_trust *trust,
                                                const uint8_t *body, size_t len,
                                                struct fmt_manifest_verified *out,
                                                struct idp_error *err);

/* IDP_OK when cert's subject has exactly one commonName and it is station,
 * byte for byte (formats/manifest.md 5.2); IDP_E_VERIFY naming both
 * otherwise. The verifier applies it to the cms signer; a station tool can
 * apply it before signing. */
IDP_MUST_CHECK enum idp_err fmt_manifest_cert_station_check(const X509 *cert, const char *station,
                                                            struct idp_error *err);

#endif /* IDP_FORMATS_MANIFEST_SIG_H */
