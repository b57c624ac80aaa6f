/*
 * dnssd.c - see dnssd.h.
 */
#include "formats/io/dnssd.h"

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

#define RENAMES_MAX 16u /* alternative names tried after collisions */
#define SLICE_MS    100 /* longest single wait of the browse loop */

struct fio_dnssd_pub {
	AvahiThreadedPoll *poll;
	AvahiClient *client;
	AvahiEntryGroup *group;
	char *name; /* avahi_malloc'd: avahi_alternative_service_name() gives one */
	char type[FIO_DNSSD_TYPE_MAX + 1];
	uint16_t port;
	AvahiStringList *txt;
	unsigned renames;
	fio_dnssd_event_fn fn;
	void *arg;
};

static void tell(const struct fio_dnssd_pub *p, enum fio_dnssd_event ev, const char *detail)
{
	if (p->fn != NULL)
		p->fn(p->arg, ev, detail);
}

static void fail(const struct fio_dnssd_pub *p, const char *what, int code)
{
	char msg[160];
	(void)snprintf(msg, sizeof(msg), "%s: %s", what, avahi_strerror(code));
	tell(p, FIO_DNSSD_FAILED, msg);
}

static void add_service(struct fio_dnssd_pub *p, AvahiClient *c);

/* Pick the next name after a collision and publish again. */
static void rename_and_retry(struct fio_dnssd_pub *p, AvahiClient *c)
{
	if (++p->renames > RENAMES_MAX) {
		tell(p, FIO_DNSSD_FAILED, "name collision: no free alternative name");
		return;
	}
	char *n = avahi_alternative_service_name(p->name);
	if (n == NULL) {
		tell(p, FIO_DNSSD_FAILED, "name collision: out of memory");
		return;
	}
	avahi_free(p->name);
	p->name = n;
	tell(p, FIO_DNSSD_RENAMED, p->name);
	if (p->group != NULL)
		(void)avahi_entry_group_reset(p->group);
	add_service(p, c);
}

static void group_cb(AvahiEntryGroup *g, AvahiEntryGroupState state, void *arg)
{
	struct fio_dnssd_pub *p = arg;
	p->group = g; /* called from avahi_entry_group_new, before it returns */
	switch (state) {
	case AVAHI_ENTRY_GROUP_ESTABLISHED:
		tell(p, FIO_DNSSD_PUBLISHED, p->name);
		break;
	case AVAHI_ENTRY_GROUP_COLLISION:
		rename_and_retry(p, avahi_entry_group_get_client(g));
		break;
	case AVAHI_ENTRY_GROUP_FAILURE:
		fail(p, "publication failed", avahi_client_errno(avahi_entry_group_get_client(g)));
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
		fail(p, "entry group", avahi_client_errno(c));
		return;
	}
	for (;;) {
		int r = avahi_entry_group_add_service_strlst(p->group, AVAHI_IF_UNSPEC,
		                                             AVAHI_PROTO_UNSPEC, 0, p->name,
		                                             p->type, NULL, NULL, p->port, p->txt);
		if (r == AVAHI_ERR_COLLISION && p->renames < RENAMES_MAX) {
			char *n = avahi_alternative_service_name(p->name);
			if (n == NULL)
				return;
			avahi_free(p->name);
			p->name = n;
			p->renames++;
			tell(p, FIO_DNSSD_RENAMED, p->name);
			continue;
		}
		if (r < 0) {
			fail(p, "add service", r);
			return;
		}
		break;
	}
	int r = avahi_entry_group_commit(p->group);
	if (r < 0)
		fail(p, "commit", r);
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
		fail(p, "avahi-daemon", code);
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
				fail(p, "cannot reconnect to avahi-daemon", e);
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
	p->fn = fn;
	p->arg = arg;
	p->port = s->port;
	memcpy(p->type, s->type, strnlen(s->type, FIO_DNSSD_TYPE_MAX) + 1);
	p->name = avahi_strdup(s->name);
	if (s->n_txt > 0) {
		p->txt = avahi_string_list_new_from_array((const char **)(uintptr_t)s->txt,
		                                          (int)s->n_txt);
	}
	p->poll = avahi_threaded_poll_new();
	if (p->name == NULL || p->poll == NULL || (s->n_txt > 0 && p->txt == NULL)) {
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
	if (p->poll != NULL)
		(void)avahi_threaded_poll_stop(p->poll); /* harmless when not started */
	/* Frees the group too: the daemon withdraws it and says goodbye. */
	if (p->client != NULL)
		avahi_client_free(p->client);
	if (p->poll != NULL)
		avahi_threaded_poll_free(p->poll);
	avahi_string_list_free(p->txt);
	avahi_free(p->name);
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

/* A resolver's result as a struct fio_dnssd_found (shared by browse and
 * watch). */
static void fill_found(struct fio_dnssd_found *f, AvahiIfIndex ifindex, AvahiProtocol proto,
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
		fill_found(f, ifindex, proto, event, name, host, a, port, txt, flags);
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

static int64_t mono_ms(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
	int64_t start = mono_ms(), end = start + wait_ms;
	/* WARNING: ALL_FOR_NOW alone is not enough: under load an instance
	 * (even one the local daemon publishes) was reported after it, so a
	 * second publisher could be missed. Listen for min_ms in any case. */
	while (b.failed == 0 &&
	       !(b.all_for_now && b.resolving == 0 && mono_ms() - start >= min_ms)) {
		int64_t left = end - mono_ms();
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
		fill_found(f, ifindex, proto, event, name, host, a, port, txt, flags);
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
			memset(&f, 0, sizeof(f));
			copy_str(f.name, sizeof(f.name), name);
			f.ifindex = ifindex;
			f.ipv6 = proto == AVAHI_PROTO_INET6;
			watch_tell(w, FIO_DNSSD_APPEARED, &f, NULL);
		}
		break;
	case AVAHI_BROWSER_REMOVE: {
		struct fio_dnssd_found f;
		memset(&f, 0, sizeof(f));
		copy_str(f.name, sizeof(f.name), name);
		f.ifindex = ifindex;
		f.ipv6 = proto == AVAHI_PROTO_INET6;
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
	if (w->poll != NULL)
		(void)avahi_threaded_poll_stop(w->poll);
	/* Frees the browser and any resolver still running. */
	if (w->client != NULL)
		avahi_client_free(w->client);
	if (w->poll != NULL)
		avahi_threaded_poll_free(w->poll);
	free(w);
}
