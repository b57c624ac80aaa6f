/*
 * test_x509.c - formats/x509: PEM certificate lists (one, many, too many,
 * empty, garbage, truncated, damaged, text between blocks, the strict
 * form), trust stores built from them, and the single-commonName rule.
 * Certificates are made here with OpenSSL alone, not with project code.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "formats/x509.h"
#include "tests/unit/check_main.h"
#include "tests/unit/helpers.h"

static EVP_PKEY *ca_key;
static X509 *ca;

/* A certificate with the commonNames cns[0..ncn) (none when ncn is 0), for
 * a fresh P-256 key, signed by issuer (self-signed when NULL). */
static X509 *make(const char *const *cns, size_t ncn, X509 *issuer, EVP_PKEY *issuer_key,
                  EVP_PKEY **key_out)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ck_assert_ptr_nonnull(key);
	const struct idp_test_cert_spec spec = {
	        .cns = cns, .ncn = ncn, .issuer = issuer, .issuer_key = issuer_key, .ca = issuer == NULL};
	X509 *c = idp_test_cert(key, &spec);
	if (key_out != NULL)
		*key_out = key;
	else
		EVP_PKEY_free(key);
	return c;
}

static X509 *leaf(const char *cn)
{
	return make(&cn, 1, ca, ca_key, NULL);
}

/* Appends the PEM of c to text (a heap string, grown). */
static char *append_pem(char *text, X509 *c)
{
	BIO *b = BIO_new(BIO_s_mem());
	ck_assert_int_eq(PEM_write_bio_X509(b, c), 1);
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	size_t old = text != NULL ? strlen(text) : 0;
	char *t = realloc(text, old + (size_t)n + 1);
	ck_assert_ptr_nonnull(t);
	memcpy(t + old, data, (size_t)n);
	t[old + (size_t)n] = '\0';
	BIO_free(b);
	return t;
}

static enum idp_err parse(const char *text, size_t len, unsigned flags, STACK_OF(X509) **certs,
                          struct idp_error *err)
{
	return fmt_x509_list_parse((const uint8_t *)text, len, FMT_X509_LIST_MAX, flags, certs,
	                           err);
}

static void setup(void)
{
	static const char *const cn[] = {"test CA"};
	ca = make(cn, 1, NULL, NULL, &ca_key);
}

static void teardown(void)
{
	X509_free(ca);
	EVP_PKEY_free(ca_key);
}

START_TEST(test_x509_list_many_round_trip)
{
	X509 *certs[FMT_X509_LIST_MAX + 1];
	char *text = NULL;
	for (size_t i = 0; i < FMT_X509_LIST_MAX + 1; i++) {
		char cn[16];
		snprintf(cn, sizeof(cn), "dev-%02zu", i);
		certs[i] = leaf(cn);
		text = append_pem(text, certs[i]);
	}
	/* The first FMT_X509_LIST_MAX: each comes back, in order, unchanged. */
	size_t upto = 0;
	for (size_t i = 0; i < FMT_X509_LIST_MAX; i++)
		upto = (size_t)(strstr(text + upto, "-----END CERTIFICATE-----\n") - text) + 26;
	for (unsigned flags = 0; flags <= FMT_X509_STRICT; flags++) {
		STACK_OF(X509) *got = NULL;
		ck_assert_int_eq(parse(text, upto, flags, &got, NULL), IDP_OK);
		ck_assert_int_eq(sk_X509_num(got), FMT_X509_LIST_MAX);
		for (int i = 0; i < sk_X509_num(got); i++)
			ck_assert_int_eq(X509_cmp(sk_X509_value(got, i), certs[i]), 0);
		sk_X509_pop_free(got, X509_free);
	}
	/* One more is refused, not cut. */
	struct idp_error err;
	STACK_OF(X509) *got = (STACK_OF(X509) *)1;
	ck_assert_int_eq(parse(text, strlen(text), 0, &got, &err), IDP_E_LIMIT);
	ck_assert_ptr_null(got);
	ck_assert_str_eq(err.msg, "more than 8 certificates");
	/* The first of them. */
	X509 *first = NULL;
	ck_assert_int_eq(fmt_x509_parse_first((const uint8_t *)text, upto, &first, NULL), IDP_OK);
	ck_assert_int_eq(X509_cmp(first, certs[0]), 0);
	X509_free(first);
	for (size_t i = 0; i < FMT_X509_LIST_MAX + 1; i++)
		X509_free(certs[i]);
	free(text);
}
END_TEST

START_TEST(test_x509_list_empty_and_garbage)
{
	static const char *const garbage[] = {
		"", "x", "-----BEGIN CERTIFICATE-----", "\n\n\n",
		"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		struct idp_error err;
		STACK_OF(X509) *got = NULL;
		enum idp_err rc = parse(garbage[i], strlen(garbage[i]), 0, &got, &err);
		ck_assert_msg(rc == IDP_E_FORMAT, "#%zu: %d", i, rc);
		ck_assert_ptr_null(got);
	}
	struct idp_error err;
	STACK_OF(X509) *got = NULL;
	ck_assert_int_eq(parse("", 0, 0, &got, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "no PEM certificate found");
	ck_assert_int_eq(parse("x", 1, 0, &got, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "no PEM certificate found");
	/* A BEGIN line and a body that is not base64 DER of a certificate. */
	const char *junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
	ck_assert_int_eq(parse(junk, strlen(junk), 0, &got, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "certificate 1 does not parse");
	ck_assert_int_eq(parse(junk, strlen(junk), FMT_X509_STRICT, &got, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "certificate 1 does not parse");
	/* Random bytes, NULs included. */
	uint8_t rnd[512];
	for (size_t i = 0; i < sizeof(rnd); i++)
		rnd[i] = (uint8_t)(i * 131 + 7);
	ck_assert_int_eq(fmt_x509_list_parse(rnd, sizeof(rnd), 8, 0, &got, NULL), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_x509_list_parse(rnd, sizeof(rnd), 8, FMT_X509_STRICT, &got, &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "not a PEM certificate list (offset 0)");
}
END_TEST

START_TEST(test_x509_list_truncated_or_damaged)
{
	X509 *a = leaf("a"), *b = leaf("b");
	char *text = append_pem(append_pem(NULL, a), b);
	size_t len = strlen(text);
	size_t second = (size_t)(strstr(text + 1, "-----BEGIN") - text);
	struct idp_error err;
	STACK_OF(X509) *got = NULL;
	/* Cut anywhere inside the second block: refused, never "one certificate". */
	for (size_t cut = second + 10; cut < len - 1; cut += 37) {
		enum idp_err rc = parse(text, cut, 0, &got, &err);
		ck_assert_msg(rc == IDP_E_FORMAT, "cut at %zu of %zu: %d", cut, len, rc);
		ck_assert_ptr_null(got);
		ck_assert_str_eq(err.msg, "certificate 2 does not parse");
		ck_assert_int_eq(parse(text, cut, FMT_X509_STRICT, &got, &err), IDP_E_FORMAT);
		ck_assert_ptr_null(got);
	}
	ck_assert_int_eq(parse(text, second + 100, FMT_X509_STRICT, &got, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "certificate 2 has no END line");
	/* The END line kept, one base64 character of the body changed. */
	char *bad = strdup(text);
	bad[second + 28 + 40] = bad[second + 28 + 40] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(parse(bad, len, 0, &got, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "certificate 2 does not parse");
	free(bad);
	/* A line removed from the middle of the body. */
	bad = strdup(text);
	char *nl = strchr(bad + second + 28 + 10, '\n');
	memmove(bad + second + 28, nl + 1, strlen(nl + 1) + 1);
	ck_assert_int_eq(parse(bad, strlen(bad), 0, &got, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "certificate 2 does not parse");
	free(bad);
	/* A leftover error of the caller's does not make good input fail. */
	ERR_raise(ERR_LIB_X509, X509_R_CERT_ALREADY_IN_HASH_TABLE);
	ck_assert_int_eq(parse(text, len, 0, &got, NULL), IDP_OK);
	ck_assert_int_eq(sk_X509_num(got), 2);
	sk_X509_pop_free(got, X509_free);
	ERR_clear_error();
	X509_free(a);
	X509_free(b);
	free(text);
}
END_TEST

/* A damaged second block whose body holds a line that starts like an END
 * line ("-END CERTIFICA..."): OpenSSL 3.0's PEM reader gives up on it
 * without putting any error on the queue, so the list was taken as one
 * good certificate with the block dropped; and whether it was refused
 * depended on an error the caller had left on the queue. Found by
 * tests/fuzz/fuzz_x509.c (corpus: damaged-end-line). Refused either way. */
START_TEST(test_x509_list_damaged_block_without_openssl_error)
{
	X509 *a = leaf("a");
	char *text = append_pem(NULL, a);
	static const char damaged[] = "-----BEGIN CERTIFICATE-----\n"
	                              "MIIBXTCCXn-END CERTIFICAwE----(-\n\n"
	                              "-----END CERTIFICATE-----\n";
	size_t old = strlen(text);
	text = realloc(text, old + sizeof(damaged));
	ck_assert_ptr_nonnull(text);
	memcpy(text + old, damaged, sizeof(damaged));
	struct idp_error err;
	STACK_OF(X509) *got = NULL;
	ERR_clear_error();
	ck_assert_int_eq(parse(text, strlen(text), 0, &got, &err), IDP_E_FORMAT);
	ck_assert_ptr_null(got);
	ck_assert_str_eq(err.msg, "certificate 2 does not parse");
	ERR_raise(ERR_LIB_X509, X509_R_CERT_ALREADY_IN_HASH_TABLE);
	ck_assert_int_eq(parse(text, strlen(text), 0, &got, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "certificate 2 does not parse");
	ERR_clear_error();
	X509_STORE *st = NULL;
	ck_assert_int_eq(fmt_x509_store_parse((const uint8_t *)text, strlen(text),
	                                      FMT_X509_LIST_MAX, &st, NULL),
	                 IDP_E_FORMAT);
	ck_assert_ptr_null(st);
	X509_free(a);
	free(text);
}
END_TEST

/* A block of another type whose body has a line starting like a marker
 * ("-----x") makes OpenSSL 3.0 stop reading without an error on the queue.
 * ERR_peek_last_error sees through the mark set before the loop, so the
 * list was accepted with an empty queue and refused ("certificate 2 does
 * not parse") when the caller had left an error on it. Found by
 * tests/fuzz/fuzz_x509.c (corpus: other-block-marker-line). The same answer
 * either way: the other block is text between certificates. */
START_TEST(test_x509_list_same_answer_with_caller_error)
{
	X509 *a = leaf("a");
	char *text = append_pem(NULL, a);
	static const char other[] = "-----BEGIN OTHER-----\n-----x\n-----END OTHER-----\n";
	size_t old = strlen(text);
	text = realloc(text, old + sizeof(other));
	ck_assert_ptr_nonnull(text);
	memcpy(text + old, other, sizeof(other));
	for (int round = 0; round < 2; round++) {
		ERR_clear_error();
		if (round == 1)
			ERR_raise(ERR_LIB_X509, X509_R_CERT_ALREADY_IN_HASH_TABLE);
		STACK_OF(X509) *got = NULL;
		ck_assert_int_eq(parse(text, strlen(text), 0, &got, NULL), IDP_OK);
		ck_assert_int_eq(sk_X509_num(got), 1);
		ck_assert_int_eq(X509_cmp(sk_X509_value(got, 0), a), 0);
		sk_X509_pop_free(got, X509_free);
		X509_STORE *st = NULL;
		ck_assert_int_eq(fmt_x509_store_parse((const uint8_t *)text, strlen(text),
		                                      FMT_X509_LIST_MAX, &st, NULL),
		                 IDP_OK);
		X509_STORE_free(st);
		/* The caller's error is still there, and nothing was added. */
		if (round == 1) {
			unsigned long e = ERR_get_error();
			ck_assert_int_eq(ERR_GET_REASON(e), X509_R_CERT_ALREADY_IN_HASH_TABLE);
			ck_assert_uint_eq(ERR_peek_error(), 0);
		}
	}
	X509_free(a);
	free(text);
}
END_TEST

START_TEST(test_x509_list_text_between_blocks)
{
	X509 *a = leaf("a"), *b = leaf("b");
	char *pa = append_pem(NULL, a), *pb = append_pem(NULL, b);
	char text[8192];
	int n = snprintf(text, sizeof(text), "Subject: a\n%s\nsome comment\n%s", pa, pb);
	ck_assert_int_gt(n, 0);
	STACK_OF(X509) *got = NULL;
	struct idp_error err;
	ck_assert_int_eq(parse(text, (size_t)n, 0, &got, NULL), IDP_OK);
	ck_assert_int_eq(sk_X509_num(got), 2);
	sk_X509_pop_free(got, X509_free);
	ck_assert_int_eq(parse(text, (size_t)n, FMT_X509_STRICT, &got, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "not a PEM certificate list (offset 0)");
	/* Strict: blocks back to back, or one LF between, are a list. */
	n = snprintf(text, sizeof(text), "%s%s", pa, pb);
	ck_assert_int_eq(parse(text, (size_t)n, FMT_X509_STRICT, &got, NULL), IDP_OK);
	ck_assert_int_eq(sk_X509_num(got), 2);
	sk_X509_pop_free(got, X509_free);
	n = snprintf(text, sizeof(text), "%s\n\n%s", pa, pb);
	ck_assert_int_eq(parse(text, (size_t)n, FMT_X509_STRICT, &got, &err), IDP_E_FORMAT);
	ck_assert_msg(strstr(err.msg, "not a PEM certificate list (offset") != NULL, "%s",
	              err.msg);
	X509_free(a);
	X509_free(b);
	free(pa);
	free(pb);
}
END_TEST

START_TEST(test_x509_store_trusts_the_list)
{
	static const char *const other_cn[] = {"other CA"};
	EVP_PKEY *other_key = NULL;
	X509 *other = make(other_cn, 1, NULL, NULL, &other_key);
	char *pem = append_pem(append_pem(NULL, other), ca);
	X509 *l = leaf("station-01");
	X509_STORE *store = NULL;
	ck_assert_int_eq(
	        fmt_x509_store_parse((const uint8_t *)pem, strlen(pem), 8, &store, NULL), IDP_OK);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	ck_assert_int_eq(X509_STORE_CTX_init(ctx, store, l, NULL), 1);
	ck_assert_int_eq(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	/* A store of the other CA alone does not trust the leaf. */
	char *opem = append_pem(NULL, other);
	ck_assert_int_eq(
	        fmt_x509_store_parse((const uint8_t *)opem, strlen(opem), 8, &store, NULL), IDP_OK);
	ctx = X509_STORE_CTX_new();
	ck_assert_int_eq(X509_STORE_CTX_init(ctx, store, l, NULL), 1);
	ck_assert_int_ne(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	/* A list cut inside its second certificate builds no store. */
	store = (X509_STORE *)1;
	size_t cut = (size_t)(strstr(pem + 1, "-----BEGIN") - pem) + 100;
	ck_assert_int_eq(fmt_x509_store_parse((const uint8_t *)pem, cut, 8, &store, NULL),
	                 IDP_E_FORMAT);
	ck_assert_ptr_null(store);
	free(pem);
	free(opem);
	X509_free(l);
	X509_free(other);
	EVP_PKEY_free(other_key);
}
END_TEST

START_TEST(test_x509_cn_single_and_bounded)
{
	char out[16];
	size_t n = 99;
	struct idp_error err;
	X509 *c = leaf("station-01");
	ck_assert_int_eq(fmt_x509_cn(c, out, sizeof(out), &n, NULL), IDP_OK);
	ck_assert_str_eq(out, "station-01");
	ck_assert_uint_eq(n, 10);
	/* Exactly size - 1 bytes fit; one more does not. */
	ck_assert_int_eq(fmt_x509_cn(c, out, 11, &n, NULL), IDP_OK);
	ck_assert_int_eq(fmt_x509_cn(c, out, 10, &n, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "no single commonName of 1..9 bytes");
	ck_assert_str_eq(out, "");
	ck_assert_uint_eq(n, 0);
	X509_free(c);
	/* Two commonNames, or none: no single name. */
	static const char *const two[] = {"station-01", "station-02"};
	c = make(two, 2, ca, ca_key, NULL);
	ck_assert_int_eq(fmt_x509_cn(c, out, sizeof(out), &n, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "no single commonName of 1..15 bytes");
	X509_free(c);
	c = make(NULL, 0, ca, ca_key, NULL);
	ck_assert_int_eq(fmt_x509_cn(c, out, sizeof(out), &n, NULL), IDP_E_FORMAT);
	X509_free(c);
	/* A NUL inside the name ("station-01\0.evil") is refused, not cut. */
	c = leaf("placeholder");
	X509_NAME *name = X509_get_subject_name(c);
	X509_NAME_ENTRY *e = X509_NAME_get_entry(name, 0);
	ck_assert_int_eq(ASN1_STRING_set(X509_NAME_ENTRY_get_data(e), "station-01\0.evil", 16), 1);
	ck_assert_int_eq(fmt_x509_cn(c, out, sizeof(out) + 0, &n, NULL), IDP_E_FORMAT);
	char big[64];
	ck_assert_int_eq(fmt_x509_cn(c, big, sizeof(big), &n, NULL), IDP_E_FORMAT);
	X509_free(c);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("x509");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_x509_list_many_round_trip);
	tcase_add_test(tc, test_x509_list_empty_and_garbage);
	tcase_add_test(tc, test_x509_list_truncated_or_damaged);
	tcase_add_test(tc, test_x509_list_damaged_block_without_openssl_error);
	tcase_add_test(tc, test_x509_list_same_answer_with_caller_error);
	tcase_add_test(tc, test_x509_list_text_between_blocks);
	tcase_add_test(tc, test_x509_store_trusts_the_list);
	tcase_add_test(tc, test_x509_cn_single_and_bounded);
	suite_add_tcase(s, tc);
	return s;
}
