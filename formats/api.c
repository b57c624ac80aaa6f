/*
 * api.c - see api.h. Spec: formats/api.md.
 *
 * Parsers extract members (type, presence, length) into the struct, then one
 * check per message validates values and cross-member rules; encoders run the
 * same check first, so what one side writes the other side reads.
 */
#include "formats/api.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "formats/b64.h"
#include "formats/buf.h"
#include "formats/json.h"
#include "formats/x509.h"

#define API_JSON_DEPTH 2u /* deepest nesting of any body: {"pop":{...}} */

/* ------------------------------------------------------------------ text */

enum text_class {
	TEXT_ID,      /* formats/id.h: [A-Za-z0-9] then [A-Za-z0-9._:-] */
	TEXT_AGENT,   /* [A-Za-z0-9._+~-] */
	TEXT_OOB,     /* printable ASCII without space */
	TEXT_TOKEN,   /* [A-Za-z0-9._-] */
	TEXT_CODE,    /* [a-z_] */
	TEXT_URL,     /* "https://" then printable ASCII without space */
	TEXT_MESSAGE, /* UTF-8 without control characters */
	TEXT_PEM,     /* printable ASCII and '\n', parsing as certificates */
	TEXT_PEM_CHARS, /* TEXT_PEM's characters, certificates checked before */
};

static bool is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool char_ok(enum text_class cls, unsigned char c)
{
	switch (cls) {
	case TEXT_ID: /* checked by fmt_id_check before this is reached */
		return false;
	case TEXT_AGENT:
		return is_alnum(c) || c == '.' || c == '_' || c == '+' || c == '~' || c == '-';
	case TEXT_OOB:
	case TEXT_URL:
		return c > 0x20 && c < 0x7f;
	case TEXT_TOKEN:
		return is_alnum(c) || c == '.' || c == '_' || c == '-';
	case TEXT_CODE:
		return (c >= 'a' && c <= 'z') || c == '_';
	case TEXT_MESSAGE:
		return c >= 0x20 && c != 0x7f;
	case TEXT_PEM:
	case TEXT_PEM_CHARS:
		return (c >= 0x20 && c < 0x7f) || c == '\n';
	}
	return false;
}

/* A PEM text that is nothing but certificate blocks, each parsing as X.509. */
static enum idp_err check_pem(const char *s, size_t n, const char *what, struct idp_error *err)
{
	STACK_OF(X509) *certs = NULL;
	enum idp_err rc = fmt_x509_list_parse((const uint8_t *)s, n, FMT_X509_LIST_MAX,
	                                      FMT_X509_STRICT, &certs, err);
	sk_X509_pop_free(certs, X509_free);
	if (rc != IDP_OK)
		idp_error_prefix(err, "%s", what);
	return rc;
}

/* Check s[0..n) against its class and 1..max. */
static enum idp_err check_text(const char *s, size_t n, size_t max, enum text_class cls,
                               const char *what, struct idp_error *err)
{
	if (n == 0)
		return idp_error_set(err, IDP_E_FORMAT, "%s: empty", what);
	if (n > max)
		return idp_error_set(err, IDP_E_LIMIT, "%s: %zu bytes, max %zu", what, n, max);
	if (cls == TEXT_ID)
		return fmt_id_check(s, n, what, err);
	if (cls == TEXT_MESSAGE && !fmt_utf8_valid((const uint8_t *)s, n))
		return idp_error_set(err, IDP_E_FORMAT, "%s: not valid UTF-8", what);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (cls == TEXT_MESSAGE && c >= 0x80)
			continue;
		if (char_ok(cls, c))
			continue;
		/* A secret's characters stay out of messages; its offset is enough. */
		if (cls == TEXT_OOB || cls == TEXT_TOKEN)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "%s: character at offset %zu is not allowed", what, i);
		return idp_error_set(err, IDP_E_FORMAT,
		                     "%s: character 0x%02x at offset %zu is not allowed", what, c, i);
	}
	if (cls == TEXT_URL && (n < 9 || memcmp(s, "https://", 8) != 0))
		return idp_error_set(err, IDP_E_FORMAT, "%s: must start with https://", what);
	if (cls == TEXT_PEM)
		return check_pem(s, n, what, err);
	return IDP_OK;
}

/* A NUL-terminated struct member: "" is absent; present must pass its class. */
static enum idp_err check_field(const char *s, size_t size, bool required, enum text_class cls,
                                const char *what, struct idp_error *err)
{
	size_t n = strnlen(s, size);
	if (n == size)
		return idp_error_set(err, IDP_E_ARG, "%s: not NUL-terminated", what);
	if (n == 0)
		return required ? idp_error_set(err, IDP_E_FORMAT, "%s: missing", what) : IDP_OK;
	return check_text(s, n, size - 1, cls, what, err);
}

static enum idp_err check_absent(const char *s, const char *what, const char *where,
                                 struct idp_error *err)
{
	if (s[0] != '\0')
		return idp_error_set(err, IDP_E_FORMAT, "%s: not allowed in %s", what, where);
	return IDP_OK;
}

enum idp_err fmt_api_check_id(const char *s, size_t len, const char *what, struct idp_error *err)
{
	return check_text(s, len, FMT_API_ID_MAX, TEXT_ID, what, err);
}

/* ------------------------------------------------------------ JSON input */

/* Cleanse every string in a parsed tree before it is freed: a body may carry
 * a token or the out-of-band secret, and cJSON_Delete does not cleanse. */
static void wipe_tree(cJSON *node)
{
	for (cJSON *c = node; c != NULL; c = c->next) {
		if (c->valuestring != NULL)
			OPENSSL_cleanse(c->valuestring, strlen(c->valuestring));
		if (c->child != NULL)
			wipe_tree(c->child);
	}
}

/* Bounded body -> JSON object. */
static enum idp_err parse_body(const uint8_t *buf, size_t len, const char *what, cJSON **root,
                               struct idp_error *err)
{
	*root = NULL;
	if (len == 0)
		return idp_error_set(err, IDP_E_FORMAT, "%s: empty body", what);
	if (len > FMT_API_BODY_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "%s: body is %zu bytes, max %u", what, len,
		                     FMT_API_BODY_MAX);
	enum idp_err rc = fmt_json_parse(buf, len, API_JSON_DEPTH, root, err);
	if (rc != IDP_OK)
		return rc;
	if (!cJSON_IsObject(*root)) {
		wipe_tree(*root);
		cJSON_Delete(*root);
		*root = NULL;
		return idp_error_set(err, IDP_E_FORMAT, "%s: body is not a JSON object", what);
	}
	return IDP_OK;
}

/* Fills one message struct from a parsed body. */
typedef enum idp_err (*from_json_fn)(const cJSON *root, void *out, struct idp_error *err);

/* Bounded body -> from(): the shape of every parser. out[0..size) is
 * cleansed on failure. */
static enum idp_err parse_with(const uint8_t *buf, size_t len, const char *what, from_json_fn from,
                               void *out, size_t size, struct idp_error *err)
{
	cJSON *root = NULL;
	enum idp_err rc = parse_body(buf, len, what, &root, err);
	if (rc == IDP_OK)
		rc = from(root, out, err);
	if (root != NULL)
		wipe_tree(root);
	cJSON_Delete(root);
	if (rc != IDP_OK)
		OPENSSL_cleanse(out, size);
	return rc;
}

/* String member into dst (size bytes with the NUL); absent leaves "". */
static enum idp_err get_text(const cJSON *o, const char *name, bool required, enum text_class cls,
                             char *dst, size_t size, struct idp_error *err)
{
	const char *s = NULL;
	size_t n = 0;
	dst[0] = '\0';
	enum idp_err rc = fmt_json_get_string(o, name, required, false, size - 1, &s, &n, err);
	if (rc != IDP_OK || s == NULL)
		return rc;
	rc = check_text(s, n, size - 1, cls, name, err);
	if (rc != IDP_OK)
		return rc;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return IDP_OK;
}

/* base64 member decoding to exactly want bytes (want_max when want is 0). */
static enum idp_err get_b64(const cJSON *o, const char *name, bool required, uint8_t *dst,
                            size_t want, size_t want_max, size_t *got, bool *present,
                            struct idp_error *err)
{
	const char *s = NULL;
	size_t n = 0, out = 0;
	size_t cap = want != 0 ? want : want_max;
	*present = false;
	enum idp_err rc = fmt_json_get_string(o, name, required, false,
	                                      fmt_b64_encoded_len(FMT_B64_STD, cap), &s, &n, err);
	if (rc != IDP_OK || s == NULL)
		return rc;
	rc = fmt_b64_decode(FMT_B64_STD, s, n, dst, cap, &out, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "%s", name);
		return rc;
	}
	if (want != 0 && out != want)
		return idp_error_set(err, IDP_E_FORMAT, "%s: %zu bytes, expected %zu", name, out,
		                     want);
	if (got != NULL)
		*got = out;
	*present = true;
	return IDP_OK;
}

static bool name_in(const char *name, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* Answers: a member this version knows must belong to this kind of answer;
 * one it does not know is ignored (answers may grow). */
static enum idp_err only_known_here(const cJSON *o, const char *const *known, size_t nk,
                                    const char *const *here, size_t nh, const char *where,
                                    struct idp_error *err)
{
	for (const cJSON *c = o->child; c != NULL; c = c->next)
		if (name_in(c->string, known, nk) && !name_in(c->string, here, nh))
			return idp_error_set(err, IDP_E_FORMAT, "%s: not allowed in %s", c->string,
			                     where);
	return IDP_OK;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ----------------------------------------------------------- JSON output */

/* A body is built in the caller's out[0..out_max), NUL-terminated. */
static enum idp_err body_begin(struct fmt_buf *b, char *out, size_t out_max, size_t *len,
                             struct idp_error *err)
{
	*len = 0;
	if (out == NULL || out_max == 0)
		return idp_error_set(err, IDP_E_ARG, "encode: no output buffer");
	size_t max = out_max - 1 < FMT_API_BODY_MAX ? out_max - 1 : FMT_API_BODY_MAX;
	/* Secret: a half-written body may hold a token; fmt_buf_free wipes it. */
	fmt_buf_init_fixed(b, out, out_max, max, FMT_BUF_SECRET);
	fmt_buf_add(b, "{", 1);
	return IDP_OK;
}

static enum idp_err body_end(struct fmt_buf *b, size_t out_max, size_t *len, const char *what,
                           struct idp_error *err)
{
	fmt_buf_add(b, "}", 1);
	if (fmt_buf_status(b) != IDP_OK) {
		fmt_buf_free(b); /* leaves out wiped, "" */
		return idp_error_set(err, IDP_E_LIMIT, "%s: does not fit in %zu bytes", what,
		                     out_max - 1 < FMT_API_BODY_MAX ? out_max : (size_t)FMT_API_BODY_MAX);
	}
	*len = b->len;
	return IDP_OK;
}

/* ---------------------------------------------------------------- tables */

struct code_entry {
	const char *name;
	enum fmt_api_err_code code;
	int http;
};

static const struct code_entry err_codes[] = {
	{"bad_request", FMT_API_ERR_BAD_REQUEST, 400},
	{"invalid_field", FMT_API_ERR_INVALID_FIELD, 400},
	{"unsupported", FMT_API_ERR_UNSUPPORTED, 400},
	{"pop_invalid", FMT_API_ERR_POP_INVALID, 401},
	{"pop_stale", FMT_API_ERR_POP_STALE, 401},
	{"nonce_invalid", FMT_API_ERR_NONCE_INVALID, 401},
	{"token_invalid", FMT_API_ERR_TOKEN_INVALID, 401},
	{"unauthorized", FMT_API_ERR_UNAUTHORIZED, 401},
	{"forbidden", FMT_API_ERR_FORBIDDEN, 403},
	{"not_found", FMT_API_ERR_NOT_FOUND, 404},
	{"method_not_allowed", FMT_API_ERR_METHOD_NOT_ALLOWED, 405},
	{"timeout", FMT_API_ERR_TIMEOUT, 408},
	{"conflict", FMT_API_ERR_CONFLICT, 409},
	{"too_large", FMT_API_ERR_TOO_LARGE, 413},
	{"unsupported_media_type", FMT_API_ERR_MEDIA_TYPE, 415},
	{"throttled", FMT_API_ERR_THROTTLED, 429},
	{"internal", FMT_API_ERR_INTERNAL, 500},
	{"suspended", FMT_API_ERR_SUSPENDED, 503},
	{"unavailable", FMT_API_ERR_UNAVAILABLE, 503},
	{"length_required", FMT_API_ERR_LENGTH_REQUIRED, 411},
	{"headers_too_large", FMT_API_ERR_HEADERS_TOO_LARGE, 431},
	{"storage_full", FMT_API_ERR_STORAGE_FULL, 503},
};

/* The one idp_err -> API error map (formats/api.md §9). A row for a
 * specific origin wins over the FMT_API_ORIGIN_SERVER row of its code. */
static const struct {
	enum idp_err rc;
	enum fmt_api_err_origin origin;
	enum fmt_api_err_code code;
} err_map[] = {
	{IDP_E_NOMEM, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INTERNAL},
	{IDP_E_ARG, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INTERNAL},
	{IDP_E_IO, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INTERNAL},
	{IDP_E_FORMAT, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INVALID_FIELD},
	{IDP_E_LIMIT, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INVALID_FIELD},
	{IDP_E_UNSUPPORTED, FMT_API_ORIGIN_SERVER, FMT_API_ERR_UNSUPPORTED},
	{IDP_E_CRYPTO, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INTERNAL},
	{IDP_E_VERIFY, FMT_API_ORIGIN_SERVER, FMT_API_ERR_FORBIDDEN},
	{IDP_E_DUPLICATE, FMT_API_ORIGIN_SERVER, FMT_API_ERR_CONFLICT},
	{IDP_E_NOTFOUND, FMT_API_ORIGIN_SERVER, FMT_API_ERR_NOT_FOUND},
	{IDP_E_EXPIRED, FMT_API_ORIGIN_SERVER, FMT_API_ERR_FORBIDDEN},
	{IDP_E_DENIED, FMT_API_ORIGIN_SERVER, FMT_API_ERR_FORBIDDEN},
	{IDP_E_CONFLICT, FMT_API_ORIGIN_SERVER, FMT_API_ERR_CONFLICT},
	{IDP_E_TIMEOUT, FMT_API_ORIGIN_SERVER, FMT_API_ERR_UNAVAILABLE},
	{IDP_E_AGAIN, FMT_API_ORIGIN_SERVER, FMT_API_ERR_UNAVAILABLE},
	{IDP_E_SUSPENDED, FMT_API_ORIGIN_SERVER, FMT_API_ERR_SUSPENDED},
	{IDP_E_FULL, FMT_API_ORIGIN_SERVER, FMT_API_ERR_STORAGE_FULL},
	{IDP_E_VERIFY, FMT_API_ORIGIN_POP, FMT_API_ERR_POP_INVALID},
	{IDP_E_EXPIRED, FMT_API_ORIGIN_POP, FMT_API_ERR_POP_STALE},
	{IDP_E_DENIED, FMT_API_ORIGIN_POP, FMT_API_ERR_POP_INVALID},
	{IDP_E_DENIED, FMT_API_ORIGIN_AUTH, FMT_API_ERR_UNAUTHORIZED},
	{IDP_E_NOTFOUND, FMT_API_ORIGIN_AUTH, FMT_API_ERR_UNAUTHORIZED},
};

static const char *const reason_names[] = {
	[FMT_API_REASON_KEY_MISMATCH] = "key_mismatch", [FMT_API_REASON_MAC_MISMATCH] = "mac_mismatch",
	[FMT_API_REASON_OOB_MISMATCH] = "oob_mismatch", [FMT_API_REASON_KEY_REUSED] = "key_reused",
	[FMT_API_REASON_REJECTED] = "rejected",         [FMT_API_REASON_REVOKED] = "revoked",
};

static const char *const status_names[] = {
	[FMT_API_APPROVED] = "approved",
	[FMT_API_PENDING] = "pending",
	[FMT_API_REJECTED] = "rejected",
};


const char *fmt_api_err_code_name(enum fmt_api_err_code code)
{
	for (size_t i = 0; i < COUNT(err_codes); i++)
		if (err_codes[i].code == code)
			return err_codes[i].name;
	return NULL;
}

int fmt_api_err_http_status(enum fmt_api_err_code code)
{
	for (size_t i = 0; i < COUNT(err_codes); i++)
		if (err_codes[i].code == code)
			return err_codes[i].http;
	return 0;
}

enum fmt_api_err_code fmt_api_err_of(enum idp_err rc, enum fmt_api_err_origin origin)
{
	enum fmt_api_err_code code = FMT_API_ERR_INTERNAL;
	for (size_t i = 0; i < COUNT(err_map); i++) {
		if (err_map[i].rc != rc)
			continue;
		if (err_map[i].origin == origin)
			return err_map[i].code;
		if (err_map[i].origin == FMT_API_ORIGIN_SERVER)
			code = err_map[i].code;
	}
	return code;
}

const char *fmt_api_reason_name(enum fmt_api_reason reason)
{
	if ((size_t)reason >= COUNT(reason_names))
		return NULL;
	return reason_names[reason];
}

int fmt_api_status_http_status(enum fmt_api_status_kind status)
{
	switch (status) {
	case FMT_API_APPROVED: return 200;
	case FMT_API_PENDING: return 202;
	case FMT_API_REJECTED: return 403;
	}
	return 0;
}

/* Index of s in names[1..n) (entry 0 unused), or 0. */
static size_t lookup(const char *s, const char *const *names, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (names[i] != NULL && strcmp(s, names[i]) == 0)
			return i;
	return 0;
}

/* -------------------------------------------------------------- requests */

static const char *purpose_name(enum fmt_api_purpose p)
{
	switch (p) {
	case FMT_API_PROVISION: return "provision request";
	case FMT_API_EXCHANGE: return "exchange request";
	case FMT_API_RENEW: return "renew request";
	}
	return NULL;
}

/* Every check of fmt_api_request_check but the public key's own. */
static enum idp_err check_members(const struct fmt_api_request *r, struct idp_error *err)
{
	const char *where = purpose_name(r->purpose);
	if (where == NULL)
		return idp_error_set(err, IDP_E_ARG, "request: purpose %d is unknown",
		                     (int)r->purpose);
	enum idp_err rc = check_field(r->device_id, sizeof(r->device_id), true, TEXT_ID,
	                              "device_id", err);
	if (rc == IDP_OK)
		rc = fmt_mac_check(r->mac, err);
	if (rc != IDP_OK)
		return rc;
	if (r->key_type != FMT_KEY_P256 && r->key_type != FMT_KEY_ED25519)
		return idp_error_set(err, IDP_E_UNSUPPORTED, "key_type: %d is not supported",
		                     (int)r->key_type);
	if (r->spki_len == 0 || r->spki_len > sizeof(r->spki))
		return idp_error_set(err, IDP_E_FORMAT, "public_key: %zu bytes", r->spki_len);
	if (r->purpose == FMT_API_PROVISION) {
		rc = check_field(r->agent_version, sizeof(r->agent_version), true, TEXT_AGENT,
		                 "agent_version", err);
		if (rc == IDP_OK)
			rc = check_absent(r->token, "token", where, err);
	} else {
		rc = check_field(r->token, sizeof(r->token), true, TEXT_TOKEN, "token", err);
		if (rc == IDP_OK)
			rc = check_absent(r->agent_version, "agent_version", where, err);
		if (rc == IDP_OK && r->has_oob_proof)
			rc = idp_error_set(err, IDP_E_FORMAT, "oob_proof: not allowed in %s", where);
	}
	if (rc != IDP_OK)
		return rc;
	if (r->pop.ts < 0 || r->pop.ts > FMT_API_TIME_MAX)
		return idp_error_set(err, IDP_E_FORMAT, "pop: ts %lld is outside 0..%lld",
		                     (long long)r->pop.ts, (long long)FMT_API_TIME_MAX);
	return IDP_OK;
}

enum idp_err fmt_api_request_check(const struct fmt_api_request *r, struct fmt_key **key,
                                   struct idp_error *err)
{
	if (key != NULL)
		*key = NULL;
	enum idp_err rc = check_members(r, err);
	if (rc != IDP_OK)
		return rc;
	/* A caller that needs no key (the encoder, the signer) gets the same
	 * verdict from fmt_key_spki_check without a key import (3 us, not 15-90). */
	struct fmt_key *k = NULL;
	enum fmt_key_type type = 0;
	if (key != NULL) {
		rc = fmt_key_parse_spki_der(r->spki, r->spki_len, &k, err);
		if (rc == IDP_OK)
			type = fmt_key_type(k);
	} else {
		rc = fmt_key_spki_check(r->spki, r->spki_len, NULL, &type, err);
	}
	if (rc != IDP_OK) {
		idp_error_prefix(err, "public_key");
		return rc;
	}
	if (type != r->key_type) {
		rc = idp_error_set(err, IDP_E_FORMAT, "public_key: a %s key, but key_type is %s",
		                   fmt_key_type_name(type), fmt_key_type_name(r->key_type));
		fmt_key_free(k);
		return rc;
	}
	if (key != NULL)
		*key = k;
	return IDP_OK;
}

enum idp_err fmt_api_request_check_signer(const struct fmt_api_request *r,
                                          const struct fmt_key *key, struct idp_error *err)
{
	enum idp_err rc = check_members(r, err);
	if (rc != IDP_OK)
		return rc;
	uint8_t own[FMT_KEY_SPKI_MAX];
	size_t len = 0;
	rc = fmt_key_spki_der(key, own, &len, err);
	if (rc == IDP_OK && (r->key_type != fmt_key_type(key) || r->spki_len != len ||
	                     memcmp(r->spki, own, len) != 0))
		rc = idp_error_set(err, IDP_E_ARG, "public_key: not the signing key's own");
	return rc;
}

/* The members of a request body into r, unchecked beyond type and size. */
static enum idp_err request_fields(const cJSON *root, struct fmt_api_request *r,
                                   struct idp_error *err)
{
	static const char *const prov_keys[] = {"device_id",     "mac",        "key_type", "public_key",
	                                        "agent_version", "oob_proof", "pop"};
	static const char *const tok_keys[] = {"device_id",  "mac",   "key_type",
	                                       "public_key", "token", "pop"};
	static const char *const pop_keys[] = {"ts", "nonce", "sig"};
	bool prov = r->purpose == FMT_API_PROVISION;
	enum idp_err rc = prov ? fmt_json_only_keys(root, prov_keys, COUNT(prov_keys), err)
	                       : fmt_json_only_keys(root, tok_keys, COUNT(tok_keys), err);
	if (rc == IDP_OK)
		rc = get_text(root, "device_id", true, TEXT_ID, r->device_id, sizeof(r->device_id),
		              err);
	const char *s = NULL;
	size_t n = 0;
	if (rc == IDP_OK)
		rc = fmt_json_get_string(root, "mac", true, false, 64, &s, &n, err);
	if (rc == IDP_OK)
		rc = fmt_mac_parse(s, n, r->mac, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_string(root, "key_type", true, false, 32, &s, &n, err);
	if (rc == IDP_OK)
		rc = fmt_key_type_parse(s, n, &r->key_type, err);
	bool present = false;
	if (rc == IDP_OK)
		rc = get_b64(root, "public_key", true, r->spki, 0, sizeof(r->spki), &r->spki_len,
		             &present, err);
	if (rc == IDP_OK && prov)
		rc = get_text(root, "agent_version", true, TEXT_AGENT, r->agent_version,
		              sizeof(r->agent_version), err);
	if (rc == IDP_OK && prov)
		rc = get_b64(root, "oob_proof", false, r->oob_proof, FMT_API_OOB_PROOF_LEN, 0, NULL,
		             &r->has_oob_proof, err);
	if (rc == IDP_OK && !prov)
		rc = get_text(root, "token", true, TEXT_TOKEN, r->token, sizeof(r->token), err);
	const cJSON *pop = NULL;
	if (rc == IDP_OK)
		rc = fmt_json_get_object(root, "pop", true, &pop, err);
	if (rc != IDP_OK)
		return rc;
	rc = fmt_json_only_keys(pop, pop_keys, COUNT(pop_keys), err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(pop, "ts", true, 0, FMT_API_TIME_MAX, &r->pop.ts, NULL, err);
	if (rc == IDP_OK)
		rc = get_b64(pop, "nonce", false, r->pop.nonce, FMT_API_NONCE_LEN, 0, NULL,
		             &r->pop.has_nonce, err);
	if (rc == IDP_OK)
		rc = get_b64(pop, "sig", true, r->pop.sig, FMT_KEY_RAW_SIG_LEN, 0, NULL, &present,
		             err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "pop");
	return rc;
}

enum idp_err fmt_api_request_parse_key(enum fmt_api_purpose purpose, const uint8_t *buf,
                                       size_t len, struct fmt_api_request *out,
                                       struct fmt_key **key, struct idp_error *err)
{
	if (key != NULL)
		*key = NULL;
	memset(out, 0, sizeof(*out));
	const char *what = purpose_name(purpose);
	if (what == NULL)
		return idp_error_set(err, IDP_E_ARG, "request: purpose %d is unknown", (int)purpose);
	out->purpose = purpose;
	cJSON *root = NULL;
	enum idp_err rc = parse_body(buf, len, what, &root, err);
	if (rc == IDP_OK)
		rc = request_fields(root, out, err);
	if (root != NULL)
		wipe_tree(root);
	cJSON_Delete(root);
	/* One key import serves the checks and the caller's verification. */
	if (rc == IDP_OK)
		rc = fmt_api_request_check(out, key, err);
	if (rc != IDP_OK)
		fmt_api_request_wipe(out);
	return rc;
}

enum idp_err fmt_api_request_parse(enum fmt_api_purpose purpose, const uint8_t *buf, size_t len,
                                   struct fmt_api_request *out, struct idp_error *err)
{
	return fmt_api_request_parse_key(purpose, buf, len, out, NULL, err);
}

enum idp_err fmt_api_request_encode(const struct fmt_api_request *r, char *out, size_t out_max,
                                    size_t *len, struct idp_error *err)
{
	struct fmt_buf b;
	*len = 0;
	enum idp_err rc = fmt_api_request_check(r, NULL, err);
	if (rc == IDP_OK)
		rc = body_begin(&b, out, out_max, len, err);
	if (rc != IDP_OK)
		return rc;
	char mac[FMT_MAC_TEXT_LEN + 1];
	fmt_mac_format(r->mac, mac);
	fmt_json_put_str(&b, "device_id", r->device_id);
	fmt_json_put_str(&b, "mac", mac);
	fmt_json_put_str(&b, "key_type", fmt_key_type_name(r->key_type));
	fmt_json_put_b64(&b, "public_key", r->spki, r->spki_len);
	if (r->purpose == FMT_API_PROVISION) {
		fmt_json_put_str(&b, "agent_version", r->agent_version);
		if (r->has_oob_proof)
			fmt_json_put_b64(&b, "oob_proof", r->oob_proof, FMT_API_OOB_PROOF_LEN);
	} else {
		fmt_json_put_str(&b, "token", r->token);
	}
	fmt_json_put_key(&b, "pop");
	fmt_buf_add(&b, "{", 1);
	fmt_json_put_int(&b, "ts", r->pop.ts);
	if (r->pop.has_nonce)
		fmt_json_put_b64(&b, "nonce", r->pop.nonce, FMT_API_NONCE_LEN);
	fmt_json_put_b64(&b, "sig", r->pop.sig, FMT_KEY_RAW_SIG_LEN);
	fmt_buf_add(&b, "}", 1);
	return body_end(&b, out_max, len, purpose_name(r->purpose), err);
}

void fmt_api_request_wipe(struct fmt_api_request *req)
{
	if (req != NULL)
		OPENSSL_cleanse(req, sizeof(*req));
}

/* ---------------------------------------------------------------- status */

/* Names a decision may carry, and "error": a body is one kind or the other. */
static const char *const status_known[] = {"status",  "token_kind",  "token",  "expires",
                                           "server_url", "ca_pem",   "retry_after",
                                           "reason",  "message",     "error"};
static const char *const status_approved[] = {"status",  "token_kind", "token",
                                              "expires", "server_url", "ca_pem"};
static const char *const status_pending[] = {"status", "retry_after"};
static const char *const status_rejected[] = {"status", "reason", "message"};

/* Check st; ca_checked: take st->ca_pem as checked already (its characters
 * are still checked, not its certificates). */
static enum idp_err check_status(const struct fmt_api_status *st, bool ca_checked,
                                 struct idp_error *err)
{
	enum idp_err rc = IDP_OK;
	switch (st->status) {
	case FMT_API_APPROVED:
		if (st->token_kind != FMT_TOKEN_PROVISION && st->token_kind != FMT_TOKEN_DEVICE)
			return idp_error_set(err, IDP_E_FORMAT, "token_kind: %d is unknown",
			                     (int)st->token_kind);
		rc = check_field(st->token, sizeof(st->token), true, TEXT_TOKEN, "token", err);
		if (rc == IDP_OK && (st->expires < 1 || st->expires > FMT_API_TIME_MAX))
			rc = idp_error_set(err, IDP_E_FORMAT, "expires: %lld is outside 1..%lld",
			                   (long long)st->expires, (long long)FMT_API_TIME_MAX);
		bool prov = st->token_kind == FMT_TOKEN_PROVISION;
		if (rc == IDP_OK)
			rc = check_field(st->server_url, sizeof(st->server_url), prov, TEXT_URL,
			                 "server_url", err);
		if (rc == IDP_OK)
			rc = check_field(st->ca_pem, sizeof(st->ca_pem), prov,
			                 ca_checked ? TEXT_PEM_CHARS : TEXT_PEM, "ca_pem", err);
		return rc;
	case FMT_API_PENDING:
		if (st->retry_after < 1 || st->retry_after > FMT_API_RETRY_MAX)
			return idp_error_set(err, IDP_E_FORMAT, "retry_after: %lld is outside 1..%d",
			                     (long long)st->retry_after, FMT_API_RETRY_MAX);
		return IDP_OK;
	case FMT_API_REJECTED:
		rc = check_field(st->reason_code, sizeof(st->reason_code), true, TEXT_CODE,
		                 "reason", err);
		if (rc == IDP_OK && st->reason != FMT_API_REASON_OTHER &&
		    (fmt_api_reason_name(st->reason) == NULL ||
		     strcmp(fmt_api_reason_name(st->reason), st->reason_code) != 0))
			rc = idp_error_set(err, IDP_E_FORMAT, "reason: %d does not match \"%s\"",
			                   (int)st->reason, st->reason_code);
		if (rc == IDP_OK)
			rc = check_field(st->message, sizeof(st->message), false, TEXT_MESSAGE,
			                 "message", err);
		return rc;
	}
	return idp_error_set(err, IDP_E_FORMAT, "status: %d is unknown", (int)st->status);
}

static enum idp_err status_from_json(const cJSON *root, void *out, struct idp_error *err)
{
	struct fmt_api_status *st = out;
	char word[FMT_API_CODE_MAX + 1];
	enum idp_err rc = get_text(root, "status", true, TEXT_CODE, word, sizeof(word), err);
	if (rc != IDP_OK)
		return rc;
	st->status = (enum fmt_api_status_kind)lookup(word, status_names, COUNT(status_names));
	switch (st->status) {
	case FMT_API_APPROVED:
		rc = only_known_here(root, status_known, COUNT(status_known), status_approved,
		                     COUNT(status_approved), "an approved answer", err);
		if (rc == IDP_OK)
			rc = get_text(root, "token_kind", true, TEXT_CODE, word, sizeof(word), err);
		if (rc == IDP_OK) {
			st->token_kind = fmt_token_kind_of(word, strnlen(word, sizeof(word)));
			if (st->token_kind == 0)
				rc = idp_error_set(err, IDP_E_FORMAT, "token_kind: \"%s\" is unknown",
				                   word);
		}
		if (rc == IDP_OK)
			rc = get_text(root, "token", true, TEXT_TOKEN, st->token, sizeof(st->token),
			              err);
		if (rc == IDP_OK)
			rc = fmt_json_get_int(root, "expires", true, 1, FMT_API_TIME_MAX, &st->expires,
			                      NULL, err);
		if (rc == IDP_OK)
			rc = get_text(root, "server_url", false, TEXT_URL, st->server_url,
			              sizeof(st->server_url), err);
		if (rc == IDP_OK)
			rc = get_text(root, "ca_pem", false, TEXT_PEM, st->ca_pem, sizeof(st->ca_pem),
			              err);
		break;
	case FMT_API_PENDING:
		rc = only_known_here(root, status_known, COUNT(status_known), status_pending,
		                     COUNT(status_pending), "a pending answer", err);
		if (rc == IDP_OK)
			rc = fmt_json_get_int(root, "retry_after", true, 1, FMT_API_RETRY_MAX,
			                      &st->retry_after, NULL, err);
		break;
	case FMT_API_REJECTED:
		rc = only_known_here(root, status_known, COUNT(status_known), status_rejected,
		                     COUNT(status_rejected), "a rejected answer", err);
		if (rc == IDP_OK)
			rc = get_text(root, "reason", true, TEXT_CODE, st->reason_code,
			              sizeof(st->reason_code), err);
		if (rc == IDP_OK)
			st->reason = (enum fmt_api_reason)lookup(st->reason_code, reason_names,
			                                         COUNT(reason_names));
		if (rc == IDP_OK)
			rc = get_text(root, "message", false, TEXT_MESSAGE, st->message,
			              sizeof(st->message), err);
		break;
	default:
		return idp_error_set(err, IDP_E_FORMAT, "status: \"%s\" is unknown", word);
	}
	if (rc != IDP_OK)
		return rc;
	return check_status(st, false, err);
}

enum idp_err fmt_api_status_parse(const uint8_t *buf, size_t len, struct fmt_api_status *out,
                                  struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	return parse_with(buf, len, "answer", status_from_json, out, sizeof(*out), err);
}

enum idp_err fmt_api_ca_pem_check(const char *pem, size_t len, struct idp_error *err)
{
	return check_text(pem, len, FMT_API_CA_PEM_MAX, TEXT_PEM, "ca_pem", err);
}

static enum idp_err status_encode(const struct fmt_api_status *st, bool ca_checked, char *out,
                                  size_t out_max, size_t *len, struct idp_error *err)
{
	struct fmt_buf b;
	*len = 0;
	enum idp_err rc = check_status(st, ca_checked, err);
	if (rc == IDP_OK)
		rc = body_begin(&b, out, out_max, len, err);
	if (rc != IDP_OK)
		return rc;
	fmt_json_put_str(&b, "status", status_names[st->status]);
	if (st->status == FMT_API_APPROVED) {
		fmt_json_put_str(&b, "token_kind", fmt_token_kind_name(st->token_kind));
		fmt_json_put_str(&b, "token", st->token);
		fmt_json_put_int(&b, "expires", st->expires);
		if (st->server_url[0] != '\0')
			fmt_json_put_str(&b, "server_url", st->server_url);
		if (st->ca_pem[0] != '\0')
			fmt_json_put_str(&b, "ca_pem", st->ca_pem);
	} else if (st->status == FMT_API_PENDING) {
		fmt_json_put_int(&b, "retry_after", st->retry_after);
	} else {
		fmt_json_put_str(&b, "reason", st->reason_code);
		if (st->message[0] != '\0')
			fmt_json_put_str(&b, "message", st->message);
	}
	return body_end(&b, out_max, len, "answer", err);
}

enum idp_err fmt_api_status_encode(const struct fmt_api_status *st, char *out, size_t out_max,
                                   size_t *len, struct idp_error *err)
{
	return status_encode(st, false, out, out_max, len, err);
}

enum idp_err fmt_api_status_encode_ca_checked(const struct fmt_api_status *st, char *out,
                                              size_t out_max, size_t *len,
                                              struct idp_error *err)
{
	return status_encode(st, true, out, out_max, len, err);
}

void fmt_api_status_wipe(struct fmt_api_status *st)
{
	if (st != NULL)
		OPENSSL_cleanse(st, sizeof(*st));
}

/* ----------------------------------------------------------------- error */

static enum idp_err check_error(const struct fmt_api_error *e, struct idp_error *err)
{
	enum idp_err rc = check_field(e->code_text, sizeof(e->code_text), true, TEXT_CODE,
	                              "error.code", err);
	if (rc != IDP_OK)
		return rc;
	const char *name = fmt_api_err_code_name(e->code);
	if (e->code != FMT_API_ERR_UNKNOWN && (name == NULL || strcmp(name, e->code_text) != 0))
		return idp_error_set(err, IDP_E_FORMAT, "error.code: %d does not match \"%s\"",
		                     (int)e->code, e->code_text);
	rc = check_field(e->message, sizeof(e->message), true, TEXT_MESSAGE, "error.message", err);
	if (rc == IDP_OK && (e->retry_after < 0 || e->retry_after > FMT_API_RETRY_MAX))
		rc = idp_error_set(err, IDP_E_FORMAT, "error.retry_after: %lld is outside 1..%d",
		                   (long long)e->retry_after, FMT_API_RETRY_MAX);
	return rc;
}

static enum idp_err error_from_json(const cJSON *root, void *out, struct idp_error *err)
{
	struct fmt_api_error *e = out;
	if (cJSON_GetObjectItemCaseSensitive(root, "status") != NULL)
		return idp_error_set(err, IDP_E_FORMAT, "status: not allowed in an error answer");
	const cJSON *o = NULL;
	enum idp_err rc = fmt_json_get_object(root, "error", true, &o, err);
	if (rc == IDP_OK)
		rc = get_text(o, "code", true, TEXT_CODE, e->code_text, sizeof(e->code_text), err);
	if (rc == IDP_OK)
		rc = get_text(o, "message", true, TEXT_MESSAGE, e->message, sizeof(e->message), err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(o, "retry_after", false, 1, FMT_API_RETRY_MAX, &e->retry_after,
		                      NULL, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "error");
		return rc;
	}
	e->code = FMT_API_ERR_UNKNOWN;
	for (size_t i = 0; i < COUNT(err_codes); i++)
		if (strcmp(err_codes[i].name, e->code_text) == 0)
			e->code = err_codes[i].code;
	return check_error(e, err);
}

enum idp_err fmt_api_error_parse(const uint8_t *buf, size_t len, struct fmt_api_error *out,
                                 struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	return parse_with(buf, len, "error answer", error_from_json, out, sizeof(*out), err);
}

/* Bytes of the valid UTF-8 character at s[0..left) that a message may
 * hold (1..4), or 0: a control character, DEL, or no valid character. */
static size_t message_char(const uint8_t *s, size_t left)
{
	uint8_t c = s[0];
	size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
	if (n == 0 || n > left || !fmt_utf8_valid(s, n))
		return 0;
	if (n == 1 && !char_ok(TEXT_MESSAGE, c))
		return 0;
	return n;
}

/* msg[0..len) as a message: what the type does not allow as \xNN, cut to
 * FMT_API_MESSAGE_MAX with "...", empty as dflt. */
static void message_clean(const char *msg, size_t len, const char *dflt,
                          char out[static FMT_API_MESSAGE_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *s = (const uint8_t *)msg;
	size_t o = 0, keep = 0; /* keep: last boundary that leaves room for "..." */
	for (size_t i = 0; i < len;) {
		size_t n = message_char(s + i, len - i);
		size_t w = n > 0 ? n : 4;
		if (o + w > FMT_API_MESSAGE_MAX) {
			memcpy(out + keep, "...", 3);
			o = keep + 3;
			break;
		}
		if (n > 0) {
			memcpy(out + o, s + i, n);
			i += n;
		} else {
			out[o] = '\\';
			out[o + 1] = 'x';
			out[o + 2] = hex[s[i] >> 4];
			out[o + 3] = hex[s[i] & 15];
			i++;
		}
		o += w;
		if (o <= FMT_API_MESSAGE_MAX - 3)
			keep = o;
	}
	if (o == 0)
		o = (size_t)snprintf(out, FMT_API_MESSAGE_MAX + 1, "%s", dflt);
	out[o] = '\0';
}

enum idp_err fmt_api_error_body(enum fmt_api_err_code code, const char *msg, size_t len,
                                int64_t retry_after, char *out, size_t out_max, size_t *out_len,
                                struct idp_error *err)
{
	struct fmt_buf b;
	*out_len = 0;
	const char *name = fmt_api_err_code_name(code);
	if (name == NULL)
		return idp_error_set(err, IDP_E_ARG, "error.code: %d cannot be sent", (int)code);
	if (retry_after < 0 || retry_after > FMT_API_RETRY_MAX)
		return idp_error_set(err, IDP_E_ARG, "error.retry_after: %lld is outside 1..%d",
		                     (long long)retry_after, FMT_API_RETRY_MAX);
	char text[FMT_API_MESSAGE_MAX + 1];
	message_clean(msg != NULL ? msg : "", msg != NULL ? len : 0, name, text);
	enum idp_err rc = body_begin(&b, out, out_max, out_len, err);
	if (rc != IDP_OK)
		return rc;
	fmt_json_put_key(&b, "error");
	fmt_buf_add(&b, "{", 1);
	fmt_json_put_str(&b, "code", name);
	fmt_json_put_str(&b, "message", text);
	if (retry_after != 0)
		fmt_json_put_int(&b, "retry_after", retry_after);
	fmt_buf_add(&b, "}", 1);
	return body_end(&b, out_max, out_len, "error answer", err);
}

enum idp_err fmt_api_error_encode(const struct fmt_api_error *e, char *out, size_t out_max,
                                  size_t *len, struct idp_error *err)
{
	*len = 0;
	if (e->code == FMT_API_ERR_UNKNOWN)
		return idp_error_set(err, IDP_E_ARG, "error.code: unknown code cannot be sent");
	enum idp_err rc = check_field(e->code_text, sizeof(e->code_text), true, TEXT_CODE,
	                              "error.code", err);
	if (rc != IDP_OK)
		return rc;
	const char *name = fmt_api_err_code_name(e->code);
	if (name == NULL || strcmp(name, e->code_text) != 0)
		return idp_error_set(err, IDP_E_FORMAT, "error.code: %d does not match \"%s\"",
		                     (int)e->code, e->code_text);
	return fmt_api_error_body(e->code, e->message, strnlen(e->message, sizeof(e->message)),
	                          e->retry_after, out, out_max, len, err);
}

static enum idp_err answer_from_json(const cJSON *root, void *out, struct idp_error *err)
{
	struct fmt_api_answer *a = out;
	a->is_error = cJSON_GetObjectItemCaseSensitive(root, "error") != NULL;
	if (a->is_error)
		return error_from_json(root, &a->error, err);
	return status_from_json(root, &a->status, err);
}

enum idp_err fmt_api_answer_parse(const uint8_t *buf, size_t len, struct fmt_api_answer *out,
                                  struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	return parse_with(buf, len, "answer", answer_from_json, out, sizeof(*out), err);
}

void fmt_api_answer_wipe(struct fmt_api_answer *a)
{
	if (a != NULL)
		OPENSSL_cleanse(a, sizeof(*a));
}

/* ----------------------------------------------------------------- nonce */

static enum idp_err check_nonce(const struct fmt_api_nonce *n, struct idp_error *err)
{
	if (n->time < 1 || n->time > FMT_API_TIME_MAX)
		return idp_error_set(err, IDP_E_FORMAT, "time: %lld is outside 1..%lld",
		                     (long long)n->time, (long long)FMT_API_TIME_MAX);
	if (n->expires < n->time || n->expires > FMT_API_TIME_MAX)
		return idp_error_set(err, IDP_E_FORMAT, "expires: %lld is outside %lld..%lld",
		                     (long long)n->expires, (long long)n->time,
		                     (long long)FMT_API_TIME_MAX);
	return IDP_OK;
}

static enum idp_err nonce_from_json(const cJSON *root, void *out, struct idp_error *err)
{
	struct fmt_api_nonce *n = out;
	bool present = false;
	enum idp_err rc =
	        get_b64(root, "nonce", true, n->nonce, FMT_API_NONCE_LEN, 0, NULL, &present, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(root, "time", true, 1, FMT_API_TIME_MAX, &n->time, NULL, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(root, "expires", true, 1, FMT_API_TIME_MAX, &n->expires, NULL,
		                      err);
	if (rc == IDP_OK)
		rc = check_nonce(n, err);
	return rc;
}

enum idp_err fmt_api_nonce_parse(const uint8_t *buf, size_t len, struct fmt_api_nonce *out,
                                 struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	return parse_with(buf, len, "nonce answer", nonce_from_json, out, sizeof(*out), err);
}

enum idp_err fmt_api_nonce_encode(const struct fmt_api_nonce *n, char *out, size_t out_max,
                                  size_t *len, struct idp_error *err)
{
	struct fmt_buf b;
	*len = 0;
	enum idp_err rc = check_nonce(n, err);
	if (rc == IDP_OK)
		rc = body_begin(&b, out, out_max, len, err);
	if (rc != IDP_OK)
		return rc;
	fmt_json_put_b64(&b, "nonce", n->nonce, FMT_API_NONCE_LEN);
	fmt_json_put_int(&b, "time", n->time);
	fmt_json_put_int(&b, "expires", n->expires);
	return body_end(&b, out_max, len, "nonce answer", err);
}

/* ----------------------------------------------------------------- batch */

static enum idp_err check_batch(const struct fmt_api_batch *b, struct idp_error *err)
{
	enum idp_err rc = check_field(b->batch_id, sizeof(b->batch_id), true, TEXT_ID, "batch_id",
	                              err);
	if (rc == IDP_OK && (b->sequence < 0 || b->sequence > FMT_JSON_INT_MAX))
		rc = idp_error_set(err, IDP_E_FORMAT, "sequence: %lld is negative or too large",
		                   (long long)b->sequence);
	if (rc == IDP_OK && (b->devices < 0 || b->devices > FMT_JSON_INT_MAX))
		rc = idp_error_set(err, IDP_E_FORMAT, "devices: %lld is negative or too large",
		                   (long long)b->devices);
	return rc;
}

static enum idp_err batch_from_json(const cJSON *root, void *out, struct idp_error *err)
{
	struct fmt_api_batch *b = out;
	enum idp_err rc =
	        get_text(root, "batch_id", true, TEXT_ID, b->batch_id, sizeof(b->batch_id), err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(root, "sequence", true, 0, FMT_JSON_INT_MAX, &b->sequence, NULL,
		                      err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(root, "devices", true, 0, FMT_JSON_INT_MAX, &b->devices, NULL,
		                      err);
	if (rc == IDP_OK)
		rc = fmt_json_get_bool(root, "created", true, &b->created, NULL, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_bool(root, "gap", true, &b->gap, NULL, err);
	return rc;
}

enum idp_err fmt_api_batch_parse(const uint8_t *buf, size_t len, struct fmt_api_batch *out,
                                 struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	return parse_with(buf, len, "batch answer", batch_from_json, out, sizeof(*out), err);
}

enum idp_err fmt_api_batch_encode(const struct fmt_api_batch *bt, char *out, size_t out_max,
                                  size_t *len, struct idp_error *err)
{
	struct fmt_buf b;
	*len = 0;
	enum idp_err rc = check_batch(bt, err);
	if (rc == IDP_OK)
		rc = body_begin(&b, out, out_max, len, err);
	if (rc != IDP_OK)
		return rc;
	fmt_json_put_str(&b, "batch_id", bt->batch_id);
	fmt_json_put_int(&b, "sequence", bt->sequence);
	fmt_json_put_int(&b, "devices", bt->devices);
	fmt_json_put_bool(&b, "created", bt->created);
	fmt_json_put_bool(&b, "gap", bt->gap);
	return body_end(&b, out_max, len, "batch answer", err);
}
