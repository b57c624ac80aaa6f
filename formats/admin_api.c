/*
 * admin_api.c - see admin_api.h. Spec: formats/admin-api.md.
 *
 * One table of fields per body kind drives both directions: encode() walks a
 * struct and writes its members in table order, parse_object() walks a JSON
 * object and fills the struct, and both run the same check_string() on every
 * string, so the two cannot drift apart.
 */
#include "formats/admin_api.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"
#include "formats/mac.h"
#include "formats/manifest.h"

#define FIELD(s, m, t, fl, mx)                                                                  \
	{                                                                                          \
		.name = #m, .type = (t), .flags = (fl), .offset = offsetof(struct s, m), .max = (mx) \
	}
#define ENUM_FIELD(s, m, fl, vals)                                                             \
	{                                                                                          \
		.name = #m, .type = FMT_ADMIN_T_ENUM, .flags = (fl), .offset = offsetof(struct s, m), \
		.max = FMT_ADMIN_KIND_MAX, .values = (vals)                                        \
	}
/* A member of a batch row, absent when the row's "missing" is true. */
#define BATCH_FIELD(m, t, fl, mx)                                                             \
	{                                                                                          \
		.name = #m, .type = (t), .flags = (fl) | FMT_ADMIN_F_GATED,                         \
		.offset = offsetof(struct fmt_admin_batch, m), .max = (mx),                        \
		.gate_offset = offsetof(struct fmt_admin_batch, missing)                           \
	}
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const release_kinds[] = {"id", "serial", "mac", "key", NULL};
static const char *const device_states[] = {"preloaded", "pending", "approved",
                                            "rejected",  "revoked", NULL};
static const char *const roles[] = {"admin", "viewer", NULL};
static const char *const cred_sources[] = {"state-dir", "store", NULL};
static const char *const batch_states[] = {"imported", "gap", NULL};

static const struct fmt_admin_field station_add_fields[] = {
        FIELD(fmt_admin_station_add, id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        FIELD(fmt_admin_station_add, public_key, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_KEY_TEXT_MAX),
};
static const struct fmt_admin_field target_fields[] = {
        FIELD(fmt_admin_target, id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
};
static const struct fmt_admin_field ca_add_fields[] = {
        FIELD(fmt_admin_ca_add, pem, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_PEM_MAX),
        FIELD(fmt_admin_ca_add, name, FMT_ADMIN_T_ID, FMT_ADMIN_F_OPTIONAL, FMT_ID_MAX),
};
static const struct fmt_admin_field approve_fields[] = {
        FIELD(fmt_admin_approve, id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        FIELD(fmt_admin_approve, key_sha256, FMT_ADMIN_T_SHA256, FMT_ADMIN_F_OPTIONAL,
              FMT_ADMIN_SHA256_HEX),
};
static const struct fmt_admin_field release_fields[] = {
        ENUM_FIELD(fmt_admin_release, kind, 0, release_kinds),
        FIELD(fmt_admin_release, value, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_VALUE_MAX),
};
static const struct fmt_admin_field done_fields[] = {
        {.name = "ok", .type = FMT_ADMIN_T_TRUE},
        FIELD(fmt_admin_done, id, FMT_ADMIN_T_ID, FMT_ADMIN_F_OPTIONAL, FMT_ID_MAX),
        FIELD(fmt_admin_done, name, FMT_ADMIN_T_STRING, FMT_ADMIN_F_OPTIONAL, FMT_ID_MAX),
        FIELD(fmt_admin_done, kid, FMT_ADMIN_T_STRING, FMT_ADMIN_F_OPTIONAL, FMT_ADMIN_KIND_MAX),
        FIELD(fmt_admin_done, key_sha256, FMT_ADMIN_T_SHA256, FMT_ADMIN_F_OPTIONAL,
              FMT_ADMIN_SHA256_HEX),
        ENUM_FIELD(fmt_admin_done, kind, FMT_ADMIN_F_OPTIONAL, release_kinds),
        FIELD(fmt_admin_done, value, FMT_ADMIN_T_STRING, FMT_ADMIN_F_OPTIONAL,
              FMT_ADMIN_VALUE_MAX),
        FIELD(fmt_admin_done, seq, FMT_ADMIN_T_INT, FMT_ADMIN_F_OPTIONAL, 0),
        FIELD(fmt_admin_done, device_id, FMT_ADMIN_T_ID, FMT_ADMIN_F_OPTIONAL, FMT_ID_MAX),
        FIELD(fmt_admin_done, entry, FMT_ADMIN_T_STRING, FMT_ADMIN_F_OPTIONAL,
              FMT_ADMIN_ALLOW_MAX),
};
static const struct fmt_admin_field flag_resolve_fields[] = {
        FIELD(fmt_admin_flag_resolve, seq, FMT_ADMIN_T_INT, 0, 0),
};
static const struct fmt_admin_field credential_add_fields[] = {
        FIELD(fmt_admin_credential_add, name, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_CRED_NAME_MAX),
        ENUM_FIELD(fmt_admin_credential_add, role, 0, roles),
};
static const struct fmt_admin_field name_fields[] = {
        FIELD(fmt_admin_name, name, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_CRED_NAME_MAX),
};
static const struct fmt_admin_field oob_add_fields[] = {
        FIELD(fmt_admin_oob_add, device_id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        FIELD(fmt_admin_oob_add, verifier, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_VERIFIER_MAX),
        FIELD(fmt_admin_oob_add, expires_in, FMT_ADMIN_T_SECONDS, FMT_ADMIN_F_OPTIONAL, 0),
};
static const struct fmt_admin_field suspend_fields[] = {
        FIELD(fmt_admin_suspend, reason, FMT_ADMIN_T_STRING,
              FMT_ADMIN_F_OPTIONAL | FMT_ADMIN_F_WIDE, FMT_ADMIN_DETAIL_MAX),
};
static const struct fmt_admin_field allow_entry_fields[] = {
        FIELD(fmt_admin_allow_entry, entry, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_ALLOW_MAX),
};
static const struct fmt_admin_field whoami_fields[] = {
        FIELD(fmt_admin_whoami, name, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_CRED_NAME_MAX),
        ENUM_FIELD(fmt_admin_whoami, role, 0, roles),
};
static const struct fmt_admin_field secret_fields[] = {
        {.name = "ok", .type = FMT_ADMIN_T_TRUE},
        FIELD(fmt_admin_secret, name, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_CRED_NAME_MAX),
        ENUM_FIELD(fmt_admin_secret, role, 0, roles),
        FIELD(fmt_admin_secret, secret, FMT_ADMIN_T_STRING, FMT_ADMIN_F_WIDE,
              FMT_ADMIN_SECRET_MAX),
};
static const struct fmt_admin_field credential_fields[] = {
        FIELD(fmt_admin_credential, name, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_CRED_NAME_MAX),
        ENUM_FIELD(fmt_admin_credential, role, 0, roles),
        ENUM_FIELD(fmt_admin_credential, source, 0, cred_sources),
        FIELD(fmt_admin_credential, created_at, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_credential, revoked_at, FMT_ADMIN_T_TIME, 0, 0),
};
static const struct fmt_admin_field oob_fields[] = {
        FIELD(fmt_admin_oob, device_id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        FIELD(fmt_admin_oob, created_at, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_oob, expires_at, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_oob, used_at, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_oob, failures, FMT_ADMIN_T_INT, 0, 0),
};
static const struct fmt_admin_field suspended_fields[] = {
        {.name = "ok", .type = FMT_ADMIN_T_TRUE},
        FIELD(fmt_admin_suspended, suspended, FMT_ADMIN_T_BOOL, 0, 0),
};
static const struct fmt_admin_field seen_fields[] = {
        FIELD(fmt_admin_seen, name, FMT_ADMIN_T_STRING, FMT_ADMIN_F_EMPTY, FMT_ADMIN_HOST_MAX),
        FIELD(fmt_admin_seen, host, FMT_ADMIN_T_STRING, FMT_ADMIN_F_EMPTY, FMT_ADMIN_HOST_MAX),
        FIELD(fmt_admin_seen, addr, FMT_ADMIN_T_STRING, FMT_ADMIN_F_EMPTY, FMT_ADMIN_ADDR_MAX),
        FIELD(fmt_admin_seen, port, FMT_ADMIN_T_INT, 0, 0),
        FIELD(fmt_admin_seen, fp, FMT_ADMIN_T_SHA256, FMT_ADMIN_F_NULL, FMT_ADMIN_SHA256_HEX),
        FIELD(fmt_admin_seen, allowed, FMT_ADMIN_T_BOOL, 0, 0),
};
static const struct fmt_admin_field suspension_fields[] = {
        FIELD(fmt_admin_suspension, suspended, FMT_ADMIN_T_BOOL, 0, 0),
        FIELD(fmt_admin_suspension, reason, FMT_ADMIN_T_STRING,
              FMT_ADMIN_F_NULL | FMT_ADMIN_F_WIDE, FMT_ADMIN_DETAIL_MAX),
        FIELD(fmt_admin_suspension, since, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_suspension, watching, FMT_ADMIN_T_BOOL, 0, 0),
        {.name = "seen",
         .type = FMT_ADMIN_T_ROWS,
         .offset = offsetof(struct fmt_admin_suspension, seen),
         .rows = FMT_ADMIN_SEEN,
         .count_offset = offsetof(struct fmt_admin_suspension, n_seen)},
};
static const struct fmt_admin_field allow_fields[] = {
        FIELD(fmt_admin_allow, entry, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_ALLOW_MAX),
        FIELD(fmt_admin_allow, added_at, FMT_ADMIN_T_TIME, 0, 0),
};
static const struct fmt_admin_field station_fields[] = {
        FIELD(fmt_admin_station, id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        FIELD(fmt_admin_station, enabled, FMT_ADMIN_T_BOOL, 0, 0),
        FIELD(fmt_admin_station, key_sha256, FMT_ADMIN_T_SHA256, 0, FMT_ADMIN_SHA256_HEX),
        FIELD(fmt_admin_station, created_at, FMT_ADMIN_T_TIME, 0, 0),
};
static const struct fmt_admin_field contender_fields[] = {
        FIELD(fmt_admin_contender, key_sha256, FMT_ADMIN_T_SHA256, 0, FMT_ADMIN_SHA256_HEX),
        FIELD(fmt_admin_contender, mac, FMT_ADMIN_T_STRING, FMT_ADMIN_F_NULL, FMT_MAC_TEXT_LEN),
        FIELD(fmt_admin_contender, first_seen, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_contender, last_seen, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_contender, attempts, FMT_ADMIN_T_INT, 0, 0),
};
static const struct fmt_admin_field device_fields[] = {
        FIELD(fmt_admin_device, id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        ENUM_FIELD(fmt_admin_device, state, 0, device_states),
        FIELD(fmt_admin_device, mac, FMT_ADMIN_T_STRING, FMT_ADMIN_F_NULL, FMT_MAC_TEXT_LEN),
        FIELD(fmt_admin_device, serial, FMT_ADMIN_T_ID, FMT_ADMIN_F_NULL, FMT_ID_MAX),
        FIELD(fmt_admin_device, batch_id, FMT_ADMIN_T_ID, FMT_ADMIN_F_NULL, FMT_ID_MAX),
        FIELD(fmt_admin_device, has_key, FMT_ADMIN_T_BOOL, 0, 0),
        FIELD(fmt_admin_device, key_sha256, FMT_ADMIN_T_SHA256, FMT_ADMIN_F_NULL,
              FMT_ADMIN_SHA256_HEX),
        FIELD(fmt_admin_device, updated_at, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_device, attempts, FMT_ADMIN_T_INT, 0, 0),
        FIELD(fmt_admin_device, contested, FMT_ADMIN_T_BOOL, 0, 0),
        {.name = "other_keys",
         .type = FMT_ADMIN_T_ROWS,
         .offset = offsetof(struct fmt_admin_device, other_keys),
         .rows = FMT_ADMIN_CONTENDER,
         .count_offset = offsetof(struct fmt_admin_device, n_other_keys)},
};
static const struct fmt_admin_field flag_fields[] = {
        FIELD(fmt_admin_flag, seq, FMT_ADMIN_T_INT, 0, 0),
        FIELD(fmt_admin_flag, kind, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_KIND_MAX),
        FIELD(fmt_admin_flag, subject, FMT_ADMIN_T_STRING, FMT_ADMIN_F_EMPTY, FMT_ID_MAX),
        FIELD(fmt_admin_flag, detail, FMT_ADMIN_T_STRING, FMT_ADMIN_F_EMPTY | FMT_ADMIN_F_WIDE,
              FMT_ADMIN_DETAIL_MAX),
        FIELD(fmt_admin_flag, count, FMT_ADMIN_T_INT, 0, 0),
        FIELD(fmt_admin_flag, first_seen, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_flag, last_seen, FMT_ADMIN_T_TIME, 0, 0),
};
static const struct fmt_admin_field audit_entry_fields[] = {
        FIELD(fmt_admin_audit_entry, seq, FMT_ADMIN_T_INT, 0, 0),
        FIELD(fmt_admin_audit_entry, at, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_audit_entry, event, FMT_ADMIN_T_STRING, 0, FMT_ADMIN_KIND_MAX),
        FIELD(fmt_admin_audit_entry, subject, FMT_ADMIN_T_STRING, FMT_ADMIN_F_NULL, FMT_ID_MAX),
        FIELD(fmt_admin_audit_entry, detail, FMT_ADMIN_T_STRING,
              FMT_ADMIN_F_NULL | FMT_ADMIN_F_WIDE, FMT_ADMIN_DETAIL_MAX),
        FIELD(fmt_admin_audit_entry, actor, FMT_ADMIN_T_STRING, FMT_ADMIN_F_NULL, FMT_ID_MAX),
        FIELD(fmt_admin_audit_entry, hash, FMT_ADMIN_T_SHA256, FMT_ADMIN_F_NULL,
              FMT_ADMIN_SHA256_HEX),
};
static const struct fmt_admin_field audit_check_fields[] = {
        FIELD(fmt_admin_audit_check, intact, FMT_ADMIN_T_BOOL, 0, 0),
        FIELD(fmt_admin_audit_check, entries, FMT_ADMIN_T_INT, 0, 0),
        FIELD(fmt_admin_audit_check, head_seq, FMT_ADMIN_T_INT, 0, 0),
        FIELD(fmt_admin_audit_check, head_hash, FMT_ADMIN_T_SHA256, 0, FMT_ADMIN_SHA256_HEX),
        FIELD(fmt_admin_audit_check, broken_seq, FMT_ADMIN_T_INT, FMT_ADMIN_F_OPTIONAL, 0),
        FIELD(fmt_admin_audit_check, broken_checkpoint, FMT_ADMIN_T_INT,
              FMT_ADMIN_F_OPTIONAL | FMT_ADMIN_F_HIDDEN, 0),
        FIELD(fmt_admin_audit_check, reason, FMT_ADMIN_T_STRING,
              FMT_ADMIN_F_OPTIONAL | FMT_ADMIN_F_WIDE, FMT_ADMIN_DETAIL_MAX),
        FIELD(fmt_admin_audit_check, checkpoints, FMT_ADMIN_T_INT, FMT_ADMIN_F_HIDDEN, 0),
        FIELD(fmt_admin_audit_check, checkpoint_seq, FMT_ADMIN_T_INT, FMT_ADMIN_F_HIDDEN, 0),
        FIELD(fmt_admin_audit_check, checkpoint_at, FMT_ADMIN_T_TIME, FMT_ADMIN_F_HIDDEN, 0),
        FIELD(fmt_admin_audit_check, truncated, FMT_ADMIN_T_BOOL, FMT_ADMIN_F_HIDDEN, 0),
};
static const struct fmt_admin_field unprovisioned_fields[] = {
        FIELD(fmt_admin_unprovisioned, id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        ENUM_FIELD(fmt_admin_unprovisioned, state, 0, device_states),
        FIELD(fmt_admin_unprovisioned, batch_id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        FIELD(fmt_admin_unprovisioned, station_id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        FIELD(fmt_admin_unprovisioned, imported_at, FMT_ADMIN_T_TIME, 0, 0),
        FIELD(fmt_admin_unprovisioned, age, FMT_ADMIN_T_SECONDS, 0, 0),
        FIELD(fmt_admin_unprovisioned, attempts, FMT_ADMIN_T_INT, 0, 0),
};
static const struct fmt_admin_field batch_fields[] = {
        FIELD(fmt_admin_batch, station_id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        FIELD(fmt_admin_batch, sequence, FMT_ADMIN_T_INT, 0, 0),
        FIELD(fmt_admin_batch, missing, FMT_ADMIN_T_BOOL, 0, 0),
        BATCH_FIELD(id, FMT_ADMIN_T_ID, 0, FMT_ID_MAX),
        {.name = "state",
         .type = FMT_ADMIN_T_ENUM,
         .flags = FMT_ADMIN_F_GATED,
         .offset = offsetof(struct fmt_admin_batch, state),
         .max = FMT_ADMIN_KIND_MAX,
         .values = batch_states,
         .gate_offset = offsetof(struct fmt_admin_batch, missing)},
        BATCH_FIELD(product, FMT_ADMIN_T_STRING, FMT_ADMIN_F_EMPTY, FMT_MANIFEST_PRODUCT_MAX),
        BATCH_FIELD(devices, FMT_ADMIN_T_INT, 0, 0),
        BATCH_FIELD(imported_at, FMT_ADMIN_T_TIME, 0, 0),
        BATCH_FIELD(hash, FMT_ADMIN_T_SHA256, 0, FMT_ADMIN_SHA256_HEX),
        BATCH_FIELD(prev_hash, FMT_ADMIN_T_SHA256, FMT_ADMIN_F_NULL, FMT_ADMIN_SHA256_HEX),
        BATCH_FIELD(chained, FMT_ADMIN_T_BOOL, 0, 0),
};
static const struct fmt_admin_field batches_fields[] = {
        {.name = "batches",
         .type = FMT_ADMIN_T_ROWS,
         .offset = offsetof(struct fmt_admin_batches, batches),
         .rows = FMT_ADMIN_BATCH,
         .count_offset = offsetof(struct fmt_admin_batches, n_batches)},
        FIELD(fmt_admin_batches, truncated, FMT_ADMIN_T_BOOL, 0, 0),
        FIELD(fmt_admin_batches, next, FMT_ADMIN_T_STRING, FMT_ADMIN_F_OPTIONAL,
              FMT_ADMIN_NEXT_MAX),
};
static const struct fmt_admin_field ca_fields[] = {
        FIELD(fmt_admin_ca, name, FMT_ADMIN_T_STRING, 0, FMT_ID_MAX),
        FIELD(fmt_admin_ca, sha256, FMT_ADMIN_T_SHA256, FMT_ADMIN_F_OPTIONAL,
              FMT_ADMIN_SHA256_HEX),
        FIELD(fmt_admin_ca, subject, FMT_ADMIN_T_STRING,
              FMT_ADMIN_F_OPTIONAL | FMT_ADMIN_F_EMPTY | FMT_ADMIN_F_WIDE, FMT_ADMIN_SUBJECT_MAX),
        FIELD(fmt_admin_ca, not_after, FMT_ADMIN_T_STRING,
              FMT_ADMIN_F_OPTIONAL | FMT_ADMIN_F_EMPTY, FMT_ADMIN_DATE_MAX),
};

static const struct kind_info {
	const struct fmt_admin_field *fields;
	size_t n;
	size_t size;
	const char *list; /* the list answer's member, for row kinds */
	bool request;     /* strict: unknown members refused */
} kinds[FMT_ADMIN_KIND_COUNT] = {
        [FMT_ADMIN_STATION_ADD] = {station_add_fields, N(station_add_fields),
                                   sizeof(struct fmt_admin_station_add), NULL, true},
        [FMT_ADMIN_TARGET] = {target_fields, N(target_fields), sizeof(struct fmt_admin_target),
                              NULL, true},
        [FMT_ADMIN_CA_ADD] = {ca_add_fields, N(ca_add_fields), sizeof(struct fmt_admin_ca_add),
                              NULL, true},
        [FMT_ADMIN_APPROVE] = {approve_fields, N(approve_fields),
                               sizeof(struct fmt_admin_approve), NULL, true},
        [FMT_ADMIN_RELEASE] = {release_fields, N(release_fields),
                               sizeof(struct fmt_admin_release), NULL, true},
        [FMT_ADMIN_ROTATE] = {NULL, 0, sizeof(struct fmt_admin_rotate), NULL, true},
        [FMT_ADMIN_DONE] = {done_fields, N(done_fields), sizeof(struct fmt_admin_done), NULL,
                            false},
        [FMT_ADMIN_STATION] = {station_fields, N(station_fields), sizeof(struct fmt_admin_station),
                               "stations", false},
        [FMT_ADMIN_DEVICE] = {device_fields, N(device_fields), sizeof(struct fmt_admin_device),
                              "devices", false},
        [FMT_ADMIN_CONTENDER] = {contender_fields, N(contender_fields),
                                 sizeof(struct fmt_admin_contender), NULL, false},
        [FMT_ADMIN_FLAG] = {flag_fields, N(flag_fields), sizeof(struct fmt_admin_flag), "flags",
                            false},
        [FMT_ADMIN_AUDIT_ENTRY] = {audit_entry_fields, N(audit_entry_fields),
                                   sizeof(struct fmt_admin_audit_entry), "entries", false},
        [FMT_ADMIN_AUDIT_CHECK] = {audit_check_fields, N(audit_check_fields),
                                   sizeof(struct fmt_admin_audit_check), NULL, false},
        [FMT_ADMIN_UNPROVISIONED] = {unprovisioned_fields, N(unprovisioned_fields),
                                     sizeof(struct fmt_admin_unprovisioned), "devices", false},
        [FMT_ADMIN_FLAG_RESOLVE] = {flag_resolve_fields, N(flag_resolve_fields),
                                    sizeof(struct fmt_admin_flag_resolve), NULL, true},
        [FMT_ADMIN_CREDENTIAL_ADD] = {credential_add_fields, N(credential_add_fields),
                                      sizeof(struct fmt_admin_credential_add), NULL, true},
        [FMT_ADMIN_NAME] = {name_fields, N(name_fields), sizeof(struct fmt_admin_name), NULL,
                            true},
        [FMT_ADMIN_OOB_ADD] = {oob_add_fields, N(oob_add_fields),
                               sizeof(struct fmt_admin_oob_add), NULL, true},
        [FMT_ADMIN_SUSPEND] = {suspend_fields, N(suspend_fields),
                               sizeof(struct fmt_admin_suspend), NULL, true},
        [FMT_ADMIN_ALLOW_ENTRY] = {allow_entry_fields, N(allow_entry_fields),
                                   sizeof(struct fmt_admin_allow_entry), NULL, true},
        [FMT_ADMIN_WHOAMI] = {whoami_fields, N(whoami_fields), sizeof(struct fmt_admin_whoami),
                              NULL, false},
        [FMT_ADMIN_SECRET] = {secret_fields, N(secret_fields), sizeof(struct fmt_admin_secret),
                              NULL, false},
        [FMT_ADMIN_CREDENTIAL] = {credential_fields, N(credential_fields),
                                  sizeof(struct fmt_admin_credential), "credentials", false},
        [FMT_ADMIN_OOB] = {oob_fields, N(oob_fields), sizeof(struct fmt_admin_oob), "entries",
                           false},
        [FMT_ADMIN_SUSPENDED] = {suspended_fields, N(suspended_fields),
                                 sizeof(struct fmt_admin_suspended), NULL, false},
        [FMT_ADMIN_SUSPENSION] = {suspension_fields, N(suspension_fields),
                                  sizeof(struct fmt_admin_suspension), NULL, false},
        [FMT_ADMIN_SEEN] = {seen_fields, N(seen_fields), sizeof(struct fmt_admin_seen), NULL,
                            false},
        [FMT_ADMIN_ALLOW] = {allow_fields, N(allow_fields), sizeof(struct fmt_admin_allow),
                             "allow", false},
        [FMT_ADMIN_BATCH] = {batch_fields, N(batch_fields), sizeof(struct fmt_admin_batch), NULL,
                             false},
        [FMT_ADMIN_BATCHES] = {batches_fields, N(batches_fields),
                               sizeof(struct fmt_admin_batches), NULL, false},
        [FMT_ADMIN_CA] = {ca_fields, N(ca_fields), sizeof(struct fmt_admin_ca), "cas", false},
};

static const struct kind_info *info(enum fmt_admin_kind kind)
{
	return (unsigned)kind < FMT_ADMIN_KIND_COUNT ? &kinds[kind] : NULL;
}

const struct fmt_admin_field *fmt_admin_fields(enum fmt_admin_kind kind, size_t *n)
{
	const struct kind_info *k = info(kind);
	*n = k != NULL ? k->n : 0;
	return k != NULL ? k->fields : NULL;
}

size_t fmt_admin_size(enum fmt_admin_kind kind)
{
	const struct kind_info *k = info(kind);
	return k != NULL ? k->size : 0;
}

const char *fmt_admin_list_name(enum fmt_admin_kind kind)
{
	const struct kind_info *k = info(kind);
	return k != NULL ? k->list : NULL;
}

/* --- member access (memcpy: the struct is reached through its byte offset) --- */

const char *fmt_admin_get_string(const struct fmt_admin_field *f, const void *row)
{
	const char *s;
	memcpy(&s, (const char *)row + f->offset, sizeof(s));
	return s;
}

int64_t fmt_admin_get_int(const struct fmt_admin_field *f, const void *row)
{
	int64_t v;
	memcpy(&v, (const char *)row + f->offset, sizeof(v));
	return v;
}

bool fmt_admin_get_bool(const struct fmt_admin_field *f, const void *row)
{
	bool v;
	if (f->type == FMT_ADMIN_T_TRUE)
		return true;
	memcpy(&v, (const char *)row + f->offset, sizeof(v));
	return v;
}

bool fmt_admin_gated_off(const struct fmt_admin_field *f, const void *row)
{
	bool off = false;
	if (f->flags & FMT_ADMIN_F_GATED)
		memcpy(&off, (const char *)row + f->gate_offset, sizeof(off));
	return off;
}

const void *fmt_admin_get_rows(const struct fmt_admin_field *f, const void *row, size_t *n)
{
	const void *p;
	memcpy(&p, (const char *)row + f->offset, sizeof(p));
	memcpy(n, (const char *)row + f->count_offset, sizeof(*n));
	return p;
}

static void set_string(const struct fmt_admin_field *f, void *row, const char *s)
{
	memcpy((char *)row + f->offset, &s, sizeof(s));
}

static void set_int(const struct fmt_admin_field *f, void *row, int64_t v)
{
	memcpy((char *)row + f->offset, &v, sizeof(v));
}

static void set_bool(const struct fmt_admin_field *f, void *row, bool v)
{
	memcpy((char *)row + f->offset, &v, sizeof(v));
}

static void set_rows(const struct fmt_admin_field *f, void *row, const void *p, size_t n)
{
	memcpy((char *)row + f->offset, &p, sizeof(p));
	memcpy((char *)row + f->count_offset, &n, sizeof(n));
}

static bool is_string_type(enum fmt_admin_type t)
{
	return t == FMT_ADMIN_T_STRING || t == FMT_ADMIN_T_ID || t == FMT_ADMIN_T_SHA256 ||
	       t == FMT_ADMIN_T_ENUM;
}

static bool is_int_type(enum fmt_admin_type t)
{
	return t == FMT_ADMIN_T_INT || t == FMT_ADMIN_T_TIME || t == FMT_ADMIN_T_SECONDS;
}

/* The one check of a string member s[0..len), for both directions. */
static enum idp_err check_string(const struct fmt_admin_field *f, const char *s, size_t len,
                                 enum idp_err bad, struct idp_error *err)
{
	char q[IDP_QUOTE_MAX];
	if (len == 0 && !(f->flags & FMT_ADMIN_F_EMPTY))
		return idp_error_set(err, bad, "%s: empty", f->name);
	if (len > f->max)
		return idp_error_set(err, IDP_E_LIMIT, "%s: longer than %zu bytes", f->name, f->max);
	if (!fmt_utf8_valid((const uint8_t *)s, len))
		return idp_error_set(err, bad, "%s: not valid UTF-8", f->name);
	switch (f->type) {
	case FMT_ADMIN_T_ID: {
		enum idp_err rc = fmt_id_check(s, len, f->name, err);
		if (rc != IDP_OK && err != NULL)
			err->code = bad;
		return rc != IDP_OK ? bad : IDP_OK;
	}
	case FMT_ADMIN_T_SHA256:
		if (len != FMT_ADMIN_SHA256_HEX || strspn(s, "0123456789abcdef") != len)
			return idp_error_set(err, bad,
			                     "%s: must be 64 lower-case hex digits (a SHA-256)",
			                     f->name);
		return IDP_OK;
	case FMT_ADMIN_T_ENUM:
		for (size_t i = 0; f->values[i] != NULL; i++)
			if (strlen(f->values[i]) == len && memcmp(f->values[i], s, len) == 0)
				return IDP_OK;
		{
			char list[128] = "";
			size_t used = 0;
			for (size_t i = 0; f->values[i] != NULL && used < sizeof(list); i++) {
				const char *sep = i == 0 ? "" : f->values[i + 1] == NULL ? " or " : ", ";
				int w = snprintf(list + used, sizeof(list) - used, "%s%s", sep,
				                 f->values[i]);
				if (w < 0)
					break;
				used += (size_t)w;
			}
			return idp_error_set(err, bad, "%s: must be %s, not \"%s\"", f->name, list,
			                     idp_quote(s, len, q));
		}
	default:
		return IDP_OK;
	}
}

/* --- encoding ------------------------------------------------------------------ */

static enum idp_err encode_object(enum fmt_admin_kind kind, const void *v, cJSON **out,
                                  struct idp_error *err);

static enum idp_err nomem(struct idp_error *err)
{
	return idp_error_set(err, IDP_E_NOMEM, "admin api: out of memory");
}

/* name: x as a plain decimal integer. cJSON prints numbers of 15 digits or
 * more in exponent form (2.5777777777792e+15), which the parser refuses;
 * the text is written as it must be read instead. */
static bool add_int(cJSON *o, const char *name, int64_t x)
{
	char num[24];
	(void)snprintf(num, sizeof(num), "%lld", (long long)x);
	return cJSON_AddRawToObject(o, name, num) != NULL;
}

static enum idp_err encode_field(const struct fmt_admin_field *f, const void *v, cJSON *o,
                                 struct idp_error *err)
{
	bool ok = true;
	if (fmt_admin_gated_off(f, v))
		return IDP_OK; /* absent, whatever the member holds */
	if (is_string_type(f->type)) {
		const char *s = fmt_admin_get_string(f, v);
		if (s == NULL && (f->flags & FMT_ADMIN_F_NULL))
			ok = cJSON_AddNullToObject(o, f->name) != NULL;
		else if (s == NULL && !(f->flags & FMT_ADMIN_F_OPTIONAL))
			return idp_error_set(err, IDP_E_ARG, "%s: missing", f->name);
		else if (s != NULL) {
			enum idp_err rc = check_string(f, s, strnlen(s, f->max + 1), IDP_E_ARG, err);
			if (rc != IDP_OK)
				return rc;
			ok = cJSON_AddStringToObject(o, f->name, s) != NULL;
		}
	} else if (is_int_type(f->type)) {
		int64_t x = fmt_admin_get_int(f, v);
		if (x < 0 || x > FMT_JSON_INT_MAX)
			return idp_error_set(err, IDP_E_ARG, "%s: %lld out of range", f->name,
			                     (long long)x);
		if (x != 0 || !(f->flags & FMT_ADMIN_F_OPTIONAL))
			ok = add_int(o, f->name, x);
	} else if (f->type == FMT_ADMIN_T_BOOL || f->type == FMT_ADMIN_T_TRUE) {
		ok = cJSON_AddBoolToObject(o, f->name, fmt_admin_get_bool(f, v)) != NULL;
	} else if (f->type == FMT_ADMIN_T_ROWS) {
		size_t n = 0;
		const char *rows = fmt_admin_get_rows(f, v, &n);
		size_t size = fmt_admin_size(f->rows);
		if (n > FMT_ADMIN_LIST_MAX)
			return idp_error_set(err, IDP_E_ARG, "%s: more than %u rows", f->name,
			                     FMT_ADMIN_LIST_MAX);
		if (n > 0 && rows == NULL)
			return idp_error_set(err, IDP_E_ARG, "%s: no rows given", f->name);
		cJSON *arr = cJSON_AddArrayToObject(o, f->name);
		if (arr == NULL)
			return nomem(err);
		for (size_t i = 0; i < n; i++) {
			cJSON *r = NULL;
			enum idp_err rc = encode_object(f->rows, rows + i * size, &r, err);
			if (rc != IDP_OK)
				return rc;
			if (!cJSON_AddItemToArray(arr, r)) {
				cJSON_Delete(r);
				return nomem(err);
			}
		}
	}
	return ok ? IDP_OK : nomem(err);
}

static enum idp_err encode_object(enum fmt_admin_kind kind, const void *v, cJSON **out,
                                  struct idp_error *err)
{
	*out = NULL;
	const struct kind_info *k = info(kind);
	if (k == NULL || v == NULL)
		return idp_error_set(err, IDP_E_ARG, "admin api: no such body kind");
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return nomem(err);
	for (size_t i = 0; i < k->n; i++) {
		enum idp_err rc = encode_field(&k->fields[i], v, o, err);
		if (rc != IDP_OK) {
			cJSON_Delete(o);
			return rc;
		}
	}
	*out = o;
	return IDP_OK;
}

enum idp_err fmt_admin_encode(enum fmt_admin_kind kind, const void *v, cJSON **out,
                              struct idp_error *err)
{
	return encode_object(kind, v, out, err);
}

enum idp_err fmt_admin_encode_text(enum fmt_admin_kind kind, const void *v, char **out,
                                   size_t *len, struct idp_error *err)
{
	*out = NULL;
	*len = 0;
	cJSON *o = NULL;
	enum idp_err rc = encode_object(kind, v, &o, err);
	if (rc != IDP_OK)
		return rc;
	*out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (*out == NULL)
		return nomem(err);
	*len = strlen(*out);
	return IDP_OK;
}

enum idp_err fmt_admin_list_new(enum fmt_admin_kind kind, cJSON **out, cJSON **rows,
                                struct idp_error *err)
{
	*out = NULL;
	*rows = NULL;
	const char *name = fmt_admin_list_name(kind);
	if (name == NULL)
		return idp_error_set(err, IDP_E_ARG, "admin api: not a list's row kind");
	cJSON *o = cJSON_CreateObject();
	cJSON *a = o != NULL ? cJSON_AddArrayToObject(o, name) : NULL;
	if (a == NULL) {
		cJSON_Delete(o);
		return nomem(err);
	}
	*out = o;
	*rows = a;
	return IDP_OK;
}

enum idp_err fmt_admin_list_add(cJSON *rows, enum fmt_admin_kind kind, const void *row,
                                struct idp_error *err)
{
	if (cJSON_GetArraySize(rows) >= (int)FMT_ADMIN_LIST_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "admin api: more than %u rows",
		                     FMT_ADMIN_LIST_MAX);
	cJSON *o = NULL;
	enum idp_err rc = encode_object(kind, row, &o, err);
	if (rc != IDP_OK)
		return rc;
	if (!cJSON_AddItemToArray(rows, o)) {
		cJSON_Delete(o);
		return nomem(err);
	}
	return IDP_OK;
}

/* The key of a page's last row: an ID, a seq, a credential name or an
 * allow-list entry, the longest (FMT_ADMIN_NEXT_MAX). */
static const struct fmt_admin_field next_field = {
        .name = "next", .type = FMT_ADMIN_T_STRING, .max = FMT_ADMIN_NEXT_MAX};

enum idp_err fmt_admin_list_end(cJSON *list, const char *next, int64_t now,
                                struct idp_error *err)
{
	if (next != NULL) {
		enum idp_err rc = check_string(&next_field, next,
		                               strnlen(next, FMT_ADMIN_NEXT_MAX + 1), IDP_E_ARG, err);
		if (rc != IDP_OK)
			return rc;
		if (cJSON_AddStringToObject(list, "next", next) == NULL)
			return nomem(err);
	}
	if (now < 0 || now > FMT_JSON_INT_MAX)
		return idp_error_set(err, IDP_E_ARG, "now: out of range");
	if (now > 0 && !add_int(list, "now", now))
		return nomem(err);
	return IDP_OK;
}

/* --- parsing -------------------------------------------------------------------- */

struct fmt_admin_block {
	struct fmt_admin_block *next;
	max_align_t data[];
};

/* Zeroed storage for n structs of size bytes, owned by doc. */
static void *doc_alloc(struct fmt_admin_doc *doc, size_t n, size_t size)
{
	if (n == 0 || size == 0 || n > FMT_ADMIN_LIST_MAX)
		return NULL;
	struct fmt_admin_block *b = calloc(1, sizeof(*b) + n * size);
	if (b == NULL)
		return NULL;
	b->next = doc->blocks;
	doc->blocks = b;
	return b->data;
}

void fmt_admin_doc_free(struct fmt_admin_doc *doc)
{
	if (doc == NULL)
		return;
	while (doc->blocks != NULL) {
		struct fmt_admin_block *b = doc->blocks;
		doc->blocks = b->next;
		free(b);
	}
	cJSON_Delete(doc->json);
	doc->json = NULL;
}

void fmt_admin_list_free(struct fmt_admin_list *l)
{
	if (l == NULL)
		return;
	fmt_admin_doc_free(&l->doc);
	l->rows = NULL;
	l->n = 0;
	l->next = NULL;
}

static enum idp_err parse_object(enum fmt_admin_kind kind, const cJSON *o, void *out,
                                 struct fmt_admin_doc *doc, struct idp_error *err);

/* The array a as rows of kind: *rows (in doc) and *n. what names a in errors. */
static enum idp_err parse_rows(enum fmt_admin_kind kind, const cJSON *a, const char *what,
                               const void **rows, size_t *n, struct fmt_admin_doc *doc,
                               struct idp_error *err)
{
	*rows = NULL;
	*n = 0;
	if (a == NULL || !cJSON_IsArray(a))
		return idp_error_set(err, IDP_E_FORMAT, "%s: expected an array", what);
	size_t count = (size_t)cJSON_GetArraySize(a);
	if (count > FMT_ADMIN_LIST_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "%s: more than %u rows", what,
		                     FMT_ADMIN_LIST_MAX);
	if (count == 0)
		return IDP_OK;
	size_t size = fmt_admin_size(kind);
	char *p = doc_alloc(doc, count, size);
	if (p == NULL)
		return nomem(err);
	size_t i = 0;
	for (const cJSON *r = a->child; r != NULL; r = r->next, i++) {
		enum idp_err rc = cJSON_IsObject(r)
		                          ? parse_object(kind, r, p + i * size, doc, err)
		                          : idp_error_set(err, IDP_E_FORMAT, "expected an object");
		if (rc != IDP_OK) {
			idp_error_prefix(err, "%s[%zu]", what, i);
			return rc;
		}
	}
	*rows = p;
	*n = count;
	return IDP_OK;
}

static enum idp_err parse_field(const struct fmt_admin_field *f, const cJSON *o, void *out,
                                struct fmt_admin_doc *doc, struct idp_error *err)
{
	if (fmt_admin_gated_off(f, out))
		return IDP_OK; /* absent by its gate: ignored when sent */
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, f->name);
	if (m == NULL)
		return (f->flags & FMT_ADMIN_F_OPTIONAL)
		               ? IDP_OK
		               : idp_error_set(err, IDP_E_FORMAT, "%s: missing", f->name);
	if (cJSON_IsNull(m) && (f->flags & FMT_ADMIN_F_NULL))
		return IDP_OK; /* NULL already */
	if (is_string_type(f->type)) {
		if (!cJSON_IsString(m))
			return idp_error_set(err, IDP_E_FORMAT, "%s: expected a string", f->name);
		enum idp_err rc = check_string(f, m->valuestring, strlen(m->valuestring),
		                               IDP_E_FORMAT, err);
		if (rc == IDP_OK)
			set_string(f, out, m->valuestring);
		return rc;
	}
	if (is_int_type(f->type)) {
		int64_t v = 0;
		enum idp_err rc =
		        fmt_json_get_int(o, f->name, true, 0, FMT_JSON_INT_MAX, &v, NULL, err);
		if (rc == IDP_OK)
			set_int(f, out, v);
		return rc;
	}
	if (f->type == FMT_ADMIN_T_BOOL || f->type == FMT_ADMIN_T_TRUE) {
		bool v = false;
		enum idp_err rc = fmt_json_get_bool(o, f->name, true, &v, NULL, err);
		if (rc == IDP_OK && f->type == FMT_ADMIN_T_TRUE && !v)
			rc = idp_error_set(err, IDP_E_FORMAT, "%s: must be true", f->name);
		if (rc == IDP_OK && f->type == FMT_ADMIN_T_BOOL)
			set_bool(f, out, v);
		return rc;
	}
	if (f->type == FMT_ADMIN_T_ROWS) {
		const void *rows = NULL;
		size_t n = 0;
		enum idp_err rc = parse_rows(f->rows, m, f->name, &rows, &n, doc, err);
		if (rc == IDP_OK)
			set_rows(f, out, rows, n);
		return rc;
	}
	return idp_error_set(err, IDP_E_ARG, "%s: unknown field type", f->name);
}

static enum idp_err parse_object(enum fmt_admin_kind kind, const cJSON *o, void *out,
                                 struct fmt_admin_doc *doc, struct idp_error *err)
{
	const struct kind_info *k = info(kind);
	memset(out, 0, k->size);
	if (k->request) {
		const char *names[8];
		for (size_t i = 0; i < k->n && i < N(names); i++)
			names[i] = k->fields[i].name;
		enum idp_err rc = fmt_json_only_keys(o, names, k->n, err);
		if (rc != IDP_OK)
			return rc;
	}
	for (size_t i = 0; i < k->n; i++) {
		enum idp_err rc = parse_field(&k->fields[i], o, out, doc, err);
		if (rc != IDP_OK)
			return rc;
	}
	return IDP_OK;
}

/* buf[0..len) as a JSON object for kind into doc->json. */
static enum idp_err parse_doc(enum fmt_admin_kind kind, const uint8_t *buf, size_t len,
                              struct fmt_admin_doc *doc, struct idp_error *err)
{
	doc->json = NULL;
	doc->blocks = NULL;
	const struct kind_info *k = info(kind);
	if (k == NULL)
		return idp_error_set(err, IDP_E_ARG, "admin api: no such body kind");
	size_t max = k->request ? FMT_ADMIN_REQUEST_MAX : FMT_ADMIN_ANSWER_MAX;
	if (buf == NULL || len == 0)
		return idp_error_set(err, IDP_E_FORMAT, "body: empty; expected a JSON object");
	if (len > max)
		return idp_error_set(err, IDP_E_LIMIT, "body: %zu bytes, max %zu", len, max);
	enum idp_err rc = fmt_json_parse_members(buf, len, FMT_ADMIN_DEPTH, FMT_ADMIN_LIST_MAX,
	                                         &doc->json, err);
	if (rc == IDP_OK && !cJSON_IsObject(doc->json))
		rc = idp_error_set(err, IDP_E_FORMAT, "body: not a JSON object");
	return rc;
}

enum idp_err fmt_admin_parse(enum fmt_admin_kind kind, const uint8_t *buf, size_t len, void *out,
                             struct fmt_admin_doc *doc, struct idp_error *err)
{
	enum idp_err rc = parse_doc(kind, buf, len, doc, err);
	if (rc == IDP_OK)
		rc = parse_object(kind, doc->json, out, doc, err);
	if (rc != IDP_OK) {
		fmt_admin_doc_free(doc);
		if (info(kind) != NULL)
			memset(out, 0, info(kind)->size);
	}
	return rc;
}

static const struct fmt_admin_field now_field = {.name = "now", .type = FMT_ADMIN_T_TIME};

enum idp_err fmt_admin_list_parse(enum fmt_admin_kind kind, const uint8_t *buf, size_t len,
                                  struct fmt_admin_list *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	out->kind = kind;
	const char *name = fmt_admin_list_name(kind);
	if (name == NULL)
		return idp_error_set(err, IDP_E_ARG, "admin api: not a list's row kind");
	enum idp_err rc = parse_doc(kind, buf, len, &out->doc, err);
	const cJSON *a = rc == IDP_OK ? cJSON_GetObjectItemCaseSensitive(out->doc.json, name) : NULL;
	if (rc == IDP_OK && a == NULL)
		rc = idp_error_set(err, IDP_E_FORMAT, "%s: missing", name);
	if (rc == IDP_OK)
		rc = parse_rows(kind, a, name, &out->rows, &out->n, &out->doc, err);
	const cJSON *next = rc == IDP_OK ? cJSON_GetObjectItemCaseSensitive(out->doc.json, "next")
	                                 : NULL;
	if (next != NULL && !cJSON_IsString(next))
		rc = idp_error_set(err, IDP_E_FORMAT, "next: expected a string");
	else if (next != NULL)
		rc = check_string(&next_field, next->valuestring, strlen(next->valuestring),
		                  IDP_E_FORMAT, err);
	if (rc == IDP_OK && next != NULL)
		out->next = next->valuestring;
	if (rc == IDP_OK && kind == FMT_ADMIN_UNPROVISIONED)
		rc = fmt_json_get_int(out->doc.json, now_field.name, true, 0, FMT_JSON_INT_MAX,
		                      &out->now, NULL, err);
	if (rc != IDP_OK) {
		fmt_admin_list_free(out);
		out->kind = kind;
	}
	return rc;
}
