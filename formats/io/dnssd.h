/*
 * dnssd.h - DNS-SD glue over Avahi: publish one service instance, browse a
 * service type once with every instance resolved (host, address, port,
 * TXT), or watch a type without end. Part of formats/io: I/O without
 * policy; which instances to trust is the caller's business. What idprov
 * publishes: formats/api.md §11.
 *
 * Two backends behind the same calls (fio_dnssd_use chooses, once per
 * process, before any other call):
 * - daemon: avahi-client, the avahi-daemon on the host reached over D-Bus.
 *   A host that runs avahi-daemon must not run a second mDNS responder on
 *   port 5353 beside it, and the daemon answers for every program.
 * - embedded: libavahi-core, the same model inside the process with no
 *   daemon and no D-Bus (a device image, a server host without Avahi).
 *   Publications and watches of one process share one embedded responder
 *   (one host name, one Avahi thread), so a watch knows the process's own
 *   publications (f->own). A browse runs a querier of its own that
 *   publishes nothing. The responder's host name is the system's; when
 *   another host on the link holds it, an alternative ("name-2") is taken
 *   and FIO_DNSSD_HOST_RENAMED reported.
 * - auto (the default): daemon if avahi-daemon answers on D-Bus when the
 *   first call is made, else embedded.
 *
 * Threads: a publication's event callback is called from an Avahi thread
 * (its own with the daemon, the shared responder's when embedded) until
 * fio_dnssd_unpublish. fio_dnssd_browse blocks the calling thread
 * (AvahiSimplePoll) and calls back from it. A watch browses without end
 * and calls back from an Avahi thread (as a publication). Callbacks must
 * not call back into this module. Distinct calls share nothing else.
 */
#ifndef IDP_FORMATS_IO_DNSSD_H
#define IDP_FORMATS_IO_DNSSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define FIO_DNSSD_NAME_MAX 63u  /* bytes of an instance name (one DNS label) */
#define FIO_DNSSD_HOST_MAX 255u /* bytes of a host name */
#define FIO_DNSSD_ADDR_MAX 46u  /* bytes of an address as text (INET6_ADDRSTRLEN) */
#define FIO_DNSSD_TXT_MAX  8u   /* TXT strings published or kept per instance */
#define FIO_DNSSD_STR_MAX  255u /* bytes of one TXT string (RFC 6763 §6.1) */
#define FIO_DNSSD_TYPE_MAX 63u  /* bytes of a service type ("_idprov._tcp") */

/* Which Avahi serves the calls (see the top of this file). */
enum fio_dnssd_backend {
	FIO_DNSSD_AUTO = 0,     /* daemon if it answers on D-Bus, else embedded */
	FIO_DNSSD_DAEMON = 1,   /* avahi-client: avahi-daemon over D-Bus */
	FIO_DNSSD_EMBEDDED = 2, /* libavahi-core in the process */
};

/* "auto", "daemon" or "embedded" to *out; IDP_E_ARG naming the value and
 * the choices otherwise (*out unchanged). */
IDP_MUST_CHECK enum idp_err fio_dnssd_backend_parse(const char *s, enum fio_dnssd_backend *out,
                                                    struct idp_error *err);

/* The name fio_dnssd_backend_parse reads. */
const char *fio_dnssd_backend_name(enum fio_dnssd_backend b);

/* Choose the backend of this process. Call it before any publication,
 * browse or watch, and never while one runs. AUTO is decided again at the
 * next call that needs it. */
void fio_dnssd_use(enum fio_dnssd_backend b);

#define FIO_DNSSD_IFACES_MAX 16u   /* interfaces fio_dnssd_use_interfaces keeps */
#define FIO_DNSSD_IFNAME_MAX 15u   /* bytes of an interface name (IFNAMSIZ - 1) */

/* Restrict the embedded backend of this process to the interfaces
 * names[0..n) ("eth0", "lo"; copied): the responders and queriers made
 * after the call send and listen on those only (libavahi-core's
 * allow-interfaces). NULL/0: every interface again (the default). The
 * loopback interface counts as one (avahi-core serves it), so {"lo"} keeps
 * every packet on the host. Like fio_dnssd_use: call it before a
 * publication, browse or watch, not while one runs (one already running
 * keeps its interfaces). The daemon backend ignores it: avahi-daemon
 * serves the interfaces of its own configuration (allow-interfaces in
 * avahi-daemon.conf). IDP_E_ARG naming the name when a name is empty,
 * longer than FIO_DNSSD_IFNAME_MAX or holds '/', ',' or a space, or when n >
 * FIO_DNSSD_IFACES_MAX: the restriction is then unchanged. Thread-safe.
 * fio_dnssd_ifname_check: that check of one name alone (IDP_OK or
 * IDP_E_ARG), for a caller that reads names before using them. */
IDP_MUST_CHECK enum idp_err fio_dnssd_ifname_check(const char *name, struct idp_error *err);

IDP_MUST_CHECK enum idp_err fio_dnssd_use_interfaces(const char *const *names, size_t n,
                                                     struct idp_error *err);

/* The backend calls use now: DAEMON or EMBEDDED, never AUTO (AUTO is
 * decided here if it was not yet: the daemon is asked over D-Bus, which
 * takes a moment). *by_auto (may be NULL): chosen by AUTO. Thread-safe. */
enum fio_dnssd_backend fio_dnssd_backend_current(bool *by_auto);

/* What a publication reports, from its Avahi thread. */
enum fio_dnssd_event {
	FIO_DNSSD_PUBLISHED = 1, /* established; detail: the instance name */
	FIO_DNSSD_RENAMED = 2,   /* name taken by another host; detail: the new name */
	FIO_DNSSD_FAILED = 3,    /* the publication or the daemon failed; detail: why. A
	                          * daemon that went away (restart) is waited for, and
	                          * the service is published again: PUBLISHED follows */
	FIO_DNSSD_HOST_RENAMED = 4, /* embedded: the host name was taken on the link;
	                             * detail: the new host name; PUBLISHED follows */
};

typedef void (*fio_dnssd_event_fn)(void *arg, enum fio_dnssd_event ev, const char *detail);

struct fio_dnssd_service {
	const char *type;       /* "_idprov._tcp" */
	const char *name;       /* instance name, at most FIO_DNSSD_NAME_MAX bytes */
	uint16_t port;          /* non-zero */
	const char *const *txt; /* n_txt "key=value" strings, each <= FIO_DNSSD_STR_MAX */
	size_t n_txt;           /* <= FIO_DNSSD_TXT_MAX */
};

struct fio_dnssd_pub; /* opaque */

/* Publish s on every interface Avahi serves (s is copied). IDP_OK once
 * Avahi accepted it; establishment (or a failure) is then reported to fn
 * (may be NULL) from the Avahi thread. IDP_E_IO when avahi-daemon cannot be
 * reached (daemon) or no responder can be made (embedded; also when a watch
 * started the process's responder first, as a querier only: publish
 * before watching), IDP_E_ARG for a bad s. NULL *out on failure. */
IDP_MUST_CHECK enum idp_err fio_dnssd_publish(const struct fio_dnssd_service *s,
                                              fio_dnssd_event_fn fn, void *arg,
                                              struct fio_dnssd_pub **out, struct idp_error *err);

/* Withdraw the publication (goodbye packets are sent), stop its thread
 * (embedded: the last user stops the shared one) and release p. NULL is a
 * no-op. */
void fio_dnssd_unpublish(struct fio_dnssd_pub *p);

/* One resolved instance. */
struct fio_dnssd_found {
	char name[FIO_DNSSD_NAME_MAX + 1];
	char host[FIO_DNSSD_HOST_MAX + 1]; /* "host.local" */
	char addr[FIO_DNSSD_ADDR_MAX + 1]; /* "10.0.0.1" or "fe80::1" (no scope) */
	bool ipv6;
	bool link_local; /* 169.254/16 or fe80::/10: needs the interface to be reached */
	int ifindex;     /* interface it was found on */
	uint16_t port;
	char txt[FIO_DNSSD_TXT_MAX][FIO_DNSSD_STR_MAX + 1]; /* "key=value" as received */
	size_t n_txt; /* TXT strings beyond FIO_DNSSD_TXT_MAX are dropped */
	bool own;     /* published by this host (AVAHI_LOOKUP_RESULT_OUR_OWN; embedded:
	               * by this process's responder) */
	/* false: browsing saw the instance but resolving it failed; only name
	 * and ifindex are filled. Such an instance may still exist. */
	bool resolved;
};

/* Called once per instance seen (one per interface and address family),
 * resolved or not (f->resolved); f is borrowed for the call. */
typedef void (*fio_dnssd_found_fn)(void *arg, const struct fio_dnssd_found *f);

/* Browse type in the local domain and resolve every instance, calling fn for
 * each; returns once min_ms have passed, Avahi has said it reported all it
 * knows and every resolution has ended, or after wait_ms (> 0,
 * >= min_ms) at the latest: what was found by then has been reported, and
 * *complete (may be NULL) says which ended it. IDP_E_IO when the daemon
 * cannot be reached, no querier can be made (embedded) or the browse
 * fails. */
IDP_MUST_CHECK enum idp_err fio_dnssd_browse(const char *type, int64_t min_ms, int64_t wait_ms,
                                             fio_dnssd_found_fn fn, void *arg, bool *complete,
                                             struct idp_error *err);

/* What a watch reports, from its Avahi thread. */
enum fio_dnssd_change {
	FIO_DNSSD_APPEARED = 1,     /* an instance (f; f->resolved says whether resolved;
	                             * f->own also when its host is this host's Avahi name) */
	FIO_DNSSD_GONE = 2,         /* an instance withdrawn (f: name, ifindex, ipv6 only) */
	FIO_DNSSD_WATCH_READY = 3,  /* browsing (again): the daemon answers; detail: the type */
	FIO_DNSSD_WATCH_FAILED = 4, /* the daemon is gone or browsing failed; detail: why.
	                             * The watch reconnects by itself and says READY again
	                             * (embedded: there is no daemon to lose). */
};

typedef void (*fio_dnssd_watch_fn)(void *arg, enum fio_dnssd_change ch,
                                   const struct fio_dnssd_found *f, const char *detail);

struct fio_dnssd_watch; /* opaque */

/* Browse type without end and resolve every instance that appears, telling
 * fn (from the watch's Avahi thread) what appears and goes. A daemon that is
 * not there (yet) is not an error: FIO_DNSSD_WATCH_FAILED is reported and
 * the watch waits for it. IDP_E_IO when no Avahi client (daemon) or
 * responder (embedded) can be made at all, IDP_E_ARG for a bad type. NULL
 * *out on failure. */
IDP_MUST_CHECK enum idp_err fio_dnssd_watch_start(const char *type, fio_dnssd_watch_fn fn,
                                                  void *arg, struct fio_dnssd_watch **out,
                                                  struct idp_error *err);

/* Stop the watch's thread (no callback runs after it returns) and release
 * w. NULL is a no-op. */
void fio_dnssd_watch_stop(struct fio_dnssd_watch *w);

/* The value of key in f's TXT strings (the first "key=..." one), or NULL. */
const char *fio_dnssd_txt_get(const struct fio_dnssd_found *f, const char *key);

#endif /* IDP_FORMATS_IO_DNSSD_H */
