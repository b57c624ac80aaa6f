/*
 * admin_views.h - read-only admin listings the web UI needed and the admin
 * API lacked (docs/administrator.md, "Admin API"): each station's chain of
 * batches with its gaps, and the trusted factory CAs. Same authentication
 * as every /v1/admin/ route (server/admin.h), same error bodies.
 *
 * Thread-safety: as the handlers (one loop's store connection).
 */
#ifndef IDP_SERVER_ADMIN_VIEWS_H
#define IDP_SERVER_ADMIN_VIEWS_H

#include "server/httpd.h"

#define SRV_ADMIN_VIEW_STATIONS_MAX 256u /* station IDs a batch listing reads at a time */

/* GET /v1/admin/batches[?station=ID][&after=STATION:SEQ]: per station (ID
 * order), sequence 1 to its last: each batch, or {"missing": true} for a
 * sequence never imported; at most SRV_ADMIN_LIST_MAX rows, "truncated"
 * when cut, and "next" naming the last row ("STATION:SEQ") to continue
 * after. */
srv_handler_fn srv_admin_batch_list;

/* GET /v1/admin/cas[?after=NAME]: {"cas":[{"name","sha256","subject",
 * "not_after"}]} in name order, paged as the other listings. */
srv_handler_fn srv_admin_ca_list;

#endif /* IDP_SERVER_ADMIN_VIEWS_H */
