/*
 * dnssd_core.c - see dnssd_core.h: the embedded backend of dnssd.h.
 *
 * One responder per process (struct shared: an AvahiServer driven by an
 * AvahiThreadedPoll), shared by its publications and watches and freed by
 * the last of them, so a watch sees the process's own publications as
 * local (AVAHI_LOOKUP_RESULT_LOCAL) and the process has one host name. A
 * browse makes a querier of its own (AvahiSimplePoll, publishing nothing)
 * for the time of the call. Everything that touches a shared responder runs
 * in its thread or under avahi_threaded_poll_lock.
 */
#include "formats/io/dnssd_core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/simple-watch.h>
#include <avahi-common/thread-watch.h>
#include <avahi-common/timeval.h>
#include <avahi-core/core.h>
#include <avahi-core/log.h>
#include <avahi-core/lookup.h>
#include <avahi-core/publish.h>

#include "formats/io/log.h"

/* A resolver running for a watch or a browse. */
struct core_res {
	struct core_res *next;
	AvahiSServiceResolver *r;
	struct fio_dnssd_core_watch *w; /* or */
	struct core_browse *b;
	bool local; /* the browser said the instance is this responder's own */
};

struct shared {
	AvahiThreadedPoll *poll;
	AvahiServer *server;
	bool publishing; /* made with host address records: publications possible */
	unsigned refs;
	unsigned host_renames;
	struct fio_dnssd_core_pub *pubs;     /* under the poll lock */
	struct fio_dnssd_core_watch *watches; /* under the poll lock */
};

struct fio_dnssd_core_pub {
	struct fio_dnssd_core_pub *next;
	struct shared *sh;
	AvahiSEntryGroup *group;
	AvahiTimeout *kick; /* first publication, in the Avahi thread */
	struct fio_dnssd_svc svc;
};

struct fio_dnssd_core_watch {
	struct fio_dnssd_core_watch *next;
	struct shared *sh;
	AvahiSServiceBrowser *browser;
	AvahiTimeout *kick; /* the browser is made in the Avahi thread */
	struct core_res *res;
	char type[FIO_DNSSD_TYPE_MAX + 1];
	fio_dnssd_watch_fn fn;
	void *arg;
};

static pthread_mutex_t g_core_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared *g_shared; /* under g_core_lock */

/* libavahi-core writes its own lines to stderr: its errors become
 * warnings of ours, its warnings debug lines (an interface without IPv6
 * multicast warns at every packet), the rest is dropped. */
static void core_log(AvahiLogLevel level, const char *txt)
{
	char q[FIO_LOG_ESC_MAX];
	if (level == AVAHI_LOG_ERROR || level == AVAHI_LOG_WARN)
		fio_log(level == AVAHI_LOG_ERROR ? FIO_LOG_WARN : FIO_LOG_DEBUG, "dnssd.avahi_core",
		        "msg=%s", fio_log_esc(txt, strlen(txt), q, sizeof(q)));
}

static pthread_once_t g_log_once = PTHREAD_ONCE_INIT;

static void core_log_init(void)
{
	avahi_set_log_function(core_log);
}

/* fio_dnssd_use_interfaces' list, read by server_new. */
static pthread_mutex_t g_if_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_ifaces[FIO_DNSSD_IFACES_MAX][FIO_DNSSD_IFNAME_MAX + 1]; /* under g_if_lock */
static size_t g_n_ifaces;                                             /* 0: all */

enum idp_err fio_dnssd_ifname_check(const char *name, struct idp_error *err)
{
	const char *v = name != NULL ? name : "";
	size_t l = strnlen(v, FIO_DNSSD_IFNAME_MAX + 1);
	if (l > 0 && l <= FIO_DNSSD_IFNAME_MAX && strpbrk(v, "/ \t\n,") == NULL)
		return IDP_OK;
	char q[FIO_LOG_ESC_MAX];
	return idp_error_set(err, IDP_E_ARG,
	                     "dns-sd: interface '%s' is not a name of 1..%u bytes without "
	                     "'/', ',' or spaces",
	                     fio_log_esc(v, strnlen(v, 64), q, sizeof(q)), FIO_DNSSD_IFNAME_MAX);
}

enum idp_err fio_dnssd_use_interfaces(const char *const *names, size_t n, struct idp_error *err)
{
	if (names == NULL)
		n = 0;
	if (n > FIO_DNSSD_IFACES_MAX)
		return idp_error_set(err, IDP_E_ARG, "dns-sd: %zu interfaces, at most %u", n,
		                     FIO_DNSSD_IFACES_MAX);
	for (size_t i = 0; i < n; i++) {
		enum idp_err rc = fio_dnssd_ifname_check(names[i], err);
		if (rc != IDP_OK)
			return rc;
	}
	(void)pthread_mutex_lock(&g_if_lock);
	for (size_t i = 0; i < n; i++)
		memcpy(g_ifaces[i], names[i], strnlen(names[i], FIO_DNSSD_IFNAME_MAX) + 1);
	g_n_ifaces = n;
	(void)pthread_mutex_unlock(&g_if_lock);
	return IDP_OK;
}

/* A responder's settings: no HINFO, workstation or domain records (noise
 * on a site network); host address records only where a service is
 * published; no wide-area DNS; the interfaces of fio_dnssd_use_interfaces
 * (an empty allow list means all to avahi-core). */
static AvahiServer *server_new(const AvahiPoll *api, bool publishing, AvahiServerCallback cb,
                               void *arg, int *code)
{
	(void)pthread_once(&g_log_once, core_log_init);
	AvahiServerConfig cfg;
	avahi_server_config_init(&cfg);
	cfg.publish_hinfo = 0;
	cfg.publish_workstation = 0;
	cfg.publish_domain = 0;
	cfg.enable_wide_area = 0;
	cfg.publish_addresses = publishing ? 1 : 0;
	cfg.disable_publishing = publishing ? 0 : 1;
	(void)pthread_mutex_lock(&g_if_lock);
	bool oom = false;
	for (size_t i = 0; i < g_n_ifaces && !oom; i++) {
		AvahiStringList *l = avahi_string_list_add(cfg.allow_interfaces, g_ifaces[i]);
		oom = l == NULL; /* the list so far stays in cfg */
		if (l != NULL)
			cfg.allow_interfaces = l;
	}
	(void)pthread_mutex_unlock(&g_if_lock);
	if (oom) {
		/* WARNING: a NULL list means every interface to avahi-core:
		 * refuse rather than run wider than asked. */
		avahi_server_config_free(&cfg);
		*code = AVAHI_ERR_NO_MEMORY;
		return NULL;
	}
	AvahiServer *s = avahi_server_new(api, &cfg, cb, arg, code);
	avahi_server_config_free(&cfg);
	return s;
}

/* ---------------------------------------------------------------- publish */

static void add_service(struct fio_dnssd_core_pub *p);

static void group_cb(AvahiServer *s, AvahiSEntryGroup *g, AvahiEntryGroupState state, void *arg)
{
	struct fio_dnssd_core_pub *p = arg;
	p->group = g;
	switch (state) {
	case AVAHI_ENTRY_GROUP_ESTABLISHED:
		fio_dnssd_tell(&p->svc, FIO_DNSSD_PUBLISHED, p->svc.name);
		break;
	case AVAHI_ENTRY_GROUP_COLLISION:
		/* Another host on the link holds the instance name. */
		if (fio_dnssd_svc_rename(&p->svc)) {
			avahi_s_entry_group_reset(g);
			add_service(p);
		}
		break;
	case AVAHI_ENTRY_GROUP_FAILURE:
		fio_dnssd_fail(&p->svc, "publication failed", avahi_server_errno(s));
		break;
	case AVAHI_ENTRY_GROUP_UNCOMMITED:
	case AVAHI_ENTRY_GROUP_REGISTERING:
		break;
	}
}

/* Add the service to the (new or reset) group and commit it. In the
 * Avahi thread, with the responder running. */
static void add_service(struct fio_dnssd_core_pub *p)
{
	AvahiServer *s = p->sh->server;
	if (p->group == NULL && (p->group = avahi_s_entry_group_new(s, group_cb, p)) == NULL) {
		fio_dnssd_fail(&p->svc, "entry group", avahi_server_errno(s));
		return;
	}
	for (;;) {
		int r = avahi_server_add_service_strlst(s, p->group, AVAHI_IF_UNSPEC,
		                                        AVAHI_PROTO_UNSPEC, 0, p->svc.name,
		                                        p->svc.type, NULL, NULL, p->svc.port,
		                                        p->svc.txt);
		/* A local collision: this responder has the name already. */
		if (r == AVAHI_ERR_COLLISION) {
			if (fio_dnssd_svc_rename(&p->svc))
				continue;
			return;
		}
		if (r < 0) {
			fio_dnssd_fail(&p->svc, "add service", r);
			return;
		}
		break;
	}
	int r = avahi_s_entry_group_commit(p->group);
	if (r < 0)
		fio_dnssd_fail(&p->svc, "commit", r);
}

static void pub_kick(AvahiTimeout *t, void *arg)
{
	struct fio_dnssd_core_pub *p = arg;
	(void)t;
	if (avahi_server_get_state(p->sh->server) == AVAHI_SERVER_RUNNING &&
	    (p->group == NULL || avahi_s_entry_group_is_empty(p->group)))
		add_service(p);
}

static void watch_tell(const struct fio_dnssd_core_watch *w, enum fio_dnssd_change ch,
                       const struct fio_dnssd_found *f, const char *detail)
{
	w->fn(w->arg, ch, f, detail);
}

/* The responder's state, in its thread (or in avahi_server_new). */
static void server_cb(AvahiServer *s, AvahiServerState state, void *arg)
{
	struct shared *sh = arg;
	char msg[160];
	switch (state) {
	case AVAHI_SERVER_RUNNING:
		/* The host name is ours: publish what waits for it. */
		for (struct fio_dnssd_core_pub *p = sh->pubs; p != NULL; p = p->next)
			if (p->group == NULL || avahi_s_entry_group_is_empty(p->group))
				add_service(p);
		break;
	case AVAHI_SERVER_COLLISION: {
		/* Another host on the link has this host name: take the next
		 * one; the services follow once it is established. */
		char *n = NULL;
		if (++sh->host_renames <= FIO_DNSSD_RENAMES_MAX)
			n = avahi_alternative_host_name(avahi_server_get_host_name(s));
		for (struct fio_dnssd_core_pub *p = sh->pubs; p != NULL; p = p->next) {
			if (p->group != NULL)
				avahi_s_entry_group_reset(p->group);
			fio_dnssd_tell(&p->svc, n != NULL ? FIO_DNSSD_HOST_RENAMED : FIO_DNSSD_FAILED,
			               n != NULL ? n : "host name collision: no free alternative name");
		}
		if (n != NULL) {
			int r = avahi_server_set_host_name(s, n);
			if (r < 0)
				for (struct fio_dnssd_core_pub *p = sh->pubs; p != NULL; p = p->next)
					fio_dnssd_fail(&p->svc, "host name", r);
		}
		avahi_free(n);
		break;
	}
	case AVAHI_SERVER_REGISTERING:
		/* The host name is being (re)established: the services wait. */
		for (struct fio_dnssd_core_pub *p = sh->pubs; p != NULL; p = p->next)
			if (p->group != NULL)
				avahi_s_entry_group_reset(p->group);
		break;
	case AVAHI_SERVER_FAILURE:
		(void)snprintf(msg, sizeof(msg), "embedded mDNS responder failed: %s",
		               avahi_strerror(avahi_server_errno(s)));
		for (struct fio_dnssd_core_pub *p = sh->pubs; p != NULL; p = p->next)
			fio_dnssd_tell(&p->svc, FIO_DNSSD_FAILED, msg);
		for (struct fio_dnssd_core_watch *w = sh->watches; w != NULL; w = w->next)
			watch_tell(w, FIO_DNSSD_WATCH_FAILED, NULL, msg);
		break;
	case AVAHI_SERVER_INVALID:
		break;
	}
}

/* The process's responder, made by the first user; refs counts users. */
static enum idp_err acquire(bool publishing, struct shared **out, struct idp_error *err)
{
	enum idp_err rc = IDP_OK;
	*out = NULL;
	(void)pthread_mutex_lock(&g_core_lock);
	struct shared *sh = g_shared;
	if (sh != NULL) {
		if (publishing && !sh->publishing) {
			rc = idp_error_set(err, IDP_E_IO,
			                   "dns-sd: the embedded mDNS responder was started by a watch, "
			                   "without publishing: publish before watching");
			goto out;
		}
		sh->refs++;
		*out = sh;
		goto out;
	}
	sh = calloc(1, sizeof(*sh));
	if (sh == NULL || (sh->poll = avahi_threaded_poll_new()) == NULL) {
		free(sh);
		rc = idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
		goto out;
	}
	sh->publishing = publishing;
	int code = 0;
	sh->server = server_new(avahi_threaded_poll_get(sh->poll), publishing, server_cb, sh, &code);
	if (sh->server == NULL) {
		rc = idp_error_set(err, IDP_E_IO, "dns-sd: cannot start the embedded mDNS responder: %s",
		                   avahi_strerror(code));
	} else if (avahi_threaded_poll_start(sh->poll) < 0) {
		rc = idp_error_set(err, IDP_E_IO, "dns-sd: cannot start the avahi thread");
	}
	if (rc != IDP_OK) {
		if (sh->server != NULL)
			avahi_server_free(sh->server);
		avahi_threaded_poll_free(sh->poll);
		free(sh);
		goto out;
	}
	sh->refs = 1;
	g_shared = sh;
	*out = sh;
out:
	(void)pthread_mutex_unlock(&g_core_lock);
	return rc;
}

/* The last user stops the thread and frees the responder (which sends the
 * goodbye packets still scheduled). Not from an Avahi callback. */
static void release(struct shared *sh)
{
	(void)pthread_mutex_lock(&g_core_lock);
	bool last = --sh->refs == 0;
	if (last)
		g_shared = NULL;
	(void)pthread_mutex_unlock(&g_core_lock);
	if (!last)
		return;
	(void)avahi_threaded_poll_stop(sh->poll);
	avahi_server_free(sh->server);
	avahi_threaded_poll_free(sh->poll);
	free(sh);
}

static AvahiTimeout *kick_new(struct shared *sh, AvahiTimeoutCallback cb, void *arg)
{
	const AvahiPoll *api = avahi_threaded_poll_get(sh->poll);
	struct timeval tv;
	return api->timeout_new(api, avahi_elapse_time(&tv, 0, 0), cb, arg);
}

static void kick_free(struct shared *sh, AvahiTimeout *t)
{
	if (t != NULL)
		avahi_threaded_poll_get(sh->poll)->timeout_free(t);
}

enum idp_err fio_dnssd_core_publish(const struct fio_dnssd_service *s, fio_dnssd_event_fn fn,
                                    void *arg, struct fio_dnssd_core_pub **out,
                                    struct idp_error *err)
{
	*out = NULL;
	struct fio_dnssd_core_pub *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	enum idp_err rc = fio_dnssd_svc_init(&p->svc, s, fn, arg, err);
	if (rc != IDP_OK) {
		free(p);
		return rc;
	}
	rc = acquire(true, &p->sh, err);
	if (rc != IDP_OK || p->sh == NULL) {
		fio_dnssd_svc_done(&p->svc);
		free(p);
		return rc != IDP_OK ? rc : IDP_E_IO;
	}
	avahi_threaded_poll_lock(p->sh->poll);
	p->kick = kick_new(p->sh, pub_kick, p);
	if (p->kick != NULL) {
		p->next = p->sh->pubs;
		p->sh->pubs = p;
	}
	avahi_threaded_poll_unlock(p->sh->poll);
	if (p->kick == NULL) {
		fio_dnssd_core_unpublish(p);
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	}
	*out = p;
	return IDP_OK;
}

void fio_dnssd_core_unpublish(struct fio_dnssd_core_pub *p)
{
	if (p == NULL)
		return;
	struct shared *sh = p->sh;
	avahi_threaded_poll_lock(sh->poll);
	for (struct fio_dnssd_core_pub **l = &sh->pubs; *l != NULL; l = &(*l)->next)
		if (*l == p) {
			*l = p->next;
			break;
		}
	kick_free(sh, p->kick);
	/* Withdraws the records: goodbye packets are scheduled at once. */
	if (p->group != NULL)
		avahi_s_entry_group_free(p->group);
	avahi_threaded_poll_unlock(sh->poll);
	release(sh);
	fio_dnssd_svc_done(&p->svc);
	free(p);
}

/* ---------------------------------------------------------------- resolvers */

static void res_unlink(struct core_res **list, struct core_res *x)
{
	for (struct core_res **l = list; *l != NULL; l = &(*l)->next)
		if (*l == x) {
			*l = x->next;
			return;
		}
}

static void res_free_all(struct core_res **list)
{
	while (*list != NULL) {
		struct core_res *x = *list;
		*list = x->next;
		if (x->r != NULL)
			avahi_s_service_resolver_free(x->r);
		free(x);
	}
}

/* f from a resolver's answer; own when the browser said local (the record
 * is one of this responder's), or when the host is the responder's
 * (publishing and running: the name is established as ours on the link;
 * the daemon backend's rule too). A querier claims no host name: its
 * name, the system's, may well be another host's. */
static void res_found(struct fio_dnssd_found *f, const struct core_res *x, AvahiServer *s,
                      bool claims_name,
                      AvahiIfIndex ifindex, AvahiProtocol proto, AvahiResolverEvent event,
                      const char *name, const char *host, const AvahiAddress *a, uint16_t port,
                      AvahiStringList *txt, AvahiLookupResultFlags flags)
{
	memset(f, 0, sizeof(*f));
	fio_dnssd_fill_found(f, ifindex, proto, event, name, host, a, port, txt, flags);
	if (!f->resolved)
		return;
	const char *me = claims_name && avahi_server_get_state(s) == AVAHI_SERVER_RUNNING
	                         ? avahi_server_get_host_name_fqdn(s)
	                         : NULL;
	f->own = f->own || x->local || (flags & AVAHI_LOOKUP_RESULT_LOCAL) != 0 ||
	         (me != NULL && strcasecmp(f->host, me) == 0);
}

/* ---------------------------------------------------------------- watch */

static void watch_resolve_cb(AvahiSServiceResolver *r, AvahiIfIndex ifindex, AvahiProtocol proto,
                             AvahiResolverEvent event, const char *name, const char *type,
                             const char *domain, const char *host, const AvahiAddress *a,
                             uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags,
                             void *arg)
{
	struct core_res *x = arg;
	struct fio_dnssd_core_watch *w = x->w;
	(void)type;
	(void)domain;
	struct fio_dnssd_found *f = malloc(sizeof(*f));
	if (f != NULL) {
		res_found(f, x, w->sh->server, w->sh->publishing, ifindex, proto, event, name, host, a, port, txt,
		          flags);
		watch_tell(w, FIO_DNSSD_APPEARED, f, NULL);
	}
	free(f);
	res_unlink(&w->res, x);
	avahi_s_service_resolver_free(r);
	free(x);
}

static void watch_browse_cb(AvahiSServiceBrowser *sb, AvahiIfIndex ifindex, AvahiProtocol proto,
                            AvahiBrowserEvent event, const char *name, const char *type,
                            const char *domain, AvahiLookupResultFlags flags, void *arg)
{
	struct fio_dnssd_core_watch *w = arg;
	struct fio_dnssd_found f;
	char msg[160];
	(void)sb;
	switch (event) {
	case AVAHI_BROWSER_NEW: {
		struct core_res *x = calloc(1, sizeof(*x));
		if (x != NULL) {
			x->w = w;
			x->local = (flags & (AVAHI_LOOKUP_RESULT_LOCAL | AVAHI_LOOKUP_RESULT_OUR_OWN)) != 0;
			x->r = avahi_s_service_resolver_new(w->sh->server, ifindex, proto, name, type,
			                                    domain, proto, 0, watch_resolve_cb, x);
		}
		if (x != NULL && x->r != NULL) {
			x->next = w->res;
			w->res = x;
			break;
		}
		free(x);
		/* Reported unresolved: the caller decides what an unknown
		 * instance means. */
		fio_dnssd_fill_unresolved(&f, ifindex, proto, name);
		watch_tell(w, FIO_DNSSD_APPEARED, &f, NULL);
		break;
	}
	case AVAHI_BROWSER_REMOVE:
		fio_dnssd_fill_unresolved(&f, ifindex, proto, name);
		watch_tell(w, FIO_DNSSD_GONE, &f, NULL);
		break;
	case AVAHI_BROWSER_FAILURE:
		(void)snprintf(msg, sizeof(msg), "browsing failed: %s",
		               avahi_strerror(avahi_server_errno(w->sh->server)));
		watch_tell(w, FIO_DNSSD_WATCH_FAILED, NULL, msg);
		break;
	case AVAHI_BROWSER_ALL_FOR_NOW:
	case AVAHI_BROWSER_CACHE_EXHAUSTED:
		break;
	}
}

static void watch_kick(AvahiTimeout *t, void *arg)
{
	struct fio_dnssd_core_watch *w = arg;
	char msg[160];
	(void)t;
	w->browser = avahi_s_service_browser_new(w->sh->server, AVAHI_IF_UNSPEC,
	                                         AVAHI_PROTO_UNSPEC, w->type, NULL, 0,
	                                         watch_browse_cb, w);
	if (w->browser == NULL) {
		(void)snprintf(msg, sizeof(msg), "cannot browse %s: %s", w->type,
		               avahi_strerror(avahi_server_errno(w->sh->server)));
		watch_tell(w, FIO_DNSSD_WATCH_FAILED, NULL, msg);
	} else {
		watch_tell(w, FIO_DNSSD_WATCH_READY, NULL, w->type);
	}
}

enum idp_err fio_dnssd_core_watch_start(const char *type, fio_dnssd_watch_fn fn, void *arg,
                                        struct fio_dnssd_core_watch **out, struct idp_error *err)
{
	*out = NULL;
	struct fio_dnssd_core_watch *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	memcpy(w->type, type, strnlen(type, FIO_DNSSD_TYPE_MAX) + 1);
	w->fn = fn;
	w->arg = arg;
	enum idp_err rc = acquire(false, &w->sh, err);
	if (rc != IDP_OK || w->sh == NULL) {
		free(w);
		return rc != IDP_OK ? rc : IDP_E_IO;
	}
	avahi_threaded_poll_lock(w->sh->poll);
	w->kick = kick_new(w->sh, watch_kick, w);
	if (w->kick != NULL) {
		w->next = w->sh->watches;
		w->sh->watches = w;
	}
	avahi_threaded_poll_unlock(w->sh->poll);
	if (w->kick == NULL) {
		fio_dnssd_core_watch_stop(w);
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	}
	*out = w;
	return IDP_OK;
}

void fio_dnssd_core_watch_stop(struct fio_dnssd_core_watch *w)
{
	if (w == NULL)
		return;
	struct shared *sh = w->sh;
	/* Under the lock no callback runs, and none of w's runs after. */
	avahi_threaded_poll_lock(sh->poll);
	for (struct fio_dnssd_core_watch **l = &sh->watches; *l != NULL; l = &(*l)->next)
		if (*l == w) {
			*l = w->next;
			break;
		}
	kick_free(sh, w->kick);
	res_free_all(&w->res);
	if (w->browser != NULL)
		avahi_s_service_browser_free(w->browser);
	avahi_threaded_poll_unlock(sh->poll);
	release(sh);
	free(w);
}

/* ---------------------------------------------------------------- browse */

struct core_browse {
	AvahiServer *server;
	fio_dnssd_found_fn fn;
	void *arg;
	struct core_res *res; /* resolvers not yet ended */
	bool all_for_now;
	int failed; /* an Avahi error code, 0 when none */
};

static void browse_resolve_cb(AvahiSServiceResolver *r, AvahiIfIndex ifindex, AvahiProtocol proto,
                              AvahiResolverEvent event, const char *name, const char *type,
                              const char *domain, const char *host, const AvahiAddress *a,
                              uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags,
                              void *arg)
{
	struct core_res *x = arg;
	struct core_browse *b = x->b;
	(void)type;
	(void)domain;
	struct fio_dnssd_found *f = malloc(sizeof(*f));
	if (f != NULL) {
		res_found(f, x, b->server, false, ifindex, proto, event, name, host, a, port, txt, flags);
		b->fn(b->arg, f);
	}
	free(f);
	res_unlink(&b->res, x);
	avahi_s_service_resolver_free(r);
	free(x);
}

static void browse_cb(AvahiSServiceBrowser *sb, AvahiIfIndex ifindex, AvahiProtocol proto,
                      AvahiBrowserEvent event, const char *name, const char *type,
                      const char *domain, AvahiLookupResultFlags flags, void *arg)
{
	struct core_browse *b = arg;
	(void)sb;
	switch (event) {
	case AVAHI_BROWSER_NEW: {
		/* The address of the family the instance was seen on. */
		struct core_res *x = calloc(1, sizeof(*x));
		if (x == NULL)
			break;
		x->b = b;
		x->local = (flags & AVAHI_LOOKUP_RESULT_LOCAL) != 0;
		x->r = avahi_s_service_resolver_new(b->server, ifindex, proto, name, type, domain,
		                                    proto, 0, browse_resolve_cb, x);
		if (x->r == NULL) {
			free(x);
			break;
		}
		x->next = b->res;
		b->res = x;
		break;
	}
	case AVAHI_BROWSER_ALL_FOR_NOW:
		b->all_for_now = true;
		break;
	case AVAHI_BROWSER_FAILURE:
		b->failed = avahi_server_errno(b->server);
		if (b->failed == 0)
			b->failed = AVAHI_ERR_FAILURE;
		break;
	case AVAHI_BROWSER_REMOVE:
	case AVAHI_BROWSER_CACHE_EXHAUSTED:
		break;
	}
}

static void querier_cb(AvahiServer *s, AvahiServerState state, void *arg)
{
	(void)s;
	(void)state;
	(void)arg;
}

enum idp_err fio_dnssd_core_browse(const char *type, int64_t min_ms, int64_t wait_ms,
                                   fio_dnssd_found_fn fn, void *arg, bool *complete,
                                   struct idp_error *err)
{
	struct core_browse b = {.fn = fn, .arg = arg};
	enum idp_err rc = IDP_OK;
	AvahiSServiceBrowser *sb = NULL;
	int code = 0;
	AvahiSimplePoll *poll = avahi_simple_poll_new();
	if (poll == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	b.server = server_new(avahi_simple_poll_get(poll), false, querier_cb, &b, &code);
	if (b.server == NULL) {
		rc = idp_error_set(err, IDP_E_IO, "dns-sd: cannot start an embedded mDNS querier: %s",
		                   avahi_strerror(code));
		goto out;
	}
	sb = avahi_s_service_browser_new(b.server, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, type, NULL,
	                                 0, browse_cb, &b);
	if (sb == NULL) {
		rc = idp_error_set(err, IDP_E_IO, "dns-sd: cannot browse %s: %s", type,
		                   avahi_strerror(avahi_server_errno(b.server)));
		goto out;
	}
	int64_t start = fio_mono_ms(), end = start + wait_ms;
	/* As the daemon's browse: listen for min_ms in any case (dnssd.c). */
	while (b.failed == 0 && !(b.all_for_now && b.res == NULL &&
	                          fio_mono_ms() - start >= min_ms)) {
		int64_t left = end - fio_mono_ms();
		if (left <= 0)
			break;
		if (avahi_simple_poll_iterate(poll, (int)(left < FIO_DNSSD_SLICE_MS
		                                                  ? left
		                                                  : FIO_DNSSD_SLICE_MS)) != 0)
			break;
	}
	if (b.failed != 0)
		rc = idp_error_set(err, IDP_E_IO, "dns-sd: browsing %s failed: %s", type,
		                   avahi_strerror(b.failed));
	else if (complete != NULL)
		*complete = b.all_for_now && b.res == NULL;
out:
	res_free_all(&b.res);
	if (sb != NULL)
		avahi_s_service_browser_free(sb);
	if (b.server != NULL)
		avahi_server_free(b.server);
	avahi_simple_poll_free(poll);
	return rc;
}
