/*
 * test_provision.c - provision.h on a real state directory and SQLite store:
 * every decision path of the seed's flow (preloaded key, preloaded MAC,
 * unknown -> pending once -> approved by an admin, other key, rejected,
 * revoked, key of another device), the provisioning token exchanged once,
 * device tokens renewed once, and refused tokens (replayed, forged, other
 * audience, other key, expired, revoked device) leaving the store unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "formats/keys.h"
#include "formats/token.h"
#include "server/provision.h"
#include "tests/unit/check_main.h"

#define NOW 1800000000

static char dir[64];
static struct srv_state *state;
static struct srv_store *st;
static const struct srv_provision_cfg cfg = {.issuer = "https://idprovd.test",
                                             .audience = "idprov",
                                             .provisioning_lifetime = 300,
                                             .device_lifetime = 30 * 86400,
                                             .retry_after = 30};

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/idp-prov-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char sd[128], secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	snprintf(sd, sizeof(sd), "%s/state", dir);
	struct srv_state_opts o = {.dir = sd};
	ck_assert_int_eq(srv_state_open(&o, &state, secret, NULL), IDP_OK);
	ck_assert_int_eq(srv_store_open(state->db_path, &st, NULL), IDP_OK);
}

static void teardown(void)
{
	srv_store_close(st);
	srv_state_free(state);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct fmt_key *new_key(void)
{
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &k, NULL), IDP_OK);
	return k;
}

/* A manifest-style device: with key (may be NULL) and MAC (may be ""). */
static void preload(const char *id, const struct fmt_key *key, const char *mac)
{
	struct srv_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", id);
	snprintf(d.mac, sizeof(d.mac), "%s", mac);
	if (key != NULL)
		ck_assert_int_eq(fmt_key_spki_der(key, d.pubkey, &d.pubkey_len, NULL), IDP_OK);
	d.state = SRV_DEV_PRELOADED;
	d.created_at = d.updated_at = NOW - 100;
	ck_assert_int_eq(srv_store_device_insert(st, &d, NULL), IDP_OK);
}

/* preload(), named by batch "b-1" of station "st-1" (made on first use). */
static void preload_in_batch(const char *id, const struct fmt_key *key, const char *mac)
{
	preload(id, key, mac);
	struct srv_batch batch;
	if (srv_store_batch_get(st, "b-1", &batch, NULL) == IDP_E_NOTFOUND) {
		memset(&batch, 0, sizeof(batch));
		batch.sequence = 1;
		batch.device_count = 1;
		batch.state = SRV_BATCH_IMPORTED;
		snprintf(batch.id, sizeof(batch.id), "b-1");
		snprintf(batch.station_id, sizeof(batch.station_id), "st-1");
		ck_assert_int_eq(srv_store_batch_insert(st, &batch, NULL), IDP_OK);
	}
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(st, id, &d, NULL), IDP_OK);
	snprintf(d.batch_id, sizeof(d.batch_id), "b-1");
	ck_assert_int_eq(srv_store_device_update(st, &d, NULL), IDP_OK);
}

static void provision_with(const struct srv_provision_cfg *c, const char *id, const char *mac,
                           const struct fmt_key *key, int64_t now, struct srv_issued *out)
{
	const struct srv_provision_req req = {.device_id = id, .mac = mac, .key = key, .now = now};
	struct idp_error err = {0};
	enum idp_err rc = srv_provision(st, state, c, &req, out, &err);
	ck_assert_msg(rc == IDP_OK, "provision %s: %s", id, err.msg);
}

static void provision(const char *id, const char *mac, const struct fmt_key *key, int64_t now,
                      struct srv_issued *out)
{
	provision_with(&cfg, id, mac, key, now, out);
}

/* The SHA-256 of key's SPKI DER in hex, as the admin API names keys. */
static void key_sha256(const struct fmt_key *key, char hex[static 65])
{
	uint8_t der[FMT_KEY_SPKI_MAX], fp[32];
	size_t len = 0;
	ck_assert_int_eq(fmt_key_spki_der(key, der, &len, NULL), IDP_OK);
	(void)SHA256(der, len, fp);
	fmt_key_fingerprint_hex(fp, hex);
}

/* Exchange (purpose FMT_TOKEN_PROVISION) or renew token tok for id/key at now. */
static enum idp_err redeem(enum fmt_token_kind purpose, const struct srv_issued *tok,
                           const char *id, const struct fmt_key *key, int64_t now,
                           struct srv_issued *out)
{
	enum fmt_token_check failed;
	struct idp_error err = {0};
	if (purpose == FMT_TOKEN_PROVISION)
		return srv_token_exchange(st, state, &cfg, (const uint8_t *)tok->token,
		                          tok->token_len, id, key, NULL, NULL, now, out, &failed,
		                          &err);
	return srv_token_renew(st, state, &cfg, (const uint8_t *)tok->token, tok->token_len, id,
	                       key, NULL, NULL, now, out, &failed, &err);
}

static int64_t live(const char *id, int64_t now)
{
	int64_t n = -1;
	ck_assert_int_eq(srv_store_token_live(st, id, now, &n, NULL), IDP_OK);
	return n;
}

static int64_t count(enum srv_device_state s)
{
	int64_t n = -1;
	ck_assert_int_eq(srv_store_device_count(st, s, &n, NULL), IDP_OK);
	return n;
}

static int64_t flags(const char *kind)
{
	int64_t n = -1;
	ck_assert_int_eq(srv_store_flag_count(st, kind, &n, NULL), IDP_OK);
	return n;
}

static void digest(uint8_t out[32])
{
	ck_assert_int_eq(srv_store_digest(st, out, NULL), IDP_OK);
}

/* The token verifies as kind for id and key, as a relying party would. */
static void check_token(const struct srv_issued *r, enum fmt_token_kind kind, const char *id,
                        const struct fmt_key *key)
{
	char kid[SRV_TOKEN_KID_MAX], jkt[FMT_TOKEN_JKT_LEN + 1];
	ck_assert_int_eq(srv_token_kid(state, kid, NULL), IDP_OK);
	ck_assert_int_eq(fmt_token_jkt(key, jkt, NULL), IDP_OK);
	const struct fmt_token_key keys[] = {{.kid = kid, .key = state->token_key}};
	const struct fmt_token_policy p = {.iss = cfg.issuer,
	                                   .aud = cfg.audience,
	                                   .sub = id,
	                                   .jkt = jkt,
	                                   .kinds = kind,
	                                   .now = NOW + 1};
	struct fmt_token_claims c;
	struct idp_error err = {0};
	ck_assert_msg(fmt_token_verify((const uint8_t *)r->token, r->token_len, keys, 1, &p, &c,
	                               NULL, &err) == IDP_OK,
	              "%s", err.msg);
	struct srv_token t;
	ck_assert_int_eq(srv_store_token_get(st, c.jti, &t, NULL), IDP_OK);
	ck_assert_str_eq(t.device_id, id);
	ck_assert_int_eq(t.expires_at, r->expires_at);
}

START_TEST(test_provision_preloaded_key_approved_and_repeat_flagged)
{
	struct fmt_key *k = new_key();
	preload("dev-1", k, "02:00:00:00:00:01");
	struct srv_issued r;
	provision("dev-1", "02:00:00:00:00:01", k, NOW, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
	ck_assert_int_eq(r.expires_at, NOW + 300);
	check_token(&r, FMT_TOKEN_PROVISION, "dev-1", k);
	srv_issued_clear(&r);
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(st, "dev-1", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_APPROVED);
	ck_assert_int_eq(d.provisioned_at, NOW);
	ck_assert_int_eq(flags(NULL), 0);

	/* Again while its token is unused: the retry of a lost answer
	 * (formats/api.md §6.1), approved with a new token that names the
	 * undelivered one, not flagged as a repeat; a MAC that differs from
	 * the manifest's is flagged (policy "flag"). */
	struct srv_provision_cfg fc = cfg;
	fc.mac_mismatch = SRV_POLICY_FLAG;
	char first_jti[SRV_STORE_JTI_MAX + 1];
	struct srv_token t;
	ck_assert_int_eq(srv_store_token_latest(st, "dev-1", &t, NULL), IDP_OK);
	(void)snprintf(first_jti, sizeof(first_jti), "%s", t.jti);
	provision_with(&fc, "dev-1", "02:00:00:00:00:99", k, NOW + 10, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
	srv_issued_clear(&r);
	ck_assert_int_eq(flags("repeat-provision"), 0);
	ck_assert_int_eq(flags("mac-mismatch"), 1);
	ck_assert_int_eq(srv_store_token_latest(st, "dev-1", &t, NULL), IDP_OK);
	ck_assert_str_eq(t.parent, first_jti);
	ck_assert_int_eq(srv_store_token_get(st, first_jti, &t, NULL), IDP_OK);
	ck_assert_int_ne(t.revoked_at, 0);
	/* Again (a reset device, or a second retry): approved, and flagged. */
	provision_with(&fc, "dev-1", "02:00:00:00:00:99", k, NOW + 20, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
	srv_issued_clear(&r);
	ck_assert_int_eq(flags("repeat-provision"), 1);
	ck_assert_int_eq(srv_store_device_get(st, "dev-1", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.provisioned_at, NOW);
	fmt_key_free(k);
}
END_TEST

START_TEST(test_provision_preloaded_mac_records_key)
{
	struct fmt_key *k = new_key(), *k2 = new_key();
	preload("dev-m", NULL, "02:00:00:00:00:0a");
	preload("dev-n", NULL, "02:00:00:00:00:0b");
	struct srv_issued r;
	/* Wrong or missing MAC: refused, nothing recorded but the audit and flag. */
	provision("dev-m", "02:00:00:00:00:0c", k, NOW, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_REFUSED);
	ck_assert_int_eq(r.refusal, SRV_REFUSE_MAC_MISMATCH);
	ck_assert_ptr_null(r.token);
	provision("dev-m", NULL, k, NOW, &r);
	ck_assert_int_eq(r.refusal, SRV_REFUSE_MAC_MISMATCH);
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(st, "dev-m", &d, NULL), IDP_OK);
	ck_assert_uint_eq(d.pubkey_len, 0);
	ck_assert_int_eq(d.state, SRV_DEV_PRELOADED);

	/* Right MAC (any case): the key is recorded, approved. */
	provision("dev-m", "02:00:00:00:00:0A", k, NOW, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
	check_token(&r, FMT_TOKEN_PROVISION, "dev-m", k);
	srv_issued_clear(&r);
	ck_assert_int_eq(srv_store_device_get(st, "dev-m", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_APPROVED);
	ck_assert_uint_gt(d.pubkey_len, 0);

	/* Now the key is dev-m's: dev-n may not take it, nor dev-m another. */
	provision("dev-n", "02:00:00:00:00:0b", k, NOW, &r);
	ck_assert_int_eq(r.refusal, SRV_REFUSE_KEY_IN_USE);
	ck_assert_int_eq(flags("key-reuse"), 1);
	provision("dev-m", "02:00:00:00:00:0a", k2, NOW, &r);
	ck_assert_int_eq(r.refusal, SRV_REFUSE_KEY_MISMATCH);
	ck_assert_ptr_null(r.token);
	fmt_key_free(k);
	fmt_key_free(k2);
}
END_TEST

START_TEST(test_provision_unknown_pending_once_then_admin)
{
	struct fmt_key *k = new_key(), *other = new_key();
	struct srv_issued r;
	for (int i = 0; i < 5; i++) {
		provision("dev-u", "02:00:00:00:00:20", k, NOW + i, &r);
		ck_assert_int_eq(r.decision, SRV_DECISION_PENDING);
		ck_assert_int_eq(r.retry_after, 30);
		ck_assert_ptr_null(r.token);
	}
	ck_assert_int_eq(count(0), 1);
	ck_assert_int_eq(count(SRV_DEV_PENDING), 1);
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(st, "dev-u", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.attempts, 5);
	/* Someone else asking under the same ID with another key: the ID is
	 * contested; both wait, flagged; approval must name the key. */
	provision("dev-u", "02:00:00:00:00:21", other, NOW, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_PENDING);
	provision("dev-u", "02:00:00:00:00:21", other, NOW + 1, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_PENDING);
	struct srv_flag f;
	ck_assert_int_eq(srv_store_flag_get(st, "contested", "dev-u", &f, NULL), IDP_OK);
	ck_assert_int_eq(f.count, 2);
	char fk[65], fo[65], got[65];
	key_sha256(k, fk);
	key_sha256(other, fo);
	ck_assert_ptr_nonnull(strstr(f.detail, fo));
	uint8_t before[32], after[32];
	digest(before);
	struct idp_error err = {0};
	ck_assert_int_eq(
	        srv_admin_decide(st, "dev-u", SRV_ADMIN_APPROVE, NULL, NOW + 50, got, &err),
	        IDP_E_CONFLICT);
	ck_assert_ptr_nonnull(strstr(err.msg, "contested"));
	char wrong[65];
	memset(wrong, 'a', 64);
	wrong[64] = '\0';
	ck_assert_int_eq(
	        srv_admin_decide(st, "dev-u", SRV_ADMIN_APPROVE, wrong, NOW + 50, got, &err),
	        IDP_E_CONFLICT);
	ck_assert_int_eq(
	        srv_admin_decide(st, "dev-u", SRV_ADMIN_APPROVE, "xyz", NOW + 50, got, &err),
	        IDP_E_FORMAT);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	ck_assert_int_eq(srv_admin_decide(st, "dev-u", SRV_ADMIN_APPROVE, fk, NOW + 50, got, NULL),
	                 IDP_OK);
	ck_assert_str_eq(got, fk);
	ck_assert_int_eq(
	        srv_admin_decide(st, "dev-u", SRV_ADMIN_REJECT, NULL, NOW + 50, NULL, NULL),
	        IDP_E_CONFLICT);
	ck_assert_int_eq(srv_admin_decide(st, "nope", SRV_ADMIN_APPROVE, NULL, NOW, NULL, NULL),
	                 IDP_E_NOTFOUND);
	provision("dev-u", "02:00:00:00:00:20", k, NOW + 60, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
	check_token(&r, FMT_TOKEN_PROVISION, "dev-u", k);
	srv_issued_clear(&r);

	/* One key asking under a second ID: pending, and flagged as key reuse. */
	provision("dev-u2", NULL, k, NOW + 70, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_PENDING);
	ck_assert_int_eq(flags("key-reuse"), 1);
	fmt_key_free(k);
	fmt_key_free(other);
}
END_TEST

START_TEST(test_provision_rejected_and_revoked_get_nothing)
{
	struct fmt_key *k = new_key(), *k2 = new_key();
	struct srv_issued r;
	provision("dev-r", NULL, k, NOW, &r);
	ck_assert_int_eq(srv_admin_decide(st, "dev-r", SRV_ADMIN_REJECT, NULL, NOW, NULL, NULL),
	                 IDP_OK);
	provision("dev-r", NULL, k, NOW + 1, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_REFUSED);
	ck_assert_int_eq(r.refusal, SRV_REFUSE_REJECTED);
	ck_assert_ptr_null(r.token);

	preload("dev-v", k2, "");
	ck_assert_int_eq(srv_admin_decide(st, "dev-v", SRV_ADMIN_REVOKE, NULL, NOW, NULL, NULL),
	                 IDP_OK);
	provision("dev-v", NULL, k2, NOW + 1, &r);
	ck_assert_int_eq(r.refusal, SRV_REFUSE_REVOKED);
	ck_assert_ptr_null(r.token);
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(st, "dev-v", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_REVOKED);
	ck_assert_int_eq(d.provisioned_at, 0);
	fmt_key_free(k);
	fmt_key_free(k2);
}
END_TEST

START_TEST(test_token_exchange_once_and_refusals_change_nothing)
{
	struct fmt_key *k = new_key(), *thief = new_key();
	preload("dev-t", k, "");
	struct srv_issued prov, dev, r;
	provision("dev-t", NULL, k, NOW, &prov);
	ck_assert_int_eq(prov.decision, SRV_DECISION_APPROVED);
	uint8_t before[32], after[32];
	enum fmt_token_check failed;
	struct idp_error err = {0};

	/* Presented by another key (a relay that stole the token). */
	digest(before);
	ck_assert_int_eq(srv_token_exchange(st, state, &cfg, (const uint8_t *)prov.token,
	                                    prov.token_len, "dev-t", thief, NULL, NULL, NOW + 1, &r,
	                                    &failed, &err),
	                 IDP_E_DENIED);
	ck_assert_int_eq(failed, FMT_TOKEN_CHECK_CNF);
	/* Forged: one byte of the signature changed. */
	char *forged = strdup(prov.token);
	ck_assert_ptr_nonnull(forged);
	forged[prov.token_len - 5] = forged[prov.token_len - 5] == 'A' ? 'B' : 'A';
	ck_assert_int_ne(srv_token_exchange(st, state, &cfg, (const uint8_t *)forged,
	                                    prov.token_len, "dev-t", k, NULL, NULL, NOW + 1, &r,
	                                    &failed, &err),
	                 IDP_OK);
	ck_assert_int_ne(failed, FMT_TOKEN_CHECK_OK);
	free(forged);
	/* Another audience. */
	struct srv_provision_cfg other = cfg;
	other.audience = "some-other-service";
	ck_assert_int_eq(srv_token_exchange(st, state, &other, (const uint8_t *)prov.token,
	                                    prov.token_len, "dev-t", k, NULL, NULL, NOW + 1, &r,
	                                    &failed, &err),
	                 IDP_E_DENIED);
	ck_assert_int_eq(failed, FMT_TOKEN_CHECK_AUD);
	/* Expired. */
	ck_assert_int_eq(srv_token_exchange(st, state, &cfg, (const uint8_t *)prov.token,
	                                    prov.token_len, "dev-t", k, NULL, NULL, NOW + 1000, &r,
	                                    &failed, &err),
	                 IDP_E_EXPIRED);
	digest(after);
	ck_assert_mem_eq(before, after, 32);

	/* The real exchange, once. */
	ck_assert_int_eq(srv_token_exchange(st, state, &cfg, (const uint8_t *)prov.token,
	                                    prov.token_len, "dev-t", k, NULL, NULL, NOW + 1, &dev,
	                                    &failed, &err),
	                 IDP_OK);
	check_token(&dev, FMT_TOKEN_DEVICE, "dev-t", k);
	ck_assert_int_eq(dev.expires_at, NOW + 1 + 30 * 86400);
	/* Once dev is used (renewed below), the provisioning token is spent for good. */
	digest(before);
	/* A device token is not a provisioning token. */
	ck_assert_int_eq(srv_token_exchange(st, state, &cfg, (const uint8_t *)dev.token,
	                                    dev.token_len, "dev-t", k, NULL, NULL, NOW + 2, &r,
	                                    &failed, &err),
	                 IDP_E_DENIED);
	ck_assert_int_eq(failed, FMT_TOKEN_CHECK_KIND);
	digest(after);
	ck_assert_mem_eq(before, after, 32);

	/* Renewal: once per token; then revoked devices get nothing. */
	struct srv_issued dev2;
	ck_assert_int_eq(srv_token_renew(st, state, &cfg, (const uint8_t *)dev.token, dev.token_len,
	                                 "dev-t", k, NULL, NULL, NOW + 100, &dev2, &failed, &err),
	                 IDP_OK);
	ck_assert_int_eq(dev2.expires_at, NOW + 100 + 30 * 86400);
	/* dev2 is used in turn: from now on dev and prov are spent for good
	 * (a retry is for a lost answer only, test_token_retry_after_lost_answer). */
	struct srv_issued dev3;
	ck_assert_int_eq(redeem(FMT_TOKEN_DEVICE, &dev2, "dev-t", k, NOW + 100, &dev3), IDP_OK);
	srv_issued_clear(&dev3);
	digest(before);
	ck_assert_int_eq(srv_token_exchange(st, state, &cfg, (const uint8_t *)prov.token,
	                                    prov.token_len, "dev-t", k, NULL, NULL, NOW + 101, &r,
	                                    &failed, &err),
	                 IDP_E_CONFLICT);
	ck_assert_int_eq(srv_token_renew(st, state, &cfg, (const uint8_t *)dev.token, dev.token_len,
	                                 "dev-t", k, NULL, NULL, NOW + 101, &r, &failed, &err),
	                 IDP_E_CONFLICT);
	ck_assert_int_eq(srv_token_renew(st, state, &cfg, (const uint8_t *)prov.token,
	                                 prov.token_len, "dev-t", k, NULL, NULL, NOW + 101, &r,
	                                 &failed, &err),
	                 IDP_E_DENIED);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	ck_assert_int_eq(
	        srv_admin_decide(st, "dev-t", SRV_ADMIN_REVOKE, NULL, NOW + 200, NULL, NULL),
	        IDP_OK);
	digest(before);
	ck_assert_int_eq(srv_token_renew(st, state, &cfg, (const uint8_t *)dev2.token,
	                                 dev2.token_len, "dev-t", k, NULL, NULL, NOW + 300, &r,
	                                 &failed, &err),
	                 IDP_E_DENIED);
	ck_assert_ptr_nonnull(strstr(err.msg, "revoked"));
	ck_assert_ptr_null(r.token);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	srv_issued_clear(&prov);
	srv_issued_clear(&dev);
	srv_issued_clear(&dev2);
	fmt_key_free(k);
	fmt_key_free(thief);
}
END_TEST

/* Re-provisioning revokes the device's earlier tokens: one chain is live. */
START_TEST(test_provision_again_revokes_earlier_tokens)
{
	struct fmt_key *k = new_key();
	preload("dev-a", k, "02:00:00:00:00:40");
	struct srv_issued p1, d1, p2, d2, r;
	provision("dev-a", "02:00:00:00:00:40", k, NOW, &p1);
	ck_assert_int_eq(redeem(FMT_TOKEN_PROVISION, &p1, "dev-a", k, NOW + 1, &d1), IDP_OK);
	ck_assert_int_eq(live("dev-a", NOW + 2), 1);
	provision("dev-a", "02:00:00:00:00:40", k, NOW + 10, &p2); /* a reset in the field */
	ck_assert_int_eq(p2.decision, SRV_DECISION_APPROVED);
	ck_assert_int_eq(live("dev-a", NOW + 11), 1);
	uint8_t before[32], after[32];
	digest(before);
	/* The older chain is refused: its device token and its provisioning token. */
	ck_assert_int_eq(redeem(FMT_TOKEN_DEVICE, &d1, "dev-a", k, NOW + 12, &r), IDP_E_DENIED);
	ck_assert_ptr_null(r.token);
	ck_assert_int_eq(redeem(FMT_TOKEN_PROVISION, &p1, "dev-a", k, NOW + 12, &r), IDP_E_DENIED);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	ck_assert_int_eq(redeem(FMT_TOKEN_PROVISION, &p2, "dev-a", k, NOW + 13, &d2), IDP_OK);
	ck_assert_int_eq(live("dev-a", NOW + 14), 1);
	/* Many resets in a row still leave one live token. */
	for (int i = 0; i < 20; i++) {
		provision("dev-a", "02:00:00:00:00:40", k, NOW + 20 + i, &r);
		srv_issued_clear(&r);
	}
	ck_assert_int_eq(live("dev-a", NOW + 50), 1);
	ck_assert_int_eq(redeem(FMT_TOKEN_DEVICE, &d2, "dev-a", k, NOW + 51, &r), IDP_E_DENIED);
	/* An administrator's revocation revokes every token too. */
	ck_assert_int_eq(
	        srv_admin_decide(st, "dev-a", SRV_ADMIN_REVOKE, NULL, NOW + 60, NULL, NULL),
	        IDP_OK);
	ck_assert_int_eq(live("dev-a", NOW + 61), 0);
	srv_issued_clear(&p1);
	srv_issued_clear(&d1);
	srv_issued_clear(&p2);
	srv_issued_clear(&d2);
	fmt_key_free(k);
}
END_TEST

/* The server committed an exchange or renewal and its answer was lost (the
 * server died before answering, or the connection did): the device's retry
 * with the same token and a new proof gets a new token, the undelivered one
 * is revoked, and exactly one token is live. */
START_TEST(test_token_retry_after_lost_answer)
{
	struct fmt_key *k = new_key(), *thief = new_key();
	preload("dev-l", k, "");
	struct srv_issued p, lost, d, lost2, d2, r;
	provision("dev-l", NULL, k, NOW, &p);
	ck_assert_int_eq(redeem(FMT_TOKEN_PROVISION, &p, "dev-l", k, NOW + 1, &lost), IDP_OK);
	/* The answer holding "lost" never arrived; the device retries. */
	ck_assert_int_eq(redeem(FMT_TOKEN_PROVISION, &p, "dev-l", k, NOW + 2, &d), IDP_OK);
	check_token(&d, FMT_TOKEN_DEVICE, "dev-l", k);
	ck_assert_int_eq(live("dev-l", NOW + 3), 1);
	struct srv_token t;
	struct fmt_token_claims c;
	ck_assert_int_eq(
	        fmt_token_decode_unverified((const uint8_t *)lost.token, lost.token_len, &c, NULL),
	        IDP_OK);
	ck_assert_int_eq(srv_store_token_get(st, c.jti, &t, NULL), IDP_OK);
	ck_assert_int_ne(t.revoked_at, 0);
	/* The undelivered token is dead, also for renewal. */
	ck_assert_int_eq(redeem(FMT_TOKEN_DEVICE, &lost, "dev-l", k, NOW + 4, &r), IDP_E_DENIED);
	/* Not by another key (the token is bound to the device's). */
	uint8_t before[32], after[32];
	digest(before);
	enum fmt_token_check failed;
	ck_assert_int_eq(srv_token_exchange(st, state, &cfg, (const uint8_t *)p.token, p.token_len,
	                                    "dev-l", thief, NULL, NULL, NOW + 5, &r, &failed, NULL),
	                 IDP_E_DENIED);
	digest(after);
	ck_assert_mem_eq(before, after, 32);

	/* The same for a renewal. */
	ck_assert_int_eq(redeem(FMT_TOKEN_DEVICE, &d, "dev-l", k, NOW + 10, &lost2), IDP_OK);
	ck_assert_int_eq(redeem(FMT_TOKEN_DEVICE, &d, "dev-l", k, NOW + 11, &d2), IDP_OK);
	ck_assert_int_eq(live("dev-l", NOW + 12), 1);
	ck_assert_int_eq(redeem(FMT_TOKEN_DEVICE, &lost2, "dev-l", k, NOW + 12, &r), IDP_E_DENIED);

	/* Once the new token was used, the old one is spent for good. */
	srv_issued_clear(&r);
	ck_assert_int_eq(redeem(FMT_TOKEN_DEVICE, &d2, "dev-l", k, NOW + 20, &r), IDP_OK);
	srv_issued_clear(&r);
	digest(before);
	ck_assert_int_eq(redeem(FMT_TOKEN_DEVICE, &d, "dev-l", k, NOW + 21, &r), IDP_E_CONFLICT);
	ck_assert_int_eq(redeem(FMT_TOKEN_PROVISION, &p, "dev-l", k, NOW + 21, &r), IDP_E_CONFLICT);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	ck_assert_int_eq(live("dev-l", NOW + 22), 1);
	srv_issued_clear(&p);
	srv_issued_clear(&lost);
	srv_issued_clear(&d);
	srv_issued_clear(&lost2);
	srv_issued_clear(&d2);
	fmt_key_free(k);
	fmt_key_free(thief);
}
END_TEST

/* A proof is used once: the same signed bytes again are refused, with
 * nothing changed; after its skew window it is forgotten. */
START_TEST(test_provision_proof_single_use)
{
	struct fmt_key *k = new_key();
	preload("dev-p", k, "");
	struct srv_proof pr = {.expires_at = NOW + 301};
	memset(pr.hash, 0x42, sizeof(pr.hash));
	const struct srv_provision_req req = {
	        .device_id = "dev-p", .key = k, .proof = &pr, .now = NOW};
	struct srv_issued r;
	ck_assert_int_eq(srv_provision(st, state, &cfg, &req, &r, NULL), IDP_OK);
	ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
	srv_issued_clear(&r);
	uint8_t before[32], after[32];
	digest(before);
	struct idp_error err = {0};
	ck_assert_int_eq(srv_provision(st, state, &cfg, &req, &r, &err), IDP_E_CONFLICT);
	ck_assert_int_eq(r.refusal, SRV_REFUSE_PROOF);
	ck_assert_ptr_null(r.token);
	ck_assert_ptr_nonnull(strstr(err.msg, "already used"));
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	const struct srv_provision_req later = {
	        .device_id = "dev-p", .key = k, .proof = &pr, .now = NOW + 301};
	ck_assert_int_eq(srv_provision(st, state, &cfg, &later, &r, NULL), IDP_OK);
	srv_issued_clear(&r);
	fmt_key_free(k);
}
END_TEST

/* mac-mismatch: a device known with its key presents another MAC. */
START_TEST(test_provision_mac_mismatch_policy)
{
	struct fmt_key *k = new_key(), *other = new_key();
	struct srv_provision_cfg c = cfg;
	c.mac_mismatch = (enum srv_policy)_i;
	preload_in_batch("dev-m", k, "02:00:00:00:00:50");
	struct srv_issued r;
	provision_with(&c, "dev-m", "02:00:00:00:00:51", k, NOW, &r);
	ck_assert_int_eq(flags("mac-mismatch"), 1);
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(st, "dev-m", &d, NULL), IDP_OK);
	switch (c.mac_mismatch) {
	case SRV_POLICY_FLAG:
		ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
		ck_assert_int_eq(d.state, SRV_DEV_APPROVED);
		break;
	case SRV_POLICY_REFUSE:
		ck_assert_int_eq(r.decision, SRV_DECISION_REFUSED);
		ck_assert_int_eq(r.refusal, SRV_REFUSE_MAC_MISMATCH);
		ck_assert_int_eq(d.state, SRV_DEV_PRELOADED);
		ck_assert_str_eq(d.mac, "02:00:00:00:00:50");
		break;
	case SRV_POLICY_HOLD:
		ck_assert_int_eq(r.decision, SRV_DECISION_PENDING);
		ck_assert_ptr_null(r.token);
		ck_assert_int_eq(d.state, SRV_DEV_PENDING);
		/* Held, its manifest key still decides: another key does not
		 * contest it, it is refused. */
		provision_with(&c, "dev-m", "02:00:00:00:00:51", other, NOW + 1, &r);
		ck_assert_int_eq(r.refusal, SRV_REFUSE_KEY_MISMATCH);
		/* Approved by an administrator, with the MAC it presented. */
		ck_assert_int_eq(
		        srv_admin_decide(st, "dev-m", SRV_ADMIN_APPROVE, NULL, NOW + 1, NULL, NULL),
		        IDP_OK);
		srv_issued_clear(&r);
		provision_with(&c, "dev-m", "02:00:00:00:00:51", k, NOW + 2, &r);
		ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
		break;
	}
	srv_issued_clear(&r);
	fmt_key_free(k);
	fmt_key_free(other);
}
END_TEST

/* identity-reuse: an unknown ID presents a key another device holds. */
START_TEST(test_provision_identity_reuse_policy)
{
	struct fmt_key *k = new_key();
	struct srv_provision_cfg c = cfg;
	c.identity_reuse = (enum srv_policy)_i;
	preload("dev-o", k, "");
	struct srv_issued r;
	provision_with(&c, "dev-x", "02:00:00:00:00:60", k, NOW, &r);
	ck_assert_int_eq(flags("key-reuse"), 1);
	struct srv_device d;
	if (c.identity_reuse == SRV_POLICY_REFUSE) {
		ck_assert_int_eq(r.decision, SRV_DECISION_REFUSED);
		ck_assert_int_eq(r.refusal, SRV_REFUSE_KEY_IN_USE);
		ck_assert_int_eq(srv_store_device_get(st, "dev-x", &d, NULL), IDP_E_NOTFOUND);
	} else {
		ck_assert_int_eq(r.decision, SRV_DECISION_PENDING);
		ck_assert_int_eq(srv_store_device_get(st, "dev-x", &d, NULL), IDP_OK);
		ck_assert_int_eq(d.state, SRV_DEV_PENDING);
	}
	fmt_key_free(k);
}
END_TEST

struct flag_seen {
	int n;
	struct srv_flag first;
};

static int flag_cb(void *ctx, const struct srv_flag *f)
{
	struct flag_seen *s = ctx;
	if (s->n++ == 0)
		s->first = *f;
	return 0;
}

/* A flood of repeats for one device stays one flag with a count, so a
 * later flag of another kind is still on top. */
START_TEST(test_flags_aggregate_and_filter)
{
	struct fmt_key *k = new_key();
	preload("dev-f", k, "");
	struct srv_issued r;
	for (int i = 0; i < 1100; i++) {
		provision("dev-f", NULL, k, NOW + i, &r);
		ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
		srv_issued_clear(&r);
	}
	ck_assert_int_eq(flags("repeat-provision"), 1);
	provision("dev-g", NULL, k, NOW + 2000, &r); /* the same key under another ID */
	struct flag_seen s = {0};
	struct srv_flag_query q = {.limit = 1};
	ck_assert_int_eq(srv_store_flag_foreach(st, &q, flag_cb, &s, NULL), IDP_OK);
	ck_assert_int_eq(s.n, 1);
	ck_assert_str_eq(s.first.kind, "key-reuse");
	ck_assert_str_eq(s.first.subject, "dev-g");
	/* Next page, by kind, by device. */
	q.before_seq = s.first.seq;
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(srv_store_flag_foreach(st, &q, flag_cb, &s, NULL), IDP_OK);
	ck_assert_str_eq(s.first.kind, "repeat-provision");
	/* Each approval's first repeat is taken for the retry of a lost answer
	 * (formats/api.md §6.1): every second one is flagged. */
	ck_assert_int_eq(s.first.count, 549);
	ck_assert_int_eq(s.first.created_at, NOW + 2);
	ck_assert_int_eq(s.first.last_seen, NOW + 1098);
	struct srv_flag_query byk = {.limit = 10, .kind = "repeat-provision"};
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(srv_store_flag_foreach(st, &byk, flag_cb, &s, NULL), IDP_OK);
	ck_assert_int_eq(s.n, 1);
	struct srv_flag_query byd = {.limit = 10, .subject = "dev-g"};
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(srv_store_flag_foreach(st, &byd, flag_cb, &s, NULL), IDP_OK);
	ck_assert_int_eq(s.n, 1);
	ck_assert_str_eq(s.first.kind, "key-reuse");
	fmt_key_free(k);
}
END_TEST

static int count_contender(void *ctx, const struct srv_contender *c)
{
	(void)c;
	(*(int *)ctx)++;
	return 0;
}

/* pending-lifetime deletes silent claims (and their contenders) but never a
 * manifest's device that a policy holds pending. */
START_TEST(test_pending_expiry_keeps_held_manifest_devices)
{
	struct fmt_key *k = new_key(), *k1 = new_key(), *k2 = new_key(), *k3 = new_key();
	struct srv_provision_cfg c = cfg;
	c.pending.lifetime = 100;
	preload_in_batch("dev-h", k, "02:00:00:00:00:70");
	struct srv_issued r;
	provision_with(&c, "dev-h", "02:00:00:00:00:71", k, NOW, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_PENDING); /* held: MAC mismatch */
	provision_with(&c, "dev-q", "02:00:00:00:00:72", k1, NOW, &r);
	provision_with(&c, "dev-q", "02:00:00:00:00:73", k2, NOW, &r); /* contested */
	int n = 0;
	ck_assert_int_eq(srv_store_contender_foreach(st, "dev-q", count_contender, &n, NULL),
	                 IDP_OK);
	ck_assert_int_eq(n, 1);
	/* Much later, the next unknown device expires the silent ones. */
	provision_with(&c, "dev-z", "02:00:00:00:00:74", k3, NOW + 1000, &r);
	struct srv_device d;
	ck_assert_int_eq(srv_store_device_get(st, "dev-q", &d, NULL), IDP_E_NOTFOUND);
	n = 0;
	ck_assert_int_eq(srv_store_contender_foreach(st, "dev-q", count_contender, &n, NULL),
	                 IDP_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(srv_store_device_get(st, "dev-h", &d, NULL), IDP_OK);
	ck_assert_int_eq(d.state, SRV_DEV_PENDING);
	ck_assert_str_eq(d.batch_id, "b-1");
	fmt_key_free(k);
	fmt_key_free(k1);
	fmt_key_free(k2);
	fmt_key_free(k3);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("provision");
	TCase *tc = tcase_create("decisions");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_provision_preloaded_key_approved_and_repeat_flagged);
	tcase_add_test(tc, test_provision_preloaded_mac_records_key);
	tcase_add_test(tc, test_provision_unknown_pending_once_then_admin);
	tcase_add_test(tc, test_provision_rejected_and_revoked_get_nothing);
	tcase_add_test(tc, test_token_exchange_once_and_refusals_change_nothing);
	tcase_add_test(tc, test_provision_again_revokes_earlier_tokens);
	tcase_add_test(tc, test_token_retry_after_lost_answer);
	tcase_add_test(tc, test_provision_proof_single_use);
	tcase_add_loop_test(tc, test_provision_mac_mismatch_policy, SRV_POLICY_HOLD,
	                    SRV_POLICY_FLAG + 1);
	tcase_add_loop_test(tc, test_provision_identity_reuse_policy, SRV_POLICY_HOLD,
	                    SRV_POLICY_REFUSE + 1);
	tcase_add_test(tc, test_flags_aggregate_and_filter);
	tcase_add_test(tc, test_pending_expiry_keeps_held_manifest_devices);
	suite_add_tcase(s, tc);
	return s;
}
