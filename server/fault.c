/*
 * fault.c - see fault.h.
 */
#include "server/fault.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/io/log.h"
#include "server/handlers.h"

static atomic_uint_least64_t full_total;
static atomic_uint_least64_t full_logged;  /* full_total at the last store.full line */
static atomic_int_least64_t full_log_at;   /* CLOCK_MONOTONIC seconds of that line; 0: none */

uint64_t srv_fault_full_total(void)
{
	return atomic_load_explicit(&full_total, memory_order_relaxed);
}

/* Log the full store unless a line went out less than a minute ago: one
 * thread wins the slot, the others only count. */
static void full_log(unsigned loop, const struct idp_error *err)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t now = (int64_t)ts.tv_sec + 1; /* never 0 */
	int64_t last = atomic_load_explicit(&full_log_at, memory_order_relaxed);
	if (last != 0 && now - last < SRV_FAULT_LOG_EVERY_S)
		return;
	if (!atomic_compare_exchange_strong(&full_log_at, &last, now))
		return;
	uint64_t total = srv_fault_full_total();
	uint64_t since = total - atomic_exchange(&full_logged, total);
	char ebuf[FIO_LOG_ESC_MAX];
	fio_log(FIO_LOG_ERROR, "store.full",
	        "loop=%u refused=%llu error=%s hint=\"free space where the state directory is; "
	        "requests are answered 503 storage_full until then\"",
	        loop, (unsigned long long)since,
	        err != NULL ? fio_log_err(err, ebuf) : "\"storage full\"");
}

bool srv_fault_answer(unsigned loop, struct evhttp_request *req, enum fmt_api_err_code code,
                      const struct idp_error *err)
{
	if (code == FMT_API_ERR_STORAGE_FULL) {
		(void)atomic_fetch_add_explicit(&full_total, 1, memory_order_relaxed);
		full_log(loop, err);
		srv_handlers_error_retry(req, code, "storage full: try again later",
		                         SRV_FAULT_FULL_RETRY_S);
		return true;
	}
	if (code == FMT_API_ERR_UNAVAILABLE) {
		if (err != NULL) {
			char ebuf[FIO_LOG_ESC_MAX];
			fio_log(FIO_LOG_ERROR, "request.error", "loop=%u code=%s error=%s", loop,
			        fmt_api_err_code_name(code), fio_log_err(err, ebuf));
		}
		srv_handlers_error_retry(req, code, "try again later", SRV_FAULT_BUSY_RETRY_S);
		return true;
	}
	return false;
}

bool srv_fault_test(const char *name)
{
	const char *f = getenv("IDPROVD_TEST_FAULT");
	return f != NULL && strcmp(f, name) == 0;
}
