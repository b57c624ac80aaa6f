/*
 * buf.h - the one capped byte buffer: bodies, lines, answers and files are
 * built or read into it instead of each module growing its own.
 *
 * A buffer holds at most `max` bytes. It is either growable (heap, doubled
 * as needed, never beyond max + 1 bytes with the NUL) or fixed (the caller's
 * storage, never grown or freed). Appends are sticky: the first one that
 * does not fit (or finds no memory) marks the buffer failed and every later
 * append is a no-op, so a builder appends freely and checks once with
 * fmt_buf_check(). A secret buffer (FMT_BUF_SECRET: keys, tokens, bodies
 * holding them) wipes every copy it drops: on growth, clear and free.
 * Pure; one buffer is not shared between threads.
 */
#ifndef IDP_FORMATS_BUF_H
#define IDP_FORMATS_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define FMT_BUF_SECRET 1u /* wipe on growth, clear and free */

struct fmt_buf {
	uint8_t *p;     /* the bytes (NULL until a growable buffer first grows) */
	size_t len;     /* bytes in use */
	size_t size;    /* bytes at p */
	size_t max;     /* most bytes it may hold (a NUL after them not counted) */
	unsigned flags; /* FMT_BUF_* */
	bool fixed;     /* p is the caller's storage */
	enum idp_err failed; /* IDP_OK, or why an append was dropped (sticky) */
};

/* A growable buffer of at most max bytes (SIZE_MAX - 1 when larger), empty
 * and without storage yet. p[len] is '\0' whenever p != NULL. */
void fmt_buf_init(struct fmt_buf *b, size_t max, unsigned flags);

/* A buffer over the caller's mem[0..size) holding at most max bytes
 * (max <= size; it is clamped). p[len] is '\0' whenever len < size, so max <
 * size keeps the content a string. mem is borrowed for the buffer's life;
 * fmt_buf_free() wipes it when FMT_BUF_SECRET, never frees it. */
void fmt_buf_init_fixed(struct fmt_buf *b, void *mem, size_t size, size_t max, unsigned flags);

/* Append s[0..n). */
void fmt_buf_add(struct fmt_buf *b, const void *s, size_t n);

/* Append the NUL-terminated local string s (not for untrusted input, which
 * comes with its length: use fmt_buf_add). */
void fmt_buf_add_str(struct fmt_buf *b, const char *s);

/* Append printf-style text. */
void fmt_buf_addf(struct fmt_buf *b, const char *fmt, ...) IDP_PRINTF(2, 3);

/* Room for n more bytes at the end, to be written by the caller and then
 * counted with fmt_buf_commit(); NULL (and the buffer failed) when n bytes
 * do not fit, or when the buffer already failed. */
uint8_t *fmt_buf_room(struct fmt_buf *b, size_t n);

/* Count n bytes written into the room fmt_buf_room() gave (n <= that room). */
void fmt_buf_commit(struct fmt_buf *b, size_t n);

/* IDP_OK, IDP_E_LIMIT (an append did not fit in max) or IDP_E_NOMEM. */
enum idp_err fmt_buf_status(const struct fmt_buf *b);

/* fmt_buf_status(), with "<what>: longer than <max> bytes" or "<what>: out
 * of memory" in err on failure. */
IDP_MUST_CHECK enum idp_err fmt_buf_check(const struct fmt_buf *b, const char *what,
                                          struct idp_error *err);

/* Empty b and forget a failure; keeps its storage (wiped when secret). */
void fmt_buf_clear(struct fmt_buf *b);

/* Hand the content of a growable, not failed buffer to the caller: a
 * NUL-terminated heap copy of len bytes (*len set when len != NULL), to be
 * released with free() (OPENSSL_cleanse first when secret). b is left empty.
 * NULL when b failed, is fixed, or memory runs out (then b is freed). */
uint8_t *fmt_buf_detach(struct fmt_buf *b, size_t *len);

/* Release b's storage (wiped first when secret; a fixed buffer's storage is
 * wiped when secret, never freed) and leave b empty. NULL is a no-op. */
void fmt_buf_free(struct fmt_buf *b);

#endif /* IDP_FORMATS_BUF_H */
