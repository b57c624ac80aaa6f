/*
 * import.h - import of a signed batch manifest (formats/manifest.md) into
 * the store, whole or not at all.
 *
 * Verify first, then read: the signature is checked over the exact body
 * against the trusted station it names (es256/ed25519: the station's key in
 * the stations table, whose fingerprint the header carries; cms: the factory
 * CAs in the store). Then, in one transaction: the batch is looked up by
 * station and sequence (the same bytes again: nothing to do, same answer; a
 * different body under that sequence: refused as a replaced batch); the
 * previous-hash chain is checked (a gap is recorded in the batch state and
 * flagged for review); every record is streamed in and refused, with its
 * line, when its ID, serial, MAC or key is already another enrolled
 * (preloaded, approved or revoked) device's, unless an administrator
 * released that value. Pending and rejected devices are claims anyone can
 * make, not enrolled identities: the signed manifest wins over them. A
 * pending or rejected device of the record's ID is taken over by the
 * manifest; one that holds the record's serial, MAC or key under another ID
 * stays as it is. Either collision raises a SRV_IMPORT_FLAG_COLLISION flag on
 * the pending (or rejected) device's ID (for the same ID: only when its key
 * or MAC differed from the manifest's, or it was rejected). Nothing is
 * written when any record fails.
 *
 * Thread-safety: as the store connection passed in.
 */
#ifndef IDP_SERVER_IMPORT_H
#define IDP_SERVER_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "server/rules.h"
#include "server/store.h"

#define SRV_IMPORT_FLAG_COLLISION "pending-collision" /* flag kind, see above */

struct srv_import_result {
	char batch_id[SRV_STORE_ID_MAX + 1];
	int64_t sequence;
	int64_t devices;
	bool created; /* false: this very batch was imported before */
	bool gap;     /* sequence or previous-hash gap: recorded and flagged */
};

/* A manifest body the import reads: its first line and SHA-256, known
 * before the import starts (server/spool.h computes both as the upload
 * arrives), and its bytes, read once, front to back, inside the import's
 * transaction. */
struct srv_import_src {
	const uint8_t *header; /* the first line, LF included; NULL: none complete */
	size_t header_len;
	uint8_t sha256[SRV_STORE_HASH_LEN]; /* of the whole body */
	uint64_t len;                       /* bytes of the whole body */
	/* The next bytes of the body in *chunk[0..*n) (valid until the next
	 * call); *n = 0 at the end. */
	enum idp_err (*next)(void *ctx, const uint8_t **chunk, size_t *n, struct idp_error *err);
	void *ctx;
};

/* As srv_import for the body src describes. The signature is checked over
 * src's digest and header line before anything is written; the records are
 * then read once from src in the transaction, and hashed again on the way:
 * bytes that differ from the digest (or a body of another length) roll the
 * import back (IDP_E_VERIFY), so what was verified is what is imported. */
IDP_MUST_CHECK enum idp_err srv_import_stream(struct srv_store *st, const struct srv_import_src *src,
                                              const uint8_t *sig, size_t sig_len,
                                              const char *station, const struct srv_rules *rules,
                                              int64_t now, struct srv_import_result *out,
                                              struct idp_error *err);

/* Import body[0..len) signed by sig[0..sig_len). When station is not NULL
 * (an upload authenticated as that station) the manifest must be that
 * station's. Every record must pass rules (may be NULL) for the batch's
 * product. Errors: IDP_E_VERIFY (bad signature), IDP_E_DENIED (unknown,
 * disabled or other station, untrusted chain),
 * IDP_E_CONFLICT (a replaced batch), IDP_E_DUPLICATE (a record reuses
 * another device's ID, serial, MAC or key; the message names the line),
 * IDP_E_FORMAT / IDP_E_LIMIT (malformed manifest, naming the line). */
IDP_MUST_CHECK enum idp_err srv_import(struct srv_store *st, const uint8_t *body, size_t len,
                                       const uint8_t *sig, size_t sig_len, const char *station,
                                       const struct srv_rules *rules, int64_t now,
                                       struct srv_import_result *out, struct idp_error *err);

#endif /* IDP_SERVER_IMPORT_H */
