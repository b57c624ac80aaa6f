/*
 * spool.h - an uploaded manifest body on its way to the import
 * (server/import.h), held in an unnamed temporary file in the state
 * directory instead of memory: the connection filter (server/conn.c) writes
 * the body as it arrives, and the spool hashes it (SHA-256) and keeps its
 * first line on the way, so the signature is checked over that digest and
 * the records are read once, from the file, inside the import's transaction.
 *
 * The file is opened with O_TMPFILE (or created and unlinked at once where
 * the file system has no O_TMPFILE): it has no name, nothing else opens it,
 * and it is gone when the spool is freed or the process dies. It is never
 * fsync'ed: the import commits what it read to the store; a spool is
 * scratch space (as large as the body, at most max-manifest bytes).
 *
 * Thread-safety: a spool belongs to one connection, on its loop's thread.
 */
#ifndef IDP_SERVER_SPOOL_H
#define IDP_SERVER_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "server/import.h"

struct srv_spool; /* opaque */

/* A new empty spool in directory dir. Free with _free(). IDP_E_FULL (no
 * space or inode left, a quota) or IDP_E_IO naming dir when no file can be
 * made there. */
IDP_MUST_CHECK enum idp_err srv_spool_new(const char *dir, struct srv_spool **out,
                                          struct idp_error *err);

/* Append buf[0..len) (any chunking). IDP_E_FULL when storage ran out (no
 * space, a quota, the file size limit: srv_store_errno_full), IDP_E_IO for
 * another write error: the spool is then spent. */
IDP_MUST_CHECK enum idp_err srv_spool_write(struct srv_spool *sp, const uint8_t *buf, size_t len,
                                            struct idp_error *err);

/* Bytes written so far. */
uint64_t srv_spool_size(const struct srv_spool *sp);

/* The body is complete: fill *src to read it front to back (borrowed from sp
 * until _free; one pass). Called again (a handler run again after the
 * store's lock, server/conn.c), it reads the body again from its start;
 * nothing more can be written then. */
IDP_MUST_CHECK enum idp_err srv_spool_source(struct srv_spool *sp, struct srv_import_src *src,
                                             struct idp_error *err);

/* Close and release sp. NULL is a no-op. */
void srv_spool_free(struct srv_spool *sp);

#endif /* IDP_SERVER_SPOOL_H */
