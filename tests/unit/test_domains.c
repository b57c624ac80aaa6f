/*
 * test_domains.c - domain separation between everything one key may sign: a
 * device key signs wire proofs (wire.h) and API proofs of possession (api.h);
 * tokens (token.h) and manifests (manifest_sig.h) are signed by server and
 * station keys, which a careless deployment could share with a device. A
 * signature made for one purpose must never verify as another, even when the
 * attacker chooses the free inputs: a rogue station picks the wire challenge
 * nonce, and may pick it equal to the TLS exporter of its own connection to
 * the server, hoping the device's wire proof passes as an API proof.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "formats/api.h"
#include "formats/pop.h"
#include "formats/b64.h"
#include "formats/manifest_sig.h"
#include "formats/token.h"
#include "formats/wire.h"
#include "tests/unit/check_main.h"

#define NOW 1800000000LL

static const uint8_t mac_1[FMT_MAC_LEN] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x01};

/* The identity a device shows both to the station and to the server. */
static void identity(const struct fmt_key *key, struct fmt_wire_info *info,
                     struct fmt_api_request *req, enum fmt_api_purpose purpose)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->device_id, sizeof(info->device_id), "%s", "dev-0001");
	info->device_id_len = 8;
	memcpy(info->mac, mac_1, FMT_MAC_LEN);
	info->key_type = fmt_key_type(key);
	ck_assert_int_eq(fmt_key_spki_der(key, info->spki, &info->spki_len, NULL), IDP_OK);
	memset(req, 0, sizeof(*req));
	req->purpose = purpose;
	snprintf(req->device_id, sizeof(req->device_id), "%s", "dev-0001");
	memcpy(req->mac, mac_1, FMT_MAC_LEN);
	if (purpose == FMT_API_PROVISION)
		snprintf(req->agent_version, sizeof(req->agent_version), "%s", "1.2.3");
	else
		snprintf(req->token, sizeof(req->token), "%s", "aaa.bbb.ccc");
}

/* The wire proof of a challenge whose nonce is the attacker's exporter. */
static void wire_sig(const struct fmt_key *key, const struct fmt_wire_info *info,
                     const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                     struct fmt_wire_challenge *ch, struct fmt_wire_proof *proof)
{
	memset(ch, 0, sizeof(*ch));
	memcpy(ch->nonce, exporter, FMT_WIRE_NONCE_LEN);
	snprintf(ch->station_id, sizeof(ch->station_id), "%s", "st-1");
	ch->station_id_len = 4;
	ck_assert_int_eq(fmt_wire_proof_sign(key, ch, info, proof, NULL), IDP_OK);
	ck_assert_int_eq(fmt_wire_proof_verify(ch, info, proof, NULL), IDP_OK);
}

START_TEST(test_domains_wire_proof_and_api_pop_are_apart)
{
	static const enum fmt_key_type types[] = {FMT_KEY_P256, FMT_KEY_ED25519};
	static const enum fmt_api_purpose purposes[] = {FMT_API_PROVISION, FMT_API_EXCHANGE,
	                                                FMT_API_RENEW};
	struct fmt_key *key = NULL;
	ck_assert_int_eq(fmt_key_generate(types[_i], &key, NULL), IDP_OK);
	uint8_t exporter[FMT_API_EXPORTER_LEN];
	memset(exporter, 0xa5, sizeof(exporter));
	for (size_t p = 0; p < 3; p++) {
		struct fmt_wire_info info;
		struct fmt_api_request req;
		struct fmt_wire_challenge ch;
		struct fmt_wire_proof proof;
		identity(key, &info, &req, purposes[p]);
		wire_sig(key, &info, exporter, &ch, &proof);
		/* The signed byte strings differ from their first domain byte on. */
		uint8_t wm[FMT_WIRE_PROOF_MSG_MAX], am[FMT_API_POP_MSG_MAX];
		size_t wl = 0, al = 0;
		ck_assert_int_eq(fmt_wire_proof_message(&ch, &info, wm, &wl, NULL), IDP_OK);
		ck_assert_int_eq(fmt_api_pop_sign(&req, key, exporter, NOW, NULL, NULL), IDP_OK);
		ck_assert_int_eq(fmt_api_pop_message(&req, exporter, am, &al, NULL), IDP_OK);
		ck_assert_int_ne(memcmp(wm, am, wl < al ? wl : al), 0);
		/* Wire proof offered as the API proof, with and without the nonce. */
		struct fmt_api_request forged = req;
		memcpy(forged.pop.sig, proof.sig, FMT_KEY_RAW_SIG_LEN);
		struct idp_error err;
		ck_assert_int_eq(fmt_api_pop_verify(&forged, exporter, NOW, 60, &err), IDP_E_VERIFY);
		forged.pop.has_nonce = true;
		memcpy(forged.pop.nonce, exporter, FMT_API_NONCE_LEN);
		ck_assert_int_eq(fmt_api_pop_verify(&forged, exporter, NOW, 60, &err), IDP_E_VERIFY);
		/* And the API proof offered as a wire proof. */
		struct fmt_wire_proof back;
		memcpy(back.sig, req.pop.sig, FMT_WIRE_SIG_LEN);
		ck_assert_int_eq(fmt_wire_proof_verify(&ch, &info, &back, &err), IDP_E_VERIFY);
	}
	fmt_key_free(key);
}
END_TEST

/* Tokens and ed25519 manifests signed with the device's own key (a shared
 * key by mistake) still do not yield an API proof, nor the reverse. */
START_TEST(test_domains_token_and_manifest_are_apart_from_pop)
{
	struct fmt_key *key = NULL;
	ck_assert_int_eq(fmt_key_generate(_i ? FMT_KEY_ED25519 : FMT_KEY_P256, &key, NULL),
	                 IDP_OK);
	uint8_t exporter[FMT_API_EXPORTER_LEN];
	memset(exporter, 0x3c, sizeof(exporter));
	struct fmt_wire_info info;
	struct fmt_api_request req;
	identity(key, &info, &req, FMT_API_RENEW);
	ck_assert_int_eq(fmt_api_pop_sign(&req, key, exporter, NOW, NULL, NULL), IDP_OK);

	/* A token signed by the key: its signature as a PoP. */
	struct fmt_token_claims c;
	memset(&c, 0, sizeof(c));
	snprintf(c.iss, sizeof(c.iss), "%s", "https://idprovd.local");
	snprintf(c.aud, sizeof(c.aud), "%s", "idprov");
	snprintf(c.sub, sizeof(c.sub), "%s", "dev-0001");
	ck_assert_int_eq(fmt_token_jkt(key, c.jkt, NULL), IDP_OK);
	c.kind = FMT_TOKEN_DEVICE;
	char *tok = NULL;
	size_t tlen = 0;
	ck_assert_int_eq(fmt_token_sign(key, "k1", &c, NOW, 0, NULL, &tok, &tlen, NULL), IDP_OK);
	const char *dot = strrchr(tok, '.');
	ck_assert_ptr_nonnull(dot);
	size_t got = 0;
	struct fmt_api_request forged = req;
	ck_assert_int_eq(fmt_b64_decode(FMT_B64_URL, dot + 1, strlen(dot + 1), forged.pop.sig,
	                                sizeof(forged.pop.sig), &got, NULL),
	                 IDP_OK);
	struct idp_error err;
	ck_assert_int_eq(fmt_api_pop_verify(&forged, exporter, NOW, 60, &err), IDP_E_VERIFY);

	/* The PoP signature spliced into that token. */
	char sig64[FMT_KEY_RAW_SIG_LEN * 2];
	fmt_b64_encode(FMT_B64_URL, req.pop.sig, FMT_KEY_RAW_SIG_LEN, sig64);
	size_t head = (size_t)(dot - tok) + 1;
	char spliced[FMT_TOKEN_MAX + 1];
	ck_assert_int_lt(snprintf(spliced, sizeof(spliced), "%.*s%s", (int)head, tok, sig64),
	                 (int)sizeof(spliced));
	struct fmt_token_key ks = {"k1", key};
	struct fmt_token_policy pol = {"https://idprovd.local", "idprov", NULL, NULL,
	                               FMT_TOKEN_DEVICE, NOW};
	enum fmt_token_check chk = FMT_TOKEN_CHECK_OK;
	ck_assert_int_eq(fmt_token_verify((const uint8_t *)tok, tlen, &ks, 1, &pol, NULL, &chk,
	                                  NULL),
	                 IDP_OK);
	ck_assert_int_ne(fmt_token_verify((const uint8_t *)spliced, strlen(spliced), &ks, 1, &pol,
	                                  NULL, &chk, &err),
	                 IDP_OK);
	ck_assert_int_eq(chk, FMT_TOKEN_CHECK_SIGNATURE);
	fmt_token_free(tok);

	/* A manifest signature by the key (ed25519 signs SHA-256(body), 32
	 * bytes; es256 the body) as a PoP, and the PoP as a manifest signature. */
	static const char body[] = "{\"v\":1}\n";
	enum fmt_manifest_sig kind = _i ? FMT_MANIFEST_SIG_ED25519 : FMT_MANIFEST_SIG_ES256;
	uint8_t *msig = NULL;
	size_t mlen = 0;
	ck_assert_int_eq(fmt_manifest_sign(kind, key, NULL, NULL, (const uint8_t *)body,
	                                   sizeof(body) - 1, &msig, &mlen, NULL),
	                 IDP_OK);
	if (mlen == FMT_KEY_RAW_SIG_LEN) {
		forged = req;
		memcpy(forged.pop.sig, msig, FMT_KEY_RAW_SIG_LEN);
		ck_assert_int_eq(fmt_api_pop_verify(&forged, exporter, NOW, 60, &err),
		                 IDP_E_VERIFY);
	}
	free(msig);
	uint8_t digest[SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)body, sizeof(body) - 1, digest);
	ck_assert_int_eq(fmt_key_verify(key, FMT_SIG_RAW, digest, sizeof(digest), req.pop.sig,
	                                FMT_KEY_RAW_SIG_LEN, NULL),
	                 IDP_E_VERIFY);
	fmt_key_free(key);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("domains");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, test_domains_wire_proof_and_api_pop_are_apart, 0, 2);
	tcase_add_loop_test(tc, test_domains_token_and_manifest_are_apart_from_pop, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}
