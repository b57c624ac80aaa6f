/*
 * id.h - the one rule for identifiers that travel between the parts: device
 * IDs, station IDs, batch IDs and serial numbers. Spec: formats/keys.md is for
 * keys; this rule is stated in formats/manifest.md section 2.2 and used by
 * wire.md, api.md and token.md alike, so an ID the station can read is an ID
 * the manifest, the server and the token accept.
 *
 * Rule: 1..64 bytes; the first A-Z a-z 0-9; the rest A-Z a-z 0-9 . _ - :
 * Case matters. Pure; thread-safe.
 */
#ifndef IDP_FORMATS_ID_H
#define IDP_FORMATS_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "formats/error.h"

#define FMT_ID_MAX 64u /* bytes of an ID or serial number */

/* True when s[0..len) follows the rule above. */
bool fmt_id_valid(const char *s, size_t len);

/* IDP_OK when s[0..len) follows the rule; otherwise IDP_E_FORMAT (or
 * IDP_E_LIMIT when too long) with a message that starts with what and names
 * the offending byte: "device_id: byte 0x21 at offset 3 is not allowed". */
IDP_MUST_CHECK enum idp_err fmt_id_check(const char *s, size_t len, const char *what,
                                         struct idp_error *err);

#endif /* IDP_FORMATS_ID_H */
