/*
 * test_b64.c - strict base64 / base64url: RFC 4648 vectors, canonical-only
 * decoding, bounds.
 */
#include <string.h>

#include "formats/b64.h"
#include "tests/unit/check_main.h"

static const struct {
	const char *in, *std, *url;
} vec[] = {
	{"", "", ""},
	{"f", "Zg==", "Zg"},
	{"fo", "Zm8=", "Zm8"},
	{"foo", "Zm9v", "Zm9v"},
	{"foob", "Zm9vYg==", "Zm9vYg"},
	{"fooba", "Zm9vYmE=", "Zm9vYmE"},
	{"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

START_TEST(test_b64_rfc4648_vectors)
{
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		char out[32];
		size_t n = strlen(vec[i].in);
		ck_assert_uint_eq(fmt_b64_encode(FMT_B64_STD, (const uint8_t *)vec[i].in, n, out),
		                  strlen(vec[i].std));
		ck_assert_str_eq(out, vec[i].std);
		ck_assert_uint_eq(fmt_b64_encoded_len(FMT_B64_STD, n), strlen(vec[i].std));
		fmt_b64_encode(FMT_B64_URL, (const uint8_t *)vec[i].in, n, out);
		ck_assert_str_eq(out, vec[i].url);
		ck_assert_uint_eq(fmt_b64_encoded_len(FMT_B64_URL, n), strlen(vec[i].url));

		uint8_t dec[32];
		size_t dlen = 99;
		ck_assert_int_eq(fmt_b64_decode(FMT_B64_STD, vec[i].std, strlen(vec[i].std), dec,
		                                sizeof(dec), &dlen, NULL),
		                 IDP_OK);
		ck_assert_uint_eq(dlen, n);
		ck_assert_mem_eq(dec, vec[i].in, n);
		ck_assert_int_eq(fmt_b64_decode(FMT_B64_URL, vec[i].url, strlen(vec[i].url), dec,
		                                sizeof(dec), &dlen, NULL),
		                 IDP_OK);
		ck_assert_uint_eq(dlen, n);
		ck_assert_mem_eq(dec, vec[i].in, n);
	}
}
END_TEST

START_TEST(test_b64_round_trip_all_bytes)
{
	uint8_t in[256], dec[256];
	char enc[400];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(255 - i);
	for (size_t n = 0; n <= sizeof(in); n += 7) {
		for (int a = 0; a < 2; a++) {
			enum fmt_b64_alphabet al = a ? FMT_B64_URL : FMT_B64_STD;
			size_t e = fmt_b64_encode(al, in, n, enc);
			size_t dlen = 0;
			ck_assert_int_eq(fmt_b64_decode(al, enc, e, dec, sizeof(dec), &dlen, NULL), IDP_OK);
			ck_assert_uint_eq(dlen, n);
			ck_assert_mem_eq(dec, in, n);
		}
	}
}
END_TEST

START_TEST(test_b64_rejects_noncanonical)
{
	static const char *bad_std[] = {"Zg=", "Zg", "Zh==", "Zm9=", "Z g==", "Zg==\n", "Zm9v=",
	                                "=Zg=", "Zg=a", "Zm-v", "Zm_v", "Zm9vYg=="
	                                                              "="};
	static const char *bad_url[] = {"Zh", "Zm9", "Zg==", "Z", "Zm+v", "Zm/v", "Zm9v Yg"};
	uint8_t dec[32];
	size_t dlen;
	struct idp_error err;
	for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++) {
		int rc = fmt_b64_decode(FMT_B64_STD, bad_std[i], strlen(bad_std[i]), dec, sizeof(dec),
		                        &dlen, &err);
		ck_assert_msg(rc == IDP_E_FORMAT, "std accepted \"%s\"", bad_std[i]);
		ck_assert_ptr_nonnull(strstr(err.msg, "base64"));
	}
	for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
		int rc = fmt_b64_decode(FMT_B64_URL, bad_url[i], strlen(bad_url[i]), dec, sizeof(dec),
		                        &dlen, &err);
		ck_assert_msg(rc == IDP_E_FORMAT, "url accepted \"%s\"", bad_url[i]);
	}
}
END_TEST

START_TEST(test_b64_decode_respects_out_max)
{
	uint8_t dec[5];
	size_t dlen = 7;
	struct idp_error err;
	ck_assert_int_eq(fmt_b64_decode(FMT_B64_STD, "Zm9vYmFy", 8, dec, sizeof(dec), &dlen, &err),
	                 IDP_E_LIMIT);
	ck_assert_uint_eq(dlen, 0);
	ck_assert_int_eq(fmt_b64_decode(FMT_B64_STD, "Zm9vYg==", 8, dec, 4, &dlen, NULL), IDP_OK);
	ck_assert_uint_eq(dlen, 4);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("b64");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_b64_rfc4648_vectors);
	tcase_add_test(tc, test_b64_round_trip_all_bytes);
	tcase_add_test(tc, test_b64_rejects_noncanonical);
	tcase_add_test(tc, test_b64_decode_respects_out_max);
	suite_add_tcase(s, tc);
	return s;
}
