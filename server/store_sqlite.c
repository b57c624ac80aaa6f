/*
 * store_sqlite.c - the SQLite engine behind store.h. Schema: docs/store.md.
 *
 * WAL journal with synchronous=FULL: a commit returns only after the WAL is
 * fsynced, so every answered decision survives power loss (WAL+NORMAL may
 * lose the last commits). Connections in a group commit (srv_store_sync_*)
 * use NORMAL, and the group's one fsync of the WAL covers all their commits
 * before anyone is answered. Writers take the lock up front (BEGIN IMMEDIATE)
 * and wait up to SRV_STORE_BUSY_MS for one another; readers never block.
 * Statements are prepared once per connection and reused.
 */
#include "server/store.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "formats/audit.h"

/* The ordered list of migrations: entry i brings the schema to version i + 1.
 * Never edit a shipped entry; append a new one. */
static const char *const migrations[] = {
        /* 1: the first schema. */
        "CREATE TABLE stations ("
        "  id TEXT PRIMARY KEY,"
        "  public_key BLOB NOT NULL,"
        "  enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),"
        "  created_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE factory_cas ("
        "  seq INTEGER PRIMARY KEY,"
        "  name TEXT NOT NULL UNIQUE,"
        "  cert_pem TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE batches ("
        "  id TEXT PRIMARY KEY,"
        "  station_id TEXT NOT NULL,"
        "  sequence INTEGER NOT NULL CHECK (sequence > 0),"
        "  hash BLOB NOT NULL,"
        "  prev_hash BLOB,"
        "  product TEXT,"
        "  device_count INTEGER NOT NULL,"
        "  imported_at INTEGER NOT NULL,"
        "  state TEXT NOT NULL CHECK (state IN ('imported', 'gap')),"
        "  UNIQUE (station_id, sequence)"
        ") STRICT;"
        "CREATE TABLE devices ("
        "  id TEXT PRIMARY KEY,"
        "  mac TEXT,"
        "  serial TEXT,"
        "  public_key BLOB,"
        "  state TEXT NOT NULL CHECK (state IN"
        "    ('preloaded', 'pending', 'approved', 'rejected', 'revoked')),"
        "  batch_id TEXT REFERENCES batches(id),"
        "  created_at INTEGER NOT NULL,"
        "  updated_at INTEGER NOT NULL,"
        "  provisioned_at INTEGER NOT NULL DEFAULT 0,"
        "  attempts INTEGER NOT NULL DEFAULT 0"
        ") STRICT;"
        "CREATE INDEX devices_mac ON devices(mac) WHERE mac IS NOT NULL;"
        "CREATE INDEX devices_serial ON devices(serial) WHERE serial IS NOT NULL;"
        "CREATE INDEX devices_key ON devices(public_key) WHERE public_key IS NOT NULL;"
        "CREATE INDEX devices_batch ON devices(batch_id);"
        "CREATE TABLE releases ("
        "  kind TEXT NOT NULL,"
        "  value BLOB NOT NULL,"
        "  released_at INTEGER NOT NULL,"
        "  PRIMARY KEY (kind, value)"
        ") STRICT;"
        "CREATE TABLE tokens ("
        "  jti TEXT PRIMARY KEY,"
        "  device_id TEXT NOT NULL,"
        "  kind TEXT NOT NULL CHECK (kind IN ('provisioning', 'device')),"
        "  issued_at INTEGER NOT NULL,"
        "  expires_at INTEGER NOT NULL,"
        "  used INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1))"
        ") STRICT;"
        "CREATE INDEX tokens_device ON tokens(device_id);"
        "CREATE TABLE nonces ("
        "  nonce BLOB PRIMARY KEY,"
        "  expires_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE flags ("
        "  seq INTEGER PRIMARY KEY,"
        "  kind TEXT NOT NULL,"
        "  subject TEXT,"
        "  detail TEXT,"
        "  created_at INTEGER NOT NULL,"
        "  cleared INTEGER NOT NULL DEFAULT 0 CHECK (cleared IN (0, 1))"
        ") STRICT;"
        "CREATE TABLE audit ("
        "  seq INTEGER PRIMARY KEY,"
        "  at INTEGER NOT NULL,"
        "  event TEXT NOT NULL,"
        "  subject TEXT,"
        "  detail TEXT"
        ") STRICT;",
        /* 2: the client address that created a pending device, for its cap. */
        "ALTER TABLE devices ADD COLUMN source TEXT;"
        "CREATE INDEX devices_pending ON devices(state, source, updated_at);",
        /* 3: token chains and revocation (one live token per device, safe
         * retries), aggregated flags, single-use proofs, contested IDs. */
        "ALTER TABLE tokens ADD COLUMN parent TEXT;"
        "ALTER TABLE tokens ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;"
        "CREATE INDEX tokens_parent ON tokens(parent) WHERE parent IS NOT NULL;"
        "ALTER TABLE flags ADD COLUMN count INTEGER NOT NULL DEFAULT 1;"
        "ALTER TABLE flags ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;"
        "UPDATE flags SET last_seen = created_at;"
        "CREATE INDEX flags_open ON flags(kind, subject) WHERE cleared = 0;"
        "CREATE TABLE proofs ("
        "  hash BLOB PRIMARY KEY,"
        "  expires_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE INDEX proofs_expiry ON proofs(expires_at);"
        "CREATE TABLE contenders ("
        "  device_id TEXT NOT NULL,"
        "  public_key BLOB NOT NULL,"
        "  mac TEXT,"
        "  first_seen INTEGER NOT NULL,"
        "  last_seen INTEGER NOT NULL,"
        "  attempts INTEGER NOT NULL DEFAULT 1,"
        "  PRIMARY KEY (device_id, public_key)"
        ") STRICT;"
        "CREATE TRIGGER contenders_gone AFTER DELETE ON devices BEGIN"
        "  DELETE FROM contenders WHERE device_id = old.id;"
        "END;",
        /* 4: the audit hash chain (formats/audit.md); chain_existing() then
         * numbers the rows already there 1..n and chains them. An index for
         * the metrics' counts by event and refusal reason. */
        "ALTER TABLE audit ADD COLUMN hash BLOB;"
        "CREATE INDEX audit_event ON audit(event, detail);",
        /* 5: named admin credentials with roles (hash only; the state
         * directory's admin.token stays the built-in "admin"), the actor of
         * each audit entry, out-of-band secrets (a KDF verifier only). */
        "CREATE TABLE admin_credentials ("
        "  name TEXT PRIMARY KEY,"
        "  role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),"
        "  lookup INTEGER NOT NULL,"
        "  hash BLOB NOT NULL,"
        "  created_at INTEGER NOT NULL,"
        "  revoked_at INTEGER NOT NULL DEFAULT 0"
        ") STRICT;"
        "CREATE INDEX admin_credentials_lookup ON admin_credentials(lookup);"
        "ALTER TABLE audit ADD COLUMN actor TEXT;"
        "CREATE TABLE oob_secrets ("
        "  device_id TEXT PRIMARY KEY,"
        "  verifier BLOB NOT NULL,"
        "  created_at INTEGER NOT NULL,"
        "  expires_at INTEGER NOT NULL,"
        "  used_at INTEGER NOT NULL DEFAULT 0,"
        "  failures INTEGER NOT NULL DEFAULT 0"
        ") STRICT;",
        /* 6: provisioning suspension (rogue DNS-SD publishers) and its
         * allow-list; signed audit checkpoints (formats/audit.md §6). */
        "CREATE TABLE site_state ("
        "  id INTEGER PRIMARY KEY CHECK (id = 1),"
        "  suspended INTEGER NOT NULL CHECK (suspended IN (0, 1)),"
        "  reason TEXT,"
        "  since INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE site_allow ("
        "  entry TEXT PRIMARY KEY,"
        "  added_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE audit_checkpoints ("
        "  n INTEGER PRIMARY KEY,"
        "  seq INTEGER NOT NULL,"
        "  at INTEGER NOT NULL,"
        "  hash BLOB NOT NULL,"
        "  key_id TEXT NOT NULL,"
        "  sig BLOB NOT NULL"
        ") STRICT;",
        /* 7: a subject's audit history (GET /v1/admin/audit?subject=) by index;
         * each entry's hash version (formats/audit.md §2): rows from now on
         * are version 2, whose hash covers the actor. */
        "CREATE INDEX audit_subject ON audit(subject, seq) WHERE subject IS NOT NULL;"
        "ALTER TABLE audit ADD COLUMN v INTEGER NOT NULL DEFAULT 1 CHECK (v IN (1, 2));",
};
#define MIGRATION_AUDIT_CHAIN 4 /* the version whose migration chains the audit rows */
#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

/* Every statement the engine runs, prepared lazily once per connection. */
enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_VERSION,
	S_STATION_PUT,
	S_STATION_GET,
	S_CA_ADD,
	S_CA_LIST,
	S_CA_PAGE,
	S_BATCH_INSERT,
	S_BATCH_GET,
	S_BATCH_GET_SEQ,
	S_BATCH_GET_LAST,
	S_DEVICE_INSERT,
	S_DEVICE_UPDATE,
	S_DEVICE_UPDATE_STATE,
	S_DEVICE_GET,
	S_DEVICE_FIND_ID,
	S_DEVICE_FIND_SERIAL,
	S_DEVICE_FIND_MAC,
	S_DEVICE_FIND_KEY,
	S_DEVICE_COUNT,
	S_DEVICE_COUNT_STATE,
	S_RELEASE_ADD,
	S_RELEASE_CHECK,
	S_TOKEN_INSERT,
	S_TOKEN_GET,
	S_TOKEN_USE,
	S_TOKEN_CHILD,
	S_TOKEN_LATEST,
	S_TOKEN_REVOKE,
	S_TOKEN_REVOKE_DEVICE,
	S_TOKEN_LIVE,
	S_PROOF_PURGE,
	S_PROOF_INSERT,
	S_CONTENDER_PUT,
	S_CONTENDER_LIST,
	S_CONTENDER_CLEAR,
	S_NONCE_INSERT,
	S_NONCE_DELETE,
	S_NONCE_PURGE,
	S_FLAG_ADD,
	S_FLAG_BUMP,
	S_FLAG_GET,
	S_FLAG_COUNT,
	S_FLAG_COUNT_KIND,
	S_AUDIT_APPEND,
	S_AUDIT_HEAD,
	S_AUDIT_LIST,
	S_AUDIT_NEXT,
	S_AUDIT_RESEQ,
	S_GROUP_EVENT,
	S_GROUP_REFUSAL,
	S_GROUP_FLAG,
	S_GROUP_STATE,
	S_UNPROVISIONED,
	S_DEVICE_LIST,
	S_DEVICE_LIST_STATE,
	S_FLAG_LIST,
	S_FLAG_RESOLVE,
	S_STATION_PAGE,
	S_AUDIT_LIST_SUBJECT,
	S_FIND_ENROLLED_SERIAL,
	S_FIND_ENROLLED_MAC,
	S_FIND_ENROLLED_KEY,
	S_CLAIMS_SERIAL,
	S_CLAIMS_MAC,
	S_CLAIMS_KEY,
	S_PENDING_PURGE,
	S_PENDING_COUNT_SOURCE,
	S_PENDING_SOURCE,
	S_CRED_ADD,
	S_CRED_FIND,
	S_CRED_REVOKE,
	S_CRED_BY_NAME,
	S_CRED_LIST,
	S_OOB_PUT,
	S_OOB_GET,
	S_OOB_USE,
	S_OOB_FAIL,
	S_OOB_LIST,
	S_SUSPENSION_GET,
	S_DEVICE_HELD,
	S_COUNT_
};

#define DEVICE_COLS                                                                                \
	"id, mac, serial, public_key, state, batch_id, created_at, updated_at, provisioned_at, "   \
	"attempts"
/* States that are claims, not enrolled identities (import reuse checks). */
#define UNENROLLED "'pending', 'rejected'"
#define TOKEN_COLS "jti, device_id, kind, issued_at, expires_at, used, parent, revoked_at"
#define FLAG_COLS  "seq, kind, subject, detail, created_at, count, last_seen"
#define AUDIT_COLS "seq, at, event, subject, detail, hash, actor, v"
#define CRED_COLS  "name, role, hash, created_at, revoked_at"
#define OOB_COLS   "device_id, verifier, created_at, expires_at, used_at, failures"
#define BATCH_COLS                                                                                 \
	"id, station_id, sequence, hash, prev_hash, product, device_count, imported_at, state"

static const char *const stmt_sql[S_COUNT_] = {
        [S_BEGIN] = "BEGIN IMMEDIATE",
        [S_COMMIT] = "COMMIT",
        [S_ROLLBACK] = "ROLLBACK",
        [S_VERSION] = "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [S_STATION_PUT] = "INSERT OR REPLACE INTO stations (id, public_key, enabled, created_at) "
                          "VALUES (?1, ?2, ?3, ?4)",
        [S_STATION_GET] = "SELECT id, public_key, enabled, created_at FROM stations WHERE id = ?1",
        [S_CA_ADD] = "INSERT INTO factory_cas (name, cert_pem, created_at) VALUES (?1, ?2, ?3)",
        [S_CA_LIST] = "SELECT name, cert_pem FROM factory_cas ORDER BY seq",
        [S_CA_PAGE] = "SELECT name, cert_pem FROM factory_cas "
                      "WHERE name > coalesce(?1, '') ORDER BY name LIMIT ?2",
        [S_BATCH_INSERT] = "INSERT INTO batches (" BATCH_COLS ") "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        [S_BATCH_GET] = "SELECT " BATCH_COLS " FROM batches WHERE id = ?1",
        [S_BATCH_GET_SEQ] = "SELECT " BATCH_COLS " FROM batches "
                            "WHERE station_id = ?1 AND sequence = ?2",
        [S_BATCH_GET_LAST] = "SELECT " BATCH_COLS " FROM batches WHERE station_id = ?1 "
                             "ORDER BY sequence DESC LIMIT 1",
        [S_DEVICE_INSERT] = "INSERT INTO devices (" DEVICE_COLS ") "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        [S_DEVICE_UPDATE] =
                "UPDATE devices SET mac = ?2, serial = ?3, public_key = ?4, state = ?5, "
                "batch_id = ?6, updated_at = ?8, provisioned_at = ?9, attempts = ?10 "
                "WHERE id = ?1",
        /* Sets no identity column, so that SQLite rewrites only the index
         * on state (devices_pending), not those on MAC, serial, key and
         * batch (EXPLAIN: 2 index writes instead of 10). */
        [S_DEVICE_UPDATE_STATE] = "UPDATE devices SET state = ?2, updated_at = ?3, "
                                  "provisioned_at = ?4, attempts = ?5 WHERE id = ?1",
        [S_DEVICE_GET] = "SELECT " DEVICE_COLS " FROM devices WHERE id = ?1",
        [S_DEVICE_FIND_ID] = "SELECT id FROM devices WHERE id = ?1 AND id IS NOT ?2",
        [S_DEVICE_FIND_SERIAL] =
                "SELECT id FROM devices WHERE serial = ?1 AND id IS NOT ?2 LIMIT 1",
        [S_DEVICE_FIND_MAC] = "SELECT id FROM devices WHERE mac = ?1 AND id IS NOT ?2 LIMIT 1",
        [S_DEVICE_FIND_KEY] = "SELECT id FROM devices WHERE public_key = ?1 AND id IS NOT ?2 "
                              "LIMIT 1",
        [S_DEVICE_COUNT] = "SELECT count(*) FROM devices",
        [S_DEVICE_COUNT_STATE] = "SELECT count(*) FROM devices WHERE state = ?1",
        [S_RELEASE_ADD] = "INSERT OR IGNORE INTO releases (kind, value, released_at) "
                          "VALUES (?1, ?2, ?3)",
        [S_RELEASE_CHECK] = "SELECT 1 FROM releases WHERE kind = ?1 AND value = ?2",
        [S_TOKEN_INSERT] = "INSERT INTO tokens (" TOKEN_COLS ") "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        [S_TOKEN_GET] = "SELECT " TOKEN_COLS " FROM tokens WHERE jti = ?1",
        [S_TOKEN_USE] = "UPDATE tokens SET used = 1 "
                        "WHERE jti = ?1 AND used = 0 AND revoked_at = 0 AND expires_at > ?2",
        [S_TOKEN_LATEST] = "SELECT " TOKEN_COLS " FROM tokens WHERE device_id = ?1 "
                           "ORDER BY issued_at DESC, rowid DESC LIMIT 1",
        [S_TOKEN_CHILD] = "SELECT " TOKEN_COLS " FROM tokens "
                          "WHERE parent = ?1 AND revoked_at = 0 ORDER BY issued_at DESC LIMIT 1",
        [S_TOKEN_REVOKE] = "UPDATE tokens SET revoked_at = ?2 WHERE jti = ?1 AND revoked_at = 0",
        [S_TOKEN_REVOKE_DEVICE] =
                "UPDATE tokens SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at = 0",
        [S_TOKEN_LIVE] = "SELECT count(*) FROM tokens WHERE device_id = ?1 AND used = 0 "
                         "AND revoked_at = 0 AND expires_at > ?2",
        [S_PROOF_PURGE] = "DELETE FROM proofs WHERE expires_at <= ?1",
        [S_PROOF_INSERT] = "INSERT INTO proofs (hash, expires_at) VALUES (?1, ?2)",
        [S_CONTENDER_PUT] =
                "INSERT INTO contenders (device_id, public_key, mac, first_seen, last_seen) "
                "VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (device_id, public_key) DO UPDATE "
                "SET mac = excluded.mac, last_seen = excluded.last_seen, attempts = attempts + 1",
        [S_CONTENDER_LIST] = "SELECT public_key, mac, first_seen, last_seen, attempts "
                             "FROM contenders WHERE device_id = ?1 ORDER BY first_seen, rowid",
        [S_CONTENDER_CLEAR] = "DELETE FROM contenders WHERE device_id = ?1",
        [S_NONCE_INSERT] = "INSERT INTO nonces (nonce, expires_at) VALUES (?1, ?2)",
        [S_NONCE_DELETE] = "DELETE FROM nonces WHERE nonce = ?1 RETURNING expires_at",
        [S_NONCE_PURGE] = "DELETE FROM nonces WHERE expires_at <= ?1",
        [S_FLAG_ADD] = "INSERT INTO flags (kind, subject, detail, created_at, last_seen) "
                       "VALUES (?1, ?2, ?3, ?4, ?4)",
        [S_FLAG_BUMP] = "UPDATE flags SET count = count + 1, last_seen = max(last_seen, ?4), "
                        "detail = coalesce(?3, detail) "
                        "WHERE cleared = 0 AND kind = ?1 AND subject IS ?2",
        [S_FLAG_GET] = "SELECT " FLAG_COLS " FROM flags "
                       "WHERE cleared = 0 AND kind = ?1 AND subject IS ?2",
        [S_FLAG_COUNT] = "SELECT count(*) FROM flags WHERE cleared = 0",
        [S_FLAG_COUNT_KIND] = "SELECT count(*) FROM flags WHERE cleared = 0 AND kind = ?1",
        [S_AUDIT_APPEND] = "INSERT INTO audit (seq, at, event, subject, detail, hash, actor, v) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 2)",
        [S_AUDIT_HEAD] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        [S_AUDIT_LIST] = "SELECT " AUDIT_COLS " FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        /* Run by migration 4, before migration 5 adds the actor column. */
        [S_AUDIT_NEXT] = "SELECT seq, at, event, subject, detail, hash FROM audit "
                         "WHERE seq > ?1 ORDER BY seq LIMIT 1",
        [S_AUDIT_RESEQ] = "UPDATE audit SET seq = ?2, hash = ?3 WHERE seq = ?1",
        [S_GROUP_EVENT] = "SELECT event, count(*) FROM audit GROUP BY event ORDER BY event",
        [S_GROUP_REFUSAL] = "SELECT detail, count(*) FROM audit WHERE event = 'provision.refused' "
                            "GROUP BY detail ORDER BY detail",
        [S_GROUP_FLAG] = "SELECT kind, count(*) FROM flags WHERE cleared = 0 GROUP BY kind "
                         "ORDER BY kind",
        [S_GROUP_STATE] = "SELECT state, count(*) FROM devices GROUP BY state ORDER BY state",
        /* Manifest devices never provisioned (formats/api.md, the hostage report). */
        [S_UNPROVISIONED] =
                "SELECT d.id, d.state, d.batch_id, b.station_id, b.imported_at, d.attempts "
                "FROM devices d JOIN batches b ON b.id = d.batch_id "
                "WHERE d.provisioned_at = 0 AND d.state IN ('preloaded', 'pending') "
                "AND b.imported_at <= ?1 AND (?2 IS NULL OR d.batch_id = ?2) "
                "AND d.id > coalesce(?3, '') ORDER BY d.id LIMIT ?4",
        [S_DEVICE_LIST] = "SELECT " DEVICE_COLS " FROM devices "
                          "WHERE id > coalesce(?1, '') ORDER BY id LIMIT ?2",
        [S_DEVICE_LIST_STATE] = "SELECT " DEVICE_COLS " FROM devices "
                                "WHERE id > coalesce(?1, '') AND state = ?3 ORDER BY id LIMIT ?2",
        [S_FLAG_LIST] = "SELECT " FLAG_COLS " FROM flags "
                        "WHERE cleared = ?5 AND (?1 <= 0 OR seq < ?1) AND (?3 IS NULL OR kind = ?3) "
                        "AND (?4 IS NULL OR subject = ?4) ORDER BY seq DESC LIMIT ?2",
        [S_STATION_PAGE] = "SELECT id, public_key, enabled, created_at FROM stations "
                           "WHERE id > coalesce(?1, '') ORDER BY id LIMIT ?2",
        [S_FLAG_RESOLVE] = "UPDATE flags SET cleared = 1 WHERE seq = ?1 AND cleared = 0 "
                           "RETURNING " FLAG_COLS,
        [S_AUDIT_LIST_SUBJECT] = "SELECT " AUDIT_COLS " FROM audit "
                                 "WHERE subject = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2",
        [S_FIND_ENROLLED_SERIAL] = "SELECT id FROM devices WHERE serial = ?1 AND id IS NOT ?2 "
                                   "AND state NOT IN (" UNENROLLED ") LIMIT 1",
        [S_FIND_ENROLLED_MAC] = "SELECT id FROM devices WHERE mac = ?1 AND id IS NOT ?2 "
                                "AND state NOT IN (" UNENROLLED ") LIMIT 1",
        [S_FIND_ENROLLED_KEY] = "SELECT id FROM devices WHERE public_key = ?1 AND id IS NOT ?2 "
                                "AND state NOT IN (" UNENROLLED ") LIMIT 1",
        [S_CLAIMS_SERIAL] = "SELECT id FROM devices WHERE serial = ?1 AND id IS NOT ?2 "
                            "AND state IN (" UNENROLLED ") ORDER BY id LIMIT ?3",
        [S_CLAIMS_MAC] = "SELECT id FROM devices WHERE mac = ?1 AND id IS NOT ?2 "
                         "AND state IN (" UNENROLLED ") ORDER BY id LIMIT ?3",
        [S_CLAIMS_KEY] = "SELECT id FROM devices WHERE public_key = ?1 AND id IS NOT ?2 "
                         "AND state IN (" UNENROLLED ") ORDER BY id LIMIT ?3",
        /* A manifest's device held pending (a policy) is not a claim: kept. */
        [S_PENDING_PURGE] = "DELETE FROM devices WHERE state = 'pending' AND updated_at < ?1 "
                            "AND batch_id IS NULL",
        [S_PENDING_COUNT_SOURCE] =
                "SELECT count(*) FROM devices WHERE state = 'pending' AND source = ?1",
        [S_PENDING_SOURCE] = "UPDATE devices SET source = ?2 WHERE id = ?1 AND state = 'pending'",
        [S_CRED_ADD] = "INSERT INTO admin_credentials (name, role, lookup, hash, created_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
        [S_CRED_FIND] = "SELECT " CRED_COLS " FROM admin_credentials "
                        "WHERE lookup = ?1 AND revoked_at = 0",
        [S_CRED_REVOKE] = "UPDATE admin_credentials SET revoked_at = ?2 "
                          "WHERE name = ?1 AND revoked_at = 0",
        [S_CRED_BY_NAME] = "SELECT " CRED_COLS " FROM admin_credentials "
                           "WHERE name = ?1 AND revoked_at = 0",
        [S_CRED_LIST] = "SELECT " CRED_COLS " FROM admin_credentials "
                        "WHERE name > coalesce(?1, '') ORDER BY name LIMIT ?2",
        [S_OOB_PUT] = "INSERT OR REPLACE INTO oob_secrets (" OOB_COLS ") "
                      "VALUES (?1, ?2, ?3, ?4, 0, 0)",
        [S_OOB_GET] = "SELECT " OOB_COLS " FROM oob_secrets WHERE device_id = ?1",
        [S_OOB_USE] = "UPDATE oob_secrets SET used_at = ?2 WHERE device_id = ?1 AND used_at = 0",
        [S_OOB_FAIL] = "UPDATE oob_secrets SET failures = failures + 1 WHERE device_id = ?1",
        [S_OOB_LIST] = "SELECT " OOB_COLS " FROM oob_secrets "
                       "WHERE device_id > coalesce(?1, '') ORDER BY device_id LIMIT ?2",
        /* Read on every provisioning request (server/site.h): kept prepared. */
        [S_SUSPENSION_GET] = "SELECT suspended, reason, since FROM site_state WHERE id = 1",
        /* One index probe per identity (the import's fast path): an EXISTS
         * each, so that each uses its own index, in a WHERE, so that the
         * first hit ends it and no key skips the key's. */
        [S_DEVICE_HELD] = "SELECT 1 WHERE EXISTS (SELECT 1 FROM devices WHERE serial = ?1) "
                          "OR EXISTS (SELECT 1 FROM devices WHERE mac = ?2) "
                          "OR (?3 IS NOT NULL AND "
                          "EXISTS (SELECT 1 FROM devices WHERE public_key = ?3))",
};

struct srv_store {
	sqlite3 *db;
	char path[256];
	bool in_tx;
	struct srv_store_sync *group; /* srv_store_sync_join; NULL: synchronous=FULL */
	char actor[SRV_STORE_ACTOR_MAX + 1]; /* srv_store_set_actor; "" for none */
	bool was_busy;                       /* srv_store_was_busy */
	sqlite3_stmt *stmt[S_COUNT_];
	/* The suspension as last read outside a transaction, valid while
	 * susp_epoch (below) is still susp_seen (see srv_store_suspension_get);
	 * susp_writing: this connection's open transaction set it. */
	bool susp_cached, susp_writing;
	uint64_t susp_seen;
	struct srv_suspension susp;
};

/* Every provisioning request reads the suspension (server/site.h), and a
 * read transaction of its own cost about 30 us a request: each connection
 * keeps what it read. Every change goes through srv_store_suspension_set in
 * a connection of this process (idprovd holds its state directory alone,
 * server/lock.h); a transaction that made one bumps susp_epoch when it ends
 * (commit or rollback), and none is cached while any is open (susp_writers),
 * so a cached value is never older than a committed change. Process-wide:
 * a change in any database drops the caches of all. */
static atomic_uint_least64_t susp_epoch;
static atomic_uint susp_writers;

/* The end of st's transaction (committed or not): a suspension it set is
 * now in force or gone, and every cache is stale. */
static void susp_tx_ended(struct srv_store *st)
{
	if (!st->susp_writing)
		return;
	st->susp_writing = false;
	(void)atomic_fetch_add(&susp_epoch, 1);
	(void)atomic_fetch_sub(&susp_writers, 1);
}

int64_t srv_store_schema_latest(void)
{
	return (int64_t)N_MIGRATIONS;
}

/* Whether the last write error of st was storage running out: no space, a
 * quota, or the file size limit (RLIMIT_FSIZE; idprovd ignores SIGXFSZ to
 * see it). SQLite reports ENOSPC as SQLITE_FULL, the others as
 * SQLITE_IOERR_WRITE with the errno kept by the file that failed (the WAL
 * or the database; sqlite3_system_errno is not always set then). Returns
 * that errno, or 0 when it is none of these. */
static int write_full(struct srv_store *st, int code)
{
	if (code != SQLITE_IOERR_WRITE)
		return 0;
	int e = sqlite3_system_errno(st->db);
	sqlite3_file *wal = NULL;
	if (e == 0 &&
	    sqlite3_file_control(st->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) == SQLITE_OK &&
	    wal != NULL && wal->pMethods != NULL &&
	    wal->pMethods->xFileControl(wal, SQLITE_FCNTL_LAST_ERRNO, &e) != SQLITE_OK)
		e = 0;
	if (e == 0 && sqlite3_file_control(st->db, "main", SQLITE_FCNTL_LAST_ERRNO, &e) != SQLITE_OK)
		e = 0;
	return srv_store_errno_full(e) ? e : 0;
}

bool srv_store_errno_full(int e)
{
	return e == ENOSPC || e == EDQUOT || e == EFBIG;
}

/* err from the connection's last error: busy/locked become IDP_E_AGAIN, a
 * full disk (SQLITE_FULL, or a write error of ENOSPC, EDQUOT or EFBIG)
 * IDP_E_FULL. */
static enum idp_err db_error(struct srv_store *st, const char *what, struct idp_error *err)
{
	int code = sqlite3_extended_errcode(st->db), e = 0;
	enum idp_err rc = IDP_E_IO;
	/* The message first: the file controls below may replace it. */
	(void)idp_error_set(err, rc, "store: %s: %s", what, sqlite3_errmsg(st->db));
	if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
		rc = IDP_E_AGAIN;
		st->was_busy = true;
	} else if ((code & 0xff) == SQLITE_FULL) {
		rc = IDP_E_FULL;
	} else if ((e = write_full(st, code)) != 0) {
		/* SQLite says "disk I/O error": name the cause (a quota, the
		 * file size limit). */
		rc = IDP_E_FULL;
		if (err != NULL) {
			char m[IDP_ERROR_MSG_MAX];
			(void)snprintf(m, sizeof(m), "%s", err->msg);
			(void)idp_error_set(err, rc, "%s: %s", m, strerror(e));
		}
	} else if ((code & 0xff) == SQLITE_NOMEM) {
		rc = IDP_E_NOMEM;
	} else if (code == SQLITE_CONSTRAINT_PRIMARYKEY || code == SQLITE_CONSTRAINT_UNIQUE) {
		rc = IDP_E_DUPLICATE;
	} else if ((code & 0xff) == SQLITE_CONSTRAINT) {
		rc = IDP_E_CONFLICT;
	}
	if (err != NULL)
		err->code = rc;
	return rc;
}

/* Done with s: reset it so that it holds no read lock and no bindings. */
static void stmt_done(sqlite3_stmt *s)
{
	(void)sqlite3_reset(s);
	(void)sqlite3_clear_bindings(s);
}

/* One bound parameter. Text with len 0 is NUL-terminated; empty text and
 * empty blobs are bound as NULL (absent values are NULL, never ""). */
enum arg_type { A_TEXT, A_BLOB, A_INT };
struct arg {
	enum arg_type type;
	const void *p;
	size_t len;
	int64_t i;
};
#define TEXT(v)                                                                                    \
	{                                                                                          \
		A_TEXT, (v), 0, 0                                                                  \
	}
#define TEXTN(v, n)                                                                                \
	{                                                                                          \
		A_TEXT, (v), (n), 0                                                                \
	}
#define BLOB(v, n)                                                                                 \
	{                                                                                          \
		A_BLOB, (v), (n), 0                                                                \
	}
#define INT(v)                                                                                     \
	{                                                                                          \
		A_INT, NULL, 0, (int64_t)(v)                                                       \
	}
#define NARGS(a) (sizeof(a) / sizeof((a)[0]))

static int bind_arg(sqlite3_stmt *s, int i, const struct arg *a)
{
	if (a->type == A_INT)
		return sqlite3_bind_int64(s, i, a->i);
	size_t len = a->len;
	if (a->type == A_TEXT && a->p != NULL && len == 0)
		len = strlen(a->p);
	if (a->p == NULL || len == 0)
		return sqlite3_bind_null(s, i);
	if (len > (size_t)INT32_MAX)
		return SQLITE_TOOBIG;
	if (a->type == A_TEXT)
		return sqlite3_bind_text(s, i, a->p, (int)len, SQLITE_STATIC);
	return sqlite3_bind_blob(s, i, a->p, (int)len, SQLITE_STATIC);
}

/* Statement id, prepared on first use, bound to args[0..n) as ?1..?n. The
 * caller steps it and ends with stmt_done(). */
static enum idp_err stmt_bound(struct srv_store *st, enum stmt_id id, const struct arg *args,
                               size_t n, sqlite3_stmt **out, struct idp_error *err)
{
	if (st->stmt[id] == NULL &&
	    sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[id],
	                       NULL) != SQLITE_OK)
		return db_error(st, "prepare", err);
	sqlite3_stmt *s = st->stmt[id];
	for (size_t i = 0; i < n; i++) {
		if (bind_arg(s, (int)i + 1, &args[i]) != SQLITE_OK) {
			enum idp_err rc = db_error(st, "bind", err);
			stmt_done(s);
			return rc;
		}
	}
	*out = s;
	return IDP_OK;
}

/* Run a statement that returns no rows worth reading; what names it in errors. */
static enum idp_err run(struct srv_store *st, enum stmt_id id, const struct arg *args, size_t n,
                        const char *what, struct idp_error *err)
{
	sqlite3_stmt *s = NULL;
	enum idp_err rc = stmt_bound(st, id, args, n, &s, err);
	if (rc != IDP_OK)
		return rc;
	int r = sqlite3_step(s);
	if (r != SQLITE_DONE && r != SQLITE_ROW)
		rc = db_error(st, what, err);
	stmt_done(s);
	return rc;
}

/* Run a query to its first row: IDP_OK with *out on that row (the caller
 * reads it, then stmt_done()), IDP_E_NOTFOUND with no message and the
 * statement already reset when there is none. */
static enum idp_err query_row(struct srv_store *st, enum stmt_id id, const struct arg *args,
                              size_t n, sqlite3_stmt **out, struct idp_error *err)
{
	sqlite3_stmt *s = NULL;
	enum idp_err rc = stmt_bound(st, id, args, n, &s, err);
	if (rc != IDP_OK)
		return rc;
	int r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		*out = s;
		return IDP_OK;
	}
	rc = r == SQLITE_DONE ? IDP_E_NOTFOUND : db_error(st, "query", err);
	stmt_done(s);
	return rc;
}

/* A query giving one integer; its optional text argument is arg. */
static enum idp_err query_int(struct srv_store *st, enum stmt_id id, const char *arg, int64_t *v,
                              struct idp_error *err)
{
	const struct arg a[] = {TEXT(arg)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, id, a, arg != NULL ? 1 : 0, &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, IDP_E_IO, "store: query gave no row");
	if (rc != IDP_OK)
		return rc;
	*v = sqlite3_column_int64(s, 0);
	stmt_done(s);
	return IDP_OK;
}

/* A walk over the rows of one statement, the loop of every _foreach:
 *
 *	struct rows it;
 *	rows_start(&it, st, S_X, args, n, "x list", err);
 *	while (rows_next(&it, err)) {
 *		it.rc = x_row(it.s, &row, err);   (a failure ends the walk)
 *		if (it.rc != IDP_OK || fn(ctx, &row) != 0)
 *			break;
 *	}
 *	return rows_end(&it);
 *
 * rows_next is false at the last row, on a database error (rc set, naming
 * what) and once rc is not IDP_OK; rows_end resets the statement and gives
 * rc. */
struct rows {
	struct srv_store *st;
	sqlite3_stmt *s; /* the statement on its current row; NULL when binding failed */
	const char *what;
	enum idp_err rc;
};

static void rows_start(struct rows *it, struct srv_store *st, enum stmt_id id,
                       const struct arg *args, size_t n, const char *what, struct idp_error *err)
{
	it->st = st;
	it->s = NULL;
	it->what = what;
	it->rc = stmt_bound(st, id, args, n, &it->s, err);
}

static bool rows_next(struct rows *it, struct idp_error *err)
{
	if (it->rc != IDP_OK)
		return false;
	int r = sqlite3_step(it->s);
	if (r == SQLITE_ROW)
		return true;
	if (r != SQLITE_DONE)
		it->rc = db_error(it->st, it->what, err);
	return false;
}

static enum idp_err rows_end(struct rows *it)
{
	if (it->s != NULL)
		stmt_done(it->s);
	return it->rc;
}

/* Copy a text column into out[size]; IDP_E_FORMAT when it does not fit (a
 * row written by something other than this engine). NULL gives "". */
static enum idp_err col_text(sqlite3_stmt *s, int col, char *out, size_t size, const char *name,
                             struct idp_error *err)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	int n = sqlite3_column_bytes(s, col);
	out[0] = '\0';
	if (t == NULL || n <= 0)
		return IDP_OK;
	if ((size_t)n >= size)
		return idp_error_set(err, IDP_E_FORMAT, "store: %s is %d bytes, max %zu", name, n,
		                     size - 1);
	memcpy(out, t, (size_t)n);
	out[n] = '\0';
	return IDP_OK;
}

static enum idp_err col_blob(sqlite3_stmt *s, int col, uint8_t *out, size_t size, size_t *len,
                             const char *name, struct idp_error *err)
{
	const void *b = sqlite3_column_blob(s, col);
	int n = sqlite3_column_bytes(s, col);
	*len = 0;
	if (b == NULL || n <= 0)
		return IDP_OK;
	if ((size_t)n > size)
		return idp_error_set(err, IDP_E_FORMAT, "store: %s is %d bytes, max %zu", name, n,
		                     size);
	memcpy(out, b, (size_t)n);
	*len = (size_t)n;
	return IDP_OK;
}

static enum idp_err exec(struct srv_store *st, const char *sql, const char *what,
                         struct idp_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		enum idp_err rc = db_error(st, what, err);
		sqlite3_free(msg);
		return rc;
	}
	return IDP_OK;
}

static enum idp_err chain_existing(struct srv_store *st, struct idp_error *err);

static enum idp_err setup(struct srv_store *st, struct idp_error *err)
{
	if (sqlite3_busy_timeout(st->db, SRV_STORE_BUSY_MS) != SQLITE_OK)
		return db_error(st, "busy timeout", err);
	(void)sqlite3_extended_result_codes(st->db, 1);
	/* journal_mode answers with the mode in force: anything but wal is a failure. */
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK)
		return db_error(st, "journal mode", err);
	int r = sqlite3_step(s);
	const unsigned char *mode = r == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
	bool wal = mode != NULL && strcmp((const char *)mode, "wal") == 0;
	(void)sqlite3_finalize(s);
	if (!wal)
		return idp_error_set(err, IDP_E_IO, "store: %s: cannot enable WAL journal",
		                     st->path);
	enum idp_err rc = exec(st,
	                       "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
	                       "PRAGMA trusted_schema=OFF;"
	                       "CREATE TABLE IF NOT EXISTS schema_migrations ("
	                       "  version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
	                       "pragmas", err);
	if (rc != IDP_OK)
		return rc;

	rc = exec(st, "BEGIN IMMEDIATE", "migrate", err);
	if (rc != IDP_OK)
		return rc;
	int64_t version = 0;
	rc = query_int(st, S_VERSION, NULL, &version, err);
	if (rc == IDP_OK && version > (int64_t)N_MIGRATIONS)
		rc = idp_error_set(err, IDP_E_UNSUPPORTED,
		                   "store: %s: schema version %lld is newer than this server's %zu",
		                   st->path, (long long)version, N_MIGRATIONS);
	for (size_t i = (size_t)(version < 0 ? 0 : version); rc == IDP_OK && i < N_MIGRATIONS;
	     i++) {
		rc = exec(st, migrations[i], "migrate", err);
		if (rc == IDP_OK && i + 1 == MIGRATION_AUDIT_CHAIN)
			rc = chain_existing(st, err);
		if (rc != IDP_OK)
			break;
		char sql[128];
		int n = snprintf(sql, sizeof(sql),
		                 "INSERT INTO schema_migrations VALUES (%zu, unixepoch())", i + 1);
		if (n < 0 || (size_t)n >= sizeof(sql))
			rc = idp_error_set(err, IDP_E_LIMIT, "store: migration statement too long");
		else
			rc = exec(st, sql, "migrate", err);
	}
	if (rc != IDP_OK) {
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return exec(st, "COMMIT", "migrate", err);
}

/* Check by path (lstat: no descriptor is opened, see srv_store_open) that
 * path, when it exists, is a regular file of ours that nobody else may read
 * or write. *exists says whether it exists. */
static enum idp_err check_file(const char *path, bool *exists, struct idp_error *err)
{
	struct stat sb;
	*exists = false;
	if (lstat(path, &sb) != 0) {
		if (errno == ENOENT)
			return IDP_OK;
		return idp_error_set(err, IDP_E_IO, "store: %s: %s", path, strerror(errno));
	}
	*exists = true;
	if (S_ISLNK(sb.st_mode))
		return idp_error_set(err, IDP_E_DENIED, "store: %s: is a symbolic link", path);
	if (!S_ISREG(sb.st_mode))
		return idp_error_set(err, IDP_E_DENIED, "store: %s: not a regular file", path);
	if (sb.st_uid != geteuid())
		return idp_error_set(err, IDP_E_DENIED, "store: %s: owned by uid %u, not by us",
		                     path, (unsigned)sb.st_uid);
	if ((sb.st_mode & 077) != 0)
		return idp_error_set(err, IDP_E_DENIED,
		                     "store: %s: mode %03o lets others read or write it; use 0600",
		                     path, (unsigned)(sb.st_mode & 0777));
	return IDP_OK;
}

/* The database and its -wal and -shm files, checked by path. */
static enum idp_err check_files(const char *path, bool *exists, struct idp_error *err)
{
	enum idp_err rc = check_file(path, exists, err);
	static const char *const suffixes[] = {"-wal", "-shm"};
	for (size_t i = 0; rc == IDP_OK && i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char side[sizeof(((struct srv_store *)NULL)->path) + 8];
		bool side_exists = false;
		(void)snprintf(side, sizeof(side), "%s%s", path, suffixes[i]);
		rc = check_file(side, &side_exists, err);
	}
	return rc;
}

enum idp_err srv_store_open(const char *path, struct srv_store **out, struct idp_error *err)
{
	*out = NULL;
	struct srv_store *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "store: out of memory");
	int n = snprintf(st->path, sizeof(st->path), "%s", path);
	enum idp_err rc = IDP_OK;
	bool exists = false;
	if (n < 0 || (size_t)n >= sizeof(st->path)) {
		rc = idp_error_set(err, IDP_E_LIMIT, "store: path is longer than %zu bytes",
		                   sizeof(st->path) - 1);
		goto out;
	}
	/* WARNING: never open() the database file here. Closing any descriptor
	 * of it drops every POSIX lock this process holds on it, including those
	 * of connections already open (one per event loop): another process
	 * (the sqlite3 CLI, a second server) then sees no user and deletes the
	 * -wal and -shm files under us, and answered writes are lost. Modes are
	 * checked by path, and a new file is created by SQLite itself. */
	rc = check_files(path, &exists, err);
	if (rc != IDP_OK)
		goto out;
	/* SQLite creates the file with 0644 & ~umask and gives -wal and -shm the
	 * database's mode: create it under umask 077. WARNING: the umask is
	 * process-wide; a new database is made before the server's threads run
	 * (and idprovd already runs with umask 077). */
	mode_t old_mask = exists ? 0 : umask(077);
	int r = sqlite3_open_v2(path, &st->db,
	                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
	                                SQLITE_OPEN_NOFOLLOW,
	                        NULL);
	if (!exists)
		(void)umask(old_mask);
	if (r != SQLITE_OK) {
		rc = idp_error_set(err, IDP_E_IO, "store: %s: %s", path,
		                   st->db != NULL ? sqlite3_errmsg(st->db) : "out of memory");
		goto out;
	}
	/* A file just created gets 0600 whatever the umask was (by path). */
	if (!exists && chmod(path, 0600) != 0) {
		rc = idp_error_set(err, IDP_E_IO, "store: %s: chmod: %s", path, strerror(errno));
		goto out;
	}
	rc = check_file(path, &exists, err);
	if (rc == IDP_OK)
		rc = setup(st, err);
out:
	if (rc != IDP_OK) {
		srv_store_close(st);
		return rc;
	}
	*out = st;
	return IDP_OK;
}

void srv_store_close(struct srv_store *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < S_COUNT_; i++)
		(void)sqlite3_finalize(st->stmt[i]);
	if (st->db != NULL) {
		if (st->in_tx || !sqlite3_get_autocommit(st->db))
			(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		(void)sqlite3_close(st->db);
	}
	susp_tx_ended(st);
	free(st);
}

enum idp_err srv_store_schema_version(struct srv_store *st, int64_t *version, struct idp_error *err)
{
	return query_int(st, S_VERSION, NULL, version, err);
}

enum idp_err srv_store_begin(struct srv_store *st, struct idp_error *err)
{
	if (st->in_tx)
		return idp_error_set(err, IDP_E_ARG, "store: a transaction is already open");
	enum idp_err rc = run(st, S_BEGIN, NULL, 0, "begin", err);
	if (rc == IDP_OK)
		st->in_tx = true;
	return rc;
}

enum idp_err srv_store_commit(struct srv_store *st, struct idp_error *err)
{
	if (!st->in_tx)
		return idp_error_set(err, IDP_E_ARG, "store: no transaction is open");
	enum idp_err rc = run(st, S_COMMIT, NULL, 0, "commit", err);
	if (rc != IDP_OK)
		srv_store_rollback(st);
	st->in_tx = false;
	susp_tx_ended(st);
	return rc;
}

void srv_store_rollback(struct srv_store *st)
{
	if (!st->in_tx && sqlite3_get_autocommit(st->db))
		return;
	if (run(st, S_ROLLBACK, NULL, 0, "rollback", NULL) != IDP_OK)
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->in_tx = false;
	susp_tx_ended(st);
}

/* ---------------------------------------------------------------- group commit */

#define SYNC_CHECKPOINT_FRAMES 1000 /* SQLite's default automatic checkpoint */

struct srv_store_sync {
	struct srv_store *st;          /* its own connection: the WAL descriptor flushed */
	atomic_uint_least64_t committed; /* commits of the joined connections */
	atomic_uint_least64_t durable;   /* of those, known on disk */
	atomic_uint_least64_t flushes;   /* fsyncs made */
};

enum idp_err srv_store_sync_new(const char *path, struct srv_store_sync **out,
                                struct idp_error *err)
{
	*out = NULL;
	struct srv_store_sync *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "store: out of memory");
	enum idp_err rc = srv_store_open(path, &g->st, err);
	if (rc != IDP_OK) {
		free(g);
		return rc;
	}
	atomic_init(&g->committed, 0);
	atomic_init(&g->durable, 0);
	atomic_init(&g->flushes, 0);
	*out = g;
	return IDP_OK;
}

void srv_store_sync_free(struct srv_store_sync *g)
{
	if (g == NULL)
		return;
	srv_store_close(g->st);
	free(g);
}

/* Runs after each commit of a joined connection, once its frames are
 * written and the write lock released (sqlite3_wal_hook). Setting the hook
 * replaces SQLite's automatic checkpoint, done here as it would. */
static int sync_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct srv_store_sync *g = arg;
	(void)atomic_fetch_add_explicit(&g->committed, 1, memory_order_release);
	if (frames >= SYNC_CHECKPOINT_FRAMES)
		(void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

enum idp_err srv_store_sync_join(struct srv_store *st, struct srv_store_sync *g,
                                 struct idp_error *err)
{
	enum idp_err rc = exec(st, "PRAGMA synchronous=NORMAL", "group commit", err);
	if (rc != IDP_OK)
		return rc;
	(void)sqlite3_wal_hook(st->db, sync_wal_hook, g);
	st->group = g;
	return IDP_OK;
}

uint64_t srv_store_sync_committed(const struct srv_store_sync *g)
{
	return atomic_load_explicit(&g->committed, memory_order_acquire);
}

uint64_t srv_store_sync_durable(const struct srv_store_sync *g)
{
	return atomic_load_explicit(&g->durable, memory_order_acquire);
}

uint64_t srv_store_sync_flushes(const struct srv_store_sync *g)
{
	return atomic_load_explicit(&g->flushes, memory_order_relaxed);
}

enum idp_err srv_store_sync_flush(struct srv_store_sync *g, uint64_t *durable,
                                  struct idp_error *err)
{
	/* Every commit counted now has its frames in the WAL file: one fsync of
	 * that file (through SQLite's own descriptor, see srv_store_open) puts
	 * them all on disk, whichever connection wrote them. */
	uint64_t target = srv_store_sync_committed(g);
	sqlite3_file *f = NULL;
	if (sqlite3_file_control(g->st->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) !=
	            SQLITE_OK ||
	    f == NULL || f->pMethods == NULL)
		return idp_error_set(err, IDP_E_IO, "store: %s: no WAL file to sync", g->st->path);
	int r = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
	if (r != SQLITE_OK)
		return idp_error_set(err, IDP_E_IO, "store: %s: syncing the WAL: %s", g->st->path,
		                     sqlite3_errstr(r));
	atomic_store_explicit(&g->durable, target, memory_order_release);
	(void)atomic_fetch_add_explicit(&g->flushes, 1, memory_order_relaxed);
	*durable = target;
	return IDP_OK;
}

/* ---------------------------------------------------------------- stations */

enum idp_err srv_store_station_put(struct srv_store *st, const struct srv_station *s,
                                   struct idp_error *err)
{
	enum idp_err rc = srv_store_check_station(s, err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {TEXT(s->id), BLOB(s->pubkey, s->pubkey_len), INT(s->enabled),
	                        INT(s->created_at)};
	return run(st, S_STATION_PUT, a, NARGS(a), "station put", err);
}

static enum idp_err station_row(sqlite3_stmt *s, struct srv_station *out, struct idp_error *err)
{
	enum idp_err rc = col_text(s, 0, out->id, sizeof(out->id), "station id", err);
	if (rc == IDP_OK)
		rc = col_blob(s, 1, out->pubkey, sizeof(out->pubkey), &out->pubkey_len,
		              "station key", err);
	out->enabled = sqlite3_column_int(s, 2) != 0;
	out->created_at = sqlite3_column_int64(s, 3);
	return rc;
}

enum idp_err srv_store_station_get(struct srv_store *st, const char *id, struct srv_station *out,
                                   struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	const struct arg a[] = {TEXT(id)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_STATION_GET, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, rc, "store: station %s: not found", id);
	if (rc != IDP_OK)
		return rc;
	rc = station_row(s, out, err);
	stmt_done(s);
	return rc;
}

enum idp_err srv_store_factory_ca_add(struct srv_store *st, const char *name, const char *pem,
                                      size_t pem_len, int64_t now, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_factory_ca(name, pem_len, err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {TEXT(name), TEXTN(pem, pem_len), INT(now)};
	return run(st, S_CA_ADD, a, NARGS(a), "factory ca add", err);
}

enum idp_err srv_store_factory_ca_foreach(struct srv_store *st,
                                          int (*fn)(void *ctx, const char *name, const char *pem,
                                                    size_t len),
                                          void *ctx, struct idp_error *err)
{
	return srv_store_factory_ca_page(st, NULL, -1, fn, ctx, err);
}

enum idp_err srv_store_factory_ca_page(struct srv_store *st, const char *after, int64_t limit,
                                       int (*fn)(void *ctx, const char *name, const char *pem,
                                                 size_t len),
                                       void *ctx, struct idp_error *err)
{
	/* The whole list (the import's trust store) in insertion order; a page by name. */
	const struct arg a[] = {TEXT(after), INT(limit)};
	struct rows it;
	if (limit < 0)
		rows_start(&it, st, S_CA_LIST, NULL, 0, "factory ca list", err);
	else
		rows_start(&it, st, S_CA_PAGE, a, NARGS(a), "factory ca list", err);
	while (rows_next(&it, err)) {
		const char *name = (const char *)sqlite3_column_text(it.s, 0);
		const char *pem = (const char *)sqlite3_column_text(it.s, 1);
		int len = sqlite3_column_bytes(it.s, 1);
		if (name == NULL || pem == NULL || len <= 0)
			continue;
		if (fn(ctx, name, pem, (size_t)len) != 0)
			break;
	}
	return rows_end(&it);
}

/* ---------------------------------------------------------------- batches */

/* Run a batch query (statement id with args) into out; what names it. */
static enum idp_err batch_query(struct srv_store *st, enum stmt_id id, const struct arg *args,
                                size_t n, struct srv_batch *out, const char *what,
                                struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, id, args, n, &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, rc, "store: batch %s: not found", what);
	if (rc != IDP_OK)
		return rc;
	size_t hlen = 0, plen = 0;
	rc = col_text(s, 0, out->id, sizeof(out->id), "batch id", err);
	if (rc == IDP_OK)
		rc = col_text(s, 1, out->station_id, sizeof(out->station_id), "station id", err);
	out->sequence = sqlite3_column_int64(s, 2);
	if (rc == IDP_OK)
		rc = col_blob(s, 3, out->hash, sizeof(out->hash), &hlen, "batch hash", err);
	if (rc == IDP_OK)
		rc = col_blob(s, 4, out->prev_hash, sizeof(out->prev_hash), &plen, "previous hash",
		              err);
	out->has_prev = plen == SRV_STORE_HASH_LEN;
	if (rc == IDP_OK)
		rc = col_text(s, 5, out->product, sizeof(out->product), "product", err);
	out->device_count = sqlite3_column_int64(s, 6);
	out->imported_at = sqlite3_column_int64(s, 7);
	out->state = srv_batch_state_of((const char *)sqlite3_column_text(s, 8),
	                                (size_t)sqlite3_column_bytes(s, 8));
	stmt_done(s);
	return rc;
}

enum idp_err srv_store_batch_insert(struct srv_store *st, const struct srv_batch *b,
                                    struct idp_error *err)
{
	enum idp_err rc = srv_store_check_batch(b, err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {TEXT(b->id),
	                        TEXT(b->station_id),
	                        INT(b->sequence),
	                        BLOB(b->hash, sizeof(b->hash)),
	                        BLOB(b->prev_hash, b->has_prev ? sizeof(b->prev_hash) : 0),
	                        TEXT(b->product),
	                        INT(b->device_count),
	                        INT(b->imported_at),
	                        TEXT(srv_batch_state_name(b->state))};
	rc = run(st, S_BATCH_INSERT, a, NARGS(a), "batch insert", err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "batch %s", b->id);
	return rc;
}

enum idp_err srv_store_batch_get(struct srv_store *st, const char *id, struct srv_batch *out,
                                 struct idp_error *err)
{
	const struct arg a[] = {TEXT(id)};
	return batch_query(st, S_BATCH_GET, a, NARGS(a), out, id, err);
}

enum idp_err srv_store_batch_get_seq(struct srv_store *st, const char *station_id, int64_t sequence,
                                     struct srv_batch *out, struct idp_error *err)
{
	const struct arg a[] = {TEXT(station_id), INT(sequence)};
	return batch_query(st, S_BATCH_GET_SEQ, a, NARGS(a), out, "of station", err);
}

enum idp_err srv_store_batch_get_last(struct srv_store *st, const char *station_id,
                                      struct srv_batch *out, struct idp_error *err)
{
	const struct arg a[] = {TEXT(station_id)};
	return batch_query(st, S_BATCH_GET_LAST, a, NARGS(a), out, "of station", err);
}

/* ---------------------------------------------------------------- devices */

/* Validate d, then run the insert or the update (same parameter order). */
static enum idp_err device_write(struct srv_store *st, enum stmt_id id, const struct srv_device *d,
                                 struct idp_error *err)
{
	enum idp_err rc = srv_store_check_device(d, err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {TEXT(d->id),
	                        TEXT(d->mac),
	                        TEXT(d->serial),
	                        BLOB(d->pubkey, d->pubkey_len),
	                        TEXT(srv_device_state_name(d->state)),
	                        TEXT(d->batch_id),
	                        INT(d->created_at),
	                        INT(d->updated_at),
	                        INT(d->provisioned_at),
	                        INT(d->attempts)};
	rc = run(st, id, a, NARGS(a), id == S_DEVICE_INSERT ? "device insert" : "device update",
	         err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "device %s", d->id);
	else if (id == S_DEVICE_UPDATE && sqlite3_changes(st->db) != 1)
		rc = idp_error_set(err, IDP_E_NOTFOUND, "store: device %s: not found", d->id);
	return rc;
}

enum idp_err srv_store_device_insert(struct srv_store *st, const struct srv_device *d,
                                     struct idp_error *err)
{
	return device_write(st, S_DEVICE_INSERT, d, err);
}

enum idp_err srv_store_device_update(struct srv_store *st, const struct srv_device *d,
                                     struct idp_error *err)
{
	return device_write(st, S_DEVICE_UPDATE, d, err);
}

enum idp_err srv_store_device_update_state(struct srv_store *st, const struct srv_device *d,
                                           struct idp_error *err)
{
	enum idp_err rc = srv_store_check_device(d, err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {TEXT(d->id), TEXT(srv_device_state_name(d->state)),
	                        INT(d->updated_at), INT(d->provisioned_at), INT(d->attempts)};
	rc = run(st, S_DEVICE_UPDATE_STATE, a, NARGS(a), "device update", err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "device %s", d->id);
	else if (sqlite3_changes(st->db) != 1)
		rc = idp_error_set(err, IDP_E_NOTFOUND, "store: device %s: not found", d->id);
	return rc;
}

static enum idp_err device_row(sqlite3_stmt *s, struct srv_device *out, struct idp_error *err)
{
	enum idp_err rc = col_text(s, 0, out->id, sizeof(out->id), "device id", err);
	if (rc == IDP_OK)
		rc = col_text(s, 1, out->mac, sizeof(out->mac), "mac", err);
	if (rc == IDP_OK)
		rc = col_text(s, 2, out->serial, sizeof(out->serial), "serial", err);
	if (rc == IDP_OK)
		rc = col_blob(s, 3, out->pubkey, sizeof(out->pubkey), &out->pubkey_len,
		              "public key", err);
	out->state = srv_device_state_of((const char *)sqlite3_column_text(s, 4),
	                                 (size_t)sqlite3_column_bytes(s, 4));
	if (rc == IDP_OK)
		rc = col_text(s, 5, out->batch_id, sizeof(out->batch_id), "batch id", err);
	out->created_at = sqlite3_column_int64(s, 6);
	out->updated_at = sqlite3_column_int64(s, 7);
	out->provisioned_at = sqlite3_column_int64(s, 8);
	out->attempts = sqlite3_column_int64(s, 9);
	return rc;
}

enum idp_err srv_store_device_get(struct srv_store *st, const char *id, struct srv_device *out,
                                  struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	const struct arg a[] = {TEXT(id)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_DEVICE_GET, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, rc, "store: device %s: not found", id);
	if (rc != IDP_OK)
		return rc;
	rc = device_row(s, out, err);
	stmt_done(s);
	return rc;
}

/* The one device (other than except_id) that statement id finds holding
 * value as its kind; whom ("" or "enrolled ") names it in the not-found
 * message. */
static enum idp_err find_one(struct srv_store *st, enum stmt_id id, enum srv_ident_kind kind,
                             const uint8_t *value, size_t len, const char *except_id,
                             char id_out[static SRV_STORE_ID_MAX + 1], const char *whom,
                             struct idp_error *err)
{
	const struct arg a[] = {kind == SRV_IDENT_KEY ? (struct arg)BLOB(value, len)
	                                              : (struct arg)TEXTN(value, len),
	                        TEXT(except_id)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, id, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, rc, "store: no other %sdevice has this %s", whom,
		                     srv_ident_kind_name(kind));
	if (rc != IDP_OK)
		return rc;
	rc = col_text(s, 0, id_out, SRV_STORE_ID_MAX + 1, "device id", err);
	stmt_done(s);
	return rc;
}

enum idp_err srv_store_device_find(struct srv_store *st, enum srv_ident_kind kind,
                                   const uint8_t *value, size_t len, const char *except_id,
                                   char id_out[static SRV_STORE_ID_MAX + 1], struct idp_error *err)
{
	static const enum stmt_id by_kind[] = {
	        [SRV_IDENT_ID] = S_DEVICE_FIND_ID,
	        [SRV_IDENT_SERIAL] = S_DEVICE_FIND_SERIAL,
	        [SRV_IDENT_MAC] = S_DEVICE_FIND_MAC,
	        [SRV_IDENT_KEY] = S_DEVICE_FIND_KEY,
	};
	id_out[0] = '\0';
	enum idp_err rc = srv_store_check_ident(kind, len, "device find", err);
	if (rc != IDP_OK)
		return rc;
	return find_one(st, by_kind[kind], kind, value, len, except_id, id_out, "", err);
}

enum idp_err srv_store_device_count(struct srv_store *st, enum srv_device_state state, int64_t *n,
                                    struct idp_error *err)
{
	if ((int)state == 0)
		return query_int(st, S_DEVICE_COUNT, NULL, n, err);
	return query_int(st, S_DEVICE_COUNT_STATE, srv_device_state_name(state), n, err);
}

/* The statement of kind among serial, MAC and key in table (indexed by kind). */
static enum idp_err ident_stmt(const enum stmt_id table[static 5], enum srv_ident_kind kind,
                               size_t len, enum stmt_id *id, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_ident(kind, len, "device find", err);
	if (rc != IDP_OK)
		return rc;
	if (kind == SRV_IDENT_ID)
		return idp_error_set(err, IDP_E_ARG, "store: device find: bad kind or length");
	*id = table[kind];
	return IDP_OK;
}

enum idp_err srv_store_device_find_enrolled(struct srv_store *st, enum srv_ident_kind kind,
                                            const uint8_t *value, size_t len,
                                            const char *except_id,
                                            char id_out[static SRV_STORE_ID_MAX + 1],
                                            struct idp_error *err)
{
	static const enum stmt_id by_kind[5] = {
	        [SRV_IDENT_SERIAL] = S_FIND_ENROLLED_SERIAL,
	        [SRV_IDENT_MAC] = S_FIND_ENROLLED_MAC,
	        [SRV_IDENT_KEY] = S_FIND_ENROLLED_KEY,
	};
	id_out[0] = '\0';
	enum stmt_id id = S_COUNT_;
	enum idp_err rc = ident_stmt(by_kind, kind, len, &id, err);
	if (rc != IDP_OK)
		return rc;
	return find_one(st, id, kind, value, len, except_id, id_out, "enrolled ", err);
}

enum idp_err srv_store_device_claims(struct srv_store *st, enum srv_ident_kind kind,
                                     const uint8_t *value, size_t len, const char *except_id,
                                     int64_t limit, int (*fn)(void *ctx, const char *id),
                                     void *ctx, struct idp_error *err)
{
	static const enum stmt_id by_kind[5] = {
	        [SRV_IDENT_SERIAL] = S_CLAIMS_SERIAL,
	        [SRV_IDENT_MAC] = S_CLAIMS_MAC,
	        [SRV_IDENT_KEY] = S_CLAIMS_KEY,
	};
	enum stmt_id id = S_COUNT_;
	enum idp_err rc = ident_stmt(by_kind, kind, len, &id, err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {kind == SRV_IDENT_KEY ? (struct arg)BLOB(value, len)
	                                              : (struct arg)TEXTN(value, len),
	                        TEXT(except_id), INT(limit)};
	/* Copied out first: fn may write to the store (a flag) while we walk. */
	char ids[SRV_STORE_CLAIMS_MAX][SRV_STORE_ID_MAX + 1];
	size_t n = 0;
	struct rows it;
	rows_start(&it, st, id, a, NARGS(a), "device claims", err);
	while (rows_next(&it, err)) {
		if (n < SRV_STORE_CLAIMS_MAX &&
		    (it.rc = col_text(it.s, 0, ids[n], sizeof(ids[n]), "device id", err)) == IDP_OK)
			n++;
	}
	rc = rows_end(&it);
	for (size_t i = 0; rc == IDP_OK && i < n; i++)
		if (fn(ctx, ids[i]) != 0)
			break;
	return rc;
}

enum idp_err srv_store_device_held(struct srv_store *st, const char *serial, const char *mac,
                                   const uint8_t *key, size_t key_len, bool *held,
                                   struct idp_error *err)
{
	*held = true;
	const struct arg a[] = {TEXT(serial), TEXT(mac), BLOB(key, key_len)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_DEVICE_HELD, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND) {
		*held = false;
		return IDP_OK;
	}
	if (rc != IDP_OK)
		return rc;
	stmt_done(s);
	return IDP_OK;
}

/* ---------------------------------------------------------------- pending */

enum idp_err srv_store_pending_admit(struct srv_store *st, const char *source, int64_t now,
                                     const struct srv_pending_limits *lim, int64_t *expired,
                                     struct idp_error *err)
{
	*expired = 0;
	enum idp_err rc =
	        srv_store_check_text(source, SRV_STORE_SOURCE_MAX, false, "pending source", err);
	if (rc == IDP_OK && lim->lifetime > 0) {
		const struct arg a[] = {INT(now - lim->lifetime)};
		rc = run(st, S_PENDING_PURGE, a, NARGS(a), "pending purge", err);
		if (rc == IDP_OK)
			*expired = sqlite3_changes64(st->db);
	}
	int64_t n = 0;
	if (rc == IDP_OK && lim->max_per_source > 0 && source != NULL && source[0] != '\0') {
		rc = query_int(st, S_PENDING_COUNT_SOURCE, source, &n, err);
		if (rc == IDP_OK && n >= lim->max_per_source)
			return idp_error_set(err, IDP_E_LIMIT,
			                     "pending: %lld unknown devices from %s are already "
			                     "waiting for approval (max-pending-per-address %lld)",
			                     (long long)n, source, (long long)lim->max_per_source);
	}
	if (rc == IDP_OK && lim->max_total > 0) {
		rc = srv_store_device_count(st, SRV_DEV_PENDING, &n, err);
		if (rc == IDP_OK && n >= lim->max_total)
			return idp_error_set(err, IDP_E_AGAIN,
			                     "pending: %lld unknown devices are already waiting for "
			                     "approval (max-pending %lld)",
			                     (long long)n, (long long)lim->max_total);
	}
	return rc;
}

enum idp_err srv_store_pending_source(struct srv_store *st, const char *id, const char *source,
                                      struct idp_error *err)
{
	enum idp_err rc =
	        srv_store_check_text(source, SRV_STORE_SOURCE_MAX, false, "pending source", err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {TEXT(id), TEXT(source)};
	return run(st, S_PENDING_SOURCE, a, NARGS(a), "pending source", err);
}

/* ---------------------------------------------------------------- releases */

enum idp_err srv_store_release_add(struct srv_store *st, enum srv_ident_kind kind,
                                   const uint8_t *value, size_t len, int64_t now,
                                   struct idp_error *err)
{
	enum idp_err rc = srv_store_check_ident(kind, len, "release", err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {TEXT(srv_ident_kind_name(kind)), BLOB(value, len), INT(now)};
	return run(st, S_RELEASE_ADD, a, NARGS(a), "release add", err);
}

enum idp_err srv_store_release_check(struct srv_store *st, enum srv_ident_kind kind,
                                     const uint8_t *value, size_t len, bool *released,
                                     struct idp_error *err)
{
	*released = false;
	enum idp_err rc = srv_store_check_ident(kind, len, "release", err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {TEXT(srv_ident_kind_name(kind)), BLOB(value, len)};
	sqlite3_stmt *s = NULL;
	rc = query_row(st, S_RELEASE_CHECK, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	if (rc != IDP_OK)
		return rc;
	*released = true;
	stmt_done(s);
	return IDP_OK;
}

/* ---------------------------------------------------------------- tokens */

enum idp_err srv_store_token_insert(struct srv_store *st, const struct srv_token *t,
                                    struct idp_error *err)
{
	enum idp_err rc = srv_store_check_token(t, err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {
	        TEXT(t->jti),      TEXT(t->device_id), TEXT(fmt_token_kind_name(t->kind)),
	        INT(t->issued_at), INT(t->expires_at), INT(t->used),
	        TEXT(t->parent),   INT(t->revoked_at)};
	return run(st, S_TOKEN_INSERT, a, NARGS(a), "token insert", err);
}

static enum idp_err token_row(sqlite3_stmt *s, struct srv_token *out, struct idp_error *err)
{
	enum idp_err rc = col_text(s, 0, out->jti, sizeof(out->jti), "jti", err);
	if (rc == IDP_OK)
		rc = col_text(s, 1, out->device_id, sizeof(out->device_id), "device id", err);
	int klen = sqlite3_column_bytes(s, 2);
	const unsigned char *kind = sqlite3_column_text(s, 2);
	out->kind = kind != NULL && klen > 0 ? fmt_token_kind_of((const char *)kind, (size_t)klen)
	                                     : (enum fmt_token_kind)0;
	out->issued_at = sqlite3_column_int64(s, 3);
	out->expires_at = sqlite3_column_int64(s, 4);
	out->used = sqlite3_column_int(s, 5) != 0;
	if (rc == IDP_OK)
		rc = col_text(s, 6, out->parent, sizeof(out->parent), "token parent", err);
	out->revoked_at = sqlite3_column_int64(s, 7);
	return rc;
}

/* One token by statement id (bound to key); missing names it in the error. */
static enum idp_err token_query(struct srv_store *st, enum stmt_id id, const char *key,
                                struct srv_token *out, const char *missing, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	const struct arg a[] = {TEXT(key)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, id, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, rc, "store: token: %s", missing);
	if (rc != IDP_OK)
		return rc;
	rc = token_row(s, out, err);
	stmt_done(s);
	return rc;
}

enum idp_err srv_store_token_get(struct srv_store *st, const char *jti, struct srv_token *out,
                                 struct idp_error *err)
{
	return token_query(st, S_TOKEN_GET, jti, out, "not found", err);
}

enum idp_err srv_store_token_child(struct srv_store *st, const char *jti, struct srv_token *out,
                                   struct idp_error *err)
{
	return token_query(st, S_TOKEN_CHILD, jti, out, "nothing issued for it", err);
}

enum idp_err srv_store_token_latest(struct srv_store *st, const char *device_id,
                                    struct srv_token *out, struct idp_error *err)
{
	return token_query(st, S_TOKEN_LATEST, device_id, out, "no token issued to it", err);
}

enum idp_err srv_store_token_revoke(struct srv_store *st, const char *jti, int64_t now,
                                    struct idp_error *err)
{
	const struct arg a[] = {TEXT(jti), INT(now)};
	return run(st, S_TOKEN_REVOKE, a, NARGS(a), "token revoke", err);
}

enum idp_err srv_store_token_revoke_device(struct srv_store *st, const char *device_id, int64_t now,
                                           struct idp_error *err)
{
	const struct arg a[] = {TEXT(device_id), INT(now)};
	return run(st, S_TOKEN_REVOKE_DEVICE, a, NARGS(a), "token revoke", err);
}

enum idp_err srv_store_token_live(struct srv_store *st, const char *device_id, int64_t now,
                                  int64_t *n, struct idp_error *err)
{
	const struct arg a[] = {TEXT(device_id), INT(now)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_TOKEN_LIVE, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, IDP_E_IO, "store: query gave no row");
	if (rc != IDP_OK)
		return rc;
	*n = sqlite3_column_int64(s, 0);
	stmt_done(s);
	return IDP_OK;
}

enum idp_err srv_store_token_use(struct srv_store *st, const char *jti, int64_t now,
                                 struct idp_error *err)
{
	/* One conditional UPDATE: of two racing exchanges only one changes the row. */
	const struct arg a[] = {TEXT(jti), INT(now)};
	enum idp_err rc = run(st, S_TOKEN_USE, a, NARGS(a), "token use", err);
	if (rc != IDP_OK || sqlite3_changes(st->db) == 1)
		return rc;
	struct srv_token t;
	rc = srv_store_token_get(st, jti, &t, err);
	if (rc != IDP_OK)
		return rc;
	if (t.revoked_at != 0)
		return idp_error_set(err, IDP_E_DENIED,
		                     "store: token: revoked (the device provisioned again)");
	if (t.used)
		return idp_error_set(err, IDP_E_CONFLICT, "store: token: already used");
	return idp_error_set(err, IDP_E_EXPIRED, "store: token: expired");
}

/* ---------------------------------------------------------------- nonces */

enum idp_err srv_store_nonce_insert(struct srv_store *st, const uint8_t *nonce, size_t len,
                                    int64_t expires_at, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_nonce(len, err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {BLOB(nonce, len), INT(expires_at)};
	return run(st, S_NONCE_INSERT, a, NARGS(a), "nonce insert", err);
}

enum idp_err srv_store_nonce_consume(struct srv_store *st, const uint8_t *nonce, size_t len,
                                     int64_t now, struct idp_error *err)
{
	if (len == 0 || len > SRV_STORE_NONCE_MAX)
		return idp_error_set(err, IDP_E_NOTFOUND, "nonce: unknown");
	/* DELETE ... RETURNING: only the connection whose delete removed the row
	 * sees it, so a nonce is used once even under concurrent requests. */
	const struct arg a[] = {BLOB(nonce, len)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_NONCE_DELETE, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, rc, "nonce: unknown or already used");
	if (rc != IDP_OK)
		return rc;
	int64_t exp = sqlite3_column_int64(s, 0);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = db_error(st, "nonce consume", err);
	else if (exp <= now)
		rc = idp_error_set(err, IDP_E_EXPIRED, "nonce: expired");
	stmt_done(s);
	return rc;
}

enum idp_err srv_store_nonce_purge(struct srv_store *st, int64_t now, struct idp_error *err)
{
	const struct arg a[] = {INT(now)};
	return run(st, S_NONCE_PURGE, a, NARGS(a), "nonce purge", err);
}

/* ---------------------------------------------------------------- proofs */

enum idp_err srv_store_proof_use(struct srv_store *st, const uint8_t *hash, size_t len,
                                 int64_t expires_at, int64_t now, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_proof(len, err);
	if (rc != IDP_OK)
		return rc;
	const struct arg p[] = {INT(now)};
	rc = run(st, S_PROOF_PURGE, p, NARGS(p), "proof purge", err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {BLOB(hash, len), INT(expires_at)};
	rc = run(st, S_PROOF_INSERT, a, NARGS(a), "proof use", err);
	if (rc == IDP_E_DUPLICATE)
		return idp_error_set(err, IDP_E_CONFLICT, "proof: already used; sign a new one");
	return rc;
}

/* ---------------------------------------------------------------- contenders */

enum idp_err srv_store_contender_put(struct srv_store *st, const char *device_id,
                                     const uint8_t *spki, size_t len, const char *mac, int64_t now,
                                     struct idp_error *err)
{
	enum idp_err rc = srv_store_check_contender(device_id, len, mac, err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {TEXT(device_id), BLOB(spki, len), TEXT(mac), INT(now)};
	return run(st, S_CONTENDER_PUT, a, NARGS(a), "contender put", err);
}

enum idp_err srv_store_contender_foreach(struct srv_store *st, const char *device_id,
                                         int (*fn)(void *ctx, const struct srv_contender *c),
                                         void *ctx, struct idp_error *err)
{
	const struct arg a[] = {TEXT(device_id)};
	struct rows it;
	rows_start(&it, st, S_CONTENDER_LIST, a, NARGS(a), "contender list", err);
	while (rows_next(&it, err)) {
		sqlite3_stmt *s = it.s;
		struct srv_contender c;
		memset(&c, 0, sizeof(c));
		it.rc = col_blob(s, 0, c.pubkey, sizeof(c.pubkey), &c.pubkey_len, "contender key",
		                 err);
		if (it.rc == IDP_OK)
			it.rc = col_text(s, 1, c.mac, sizeof(c.mac), "contender mac", err);
		c.first_seen = sqlite3_column_int64(s, 2);
		c.last_seen = sqlite3_column_int64(s, 3);
		c.attempts = sqlite3_column_int64(s, 4);
		if (it.rc != IDP_OK || fn(ctx, &c) != 0)
			break;
	}
	return rows_end(&it);
}

enum idp_err srv_store_contender_clear(struct srv_store *st, const char *device_id,
                                       struct idp_error *err)
{
	const struct arg a[] = {TEXT(device_id)};
	return run(st, S_CONTENDER_CLEAR, a, NARGS(a), "contender clear", err);
}

/* ---------------------------------------------------------------- flags, audit */

enum idp_err srv_store_flag_add(struct srv_store *st, const char *kind, const char *subject,
                                const char *detail, int64_t now, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_flag(kind, subject, detail, err);
	if (rc != IDP_OK)
		return rc;
	/* A repeat counts on the open flag: a flood of one kind for one subject
	 * stays one row, so that it cannot bury the others. */
	const struct arg a[] = {TEXT(kind), TEXT(subject), TEXT(detail), INT(now)};
	rc = run(st, S_FLAG_BUMP, a, NARGS(a), "flag add", err);
	if (rc != IDP_OK || sqlite3_changes(st->db) > 0)
		return rc;
	return run(st, S_FLAG_ADD, a, NARGS(a), "flag add", err);
}

static enum idp_err flag_row(sqlite3_stmt *s, struct srv_flag *row, struct idp_error *err)
{
	memset(row, 0, sizeof(*row));
	row->seq = sqlite3_column_int64(s, 0);
	enum idp_err rc = col_text(s, 1, row->kind, sizeof(row->kind), "flag kind", err);
	if (rc == IDP_OK)
		rc = col_text(s, 2, row->subject, sizeof(row->subject), "flag subject", err);
	if (rc == IDP_OK)
		rc = col_text(s, 3, row->detail, sizeof(row->detail), "flag detail", err);
	row->created_at = sqlite3_column_int64(s, 4);
	row->count = sqlite3_column_int64(s, 5);
	row->last_seen = sqlite3_column_int64(s, 6);
	return rc;
}

enum idp_err srv_store_flag_get(struct srv_store *st, const char *kind, const char *subject,
                                struct srv_flag *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	const struct arg a[] = {TEXT(kind), TEXT(subject)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_FLAG_GET, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, rc, "store: no open %s flag", kind);
	if (rc != IDP_OK)
		return rc;
	rc = flag_row(s, out, err);
	stmt_done(s);
	return rc;
}

enum idp_err srv_store_flag_resolve(struct srv_store *st, int64_t seq, struct srv_flag *out,
                                    struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	const struct arg a[] = {INT(seq)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_FLAG_RESOLVE, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, rc, "flag %lld: no such open flag", (long long)seq);
	if (rc != IDP_OK)
		return rc;
	rc = flag_row(s, out, err);
	stmt_done(s);
	return rc;
}

enum idp_err srv_store_flag_count(struct srv_store *st, const char *kind, int64_t *n,
                                  struct idp_error *err)
{
	return query_int(st, kind == NULL ? S_FLAG_COUNT : S_FLAG_COUNT_KIND, kind, n, err);
}

/* An audit row (AUDIT_COLS) as the chain sees it; its text is borrowed
 * from the statement until it is stepped or reset. */
static void audit_entry_of(sqlite3_stmt *s, struct fmt_audit_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = sqlite3_column_int64(s, 0);
	e->at = sqlite3_column_int64(s, 1);
	e->event = (const char *)sqlite3_column_text(s, 2);
	e->event_len = e->event != NULL ? (size_t)sqlite3_column_bytes(s, 2) : 0;
	e->subject = (const char *)sqlite3_column_text(s, 3);
	e->subject_len = e->subject != NULL ? (size_t)sqlite3_column_bytes(s, 3) : 0;
	e->detail = (const char *)sqlite3_column_text(s, 4);
	e->detail_len = e->detail != NULL ? (size_t)sqlite3_column_bytes(s, 4) : 0;
	/* AUDIT_COLS (not migration 4's statement, older than both columns). */
	if (sqlite3_column_count(s) >= 8) {
		e->version = sqlite3_column_int(s, 7);
		e->actor = (const char *)sqlite3_column_text(s, 6);
		e->actor_len = e->actor != NULL ? (size_t)sqlite3_column_bytes(s, 6) : 0;
	}
}

/* Migration 4: number the audit rows already there 1..n in their order and
 * chain them (docs/store.md). One row at a time (seek past the last one
 * moved): rows only ever move to a lower, free seq. */
static enum idp_err chain_existing(struct srv_store *st, struct idp_error *err)
{
	uint8_t prev[FMT_AUDIT_HASH_LEN] = {0};
	int64_t last = 0, next = 1;
	for (;;) {
		const struct arg a[] = {INT(last)};
		sqlite3_stmt *s = NULL;
		enum idp_err rc = query_row(st, S_AUDIT_NEXT, a, NARGS(a), &s, err);
		if (rc == IDP_E_NOTFOUND)
			return IDP_OK;
		if (rc != IDP_OK)
			return rc;
		struct fmt_audit_entry e;
		audit_entry_of(s, &e);
		int64_t old = e.seq;
		e.seq = next;
		uint8_t h[FMT_AUDIT_HASH_LEN];
		rc = fmt_audit_hash(prev, &e, h, err);
		stmt_done(s);
		if (rc != IDP_OK)
			return rc;
		const struct arg u[] = {INT(old), INT(next), BLOB(h, sizeof(h))};
		rc = run(st, S_AUDIT_RESEQ, u, NARGS(u), "audit chain", err);
		if (rc != IDP_OK)
			return rc;
		memcpy(prev, h, sizeof(prev));
		last = next++;
	}
}

/* The head of the chain: its seq (0 for an empty log) and stored hash
 * (zeros when none, or when it is not 32 bytes: verify names that row). */
static enum idp_err audit_head(struct srv_store *st, int64_t *seq,
                               uint8_t hash[static FMT_AUDIT_HASH_LEN], struct idp_error *err)
{
	*seq = 0;
	memset(hash, 0, FMT_AUDIT_HASH_LEN);
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_AUDIT_HEAD, NULL, 0, &s, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	if (rc != IDP_OK)
		return rc;
	*seq = sqlite3_column_int64(s, 0);
	const void *b = sqlite3_column_blob(s, 1);
	if (b != NULL && sqlite3_column_bytes(s, 1) == (int)FMT_AUDIT_HASH_LEN)
		memcpy(hash, b, FMT_AUDIT_HASH_LEN);
	stmt_done(s);
	return IDP_OK;
}

enum idp_err srv_store_audit_append(struct srv_store *st, const struct srv_audit_event *ev,
                                    struct idp_error *err)
{
	enum idp_err rc = srv_store_check_audit(ev, err);
	if (rc != IDP_OK)
		return rc;
	const char *actor = ev->actor != NULL && ev->actor[0] != '\0' ? ev->actor
	                    : st->actor[0] != '\0'                      ? st->actor
	                                                                 : SRV_STORE_ACTOR_SERVER;
	/* Reading the head and appending must not interleave with another
	 * connection's append: alone, the call takes the write lock itself. */
	bool own_tx = !st->in_tx;
	if (own_tx && (rc = srv_store_begin(st, err)) != IDP_OK)
		return rc;
	int64_t head = 0;
	uint8_t prev[FMT_AUDIT_HASH_LEN], h[FMT_AUDIT_HASH_LEN];
	rc = audit_head(st, &head, prev, err);
	const struct fmt_audit_entry e = {
	        .seq = head + 1,
	        .at = ev->at,
	        .event = ev->event,
	        .event_len = strlen(ev->event),
	        .subject = ev->subject,
	        .subject_len = ev->subject != NULL ? strlen(ev->subject) : 0,
	        .detail = ev->detail,
	        .detail_len = ev->detail != NULL ? strlen(ev->detail) : 0,
	        .version = 2,
	        .actor = actor,
	        .actor_len = strlen(actor),
	};
	if (rc == IDP_OK)
		rc = fmt_audit_hash(prev, &e, h, err);
	if (rc == IDP_OK) {
		const struct arg a[] = {INT(e.seq),         INT(ev->at),          TEXT(ev->event),
		                        TEXT(ev->subject),  TEXT(ev->detail),     BLOB(h, sizeof(h)),
		                        TEXT(actor)};
		rc = run(st, S_AUDIT_APPEND, a, NARGS(a), "audit append", err);
	}
	if (own_tx) {
		if (rc == IDP_OK)
			return srv_store_commit(st, err);
		srv_store_rollback(st);
	}
	return rc;
}

/* Copy an audit row (AUDIT_COLS) into out. */
static enum idp_err audit_row(sqlite3_stmt *s, struct srv_audit_row *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	out->seq = sqlite3_column_int64(s, 0);
	out->at = sqlite3_column_int64(s, 1);
	enum idp_err rc = col_text(s, 2, out->event, sizeof(out->event), "audit event", err);
	if (rc == IDP_OK)
		rc = col_text(s, 3, out->subject, sizeof(out->subject), "audit subject", err);
	if (rc == IDP_OK)
		rc = col_text(s, 4, out->detail, sizeof(out->detail), "audit detail", err);
	if (rc == IDP_OK)
		rc = col_blob(s, 5, out->hash, sizeof(out->hash), &out->hash_len, "audit hash",
		              err);
	if (rc == IDP_OK)
		rc = col_text(s, 6, out->actor, sizeof(out->actor), "audit actor", err);
	out->version = sqlite3_column_int(s, 7);
	return rc;
}

enum idp_err srv_store_audit_foreach(struct srv_store *st, int64_t after_seq, int64_t limit,
                                     const char *subject,
                                     int (*fn)(void *ctx, const struct srv_audit_row *r),
                                     void *ctx, struct idp_error *err)
{
	const struct arg a[] = {INT(after_seq), INT(limit), TEXT(subject)};
	struct srv_audit_row row;
	struct rows it;
	if (subject == NULL)
		rows_start(&it, st, S_AUDIT_LIST, a, 2, "audit list", err);
	else
		rows_start(&it, st, S_AUDIT_LIST_SUBJECT, a, 3, "audit list", err);
	while (rows_next(&it, err)) {
		it.rc = audit_row(it.s, &row, err);
		if (it.rc != IDP_OK || fn(ctx, &row) != 0)
			break;
	}
	return rows_end(&it);
}

enum idp_err srv_store_audit_verify(struct srv_store *st, struct srv_audit_check *out,
                                    struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	/* One statement walks the whole log: one read transaction, so entries
	 * appended meanwhile by other connections are not half seen. */
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT " AUDIT_COLS " FROM audit ORDER BY seq", -1, &s,
	                       NULL) != SQLITE_OK)
		return db_error(st, "audit verify", err);
	uint8_t prev[FMT_AUDIT_HASH_LEN] = {0};
	enum idp_err rc = IDP_OK;
	int r;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		struct fmt_audit_entry e;
		audit_entry_of(s, &e);
		const void *stored = sqlite3_column_blob(s, 5);
		int stored_len = sqlite3_column_bytes(s, 5);
		uint8_t h[FMT_AUDIT_HASH_LEN];
		struct idp_error herr = {0};
		if (e.seq != out->head_seq + 1) {
			(void)snprintf(out->reason, sizeof(out->reason),
			               "entry %lld follows entry %lld: entries missing or inserted",
			               (long long)e.seq, (long long)out->head_seq);
		} else if (fmt_audit_hash(prev, &e, h, &herr) != IDP_OK) {
			(void)snprintf(out->reason, sizeof(out->reason), "entry %lld: %.100s",
			               (long long)e.seq, herr.msg);
		} else if (stored == NULL || stored_len != (int)FMT_AUDIT_HASH_LEN ||
		           CRYPTO_memcmp(stored, h, sizeof(h)) != 0) {
			(void)snprintf(out->reason, sizeof(out->reason),
			               "entry %lld: hash does not match (entry changed or moved, "
			               "or one before it removed)",
			               (long long)e.seq);
		} else {
			memcpy(prev, h, sizeof(prev));
			out->head_seq = e.seq;
			out->entries++;
			continue;
		}
		out->broken_seq = e.seq;
		break;
	}
	if (out->broken_seq == 0 && r != SQLITE_DONE)
		rc = db_error(st, "audit verify", err);
	memcpy(out->head_hash, prev, sizeof(prev));
	(void)sqlite3_finalize(s);
	return rc;
}

enum idp_err srv_store_group_count(struct srv_store *st, enum srv_store_group g,
                                   int (*fn)(void *ctx, const char *key, int64_t n), void *ctx,
                                   struct idp_error *err)
{
	static const enum stmt_id ids[] = {
	        [SRV_GROUP_AUDIT_EVENT] = S_GROUP_EVENT,
	        [SRV_GROUP_REFUSAL] = S_GROUP_REFUSAL,
	        [SRV_GROUP_FLAG_KIND] = S_GROUP_FLAG,
	        [SRV_GROUP_DEVICE_STATE] = S_GROUP_STATE,
	};
	if ((size_t)g >= sizeof(ids) / sizeof(ids[0]) || ids[g] == S_BEGIN)
		return idp_error_set(err, IDP_E_ARG, "store: unknown count group %d", (int)g);
	struct rows it;
	rows_start(&it, st, ids[g], NULL, 0, "count", err);
	while (rows_next(&it, err)) {
		char key[SRV_STORE_KIND_MAX + 1];
		it.rc = col_text(it.s, 0, key, sizeof(key), "count key", err);
		if (it.rc != IDP_OK || fn(ctx, key, sqlite3_column_int64(it.s, 1)) != 0)
			break;
	}
	return rows_end(&it);
}

enum idp_err srv_store_unprovisioned_foreach(struct srv_store *st, const struct srv_unprov_query *q,
                                             int (*fn)(void *ctx, const struct srv_unprov *u),
                                             void *ctx, struct idp_error *err)
{
	const struct arg a[] = {INT(q->imported_before), TEXT(q->batch_id), TEXT(q->after_id),
	                        INT(q->limit)};
	struct rows it;
	rows_start(&it, st, S_UNPROVISIONED, a, NARGS(a), "unprovisioned", err);
	while (rows_next(&it, err)) {
		sqlite3_stmt *s = it.s;
		enum idp_err rc;
		struct srv_unprov u;
		memset(&u, 0, sizeof(u));
		char state[16] = "";
		rc = col_text(s, 0, u.id, sizeof(u.id), "device id", err);
		if (rc == IDP_OK)
			rc = col_text(s, 1, state, sizeof(state), "device state", err);
		if (rc == IDP_OK)
			rc = col_text(s, 2, u.batch_id, sizeof(u.batch_id), "batch id", err);
		if (rc == IDP_OK)
			rc = col_text(s, 3, u.station_id, sizeof(u.station_id), "station id", err);
		u.state = strcmp(state, "pending") == 0 ? SRV_DEV_PENDING : SRV_DEV_PRELOADED;
		u.imported_at = sqlite3_column_int64(s, 4);
		u.attempts = sqlite3_column_int64(s, 5);
		it.rc = rc;
		if (rc != IDP_OK || fn(ctx, &u) != 0)
			break;
	}
	return rows_end(&it);
}

/* ---------------------------------------------------------------- digest */

/* Hash every row of table name into md. */
static enum idp_err digest_table(struct srv_store *st, EVP_MD_CTX *md, const char *name,
                                 struct idp_error *err)
{
	char sql[128];
	int n = snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\" ORDER BY 1", name);
	if (n < 0 || (size_t)n >= sizeof(sql))
		return idp_error_set(err, IDP_E_LIMIT, "store: table name too long");
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return db_error(st, "digest", err);
	enum idp_err rc = IDP_OK;
	if (EVP_DigestUpdate(md, sql, (size_t)n) != 1)
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "store: digest");
	int r;
	while (rc == IDP_OK && (r = sqlite3_step(s)) == SQLITE_ROW) {
		for (int c = 0; rc == IDP_OK && c < sqlite3_column_count(s); c++) {
			const void *b = sqlite3_column_blob(s, c);
			int len = sqlite3_column_bytes(s, c);
			const uint8_t sep[2] = {0xff, (uint8_t)sqlite3_column_type(s, c)};
			if (EVP_DigestUpdate(md, sep, sizeof(sep)) != 1 ||
			    (b != NULL && len > 0 && EVP_DigestUpdate(md, b, (size_t)len) != 1))
				rc = idp_error_ssl(err, IDP_E_CRYPTO, "store: digest");
		}
	}
	if (rc == IDP_OK && r != SQLITE_DONE)
		rc = db_error(st, "digest", err);
	(void)sqlite3_finalize(s);
	return rc;
}

enum idp_err srv_store_digest(struct srv_store *st, uint8_t out[static 32], struct idp_error *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	sqlite3_stmt *tables = NULL;
	enum idp_err rc = IDP_OK;
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return idp_error_ssl(err, IDP_E_CRYPTO, "store: digest");
	}
	if (sqlite3_prepare_v2(st->db,
	                       "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
	                       -1, &tables, NULL) != SQLITE_OK)
		rc = db_error(st, "digest", err);
	int r = SQLITE_DONE;
	while (rc == IDP_OK && (r = sqlite3_step(tables)) == SQLITE_ROW)
		rc = digest_table(st, md, (const char *)sqlite3_column_text(tables, 0), err);
	if (rc == IDP_OK && r != SQLITE_DONE)
		rc = db_error(st, "digest", err);
	(void)sqlite3_finalize(tables);
	unsigned len = 0;
	if (rc == IDP_OK && EVP_DigestFinal_ex(md, out, &len) != 1)
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "store: digest");
	EVP_MD_CTX_free(md);
	return rc;
}

/* ---------------------------------------------------------------- snapshot */

enum idp_err srv_store_snapshot(struct srv_store *st, const char *path, struct idp_error *err)
{
	if (st->in_tx || !sqlite3_get_autocommit(st->db))
		return idp_error_set(err, IDP_E_ARG, "store: snapshot inside a transaction");
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "VACUUM INTO ?1", -1, &s, NULL) != SQLITE_OK)
		return db_error(st, "snapshot", err);
	enum idp_err rc = IDP_OK;
	if (sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE)
		rc = db_error(st, "snapshot", err);
	(void)sqlite3_finalize(s);
	return rc;
}

/* ---------------------------------------------------------------- listings */

enum idp_err srv_store_station_foreach(struct srv_store *st,
                                       int (*fn)(void *ctx, const struct srv_station *s),
                                       void *ctx, struct idp_error *err)
{
	return srv_store_station_page(st, NULL, -1, fn, ctx, err);
}

enum idp_err srv_store_station_page(struct srv_store *st, const char *after_id, int64_t limit,
                                    int (*fn)(void *ctx, const struct srv_station *s), void *ctx,
                                    struct idp_error *err)
{
	const struct arg a[] = {TEXT(after_id != NULL ? after_id : ""), INT(limit)};
	struct rows it;
	rows_start(&it, st, S_STATION_PAGE, a, NARGS(a), "station list", err);
	while (rows_next(&it, err)) {
		struct srv_station row;
		memset(&row, 0, sizeof(row));
		it.rc = station_row(it.s, &row, err);
		if (it.rc != IDP_OK || fn(ctx, &row) != 0)
			break;
	}
	return rows_end(&it);
}

enum idp_err srv_store_device_foreach(struct srv_store *st, enum srv_device_state state,
                                      const char *after_id, int64_t limit,
                                      int (*fn)(void *ctx, const struct srv_device *d), void *ctx,
                                      struct idp_error *err)
{
	const struct arg a[] = {TEXT(after_id != NULL ? after_id : ""), INT(limit),
	                        TEXT(srv_device_state_name(state))};
	struct rows it;
	if (state == 0)
		rows_start(&it, st, S_DEVICE_LIST, a, 2, "device list", err);
	else
		rows_start(&it, st, S_DEVICE_LIST_STATE, a, 3, "device list", err);
	while (rows_next(&it, err)) {
		struct srv_device row;
		memset(&row, 0, sizeof(row));
		it.rc = device_row(it.s, &row, err);
		if (it.rc != IDP_OK || fn(ctx, &row) != 0)
			break;
	}
	return rows_end(&it);
}

enum idp_err srv_store_flag_foreach(struct srv_store *st, const struct srv_flag_query *q,
                                    int (*fn)(void *ctx, const struct srv_flag *f), void *ctx,
                                    struct idp_error *err)
{
	const struct arg a[] = {INT(q->before_seq), INT(q->limit), TEXT(q->kind), TEXT(q->subject),
	                        INT(q->resolved ? 1 : 0)};
	struct rows it;
	rows_start(&it, st, S_FLAG_LIST, a, NARGS(a), "flag list", err);
	while (rows_next(&it, err)) {
		struct srv_flag row;
		it.rc = flag_row(it.s, &row, err);
		if (it.rc != IDP_OK || fn(ctx, &row) != 0)
			break;
	}
	return rows_end(&it);
}

/* ---------------------------------------------------------------- actor, credentials, oob */

void srv_store_set_actor(struct srv_store *st, const char *actor)
{
	st->actor[0] = '\0';
	if (actor != NULL && strnlen(actor, SRV_STORE_ACTOR_MAX + 1) <= SRV_STORE_ACTOR_MAX)
		(void)snprintf(st->actor, sizeof(st->actor), "%s", actor);
}

void srv_store_set_busy_ms(struct srv_store *st, int ms)
{
	(void)sqlite3_busy_timeout(st->db, ms); /* 0 removes the handler: fail at once */
	st->was_busy = false;
}

bool srv_store_was_busy(const struct srv_store *st)
{
	return st->was_busy;
}

static const char *const cred_roles[] = {
        [SRV_ROLE_VIEWER] = "viewer",
        [SRV_ROLE_ADMIN] = "admin",
};

const char *srv_role_name(enum srv_role r)
{
	return r == SRV_ROLE_VIEWER || r == SRV_ROLE_ADMIN ? cred_roles[r] : "none";
}

bool srv_role_parse(const char *s, enum srv_role *out)
{
	for (size_t i = 1; i < sizeof(cred_roles) / sizeof(cred_roles[0]); i++)
		if (s != NULL && strcmp(s, cred_roles[i]) == 0) {
			*out = (enum srv_role)i;
			return true;
		}
	return false;
}

/* The index key of a credential hash: its first 8 bytes. */
static int64_t cred_lookup(const uint8_t hash[static SRV_STORE_CRED_HASH_LEN])
{
	uint64_t v = 0;
	for (size_t i = 0; i < 8; i++)
		v = v << 8 | hash[i];
	return (int64_t)(v >> 1); /* non-negative, so it prints plainly in the SQLite CLI */
}

static enum idp_err cred_row(sqlite3_stmt *s, struct srv_credential *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	char role[16];
	size_t hl = 0;
	enum idp_err rc = col_text(s, 0, out->name, sizeof(out->name), "credential name", err);
	if (rc == IDP_OK)
		rc = col_text(s, 1, role, sizeof(role), "credential role", err);
	if (rc == IDP_OK && !srv_role_parse(role, &out->role))
		rc = idp_error_set(err, IDP_E_FORMAT, "store: credential %s: unknown role", out->name);
	if (rc == IDP_OK)
		rc = col_blob(s, 2, out->hash, sizeof(out->hash), &hl, "credential hash", err);
	if (rc == IDP_OK && hl != SRV_STORE_CRED_HASH_LEN)
		rc = idp_error_set(err, IDP_E_FORMAT, "store: credential %s: hash is %zu bytes",
		                   out->name, hl);
	out->created_at = sqlite3_column_int64(s, 3);
	out->revoked_at = sqlite3_column_int64(s, 4);
	return rc;
}

enum idp_err srv_store_credential_add(struct srv_store *st, const struct srv_credential *c,
                                      struct idp_error *err)
{
	enum idp_err rc =
	        srv_store_check_text(c->name, SRV_STORE_CRED_NAME_MAX, true, "credential name", err);
	if (rc != IDP_OK)
		return rc;
	if (c->role != SRV_ROLE_VIEWER && c->role != SRV_ROLE_ADMIN)
		return idp_error_set(err, IDP_E_ARG, "store: credential %s: no role", c->name);
	const struct arg a[] = {TEXT(c->name), TEXT(cred_roles[c->role]), INT(cred_lookup(c->hash)),
	                        BLOB(c->hash, sizeof(c->hash)), INT(c->created_at)};
	rc = run(st, S_CRED_ADD, a, NARGS(a), "credential add", err);
	if (rc == IDP_E_DUPLICATE)
		rc = idp_error_set(err, IDP_E_DUPLICATE,
		                   "credential %s: the name is taken (also by a revoked credential: "
		                   "names stay unique in the audit log)",
		                   c->name);
	return rc;
}

enum idp_err srv_store_credential_find(struct srv_store *st,
                                       const uint8_t hash[static SRV_STORE_CRED_HASH_LEN],
                                       struct srv_credential *out, struct idp_error *err)
{
	const struct arg a[] = {INT(cred_lookup(hash))};
	bool found = false;
	struct rows it;
	rows_start(&it, st, S_CRED_FIND, a, NARGS(a), "credential find", err);
	while (!found && rows_next(&it, err)) {
		it.rc = cred_row(it.s, out, err);
		/* WARNING: the whole hash in constant time; the index only narrows. */
		found = it.rc == IDP_OK &&
		        CRYPTO_memcmp(out->hash, hash, SRV_STORE_CRED_HASH_LEN) == 0;
	}
	enum idp_err rc = rows_end(&it);
	if (rc == IDP_OK && !found) {
		memset(out, 0, sizeof(*out));
		rc = IDP_E_NOTFOUND;
	}
	return rc;
}

enum idp_err srv_store_credential_by_name(struct srv_store *st, const char *name,
                                          struct srv_credential *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	const struct arg a[] = {TEXT(name)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_CRED_BY_NAME, a, NARGS(a), &s, err);
	if (rc != IDP_OK)
		return rc;
	rc = cred_row(s, out, err);
	stmt_done(s);
	return rc;
}

enum idp_err srv_store_credential_revoke(struct srv_store *st, const char *name, int64_t now,
                                         struct idp_error *err)
{
	const struct arg a[] = {TEXT(name), INT(now)};
	enum idp_err rc = run(st, S_CRED_REVOKE, a, NARGS(a), "credential revoke", err);
	if (rc == IDP_OK && sqlite3_changes(st->db) == 0)
		rc = idp_error_set(err, IDP_E_NOTFOUND, "credential %s: none such, or already revoked",
		                   name);
	return rc;
}

enum idp_err srv_store_credential_foreach(struct srv_store *st,
                                          int (*fn)(void *ctx, const struct srv_credential *c),
                                          void *ctx, struct idp_error *err)
{
	return srv_store_credential_page(st, NULL, -1, fn, ctx, err);
}

enum idp_err srv_store_credential_page(struct srv_store *st, const char *after, int64_t limit,
                                       int (*fn)(void *ctx, const struct srv_credential *c),
                                       void *ctx, struct idp_error *err)
{
	const struct arg a[] = {TEXT(after), INT(limit)};
	struct rows it;
	rows_start(&it, st, S_CRED_LIST, a, NARGS(a), "credential list", err);
	while (rows_next(&it, err)) {
		struct srv_credential c;
		it.rc = cred_row(it.s, &c, err);
		OPENSSL_cleanse(c.hash, sizeof(c.hash));
		if (it.rc != IDP_OK || fn(ctx, &c) != 0)
			break;
	}
	return rows_end(&it);
}

static enum idp_err oob_row(sqlite3_stmt *s, struct srv_oob *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	size_t vl = 0;
	enum idp_err rc = col_text(s, 0, out->device_id, sizeof(out->device_id), "oob device", err);
	if (rc == IDP_OK)
		rc = col_blob(s, 1, out->verifier, sizeof(out->verifier), &vl, "oob verifier", err);
	if (rc == IDP_OK && vl != sizeof(out->verifier))
		rc = idp_error_set(err, IDP_E_FORMAT, "store: oob %s: verifier is %zu bytes",
		                   out->device_id, vl);
	out->created_at = sqlite3_column_int64(s, 2);
	out->expires_at = sqlite3_column_int64(s, 3);
	out->used_at = sqlite3_column_int64(s, 4);
	out->failures = sqlite3_column_int64(s, 5);
	return rc;
}

enum idp_err srv_store_oob_put(struct srv_store *st, const struct srv_oob *o,
                               struct idp_error *err)
{
	enum idp_err rc =
	        srv_store_check_text(o->device_id, SRV_STORE_ID_MAX, true, "oob device", err);
	if (rc != IDP_OK)
		return rc;
	const struct arg a[] = {TEXT(o->device_id), BLOB(o->verifier, sizeof(o->verifier)),
	                        INT(o->created_at), INT(o->expires_at)};
	return run(st, S_OOB_PUT, a, NARGS(a), "oob put", err);
}

enum idp_err srv_store_oob_get(struct srv_store *st, const char *device_id, struct srv_oob *out,
                               struct idp_error *err)
{
	const struct arg a[] = {TEXT(device_id)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_OOB_GET, a, NARGS(a), &s, err);
	if (rc == IDP_E_NOTFOUND)
		return idp_error_set(err, IDP_E_NOTFOUND, "oob %s: no secret", device_id);
	if (rc != IDP_OK)
		return rc;
	rc = oob_row(s, out, err);
	stmt_done(s);
	if (rc != IDP_OK)
		OPENSSL_cleanse(out->verifier, sizeof(out->verifier));
	return rc;
}

enum idp_err srv_store_oob_use(struct srv_store *st, const char *device_id, int64_t now,
                               struct idp_error *err)
{
	const struct arg a[] = {TEXT(device_id), INT(now)};
	enum idp_err rc = run(st, S_OOB_USE, a, NARGS(a), "oob use", err);
	if (rc == IDP_OK && sqlite3_changes(st->db) == 0)
		rc = idp_error_set(err, IDP_E_CONFLICT, "oob %s: already used", device_id);
	return rc;
}

enum idp_err srv_store_oob_fail(struct srv_store *st, const char *device_id,
                                struct idp_error *err)
{
	const struct arg a[] = {TEXT(device_id)};
	return run(st, S_OOB_FAIL, a, NARGS(a), "oob failure", err);
}

enum idp_err srv_store_oob_foreach(struct srv_store *st, const char *after, int64_t limit,
                                   int (*fn)(void *ctx, const struct srv_oob *o), void *ctx,
                                   struct idp_error *err)
{
	const struct arg a[] = {TEXT(after), INT(limit)};
	struct rows it;
	rows_start(&it, st, S_OOB_LIST, a, NARGS(a), "oob list", err);
	while (rows_next(&it, err)) {
		struct srv_oob o;
		it.rc = oob_row(it.s, &o, err);
		OPENSSL_cleanse(o.verifier, sizeof(o.verifier));
		if (it.rc != IDP_OK || fn(ctx, &o) != 0)
			break;
	}
	return rows_end(&it);
}

/* ---------------------------------------------------------------- site and checkpoints */

/* Statements of this block are prepared per call (they run rarely: admin
 * actions, a rogue sighting, one checkpoint an interval), bound as
 * stmt_bound binds; the caller finalizes *out. */
static enum idp_err prep(struct srv_store *st, const char *sql, const struct arg *args, size_t n,
                         sqlite3_stmt **out, struct idp_error *err)
{
	*out = NULL;
	if (sqlite3_prepare_v2(st->db, sql, -1, out, NULL) != SQLITE_OK)
		return db_error(st, "prepare", err);
	for (size_t i = 0; i < n; i++) {
		if (bind_arg(*out, (int)i + 1, &args[i]) != SQLITE_OK) {
			enum idp_err rc = db_error(st, "bind", err);
			(void)sqlite3_finalize(*out);
			*out = NULL;
			return rc;
		}
	}
	return IDP_OK;
}

/* Run sql with args to completion; *changes (may be NULL) the rows changed. */
static enum idp_err prep_run(struct srv_store *st, const char *sql, const struct arg *args,
                             size_t n, const char *what, int *changes, struct idp_error *err)
{
	sqlite3_stmt *s = NULL;
	enum idp_err rc = prep(st, sql, args, n, &s, err);
	if (rc != IDP_OK)
		return rc;
	int r = sqlite3_step(s);
	if (r != SQLITE_DONE && r != SQLITE_ROW)
		rc = db_error(st, what, err);
	else if (changes != NULL)
		*changes = sqlite3_changes(st->db);
	(void)sqlite3_finalize(s);
	return rc;
}

enum idp_err srv_store_suspension_get(struct srv_store *st, struct srv_suspension *out,
                                      struct idp_error *err)
{
	/* Outside a transaction (also the implicit one of a statement still
	 * stepping, whose snapshot may be older), with no change in flight
	 * since it was read, the cached value is the committed one (see
	 * susp_epoch). */
	bool outside = !st->in_tx && sqlite3_get_autocommit(st->db);
	for (sqlite3_stmt *p = sqlite3_next_stmt(st->db, NULL); outside && p != NULL;
	     p = sqlite3_next_stmt(st->db, p))
		outside = sqlite3_stmt_busy(p) == 0;
	uint64_t epoch = atomic_load(&susp_epoch);
	bool quiet = outside && atomic_load(&susp_writers) == 0;
	if (quiet && st->susp_cached && st->susp_seen == epoch) {
		*out = st->susp;
		return IDP_OK;
	}
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *s = NULL;
	enum idp_err rc = query_row(st, S_SUSPENSION_GET, NULL, 0, &s, err);
	if (rc == IDP_E_NOTFOUND) {
		rc = IDP_OK; /* never suspended */
	} else if (rc == IDP_OK) {
		out->suspended = sqlite3_column_int64(s, 0) != 0;
		rc = col_text(s, 1, out->reason, sizeof(out->reason), "suspension reason", err);
		out->since = sqlite3_column_int64(s, 2);
		stmt_done(s);
	}
	/* Kept only when no change began or ended while it was read. */
	st->susp_cached = rc == IDP_OK && quiet && atomic_load(&susp_writers) == 0 &&
	                  atomic_load(&susp_epoch) == epoch;
	if (st->susp_cached) {
		st->susp = *out;
		st->susp_seen = epoch;
	}
	return rc;
}

enum idp_err srv_store_suspension_set(struct srv_store *st, bool suspended, const char *reason,
                                      int64_t now, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_text(reason, SRV_STORE_DETAIL_MAX, false, "suspension reason", err);
	const struct arg a[] = {INT(suspended ? 1 : 0), TEXT(reason), INT(now)};
	/* Every cache is stale from before the write until the transaction
	 * ends (susp_tx_ended; at once without one). */
	bool alone = !st->in_tx;
	if (rc == IDP_OK && !st->susp_writing) {
		st->susp_writing = true;
		(void)atomic_fetch_add(&susp_writers, 1);
	}
	if (rc == IDP_OK)
		rc = prep_run(st,
		              "INSERT INTO site_state (id, suspended, reason, since) "
		              "VALUES (1, ?1, ?2, ?3) ON CONFLICT (id) DO UPDATE SET "
		              "suspended = excluded.suspended, reason = excluded.reason, "
		              "since = excluded.since",
		              a, NARGS(a), "suspension", NULL, err);
	if (alone)
		susp_tx_ended(st);
	return rc;
}

enum idp_err srv_store_allow_add(struct srv_store *st, const char *entry, int64_t now,
                                 struct idp_error *err)
{
	enum idp_err rc = srv_store_check_text(entry, SRV_STORE_ALLOW_MAX, true, "allow entry", err);
	const struct arg a[] = {TEXT(entry), INT(now)};
	if (rc == IDP_OK)
		rc = prep_run(st, "INSERT INTO site_allow (entry, added_at) VALUES (?1, ?2)", a,
		              NARGS(a), "allow add", NULL, err);
	if (rc == IDP_E_DUPLICATE)
		rc = idp_error_set(err, IDP_E_DUPLICATE, "allow: %s is already on the list", entry);
	return rc;
}

enum idp_err srv_store_allow_remove(struct srv_store *st, const char *entry, struct idp_error *err)
{
	enum idp_err rc = srv_store_check_text(entry, SRV_STORE_ALLOW_MAX, true, "allow entry", err);
	const struct arg a[] = {TEXT(entry)};
	int changes = 0;
	if (rc == IDP_OK)
		rc = prep_run(st, "DELETE FROM site_allow WHERE entry = ?1", a, NARGS(a),
		              "allow remove", &changes, err);
	if (rc == IDP_OK && changes == 0)
		rc = idp_error_set(err, IDP_E_NOTFOUND, "allow: %s is not on the list", entry);
	return rc;
}

enum idp_err srv_store_allow_foreach(struct srv_store *st,
                                     int (*fn)(void *ctx, const char *entry, int64_t added_at),
                                     void *ctx, struct idp_error *err)
{
	return srv_store_allow_page(st, NULL, -1, fn, ctx, err);
}

enum idp_err srv_store_allow_page(struct srv_store *st, const char *after, int64_t limit,
                                  int (*fn)(void *ctx, const char *entry, int64_t added_at),
                                  void *ctx, struct idp_error *err)
{
	const struct arg a[] = {TEXT(after), INT(limit)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = prep(st,
	                       "SELECT entry, added_at FROM site_allow "
	                       "WHERE entry > coalesce(?1, '') ORDER BY entry LIMIT ?2",
	                       a, NARGS(a), &s, err);
	char entry[SRV_STORE_ALLOW_MAX + 1];
	while (rc == IDP_OK) {
		int r = sqlite3_step(s);
		if (r == SQLITE_DONE)
			break;
		if (r != SQLITE_ROW) {
			rc = db_error(st, "allow list", err);
			break;
		}
		rc = col_text(s, 0, entry, sizeof(entry), "allow entry", err);
		if (rc == IDP_OK && fn(ctx, entry, sqlite3_column_int64(s, 1)) != 0)
			break;
	}
	(void)sqlite3_finalize(s);
	return rc;
}

enum idp_err srv_store_audit_head(struct srv_store *st, int64_t *seq,
                                  uint8_t hash[static SRV_STORE_HASH_LEN], struct idp_error *err)
{
	return audit_head(st, seq, hash, err);
}

enum idp_err srv_store_checkpoint_add(struct srv_store *st, const struct srv_checkpoint *c,
                                      struct idp_error *err)
{
	const struct arg a[] = {INT(c->n),    INT(c->seq),           INT(c->at),
	                        BLOB(c->hash, sizeof(c->hash)), TEXT(c->key_id),
	                        BLOB(c->sig, c->sig_len)};
	return prep_run(st,
	                "INSERT INTO audit_checkpoints (n, seq, at, hash, key_id, sig) "
	                "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	                a, NARGS(a), "checkpoint add", NULL, err);
}

static enum idp_err checkpoint_row(sqlite3_stmt *s, struct srv_checkpoint *c,
                                   struct idp_error *err)
{
	memset(c, 0, sizeof(*c));
	c->n = sqlite3_column_int64(s, 0);
	c->seq = sqlite3_column_int64(s, 1);
	c->at = sqlite3_column_int64(s, 2);
	enum idp_err rc = col_blob(s, 3, c->hash, sizeof(c->hash), &c->hash_len,
	                           "checkpoint hash", err);
	if (rc == IDP_OK)
		rc = col_text(s, 4, c->key_id, sizeof(c->key_id), "checkpoint key_id", err);
	if (rc == IDP_OK)
		rc = col_blob(s, 5, c->sig, sizeof(c->sig), &c->sig_len, "checkpoint sig", err);
	return rc;
}

enum idp_err srv_store_checkpoint_foreach(struct srv_store *st, int64_t after_n, int64_t limit,
                                          int (*fn)(void *ctx, const struct srv_checkpoint *c),
                                          void *ctx, struct idp_error *err)
{
	const struct arg a[] = {INT(after_n), INT(limit)};
	sqlite3_stmt *s = NULL;
	enum idp_err rc = prep(st,
	                       "SELECT n, seq, at, hash, key_id, sig FROM audit_checkpoints "
	                       "WHERE n > ?1 ORDER BY n LIMIT ?2",
	                       a, NARGS(a), &s, err);
	struct srv_checkpoint c;
	while (rc == IDP_OK) {
		int r = sqlite3_step(s);
		if (r == SQLITE_DONE)
			break;
		if (r != SQLITE_ROW) {
			rc = db_error(st, "checkpoint list", err);
			break;
		}
		rc = checkpoint_row(s, &c, err);
		if (rc == IDP_OK && fn(ctx, &c) != 0)
			break;
	}
	(void)sqlite3_finalize(s);
	return rc;
}

enum idp_err srv_store_checkpoint_last(struct srv_store *st, struct srv_checkpoint *out,
                                       struct idp_error *err)
{
	sqlite3_stmt *s = NULL;
	enum idp_err rc = prep(st,
	                       "SELECT n, seq, at, hash, key_id, sig FROM audit_checkpoints "
	                       "ORDER BY n DESC LIMIT 1",
	                       NULL, 0, &s, err);
	if (rc != IDP_OK)
		return rc;
	int r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		rc = checkpoint_row(s, out, err);
	else if (r == SQLITE_DONE)
		rc = IDP_E_NOTFOUND;
	else
		rc = db_error(st, "checkpoint", err);
	(void)sqlite3_finalize(s);
	return rc;
}
