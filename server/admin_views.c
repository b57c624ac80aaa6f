/*
 * admin_views.c - see admin_views.h. Built from the store's existing
 * lookups (no new query): stations are collected first, then each chain is
 * walked by sequence, so no statement is stepped inside another.
 */
#include "server/admin_views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "formats/admin_api.h"
#include "formats/id.h"
#include "formats/keys.h"
#include "formats/x509.h"
#include "server/admin.h"
#include "server/handlers.h"

/* ---------------------------------------------------------------- batches */

/* One page of station IDs (SRV_ADMIN_VIEW_STATIONS_MAX), walked after it
 * is read, so that no statement is stepped inside another. */
struct station_ids {
	char (*id)[SRV_STORE_ID_MAX + 1];
	size_t n;
};

static int collect_station(void *ctx, const struct srv_station *s)
{
	struct station_ids *l = ctx;
	memcpy(l->id[l->n++], s->id, sizeof(s->id));
	return l->n == SRV_ADMIN_VIEW_STATIONS_MAX;
}

/* The rows of a batch listing and the text they point to. */
struct batch_rows {
	struct fmt_admin_batch row[SRV_ADMIN_LIST_MAX];
	struct batch_text {
		char station[SRV_STORE_ID_MAX + 1];
		char id[SRV_STORE_ID_MAX + 1];
		char product[SRV_STORE_PRODUCT_MAX + 1];
		char hash[FMT_ADMIN_SHA256_HEX + 1];
		char prev_hash[FMT_ADMIN_SHA256_HEX + 1];
	} text[SRV_ADMIN_LIST_MAX];
	size_t n;
};

/* Add the row of sequence seq of station to rows: the batch b (NULL when
 * that sequence was never imported); chained says whether b's prev_hash is
 * the hash of the batch before it. There is room (the caller counts). */
static void add_batch_row(struct batch_rows *rows, const char *station, int64_t seq,
                          const struct srv_batch *b, bool chained)
{
	struct fmt_admin_batch *r = &rows->row[rows->n];
	struct batch_text *t = &rows->text[rows->n++];
	(void)snprintf(t->station, sizeof(t->station), "%s", station);
	*r = (struct fmt_admin_batch){.station_id = t->station, .sequence = seq, .missing = b == NULL};
	if (b == NULL)
		return;
	memcpy(t->id, b->id, sizeof(t->id));
	memcpy(t->product, b->product, sizeof(t->product));
	fmt_key_fingerprint_hex(b->hash, t->hash);
	if (b->has_prev)
		fmt_key_fingerprint_hex(b->prev_hash, t->prev_hash);
	r->id = t->id;
	r->state = srv_batch_state_name(b->state);
	r->product = t->product;
	r->devices = b->device_count;
	r->imported_at = b->imported_at;
	r->hash = t->hash;
	r->prev_hash = b->has_prev ? t->prev_hash : NULL;
	r->chained = chained;
}

/* Walk station's chain from..last into rows, up to SRV_ADMIN_LIST_MAX rows
 * (*truncated when rows are left). The batch before from is read too, for
 * the first row's "chained". */
static enum idp_err walk_chain(struct srv_store *st, const char *station, int64_t from,
                               struct batch_rows *rows, bool *truncated, struct idp_error *err)
{
	struct srv_batch last, b, prev;
	bool have_prev = false;
	enum idp_err rc = srv_store_batch_get_last(st, station, &last, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	for (int64_t seq = from > 1 ? from - 1 : 1; rc == IDP_OK && seq <= last.sequence; seq++) {
		bool seed = seq < from; /* the batch before the first row: not a row */
		if (!seed && rows->n == SRV_ADMIN_LIST_MAX) {
			*truncated = true;
			break;
		}
		rc = srv_store_batch_get_seq(st, station, seq, &b, err);
		bool found = rc == IDP_OK;
		if (rc == IDP_E_NOTFOUND)
			rc = IDP_OK;
		if (rc != IDP_OK)
			break;
		/* The first batch chains on nothing; a later one on the hash of
		 * the batch before it, which a gap leaves unknown here. */
		bool chained = found && (seq == 1 ? !b.has_prev
		                                  : have_prev && b.has_prev &&
		                                            CRYPTO_memcmp(b.prev_hash, prev.hash,
		                                                          SRV_STORE_HASH_LEN) == 0);
		if (!seed)
			add_batch_row(rows, station, seq, found ? &b : NULL, chained);
		have_prev = found;
		if (found)
			prev = b;
	}
	return rc;
}

/* A page's position: "STATION:SEQUENCE" of the last row listed (split at
 * the last ':', which an ID may hold too) into station and *seq. */
static enum idp_err parse_after(const char *v, char station[static SRV_STORE_ID_MAX + 1],
                                int64_t *seq, struct idp_error *err)
{
	const char *c = strrchr(v, ':');
	size_t n = c != NULL ? strnlen(c + 1, 20) : 0;
	if (c == NULL || n == 0 || n > 18 || strspn(c + 1, "0123456789") != n ||
	    strtoll(c + 1, NULL, 10) <= 0 || (size_t)(c - v) > SRV_STORE_ID_MAX ||
	    fmt_id_check(v, (size_t)(c - v), "after", NULL) != IDP_OK)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "after: not STATION:SEQUENCE (a station ID, a positive "
		                     "integer), as a page's \"next\" names it");
	memcpy(station, v, (size_t)(c - v));
	station[c - v] = '\0';
	*seq = strtoll(c + 1, NULL, 10);
	return IDP_OK;
}

/* Walk the chains into rows: the rest of after's station's from seq + 1
 * (when after[0] != '\0'), then each station after it in ID order (only
 * that station when only != NULL), until rows are full (*truncated). */
static enum idp_err walk_stations(struct srv_store *st, const char *only, const char *after,
                                  int64_t seq, struct batch_rows *rows, bool *truncated,
                                  struct idp_error *err)
{
	enum idp_err rc = IDP_OK;
	if (after[0] != '\0' && (only == NULL || strcmp(only, after) == 0))
		rc = walk_chain(st, after, seq + 1, rows, truncated, err);
	if (only != NULL) /* no batch is imported for a station not stored */
		return rc == IDP_OK && strcmp(only, after) > 0
		               ? walk_chain(st, only, 1, rows, truncated, err)
		               : rc;
	struct station_ids ids = {.id = calloc(SRV_ADMIN_VIEW_STATIONS_MAX, sizeof(*ids.id))};
	if (ids.id == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "out of memory");
	char from[SRV_STORE_ID_MAX + 1];
	(void)snprintf(from, sizeof(from), "%s", after);
	do {
		ids.n = 0;
		if (rc == IDP_OK && !*truncated)
			rc = srv_store_station_page(st, from, SRV_ADMIN_VIEW_STATIONS_MAX,
			                            collect_station, &ids, err);
		for (size_t i = 0; rc == IDP_OK && i < ids.n && !*truncated; i++)
			rc = walk_chain(st, ids.id[i], 1, rows, truncated, err);
		if (ids.n > 0)
			memcpy(from, ids.id[ids.n - 1], sizeof(from));
	} while (rc == IDP_OK && !*truncated && ids.n == SRV_ADMIN_VIEW_STATIONS_MAX);
	free(ids.id);
	return rc;
}

void srv_admin_batch_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"station", "after"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 2))
		return;
	struct idp_error err = {0};
	enum idp_err rc = IDP_OK;
	const char *only = evhttp_find_header(&q, "station");
	const char *av = evhttp_find_header(&q, "after");
	char after[SRV_STORE_ID_MAX + 1] = "";
	int64_t seq = 0;
	if (only != NULL)
		rc = fmt_id_check(only, strlen(only), "station", &err);
	if (rc == IDP_OK && av != NULL)
		rc = parse_after(av, after, &seq, &err);
	struct batch_rows *rows = rc == IDP_OK ? calloc(1, sizeof(*rows)) : NULL;
	if (rc == IDP_OK && rows == NULL)
		rc = idp_error_set(&err, IDP_E_NOMEM, "out of memory");
	struct fmt_admin_batches a = {0};
	if (rc == IDP_OK && rows != NULL)
		rc = walk_stations(ctx->store, only, after, seq, rows, &a.truncated, &err);
	char next[SRV_STORE_ID_MAX + 24];
	if (rc == IDP_OK && rows != NULL) {
		a.batches = rows->row;
		a.n_batches = rows->n;
		if (a.truncated) { /* rows->n is SRV_ADMIN_LIST_MAX */
			const struct fmt_admin_batch *r = &rows->row[rows->n - 1];
			(void)snprintf(next, sizeof(next), "%s:%lld", r->station_id,
			               (long long)r->sequence);
			a.next = next;
		}
		srv_admin_send_body(ctx, req, FMT_ADMIN_BATCHES, &a);
	} else {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	}
	free(rows);
	evhttp_clear_headers(&q);
}

/* ---------------------------------------------------------------- CAs */

struct ca_list {
	cJSON *rows;
	size_t n;
	char last[SRV_STORE_ID_MAX + 1]; /* the last row's name: "next" of a full page */
	enum idp_err rc;                 /* the encoder's refusal */
	struct idp_error *err;
};

/* One CA as a row of the listing; a PEM that no longer parses (it was
 * checked when added) is listed with its name only. */
static int add_ca(void *ctx, const char *name, const char *pem, size_t len)
{
	struct ca_list *l = ctx;
	struct fmt_admin_ca row = {.name = name};
	X509 *x = NULL;
	char hex[FMT_ADMIN_SHA256_HEX + 1], subject[FMT_ADMIN_SUBJECT_MAX + 1],
	        after[FMT_ADMIN_DATE_MAX] = "";
	if (fmt_x509_parse_first((const uint8_t *)pem, len, &x, NULL) == IDP_OK) {
		uint8_t md[32];
		unsigned mdlen = 0;
		bool ok = X509_digest(x, EVP_sha256(), md, &mdlen) == 1 && mdlen == sizeof(md);
		X509_NAME_oneline(X509_get_subject_name(x), subject, (int)sizeof(subject));
		const ASN1_TIME *na = X509_get0_notAfter(x);
		struct tm tm;
		if (na != NULL && ASN1_TIME_to_tm(na, &tm) == 1)
			(void)strftime(after, sizeof(after), "%Y-%m-%dT%H:%M:%SZ", &tm);
		X509_free(x);
		if (ok) {
			fmt_key_fingerprint_hex(md, hex);
			row.sha256 = hex;
			row.subject = subject;
			row.not_after = after;
		}
	}
	l->rc = fmt_admin_list_add(l->rows, FMT_ADMIN_CA, &row, l->err);
	if (l->rc != IDP_OK)
		return 1;
	l->n++;
	(void)snprintf(l->last, sizeof(l->last), "%s", name);
	return 0;
}

/* GET /v1/admin/cas[?after=NAME]: the factory CAs in name order, at most
 * SRV_ADMIN_LIST_MAX; "next" names the CA to continue after. */
void srv_admin_ca_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"after"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 1))
		return;
	const char *after = evhttp_find_header(&q, "after");
	struct idp_error err = {0};
	struct ca_list l = {.err = &err};
	cJSON *top = NULL;
	enum idp_err rc = after != NULL ? fmt_id_check(after, strlen(after), "after", &err) : IDP_OK;
	if (rc == IDP_OK)
		rc = fmt_admin_list_new(FMT_ADMIN_CA, &top, &l.rows, &err);
	if (rc == IDP_OK)
		rc = srv_store_factory_ca_page(ctx->store, after, SRV_ADMIN_LIST_MAX, add_ca, &l,
		                               &err);
	/* A full page names its last CA, which may be the last of all: the
	 * next page is then empty, as in the other listings. */
	if (rc == IDP_OK && l.rc == IDP_OK)
		l.rc = fmt_admin_list_end(top, l.n == SRV_ADMIN_LIST_MAX ? l.last : NULL, 0, &err);
	if (rc == IDP_OK && l.rc != IDP_OK)
		srv_admin_encode_failed(ctx, req, &err);
	else if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	else
		srv_http_json(req, 200, top);
	cJSON_Delete(top);
	evhttp_clear_headers(&q);
}
