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

#include "formats/id.h"
#include "formats/keys.h"
#include "formats/x509.h"
#include "server/admin.h"
#include "server/handlers.h"

/* Answer top (200) when rc is IDP_OK, else the failure; top is freed. */
static void send_top(struct srv_ctx *ctx, struct evhttp_request *req, enum idp_err rc,
                     const struct idp_error *err, cJSON *top)
{
	if (rc == IDP_OK)
		srv_http_json(req, 200, top);
	else
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, err);
	cJSON_Delete(top);
}

/* ---------------------------------------------------------------- batches */

struct station_ids {
	char (*id)[SRV_STORE_ID_MAX + 1];
	size_t n;
	const char *only; /* NULL: every station */
};

static int collect_station(void *ctx, const struct srv_station *s)
{
	struct station_ids *l = ctx;
	if (l->only != NULL && strcmp(l->only, s->id) != 0)
		return 0;
	if (l->n == SRV_ADMIN_VIEW_STATIONS_MAX)
		return 1;
	memcpy(l->id[l->n++], s->id, sizeof(s->id));
	return 0;
}

static cJSON *hash_text(cJSON *o, const char *name, const uint8_t h[static SRV_STORE_HASH_LEN])
{
	char hex[65];
	fmt_key_fingerprint_hex(h, hex);
	return cJSON_AddStringToObject(o, name, hex);
}

/* Add the row of sequence seq of station to arr: the batch b (NULL when
 * that sequence was never imported); chained says whether b's prev_hash is
 * the hash of the batch before it. */
static bool add_batch_row(cJSON *arr, const char *station, int64_t seq, const struct srv_batch *b,
                          bool chained)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return false;
	}
	bool ok = cJSON_AddStringToObject(o, "station_id", station) != NULL &&
	          cJSON_AddNumberToObject(o, "sequence", (double)seq) != NULL &&
	          cJSON_AddBoolToObject(o, "missing", b == NULL) != NULL;
	if (ok && b != NULL)
		ok = cJSON_AddStringToObject(o, "id", b->id) != NULL &&
		     cJSON_AddStringToObject(o, "state", srv_batch_state_name(b->state)) != NULL &&
		     cJSON_AddStringToObject(o, "product", b->product) != NULL &&
		     cJSON_AddNumberToObject(o, "devices", (double)b->device_count) != NULL &&
		     cJSON_AddNumberToObject(o, "imported_at", (double)b->imported_at) != NULL &&
		     hash_text(o, "hash", b->hash) != NULL &&
		     (b->has_prev ? hash_text(o, "prev_hash", b->prev_hash)
		                  : cJSON_AddNullToObject(o, "prev_hash")) != NULL &&
		     cJSON_AddBoolToObject(o, "chained", chained) != NULL;
	return ok;
}

/* Walk station's chain 1..last into arr, at most *left rows. */
static enum idp_err walk_chain(struct srv_store *st, const char *station, cJSON *arr,
                               size_t *left, bool *truncated, struct idp_error *err)
{
	struct srv_batch last, b, prev;
	bool have_prev = false;
	enum idp_err rc = srv_store_batch_get_last(st, station, &last, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	for (int64_t seq = 1; rc == IDP_OK && seq <= last.sequence; seq++) {
		if (*left == 0) {
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
		if (!add_batch_row(arr, station, seq, found ? &b : NULL, chained))
			return idp_error_set(err, IDP_E_NOMEM, "out of memory");
		(*left)--;
		have_prev = found;
		if (found)
			prev = b;
	}
	return rc;
}

void srv_admin_batch_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!srv_admin_authorized(ctx, req))
		return;
	struct evkeyvalq q;
	TAILQ_INIT(&q);
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct idp_error err = {0};
	enum idp_err rc = IDP_OK;
	if (query != NULL && evhttp_parse_query_str(query, &q) != 0)
		rc = idp_error_set(&err, IDP_E_FORMAT, "query: malformed");
	for (const struct evkeyval *kv = TAILQ_FIRST(&q); rc == IDP_OK && kv != NULL;
	     kv = TAILQ_NEXT(kv, next))
		if (strcmp(kv->key, "station") != 0)
			rc = idp_error_set(&err, IDP_E_FORMAT, "query: only station is known");
	struct station_ids ids = {.only = evhttp_find_header(&q, "station")};
	if (rc == IDP_OK && ids.only != NULL)
		rc = fmt_id_check(ids.only, strlen(ids.only), "station", &err);
	ids.id = rc == IDP_OK ? calloc(SRV_ADMIN_VIEW_STATIONS_MAX, sizeof(*ids.id)) : NULL;
	if (rc == IDP_OK && ids.id == NULL)
		rc = idp_error_set(&err, IDP_E_NOMEM, "out of memory");
	if (rc == IDP_OK)
		rc = srv_store_station_foreach(ctx->store, collect_station, &ids, &err);
	cJSON *top = rc == IDP_OK ? cJSON_CreateObject() : NULL;
	cJSON *arr = top != NULL ? cJSON_AddArrayToObject(top, "batches") : NULL;
	if (rc == IDP_OK && arr == NULL)
		rc = idp_error_set(&err, IDP_E_NOMEM, "out of memory");
	size_t left = SRV_ADMIN_LIST_MAX;
	bool truncated = false;
	for (size_t i = 0; rc == IDP_OK && i < ids.n && !truncated; i++)
		rc = walk_chain(ctx->store, ids.id[i], arr, &left, &truncated, &err);
	if (rc == IDP_OK && cJSON_AddBoolToObject(top, "truncated", truncated) == NULL)
		rc = idp_error_set(&err, IDP_E_NOMEM, "out of memory");
	send_top(ctx, req, rc, &err, top);
	free(ids.id);
	evhttp_clear_headers(&q);
}

/* ---------------------------------------------------------------- CAs */

struct ca_list {
	cJSON *arr;
	bool failed;
};

/* One CA as {"name","sha256","subject","not_after"}; a PEM that no longer
 * parses (it was checked when added) is listed with its name only. */
static int add_ca(void *ctx, const char *name, const char *pem, size_t len)
{
	struct ca_list *l = ctx;
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || !cJSON_AddItemToArray(l->arr, o)) {
		cJSON_Delete(o);
		l->failed = true;
		return 1;
	}
	if (cJSON_AddStringToObject(o, "name", name) == NULL) {
		l->failed = true;
		return 1;
	}
	X509 *x = NULL;
	if (fmt_x509_parse_first((const uint8_t *)pem, len, &x, NULL) != IDP_OK)
		return 0;
	uint8_t md[32];
	unsigned mdlen = 0;
	char hex[65], subject[512], after[32] = "";
	bool ok = X509_digest(x, EVP_sha256(), md, &mdlen) == 1 && mdlen == sizeof(md);
	if (ok)
		fmt_key_fingerprint_hex(md, hex);
	X509_NAME_oneline(X509_get_subject_name(x), subject, (int)sizeof(subject));
	const ASN1_TIME *na = X509_get0_notAfter(x);
	struct tm tm;
	if (na != NULL && ASN1_TIME_to_tm(na, &tm) == 1)
		(void)strftime(after, sizeof(after), "%Y-%m-%dT%H:%M:%SZ", &tm);
	X509_free(x);
	if (ok && (cJSON_AddStringToObject(o, "sha256", hex) == NULL ||
	           cJSON_AddStringToObject(o, "subject", subject) == NULL ||
	           cJSON_AddStringToObject(o, "not_after", after) == NULL)) {
		l->failed = true;
		return 1;
	}
	return 0;
}

void srv_admin_ca_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!srv_admin_authorized(ctx, req))
		return;
	struct idp_error err = {0};
	struct ca_list l = {0};
	cJSON *top = cJSON_CreateObject();
	l.arr = top != NULL ? cJSON_AddArrayToObject(top, "cas") : NULL;
	enum idp_err rc = l.arr != NULL
	                          ? srv_store_factory_ca_foreach(ctx->store, add_ca, &l, &err)
	                          : idp_error_set(&err, IDP_E_NOMEM, "out of memory");
	if (rc == IDP_OK && l.failed)
		rc = idp_error_set(&err, IDP_E_NOMEM, "out of memory");
	send_top(ctx, req, rc, &err, top);
}
