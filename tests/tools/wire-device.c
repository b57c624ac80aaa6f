/*
 * wire-device.c - wire-device: the test device side on a tty path, for
 * the station's shell tests (tests/device/wire_device.h). Not installed.
 *
 *   wire-device --tty PATH [--prefix P] [--first N] [--devices N]
 *               [--type ed25519|p256] [--noise] [--split] [--cut]
 *               [--wrong-proof] [--silent] [--done FILE]
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "tests/device/wire_device.h"

static volatile sig_atomic_t stop_sig;
static volatile int stop_flag;

static void on_term(int sig)
{
	(void)sig;
	stop_flag = 1;
	stop_sig = 1;
}

int main(int argc, char **argv)
{
	struct tdev_cfg c = {.id_prefix = "dev",
	                     .serial_prefix = "SN",
	                     .first = 1,
	                     .devices = 1,
	                     .key_type = FMT_KEY_ED25519};
	const char *tty = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--tty") == 0 && v)
			tty = argv[++i];
		else if (strcmp(a, "--prefix") == 0 && v)
			c.id_prefix = argv[++i];
		else if (strcmp(a, "--first") == 0 && v)
			c.first = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(a, "--devices") == 0 && v)
			c.devices = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(a, "--type") == 0 && v)
			c.key_type =
			        strcmp(argv[++i], "p256") == 0 ? FMT_KEY_P256 : FMT_KEY_ED25519;
		else if (strcmp(a, "--noise") == 0)
			c.noise = true;
		else if (strcmp(a, "--split") == 0)
			c.split = true;
		else if (strcmp(a, "--cut") == 0)
			c.cut_first = true;
		else if (strcmp(a, "--wrong-proof") == 0)
			c.wrong_proof = true;
		else if (strcmp(a, "--silent") == 0)
			c.silent = true;
		else if (strcmp(a, "--done") == 0 && v)
			c.done_file = argv[++i];
		else {
			(void)fprintf(stderr, "wire-device: bad argument \"%s\"\n", a);
			return 2;
		}
	}
	if (tty == NULL) {
		(void)fprintf(stderr, "wire-device: --tty is required\n");
		return 2;
	}
	int fd = open(tty, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		perror(tty);
		return 1;
	}
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		(void)tcsetattr(fd, TCSANOW, &t);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	struct idp_error err = {0};
	enum idp_err rc = tdev_run(fd, &c, &stop_flag, &err);
	(void)close(fd);
	if (rc != IDP_OK) {
		(void)fprintf(stderr, "wire-device: %s\n", err.msg);
		return 1;
	}
	return 0;
}
