/*
 * json.h - strict JSON over cJSON, for every format that crosses a boundary.
 *
 * cJSON alone accepts duplicate object keys, invalid UTF-8, unbounded
 * nesting, raw control bytes, any byte up to 0x20 as whitespace, and numbers
 * such as 1e3, 1.0, 01 or -0 that it then reads as integers; fmt_json_parse
 * refuses all of these, plus NUL bytes in strings, so two parties cannot read
 * one document two ways. Every format here uses integers only: a number must be
 * spelt -?(0|[1-9][0-9]*), and not -0. The getters check type, presence
 * and bounds and name the field in their errors ("mac: expected a string").
 * Pure; thread-safe (cJSON's default allocator hooks are never changed).
 */
#ifndef IDP_FORMATS_JSON_H
#define IDP_FORMATS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "formats/buf.h"
#include "formats/error.h"

#define FMT_JSON_DEPTH_MAX   16u  /* deepest nesting accepted by any format */
#define FMT_JSON_MEMBERS_MAX 256u /* most members of one object or array */
#define FMT_JSON_INT_MAX     9007199254740991LL /* 2^53 - 1: exact in a double */

/* True when buf[0..len) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF). */
bool fmt_utf8_valid(const uint8_t *buf, size_t len);

/* Parse buf[0..len) as exactly one JSON value (whitespace around it allowed).
 * Refuses invalid UTF-8, "\u0000", control bytes other than whitespace (tab,
 * LF, CR) outside strings, numbers that are not plain integers, duplicate keys,
 * nesting deeper than
 * max_depth and objects or arrays of more than FMT_JSON_MEMBERS_MAX members,
 * with IDP_E_FORMAT or IDP_E_LIMIT. Caller frees *out with cJSON_Delete(). */
IDP_MUST_CHECK enum idp_err fmt_json_parse(const uint8_t *buf, size_t len, unsigned max_depth,
                                           cJSON **out, struct idp_error *err);

/* As fmt_json_parse, with at most max_members members per object or array
 * (listings: formats/admin_api.h). */
IDP_MUST_CHECK enum idp_err fmt_json_parse_members(const uint8_t *buf, size_t len,
                                                   unsigned max_depth, size_t max_members,
                                                   cJSON **out, struct idp_error *err);

/* Refuse members of obj whose names are not in allowed[0..n) (IDP_E_FORMAT
 * naming the first unknown one). */
IDP_MUST_CHECK enum idp_err fmt_json_only_keys(const cJSON *obj, const char *const *allowed,
                                               size_t n, struct idp_error *err);

/* String member name of obj. Absent: IDP_E_FORMAT when required, else IDP_OK
 * with *s = NULL, *len = 0. Present: must be a string of 1..max bytes (0..max
 * when allow_empty). *s is borrowed from obj. */
IDP_MUST_CHECK enum idp_err fmt_json_get_string(const cJSON *obj, const char *name, bool required,
                                                bool allow_empty, size_t max, const char **s,
                                                size_t *len, struct idp_error *err);

/* Integer member in [min, max] (both within +-FMT_JSON_INT_MAX). Absent and not
 * required: IDP_OK with *present = false (present may be NULL when required). */
IDP_MUST_CHECK enum idp_err fmt_json_get_int(const cJSON *obj, const char *name, bool required,
                                             int64_t min, int64_t max, int64_t *v, bool *present,
                                             struct idp_error *err);

/* Boolean member; absent and not required leaves *v unchanged with *present false. */
IDP_MUST_CHECK enum idp_err fmt_json_get_bool(const cJSON *obj, const char *name, bool required,
                                              bool *v, bool *present, struct idp_error *err);

/* Object member (borrowed); absent and not required gives *out = NULL. */
IDP_MUST_CHECK enum idp_err fmt_json_get_object(const cJSON *obj, const char *name, bool required,
                                                const cJSON **out, struct idp_error *err);

/* Append s[0..len) to out as a JSON string literal with quotes, escaping what
 * RFC 8259 requires (", \, control characters) and nothing else, so the
 * output is deterministic. out must hold fmt_json_quoted_max(len) bytes; the
 * return value is the number of bytes written (no NUL). s must be valid UTF-8. */
size_t fmt_json_quote(const char *s, size_t len, char *out);

/* Most bytes fmt_json_quote can write for len input bytes. */
size_t fmt_json_quoted_max(size_t len);

/* Writing deterministic JSON into a buffer (formats/buf.h): members in the
 * caller's order, no whitespace, strings escaped as fmt_json_quote does.
 * Failures are the buffer's (sticky): check it once with fmt_buf_check().
 * The caller writes the braces ("{", "}") with fmt_buf_add. */

/* The JSON string literal of s[0..len) (valid UTF-8, checked by the caller). */
void fmt_json_put_quoted(struct fmt_buf *b, const char *s, size_t len);

/* "key": preceded by a comma unless b is empty or ends with '{' or '['. key
 * is a literal name that needs no escaping. */
void fmt_json_put_key(struct fmt_buf *b, const char *key);

/* "key":"s" for the NUL-terminated string s (valid UTF-8). */
void fmt_json_put_str(struct fmt_buf *b, const char *key, const char *s);

/* "key":v */
void fmt_json_put_int(struct fmt_buf *b, const char *key, int64_t v);

/* "key":true or "key":false */
void fmt_json_put_bool(struct fmt_buf *b, const char *key, bool v);

/* "key":"<standard base64 of d[0..len), padded>" */
void fmt_json_put_b64(struct fmt_buf *b, const char *key, const uint8_t *d, size_t len);

#endif /* IDP_FORMATS_JSON_H */
