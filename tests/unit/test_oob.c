/*
 * test_oob.c - formats/oob.h: the known-answer vector of formats/api.md §15
 * (reproduced with Python's hashlib.pbkdf2_hmac and hmac), and that the
 * proof changes with every bound input (secret, exporter, device ID, key),
 * refuses an all-zero exporter, and bad secrets are refused by name, never
 * quoting the secret.
 */
#include <stdio.h>
#include <string.h>

#include "formats/b64.h"
#include "formats/oob.h"
#include "tests/unit/check_main.h"

#define SPKI_B64 "MCowBQYDK2VwAyEAA6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static size_t spki(uint8_t out[64])
{
	size_t n = 0;
	ck_assert_int_eq(fmt_b64_decode(FMT_B64_STD, SPKI_B64, strlen(SPKI_B64), out, 64, &n, NULL),
	                 IDP_OK);
	return n;
}

START_TEST(test_oob_known_answer)
{
	uint8_t v[FMT_OOB_LEN], p[FMT_OOB_LEN], exporter[FMT_OOB_EXPORTER_LEN], k[64];
	char h[2 * FMT_OOB_LEN + 1];
	memset(exporter, 0x11, sizeof(exporter));
	ck_assert_int_eq(fmt_oob_verifier("dev-0001", "LBL-7Q2X", 8, v, NULL), IDP_OK);
	hex(v, sizeof(v), h);
	ck_assert_str_eq(h, "67c585e68f1537fe84199c1d3d45e2e79ae7c9bd3f3eddafc0211e8abc7a0c73");
	size_t kl = spki(k);
	ck_assert_int_eq(fmt_oob_proof(v, exporter, "dev-0001", k, kl, p, NULL), IDP_OK);
	hex(p, sizeof(p), h);
	ck_assert_str_eq(h, "9255dfef20408f11f564e61cee0799b71490e76ea141ae6a9c4e83910a42c266");
}
END_TEST

START_TEST(test_oob_proof_binds_every_input)
{
	uint8_t v[FMT_OOB_LEN], v2[FMT_OOB_LEN], base[FMT_OOB_LEN], p[FMT_OOB_LEN];
	uint8_t ex[FMT_OOB_EXPORTER_LEN], k[64];
	memset(ex, 0x11, sizeof(ex));
	size_t kl = spki(k);
	ck_assert_int_eq(fmt_oob_verifier("dev-0001", "LBL-7Q2X", 8, v, NULL), IDP_OK);
	ck_assert_int_eq(fmt_oob_proof(v, ex, "dev-0001", k, kl, base, NULL), IDP_OK);
	/* Another secret, the same secret for another ID: other verifiers. */
	ck_assert_int_eq(fmt_oob_verifier("dev-0001", "LBL-7Q2Y", 8, v2, NULL), IDP_OK);
	ck_assert(memcmp(v, v2, sizeof(v)) != 0);
	ck_assert_int_eq(fmt_oob_verifier("dev-0002", "LBL-7Q2X", 8, v2, NULL), IDP_OK);
	ck_assert(memcmp(v, v2, sizeof(v)) != 0);
	ex[31] ^= 1; /* another connection */
	ck_assert_int_eq(fmt_oob_proof(v, ex, "dev-0001", k, kl, p, NULL), IDP_OK);
	ck_assert(memcmp(p, base, sizeof(p)) != 0);
	ex[31] ^= 1;
	ck_assert_int_eq(fmt_oob_proof(v, ex, "dev-0002", k, kl, p, NULL), IDP_OK);
	ck_assert(memcmp(p, base, sizeof(p)) != 0);
	k[kl - 1] ^= 1; /* another key */
	ck_assert_int_eq(fmt_oob_proof(v, ex, "dev-0001", k, kl, p, NULL), IDP_OK);
	ck_assert(memcmp(p, base, sizeof(p)) != 0);
	uint8_t zero[FMT_OOB_EXPORTER_LEN] = {0};
	struct idp_error err = {0};
	ck_assert_int_eq(fmt_oob_proof(v, zero, "dev-0001", k, kl, p, &err), IDP_E_ARG);
	ck_assert_ptr_nonnull(strstr(err.msg, "all zero"));
}
END_TEST

START_TEST(test_oob_bad_secrets_refused)
{
	uint8_t v[FMT_OOB_LEN];
	struct idp_error err = {0};
	ck_assert_int_eq(fmt_oob_verifier("dev-0001", "", 0, v, &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_oob_verifier("dev-0001", "LBL 7Q2X", 8, v, &err), IDP_E_FORMAT);
	ck_assert_ptr_null(strstr(err.msg, "LBL"));
	ck_assert_ptr_nonnull(strstr(err.msg, "byte 3"));
	char longs[FMT_OOB_SECRET_MAX + 2];
	memset(longs, 'a', sizeof(longs));
	ck_assert_int_eq(fmt_oob_verifier("dev-0001", longs, sizeof(longs), v, &err), IDP_E_LIMIT);
	ck_assert_int_eq(fmt_oob_verifier("", "LBL-7Q2X", 8, v, &err), IDP_E_FORMAT);
	uint8_t zero[FMT_OOB_LEN] = {0};
	ck_assert_mem_eq(v, zero, sizeof(v)); /* nothing left behind */
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("oob");
	TCase *tc = tcase_create("oob");
	tcase_add_test(tc, test_oob_known_answer);
	tcase_add_test(tc, test_oob_proof_binds_every_input);
	tcase_add_test(tc, test_oob_bad_secrets_refused);
	suite_add_tcase(s, tc);
	return s;
}
