/*
 * session.h - the web UI's login sessions (server/ui.c; docs/administrator.md,
 * "Web UI"). A session is created by a login with an admin credential and
 * carries that credential's role; the browser holds its ID in an HttpOnly
 * cookie and its CSRF token in page memory, and every state-changing request
 * must present both (plus, when the browser sends one, an Origin equal to
 * https://<Host>).
 *
 * The table is in memory, process-wide and bounded (SRV_SESSION_MAX): a
 * restart logs everyone out, which is the intended failure mode. Only the
 * SHA-256 of a session ID is kept; IDs and CSRF tokens are 32 random bytes
 * (RAND_bytes) in hex, compared in constant time.
 *
 * Thread-safety: every function may be called from any thread (one mutex).
 */
#ifndef IDP_SERVER_SESSION_H
#define IDP_SERVER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "server/store.h" /* enum srv_role */

#define SRV_SESSION_MAX      64u    /* sessions at once; a new login ends the least recently used */
#define SRV_SESSION_IDLE     900    /* seconds without a request before a session ends */
#define SRV_SESSION_ABSOLUTE 28800  /* seconds after login when a session ends anyway */
#define SRV_SESSION_HEX      64u    /* an ID or CSRF token: 32 bytes as lower-case hex */
#define SRV_SESSION_COOKIE   "__Host-idprov-session"
#define SRV_SESSION_CSRF_HDR "X-CSRF-Token"
#define SRV_SESSION_NAME_MAX SRV_STORE_CRED_NAME_MAX /* the credential's name (audit actor) */

/* What a request presents (borrowed, not NUL-terminated; NULL: absent). */
struct srv_session_creds {
	const char *cookie; /* the Cookie header */
	size_t cookie_len;
	const char *csrf; /* the X-CSRF-Token header */
	size_t csrf_len;
	const char *origin; /* the Origin header */
	size_t origin_len;
	const char *host; /* the Host header */
	size_t host_len;
	bool unsafe; /* the method changes state (anything but GET and HEAD) */
};

enum srv_session_verdict {
	SRV_SESSION_OK = 0,
	SRV_SESSION_NO_COOKIE, /* no session cookie: not a browser session at all */
	SRV_SESSION_UNKNOWN,   /* expired, logged out or never issued (401) */
	SRV_SESSION_CSRF,      /* unsafe request without the session's CSRF token (403) */
	SRV_SESSION_ORIGIN,    /* unsafe request from another origin (403) */
	SRV_SESSION_ROLE,      /* unsafe request by a viewer (403) */
};

/* What a live session is: whose, with what role, and its CSRF token. */
struct srv_session_info {
	enum srv_role role;
	char name[SRV_SESSION_NAME_MAX + 1]; /* the credential's name ("admin") */
	char csrf[SRV_SESSION_HEX + 1];
};

/* Start a session for the credential name (1..SRV_SESSION_NAME_MAX bytes)
 * with role at time now: its ID and CSRF token as hex in id and csrf
 * (NUL-terminated). When the table is full the session used least recently
 * is ended. IDP_E_ARG for no role or a bad name, IDP_E_CRYPTO when no
 * random bytes. */
IDP_MUST_CHECK enum idp_err srv_session_new(enum srv_role role, const char *name, int64_t now,
                                            char id[static SRV_SESSION_HEX + 1],
                                            char csrf[static SRV_SESSION_HEX + 1],
                                            struct idp_error *err);

/* Check what a request presents at time now. On SRV_SESSION_OK the
 * session's idle time restarts and *out describes it. On a refusal for a
 * live session (CSRF, ORIGIN, ROLE) *out is filled too, the idle time not
 * restarted; otherwise *out is zeroed (role SRV_ROLE_NONE). */
enum srv_session_verdict srv_session_check(const struct srv_session_creds *c, int64_t now,
                                           struct srv_session_info *out);

/* True when c has no Origin or its Origin is https://<its Host>: the
 * page's own origin (a browser sends Origin on every POST). */
bool srv_session_origin_ok(const struct srv_session_creds *c);

/* End the session named by the cookie header c (logout). False when no
 * live session had that ID. */
bool srv_session_end(const char *cookie, size_t len);

/* Sessions alive at time now (for tests and metrics). */
size_t srv_session_count(int64_t now);

/* Why a verdict refuses, as one lower-case line for an error body. */
const char *srv_session_verdict_text(enum srv_session_verdict v);

/* Fill c from a raw request head p[0..n) (request line and header lines,
 * as the connection filter sees it before evhttp): the first Cookie,
 * X-CSRF-Token, Origin and Host, and whether the method is unsafe. The
 * pointers point into p. */
void srv_session_creds_from_head(const uint8_t *p, size_t n, struct srv_session_creds *c);

#endif /* IDP_SERVER_SESSION_H */
