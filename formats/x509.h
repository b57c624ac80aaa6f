/*
 * x509.h - PEM certificate lists, trust stores built from them, and the
 * commonName check: the one place certificates are read from text, for
 * manifests (station certificate, chain, factory CAs), the API's ca_pem,
 * the server's state files, stored CAs and the agent's pinned CA.
 *
 * Pure (takes bytes, no file I/O, logging or globals); thread-safe (the
 * OpenSSL error queue used is this thread's). Messages name the problem
 * ("certificate 2 does not parse"); callers put what the text was in front
 * with idp_error_prefix ("ca_pem", "certificates", a path).
 */
#ifndef IDP_FORMATS_X509_H
#define IDP_FORMATS_X509_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "formats/error.h"

#define FMT_X509_LIST_MAX 8u /* certificates in a list (a chain or a CA bundle) */

/* Flags of fmt_x509_list_parse. */
#define FMT_X509_STRICT 1u /* nothing but CERTIFICATE blocks, each ended by at most one LF */

/* Parse 1..max PEM certificates from buf[0..len) into *out (caller frees
 * with sk_X509_pop_free(*out, X509_free); NULL on failure). Text between
 * blocks and blocks of other types are skipped unless FMT_X509_STRICT, but
 * a CERTIFICATE block that does not parse (truncated, damaged, not X.509)
 * is refused, never dropped. IDP_E_FORMAT naming the block ("certificate 2
 * does not parse", "no PEM certificate found", with FMT_X509_STRICT "not a
 * PEM certificate list (offset 0)", "certificate 2 has no END line"),
 * IDP_E_LIMIT beyond max certificates. */
IDP_MUST_CHECK enum idp_err fmt_x509_list_parse(const uint8_t *buf, size_t len, size_t max,
                                                unsigned flags, STACK_OF(X509) **out,
                                                struct idp_error *err);

/* The first certificate of a list of 1..FMT_X509_LIST_MAX, checked as
 * fmt_x509_list_parse does. Caller frees *out with X509_free(). */
IDP_MUST_CHECK enum idp_err fmt_x509_parse_first(const uint8_t *buf, size_t len, X509 **out,
                                                 struct idp_error *err);

/* Add every certificate of certs to store as trusted (store keeps its own
 * references). */
IDP_MUST_CHECK enum idp_err fmt_x509_store_add(X509_STORE *store, const STACK_OF(X509) *certs,
                                               struct idp_error *err);

/* A new X509_STORE trusting the 1..max PEM certificates in buf[0..len).
 * Caller frees *out with X509_STORE_free(). */
IDP_MUST_CHECK enum idp_err fmt_x509_store_parse(const uint8_t *buf, size_t len, size_t max,
                                                 X509_STORE **out, struct idp_error *err);

/* The subject's commonName into out (size bytes, NUL included): there must
 * be exactly one, of 1..size - 1 bytes and without a NUL byte, else
 * IDP_E_FORMAT ("no single commonName of 1..N bytes"). *len gets its length. */
IDP_MUST_CHECK enum idp_err fmt_x509_cn(const X509 *cert, char *out, size_t size, size_t *len,
                                        struct idp_error *err);

#endif /* IDP_FORMATS_X509_H */
