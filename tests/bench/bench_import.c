/*
 * bench_import.c - import of a signed 100,000-device manifest into a fresh
 * SQLite store (srv_import: verify, chain and reuse checks, one transaction,
 * synchronous=FULL) against the ceiling measured in the same run: SQLite's
 * raw insert of the same rows into the same devices table in one transaction
 * with prepared statements and the same pragmas. Each is run in a child
 * process on its own fresh file, alternately, three times; the medians are
 * compared (goal: ratio >= 0.5). Peak RSS of the importing child is printed
 * against the body's size (the body is in memory; the records stream).
 * Exits non-zero only when an operation fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "formats/mac.h"
#include "formats/manifest.h"
#include "formats/manifest_sig.h"
#include "server/import.h"

#define DEVICES 100000u
#define ROUNDS  3

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct body {
	uint8_t *p;
	size_t len, cap;
};

static int add(struct body *b, const uint8_t *s, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap == 0 ? 1u << 20 : b->cap * 2;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (p == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static void record(size_t i, struct fmt_manifest_record *r)
{
	memset(r, 0, sizeof(*r));
	(void)snprintf(r->id, sizeof(r->id), "dev-%07zu", i);
	(void)snprintf(r->serial, sizeof(r->serial), "SN%09zu", i);
	r->mac[0] = 0x02;
	r->mac[3] = (uint8_t)(i >> 16);
	r->mac[4] = (uint8_t)(i >> 8);
	r->mac[5] = (uint8_t)i;
}

static int make_body(const struct fmt_key *key, struct body *b)
{
	struct fmt_manifest_header h;
	memset(&h, 0, sizeof(h));
	h.version = FMT_MANIFEST_VERSION;
	(void)snprintf(h.batch, sizeof(h.batch), "bench-1");
	(void)snprintf(h.station, sizeof(h.station), "station-01");
	h.seq = 1;
	(void)snprintf(h.created, sizeof(h.created), "2026-11-23T10:00:00Z");
	(void)snprintf(h.product, sizeof(h.product), "sensor-x");
	h.count = DEVICES;
	h.sig = FMT_MANIFEST_SIG_ES256;
	if (fmt_key_fingerprint(key, h.key, NULL) != IDP_OK)
		return -1;
	struct fmt_manifest_writer w;
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t len = 0;
	if (fmt_manifest_writer_begin(&w, &h, line, &len, NULL) != IDP_OK || add(b, line, len) != 0)
		return -1;
	for (size_t i = 1; i <= DEVICES; i++) {
		struct fmt_manifest_record r;
		record(i, &r);
		if (fmt_manifest_writer_record(&w, &r, line, &len, NULL) != IDP_OK ||
		    add(b, line, len) != 0)
			return -1;
	}
	return fmt_manifest_writer_finish(&w, NULL) == IDP_OK ? 0 : -1;
}

/* Child: open a fresh store with the station and import. */
static int run_import(const char *path, const struct fmt_key *key, const struct body *b,
                      const uint8_t *sig, size_t sig_len, double *secs)
{
	struct srv_store *st = NULL;
	struct idp_error err = {0};
	struct srv_station s = {.enabled = true};
	(void)snprintf(s.id, sizeof(s.id), "station-01");
	if (srv_store_open(path, &st, &err) != IDP_OK ||
	    fmt_key_spki_der(key, s.pubkey, &s.pubkey_len, &err) != IDP_OK ||
	    srv_store_station_put(st, &s, &err) != IDP_OK) {
		fprintf(stderr, "bench_import: %s\n", err.msg);
		srv_store_close(st);
		return -1;
	}
	struct srv_import_result r;
	double t0 = now_s();
	enum idp_err rc =
	        srv_import(st, b->p, b->len, sig, sig_len, NULL, NULL, 1800000000, &r, &err);
	*secs = now_s() - t0;
	srv_store_close(st);
	if (rc != IDP_OK || r.devices != DEVICES) {
		fprintf(stderr, "bench_import: import: %s\n", err.msg);
		return -1;
	}
	return 0;
}

/* Child: the same rows into the same table, raw: the ceiling. */
static int run_raw(const char *path, double *secs)
{
	struct srv_store *st = NULL;
	if (srv_store_open(path, &st, NULL) != IDP_OK) /* same schema and pragmas */
		return -1;
	srv_store_close(st);
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL;
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
	                 NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
	            db,
	            "INSERT INTO devices (id, mac, serial, state, created_at, updated_at) "
	            "VALUES (?1, ?2, ?3, 'preloaded', 1, 1)",
	            -1, &ins, NULL) != SQLITE_OK)
		return -1;
	double t0 = now_s();
	int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (size_t i = 1; rc == SQLITE_OK && i <= DEVICES; i++) {
		struct fmt_manifest_record r;
		record(i, &r);
		char mac[FMT_MAC_TEXT_LEN + 1];
		fmt_mac_format(r.mac, mac);
		(void)sqlite3_reset(ins);
		if (sqlite3_bind_text(ins, 1, r.id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_text(ins, 2, mac, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_text(ins, 3, r.serial, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_step(ins) != SQLITE_DONE)
			rc = SQLITE_ERROR;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	*secs = now_s() - t0;
	sqlite3_finalize(ins);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Run one measurement in a child on a fresh file: seconds, and its peak RSS in KiB. */
static int measure(int which, const char *dir, int round, const struct fmt_key *key,
                   const struct body *b, const uint8_t *sig, size_t sig_len, double *secs,
                   long *rss_kib)
{
	char path[256];
	(void)snprintf(path, sizeof(path), "%s/%s-%d.db", dir, which ? "raw" : "imp", round);
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		(void)close(p[0]);
		double s = 0;
		int rc = which ? run_raw(path, &s) : run_import(path, key, b, sig, sig_len, &s);
		ssize_t w = write(p[1], &s, sizeof(s));
		_exit(rc == 0 && w == (ssize_t)sizeof(s) ? 0 : 1);
	}
	(void)close(p[1]);
	ssize_t r = read(p[0], secs, sizeof(*secs));
	(void)close(p[0]);
	int status = 0;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    r != (ssize_t)sizeof(*secs))
		return -1;
	*rss_kib = ru.ru_maxrss;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(void)
{
	char dir[] = "/tmp/idp-bench-import-XXXXXX";
	if (mkdtemp(dir) == NULL)
		return 1;
	struct fmt_key *key = NULL;
	struct body b = {0};
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	int rc = 1;
	if (fmt_key_generate(FMT_KEY_P256, &key, NULL) != IDP_OK || make_body(key, &b) != 0 ||
	    fmt_manifest_sign(FMT_MANIFEST_SIG_ES256, key, NULL, NULL, b.p, b.len, &sig, &sig_len,
	                      NULL) != IDP_OK)
		goto out;
	double imp[ROUNDS], raw[ROUNDS];
	long rss_imp = 0, rss_raw = 0, rss;
	for (int i = 0; i < ROUNDS; i++) {
		if (measure(0, dir, i, key, &b, sig, sig_len, &imp[i], &rss) != 0)
			goto out;
		if (rss > rss_imp)
			rss_imp = rss;
		if (measure(1, dir, i, key, &b, sig, sig_len, &raw[i], &rss) != 0)
			goto out;
		if (rss > rss_raw)
			rss_raw = rss;
	}
	qsort(imp, ROUNDS, sizeof(double), cmp_double);
	qsort(raw, ROUNDS, sizeof(double), cmp_double);
	double ri = DEVICES / imp[ROUNDS / 2], rr = DEVICES / raw[ROUNDS / 2];
	printf("import %u devices: %.0f devices/s (idprov import), %.0f rows/s (raw SQLite "
	       "insert, same rows, one transaction)\n",
	       DEVICES, ri, rr);
	printf("import ratio: %.2f (goal >= 0.50)\n", ri / rr);
	printf("import peak RSS: %ld KiB with a %zu KiB body in memory (raw insert child: %ld "
	       "KiB)\n",
	       rss_imp, b.len / 1024, rss_raw);
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "bench_import: failed\n");
	free(sig);
	free(b.p);
	fmt_key_free(key);
	char cmd[128];
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
