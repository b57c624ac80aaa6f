/*
 * import.c - see import.h.
 */
#include "server/import.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "formats/mac.h"
#include "formats/manifest.h"
#include "formats/manifest_sig.h"

/* The header line of src, read before anything is trusted (to find the station). */
static enum idp_err peek_header(const struct srv_import_src *src, struct fmt_manifest_header *h,
                                struct idp_error *err)
{
	memset(h, 0, sizeof(*h));
	if (src->header == NULL || src->header_len == 0)
		return idp_error_set(err, IDP_E_FORMAT, "import: no manifest header");
	enum idp_err rc = fmt_manifest_parse_header(src->header, src->header_len, true, h, err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "line 1");
	return rc;
}

struct ca_walk {
	X509_STORE *store;
	int added;
	bool failed;
};

/* Every certificate of a stored factory CA's PEM is trusted. */
static int add_ca(void *ctx, const char *name, const char *pem, size_t len)
{
	(void)name;
	struct ca_walk *w = ctx;
	STACK_OF(X509) *certs = NULL;
	if (fmt_x509_list_parse((const uint8_t *)pem, len, FMT_MANIFEST_CERTS_MAX, 0, &certs,
	                        NULL) != IDP_OK ||
	    fmt_x509_store_add(w->store, certs, NULL) != IDP_OK)
		w->failed = true;
	else
		w->added++;
	sk_X509_pop_free(certs, X509_free);
	return 0;
}

/* The header's station is known, enabled and still has the key that signed. */
static enum idp_err station_still_trusted(struct srv_store *st, const struct fmt_manifest_header *h,
                                          struct idp_error *err)
{
	struct srv_station s;
	enum idp_err rc = srv_store_station_get(st, h->station, &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, IDP_E_DENIED, "import: station %s is not trusted",
		                     h->station);
	if (rc != IDP_OK)
		return rc;
	if (!s.enabled)
		return idp_error_set(err, IDP_E_DENIED, "import: station %s is disabled",
		                     h->station);
	uint8_t fp[SHA256_DIGEST_LENGTH];
	SHA256(s.pubkey, s.pubkey_len, fp);
	if (CRYPTO_memcmp(fp, h->key, sizeof(fp)) != 0)
		return idp_error_set(err, IDP_E_DENIED,
		                     "import: station %s: manifest signed by another key",
		                     h->station);
	return IDP_OK;
}

/* Verify the signature with what the store trusts for the header's station. */
static enum idp_err verify(struct srv_store *st, const struct fmt_manifest_header *h,
                           const struct srv_import_src *src, const uint8_t *sig, size_t sig_len,
                           struct fmt_manifest_verified *v, struct idp_error *err)
{
	enum idp_err rc = station_still_trusted(st, h, err);
	if (rc != IDP_OK)
		return rc;
	struct srv_station s;
	rc = srv_store_station_get(st, h->station, &s, err);
	if (rc != IDP_OK)
		return rc;
	struct fmt_key *key = NULL;
	struct fmt_manifest_trust trust = {0};
	struct ca_walk walk = {0};
	if (h->sig == FMT_MANIFEST_SIG_CMS) {
		walk.store = X509_STORE_new();
		if (walk.store == NULL)
			return idp_error_set(err, IDP_E_NOMEM, "import: out of memory");
		rc = srv_store_factory_ca_foreach(st, add_ca, &walk, err);
		if (rc == IDP_OK && (walk.failed || walk.added == 0))
			rc = idp_error_set(err, IDP_E_DENIED, "import: no usable factory CA");
		trust.store = walk.store;
	} else {
		rc = fmt_key_parse_spki_der(s.pubkey, s.pubkey_len, &key, err);
		trust.station_key = key;
	}
	struct fmt_manifest_verifier *ver = NULL;
	if (rc == IDP_OK)
		rc = fmt_manifest_verifier_new(sig, sig_len, &trust, &ver, err);
	if (rc == IDP_OK)
		rc = fmt_manifest_verifier_final_digest(ver, src->header, src->header_len,
		                                        src->sha256, src->len, v, err);
	fmt_manifest_verifier_free(ver);
	if (rc == IDP_OK && (strcmp(v->header.station, h->station) != 0 ||
	                     strcmp(v->header.batch, h->batch) != 0 || v->header.seq != h->seq))
		rc = idp_error_set(err, IDP_E_VERIFY, "import: signed header differs");
	fmt_key_free(key);
	X509_STORE_free(walk.store);
	return rc;
}

struct claim_flag {
	struct srv_store *st;
	const char *detail;
	int64_t now;
	enum idp_err rc;
	struct idp_error *err;
};

/* A pending or rejected device claims a value a signed manifest gives to
 * another device: flag it for review (the manifest wins). */
static int flag_claim(void *ctx, const char *id)
{
	struct claim_flag *c = ctx;
	c->rc = srv_store_flag_add(c->st, SRV_IMPORT_FLAG_COLLISION, id, c->detail, c->now, c->err);
	return c->rc != IDP_OK;
}

/* value of kind already an enrolled device's (not id's) and not released?
 * Pending and rejected devices holding it do not count (anyone can claim a
 * MAC): they are flagged instead. */
static enum idp_err check_free(struct srv_store *st, enum srv_ident_kind kind, const char *what,
                               const uint8_t *v, size_t len, const char *shown, const char *id,
                               const char *batch_id, uint64_t line, int64_t now,
                               struct idp_error *err)
{
	char other[SRV_STORE_ID_MAX + 1];
	enum idp_err rc = srv_store_device_find_enrolled(st, kind, v, len, id, other, err);
	if (rc == IDP_E_NOTFOUND) {
		char detail[SRV_STORE_DETAIL_MAX];
		(void)snprintf(detail, sizeof(detail), "%s %s is manifest device %s's (batch %s)",
		               what, shown, id, batch_id);
		struct claim_flag c = {.st = st, .detail = detail, .now = now, .err = err};
		rc = srv_store_device_claims(st, kind, v, len, id, SRV_STORE_CLAIMS_MAX, flag_claim,
		                             &c, err);
		return rc != IDP_OK ? rc : c.rc;
	}
	if (rc != IDP_OK)
		return rc;
	bool released = false;
	rc = srv_store_release_check(st, kind, v, len, &released, err);
	if (rc != IDP_OK || released)
		return rc;
	return idp_error_set(err, IDP_E_DUPLICATE,
	                     "line %llu: device %s: %s %s is already enrolled as device %s",
	                     (unsigned long long)line, id, what, shown, other);
}

/* The exact reuse checks of import.h for a record whose ID, serial, MAC or
 * key some device holds: fills d's creation time and attempts, and *replace
 * when the record takes over a device of its ID. */
static enum idp_err check_held(struct srv_store *st, const struct fmt_manifest_record *rec,
                               const char *mac, const char *batch_id, uint64_t line, int64_t now,
                               struct srv_device *d, bool *replace, struct idp_error *err)
{
	struct srv_device old;
	enum idp_err rc = srv_store_device_get(st, rec->id, &old, err);
	if (rc == IDP_OK) {
		bool released = false;
		if (old.state == SRV_DEV_PENDING || old.state == SRV_DEV_REJECTED) {
			/* A claim, replaced by the signed record; flagged when it
			 * presented another key or MAC than the manifest's. */
			bool differs = (old.pubkey_len > 0 && rec->pub_len > 0 &&
			                (old.pubkey_len != rec->pub_len ||
			                 CRYPTO_memcmp(old.pubkey, rec->pub, rec->pub_len) != 0)) ||
			               (old.mac[0] != '\0' && strcmp(old.mac, mac) != 0) ||
			               old.state == SRV_DEV_REJECTED;
			char detail[SRV_STORE_DETAIL_MAX];
			(void)snprintf(detail, sizeof(detail),
			               "%s device replaced by manifest batch %s (line %llu)",
			               srv_device_state_name(old.state), batch_id,
			               (unsigned long long)line);
			if (differs)
				rc = srv_store_flag_add(st, SRV_IMPORT_FLAG_COLLISION, rec->id, detail,
				                        now, err);
			if (rc != IDP_OK)
				return rc;
		} else {
			rc = srv_store_release_check(st, SRV_IDENT_ID, (const uint8_t *)rec->id,
			                             strlen(rec->id), &released, err);
			if (rc == IDP_OK && !released)
				return idp_error_set(
				        err, IDP_E_DUPLICATE,
				        "line %llu: device %s is already enrolled (batch %s)",
				        (unsigned long long)line, rec->id,
				        old.batch_id[0] != '\0' ? old.batch_id : "none");
		}
		*replace = true;
		d->created_at = old.created_at;
		d->attempts = old.attempts;
	} else if (rc != IDP_E_NOTFOUND) {
		return rc;
	}
	rc = check_free(st, SRV_IDENT_SERIAL, "serial", (const uint8_t *)rec->serial,
	                strlen(rec->serial), rec->serial, rec->id, batch_id, line, now, err);
	if (rc == IDP_OK)
		rc = check_free(st, SRV_IDENT_MAC, "mac", (const uint8_t *)mac, strlen(mac), mac,
		                rec->id, batch_id, line, now, err);
	if (rc == IDP_OK && rec->pub_len > 0)
		rc = check_free(st, SRV_IDENT_KEY, "public key", rec->pub, rec->pub_len, "(key)",
		                rec->id, batch_id, line, now, err);
	return rc;
}

static enum idp_err import_record(struct srv_store *st, const struct fmt_manifest_record *rec,
                                  const char *batch_id, uint64_t line, int64_t now,
                                  struct idp_error *err)
{
	struct srv_device d;
	memset(&d, 0, sizeof(d));
	fmt_mac_format(rec->mac, d.mac);
	(void)snprintf(d.id, sizeof(d.id), "%s", rec->id);
	(void)snprintf(d.serial, sizeof(d.serial), "%s", rec->serial);
	memcpy(d.pubkey, rec->pub, rec->pub_len);
	d.pubkey_len = rec->pub_len;
	d.state = SRV_DEV_PRELOADED;
	(void)snprintf(d.batch_id, sizeof(d.batch_id), "%s", batch_id);
	d.created_at = now;
	d.updated_at = now;
	/* Almost every record of a batch is new: one probe of its serial, MAC
	 * and key, then the insert, which finds a taken ID itself (and writes
	 * nothing then). The exact checks run only when something holds one of
	 * its values. */
	bool held = true, replace = false;
	enum idp_err rc = srv_store_device_held(st, d.serial, d.mac, d.pubkey, d.pubkey_len, &held,
	                                        err);
	if (rc == IDP_OK && !held) {
		rc = srv_store_device_insert(st, &d, err);
		if (rc == IDP_OK)
			return IDP_OK;
		if (rc != IDP_E_DUPLICATE)
			goto write_failed;
		idp_error_clear(err); /* the ID is taken: see below */
		rc = IDP_OK;
	}
	if (rc == IDP_OK)
		rc = check_held(st, rec, d.mac, batch_id, line, now, &d, &replace, err);
	if (rc != IDP_OK)
		return rc;
	rc = replace ? srv_store_device_update(st, &d, err) : srv_store_device_insert(st, &d, err);
	if (rc == IDP_OK)
		return IDP_OK;
write_failed:
	idp_error_prefix(err, "line %llu", (unsigned long long)line);
	return rc;
}

/* a and b name the same batch the same way (what the import acts on). */
static bool same_header(const struct fmt_manifest_header *a, const struct fmt_manifest_header *b)
{
	return a->version == b->version && strcmp(a->batch, b->batch) == 0 &&
	       strcmp(a->station, b->station) == 0 && a->seq == b->seq &&
	       memcmp(a->prev, b->prev, sizeof(a->prev)) == 0 &&
	       strcmp(a->created, b->created) == 0 && strcmp(a->product, b->product) == 0 &&
	       a->count == b->count && a->sig == b->sig &&
	       memcmp(a->key, b->key, sizeof(a->key)) == 0;
}

/* Stream every record of src into the store, hashing the bytes again: they
 * must be the ones whose digest was verified. */
static enum idp_err import_records(struct srv_store *st, const struct srv_import_src *src,
                                   const struct fmt_manifest_header *h,
                                   const struct srv_rules *rules, int64_t now, int64_t *count,
                                   struct idp_error *err)
{
	const char *batch_id = h->batch, *product = h->product;
	struct fmt_manifest_reader *r = fmt_manifest_reader_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	enum idp_err rc = IDP_OK;
	if (r == NULL || md == NULL || EVP_DigestInit_ex2(md, EVP_sha256(), NULL) != 1)
		rc = idp_error_set(err, IDP_E_NOMEM, "import: out of memory");
	uint64_t total = 0;
	*count = 0;
	const uint8_t *chunk = NULL;
	size_t len = 0;
	while (rc == IDP_OK && (rc = src->next(src->ctx, &chunk, &len, err)) == IDP_OK && len > 0) {
		total += len;
		if (EVP_DigestUpdate(md, chunk, len) != 1)
			rc = idp_error_ssl(err, IDP_E_CRYPTO, "import: sha-256");
		size_t off = 0;
		while (rc == IDP_OK && off < len) {
			size_t used = 0;
			enum fmt_manifest_item item = FMT_MANIFEST_NONE;
			rc = fmt_manifest_reader_feed(r, chunk + off, len - off, &used, &item, err);
			off += used;
			if (rc == IDP_OK && item == FMT_MANIFEST_HEADER &&
			    !same_header(fmt_manifest_reader_header(r), h))
				rc = idp_error_set(err, IDP_E_VERIFY,
				                   "import: the header read back differs from the "
				                   "one verified");
			if (rc == IDP_OK && item == FMT_MANIFEST_RECORD) {
				const struct fmt_manifest_record *rec = fmt_manifest_reader_record(r);
				uint64_t line = fmt_manifest_reader_line(r);
				rc = srv_rules_check(rules, product, rec->id, rec->serial, err);
				/* The device proved its key at the line: check that
				 * proof again here, so a station key alone cannot
				 * invent one. */
				if (rc == IDP_OK && rec->has_capture)
					rc = fmt_manifest_capture_verify(fmt_manifest_reader_header(r),
					                                 rec, err);
				if (rc != IDP_OK)
					idp_error_prefix(err, "line %llu: device %s",
					                 (unsigned long long)line, rec->id);
				if (rc == IDP_OK)
					rc = import_record(st, rec, batch_id, line, now, err);
				(*count)++;
			} else if (rc == IDP_OK && used == 0 && item == FMT_MANIFEST_NONE) {
				break;
			}
		}
	}
	uint8_t again[SRV_STORE_HASH_LEN];
	unsigned n = 0;
	if (rc == IDP_OK && (EVP_DigestFinal_ex(md, again, &n) != 1 || n != sizeof(again)))
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "import: sha-256");
	if (rc == IDP_OK && (total != src->len || CRYPTO_memcmp(again, src->sha256, n) != 0))
		rc = idp_error_set(err, IDP_E_VERIFY,
		                   "import: the body read back differs from the one verified");
	if (rc == IDP_OK)
		rc = fmt_manifest_reader_finish(r, err);
	EVP_MD_CTX_free(md);
	fmt_manifest_reader_free(r);
	return rc;
}

enum idp_err srv_import_stream(struct srv_store *st, const struct srv_import_src *src,
                               const uint8_t *sig, size_t sig_len, const char *station,
                               const struct srv_rules *rules, int64_t now,
                               struct srv_import_result *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	struct fmt_manifest_header h;
	struct fmt_manifest_verified v;
	enum idp_err rc = peek_header(src, &h, err);
	if (rc == IDP_OK && station != NULL && strcmp(station, h.station) != 0)
		rc = idp_error_set(
		        err, IDP_E_DENIED,
		        "import: authenticated as station %s, the manifest is station %s's",
		        station, h.station);
	if (rc == IDP_OK)
		rc = verify(st, &h, src, sig, sig_len, &v, err);
	if (rc != IDP_OK)
		return rc;
	if (h.seq > (uint64_t)INT64_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "import: sequence too large");
	(void)snprintf(out->batch_id, sizeof(out->batch_id), "%s", h.batch);
	out->sequence = (int64_t)h.seq;
	rc = srv_store_begin(st, err);
	if (rc != IDP_OK)
		return rc;
	/* The station again, under the write lock: a station disabled (or given
	 * another key) while this import was being verified imports nothing. */
	rc = station_still_trusted(st, &h, err);
	if (rc != IDP_OK) {
		srv_store_rollback(st);
		return rc;
	}
	struct srv_batch b;
	rc = srv_store_batch_get_seq(st, h.station, (int64_t)h.seq, &b, err);
	if (rc == IDP_OK) {
		/* This sequence again: the same bytes answer the same, others are refused. */
		srv_store_rollback(st);
		if (CRYPTO_memcmp(b.hash, v.body_sha256, sizeof(b.hash)) != 0 ||
		    strcmp(b.id, h.batch) != 0)
			return idp_error_set(
			        err, IDP_E_CONFLICT,
			        "import: station %s sequence %llu was imported with other "
			        "bytes (batch %s)",
			        h.station, (unsigned long long)h.seq, b.id);
		out->devices = b.device_count;
		out->gap = b.state == SRV_BATCH_GAP;
		return IDP_OK;
	}
	if (rc == IDP_E_NOTFOUND)
		rc = srv_store_batch_get(st, h.batch, &b, err) == IDP_OK
		             ? idp_error_set(
		                       err, IDP_E_CONFLICT,
		                       "import: batch %s exists under station %s sequence %lld",
		                       h.batch, b.station_id, (long long)b.sequence)
		             : IDP_OK;
	/* The chain: the previous sequence must be here with the hash this one names. */
	static const uint8_t zero[FMT_MANIFEST_HASH_LEN] = {0};
	bool chained = false;
	if (rc == IDP_OK && h.seq == 1) {
		chained = CRYPTO_memcmp(h.prev, zero, sizeof(zero)) == 0;
	} else if (rc == IDP_OK) {
		struct srv_batch prev;
		enum idp_err prc =
		        srv_store_batch_get_seq(st, h.station, (int64_t)h.seq - 1, &prev, NULL);
		chained = prc == IDP_OK && CRYPTO_memcmp(prev.hash, h.prev, sizeof(h.prev)) == 0;
	}
	memset(&b, 0, sizeof(b));
	(void)snprintf(b.id, sizeof(b.id), "%s", h.batch);
	(void)snprintf(b.station_id, sizeof(b.station_id), "%s", h.station);
	(void)snprintf(b.product, sizeof(b.product), "%s", h.product);
	b.sequence = (int64_t)h.seq;
	memcpy(b.hash, v.body_sha256, sizeof(b.hash));
	memcpy(b.prev_hash, h.prev, sizeof(b.prev_hash));
	b.has_prev = h.seq > 1;
	b.device_count = (int64_t)h.count;
	b.imported_at = now;
	b.state = chained ? SRV_BATCH_IMPORTED : SRV_BATCH_GAP;
	if (rc == IDP_OK)
		rc = srv_store_batch_insert(st, &b, err);
	if (rc == IDP_OK)
		rc = import_records(st, src, &h, rules, now, &out->devices, err);
	if (rc == IDP_OK && !chained)
		rc = srv_store_flag_add(st, "batch-gap", h.batch,
		                        "previous sequence missing or its hash differs", now, err);
	const struct srv_audit_event ev = {
	        .at = now, .event = "batch.imported", .subject = h.batch, .detail = h.station};
	if (rc == IDP_OK)
		rc = srv_store_audit_append(st, &ev, err);
	if (rc == IDP_OK)
		rc = srv_store_commit(st, err);
	else
		srv_store_rollback(st);
	if (rc == IDP_OK) {
		out->created = true;
		out->gap = !chained;
	}
	return rc;
}

/* A body in memory: one chunk. */
struct mem_body {
	const uint8_t *p;
	size_t len;
	bool given;
};

static enum idp_err mem_next(void *ctx, const uint8_t **chunk, size_t *n, struct idp_error *err)
{
	(void)err;
	struct mem_body *m = ctx;
	*chunk = m->p;
	*n = m->given ? 0 : m->len;
	m->given = true;
	return IDP_OK;
}

enum idp_err srv_import(struct srv_store *st, const uint8_t *body, size_t len, const uint8_t *sig,
                        size_t sig_len, const char *station, const struct srv_rules *rules,
                        int64_t now, struct srv_import_result *out, struct idp_error *err)
{
	struct mem_body m = {.p = body, .len = len};
	struct srv_import_src src = {.len = len, .next = mem_next, .ctx = &m};
	size_t look = len < FMT_MANIFEST_LINE_MAX ? len : FMT_MANIFEST_LINE_MAX;
	const uint8_t *lf = look > 0 ? memchr(body, '\n', look) : NULL;
	if (lf != NULL) {
		src.header = body;
		src.header_len = (size_t)(lf - body) + 1;
	}
	if (SHA256(len > 0 ? body : (const uint8_t *)"", len, src.sha256) == NULL) {
		memset(out, 0, sizeof(*out));
		return idp_error_ssl(err, IDP_E_CRYPTO, "import: sha-256");
	}
	return srv_import_stream(st, &src, sig, sig_len, station, rules, now, out, err);
}
