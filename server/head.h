/*
 * head.h - the connection filter's look at an HTTP/1.x request head before
 * evhttp parses it (server/conn.c): where the head ends, the few fields
 * that bound the body and pick the route (path, Content-Length,
 * Transfer-Encoding, Authorization), and the refusals that keep the filter
 * and evhttp in step (request smuggling, formats/api.md §9).
 *
 * Pure: works on a memory buffer, no I/O, logging or globals; any thread.
 */
#ifndef IDP_SERVER_HEAD_H
#define IDP_SERVER_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/api.h"

/* What srv_head_parse found; pointers are into the head (borrowed). */
struct srv_head {
	const uint8_t *raw; /* the whole head (for the web UI's session check) */
	size_t raw_len;
	bool http10;
	const char *path; /* the target's path, not NUL-terminated */
	size_t path_len;
	bool has_length;
	uint64_t length;
	bool chunked;
	const char *auth; /* the first Authorization value (NULL: none) */
	size_t auth_len;
	bool read_only; /* GET or HEAD: what a viewer credential may send */
	const char *bad; /* why the head is refused (400); NULL when it is not */
};

/* Offset just past the blank line that ends the head in p[0..n), or 0
 * when the head is not whole yet. */
size_t srv_head_end(const uint8_t *p, size_t n);

/* One header field of a request head: its name and its value without the
 * blanks (and CR) around it; not NUL-terminated. */
struct srv_head_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* The next "NAME: VALUE" line of the head p[0..n) after *pos (start with
 * *pos = NULL: the request line is skipped); false at the end. The one walk
 * over header lines, for the head checks and the web UI's session. */
bool srv_head_next_field(const uint8_t *p, size_t n, const uint8_t **pos,
                         struct srv_head_field *f);

/* Just enough of the whole head p[0..n) to bound the body: the target's path,
 * Content-Length (digits, all copies equal) and Transfer-Encoding. evhttp
 * parses the head fully after us (srv_head_refusal keeps the two in step).
 * Refused here already (hi->bad): a NUL byte anywhere (evhttp ends a head
 * at a line starting with NUL, so a second request, a chunked body or a
 * body could hide behind it) and a target that is not a path (the routes,
 * their body limits and authentication are looked up by the path seen here). */
void srv_head_parse(const uint8_t *p, size_t n, struct srv_head *hi);

/* Why evhttp would refuse the whole head p[0..n) with its own HTML page
 * (libevent 2.1 has no error callback), or NULL: so the filter refuses it
 * first and the answer is JSON. *code is set with the reason (a static
 * string). The rules are listed in head.c. */
const char *srv_head_refusal(const uint8_t *p, size_t n, const struct srv_head *hi,
                             enum fmt_api_err_code *code);

#endif /* IDP_SERVER_HEAD_H */
