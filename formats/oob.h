/*
 * oob.h - out-of-band label secrets: the verifier the server stores and the
 * proof a device sends, bound to its TLS connection. Spec: formats/api.md
 * §15. Pure: no I/O, logging or globals; thread-safe.
 *
 *   verifier = PBKDF2-HMAC-SHA256(secret, salt = FMT_OOB_SALT_TAG || len ||
 *              device ID, FMT_OOB_KDF_ITER iterations, 32 bytes)
 *   proof    = HMAC-SHA256(verifier, FMT_OOB_PROOF_TAG || exporter ||
 *              len || device ID || SHA-256(SPKI DER))
 *
 * WARNING: the verifier is the proof's key: whoever holds it can prove for
 * that device ID (see api.md §15 for why the server may keep it). Cleanse it.
 */
#ifndef IDP_FORMATS_OOB_H
#define IDP_FORMATS_OOB_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define FMT_OOB_LEN         32u     /* bytes of a verifier and of a proof */
#define FMT_OOB_SECRET_MAX  64u     /* a label secret: 1..64 printable ASCII, no space */
#define FMT_OOB_ID_MAX      64u     /* a device ID */
#define FMT_OOB_KDF_ITER    100000u /* PBKDF2 iterations (version 1) */
#define FMT_OOB_EXPORTER_LEN 32u    /* RFC 9266 tls-exporter value */
#define FMT_OOB_SALT_TAG    "idprov-oob-salt-v1" /* + one 0x00 byte */
#define FMT_OOB_PROOF_TAG   "idprov-oob-proof-v1" /* + one 0x00 byte */

/* Check a label secret s[0..len): 1..FMT_OOB_SECRET_MAX bytes of 0x21..0x7e.
 * IDP_E_FORMAT / IDP_E_LIMIT naming the problem (never the secret). */
IDP_MUST_CHECK enum idp_err fmt_oob_secret_check(const char *s, size_t len, struct idp_error *err);

/* The verifier of secret[0..len) for device_id (NUL-terminated, 1..64
 * bytes). Runs the KDF (69 ms measured on one x86-64 core). Fails on a bad
 * secret or ID, or when OpenSSL's PBKDF2 fails; out is then zeroed. */
IDP_MUST_CHECK enum idp_err fmt_oob_verifier(const char *device_id, const char *secret, size_t len,
                                             uint8_t out[static FMT_OOB_LEN],
                                             struct idp_error *err);

/* The proof for the connection whose exporter value is exporter, by the
 * device device_id presenting the key spki[0..spki_len) (SPKI DER). An
 * all-zero exporter is refused (IDP_E_ARG), as formats/api.md §5.1 says. */
IDP_MUST_CHECK enum idp_err fmt_oob_proof(const uint8_t verifier[static FMT_OOB_LEN],
                                          const uint8_t exporter[static FMT_OOB_EXPORTER_LEN],
                                          const char *device_id, const uint8_t *spki,
                                          size_t spki_len, uint8_t out[static FMT_OOB_LEN],
                                          struct idp_error *err);

#endif /* IDP_FORMATS_OOB_H */
