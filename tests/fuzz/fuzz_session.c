/*
 * fuzz_session.c - libFuzzer target for the web UI's session check on a raw
 * request head (server/session.c: srv_session_creds_from_head, the cookie
 * parser, srv_session_check), as the connection filter runs it before any
 * body is read. One session is live; the input is a head that may carry
 * its cookie (the fuzzer finds the ID in the seed) but never its CSRF
 * token, which is drawn at random: whatever the bytes, an unsafe request
 * must never be accepted, and every pointer found must lie inside the head.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const char *p, size_t len, const uint8_t *data, size_t size)
{
	return p == NULL || ((const uint8_t *)p >= data && len <= size &&
	                     (const uint8_t *)p - data <= (ptrdiff_t)(size - len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char id[SRV_SESSION_HEX + 1], csrf[SRV_SESSION_HEX + 1];
	if (id[0] == '\0' && srv_session_new(SRV_ROLE_ADMIN, "admin", 1000, id, csrf, NULL) != IDP_OK)
		abort();
	static uint8_t buf[65536];
	static const char hdr[] = "\r\nCookie: " SRV_SESSION_COOKIE "=";
	if (size > 0 && (data[0] & 1) != 0 && size + sizeof(hdr) + SRV_SESSION_HEX < sizeof(buf)) {
		const uint8_t *nl = memchr(data, '\n', size);
		size_t first = nl != NULL ? (size_t)(nl - data) : size, n = 0;
		memcpy(buf, data, first);
		n = first;
		memcpy(buf + n, hdr, sizeof(hdr) - 1);
		n += sizeof(hdr) - 1;
		memcpy(buf + n, id, SRV_SESSION_HEX);
		n += SRV_SESSION_HEX;
		memcpy(buf + n, data + first, size - first);
		data = buf;
		size = n + size - first;
	}
	struct srv_session_creds c;
	srv_session_creds_from_head(data, size, &c);
	if (!inside(c.cookie, c.cookie_len, data, size) || !inside(c.csrf, c.csrf_len, data, size) ||
	    !inside(c.origin, c.origin_len, data, size) || !inside(c.host, c.host_len, data, size))
		abort(); /* a value outside the head */
	struct srv_session_info si;
	enum srv_session_verdict v = srv_session_check(&c, 1001, &si);
	if (c.unsafe && v == SRV_SESSION_OK)
		abort(); /* a change accepted without the session's CSRF token */
	if (v != SRV_SESSION_OK && v != SRV_SESSION_ROLE && v != SRV_SESSION_CSRF &&
	    v != SRV_SESSION_ORIGIN && (si.role != SRV_ROLE_NONE || si.csrf[0] != '\0'))
		abort(); /* a role or token for a request that has no session */
	return 0;
}
