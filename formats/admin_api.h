/*
 * admin_api.h - the admin API's JSON bodies (/v1/admin/: requests the
 * administrator sends, answers idprovd gives), one encoder and one parser for
 * the server (server/admin.c encodes answers, parses requests), idprov-admin
 * (server/cli/: encodes requests, parses answers), the web UI and the tests.
 * Spec: formats/admin-api.md (normative: endpoints, members, types, limits).
 * The import answer is formats/api.h's fmt_api_batch and error bodies are
 * fmt_api_error_* (formats/api.md §8, §9).
 *
 * Each body kind is a plain struct (struct fmt_admin_station, ...) described
 * by a table of fields (name, type, limits) that drives the encoder, the
 * parser and idprov-admin's tables alike, so a member exists in one place.
 * Strings are const char * (NULL: absent or null); ints are int64_t; a nested
 * array is a pointer plus a count. The encoder checks what the parser checks,
 * so it never emits a body the parser refuses. Request bodies are strict
 * (unknown members refused); answers ignore members they do not know, so an
 * older client reads a newer server's answers.
 *
 * Adding an endpoint: a struct and a kind here, its field table in
 * admin_api.c, the section in admin-api.md, the handler in server/admin.c.
 *
 * Pure (no I/O, logging or mutable globals); thread-safe.
 */
#ifndef IDP_FORMATS_ADMIN_API_H
#define IDP_FORMATS_ADMIN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "formats/error.h"
#include "formats/id.h"

#define FMT_ADMIN_LIST_MAX    1000u       /* rows in one answer (and nested rows per row) */
#define FMT_ADMIN_REQUEST_MAX 65536u      /* bytes of a request body the parser takes */
#define FMT_ADMIN_ANSWER_MAX  (8u << 20)  /* bytes of an answer the parser takes */
#define FMT_ADMIN_DEPTH       5u          /* JSON nesting: list, rows, nested rows */
#define FMT_ADMIN_KEY_TEXT_MAX 4096u      /* a public key as SPKI PEM or base64 DER */
#define FMT_ADMIN_PEM_MAX     16384u      /* a CA certificate PEM */
#define FMT_ADMIN_VALUE_MAX   4096u       /* a released value */
#define FMT_ADMIN_KIND_MAX    32u         /* flag kinds, audit events, token kids */
#define FMT_ADMIN_DETAIL_MAX  1024u       /* flag and audit details, audit reasons */
#define FMT_ADMIN_SHA256_HEX  64u         /* a SHA-256 as lower-case hex digits */
#define FMT_ADMIN_CRED_NAME_MAX 32u       /* an admin credential's name */
#define FMT_ADMIN_SECRET_MAX  64u         /* a credential's secret (base64url of 32 bytes: 43) */
#define FMT_ADMIN_VERIFIER_MAX 64u        /* an OOB verifier in base64 */
#define FMT_ADMIN_ALLOW_MAX   300u        /* an allow-list entry */
#define FMT_ADMIN_HOST_MAX    255u        /* a DNS-SD host name, an instance name (escaped) */
#define FMT_ADMIN_ADDR_MAX    64u         /* an address as text */
#define FMT_ADMIN_SUBJECT_MAX 511u        /* a CA's subject, one-line form */
#define FMT_ADMIN_NEXT_MAX    FMT_ADMIN_ALLOW_MAX /* a list's "next": its last row's key */
#define FMT_ADMIN_DATE_MAX    32u         /* a date as text ("YYYY-MM-DDTHH:MM:SSZ") */

/* Body kinds. Requests first, then answers (rows of lists and objects). */
enum fmt_admin_kind {
	FMT_ADMIN_STATION_ADD = 0, /* POST stations: struct fmt_admin_station_add */
	FMT_ADMIN_TARGET,          /* {"id"}: stations/disable, devices/reject|revoke */
	FMT_ADMIN_CA_ADD,          /* POST cas: struct fmt_admin_ca_add */
	FMT_ADMIN_APPROVE,         /* POST devices/approve: struct fmt_admin_approve */
	FMT_ADMIN_RELEASE,         /* POST release: struct fmt_admin_release */
	FMT_ADMIN_ROTATE,          /* POST token-keys/rotate: {} (struct fmt_admin_rotate) */
	FMT_ADMIN_DONE,            /* a change's answer: struct fmt_admin_done */
	FMT_ADMIN_STATION,         /* row of GET stations */
	FMT_ADMIN_DEVICE,          /* row of GET devices */
	FMT_ADMIN_CONTENDER,       /* row of a device's other_keys */
	FMT_ADMIN_FLAG,            /* row of GET flags */
	FMT_ADMIN_AUDIT_ENTRY,     /* row of GET audit */
	FMT_ADMIN_AUDIT_CHECK,     /* answer of GET audit/verify */
	FMT_ADMIN_UNPROVISIONED,   /* row of GET report/unprovisioned */
	FMT_ADMIN_FLAG_RESOLVE,    /* POST flags/resolve: struct fmt_admin_flag_resolve */
	FMT_ADMIN_CREDENTIAL_ADD,  /* POST credentials: struct fmt_admin_credential_add */
	FMT_ADMIN_NAME,            /* {"name"}: credentials/revoke */
	FMT_ADMIN_OOB_ADD,         /* POST oob: struct fmt_admin_oob_add */
	FMT_ADMIN_SUSPEND,         /* POST suspend: {"reason"?}; resume: {} */
	FMT_ADMIN_ALLOW_ENTRY,     /* {"entry"}: POST allow, allow/remove */
	FMT_ADMIN_WHOAMI,          /* answer of GET whoami */
	FMT_ADMIN_SECRET,          /* answer of POST credentials (201): the secret, once */
	FMT_ADMIN_CREDENTIAL,      /* row of GET credentials */
	FMT_ADMIN_OOB,             /* row of GET oob */
	FMT_ADMIN_SUSPENDED,       /* answer of POST suspend, resume */
	FMT_ADMIN_SUSPENSION,      /* answer of GET suspension */
	FMT_ADMIN_SEEN,            /* row of a suspension's seen */
	FMT_ADMIN_ALLOW,           /* row of GET allow */
	FMT_ADMIN_BATCH,           /* row of GET batches */
	FMT_ADMIN_BATCHES,         /* answer of GET batches: struct fmt_admin_batches */
	FMT_ADMIN_CA,              /* row of GET cas */
	FMT_ADMIN_KIND_COUNT
};

/* --- requests --------------------------------------------------------------- */

struct fmt_admin_station_add {
	const char *id;         /* formats/id.h */
	const char *public_key; /* SPKI PEM or base64 SPKI DER, 1..FMT_ADMIN_KEY_TEXT_MAX */
};

struct fmt_admin_target {
	const char *id; /* formats/id.h */
};

struct fmt_admin_ca_add {
	const char *pem;  /* 1..FMT_ADMIN_PEM_MAX */
	const char *name; /* formats/id.h; NULL: absent */
};

struct fmt_admin_approve {
	const char *id;         /* formats/id.h */
	const char *key_sha256; /* 64 lower-case hex digits; NULL: absent */
};

struct fmt_admin_release {
	const char *kind;  /* "id", "serial", "mac" or "key" */
	const char *value; /* 1..FMT_ADMIN_VALUE_MAX */
};

struct fmt_admin_rotate {
	char unused; /* the body is {} */
};

struct fmt_admin_flag_resolve {
	int64_t seq; /* the open flag's seq, as GET flags lists it */
};

struct fmt_admin_credential_add {
	const char *name; /* 1..FMT_ADMIN_CRED_NAME_MAX of [A-Za-z0-9._-] (the server checks) */
	const char *role; /* "admin" or "viewer" */
};

struct fmt_admin_name {
	const char *name; /* a credential's name */
};

struct fmt_admin_oob_add {
	const char *device_id; /* formats/id.h */
	const char *verifier;  /* base64 of the KDF of the label secret (formats/api.md §15) */
	int64_t expires_in;    /* seconds; 0: absent (the server's default) */
};

struct fmt_admin_suspend {
	const char *reason; /* NULL: absent (resume takes none) */
};

struct fmt_admin_allow_entry {
	const char *entry; /* "HOST:PORT", "[IPv6]:PORT" or a 64-hex CA fingerprint */
};

/* --- answers ---------------------------------------------------------------- */

/* {"ok":true, ...}: what a change did; members absent when NULL. */
struct fmt_admin_done {
	const char *id;         /* the station or device */
	const char *name;       /* the factory CA */
	const char *kid;        /* the new token key */
	const char *key_sha256; /* the key approved */
	const char *kind;       /* release: what was released ... */
	const char *value;      /* ... and its value (a key as "sha256:<hex>") */
	int64_t seq;            /* the flag resolved; 0: absent */
	const char *device_id;  /* oob add: the device */
	const char *entry;      /* allow add, remove: the entry as stored */
};

struct fmt_admin_whoami {
	const char *name;
	const char *role; /* "admin" or "viewer" */
};

/* {"ok":true,"name","role","secret"}. WARNING: secret is the credential:
 * wipe what holds it after use. */
struct fmt_admin_secret {
	const char *name;
	const char *role;
	const char *secret;
};

struct fmt_admin_credential {
	const char *name;
	const char *role;
	const char *source; /* "state-dir" (admin.token) or "store" (named) */
	int64_t created_at;
	int64_t revoked_at; /* 0 while not revoked */
};

struct fmt_admin_oob {
	const char *device_id;
	int64_t created_at;
	int64_t expires_at;
	int64_t used_at; /* 0: not used */
	int64_t failures;
};

struct fmt_admin_suspended {
	bool suspended; /* the state now */
};

/* Another DNS-SD publisher of the service type, seen now. */
struct fmt_admin_seen {
	const char *name; /* instance name */
	const char *host;
	const char *addr;
	int64_t port;
	const char *fp; /* its TXT's CA fingerprint; NULL: none */
	bool allowed;   /* on the allow-list */
};

struct fmt_admin_suspension {
	bool suspended;
	const char *reason; /* NULL: none */
	int64_t since;      /* 0: never suspended */
	bool watching;      /* rogue detection (DNS-SD browsing) runs */
	const struct fmt_admin_seen *seen; /* n_seen rows */
	size_t n_seen;
};

struct fmt_admin_allow {
	const char *entry;
	int64_t added_at;
};

struct fmt_admin_station {
	const char *id;
	bool enabled;
	const char *key_sha256;
	int64_t created_at; /* Unix seconds */
};

struct fmt_admin_contender {
	const char *key_sha256;
	const char *mac; /* NULL: none */
	int64_t first_seen;
	int64_t last_seen;
	int64_t attempts;
};

struct fmt_admin_device {
	const char *id;
	const char *state; /* preloaded, pending, approved, rejected, revoked */
	const char *mac;        /* NULL: none */
	const char *serial;     /* NULL: none */
	const char *batch_id;   /* NULL: none */
	bool has_key;
	const char *key_sha256; /* NULL: none */
	int64_t updated_at;
	int64_t attempts;
	bool contested;
	const struct fmt_admin_contender *other_keys; /* n_other_keys rows */
	size_t n_other_keys;
};

struct fmt_admin_flag {
	int64_t seq;
	const char *kind;
	const char *subject;
	const char *detail; /* may be "" */
	int64_t count;
	int64_t first_seen;
	int64_t last_seen;
};

struct fmt_admin_audit_entry {
	int64_t seq;
	int64_t at;
	const char *event;
	const char *subject; /* NULL: none */
	const char *detail;  /* NULL: none */
	const char *actor;   /* the credential that acted; NULL: none (older entries) */
	const char *hash;    /* NULL: a tampered row without a 32-byte hash */
};

struct fmt_admin_audit_check {
	bool intact;
	int64_t entries;
	int64_t head_seq;
	const char *head_hash;
	int64_t broken_seq;        /* 0: absent (intact) */
	int64_t broken_checkpoint; /* the first that does not verify; 0: absent */
	const char *reason;        /* NULL: absent (intact) */
	/* The signed checkpoints (formats/audit.md §6); not in tables. */
	int64_t checkpoints;    /* how many verified */
	int64_t checkpoint_seq; /* the newest that verified: the seq it covers ... */
	int64_t checkpoint_at;  /* ... and when it was made; 0: none */
	bool truncated;         /* entries a checkpoint covers are missing */
};

struct fmt_admin_unprovisioned {
	const char *id;
	const char *state;
	const char *batch_id;
	const char *station_id;
	int64_t imported_at;
	int64_t age; /* seconds */
	int64_t attempts;
};

/* A sequence of a station's batch chain: the batch, or a gap. */
struct fmt_admin_batch {
	const char *station_id;
	int64_t sequence;
	bool missing; /* never imported: the members below are absent */
	const char *id;
	const char *state; /* "imported" or "gap" */
	const char *product;
	int64_t devices;
	int64_t imported_at;
	const char *hash;      /* the batch's chain hash */
	const char *prev_hash; /* NULL: null (a station's first batch) */
	bool chained;          /* prev_hash is the hash of the batch before */
};

struct fmt_admin_batches {
	const struct fmt_admin_batch *batches; /* n_batches rows */
	size_t n_batches;
	bool truncated;   /* cut at FMT_ADMIN_LIST_MAX rows */
	const char *next; /* NULL unless truncated: "STATION:SEQUENCE" of the last row */
};

/* A trusted factory CA. A PEM that no longer parses is listed with its name
 * only (the other members NULL: absent). */
struct fmt_admin_ca {
	const char *name;
	const char *sha256;    /* of the certificate's DER */
	const char *subject;   /* one-line form; may be "" */
	const char *not_after; /* "YYYY-MM-DDTHH:MM:SSZ"; "" when unreadable */
};

/* --- the field tables --------------------------------------------------------- */

enum fmt_admin_type {
	FMT_ADMIN_T_STRING = 1, /* string of 1..max bytes (0..max with FMT_ADMIN_F_EMPTY) */
	FMT_ADMIN_T_ID,         /* string following formats/id.h */
	FMT_ADMIN_T_SHA256,     /* 64 lower-case hex digits */
	FMT_ADMIN_T_ENUM,       /* one of values[] */
	FMT_ADMIN_T_INT,        /* integer 0..FMT_JSON_INT_MAX */
	FMT_ADMIN_T_TIME,       /* as INT: Unix seconds */
	FMT_ADMIN_T_SECONDS,    /* as INT: a duration */
	FMT_ADMIN_T_BOOL,
	FMT_ADMIN_T_TRUE,       /* the boolean true ("ok") */
	FMT_ADMIN_T_ROWS,       /* array of rows of kind rows, at most FMT_ADMIN_LIST_MAX */
};

#define FMT_ADMIN_F_OPTIONAL 1u /* may be absent (encoded absent when NULL or 0) */
#define FMT_ADMIN_F_NULL     2u /* may be null (encoded null when NULL) */
#define FMT_ADMIN_F_EMPTY    4u /* a string may be "" */
#define FMT_ADMIN_F_WIDE     8u /* long text: tables show it last */
#define FMT_ADMIN_F_GATED   16u /* absent when the bool at gate_offset is true */
#define FMT_ADMIN_F_HIDDEN  32u /* not shown in idprov-admin's tables */

struct fmt_admin_field {
	const char *name;
	enum fmt_admin_type type;
	unsigned flags;
	size_t offset;             /* of the member in the struct */
	size_t max;                /* strings: bytes */
	const char *const *values; /* FMT_ADMIN_T_ENUM: NULL-terminated */
	enum fmt_admin_kind rows;  /* FMT_ADMIN_T_ROWS: the kind of the rows ... */
	size_t count_offset;       /* ... and where their count is */
	size_t gate_offset;        /* FMT_ADMIN_F_GATED: the bool (an earlier member) */
};

/* The fields of kind in member order (*n of them); NULL for an invalid kind. */
const struct fmt_admin_field *fmt_admin_fields(enum fmt_admin_kind kind, size_t *n);

/* The size of kind's struct; 0 for an invalid kind. */
size_t fmt_admin_size(enum fmt_admin_kind kind);

/* The member array's name when kind is the row of a list answer
 * ("stations", "devices", "flags", "entries", "credentials", "allow", "cas");
 * NULL otherwise. */
const char *fmt_admin_list_name(enum fmt_admin_kind kind);

/* Read field f of row (a struct of the field's kind). */
const char *fmt_admin_get_string(const struct fmt_admin_field *f, const void *row);
int64_t fmt_admin_get_int(const struct fmt_admin_field *f, const void *row);
bool fmt_admin_get_bool(const struct fmt_admin_field *f, const void *row);
/* Whether field f is absent from row by its gate (FMT_ADMIN_F_GATED). */
bool fmt_admin_gated_off(const struct fmt_admin_field *f, const void *row);
/* Rows of a FMT_ADMIN_T_ROWS field: the first (NULL when none), *n of them. */
const void *fmt_admin_get_rows(const struct fmt_admin_field *f, const void *row, size_t *n);

/* --- encoding ------------------------------------------------------------------ */

/* *out = v (a struct of kind's type) as a new JSON object, members in table
 * order. Refuses, like the parser, a missing required member or a value out
 * of its type (IDP_E_ARG naming the member), and IDP_E_NOMEM. The caller
 * frees *out with cJSON_Delete(); NULL on failure. */
IDP_MUST_CHECK enum idp_err fmt_admin_encode(enum fmt_admin_kind kind, const void *v, cJSON **out,
                                             struct idp_error *err);

/* *out = v encoded as compact JSON text (no NUL counted in *len); free with
 * cJSON_free(). */
IDP_MUST_CHECK enum idp_err fmt_admin_encode_text(enum fmt_admin_kind kind, const void *v,
                                                  char **out, size_t *len,
                                                  struct idp_error *err);

/* A new list answer {name: []} for rows of kind (fmt_admin_list_name);
 * *rows is its array (borrowed). Free *out with cJSON_Delete(). */
IDP_MUST_CHECK enum idp_err fmt_admin_list_new(enum fmt_admin_kind kind, cJSON **out,
                                               cJSON **rows, struct idp_error *err);

/* Append row (of the list's kind) to rows, refusing more than
 * FMT_ADMIN_LIST_MAX rows (IDP_E_LIMIT). */
IDP_MUST_CHECK enum idp_err fmt_admin_list_add(cJSON *rows, enum fmt_admin_kind kind,
                                               const void *row, struct idp_error *err);

/* Add "next" (the page's last row's key, when the page is full; NULL: none)
 * and, when now > 0, "now" (the report's clock) to list. */
IDP_MUST_CHECK enum idp_err fmt_admin_list_end(cJSON *list, const char *next, int64_t now,
                                               struct idp_error *err);

/* --- parsing -------------------------------------------------------------------- */

struct fmt_admin_block; /* opaque: row storage */

/* A parsed body: the strings of the structs point into json, the rows into
 * blocks. Release with fmt_admin_doc_free(). */
struct fmt_admin_doc {
	cJSON *json;
	struct fmt_admin_block *blocks;
};

/* Parse buf[0..len) as one body of kind into *out (a struct of kind's type,
 * zeroed first). Strict JSON (formats/json.h) of at most
 * FMT_ADMIN_REQUEST_MAX (requests) or FMT_ADMIN_ANSWER_MAX (answers) bytes;
 * a member missing, mistyped, out of bounds or (requests only) unknown is
 * IDP_E_FORMAT or IDP_E_LIMIT naming it ("id: expected a string"). On
 * success doc owns what *out points to; on failure doc is empty. */
IDP_MUST_CHECK enum idp_err fmt_admin_parse(enum fmt_admin_kind kind, const uint8_t *buf,
                                            size_t len, void *out, struct fmt_admin_doc *doc,
                                            struct idp_error *err);

/* A parsed list answer. */
struct fmt_admin_list {
	enum fmt_admin_kind kind; /* of the rows */
	const void *rows;         /* n structs of kind's type; NULL when n = 0 */
	size_t n;
	const char *next; /* NULL: the last page */
	int64_t now;      /* report/unprovisioned only; else 0 */
	struct fmt_admin_doc doc;
};

/* Parse buf[0..len) as a list answer of rows of kind: {name: [rows], "next"?,
 * "now"} ("now" required for the report only). Errors as fmt_admin_parse,
 * naming the row ("devices[3]: id: expected a string"). Free with
 * fmt_admin_list_free(). */
IDP_MUST_CHECK enum idp_err fmt_admin_list_parse(enum fmt_admin_kind kind, const uint8_t *buf,
                                                 size_t len, struct fmt_admin_list *out,
                                                 struct idp_error *err);

/* Release what a parse gave. NULL (and an empty doc) is a no-op. */
void fmt_admin_doc_free(struct fmt_admin_doc *doc);
void fmt_admin_list_free(struct fmt_admin_list *l);

#endif /* IDP_FORMATS_ADMIN_API_H */
