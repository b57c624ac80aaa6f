/*
 * bench_wire.c - station<->device frame codec (formats/wire.md): encode and
 * decode throughput in MB/s of payload bytes, against memcpy of the same
 * bytes measured in the same run, and the wire time of a whole session at
 * 115200 baud 8N1 computed from the encoded sizes.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/wire.h"

#define RUN_SECONDS 0.4  /* per measurement */
#define BATCH       64u  /* frames between clock reads */
#define BAUD_BYTES  11520.0 /* 115200 baud, 8N1: 10 bits per byte */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Keeps the compiler from dropping work whose result is not otherwise used. */
static void barrier(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static uint8_t payload[FMT_WIRE_PAYLOAD_MAX];
static uint8_t lines[BATCH * FMT_WIRE_LINE_MAX];
static uint8_t copy[BATCH * FMT_WIRE_PAYLOAD_MAX];

/* MB/s of payload bytes encoding frames of plen bytes. */
static double bench_encode(size_t plen)
{
	size_t bytes = 0, n = 0;
	double t0 = now(), t = t0;
	while (t - t0 < RUN_SECONDS) {
		for (unsigned i = 0; i < BATCH; i++) {
			if (fmt_wire_encode(0x7e, (uint16_t)i, payload, plen, lines, FMT_WIRE_LINE_MAX,
			                    &n, NULL) != IDP_OK)
				abort();
			barrier(lines);
		}
		bytes += BATCH * plen;
		t = now();
	}
	return (double)bytes / (t - t0) / 1e6;
}

/* MB/s of payload bytes decoding a stream of BATCH frames of plen bytes,
 * fed in chunks of `chunk` bytes (as serial reads return them). */
static double bench_decode(size_t plen, size_t chunk)
{
	size_t len = 0, n = 0;
	for (unsigned i = 0; i < BATCH; i++) {
		if (fmt_wire_encode(0x7e, (uint16_t)i, payload, plen, lines + len,
		                    sizeof(lines) - len, &n, NULL) != IDP_OK)
			abort();
		len += n;
	}
	struct fmt_wire_decoder *d = fmt_wire_decoder_new();
	static struct fmt_wire_frame f;
	if (d == NULL)
		abort();
	size_t bytes = 0;
	double t0 = now(), t = t0;
	while (t - t0 < RUN_SECONDS) {
		size_t frames = 0;
		for (size_t off = 0; off < len;) {
			size_t want = len - off < chunk ? len - off : chunk, used = 0;
			bool got = false;
			if (fmt_wire_feed(d, lines + off, want, &used, &f, &got, NULL) != IDP_OK)
				abort();
			off += used;
			frames += got;
			barrier(&f);
		}
		if (frames != BATCH)
			abort();
		bytes += BATCH * plen;
		t = now();
	}
	fmt_wire_decoder_free(d);
	return (double)bytes / (t - t0) / 1e6;
}

/* MB/s of memcpy of the same payload bytes: the ceiling for context. */
static double bench_memcpy(size_t plen)
{
	size_t bytes = 0;
	double t0 = now(), t = t0;
	while (t - t0 < RUN_SECONDS) {
		for (unsigned i = 0; i < BATCH; i++) {
			memcpy(copy + (size_t)i * plen, payload, plen);
			barrier(copy);
		}
		bytes += BATCH * plen;
		t = now();
	}
	return (double)bytes / (t - t0) / 1e6;
}

static size_t line_of(const struct fmt_wire_msg *m)
{
	uint8_t line[FMT_WIRE_LINE_MAX];
	size_t n = 0;
	if (fmt_wire_msg_encode(m, line, sizeof(line), &n, NULL) != IDP_OK)
		abort();
	return n;
}

/* Encoded bytes of HELLO, HELLO_ACK, INFO_REQ, INFO, CHALLENGE, PROOF with
 * realistic field sizes and a key of type t. */
static size_t session_bytes(enum fmt_key_type t, size_t *info_line)
{
	struct fmt_key *k = NULL;
	if (fmt_key_generate(t, &k, NULL) != IDP_OK)
		abort();
	struct fmt_wire_msg m;
	size_t total = 0;
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_HELLO;
	m.u.hello.role = FMT_WIRE_ROLE_STATION;
	m.u.hello.versions = 1u << FMT_WIRE_VERSION;
	total += line_of(&m);
	m.type = FMT_WIRE_HELLO_ACK;
	m.u.hello.role = FMT_WIRE_ROLE_DEVICE;
	total += line_of(&m);
	m.type = FMT_WIRE_INFO_REQ;
	total += line_of(&m);
	struct fmt_wire_msg info;
	memset(&info, 0, sizeof(info));
	info.type = FMT_WIRE_INFO;
	struct fmt_wire_info *in = &info.u.info;
	in->device_id_len = (size_t)snprintf(in->device_id, sizeof(in->device_id), "%s",
	                                     "acme-sensor-00:1b:63:84:45:e6");
	in->serial_len = (size_t)snprintf(in->serial, sizeof(in->serial), "%s", "SN2026W47-000123");
	in->fw_version_len = (size_t)snprintf(in->fw_version, sizeof(in->fw_version), "%s",
	                                      "2.4.1+build.311");
	in->agent_version_len =
		(size_t)snprintf(in->agent_version, sizeof(in->agent_version), "%s", "0.1.0");
	static const uint8_t mac[FMT_WIRE_MAC_LEN] = {0x00, 0x1b, 0x63, 0x84, 0x45, 0xe6};
	memcpy(in->mac, mac, sizeof(mac));
	in->key_type = t;
	if (fmt_key_spki_der(k, in->spki, &in->spki_len, NULL) != IDP_OK)
		abort();
	*info_line = line_of(&info);
	total += *info_line;
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_CHALLENGE;
	m.u.challenge.station_id_len = (size_t)snprintf(
		m.u.challenge.station_id, sizeof(m.u.challenge.station_id), "%s", "plant2-line3-st1");
	total += line_of(&m);
	struct fmt_wire_msg pr;
	memset(&pr, 0, sizeof(pr));
	pr.type = FMT_WIRE_PROOF;
	if (fmt_wire_proof_sign(k, &m.u.challenge, in, &pr.u.proof, NULL) != IDP_OK)
		abort();
	total += line_of(&pr);
	fmt_key_free(k);
	return total;
}

int main(void)
{
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 131 + 7);
	static const size_t sizes[] = {FMT_WIRE_PAYLOAD_MAX, 165};
	for (size_t s = 0; s < 2; s++) {
		size_t plen = sizes[s];
		double mc = bench_memcpy(plen);
		double enc = bench_encode(plen);
		double dec = bench_decode(plen, 4096);
		double dec64 = bench_decode(plen, 64);
		printf("wire codec, %4zu-byte payloads: encode %7.1f MB/s, decode %7.1f MB/s "
		       "(64-byte reads %7.1f MB/s); memcpy %8.1f MB/s; ratio encode/memcpy %.4f, "
		       "decode/memcpy %.4f\n",
		       plen, enc, dec, dec64, mc, enc / mc, dec / mc);
		/* A serial line moves 0.0115 MB/s; the codec must never be the bottleneck. */
		printf("wire codec, %4zu-byte payloads: decode is %.0fx the 115200-baud line rate\n",
		       plen, dec / (BAUD_BYTES / 1e6));
	}
	static const enum fmt_key_type kt[] = {FMT_KEY_P256, FMT_KEY_ED25519};
	for (size_t i = 0; i < 2; i++) {
		size_t info = 0, total = session_bytes(kt[i], &info);
		printf("wire session (%s key): HELLO+ACK+INFO_REQ+INFO+CHALLENGE+PROOF = %zu bytes "
		       "(INFO line %zu), %.1f ms at 115200 8N1\n",
		       fmt_key_type_name(kt[i]), total, info, (double)total / BAUD_BYTES * 1e3);
	}
	return 0;
}
