/*
 * handlers.h - idprovd's HTTP API: the route table the server runs.
 * API: docs/api.md (GET /v1/health, GET /v1/ca so far; the provisioning
 * routes follow formats/api.md). Handlers run on their loop's thread with
 * that loop's store connection (server/httpd.h).
 */
#ifndef IDP_SERVER_HANDLERS_H
#define IDP_SERVER_HANDLERS_H

#include <stddef.h>

#include "server/httpd.h"

#define SRV_VERSION "0.1.0"

/* The routes, and their count in *n. Static: valid for the whole run. */
const struct srv_route *srv_handlers_routes(size_t *n);

#endif /* IDP_SERVER_HANDLERS_H */
