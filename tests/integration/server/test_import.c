/*
 * test_import.c - import.h on a real SQLite file: a signed manifest imports
 * whole; the same batch again imports once and answers the same; a replaced
 * batch, a bad signature, an untrusted station and a record reusing another
 * batch's serial are refused with the store unchanged (the reuse allowed once
 * an administrator released the value); a sequence gap is recorded and
 * flagged; a pending device is taken over; SIGKILL in the middle of a large
 * import, at several points, leaves the batch whole or absent; a station
 * disabled while its import waits for the write lock imports nothing. The
 * streaming import (srv_import_stream): from a spool written in uneven
 * chunks; a bad signature found only at the end of the body; bytes read back
 * that differ from the verified digest (same length, shorter, or another
 * header) roll back with the store unchanged.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "formats/b64.h"
#include "formats/manifest.h"
#include "formats/manifest_sig.h"
#include "server/import.h"
#include "server/spool.h"
#include "tests/unit/check_main.h"
#include "tests/unit/helpers.h"

#define NOW 1800000000

static char dir[64];
static char db_path[128];
static struct srv_store *st;
static struct fmt_key *station_key;

struct body {
	uint8_t *p;
	size_t len;
	uint8_t *sig;
	size_t sig_len;
};

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/idp-imp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(db_path, sizeof(db_path), "%s/idprov.db", dir);
	ck_assert_int_eq(srv_store_open(db_path, &st, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &station_key, NULL), IDP_OK);
	struct srv_station s = {.enabled = true, .created_at = 1};
	snprintf(s.id, sizeof(s.id), "station-01");
	ck_assert_int_eq(fmt_key_spki_der(station_key, s.pubkey, &s.pubkey_len, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_station_put(st, &s, NULL), IDP_OK);
}

static void teardown(void)
{
	srv_store_close(st);
	fmt_key_free(station_key);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void add(struct body *b, const uint8_t *s, size_t n)
{
	b->p = realloc(b->p, b->len + n);
	ck_assert_ptr_nonnull(b->p);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Batch seq of station-01 with n records numbered from first; prev is the
 * previous body's SHA-256 (NULL: zero for seq 1, else an unknown hash).
 * Signed with key. */
static struct body make(uint64_t seq, const uint8_t *prev, size_t first, size_t n,
                        const struct fmt_key *key)
{
	struct body b = {0};
	struct fmt_manifest_header h;
	memset(&h, 0, sizeof(h));
	h.version = FMT_MANIFEST_VERSION;
	snprintf(h.batch, sizeof(h.batch), "batch-%llu", (unsigned long long)seq);
	snprintf(h.station, sizeof(h.station), "station-01");
	h.seq = seq;
	if (prev != NULL)
		memcpy(h.prev, prev, sizeof(h.prev));
	else if (seq > 1)
		memset(h.prev, 0x55, sizeof(h.prev)); /* a body this store never saw */
	snprintf(h.created, sizeof(h.created), "2026-11-23T10:00:00Z");
	snprintf(h.product, sizeof(h.product), "sensor-x");
	h.count = n;
	h.sig = FMT_MANIFEST_SIG_ES256;
	ck_assert_int_eq(fmt_key_fingerprint(key, h.key, NULL), IDP_OK);
	struct fmt_manifest_writer w;
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t len = 0;
	ck_assert_int_eq(fmt_manifest_writer_begin(&w, &h, line, &len, NULL), IDP_OK);
	add(&b, line, len);
	for (size_t i = first; i < first + n; i++) {
		struct fmt_manifest_record r;
		memset(&r, 0, sizeof(r));
		snprintf(r.id, sizeof(r.id), "dev-%06zu", i);
		snprintf(r.serial, sizeof(r.serial), "SN%08zu", i);
		r.mac[0] = 0x02;
		r.mac[3] = (uint8_t)(i >> 16);
		r.mac[4] = (uint8_t)(i >> 8);
		r.mac[5] = (uint8_t)i;
		ck_assert_int_eq(fmt_manifest_writer_record(&w, &r, line, &len, NULL), IDP_OK);
		add(&b, line, len);
	}
	ck_assert_int_eq(fmt_manifest_writer_finish(&w, NULL), IDP_OK);
	ck_assert_int_eq(fmt_manifest_sign(FMT_MANIFEST_SIG_ES256, key, NULL, NULL, b.p, b.len,
	                                   &b.sig, &b.sig_len, NULL),
	                 IDP_OK);
	return b;
}

static void body_free(struct body *b)
{
	free(b->p);
	free(b->sig);
}

static enum idp_err import(const struct body *b, struct srv_import_result *r, struct idp_error *err)
{
	return srv_import(st, b->p, b->len, b->sig, b->sig_len, NULL, NULL, NOW, r, err);
}

static void digest(uint8_t out[32])
{
	ck_assert_int_eq(srv_store_digest(st, out, NULL), IDP_OK);
}

static int64_t devices(void)
{
	int64_t n = -1;
	ck_assert_int_eq(srv_store_device_count(st, 0, &n, NULL), IDP_OK);
	return n;
}

START_TEST(test_import_whole_idempotent_and_replaced)
{
	struct body b1 = make(1, NULL, 1, 50, station_key);
	struct srv_import_result r;
	struct idp_error err = {0};
	ck_assert_msg(import(&b1, &r, &err) == IDP_OK, "%s", err.msg);
	ck_assert(r.created);
	ck_assert(!r.gap);
	ck_assert_int_eq(r.devices, 50);
	ck_assert_str_eq(r.batch_id, "batch-1");
	ck_assert_int_eq(devices(), 50);
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(st, "dev-000007", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_PRELOADED);
	ck_assert_str_eq(d.batch_id, "batch-1");
	ck_assert_str_eq(d.serial, "SN00000007");

	/* The same upload again: same answer, nothing written. */
	uint8_t before[32], after[32];
	digest(before);
	ck_assert_int_eq(import(&b1, &r, &err), IDP_OK);
	ck_assert(!r.created);
	ck_assert_int_eq(r.devices, 50);
	digest(after);
	ck_assert_mem_eq(before, after, 32);

	/* Another body under sequence 1: a replaced batch. */
	struct body other = make(1, NULL, 1000, 3, station_key);
	ck_assert_int_eq(import(&other, &r, &err), IDP_E_CONFLICT);
	ck_assert_ptr_nonnull(strstr(err.msg, "other bytes"));
	/* One changed byte: the signature fails. */
	struct body b2 = make(2, NULL, 100, 5, station_key);
	b2.p[b2.len - 3] ^= 1;
	ck_assert_int_eq(import(&b2, &r, &err), IDP_E_VERIFY);
	/* A key the station does not have. */
	struct fmt_key *rogue = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &rogue, NULL), IDP_OK);
	struct body b3 = make(2, NULL, 100, 5, rogue);
	ck_assert_int_eq(import(&b3, &r, &err), IDP_E_DENIED);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	fmt_key_free(rogue);
	body_free(&b1);
	body_free(&other);
	body_free(&b2);
	body_free(&b3);
}
END_TEST

START_TEST(test_import_chain_gap_reuse_and_pending)
{
	struct body b1 = make(1, NULL, 1, 10, station_key);
	struct srv_import_result r;
	struct idp_error err = {0};
	ck_assert_int_eq(import(&b1, &r, &err), IDP_OK);
	uint8_t h1[32];
	SHA256(b1.p, b1.len, h1);

	/* Sequence 3 while 2 is missing: imported, recorded as a gap, flagged. */
	struct body b3 = make(3, h1, 300, 5, station_key);
	ck_assert_int_eq(import(&b3, &r, &err), IDP_OK);
	ck_assert(r.gap);
	struct srv_batch got;
	ck_assert_int_eq(srv_store_batch_get(st, "batch-3", &got, NULL), IDP_OK);
	ck_assert_int_eq(got.state, SRV_BATCH_GAP);
	int64_t n = 0;
	ck_assert_int_eq(srv_store_flag_count(st, "batch-gap", &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 1);

	/* Sequence 2 chained on 1, but its 4th record reuses batch 1's dev-000002
	 * (ID, serial, MAC): refused whole, naming the line. */
	struct body b2r = {0};
	{
		/* Records 200, 201, 202, then 2 (a reuse), then 203. */
		struct body tmp = make(2, h1, 200, 3, station_key);
		struct body reuse = make(2, h1, 2, 1, station_key);
		struct body tail = make(2, h1, 203, 1, station_key);
		const uint8_t *nl = memchr(tmp.p, '\n', tmp.len);
		size_t head_len = (size_t)(nl - tmp.p) + 1;
		/* Rebuild the header with count 5 via make(), then splice records. */
		struct body hdr = make(2, h1, 900, 5, station_key);
		const uint8_t *hnl = memchr(hdr.p, '\n', hdr.len);
		add(&b2r, hdr.p, (size_t)(hnl - hdr.p) + 1);
		add(&b2r, tmp.p + head_len, tmp.len - head_len);
		const uint8_t *rnl = memchr(reuse.p, '\n', reuse.len);
		add(&b2r, rnl + 1, reuse.len - (size_t)(rnl + 1 - reuse.p));
		const uint8_t *tnl = memchr(tail.p, '\n', tail.len);
		add(&b2r, tnl + 1, tail.len - (size_t)(tnl + 1 - tail.p));
		ck_assert_int_eq(fmt_manifest_sign(FMT_MANIFEST_SIG_ES256, station_key, NULL, NULL,
		                                   b2r.p, b2r.len, &b2r.sig, &b2r.sig_len, NULL),
		                 IDP_OK);
		body_free(&tmp);
		body_free(&reuse);
		body_free(&tail);
		body_free(&hdr);
	}
	uint8_t before[32], after[32];
	digest(before);
	ck_assert_int_eq(import(&b2r, &r, &err), IDP_E_DUPLICATE);
	ck_assert_msg(strstr(err.msg, "line 5") != NULL && strstr(err.msg, "dev-000002") != NULL,
	              "%s", err.msg);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	ck_assert_int_eq(srv_store_batch_get(st, "batch-2", &got, NULL), IDP_E_NOTFOUND);

	/* Released by an administrator (ID, serial and MAC): now it imports. */
	ck_assert_int_eq(srv_store_release_add(st, SRV_IDENT_ID, (const uint8_t *)"dev-000002", 10,
	                                       NOW, NULL),
	                 IDP_OK);
	ck_assert_int_eq(srv_store_release_add(st, SRV_IDENT_SERIAL, (const uint8_t *)"SN00000002",
	                                       10, NOW, NULL),
	                 IDP_OK);
	ck_assert_int_eq(srv_store_release_add(st, SRV_IDENT_MAC,
	                                       (const uint8_t *)"02:00:00:00:00:02", 17, NOW, NULL),
	                 IDP_OK);
	ck_assert_msg(import(&b2r, &r, &err) == IDP_OK, "%s", err.msg);
	ck_assert(!r.gap);
	ck_assert_int_eq(r.devices, 5);
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(st, "dev-000002", &d, NULL), IDP_OK);
	ck_assert_str_eq(d.batch_id, "batch-2");

	/* A device that asked before its manifest came is taken over. */
	struct srv_device p;
	memset(&p, 0, sizeof(p));
	snprintf(p.id, sizeof(p.id), "dev-000400");
	p.state = SRV_DEV_PENDING;
	p.attempts = 3;
	ck_assert_int_eq(srv_store_device_insert(st, &p, NULL), IDP_OK);
	struct body b4 = make(4, NULL, 400, 2, station_key);
	ck_assert_int_eq(import(&b4, &r, &err), IDP_OK);
	ck_assert(r.gap); /* its prev is not batch 3's hash */
	ck_assert_int_eq(srv_store_device_get(st, "dev-000400", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_PRELOADED);
	ck_assert_int_eq(d.attempts, 3);
	ck_assert_str_eq(d.batch_id, "batch-4");
	body_free(&b1);
	body_free(&b3);
	body_free(&b2r);
	body_free(&b4);
}
END_TEST

/* A device row in state with mac (may be "") inserted directly. */
static void claim(const char *id, enum srv_device_state state, const char *mac)
{
	struct srv_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", id);
	snprintf(d.mac, sizeof(d.mac), "%s", mac);
	d.state = state;
	d.created_at = d.updated_at = NOW - 10;
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
}

struct seen {
	char subjects[8][SRV_STORE_ID_MAX + 1];
	size_t n;
};

static int seen_flag(void *ctx, const struct srv_flag *f)
{
	struct seen *s = ctx;
	if (strcmp(f->kind, SRV_IMPORT_FLAG_COLLISION) == 0 && s->n < 8)
		snprintf(s->subjects[s->n++], sizeof(s->subjects[0]), "%s", f->subject);
	return 0;
}

/* Issue 8 item 3: unknown clients' pending rows (and rejected ones) holding a
 * manifest device's MAC, or its ID with another MAC, do not block the signed
 * manifest; each collision is flagged on the claim. Enrolled devices still do. */
START_TEST(test_import_claims_do_not_block_the_manifest)
{
	claim("junk-1", SRV_DEV_PENDING, "02:00:00:00:00:01");
	claim("junk-2", SRV_DEV_REJECTED, "02:00:00:00:00:02");
	claim("dev-000003", SRV_DEV_PENDING, "02:66:66:66:66:66");
	claim("dev-000004", SRV_DEV_PENDING, ""); /* asked before its manifest, no MAC */
	struct body b1 = make(1, NULL, 1, 5, station_key);
	struct srv_import_result r;
	struct idp_error err = {0};
	ck_assert_msg(import(&b1, &r, &err) == IDP_OK, "%s", err.msg);
	ck_assert_int_eq(r.devices, 5);
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(st, "dev-000001", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_PRELOADED);
	ck_assert_str_eq(d.mac, "02:00:00:00:00:01");
	ck_assert_int_eq(srv_store_device_get(st, "junk-1", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_PENDING); /* left for the administrator */
	ck_assert_int_eq(srv_store_device_get(st, "dev-000003", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_PRELOADED);
	ck_assert_str_eq(d.mac, "02:00:00:00:00:03");
	struct seen seen = {0};
	const struct srv_flag_query fq = {.limit = 100};
	ck_assert_int_eq(srv_store_flag_foreach(st, &fq, seen_flag, &seen, NULL), IDP_OK);
	ck_assert_uint_eq(seen.n, 3); /* newest first */
	ck_assert_str_eq(seen.subjects[0], "dev-000003");
	ck_assert_str_eq(seen.subjects[1], "junk-2");
	ck_assert_str_eq(seen.subjects[2], "junk-1");

	/* An enrolled device holding a record's MAC still refuses the batch. */
	claim("real-9", SRV_DEV_APPROVED, "02:00:00:00:00:0a");
	uint8_t h1[32], before[32], after[32];
	SHA256(b1.p, b1.len, h1);
	struct body b2 = make(2, h1, 10, 2, station_key);
	digest(before);
	ck_assert_int_eq(import(&b2, &r, &err), IDP_E_DUPLICATE);
	ck_assert_msg(strstr(err.msg, "real-9") != NULL, "%s", err.msg);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	body_free(&b1);
	body_free(&b2);
}
END_TEST

/* A product rule: serials SN + 8 digits, divisible by 7. */
/* src with record number rec (1-based) given pub = spki, signed again by
 * station_key: what a station (or anyone holding its key) could upload. */
static struct body with_pub(const struct body *src, size_t rec, const uint8_t *spki, size_t n)
{
	char b64[FMT_KEY_SPKI_MAX * 2];
	b64[fmt_b64_encode(FMT_B64_STD, spki, n, b64)] = '\0';
	struct body b = {0};
	const uint8_t *p = src->p, *end = src->p + src->len;
	for (size_t line = 0; p < end; line++) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		ck_assert_ptr_nonnull(nl);
		if (line == rec) {
			ck_assert_uint_eq(nl[-1], '}');
			add(&b, p, (size_t)(nl - 1 - p));
			char member[160];
			int m = snprintf(member, sizeof(member), ",\"pub\":\"%s\"}\n", b64);
			add(&b, (const uint8_t *)member, (size_t)m);
		} else {
			add(&b, p, (size_t)(nl + 1 - p));
		}
		p = nl + 1;
	}
	ck_assert_int_eq(fmt_manifest_sign(FMT_MANIFEST_SIG_ES256, station_key, NULL, NULL, b.p,
	                                   b.len, &b.sig, &b.sig_len, NULL),
	                 IDP_OK);
	return b;
}

/* A signed manifest naming a device with an Ed25519 key anyone can sign for
 * is refused whole, naming the line and the problem; store unchanged. The
 * same manifest with a real key imports (the patching makes valid bodies). */
START_TEST(test_import_refuses_weak_ed25519_keys)
{
	struct body plain = make(1, NULL, 1, 3, station_key);
	struct srv_import_result r;
	struct idp_error err = {0};
	uint8_t before[32], after[32];
	digest(before);
	for (size_t i = 0; i < IDP_TEST_SMALL_ORDER_N + IDP_TEST_NONCANONICAL_N; i++) {
		bool small = i < IDP_TEST_SMALL_ORDER_N;
		uint8_t spki[IDP_TEST_ED25519_SPKI_LEN];
		idp_test_ed25519_spki(small ? idp_test_small_order[i]
		                            : idp_test_noncanonical[i - IDP_TEST_SMALL_ORDER_N],
		                      spki);
		struct body bad = with_pub(&plain, 2, spki, sizeof(spki));
		ck_assert_int_eq(import(&bad, &r, &err), IDP_E_FORMAT);
		ck_assert_msg(strstr(err.msg, "line 3") != NULL &&
		                      strstr(err.msg,
		                             small ? "ed25519 public key is of small order"
		                                   : "ed25519 public key is not canonical") != NULL,
		              "%s", err.msg);
		body_free(&bad);
	}
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	ck_assert_int_eq(devices(), 0);
	uint8_t good[FMT_KEY_SPKI_MAX];
	size_t glen = idp_test_fresh_spki(FMT_KEY_ED25519, good);
	struct body ok = with_pub(&plain, 2, good, glen);
	ck_assert_msg(import(&ok, &r, &err) == IDP_OK, "%s", err.msg);
	ck_assert_int_eq(devices(), 3);
	body_free(&ok);
	body_free(&plain);
}
END_TEST

START_TEST(test_import_rules_refuse_a_bad_serial)
{
	struct srv_rules rules = {.n = 0};
	ck_assert_int_eq(srv_rules_add(&rules,
	                               "product=sensor-x field=serial pattern=SN[0-9]{8} "
	                               "check=div:7",
	                               NULL),
	                 IDP_OK);
	struct body ok = make(1, NULL, 7, 1, station_key);   /* SN00000007 */
	struct body bad = make(1, NULL, 14, 2, station_key); /* SN00000014, SN00000015 */
	struct srv_import_result r;
	struct idp_error err = {0};
	uint8_t before[32], after[32];
	digest(before);
	ck_assert_int_eq(
	        srv_import(st, bad.p, bad.len, bad.sig, bad.sig_len, NULL, &rules, NOW, &r, &err),
	        IDP_E_FORMAT);
	ck_assert_msg(strstr(err.msg, "line 3: device dev-000015") != NULL &&
	                      strstr(err.msg, "divisible by 7") != NULL,
	              "%s", err.msg);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	ck_assert_int_eq(
	        srv_import(st, ok.p, ok.len, ok.sig, ok.sig_len, NULL, &rules, NOW, &r, &err),
	        IDP_OK);
	srv_rules_free(&rules);
	body_free(&ok);
	body_free(&bad);
}
END_TEST

START_TEST(test_import_sigkill_leaves_batch_whole_or_absent)
{
	const size_t n = 8000;
	struct body b1 = make(1, NULL, 1, 10, station_key);
	struct srv_import_result r;
	ck_assert_int_eq(import(&b1, &r, NULL), IDP_OK);
	uint8_t h1[32];
	SHA256(b1.p, b1.len, h1);
	struct body big = make(2, h1, 1000, n, station_key);
	uint8_t before[32], after[32];
	digest(before);
	srv_store_close(st);
	st = NULL;
	static const long delays_us[] = {1000, 20000, 60000, 150000, 400000};
	bool saw_absent = false;
	for (size_t i = 0; i < sizeof(delays_us) / sizeof(delays_us[0]); i++) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			struct srv_store *cs = NULL;
			if (srv_store_open(db_path, &cs, NULL) != IDP_OK)
				_exit(2);
			struct srv_import_result cr;
			_exit(srv_import(cs, big.p, big.len, big.sig, big.sig_len, NULL, NULL, NOW,
			                 &cr, NULL) == IDP_OK
			              ? 0
			              : 3);
		}
		struct timespec ts = {0, delays_us[i] * 1000};
		nanosleep(&ts, NULL);
		(void)kill(pid, SIGKILL);
		int status = 0;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(!WIFEXITED(status) || WEXITSTATUS(status) == 0);
		ck_assert_int_eq(srv_store_open(db_path, &st, NULL), IDP_OK);
		struct srv_batch got;
		enum idp_err brc = srv_store_batch_get(st, "batch-2", &got, NULL);
		if (brc == IDP_OK) {
			/* Committed before the kill: whole. Undo for the next round. */
			ck_assert_int_eq(devices(), 10 + (int64_t)n);
			srv_store_close(st);
			st = NULL;
			char cmd[512];
			snprintf(
			        cmd, sizeof(cmd),
			        "sqlite3 '%s' \"DELETE FROM devices WHERE batch_id = 'batch-2'; "
			        "DELETE FROM batches WHERE id = 'batch-2'; DELETE FROM audit WHERE "
			        "subject = 'batch-2';\"",
			        db_path);
			ck_assert_int_eq(system(cmd), 0);
			ck_assert_int_eq(srv_store_open(db_path, &st, NULL), IDP_OK);
		} else {
			ck_assert_int_eq(brc, IDP_E_NOTFOUND);
			ck_assert_int_eq(devices(), 10);
			saw_absent = true;
		}
		digest(after);
		ck_assert_mem_eq(before, after, 32);
		srv_store_close(st);
		st = NULL;
	}
	ck_assert(saw_absent); /* at least one kill landed mid-import */
	ck_assert_int_eq(srv_store_open(db_path, &st, NULL), IDP_OK);
	body_free(&b1);
	body_free(&big);
}
END_TEST

/* b written into a spool in uneven chunks (as an upload arrives). */
static struct srv_spool *spooled(const uint8_t *p, size_t len)
{
	struct srv_spool *sp = NULL;
	ck_assert_int_eq(srv_spool_new(dir, &sp, NULL), IDP_OK);
	for (size_t pos = 0, step = 1; pos < len; pos += step, step = step * 7 % 5003 + 1) {
		size_t n = len - pos < step ? len - pos : step;
		ck_assert_int_eq(srv_spool_write(sp, p + pos, n, NULL), IDP_OK);
	}
	ck_assert_uint_eq(srv_spool_size(sp), len);
	return sp;
}

static enum idp_err import_spooled(const uint8_t *p, size_t len, const struct body *signed_by,
                                   struct srv_import_result *r, struct idp_error *err)
{
	struct srv_spool *sp = spooled(p, len);
	struct srv_import_src src;
	ck_assert_int_eq(srv_spool_source(sp, &src, NULL), IDP_OK);
	enum idp_err rc = srv_import_stream(st, &src, signed_by->sig, signed_by->sig_len, NULL,
	                                    NULL, NOW, r, err);
	srv_spool_free(sp);
	return rc;
}

START_TEST(test_import_stream_from_spool)
{
	struct body b = make(1, NULL, 1, 3000, station_key);
	uint8_t before[32], after[32];
	digest(before);
	struct srv_import_result r;
	struct idp_error err = {0};
	/* The last record's last serial digit changed: the body is still a
	 * well-formed manifest, only the signature over all of it fails. */
	uint8_t *bad = malloc(b.len);
	ck_assert_ptr_nonnull(bad);
	memcpy(bad, b.p, b.len);
	ck_assert_int_eq(bad[b.len - 4], '0');
	bad[b.len - 4] = '1';
	ck_assert_int_eq(import_spooled(bad, b.len, &b, &r, &err), IDP_E_VERIFY);
	ck_assert_msg(strstr(err.msg, "signature: does not match the body") != NULL, "%s", err.msg);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	/* Cut after half its lines: refused the same way. */
	const uint8_t *half = b.p + b.len / 2;
	while (*half != '\n')
		half++;
	ck_assert_int_eq(import_spooled(b.p, (size_t)(half - b.p) + 1, &b, &r, &err), IDP_E_VERIFY);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	ck_assert_msg(import_spooled(b.p, b.len, &b, &r, &err) == IDP_OK, "%s", err.msg);
	ck_assert(r.created);
	ck_assert_int_eq(r.devices, 3000);
	ck_assert_int_eq(devices(), 3000);
	free(bad);
	body_free(&b);
}
END_TEST

/* A source whose bytes are not those its digest and header describe. */
struct liar {
	const uint8_t *p;
	size_t len;
	bool given;
};

static enum idp_err liar_next(void *ctx, const uint8_t **chunk, size_t *n, struct idp_error *err)
{
	(void)err;
	struct liar *l = ctx;
	*chunk = l->p;
	*n = l->given ? 0 : l->len;
	l->given = true;
	return IDP_OK;
}

START_TEST(test_import_stream_read_back_must_match_the_digest)
{
	struct body b = make(1, NULL, 1, 200, station_key);
	struct body other = make(2, NULL, 1, 200, station_key); /* another header */
	uint8_t before[32], after[32];
	digest(before);
	const uint8_t *lf = memchr(b.p, '\n', b.len);
	struct srv_import_src src = {.header = b.p, .header_len = (size_t)(lf - b.p) + 1,
	                             .len = b.len, .next = liar_next};
	SHA256(b.p, b.len, src.sha256);
	uint8_t *changed = malloc(b.len);
	ck_assert_ptr_nonnull(changed);
	memcpy(changed, b.p, b.len);
	changed[b.len - 4] = changed[b.len - 4] == '1' ? '2' : '1';
	/* same length, one byte off; one line short; the same length of another
	 * batch (its own header, so its records are not b's) */
	size_t short_len = b.len - 1;
	while (b.p[short_len - 1] != '\n')
		short_len--;
	struct liar lies[] = {
	        {changed, b.len, false}, {b.p, short_len, false}, {other.p, other.len, false}};
	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		src.ctx = &lies[i];
		struct srv_import_result r;
		struct idp_error err = {0};
		enum idp_err rc = srv_import_stream(st, &src, b.sig, b.sig_len, NULL, NULL, NOW, &r,
		                                    &err);
		ck_assert_msg(rc == IDP_E_VERIFY, "lie %zu: %d %s", i, rc, err.msg);
		ck_assert_msg(strstr(err.msg, "differs from the one verified") != NULL, "lie %zu: %s",
		              i, err.msg);
		digest(after);
		ck_assert_mem_eq(before, after, 32);
	}
	free(changed);
	body_free(&b);
	body_free(&other);
}
END_TEST

struct racer {
	const struct body *b;
	struct srv_import_result r;
	struct idp_error err;
	enum idp_err rc;
};

static void *import_thread(void *arg)
{
	struct racer *x = arg;
	x->rc = import(x->b, &x->r, &x->err);
	return NULL;
}

START_TEST(test_import_station_disabled_in_flight_imports_nothing)
{
	/* Another connection holds the write lock and disables the station;
	 * the import reads the station (still enabled: the change is not
	 * committed), verifies, and waits for the lock. When it gets it, the
	 * station is disabled: the check inside the transaction refuses. */
	struct srv_store *admin = NULL;
	ck_assert_int_eq(srv_store_open(db_path, &admin, NULL), IDP_OK);
	uint8_t before[32], after[32];
	digest(before);
	ck_assert_int_eq(srv_store_begin(admin, NULL), IDP_OK);
	struct srv_station s;
	ck_assert_int_eq(srv_store_station_get(admin, "station-01", &s, NULL), IDP_OK);
	s.enabled = false;
	ck_assert_int_eq(srv_store_station_put(admin, &s, NULL), IDP_OK);
	struct body b = make(1, NULL, 1, 20, station_key);
	struct racer x = {.b = &b};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, import_thread, &x), 0);
	/* Give the import time to pass its first checks (not an assertion:
	 * the outcome below must be the same whenever the commit lands). */
	struct timespec pause = {.tv_sec = 0, .tv_nsec = 300 * 1000 * 1000};
	nanosleep(&pause, NULL);
	ck_assert_int_eq(srv_store_commit(admin, NULL), IDP_OK);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(x.rc, IDP_E_DENIED);
	ck_assert_ptr_nonnull(strstr(x.err.msg, "station-01 is disabled"));
	ck_assert_int_eq(devices(), 0);
	/* Only the station row changed (the admin's commit). */
	s.enabled = true;
	ck_assert_int_eq(srv_store_station_put(admin, &s, NULL), IDP_OK);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	srv_store_close(admin);
	body_free(&b);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("import");
	TCase *tc = tcase_create("manifest");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_import_whole_idempotent_and_replaced);
	tcase_add_test(tc, test_import_chain_gap_reuse_and_pending);
	tcase_add_test(tc, test_import_claims_do_not_block_the_manifest);
	tcase_add_test(tc, test_import_rules_refuse_a_bad_serial);
	tcase_add_test(tc, test_import_refuses_weak_ed25519_keys);
	tcase_add_test(tc, test_import_sigkill_leaves_batch_whole_or_absent);
	tcase_add_test(tc, test_import_station_disabled_in_flight_imports_nothing);
	tcase_add_test(tc, test_import_stream_from_spool);
	tcase_add_test(tc, test_import_stream_read_back_must_match_the_digest);
	suite_add_tcase(s, tc);
	return s;
}
