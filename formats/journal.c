/*
 * journal.c - encoder and decoder of station journal entries. Spec:
 * formats/journal.md. Pure; thread-safe.
 */
#include "formats/journal.h"

#include <inttypes.h>
#include <string.h>

#include "formats/crc32c.h"

#define PRODUCT_OK(c) ((c) >= 0x20 && (c) <= 0x7e && (c) != '"' && (c) != '\\')

struct wbuf {
	uint8_t *p;
	size_t len;
};

static void put_u8(struct wbuf *w, uint8_t v)
{
	w->p[w->len++] = v;
}

static void put_u64(struct wbuf *w, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
		put_u8(w, (uint8_t)(v >> (8 * i)));
}

static void put_bytes(struct wbuf *w, const void *s, size_t n)
{
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

/* Check a string field; min is 0 or 1. */
static enum idp_err check_str(const char *s, size_t max, bool id, size_t min, const char *what,
                              size_t *n, struct idp_error *err)
{
	*n = strnlen(s, max + 1);
	if (*n > max)
		return idp_error_set(err, IDP_E_LIMIT, "%s: longer than %zu bytes", what, max);
	if (*n < min)
		return idp_error_set(err, IDP_E_FORMAT, "%s: empty", what);
	if (*n == 0)
		return IDP_OK;
	if (id)
		return fmt_id_check(s, *n, what, err);
	for (size_t i = 0; i < *n; i++)
		if (!PRODUCT_OK((unsigned char)s[i]) || (i == 0 && s[i] == ' ') ||
		    (i + 1 == *n && s[i] == ' '))
			return idp_error_set(err, IDP_E_FORMAT, "%s: byte 0x%02x at offset %zu",
			                     what, (unsigned)(unsigned char)s[i], i);
	return IDP_OK;
}

static enum idp_err put_str(struct wbuf *w, const char *s, size_t max, bool id, size_t min,
                            const char *what, struct idp_error *err)
{
	size_t n = 0;
	enum idp_err rc = check_str(s, max, id, min, what, &n, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "journal");
		return rc;
	}
	put_u8(w, (uint8_t)n);
	put_bytes(w, s, n);
	return IDP_OK;
}

enum idp_err fmt_journal_encode(const struct fmt_journal_entry *e,
                                uint8_t out[static FMT_JOURNAL_ENTRY_MAX], size_t *len,
                                struct idp_error *err)
{
	*len = 0;
	/* Every payload below is under FMT_JOURNAL_PAYLOAD_MAX by construction:
	 * the largest (DEVICE) is 1+64+6+1+64+1+1+128+32+64+8 = 370 bytes. */
	struct wbuf w = {out + FMT_JOURNAL_HEADER_LEN, 0};
	enum idp_err rc = IDP_OK;
	switch (e->type) {
	case FMT_JOURNAL_OPEN:
		if ((rc = put_str(&w, e->batch, FMT_ID_MAX, true, 1, "batch", err)) ||
		    (rc = put_str(&w, e->station, FMT_ID_MAX, true, 1, "station", err)) ||
		    (rc = put_str(&w, e->product, FMT_JOURNAL_PRODUCT_MAX, false, 1, "product",
		                  err)))
			return rc;
		put_u64(&w, e->target);
		break;
	case FMT_JOURNAL_DEVICE:
		if ((rc = put_str(&w, e->id, FMT_ID_MAX, true, 1, "id", err)))
			return rc;
		if (fmt_mac_check(e->mac, err) != IDP_OK) {
			idp_error_prefix(err, "journal: mac");
			return IDP_E_FORMAT;
		}
		put_bytes(&w, e->mac, FMT_MAC_LEN);
		if ((rc = put_str(&w, e->serial, FMT_ID_MAX, true, 1, "serial", err)))
			return rc;
		if (e->key_type != FMT_KEY_P256 && e->key_type != FMT_KEY_ED25519)
			return idp_error_set(err, IDP_E_UNSUPPORTED,
			                     "journal: key_type: %d unknown", (int)e->key_type);
		put_u8(&w, (uint8_t)e->key_type);
		if (e->spki_len == 0 || e->spki_len > FMT_KEY_SPKI_MAX)
			return idp_error_set(err, IDP_E_LIMIT,
			                     "journal: spki: %zu bytes, must be 1..%u", e->spki_len,
			                     FMT_KEY_SPKI_MAX);
		put_u8(&w, (uint8_t)e->spki_len);
		put_bytes(&w, e->spki, e->spki_len);
		put_bytes(&w, e->nonce, FMT_JOURNAL_NONCE_LEN);
		put_bytes(&w, e->sig, FMT_JOURNAL_SIG_LEN);
		break;
	case FMT_JOURNAL_CLOSE:
		put_u64(&w, e->count);
		break;
	default:
		return idp_error_set(err, IDP_E_ARG, "journal: type %d unknown", (int)e->type);
	}
	put_u64(&w, (uint64_t)e->time);
	memcpy(out, FMT_JOURNAL_MAGIC, 4);
	out[4] = (uint8_t)e->type;
	out[5] = 0;
	out[6] = (uint8_t)(w.len >> 8);
	out[7] = (uint8_t)w.len;
	size_t n = FMT_JOURNAL_HEADER_LEN + w.len;
	uint32_t crc = fmt_crc32c(0, out, n);
	for (int i = 0; i < 4; i++)
		out[n + (size_t)i] = (uint8_t)(crc >> (24 - 8 * i));
	*len = n + FMT_JOURNAL_CRC_LEN;
	return IDP_OK;
}

struct rbuf {
	const uint8_t *p;
	size_t len, pos;
};

static enum idp_err get_bytes(struct rbuf *r, void *out, size_t n, const char *what,
                              struct idp_error *err)
{
	if (n > r->len - r->pos)
		return idp_error_set(err, IDP_E_FORMAT, "%s: truncated", what);
	memcpy(out, r->p + r->pos, n);
	r->pos += n;
	return IDP_OK;
}

static enum idp_err get_u64(struct rbuf *r, uint64_t *v, const char *what, struct idp_error *err)
{
	uint8_t b[8] = {0};
	enum idp_err rc = get_bytes(r, b, sizeof(b), what, err);
	*v = 0;
	for (size_t i = 0; rc == IDP_OK && i < 8; i++)
		*v = (*v << 8) | b[i];
	return rc;
}

static enum idp_err get_str(struct rbuf *r, char *out, size_t max, bool id, size_t min,
                            const char *what, struct idp_error *err)
{
	uint8_t n = 0;
	enum idp_err rc = get_bytes(r, &n, 1, what, err);
	if (rc != IDP_OK)
		return rc;
	if (n > max)
		return idp_error_set(err, IDP_E_FORMAT, "%s: %u bytes, max %zu", what, n, max);
	if ((rc = get_bytes(r, out, n, what, err)) != IDP_OK)
		return rc;
	out[n] = '\0';
	size_t got = 0;
	if ((rc = check_str(out, max, id, min, what, &got, err)) != IDP_OK)
		return rc;
	/* check_str stops at a NUL: the bytes behind one would be dropped,
	 * and the entry would re-encode to other bytes than it was read from. */
	if (got != n)
		return idp_error_set(err, IDP_E_FORMAT, "%s: byte 0x00 at offset %zu", what, got);
	return IDP_OK;
}

static enum idp_err parse_payload(uint8_t type, const uint8_t *p, size_t len,
                                  struct fmt_journal_entry *e, struct idp_error *err)
{
	struct rbuf r = {p, len, 0};
	memset(e, 0, sizeof(*e));
	e->type = (enum fmt_journal_type)type;
	enum idp_err rc = IDP_OK;
	uint8_t b = 0;
	switch (type) {
	case FMT_JOURNAL_OPEN:
		if ((rc = get_str(&r, e->batch, FMT_ID_MAX, true, 1, "batch", err)) ||
		    (rc = get_str(&r, e->station, FMT_ID_MAX, true, 1, "station", err)) ||
		    (rc = get_str(&r, e->product, FMT_JOURNAL_PRODUCT_MAX, false, 1, "product",
		                  err)) ||
		    (rc = get_u64(&r, &e->target, "target", err)))
			return rc;
		break;
	case FMT_JOURNAL_DEVICE:
		if ((rc = get_str(&r, e->id, FMT_ID_MAX, true, 1, "id", err)) ||
		    (rc = get_bytes(&r, e->mac, FMT_MAC_LEN, "mac", err)))
			return rc;
		if (fmt_mac_check(e->mac, err) != IDP_OK)
			return IDP_E_FORMAT;
		if ((rc = get_str(&r, e->serial, FMT_ID_MAX, true, 1, "serial", err)) ||
		    (rc = get_bytes(&r, &b, 1, "key_type", err)))
			return rc;
		if (b != FMT_KEY_P256 && b != FMT_KEY_ED25519)
			return idp_error_set(err, IDP_E_FORMAT, "key_type: %u unknown", b);
		e->key_type = (enum fmt_key_type)b;
		if ((rc = get_bytes(&r, &b, 1, "spki", err)))
			return rc;
		if (b == 0 || b > FMT_KEY_SPKI_MAX)
			return idp_error_set(err, IDP_E_FORMAT, "spki: %u bytes, must be 1..%u", b,
			                     FMT_KEY_SPKI_MAX);
		e->spki_len = b;
		if ((rc = get_bytes(&r, e->spki, e->spki_len, "spki", err)) ||
		    (rc = get_bytes(&r, e->nonce, FMT_JOURNAL_NONCE_LEN, "nonce", err)) ||
		    (rc = get_bytes(&r, e->sig, FMT_JOURNAL_SIG_LEN, "sig", err)))
			return rc;
		break;
	case FMT_JOURNAL_CLOSE:
		if ((rc = get_u64(&r, &e->count, "count", err)))
			return rc;
		break;
	default:
		return idp_error_set(err, IDP_E_FORMAT, "type %u unknown", type);
	}
	uint64_t t = 0;
	if ((rc = get_u64(&r, &t, "time", err)))
		return rc;
	e->time = (int64_t)t;
	if (r.pos != r.len)
		return idp_error_set(err, IDP_E_FORMAT, "%zu trailing bytes", r.len - r.pos);
	return IDP_OK;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

enum idp_err fmt_journal_next(const uint8_t *buf, size_t len, size_t *pos,
                              struct fmt_journal_entry *e, enum fmt_journal_item *item,
                              struct idp_error *err)
{
	return fmt_journal_next_at(buf, len, pos, 0, e, item, err);
}

enum idp_err fmt_journal_next_at(const uint8_t *buf, size_t len, size_t *pos, uint64_t base,
                                 struct fmt_journal_entry *e, enum fmt_journal_item *item,
                                 struct idp_error *err)
{
	*item = FMT_JOURNAL_ITEM_END;
	if (*pos > len || (buf == NULL && len > 0))
		return idp_error_set(err, IDP_E_ARG, "journal: position past the end");
	size_t at = *pos, left = len - at;
	const uint8_t *p = buf + at;
	if (left == 0)
		return IDP_OK;
	/* A crash can leave a prefix of the last write, or (on file systems that
	 * grow the size before the data lands) zeros: both are a torn tail. */
	*item = FMT_JOURNAL_ITEM_TORN;
	if (left < FMT_JOURNAL_HEADER_LEN)
		return IDP_OK;
	size_t plen = ((size_t)p[6] << 8) | p[7];
	if (memcmp(p, FMT_JOURNAL_MAGIC, 4) != 0 || p[5] != 0 || plen > FMT_JOURNAL_PAYLOAD_MAX) {
		if (all_zero(p, left))
			return IDP_OK;
		*item = FMT_JOURNAL_ITEM_END;
		return idp_error_set(err, IDP_E_FORMAT,
		                     "journal: offset %" PRIu64 ": not an entry header (damaged journal)",
		                     base + at);
	}
	size_t n = FMT_JOURNAL_HEADER_LEN + plen + FMT_JOURNAL_CRC_LEN;
	if (n > left)
		return IDP_OK;
	size_t body = FMT_JOURNAL_HEADER_LEN + plen;
	uint32_t want = ((uint32_t)p[body] << 24) | ((uint32_t)p[body + 1] << 16) |
	                ((uint32_t)p[body + 2] << 8) | p[body + 3];
	if (fmt_crc32c(0, p, body) != want) {
		if (all_zero(p + n, left - n))
			return IDP_OK;
		*item = FMT_JOURNAL_ITEM_END;
		return idp_error_set(err, IDP_E_FORMAT,
		                     "journal: offset %" PRIu64 ": crc mismatch before further entries "
		                     "(damaged journal)",
		                     base + at);
	}
	*item = FMT_JOURNAL_ITEM_END;
	enum idp_err rc = parse_payload(p[4], p + FMT_JOURNAL_HEADER_LEN, plen, e, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "journal: offset %" PRIu64, base + at);
		return IDP_E_FORMAT;
	}
	*item = FMT_JOURNAL_ITEM_ENTRY;
	*pos = at + n;
	return IDP_OK;
}
