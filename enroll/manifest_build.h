/*
 * manifest_build.h - building and signing a batch manifest
 * (formats/manifest.md), shared by idprov-manifest (from a device list) and
 * idprov-station (from its journal): the station's signing material (key, certificate, chain), and "header + record lines ->
 * signed pair of files written atomically".
 *
 * Not thread-safe; one build per thread.
 */
#ifndef IDP_ENROLL_MANIFEST_BUILD_H
#define IDP_ENROLL_MANIFEST_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "formats/buf.h"
#include "formats/error.h"
#include "formats/file.h"
#include "formats/keys.h"
#include "formats/manifest.h"
#include "formats/manifest_sig.h"

#define ENR_PATH_MAX 4000u /* bytes of a path given on the command line */

/* The station's signing material. */
struct enr_signing {
	struct fmt_key *key;    /* private */
	X509 *cert;             /* the station's certificate, or NULL (then es256/ed25519) */
	STACK_OF(X509) * chain; /* the rest of the chain, or NULL */
};

/* Load key (PEM private key), and optionally cert (PEM: the station's
 * certificate first, more may follow) and chain (PEM bundle). Errors name
 * the file. Free with enr_signing_free() (also after a failure). */
IDP_MUST_CHECK enum idp_err enr_signing_load(const char *key, const char *cert, const char *chain,
                                             struct enr_signing *out, struct idp_error *err);

/* Release what s holds; zeroes it. */
void enr_signing_free(struct enr_signing *s);

/* Sign and write a manifest: h's batch, station, seq, prev, created,
 * product must be set, and version when it is not FMT_MANIFEST_VERSION (0
 * means that one); sig, key and count are filled in here (count from
 * the number of lines in records). records holds the canonical record
 * lines (fmt_buf_check()ed by the caller). Writes out_path and out_path + ".sig" atomically (the body first)
 * and puts the body's SHA-256 into digest. A cms manifest whose station is
 * not its certificate's name is refused before signing. */
IDP_MUST_CHECK enum idp_err
enr_manifest_write(const struct enr_signing *s, struct fmt_manifest_header *h,
                   const struct fmt_buf *records, uint64_t count, const char *out_path,
                   uint8_t digest[static FMT_MANIFEST_HASH_LEN], struct idp_error *err);

/* The same, streamed: the body goes to a temporary file beside out_path as
 * its lines come, through the signer, in constant memory. _begin (h as for
 * enr_manifest_write, with count the number of records to come; the out is
 * zeroed first), then _record for each canonical record line, then _finish
 * (exactly count records: the body renamed into place, then the .sig; both
 * atomic), or _abort (nothing written). After a failure the out is spent
 * and _abort is a no-op; the caller calls _abort in any case. */
struct enr_manifest_out {
	struct fmt_manifest_writer w;
	struct fmt_manifest_signer *sg;
	struct fmt_file_atomic file;
	bool open;                   /* file is open */
	uint8_t *pend;               /* lines not yet written (ENR_MANIFEST_OUT_BUF bytes) */
	size_t pend_len;
	char sigpath[ENR_PATH_MAX + 8];
};

IDP_MUST_CHECK enum idp_err enr_manifest_out_begin(struct enr_manifest_out *o,
                                                   const struct enr_signing *s,
                                                   struct fmt_manifest_header *h, uint64_t count,
                                                   const char *out_path, struct idp_error *err);
IDP_MUST_CHECK enum idp_err enr_manifest_out_record(struct enr_manifest_out *o,
                                                    const uint8_t *line, size_t len,
                                                    struct idp_error *err);
IDP_MUST_CHECK enum idp_err enr_manifest_out_finish(struct enr_manifest_out *o,
                                                    uint8_t digest[static FMT_MANIFEST_HASH_LEN],
                                                    struct idp_error *err);
void enr_manifest_out_abort(struct enr_manifest_out *o);

#endif /* IDP_ENROLL_MANIFEST_BUILD_H */
