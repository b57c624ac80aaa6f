/*
 * usb-rig.c - usb-rig: USB devices for the station under umockdev
 * (../shared TESTING-NOTES "USB"). A testbed starts empty; commands plug
 * in a USB device (vendor 1d50, product 6189, a vendor interface 0 with
 * bulk endpoints 0x81 IN and 0x01 OUT) and unplug it, with uevents, so
 * libusb's hotplug sees it arrive and leave. This process answers the
 * device's usbdevfs ioctls itself (libumockdev's ioctl handler): bulk OUT
 * bytes go to the test device (tests/device/wire_device.h) on a socket
 * pair, its answers complete the pending bulk IN transfers, and string
 * descriptors are answered on endpoint 0. The program under test is the
 * real idprov-station, run as a child inside the testbed.
 *
 *   usb-rig CTL -- PROGRAM [ARGS...]
 * CTL is a FIFO of commands, one a line:
 *   plug N [wrong-proof] [silent-challenge] [unplug-at-challenge] [noise]
 *          device "usb-N", serial "SN-N", USB serial "IDPUSB<N>"
 *   agent N AGENT STATE
 *          the real agent (AGENT factory --console, device "agt-uN", serial
 *          "SN-UN", state directory STATE, log STATE.log) behind the
 *          endpoints, on a pty the rig bridges
 *   unplug  the device plugged in (its pending transfers end NO_DEVICE)
 *   quit    SIGTERM to the program
 * The rig exits with the program's exit status (3 on its own failure) and
 * prints "rig: ..." lines on stderr: "rig: usb-N session K" when the station
 * opens its Kth session with the device (a HELLO under a new seq), "rig:
 * unplugged at CHALLENGE".
 * USB_RIG_DEBUG=1 also prints each IN chunk and each ioctl it refuses.
 *
 * What is emulated, and how it differs from a kernel (umockdev 0.17,
 * libusb 1.0.26): the descriptors come from sysfs ("descriptors"); CLAIM,
 * RELEASE and DISCONNECT_CLAIM succeed, GET_CAPABILITIES and the driver
 * ioctls are refused (libusb falls back); SUBMITURB/REAPURBNDELAY/
 * DISCARDURB are served from queues, any number of URBs in flight. A
 * testbed node always polls writable, so an empty reap is answered after
 * 1 ms (a kernel signals completions by POLLOUT). Unplugging completes the
 * pending URBs with -ESHUTDOWN and answers later ioctls ENODEV (libusb
 * reports LIBUSB_TRANSFER_NO_DEVICE either way; a kernel also raises
 * POLLERR), then removes the device with a "remove" uevent.
 * Re-executes itself under umockdev-wrapper. Test-only, not installed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <linux/usbdevice_fs.h>

#include <glib-unix.h>
#include <umockdev.h>

#include "formats/wire.h"
#include "tests/device/umockdev_wrap.h"
#include "tests/device/wire_device.h"

struct rdev {
	unsigned n, devnum;
	char syspath[128], devnode[64];
	bool plugged, unplug_at_challenge;
	unsigned sessions; /* HELLOs under a new seq: the station's sessions */
	uint16_t hello_seq;
	int fd;  /* ours; the test device has the other end */
	int tfd; /* the test device's end */
	pthread_t th;
	pid_t agent; /* the real agent behind the endpoints, or 0 */
	volatile int stop;
	struct tdev_cfg cfg;
	GQueue pending_in; /* UMockdevIoctlData of submitted IN URBs */
	GQueue done;       /* completed URBs, to be reaped */
	GSource *watch; /* on the device's data, while an IN URB waits */
	struct fmt_wire_decoder *dec;
	UMockdevIoctlBase *handler;
};

static UMockdevTestbed *tb;
static struct rdev *cur;
static GMainLoop *loop;
static pid_t child = -1;
static int child_status = 3 << 8;
static unsigned plugs;

static void unplug(void);

/* Set the status and length of a URB the client already has. */
static void urb_finish(UMockdevIoctlData *d, int status, int actual)
{
	struct usbdevfs_urb u;
	memcpy(&u, d->data, sizeof(u));
	u.status = status;
	u.actual_length = actual;
	umockdev_ioctl_data_update(d, 0, (guint8 *)&u, (gint)sizeof(u));
}

static gboolean device_data(int fd, struct rdev *d)
{
	UMockdevIoctlData *urb = g_queue_pop_head(&d->pending_in);
	if (urb == NULL)
		return G_SOURCE_REMOVE; /* again when an IN URB is submitted */
	struct usbdevfs_urb u;
	memcpy(&u, urb->data, sizeof(u));
	GError *e = NULL;
	UMockdevIoctlData *buf = umockdev_ioctl_data_resolve(
	        urb, offsetof(struct usbdevfs_urb, buffer), (gsize)u.buffer_length, &e);
	guint8 tmp[4096];
	size_t want = (size_t)u.buffer_length < sizeof(tmp) ? (size_t)u.buffer_length : sizeof(tmp);
	ssize_t r = read(fd, tmp, want);
	if (getenv("USB_RIG_DEBUG") != NULL)
		fprintf(stderr, "rig: IN %zd of %zu: %.*s\n", r, want, (int)(r > 0 ? r : 0), tmp);
	if (r <= 0 || buf == NULL) {
		g_queue_push_head(&d->pending_in, urb);
		return G_SOURCE_CONTINUE;
	}
	umockdev_ioctl_data_update(buf, 0, tmp, (gint)r);
	urb_finish(urb, 0, (int)r);
	g_queue_push_tail(&d->done, urb);
	return d->pending_in.length > 0 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* WARNING: umockdev runs the ioctl handler on its own worker thread (its
 * main context), not on the rig's main loop: everything an rdev holds is
 * touched under big, and the rig's own sources for a device go to the
 * handler's context. */
static GMutex big;

static gboolean on_device_data(gint fd, GIOCondition cond, gpointer arg)
{
	struct rdev *d = arg;
	(void)cond;
	g_mutex_lock(&big);
	gboolean more = device_data(fd, d);
	if (!more && d->watch != NULL) {
		g_source_unref(d->watch);
		d->watch = NULL;
	}
	g_mutex_unlock(&big);
	return more;
}

static gboolean unplug_idle(gpointer arg)
{
	(void)arg;
	fprintf(stderr, "rig: unplugged at CHALLENGE\n");
	unplug();
	return G_SOURCE_REMOVE;
}

/* A control transfer on endpoint 0: string descriptors only. */
static int control(struct rdev *d, const guint8 *setup, guint8 *data, int len)
{
	if (setup[0] != 0x80 || setup[1] != 6 || setup[3] != 3)
		return -EPIPE; /* stall */
	unsigned idx = setup[2];
	guint8 s[64];
	int n = 2;
	if (idx == 0) {
		s[n++] = 0x09;
		s[n++] = 0x04; /* English (US) */
	} else {
		char text[40];
		(void)snprintf(text, sizeof(text), "%s",
		               idx == 1 ? "idprov" : idx == 2 ? "Test Device" : "");
		if (idx == 3)
			(void)snprintf(text, sizeof(text), "IDPUSB%u", d->n);
		for (size_t i = 0; text[i] != '\0' && n < 62; i++) {
			s[n++] = (guint8)text[i];
			s[n++] = 0;
		}
	}
	s[0] = (guint8)n;
	s[1] = 3;
	int k = n < len ? n : len;
	memcpy(data, s, (size_t)k);
	return k;
}

static gboolean reap_later(gpointer arg)
{
	UMockdevIoctlClient *c = arg;
	umockdev_ioctl_client_complete(c, -1, EAGAIN);
	g_object_unref(c);
	return G_SOURCE_REMOVE;
}

static gboolean ioctl_locked(UMockdevIoctlBase *h, UMockdevIoctlClient *c, gpointer arg)
{
	(void)h;
	struct rdev *d = arg;
	gulong req = umockdev_ioctl_client_get_request(c);
	UMockdevIoctlData *a = umockdev_ioctl_client_get_arg(c);
	GError *e = NULL;
	if (req == USBDEVFS_REAPURBNDELAY || req == USBDEVFS_REAPURB) {
		UMockdevIoctlData *urb = g_queue_pop_head(&d->done);
		if (urb == NULL && d->plugged) {
			/* WARNING: the usbfs node of a testbed always polls writable,
			 * so libusb asks again at once; answering "nothing yet" after
			 * 1 ms keeps that loop from eating a core (a kernel would
			 * make the fd writable only when a URB completed). */
			GSource *t = g_timeout_source_new(1);
			g_source_set_callback(t, reap_later, g_object_ref(c), NULL);
			(void)g_source_attach(t, g_main_context_get_thread_default());
			g_source_unref(t);
			return TRUE;
		}
		if (urb == NULL) {
			umockdev_ioctl_client_complete(c, -1, ENODEV);
			return TRUE;
		}
		UMockdevIoctlData *p = umockdev_ioctl_data_resolve(a, 0, sizeof(void *), &e);
		(void)umockdev_ioctl_data_set_ptr(p, 0, urb);
		umockdev_ioctl_data_unref(urb);
		umockdev_ioctl_client_complete(c, 0, 0);
		return TRUE;
	}
	if (req == USBDEVFS_DISCARDURB) {
		gulong addr = *(gulong *)(void *)a->data;
		for (GList *l = d->pending_in.head; l != NULL; l = l->next) {
			UMockdevIoctlData *urb = l->data;
			if (urb->client_addr != addr)
				continue;
			g_queue_delete_link(&d->pending_in, l);
			urb_finish(urb, -ENOENT, 0);
			g_queue_push_tail(&d->done, urb);
			umockdev_ioctl_client_complete(c, 0, 0);
			return TRUE;
		}
		umockdev_ioctl_client_complete(c, -1, EINVAL);
		return TRUE;
	}
	if (!d->plugged) {
		umockdev_ioctl_client_complete(c, -1, ENODEV);
		return TRUE;
	}
	if (req == USBDEVFS_SUBMITURB) {
		UMockdevIoctlData *urb = umockdev_ioctl_data_resolve(a, 0, sizeof(struct usbdevfs_urb), &e);
		struct usbdevfs_urb *u = (struct usbdevfs_urb *)(void *)urb->data;
		UMockdevIoctlData *buf = umockdev_ioctl_data_resolve(
		        urb, offsetof(struct usbdevfs_urb, buffer), (gsize)u->buffer_length, &e);
		umockdev_ioctl_data_ref(urb);
		if (u->endpoint == 0x81) {
			g_queue_push_tail(&d->pending_in, urb);
			if (d->watch == NULL) {
				d->watch = g_unix_fd_source_new(d->fd, G_IO_IN);
				g_source_set_callback(d->watch, G_SOURCE_FUNC(on_device_data), d,
				                      NULL);
				(void)g_source_attach(d->watch, g_main_context_get_thread_default());
			}
		} else if (u->endpoint == 0x01 && buf != NULL) {
			u->actual_length = u->buffer_length;
			u->status = 0;
			/* unplug-at-challenge: the CHALLENGE never reaches the
			 * device; it leaves instead. */
			bool withhold = false;
			size_t off = 0, len = (size_t)u->buffer_length;
			while (off < len) {
				static struct fmt_wire_frame f;
				size_t used = 0;
				bool got = false;
				if (fmt_wire_feed(d->dec, buf->data + off, len - off, &used, &f, &got,
				                  NULL) != IDP_OK || used == 0)
					break;
				off += used;
				if (got && f.type == FMT_WIRE_HELLO &&
				    (d->sessions == 0 || f.seq != d->hello_seq)) {
					d->hello_seq = f.seq;
					fprintf(stderr, "rig: usb-%u session %u\n", d->n,
					        ++d->sessions);
				}
				if (got && f.type == FMT_WIRE_CHALLENGE && d->unplug_at_challenge) {
					d->unplug_at_challenge = false;
					withhold = true;
					g_idle_add(unplug_idle, NULL);
				}
			}
			const guint8 *p = buf->data;
			size_t left = withhold ? 0 : len;
			while (left > 0) {
				ssize_t w = write(d->fd, p, left);
				if (w <= 0)
					break;
				p += w;
				left -= (size_t)w;
			}
			g_queue_push_tail(&d->done, urb);
		} else if (u->endpoint == 0x00 && buf != NULL && u->buffer_length >= 8) {
			int r = control(d, buf->data, buf->data + 8, u->buffer_length - 8);
			u->status = r < 0 ? r : 0;
			u->actual_length = r < 0 ? 0 : r;
			g_queue_push_tail(&d->done, urb);
		} else {
			umockdev_ioctl_data_unref(urb);
			umockdev_ioctl_client_complete(c, -1, EINVAL);
			return TRUE;
		}
		umockdev_ioctl_client_complete(c, 0, 0);
		return TRUE;
	}
	if (req == USBDEVFS_CLAIMINTERFACE || req == USBDEVFS_RELEASEINTERFACE ||
	    req == USBDEVFS_DISCONNECT_CLAIM) {
		umockdev_ioctl_client_complete(c, 0, 0);
		return TRUE;
	}
	if (req == USBDEVFS_GETDRIVER) {
		umockdev_ioctl_client_complete(c, -1, ENODATA); /* no kernel driver bound */
		return TRUE;
	}
	if (getenv("USB_RIG_DEBUG") != NULL)
		fprintf(stderr, "rig: ioctl %#lx: ENOTTY\n", req);
	umockdev_ioctl_client_complete(c, -1, ENOTTY);
	return TRUE;
}

static gboolean on_ioctl(UMockdevIoctlBase *h, UMockdevIoctlClient *c, gpointer arg)
{
	g_mutex_lock(&big);
	gboolean r = ioctl_locked(h, c, arg);
	g_mutex_unlock(&big);
	return r;
}

static void *dev_thread(void *arg)
{
	struct rdev *d = arg;
	if (tdev_run(d->tfd, &d->cfg, &d->stop, NULL) != IDP_OK)
		fprintf(stderr, "rig: device failed\n");
	return NULL;
}

/* The real agent behind the device's endpoints: its console is a pty
 * whose master the rig bridges; it runs outside the testbed. */
static pid_t agent_start(struct rdev *d, const char *agent, const char *state)
{
	char tty[64], mac[32], id[32], serial[32], log[4200];
	if (ttyname_r(d->tfd, tty, sizeof(tty)) != 0)
		return -1;
	(void)snprintf(mac, sizeof(mac), "02:1a:2c:00:04:%02x", d->n & 0xffu);
	(void)snprintf(id, sizeof(id), "agt-u%u", d->n);
	(void)snprintf(serial, sizeof(serial), "SN-U%u", d->n);
	(void)snprintf(log, sizeof(log), "%s.log", state);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	(void)unsetenv("LD_PRELOAD");
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		_exit(3);
	execl(agent, agent, "--state-dir", state, "--id", id, "--mac", mac, "--serial", serial,
	      "factory", "--console", tty, (char *)NULL);
	_exit(3);
}

static void plug(unsigned n, char **flags, const char *agent, const char *state)
{
	if (cur != NULL)
		unplug();
	struct rdev *d = calloc(1, sizeof(*d));
	int sv[2];
	if (d == NULL)
		exit(3);
	if (agent != NULL) {
		struct termios t;
		if (openpty(&sv[0], &sv[1], NULL, NULL, NULL) != 0 || tcgetattr(sv[1], &t) != 0)
			exit(3);
		cfmakeraw(&t);
		(void)tcsetattr(sv[1], TCSANOW, &t);
		(void)fcntl(sv[0], F_SETFD, FD_CLOEXEC);
		(void)fcntl(sv[1], F_SETFD, FD_CLOEXEC);
	} else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		exit(3);
	}
	d->n = n;
	d->devnum = 2 + plugs++;
	d->fd = sv[0];
	d->tfd = sv[1];
	(void)fcntl(d->fd, F_SETFL, O_NONBLOCK);
	g_queue_init(&d->pending_in);
	g_queue_init(&d->done);
	d->dec = fmt_wire_decoder_new();
	d->cfg = (struct tdev_cfg){.id_prefix = "usb",
	                           .serial_prefix = "SN",
	                           .first = n,
	                           .devices = 1,
	                           .key_type = FMT_KEY_P256};
	for (size_t i = 0; flags[i] != NULL; i++) {
		if (strcmp(flags[i], "wrong-proof") == 0)
			d->cfg.wrong_proof = true;
		else if (strcmp(flags[i], "silent-challenge") == 0)
			d->cfg.silent_challenge = true;
		else if (strcmp(flags[i], "noise") == 0)
			d->cfg.noise = true;
		else if (strcmp(flags[i], "unplug-at-challenge") == 0)
			d->unplug_at_challenge = true;
	}
	(void)snprintf(d->syspath, sizeof(d->syspath), "/sys/devices/pci0000:00/usb1/1-%u",
	               d->devnum);
	(void)snprintf(d->devnode, sizeof(d->devnode), "/dev/bus/usb/001/%03u", d->devnum);
	char desc[2048];
	/* Device descriptor: USB 2.0, vendor class, 1d50:6189, strings 1 2 3;
	 * one configuration: interface 0, class ff, bulk 0x81 IN and 0x01 OUT. */
	(void)snprintf(desc, sizeof(desc),
	               "P: /devices/pci0000:00/usb1/1-%u\n"
	               "N: bus/usb/001/%03u\n"
	               "E: DEVNAME=/dev/bus/usb/001/%03u\nE: DEVTYPE=usb_device\n"
	               "E: SUBSYSTEM=usb\nE: BUSNUM=001\nE: DEVNUM=%03u\n"
	               "A: idVendor=1d50\nA: idProduct=6189\nA: serial=IDPUSB%u\n"
	               "A: manufacturer=idprov\nA: product=Test Device\nA: busnum=1\n"
	               "A: devnum=%u\nA: speed=480\nA: bConfigurationValue=1\n"
	               "H: descriptors=1201000200000040501d8961000101020301"
	               "090220000101008032"
	               "0904000002ff000000"
	               "07058102400000"
	               "07050102400000\n",
	               d->devnum, d->devnum, d->devnum, d->devnum, n, d->devnum);
	GError *e = NULL;
	d->plugged = true; /* before the node exists: it may be opened at once */
	d->handler = umockdev_ioctl_base_new();
	g_signal_connect(d->handler, "handle-ioctl", G_CALLBACK(on_ioctl), d);
	/* The ioctl socket first: a hotplug listener may open the node as
	 * soon as it exists. */
	if (!umockdev_testbed_attach_ioctl(tb, d->devnode, d->handler, &e) ||
	    !umockdev_testbed_add_from_string(tb, desc, &e)) {
		fprintf(stderr, "rig: %s\n", e->message);
		exit(3);
	}
	if (agent != NULL ? (d->agent = agent_start(d, agent, state)) < 0
	                  : pthread_create(&d->th, NULL, dev_thread, d) != 0)
		exit(3);
	umockdev_testbed_uevent(tb, d->syspath, "add");
	cur = d;
	fprintf(stderr, "rig: plugged usb-%u at %s\n", n, d->devnode);
}

/* The device leaves: pending transfers end as on a real disconnect. */
static void unplug(void)
{
	struct rdev *d = cur;
	if (d == NULL)
		return;
	cur = NULL;
	g_mutex_lock(&big);
	d->plugged = false;
	UMockdevIoctlData *urb;
	while ((urb = g_queue_pop_head(&d->pending_in)) != NULL) {
		urb_finish(urb, -ESHUTDOWN, 0);
		g_queue_push_tail(&d->done, urb);
	}
	if (d->watch != NULL) {
		g_source_destroy(d->watch);
		g_source_unref(d->watch);
		d->watch = NULL;
	}
	g_mutex_unlock(&big);
	umockdev_testbed_uevent(tb, d->syspath, "remove");
	umockdev_testbed_remove_device(tb, d->syspath);
	d->stop = 1;
	if (d->agent > 0) {
		(void)kill(d->agent, SIGTERM);
		(void)waitpid(d->agent, NULL, 0);
	} else {
		(void)pthread_join(d->th, NULL);
	}
	(void)close(d->tfd);
	/* d, its fd and handler stay: the client may still ask (ENODEV). */
	fprintf(stderr, "rig: unplugged usb-%u\n", d->n);
}

static gboolean on_ctl(gint fd, GIOCondition cond, gpointer arg)
{
	(void)cond;
	(void)arg;
	static char buf[1024];
	static size_t len;
	ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
	if (r <= 0)
		return G_SOURCE_CONTINUE;
	len += (size_t)r;
	char *nl;
	while ((nl = memchr(buf, '\n', len)) != NULL) {
		*nl = '\0';
		char **w = g_strsplit(buf, " ", 0);
		if (w[0] != NULL && strcmp(w[0], "plug") == 0 && w[1] != NULL)
			plug((unsigned)strtoul(w[1], NULL, 10), w + 2, NULL, NULL);
		else if (w[0] != NULL && strcmp(w[0], "agent") == 0 && w[1] != NULL &&
		         w[2] != NULL && w[3] != NULL)
			plug((unsigned)strtoul(w[1], NULL, 10), w + 4, w[2], w[3]);
		else if (w[0] != NULL && strcmp(w[0], "unplug") == 0)
			unplug();
		else if (w[0] != NULL && strcmp(w[0], "quit") == 0 && child > 0)
			(void)kill(child, SIGTERM);
		else
			fprintf(stderr, "rig: unknown command \"%s\"\n", buf);
		g_strfreev(w);
		size_t used = (size_t)(nl - buf) + 1;
		memmove(buf, nl + 1, len - used);
		len -= used;
	}
	return G_SOURCE_CONTINUE;
}

static void on_child(GPid pid, gint status, gpointer arg)
{
	(void)pid;
	(void)arg;
	child_status = status;
	child = -1;
	g_main_loop_quit(loop);
}

int main(int argc, char **argv)
{
	tdev_umockdev_wrap("usb-rig", argc, argv);
	if (argc < 4 || strcmp(argv[2], "--") != 0) {
		fprintf(stderr, "usage: usb-rig CTL -- PROGRAM [ARGS...]\n");
		return 2;
	}
	int ctl = open(argv[1], O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (ctl < 0) {
		perror(argv[1]);
		return 3;
	}
	tb = umockdev_testbed_new();
	loop = g_main_loop_new(NULL, FALSE);
	/* The bus itself, so libusb finds a USB tree before any device. */
	GError *e = NULL;
	if (!umockdev_testbed_add_from_string(tb,
	                                      "P: /devices/pci0000:00/usb1\n"
	                                      "E: DEVTYPE=usb_device\nE: SUBSYSTEM=usb\n"
	                                      "A: busnum=1\nA: devnum=1\n",
	                                      &e)) {
		fprintf(stderr, "rig: %s\n", e->message);
		return 3;
	}
	g_unix_fd_add(ctl, G_IO_IN, on_ctl, NULL);
	child = fork();
	if (child == 0) {
		execvp(argv[3], argv + 3);
		perror(argv[3]);
		_exit(3);
	}
	if (child < 0)
		return 3;
	g_child_watch_add(child, on_child, NULL);
	g_main_loop_run(loop);
	if (cur != NULL)
		unplug();
	return WIFEXITED(child_status) ? WEXITSTATUS(child_status) : 3;
}
