/*
 * idrule.h - validation rules for device IDs and serial numbers, per product:
 * a pattern and a checksum. Spec: formats/idrule.md.
 *
 * The server applies them on manifest import (and refuses the whole batch on
 * the first failure); the station can apply the same rules on the line, so a
 * mistyped or counterfeit serial shows as FAIL at the factory, not on site.
 * Pure (POSIX regex only); a compiled rule may be shared between threads.
 */
#ifndef IDP_FORMATS_IDRULE_H
#define IDP_FORMATS_IDRULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define FMT_IDRULE_SPEC_MAX    512u /* bytes of a rule's text */
#define FMT_IDRULE_PATTERN_MAX 256u /* bytes of its pattern */
#define FMT_IDRULE_DIVISOR_MAX 1000000000u
#define FMT_IDRULE_QUANTIFIERS_MAX 16u /* * + ? {m,n} in one pattern; none stacked */

enum fmt_idrule_check {
	FMT_IDRULE_CHECK_NONE = 0,
	FMT_IDRULE_CHECK_LUHN,      /* ISO/IEC 7812-1 Luhn over the value's digits */
	FMT_IDRULE_CHECK_MOD97_10,  /* ISO 7064 MOD 97-10 over digits and letters (A=10..Z=35) */
	FMT_IDRULE_CHECK_DIVISIBLE, /* the value's digits, read as one number, divisible by N */
};

struct fmt_idrule; /* opaque: a compiled rule */

/* Compile a rule from its text spec[0..len): space-separated key=value
 * items, each at most once, at least one of them:
 *   pattern=ERE      POSIX extended regex the WHOLE value must match
 *   check=luhn | mod97-10 | div:N
 * e.g. "pattern=SX1-[0-9]{4}-[0-9]{6} check=luhn". Errors name the item.
 * Caller frees *out with fmt_idrule_free(). */
IDP_MUST_CHECK enum idp_err fmt_idrule_parse(const char *spec, size_t len, struct fmt_idrule **out,
                                             struct idp_error *err);

/* Check value[0..len) against rule. IDP_E_FORMAT with a message that starts
 * with what and quotes the value:
 * 'serial: "SX1-2026-000002" fails the luhn check'. */
IDP_MUST_CHECK enum idp_err fmt_idrule_check(const struct fmt_idrule *rule, const char *value,
                                             size_t len, const char *what,
                                             struct idp_error *err);

/* The rule in its canonical text form (for logs, listings); borrowed. */
const char *fmt_idrule_text(const struct fmt_idrule *rule);

/* Release rule. NULL is a no-op. */
void fmt_idrule_free(struct fmt_idrule *rule);

/* The checksums on their own; false when s has no digit (or, for mod97-10,
 * a character other than a digit or letter is ignored: see the spec). */
bool fmt_idrule_luhn_valid(const char *s, size_t len);
bool fmt_idrule_mod97_10_valid(const char *s, size_t len);
bool fmt_idrule_divisible(const char *s, size_t len, uint32_t divisor);

#endif /* IDP_FORMATS_IDRULE_H */
