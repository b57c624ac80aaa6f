/*
 * session.c - see session.h. The table is a fixed array searched linearly
 * (SRV_SESSION_MAX is small); a slot whose expiry has passed is free.
 */
#include "server/session.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "server/head.h"

#define SESSION_RAW 32u

struct session {
	bool used;
	uint8_t id_hash[SHA256_DIGEST_LENGTH]; /* SHA-256 of the hex ID */
	struct srv_session_info info;
	int64_t created;
	int64_t last_used;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session table[SRV_SESSION_MAX];

static bool alive(const struct session *s, int64_t now)
{
	return s->used && now - s->last_used < SRV_SESSION_IDLE &&
	       now - s->created < SRV_SESSION_ABSOLUTE;
}

static void wipe(struct session *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
}

static enum idp_err random_hex(char out[static SRV_SESSION_HEX + 1], struct idp_error *err)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t raw[SESSION_RAW];
	if (RAND_bytes(raw, (int)sizeof(raw)) != 1)
		return idp_error_set(err, IDP_E_CRYPTO, "session: no random bytes");
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = digits[raw[i] >> 4];
		out[2 * i + 1] = digits[raw[i] & 15];
	}
	out[SRV_SESSION_HEX] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return IDP_OK;
}

enum idp_err srv_session_new(enum srv_role role, const char *name, int64_t now,
                             char id[static SRV_SESSION_HEX + 1],
                             char csrf[static SRV_SESSION_HEX + 1], struct idp_error *err)
{
	id[0] = csrf[0] = '\0';
	if (role != SRV_ROLE_ADMIN && role != SRV_ROLE_VIEWER)
		return idp_error_set(err, IDP_E_ARG, "session: no role");
	size_t nlen = name != NULL ? strnlen(name, SRV_SESSION_NAME_MAX + 1) : 0;
	if (nlen == 0 || nlen > SRV_SESSION_NAME_MAX)
		return idp_error_set(err, IDP_E_ARG, "session: credential name of 1 to %u bytes",
		                     SRV_SESSION_NAME_MAX);
	enum idp_err rc = random_hex(id, err);
	if (rc == IDP_OK)
		rc = random_hex(csrf, err);
	if (rc != IDP_OK) {
		OPENSSL_cleanse(id, SRV_SESSION_HEX + 1);
		OPENSSL_cleanse(csrf, SRV_SESSION_HEX + 1);
		return rc;
	}
	(void)pthread_mutex_lock(&table_lock);
	struct session *slot = &table[0];
	for (size_t i = 0; i < SRV_SESSION_MAX; i++) {
		if (!alive(&table[i], now)) {
			slot = &table[i];
			break;
		}
		if (table[i].last_used < slot->last_used)
			slot = &table[i];
	}
	wipe(slot);
	slot->used = true;
	(void)SHA256((const uint8_t *)id, SRV_SESSION_HEX, slot->id_hash);
	memcpy(slot->info.csrf, csrf, sizeof(slot->info.csrf));
	memcpy(slot->info.name, name, nlen);
	slot->info.role = role;
	slot->created = slot->last_used = now;
	(void)pthread_mutex_unlock(&table_lock);
	return IDP_OK;
}

/* The value of cookie SRV_SESSION_COOKIE in the header h[0..len): *v and
 * *vlen; false when it is absent. A header naming it twice is refused as
 * absent-and-ambiguous by the caller (*twice). */
static bool cookie_value(const char *h, size_t len, const char **v, size_t *vlen, bool *twice)
{
	static const char name[] = SRV_SESSION_COOKIE "=";
	const size_t nlen = sizeof(name) - 1;
	bool found = false;
	*twice = false;
	size_t i = 0;
	while (i < len) {
		while (i < len && (h[i] == ' ' || h[i] == '\t' || h[i] == ';'))
			i++;
		size_t start = i;
		while (i < len && h[i] != ';')
			i++;
		size_t end = i;
		while (end > start && (h[end - 1] == ' ' || h[end - 1] == '\t'))
			end--;
		if (end - start >= nlen && memcmp(h + start, name, nlen) == 0) {
			if (found)
				*twice = true;
			found = true;
			*v = h + start + nlen;
			*vlen = end - start - nlen;
		}
	}
	return found;
}

/* The slot of the hex session ID v[0..len) (locked by the caller), or NULL. */
static struct session *find(const char *v, size_t len, int64_t now)
{
	if (len != SRV_SESSION_HEX)
		return NULL;
	uint8_t h[SHA256_DIGEST_LENGTH];
	(void)SHA256((const uint8_t *)v, len, h);
	struct session *hit = NULL;
	for (size_t i = 0; i < SRV_SESSION_MAX; i++)
		if (alive(&table[i], now) &&
		    CRYPTO_memcmp(table[i].id_hash, h, sizeof(h)) == 0)
			hit = &table[i];
	return hit;
}

bool srv_session_origin_ok(const struct srv_session_creds *c)
{
	return c->origin == NULL ||
	       (c->host != NULL && c->host_len > 0 && c->origin_len == 8 + c->host_len &&
	        strncasecmp(c->origin, "https://", 8) == 0 &&
	        strncasecmp(c->origin + 8, c->host, c->host_len) == 0);
}

enum srv_session_verdict srv_session_check(const struct srv_session_creds *c, int64_t now,
                                           struct srv_session_info *out)
{
	memset(out, 0, sizeof(*out));
	const char *v = NULL;
	size_t vlen = 0;
	bool twice = false;
	if (c->cookie == NULL || !cookie_value(c->cookie, c->cookie_len, &v, &vlen, &twice))
		return SRV_SESSION_NO_COOKIE;
	if (twice)
		return SRV_SESSION_UNKNOWN;
	enum srv_session_verdict verdict = SRV_SESSION_OK;
	(void)pthread_mutex_lock(&table_lock);
	struct session *s = find(v, vlen, now);
	if (s == NULL) {
		verdict = SRV_SESSION_UNKNOWN;
	} else if (c->unsafe) {
		if (!srv_session_origin_ok(c))
			verdict = SRV_SESSION_ORIGIN;
		else if (c->csrf == NULL || c->csrf_len != SRV_SESSION_HEX ||
		         CRYPTO_memcmp(c->csrf, s->info.csrf, SRV_SESSION_HEX) != 0)
			verdict = SRV_SESSION_CSRF;
		else if (s->info.role != SRV_ROLE_ADMIN)
			verdict = SRV_SESSION_ROLE;
	}
	if (s != NULL) {
		if (verdict == SRV_SESSION_OK) /* a refused request keeps nothing alive */
			s->last_used = now;
		*out = s->info;
	}
	(void)pthread_mutex_unlock(&table_lock);
	return verdict;
}

bool srv_session_end(const char *cookie, size_t len)
{
	const char *v = NULL;
	size_t vlen = 0;
	bool twice = false, ended = false;
	if (cookie == NULL || !cookie_value(cookie, len, &v, &vlen, &twice) || twice)
		return false;
	(void)pthread_mutex_lock(&table_lock);
	uint8_t h[SHA256_DIGEST_LENGTH];
	if (vlen == SRV_SESSION_HEX) {
		(void)SHA256((const uint8_t *)v, vlen, h);
		for (size_t i = 0; i < SRV_SESSION_MAX; i++)
			if (table[i].used && CRYPTO_memcmp(table[i].id_hash, h, sizeof(h)) == 0) {
				wipe(&table[i]);
				ended = true;
			}
	}
	(void)pthread_mutex_unlock(&table_lock);
	return ended;
}

size_t srv_session_count(int64_t now)
{
	size_t n = 0;
	(void)pthread_mutex_lock(&table_lock);
	for (size_t i = 0; i < SRV_SESSION_MAX; i++)
		n += alive(&table[i], now) ? 1 : 0;
	(void)pthread_mutex_unlock(&table_lock);
	return n;
}

const char *srv_session_verdict_text(enum srv_session_verdict v)
{
	switch (v) {
	case SRV_SESSION_OK:
		return "session: valid";
	case SRV_SESSION_NO_COOKIE:
		return "session: no session cookie";
	case SRV_SESSION_UNKNOWN:
		return "session: expired or logged out; log in again";
	case SRV_SESSION_CSRF:
		return "session: missing or wrong X-CSRF-Token";
	case SRV_SESSION_ORIGIN:
		return "session: request from another origin";
	case SRV_SESSION_ROLE:
		return "session: a viewer cannot change anything";
	}
	return "session: refused";
}

/* Header name n[0..len) is w (any case) and *seen is not set yet (the
 * first copy counts, as evhttp_find_header returns the first). */
static bool header_is(const char *n, size_t len, const char *w, const char *const *seen)
{
	return *seen == NULL && len == strlen(w) && strncasecmp(n, w, len) == 0;
}

void srv_session_creds_from_head(const uint8_t *p, size_t n, struct srv_session_creds *c)
{
	memset(c, 0, sizeof(*c));
	const uint8_t *sp = memchr(p, ' ', n);
	c->unsafe = !(sp != NULL && ((sp - p == 3 && memcmp(p, "GET", 3) == 0) ||
	                             (sp - p == 4 && memcmp(p, "HEAD", 4) == 0)));
	const uint8_t *pos = NULL;
	struct srv_head_field f;
	while (srv_head_next_field(p, n, &pos, &f)) {
		if (header_is(f.name, f.name_len, "cookie", &c->cookie))
			c->cookie = f.value, c->cookie_len = f.value_len;
		else if (header_is(f.name, f.name_len, "x-csrf-token", &c->csrf))
			c->csrf = f.value, c->csrf_len = f.value_len;
		else if (header_is(f.name, f.name_len, "origin", &c->origin))
			c->origin = f.value, c->origin_len = f.value_len;
		else if (header_is(f.name, f.name_len, "host", &c->host))
			c->host = f.value, c->host_len = f.value_len;
	}
}
