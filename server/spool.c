/*
 * spool.c - see spool.h.
 */
#define _GNU_SOURCE /* O_TMPFILE; NOLINT(bugprone-reserved-identifier) */
#include "server/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "formats/manifest.h"
#include "server/store.h"

#define SPOOL_CHUNK 65536u /* bytes read back at a time */

struct srv_spool {
	int fd;
	EVP_MD_CTX *md;
	uint64_t size;
	uint64_t read_off;
	bool failed;
	bool sourced;                          /* the body is complete: sha256 is set */
	uint8_t sha256[SRV_STORE_HASH_LEN];
	bool header_done;                      /* header[] holds the first line with its LF */
	uint8_t header[FMT_MANIFEST_LINE_MAX]; /* the first line, as it streams past */
	size_t header_len;
	uint8_t chunk[SPOOL_CHUNK];
};

/* An unnamed file in dir: O_TMPFILE, or a unique name unlinked at once. */
static int open_unnamed(const char *dir, struct idp_error *err)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)) {
		if (fd < 0)
			(void)idp_error_set(err, srv_store_errno_full(errno) ? IDP_E_FULL : IDP_E_IO,
			                    "%s: upload spool: %s", dir, strerror(errno));
		return fd;
	}
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/.upload-XXXXXX", dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		(void)idp_error_set(err, IDP_E_LIMIT, "%s: upload spool: path too long", dir);
		return -1;
	}
	fd = mkstemp(path);
	if (fd < 0) {
		(void)idp_error_set(err, srv_store_errno_full(errno) ? IDP_E_FULL : IDP_E_IO,
		                    "%s: upload spool: %s", dir, strerror(errno));
		return -1;
	}
	(void)unlink(path);
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

enum idp_err srv_spool_new(const char *dir, struct srv_spool **out, struct idp_error *err)
{
	*out = NULL;
	struct srv_spool *sp = calloc(1, sizeof(*sp));
	if (sp == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "upload spool: out of memory");
	sp->fd = -1;
	sp->md = EVP_MD_CTX_new();
	if (sp->md == NULL || EVP_DigestInit_ex2(sp->md, EVP_sha256(), NULL) != 1) {
		srv_spool_free(sp);
		return idp_error_ssl(err, IDP_E_CRYPTO, "upload spool: sha-256");
	}
	sp->fd = open_unnamed(dir, err);
	if (sp->fd < 0) {
		srv_spool_free(sp);
		return err != NULL && err->code != IDP_OK ? err->code : IDP_E_IO;
	}
	*out = sp;
	return IDP_OK;
}

enum idp_err srv_spool_write(struct srv_spool *sp, const uint8_t *buf, size_t len,
                             struct idp_error *err)
{
	if (sp->failed || sp->sourced)
		return idp_error_set(err, IDP_E_ARG, "upload spool: spent");
	/* The first line (bounded): the header the signature check binds. */
	size_t i = 0;
	while (!sp->header_done && i < len && sp->header_len < sizeof(sp->header)) {
		uint8_t c = buf[i++];
		sp->header[sp->header_len++] = c;
		sp->header_done = c == '\n';
	}
	if (len > 0 && EVP_DigestUpdate(sp->md, buf, len) != 1) {
		sp->failed = true;
		return idp_error_ssl(err, IDP_E_CRYPTO, "upload spool: sha-256");
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(sp->fd, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			sp->failed = true;
			bool full = w < 0 && srv_store_errno_full(errno);
			return idp_error_set(err, full ? IDP_E_FULL : IDP_E_IO, "upload spool: write: %s",
			                     w < 0 ? strerror(errno) : "no progress");
		}
		off += (size_t)w;
	}
	sp->size += len;
	return IDP_OK;
}

uint64_t srv_spool_size(const struct srv_spool *sp)
{
	return sp->size;
}

/* The next chunk, read back from the file. */
static enum idp_err spool_next(void *ctx, const uint8_t **chunk, size_t *n, struct idp_error *err)
{
	struct srv_spool *sp = ctx;
	*chunk = sp->chunk;
	*n = 0;
	for (;;) {
		ssize_t r = pread(sp->fd, sp->chunk, sizeof(sp->chunk), (off_t)sp->read_off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return idp_error_set(err, IDP_E_IO, "upload spool: read: %s", strerror(errno));
		sp->read_off += (uint64_t)r;
		*n = (size_t)r;
		return IDP_OK;
	}
}

enum idp_err srv_spool_source(struct srv_spool *sp, struct srv_import_src *src,
                              struct idp_error *err)
{
	memset(src, 0, sizeof(*src));
	if (sp->failed)
		return idp_error_set(err, IDP_E_ARG, "upload spool: spent");
	unsigned n = 0;
	if (!sp->sourced) {
		if (EVP_DigestFinal_ex(sp->md, sp->sha256, &n) != 1 || n != sizeof(sp->sha256)) {
			sp->failed = true;
			return idp_error_ssl(err, IDP_E_CRYPTO, "upload spool: sha-256");
		}
		sp->sourced = true;
	}
	memcpy(src->sha256, sp->sha256, sizeof(src->sha256));
	if (sp->header_done) {
		src->header = sp->header;
		src->header_len = sp->header_len;
	}
	src->len = sp->size;
	src->next = spool_next;
	src->ctx = sp;
	sp->read_off = 0;
	return IDP_OK;
}

void srv_spool_free(struct srv_spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->fd >= 0)
		(void)close(sp->fd);
	EVP_MD_CTX_free(sp->md);
	free(sp);
}
