/*
 * test_store.c - store.h on real SQLite files in a temporary directory:
 * migration from empty and re-open, a newer schema refused, each table's
 * calls, single-use tokens and nonces across connections, a transaction that
 * fails midway leaves the database unchanged, and a process killed with
 * SIGKILL in the middle of a large transaction (or of its commit) leaves
 * nothing half-done.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "server/store.h"
#include "tests/unit/check_main.h"

static char dir[64];
static char db_path[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/idp-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(db_path, sizeof(db_path), "%s/idprov.db", dir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct srv_store *open_ok(void)
{
	struct srv_store *st = NULL;
	struct idp_error err = {0};
	enum idp_err rc = srv_store_open(db_path, &st, &err);
	ck_assert_msg(rc == IDP_OK, "open: %s", err.msg);
	return st;
}

/* The store's digest of the database, through a connection of its own. */
static void db_digest(uint8_t out[32])
{
	struct srv_store *st = NULL;
	ck_assert_int_eq(srv_store_open(db_path, &st, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_digest(st, out, NULL), IDP_OK);
	srv_store_close(st);
}

/* A raw one-integer query, for checks the store API does not offer. */
static int64_t raw_int(const char *sql)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_stmt *s = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void make_device(struct srv_device *d, unsigned i, const char *batch)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "dev-%06u", i);
	snprintf(d->serial, sizeof(d->serial), "SN%08u", i);
	snprintf(d->mac, sizeof(d->mac), "02:00:00:%02x:%02x:%02x", (i >> 16) & 0xff,
	         (i >> 8) & 0xff, i & 0xff);
	d->pubkey_len = 91;
	memset(d->pubkey, 0x30, d->pubkey_len);
	memcpy(d->pubkey + 80, &i, sizeof(i));
	d->state = SRV_DEV_PRELOADED;
	if (batch != NULL)
		snprintf(d->batch_id, sizeof(d->batch_id), "%s", batch);
	d->created_at = d->updated_at = 1700000000;
}

static void make_batch(struct srv_batch *b, const char *id, int64_t seq, int64_t count)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->id, sizeof(b->id), "%s", id);
	snprintf(b->station_id, sizeof(b->station_id), "station-1");
	snprintf(b->product, sizeof(b->product), "sensor-x");
	b->sequence = seq;
	memset(b->hash, (int)seq, sizeof(b->hash));
	b->has_prev = seq > 1;
	if (b->has_prev)
		memset(b->prev_hash, (int)(seq - 1), sizeof(b->prev_hash));
	b->device_count = count;
	b->imported_at = 1700000000;
	b->state = SRV_BATCH_IMPORTED;
}

/* Group commit: a joined connection's commits, in a transaction or not, are
 * counted, a rollback and another connection's commits are not; nothing is
 * durable before a flush and all counted commits are after it; the WAL hook
 * still runs the automatic checkpoint (the database file grows). */
START_TEST(test_store_group_commit_counts_flushes_and_checkpoints)
{
	struct srv_store_sync *g = NULL;
	struct idp_error err = {0};
	ck_assert_msg(srv_store_sync_new(db_path, &g, &err) == IDP_OK, "%s", err.msg);
	struct srv_store *st = open_ok(), *other = open_ok();
	ck_assert_int_eq(srv_store_sync_join(st, g, NULL), IDP_OK);
	ck_assert_uint_eq(srv_store_sync_committed(g), 0);
	struct srv_device d;
	make_device(&d, 1, NULL);
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	ck_assert_uint_eq(srv_store_sync_committed(g), 1);
	ck_assert_int_eq(srv_store_begin(st, NULL), IDP_OK);
	make_device(&d, 2, NULL);
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_commit(st, NULL), IDP_OK);
	ck_assert_uint_eq(srv_store_sync_committed(g), 2);
	ck_assert_int_eq(srv_store_begin(st, NULL), IDP_OK);
	make_device(&d, 3, NULL);
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	srv_store_rollback(st);
	make_device(&d, 4, NULL);
	ck_assert_int_eq(srv_store_device_insert(other, &d, NULL), IDP_OK);
	ck_assert_uint_eq(srv_store_sync_committed(g), 2);
	ck_assert_uint_eq(srv_store_sync_durable(g), 0);
	uint64_t durable = 0;
	ck_assert_msg(srv_store_sync_flush(g, &durable, &err) == IDP_OK, "%s", err.msg);
	ck_assert_uint_eq(durable, 2);
	ck_assert_uint_eq(srv_store_sync_durable(g), 2);
	ck_assert_uint_eq(srv_store_sync_flushes(g), 1);
	struct srv_device got;
	ck_assert_int_eq(srv_store_device_get(other, "dev-000002", &got, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_device_get(other, "dev-000003", &got, NULL), IDP_E_NOTFOUND);
	/* Without the checkpoint the rows would all stay in the WAL. */
	struct stat before, after;
	ck_assert_int_eq(stat(db_path, &before), 0);
	for (unsigned i = 10; i < 1500; i++) {
		make_device(&d, i, NULL);
		ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	}
	ck_assert_uint_eq(srv_store_sync_committed(g), 2 + 1490);
	ck_assert_int_eq(stat(db_path, &after), 0);
	ck_assert_int_gt(after.st_size, before.st_size);
	ck_assert_int_eq(srv_store_sync_flush(g, &durable, NULL), IDP_OK);
	ck_assert_uint_eq(durable, 2 + 1490);
	srv_store_close(st);
	srv_store_close(other);
	srv_store_sync_free(g);
}
END_TEST

START_TEST(test_store_open_migrates_from_empty_and_reopens)
{
	umask(022);
	struct srv_store *st = open_ok();
	int64_t v = 0;
	ck_assert_int_eq(srv_store_schema_version(st, &v, NULL), IDP_OK);
	ck_assert_int_eq(v, srv_store_schema_latest());
	ck_assert_int_ge(v, 1);
	struct srv_device d;
	make_device(&d, 1, NULL);
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	srv_store_close(st);

	struct stat sb;
	ck_assert_int_eq(stat(db_path, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 0777, 0600);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	sqlite3_stmt *s = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(db);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM schema_migrations"),
	                 srv_store_schema_latest());

	/* Re-open: no migration runs again, the data is there. */
	st = open_ok();
	ck_assert_int_eq(srv_store_schema_version(st, &v, NULL), IDP_OK);
	ck_assert_int_eq(v, srv_store_schema_latest());
	struct srv_device got;
	ck_assert_int_eq(srv_store_device_get(st, "dev-000001", &got, NULL), IDP_OK);
	ck_assert_str_eq(got.serial, "SN00000001");
	ck_assert_int_eq(got.state, SRV_DEV_PRELOADED);
	srv_store_close(st);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM schema_migrations"),
	                 srv_store_schema_latest());
}
END_TEST

START_TEST(test_store_open_refuses_newer_schema)
{
	srv_store_close(open_ok());
	ck_assert_int_eq(raw_int("INSERT INTO schema_migrations VALUES (999, 0) RETURNING 1"), 1);
	struct srv_store *st = (struct srv_store *)1;
	struct idp_error err = {0};
	ck_assert_int_eq(srv_store_open(db_path, &st, &err), IDP_E_UNSUPPORTED);
	ck_assert_ptr_null(st);
	ck_assert_ptr_nonnull(strstr(err.msg, "999"));

	/* Not a database at all. */
	FILE *f = fopen(db_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not an sqlite database, but long enough to look like one..........", f);
	fclose(f);
	ck_assert_int_eq(chmod(db_path, 0600), 0);
	ck_assert_int_ne(srv_store_open(db_path, &st, &err), IDP_OK);
	ck_assert_ptr_null(st);
}
END_TEST

/* Expect srv_store_open to refuse with IDP_E_DENIED and a message holding want. */
static void expect_refused(const char *want)
{
	struct srv_store *st = (struct srv_store *)1;
	struct idp_error err = {0};
	ck_assert_int_eq(srv_store_open(db_path, &st, &err), IDP_E_DENIED);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err.msg, want) != NULL, "%s", err.msg);
}

START_TEST(test_store_open_refuses_symlink_and_loose_modes)
{
	srv_store_close(open_ok());
	uint8_t before[32], after[32];
	db_digest(before);

	/* The database readable by others, then its -wal. */
	ck_assert_int_eq(chmod(db_path, 0644), 0);
	expect_refused("mode 644 lets others read or write it");
	ck_assert_int_eq(chmod(db_path, 0600), 0);
	char side[160];
	snprintf(side, sizeof(side), "%s-wal", db_path);
	FILE *f = fopen(side, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(chmod(side, 0660), 0);
	expect_refused("-wal: mode 660");
	ck_assert_int_eq(unlink(side), 0);

	/* A symbolic link to a good database. */
	char real[160];
	snprintf(real, sizeof(real), "%s/real.db", dir);
	ck_assert_int_eq(rename(db_path, real), 0);
	ck_assert_int_eq(symlink(real, db_path), 0);
	expect_refused("is a symbolic link");
	ck_assert_int_eq(unlink(db_path), 0);
	ck_assert_int_eq(rename(real, db_path), 0);

	/* A directory in its place. */
	char moved[160];
	snprintf(moved, sizeof(moved), "%s/moved.db", dir);
	ck_assert_int_eq(rename(db_path, moved), 0);
	ck_assert_int_eq(mkdir(db_path, 0700), 0);
	expect_refused("not a regular file");
	ck_assert_int_eq(rmdir(db_path), 0);
	ck_assert_int_eq(rename(moved, db_path), 0);

	/* Refusals changed nothing; a new database is 0600 even under umask 0. */
	db_digest(after);
	ck_assert_mem_eq(before, after, 32);
	snprintf(db_path, sizeof(db_path), "%s/fresh.db", dir);
	mode_t old = umask(0);
	srv_store_close(open_ok());
	umask(old);
	struct stat sb;
	ck_assert_int_eq(stat(db_path, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 0777, 0600);
	snprintf(side, sizeof(side), "%s-wal", db_path);
	if (stat(side, &sb) == 0)
		ck_assert_uint_eq(sb.st_mode & 0777, 0600);
}
END_TEST

START_TEST(test_store_snapshot_is_the_same_database)
{
	struct srv_store *st = open_ok();
	struct srv_device d;
	make_device(&d, 1, NULL);
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	char snap[160];
	snprintf(snap, sizeof(snap), "%s/snap.db", dir);
	struct idp_error err = {0};
	ck_assert_msg(srv_store_snapshot(st, snap, &err) == IDP_OK, "%s", err.msg);
	/* Not inside a transaction; not over a file that holds data. */
	ck_assert_int_eq(srv_store_begin(st, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_snapshot(st, snap, NULL), IDP_E_ARG);
	srv_store_rollback(st);
	ck_assert_int_ne(srv_store_snapshot(st, snap, NULL), IDP_OK);
	uint8_t a[32], b[32];
	ck_assert_int_eq(srv_store_digest(st, a, NULL), IDP_OK);
	srv_store_close(st);
	ck_assert_int_eq(chmod(snap, 0600), 0);
	struct srv_store *copy = NULL;
	ck_assert_int_eq(srv_store_open(snap, &copy, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_digest(copy, b, NULL), IDP_OK);
	ck_assert_mem_eq(a, b, 32);
	srv_store_close(copy);
}
END_TEST

/* Admit and insert pending device number i from source at now. */
static enum idp_err pending_from(struct srv_store *st, unsigned i, const char *source, int64_t now,
                                 const struct srv_pending_limits *lim, int64_t *expired,
                                 struct idp_error *err)
{
	enum idp_err rc = srv_store_pending_admit(st, source, now, lim, expired, err);
	if (rc != IDP_OK)
		return rc;
	struct srv_device d;
	make_device(&d, i, NULL);
	d.state = SRV_DEV_PENDING;
	d.created_at = d.updated_at = now;
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_pending_source(st, d.id, source, NULL), IDP_OK);
	return IDP_OK;
}

START_TEST(test_store_pending_caps_and_expiry)
{
	struct srv_store *st = open_ok();
	const struct srv_pending_limits lim = {.max_total = 5, .max_per_source = 3, .lifetime = 100};
	const int64_t t0 = 1700000000;
	int64_t expired = -1, n = 0;
	struct idp_error err = {0};
	/* An approved device does not count. */
	struct srv_device d;
	make_device(&d, 100, NULL);
	d.state = SRV_DEV_APPROVED;
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	for (unsigned i = 1; i <= 3; i++)
		ck_assert_int_eq(pending_from(st, i, "192.0.2.7", t0, &lim, &expired, NULL), IDP_OK);
	ck_assert_int_eq(pending_from(st, 4, "192.0.2.7", t0, &lim, &expired, &err), IDP_E_LIMIT);
	ck_assert_msg(strstr(err.msg, "3 unknown devices from 192.0.2.7") != NULL &&
	                      strstr(err.msg, "max-pending-per-address 3") != NULL,
	              "%s", err.msg);
	ck_assert_int_eq(pending_from(st, 5, "2001:db8::/64", t0, &lim, &expired, NULL), IDP_OK);
	ck_assert_int_eq(pending_from(st, 6, NULL, t0 + 50, &lim, &expired, NULL), IDP_OK);
	ck_assert_int_eq(pending_from(st, 7, "198.51.100.1", t0 + 50, &lim, &expired, &err),
	                 IDP_E_AGAIN);
	ck_assert_msg(strstr(err.msg, "5 unknown devices") != NULL &&
	                      strstr(err.msg, "max-pending 5") != NULL,
	              "%s", err.msg);
	ck_assert_int_eq(srv_store_device_count(st, SRV_DEV_PENDING, &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 5);
	/* 101 s later the four from t0 expire (deleted), the one from t0 + 50 stays. */
	ck_assert_int_eq(pending_from(st, 8, "192.0.2.7", t0 + 101, &lim, &expired, NULL), IDP_OK);
	ck_assert_int_eq(expired, 4);
	ck_assert_int_eq(srv_store_device_get(st, "dev-000001", &d, NULL), IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_device_get(st, "dev-000006", &d, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_device_get(st, "dev-000100", &d, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_device_count(st, SRV_DEV_PENDING, &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 2);
	/* No limits: nothing refused, nothing expires. */
	const struct srv_pending_limits none = {0};
	ck_assert_int_eq(pending_from(st, 9, "192.0.2.7", t0 + 99999, &none, &expired, NULL),
	                 IDP_OK);
	ck_assert_int_eq(expired, 0);
	srv_store_close(st);
}
END_TEST

START_TEST(test_store_device_round_trip_find_and_update)
{
	struct srv_store *st = open_ok();
	struct srv_device d, got;
	struct idp_error err = {0};
	make_device(&d, 7, NULL);
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_device_insert(st, &d, &err), IDP_E_DUPLICATE);
	ck_assert_ptr_nonnull(strstr(err.msg, "dev-000007"));
	ck_assert_int_eq(srv_store_device_get(st, "dev-000007", &got, NULL), IDP_OK);
	ck_assert_str_eq(got.mac, d.mac);
	ck_assert_uint_eq(got.pubkey_len, d.pubkey_len);
	ck_assert_mem_eq(got.pubkey, d.pubkey, d.pubkey_len);
	ck_assert_str_eq(got.batch_id, "");
	ck_assert_int_eq(srv_store_device_get(st, "nope", &got, &err), IDP_E_NOTFOUND);

	char id[SRV_STORE_ID_MAX + 1];
	ck_assert_int_eq(srv_store_device_find(st, SRV_IDENT_SERIAL, (const uint8_t *)"SN00000007",
	                                       10, NULL, id, NULL),
	                 IDP_OK);
	ck_assert_str_eq(id, "dev-000007");
	ck_assert_int_eq(srv_store_device_find(st, SRV_IDENT_SERIAL, (const uint8_t *)"SN00000007",
	                                       10, "dev-000007", id, NULL),
	                 IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_device_find(st, SRV_IDENT_MAC, (const uint8_t *)d.mac,
	                                       strlen(d.mac), NULL, id, NULL),
	                 IDP_OK);
	ck_assert_int_eq(
	        srv_store_device_find(st, SRV_IDENT_KEY, d.pubkey, d.pubkey_len, NULL, id, NULL),
	        IDP_OK);
	uint8_t other[91];
	memcpy(other, d.pubkey, sizeof(other));
	other[90] ^= 1;
	ck_assert_int_eq(
	        srv_store_device_find(st, SRV_IDENT_KEY, other, sizeof(other), NULL, id, NULL),
	        IDP_E_NOTFOUND);

	/* A device without key or MAC stores NULLs, and the lookups do not match "". */
	struct srv_device bare;
	make_device(&bare, 8, NULL);
	bare.mac[0] = '\0';
	bare.pubkey_len = 0;
	bare.state = SRV_DEV_PENDING;
	ck_assert_int_eq(srv_store_device_insert(st, &bare, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_device_get(st, "dev-000008", &got, NULL), IDP_OK);
	ck_assert_uint_eq(got.pubkey_len, 0);
	ck_assert_str_eq(got.mac, "");

	got.state = SRV_DEV_APPROVED;
	got.pubkey_len = 44;
	memset(got.pubkey, 0x44, 44);
	got.provisioned_at = 1700000100;
	got.attempts = 3;
	ck_assert_int_eq(srv_store_device_update(st, &got, NULL), IDP_OK);
	struct srv_device again;
	ck_assert_int_eq(srv_store_device_get(st, "dev-000008", &again, NULL), IDP_OK);
	ck_assert_int_eq(again.state, SRV_DEV_APPROVED);
	ck_assert_uint_eq(again.pubkey_len, 44);
	ck_assert_int_eq(again.attempts, 3);
	int64_t n = 0;
	ck_assert_int_eq(srv_store_device_count(st, SRV_DEV_APPROVED, &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(srv_store_device_count(st, 0, &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 2);

	/* Oversized and bad values are refused before they reach the database. */
	struct srv_device bad = d;
	memset(bad.id, 'a', sizeof(bad.id) - 1);
	bad.id[sizeof(bad.id) - 1] = '\0';
	snprintf(bad.mac, sizeof(bad.mac), "x");
	bad.state = (enum srv_device_state)9;
	ck_assert_int_eq(srv_store_device_insert(st, &bad, &err), IDP_E_ARG);
	snprintf(bad.id, sizeof(bad.id), "fresh");
	snprintf(bad.serial, sizeof(bad.serial), "SN");
	bad.state = SRV_DEV_PRELOADED;
	snprintf(bad.batch_id, sizeof(bad.batch_id), "no-such-batch");
	ck_assert_int_eq(srv_store_device_insert(st, &bad, &err), IDP_E_CONFLICT);
	srv_store_close(st);
}
END_TEST

/* The state-only update writes state, times and attempts, never the
 * identity columns (even when the struct holds other ones), and the
 * lookups by MAC, serial and key still find the device. */
START_TEST(test_store_device_update_state_keeps_identity)
{
	struct srv_store *st = open_ok();
	struct srv_device d, got;
	struct idp_error err = {0};
	make_device(&d, 9, NULL);
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	struct srv_device changed = d;
	changed.state = SRV_DEV_APPROVED;
	changed.updated_at = d.created_at + 5;
	changed.provisioned_at = d.created_at + 5;
	changed.attempts = 4;
	(void)snprintf(changed.mac, sizeof(changed.mac), "02:00:00:00:99:99");
	(void)snprintf(changed.serial, sizeof(changed.serial), "SN-OTHER");
	changed.pubkey[0] ^= 1;
	ck_assert_int_eq(srv_store_device_update_state(st, &changed, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_device_get(st, "dev-000009", &got, NULL), IDP_OK);
	ck_assert_int_eq(got.state, SRV_DEV_APPROVED);
	ck_assert_int_eq(got.updated_at, changed.updated_at);
	ck_assert_int_eq(got.provisioned_at, changed.provisioned_at);
	ck_assert_int_eq(got.attempts, 4);
	ck_assert_str_eq(got.mac, d.mac);
	ck_assert_str_eq(got.serial, d.serial);
	ck_assert_uint_eq(got.pubkey_len, d.pubkey_len);
	ck_assert_mem_eq(got.pubkey, d.pubkey, d.pubkey_len);
	char id[SRV_STORE_ID_MAX + 1];
	ck_assert_int_eq(srv_store_device_find(st, SRV_IDENT_MAC, (const uint8_t *)d.mac,
	                                       strlen(d.mac), NULL, id, NULL),
	                 IDP_OK);
	ck_assert_int_eq(srv_store_device_find(st, SRV_IDENT_SERIAL, (const uint8_t *)d.serial,
	                                       strlen(d.serial), NULL, id, NULL),
	                 IDP_OK);
	ck_assert_int_eq(
	        srv_store_device_find(st, SRV_IDENT_KEY, d.pubkey, d.pubkey_len, NULL, id, NULL),
	        IDP_OK);
	ck_assert_str_eq(id, "dev-000009");
	ck_assert_int_eq(srv_store_device_find(st, SRV_IDENT_KEY, changed.pubkey,
	                                       changed.pubkey_len, NULL, id, NULL),
	                 IDP_E_NOTFOUND);
	int64_t n = 0;
	ck_assert_int_eq(srv_store_device_count(st, SRV_DEV_APPROVED, &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 1);
	/* Absent, or a bad state: refused, nothing written. */
	(void)snprintf(changed.id, sizeof(changed.id), "nope");
	ck_assert_int_eq(srv_store_device_update_state(st, &changed, &err), IDP_E_NOTFOUND);
	ck_assert_ptr_nonnull(strstr(err.msg, "nope"));
	(void)snprintf(changed.id, sizeof(changed.id), "dev-000009");
	changed.state = (enum srv_device_state)9;
	ck_assert_int_eq(srv_store_device_update_state(st, &changed, &err), IDP_E_ARG);
	ck_assert_int_eq(srv_store_device_get(st, "dev-000009", &got, NULL), IDP_OK);
	ck_assert_int_eq(got.state, SRV_DEV_APPROVED);
	srv_store_close(st);
}
END_TEST

START_TEST(test_store_batches_and_chain_lookups)
{
	struct srv_store *st = open_ok();
	struct srv_station s = {.enabled = true, .pubkey_len = 91, .created_at = 1};
	snprintf(s.id, sizeof(s.id), "station-1");
	memset(s.pubkey, 0x30, s.pubkey_len);
	ck_assert_int_eq(srv_store_station_put(st, &s, NULL), IDP_OK);
	struct srv_station sg;
	ck_assert_int_eq(srv_store_station_get(st, "station-1", &sg, NULL), IDP_OK);
	ck_assert(sg.enabled);
	ck_assert_uint_eq(sg.pubkey_len, 91);
	ck_assert_int_eq(srv_store_station_get(st, "station-2", &sg, NULL), IDP_E_NOTFOUND);

	struct srv_batch b, got;
	make_batch(&b, "batch-1", 1, 0);
	ck_assert_int_eq(srv_store_batch_insert(st, &b, NULL), IDP_OK);
	make_batch(&b, "batch-2", 2, 0);
	b.state = SRV_BATCH_GAP;
	ck_assert_int_eq(srv_store_batch_insert(st, &b, NULL), IDP_OK);
	/* Same station and sequence under another ID: the unique pair refuses it. */
	make_batch(&b, "batch-2b", 2, 0);
	struct idp_error err = {0};
	ck_assert_int_eq(srv_store_batch_insert(st, &b, &err), IDP_E_DUPLICATE);
	ck_assert_ptr_nonnull(strstr(err.msg, "batch-2b"));

	ck_assert_int_eq(srv_store_batch_get(st, "batch-1", &got, NULL), IDP_OK);
	ck_assert(!got.has_prev);
	ck_assert_int_eq(got.state, SRV_BATCH_IMPORTED);
	ck_assert_int_eq(srv_store_batch_get_seq(st, "station-1", 2, &got, NULL), IDP_OK);
	ck_assert_str_eq(got.id, "batch-2");
	ck_assert(got.has_prev);
	ck_assert_int_eq(got.prev_hash[0], 1);
	ck_assert_int_eq(got.state, SRV_BATCH_GAP);
	ck_assert_int_eq(srv_store_batch_get_last(st, "station-1", &got, NULL), IDP_OK);
	ck_assert_int_eq(got.sequence, 2);
	ck_assert_int_eq(srv_store_batch_get_last(st, "station-9", &got, NULL), IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_batch_get_seq(st, "station-1", 3, &got, NULL), IDP_E_NOTFOUND);

	static const char pem[] = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
	ck_assert_int_eq(srv_store_factory_ca_add(st, "acme", pem, sizeof(pem) - 1, 1, NULL),
	                 IDP_OK);
	ck_assert_int_eq(srv_store_factory_ca_add(st, "acme", pem, sizeof(pem) - 1, 1, NULL),
	                 IDP_E_DUPLICATE);
	srv_store_close(st);
}
END_TEST

static int count_ca(void *ctx, const char *name, const char *pem, size_t len)
{
	(void)name;
	(void)pem;
	(void)len;
	(*(int *)ctx)++;
	return 0;
}

START_TEST(test_store_tokens_single_use_across_connections)
{
	struct srv_store *a = open_ok();
	struct srv_store *b = open_ok();
	struct srv_token t = {.kind = FMT_TOKEN_PROVISION, .issued_at = 100, .expires_at = 200};
	snprintf(t.jti, sizeof(t.jti), "jti-1");
	snprintf(t.device_id, sizeof(t.device_id), "dev-1");
	ck_assert_int_eq(srv_store_token_insert(a, &t, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_token_insert(b, &t, NULL), IDP_E_DUPLICATE);
	ck_assert_int_eq(srv_store_token_use(a, "jti-1", 150, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_token_use(b, "jti-1", 150, NULL), IDP_E_CONFLICT);
	ck_assert_int_eq(srv_store_token_use(a, "jti-1", 150, NULL), IDP_E_CONFLICT);
	ck_assert_int_eq(srv_store_token_use(a, "jti-x", 150, NULL), IDP_E_NOTFOUND);
	snprintf(t.jti, sizeof(t.jti), "jti-2");
	ck_assert_int_eq(srv_store_token_insert(a, &t, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_token_use(b, "jti-2", 200, NULL), IDP_E_EXPIRED);
	struct srv_token got;
	ck_assert_int_eq(srv_store_token_get(b, "jti-2", &got, NULL), IDP_OK);
	ck_assert(!got.used);
	ck_assert_int_eq(got.kind, FMT_TOKEN_PROVISION);
	ck_assert_str_eq(got.device_id, "dev-1");

	/* Nonces: one use, whoever asks first; expired ones are refused and gone. */
	const uint8_t n1[16] = {1}, n2[16] = {2}, n3[16] = {3};
	ck_assert_int_eq(srv_store_nonce_insert(a, n1, sizeof(n1), 300, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_nonce_insert(a, n1, sizeof(n1), 300, NULL), IDP_E_DUPLICATE);
	ck_assert_int_eq(srv_store_nonce_consume(b, n1, sizeof(n1), 250, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_nonce_consume(a, n1, sizeof(n1), 250, NULL), IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_nonce_insert(a, n2, sizeof(n2), 300, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_nonce_consume(a, n2, sizeof(n2), 300, NULL), IDP_E_EXPIRED);
	ck_assert_int_eq(srv_store_nonce_consume(a, n2, sizeof(n2), 299, NULL), IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_nonce_insert(a, n3, sizeof(n3), 300, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_nonce_purge(b, 301, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_nonce_consume(a, n3, sizeof(n3), 10, NULL), IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_nonce_insert(a, n3, 0, 300, NULL), IDP_E_ARG);

	/* Flags, releases, audit, CA walk. */
	ck_assert_int_eq(srv_store_flag_add(a, "key-reuse", "dev-1", "also dev-2", 5, NULL),
	                 IDP_OK);
	ck_assert_int_eq(srv_store_flag_add(a, "mac-mismatch", "dev-1", NULL, 5, NULL), IDP_OK);
	int64_t n = 0;
	ck_assert_int_eq(srv_store_flag_count(b, NULL, &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(srv_store_flag_count(b, "key-reuse", &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 1);
	bool rel = true;
	ck_assert_int_eq(
	        srv_store_release_check(a, SRV_IDENT_SERIAL, (const uint8_t *)"SN1", 3, &rel, NULL),
	        IDP_OK);
	ck_assert(!rel);
	ck_assert_int_eq(
	        srv_store_release_add(a, SRV_IDENT_SERIAL, (const uint8_t *)"SN1", 3, 9, NULL),
	        IDP_OK);
	ck_assert_int_eq(
	        srv_store_release_add(a, SRV_IDENT_SERIAL, (const uint8_t *)"SN1", 3, 9, NULL),
	        IDP_OK);
	ck_assert_int_eq(
	        srv_store_release_check(b, SRV_IDENT_SERIAL, (const uint8_t *)"SN1", 3, &rel, NULL),
	        IDP_OK);
	ck_assert(rel);
	ck_assert_int_eq(
	        srv_store_release_check(b, SRV_IDENT_MAC, (const uint8_t *)"SN1", 3, &rel, NULL),
	        IDP_OK);
	ck_assert(!rel);
	struct srv_audit_event ev = {.at = 5, .event = "provision.approved", .subject = "dev-1"};
	ck_assert_int_eq(srv_store_audit_append(a, &ev, NULL), IDP_OK);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM audit WHERE subject = 'dev-1'"), 1);
	static const char pem[] = "x";
	ck_assert_int_eq(srv_store_factory_ca_add(a, "one", pem, 1, 1, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_factory_ca_add(a, "two", pem, 1, 1, NULL), IDP_OK);
	int cas = 0;
	ck_assert_int_eq(srv_store_factory_ca_foreach(b, count_ca, &cas, NULL), IDP_OK);
	ck_assert_int_eq(cas, 2);
	srv_store_close(a);
	srv_store_close(b);
}
END_TEST

START_TEST(test_store_failed_transaction_leaves_db_unchanged)
{
	struct srv_store *st = open_ok();
	struct srv_batch b;
	make_batch(&b, "batch-1", 1, 1);
	struct srv_device d;
	make_device(&d, 1, "batch-1");
	ck_assert_int_eq(srv_store_begin(st, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_begin(st, NULL), IDP_E_ARG);
	ck_assert_int_eq(srv_store_batch_insert(st, &b, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_commit(st, NULL), IDP_OK);
	uint8_t before[32], after[32];
	db_digest(before);

	/* A second batch whose 500th device repeats an ID: the caller rolls back. */
	ck_assert_int_eq(srv_store_begin(st, NULL), IDP_OK);
	make_batch(&b, "batch-2", 2, 1000);
	ck_assert_int_eq(srv_store_batch_insert(st, &b, NULL), IDP_OK);
	enum idp_err rc = IDP_OK;
	struct idp_error err = {0};
	for (unsigned i = 2; i < 1002 && rc == IDP_OK; i++) {
		make_device(&d, i == 500 ? 1 : i, "batch-2");
		rc = srv_store_device_insert(st, &d, &err);
	}
	ck_assert_int_eq(rc, IDP_E_DUPLICATE);
	ck_assert_ptr_nonnull(strstr(err.msg, "dev-000001"));
	struct srv_audit_event ev = {.at = 1, .event = "batch.refused", .subject = "batch-2"};
	ck_assert_int_eq(srv_store_audit_append(st, &ev, NULL), IDP_OK);
	srv_store_rollback(st);
	db_digest(after);
	ck_assert_mem_eq(before, after, sizeof(before));

	/* A commit with nothing open fails cleanly; closing with a transaction
	 * open rolls it back. */
	ck_assert_int_eq(srv_store_commit(st, NULL), IDP_E_ARG);
	ck_assert_int_eq(srv_store_begin(st, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_batch_insert(st, &b, NULL), IDP_OK);
	srv_store_close(st);
	db_digest(after);
	ck_assert_mem_eq(before, after, sizeof(before));

	/* A second writer waits for the first and then sees its work. */
	struct srv_store *w1 = open_ok(), *w2 = open_ok();
	ck_assert_int_eq(srv_store_begin(w1, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_batch_insert(w1, &b, NULL), IDP_OK);
	struct srv_batch got;
	ck_assert_int_eq(srv_store_batch_get(w2, "batch-2", &got, NULL), IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_commit(w1, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_batch_get(w2, "batch-2", &got, NULL), IDP_OK);
	srv_store_close(w1);
	srv_store_close(w2);
}
END_TEST

/* Child: commit a first batch of 10 devices, then insert n more in one
 * transaction, writing 'H' to fd half-way, 'C' just before the commit and 'D'
 * after it. Never returns. */
static void child_import(int fd, unsigned n)
{
	struct srv_store *st = NULL;
	if (srv_store_open(db_path, &st, NULL) != IDP_OK)
		_exit(2);
	struct srv_batch b;
	struct srv_device d;
	make_batch(&b, "batch-2", 2, n);
	if (srv_store_begin(st, NULL) != IDP_OK || srv_store_batch_insert(st, &b, NULL) != IDP_OK)
		_exit(3);
	for (unsigned i = 0; i < n; i++) {
		make_device(&d, 1000 + i, "batch-2");
		if (srv_store_device_insert(st, &d, NULL) != IDP_OK)
			_exit(4);
		if (i == n / 2 && write(fd, "H", 1) != 1)
			_exit(5);
	}
	if (write(fd, "C", 1) != 1)
		_exit(5);
	if (srv_store_commit(st, NULL) != IDP_OK)
		_exit(6);
	if (write(fd, "D", 1) != 1)
		_exit(5);
	for (;;)
		pause();
}

/* Run child_import and kill it after it wrote `at` (plus delay_us); return
 * whether it had reported the commit done before it died. */
static bool kill_child_at(char at, long delay_us, unsigned n)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		child_import(p[1], n);
	}
	close(p[1]);
	char c = 0;
	while (c != at)
		ck_assert_int_eq(read(p[0], &c, 1), 1);
	if (delay_us > 0) {
		struct timespec ts = {0, delay_us * 1000};
		nanosleep(&ts, NULL);
	}
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	bool done = false;
	while (read(p[0], &c, 1) == 1)
		done = done || c == 'D';
	close(p[0]);
	return done;
}

START_TEST(test_store_sigkill_mid_transaction_leaves_nothing_half_done)
{
	const unsigned n = 10000;
	struct srv_store *st = open_ok();
	struct srv_batch b;
	make_batch(&b, "batch-1", 1, 10);
	ck_assert_int_eq(srv_store_begin(st, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_batch_insert(st, &b, NULL), IDP_OK);
	for (unsigned i = 0; i < 10; i++) {
		struct srv_device d;
		make_device(&d, i, "batch-1");
		ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
	}
	ck_assert_int_eq(srv_store_commit(st, NULL), IDP_OK);
	srv_store_close(st);
	uint8_t before[32], after[32];
	db_digest(before);

	/* Half-way through the inserts: nothing of batch-2 may survive. */
	ck_assert(!kill_child_at('H', 0, n));
	db_digest(after);
	ck_assert_mem_eq(before, after, sizeof(before));
	ck_assert_int_eq(raw_int("SELECT count(*) FROM pragma_integrity_check "
	                         "WHERE integrity_check != 'ok'"),
	                 0);

	/* Around the commit, at several delays: all of batch-2 or none of it, and
	 * all of it whenever the commit had returned. */
	static const long delays[] = {0, 200, 1000, 5000, 20000};
	for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
		bool done = kill_child_at('C', delays[i], n);
		st = open_ok();
		int64_t count = 0;
		ck_assert_int_eq(srv_store_device_count(st, 0, &count, NULL), IDP_OK);
		struct srv_batch got;
		enum idp_err brc = srv_store_batch_get(st, "batch-2", &got, NULL);
		if (count == 10) {
			ck_assert(!done);
			ck_assert_int_eq(brc, IDP_E_NOTFOUND);
		} else {
			ck_assert_int_eq(count, 10 + (int64_t)n);
			ck_assert_int_eq(brc, IDP_OK);
			/* Committed: undo it for the next round. */
			sqlite3 *db = NULL;
			ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
			ck_assert_int_eq(
			        sqlite3_exec(db,
			                     "DELETE FROM devices WHERE batch_id = 'batch-2';"
			                     "DELETE FROM batches WHERE id = 'batch-2';",
			                     NULL, NULL, NULL),
			        SQLITE_OK);
			sqlite3_close(db);
		}
		srv_store_close(st);
		db_digest(after);
		ck_assert_mem_eq(before, after, sizeof(before));
	}
}
END_TEST

/* Run sql on the database file with a connection of its own (a tamperer). */
static void raw_exec(const char *sql)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	char *msg = NULL;
	int r = sqlite3_exec(db, sql, NULL, NULL, &msg);
	ck_assert_msg(r == SQLITE_OK, "%s: %s", sql, msg != NULL ? msg : "");
	sqlite3_close(db);
}

static void audit_n(struct srv_store *st, int from, int to)
{
	for (int i = from; i <= to; i++) {
		char subject[16];
		snprintf(subject, sizeof(subject), "dev-%d", i);
		struct srv_audit_event ev = {.at = 100 + i, .event = "provision.approved",
		                             .subject = subject, .detail = i % 2 ? "odd" : NULL};
		ck_assert_int_eq(srv_store_audit_append(st, &ev, NULL), IDP_OK);
	}
}

static struct srv_audit_check verify_ok(struct srv_store *st)
{
	struct srv_audit_check c;
	struct idp_error err = {0};
	enum idp_err rc = srv_store_audit_verify(st, &c, &err);
	ck_assert_msg(rc == IDP_OK, "verify: %s", err.msg);
	return c;
}

/* Each append is chained (inside a caller's transaction or alone); an
 * untouched log verifies to its head; an altered, deleted or swapped row
 * is named; a rolled-back decision leaves no entry. */
START_TEST(test_store_audit_chain_detects_tampering)
{
	struct srv_store *st = open_ok();
	struct srv_audit_check c = verify_ok(st);
	ck_assert_int_eq(c.entries, 0);
	ck_assert_int_eq(c.broken_seq, 0);
	audit_n(st, 1, 3);
	ck_assert_int_eq(srv_store_begin(st, NULL), IDP_OK);
	audit_n(st, 4, 6);
	ck_assert_int_eq(srv_store_commit(st, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_begin(st, NULL), IDP_OK);
	audit_n(st, 7, 7);
	srv_store_rollback(st);
	c = verify_ok(st);
	ck_assert_int_eq(c.entries, 6);
	ck_assert_int_eq(c.head_seq, 6);
	ck_assert_int_eq(c.broken_seq, 0);
	ck_assert_str_eq(c.reason, "");
	ck_assert_int_eq(raw_int("SELECT count(*) FROM audit WHERE length(hash) = 32"), 6);

	/* Altered detail: entry 3 named; put back: intact again. */
	raw_exec("UPDATE audit SET detail = 'even' WHERE seq = 3");
	c = verify_ok(st);
	ck_assert_int_eq(c.broken_seq, 3);
	ck_assert_int_eq(c.entries, 2);
	ck_assert_ptr_nonnull(strstr(c.reason, "entry 3: hash does not match"));
	raw_exec("UPDATE audit SET detail = 'odd' WHERE seq = 3");
	ck_assert_int_eq(verify_ok(st).broken_seq, 0);

	/* Two rows' contents swapped (a reorder): the first of them named. */
	raw_exec("UPDATE audit SET subject = CASE seq WHEN 4 THEN 'dev-5' ELSE 'dev-4' END, "
	         "at = CASE seq WHEN 4 THEN 105 ELSE 104 END, "
	         "detail = CASE seq WHEN 4 THEN 'odd' ELSE NULL END WHERE seq IN (4, 5)");
	ck_assert_int_eq(verify_ok(st).broken_seq, 4);
	raw_exec("UPDATE audit SET subject = CASE seq WHEN 4 THEN 'dev-4' ELSE 'dev-5' END, "
	         "at = CASE seq WHEN 4 THEN 104 ELSE 105 END, "
	         "detail = CASE seq WHEN 4 THEN NULL ELSE 'odd' END WHERE seq IN (4, 5)");
	ck_assert_int_eq(verify_ok(st).broken_seq, 0);

	/* A hash recomputed by hand for an edited row does not help: the next
	 * row names the break. A missing hash is named too. */
	raw_exec("UPDATE audit SET hash = NULL WHERE seq = 6");
	c = verify_ok(st);
	ck_assert_int_eq(c.broken_seq, 6);
	ck_assert_int_eq(c.head_seq, 5);

	/* Deleted row: the one after the gap named. */
	raw_exec("DELETE FROM audit WHERE seq = 2");
	c = verify_ok(st);
	ck_assert_int_eq(c.broken_seq, 3);
	ck_assert_ptr_nonnull(strstr(c.reason, "entry 3 follows entry 1"));
	srv_store_close(st);
}
END_TEST

static int count_allow(void *ctx, const char *entry, int64_t added_at)
{
	(void)entry;
	(void)added_at;
	(*(int *)ctx)++;
	return 0;
}

static int count_ckpt(void *ctx, const struct srv_checkpoint *c)
{
	(void)c;
	(*(int *)ctx)++;
	return 0;
}

/* Each connection keeps the suspension it read (it is read on every
 * provisioning request), and still sees every change another connection
 * commits at once; one that is rolled back, or not yet committed, is not
 * seen. */
START_TEST(test_store_suspension_cache_sees_other_connections)
{
	struct srv_store *a = open_ok(), *b = open_ok();
	struct srv_suspension sus;
	for (int i = 0; i < 2; i++) { /* the second read comes from the cache */
		ck_assert_int_eq(srv_store_suspension_get(a, &sus, NULL), IDP_OK);
		ck_assert(!sus.suspended);
	}
	/* Uncommitted: a still sees the committed state, and keeps no copy. */
	ck_assert_int_eq(srv_store_begin(b, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_suspension_set(b, true, "first", 1700000000, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_suspension_get(a, &sus, NULL), IDP_OK);
	ck_assert(!sus.suspended);
	ck_assert_int_eq(srv_store_commit(b, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_suspension_get(a, &sus, NULL), IDP_OK);
	ck_assert(sus.suspended);
	ck_assert_str_eq(sus.reason, "first");
	ck_assert_int_eq(sus.since, 1700000000);
	/* Rolled back: nothing changed. */
	ck_assert_int_eq(srv_store_begin(b, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_suspension_set(b, false, NULL, 1700000001, NULL), IDP_OK);
	srv_store_rollback(b);
	ck_assert_int_eq(srv_store_suspension_get(a, &sus, NULL), IDP_OK);
	ck_assert(sus.suspended);
	/* Without a transaction of its own, and lifted from a third
	 * connection that then closes. */
	ck_assert_int_eq(srv_store_suspension_set(b, true, "second", 1700000002, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_suspension_get(a, &sus, NULL), IDP_OK);
	ck_assert_str_eq(sus.reason, "second");
	struct srv_store *c = open_ok();
	ck_assert_int_eq(srv_store_begin(c, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_suspension_set(c, false, NULL, 1700000003, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_commit(c, NULL), IDP_OK);
	srv_store_close(c);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(srv_store_suspension_get(a, &sus, NULL), IDP_OK);
		ck_assert(!sus.suspended);
		ck_assert_int_eq(srv_store_suspension_get(b, &sus, NULL), IDP_OK);
		ck_assert(!sus.suspended);
	}
	ck_assert_int_eq(raw_int("SELECT suspended FROM site_state"), 0);
	srv_store_close(a);
	srv_store_close(b);
}
END_TEST

/* The suspension outlives the connection; allow-list entries are unique and
 * named when absent; checkpoints are numbered uniquely, the last found. */
START_TEST(test_store_site_suspension_allow_checkpoints)
{
	struct srv_store *st = open_ok();
	struct srv_suspension sus;
	ck_assert_int_eq(srv_store_suspension_get(st, &sus, NULL), IDP_OK);
	ck_assert(!sus.suspended);
	ck_assert_int_eq(sus.since, 0);
	ck_assert_int_eq(srv_store_suspension_set(st, true, "rogue at 10.0.0.9", 1700000000, NULL),
	                 IDP_OK);
	srv_store_close(st);
	st = open_ok();
	ck_assert_int_eq(srv_store_suspension_get(st, &sus, NULL), IDP_OK);
	ck_assert(sus.suspended);
	ck_assert_str_eq(sus.reason, "rogue at 10.0.0.9");
	ck_assert_int_eq(sus.since, 1700000000);

	struct idp_error err = {0};
	ck_assert_int_eq(srv_store_allow_add(st, "host.local:8443", 1, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_allow_add(st, "host.local:8443", 2, &err), IDP_E_DUPLICATE);
	ck_assert_str_eq(err.msg, "allow: host.local:8443 is already on the list");
	ck_assert_int_eq(srv_store_allow_remove(st, "other:1", &err), IDP_E_NOTFOUND);
	ck_assert_str_eq(err.msg, "allow: other:1 is not on the list");
	int n = 0;
	ck_assert_int_eq(srv_store_allow_foreach(st, count_allow, &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 1);

	struct srv_checkpoint c = {.n = 1, .seq = 0, .at = 5, .hash_len = 32, .sig_len = 64},
	                      last;
	snprintf(c.key_id, sizeof(c.key_id), "k");
	ck_assert_int_eq(srv_store_checkpoint_last(st, &last, NULL), IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_checkpoint_add(st, &c, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_checkpoint_add(st, &c, NULL), IDP_E_DUPLICATE);
	c.n = 2;
	c.seq = 7;
	ck_assert_int_eq(srv_store_checkpoint_add(st, &c, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_checkpoint_last(st, &last, NULL), IDP_OK);
	ck_assert_int_eq(last.n, 2);
	ck_assert_int_eq(last.seq, 7);
	ck_assert_uint_eq(last.sig_len, 64);
	n = 0;
	ck_assert_int_eq(srv_store_checkpoint_foreach(st, 1, 10, count_ckpt, &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 1);
	srv_store_close(st);
}
END_TEST

/* A database of schema 3 with audit rows (numbered with gaps, as deletions
 * left them) is migrated: rows numbered 1..n in their order, chained, and
 * verified; appends continue the chain. */
START_TEST(test_store_audit_migration_chains_existing_rows)
{
	struct srv_store *st = open_ok();
	srv_store_close(st);
	raw_exec("DROP TABLE site_state; DROP TABLE site_allow; DROP TABLE audit_checkpoints;"
	         "DROP TABLE admin_credentials; DROP TABLE oob_secrets;"
	         "ALTER TABLE audit DROP COLUMN actor;"
	         "DROP INDEX audit_subject; ALTER TABLE audit DROP COLUMN v;"
	         "DROP INDEX audit_event; ALTER TABLE audit DROP COLUMN hash;"
	         "DELETE FROM schema_migrations WHERE version >= 4;"
	         "INSERT INTO audit (seq, at, event, subject, detail) VALUES "
	         "(3, 10, 'batch.imported', 'b-1', NULL), (7, 11, 'provision.approved', 'd-1', "
	         "NULL), (8, 12, 'provision.refused', 'd-2', 'unknown-device')");
	st = open_ok();
	int64_t v = 0;
	ck_assert_int_eq(srv_store_schema_version(st, &v, NULL), IDP_OK);
	ck_assert_int_eq(v, srv_store_schema_latest());
	ck_assert_int_eq(raw_int("SELECT group_concat(seq) = '1,2,3' FROM audit ORDER BY seq"), 1);
	ck_assert_int_eq(raw_int("SELECT subject = 'd-2' FROM audit WHERE seq = 3"), 1);
	/* Migration 5 after 4: the old rows have no actor, new ones name theirs. */
	ck_assert_int_eq(raw_int("SELECT count(*) FROM audit WHERE actor IS NULL"), 3);
	struct srv_audit_check c = verify_ok(st);
	ck_assert_int_eq(c.entries, 3);
	ck_assert_int_eq(c.broken_seq, 0);
	audit_n(st, 1, 1);
	c = verify_ok(st);
	ck_assert_int_eq(c.head_seq, 4);
	ck_assert_int_eq(c.broken_seq, 0);
	srv_store_close(st);
}
END_TEST

/* A named credential is found by its whole hash only: a hash sharing the
 * indexed prefix but differing after it is not, nor one after revocation;
 * a taken name stays taken after revocation. */
START_TEST(test_store_credential_find_whole_hash)
{
	struct srv_store *st = open_ok();
	struct srv_credential c = {.name = "ops", .role = SRV_ROLE_VIEWER, .created_at = 5};
	for (size_t i = 0; i < sizeof(c.hash); i++)
		c.hash[i] = (uint8_t)i;
	ck_assert_int_eq(srv_store_credential_add(st, &c, NULL), IDP_OK);
	struct srv_credential got;
	uint8_t h[SRV_STORE_CRED_HASH_LEN];
	memcpy(h, c.hash, sizeof(h));
	ck_assert_int_eq(srv_store_credential_find(st, h, &got, NULL), IDP_OK);
	ck_assert_str_eq(got.name, "ops");
	ck_assert_int_eq(got.role, SRV_ROLE_VIEWER);
	h[31] ^= 1; /* same index prefix, last byte forged */
	ck_assert_int_eq(srv_store_credential_find(st, h, &got, NULL), IDP_E_NOTFOUND);
	ck_assert_str_eq(got.name, "");
	h[31] ^= 1;
	struct idp_error err = {0};
	ck_assert_int_eq(srv_store_credential_add(st, &c, &err), IDP_E_DUPLICATE);
	ck_assert_int_eq(srv_store_credential_revoke(st, "ops", 9, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_credential_find(st, h, &got, NULL), IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_credential_revoke(st, "ops", 9, &err), IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_credential_add(st, &c, NULL), IDP_E_DUPLICATE);
	srv_store_close(st);
}
END_TEST

/* Count rows; stop (non-zero) once *stop_at were seen (0: never). */
struct walk {
	int seen;
	int stop_at;
};
static int walk_row(struct walk *w)
{
	w->seen++;
	return w->stop_at != 0 && w->seen >= w->stop_at;
}
static int walk_device(void *ctx, const struct srv_device *d)
{
	ck_assert_int_eq(d->state, SRV_DEV_PRELOADED);
	return walk_row(ctx);
}
static int walk_flag(void *ctx, const struct srv_flag *f)
{
	(void)f;
	return walk_row(ctx);
}
static int walk_group(void *ctx, const char *key, int64_t n)
{
	(void)key;
	ck_assert_int_gt(n, 0);
	return walk_row(ctx);
}
static int walk_audit(void *ctx, const struct srv_audit_row *r)
{
	ck_assert_uint_eq(r->hash_len, 32);
	return walk_row(ctx);
}

/* The _foreach walks (one row iterator in the engine): every row, an early
 * stop by fn, and a row a tamperer made too long refused with IDP_E_FORMAT
 * naming the field, with no row after it passed on. */
START_TEST(test_store_foreach_walks_stops_and_refuses_oversized_rows)
{
	struct srv_store *st = open_ok();
	struct srv_batch b;
	make_batch(&b, "b-1", 1, 5);
	ck_assert_int_eq(srv_store_batch_insert(st, &b, NULL), IDP_OK);
	for (unsigned i = 1; i <= 5; i++) {
		struct srv_device d;
		make_device(&d, i, "b-1");
		ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
		char subject[16];
		snprintf(subject, sizeof(subject), "dev-%06u", i);
		ck_assert_int_eq(srv_store_flag_add(st, "key-reuse", subject, "x", 1, NULL), IDP_OK);
	}
	audit_n(st, 1, 3);
	struct walk w = {0, 0};
	ck_assert_int_eq(srv_store_device_foreach(st, 0, NULL, 100, walk_device, &w, NULL), IDP_OK);
	ck_assert_int_eq(w.seen, 5);
	w = (struct walk){0, 2};
	ck_assert_int_eq(srv_store_device_foreach(st, SRV_DEV_PRELOADED, "", 100, walk_device, &w,
	                                          NULL),
	                 IDP_OK);
	ck_assert_int_eq(w.seen, 2);
	w = (struct walk){0, 0};
	ck_assert_int_eq(srv_store_device_foreach(st, SRV_DEV_PENDING, NULL, 100, walk_device, &w,
	                                          NULL),
	                 IDP_OK);
	ck_assert_int_eq(w.seen, 0);
	w = (struct walk){0, 0};
	ck_assert_int_eq(srv_store_group_count(st, SRV_GROUP_DEVICE_STATE, walk_group, &w, NULL),
	                 IDP_OK);
	ck_assert_int_eq(w.seen, 1);
	w = (struct walk){0, 0};
	ck_assert_int_eq(srv_store_audit_foreach(st, 1, 10, NULL, walk_audit, &w, NULL), IDP_OK);
	ck_assert_int_eq(w.seen, 2);
	struct srv_flag_query q = {.limit = 100};
	w = (struct walk){0, 0};
	ck_assert_int_eq(srv_store_flag_foreach(st, &q, walk_flag, &w, NULL), IDP_OK);
	ck_assert_int_eq(w.seen, 5);
	/* The newest flag (walked first) gets a detail longer than the store's limit. */
	raw_exec("UPDATE flags SET detail = hex(randomblob(600)) WHERE seq = "
	         "(SELECT max(seq) FROM flags)");
	w = (struct walk){0, 0};
	struct idp_error err = {0};
	ck_assert_int_eq(srv_store_flag_foreach(st, &q, walk_flag, &w, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "flag detail"));
	ck_assert_int_eq(w.seen, 0);
	/* The walk left no statement open: a write on another connection goes on. */
	struct srv_store *other = open_ok();
	ck_assert_int_eq(srv_store_flag_add(other, "mac-mismatch", NULL, NULL, 2, NULL), IDP_OK);
	srv_store_close(other);
	srv_store_close(st);
}
END_TEST

/* A resolved flag leaves the open list and counts, is listed as resolved,
 * cannot be resolved twice; the same kind and subject raised later opens a
 * new flag. The audit subject filter gives one subject's entries in order. */
START_TEST(test_store_flag_resolve_and_audit_subject)
{
	struct srv_store *st = open_ok();
	ck_assert_int_eq(srv_store_flag_add(st, "mac-mismatch", "dev-1", "a", 1, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_flag_add(st, "key-reuse", "dev-2", "b", 2, NULL), IDP_OK);
	struct srv_flag f;
	ck_assert_int_eq(srv_store_flag_get(st, "mac-mismatch", "dev-1", &f, NULL), IDP_OK);
	int64_t seq = f.seq;
	struct srv_flag r;
	struct idp_error err = {0};
	ck_assert_int_eq(srv_store_flag_resolve(st, seq, &r, &err), IDP_OK);
	ck_assert_str_eq(r.kind, "mac-mismatch");
	ck_assert_str_eq(r.subject, "dev-1");
	int64_t n = 0;
	ck_assert_int_eq(srv_store_flag_count(st, NULL, &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(srv_store_flag_resolve(st, seq, &r, &err), IDP_E_NOTFOUND);
	ck_assert_ptr_nonnull(strstr(err.msg, "no such open flag"));
	ck_assert_int_eq(srv_store_flag_resolve(st, 999, &r, NULL), IDP_E_NOTFOUND);
	struct srv_flag_query q = {.limit = 100};
	struct walk w = {0, 0};
	ck_assert_int_eq(srv_store_flag_foreach(st, &q, walk_flag, &w, NULL), IDP_OK);
	ck_assert_int_eq(w.seen, 1);
	q.resolved = true;
	w = (struct walk){0, 0};
	ck_assert_int_eq(srv_store_flag_foreach(st, &q, walk_flag, &w, NULL), IDP_OK);
	ck_assert_int_eq(w.seen, 1);
	/* Raised again: a new open flag, not the resolved one counted up. */
	ck_assert_int_eq(srv_store_flag_add(st, "mac-mismatch", "dev-1", "c", 3, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_flag_get(st, "mac-mismatch", "dev-1", &f, NULL), IDP_OK);
	ck_assert_int_ne(f.seq, seq);
	ck_assert_int_eq(f.count, 1);
	/* Subject filter: dev-3's entries among others, after a given seq. */
	audit_n(st, 1, 5);
	audit_n(st, 3, 3);
	w = (struct walk){0, 0};
	ck_assert_int_eq(srv_store_audit_foreach(st, 0, 10, "dev-3", walk_audit, &w, NULL), IDP_OK);
	ck_assert_int_eq(w.seen, 2);
	w = (struct walk){0, 0};
	ck_assert_int_eq(srv_store_audit_foreach(st, 3, 10, "dev-3", walk_audit, &w, NULL), IDP_OK);
	ck_assert_int_eq(w.seen, 1);
	w = (struct walk){0, 0};
	ck_assert_int_eq(srv_store_audit_foreach(st, 0, 10, "dev-9", walk_audit, &w, NULL), IDP_OK);
	ck_assert_int_eq(w.seen, 0);
	srv_store_close(st);
}
END_TEST

/* server/store.c: names round-trip, unknown names are 0, and the checks
 * refuse what every engine must refuse, naming the field. */
START_TEST(test_store_names_and_checks)
{
	for (int i = SRV_DEV_PRELOADED; i <= SRV_DEV_REVOKED; i++) {
		const char *n = srv_device_state_name((enum srv_device_state)i);
		ck_assert_int_eq(srv_device_state_of(n, strlen(n)), i);
	}
	ck_assert_int_eq(srv_batch_state_of("gap", 3), SRV_BATCH_GAP);
	ck_assert_int_eq(srv_device_state_of("pend", 4), 0);
	ck_assert_int_eq(srv_device_state_of("pendingx", 8), 0);
	ck_assert_int_eq(srv_device_state_of(NULL, 0), 0);
	ck_assert_str_eq(srv_device_state_name((enum srv_device_state)9), "unknown");
	ck_assert_str_eq(srv_ident_kind_name(SRV_IDENT_MAC), "mac");
	struct idp_error err = {0};
	struct srv_device d;
	make_device(&d, 1, NULL);
	ck_assert_int_eq(srv_store_check_device(&d, NULL), IDP_OK);
	memset(d.serial, 'x', sizeof(d.serial)); /* no NUL within the limit */
	ck_assert_int_eq(srv_store_check_device(&d, &err), IDP_E_LIMIT);
	ck_assert_str_eq(err.msg, "store: serial is longer than 64 bytes");
	make_device(&d, 1, NULL);
	d.state = (enum srv_device_state)0;
	ck_assert_int_eq(srv_store_check_device(&d, &err), IDP_E_ARG);
	d.id[0] = '\0';
	ck_assert_int_eq(srv_store_check_device(&d, &err), IDP_E_ARG);
	ck_assert_str_eq(err.msg, "store: device id is empty");
	ck_assert_int_eq(srv_store_check_ident(SRV_IDENT_KEY, 0, "release", &err), IDP_E_ARG);
	ck_assert_str_eq(err.msg, "store: release: bad kind or length");
	ck_assert_int_eq(srv_store_check_ident((enum srv_ident_kind)5, 1, "x", NULL), IDP_E_ARG);
	ck_assert_int_eq(srv_store_check_nonce(SRV_STORE_NONCE_MAX + 1, NULL), IDP_E_ARG);
	ck_assert_int_eq(srv_store_check_proof(0, NULL), IDP_E_ARG);
	struct srv_token t = {.kind = FMT_TOKEN_DEVICE};
	snprintf(t.jti, sizeof(t.jti), "j");
	snprintf(t.device_id, sizeof(t.device_id), "d");
	ck_assert_int_eq(srv_store_check_token(&t, NULL), IDP_OK);
	t.kind = (enum fmt_token_kind)3;
	ck_assert_int_eq(srv_store_check_token(&t, NULL), IDP_E_ARG);
	/* The engine applies them: nothing reaches the database. */
	uint8_t before[32], after[32];
	struct srv_store *st = open_ok();
	ck_assert_int_eq(srv_store_digest(st, before, NULL), IDP_OK);
	make_device(&d, 2, NULL);
	memset(d.mac, 'm', sizeof(d.mac));
	ck_assert_int_eq(srv_store_device_insert(st, &d, &err), IDP_E_LIMIT);
	ck_assert_str_eq(err.msg, "store: mac is longer than 17 bytes");
	ck_assert_int_eq(srv_store_digest(st, after, NULL), IDP_OK);
	ck_assert_mem_eq(before, after, sizeof(before));
	srv_store_close(st);
}
END_TEST

/* Insert nonces first.. until a call fails (at most n); its code (IDP_OK:
 * none failed). */
static enum idp_err fill_nonces(struct srv_store *st, unsigned first, unsigned n,
                                struct idp_error *err)
{
	for (unsigned i = first; i < first + n; i++) {
		uint8_t nonce[SRV_STORE_NONCE_MAX];
		memset(nonce, 0, sizeof(nonce));
		memcpy(nonce, &i, sizeof(i));
		enum idp_err rc = srv_store_nonce_insert(st, nonce, sizeof(nonce), 2000000000, err);
		if (rc != IDP_OK)
			return rc;
	}
	return IDP_OK;
}

/* Out of storage is IDP_E_FULL (answered 503 storage_full), not IDP_E_IO:
 * here the file size limit (EFBIG, SIGXFSZ ignored, as idprovd does), in a
 * child process so that the limit stays there. Nothing is half-written and
 * writes resume once the limit is raised. A lock another connection holds
 * is IDP_E_AGAIN and srv_store_was_busy, at once with a wait of 0. */
START_TEST(test_store_full_and_busy)
{
	srv_store_close(open_ok()); /* the schema, before the limit */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		(void)signal(SIGXFSZ, SIG_IGN);
		struct stat sb;
		struct rlimit old, lim;
		if (stat(db_path, &sb) != 0 || getrlimit(RLIMIT_FSIZE, &old) != 0)
			_exit(2);
		lim = old;
		lim.rlim_cur = (rlim_t)sb.st_size + 64 * 1024;
		if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
			_exit(3);
		struct srv_store *st = NULL;
		struct idp_error err = {0};
		if (srv_store_open(db_path, &st, NULL) != IDP_OK)
			_exit(4);
		enum idp_err rc = fill_nonces(st, 0, 100000, &err);
		if (rc != IDP_E_FULL) {
			fprintf(stderr, "got %s: %s\n", idp_err_name(rc), err.msg);
			_exit(5);
		}
		if (setrlimit(RLIMIT_FSIZE, &old) != 0)
			_exit(6);
		rc = fill_nonces(st, 200000, 10, &err);
		if (rc != IDP_OK) {
			fprintf(stderr, "after: %s: %s\n", idp_err_name(rc), err.msg);
			_exit(7);
		}
		srv_store_close(st);
		_exit(0);
	}
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	ck_assert_int_gt(raw_int("SELECT count(*) FROM nonces"), 10);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM pragma_integrity_check WHERE "
	                         "integrity_check = 'ok'"),
	                 1);

	struct srv_store *a = open_ok(), *b = open_ok();
	struct idp_error err = {0};
	ck_assert_int_eq(srv_store_begin(a, NULL), IDP_OK);
	srv_store_set_busy_ms(b, 0);
	ck_assert(!srv_store_was_busy(b));
	ck_assert_int_eq(srv_store_begin(b, &err), IDP_E_AGAIN);
	ck_assert(srv_store_was_busy(b));
	srv_store_set_busy_ms(b, 0);
	ck_assert(!srv_store_was_busy(b));
	ck_assert_int_eq(srv_store_commit(a, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_begin(b, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_commit(b, NULL), IDP_OK);
	srv_store_close(a);
	srv_store_close(b);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("sqlite");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_store_open_migrates_from_empty_and_reopens);
	tcase_add_test(tc, test_store_open_refuses_newer_schema);
	tcase_add_test(tc, test_store_open_refuses_symlink_and_loose_modes);
	tcase_add_test(tc, test_store_snapshot_is_the_same_database);
	tcase_add_test(tc, test_store_pending_caps_and_expiry);
	tcase_add_test(tc, test_store_device_round_trip_find_and_update);
	tcase_add_test(tc, test_store_device_update_state_keeps_identity);
	tcase_add_test(tc, test_store_batches_and_chain_lookups);
	tcase_add_test(tc, test_store_tokens_single_use_across_connections);
	tcase_add_test(tc, test_store_failed_transaction_leaves_db_unchanged);
	tcase_add_test(tc, test_store_sigkill_mid_transaction_leaves_nothing_half_done);
	tcase_add_test(tc, test_store_audit_chain_detects_tampering);
	tcase_add_test(tc, test_store_audit_migration_chains_existing_rows);
	tcase_add_test(tc, test_store_credential_find_whole_hash);
	tcase_add_test(tc, test_store_foreach_walks_stops_and_refuses_oversized_rows);
	tcase_add_test(tc, test_store_names_and_checks);
	tcase_add_test(tc, test_store_flag_resolve_and_audit_subject);
	tcase_add_test(tc, test_store_site_suspension_allow_checkpoints);
	tcase_add_test(tc, test_store_suspension_cache_sees_other_connections);
	tcase_add_test(tc, test_store_group_commit_counts_flushes_and_checkpoints);
	tcase_add_test(tc, test_store_full_and_busy);
	suite_add_tcase(s, tc);
	return s;
}
