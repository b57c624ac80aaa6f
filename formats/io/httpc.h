/*
 * httpc.h - the one HTTPS client of idprov's programs (idprov-admin,
 * idprov-station, idprov-agent), over libcurl with OpenSSL. Part of
 * formats/io: I/O without policy. It verifies the server against a CA
 * file, can present a client certificate, sends a bearer credential and
 * wipes its copies, keeps answers under a cap or hands a large one to a
 * sink as it arrives (constant memory), turns API error bodies
 * (formats/api.md) into an idp_error, retries with exponential backoff and
 * jitter that honour Retry-After, and can build a request body on the live
 * connection from its RFC 9266 exporter (the proof of possession).
 *
 * One client per thread: a client reuses its connection between requests
 * (and its TLS sessions across connections: fio_httpc_disconnect) and is
 * not to be shared between threads. A client parses its CA file once
 * and verifies every later connection with it for FIO_HTTPC_CA_CACHE_S
 * (a replaced file is read by a new client, or after that time); a program
 * that makes many connections keeps one client per server.
 * curl_global_init() is the program's job (main), as libcurl requires.
 */
#ifndef IDP_FORMATS_IO_HTTPC_H
#define IDP_FORMATS_IO_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/api.h"
#include "formats/error.h"
#include "formats/io/tls.h"

#define FIO_HTTPC_URL_MAX           2048u      /* bytes of base URL + path */
#define FIO_HTTPC_BEARER_MAX        512u       /* bytes of a bearer credential */
#define FIO_HTTPC_HEADER_MAX        8192u      /* bytes of one extra header line */
#define FIO_HTTPC_ANSWER_DEFAULT    (1u << 20) /* bytes of an answer kept */
#define FIO_HTTPC_RETRY_AFTER_MAX   INT64_C(3600)/* seconds: a longer Retry-After is not waited */
#define FIO_HTTPC_ATTEMPTS_MAX      100u
#define FIO_HTTPC_CA_CACHE_S        3600L      /* seconds a client keeps its parsed CA file */
/* A file upload, all sent, waits for its answer timeout_s plus one second
 * per this many bytes (the server acts on the whole body first). */
#define FIO_HTTPC_UPLOAD_ANSWER_RATE (128u << 10)

struct fio_httpc_opts {
	const char *base_url;     /* "https://host:port" (no trailing '/'); https only */
	const char *ca_file;      /* PEM trust anchors the server chain must reach */
	/* WARNING: skips server verification. Only for fetching a CA whose
	 * fingerprint the caller then checks against a pin (trust on first
	 * use); never for anything that sends a secret. */
	bool no_verify;
	const char *client_cert;  /* PEM certificate presented to the server, or NULL */
	const char *client_key;   /* its PEM private key (required with client_cert) */
	long timeout_s;           /* one attempt, whole transfer; 0 = 30. A file upload
	                           * (fio_httpc_do_file) or an answer to a sink
	                           * (fio_httpc_req.sink) instead: the longest stall */
	long connect_timeout_s;   /* 0 = 10 */
	unsigned attempts;        /* tries in all for a retryable failure; 0 = 1 */
	unsigned backoff_ms;      /* delay before the 2nd try, doubled each time; 0 = 500 */
	unsigned backoff_max_ms;  /* cap of one delay; 0 = 30000 */
	size_t answer_max;        /* bytes of an answer kept; 0 = FIO_HTTPC_ANSWER_DEFAULT.
	                           * With a sink: of an error answer (not 2xx) only */
	int64_t retry_after_max;  /* seconds: a longer Retry-After (429, 503) is returned to
	                           * the caller, not slept through; 0 = FIO_HTTPC_RETRY_AFTER_MAX */
};

/* Writes exactly len bytes of body into out, on the connection whose RFC
 * 9266 exporter is given (called once per attempt, after the handshake).
 * A failure ends the request with that error. */
typedef enum idp_err (*fio_httpc_body_fn)(void *arg,
                                          const uint8_t exporter[static FIO_TLS_EXPORTER_LEN],
                                          uint8_t *out, size_t len, struct idp_error *err);

/* Takes each piece of a 2xx answer's body as it arrives (fio_httpc_req.sink),
 * the upload side's fio_httpc_piece_fn mirrored: offset is the piece's place
 * in the body, and 0 begins an answer: a new attempt, so start over (drop
 * what an earlier, cut attempt gave). Every 2xx answer that arrives whole
 * gives a piece at offset 0 first (an empty one when its body is empty), so
 * the pieces since the last offset 0 are the answer when the request returns
 * IDP_OK; on any failure they are not (an answer cut mid-body, retried or
 * not). A failure aborts the transfer, which is not tried again (resp->local,
 * its error returned). buf is libcurl's, valid for the call only. */
typedef enum idp_err (*fio_httpc_sink_fn)(void *arg, uint64_t offset, const uint8_t *buf,
                                          size_t len, struct idp_error *err);

struct fio_httpc_req {
	const char *method;        /* "GET", "POST", ... */
	const char *path;          /* "/v1/provision": appended to base_url */
	const char *content_type;  /* NULL: no Content-Type */
	const uint8_t *body;       /* the body, body_len bytes; or NULL with body_fn */
	size_t body_len;
	fio_httpc_body_fn body_fn; /* or: make body_len bytes on the live connection */
	void *body_arg;
	const char *bearer;        /* "Authorization: Bearer ..." or NULL; borrowed */
	const char *const *headers; /* extra "Name: value" lines, NULL-terminated, or NULL */
	/* The request may be sent again after it could have reached the server
	 * (safe to repeat: a GET, an idempotent upload). Otherwise only
	 * failures before anything was sent, 429 and 503 are retried. */
	bool idempotent;
	/* Or NULL: a 2xx answer's body goes to sink as it arrives, not into
	 * resp->body (which stays NULL), in constant memory whatever its size;
	 * error answers are kept as without it (answer_max). The attempt is then
	 * bounded by its progress, as a file upload is (fio_httpc_do_file): no
	 * byte moving either way for timeout_s ends it ("no progress"), as does
	 * no answer beginning within timeout_s once the body is sent ("no
	 * answer"). */
	fio_httpc_sink_fn sink;
	void *sink_arg;
};

struct fio_httpc_resp {
	long status;               /* HTTP status; 0 when no answer arrived */
	uint8_t *body;             /* NUL-terminated; owned, free with _resp_free() */
	size_t len;
	int64_t retry_after;       /* seconds from Retry-After; 0 = absent */
	bool has_api_error;        /* status >= 400 and the body is an API error */
	struct fmt_api_error api;  /* when has_api_error */
	unsigned attempts;         /* tries made */
	bool tls_resumed;          /* the answer came on a resumed TLS session */
	bool local;                /* failed here: the body could not be made or read, or
	                            * the sink refused the answer (its error says why) */
};

struct fio_httpc; /* opaque */

/* A client for o (copied; o's strings are copied too). NULL *out on
 * failure: IDP_E_ARG names a bad option, IDP_E_NOMEM. */
IDP_MUST_CHECK enum idp_err fio_httpc_new(const struct fio_httpc_opts *o, struct fio_httpc **out,
                                          struct idp_error *err);

/* Send r, retrying as above. IDP_OK for a 2xx answer. An HTTP error answer
 * returns a code by status (400 IDP_E_FORMAT, 401/403 IDP_E_DENIED, 404
 * IDP_E_NOTFOUND, 409 IDP_E_CONFLICT, 413 IDP_E_LIMIT, 429/503 IDP_E_AGAIN,
 * other IDP_E_IO) with "server refused (STATUS CODE): MESSAGE"; resp is
 * filled in both cases and must be freed. Transport failures: IDP_E_VERIFY
 * (the server's certificate), IDP_E_TIMEOUT, IDP_E_LIMIT (answer over the
 * cap), IDP_E_IO, each naming the server. */
IDP_MUST_CHECK enum idp_err fio_httpc_do(struct fio_httpc *c, const struct fio_httpc_req *r,
                                         struct fio_httpc_resp *resp, struct idp_error *err);

/* Close c's connection now (an idle client that waits long before its next
 * request: the server would drop it anyway) but keep the TLS sessions it
 * received: the next request resumes one (a session ticket, no certificate
 * sent or verified), when the server still accepts it, and reports
 * resp->tls_resumed. Each connection still has its own RFC 9266 exporter.
 * Sessions live in memory only, as long as c. IDP_E_NOMEM, c unchanged. */
IDP_MUST_CHECK enum idp_err fio_httpc_disconnect(struct fio_httpc *c, struct idp_error *err);

/* Sees each piece of a file body (fio_httpc_do_file) before it is sent:
 * offset is the piece's place in the file (0 starts the body again: a new
 * attempt, so start over), last says the piece ends the file (an empty file
 * gives one empty last piece before anything is sent). A failure aborts the
 * transfer before this piece leaves. */
typedef enum idp_err (*fio_httpc_piece_fn)(void *arg, uint64_t offset, const uint8_t *buf,
                                           size_t len, bool last, struct idp_error *err);

struct fio_httpc_file {
	const char *path;         /* a regular file: its size when opened is the body's length */
	fio_httpc_piece_fn check; /* or NULL */
	void *check_arg;
};

/* fio_httpc_do with the body read from f->path as it is sent (r->body and
 * r->body_fn NULL), in libcurl's buffer: constant memory whatever the size.
 * The file is opened once; every attempt sends it from its start (pread),
 * as does libcurl when it rewinds for a new connection. Before anything is
 * sent: IDP_E_NOTFOUND / IDP_E_IO for a file that cannot be opened,
 * IDP_E_ARG for one that is not a regular file, each naming it. During the
 * transfer, a file that ends before its size when opened (IDP_E_FORMAT), a
 * read error (IDP_E_IO) or the check's refusal (its error, prefixed with the
 * path) abort it before the last byte leaves, so the server never has the
 * whole body; none of these is tried again. An attempt has no bound on its
 * whole time (a large file on a slow or loaded link takes what it takes):
 * it ends with IDP_E_TIMEOUT ("no progress for N s") when no byte moves
 * either way for timeout_s, or ("no answer for N s") when, the body all
 * sent, no answer begins within timeout_s plus one second per
 * FIO_HTTPC_UPLOAD_ANSWER_RATE bytes of it; it is tried again then when
 * r->idempotent. */
IDP_MUST_CHECK enum idp_err fio_httpc_do_file(struct fio_httpc *c, const struct fio_httpc_req *r,
                                              const struct fio_httpc_file *f,
                                              struct fio_httpc_resp *resp,
                                              struct idp_error *err);

/* Free resp's body and zero it. NULL is a no-op. */
void fio_httpc_resp_free(struct fio_httpc_resp *resp);

/* Release c. NULL is a no-op. */
void fio_httpc_free(struct fio_httpc *c);

#endif /* IDP_FORMATS_IO_HTTPC_H */
