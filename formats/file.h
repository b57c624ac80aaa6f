/*
 * file.h - the few file helpers every idprov tool needs: crash-safe atomic
 * replacement of a file and a bounded read of a whole file.
 *
 * The only module in formats/ that touches the file system. Thread-safe.
 */
#ifndef IDP_FORMATS_FILE_H
#define IDP_FORMATS_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "formats/error.h"

/* Replace path with buf[0..len) atomically: write a temporary file in the same
 * directory with the given mode, fsync it, rename it over path, fsync the
 * directory. After a crash path holds either the old or the new content, never
 * a mix. Fails with IDP_E_IO naming the path and the system error. */
IDP_MUST_CHECK enum idp_err fmt_file_write_atomic(const char *path, const uint8_t *buf, size_t len,
                                                  mode_t mode, struct idp_error *err);

/* Flags of fmt_file_write_atomic_ex: what it leaves to the caller. */
#define FMT_FILE_NO_DIR_SYNC  1u /* no directory fsync: the rename is durable only at the
                                  * caller's next fmt_file_sync_dir() of that directory */
#define FMT_FILE_NO_DATA_SYNC 2u /* no fsync of the content before the rename: only for a
                                  * marker whose existence alone counts (may read empty
                                  * after a power loss) */

/* As fmt_file_write_atomic, with the fsyncs in flags left out. Batching:
 * several files written with FMT_FILE_NO_DIR_SYNC and the last without it (or
 * a fmt_file_sync_dir) become durable together under one directory fsync;
 * until then a power loss may keep any of their renames or none, each file
 * old or new and (without FMT_FILE_NO_DATA_SYNC) whole. */
IDP_MUST_CHECK enum idp_err fmt_file_write_atomic_ex(const char *path, const uint8_t *buf,
                                                     size_t len, mode_t mode, unsigned flags,
                                                     struct idp_error *err);

/* A file written a piece at a time (constant memory) that replaces path
 * atomically when committed: fmt_file_write_atomic_ex in three steps. Fill
 * with _open, then _write any number of times, then _commit (temp file
 * fsync'ed, renamed over path, directory fsync'ed, as flags say) or _abort
 * (temp file removed, path untouched). After a failed _write or _commit the
 * temp file is already removed; _abort is then a no-op, as after _commit. */
struct fmt_file_atomic {
	int fd;            /* the temp file; -1 when none is open */
	const char *path;  /* borrowed until _commit / _abort */
	char tmp[4096 + 32];
};

/* Create the temp file beside path with mode. Errors as fmt_file_write_atomic. */
IDP_MUST_CHECK enum idp_err fmt_file_atomic_open(struct fmt_file_atomic *a, const char *path,
                                                 mode_t mode, struct idp_error *err);

/* Append buf[0..len). IDP_E_IO naming path (the temp file is removed). */
IDP_MUST_CHECK enum idp_err fmt_file_atomic_write(struct fmt_file_atomic *a, const uint8_t *buf,
                                                  size_t len, struct idp_error *err);

/* Make the content path's (flags: FMT_FILE_NO_*). IDP_E_IO naming path. */
IDP_MUST_CHECK enum idp_err fmt_file_atomic_commit(struct fmt_file_atomic *a, unsigned flags,
                                                   struct idp_error *err);

/* Drop the temp file; path keeps its old content. */
void fmt_file_atomic_abort(struct fmt_file_atomic *a);

/* Read the whole of path into a new NUL-terminated buffer (*out, *len excludes
 * the NUL; the caller frees *out with free(), or with fmt_file_free_secret()
 * for secrets). Refuses files larger than max with IDP_E_LIMIT, missing files
 * with IDP_E_NOTFOUND. On failure *out is NULL. */
IDP_MUST_CHECK enum idp_err fmt_file_read(const char *path, size_t max, uint8_t **out, size_t *len,
                                          struct idp_error *err);

/* As fmt_file_read, from the open descriptor fd (read from its current
 * offset; not closed); path is for messages. For callers that check the file
 * with fstat first (modes, owner) and must read the very file they checked. */
IDP_MUST_CHECK enum idp_err fmt_file_read_fd(int fd, const char *path, size_t max, uint8_t **out,
                                             size_t *len, struct idp_error *err);

/* Open path for reading a piece at a time, as fmt_file_read would read it
 * whole: the same refusals and messages (IDP_E_NOTFOUND, IDP_E_IO, a
 * directory, IDP_E_LIMIT over max bytes). *fd is the caller's to close; -1
 * on failure. */
IDP_MUST_CHECK enum idp_err fmt_file_open_read(const char *path, size_t max, int *fd,
                                               struct idp_error *err);

/* fmt_file_open_read's checks of the open fd: not a directory, at most max
 * bytes. */
IDP_MUST_CHECK enum idp_err fmt_file_check_fd(int fd, const char *path, size_t max,
                                              struct idp_error *err);

/* Cleanse buf[0..len) and free it. NULL is a no-op. */
void fmt_file_free_secret(uint8_t *buf, size_t len);

/* fsync the directory that holds path (after creating or renaming in it). */
IDP_MUST_CHECK enum idp_err fmt_file_sync_dir(const char *path, struct idp_error *err);

#endif /* IDP_FORMATS_FILE_H */
