/*
 * lock.c - see lock.h.
 */
#include "server/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "formats/file.h"

#define LOCK_PATH_MAX 4096u
#define PID_TEXT_MAX  24u

enum idp_err srv_lock_set_pid(int fd, pid_t pid, struct idp_error *err)
{
	char line[PID_TEXT_MAX];
	int n = snprintf(line, sizeof(line), "%ld\n", (long)pid);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return idp_error_set(err, IDP_E_LIMIT, "lock: pid too long");
	if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != (ssize_t)n)
		return idp_error_set(err, IDP_E_IO, "lock: write pid: %s", strerror(errno));
	return IDP_OK;
}

enum idp_err srv_lock_take(const char *dir, int *fd, struct idp_error *err)
{
	*fd = -1;
	char path[LOCK_PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, SRV_LOCK_NAME);
	if (n < 0 || (size_t)n >= sizeof(path))
		return idp_error_set(err, IDP_E_LIMIT, "lock: %s/%s: path too long", dir,
		                     SRV_LOCK_NAME);
	int f = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f < 0)
		return idp_error_set(err, IDP_E_IO, "lock: %s: %s", path, strerror(errno));
	int r;
	do
		r = flock(f, LOCK_EX | LOCK_NB);
	while (r != 0 && errno == EINTR);
	if (r != 0) {
		int e = errno;
		char text[PID_TEXT_MAX] = "";
		ssize_t got = e == EWOULDBLOCK ? pread(f, text, sizeof(text) - 1, 0) : -1;
		(void)close(f);
		if (e != EWOULDBLOCK)
			return idp_error_set(err, IDP_E_IO, "lock: %s: %s", path, strerror(e));
		text[got > 0 ? (size_t)got : 0] = '\0';
		text[strcspn(text, "\n")] = '\0';
		if (text[0] == '\0' || strspn(text, "0123456789") != strlen(text))
			(void)snprintf(text, sizeof(text), "unknown");
		return idp_error_set(err, IDP_E_CONFLICT,
		                     "state directory %s is in use by another idprovd (pid %s, "
		                     "lock %s)",
		                     dir, text, path);
	}
	enum idp_err rc = srv_lock_set_pid(f, getpid(), err);
	if (rc != IDP_OK) {
		(void)close(f);
		return rc;
	}
	*fd = f;
	return IDP_OK;
}

void srv_lock_release(int fd)
{
	if (fd >= 0)
		(void)close(fd);
}

enum idp_err srv_pidfile_write(const char *path, pid_t pid, struct idp_error *err)
{
	char line[PID_TEXT_MAX];
	int n = snprintf(line, sizeof(line), "%ld\n", (long)pid);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return idp_error_set(err, IDP_E_LIMIT, "pid-file: pid too long");
	enum idp_err rc = fmt_file_write_atomic(path, (const uint8_t *)line, (size_t)n, 0644, err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "pid-file");
	return rc;
}
