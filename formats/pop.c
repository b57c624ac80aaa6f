/*
 * pop.c - see pop.h. Spec: formats/api.md §5 (the signed bytes, checks in
 * order).
 */
#include "formats/pop.h"

#include <string.h>

#include <openssl/sha.h>

#define POP_CONTEXT "idprov-pop"
#define POP_VERSION 1u
#define SKEW_MAX    86400 /* most max_skew a verifier may pass */

static enum idp_err put_hash(uint8_t *out, size_t *o, const char *s, const char *what,
                             struct idp_error *err)
{
	size_t n = strlen(s);
	if (n == 0) {
		out[(*o)++] = 0;
		return IDP_OK;
	}
	out[(*o)++] = FMT_API_HASH_LEN;
	if (SHA256((const unsigned char *)s, n, out + *o) == NULL)
		return idp_error_ssl(err, IDP_E_CRYPTO, "pop: hash %s", what);
	*o += FMT_API_HASH_LEN;
	return IDP_OK;
}

/* WARNING: a caller whose SSL_export_keying_material failed and who passes
 * its zeroed buffer on binds every proof to one value shared by all
 * connections, and a relay passes; a real exporter is never all zero. */
static enum idp_err check_exporter(const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                                   struct idp_error *err)
{
	uint8_t any = 0;
	for (size_t i = 0; i < FMT_API_EXPORTER_LEN; i++)
		any |= exporter[i];
	if (any == 0)
		return idp_error_set(err, IDP_E_ARG,
		                     "pop: tls exporter is all zero (not read from the connection?)");
	return IDP_OK;
}

/* The signed bytes of a checked request (layout: formats/api.md). */
static enum idp_err build_pop(const struct fmt_api_request *r,
                              const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                              uint8_t out[static FMT_API_POP_MSG_MAX], size_t *len,
                              struct idp_error *err)
{
	size_t o = 0;
	*len = 0;
	enum idp_err rc = check_exporter(exporter, err);
	if (rc != IDP_OK)
		return rc;
	memcpy(out, POP_CONTEXT, sizeof(POP_CONTEXT)); /* with its NUL */
	o += sizeof(POP_CONTEXT);
	out[o++] = POP_VERSION;
	out[o++] = (uint8_t)r->purpose;
	memcpy(out + o, exporter, FMT_API_EXPORTER_LEN);
	o += FMT_API_EXPORTER_LEN;
	uint64_t ts = (uint64_t)r->pop.ts;
	for (int i = 7; i >= 0; i--)
		out[o++] = (uint8_t)(ts >> (8 * i));
	out[o++] = r->pop.has_nonce ? FMT_API_NONCE_LEN : 0;
	if (r->pop.has_nonce) {
		memcpy(out + o, r->pop.nonce, FMT_API_NONCE_LEN);
		o += FMT_API_NONCE_LEN;
	}
	size_t n = strlen(r->device_id);
	out[o++] = (uint8_t)n;
	memcpy(out + o, r->device_id, n);
	o += n;
	memcpy(out + o, r->mac, FMT_MAC_LEN);
	o += FMT_MAC_LEN;
	out[o++] = (uint8_t)r->key_type;
	if (SHA256(r->spki, r->spki_len, out + o) == NULL)
		return idp_error_ssl(err, IDP_E_CRYPTO, "pop: hash public key");
	o += FMT_API_HASH_LEN;
	n = strlen(r->agent_version);
	out[o++] = (uint8_t)n;
	memcpy(out + o, r->agent_version, n);
	o += n;
	/* The out-of-band proof itself (it is already a MAC, not a secret). */
	out[o++] = r->has_oob_proof ? FMT_API_OOB_PROOF_LEN : 0;
	if (r->has_oob_proof) {
		memcpy(out + o, r->oob_proof, FMT_API_OOB_PROOF_LEN);
		o += FMT_API_OOB_PROOF_LEN;
	}
	rc = put_hash(out, &o, r->token, "token", err);
	if (rc == IDP_OK)
		*len = o;
	return rc;
}

enum idp_err fmt_api_pop_message(const struct fmt_api_request *req,
                                 const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                                 uint8_t out[static FMT_API_POP_MSG_MAX], size_t *len,
                                 struct idp_error *err)
{
	*len = 0;
	enum idp_err rc = fmt_api_request_check(req, NULL, err);
	if (rc != IDP_OK)
		return rc;
	return build_pop(req, exporter, out, len, err);
}

enum idp_err fmt_api_pop_sign(struct fmt_api_request *req, const struct fmt_key *key,
                              const uint8_t exporter[static FMT_API_EXPORTER_LEN], int64_t ts,
                              const uint8_t *nonce, struct idp_error *err)
{
	memset(req->pop.sig, 0, sizeof(req->pop.sig));
	if (!fmt_key_has_private(key))
		return idp_error_set(err, IDP_E_ARG, "pop: key has no private half");
	enum idp_err rc = fmt_key_spki_der(key, req->spki, &req->spki_len, err);
	if (rc != IDP_OK)
		return rc;
	req->key_type = fmt_key_type(key);
	req->pop.ts = ts;
	req->pop.has_nonce = nonce != NULL;
	if (nonce != NULL)
		memcpy(req->pop.nonce, nonce, FMT_API_NONCE_LEN);
	else
		memset(req->pop.nonce, 0, FMT_API_NONCE_LEN);
	uint8_t msg[FMT_API_POP_MSG_MAX];
	size_t mlen = 0;
	/* The key's own SPKI needs no parse (fmt_api_request_encode, which
	 * every request passes before it is sent, checks it as a parser does). */
	rc = fmt_api_request_check_signer(req, key, err);
	if (rc == IDP_OK)
		rc = build_pop(req, exporter, msg, &mlen, err);
	if (rc != IDP_OK)
		return rc;
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t slen = 0;
	rc = fmt_key_sign(key, FMT_SIG_RAW, msg, mlen, sig, &slen, err);
	if (rc == IDP_OK && slen != FMT_KEY_RAW_SIG_LEN)
		rc = idp_error_set(err, IDP_E_CRYPTO, "pop: signature is %zu bytes", slen);
	if (rc == IDP_OK)
		memcpy(req->pop.sig, sig, FMT_KEY_RAW_SIG_LEN);
	return rc;
}

static enum idp_err check_clock(const uint8_t exporter[static FMT_API_EXPORTER_LEN], int64_t now,
                                int64_t max_skew, struct idp_error *err)
{
	if (check_exporter(exporter, err) != IDP_OK)
		return IDP_E_ARG;
	if (now < 0 || now > FMT_API_TIME_MAX || max_skew < 0 || max_skew > SKEW_MAX)
		return idp_error_set(err, IDP_E_ARG, "pop: now %lld or max skew %lld out of range",
		                     (long long)now, (long long)max_skew);
	return IDP_OK;
}

/* Time window and signature of a checked request, key being its public key. */
static enum idp_err verify_checked(const struct fmt_api_request *req, const struct fmt_key *key,
                                   const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                                   int64_t now, int64_t max_skew, struct idp_error *err)
{
	enum idp_err rc = IDP_OK;
	/* Time first: it is cheap, and a stale proof is refused without crypto. */
	int64_t age = now - req->pop.ts;
	if (age > max_skew)
		rc = idp_error_set(err, IDP_E_EXPIRED, "pop: timestamp is %lld s old, max skew %lld s",
		                   (long long)age, (long long)max_skew);
	else if (-age > max_skew)
		rc = idp_error_set(err, IDP_E_EXPIRED,
		                   "pop: timestamp is %lld s in the future, max skew %lld s",
		                   (long long)-age, (long long)max_skew);
	uint8_t msg[FMT_API_POP_MSG_MAX];
	size_t mlen = 0;
	if (rc == IDP_OK)
		rc = build_pop(req, exporter, msg, &mlen, err);
	/* One signature, one spelling: the twin (r, n - s) of a proof is refused. */
	if (rc == IDP_OK && fmt_key_sig_high_s(key, req->pop.sig, FMT_KEY_RAW_SIG_LEN))
		rc = idp_error_set(err, IDP_E_VERIFY, "pop: ecdsa signature is not low-s");
	if (rc == IDP_OK &&
	    fmt_key_verify(key, FMT_SIG_RAW, msg, mlen, req->pop.sig, FMT_KEY_RAW_SIG_LEN, NULL) !=
	            IDP_OK)
		rc = idp_error_set(err, IDP_E_VERIFY, "pop: signature does not match this key, "
		                   "these claims and this TLS channel");
	return rc;
}

enum idp_err fmt_api_pop_verify(const struct fmt_api_request *req,
                                const uint8_t exporter[static FMT_API_EXPORTER_LEN], int64_t now,
                                int64_t max_skew, struct idp_error *err)
{
	struct fmt_key *key = NULL;
	enum idp_err rc = check_clock(exporter, now, max_skew, err);
	if (rc == IDP_OK)
		rc = fmt_api_request_check(req, &key, err);
	if (rc == IDP_OK)
		rc = verify_checked(req, key, exporter, now, max_skew, err);
	fmt_key_free(key);
	return rc;
}

enum idp_err fmt_api_request_accept_key(enum fmt_api_purpose purpose, const uint8_t *buf,
                                        size_t len,
                                        const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                                        int64_t now, int64_t max_skew,
                                        struct fmt_api_request *out, struct fmt_key **key,
                                        struct idp_error *err)
{
	if (key != NULL)
		*key = NULL;
	memset(out, 0, sizeof(*out));
	if (purpose != FMT_API_PROVISION && purpose != FMT_API_EXCHANGE && purpose != FMT_API_RENEW)
		return idp_error_set(err, IDP_E_ARG, "request: purpose %d is unknown", (int)purpose);
	enum idp_err rc = check_clock(exporter, now, max_skew, err);
	if (rc != IDP_OK)
		return rc;
	/* One key import serves the check, the signature and the caller. */
	struct fmt_key *k = NULL;
	rc = fmt_api_request_parse_key(purpose, buf, len, out, &k, err);
	if (rc != IDP_OK)
		return rc;
	rc = verify_checked(out, k, exporter, now, max_skew, err);
	if (rc == IDP_OK && key != NULL)
		*key = k;
	else
		fmt_key_free(k);
	return rc;
}

enum idp_err fmt_api_request_accept(enum fmt_api_purpose purpose, const uint8_t *buf, size_t len,
                                    const uint8_t exporter[static FMT_API_EXPORTER_LEN],
                                    int64_t now, int64_t max_skew, struct fmt_api_request *out,
                                    struct idp_error *err)
{
	return fmt_api_request_accept_key(purpose, buf, len, exporter, now, max_skew, out, NULL,
	                                  err);
}
