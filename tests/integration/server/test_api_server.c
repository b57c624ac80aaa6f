/*
 * test_api_server.c - the device endpoints end to end: idprovd's HTTPS front
 * and handlers run in this process on 127.0.0.1 (two loops, real TLS, a real
 * SQLite file); the client is libcurl, which signs each proof of possession
 * with the TLS exporter of its own connection from inside the read callback
 * (CURLINFO_TLS_SSL_PTR). Every decision path, and forged, relayed and
 * replayed proofs, stale proofs, replayed nonces, tokens for another audience
 * or already used, and truncated or oversized bodies, each of which must
 * leave the store unchanged (digest before and after). The token key set at
 * GET /v1/keys verifies issued tokens, before and after a key rotation.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sqlite3.h>

#include "formats/api.h"
#include "formats/pop.h"
#include "formats/b64.h"
#include "formats/file.h"
#include "formats/io/tls.h"
#include "formats/manifest.h"
#include "formats/manifest_sig.h"
#include "formats/oob.h"
#include "formats/token.h"
#include "server/handlers.h"
#include "server/routes.h"
#include "server/httpd.h"
#include "server/import.h"
#include "tests/unit/check_main.h"
#include "tests/unit/helpers.h"

static char dir[64];
static char ca_path[128];
static struct srv_config cfg;
static struct srv_state *state;
static struct srv_httpd *httpd;
static struct srv_app app;
static struct srv_store *db; /* the test's own connection */
static char base_url[96];
static struct fmt_key *station_key; /* station-01's key, certified by the station CA */
static char admin_secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
static bool throttles_on; /* the "throttle" tcase: per device ID and per station on */

/* A certificate for key, CN cn, signed by issuer_key (self-signed: issuer NULL). */
static X509 *make_cert(const char *cn, const struct fmt_key *key, X509 *issuer,
                       const struct fmt_key *issuer_key, bool ca)
{
	return idp_test_cert_cn(fmt_key_evp(key), cn, issuer, fmt_key_evp(issuer_key), ca);
}

static void write_pem(const char *name, X509 *cert, const struct fmt_key *key)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	if (cert != NULL)
		ck_assert_int_eq(PEM_write_X509(f, cert), 1);
	else
		ck_assert_int_eq(
		        PEM_write_PrivateKey(f, fmt_key_evp(key), NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
}

/* Station CA, station-01's certificate and key as files; station-ca in cfg. */
static void make_station(void)
{
	struct fmt_key *ca_key = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &ca_key, NULL), IDP_OK);
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &station_key, NULL), IDP_OK);
	X509 *ca = make_cert("factory CA", ca_key, NULL, ca_key, true);
	X509 *crt = make_cert("station-01", station_key, ca, ca_key, false);
	write_pem("station-ca.pem", ca, NULL);
	write_pem("station.pem", crt, NULL);
	write_pem("station.key", NULL, station_key);
	/* The same key and CA, but a subject with a second commonName. */
	X509 *two = make_cert("station-01", station_key, ca, ca_key, false);
	ck_assert_int_eq(X509_NAME_add_entry_by_txt(X509_get_subject_name(two), "CN", MBSTRING_UTF8,
	                                            (const unsigned char *)"station-09", -1, -1,
	                                            0),
	                 1);
	ck_assert_int_gt(X509_sign(two, fmt_key_evp(ca_key), EVP_sha256()), 0);
	write_pem("station-2cn.pem", two, NULL);
	X509_free(two);
	snprintf(cfg.station_ca, sizeof(cfg.station_ca), "%s/station-ca.pem", dir);
	X509_free(ca);
	X509_free(crt);
	fmt_key_free(ca_key);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/idp-apis-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	srv_config_defaults(&cfg);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s/state", dir);
	cfg.n_listen = 0;
	ck_assert_int_eq(srv_config_set(&cfg, "listen", "127.0.0.1:0", NULL), IDP_OK);
	cfg.threads = 2;
	/* Hundreds of requests from one loopback address: the per-address
	 * throttle is tested by test_throttle.c and integration/server/throttle.sh. */
	cfg.throttle_per_minute = 0;
	/* Per device ID and per station: off but in the "throttle" tcase;
	 * wrong out-of-band proofs: the defaults. */
	cfg.throttle_device_per_minute = throttles_on ? 1 : 0;
	cfg.throttle_device_burst = 3;
	cfg.throttle_station_per_minute = throttles_on ? 1 : 0;
	cfg.throttle_station_burst = 2;
	make_station();
	struct srv_state_opts o = {.dir = cfg.state_dir};
	ck_assert_int_eq(srv_state_open(&o, &state, admin_secret, NULL), IDP_OK);
	size_t n = 0;
	const struct srv_route *routes = srv_routes(&n);
	struct idp_error err = {0};
	ck_assert_msg(srv_httpd_new(&cfg, state, routes, n, &app, &httpd, &err) == IDP_OK, "%s",
	              err.msg);
	ck_assert_int_eq(srv_app_init(&app, &cfg, srv_httpd_bound(httpd, 0), NULL), IDP_OK);
	ck_assert_int_eq(srv_httpd_start(httpd, NULL), IDP_OK);
	snprintf(base_url, sizeof(base_url), "https://%s", srv_httpd_bound(httpd, 0));
	snprintf(ca_path, sizeof(ca_path), "%s/state/ca.pem", dir);
	ck_assert_int_eq(srv_store_open(state->db_path, &db, NULL), IDP_OK);
	struct srv_station st = {.enabled = true};
	snprintf(st.id, sizeof(st.id), "station-01");
	ck_assert_int_eq(fmt_key_spki_der(station_key, st.pubkey, &st.pubkey_len, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_station_put(db, &st, NULL), IDP_OK);
}

static void teardown(void)
{
	srv_store_close(db);
	srv_httpd_shutdown(httpd);
	srv_httpd_free(httpd);
	srv_app_free(&app);
	srv_state_free(state);
	fmt_key_free(station_key);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---------------------------------------------------------------- client */

enum sign_mode {
	SIGN_OWN,     /* the exporter of the request's own connection */
	SIGN_RELAYED, /* another connection's exporter (a relay) */
	SIGN_FORGED,  /* own exporter, then one signature bit flipped */
	SIGN_STALE,   /* ts 1000 s in the past */
	SIGN_NO_CTX,  /* own exporter computed with no context (not RFC 9266) */
	SIGN_HIGH_S,  /* own exporter, then the ECDSA twin (r, n - s) */
	RAW,          /* send raw[] as it is */
};

struct call {
	CURL *curl;
	enum sign_mode mode;
	struct fmt_api_request req;
	const struct fmt_key *key;
	const uint8_t *nonce;
	char body[FMT_API_BODY_MAX + 64];
	size_t len, off;
	bool built;
	char answer[2 * FMT_API_BODY_MAX];
	size_t answer_len;
	long status; /* 0 when the transfer failed (may_fail) */
	bool may_fail;
	char retry_after[32];
	bool tls12;       /* client limited to TLS 1.2 */
	int tls_version;  /* of the connection, seen in read_cb */
	bool ctx_differs; /* empty-context and no-context exporters differ */
	/* An out-of-band proof (formats/oob.h) with this verifier, made for the
	 * key oob_key_as (NULL: key) over this connection's exporter, or with
	 * oob_other_conn over another connection's (a relayed proof). */
	const uint8_t *oob_verifier;
	const struct fmt_key *oob_key_as;
	bool oob_other_conn;
	CURLSH *share;          /* when set: the TLS session store (resumption) */
	bool reused;            /* the connection resumed a session (read_cb) */
	uint8_t seen[FMT_API_EXPORTER_LEN]; /* the connection's exporter (read_cb) */
	const uint8_t *sign_with; /* when set: sign with this exporter, not the connection's */
};

static void build(struct call *c, const uint8_t exporter[static FMT_API_EXPORTER_LEN])
{
	int64_t ts = (int64_t)time(NULL) - (c->mode == SIGN_STALE ? 1000 : 0);
	struct idp_error err = {0};
	if (c->oob_verifier != NULL) {
		uint8_t ex[FMT_API_EXPORTER_LEN], der[FMT_KEY_SPKI_MAX];
		size_t dl = 0;
		memcpy(ex, exporter, sizeof(ex));
		if (c->oob_other_conn)
			ex[0] ^= 0x80;
		ck_assert_int_eq(fmt_key_spki_der(c->oob_key_as != NULL ? c->oob_key_as : c->key, der,
		                                  &dl, NULL),
		                 IDP_OK);
		ck_assert_int_eq(fmt_oob_proof(c->oob_verifier, ex, c->req.device_id, der, dl,
		                               c->req.oob_proof, NULL),
		                 IDP_OK);
		c->req.has_oob_proof = true;
	}
	ck_assert_msg(fmt_api_pop_sign(&c->req, c->key, exporter, ts, c->nonce, &err) == IDP_OK,
	              "%s", err.msg);
	if (c->mode == SIGN_FORGED)
		c->req.pop.sig[10] ^= 0x01;
	if (c->mode == SIGN_HIGH_S)
		idp_test_ecdsa_twin(c->req.pop.sig);
	size_t len = 0;
	ck_assert_msg(fmt_api_request_encode(&c->req, c->body, sizeof(c->body), &len, &err) ==
	                      IDP_OK,
	              "%s", err.msg);
	c->len = len;
}

static size_t read_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct call *c = arg;
	if (!c->built && c->mode != RAW) {
		const struct curl_tlssessioninfo *ti = NULL;
		ck_assert_int_eq(curl_easy_getinfo(c->curl, CURLINFO_TLS_SSL_PTR, &ti), CURLE_OK);
		ck_assert_ptr_nonnull(ti);
		ck_assert_int_eq(ti->backend, CURLSSLBACKEND_OPENSSL);
		/* RFC 9266: an empty context (use_context = 1, length 0). */
		uint8_t exporter[FMT_API_EXPORTER_LEN], none[FMT_API_EXPORTER_LEN];
		ck_assert_int_eq(fio_tls_exporter(ti->internals, exporter, NULL), IDP_OK);
		ck_assert_int_eq(SSL_export_keying_material(
		                         ti->internals, none, sizeof(none), FMT_API_EXPORTER_LABEL,
		                         strlen(FMT_API_EXPORTER_LABEL), NULL, 0, 0),
		                 1);
		c->tls_version = SSL_version(ti->internals);
		c->ctx_differs = memcmp(exporter, none, sizeof(none)) != 0;
		c->reused = SSL_session_reused(ti->internals) == 1;
		memcpy(c->seen, exporter, sizeof(c->seen));
		if (c->sign_with != NULL)
			memcpy(exporter, c->sign_with, sizeof(exporter));
		if (c->mode == SIGN_NO_CTX)
			memcpy(exporter, none, sizeof(none));
		if (c->mode == SIGN_RELAYED)
			exporter[0] ^= 0x80;
		size_t want = c->len;
		build(c, exporter);
		ck_assert_uint_eq(c->len, want); /* Content-Length was announced */
	}
	c->built = true;
	size_t k = c->len - c->off;
	if (k > size * n)
		k = size * n;
	memcpy(buf, c->body + c->off, k);
	c->off += k;
	return k;
}

static size_t write_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct call *c = arg;
	size_t k = size * n;
	ck_assert_uint_le(c->answer_len + k, sizeof(c->answer) - 1);
	memcpy(c->answer + c->answer_len, buf, k);
	c->answer_len += k;
	c->answer[c->answer_len] = '\0';
	return k;
}

static size_t header_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct call *c = arg;
	size_t k = size * n;
	if (k > 13 && strncasecmp(buf, "Retry-After: ", 13) == 0)
		snprintf(c->retry_after, sizeof(c->retry_after), "%.*s", (int)(k - 15), buf + 13);
	return k;
}

/* Open c's handle for POST to path (the body signed on first read). */
static struct curl_slist *post_open(const char *path, struct call *c)
{
	char url[160];
	snprintf(url, sizeof(url), "%s%s", base_url, path);
	c->curl = curl_easy_init();
	ck_assert_ptr_nonnull(c->curl);
	if (c->mode != RAW) {
		/* The length is fixed by the members: sign once with a dummy
		 * exporter to learn it, announce it, sign for real in read_cb.
		 * (Not all zero: the PoP refuses that as an unread exporter.) */
		uint8_t dummy[FMT_API_EXPORTER_LEN];
		memset(dummy, 0x5a, sizeof(dummy));
		build(c, dummy);
	}
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CAINFO, ca_path);
	curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(c->curl, CURLOPT_READDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->len);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 20L);
	if (c->tls12)
		curl_easy_setopt(c->curl, CURLOPT_SSLVERSION,
		                 (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
	if (c->share != NULL)
		curl_easy_setopt(c->curl, CURLOPT_SHARE, c->share);
	return h;
}

/* Send c on its open handle; c->status from the answer. */
static void post_perform(const char *path, struct call *c)
{
	CURLcode rc = curl_easy_perform(c->curl);
	ck_assert_msg(rc == CURLE_OK || c->may_fail, "%s: %s", path, curl_easy_strerror(rc));
	c->status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
}

static void post_close(struct call *c, struct curl_slist *h)
{
	curl_slist_free_all(h);
	curl_easy_cleanup(c->curl);
	c->curl = NULL;
}

/* POST c to path on a fresh connection. */
static void post(const char *path, struct call *c)
{
	struct curl_slist *h = post_open(path, c);
	post_perform(path, c);
	post_close(c, h);
}

/* A fresh call for device id with key (a request of purpose, MAC mac). */
static struct call *call_new(enum fmt_api_purpose purpose, const char *id, const char *mac,
                             const struct fmt_key *key, const char *token)
{
	struct call *c = calloc(1, sizeof(*c));
	ck_assert_ptr_nonnull(c);
	c->req.purpose = purpose;
	snprintf(c->req.device_id, sizeof(c->req.device_id), "%s", id);
	ck_assert_int_eq(fmt_mac_parse(mac, strlen(mac), c->req.mac, NULL), IDP_OK);
	if (purpose == FMT_API_PROVISION)
		snprintf(c->req.agent_version, sizeof(c->req.agent_version), "test-1.0");
	if (token != NULL)
		snprintf(c->req.token, sizeof(c->req.token), "%s", token);
	c->key = key;
	return c;
}

static void call_free(struct call *c)
{
	fmt_api_request_wipe(&c->req);
	free(c);
}

static const char *path_of(enum fmt_api_purpose p)
{
	return p == FMT_API_PROVISION  ? "/v1/provision"
	       : p == FMT_API_EXCHANGE ? "/v1/token/exchange"
	                               : "/v1/token/renew";
}

/* Run a call and parse its decision into *s (when it is one). */
static long run(struct call *c, struct fmt_api_answer *a)
{
	post(path_of(c->req.purpose), c);
	struct idp_error err = {0};
	ck_assert_msg(fmt_api_answer_parse((const uint8_t *)c->answer, c->answer_len, a, &err) ==
	                      IDP_OK,
	              "%ld %s: %s", c->status, c->answer, err.msg);
	return c->status;
}

static void digest(uint8_t out[32])
{
	ck_assert_int_eq(srv_store_digest(db, out, NULL), IDP_OK);
}

static struct fmt_key *new_key(enum fmt_key_type t)
{
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_generate(t, &k, NULL), IDP_OK);
	return k;
}

static void preload(const char *id, const struct fmt_key *key, const char *mac)
{
	struct srv_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", id);
	snprintf(d.mac, sizeof(d.mac), "%s", mac);
	if (key != NULL)
		ck_assert_int_eq(fmt_key_spki_der(key, d.pubkey, &d.pubkey_len, NULL), IDP_OK);
	d.state = SRV_DEV_PRELOADED;
	ck_assert_int_eq(srv_store_device_insert(db, &d, NULL), IDP_OK);
}

/* Expect an error answer with HTTP status and code; the store unchanged. */
static void expect_error(struct call *c, long status, enum fmt_api_err_code code)
{
	uint8_t before[32], after[32];
	digest(before);
	struct fmt_api_answer a;
	ck_assert_int_eq(run(c, &a), status);
	ck_assert_msg(a.is_error && a.error.code == code, "%s", c->answer);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	fmt_api_answer_wipe(&a);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_api_preloaded_device_provisions_exchanges_renews)
{
	struct fmt_key *k = new_key(_i == 0 ? FMT_KEY_P256 : FMT_KEY_ED25519);
	preload("dev-0001", k, "02:00:5e:10:00:01");
	struct fmt_api_answer a;
	struct call *c = call_new(FMT_API_PROVISION, "dev-0001", "02:00:5e:10:00:01", k, NULL);
	ck_assert_int_eq(run(c, &a), 200);
	ck_assert(!a.is_error);
	ck_assert_int_eq(a.status.status, FMT_API_APPROVED);
	ck_assert_int_eq(a.status.token_kind, FMT_TOKEN_PROVISION);
	ck_assert_str_eq(a.status.server_url, app.server_url);
	ck_assert_str_eq(a.status.ca_pem, state->ca_pem);
	char prov[FMT_API_TOKEN_MAX + 1];
	snprintf(prov, sizeof(prov), "%s", a.status.token);
	fmt_api_answer_wipe(&a);
	call_free(c);

	c = call_new(FMT_API_EXCHANGE, "dev-0001", "02:00:5e:10:00:01", k, prov);
	ck_assert_int_eq(run(c, &a), 200);
	ck_assert_int_eq(a.status.token_kind, FMT_TOKEN_DEVICE);
	ck_assert_int_ge(a.status.expires, (int64_t)time(NULL) + 30 * 86400 - 60);
	char dev[FMT_API_TOKEN_MAX + 1];
	snprintf(dev, sizeof(dev), "%s", a.status.token);
	fmt_api_answer_wipe(&a);
	call_free(c);

	/* The answer was lost: the same exchange again (new connection, new
	 * proof) gets a new device token and the first one is revoked. */
	c = call_new(FMT_API_EXCHANGE, "dev-0001", "02:00:5e:10:00:01", k, prov);
	ck_assert_int_eq(run(c, &a), 200);
	char dev2[FMT_API_TOKEN_MAX + 1];
	snprintf(dev2, sizeof(dev2), "%s", a.status.token);
	ck_assert_str_ne(dev2, dev);
	fmt_api_answer_wipe(&a);
	call_free(c);
	int64_t n = -1;
	ck_assert_int_eq(srv_store_token_live(db, "dev-0001", (int64_t)time(NULL), &n, NULL),
	                 IDP_OK);
	ck_assert_int_eq(n, 1);
	c = call_new(FMT_API_RENEW, "dev-0001", "02:00:5e:10:00:01", k, dev);
	expect_error(c, 401, FMT_API_ERR_TOKEN_INVALID);
	call_free(c);
	/* A device token for renewal; then the provisioning token is spent. */
	c = call_new(FMT_API_RENEW, "dev-0001", "02:00:5e:10:00:01", k, dev2);
	ck_assert_int_eq(run(c, &a), 200);
	ck_assert_int_eq(a.status.token_kind, FMT_TOKEN_DEVICE);
	ck_assert_str_ne(a.status.token, dev2);
	fmt_api_answer_wipe(&a);
	call_free(c);
	c = call_new(FMT_API_EXCHANGE, "dev-0001", "02:00:5e:10:00:01", k, prov);
	expect_error(c, 401, FMT_API_ERR_TOKEN_INVALID);
	call_free(c);

	/* Provisioning again (a device reset) revokes the earlier chain. */
	c = call_new(FMT_API_PROVISION, "dev-0001", "02:00:5e:10:00:01", k, NULL);
	ck_assert_int_eq(run(c, &a), 200);
	fmt_api_answer_wipe(&a);
	call_free(c);
	ck_assert_int_eq(srv_store_token_live(db, "dev-0001", (int64_t)time(NULL), &n, NULL),
	                 IDP_OK);
	ck_assert_int_eq(n, 1);
	c = call_new(FMT_API_RENEW, "dev-0001", "02:00:5e:10:00:01", k, dev2);
	expect_error(c, 401, FMT_API_ERR_TOKEN_INVALID);
	call_free(c);
	fmt_key_free(k);
}
END_TEST

START_TEST(test_api_unknown_pending_once_then_rejected_and_revoked)
{
	struct fmt_key *k = new_key(FMT_KEY_P256), *other = new_key(FMT_KEY_P256);
	struct fmt_api_answer a;
	for (int i = 0; i < 3; i++) {
		struct call *c =
		        call_new(FMT_API_PROVISION, "dev-new", "02:00:5e:10:00:02", k, NULL);
		ck_assert_int_eq(run(c, &a), 202);
		ck_assert_int_eq(a.status.status, FMT_API_PENDING);
		ck_assert_int_eq(a.status.retry_after, cfg.pending_retry_after);
		ck_assert_str_eq(c->retry_after, "30");
		call_free(c);
	}
	int64_t n = 0;
	ck_assert_int_eq(srv_store_device_count(db, 0, &n, NULL), IDP_OK);
	ck_assert_int_eq(n, 1);
	/* Absent values of the pending row are NULL, never "" (docs/store.md). */
	sqlite3 *raw = NULL;
	ck_assert_int_eq(sqlite3_open_v2(state->db_path, &raw, SQLITE_OPEN_READONLY, NULL),
	                 SQLITE_OK);
	sqlite3_stmt *q = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(raw,
	                                    "SELECT typeof(serial) || typeof(batch_id) || "
	                                    "typeof(mac) || typeof(public_key) FROM devices "
	                                    "WHERE id = 'dev-new'",
	                                    -1, &q, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "nullnulltextblob");
	sqlite3_finalize(q);
	sqlite3_close(raw);

	/* Known with another key: 403 key_mismatch, nothing issued. */
	preload("dev-k", k, "02:00:5e:10:00:03");
	struct call *c = call_new(FMT_API_PROVISION, "dev-k", "02:00:5e:10:00:03", other, NULL);
	ck_assert_int_eq(run(c, &a), 403);
	ck_assert_int_eq(a.status.status, FMT_API_REJECTED);
	ck_assert_int_eq(a.status.reason, FMT_API_REASON_KEY_MISMATCH);
	call_free(c);

	/* Rejected by an admin. */
	ck_assert_int_eq(srv_admin_decide(db, "dev-new", SRV_ADMIN_REJECT, NULL, 1, NULL, NULL),
	                 IDP_OK);
	c = call_new(FMT_API_PROVISION, "dev-new", "02:00:5e:10:00:02", k, NULL);
	ck_assert_int_eq(run(c, &a), 403);
	ck_assert_int_eq(a.status.reason, FMT_API_REASON_REJECTED);
	call_free(c);

	/* Revoked after provisioning: no renewal. */
	c = call_new(FMT_API_PROVISION, "dev-k", "02:00:5e:10:00:03", k, NULL);
	ck_assert_int_eq(run(c, &a), 200);
	char prov[FMT_API_TOKEN_MAX + 1];
	snprintf(prov, sizeof(prov), "%s", a.status.token);
	call_free(c);
	c = call_new(FMT_API_EXCHANGE, "dev-k", "02:00:5e:10:00:03", k, prov);
	ck_assert_int_eq(run(c, &a), 200);
	char dev[FMT_API_TOKEN_MAX + 1];
	snprintf(dev, sizeof(dev), "%s", a.status.token);
	call_free(c);
	ck_assert_int_eq(srv_admin_decide(db, "dev-k", SRV_ADMIN_REVOKE, NULL, 1, NULL, NULL),
	                 IDP_OK);
	uint8_t before[32], after[32];
	digest(before);
	c = call_new(FMT_API_RENEW, "dev-k", "02:00:5e:10:00:03", k, dev);
	ck_assert_int_eq(run(c, &a), 403);
	ck_assert_int_eq(a.status.reason, FMT_API_REASON_REVOKED);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	call_free(c);
	fmt_api_answer_wipe(&a);
	fmt_key_free(k);
	fmt_key_free(other);
}
END_TEST

START_TEST(test_api_bad_proofs_change_nothing)
{
	struct fmt_key *k = new_key(FMT_KEY_P256);
	preload("dev-p", k, "02:00:5e:10:00:04");
	static const enum sign_mode modes[] = {SIGN_RELAYED, SIGN_FORGED, SIGN_STALE};
	static const enum fmt_api_err_code codes[] = {
	        FMT_API_ERR_POP_INVALID, FMT_API_ERR_POP_INVALID, FMT_API_ERR_POP_STALE};
	for (size_t i = 0; i < 3; i++) {
		struct call *c = call_new(FMT_API_PROVISION, "dev-p", "02:00:5e:10:00:04", k, NULL);
		c->mode = modes[i];
		expect_error(c, 401, codes[i]);
		call_free(c);
	}
	/* A proof made for one connection, replayed on another. */
	struct call *c = call_new(FMT_API_PROVISION, "dev-p", "02:00:5e:10:00:04", k, NULL);
	struct fmt_api_answer a;
	ck_assert_int_eq(run(c, &a), 200);
	fmt_api_answer_wipe(&a);
	struct call *replay = call_new(FMT_API_PROVISION, "dev-p", "02:00:5e:10:00:04", k, NULL);
	memcpy(replay->body, c->body, c->len);
	replay->len = c->len;
	replay->mode = RAW;
	expect_error(replay, 401, FMT_API_ERR_POP_INVALID);
	/* A proof for provisioning sent to the exchange endpoint. */
	memset(replay, 0, sizeof(*replay));
	memcpy(replay->body, c->body, c->len);
	replay->len = c->len;
	replay->mode = RAW;
	replay->req.purpose = FMT_API_EXCHANGE;
	expect_error(replay, 400, FMT_API_ERR_INVALID_FIELD);
	/* Truncated body. */
	memset(replay, 0, sizeof(*replay));
	memcpy(replay->body, c->body, c->len / 2);
	replay->len = c->len / 2;
	replay->mode = RAW;
	replay->req.purpose = FMT_API_PROVISION;
	expect_error(replay, 400, FMT_API_ERR_INVALID_FIELD);
	/* No body at all: the HTTP request is unusable (formats/api.md §9). */
	memset(replay, 0, sizeof(*replay));
	replay->mode = RAW;
	replay->req.purpose = FMT_API_PROVISION;
	expect_error(replay, 400, FMT_API_ERR_BAD_REQUEST);
	/* Oversized body: refused before it is read. */
	memset(replay, 0, sizeof(*replay));
	memset(replay->body, ' ', sizeof(replay->body));
	replay->len = FMT_API_BODY_MAX + 1;
	replay->mode = RAW;
	replay->req.purpose = FMT_API_PROVISION;
	expect_error(replay, 413, FMT_API_ERR_TOO_LARGE);
	call_free(replay);
	call_free(c);
	fmt_key_free(k);
}
END_TEST

/* RFC 9266 over a real connection: under TLS 1.2 the exporter with an empty
 * context (what the RFC says) differs from the one with none; the server
 * takes the first and refuses the second. Under TLS 1.3 they are equal. */
START_TEST(test_api_rfc9266_exporter_empty_context)
{
	bool tls12 = _i == 0;
	struct fmt_key *k = new_key(FMT_KEY_P256);
	preload("dev-cb", k, "02:00:5e:10:00:0c");
	struct fmt_api_answer a;
	struct call *c = call_new(FMT_API_PROVISION, "dev-cb", "02:00:5e:10:00:0c", k, NULL);
	c->tls12 = tls12;
	c->mode = SIGN_NO_CTX;
	if (tls12) {
		expect_error(c, 401, FMT_API_ERR_POP_INVALID);
		ck_assert_int_eq(c->tls_version, TLS1_2_VERSION);
		ck_assert(c->ctx_differs);
	} else {
		ck_assert_int_eq(run(c, &a), 200);
		fmt_api_answer_wipe(&a);
		ck_assert_int_eq(c->tls_version, TLS1_3_VERSION);
		ck_assert(!c->ctx_differs);
	}
	call_free(c);
	c = call_new(FMT_API_PROVISION, "dev-cb", "02:00:5e:10:00:0c", k, NULL);
	c->tls12 = tls12;
	ck_assert_int_eq(run(c, &a), 200);
	ck_assert_int_eq(a.status.status, FMT_API_APPROVED);
	ck_assert_int_eq(c->tls_version, tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
	fmt_api_answer_wipe(&a);
	call_free(c);
	fmt_key_free(k);
}
END_TEST

/* TLS session resumption (tickets): a client that reconnects resumes its
 * session, under TLS 1.3 (_i = 0) and TLS 1.2 (_i = 1), and each resumed
 * connection still has its own RFC 9266 exporter, so a proof made on one
 * resumed connection is refused on another (and leaves the store unchanged). */
START_TEST(test_api_resumed_sessions_have_their_own_exporter)
{
	bool tls12 = _i == 1;
	CURLSH *share = curl_share_init();
	ck_assert_ptr_nonnull(share);
	ck_assert_int_eq(curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION),
	                 CURLSHE_OK);
	struct fmt_key *k[4];
	char id[32], mac[32];
	struct call *c[4];
	for (int i = 0; i < 4; i++) {
		k[i] = new_key(FMT_KEY_P256);
		snprintf(id, sizeof(id), "dev-res%d", i);
		snprintf(mac, sizeof(mac), "02:00:5e:10:01:%02x", i);
		preload(id, k[i], mac);
		c[i] = call_new(FMT_API_PROVISION, id, mac, k[i], NULL);
		c[i]->share = share;
		c[i]->tls12 = tls12;
	}
	struct fmt_api_answer a;
	/* A full handshake, then two resumed connections. */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(run(c[i], &a), 200);
		ck_assert_int_eq(a.status.status, FMT_API_APPROVED);
		fmt_api_answer_wipe(&a);
		ck_assert_int_eq(c[i]->tls_version, tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
		ck_assert_msg(c[i]->reused == (i > 0), "connection %d reused: %d", i, c[i]->reused);
	}
	ck_assert_mem_ne(c[1]->seen, c[2]->seen, FMT_API_EXPORTER_LEN);
	ck_assert_mem_ne(c[0]->seen, c[1]->seen, FMT_API_EXPORTER_LEN);
	/* A proof signed with the exporter of resumed connection 2, sent on
	 * resumed connection 3: refused, nothing stored. */
	c[3]->sign_with = c[2]->seen;
	expect_error(c[3], 401, FMT_API_ERR_POP_INVALID);
	ck_assert(c[3]->reused);
	ck_assert_mem_ne(c[3]->seen, c[2]->seen, FMT_API_EXPORTER_LEN);
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(db, "dev-res3", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_PRELOADED);
	for (int i = 0; i < 4; i++) {
		call_free(c[i]);
		fmt_key_free(k[i]);
	}
	curl_share_cleanup(share);
}
END_TEST

/* Group commit: the answer to a decision leaves only after the fsync that
 * covers its commit (server/httpd.h srv_httpd_store_sync): when the client
 * has it, the server's durable count has reached the commit. */
START_TEST(test_api_answer_after_its_commit_is_durable)
{
	const struct srv_store_sync *g = srv_httpd_store_sync(httpd);
	ck_assert_ptr_nonnull(g);
	struct fmt_key *k = new_key(FMT_KEY_P256);
	preload("dev-gc", k, "02:00:5e:10:02:01");
	struct fmt_api_answer a;
	uint64_t before = srv_store_sync_committed(g);
	struct call *c = call_new(FMT_API_PROVISION, "dev-gc", "02:00:5e:10:02:01", k, NULL);
	ck_assert_int_eq(run(c, &a), 200);
	/* Its decision was committed (counted) and is durable. */
	ck_assert_uint_gt(srv_store_sync_committed(g), before);
	ck_assert_uint_gt(srv_store_sync_durable(g), before);
	char prov[FMT_API_TOKEN_MAX + 1];
	snprintf(prov, sizeof(prov), "%s", a.status.token);
	fmt_api_answer_wipe(&a);
	call_free(c);
	before = srv_store_sync_committed(g);
	c = call_new(FMT_API_EXCHANGE, "dev-gc", "02:00:5e:10:02:01", k, prov);
	ck_assert_int_eq(run(c, &a), 200);
	ck_assert_int_eq(a.status.token_kind, FMT_TOKEN_DEVICE);
	ck_assert_uint_gt(srv_store_sync_durable(g), before);
	ck_assert_uint_le(srv_store_sync_durable(g), srv_store_sync_committed(g));
	fmt_api_answer_wipe(&a);
	call_free(c);
	fmt_key_free(k);
}
END_TEST

/* The twin (r, n - s) of the device's own valid proof: refused, store unchanged. */
START_TEST(test_api_pop_high_s_refused_by_server)
{
	struct fmt_key *k = new_key(FMT_KEY_P256);
	preload("dev-hs", k, "02:00:5e:10:00:0d");
	struct call *c = call_new(FMT_API_PROVISION, "dev-hs", "02:00:5e:10:00:0d", k, NULL);
	c->mode = SIGN_HIGH_S;
	expect_error(c, 401, FMT_API_ERR_POP_INVALID);
	call_free(c);
	struct fmt_api_answer a;
	c = call_new(FMT_API_PROVISION, "dev-hs", "02:00:5e:10:00:0d", k, NULL);
	ck_assert_int_eq(run(c, &a), 200);
	fmt_api_answer_wipe(&a);
	call_free(c);
	fmt_key_free(k);
}
END_TEST

/* A counterfeit device with an Ed25519 key anyone can sign for, claiming a
 * device the manifest named by MAC only (which would be approved with the
 * presented key): every small-order and non-canonical key is refused with
 * 400 and the store is unchanged. For the identity key the proof is the
 * forgery R = identity, S = 0, which OpenSSL's verify accepts. */
START_TEST(test_api_weak_ed25519_keys_refused_by_server)
{
	preload("dev-w", NULL, "02:00:5e:10:00:0e");
	for (size_t i = 0; i < IDP_TEST_SMALL_ORDER_N + IDP_TEST_NONCANONICAL_N; i++) {
		const uint8_t *pub = i < IDP_TEST_SMALL_ORDER_N
		                             ? idp_test_small_order[i]
		                             : idp_test_noncanonical[i - IDP_TEST_SMALL_ORDER_N];
		uint8_t spki[IDP_TEST_ED25519_SPKI_LEN], sig[64] = {0};
		idp_test_ed25519_spki(pub, spki);
		memcpy(sig, idp_test_small_order[0], 32);
		char pk[64], sg[96];
		pk[fmt_b64_encode(FMT_B64_STD, spki, sizeof(spki), pk)] = '\0';
		sg[fmt_b64_encode(FMT_B64_STD, sig, sizeof(sig), sg)] = '\0';
		struct call *c =
		        call_new(FMT_API_PROVISION, "dev-w", "02:00:5e:10:00:0e", NULL, NULL);
		c->mode = RAW;
		int n = snprintf(
		        c->body, sizeof(c->body),
		        "{\"device_id\":\"dev-w\",\"mac\":\"02:00:5e:10:00:0e\","
		        "\"key_type\":\"ed25519\",\"public_key\":\"%s\","
		        "\"agent_version\":\"evil-1\",\"pop\":{\"ts\":%lld,\"sig\":\"%s\"}}",
		        pk, (long long)time(NULL), sg);
		ck_assert(n > 0 && (size_t)n < sizeof(c->body));
		c->len = (size_t)n;
		expect_error(c, 400, FMT_API_ERR_INVALID_FIELD);
		ck_assert_msg(strstr(c->answer, i < IDP_TEST_SMALL_ORDER_N
		                                        ? "small order"
		                                        : "not canonical") != NULL,
		              "%s", c->answer);
		call_free(c);
	}
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(db, "dev-w", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_PRELOADED);
	ck_assert_uint_eq(d.pubkey_len, 0);
}
END_TEST

/* A proof made without a server nonce, sent again on the same connection
 * (same exporter, inside the skew window): refused, nothing changed. */
START_TEST(test_api_proof_replayed_on_same_connection)
{
	struct fmt_key *k = new_key(_i == 0 ? FMT_KEY_P256 : FMT_KEY_ED25519);
	struct call *c = call_new(FMT_API_PROVISION, "dev-rp", "02:00:5e:10:00:07", k, NULL);
	struct curl_slist *h = post_open("/v1/provision", c);
	post_perform("/v1/provision", c);
	ck_assert_int_eq(c->status, 202); /* unknown: pending */
	uint8_t before[32], after[32];
	digest(before);
	c->off = 0; /* the same bytes again: read_cb signs only once */
	c->answer_len = 0;
	post_perform("/v1/provision", c);
	long conns = -1;
	curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &conns);
	ck_assert_int_eq(conns, 0); /* the connection was reused */
	ck_assert_int_eq(c->status, 401);
	struct fmt_api_answer a;
	ck_assert_int_eq(fmt_api_answer_parse((const uint8_t *)c->answer, c->answer_len, &a, NULL),
	                 IDP_OK);
	ck_assert(a.is_error && a.error.code == FMT_API_ERR_POP_INVALID);
	ck_assert_ptr_nonnull(strstr(a.error.message, "already used"));
	fmt_api_answer_wipe(&a);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	int64_t attempts = 0;
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(db, "dev-rp", &d, NULL), IDP_OK);
	attempts = d.attempts;
	ck_assert_int_eq(attempts, 1);
	post_close(c, h);
	call_free(c);
	fmt_key_free(k);
}
END_TEST

/* Run idprov-admin --json ARGS against this server; its stdout in out. Exit code. */
static int admin_cli(char *out, size_t size, const char *args)
{
	const char *bin = getenv("IDP_BIN");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s/idprov-admin' --json --server '%s' --ca '%s' %s",
	         bin != NULL ? bin : "build/asan/bin", base_url, ca_path, args);
	ck_assert_int_eq(setenv("IDPROV_ADMIN_TOKEN", admin_secret, 1), 0);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	size_t n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void sha256_hex(const struct fmt_key *k, char hex[static 65])
{
	uint8_t der[FMT_KEY_SPKI_MAX], fp[32];
	size_t len = 0;
	ck_assert_int_eq(fmt_key_spki_der(k, der, &len, NULL), IDP_OK);
	SHA256(der, len, fp);
	fmt_key_fingerprint_hex(fp, hex);
}

#define FLOOD 1100

/* Issue 9: a flood of repeated provisioning of one device is one flag with
 * a count, so a later key-reuse flag is on top of "idprov-admin flags
 * --open"; filters by kind and device. Issue 8: a second key for a pending
 * ID contests it; the listing shows both keys' SHA-256; approval must name
 * one, and the named key is the one approved. */
START_TEST(test_api_admin_cli_flags_and_contested_ids)
{
	static char out[1 << 20];
	struct fmt_key *k = new_key(FMT_KEY_P256), *k2 = new_key(FMT_KEY_ED25519);
	preload("dev-fl", k, "02:00:5e:10:00:10");
	/* The flood, through the server's own decision code and store. */
	for (int i = 0; i < FLOOD; i++) {
		const struct srv_provision_req pr = {.device_id = "dev-fl",
		                                     .mac = "02:00:5e:10:00:10",
		                                     .key = k,
		                                     .now = (int64_t)time(NULL)};
		struct srv_issued r;
		ck_assert_int_eq(srv_provision(db, state, &app.pcfg, &pr, &r, NULL), IDP_OK);
		ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
		srv_issued_clear(&r);
	}
	/* Then the same key under another ID, over HTTPS. */
	struct fmt_api_answer a;
	struct call *c = call_new(FMT_API_PROVISION, "dev-fl2", "02:00:5e:10:00:11", k, NULL);
	ck_assert_int_eq(run(c, &a), 202);
	call_free(c);
	ck_assert_int_eq(admin_cli(out, sizeof(out), "flags --open"), 0);
	cJSON *j = cJSON_Parse(out);
	ck_assert_ptr_nonnull(j);
	cJSON *fl = cJSON_GetObjectItem(j, "flags");
	ck_assert_int_eq(cJSON_GetArraySize(fl), 2);
	cJSON *top = cJSON_GetArrayItem(fl, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(top, "kind")->valuestring, "key-reuse");
	ck_assert_str_eq(cJSON_GetObjectItem(top, "subject")->valuestring, "dev-fl2");
	cJSON *rep = cJSON_GetArrayItem(fl, 1);
	ck_assert_str_eq(cJSON_GetObjectItem(rep, "kind")->valuestring, "repeat-provision");
	/* Each approval's first repeat is taken for the retry of a lost answer
	 * (formats/api.md §6.1): every second one is flagged. */
	ck_assert_int_eq(cJSON_GetObjectItem(rep, "count")->valueint, (FLOOD - 1) / 2);
	cJSON_Delete(j);
	ck_assert_int_eq(admin_cli(out, sizeof(out), "flags --kind repeat-provision"), 0);
	ck_assert_ptr_null(strstr(out, "key-reuse"));
	ck_assert_int_eq(admin_cli(out, sizeof(out), "flags --device dev-fl2"), 0);
	ck_assert_ptr_null(strstr(out, "repeat-provision"));
	ck_assert_ptr_nonnull(strstr(out, "key-reuse"));
	ck_assert_int_eq(admin_cli(out, sizeof(out), "flags --kind 'Bad Kind'"), 1);
	ck_assert_int_eq(admin_cli(out, sizeof(out), "flags --after 1"), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"flags\":[]"));

	/* A contested ID. */
	char h1[65], h2[65], arg[160];
	sha256_hex(k2, h2);
	struct fmt_key *k1 = new_key(FMT_KEY_P256);
	sha256_hex(k1, h1);
	c = call_new(FMT_API_PROVISION, "dev-c", "02:00:5e:10:00:12", k1, NULL);
	ck_assert_int_eq(run(c, &a), 202);
	call_free(c);
	c = call_new(FMT_API_PROVISION, "dev-c", "02:00:5e:10:00:13", k2, NULL);
	ck_assert_int_eq(run(c, &a), 202); /* not key_mismatch: both wait */
	call_free(c);
	ck_assert_int_eq(admin_cli(out, sizeof(out), "devices --state pending --after dev-c-"), 0);
	ck_assert_ptr_null(strstr(out, "\"dev-c\""));
	ck_assert_int_eq(admin_cli(out, sizeof(out), "devices --state pending"), 0);
	j = cJSON_Parse(out);
	ck_assert_ptr_nonnull(j);
	cJSON *dv = NULL, *it = NULL;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "devices"))
	{
		if (strcmp(cJSON_GetObjectItem(it, "id")->valuestring, "dev-c") == 0)
			dv = it;
	}
	ck_assert_ptr_nonnull(dv);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(dv, "contested")));
	ck_assert_str_eq(cJSON_GetObjectItem(dv, "key_sha256")->valuestring, h1);
	cJSON *ok = cJSON_GetArrayItem(cJSON_GetObjectItem(dv, "other_keys"), 0);
	ck_assert_str_eq(cJSON_GetObjectItem(ok, "key_sha256")->valuestring, h2);
	ck_assert_str_eq(cJSON_GetObjectItem(ok, "mac")->valuestring, "02:00:5e:10:00:13");
	cJSON_Delete(j);
	uint8_t before[32], after[32];
	digest(before);
	ck_assert_int_eq(admin_cli(out, sizeof(out), "approve dev-c"), 1);
	snprintf(arg, sizeof(arg), "approve dev-c --key %064d", 0);
	ck_assert_int_eq(admin_cli(out, sizeof(out), arg), 1);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	snprintf(arg, sizeof(arg), "approve dev-c --key SHA256:%s", h2);
	ck_assert_int_eq(admin_cli(out, sizeof(out), arg), 0);
	ck_assert_ptr_nonnull(strstr(out, h2));
	c = call_new(FMT_API_PROVISION, "dev-c", "02:00:5e:10:00:13", k2, NULL);
	ck_assert_int_eq(run(c, &a), 200);
	fmt_api_answer_wipe(&a);
	call_free(c);
	c = call_new(FMT_API_PROVISION, "dev-c", "02:00:5e:10:00:12", k1, NULL);
	ck_assert_int_eq(run(c, &a), 403);
	ck_assert_int_eq(a.status.reason, FMT_API_REASON_KEY_MISMATCH);
	call_free(c);
	fmt_key_free(k);
	fmt_key_free(k1);
	fmt_key_free(k2);
}
END_TEST

/* POST /v1/nonce and parse it. */
static void get_nonce(uint8_t out[static FMT_API_NONCE_LEN])
{
	struct call *c = calloc(1, sizeof(*c));
	ck_assert_ptr_nonnull(c);
	c->mode = RAW;
	post("/v1/nonce", c);
	ck_assert_int_eq(c->status, 200);
	struct fmt_api_nonce n;
	ck_assert_int_eq(fmt_api_nonce_parse((const uint8_t *)c->answer, c->answer_len, &n, NULL),
	                 IDP_OK);
	ck_assert_int_le(n.time, (int64_t)time(NULL) + 1);
	ck_assert_int_eq(n.expires, n.time + cfg.nonce_lifetime);
	memcpy(out, n.nonce, FMT_API_NONCE_LEN);
	free(c);
}

START_TEST(test_api_nonce_single_use_and_foreign_tokens)
{
	struct fmt_key *k = new_key(FMT_KEY_P256);
	preload("dev-n", k, "02:00:5e:10:00:05");
	uint8_t nonce[FMT_API_NONCE_LEN];
	get_nonce(nonce);
	struct fmt_api_answer a;
	struct call *c = call_new(FMT_API_PROVISION, "dev-n", "02:00:5e:10:00:05", k, NULL);
	c->nonce = nonce;
	ck_assert_int_eq(run(c, &a), 200);
	char prov[FMT_API_TOKEN_MAX + 1];
	snprintf(prov, sizeof(prov), "%s", a.status.token);
	fmt_api_answer_wipe(&a);
	call_free(c);
	/* The same nonce again, and one the server never issued. */
	c = call_new(FMT_API_PROVISION, "dev-n", "02:00:5e:10:00:05", k, NULL);
	c->nonce = nonce;
	expect_error(c, 401, FMT_API_ERR_NONCE_INVALID);
	call_free(c);
	uint8_t made_up[FMT_API_NONCE_LEN];
	ck_assert_int_eq(RAND_bytes(made_up, sizeof(made_up)), 1);
	c = call_new(FMT_API_PROVISION, "dev-n", "02:00:5e:10:00:05", k, NULL);
	c->nonce = made_up;
	expect_error(c, 401, FMT_API_ERR_NONCE_INVALID);
	call_free(c);

	/* A token signed by the server's key for another audience, and one for
	 * another device ID. */
	char kid[SRV_TOKEN_KID_MAX], *tok = NULL;
	size_t tlen = 0;
	ck_assert_int_eq(srv_token_kid(state, kid, NULL), IDP_OK);
	struct fmt_token_claims cl;
	memset(&cl, 0, sizeof(cl));
	snprintf(cl.iss, sizeof(cl.iss), "%.255s", app.server_url);
	snprintf(cl.aud, sizeof(cl.aud), "another-service");
	snprintf(cl.sub, sizeof(cl.sub), "dev-n");
	cl.kind = FMT_TOKEN_PROVISION;
	ck_assert_int_eq(fmt_token_jkt(k, cl.jkt, NULL), IDP_OK);
	ck_assert_int_eq(fmt_token_sign(state->token_key, kid, &cl, (int64_t)time(NULL), 300, NULL,
	                                &tok, &tlen, NULL),
	                 IDP_OK);
	c = call_new(FMT_API_EXCHANGE, "dev-n", "02:00:5e:10:00:05", k, tok);
	expect_error(c, 401, FMT_API_ERR_TOKEN_INVALID);
	call_free(c);
	fmt_token_free(tok);
	c = call_new(FMT_API_EXCHANGE, "dev-other", "02:00:5e:10:00:05", k, prov);
	expect_error(c, 401, FMT_API_ERR_TOKEN_INVALID);
	call_free(c);
	fmt_key_free(k);
}
END_TEST

struct upload {
	const uint8_t *body;
	size_t len, off;
	char answer[1024];
	size_t answer_len;
};

static size_t up_read(char *buf, size_t size, size_t n, void *arg)
{
	struct upload *u = arg;
	size_t k = u->len - u->off < size * n ? u->len - u->off : size * n;
	memcpy(buf, u->body + u->off, k);
	u->off += k;
	return k;
}

static size_t up_write(char *buf, size_t size, size_t n, void *arg)
{
	struct upload *u = arg;
	size_t k = size * n;
	ck_assert_uint_le(u->answer_len + k, sizeof(u->answer) - 1);
	memcpy(u->answer + u->answer_len, buf, k);
	u->answer_len += k;
	u->answer[u->answer_len] = '\0';
	return k;
}

/* POST a manifest to /v1/batches, with station-01's certificate or none. */
static const char *upload_cert = "station.pem"; /* the client certificate upload() sends */

static long upload(const uint8_t *body, size_t len, const uint8_t *sig, size_t sig_len,
                   bool with_cert, struct upload *u)
{
	memset(u, 0, sizeof(*u));
	u->body = body;
	u->len = len;
	char *b64 = malloc(fmt_b64_encoded_len(FMT_B64_STD, sig_len) + 1);
	ck_assert_ptr_nonnull(b64);
	(void)fmt_b64_encode(FMT_B64_STD, sig, sig_len, b64);
	char *hdr = malloc(strlen(b64) + 32);
	ck_assert_ptr_nonnull(hdr);
	snprintf(hdr, strlen(b64) + 32, "Idprov-Signature: %s", b64);
	struct curl_slist *h =
	        curl_slist_append(NULL, "Content-Type: application/vnd.idprov.manifest");
	h = curl_slist_append(h, hdr);
	char url[160], crt[160], key[160];
	snprintf(url, sizeof(url), "%s/v1/batches", base_url);
	snprintf(crt, sizeof(crt), "%s/%s", dir, upload_cert);
	snprintf(key, sizeof(key), "%s/station.key", dir);
	CURL *c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, ca_path);
	if (with_cert) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, crt);
		curl_easy_setopt(c, CURLOPT_SSLKEY, key);
	}
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, up_read);
	curl_easy_setopt(c, CURLOPT_READDATA, u);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, up_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, u);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	CURLcode rc = curl_easy_perform(c);
	ck_assert_msg(rc == CURLE_OK, "upload: %s", curl_easy_strerror(rc));
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	free(hdr);
	free(b64);
	return status;
}

/* The header of station-01's first batch (ES256) with count records. */
static void manifest_header(struct fmt_manifest_header *h, const char *batch, uint64_t count)
{
	memset(h, 0, sizeof(*h));
	h->version = FMT_MANIFEST_VERSION;
	snprintf(h->batch, sizeof(h->batch), "%s", batch);
	snprintf(h->station, sizeof(h->station), "station-01");
	h->seq = 1;
	snprintf(h->created, sizeof(h->created), "2026-11-23T10:00:00Z");
	snprintf(h->product, sizeof(h->product), "sensor-x");
	h->count = count;
	h->sig = FMT_MANIFEST_SIG_ES256;
	ck_assert_int_eq(fmt_key_fingerprint(station_key, h->key, NULL), IDP_OK);
}

START_TEST(test_api_batch_upload_by_station)
{
	/* A signed batch of 20 devices from station-01. */
	struct fmt_manifest_header h;
	manifest_header(&h, "st1-000001", 20);
	uint8_t *body = malloc(20 * FMT_MANIFEST_LINE_MAX + FMT_MANIFEST_LINE_MAX);
	ck_assert_ptr_nonnull(body);
	size_t len = 0, n = 0;
	struct fmt_manifest_writer w;
	ck_assert_int_eq(fmt_manifest_writer_begin(&w, &h, body, &n, NULL), IDP_OK);
	len += n;
	for (unsigned i = 1; i <= 20; i++) {
		struct fmt_manifest_record r;
		memset(&r, 0, sizeof(r));
		snprintf(r.id, sizeof(r.id), "up-%04u", i);
		snprintf(r.serial, sizeof(r.serial), "UP%06u", i);
		r.mac[0] = 0x02;
		r.mac[1] = 0x10;
		r.mac[5] = (uint8_t)i;
		ck_assert_int_eq(fmt_manifest_writer_record(&w, &r, body + len, &n, NULL), IDP_OK);
		len += n;
	}
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	ck_assert_int_eq(fmt_manifest_sign(FMT_MANIFEST_SIG_ES256, station_key, NULL, NULL, body,
	                                   len, &sig, &sig_len, NULL),
	                 IDP_OK);
	uint8_t before[32], after[32];
	struct upload u;
	/* Without a client certificate, and tampered: refused, nothing written. */
	digest(before);
	ck_assert_int_eq(upload(body, len, sig, sig_len, false, &u), 401);
	ck_assert_ptr_nonnull(strstr(u.answer, "\"unauthorized\""));
	body[len - 5] ^= 1;
	ck_assert_int_eq(upload(body, len, sig, sig_len, true, &u), 403);
	ck_assert_ptr_nonnull(strstr(u.answer, "\"forbidden\""));
	body[len - 5] ^= 1;
	/* A certificate of the station CA whose subject names two stations
	 * identifies none (it once passed as its first commonName). */
	upload_cert = "station-2cn.pem";
	long st = upload(body, len, sig, sig_len, true, &u);
	upload_cert = "station.pem";
	ck_assert_msg(st == 401 || st == 403, "%ld: %s", st, u.answer);
	digest(after);
	ck_assert_mem_eq(before, after, 32);

	ck_assert_int_eq(upload(body, len, sig, sig_len, true, &u), 201);
	struct fmt_api_batch b;
	ck_assert_int_eq(fmt_api_batch_parse((const uint8_t *)u.answer, u.answer_len, &b, NULL),
	                 IDP_OK);
	ck_assert_str_eq(b.batch_id, "st1-000001");
	ck_assert_int_eq(b.devices, 20);
	ck_assert(b.created);
	ck_assert(!b.gap);
	/* The same upload again: 200, same batch, nothing written. */
	digest(before);
	ck_assert_int_eq(upload(body, len, sig, sig_len, true, &u), 200);
	ck_assert_int_eq(fmt_api_batch_parse((const uint8_t *)u.answer, u.answer_len, &b, NULL),
	                 IDP_OK);
	ck_assert(!b.created);
	ck_assert_int_eq(b.devices, 20);
	digest(after);
	ck_assert_mem_eq(before, after, 32);

	/* A preloaded device from the upload provisions. */
	struct fmt_key *k = new_key(FMT_KEY_P256);
	struct call *c = call_new(FMT_API_PROVISION, "up-0003", "02:10:00:00:00:03", k, NULL);
	struct fmt_api_answer a;
	ck_assert_int_eq(run(c, &a), 200); /* matched by ID + MAC, key recorded */
	fmt_api_answer_wipe(&a);
	call_free(c);
	fmt_key_free(k);
	free(sig);
	free(body);
}
END_TEST

struct collisions {
	char subjects[8][SRV_STORE_ID_MAX + 1];
	size_t n;
};

static int collision_flag(void *ctx, const struct srv_flag *f)
{
	struct collisions *c = ctx;
	if (strcmp(f->kind, SRV_IMPORT_FLAG_COLLISION) == 0 && c->n < 8)
		snprintf(c->subjects[c->n++], sizeof(c->subjects[0]), "%s", f->subject);
	return 0;
}

/* Provision unknown device id with key and MAC: expect 202 pending. */
static void expect_pending(const char *id, const char *mac, const struct fmt_key *key)
{
	struct call *c = call_new(FMT_API_PROVISION, id, mac, key, NULL);
	struct fmt_api_answer a;
	ck_assert_int_eq(run(c, &a), 202);
	ck_assert_int_eq(a.status.status, FMT_API_PENDING);
	fmt_api_answer_wipe(&a);
	call_free(c);
}

/* Provision unknown device id: expect the pending cap's refusal (status,
 * code, a message naming setting, Retry-After) with the store unchanged. */
static void expect_capped(const char *id, const struct fmt_key *key, long status,
                          enum fmt_api_err_code code, const char *setting)
{
	struct call *c = call_new(FMT_API_PROVISION, id, "02:00:5e:77:00:01", key, NULL);
	expect_error(c, status, code);
	ck_assert_msg(strstr(c->answer, setting) != NULL, "%s", c->answer);
	ck_assert_str_eq(c->retry_after, "30");
	/* formats/api.md §9: the body's retry_after equals the header. */
	struct fmt_api_error e;
	ck_assert_int_eq(fmt_api_error_parse((const uint8_t *)c->answer, c->answer_len, &e, NULL),
	                 IDP_OK);
	ck_assert_int_eq(e.retry_after, 30);
	call_free(c);
}

static int64_t pending_count(void)
{
	int64_t n = -1;
	ck_assert_int_eq(srv_store_device_count(db, SRV_DEV_PENDING, &n, NULL), IDP_OK);
	return n;
}

/* Issue 8 item 3: an unauthenticated client squats a manifest device's MAC
 * and key in pending rows; the station's signed batch still imports and the
 * squats are flagged; the genuine device provisions. Then a flood of unknown
 * devices from one address stops at max-pending-per-address (429 throttled)
 * and, in total, at max-pending (503 unavailable), each naming its setting,
 * with nothing stored. */
START_TEST(test_api_pending_claims_do_not_block_and_are_capped)
{
	struct fmt_key *attacker = new_key(FMT_KEY_P256), *ka = new_key(FMT_KEY_P256);
	struct fmt_key *kb = new_key(FMT_KEY_ED25519); /* a key the attacker also holds */
	expect_pending("junk-1", "02:20:00:00:00:01", attacker);
	expect_pending("junk-2", "02:00:5e:99:00:02", kb);

	struct fmt_manifest_header h;
	manifest_header(&h, "st1-claims", 2);
	uint8_t body[3 * FMT_MANIFEST_LINE_MAX];
	size_t len = 0, n = 0;
	struct fmt_manifest_writer w;
	ck_assert_int_eq(fmt_manifest_writer_begin(&w, &h, body, &n, NULL), IDP_OK);
	len += n;
	for (unsigned i = 1; i <= 2; i++) {
		struct fmt_manifest_record r;
		memset(&r, 0, sizeof(r));
		snprintf(r.id, sizeof(r.id), "cl-%04u", i);
		snprintf(r.serial, sizeof(r.serial), "CL%06u", i);
		ck_assert_int_eq(fmt_mac_parse(i == 1 ? "02:20:00:00:00:01" : "02:20:00:00:00:02",
		                               17, r.mac, NULL),
		                 IDP_OK);
		if (i == 2)
			ck_assert_int_eq(fmt_key_spki_der(kb, r.pub, &r.pub_len, NULL), IDP_OK);
		ck_assert_int_eq(fmt_manifest_writer_record(&w, &r, body + len, &n, NULL), IDP_OK);
		len += n;
	}
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	ck_assert_int_eq(fmt_manifest_sign(FMT_MANIFEST_SIG_ES256, station_key, NULL, NULL, body,
	                                   len, &sig, &sig_len, NULL),
	                 IDP_OK);
	struct upload u;
	ck_assert_msg(upload(body, len, sig, sig_len, true, &u) == 201, "%s", u.answer);
	free(sig);
	struct collisions col = {0};
	const struct srv_flag_query fq = {.limit = 100, .kind = SRV_IMPORT_FLAG_COLLISION};
	ck_assert_int_eq(srv_store_flag_foreach(db, &fq, collision_flag, &col, NULL), IDP_OK);
	ck_assert_uint_eq(col.n, 2);
	ck_assert_str_eq(col.subjects[0], "junk-2"); /* newest first */
	ck_assert_str_eq(col.subjects[1], "junk-1");
	/* The genuine device provisions: matched by ID + MAC, its key recorded. */
	struct call *c = call_new(FMT_API_PROVISION, "cl-0001", "02:20:00:00:00:01", ka, NULL);
	struct fmt_api_answer a;
	ck_assert_int_eq(run(c, &a), 200);
	fmt_api_answer_wipe(&a);
	call_free(c);

	/* A flood from this address (127.0.0.1; junk-1 and junk-2 count). The
	 * loops only read app between requests. */
	app.pcfg.pending.max_per_source = 4;
	expect_pending("fl-1", "02:00:5e:77:00:01", attacker);
	expect_pending("fl-2", "02:00:5e:77:00:01", attacker);
	for (int i = 0; i < 3; i++)
		expect_capped("fl-x", attacker, 429, FMT_API_ERR_THROTTLED,
		              "max-pending-per-address 4");
	ck_assert_int_eq(pending_count(), 4);
	/* The total cap. */
	app.pcfg.pending.max_per_source = 0;
	app.pcfg.pending.max_total = 6;
	expect_pending("fl-3", "02:00:5e:77:00:01", attacker);
	expect_pending("fl-4", "02:00:5e:77:00:01", attacker);
	for (int i = 0; i < 3; i++)
		expect_capped("fl-y", attacker, 503, FMT_API_ERR_UNAVAILABLE, "max-pending 6");
	ck_assert_int_eq(pending_count(), 6);
	/* A pending device already stored still gets its answer. */
	expect_pending("fl-1", "02:00:5e:77:00:01", attacker);
	fmt_key_free(attacker);
	fmt_key_free(ka);
	fmt_key_free(kb);
}
END_TEST

/* Start the idprovd program on state_dir; its port from its log. */
static pid_t spawn_idprovd(const char *state_dir, char url[static 96])
{
	const char *bin = getenv("IDP_BIN");
	char exe[512];
	snprintf(exe, sizeof(exe), "%s/idprovd", bin != NULL ? bin : "build/asan/bin");
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		/* A fixed issuer: the port changes with every start. */
		execl(exe, "idprovd", "--foreground", "--state-dir", state_dir, "--listen",
		      "127.0.0.1:0", "--threads", "2", "--server-url", "https://idprovd.test:8443",
		      "--throttle-per-minute", "0", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	FILE *f = fdopen(p[0], "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	url[0] = '\0';
	while (url[0] == '\0' && fgets(line, sizeof(line), f) != NULL) {
		const char *a = strstr(line, "event=http.listening addr=");
		if (a != NULL) {
			a += strlen("event=http.listening addr=");
			snprintf(url, 96, "https://%.*s", (int)strcspn(a, " \n"), a);
		}
	}
	ck_assert_msg(url[0] != '\0', "idprovd did not start (%s)", exe);
	/* Keep draining its log so that it never blocks on a full pipe. */
	if (fork() == 0) {
		while (fgets(line, sizeof(line), f) != NULL)
			;
		_exit(0);
	}
	fclose(f);
	return pid;
}

/* The killer waits until the request loop has started device number
 * `at` (counted, not timed, so a fast build cannot outrun it), then lets
 * that request get under way and sends SIGKILL. Bounded: it gives up
 * waiting after about 60 s and kills anyway. */
struct killer {
	pid_t pid;
	int at;
	const atomic_int *progress;
};

static void *kill_later(void *arg)
{
	const struct killer *k = arg;
	const struct timespec tick = {0, 1000000};
	for (int i = 0; i < 60000 && atomic_load(k->progress) < k->at; i++)
		nanosleep(&tick, NULL);
	const struct timespec settle = {0, 300000 + (long)(k->at % 7) * 100000};
	nanosleep(&settle, NULL);
	kill(k->pid, SIGKILL);
	return NULL;
}

#define CRASH_DEVICES 400

/* kill -9 of the server under provisioning load, at several points: after
 * a restart every decision that was answered is in the store, with its
 * token, and the server provisions again. */
START_TEST(test_api_sigkill_under_load_keeps_answered_decisions)
{
	char sd[160], url[96];
	snprintf(sd, sizeof(sd), "%s/crash", dir);
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	struct srv_state_opts o = {.dir = sd};
	struct srv_state *cs = NULL;
	ck_assert_int_eq(srv_state_open(&o, &cs, secret, NULL), IDP_OK);
	struct srv_store *cdb = NULL;
	ck_assert_int_eq(srv_store_open(cs->db_path, &cdb, NULL), IDP_OK);
	static struct fmt_key *ks[CRASH_DEVICES];
	for (int i = 0; i < CRASH_DEVICES; i++) {
		ks[i] = new_key(FMT_KEY_P256);
		struct srv_device d;
		memset(&d, 0, sizeof(d));
		snprintf(d.id, sizeof(d.id), "crash-%04d", i);
		snprintf(d.mac, sizeof(d.mac), "02:20:00:00:%02x:%02x", i >> 8, i & 0xff);
		ck_assert_int_eq(fmt_key_spki_der(ks[i], d.pubkey, &d.pubkey_len, NULL), IDP_OK);
		d.state = SRV_DEV_PRELOADED;
		ck_assert_int_eq(srv_store_device_insert(cdb, &d, NULL), IDP_OK);
	}
	srv_store_close(cdb);
	snprintf(ca_path, sizeof(ca_path), "%s/crash/ca.pem", dir);
	static char jtis[CRASH_DEVICES][FMT_TOKEN_JTI_LEN + 1];
	int next = 0, answered = 0;
	static atomic_int progress;
	atomic_store(&progress, 0);
	static const int kill_at[] = {40, 150, 300};
	for (size_t round = 0; round < 3 && next < CRASH_DEVICES; round++) {
		pid_t pid = spawn_idprovd(sd, url);
		snprintf(base_url, sizeof(base_url), "%s", url);
		struct killer k = {pid, kill_at[round], &progress};
		pthread_t t;
		ck_assert_int_eq(pthread_create(&t, NULL, kill_later, &k), 0);
		for (; next < CRASH_DEVICES; next++) {
			char id[32], mac[24];
			snprintf(id, sizeof(id), "crash-%04d", next);
			snprintf(mac, sizeof(mac), "02:20:00:00:%02x:%02x", next >> 8, next & 0xff);
			struct call *c = call_new(FMT_API_PROVISION, id, mac, ks[next], NULL);
			c->may_fail = true;
			atomic_store(&progress, next);
			post("/v1/provision", c);
			struct fmt_api_answer a;
			if (c->status != 200 ||
			    fmt_api_answer_parse((const uint8_t *)c->answer, c->answer_len, &a,
			                         NULL) != IDP_OK) {
				call_free(c);
				break; /* the server died under this request */
			}
			struct fmt_token_claims cl;
			ck_assert_int_eq(
			        fmt_token_decode_unverified((const uint8_t *)a.status.token,
			                                    strlen(a.status.token), &cl, NULL),
			        IDP_OK);
			snprintf(jtis[next], sizeof(jtis[next]), "%s", cl.jti);
			answered++;
			fmt_api_answer_wipe(&a);
			call_free(c);
		}
		pthread_join(t, NULL);
		int status = 0;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		next++; /* the interrupted device: answered or not, skip it */
	}
	ck_assert_int_gt(answered, 0);
	ck_assert_int_lt(next, CRASH_DEVICES); /* every round was cut by its kill */
	/* After the crashes: every answered decision and its token are there. */
	ck_assert_int_eq(srv_store_open(cs->db_path, &cdb, NULL), IDP_OK);
	for (int i = 0; i < CRASH_DEVICES; i++) {
		if (jtis[i][0] == '\0')
			continue;
		struct srv_device d;
		char id[32];
		snprintf(id, sizeof(id), "crash-%04d", i);
		ck_assert_int_eq(srv_store_device_get(cdb, id, &d, NULL), IDP_OK);
		ck_assert_int_eq(d.state, SRV_DEV_APPROVED);
		struct srv_token t;
		ck_assert_int_eq(srv_store_token_get(cdb, jtis[i], &t, NULL), IDP_OK);
		ck_assert_str_eq(t.device_id, id);
	}
	uint8_t dg[32];
	ck_assert_int_eq(srv_store_digest(cdb, dg, NULL), IDP_OK);
	srv_store_close(cdb);
	/* And it serves again. */
	pid_t pid = spawn_idprovd(sd, url);
	snprintf(base_url, sizeof(base_url), "%s", url);
	struct call *c = call_new(FMT_API_PROVISION, "crash-0399", "02:20:00:00:01:8f",
	                          ks[CRASH_DEVICES - 1], NULL);
	struct fmt_api_answer a;
	long st = run(c, &a);
	ck_assert(st == 200);
	fmt_api_answer_wipe(&a);
	call_free(c);
	kill(pid, SIGTERM);
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < CRASH_DEVICES; i++)
		fmt_key_free(ks[i]);
	srv_state_free(cs);
}
END_TEST

/* ---------------------------------------------------------------- raw HTTP */

struct raw_answer {
	int status;
	char ctype[64];
	char head[4096];
	char body[4096];
	size_t body_len;
};

/* The value of header name in the answer head h (lower-case name), or "". */
static void raw_header(const char *h, const char *name, char *out, size_t max)
{
	out[0] = '\0';
	size_t nl = strlen(name);
	for (const char *l = strstr(h, "\r\n"); l != NULL; l = strstr(l + 2, "\r\n")) {
		if (strncasecmp(l + 2, name, nl) == 0 && l[2 + nl] == ':') {
			const char *v = l + 3 + nl;
			while (*v == ' ')
				v++;
			size_t n = strcspn(v, "\r");
			snprintf(out, max, "%.*s", (int)(n < max ? n : max - 1), v);
			return;
		}
	}
}

/* Send raw[0..n) as it is on a new TLS connection to the server and read
 * one answer (head, then Content-Length bytes of body). */
static void raw_exchange(const char *raw, size_t n, struct raw_answer *a)
{
	memset(a, 0, sizeof(*a));
	const char *colon = strrchr(base_url, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
	ck_assert_int_eq(inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr), 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct timeval tv = {.tv_sec = 10};
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, ca_path, NULL), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL *ssl = SSL_new(ctx);
	ck_assert_ptr_nonnull(ssl);
	ck_assert_int_eq(SSL_set_fd(ssl, fd), 1);
	ck_assert_int_eq(SSL_connect(ssl), 1);
	/* The server may refuse on the head and stop reading before the rest
	 * arrives: a failed write (EPIPE, SIGPIPE ignored) is not the test's
	 * verdict, the answer read below is. */
	(void)signal(SIGPIPE, SIG_IGN);
	int w = SSL_write(ssl, raw, (int)n);
	ck_assert(w == (int)n || w <= 0);
	char buf[sizeof(a->head) + sizeof(a->body)];
	size_t got = 0, need = 0;
	const char *end = NULL;
	for (int i = 0; i < 1000 && got < sizeof(buf) - 1; i++) {
		int r = SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 - got));
		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = '\0';
		if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
			size_t hl = (size_t)(end - buf) + 2;
			ck_assert_uint_lt(hl, sizeof(a->head));
			memcpy(a->head, buf, hl);
			char cl[24];
			raw_header(a->head, "content-length", cl, sizeof(cl));
			need = hl + 2 + (size_t)strtoul(cl, NULL, 10);
		}
		if (end != NULL && got >= need)
			break;
	}
	ck_assert_msg(end != NULL && got == need, "no whole answer to %.40s: %s", raw, buf);
	ck_assert_int_eq(sscanf(a->head, "HTTP/1.1 %d ", &a->status), 1);
	raw_header(a->head, "content-type", a->ctype, sizeof(a->ctype));
	a->body_len = got - (size_t)(end + 4 - buf);
	memcpy(a->body, end + 4, a->body_len);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
}

START_TEST(test_api_every_refusal_is_a_parsable_json_error)
{
	char big_head[9000 + 64];
	snprintf(big_head, sizeof(big_head), "GET /v1/health HTTP/1.1\r\nX-Pad: %09000d\r\n\r\n", 0);
	static const char ctl_member[] = "POST /v1/provision HTTP/1.1\r\nContent-Type: "
	                                 "application/json\r\nContent-Length: 10\r\n\r\n"
	                                 "{\"a\\nb\":1}";
	static const char ctl_raw[] = "POST /v1/provision HTTP/1.1\r\nContent-Length: 18\r\n\r\n"
	                              "{\"device_id\":\"\x01\x1b\"}";
	static const char ctl_value[] = "POST /v1/token/renew HTTP/1.1\r\nContent-Length: 23\r\n\r\n"
	                                "{\"device_id\":\"\\u0007x\"}";
	const struct {
		const char *raw;
		size_t len; /* 0: strlen */
		int status;
		enum fmt_api_err_code code;
	} cases[] = {
		/* Bad JSON and client text with control characters. */
		{ctl_member, 0, 400, FMT_API_ERR_INVALID_FIELD},
		{ctl_raw, 0, 400, FMT_API_ERR_INVALID_FIELD},
		{ctl_value, 0, 400, FMT_API_ERR_INVALID_FIELD},
		/* Unknown route; wrong, unknown and bodiless methods. */
		{"GET /v1/nothing HTTP/1.1\r\n\r\n", 0, 404, FMT_API_ERR_NOT_FOUND},
		{"DELETE /v1/health HTTP/1.1\r\n\r\n", 0, 405, FMT_API_ERR_METHOD_NOT_ALLOWED},
		{"BREW /v1/health HTTP/1.1\r\n\r\n", 0, 405, FMT_API_ERR_METHOD_NOT_ALLOWED},
		{"PATCH /v1/nonce HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, 405,
		 FMT_API_ERR_METHOD_NOT_ALLOWED},
		{"GET /v1/provision HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /", 0, 400,
		 FMT_API_ERR_BAD_REQUEST},
		/* Oversized body and head; chunked; no length on a kept-open POST. */
		{"POST /v1/provision HTTP/1.1\r\nContent-Length: 20000\r\n\r\n", 0, 413,
		 FMT_API_ERR_TOO_LARGE},
		{big_head, 0, 431, FMT_API_ERR_HEADERS_TOO_LARGE},
		{"POST /v1/nonce HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 411,
		 FMT_API_ERR_LENGTH_REQUIRED},
		{"POST /v1/nonce HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", 0, 411,
		 FMT_API_ERR_LENGTH_REQUIRED},
		/* Malformed request lines and header lines. */
		{"GARBAGE\r\n\r\n", 0, 400, FMT_API_ERR_BAD_REQUEST},
		{"GET /v1/health HTTP/2.0\r\n\r\n", 0, 400, FMT_API_ERR_BAD_REQUEST},
		{"GET  /v1/health HTTP/1.1\r\n\r\n", 0, 400, FMT_API_ERR_BAD_REQUEST},
		{"GET /v1/health\r\n\r\n", 0, 400, FMT_API_ERR_BAD_REQUEST},
		{"G(T /v1/health HTTP/1.1\r\n\r\n", 0, 400, FMT_API_ERR_BAD_REQUEST},
		{"GET http://a:b:c/ HTTP/1.1\r\n\r\n", 0, 400, FMT_API_ERR_BAD_REQUEST},
		{"GET /v1/\x01health HTTP/1.1\r\n\r\n", 0, 400, FMT_API_ERR_BAD_REQUEST},
		{"GET /v1/health HTTP/1.1\r\nno colon here\r\n\r\n", 0, 400,
		 FMT_API_ERR_BAD_REQUEST},
		{"GET /v1/health HTTP/1.1\r\nBad Name: x\r\n\r\n", 0, 400, FMT_API_ERR_BAD_REQUEST},
		{"GET /v1/health HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n\r\n", 0, 400, FMT_API_ERR_BAD_REQUEST},
		{"GET /v1/health HTTP/1.1\r\n folded: x\r\n\r\n", 0, 400, FMT_API_ERR_BAD_REQUEST},
		{"POST /v1/nonce HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 0, 400,
		 FMT_API_ERR_BAD_REQUEST},
	};
	uint8_t before[32], after[32];
	digest(before);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct raw_answer a;
		size_t n = cases[i].len != 0 ? cases[i].len : strlen(cases[i].raw);
		raw_exchange(cases[i].raw, n, &a);
		struct fmt_api_error e;
		struct idp_error err = {0};
		ck_assert_msg(fmt_api_error_parse((const uint8_t *)a.body, a.body_len, &e, &err) ==
		                      IDP_OK,
		              "case %zu: %d %s: %s (%s)", i, a.status, a.ctype, a.body, err.msg);
		ck_assert_msg(a.status == cases[i].status && e.code == cases[i].code,
		              "case %zu: %d %s", i, a.status, a.body);
		ck_assert_int_eq(fmt_api_err_http_status(e.code), a.status);
		ck_assert_str_eq(a.ctype, "application/json");
	}
	/* The client's newline comes back escaped, not raw. */
	struct raw_answer a;
	raw_exchange(ctl_member, strlen(ctl_member), &a);
	ck_assert_msg(strstr(a.body, "a\\\\x0ab") != NULL, "%s", a.body);
	/* A 405 names the methods to use (HEAD is GET without the body). */
	raw_exchange(cases[5].raw, strlen(cases[5].raw), &a);
	char allow[16];
	raw_header(a.head, "allow", allow, sizeof(allow));
	ck_assert_str_eq(allow, "GET, HEAD");
	digest(after);
	ck_assert_mem_eq(before, after, 32);
}
END_TEST

/* ---------------------------------------------------------------- key set */

struct got {
	char body[16384];
	size_t len;
	char type[128];
};

static size_t got_body(char *buf, size_t size, size_t n, void *arg)
{
	struct got *g = arg;
	size_t k = size * n;
	ck_assert_uint_le(g->len + k, sizeof(g->body) - 1);
	memcpy(g->body + g->len, buf, k);
	g->len += k;
	g->body[g->len] = '\0';
	return k;
}

/* GET path, or with post POST "{}"; with "Authorization: Bearer bearer" when
 * bearer is not NULL; the status, the body and its content type in *g. */
static long fetch_as(const char *path, const char *bearer, bool post_empty, struct got *g)
{
	memset(g, 0, sizeof(*g));
	char url[160], auth[128];
	snprintf(url, sizeof(url), "%s%s", base_url, path);
	CURL *curl = curl_easy_init();
	ck_assert_ptr_nonnull(curl);
	struct curl_slist *h = NULL;
	if (bearer != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
		h = curl_slist_append(h, auth);
	}
	if (post_empty) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "{}");
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CAINFO, ca_path);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, got_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, g);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
	ck_assert_int_eq(curl_easy_perform(curl), CURLE_OK);
	long status = 0;
	const char *type = NULL;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
	snprintf(g->type, sizeof(g->type), "%s", type != NULL ? type : "");
	curl_slist_free_all(h);
	curl_easy_cleanup(curl);
	return status;
}

/* GET path, or POST "{}" with the admin bearer when bearer is not NULL. */
static long fetch(const char *path, const char *bearer, struct got *g)
{
	return fetch_as(path, bearer, bearer != NULL, g);
}

/* GET path with the admin credential. */
static long fetch_get_admin(const char *path, struct got *g)
{
	return fetch_as(path, admin_secret, false, g);
}

/* Group commit and streamed answers: an audit export (sent in chunks, not
 * through srv_http_reply) shows an entry only once the fsync covering its
 * commit is done. The test's own connection joins the server's group and
 * commits an entry no answer waits for, so nothing has asked the syncer to
 * flush it; the export that carries it must. */
START_TEST(test_api_audit_export_waits_for_durable_entries)
{
	/* The server's group, joined as its loops join it (test only). */
	struct srv_store_sync *g = (struct srv_store_sync *)(uintptr_t)srv_httpd_store_sync(httpd);
	ck_assert_ptr_nonnull(g);
	struct srv_store *w = NULL;
	ck_assert_int_eq(srv_store_open(state->db_path, &w, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_sync_join(w, g, NULL), IDP_OK);
	const struct srv_audit_event ev = {.at = (int64_t)time(NULL),
	                                   .event = "test.not-yet-durable",
	                                   .subject = "exp-1",
	                                   .actor = SRV_STORE_ACTOR_SERVER};
	ck_assert_int_eq(srv_store_audit_append(w, &ev, NULL), IDP_OK);
	uint64_t counted = srv_store_sync_committed(g);
	ck_assert_uint_lt(srv_store_sync_durable(g), counted);
	struct got got;
	ck_assert_int_eq(fetch_get_admin("/v1/admin/audit/export", &got), 200);
	ck_assert_ptr_nonnull(strstr(got.body, "\"test.not-yet-durable\""));
	ck_assert_uint_ge(srv_store_sync_durable(g), counted);
	srv_store_close(w);
}
END_TEST

/* The kid in the header of token tok. */
static void header_kid(const char *tok, char kid[static 65])
{
	const char *dot = strchr(tok, '.');
	ck_assert_ptr_nonnull(dot);
	uint8_t hdr[512];
	size_t n = 0;
	ck_assert_int_eq(fmt_b64_decode(FMT_B64_URL, tok, (size_t)(dot - tok), hdr, sizeof(hdr) - 1,
	                                &n, NULL),
	                 IDP_OK);
	cJSON *o = cJSON_ParseWithLength((const char *)hdr, n);
	ck_assert_ptr_nonnull(o);
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kid");
	ck_assert(cJSON_IsString(k));
	snprintf(kid, 65, "%s", k->valuestring);
	cJSON_Delete(o);
}

/* Verify device token tok with the key GET /v1/keys publishes under its kid
 * (rebuilt from the JWK by the test, not by the server's code); n_keys gets
 * the size of the published set. */
static enum idp_err verify_with_jwks(const char *tok, int *n_keys)
{
	struct got g;
	ck_assert_int_eq(fetch("/v1/keys", NULL, &g), 200);
	ck_assert_str_eq(g.type, "application/jwk-set+json");
	cJSON *doc = cJSON_ParseWithLength(g.body, g.len);
	ck_assert_ptr_nonnull(doc);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "keys");
	ck_assert(cJSON_IsArray(arr));
	*n_keys = cJSON_GetArraySize(arr);
	char kid[65];
	header_kid(tok, kid);
	struct fmt_key *key = NULL;
	const cJSON *jwk = NULL;
	cJSON_ArrayForEach(jwk, arr)
	{
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(jwk, "kid");
		if (cJSON_IsString(k) && strcmp(k->valuestring, kid) == 0)
			key = idp_test_jwk_key(jwk);
	}
	cJSON_Delete(doc);
	if (key == NULL)
		return IDP_E_NOTFOUND;
	const struct fmt_token_key one = {kid, key};
	const struct fmt_token_policy pol = {.iss = app.pcfg.issuer,
	                                     .aud = app.pcfg.audience,
	                                     .kinds = FMT_TOKEN_DEVICE,
	                                     .now = (int64_t)time(NULL)};
	enum idp_err rc =
	        fmt_token_verify((const uint8_t *)tok, strlen(tok), &one, 1, &pol, NULL, NULL, NULL);
	fmt_key_free(key);
	return rc;
}

START_TEST(test_api_jwks_verifies_tokens_across_rotation)
{
	struct fmt_key *k = new_key(FMT_KEY_ED25519);
	preload("dev-jwks", k, "02:00:5e:10:00:31");
	struct fmt_api_answer a;
	struct call *c = call_new(FMT_API_PROVISION, "dev-jwks", "02:00:5e:10:00:31", k, NULL);
	ck_assert_int_eq(run(c, &a), 200);
	char prov[FMT_API_TOKEN_MAX + 1], dev[FMT_API_TOKEN_MAX + 1];
	snprintf(prov, sizeof(prov), "%s", a.status.token);
	fmt_api_answer_wipe(&a);
	call_free(c);
	c = call_new(FMT_API_EXCHANGE, "dev-jwks", "02:00:5e:10:00:31", k, prov);
	ck_assert_int_eq(run(c, &a), 200);
	snprintf(dev, sizeof(dev), "%s", a.status.token);
	fmt_api_answer_wipe(&a);
	call_free(c);

	/* The issued device token verifies with the published JWK. */
	int n = 0;
	ck_assert_int_eq(verify_with_jwks(dev, &n), IDP_OK);
	ck_assert_int_eq(n, 1);
	struct got g1, g2;
	ck_assert_int_eq(fetch("/v1/keys", NULL, &g1), 200);
	ck_assert_int_eq(fetch("/.well-known/jwks.json", NULL, &g2), 200);
	ck_assert_str_eq(g1.body, g2.body);
	char old_kid[65];
	header_kid(dev, old_kid);
	ck_assert_str_eq(old_kid, state->token_kid);

	/* Rotation is an admin action: refused without the credential. */
	uint8_t before[32], after[32];
	digest(before);
	ck_assert_int_eq(fetch("/v1/admin/token-keys/rotate", "not-the-credential", &g1), 401);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	ck_assert_int_eq(verify_with_jwks(dev, &n), IDP_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(fetch("/v1/admin/token-keys/rotate", admin_secret, &g1), 200);
	cJSON *o = cJSON_ParseWithLength(g1.body, g1.len);
	ck_assert_ptr_nonnull(o);
	char new_kid[65];
	snprintf(new_kid, sizeof(new_kid), "%s",
	         cJSON_GetObjectItemCaseSensitive(o, "kid")->valuestring);
	cJSON_Delete(o);
	ck_assert_str_ne(new_kid, old_kid);

	/* After the rotation: both keys published, the old token still
	 * verifies (with the JWK and at the server: it renews), and the new
	 * token carries the new kid and verifies with its JWK. */
	ck_assert_int_eq(verify_with_jwks(dev, &n), IDP_OK);
	ck_assert_int_eq(n, 2);
	c = call_new(FMT_API_RENEW, "dev-jwks", "02:00:5e:10:00:31", k, dev);
	ck_assert_int_eq(run(c, &a), 200);
	char renewed[FMT_API_TOKEN_MAX + 1], kid[65];
	snprintf(renewed, sizeof(renewed), "%s", a.status.token);
	fmt_api_answer_wipe(&a);
	call_free(c);
	header_kid(renewed, kid);
	ck_assert_str_eq(kid, new_kid);
	ck_assert_int_eq(verify_with_jwks(renewed, &n), IDP_OK);
	/* A token signed by a key the server never published is not in the set. */
	struct fmt_key *rogue = new_key(FMT_KEY_P256);
	struct fmt_token_claims cl;
	memset(&cl, 0, sizeof(cl));
	snprintf(cl.iss, sizeof(cl.iss), "%s", app.pcfg.issuer);
	snprintf(cl.aud, sizeof(cl.aud), "%s", app.pcfg.audience);
	snprintf(cl.sub, sizeof(cl.sub), "dev-jwks");
	cl.kind = FMT_TOKEN_DEVICE;
	ck_assert_int_eq(fmt_token_jkt(k, cl.jkt, NULL), IDP_OK);
	char *forged = NULL;
	size_t flen = 0;
	ck_assert_int_eq(fmt_token_sign(rogue, "t-0000000000000000", &cl, (int64_t)time(NULL), 0,
	                                NULL, &forged, &flen, NULL),
	                 IDP_OK);
	ck_assert_int_eq(verify_with_jwks(forged, &n), IDP_E_NOTFOUND);
	fmt_token_free(forged);
	fmt_key_free(rogue);
	fmt_key_free(k);
}
END_TEST

/* Issue 9, lost answers: idprovd dies right after committing an exchange,
 * before answering (the test-only fault point, docs/design.md). After a
 * restart the device retries with the same provisioning token and a new
 * proof: it gets a device token, the undelivered one is revoked, and the
 * device holds exactly one live token. */
START_TEST(test_api_token_exchange_survives_crash_after_commit)
{
	char sd[160], url[96];
	snprintf(sd, sizeof(sd), "%s/fault", dir);
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	struct srv_state_opts o = {.dir = sd};
	struct srv_state *fs = NULL;
	ck_assert_int_eq(srv_state_open(&o, &fs, secret, NULL), IDP_OK);
	struct srv_store *fdb = NULL;
	ck_assert_int_eq(srv_store_open(fs->db_path, &fdb, NULL), IDP_OK);
	struct fmt_key *k = new_key(FMT_KEY_P256);
	struct srv_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "dev-crash");
	snprintf(d.mac, sizeof(d.mac), "02:30:00:00:00:01");
	ck_assert_int_eq(fmt_key_spki_der(k, d.pubkey, &d.pubkey_len, NULL), IDP_OK);
	d.state = SRV_DEV_PRELOADED;
	ck_assert_int_eq(srv_store_device_insert(fdb, &d, NULL), IDP_OK);
	snprintf(ca_path, sizeof(ca_path), "%s/fault/ca.pem", dir);

	ck_assert_int_eq(setenv("IDPROVD_TEST_FAULT", "redeem.committed", 1), 0);
	pid_t pid = spawn_idprovd(sd, url);
	ck_assert_int_eq(unsetenv("IDPROVD_TEST_FAULT"), 0);
	snprintf(base_url, sizeof(base_url), "%s", url);
	struct fmt_api_answer a;
	struct call *c = call_new(FMT_API_PROVISION, "dev-crash", "02:30:00:00:00:01", k, NULL);
	ck_assert_int_eq(run(c, &a), 200);
	char prov[FMT_API_TOKEN_MAX + 1];
	snprintf(prov, sizeof(prov), "%s", a.status.token);
	fmt_api_answer_wipe(&a);
	call_free(c);
	c = call_new(FMT_API_EXCHANGE, "dev-crash", "02:30:00:00:00:01", k, prov);
	c->may_fail = true;
	post("/v1/token/exchange", c);
	ck_assert_int_eq(c->status, 0); /* no answer */
	call_free(c);
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 99);
	/* The exchange was committed: one live device token nobody received. */
	int64_t n = -1;
	ck_assert_int_eq(srv_store_token_live(fdb, "dev-crash", (int64_t)time(NULL), &n, NULL),
	                 IDP_OK);
	ck_assert_int_eq(n, 1);

	pid = spawn_idprovd(sd, url);
	snprintf(base_url, sizeof(base_url), "%s", url);
	c = call_new(FMT_API_EXCHANGE, "dev-crash", "02:30:00:00:00:01", k, prov);
	ck_assert_int_eq(run(c, &a), 200); /* before: 401 token_invalid */
	char dev[FMT_API_TOKEN_MAX + 1];
	snprintf(dev, sizeof(dev), "%s", a.status.token);
	fmt_api_answer_wipe(&a);
	call_free(c);
	ck_assert_int_eq(srv_store_token_live(fdb, "dev-crash", (int64_t)time(NULL), &n, NULL),
	                 IDP_OK);
	ck_assert_int_eq(n, 1); /* before: 2 (the orphan beside the new one) */
	c = call_new(FMT_API_RENEW, "dev-crash", "02:30:00:00:00:01", k, dev);
	ck_assert_int_eq(run(c, &a), 200);
	fmt_api_answer_wipe(&a);
	call_free(c);
	ck_assert_int_eq(srv_store_token_live(fdb, "dev-crash", (int64_t)time(NULL), &n, NULL),
	                 IDP_OK);
	ck_assert_int_eq(n, 1);
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	srv_store_close(fdb);
	srv_state_free(fs);
	fmt_key_free(k);
}
END_TEST

/* The answer of a provision call with an out-of-band proof by verifier
 * (other_conn: made over another connection; as_key: made for another key). */
static long oob_call(const char *id, const char *mac, const struct fmt_key *k,
                     const uint8_t *verifier, bool other_conn, const struct fmt_key *as_key,
                     struct fmt_api_answer *a)
{
	struct call *c = call_new(FMT_API_PROVISION, id, mac, k, NULL);
	c->oob_verifier = verifier;
	c->oob_other_conn = other_conn;
	c->oob_key_as = as_key;
	long st = run(c, a);
	call_free(c);
	return st;
}

static bool flag_open(const char *kind, const char *id, int64_t *count)
{
	struct srv_flag f;
	enum idp_err rc = srv_store_flag_get(db, kind, id, &f, NULL);
	if (count != NULL)
		*count = rc == IDP_OK ? f.count : 0;
	return rc == IDP_OK;
}

/* Out-of-band secrets end to end (formats/api.md §15): the administrator
 * enters the label secret with idprov-admin (stdin; only the KDF verifier
 * is stored); a wrong secret, a proof relayed from another connection and a
 * proof made for another key are refused oob_mismatch, flagged, counted,
 * and approve nothing; the right one approves the unknown device at once;
 * the secret is single use (a second key with it is refused and flagged
 * oob-reused); an expired entry is not checked (the device waits, pending);
 * a device pending before the secret was entered is approved by its proof;
 * a manifest's key still decides (key_mismatch); five wrong proofs for one
 * ID exhaust its oob bucket: the next proof, even the right one, is answered
 * 429 unchecked. */
START_TEST(test_api_oob_secret_end_to_end)
{
	const char *secret = "Lb1-s3cr3t!x";
	char path[160], out[4096], args[256];
	snprintf(path, sizeof(path), "%s/label.secret", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s\n", secret);
	ck_assert_int_eq(fclose(f), 0);
	snprintf(args, sizeof(args), "oob add dev-oob1 --expires 1h <'%s'", path);
	ck_assert_msg(admin_cli(out, sizeof(out), args) == 0, "%s", out);
	uint8_t right[FMT_OOB_LEN], wrong[FMT_OOB_LEN];
	ck_assert_int_eq(fmt_oob_verifier("dev-oob1", secret, strlen(secret), right, NULL), IDP_OK);
	ck_assert_int_eq(fmt_oob_verifier("dev-oob1", "Lb1-s3cr3t!y", 12, wrong, NULL), IDP_OK);
	struct srv_oob e;
	ck_assert_int_eq(srv_store_oob_get(db, "dev-oob1", &e, NULL), IDP_OK);
	ck_assert_mem_eq(e.verifier, right, FMT_OOB_LEN); /* the verifier, not the secret */
	ck_assert_int_ge(e.expires_at - e.created_at, 3599);

	struct fmt_key *ka = new_key(FMT_KEY_P256), *kb = new_key(FMT_KEY_ED25519);
	struct fmt_api_answer a;
	struct srv_device d;
	const char *mac = "02:00:5e:10:0b:01";
	/* Wrong secret; the right one relayed from another connection; the
	 * right one made for ka but sent with kb (a relay that swaps the key). */
	ck_assert_int_eq(oob_call("dev-oob1", mac, ka, wrong, false, NULL, &a), 403);
	ck_assert_int_eq(a.status.reason, FMT_API_REASON_OOB_MISMATCH);
	fmt_api_answer_wipe(&a);
	ck_assert_int_eq(oob_call("dev-oob1", mac, ka, right, true, NULL, &a), 403);
	ck_assert_int_eq(a.status.reason, FMT_API_REASON_OOB_MISMATCH);
	fmt_api_answer_wipe(&a);
	ck_assert_int_eq(oob_call("dev-oob1", mac, kb, right, false, ka, &a), 403);
	ck_assert_int_eq(a.status.reason, FMT_API_REASON_OOB_MISMATCH);
	fmt_api_answer_wipe(&a);
	int64_t count = 0;
	ck_assert(flag_open("oob-mismatch", "dev-oob1", &count));
	ck_assert_int_eq(count, 3);
	ck_assert_int_eq(srv_store_device_get(db, "dev-oob1", &d, NULL), IDP_E_NOTFOUND);
	ck_assert_int_eq(srv_store_oob_get(db, "dev-oob1", &e, NULL), IDP_OK);
	ck_assert_int_eq(e.failures, 3);
	ck_assert_int_eq(e.used_at, 0);

	/* The right secret on its own connection: approved at once. */
	ck_assert_int_eq(oob_call("dev-oob1", mac, ka, right, false, NULL, &a), 200);
	ck_assert_int_eq(a.status.status, FMT_API_APPROVED);
	ck_assert_int_eq(a.status.token_kind, FMT_TOKEN_PROVISION);
	fmt_api_answer_wipe(&a);
	ck_assert_int_eq(srv_store_device_get(db, "dev-oob1", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_APPROVED);
	ck_assert_int_eq(srv_store_oob_get(db, "dev-oob1", &e, NULL), IDP_OK);
	ck_assert_int_ne(e.used_at, 0);

	/* Used twice: another key with the same secret is not approved. */
	ck_assert_int_eq(oob_call("dev-oob1", mac, kb, right, false, NULL, &a), 403);
	ck_assert_int_eq(a.status.reason, FMT_API_REASON_KEY_MISMATCH);
	fmt_api_answer_wipe(&a);
	ck_assert(flag_open("oob-reused", "dev-oob1", NULL));
	ck_assert_int_eq(srv_store_device_get(db, "dev-oob1", &d, NULL), IDP_OK);
	uint8_t der[FMT_KEY_SPKI_MAX];
	size_t dl = 0;
	ck_assert_int_eq(fmt_key_spki_der(ka, der, &dl, NULL), IDP_OK);
	ck_assert_uint_eq(d.pubkey_len, dl);
	ck_assert_mem_eq(d.pubkey, der, dl); /* still ka's */

	/* Expired: not checked, the device waits for an administrator. */
	uint8_t v2[FMT_OOB_LEN];
	ck_assert_int_eq(fmt_oob_verifier("dev-oob2", secret, strlen(secret), v2, NULL), IDP_OK);
	struct srv_oob old = {.created_at = (int64_t)time(NULL) - 7200,
	                      .expires_at = (int64_t)time(NULL) - 1};
	snprintf(old.device_id, sizeof(old.device_id), "dev-oob2");
	memcpy(old.verifier, v2, sizeof(v2));
	ck_assert_int_eq(srv_store_oob_put(db, &old, NULL), IDP_OK);
	ck_assert_int_eq(oob_call("dev-oob2", "02:00:5e:10:0b:02", kb, v2, false, NULL, &a), 202);
	fmt_api_answer_wipe(&a);
	ck_assert_int_eq(srv_store_device_get(db, "dev-oob2", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_PENDING);

	/* Seen first, the secret entered after: the pending device is approved
	 * with the key that proves it; a manifest's key still decides. */
	uint8_t v4[FMT_OOB_LEN];
	ck_assert_int_eq(oob_call("dev-oob4", "02:00:5e:10:0b:04", kb, NULL, false, NULL, &a), 202);
	fmt_api_answer_wipe(&a);
	snprintf(args, sizeof(args), "oob add dev-oob4 <'%s'", path);
	ck_assert_msg(admin_cli(out, sizeof(out), args) == 0, "%s", out);
	ck_assert_int_eq(fmt_oob_verifier("dev-oob4", secret, strlen(secret), v4, NULL), IDP_OK);
	ck_assert_int_eq(oob_call("dev-oob4", "02:00:5e:10:0b:04", kb, v4, false, NULL, &a), 200);
	fmt_api_answer_wipe(&a);
	ck_assert_int_eq(srv_store_device_get(db, "dev-oob4", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_APPROVED);
	preload("dev-oob5", ka, "02:00:5e:10:0b:05");
	snprintf(args, sizeof(args), "oob add dev-oob5 <'%s'", path);
	ck_assert_msg(admin_cli(out, sizeof(out), args) == 0, "%s", out);
	ck_assert_int_eq(fmt_oob_verifier("dev-oob5", secret, strlen(secret), v4, NULL), IDP_OK);
	ck_assert_int_eq(oob_call("dev-oob5", "02:00:5e:10:0b:05", kb, v4, false, NULL, &a), 403);
	ck_assert_int_eq(a.status.reason, FMT_API_REASON_KEY_MISMATCH);
	fmt_api_answer_wipe(&a);

	/* Guessing: five wrong proofs, then even the right one is 429 unchecked. */
	uint8_t v3[FMT_OOB_LEN], w3[FMT_OOB_LEN];
	snprintf(args, sizeof(args), "oob add dev-oob3 <'%s'", path);
	ck_assert_msg(admin_cli(out, sizeof(out), args) == 0, "%s", out);
	ck_assert_int_eq(fmt_oob_verifier("dev-oob3", secret, strlen(secret), v3, NULL), IDP_OK);
	ck_assert_int_eq(fmt_oob_verifier("dev-oob3", "guess", 5, w3, NULL), IDP_OK);
	struct fmt_key *kc = new_key(FMT_KEY_P256);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(oob_call("dev-oob3", "02:00:5e:10:0b:03", kc, w3, false, NULL, &a),
		                 403);
		fmt_api_answer_wipe(&a);
	}
	struct call *c = call_new(FMT_API_PROVISION, "dev-oob3", "02:00:5e:10:0b:03", kc, NULL);
	c->oob_verifier = v3;
	expect_error(c, 429, FMT_API_ERR_THROTTLED);
	call_free(c);
	ck_assert_int_eq(srv_store_oob_get(db, "dev-oob3", &e, NULL), IDP_OK);
	ck_assert_int_eq(e.used_at, 0);
	ck_assert_int_eq(e.failures, 5);
	struct got g;
	ck_assert_int_eq(fetch_get_admin("/metrics", &g), 200);
	ck_assert_ptr_nonnull(strstr(g.body, "idprov_throttled_total{by=\"oob\"} 1\n"));
	/* The listing shows entries, never a verifier. */
	ck_assert_int_eq(fetch_get_admin("/v1/admin/oob", &g), 200);
	ck_assert_ptr_nonnull(strstr(g.body, "\"device_id\":\"dev-oob3\""));
	ck_assert_ptr_null(strstr(g.body, "verifier"));
	fmt_key_free(ka);
	fmt_key_free(kb);
	fmt_key_free(kc);
}
END_TEST

static void setup_throttled(void)
{
	throttles_on = true;
	setup();
}

/* The per-device-ID and per-station throttles: a device ID gets its burst,
 * then 429 with Retry-After naming it, the store unchanged; another ID from
 * the same address is not slowed; a station's uploads likewise; the
 * refusals are counted in /metrics by kind. */
START_TEST(test_api_throttle_per_device_and_station)
{
	struct fmt_key *k = new_key(FMT_KEY_P256), *k2 = new_key(FMT_KEY_P256);
	struct fmt_api_answer a;
	for (int i = 0; i < 3; i++) {
		struct call *c = call_new(FMT_API_PROVISION, "dev-thr", "02:00:5e:10:00:09", k, NULL);
		ck_assert_int_eq(run(c, &a), 202);
		fmt_api_answer_wipe(&a);
		call_free(c);
	}
	struct call *c = call_new(FMT_API_PROVISION, "dev-thr", "02:00:5e:10:00:09", k, NULL);
	expect_error(c, 429, FMT_API_ERR_THROTTLED);
	ck_assert_int_ge(atoi(c->retry_after), 1);
	ck_assert_ptr_nonnull(strstr(c->answer, "too many requests for dev-thr"));
	call_free(c);
	c = call_new(FMT_API_PROVISION, "dev-thr2", "02:00:5e:10:00:0a", k2, NULL);
	ck_assert_int_eq(run(c, &a), 202);
	fmt_api_answer_wipe(&a);
	call_free(c);

	struct fmt_manifest_header h;
	manifest_header(&h, "st1-thr", 1);
	uint8_t body[2 * FMT_MANIFEST_LINE_MAX];
	size_t len = 0, n = 0;
	struct fmt_manifest_writer w;
	ck_assert_int_eq(fmt_manifest_writer_begin(&w, &h, body, &n, NULL), IDP_OK);
	len += n;
	struct fmt_manifest_record r;
	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "thr-0001");
	snprintf(r.serial, sizeof(r.serial), "THR0001");
	r.mac[0] = 0x02;
	r.mac[5] = 0x77;
	ck_assert_int_eq(fmt_manifest_writer_record(&w, &r, body + len, &n, NULL), IDP_OK);
	len += n;
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	ck_assert_int_eq(fmt_manifest_sign(FMT_MANIFEST_SIG_ES256, station_key, NULL, NULL, body,
	                                   len, &sig, &sig_len, NULL),
	                 IDP_OK);
	struct upload u;
	ck_assert_int_eq(upload(body, len, sig, sig_len, true, &u), 201);
	ck_assert_int_eq(upload(body, len, sig, sig_len, true, &u), 200);
	uint8_t before[32], after[32];
	digest(before);
	ck_assert_int_eq(upload(body, len, sig, sig_len, true, &u), 429);
	ck_assert_ptr_nonnull(strstr(u.answer, "too many requests for station-01"));
	digest(after);
	ck_assert_mem_eq(before, after, 32);

	ck_assert_uint_eq(srv_throttle_refused(app.throttle_device), 1);
	ck_assert_uint_eq(srv_throttle_refused(app.throttle_station), 1);
	struct got g;
	ck_assert_int_eq(fetch_get_admin("/metrics", &g), 200);
	ck_assert_ptr_nonnull(strstr(g.body, "idprov_throttled_total{by=\"device\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(g.body, "idprov_throttled_total{by=\"station\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(g.body, "idprov_throttled_total{by=\"oob\"} 0\n"));
	free(sig);
	fmt_key_free(k);
	fmt_key_free(k2);
}
END_TEST

Suite *idp_test_suite(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	Suite *s = suite_create("api_server");
	TCase *tc = tcase_create("https");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_api_preloaded_device_provisions_exchanges_renews, 0, 2);
	tcase_add_test(tc, test_api_unknown_pending_once_then_rejected_and_revoked);
	tcase_add_test(tc, test_api_bad_proofs_change_nothing);
	tcase_add_loop_test(tc, test_api_rfc9266_exporter_empty_context, 0, 2);
	tcase_add_loop_test(tc, test_api_resumed_sessions_have_their_own_exporter, 0, 2);
	tcase_add_test(tc, test_api_answer_after_its_commit_is_durable);
	tcase_add_test(tc, test_api_audit_export_waits_for_durable_entries);
	tcase_add_test(tc, test_api_pop_high_s_refused_by_server);
	tcase_add_test(tc, test_api_weak_ed25519_keys_refused_by_server);
	tcase_add_loop_test(tc, test_api_proof_replayed_on_same_connection, 0, 2);
	tcase_add_test(tc, test_api_admin_cli_flags_and_contested_ids);
	tcase_add_test(tc, test_api_nonce_single_use_and_foreign_tokens);
	tcase_add_test(tc, test_api_batch_upload_by_station);
	tcase_add_test(tc, test_api_pending_claims_do_not_block_and_are_capped);
	tcase_add_test(tc, test_api_every_refusal_is_a_parsable_json_error);
	tcase_add_test(tc, test_api_sigkill_under_load_keeps_answered_decisions);
	tcase_add_test(tc, test_api_jwks_verifies_tokens_across_rotation);
	tcase_add_test(tc, test_api_token_exchange_survives_crash_after_commit);
	tcase_add_test(tc, test_api_oob_secret_end_to_end);
	suite_add_tcase(s, tc);
	TCase *tt = tcase_create("throttle");
	tcase_add_checked_fixture(tt, setup_throttled, teardown);
	tcase_set_timeout(tt, 120);
	tcase_add_test(tt, test_api_throttle_per_device_and_station);
	suite_add_tcase(s, tt);
	return s;
}
