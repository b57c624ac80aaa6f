/*
 * log.c - see log.h.
 */
#include "server/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int max_level = SRV_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void srv_log_set_level(enum srv_log_level level)
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

void srv_log(enum srv_log_level level, const char *event, const char *fmt, ...)
{
	if ((int)level > atomic_load(&max_level))
		return;
	char line[SRV_LOG_LINE_MAX];
	struct timeval tv;
	struct tm tm;
	(void)gettimeofday(&tv, NULL);
	(void)gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof(line),
	                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s event=%s ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, (int)(tv.tv_usec / 1000), level_names[level], event);
	if (n < 0)
		return;
	size_t used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	va_list ap;
	va_start(ap, fmt);
	used += vformat(line + used, sizeof(line) - used, fmt, ap);
	va_end(ap);
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

const char *srv_log_esc(const char *s, size_t len, char *buf, size_t size)
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
