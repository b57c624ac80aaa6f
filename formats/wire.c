/*
 * wire.c - see wire.h; the spec is formats/wire.md.
 */
#include "formats/wire.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "formats/b64.h"
#include "formats/crc32c.h"
#include "formats/id.h"
#include "formats/mac.h"

_Static_assert(FMT_WIRE_BIN_MAX % 3 == 0 && FMT_WIRE_B64_MAX == FMT_WIRE_BIN_MAX / 3 * 4,
               "FMT_WIRE_B64_MAX must be the base64url length of FMT_WIRE_BIN_MAX");
_Static_assert(FMT_WIRE_PAYLOAD_MAX <= 0xffffu, "the length field is 16 bits");
_Static_assert(sizeof(FMT_WIRE_MARKER) == FMT_WIRE_MARKER_LEN + 1, "marker length");
_Static_assert(FMT_KEY_SPKI_MAX <= 0xffu, "SPKI length is one byte on the wire");
_Static_assert(FMT_WIRE_PROOF_MSG_MAX == 383, "proof message bound as in wire.md");

/* The marker as bytes (no NUL), for the encoder and the decoder alike. */
static const uint8_t marker[FMT_WIRE_MARKER_LEN] = {'~', 'I', 'D', 'P', '1', ':'};

enum dstate {
	D_HUNT, /* looking for the marker; d->match bytes of it seen */
	D_BODY, /* collecting base64url characters */
	D_CR,   /* saw "\r" after the body; only more "\r" or "\n" may follow */
};

struct fmt_wire_decoder {
	enum dstate st;
	size_t match;
	size_t n;
	char line[FMT_WIRE_B64_MAX];
	uint8_t bin[FMT_WIRE_BIN_MAX];
	struct fmt_wire_stats stats;
};

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ------------------------------------------------------------ frames */

size_t fmt_wire_line_len(size_t payload_len)
{
	if (payload_len > FMT_WIRE_PAYLOAD_MAX)
		return 0;
	size_t bin = FMT_WIRE_HEADER_LEN + payload_len + FMT_WIRE_CRC_LEN;
	return FMT_WIRE_MARKER_LEN + fmt_b64_encoded_len(FMT_B64_URL, bin) + 1;
}

enum idp_err fmt_wire_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len,
                             uint8_t *out, size_t out_max, size_t *out_len, struct idp_error *err)
{
	*out_len = 0;
	if (len > FMT_WIRE_PAYLOAD_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "frame: payload is %zu bytes, max %u", len,
		                     FMT_WIRE_PAYLOAD_MAX);
	size_t need = fmt_wire_line_len(len);
	if (need > out_max)
		return idp_error_set(err, IDP_E_LIMIT, "frame: line needs %zu bytes, buffer has %zu",
		                     need, out_max);
	uint8_t bin[FMT_WIRE_BIN_MAX];
	bin[0] = FMT_WIRE_VERSION;
	bin[1] = type;
	bin[2] = 0;
	put_u16(bin + 3, seq);
	put_u16(bin + 5, (uint16_t)len);
	if (len > 0)
		memcpy(bin + FMT_WIRE_HEADER_LEN, payload, len);
	size_t body = FMT_WIRE_HEADER_LEN + len;
	put_u32(bin + body, fmt_crc32c(0, bin, body));
	memcpy(out, marker, FMT_WIRE_MARKER_LEN);
	/* The encoder's NUL lands where the "\n" goes, so out needs no extra byte. */
	size_t e = fmt_b64_encode(FMT_B64_URL, bin, body + FMT_WIRE_CRC_LEN,
	                          (char *)out + FMT_WIRE_MARKER_LEN);
	out[FMT_WIRE_MARKER_LEN + e] = '\n';
	*out_len = FMT_WIRE_MARKER_LEN + e + 1;
	return IDP_OK;
}

struct fmt_wire_decoder *fmt_wire_decoder_new(void)
{
	return calloc(1, sizeof(struct fmt_wire_decoder));
}

void fmt_wire_decoder_reset(struct fmt_wire_decoder *d)
{
	d->st = D_HUNT;
	d->match = 0;
	d->n = 0;
}

void fmt_wire_decoder_stats(const struct fmt_wire_decoder *d, struct fmt_wire_stats *out)
{
	*out = d->stats;
}

void fmt_wire_decoder_free(struct fmt_wire_decoder *d)
{
	free(d);
}

static bool is_b64url(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* One byte outside a line. A partial marker that fails to complete turns
 * into noise; the failing byte may itself start the next marker. */
static void hunt(struct fmt_wire_decoder *d, uint8_t c)
{
	if (c == marker[d->match]) {
		if (++d->match == FMT_WIRE_MARKER_LEN) {
			d->match = 0;
			d->n = 0;
			d->st = D_BODY;
		}
		return;
	}
	d->stats.noise_bytes += d->match;
	d->match = 0;
	if (c == marker[0])
		d->match = 1;
	else
		d->stats.noise_bytes++;
}

/* A line is complete: check it and fill *out. False (and counted) when bad. */
static bool finish(struct fmt_wire_decoder *d, struct fmt_wire_frame *out)
{
	size_t n = 0;
	d->st = D_HUNT;
	if (fmt_b64_decode(FMT_B64_URL, d->line, d->n, d->bin, sizeof(d->bin), &n, NULL) !=
	    IDP_OK) {
		d->stats.bad_base64++;
		return false;
	}
	if (n < FMT_WIRE_HEADER_LEN + FMT_WIRE_CRC_LEN) {
		d->stats.bad_length++;
		return false;
	}
	size_t body = n - FMT_WIRE_CRC_LEN;
	if (fmt_crc32c(0, d->bin, body) != get_u32(d->bin + body)) {
		d->stats.bad_crc++;
		return false;
	}
	size_t len = get_u16(d->bin + 5);
	if (len > FMT_WIRE_PAYLOAD_MAX || body - FMT_WIRE_HEADER_LEN != len) {
		d->stats.bad_length++;
		return false;
	}
	out->version = d->bin[0];
	out->type = d->bin[1];
	out->flags = d->bin[2];
	out->seq = get_u16(d->bin + 3);
	out->len = len;
	if (len > 0)
		memcpy(out->payload, d->bin + FMT_WIRE_HEADER_LEN, len);
	d->stats.frames++;
	return true;
}

enum idp_err fmt_wire_feed(struct fmt_wire_decoder *d, const uint8_t *buf, size_t len,
                           size_t *used, struct fmt_wire_frame *out, bool *got,
                           struct idp_error *err)
{
	if (used != NULL)
		*used = 0;
	if (got != NULL)
		*got = false;
	if (d == NULL || (buf == NULL && len > 0) || used == NULL || out == NULL || got == NULL)
		return idp_error_set(err, IDP_E_ARG, "wire decoder: null argument");
	for (size_t i = 0; i < len; i++) {
		uint8_t c = buf[i];
		switch (d->st) {
		case D_HUNT:
			hunt(d, c);
			break;
		case D_BODY:
			if (is_b64url(c)) {
				if (d->n < FMT_WIRE_B64_MAX) {
					/* Take the whole run of symbols, up to the bound. */
					size_t run = 1, room = FMT_WIRE_B64_MAX - d->n;
					while (run < room && run < len - i && is_b64url(buf[i + run]))
						run++;
					memcpy(d->line + d->n, buf + i, run);
					d->n += run;
					i += run - 1;
					break;
				}
				/* Longer than any frame: the rest of the line is noise. */
				d->stats.bad_overlong++;
				d->st = D_HUNT;
				hunt(d, c);
				break;
			}
			if (c == '\r') {
				d->st = D_CR;
				break;
			}
			if (c == '\n' && finish(d, out)) {
				*got = true;
				*used = i + 1;
				return IDP_OK;
			}
			if (c != '\n') {
				d->stats.bad_cut++;
				d->st = D_HUNT;
				hunt(d, c);
			}
			break;
		case D_CR:
			/* A run of CR before LF: a console server or a second
			 * ONLCR stage adds CR more than once ("\r\r\n"). */
			if (c == '\r')
				break;
			if (c == '\n') {
				if (finish(d, out)) {
					*got = true;
					*used = i + 1;
					return IDP_OK;
				}
				break;
			}
			d->stats.bad_cut++;
			d->st = D_HUNT;
			hunt(d, c);
			break;
		}
	}
	*used = len;
	return IDP_OK;
}

/* ------------------------------------------------------------ messages */

struct wr {
	uint8_t *p;
	size_t n, max;
};

struct rd {
	const uint8_t *p;
	size_t left;
};

static enum idp_err wr_bytes(struct wr *w, const void *src, size_t n, const char *what,
                             struct idp_error *err)
{
	if (n > w->max - w->n)
		return idp_error_set(err, IDP_E_LIMIT, "%s: does not fit in %zu bytes", what,
		                     w->max);
	if (n > 0)
		memcpy(w->p + w->n, src, n);
	w->n += n;
	return IDP_OK;
}

static enum idp_err wr_u8(struct wr *w, uint8_t v, const char *what, struct idp_error *err)
{
	return wr_bytes(w, &v, 1, what, err);
}

/* Character classes of string fields: IDs and serials follow formats/id.h,
 * version strings and error text are printable ASCII. */
enum str_class {
	STR_ID,
	STR_TEXT,
};

/* Check a string field: min..max bytes of its class. */
static enum idp_err check_str(const char *what, const char *s, size_t len, size_t min, size_t max,
                              enum str_class cls, struct idp_error *err)
{
	if (len < min || len > max)
		return idp_error_set(err, len > max ? IDP_E_LIMIT : IDP_E_FORMAT,
		                     "%s: %zu bytes, must be %zu..%zu", what, len, min, max);
	if (cls == STR_ID)
		return len == 0 ? IDP_OK : fmt_id_check(s, len, what, err);
	const uint8_t lo = 0x20;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c < lo || c > 0x7e)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "%s: byte 0x%02x at offset %zu is not allowed", what,
			                     c, i);
	}
	return IDP_OK;
}

/* A string field with its one-byte length. */
static enum idp_err wr_str(struct wr *w, const char *what, const char *s, size_t len, size_t min,
                           size_t max, enum str_class cls, struct idp_error *err)
{
	enum idp_err rc = check_str(what, s, len, min, max, cls, err);
	if (rc == IDP_OK)
		rc = wr_u8(w, (uint8_t)len, what, err);
	if (rc == IDP_OK)
		rc = wr_bytes(w, s, len, what, err);
	return rc;
}

static enum idp_err rd_bytes(struct rd *r, size_t n, const uint8_t **out, const char *what,
                             struct idp_error *err)
{
	if (n > r->left) {
		idp_error_set(err, IDP_E_FORMAT, "%s: needs %zu bytes, %zu left", what, n, r->left);
		return IDP_E_FORMAT; /* spelled out so that analysers see *out is set on success */
	}
	*out = r->p;
	r->p += n;
	r->left -= n;
	return IDP_OK;
}

static enum idp_err rd_u8(struct rd *r, uint8_t *v, const char *what, struct idp_error *err)
{
	const uint8_t *p = NULL;
	enum idp_err rc = rd_bytes(r, 1, &p, what, err);
	if (rc == IDP_OK)
		*v = p[0];
	return rc;
}

/* Read a string field into out (NUL-terminated, room for max + 1). */
static enum idp_err rd_str(struct rd *r, const char *what, char *out, size_t *out_len, size_t min,
                           size_t max, enum str_class cls, struct idp_error *err)
{
	uint8_t n = 0;
	const uint8_t *p = NULL;
	enum idp_err rc = rd_u8(r, &n, what, err);
	if (rc == IDP_OK)
		rc = rd_bytes(r, n, &p, what, err);
	if (rc == IDP_OK)
		rc = check_str(what, (const char *)p, n, min, max, cls, err);
	if (rc != IDP_OK)
		return rc;
	memcpy(out, p, n);
	out[n] = '\0';
	*out_len = n;
	return IDP_OK;
}

/* The SPKI must parse, be the key type claimed and re-encode to itself. */
static enum idp_err check_spki(enum fmt_key_type type, const uint8_t *spki, size_t len,
                               struct fmt_key **keep, struct idp_error *err)
{
	if (type != FMT_KEY_P256 && type != FMT_KEY_ED25519)
		return idp_error_set(err, IDP_E_UNSUPPORTED, "info: key_type %d is not supported",
		                     (int)type);
	struct fmt_key *k = NULL;
	enum idp_err rc = fmt_key_parse_spki_der(spki, len, &k, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "info: public key");
		return rc;
	}
	if (fmt_key_type(k) != type) {
		rc = idp_error_set(err, IDP_E_FORMAT, "info: key_type %s does not match the %s key",
		                   fmt_key_type_name(type), fmt_key_type_name(fmt_key_type(k)));
		fmt_key_free(k);
		return rc;
	}
	if (keep != NULL)
		*keep = k;
	else
		fmt_key_free(k);
	return IDP_OK;
}

static enum idp_err check_hello(uint8_t type, const struct fmt_wire_hello *h,
                                struct idp_error *err)
{
	uint8_t want = type == FMT_WIRE_HELLO ? FMT_WIRE_ROLE_STATION : FMT_WIRE_ROLE_DEVICE;
	if (h->role != want)
		return idp_error_set(err, IDP_E_FORMAT, "hello: role %u, expected %u", h->role,
		                     want);
	if (h->versions == 0 || (h->versions & 1u) != 0)
		return idp_error_set(err, IDP_E_FORMAT, "hello: versions 0x%08x is not a set of 1..31",
		                     (unsigned)h->versions);
	return IDP_OK;
}

/* The MAC rules of every format (formats/mac.h): not all-zero, not a group
 * address. A station that took one would PASS a device whose record the
 * manifest writer then refuses. */
static enum idp_err check_mac(const uint8_t mac[static FMT_WIRE_MAC_LEN], struct idp_error *err)
{
	enum idp_err rc = fmt_mac_check(mac, err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "info");
	return rc;
}

static enum idp_err enc_info(struct wr *w, const struct fmt_wire_info *in, struct idp_error *err)
{
	enum idp_err rc;
	uint8_t kt = (uint8_t)in->key_type;
	if ((rc = wr_str(w, "info: device_id", in->device_id, in->device_id_len, 1,
	                 FMT_WIRE_ID_MAX, STR_ID, err)) != IDP_OK ||
	    (rc = check_mac(in->mac, err)) != IDP_OK ||
	    (rc = wr_bytes(w, in->mac, FMT_WIRE_MAC_LEN, "info: mac", err)) != IDP_OK ||
	    (rc = wr_str(w, "info: serial", in->serial, in->serial_len, 0, FMT_WIRE_SERIAL_MAX,
	                 STR_ID, err)) != IDP_OK)
		return rc;
	if (in->spki_len == 0 || in->spki_len > FMT_KEY_SPKI_MAX)
		return idp_error_set(err, in->spki_len == 0 ? IDP_E_FORMAT : IDP_E_LIMIT,
		                     "info: public key is %zu bytes, must be 1..%u", in->spki_len,
		                     FMT_KEY_SPKI_MAX);
	if ((rc = check_spki(in->key_type, in->spki, in->spki_len, NULL, err)) != IDP_OK ||
	    (rc = wr_u8(w, kt, "info: key_type", err)) != IDP_OK ||
	    (rc = wr_u8(w, (uint8_t)in->spki_len, "info: public key", err)) != IDP_OK ||
	    (rc = wr_bytes(w, in->spki, in->spki_len, "info: public key", err)) != IDP_OK ||
	    (rc = wr_str(w, "info: fw_version", in->fw_version, in->fw_version_len, 0,
	                 FMT_WIRE_VERSTR_MAX, STR_TEXT, err)) != IDP_OK)
		return rc;
	return wr_str(w, "info: agent_version", in->agent_version, in->agent_version_len, 0,
	              FMT_WIRE_VERSTR_MAX, STR_TEXT, err);
}

static enum idp_err dec_info(struct rd *r, struct fmt_wire_info *out, struct idp_error *err)
{
	enum idp_err rc;
	const uint8_t *p = NULL;
	uint8_t kt = 0, n = 0;
	if ((rc = rd_str(r, "info: device_id", out->device_id, &out->device_id_len, 1,
	                 FMT_WIRE_ID_MAX, STR_ID, err)) != IDP_OK ||
	    (rc = rd_bytes(r, FMT_WIRE_MAC_LEN, &p, "info: mac", err)) != IDP_OK)
		return rc;
	memcpy(out->mac, p, FMT_WIRE_MAC_LEN);
	if ((rc = check_mac(out->mac, err)) != IDP_OK ||
	    (rc = rd_str(r, "info: serial", out->serial, &out->serial_len, 0, FMT_WIRE_SERIAL_MAX,
	                 STR_ID, err)) != IDP_OK ||
	    (rc = rd_u8(r, &kt, "info: key_type", err)) != IDP_OK ||
	    (rc = rd_u8(r, &n, "info: public key", err)) != IDP_OK)
		return rc;
	/* Range before bytes left (strings check bytes left first): wire.md 5. */
	if (n == 0 || n > FMT_KEY_SPKI_MAX)
		return idp_error_set(err, n == 0 ? IDP_E_FORMAT : IDP_E_LIMIT,
		                     "info: public key is %u bytes, must be 1..%u", n,
		                     FMT_KEY_SPKI_MAX);
	if ((rc = rd_bytes(r, n, &p, "info: public key", err)) != IDP_OK)
		return rc;
	memcpy(out->spki, p, n);
	out->spki_len = n;
	out->key_type = (enum fmt_key_type)kt;
	if ((rc = check_spki(out->key_type, out->spki, n, NULL, err)) != IDP_OK ||
	    (rc = rd_str(r, "info: fw_version", out->fw_version, &out->fw_version_len, 0,
	                 FMT_WIRE_VERSTR_MAX, STR_TEXT, err)) != IDP_OK)
		return rc;
	return rd_str(r, "info: agent_version", out->agent_version, &out->agent_version_len, 0,
	              FMT_WIRE_VERSTR_MAX, STR_TEXT, err);
}

enum idp_err fmt_wire_payload_encode(const struct fmt_wire_msg *m,
                                     uint8_t out[static FMT_WIRE_PAYLOAD_MAX], size_t *len,
                                     struct idp_error *err)
{
	struct wr w = {out, 0, FMT_WIRE_PAYLOAD_MAX};
	enum idp_err rc = IDP_OK;
	uint8_t b[4];
	*len = 0;
	switch (m->type) {
	case FMT_WIRE_HELLO:
	case FMT_WIRE_HELLO_ACK:
		if ((rc = check_hello((uint8_t)m->type, &m->u.hello, err)) != IDP_OK)
			return rc;
		put_u32(b, m->u.hello.versions);
		if ((rc = wr_u8(&w, m->u.hello.role, "hello: role", err)) == IDP_OK)
			rc = wr_bytes(&w, b, 4, "hello: versions", err);
		break;
	case FMT_WIRE_INFO_REQ:
		break;
	case FMT_WIRE_INFO:
		rc = enc_info(&w, &m->u.info, err);
		break;
	case FMT_WIRE_CHALLENGE:
		if ((rc = wr_bytes(&w, m->u.challenge.nonce, FMT_WIRE_NONCE_LEN, "challenge: nonce",
		                   err)) == IDP_OK)
			rc = wr_str(&w, "challenge: station_id", m->u.challenge.station_id,
			            m->u.challenge.station_id_len, 1, FMT_WIRE_ID_MAX, STR_ID, err);
		break;
	case FMT_WIRE_PROOF:
		rc = wr_bytes(&w, m->u.proof.sig, FMT_WIRE_SIG_LEN, "proof: signature", err);
		break;
	case FMT_WIRE_ERROR:
		if (m->u.error.code == 0)
			return idp_error_set(err, IDP_E_FORMAT, "error: code 0 is reserved");
		put_u16(b, m->u.error.code);
		if ((rc = wr_bytes(&w, b, 2, "error: code", err)) == IDP_OK)
			rc = wr_str(&w, "error: text", m->u.error.text, m->u.error.text_len, 0,
			            FMT_WIRE_TEXT_MAX, STR_TEXT, err);
		break;
	default:
		return idp_error_set(err, IDP_E_UNSUPPORTED, "frame: type 0x%02x is unknown",
		                     (unsigned)m->type);
	}
	if (rc == IDP_OK)
		*len = w.n;
	return rc;
}

enum idp_err fmt_wire_payload_parse(uint8_t type, const uint8_t *buf, size_t len,
                                    struct fmt_wire_msg *m, struct idp_error *err)
{
	struct rd r = {buf, len};
	enum idp_err rc = IDP_OK;
	const uint8_t *p = NULL;
	const char *what = "frame";
	m->type = (enum fmt_wire_type)type;
	switch (type) {
	case FMT_WIRE_HELLO:
	case FMT_WIRE_HELLO_ACK:
		what = "hello";
		if ((rc = rd_u8(&r, &m->u.hello.role, "hello: role", err)) != IDP_OK ||
		    (rc = rd_bytes(&r, 4, &p, "hello: versions", err)) != IDP_OK)
			return rc;
		m->u.hello.versions = get_u32(p);
		rc = check_hello(type, &m->u.hello, err);
		break;
	case FMT_WIRE_INFO_REQ:
		what = "info request";
		break;
	case FMT_WIRE_INFO:
		what = "info";
		rc = dec_info(&r, &m->u.info, err);
		break;
	case FMT_WIRE_CHALLENGE:
		what = "challenge";
		if ((rc = rd_bytes(&r, FMT_WIRE_NONCE_LEN, &p, "challenge: nonce", err)) != IDP_OK)
			return rc;
		memcpy(m->u.challenge.nonce, p, FMT_WIRE_NONCE_LEN);
		rc = rd_str(&r, "challenge: station_id", m->u.challenge.station_id,
		            &m->u.challenge.station_id_len, 1, FMT_WIRE_ID_MAX, STR_ID, err);
		break;
	case FMT_WIRE_PROOF:
		what = "proof";
		if ((rc = rd_bytes(&r, FMT_WIRE_SIG_LEN, &p, "proof: signature", err)) == IDP_OK)
			memcpy(m->u.proof.sig, p, FMT_WIRE_SIG_LEN);
		break;
	case FMT_WIRE_ERROR:
		what = "error";
		if ((rc = rd_bytes(&r, 2, &p, "error: code", err)) != IDP_OK)
			return rc;
		m->u.error.code = get_u16(p);
		if (m->u.error.code == 0)
			return idp_error_set(err, IDP_E_FORMAT, "error: code 0 is reserved");
		rc = rd_str(&r, "error: text", m->u.error.text, &m->u.error.text_len, 0,
		            FMT_WIRE_TEXT_MAX, STR_TEXT, err);
		break;
	default:
		return idp_error_set(err, IDP_E_UNSUPPORTED, "frame: type 0x%02x is unknown", type);
	}
	if (rc == IDP_OK && r.left != 0)
		rc = idp_error_set(err, IDP_E_FORMAT, "%s: %zu unexpected trailing bytes", what,
		                   r.left);
	return rc;
}

enum idp_err fmt_wire_msg_encode(const struct fmt_wire_msg *m, uint8_t *out, size_t out_max,
                                 size_t *out_len, struct idp_error *err)
{
	uint8_t payload[FMT_WIRE_PAYLOAD_MAX];
	size_t len = 0;
	*out_len = 0;
	enum idp_err rc = fmt_wire_payload_encode(m, payload, &len, err);
	if (rc == IDP_OK)
		rc = fmt_wire_encode((uint8_t)m->type, m->seq, payload, len, out, out_max, out_len,
		                     err);
	return rc;
}

enum idp_err fmt_wire_msg_parse(const struct fmt_wire_frame *f, struct fmt_wire_msg *m,
                                struct idp_error *err)
{
	if (f->version != FMT_WIRE_VERSION)
		return idp_error_set(err, IDP_E_UNSUPPORTED, "frame: version %u is not supported",
		                     f->version);
	if (f->flags != 0)
		return idp_error_set(err, IDP_E_FORMAT, "frame: flags 0x%02x are not defined",
		                     f->flags);
	if (f->len > FMT_WIRE_PAYLOAD_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "frame: payload is %zu bytes, max %u", f->len,
		                     FMT_WIRE_PAYLOAD_MAX);
	m->seq = f->seq;
	return fmt_wire_payload_parse(f->type, f->payload, f->len, m, err);
}

unsigned fmt_wire_version_pick(uint32_t a, uint32_t b)
{
	uint32_t both = a & b & ~1u;
	unsigned v = 0;
	for (unsigned i = 1; i < 32; i++)
		if ((both >> i & 1u) != 0)
			v = i;
	return v;
}

/* ------------------------------------------------------------ proof */

enum idp_err fmt_wire_proof_message(const struct fmt_wire_challenge *ch,
                                    const struct fmt_wire_info *info,
                                    uint8_t out[static FMT_WIRE_PROOF_MSG_MAX], size_t *len,
                                    struct idp_error *err)
{
	struct wr w = {out, 0, FMT_WIRE_PROOF_MSG_MAX};
	enum idp_err rc;
	*len = 0;
	if (info->spki_len == 0 || info->spki_len > FMT_KEY_SPKI_MAX)
		return idp_error_set(err, info->spki_len == 0 ? IDP_E_FORMAT : IDP_E_LIMIT,
		                     "proof: public key is %zu bytes, must be 1..%u", info->spki_len,
		                     FMT_KEY_SPKI_MAX);
	if ((rc = wr_bytes(&w, FMT_WIRE_PROOF_DOMAIN, sizeof(FMT_WIRE_PROOF_DOMAIN),
	                   "proof: domain", err)) != IDP_OK ||
	    (rc = wr_bytes(&w, ch->nonce, FMT_WIRE_NONCE_LEN, "proof: nonce", err)) != IDP_OK ||
	    (rc = wr_str(&w, "proof: station_id", ch->station_id, ch->station_id_len, 1,
	                 FMT_WIRE_ID_MAX, STR_ID, err)) != IDP_OK ||
	    (rc = wr_str(&w, "proof: device_id", info->device_id, info->device_id_len, 1,
	                 FMT_WIRE_ID_MAX, STR_ID, err)) != IDP_OK ||
	    (rc = wr_bytes(&w, info->mac, FMT_WIRE_MAC_LEN, "proof: mac", err)) != IDP_OK ||
	    (rc = wr_str(&w, "proof: serial", info->serial, info->serial_len, 0,
	                 FMT_WIRE_SERIAL_MAX, STR_ID, err)) != IDP_OK ||
	    (rc = wr_u8(&w, (uint8_t)info->spki_len, "proof: public key", err)) != IDP_OK ||
	    (rc = wr_bytes(&w, info->spki, info->spki_len, "proof: public key", err)) != IDP_OK)
		return rc;
	*len = w.n;
	return IDP_OK;
}

enum idp_err fmt_wire_proof_sign(const struct fmt_key *key, const struct fmt_wire_challenge *ch,
                                 const struct fmt_wire_info *info, struct fmt_wire_proof *out,
                                 struct idp_error *err)
{
	uint8_t spki[FMT_KEY_SPKI_MAX], msg[FMT_WIRE_PROOF_MSG_MAX], sig[FMT_KEY_SIG_MAX];
	size_t spki_len = 0, msg_len = 0, sig_len = 0;
	enum idp_err rc = fmt_key_spki_der(key, spki, &spki_len, err);
	if (rc != IDP_OK)
		return rc;
	if (spki_len != info->spki_len || memcmp(spki, info->spki, spki_len) != 0 ||
	    fmt_key_type(key) != info->key_type)
		return idp_error_set(err, IDP_E_ARG, "proof: signing key is not the key in info");
	if ((rc = fmt_wire_proof_message(ch, info, msg, &msg_len, err)) != IDP_OK ||
	    (rc = fmt_key_sign(key, FMT_SIG_RAW, msg, msg_len, sig, &sig_len, err)) != IDP_OK)
		return rc;
	if (sig_len != FMT_WIRE_SIG_LEN)
		return idp_error_set(err, IDP_E_CRYPTO, "proof: signature is %zu bytes, expected %u",
		                     sig_len, FMT_WIRE_SIG_LEN);
	memcpy(out->sig, sig, FMT_WIRE_SIG_LEN);
	return IDP_OK;
}

enum idp_err fmt_wire_proof_verify(const struct fmt_wire_challenge *ch,
                                   const struct fmt_wire_info *info,
                                   const struct fmt_wire_proof *proof, struct idp_error *err)
{
	uint8_t msg[FMT_WIRE_PROOF_MSG_MAX];
	size_t msg_len = 0;
	struct fmt_key *key = NULL;
	enum idp_err rc = fmt_wire_proof_message(ch, info, msg, &msg_len, err);
	if (rc == IDP_OK)
		rc = check_spki(info->key_type, info->spki, info->spki_len, &key, err);
	/* One signature, one spelling: the twin (r, n - s) of a proof is refused. */
	if (rc == IDP_OK && fmt_key_sig_high_s(key, proof->sig, FMT_WIRE_SIG_LEN))
		rc = idp_error_set(err, IDP_E_VERIFY, "proof: ecdsa signature is not low-s");
	if (rc == IDP_OK) {
		rc = fmt_key_verify(key, FMT_SIG_RAW, msg, msg_len, proof->sig, FMT_WIRE_SIG_LEN,
		                    err);
		if (rc == IDP_E_VERIFY)
			idp_error_set(err, rc, "proof: signature does not match the challenge, "
			                       "identity and key");
	}
	fmt_key_free(key);
	return rc;
}

/* ------------------------------------------------------------ answer cache */

enum fmt_wire_cache_hit fmt_wire_cache_lookup(const struct fmt_wire_cache *c,
                                              const struct fmt_wire_frame *f)
{
	if (!c->valid)
		return FMT_WIRE_CACHE_MISS;
	if (f->type == c->type && f->seq == c->seq) {
		if (f->len == c->req_len && CRYPTO_memcmp(f->payload, c->req, f->len) == 0)
			return FMT_WIRE_CACHE_REPLAY;
		return FMT_WIRE_CACHE_CONFLICT;
	}
	if (f->type == FMT_WIRE_HELLO)
		return FMT_WIRE_CACHE_MISS;
	uint16_t ahead = (uint16_t)(f->seq - c->seq);
	if (ahead == 0 || ahead >= 0x8000u)
		return FMT_WIRE_CACHE_CONFLICT;
	return FMT_WIRE_CACHE_MISS;
}

void fmt_wire_cache_store(struct fmt_wire_cache *c, const struct fmt_wire_frame *f,
                          const uint8_t *line, size_t line_len)
{
	if (f->len > FMT_WIRE_CACHE_REQ_MAX || line_len > FMT_WIRE_LINE_MAX) {
		c->valid = false;
		return;
	}
	c->valid = true;
	c->type = f->type;
	c->seq = f->seq;
	c->req_len = f->len;
	if (f->len > 0)
		memcpy(c->req, f->payload, f->len);
	c->line_len = line_len;
	if (line_len > 0)
		memcpy(c->line, line, line_len);
}
