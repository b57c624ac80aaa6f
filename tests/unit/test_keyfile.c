/*
 * test_keyfile.c - formats/keyfile.h: a key pair saved with modes 0600 (private)
 * and 0644 (public) whatever the umask, loaded back equal, the public half
 * readable from either file, and errors that name the path.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/keyfile.h"
#include "formats/keys.h"
#include "tests/unit/check_main.h"

static const enum fmt_key_type types[] = {FMT_KEY_P256, FMT_KEY_ED25519};

START_TEST(test_keyfile_save_load_modes)
{
	char dir[] = "/tmp/idp-keys-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char priv[128], pub[128];
	snprintf(priv, sizeof(priv), "%s/station.key", dir);
	snprintf(pub, sizeof(pub), "%s/station.pub", dir);
	umask(022);
	struct fmt_key *k = NULL, *lp = NULL, *lq = NULL, *lr = NULL;
	ck_assert_int_eq(fmt_key_generate(types[_i], &k, NULL), IDP_OK);
	ck_assert_int_eq(fmt_keyfile_save(k, priv, pub, NULL), IDP_OK);
	struct stat st;
	ck_assert_int_eq(stat(priv, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(stat(pub, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0644);
	ck_assert_int_eq(fmt_keyfile_load_private(priv, &lp, NULL), IDP_OK);
	ck_assert_int_eq(fmt_keyfile_load_public(pub, &lq, NULL), IDP_OK);
	ck_assert_int_eq(fmt_keyfile_load_public(priv, &lr, NULL), IDP_OK);
	ck_assert(fmt_key_equal(k, lp) && fmt_key_equal(k, lq) && fmt_key_equal(k, lr));
	ck_assert(fmt_key_has_private(lp) && !fmt_key_has_private(lr));

	/* Errors name the path. */
	struct idp_error err;
	struct fmt_key *none = NULL;
	ck_assert_int_eq(fmt_keyfile_load_private(pub, &none, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, pub));
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/missing.key", dir);
	ck_assert_int_eq(fmt_keyfile_load_private(missing, &none, &err), IDP_E_NOTFOUND);
	ck_assert_ptr_nonnull(strstr(err.msg, missing));

	fmt_key_free(k);
	fmt_key_free(lp);
	fmt_key_free(lq);
	fmt_key_free(lr);
	unlink(priv);
	unlink(pub);
	rmdir(dir);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("keyfile");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, test_keyfile_save_load_modes, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}
