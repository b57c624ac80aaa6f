/*
 * throttle.h - keyed token buckets: per client address for the
 * unauthenticated endpoints that write rows (POST /v1/nonce, POST
 * /v1/provision; the key is the address as handlers.c's source_of gives it,
 * an IPv4 address or an IPv6 /64), per device ID for the device endpoints,
 * per station for manifest uploads, per device ID for wrong out-of-band
 * proofs: one table each. A key may make `burst` requests at once, then
 * `per_minute` a minute; a request over that is answered 429 with
 * Retry-After (docs/administrator.md, "Throttling").
 *
 * Memory is fixed: SRV_THROTTLE_SLOTS buckets in a hash table, shared by
 * every event loop (one client's connections land on several loops). A new
 * address takes a free slot near its hash, else the least recently used of
 * those slots; an evicted address starts again with a full bucket, so
 * eviction never throttles anyone who was not over the limit.
 *
 * Thread-safe: one mutex around the table (a lookup is a few compares).
 * Times are passed in (seconds, monotonic), so the arithmetic is testable.
 */
#ifndef IDP_SERVER_THROTTLE_H
#define IDP_SERVER_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define SRV_THROTTLE_SLOTS  8192u /* addresses tracked at once */
#define SRV_THROTTLE_PROBE  8u    /* slots looked at for one address */
#define SRV_THROTTLE_KEY_MAX 64u  /* bytes of an address key */

struct srv_throttle;

/* New table: per_minute requests a minute per address after a burst of
 * burst (both >= 1). Caller frees with srv_throttle_free(). */
IDP_MUST_CHECK enum idp_err srv_throttle_new(unsigned per_minute, unsigned burst,
                                             struct srv_throttle **out, struct idp_error *err);

/* Take one request for key at time now (seconds): true when allowed;
 * false when throttled, with *retry_after the whole seconds (>= 1) until
 * the next request would be. A NULL or too long key is never throttled. */
bool srv_throttle_take(struct srv_throttle *t, const char *key, double now, int64_t *retry_after);

/* As srv_throttle_take, but a request that is allowed takes nothing (for
 * buckets charged only on failure, e.g. wrong out-of-band proofs: peek
 * before checking, take when it failed). A refusal is counted. */
bool srv_throttle_peek(struct srv_throttle *t, const char *key, double now, int64_t *retry_after);

/* Requests refused since the start (for GET /metrics). */
uint64_t srv_throttle_refused(struct srv_throttle *t);

/* Release t. NULL is a no-op. */
void srv_throttle_free(struct srv_throttle *t);

#endif /* IDP_SERVER_THROTTLE_H */
