/*
 * audit.h - the audit log's hash chain: the canonical bytes of one entry and
 * the hash that links it to the one before. Spec: formats/audit.md.
 *
 * Pure: no I/O, logging or globals; thread-safe. Anyone holding the entries
 * (the admin API's listing, a database copy) can recompute the chain with
 * this module, or with any SHA-256 and the spec, without the server.
 */
#ifndef IDP_FORMATS_AUDIT_H
#define IDP_FORMATS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define FMT_AUDIT_HASH_LEN  32u      /* SHA-256 */
#define FMT_AUDIT_FIELD_MAX 65535u   /* bytes of one text field (u16 length) */
#define FMT_AUDIT_TAG       "idprov-audit-v1" /* domain separation, 15 bytes, no NUL */
#define FMT_AUDIT_TAG_V2    "idprov-audit-v2" /* version 2: the actor is hashed too */

/* One entry as the chain covers it. Text fields are (pointer, length) and
 * need not be NUL-terminated; an absent field is NULL with length 0 (the
 * same bytes as an empty one). */
struct fmt_audit_entry {
	int64_t seq; /* 1, 2, ... with no gaps */
	int64_t at;  /* Unix seconds */
	const char *event;
	size_t event_len;
	const char *subject;
	size_t subject_len;
	const char *detail;
	size_t detail_len;
	int version;       /* 2: the actor is covered (formats/audit.md §2); 0 or 1: not */
	const char *actor; /* version 2: who acted (NULL with 0: none) */
	size_t actor_len;
};

/* The canonical bytes of e (formats/audit.md §2) into out[cap]; *len the
 * bytes written. IDP_E_LIMIT when a field exceeds FMT_AUDIT_FIELD_MAX or
 * out is too small (fmt_audit_canonical_len says how much is needed). */
IDP_MUST_CHECK enum idp_err fmt_audit_canonical(const struct fmt_audit_entry *e, uint8_t *out,
                                                size_t cap, size_t *len, struct idp_error *err);

/* Bytes fmt_audit_canonical writes for e (field lengths not checked). */
size_t fmt_audit_canonical_len(const struct fmt_audit_entry *e);

/* The chain hash of e: SHA-256(prev || canonical(e)), prev being the hash
 * of entry seq - 1, or 32 zero bytes for the first entry. IDP_E_LIMIT as
 * fmt_audit_canonical, IDP_E_CRYPTO when SHA-256 fails to run. */
IDP_MUST_CHECK enum idp_err fmt_audit_hash(const uint8_t prev[static FMT_AUDIT_HASH_LEN],
                                           const struct fmt_audit_entry *e,
                                           uint8_t out[static FMT_AUDIT_HASH_LEN],
                                           struct idp_error *err);

/* hex[0..len) (64 lower-case hex digits, as the admin API shows hashes) as
 * 32 bytes into out; false when it is not that. */
bool fmt_audit_hash_from_hex(const char *hex, size_t len, uint8_t out[static FMT_AUDIT_HASH_LEN]);

/* A signed checkpoint of the chain's head (formats/audit.md §6). */
#define FMT_AUDIT_CKPT_TAG "idprov-audit-checkpoint-v1" /* 26 bytes, no NUL */
#define FMT_AUDIT_CKPT_LEN (26u + 8u + 8u + 8u + FMT_AUDIT_HASH_LEN) /* signed bytes */

struct fmt_audit_checkpoint {
	int64_t n;   /* 1, 2, ... with no gaps */
	int64_t seq; /* the head it covers: 0 for an empty log */
	int64_t at;  /* Unix seconds it was made */
	uint8_t hash[FMT_AUDIT_HASH_LEN]; /* hash(seq), 32 zero bytes for seq 0 */
};

/* The bytes a checkpoint's signature covers (formats/audit.md §6.1). */
void fmt_audit_checkpoint_bytes(const struct fmt_audit_checkpoint *c,
                                uint8_t out[static FMT_AUDIT_CKPT_LEN]);

#endif /* IDP_FORMATS_AUDIT_H */
