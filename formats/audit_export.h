/*
 * audit_export.h - verify an audit export (JSON Lines, formats/audit.md §7)
 * without the server: the chain from its prev_hash, every checkpoint's
 * signature and hash, and truncation of the tail before a checkpoint.
 *
 * Pure: works on a memory buffer, or on lines given twice; no I/O, logging
 * or globals; thread-safe.
 */
#ifndef IDP_FORMATS_AUDIT_EXPORT_H
#define IDP_FORMATS_AUDIT_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/keys.h"

#define FMT_AUDIT_EXPORT_LINE_MAX 8192u /* bytes of one line (an entry is < 2.5 KiB) */

struct fmt_audit_verdict {
	bool intact;         /* every entry and checkpoint verified */
	int64_t first_seq;   /* the header's */
	int64_t last_seq;    /* the last entry that verified (first_seq - 1: none) */
	int64_t entries;     /* entries that verified */
	int64_t checkpoints; /* checkpoints that verified */
	bool truncated;      /* a checkpoint covers entries the export lacks */
	char key_id[65];     /* hex SHA-256 of the key used */
	char reason[256];    /* the first finding, naming the entry or checkpoint; "" */
};

/* Verify the export buf[0..len). key: the audit public key to trust (the
 * holder's copy of audit.pub); NULL trusts the export's own "audit_key",
 * which only shows the export is consistent with itself. IDP_OK with out
 * filled whether or not it verifies; IDP_E_FORMAT (naming the line) when a
 * line is not what §7 says, IDP_E_VERIFY when key is not the export's. */
IDP_MUST_CHECK enum idp_err fmt_audit_export_verify(const uint8_t *buf, size_t len,
                                                    const struct fmt_key *key,
                                                    struct fmt_audit_verdict *out,
                                                    struct idp_error *err);

/* ---- the same in pieces, for an export read from a file twice: memory
 * grows with its checkpoints (a seq and a hash each), not its entries. */

struct fmt_audit_export_check; /* opaque */

/* A new check trusting key (as above; borrowed until _free). NULL when out
 * of memory. */
struct fmt_audit_export_check *fmt_audit_export_check_new(const struct fmt_key *key);

/* First pass: each line line[0..n) (LF removed), in order. Notes the entry
 * a checkpoint line names; anything else (bad lines too) is left to the
 * second pass. */
void fmt_audit_export_check_want(struct fmt_audit_export_check *c, const uint8_t *line, size_t n);

/* Second pass: each line again, in order: line[0..kept) of a line of n
 * bytes (kept < n only for a line over FMT_AUDIT_EXPORT_LINE_MAX, refused
 * by its length). The errors of fmt_audit_export_verify; after one, every
 * later call returns it. */
IDP_MUST_CHECK enum idp_err fmt_audit_export_check_line(struct fmt_audit_export_check *c,
                                                        const uint8_t *line, size_t kept,
                                                        size_t n, struct idp_error *err);

/* The verdict, as fmt_audit_export_verify's (its IDP_E_FORMAT for an
 * export with no line, or the lines' error). */
IDP_MUST_CHECK enum idp_err fmt_audit_export_check_finish(struct fmt_audit_export_check *c,
                                                          struct fmt_audit_verdict *out,
                                                          struct idp_error *err);

/* Release c. NULL is a no-op. */
void fmt_audit_export_check_free(struct fmt_audit_export_check *c);

#endif /* IDP_FORMATS_AUDIT_EXPORT_H */
