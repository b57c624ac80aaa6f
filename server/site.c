/*
 * site.c - see site.h.
 */
#include "server/site.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/keyvalq_struct.h>

#include "formats/io/dnssd.h"
#include "formats/json.h"
#include "server/admin.h"
#include "server/handlers.h"
#include "formats/io/log.h"
#include "server/publish.h"

#define SITE_FP_LEN     64u

/* One other publisher seen and not yet withdrawn. */
struct seen {
	struct fio_dnssd_found f;
	char fp[SITE_FP_LEN + 1]; /* "" when its TXT has none */
};

struct srv_site {
	struct fio_dnssd_watch *watch;
	struct srv_store *store; /* the watch thread's own connection */
	char fp[SITE_FP_LEN + 1];
	uint16_t ports[SRV_CONFIG_LISTEN_MAX];
	size_t n_ports;
	struct seen seen[SRV_SITE_SEEN_MAX]; /* under g_lock */
	size_t n_seen;
	bool overflow; /* more others seen than the list holds (until the daemon restarts) */
	/* Sightings whose suspension is not written yet (another process held
	 * the write lock), oldest first; with store, under write_lock. */
	pthread_mutex_t write_lock;
	char pending[SRV_SITE_SEEN_MAX][SRV_STORE_DETAIL_MAX];
	size_t n_pending;
	bool waiting;    /* site.waiting was logged for the current wait */
	pthread_t owner; /* srv_site_start's thread: woken by SRV_SITE_WAKE_SIGNAL */
};

/* The running watch, for the resume handler (one per process). */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct srv_site *g_site;

/* ---------------------------------------------------------------- matching */

static bool same_instance(const struct fio_dnssd_found *a, const struct fio_dnssd_found *b)
{
	return a->ifindex == b->ifindex && a->ipv6 == b->ipv6 && strcmp(a->name, b->name) == 0;
}

/* "HOST:PORT" of f as host name and as address, for the allow-list. */
static void endpoints(const struct fio_dnssd_found *f, char host[static FIO_DNSSD_HOST_MAX + 8],
                      char addr[static FIO_DNSSD_ADDR_MAX + 10])
{
	(void)snprintf(host, FIO_DNSSD_HOST_MAX + 8, "%s:%u", f->host, (unsigned)f->port);
	(void)snprintf(addr, FIO_DNSSD_ADDR_MAX + 10, f->ipv6 ? "[%s]:%u" : "%s:%u", f->addr,
	               (unsigned)f->port);
}

struct allow_match {
	const struct fio_dnssd_found *f;
	const char *fp;
	bool allowed;
};

static int match_entry(void *ctx, const char *entry, int64_t added_at)
{
	struct allow_match *m = ctx;
	(void)added_at;
	char host[FIO_DNSSD_HOST_MAX + 8], addr[FIO_DNSSD_ADDR_MAX + 10];
	endpoints(m->f, host, addr);
	m->allowed = strcasecmp(entry, host) == 0 || strcasecmp(entry, addr) == 0 ||
	             (m->fp[0] != '\0' && strcmp(entry, m->fp) == 0);
	return m->allowed ? 1 : 0;
}

static enum idp_err is_allowed(struct srv_store *st, const struct fio_dnssd_found *f,
                               const char *fp, bool *allowed, struct idp_error *err)
{
	struct allow_match m = {.f = f, .fp = fp};
	enum idp_err rc = srv_store_allow_foreach(st, match_entry, &m, err);
	*allowed = m.allowed;
	return rc;
}

/* The fp of f's TXT, lower-case, when it is 64 hex digits; else "". */
static void fp_of(const struct fio_dnssd_found *f, char out[static SITE_FP_LEN + 1])
{
	const char *v = fio_dnssd_txt_get(f, "fp");
	out[0] = '\0';
	if (v == NULL || strlen(v) != SITE_FP_LEN ||
	    strspn(v, "0123456789abcdefABCDEF") != SITE_FP_LEN)
		return;
	for (size_t i = 0; i <= SITE_FP_LEN; i++)
		out[i] = (char)tolower((unsigned char)v[i]);
}

static bool is_ours(const struct srv_site *s, const struct fio_dnssd_found *f, const char *fp)
{
	if (!f->own || strcmp(fp, s->fp) != 0)
		return false;
	for (size_t i = 0; i < s->n_ports; i++)
		if (s->ports[i] == f->port)
			return true;
	return false;
}

/* ---------------------------------------------------------------- the watch */

/* Set the suspension to on (with reason) and write its audit entry (event)
 * in one transaction. For a rogue sighting (rogue), a "rogue-server" flag
 * is raised first, and an existing suspension is kept as it is; for an
 * administrator, asking for the state already in force is IDP_E_CONFLICT.
 * *changed says whether the state changed. */
static enum idp_err set_suspended(struct srv_store *st, bool on, const char *reason,
                                  const char *event, bool rogue, bool *changed,
                                  struct idp_error *err)
{
	int64_t now = (int64_t)time(NULL);
	struct srv_suspension cur;
	*changed = false;
	enum idp_err rc = srv_store_begin(st, err);
	if (rc != IDP_OK)
		return rc;
	rc = srv_store_suspension_get(st, &cur, err);
	if (rc == IDP_OK && rogue)
		rc = srv_store_flag_add(st, "rogue-server", NULL, reason, now, err);
	if (rc == IDP_OK && cur.suspended == on && !rogue)
		rc = idp_error_set(err, IDP_E_CONFLICT, "provisioning is %s already",
		                   on ? "suspended" : "not suspended");
	if (rc == IDP_OK && cur.suspended != on) {
		rc = srv_store_suspension_set(st, on, reason, now, err);
		const struct srv_audit_event ev = {.at = now, .event = event, .detail = reason};
		if (rc == IDP_OK)
			rc = srv_store_audit_append(st, &ev, err);
		*changed = rc == IDP_OK;
	}
	if (rc == IDP_OK)
		rc = srv_store_commit(st, err);
	else
		srv_store_rollback(st);
	if (rc != IDP_OK)
		*changed = false;
	return rc;
}

static void remember(struct srv_site *s, const struct fio_dnssd_found *f, const char *fp)
{
	(void)pthread_mutex_lock(&g_lock);
	size_t i = 0;
	while (i < s->n_seen && !same_instance(&s->seen[i].f, f))
		i++;
	if (i == s->n_seen && s->n_seen < SRV_SITE_SEEN_MAX)
		s->n_seen++;
	else if (i == s->n_seen)
		s->overflow = true;
	if (i < s->n_seen) {
		s->seen[i].f = *f;
		(void)snprintf(s->seen[i].fp, sizeof(s->seen[i].fp), "%s", fp);
	}
	(void)pthread_mutex_unlock(&g_lock);
}

static void forget(struct srv_site *s, const struct fio_dnssd_found *f)
{
	(void)pthread_mutex_lock(&g_lock);
	for (size_t i = 0; i < s->n_seen; i++) {
		if (same_instance(&s->seen[i].f, f)) {
			s->seen[i] = s->seen[--s->n_seen];
			break;
		}
	}
	(void)pthread_mutex_unlock(&g_lock);
}

/* Write the queued sightings in order (write_lock held), each waiting
 * SRV_STORE_BUSY_SLICE_MS at most for the lock; false when one met another
 * process's lock (it and the rest stay queued). A sighting that fails for
 * another cause is logged and dropped, as before there was a queue. */
static bool write_pending(struct srv_site *s)
{
	while (s->n_pending > 0) {
		struct idp_error err = {0};
		bool newly = false;
		const char *reason = s->pending[0];
		srv_store_set_busy_ms(s->store, SRV_STORE_BUSY_SLICE_MS); /* also forgets was_busy */
		enum idp_err rc = set_suspended(s->store, true, reason, "site.suspended", true, &newly,
		                                &err);
		char ebuf[FIO_LOG_ESC_MAX];
		if (rc == IDP_E_AGAIN && srv_store_was_busy(s->store)) {
			if (!s->waiting)
				fio_log(FIO_LOG_WARN, "site.waiting",
				        "queued=%zu error=%s note=\"the suspension is written once the "
				        "lock is free\"",
				        s->n_pending, fio_log_err(&err, ebuf));
			s->waiting = true;
			return false;
		}
		if (rc != IDP_OK)
			fio_log(FIO_LOG_ERROR, "site.error",
			        "error=%s note=\"suspension not recorded\"", fio_log_err(&err, ebuf));
		else if (newly)
			fio_log(FIO_LOG_WARN, "site.suspended", "reason=\"%s\"%s", reason,
			        s->waiting ? " waited=yes" : "");
		s->waiting = false;
		memmove(s->pending[0], s->pending[1], --s->n_pending * sizeof(s->pending[0]));
	}
	return true;
}

/* Suspend for a rogue sighting (reason): queued, then written with the
 * ones before it; the owner thread is woken when it has to wait. */
static void suspend_for(struct srv_site *s, const char *reason)
{
	(void)pthread_mutex_lock(&s->write_lock);
	if (s->n_pending < SRV_SITE_SEEN_MAX)
		(void)snprintf(s->pending[s->n_pending++], sizeof(s->pending[0]), "%s", reason);
	else /* the queue holds a suspension already: only this flag is lost */
		fio_log(FIO_LOG_ERROR, "site.error",
		        "queued=%zu note=\"queue full: this sighting's flag not recorded\"",
		        s->n_pending);
	bool wake = !write_pending(s);
	(void)pthread_mutex_unlock(&s->write_lock);
	if (wake)
		(void)pthread_kill(s->owner, SRV_SITE_WAKE_SIGNAL);
}

bool srv_site_retry(struct srv_site *s)
{
	if (s == NULL)
		return false;
	(void)pthread_mutex_lock(&s->write_lock);
	bool more = !write_pending(s);
	(void)pthread_mutex_unlock(&s->write_lock);
	return more;
}

static void appeared(struct srv_site *s, const struct fio_dnssd_found *f)
{
	/* Names and hosts are anyone's text: quoted (\xNN) before a log or a reason. */
	char name[IDP_QUOTE_MAX], host[IDP_QUOTE_MAX];
	(void)idp_quote(f->name, strlen(f->name), name);
	(void)idp_quote(f->host, strlen(f->host), host);
	if (!f->resolved) {
		fio_log(FIO_LOG_WARN, "site.unresolved", "name=\"%s\" ifindex=%d", name,
		        f->ifindex);
		return;
	}
	char fp[SITE_FP_LEN + 1];
	fp_of(f, fp);
	if (is_ours(s, f, fp)) {
		fio_log(FIO_LOG_INFO, "site.own", "name=\"%s\" host=\"%s\" addr=%s port=%u",
		        name, host, f->addr, (unsigned)f->port);
		return;
	}
	remember(s, f, fp);
	struct idp_error err = {0};
	bool allowed = false;
	(void)pthread_mutex_lock(&s->write_lock);
	enum idp_err arc = is_allowed(s->store, f, fp, &allowed, &err);
	(void)pthread_mutex_unlock(&s->write_lock);
	if (arc != IDP_OK) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_ERROR, "site.error", "error=\"%s\"", fio_log_err(&err, ebuf));
		allowed = false; /* unknown: treat as a rogue */
	}
	if (allowed) {
		fio_log(FIO_LOG_INFO, "site.allowed",
		        "name=\"%s\" host=\"%s\" addr=%s port=%u fp=%s", name, host, f->addr,
		        (unsigned)f->port, fp[0] != '\0' ? fp : "none");
		return;
	}
	fio_log(FIO_LOG_WARN, "site.rogue", "name=\"%s\" host=\"%s\" addr=%s port=%u fp=%s own=%s",
	        name, host, f->addr, (unsigned)f->port, fp[0] != '\0' ? fp : "none",
	        f->own ? "yes" : "no");
	char reason[SRV_STORE_DETAIL_MAX];
	(void)snprintf(reason, sizeof(reason),
	               "rogue DNS-SD publisher: name=\"%s\" host=%s addr=%s port=%u fp=%s", name,
	               host, f->addr, (unsigned)f->port, fp[0] != '\0' ? fp : "none");
	suspend_for(s, reason);
}

static void on_change(void *arg, enum fio_dnssd_change ch, const struct fio_dnssd_found *f,
                      const char *detail)
{
	struct srv_site *s = arg;
	char q[IDP_QUOTE_MAX];
	switch (ch) {
	case FIO_DNSSD_APPEARED:
		appeared(s, f);
		break;
	case FIO_DNSSD_GONE:
		forget(s, f);
		fio_log(FIO_LOG_INFO, "site.gone", "name=\"%s\"",
		        idp_quote(f->name, strlen(f->name), q));
		break;
	case FIO_DNSSD_WATCH_READY:
		fio_log(FIO_LOG_INFO, "dnssd.watching", "type=%s", SRV_PUBLISH_TYPE);
		break;
	case FIO_DNSSD_WATCH_FAILED:
		/* The browser is gone: what it saw is reported again once the
		 * daemon is back, so forget it (a stale entry would block resume). */
		(void)pthread_mutex_lock(&g_lock);
		s->n_seen = 0;
		s->overflow = false;
		(void)pthread_mutex_unlock(&g_lock);
		fio_log(FIO_LOG_WARN, "dnssd.watch_failed", "error=\"%s\"",
		        idp_quote(detail, strlen(detail), q));
		break;
	}
}

struct srv_site *srv_site_start(const struct srv_config *cfg, const struct srv_state *state,
                                const struct srv_httpd *h)
{
	struct idp_error err = {0};
	struct srv_store *st = NULL;
	if (srv_store_open(state->db_path, &st, &err) != IDP_OK) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_ERROR, "site.error", "error=\"%s\" note=\"rogue detection off\"",
		        fio_log_err(&err, ebuf));
		return NULL;
	}
	struct srv_suspension cur;
	if (srv_store_suspension_get(st, &cur, &err) == IDP_OK && cur.suspended) {
		char r[FIO_LOG_ESC_MAX];
		(void)fio_log_esc(cur.reason, strlen(cur.reason), r, sizeof(r));
		fio_log(FIO_LOG_WARN, "site.suspended_at_start",
		        "since=%lld reason=%s note=\"provisioning stays suspended until "
		        "idprov-admin resume\"",
		        (long long)cur.since, r);
	}
	if (!cfg->dnssd) {
		srv_store_close(st);
		return NULL;
	}
	struct srv_site *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		srv_store_close(st);
		return NULL;
	}
	s->store = st;
	s->owner = pthread_self();
	(void)pthread_mutex_init(&s->write_lock, NULL);
	(void)snprintf(s->fp, sizeof(s->fp), "%s", state->ca_fingerprint);
	const char *b;
	for (size_t i = 0;
	     (b = srv_httpd_bound(h, i)) != NULL && s->n_ports < SRV_CONFIG_LISTEN_MAX; i++) {
		const char *c = strrchr(b, ':');
		unsigned long p = c != NULL ? strtoul(c + 1, NULL, 10) : 0;
		if (p > 0 && p <= 65535)
			s->ports[s->n_ports++] = (uint16_t)p;
	}
	(void)pthread_mutex_lock(&g_lock);
	g_site = s;
	(void)pthread_mutex_unlock(&g_lock);
	if (fio_dnssd_watch_start(SRV_PUBLISH_TYPE, on_change, s, &s->watch, &err) != IDP_OK) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_WARN, "dnssd.watch_failed",
		        "error=\"%s\" note=\"rogue detection off\"", fio_log_err(&err, ebuf));
		srv_site_stop(s);
		return NULL;
	}
	return s;
}

void srv_site_stop(struct srv_site *s)
{
	if (s == NULL)
		return;
	fio_dnssd_watch_stop(s->watch); /* no callback runs after this */
	(void)pthread_mutex_lock(&g_lock);
	if (g_site == s)
		g_site = NULL;
	(void)pthread_mutex_unlock(&g_lock);
	srv_store_close(s->store);
	(void)pthread_mutex_destroy(&s->write_lock);
	free(s);
}

/* ---------------------------------------------------------------- the gate */

bool srv_site_refused(struct srv_ctx *ctx, struct evhttp_request *req)
{
	struct srv_suspension cur;
	struct idp_error err = {0};
	if (srv_store_suspension_get(ctx->store, &cur, &err) != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, IDP_E_AGAIN, FMT_API_ORIGIN_SERVER, &err);
		return true;
	}
	if (!cur.suspended)
		return false;
	char pbuf[64];
	fio_log(FIO_LOG_INFO, "request.suspended", "loop=%u peer=%s", ctx->loop,
	        srv_http_peer(req, pbuf));
	char msg[IDP_ERROR_MSG_MAX];
	(void)snprintf(msg, sizeof(msg),
	               "provisioning suspended until an administrator resumes it: %.400s",
	               cur.reason[0] != '\0' ? cur.reason : "(no reason given)");
	srv_handlers_error_retry(req, fmt_api_err_of(IDP_E_SUSPENDED, FMT_API_ORIGIN_SERVER), msg,
	                         SRV_SITE_RETRY_AFTER);
	return true;
}

/* ---------------------------------------------------------------- admin API */

/* The body of suspend or resume as kind into *out (an empty body is {});
 * answered 400 (false returned) otherwise. Free doc with fmt_admin_doc_free. */
static bool site_body(struct srv_ctx *ctx, struct evhttp_request *req, enum fmt_admin_kind kind,
                      void *out, struct fmt_admin_doc *doc)
{
	const uint8_t *body = NULL;
	size_t len = 0;
	srv_http_body(req, &body, &len);
	if (len > 0)
		return srv_admin_parse_body(ctx, req, kind, out, doc);
	struct idp_error err = {0};
	enum idp_err rc = fmt_admin_parse(kind, (const uint8_t *)"{}", 2, out, doc, &err);
	if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	return rc == IDP_OK;
}

/* Answer {"ok":true,"suspended":on} or the error. */
static void answer_state(struct srv_ctx *ctx, struct evhttp_request *req, const char *action,
                         enum idp_err rc, const struct idp_error *err, bool on)
{
	if (rc != IDP_OK) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_INFO, "admin.refused", "loop=%u action=%s error=\"%s\"", ctx->loop,
		        action, fio_log_err(err, ebuf));
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, err);
		return;
	}
	fio_log(on ? FIO_LOG_WARN : FIO_LOG_INFO, "admin.done", "loop=%u action=%s", ctx->loop,
	        action);
	const struct fmt_admin_suspended a = {.suspended = on};
	srv_admin_send_body(ctx, req, FMT_ADMIN_SUSPENDED, &a);
}

void srv_site_suspend(struct srv_ctx *ctx, struct evhttp_request *req)
{
	char reason[SRV_STORE_DETAIL_MAX + 1] = "";
	struct fmt_admin_suspend in;
	struct fmt_admin_doc doc;
	if (!srv_admin_authorized(ctx, req) || !site_body(ctx, req, FMT_ADMIN_SUSPEND, &in, &doc))
		return;
	if (in.reason != NULL)
		(void)snprintf(reason, sizeof(reason), "%s", in.reason);
	fmt_admin_doc_free(&doc);
	struct idp_error err = {0};
	bool changed = false;
	enum idp_err rc = set_suspended(
	        ctx->store, true, reason[0] != '\0' ? reason : "suspended by an administrator",
	        "admin.suspended", false, &changed, &err);
	answer_state(ctx, req, "suspend", rc, &err, true);
}

/* The first other publisher seen now that the allow-list does not name:
 * IDP_E_CONFLICT naming it, IDP_OK when there is none. */
static enum idp_err rogue_present(struct srv_store *st, struct idp_error *err)
{
	struct seen *copy = calloc(SRV_SITE_SEEN_MAX, sizeof(*copy));
	if (copy == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "resume: out of memory");
	size_t n = 0;
	bool overflow = false;
	(void)pthread_mutex_lock(&g_lock);
	if (g_site != NULL) {
		n = g_site->n_seen;
		overflow = g_site->overflow;
		memcpy(copy, g_site->seen, n * sizeof(*copy));
	}
	(void)pthread_mutex_unlock(&g_lock);
	enum idp_err rc = IDP_OK;
	if (overflow)
		rc = idp_error_set(err, IDP_E_CONFLICT,
		                   "resume: more than %u other DNS-SD publishers seen; restart "
		                   "idprovd once they are withdrawn",
		                   SRV_SITE_SEEN_MAX);
	for (size_t i = 0; rc == IDP_OK && i < n; i++) {
		bool allowed = false;
		rc = is_allowed(st, &copy[i].f, copy[i].fp, &allowed, err);
		if (rc == IDP_OK && !allowed) {
			char q[IDP_QUOTE_MAX];
			rc = idp_error_set(err, IDP_E_CONFLICT,
			                   "resume: a rogue publisher is still there: \"%s\" at %s "
			                   "port %u fp %s; "
			                   "withdraw it, or allow it (idprov-admin allow add)",
			                   idp_quote(copy[i].f.name, strlen(copy[i].f.name), q),
			                   copy[i].f.addr, (unsigned)copy[i].f.port,
			                   copy[i].fp[0] != '\0' ? copy[i].fp : "none");
		}
	}
	free(copy);
	return rc;
}

void srv_site_resume(struct srv_ctx *ctx, struct evhttp_request *req)
{
	struct fmt_admin_rotate none;
	struct fmt_admin_doc doc;
	if (!srv_admin_authorized(ctx, req) || !site_body(ctx, req, FMT_ADMIN_ROTATE, &none, &doc))
		return;
	fmt_admin_doc_free(&doc);
	struct idp_error err = {0};
	enum idp_err rc = rogue_present(ctx->store, &err);
	bool changed = false;
	if (rc == IDP_OK)
		rc = set_suspended(ctx->store, false, NULL, "admin.resumed", false, &changed, &err);
	answer_state(ctx, req, "resume", rc, &err, false);
}

/* s as answer text: itself when valid UTF-8, else escaped into buf[size]
 * (an instance name is whatever the other publisher chose). */
static const char *utf8_text(const char *s, char *buf, size_t size)
{
	if (fmt_utf8_valid((const uint8_t *)s, strlen(s)))
		return s;
	return fio_log_esc(s, strlen(s), buf, size);
}

void srv_site_status(struct srv_ctx *ctx, struct evhttp_request *req)
{
	struct evkeyvalq q; /* no parameters */
	if (!srv_admin_query(ctx, req, &q, NULL, 0))
		return;
	evhttp_clear_headers(&q);
	struct srv_suspension cur;
	struct idp_error err = {0};
	enum idp_err rc = srv_store_suspension_get(ctx->store, &cur, &err);
	if (rc != IDP_OK) {
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	struct seen *copy = calloc(SRV_SITE_SEEN_MAX, sizeof(*copy));
	struct fmt_admin_seen *rows = calloc(SRV_SITE_SEEN_MAX, sizeof(*rows));
	char(*names)[FMT_ADMIN_HOST_MAX + 1] = calloc(SRV_SITE_SEEN_MAX, sizeof(*names));
	size_t n = 0;
	bool watching = false;
	(void)pthread_mutex_lock(&g_lock);
	if (g_site != NULL && copy != NULL) {
		watching = true;
		n = g_site->n_seen;
		memcpy(copy, g_site->seen, n * sizeof(*copy));
	}
	(void)pthread_mutex_unlock(&g_lock);
	if (copy == NULL || rows == NULL || names == NULL) {
		n = 0;
		rc = idp_error_set(&err, IDP_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; rc == IDP_OK && i < n; i++) {
		bool allowed = false;
		rc = is_allowed(ctx->store, &copy[i].f, copy[i].fp, &allowed, &err);
		rows[i] = (struct fmt_admin_seen){
		        .name = utf8_text(copy[i].f.name, names[i], sizeof(names[i])),
		        .host = copy[i].f.host,
		        .addr = copy[i].f.addr,
		        .port = copy[i].f.port,
		        .fp = copy[i].fp[0] != '\0' ? copy[i].fp : NULL,
		        .allowed = allowed};
	}
	const struct fmt_admin_suspension a = {.suspended = cur.suspended,
	                                       .reason = cur.reason[0] != '\0' ? cur.reason : NULL,
	                                       .since = cur.since,
	                                       .watching = watching,
	                                       .seen = rows,
	                                       .n_seen = n};
	if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	else
		srv_admin_send_body(ctx, req, FMT_ADMIN_SUSPENSION, &a);
	free(names);
	free(rows);
	free(copy);
}

/* An allow-list entry: "HOST:PORT" (HOST a name or an IPv4 address, or
 * "[IPv6]") or a CA fingerprint (64 hex digits), normalised to lower case. */
static enum idp_err check_entry(char *e, struct idp_error *err)
{
	size_t n = strlen(e);
	for (size_t i = 0; i < n; i++)
		e[i] = (char)tolower((unsigned char)e[i]);
	if (n == SITE_FP_LEN && strspn(e, "0123456789abcdef") == n)
		return IDP_OK;
	const char *c = strrchr(e, ':');
	size_t hl = c != NULL ? (size_t)(c - e) : 0;
	size_t pl = c != NULL ? strlen(c + 1) : 0;
	unsigned long port = pl > 0 && pl <= 5 && strspn(c + 1, "0123456789") == pl
	                             ? strtoul(c + 1, NULL, 10)
	                             : 0;
	bool host_ok =
	        hl > 0 && (e[0] == '[' ? e[hl - 1] == ']' && hl > 2 &&
	                                         strspn(e + 1, "0123456789abcdef:.") == hl - 2
	                               : strspn(e, "abcdefghijklmnopqrstuvwxyz0123456789.-") == hl);
	if (!host_ok || port == 0 || port > 65535)
		return idp_error_set(
		        err, IDP_E_FORMAT,
		        "entry: not HOST:PORT ([IPv6]:PORT) or a 64-hex CA fingerprint");
	return IDP_OK;
}

static void allow_change(struct srv_ctx *ctx, struct evhttp_request *req, bool add)
{
	char entry[SRV_STORE_ALLOW_MAX + 1] = "";
	struct fmt_admin_allow_entry in;
	struct fmt_admin_doc doc;
	if (!srv_admin_authorized(ctx, req) ||
	    !srv_admin_parse_body(ctx, req, FMT_ADMIN_ALLOW_ENTRY, &in, &doc))
		return;
	(void)snprintf(entry, sizeof(entry), "%s", in.entry);
	fmt_admin_doc_free(&doc);
	struct idp_error err = {0};
	enum idp_err rc = check_entry(entry, &err);
	int64_t now = (int64_t)time(NULL);
	if (rc == IDP_OK)
		rc = srv_store_begin(ctx->store, &err);
	if (rc == IDP_OK) {
		rc = add ? srv_store_allow_add(ctx->store, entry, now, &err)
		         : srv_store_allow_remove(ctx->store, entry, &err);
		const struct srv_audit_event ev = {.at = now,
		                                   .event = add ? "admin.allow_added"
		                                                : "admin.allow_removed",
		                                   .detail = entry};
		rc = srv_admin_commit(ctx->store, rc, &ev, &err);
	}
	const char *action = add ? "allow_add" : "allow_remove";
	if (rc != IDP_OK) {
		char ebuf[FIO_LOG_ESC_MAX];
		fio_log(FIO_LOG_INFO, "admin.refused", "loop=%u action=%s error=\"%s\"", ctx->loop,
		        action, fio_log_err(&err, ebuf));
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
		return;
	}
	fio_log(FIO_LOG_INFO, "admin.done", "loop=%u action=%s entry=%s", ctx->loop, action, entry);
	const struct fmt_admin_done d = {.entry = entry};
	srv_admin_send_body(ctx, req, FMT_ADMIN_DONE, &d);
}

void srv_site_allow_add(struct srv_ctx *ctx, struct evhttp_request *req)
{
	allow_change(ctx, req, true);
}

void srv_site_allow_remove(struct srv_ctx *ctx, struct evhttp_request *req)
{
	allow_change(ctx, req, false);
}

struct allow_list {
	cJSON *rows;
	size_t n;
	char last[SRV_STORE_ALLOW_MAX + 1]; /* the last row's entry: "next" of a full page */
	enum idp_err rc;
	struct idp_error err;
};

static int add_allow(void *ctx, const char *entry, int64_t added_at)
{
	struct allow_list *l = ctx;
	const struct fmt_admin_allow row = {.entry = entry, .added_at = added_at};
	l->rc = fmt_admin_list_add(l->rows, FMT_ADMIN_ALLOW, &row, &l->err);
	if (l->rc != IDP_OK)
		return 1;
	l->n++;
	(void)snprintf(l->last, sizeof(l->last), "%s", entry);
	return 0;
}

/* GET /v1/admin/allow[?after=ENTRY]: the allow-list in entry order, at most
 * SRV_ADMIN_LIST_MAX; "next" names the entry to continue after. */
void srv_site_allow_list(struct srv_ctx *ctx, struct evhttp_request *req)
{
	static const char *const names[] = {"after"};
	struct evkeyvalq q;
	if (!srv_admin_query(ctx, req, &q, names, 1))
		return;
	struct allow_list l = {0};
	cJSON *top = NULL;
	struct idp_error err = {0};
	const char *av = evhttp_find_header(&q, "after");
	char after[SRV_STORE_ALLOW_MAX + 1] = "";
	enum idp_err rc = IDP_OK;
	if (av != NULL && strnlen(av, sizeof(after)) == sizeof(after))
		rc = idp_error_set(&err, IDP_E_FORMAT, "after: longer than %u bytes",
		                   SRV_STORE_ALLOW_MAX);
	else if (av != NULL) {
		(void)snprintf(after, sizeof(after), "%s", av);
		rc = check_entry(after, &err);
		if (rc != IDP_OK) /* named as the parameter it is here */
			(void)idp_error_set(&err, rc, "after: not an allow-list entry");
	}
	evhttp_clear_headers(&q);
	if (rc == IDP_OK)
		rc = fmt_admin_list_new(FMT_ADMIN_ALLOW, &top, &l.rows, &err);
	if (rc == IDP_OK)
		rc = srv_store_allow_page(ctx->store, av != NULL ? after : NULL, SRV_ADMIN_LIST_MAX,
		                          add_allow, &l, &err);
	if (rc == IDP_OK && l.rc != IDP_OK) {
		rc = l.rc;
		err = l.err;
	}
	if (rc == IDP_OK)
		rc = fmt_admin_list_end(top, l.n == SRV_ADMIN_LIST_MAX ? l.last : NULL, 0, &err);
	if (rc != IDP_OK)
		(void)srv_handlers_fail(ctx, req, rc, FMT_API_ORIGIN_SERVER, &err);
	else
		srv_http_json(req, 200, top);
	cJSON_Delete(top);
}
