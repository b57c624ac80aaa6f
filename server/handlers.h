/*
 * handlers.h - idprovd's device API and what every handler shares.
 * API: formats/api.md (POST /v1/nonce, /v1/provision, /v1/token/exchange,
 * /v1/token/renew) plus GET /v1/health and GET /v1/ca. Handlers run on their
 * loop's thread with that loop's store connection (server/httpd.h) and the
 * read-only struct srv_app shared by all loops.
 */
#ifndef IDP_SERVER_HANDLERS_H
#define IDP_SERVER_HANDLERS_H

#include <stddef.h>

#include "formats/api.h"
#include "formats/token.h"
#include "formats/version.h"
#include "server/config.h"
#include "server/httpd.h"
#include "server/provision.h"
#include "server/rules.h"
#include "server/throttle.h"

#define SRV_VERSION IDP_VERSION

/* What every handler shares (read-only once the loops run). */
struct srv_app {
	struct srv_provision_cfg pcfg; /* points into the strings below */
	char server_url[FMT_API_URL_MAX + 1];
	char audience[FMT_TOKEN_AUD_MAX + 1];
	int64_t pop_skew;
	int64_t nonce_lifetime;
	struct srv_rules rules; /* serial and ID rules applied to imports */
	struct srv_throttle *throttle; /* per-address buckets (locked inside); NULL: off */
	struct srv_throttle *throttle_device;  /* per device ID; NULL: off */
	struct srv_throttle *throttle_station; /* per station (manifest uploads); NULL: off */
	struct srv_throttle *throttle_oob;     /* wrong out-of-band proofs per device ID */
};

/* Fill app from cfg. The default server URL is https://HOST:PORT with the
 * host name and the port of first_bound ("ADDR:PORT"). */
IDP_MUST_CHECK enum idp_err srv_app_init(struct srv_app *app, const struct srv_config *cfg,
                                         const char *first_bound, struct idp_error *err);

/* Release what srv_app_init built (the compiled rules). */
void srv_app_free(struct srv_app *app);

/* Import the signed manifest in req's body (signature: base64 in the
 * Idprov-Signature header) and answer: POST /v1/batches for an authenticated
 * station, POST /v1/admin/import with station NULL (any trusted station). */
void srv_handlers_import(struct srv_ctx *ctx, struct evhttp_request *req, const char *station);

/* Answer the failure rc that came from origin with the one map of
 * formats/api.md §9 (fmt_api_err_of): a client error with err's message
 * (which srv_http_error escapes), a server fault (5xx) with a fixed text,
 * the details going to the log. Returns the code answered. */
enum fmt_api_err_code srv_handlers_fail(struct srv_ctx *ctx, struct evhttp_request *req,
                                        enum idp_err rc, enum fmt_api_err_origin origin,
                                        const struct idp_error *err);

/* The device API's handlers, registered in server/routes.c. Bodies:
 * formats/api.md. */
srv_handler_fn srv_handlers_health;    /* GET /v1/health */
srv_handler_fn srv_handlers_ca;        /* GET /v1/ca */
srv_handler_fn srv_handlers_jwks;      /* GET /v1/keys, GET /.well-known/jwks.json */
srv_handler_fn srv_handlers_nonce;     /* POST /v1/nonce */
srv_handler_fn srv_handlers_provision; /* POST /v1/provision */
srv_handler_fn srv_handlers_exchange;  /* POST /v1/token/exchange */
srv_handler_fn srv_handlers_renew;     /* POST /v1/token/renew */
srv_handler_fn srv_handlers_batches;   /* POST /v1/batches (station certificate) */

/* Answer code (429 throttled, 503 unavailable or suspended) with
 * Retry-After: wait and, as formats/api.md §9 says, the same retry_after in
 * the JSON body; msg is the message (client text escaped by the caller). */
void srv_handlers_error_retry(struct evhttp_request *req, enum fmt_api_err_code code,
                              const char *msg, int64_t wait);

#endif /* IDP_SERVER_HANDLERS_H */
