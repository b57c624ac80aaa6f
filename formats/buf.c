/*
 * buf.c - see buf.h.
 */
#include "formats/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define FIRST_SIZE 256u /* bytes of a growable buffer's first allocation */

void fmt_buf_init(struct fmt_buf *b, size_t max, unsigned flags)
{
	memset(b, 0, sizeof(*b));
	/* One byte is kept for the NUL, so max + 1 must not wrap. */
	b->max = max < SIZE_MAX ? max : SIZE_MAX - 1;
	b->flags = flags;
}

void fmt_buf_init_fixed(struct fmt_buf *b, void *mem, size_t size, size_t max, unsigned flags)
{
	memset(b, 0, sizeof(*b));
	b->p = mem;
	b->size = mem != NULL ? size : 0;
	b->max = max < b->size ? max : b->size;
	b->flags = flags;
	b->fixed = true;
	if (b->size > 0)
		b->p[0] = '\0';
}

static void wipe(struct fmt_buf *b)
{
	if ((b->flags & FMT_BUF_SECRET) && b->p != NULL)
		OPENSSL_cleanse(b->p, b->size);
}

/* Make room for len + n bytes and the NUL; false (and b failed) if not. */
static bool reserve(struct fmt_buf *b, size_t n)
{
	if (b->failed != IDP_OK)
		return false;
	/* WARNING: len <= max < SIZE_MAX, so neither max - len nor the sums
	 * below wrap; checking len + n > max instead would. */
	if (n > b->max - b->len) {
		b->failed = IDP_E_LIMIT;
		return false;
	}
	size_t need = b->len + n + 1;
	if (b->fixed || need <= b->size)
		return true; /* a fixed buffer's max is at most its size */
	if (need > (size_t)PTRDIFF_MAX) {
		b->failed = IDP_E_LIMIT;
		return false;
	}
	size_t size = b->size > 0 ? b->size : FIRST_SIZE;
	while (size < need)
		size = size <= SIZE_MAX / 2 ? size * 2 : need;
	if (size > b->max + 1)
		size = b->max + 1;
	uint8_t *p;
	if (b->flags & FMT_BUF_SECRET) {
		/* realloc() could leave the old copy behind unwiped. */
		p = malloc(size);
		if (p != NULL && b->p != NULL) {
			memcpy(p, b->p, b->len + 1);
			OPENSSL_cleanse(b->p, b->size);
			free(b->p);
		}
	} else {
		p = realloc(b->p, size);
	}
	if (p == NULL) {
		b->failed = IDP_E_NOMEM;
		return false;
	}
	b->p = p;
	b->size = size;
	b->p[b->len] = '\0';
	return true;
}

static void terminate(struct fmt_buf *b)
{
	if (b->p != NULL && b->len < b->size)
		b->p[b->len] = '\0';
}

void fmt_buf_add(struct fmt_buf *b, const void *s, size_t n)
{
	if (!reserve(b, n))
		return;
	if (n > 0)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	terminate(b);
}

void fmt_buf_add_str(struct fmt_buf *b, const char *s)
{
	fmt_buf_add(b, s, strlen(s));
}

void fmt_buf_addf(struct fmt_buf *b, const char *fmt, ...)
{
	if (b->failed != IDP_OK)
		return;
	/* Most text fits the stack; longer text is formatted a second time into
	 * the heap. */
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	if (n < 0) {
		b->failed = IDP_E_LIMIT;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		fmt_buf_add(b, small, (size_t)n);
		if (b->flags & FMT_BUF_SECRET)
			OPENSSL_cleanse(small, sizeof(small));
		return;
	}
	if ((size_t)n > b->max - b->len) {
		b->failed = IDP_E_LIMIT;
		return;
	}
	char *t = malloc((size_t)n + 1);
	if (t == NULL) {
		b->failed = IDP_E_NOMEM;
		return;
	}
	va_start(ap, fmt);
	int m = vsnprintf(t, (size_t)n + 1, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	if (m == n)
		fmt_buf_add(b, t, (size_t)n);
	else
		b->failed = IDP_E_LIMIT;
	if (b->flags & FMT_BUF_SECRET)
		OPENSSL_cleanse(t, (size_t)n + 1);
	free(t);
}

uint8_t *fmt_buf_room(struct fmt_buf *b, size_t n)
{
	if (!reserve(b, n))
		return NULL;
	return b->p != NULL ? b->p + b->len : NULL;
}

void fmt_buf_commit(struct fmt_buf *b, size_t n)
{
	if (b->failed != IDP_OK)
		return;
	/* A growable buffer keeps its NUL; a fixed one may fill its last byte. */
	size_t room = b->p == NULL ? 0 : b->size - b->len - (b->fixed ? 0 : 1);
	if (n > b->max - b->len || n > room) {
		b->failed = IDP_E_LIMIT;
		return;
	}
	b->len += n;
	terminate(b);
}

enum idp_err fmt_buf_status(const struct fmt_buf *b)
{
	return b->failed;
}

enum idp_err fmt_buf_check(const struct fmt_buf *b, const char *what, struct idp_error *err)
{
	switch (b->failed) {
	case IDP_OK:
		return IDP_OK;
	case IDP_E_NOMEM:
		return idp_error_set(err, IDP_E_NOMEM, "%s: out of memory", what);
	default:
		return idp_error_set(err, b->failed, "%s: longer than %zu bytes", what, b->max);
	}
}

void fmt_buf_clear(struct fmt_buf *b)
{
	wipe(b);
	b->len = 0;
	b->failed = IDP_OK;
	terminate(b);
}

uint8_t *fmt_buf_detach(struct fmt_buf *b, size_t *len)
{
	if (len != NULL)
		*len = 0;
	if (b->failed != IDP_OK || b->fixed)
		return NULL;
	if (b->p == NULL) {
		b->p = malloc(1);
		if (b->p == NULL) {
			b->failed = IDP_E_NOMEM;
			return NULL;
		}
		b->size = 1;
		b->p[0] = '\0';
	}
	uint8_t *p = b->p;
	if (len != NULL)
		*len = b->len;
	b->p = NULL;
	b->len = 0;
	b->size = 0;
	return p;
}

void fmt_buf_free(struct fmt_buf *b)
{
	if (b == NULL)
		return;
	wipe(b);
	if (!b->fixed) {
		free(b->p);
		b->p = NULL;
		b->size = 0;
	}
	b->len = 0;
	b->failed = IDP_OK;
	terminate(b);
}
