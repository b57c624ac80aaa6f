/*
 * serial-rig.c - serial-rig: the station's serial path under umockdev
 * (../shared TESTING-NOTES "Serial"): a USB serial adapter (FTDI 0403:6001,
 * serial IDPTEST01) with a /dev/ttyUSB0 node backed by a pty, whose other
 * end runs the test device (tests/device/wire_device.h). libserialport
 * cannot open a pty (TIOCMGET is ENOTTY), so the modem-control ioctls are
 * answered here when the real call says ENOTTY; everything else is the
 * real libserialport and the real engine.
 *
 *   serial-rig ports                  list ports as idprov-station ports does
 *   serial-rig read [DEVICE ARGS]     open /dev/ttyUSB0 through libserialport
 *                                     and read one device: PASS/FAIL line,
 *                                     exit 0 on PASS, 1 on FAIL
 * DEVICE ARGS: --noise --cut --split --wrong-proof --silent-challenge, or
 *   --agent AGENT STATE-DIR: the real agent (idprov-agent factory, device
 *   "usb-agent") runs on the adapter's far end instead of the test device.
 * Re-executes itself under umockdev-wrapper. Test-only, not installed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <umockdev.h>

#include "enroll/line.h"
#include "enroll/station.h"
#include "tests/device/umockdev_wrap.h"
#include "tests/device/wire_device.h"

static const char adapter[] =
        "P: /devices/pci0000:00/0000:00:14.0/usb1/1-1\n"
        "N: bus/usb/001/002\n"
        "E: DEVNAME=/dev/bus/usb/001/002\n"
        "E: DEVTYPE=usb_device\n"
        "E: SUBSYSTEM=usb\n"
        "A: idVendor=0403\nA: idProduct=6001\nA: serial=IDPTEST01\n"
        "A: manufacturer=FTDI\nA: product=FT232R USB UART\nA: busnum=1\nA: devnum=2\n"
        "\n"
        "P: /devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0\n"
        "E: DEVTYPE=usb_interface\nE: SUBSYSTEM=usb\nE: DRIVER=ftdi_sio\n"
        "A: bInterfaceNumber=00\n"
        "\n"
        "P: /devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/ttyUSB0\n"
        "E: SUBSYSTEM=usb-serial\nE: DRIVER=ftdi_sio\nL: device=../../1-1:1.0\n"
        "\n"
        "P: /devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/ttyUSB0/tty/ttyUSB0\n"
        "N: ttyUSB0\nL: device=../../../ttyUSB0\n"
        "E: DEVNAME=/dev/ttyUSB0\nE: SUBSYSTEM=tty\nE: MAJOR=188\nE: MINOR=0\n";

/* Modem-control requests a pty refuses: answered as an adapter would. */
int ioctl(int fd, unsigned long req, ...);
int ioctl(int fd, unsigned long req, ...)
{
	static int (*next)(int, unsigned long, ...);
	if (next == NULL) {
		void *sym = dlsym(RTLD_NEXT, "ioctl");
		memcpy(&next, &sym, sizeof(next)); /* POSIX: dlsym yields functions too */
	}
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int r = next(fd, req, arg);
	if (r < 0 && errno == ENOTTY &&
	    (req == TIOCMGET || req == TIOCMSET || req == TIOCMBIS || req == TIOCMBIC)) {
		if (req == TIOCMGET)
			*(int *)arg = TIOCM_DTR | TIOCM_RTS | TIOCM_CTS | TIOCM_DSR;
		return 0;
	}
	return r;
}

struct rig {
	int master;
	struct tdev_cfg dev;
	volatile int stop;
	const char *agent, *agent_state; /* --agent: run this instead of the test device */
};

/* The real agent on the adapter's far end: stdin and stdout are the pty
 * master, and it runs outside the testbed (no umockdev preload). */
static pid_t agent_start(const struct rig *r)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	(void)unsetenv("LD_PRELOAD");
	if (dup2(r->master, STDIN_FILENO) < 0 || dup2(r->master, STDOUT_FILENO) < 0)
		_exit(3);
	execl(r->agent, r->agent, "--state-dir", r->agent_state, "--id", "usb-agent", "--mac",
	      "02:1a:2c:00:02:01", "--serial", "SN-U1", "factory", (char *)NULL);
	_exit(3);
}

static void *dev_thread(void *arg)
{
	struct rig *r = arg;
	if (tdev_run(r->master, &r->dev, &r->stop, NULL) != IDP_OK)
		fprintf(stderr, "serial-rig: device failed\n");
	return NULL;
}

static void print_port(void *arg, const struct enr_port_info *p)
{
	(void)arg;
	if (p->usb)
		printf("%s  usb %04x:%04x  serial %s  %s %s\n", p->name, p->vid, p->pid, p->serial,
		       p->manufacturer, p->product);
	else
		printf("%s  %s\n", p->name, p->description);
}

int main(int argc, char **argv)
{
	tdev_umockdev_wrap("serial-rig", argc, argv);
	if (argc < 2)
		return 2;
	UMockdevTestbed *tb = umockdev_testbed_new();
	GError *ge = NULL;
	if (!umockdev_testbed_add_from_string(tb, adapter, &ge)) {
		fprintf(stderr, "serial-rig: %s\n", ge->message);
		return 3;
	}
	struct idp_error err = {0};
	if (strcmp(argv[1], "ports") == 0)
		return enr_line_ports(print_port, NULL, &err) == IDP_OK ? 0 : 3;
	struct rig r;
	memset(&r, 0, sizeof(r));
	r.master = umockdev_testbed_get_dev_fd(tb, "/dev/ttyUSB0");
	r.dev = (struct tdev_cfg){.id_prefix = "usb",
	                          .serial_prefix = "SN",
	                          .first = 1,
	                          .devices = 1,
	                          .key_type = FMT_KEY_P256};
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--noise") == 0)
			r.dev.noise = true;
		else if (strcmp(argv[i], "--cut") == 0)
			r.dev.cut_first = true;
		else if (strcmp(argv[i], "--split") == 0)
			r.dev.split = true;
		else if (strcmp(argv[i], "--wrong-proof") == 0)
			r.dev.wrong_proof = true;
		else if (strcmp(argv[i], "--silent-challenge") == 0)
			r.dev.silent_challenge = true;
		else if (strcmp(argv[i], "--agent") == 0 && i + 2 < argc) {
			r.agent = argv[++i];
			r.agent_state = argv[++i];
		} else
			return 2;
	}
	struct enr_line l;
	char pty[ENR_PATH_MAX + 1];
	if (r.master < 0 || enr_line_open("/dev/ttyUSB0", 115200, &l, pty, &err) != IDP_OK) {
		fprintf(stderr, "serial-rig: %s\n", err.msg);
		return 3;
	}
	printf("opened /dev/ttyUSB0 %s\n", l.sp != NULL ? "through libserialport" : "directly");
	pthread_t th;
	pid_t agent = -1;
	if (r.agent != NULL ? (agent = agent_start(&r)) < 0
	                    : pthread_create(&th, NULL, dev_thread, &r) != 0)
		return 3;
	struct fmt_wire_decoder *dec = fmt_wire_decoder_new();
	struct enr_station_cfg c = {.station_id = "st-1",
	                            .hello_interval_ms = 100,
	                            .hello_window_ms = 5000,
	                            .info_timeout_ms = 2000,
	                            .challenge_timeout_ms = 300};
	static struct enr_result res;
	enum idp_err rc = enr_station_read(l.fd, dec, &c, &res, &err);
	r.stop = 1;
	if (agent > 0) {
		(void)kill(agent, SIGTERM);
		(void)waitpid(agent, NULL, 0);
	} else {
		pthread_join(th, NULL);
	}
	enr_line_close(&l);
	fmt_wire_decoder_free(dec);
	g_object_unref(tb);
	if (rc != IDP_OK) {
		fprintf(stderr, "serial-rig: %s\n", err.msg);
		return 3;
	}
	if (res.pass)
		printf("PASS %s %s resends %u early %u\n", res.info.device_id, res.info.serial,
		       res.resends, res.early_resends);
	else
		printf("FAIL %s\n", res.reason);
	return res.pass ? 0 : 1;
}
