/*
 * test_api.c - provisioning API messages (formats/api.h): round trips of
 * every message, deterministic output, each refusal named, and the TLS-bound proof of possession against relayed,
 * replayed, altered, stale and forged proofs, for P-256 and Ed25519.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "formats/api.h"
#include "formats/pop.h"
#include "formats/b64.h"
#include "formats/io/tls.h"
#include "formats/json.h"
#include "formats/mac.h"
#include "tests/unit/check_main.h"
#include "tests/unit/helpers.h"

static const uint8_t exporter_a[FMT_API_EXPORTER_LEN] = {
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
};
static const uint8_t exporter_b[FMT_API_EXPORTER_LEN] = {
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x12,
};
static const uint8_t nonce_1[FMT_API_NONCE_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
static const uint8_t nonce_2[FMT_API_NONCE_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11};
static const uint8_t mac_1[FMT_MAC_LEN] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x01};

#define NOW   1800000000LL
#define SKEW  60
/* formats/api.md, "Worked example". */
#define VECTOR_MSG \
	"696470726f762d706f7000010311111111111111111111111111111111111111" \
	"11111111111111111111111111000000006553f1002022222222222222222222" \
	"22222222222222222222222222222222222222222222086465762d3030303102" \
	"005e10000102a050837d85070582ccf7394b0988847cc312cb88259b894899f6" \
	"f239cf1791a5000020ce887a8eece06ba329c188b9cf872bd8a70a0c354275fe" \
	"3c435450024784c9de"
#define VECTOR_SIG \
	"f83c2a8832a06c5829ddea4c0f52ad339c0a52bbc3e24c3c0f0fc5a5037b8799" \
	"0e908fa03ebc25486762a156fbde4f48f523d184229638a6b1c1fa8dcff83402"
#define TOKEN "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZXYtMDAwMSJ9.c2lnbmF0dXJl"

static struct fmt_key *new_key(enum fmt_key_type t)
{
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_generate(t, &k, NULL), IDP_OK);
	return k;
}

/* A signed request for purpose made by key on the channel with exporter. */
static void make_request(struct fmt_api_request *r, enum fmt_api_purpose purpose,
                         const struct fmt_key *key, const uint8_t *exporter, const uint8_t *nonce)
{
	memset(r, 0, sizeof(*r));
	r->purpose = purpose;
	snprintf(r->device_id, sizeof(r->device_id), "%s", "dev-0001");
	memcpy(r->mac, mac_1, FMT_MAC_LEN);
	if (purpose == FMT_API_PROVISION) {
		snprintf(r->agent_version, sizeof(r->agent_version), "%s", "1.2.3");
		memset(r->oob_proof, 0x5a, sizeof(r->oob_proof));
		r->has_oob_proof = true;
	} else {
		snprintf(r->token, sizeof(r->token), "%s", TOKEN);
	}
	struct idp_error err;
	ck_assert_msg(fmt_api_pop_sign(r, key, exporter, NOW - 5, nonce, &err) == IDP_OK, "%s",
	              err.msg);
}

static size_t encode_request(const struct fmt_api_request *r, char *out, size_t max)
{
	size_t len = 0;
	struct idp_error err;
	ck_assert_msg(fmt_api_request_encode(r, out, max, &len, &err) == IDP_OK, "%s", err.msg);
	ck_assert_uint_eq(len, strlen(out));
	return len;
}

/* A self-signed P-256 certificate and its key. Caller frees both. */
static X509 *make_cert(struct fmt_key **key)
{
	*key = new_key(FMT_KEY_P256);
	return idp_test_cert_cn(fmt_key_evp(*key), "idprov test CA", NULL, NULL, true);
}

/* A self-signed certificate as PEM, for ca_pem. Caller frees. */
static char *make_cert_pem(void)
{
	struct fmt_key *k = NULL;
	X509 *x = make_cert(&k);
	BIO *bio = BIO_new(BIO_s_mem());
	ck_assert_int_eq(PEM_write_bio_X509(bio, x), 1);
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	ck_assert_int_gt(n, 0);
	char *pem = strndup(data, (size_t)n);
	ck_assert_ptr_nonnull(pem);
	BIO_free(bio);
	X509_free(x);
	fmt_key_free(k);
	return pem;
}

/* body with the first occurrence of from replaced by to (static buffer). */
static const char *replace(const char *body, const char *from, const char *to)
{
	static char out[FMT_API_BODY_MAX * 2];
	const char *at = strstr(body, from);
	ck_assert_msg(at != NULL, "'%s' not in %s", from, body);
	int n = snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - body), body, to, at + strlen(from));
	ck_assert(n > 0 && (size_t)n < sizeof(out));
	return out;
}

START_TEST(test_api_check_id)
{
	struct idp_error err;
	ck_assert_int_eq(fmt_api_check_id("a", 1, "device_id", NULL), IDP_OK);
	ck_assert_int_eq(fmt_api_check_id("Dev_01.x-9", 10, "device_id", NULL), IDP_OK);
	ck_assert_int_eq(fmt_api_check_id("-dev", 4, "device_id", &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "device_id: byte 0x2d at offset 0 is not allowed (A-Z a-z 0-9, then . _ - :)");
	ck_assert_int_eq(fmt_api_check_id("dev 1", 5, "device_id", &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_api_check_id("dev/1", 5, "device_id", &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_api_check_id("d\xc3\xa9v", 4, "device_id", &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_api_check_id("", 0, "batch_id", &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "batch_id: empty");
	char id[FMT_API_ID_MAX + 2];
	memset(id, 'a', sizeof(id));
	ck_assert_int_eq(fmt_api_check_id(id, FMT_API_ID_MAX, "device_id", NULL), IDP_OK);
	ck_assert_int_eq(fmt_api_check_id(id, FMT_API_ID_MAX + 1, "device_id", &err), IDP_E_LIMIT);
	ck_assert_str_eq(err.msg, "device_id: 65 bytes, max 64");
}
END_TEST

/* ------------------------------------------------------------- requests */

START_TEST(test_api_request_round_trip)
{
	static const enum fmt_api_purpose purposes[] = {FMT_API_PROVISION, FMT_API_EXCHANGE,
	                                                FMT_API_RENEW};
	static const enum fmt_key_type types[] = {FMT_KEY_P256, FMT_KEY_ED25519};
	for (size_t t = 0; t < 2; t++) {
		struct fmt_key *key = new_key(types[t]);
		for (size_t p = 0; p < 3; p++) {
			for (int with_nonce = 0; with_nonce < 2; with_nonce++) {
				struct fmt_api_request r, back;
				make_request(&r, purposes[p], key, exporter_a,
				             with_nonce ? nonce_1 : NULL);
				char body[FMT_API_BODY_MAX + 1], again[FMT_API_BODY_MAX + 1];
				size_t len = encode_request(&r, body, sizeof(body));
				struct idp_error err;
				ck_assert_msg(fmt_api_request_parse(purposes[p], (const uint8_t *)body,
				                                    len, &back, &err) == IDP_OK,
				              "%s: %s", err.msg, body);
				ck_assert_str_eq(back.device_id, "dev-0001");
				ck_assert_mem_eq(back.mac, mac_1, FMT_MAC_LEN);
				ck_assert_int_eq(back.key_type, types[t]);
				ck_assert_uint_eq(back.spki_len, r.spki_len);
				ck_assert_mem_eq(back.spki, r.spki, r.spki_len);
				ck_assert_str_eq(back.token, r.token);
				ck_assert(back.has_oob_proof == r.has_oob_proof);
				ck_assert_mem_eq(back.oob_proof, r.oob_proof, sizeof(r.oob_proof));
				ck_assert_str_eq(back.agent_version, r.agent_version);
				ck_assert_int_eq(back.pop.ts, NOW - 5);
				ck_assert(back.pop.has_nonce == (with_nonce != 0));
				ck_assert_mem_eq(back.pop.sig, r.pop.sig, FMT_KEY_RAW_SIG_LEN);
				/* Deterministic: the parsed copy encodes to the same bytes. */
				size_t len2 = encode_request(&back, again, sizeof(again));
				ck_assert_uint_eq(len, len2);
				ck_assert_str_eq(body, again);
				ck_assert_int_eq(fmt_api_pop_verify(&back, exporter_a, NOW, SKEW, &err),
				                 IDP_OK);
				/* A provision body is refused at the token endpoints and the
				 * other way round; exchange and renew bodies have one shape,
				 * told apart by the purpose inside the proof. */
				enum fmt_api_purpose other = purposes[(p + 1) % 3];
				enum idp_err rc = fmt_api_request_parse(other, (const uint8_t *)body, len,
				                                        &back, &err);
				if (other == FMT_API_PROVISION || purposes[p] == FMT_API_PROVISION) {
					ck_assert_int_eq(rc, IDP_E_FORMAT);
					ck_assert_ptr_nonnull(strstr(err.msg, "unknown field"));
				} else {
					ck_assert_int_eq(rc, IDP_OK);
					ck_assert_int_eq(fmt_api_pop_verify(&back, exporter_a, NOW, SKEW,
					                                    &err),
					                 IDP_E_VERIFY);
				}
				fmt_api_request_wipe(&r);
				fmt_api_request_wipe(&back);
			}
		}
		fmt_key_free(key);
	}
}
END_TEST

START_TEST(test_api_request_exact_json)
{
	struct fmt_key *key = new_key(FMT_KEY_ED25519);
	struct fmt_api_request r;
	make_request(&r, FMT_API_RENEW, key, exporter_a, NULL);
	char body[FMT_API_BODY_MAX + 1];
	encode_request(&r, body, sizeof(body));
	const char *prefix = "{\"device_id\":\"dev-0001\",\"mac\":\"02:00:5e:10:00:01\","
	                     "\"key_type\":\"ed25519\",\"public_key\":\"MCowBQYDK2VwAyEA";
	ck_assert_msg(strncmp(body, prefix, strlen(prefix)) == 0, "%s", body);
	ck_assert_ptr_nonnull(strstr(body, "\",\"token\":\"" TOKEN "\",\"pop\":{\"ts\":1799999995,"
	                                   "\"sig\":\""));
	ck_assert_ptr_null(strchr(body, ' '));
	ck_assert_ptr_null(strchr(body, '\n'));
	fmt_key_free(key);
}
END_TEST

struct refusal {
	const char *from, *to; /* substitution in a valid body */
	enum idp_err code;
	const char *msg;
};

static void check_refusals(enum fmt_api_purpose purpose, const char *body,
                           const struct refusal *bad, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *b = replace(body, bad[i].from, bad[i].to);
		struct fmt_api_request r;
		struct idp_error err;
		enum idp_err rc =
		        fmt_api_request_parse(purpose, (const uint8_t *)b, strlen(b), &r, &err);
		ck_assert_msg(rc == bad[i].code, "got %s (%s), want %s for %s", idp_err_name(rc),
		              err.msg, idp_err_name(bad[i].code), b);
		ck_assert_msg(strstr(err.msg, bad[i].msg) != NULL, "'%s' lacks '%s' for %s", err.msg,
		              bad[i].msg, b);
		/* Messages name the member, never a secret's value. */
		ck_assert_ptr_null(strstr(err.msg, "WlpaWlpa"));
		ck_assert_ptr_null(strstr(err.msg, TOKEN));
		/* Failure leaves nothing behind, the secret included. */
		ck_assert(!r.has_oob_proof);
		ck_assert_str_eq(r.device_id, "");
	}
}

START_TEST(test_api_request_refusals)
{
	struct fmt_key *key = new_key(FMT_KEY_P256);
	struct fmt_key *ed = new_key(FMT_KEY_ED25519);
	struct fmt_api_request r;
	make_request(&r, FMT_API_PROVISION, key, exporter_a, nonce_1);
	char body[FMT_API_BODY_MAX + 1];
	encode_request(&r, body, sizeof(body));
	/* A valid Ed25519 SPKI to put under key_type p256. */
	struct fmt_api_request re;
	make_request(&re, FMT_API_PROVISION, ed, exporter_a, NULL);
	char ed_body[FMT_API_BODY_MAX + 1];
	encode_request(&re, ed_body, sizeof(ed_body));
	const char *ed_spki = strstr(ed_body, "\"public_key\":");
	char ed_field[200];
	snprintf(ed_field, sizeof(ed_field), "%.*s", (int)(strchr(ed_spki + 14, '"') - ed_spki + 1),
	         ed_spki);
	const char *spki = strstr(body, "\"public_key\":");
	char p_field[200];
	snprintf(p_field, sizeof(p_field), "%.*s", (int)(strchr(spki + 14, '"') - spki + 1), spki);

	char long_id[200], long_agent[100], long_oob[100];
	snprintf(long_id, sizeof(long_id), "\"device_id\":\"%065d\"", 0);
	snprintf(long_agent, sizeof(long_agent), "\"agent_version\":\"%033d\"", 0);
	snprintf(long_oob, sizeof(long_oob), "\"oob_proof\":\"%048d\"", 0);
	char pop_field[400], pop_comma[402];
	const char *pf = strstr(body, "\"pop\":");
	snprintf(pop_field, sizeof(pop_field), "%.*s", (int)(strlen(pf) - 1), pf);
	snprintf(pop_comma, sizeof(pop_comma), ",%s", pop_field);
	const struct refusal bad[] = {
		/* missing required members */
		{"\"device_id\":\"dev-0001\",", "", IDP_E_FORMAT, "device_id: missing"},
		{"\"mac\":\"02:00:5e:10:00:01\",", "", IDP_E_FORMAT, "mac: missing"},
		{"\"key_type\":\"p256\",", "", IDP_E_FORMAT, "key_type: missing"},
		{"\"agent_version\":\"1.2.3\",", "", IDP_E_FORMAT, "agent_version: missing"},
		{"\"ts\":1799999995,", "", IDP_E_FORMAT, "pop: ts: missing"},
		{"\"sig\":\"", "\"zig\":\"", IDP_E_FORMAT, "pop: unknown field \"zig\""},
		/* wrong types */
		{"\"device_id\":\"dev-0001\"", "\"device_id\":1", IDP_E_FORMAT,
		 "device_id: expected a string"},
		{"\"ts\":1799999995", "\"ts\":\"1799999995\"", IDP_E_FORMAT, "pop: ts: expected a number"},
		{"\"ts\":1799999995", "\"ts\":1799999995.5", IDP_E_FORMAT, "not a plain integer"},
		{"\"ts\":1799999995", "\"ts\":1799999995.0", IDP_E_FORMAT, "not a plain integer"},
		{"\"ts\":1799999995", "\"ts\":17999999950e-1", IDP_E_FORMAT, "not a plain integer"},
		{"\"ts\":1799999995", "\"ts\":-1", IDP_E_LIMIT, "pop: ts: -1 is outside"},
		{"\"ts\":1799999995", "\"ts\":1e300", IDP_E_FORMAT, "not a plain integer"},
		{"\"mac\":\"02:00:5e:10:00:01\"", "\"mac\":null", IDP_E_FORMAT, "mac: expected a string"},
		{"\"oob_proof\":\"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=\"", "\"oob_proof\":true", IDP_E_FORMAT,
		 "oob_proof: expected a string"},
		/* duplicate and unknown members, other purposes' members */
		{"\"device_id\":\"dev-0001\",", "\"device_id\":\"dev-0001\",\"device_id\":\"dev-0002\",",
		 IDP_E_FORMAT, "duplicate key \"device_id\""},
		{"\"ts\":", "\"sig\":\"AAAA\",\"ts\":", IDP_E_FORMAT, "duplicate key \"sig\""},
		{"\"mac\":", "\"admin\":true,\"mac\":", IDP_E_FORMAT, "unknown field \"admin\""},
		{"\"mac\":", "\"token\":\"abc\",\"mac\":", IDP_E_FORMAT, "unknown field \"token\""},
		{"\"ts\":", "\"x\":1,\"ts\":", IDP_E_FORMAT, "pop: unknown field \"x\""},
		{"\"ts\":", "\"x\":{\"y\":1},\"ts\":", IDP_E_LIMIT, "nested deeper than 2"},
		/* oversized and malformed values */
		{"\"device_id\":\"dev-0001\"", long_id, IDP_E_LIMIT, "device_id: longer than 64"},
		{"\"device_id\":\"dev-0001\"", "\"device_id\":\"\"", IDP_E_FORMAT, "device_id: empty"},
		{"\"device_id\":\"dev-0001\"", "\"device_id\":\"dev 0001\"", IDP_E_FORMAT,
		 "device_id: byte 0x20 at offset 3"},
		{"\"agent_version\":\"1.2.3\"", long_agent, IDP_E_LIMIT, "agent_version: longer than 32"},
		{"\"agent_version\":\"1.2.3\"", "\"agent_version\":\"1.2;3\"", IDP_E_FORMAT,
		 "agent_version: character 0x3b"},
		{"\"oob_proof\":\"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=\"", long_oob, IDP_E_LIMIT, "oob_proof: longer than"},
		{"\"oob_proof\":\"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=\"", "\"oob_proof\":\"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWg==\"",
		 IDP_E_FORMAT, "oob_proof: 31 bytes, expected 32"},
		{"\"oob_proof\":\"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=\"", "\"oob_proof\":\"LBL-7Q2X\"", IDP_E_FORMAT, "oob_proof"},
		{"\"mac\":\"02:00:5e:10:00:01\"", "\"mac\":\"02:00:5E:10:00:01\"", IDP_E_FORMAT,
		 "is not in canonical form"},
		{"\"mac\":\"02:00:5e:10:00:01\"", "\"mac\":\"03:00:5e:10:00:01\"", IDP_E_FORMAT,
		 "is a group (multicast) address"},
		{"\"key_type\":\"p256\"", "\"key_type\":\"rsa\"", IDP_E_UNSUPPORTED,
		 "key type: \"rsa\" is not supported"},
		{"\"key_type\":\"p256\"", "\"key_type\":\"P256\"", IDP_E_UNSUPPORTED,
		 "key type: \"P256\" is not supported"},
		{p_field, ed_field, IDP_E_FORMAT, "public_key: a ed25519 key, but key_type is p256"},
		{"\"public_key\":\"", "\"public_key\":\"A", IDP_E_FORMAT, "public_key: base64"},
		{"\"public_key\":\"MF", "\"public_key\":\"MG", IDP_E_FORMAT, "public_key"},
		{p_field, "\"public_key\":\"MAA=\"", IDP_E_FORMAT, "public_key: public key: not an SPKI"},
		{"\"sig\":\"", "\"sig\":\"AAAA", IDP_E_LIMIT, "sig: longer than"},
		{pop_field, "\"pop\":{\"ts\":1,\"sig\":\"-AAA\"}", IDP_E_FORMAT,
		 "pop: sig: base64: invalid character at offset 0"},
		{"\"nonce\":\"", "\"nonce\":\"AAAA", IDP_E_LIMIT, "pop: nonce: longer than"},
		{"\"nonce\":\"AQIDBAUGBwgJCgAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"", "\"nonce\":\"AQID\"",
		 IDP_E_FORMAT, "pop: nonce: 3 bytes, expected 32"},
		{pop_field, "\"pop\":\"x\"", IDP_E_FORMAT, "pop: expected an object"},
		{pop_field, "\"pop\":[1]", IDP_E_FORMAT, "pop: expected an object"},
		{pop_field, "\"pop\":{\"ts\":1,\"sig\":\"AA==\"}", IDP_E_FORMAT,
		 "pop: sig: 1 bytes, expected 64"},
		{pop_comma, "", IDP_E_FORMAT, "pop: missing"},
	};
	check_refusals(FMT_API_PROVISION, body, bad, sizeof(bad) / sizeof(bad[0]));

	/* The signature decodes to 63 bytes: truncated. */
	struct fmt_api_request t = r;
	char tb[FMT_API_BODY_MAX + 1];
	encode_request(&t, tb, sizeof(tb));
	char *sig = strstr(tb, "\"sig\":\"") + 7;
	char *q = strchr(sig, '"');
	/* 64 bytes are 88 characters with "=="; 63 bytes are 84 with no padding. */
	ck_assert_int_eq(q - sig, 88);
	memmove(sig + 84, q, strlen(q) + 1);
	struct fmt_api_request out;
	struct idp_error err;
	ck_assert_int_eq(fmt_api_request_parse(FMT_API_PROVISION, (const uint8_t *)tb, strlen(tb),
	                                       &out, &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "pop: sig: 63 bytes, expected 64");

	/* Whole-body refusals: empty, oversized, not an object, every truncation. */
	ck_assert_int_eq(fmt_api_request_parse(FMT_API_PROVISION, (const uint8_t *)"", 0, &out,
	                                       &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "provision request: empty body");
	ck_assert_int_eq(fmt_api_request_parse(FMT_API_PROVISION, (const uint8_t *)"[1]", 3, &out,
	                                       &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "provision request: body is not a JSON object");
	static char big[FMT_API_BODY_MAX + 2];
	size_t blen = strlen(body);
	memcpy(big, body, blen);
	memset(big + blen, ' ', sizeof(big) - blen);
	ck_assert_int_eq(fmt_api_request_parse(FMT_API_PROVISION, (const uint8_t *)big,
	                                       FMT_API_BODY_MAX, &out, NULL),
	                 IDP_OK); /* trailing whitespace up to the limit is fine */
	fmt_api_request_wipe(&out);
	ck_assert_int_eq(fmt_api_request_parse(FMT_API_PROVISION, (const uint8_t *)big,
	                                       FMT_API_BODY_MAX + 1, &out, &err),
	                 IDP_E_LIMIT);
	ck_assert_str_eq(err.msg, "provision request: body is 16385 bytes, max 16384");
	for (size_t n = 0; n < blen; n++)
		ck_assert_msg(fmt_api_request_parse(FMT_API_PROVISION, (const uint8_t *)body, n, &out,
		                                    NULL) != IDP_OK,
		              "accepted a %zu-byte prefix", n);

	/* Token requests: token required and bounded, provision members refused. */
	make_request(&r, FMT_API_EXCHANGE, key, exporter_a, NULL);
	encode_request(&r, body, sizeof(body));
	static char long_token[FMT_API_TOKEN_MAX + 40];
	snprintf(long_token, sizeof(long_token), "\"token\":\"%0*d\"", (int)FMT_API_TOKEN_MAX + 1,
	         0);
	const struct refusal tbad[] = {
		{"\"token\":\"" TOKEN "\",", "", IDP_E_FORMAT, "token: missing"},
		{"\"token\":\"" TOKEN "\"", long_token, IDP_E_LIMIT, "token: longer than 4096"},
		{"\"token\":\"" TOKEN "\"", "\"token\":\"a b\"", IDP_E_FORMAT,
		 "token: character at offset 1 is not allowed"},
		{"\"token\":\"" TOKEN "\"", "\"token\":[]", IDP_E_FORMAT, "token: expected a string"},
		{"\"mac\":", "\"oob_proof\":\"x\",\"mac\":", IDP_E_FORMAT,
		 "unknown field \"oob_proof\""},
		{"\"mac\":", "\"agent_version\":\"1\",\"mac\":", IDP_E_FORMAT,
		 "unknown field \"agent_version\""},
	};
	check_refusals(FMT_API_EXCHANGE, body, tbad, sizeof(tbad) / sizeof(tbad[0]));

	/* The encoder refuses what the parser refuses. */
	size_t len;
	struct fmt_api_request e = r;
	e.has_oob_proof = true;
	ck_assert_int_eq(fmt_api_request_encode(&e, body, sizeof(body), &len, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "oob_proof: not allowed in exchange request");
	e = r;
	e.mac[0] = 1;
	ck_assert_int_eq(fmt_api_request_encode(&e, body, sizeof(body), &len, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "mac: \"01:00:5e:10:00:01\" is a group (multicast) address, not a device's");
	e = r;
	memset(e.device_id, 'a', sizeof(e.device_id));
	ck_assert_int_eq(fmt_api_request_encode(&e, body, sizeof(body), &len, &err), IDP_E_ARG);
	ck_assert_str_eq(err.msg, "device_id: not NUL-terminated");
	e = r;
	e.purpose = 9;
	ck_assert_int_eq(fmt_api_request_encode(&e, body, sizeof(body), &len, &err), IDP_E_ARG);
	ck_assert_int_eq(fmt_api_request_encode(&r, body, 40, &len, &err), IDP_E_LIMIT);
	ck_assert_str_eq(body, ""); /* nothing half-written is left */
	ck_assert_uint_eq(len, 0);
	fmt_key_free(key);
	fmt_key_free(ed);
}
END_TEST

/* ------------------------------------------------- proof of possession */

static void expect_verify(const struct fmt_api_request *r, const uint8_t *exporter, int64_t now,
                          enum idp_err want, const char *msg, const char *what)
{
	struct idp_error err;
	enum idp_err rc = fmt_api_pop_verify(r, exporter, now, SKEW, &err);
	ck_assert_msg(rc == want, "%s: got %s (%s)", what, idp_err_name(rc),
	              rc == IDP_OK ? "" : err.msg);
	if (msg != NULL)
		ck_assert_msg(strstr(err.msg, msg) != NULL, "%s: '%s'", what, err.msg);
}

#define NOMATCH "pop: signature does not match"

START_TEST(test_api_pop_verify)
{
	static const enum fmt_key_type types[] = {FMT_KEY_P256, FMT_KEY_ED25519};
	for (size_t t = 0; t < 2; t++) {
		struct fmt_key *key = new_key(types[t]);
		struct fmt_key *other = new_key(types[t]);
		struct fmt_api_request r, m;
		make_request(&r, FMT_API_PROVISION, key, exporter_a, nonce_1);
		expect_verify(&r, exporter_a, NOW, IDP_OK, NULL, "genuine");
		expect_verify(&r, exporter_a, NOW - 5 - SKEW, IDP_OK, NULL, "skew edge, late clock");
		expect_verify(&r, exporter_a, NOW - 5 + SKEW, IDP_OK, NULL, "skew edge, early clock");

		/* Relayed: the proof was made on the device's channel to a relay. */
		expect_verify(&r, exporter_b, NOW, IDP_E_VERIFY, NOMATCH, "relayed");
		/* Each claim altered after signing. */
		m = r;
		m.device_id[7] = '2';
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "device_id");
		m = r;
		m.mac[5] ^= 2;
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "mac");
		m = r;
		snprintf(m.agent_version, sizeof(m.agent_version), "%s", "1.2.4");
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "agent_version");
		m = r;
		m.oob_proof[31] ^= 1;
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "oob_proof");
		m = r;
		m.has_oob_proof = false;
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "oob_proof dropped");
		m = r;
		m.pop.ts += 1;
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "ts");
		/* Another key put in, keeping the device's signature. */
		m = r;
		ck_assert_int_eq(fmt_key_spki_der(other, m.spki, &m.spki_len, NULL), IDP_OK);
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "key swapped");
		/* Replayed nonce material: another nonce swapped in, or dropped. */
		m = r;
		memcpy(m.pop.nonce, nonce_2, FMT_API_NONCE_LEN);
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "nonce swapped");
		m = r;
		m.pop.has_nonce = false;
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "nonce dropped");
		struct fmt_api_request nn;
		make_request(&nn, FMT_API_PROVISION, key, exporter_a, NULL);
		expect_verify(&nn, exporter_a, NOW, IDP_OK, NULL, "no nonce");
		nn.pop.has_nonce = true;
		memcpy(nn.pop.nonce, nonce_1, FMT_API_NONCE_LEN);
		expect_verify(&nn, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "nonce added");
		/* Time: stale and future proofs. */
		expect_verify(&r, exporter_a, NOW - 4 + SKEW, IDP_E_EXPIRED,
		              "pop: timestamp is 61 s old, max skew 60 s", "stale");
		expect_verify(&r, exporter_a, NOW - 6 - SKEW, IDP_E_EXPIRED,
		              "pop: timestamp is 61 s in the future, max skew 60 s", "future");
		expect_verify(&r, exporter_a, -1, IDP_E_ARG, "out of range", "bad now");
		/* A failed export left zeros on both ends: refused, never signed
		 * or verified, whatever the time. */
		static const uint8_t zero[FMT_API_EXPORTER_LEN];
		expect_verify(&r, zero, NOW, IDP_E_ARG, "pop: tls exporter is all zero", "zero");
		expect_verify(&r, zero, NOW + 3600, IDP_E_ARG, "exporter is all zero", "zero, stale");
		m = r;
		ck_assert_int_eq(fmt_api_pop_sign(&m, key, zero, NOW, NULL, NULL), IDP_E_ARG);
		uint8_t zmsg[FMT_API_POP_MSG_MAX];
		size_t zlen = 1;
		ck_assert_int_eq(fmt_api_pop_message(&r, zero, zmsg, &zlen, NULL), IDP_E_ARG);
		ck_assert_uint_eq(zlen, 0);
		/* Every single-bit flip of the signature, in each byte. */
		for (size_t i = 0; i < FMT_KEY_RAW_SIG_LEN; i++) {
			m = r;
			m.pop.sig[i] ^= (uint8_t)(1u << (i % 8));
			expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "bit flip");
		}
		m = r;
		memset(m.pop.sig, 0, sizeof(m.pop.sig));
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "zero signature");
		/* The signer refuses a public key. */
		struct fmt_key *pub = NULL;
		ck_assert_int_eq(fmt_key_parse_spki_der(r.spki, r.spki_len, &pub, NULL), IDP_OK);
		struct idp_error err;
		ck_assert_int_eq(fmt_api_pop_sign(&m, pub, exporter_a, NOW, NULL, &err), IDP_E_ARG);
		ck_assert_str_eq(err.msg, "pop: key has no private half");
		fmt_key_free(pub);

		/* Token requests: purpose and the token presented are bound. */
		struct fmt_api_request x;
		make_request(&x, FMT_API_EXCHANGE, key, exporter_a, NULL);
		expect_verify(&x, exporter_a, NOW, IDP_OK, NULL, "exchange");
		m = x;
		m.purpose = FMT_API_RENEW;
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "exchange proof on renew");
		m = x;
		m.token[strlen(m.token) - 1] ^= 1;
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "other token");
		expect_verify(&x, exporter_b, NOW, IDP_E_VERIFY, NOMATCH, "relayed exchange");
		make_request(&x, FMT_API_RENEW, key, exporter_a, nonce_2);
		expect_verify(&x, exporter_a, NOW, IDP_OK, NULL, "renew");
		m = x;
		m.purpose = FMT_API_EXCHANGE;
		expect_verify(&m, exporter_a, NOW, IDP_E_VERIFY, NOMATCH, "renew proof on exchange");

		/* The relay through JSON: the body forwarded verbatim parses, and fails. */
		char body[FMT_API_BODY_MAX + 1];
		size_t len = encode_request(&r, body, sizeof(body));
		ck_assert_int_eq(fmt_api_request_parse(FMT_API_PROVISION, (const uint8_t *)body, len,
		                                       &m, NULL),
		                 IDP_OK);
		expect_verify(&m, exporter_a, NOW, IDP_OK, NULL, "parsed, own channel");
		expect_verify(&m, exporter_b, NOW, IDP_E_VERIFY, NOMATCH, "parsed, relayed");
		fmt_key_free(key);
		fmt_key_free(other);
	}
}
END_TEST

/* A request with an Ed25519 key anyone can sign for is refused by the
 * parser, naming the problem, although for the identity key plain OpenSSL
 * verifies the forged proof (R = identity, S = 0) over any message. */
START_TEST(test_api_request_refuses_weak_ed25519_keys)
{
	bool small = _i < (int)IDP_TEST_SMALL_ORDER_N;
	const uint8_t *pub = small ? idp_test_small_order[_i]
	                           : idp_test_noncanonical[_i - (int)IDP_TEST_SMALL_ORDER_N];
	const char *want = small ? "public_key: key: ed25519 public key is of small order"
	                         : "public_key: key: ed25519 public key is not canonical";
	struct fmt_key *key = new_key(FMT_KEY_ED25519);
	struct fmt_api_request r, got;
	make_request(&r, FMT_API_PROVISION, key, exporter_a, NULL);
	char body[FMT_API_BODY_MAX + 1];
	encode_request(&r, body, sizeof(body));
	uint8_t msg[FMT_API_POP_MSG_MAX];
	size_t mlen = 0;
	ck_assert_int_eq(fmt_api_pop_message(&r, exporter_a, msg, &mlen, NULL), IDP_OK);
	/* The same body with the weak key and the forged signature. */
	char good_b64[64], weak_b64[64], sig_b64[96], forged_b64[96];
	uint8_t weak[IDP_TEST_ED25519_SPKI_LEN], forged[64] = {0};
	idp_test_ed25519_spki(pub, weak);
	memcpy(forged, idp_test_small_order[0], 32);
	good_b64[fmt_b64_encode(FMT_B64_STD, r.spki, r.spki_len, good_b64)] = '\0';
	weak_b64[fmt_b64_encode(FMT_B64_STD, weak, sizeof(weak), weak_b64)] = '\0';
	sig_b64[fmt_b64_encode(FMT_B64_STD, r.pop.sig, 64, sig_b64)] = '\0';
	forged_b64[fmt_b64_encode(FMT_B64_STD, forged, 64, forged_b64)] = '\0';
	char bad[FMT_API_BODY_MAX + 1];
	snprintf(bad, sizeof(bad), "%s", replace(body, good_b64, weak_b64));
	const char *b = replace(bad, sig_b64, forged_b64);
	if (_i == 0) {
		EVP_PKEY *e = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
		ck_assert_ptr_nonnull(e);
		ck_assert_int_eq(idp_test_ossl_verify_raw(e, msg, mlen, forged), 1);
		EVP_PKEY_free(e);
	}
	struct idp_error err = {0};
	ck_assert_int_eq(
	        fmt_api_request_parse(FMT_API_PROVISION, (const uint8_t *)b, strlen(b), &got, &err),
	        IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, want);
	ck_assert_int_eq(fmt_api_request_accept(FMT_API_PROVISION, (const uint8_t *)b, strlen(b),
	                                        exporter_a, NOW, SKEW, &got, &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, want);
	fmt_api_request_wipe(&r);
	fmt_api_request_wipe(&got);
	fmt_key_free(key);
}
END_TEST

/* The twin (r, n - s) of a valid P-256 proof verifies in OpenSSL; the
 * proof of possession refuses it (one signature, one spelling). */
START_TEST(test_api_pop_high_s_refused)
{
	struct fmt_key *key = new_key(FMT_KEY_P256);
	struct fmt_api_request r;
	make_request(&r, FMT_API_PROVISION, key, exporter_a, nonce_1);
	expect_verify(&r, exporter_a, NOW, IDP_OK, NULL, "low-s proof");
	uint8_t msg[FMT_API_POP_MSG_MAX];
	size_t mlen = 0;
	ck_assert_int_eq(fmt_api_pop_message(&r, exporter_a, msg, &mlen, NULL), IDP_OK);
	idp_test_ecdsa_twin(r.pop.sig);
	ck_assert_int_eq(idp_test_ossl_verify_raw(fmt_key_evp(key), msg, mlen, r.pop.sig), 1);
	expect_verify(&r, exporter_a, NOW, IDP_E_VERIFY, "pop: ecdsa signature is not low-s",
	              "high-s twin");
	fmt_api_request_wipe(&r);
	fmt_key_free(key);
}
END_TEST

START_TEST(test_api_request_accept)
{
	struct fmt_key *key = new_key(FMT_KEY_P256);
	struct fmt_api_request r, got;
	make_request(&r, FMT_API_RENEW, key, exporter_a, nonce_1);
	char body[FMT_API_BODY_MAX + 1];
	size_t len = encode_request(&r, body, sizeof(body));
	const uint8_t *b = (const uint8_t *)body;
	struct idp_error err;
	ck_assert_int_eq(fmt_api_request_accept(FMT_API_RENEW, b, len, exporter_a, NOW, SKEW, &got,
	                                        &err),
	                 IDP_OK);
	ck_assert_str_eq(got.token, TOKEN);
	ck_assert(got.pop.has_nonce);
	/* Relayed, stale, other endpoint: refused; the unproven claims are kept. */
	ck_assert_int_eq(fmt_api_request_accept(FMT_API_RENEW, b, len, exporter_b, NOW, SKEW, &got,
	                                        &err),
	                 IDP_E_VERIFY);
	ck_assert_str_eq(err.msg, "pop: signature does not match this key, these claims and this "
	                          "TLS channel");
	ck_assert_str_eq(got.device_id, "dev-0001");
	ck_assert_int_eq(fmt_api_request_accept(FMT_API_RENEW, b, len, exporter_a, NOW + 600, SKEW,
	                                        &got, &err),
	                 IDP_E_EXPIRED);
	ck_assert_int_eq(fmt_api_request_accept(FMT_API_EXCHANGE, b, len, exporter_a, NOW, SKEW,
	                                        &got, &err),
	                 IDP_E_VERIFY);
	static const uint8_t zero[FMT_API_EXPORTER_LEN];
	ck_assert_int_eq(fmt_api_request_accept(FMT_API_RENEW, b, len, zero, NOW, SKEW, &got, &err),
	                 IDP_E_ARG);
	ck_assert_str_eq(err.msg, "pop: tls exporter is all zero (not read from the connection?)");
	/* A body the parser refuses: same error as the parser, nothing kept. */
	ck_assert_int_eq(fmt_api_request_accept(FMT_API_PROVISION, b, len, exporter_a, NOW, SKEW,
	                                        &got, &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "unknown field \"token\"");
	ck_assert_str_eq(got.device_id, "");
	ck_assert_str_eq(got.token, "");
	ck_assert_int_eq(fmt_api_request_accept(FMT_API_RENEW, b, len - 1, exporter_a, NOW, SKEW,
	                                        &got, &err),
	                 IDP_E_FORMAT);
	ck_assert_int_eq(fmt_api_request_accept(FMT_API_RENEW, b, len, exporter_a, NOW, -1, &got,
	                                        &err),
	                 IDP_E_ARG);
	ck_assert_int_eq(fmt_api_request_accept(7, b, len, exporter_a, NOW, SKEW, &got, &err),
	                 IDP_E_ARG);
	fmt_api_request_wipe(&r);
	fmt_api_request_wipe(&got);
	fmt_key_free(key);
}
END_TEST

/* The signer's check compares the request's key with the signing key: a
 * request naming another key (or type) is not signed, and the member
 * checks are the parser's. */
START_TEST(test_api_request_check_signer)
{
	struct fmt_key *key = new_key(FMT_KEY_P256), *other = new_key(FMT_KEY_ED25519);
	struct fmt_api_request r;
	make_request(&r, FMT_API_PROVISION, key, exporter_a, nonce_1);
	struct idp_error err;
	ck_assert_int_eq(fmt_api_request_check_signer(&r, key, &err), IDP_OK);
	ck_assert_int_eq(fmt_api_request_check_signer(&r, other, &err), IDP_E_ARG);
	ck_assert_str_eq(err.msg, "public_key: not the signing key's own");
	struct fmt_api_request f = r;
	f.spki[f.spki_len - 1] ^= 1;
	ck_assert_int_eq(fmt_api_request_check_signer(&f, key, &err), IDP_E_ARG);
	f = r;
	f.key_type = FMT_KEY_ED25519;
	ck_assert_int_eq(fmt_api_request_check_signer(&f, key, &err), IDP_E_ARG);
	f = r;
	f.device_id[0] = '-';
	ck_assert_int_eq(fmt_api_request_check_signer(&f, key, &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_api_request_check(&f, NULL, NULL), IDP_E_FORMAT);
	/* fmt_api_pop_sign takes the key's own SPKI and signs what checks. */
	ck_assert_int_eq(fmt_api_pop_sign(&f, key, exporter_a, NOW, NULL, &err), IDP_E_FORMAT);
	f = r;
	ck_assert_int_eq(fmt_api_pop_sign(&f, other, exporter_a, NOW, NULL, &err), IDP_OK);
	ck_assert_int_eq(fmt_api_pop_verify(&f, exporter_a, NOW, SKEW, &err), IDP_OK);
	fmt_api_request_wipe(&r);
	fmt_api_request_wipe(&f);
	fmt_key_free(key);
	fmt_key_free(other);
}
END_TEST

/* f, encoded, is refused by fmt_api_request_accept_key as a forgery, and
 * no key comes out. */
static void accept_key_refused(const struct fmt_api_request *f)
{
	char body[FMT_API_BODY_MAX + 1];
	size_t len = encode_request(f, body, sizeof(body));
	struct fmt_api_request got;
	struct fmt_key *k = (struct fmt_key *)(uintptr_t)1; /* must be overwritten */
	ck_assert_int_eq(fmt_api_request_accept_key(f->purpose, (const uint8_t *)body, len,
	                                            exporter_a, NOW, SKEW, &got, &k, NULL),
	                 IDP_E_VERIFY);
	ck_assert_ptr_null(k);
	fmt_api_request_wipe(&got);
}

/* The key fmt_api_request_accept_key hands out is the presented one, and
 * only a proven one: relayed, stale, forged, other-key and other-endpoint
 * requests leave *key NULL (a caller must never act on an unproven key). */
START_TEST(test_api_request_accept_key)
{
	struct fmt_key *key = new_key(FMT_KEY_P256), *other = new_key(FMT_KEY_P256);
	struct fmt_api_request r, got;
	make_request(&r, FMT_API_PROVISION, key, exporter_a, nonce_1);
	char body[FMT_API_BODY_MAX + 1];
	size_t len = encode_request(&r, body, sizeof(body));
	const uint8_t *b = (const uint8_t *)body;
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_api_request_accept_key(FMT_API_PROVISION, b, len, exporter_a, NOW, SKEW,
	                                            &got, &k, NULL),
	                 IDP_OK);
	ck_assert_ptr_nonnull(k);
	ck_assert(fmt_key_equal(k, key) && !fmt_key_equal(k, other));
	ck_assert(!fmt_key_has_private(k));
	fmt_key_free(k);
	/* The same call without a key pointer. */
	ck_assert_int_eq(fmt_api_request_accept_key(FMT_API_PROVISION, b, len, exporter_a, NOW, SKEW,
	                                            &got, NULL, NULL),
	                 IDP_OK);
	struct {
		const uint8_t *exporter;
		int64_t now;
		enum fmt_api_purpose purpose;
		enum idp_err want;
	} bad[] = {
	        {exporter_b, NOW, FMT_API_PROVISION, IDP_E_VERIFY},      /* relayed */
	        {exporter_a, NOW + 600, FMT_API_PROVISION, IDP_E_EXPIRED}, /* stale */
	        {exporter_a, NOW, FMT_API_RENEW, IDP_E_FORMAT},           /* other endpoint */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		k = key; /* any non-NULL value must be overwritten */
		ck_assert_int_eq(fmt_api_request_accept_key(bad[i].purpose, b, len, bad[i].exporter,
		                                            bad[i].now, SKEW, &got, &k, NULL),
		                 bad[i].want);
		ck_assert_ptr_null(k);
	}
	/* Another key's SPKI with this key's proof, or one flipped bit of the
	 * signature: forgeries, refused. */
	struct fmt_api_request f = r;
	ck_assert_int_eq(fmt_key_spki_der(other, f.spki, &f.spki_len, NULL), IDP_OK);
	accept_key_refused(&f);
	f = r;
	f.pop.sig[10] ^= 0x01;
	accept_key_refused(&f);
	fmt_api_request_wipe(&r);
	fmt_api_request_wipe(&f);
	fmt_api_request_wipe(&got);
	fmt_key_free(key);
	fmt_key_free(other);
}
END_TEST

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The worked example of formats/api.md: fixed Ed25519 key (seed 00..1f),
 * exporter 11.., a renew request with a nonce. Ed25519 is deterministic, so
 * the signature is a known answer too. */
START_TEST(test_api_pop_vector)
{
	uint8_t seed[32];
	for (size_t i = 0; i < sizeof(seed); i++)
		seed[i] = (uint8_t)i;
	EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
	ck_assert_ptr_nonnull(pk);
	struct fmt_key *key = NULL;
	ck_assert_int_eq(fmt_key_from_evp(pk, &key, NULL), IDP_OK);
	EVP_PKEY_free(pk);
	struct fmt_api_request r;
	memset(&r, 0, sizeof(r));
	r.purpose = FMT_API_RENEW;
	snprintf(r.device_id, sizeof(r.device_id), "%s", "dev-0001");
	memcpy(r.mac, mac_1, FMT_MAC_LEN);
	snprintf(r.token, sizeof(r.token), "%s", "aaa.bbb.ccc");
	uint8_t nonce[FMT_API_NONCE_LEN];
	memset(nonce, 0x22, sizeof(nonce));
	ck_assert_int_eq(fmt_api_pop_sign(&r, key, exporter_a, 1700000000, nonce, NULL), IDP_OK);
	uint8_t msg[FMT_API_POP_MSG_MAX];
	size_t len = 0;
	ck_assert_int_eq(fmt_api_pop_message(&r, exporter_a, msg, &len, NULL), IDP_OK);
	char mhex[2 * FMT_API_POP_MSG_MAX + 1], shex[2 * FMT_KEY_RAW_SIG_LEN + 1];
	hex(msg, len, mhex);
	hex(r.pop.sig, FMT_KEY_RAW_SIG_LEN, shex);
	if (getenv("IDP_PRINT_VECTOR") != NULL) {
		char body[FMT_API_BODY_MAX + 1];
		encode_request(&r, body, sizeof(body));
		printf("msg %zu %s\nsig %s\nbody %s\n", len, mhex, shex, body);
		fflush(stdout);
	}
	ck_assert_uint_eq(len, 169);
	ck_assert_str_eq(mhex, VECTOR_MSG);
	ck_assert_str_eq(shex, VECTOR_SIG);
	ck_assert_int_eq(fmt_api_pop_verify(&r, exporter_a, 1700000000, 0, NULL), IDP_OK);
	fmt_key_free(key);
}
END_TEST

/* Longest message: every optional member present at its maximum. */
START_TEST(test_api_pop_message_max)
{
	struct fmt_key *key = new_key(FMT_KEY_P256);
	struct fmt_api_request r;
	make_request(&r, FMT_API_PROVISION, key, exporter_a, nonce_1);
	memset(r.device_id, 'd', FMT_API_ID_MAX);
	r.device_id[FMT_API_ID_MAX] = '\0';
	memset(r.agent_version, '1', FMT_API_AGENT_VERSION_MAX);
	r.agent_version[FMT_API_AGENT_VERSION_MAX] = '\0';
	uint8_t msg[FMT_API_POP_MSG_MAX];
	size_t len = 0;
	ck_assert_int_eq(fmt_api_pop_message(&r, exporter_a, msg, &len, NULL), IDP_OK);
	ck_assert_uint_eq(len, FMT_API_POP_MSG_MAX - 32); /* no token hash in a provision */
	ck_assert_mem_eq(msg, "idprov-pop\0\1\1", 13);
	fmt_key_free(key);
}
END_TEST

/* ----------------------------------------- channel binding over real TLS */

/* A TLS server context with a fresh self-signed certificate. */
static SSL_CTX *server_ctx(void)
{
	struct fmt_key *k = NULL;
	X509 *x = make_cert(&k);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), 1);
	ck_assert_int_eq(SSL_CTX_use_certificate(ctx, x), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey(ctx, fmt_key_evp(k)), 1);
	X509_free(x);
	fmt_key_free(k);
	return ctx;
}

static SSL_CTX *client_ctx(int max_version, bool no_ems)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), 1);
	ck_assert_int_eq(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
	if (no_ems)
		SSL_CTX_set_options(ctx, SSL_OP_NO_EXTENDED_MASTER_SECRET);
	return ctx;
}

struct tls_link {
	SSL *client, *server;
};

/* Handshake a client and a server over an in-memory BIO pair: real OpenSSL
 * TLS, no sockets. */
static void tls_link_open(struct tls_link *l, SSL_CTX *cctx, SSL_CTX *sctx)
{
	l->client = SSL_new(cctx);
	l->server = SSL_new(sctx);
	ck_assert(l->client != NULL && l->server != NULL);
	BIO *cb = NULL, *sb = NULL;
	ck_assert_int_eq(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(l->client, cb, cb);
	SSL_set_bio(l->server, sb, sb);
	SSL_set_connect_state(l->client);
	SSL_set_accept_state(l->server);
	int c = 0, s = 0;
	for (int round = 0; round < 20 && (c != 1 || s != 1); round++) {
		c = SSL_do_handshake(l->client);
		s = SSL_do_handshake(l->server);
		if (c != 1)
			ck_assert_int_eq(SSL_get_error(l->client, c), SSL_ERROR_WANT_READ);
		if (s != 1)
			ck_assert_int_eq(SSL_get_error(l->server, s), SSL_ERROR_WANT_READ);
	}
	ck_assert(c == 1 && s == 1);
}

static void tls_link_close(struct tls_link *l)
{
	SSL_free(l->client);
	SSL_free(l->server);
}

/* RFC 9266 tls-exporter of one end, as agent and server read it. */
static void exporter_of(SSL *ssl, uint8_t out[static FMT_API_EXPORTER_LEN])
{
	ck_assert_int_eq(fio_tls_exporter(ssl, out, NULL), IDP_OK);
}

/* The device signs on its end of link; the server verifies on its end. */
static enum idp_err prove_over(const struct fmt_key *key, SSL *device_end, SSL *server_end)
{
	uint8_t dev_x[FMT_API_EXPORTER_LEN], srv_x[FMT_API_EXPORTER_LEN];
	exporter_of(device_end, dev_x);
	exporter_of(server_end, srv_x);
	struct fmt_api_request r, got;
	make_request(&r, FMT_API_PROVISION, key, dev_x, NULL);
	char body[FMT_API_BODY_MAX + 1];
	size_t len = encode_request(&r, body, sizeof(body));
	enum idp_err rc = fmt_api_request_accept(FMT_API_PROVISION, (const uint8_t *)body, len, srv_x,
	                                         NOW, SKEW, &got, NULL);
	ck_assert_str_eq(got.device_id, "dev-0001"); /* kept for the log when the proof fails */
	fmt_api_request_wipe(&r);
	fmt_api_request_wipe(&got);
	return rc;
}

START_TEST(test_api_pop_over_tls)
{
	SSL_CTX *sctx = server_ctx(), *mctx = server_ctx();
	struct fmt_key *key = new_key(FMT_KEY_P256);
	static const struct {
		int version;
		const char *name;
	} versions[] = {{TLS1_3_VERSION, "TLSv1.3"}, {TLS1_2_VERSION, "TLSv1.2"}};
	for (size_t v = 0; v < 2; v++) {
		SSL_CTX *cctx = client_ctx(versions[v].version, false);
		struct tls_link direct, again, dev_mitm, mitm_srv;
		tls_link_open(&direct, cctx, sctx);
		ck_assert_str_eq(SSL_get_version(direct.server), versions[v].name);
		if (versions[v].version == TLS1_2_VERSION)
			ck_assert_int_eq(SSL_get_extms_support(direct.server), 1);
		uint8_t a[FMT_API_EXPORTER_LEN], b[FMT_API_EXPORTER_LEN];
		exporter_of(direct.client, a);
		exporter_of(direct.server, b);
		ck_assert_mem_eq(a, b, FMT_API_EXPORTER_LEN); /* both ends agree */
		/* RFC 9266: an empty context, not none; under TLS 1.2 they differ. */
		uint8_t none[FMT_API_EXPORTER_LEN];
		ck_assert_int_eq(SSL_export_keying_material(
		                         direct.client, none, sizeof(none), FMT_API_EXPORTER_LABEL,
		                         strlen(FMT_API_EXPORTER_LABEL), NULL, 0, 0),
		                 1);
		if (versions[v].version == TLS1_2_VERSION)
			ck_assert_mem_ne(a, none, FMT_API_EXPORTER_LEN);
		else
			ck_assert_mem_eq(a, none, FMT_API_EXPORTER_LEN);
		ck_assert_int_eq(prove_over(key, direct.client, direct.server), IDP_OK);

		/* A second connection of the same device: its own exporter, so a
		 * proof captured on the first is refused on it. */
		tls_link_open(&again, cctx, sctx);
		exporter_of(again.server, b);
		ck_assert_mem_ne(a, b, FMT_API_EXPORTER_LEN);
		ck_assert_int_eq(prove_over(key, direct.client, again.server), IDP_E_VERIFY);

		/* A relay terminating TLS: device <-> relay <-> server. */
		tls_link_open(&dev_mitm, cctx, mctx);
		tls_link_open(&mitm_srv, cctx, sctx);
		ck_assert_int_eq(prove_over(key, dev_mitm.client, mitm_srv.server), IDP_E_VERIFY);
		ck_assert_int_eq(prove_over(key, mitm_srv.client, mitm_srv.server), IDP_OK);

		tls_link_close(&direct);
		tls_link_close(&again);
		tls_link_close(&dev_mitm);
		tls_link_close(&mitm_srv);
		SSL_CTX_free(cctx);
	}
	/* TLS 1.2 without extended master secret: what a server must refuse. */
	SSL_CTX *weak = client_ctx(TLS1_2_VERSION, true);
	struct tls_link l;
	tls_link_open(&l, weak, sctx);
	ck_assert_int_eq(SSL_get_extms_support(l.server), 0);
	tls_link_close(&l);
	SSL_CTX_free(weak);
	fmt_key_free(key);
	SSL_CTX_free(sctx);
	SSL_CTX_free(mctx);
}
END_TEST

/* ---------------------------------------------------------------- answers */

static void status_round_trip(const struct fmt_api_status *st, const char *exact)
{
	char body[FMT_API_BODY_MAX + 1], again[FMT_API_BODY_MAX + 1];
	size_t len = 0, len2 = 0;
	struct idp_error err;
	ck_assert_msg(fmt_api_status_encode(st, body, sizeof(body), &len, &err) == IDP_OK, "%s",
	              err.msg);
	if (exact != NULL)
		ck_assert_str_eq(body, exact);
	struct fmt_api_status back;
	ck_assert_msg(fmt_api_status_parse((const uint8_t *)body, len, &back, &err) == IDP_OK,
	              "%s: %s", err.msg, body);
	ck_assert_int_eq(back.status, st->status);
	ck_assert_int_eq(back.token_kind, st->token_kind);
	ck_assert_str_eq(back.token, st->token);
	ck_assert_int_eq(back.expires, st->expires);
	ck_assert_str_eq(back.server_url, st->server_url);
	ck_assert_str_eq(back.ca_pem, st->ca_pem);
	ck_assert_int_eq(back.retry_after, st->retry_after);
	ck_assert_int_eq(back.reason, st->reason);
	ck_assert_str_eq(back.reason_code, st->reason_code);
	ck_assert_str_eq(back.message, st->message);
	ck_assert_int_eq(fmt_api_status_encode(&back, again, sizeof(again), &len2, NULL), IDP_OK);
	ck_assert_str_eq(body, again);
	struct fmt_api_answer a;
	ck_assert_int_eq(fmt_api_answer_parse((const uint8_t *)body, len, &a, NULL), IDP_OK);
	ck_assert(!a.is_error);
	ck_assert_str_eq(a.status.token, st->token);
	for (size_t n = 0; n < len; n++)
		ck_assert_msg(fmt_api_status_parse((const uint8_t *)body, n, &back, NULL) != IDP_OK,
		              "accepted a %zu-byte prefix", n);
	fmt_api_answer_wipe(&a);
	fmt_api_status_wipe(&back);
}

static void approved(struct fmt_api_status *st, const char *ca_pem)
{
	memset(st, 0, sizeof(*st));
	st->status = FMT_API_APPROVED;
	st->token_kind = FMT_TOKEN_PROVISION;
	snprintf(st->token, sizeof(st->token), "%s", TOKEN);
	st->expires = NOW + 300;
	snprintf(st->server_url, sizeof(st->server_url), "%s", "https://hub.local:8443/");
	snprintf(st->ca_pem, sizeof(st->ca_pem), "%s", ca_pem);
}

START_TEST(test_api_status_round_trip)
{
	char *pem = make_cert_pem();
	struct fmt_api_status st;
	approved(&st, pem);
	status_round_trip(&st, NULL);
	/* Two certificates, and a device token with neither URL nor CA. */
	char two[FMT_API_CA_PEM_MAX];
	snprintf(two, sizeof(two), "%s%s", pem, pem);
	approved(&st, two);
	status_round_trip(&st, NULL);
	approved(&st, "");
	st.token_kind = FMT_TOKEN_DEVICE;
	st.server_url[0] = '\0';
	status_round_trip(&st, "{\"status\":\"approved\",\"token_kind\":\"device\",\"token\":\"" TOKEN
	                       "\",\"expires\":1800000300}");

	memset(&st, 0, sizeof(st));
	st.status = FMT_API_PENDING;
	st.retry_after = 30;
	status_round_trip(&st, "{\"status\":\"pending\",\"retry_after\":30}");
	ck_assert_int_eq(fmt_api_status_http_status(FMT_API_PENDING), 202);

	memset(&st, 0, sizeof(st));
	st.status = FMT_API_REJECTED;
	st.reason = FMT_API_REASON_KEY_MISMATCH;
	snprintf(st.reason_code, sizeof(st.reason_code), "%s", "key_mismatch");
	snprintf(st.message, sizeof(st.message), "%s", "key differs from batch \"b-7\" \xc3\xa9");
	status_round_trip(&st, "{\"status\":\"rejected\",\"reason\":\"key_mismatch\",\"message\":"
	                       "\"key differs from batch \\\"b-7\\\" \xc3\xa9\"}");
	ck_assert_int_eq(fmt_api_status_http_status(FMT_API_REJECTED), 403);
	/* A reason code from a newer server is kept, as OTHER. */
	st.reason = FMT_API_REASON_OTHER;
	snprintf(st.reason_code, sizeof(st.reason_code), "%s", "flagged_for_review");
	st.message[0] = '\0';
	status_round_trip(&st, "{\"status\":\"rejected\",\"reason\":\"flagged_for_review\"}");
	for (int r = FMT_API_REASON_KEY_MISMATCH; r <= FMT_API_REASON_REVOKED; r++) {
		st.reason = (enum fmt_api_reason)r;
		snprintf(st.reason_code, sizeof(st.reason_code), "%s", fmt_api_reason_name(st.reason));
		status_round_trip(&st, NULL);
	}
	/* Members this version does not know are ignored. */
	const char *newer = "{\"status\":\"pending\",\"retry_after\":5,\"queue\":{\"pos\":3}}";
	ck_assert_int_eq(fmt_api_status_parse((const uint8_t *)newer, strlen(newer), &st, NULL),
	                 IDP_OK);
	ck_assert_int_eq(st.retry_after, 5);
	free(pem);
}
END_TEST

/* The CA checked once: the same bytes as the full encoder; a broken CA is
 * refused by the check, and the checked encoder still refuses bad
 * characters and every other bad member. */
START_TEST(test_api_status_ca_checked)
{
	char *pem = make_cert_pem();
	struct fmt_api_status st;
	approved(&st, pem);
	char full[FMT_API_BODY_MAX + 1], quick[FMT_API_BODY_MAX + 1];
	size_t len = 0, len2 = 0;
	struct idp_error err;
	ck_assert_msg(fmt_api_ca_pem_check(pem, strlen(pem), &err) == IDP_OK, "%s", err.msg);
	ck_assert_int_eq(fmt_api_status_encode(&st, full, sizeof(full), &len, NULL), IDP_OK);
	ck_assert_int_eq(fmt_api_status_encode_ca_checked(&st, quick, sizeof(quick), &len2, NULL),
	                 IDP_OK);
	ck_assert_uint_eq(len, len2);
	ck_assert_str_eq(full, quick);
	/* A forged certificate (outer tag changed), a truncated one, none, too long. */
	char bad[FMT_API_CA_PEM_MAX + 2];
	snprintf(bad, sizeof(bad), "%s", pem);
	bad[28] = 'A';
	ck_assert_int_eq(fmt_api_ca_pem_check(bad, strlen(bad), &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "ca_pem"));
	ck_assert_int_ne(fmt_api_ca_pem_check(pem, strlen(pem) / 2, NULL), IDP_OK);
	ck_assert_int_eq(fmt_api_ca_pem_check(pem, 0, NULL), IDP_E_FORMAT);
	memset(bad, 'A', sizeof(bad) - 1);
	ck_assert_int_eq(fmt_api_ca_pem_check(bad, FMT_API_CA_PEM_MAX + 1, NULL), IDP_E_LIMIT);
	/* The checked encoder trusts the certificates, not the characters. */
	st.ca_pem[30] = '\x01';
	ck_assert_int_eq(fmt_api_status_encode_ca_checked(&st, quick, sizeof(quick), &len2, &err),
	                 IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "ca_pem"));
	approved(&st, pem);
	st.server_url[0] = '\0';
	ck_assert_int_eq(fmt_api_status_encode_ca_checked(&st, quick, sizeof(quick), &len2, NULL),
	                 IDP_E_FORMAT);
	approved(&st, pem);
	st.token[3] = ' ';
	ck_assert_int_eq(fmt_api_status_encode_ca_checked(&st, quick, sizeof(quick), &len2, NULL),
	                 IDP_E_FORMAT);
	fmt_api_status_wipe(&st);
	free(pem);
}
END_TEST

START_TEST(test_api_status_refusals)
{
	char *pem = make_cert_pem();
	struct fmt_api_status st;
	approved(&st, pem);
	char body[FMT_API_BODY_MAX + 1];
	size_t len = 0;
	ck_assert_int_eq(fmt_api_status_encode(&st, body, sizeof(body), &len, NULL), IDP_OK);
	char broken_pem[FMT_API_CA_PEM_MAX];
	snprintf(broken_pem, sizeof(broken_pem), "%s", pem);
	/* The DER's outer SEQUENCE tag changed: "MII" becomes "AII". */
	ck_assert_int_eq(broken_pem[28], 'M');
	broken_pem[28] = 'A';
	char broken_field[3 * FMT_API_CA_PEM_MAX];
	size_t bq = fmt_json_quote(broken_pem, strlen(broken_pem), broken_field + 9);
	memcpy(broken_field, "\"ca_pem\":", 9);
	broken_field[9 + bq] = '\0';
	const char *ca = strstr(body, "\"ca_pem\":");
	char ca_field[3 * FMT_API_CA_PEM_MAX];
	snprintf(ca_field, sizeof(ca_field), "%.*s", (int)(strlen(ca) - 1), ca);
	static const struct {
		const char *from, *to;
		const char *msg;
	} bad[] = {
		{"\"token\":\"" TOKEN "\",", "", "token: missing"},
		{"\"expires\":1800000300,", "", "expires: missing"},
		{"\"expires\":1800000300", "\"expires\":0", "expires: 0 is outside"},
		{"\"expires\":1800000300", "\"expires\":\"soon\"", "expires: expected a number"},
		{"\"status\":\"approved\"", "\"status\":\"maybe\"", "status: \"maybe\" is unknown"},
		{"\"status\":\"approved\"", "\"status\":\"Approved\"", "status: character 0x41"},
		{"\"status\":\"approved\",", "", "status: missing"},
		{"\"token_kind\":\"provisioning\"", "\"token_kind\":\"admin\"",
		 "token_kind: \"admin\" is unknown"},
		{"\"server_url\":\"https://", "\"server_url\":\"http://", "server_url: must start with "
		                                                          "https://"},
		{"\"server_url\":\"https://hub.local:8443/\",", "", "server_url: missing"},
		{"\"token\":\"", "\"token\":\"\\n", "token: character at offset 0 is not allowed"},
		{"\"token\":\"", "\"retry_after\":5,\"token\":\"",
		 "retry_after: not allowed in an approved answer"},
		{"\"token\":\"", "\"token\":\"x\",\"token\":\"", "duplicate key \"token\""},
		{"\"ca_pem\":\"-----BEGIN", "\"ca_pem\":\"junk\\n-----BEGIN",
		 "ca_pem: not a PEM certificate list"},
		{"-----END CERTIFICATE-----\\n\"", "-----END CERTIFICATE-----\\njunk\"",
		 "ca_pem: not a PEM certificate list"},
		{"\"ca_pem\":\"-----BEGIN", "\"ca_pem\":\"\\u0007-----BEGIN", "ca_pem: character 0x07"},
		{"-----END CERTIFICATE-----\\n\"", "-----END CERTIFICATE-----\\njunk\\n" "-----BEGIN "
		 "CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"",
		 "ca_pem: not a PEM certificate list (offset"},
		{"-----END CERTIFICATE-----\\n\"", "-----END CERTIFICATE-----\\n-----BEGIN "
		 "CERTIFICATE-----\\nAAAA\\n\"", "ca_pem: certificate 2 has no END line"},
		{"-----END CERTIFICATE-----\\n\"", "-----END CERTIFICATE-----\\n-----BEGIN "
		 "CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"",
		 "ca_pem: certificate 2 does not parse"},
		{"\"status\":\"approved\",", "\"status\":\"approved\",\"error\":{},",
		 "error: not allowed in an approved answer"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *b = replace(body, bad[i].from, bad[i].to);
		struct idp_error err;
		struct fmt_api_status out;
		ck_assert_msg(fmt_api_status_parse((const uint8_t *)b, strlen(b), &out, &err) !=
		                      IDP_OK,
		              "accepted %s", b);
		ck_assert_msg(strstr(err.msg, bad[i].msg) != NULL, "'%s' lacks '%s'", err.msg,
		              bad[i].msg);
		ck_assert_str_eq(out.token, ""); /* wiped */
	}
	struct idp_error err;
	struct fmt_api_status out;
	const char *b = replace(body, ca_field, broken_field);
	ck_assert_int_eq(fmt_api_status_parse((const uint8_t *)b, strlen(b), &out, &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "ca_pem: certificate 1 does not parse");
	/* Pending and rejected answers. */
	static const struct {
		const char *body, *msg;
	} bad2[] = {
		{"{\"status\":\"pending\"}", "retry_after: missing"},
		{"{\"status\":\"pending\",\"retry_after\":0}", "retry_after: 0 is outside 1..86400"},
		{"{\"status\":\"pending\",\"retry_after\":86401}", "retry_after: 86401 is outside"},
		{"{\"status\":\"pending\",\"retry_after\":30,\"token\":\"abc\"}",
		 "token: not allowed in a pending answer"},
		{"{\"status\":\"rejected\"}", "reason: missing"},
		{"{\"status\":\"rejected\",\"reason\":\"key-mismatch\"}", "reason: character 0x2d"},
		{"{\"status\":\"rejected\",\"reason\":\"revoked\",\"message\":\"a\\u001bb\"}",
		 "message: character 0x1b"},
		{"{\"status\":\"rejected\",\"reason\":\"revoked\",\"expires\":5}",
		 "expires: not allowed in a rejected answer"},
		{"{\"status\":1}", "status: expected a string"},
		{"{\"error\":{\"code\":\"internal\",\"message\":\"x\"}}", "status: missing"},
		{"\"pending\"", "body is not a JSON object"},
	};
	for (size_t i = 0; i < sizeof(bad2) / sizeof(bad2[0]); i++) {
		ck_assert_msg(fmt_api_status_parse((const uint8_t *)bad2[i].body, strlen(bad2[i].body),
		                                   &out, &err) != IDP_OK,
		              "accepted %s", bad2[i].body);
		ck_assert_msg(strstr(err.msg, bad2[i].msg) != NULL, "'%s' lacks '%s'", err.msg,
		              bad2[i].msg);
	}
	/* Encoder checks: provisioning token without its CA, a NUL-less field. */
	approved(&st, "");
	ck_assert_int_eq(fmt_api_status_encode(&st, body, sizeof(body), &len, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "ca_pem: missing");
	approved(&st, pem);
	memset(st.token, 'a', sizeof(st.token));
	ck_assert_int_eq(fmt_api_status_encode(&st, body, sizeof(body), &len, &err), IDP_E_ARG);
	ck_assert_str_eq(err.msg, "token: not NUL-terminated");
	memset(&st, 0, sizeof(st));
	st.status = FMT_API_REJECTED;
	st.reason = FMT_API_REASON_REVOKED;
	snprintf(st.reason_code, sizeof(st.reason_code), "%s", "rejected");
	ck_assert_int_eq(fmt_api_status_encode(&st, body, sizeof(body), &len, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "reason: 6 does not match \"rejected\"");
	free(pem);
}
END_TEST

START_TEST(test_api_error_messages)
{
	/* Every listed code round-trips with its HTTP status. */
	static const struct {
		enum fmt_api_err_code code;
		int http;
	} want[] = {
		{FMT_API_ERR_BAD_REQUEST, 400},  {FMT_API_ERR_INVALID_FIELD, 400},
		{FMT_API_ERR_UNSUPPORTED, 400},  {FMT_API_ERR_POP_INVALID, 401},
		{FMT_API_ERR_POP_STALE, 401},    {FMT_API_ERR_NONCE_INVALID, 401},
		{FMT_API_ERR_TOKEN_INVALID, 401}, {FMT_API_ERR_UNAUTHORIZED, 401},
		{FMT_API_ERR_FORBIDDEN, 403},    {FMT_API_ERR_NOT_FOUND, 404},
		{FMT_API_ERR_METHOD_NOT_ALLOWED, 405}, {FMT_API_ERR_TIMEOUT, 408},
		{FMT_API_ERR_CONFLICT, 409},     {FMT_API_ERR_TOO_LARGE, 413},
		{FMT_API_ERR_MEDIA_TYPE, 415},   {FMT_API_ERR_THROTTLED, 429},
		{FMT_API_ERR_INTERNAL, 500},     {FMT_API_ERR_SUSPENDED, 503},
		{FMT_API_ERR_UNAVAILABLE, 503},  {FMT_API_ERR_LENGTH_REQUIRED, 411},
		{FMT_API_ERR_HEADERS_TOO_LARGE, 431}, {FMT_API_ERR_STORAGE_FULL, 503},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ck_assert_int_eq(fmt_api_err_http_status(want[i].code), want[i].http);
		struct fmt_api_error e = {.code = want[i].code, .retry_after = 0};
		snprintf(e.code_text, sizeof(e.code_text), "%s", fmt_api_err_code_name(e.code));
		snprintf(e.message, sizeof(e.message), "%s", "mac: missing");
		char body[512];
		size_t len;
		ck_assert_int_eq(fmt_api_error_encode(&e, body, sizeof(body), &len, NULL), IDP_OK);
		struct fmt_api_answer a;
		ck_assert_int_eq(fmt_api_answer_parse((const uint8_t *)body, len, &a, NULL), IDP_OK);
		ck_assert(a.is_error);
		ck_assert_int_eq(a.error.code, want[i].code);
		ck_assert_str_eq(a.error.message, "mac: missing");
	}
	ck_assert_int_eq(fmt_api_err_http_status(FMT_API_ERR_UNKNOWN), 0);
	ck_assert_ptr_null(fmt_api_err_code_name(FMT_API_ERR_UNKNOWN));

	struct fmt_api_error e = {.code = FMT_API_ERR_THROTTLED, .retry_after = 7};
	snprintf(e.code_text, sizeof(e.code_text), "%s", "throttled");
	snprintf(e.message, sizeof(e.message), "%s", "too many requests from 192.0.2.7");
	char body[512];
	size_t len;
	ck_assert_int_eq(fmt_api_error_encode(&e, body, sizeof(body), &len, NULL), IDP_OK);
	ck_assert_str_eq(body, "{\"error\":{\"code\":\"throttled\",\"message\":\"too many requests "
	                       "from 192.0.2.7\",\"retry_after\":7}}");
	struct fmt_api_error back;
	ck_assert_int_eq(fmt_api_error_parse((const uint8_t *)body, len, &back, NULL), IDP_OK);
	ck_assert_int_eq(back.retry_after, 7);

	/* A code from a newer server is kept but cannot be sent. */
	const char *newer = "{\"error\":{\"code\":\"quota_exceeded\",\"message\":\"m\",\"n\":1}}";
	ck_assert_int_eq(fmt_api_error_parse((const uint8_t *)newer, strlen(newer), &back, NULL),
	                 IDP_OK);
	ck_assert_int_eq(back.code, FMT_API_ERR_UNKNOWN);
	ck_assert_str_eq(back.code_text, "quota_exceeded");
	struct idp_error err;
	ck_assert_int_eq(fmt_api_error_encode(&back, body, sizeof(body), &len, &err), IDP_E_ARG);
	e.code = FMT_API_ERR_CONFLICT; /* text says throttled */
	ck_assert_int_eq(fmt_api_error_encode(&e, body, sizeof(body), &len, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "error.code: 13 does not match \"throttled\"");

	static const struct {
		const char *body, *msg;
	} bad[] = {
		{"{\"error\":{\"message\":\"m\"}}", "error: code: missing"},
		{"{\"error\":{\"code\":\"internal\"}}", "error: message: missing"},
		{"{\"error\":{\"code\":\"Internal\",\"message\":\"m\"}}", "error: code: character 0x49"},
		{"{\"error\":{\"code\":\"internal\",\"message\":\"\"}}", "error: message: empty"},
		{"{\"error\":{\"code\":\"internal\",\"message\":1}}", "message: expected a string"},
		{"{\"error\":{\"code\":\"internal\",\"message\":\"m\",\"retry_after\":0}}",
		 "retry_after: 0 is outside"},
		{"{\"error\":{\"code\":\"internal\",\"code\":\"x\",\"message\":\"m\"}}",
		 "duplicate key \"code\""},
		{"{\"error\":\"internal\"}", "error: expected an object"},
		{"{\"status\":\"pending\",\"retry_after\":3}", "status: not allowed in an error"},
		{"{\"code\":\"internal\",\"message\":\"m\"}", "error: missing"},
		{"{\"error\":{\"code\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"message\":\"m\"}}",
		 "code: longer than 32"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(fmt_api_error_parse((const uint8_t *)bad[i].body, strlen(bad[i].body),
		                                  &back, &err) != IDP_OK,
		              "accepted %s", bad[i].body);
		ck_assert_msg(strstr(err.msg, bad[i].msg) != NULL, "'%s' lacks '%s'", err.msg,
		              bad[i].msg);
	}
}
END_TEST

/* body parses as an error of code whose message is want. */
static void error_parses(const char *body, size_t len, enum fmt_api_err_code code, const char *want)
{
	struct fmt_api_error e;
	struct idp_error err = {0};
	ck_assert_msg(fmt_api_error_parse((const uint8_t *)body, len, &e, &err) == IDP_OK,
	              "%s: %s", body, err.msg);
	ck_assert_int_eq(e.code, code);
	if (want != NULL)
		ck_assert_str_eq(e.message, want);
}

START_TEST(test_api_error_body_any_message)
{
	char body[FMT_API_ERROR_BODY_MAX];
	size_t len = 0;
	/* The body of issue 9: a client's member name with a newline. Before,
	 * the server sent it raw and its own parser refused the answer. */
	static const char nl[] = "unknown field \"a\nb\"";
	ck_assert_int_eq(fmt_api_error_body(FMT_API_ERR_INVALID_FIELD, nl, strlen(nl), 0, body,
	                                    sizeof(body), &len, NULL),
	                 IDP_OK);
	ck_assert_str_eq(body, "{\"error\":{\"code\":\"invalid_field\",\"message\":\"unknown "
	                       "field \\\"a\\\\x0ab\\\"\"}}");
	ck_assert_uint_eq(len, strlen(body));
	error_parses(body, len, FMT_API_ERR_INVALID_FIELD, "unknown field \"a\\x0ab\"");
	/* NUL, DEL, C0 controls, broken and overlong UTF-8, a surrogate: escaped;
	 * valid UTF-8 kept. */
	static const char mixed[] = "a\0b\x7f\x1b\xc3\xa9\xff\xc3(\xc0\xaf\xed\xa0\x80z";
	ck_assert_int_eq(fmt_api_error_body(FMT_API_ERR_BAD_REQUEST, mixed, sizeof(mixed) - 1, 0,
	                                    body, sizeof(body), &len, NULL),
	                 IDP_OK);
	error_parses(body, len, FMT_API_ERR_BAD_REQUEST,
	             "a\\x00b\\x7f\\x1b\xc3\xa9\\xff\\xc3(\\xc0\\xaf\\xed\\xa0\\x80z");
	/* Empty: the code's name. */
	ck_assert_int_eq(fmt_api_error_body(FMT_API_ERR_INTERNAL, NULL, 0, 0, body, sizeof(body),
	                                    &len, NULL),
	                 IDP_OK);
	error_parses(body, len, FMT_API_ERR_INTERNAL, "internal");
	/* Too long, even after escaping: cut on a character boundary, "...". */
	char big[1000];
	for (size_t i = 0; i < sizeof(big); i += 2) {
		big[i] = '\xc3';
		big[i + 1] = '\xa9';
	}
	ck_assert_int_eq(fmt_api_error_body(FMT_API_ERR_CONFLICT, big, sizeof(big), 0, body,
	                                    sizeof(body), &len, NULL),
	                 IDP_OK);
	struct fmt_api_error e;
	ck_assert_int_eq(fmt_api_error_parse((const uint8_t *)body, len, &e, NULL), IDP_OK);
	ck_assert_uint_eq(strlen(e.message), 2 * 126 + 3);
	ck_assert_str_eq(e.message + 2 * 126, "...");
	memset(big, '\n', sizeof(big));
	ck_assert_int_eq(fmt_api_error_body(FMT_API_ERR_CONFLICT, big, sizeof(big), 7, body,
	                                    sizeof(body), &len, NULL),
	                 IDP_OK);
	ck_assert_int_eq(fmt_api_error_parse((const uint8_t *)body, len, &e, NULL), IDP_OK);
	ck_assert_uint_eq(strlen(e.message), 4 * 63 + 3);
	ck_assert_int_eq(e.retry_after, 7);
	/* The struct encoder writes the same. */
	struct fmt_api_error s = {.code = FMT_API_ERR_FORBIDDEN};
	snprintf(s.code_text, sizeof(s.code_text), "forbidden");
	snprintf(s.message, sizeof(s.message), "tab\there");
	ck_assert_int_eq(fmt_api_error_encode(&s, body, sizeof(body), &len, NULL), IDP_OK);
	error_parses(body, len, FMT_API_ERR_FORBIDDEN, "tab\\x09here");
	/* Refused: what no message can fix. */
	struct idp_error err;
	ck_assert_int_eq(fmt_api_error_body(FMT_API_ERR_UNKNOWN, "m", 1, 0, body, sizeof(body), &len,
	                                    &err),
	                 IDP_E_ARG);
	ck_assert_int_eq(fmt_api_error_body((enum fmt_api_err_code)99, "m", 1, 0, body,
	                                    sizeof(body), &len, &err),
	                 IDP_E_ARG);
	ck_assert_int_eq(fmt_api_error_body(FMT_API_ERR_THROTTLED, "m", 1, FMT_API_RETRY_MAX + 1,
	                                    body, sizeof(body), &len, &err),
	                 IDP_E_ARG);
	ck_assert_int_eq(fmt_api_error_body(FMT_API_ERR_THROTTLED, "m", 1, 0, body, 20, &len, &err),
	                 IDP_E_LIMIT);
}
END_TEST

START_TEST(test_api_err_of_one_map)
{
	/* Every failure maps to a code that has a name and an HTTP status. */
	for (int rc = IDP_E_FULL; rc <= IDP_E_NOMEM; rc++) {
		for (int o = FMT_API_ORIGIN_SERVER; o <= FMT_API_ORIGIN_AUTH; o++) {
			enum fmt_api_err_code c =
			        fmt_api_err_of((enum idp_err)rc, (enum fmt_api_err_origin)o);
			ck_assert_ptr_nonnull(fmt_api_err_code_name(c));
			ck_assert_int_ge(fmt_api_err_http_status(c), 400);
		}
	}
	static const struct {
		enum idp_err rc;
		enum fmt_api_err_origin origin;
		enum fmt_api_err_code code;
	} want[] = {
		{IDP_E_FORMAT, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INVALID_FIELD},
		{IDP_E_LIMIT, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INVALID_FIELD},
		{IDP_E_UNSUPPORTED, FMT_API_ORIGIN_SERVER, FMT_API_ERR_UNSUPPORTED},
		{IDP_E_NOMEM, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INTERNAL},
		{IDP_E_IO, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INTERNAL},
		{IDP_E_CRYPTO, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INTERNAL},
		{IDP_E_AGAIN, FMT_API_ORIGIN_SERVER, FMT_API_ERR_UNAVAILABLE},
		{IDP_E_SUSPENDED, FMT_API_ORIGIN_SERVER, FMT_API_ERR_SUSPENDED},
		{IDP_E_SUSPENDED, FMT_API_ORIGIN_AUTH, FMT_API_ERR_SUSPENDED},
		{IDP_E_FULL, FMT_API_ORIGIN_SERVER, FMT_API_ERR_STORAGE_FULL},
		{IDP_E_FULL, FMT_API_ORIGIN_POP, FMT_API_ERR_STORAGE_FULL},
		{IDP_E_NOTFOUND, FMT_API_ORIGIN_SERVER, FMT_API_ERR_NOT_FOUND},
		{IDP_E_DUPLICATE, FMT_API_ORIGIN_SERVER, FMT_API_ERR_CONFLICT},
		{IDP_E_CONFLICT, FMT_API_ORIGIN_SERVER, FMT_API_ERR_CONFLICT},
		{IDP_E_VERIFY, FMT_API_ORIGIN_SERVER, FMT_API_ERR_FORBIDDEN},
		{IDP_E_DENIED, FMT_API_ORIGIN_SERVER, FMT_API_ERR_FORBIDDEN},
		{IDP_E_VERIFY, FMT_API_ORIGIN_POP, FMT_API_ERR_POP_INVALID},
		{IDP_E_EXPIRED, FMT_API_ORIGIN_POP, FMT_API_ERR_POP_STALE},
		{IDP_E_DENIED, FMT_API_ORIGIN_POP, FMT_API_ERR_POP_INVALID},
		{IDP_E_FORMAT, FMT_API_ORIGIN_POP, FMT_API_ERR_INVALID_FIELD},
		{IDP_E_UNSUPPORTED, FMT_API_ORIGIN_POP, FMT_API_ERR_UNSUPPORTED},
		{IDP_E_DENIED, FMT_API_ORIGIN_AUTH, FMT_API_ERR_UNAUTHORIZED},
		{IDP_E_VERIFY, FMT_API_ORIGIN_AUTH, FMT_API_ERR_FORBIDDEN},
		{IDP_OK, FMT_API_ORIGIN_SERVER, FMT_API_ERR_INTERNAL},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(fmt_api_err_of(want[i].rc, want[i].origin) == want[i].code,
		              "row %zu: %s", i, fmt_api_err_code_name(want[i].code));
}
END_TEST

START_TEST(test_api_nonce_and_batch)
{
	struct fmt_api_nonce n = {.time = NOW, .expires = NOW + 60};
	memcpy(n.nonce, nonce_1, sizeof(n.nonce));
	char body[512];
	size_t len;
	ck_assert_int_eq(fmt_api_nonce_encode(&n, body, sizeof(body), &len, NULL), IDP_OK);
	ck_assert_str_eq(body, "{\"nonce\":\"AQIDBAUGBwgJCgAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\","
	                       "\"time\":1800000000,\"expires\":1800000060}");
	struct fmt_api_nonce nb;
	ck_assert_int_eq(fmt_api_nonce_parse((const uint8_t *)body, len, &nb, NULL), IDP_OK);
	ck_assert_mem_eq(nb.nonce, nonce_1, FMT_API_NONCE_LEN);
	ck_assert_int_eq(nb.expires, NOW + 60);
	ck_assert_int_eq(nb.time, NOW);
	struct idp_error err;
	const char *b = replace(body, "AQID", "AQ");
	ck_assert_int_eq(fmt_api_nonce_parse((const uint8_t *)b, strlen(b), &nb, &err), IDP_E_FORMAT);
	b = replace(body, "=\"", "\"");
	ck_assert_int_eq(fmt_api_nonce_parse((const uint8_t *)b, strlen(b), &nb, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "nonce: base64: length 43 is not a multiple of 4");
	b = replace(body, "AAA=\"", "AA==\"");
	ck_assert_int_eq(fmt_api_nonce_parse((const uint8_t *)b, strlen(b), &nb, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "nonce: 31 bytes, expected 32");
	b = replace(body, "\"expires\":1800000060", "\"expires\":true");
	ck_assert_int_eq(fmt_api_nonce_parse((const uint8_t *)b, strlen(b), &nb, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "expires: expected a number");
	b = replace(body, "\"expires\":1800000060", "\"expires\":1799999999");
	ck_assert_int_eq(fmt_api_nonce_parse((const uint8_t *)b, strlen(b), &nb, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "expires: 1799999999 is outside 1800000000..253402300799");
	b = replace(body, "\"time\":1800000000,", "");
	ck_assert_int_eq(fmt_api_nonce_parse((const uint8_t *)b, strlen(b), &nb, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "time: missing");
	n.expires = 0;
	ck_assert_int_eq(fmt_api_nonce_encode(&n, body, sizeof(body), &len, &err), IDP_E_FORMAT);

	struct fmt_api_batch bt = {.sequence = 42, .devices = 100000, .created = true};
	snprintf(bt.batch_id, sizeof(bt.batch_id), "%s", "st1-000042");
	ck_assert_int_eq(fmt_api_batch_encode(&bt, body, sizeof(body), &len, NULL), IDP_OK);
	ck_assert_str_eq(body, "{\"batch_id\":\"st1-000042\",\"sequence\":42,\"devices\":100000,"
	                       "\"created\":true,\"gap\":false}");
	struct fmt_api_batch bb;
	ck_assert_int_eq(fmt_api_batch_parse((const uint8_t *)body, len, &bb, NULL), IDP_OK);
	ck_assert_str_eq(bb.batch_id, "st1-000042");
	ck_assert(bb.sequence == 42 && bb.devices == 100000 && bb.created && !bb.gap);
	static const struct {
		const char *from, *to, *msg;
	} bad[] = {
		{"\"devices\":100000", "\"devices\":-1", "devices: -1 is outside"},
		{"\"created\":true", "\"created\":1", "created: expected true or false"},
		{"\"gap\":false", "\"gap\":null", "gap: expected true or false"},
		{"\"batch_id\":\"st1-000042\"", "\"batch_id\":\"st1/42\"", "batch_id: byte 0x2f"},
		{"\"sequence\":42,", "", "sequence: missing"},
		{"\"gap\":false", "\"gap\":false,\"gap\":true", "duplicate key \"gap\""},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = replace(body, bad[i].from, bad[i].to);
		ck_assert_msg(fmt_api_batch_parse((const uint8_t *)b, strlen(b), &bb, &err) != IDP_OK,
		              "accepted %s", b);
		ck_assert_msg(strstr(err.msg, bad[i].msg) != NULL, "'%s' lacks '%s'", err.msg,
		              bad[i].msg);
	}
	bt.devices = -5;
	ck_assert_int_eq(fmt_api_batch_encode(&bt, body, sizeof(body), &len, &err), IDP_E_FORMAT);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_api_check_id);
	tcase_add_test(tc, test_api_request_round_trip);
	tcase_add_test(tc, test_api_request_exact_json);
	tcase_add_test(tc, test_api_request_refusals);
	tcase_add_test(tc, test_api_pop_verify);
	tcase_add_test(tc, test_api_request_accept);
	tcase_add_test(tc, test_api_request_accept_key);
	tcase_add_test(tc, test_api_request_check_signer);
	tcase_add_loop_test(tc, test_api_request_refuses_weak_ed25519_keys, 0,
	                    IDP_TEST_SMALL_ORDER_N + IDP_TEST_NONCANONICAL_N);
	tcase_add_test(tc, test_api_pop_high_s_refused);
	tcase_add_test(tc, test_api_pop_vector);
	tcase_add_test(tc, test_api_pop_message_max);
	tcase_add_test(tc, test_api_pop_over_tls);
	tcase_add_test(tc, test_api_status_round_trip);
	tcase_add_test(tc, test_api_status_refusals);
	tcase_add_test(tc, test_api_status_ca_checked);
	tcase_add_test(tc, test_api_error_messages);
	tcase_add_test(tc, test_api_error_body_any_message);
	tcase_add_test(tc, test_api_err_of_one_map);
	tcase_add_test(tc, test_api_nonce_and_batch);
	suite_add_tcase(s, tc);
	return s;
}
