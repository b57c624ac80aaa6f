/*
 * fuzz_token.c - libFuzzer target for the token parser and verifier, with a
 * fixed key set (an Ed25519 and a P-256 key, fixed so runs are repeatable).
 *
 * The first byte picks what the rest is:
 *   0: a whole token, verified and decoded unverified;
 *   1: a payload, signed under the standard EdDSA header, then verified (so
 *      the claim checks behind the signature are reached);
 *   2: header, 0xff, payload: signed by the Ed25519 key, then verified (so
 *      the header checks and the alg/key pairing are reached).
 * Invariants (abort on violation): no crash or leak; a token that verifies
 * also decodes unverified to the same claims; re-signing the claims of a
 * verified token gives a token that verifies to the same claims; what
 * verifies has the policy's issuer and audience and is within its times.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/b64.h"
#include "formats/keys.h"
#include "formats/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1800000000LL

/* RFC 8032 test 1 secret key. */
static const uint8_t ed_secret[32] = {0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60,
                                      0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
                                      0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19,
                                      0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};

/* A fixed test-only P-256 key. */
static const char es_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                             "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAKQxLwSgGnNE16Lp\n"
                             "frNgEAqRog6EXFzElZuf/+1TxgmhRANCAARNwdG7msrPZJLSDLrCM+MEa1zTV0jZ\n"
                             "WzxgaihfDTKMtuPVAyi9AXvK4A4B8X7PhyewBKeRV3LH5IZFnSQZSqAx\n"
                             "-----END PRIVATE KEY-----\n";

static struct fmt_token_key keys[2];

static void init_keys(void)
{
	if (keys[0].key != NULL)
		return;
	struct fmt_key *es = NULL, *ed = NULL;
	EVP_PKEY *e = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, ed_secret, 32);
	if (e == NULL || fmt_key_from_evp(e, &ed, NULL) != IDP_OK ||
	    fmt_key_parse_private_pem((const uint8_t *)es_pem, sizeof(es_pem) - 1, &es, NULL) !=
	            IDP_OK)
		abort();
	EVP_PKEY_free(e);
	keys[0] = (struct fmt_token_key){"ed-1", ed};
	keys[1] = (struct fmt_token_key){"es-1", es};
}

static const struct fmt_token_policy policy = {
        .iss = "https://idprovd.local:8443",
        .aud = "idprov",
        .kinds = FMT_TOKEN_PROVISION | FMT_TOKEN_DEVICE,
        .now = NOW,
};

/* header.payload signed by the Ed25519 key into a new string. */
static char *sign_parts(const uint8_t *h, size_t hn, const uint8_t *p, size_t pn)
{
	size_t eh = fmt_b64_encoded_len(FMT_B64_URL, hn), ep = fmt_b64_encoded_len(FMT_B64_URL, pn);
	char *t = malloc(eh + ep + 2 + 87);
	if (t == NULL)
		abort();
	fmt_b64_encode(FMT_B64_URL, h, hn, t);
	t[eh] = '.';
	fmt_b64_encode(FMT_B64_URL, p, pn, t + eh + 1);
	t[eh + 1 + ep] = '.';
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t sn = 0;
	if (fmt_key_sign(keys[0].key, FMT_SIG_RAW, (const uint8_t *)t, eh + 1 + ep, sig, &sn,
	                 NULL) != IDP_OK)
		abort();
	fmt_b64_encode(FMT_B64_URL, sig, sn, t + eh + 2 + ep);
	return t;
}

static void check(const uint8_t *tok, size_t len)
{
	struct fmt_token_claims c, d;
	enum fmt_token_check chk;
	enum idp_err rc = fmt_token_verify(tok, len, keys, 2, &policy, &c, &chk, NULL);
	if ((rc == IDP_OK) != (chk == FMT_TOKEN_CHECK_OK))
		abort();
	if (fmt_token_decode_unverified(tok, len, &d, NULL) == IDP_OK)
		(void)fmt_token_renew_at(&d);
	if (rc != IDP_OK)
		return;
	if (fmt_token_decode_unverified(tok, len, &d, NULL) != IDP_OK ||
	    memcmp(&c, &d, sizeof(c)) != 0)
		abort();
	/* What verified has the policy's issuer and audience and is in time. */
	if (strcmp(c.iss, policy.iss) != 0 || strcmp(c.aud, policy.aud) != 0 ||
	    c.nbf > NOW + FMT_TOKEN_SKEW || NOW - FMT_TOKEN_SKEW >= c.exp)
		abort();
	/* Re-sign the same claims (same jti and times) with the Ed25519 key:
	 * whatever verifies, the signer makes (it writes nbf = iat only). */
	if (c.nbf != c.iat)
		return;
	struct fmt_token_claims again = c;
	char *t2 = NULL;
	size_t n2 = 0;
	if (fmt_token_sign(keys[0].key, "ed-1", &again, c.iat, c.exp - c.iat, c.jti, &t2, &n2,
	                   NULL) != IDP_OK)
		abort();
	if (fmt_token_verify((const uint8_t *)t2, n2, keys, 2, &policy, &d, NULL, NULL) != IDP_OK ||
	    memcmp(&c, &d, sizeof(c)) != 0)
		abort();
	fmt_token_free(t2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init_keys();
	if (size == 0 || size > 2 * (size_t)FMT_TOKEN_MAX)
		return 0;
	uint8_t mode = data[0] % 3;
	data++;
	size--;
	if (mode == 0) {
		check(data, size);
		return 0;
	}
	static const char hdr[] = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\"}";
	const uint8_t *h = (const uint8_t *)hdr, *p = data;
	size_t hn = sizeof(hdr) - 1, pn = size;
	if (mode == 2) {
		const uint8_t *sep = memchr(data, 0xff, size);
		if (sep == NULL)
			return 0;
		h = data;
		hn = (size_t)(sep - data);
		p = sep + 1;
		pn = size - hn - 1;
	}
	char *t = sign_parts(h, hn, p, pn);
	check((const uint8_t *)t, strlen(t));
	free(t);
	return 0;
}
