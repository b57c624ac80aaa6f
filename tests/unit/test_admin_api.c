/*
 * test_admin_api.c - formats/admin_api: every body kind survives encode ->
 * parse -> encode unchanged; member order is the spec's (golden texts); a
 * missing, mistyped, malformed, unknown (requests) or oversized member is
 * refused with an error naming it, by the parser and by the encoder alike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/admin_api.h"
#include "tests/unit/check_main.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct fmt_admin_contender contenders[] = {
        {.key_sha256 = HEX_B, .mac = "02:00:5e:00:00:02", .first_seen = 10, .last_seen = 20,
         .attempts = 3},
        {.key_sha256 = HEX_A, .mac = NULL, .first_seen = 11, .last_seen = 11, .attempts = 1},
};

static const struct fmt_admin_station_add s_add = {.id = "station-01",
                                                   .public_key = "-----BEGIN PUBLIC KEY-----\n"};
static const struct fmt_admin_target s_target = {.id = "dev-0001"};
static const struct fmt_admin_ca_add s_ca = {.pem = "PEM", .name = "factory-a"};
static const struct fmt_admin_approve s_approve = {.id = "dev-1", .key_sha256 = HEX_A};
static const struct fmt_admin_release s_release = {.kind = "mac", .value = "02:1a:2b:00:00:01"};
static const struct fmt_admin_rotate s_rotate = {0};
static const struct fmt_admin_done s_done = {.id = "dev-1", .key_sha256 = HEX_B};
static const struct fmt_admin_station s_station = {
        .id = "station-01", .enabled = true, .key_sha256 = HEX_A, .created_at = 1764526805};
static const struct fmt_admin_device s_device = {.id = "dev-p1",
                                                 .state = "pending",
                                                 .mac = NULL,
                                                 .serial = NULL,
                                                 .batch_id = NULL,
                                                 .has_key = true,
                                                 .key_sha256 = HEX_A,
                                                 .updated_at = 1764526805,
                                                 .attempts = 4,
                                                 .contested = true,
                                                 .other_keys = contenders,
                                                 .n_other_keys = 2};
static const struct fmt_admin_flag s_flag = {.seq = 7,
                                             .kind = "key-reuse",
                                             .subject = "dev-1",
                                             .detail = "",
                                             .count = 2,
                                             .first_seen = 1,
                                             .last_seen = 2};
static const struct fmt_admin_audit_entry s_entry = {
        .seq = 1, .at = 5, .event = "admin.station_added", .subject = "station-01",
        .actor = "admin"};
static const struct fmt_admin_audit_check s_check = {.intact = false,
                                                     .entries = 2,
                                                     .head_seq = 2,
                                                     .head_hash = HEX_B,
                                                     .broken_seq = 3,
                                                     .broken_checkpoint = 2,
                                                     .reason = "entry 3: hash does not match",
                                                     .checkpoints = 1,
                                                     .checkpoint_seq = 1,
                                                     .checkpoint_at = 4,
                                                     .truncated = false};
static const struct fmt_admin_unprovisioned s_unprov = {.id = "dev-0002",
                                                        .state = "preloaded",
                                                        .batch_id = "b-1",
                                                        .station_id = "station-01",
                                                        .imported_at = 100,
                                                        .age = 259200,
                                                        .attempts = 0};

static const struct fmt_admin_flag_resolve s_resolve = {.seq = 17};
static const struct fmt_admin_credential_add s_cred_add = {.name = "ops.view", .role = "viewer"};
static const struct fmt_admin_name s_name = {.name = "ops.view"};
static const struct fmt_admin_oob_add s_oob_add = {
        .device_id = "dev-o1", .verifier = "AAAA", .expires_in = 7200};
static const struct fmt_admin_suspend s_suspend = {.reason = "line 3 audit"};
static const struct fmt_admin_allow_entry s_allow_entry = {.entry = "idpd-b.local:9443"};
static const struct fmt_admin_whoami s_whoami = {.name = "admin", .role = "admin"};
static const struct fmt_admin_secret s_secret = {
        .name = "ops", .role = "admin", .secret = "c2VjcmV0"};
static const struct fmt_admin_credential s_cred = {
        .name = "admin", .role = "admin", .source = "state-dir", .created_at = 0, .revoked_at = 0};
static const struct fmt_admin_oob s_oob = {
        .device_id = "dev-o1", .created_at = 1, .expires_at = 2, .used_at = 0, .failures = 3};
static const struct fmt_admin_suspended s_suspended = {.suspended = false};
static const struct fmt_admin_seen seen[] = {
        {.name = "idprovd on b", .host = "b.local", .addr = "10.0.0.2", .port = 9443, .fp = NULL,
         .allowed = false},
};
static const struct fmt_admin_suspension s_suspension = {.suspended = true,
                                                         .reason = "rogue",
                                                         .since = 5,
                                                         .watching = true,
                                                         .seen = seen,
                                                         .n_seen = 1};
static const struct fmt_admin_allow s_allow = {.entry = HEX_A, .added_at = 9};
static const struct fmt_admin_batch chain[] = {
        {.station_id = "station-01", .sequence = 1, .missing = true},
        {.station_id = "station-01",
         .sequence = 2,
         .id = "b-2",
         .state = "imported",
         .product = "sensor-v2",
         .devices = 0,
         .imported_at = 1764526805,
         .hash = HEX_A,
         .prev_hash = HEX_B,
         .chained = false},
};
static const struct fmt_admin_batch s_batch = {.station_id = "station-01",
                                               .sequence = 1,
                                               .id = "b-1",
                                               .state = "gap",
                                               .product = "",
                                               .devices = 3,
                                               .imported_at = 100,
                                               .hash = HEX_B,
                                               .prev_hash = NULL,
                                               .chained = true};
static const struct fmt_admin_batches s_batches = {
        .batches = chain, .n_batches = 2, .truncated = true};
static const struct fmt_admin_ca s_ca_row = {
        .name = "factory-a", .sha256 = HEX_A, .subject = "/CN=Factory A", .not_after = ""};

static const struct {
	enum fmt_admin_kind kind;
	const void *v;
	const char *json; /* the encoder's exact text */
} samples[] = {
        {FMT_ADMIN_STATION_ADD, &s_add,
         "{\"id\":\"station-01\",\"public_key\":\"-----BEGIN PUBLIC KEY-----\\n\"}"},
        {FMT_ADMIN_TARGET, &s_target, "{\"id\":\"dev-0001\"}"},
        {FMT_ADMIN_CA_ADD, &s_ca, "{\"pem\":\"PEM\",\"name\":\"factory-a\"}"},
        {FMT_ADMIN_APPROVE, &s_approve, "{\"id\":\"dev-1\",\"key_sha256\":\"" HEX_A "\"}"},
        {FMT_ADMIN_RELEASE, &s_release, "{\"kind\":\"mac\",\"value\":\"02:1a:2b:00:00:01\"}"},
        {FMT_ADMIN_ROTATE, &s_rotate, "{}"},
        {FMT_ADMIN_DONE, &s_done, "{\"ok\":true,\"id\":\"dev-1\",\"key_sha256\":\"" HEX_B "\"}"},
        {FMT_ADMIN_STATION, &s_station,
         "{\"id\":\"station-01\",\"enabled\":true,\"key_sha256\":\"" HEX_A
         "\",\"created_at\":1764526805}"},
        {FMT_ADMIN_DEVICE, &s_device,
         "{\"id\":\"dev-p1\",\"state\":\"pending\",\"mac\":null,\"serial\":null,\"batch_id\":"
         "null,\"has_key\":true,\"key_sha256\":\"" HEX_A "\",\"updated_at\":1764526805,"
         "\"attempts\":4,\"contested\":true,\"other_keys\":[{\"key_sha256\":\"" HEX_B
         "\",\"mac\":\"02:00:5e:00:00:02\",\"first_seen\":10,\"last_seen\":20,\"attempts\":3},"
         "{\"key_sha256\":\"" HEX_A
         "\",\"mac\":null,\"first_seen\":11,\"last_seen\":11,\"attempts\":1}]}"},
        {FMT_ADMIN_FLAG, &s_flag,
         "{\"seq\":7,\"kind\":\"key-reuse\",\"subject\":\"dev-1\",\"detail\":\"\",\"count\":2,"
         "\"first_seen\":1,\"last_seen\":2}"},
        {FMT_ADMIN_AUDIT_ENTRY, &s_entry,
         "{\"seq\":1,\"at\":5,\"event\":\"admin.station_added\",\"subject\":\"station-01\","
         "\"detail\":null,\"actor\":\"admin\",\"hash\":null}"},
        {FMT_ADMIN_AUDIT_CHECK, &s_check,
         "{\"intact\":false,\"entries\":2,\"head_seq\":2,\"head_hash\":\"" HEX_B
         "\",\"broken_seq\":3,\"broken_checkpoint\":2,\"reason\":\"entry 3: hash does not "
         "match\",\"checkpoints\":1,\"checkpoint_seq\":1,\"checkpoint_at\":4,\"truncated\":"
         "false}"},
        {FMT_ADMIN_UNPROVISIONED, &s_unprov,
         "{\"id\":\"dev-0002\",\"state\":\"preloaded\",\"batch_id\":\"b-1\",\"station_id\":"
         "\"station-01\",\"imported_at\":100,\"age\":259200,\"attempts\":0}"},
        {FMT_ADMIN_FLAG_RESOLVE, &s_resolve, "{\"seq\":17}"},
        {FMT_ADMIN_CREDENTIAL_ADD, &s_cred_add, "{\"name\":\"ops.view\",\"role\":\"viewer\"}"},
        {FMT_ADMIN_NAME, &s_name, "{\"name\":\"ops.view\"}"},
        {FMT_ADMIN_OOB_ADD, &s_oob_add,
         "{\"device_id\":\"dev-o1\",\"verifier\":\"AAAA\",\"expires_in\":7200}"},
        {FMT_ADMIN_SUSPEND, &s_suspend, "{\"reason\":\"line 3 audit\"}"},
        {FMT_ADMIN_ALLOW_ENTRY, &s_allow_entry, "{\"entry\":\"idpd-b.local:9443\"}"},
        {FMT_ADMIN_WHOAMI, &s_whoami, "{\"name\":\"admin\",\"role\":\"admin\"}"},
        {FMT_ADMIN_SECRET, &s_secret,
         "{\"ok\":true,\"name\":\"ops\",\"role\":\"admin\",\"secret\":\"c2VjcmV0\"}"},
        {FMT_ADMIN_CREDENTIAL, &s_cred,
         "{\"name\":\"admin\",\"role\":\"admin\",\"source\":\"state-dir\",\"created_at\":0,"
         "\"revoked_at\":0}"},
        {FMT_ADMIN_OOB, &s_oob,
         "{\"device_id\":\"dev-o1\",\"created_at\":1,\"expires_at\":2,\"used_at\":0,"
         "\"failures\":3}"},
        {FMT_ADMIN_SUSPENDED, &s_suspended, "{\"ok\":true,\"suspended\":false}"},
        {FMT_ADMIN_SUSPENSION, &s_suspension,
         "{\"suspended\":true,\"reason\":\"rogue\",\"since\":5,\"watching\":true,\"seen\":[{"
         "\"name\":\"idprovd on b\",\"host\":\"b.local\",\"addr\":\"10.0.0.2\",\"port\":9443,"
         "\"fp\":null,\"allowed\":false}]}"},
        {FMT_ADMIN_ALLOW, &s_allow, "{\"entry\":\"" HEX_A "\",\"added_at\":9}"},
        {FMT_ADMIN_BATCH, &s_batch,
         "{\"station_id\":\"station-01\",\"sequence\":1,\"missing\":false,\"id\":\"b-1\","
         "\"state\":\"gap\",\"product\":\"\",\"devices\":3,\"imported_at\":100,\"hash\":\"" HEX_B
         "\",\"prev_hash\":null,\"chained\":true}"},
        {FMT_ADMIN_BATCHES, &s_batches,
         "{\"batches\":[{\"station_id\":\"station-01\",\"sequence\":1,\"missing\":true},{"
         "\"station_id\":\"station-01\",\"sequence\":2,\"missing\":false,\"id\":\"b-2\","
         "\"state\":\"imported\",\"product\":\"sensor-v2\",\"devices\":0,\"imported_at\":"
         "1764526805,\"hash\":\"" HEX_A "\",\"prev_hash\":\"" HEX_B
         "\",\"chained\":false}],\"truncated\":true}"},
        {FMT_ADMIN_CA, &s_ca_row,
         "{\"name\":\"factory-a\",\"sha256\":\"" HEX_A
         "\",\"subject\":\"/CN=Factory A\",\"not_after\":\"\"}"},
};

static char *encode(enum fmt_admin_kind kind, const void *v)
{
	char *s = NULL;
	size_t len = 0;
	struct idp_error err = {0};
	ck_assert_msg(fmt_admin_encode_text(kind, v, &s, &len, &err) == IDP_OK, "%s", err.msg);
	ck_assert_uint_eq(len, strlen(s));
	return s;
}

static enum idp_err parse_text(enum fmt_admin_kind kind, const char *s, struct idp_error *err)
{
	union {
		struct fmt_admin_device d;
		struct fmt_admin_audit_check c;
		struct fmt_admin_done done;
		char any[256];
	} out;
	struct fmt_admin_doc doc;
	enum idp_err rc = fmt_admin_parse(kind, (const uint8_t *)s, strlen(s), &out, &doc, err);
	if (rc != IDP_OK)
		ck_assert_ptr_null(doc.json);
	fmt_admin_doc_free(&doc);
	return rc;
}

START_TEST(test_admin_round_trip)
{
	/* Every kind but the nested rows (contender, seen) has a sample. */
	ck_assert_uint_eq(sizeof(samples) / sizeof(samples[0]), FMT_ADMIN_KIND_COUNT - 2);
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		char *first = encode(samples[i].kind, samples[i].v);
		ck_assert_str_eq(first, samples[i].json);
		union {
			struct fmt_admin_device d;
			char any[256];
		} out;
		struct fmt_admin_doc doc;
		struct idp_error err = {0};
		ck_assert_msg(fmt_admin_parse(samples[i].kind, (const uint8_t *)first, strlen(first),
		                              &out, &doc, &err) == IDP_OK,
		              "%s: %s", samples[i].json, err.msg);
		char *again = encode(samples[i].kind, &out);
		ck_assert_str_eq(again, first);
		fmt_admin_doc_free(&doc);
		cJSON_free(first);
		cJSON_free(again);
	}
}
END_TEST

START_TEST(test_admin_device_fields)
{
	const char *s = samples[8].json;
	struct fmt_admin_device d;
	struct fmt_admin_doc doc;
	struct idp_error err = {0};
	ck_assert_int_eq(
	        fmt_admin_parse(FMT_ADMIN_DEVICE, (const uint8_t *)s, strlen(s), &d, &doc, &err),
	        IDP_OK);
	ck_assert_str_eq(d.id, "dev-p1");
	ck_assert_ptr_null(d.mac);
	ck_assert(d.contested && d.has_key);
	ck_assert_uint_eq(d.n_other_keys, 2);
	ck_assert_str_eq(d.other_keys[0].mac, "02:00:5e:00:00:02");
	ck_assert_ptr_null(d.other_keys[1].mac);
	ck_assert_int_eq(d.other_keys[0].attempts, 3);
	ck_assert_int_eq(d.updated_at, 1764526805);
	fmt_admin_doc_free(&doc);
	fmt_admin_doc_free(&doc); /* twice: a no-op */
	fmt_admin_doc_free(NULL);
}
END_TEST

START_TEST(test_admin_list_round_trip)
{
	struct idp_error err = {0};
	cJSON *top = NULL, *rows = NULL;
	ck_assert_int_eq(fmt_admin_list_new(FMT_ADMIN_UNPROVISIONED, &top, &rows, &err), IDP_OK);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(fmt_admin_list_add(rows, FMT_ADMIN_UNPROVISIONED, &s_unprov, &err),
		                 IDP_OK);
	ck_assert_int_eq(fmt_admin_list_end(top, "dev-0002", 1764526805, &err), IDP_OK);
	char *text = cJSON_PrintUnformatted(top);
	cJSON_Delete(top);
	ck_assert_ptr_nonnull(strstr(text, "],\"next\":\"dev-0002\",\"now\":1764526805}"));
	struct fmt_admin_list l;
	ck_assert_msg(fmt_admin_list_parse(FMT_ADMIN_UNPROVISIONED, (const uint8_t *)text,
	                                   strlen(text), &l, &err) == IDP_OK,
	              "%s", err.msg);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.next, "dev-0002");
	ck_assert_int_eq(l.now, 1764526805);
	const struct fmt_admin_unprovisioned *u = l.rows;
	ck_assert_str_eq(u[2].station_id, "station-01");
	ck_assert_int_eq(u[2].age, 259200);
	fmt_admin_list_free(&l);
	cJSON_free(text);

	/* The report needs "now"; other lists do not; an empty list has no rows. */
	const char *no_now = "{\"devices\":[]}";
	ck_assert_int_eq(fmt_admin_list_parse(FMT_ADMIN_UNPROVISIONED, (const uint8_t *)no_now,
	                                      strlen(no_now), &l, &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "now: missing");
	ck_assert_int_eq(fmt_admin_list_parse(FMT_ADMIN_DEVICE, (const uint8_t *)no_now,
	                                      strlen(no_now), &l, &err),
	                 IDP_OK);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_ptr_null(l.rows);
	fmt_admin_list_free(&l);
	/* A list's member must be its kind's. */
	const char *other = "{\"stations\":[]}";
	ck_assert_int_eq(fmt_admin_list_parse(FMT_ADMIN_FLAG, (const uint8_t *)other,
	                                      strlen(other), &l, &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "flags: missing");
	ck_assert_int_eq(fmt_admin_list_new(FMT_ADMIN_DONE, &top, &rows, &err), IDP_E_ARG);
}
END_TEST

START_TEST(test_admin_refusals)
{
	static const struct {
		enum fmt_admin_kind kind;
		const char *in, *msg;
	} bad[] = {
	        {FMT_ADMIN_TARGET, "{}", "id: missing"},
	        {FMT_ADMIN_TARGET, "{\"id\":7}", "id: expected a string"},
	        {FMT_ADMIN_TARGET, "{\"id\":null}", "id: expected a string"},
	        {FMT_ADMIN_TARGET, "{\"id\":\"a b\"}", "id: byte 0x20 at offset 1"},
	        {FMT_ADMIN_TARGET, "{\"id\":\"\"}", "id: empty"},
	        {FMT_ADMIN_TARGET, "{\"id\":\"d\",\"x\":1}", "unknown field \"x\""},
	        {FMT_ADMIN_TARGET, "[]", "body: not a JSON object"},
	        {FMT_ADMIN_TARGET, "", "body: empty"},
	        {FMT_ADMIN_TARGET, "{\"id\":\"d\",\"id\":\"e\"}", "duplicate key"},
	        {FMT_ADMIN_ROTATE, "{\"a\":1}", "unknown field \"a\""},
	        {FMT_ADMIN_APPROVE, "{\"id\":\"d\",\"key_sha256\":\"ABC\"}",
	         "key_sha256: must be 64 lower-case hex digits"},
	        {FMT_ADMIN_APPROVE, "{\"id\":\"d\",\"key_sha256\":\"" HEX_A "0\"}",
	         "key_sha256: longer than 64 bytes"},
	        {FMT_ADMIN_RELEASE, "{\"kind\":\"colour\",\"value\":\"red\"}",
	         "kind: must be id, serial, mac or key, not \"colour\""},
	        {FMT_ADMIN_RELEASE, "{\"kind\":\"mac\"}", "value: missing"},
	        {FMT_ADMIN_DONE, "{\"ok\":false}", "ok: must be true"},
	        {FMT_ADMIN_DONE, "{\"id\":\"d\"}", "ok: missing"},
	        {FMT_ADMIN_STATION, "{\"id\":\"s\",\"enabled\":1,\"key_sha256\":\"" HEX_A
	                            "\",\"created_at\":1}",
	         "enabled: expected true or false"},
	        {FMT_ADMIN_STATION, "{\"id\":\"s\",\"enabled\":true,\"key_sha256\":\"" HEX_A
	                            "\",\"created_at\":-1}",
	         "created_at"},
	        {FMT_ADMIN_STATION, "{\"id\":\"s\",\"enabled\":true,\"key_sha256\":\"" HEX_A
	                            "\",\"created_at\":\"1\"}",
	         "created_at"},
	        {FMT_ADMIN_DEVICE, "{\"id\":\"d\",\"state\":\"lost\"}",
	         "state: must be preloaded, pending, approved, rejected or revoked, not \"lost\""},
	        {FMT_ADMIN_AUDIT_CHECK, "{\"intact\":true,\"entries\":1,\"head_seq\":1}",
	         "head_hash: missing"},
	        {FMT_ADMIN_FLAG_RESOLVE, "{\"seq\":\"1\"}", "seq"},
	        {FMT_ADMIN_FLAG_RESOLVE, "{\"seq\":-1}", "seq"},
	        {FMT_ADMIN_FLAG_RESOLVE, "{}", "seq: missing"},
	        {FMT_ADMIN_CREDENTIAL_ADD, "{\"name\":\"x\",\"role\":\"root\"}",
	         "role: must be admin or viewer, not \"root\""},
	        {FMT_ADMIN_CREDENTIAL_ADD, "{\"name\":\"x\",\"role\":\"admin\",\"secret\":\"s\"}",
	         "unknown field \"secret\""},
	        {FMT_ADMIN_OOB_ADD, "{\"device_id\":\"d\",\"verifier\":\"v\",\"expires_in\":\"2h\"}",
	         "expires_in"},
	        {FMT_ADMIN_SUSPEND, "{\"reason\":7}", "reason: expected a string"},
	        {FMT_ADMIN_ALLOW_ENTRY, "{}", "entry: missing"},
	        {FMT_ADMIN_AUDIT_CHECK, "{\"intact\":true,\"entries\":1,\"head_seq\":1,\"head_hash\":\"" HEX_A
	                                "\",\"checkpoint_seq\":0,\"checkpoint_at\":0,"
	                                "\"truncated\":false}",
	         "checkpoints: missing"},
	        {FMT_ADMIN_AUDIT_CHECK, "{\"intact\":true,\"entries\":1,\"head_seq\":1,\"head_hash\":\"" HEX_A
	                                "\",\"checkpoints\":0,\"checkpoint_seq\":0,\"checkpoint_at\":0,"
	                                "\"truncated\":\"no\"}",
	         "truncated: expected true or false"},
	        {FMT_ADMIN_BATCHES, "{\"truncated\":false}", "batches: missing"},
	        {FMT_ADMIN_BATCHES, "{\"batches\":[]}", "truncated: missing"},
	        {FMT_ADMIN_BATCHES, "{\"batches\":[{\"station_id\":\"s\",\"sequence\":1,"
	                            "\"missing\":false,\"id\":\"b\",\"state\":\"imported\","
	                            "\"product\":\"p\",\"devices\":1,\"imported_at\":1}],"
	                            "\"truncated\":false}",
	         "batches[0]: hash: missing"},
	        {FMT_ADMIN_BATCHES, "{\"batches\":[{\"station_id\":\"s\",\"sequence\":1}],"
	                            "\"truncated\":false}",
	         "batches[0]: missing: missing"},
	        {FMT_ADMIN_BATCH, "{\"station_id\":\"s\",\"sequence\":1,\"missing\":false,\"id\":"
	                          "\"b\",\"state\":\"lost\"}",
	         "state: must be imported or gap, not \"lost\""},
	        {FMT_ADMIN_BATCH, "{\"station_id\":\"s\",\"sequence\":1,\"missing\":false,\"id\":"
	                          "\"b\",\"state\":\"gap\",\"product\":\"p\",\"devices\":1,"
	                          "\"imported_at\":1,\"hash\":\"" HEX_A "\",\"prev_hash\":\"ABC\"}",
	         "prev_hash: must be 64 lower-case hex digits"},
	        {FMT_ADMIN_BATCH, "{\"station_id\":\"s\",\"sequence\":-2,\"missing\":true}",
	         "sequence"},
	        {FMT_ADMIN_CA, "{\"sha256\":\"" HEX_A "\"}", "name: missing"},
	        {FMT_ADMIN_CA, "{\"name\":\"f\",\"sha256\":\"xyz\"}",
	         "sha256: must be 64 lower-case hex digits"},
	        {FMT_ADMIN_CA, "{\"name\":\"f\",\"subject\":7}", "subject: expected a string"},
	        {FMT_ADMIN_SUSPENSION, "{\"suspended\":true,\"reason\":null,\"since\":1,\"watching\":"
	                               "false,\"seen\":[{\"name\":\"n\"}]}",
	         "seen[0]: host: missing"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct idp_error err = {0};
		enum idp_err rc = parse_text(bad[i].kind, bad[i].in, &err);
		ck_assert_msg(rc == IDP_E_FORMAT || rc == IDP_E_LIMIT, "%s: accepted", bad[i].in);
		ck_assert_msg(strstr(err.msg, bad[i].msg) != NULL, "%s: got \"%s\", want \"%s\"",
		              bad[i].in, err.msg, bad[i].msg);
	}
	/* Answers ignore members they do not know (a newer server's). */
	struct idp_error err = {0};
	ck_assert_int_eq(parse_text(FMT_ADMIN_DONE, "{\"ok\":true,\"id\":\"d\",\"new\":[1]}", &err),
	                 IDP_OK);
	/* A nested row's error names its place. */
	const char *nested = "{\"devices\":[{\"id\":\"d\",\"state\":\"pending\",\"mac\":null,"
	                     "\"serial\":null,\"batch_id\":null,\"has_key\":false,\"key_sha256\":"
	                     "null,\"updated_at\":1,\"attempts\":0,\"contested\":false,"
	                     "\"other_keys\":[{\"key_sha256\":\"x\"}]}]}";
	struct fmt_admin_list l;
	ck_assert_int_eq(fmt_admin_list_parse(FMT_ADMIN_DEVICE, (const uint8_t *)nested,
	                                      strlen(nested), &l, &err),
	                 IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "devices[0]: other_keys[0]: key_sha256: must be 64 lower-case "
	                          "hex digits (a SHA-256)");
	ck_assert_ptr_null(l.doc.json);
}
END_TEST

START_TEST(test_admin_batches_and_cas)
{
	struct idp_error err = {0};
	/* A missing sequence's row has three members; what else it holds is
	 * not written, and what else it is sent is not read. */
	struct fmt_admin_batch gap = s_batch;
	gap.missing = true;
	gap.hash = "not hex";
	char *s = encode(FMT_ADMIN_BATCH, &gap);
	ck_assert_str_eq(s, "{\"station_id\":\"station-01\",\"sequence\":1,\"missing\":true}");
	cJSON_free(s);
	const char *extra = "{\"station_id\":\"s\",\"sequence\":4,\"missing\":true,\"id\":\"b\","
	                    "\"hash\":7}";
	struct fmt_admin_batch b;
	struct fmt_admin_doc doc;
	ck_assert_msg(fmt_admin_parse(FMT_ADMIN_BATCH, (const uint8_t *)extra, strlen(extra), &b,
	                              &doc, &err) == IDP_OK,
	              "%s", err.msg);
	ck_assert(b.missing);
	ck_assert_int_eq(b.sequence, 4);
	ck_assert_ptr_null(b.id);
	ck_assert_ptr_null(b.hash);
	fmt_admin_doc_free(&doc);
	/* A batch that is there must have its members. */
	struct fmt_admin_batch no_hash = s_batch;
	no_hash.hash = NULL;
	cJSON *o = NULL;
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_BATCH, &no_hash, &o, &err), IDP_E_ARG);
	ck_assert_str_eq(err.msg, "hash: missing");
	struct fmt_admin_batches many = s_batches;
	many.n_batches = FMT_ADMIN_LIST_MAX + 1;
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_BATCHES, &many, &o, &err), IDP_E_ARG);
	ck_assert_ptr_nonnull(strstr(err.msg, "batches: more than 1000 rows"));
	/* The answer's rows as read. */
	s = encode(FMT_ADMIN_BATCHES, &s_batches);
	struct fmt_admin_batches back;
	ck_assert_int_eq(
	        fmt_admin_parse(FMT_ADMIN_BATCHES, (const uint8_t *)s, strlen(s), &back, &doc, &err),
	        IDP_OK);
	ck_assert(back.truncated);
	ck_assert_uint_eq(back.n_batches, 2);
	ck_assert(back.batches[0].missing);
	ck_assert_ptr_null(back.batches[0].product);
	ck_assert_str_eq(back.batches[1].product, "sensor-v2");
	ck_assert_str_eq(back.batches[1].prev_hash, HEX_B);
	ck_assert_int_eq(back.batches[1].devices, 0);
	fmt_admin_doc_free(&doc);
	cJSON_free(s);

	/* GET cas: a list without "next"; a CA whose PEM no longer parses has
	 * its name only. */
	cJSON *top = NULL, *rows = NULL;
	ck_assert_int_eq(fmt_admin_list_new(FMT_ADMIN_CA, &top, &rows, &err), IDP_OK);
	const struct fmt_admin_ca name_only = {.name = "old"};
	ck_assert_int_eq(fmt_admin_list_add(rows, FMT_ADMIN_CA, &s_ca_row, &err), IDP_OK);
	ck_assert_int_eq(fmt_admin_list_add(rows, FMT_ADMIN_CA, &name_only, &err), IDP_OK);
	const struct fmt_admin_ca long_name = {.name = HEX_A "x"};
	ck_assert_int_eq(fmt_admin_list_add(rows, FMT_ADMIN_CA, &long_name, &err), IDP_E_LIMIT);
	s = cJSON_PrintUnformatted(top);
	cJSON_Delete(top);
	ck_assert_str_eq(s, "{\"cas\":[{\"name\":\"factory-a\",\"sha256\":\"" HEX_A
	                    "\",\"subject\":\"/CN=Factory A\",\"not_after\":\"\"},{\"name\":\"old\"}]}");
	struct fmt_admin_list l;
	ck_assert_int_eq(fmt_admin_list_parse(FMT_ADMIN_CA, (const uint8_t *)s, strlen(s), &l, &err),
	                 IDP_OK);
	ck_assert_uint_eq(l.n, 2);
	const struct fmt_admin_ca *ca = l.rows;
	ck_assert_str_eq(ca[0].not_after, "");
	ck_assert_str_eq(ca[1].name, "old");
	ck_assert_ptr_null(ca[1].sha256);
	ck_assert_ptr_null(ca[1].subject);
	fmt_admin_list_free(&l);
	cJSON_free(s);
	ck_assert_str_eq(fmt_admin_list_name(FMT_ADMIN_CA), "cas");
	ck_assert_ptr_null(fmt_admin_list_name(FMT_ADMIN_BATCH));
}
END_TEST

START_TEST(test_admin_oversized)
{
	struct idp_error err = {0};
	/* A member over its limit. */
	size_t n = FMT_ADMIN_VALUE_MAX + 1;
	char *big = malloc(n + 64);
	ck_assert_ptr_nonnull(big);
	int w = snprintf(big, n + 64, "{\"kind\":\"id\",\"value\":\"%0*d\"}", (int)n, 0);
	ck_assert_int_gt(w, 0);
	ck_assert_int_eq(parse_text(FMT_ADMIN_RELEASE, big, &err), IDP_E_LIMIT);
	ck_assert_str_eq(err.msg, "value: longer than 4096 bytes");
	free(big);
	/* A request body over FMT_ADMIN_REQUEST_MAX, refused before parsing. */
	size_t blen = FMT_ADMIN_REQUEST_MAX + 1;
	uint8_t *body = malloc(blen);
	ck_assert_ptr_nonnull(body);
	memset(body, ' ', blen);
	body[0] = '{';
	body[blen - 1] = '}';
	struct fmt_admin_target t;
	struct fmt_admin_doc doc;
	ck_assert_int_eq(fmt_admin_parse(FMT_ADMIN_TARGET, body, blen, &t, &doc, &err),
	                 IDP_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "body: 65537 bytes, max 65536"));
	free(body);
	/* A list of FMT_ADMIN_LIST_MAX + 1 rows, both ways. */
	cJSON *top = NULL, *rows = NULL;
	ck_assert_int_eq(fmt_admin_list_new(FMT_ADMIN_FLAG, &top, &rows, &err), IDP_OK);
	for (unsigned i = 0; i < FMT_ADMIN_LIST_MAX; i++)
		ck_assert_int_eq(fmt_admin_list_add(rows, FMT_ADMIN_FLAG, &s_flag, &err), IDP_OK);
	ck_assert_int_eq(fmt_admin_list_add(rows, FMT_ADMIN_FLAG, &s_flag, &err), IDP_E_LIMIT);
	char *text = cJSON_PrintUnformatted(top);
	struct fmt_admin_list l;
	ck_assert_int_eq(
	        fmt_admin_list_parse(FMT_ADMIN_FLAG, (const uint8_t *)text, strlen(text), &l, &err),
	        IDP_OK);
	ck_assert_uint_eq(l.n, FMT_ADMIN_LIST_MAX);
	fmt_admin_list_free(&l);
	cJSON_free(text);
	cJSON *extra = NULL;
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_FLAG, &s_flag, &extra, &err), IDP_OK);
	ck_assert(cJSON_AddItemToArray(rows, extra));
	text = cJSON_PrintUnformatted(top);
	ck_assert_int_eq(
	        fmt_admin_list_parse(FMT_ADMIN_FLAG, (const uint8_t *)text, strlen(text), &l, &err),
	        IDP_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "more than 1000 members"));
	cJSON_free(text);
	cJSON_Delete(top);
}
END_TEST

START_TEST(test_admin_large_integers_exact)
{
	/* Up to 2^53 - 1 every integer is written as plain digits (cJSON alone
	 * writes 2.5777777777792e+15, which the parser refuses: found by
	 * fuzz_admin_api) and read back exactly. */
	struct fmt_admin_flag big = s_flag;
	big.seq = 2577777777779200;
	big.count = 9007199254740991;
	char *s = encode(FMT_ADMIN_FLAG, &big);
	ck_assert_ptr_nonnull(strstr(s, "\"seq\":2577777777779200,"));
	ck_assert_ptr_nonnull(strstr(s, "\"count\":9007199254740991,"));
	struct fmt_admin_flag back;
	struct fmt_admin_doc doc;
	struct idp_error err = {0};
	ck_assert_msg(fmt_admin_parse(FMT_ADMIN_FLAG, (const uint8_t *)s, strlen(s), &back, &doc,
	                              &err) == IDP_OK,
	              "%s", err.msg);
	ck_assert_int_eq(back.seq, big.seq);
	ck_assert_int_eq(back.count, big.count);
	fmt_admin_doc_free(&doc);
	cJSON_free(s);
	cJSON *top = NULL, *rows = NULL;
	ck_assert_int_eq(fmt_admin_list_new(FMT_ADMIN_UNPROVISIONED, &top, &rows, &err), IDP_OK);
	ck_assert_int_eq(fmt_admin_list_end(top, NULL, 9007199254740991, &err), IDP_OK);
	s = cJSON_PrintUnformatted(top);
	ck_assert_str_eq(s, "{\"devices\":[],\"now\":9007199254740991}");
	cJSON_free(s);
	cJSON_Delete(top);
}
END_TEST

START_TEST(test_admin_encoder_refuses)
{
	struct idp_error err = {0};
	cJSON *o = NULL;
	const struct fmt_admin_target no_id = {0};
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_TARGET, &no_id, &o, &err), IDP_E_ARG);
	ck_assert_str_eq(err.msg, "id: missing");
	ck_assert_ptr_null(o);
	const struct fmt_admin_target bad_id = {.id = "dev 1"};
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_TARGET, &bad_id, &o, &err), IDP_E_ARG);
	ck_assert_ptr_nonnull(strstr(err.msg, "id: byte 0x20"));
	const struct fmt_admin_release colour = {.kind = "colour", .value = "red"};
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_RELEASE, &colour, &o, &err), IDP_E_ARG);
	ck_assert_ptr_nonnull(strstr(err.msg, "kind: must be id, serial, mac or key"));
	const struct fmt_admin_approve upper = {.id = "d", .key_sha256 = "ABC"};
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_APPROVE, &upper, &o, &err), IDP_E_ARG);
	struct fmt_admin_flag neg = s_flag;
	neg.count = -1;
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_FLAG, &neg, &o, &err), IDP_E_ARG);
	ck_assert_str_eq(err.msg, "count: -1 out of range");
	struct fmt_admin_flag utf = s_flag;
	utf.detail = "\xc3\x28";
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_FLAG, &utf, &o, &err), IDP_E_ARG);
	ck_assert_str_eq(err.msg, "detail: not valid UTF-8");
	struct fmt_admin_device many = s_device;
	many.n_other_keys = FMT_ADMIN_LIST_MAX + 1;
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_DEVICE, &many, &o, &err), IDP_E_ARG);
	ck_assert_ptr_nonnull(strstr(err.msg, "other_keys: more than 1000 rows"));
	ck_assert_int_eq(fmt_admin_encode(FMT_ADMIN_KIND_COUNT, &s_flag, &o, &err), IDP_E_ARG);
	cJSON *top = NULL, *rows = NULL;
	ck_assert_int_eq(fmt_admin_list_new(FMT_ADMIN_DEVICE, &top, &rows, &err), IDP_OK);
	/* "next" is any row key (an ID, a seq, a credential name, an allow
	 * entry) of 1..FMT_ADMIN_NEXT_MAX bytes of UTF-8. */
	ck_assert_int_eq(fmt_admin_list_end(top, "", 0, &err), IDP_E_ARG);
	ck_assert_int_eq(fmt_admin_list_end(top, "\xc3\x28", 0, &err), IDP_E_ARG);
	char key[FMT_ADMIN_NEXT_MAX + 2];
	memset(key, 'h', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	ck_assert_int_eq(fmt_admin_list_end(top, key, 0, &err), IDP_E_LIMIT);
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(top, "next"));
	cJSON_Delete(top);
}
END_TEST

START_TEST(test_admin_list_next_any_key)
{
	/* A page's last key that is no ID (a credential name may start with
	 * "_", an allow entry be 300 bytes) goes out and comes back. */
	struct idp_error err = {0};
	char entry[FMT_ADMIN_NEXT_MAX + 1];
	memset(entry, 'h', sizeof(entry) - 1);
	memcpy(entry + sizeof(entry) - 6, ":8443", 6);
	const char *const keys[] = {"_op-0999", entry};
	for (size_t i = 0; i < 2; i++) {
		cJSON *top = NULL, *rows = NULL;
		ck_assert_int_eq(fmt_admin_list_new(FMT_ADMIN_ALLOW, &top, &rows, &err), IDP_OK);
		ck_assert_int_eq(fmt_admin_list_end(top, keys[i], 0, &err), IDP_OK);
		char *text = cJSON_PrintUnformatted(top);
		cJSON_Delete(top);
		struct fmt_admin_list l;
		ck_assert_msg(fmt_admin_list_parse(FMT_ADMIN_ALLOW, (const uint8_t *)text,
		                                   strlen(text), &l, &err) == IDP_OK,
		              "%s", err.msg);
		ck_assert_str_eq(l.next, keys[i]);
		fmt_admin_list_free(&l);
		cJSON_free(text);
	}
}
END_TEST

START_TEST(test_admin_field_tables)
{
	/* Every kind has a table; list kinds name their member; getters read
	 * what the struct holds. */
	for (int k = 0; k < FMT_ADMIN_KIND_COUNT; k++) {
		size_t n = 99;
		const struct fmt_admin_field *f = fmt_admin_fields((enum fmt_admin_kind)k, &n);
		ck_assert(k == FMT_ADMIN_ROTATE ? n == 0 : f != NULL && n > 0);
		ck_assert_uint_gt(fmt_admin_size((enum fmt_admin_kind)k), 0);
	}
	size_t n = 0;
	ck_assert_ptr_null(fmt_admin_fields(FMT_ADMIN_KIND_COUNT, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(fmt_admin_list_name(FMT_ADMIN_AUDIT_ENTRY), "entries");
	ck_assert_ptr_null(fmt_admin_list_name(FMT_ADMIN_DONE));
	const struct fmt_admin_field *f = fmt_admin_fields(FMT_ADMIN_DEVICE, &n);
	ck_assert_str_eq(fmt_admin_get_string(&f[0], &s_device), "dev-p1");
	ck_assert_int_eq(fmt_admin_get_int(&f[8], &s_device), 4);
	ck_assert(fmt_admin_get_bool(&f[9], &s_device));
	size_t rows = 0;
	ck_assert_ptr_eq(fmt_admin_get_rows(&f[10], &s_device, &rows), contenders);
	ck_assert_uint_eq(rows, 2);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("admin_api");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_admin_round_trip);
	tcase_add_test(tc, test_admin_device_fields);
	tcase_add_test(tc, test_admin_list_round_trip);
	tcase_add_test(tc, test_admin_refusals);
	tcase_add_test(tc, test_admin_batches_and_cas);
	tcase_add_test(tc, test_admin_oversized);
	tcase_add_test(tc, test_admin_large_integers_exact);
	tcase_add_test(tc, test_admin_encoder_refuses);
	tcase_add_test(tc, test_admin_list_next_any_key);
	tcase_add_test(tc, test_admin_field_tables);
	suite_add_tcase(s, tc);
	return s;
}
