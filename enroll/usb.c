/*
 * usb.c - the station's USB transport; see usb.h. The USB thread polls the
 * wake pipe, the bridge's socket end and libusb's own fds, then lets libusb
 * handle its events without waiting: every libusb call happens on it, so a
 * device is never touched by two threads at once.
 */
#include "enroll/usb.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libusb.h>

#define QUEUE_MAX  16u   /* arrived devices waiting to be read */
#define XFER_BYTES 512u  /* one bulk transfer: a high-speed packet */
#define FDS_MAX    32u   /* libusb's fds + wake pipe + bridge socket */
#define CANCEL_MS  2000u /* wait for cancelled transfers to come back */

enum cmd { CMD_NONE, CMD_ATTACH, CMD_DETACH, CMD_QUIT };

struct enr_usb {
	struct enr_usb_match m;
	libusb_context *ctx;
	libusb_hotplug_callback_handle hp;
	bool hp_on;
	pthread_t thread;
	bool thread_on;
	int wake[2]; /* main -> USB thread */

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;
	libusb_device *queue[QUEUE_MAX]; /* arrived, referenced */
	size_t queued;
	enum cmd cmd;
	bool cmd_done;
	enum idp_err cmd_rc;
	char cmd_msg[IDP_ERROR_MSG_MAX];

	/* The attached device (USB thread only, except as noted). */
	libusb_device *dev;
	libusb_device_handle *h;
	uint8_t ep_in, ep_out;
	int near_fd, far_fd; /* engine's end, bridge's end */
	struct libusb_transfer *in, *out;
	bool in_busy, out_busy, far_eof;
	uint8_t in_buf[XFER_BYTES], out_buf[XFER_BYTES];
	char gone[IDP_ERROR_MSG_MAX]; /* under mu */
	char desc[ENR_USB_DESC_MAX];
};

static bool parse_hex16(const char *s, size_t n, uint16_t *out)
{
	unsigned v = 0;
	if (n == 0 || n > 4)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
		             : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
		             : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
		                                    : 16u;
		if (d > 15)
			return false;
		v = v * 16u + d;
	}
	*out = (uint16_t)v;
	return true;
}

enum idp_err enr_usb_parse(const char *ids, const char *iface, struct enr_usb_match *m,
                           struct idp_error *err)
{
	char q[IDP_QUOTE_MAX];
	memset(m, 0, sizeof(*m));
	size_t n = ids != NULL ? strnlen(ids, 16) : 0;
	const char *colon = ids != NULL ? memchr(ids, ':', n) : NULL;
	if (colon == NULL || !parse_hex16(ids, (size_t)(colon - ids), &m->vid) || m->vid == 0 ||
	    (strcmp(colon + 1, "*") != 0 &&
	     (!parse_hex16(colon + 1, n - (size_t)(colon - ids) - 1, &m->pid) || m->pid == 0)))
		return idp_error_set(err, IDP_E_ARG,
		                     "usb: \"%s\" is not VENDOR:PRODUCT in hex (e.g. 1d50:6189)",
		                     idp_quote(ids != NULL ? ids : "", n, q));
	if (iface == NULL)
		return IDP_OK;
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(iface, &end, 10);
	if (errno != 0 || iface[0] < '0' || iface[0] > '9' || *end != '\0' || v > 255)
		return idp_error_set(err, IDP_E_ARG, "usb: interface \"%s\" is not a number 0..255",
		                     idp_quote(iface, strnlen(iface, 64), q));
	m->iface = (uint8_t)v;
	return IDP_OK;
}

static void wake(struct enr_usb *u)
{
	const char c = 1;
	while (write(u->wake[1], &c, 1) < 0 && errno == EINTR)
		;
}

static bool matches(const struct enr_usb_match *m, libusb_device *dev)
{
	struct libusb_device_descriptor d;
	if (libusb_get_device_descriptor(dev, &d) != 0)
		return false;
	return d.idVendor == m->vid && (m->pid == 0 || d.idProduct == m->pid);
}

static void set_gone(struct enr_usb *u, const char *why)
{
	pthread_mutex_lock(&u->mu);
	if (u->gone[0] == '\0')
		(void)snprintf(u->gone, sizeof(u->gone), "%s", why);
	pthread_mutex_unlock(&u->mu);
	/* The engine sees end of input; the bridge stops reading its end. */
	if (u->far_fd >= 0)
		(void)shutdown(u->far_fd, SHUT_RDWR);
	u->far_eof = true;
}

static const char *status_text(enum libusb_transfer_status st)
{
	switch (st) {
	case LIBUSB_TRANSFER_NO_DEVICE:
		return "usb: device unplugged";
	case LIBUSB_TRANSFER_STALL:
		return "usb: the device stalled an endpoint";
	case LIBUSB_TRANSFER_OVERFLOW:
		return "usb: the device sent more than a transfer holds";
	case LIBUSB_TRANSFER_TIMED_OUT:
		return "usb: transfer timed out";
	default:
		return "usb: transfer failed";
	}
}

/* Runs on the USB thread (inside libusb_handle_events). */
static void LIBUSB_CALL in_done(struct libusb_transfer *t)
{
	struct enr_usb *u = t->user_data;
	u->in_busy = false;
	if (t->status == LIBUSB_TRANSFER_CANCELLED)
		return;
	if (t->status != LIBUSB_TRANSFER_COMPLETED) {
		set_gone(u, status_text(t->status));
		return;
	}
	if (t->actual_length > 0 && !u->far_eof) {
		/* WARNING: never block the USB thread; a reader that is this
		 * far behind loses bytes, as an overrun serial port would. */
		ssize_t w = send(u->far_fd, t->buffer, (size_t)t->actual_length,
		                 MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)w;
	}
	if (u->far_eof)
		return;
	int r = libusb_submit_transfer(t);
	if (r != 0)
		set_gone(u, r == LIBUSB_ERROR_NO_DEVICE ? "usb: device unplugged"
		                                        : "usb: cannot read the device");
	else
		u->in_busy = true;
}

static void LIBUSB_CALL out_done(struct libusb_transfer *t)
{
	struct enr_usb *u = t->user_data;
	u->out_busy = false;
	if (t->status != LIBUSB_TRANSFER_COMPLETED && t->status != LIBUSB_TRANSFER_CANCELLED)
		set_gone(u, status_text(t->status));
}

/* Remove entry i of the arrival queue (under mu; the reference moves to
 * the caller or was dropped). */
static void queue_drop(struct enr_usb *u, size_t i)
{
	for (; i + 1 < u->queued; i++)
		u->queue[i] = u->queue[i + 1];
	u->queued--;
}

static int LIBUSB_CALL on_hotplug(libusb_context *ctx, libusb_device *dev,
                                  libusb_hotplug_event ev, void *arg)
{
	(void)ctx;
	struct enr_usb *u = arg;
	pthread_mutex_lock(&u->mu);
	if (ev == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED) {
		if (u->queued < QUEUE_MAX)
			u->queue[u->queued++] = libusb_ref_device(dev);
	} else {
		for (size_t i = 0; i < u->queued; i++)
			if (u->queue[i] == dev) {
				libusb_unref_device(dev);
				queue_drop(u, i);
				break;
			}
	}
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	if (ev == LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT && dev == u->dev)
		set_gone(u, "usb: device unplugged");
	return 0;
}

/* Find the bulk IN and OUT endpoints of interface m->iface (alt 0). */
static bool find_endpoints(struct enr_usb *u)
{
	struct libusb_config_descriptor *cfg = NULL;
	bool in = false, out = false;
	if (libusb_get_active_config_descriptor(u->dev, &cfg) != 0 || cfg == NULL)
		return false;
	for (uint8_t i = 0; i < cfg->bNumInterfaces; i++) {
		const struct libusb_interface *itf = &cfg->interface[i];
		if (itf->num_altsetting < 1 ||
		    itf->altsetting[0].bInterfaceNumber != u->m.iface)
			continue;
		const struct libusb_interface_descriptor *alt = &itf->altsetting[0];
		for (uint8_t e = 0; e < alt->bNumEndpoints; e++) {
			const struct libusb_endpoint_descriptor *ep = &alt->endpoint[e];
			if ((ep->bmAttributes & 3u) != LIBUSB_TRANSFER_TYPE_BULK)
				continue;
			if ((ep->bEndpointAddress & LIBUSB_ENDPOINT_IN) != 0 && !in) {
				u->ep_in = ep->bEndpointAddress;
				in = true;
			} else if ((ep->bEndpointAddress & LIBUSB_ENDPOINT_IN) == 0 && !out) {
				u->ep_out = ep->bEndpointAddress;
				out = true;
			}
		}
	}
	libusb_free_config_descriptor(cfg);
	return in && out;
}

static void describe(libusb_device *dev, char out[static ENR_USB_DESC_MAX])
{
	struct libusb_device_descriptor d;
	memset(&d, 0, sizeof(d));
	(void)libusb_get_device_descriptor(dev, &d);
	(void)snprintf(out, ENR_USB_DESC_MAX, "usb %04x:%04x bus %u device %u", d.idVendor,
	               d.idProduct, libusb_get_bus_number(dev), libusb_get_device_address(dev));
}

static void close_device(struct enr_usb *u)
{
	if (u->h != NULL) {
		(void)libusb_release_interface(u->h, u->m.iface);
		libusb_close(u->h);
	}
	u->h = NULL;
	if (u->dev != NULL)
		libusb_unref_device(u->dev);
	u->dev = NULL;
	libusb_free_transfer(u->in);
	libusb_free_transfer(u->out);
	u->in = u->out = NULL;
	if (u->far_fd >= 0)
		(void)close(u->far_fd);
	if (u->near_fd >= 0)
		(void)close(u->near_fd);
	u->far_fd = u->near_fd = -1;
}

/* CMD_ATTACH on the USB thread: the first queued device. */
static enum idp_err do_attach(struct enr_usb *u, char *msg, size_t msg_size)
{
	pthread_mutex_lock(&u->mu);
	libusb_device *dev = u->queued > 0 ? u->queue[0] : NULL;
	if (dev != NULL)
		queue_drop(u, 0);
	u->gone[0] = '\0';
	pthread_mutex_unlock(&u->mu);
	if (dev == NULL)
		return IDP_E_NOTFOUND;
	u->dev = dev; /* the queue's reference */
	describe(dev, u->desc);
	int sv[2] = {-1, -1};
	int r = libusb_open(dev, &u->h);
	if (r != 0) {
		(void)snprintf(msg, msg_size, "%s: open: %s%s", u->desc, libusb_strerror(r),
		               r == LIBUSB_ERROR_ACCESS ? " (see the udev rule in samples/)" : "");
		goto fail;
	}
	if (!find_endpoints(u)) {
		(void)snprintf(msg, msg_size, "%s: interface %u has no bulk IN and OUT endpoint",
		               u->desc, u->m.iface);
		goto fail;
	}
	(void)libusb_set_auto_detach_kernel_driver(u->h, 1);
	r = libusb_claim_interface(u->h, u->m.iface);
	if (r != 0) {
		(void)snprintf(msg, msg_size, "%s: claim interface %u: %s", u->desc, u->m.iface,
		               libusb_strerror(r));
		goto fail;
	}
	u->in = libusb_alloc_transfer(0);
	u->out = libusb_alloc_transfer(0);
	if (u->in == NULL || u->out == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		(void)snprintf(msg, msg_size, "%s: %s", u->desc, strerror(errno ? errno : ENOMEM));
		goto fail;
	}
	u->near_fd = sv[0];
	u->far_fd = sv[1];
	u->far_eof = false;
	libusb_fill_bulk_transfer(u->in, u->h, u->ep_in, u->in_buf, (int)sizeof(u->in_buf),
	                          in_done, u, 0);
	r = libusb_submit_transfer(u->in);
	if (r != 0) {
		(void)snprintf(msg, msg_size, "%s: read: %s", u->desc, libusb_strerror(r));
		goto fail;
	}
	u->in_busy = true;
	return IDP_OK;
fail:
	close_device(u);
	return IDP_E_IO;
}

/* Let libusb run its callbacks without waiting. */
static void handle_events(struct enr_usb *u)
{
	struct timeval zero = {0, 0};
	(void)libusb_handle_events_timeout_completed(u->ctx, &zero, NULL);
}

/* CMD_DETACH on the USB thread. */
static void do_detach(struct enr_usb *u)
{
	if (u->h == NULL && u->near_fd < 0)
		return;
	u->far_eof = true;
	if (u->in_busy)
		(void)libusb_cancel_transfer(u->in);
	if (u->out_busy)
		(void)libusb_cancel_transfer(u->out);
	for (unsigned waited = 0; (u->in_busy || u->out_busy) && waited < CANCEL_MS; waited += 10) {
		struct timeval tv = {0, 10000};
		(void)libusb_handle_events_timeout_completed(u->ctx, &tv, NULL);
	}
	if (u->in_busy || u->out_busy) {
		/* WARNING: libusb still owns a transfer: leak it rather than
		 * free memory a late callback writes into. */
		u->in = u->out = NULL;
		u->in_busy = u->out_busy = false;
	}
	close_device(u);
}

/* Bytes from the engine: one bulk OUT transfer at a time. */
static void pump_out(struct enr_usb *u)
{
	ssize_t r = read(u->far_fd, u->out_buf, sizeof(u->out_buf));
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		u->far_eof = true; /* the engine's end is closed: detach follows */
		return;
	}
	libusb_fill_bulk_transfer(u->out, u->h, u->ep_out, u->out_buf, (int)r, out_done, u, 2000);
	int rc = libusb_submit_transfer(u->out);
	if (rc != 0)
		set_gone(u, rc == LIBUSB_ERROR_NO_DEVICE ? "usb: device unplugged"
		                                         : "usb: cannot write to the device");
	else
		u->out_busy = true;
}

static void *usb_thread(void *arg)
{
	struct enr_usb *u = arg;
	for (;;) {
		struct pollfd pf[FDS_MAX];
		nfds_t n = 0;
		pf[n++] = (struct pollfd){.fd = u->wake[0], .events = POLLIN};
		bool want_out = u->h != NULL && !u->out_busy && !u->far_eof && u->far_fd >= 0;
		if (want_out)
			pf[n++] = (struct pollfd){.fd = u->far_fd, .events = POLLIN};
		const struct libusb_pollfd **lp = libusb_get_pollfds(u->ctx);
		for (size_t i = 0; lp != NULL && lp[i] != NULL && n < FDS_MAX; i++)
			pf[n++] = (struct pollfd){.fd = lp[i]->fd, .events = lp[i]->events};
		libusb_free_pollfds(lp);
		int timeout = 1000;
		struct timeval tv;
		if (libusb_get_next_timeout(u->ctx, &tv) == 1)
			timeout = tv.tv_sec > 0 ? 1000 : (int)(tv.tv_usec / 1000) + 1;
		if (poll(pf, n, timeout) < 0 && errno != EINTR)
			break;
		if ((pf[0].revents & POLLIN) != 0) {
			char drain[16];
			(void)read(u->wake[0], drain, sizeof(drain));
		}
		if (want_out && (pf[1].revents & (POLLIN | POLLHUP)) != 0)
			pump_out(u);
		handle_events(u);
		pthread_mutex_lock(&u->mu);
		enum cmd c = u->cmd;
		pthread_mutex_unlock(&u->mu);
		if (c == CMD_NONE)
			continue;
		char msg[IDP_ERROR_MSG_MAX] = "";
		enum idp_err rc = IDP_OK;
		if (c == CMD_ATTACH)
			rc = do_attach(u, msg, sizeof(msg));
		else
			do_detach(u);
		pthread_mutex_lock(&u->mu);
		u->cmd = CMD_NONE;
		u->cmd_rc = rc;
		(void)snprintf(u->cmd_msg, sizeof(u->cmd_msg), "%s", msg);
		u->cmd_done = true;
		pthread_cond_broadcast(&u->cv);
		pthread_mutex_unlock(&u->mu);
		if (c == CMD_QUIT)
			break;
	}
	return NULL;
}

/* Run cmd on the USB thread and wait for it. */
static enum idp_err run_cmd(struct enr_usb *u, enum cmd c, struct idp_error *err)
{
	pthread_mutex_lock(&u->mu);
	u->cmd = c;
	u->cmd_done = false;
	pthread_mutex_unlock(&u->mu);
	wake(u);
	pthread_mutex_lock(&u->mu);
	while (!u->cmd_done)
		pthread_cond_wait(&u->cv, &u->mu);
	enum idp_err rc = u->cmd_rc;
	if (rc != IDP_OK && rc != IDP_E_NOTFOUND)
		(void)idp_error_set(err, rc, "%s", u->cmd_msg);
	pthread_mutex_unlock(&u->mu);
	return rc;
}

enum idp_err enr_usb_open(const struct enr_usb_match *m, struct enr_usb **out,
                          struct idp_error *err)
{
	*out = NULL;
	struct enr_usb *u = calloc(1, sizeof(*u));
	if (u == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "usb: out of memory");
	u->m = *m;
	u->near_fd = u->far_fd = u->wake[0] = u->wake[1] = -1;
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	enum idp_err rc = IDP_E_IO;
	int r = libusb_init(&u->ctx);
	if (r != 0) {
		u->ctx = NULL;
		(void)idp_error_set(err, rc, "usb: libusb: %s", libusb_strerror(r));
		goto fail;
	}
	if (!libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) {
		(void)idp_error_set(err, rc, "usb: this libusb has no hotplug support");
		goto fail;
	}
	if (pipe(u->wake) != 0 || fcntl(u->wake[0], F_SETFL, O_NONBLOCK) != 0 ||
	    fcntl(u->wake[0], F_SETFD, FD_CLOEXEC) != 0 ||
	    fcntl(u->wake[1], F_SETFD, FD_CLOEXEC) != 0) {
		(void)idp_error_set(err, rc, "usb: pipe: %s", strerror(errno));
		goto fail;
	}
	r = libusb_hotplug_register_callback(
	        u->ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
	        LIBUSB_HOTPLUG_ENUMERATE, m->vid, m->pid != 0 ? m->pid : LIBUSB_HOTPLUG_MATCH_ANY,
	        LIBUSB_HOTPLUG_MATCH_ANY, on_hotplug, u, &u->hp);
	if (r != 0) {
		(void)idp_error_set(err, rc, "usb: hotplug: %s", libusb_strerror(r));
		goto fail;
	}
	u->hp_on = true;
	if (pthread_create(&u->thread, NULL, usb_thread, u) != 0) {
		(void)idp_error_set(err, rc, "usb: cannot start a thread");
		goto fail;
	}
	u->thread_on = true;
	*out = u;
	return IDP_OK;
fail:
	enr_usb_close(u);
	return rc;
}

enum idp_err enr_usb_attach(struct enr_usb *u, unsigned wait_ms, volatile const int *stop,
                            int *fd, char desc[static ENR_USB_DESC_MAX], struct idp_error *err)
{
	*fd = -1;
	desc[0] = '\0';
	enr_usb_detach(u);
	struct timespec dl;
	(void)clock_gettime(CLOCK_REALTIME, &dl);
	pthread_mutex_lock(&u->mu);
	for (unsigned waited = 0; u->queued == 0 && waited < wait_ms && !(stop != NULL && *stop);
	     waited += 100) {
		/* 100 ms steps: notice *stop (set by a signal handler). */
		dl.tv_nsec += 100000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&u->cv, &u->mu, &dl);
	}
	bool any = u->queued > 0;
	pthread_mutex_unlock(&u->mu);
	if (!any)
		return IDP_E_NOTFOUND;
	enum idp_err rc = run_cmd(u, CMD_ATTACH, err);
	if (rc != IDP_OK)
		return rc;
	*fd = u->near_fd;
	(void)snprintf(desc, ENR_USB_DESC_MAX, "%s", u->desc);
	return IDP_OK;
}

void enr_usb_gone_reason(struct enr_usb *u, char out[static IDP_ERROR_MSG_MAX])
{
	pthread_mutex_lock(&u->mu);
	(void)snprintf(out, IDP_ERROR_MSG_MAX, "%s", u->gone);
	pthread_mutex_unlock(&u->mu);
}

void enr_usb_detach(struct enr_usb *u)
{
	if (u == NULL || !u->thread_on || u->near_fd < 0)
		return;
	(void)run_cmd(u, CMD_DETACH, NULL);
}

void enr_usb_close(struct enr_usb *u)
{
	if (u == NULL)
		return;
	if (u->thread_on) {
		enr_usb_detach(u);
		(void)run_cmd(u, CMD_QUIT, NULL);
		(void)pthread_join(u->thread, NULL);
	}
	if (u->hp_on)
		libusb_hotplug_deregister_callback(u->ctx, u->hp);
	for (size_t i = 0; i < u->queued; i++)
		libusb_unref_device(u->queue[i]);
	if (u->ctx != NULL)
		libusb_exit(u->ctx);
	if (u->wake[0] >= 0)
		(void)close(u->wake[0]);
	if (u->wake[1] >= 0)
		(void)close(u->wake[1]);
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->cv);
	free(u);
}

static void get_string(libusb_device_handle *h, uint8_t index, char *out, size_t size)
{
	unsigned char raw[128];
	char q[IDP_QUOTE_MAX];
	out[0] = '\0';
	if (index == 0)
		return;
	int n = libusb_get_string_descriptor_ascii(h, index, raw, (int)sizeof(raw) - 1);
	if (n <= 0)
		return;
	raw[n] = '\0';
	(void)snprintf(out, size, "%s", idp_quote((const char *)raw, (size_t)n, q));
}

enum idp_err enr_usb_list(const struct enr_usb_match *m,
                          void (*fn)(void *arg, const struct enr_usb_info *d), void *arg,
                          struct idp_error *err)
{
	libusb_context *ctx = NULL;
	libusb_device **list = NULL;
	int r = libusb_init(&ctx);
	if (r != 0)
		return idp_error_set(err, IDP_E_IO, "usb: libusb: %s", libusb_strerror(r));
	ssize_t n = libusb_get_device_list(ctx, &list);
	if (n < 0) {
		libusb_exit(ctx);
		return idp_error_set(err, IDP_E_IO, "usb: device list: %s",
		                     libusb_strerror((int)n));
	}
	for (ssize_t i = 0; i < n; i++) {
		struct libusb_device_descriptor d;
		if (!matches(m, list[i]) || libusb_get_device_descriptor(list[i], &d) != 0)
			continue;
		struct enr_usb_info info;
		memset(&info, 0, sizeof(info));
		info.vid = d.idVendor;
		info.pid = d.idProduct;
		info.bus = libusb_get_bus_number(list[i]);
		info.address = libusb_get_device_address(list[i]);
		libusb_device_handle *h = NULL;
		if (libusb_open(list[i], &h) == 0) {
			info.access = true;
			get_string(h, d.iSerialNumber, info.serial, sizeof(info.serial));
			get_string(h, d.iManufacturer, info.manufacturer, sizeof(info.manufacturer));
			get_string(h, d.iProduct, info.product, sizeof(info.product));
			libusb_close(h);
		}
		fn(arg, &info);
	}
	libusb_free_device_list(list, 1);
	libusb_exit(ctx);
	return IDP_OK;
}
