/*
 * batch.h - the station's batches on disk: the journal of the open batch
 * (formats/journal.md; append = write + fsync before PASS is shown),
 * duplicate refusal against this batch and this station's earlier ones,
 * the station state (manifest sequence number and previous manifest hash)
 * and the manifest built from a closed batch's journal.
 *
 * Layout under the state directory DIR (docs/station-operator.md):
 *   DIR/station.state         "seq N", "prev HEX64", "last BATCH" lines
 *   DIR/batches/B.journal     the journal of batch B
 *   DIR/batches/B.manifest    its signed manifest (+ .sig) once closed
 *   DIR/batches/B.status      "pending", "uploaded STATUS" or "refused: ..."
 *
 * One process per state directory (the CLI holds DIR/lock); not
 * thread-safe.
 */
#ifndef IDP_ENROLL_BATCH_H
#define IDP_ENROLL_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "enroll/manifest_build.h"
#include "formats/error.h"
#include "formats/journal.h"
#include "formats/wire.h"

#define ENR_JOURNAL_FILE_MAX ((size_t)1 << 30) /* bytes: about 2.8 million devices */
#define ENR_STATUS_MAX       512u              /* bytes of a .status file */

struct enr_batch; /* opaque: an open batch with its journal fd */

/* The batch ID of the open batch in dir (a journal without CLOSE), if any:
 * *found tells. IDP_E_CONFLICT when there are several. */
IDP_MUST_CHECK enum idp_err enr_batch_find_open(const char *dir, char batch[static FMT_ID_MAX + 1],
                                                bool *found, struct idp_error *err);

/* Open batch in dir for appending: resume its journal when it exists (a
 * torn tail is cut off; *resumed = true and the journal's product and
 * target win, station must match), or start it with an OPEN entry. Loads
 * the devices of the station's other journals for duplicate refusal.
 * IDP_E_CONFLICT when the batch is already closed. Free with
 * enr_batch_free(). */
IDP_MUST_CHECK enum idp_err enr_batch_open(const char *dir, const char *batch, const char *station,
                                           const char *product, uint64_t target,
                                           struct enr_batch **out, bool *resumed,
                                           struct idp_error *err);

/* Devices in the batch, the target (0 = open-ended), earlier batches'
 * devices loaded, and the OPEN entry. */
uint64_t enr_batch_count(const struct enr_batch *b);
uint64_t enr_batch_target(const struct enr_batch *b);
uint64_t enr_batch_history(const struct enr_batch *b);
const struct fmt_journal_entry *enr_batch_opened(const struct enr_batch *b);

/* Record a PASSed device: refuse it when its ID, MAC, serial or key is in
 * this batch ("already in this batch: ...", IDP_E_DUPLICATE) or in an
 * earlier batch ("already in an earlier batch of this station: ..."),
 * else append its DEVICE entry and fsync. When this returns IDP_OK the
 * device is durable and may be shown as PASS; on IDP_E_IO it is not. */
IDP_MUST_CHECK enum idp_err enr_batch_add(struct enr_batch *b, const struct fmt_wire_info *info,
                                          const uint8_t nonce[static FMT_WIRE_NONCE_LEN],
                                          const struct fmt_wire_proof *proof, int64_t now,
                                          struct idp_error *err);

/* Append the CLOSE entry (fsync'd). IDP_E_FORMAT when the batch is empty. */
IDP_MUST_CHECK enum idp_err enr_batch_close(struct enr_batch *b, int64_t now,
                                            struct idp_error *err);

/* Release b (closes the journal fd). NULL is a no-op. */
void enr_batch_free(struct enr_batch *b);

/* Build, sign and write DIR/batches/B.manifest (+ .sig) from B's closed
 * journal under the station state's next sequence number and previous
 * hash, then advance the state and mark the batch "pending". Idempotent:
 * a batch whose manifest the state already records is left as it is
 * (*already = true). *count and digest describe the manifest. */
IDP_MUST_CHECK enum idp_err enr_batch_manifest(const char *dir, const char *batch,
                                               const struct enr_signing *s, int64_t now,
                                               uint64_t *seq, uint64_t *count,
                                               uint8_t digest[static FMT_MANIFEST_HASH_LEN],
                                               bool *already, struct idp_error *err);

/* Path of a batch's file: DIR/batches/BATCH + suffix (".journal",
 * ".manifest", ".status"). IDP_E_ARG when it does not fit. */
IDP_MUST_CHECK enum idp_err enr_batch_path(const char *dir, const char *batch, const char *suffix,
                                           char out[static ENR_PATH_MAX + 1],
                                           struct idp_error *err);

/* Read / replace a batch's status line ("" when there is none). */
IDP_MUST_CHECK enum idp_err enr_batch_status_get(const char *dir, const char *batch,
                                                 char out[static ENR_STATUS_MAX],
                                                 struct idp_error *err);
IDP_MUST_CHECK enum idp_err enr_batch_status_set(const char *dir, const char *batch,
                                                 const char *status, struct idp_error *err);

/* Call fn for every batch in dir (by journal), in name order. */
IDP_MUST_CHECK enum idp_err enr_batch_each(const char *dir,
                                           void (*fn)(void *arg, const char *batch), void *arg,
                                           struct idp_error *err);

/* Read a whole journal: the OPEN entry, the DEVICE count, whether it is
 * closed. For listings. */
IDP_MUST_CHECK enum idp_err enr_batch_summary(const char *dir, const char *batch,
                                              struct fmt_journal_entry *open, uint64_t *count,
                                              bool *closed, struct idp_error *err);

/* Call fn for every DEVICE entry of batch's journal, in order (a torn
 * tail is not read). */
IDP_MUST_CHECK enum idp_err enr_batch_devices(const char *dir, const char *batch,
                                              void (*fn)(void *arg,
                                                         const struct fmt_journal_entry *e),
                                              void *arg, struct idp_error *err);

#endif /* IDP_ENROLL_BATCH_H */
