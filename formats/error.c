/*
 * error.c - see error.h.
 */
#include "formats/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static void vset(struct idp_error *err, enum idp_err code, const char *fmt, va_list ap)
	IDP_PRINTF(3, 0);

static void vset(struct idp_error *err, enum idp_err code, const char *fmt, va_list ap)
{
	err->code = code;
	/* Truncation is acceptable for a message; it stays NUL-terminated.
	 * (clang-analyzer 14 misreads va_list passed on as an argument.) */
	if (vsnprintf(err->msg, sizeof(err->msg), fmt, ap) < 0) // NOLINT(clang-analyzer-valist.Uninitialized)
		err->msg[0] = '\0';
}

enum idp_err idp_error_set(struct idp_error *err, enum idp_err code, const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vset(err, code, fmt, ap);
		va_end(ap);
	}
	return code;
}

enum idp_err idp_error_ssl(struct idp_error *err, enum idp_err code, const char *fmt, ...)
{
	if (err == NULL) {
		ERR_clear_error();
		return code;
	}
	va_list ap;
	va_start(ap, fmt);
	vset(err, code, fmt, ap);
	va_end(ap);

	size_t used = strnlen(err->msg, sizeof(err->msg));
	const char *sep = ": ";
	unsigned long e;
	while ((e = ERR_get_error()) != 0) {
		char buf[256];
		ERR_error_string_n(e, buf, sizeof(buf));
		int n = snprintf(err->msg + used, sizeof(err->msg) - used, "%s%s", sep, buf);
		if (n < 0 || (size_t)n >= sizeof(err->msg) - used)
			break; /* the message is full; the rest of the queue is dropped */
		used += (size_t)n;
		sep = "; ";
	}
	ERR_clear_error();
	return code;
}

void idp_error_prefix(struct idp_error *err, const char *fmt, ...)
{
	if (err == NULL)
		return;
	char ctx[IDP_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(ctx, sizeof(ctx), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	if (n < 0)
		return;
	char old[IDP_ERROR_MSG_MAX];
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	/* Truncation keeps the context, which is the more useful half. */
	if (snprintf(err->msg, sizeof(err->msg), "%s: %s", ctx, old) < 0)
		err->msg[0] = '\0';
}

void idp_error_clear(struct idp_error *err)
{
	if (err == NULL)
		return;
	err->code = IDP_OK;
	err->msg[0] = '\0';
}

const char *idp_err_name(enum idp_err code)
{
	switch (code) {
	case IDP_OK: return "ok";
	case IDP_E_NOMEM: return "nomem";
	case IDP_E_ARG: return "argument";
	case IDP_E_IO: return "io";
	case IDP_E_FORMAT: return "format";
	case IDP_E_LIMIT: return "limit";
	case IDP_E_UNSUPPORTED: return "unsupported";
	case IDP_E_CRYPTO: return "crypto";
	case IDP_E_VERIFY: return "verify";
	case IDP_E_DUPLICATE: return "duplicate";
	case IDP_E_NOTFOUND: return "notfound";
	case IDP_E_EXPIRED: return "expired";
	case IDP_E_DENIED: return "denied";
	case IDP_E_CONFLICT: return "conflict";
	case IDP_E_TIMEOUT: return "timeout";
	case IDP_E_AGAIN: return "again";
	case IDP_E_SUSPENDED: return "suspended";
	case IDP_E_FULL: return "full";
	}
	return "unknown";
}

const char *idp_quote(const char *s, size_t len, char out[static IDP_QUOTE_MAX])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < len && i < IDP_QUOTE_SHOW; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (len > IDP_QUOTE_SHOW) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}
