/*
 * dnssd_core.h - the embedded backend of dnssd.h over libavahi-core (no
 * avahi-daemon, no D-Bus), and the helpers both backends share. For
 * dnssd.c only: programs call dnssd.h, which checks the arguments and
 * chooses the backend. Same contracts as the dnssd.h calls of the same
 * names; threads: dnssd.h.
 */
#ifndef IDP_FORMATS_IO_DNSSD_CORE_H
#define IDP_FORMATS_IO_DNSSD_CORE_H

#include <avahi-common/address.h>
#include <avahi-common/defs.h>
#include <avahi-common/strlst.h>

#include "formats/io/dnssd.h"

struct fio_dnssd_core_pub;   /* opaque */
struct fio_dnssd_core_watch; /* opaque */

/* s checked by the caller. */
IDP_MUST_CHECK enum idp_err fio_dnssd_core_publish(const struct fio_dnssd_service *s,
                                                   fio_dnssd_event_fn fn, void *arg,
                                                   struct fio_dnssd_core_pub **out,
                                                   struct idp_error *err);

void fio_dnssd_core_unpublish(struct fio_dnssd_core_pub *p);

/* Arguments checked by the caller. */
IDP_MUST_CHECK enum idp_err fio_dnssd_core_browse(const char *type, int64_t min_ms,
                                                  int64_t wait_ms, fio_dnssd_found_fn fn,
                                                  void *arg, bool *complete,
                                                  struct idp_error *err);

IDP_MUST_CHECK enum idp_err fio_dnssd_core_watch_start(const char *type, fio_dnssd_watch_fn fn,
                                                       void *arg,
                                                       struct fio_dnssd_core_watch **out,
                                                       struct idp_error *err);

void fio_dnssd_core_watch_stop(struct fio_dnssd_core_watch *w);

/* What both backends' publications share: the service as given, its
 * current instance name and whom to tell. Defined in dnssd.c. */
struct fio_dnssd_svc {
	char *name; /* avahi_malloc'd: avahi_alternative_service_name() gives one */
	char type[FIO_DNSSD_TYPE_MAX + 1];
	uint16_t port;
	AvahiStringList *txt;
	unsigned renames;
	fio_dnssd_event_fn fn;
	void *arg;
};

/* Copy s (checked) into v; IDP_E_NOMEM (v emptied) when out of memory. */
IDP_MUST_CHECK enum idp_err fio_dnssd_svc_init(struct fio_dnssd_svc *v,
                                               const struct fio_dnssd_service *s,
                                               fio_dnssd_event_fn fn, void *arg,
                                               struct idp_error *err);

void fio_dnssd_svc_done(struct fio_dnssd_svc *v);

/* Report ev to v's callback (if any). */
void fio_dnssd_tell(const struct fio_dnssd_svc *v, enum fio_dnssd_event ev, const char *detail);

/* Report FIO_DNSSD_FAILED with "what: <Avahi's text for code>". */
void fio_dnssd_fail(const struct fio_dnssd_svc *v, const char *what, int code);

/* After a name collision: take the next alternative name and report it
 * (RENAMED), true; false, FAILED reported, when FIO_DNSSD_RENAMES_MAX were
 * tried or memory ran out. */
bool fio_dnssd_svc_rename(struct fio_dnssd_svc *v);

/* A resolver's result as a struct fio_dnssd_found (f zeroed by the caller);
 * defined in dnssd.c. */
void fio_dnssd_fill_found(struct fio_dnssd_found *f, AvahiIfIndex ifindex, AvahiProtocol proto,
                          AvahiResolverEvent event, const char *name, const char *host,
                          const AvahiAddress *a, uint16_t port, AvahiStringList *txt,
                          AvahiLookupResultFlags flags);

/* f reported unresolved: name, interface and family only. */
void fio_dnssd_fill_unresolved(struct fio_dnssd_found *f, AvahiIfIndex ifindex,
                               AvahiProtocol proto, const char *name);

#define FIO_DNSSD_RENAMES_MAX 16u /* alternative names tried after collisions */
#define FIO_DNSSD_SLICE_MS    100 /* longest single wait of a browse loop */

#endif /* IDP_FORMATS_IO_DNSSD_CORE_H */
