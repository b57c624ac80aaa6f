/*
 * station_main.c - idprov-station: the factory line's station. Reads
 * devices over a serial port (libserialport) or a pty with the wire
 * protocol (enroll/station.h), records every PASS in a crash-safe journal
 * before showing it (enroll/batch.h, formats/journal.md), closes a batch
 * into a signed manifest (enroll/manifest_build.h) and uploads it over
 * HTTPS (formats/io/httpc.h, formats/api.md §8). Man page:
 * docs/man/idprov-station.1; operator guide: docs/station-operator.md.
 *
 * Exit codes (one-shot runs): 0 success / PASS; 1 FAIL or refused; 2 usage;
 * 3 local failure (I/O, state, crypto); 4 no device answered; 5 not
 * delivered (server unreachable or busy: the batch stays pending); 6 the
 * state directory is in use by another idprov-station.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "enroll/batch.h"
#include "enroll/label.h"
#include "enroll/line.h"
#include "enroll/manifest_build.h"
#include "enroll/station.h"
#include "enroll/usb.h"
#include "formats/b64.h"
#include "formats/file.h"
#include "formats/idrule.h"
#include "formats/io/httpc.h"
#include "formats/io/log.h"
#include "formats/mac.h"
#include "formats/version.h"

#define EXIT_FAIL     1
#define EXIT_USAGE    2
#define EXIT_LOCAL    3
#define EXIT_NODEVICE 4
#define EXIT_PENDING  5
#define EXIT_BUSY     6

#define CONFIG_MAX   65536u
#define SIG_MAX      65536u
#define WAIT_SAME_MS 300

static const char *prog = "idprov-station";
static volatile int stop_flag;
static volatile sig_atomic_t close_requested;

static void usage(void)
{
	(void)fprintf(
	        stderr,
	        "usage: %s run [--batch ID] [--product TEXT] [--count N] LINE\n"
	        "       %s read --batch ID [--product TEXT] LINE\n"
	        "       %s close [--batch ID]\n"
	        "       %s upload (--batch ID | --pending)\n"
	        "       %s batches [--batch ID]\n"
	        "       %s ports [--usb VID:PID]\n"
	        "       %s --version | --help\n"
	        "LINE:  --port PATH [--baud N] | --usb VID:PID [--usb-interface N] | --pty\n"
	        "common: [--config FILE] [--state DIR] [--station ID] [--key KEY [--cert CERT]\n"
	        "        [--chain PEM]] [--id-rule RULE] [--serial-rule RULE]\n"
	        "        [--server URL --ca CA.pem --client-cert CERT --client-key KEY]\n"
	        "        [--hello-window-ms N] [--timeout-ms N] [--attempts N]\n"
	        "        [--label-dir DIR [--print-cmd CMD]]\n",
	        prog, prog, prog, prog, prog, prog, prog);
}

/* ---------------------------------------------------------------- options */

struct opts {
	const char *config, *state, *station, *key, *cert, *chain, *batch, *product, *count, *port,
	        *baud, *id_rule, *serial_rule, *server, *ca, *client_cert, *client_key,
	        *hello_window, *timeout, *attempts, *label_dir, *print_cmd, *usb, *usb_iface;
	bool pty, pending;
};

static const struct {
	const char *name;
	size_t off;
} value_opts[] = {
        {"config", offsetof(struct opts, config)},
        {"state", offsetof(struct opts, state)},
        {"station", offsetof(struct opts, station)},
        {"key", offsetof(struct opts, key)},
        {"cert", offsetof(struct opts, cert)},
        {"chain", offsetof(struct opts, chain)},
        {"batch", offsetof(struct opts, batch)},
        {"product", offsetof(struct opts, product)},
        {"count", offsetof(struct opts, count)},
        {"port", offsetof(struct opts, port)},
        {"baud", offsetof(struct opts, baud)},
        {"id-rule", offsetof(struct opts, id_rule)},
        {"serial-rule", offsetof(struct opts, serial_rule)},
        {"server", offsetof(struct opts, server)},
        {"ca", offsetof(struct opts, ca)},
        {"client-cert", offsetof(struct opts, client_cert)},
        {"client-key", offsetof(struct opts, client_key)},
        {"hello-window-ms", offsetof(struct opts, hello_window)},
        {"timeout-ms", offsetof(struct opts, timeout)},
        {"attempts", offsetof(struct opts, attempts)},
        {"label-dir", offsetof(struct opts, label_dir)},
        {"print-cmd", offsetof(struct opts, print_cmd)},
        {"usb", offsetof(struct opts, usb)},
        {"usb-interface", offsetof(struct opts, usb_iface)},
};
#define NOPTS (sizeof(value_opts) / sizeof(value_opts[0]))

static const char **slot_of(struct opts *o, size_t k)
{
	return (const char **)(void *)((char *)o + value_opts[k].off);
}

/* Set option name (without "--") to v unless already set (command line wins). */
static bool set_opt(struct opts *o, const char *name, const char *v, bool override)
{
	if (strcmp(name, "pty") == 0) {
		o->pty = true;
		return true;
	}
	for (size_t k = 0; k < NOPTS; k++) {
		if (strcmp(name, value_opts[k].name) != 0)
			continue;
		const char **slot = slot_of(o, k);
		if (override || *slot == NULL)
			*slot = v;
		return true;
	}
	return false;
}

static bool parse_opts(int argc, char **argv, struct opts *o)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--pty") == 0) {
			o->pty = true;
			continue;
		}
		if (strcmp(a, "--pending") == 0) {
			o->pending = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || strcmp(a + 2, "pty") == 0 || i + 1 >= argc ||
		    !set_opt(o, a + 2, argv[i + 1], true)) {
			(void)fprintf(stderr, "%s: unexpected argument \"%s\"%s\n", prog, a,
			              i + 1 >= argc && strncmp(a, "--", 2) == 0
			                      ? " (needs a value?)"
			                      : "");
			return false;
		}
		i++;
	}
	return true;
}

/* The config file: "name value" lines (the long option names), '#'
 * comments; command-line options win. The buffer stays allocated for the
 * run (the options point into it). */
static bool load_config(struct opts *o, char **keep)
{
	if (o->config == NULL)
		return true;
	uint8_t *buf = NULL;
	size_t len = 0;
	struct idp_error err = {0};
	if (fmt_file_read(o->config, CONFIG_MAX, &buf, &len, &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		return false;
	}
	*keep = (char *)buf;
	char *p = *keep;
	for (unsigned line = 1; *p != '\0'; line++) {
		char *nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = strlen(p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
			p[--n] = '\0';
		if (*p != '\0' && *p != '#') {
			char *v = p + strcspn(p, " \t");
			if (*v != '\0') {
				*v++ = '\0';
				while (*v == ' ' || *v == '\t')
					v++;
			}
			if ((*v == '\0' && strcmp(p, "pty") != 0) || !set_opt(o, p, v, false)) {
				(void)fprintf(stderr,
				              "%s: %s: line %u: \"%s\" is not a known setting "
				              "with a value\n",
				              prog, o->config, line, p);
				return false;
			}
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return true;
}

static bool need(const char *v, const char *name)
{
	if (v == NULL)
		(void)fprintf(stderr, "%s: --%s is required\n", prog, name);
	return v != NULL;
}

static bool parse_u64(const char *s, const char *name, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = s != NULL ? strtoull(s, &end, 10) : 0;
	if (s == NULL || errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max) {
		(void)fprintf(stderr, "%s: --%s: \"%s\" is not a number 0..%" PRIu64 "\n", prog,
		              name, s != NULL ? s : "", max);
		return false;
	}
	*out = v;
	return true;
}

/* ---------------------------------------------------------------- state lock */

/* Hold DIR/lock for the life of the process; -1 and a message when another
 * station holds it. */
static int lock_state(const char *dir, bool *busy)
{
	char path[ENR_PATH_MAX + 8];
	*busy = false;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		(void)fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
		return -1;
	}
	int n = snprintf(path, sizeof(path), "%s/lock", dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		(void)fprintf(stderr, "%s: --state: path too long\n", prog);
		return -1;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		(void)fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		*busy = errno == EWOULDBLOCK;
		(void)fprintf(stderr, "%s: %s is in use by another %s\n", prog, dir, prog);
		(void)close(fd);
		return -1;
	}
	return fd;
}

/* ---------------------------------------------------------------- ports */

static void print_port(void *arg, const struct enr_port_info *p)
{
	unsigned *n = arg;
	(*n)++;
	if (p->usb)
		(void)printf("%s  usb %04x:%04x  serial %s  %s %s\n", p->name, p->vid, p->pid,
		             p->serial[0] != '\0' ? p->serial : "-", p->manufacturer, p->product);
	else
		(void)printf("%s  %s\n", p->name, p->description);
}

static void print_usb(void *arg, const struct enr_usb_info *d)
{
	unsigned *n = arg;
	(*n)++;
	if (d->access)
		(void)printf("usb:%03u:%03u  usb %04x:%04x  serial %s  %s %s\n", d->bus, d->address,
		             d->vid, d->pid, d->serial[0] != '\0' ? d->serial : "-",
		             d->manufacturer, d->product);
	else
		(void)printf("usb:%03u:%03u  usb %04x:%04x  no access (see the udev rule)\n", d->bus,
		             d->address, d->vid, d->pid);
}

static int cmd_ports(const struct opts *o)
{
	unsigned n = 0, nu = 0;
	struct idp_error err = {0};
	struct enr_usb_match m;
	if (o->usb != NULL && enr_usb_parse(o->usb, o->usb_iface, &m, &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		return EXIT_USAGE;
	}
	if (enr_line_ports(print_port, &n, &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		if (o->usb == NULL)
			return EXIT_LOCAL; /* else the USB devices may still be listed */
	} else if (n == 0) {
		(void)printf("no serial ports\n");
	}
	if (o->usb == NULL)
		return 0;
	if (enr_usb_list(&m, print_usb, &nu, &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		return EXIT_LOCAL;
	}
	if (nu == 0)
		(void)printf("no USB device %s\n", o->usb);
	return 0;
}

/* ---------------------------------------------------------------- run */

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* Operator commands on a terminal: "close" (or "c") closes the batch. */
static void *stdin_commands(void *arg)
{
	(void)arg;
	char buf[64];
	while (fgets(buf, sizeof(buf), stdin) != NULL) {
		buf[strcspn(buf, "\r\n")] = '\0';
		if (strcmp(buf, "close") == 0 || strcmp(buf, "c") == 0) {
			close_requested = 1;
			stop_flag = 1;
			return NULL;
		}
		(void)fprintf(stderr, "%s: commands: close\n", prog);
	}
	return NULL;
}

struct counts {
	uint64_t pass, fail;
	int64_t t0_ms;
	uint64_t target; /* --count, else the journal's; 0 = open-ended */
};

/* The progress line: redrawn in place on a terminal. */
static void progress(const struct enr_batch *b, const struct counts *c, const char *what)
{
	uint64_t done = enr_batch_count(b), target = c->target;
	double mins = (double)(fio_mono_ms() - c->t0_ms) / 60000.0;
	double rate = mins > 0 ? (double)c->pass / mins : 0.0;
	char eta[32] = "-";
	if (target > done && rate > 0) {
		uint64_t s = (uint64_t)((double)(target - done) / rate * 60.0);
		(void)snprintf(eta, sizeof(eta), "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
	}
	char tgt[32] = "";
	if (target > 0)
		(void)snprintf(tgt, sizeof(tgt), "/%" PRIu64, target);
	(void)printf("\r\033[K%s %" PRIu64 "%s done  PASS %" PRIu64 "  FAIL %" PRIu64
	             "  %.1f/min  ETA %s  %s",
	             enr_batch_opened(b)->batch, done, tgt, c->pass, c->fail, rate, eta, what);
	(void)fflush(stdout);
}

static void event(bool tty, const struct enr_batch *b, const struct counts *c, const char *fmt, ...)
        IDP_PRINTF(4, 5);
static void event(bool tty, const struct enr_batch *b, const struct counts *c, const char *fmt, ...)
{
	if (tty)
		(void)printf("\r\033[K");
	va_list ap;
	va_start(ap, fmt);
	// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
	(void)vprintf(fmt, ap);
	va_end(ap);
	char tgt[32] = "";
	if (c->target > 0)
		(void)snprintf(tgt, sizeof(tgt), "/%" PRIu64, c->target);
	(void)printf("  [%" PRIu64 "%s pass %" PRIu64 " fail %" PRIu64 "]\n", enr_batch_count(b),
	             tgt, c->pass, c->fail);
	if (tty)
		progress(b, c, "");
	(void)fflush(stdout);
}

static bool load_rule(const char *spec, struct fmt_idrule **out, const char *name)
{
	*out = NULL;
	if (spec == NULL)
		return true;
	struct idp_error err = {0};
	if (fmt_idrule_parse(spec, strlen(spec), out, &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: --%s: %s\n", prog, name, err.msg);
		return false;
	}
	return true;
}

static int close_and_sign(const struct opts *o, const char *batch);

static const char *stage_name(enum enr_stage st)
{
	switch (st) {
	case ENR_STAGE_HELLO:
		return "HELLO";
	case ENR_STAGE_INFO:
		return "INFO";
	case ENR_STAGE_CHALLENGE:
		return "CHALLENGE";
	default:
		return "the check";
	}
}

/* The device last reported, while it stays connected. */
struct held {
	bool on;
	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t spki_len;
	char id[FMT_WIRE_ID_MAX + 1];
};

static void hold(struct held *h, const struct fmt_wire_info *in)
{
	h->on = true;
	memcpy(h->spki, in->spki, in->spki_len);
	h->spki_len = in->spki_len;
	(void)snprintf(h->id, sizeof(h->id), "%.*s", (int)in->device_id_len, in->device_id);
}

/* Is the held device what answered? An answer to HELLO without INFO
 * (a device busy or confused) is no sign of a change either. */
static bool held_still(const struct held *h, const struct enr_result *r)
{
	if (r->gone)
		return false;
	if (!r->identified)
		return r->stage > ENR_STAGE_HELLO;
	return r->info.spki_len == h->spki_len &&
	       memcmp(r->info.spki, h->spki, h->spki_len) == 0 &&
	       r->info.device_id_len == strnlen(h->id, sizeof(h->id)) &&
	       memcmp(r->info.device_id, h->id, r->info.device_id_len) == 0;
}

/* run and read: once = read one device (read's exit code is its result). */
static int cmd_run(const struct opts *o, bool once)
{
	uint64_t target = 0, baud = 115200, window = 0, timeout = 0;
	if (!need(o->state, "state") || !need(o->station, "station"))
		return EXIT_USAGE;
	if ((o->port != NULL) + (o->usb != NULL) + o->pty != 1) {
		(void)fprintf(stderr, "%s: give one of --port PATH, --usb VID:PID or --pty\n", prog);
		return EXIT_USAGE;
	}
	struct enr_usb_match um;
	struct idp_error perr = {0};
	if (o->usb != NULL && enr_usb_parse(o->usb, o->usb_iface, &um, &perr) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, perr.msg);
		return EXIT_USAGE;
	}
	if ((o->count != NULL && !parse_u64(o->count, "count", FMT_MANIFEST_COUNT_MAX, &target)) ||
	    (o->baud != NULL && !parse_u64(o->baud, "baud", 4000000, &baud)) ||
	    (o->hello_window != NULL &&
	     !parse_u64(o->hello_window, "hello-window-ms", 3600000, &window)) ||
	    (o->timeout != NULL && !parse_u64(o->timeout, "timeout-ms", 600000, &timeout)))
		return EXIT_USAGE;
	struct fmt_idrule *id_rule = NULL, *serial_rule = NULL;
	if (!load_rule(o->id_rule, &id_rule, "id-rule") ||
	    !load_rule(o->serial_rule, &serial_rule, "serial-rule")) {
		fmt_idrule_free(id_rule);
		return EXIT_USAGE;
	}
	int rc = EXIT_LOCAL;
	struct idp_error err = {0};
	struct enr_batch *b = NULL;
	struct fmt_wire_decoder *dec = fmt_wire_decoder_new();
	struct enr_line l = {-1, -1, NULL};
	struct enr_usb *usb = NULL;
	bool busy = false, resumed = false;
	int lock = lock_state(o->state, &busy);
	if (lock < 0) {
		rc = busy ? EXIT_BUSY : EXIT_LOCAL;
		goto out;
	}
	if (dec == NULL)
		goto out;
	/* One open batch per station: a restart resumes it (with or without
	 * --batch), and no other batch starts before it is closed. */
	char open_batch[FMT_ID_MAX + 1];
	bool have_open = false;
	if (enr_batch_find_open(o->state, open_batch, &have_open, &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		goto out;
	}
	const char *batch = o->batch != NULL ? o->batch : have_open ? open_batch : NULL;
	if (batch == NULL) {
		(void)fprintf(stderr, "%s: no open batch in %s: give --batch ID\n", prog, o->state);
		rc = EXIT_USAGE;
		goto out;
	}
	if (have_open && strcmp(batch, open_batch) != 0) {
		(void)fprintf(stderr,
		              "%s: batch %s is still open: resume it (--batch %s) or close "
		              "it first\n",
		              prog, open_batch, open_batch);
		rc = EXIT_FAIL;
		goto out;
	}
	enum idp_err e =
	        enr_batch_open(o->state, batch, o->station, o->product != NULL ? o->product : "",
	                       target, &b, &resumed, &err);
	if (e != IDP_OK) {
		if (e == IDP_E_NOTFOUND || (e == IDP_E_FORMAT && o->product == NULL &&
		                            strstr(err.msg, "product") != NULL)) {
			(void)fprintf(stderr, "%s: batch %s is new: give --product\n", prog, batch);
			rc = EXIT_USAGE;
		} else {
			(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
			rc = e == IDP_E_ARG        ? EXIT_USAGE
			     : e == IDP_E_CONFLICT ? EXIT_FAIL
			                           : EXIT_LOCAL;
		}
		goto out;
	}
	if (resumed)
		(void)printf("resumed batch %s: %" PRIu64 " devices from the journal\n", batch,
		             enr_batch_count(b));
	else
		(void)printf("opened batch %s\n", batch);
	char pty_name[ENR_PATH_MAX + 1];
	if (o->usb != NULL ? enr_usb_open(&um, &usb, &err) != IDP_OK
	                   : enr_line_open(o->pty ? NULL : o->port, baud, &l, pty_name, &err) !=
	                             IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		goto out;
	}
	if (o->pty) {
		(void)printf("pty %s\n", pty_name);
		(void)fflush(stdout);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN; /* a USB device unplugged under a write: EPIPE, not death */
	(void)sigaction(SIGPIPE, &sa, NULL);
	bool tty = isatty(STDOUT_FILENO) == 1;
	pthread_t cmd_thread;
	bool cmd_started = !once && isatty(STDIN_FILENO) == 1 &&
	                   pthread_create(&cmd_thread, NULL, stdin_commands, NULL) == 0;
	if (cmd_started)
		(void)pthread_detach(cmd_thread);
	struct enr_station_cfg cfg = {.station_id = o->station,
	                              .id_rule = id_rule,
	                              .serial_rule = serial_rule,
	                              .hello_window_ms = (unsigned)window,
	                              .info_timeout_ms = (unsigned)timeout,
	                              .challenge_timeout_ms = (unsigned)timeout,
	                              .stop = &stop_flag};
	if (target == 0)
		target = enr_batch_target(b); /* a resumed batch keeps its count */
	struct counts c = {0, 0, fio_mono_ms(), target};
	/* A device already reported (PASS, or FAIL with its identity known)
	 * that stays connected is held: it is only asked who it is (HELLO and
	 * INFO, nothing signed) until another device answers, nobody does, or
	 * the port goes away; it is never read or reported again. */
	struct held h = {0};
	bool port_gone = false;
	uint64_t usb_waited = 0;
	rc = 0;
	while (!stop_flag && (target == 0 || enr_batch_count(b) < target)) {
		static struct enr_result res;
		if (tty)
			progress(b, &c, h.on ? "waiting for the next device" : "waiting for a device");
		if (usb != NULL && l.fd < 0) {
			/* USB: wait for the next device to be plugged in. */
			char desc[ENR_USB_DESC_MAX];
			enum idp_err ae = enr_usb_attach(usb, 500, &stop_flag, &l.fd, desc, &err);
			if (ae == IDP_E_NOTFOUND) {
				usb_waited += 500;
				if (once && usb_waited >= (window ? window : FMT_WIRE_HELLO_WINDOW_MS)) {
					(void)printf("NO DEVICE  usb: no device %s plugged in\n",
					             o->usb);
					rc = EXIT_NODEVICE;
					break;
				}
				continue;
			}
			if (ae != IDP_OK) {
				(void)fprintf(stderr, "%s%s: %s\n", tty ? "\n" : "", prog, err.msg);
				continue;
			}
			usb_waited = 0;
		}
		enum idp_err re = h.on ? enr_station_identify(l.fd, dec, &cfg, &res, &err)
		                       : enr_station_read(l.fd, dec, &cfg, &res, &err);
		if (re == IDP_OK && usb != NULL && res.gone) {
			/* Unplugged (or the bridge failed): say so, and forget the fd. */
			char why[IDP_ERROR_MSG_MAX];
			enr_usb_gone_reason(usb, why);
			(void)snprintf(res.reason, sizeof(res.reason), "%.200s during %s",
			               why[0] != '\0' ? why : "usb: device gone",
			               stage_name(res.stage));
			enr_usb_detach(usb);
			l.fd = -1;
			h.on = false;
			if (res.stage == ENR_STAGE_HELLO && !once)
				continue; /* gone before it answered: nothing to report */
		}
		if (re != IDP_OK) {
			(void)fprintf(stderr, "\n%s: %s\n", prog, err.msg);
			rc = EXIT_LOCAL;
			break;
		}
		if (res.stopped)
			break;
		if (h.on) {
			if (held_still(&h, &res)) {
				struct timespec ts = {0, WAIT_SAME_MS * 1000000L};
				(void)nanosleep(&ts, NULL);
				continue;
			}
			h.on = false; /* another device, none, or the port failed: */
			continue;     /* read what is there now, quietly */
		}
		if (!res.pass && res.stage == ENR_STAGE_HELLO && !res.gone &&
		    strncmp(res.reason, "device: no answer", 17) == 0) {
			if (once) {
				(void)printf("NO DEVICE  %s\n", res.reason);
				rc = EXIT_NODEVICE;
				break;
			}
			continue; /* nobody on the line yet */
		}
		if (res.gone && usb == NULL) {
			/* The port failed (a USB tty unplugged): FAIL the device
			 * being read, if any, then wait quietly. */
			struct timespec ts = {0, 500000000L};
			(void)nanosleep(&ts, NULL);
			if (res.stage == ENR_STAGE_HELLO && !once) {
				if (!port_gone)
					(void)fprintf(stderr, "\n%s: %s\n", prog, res.reason);
				port_gone = true;
				continue;
			}
		}
		port_gone = false;
		/* Continuous mode: a device reported stays quiet until it goes. */
		const char *unplug = once ? "" : ": unplug it";
		if (res.identified && !res.gone && !once)
			hold(&h, &res.info);
		if (res.pass) {
			const struct fmt_wire_info *in = &res.info;
			enum idp_err a = enr_batch_add(b, in, res.nonce, &res.proof,
			                               (int64_t)time(NULL), &err);
			if (a == IDP_E_DUPLICATE) {
				c.fail++;
				event(tty, b, &c, "FAIL  %s  %s%s", in->device_id, err.msg, unplug);
				if (once) {
					rc = EXIT_FAIL;
					break;
				}
				continue;
			}
			if (a != IDP_OK) {
				/* Not durable: never shown as PASS. */
				(void)fprintf(stderr, "\n%s: journal: %s\n", prog, err.msg);
				rc = EXIT_LOCAL;
				break;
			}
			c.pass++;
			char mac[FMT_MAC_TEXT_LEN + 1];
			fmt_mac_format(in->mac, mac);
			event(tty, b, &c, "PASS  %s  %s  %s  %s  %.2fs", in->device_id, in->serial,
			      mac, fmt_key_type_name(in->key_type),
			      (double)res.elapsed_ms / 1000.0);
			/* The label only now: the key was proved and the device is on disk. */
			if (o->label_dir != NULL &&
			    enr_label_write(o->label_dir, in, o->print_cmd, &err) != IDP_OK)
				(void)fprintf(stderr, "%s: LABEL %s not made: %s\n", prog,
				              in->device_id, err.msg);
			if (once)
				break;
			continue;
		}
		c.fail++;
		event(tty, b, &c, "FAIL  %s  %s%s", res.identified ? res.info.device_id : "-",
		      res.reason, h.on ? unplug : "");
		if (once) {
			rc = EXIT_FAIL;
			break;
		}
	}
	if (tty)
		(void)printf("\n");
	if (once || rc != 0)
		goto out;
	if (enr_batch_count(b) == 0) {
		(void)printf("batch %s has no devices: left open\n", batch);
		goto out;
	}
	if (enr_batch_close(b, (int64_t)time(NULL), &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		rc = EXIT_LOCAL;
		goto out;
	}
	(void)printf("closed batch %s: %" PRIu64 " devices (PASS %" PRIu64 ", FAIL %" PRIu64
	             " this run)\n",
	             batch, enr_batch_count(b), c.pass, c.fail);
	if (o->key != NULL)
		rc = close_and_sign(o, batch);
	else
		(void)printf("sign it with: %s close --batch %s --key KEY\n", prog, batch);
out:
	(void)fflush(stdout);
	if (usb != NULL)
		l.fd = -1; /* the bridge's: closed with it */
	enr_usb_close(usb);
	enr_line_close(&l);
	enr_batch_free(b);
	fmt_wire_decoder_free(dec);
	fmt_idrule_free(id_rule);
	fmt_idrule_free(serial_rule);
	if (lock >= 0)
		(void)close(lock);
	return rc;
}

/* ---------------------------------------------------------------- close */

static int close_and_sign(const struct opts *o, const char *batch)
{
	struct enr_signing s;
	struct idp_error err = {0};
	uint64_t seq = 0, count = 0;
	uint8_t digest[FMT_MANIFEST_HASH_LEN];
	bool already = false;
	enum idp_err e = enr_signing_load(o->key, o->cert, o->chain, &s, &err);
	if (e == IDP_OK)
		e = enr_batch_manifest(o->state, batch, &s, (int64_t)time(NULL), &seq, &count,
		                       digest, &already, &err);
	enr_signing_free(&s);
	if (e != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		return e == IDP_E_CONFLICT || e == IDP_E_VERIFY ? EXIT_FAIL : EXIT_LOCAL;
	}
	char hex[65], path[ENR_PATH_MAX + 1];
	fmt_key_fingerprint_hex(digest, hex);
	if (enr_batch_path(o->state, batch, ".manifest", path, &err) != IDP_OK)
		return EXIT_LOCAL;
	if (already)
		(void)printf("%s: already signed as seq %" PRIu64 "\n", path, seq);
	else
		(void)printf("%s: %" PRIu64 " devices, seq %" PRIu64
		             ", sha256 %s: pending upload\n",
		             path, count, seq, hex);
	return 0;
}

static int cmd_close(const struct opts *o)
{
	if (!need(o->state, "state") || !need(o->key, "key"))
		return EXIT_USAGE;
	bool busy = false;
	int lock = lock_state(o->state, &busy);
	if (lock < 0)
		return busy ? EXIT_BUSY : EXIT_LOCAL;
	struct idp_error err = {0};
	char batch[FMT_ID_MAX + 1];
	int rc = 0;
	bool found = false;
	if (o->batch != NULL) {
		(void)snprintf(batch, sizeof(batch), "%s", o->batch);
		uint64_t n = 0;
		bool closed = false;
		if (enr_batch_summary(o->state, batch, NULL, &n, &closed, &err) != IDP_OK) {
			(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
			rc = err.code == IDP_E_NOTFOUND ? EXIT_FAIL : EXIT_LOCAL;
			goto out;
		}
		found = !closed;
	} else if (enr_batch_find_open(o->state, batch, &found, &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		rc = EXIT_LOCAL;
		goto out;
	} else if (!found) {
		(void)fprintf(stderr,
		              "%s: no open batch in %s (give --batch to sign a closed one)\n", prog,
		              o->state);
		rc = EXIT_FAIL;
		goto out;
	}
	if (found) {
		/* Resume the journal (cutting a torn tail) and close it. */
		struct enr_batch *b = NULL;
		bool resumed = false;
		enum idp_err e =
		        enr_batch_open(o->state, batch, o->station != NULL ? o->station : "", "", 0,
		                       &b, &resumed, &err);
		if (e == IDP_E_CONFLICT && o->station == NULL) {
			struct fmt_journal_entry open;
			uint64_t n = 0;
			bool closed = false;
			if (enr_batch_summary(o->state, batch, &open, &n, &closed, &err) == IDP_OK)
				e = enr_batch_open(o->state, batch, open.station, "", 0, &b,
				                   &resumed, &err);
		}
		if (e == IDP_OK)
			e = enr_batch_close(b, (int64_t)time(NULL), &err);
		enr_batch_free(b);
		if (e != IDP_OK) {
			(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
			rc = e == IDP_E_FORMAT || e == IDP_E_CONFLICT ? EXIT_FAIL : EXIT_LOCAL;
			goto out;
		}
	}
	rc = close_and_sign(o, batch);
out:
	(void)close(lock);
	return rc;
}

/* ---------------------------------------------------------------- upload */

static int upload_one(const struct opts *o, struct fio_httpc *hc, const char *batch)
{
	char mpath[ENR_PATH_MAX + 1], spath[ENR_PATH_MAX + 8], status[ENR_STATUS_MAX];
	struct idp_error err = {0};
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	char *sig64 = NULL, *hdr = NULL;
	int rc = EXIT_LOCAL;
	struct fio_httpc_resp resp;
	memset(&resp, 0, sizeof(resp));
	/* The manifest is sent from its file as it is read, and checked as it
	 * goes: a damaged file is stopped before its end leaves. */
	struct fmt_manifest_check chk = {0};
	if (enr_batch_path(o->state, batch, ".manifest", mpath, &err) != IDP_OK)
		goto out;
	(void)snprintf(spath, sizeof(spath), "%s.sig", mpath);
	if (access(mpath, F_OK) != 0)
		(void)idp_error_set(&err, IDP_E_NOTFOUND, "%s: %s", mpath, strerror(errno));
	if (err.code != IDP_OK || fmt_file_read(spath, SIG_MAX, &sig, &sig_len, &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s: %s\n", prog, batch, err.msg);
		rc = err.code == IDP_E_NOTFOUND ? EXIT_FAIL : EXIT_LOCAL;
		goto out;
	}
	size_t n64 = fmt_b64_encoded_len(FMT_B64_STD, sig_len);
	sig64 = malloc(n64 + 1);
	hdr = malloc(n64 + 32);
	if (sig64 == NULL || hdr == NULL)
		goto out;
	(void)fmt_b64_encode(FMT_B64_STD, sig, sig_len, sig64);
	(void)snprintf(hdr, n64 + 32, "Idprov-Signature: %s", sig64);
	const char *headers[] = {hdr, NULL};
	struct fio_httpc_req req = {.method = "POST",
	                            .path = "/v1/batches",
	                            .content_type = "application/vnd.idprov.manifest",
	                            .headers = headers,
	                            .idempotent = true};
	const struct fio_httpc_file file = {mpath, fmt_manifest_check_piece, &chk};
	enum idp_err e = fio_httpc_do_file(hc, &req, &file, &resp, &err);
	if (e != IDP_OK && resp.local) {
		/* The file, not the server: the batch stays pending. */
		(void)fprintf(stderr, "%s: %s: %s\n", prog, batch, err.msg);
		rc = e == IDP_E_NOTFOUND ? EXIT_FAIL : EXIT_LOCAL;
		goto out;
	}
	if (e == IDP_OK) {
		struct fmt_api_batch ans;
		struct idp_error perr = {0};
		if (fmt_api_batch_parse(resp.body, resp.len, &ans, &perr) != IDP_OK) {
			(void)fprintf(stderr, "%s: %s: server answered %ld: %s\n", prog, batch,
			              resp.status, perr.msg);
			rc = EXIT_PENDING;
			goto out;
		}
		char line[ENR_STATUS_MAX];
		(void)snprintf(line, sizeof(line), "uploaded %ld devices %" PRId64 "%s%s",
		               resp.status, ans.devices, ans.created ? "" : " (already imported)",
		               ans.gap ? " gap flagged" : "");
		if (enr_batch_status_set(o->state, batch, line, &err) != IDP_OK) {
			(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
			goto out;
		}
		(void)printf("%s: %s\n", batch, line);
		rc = 0;
		goto out;
	}
	bool final =
	        resp.status >= 400 && resp.status < 500 && resp.status != 408 && resp.status != 429;
	if (final) {
		(void)snprintf(status, sizeof(status), "refused: %.480s", err.msg);
		if (enr_batch_status_set(o->state, batch, status, &err) != IDP_OK)
			goto out;
		(void)fprintf(stderr, "%s: %s: REFUSED: %s\n", prog, batch, status + 9);
		rc = EXIT_FAIL;
	} else {
		(void)fprintf(stderr, "%s: %s: not delivered, still pending: %s\n", prog, batch,
		              err.msg);
		rc = EXIT_PENDING;
	}
out:
	fio_httpc_resp_free(&resp);
	fmt_manifest_check_free(&chk);
	free(sig);
	free(sig64);
	free(hdr);
	return rc;
}

struct pending_ctx {
	const struct opts *o;
	struct fio_httpc *hc;
	int worst;
	unsigned tried;
};

static void on_pending(void *arg, const char *batch)
{
	struct pending_ctx *p = arg;
	char status[ENR_STATUS_MAX];
	if (enr_batch_status_get(p->o->state, batch, status, NULL) != IDP_OK ||
	    strcmp(status, "pending") != 0)
		return;
	p->tried++;
	int rc = upload_one(p->o, p->hc, batch);
	if (rc > p->worst)
		p->worst = rc;
}

static int cmd_upload(const struct opts *o)
{
	uint64_t attempts = 5;
	if (!need(o->state, "state") || !need(o->server, "server") || !need(o->ca, "ca") ||
	    !need(o->client_cert, "client-cert") || !need(o->client_key, "client-key"))
		return EXIT_USAGE;
	if ((o->batch == NULL) == !o->pending) {
		(void)fprintf(stderr, "%s: give --batch ID or --pending\n", prog);
		return EXIT_USAGE;
	}
	if (o->attempts != NULL &&
	    !parse_u64(o->attempts, "attempts", FIO_HTTPC_ATTEMPTS_MAX, &attempts))
		return EXIT_USAGE;
	bool busy = false;
	int lock = lock_state(o->state, &busy);
	if (lock < 0)
		return busy ? EXIT_BUSY : EXIT_LOCAL;
	struct fio_httpc_opts ho = {.base_url = o->server,
	                            .ca_file = o->ca,
	                            .client_cert = o->client_cert,
	                            .client_key = o->client_key,
	                            .attempts = attempts == 0 ? 1 : (unsigned)attempts,
	                            .backoff_ms = 200};
	struct fio_httpc *hc = NULL;
	struct idp_error err = {0};
	int rc;
	if (fio_httpc_new(&ho, &hc, &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		rc = EXIT_USAGE;
	} else if (o->batch != NULL) {
		rc = upload_one(o, hc, o->batch);
	} else {
		struct pending_ctx p = {o, hc, 0, 0};
		if (enr_batch_each(o->state, on_pending, &p, &err) != IDP_OK) {
			(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
			p.worst = EXIT_LOCAL;
		}
		if (p.tried == 0)
			(void)printf("no pending batches\n");
		rc = p.worst;
	}
	fio_httpc_free(hc);
	(void)close(lock);
	return rc;
}

/* ---------------------------------------------------------------- batches */

struct list_ctx {
	const char *dir;
	int rc;
};

static void on_list(void *arg, const char *batch)
{
	struct list_ctx *l = arg;
	struct fmt_journal_entry open;
	uint64_t n = 0;
	bool closed = false;
	char status[ENR_STATUS_MAX];
	struct idp_error err = {0};
	if (enr_batch_summary(l->dir, batch, &open, &n, &closed, &err) != IDP_OK) {
		(void)printf("%-24s damaged: %s\n", batch, err.msg);
		l->rc = EXIT_LOCAL;
		return;
	}
	if (enr_batch_status_get(l->dir, batch, status, &err) != IDP_OK)
		(void)snprintf(status, sizeof(status), "status unreadable: %.400s", err.msg);
	const char *state = !closed ? "open" : status[0] == '\0' ? "closed, not signed" : status;
	(void)printf("%-24s %8" PRIu64 " devices  %s\n", batch, n, state);
}

static void on_device_line(void *arg, const struct fmt_journal_entry *e)
{
	(void)arg;
	char mac[FMT_MAC_TEXT_LEN + 1];
	fmt_mac_format(e->mac, mac);
	(void)printf("%s  %s  %s  %s\n", e->id, e->serial, mac, fmt_key_type_name(e->key_type));
}

static int cmd_batches(const struct opts *o)
{
	if (!need(o->state, "state"))
		return EXIT_USAGE;
	struct list_ctx l = {o->state, 0};
	struct idp_error err = {0};
	if (o->batch != NULL) {
		enum idp_err e = enr_batch_devices(o->state, o->batch, on_device_line, NULL, &err);
		if (e != IDP_OK)
			(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		return e == IDP_OK ? 0 : e == IDP_E_NOTFOUND ? EXIT_FAIL : EXIT_LOCAL;
	}
	if (enr_batch_each(o->state, on_list, &l, &err) != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		return EXIT_LOCAL;
	}
	return l.rc;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage();
		return EXIT_USAGE;
	}
	const char *verb = argv[1];
	if (strcmp(verb, "--version") == 0 || strcmp(verb, "version") == 0) {
		(void)printf("%s %s\n", prog, IDP_VERSION);
		return 0;
	}
	if (strcmp(verb, "-h") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "help") == 0) {
		usage();
		return 0;
	}
	struct opts o;
	memset(&o, 0, sizeof(o));
	char *config = NULL;
	if (!parse_opts(argc - 2, argv + 2, &o) || !load_config(&o, &config)) {
		free(config);
		usage();
		return EXIT_USAGE;
	}
	if (o.state == NULL)
		o.state = "/var/lib/idprov-station";
	int rc = -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		(void)fprintf(stderr, "%s: cannot initialise libcurl\n", prog);
		free(config);
		return EXIT_LOCAL;
	}
	if (strcmp(verb, "run") == 0)
		rc = cmd_run(&o, false);
	else if (strcmp(verb, "read") == 0)
		rc = cmd_run(&o, true);
	else if (strcmp(verb, "close") == 0)
		rc = cmd_close(&o);
	else if (strcmp(verb, "upload") == 0)
		rc = cmd_upload(&o);
	else if (strcmp(verb, "batches") == 0)
		rc = cmd_batches(&o);
	else if (strcmp(verb, "ports") == 0)
		rc = cmd_ports(&o);
	curl_global_cleanup();
	free(config);
	if (rc >= 0) {
		if (fflush(stdout) != 0 || ferror(stdout)) {
			(void)fprintf(stderr, "%s: writing the output failed\n", prog);
			return rc == 0 ? EXIT_LOCAL : rc;
		}
		return rc;
	}
	(void)fprintf(stderr, "%s: unknown verb \"%s\"\n", prog, verb);
	usage();
	return EXIT_USAGE;
}
