/*
 * api.h - the provisioning API's JSON bodies (requests and answers of
 * idprovd's HTTP API); the device's proof of possession over a request,
 * bound to the TLS channel that carries it, is formats/pop.h. Spec:
 * formats/api.md (normative: endpoints, fields,
 * limits, the exact signed bytes, error codes and HTTP statuses, DNS-SD).
 *
 * Every message is a plain struct with fixed-size fields (no allocation);
 * fmt_api_*_parse fills one from a bounded body and fmt_api_*_encode writes it
 * back as deterministic JSON (fixed member order, no whitespace), after the
 * same checks the parser makes, so an encoder never emits what a parser
 * refuses. Tokens are opaque strings here (formats/token.h reads them).
 *
 * Pure (no I/O, logging or globals); thread-safe. Structs holding secrets
 * (tokens, the out-of-band secret) must be wiped with the matching _wipe().
 */
#ifndef IDP_FORMATS_API_H
#define IDP_FORMATS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/id.h"
#include "formats/keys.h"
#include "formats/mac.h"
#include "formats/oob.h"
#include "formats/token.h"

#define FMT_API_BODY_MAX          16384u /* bytes of any request or answer body */
#define FMT_API_ID_MAX            FMT_ID_MAX /* device and batch IDs: formats/id.h */
#define FMT_API_AGENT_VERSION_MAX 32u    /* [A-Za-z0-9._+~-] */
#define FMT_API_OOB_MAX           64u    /* out-of-band label secret: printable ASCII, no space */
#define FMT_API_OOB_PROOF_LEN     FMT_OOB_LEN /* oob_proof: HMAC-SHA256 (formats/oob.h) */
#define FMT_API_TOKEN_MAX         4096u  /* opaque token: [A-Za-z0-9._-] (JWS compact) */
#define FMT_API_URL_MAX           256u   /* server_url: "https://" + printable ASCII */
#define FMT_API_CA_PEM_MAX        8192u  /* ca_pem: one or more PEM certificates */
#define FMT_API_MESSAGE_MAX       256u   /* human-readable text in answers (UTF-8) */
#define FMT_API_CODE_MAX          32u    /* error and reason codes: [a-z_] */
#define FMT_API_ERROR_BODY_MAX    1024u  /* longest error body fmt_api_error_body writes */
#define FMT_API_RETRY_MAX         86400  /* most seconds a retry_after may ask for */
#define FMT_API_TIME_MAX          253402300799LL /* 9999-12-31T23:59:59Z in Unix seconds */
#define FMT_API_EXPORTER_LEN      32u    /* RFC 9266 tls-exporter value */
#define FMT_API_EXPORTER_LABEL    "EXPORTER-Channel-Binding"
#define FMT_API_NONCE_LEN         32u    /* server nonce */
#define FMT_API_HASH_LEN          32u    /* SHA-256 inside the signed PoP bytes */
#define FMT_API_POP_MSG_MAX       289u   /* longest PoP byte string (formats/api.md) */
#define FMT_API_POP_SKEW_DEFAULT  300    /* recommended max clock skew, seconds */

/* What a proof of possession is for; part of the signed bytes. */
enum fmt_api_purpose {
	FMT_API_PROVISION = 1, /* POST /v1/provision */
	FMT_API_EXCHANGE = 2,  /* POST /v1/token/exchange */
	FMT_API_RENEW = 3,     /* POST /v1/token/renew */
};

struct fmt_api_pop {
	int64_t ts;                        /* signer's clock, Unix seconds */
	bool has_nonce;                    /* a server nonce is bound in */
	uint8_t nonce[FMT_API_NONCE_LEN];  /* from POST /v1/nonce */
	uint8_t sig[FMT_KEY_RAW_SIG_LEN];  /* FMT_SIG_RAW over fmt_api_pop_message() */
};

/* A device request. Strings are NUL-terminated; "" means absent. Which
 * members a purpose allows is in formats/api.md. */
struct fmt_api_request {
	enum fmt_api_purpose purpose;
	char device_id[FMT_API_ID_MAX + 1];
	uint8_t mac[FMT_MAC_LEN];
	enum fmt_key_type key_type;
	uint8_t spki[FMT_KEY_SPKI_MAX]; /* public key, canonical SPKI DER */
	size_t spki_len;
	char agent_version[FMT_API_AGENT_VERSION_MAX + 1]; /* provision: required */
	uint8_t oob_proof[FMT_API_OOB_PROOF_LEN]; /* provision: optional (formats/oob.h, §15) */
	bool has_oob_proof;
	char token[FMT_API_TOKEN_MAX + 1];                 /* exchange, renew: required; secret */
	struct fmt_api_pop pop;
};

enum fmt_api_status_kind {
	FMT_API_APPROVED = 1, /* HTTP 200 */
	FMT_API_PENDING = 2,  /* HTTP 202, with Retry-After */
	FMT_API_REJECTED = 3, /* HTTP 403 */
};

enum fmt_api_reason {
	FMT_API_REASON_OTHER = 0, /* a code this version does not know (text kept) */
	FMT_API_REASON_KEY_MISMATCH,
	FMT_API_REASON_MAC_MISMATCH,
	FMT_API_REASON_OOB_MISMATCH,
	FMT_API_REASON_KEY_REUSED,
	FMT_API_REASON_REJECTED,
	FMT_API_REASON_REVOKED,
};

/* A decision: the answer to /v1/provision, /v1/token/exchange and /renew. */
struct fmt_api_status {
	enum fmt_api_status_kind status;
	/* approved */
	enum fmt_token_kind token_kind; /* formats/token.h */
	char token[FMT_API_TOKEN_MAX + 1]; /* secret */
	int64_t expires;                   /* token expiry, Unix seconds */
	char server_url[FMT_API_URL_MAX + 1]; /* required with a provisioning token */
	char ca_pem[FMT_API_CA_PEM_MAX + 1];  /* required with a provisioning token */
	/* pending */
	int64_t retry_after; /* seconds, 1..FMT_API_RETRY_MAX */
	/* rejected */
	enum fmt_api_reason reason;
	char reason_code[FMT_API_CODE_MAX + 1];
	char message[FMT_API_MESSAGE_MAX + 1]; /* optional */
};

enum fmt_api_err_code {
	FMT_API_ERR_UNKNOWN = 0, /* a code this version does not know (text kept) */
	FMT_API_ERR_BAD_REQUEST,
	FMT_API_ERR_INVALID_FIELD,
	FMT_API_ERR_UNSUPPORTED,
	FMT_API_ERR_POP_INVALID,
	FMT_API_ERR_POP_STALE,
	FMT_API_ERR_NONCE_INVALID,
	FMT_API_ERR_TOKEN_INVALID,
	FMT_API_ERR_UNAUTHORIZED,
	FMT_API_ERR_FORBIDDEN,
	FMT_API_ERR_NOT_FOUND,
	FMT_API_ERR_METHOD_NOT_ALLOWED,
	FMT_API_ERR_TIMEOUT,
	FMT_API_ERR_CONFLICT,
	FMT_API_ERR_TOO_LARGE,
	FMT_API_ERR_MEDIA_TYPE,
	FMT_API_ERR_THROTTLED,
	FMT_API_ERR_INTERNAL,
	FMT_API_ERR_SUSPENDED,
	FMT_API_ERR_UNAVAILABLE,
	FMT_API_ERR_LENGTH_REQUIRED,
	FMT_API_ERR_HEADERS_TOO_LARGE,
	FMT_API_ERR_STORAGE_FULL, /* keep last: tests/fuzz/fuzz_api_error.c takes it as the end */
};

/* Where a failure came from, for fmt_api_err_of(): the same enum idp_err
 * means another API error when a device's proof of possession or a
 * caller's credential failed. */
enum fmt_api_err_origin {
	FMT_API_ORIGIN_SERVER = 0, /* body parsers, store, imports, admin changes */
	FMT_API_ORIGIN_POP,        /* fmt_api_request_accept, channel binding */
	FMT_API_ORIGIN_AUTH,       /* a station's or administrator's credential */
};

/* {"error":{"code":...,"message":...,"retry_after":...}} */
struct fmt_api_error {
	enum fmt_api_err_code code;
	char code_text[FMT_API_CODE_MAX + 1];
	char message[FMT_API_MESSAGE_MAX + 1];
	int64_t retry_after; /* 0: absent */
};

/* Any answer body of the device endpoints: a decision or an error. */
struct fmt_api_answer {
	bool is_error;
	struct fmt_api_status status; /* when !is_error */
	struct fmt_api_error error;   /* when is_error */
};

/* Answer of POST /v1/nonce. */
struct fmt_api_nonce {
	uint8_t nonce[FMT_API_NONCE_LEN];
	int64_t time;    /* server's clock, Unix seconds: pop.ts for a device without one */
	int64_t expires; /* Unix seconds after which the server refuses it; >= time */
};

/* Answer of POST /v1/batches. */
struct fmt_api_batch {
	char batch_id[FMT_API_ID_MAX + 1];
	int64_t sequence; /* the station's sequence number of this batch */
	int64_t devices;  /* records in the batch */
	bool created;     /* false: the same batch was already imported */
	bool gap;         /* sequence or previous-hash gap was recorded and flagged */
};

/* --- requests ------------------------------------------------------------ */

/* Parse the body of the endpoint for purpose. Strict: unknown, missing,
 * misplaced, duplicate, mistyped and oversized members are refused with
 * IDP_E_FORMAT / IDP_E_LIMIT / IDP_E_UNSUPPORTED naming the member. The
 * public key must be canonical SPKI DER of key_type. Does not verify the
 * proof (fmt_api_pop_verify does). On failure *out is wiped. */
IDP_MUST_CHECK enum idp_err fmt_api_request_parse(enum fmt_api_purpose purpose, const uint8_t *buf,
                                                  size_t len, struct fmt_api_request *out,
                                                  struct idp_error *err);

/* Write req as JSON into out[0..out_max) with a NUL; *len excludes it.
 * IDP_E_LIMIT when out is too small (FMT_API_BODY_MAX + 1 always suffices);
 * refuses what the parser would refuse. */
IDP_MUST_CHECK enum idp_err fmt_api_request_encode(const struct fmt_api_request *req, char *out,
                                                   size_t out_max, size_t *len,
                                                   struct idp_error *err);

/* Cleanse req (it may hold a token and the out-of-band secret). */
void fmt_api_request_wipe(struct fmt_api_request *req);

/* Every value and cross-member rule of a request (what the parser checks,
 * on the struct). *key, when key is not NULL, gets the request's public
 * key, imported for the check (caller frees with fmt_key_free(); NULL on
 * failure). */
IDP_MUST_CHECK enum idp_err fmt_api_request_check(const struct fmt_api_request *req,
                                                  struct fmt_key **key, struct idp_error *err);

/* fmt_api_request_check for a request about to be signed with key (the
 * signer, formats/pop.h): the same member checks, and req's key_type and
 * spki must be key's own (IDP_E_ARG), compared instead of parsed. */
IDP_MUST_CHECK enum idp_err fmt_api_request_check_signer(const struct fmt_api_request *req,
                                                         const struct fmt_key *key,
                                                         struct idp_error *err);

/* fmt_api_request_parse, also handing over the public key its checks
 * imported, as fmt_api_request_check does (key may be NULL). For a verifier
 * (formats/pop.h) that would otherwise import it again. */
IDP_MUST_CHECK enum idp_err fmt_api_request_parse_key(enum fmt_api_purpose purpose,
                                                      const uint8_t *buf, size_t len,
                                                      struct fmt_api_request *out,
                                                      struct fmt_key **key,
                                                      struct idp_error *err);

/* --- answers --------------------------------------------------------------- */

/* Parse a decision. Members this version does not know are ignored (answers
 * may grow); known ones must have their type and limits and belong to the
 * status. On failure *out is wiped. */
IDP_MUST_CHECK enum idp_err fmt_api_status_parse(const uint8_t *buf, size_t len,
                                                 struct fmt_api_status *out,
                                                 struct idp_error *err);
IDP_MUST_CHECK enum idp_err fmt_api_status_encode(const struct fmt_api_status *st, char *out,
                                                  size_t out_max, size_t *len,
                                                  struct idp_error *err);

/* Check a ca_pem value once (1..FMT_API_CA_PEM_MAX bytes of PEM
 * certificates, strictly parsed, as fmt_api_status_encode checks it):
 * IDP_E_FORMAT / IDP_E_LIMIT naming the problem. */
IDP_MUST_CHECK enum idp_err fmt_api_ca_pem_check(const char *pem, size_t len,
                                                 struct idp_error *err);

/* fmt_api_status_encode for a sender whose st->ca_pem is one value it
 * checked with fmt_api_ca_pem_check() (a server answers with the same CA
 * every time): the certificates are not parsed again (their characters and
 * every other member are still checked). WARNING: an unchecked ca_pem
 * would go out as it is. */
IDP_MUST_CHECK enum idp_err fmt_api_status_encode_ca_checked(const struct fmt_api_status *st,
                                                             char *out, size_t out_max,
                                                             size_t *len,
                                                             struct idp_error *err);
void fmt_api_status_wipe(struct fmt_api_status *st);

/* Parse / encode an error body. An unknown code is kept in code_text with
 * code = FMT_API_ERR_UNKNOWN; the encoder refuses FMT_API_ERR_UNKNOWN and a
 * code_text that is not code's name (IDP_E_ARG, IDP_E_FORMAT). The encoder
 * writes e->message as fmt_api_error_body() does, so any message gives a
 * body that fmt_api_error_parse accepts. */
IDP_MUST_CHECK enum idp_err fmt_api_error_parse(const uint8_t *buf, size_t len,
                                                struct fmt_api_error *out, struct idp_error *err);
IDP_MUST_CHECK enum idp_err fmt_api_error_encode(const struct fmt_api_error *e, char *out,
                                                 size_t out_max, size_t *len,
                                                 struct idp_error *err);

/* Write the error body of code with the message msg[0..len), which may be
 * any bytes (client text included): each byte that the message type does
 * not allow (control characters, DEL, bytes outside valid UTF-8) becomes
 * "\xNN", a longer text is cut on a character boundary and ends in "...",
 * and an empty one becomes the code's name; so the body always parses with
 * fmt_api_error_parse. retry_after: 0 (absent) or 1..FMT_API_RETRY_MAX.
 * IDP_E_ARG for FMT_API_ERR_UNKNOWN, an invalid code or retry_after;
 * IDP_E_LIMIT when out_max is too small (FMT_API_ERROR_BODY_MAX suffices). */
IDP_MUST_CHECK enum idp_err fmt_api_error_body(enum fmt_api_err_code code, const char *msg,
                                               size_t len, int64_t retry_after, char *out,
                                               size_t out_max, size_t *out_len,
                                               struct idp_error *err);

/* Parse either kind of answer, told apart by its top-level "error" member. */
IDP_MUST_CHECK enum idp_err fmt_api_answer_parse(const uint8_t *buf, size_t len,
                                                 struct fmt_api_answer *out,
                                                 struct idp_error *err);
void fmt_api_answer_wipe(struct fmt_api_answer *a);

IDP_MUST_CHECK enum idp_err fmt_api_nonce_parse(const uint8_t *buf, size_t len,
                                                struct fmt_api_nonce *out, struct idp_error *err);
IDP_MUST_CHECK enum idp_err fmt_api_nonce_encode(const struct fmt_api_nonce *n, char *out,
                                                 size_t out_max, size_t *len,
                                                 struct idp_error *err);

IDP_MUST_CHECK enum idp_err fmt_api_batch_parse(const uint8_t *buf, size_t len,
                                                struct fmt_api_batch *out, struct idp_error *err);
IDP_MUST_CHECK enum idp_err fmt_api_batch_encode(const struct fmt_api_batch *b, char *out,
                                                 size_t out_max, size_t *len,
                                                 struct idp_error *err);

/* --- names and checks ------------------------------------------------------ */

/* "bad_request", ...; NULL for FMT_API_ERR_UNKNOWN or an invalid value. */
const char *fmt_api_err_code_name(enum fmt_api_err_code code);

/* The HTTP status that goes with code (400..503); 0 for FMT_API_ERR_UNKNOWN. */
int fmt_api_err_http_status(enum fmt_api_err_code code);

/* The one map from a failure to the API error a server answers
 * (formats/api.md §9, "Mapping"): rc (not IDP_OK) as it came from origin.
 * Out-of-range values give FMT_API_ERR_INTERNAL. */
enum fmt_api_err_code fmt_api_err_of(enum idp_err rc, enum fmt_api_err_origin origin);

/* "key_mismatch", ...; NULL for FMT_API_REASON_OTHER or an invalid value. */
const char *fmt_api_reason_name(enum fmt_api_reason reason);

/* The HTTP status of a decision: 200, 202 or 403; 0 for an invalid value. */
int fmt_api_status_http_status(enum fmt_api_status_kind status);

/* Check a device or batch ID s[0..len): 1..FMT_API_ID_MAX characters,
 * [A-Za-z0-9] then [A-Za-z0-9._-]. what names it in the error. */
IDP_MUST_CHECK enum idp_err fmt_api_check_id(const char *s, size_t len, const char *what,
                                             struct idp_error *err);

#endif /* IDP_FORMATS_API_H */
