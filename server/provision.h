/*
 * provision.h - the provisioning decisions (the seed's flow) and the token
 * lifecycle, over the store, independent of the HTTP and message formats.
 * The handlers verify the request and its proof of possession (formats/api.h)
 * and then call these with the device key whose possession was proven.
 *
 *   known ID + same public key          -> approved, provisioning token
 *   known ID + MAC, no key in manifest  -> key recorded, approved, token
 *   unknown ID                          -> pending (stored once), retry later;
 *                                          refused while a pending cap is
 *                                          reached (cfg->pending)
 *   known ID + other key, rejected,
 *   revoked, key of another device      -> refused, nothing issued
 *
 * Each decision is one store transaction with its audit entry (and flags for
 * review: key or MAC seen under several IDs, MAC mismatch, repeated
 * provisioning); a token is returned only after its transaction committed,
 * so an answered decision is never lost. Refusals of a token (forged,
 * replayed, expired, other audience) change nothing in the store.
 *
 * Thread-safety: as the store connection passed in (one per loop).
 */
#ifndef IDP_SERVER_PROVISION_H
#define IDP_SERVER_PROVISION_H

#include <stddef.h>
#include <stdint.h>

#include "formats/api.h"
#include "formats/error.h"
#include "formats/keys.h"
#include "formats/token.h"
#include "server/state.h"
#include "server/store.h"

#define SRV_TOKEN_KID_MAX SRV_STATE_KID_MAX /* a kid with its NUL */
#define SRV_NONCE_LEN     FMT_API_NONCE_LEN /* server nonce bytes (formats/api.md) */

/* What to do with a device whose identity is in doubt (config keys
 * mac-mismatch and identity-reuse, docs/administrator.md). Zero is the
 * default: hold. */
enum srv_policy {
	SRV_POLICY_HOLD = 0,   /* nothing issued: pending for an administrator, flagged */
	SRV_POLICY_REFUSE = 1, /* nothing issued: rejected (mac_mismatch / key_reused), flagged */
	SRV_POLICY_FLAG = 2,   /* approved as usual, flagged (mac-mismatch only) */
};

struct srv_provision_cfg {
	const char *issuer;   /* iss of every token */
	const char *audience; /* aud of every token */
	int64_t provisioning_lifetime;
	int64_t device_lifetime;
	int64_t retry_after; /* seconds a pending device waits */
	struct srv_pending_limits pending; /* caps and expiry of pending devices (0: none) */
	/* A device known with a key presents it with another MAC than its record. */
	enum srv_policy mac_mismatch;
	/* An unknown ID presents a key or MAC another device holds (HOLD or REFUSE). */
	enum srv_policy identity_reuse;
};

/* One proof of possession, for refusing a second use of it: a hash of its
 * signed bytes (formats/api.md §5.2), kept until it could no longer pass the
 * clock-skew check. */
struct srv_proof {
	uint8_t hash[FMT_API_HASH_LEN];
	int64_t expires_at;
};

enum srv_decision {
	SRV_DECISION_APPROVED = 1, /* token issued */
	SRV_DECISION_PENDING = 2,  /* wait for an administrator */
	SRV_DECISION_REFUSED = 3,  /* nothing issued */
};

enum srv_refusal {
	SRV_REFUSE_NONE = 0,
	SRV_REFUSE_KEY_MISMATCH, /* the device is known with another key */
	SRV_REFUSE_MAC_MISMATCH, /* known by MAC only, and the MAC differs */
	SRV_REFUSE_KEY_IN_USE,   /* the key belongs to another device */
	SRV_REFUSE_REJECTED,     /* an administrator rejected the device */
	SRV_REFUSE_REVOKED,      /* the device was revoked */
	SRV_REFUSE_NO_IDENTITY,  /* the record has neither key nor MAC */
	SRV_REFUSE_NONCE,        /* the nonce is unknown, used or expired (an error too) */
	SRV_REFUSE_TOKEN,        /* the token is invalid or already used (an error too) */
	SRV_REFUSE_PENDING_LIMIT, /* a pending cap is reached (an error: IDP_E_LIMIT per
	                           * source, IDP_E_AGAIN in total); nothing stored */
	SRV_REFUSE_PROOF,        /* the proof was used before (an error too) */
	SRV_REFUSE_OOB_MISMATCH, /* a wrong out-of-band proof (formats/api.md §15) */
};

/* What became of a request's out-of-band proof (srv_issued.oob). */
enum srv_oob_outcome {
	SRV_OOB_ABSENT = 0, /* the request carried none */
	SRV_OOB_NO_ENTRY,   /* no secret was entered for the ID: not checked */
	SRV_OOB_EXPIRED,    /* the entry expired: not checked */
	SRV_OOB_USED,       /* the entry was used before: not checked, flagged oob-reused */
	SRV_OOB_MISMATCH,   /* checked, wrong: refused, flagged oob-mismatch */
	SRV_OOB_PROVEN,     /* checked, right: the entry used, the device approved */
};

struct srv_provision_req {
	const char *device_id;     /* 1..SRV_STORE_ID_MAX bytes */
	const char *mac;           /* NULL or "" when the device sent none */
	const struct fmt_key *key; /* the key whose possession was proven */
	const uint8_t *nonce;      /* NULL, or a server nonce (SRV_NONCE_LEN) to consume */
	const struct srv_proof *proof; /* NULL, or the request's proof: used once */
	int64_t now;
	const char *source; /* client address (the per-source pending cap); NULL: none */
	/* NULL, or the request's out-of-band proof (FMT_OOB_LEN bytes) and the
	 * exporter value of its connection (FMT_OOB_EXPORTER_LEN). */
	const uint8_t *oob_proof;
	const uint8_t *exporter;
};

struct srv_issued {
	enum srv_decision decision;
	enum srv_refusal refusal; /* also set when an error was a refusal (nonce, token, state) */
	int64_t retry_after;      /* PENDING */
	enum srv_oob_outcome oob; /* provision with an out-of-band proof */
	char *token;              /* APPROVED / exchanged / renewed: free with srv_issued_clear() */
	size_t token_len;
	int64_t expires_at;
};

/* The kid new tokens carry (the current key's, srv_state_token_signer):
 * "t-" and 16 hex digits of the token key's fingerprint. */
IDP_MUST_CHECK enum idp_err srv_token_kid(const struct srv_state *state,
                                          char kid[static SRV_TOKEN_KID_MAX],
                                          struct idp_error *err);

/* Decide a provisioning request. IDP_OK with *out filled for every decision
 * (refusals included); an error when the nonce is unknown, used or expired
 * (IDP_E_NOTFOUND, IDP_E_EXPIRED) or the store or crypto failed: then nothing
 * was changed. A nonce is consumed in the decision's transaction. */
IDP_MUST_CHECK enum idp_err srv_provision(struct srv_store *st, const struct srv_state *state,
                                          const struct srv_provision_cfg *cfg,
                                          const struct srv_provision_req *req,
                                          struct srv_issued *out, struct idp_error *err);

/* Exchange a provisioning token (once) for a device token, or renew a device
 * token (once per token), for device_id holding key (nonce and proof as for
 * srv_provision; may be NULL). Each issued token records the token redeemed
 * for it (its parent).
 *
 * A retry is safe: when the token was already redeemed and what that issued
 * was never used (its answer was lost), the earlier token is revoked and a
 * new one issued in its place, so the device holds exactly one live token.
 *
 * Refusals are errors: IDP_E_DENIED / IDP_E_EXPIRED / IDP_E_VERIFY ... from
 * the token check (with *failed naming it), IDP_E_CONFLICT for a token
 * already used whose successor was used too, IDP_E_DENIED for a revoked
 * token or a device no longer approved; the store is then unchanged. */
IDP_MUST_CHECK enum idp_err srv_token_exchange(struct srv_store *st, const struct srv_state *state,
                                               const struct srv_provision_cfg *cfg,
                                               const uint8_t *token, size_t len,
                                               const char *device_id, const struct fmt_key *key,
                                               const uint8_t *nonce, const struct srv_proof *proof,
                                               int64_t now, struct srv_issued *out,
                                               enum fmt_token_check *failed,
                                               struct idp_error *err);
IDP_MUST_CHECK enum idp_err srv_token_renew(struct srv_store *st, const struct srv_state *state,
                                            const struct srv_provision_cfg *cfg,
                                            const uint8_t *token, size_t len, const char *device_id,
                                            const struct fmt_key *key, const uint8_t *nonce,
                                            const struct srv_proof *proof, int64_t now,
                                            struct srv_issued *out,
                                            enum fmt_token_check *failed, struct idp_error *err);

enum srv_admin_action {
	SRV_ADMIN_APPROVE = 1, /* a pending device: approved with the key it presented */
	SRV_ADMIN_REJECT = 2,  /* a pending device: refused from now on */
	SRV_ADMIN_REVOKE = 3,  /* an approved or preloaded device: no more tokens */
};

/* An administrator's decision on a device, with its audit entry.
 * IDP_E_NOTFOUND for an unknown device, IDP_E_CONFLICT when the action does
 * not apply to the device's state.
 *
 * Approval names the key it approves: key_sha256 (64 hex digits, SHA-256 of
 * the SPKI DER; NULL = the key on record) must be the device's key or one of
 * the other keys presented for its ID (a contested ID, which then takes that
 * key and its MAC); else IDP_E_CONFLICT. A contested ID is approved only
 * with key_sha256. approved_sha256 (may be NULL) gets the approved key's
 * fingerprint. Revocation also revokes every token of the device. */
IDP_MUST_CHECK enum idp_err srv_admin_decide(struct srv_store *st, const char *device_id,
                                             enum srv_admin_action action,
                                             const char *key_sha256, int64_t now,
                                             char approved_sha256[2 * FMT_KEY_FINGERPRINT_LEN + 1], struct idp_error *err);

/* Free the token in r (cleansed) and zero r. */
void srv_issued_clear(struct srv_issued *r);

/* "key-mismatch", "rejected", ... ("none" for SRV_REFUSE_NONE). */
const char *srv_refusal_name(enum srv_refusal r);

#endif /* IDP_SERVER_PROVISION_H */
