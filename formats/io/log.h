/*
 * log.h - the programs' structured log (idprovd, idprov-agent): one line
 * per event on stderr, "ts=... level=... event=... key=value ..."; under
 * systemd (JOURNAL_STREAM set) each line starts with the sd-daemon priority
 * prefix "<N>", so journald keeps the level.
 *
 * Values that come from outside (device IDs, paths a client sent, error
 * messages, which may quote input) go through fio_log_esc() first (for an
 * idp_error: fio_log_err()), so that a device cannot forge or split log
 * lines. Thread-safe: each line is one write(2).
 *
 * Rate limit: at most FIO_LOG_BURST lines of one event name per second (UTC
 * wall-clock second); the rest are dropped and counted (per event, and in
 * fio_log_suppressed_total), and the next line of that event, or
 * fio_log_flush(), first writes "event=log.suppressed of=EVENT count=N". So
 * a flood cannot push journald into its own rate limit and lose the lines
 * that matter, and nothing is lost without a trace.
 */
#ifndef IDP_FORMATS_IO_LOG_H
#define IDP_FORMATS_IO_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define FIO_LOG_LINE_MAX 2048u /* longer lines are cut, marked with "..." */
#define FIO_LOG_ESC_MAX  512u  /* a buffer big enough for most escaped values */
#define FIO_LOG_BURST    50u   /* default: lines of one event per second */
#define FIO_LOG_EVENTS   128u  /* distinct event names rate-limited (more share one slot) */

/* Milliseconds of CLOCK_MONOTONIC: deadlines, backoffs and waits of every
 * program (never the wall clock, which an administrator may set). */
int64_t fio_mono_ms(void);

enum fio_log_level {
	FIO_LOG_ERROR = 0,
	FIO_LOG_WARN = 1,
	FIO_LOG_INFO = 2,
	FIO_LOG_DEBUG = 3,
};

/* Lines above this level are dropped (default FIO_LOG_INFO). Call before
 * threads start. */
void fio_log_set_level(enum fio_log_level level);

/* Lines of one event per second before the rest are suppressed (0: no
 * limit). Call before threads start. */
void fio_log_set_burst(unsigned burst);

/* Lines suppressed by the rate limit since the start. */
uint64_t fio_log_suppressed_total(void);

/* Write the pending "log.suppressed" summaries now (at shutdown). */
void fio_log_flush(void);

/* Log event with the key=value pairs of fmt (values already escaped). */
void fio_log(enum fio_log_level level, const char *event, const char *fmt, ...) IDP_PRINTF(3, 4);

/* s[0..len) as a log value into buf[size]: bare when it is only safe
 * characters, else double-quoted with \", \\ and \xNN for anything outside
 * printable ASCII; cut with "..." when too long. Returns buf. */
const char *fio_log_esc(const char *s, size_t len, char *buf, size_t size);

/* err's message as a log value, escaped as fio_log_esc does (an error
 * message may quote client input: a newline or quote in it must not split
 * or forge a line). err NULL or without a message gives "-". Returns buf. */
const char *fio_log_err(const struct idp_error *err, char buf[static FIO_LOG_ESC_MAX]);

#endif /* IDP_FORMATS_IO_LOG_H */
