/*
 * test_state.c - state.h: first start creates the directory with tight modes,
 * a CA and a server certificate that verifies against it for the host's
 * names, the token key and a hashed admin credential (admin.token 0600); a
 * second start reuses all of it; a new name re-issues only the server
 * certificate; unsafe directories, loose file modes, symlinked key files, bad
 * names, damaged and scrypt hash files are refused, a symlinked state dir is
 * allowed; --reset-admin takes effect on reload; a token key rotation keeps
 * the old key verifying (also across a restart and a lost token.key).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

	/* The hash file holds a SHA-256 of the credential, never the credential;
	 * admin.token (0600) holds the credential for the administrator. */
	char path[256];
	snprintf(path, sizeof(path), "%s/admin.hash", dir);
	uint8_t *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_file_read(path, 1000, &buf, &len, NULL), IDP_OK);
	ck_assert_ptr_null(strstr((char *)buf, secret));
	ck_assert_int_eq(strncmp((char *)buf, "sha256 ", 7), 0);
	free(buf);
	ck_assert_uint_eq(mode_of("admin.token"), 0600);
	snprintf(path, sizeof(path), "%s/admin.token", dir);
	ck_assert_int_eq(fmt_file_read(path, 1000, &buf, &len, NULL), IDP_OK);
	ck_assert_uint_eq(len, SRV_STATE_ADMIN_SECRET_LEN + 1);
	ck_assert_int_eq(memcmp(buf, secret, SRV_STATE_ADMIN_SECRET_LEN), 0);
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
	/* Longer: the secret with one more byte, and a 300-byte bearer. */
	char longer[400];
	snprintf(longer, sizeof(longer), "%sA", secret);
	ck_assert_int_eq(srv_state_admin_check(s, longer, strlen(longer), &ok, NULL), IDP_OK);
	ck_assert(!ok);
	memset(longer, 'A', 300);
	memcpy(longer, secret, SRV_STATE_ADMIN_SECRET_LEN);
	ck_assert_int_eq(srv_state_admin_check(s, longer, 300, &ok, NULL), IDP_OK);
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

	/* The hash is read once, at open: a damaged file under a running
	 * server changes nothing until a reload, which refuses it and keeps
	 * the credential in use. */
	char path[256];
	snprintf(path, sizeof(path), "%s/admin.hash", dir);
	uint8_t *saved = NULL;
	size_t saved_len = 0;
	ck_assert_int_eq(fmt_file_read(path, 1000, &saved, &saved_len, NULL), IDP_OK);
	ck_assert_int_eq(fmt_file_write_atomic(path, (const uint8_t *)"sha256 AA\n", 10, 0600, NULL),
	                 IDP_OK);
	bool ok = false;
	ck_assert_int_eq(srv_state_admin_check(s, secret, strlen(secret), &ok, &err), IDP_OK);
	ck_assert(ok);
	ck_assert_int_eq(srv_state_admin_reload(s, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "admin.hash"));
	ck_assert_int_eq(srv_state_admin_check(s, secret, strlen(secret), &ok, &err), IDP_OK);
	ck_assert(ok);
	srv_state_free(s);
	s = NULL;
	ck_assert_int_eq(srv_state_open(&o, &s, secret, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "admin.hash"));
	ck_assert_ptr_null(s);
	/* An scrypt hash of an older idprovd is refused with the way out. */
	static const char old_line[] = "scrypt 16384 8 1 AAAAAAAAAAAAAAAAAAAAAA "
	                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
	ck_assert_int_eq(fmt_file_write_atomic(path, (const uint8_t *)old_line,
	                                       sizeof(old_line) - 1, 0600, NULL),
	                 IDP_OK);
	ck_assert_int_eq(srv_state_open(&o, &s, secret, &err), IDP_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(err.msg, "idprovd --reset-admin"));
	ck_assert_int_eq(fmt_file_write_atomic(path, saved, saved_len, 0600, NULL), IDP_OK);
	free(saved);
	ck_assert_int_eq(srv_state_open(&o, &s, secret, &err), IDP_OK);
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

/* The first line of dir/admin.token into out (43 characters). */
static void read_token_file(char out[static SRV_STATE_ADMIN_SECRET_LEN + 1])
{
	char path[256];
	snprintf(path, sizeof(path), "%s/admin.token", dir);
	uint8_t *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_file_read(path, 1000, &buf, &len, NULL), IDP_OK);
	ck_assert_uint_eq(len, SRV_STATE_ADMIN_SECRET_LEN + 1);
	ck_assert_int_eq(buf[SRV_STATE_ADMIN_SECRET_LEN], '\n');
	memcpy(out, buf, SRV_STATE_ADMIN_SECRET_LEN);
	out[SRV_STATE_ADMIN_SECRET_LEN] = '\0';
	free(buf);
}

static bool admin_ok(const struct srv_state *s, const char *secret)
{
	bool ok = true;
	ck_assert_int_eq(srv_state_admin_check(s, secret, strlen(secret), &ok, NULL), IDP_OK);
	return ok;
}

START_TEST(test_state_admin_reset_rotates_on_reload)
{
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1], first[SRV_STATE_ADMIN_SECRET_LEN + 1],
	        second[SRV_STATE_ADMIN_SECRET_LEN + 1];
	struct srv_state *s = open_ok(NULL, 0, secret);
	read_token_file(first);
	ck_assert_str_eq(first, secret);
	ck_assert(admin_ok(s, first));

	char path[SRV_STATE_PATH_MAX + 32];
	struct idp_error err = {0};
	ck_assert_msg(srv_state_admin_reset(dir, path, &err) == IDP_OK, "%s", err.msg);
	ck_assert_ptr_nonnull(strstr(path, "/admin.token"));
	ck_assert_uint_eq(mode_of("admin.token"), 0600);
	ck_assert_uint_eq(mode_of("admin.hash"), 0600);
	read_token_file(second);
	ck_assert_str_ne(first, second);
	/* The running server keeps the old one until it reloads. */
	ck_assert(admin_ok(s, first));
	ck_assert(!admin_ok(s, second));
	ck_assert_int_eq(srv_state_admin_reload(s, &err), IDP_OK);
	ck_assert(!admin_ok(s, first));
	ck_assert(admin_ok(s, second));
	srv_state_free(s);
	/* A fresh start takes the new one and makes no other. */
	s = open_ok(NULL, 0, secret);
	ck_assert(!s->admin_created);
	ck_assert(admin_ok(s, second));
	ck_assert(!admin_ok(s, first));
	srv_state_free(s);

	/* Root resetting the credential of a server that runs as another user
	 * (DynamicUser=) gives the files to that user, so the server can read
	 * them. */
	if (geteuid() == 0) {
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "chown -R 12345:12345 '%s'", dir);
		ck_assert_int_eq(system(cmd), 0);
		ck_assert_msg(srv_state_admin_reset(dir, path, &err) == IDP_OK, "%s", err.msg);
		struct stat st;
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_uint_eq(st.st_uid, 12345);
		ck_assert_uint_eq(st.st_mode & 0777, 0600);
		char hp[300];
		snprintf(hp, sizeof(hp), "%s/admin.hash", dir);
		ck_assert_int_eq(stat(hp, &st), 0);
		ck_assert_uint_eq(st.st_uid, 12345);
		snprintf(cmd, sizeof(cmd), "chown -R 0:0 '%s'", dir);
		ck_assert_int_eq(system(cmd), 0);
	}

	/* A reset refuses an unsafe directory like a start does. */
	ck_assert_int_eq(chmod(dir, 0755), 0);
	ck_assert_int_eq(srv_state_admin_reset(dir, path, &err), IDP_E_DENIED);
	ck_assert_ptr_nonnull(strstr(err.msg, "mode 755"));
	ck_assert_int_eq(chmod(dir, 0700), 0);
}
END_TEST

/* Open must fail with IDP_E_DENIED and a message holding want. */
static void open_denied(const char *want)
{
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	struct srv_state_opts o = {.dir = dir};
	struct srv_state *s = NULL;
	struct idp_error err = {0};
	enum idp_err rc = srv_state_open(&o, &s, secret, &err);
	ck_assert_msg(rc == IDP_E_DENIED && strstr(err.msg, want) != NULL, "rc %d: %s (want %s)",
	              rc, err.msg, want);
	ck_assert_ptr_null(s);
}

START_TEST(test_state_refuses_loose_modes_allows_symlinked_dir)
{
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	srv_state_free(open_ok(NULL, 0, secret));
	static const struct {
		const char *name;
		unsigned mode;
		const char *fix;
		unsigned restore;
	} cases[] = {
	        {"ca.key", 0644, "chmod 600", 0600},     {"token.key", 0640, "chmod 600", 0600},
	        {"server.key", 0604, "chmod 600", 0600}, {"admin.hash", 0644, "chmod 600", 0600},
	        {"ca.pem", 0664, "chmod 644", 0644},     {"server.pem", 0646, "chmod 644", 0644},
	};
	char path[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, cases[i].name);
		ck_assert_int_eq(chmod(path, cases[i].mode), 0);
		char want[300];
		snprintf(want, sizeof(want), "%s: mode %03o", cases[i].name, cases[i].mode);
		open_denied(want);
		open_denied(cases[i].fix);
		ck_assert_int_eq(chmod(path, cases[i].restore), 0);
	}
	/* The directory: nobody else may even enter it. */
	ck_assert_int_eq(chmod(dir, 0755), 0);
	open_denied("mode 755");
	ck_assert_int_eq(chmod(dir, 0700), 0);
	/* A key file that is a symlink is refused (opened with O_NOFOLLOW). */
	snprintf(path, sizeof(path), "%s/ca.key", dir);
	char moved[256];
	snprintf(moved, sizeof(moved), "%s/ca.key.real", top);
	ck_assert_int_eq(rename(path, moved), 0);
	ck_assert_int_eq(symlink(moved, path), 0);
	struct srv_state_opts o = {.dir = dir};
	struct srv_state *s = NULL;
	struct idp_error err = {0};
	ck_assert_int_eq(srv_state_open(&o, &s, secret, &err), IDP_E_IO);
	ck_assert_ptr_nonnull(strstr(err.msg, "symlink"));
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rename(moved, path), 0);
	/* Another owner (only testable as root). */
	if (geteuid() == 0) {
		snprintf(path, sizeof(path), "%s/token.key", dir);
		ck_assert_int_eq(chown(path, 12345, 12345), 0);
		open_denied("owned by uid 12345");
		ck_assert_int_eq(chown(path, 0, 0), 0);
	}
	/* The state dir as a symlink to a directory of ours (DynamicUser=yes). */
	char link[256];
	snprintf(link, sizeof(link), "%s/link", top);
	ck_assert_int_eq(symlink(dir, link), 0);
	o.dir = link;
	ck_assert_msg(srv_state_open(&o, &s, secret, &err) == IDP_OK, "%s", err.msg);
	ck_assert(!s->created);
	srv_state_free(s);
	/* ... but not to a file. */
	char file[256];
	snprintf(file, sizeof(file), "%s/afile", top);
	ck_assert_int_eq(fmt_file_write_atomic(file, (const uint8_t *)"x", 1, 0600, NULL), IDP_OK);
	ck_assert_int_eq(unlink(link), 0);
	ck_assert_int_eq(symlink(file, link), 0);
	ck_assert_int_eq(srv_state_open(&o, &s, secret, &err), IDP_E_IO);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a directory"));
}
END_TEST

/* A token of kind device for dev-1 signed with the state's current key. */
static char *sign_now(const struct srv_state *s, const struct fmt_key *holder, int64_t now,
                      char kid_out[static SRV_STATE_KID_MAX])
{
	const struct fmt_key *key = NULL;
	srv_state_token_signer(s, &key, kid_out);
	struct fmt_token_claims c;
	memset(&c, 0, sizeof(c));
	snprintf(c.iss, sizeof(c.iss), "https://idprovd.test");
	snprintf(c.aud, sizeof(c.aud), "idprov");
	snprintf(c.sub, sizeof(c.sub), "dev-1");
	c.kind = FMT_TOKEN_DEVICE;
	ck_assert_int_eq(fmt_token_jkt(holder, c.jkt, NULL), IDP_OK);
	char *tok = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_token_sign(key, kid_out, &c, now, 3600, NULL, &tok, &len, NULL), IDP_OK);
	return tok;
}

static enum idp_err verify_at(const struct srv_state *s, const char *tok, int64_t now)
{
	struct fmt_token_key keys[SRV_STATE_TOKEN_KEYS_MAX];
	size_t n = srv_state_token_keys(s, now, keys);
	const struct fmt_token_policy pol = {
	        .iss = "https://idprovd.test", .aud = "idprov", .kinds = FMT_TOKEN_DEVICE, .now = now};
	return fmt_token_verify((const uint8_t *)tok, strlen(tok), keys, n, &pol, NULL, NULL, NULL);
}

START_TEST(test_state_token_rotation_keeps_old_tokens_verifying)
{
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	struct srv_state_opts o = {.dir = dir, .token_keep = 7200};
	struct srv_state *s = NULL;
	ck_assert_int_eq(srv_state_open(&o, &s, secret, NULL), IDP_OK);
	ck_assert(s->token_key_created);
	struct fmt_key *holder = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_ED25519, &holder, NULL), IDP_OK);
	int64_t now = (int64_t)time(NULL);
	char kid0[SRV_STATE_KID_MAX], kid1[SRV_STATE_KID_MAX], kid[SRV_STATE_KID_MAX];
	char *old = sign_now(s, holder, now, kid0);
	ck_assert_str_eq(kid0, s->token_kid);
	ck_assert_int_eq(strncmp(kid0, "t-", 2), 0);
	ck_assert_uint_eq(strlen(kid0), 18);

	struct idp_error err = {0};
	ck_assert_msg(srv_state_token_rotate(s, now, kid1, &err) == IDP_OK, "%s", err.msg);
	ck_assert_str_ne(kid0, kid1);
	char *fresh = sign_now(s, holder, now, kid);
	ck_assert_str_eq(kid, kid1);
	struct fmt_token_key keys[SRV_STATE_TOKEN_KEYS_MAX];
	ck_assert_uint_eq(srv_state_token_keys(s, now, keys), 2);
	ck_assert_str_eq(keys[0].kid, kid1);
	ck_assert_str_eq(keys[1].kid, kid0);
	ck_assert_int_eq(verify_at(s, old, now), IDP_OK);
	ck_assert_int_eq(verify_at(s, fresh, now), IDP_OK);
	/* After the keep time only the new key is left in the set. */
	ck_assert_uint_eq(srv_state_token_keys(s, now + 7201, keys), 1);
	ck_assert_uint_eq(mode_of("token.retired"), 0644);
	srv_state_free(s);

	/* A restart reads the retired list: the old token still verifies. */
	ck_assert_int_eq(srv_state_open(&o, &s, secret, NULL), IDP_OK);
	ck_assert(!s->token_key_created);
	ck_assert_str_eq(s->token_kid, kid1);
	ck_assert_uint_eq(srv_state_token_keys(s, now, keys), 2);
	ck_assert_int_eq(verify_at(s, old, now), IDP_OK);
	srv_state_free(s);

	/* token.key deleted: a new key, and the one of the leftover token.pub
	 * is retired, not forgotten (its tokens keep verifying). */
	char path[256];
	snprintf(path, sizeof(path), "%s/token.key", dir);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(srv_state_open(&o, &s, secret, NULL), IDP_OK);
	ck_assert(s->token_key_created);
	ck_assert_str_eq(s->token_replaced, kid1);
	ck_assert_str_ne(s->token_kid, kid1);
	ck_assert_uint_eq(srv_state_token_keys(s, now, keys), 3);
	ck_assert_int_eq(verify_at(s, old, now), IDP_OK);
	ck_assert_int_eq(verify_at(s, fresh, now), IDP_OK);
	srv_state_free(s);

	/* A damaged retired list is refused, naming the file and line. */
	snprintf(path, sizeof(path), "%s/token.retired", dir);
	uint8_t *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_file_read(path, 10000, &buf, &len, NULL), IDP_OK);
	ck_assert_ptr_nonnull(memchr(buf, '\n', len));
	size_t first = (size_t)((uint8_t *)memchr(buf, '\n', len) - buf);
	buf[first - 3] ^= 0x01; /* a byte of the first line's key */
	ck_assert_int_eq(fmt_file_write_atomic(path, buf, len, 0644, NULL), IDP_OK);
	free(buf);
	ck_assert_int_eq(srv_state_open(&o, &s, secret, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "token.retired:1"));
	fmt_token_free(old);
	fmt_token_free(fresh);
	fmt_key_free(holder);
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
	tcase_add_test(tc, test_state_admin_reset_rotates_on_reload);
	tcase_add_test(tc, test_state_refuses_loose_modes_allows_symlinked_dir);
	tcase_add_test(tc, test_state_token_rotation_keeps_old_tokens_verifying);
	suite_add_tcase(s, tc);
	return s;
}
