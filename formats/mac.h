/*
 * mac.h - EUI-48 (MAC) addresses in their one canonical text form,
 * "aa:bb:cc:dd:ee:ff": six lower-case hex pairs joined by colons.
 * Spec: formats/api.md ("MAC addresses"). Pure; thread-safe.
 */
#ifndef IDP_FORMATS_MAC_H
#define IDP_FORMATS_MAC_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define FMT_MAC_LEN      6u  /* bytes of an EUI-48 */
#define FMT_MAC_TEXT_LEN 17u /* "aa:bb:cc:dd:ee:ff" without the NUL */

/* Parse s[0..len) (not NUL-terminated) into out. Only the canonical form is
 * accepted (upper case, '-' or '.' separators are refused, so one address has
 * one spelling), and only a unicast, non-zero address: a device's own
 * interface address is never a group address. IDP_E_FORMAT names the
 * problem; out is unchanged on failure. */
IDP_MUST_CHECK enum idp_err fmt_mac_parse(const char *s, size_t len, uint8_t out[static FMT_MAC_LEN],
                                          struct idp_error *err);

/* Canonical text of mac into out (FMT_MAC_TEXT_LEN + 1 bytes, NUL-terminated). */
void fmt_mac_format(const uint8_t mac[static FMT_MAC_LEN], char out[static FMT_MAC_TEXT_LEN + 1]);

#endif /* IDP_FORMATS_MAC_H */
