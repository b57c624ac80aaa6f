/*
 * test_wire.c - the station<->device protocol (formats/wire.md): CRC-32C
 * check value, every message round-trips, frames survive any chunking and
 * boot-log noise, every single-byte corruption is refused with recovery on the
 * next frame, oversized lengths are refused, payload parsers refuse malformed
 * fields, the proof binds nonce, station, device, MAC, serial and key (P-256
 * and Ed25519), the device's answer cache is idempotent, and a whole session
 * over an echoing console works with retries. The spec's example lines are
 * known answers.
 */
#include <stdlib.h>
#include <string.h>

#include "formats/b64.h"
#include "formats/crc32c.h"
#include "formats/wire.h"
#include "tests/unit/check_main.h"
#include "tests/unit/helpers.h"

static const enum fmt_key_type types[] = {FMT_KEY_P256, FMT_KEY_ED25519};

#define STREAM_MAX 65536u
#define FRAMES_MAX 32u

/* Check reports every passing ck_assert to its parent process, which makes
 * assertions in loops of millions slow; REQUIRE costs nothing until it fails. */
#define REQUIRE(c)                                                                                \
	do {                                                                                      \
		if (!(c))                                                                         \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c);                        \
	} while (0)

static void set_str(char *dst, size_t *len, const char *s)
{
	*len = strlen(s);
	memcpy(dst, s, *len + 1);
}

static struct fmt_key *new_key(enum fmt_key_type t)
{
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_generate(t, &k, NULL), IDP_OK);
	return k;
}

static void make_info(const struct fmt_key *k, struct fmt_wire_info *info)
{
	memset(info, 0, sizeof(*info));
	set_str(info->device_id, &info->device_id_len, "dev-0001:ACME");
	static const uint8_t mac[6] = {0x02, 0x00, 0x5e, 0x10, 0x20, 0x30};
	memcpy(info->mac, mac, 6);
	set_str(info->serial, &info->serial_len, "SN-2026-000042");
	info->key_type = fmt_key_type(k);
	ck_assert_int_eq(fmt_key_spki_der(k, info->spki, &info->spki_len, NULL), IDP_OK);
	set_str(info->fw_version, &info->fw_version_len, "fw 1.4.2 (build 77)");
	set_str(info->agent_version, &info->agent_version_len, "idprov-agent 0.1");
}

static void make_challenge(struct fmt_wire_challenge *ch)
{
	memset(ch, 0, sizeof(*ch));
	for (size_t i = 0; i < FMT_WIRE_NONCE_LEN; i++)
		ch->nonce[i] = (uint8_t)(i * 7 + 1);
	set_str(ch->station_id, &ch->station_id_len, "station-line3-A");
}

/* Encode m as a line into out; returns its length. */
static size_t encode(const struct fmt_wire_msg *m, uint8_t *out, size_t max)
{
	size_t n = 0;
	struct idp_error err;
	enum idp_err rc = fmt_wire_msg_encode(m, out, max, &n, &err);
	ck_assert_msg(rc == IDP_OK, "encode type 0x%02x: %s", (unsigned)m->type, err.msg);
	return n;
}

/* Append s[0..n) to the stream. */
static void put(uint8_t *stream, size_t *len, const void *s, size_t n)
{
	REQUIRE(n <= STREAM_MAX - *len);
	memcpy(stream + *len, s, n);
	*len += n;
}

static void puts_(uint8_t *stream, size_t *len, const char *s)
{
	put(stream, len, s, strlen(s));
}

/* Decode buf in chunks of `chunk` bytes (0: all at once; SIZE_MAX-1: split
 * once at `split`) into frames[]; returns the number of frames. */
static size_t decode_chunked(struct fmt_wire_decoder *d, const uint8_t *buf, size_t len,
                             size_t chunk, size_t split, struct fmt_wire_frame *frames)
{
	size_t nf = 0, off = 0;
	while (off < len) {
		size_t n = len - off;
		if (chunk > 0 && chunk < n)
			n = chunk;
		if (split > 0 && off < split && split - off < n)
			n = split - off;
		size_t pos = 0;
		while (pos < n) {
			size_t used = 0;
			bool got = false;
			REQUIRE(nf < FRAMES_MAX);
			REQUIRE(fmt_wire_feed(d, buf + off + pos, n - pos, &used, &frames[nf],
			                      &got, NULL) == IDP_OK);
			REQUIRE(used >= 1 && used <= n - pos);
			if (got)
				nf++;
			else
				REQUIRE(used == n - pos);
			pos += used;
		}
		off += n;
	}
	return nf;
}

static void assert_frame_eq(const struct fmt_wire_frame *a, const struct fmt_wire_frame *b)
{
	REQUIRE(a->version == b->version && a->type == b->type && a->flags == b->flags);
	REQUIRE(a->seq == b->seq && a->len == b->len);
	REQUIRE(memcmp(a->payload, b->payload, a->len) == 0);
}

/* Decode one whole line, which must hold exactly one frame. */
static void decode_one(const uint8_t *line, size_t n, struct fmt_wire_frame *f)
{
	struct fmt_wire_decoder *d = fmt_wire_decoder_new();
	ck_assert_ptr_nonnull(d);
	size_t used = 0;
	bool got = false;
	ck_assert_int_eq(fmt_wire_feed(d, line, n, &used, f, &got, NULL), IDP_OK);
	ck_assert(got);
	ck_assert_uint_eq(used, n);
	fmt_wire_decoder_free(d);
}

/* Every message type: encode, decode the line, parse, compare. */
START_TEST(test_wire_round_trip_every_message)
{
	struct fmt_key *k = new_key(types[_i]);
	struct fmt_wire_msg in[7], out;
	memset(in, 0, sizeof(in));
	in[0].type = FMT_WIRE_HELLO;
	in[0].u.hello.role = FMT_WIRE_ROLE_STATION;
	in[0].u.hello.versions = 1u << 1;
	in[1].type = FMT_WIRE_HELLO_ACK;
	in[1].u.hello.role = FMT_WIRE_ROLE_DEVICE;
	in[1].u.hello.versions = 1u << 1 | 1u << 31;
	in[2].type = FMT_WIRE_INFO_REQ;
	in[3].type = FMT_WIRE_INFO;
	make_info(k, &in[3].u.info);
	in[4].type = FMT_WIRE_CHALLENGE;
	make_challenge(&in[4].u.challenge);
	in[5].type = FMT_WIRE_PROOF;
	ck_assert_int_eq(fmt_wire_proof_sign(k, &in[4].u.challenge, &in[3].u.info, &in[5].u.proof,
	                                     NULL),
	                 IDP_OK);
	in[6].type = FMT_WIRE_ERROR;
	in[6].u.error.code = FMT_WIRE_ERR_SEQ_REUSED;
	set_str(in[6].u.error.text, &in[6].u.error.text_len, "seq 7: reused with another nonce");

	for (size_t i = 0; i < 7; i++) {
		uint8_t line[FMT_WIRE_LINE_MAX];
		in[i].seq = (uint16_t)(0xfff0u + i * 3); /* crosses the wrap */
		size_t n = encode(&in[i], line, sizeof(line));
		ck_assert_mem_eq(line, FMT_WIRE_MARKER, FMT_WIRE_MARKER_LEN);
		ck_assert_uint_eq(line[n - 1], '\n');
		struct fmt_wire_frame f;
		decode_one(line, n, &f);
		ck_assert_uint_eq(f.version, FMT_WIRE_VERSION);
		ck_assert_uint_eq(f.type, (unsigned)in[i].type);
		ck_assert_uint_eq(f.flags, 0);
		ck_assert_uint_eq(fmt_wire_line_len(f.len), n);
		memset(&out, 0xa5, sizeof(out));
		struct idp_error err;
		ck_assert_msg(fmt_wire_msg_parse(&f, &out, &err) == IDP_OK, "%s", err.msg);
		ck_assert_int_eq(out.type, in[i].type);
		ck_assert_uint_eq(out.seq, in[i].seq);
		/* Re-encoding gives the same bytes: one encoding per message. */
		uint8_t again[FMT_WIRE_LINE_MAX];
		ck_assert_uint_eq(encode(&out, again, sizeof(again)), n);
		ck_assert_mem_eq(again, line, n);
	}
	/* Field by field for the two rich messages. */
	uint8_t line[FMT_WIRE_LINE_MAX];
	struct fmt_wire_frame f;
	decode_one(line, encode(&in[3], line, sizeof(line)), &f);
	ck_assert_int_eq(fmt_wire_msg_parse(&f, &out, NULL), IDP_OK);
	const struct fmt_wire_info *a = &in[3].u.info, *b = &out.u.info;
	ck_assert_str_eq(b->device_id, a->device_id);
	ck_assert_uint_eq(b->device_id_len, a->device_id_len);
	ck_assert_mem_eq(b->mac, a->mac, 6);
	ck_assert_str_eq(b->serial, a->serial);
	ck_assert_int_eq(b->key_type, a->key_type);
	ck_assert_uint_eq(b->spki_len, a->spki_len);
	ck_assert_mem_eq(b->spki, a->spki, a->spki_len);
	ck_assert_str_eq(b->fw_version, a->fw_version);
	ck_assert_str_eq(b->agent_version, a->agent_version);
	decode_one(line, encode(&in[4], line, sizeof(line)), &f);
	ck_assert_int_eq(fmt_wire_msg_parse(&f, &out, NULL), IDP_OK);
	ck_assert_mem_eq(out.u.challenge.nonce, in[4].u.challenge.nonce, FMT_WIRE_NONCE_LEN);
	ck_assert_str_eq(out.u.challenge.station_id, in[4].u.challenge.station_id);
	fmt_key_free(k);
}
END_TEST

/* A stream of HELLO_ACK, INFO, PROOF and a maximal frame. */
static size_t good_stream(uint8_t *stream, struct fmt_wire_frame *want, size_t *nwant)
{
	struct fmt_key *k = new_key(FMT_KEY_P256);
	struct fmt_wire_msg m;
	uint8_t line[FMT_WIRE_LINE_MAX];
	size_t len = 0;
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_HELLO_ACK;
	m.seq = 1;
	m.u.hello.role = FMT_WIRE_ROLE_DEVICE;
	m.u.hello.versions = 2;
	put(stream, &len, line, encode(&m, line, sizeof(line)));
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_INFO;
	m.seq = 2;
	make_info(k, &m.u.info);
	put(stream, &len, line, encode(&m, line, sizeof(line)));
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_PROOF;
	m.seq = 3;
	memset(m.u.proof.sig, 0x5c, FMT_WIRE_SIG_LEN);
	put(stream, &len, line, encode(&m, line, sizeof(line)));
	static uint8_t big[FMT_WIRE_PAYLOAD_MAX];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 31);
	size_t n = 0;
	ck_assert_int_eq(fmt_wire_encode(0x7e, 4, big, sizeof(big), line, sizeof(line), &n, NULL),
	                 IDP_OK);
	ck_assert_uint_eq(n, FMT_WIRE_LINE_MAX);
	put(stream, &len, line, n);
	fmt_key_free(k);
	struct fmt_wire_decoder *d = fmt_wire_decoder_new();
	*nwant = decode_chunked(d, stream, len, 0, 0, want);
	ck_assert_uint_eq(*nwant, 4);
	fmt_wire_decoder_free(d);
	return len;
}

START_TEST(test_wire_split_at_every_boundary)
{
	static uint8_t stream[STREAM_MAX];
	static struct fmt_wire_frame want[FRAMES_MAX], got[FRAMES_MAX];
	size_t nwant = 0;
	size_t len = good_stream(stream, want, &nwant);
	ck_assert_uint_eq(want[3].len, FMT_WIRE_PAYLOAD_MAX);
	/* Chunks of 1, 2, ... 64 bytes, and some odd larger sizes. */
	static const size_t extra[] = {100, 127, 255, 1000, 4097, 5483};
	for (size_t c = 1; c <= 64 + sizeof(extra) / sizeof(extra[0]); c++) {
		size_t chunk = c <= 64 ? c : extra[c - 65];
		struct fmt_wire_decoder *d = fmt_wire_decoder_new();
		ck_assert_uint_eq(decode_chunked(d, stream, len, chunk, 0, got), nwant);
		for (size_t i = 0; i < nwant; i++)
			assert_frame_eq(&got[i], &want[i]);
		struct fmt_wire_stats st;
		fmt_wire_decoder_stats(d, &st);
		ck_assert_uint_eq(st.frames, nwant);
		ck_assert_uint_eq(st.noise_bytes, 0);
		fmt_wire_decoder_free(d);
	}
	/* Every split point of the stream into two chunks. */
	struct fmt_wire_decoder *d = fmt_wire_decoder_new();
	for (size_t split = 1; split < len; split++) {
		REQUIRE(decode_chunked(d, stream, len, 0, split, got) == nwant);
		for (size_t i = 0; i < nwant; i++)
			assert_frame_eq(&got[i], &want[i]);
	}
	struct fmt_wire_stats st;
	fmt_wire_decoder_stats(d, &st);
	ck_assert_uint_eq(st.frames, nwant * (len - 1));
	ck_assert_uint_eq(st.noise_bytes + st.bad_cut + st.bad_base64 + st.bad_crc +
	                          st.bad_length + st.bad_overlong,
	                  0);
	fmt_wire_decoder_free(d);
}
END_TEST

/* Boot log, partial frames, garbage and bad lines around good frames: exactly
 * the good frames come out, and every skip is counted under its reason. */
START_TEST(test_wire_boot_noise_interleaved)
{
	static uint8_t stream[STREAM_MAX], good[STREAM_MAX];
	static struct fmt_wire_frame want[FRAMES_MAX], got[FRAMES_MAX];
	size_t nwant = 0, glen = good_stream(good, want, &nwant), len = 0;
	/* Line boundaries of the good stream. */
	size_t ends[4], e = 0;
	for (size_t i = 0; i < glen; i++)
		if (good[i] == '\n')
			ends[e++] = i + 1;
	ck_assert_uint_eq(e, 4);
	uint64_t noise = 0;
	static const char *kernel[] = {
		"[    0.000000] Booting Linux on physical CPU 0x0\r\n",
		"[    0.000000] Linux version 6.1.0-rpi7 (gcc 12.2.0) #1 SMP PREEMPT\r\n",
		"U-Boot 2023.01 (Jan 01 2023)\r\n\r\nDRAM:  512 MiB\r\n",
		"[    2.113024] systemd[1]: Started idprov-agent.service - ~IDP agent.\n",
		"login: ",
	};
	puts_(stream, &len, kernel[0]);
	noise += strlen(kernel[0]);
	/* A partial INFO frame cut short by the kernel (bad_cut); the cutting line is noise. */
	put(stream, &len, good + ends[0], 40);
	puts_(stream, &len, kernel[1]);
	noise += strlen(kernel[1]);
	puts_(stream, &len, kernel[2]);
	noise += strlen(kernel[2]);
	put(stream, &len, good, ends[0]); /* frame 1, after garbage-free text */
	/* Binary garbage with no '~'. */
	static const uint8_t garbage[] = {0x00, 0xff, 0x1b, '[', '2', 'J', 0x7f, 0x80, 0xfe, 0x11,
	                                  0x13, 0x0d, 0x0a, 0x0a, 0xc3, 0x28, 'I', 'D', 'P', '1'};
	put(stream, &len, garbage, sizeof(garbage));
	noise += sizeof(garbage);
	/* A marker with text that is not canonical base64url (5 characters). */
	puts_(stream, &len, "~IDP1:AAAAA\n");
	/* A marker near-miss then a good frame: "~ID" is noise. */
	puts_(stream, &len, "~ID");
	noise += 3;
	put(stream, &len, good + ends[0], ends[1] - ends[0]); /* frame 2 (INFO) */
	puts_(stream, &len, kernel[3]);
	noise += strlen(kernel[3]);
	/* The INFO line again with one payload character changed: bad CRC. */
	size_t at = len;
	put(stream, &len, good + ends[0], ends[1] - ends[0]);
	stream[at + 40] = stream[at + 40] == 'A' ? 'B' : 'A';
	/* Frame 3 with CRLF, as a console with ONLCR sends it. */
	put(stream, &len, good + ends[1], ends[2] - ends[1] - 1);
	puts_(stream, &len, "\r\n");
	/* An overlong marker line: one base64url character too many, then "\n". */
	puts_(stream, &len, FMT_WIRE_MARKER);
	for (size_t i = 0; i <= FMT_WIRE_B64_MAX; i++)
		puts_(stream, &len, "Q");
	puts_(stream, &len, "\n");
	noise += 2;
	/* A frame whose length field is too short for its bytes (valid CRC). */
	uint8_t bin[32] = {FMT_WIRE_VERSION, 0x02, 0, 0, 9, 0, 3, 'a', 'b', 'c', 'd'};
	uint32_t crc = fmt_crc32c(0, bin, 11);
	bin[11] = (uint8_t)(crc >> 24);
	bin[12] = (uint8_t)(crc >> 16);
	bin[13] = (uint8_t)(crc >> 8);
	bin[14] = (uint8_t)crc;
	char b64[32];
	puts_(stream, &len, FMT_WIRE_MARKER);
	put(stream, &len, b64, fmt_b64_encode(FMT_B64_URL, bin, 15, b64));
	puts_(stream, &len, "\n");
	puts_(stream, &len, kernel[4]);
	noise += strlen(kernel[4]);
	put(stream, &len, good + ends[2], ends[3] - ends[2]); /* frame 4 (maximal) */
	/* A trailing partial INFO frame: held, neither returned nor counted yet. */
	put(stream, &len, good + ends[0], 30);

	for (size_t chunk = 0; chunk <= 7; chunk++) {
		struct fmt_wire_decoder *d = fmt_wire_decoder_new();
		size_t n = decode_chunked(d, stream, len, chunk, 0, got);
		ck_assert_uint_eq(n, 4);
		for (size_t i = 0; i < n; i++)
			assert_frame_eq(&got[i], &want[i]);
		struct fmt_wire_stats st;
		fmt_wire_decoder_stats(d, &st);
		ck_assert_uint_eq(st.frames, 4);
		ck_assert_uint_eq(st.noise_bytes, noise);
		ck_assert_uint_eq(st.bad_cut, 1);
		ck_assert_uint_eq(st.bad_base64, 1);
		ck_assert_uint_eq(st.bad_crc, 1);
		ck_assert_uint_eq(st.bad_overlong, 1);
		ck_assert_uint_eq(st.bad_length, 1);
		/* After a reset the held partial frame is gone: its rest is noise. */
		fmt_wire_decoder_reset(d);
		size_t used = 0;
		bool g = false;
		size_t rest = ends[1] - ends[0] - 30;
		ck_assert_int_eq(fmt_wire_feed(d, good + ends[0] + 30, rest, &used, &got[0], &g,
		                               NULL),
		                 IDP_OK);
		ck_assert(!g);
		fmt_wire_decoder_stats(d, &st);
		ck_assert_uint_eq(st.noise_bytes, noise + rest);
		fmt_wire_decoder_free(d);
	}
}
END_TEST

/* Each byte of a frame line replaced by other values: the frame is never
 * returned, and the next good frame always is. */
START_TEST(test_wire_every_byte_corruption_rejected)
{
	struct fmt_key *k = new_key(types[_i]);
	struct fmt_wire_msg m;
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_INFO;
	m.seq = 100;
	make_info(k, &m.u.info);
	uint8_t bad[FMT_WIRE_LINE_MAX], next[FMT_WIRE_LINE_MAX];
	size_t n = encode(&m, bad, sizeof(bad));
	m.seq = 101;
	size_t nn = encode(&m, next, sizeof(next));
	struct fmt_wire_frame want;
	decode_one(next, nn, &want);
	static uint8_t stream[2 * FMT_WIRE_LINE_MAX];
	struct fmt_wire_frame got[FRAMES_MAX];
	static const uint8_t flips[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80};
	static const uint8_t sets[] = {'A', '_', '-', '\n', '\r', '~', 0x00, ' '};
	unsigned tried = 0;
	for (size_t pos = 0; pos < n; pos++) {
		for (size_t v = 0; v < 16; v++) {
			uint8_t c = v < 8 ? (uint8_t)(bad[pos] ^ flips[v]) : sets[v - 8];
			if (c == bad[pos])
				continue;
			memcpy(stream, bad, n);
			stream[pos] = c;
			memcpy(stream + n, next, nn);
			struct fmt_wire_decoder *d = fmt_wire_decoder_new();
			size_t nf = decode_chunked(d, stream, n + nn, v % 3 == 0 ? 1 : 0, 0, got);
			if (nf != 1)
				ck_abort_msg("byte %zu = 0x%02x gave %zu frames", pos, c, nf);
			assert_frame_eq(&got[0], &want);
			fmt_wire_decoder_free(d);
			tried++;
		}
	}
	ck_assert_uint_gt(tried, n * 10);
	fmt_key_free(k);
}
END_TEST

static size_t raw_line(const uint8_t *bin, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < FMT_WIRE_MARKER_LEN; i++)
		out[i] = (uint8_t)FMT_WIRE_MARKER[i];
	size_t e = fmt_b64_encode(FMT_B64_URL, bin, n, (char *)out + FMT_WIRE_MARKER_LEN);
	out[FMT_WIRE_MARKER_LEN + e] = '\n';
	return FMT_WIRE_MARKER_LEN + e + 1;
}

/* A binary frame with the given length field and body, CRC correct. */
static size_t crafted(uint16_t len_field, size_t body, uint8_t version, uint8_t flags,
                      uint8_t *out)
{
	static uint8_t bin[FMT_WIRE_BIN_MAX + 16];
	ck_assert_uint_le(FMT_WIRE_HEADER_LEN + body + 4, sizeof(bin));
	memset(bin, 0x41, sizeof(bin));
	bin[0] = version;
	bin[1] = FMT_WIRE_INFO_REQ;
	bin[2] = flags;
	bin[3] = 0;
	bin[4] = 7;
	bin[5] = (uint8_t)(len_field >> 8);
	bin[6] = (uint8_t)len_field;
	size_t b = FMT_WIRE_HEADER_LEN + body;
	uint32_t crc = fmt_crc32c(0, bin, b);
	bin[b] = (uint8_t)(crc >> 24);
	bin[b + 1] = (uint8_t)(crc >> 16);
	bin[b + 2] = (uint8_t)(crc >> 8);
	bin[b + 3] = (uint8_t)crc;
	return raw_line(bin, b + 4, out);
}

START_TEST(test_wire_oversized_length_refused)
{
	static uint8_t line[FMT_WIRE_LINE_MAX + 64];
	struct fmt_wire_frame f;
	struct fmt_wire_stats st;
	struct idp_error err;
	size_t used = 0, n = 0;
	bool got = false;
	static const struct {
		uint16_t field;
		size_t body;
	} cases[] = {{4097, 16}, {0xffff, 0}, {4097, 4097}, {10, 9}, {9, 10}, {0, 1}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fmt_wire_decoder *d = fmt_wire_decoder_new();
		n = crafted(cases[i].field, cases[i].body, FMT_WIRE_VERSION, 0, line);
		ck_assert_int_eq(fmt_wire_feed(d, line, n, &used, &f, &got, NULL), IDP_OK);
		ck_assert_msg(!got, "case %zu accepted", i);
		fmt_wire_decoder_stats(d, &st);
		/* 4097 bytes of body no longer fit in a line: refused before decoding. */
		ck_assert_uint_eq(st.bad_length + st.bad_overlong, 1);
		ck_assert_uint_eq(st.bad_overlong, cases[i].body > FMT_WIRE_PAYLOAD_MAX ? 1 : 0);
		fmt_wire_decoder_free(d);
	}
	/* The encoder refuses too, and the maximum itself is fine. */
	static uint8_t big[FMT_WIRE_PAYLOAD_MAX + 1];
	ck_assert_int_eq(fmt_wire_encode(1, 0, big, sizeof(big), line, sizeof(line), &n, &err),
	                 IDP_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "4097"));
	ck_assert_uint_eq(fmt_wire_line_len(FMT_WIRE_PAYLOAD_MAX + 1), 0);
	ck_assert_int_eq(fmt_wire_encode(1, 0, big, FMT_WIRE_PAYLOAD_MAX, line,
	                                 FMT_WIRE_LINE_MAX - 1, &n, &err),
	                 IDP_E_LIMIT);
	ck_assert_int_eq(fmt_wire_encode(1, 0, big, FMT_WIRE_PAYLOAD_MAX, line, FMT_WIRE_LINE_MAX,
	                                 &n, &err),
	                 IDP_OK);
	decode_one(line, n, &f);
	ck_assert_uint_eq(f.len, FMT_WIRE_PAYLOAD_MAX);
	/* Other versions and flags are returned by the decoder (so the device can
	 * answer), then refused by the message parser. */
	struct fmt_wire_msg m;
	decode_one(line, crafted(0, 0, 2, 0, line), &f);
	ck_assert_int_eq(fmt_wire_msg_parse(&f, &m, &err), IDP_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(err.msg, "version 2"));
	decode_one(line, crafted(0, 0, FMT_WIRE_VERSION, 0x80, line), &f);
	ck_assert_int_eq(fmt_wire_msg_parse(&f, &m, &err), IDP_E_FORMAT);
	decode_one(line, crafted(0, 0, FMT_WIRE_VERSION, 0, line), &f);
	ck_assert_int_eq(fmt_wire_msg_parse(&f, &m, &err), IDP_OK);
	ck_assert_int_eq(m.type, FMT_WIRE_INFO_REQ);
	ck_assert_uint_eq(m.seq, 7);
}
END_TEST

/* Truncations, trailing bytes and out-of-range fields in each payload. */
START_TEST(test_wire_payload_parse_rejects)
{
	struct fmt_key *k = new_key(FMT_KEY_P256), *ed = new_key(FMT_KEY_ED25519);
	struct fmt_wire_msg m, out;
	uint8_t p[FMT_WIRE_PAYLOAD_MAX + 1];
	size_t n = 0;
	struct idp_error err;
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_INFO;
	make_info(k, &m.u.info);
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, NULL), IDP_OK);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(fmt_wire_payload_parse(FMT_WIRE_INFO, p, i, &out, &err) != IDP_OK,
		              "prefix %zu accepted", i);
	p[n] = 0;
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, p, n + 1, &out, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "trailing"));
	/* Layout: id_len, id, mac(6), serial_len, serial, key_type, spki_len, spki... */
	size_t kt = 1 + m.u.info.device_id_len + 6 + 1 + m.u.info.serial_len;
	uint8_t q[FMT_WIRE_PAYLOAD_MAX];
	memcpy(q, p, n);
	q[kt] = FMT_KEY_ED25519; /* P-256 key claimed as Ed25519 */
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, q, n, &out, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "key_type"));
	q[kt] = 3;
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, q, n, &out, &err),
	                 IDP_E_UNSUPPORTED);
	memcpy(q, p, n);
	q[kt + 2] ^= 0xff; /* SPKI DER no longer parses */
	ck_assert_int_ne(fmt_wire_payload_parse(FMT_WIRE_INFO, q, n, &out, &err), IDP_OK);
	ck_assert_ptr_nonnull(strstr(err.msg, "info: public key"));
	memcpy(q, p, n);
	q[kt + 1] = 0xff; /* SPKI length over its maximum */
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, q, n, &out, &err), IDP_E_LIMIT);
	memcpy(q, p, n);
	q[0] = 0; /* empty device ID */
	ck_assert_int_ne(fmt_wire_payload_parse(FMT_WIRE_INFO, q, n, &out, &err), IDP_OK);
	memcpy(q, p, n);
	q[3] = '\n'; /* control character in the device ID */
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, q, n, &out, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "device_id"));
	memcpy(q, p, n);
	q[3] = ' '; /* IDs carry no spaces */
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, q, n, &out, &err), IDP_E_FORMAT);
	/* An unprogrammed (all-zero) or group MAC: the manifest cannot carry it,
	 * so the station must not PASS the device. */
	size_t mac_at = 1 + m.u.info.device_id_len;
	memcpy(q, p, n);
	memset(q + mac_at, 0, 6);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, q, n, &out, &err), IDP_E_FORMAT);
	ck_assert_msg(strstr(err.msg, "info: mac: ") != NULL, "%s", err.msg);
	memcpy(q, p, n);
	q[mac_at] |= 1u;
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, q, n, &out, &err), IDP_E_FORMAT);
	ck_assert_msg(strstr(err.msg, "group") != NULL, "%s", err.msg);
	memcpy(q, p, n);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, q, n, &out, &err), IDP_OK);

	/* The encoder refuses what the parser would. */
	m.u.info.mac[0] = 0x01;
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, &err), IDP_E_FORMAT);
	ck_assert_msg(strstr(err.msg, "info: mac: ") != NULL, "%s", err.msg);
	make_info(k, &m.u.info);
	m.u.info.device_id_len = FMT_WIRE_ID_MAX + 1;
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, &err), IDP_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "device_id"));
	make_info(k, &m.u.info);
	m.u.info.key_type = FMT_KEY_ED25519;
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, &err), IDP_E_FORMAT);
	make_info(ed, &m.u.info);
	m.u.info.fw_version[0] = 0x7f;
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, &err), IDP_E_FORMAT);

	/* HELLO: role must fit the direction, versions must be a set of 1..31. */
	static const uint8_t hello_ok[] = {FMT_WIRE_ROLE_STATION, 0, 0, 0, 2};
	static const uint8_t hello_role[] = {FMT_WIRE_ROLE_DEVICE, 0, 0, 0, 2};
	static const uint8_t hello_v0[] = {FMT_WIRE_ROLE_STATION, 0, 0, 0, 3};
	static const uint8_t hello_none[] = {FMT_WIRE_ROLE_STATION, 0, 0, 0, 0};
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_HELLO, hello_ok, 5, &out, NULL), IDP_OK);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_HELLO_ACK, hello_ok, 5, &out, NULL),
	                 IDP_E_FORMAT);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_HELLO, hello_role, 5, &out, NULL),
	                 IDP_E_FORMAT);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_HELLO, hello_v0, 5, &out, NULL),
	                 IDP_E_FORMAT);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_HELLO, hello_none, 5, &out, NULL),
	                 IDP_E_FORMAT);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_HELLO, hello_ok, 4, &out, NULL),
	                 IDP_E_FORMAT);
	/* INFO request is empty; PROOF is exactly one signature. */
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO_REQ, p, 0, &out, NULL), IDP_OK);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO_REQ, p, 1, &out, NULL), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_PROOF, p, 63, &out, NULL), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_PROOF, p, 65, &out, NULL), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_PROOF, p, 64, &out, NULL), IDP_OK);
	/* CHALLENGE: nonce then a 1..64 station ID. */
	uint8_t c[FMT_WIRE_NONCE_LEN + 1 + 70];
	memset(c, 'x', sizeof(c));
	c[FMT_WIRE_NONCE_LEN] = 65;
	ck_assert_int_eq(
		fmt_wire_payload_parse(FMT_WIRE_CHALLENGE, c, FMT_WIRE_NONCE_LEN + 66, &out, &err),
		IDP_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(err.msg, "station_id"));
	c[FMT_WIRE_NONCE_LEN] = 0;
	ck_assert_int_eq(
		fmt_wire_payload_parse(FMT_WIRE_CHALLENGE, c, FMT_WIRE_NONCE_LEN + 1, &out, NULL),
		IDP_E_FORMAT);
	c[FMT_WIRE_NONCE_LEN] = 64;
	ck_assert_int_eq(
		fmt_wire_payload_parse(FMT_WIRE_CHALLENGE, c, FMT_WIRE_NONCE_LEN + 65, &out, NULL),
		IDP_OK);
	ck_assert_int_eq(
		fmt_wire_payload_parse(FMT_WIRE_CHALLENGE, c, FMT_WIRE_NONCE_LEN + 64, &out, NULL),
		IDP_E_FORMAT);
	/* ERROR: code 0 is reserved; text is printable. */
	static const uint8_t e0[] = {0, 0, 0};
	static const uint8_t ebad[] = {0, 1, 2, 'o', 0x1b};
	static const uint8_t eok[] = {0, 9, 2, 'o', 'k'};
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_ERROR, e0, 3, &out, NULL), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_ERROR, ebad, 5, &out, NULL), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_ERROR, eok, 5, &out, NULL), IDP_OK);
	ck_assert_uint_eq(out.u.error.code, 9);
	ck_assert_str_eq(out.u.error.text, "ok");
	/* Unknown types, both ways. */
	ck_assert_int_eq(fmt_wire_payload_parse(0x04, p, 0, &out, &err), IDP_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(err.msg, "0x04"));
	m.type = (enum fmt_wire_type)0x84;
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, NULL), IDP_E_UNSUPPORTED);
	fmt_key_free(k);
	fmt_key_free(ed);
}
END_TEST

/* The proof verifies for its own challenge and identity only. */
START_TEST(test_wire_proof_binds_challenge_and_identity)
{
	struct fmt_key *k = new_key(types[_i]), *other = new_key(types[_i]);
	struct fmt_key *alien = new_key(types[1 - _i]);
	struct fmt_wire_info info, t;
	struct fmt_wire_challenge ch, tc;
	struct fmt_wire_proof pr, tp;
	struct idp_error err;
	make_info(k, &info);
	make_challenge(&ch);
	ck_assert_int_eq(fmt_wire_proof_sign(k, &ch, &info, &pr, NULL), IDP_OK);
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &info, &pr, &err), IDP_OK);

	tc = ch;
	tc.nonce[31] ^= 1;
	ck_assert_int_eq(fmt_wire_proof_verify(&tc, &info, &pr, &err), IDP_E_VERIFY);
	ck_assert_ptr_nonnull(strstr(err.msg, "proof"));
	tc = ch;
	set_str(tc.station_id, &tc.station_id_len, "station-line3-B");
	ck_assert_int_eq(fmt_wire_proof_verify(&tc, &info, &pr, NULL), IDP_E_VERIFY);
	t = info;
	set_str(t.device_id, &t.device_id_len, "dev-0002:ACME");
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &t, &pr, NULL), IDP_E_VERIFY);
	t = info;
	t.mac[5] ^= 1;
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &t, &pr, NULL), IDP_E_VERIFY);
	t = info;
	set_str(t.serial, &t.serial_len, "SN-2026-000043");
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &t, &pr, NULL), IDP_E_VERIFY);
	/* Another key of the same type, and a key of the other type. */
	t = info;
	ck_assert_int_eq(fmt_key_spki_der(other, t.spki, &t.spki_len, NULL), IDP_OK);
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &t, &pr, NULL), IDP_E_VERIFY);
	make_info(alien, &t);
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &t, &pr, NULL), IDP_E_VERIFY);
	t.key_type = info.key_type; /* claimed type does not match the key */
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &t, &pr, NULL), IDP_E_FORMAT);
	/* Length boundaries move: "ab"+"c" must not sign as "a"+"bc". */
	tc = ch;
	t = info;
	set_str(tc.station_id, &tc.station_id_len, "station-line3-");
	set_str(t.device_id, &t.device_id_len, "Adev-0001:ACME");
	ck_assert_int_eq(fmt_wire_proof_verify(&tc, &t, &pr, NULL), IDP_E_VERIFY);
	/* Any flipped signature bit. */
	for (size_t i = 0; i < (size_t)FMT_WIRE_SIG_LEN * 8; i += 37) {
		tp = pr;
		tp.sig[i / 8] ^= (uint8_t)(1u << (i % 8));
		ck_assert_int_eq(fmt_wire_proof_verify(&ch, &info, &tp, NULL), IDP_E_VERIFY);
	}
	/* The signature is over the domain-separated message, not the bare fields. */
	uint8_t msg[FMT_WIRE_PROOF_MSG_MAX], sig[FMT_KEY_SIG_MAX];
	size_t mlen = 0, slen = 0;
	ck_assert_int_eq(fmt_wire_proof_message(&ch, &info, msg, &mlen, NULL), IDP_OK);
	ck_assert_mem_eq(msg, FMT_WIRE_PROOF_DOMAIN, sizeof(FMT_WIRE_PROOF_DOMAIN));
	ck_assert_int_eq(fmt_key_verify(k, FMT_SIG_RAW, msg, mlen, pr.sig, FMT_WIRE_SIG_LEN, NULL),
	                 IDP_OK);
	size_t dl = sizeof(FMT_WIRE_PROOF_DOMAIN);
	ck_assert_int_eq(fmt_key_sign(k, FMT_SIG_RAW, msg + dl, mlen - dl, sig, &slen, NULL), IDP_OK);
	memcpy(tp.sig, sig, FMT_WIRE_SIG_LEN);
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &info, &tp, NULL), IDP_E_VERIFY);
	/* A device refuses to sign for a key it does not hold. */
	ck_assert_int_eq(fmt_wire_proof_sign(other, &ch, &info, &tp, &err), IDP_E_ARG);
	fmt_key_free(k);
	fmt_key_free(other);
	fmt_key_free(alien);
}
END_TEST

/* INFO carrying an Ed25519 key anyone can sign for is refused by the parser
 * and the encoder; PROOF with it is refused although plain OpenSSL verifies
 * the forged (R = identity, S = 0) proof for the identity key. */
START_TEST(test_wire_info_refuses_weak_ed25519_keys)
{
	bool small = _i < (int)IDP_TEST_SMALL_ORDER_N;
	const uint8_t *pub = small ? idp_test_small_order[_i]
	                           : idp_test_noncanonical[_i - (int)IDP_TEST_SMALL_ORDER_N];
	const char *want = small ? "info: public key: key: ed25519 public key is of small order"
	                         : "info: public key: key: ed25519 public key is not canonical";
	struct fmt_key *ed = new_key(FMT_KEY_ED25519);
	struct fmt_wire_msg m, out;
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_INFO;
	make_info(ed, &m.u.info);
	uint8_t p[FMT_WIRE_PAYLOAD_MAX];
	size_t n = 0;
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, NULL), IDP_OK);
	size_t kt = 1 + m.u.info.device_id_len + 6 + 1 + m.u.info.serial_len;
	ck_assert_uint_eq(p[kt + 1], IDP_TEST_ED25519_SPKI_LEN);
	idp_test_ed25519_spki(pub, p + kt + 2);
	struct idp_error err = {0};
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, p, n, &out, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, want);
	/* The encoder refuses it too (a device cannot send it). */
	idp_test_ed25519_spki(pub, m.u.info.spki);
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, want);
	/* The station's PROOF check refuses the key before any signature. */
	struct fmt_wire_challenge ch;
	make_challenge(&ch);
	struct fmt_wire_proof pr;
	memset(&pr, 0, sizeof(pr));
	memcpy(pr.sig, idp_test_small_order[0], 32); /* R = identity, S = 0 */
	uint8_t msg[FMT_WIRE_PROOF_MSG_MAX];
	size_t mlen = 0;
	ck_assert_int_eq(fmt_wire_proof_message(&ch, &m.u.info, msg, &mlen, NULL), IDP_OK);
	if (_i == 0) {
		EVP_PKEY *e = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
		ck_assert_ptr_nonnull(e);
		ck_assert_int_eq(idp_test_ossl_verify_raw(e, msg, mlen, pr.sig), 1);
		EVP_PKEY_free(e);
	}
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &m.u.info, &pr, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, want);
	fmt_key_free(ed);
}
END_TEST

/* A P-256 PROOF's twin (r, n - s) verifies in OpenSSL but not here. */
START_TEST(test_wire_proof_high_s_refused)
{
	struct fmt_key *k = new_key(FMT_KEY_P256);
	struct fmt_wire_info info;
	struct fmt_wire_challenge ch;
	struct fmt_wire_proof pr;
	make_info(k, &info);
	make_challenge(&ch);
	ck_assert_int_eq(fmt_wire_proof_sign(k, &ch, &info, &pr, NULL), IDP_OK);
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &info, &pr, NULL), IDP_OK);
	uint8_t msg[FMT_WIRE_PROOF_MSG_MAX];
	size_t mlen = 0;
	ck_assert_int_eq(fmt_wire_proof_message(&ch, &info, msg, &mlen, NULL), IDP_OK);
	idp_test_ecdsa_twin(pr.sig);
	ck_assert_int_eq(idp_test_ossl_verify_raw(fmt_key_evp(k), msg, mlen, pr.sig), 1);
	struct idp_error err = {0};
	ck_assert_int_eq(fmt_wire_proof_verify(&ch, &info, &pr, &err), IDP_E_VERIFY);
	ck_assert_str_eq(err.msg, "proof: ecdsa signature is not low-s");
	fmt_key_free(k);
}
END_TEST

static struct fmt_wire_frame frame_of(const struct fmt_wire_msg *m)
{
	uint8_t line[FMT_WIRE_LINE_MAX];
	struct fmt_wire_frame f;
	decode_one(line, encode(m, line, sizeof(line)), &f);
	return f;
}

/* The device answers a repeated request with the same bytes, and never signs
 * a second nonce under a seq it has used. */
START_TEST(test_wire_cache_idempotent)
{
	struct fmt_wire_cache *c = calloc(1, sizeof(*c));
	ck_assert_ptr_nonnull(c);
	struct fmt_wire_msg m;
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_CHALLENGE;
	m.seq = 5;
	make_challenge(&m.u.challenge);
	struct fmt_wire_frame f = frame_of(&m);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &f), FMT_WIRE_CACHE_MISS);
	static const uint8_t answer[] = "~IDP1:answer\n";
	fmt_wire_cache_store(c, &f, answer, sizeof(answer) - 1);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &f), FMT_WIRE_CACHE_REPLAY);
	ck_assert_mem_eq(c->line, answer, sizeof(answer) - 1);
	m.u.challenge.nonce[0] ^= 1; /* same seq, another nonce */
	struct fmt_wire_frame g = frame_of(&m);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g), FMT_WIRE_CACHE_CONFLICT);
	m.seq = 4; /* an older seq */
	g = frame_of(&m);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g), FMT_WIRE_CACHE_CONFLICT);
	m.seq = 6;
	g = frame_of(&m);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g), FMT_WIRE_CACHE_MISS);
	struct fmt_wire_msg r;
	memset(&r, 0, sizeof(r));
	r.type = FMT_WIRE_INFO_REQ;
	r.seq = 5; /* the cached seq under another type */
	g = frame_of(&r);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g), FMT_WIRE_CACHE_CONFLICT);
	r.type = FMT_WIRE_HELLO; /* a new session may start anywhere */
	r.u.hello.role = FMT_WIRE_ROLE_STATION;
	r.u.hello.versions = 2;
	r.seq = 1;
	g = frame_of(&r);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g), FMT_WIRE_CACHE_MISS);
	/* Serial arithmetic across the wrap. */
	r.type = FMT_WIRE_INFO_REQ;
	r.seq = 0xffff;
	g = frame_of(&r);
	fmt_wire_cache_store(c, &g, answer, sizeof(answer) - 1);
	r.seq = 0;
	g = frame_of(&r);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g), FMT_WIRE_CACHE_MISS);
	r.seq = 0x7fff;
	g = frame_of(&r);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g), FMT_WIRE_CACHE_CONFLICT);
	/* An oversized answer is not cached. */
	fmt_wire_cache_store(c, &f, answer, FMT_WIRE_LINE_MAX + 1);
	ck_assert(!c->valid);
	free(c);
}
END_TEST

/* A run of CRs before LF (a console server adding CR twice) ends the line like
 * one CR or none; a CR run followed by anything else still cuts it. */
START_TEST(test_wire_cr_runs_before_lf)
{
	struct fmt_wire_msg m;
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_CHALLENGE;
	m.seq = 0x1236;
	make_challenge(&m.u.challenge);
	uint8_t line[FMT_WIRE_LINE_MAX];
	size_t n = encode(&m, line, sizeof(line)) - 1; /* without its LF */
	static const char *const ends[] = {"\n", "\r\n", "\r\r\n", "\r\r\r\r\r\r\r\r\n"};
	for (size_t e = 0; e < sizeof(ends) / sizeof(ends[0]); e++) {
		static uint8_t stream[STREAM_MAX];
		static struct fmt_wire_frame got[FRAMES_MAX];
		size_t len = 0;
		for (int k = 0; k < 3; k++) {
			put(stream, &len, line, n);
			puts_(stream, &len, ends[e]);
		}
		for (size_t chunk = 0; chunk < 4; chunk++) {
			struct fmt_wire_decoder *d = fmt_wire_decoder_new();
			ck_assert_ptr_nonnull(d);
			size_t nf = decode_chunked(d, stream, len, chunk, 0, got);
			ck_assert_msg(nf == 3, "end %zu chunk %zu: %zu frames", e, chunk, nf);
			ck_assert_uint_eq(got[2].seq, 0x1236);
			struct fmt_wire_stats st;
			fmt_wire_decoder_stats(d, &st);
			ck_assert_uint_eq(st.bad_cut, 0);
			fmt_wire_decoder_free(d);
		}
	}
	/* "\r\rX\n" still cuts the line: no frame. */
	static uint8_t stream[STREAM_MAX];
	static struct fmt_wire_frame got[FRAMES_MAX];
	size_t len = 0;
	put(stream, &len, line, n);
	puts_(stream, &len, "\r\rX\n");
	struct fmt_wire_decoder *d = fmt_wire_decoder_new();
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(decode_chunked(d, stream, len, 0, 0, got), 0);
	struct fmt_wire_stats st;
	fmt_wire_decoder_stats(d, &st);
	ck_assert_uint_eq(st.bad_cut, 1);
	fmt_wire_decoder_free(d);
}
END_TEST

/* An empty public key is too short (FORMAT, as for every field), a long one
 * too long (LIMIT): parser, encoder and proof message agree. */
START_TEST(test_wire_empty_public_key_is_format)
{
	struct fmt_key *k = new_key(FMT_KEY_P256);
	struct fmt_wire_msg m;
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_INFO;
	make_info(k, &m.u.info);
	uint8_t p[FMT_WIRE_PAYLOAD_MAX], q[FMT_WIRE_PAYLOAD_MAX];
	size_t n = 0;
	struct idp_error err = {IDP_OK, ""};
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, &err), IDP_OK);
	size_t kl = 1 + m.u.info.device_id_len + 6 + 1 + m.u.info.serial_len + 1;
	ck_assert_uint_eq(p[kl], m.u.info.spki_len);
	/* The same INFO with a zero-length key: drop the key bytes. */
	memcpy(q, p, kl);
	q[kl] = 0;
	memcpy(q + kl + 1, p + kl + 1 + m.u.info.spki_len, n - kl - 1 - m.u.info.spki_len);
	struct fmt_wire_msg out;
	size_t qn = n - m.u.info.spki_len;
	ck_assert_int_eq(fmt_wire_payload_parse(FMT_WIRE_INFO, q, qn, &out, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "info: public key is 0 bytes, must be 1..128");
	struct fmt_wire_challenge ch;
	make_challenge(&ch);
	uint8_t msg[FMT_WIRE_PROOF_MSG_MAX];
	m.u.info.spki_len = 0;
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, &err), IDP_E_FORMAT);
	ck_assert_int_eq(fmt_wire_proof_message(&ch, &m.u.info, msg, &n, &err), IDP_E_FORMAT);
	m.u.info.spki_len = FMT_KEY_SPKI_MAX + 1;
	ck_assert_int_eq(fmt_wire_payload_encode(&m, p, &n, &err), IDP_E_LIMIT);
	ck_assert_int_eq(fmt_wire_proof_message(&ch, &m.u.info, msg, &n, &err), IDP_E_LIMIT);
	fmt_key_free(k);
}
END_TEST

/* wire.md 6.2 in its order: a HELLO under the cached seq opens a new session
 * unless it repeats the cached HELLO; flags are not compared. */
START_TEST(test_wire_cache_rules_as_specified)
{
	struct fmt_wire_cache *c = calloc(1, sizeof(*c));
	ck_assert_ptr_nonnull(c);
	static const uint8_t answer[] = "~IDP1:answer\n";
	struct fmt_wire_msg m;
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_CHALLENGE;
	m.seq = 9;
	make_challenge(&m.u.challenge);
	struct fmt_wire_frame f = frame_of(&m);
	fmt_wire_cache_store(c, &f, answer, sizeof(answer) - 1);
	struct fmt_wire_msg h;
	memset(&h, 0, sizeof(h));
	h.type = FMT_WIRE_HELLO;
	h.seq = 9; /* the cached seq, another type: a new session, not a conflict */
	h.u.hello.role = FMT_WIRE_ROLE_STATION;
	h.u.hello.versions = 2;
	struct fmt_wire_frame g = frame_of(&h);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g), FMT_WIRE_CACHE_MISS);
	h.seq = 3; /* an older seq: still a new session */
	g = frame_of(&h);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g), FMT_WIRE_CACHE_MISS);
	fmt_wire_cache_store(c, &g, answer, sizeof(answer) - 1);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g), FMT_WIRE_CACHE_REPLAY); /* resent HELLO */
	h.u.hello.versions = 6; /* the cached HELLO's type and seq, another payload */
	struct fmt_wire_frame g2 = frame_of(&h);
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &g2), FMT_WIRE_CACHE_CONFLICT);
	/* Flags (and the frame version) are not part of the comparison. */
	f.flags = 0x80;
	fmt_wire_cache_store(c, &f, answer, sizeof(answer) - 1);
	f.flags = 0;
	ck_assert_int_eq(fmt_wire_cache_lookup(c, &f), FMT_WIRE_CACHE_REPLAY);
	/* A request over FMT_WIRE_CACHE_REQ_MAX clears the cache. */
	f.len = FMT_WIRE_CACHE_REQ_MAX + 1;
	fmt_wire_cache_store(c, &f, answer, sizeof(answer) - 1);
	ck_assert(!c->valid);
	free(c);
}
END_TEST

/* The example lines of wire.md section 3.3, byte for byte. */
START_TEST(test_wire_spec_examples)
{
	struct fmt_wire_msg m;
	uint8_t line[FMT_WIRE_LINE_MAX];
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_HELLO;
	m.seq = 0x1234;
	m.u.hello.role = FMT_WIRE_ROLE_STATION;
	m.u.hello.versions = 2;
	size_t n = encode(&m, line, sizeof(line));
	ck_assert_uint_eq(n, 29);
	ck_assert_mem_eq(line, "~IDP1:AQEAEjQABQEAAAACOX5yZw\n", n);
	m.type = FMT_WIRE_INFO_REQ;
	m.seq = 0x1235;
	n = encode(&m, line, sizeof(line));
	ck_assert_mem_eq(line, "~IDP1:AQIAEjUAAPTLxCA\n", n);
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_ERROR;
	m.seq = 0x1236;
	m.u.error.code = FMT_WIRE_ERR_NO_KEY;
	set_str(m.u.error.text, &m.u.error.text_len, "no key");
	n = encode(&m, line, sizeof(line));
	ck_assert_mem_eq(line, "~IDP1:Af8AEjYACQAFBm5vIGtleesg2-g\n", n);
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_CHALLENGE;
	m.seq = 0x1236;
	for (size_t i = 0; i < FMT_WIRE_NONCE_LEN; i++)
		m.u.challenge.nonce[i] = (uint8_t)i;
	set_str(m.u.challenge.station_id, &m.u.challenge.station_id_len, "st-1");
	n = encode(&m, line, sizeof(line));
	static const char ch[] =
		"~IDP1:AQMAEjYAJQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fBHN0LTF3DM3r\n";
	ck_assert_uint_eq(n, sizeof(ch) - 1);
	ck_assert_mem_eq(line, ch, n);
}
END_TEST

/* A device as wire.md section 8 drives it: answer cache first, then parse
 * and answer. Returns the response line in out. */
static size_t device_answer(const struct fmt_key *k, const struct fmt_wire_info *info,
                            struct fmt_wire_cache *cache, const struct fmt_wire_frame *f,
                            uint8_t *out, unsigned *signatures)
{
	enum fmt_wire_cache_hit hit = fmt_wire_cache_lookup(cache, f);
	if (hit == FMT_WIRE_CACHE_REPLAY) {
		memcpy(out, cache->line, cache->line_len);
		return cache->line_len;
	}
	struct fmt_wire_msg req, resp;
	memset(&resp, 0, sizeof(resp));
	resp.seq = f->seq;
	resp.type = FMT_WIRE_ERROR;
	struct idp_error err;
	if (hit == FMT_WIRE_CACHE_CONFLICT) {
		resp.u.error.code = FMT_WIRE_ERR_SEQ_REUSED;
		set_str(resp.u.error.text, &resp.u.error.text_len, "seq: reused or old");
	} else if (fmt_wire_msg_parse(f, &req, &err) != IDP_OK) {
		resp.u.error.code = FMT_WIRE_ERR_PAYLOAD;
		set_str(resp.u.error.text, &resp.u.error.text_len, "request: does not parse");
	} else if (req.type == FMT_WIRE_HELLO) {
		resp.type = FMT_WIRE_HELLO_ACK;
		resp.u.hello.role = FMT_WIRE_ROLE_DEVICE;
		resp.u.hello.versions = 1u << FMT_WIRE_VERSION;
	} else if (req.type == FMT_WIRE_INFO_REQ) {
		resp.type = FMT_WIRE_INFO;
		resp.u.info = *info;
	} else if (req.type == FMT_WIRE_CHALLENGE) {
		resp.type = FMT_WIRE_PROOF;
		ck_assert_int_eq(
			fmt_wire_proof_sign(k, &req.u.challenge, info, &resp.u.proof, NULL), IDP_OK);
		(*signatures)++;
	} else {
		resp.u.error.code = FMT_WIRE_ERR_TYPE;
		set_str(resp.u.error.text, &resp.u.error.text_len, "type: unexpected");
	}
	size_t n = encode(&resp, out, FMT_WIRE_LINE_MAX);
	fmt_wire_cache_store(cache, f, out, n);
	return n;
}

/* What the station reads after sending `req`: its own request echoed by the
 * console, a log line, then the device's answer (if any) split across reads.
 * Returns the answer to the outstanding seq, ignoring echo and stale answers. */
static bool station_exchange(struct fmt_wire_decoder *sd, struct fmt_wire_decoder *dd,
                             const struct fmt_key *k, const struct fmt_wire_info *info,
                             struct fmt_wire_cache *cache, const struct fmt_wire_msg *req,
                             struct fmt_wire_msg *resp, uint8_t *resp_line, size_t *resp_len,
                             unsigned *signatures)
{
	static uint8_t line[FMT_WIRE_LINE_MAX], ans[FMT_WIRE_LINE_MAX], rx[STREAM_MAX];
	size_t n = encode(req, line, sizeof(line)), rlen = 0, alen = 0;
	struct fmt_wire_frame f[FRAMES_MAX];
	/* Device side: decode the request (in 5-byte reads) and answer it. */
	ck_assert_uint_eq(decode_chunked(dd, line, n, 5, 0, f), 1);
	alen = device_answer(k, info, cache, &f[0], ans, signatures);
	put(rx, &rlen, line, n); /* echo */
	puts_(rx, &rlen, "[  12.345678] usb 1-1: new high-speed USB device number 3\r\n");
	put(rx, &rlen, ans, alen);
	size_t nf = decode_chunked(sd, rx, rlen, 17, 0, f);
	bool found = false;
	for (size_t i = 0; i < nf; i++) {
		if ((f[i].type & 0x80) == 0 || f[i].seq != req->seq)
			continue;
		ck_assert(!found);
		ck_assert_int_eq(fmt_wire_msg_parse(&f[i], resp, NULL), IDP_OK);
		memcpy(resp_line, ans, alen);
		*resp_len = alen;
		found = true;
	}
	return found;
}

/* A whole station session against a device over an echoing console, with a
 * retried CHALLENGE (answered with the same bytes, signed once) and a buggy
 * station reusing a seq (refused, nothing signed). */
START_TEST(test_wire_session_with_retry)
{
	struct fmt_key *k = new_key(types[_i]);
	struct fmt_wire_info info;
	make_info(k, &info);
	struct fmt_wire_cache *cache = calloc(1, sizeof(*cache));
	struct fmt_wire_decoder *sd = fmt_wire_decoder_new(), *dd = fmt_wire_decoder_new();
	ck_assert_ptr_nonnull(cache);
	static uint8_t first[FMT_WIRE_LINE_MAX], again[FMT_WIRE_LINE_MAX];
	size_t flen = 0, alen = 0;
	unsigned sigs = 0;
	struct fmt_wire_msg req, resp;
	memset(&req, 0, sizeof(req));
	req.type = FMT_WIRE_HELLO;
	req.seq = 0xfffe; /* random start; crosses the wrap below */
	req.u.hello.role = FMT_WIRE_ROLE_STATION;
	req.u.hello.versions = 1u << FMT_WIRE_VERSION;
	ck_assert(station_exchange(sd, dd, k, &info, cache, &req, &resp, first, &flen, &sigs));
	ck_assert_int_eq(resp.type, FMT_WIRE_HELLO_ACK);
	ck_assert_uint_eq(fmt_wire_version_pick(req.u.hello.versions, resp.u.hello.versions), 1);

	memset(&req, 0, sizeof(req));
	req.type = FMT_WIRE_INFO_REQ;
	req.seq = 0xffff;
	ck_assert(station_exchange(sd, dd, k, &info, cache, &req, &resp, first, &flen, &sigs));
	ck_assert_int_eq(resp.type, FMT_WIRE_INFO);
	struct fmt_wire_info got = resp.u.info;

	memset(&req, 0, sizeof(req));
	req.type = FMT_WIRE_CHALLENGE;
	req.seq = 0;
	make_challenge(&req.u.challenge);
	ck_assert(station_exchange(sd, dd, k, &info, cache, &req, &resp, first, &flen, &sigs));
	ck_assert_int_eq(resp.type, FMT_WIRE_PROOF);
	/* The answer was "lost": the station resends the identical line. */
	ck_assert(station_exchange(sd, dd, k, &info, cache, &req, &resp, again, &alen, &sigs));
	ck_assert_uint_eq(alen, flen);
	ck_assert_mem_eq(again, first, flen);
	ck_assert_uint_eq(sigs, 1);
	ck_assert_int_eq(fmt_wire_proof_verify(&req.u.challenge, &got, &resp.u.proof, NULL),
	                 IDP_OK);

	/* Another nonce under the same seq, then under an older seq: refused. */
	req.u.challenge.nonce[0] ^= 0xff;
	ck_assert(station_exchange(sd, dd, k, &info, cache, &req, &resp, again, &alen, &sigs));
	ck_assert_int_eq(resp.type, FMT_WIRE_ERROR);
	ck_assert_uint_eq(resp.u.error.code, FMT_WIRE_ERR_SEQ_REUSED);
	req.seq = 0xfff0;
	ck_assert(station_exchange(sd, dd, k, &info, cache, &req, &resp, again, &alen, &sigs));
	ck_assert_uint_eq(resp.u.error.code, FMT_WIRE_ERR_SEQ_REUSED);
	ck_assert_uint_eq(sigs, 1);

	/* The station saw its own requests (echo), the log lines, and 6 answers. */
	struct fmt_wire_stats st;
	fmt_wire_decoder_stats(sd, &st);
	ck_assert_uint_eq(st.frames, 12);
	ck_assert_uint_eq(st.bad_cut + st.bad_crc + st.bad_base64 + st.bad_length, 0);
	fmt_wire_decoder_free(sd);
	fmt_wire_decoder_free(dd);
	free(cache);
	fmt_key_free(k);
}
END_TEST

START_TEST(test_wire_version_pick)
{
	ck_assert_uint_eq(fmt_wire_version_pick(1u << 1, 1u << 1), 1);
	ck_assert_uint_eq(fmt_wire_version_pick(1u << 1 | 1u << 2, 1u << 1 | 1u << 2 | 1u << 5),
	                  2);
	ck_assert_uint_eq(fmt_wire_version_pick(1u << 2, 1u << 1), 0);
	ck_assert_uint_eq(fmt_wire_version_pick(1u, 1u), 0);
	ck_assert_uint_eq(fmt_wire_version_pick(0xffffffffu, 1u << 31), 31);
}
END_TEST

START_TEST(test_wire_feed_arguments)
{
	struct fmt_wire_decoder *d = fmt_wire_decoder_new();
	struct fmt_wire_frame f;
	size_t used = 9;
	bool got = true;
	struct idp_error err;
	ck_assert_int_eq(fmt_wire_feed(d, NULL, 0, &used, &f, &got, NULL), IDP_OK);
	ck_assert_uint_eq(used, 0);
	ck_assert(!got);
	ck_assert_int_eq(fmt_wire_feed(d, NULL, 3, &used, &f, &got, &err), IDP_E_ARG);
	ck_assert_int_eq(fmt_wire_feed(NULL, (const uint8_t *)"x", 1, &used, &f, &got, NULL),
	                 IDP_E_ARG);
	fmt_wire_decoder_free(d);
	fmt_wire_decoder_free(NULL);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_wire_round_trip_every_message, 0, 2);
	tcase_add_test(tc, test_wire_split_at_every_boundary);
	tcase_add_test(tc, test_wire_boot_noise_interleaved);
	tcase_add_loop_test(tc, test_wire_every_byte_corruption_rejected, 0, 2);
	tcase_add_test(tc, test_wire_oversized_length_refused);
	tcase_add_test(tc, test_wire_payload_parse_rejects);
	tcase_add_loop_test(tc, test_wire_proof_binds_challenge_and_identity, 0, 2);
	tcase_add_loop_test(tc, test_wire_info_refuses_weak_ed25519_keys, 0,
	                    IDP_TEST_SMALL_ORDER_N + IDP_TEST_NONCANONICAL_N);
	tcase_add_test(tc, test_wire_proof_high_s_refused);
	tcase_add_test(tc, test_wire_cache_idempotent);
	tcase_add_test(tc, test_wire_cr_runs_before_lf);
	tcase_add_test(tc, test_wire_empty_public_key_is_format);
	tcase_add_test(tc, test_wire_cache_rules_as_specified);
	tcase_add_test(tc, test_wire_spec_examples);
	tcase_add_loop_test(tc, test_wire_session_with_retry, 0, 2);
	tcase_add_test(tc, test_wire_version_pick);
	tcase_add_test(tc, test_wire_feed_arguments);
	suite_add_tcase(s, tc);
	return s;
}
