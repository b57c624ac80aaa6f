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

static void provision(const char *id, const char *mac, const struct fmt_key *key, int64_t now,
                      struct srv_issued *out)
{
	const struct srv_provision_req req = {.device_id = id, .mac = mac, .key = key, .now = now};
	struct idp_error err = {0};
	enum idp_err rc = srv_provision(st, state, &cfg, &req, out, &err);
	ck_assert_msg(rc == IDP_OK, "provision %s: %s", id, err.msg);
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

	/* Again (a reset device): approved, and flagged for review; a MAC that
	 * differs from the manifest's is flagged too. */
	provision("dev-1", "02:00:00:00:00:99", k, NOW + 10, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_APPROVED);
	srv_issued_clear(&r);
	ck_assert_int_eq(flags("repeat-provision"), 1);
	ck_assert_int_eq(flags("mac-mismatch"), 1);
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
	/* Someone else asking under the same ID with another key: refused, flagged. */
	provision("dev-u", "02:00:00:00:00:20", other, NOW, &r);
	ck_assert_int_eq(r.refusal, SRV_REFUSE_KEY_MISMATCH);
	ck_assert_int_eq(flags("key-mismatch"), 1);

	ck_assert_int_eq(srv_admin_decide(st, "dev-u", SRV_ADMIN_APPROVE, NOW + 50, NULL), IDP_OK);
	ck_assert_int_eq(srv_admin_decide(st, "dev-u", SRV_ADMIN_REJECT, NOW + 50, NULL),
	                 IDP_E_CONFLICT);
	ck_assert_int_eq(srv_admin_decide(st, "nope", SRV_ADMIN_APPROVE, NOW, NULL),
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
	ck_assert_int_eq(srv_admin_decide(st, "dev-r", SRV_ADMIN_REJECT, NOW, NULL), IDP_OK);
	provision("dev-r", NULL, k, NOW + 1, &r);
	ck_assert_int_eq(r.decision, SRV_DECISION_REFUSED);
	ck_assert_int_eq(r.refusal, SRV_REFUSE_REJECTED);
	ck_assert_ptr_null(r.token);

	preload("dev-v", k2, "");
	ck_assert_int_eq(srv_admin_decide(st, "dev-v", SRV_ADMIN_REVOKE, NOW, NULL), IDP_OK);
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
	                                    prov.token_len, "dev-t", thief, NULL, NOW + 1, &r,
	                                    &failed, &err),
	                 IDP_E_DENIED);
	ck_assert_int_eq(failed, FMT_TOKEN_CHECK_CNF);
	/* Forged: one byte of the signature changed. */
	char *forged = strdup(prov.token);
	ck_assert_ptr_nonnull(forged);
	forged[prov.token_len - 5] = forged[prov.token_len - 5] == 'A' ? 'B' : 'A';
	ck_assert_int_ne(srv_token_exchange(st, state, &cfg, (const uint8_t *)forged,
	                                    prov.token_len, "dev-t", k, NULL, NOW + 1, &r, &failed,
	                                    &err),
	                 IDP_OK);
	ck_assert_int_ne(failed, FMT_TOKEN_CHECK_OK);
	free(forged);
	/* Another audience. */
	struct srv_provision_cfg other = cfg;
	other.audience = "some-other-service";
	ck_assert_int_eq(srv_token_exchange(st, state, &other, (const uint8_t *)prov.token,
	                                    prov.token_len, "dev-t", k, NULL, NOW + 1, &r, &failed,
	                                    &err),
	                 IDP_E_DENIED);
	ck_assert_int_eq(failed, FMT_TOKEN_CHECK_AUD);
	/* Expired. */
	ck_assert_int_eq(srv_token_exchange(st, state, &cfg, (const uint8_t *)prov.token,
	                                    prov.token_len, "dev-t", k, NULL, NOW + 1000, &r,
	                                    &failed, &err),
	                 IDP_E_EXPIRED);
	digest(after);
	ck_assert_mem_eq(before, after, 32);

	/* The real exchange, once. */
	ck_assert_int_eq(srv_token_exchange(st, state, &cfg, (const uint8_t *)prov.token,
	                                    prov.token_len, "dev-t", k, NULL, NOW + 1, &dev,
	                                    &failed, &err),
	                 IDP_OK);
	check_token(&dev, FMT_TOKEN_DEVICE, "dev-t", k);
	ck_assert_int_eq(dev.expires_at, NOW + 1 + 30 * 86400);
	digest(before);
	ck_assert_int_eq(srv_token_exchange(st, state, &cfg, (const uint8_t *)prov.token,
	                                    prov.token_len, "dev-t", k, NULL, NOW + 2, &r, &failed,
	                                    &err),
	                 IDP_E_CONFLICT);
	/* A device token is not a provisioning token. */
	ck_assert_int_eq(srv_token_exchange(st, state, &cfg, (const uint8_t *)dev.token,
	                                    dev.token_len, "dev-t", k, NULL, NOW + 2, &r, &failed,
	                                    &err),
	                 IDP_E_DENIED);
	ck_assert_int_eq(failed, FMT_TOKEN_CHECK_KIND);
	digest(after);
	ck_assert_mem_eq(before, after, 32);

	/* Renewal: once per token; then revoked devices get nothing. */
	struct srv_issued dev2;
	ck_assert_int_eq(srv_token_renew(st, state, &cfg, (const uint8_t *)dev.token, dev.token_len,
	                                 "dev-t", k, NULL, NOW + 100, &dev2, &failed, &err),
	                 IDP_OK);
	ck_assert_int_eq(dev2.expires_at, NOW + 100 + 30 * 86400);
	digest(before);
	ck_assert_int_eq(srv_token_renew(st, state, &cfg, (const uint8_t *)dev.token, dev.token_len,
	                                 "dev-t", k, NULL, NOW + 101, &r, &failed, &err),
	                 IDP_E_CONFLICT);
	ck_assert_int_eq(srv_token_renew(st, state, &cfg, (const uint8_t *)prov.token,
	                                 prov.token_len, "dev-t", k, NULL, NOW + 101, &r, &failed,
	                                 &err),
	                 IDP_E_DENIED);
	digest(after);
	ck_assert_mem_eq(before, after, 32);
	ck_assert_int_eq(srv_admin_decide(st, "dev-t", SRV_ADMIN_REVOKE, NOW + 200, NULL), IDP_OK);
	digest(before);
	ck_assert_int_eq(srv_token_renew(st, state, &cfg, (const uint8_t *)dev2.token,
	                                 dev2.token_len, "dev-t", k, NULL, NOW + 300, &r, &failed,
	                                 &err),
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
	suite_add_tcase(s, tc);
	return s;
}
