/*
 * audit_export.c - see audit_export.h. Spec: formats/audit.md §3, §6, §7.
 */
#include "formats/audit_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "formats/audit.h"
#include "formats/b64.h"
#include "formats/buf.h"
#include "formats/json.h"

#define JSON_DEPTH 2u

struct run {
	const struct fmt_key *key; /* the key checkpoints are checked with */
	struct fmt_key *own;       /* the export's, when no key was given */
	uint8_t prev[FMT_AUDIT_HASH_LEN];
	/* The seqs the checkpoints name (sorted, once each) and, as the
	 * entries verify, their hashes: all a checkpoint is compared with, so
	 * memory grows with the checkpoints, not the entries. */
	struct fmt_buf want;   /* int64_t seqs */
	struct fmt_buf hashes; /* FMT_AUDIT_HASH_LEN bytes per seq of want */
	size_t line;
	int64_t last_n;
	bool header;
	bool stop; /* a finding was made: the rest is not checked */
	struct fmt_audit_verdict *out;
};

struct fmt_audit_export_check {
	struct run r;
	struct fmt_audit_verdict v;
	bool sorted;
	enum idp_err rc; /* the first error: later lines are not checked */
};

#define REASON_SIZE sizeof(((struct fmt_audit_verdict *)NULL)->reason)

/* Where the first finding is written: the rest is then not checked. */
static char *finding(struct run *r)
{
	r->stop = true;
	return r->out->reason;
}

/* Where seq is in want; -1 when no checkpoint names it. */
static ptrdiff_t want_at(const struct run *r, int64_t seq)
{
	const int64_t *w = (const int64_t *)(const void *)r->want.p;
	size_t lo = 0, hi = r->want.len / sizeof(int64_t);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w[mid] == seq)
			return (ptrdiff_t)mid;
		if (w[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Keep hash h of entry seq (first_seq - 1: prev_hash) if a checkpoint
 * names it. */
static void keep(struct run *r, int64_t seq, const uint8_t h[static FMT_AUDIT_HASH_LEN])
{
	ptrdiff_t i = want_at(r, seq);
	if (i >= 0)
		memcpy(r->hashes.p + (size_t)i * FMT_AUDIT_HASH_LEN, h, FMT_AUDIT_HASH_LEN);
}

static enum idp_err header(struct run *r, const cJSON *o, struct idp_error *err)
{
	static const char *const keys[] = {"type", "version", "first_seq", "prev_hash",
	                                   "audit_key"};
	int64_t version = 0;
	const char *prev = NULL;
	size_t prev_len = 0;
	enum idp_err rc = fmt_json_only_keys(o, keys, 5, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(o, "version", true, 1, 2, &version, NULL, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(o, "first_seq", true, 1, INT64_MAX / 2, &r->out->first_seq,
		                      NULL, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_string(o, "prev_hash", true, false, 64, &prev, &prev_len, err);
	if (rc == IDP_OK && !fmt_audit_hash_from_hex(prev, prev_len, r->prev))
		rc = idp_error_set(err, IDP_E_FORMAT, "prev_hash: not 64 hex digits");
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "audit_key");
	if (rc == IDP_OK && cJSON_IsString(k))
		rc = fmt_key_parse_public_pem((const uint8_t *)k->valuestring,
		                              strlen(k->valuestring), &r->own, err);
	else if (rc == IDP_OK && !cJSON_IsNull(k))
		rc = idp_error_set(err, IDP_E_FORMAT, "audit_key: not a PEM string or null");
	if (rc == IDP_OK && r->key != NULL && r->own != NULL && !fmt_key_equal(r->key, r->own))
		rc = idp_error_set(
		        err, IDP_E_VERIFY,
		        "audit_key: not the key given (the export was signed by another)");
	if (rc == IDP_OK && r->key == NULL)
		r->key = r->own;
	if (rc == IDP_OK && r->key != NULL) {
		uint8_t fp[FMT_KEY_FINGERPRINT_LEN];
		rc = fmt_key_fingerprint(r->key, fp, err);
		if (rc == IDP_OK)
			fmt_key_fingerprint_hex(fp, r->out->key_id);
	}
	r->out->last_seq = r->out->first_seq - 1;
	r->header = true;
	if (rc == IDP_OK)
		keep(r, r->out->last_seq, r->prev);
	return rc;
}

/* A text member that may be null: (NULL, 0) then. */
static enum idp_err text_or_null(const cJSON *o, const char *name, size_t max, const char **s,
                                 size_t *len, struct idp_error *err)
{
	*s = NULL;
	*len = 0;
	if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, name)))
		return IDP_OK;
	return fmt_json_get_string(o, name, true, true, max, s, len, err);
}

static enum idp_err entry(struct run *r, const cJSON *o, struct idp_error *err)
{
	static const char *const keys[] = {"type",   "seq",  "at", "event", "subject",
	                                   "detail", "hash", "v",  "actor"};
	struct fmt_audit_entry e;
	memset(&e, 0, sizeof(e));
	const char *hash = NULL;
	size_t hash_len = 0;
	uint8_t stored[FMT_AUDIT_HASH_LEN], h[FMT_AUDIT_HASH_LEN];
	enum idp_err rc = fmt_json_only_keys(o, keys, 9, err);
	int64_t v = 1;
	bool has_v = false;
	if (rc == IDP_OK)
		rc = fmt_json_get_int(o, "v", false, 1, 2, &v, &has_v, err);
	e.version = (int)v;
	/* A version 2 entry's actor is hashed; a version 1 entry's is shown only. */
	if (rc == IDP_OK && v == 2)
		rc = text_or_null(o, "actor", FMT_AUDIT_FIELD_MAX, &e.actor, &e.actor_len, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(o, "seq", true, 1, INT64_MAX / 2, &e.seq, NULL, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(o, "at", true, 0, INT64_MAX / 2, &e.at, NULL, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_string(o, "event", true, false, FMT_AUDIT_FIELD_MAX, &e.event,
		                         &e.event_len, err);
	if (rc == IDP_OK)
		rc = text_or_null(o, "subject", FMT_AUDIT_FIELD_MAX, &e.subject, &e.subject_len,
		                  err);
	if (rc == IDP_OK)
		rc = text_or_null(o, "detail", FMT_AUDIT_FIELD_MAX, &e.detail, &e.detail_len, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_string(o, "hash", true, true, 64, &hash, &hash_len, err);
	if (rc != IDP_OK || r->stop)
		return rc;
	if (e.seq != r->out->last_seq + 1) {
		(void)snprintf(finding(r), REASON_SIZE,
		               "entry %lld follows entry %lld: entries missing or inserted",
		               (long long)e.seq, (long long)r->out->last_seq);
		return IDP_OK;
	}
	rc = fmt_audit_hash(r->prev, &e, h, err);
	if (rc != IDP_OK)
		return rc;
	if (!fmt_audit_hash_from_hex(hash, hash_len, stored) ||
	    CRYPTO_memcmp(stored, h, sizeof(h)) != 0) {
		(void)snprintf(
		        finding(r), REASON_SIZE,
		        "entry %lld: hash does not match (entry changed or moved, or one before it "
		        "removed)",
		        (long long)e.seq);
		return IDP_OK;
	}
	memcpy(r->prev, h, sizeof(h));
	keep(r, e.seq, h);
	r->out->last_seq = e.seq;
	r->out->entries++;
	return IDP_OK;
}

static enum idp_err checkpoint(struct run *r, const cJSON *o, struct idp_error *err)
{
	static const char *const keys[] = {"type", "n", "seq", "at", "hash", "key_id", "sig"};
	struct fmt_audit_checkpoint c;
	memset(&c, 0, sizeof(c));
	const char *hash = NULL, *sig64 = NULL, *kid = NULL;
	size_t hash_len = 0, sig64_len = 0, kid_len = 0;
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t sig_len = 0;
	enum idp_err rc = fmt_json_only_keys(o, keys, 7, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(o, "n", true, 1, INT64_MAX / 2, &c.n, NULL, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(o, "seq", true, 0, INT64_MAX / 2, &c.seq, NULL, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_int(o, "at", true, 0, INT64_MAX / 2, &c.at, NULL, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_string(o, "hash", true, false, 64, &hash, &hash_len, err);
	if (rc == IDP_OK && !fmt_audit_hash_from_hex(hash, hash_len, c.hash))
		rc = idp_error_set(err, IDP_E_FORMAT, "hash: not 64 hex digits");
	if (rc == IDP_OK)
		rc = fmt_json_get_string(o, "key_id", true, false, 64, &kid, &kid_len, err);
	if (rc == IDP_OK)
		rc = fmt_json_get_string(o, "sig", true, false, (size_t)2 * FMT_KEY_SIG_MAX, &sig64,
		                         &sig64_len, err);
	if (rc == IDP_OK && fmt_b64_decode(FMT_B64_STD, sig64, sig64_len, sig, sizeof(sig),
	                                   &sig_len, NULL) != IDP_OK)
		rc = idp_error_set(err, IDP_E_FORMAT, "sig: not base64");
	if (rc != IDP_OK || r->stop)
		return rc;
	uint8_t bytes[FMT_AUDIT_CKPT_LEN];
	fmt_audit_checkpoint_bytes(&c, bytes);
	if (r->last_n != 0 && c.n != r->last_n + 1) {
		(void)snprintf(
		        finding(r), REASON_SIZE,
		        "checkpoint %lld follows checkpoint %lld: checkpoints missing or inserted",
		        (long long)c.n, (long long)r->last_n);
	} else if (r->key == NULL || kid_len != 64 || strncmp(kid, r->out->key_id, 64) != 0 ||
	           fmt_key_verify(r->key, FMT_SIG_RAW, bytes, sizeof(bytes), sig, sig_len, NULL) !=
	                   IDP_OK) {
		(void)snprintf(finding(r), REASON_SIZE,
		               "checkpoint %lld (entry %lld): signature does not verify",
		               (long long)c.n, (long long)c.seq);
	} else if (c.seq > r->out->last_seq) {
		r->out->truncated = true;
		(void)snprintf(finding(r), REASON_SIZE,
		               "entries missing at the end: checkpoint %lld covers entry %lld",
		               (long long)c.n, (long long)c.seq);
	} else if (c.seq >= r->out->first_seq - 1 &&
	           (want_at(r, c.seq) < 0 ||
	            CRYPTO_memcmp(r->hashes.p + (size_t)want_at(r, c.seq) * FMT_AUDIT_HASH_LEN,
	                          c.hash, FMT_AUDIT_HASH_LEN) != 0)) {
		(void)snprintf(finding(r), REASON_SIZE,
		               "checkpoint %lld: the hash it signed is not entry %lld's",
		               (long long)c.n, (long long)c.seq);
	} else {
		r->last_n = c.n;
		r->out->checkpoints++;
	}
	return IDP_OK;
}

static int cmp_seq(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

struct fmt_audit_export_check *fmt_audit_export_check_new(const struct fmt_key *key)
{
	struct fmt_audit_export_check *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->r.key = key;
	c->r.out = &c->v;
	fmt_buf_init(&c->r.want, SIZE_MAX, 0);
	fmt_buf_init(&c->r.hashes, SIZE_MAX, 0);
	return c;
}

void fmt_audit_export_check_want(struct fmt_audit_export_check *c, const uint8_t *line, size_t n)
{
	cJSON *o = NULL;
	int64_t seq = 0;
	if (c->sorted || n > FMT_AUDIT_EXPORT_LINE_MAX ||
	    fmt_json_parse(line, n, JSON_DEPTH, &o, NULL) != IDP_OK)
		return;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
	if (cJSON_IsString(t) && strcmp(t->valuestring, "checkpoint") == 0 &&
	    fmt_json_get_int(o, "seq", true, 0, INT64_MAX / 2, &seq, NULL, NULL) == IDP_OK)
		fmt_buf_add(&c->r.want, (const uint8_t *)&seq, sizeof(seq));
	cJSON_Delete(o);
}

/* After the wants: sort them, drop repeats, make room for their hashes. */
static enum idp_err check_ready(struct fmt_audit_export_check *c, struct idp_error *err)
{
	if (c->sorted)
		return IDP_OK;
	c->sorted = true;
	enum idp_err rc = fmt_buf_check(&c->r.want, "audit export: checkpoints", err);
	if (rc != IDP_OK)
		return rc;
	int64_t *w = (int64_t *)(void *)c->r.want.p;
	size_t n = c->r.want.len / sizeof(int64_t), k = 0;
	if (n > 0)
		qsort(w, n, sizeof(*w), cmp_seq);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || w[k - 1] != w[i])
			w[k++] = w[i];
	c->r.want.len = k * sizeof(int64_t);
	if (k > 0 && fmt_buf_room(&c->r.hashes, k * FMT_AUDIT_HASH_LEN) == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "audit export: out of memory");
	if (k > 0) {
		memset(c->r.hashes.p, 0, k * FMT_AUDIT_HASH_LEN);
		fmt_buf_commit(&c->r.hashes, k * FMT_AUDIT_HASH_LEN);
	}
	return IDP_OK;
}

enum idp_err fmt_audit_export_check_line(struct fmt_audit_export_check *c, const uint8_t *line,
                                         size_t kept, size_t n, struct idp_error *err)
{
	struct run *r = &c->r;
	enum idp_err rc = c->rc != IDP_OK ? c->rc : check_ready(c, err);
	if (rc != IDP_OK)
		return c->rc = rc;
	r->line++;
	cJSON *o = NULL;
	if (n > FMT_AUDIT_EXPORT_LINE_MAX || kept < n)
		rc = idp_error_set(err, IDP_E_LIMIT, "line is %zu bytes, max %u", n,
		                   FMT_AUDIT_EXPORT_LINE_MAX);
	if (rc == IDP_OK)
		rc = fmt_json_parse(line, n, JSON_DEPTH, &o, err);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
	const char *type = cJSON_IsString(t) ? t->valuestring : "";
	if (rc == IDP_OK && !r->header && strcmp(type, "export") != 0)
		rc = idp_error_set(err, IDP_E_FORMAT, "not an audit export: no header");
	else if (rc == IDP_OK && strcmp(type, "export") == 0)
		rc = r->header ? idp_error_set(err, IDP_E_FORMAT, "a second header")
		               : header(r, o, err);
	else if (rc == IDP_OK && strcmp(type, "entry") == 0)
		rc = entry(r, o, err);
	else if (rc == IDP_OK && strcmp(type, "checkpoint") == 0)
		rc = checkpoint(r, o, err);
	else if (rc == IDP_OK)
		rc = idp_error_set(err, IDP_E_FORMAT, "type: not export, entry or checkpoint");
	cJSON_Delete(o);
	if (rc != IDP_OK)
		idp_error_prefix(err, "audit export: line %zu", r->line);
	return c->rc = rc;
}

enum idp_err fmt_audit_export_check_finish(struct fmt_audit_export_check *c,
                                           struct fmt_audit_verdict *out, struct idp_error *err)
{
	enum idp_err rc = c->rc;
	if (rc == IDP_OK && !c->r.header)
		rc = idp_error_set(err, IDP_E_FORMAT, "audit export: empty");
	c->v.intact = rc == IDP_OK && c->v.reason[0] == '\0';
	*out = c->v;
	return rc;
}

void fmt_audit_export_check_free(struct fmt_audit_export_check *c)
{
	if (c == NULL)
		return;
	fmt_key_free(c->r.own);
	fmt_buf_free(&c->r.want);
	fmt_buf_free(&c->r.hashes);
	free(c);
}

enum idp_err fmt_audit_export_verify(const uint8_t *buf, size_t len, const struct fmt_key *key,
                                     struct fmt_audit_verdict *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	struct fmt_audit_export_check *c = fmt_audit_export_check_new(key);
	if (c == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "audit export: out of memory");
	enum idp_err rc = IDP_OK;
	for (int pass = 0; pass < 2; pass++)
		for (size_t off = 0; rc == IDP_OK && off < len;) {
			const uint8_t *nl = memchr(buf + off, '\n', len - off);
			size_t n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
			if (pass == 0)
				fmt_audit_export_check_want(c, buf + off, n);
			else
				rc = fmt_audit_export_check_line(c, buf + off, n, n, err);
			off += n + 1;
		}
	if (rc == IDP_OK || c->rc != IDP_OK)
		rc = fmt_audit_export_check_finish(c, out, err);
	fmt_audit_export_check_free(c);
	return rc;
}
