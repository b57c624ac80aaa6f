/*
 * fault.h - how idprovd answers a store that cannot take a write now
 * (formats/api.md §9): full (no space, a quota or the file size limit) is
 * 503 storage_full, busy past its bound (another process holds the write
 * lock) 503 unavailable, both with Retry-After so that clients wait and
 * retry; nothing was written either way. A full store is logged once a
 * minute (event=store.full, with the refusals since the last line), not once
 * per request, and counted for GET /metrics.
 *
 * Thread-safety: any loop's thread (the counters are atomic).
 */
#ifndef IDP_SERVER_FAULT_H
#define IDP_SERVER_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/http.h>

#include "formats/api.h"
#include "formats/error.h"

#define SRV_FAULT_FULL_RETRY_S 10 /* Retry-After of storage_full, seconds */
#define SRV_FAULT_BUSY_RETRY_S 2  /* Retry-After of unavailable, seconds */
#define SRV_FAULT_LOG_EVERY_S  60 /* at most one store.full line per this many seconds */

/* When code (a 5xx of fmt_api_err_of) is storage_full or unavailable,
 * answer req with it and Retry-After, log as above (err: the failure, may be
 * NULL when the caller logged it) and return true; otherwise false and req
 * is untouched. loop names the event loop in the log. */
bool srv_fault_answer(unsigned loop, struct evhttp_request *req, enum fmt_api_err_code code,
                      const struct idp_error *err);

/* Requests refused with storage_full since the start (for /metrics). */
uint64_t srv_fault_full_total(void);

/* WARNING: test-only fault points (docs/design.md, "Fault points for
 * tests"). Whether IDPROVD_TEST_FAULT in the environment is name: the
 * caller then fails there as a crash would. Never set in service. */
bool srv_fault_test(const char *name);

#endif /* IDP_SERVER_FAULT_H */
