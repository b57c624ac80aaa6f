/*
 * error.h - error codes and the error record every fallible function fills.
 *
 * Fallible functions return enum idp_err (IDP_OK = 0, negative on failure) and
 * take a struct idp_error *err last (may be NULL). Messages read
 * "<thing>: <problem>", lower case, no trailing newline and never a secret;
 * callers add context with idp_error_prefix(). Pure; thread-safe (no globals
 * besides OpenSSL's per-thread error queue, which idp_error_ssl drains).
 */
#ifndef IDP_FORMATS_ERROR_H
#define IDP_FORMATS_ERROR_H

#include <stddef.h>

#define IDP_MUST_CHECK __attribute__((warn_unused_result))
#define IDP_PRINTF(f, a) __attribute__((format(printf, f, a)))

#define IDP_ERROR_MSG_MAX 512u /* bytes of message, NUL included; longer is cut */

enum idp_err {
	IDP_OK = 0,
	IDP_E_NOMEM = -1,       /* out of memory */
	IDP_E_ARG = -2,         /* caller passed an invalid argument */
	IDP_E_IO = -3,          /* file or device I/O failed */
	IDP_E_FORMAT = -4,      /* input is malformed */
	IDP_E_LIMIT = -5,       /* input exceeds a documented maximum */
	IDP_E_UNSUPPORTED = -6, /* valid but not supported (version, key type, algorithm) */
	IDP_E_CRYPTO = -7,      /* a cryptographic operation failed to run */
	IDP_E_VERIFY = -8,      /* a signature or integrity check did not match */
	IDP_E_DUPLICATE = -9,   /* a value that must be unique is repeated */
	IDP_E_NOTFOUND = -10,   /* a looked-up item does not exist */
	IDP_E_EXPIRED = -11,    /* outside its validity time */
	IDP_E_DENIED = -12,     /* refused by policy */
	IDP_E_CONFLICT = -13,   /* contradicts stored state */
	IDP_E_TIMEOUT = -14,    /* a deadline passed */
	IDP_E_AGAIN = -15,      /* try again later (pending, throttled) */
	IDP_E_SUSPENDED = -16,  /* refused while an administrator's hold is on (a rogue server) */
	IDP_E_FULL = -17,       /* out of storage (disk full, file size limit): try again later */
};

struct idp_error {
	enum idp_err code;
	char msg[IDP_ERROR_MSG_MAX];
};

/* Record code and a printf-style message in err (if not NULL); returns code so
 * that "return idp_error_set(err, ...);" reads naturally. */
enum idp_err idp_error_set(struct idp_error *err, enum idp_err code, const char *fmt, ...)
	IDP_PRINTF(3, 4);

/* Like idp_error_set, then append ": " and OpenSSL's error queue of this thread
 * (oldest first, "; "-separated) and clear that queue. */
enum idp_err idp_error_ssl(struct idp_error *err, enum idp_err code, const char *fmt, ...)
	IDP_PRINTF(3, 4);

/* Put "<context>: " in front of the message already in err (no-op when err is
 * NULL). For callers adding a path, a line number, a device ID. */
void idp_error_prefix(struct idp_error *err, const char *fmt, ...) IDP_PRINTF(2, 3);

/* Reset err to IDP_OK with an empty message. NULL is a no-op. */
void idp_error_clear(struct idp_error *err);

#define IDP_QUOTE_SHOW 40u                          /* input bytes shown before "..." */
#define IDP_QUOTE_MAX  (4u * IDP_QUOTE_SHOW + 4u) /* bytes idp_quote may write, NUL included */

/* A printable, bounded copy of an untrusted value for a message: at most
 * IDP_QUOTE_SHOW bytes of s[0..len), each byte outside printable ASCII (and
 * '"', '\\') as \xNN, "..." when cut. Returns out. Never a secret. */
const char *idp_quote(const char *s, size_t len, char out[static IDP_QUOTE_MAX]);

/* Short stable name of a code ("format", "verify", ...); never NULL. */
const char *idp_err_name(enum idp_err code);

#endif /* IDP_FORMATS_ERROR_H */
