/*
 * b64.h - strict base64 (RFC 4648 section 4, padded) and base64url (section 5,
 * unpadded, as JWS uses it) codecs.
 *
 * Decoding is canonical: no whitespace, no missing or extra padding, and the
 * unused low bits of the last symbol must be zero, so each byte string has
 * exactly one accepted encoding. Pure; thread-safe.
 */
#ifndef IDP_FORMATS_B64_H
#define IDP_FORMATS_B64_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

enum fmt_b64_alphabet {
	FMT_B64_STD, /* A-Z a-z 0-9 + /, '=' padding */
	FMT_B64_URL, /* A-Z a-z 0-9 - _, no padding */
};

/* Characters needed to encode n bytes (without a NUL). */
size_t fmt_b64_encoded_len(enum fmt_b64_alphabet a, size_t n);

/* Most bytes that decoding n characters can give. */
size_t fmt_b64_decoded_max(size_t n);

/* Encode in[0..n) into out, which must hold fmt_b64_encoded_len() + 1 bytes;
 * out is NUL-terminated. Returns the length written (without the NUL). */
size_t fmt_b64_encode(enum fmt_b64_alphabet a, const uint8_t *in, size_t n, char *out);

/* Decode in[0..n) into out (room for out_max bytes); *out_len gets the length.
 * IDP_E_FORMAT names the first bad character's offset; IDP_E_LIMIT when the
 * result would not fit in out_max. */
IDP_MUST_CHECK enum idp_err fmt_b64_decode(enum fmt_b64_alphabet a, const char *in, size_t n,
                                           uint8_t *out, size_t out_max, size_t *out_len,
                                           struct idp_error *err);

#endif /* IDP_FORMATS_B64_H */
