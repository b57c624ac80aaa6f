/*
 * manifest_dedup.h - refuse duplicate device IDs, MACs, serials and public
 * keys inside one batch manifest. Spec: formats/manifest.md ("Duplicates").
 *
 * The manifest reader keeps constant memory; this set is the one part that
 * must remember what it saw. It stores, per field value, the first 64 bits
 * of SHA-256(field tag || value) in an open-addressing table: 8 bytes per
 * value at a load of at most 3/4, so between about 43 and 85 bytes per
 * device for its four values, 1.5 times that while the table doubles
 * (fmt_manifest_dedup_bytes() says how many).
 * A duplicate is never missed (equal values hash alike); two different
 * values are refused as duplicates only if their 64-bit prefixes collide,
 * with probability below (4n)^2 / 2^65 for n devices (4e-7 for a million).
 *
 * Pure; one set belongs to one thread.
 */
#ifndef IDP_FORMATS_MANIFEST_DEDUP_H
#define IDP_FORMATS_MANIFEST_DEDUP_H

#include <stddef.h>

#include "formats/error.h"
#include "formats/manifest.h"

struct fmt_manifest_dedup; /* opaque */

/* New, empty set; NULL when out of memory. Free with fmt_manifest_dedup_free(). */
struct fmt_manifest_dedup *fmt_manifest_dedup_new(void);

/* Remember r's ID, MAC, serial and (when present) public key. When any of
 * them was seen before in this set: IDP_E_DUPLICATE naming the field and the
 * value ("mac: \"aa:bb:cc:dd:ee:ff\" appears twice in the batch"), and
 * nothing of r is added. IDP_E_NOMEM when the table cannot grow. */
IDP_MUST_CHECK enum idp_err fmt_manifest_dedup_add(struct fmt_manifest_dedup *d,
                                                   const struct fmt_manifest_record *r,
                                                   struct idp_error *err);

/* Bytes of memory the set holds now. */
size_t fmt_manifest_dedup_bytes(const struct fmt_manifest_dedup *d);

/* Release d. NULL is a no-op. */
void fmt_manifest_dedup_free(struct fmt_manifest_dedup *d);

#endif /* IDP_FORMATS_MANIFEST_DEDUP_H */
