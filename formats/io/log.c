/*
 * log.c - see log.h.
 */
#include "formats/io/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int max_level = FIO_LOG_INFO;
static atomic_uint burst = FIO_LOG_BURST;
static atomic_uint_least64_t suppressed_total;

/* One rate-limit slot per event name (by hash; a collision only makes two
 * events share a budget). */
struct slot {
	char name[64];
	int64_t second;
	unsigned lines;
	uint64_t suppressed;
};

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[FIO_LOG_EVENTS];

int64_t fio_mono_ms(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fio_log_set_burst(unsigned b)
{
	atomic_store(&burst, b);
}

uint64_t fio_log_suppressed_total(void)
{
	return atomic_load(&suppressed_total);
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void fio_log_set_level(enum fio_log_level level)
{
	atomic_store(&max_level, (int)level);
}

/* vsnprintf into buf[size]; returns the length it wanted (0 on error). */
static size_t vformat(char *buf, size_t size, const char *fmt, va_list ap) IDP_PRINTF(3, 0);

static size_t vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	/* clang-tidy 14 reports an uninitialized va_list here, falsely, and only
	 * when several files are checked in one run. */
	// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
	int m = vsnprintf(buf, size, fmt, ap);
	return m < 0 ? 0 : (size_t)m;
}

static void emit(enum fio_log_level level, const char *event, const char *fmt, va_list ap)
        IDP_PRINTF(3, 0);

static void emitf(enum fio_log_level level, const char *event, const char *fmt, ...)
        IDP_PRINTF(3, 4);

static void emitf(enum fio_log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(level, event, fmt, ap);
	va_end(ap);
}

/* The slot of event: its own (found by FNV-1a hash and linear probing), or
 * a free one it takes; when all are taken by other names, the hashed one is
 * shared. Called with slots_lock held. */
static struct slot *slot_of(const char *event)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < sizeof(slots[0].name) - 1 && event[i] != '\0'; i++)
		h = (h ^ (uint8_t)event[i]) * 16777619u;
	for (size_t k = 0; k < FIO_LOG_EVENTS; k++) {
		struct slot *sl = &slots[(h + k) % FIO_LOG_EVENTS];
		if (sl->name[0] == '\0') {
			(void)snprintf(sl->name, sizeof(sl->name), "%s", event);
			return sl;
		}
		if (strncmp(sl->name, event, sizeof(sl->name) - 1) == 0)
			return sl;
	}
	return &slots[h % FIO_LOG_EVENTS];
}

/* True when this line of event may be written now. When a new second starts
 * with lines suppressed in the last one, *owed gets their count (0: none). */
static bool admit(const char *event, uint64_t *owed)
{
	*owed = 0;
	unsigned b = atomic_load(&burst);
	if (b == 0)
		return true;
	int64_t now = (int64_t)time(NULL);
	(void)pthread_mutex_lock(&slots_lock);
	struct slot *sl = slot_of(event);
	if (sl->second != now) {
		*owed = sl->suppressed;
		sl->second = now;
		sl->lines = 0;
		sl->suppressed = 0;
	}
	bool ok = sl->lines < b;
	if (ok)
		sl->lines++;
	else
		sl->suppressed++;
	(void)pthread_mutex_unlock(&slots_lock);
	if (!ok)
		atomic_fetch_add(&suppressed_total, 1);
	return ok;
}

/* The line that reports count suppressed lines of event. */
static void summary(const char *event, uint64_t count)
{
	char esc[FIO_LOG_ESC_MAX];
	(void)fio_log_esc(event, strnlen(event, sizeof(slots[0].name)), esc, sizeof(esc));
	emitf(FIO_LOG_WARN, "log.suppressed", "of=%s count=%llu", esc, (unsigned long long)count);
}

void fio_log_flush(void)
{
	for (size_t i = 0; i < FIO_LOG_EVENTS; i++) {
		char name[sizeof(slots[0].name)];
		uint64_t n;
		(void)pthread_mutex_lock(&slots_lock);
		n = slots[i].suppressed;
		slots[i].suppressed = 0;
		memcpy(name, slots[i].name, sizeof(name));
		(void)pthread_mutex_unlock(&slots_lock);
		if (n > 0)
			summary(name, n);
	}
}

void fio_log(enum fio_log_level level, const char *event, const char *fmt, ...)
{
	if ((int)level > atomic_load(&max_level))
		return;
	uint64_t owed = 0;
	bool ok = admit(event, &owed);
	if (owed > 0)
		summary(event, owed);
	if (!ok)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit(level, event, fmt, ap);
	va_end(ap);
}

static void emit(enum fio_log_level level, const char *event, const char *fmt, va_list ap)
{
	char line[FIO_LOG_LINE_MAX];
	struct timeval tv;
	struct tm tm;
	(void)gettimeofday(&tv, NULL);
	(void)gmtime_r(&tv.tv_sec, &tm);
	/* Under systemd (stderr is the journal) the sd-daemon prefix "<N>"
	 * gives journald the line's priority. */
	static const int prio[] = {3, 4, 6, 7};
	char pfx[8] = "";
	if (getenv("JOURNAL_STREAM") != NULL)
		(void)snprintf(pfx, sizeof(pfx), "<%d>", prio[level]);
	int n = snprintf(line, sizeof(line),
	                 "%sts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s event=%s ", pfx,
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, (int)(tv.tv_usec / 1000), level_names[level], event);
	if (n < 0)
		return;
	size_t used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	used += vformat(line + used, sizeof(line) - used, fmt, ap);
	if (used >= sizeof(line) - 1) {
		used = sizeof(line) - 1;
		line[used - 4] = line[used - 3] = line[used - 2] = '.';
		used -= 1;
	}
	while (used > 0 && line[used - 1] == ' ')
		used--;
	line[used++] = '\n';
	/* One write per line keeps lines whole between threads. */
	ssize_t w = write(STDERR_FILENO, line, used);
	(void)w;
}

static bool bare_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '[' || c == ']' ||
	       c == '@' || c == '+' || c == ',';
}

const char *fio_log_esc(const char *s, size_t len, char *buf, size_t size)
{
	if (size < 8) {
		if (size > 0)
			buf[0] = '\0';
		return buf;
	}
	bool bare = len > 0;
	for (size_t i = 0; i < len && bare; i++)
		bare = bare_ok(s[i]);
	size_t o = 0;
	if (!bare)
		buf[o++] = '"';
	size_t room = size - 5; /* closing quote, "...", NUL */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[5];
		size_t k;
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			k = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			(void)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
			k = 4;
		} else {
			tmp[0] = (char)c;
			k = 1;
		}
		if (o + k > room) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, tmp, k);
		o += k;
	}
	if (!bare)
		buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

const char *fio_log_err(const struct idp_error *err, char buf[static FIO_LOG_ESC_MAX])
{
	if (err == NULL || err->msg[0] == '\0')
		return fio_log_esc("-", 1, buf, FIO_LOG_ESC_MAX);
	return fio_log_esc(err->msg, strnlen(err->msg, sizeof(err->msg)), buf, FIO_LOG_ESC_MAX);
}
