/*
 * wire_device.c - the test device side of the wire protocol (see
 * wire_device.h). Not production code: it exists to exercise the station.
 */
#include "tests/device/wire_device.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "formats/wire.h"

static const char boot_log[] = "U-Boot 2024.01 (Jan 01 2026)\r\nDRAM:  512 MiB\r\n"
                               "Starting kernel ...\r\n[    0.000000] Booting Linux\r\n";
static const char kmsg[] = "[    3.141592] usb 1-1: new high-speed USB device\r\n";

static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	(void)nanosleep(&ts, NULL);
}

static void put(int fd, const uint8_t *p, size_t n, bool split)
{
	size_t off = 0;
	while (off < n) {
		size_t k = split && n - off > 7 ? 7 : n - off;
		ssize_t w = write(fd, p + off, k);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
		if (split)
			pause_ms(2);
	}
}

struct dev {
	struct fmt_key *key, *other;
	struct fmt_wire_info info;
	unsigned index;
};

static enum idp_err make_identity(struct dev *d, const struct tdev_cfg *c, struct idp_error *err)
{
	fmt_key_free(d->key);
	d->key = NULL;
	enum idp_err rc = fmt_key_generate(c->key_type, &d->key, err);
	if (rc != IDP_OK)
		return rc;
	struct fmt_wire_info *in = &d->info;
	memset(in, 0, sizeof(*in));
	unsigned n = c->first + d->index;
	in->device_id_len =
	        (size_t)snprintf(in->device_id, sizeof(in->device_id), "%s-%u", c->id_prefix, n);
	if (c->serial_prefix[0] != '\0')
		in->serial_len = (size_t)snprintf(in->serial, sizeof(in->serial), "%s-%u",
		                                  c->serial_prefix, c->dup_serial ? c->first : n);
	const uint8_t mac[6] = {0x02,      0x1a, 0x2c, (uint8_t)(n >> 16), (uint8_t)(n >> 8),
	                        (uint8_t)n};
	memcpy(in->mac, mac, 6);
	in->key_type = c->key_type;
	if ((rc = fmt_key_spki_der(d->key, in->spki, &in->spki_len, err)) != IDP_OK)
		return rc;
	in->fw_version_len = (size_t)snprintf(in->fw_version, sizeof(in->fw_version), "1.0.0");
	in->agent_version_len =
	        (size_t)snprintf(in->agent_version, sizeof(in->agent_version), "test-device");
	return IDP_OK;
}

/* Answer one request; *proof_sent when it was a PROOF. */
static void answer(int fd, struct dev *d, const struct tdev_cfg *c, struct fmt_wire_cache *cache,
                   const struct fmt_wire_frame *f, bool *proof_sent, unsigned *cuts)
{
	static uint8_t line[FMT_WIRE_LINE_MAX];
	size_t len = 0;
	switch (fmt_wire_cache_lookup(cache, f)) {
	case FMT_WIRE_CACHE_REPLAY:
		put(fd, cache->line, cache->line_len, c->split);
		return;
	case FMT_WIRE_CACHE_CONFLICT: {
		struct fmt_wire_msg e = {.type = FMT_WIRE_ERROR, .seq = f->seq};
		e.u.error.code = FMT_WIRE_ERR_SEQ_REUSED;
		e.u.error.text_len =
		        (size_t)snprintf(e.u.error.text, sizeof(e.u.error.text), "seq: reused");
		if (fmt_wire_msg_encode(&e, line, sizeof(line), &len, NULL) == IDP_OK) {
			put(fd, line, len, c->split);
			fmt_wire_cache_store(cache, f, line, len);
		}
		return;
	}
	case FMT_WIRE_CACHE_MISS:
		break;
	}
	struct fmt_wire_msg req, m;
	memset(&m, 0, sizeof(m));
	m.seq = f->seq;
	if (fmt_wire_msg_parse(f, &req, NULL) != IDP_OK)
		return;
	bool is_proof = false;
	if (req.type == FMT_WIRE_HELLO) {
		m.type = FMT_WIRE_HELLO_ACK;
		m.u.hello.role = FMT_WIRE_ROLE_DEVICE;
		m.u.hello.versions = 1u << FMT_WIRE_VERSION;
	} else if (req.type == FMT_WIRE_INFO_REQ) {
		m.type = FMT_WIRE_INFO;
		m.u.info = d->info;
	} else if (req.type == FMT_WIRE_CHALLENGE) {
		if (c->silent_challenge)
			return;
		m.type = FMT_WIRE_PROOF;
		const struct fmt_key *k = d->key;
		struct fmt_wire_info info = d->info;
		if (c->wrong_proof) {
			/* The other key signs, claiming this device's SPKI: sign
			 * refuses a key that is not the INFO's, so sign over the
			 * other key's own INFO and send that signature. */
			if (d->other == NULL &&
			    fmt_key_generate(c->key_type, &d->other, NULL) != IDP_OK)
				return;
			k = d->other;
			if (fmt_key_spki_der(k, info.spki, &info.spki_len, NULL) != IDP_OK)
				return;
		}
		if (fmt_wire_proof_sign(k, &req.u.challenge, &info, &m.u.proof, NULL) != IDP_OK)
			return;
		is_proof = true;
	} else {
		return;
	}
	if (fmt_wire_msg_encode(&m, line, sizeof(line), &len, NULL) != IDP_OK)
		return;
	fmt_wire_cache_store(cache, f, line, len);
	if (c->cut_first && (m.type == FMT_WIRE_INFO || m.type == FMT_WIRE_PROOF) && *cuts < 2) {
		/* a kernel message lands in the middle of the line */
		(*cuts)++;
		put(fd, line, len / 2, c->split);
		put(fd, (const uint8_t *)kmsg, sizeof(kmsg) - 1, false);
		put(fd, line + len / 2, len - len / 2, c->split);
	} else {
		put(fd, line, len, c->split);
	}
	if (c->noise)
		put(fd, (const uint8_t *)kmsg, sizeof(kmsg) - 1, false);
	*proof_sent = is_proof;
}

enum idp_err tdev_run(int fd, const struct tdev_cfg *c, volatile const int *stop,
                      struct idp_error *err)
{
	struct fmt_wire_decoder *dec = fmt_wire_decoder_new();
	static struct fmt_wire_cache cache;
	static struct fmt_wire_frame f;
	memset(&cache, 0, sizeof(cache));
	struct dev d;
	memset(&d, 0, sizeof(d));
	enum idp_err rc = dec == NULL ? idp_error_set(err, IDP_E_NOMEM, "device: out of memory")
	                              : make_identity(&d, c, err);
	bool booted = !c->noise;
	unsigned cuts = 0;
	bool switch_next = false;
	while (rc == IDP_OK && (stop == NULL || !*stop)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = poll(&p, 1, 100);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		uint8_t buf[256];
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		if (!booted) {
			put(fd, (const uint8_t *)boot_log, sizeof(boot_log) - 1, c->split);
			booted = true;
		}
		for (size_t off = 0; off < (size_t)r;) {
			size_t used = 0;
			bool got = false;
			if (fmt_wire_feed(dec, buf + off, (size_t)r - off, &used, &f, &got, NULL) !=
			    IDP_OK)
				break;
			off += used;
			if (!got || (f.type & 0x80u) != 0 || c->silent)
				continue;
			/* The next device is "plugged in" when the station starts
			 * a new session after a PROOF: until then the station may
			 * still resend the CHALLENGE and get the cached PROOF. */
			if (switch_next && f.type == FMT_WIRE_HELLO &&
			    fmt_wire_cache_lookup(&cache, &f) == FMT_WIRE_CACHE_MISS) {
				switch_next = false;
				d.index++;
				memset(&cache, 0, sizeof(cache));
				if (d.index < c->devices)
					rc = make_identity(&d, c, err);
			}
			if (rc != IDP_OK || d.index >= c->devices)
				continue;
			bool proof = false;
			answer(fd, &d, c, &cache, &f, &proof, &cuts);
			if (!proof || switch_next)
				continue;
			switch_next = true;
			if (c->done_file != NULL) {
				FILE *df = fopen(c->done_file, "a");
				if (df != NULL) {
					(void)fprintf(df, "%s\n", d.info.device_id);
					(void)fclose(df);
				}
			}
		}
	}
	fmt_key_free(d.key);
	fmt_key_free(d.other);
	fmt_wire_decoder_free(dec);
	return rc;
}
