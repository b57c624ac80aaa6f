/*
 * head.c - see head.h.
 */
#include "server/head.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>

size_t srv_head_end(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n')
			return i + 2;
		if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Just enough of the head to bound the body: the target's path,
 * Content-Length (digits, all copies equal) and Transfer-Encoding. evhttp
 * parses the head fully after us (srv_head_refusal keeps the two in step).
 * Refused here already: a NUL byte anywhere (evhttp ends a head at a line
 * starting with NUL, so a second request, a chunked body or a body could
 * hide behind it) and a target that is not a path (the routes, their body
 * limits and authentication are looked up by the path seen here). */
void srv_head_parse(const uint8_t *p, size_t n, struct srv_head *hi)
{
	memset(hi, 0, sizeof(*hi));
	hi->raw = p;
	hi->raw_len = n;
	const uint8_t *end = p + n;
	hi->read_only = (n > 4 && memcmp(p, "GET ", 4) == 0) || (n > 5 && memcmp(p, "HEAD ", 5) == 0);
	if (memchr(p, '\0', n) != NULL) {
		hi->bad = "request head: a NUL byte";
		return;
	}
	const uint8_t *sp = memchr(p, ' ', n);
	if (sp == NULL || sp + 1 == end || sp[1] != '/') {
		hi->bad = "request line: the target is not a path (origin form)";
		return;
	}
	const uint8_t *t = sp + 1;
	const uint8_t *te = t;
	while (te < end && *te != ' ' && *te != '?' && *te != '\r' && *te != '\n')
		te++;
	hi->path = (const char *)t;
	hi->path_len = (size_t)(te - t);
	const uint8_t *line = memchr(p, '\n', n);
	if (line != NULL && line - p >= 8) {
		const uint8_t *v = line[-1] == '\r' ? line - 9 : line - 8;
		hi->http10 = v >= p && memcmp(v, "HTTP/1.0", 8) == 0;
	}
	const uint8_t *pos = NULL;
	struct srv_head_field f;
	while (srv_head_next_field(p, n, &pos, &f)) {
		const uint8_t *v = (const uint8_t *)f.value, *ve = v + f.value_len;
		if (f.name_len == 14 && strncasecmp(f.name, "content-length", 14) == 0) {
			uint64_t x = 0;
			const uint8_t *d = v;
			while (d < ve && *d >= '0' && *d <= '9' && x < (UINT64_C(1) << 50))
				x = x * 10 + (uint64_t)(*d++ - '0');
			if (d == v || d != ve || (hi->has_length && hi->length != x))
				hi->bad = "content-length: malformed or not all equal";
			hi->has_length = true;
			hi->length = x;
		} else if (f.name_len == 17 && strncasecmp(f.name, "transfer-encoding", 17) == 0) {
			hi->chunked = true;
		} else if (f.name_len == 13 && hi->auth == NULL &&
		           strncasecmp(f.name, "authorization", 13) == 0) {
			hi->auth = f.value; /* trimmed as evhttp does */
			hi->auth_len = f.value_len;
		}
	}
}

bool srv_head_next_field(const uint8_t *p, size_t n, const uint8_t **pos,
                         struct srv_head_field *f)
{
	const uint8_t *end = p + n;
	const uint8_t *line = *pos != NULL ? *pos : memchr(p, '\n', n);
	while (line != NULL && line + 1 < end) {
		line++;
		const uint8_t *le = memchr(line, '\n', (size_t)(end - line));
		if (le == NULL)
			break;
		const uint8_t *colon = memchr(line, ':', (size_t)(le - line));
		if (colon == NULL) {
			line = le;
			continue;
		}
		const uint8_t *v = colon + 1, *ve = le;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
			ve--;
		f->name = (const char *)line;
		f->name_len = (size_t)(colon - line);
		f->value = (const char *)v;
		f->value_len = (size_t)(ve - v);
		*pos = le;
		return true;
	}
	*pos = end;
	return false;
}

/* An RFC 9110 token character (methods, header field names). */
static bool tchar(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* p[0..n) without a trailing CR. */
static size_t chomp(const uint8_t *p, size_t n)
{
	return n > 0 && p[n - 1] == '\r' ? n - 1 : n;
}

/* p[0..n) equals the lower-case word w, ignoring case and outer blanks. */
static bool value_is(const uint8_t *p, size_t n, const char *w)
{
	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return n == strlen(w) && strncasecmp((const char *)p, w, n) == 0;
}

/* The rules: a CR only before an LF; the request line METHOD SP TARGET SP
 * HTTP/1.x with a target evhttp's own URI parser takes; each header line
 * NAME ":" VALUE (so no obs-fold); no Expect but 100-continue (evhttp:
 * 417); a body only on POST, PUT and PATCH (evhttp reads none for other
 * methods and would parse it as the next request); and on those, no
 * Connection other than "close" without a Content-Length (evhttp: 400). */
const char *srv_head_refusal(const uint8_t *p, size_t n, const struct srv_head *hi,
                             enum fmt_api_err_code *code)
{
	*code = FMT_API_ERR_BAD_REQUEST;
	for (const uint8_t *cr = memchr(p, '\r', n); cr != NULL;
	     cr = memchr(cr + 1, '\r', n - (size_t)(cr + 1 - p)))
		if (cr + 1 == p + n || cr[1] != '\n')
			return "request head: a CR not followed by LF";
	const uint8_t *lf = memchr(p, '\n', n);
	size_t ll = chomp(p, lf != NULL ? (size_t)(lf - p) : n);
	const uint8_t *sp1 = memchr(p, ' ', ll);
	const uint8_t *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - p)) : NULL;
	if (lf == NULL || sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1)
		return "request line: not METHOD TARGET VERSION";
	size_t mlen = (size_t)(sp1 - p), tlen = (size_t)(sp2 - sp1 - 1);
	size_t vlen = ll - (size_t)(sp2 + 1 - p);
	for (size_t i = 0; i < mlen; i++)
		if (!tchar(p[i]))
			return "request line: the method is not a token";
	if (vlen != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return "request line: the version is not HTTP/1.1 or HTTP/1.0";
	for (size_t i = 0; i < tlen; i++)
		if (sp1[1 + i] <= 0x20 || sp1[1 + i] >= 0x7f)
			return "request line: the target has a byte outside printable ASCII";
	char *t = malloc(tlen + 1);
	if (t == NULL) {
		*code = FMT_API_ERR_INTERNAL;
		return "out of memory";
	}
	memcpy(t, sp1 + 1, tlen);
	t[tlen] = '\0';
	struct evhttp_uri *u = evhttp_uri_parse_with_flags(t, EVHTTP_URI_NONCONFORMANT);
	free(t);
	if (u == NULL)
		return "request line: the target is not a URI";
	evhttp_uri_free(u);
	bool body_method = (mlen == 4 && memcmp(p, "POST", 4) == 0) ||
	                   (mlen == 3 && memcmp(p, "PUT", 3) == 0) ||
	                   (mlen == 5 && memcmp(p, "PATCH", 5) == 0);
	bool seen_connection = false, keep_open = false;
	const uint8_t *end = p + n;
	for (const uint8_t *line = lf + 1; line < end;) {
		const uint8_t *le = memchr(line, '\n', (size_t)(end - line));
		size_t len = chomp(line, le != NULL ? (size_t)(le - line) : (size_t)(end - line));
		if (len == 0)
			break; /* the blank line that ends the head */
		const uint8_t *colon = memchr(line, ':', len);
		if (colon == NULL || colon == line)
			return "header: a line is not NAME: VALUE";
		size_t nlen = (size_t)(colon - line);
		for (size_t i = 0; i < nlen; i++)
			if (!tchar(line[i]))
				return "header: a field name is not a token";
		const uint8_t *v = colon + 1;
		size_t vl = len - nlen - 1;
		if (nlen == 6 && strncasecmp((const char *)line, "expect", 6) == 0 &&
		    !value_is(v, vl, "100-continue"))
			return "expect: only 100-continue is supported";
		if (nlen == 10 && strncasecmp((const char *)line, "connection", 10) == 0 &&
		    !seen_connection) {
			seen_connection = true;
			keep_open = !value_is(v, vl, "close");
		}
		if (le == NULL)
			break;
		line = le + 1;
	}
	if (!body_method && hi->has_length && hi->length > 0)
		return "body: only POST requests carry one";
	if (body_method && !hi->has_length && keep_open) {
		*code = FMT_API_ERR_LENGTH_REQUIRED;
		return "content-length: missing (send 0 for an empty body)";
	}
	return NULL;
}
