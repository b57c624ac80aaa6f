/*
 * wire.h - the station<->device protocol: frames, messages and the proof of
 * possession. Spec: formats/wire.md (normative; section numbers below).
 *
 * A frame is one text line "~IDP1:" base64url(binary frame) "\n", so that it
 * survives a serial console that carries boot-log text, and travels unchanged
 * over a USB vendor interface. The decoder is incremental (any chunking) and
 * skips and counts everything that is not a whole, checked frame.
 *
 * Pure: no I/O, logging or globals. A decoder belongs to one stream and one
 * thread at a time; everything else is thread-safe.
 */
#ifndef IDP_FORMATS_WIRE_H
#define IDP_FORMATS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/id.h"
#include "formats/keys.h"

/* Framing (wire.md section 3). */
#define FMT_WIRE_VERSION      1u     /* the protocol version this code speaks */
#define FMT_WIRE_PAYLOAD_MAX  4096u  /* bytes of payload; longer frames are refused */
#define FMT_WIRE_HEADER_LEN   7u     /* version, type, flags, seq (2), len (2) */
#define FMT_WIRE_CRC_LEN      4u     /* CRC-32C, big-endian, over header + payload */
#define FMT_WIRE_BIN_MAX      (FMT_WIRE_HEADER_LEN + FMT_WIRE_PAYLOAD_MAX + FMT_WIRE_CRC_LEN)
#define FMT_WIRE_MARKER       "~IDP1:"
#define FMT_WIRE_MARKER_LEN   6u
#define FMT_WIRE_B64_MAX      5476u  /* base64url characters of a FMT_WIRE_BIN_MAX frame */
#define FMT_WIRE_LINE_MAX     (FMT_WIRE_MARKER_LEN + FMT_WIRE_B64_MAX + 1u) /* with "\n" */

/* Message fields (wire.md section 5). Strings are printable ASCII. */
#define FMT_WIRE_ID_MAX       FMT_ID_MAX /* device ID, station ID: formats/id.h */
#define FMT_WIRE_SERIAL_MAX   FMT_ID_MAX /* 0..64, formats/id.h when not empty */
#define FMT_WIRE_VERSTR_MAX   32u  /* firmware/agent version: 0..32 of 0x20..0x7e */
#define FMT_WIRE_TEXT_MAX     200u /* ERROR text: 0..200 of 0x20..0x7e */
#define FMT_WIRE_MAC_LEN      6u
#define FMT_WIRE_NONCE_LEN    32u
#define FMT_WIRE_SIG_LEN      FMT_KEY_RAW_SIG_LEN /* raw signature: R||S or Ed25519 */
#define FMT_WIRE_PROOF_DOMAIN "idprov-wire-proof-v1" /* signed first, with its NUL */
#define FMT_WIRE_PROOF_MSG_MAX /* 383: domain, nonce, station ID, device ID, MAC, serial, key */ \
	(sizeof(FMT_WIRE_PROOF_DOMAIN) + FMT_WIRE_NONCE_LEN + (1u + FMT_WIRE_ID_MAX) +            \
	 (1u + FMT_WIRE_ID_MAX) + FMT_WIRE_MAC_LEN + (1u + FMT_WIRE_SERIAL_MAX) + 1u +             \
	 FMT_KEY_SPKI_MAX)

/* Station-side deadlines and retries per request (wire.md section 6). */
#define FMT_WIRE_HELLO_TIMEOUT_MS     500u   /* per attempt */
#define FMT_WIRE_HELLO_WINDOW_MS      30000u /* keep sending HELLO while the device boots */
#define FMT_WIRE_INFO_TIMEOUT_MS      1000u
#define FMT_WIRE_CHALLENGE_TIMEOUT_MS 5000u  /* signing may run on a slow secure element */
#define FMT_WIRE_RETRIES              3u     /* more attempts after the first (not HELLO) */

/* Frame types: requests (station -> device) have the top bit clear, responses
 * (device -> station) set, so a console that echoes input never makes the
 * station read its own request as an answer. */
enum fmt_wire_type {
	FMT_WIRE_HELLO = 0x01,     /* versions + role */
	FMT_WIRE_INFO_REQ = 0x02,  /* empty */
	FMT_WIRE_CHALLENGE = 0x03, /* nonce + station ID */
	FMT_WIRE_HELLO_ACK = 0x81, /* versions + role */
	FMT_WIRE_INFO = 0x82,      /* device identity */
	FMT_WIRE_PROOF = 0x83,     /* signature */
	FMT_WIRE_ERROR = 0xff,     /* code + text, the answer to any failed request */
};

enum fmt_wire_role {
	FMT_WIRE_ROLE_STATION = 1,
	FMT_WIRE_ROLE_DEVICE = 2,
};

/* ERROR codes (wire.md section 5.7). */
enum fmt_wire_error_code {
	FMT_WIRE_ERR_VERSION = 1,    /* no common protocol version, or frame of another version */
	FMT_WIRE_ERR_TYPE = 2,       /* unknown or unexpected frame type */
	FMT_WIRE_ERR_PAYLOAD = 3,    /* payload does not parse */
	FMT_WIRE_ERR_SEQ_REUSED = 4, /* same seq as the cached request, different content */
	FMT_WIRE_ERR_NO_KEY = 5,     /* the device has no key yet */
	FMT_WIRE_ERR_BUSY = 6,       /* try again after the timeout, under a new seq */
	FMT_WIRE_ERR_INTERNAL = 7,   /* anything else; the text says what */
};

/* One checked frame as the decoder returns it. version and flags are passed
 * up unchecked (fmt_wire_msg_parse checks them) so that a device can answer a
 * frame of an unknown version with an ERROR instead of silence. */
struct fmt_wire_frame {
	uint8_t version;
	uint8_t type;
	uint8_t flags;
	uint16_t seq;
	size_t len;
	uint8_t payload[FMT_WIRE_PAYLOAD_MAX];
};

struct fmt_wire_hello {
	uint8_t role;      /* enum fmt_wire_role */
	uint32_t versions; /* bit v set: version v spoken (bit 0 must be clear) */
};

struct fmt_wire_info {
	char device_id[FMT_WIRE_ID_MAX + 1]; /* NUL-terminated copies; the _len is authoritative */
	size_t device_id_len;
	uint8_t mac[FMT_WIRE_MAC_LEN];
	char serial[FMT_WIRE_SERIAL_MAX + 1];
	size_t serial_len;
	enum fmt_key_type key_type;
	uint8_t spki[FMT_KEY_SPKI_MAX]; /* SubjectPublicKeyInfo DER of the device key */
	size_t spki_len;
	char fw_version[FMT_WIRE_VERSTR_MAX + 1];
	size_t fw_version_len;
	char agent_version[FMT_WIRE_VERSTR_MAX + 1];
	size_t agent_version_len;
};

struct fmt_wire_challenge {
	uint8_t nonce[FMT_WIRE_NONCE_LEN];
	char station_id[FMT_WIRE_ID_MAX + 1];
	size_t station_id_len;
};

struct fmt_wire_proof {
	uint8_t sig[FMT_WIRE_SIG_LEN];
};

struct fmt_wire_error {
	uint16_t code; /* enum fmt_wire_error_code, or a later one */
	char text[FMT_WIRE_TEXT_MAX + 1];
	size_t text_len;
};

/* A parsed message: type selects the member of u. */
struct fmt_wire_msg {
	enum fmt_wire_type type;
	uint16_t seq;
	union {
		struct fmt_wire_hello hello; /* HELLO and HELLO_ACK */
		struct fmt_wire_info info;
		struct fmt_wire_challenge challenge;
		struct fmt_wire_proof proof;
		struct fmt_wire_error error;
	} u;
};

/* What a decoder skipped, by reason (wire.md section 4). */
struct fmt_wire_stats {
	uint64_t frames;         /* good frames returned */
	uint64_t noise_bytes;    /* bytes outside any marker line (boot log, echo, garbage) */
	uint64_t bad_overlong;   /* marker lines longer than a largest frame */
	uint64_t bad_cut;        /* marker lines cut by a foreign byte or a new marker */
	uint64_t bad_base64;     /* marker lines that are not canonical base64url */
	uint64_t bad_length;     /* too short, length field over the maximum or not matching */
	uint64_t bad_crc;        /* CRC-32C mismatch */
};

struct fmt_wire_decoder; /* opaque */

/* ---- frames (wire.md sections 3, 4) ---- */

/* Characters of the line that carries a payload of payload_len bytes, "\n"
 * included. 0 when payload_len exceeds FMT_WIRE_PAYLOAD_MAX. */
size_t fmt_wire_line_len(size_t payload_len);

/* Encode one frame of version FMT_WIRE_VERSION, flags 0 as a line into
 * out[0..out_max); *out_len gets its length (no NUL is written). IDP_E_LIMIT
 * when len exceeds FMT_WIRE_PAYLOAD_MAX or the line does not fit in out_max. */
IDP_MUST_CHECK enum idp_err fmt_wire_encode(uint8_t type, uint16_t seq, const uint8_t *payload,
                                            size_t len, uint8_t *out, size_t out_max,
                                            size_t *out_len, struct idp_error *err);

/* New decoder; NULL when out of memory. Free with fmt_wire_decoder_free(). */
struct fmt_wire_decoder *fmt_wire_decoder_new(void);

/* Feed buf[0..len) (any chunking). *used gets the bytes consumed; when a whole,
 * checked frame ends inside them, *got = true, *out holds it and *used stops
 * right after its line, so call again with the rest. Otherwise *got = false
 * and all of buf was used. Noise and bad frames are skipped and counted, never
 * returned. Fails only on invalid arguments (IDP_E_ARG). */
IDP_MUST_CHECK enum idp_err fmt_wire_feed(struct fmt_wire_decoder *d, const uint8_t *buf,
                                          size_t len, size_t *used, struct fmt_wire_frame *out,
                                          bool *got, struct idp_error *err);

/* Drop any partial line (e.g. after reopening the port); counters are kept. */
void fmt_wire_decoder_reset(struct fmt_wire_decoder *d);

/* Copy the counters of d into *out. */
void fmt_wire_decoder_stats(const struct fmt_wire_decoder *d, struct fmt_wire_stats *out);

/* Release d. NULL is a no-op. */
void fmt_wire_decoder_free(struct fmt_wire_decoder *d);

/* ---- messages (wire.md section 5) ---- */

/* Encode the payload of m (by m->type) into out; *len gets its length.
 * IDP_E_FORMAT / IDP_E_LIMIT name the field that is out of range, so nothing
 * that the parser would refuse is ever sent. */
IDP_MUST_CHECK enum idp_err fmt_wire_payload_encode(const struct fmt_wire_msg *m,
                                                    uint8_t out[static FMT_WIRE_PAYLOAD_MAX],
                                                    size_t *len, struct idp_error *err);

/* Parse a payload of the given type into *m (m->type = type; m->seq is left
 * alone). Every length is checked against what is left and its maximum,
 * strings against their alphabet, the INFO key against its key type, and the
 * payload must be used exactly. IDP_E_FORMAT / IDP_E_LIMIT name the field;
 * IDP_E_UNSUPPORTED for an unknown type or key type. */
IDP_MUST_CHECK enum idp_err fmt_wire_payload_parse(uint8_t type, const uint8_t *buf, size_t len,
                                                   struct fmt_wire_msg *m, struct idp_error *err);

/* Encode m as a whole line (payload + frame) into out[0..out_max). */
IDP_MUST_CHECK enum idp_err fmt_wire_msg_encode(const struct fmt_wire_msg *m, uint8_t *out,
                                                size_t out_max, size_t *out_len,
                                                struct idp_error *err);

/* Parse a decoded frame into *m: IDP_E_UNSUPPORTED for another version
 * (answer FMT_WIRE_ERR_VERSION), IDP_E_FORMAT for flags set, else as
 * fmt_wire_payload_parse. */
IDP_MUST_CHECK enum idp_err fmt_wire_msg_parse(const struct fmt_wire_frame *f,
                                               struct fmt_wire_msg *m, struct idp_error *err);

/* Highest version in both a and b (bitmaps as in struct fmt_wire_hello), or 0
 * when they share none. */
unsigned fmt_wire_version_pick(uint32_t a, uint32_t b);

/* ---- proof of possession (wire.md section 5.5) ---- */

/* The exact bytes a PROOF signs, for challenge ch and the device's INFO:
 * domain || nonce || station ID || device ID || MAC || serial || SPKI, each
 * variable field preceded by its length as one byte. IDP_E_LIMIT / IDP_E_FORMAT
 * when a field is out of range. */
IDP_MUST_CHECK enum idp_err fmt_wire_proof_message(const struct fmt_wire_challenge *ch,
                                                   const struct fmt_wire_info *info,
                                                   uint8_t out[static FMT_WIRE_PROOF_MSG_MAX],
                                                   size_t *len, struct idp_error *err);

/* Device side: sign the proof message with key (private), which must be the
 * key info->spki describes (IDP_E_ARG otherwise). */
IDP_MUST_CHECK enum idp_err fmt_wire_proof_sign(const struct fmt_key *key,
                                                const struct fmt_wire_challenge *ch,
                                                const struct fmt_wire_info *info,
                                                struct fmt_wire_proof *out,
                                                struct idp_error *err);

/* Station side: verify proof against the challenge the station itself sent
 * and the INFO the device gave. IDP_OK when it holds; IDP_E_VERIFY when the
 * signature does not match; IDP_E_FORMAT / IDP_E_UNSUPPORTED when info's key
 * does not parse or is not of info->key_type. */
IDP_MUST_CHECK enum idp_err fmt_wire_proof_verify(const struct fmt_wire_challenge *ch,
                                                  const struct fmt_wire_info *info,
                                                  const struct fmt_wire_proof *proof,
                                                  struct idp_error *err);

/* ---- device-side answer cache (wire.md section 6.2) ---- */

#define FMT_WIRE_CACHE_REQ_MAX 128u /* requests longer than this are never cached */

/* The last request a device answered and the line it answered with. Zero it
 * (or memset 0) before first use. */
struct fmt_wire_cache {
	bool valid;
	uint8_t type;
	uint16_t seq;
	size_t req_len;
	uint8_t req[FMT_WIRE_CACHE_REQ_MAX];
	size_t line_len;
	uint8_t line[FMT_WIRE_LINE_MAX];
};

enum fmt_wire_cache_hit {
	FMT_WIRE_CACHE_MISS = 0, /* a new request: process it, then _store the answer */
	FMT_WIRE_CACHE_REPLAY,   /* a repeat: send the cached line again, do nothing else */
	FMT_WIRE_CACHE_CONFLICT, /* seq reused or older: answer ERR_SEQ_REUSED, sign nothing */
};

/* Classify request f against the cache: the cached type and seq with the same
 * payload (constant-time compare) is a REPLAY, with another payload a
 * CONFLICT; any other seq that is not newer (RFC 1982 serial arithmetic) than
 * the cached one is a CONFLICT too, except HELLO, which opens a new session. */
enum fmt_wire_cache_hit fmt_wire_cache_lookup(const struct fmt_wire_cache *c,
                                              const struct fmt_wire_frame *f);

/* Remember that f was answered with line[0..line_len). Requests whose payload
 * exceeds FMT_WIRE_CACHE_REQ_MAX, or lines over FMT_WIRE_LINE_MAX, clear the
 * cache instead (they are then answered afresh). */
void fmt_wire_cache_store(struct fmt_wire_cache *c, const struct fmt_wire_frame *f,
                          const uint8_t *line, size_t line_len);

#endif /* IDP_FORMATS_WIRE_H */
