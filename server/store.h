/*
 * store.h - the provisioning server's store: the one interface the handlers,
 * the import and the admin API use. Engine: SQLite (server/store_sqlite.c); a
 * second engine implements this same header in its own file, sharing
 * server/store.c (the names of states and kinds, the checks on values).
 * Schema and durability rules: docs/store.md.
 *
 * Thread-safety: a struct srv_store is one connection and is used by one
 * thread at a time (one per event loop); many connections to the same file
 * may be open at once in one or several processes (the engine locks).
 *
 * Times are Unix seconds supplied by the caller ("now"), so that expiry is
 * testable. Every change the caller wants atomic across several calls goes
 * between srv_store_begin() and srv_store_commit(); a single call outside a
 * transaction is atomic and durable by itself. When a call returns IDP_OK
 * after a commit, the change is on disk (synchronous=FULL), except on a
 * connection that joined a group commit (srv_store_sync_join below).
 */
#ifndef IDP_SERVER_STORE_H
#define IDP_SERVER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/keys.h"
#include "formats/api.h"
#include "formats/audit.h"
#include "formats/id.h"
#include "formats/mac.h"
#include "formats/manifest.h"
#include "formats/oob.h"
#include "formats/token.h"

/* Sizes of what formats/ defines are formats/'s, so that the two cannot drift. */
#define SRV_STORE_ID_MAX      FMT_ID_MAX       /* device, batch and station IDs, bytes */
#define SRV_STORE_SERIAL_MAX  FMT_ID_MAX       /* device serial, bytes */
#define SRV_STORE_MAC_MAX     FMT_MAC_TEXT_LEN /* "aa:bb:cc:dd:ee:ff" */
#define SRV_STORE_HASH_LEN    FMT_MANIFEST_HASH_LEN /* SHA-256 (manifests, the store digest) */
#define SRV_STORE_PRODUCT_MAX FMT_MANIFEST_PRODUCT_MAX /* product/model name, bytes */
#define SRV_STORE_JTI_MAX     FMT_TOKEN_JTI_LEN /* token ID, bytes */
#define SRV_STORE_NONCE_MAX   FMT_API_NONCE_LEN /* server nonce, bytes */
#define SRV_STORE_KIND_MAX    32u    /* flag, audit and release kinds */
#define SRV_STORE_DETAIL_MAX  1024u  /* flag and audit details, bytes */
#define SRV_STORE_PEM_MAX     16384u /* a certificate PEM */
#define SRV_STORE_BUSY_MS     5000   /* how long a writer waits for the lock */
#define SRV_STORE_BUSY_SLICE_MS 20   /* the short wait of a loop or timer that retries later */
#define SRV_STORE_SOURCE_MAX  64u    /* client address that created a pending device */
#define SRV_STORE_CLAIMS_MAX  16u    /* claims srv_store_device_claims reports at most */
#define SRV_STORE_ACTOR_MAX   FMT_ID_MAX /* an audit entry's actor: a credential or station name */
#define SRV_STORE_ACTOR_SERVER "idprovd" /* the actor of the server's own decisions */
#define SRV_STORE_CRED_NAME_MAX 32u  /* an admin credential's name */
#define SRV_STORE_CRED_HASH_LEN 32u  /* SHA-256 of an admin credential */
#define SRV_STORE_OOB_VERIFIER_LEN FMT_OOB_LEN /* the KDF of a label secret */

/* Device states, as the seed's flow names them. */
enum srv_device_state {
	SRV_DEV_PRELOADED = 1, /* named by an imported manifest, not yet seen */
	SRV_DEV_PENDING = 2,   /* asked to provision, unknown: waits for an admin */
	SRV_DEV_APPROVED = 3,  /* provisioned (or approved by an admin) */
	SRV_DEV_REJECTED = 4,  /* refused by an admin */
	SRV_DEV_REVOKED = 5,   /* was approved, then revoked */
};

/* The three kinds of value a device must not share with another batch's. */
enum srv_ident_kind {
	SRV_IDENT_ID = 1,
	SRV_IDENT_SERIAL = 2,
	SRV_IDENT_MAC = 3,
	SRV_IDENT_KEY = 4, /* SPKI DER of the public key */
};

enum srv_batch_state {
	SRV_BATCH_IMPORTED = 1, /* chained on the previous batch of its station */
	SRV_BATCH_GAP = 2,      /* imported, but a sequence number before it is missing */
};

struct srv_station {
	char id[SRV_STORE_ID_MAX + 1];
	uint8_t pubkey[FMT_KEY_SPKI_MAX]; /* SPKI DER */
	size_t pubkey_len;
	bool enabled;
	int64_t created_at;
};

struct srv_batch {
	char id[SRV_STORE_ID_MAX + 1];
	char station_id[SRV_STORE_ID_MAX + 1];
	int64_t sequence; /* 1, 2, ... per station */
	uint8_t hash[SRV_STORE_HASH_LEN];
	uint8_t prev_hash[SRV_STORE_HASH_LEN];
	bool has_prev; /* false for a station's first batch */
	char product[SRV_STORE_PRODUCT_MAX + 1];
	int64_t device_count;
	int64_t imported_at;
	enum srv_batch_state state;
};

struct srv_device {
	char id[SRV_STORE_ID_MAX + 1];
	char mac[SRV_STORE_MAC_MAX + 1];       /* "" when unknown */
	char serial[SRV_STORE_SERIAL_MAX + 1]; /* "" when unknown */
	uint8_t pubkey[FMT_KEY_SPKI_MAX];      /* SPKI DER */
	size_t pubkey_len;                     /* 0 when no key is known */
	enum srv_device_state state;
	char batch_id[SRV_STORE_ID_MAX + 1]; /* "" when no manifest named it */
	int64_t created_at;
	int64_t updated_at;
	int64_t provisioned_at; /* 0 until approved */
	int64_t attempts;       /* provisioning requests seen */
};

struct srv_token {
	char jti[SRV_STORE_JTI_MAX + 1];
	char device_id[SRV_STORE_ID_MAX + 1];
	enum fmt_token_kind kind; /* formats/token.h */
	int64_t issued_at;
	int64_t expires_at;
	bool used; /* a provisioning token already exchanged, or a renewed device token */
	char parent[SRV_STORE_JTI_MAX + 1]; /* the token redeemed for this one; "" for none */
	int64_t revoked_at;                 /* 0 while not revoked */
};

/* One decision or administrative act, for the audit log. */
struct srv_audit_event {
	int64_t at;
	const char *event;   /* "provision.approved", "batch.imported", ... */
	const char *subject; /* device, batch or station ID; may be NULL */
	const char *detail;  /* free text (already escaped by the caller); may be NULL */
	const char *actor;   /* who: NULL for the connection's (srv_store_set_actor), else
	                        SRV_STORE_ACTOR_SERVER */
};

struct srv_store; /* opaque: one connection */

/* Open (creating with mode 0600 when absent) the store at path and bring its
 * schema up to date. A schema newer than this build is refused with
 * IDP_E_UNSUPPORTED; a database, -wal or -shm file that is a symbolic link,
 * not a regular file, not ours or open to group or others with IDP_E_DENIED.
 * The file is never opened outside SQLite (docs/store.md), so a second call
 * does not drop the locks of connections already open. Creating a database
 * changes the process umask for the call: call it before threads start.
 * Caller frees *out with srv_store_close(); NULL on failure. */
IDP_MUST_CHECK enum idp_err srv_store_open(const char *path, struct srv_store **out,
                                           struct idp_error *err);

/* Close the connection (a transaction still open is rolled back). NULL is a no-op. */
void srv_store_close(struct srv_store *st);

/* The schema version in use, and the newest this build knows. */
IDP_MUST_CHECK enum idp_err srv_store_schema_version(struct srv_store *st, int64_t *version,
                                                     struct idp_error *err);
int64_t srv_store_schema_latest(void);

/* Start a write transaction (waits up to SRV_STORE_BUSY_MS for other writers;
 * IDP_E_AGAIN when they hold on longer). Not nestable: IDP_E_ARG when one is open. */
IDP_MUST_CHECK enum idp_err srv_store_begin(struct srv_store *st, struct idp_error *err);
/* Make the transaction's changes durable. On failure it has been rolled back. */
IDP_MUST_CHECK enum idp_err srv_store_commit(struct srv_store *st, struct idp_error *err);
/* Undo the open transaction; no-op when none is open. */
void srv_store_rollback(struct srv_store *st);

/* Group commit (docs/store.md "Durability"). The connections that join a
 * group commit with synchronous=NORMAL: COMMIT writes the WAL without
 * waiting for the disk, and a commit is durable only once a later
 * srv_store_sync_flush() of the group returns. A caller must not answer
 * anyone from a joined connection before the flush that covers every
 * commit counted when it answers (server/httpd.c holds the replies).
 * Counting uses SQLite's WAL hook, so commits outside srv_store_begin count
 * too; the hook also runs the automatic checkpoint at SQLite's default of
 * 1000 frames. Thread-safety: _committed and _durable from any thread;
 * _join before the joined connection's first use; _flush from one thread. */
struct srv_store_sync;

/* A group with its own connection to path (its WAL descriptor is the one
 * flushed). Caller frees *out with srv_store_sync_free(). */
IDP_MUST_CHECK enum idp_err srv_store_sync_new(const char *path, struct srv_store_sync **out,
                                               struct idp_error *err);
/* Release g (after every joined connection is closed). NULL is a no-op. */
void srv_store_sync_free(struct srv_store_sync *g);
/* Make st commit into g (synchronous=NORMAL). g must outlive st. */
IDP_MUST_CHECK enum idp_err srv_store_sync_join(struct srv_store *st, struct srv_store_sync *g,
                                                struct idp_error *err);
/* Commits the joined connections made so far (a count since the start). */
uint64_t srv_store_sync_committed(const struct srv_store_sync *g);
/* The count of commits known durable (<= _committed). */
uint64_t srv_store_sync_durable(const struct srv_store_sync *g);
/* The fsyncs _flush made (commits per fsync: how well commits group). */
uint64_t srv_store_sync_flushes(const struct srv_store_sync *g);
/* fsync the WAL: every commit counted before the call is then on disk and
 * *durable (also _durable) is their count. IDP_E_IO when the sync fails
 * (then nothing more is known durable). */
IDP_MUST_CHECK enum idp_err srv_store_sync_flush(struct srv_store_sync *g, uint64_t *durable,
                                                 struct idp_error *err);

/* Stations. _put inserts or replaces; _get gives IDP_E_NOTFOUND naming the ID. */
IDP_MUST_CHECK enum idp_err srv_store_station_put(struct srv_store *st, const struct srv_station *s,
                                                  struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_station_get(struct srv_store *st, const char *id,
                                                  struct srv_station *out, struct idp_error *err);

/* Factory CAs (PEM certificates the station certificates chain to). Adding
 * the same name twice gives IDP_E_DUPLICATE. _foreach calls fn for each, in
 * insertion order; a non-zero return from fn stops the walk (still IDP_OK).
 * _page: the CAs named after after (NULL: from the first) in name order, at
 * most limit (negative: all, as _foreach): one page of the listing. */
IDP_MUST_CHECK enum idp_err srv_store_factory_ca_add(struct srv_store *st, const char *name,
                                                     const char *pem, size_t pem_len, int64_t now,
                                                     struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_factory_ca_foreach(struct srv_store *st,
                                                         int (*fn)(void *ctx, const char *name,
                                                                   const char *pem, size_t len),
                                                         void *ctx, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_factory_ca_page(struct srv_store *st, const char *after,
                                                      int64_t limit,
                                                      int (*fn)(void *ctx, const char *name,
                                                                const char *pem, size_t len),
                                                      void *ctx, struct idp_error *err);

/* Batches. _insert: IDP_E_DUPLICATE when the ID, or the station and sequence,
 * exist. _get_seq: the batch of a station with that sequence; _get_last: the
 * station's highest sequence. Both IDP_E_NOTFOUND when there is none. */
IDP_MUST_CHECK enum idp_err srv_store_batch_insert(struct srv_store *st, const struct srv_batch *b,
                                                   struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_batch_get(struct srv_store *st, const char *id,
                                                struct srv_batch *out, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_batch_get_seq(struct srv_store *st, const char *station_id,
                                                    int64_t sequence, struct srv_batch *out,
                                                    struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_batch_get_last(struct srv_store *st, const char *station_id,
                                                     struct srv_batch *out, struct idp_error *err);

/* Devices. _insert: IDP_E_DUPLICATE when the ID exists. _update writes every
 * field but the ID and created_at; IDP_E_NOTFOUND when absent. _get:
 * IDP_E_NOTFOUND when absent. */
IDP_MUST_CHECK enum idp_err
srv_store_device_insert(struct srv_store *st, const struct srv_device *d, struct idp_error *err);
IDP_MUST_CHECK enum idp_err
srv_store_device_update(struct srv_store *st, const struct srv_device *d, struct idp_error *err);
/* As _update, for a device whose MAC, serial, key and batch are as stored:
 * writes only its state, updated_at, provisioned_at and attempts (the other
 * fields of d are not written), so the indexes on those stay untouched
 * (the hot path of every decision; docs/performance.md). */
IDP_MUST_CHECK enum idp_err srv_store_device_update_state(struct srv_store *st,
                                                          const struct srv_device *d,
                                                          struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_device_get(struct srv_store *st, const char *id,
                                                 struct srv_device *out, struct idp_error *err);

/* A device other than except_id (may be NULL) holding value[0..len) as its
 * kind (serial, MAC or key; SRV_IDENT_ID looks the ID up): IDP_OK with its ID
 * in id_out, or IDP_E_NOTFOUND. */
IDP_MUST_CHECK enum idp_err srv_store_device_find(struct srv_store *st, enum srv_ident_kind kind,
                                                  const uint8_t *value, size_t len,
                                                  const char *except_id,
                                                  char id_out[static SRV_STORE_ID_MAX + 1],
                                                  struct idp_error *err);

/* As srv_store_device_find for a serial, MAC or key, but only devices that
 * are enrolled identities: preloaded, approved or revoked. Pending and
 * rejected devices are claims anyone can make, never a reason to refuse a
 * signed manifest (import). IDP_OK with the ID, or IDP_E_NOTFOUND. */
IDP_MUST_CHECK enum idp_err
srv_store_device_find_enrolled(struct srv_store *st, enum srv_ident_kind kind, const uint8_t *value,
                               size_t len, const char *except_id,
                               char id_out[static SRV_STORE_ID_MAX + 1], struct idp_error *err);

/* Call fn for each pending or rejected device other than except_id that
 * holds value as its kind (serial, MAC or key), in ID order, at most
 * min(limit, SRV_STORE_CLAIMS_MAX); fn may write to the store. A non-zero
 * return from fn stops the walk (still IDP_OK). */
IDP_MUST_CHECK enum idp_err srv_store_device_claims(struct srv_store *st, enum srv_ident_kind kind,
                                                    const uint8_t *value, size_t len,
                                                    const char *except_id, int64_t limit,
                                                    int (*fn)(void *ctx, const char *id),
                                                    void *ctx, struct idp_error *err);

/* *held = false when no device at all (any state) has serial as its
 * serial, mac as its MAC or key[0..key_len) as its public key (key may be
 * NULL); true otherwise. One statement: the import's fast path, which runs
 * the exact checks above only for a record whose values are held (a taken
 * ID it learns from srv_store_device_insert's IDP_E_DUPLICATE). */
IDP_MUST_CHECK enum idp_err srv_store_device_held(struct srv_store *st, const char *serial,
                                                  const char *mac, const uint8_t *key,
                                                  size_t key_len, bool *held,
                                                  struct idp_error *err);

/* Bounds on pending devices; 0 disables each. */
struct srv_pending_limits {
	int64_t max_total;      /* pending devices at once */
	int64_t max_per_source; /* pending devices created from one source */
	int64_t lifetime;       /* seconds: a pending device not updated since is deleted */
};

/* Before a new pending device from source (a client address, "" or NULL:
 * no per-source count) is inserted, inside the caller's transaction: delete
 * the pending devices not updated for lim->lifetime (*expired: how many),
 * then IDP_E_LIMIT when source already created lim->max_per_source of the
 * pending devices, IDP_E_AGAIN when lim->max_total are pending; both
 * messages name the count and the setting. */
IDP_MUST_CHECK enum idp_err srv_store_pending_admit(struct srv_store *st, const char *source,
                                                    int64_t now,
                                                    const struct srv_pending_limits *lim,
                                                    int64_t *expired, struct idp_error *err);

/* Record the source of pending device id (no-op for a device not pending). */
IDP_MUST_CHECK enum idp_err srv_store_pending_source(struct srv_store *st, const char *id,
                                                     const char *source, struct idp_error *err);

/* Count devices in a state (0 = all). */
IDP_MUST_CHECK enum idp_err srv_store_device_count(struct srv_store *st,
                                                   enum srv_device_state state, int64_t *n,
                                                   struct idp_error *err);

/* An administrator released value[0..len) of this kind for reuse by a later
 * batch (_add; adding twice is IDP_OK). _is_released says whether it was. */
IDP_MUST_CHECK enum idp_err srv_store_release_add(struct srv_store *st, enum srv_ident_kind kind,
                                                  const uint8_t *value, size_t len, int64_t now,
                                                  struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_release_check(struct srv_store *st, enum srv_ident_kind kind,
                                                    const uint8_t *value, size_t len,
                                                    bool *released, struct idp_error *err);

/* Tokens issued. _insert: IDP_E_DUPLICATE on a known jti. _use marks the
 * token used: IDP_E_NOTFOUND when unknown, IDP_E_DENIED when revoked,
 * IDP_E_EXPIRED when expired at now, IDP_E_CONFLICT when already used (a
 * replay, or a retry after a lost answer); only the first _use wins, also
 * across connections. */
IDP_MUST_CHECK enum idp_err srv_store_token_insert(struct srv_store *st, const struct srv_token *t,
                                                   struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_token_get(struct srv_store *st, const char *jti,
                                                struct srv_token *out, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_token_use(struct srv_store *st, const char *jti, int64_t now,
                                                struct idp_error *err);
/* The newest token not revoked whose parent is jti (what redeeming jti
 * issued): IDP_OK with *out, or IDP_E_NOTFOUND. */
IDP_MUST_CHECK enum idp_err srv_store_token_child(struct srv_store *st, const char *jti,
                                                  struct srv_token *out, struct idp_error *err);
/* The newest token issued to device_id (revoked or not): IDP_OK with *out,
 * or IDP_E_NOTFOUND. */
IDP_MUST_CHECK enum idp_err srv_store_token_latest(struct srv_store *st, const char *device_id,
                                                   struct srv_token *out,
                                                   struct idp_error *err);
/* Revoke one token (jti) or every token of a device (_revoke_device), at
 * now; tokens already revoked keep their time. Unknown jti: IDP_OK. */
IDP_MUST_CHECK enum idp_err srv_store_token_revoke(struct srv_store *st, const char *jti,
                                                   int64_t now, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_token_revoke_device(struct srv_store *st,
                                                          const char *device_id, int64_t now,
                                                          struct idp_error *err);
/* Count a device's live tokens: not used, not revoked, not expired at now. */
IDP_MUST_CHECK enum idp_err srv_store_token_live(struct srv_store *st, const char *device_id,
                                                 int64_t now, int64_t *n,
                                                 struct idp_error *err);

/* Proofs of possession seen (a hash of the signed bytes): _use records one
 * until expires_at, deleting those expired at now first; IDP_E_CONFLICT when
 * it was recorded already (a replayed proof). */
IDP_MUST_CHECK enum idp_err srv_store_proof_use(struct srv_store *st, const uint8_t *hash,
                                                size_t len, int64_t expires_at, int64_t now,
                                                struct idp_error *err);

/* Other keys presented for a pending device ID (a contested ID). _put adds
 * or refreshes one (mac may be NULL); _foreach walks a device's, oldest
 * first (a non-zero return from fn stops it); _clear forgets them. */
struct srv_contender {
	uint8_t pubkey[FMT_KEY_SPKI_MAX]; /* SPKI DER */
	size_t pubkey_len;
	char mac[SRV_STORE_MAC_MAX + 1]; /* "" when none */
	int64_t first_seen;
	int64_t last_seen;
	int64_t attempts;
};
IDP_MUST_CHECK enum idp_err srv_store_contender_put(struct srv_store *st, const char *device_id,
                                                    const uint8_t *spki, size_t len,
                                                    const char *mac, int64_t now,
                                                    struct idp_error *err);
IDP_MUST_CHECK enum idp_err
srv_store_contender_foreach(struct srv_store *st, const char *device_id,
                            int (*fn)(void *ctx, const struct srv_contender *c), void *ctx,
                            struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_contender_clear(struct srv_store *st, const char *device_id,
                                                      struct idp_error *err);

/* Server nonces: single use, with an expiry. _consume deletes the nonce and
 * gives IDP_OK once; IDP_E_NOTFOUND for an unknown or already used one,
 * IDP_E_EXPIRED when it expired (it is deleted too). _purge deletes expired ones. */
IDP_MUST_CHECK enum idp_err srv_store_nonce_insert(struct srv_store *st, const uint8_t *nonce,
                                                   size_t len, int64_t expires_at,
                                                   struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_nonce_consume(struct srv_store *st, const uint8_t *nonce,
                                                    size_t len, int64_t now, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_nonce_purge(struct srv_store *st, int64_t now,
                                                  struct idp_error *err);

/* Raise a flag for review (kind e.g. "key-reuse", "mac-mismatch", "batch-gap";
 * subject a device, batch or station ID, or NULL). Repeats aggregate: while
 * a flag of that kind and subject is open, it is counted again (count, last
 * seen, and detail when one is given) instead of adding a row. */
IDP_MUST_CHECK enum idp_err srv_store_flag_add(struct srv_store *st, const char *kind,
                                               const char *subject, const char *detail, int64_t now,
                                               struct idp_error *err);
/* The open flag of kind for subject (may be NULL): IDP_OK with *out, or
 * IDP_E_NOTFOUND. */
struct srv_flag;
IDP_MUST_CHECK enum idp_err srv_store_flag_get(struct srv_store *st, const char *kind,
                                               const char *subject, struct srv_flag *out,
                                               struct idp_error *err);
/* Resolve the open flag seq (an administrator reviewed it): it leaves the
 * open list and the counts; the same kind and subject raised later opens a
 * new flag. *out is the flag as it was. IDP_E_NOTFOUND when seq is no open
 * flag (unknown, or resolved already). */
IDP_MUST_CHECK enum idp_err srv_store_flag_resolve(struct srv_store *st, int64_t seq,
                                                   struct srv_flag *out, struct idp_error *err);
/* Count open flags of a kind (NULL = all kinds). */
IDP_MUST_CHECK enum idp_err srv_store_flag_count(struct srv_store *st, const char *kind, int64_t *n,
                                                 struct idp_error *err);

/* The audit hook: append one event. Called inside the transaction of the
 * decision it records, so that both are durable or neither is (alone, the
 * call is its own transaction). The entry gets the next seq and its chain
 * hash (formats/audit.md): SHA-256 of the previous entry's hash and its
 * canonical bytes. */
IDP_MUST_CHECK enum idp_err srv_store_audit_append(struct srv_store *st,
                                                   const struct srv_audit_event *ev,
                                                   struct idp_error *err);

/* One stored audit entry, for the listing. */
struct srv_audit_row {
	int64_t seq;
	int64_t at;
	char event[SRV_STORE_KIND_MAX + 1];
	char subject[SRV_STORE_ID_MAX + 1];    /* "" when none */
	char detail[SRV_STORE_DETAIL_MAX + 1]; /* "" when none */
	uint8_t hash[FMT_AUDIT_HASH_LEN];
	size_t hash_len; /* FMT_AUDIT_HASH_LEN; other values only in a tampered row */
	char actor[SRV_STORE_ACTOR_MAX + 1]; /* "" in entries older than schema 5 */
	int version; /* of its hash (formats/audit.md §2): 2 covers the actor, 1 not */
};

/* Entries with seq > after_seq in seq order (of subject only, when not
 * NULL: a device's history, by index), at most limit; a non-zero
 * return from fn stops the walk (still IDP_OK). IDP_E_FORMAT naming the
 * field for a row whose text exceeds the limits (written by something else). */
IDP_MUST_CHECK enum idp_err srv_store_audit_foreach(struct srv_store *st, int64_t after_seq,
                                                    int64_t limit, const char *subject,
                                                    int (*fn)(void *ctx,
                                                              const struct srv_audit_row *r),
                                                    void *ctx, struct idp_error *err);

/* The result of checking the chain. */
struct srv_audit_check {
	int64_t entries;     /* entries that verified, from seq 1 */
	int64_t head_seq;    /* the last entry that verified (0: none) */
	uint8_t head_hash[FMT_AUDIT_HASH_LEN];
	int64_t broken_seq;  /* the first entry that does not verify; 0 when intact */
	char reason[160];    /* why, naming the entry; "" when intact */
};

/* Recompute the whole chain in one read transaction (formats/audit.md §4):
 * IDP_OK with out filled whether or not it is intact; an error only when
 * the log cannot be read. */
IDP_MUST_CHECK enum idp_err srv_store_audit_verify(struct srv_store *st,
                                                   struct srv_audit_check *out,
                                                   struct idp_error *err);

/* Counts by key, for the metrics: audit entries by event, provisioning
 * refusals by reason, open flags by kind, devices by state. fn gets each
 * key (in order) and its count; a non-zero return stops the walk. */
enum srv_store_group {
	SRV_GROUP_AUDIT_EVENT = 1,
	SRV_GROUP_REFUSAL = 2,
	SRV_GROUP_FLAG_KIND = 3,
	SRV_GROUP_DEVICE_STATE = 4,
};
IDP_MUST_CHECK enum idp_err srv_store_group_count(struct srv_store *st, enum srv_store_group g,
                                                  int (*fn)(void *ctx, const char *key,
                                                            int64_t n),
                                                  void *ctx, struct idp_error *err);

/* The hostage report: devices a manifest named that never provisioned
 * (preloaded, or held pending, provisioned_at 0), with their batch. */
struct srv_unprov {
	char id[SRV_STORE_ID_MAX + 1];
	enum srv_device_state state;
	char batch_id[SRV_STORE_ID_MAX + 1];
	char station_id[SRV_STORE_ID_MAX + 1];
	int64_t imported_at;
	int64_t attempts;
};
struct srv_unprov_query {
	int64_t imported_before; /* only batches imported at or before this time */
	const char *batch_id;    /* NULL: every batch */
	const char *after_id;    /* NULL or "": from the first ID */
	int64_t limit;
};
/* In device ID order; a non-zero return from fn stops the walk. */
IDP_MUST_CHECK enum idp_err
srv_store_unprovisioned_foreach(struct srv_store *st, const struct srv_unprov_query *q,
                                int (*fn)(void *ctx, const struct srv_unprov *u), void *ctx,
                                struct idp_error *err);

/* SHA-256 over every row of every table (schema order, rows by their first
 * column): equal digests mean equal contents. For tests that show a refused
 * request changed nothing, and for checking a backup. */
IDP_MUST_CHECK enum idp_err srv_store_digest(struct srv_store *st, uint8_t out[static SRV_STORE_HASH_LEN],
                                             struct idp_error *err);

/* Write a consistent snapshot of the whole database to path (VACUUM INTO:
 * one read transaction, so writers on other connections go on and none is
 * seen half-done). path must not exist or be an empty file; it is written
 * with SQLite's own I/O. Not inside a transaction (IDP_E_ARG). The snapshot
 * is a complete database: the store opens it as it is. */
IDP_MUST_CHECK enum idp_err srv_store_snapshot(struct srv_store *st, const char *path,
                                               struct idp_error *err);

/* Listings for the admin API, in key order. A non-zero return from fn stops
 * the walk (still IDP_OK). Devices: state 0 lists all; IDs after after_id
 * ("" or NULL: from the first), at most limit. Flags: the open ones, newest
 * first (by seq), as struct srv_flag_query selects. */
struct srv_flag {
	int64_t seq;
	char kind[SRV_STORE_KIND_MAX + 1];
	char subject[SRV_STORE_ID_MAX + 1];
	char detail[SRV_STORE_DETAIL_MAX + 1]; /* the latest detail given */
	int64_t created_at;                    /* first seen */
	int64_t count;                         /* times raised while open */
	int64_t last_seen;
};
struct srv_flag_query {
	int64_t before_seq;  /* only seq < before_seq; 0: from the newest */
	int64_t limit;       /* at most this many */
	const char *kind;    /* NULL: every kind */
	const char *subject; /* NULL: every subject */
	bool resolved;       /* list the resolved flags instead of the open ones */
};
IDP_MUST_CHECK enum idp_err srv_store_station_foreach(struct srv_store *st,
                                                      int (*fn)(void *ctx,
                                                                const struct srv_station *s),
                                                      void *ctx, struct idp_error *err);
/* Stations with IDs after after_id ("" or NULL: from the first) in ID order,
 * at most limit (negative: all): one page of the listing. */
IDP_MUST_CHECK enum idp_err srv_store_station_page(struct srv_store *st, const char *after_id,
                                                   int64_t limit,
                                                   int (*fn)(void *ctx,
                                                             const struct srv_station *s),
                                                   void *ctx, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_device_foreach(struct srv_store *st,
                                                     enum srv_device_state state,
                                                     const char *after_id, int64_t limit,
                                                     int (*fn)(void *ctx,
                                                               const struct srv_device *d),
                                                     void *ctx, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_flag_foreach(struct srv_store *st,
                                                   const struct srv_flag_query *q,
                                                   int (*fn)(void *ctx, const struct srv_flag *f),
                                                   void *ctx, struct idp_error *err);

/* The actor of the audit entries this connection appends while it is set
 * and an entry names none (copied; NULL or "" clears it; a name longer than
 * SRV_STORE_ACTOR_MAX clears it too). Admin handlers set it to the caller's
 * credential name around their change and clear it after, so no later
 * request on the connection inherits it. The actor is covered by the
 * entry's chain hash (version 2, formats/audit.md §2). */
void srv_store_set_actor(struct srv_store *st, const char *actor);

/* How long st's next writes wait for another writer's lock, in ms (0: not
 * at all; SRV_STORE_BUSY_MS when opened), and forget an earlier busy
 * failure. idprovd's loops wait briefly and retry a request on a timer
 * instead (server/conn.c), so that a lock another process holds never
 * stalls an event loop. */
void srv_store_set_busy_ms(struct srv_store *st, int ms);
/* Whether a call failed with IDP_E_AGAIN because another connection held
 * the lock, since the last srv_store_set_busy_ms (nothing was written by
 * that call: a caller may run its whole request again). */
bool srv_store_was_busy(const struct srv_store *st);

/* Whether errno e of a failed write means storage ran out (no space, a
 * quota, the file size limit): what the store answers IDP_E_FULL, and so
 * 503 storage_full (server/fault.h). The one such list; the upload spool
 * (server/spool.h) uses it too. */
bool srv_store_errno_full(int e);

/* Admin credential roles (docs/administrator.md, "Roles"). */
enum srv_role {
	SRV_ROLE_NONE = 0,
	SRV_ROLE_VIEWER = 1, /* read-only: GET of lists, reports, audit, metrics */
	SRV_ROLE_ADMIN = 2,  /* everything */
};
/* "viewer", "admin" ("none" for anything else); never NULL. */
const char *srv_role_name(enum srv_role r);
/* *out from "viewer" or "admin"; false for anything else. */
bool srv_role_parse(const char *s, enum srv_role *out);

/* A named admin credential: only the SHA-256 of its secret is stored (the
 * secret is 256 random bits, so no KDF is needed: see server/state.h). */
struct srv_credential {
	char name[SRV_STORE_CRED_NAME_MAX + 1];
	enum srv_role role;
	uint8_t hash[SRV_STORE_CRED_HASH_LEN];
	int64_t created_at;
	int64_t revoked_at; /* 0 while valid */
};
/* Add c; IDP_E_DUPLICATE when its name exists (revoked or not). */
IDP_MUST_CHECK enum idp_err srv_store_credential_add(struct srv_store *st,
                                                     const struct srv_credential *c,
                                                     struct idp_error *err);
/* The unrevoked credential whose hash is hash (compared with CRYPTO_memcmp
 * after an index lookup on its first bytes); IDP_E_NOTFOUND without a message
 * when none. */
IDP_MUST_CHECK enum idp_err srv_store_credential_find(struct srv_store *st,
                                                      const uint8_t hash[static SRV_STORE_CRED_HASH_LEN],
                                                      struct srv_credential *out,
                                                      struct idp_error *err);
/* The unrevoked credential named name; IDP_E_NOTFOUND without a message
 * when none (an admin-ca client certificate's CN, server/admin.h). */
IDP_MUST_CHECK enum idp_err srv_store_credential_by_name(struct srv_store *st, const char *name,
                                                         struct srv_credential *out,
                                                         struct idp_error *err);
/* Revoke name at now; IDP_E_NOTFOUND naming it when none is valid. */
IDP_MUST_CHECK enum idp_err srv_store_credential_revoke(struct srv_store *st, const char *name,
                                                        int64_t now, struct idp_error *err);
/* Every credential, revoked ones too, by name (hash zeroed); _page: those
 * named after after (NULL: from the first), at most limit (negative: all). */
IDP_MUST_CHECK enum idp_err srv_store_credential_foreach(struct srv_store *st,
                                                         int (*fn)(void *ctx,
                                                                   const struct srv_credential *c),
                                                         void *ctx, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_credential_page(struct srv_store *st, const char *after,
                                                      int64_t limit,
                                                      int (*fn)(void *ctx,
                                                                const struct srv_credential *c),
                                                      void *ctx, struct idp_error *err);

/* An out-of-band secret's entry (formats/api.md §15): the verifier only. */
struct srv_oob {
	char device_id[SRV_STORE_ID_MAX + 1];
	uint8_t verifier[SRV_STORE_OOB_VERIFIER_LEN]; /* a secret: cleanse after use */
	int64_t created_at;
	int64_t expires_at;
	int64_t used_at;  /* 0 until a device proved it (single use) */
	int64_t failures; /* wrong proofs seen */
};
/* Insert or replace the entry of o->device_id (used_at and failures start at 0). */
IDP_MUST_CHECK enum idp_err srv_store_oob_put(struct srv_store *st, const struct srv_oob *o,
                                              struct idp_error *err);
/* The entry of device_id; IDP_E_NOTFOUND naming it when none. */
IDP_MUST_CHECK enum idp_err srv_store_oob_get(struct srv_store *st, const char *device_id,
                                              struct srv_oob *out, struct idp_error *err);
/* Mark it used at now; IDP_E_CONFLICT when it was used already. */
IDP_MUST_CHECK enum idp_err srv_store_oob_use(struct srv_store *st, const char *device_id,
                                              int64_t now, struct idp_error *err);
/* Count one wrong proof. */
IDP_MUST_CHECK enum idp_err srv_store_oob_fail(struct srv_store *st, const char *device_id,
                                               struct idp_error *err);
/* Entries with device_id > after (NULL: from the first), at most limit,
 * verifiers zeroed. */
IDP_MUST_CHECK enum idp_err srv_store_oob_foreach(struct srv_store *st, const char *after,
                                                  int64_t limit,
                                                  int (*fn)(void *ctx, const struct srv_oob *o),
                                                  void *ctx, struct idp_error *err);

/* Names of enum values as stored ("preloaded", "pending", ...); never NULL. */
/* ---------------------------------------------------------------- engine-neutral (store.c) */

/* Names of enum values as stored ("preloaded", "pending", ...); "unknown"
 * for a value out of range, never NULL. */
const char *srv_device_state_name(enum srv_device_state s);
const char *srv_batch_state_name(enum srv_batch_state s);
const char *srv_ident_kind_name(enum srv_ident_kind k);

/* The value named name[0..len) (not NUL-terminated; NULL allowed), or 0
 * when it names none. */
enum srv_device_state srv_device_state_of(const char *name, size_t len);
enum srv_batch_state srv_batch_state_of(const char *name, size_t len);

/* The checks every engine makes on a caller's values before they reach
 * its database: IDP_E_ARG for a missing required value or a bad kind,
 * IDP_E_LIMIT for a value over its SRV_STORE_*_MAX, each naming the field
 * ("store: <field> ..."). _text checks one string v (NULL or "" is
 * missing) against max bytes; the others a whole record or argument set of
 * the srv_store_* call of the same name. */
IDP_MUST_CHECK enum idp_err srv_store_check_text(const char *v, size_t max, bool required,
                                                 const char *name, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_check_station(const struct srv_station *s,
                                                    struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_check_factory_ca(const char *name, size_t pem_len,
                                                       struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_check_batch(const struct srv_batch *b, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_check_device(const struct srv_device *d,
                                                   struct idp_error *err);
/* kind is any of enum srv_ident_kind, len 1..FMT_KEY_SPKI_MAX; what names
 * the call in the message. */
IDP_MUST_CHECK enum idp_err srv_store_check_ident(enum srv_ident_kind kind, size_t len,
                                                  const char *what, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_check_token(const struct srv_token *t, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_check_contender(const char *device_id, size_t key_len,
                                                      const char *mac, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_check_flag(const char *kind, const char *subject,
                                                 const char *detail, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_check_audit(const struct srv_audit_event *ev,
                                                  struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_check_nonce(size_t len, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_check_proof(size_t len, struct idp_error *err);

/* ---------------------------------------------------------------- site and checkpoints
 * Provisioning suspension (a rogue DNS-SD publisher, or an administrator's
 * hold; server/site.h), its allow-list, and the signed audit checkpoints
 * (formats/audit.md §6). The suspension is one row: it outlives restarts. */
#define SRV_STORE_ALLOW_MAX 300u /* "HOST:PORT" or a 64-hex fingerprint */

struct srv_suspension {
	bool suspended;
	char reason[SRV_STORE_DETAIL_MAX + 1]; /* "" when none */
	int64_t since;                         /* when it was last set or cleared; 0: never */
};
IDP_MUST_CHECK enum idp_err srv_store_suspension_get(struct srv_store *st,
                                                     struct srv_suspension *out,
                                                     struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_suspension_set(struct srv_store *st, bool suspended,
                                                     const char *reason, int64_t now,
                                                     struct idp_error *err);
/* _add: IDP_E_DUPLICATE when present; _remove: IDP_E_NOTFOUND when absent;
 * both name the entry. _foreach in entry order; non-zero from fn stops.
 * _page: the entries after after (NULL: from the first), at most limit
 * (negative: all). */
IDP_MUST_CHECK enum idp_err srv_store_allow_add(struct srv_store *st, const char *entry,
                                                int64_t now, struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_allow_remove(struct srv_store *st, const char *entry,
                                                   struct idp_error *err);
IDP_MUST_CHECK enum idp_err
srv_store_allow_foreach(struct srv_store *st,
                        int (*fn)(void *ctx, const char *entry, int64_t added_at), void *ctx,
                        struct idp_error *err);
IDP_MUST_CHECK enum idp_err
srv_store_allow_page(struct srv_store *st, const char *after, int64_t limit,
                     int (*fn)(void *ctx, const char *entry, int64_t added_at), void *ctx,
                     struct idp_error *err);

/* The audit log's head: its seq (0: empty) and stored hash (zeros if none). */
IDP_MUST_CHECK enum idp_err srv_store_audit_head(struct srv_store *st, int64_t *seq,
                                                 uint8_t hash[static SRV_STORE_HASH_LEN],
                                                 struct idp_error *err);

/* One signed checkpoint of the audit head (formats/audit.md §6). */
struct srv_checkpoint {
	int64_t n;   /* 1, 2, ... */
	int64_t seq; /* the head it covers (0: an empty log) */
	int64_t at;
	uint8_t hash[SRV_STORE_HASH_LEN];
	size_t hash_len; /* 32; other values only in a tampered row */
	char key_id[65]; /* hex SHA-256 of the audit key's SPKI */
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t sig_len;
};
/* _add: IDP_E_DUPLICATE when n exists. _foreach: n > after_n in n order, at
 * most limit. _last: the highest n, or IDP_E_NOTFOUND. */
IDP_MUST_CHECK enum idp_err srv_store_checkpoint_add(struct srv_store *st,
                                                     const struct srv_checkpoint *c,
                                                     struct idp_error *err);
IDP_MUST_CHECK enum idp_err
srv_store_checkpoint_foreach(struct srv_store *st, int64_t after_n, int64_t limit,
                             int (*fn)(void *ctx, const struct srv_checkpoint *c), void *ctx,
                             struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_store_checkpoint_last(struct srv_store *st,
                                                      struct srv_checkpoint *out,
                                                      struct idp_error *err);

#endif /* IDP_SERVER_STORE_H */
