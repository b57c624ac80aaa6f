/*
 * test_state.c - state.h: first start creates the directory with tight modes,
 * a CA and a server certificate that verifies against it for the host's
 * names, the token key and a hashed admin credential; a second start reuses
 * all of it; a new name re-issues only the server certificate; unsafe
 * directories, bad names and damaged hash files are refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "formats/file.h"
#include "server/state.h"
#include "tests/unit/check_main.h"

static char top[64];
static char dir[128];

static void setup(void)
{
	snprintf(top, sizeof(top), "/tmp/idp-state-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	snprintf(dir, sizeof(dir), "%s/state", top);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	ck_assert_int_eq(system(cmd), 0);
}

static unsigned mode_of(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct stat st;
	ck_assert_msg(stat(path, &st) == 0, "%s missing", path);
	return (unsigned)(st.st_mode & 0777);
}

static struct srv_state *open_ok(const char *const *names, size_t n, char *secret)
{
	struct srv_state_opts o = {.dir = dir, .names = names, .n_names = n};
	struct srv_state *s = NULL;
	struct idp_error err = {0};
	enum idp_err rc = srv_state_open(&o, &s, secret, &err);
	ck_assert_msg(rc == IDP_OK, "open: %s", err.msg);
	return s;
}

/* X509_verify_cert of the server certificate against the CA, for TLS servers. */
static int verify_chain(const struct srv_state *s)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	ck_assert_int_eq(X509_STORE_add_cert(store, s->ca_cert), 1);
	ck_assert_int_eq(X509_STORE_CTX_init(ctx, store, s->server_cert, NULL), 1);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	int ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok;
}

START_TEST(test_state_first_start_creates_everything)
{
	umask(022);
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	static const char *const names[] = {"idprov.example", "192.0.2.7"};
	struct srv_state *s = open_ok(names, 2, secret);
	ck_assert(s->created);
	ck_assert(s->admin_created);
	ck_assert_uint_eq(strlen(secret), SRV_STATE_ADMIN_SECRET_LEN);
	ck_assert_uint_eq(mode_of(""), 0700);
	ck_assert_uint_eq(mode_of("ca.key"), 0600);
	ck_assert_uint_eq(mode_of("server.key"), 0600);
	ck_assert_uint_eq(mode_of("token.key"), 0600);
	ck_assert_uint_eq(mode_of("admin.hash"), 0600);
	ck_assert_uint_eq(mode_of("ca.pem"), 0644);
	ck_assert_uint_eq(mode_of("server.pem"), 0644);
	ck_assert_uint_eq(mode_of("token.pub"), 0644);

	/* The credential is stored only as a hash. */
	char path[256];
	snprintf(path, sizeof(path), "%s/admin.hash", dir);
	uint8_t *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_file_read(path, 1000, &buf, &len, NULL), IDP_OK);
	ck_assert_ptr_null(strstr((char *)buf, secret));
	ck_assert_ptr_nonnull(strstr((char *)buf, "scrypt "));
	free(buf);
	bool ok = false;
	ck_assert_int_eq(srv_state_admin_check(s, secret, strlen(secret), &ok, NULL), IDP_OK);
	ck_assert(ok);
	char wrong[SRV_STATE_ADMIN_SECRET_LEN + 1];
	memcpy(wrong, secret, sizeof(wrong));
	wrong[5] = wrong[5] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(srv_state_admin_check(s, wrong, strlen(wrong), &ok, NULL), IDP_OK);
	ck_assert(!ok);
	ck_assert_int_eq(srv_state_admin_check(s, secret, strlen(secret) - 1, &ok, NULL), IDP_OK);
	ck_assert(!ok);
	ck_assert_int_eq(srv_state_admin_check(s, "", 0, &ok, NULL), IDP_OK);
	ck_assert(!ok);

	/* CA: v3, CA:TRUE with pathlen 0; the server certificate chains to it
	 * for TLS server use and holds every name. */
	ck_assert_int_eq(X509_get_version(s->ca_cert), 2);
	ck_assert_int_eq(X509_check_ca(s->ca_cert), 1);
	ck_assert_int_eq(X509_get_pathlen(s->ca_cert), 0);
	ck_assert_int_eq(verify_chain(s), 1);
	ck_assert_int_eq(X509_check_host(s->server_cert, "localhost", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_host(s->server_cert, "idprov.example", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_ip_asc(s->server_cert, "127.0.0.1", 0), 1);
	ck_assert_int_eq(X509_check_ip_asc(s->server_cert, "::1", 0), 1);
	ck_assert_int_eq(X509_check_ip_asc(s->server_cert, "192.0.2.7", 0), 1);
	ck_assert_int_ne(X509_check_host(s->server_cert, "evil.example", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_ca(s->server_cert), 0);
	ck_assert_int_eq(X509_check_purpose(s->server_cert, X509_PURPOSE_SSL_SERVER, 0), 1);
	ck_assert_int_eq(X509_check_purpose(s->server_cert, X509_PURPOSE_SSL_CLIENT, 0), 0);
	int days = 0, secs = 0;
	ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(s->ca_cert),
	                                X509_get0_notAfter(s->ca_cert)),
	                 1);
	ck_assert_int_ge(days, SRV_STATE_CA_DAYS);
	ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(s->server_cert),
	                                X509_get0_notAfter(s->server_cert)),
	                 1);
	ck_assert_int_ge(days, SRV_STATE_SERVER_DAYS);
	ck_assert_int_le(days, SRV_STATE_SERVER_DAYS + 1);
	ck_assert_int_eq(fmt_key_type(s->token_key), FMT_KEY_P256);
	ck_assert_ptr_nonnull(strstr(s->ca_pem, "-----BEGIN CERTIFICATE-----"));
	ck_assert_uint_eq(strlen(s->ca_fingerprint), 64);
	srv_state_free(s);
}
END_TEST

START_TEST(test_state_second_start_reuses_and_reissues_for_new_names)
{
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	struct srv_state *a = open_ok(NULL, 0, secret);
	char first_secret[sizeof(secret)];
	memcpy(first_secret, secret, sizeof(secret));
	struct srv_state *b = open_ok(NULL, 0, secret);
	ck_assert(!b->created);
	ck_assert(!b->admin_created);
	ck_assert(!b->server_cert_issued);
	ck_assert_str_eq(secret, "");
	ck_assert_str_eq(a->ca_fingerprint, b->ca_fingerprint);
	ck_assert_int_eq(X509_cmp(a->server_cert, b->server_cert), 0);
	ck_assert(fmt_key_equal(a->token_key, b->token_key));
	bool ok = false;
	ck_assert_int_eq(srv_state_admin_check(b, first_secret, strlen(first_secret), &ok, NULL),
	                 IDP_OK);
	ck_assert(ok);

	/* A new configured name: same CA, new server certificate that has it. */
	static const char *const names[] = {"new.example"};
	struct srv_state *c = open_ok(names, 1, secret);
	ck_assert(c->server_cert_issued);
	ck_assert_str_eq(a->ca_fingerprint, c->ca_fingerprint);
	ck_assert_int_ne(X509_cmp(a->server_cert, c->server_cert), 0);
	ck_assert_int_eq(X509_check_host(c->server_cert, "new.example", 0, 0, NULL), 1);
	ck_assert_int_eq(verify_chain(c), 1);

	/* A lost server certificate is issued again by the same CA. */
	char path[256];
	snprintf(path, sizeof(path), "%s/server.pem", dir);
	ck_assert_int_eq(unlink(path), 0);
	struct srv_state *d = open_ok(names, 1, secret);
	ck_assert(d->server_cert_issued);
	ck_assert_str_eq(a->ca_fingerprint, d->ca_fingerprint);
	ck_assert_int_eq(verify_chain(d), 1);
	srv_state_free(a);
	srv_state_free(b);
	srv_state_free(c);
	srv_state_free(d);
}
END_TEST

START_TEST(test_state_refuses_unsafe_dir_bad_names_and_damage)
{
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	struct srv_state *s = NULL;
	struct idp_error err = {0};

	static const char *const bad[] = {"a,DNS:evil.example"};
	struct srv_state_opts o = {.dir = dir, .names = bad, .n_names = 1};
	ck_assert_int_eq(srv_state_open(&o, &s, secret, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "a,DNS:evil.example"));
	ck_assert_ptr_null(s);
	ck_assert_int_ne(access(dir, F_OK), 0); /* refused before anything was made */

	/* Ed25519 token key on request. */
	o.names = NULL;
	o.n_names = 0;
	o.token_key = FMT_KEY_ED25519;
	ck_assert_int_eq(srv_state_open(&o, &s, secret, &err), IDP_OK);
	ck_assert_int_eq(fmt_key_type(s->token_key), FMT_KEY_ED25519);

	/* A damaged hash file is an error, not a silent "no". */
	char path[256];
	snprintf(path, sizeof(path), "%s/admin.hash", dir);
	ck_assert_int_eq(fmt_file_write_atomic(path, (const uint8_t *)"scrypt 3 8 1 AA AA\n", 19,
	                                       0600, NULL),
	                 IDP_OK);
	bool ok = true;
	ck_assert_int_eq(srv_state_admin_check(s, secret, strlen(secret), &ok, &err), IDP_E_FORMAT);
	ck_assert(!ok);
	srv_state_free(s);

	/* A CA certificate that does not belong to the CA key. */
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	char other[256];
	snprintf(other, sizeof(other), "%s/server.pem", dir);
	ck_assert_int_eq(rename(other, path), 0);
	ck_assert_int_eq(srv_state_open(&o, &s, secret, &err), IDP_E_CONFLICT);
	ck_assert_ptr_nonnull(strstr(err.msg, "ca.pem"));

	/* A directory others may write to. */
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(srv_state_open(&o, &s, secret, &err), IDP_E_DENIED);
	ck_assert_ptr_nonnull(strstr(err.msg, dir));
	ck_assert_ptr_null(s);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("dir");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_state_first_start_creates_everything);
	tcase_add_test(tc, test_state_second_start_reuses_and_reissues_for_new_names);
	tcase_add_test(tc, test_state_refuses_unsafe_dir_bad_names_and_damage);
	suite_add_tcase(s, tc);
	return s;
}
