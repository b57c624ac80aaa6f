/*
 * label.h - the payload of a device label's QR code: the device ID and the
 * fingerprint of the key the device proved at the station. Spec:
 * formats/label.md. Pure; thread-safe.
 */
#ifndef IDP_FORMATS_LABEL_H
#define IDP_FORMATS_LABEL_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/id.h"
#include "formats/keys.h"

#define FMT_LABEL_PREFIX "IDPL1;"
/* "IDPL1;" + ID (64) + ";" + 64 hex digits */
#define FMT_LABEL_MAX                                                                              \
	(sizeof(FMT_LABEL_PREFIX) - 1 + FMT_ID_MAX + 1 + (size_t)2 * FMT_KEY_FINGERPRINT_LEN)

/* Encode the payload for device id (formats/id.h) and the fingerprint fp
 * (SHA-256 of the device key's SPKI DER) into out (not NUL-terminated);
 * *len gets its length. IDP_E_FORMAT / IDP_E_LIMIT name a bad ID. */
IDP_MUST_CHECK enum idp_err fmt_label_encode(const char *id, size_t id_len,
                                             const uint8_t fp[static FMT_KEY_FINGERPRINT_LEN],
                                             char out[static FMT_LABEL_MAX], size_t *len,
                                             struct idp_error *err);

/* Parse a payload buf[0..len) (as a scanner returns it, a trailing newline
 * allowed) into id (NUL-terminated) and fp. IDP_E_UNSUPPORTED for another
 * version prefix, IDP_E_FORMAT for anything else that is not exactly what
 * fmt_label_encode writes. */
IDP_MUST_CHECK enum idp_err fmt_label_parse(const char *buf, size_t len,
                                            char id[static FMT_ID_MAX + 1],
                                            uint8_t fp[static FMT_KEY_FINGERPRINT_LEN],
                                            struct idp_error *err);

/* The fingerprint of a device key given as SPKI DER (SHA-256 of the bytes,
 * as formats/keys.md defines it). IDP_E_ARG for an empty key. */
IDP_MUST_CHECK enum idp_err fmt_label_fingerprint(const uint8_t *spki, size_t len,
                                                  uint8_t fp[static FMT_KEY_FINGERPRINT_LEN],
                                                  struct idp_error *err);

#endif /* IDP_FORMATS_LABEL_H */
