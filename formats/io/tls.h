/*
 * tls.h - the TLS channel binding every program computes the same way:
 * the RFC 9266 "tls-exporter" value of a live OpenSSL connection. Part of
 * formats/io (the I/O half of the shared library; no policy). Spec:
 * formats/api.md ("proof of possession"). Thread-safe for distinct SSL
 * objects.
 */
#ifndef IDP_FORMATS_IO_TLS_H
#define IDP_FORMATS_IO_TLS_H

#include <stdint.h>

#include <openssl/ssl.h>

#include "formats/api.h"
#include "formats/error.h"

#define FIO_TLS_EXPORTER_LEN FMT_API_EXPORTER_LEN /* 32 bytes */

/* The exporter of ssl's session with label FMT_API_EXPORTER_LABEL and an
 * empty context, exactly as RFC 9266 section 2 says (an empty context is
 * not the same as no context under TLS 1.2). The handshake must be done.
 * IDP_E_CRYPTO with OpenSSL's reason on failure; out is then zeroed. */
IDP_MUST_CHECK enum idp_err fio_tls_exporter(SSL *ssl, uint8_t out[static FIO_TLS_EXPORTER_LEN],
                                             struct idp_error *err);

#endif /* IDP_FORMATS_IO_TLS_H */
