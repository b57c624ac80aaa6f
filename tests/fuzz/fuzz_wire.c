/*
 * fuzz_wire.c - libFuzzer target for formats/wire: the frame decoder on
 * arbitrary bytes in arbitrary chunks (the first input byte picks the chunk
 * size), every decoded frame through the message parser, and the rest of the
 * input through every payload parser directly. Whatever parses must re-encode
 * to the same bytes (one encoding per message), and the decoder must consume
 * exactly its input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t all_types[] = {
	FMT_WIRE_HELLO, FMT_WIRE_INFO_REQ, FMT_WIRE_CHALLENGE, FMT_WIRE_HELLO_ACK,
	FMT_WIRE_INFO,  FMT_WIRE_PROOF,    FMT_WIRE_ERROR,     0x04,
};

/* A payload that parsed must encode back to itself; a parsed INFO must be
 * usable for proof verification (which must not accept a zero signature). */
static void check_canonical(const struct fmt_wire_msg *m, const uint8_t *payload, size_t len)
{
	static uint8_t again[FMT_WIRE_PAYLOAD_MAX];
	size_t n = 0;
	if (fmt_wire_payload_encode(m, again, &n, NULL) != IDP_OK)
		abort(); /* the parser accepted what the encoder refuses */
	if (n != len || (len > 0 && memcmp(again, payload, len) != 0))
		abort(); /* two encodings of one message */
	if (m->type == FMT_WIRE_INFO) {
		struct fmt_wire_challenge ch;
		struct fmt_wire_proof pr;
		memset(&ch, 0, sizeof(ch));
		memcpy(ch.station_id, "fuzz", 5);
		ch.station_id_len = 4;
		memset(&pr, 0, sizeof(pr));
		if (fmt_wire_proof_verify(&ch, &m->u.info, &pr, NULL) == IDP_OK)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t chunk = data[0] == 0 ? size : data[0];
	const uint8_t *in = data + 1;
	size_t len = size - 1;

	struct fmt_wire_decoder *d = fmt_wire_decoder_new();
	if (d == NULL)
		return 0;
	static struct fmt_wire_frame f;
	static struct fmt_wire_msg m;
	size_t off = 0;
	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;
		size_t pos = 0;
		while (pos < n) {
			size_t used = 0;
			bool got = false;
			if (fmt_wire_feed(d, in + off + pos, n - pos, &used, &f, &got, NULL) != IDP_OK)
				abort();
			if (used == 0 || used > n - pos || (!got && used != n - pos))
				abort();
			pos += used;
			if (got && f.len > FMT_WIRE_PAYLOAD_MAX)
				abort();
			if (got && fmt_wire_msg_parse(&f, &m, NULL) == IDP_OK)
				check_canonical(&m, f.payload, f.len);
		}
		off += n;
	}
	fmt_wire_decoder_free(d);

	if (len <= FMT_WIRE_PAYLOAD_MAX)
		for (size_t t = 0; t < sizeof(all_types); t++)
			if (fmt_wire_payload_parse(all_types[t], in, len, &m, NULL) == IDP_OK)
				check_canonical(&m, in, len);
	return 0;
}
