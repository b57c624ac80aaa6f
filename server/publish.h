/*
 * publish.h - idprovd's DNS-SD publication: one `_idprov._tcp` instance per
 * listening port that is not loopback, with the TXT records of
 * formats/api.md §11 (v, path, fp = the SHA-256 of the CA certificate, the
 * value GET /v1/health serves as ca_fingerprint). Over formats/io/dnssd.h
 * (avahi-daemon or the embedded responder). The embedded backend is
 * restricted first to the interfaces carrying the listen addresses (a
 * wildcard listener: all; loopback: the loopback interface), for the
 * watch of server/site.h too. A daemon that cannot be reached is a logged warning: the
 * server runs without the publication. Called from the main thread only;
 * Avahi's events are logged from its own thread (fio_log is thread-safe).
 */
#ifndef IDP_SERVER_PUBLISH_H
#define IDP_SERVER_PUBLISH_H

#include "server/config.h"
#include "server/httpd.h"
#include "server/state.h"

#define SRV_PUBLISH_TYPE "_idprov._tcp"

struct srv_publish; /* opaque */

/* Publish for each listener of h unless cfg->dnssd is false; logs what it
 * does (dnssd.off, dnssd.interfaces, dnssd.skipped, dnssd.publishing,
 * dnssd.published, dnssd.unavailable). NULL when nothing is published (not an error). */
struct srv_publish *srv_publish_start(const struct srv_config *cfg, const struct srv_state *state,
                                      const struct srv_httpd *h);

/* Withdraw every publication and release p. NULL is a no-op. */
void srv_publish_stop(struct srv_publish *p);

#endif /* IDP_SERVER_PUBLISH_H */
