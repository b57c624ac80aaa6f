/*
 * site.h - idprovd on a site network: rogue detection and the provisioning
 * suspension (docs/administrator.md, "Rogue servers and suspension").
 *
 * While dnssd is on, idprovd browses _idprov._tcp without end (formats/io/
 * dnssd.h, a watch). Every instance that is not this server's own (own
 * flag, our CA fingerprint and one of our ports) and not on the allow-list
 * (site_allow: "HOST:PORT", HOST the advertised host name or the address,
 * or a CA fingerprint) is a rogue: provisioning is suspended at once. The
 * suspension is a database row (site_state), so it outlives restarts and
 * every event loop sees it; a rogue sighting also raises a "rogue-server"
 * flag, writes an audit entry (site.suspended), a log line (site.rogue) and
 * shows in the idprov_suspended metric. Only an administrator lifts it
 * (POST /v1/admin/resume), and not while a rogue is still published.
 *
 * While suspended, POST /v1/provision and POST /v1/token/exchange answer
 * 503 `suspended` (formats/api.md §9) with the reason and Retry-After,
 * before anything is parsed or written. Token renewal, nonces, station
 * uploads and the admin API go on.
 *
 * Threads: the watch calls back from its Avahi thread with a store
 * connection of its own; the handlers run on their loop with the loop's
 * connection. The list of instances seen is behind a lock.
 *
 * The watch never sits in SQLite's busy wait: its writes wait
 * SRV_STORE_BUSY_SLICE_MS at most for another process's write lock (the
 * sqlite3 CLI in BEGIN IMMEDIATE). A sighting whose suspension could not be
 * written then stays queued (logged once, site.waiting) and is written in
 * order by srv_site_retry, which idprovd's main thread calls after
 * SRV_SITE_WAKE_SIGNAL and then every second until the queue is empty.
 */
#ifndef IDP_SERVER_SITE_H
#define IDP_SERVER_SITE_H

#include <signal.h>
#include <stdbool.h>

#include "server/config.h"
#include "server/httpd.h"
#include "server/state.h"

#define SRV_SITE_RETRY_AFTER 300 /* seconds a device is told to wait while suspended */
#define SRV_SITE_SEEN_MAX    32u /* other publishers remembered at once */
#define SRV_SITE_WAKE_SIGNAL SIGUSR1 /* sent to the starting thread when a write waits */

struct srv_site; /* opaque */

/* Start browsing unless cfg->dnssd is off (NULL then, not an error); logs
 * what it does (dnssd.watching, dnssd.watch_failed) and, when the database
 * says provisioning is suspended, site.suspended_at_start. h gives our
 * ports. NULL when it cannot start (logged). */
struct srv_site *srv_site_start(const struct srv_config *cfg, const struct srv_state *state,
                                const struct srv_httpd *h);

/* Stop browsing and release s. NULL is a no-op. */
void srv_site_stop(struct srv_site *s);

/* Write the sightings still queued (see above), in order, with the short
 * wait. True while some are still queued (the lock is still held): call
 * again a little later. From the thread that called srv_site_start, which
 * gets SRV_SITE_WAKE_SIGNAL (blocked there, taken with sigtimedwait) when
 * a sighting starts waiting. NULL: false. */
bool srv_site_retry(struct srv_site *s);

/* True when provisioning is suspended: req has then been answered 503
 * `suspended` with the reason and Retry-After (or 503 `unavailable` when
 * the store cannot say). For the device provisioning handlers. */
bool srv_site_refused(struct srv_ctx *ctx, struct evhttp_request *req);

/* The admin API (server/routes.c; bodies in docs/administrator.md). */
srv_handler_fn srv_site_suspend;      /* POST /v1/admin/suspend {"reason"?} */
srv_handler_fn srv_site_resume;       /* POST /v1/admin/resume {} */
srv_handler_fn srv_site_status;       /* GET /v1/admin/suspension */
srv_handler_fn srv_site_allow_add;    /* POST /v1/admin/allow {"entry"} */
srv_handler_fn srv_site_allow_remove; /* POST /v1/admin/allow/remove {"entry"} */
srv_handler_fn srv_site_allow_list;   /* GET /v1/admin/allow */

#endif /* IDP_SERVER_SITE_H */
