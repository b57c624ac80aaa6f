/*
 * handlers.c - see handlers.h.
 */
#include "server/handlers.h"

#include <string.h>

#include "server/log.h"

/* GET /v1/health: the server answers and its store connection works. */
static void health(struct srv_ctx *ctx, struct evhttp_request *req)
{
	int64_t version = 0;
	struct idp_error err = {0};
	if (srv_store_schema_version(ctx->store, &version, &err) != IDP_OK) {
		srv_log(SRV_LOG_ERROR, "health.store", "loop=%u error=\"%s\"", ctx->loop, err.msg);
		srv_http_error(req, 503, "unavailable", "store unavailable");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || cJSON_AddStringToObject(o, "status", "ok") == NULL ||
	    cJSON_AddStringToObject(o, "version", SRV_VERSION) == NULL ||
	    cJSON_AddNumberToObject(o, "schema", (double)version) == NULL ||
	    cJSON_AddStringToObject(o, "ca_fingerprint", ctx->state->ca_fingerprint) == NULL) {
		cJSON_Delete(o);
		srv_http_error(req, 500, "internal", "out of memory");
		return;
	}
	srv_http_json(req, 200, o);
	cJSON_Delete(o);
}

/* GET /v1/ca: the CA certificate devices pin. */
static void ca(struct srv_ctx *ctx, struct evhttp_request *req)
{
	srv_http_reply(req, 200, "application/x-pem-file", ctx->state->ca_pem,
	               ctx->state->ca_pem_len);
}

static const struct srv_route routes[] = {
        {"/v1/health", EVHTTP_REQ_GET, 0, health},
        {"/v1/ca", EVHTTP_REQ_GET, 0, ca},
};

const struct srv_route *srv_handlers_routes(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}
