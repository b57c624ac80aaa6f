/*
 * pop.h - the device's proof of possession: a signature by the device key
 * over a request's claims (formats/api.h) and the RFC 9266 tls-exporter of
 * the connection carrying it, so a relayed or replayed request fails.
 * Spec: formats/api.md §5 (the exact signed bytes, the checks in order).
 * Pure (no I/O, logging or globals); thread-safe.
 */
#ifndef IDP_FORMATS_POP_H
#define IDP_FORMATS_POP_H

#include <stddef.h>
#include <stdint.h>

#include "formats/api.h"
#include "formats/error.h"
#include "formats/keys.h"

/* The exact bytes a proof signs (formats/api.md, "Proof of possession"):
 * every member of req except pop.sig, and exporter, the RFC 9266 value of the
 * TLS connection carrying the request. *len gets at most FMT_API_POP_MSG_MAX.
 * An all-zero exporter is refused (IDP_E_ARG) here and by the signer and
 * verifiers below: it is what a failed export leaves, never a real value. */
IDP_MUST_CHECK enum idp_err fmt_api_pop_message(const struct fmt_api_request *req,
                                                const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                                                uint8_t out[static FMT_API_POP_MSG_MAX],
                                                size_t *len, struct idp_error *err);

/* Device side: set req's key_type and spki from key, pop.ts = ts, the nonce
 * (NULL: none), and sign. key must hold its private half (IDP_E_ARG). The
 * other members must be filled in first; on failure pop.sig is all zero. */
IDP_MUST_CHECK enum idp_err fmt_api_pop_sign(struct fmt_api_request *req, const struct fmt_key *key,
                                             const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                                             int64_t ts, const uint8_t *nonce,
                                             struct idp_error *err);

/* Server side: IDP_OK when req->pop is a signature by req's own public key
 * over req's claims and this connection's exporter, made within max_skew
 * seconds of now. IDP_E_EXPIRED: timestamp too old or in the future;
 * IDP_E_VERIFY: the signature does not match (other key, claim, purpose,
 * nonce or TLS channel). Proves possession only: whether the key belongs to
 * the device, and whether the nonce is fresh and unused, are the caller's. */
IDP_MUST_CHECK enum idp_err fmt_api_pop_verify(const struct fmt_api_request *req,
                                               const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                                               int64_t now, int64_t max_skew,
                                               struct idp_error *err);

/* Server side, in one step: fmt_api_request_parse, then fmt_api_pop_verify,
 * importing the public key once instead of twice (and once in all with
 * fmt_api_request_accept_key below). A body the parser refuses
 * leaves *out wiped, as the parser does. WARNING: when the body parses but
 * the proof fails (IDP_E_EXPIRED, IDP_E_VERIFY), *out keeps the request so
 * that the refusal can be logged and flagged under the claimed device ID;
 * those claims are unproven and must decide nothing. */
IDP_MUST_CHECK enum idp_err fmt_api_request_accept(enum fmt_api_purpose purpose, const uint8_t *buf,
                                                   size_t len,
                                                   const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                                                   int64_t now, int64_t max_skew,
                                                   struct fmt_api_request *out,
                                                   struct idp_error *err);

/* fmt_api_request_accept, also handing over the public key it imported and
 * verified the proof with (key may be NULL): on IDP_OK *key is that key,
 * which the caller frees with fmt_key_free(); on any failure *key is NULL,
 * so an unproven key never leaves here. */
IDP_MUST_CHECK enum idp_err fmt_api_request_accept_key(
        enum fmt_api_purpose purpose, const uint8_t *buf, size_t len,
        const uint8_t exporter[static FMT_API_EXPORTER_LEN], int64_t now, int64_t max_skew,
        struct fmt_api_request *out, struct fmt_key **key, struct idp_error *err);

#endif /* IDP_FORMATS_POP_H */
