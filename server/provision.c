/*
 * provision.c - see provision.h.
 */
#include "server/provision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "formats/oob.h"
#include "server/fault.h"

static const char *const refusal_names[] = {
        [SRV_REFUSE_NONE] = "none",
        [SRV_REFUSE_KEY_MISMATCH] = "key-mismatch",
        [SRV_REFUSE_MAC_MISMATCH] = "mac-mismatch",
        [SRV_REFUSE_KEY_IN_USE] = "key-in-use",
        [SRV_REFUSE_REJECTED] = "rejected",
        [SRV_REFUSE_REVOKED] = "revoked",
        [SRV_REFUSE_NO_IDENTITY] = "no-identity",
        [SRV_REFUSE_NONCE] = "nonce",
        [SRV_REFUSE_TOKEN] = "token",
        [SRV_REFUSE_PENDING_LIMIT] = "pending-limit",
        [SRV_REFUSE_PROOF] = "proof",
        [SRV_REFUSE_OOB_MISMATCH] = "oob-mismatch",
};

const char *srv_refusal_name(enum srv_refusal r)
{
	return (size_t)r < sizeof(refusal_names) / sizeof(refusal_names[0]) ? refusal_names[r]
	                                                                    : "unknown";
}

void srv_issued_clear(struct srv_issued *r)
{
	fmt_token_free(r->token);
	memset(r, 0, sizeof(*r));
}

enum idp_err srv_token_kid(const struct srv_state *state, char kid[static SRV_TOKEN_KID_MAX],
                           struct idp_error *err)
{
	(void)err;
	const struct fmt_key *key = NULL;
	srv_state_token_signer(state, &key, kid);
	return IDP_OK;
}

static enum idp_err audit(struct srv_store *st, int64_t now, const char *event, const char *subject,
                          const char *detail, struct idp_error *err)
{
	const struct srv_audit_event ev = {
	        .at = now, .event = event, .subject = subject, .detail = detail};
	return srv_store_audit_append(st, &ev, err);
}

/* Sign a token of kind for device_id bound to key, record it (with the
 * token redeemed for it, parent; may be NULL), put it in out. jkt: key's
 * thumbprint when the caller has it already, else NULL. */
static enum idp_err issue(struct srv_store *st, const struct srv_state *state,
                          const struct srv_provision_cfg *cfg, const char *device_id,
                          const struct fmt_key *key, const char *jkt, enum fmt_token_kind kind,
                          const char *parent, int64_t now, struct srv_issued *out,
                          struct idp_error *err)
{
	char kid[SRV_TOKEN_KID_MAX];
	const struct fmt_key *signer = NULL;
	struct fmt_token_claims claims;
	memset(&claims, 0, sizeof(claims));
	srv_state_token_signer(state, &signer, kid);
	enum idp_err rc = IDP_OK;
	if (jkt != NULL) /* the caller's, of the same key: not computed twice */
		(void)snprintf(claims.jkt, sizeof(claims.jkt), "%s", jkt);
	else
		rc = fmt_token_jkt(key, claims.jkt, err);
	if (rc != IDP_OK)
		return rc;
	(void)snprintf(claims.iss, sizeof(claims.iss), "%s", cfg->issuer);
	(void)snprintf(claims.aud, sizeof(claims.aud), "%s", cfg->audience);
	(void)snprintf(claims.sub, sizeof(claims.sub), "%s", device_id);
	claims.kind = kind;
	int64_t lifetime =
	        kind == FMT_TOKEN_PROVISION ? cfg->provisioning_lifetime : cfg->device_lifetime;
	char *tok = NULL;
	size_t len = 0;
	rc = fmt_token_sign(signer, kid, &claims, now, lifetime, NULL, &tok, &len, err);
	if (rc != IDP_OK)
		return rc;
	struct srv_token t = {.kind = kind, .issued_at = claims.iat, .expires_at = claims.exp};
	(void)snprintf(t.jti, sizeof(t.jti), "%s", claims.jti);
	(void)snprintf(t.device_id, sizeof(t.device_id), "%s", device_id);
	if (parent != NULL)
		(void)snprintf(t.parent, sizeof(t.parent), "%s", parent);
	rc = srv_store_token_insert(st, &t, err);
	if (rc != IDP_OK) {
		fmt_token_free(tok);
		return rc;
	}
	out->token = tok;
	out->token_len = len;
	out->expires_at = claims.exp;
	return IDP_OK;
}

/* An approved device (its key checked) provisions again: jti gets the
 * token of its last approval when that answer was lost (a crash or a cut
 * connection between the commit and the answer, and the client sent the
 * request again on a new connection with a new proof): its newest token is
 * then a provisioning token never exchanged, not revoked, not expired and
 * not itself such a re-issue (its parent names the token it replaced), so
 * one retry per approval goes unflagged and a loop of them does not. Not a
 * reset in the field: not flagged (formats/api.md §6.1). "" otherwise. */
static enum idp_err answer_lost(struct srv_store *st, const char *device_id, int64_t now,
                                char jti[static SRV_STORE_JTI_MAX + 1], struct idp_error *err)
{
	struct srv_token t;
	jti[0] = '\0';
	enum idp_err rc = srv_store_token_latest(st, device_id, &t, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	if (rc == IDP_OK && t.kind == FMT_TOKEN_PROVISION && !t.used && t.revoked_at == 0 &&
	    t.expires_at > now && t.parent[0] == '\0')
		(void)snprintf(jti, SRV_STORE_JTI_MAX + 1, "%s", t.jti);
	return rc;
}

static bool key_is(const struct srv_device *d, const uint8_t *spki, size_t len)
{
	return d->pubkey_len == len && CRYPTO_memcmp(d->pubkey, spki, len) == 0;
}

/* "sha256:" and the hex SHA-256 of spki[0..len), for flags and answers. */
static void key_text(const uint8_t *spki, size_t len, char out[static 72])
{
	uint8_t fp[SHA256_DIGEST_LENGTH];
	char hex[65];
	(void)SHA256(spki, len, fp);
	fmt_key_fingerprint_hex(fp, hex);
	(void)snprintf(out, 72, "sha256:%s", hex);
}

/* Record a refusal (audit, and a flag for review when flag_kind is set). */
static enum idp_err refuse(struct srv_store *st, const struct srv_provision_req *req,
                           enum srv_refusal why, const char *flag_kind, const char *detail,
                           struct srv_issued *out, struct idp_error *err)
{
	out->decision = SRV_DECISION_REFUSED;
	out->refusal = why;
	enum idp_err rc = IDP_OK;
	if (flag_kind != NULL)
		rc = srv_store_flag_add(st, flag_kind, req->device_id, detail, req->now, err);
	if (rc == IDP_OK)
		rc = audit(st, req->now, "provision.refused", req->device_id, srv_refusal_name(why),
		           err);
	return rc;
}

/* Flag when another device holds the same value (key reuse, MAC reuse);
 * *shared says whether one does. */
static enum idp_err flag_if_shared(struct srv_store *st, enum srv_ident_kind kind, const uint8_t *v,
                                   size_t len, const char *id, int64_t now, const char *flag_kind,
                                   bool *shared, struct idp_error *err)
{
	char other[SRV_STORE_ID_MAX + 1];
	if (len == 0)
		return IDP_OK;
	enum idp_err rc = srv_store_device_find(st, kind, v, len, id, other, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	if (rc != IDP_OK)
		return rc;
	*shared = true;
	char detail[SRV_STORE_ID_MAX + 16];
	(void)snprintf(detail, sizeof(detail), "also %s", other);
	return srv_store_flag_add(st, flag_kind, id, detail, now, err);
}

/* Hold d for an administrator: pending, answered as such. */
static enum idp_err hold(struct srv_store *st, const struct srv_provision_cfg *cfg,
                         struct srv_device *d, int64_t now, const char *event,
                         struct srv_issued *out, struct idp_error *err)
{
	d->state = SRV_DEV_PENDING;
	d->attempts++;
	d->updated_at = now;
	out->decision = SRV_DECISION_PENDING;
	out->retry_after = cfg->retry_after;
	enum idp_err rc = srv_store_device_update(st, d, err);
	if (rc == IDP_OK)
		rc = audit(st, now, event, d->id, NULL, err);
	return rc;
}

/* The request's out-of-band proof against the ID's entry (formats/api.md
 * §15), inside the transaction: out->oob says what became of it; a wrong
 * one is refused (flag oob-mismatch, the entry's failures counted), a
 * right one uses the entry up (single use). */
static enum idp_err oob_check(struct srv_store *st, const struct srv_provision_req *req,
                              const uint8_t *spki, size_t spki_len, struct srv_issued *out,
                              struct idp_error *err)
{
	struct srv_oob e;
	enum idp_err rc = srv_store_oob_get(st, req->device_id, &e, err);
	if (rc == IDP_E_NOTFOUND) {
		out->oob = SRV_OOB_NO_ENTRY;
		return IDP_OK;
	}
	if (rc != IDP_OK)
		return rc;
	uint8_t want[FMT_OOB_LEN];
	if (e.used_at != 0) {
		out->oob = SRV_OOB_USED;
		rc = srv_store_flag_add(st, "oob-reused", req->device_id,
		                        "out-of-band secret presented again after its use",
		                        req->now, err);
	} else if (req->now >= e.expires_at) {
		out->oob = SRV_OOB_EXPIRED;
	} else if ((rc = fmt_oob_proof(e.verifier, req->exporter, req->device_id, spki, spki_len,
	                               want, err)) == IDP_OK) {
		/* WARNING: constant time; the proof is a MAC under the verifier. */
		if (CRYPTO_memcmp(want, req->oob_proof, FMT_OOB_LEN) == 0) {
			out->oob = SRV_OOB_PROVEN;
			rc = srv_store_oob_use(st, req->device_id, req->now, err);
		} else {
			out->oob = SRV_OOB_MISMATCH;
			rc = srv_store_oob_fail(st, req->device_id, err);
			if (rc == IDP_OK)
				rc = refuse(st, req, SRV_REFUSE_OOB_MISMATCH, "oob-mismatch",
				            "wrong out-of-band proof", out, err);
		}
	}
	OPENSSL_cleanse(want, sizeof(want));
	OPENSSL_cleanse(e.verifier, sizeof(e.verifier));
	return rc;
}

/* The decision proper, inside the transaction. With an out-of-band proof
 * that verified (out->oob SRV_OOB_PROVEN), an unknown or pending device is
 * approved at once with the key it presented; a manifest's key, a rejection
 * or a revocation still decide. */
static enum idp_err decide(struct srv_store *st, const struct srv_state *state,
                           const struct srv_provision_cfg *cfg, const struct srv_provision_req *req,
                           const uint8_t *spki, size_t spki_len, struct srv_issued *out,
                           struct idp_error *err)
{
	bool oob_ok = out->oob == SRV_OOB_PROVEN;
	bool ident_kept = true; /* d's MAC and key as stored (device_update_state) */
	const char *mac = req->mac != NULL ? req->mac : "";
	size_t mac_len = strnlen(mac, SRV_STORE_MAC_MAX + 1);
	if (mac_len > SRV_STORE_MAC_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "mac: longer than %u bytes",
		                     SRV_STORE_MAC_MAX);
	struct srv_device d;
	enum idp_err rc = srv_store_device_get(st, req->device_id, &d, err);
	if (rc == IDP_E_NOTFOUND) {
		/* Unknown: stored once as pending; retries only count. One that
		 * proved its label secret is recorded with the key it presented
		 * and approved below; the reuse checks apply to both. */
		memset(&d, 0, sizeof(d));
		(void)snprintf(d.id, sizeof(d.id), "%s", req->device_id);
		memcpy(d.mac, mac, mac_len + 1);
		memcpy(d.pubkey, spki, spki_len);
		d.pubkey_len = spki_len;
		d.state = oob_ok ? SRV_DEV_PRELOADED : SRV_DEV_PENDING;
		d.created_at = d.updated_at = req->now;
		d.attempts = oob_ok ? 0 : 1;
		bool shared = false;
		int64_t expired = 0;
		rc = oob_ok ? IDP_OK
		            : srv_store_pending_admit(st, req->source, req->now, &cfg->pending,
		                                      &expired, err);
		if (rc != IDP_OK) {
			out->refusal = SRV_REFUSE_PENDING_LIMIT;
			return rc;
		}
		if (expired > 0) {
			char n[32];
			(void)snprintf(n, sizeof(n), "%lld devices", (long long)expired);
			rc = audit(st, req->now, "pending.expired", NULL, n, err);
		}
		if (rc == IDP_OK)
			rc = flag_if_shared(st, SRV_IDENT_KEY, spki, spki_len, d.id, req->now,
			                    "key-reuse", &shared, err);
		if (rc == IDP_OK)
			rc = flag_if_shared(st, SRV_IDENT_MAC, (const uint8_t *)mac, mac_len, d.id,
			                    req->now, "mac-reuse", &shared, err);
		if (rc == IDP_OK && shared && cfg->identity_reuse == SRV_POLICY_REFUSE)
			return refuse(st, req, SRV_REFUSE_KEY_IN_USE, NULL, NULL, out, err);
		if (rc == IDP_OK)
			rc = srv_store_device_insert(st, &d, err);
		if (!oob_ok) {
			if (rc == IDP_OK && req->source != NULL)
				rc = srv_store_pending_source(st, d.id, req->source, err);
			if (rc == IDP_OK)
				rc = audit(st, req->now, "provision.pending", d.id, NULL, err);
			out->decision = SRV_DECISION_PENDING;
			out->retry_after = cfg->retry_after;
			return rc;
		}
	}
	if (rc != IDP_OK)
		return rc;
	switch (d.state) {
	case SRV_DEV_REJECTED:
		return refuse(st, req, SRV_REFUSE_REJECTED, NULL, NULL, out, err);
	case SRV_DEV_REVOKED:
		return refuse(st, req, SRV_REFUSE_REVOKED, NULL, NULL, out, err);
	case SRV_DEV_PENDING:
		/* A manifest's key is attested: another one is a mismatch. */
		if (!key_is(&d, spki, spki_len) && d.batch_id[0] != '\0')
			return refuse(st, req, SRV_REFUSE_KEY_MISMATCH, "key-mismatch",
			              "presented another key", out, err);
		if (oob_ok) {
			/* The label secret names this key: it takes the ID; other
			 * keys presented while pending are dropped. */
			memcpy(d.pubkey, spki, spki_len);
			d.pubkey_len = spki_len;
			memcpy(d.mac, mac, mac_len + 1);
			ident_kept = false;
			rc = srv_store_contender_clear(st, d.id, err);
			if (rc != IDP_OK)
				return rc;
			break;
		}
		if (!key_is(&d, spki, spki_len)) {
			/* A second key for a pending ID: the first one is not
			 * trusted to own it. Keep both for the administrator,
			 * who approves one by its fingerprint. */
			char kt[72], detail[128];
			key_text(spki, spki_len, kt);
			(void)snprintf(detail, sizeof(detail), "another key %s mac %s", kt,
			               mac_len > 0 ? mac : "none");
			rc = srv_store_contender_put(st, d.id, spki, spki_len, mac, req->now, err);
			if (rc == IDP_OK)
				rc = srv_store_flag_add(st, "contested", d.id, detail, req->now,
				                        err);
			if (rc == IDP_OK)
				rc = audit(st, req->now, "provision.contested", d.id, kt, err);
			out->decision = SRV_DECISION_PENDING;
			out->retry_after = cfg->retry_after;
			return rc;
		}
		d.attempts++;
		d.updated_at = req->now;
		out->decision = SRV_DECISION_PENDING;
		out->retry_after = cfg->retry_after;
		return srv_store_device_update_state(st, &d, err);
	case SRV_DEV_PRELOADED:
	case SRV_DEV_APPROVED:
		break;
	}
	if (d.pubkey_len > 0) {
		if (!key_is(&d, spki, spki_len))
			return refuse(st, req, SRV_REFUSE_KEY_MISMATCH, "key-mismatch",
			              "presented another key", out, err);
		if (mac_len > 0 && d.mac[0] != '\0' && strcasecmp(mac, d.mac) != 0) {
			char detail[64];
			(void)snprintf(detail, sizeof(detail), "record %s, presented %s", d.mac,
			               mac);
			if (cfg->mac_mismatch == SRV_POLICY_REFUSE)
				return refuse(st, req, SRV_REFUSE_MAC_MISMATCH, "mac-mismatch",
				              detail, out, err);
			rc = srv_store_flag_add(st, "mac-mismatch", d.id, detail, req->now, err);
			if (rc == IDP_OK && cfg->mac_mismatch == SRV_POLICY_HOLD) {
				/* The presented MAC is what an approval accepts. */
				memcpy(d.mac, mac, mac_len + 1);
				return hold(st, cfg, &d, req->now, "provision.held", out, err);
			}
		}
	} else if (d.mac[0] != '\0') {
		if (mac_len == 0 || strcasecmp(mac, d.mac) != 0)
			return refuse(st, req, SRV_REFUSE_MAC_MISMATCH, "mac-mismatch", mac, out,
			              err);
		char other[SRV_STORE_ID_MAX + 1];
		rc = srv_store_device_find(st, SRV_IDENT_KEY, spki, spki_len, d.id, other, err);
		if (rc == IDP_OK)
			return refuse(st, req, SRV_REFUSE_KEY_IN_USE, "key-reuse", other, out, err);
		if (rc != IDP_E_NOTFOUND)
			return rc;
		rc = IDP_OK;
		memcpy(d.pubkey, spki, spki_len);
		d.pubkey_len = spki_len;
		ident_kept = false;
	} else {
		return refuse(st, req, SRV_REFUSE_NO_IDENTITY, NULL, NULL, out, err);
	}
	/* A device provisioning again (a reset in the field) starts a new token
	 * chain: every earlier token of it is revoked, so one chain is live.
	 * Unless its answer was lost (formats/api.md §6.1), that is flagged; the
	 * first provisioning of a device an administrator approved is none. */
	char lost[SRV_STORE_JTI_MAX + 1] = "";
	bool again = d.state == SRV_DEV_APPROVED && d.provisioned_at != 0;
	if (rc == IDP_OK && again)
		rc = answer_lost(st, d.id, req->now, lost, err);
	if (rc == IDP_OK && again && lost[0] == '\0')
		rc = srv_store_flag_add(st, "repeat-provision", d.id, NULL, req->now, err);
	if (rc == IDP_OK)
		rc = srv_store_token_revoke_device(st, d.id, req->now, err);
	if (rc != IDP_OK)
		return rc;
	d.state = SRV_DEV_APPROVED;
	if (d.provisioned_at == 0)
		d.provisioned_at = req->now;
	d.updated_at = req->now;
	d.attempts++;
	rc = ident_kept ? srv_store_device_update_state(st, &d, err)
	                : srv_store_device_update(st, &d, err);
	if (rc == IDP_OK)
		rc = issue(st, state, cfg, d.id, req->key, NULL, FMT_TOKEN_PROVISION,
		           lost[0] != '\0' ? lost : NULL, req->now, out, err);
	if (rc == IDP_OK)
		rc = audit(st, req->now, "provision.approved", d.id,
		           oob_ok        ? "out-of-band secret proven"
		           : lost[0] != '\0' ? "again: the answer of the last approval was lost"
		                           : NULL,
		           err);
	if (rc == IDP_OK)
		out->decision = SRV_DECISION_APPROVED;
	return rc;
}

/* WARNING: a test-only fault point. With IDPROVD_TEST_FAULT=name in the
 * server's environment the process ends here at once (exit status 99), as
 * a crash would: tests use it to kill the server between a commit and its
 * answer (docs/design.md, "Fault points for tests"). Never set in service. */
static void fault_point(const char *name)
{
	if (srv_fault_test(name))
		_exit(99);
}

enum idp_err srv_provision(struct srv_store *st, const struct srv_state *state,
                           const struct srv_provision_cfg *cfg, const struct srv_provision_req *req,
                           struct srv_issued *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	size_t id_len = req->device_id != NULL ? strnlen(req->device_id, SRV_STORE_ID_MAX + 1) : 0;
	if (id_len == 0 || id_len > SRV_STORE_ID_MAX)
		return idp_error_set(err, IDP_E_FORMAT, "device id: 1 to %u bytes",
		                     SRV_STORE_ID_MAX);
	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t spki_len = 0;
	enum idp_err rc = fmt_key_spki_der(req->key, spki, &spki_len, err);
	if (rc == IDP_OK)
		rc = srv_store_begin(st, err);
	if (rc != IDP_OK)
		return rc;
	if (req->proof != NULL &&
	    (rc = srv_store_proof_use(st, req->proof->hash, sizeof(req->proof->hash),
	                              req->proof->expires_at, req->now, err)) != IDP_OK)
		out->refusal = SRV_REFUSE_PROOF;
	if (rc == IDP_OK && req->nonce != NULL &&
	    (rc = srv_store_nonce_consume(st, req->nonce, SRV_NONCE_LEN, req->now, err)) != IDP_OK)
		out->refusal = SRV_REFUSE_NONCE;
	if (rc == IDP_OK && req->oob_proof != NULL && req->exporter != NULL)
		rc = oob_check(st, req, spki, spki_len, out, err);
	if (rc == IDP_OK && out->oob != SRV_OOB_MISMATCH)
		rc = decide(st, state, cfg, req, spki, spki_len, out, err);
	if (rc == IDP_OK)
		rc = srv_store_commit(st, err); /* the answer leaves only after this */
	else
		srv_store_rollback(st);
	if (rc == IDP_OK && out->decision == SRV_DECISION_APPROVED)
		fault_point("provision.committed");
	if (rc != IDP_OK) {
		enum srv_refusal why = out->refusal;
		enum srv_oob_outcome oob = out->oob;
		srv_issued_clear(out);
		out->refusal = why;
		out->oob = oob == SRV_OOB_MISMATCH ? oob : SRV_OOB_ABSENT; /* nothing was used */
	}
	return rc;
}

/* The token jti was redeemed before (*rc is IDP_E_CONFLICT): when what that
 * issued was never used, its answer was lost, so revoke it and let the
 * caller issue a new one (IDP_OK); otherwise keep the refusal. */
static enum idp_err retry_lost(struct srv_store *st, const char *jti, int64_t now,
                               struct idp_error *err)
{
	struct srv_token child;
	enum idp_err rc = srv_store_token_child(st, jti, &child, err);
	if (rc == IDP_E_NOTFOUND || (rc == IDP_OK && child.used))
		return idp_error_set(err, IDP_E_CONFLICT, "token: already used");
	if (rc != IDP_OK)
		return rc;
	return srv_store_token_revoke(st, child.jti, now, err);
}

/* Verify token (kinds) for the holder of key, then, in one transaction:
 * the proof and nonce are used once, the device is still approved with that
 * key, the token is used once (or retried, see provision.h), a device token
 * is issued. */
static enum idp_err redeem(struct srv_store *st, const struct srv_state *state,
                           const struct srv_provision_cfg *cfg, const uint8_t *token, size_t len,
                           const char *device_id, const struct fmt_key *key, const uint8_t *nonce,
                           const struct srv_proof *proof, int64_t now, unsigned kinds,
                           const char *event, struct srv_issued *out, enum fmt_token_check *failed,
                           struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	*failed = FMT_TOKEN_CHECK_OK;
	char jkt[FMT_TOKEN_JKT_LEN + 1];
	enum idp_err rc = fmt_token_jkt(key, jkt, err);
	if (rc != IDP_OK)
		return rc;
	/* The current key and the retired ones still in their keep time. */
	struct fmt_token_key keys[SRV_STATE_TOKEN_KEYS_MAX];
	size_t nkeys = srv_state_token_keys(state, now, keys);
	const struct fmt_token_policy policy = {.iss = cfg->issuer,
	                                        .aud = cfg->audience,
	                                        .sub = device_id,
	                                        .jkt = jkt,
	                                        .kinds = kinds,
	                                        .now = now};
	struct fmt_token_claims claims;
	rc = fmt_token_verify(token, len, keys, nkeys, &policy, &claims, failed, err);
	if (rc != IDP_OK) {
		out->refusal = SRV_REFUSE_TOKEN;
		return rc;
	}
	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t spki_len = 0;
	rc = fmt_key_spki_der(key, spki, &spki_len, err);
	if (rc == IDP_OK)
		rc = srv_store_begin(st, err);
	if (rc != IDP_OK)
		return rc;
	enum srv_refusal why = SRV_REFUSE_NONE;
	if (proof != NULL && (rc = srv_store_proof_use(st, proof->hash, sizeof(proof->hash),
	                                               proof->expires_at, now, err)) != IDP_OK)
		why = SRV_REFUSE_PROOF;
	if (rc == IDP_OK && nonce != NULL &&
	    (rc = srv_store_nonce_consume(st, nonce, SRV_NONCE_LEN, now, err)) != IDP_OK)
		why = SRV_REFUSE_NONCE;
	struct srv_device d;
	if (rc == IDP_OK && (rc = srv_store_device_get(st, claims.sub, &d, err)) != IDP_OK)
		why = SRV_REFUSE_TOKEN;
	if (rc == IDP_OK && d.state != SRV_DEV_APPROVED) {
		why = d.state == SRV_DEV_REVOKED ? SRV_REFUSE_REVOKED : SRV_REFUSE_REJECTED;
		rc = idp_error_set(err, IDP_E_DENIED, "device %s: %s", d.id,
		                   srv_device_state_name(d.state));
	}
	if (rc == IDP_OK && !key_is(&d, spki, spki_len)) {
		why = SRV_REFUSE_KEY_MISMATCH;
		rc = idp_error_set(err, IDP_E_DENIED, "device %s: key changed", d.id);
	}
	bool retried = false;
	if (rc == IDP_OK) {
		rc = srv_store_token_use(st, claims.jti, now, err);
		if (rc == IDP_E_CONFLICT) {
			rc = retry_lost(st, claims.jti, now, err);
			retried = rc == IDP_OK;
		}
		if (rc != IDP_OK)
			why = SRV_REFUSE_TOKEN;
	}
	if (rc == IDP_OK)
		rc = issue(st, state, cfg, d.id, key, jkt, FMT_TOKEN_DEVICE, claims.jti, now, out,
		           err);
	if (rc == IDP_OK)
		rc = audit(st, now, retried ? "token.reissued" : event, d.id, NULL, err);
	if (rc == IDP_OK)
		rc = srv_store_commit(st, err);
	else
		srv_store_rollback(st);
	if (rc == IDP_OK)
		fault_point("redeem.committed");
	if (rc != IDP_OK) {
		srv_issued_clear(out);
		out->refusal = why;
	} else {
		out->decision = SRV_DECISION_APPROVED;
	}
	return rc;
}

enum idp_err srv_token_exchange(struct srv_store *st, const struct srv_state *state,
                                const struct srv_provision_cfg *cfg, const uint8_t *token,
                                size_t len, const char *device_id, const struct fmt_key *key,
                                const uint8_t *nonce, const struct srv_proof *proof, int64_t now,
                                struct srv_issued *out, enum fmt_token_check *failed,
                                struct idp_error *err)
{
	return redeem(st, state, cfg, token, len, device_id, key, nonce, proof, now,
	              FMT_TOKEN_PROVISION, "token.exchanged", out, failed, err);
}

enum idp_err srv_token_renew(struct srv_store *st, const struct srv_state *state,
                             const struct srv_provision_cfg *cfg, const uint8_t *token, size_t len,
                             const char *device_id, const struct fmt_key *key, const uint8_t *nonce,
                             const struct srv_proof *proof, int64_t now, struct srv_issued *out,
                             enum fmt_token_check *failed, struct idp_error *err)
{
	return redeem(st, state, cfg, token, len, device_id, key, nonce, proof, now,
	              FMT_TOKEN_DEVICE, "token.renewed", out, failed, err);
}

/* Find the presented key whose fingerprint is want (hex) among a device's
 * contenders. */
struct pick {
	const char *want;
	bool found;
	struct srv_contender c;
	int64_t n;
};

static bool key_hex_is(const uint8_t *spki, size_t len, const char *want)
{
	char kt[72];
	key_text(spki, len, kt);
	return strcasecmp(kt + 7, want) == 0;
}

static int pick_cb(void *ctx, const struct srv_contender *c)
{
	struct pick *p = ctx;
	p->n++;
	if (p->want != NULL && !p->found && key_hex_is(c->pubkey, c->pubkey_len, p->want)) {
		p->found = true;
		p->c = *c;
	}
	return 0;
}

/* Approval of d: the key it names (see provision.h), taken into d. */
static enum idp_err approve_key(struct srv_store *st, struct srv_device *d, const char *want,
                                struct idp_error *err)
{
	struct pick p = {.want = want};
	enum idp_err rc = IDP_OK;
	/* A manifest named the device: its key decides, nothing contests it. */
	if (d->batch_id[0] == '\0')
		rc = srv_store_contender_foreach(st, d->id, pick_cb, &p, err);
	if (rc != IDP_OK)
		return rc;
	if (want == NULL) {
		if (p.n > 0)
			return idp_error_set(err, IDP_E_CONFLICT,
			                     "device %s: contested (%lld other keys presented): "
			                     "name the key to approve (key_sha256)",
			                     d->id, (long long)p.n);
		return IDP_OK;
	}
	if (d->pubkey_len > 0 && key_hex_is(d->pubkey, d->pubkey_len, want))
		return IDP_OK;
	if (!p.found)
		return idp_error_set(err, IDP_E_CONFLICT,
		                     "device %s: key sha256:%.64s was not presented for it", d->id,
		                     want);
	memcpy(d->pubkey, p.c.pubkey, p.c.pubkey_len);
	d->pubkey_len = p.c.pubkey_len;
	memcpy(d->mac, p.c.mac, sizeof(d->mac));
	return IDP_OK;
}

enum idp_err srv_admin_decide(struct srv_store *st, const char *device_id,
                              enum srv_admin_action action, const char *key_sha256, int64_t now,
                              char approved_sha256[65], struct idp_error *err)
{
	if (approved_sha256 != NULL)
		approved_sha256[0] = '\0';
	if (key_sha256 != NULL &&
	    (strlen(key_sha256) != 64 || strspn(key_sha256, "0123456789abcdefABCDEF") != 64))
		return idp_error_set(err, IDP_E_FORMAT, "key_sha256: not 64 hex digits");
	if (key_sha256 != NULL && action != SRV_ADMIN_APPROVE)
		return idp_error_set(err, IDP_E_FORMAT, "key_sha256: only for approve");
	enum idp_err rc = srv_store_begin(st, err);
	if (rc != IDP_OK)
		return rc;
	struct srv_device d;
	rc = srv_store_device_get(st, device_id, &d, err);
	const char *event = NULL;
	if (rc == IDP_OK) {
		switch (action) {
		case SRV_ADMIN_APPROVE:
			if (d.state != SRV_DEV_PENDING && d.state != SRV_DEV_REJECTED)
				rc = IDP_E_CONFLICT;
			d.state = SRV_DEV_APPROVED;
			event = "admin.approved";
			break;
		case SRV_ADMIN_REJECT:
			if (d.state != SRV_DEV_PENDING)
				rc = IDP_E_CONFLICT;
			d.state = SRV_DEV_REJECTED;
			event = "admin.rejected";
			break;
		case SRV_ADMIN_REVOKE:
			if (d.state != SRV_DEV_APPROVED && d.state != SRV_DEV_PRELOADED)
				rc = IDP_E_CONFLICT;
			d.state = SRV_DEV_REVOKED;
			event = "admin.revoked";
			break;
		default:
			rc = IDP_E_ARG;
		}
		if (rc != IDP_OK)
			rc = idp_error_set(err, rc, "device %s: action does not apply", device_id);
	}
	char kt[72] = "";
	if (rc == IDP_OK && action == SRV_ADMIN_APPROVE) {
		rc = approve_key(st, &d, key_sha256, err);
		if (rc == IDP_OK && d.pubkey_len > 0)
			key_text(d.pubkey, d.pubkey_len, kt);
	}
	if (rc == IDP_OK && action != SRV_ADMIN_REVOKE)
		rc = srv_store_contender_clear(st, device_id, err);
	if (rc == IDP_OK && action == SRV_ADMIN_REVOKE)
		rc = srv_store_token_revoke_device(st, device_id, now, err);
	d.updated_at = now;
	if (rc == IDP_OK)
		rc = srv_store_device_update(st, &d, err);
	if (rc == IDP_OK)
		rc = audit(st, now, event, device_id, kt[0] != '\0' ? kt : NULL, err);
	if (rc == IDP_OK)
		rc = srv_store_commit(st, err);
	else
		srv_store_rollback(st);
	if (rc == IDP_OK && approved_sha256 != NULL && kt[0] != '\0')
		(void)snprintf(approved_sha256, 65, "%s", kt + 7);
	return rc;
}
