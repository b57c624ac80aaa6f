/*
 * dnssd.c - see dnssd.h. The daemon backend (avahi-client) and the choice
 * of backend; the embedded one is dnssd_core.c.
 */
#include "formats/io/dnssd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/simple-watch.h>
#include <avahi-common/strlst.h>
#include <avahi-common/thread-watch.h>

#include "formats/io/dnssd_core.h"
#include "formats/io/log.h"

#define RENAMES_MAX FIO_DNSSD_RENAMES_MAX
#define SLICE_MS    FIO_DNSSD_SLICE_MS

/* ---------------------------------------------------------------- backend */

static pthread_mutex_t g_backend_lock = PTHREAD_MUTEX_INITIALIZER;
static enum fio_dnssd_backend g_wanted = FIO_DNSSD_AUTO; /* under g_backend_lock */
static enum fio_dnssd_backend g_decided = FIO_DNSSD_AUTO; /* AUTO: not yet */

static const char *const backend_names[] = {"auto", "daemon", "embedded"};

enum idp_err fio_dnssd_backend_parse(const char *s, enum fio_dnssd_backend *out,
                                     struct idp_error *err)
{
	for (size_t i = 0; s != NULL && i < sizeof(backend_names) / sizeof(backend_names[0]); i++)
		if (strcmp(s, backend_names[i]) == 0) {
			*out = (enum fio_dnssd_backend)i;
			return IDP_OK;
		}
	return idp_error_set(err, IDP_E_ARG,
	                     "dns-sd backend: '%.32s' is not auto, daemon or embedded",
	                     s != NULL ? s : "");
}

const char *fio_dnssd_backend_name(enum fio_dnssd_backend b)
{
	return (unsigned)b < sizeof(backend_names) / sizeof(backend_names[0]) ? backend_names[b]
	                                                                      : "?";
}

void fio_dnssd_use(enum fio_dnssd_backend b)
{
	(void)pthread_mutex_lock(&g_backend_lock);
	g_wanted = b;
	g_decided = b;
	(void)pthread_mutex_unlock(&g_backend_lock);
}

static void probe_cb(AvahiClient *c, AvahiClientState state, void *arg)
{
	(void)c;
	(void)state;
	(void)arg;
}

/* Does avahi-daemon answer on D-Bus now? (avahi_client_new without
 * AVAHI_CLIENT_NO_FAIL fails at once when it does not.) */
static bool daemon_answers(void)
{
	AvahiSimplePoll *sp = avahi_simple_poll_new();
	if (sp == NULL)
		return false;
	int code = 0;
	AvahiClient *c = avahi_client_new(avahi_simple_poll_get(sp), 0, probe_cb, NULL, &code);
	if (c != NULL)
		avahi_client_free(c);
	avahi_simple_poll_free(sp);
	return c != NULL;
}

enum fio_dnssd_backend fio_dnssd_backend_current(bool *by_auto)
{
	(void)pthread_mutex_lock(&g_backend_lock);
	if (g_decided == FIO_DNSSD_AUTO)
		g_decided = daemon_answers() ? FIO_DNSSD_DAEMON : FIO_DNSSD_EMBEDDED;
	enum fio_dnssd_backend b = g_decided;
	if (by_auto != NULL)
		*by_auto = g_wanted == FIO_DNSSD_AUTO;
	(void)pthread_mutex_unlock(&g_backend_lock);
	return b;
}

static bool embedded(void)
{
	return fio_dnssd_backend_current(NULL) == FIO_DNSSD_EMBEDDED;
}

/* ---------------------------------------------------------------- publish */

struct fio_dnssd_pub {
	struct fio_dnssd_core_pub *core; /* embedded; the rest is the daemon's */
	AvahiThreadedPoll *poll;
	AvahiClient *client;
	AvahiEntryGroup *group;
	struct fio_dnssd_svc svc;
};

void fio_dnssd_tell(const struct fio_dnssd_svc *v, enum fio_dnssd_event ev, const char *detail)
{
	if (v->fn != NULL)
		v->fn(v->arg, ev, detail);
}

void fio_dnssd_fail(const struct fio_dnssd_svc *v, const char *what, int code)
{
	char msg[160];
	(void)snprintf(msg, sizeof(msg), "%s: %s", what, avahi_strerror(code));
	fio_dnssd_tell(v, FIO_DNSSD_FAILED, msg);
}

bool fio_dnssd_svc_rename(struct fio_dnssd_svc *v)
{
	if (++v->renames > RENAMES_MAX) {
		fio_dnssd_tell(v, FIO_DNSSD_FAILED, "name collision: no free alternative name");
		return false;
	}
	char *n = avahi_alternative_service_name(v->name);
	if (n == NULL) {
		fio_dnssd_tell(v, FIO_DNSSD_FAILED, "name collision: out of memory");
		return false;
	}
	avahi_free(v->name);
	v->name = n;
	fio_dnssd_tell(v, FIO_DNSSD_RENAMED, v->name);
	return true;
}

enum idp_err fio_dnssd_svc_init(struct fio_dnssd_svc *v, const struct fio_dnssd_service *s,
                                fio_dnssd_event_fn fn, void *arg, struct idp_error *err)
{
	memset(v, 0, sizeof(*v));
	v->fn = fn;
	v->arg = arg;
	v->port = s->port;
	memcpy(v->type, s->type, strnlen(s->type, FIO_DNSSD_TYPE_MAX) + 1);
	v->name = avahi_strdup(s->name);
	if (s->n_txt > 0)
		v->txt = avahi_string_list_new_from_array((const char **)(uintptr_t)s->txt,
		                                          (int)s->n_txt);
	if (v->name == NULL || (s->n_txt > 0 && v->txt == NULL)) {
		fio_dnssd_svc_done(v);
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	}
	return IDP_OK;
}

void fio_dnssd_svc_done(struct fio_dnssd_svc *v)
{
	avahi_string_list_free(v->txt);
	avahi_free(v->name);
	memset(v, 0, sizeof(*v));
}

static void add_service(struct fio_dnssd_pub *p, AvahiClient *c);

static void group_cb(AvahiEntryGroup *g, AvahiEntryGroupState state, void *arg)
{
	struct fio_dnssd_pub *p = arg;
	p->group = g; /* called from avahi_entry_group_new, before it returns */
	switch (state) {
	case AVAHI_ENTRY_GROUP_ESTABLISHED:
		fio_dnssd_tell(&p->svc, FIO_DNSSD_PUBLISHED, p->svc.name);
		break;
	case AVAHI_ENTRY_GROUP_COLLISION:
		/* Another host holds the name: the next one, published again. */
		if (fio_dnssd_svc_rename(&p->svc)) {
			(void)avahi_entry_group_reset(g);
			add_service(p, avahi_entry_group_get_client(g));
		}
		break;
	case AVAHI_ENTRY_GROUP_FAILURE:
		fio_dnssd_fail(&p->svc, "publication failed", avahi_client_errno(avahi_entry_group_get_client(g)));
		break;
	case AVAHI_ENTRY_GROUP_UNCOMMITED:
	case AVAHI_ENTRY_GROUP_REGISTERING:
		break;
	}
}

/* Add the service to the (new or reset) group and commit it. */
static void add_service(struct fio_dnssd_pub *p, AvahiClient *c)
{
	if (p->group == NULL && (p->group = avahi_entry_group_new(c, group_cb, p)) == NULL) {
		fio_dnssd_fail(&p->svc, "entry group", avahi_client_errno(c));
		return;
	}
	for (;;) {
		int r = avahi_entry_group_add_service_strlst(p->group, AVAHI_IF_UNSPEC,
		                                             AVAHI_PROTO_UNSPEC, 0, p->svc.name,
		                                             p->svc.type, NULL, NULL, p->svc.port,
		                                             p->svc.txt);
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
	int r = avahi_entry_group_commit(p->group);
	if (r < 0)
		fio_dnssd_fail(&p->svc, "commit", r);
}

static void client_cb(AvahiClient *c, AvahiClientState state, void *arg)
{
	struct fio_dnssd_pub *p = arg;
	switch (state) {
	case AVAHI_CLIENT_S_RUNNING:
		if (p->group == NULL || avahi_entry_group_is_empty(p->group))
			add_service(p, c);
		break;
	case AVAHI_CLIENT_S_COLLISION:
	case AVAHI_CLIENT_S_REGISTERING:
		/* The host name changes: publish again once the daemon runs. */
		if (p->group != NULL)
			(void)avahi_entry_group_reset(p->group);
		break;
	case AVAHI_CLIENT_FAILURE: {
		int code = avahi_client_errno(c);
		fio_dnssd_fail(&p->svc, "avahi-daemon", code);
		/* The daemon went away (restarted, or stopped): the group went
		 * with the client. A disconnected client stays failed (see the
		 * watch below), so make a new one that waits for the daemon
		 * (AVAHI_CLIENT_NO_FAIL) and publishes again once it runs. */
		if (code == AVAHI_ERR_DISCONNECTED) {
			p->group = NULL;
			avahi_client_free(c);
			p->client = NULL;
			int e = 0;
			p->client = avahi_client_new(avahi_threaded_poll_get(p->poll),
			                             AVAHI_CLIENT_NO_FAIL, client_cb, p, &e);
			if (p->client == NULL)
				fio_dnssd_fail(&p->svc, "cannot reconnect to avahi-daemon", e);
		}
		break;
	}
	case AVAHI_CLIENT_CONNECTING:
		break;
	}
}

static enum idp_err check_service(const struct fio_dnssd_service *s, struct idp_error *err)
{
	if (s == NULL || s->type == NULL || s->name == NULL || s->port == 0)
		return idp_error_set(err, IDP_E_ARG, "dns-sd: type, name and port are required");
	size_t tl = strnlen(s->type, FIO_DNSSD_TYPE_MAX + 1);
	size_t nl = strnlen(s->name, FIO_DNSSD_NAME_MAX + 1);
	if (tl == 0 || tl > FIO_DNSSD_TYPE_MAX || nl == 0 || nl > FIO_DNSSD_NAME_MAX)
		return idp_error_set(err, IDP_E_ARG,
		                     "dns-sd: type must be 1..%u bytes and name 1..%u bytes",
		                     FIO_DNSSD_TYPE_MAX, FIO_DNSSD_NAME_MAX);
	if (s->n_txt > FIO_DNSSD_TXT_MAX || (s->n_txt > 0 && s->txt == NULL))
		return idp_error_set(err, IDP_E_ARG, "dns-sd: at most %u TXT strings",
		                     FIO_DNSSD_TXT_MAX);
	for (size_t i = 0; i < s->n_txt; i++) {
		size_t n = s->txt[i] == NULL ? 0 : strnlen(s->txt[i], FIO_DNSSD_STR_MAX + 1);
		if (n == 0 || n > FIO_DNSSD_STR_MAX || strchr(s->txt[i], '=') == NULL)
			return idp_error_set(
			        err, IDP_E_ARG,
			        "dns-sd: TXT string %zu must be key=value, at most %u bytes", i,
			        FIO_DNSSD_STR_MAX);
	}
	return IDP_OK;
}

enum idp_err fio_dnssd_publish(const struct fio_dnssd_service *s, fio_dnssd_event_fn fn, void *arg,
                               struct fio_dnssd_pub **out, struct idp_error *err)
{
	*out = NULL;
	enum idp_err rc = check_service(s, err);
	if (rc != IDP_OK)
		return rc;
	struct fio_dnssd_pub *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	if (embedded()) {
		rc = fio_dnssd_core_publish(s, fn, arg, &p->core, err);
		if (rc != IDP_OK)
			free(p);
		else
			*out = p;
		return rc;
	}
	rc = fio_dnssd_svc_init(&p->svc, s, fn, arg, err);
	if (rc != IDP_OK) {
		free(p);
		return rc;
	}
	p->poll = avahi_threaded_poll_new();
	if (p->poll == NULL) {
		fio_dnssd_unpublish(p);
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	}
	/* Callbacks run in this thread until the poll thread starts. */
	int code = 0;
	p->client = avahi_client_new(avahi_threaded_poll_get(p->poll), 0, client_cb, p, &code);
	if (p->client == NULL) {
		fio_dnssd_unpublish(p);
		return idp_error_set(err, IDP_E_IO, "dns-sd: cannot reach avahi-daemon: %s",
		                     avahi_strerror(code));
	}
	if (avahi_threaded_poll_start(p->poll) < 0) {
		fio_dnssd_unpublish(p);
		return idp_error_set(err, IDP_E_IO, "dns-sd: cannot start the avahi thread");
	}
	*out = p;
	return IDP_OK;
}

void fio_dnssd_unpublish(struct fio_dnssd_pub *p)
{
	if (p == NULL)
		return;
	if (p->core != NULL) {
		fio_dnssd_core_unpublish(p->core);
		free(p);
		return;
	}
	if (p->poll != NULL)
		(void)avahi_threaded_poll_stop(p->poll); /* harmless when not started */
	/* Frees the group too: the daemon withdraws it and says goodbye. */
	if (p->client != NULL)
		avahi_client_free(p->client);
	if (p->poll != NULL)
		avahi_threaded_poll_free(p->poll);
	fio_dnssd_svc_done(&p->svc);
	free(p);
}

/* ---------------------------------------------------------------- browse */

struct browse {
	AvahiSimplePoll *poll;
	AvahiClient *client;
	fio_dnssd_found_fn fn;
	void *arg;
	unsigned resolving; /* resolvers not yet ended */
	bool all_for_now;
	int failed; /* an Avahi error code, 0 when none */
};

static void copy_str(char *dst, size_t size, const char *src)
{
	(void)snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* Shared by both backends' browses and watches (dnssd_core.h). */
void fio_dnssd_fill_found(struct fio_dnssd_found *f, AvahiIfIndex ifindex, AvahiProtocol proto,
                       AvahiResolverEvent event, const char *name, const char *host,
                       const AvahiAddress *a, uint16_t port, AvahiStringList *txt,
                       AvahiLookupResultFlags flags)
{
	copy_str(f->name, sizeof(f->name), name);
	f->ifindex = ifindex;
	f->ipv6 = proto == AVAHI_PROTO_INET6;
	f->resolved = event == AVAHI_RESOLVER_FOUND && a != NULL;
	if (!f->resolved)
		return;
	copy_str(f->host, sizeof(f->host), host);
	(void)avahi_address_snprint(f->addr, sizeof(f->addr), a);
	f->ipv6 = a->proto == AVAHI_PROTO_INET6;
	if (f->ipv6)
		f->link_local =
		        a->data.ipv6.address[0] == 0xfe && (a->data.ipv6.address[1] & 0xc0) == 0x80;
	else
		f->link_local = strncmp(f->addr, "169.254.", 8) == 0;
	f->port = port;
	f->own = (flags & AVAHI_LOOKUP_RESULT_OUR_OWN) != 0;
	for (AvahiStringList *l = txt; l != NULL && f->n_txt < FIO_DNSSD_TXT_MAX;
	     l = avahi_string_list_get_next(l)) {
		size_t n = avahi_string_list_get_size(l);
		if (n > FIO_DNSSD_STR_MAX)
			continue;
		memcpy(f->txt[f->n_txt], avahi_string_list_get_text(l), n);
		f->txt[f->n_txt][n] = '\0';
		/* A string with a NUL inside would be cut short: drop it. */
		if (strlen(f->txt[f->n_txt]) == n)
			f->n_txt++;
	}
}

static void resolve_cb(AvahiServiceResolver *r, AvahiIfIndex ifindex, AvahiProtocol proto,
                       AvahiResolverEvent event, const char *name, const char *type,
                       const char *domain, const char *host, const AvahiAddress *a, uint16_t port,
                       AvahiStringList *txt, AvahiLookupResultFlags flags, void *arg)
{
	struct browse *b = arg;
	(void)type;
	(void)domain;
	struct fio_dnssd_found *f = calloc(1, sizeof(*f));
	if (f != NULL) {
		fio_dnssd_fill_found(f, ifindex, proto, event, name, host, a, port, txt, flags);
		b->fn(b->arg, f);
	}
	free(f);
	avahi_service_resolver_free(r);
	b->resolving--;
}

static void browse_cb(AvahiServiceBrowser *sb, AvahiIfIndex ifindex, AvahiProtocol proto,
                      AvahiBrowserEvent event, const char *name, const char *type,
                      const char *domain, AvahiLookupResultFlags flags, void *arg)
{
	struct browse *b = arg;
	(void)flags;
	switch (event) {
	case AVAHI_BROWSER_NEW:
		/* The address of the family the instance was seen on. */
		if (avahi_service_resolver_new(b->client, ifindex, proto, name, type, domain, proto,
		                               0, resolve_cb, b) != NULL)
			b->resolving++;
		break;
	case AVAHI_BROWSER_ALL_FOR_NOW:
		b->all_for_now = true;
		break;
	case AVAHI_BROWSER_FAILURE:
		b->failed = avahi_client_errno(avahi_service_browser_get_client(sb));
		if (b->failed == 0)
			b->failed = AVAHI_ERR_FAILURE;
		break;
	case AVAHI_BROWSER_REMOVE:
	case AVAHI_BROWSER_CACHE_EXHAUSTED:
		break;
	}
}

static void browse_client_cb(AvahiClient *c, AvahiClientState state, void *arg)
{
	struct browse *b = arg;
	if (state == AVAHI_CLIENT_FAILURE)
		b->failed = avahi_client_errno(c);
}

void fio_dnssd_fill_unresolved(struct fio_dnssd_found *f, AvahiIfIndex ifindex,
                               AvahiProtocol proto, const char *name)
{
	memset(f, 0, sizeof(*f));
	copy_str(f->name, sizeof(f->name), name);
	f->ifindex = ifindex;
	f->ipv6 = proto == AVAHI_PROTO_INET6;
}

enum idp_err fio_dnssd_browse(const char *type, int64_t min_ms, int64_t wait_ms,
                              fio_dnssd_found_fn fn, void *arg, bool *complete,
                              struct idp_error *err)
{
	if (complete != NULL)
		*complete = false;
	size_t tl = type == NULL ? 0 : strnlen(type, FIO_DNSSD_TYPE_MAX + 1);
	if (tl == 0 || tl > FIO_DNSSD_TYPE_MAX || fn == NULL || wait_ms <= 0 || min_ms < 0 ||
	    min_ms > wait_ms)
		return idp_error_set(err, IDP_E_ARG,
		                     "dns-sd: browse needs a type, a callback and a wait");
	if (embedded())
		return fio_dnssd_core_browse(type, min_ms, wait_ms, fn, arg, complete, err);
	struct browse b = {.fn = fn, .arg = arg};
	enum idp_err rc = IDP_OK;
	AvahiServiceBrowser *sb = NULL;
	int code = 0;
	b.poll = avahi_simple_poll_new();
	if (b.poll == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	b.client = avahi_client_new(avahi_simple_poll_get(b.poll), 0, browse_client_cb, &b, &code);
	if (b.client == NULL) {
		rc = idp_error_set(err, IDP_E_IO, "dns-sd: cannot reach avahi-daemon: %s",
		                   avahi_strerror(code));
		goto out;
	}
	sb = avahi_service_browser_new(b.client, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, type, NULL, 0,
	                               browse_cb, &b);
	if (sb == NULL) {
		rc = idp_error_set(err, IDP_E_IO, "dns-sd: cannot browse %s: %s", type,
		                   avahi_strerror(avahi_client_errno(b.client)));
		goto out;
	}
	int64_t start = fio_mono_ms(), end = start + wait_ms;
	/* WARNING: ALL_FOR_NOW alone is not enough: under load an instance
	 * (even one the local daemon publishes) was reported after it, so a
	 * second publisher could be missed. Listen for min_ms in any case. */
	while (b.failed == 0 &&
	       !(b.all_for_now && b.resolving == 0 && fio_mono_ms() - start >= min_ms)) {
		int64_t left = end - fio_mono_ms();
		if (left <= 0)
			break;
		if (avahi_simple_poll_iterate(b.poll, (int)(left < SLICE_MS ? left : SLICE_MS)) !=
		    0)
			break;
	}
	if (b.failed != 0)
		rc = idp_error_set(err, IDP_E_IO, "dns-sd: browsing %s failed: %s", type,
		                   avahi_strerror(b.failed));
	else if (complete != NULL)
		*complete = b.all_for_now && b.resolving == 0;
out:
	/* Freeing the client frees its browser and any resolver still running. */
	if (b.client != NULL)
		avahi_client_free(b.client);
	avahi_simple_poll_free(b.poll);
	return rc;
}

const char *fio_dnssd_txt_get(const struct fio_dnssd_found *f, const char *key)
{
	size_t kl = strnlen(key, FIO_DNSSD_STR_MAX + 1);
	for (size_t i = 0; i < f->n_txt && i < FIO_DNSSD_TXT_MAX; i++)
		if (strncmp(f->txt[i], key, kl) == 0 && f->txt[i][kl] == '=')
			return f->txt[i] + kl + 1;
	return NULL;
}

/* ---------------------------------------------------------------- watch */

struct fio_dnssd_watch {
	struct fio_dnssd_core_watch *core; /* embedded; the rest is the daemon's */
	AvahiThreadedPoll *poll;
	AvahiClient *client;
	AvahiServiceBrowser *browser;
	char type[FIO_DNSSD_TYPE_MAX + 1];
	fio_dnssd_watch_fn fn;
	void *arg;
};

static void watch_tell(const struct fio_dnssd_watch *w, enum fio_dnssd_change ch,
                       const struct fio_dnssd_found *f, const char *detail)
{
	w->fn(w->arg, ch, f, detail);
}

static void watch_resolve_cb(AvahiServiceResolver *r, AvahiIfIndex ifindex, AvahiProtocol proto,
                             AvahiResolverEvent event, const char *name, const char *type,
                             const char *domain, const char *host, const AvahiAddress *a,
                             uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags,
                             void *arg)
{
	struct fio_dnssd_watch *w = arg;
	(void)type;
	(void)domain;
	struct fio_dnssd_found *f = calloc(1, sizeof(*f));
	if (f != NULL) {
		fio_dnssd_fill_found(f, ifindex, proto, event, name, host, a, port, txt, flags);
		/* WARNING: the resolver did not set AVAHI_LOOKUP_RESULT_OUR_OWN
		 * for a service this host's daemon published (measured, Avahi
		 * 0.8): the host name, unique on the link, says it too. */
		const char *me = avahi_client_get_host_name_fqdn(w->client);
		if (f->resolved && !f->own && me != NULL)
			f->own = strcasecmp(f->host, me) == 0;
		watch_tell(w, FIO_DNSSD_APPEARED, f, NULL);
	}
	free(f);
	avahi_service_resolver_free(r);
}

static void watch_browse_cb(AvahiServiceBrowser *sb, AvahiIfIndex ifindex, AvahiProtocol proto,
                            AvahiBrowserEvent event, const char *name, const char *type,
                            const char *domain, AvahiLookupResultFlags flags, void *arg)
{
	struct fio_dnssd_watch *w = arg;
	(void)flags;
	char msg[160];
	switch (event) {
	case AVAHI_BROWSER_NEW:
		if (avahi_service_resolver_new(w->client, ifindex, proto, name, type, domain, proto, 0,
		                               watch_resolve_cb, w) == NULL) {
			/* Reported unresolved: the caller decides what an unknown
			 * instance means. */
			struct fio_dnssd_found f;
			fio_dnssd_fill_unresolved(&f, ifindex, proto, name);
			watch_tell(w, FIO_DNSSD_APPEARED, &f, NULL);
		}
		break;
	case AVAHI_BROWSER_REMOVE: {
		struct fio_dnssd_found f;
		fio_dnssd_fill_unresolved(&f, ifindex, proto, name);
		watch_tell(w, FIO_DNSSD_GONE, &f, NULL);
		break;
	}
	case AVAHI_BROWSER_FAILURE:
		(void)snprintf(msg, sizeof(msg), "browsing failed: %s",
		               avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(sb))));
		watch_tell(w, FIO_DNSSD_WATCH_FAILED, NULL, msg);
		break;
	case AVAHI_BROWSER_ALL_FOR_NOW:
	case AVAHI_BROWSER_CACHE_EXHAUSTED:
		break;
	}
}

static void watch_client_cb(AvahiClient *c, AvahiClientState state, void *arg)
{
	struct fio_dnssd_watch *w = arg;
	char msg[160];
	switch (state) {
	case AVAHI_CLIENT_S_RUNNING:
	case AVAHI_CLIENT_S_REGISTERING:
	case AVAHI_CLIENT_S_COLLISION:
		if (w->browser != NULL)
			break;
		/* Called from avahi_client_new before it returns: w->client is set here. */
		w->client = c;
		w->browser = avahi_service_browser_new(c, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
		                                       w->type, NULL, 0, watch_browse_cb, w);
		if (w->browser == NULL) {
			(void)snprintf(msg, sizeof(msg), "cannot browse %s: %s", w->type,
			               avahi_strerror(avahi_client_errno(c)));
			watch_tell(w, FIO_DNSSD_WATCH_FAILED, NULL, msg);
		} else {
			watch_tell(w, FIO_DNSSD_WATCH_READY, NULL, w->type);
		}
		break;
	case AVAHI_CLIENT_FAILURE:
	case AVAHI_CLIENT_CONNECTING: {
		/* The daemon is not there (yet), or went away. The browser is
		 * dead and made again once the daemon runs. */
		int code = avahi_client_errno(c);
		if (w->browser != NULL)
			avahi_service_browser_free(w->browser);
		w->browser = NULL;
		(void)snprintf(msg, sizeof(msg), "avahi-daemon not reachable (%s); waiting for it",
		               avahi_strerror(code));
		watch_tell(w, FIO_DNSSD_WATCH_FAILED, NULL, msg);
		/* WARNING: a client the daemon disconnected stays failed, even
		 * with AVAHI_CLIENT_NO_FAIL (measured, Avahi 0.8): make a new one,
		 * as avahi-browse does. Freeing c here, in its own callback, is
		 * what Avahi's examples do. */
		if (state == AVAHI_CLIENT_FAILURE && code == AVAHI_ERR_DISCONNECTED) {
			avahi_client_free(c);
			int e = 0;
			w->client = NULL;
			w->client = avahi_client_new(avahi_threaded_poll_get(w->poll),
			                             AVAHI_CLIENT_NO_FAIL, watch_client_cb, w, &e);
			if (w->client == NULL) {
				(void)snprintf(msg, sizeof(msg), "cannot reconnect: %s",
				               avahi_strerror(e));
				watch_tell(w, FIO_DNSSD_WATCH_FAILED, NULL, msg);
			}
		}
		break;
	}
	}
}

enum idp_err fio_dnssd_watch_start(const char *type, fio_dnssd_watch_fn fn, void *arg,
                                   struct fio_dnssd_watch **out, struct idp_error *err)
{
	*out = NULL;
	size_t tl = type == NULL ? 0 : strnlen(type, FIO_DNSSD_TYPE_MAX + 1);
	if (tl == 0 || tl > FIO_DNSSD_TYPE_MAX || fn == NULL)
		return idp_error_set(err, IDP_E_ARG, "dns-sd: watch needs a type and a callback");
	struct fio_dnssd_watch *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	if (embedded()) {
		enum idp_err rc = fio_dnssd_core_watch_start(type, fn, arg, &w->core, err);
		if (rc != IDP_OK)
			free(w);
		else
			*out = w;
		return rc;
	}
	memcpy(w->type, type, tl + 1);
	w->fn = fn;
	w->arg = arg;
	w->poll = avahi_threaded_poll_new();
	if (w->poll == NULL) {
		fio_dnssd_watch_stop(w);
		return idp_error_set(err, IDP_E_NOMEM, "dns-sd: out of memory");
	}
	int code = 0;
	w->client = avahi_client_new(avahi_threaded_poll_get(w->poll), AVAHI_CLIENT_NO_FAIL,
	                             watch_client_cb, w, &code);
	if (w->client == NULL) {
		fio_dnssd_watch_stop(w);
		return idp_error_set(err, IDP_E_IO, "dns-sd: cannot start an avahi client: %s",
		                     avahi_strerror(code));
	}
	if (avahi_threaded_poll_start(w->poll) < 0) {
		fio_dnssd_watch_stop(w);
		return idp_error_set(err, IDP_E_IO, "dns-sd: cannot start the avahi thread");
	}
	*out = w;
	return IDP_OK;
}

void fio_dnssd_watch_stop(struct fio_dnssd_watch *w)
{
	if (w == NULL)
		return;
	if (w->core != NULL) {
		fio_dnssd_core_watch_stop(w->core);
		free(w);
		return;
	}
	if (w->poll != NULL)
		(void)avahi_threaded_poll_stop(w->poll);
	/* Frees the browser and any resolver still running. */
	if (w->client != NULL)
		avahi_client_free(w->client);
	if (w->poll != NULL)
		avahi_threaded_poll_free(w->poll);
	free(w);
}
