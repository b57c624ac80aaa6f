/*
 * metrics.c - see metrics.h. Format: the Prometheus text exposition format
 * 0.0.4: "# HELP" and "# TYPE" once per family, then "name{label="value"}
 * number" lines; label values escape \, " and newline.
 */
#include "server/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "formats/version.h"
#include "server/admin.h"
#include "server/fault.h"
#include "server/handlers.h"
#include "formats/io/log.h"
#include "server/store.h"

/* The scrape being written. */
struct scrape {
	struct evbuffer *out;
	bool failed;
	const char *family; /* for labelled lines: the metric and its label name */
	const char *label;
};

static void add(struct scrape *sc, const char *fmt, ...) IDP_PRINTF(2, 3);
static void add(struct scrape *sc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (evbuffer_add_vprintf(sc->out, fmt, ap) < 0)
		sc->failed = true;
	va_end(ap);
}

static void family(struct scrape *sc, const char *name, const char *type, const char *help)
{
	add(sc, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the format wants it (\\, \", \n escaped). Values come
 * from the database, which another program may have written. */
static void add_label_value(struct scrape *sc, const char *v)
{
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '\\' || *p == '"')
			add(sc, "\\%c", *p);
		else if (*p == '\n')
			add(sc, "\\n");
		else
			add(sc, "%c", *p);
	}
}

static int add_group_line(void *ctx, const char *key, int64_t n)
{
	struct scrape *sc = ctx;
	add(sc, "%s{%s=\"", sc->family, sc->label);
	add_label_value(sc, key[0] != '\0' ? key : "none");
	add(sc, "\"} %" PRId64 "\n", n);
	return sc->failed ? 1 : 0;
}

/* One family of store counts by key. */
static enum idp_err group(struct scrape *sc, struct srv_store *st, enum srv_store_group g,
                          const char *name, const char *type, const char *label,
                          const char *help, struct idp_error *err)
{
	family(sc, name, type, help);
	sc->family = name;
	sc->label = label;
	return srv_store_group_count(st, g, add_group_line, sc, err);
}

/* The suspension (server/site.h) and the newest audit checkpoint's age
 * (server/checkpoint.h; absent before the first). */
static enum idp_err site_metrics(struct scrape *sc, struct srv_store *st, struct idp_error *err)
{
	struct srv_suspension sus;
	struct srv_checkpoint ck;
	enum idp_err rc = srv_store_suspension_get(st, &sus, err);
	if (rc != IDP_OK)
		return rc;
	family(sc, "idprov_suspended", "gauge",
	       "1 while provisioning is suspended (a rogue server, or an administrator).");
	add(sc, "idprov_suspended %d\n", sus.suspended ? 1 : 0);
	rc = srv_store_checkpoint_last(st, &ck, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	if (rc == IDP_OK) {
		int64_t age = (int64_t)time(NULL) - ck.at;
		family(sc, "idprov_audit_checkpoint_age_seconds", "gauge",
		       "Seconds since the newest signed audit checkpoint.");
		add(sc, "idprov_audit_checkpoint_age_seconds %" PRId64 "\n", age > 0 ? age : 0);
	}
	return rc;
}

void srv_metrics_get(struct srv_ctx *ctx, struct evhttp_request *req)
{
	if (!srv_admin_authorized(ctx, req))
		return;
	struct scrape sc = {.out = evbuffer_new()};
	struct idp_error err = {0};
	enum idp_err rc = IDP_OK;
	if (sc.out == NULL) {
		srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
		return;
	}
	family(&sc, "idprov_build_info", "gauge", "The running idprovd's version.");
	add(&sc, "idprov_build_info{version=\"%s\"} 1\n", IDP_VERSION);
	family(&sc, "idprov_http_responses_total", "counter",
	       "HTTP answers sent by this process, by status code.");
	for (int code = 100; code <= (int)SRV_HTTP_STATUS_MAX; code++) {
		uint64_t n = srv_http_answered(code);
		if (n > 0)
			add(&sc, "idprov_http_responses_total{code=\"%d\"} %" PRIu64 "\n", code, n);
	}
	family(&sc, "idprov_http_connections_total", "counter",
	       "TLS connections accepted by this process.");
	add(&sc, "idprov_http_connections_total %" PRIu64 "\n", srv_http_connections_total());
	family(&sc, "idprov_http_connections_open", "gauge", "TLS connections open now.");
	add(&sc, "idprov_http_connections_open %" PRId64 "\n", srv_http_connections_open());
	const struct srv_app *app = ctx->app;
	const struct {
		const char *by;
		struct srv_throttle *t;
	} thr[] = {{"address", app->throttle},
	           {"device", app->throttle_device},
	           {"station", app->throttle_station},
	           {"oob", app->throttle_oob}};
	family(&sc, "idprov_throttled_total", "counter",
	       "Requests refused 429 by a throttle: per client address (nonce, provision), "
	       "per device ID, per station (manifest uploads), per device ID for wrong "
	       "out-of-band proofs.");
	for (size_t i = 0; i < sizeof(thr) / sizeof(thr[0]); i++)
		add(&sc, "idprov_throttled_total{by=\"%s\"} %" PRIu64 "\n", thr[i].by,
		    thr[i].t != NULL ? srv_throttle_refused(thr[i].t) : 0);
	family(&sc, "idprov_storage_full_total", "counter",
	       "Requests refused 503 storage_full: the disk, a quota or the file size limit "
	       "was reached (server/fault.h).");
	add(&sc, "idprov_storage_full_total %" PRIu64 "\n", srv_fault_full_total());
	family(&sc, "idprov_log_suppressed_total", "counter",
	       "Log lines dropped by the per-event rate limit.");
	add(&sc, "idprov_log_suppressed_total %" PRIu64 "\n", fio_log_suppressed_total());

	int64_t pending = 0, flags = 0;
	rc = srv_store_device_count(ctx->store, SRV_DEV_PENDING, &pending, &err);
	if (rc == IDP_OK)
		rc = srv_store_flag_count(ctx->store, NULL, &flags, &err);
	if (rc == IDP_OK) {
		family(&sc, "idprov_pending_devices", "gauge",
		       "Devices waiting for an administrator's decision.");
		add(&sc, "idprov_pending_devices %" PRId64 "\n", pending);
		family(&sc, "idprov_open_flags", "gauge", "Open flags, all kinds.");
		add(&sc, "idprov_open_flags %" PRId64 "\n", flags);
		rc = group(&sc, ctx->store, SRV_GROUP_FLAG_KIND, "idprov_flags_open", "gauge",
		           "kind", "Open flags by kind.", &err);
	}
	if (rc == IDP_OK)
		rc = group(&sc, ctx->store, SRV_GROUP_DEVICE_STATE, "idprov_devices", "gauge",
		           "state", "Devices by state.", &err);
	if (rc == IDP_OK)
		rc = group(&sc, ctx->store, SRV_GROUP_AUDIT_EVENT, "idprov_decisions_total",
		           "counter", "event",
		           "Decisions and administrative acts recorded in the audit log, by event.",
		           &err);
	if (rc == IDP_OK)
		rc = group(&sc, ctx->store, SRV_GROUP_REFUSAL, "idprov_provision_refusals_total",
		           "counter", "reason", "Provisioning requests refused, by reason.", &err);
	if (rc == IDP_OK)
		rc = site_metrics(&sc, ctx->store, &err);
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	} else if (sc.failed) {
		srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
	} else {
		size_t len = evbuffer_get_length(sc.out);
		const unsigned char *p = evbuffer_pullup(sc.out, -1);
		if (p == NULL)
			srv_http_error(req, FMT_API_ERR_INTERNAL, "out of memory");
		else
			srv_http_reply(req, 200, SRV_METRICS_CONTENT_TYPE, p, len);
	}
	evbuffer_free(sc.out);
}
