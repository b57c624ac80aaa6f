/*
 * test_station.c - enroll/station: the engine reads a device over a real pty
 * pair (posix_openpt) whose slave side runs the test device
 * (tests/device/wire_device.h) in a thread: PASS with both key types; boot
 * noise, split writes and frames cut by kernel messages recovered by early
 * resends (no timeout waited); a wrong proof, a silent device, a device
 * that stops before PROOF, a serial rule and a vanished device are FAIL
 * with a reason.
 */
#define _XOPEN_SOURCE 600
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "enroll/station.h"
#include "tests/device/wire_device.h"
#include "tests/unit/check_main.h"

struct rig {
	int master, slave;
	pthread_t th;
	struct tdev_cfg dev;
	volatile int stop;
	bool running;
	struct fmt_wire_decoder *dec;
};

static void *dev_thread(void *arg)
{
	struct rig *r = arg;
	struct idp_error err;
	if (tdev_run(r->slave, &r->dev, &r->stop, &err) != IDP_OK)
		(void)fprintf(stderr, "device: %s\n", err.msg);
	return NULL;
}

static void rig_open(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	r->master = posix_openpt(O_RDWR | O_NOCTTY);
	ck_assert_int_ge(r->master, 0);
	ck_assert_int_eq(grantpt(r->master), 0);
	ck_assert_int_eq(unlockpt(r->master), 0);
	const char *name = ptsname(r->master);
	ck_assert_ptr_nonnull(name);
	r->slave = open(name, O_RDWR | O_NOCTTY);
	ck_assert_int_ge(r->slave, 0);
	struct termios t;
	ck_assert_int_eq(tcgetattr(r->slave, &t), 0);
	cfmakeraw(&t);
	ck_assert_int_eq(tcsetattr(r->slave, TCSANOW, &t), 0);
	r->dev = (struct tdev_cfg){.id_prefix = "dev",
	                           .serial_prefix = "SN",
	                           .first = 1,
	                           .devices = 1,
	                           .key_type = FMT_KEY_ED25519};
	r->dec = fmt_wire_decoder_new();
	ck_assert_ptr_nonnull(r->dec);
}

static void rig_start(struct rig *r)
{
	ck_assert_int_eq(pthread_create(&r->th, NULL, dev_thread, r), 0);
	r->running = true;
}

static void rig_close(struct rig *r)
{
	r->stop = 1;
	if (r->running)
		(void)pthread_join(r->th, NULL);
	(void)close(r->slave);
	(void)close(r->master);
	fmt_wire_decoder_free(r->dec);
}

/* Short HELLO interval; bounds generous enough for a loaded machine (they
 * only limit how long a failing case waits; no case asserts a duration). */
static const struct enr_station_cfg fast = {.station_id = "st-1",
                                            .hello_interval_ms = 100,
                                            .hello_window_ms = 10000,
                                            .info_timeout_ms = 10000,
                                            .challenge_timeout_ms = 10000};

static void read_one(struct rig *r, const struct enr_station_cfg *c, struct enr_result *res)
{
	struct idp_error err;
	ck_assert_int_eq(enr_station_read(r->master, r->dec, c, res, &err), IDP_OK);
}

static void check_pass(enum fmt_key_type type)
{
	struct rig r;
	rig_open(&r);
	r.dev.key_type = type;
	rig_start(&r);
	struct enr_result res;
	read_one(&r, &fast, &res);
	ck_assert_msg(res.pass, "%s", res.reason);
	ck_assert_int_eq(res.stage, ENR_STAGE_DONE);
	ck_assert_str_eq(res.info.device_id, "dev-1");
	ck_assert_str_eq(res.info.serial, "SN-1");
	ck_assert_int_eq(res.info.key_type, type);
	ck_assert_uint_eq(res.resends + res.early_resends, 0);
	rig_close(&r);
}

START_TEST(test_station_pass_ed25519)
{
	check_pass(FMT_KEY_ED25519);
}
END_TEST

START_TEST(test_station_pass_p256)
{
	check_pass(FMT_KEY_P256);
}
END_TEST

/* Boot log, 7-byte writes and an INFO and a PROOF each cut by a kernel
 * line: PASS through early resends, without one timeout-driven resend
 * (the timeouts are far longer than the session). */
START_TEST(test_station_noise_split_cut_recovered_early)
{
	struct rig r;
	rig_open(&r);
	r.dev.noise = true;
	r.dev.split = true;
	r.dev.cut_first = true;
	rig_start(&r);
	struct enr_station_cfg c = fast;
	c.hello_interval_ms = 500;
	c.info_timeout_ms = 20000;
	c.challenge_timeout_ms = 20000;
	struct enr_result res;
	read_one(&r, &c, &res);
	ck_assert_msg(res.pass, "%s", res.reason);
	ck_assert_uint_eq(res.resends, 0);
	ck_assert_uint_ge(res.early_resends, 2);
	struct fmt_wire_stats st;
	fmt_wire_decoder_stats(r.dec, &st);
	ck_assert_uint_ge(st.bad_cut, 2);
	ck_assert_uint_gt(st.noise_bytes, 100);
	rig_close(&r);
}
END_TEST

START_TEST(test_station_wrong_proof_fails)
{
	struct rig r;
	rig_open(&r);
	r.dev.wrong_proof = true;
	rig_start(&r);
	struct enr_result res;
	read_one(&r, &fast, &res);
	ck_assert(!res.pass);
	ck_assert_int_eq(res.stage, ENR_STAGE_VERIFY);
	ck_assert_msg(strncmp(res.reason, "proof: ", 7) == 0, "%s", res.reason);
	rig_close(&r);
}
END_TEST

START_TEST(test_station_silent_device_fails)
{
	struct rig r;
	rig_open(&r);
	r.dev.silent = true;
	rig_start(&r);
	struct enr_station_cfg c = fast;
	c.hello_window_ms = 400;
	struct enr_result res;
	read_one(&r, &c, &res);
	ck_assert(!res.pass);
	ck_assert_int_eq(res.stage, ENR_STAGE_HELLO);
	ck_assert_str_eq(res.reason, "device: no answer to HELLO within 400 ms");
	rig_close(&r);
}
END_TEST

START_TEST(test_station_no_proof_fails_after_retries)
{
	struct rig r;
	rig_open(&r);
	r.dev.silent_challenge = true;
	rig_start(&r);
	struct enr_station_cfg c = fast;
	c.challenge_timeout_ms = 150;
	struct enr_result res;
	read_one(&r, &c, &res);
	ck_assert(!res.pass);
	ck_assert_int_eq(res.stage, ENR_STAGE_CHALLENGE);
	ck_assert_str_eq(res.reason, "device: no CHALLENGE answer after 4 attempts of 150 ms");
	ck_assert_uint_eq(res.resends, 3);
	rig_close(&r);
}
END_TEST

START_TEST(test_station_serial_rule_fails)
{
	struct rig r;
	rig_open(&r);
	rig_start(&r);
	struct fmt_idrule *rule = NULL;
	const char *spec = "pattern=SX1-[0-9]{6}";
	ck_assert_int_eq(fmt_idrule_parse(spec, strlen(spec), &rule, NULL), IDP_OK);
	struct enr_station_cfg c = fast;
	c.serial_rule = rule;
	struct enr_result res;
	read_one(&r, &c, &res);
	ck_assert(!res.pass);
	ck_assert_int_eq(res.stage, ENR_STAGE_RULES);
	ck_assert_str_eq(res.reason, "serial: \"SN-1\" does not match the product's pattern");
	fmt_idrule_free(rule);
	rig_close(&r);
}
END_TEST

START_TEST(test_station_no_serial_fails)
{
	struct rig r;
	rig_open(&r);
	r.dev.serial_prefix = "";
	rig_start(&r);
	struct enr_result res;
	read_one(&r, &fast, &res);
	ck_assert(!res.pass);
	ck_assert_int_eq(res.stage, ENR_STAGE_RULES);
	ck_assert_ptr_nonnull(strstr(res.reason, "serial: the device reports none"));
	rig_close(&r);
}
END_TEST

/* The slave side is closed (device unplugged): FAIL, marked gone. */
START_TEST(test_station_gone_fails)
{
	struct rig r;
	rig_open(&r);
	(void)close(r.slave);
	r.slave = open("/dev/null", O_RDONLY);
	struct enr_result res;
	read_one(&r, &fast, &res);
	ck_assert(!res.pass);
	ck_assert(res.gone);
	ck_assert_ptr_nonnull(strstr(res.reason, "device gone"));
	rig_close(&r);
}
END_TEST

/* enr_station_identify: who is there, from HELLO and INFO only; the
 * device is never challenged (it sends no PROOF: its done file stays
 * empty), and a full read afterwards still PASSes the same device. */
START_TEST(test_station_identify_signs_nothing)
{
	struct rig r;
	rig_open(&r);
	char done[] = "/tmp/idp-identify-XXXXXX";
	int dfd = mkstemp(done);
	ck_assert_int_ge(dfd, 0);
	r.dev.done_file = done;
	rig_start(&r);
	struct enr_result res;
	struct idp_error err;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(enr_station_identify(r.master, r.dec, &fast, &res, &err), IDP_OK);
		ck_assert(res.identified);
		ck_assert(!res.pass);
		ck_assert_str_eq(res.info.device_id, "dev-1");
		ck_assert_int_eq(res.stage, ENR_STAGE_CHALLENGE);
	}
	ck_assert_int_eq(lseek(dfd, 0, SEEK_END), 0);
	read_one(&r, &fast, &res);
	ck_assert_msg(res.pass, "%s", res.reason);
	ck_assert(res.identified);
	ck_assert_str_eq(res.info.device_id, "dev-1");
	/* The device appends to its done file just after sending PROOF: read
	 * it once the device thread has ended, not while it may still write. */
	rig_close(&r);
	ck_assert_int_gt(lseek(dfd, 0, SEEK_END), 0);
	(void)close(dfd);
	(void)unlink(done);
}
END_TEST

/* A silent line: not identified, FAIL at HELLO. */
START_TEST(test_station_identify_silent)
{
	struct rig r;
	rig_open(&r);
	r.dev.silent = true;
	rig_start(&r);
	struct enr_station_cfg c = fast;
	c.hello_window_ms = 300;
	struct enr_result res;
	struct idp_error err;
	ck_assert_int_eq(enr_station_identify(r.master, r.dec, &c, &res, &err), IDP_OK);
	ck_assert(!res.identified);
	ck_assert_int_eq(res.stage, ENR_STAGE_HELLO);
	rig_close(&r);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("station");
	TCase *tc = tcase_create("pty");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_station_pass_ed25519);
	tcase_add_test(tc, test_station_pass_p256);
	tcase_add_test(tc, test_station_noise_split_cut_recovered_early);
	tcase_add_test(tc, test_station_wrong_proof_fails);
	tcase_add_test(tc, test_station_silent_device_fails);
	tcase_add_test(tc, test_station_no_proof_fails_after_retries);
	tcase_add_test(tc, test_station_serial_rule_fails);
	tcase_add_test(tc, test_station_no_serial_fails);
	tcase_add_test(tc, test_station_gone_fails);
	tcase_add_test(tc, test_station_identify_signs_nothing);
	tcase_add_test(tc, test_station_identify_silent);
	suite_add_tcase(s, tc);
	return s;
}
