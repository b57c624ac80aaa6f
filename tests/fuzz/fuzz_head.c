/*
 * fuzz_head.c - libFuzzer target for the connection filter's request-head
 * parser (server/head.c), which reads client bytes before evhttp does and
 * decides the body limit, the route and the refusals that keep the two in
 * step (formats/api.md §1, §9). The input is a buffer that may hold a head:
 * where it ends must lie inside it and just after a blank line; every
 * field and value found must lie inside the head; and a head with a NUL
 * byte or a bare CR is never let through (neither marked bad by the
 * parser nor refused, as the filter in server/conn.c checks both).
 * Seeds: tests/fuzz/corpus/fuzz_head/ (heads of real requests and the
 * smuggling cases of tests/integration/server/conn_smuggle.sh).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const void *p, size_t len, const uint8_t *data, size_t size)
{
	return (const uint8_t *)p >= data && len <= size &&
	       (const uint8_t *)p - data <= (ptrdiff_t)(size - len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t end = srv_head_end(data, size);
	if (end > size)
		abort(); /* the end past the bytes given */
	if (end > 0 && !(end >= 2 && data[end - 1] == '\n' &&
	                 (data[end - 2] == '\n' ||
	                  (end >= 3 && data[end - 2] == '\r' && data[end - 3] == '\n'))))
		abort(); /* an end that is not after a blank line */
	size_t n = end > 0 ? end : size;
	struct srv_head hi;
	memset(&hi, 0, sizeof(hi));
	srv_head_parse(data, n, &hi);
	if (hi.path != NULL && !inside(hi.path, hi.path_len, data, n))
		abort();
	if (hi.auth != NULL && !inside(hi.auth, hi.auth_len, data, n))
		abort();
	const uint8_t *pos = NULL;
	struct srv_head_field f;
	size_t fields = 0;
	while (srv_head_next_field(data, n, &pos, &f)) {
		if (!inside(f.name, f.name_len, data, n) ||
		    !inside(f.value, f.value_len, data, n) || ++fields > n)
			abort(); /* outside the head, or no progress */
	}
	enum fmt_api_err_code code = FMT_API_ERR_UNKNOWN;
	const char *why = hi.bad != NULL ? hi.bad : srv_head_refusal(data, n, &hi, &code);
	if (why == NULL && memchr(data, '\0', n) != NULL)
		abort(); /* a NUL byte let through (request smuggling) */
	for (size_t i = 0; why == NULL && i < n; i++)
		if (data[i] == '\r' && (i + 1 >= n || data[i + 1] != '\n'))
			abort(); /* a bare CR let through */
	return 0;
}
