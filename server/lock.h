/*
 * lock.h - one idprovd per state directory: an exclusive flock(2) on
 * DIR/idprovd.lock, held for the life of the process, with the holder's PID
 * written in the file; and the pidfile of daemon mode. Layout and behaviour:
 * docs/administrator.md ("One server per state directory").
 *
 * The lock is never taken on the database file (closing a descriptor of the
 * database would drop SQLite's POSIX locks: docs/store.md). The lock file is
 * never removed or replaced: a new inode would let two servers each hold a
 * lock. flock locks belong to the open file description, so the lock
 * survives fork() (daemon mode) as long as one copy of the descriptor stays
 * open. Not thread-safe: call from main() before the threads start.
 */
#ifndef IDP_SERVER_LOCK_H
#define IDP_SERVER_LOCK_H

#include <sys/types.h>

#include "formats/error.h"

#define SRV_LOCK_NAME "idprovd.lock"

/* Take the lock of state directory dir (which must exist): *fd gets the
 * descriptor to keep open until exit, and our PID is written into the file.
 * IDP_E_CONFLICT when another process holds it, naming that process's PID
 * (as it wrote it) and the lock file; IDP_E_IO for a file that cannot be
 * opened (a symbolic link is refused). *fd is -1 on failure. */
IDP_MUST_CHECK enum idp_err srv_lock_take(const char *dir, int *fd, struct idp_error *err);

/* Write pid into the lock file held through fd (after daemonizing). */
IDP_MUST_CHECK enum idp_err srv_lock_set_pid(int fd, pid_t pid, struct idp_error *err);

/* Release the lock (close fd). -1 is a no-op. */
void srv_lock_release(int fd);

/* Write pid as a line to path atomically (mode 0644). */
IDP_MUST_CHECK enum idp_err srv_pidfile_write(const char *path, pid_t pid, struct idp_error *err);

#endif /* IDP_SERVER_LOCK_H */
