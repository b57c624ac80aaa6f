/*
 * test_keystore.c - formats/io/keystore.h and fmt_key_from_provider, with
 * OpenSSL's own file: store through the default provider (the TPM itself is
 * tests/integration/agent/tpm.sh). Checks: a P-256 and an Ed25519 key load,
 * sign through their own library context (checked with plain OpenSSL), stay
 * unexportable; a URI with only a public key, with two private keys, with an
 * RSA key, a missing file, an unknown provider, bad lists and a PIN in the
 * URI's query that no message may repeat.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "formats/io/keystore.h"
#include "tests/unit/check_main.h"
#include "tests/unit/helpers.h"

static char g_dir[64];

static void setup(void)
{
	(void)snprintf(g_dir, sizeof(g_dir), "/tmp/idp-keystore-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void)
{
	char cmd[128];
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Write the keys (private halves unless pub) to DIR/name; its file: URI in uri. */
static void write_keys(const char *name, EVP_PKEY *const *keys, size_t n, bool pub,
                       char uri[static 128])
{
	char path[96];
	(void)snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(pub ? PEM_write_PUBKEY(f, keys[i])
		                     : PEM_write_PrivateKey(f, keys[i], NULL, NULL, 0, NULL, NULL),
		                 1);
	ck_assert_int_eq(fclose(f), 0);
	(void)snprintf(uri, 128, "file:%s", path);
}

/* Load a key of type name through the store, sign, check with plain OpenSSL. */
static void sign_check(const char *alg)
{
	EVP_PKEY *k = strcmp(alg, "EC") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, alg, "P-256")
	                                      : EVP_PKEY_Q_keygen(NULL, NULL, alg);
	ck_assert_ptr_nonnull(k);
	char uri[128];
	write_keys("k.pem", &k, 1, false, uri);
	struct fio_keystore *ks = NULL;
	struct idp_error err = {0};
	ck_assert_msg(fio_keystore_open(uri, NULL, &ks, &err) == IDP_OK, "%s", err.msg);
	const struct fmt_key *key = fio_keystore_key(ks);
	ck_assert(fmt_key_in_provider(key));
	ck_assert(fmt_key_has_private(key));
	static const uint8_t msg[] = "proof of possession";
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t n = 0;
	ck_assert_msg(fmt_key_sign(key, FMT_SIG_RAW, msg, sizeof(msg), sig, &n, &err) == IDP_OK,
	              "%s", err.msg);
	ck_assert_uint_eq(n, FMT_KEY_RAW_SIG_LEN);
	ck_assert_int_eq(idp_test_ossl_verify_raw(k, msg, sizeof(msg), sig), 1);
	ck_assert_int_eq(fmt_key_verify(key, FMT_SIG_RAW, msg, sizeof(msg), sig, n, NULL), IDP_OK);
	/* The private half is never exported, whatever the provider could do. */
	char *pem = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_key_private_pem(key, &pem, &len, &err), IDP_E_ARG);
	ck_assert_ptr_null(pem);
	ck_assert_ptr_nonnull(strstr(err.msg, "never exported"));
	fio_keystore_free(ks);
	EVP_PKEY_free(k);
}

START_TEST(test_keystore_p256_signs_in_its_context)
{
	sign_check("EC");
}
END_TEST

START_TEST(test_keystore_ed25519_signs_in_its_context)
{
	sign_check("ED25519");
}
END_TEST

static enum idp_err open_fails(const char *uri, const char *providers, struct idp_error *err)
{
	struct fio_keystore *ks = (struct fio_keystore *)&ks; /* must be NULLed */
	enum idp_err rc = fio_keystore_open(uri, providers, &ks, err);
	ck_assert_int_ne(rc, IDP_OK);
	ck_assert_ptr_null(ks);
	return rc;
}

START_TEST(test_keystore_public_key_only_refused)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char uri[128];
	write_keys("pub.pem", &k, 1, true, uri);
	struct idp_error err = {0};
	enum idp_err rc = open_fails(uri, "default", &err);
	ck_assert_msg(rc == IDP_E_NOTFOUND, "%d %s", rc, err.msg);
	ck_assert_ptr_nonnull(strstr(err.msg, "no private key"));
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_keystore_two_private_keys_refused)
{
	EVP_PKEY *k[2] = {EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
	                  EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")};
	char uri[128];
	write_keys("two.pem", k, 2, false, uri);
	struct idp_error err = {0};
	ck_assert_int_eq(open_fails(uri, NULL, &err), IDP_E_CONFLICT);
	ck_assert_ptr_nonnull(strstr(err.msg, "more than one private key"));
	EVP_PKEY_free(k[0]);
	EVP_PKEY_free(k[1]);
}
END_TEST

START_TEST(test_keystore_rsa_refused)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	char uri[128];
	write_keys("rsa.pem", &k, 1, false, uri);
	struct idp_error err = {0};
	ck_assert_int_eq(open_fails(uri, NULL, &err), IDP_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(err.msg, "not supported"));
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_keystore_missing_file_and_pin_not_shown)
{
	char uri[160];
	(void)snprintf(uri, sizeof(uri), "file:%s/none.pem?pin-value=s3cr3t-pin", g_dir);
	struct idp_error err = {0};
	(void)open_fails(uri, NULL, &err);
	ck_assert_ptr_nonnull(strstr(err.msg, "key store"));
	ck_assert_ptr_null(strstr(err.msg, "s3cr3t"));
}
END_TEST

START_TEST(test_keystore_unknown_provider_named)
{
	struct idp_error err = {0};
	ck_assert_int_eq(open_fails("handle:0x81000001", "default, no-such-provider", &err),
	                 IDP_E_NOTFOUND);
	ck_assert_ptr_nonnull(strstr(err.msg, "key provider \"no-such-provider\": does not load"));
}
END_TEST

START_TEST(test_keystore_bad_arguments)
{
	struct idp_error err = {0};
	ck_assert_int_eq(open_fails("", NULL, &err), IDP_E_ARG);
	char *big = malloc(FIO_KEYSTORE_URI_MAX + 2);
	ck_assert_ptr_nonnull(big);
	memset(big, 'a', FIO_KEYSTORE_URI_MAX + 1);
	big[FIO_KEYSTORE_URI_MAX + 1] = '\0';
	ck_assert_int_eq(open_fails(big, NULL, &err), IDP_E_ARG);
	free(big);
	ck_assert_int_eq(open_fails("file:/x", "default,,base", &err), IDP_E_ARG);
	ck_assert_int_eq(open_fails("file:/x", "base,base,base,base,base,base,base,base,base", &err),
	                 IDP_E_ARG);
	ck_assert_ptr_nonnull(strstr(err.msg, "more than"));
}
END_TEST

START_TEST(test_key_from_provider_needs_a_key)
{
	struct fmt_key *k = (struct fmt_key *)&k;
	ck_assert_int_eq(fmt_key_from_provider(NULL, NULL, &k, NULL), IDP_E_ARG);
	ck_assert_ptr_null(k);
	/* A file key is not a provider-held one. */
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &k, NULL), IDP_OK);
	ck_assert(!fmt_key_in_provider(k));
	fmt_key_free(k);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("keystore");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_keystore_p256_signs_in_its_context);
	tcase_add_test(tc, test_keystore_ed25519_signs_in_its_context);
	tcase_add_test(tc, test_keystore_public_key_only_refused);
	tcase_add_test(tc, test_keystore_two_private_keys_refused);
	tcase_add_test(tc, test_keystore_rsa_refused);
	tcase_add_test(tc, test_keystore_missing_file_and_pin_not_shown);
	tcase_add_test(tc, test_keystore_unknown_provider_named);
	tcase_add_test(tc, test_keystore_bad_arguments);
	tcase_add_test(tc, test_key_from_provider_needs_a_key);
	suite_add_tcase(s, tc);
	return s;
}
