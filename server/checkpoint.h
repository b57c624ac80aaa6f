/*
 * checkpoint.h - signed checkpoints of the audit chain's head, their check,
 * and the audit export (formats/audit.md §6 and §7; docs/administrator.md,
 * "Audit log").
 *
 * idprovd signs a checkpoint (n, seq, at, hash of entry seq) with its audit
 * key (STATE/audit.key, Ed25519, made on first start; STATE/audit.pub is
 * its public half) every audit-checkpoint-interval and when it stops. Each
 * is a row of audit_checkpoints, and the newest is also written to
 * STATE/audit.checkpoint, so that deleting checkpoint rows is seen too.
 *
 * Threads: a struct srv_ckpt (the key and a store connection of its own)
 * is used by one thread, idprovd's main thread. srv_ckpt_check and the
 * export handler use the caller's (the loop's) connection.
 */
#ifndef IDP_SERVER_CHECKPOINT_H
#define IDP_SERVER_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "server/httpd.h"
#include "server/state.h"
#include "server/store.h"

#define SRV_CKPT_FILE "audit.checkpoint" /* in the state directory */

struct srv_ckpt; /* opaque */

/* Load (or make, on first start) the audit key of state's directory and
 * open a store connection. Errors name the file. Caller frees *out with
 * srv_ckpt_close(); NULL on failure. */
IDP_MUST_CHECK enum idp_err srv_ckpt_open(const struct srv_state *state, struct srv_ckpt **out,
                                          struct idp_error *err);

/* Sign the current head as checkpoint n = last + 1 at now; store it and
 * replace STATE/audit.checkpoint. out (may be NULL) gets it. It waits
 * SRV_STORE_BUSY_SLICE_MS at most for another writer's lock (see
 * srv_ckpt_set_busy_ms): IDP_E_AGAIN then, nothing written; try again
 * later (idprovd's main thread does, with a backoff). */
IDP_MUST_CHECK enum idp_err srv_ckpt_write(struct srv_ckpt *ck, int64_t now,
                                           struct srv_checkpoint *out, struct idp_error *err);

/* How long ck's writes wait for another writer's lock, ms (opened with
 * SRV_STORE_BUSY_SLICE_MS, so that a lock another process holds never
 * stalls the thread that signs on a timer; the last checkpoint, at stop,
 * may wait SRV_STORE_BUSY_MS). */
void srv_ckpt_set_busy_ms(struct srv_ckpt *ck, int ms);

/* Release ck. NULL is a no-op. */
void srv_ckpt_close(struct srv_ckpt *ck);

/* What the checkpoints say about a chain already checked (chain). */
struct srv_ckpt_check {
	int64_t checkpoints; /* checkpoints that verified */
	int64_t last_n;      /* the newest that verified (0: none) */
	int64_t last_seq;
	int64_t last_at;
	int64_t bad_n;    /* the first checkpoint that does not verify; 0: none */
	bool truncated;   /* entries a checkpoint covers are missing from the tail */
	char reason[320]; /* names the checkpoint or the missing entries; "" when fine */
};

/* Check every checkpoint of st against the audit public key in dir, the
 * chain (recomputed again when a checkpoint is newer than chain's head)
 * and dir's checkpoint file (formats/audit.md §6.3). IDP_OK whatever it
 * finds; an error only when something cannot be read. */
IDP_MUST_CHECK enum idp_err srv_ckpt_check(struct srv_store *st, const char *dir,
                                           struct srv_audit_check *chain,
                                           struct srv_ckpt_check *out, struct idp_error *err);

/* GET /v1/admin/audit/export[?since_seq=SEQ|since=UNIXTIME]: JSON Lines
 * (formats/audit.md §7). */
srv_handler_fn srv_ckpt_export;

#endif /* IDP_SERVER_CHECKPOINT_H */
