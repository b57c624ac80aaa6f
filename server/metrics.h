/*
 * metrics.h - GET /metrics: idprovd's state in the Prometheus text
 * exposition format (version 0.0.4), for a scraper holding the admin
 * credential (docs/administrator.md, "Metrics"; formats/api.md §14).
 *
 * Counters of this process (HTTP answers by status, connections, log lines
 * suppressed) start at 0 with the process; counts from the store (decisions
 * by event, refusals by reason, devices by state, open flags by kind) are
 * read from the database at each scrape, so every loop and a restart see
 * the same values. Thread-safety: as the handlers.
 */
#ifndef IDP_SERVER_METRICS_H
#define IDP_SERVER_METRICS_H

#include "server/httpd.h"

#define SRV_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The handler of GET /metrics: 401 without the admin credential. */
srv_handler_fn srv_metrics_get;

#endif /* IDP_SERVER_METRICS_H */
