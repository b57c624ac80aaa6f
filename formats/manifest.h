/*
 * manifest.h - batch manifest v1: the header and record types, the canonical
 * line encoder (the writer) and the streaming, constant-memory reader.
 * Spec: formats/manifest.md. Signing and verification of the body are in
 * formats/manifest_sig.h, duplicate detection in formats/manifest_dedup.h.
 *
 * A manifest body is JSON Lines: one header line, then one record line per
 * device, each in the one canonical spelling this module writes. The reader
 * refuses any other spelling, so one body has one meaning.
 *
 * WARNING: verify the signature over the raw body bytes (manifest_sig.h)
 * before trusting anything the reader returns; the reader checks form, not
 * origin.
 *
 * Pure: no I/O, logging or globals. A reader or writer belongs to one thread.
 */
#ifndef IDP_FORMATS_MANIFEST_H
#define IDP_FORMATS_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/id.h"
#include "formats/keys.h"
#include "formats/mac.h"

#define FMT_MANIFEST_VERSION     1u /* records without a capture proof */
#define FMT_MANIFEST_VERSION_CAPTURE 2u /* every record carries its capture proof */
#define FMT_MANIFEST_NONCE_LEN   32u /* a capture's station nonce (wire.md CHALLENGE) */
#define FMT_MANIFEST_CAPTURE_SIG_LEN 64u /* a capture's PROOF signature (wire.md 5.5) */
#define FMT_MANIFEST_LINE_MAX    4096u     /* bytes of one line, LF included */
#define FMT_MANIFEST_ID_MAX      FMT_ID_MAX /* batch, station and device IDs, serials: formats/id.h */
#define FMT_MANIFEST_PRODUCT_MAX 64u       /* product/model */
#define FMT_MANIFEST_ATTRS_MAX   16u       /* attributes of one record */
#define FMT_MANIFEST_ATTR_KEY_MAX 32u      /* bytes of an attribute name */
#define FMT_MANIFEST_ATTR_VAL_MAX 64u      /* bytes of an attribute value */
#define FMT_MANIFEST_COUNT_MAX   10000000u /* devices in one batch */
#define FMT_MANIFEST_SEQ_MAX     9007199254740991ULL /* 2^53 - 1 */
#define FMT_MANIFEST_TIME_LEN    20u       /* "2026-11-23T23:45:00Z" */
#define FMT_MANIFEST_HASH_LEN    32u       /* SHA-256 */
#define FMT_MANIFEST_MAC_LEN     FMT_MAC_LEN /* EUI-48, formats/mac.h */
#define FMT_MANIFEST_MAC_TEXT    17u       /* "aa:bb:cc:dd:ee:ff" */

/* How the body is signed; the header names it and the verifier checks it. */
enum fmt_manifest_sig {
	FMT_MANIFEST_SIG_CMS = 1,     /* CMS SignedData, detached, P-256 + X.509 chain */
	FMT_MANIFEST_SIG_ES256 = 2,   /* ECDSA P-256 over SHA-256(body), DER */
	FMT_MANIFEST_SIG_ED25519 = 3, /* Ed25519 over the 32 bytes SHA-256(body) */
};

/* All strings are NUL-terminated and hold no NUL. */
struct fmt_manifest_header {
	unsigned version;                          /* FMT_MANIFEST_VERSION or _VERSION_CAPTURE */
	char batch[FMT_MANIFEST_ID_MAX + 1];       /* batch ID */
	char station[FMT_MANIFEST_ID_MAX + 1];     /* station ID */
	uint64_t seq;                              /* 1, 2, ... per station */
	uint8_t prev[FMT_MANIFEST_HASH_LEN];       /* SHA-256 of the previous body; zero for seq 1 */
	char created[FMT_MANIFEST_TIME_LEN + 1];   /* RFC 3339 UTC, seconds, "Z" */
	char product[FMT_MANIFEST_PRODUCT_MAX + 1];
	uint64_t count;                            /* records that follow, 1..COUNT_MAX */
	enum fmt_manifest_sig sig;
	uint8_t key[FMT_KEY_FINGERPRINT_LEN];      /* SHA-256 of the station key's SPKI DER */
};

struct fmt_manifest_attr {
	char key[FMT_MANIFEST_ATTR_KEY_MAX + 1];
	char value[FMT_MANIFEST_ATTR_VAL_MAX + 1];
};

struct fmt_manifest_record {
	char id[FMT_MANIFEST_ID_MAX + 1];
	uint8_t mac[FMT_MANIFEST_MAC_LEN];
	char serial[FMT_MANIFEST_ID_MAX + 1];
	size_t pub_len;                   /* 0: no public key in this record */
	uint8_t pub[FMT_KEY_SPKI_MAX];    /* SPKI DER of a P-256 or Ed25519 key */
	size_t nattrs;
	struct fmt_manifest_attr attrs[FMT_MANIFEST_ATTRS_MAX]; /* names strictly ascending */
	/* The capture proof (version 2 only, and there in every record): the
	 * nonce the station sent in CHALLENGE and the device's PROOF
	 * signature over it (formats/wire.md 5.5), made with the key in pub. */
	bool has_capture;
	uint8_t capture_nonce[FMT_MANIFEST_NONCE_LEN];
	uint8_t capture_sig[FMT_MANIFEST_CAPTURE_SIG_LEN];
};

/* "cms", "es256", "ed25519". */
const char *fmt_manifest_sig_name(enum fmt_manifest_sig sig);

/* Parse a sig kind name s[0..len); IDP_E_UNSUPPORTED names anything else. */
IDP_MUST_CHECK enum idp_err fmt_manifest_sig_parse(const char *s, size_t len,
                                                   enum fmt_manifest_sig *sig,
                                                   struct idp_error *err);

/* Current UTC time as "YYYY-MM-DDTHH:MM:SSZ" for a header, from t (seconds
 * since the epoch; the caller reads the clock). */
IDP_MUST_CHECK enum idp_err fmt_manifest_time_format(int64_t t,
                                                     char out[static FMT_MANIFEST_TIME_LEN + 1],
                                                     struct idp_error *err);

/* Encode h as its canonical header line (LF included) into out; *len gets the
 * length. Every field is checked as the reader checks it (IDP_E_FORMAT /
 * IDP_E_LIMIT naming the field). */
IDP_MUST_CHECK enum idp_err fmt_manifest_encode_header(const struct fmt_manifest_header *h,
                                                       uint8_t out[static FMT_MANIFEST_LINE_MAX],
                                                       size_t *len, struct idp_error *err);

/* Encode r as its canonical record line (LF included); attributes are written
 * sorted by name whatever their order in r. Checks as the reader does. */
IDP_MUST_CHECK enum idp_err fmt_manifest_encode_record(const struct fmt_manifest_record *r,
                                                       uint8_t out[static FMT_MANIFEST_LINE_MAX],
                                                       size_t *len, struct idp_error *err);

/* Parse one header line buf[0..len) (with or without its LF) into *h. With
 * canonical set the bytes must be exactly what fmt_manifest_encode_header
 * writes; without it, field order and JSON spelling are free (for peeking at
 * an untrusted header to pick the station key, and for input files). */
IDP_MUST_CHECK enum idp_err fmt_manifest_parse_header(const uint8_t *buf, size_t len,
                                                      bool canonical,
                                                      struct fmt_manifest_header *h,
                                                      struct idp_error *err);

/* Parse one record line, as fmt_manifest_parse_header does for headers. */
IDP_MUST_CHECK enum idp_err fmt_manifest_parse_record(const uint8_t *buf, size_t len,
                                                      bool canonical,
                                                      struct fmt_manifest_record *r,
                                                      struct idp_error *err);

/* Verify r's capture proof (manifest.md 2.4): the PROOF signature over the
 * nonce, h's station and r's ID, MAC, serial and key, with r's key, exactly
 * as the station verified it at the line (fmt_wire_proof_verify). IDP_OK when
 * it holds; IDP_E_VERIFY "capture: proof: signature does not match ..." when
 * not; IDP_E_FORMAT when r has no capture or no key. */
IDP_MUST_CHECK enum idp_err fmt_manifest_capture_verify(const struct fmt_manifest_header *h,
                                                        const struct fmt_manifest_record *r,
                                                        struct idp_error *err);

/* ---- writer: header + records -> canonical lines, count checked at finish */

struct fmt_manifest_writer {
	unsigned version; /* from the header: whether records carry a capture */
	uint64_t count;   /* from the header */
	uint64_t written; /* records encoded so far */
};

/* Start a body: encode the header line into out and remember its count. */
IDP_MUST_CHECK enum idp_err fmt_manifest_writer_begin(struct fmt_manifest_writer *w,
                                                      const struct fmt_manifest_header *h,
                                                      uint8_t out[static FMT_MANIFEST_LINE_MAX],
                                                      size_t *len, struct idp_error *err);

/* Encode the next record line; IDP_E_LIMIT once count records were written,
 * IDP_E_FORMAT when its capture does not fit the header's version. */
IDP_MUST_CHECK enum idp_err fmt_manifest_writer_record(struct fmt_manifest_writer *w,
                                                       const struct fmt_manifest_record *r,
                                                       uint8_t out[static FMT_MANIFEST_LINE_MAX],
                                                       size_t *len, struct idp_error *err);

/* IDP_OK when exactly count records were written, else IDP_E_FORMAT. */
IDP_MUST_CHECK enum idp_err fmt_manifest_writer_finish(const struct fmt_manifest_writer *w,
                                                       struct idp_error *err);

/* ---- reader: feed arbitrary chunks, get the header then one record at a time */

enum fmt_manifest_item {
	FMT_MANIFEST_NONE = 0,   /* need more input */
	FMT_MANIFEST_HEADER = 1, /* fmt_manifest_reader_header() is ready */
	FMT_MANIFEST_RECORD = 2, /* fmt_manifest_reader_record() holds the next record */
};

struct fmt_manifest_reader; /* opaque; about 6 KiB whatever the body size */

/* New reader; NULL when out of memory. Free with fmt_manifest_reader_free(). */
struct fmt_manifest_reader *fmt_manifest_reader_new(void);

/* Consume a prefix of buf[0..len): *used gets how many bytes were taken and
 * *item what became ready (at most one line per call, so call again with the
 * rest). Errors name the line and field ("line 17: mac: ..."); after an error
 * the reader refuses further input. */
IDP_MUST_CHECK enum idp_err fmt_manifest_reader_feed(struct fmt_manifest_reader *r,
                                                     const uint8_t *buf, size_t len, size_t *used,
                                                     enum fmt_manifest_item *item,
                                                     struct idp_error *err);

/* End of input: IDP_OK when the body was complete (header present, last line
 * ended with LF, exactly count records). */
IDP_MUST_CHECK enum idp_err fmt_manifest_reader_finish(struct fmt_manifest_reader *r,
                                                       struct idp_error *err);

/* The header (borrowed; valid after FMT_MANIFEST_HEADER was returned). */
const struct fmt_manifest_header *fmt_manifest_reader_header(const struct fmt_manifest_reader *r);

/* The last record returned (borrowed; overwritten by the next feed). */
const struct fmt_manifest_record *fmt_manifest_reader_record(const struct fmt_manifest_reader *r);

/* Line number of the last line completed (1 is the header). */
uint64_t fmt_manifest_reader_line(const struct fmt_manifest_reader *r);

/* Release r. NULL is a no-op. */
void fmt_manifest_reader_free(struct fmt_manifest_reader *r);

/* ---- a whole body checked piece by piece (a client sending a manifest file) */

/* Zero-initialise; free with fmt_manifest_check_free(). */
struct fmt_manifest_check {
	struct fmt_manifest_reader *r;
	uint64_t next;                     /* offset the next piece must have */
	bool done;                         /* the last piece passed: header is set */
	struct fmt_manifest_header header;
};

/* Feed piece buf[0..len) at offset of a body to check c (the arg: a struct
 * fmt_manifest_check *); offset 0 starts the body over. With last, the body
 * must end here, complete (fmt_manifest_reader_finish). The reader's checks
 * of form, in constant memory, not the signature. Errors are the reader's
 * ("line 17: mac: ..."); IDP_E_ARG for a piece out of order. Its type is
 * formats/io/httpc.h fio_httpc_piece_fn, so a client checks what it sends
 * as it sends it. */
IDP_MUST_CHECK enum idp_err fmt_manifest_check_piece(void *c, uint64_t offset, const uint8_t *buf,
                                                     size_t len, bool last,
                                                     struct idp_error *err);

/* Release c's reader. NULL is a no-op. */
void fmt_manifest_check_free(struct fmt_manifest_check *c);

#endif /* IDP_FORMATS_MANIFEST_H */
