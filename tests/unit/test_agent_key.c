/*
 * test_agent_key.c - the agent's key behind a store URI (agt_config.key_uri)
 * through the library, with OpenSSL's file: store and the default provider
 * standing in for the hardware (the TPM itself: tests/integration/agent/
 * tpm.sh). Checks: no key.pem is written and key.pub is the store key's;
 * status says the key is in a store and, read-only, never opens the store;
 * the identity rules: another key at the URI, a key.pem beside the URI, and
 * a key.pub without key.pem or URI are refused with nothing written;
 * providers without a URI are a configuration error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "device-agent/agent.h"
#include "formats/keyfile.h"
#include "tests/unit/check_main.h"

static char g_dir[64];
static char g_state[96];

static void setup(void)
{
	(void)snprintf(g_dir, sizeof(g_dir), "/tmp/idp-agent-key-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
	(void)snprintf(g_state, sizeof(g_state), "%s/state", g_dir);
}

static void teardown(void)
{
	char cmd[128];
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void fp_of(const struct fmt_key *k, char fp[static 65])
{
	uint8_t d[FMT_KEY_FINGERPRINT_LEN];
	ck_assert_int_eq(fmt_key_fingerprint(k, d, NULL), IDP_OK);
	fmt_key_fingerprint_hex(d, fp);
}

/* A new P-256 key in DIR/name; its file: URI in uri, its fingerprint in fp. */
static void make_key(const char *name, char uri[static 128], char fp[static 65])
{
	char path[112];
	(void)snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ck_assert_ptr_nonnull(k);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	ck_assert_int_eq(fclose(f), 0);
	struct fmt_key *key = NULL;
	ck_assert_int_eq(fmt_key_from_evp(k, &key, NULL), IDP_OK);
	fp_of(key, fp);
	fmt_key_free(key);
	EVP_PKEY_free(k);
	(void)snprintf(uri, 128, "file:%s", path);
}

static struct agt_config config(const char *uri)
{
	const struct agt_config c = {.state_dir = g_state,
	                             .device_id = "dev-k1",
	                             .mac = "02:00:5e:00:d1:01",
	                             .key_uri = uri};
	return c;
}

static bool state_has(const char *name)
{
	char p[128];
	struct stat st;
	(void)snprintf(p, sizeof(p), "%s/%s", g_state, name);
	return stat(p, &st) == 0;
}

static void pub_fp(char fp[static 65])
{
	char p[128];
	(void)snprintf(p, sizeof(p), "%s/key.pub", g_state);
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_keyfile_load_public(p, &k, NULL), IDP_OK);
	fp_of(k, fp);
	fmt_key_free(k);
}

START_TEST(test_agent_key_from_store)
{
	char uri[128], fp[65], got[65];
	make_key("hw.pem", uri, fp);
	struct agt_config cfg = config(uri);
	struct agt_ctx *ctx = NULL;
	struct idp_error err = {0};
	ck_assert_msg(agt_open(&cfg, &ctx, &err) == IDP_OK, "%s", err.msg);
	struct agt_status st;
	agt_status(ctx, &st);
	ck_assert(st.key_in_store);
	ck_assert_str_eq(st.key_fingerprint, fp);
	agt_close(ctx);
	ck_assert(!state_has("key.pem"));
	ck_assert(!state_has("key.pem.new"));
	pub_fp(got);
	ck_assert_str_eq(got, fp);
	/* Read-only (status beside a running agent): from key.pub, the store
	 * untouched, so it works with the store gone. */
	char path[112];
	(void)snprintf(path, sizeof(path), "%s/hw.pem", g_dir);
	ck_assert_int_eq(unlink(path), 0);
	cfg.read_only = true;
	ck_assert_msg(agt_open(&cfg, &ctx, &err) == IDP_OK, "%s", err.msg);
	agt_status(ctx, &st);
	ck_assert(st.key_in_store);
	ck_assert_str_eq(st.key_fingerprint, fp);
	agt_close(ctx);
	/* Not read-only, the store must be there: a key is never made instead. */
	cfg.read_only = false;
	ck_assert_int_ne(agt_open(&cfg, &ctx, &err), IDP_OK);
	ck_assert_ptr_null(ctx);
	ck_assert(!state_has("key.pem"));
}
END_TEST

START_TEST(test_agent_key_identity_kept)
{
	char uri[128], fp[65], uri2[128], fp2[65], got[65];
	make_key("hw.pem", uri, fp);
	make_key("other.pem", uri2, fp2);
	struct agt_config cfg = config(uri);
	struct agt_ctx *ctx = NULL;
	struct idp_error err = {0};
	ck_assert_msg(agt_open(&cfg, &ctx, &err) == IDP_OK, "%s", err.msg);
	agt_close(ctx);
	/* Another key at the URI: refused, naming both. */
	cfg.key_uri = uri2;
	ck_assert_int_eq(agt_open(&cfg, &ctx, &err), IDP_E_CONFLICT);
	ck_assert_ptr_null(ctx);
	ck_assert_ptr_nonnull(strstr(err.msg, fp2));
	ck_assert_ptr_nonnull(strstr(err.msg, fp));
	/* No URI any more: key.pub says the key is elsewhere; none is made. */
	cfg.key_uri = NULL;
	ck_assert_int_eq(agt_open(&cfg, &ctx, &err), IDP_E_CONFLICT);
	ck_assert_ptr_nonnull(strstr(err.msg, "without key.pem"));
	ck_assert(!state_has("key.pem"));
	pub_fp(got);
	ck_assert_str_eq(got, fp);
}
END_TEST

START_TEST(test_agent_key_file_beside_uri_refused)
{
	char uri[128], fp[65];
	make_key("hw.pem", uri, fp);
	/* A device with a key file first, then configured with a URI. */
	struct agt_config cfg = config(NULL);
	struct agt_ctx *ctx = NULL;
	struct idp_error err = {0};
	ck_assert_msg(agt_open(&cfg, &ctx, &err) == IDP_OK, "%s", err.msg);
	agt_close(ctx);
	ck_assert(state_has("key.pem"));
	cfg.key_uri = uri;
	ck_assert_int_eq(agt_open(&cfg, &ctx, &err), IDP_E_CONFLICT);
	ck_assert_ptr_nonnull(strstr(err.msg, "one identity only"));
}
END_TEST

START_TEST(test_agent_key_config_checked)
{
	struct agt_config cfg = config(NULL);
	cfg.key_providers = "tpm2";
	struct agt_ctx *ctx = NULL;
	struct idp_error err = {0};
	ck_assert_int_eq(agt_open(&cfg, &ctx, &err), IDP_E_ARG);
	ck_assert_ptr_nonnull(strstr(err.msg, "without a key uri"));
	cfg = config("");
	ck_assert_int_eq(agt_open(&cfg, &ctx, &err), IDP_E_ARG);
	ck_assert(!state_has("key.pem"));
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("agent_key");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_agent_key_from_store);
	tcase_add_test(tc, test_agent_key_identity_kept);
	tcase_add_test(tc, test_agent_key_file_beside_uri_refused);
	tcase_add_test(tc, test_agent_key_config_checked);
	suite_add_tcase(s, tc);
	return s;
}
