/*
 * test_agent_factory.c - the agent's factory mode (device-agent/agent.h,
 * agt_factory_serve) over a real pty pair: the device runs in a thread on
 * the pty's slave, opened with agt_console_open (termios raw); the station
 * side is written here from formats/wire.h on the master. Boot-log noise is
 * written onto the same console in both directions. Checks: a session's
 * proof verifies against the INFO and the station's own challenge; one proof
 * per HELLO session; a repeated request is answered from the cache (no second
 * signature); a reused seq is refused; corrupted frames are skipped; the rate
 * limit; a sealed device signs nothing; requests a station sent before the
 * agent opened its console are flushed, never answered late. And the same
 * engine on two pipes standing in for the bulk OUT and IN endpoints of a USB
 * vendor interface (FunctionFS ep1/ep2 are plain file descriptors too).
 */
#define _GNU_SOURCE /* posix_openpt, ptsname */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <termios.h>

#include <openssl/rand.h>

#include "device-agent/agent.h"
#include "formats/wire.h"
#include "tests/unit/check_main.h"

struct rig {
	char dir[64];
	struct agt_ctx *ctx;
	int master, slave, noise;
	int dev_in, dev_out; /* the device's ends: the console (slave) or the endpoints */
	int st_rd, st_wr;    /* the station's ends: the pty master or the endpoints */
	pthread_t th;
	enum idp_err served;
	struct fmt_wire_decoder *dec;
	uint16_t seq;
};

static void *serve(void *arg)
{
	struct rig *r = arg;
	r->served = agt_factory_serve(r->ctx, r->dev_in, r->dev_out, NULL);
	return NULL;
}

/* Start the device on a new pty; stale[0..stale_len) is what the station
 * sent before the agent opened the console (queued on the tty). */
static void rig_start_stale(struct rig *r, int64_t interval_ms, const uint8_t *stale,
                            size_t stale_len);

static void rig_start(struct rig *r, int64_t interval_ms)
{
	rig_start_stale(r, interval_ms, NULL, 0);
}

/* Queue stale[0..len) on the tty behind master as input the device has not
 * read: through a raw, no-echo slave fd kept open meanwhile (*keep), and
 * wait until the tty says it is there. */
static void queue_stale(int master, const char *name, const uint8_t *stale, size_t len, int *keep)
{
	*keep = open(name, O_RDWR | O_NOCTTY);
	ck_assert_int_ge(*keep, 0);
	struct termios t;
	ck_assert_int_eq(tcgetattr(*keep, &t), 0);
	cfmakeraw(&t);
	ck_assert_int_eq(tcsetattr(*keep, TCSANOW, &t), 0);
	ck_assert_int_eq(write(master, stale, len), (ssize_t)len);
	struct pollfd p = {.fd = *keep, .events = POLLIN};
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
}

/* A fresh agent in a new state directory; the transport is the caller's. */
static void rig_open_agent(struct rig *r, int64_t interval_ms)
{
	memset(r, 0, sizeof(*r));
	r->master = r->slave = r->noise = -1;
	(void)snprintf(r->dir, sizeof(r->dir), "/tmp/agt-factory-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(r->dir));
	const struct agt_config cfg = {.state_dir = r->dir,
	                               .device_id = "dev-f1",
	                               .mac = "02:00:5e:00:f0:01",
	                               .serial = "SF-0001",
	                               .fw_version = "fw 1.2",
	                               .proof_interval_ms = interval_ms};
	struct idp_error err = {0};
	ck_assert_msg(agt_open(&cfg, &r->ctx, &err) == IDP_OK, "%s", err.msg);
	r->dec = fmt_wire_decoder_new();
	ck_assert_ptr_nonnull(r->dec);
	ck_assert_int_eq(RAND_bytes((unsigned char *)&r->seq, sizeof(r->seq)), 1);
}

static void rig_start_stale(struct rig *r, int64_t interval_ms, const uint8_t *stale,
                            size_t stale_len)
{
	rig_open_agent(r, interval_ms);
	struct idp_error err = {0};
	r->master = posix_openpt(O_RDWR | O_NOCTTY);
	ck_assert_int_ge(r->master, 0);
	ck_assert_int_eq(grantpt(r->master), 0);
	ck_assert_int_eq(unlockpt(r->master), 0);
	const char *name = ptsname(r->master);
	ck_assert_ptr_nonnull(name);
	int keep = -1;
	if (stale != NULL)
		queue_stale(r->master, name, stale, stale_len, &keep);
	ck_assert_msg(agt_console_open(name, 115200, &r->slave, &err) == IDP_OK, "%s", err.msg);
	if (keep >= 0)
		(void)close(keep);
	/* A second writer on the device's console: the boot log. */
	r->noise = open(name, O_WRONLY | O_NOCTTY);
	ck_assert_int_ge(r->noise, 0);
	r->dev_in = r->dev_out = r->slave;
	r->st_rd = r->st_wr = r->master;
	ck_assert_int_eq(pthread_create(&r->th, NULL, serve, r), 0);
}

/* Start the device on two pipes standing in for a USB vendor interface's
 * bulk endpoints: OUT (host to device) and IN (device to host). */
static void rig_start_endpoints(struct rig *r)
{
	rig_open_agent(r, 1);
	int out_ep[2], in_ep[2];
	ck_assert_int_eq(pipe2(out_ep, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(in_ep, O_CLOEXEC), 0);
	r->dev_in = out_ep[0];
	r->st_wr = out_ep[1];
	r->st_rd = in_ep[0];
	r->dev_out = in_ep[1];
	ck_assert_int_eq(pthread_create(&r->th, NULL, serve, r), 0);
}

static void rig_stop(struct rig *r)
{
	agt_stop(r->ctx);
	ck_assert_int_eq(pthread_join(r->th, NULL), 0);
	ck_assert_int_eq(r->served, IDP_OK);
	if (r->master >= 0) {
		close(r->noise);
		close(r->slave);
		close(r->master);
	} else {
		close(r->dev_in);
		close(r->dev_out);
		close(r->st_rd);
		close(r->st_wr);
	}
	fmt_wire_decoder_free(r->dec);
	agt_close(r->ctx);
	char cmd[128];
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void put(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		ck_assert_int_gt(w, 0);
		p += w;
		len -= (size_t)w;
	}
}

static void boot_noise(const struct rig *r)
{
	static const char log[] = "[    1.234567] usb 1-1: new high-speed USB device\r\n"
	                          "systemd[1]: Started Journal Service.\n~IDP1:not-a-frame\n";
	put(r->noise, log, sizeof(log) - 1);
}

/* Read the next frame from the device (at most 5 s); false on timeout. */
static bool next_frame(struct rig *r, struct fmt_wire_frame *f)
{
	static uint8_t pend[8192];
	static size_t plen;
	for (int rounds = 0; rounds < 50; rounds++) {
		while (plen > 0) {
			size_t used = 0;
			bool got = false;
			ck_assert_int_eq(fmt_wire_feed(r->dec, pend, plen, &used, f, &got, NULL), IDP_OK);
			memmove(pend, pend + used, plen - used);
			plen -= used;
			if (got)
				return true;
		}
		struct pollfd p = {.fd = r->st_rd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = read(r->st_rd, pend, sizeof(pend));
		ck_assert_int_gt(n, 0);
		plen = (size_t)n;
	}
	return false;
}

/* Send m under seq (NULL line: encode m; else send line as is), return the
 * parsed answer. */
static void ask(struct rig *r, const uint8_t *line, size_t len, struct fmt_wire_msg *ans,
                uint8_t *raw, size_t *raw_len)
{
	put(r->st_wr, line, len);
	struct fmt_wire_frame f;
	ck_assert_msg(next_frame(r, &f), "no answer from the device");
	if (raw != NULL) {
		ck_assert_int_eq(fmt_wire_encode(f.type, f.seq, f.payload, f.len, raw,
		                                 FMT_WIRE_LINE_MAX, raw_len, NULL),
		                 IDP_OK);
	}
	struct idp_error err = {0};
	ck_assert_msg(fmt_wire_msg_parse(&f, ans, &err) == IDP_OK, "%s", err.msg);
	ck_assert_int_eq(ans->seq, f.seq);
}

static size_t encode(const struct fmt_wire_msg *m, uint8_t line[static FMT_WIRE_LINE_MAX])
{
	size_t len = 0;
	ck_assert_int_eq(fmt_wire_msg_encode(m, line, FMT_WIRE_LINE_MAX, &len, NULL), IDP_OK);
	return len;
}

static void hello(struct rig *r)
{
	struct fmt_wire_msg m = {.type = FMT_WIRE_HELLO, .seq = ++r->seq};
	m.u.hello.role = FMT_WIRE_ROLE_STATION;
	m.u.hello.versions = 1u << 1;
	uint8_t line[FMT_WIRE_LINE_MAX];
	struct fmt_wire_msg a;
	ask(r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_HELLO_ACK);
	ck_assert_int_eq(a.u.hello.role, FMT_WIRE_ROLE_DEVICE);
	ck_assert_int_eq(a.seq, r->seq);
}

static void info(struct rig *r, struct fmt_wire_info *out)
{
	struct fmt_wire_msg m = {.type = FMT_WIRE_INFO_REQ, .seq = ++r->seq};
	uint8_t line[FMT_WIRE_LINE_MAX];
	struct fmt_wire_msg a;
	ask(r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_INFO);
	*out = a.u.info;
}

static void challenge_msg(struct rig *r, struct fmt_wire_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = FMT_WIRE_CHALLENGE;
	m->seq = ++r->seq;
	ck_assert_int_eq(RAND_bytes(m->u.challenge.nonce, FMT_WIRE_NONCE_LEN), 1);
	(void)snprintf(m->u.challenge.station_id, sizeof(m->u.challenge.station_id), "station-01");
	m->u.challenge.station_id_len = strlen(m->u.challenge.station_id);
}

/* A fresh challenge (*m) answered by a PROOF (*a) that verifies against in. */
static void challenge_and_verify(struct rig *r, const struct fmt_wire_info *in,
                                 struct fmt_wire_msg *m, struct fmt_wire_msg *a)
{
	challenge_msg(r, m);
	uint8_t line[FMT_WIRE_LINE_MAX];
	ask(r, line, encode(m, line), a, NULL, NULL);
	ck_assert_int_eq(a->type, FMT_WIRE_PROOF);
	struct idp_error err = {0};
	ck_assert_msg(fmt_wire_proof_verify(&m->u.challenge, in, &a->u.proof, &err) == IDP_OK,
	              "%s", err.msg);
}

START_TEST(test_factory_session_proof_verifies_with_noise)
{
	struct rig r;
	rig_start(&r, 1);
	/* Noise towards the device too, before and inside the session. */
	put(r.master, "garbage before hello\n~IDP1:AAAA\n", 32);
	boot_noise(&r);
	hello(&r);
	boot_noise(&r);
	struct fmt_wire_info in;
	info(&r, &in);
	ck_assert_str_eq(in.device_id, "dev-f1");
	ck_assert_str_eq(in.serial, "SF-0001");
	char *pem = NULL;
	size_t len = 0;
	ck_assert_int_eq(agt_public_pem(r.ctx, &pem, &len, NULL), IDP_OK);
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_parse_public_pem((const uint8_t *)pem, len, &k, NULL), IDP_OK);
	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t spki_len = 0;
	ck_assert_int_eq(fmt_key_spki_der(k, spki, &spki_len, NULL), IDP_OK);
	ck_assert_uint_eq(spki_len, in.spki_len);
	ck_assert_mem_eq(spki, in.spki, spki_len);
	boot_noise(&r);
	struct fmt_wire_msg m, a;
	challenge_and_verify(&r, &in, &m, &a);
	/* Another station ID than the one challenged must not verify. */
	struct fmt_wire_challenge other = m.u.challenge;
	other.station_id[0] = 'X';
	ck_assert_int_eq(fmt_wire_proof_verify(&other, &in, &a.u.proof, NULL), IDP_E_VERIFY);
	struct fmt_wire_stats st;
	fmt_wire_decoder_stats(r.dec, &st);
	ck_assert_uint_gt(st.noise_bytes, 100); /* the boot log really shared the line */
	free(pem);
	fmt_key_free(k);
	rig_stop(&r);
}
END_TEST

START_TEST(test_factory_one_proof_per_session)
{
	struct rig r;
	rig_start(&r, 1);
	struct fmt_wire_msg m, a;
	uint8_t line[FMT_WIRE_LINE_MAX];
	challenge_msg(&r, &m);
	ask(&r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_ERROR); /* no HELLO yet: no proof */
	hello(&r);
	challenge_msg(&r, &m);
	ask(&r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_PROOF);
	challenge_msg(&r, &m);
	ask(&r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_ERROR);
	ck_assert_int_eq(a.u.error.code, FMT_WIRE_ERR_BUSY);
	struct timespec ts = {0, 20000000L};
	(void)nanosleep(&ts, NULL); /* past the 1 ms interval */
	hello(&r);
	challenge_msg(&r, &m);
	ask(&r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_PROOF);
	rig_stop(&r);
}
END_TEST

START_TEST(test_factory_replay_and_seq_reuse)
{
	struct rig r;
	rig_start(&r, 1);
	hello(&r);
	struct fmt_wire_msg m, a, a2;
	uint8_t line[FMT_WIRE_LINE_MAX], raw1[FMT_WIRE_LINE_MAX], raw2[FMT_WIRE_LINE_MAX];
	size_t l1 = 0, l2 = 0;
	challenge_msg(&r, &m);
	size_t len = encode(&m, line);
	ask(&r, line, len, &a, raw1, &l1);
	ck_assert_int_eq(a.type, FMT_WIRE_PROOF);
	/* The identical line again (a station retry): the same bytes back. */
	ask(&r, line, len, &a2, raw2, &l2);
	ck_assert_uint_eq(l1, l2);
	ck_assert_mem_eq(raw1, raw2, l1);
	/* Same seq, another nonce: refused, nothing signed. */
	ck_assert_int_eq(RAND_bytes(m.u.challenge.nonce, FMT_WIRE_NONCE_LEN), 1);
	ask(&r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_ERROR);
	ck_assert_int_eq(a.u.error.code, FMT_WIRE_ERR_SEQ_REUSED);
	rig_stop(&r);
}
END_TEST

START_TEST(test_factory_corrupted_frames_skipped)
{
	struct rig r;
	rig_start(&r, 1);
	struct fmt_wire_msg m = {.type = FMT_WIRE_HELLO, .seq = ++r.seq};
	m.u.hello.role = FMT_WIRE_ROLE_STATION;
	m.u.hello.versions = 1u << 1;
	uint8_t line[FMT_WIRE_LINE_MAX];
	size_t len = encode(&m, line);
	/* Flip one character (CRC fails), then truncate one: no answer to
	 * either; the good HELLO after them is answered. */
	line[FMT_WIRE_MARKER_LEN + 3] ^= 0x01;
	put(r.master, line, len);
	line[FMT_WIRE_MARKER_LEN + 3] ^= 0x01;
	put(r.master, line, len / 2);
	put(r.master, "\n", 1);
	hello(&r);
	rig_stop(&r);
}
END_TEST

START_TEST(test_factory_stale_input_flushed_on_open)
{
	/* A HELLO and a CHALLENGE from an earlier attempt wait on the tty when
	 * the agent starts. Answered late, they would spend the proof the rate
	 * limit allows (one a minute here) and the station would see answers
	 * under seqs it no longer waits for. */
	uint8_t stale[2 * FMT_WIRE_LINE_MAX];
	size_t n = 0;
	struct fmt_wire_msg m = {.type = FMT_WIRE_HELLO, .seq = 0x7000};
	m.u.hello.role = FMT_WIRE_ROLE_STATION;
	m.u.hello.versions = 1u << 1;
	n += encode(&m, stale);
	memset(&m, 0, sizeof(m));
	m.type = FMT_WIRE_CHALLENGE;
	m.seq = 0x7001;
	(void)snprintf(m.u.challenge.station_id, sizeof(m.u.challenge.station_id), "station-00");
	m.u.challenge.station_id_len = strlen(m.u.challenge.station_id);
	n += encode(&m, stale + n);
	struct rig r;
	rig_start_stale(&r, 60000, stale, n);
	r.seq = 0x1000;
	hello(&r); /* its answer is the first frame: nothing stale was answered */
	struct fmt_wire_msg c, a;
	uint8_t line[FMT_WIRE_LINE_MAX];
	challenge_msg(&r, &c);
	ask(&r, line, encode(&c, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_PROOF); /* not BUSY: no proof was spent */
	rig_stop(&r);
}
END_TEST

START_TEST(test_factory_rate_limited)
{
	struct rig r;
	rig_start(&r, 60000);
	struct fmt_wire_msg m, a;
	uint8_t line[FMT_WIRE_LINE_MAX];
	hello(&r);
	challenge_msg(&r, &m);
	ask(&r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_PROOF);
	hello(&r);
	challenge_msg(&r, &m);
	ask(&r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_ERROR);
	ck_assert_int_eq(a.u.error.code, FMT_WIRE_ERR_BUSY);
	ck_assert_str_eq(a.u.error.text, "challenge: rate limited");
	rig_stop(&r);
}
END_TEST

START_TEST(test_factory_sealed_signs_nothing)
{
	struct rig r;
	rig_start(&r, 1);
	ck_assert_int_eq(agt_seal(r.ctx, NULL), IDP_OK);
	hello(&r);
	struct fmt_wire_info in;
	info(&r, &in); /* identity is still readable */
	struct fmt_wire_msg m, a;
	uint8_t line[FMT_WIRE_LINE_MAX];
	challenge_msg(&r, &m);
	ask(&r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_ERROR);
	ck_assert_str_eq(a.u.error.text, "challenge: device is sealed");
	struct agt_status st;
	agt_status(r.ctx, &st);
	ck_assert(st.sealed);
	rig_stop(&r);
}
END_TEST

/* The engine behind a USB vendor interface: the station's frames arrive on
 * the OUT endpoint and the answers leave on the IN endpoint, two descriptors
 * and no tty (docs/firmware-integrator.md, "USB vendor interface"). The
 * session proof verifies; a second challenge in the session is refused. */
START_TEST(test_factory_over_usb_endpoints)
{
	struct rig r;
	rig_start_endpoints(&r);
	hello(&r);
	struct fmt_wire_info in;
	info(&r, &in);
	ck_assert_str_eq(in.device_id, "dev-f1");
	struct fmt_wire_msg m, a;
	challenge_and_verify(&r, &in, &m, &a);
	uint8_t line[FMT_WIRE_LINE_MAX];
	challenge_msg(&r, &m);
	ask(&r, line, encode(&m, line), &a, NULL, NULL);
	ck_assert_int_eq(a.type, FMT_WIRE_ERROR);
	ck_assert_int_eq(a.u.error.code, FMT_WIRE_ERR_BUSY);
	rig_stop(&r);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("agent_factory");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_factory_session_proof_verifies_with_noise);
	tcase_add_test(tc, test_factory_one_proof_per_session);
	tcase_add_test(tc, test_factory_replay_and_seq_reuse);
	tcase_add_test(tc, test_factory_corrupted_frames_skipped);
	tcase_add_test(tc, test_factory_stale_input_flushed_on_open);
	tcase_add_test(tc, test_factory_rate_limited);
	tcase_add_test(tc, test_factory_sealed_signs_nothing);
	tcase_add_test(tc, test_factory_over_usb_endpoints);
	suite_add_tcase(s, tc);
	return s;
}
