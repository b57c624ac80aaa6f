/*
 * json.c - see json.h.
 */
#include "formats/json.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "formats/b64.h"

bool fmt_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1fu, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0fu, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07u, min = 0x10000;
		} else {
			return false;
		}
		if (n > len - i - 1)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* Walk the parsed tree: depth, member counts, duplicate keys, string UTF-8. */
static enum idp_err check_tree(const cJSON *node, unsigned depth, unsigned max_depth,
                               size_t max_members, struct idp_error *err)
{
	if (depth > max_depth)
		return idp_error_set(err, IDP_E_LIMIT, "json: nested deeper than %u", max_depth);
	if (cJSON_IsString(node) &&
	    !fmt_utf8_valid((const uint8_t *)node->valuestring, strlen(node->valuestring)))
		return idp_error_set(err, IDP_E_FORMAT, "json: string is not valid UTF-8");
	if (!cJSON_IsObject(node) && !cJSON_IsArray(node))
		return IDP_OK;
	size_t count = 0;
	for (const cJSON *c = node->child; c != NULL; c = c->next) {
		if (++count > max_members)
			return idp_error_set(err, IDP_E_LIMIT, "json: more than %zu members",
			                     max_members);
		if (cJSON_IsObject(node)) {
			if (!fmt_utf8_valid((const uint8_t *)c->string, strlen(c->string)))
				return idp_error_set(err, IDP_E_FORMAT,
				                     "json: key is not valid UTF-8");
			for (const cJSON *d = node->child; d != c; d = d->next) {
				if (strcmp(d->string, c->string) == 0) {
					char q[IDP_QUOTE_MAX];
					return idp_error_set(
					        err, IDP_E_FORMAT, "json: duplicate key \"%s\"",
					        idp_quote(c->string, strlen(c->string), q));
				}
			}
		}
		enum idp_err rc = check_tree(c, depth + 1, max_depth, max_members, err);
		if (rc != IDP_OK)
			return rc;
	}
	return IDP_OK;
}

/* Bytes of the number token at s[0..left): what cJSON's number parser takes. */
static size_t number_len(const uint8_t *s, size_t left)
{
	size_t n = 0;
	while (n < left && ((s[n] >= '0' && s[n] <= '9') || s[n] == '-' || s[n] == '+' ||
	                    s[n] == '.' || s[n] == 'e' || s[n] == 'E'))
		n++;
	return n;
}

/* -?(0|[1-9][0-9]*) but not -0: the one spelling of an integer. cJSON would
 * read 1e3, 1.0, 01 and -0 as integers too (and 9007199254740991.4 as one), so
 * two parties could read one number two ways. */
static bool plain_integer(const uint8_t *s, size_t n)
{
	size_t i = s[0] == '-' ? 1 : 0;
	if (i == n || (s[i] == '0' && (n - i > 1 || i == 1)))
		return false;
	for (; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

enum idp_err fmt_json_parse(const uint8_t *buf, size_t len, unsigned max_depth, cJSON **out,
                            struct idp_error *err)
{
	return fmt_json_parse_members(buf, len, max_depth, FMT_JSON_MEMBERS_MAX, out, err);
}

enum idp_err fmt_json_parse_members(const uint8_t *buf, size_t len, unsigned max_depth,
                                    size_t max_members, cJSON **out, struct idp_error *err)
{
	*out = NULL;
	if (max_depth > FMT_JSON_DEPTH_MAX)
		max_depth = FMT_JSON_DEPTH_MAX;
	if (!fmt_utf8_valid(buf, len))
		return idp_error_set(err, IDP_E_FORMAT, "json: input is not valid UTF-8");
	/* Cheap pre-scan: depth before cJSON recurses, NUL bytes, "\u0000", and
	 * what cJSON tolerates but RFC 8259 forbids (raw control bytes, any byte
	 * up to 0x20 as whitespace), plus numbers that are not plain integers. */
	unsigned depth = 0;
	bool in_str = false;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = buf[i];
		if (c == 0)
			return idp_error_set(err, IDP_E_FORMAT, "json: NUL byte at offset %zu", i);
		if (c < 0x20 && (in_str || (c != '\t' && c != '\n' && c != '\r')))
			return idp_error_set(err, IDP_E_FORMAT,
			                     "json: control byte 0x%02x at offset %zu", c, i);
		if (in_str) {
			if (c == '\\' && i + 1 < len) {
				if (buf[i + 1] == 'u' && len - i >= 6 && memcmp(buf + i + 2, "0000", 4) == 0)
					return idp_error_set(err, IDP_E_FORMAT,
					                     "json: \\u0000 in a string at offset %zu", i);
				i++;
			} else if (c == '"') {
				in_str = false;
			}
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t n = number_len(buf + i, len - i);
			if (!plain_integer(buf + i, n))
				return idp_error_set(err, IDP_E_FORMAT,
				                     "json: number at offset %zu is not a plain integer "
				                     "(no fraction, exponent, leading zero or -0)",
				                     i);
			i += n - 1;
		} else if (c == '{' || c == '[') {
			if (++depth > max_depth)
				return idp_error_set(err, IDP_E_LIMIT, "json: nested deeper than %u",
				                     max_depth);
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts((const char *)buf, len, &end, false);
	if (root == NULL) {
		const char *at = cJSON_GetErrorPtr();
		size_t off = len;
		if (at != NULL && at >= (const char *)buf && at <= (const char *)buf + len)
			off = (size_t)(at - (const char *)buf);
		return idp_error_set(err, IDP_E_FORMAT, "json: syntax error at offset %zu", off);
	}
	for (const char *p = end; p != NULL && p < (const char *)buf + len; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			cJSON_Delete(root);
			return idp_error_set(err, IDP_E_FORMAT, "json: trailing data at offset %zu",
			                     (size_t)(p - (const char *)buf));
		}
	}
	enum idp_err rc = check_tree(root, 0, max_depth, max_members, err);
	if (rc != IDP_OK) {
		cJSON_Delete(root);
		return rc;
	}
	*out = root;
	return IDP_OK;
}

enum idp_err fmt_json_only_keys(const cJSON *obj, const char *const *allowed, size_t n,
                                struct idp_error *err)
{
	for (const cJSON *c = obj->child; c != NULL; c = c->next) {
		bool ok = false;
		for (size_t i = 0; i < n && !ok; i++)
			ok = strcmp(c->string, allowed[i]) == 0;
		if (!ok) {
			char q[IDP_QUOTE_MAX];
			return idp_error_set(err, IDP_E_FORMAT, "unknown field \"%s\"",
			                     idp_quote(c->string, strlen(c->string), q));
		}
	}
	return IDP_OK;
}

static const cJSON *member(const cJSON *obj, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(obj, name);
}

enum idp_err fmt_json_get_string(const cJSON *obj, const char *name, bool required,
                                 bool allow_empty, size_t max, const char **s, size_t *len,
                                 struct idp_error *err)
{
	*s = NULL;
	*len = 0;
	const cJSON *m = member(obj, name);
	if (m == NULL)
		return required ? idp_error_set(err, IDP_E_FORMAT, "%s: missing", name) : IDP_OK;
	if (!cJSON_IsString(m))
		return idp_error_set(err, IDP_E_FORMAT, "%s: expected a string", name);
	size_t n = strnlen(m->valuestring, max + 1);
	if (n > max)
		return idp_error_set(err, IDP_E_LIMIT, "%s: longer than %zu bytes", name, max);
	if (n == 0 && !allow_empty)
		return idp_error_set(err, IDP_E_FORMAT, "%s: empty", name);
	*s = m->valuestring;
	*len = n;
	return IDP_OK;
}

enum idp_err fmt_json_get_int(const cJSON *obj, const char *name, bool required, int64_t min,
                              int64_t max, int64_t *v, bool *present, struct idp_error *err)
{
	if (present != NULL)
		*present = false;
	const cJSON *m = member(obj, name);
	if (m == NULL)
		return required ? idp_error_set(err, IDP_E_FORMAT, "%s: missing", name) : IDP_OK;
	if (!cJSON_IsNumber(m))
		return idp_error_set(err, IDP_E_FORMAT, "%s: expected a number", name);
	double d = m->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < (double)-FMT_JSON_INT_MAX ||
	    d > (double)FMT_JSON_INT_MAX)
		return idp_error_set(err, IDP_E_FORMAT, "%s: expected an integer", name);
	int64_t i = (int64_t)d;
	if (i < min || i > max)
		return idp_error_set(err, IDP_E_LIMIT, "%s: %lld is outside %lld..%lld", name,
		                     (long long)i, (long long)min, (long long)max);
	*v = i;
	if (present != NULL)
		*present = true;
	return IDP_OK;
}

enum idp_err fmt_json_get_bool(const cJSON *obj, const char *name, bool required, bool *v,
                               bool *present, struct idp_error *err)
{
	if (present != NULL)
		*present = false;
	const cJSON *m = member(obj, name);
	if (m == NULL)
		return required ? idp_error_set(err, IDP_E_FORMAT, "%s: missing", name) : IDP_OK;
	if (!cJSON_IsBool(m))
		return idp_error_set(err, IDP_E_FORMAT, "%s: expected true or false", name);
	*v = cJSON_IsTrue(m);
	if (present != NULL)
		*present = true;
	return IDP_OK;
}

enum idp_err fmt_json_get_object(const cJSON *obj, const char *name, bool required,
                                 const cJSON **out, struct idp_error *err)
{
	*out = NULL;
	const cJSON *m = member(obj, name);
	if (m == NULL)
		return required ? idp_error_set(err, IDP_E_FORMAT, "%s: missing", name) : IDP_OK;
	if (!cJSON_IsObject(m))
		return idp_error_set(err, IDP_E_FORMAT, "%s: expected an object", name);
	*out = m;
	return IDP_OK;
}

size_t fmt_json_quoted_max(size_t len)
{
	return len * 6 + 2;
}

/* The escaped form of s[0..len), without quotes; returns its length. */
static size_t escape(const char *s, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c == '\t') {
			out[o++] = '\\';
			out[o++] = 't';
		} else if (c == '\r') {
			out[o++] = '\\';
			out[o++] = 'r';
		} else if (c < 0x20) {
			out[o++] = '\\';
			out[o++] = 'u';
			out[o++] = '0';
			out[o++] = '0';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	return o;
}

size_t fmt_json_quote(const char *s, size_t len, char *out)
{
	out[0] = '"';
	size_t o = 1 + escape(s, len, out + 1);
	out[o++] = '"';
	return o;
}

/* ---------------------------------------------------------------- writing */

#define SLICE 128u /* input bytes escaped at a time */

void fmt_json_put_quoted(struct fmt_buf *b, const char *s, size_t len)
{
	/* In slices, so that no scratch buffer of the worst-case size is needed
	 * and a value that fits once escaped is never refused for what it might
	 * have grown to; escaping is per byte, so slicing cannot change it. */
	char tmp[6 * SLICE];
	fmt_buf_add(b, "\"", 1);
	for (size_t i = 0; i < len; i += SLICE) {
		size_t k = len - i < SLICE ? len - i : SLICE;
		fmt_buf_add(b, tmp, escape(s + i, k, tmp));
	}
	fmt_buf_add(b, "\"", 1);
}

void fmt_json_put_key(struct fmt_buf *b, const char *key)
{
	if (fmt_buf_status(b) != IDP_OK)
		return;
	if (b->len > 0 && b->p[b->len - 1] != '{' && b->p[b->len - 1] != '[')
		fmt_buf_add(b, ",", 1);
	fmt_buf_add(b, "\"", 1);
	fmt_buf_add_str(b, key);
	fmt_buf_add(b, "\":", 2);
}

void fmt_json_put_str(struct fmt_buf *b, const char *key, const char *s)
{
	fmt_json_put_key(b, key);
	fmt_json_put_quoted(b, s, strlen(s));
}

void fmt_json_put_int(struct fmt_buf *b, const char *key, int64_t v)
{
	fmt_json_put_key(b, key);
	fmt_buf_addf(b, "%" PRId64, v);
}

void fmt_json_put_bool(struct fmt_buf *b, const char *key, bool v)
{
	fmt_json_put_key(b, key);
	fmt_buf_add_str(b, v ? "true" : "false");
}

void fmt_json_put_b64(struct fmt_buf *b, const char *key, const uint8_t *d, size_t len)
{
	/* Whole groups of 3 bytes encode without padding, so chunks join. */
	const size_t chunk = (size_t)3 * (SLICE / 3);
	char tmp[(size_t)4 * SLICE / 3 + 4];
	fmt_json_put_key(b, key);
	fmt_buf_add(b, "\"", 1);
	for (size_t i = 0; i < len; i += chunk) {
		size_t k = len - i < chunk ? len - i : chunk;
		fmt_buf_add(b, tmp, fmt_b64_encode(FMT_B64_STD, d + i, k, tmp));
	}
	fmt_buf_add(b, "\"", 1);
}
