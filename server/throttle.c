/*
 * throttle.c - see throttle.h.
 */
#include "server/throttle.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	char key[SRV_THROTTLE_KEY_MAX + 1]; /* "" = free */
	double tokens;
	double last; /* when tokens was computed */
};

struct srv_throttle {
	pthread_mutex_t lock;
	double rate;  /* tokens a second */
	double burst; /* bucket size */
	atomic_uint_least64_t refused;
	struct slot slots[SRV_THROTTLE_SLOTS];
};

enum idp_err srv_throttle_new(unsigned per_minute, unsigned burst, struct srv_throttle **out,
                              struct idp_error *err)
{
	*out = NULL;
	if (per_minute == 0 || burst == 0)
		return idp_error_set(err, IDP_E_ARG, "throttle: rate and burst must be at least 1");
	struct srv_throttle *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "throttle: out of memory");
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		return idp_error_set(err, IDP_E_NOMEM, "throttle: cannot create its lock");
	}
	t->rate = per_minute / 60.0;
	t->burst = burst;
	*out = t;
	return IDP_OK;
}

/* FNV-1a of key[0..len). */
static uint32_t hash(const char *key, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)key[i]) * 16777619u;
	return h;
}

/* The slot of key: its own, else a free one, else the least recently used
 * of the probed slots (reset to a full bucket). Called with the lock held. */
static struct slot *slot_of(struct srv_throttle *t, const char *key, size_t len, double now)
{
	uint32_t h = hash(key, len);
	struct slot *victim = NULL;
	for (unsigned i = 0; i < SRV_THROTTLE_PROBE; i++) {
		struct slot *s = &t->slots[(h + i) % SRV_THROTTLE_SLOTS];
		if (s->key[0] != '\0' && strcmp(s->key, key) == 0)
			return s;
		if (victim == NULL || (victim->key[0] != '\0' &&
		                       (s->key[0] == '\0' || s->last < victim->last)))
			victim = s;
	}
	memcpy(victim->key, key, len + 1);
	victim->tokens = t->burst;
	victim->last = now;
	return victim;
}

/* Refill key's bucket to now; with a token there, take it when take is set. */
static bool bucket(struct srv_throttle *t, const char *key, double now, bool take,
                   int64_t *retry_after)
{
	*retry_after = 0;
	size_t len = key != NULL ? strnlen(key, SRV_THROTTLE_KEY_MAX + 1) : 0;
	if (len == 0 || len > SRV_THROTTLE_KEY_MAX)
		return true;
	bool ok;
	(void)pthread_mutex_lock(&t->lock);
	struct slot *s = slot_of(t, key, len, now);
	if (now > s->last) {
		s->tokens += (now - s->last) * t->rate;
		if (s->tokens > t->burst)
			s->tokens = t->burst;
		s->last = now;
	}
	ok = s->tokens >= 1.0;
	if (ok && take) {
		s->tokens -= 1.0;
	} else if (!ok) {
		double wait = (1.0 - s->tokens) / t->rate;
		int64_t whole = (int64_t)wait;
		if ((double)whole < wait)
			whole++;
		*retry_after = whole < 1 ? 1 : whole;
	}
	(void)pthread_mutex_unlock(&t->lock);
	if (!ok)
		(void)atomic_fetch_add_explicit(&t->refused, 1, memory_order_relaxed);
	return ok;
}

bool srv_throttle_take(struct srv_throttle *t, const char *key, double now, int64_t *retry_after)
{
	return bucket(t, key, now, true, retry_after);
}

bool srv_throttle_peek(struct srv_throttle *t, const char *key, double now, int64_t *retry_after)
{
	return bucket(t, key, now, false, retry_after);
}

uint64_t srv_throttle_refused(struct srv_throttle *t)
{
	return atomic_load_explicit(&t->refused, memory_order_relaxed);
}

void srv_throttle_free(struct srv_throttle *t)
{
	if (t == NULL)
		return;
	(void)pthread_mutex_destroy(&t->lock);
	free(t);
}
