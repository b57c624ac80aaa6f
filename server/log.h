/*
 * log.h - idprovd's structured log: one line per event on stderr (journald
 * under systemd), "ts=... level=... event=... key=value ...".
 *
 * Values that come from outside (device IDs, paths a client sent, error
 * messages quoting input) go through srv_log_esc() first, so that a device
 * cannot forge or split log lines. Thread-safe: each line is one write(2).
 */
#ifndef IDP_SERVER_LOG_H
#define IDP_SERVER_LOG_H

#include <stddef.h>

#include "formats/error.h"

#define SRV_LOG_LINE_MAX 2048u /* longer lines are cut, marked with "..." */
#define SRV_LOG_ESC_MAX  512u  /* a buffer big enough for most escaped values */

enum srv_log_level {
	SRV_LOG_ERROR = 0,
	SRV_LOG_WARN = 1,
	SRV_LOG_INFO = 2,
	SRV_LOG_DEBUG = 3,
};

/* Lines above this level are dropped (default SRV_LOG_INFO). Call before
 * threads start. */
void srv_log_set_level(enum srv_log_level level);

/* Log event with the key=value pairs of fmt (values already escaped). */
void srv_log(enum srv_log_level level, const char *event, const char *fmt, ...) IDP_PRINTF(3, 4);

/* s[0..len) as a log value into buf[size]: bare when it is only safe
 * characters, else double-quoted with \", \\ and \xNN for anything outside
 * printable ASCII; cut with "..." when too long. Returns buf. */
const char *srv_log_esc(const char *s, size_t len, char *buf, size_t size);

#endif /* IDP_SERVER_LOG_H */
