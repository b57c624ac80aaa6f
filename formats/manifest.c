/*
 * manifest.c - see manifest.h. Spec: formats/manifest.md.
 *
 * Every line is parsed with the strict JSON layer (formats/json.h), its
 * fields checked one by one so that errors name the field, and then, for a
 * body, re-encoded and compared byte for byte: the canonical check is what
 * makes field order, spacing and escapes part of the format.
 */
#include "formats/manifest.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/b64.h"
#include "formats/buf.h"
#include "formats/id.h"
#include "formats/json.h"
#include "formats/wire.h"

#define PUB_B64_MAX 172u /* base64 of FMT_KEY_SPKI_MAX bytes */
#define SIG_B64_LEN 88u  /* base64 of FMT_MANIFEST_CAPTURE_SIG_LEN bytes */

_Static_assert(FMT_MANIFEST_NONCE_LEN == FMT_WIRE_NONCE_LEN, "capture nonce is the wire nonce");
_Static_assert(FMT_MANIFEST_CAPTURE_SIG_LEN == FMT_WIRE_SIG_LEN, "capture sig is the PROOF");
_Static_assert(FMT_MANIFEST_NONCE_LEN == FMT_MANIFEST_HASH_LEN, "nonce is written as hex64");

const char *fmt_manifest_sig_name(enum fmt_manifest_sig sig)
{
	switch (sig) {
	case FMT_MANIFEST_SIG_CMS: return "cms";
	case FMT_MANIFEST_SIG_ES256: return "es256";
	case FMT_MANIFEST_SIG_ED25519: return "ed25519";
	}
	return "unknown";
}

enum idp_err fmt_manifest_sig_parse(const char *s, size_t len, enum fmt_manifest_sig *sig,
                                    struct idp_error *err)
{
	static const enum fmt_manifest_sig all[] = {FMT_MANIFEST_SIG_CMS, FMT_MANIFEST_SIG_ES256,
	                                            FMT_MANIFEST_SIG_ED25519};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const char *n = fmt_manifest_sig_name(all[i]);
		if (len == strlen(n) && memcmp(s, n, len) == 0) {
			*sig = all[i];
			return IDP_OK;
		}
	}
	char v[IDP_QUOTE_MAX];
	return idp_error_set(err, IDP_E_UNSUPPORTED,
	                     "sig: \"%s\" is not a signature kind (cms, es256 or ed25519)",
	                     idp_quote(s, len, v));
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

enum idp_err fmt_manifest_time_format(int64_t t, char out[static FMT_MANIFEST_TIME_LEN + 1],
                                      struct idp_error *err)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if ((int64_t)tt != t || gmtime_r(&tt, &tm) == NULL || tm.tm_year < 70 ||
	    tm.tm_year > 9999 - 1900)
		return idp_error_set(err, IDP_E_ARG, "created: time %" PRId64 " is out of range", t);
	if (strftime(out, FMT_MANIFEST_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm) !=
	    FMT_MANIFEST_TIME_LEN)
		return idp_error_set(err, IDP_E_ARG, "created: time %" PRId64 " is out of range", t);
	return IDP_OK;
}

/* ---------------------------------------------------------------- field checks */

/* IDs and serials: the one ID rule of all formats (formats/id.h), with the
 * refused value quoted. */
static enum idp_err check_token(const char *name, const char *s, size_t len, struct idp_error *err)
{
	char v[IDP_QUOTE_MAX];
	if (len == 0)
		return idp_error_set(err, IDP_E_FORMAT, "%s: empty", name);
	if (len > FMT_MANIFEST_ID_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "%s: \"%s\" is %zu bytes, max %u", name,
		                     idp_quote(s, len, v), len, FMT_MANIFEST_ID_MAX);
	if (!fmt_id_valid(s, len))
		return idp_error_set(err, IDP_E_FORMAT,
		                     "%s: \"%s\" is not an ID (A-Z a-z 0-9 first, then also . _ - :)",
		                     name, idp_quote(s, len, v));
	return IDP_OK;
}

/* Product: 1..FMT_MANIFEST_PRODUCT_MAX printable ASCII without " and \, no
 * space at either end. */
static enum idp_err check_product(const char *s, size_t len, struct idp_error *err)
{
	char v[IDP_QUOTE_MAX];
	if (len == 0)
		return idp_error_set(err, IDP_E_FORMAT, "product: empty");
	if (len > FMT_MANIFEST_PRODUCT_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "product: \"%s\" is %zu bytes, max %u",
		                     idp_quote(s, len, v), len, FMT_MANIFEST_PRODUCT_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			return idp_error_set(err, IDP_E_FORMAT,
			                     "product: \"%s\" has a character outside printable ASCII "
			                     "(no \" or \\)",
			                     idp_quote(s, len, v));
	}
	if (s[0] == ' ' || s[len - 1] == ' ')
		return idp_error_set(err, IDP_E_FORMAT, "product: \"%s\" starts or ends with a space",
		                     idp_quote(s, len, v));
	return IDP_OK;
}

/* Attribute name: 1..32 of a-z 0-9 _ . -, starting with a-z. */
static enum idp_err check_attr_key(const char *s, size_t len, struct idp_error *err)
{
	char v[IDP_QUOTE_MAX];
	if (len == 0 || len > FMT_MANIFEST_ATTR_KEY_MAX)
		return idp_error_set(err, len == 0 ? IDP_E_FORMAT : IDP_E_LIMIT,
		                     "attrs: name \"%s\" is %zu bytes, expected 1..%u", idp_quote(s, len, v),
		                     len, FMT_MANIFEST_ATTR_KEY_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (i > 0 && ((c >= '0' && c <= '9') || c == '_' ||
		                                          c == '.' || c == '-'))))
			return idp_error_set(err, IDP_E_FORMAT,
			                     "attrs: name \"%s\" must be a-z then a-z 0-9 _ . -",
			                     idp_quote(s, len, v));
	}
	return IDP_OK;
}

/* Attribute value: 0..64 bytes of UTF-8 without control characters, " or \. */
static enum idp_err check_attr_value(const char *key, const char *s, size_t len,
                                     struct idp_error *err)
{
	char v[IDP_QUOTE_MAX];
	if (len > FMT_MANIFEST_ATTR_VAL_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "attrs: %s: value is %zu bytes, max %u", key,
		                     len, FMT_MANIFEST_ATTR_VAL_MAX);
	if (!fmt_utf8_valid((const uint8_t *)s, len))
		return idp_error_set(err, IDP_E_FORMAT, "attrs: %s: value is not valid UTF-8", key);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			return idp_error_set(err, IDP_E_FORMAT,
			                     "attrs: %s: value \"%s\" has a control character, \" or \\",
			                     key, idp_quote(s, len, v));
	}
	return IDP_OK;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "YYYY-MM-DDTHH:MM:SSZ", a real date and time, year 1970..9999. */
static enum idp_err check_time(const char *s, size_t len, struct idp_error *err)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	char v[IDP_QUOTE_MAX];
	bool ok = len == FMT_MANIFEST_TIME_LEN;
	for (size_t i = 0; ok && i < len; i++)
		ok = shape[i] == 'd' ? (s[i] >= '0' && s[i] <= '9') : s[i] == shape[i];
	if (ok) {
		int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
		int mo = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
		int h = (s[11] - '0') * 10 + (s[12] - '0'), mi = (s[14] - '0') * 10 + (s[15] - '0');
		int se = (s[17] - '0') * 10 + (s[18] - '0');
		ok = y >= 1970 && mo >= 1 && mo <= 12 && d >= 1 &&
		     d <= mdays[mo - 1] + (mo == 2 && is_leap(y)) && h < 24 && mi < 60 && se < 60;
	}
	if (!ok)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "created: \"%s\" is not a UTC time YYYY-MM-DDTHH:MM:SSZ",
		                     idp_quote(s, len, v));
	return IDP_OK;
}

/* 64 lower-case hex digits into out[32]. */
static enum idp_err parse_hash(const char *name, const char *s, size_t len,
                               uint8_t out[static FMT_MANIFEST_HASH_LEN], struct idp_error *err)
{
	char v[IDP_QUOTE_MAX];
	bool ok = len == 2 * (size_t)FMT_MANIFEST_HASH_LEN;
	for (size_t i = 0; ok && i < len; i++)
		ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
	if (!ok)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "%s: \"%s\" is not 64 lower-case hex digits (a SHA-256)", name,
		                     idp_quote(s, len, v));
	for (size_t i = 0; i < FMT_MANIFEST_HASH_LEN; i++)
		out[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
	return IDP_OK;
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* The chain rule: seq 1 and only seq 1 has an all-zero prev. */
static enum idp_err check_chain(uint64_t seq, const uint8_t prev[static FMT_MANIFEST_HASH_LEN],
                                struct idp_error *err)
{
	if (seq < 1 || seq > FMT_MANIFEST_SEQ_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "seq: %" PRIu64 " is outside 1..%llu", seq,
		                     FMT_MANIFEST_SEQ_MAX);
	bool zero = all_zero(prev, FMT_MANIFEST_HASH_LEN);
	if (seq == 1 && !zero)
		return idp_error_set(err, IDP_E_FORMAT, "prev: must be all zero when seq is 1");
	if (seq > 1 && zero)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "prev: all zero but seq is %" PRIu64 " (only seq 1 has no "
		                     "previous manifest)",
		                     seq);
	return IDP_OK;
}

/* Every check the reader makes on a header, on the struct. */
static enum idp_err check_header(const struct fmt_manifest_header *h, struct idp_error *err)
{
	enum idp_err rc;
	if (h->version != FMT_MANIFEST_VERSION && h->version != FMT_MANIFEST_VERSION_CAPTURE)
		return idp_error_set(err, IDP_E_UNSUPPORTED,
		                     "v: version %u is not supported (this reader knows %u and %u)",
		                     h->version, FMT_MANIFEST_VERSION,
		                     FMT_MANIFEST_VERSION_CAPTURE);
	if ((rc = check_token("batch", h->batch, strnlen(h->batch, sizeof(h->batch)), err)) ||
	    (rc = check_token("station", h->station, strnlen(h->station, sizeof(h->station)),
	                      err)) ||
	    (rc = check_chain(h->seq, h->prev, err)) ||
	    (rc = check_time(h->created, strnlen(h->created, sizeof(h->created)), err)) ||
	    (rc = check_product(h->product, strnlen(h->product, sizeof(h->product)), err)))
		return rc;
	if (h->count < 1 || h->count > FMT_MANIFEST_COUNT_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "count: %" PRIu64 " is outside 1..%u", h->count,
		                     FMT_MANIFEST_COUNT_MAX);
	if (h->sig != FMT_MANIFEST_SIG_CMS && h->sig != FMT_MANIFEST_SIG_ES256 &&
	    h->sig != FMT_MANIFEST_SIG_ED25519)
		return idp_error_set(err, IDP_E_UNSUPPORTED, "sig: kind %d is not supported",
		                     (int)h->sig);
	return IDP_OK;
}

/* p256: a cached group, or NULL (see fmt_key_spki_check). */
static enum idp_err check_pub(const uint8_t *pub, size_t len, const EC_GROUP *p256,
                              struct idp_error *err)
{
	enum fmt_key_type type;
	enum idp_err rc = fmt_key_spki_check(pub, len, p256, &type, err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "pub");
	return rc;
}

static int attr_cmp(const void *a, const void *b)
{
	const struct fmt_manifest_attr *const *x = a, *const *y = b;
	return strcmp((*x)->key, (*y)->key);
}

/* Every check the reader makes on a record, on the struct (keys included). */
static enum idp_err check_record(const struct fmt_manifest_record *r, bool check_key,
                                 struct idp_error *err)
{
	enum idp_err rc;
	if ((rc = check_token("id", r->id, strnlen(r->id, sizeof(r->id)), err)) ||
	    (rc = fmt_mac_check(r->mac, err)) ||
	    (rc = check_token("serial", r->serial, strnlen(r->serial, sizeof(r->serial)), err)))
		return rc;
	if (r->pub_len > FMT_KEY_SPKI_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "pub: %zu bytes, max %u", r->pub_len,
		                     FMT_KEY_SPKI_MAX);
	if (check_key && r->pub_len > 0 &&
	    (rc = check_pub(r->pub, r->pub_len, NULL, err)) != IDP_OK)
		return rc;
	if (r->has_capture && r->pub_len == 0)
		return idp_error_set(err, IDP_E_FORMAT, "capture: a capture proof needs pub");
	if (r->nattrs > FMT_MANIFEST_ATTRS_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "attrs: %zu attributes, max %u", r->nattrs,
		                     FMT_MANIFEST_ATTRS_MAX);
	for (size_t i = 0; i < r->nattrs; i++) {
		const struct fmt_manifest_attr *a = &r->attrs[i];
		size_t kl = strnlen(a->key, sizeof(a->key)), vl = strnlen(a->value, sizeof(a->value));
		if (kl > FMT_MANIFEST_ATTR_KEY_MAX || vl > FMT_MANIFEST_ATTR_VAL_MAX)
			return idp_error_set(err, IDP_E_LIMIT, "attrs: entry %zu is not terminated",
			                     i);
		if ((rc = check_attr_key(a->key, kl, err)) ||
		    (rc = check_attr_value(a->key, a->value, vl, err)))
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcmp(r->attrs[j].key, a->key) == 0)
				return idp_error_set(err, IDP_E_DUPLICATE,
				                     "attrs: name \"%s\" appears twice", a->key);
	}
	return IDP_OK;
}

/* ---------------------------------------------------------------- encoding */

/* "name":"value" with a leading comma unless first; value needs no escapes
 * (every string field's character set excludes " \ and controls). */
static void put_str(struct fmt_buf *o, const char *name, const char *value, bool first)
{
	fmt_buf_add_str(o, first ? "\"" : ",\"");
	fmt_buf_add_str(o, name);
	fmt_buf_add_str(o, "\":\"");
	fmt_buf_add_str(o, value);
	fmt_buf_add_str(o, "\"");
}

static void put_u64(struct fmt_buf *o, const char *name, uint64_t v)
{
	fmt_buf_addf(o, ",\"%s\":%" PRIu64, name, v);
}

static enum idp_err finish_line(struct fmt_buf *o, size_t *len, struct idp_error *err)
{
	fmt_buf_add(o, "\n", 1);
	enum idp_err rc = fmt_buf_check(o, "line", err);
	if (rc == IDP_OK)
		*len = o->len;
	return rc;
}

/* A line in out[0..FMT_MANIFEST_LINE_MAX), LF included, no NUL. */
static void line_begin(struct fmt_buf *o, uint8_t *out)
{
	fmt_buf_init_fixed(o, out, FMT_MANIFEST_LINE_MAX, FMT_MANIFEST_LINE_MAX, 0);
}

static enum idp_err encode_header(const struct fmt_manifest_header *h, uint8_t *out, size_t *len,
                                  struct idp_error *err)
{
	struct fmt_buf o;
	char hex[2 * FMT_MANIFEST_HASH_LEN + 1];
	line_begin(&o, out);
	fmt_buf_addf(&o, "{\"v\":%u", h->version); /* checked: 1 or 2 */
	put_str(&o, "batch", h->batch, false);
	put_str(&o, "station", h->station, false);
	put_u64(&o, "seq", h->seq);
	hex_encode(h->prev, FMT_MANIFEST_HASH_LEN, hex);
	hex[2 * (size_t)FMT_MANIFEST_HASH_LEN] = '\0';
	put_str(&o, "prev", hex, false);
	put_str(&o, "created", h->created, false);
	put_str(&o, "product", h->product, false);
	put_u64(&o, "count", h->count);
	put_str(&o, "sig", fmt_manifest_sig_name(h->sig), false);
	hex_encode(h->key, FMT_KEY_FINGERPRINT_LEN, hex);
	put_str(&o, "key", hex, false);
	fmt_buf_add_str(&o, "}");
	return finish_line(&o, len, err);
}

static enum idp_err encode_record(const struct fmt_manifest_record *r, uint8_t *out, size_t *len,
                                  struct idp_error *err)
{
	struct fmt_buf o;
	char mac[18];
	line_begin(&o, out);
	fmt_buf_add_str(&o, "{");
	put_str(&o, "id", r->id, true);
	fmt_mac_format(r->mac, mac);
	put_str(&o, "mac", mac, false);
	put_str(&o, "serial", r->serial, false);
	if (r->pub_len > 0) {
		char b64[PUB_B64_MAX + 1];
		fmt_b64_encode(FMT_B64_STD, r->pub, r->pub_len, b64);
		put_str(&o, "pub", b64, false);
	}
	if (r->nattrs > 0) {
		const struct fmt_manifest_attr *sorted[FMT_MANIFEST_ATTRS_MAX];
		for (size_t i = 0; i < r->nattrs; i++)
			sorted[i] = &r->attrs[i];
		qsort(sorted, r->nattrs, sizeof(const struct fmt_manifest_attr *), attr_cmp);
		fmt_buf_add_str(&o, ",\"attrs\":{");
		for (size_t i = 0; i < r->nattrs; i++)
			put_str(&o, sorted[i]->key, sorted[i]->value, i == 0);
		fmt_buf_add_str(&o, "}");
	}
	if (r->has_capture) {
		char hex[2 * FMT_MANIFEST_NONCE_LEN + 1], b64[SIG_B64_LEN + 1];
		hex_encode(r->capture_nonce, FMT_MANIFEST_NONCE_LEN, hex);
		hex[2 * (size_t)FMT_MANIFEST_NONCE_LEN] = '\0';
		fmt_b64_encode(FMT_B64_STD, r->capture_sig, FMT_MANIFEST_CAPTURE_SIG_LEN, b64);
		fmt_buf_add_str(&o, ",\"capture\":{");
		put_str(&o, "nonce", hex, true);
		put_str(&o, "sig", b64, false);
		fmt_buf_add_str(&o, "}");
	}
	fmt_buf_add_str(&o, "}");
	return finish_line(&o, len, err);
}

enum idp_err fmt_manifest_encode_header(const struct fmt_manifest_header *h,
                                        uint8_t out[static FMT_MANIFEST_LINE_MAX], size_t *len,
                                        struct idp_error *err)
{
	*len = 0;
	enum idp_err rc = check_header(h, err);
	if (rc != IDP_OK)
		return rc;
	return encode_header(h, out, len, err);
}

enum idp_err fmt_manifest_encode_record(const struct fmt_manifest_record *r,
                                        uint8_t out[static FMT_MANIFEST_LINE_MAX], size_t *len,
                                        struct idp_error *err)
{
	*len = 0;
	enum idp_err rc = check_record(r, true, err);
	if (rc != IDP_OK)
		return rc;
	return encode_record(r, out, len, err);
}

/* ---------------------------------------------------------------- parsing */

/* Parse a line (its LF, if any, dropped) into a JSON object. */
static enum idp_err parse_object(const uint8_t *buf, size_t *len, cJSON **root,
                                 struct idp_error *err)
{
	if (*len > 0 && buf[*len - 1] == '\n')
		(*len)--;
	if (*len >= FMT_MANIFEST_LINE_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "line: longer than %u bytes",
		                     FMT_MANIFEST_LINE_MAX);
	enum idp_err rc = fmt_json_parse(buf, *len, 2, root, err);
	if (rc != IDP_OK)
		return rc;
	if (!cJSON_IsObject(*root)) {
		cJSON_Delete(*root);
		*root = NULL;
		return idp_error_set(err, IDP_E_FORMAT, "line: not a JSON object");
	}
	return IDP_OK;
}

/* Compare the re-encoded line with the input; name the first differing byte. */
static enum idp_err same_bytes(const uint8_t *buf, size_t len, const uint8_t *enc, size_t elen,
                               struct idp_error *err)
{
	elen--; /* the encoder's LF; buf has none here */
	if (len == elen && memcmp(buf, enc, len) == 0)
		return IDP_OK;
	size_t i = 0;
	while (i < len && i < elen && buf[i] == enc[i])
		i++;
	return idp_error_set(err, IDP_E_FORMAT,
	                     "line: not in canonical form from byte %zu (field order, spacing or "
	                     "spelling differ from what the writer makes)",
	                     i + 1);
}

/* Copy a string member (0..max bytes; absent only when not required) into a
 * fixed field of max + 1 bytes; the field checks then name bad values. */
static enum idp_err get_into(const cJSON *o, const char *name, bool required, size_t max,
                             char *dst, size_t *n, struct idp_error *err)
{
	const char *s = NULL;
	size_t len = 0;
	enum idp_err rc = fmt_json_get_string(o, name, required, true, max, &s, &len, err);
	if (rc != IDP_OK)
		return rc;
	if (s != NULL)
		memcpy(dst, s, len);
	dst[len] = '\0';
	*n = len;
	return IDP_OK;
}

static enum idp_err get_u64(const cJSON *o, const char *name, uint64_t *v, struct idp_error *err)
{
	int64_t i = 0;
	enum idp_err rc = fmt_json_get_int(o, name, true, 0, FMT_JSON_INT_MAX, &i, NULL, err);
	if (rc == IDP_OK)
		*v = (uint64_t)i;
	return rc;
}

static enum idp_err header_fields(const cJSON *o, struct fmt_manifest_header *h,
                                  struct idp_error *err)
{
	static const char *const keys[] = {"v",       "batch",   "station", "seq", "prev",
	                                   "created", "product", "count",   "sig", "key"};
	int64_t v = 0;
	enum idp_err rc = fmt_json_get_int(o, "v", true, 0, FMT_JSON_INT_MAX, &v, NULL, err);
	if (rc != IDP_OK)
		return rc;
	if (v != FMT_MANIFEST_VERSION && v != FMT_MANIFEST_VERSION_CAPTURE)
		return idp_error_set(
		        err, IDP_E_UNSUPPORTED,
		        "v: version %lld is not supported (this reader knows %u and %u)",
		        (long long)v, FMT_MANIFEST_VERSION, FMT_MANIFEST_VERSION_CAPTURE);
	h->version = (unsigned)v;
	if ((rc = fmt_json_only_keys(o, keys, sizeof(keys) / sizeof(keys[0]), err)) != IDP_OK) {
		idp_error_prefix(err, "header");
		return rc;
	}
	char buf[2 * FMT_MANIFEST_HASH_LEN + 2];
	size_t n = 0;
	size_t bl = 0, sl = 0, cl = 0, pl = 0;
	if ((rc = get_into(o, "batch", true, FMT_MANIFEST_ID_MAX, h->batch, &bl, err)) ||
	    (rc = check_token("batch", h->batch, bl, err)) ||
	    (rc = get_into(o, "station", true, FMT_MANIFEST_ID_MAX, h->station, &sl, err)) ||
	    (rc = check_token("station", h->station, sl, err)) ||
	    (rc = get_u64(o, "seq", &h->seq, err)) ||
	    (rc = get_into(o, "prev", true, 2 * (size_t)FMT_MANIFEST_HASH_LEN, buf, &n, err)) ||
	    (rc = parse_hash("prev", buf, n, h->prev, err)) ||
	    (rc = check_chain(h->seq, h->prev, err)) ||
	    (rc = get_into(o, "created", true, FMT_MANIFEST_TIME_LEN, h->created, &cl, err)) ||
	    (rc = check_time(h->created, cl, err)) ||
	    (rc = get_into(o, "product", true, FMT_MANIFEST_PRODUCT_MAX, h->product, &pl, err)) ||
	    (rc = check_product(h->product, pl, err)))
		return rc;
	int64_t count = 0;
	if ((rc = fmt_json_get_int(o, "count", true, 1, FMT_MANIFEST_COUNT_MAX, &count, NULL, err)))
		return rc;
	h->count = (uint64_t)count;
	if ((rc = get_into(o, "sig", true, 16, buf, &n, err)) ||
	    (rc = fmt_manifest_sig_parse(buf, n, &h->sig, err)) ||
	    (rc = get_into(o, "key", true, 2 * (size_t)FMT_KEY_FINGERPRINT_LEN, buf, &n, err)) ||
	    (rc = parse_hash("key", buf, n, h->key, err)))
		return rc;
	return IDP_OK;
}

enum idp_err fmt_manifest_parse_header(const uint8_t *buf, size_t len, bool canonical,
                                       struct fmt_manifest_header *h, struct idp_error *err)
{
	memset(h, 0, sizeof(*h));
	cJSON *o = NULL;
	enum idp_err rc = parse_object(buf, &len, &o, err);
	if (rc == IDP_OK)
		rc = header_fields(o, h, err);
	cJSON_Delete(o);
	if (rc == IDP_OK && canonical) {
		uint8_t enc[FMT_MANIFEST_LINE_MAX];
		size_t elen = 0;
		rc = encode_header(h, enc, &elen, err);
		if (rc == IDP_OK)
			rc = same_bytes(buf, len, enc, elen, err);
	}
	if (rc != IDP_OK)
		memset(h, 0, sizeof(*h));
	return rc;
}

static enum idp_err record_attrs(const cJSON *o, struct fmt_manifest_record *r,
                                 struct idp_error *err)
{
	const cJSON *attrs = NULL;
	enum idp_err rc = fmt_json_get_object(o, "attrs", false, &attrs, err);
	if (rc != IDP_OK || attrs == NULL)
		return rc;
	for (const cJSON *a = attrs->child; a != NULL; a = a->next) {
		if (r->nattrs == FMT_MANIFEST_ATTRS_MAX)
			return idp_error_set(err, IDP_E_LIMIT, "attrs: more than %u attributes",
			                     FMT_MANIFEST_ATTRS_MAX);
		size_t kl = strlen(a->string); /* cJSON's own NUL-terminated copy */
		if ((rc = check_attr_key(a->string, kl, err)) != IDP_OK)
			return rc;
		if (!cJSON_IsString(a))
			return idp_error_set(err, IDP_E_FORMAT, "attrs: %s: expected a string",
			                     a->string);
		size_t vl = strnlen(a->valuestring, FMT_MANIFEST_ATTR_VAL_MAX + 1);
		if ((rc = check_attr_value(a->string, a->valuestring, vl, err)) != IDP_OK)
			return rc;
		struct fmt_manifest_attr *dst = &r->attrs[r->nattrs++];
		memcpy(dst->key, a->string, kl + 1);
		memcpy(dst->value, a->valuestring, vl + 1);
	}
	return IDP_OK;
}

/* The optional "capture" member: {"nonce":HEX64,"sig":BASE64 of 64 bytes}. */
static enum idp_err record_capture(const cJSON *o, struct fmt_manifest_record *r,
                                   struct idp_error *err)
{
	static const char *const keys[] = {"nonce", "sig"};
	const cJSON *c = NULL;
	enum idp_err rc = fmt_json_get_object(o, "capture", false, &c, err);
	if (rc != IDP_OK || c == NULL)
		return rc;
	if ((rc = fmt_json_only_keys(c, keys, sizeof(keys) / sizeof(keys[0]), err)) != IDP_OK) {
		idp_error_prefix(err, "capture");
		return rc;
	}
	char buf[SIG_B64_LEN + 2];
	size_t n = 0, got = 0;
	const char *s = NULL;
	uint8_t sig[FMT_MANIFEST_CAPTURE_SIG_LEN + 3];
	if ((rc = get_into(c, "nonce", true, 2 * (size_t)FMT_MANIFEST_NONCE_LEN, buf, &n, err)) ||
	    (rc = parse_hash("nonce", buf, n, r->capture_nonce, err)) ||
	    (rc = fmt_json_get_string(c, "sig", true, false, SIG_B64_LEN, &s, &n, err)))
		goto out;
	rc = fmt_b64_decode(FMT_B64_STD, s, n, sig, sizeof(sig), &got, err);
	if (rc == IDP_OK && got != FMT_MANIFEST_CAPTURE_SIG_LEN)
		rc = idp_error_set(err, IDP_E_FORMAT, "sig: %zu bytes, must be %u", got,
		                   FMT_MANIFEST_CAPTURE_SIG_LEN);
	if (rc == IDP_OK) {
		memcpy(r->capture_sig, sig, FMT_MANIFEST_CAPTURE_SIG_LEN);
		r->has_capture = true;
	}
out:
	if (rc != IDP_OK)
		idp_error_prefix(err, "capture");
	return rc;
}

enum idp_err fmt_manifest_capture_verify(const struct fmt_manifest_header *h,
                                         const struct fmt_manifest_record *r, struct idp_error *err)
{
	if (!r->has_capture || r->pub_len == 0 || r->pub_len > FMT_KEY_SPKI_MAX)
		return idp_error_set(err, IDP_E_FORMAT, "capture: no capture proof or no key");
	struct fmt_wire_challenge ch;
	struct fmt_wire_info in;
	struct fmt_wire_proof pr;
	memset(&ch, 0, sizeof(ch));
	memset(&in, 0, sizeof(in));
	memcpy(ch.nonce, r->capture_nonce, FMT_WIRE_NONCE_LEN);
	ch.station_id_len = strnlen(h->station, sizeof(h->station));
	memcpy(ch.station_id, h->station, ch.station_id_len);
	in.device_id_len = strnlen(r->id, sizeof(r->id));
	memcpy(in.device_id, r->id, in.device_id_len);
	memcpy(in.mac, r->mac, FMT_WIRE_MAC_LEN);
	in.serial_len = strnlen(r->serial, sizeof(r->serial));
	memcpy(in.serial, r->serial, in.serial_len);
	memcpy(in.spki, r->pub, r->pub_len);
	in.spki_len = r->pub_len;
	memcpy(pr.sig, r->capture_sig, FMT_WIRE_SIG_LEN);
	enum idp_err rc = fmt_key_spki_check(r->pub, r->pub_len, NULL, &in.key_type, err);
	if (rc == IDP_OK)
		rc = fmt_wire_proof_verify(&ch, &in, &pr, err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "capture");
	return rc;
}

static enum idp_err record_fields(const cJSON *o, struct fmt_manifest_record *r,
                                  const EC_GROUP *p256, struct idp_error *err)
{
	static const char *const keys[] = {"id", "mac", "serial", "pub", "attrs", "capture"};
	enum idp_err rc = fmt_json_only_keys(o, keys, sizeof(keys) / sizeof(keys[0]), err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "record");
		return rc;
	}
	char buf[PUB_B64_MAX + 2];
	size_t n = 0;
	if ((rc = get_into(o, "id", true, FMT_MANIFEST_ID_MAX, r->id, &n, err)) ||
	    (rc = check_token("id", r->id, n, err)) ||
	    (rc = get_into(o, "mac", true, FMT_MANIFEST_ID_MAX, buf, &n, err)) ||
	    (rc = fmt_mac_parse(buf, n, r->mac, err)) ||
	    (rc = get_into(o, "serial", true, FMT_MANIFEST_ID_MAX, r->serial, &n, err)) ||
	    (rc = check_token("serial", r->serial, n, err)))
		return rc;
	const char *s = NULL;
	if ((rc = fmt_json_get_string(o, "pub", false, false, PUB_B64_MAX, &s, &n, err)))
		return rc;
	if (s != NULL) {
		rc = fmt_b64_decode(FMT_B64_STD, s, n, r->pub, sizeof(r->pub), &r->pub_len, err);
		if (rc != IDP_OK) {
			idp_error_prefix(err, "pub");
			return rc;
		}
		if ((rc = check_pub(r->pub, r->pub_len, p256, err)) != IDP_OK)
			return rc;
	}
	if ((rc = record_attrs(o, r, err)) != IDP_OK)
		return rc;
	return record_capture(o, r, err);
}

static enum idp_err parse_record(const uint8_t *buf, size_t len, bool canonical,
                                 const EC_GROUP *p256, struct fmt_manifest_record *r,
                                 struct idp_error *err)
{
	/* Only the used part is reset: clearing all 1.4 KiB per record is measurable. */
	r->id[0] = r->serial[0] = '\0';
	r->pub_len = 0;
	r->nattrs = 0;
	r->has_capture = false;
	cJSON *o = NULL;
	enum idp_err rc = parse_object(buf, &len, &o, err);
	if (rc == IDP_OK)
		rc = record_fields(o, r, p256, err);
	cJSON_Delete(o);
	if (rc == IDP_OK && canonical) {
		uint8_t enc[FMT_MANIFEST_LINE_MAX];
		size_t elen = 0;
		rc = encode_record(r, enc, &elen, err);
		if (rc == IDP_OK)
			rc = same_bytes(buf, len, enc, elen, err);
	}
	return rc;
}

enum idp_err fmt_manifest_parse_record(const uint8_t *buf, size_t len, bool canonical,
                                       struct fmt_manifest_record *r, struct idp_error *err)
{
	return parse_record(buf, len, canonical, NULL, r, err);
}

/* ---------------------------------------------------------------- writer */

enum idp_err fmt_manifest_writer_begin(struct fmt_manifest_writer *w,
                                       const struct fmt_manifest_header *h,
                                       uint8_t out[static FMT_MANIFEST_LINE_MAX], size_t *len,
                                       struct idp_error *err)
{
	w->count = 0;
	w->written = 0;
	w->version = 0;
	enum idp_err rc = fmt_manifest_encode_header(h, out, len, err);
	if (rc == IDP_OK) {
		w->count = h->count;
		w->version = h->version;
	}
	return rc;
}

/* Version 2 records carry a capture proof, version 1 records none. */
static enum idp_err capture_fits(unsigned version, const struct fmt_manifest_record *r,
                                 struct idp_error *err)
{
	if (version == FMT_MANIFEST_VERSION_CAPTURE && !r->has_capture)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "capture: missing (every record of a version %u manifest "
		                     "carries its capture proof)",
		                     FMT_MANIFEST_VERSION_CAPTURE);
	if (version == FMT_MANIFEST_VERSION && r->has_capture)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "capture: not allowed in a version %u manifest",
		                     FMT_MANIFEST_VERSION);
	return IDP_OK;
}

enum idp_err fmt_manifest_writer_record(struct fmt_manifest_writer *w,
                                        const struct fmt_manifest_record *r,
                                        uint8_t out[static FMT_MANIFEST_LINE_MAX], size_t *len,
                                        struct idp_error *err)
{
	*len = 0;
	if (w->written >= w->count)
		return idp_error_set(err, IDP_E_LIMIT,
		                     "manifest: record %" PRIu64 " is more than the header count %" PRIu64,
		                     w->written + 1, w->count);
	enum idp_err rc = capture_fits(w->version, r, err);
	if (rc != IDP_OK)
		return rc;
	rc = fmt_manifest_encode_record(r, out, len, err);
	if (rc == IDP_OK)
		w->written++;
	return rc;
}

enum idp_err fmt_manifest_writer_finish(const struct fmt_manifest_writer *w, struct idp_error *err)
{
	if (w->count == 0 || w->written != w->count)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "manifest: header count is %" PRIu64 " but %" PRIu64
		                     " records were written",
		                     w->count, w->written);
	return IDP_OK;
}

/* ---------------------------------------------------------------- reader */

struct fmt_manifest_reader {
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t len;       /* bytes of the current, unfinished line */
	uint64_t lineno;  /* lines completed */
	uint64_t records; /* records returned */
	bool have_header;
	bool failed;
	struct fmt_manifest_header header;
	struct fmt_manifest_record record;
};

struct fmt_manifest_reader *fmt_manifest_reader_new(void)
{
	/* No P-256 group for the device key checks: building one costs about
	 * as much as reading a small manifest, and the plain curve equation
	 * of fmt_key_spki_check (NULL group) is as fast per key. */
	return calloc(1, sizeof(struct fmt_manifest_reader));
}

void fmt_manifest_reader_free(struct fmt_manifest_reader *r)
{
	if (r == NULL)
		return;
	free(r);
}

const struct fmt_manifest_header *fmt_manifest_reader_header(const struct fmt_manifest_reader *r)
{
	return &r->header;
}

const struct fmt_manifest_record *fmt_manifest_reader_record(const struct fmt_manifest_reader *r)
{
	return &r->record;
}

uint64_t fmt_manifest_reader_line(const struct fmt_manifest_reader *r)
{
	return r->lineno;
}

static enum idp_err fail(struct fmt_manifest_reader *r, enum idp_err rc, struct idp_error *err)
{
	r->failed = true;
	idp_error_prefix(err, "line %" PRIu64, r->lineno);
	return rc;
}

/* One complete line (LF included) is in r->line. */
static enum idp_err take_line(struct fmt_manifest_reader *r, enum fmt_manifest_item *item,
                              struct idp_error *err)
{
	size_t n = r->len;
	r->len = 0;
	r->lineno++;
	if (n == 1)
		return fail(r, idp_error_set(err, IDP_E_FORMAT, "empty line"), err);
	if (r->line[n - 2] == '\r')
		return fail(r, idp_error_set(err, IDP_E_FORMAT, "CR before LF (lines end with LF)"),
		            err);
	enum idp_err rc;
	if (!r->have_header) {
		rc = fmt_manifest_parse_header(r->line, n, true, &r->header, err);
		if (rc != IDP_OK)
			return fail(r, rc, err);
		r->have_header = true;
		*item = FMT_MANIFEST_HEADER;
		return IDP_OK;
	}
	if (r->records >= r->header.count)
		return fail(r,
		            idp_error_set(err, IDP_E_FORMAT,
		                          "more records than the header count %" PRIu64,
		                          r->header.count),
		            err);
	rc = parse_record(r->line, n, true, NULL, &r->record, err);
	if (rc == IDP_OK)
		rc = capture_fits(r->header.version, &r->record, err);
	if (rc != IDP_OK)
		return fail(r, rc, err);
	r->records++;
	*item = FMT_MANIFEST_RECORD;
	return IDP_OK;
}

enum idp_err fmt_manifest_reader_feed(struct fmt_manifest_reader *r, const uint8_t *buf,
                                      size_t len, size_t *used, enum fmt_manifest_item *item,
                                      struct idp_error *err)
{
	*used = 0;
	*item = FMT_MANIFEST_NONE;
	if (r->failed)
		return idp_error_set(err, IDP_E_ARG, "manifest reader: used after an error");
	size_t room = FMT_MANIFEST_LINE_MAX - r->len;
	size_t look = len < room ? len : room;
	const uint8_t *lf = look > 0 ? memchr(buf, '\n', look) : NULL;
	if (lf == NULL) {
		if (len >= room) {
			r->lineno++;
			return fail(r,
			            idp_error_set(err, IDP_E_LIMIT, "longer than %u bytes",
			                          FMT_MANIFEST_LINE_MAX),
			            err);
		}
		memcpy(r->line + r->len, buf, len);
		r->len += len;
		*used = len;
		return IDP_OK;
	}
	size_t n = (size_t)(lf - buf) + 1;
	memcpy(r->line + r->len, buf, n);
	r->len += n;
	*used = n;
	return take_line(r, item, err);
}

enum idp_err fmt_manifest_reader_finish(struct fmt_manifest_reader *r, struct idp_error *err)
{
	if (r->failed)
		return idp_error_set(err, IDP_E_ARG, "manifest reader: used after an error");
	if (r->len > 0) {
		r->lineno++;
		return fail(r, idp_error_set(err, IDP_E_FORMAT, "no LF at the end (truncated?)"),
		            err);
	}
	r->failed = true;
	if (!r->have_header)
		return idp_error_set(err, IDP_E_FORMAT, "manifest: empty, no header line");
	if (r->records != r->header.count)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "manifest: header count is %" PRIu64 " but %" PRIu64
		                     " records follow",
		                     r->header.count, r->records);
	r->failed = false;
	return IDP_OK;
}

/* ---------------------------------------------------------------- check */

enum idp_err fmt_manifest_check_piece(void *arg, uint64_t offset, const uint8_t *buf, size_t len,
                                      bool last, struct idp_error *err)
{
	struct fmt_manifest_check *c = arg;
	if (offset == 0) {
		fmt_manifest_reader_free(c->r);
		c->r = fmt_manifest_reader_new();
		c->next = 0;
		c->done = false;
		if (c->r == NULL)
			return idp_error_set(err, IDP_E_NOMEM, "manifest: out of memory");
	}
	if (c->r == NULL || offset != c->next || c->done)
		return idp_error_set(err, IDP_E_ARG, "manifest check: piece at %" PRIu64 " out of order",
		                     offset);
	size_t off = 0;
	while (off < len) {
		size_t used = 0;
		enum fmt_manifest_item item = FMT_MANIFEST_NONE;
		enum idp_err rc = fmt_manifest_reader_feed(c->r, buf + off, len - off, &used, &item, err);
		if (rc != IDP_OK)
			return rc;
		off += used; /* the reader takes at least one byte, or fails */
	}
	c->next = offset + len;
	if (!last)
		return IDP_OK;
	enum idp_err rc = fmt_manifest_reader_finish(c->r, err);
	if (rc == IDP_OK) {
		c->header = *fmt_manifest_reader_header(c->r);
		c->done = true;
	}
	return rc;
}

void fmt_manifest_check_free(struct fmt_manifest_check *c)
{
	if (c == NULL)
		return;
	fmt_manifest_reader_free(c->r);
	c->r = NULL;
}
