/*
 * store.c - the engine-neutral half of server/store.h: the names enum
 * values are stored and shown under, and the checks every engine applies
 * to a caller's values before they reach its database, so that each engine
 * refuses the same input with the same message. An engine
 * (server/store_sqlite.c; PostgreSQL later) holds only its own I/O.
 *
 * Pure: no I/O, no state; any thread.
 */
#include "server/store.h"

#include <string.h>

static const char *const device_states[] = {
        [SRV_DEV_PRELOADED] = "preloaded", [SRV_DEV_PENDING] = "pending",
        [SRV_DEV_APPROVED] = "approved",   [SRV_DEV_REJECTED] = "rejected",
        [SRV_DEV_REVOKED] = "revoked",
};
static const char *const batch_states[] = {
        [SRV_BATCH_IMPORTED] = "imported",
        [SRV_BATCH_GAP] = "gap",
};
static const char *const ident_kinds[] = {
        [SRV_IDENT_ID] = "id",
        [SRV_IDENT_SERIAL] = "serial",
        [SRV_IDENT_MAC] = "mac",
        [SRV_IDENT_KEY] = "key",
};

#define N_OF(table) (sizeof(table) / sizeof((table)[0]))
#define NAME_OF(table, v)                                                                          \
	((size_t)(v) < N_OF(table) && (table)[(v)] != NULL ? (table)[(v)] : "unknown")

const char *srv_device_state_name(enum srv_device_state s)
{
	return NAME_OF(device_states, s);
}

const char *srv_batch_state_name(enum srv_batch_state s)
{
	return NAME_OF(batch_states, s);
}

const char *srv_ident_kind_name(enum srv_ident_kind k)
{
	return NAME_OF(ident_kinds, k);
}

/* Index of name[0..len) in table (1-based enums), or 0 when absent. */
static int index_of(const char *const *table, size_t n, const char *name, size_t len)
{
	for (size_t i = 1; name != NULL && i < n; i++)
		if (table[i] != NULL && strlen(table[i]) == len && memcmp(table[i], name, len) == 0)
			return (int)i;
	return 0;
}

enum srv_device_state srv_device_state_of(const char *name, size_t len)
{
	return (enum srv_device_state)index_of(device_states, N_OF(device_states), name, len);
}

enum srv_batch_state srv_batch_state_of(const char *name, size_t len)
{
	return (enum srv_batch_state)index_of(batch_states, N_OF(batch_states), name, len);
}

/* ---------------------------------------------------------------- checks */

enum idp_err srv_store_check_text(const char *v, size_t max, bool required, const char *name,
                                  struct idp_error *err)
{
	if (v == NULL || v[0] == '\0')
		return required ? idp_error_set(err, IDP_E_ARG, "store: %s is empty", name)
		                : IDP_OK;
	if (strnlen(v, max + 1) > max)
		return idp_error_set(err, IDP_E_LIMIT, "store: %s is longer than %zu bytes", name,
		                     max);
	return IDP_OK;
}

enum idp_err srv_store_check_station(const struct srv_station *s, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_text(s->id, SRV_STORE_ID_MAX, true, "station id", err);
	if (rc != IDP_OK)
		return rc;
	if (s->pubkey_len == 0 || s->pubkey_len > FMT_KEY_SPKI_MAX)
		return idp_error_set(err, IDP_E_ARG, "store: station %s: bad public key length",
		                     s->id);
	return IDP_OK;
}

enum idp_err srv_store_check_factory_ca(const char *name, size_t pem_len, struct idp_error *err)
{
	enum idp_err rc =
	        srv_store_check_text(name, SRV_STORE_ID_MAX, true, "factory ca name", err);
	if (rc != IDP_OK)
		return rc;
	if (pem_len == 0 || pem_len > SRV_STORE_PEM_MAX)
		return idp_error_set(err, IDP_E_LIMIT,
		                     "store: factory ca %s: pem is %zu bytes, max %u", name,
		                     pem_len, SRV_STORE_PEM_MAX);
	return IDP_OK;
}

enum idp_err srv_store_check_batch(const struct srv_batch *b, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_text(b->id, SRV_STORE_ID_MAX, true, "batch id", err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(b->station_id, SRV_STORE_ID_MAX, true, "station id", err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(b->product, SRV_STORE_PRODUCT_MAX, false, "product", err);
	return rc;
}

enum idp_err srv_store_check_device(const struct srv_device *d, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_text(d->id, SRV_STORE_ID_MAX, true, "device id", err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(d->mac, SRV_STORE_MAC_MAX, false, "mac", err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(d->serial, SRV_STORE_SERIAL_MAX, false, "serial", err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(d->batch_id, SRV_STORE_ID_MAX, false, "batch id", err);
	if (rc == IDP_OK && d->pubkey_len > FMT_KEY_SPKI_MAX)
		rc = idp_error_set(err, IDP_E_LIMIT, "store: device %s: public key too long",
		                   d->id);
	if (rc == IDP_OK && (d->state < SRV_DEV_PRELOADED || d->state > SRV_DEV_REVOKED))
		rc = idp_error_set(err, IDP_E_ARG, "store: device %s: bad state %d", d->id,
		                   (int)d->state);
	return rc;
}

enum idp_err srv_store_check_ident(enum srv_ident_kind kind, size_t len, const char *what,
                                   struct idp_error *err)
{
	if (kind < SRV_IDENT_ID || kind > SRV_IDENT_KEY || len == 0 || len > FMT_KEY_SPKI_MAX)
		return idp_error_set(err, IDP_E_ARG, "store: %s: bad kind or length", what);
	return IDP_OK;
}

enum idp_err srv_store_check_token(const struct srv_token *t, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_text(t->jti, SRV_STORE_JTI_MAX, true, "jti", err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(t->device_id, SRV_STORE_ID_MAX, true, "device id", err);
	if (rc == IDP_OK && t->kind != FMT_TOKEN_PROVISION && t->kind != FMT_TOKEN_DEVICE)
		rc = idp_error_set(err, IDP_E_ARG, "store: token %s: bad kind", t->jti);
	if (rc == IDP_OK)
		rc = srv_store_check_text(t->parent, SRV_STORE_JTI_MAX, false, "token parent", err);
	return rc;
}

enum idp_err srv_store_check_contender(const char *device_id, size_t key_len, const char *mac,
                                       struct idp_error *err)
{
	enum idp_err rc = srv_store_check_text(device_id, SRV_STORE_ID_MAX, true, "device id", err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(mac, SRV_STORE_MAC_MAX, false, "mac", err);
	if (rc == IDP_OK && (key_len == 0 || key_len > FMT_KEY_SPKI_MAX))
		rc = idp_error_set(err, IDP_E_ARG, "store: contender: bad public key length");
	return rc;
}

enum idp_err srv_store_check_flag(const char *kind, const char *subject, const char *detail,
                                  struct idp_error *err)
{
	enum idp_err rc = srv_store_check_text(kind, SRV_STORE_KIND_MAX, true, "flag kind", err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(subject, SRV_STORE_ID_MAX, false, "flag subject", err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(detail, SRV_STORE_DETAIL_MAX, false, "flag detail", err);
	return rc;
}

enum idp_err srv_store_check_audit(const struct srv_audit_event *ev, struct idp_error *err)
{
	enum idp_err rc =
	        srv_store_check_text(ev->event, SRV_STORE_KIND_MAX, true, "audit event", err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(ev->subject, SRV_STORE_ID_MAX, false, "audit subject",
		                          err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(ev->detail, SRV_STORE_DETAIL_MAX, false, "audit detail",
		                          err);
	if (rc == IDP_OK)
		rc = srv_store_check_text(ev->actor, SRV_STORE_ACTOR_MAX, false, "audit actor", err);
	return rc;
}

enum idp_err srv_store_check_nonce(size_t len, struct idp_error *err)
{
	if (len == 0 || len > SRV_STORE_NONCE_MAX)
		return idp_error_set(err, IDP_E_ARG, "store: nonce is %zu bytes, max %u", len,
		                     SRV_STORE_NONCE_MAX);
	return IDP_OK;
}

enum idp_err srv_store_check_proof(size_t len, struct idp_error *err)
{
	if (len == 0 || len > SRV_STORE_HASH_LEN)
		return idp_error_set(err, IDP_E_ARG, "store: proof hash is %zu bytes, max %u", len,
		                     SRV_STORE_HASH_LEN);
	return IDP_OK;
}
