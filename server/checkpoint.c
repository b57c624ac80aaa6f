/*
 * checkpoint.c - see checkpoint.h. Spec: formats/audit.md §6, §7.
 */
#include "server/checkpoint.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "formats/audit.h"
#include "formats/b64.h"
#include "formats/file.h"
#include "formats/json.h"
#include "formats/keys.h"
#include "server/admin.h"
#include "server/conn.h"
#include "server/handlers.h"
#include "formats/io/log.h"

#define CKPT_FILE_MAX 2048u /* bytes of STATE/audit.checkpoint */
#define CKPT_PAGE     1000  /* audit rows read at a time by the export */
#define CKPT_SIG_B64  ((FMT_KEY_SIG_MAX + 2) / 3 * 4 + 1)

struct srv_ckpt {
	struct fmt_key *key;
	char key_id[65];
	struct srv_store *store;
	char dir[SRV_STATE_PATH_MAX];
};

/* The key ID: hex SHA-256 of the key's SPKI DER. */
static enum idp_err key_id_of(const struct fmt_key *key, char out[static 65], struct idp_error *err)
{
	uint8_t fp[FMT_KEY_FINGERPRINT_LEN];
	enum idp_err rc = fmt_key_fingerprint(key, fp, err);
	if (rc == IDP_OK)
		fmt_key_fingerprint_hex(fp, out);
	return rc;
}

enum idp_err srv_ckpt_open(const struct srv_state *state, struct srv_ckpt **out,
                           struct idp_error *err)
{
	*out = NULL;
	struct srv_ckpt *ck = calloc(1, sizeof(*ck));
	if (ck == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "checkpoint: out of memory");
	(void)snprintf(ck->dir, sizeof(ck->dir), "%s", state->dir);
	bool created = false;
	enum idp_err rc = srv_state_audit_key(state, &ck->key, &created, err);
	if (rc == IDP_OK)
		rc = key_id_of(ck->key, ck->key_id, err);
	if (rc == IDP_OK)
		rc = srv_store_open(state->db_path, &ck->store, err);
	if (rc != IDP_OK) {
		srv_ckpt_close(ck);
		return rc;
	}
	srv_store_set_busy_ms(ck->store, SRV_STORE_BUSY_SLICE_MS);
	if (created)
		fio_log(FIO_LOG_INFO, "audit.key_created", "path=%s/audit.key key_id=%s",
		        state->dir, ck->key_id);
	*out = ck;
	return IDP_OK;
}

void srv_ckpt_set_busy_ms(struct srv_ckpt *ck, int ms)
{
	srv_store_set_busy_ms(ck->store, ms);
}

void srv_ckpt_close(struct srv_ckpt *ck)
{
	if (ck == NULL)
		return;
	fmt_key_free(ck->key);
	srv_store_close(ck->store);
	free(ck);
}

/* A checkpoint as its JSON object (formats/audit.md §7). NULL when out of memory. */
static cJSON *ckpt_json(const struct srv_checkpoint *c)
{
	char hash[65] = "", sig[CKPT_SIG_B64];
	if (c->hash_len == FMT_AUDIT_HASH_LEN)
		fmt_key_fingerprint_hex(c->hash, hash);
	(void)fmt_b64_encode(FMT_B64_STD, c->sig, c->sig_len, sig);
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || cJSON_AddStringToObject(o, "type", "checkpoint") == NULL ||
	    cJSON_AddNumberToObject(o, "n", (double)c->n) == NULL ||
	    cJSON_AddNumberToObject(o, "seq", (double)c->seq) == NULL ||
	    cJSON_AddNumberToObject(o, "at", (double)c->at) == NULL ||
	    cJSON_AddStringToObject(o, "hash", hash) == NULL ||
	    cJSON_AddStringToObject(o, "key_id", c->key_id) == NULL ||
	    cJSON_AddStringToObject(o, "sig", sig) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static void fmt_of(const struct srv_checkpoint *c, struct fmt_audit_checkpoint *f)
{
	memset(f, 0, sizeof(*f));
	f->n = c->n;
	f->seq = c->seq;
	f->at = c->at;
	if (c->hash_len == FMT_AUDIT_HASH_LEN)
		memcpy(f->hash, c->hash, FMT_AUDIT_HASH_LEN);
}

enum idp_err srv_ckpt_write(struct srv_ckpt *ck, int64_t now, struct srv_checkpoint *out,
                            struct idp_error *err)
{
	struct srv_checkpoint c;
	memset(&c, 0, sizeof(c));
	/* One write transaction: the head cannot move between reading it and
	 * numbering the checkpoint. */
	enum idp_err rc = srv_store_begin(ck->store, err);
	if (rc != IDP_OK)
		return rc;
	struct srv_checkpoint last;
	rc = srv_store_checkpoint_last(ck->store, &last, err);
	if (rc == IDP_E_NOTFOUND) {
		last.n = 0;
		rc = IDP_OK;
	}
	if (rc == IDP_OK)
		rc = srv_store_audit_head(ck->store, &c.seq, c.hash, err);
	if (rc == IDP_OK) {
		c.n = last.n + 1;
		c.at = now;
		c.hash_len = FMT_AUDIT_HASH_LEN;
		(void)snprintf(c.key_id, sizeof(c.key_id), "%s", ck->key_id);
		struct fmt_audit_checkpoint f;
		uint8_t bytes[FMT_AUDIT_CKPT_LEN];
		fmt_of(&c, &f);
		fmt_audit_checkpoint_bytes(&f, bytes);
		rc = fmt_key_sign(ck->key, FMT_SIG_RAW, bytes, sizeof(bytes), c.sig, &c.sig_len,
		                  err);
	}
	if (rc == IDP_OK)
		rc = srv_store_checkpoint_add(ck->store, &c, err);
	if (rc == IDP_OK)
		rc = srv_store_commit(ck->store, err);
	else
		srv_store_rollback(ck->store);
	if (rc != IDP_OK)
		return rc;
	/* The newest checkpoint outside the database too (§6.3). */
	cJSON *o = ckpt_json(&c);
	char *line = o != NULL ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	char path[SRV_STATE_PATH_MAX + 32];
	if (line == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "checkpoint: out of memory");
	(void)snprintf(path, sizeof(path), "%s/%s", ck->dir, SRV_CKPT_FILE);
	rc = fmt_file_write_atomic(path, (const uint8_t *)line, strlen(line), 0644, err);
	cJSON_free(line);
	if (rc == IDP_OK && out != NULL)
		*out = c;
	return rc;
}

/* ---------------------------------------------------------------- check */

struct walk {
	struct srv_store *st;
	const struct fmt_key *pub;
	char key_id[65];
	struct srv_audit_check *chain;
	struct srv_ckpt_check *out;
	struct srv_checkpoint prev; /* the last that verified (n 0: none) */
	enum idp_err rc;
	struct idp_error *err;
	uint8_t row_hash[32];
	bool row_found;
};

static int take_row(void *ctx, const struct srv_audit_row *r)
{
	struct walk *w = ctx;
	w->row_found = r->hash_len == 32;
	if (w->row_found)
		memcpy(w->row_hash, r->hash, 32);
	return 1;
}

/* Whether checkpoint c's signature verifies under w->pub. */
static bool sig_ok(const struct walk *w, const struct srv_checkpoint *c)
{
	struct fmt_audit_checkpoint f;
	uint8_t bytes[FMT_AUDIT_CKPT_LEN];
	fmt_of(c, &f);
	fmt_audit_checkpoint_bytes(&f, bytes);
	return c->hash_len == FMT_AUDIT_HASH_LEN &&
	       fmt_key_verify(w->pub, FMT_SIG_RAW, bytes, sizeof(bytes), c->sig, c->sig_len,
	                      NULL) == IDP_OK;
}

/* Check one checkpoint against the key, the one before it and the chain. */
static int check_one(void *ctx, const struct srv_checkpoint *c)
{
	struct walk *w = ctx;
	struct srv_ckpt_check *o = w->out;
	const char *why = NULL;
	char buf[sizeof(o->reason)];
	if (c->n != w->prev.n + 1) {
		(void)snprintf(buf, sizeof(buf),
		               "checkpoint %lld follows checkpoint %lld: checkpoints deleted or "
		               "inserted",
		               (long long)c->n, (long long)w->prev.n);
		why = buf;
	} else if (strcmp(c->key_id, w->key_id) != 0) {
		why = "signed by another key than audit.pub";
	} else if (!sig_ok(w, c)) {
		why = "signature does not verify";
	} else if (c->seq < w->prev.seq) {
		why = "covers an older head than the checkpoint before it";
	}
	if (why == NULL && c->seq > w->chain->head_seq && w->chain->broken_seq == 0) {
		/* Entries may have been appended since the chain was checked:
		 * check it again before calling it truncation. */
		w->rc = srv_store_audit_verify(w->st, w->chain, w->err);
		if (w->rc != IDP_OK)
			return 1;
	}
	if (why == NULL && c->seq > w->chain->head_seq) {
		if (w->chain->broken_seq != 0 && w->chain->broken_seq <= c->seq)
			return 1; /* the chain's break is the finding; stop here */
		o->truncated = true;
		(void)snprintf(
		        buf, sizeof(buf),
		        "entries %lld..%lld missing (tail truncated): checkpoint %lld signed at "
		        "%lld covers entry %lld, the log ends at %lld",
		        (long long)w->chain->head_seq + 1, (long long)c->seq, (long long)c->n,
		        (long long)c->at, (long long)c->seq, (long long)w->chain->head_seq);
		why = buf;
	} else if (why == NULL && c->seq > 0) {
		w->row_found = false;
		w->rc = srv_store_audit_foreach(w->st, c->seq - 1, 1, NULL, take_row, w, w->err);
		if (w->rc != IDP_OK)
			return 1;
		if (!w->row_found || CRYPTO_memcmp(w->row_hash, c->hash, 32) != 0)
			why = "the hash it signed is not entry's hash (the log was rewritten)";
	}
	if (why != NULL) {
		o->bad_n = c->n;
		if (why == buf)
			(void)snprintf(o->reason, sizeof(o->reason), "%s", buf);
		else
			(void)snprintf(o->reason, sizeof(o->reason),
			               "checkpoint %lld (entry %lld): %s", (long long)c->n,
			               (long long)c->seq, why);
		return 1;
	}
	w->prev = *c;
	o->checkpoints++;
	o->last_n = c->n;
	o->last_seq = c->seq;
	o->last_at = c->at;
	return 0;
}

/* STATE/audit.checkpoint against the newest checkpoint row (§6.3). */
static enum idp_err check_file(struct walk *w, const char *dir, struct idp_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = srv_state_read_public(dir, SRV_CKPT_FILE, CKPT_FILE_MAX, &buf, &len, err);
	struct srv_ckpt_check *o = w->out;
	if (rc == IDP_E_NOTFOUND) {
		if (o->checkpoints > 0) {
			o->bad_n = o->last_n;
			(void)snprintf(
			        o->reason, sizeof(o->reason),
			        "%s/%s is missing: cannot tell whether newer checkpoints were "
			        "deleted",
			        dir, SRV_CKPT_FILE);
		}
		return IDP_OK;
	}
	if (rc != IDP_OK)
		return rc;
	cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
	fmt_file_free_secret(buf, len);
	struct srv_checkpoint c;
	memset(&c, 0, sizeof(c));
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "n");
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "at");
	const cJSON *hash = cJSON_GetObjectItemCaseSensitive(j, "hash");
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(j, "key_id");
	const cJSON *sig = cJSON_GetObjectItemCaseSensitive(j, "sig");
	bool ok = cJSON_IsNumber(n) && cJSON_IsNumber(seq) && cJSON_IsNumber(at) &&
	          cJSON_IsString(kid) && cJSON_IsString(sig) && cJSON_IsString(hash) &&
	          fmt_audit_hash_from_hex(hash->valuestring, strlen(hash->valuestring), c.hash) &&
	          fmt_b64_decode(FMT_B64_STD, sig->valuestring, strlen(sig->valuestring), c.sig,
	                         sizeof(c.sig), &c.sig_len, NULL) == IDP_OK;
	if (ok) {
		c.n = (int64_t)n->valuedouble;
		c.seq = (int64_t)seq->valuedouble;
		c.at = (int64_t)at->valuedouble;
		c.hash_len = 32;
		(void)snprintf(c.key_id, sizeof(c.key_id), "%s", kid->valuestring);
		ok = strcmp(c.key_id, w->key_id) == 0 && sig_ok(w, &c);
	}
	cJSON_Delete(j);
	if (!ok) {
		o->bad_n = o->last_n;
		(void)snprintf(o->reason, sizeof(o->reason),
		               "%s/%s: not a checkpoint signed by audit.pub", dir, SRV_CKPT_FILE);
	} else if (c.n > o->last_n) {
		o->bad_n = c.n;
		o->truncated = c.seq > w->chain->head_seq;
		(void)snprintf(
		        o->reason, sizeof(o->reason),
		        "checkpoints %lld..%lld missing from the database (%s holds checkpoint "
		        "%lld of entry %lld)%s",
		        (long long)o->last_n + 1, (long long)c.n, SRV_CKPT_FILE, (long long)c.n,
		        (long long)c.seq,
		        o->truncated ? "; entries after the log's end are missing too" : "");
	}
	return IDP_OK;
}

enum idp_err srv_ckpt_check(struct srv_store *st, const char *dir, struct srv_audit_check *chain,
                            struct srv_ckpt_check *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	uint8_t *buf = NULL;
	size_t len = 0;
	struct fmt_key *pub = NULL;
	enum idp_err rc = srv_state_read_public(dir, "audit.pub", FMT_KEY_PEM_MAX, &buf, &len, err);
	if (rc == IDP_E_NOTFOUND) {
		/* No key yet: there can be no checkpoint. A row is then a forgery. */
		struct srv_checkpoint c;
		rc = srv_store_checkpoint_last(st, &c, err);
		if (rc == IDP_E_NOTFOUND)
			return IDP_OK;
		if (rc == IDP_OK) {
			out->bad_n = c.n;
			(void)snprintf(out->reason, sizeof(out->reason),
			               "checkpoint %lld: %s/audit.pub is missing", (long long)c.n,
			               dir);
		}
		return rc;
	}
	if (rc == IDP_OK) {
		rc = fmt_key_parse_public_pem(buf, len, &pub, err);
		fmt_file_free_secret(buf, len);
	}
	struct walk w = {.st = st, .pub = pub, .chain = chain, .out = out, .err = err};
	if (rc == IDP_OK)
		rc = key_id_of(pub, w.key_id, err);
	if (rc == IDP_OK)
		rc = srv_store_checkpoint_foreach(st, 0, INT64_MAX, check_one, &w, err);
	if (rc == IDP_OK)
		rc = w.rc;
	if (rc == IDP_OK && out->bad_n == 0 && chain->broken_seq == 0)
		rc = check_file(&w, dir, err);
	fmt_key_free(pub);
	return rc;
}

/* ---------------------------------------------------------------- export */

struct export
{
	struct evbuffer *out;
	bool failed;
	int64_t since_at;  /* entries with at >= since_at only, from the first such */
	int64_t last_seq;  /* the last row read */
	uint8_t prev[32];  /* the hash of the entry before the first exported */
	int64_t first_seq; /* 0 until the first entry is exported */
	int64_t rows;
};

static void add_line(struct export *x, cJSON *o)
{
	char *s = o != NULL ? cJSON_PrintUnformatted(o) : NULL;
	if (s == NULL || evbuffer_add_printf(x->out, "%s\n", s) < 0)
		x->failed = true;
	cJSON_free(s);
	cJSON_Delete(o);
}

static cJSON *add_text_or_null(cJSON *o, const char *name, const char *v)
{
	return v[0] != '\0' ? cJSON_AddStringToObject(o, name, v) : cJSON_AddNullToObject(o, name);
}

static int export_entry(void *ctx, const struct srv_audit_row *r)
{
	struct export *x = ctx;
	x->last_seq = r->seq;
	x->rows++;
	if (x->first_seq == 0 && r->at < x->since_at) {
		memset(x->prev, 0, sizeof(x->prev));
		if (r->hash_len == 32)
			memcpy(x->prev, r->hash, 32);
		return 0;
	}
	if (x->first_seq == 0)
		x->first_seq = r->seq;
	char hex[65] = "";
	if (r->hash_len == 32)
		fmt_key_fingerprint_hex(r->hash, hex);
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || cJSON_AddStringToObject(o, "type", "entry") == NULL ||
	    cJSON_AddNumberToObject(o, "seq", (double)r->seq) == NULL ||
	    cJSON_AddNumberToObject(o, "at", (double)r->at) == NULL ||
	    cJSON_AddStringToObject(o, "event", r->event) == NULL ||
	    add_text_or_null(o, "subject", r->subject) == NULL ||
	    add_text_or_null(o, "detail", r->detail) == NULL ||
	    add_text_or_null(o, "actor", r->actor) == NULL ||
	    cJSON_AddNumberToObject(o, "v", r->version == 2 ? 2 : 1) == NULL ||
	    cJSON_AddStringToObject(o, "hash", hex) == NULL) {
		cJSON_Delete(o);
		x->failed = true;
		return 1;
	}
	add_line(x, o);
	return x->failed ? 1 : 0;
}

static int export_ckpt(void *ctx, const struct srv_checkpoint *c)
{
	struct export *x = ctx;
	if (c->seq + 1 >= x->first_seq)
		add_line(x, ckpt_json(c));
	return x->failed ? 1 : 0;
}

/* A query value as a non-negative integer of at most 18 digits. */
static bool query_int(const char *v, int64_t *out)
{
	size_t n = v != NULL ? strnlen(v, 20) : 0;
	if (n == 0 || n > 18 || strspn(v, "0123456789") != n)
		return false;
	*out = strtoll(v, NULL, 10);
	return true;
}

/* The start of an export since a time: the first entry with at >= since_at
 * after *last_seq (then *found), and the hash of the entry before it. */
struct start {
	int64_t since_at;
	int64_t last_seq;
	bool found;
	uint8_t prev[32];
};

static int find_start(void *ctx, const struct srv_audit_row *r)
{
	struct start *f = ctx;
	if (r->at >= f->since_at) {
		f->found = true;
		return 1;
	}
	f->last_seq = r->seq;
	memset(f->prev, 0, sizeof(f->prev));
	if (r->hash_len == 32)
		memcpy(f->prev, r->hash, 32);
	return 0;
}

/* An export being streamed: one page of entries per chunk, the next read
 * when the one before has left (so the server holds one page, not the
 * log), then the checkpoints, then the end. */
struct stream {
	struct srv_ctx *ctx;
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	struct srv_conn *c;
	struct export x; /* x.out: the chunk being filled */
	bool entries_done;
	bool last;       /* x.out ends the export */
	bool parked;     /* waiting for the fsync covering what x.out was read from */
	bool gone;       /* the client left while parked: free s when woken */
	size_t bytes;
};

static void stream_free(struct stream *s)
{
	if (s->x.out != NULL)
		evbuffer_free(s->x.out);
	free(s);
}

/* The client went away (or was cut at the deadline) mid-export. evhttp has
 * detached the unfinished request from the connection and leaves it to us:
 * ending it frees it. */
static void stream_closed(struct evhttp_connection *conn, void *arg)
{
	struct stream *s = arg;
	(void)conn;
	srv_conn_stream_end(s->c);
	evhttp_send_reply_end(s->req);
	fio_log(FIO_LOG_INFO, "admin.refused",
	        "loop=%u action=audit_export error=\"connection closed after %zu bytes\"",
	        s->ctx->loop, s->bytes);
	if (s->parked)
		s->gone = true; /* stream_durable() frees s */
	else
		stream_free(s);
}

static void stream_next(void *arg);

/* Send the chunk in x.out (its entries are durable) and ask for the next
 * once it has left, or end the export. */
static void stream_send(struct stream *s)
{
	s->bytes += evbuffer_get_length(s->x.out);
	if (evbuffer_get_length(s->x.out) > 0)
		evhttp_send_reply_chunk(s->req, s->x.out);
	if (!s->last) {
		srv_conn_when_drained(s->c, stream_next, s);
		return;
	}
	srv_conn_stream_end(s->c);
	evhttp_connection_set_closecb(s->conn, NULL, NULL);
	evhttp_send_reply_end(s->req);
	fio_log(FIO_LOG_INFO, "admin.done", "loop=%u action=audit_export first_seq=%lld bytes=%zu",
	        s->ctx->loop, (long long)s->x.first_seq, s->bytes);
	stream_free(s);
}

/* The syncer made the chunk's entries durable (or the server stops:
 * durable false, and the close callback follows). */
static void stream_durable(void *arg, bool durable)
{
	struct stream *s = arg;
	s->parked = false;
	if (s->gone)
		stream_free(s);
	else if (durable)
		stream_send(s);
}

/* Send the next chunk (called again once the one before has left). */
static void stream_next(void *arg)
{
	struct stream *s = arg;
	struct idp_error err = {0};
	enum idp_err rc = IDP_OK;
	if (!s->entries_done) {
		int64_t before = s->x.rows;
		rc = srv_store_audit_foreach(s->ctx->store, s->x.last_seq, CKPT_PAGE, NULL,
		                             export_entry, &s->x, &err);
		s->entries_done = s->x.rows - before < CKPT_PAGE;
	} else {
		rc = srv_store_checkpoint_foreach(s->ctx->store, 0, INT64_MAX, export_ckpt, &s->x,
		                                  &err);
		s->last = true;
	}
	if (rc != IDP_OK || s->x.failed) {
		/* The status line has left: cut the connection so the client sees
		 * an incomplete transfer, never a shorter export that looks whole. */
		char ebuf[FIO_LOG_ESC_MAX];
		if (rc == IDP_OK)
			(void)idp_error_set(&err, IDP_E_NOMEM, "out of memory");
		fio_log(FIO_LOG_ERROR, "admin.refused", "loop=%u action=audit_export error=\"%s\"",
		        s->ctx->loop, fio_log_err(&err, ebuf));
		int fd = bufferevent_getfd(evhttp_connection_get_bufferevent(s->conn));
		if (fd >= 0)
			(void)shutdown(fd, SHUT_RDWR); /* stream_closed() frees s */
		return;
	}
	/* Group commit: the entries just read may come from commits not yet
	 * on disk (another loop's decision, answered once its fsync is done).
	 * An export must not show an entry a power cut could still take back:
	 * the chain the client keeps would then fork from the server's. */
	s->parked = srv_loop_when_durable(srv_conn_loop(s->c), stream_durable, s);
	if (!s->parked)
		stream_send(s);
}

void srv_ckpt_export(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"since_seq", "since"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 2))
		return;
	struct idp_error err = {0};
	enum idp_err rc = IDP_OK;
	int64_t since_seq = 1, since_at = 0;
	const char *v = evhttp_find_header(&q, "since_seq");
	if (v != NULL && (!query_int(v, &since_seq) || since_seq < 1))
		rc = idp_error_set(&err, IDP_E_FORMAT, "since_seq: not a positive integer");
	v = evhttp_find_header(&q, "since");
	if (rc == IDP_OK && v != NULL && !query_int(v, &since_at))
		rc = idp_error_set(&err, IDP_E_FORMAT, "since: not a Unix time in seconds");
	evhttp_clear_headers(&q);
	/* Where the export starts, and the hash of the entry before it, so that
	 * the part exported chains on its own (formats/audit.md §7). */
	struct start f = {.since_at = since_at, .last_seq = since_seq - 1};
	if (rc == IDP_OK && since_seq > 1) {
		struct start pre = {.since_at = INT64_MAX};
		rc = srv_store_audit_foreach(ctx->store, since_seq - 2, 1, NULL, find_start, &pre,
		                             &err);
		memcpy(f.prev, pre.prev, sizeof(f.prev));
	}
	for (int64_t before = -1; rc == IDP_OK && !f.found && f.last_seq != before;) {
		before = f.last_seq;
		rc = srv_store_audit_foreach(ctx->store, f.last_seq, CKPT_PAGE, NULL, find_start, &f,
		                             &err);
	}
	struct stream *s = rc == IDP_OK ? calloc(1, sizeof(*s)) : NULL;
	if (rc == IDP_OK && (s == NULL || (s->x.out = evbuffer_new()) == NULL))
		rc = idp_error_set(&err, IDP_E_NOMEM, "out of memory");
	uint8_t *pem = NULL;
	size_t pem_len = 0;
	if (rc == IDP_OK) {
		rc = srv_state_read_public(ctx->state->dir, "audit.pub", FMT_KEY_PEM_MAX, &pem,
		                           &pem_len, &err);
		if (rc == IDP_E_NOTFOUND)
			rc = IDP_OK; /* no checkpoint yet: no key */
	}
	cJSON *h = rc == IDP_OK ? cJSON_CreateObject() : NULL;
	if (rc == IDP_OK && s != NULL) {
		s->ctx = ctx;
		s->req = req;
		s->conn = evhttp_request_get_connection(req);
		s->x.last_seq = f.last_seq;
		s->x.first_seq = f.last_seq + 1;
		memcpy(s->x.prev, f.prev, sizeof(s->x.prev));
		char prev[65];
		fmt_key_fingerprint_hex(f.prev, prev);
		char *pemz = pem != NULL ? calloc(1, pem_len + 1) : NULL;
		if (pemz != NULL)
			memcpy(pemz, pem, pem_len);
		if (h == NULL || cJSON_AddStringToObject(h, "type", "export") == NULL ||
		    cJSON_AddNumberToObject(h, "version", 2) == NULL ||
		    cJSON_AddNumberToObject(h, "first_seq", (double)s->x.first_seq) == NULL ||
		    cJSON_AddStringToObject(h, "prev_hash", prev) == NULL ||
		    (pemz != NULL ? cJSON_AddStringToObject(h, "audit_key", pemz)
		                  : cJSON_AddNullToObject(h, "audit_key")) == NULL)
			s->x.failed = true;
		free(pemz);
		add_line(&s->x, h);
		if (s->x.failed)
			rc = idp_error_set(&err, IDP_E_NOMEM, "out of memory");
	}
	fmt_file_free_secret(pem, pem_len);
	if (rc != IDP_OK || s == NULL) {
		if (s != NULL)
			stream_free(s);
		(void)srv_handlers_fail(ctx, req, rc != IDP_OK ? rc : IDP_E_NOMEM,
		                        FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	s->c = srv_conn_of(req);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD || s->conn == NULL || s->c == NULL) {
		stream_free(s);
		srv_http_reply(req, 200, "application/jsonl", NULL, 0);
		return;
	}
	srv_http_reply_start(req, 200, "application/jsonl");
	evhttp_connection_set_closecb(s->conn, stream_closed, s);
	stream_next(s);
}
