/*
 * file.c - see file.h.
 */
#include "formats/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "formats/buf.h"

#define READ_CHUNK 65536u /* bytes asked of read() at a time */

/* Directory part of path into dir (".", when path has no slash). */
static enum idp_err dir_of(const char *path, char *dir, size_t size, struct idp_error *err)
{
	const char *slash = strrchr(path, '/');
	int n;
	if (slash == NULL)
		n = snprintf(dir, size, ".");
	else if (slash == path)
		n = snprintf(dir, size, "/");
	else
		n = snprintf(dir, size, "%.*s", (int)(slash - path), path);
	if (n < 0 || (size_t)n >= size)
		return idp_error_set(err, IDP_E_LIMIT, "%s: path too long", path);
	return IDP_OK;
}

enum idp_err fmt_file_sync_dir(const char *path, struct idp_error *err)
{
	char dir[PATH_MAX];
	enum idp_err rc = dir_of(path, dir, sizeof(dir), err);
	if (rc != IDP_OK)
		return rc;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return idp_error_set(err, IDP_E_IO, "%s: %s", dir, strerror(errno));
	if (fsync(fd) != 0 && errno != EINVAL) {
		int e = errno;
		(void)close(fd);
		return idp_error_set(err, IDP_E_IO, "%s: fsync: %s", dir, strerror(e));
	}
	(void)close(fd);
	return IDP_OK;
}

enum idp_err fmt_file_write_atomic(const char *path, const uint8_t *buf, size_t len, mode_t mode,
                                   struct idp_error *err)
{
	return fmt_file_write_atomic_ex(path, buf, len, mode, 0, err);
}

enum idp_err fmt_file_write_atomic_ex(const char *path, const uint8_t *buf, size_t len,
                                      mode_t mode, unsigned flags, struct idp_error *err)
{
	struct fmt_file_atomic a;
	enum idp_err rc;
	if ((rc = fmt_file_atomic_open(&a, path, mode, err)) ||
	    (rc = fmt_file_atomic_write(&a, buf, len, err)) ||
	    (rc = fmt_file_atomic_commit(&a, flags, err)))
		fmt_file_atomic_abort(&a);
	return rc;
}

enum idp_err fmt_file_atomic_open(struct fmt_file_atomic *a, const char *path, mode_t mode,
                                  struct idp_error *err)
{
	a->fd = -1;
	a->path = path;
	a->tmp[0] = '\0';
	uint8_t rnd[6];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "%s: random temp name", path);
	int n = snprintf(a->tmp, sizeof(a->tmp), "%s.tmp-%02x%02x%02x%02x%02x%02x", path, rnd[0],
	                 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	if (n < 0 || (size_t)n >= sizeof(a->tmp)) {
		a->tmp[0] = '\0';
		return idp_error_set(err, IDP_E_LIMIT, "%s: path too long", path);
	}
	a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (a->fd < 0) {
		a->tmp[0] = '\0'; /* not ours: never removed */
		/* Name the file the caller asked for, not the temp file beside it. */
		if (errno == ENOENT)
			return idp_error_set(err, IDP_E_IO, "%s: its directory does not exist", path);
		return idp_error_set(err, IDP_E_IO, "%s: cannot create a file in its directory: %s",
		                     path, strerror(errno));
	}
	/* open() applied the umask; the mode asked for is the mode meant. */
	if (fchmod(a->fd, mode) != 0) {
		enum idp_err rc = idp_error_set(err, IDP_E_IO, "%s: chmod: %s", path, strerror(errno));
		fmt_file_atomic_abort(a);
		return rc;
	}
	return IDP_OK;
}

enum idp_err fmt_file_atomic_write(struct fmt_file_atomic *a, const uint8_t *buf, size_t len,
                                   struct idp_error *err)
{
	if (a->fd < 0)
		return idp_error_set(err, IDP_E_ARG, "%s: not open for writing", a->path);
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(a->fd, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			enum idp_err rc = idp_error_set(err, IDP_E_IO, "%s: write: %s", a->path,
			                                w < 0 ? strerror(errno) : "no progress");
			fmt_file_atomic_abort(a);
			return rc;
		}
		off += (size_t)w;
	}
	return IDP_OK;
}

enum idp_err fmt_file_atomic_commit(struct fmt_file_atomic *a, unsigned flags,
                                    struct idp_error *err)
{
	enum idp_err rc = IDP_OK;
	if (a->fd < 0)
		return idp_error_set(err, IDP_E_ARG, "%s: not open for writing", a->path);
	if ((flags & FMT_FILE_NO_DATA_SYNC) == 0 && fsync(a->fd) != 0) {
		rc = idp_error_set(err, IDP_E_IO, "%s: fsync: %s", a->path, strerror(errno));
		goto out;
	}
	int fd = a->fd;
	a->fd = -1;
	if (close(fd) != 0) {
		rc = idp_error_set(err, IDP_E_IO, "%s: close: %s", a->path, strerror(errno));
		goto out;
	}
	if (rename(a->tmp, a->path) != 0) {
		rc = idp_error_set(err, IDP_E_IO, "%s: rename: %s", a->path, strerror(errno));
		goto out;
	}
	a->tmp[0] = '\0'; /* renamed: nothing left to remove */
	if ((flags & FMT_FILE_NO_DIR_SYNC) != 0)
		return IDP_OK;
	return fmt_file_sync_dir(a->path, err);
out:
	fmt_file_atomic_abort(a);
	return rc;
}

void fmt_file_atomic_abort(struct fmt_file_atomic *a)
{
	if (a->fd >= 0)
		(void)close(a->fd);
	a->fd = -1;
	if (a->tmp[0] != '\0')
		(void)unlink(a->tmp);
	a->tmp[0] = '\0';
}

enum idp_err fmt_file_open_read(const char *path, size_t max, int *fd, struct idp_error *err)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		int e = errno;
		return idp_error_set(err, e == ENOENT ? IDP_E_NOTFOUND : IDP_E_IO, "%s: %s", path,
		                     strerror(e));
	}
	enum idp_err rc = fmt_file_check_fd(*fd, path, max, err);
	if (rc != IDP_OK) {
		(void)close(*fd);
		*fd = -1;
	}
	return rc;
}

enum idp_err fmt_file_check_fd(int fd, const char *path, size_t max, struct idp_error *err)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return idp_error_set(err, IDP_E_IO, "%s: stat: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return idp_error_set(err, IDP_E_IO, "%s: is a directory", path);
	if (st.st_size > 0 && (uint64_t)st.st_size > max)
		return idp_error_set(err, IDP_E_LIMIT, "%s: %lld bytes, max %zu", path,
		                     (long long)st.st_size, max);
	return IDP_OK;
}

enum idp_err fmt_file_read(const char *path, size_t max, uint8_t **out, size_t *len,
                           struct idp_error *err)
{
	*out = NULL;
	*len = 0;
	int fd = -1;
	enum idp_err rc = fmt_file_open_read(path, max, &fd, err);
	if (rc == IDP_OK) {
		rc = fmt_file_read_fd(fd, path, max, out, len, err);
		(void)close(fd);
	}
	return rc;
}

enum idp_err fmt_file_read_fd(int fd, const char *path, size_t max, uint8_t **out, size_t *len,
                              struct idp_error *err)
{
	*out = NULL;
	*len = 0;
	enum idp_err rc = IDP_OK;
	/* WARNING: the file may hold a private key; the buffer wipes every
	 * copy it drops, as it grows and on failure. */
	struct fmt_buf b;
	fmt_buf_init(&b, max, FMT_BUF_SECRET);
	if ((rc = fmt_file_check_fd(fd, path, max, err)))
		goto out;
	/* Read to EOF: st_size may be 0 (pipes, /proc) or change under us. Once
	 * max bytes are in, one more byte is tried to tell "exactly max" from
	 * "more". */
	for (;;) {
		size_t want = b.max - b.len < READ_CHUNK ? b.max - b.len : READ_CHUNK;
		uint8_t probe = 0;
		uint8_t *room = want > 0 ? fmt_buf_room(&b, want) : &probe;
		if (room == NULL) {
			rc = idp_error_set(err, IDP_E_NOMEM, "%s: out of memory", path);
			goto out;
		}
		ssize_t r = read(fd, room, want > 0 ? want : 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = idp_error_set(err, IDP_E_IO, "%s: read: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		if (want == 0) {
			rc = idp_error_set(err, IDP_E_LIMIT, "%s: more than %zu bytes", path, b.max);
			goto out;
		}
		fmt_buf_commit(&b, (size_t)r);
	}
	*out = fmt_buf_detach(&b, len);
	if (*out == NULL)
		rc = idp_error_set(err, IDP_E_NOMEM, "%s: out of memory", path);
out:
	fmt_buf_free(&b);
	return rc;
}

void fmt_file_free_secret(uint8_t *buf, size_t len)
{
	if (buf == NULL)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}
