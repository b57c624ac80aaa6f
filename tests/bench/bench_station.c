/*
 * bench_station.c - the station's two costs that the line feels.
 * 1. Journal: enr_batch_add (duplicate check, encode, write, fdatasync)
 *    against a raw write + fdatasync loop of entries of the same size on the
 *    same file system, alternated; ratio goal >= 0.8 (issue 12).
 * 2. Recovery: one device session over a pty when the INFO and the PROOF
 *    are each cut by a kernel message, with the early resend (a damaged
 *    frame triggers the identical resend at once) and without (the resend
 *    waits for the 1 s / 5 s timeouts), against a clean session.
 * Prints figures and ratios; exits non-zero only when an operation fails.
 */
#include <fcntl.h>
#include <pthread.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "enroll/batch.h"
#include "enroll/station.h"
#include "tests/device/wire_device.h"

#define ROUNDS 5
#define PER    40 /* appends per round */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void device(unsigned i, struct fmt_wire_info *in, uint8_t nonce[32],
                   struct fmt_wire_proof *p)
{
	memset(in, 0, sizeof(*in));
	in->device_id_len = (size_t)snprintf(in->device_id, sizeof(in->device_id), "dev-%u", i);
	in->serial_len = (size_t)snprintf(in->serial, sizeof(in->serial), "SN-%u", i);
	const uint8_t mac[6] = {2, 0, 0, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
	memcpy(in->mac, mac, 6);
	in->key_type = FMT_KEY_P256;
	in->spki_len = 91;
	memset(in->spki, 0x30, 91);
	memcpy(in->spki + 80, &i, sizeof(i));
	memset(nonce, 7, 32);
	memset(p->sig, 9, sizeof(p->sig));
}

static int bench_journal(const char *dir)
{
	struct enr_batch *b = NULL;
	bool resumed = false;
	struct idp_error err;
	if (enr_batch_open(dir, "bench", "st-1", "bench", 0, &b, &resumed, &err) != IDP_OK) {
		fprintf(stderr, "bench_station: %s\n", err.msg);
		return 1;
	}
	char raw[4200];
	snprintf(raw, sizeof(raw), "%s/raw", dir);
	int fd = open(raw, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		return 1;
	/* The raw loop writes entries of exactly the size ours encode. */
	uint8_t entry[FMT_JOURNAL_ENTRY_MAX];
	size_t entry_len = 0;
	struct fmt_journal_entry e = {.type = FMT_JOURNAL_DEVICE,
	                              .key_type = FMT_KEY_P256,
	                              .spki_len = 91,
	                              .mac = {2, 0, 0, 0, 0, 1}};
	snprintf(e.id, sizeof(e.id), "dev-%u", 1000000u);
	snprintf(e.serial, sizeof(e.serial), "SN-%u", 1000000u);
	if (fmt_journal_encode(&e, entry, &entry_len, NULL) != IDP_OK)
		return 1;
	double ours = 0, ceil = 0;
	unsigned next = 0;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_s();
		for (int k = 0; k < PER; k++, next++) {
			struct fmt_wire_info in;
			uint8_t nonce[32];
			struct fmt_wire_proof p;
			device(next + 1000000, &in, nonce, &p);
			if (enr_batch_add(b, &in, nonce, &p, 0, &err) != IDP_OK) {
				fprintf(stderr, "bench_station: %s\n", err.msg);
				return 1;
			}
		}
		double t1 = now_s();
		for (int k = 0; k < PER; k++)
			if (write(fd, entry, entry_len) != (ssize_t)entry_len || fdatasync(fd) != 0)
				return 1;
		double t2 = now_s();
		ours += t1 - t0;
		ceil += t2 - t1;
	}
	close(fd);
	enr_batch_free(b);
	double n = (double)ROUNDS * PER;
	printf("journal: %.0f appends/s with fdatasync; raw write+fdatasync of %zu bytes: %.0f/s; "
	       "ratio %.2f (goal >= 0.8)\n",
	       n / ours, entry_len, n / ceil, ceil / ours);
	return 0;
}

struct rig {
	int master, slave;
	struct tdev_cfg dev;
	volatile int stop;
};

static void *dev_thread(void *arg)
{
	struct rig *r = arg;
	if (tdev_run(r->slave, &r->dev, &r->stop, NULL) != IDP_OK)
		fprintf(stderr, "bench_station: device failed\n");
	return NULL;
}

/* Milliseconds of one session; -1 on failure. */
static double session(bool cut, bool early)
{
	struct rig r;
	memset(&r, 0, sizeof(r));
	if (openpty(&r.master, &r.slave, NULL, NULL, NULL) != 0)
		return -1;
	struct termios t;
	tcgetattr(r.slave, &t);
	cfmakeraw(&t);
	tcsetattr(r.slave, TCSANOW, &t);
	r.dev = (struct tdev_cfg){.id_prefix = "dev",
	                          .serial_prefix = "SN",
	                          .first = 1,
	                          .devices = 1,
	                          .key_type = FMT_KEY_P256,
	                          .cut_first = cut};
	pthread_t th;
	if (pthread_create(&th, NULL, dev_thread, &r) != 0)
		return -1;
	struct fmt_wire_decoder *dec = fmt_wire_decoder_new();
	struct enr_station_cfg c = {
	        .station_id = "st-1", .hello_interval_ms = 50, .no_early_resend = !early};
	static struct enr_result res;
	struct idp_error err;
	/* A HELLO_ACK first, so that only INFO and PROOF are measured. */
	enum idp_err rc = enr_station_read(r.master, dec, &c, &res, &err);
	r.stop = 1;
	pthread_join(th, NULL);
	close(r.master);
	close(r.slave);
	fmt_wire_decoder_free(dec);
	if (rc != IDP_OK || !res.pass) {
		fprintf(stderr, "bench_station: session failed: %s\n", res.reason);
		return -1;
	}
	return (double)res.elapsed_ms;
}

int main(void)
{
	char dir[] = "/tmp/bench_station.XXXXXX";
	if (mkdtemp(dir) == NULL)
		return 1;
	int rc = bench_journal(dir);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		rc = 1;
	double clean = session(false, true), early = session(true, true),
	       late = session(true, false);
	if (clean < 0 || early < 0 || late < 0)
		return 1;
	printf("recovery: clean session %.0f ms; INFO and PROOF each cut by a kernel message: "
	       "%.0f ms with the early resend, %.0f ms waiting for the timeouts (%.1fx)\n",
	       clean, early, late, early > 0 ? late / early : 0.0);
	return rc;
}
