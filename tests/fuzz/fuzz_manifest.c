/*
 * fuzz_manifest.c - libFuzzer target for the batch manifest reader, the
 * duplicate set and the signature verifier (formats/manifest*.h).
 *
 * Input: byte 0 picks the chunk size the body is fed in (0 = all at once)
 * and the trust (a P-256 key, an Ed25519 key, an empty CA store),
 * bytes 1-2 (big-endian) the length of the .sig bytes that follow, the rest
 * is the body. No input may crash; a body the reader accepts must have had
 * exactly its header's count of records; every capture proof (version 2)
 * is verified as idprovd does; no manifest signature may verify (the
 * trusted keys are fresh, so a pass would be a forgery).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/manifest.h"
#include "formats/manifest_dedup.h"
#include "formats/manifest_sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fmt_key *p256, *ed25519;
static X509_STORE *store;
static uint64_t captures_ok; /* capture proofs that verified (the seeds' are real) */

static void read_body(const uint8_t *body, size_t len, size_t chunk)
{
	struct fmt_manifest_reader *r = fmt_manifest_reader_new();
	struct fmt_manifest_dedup *d = fmt_manifest_dedup_new();
	if (r == NULL || d == NULL)
		abort();
	enum idp_err rc = IDP_OK;
	uint64_t records = 0;
	size_t pos = 0;
	while (rc == IDP_OK && pos < len) {
		size_t n = chunk == 0 || len - pos < chunk ? len - pos : chunk;
		size_t end = pos + n;
		while (rc == IDP_OK && pos < end) {
			size_t used = 0;
			enum fmt_manifest_item item;
			rc = fmt_manifest_reader_feed(r, body + pos, end - pos, &used, &item, NULL);
			if (rc == IDP_OK && used == 0 && item == FMT_MANIFEST_NONE)
				abort(); /* no progress */
			pos += used;
			if (rc == IDP_OK && item == FMT_MANIFEST_RECORD) {
				const struct fmt_manifest_record *rec =
				        fmt_manifest_reader_record(r);
				records++;
				rc = fmt_manifest_dedup_add(d, rec, NULL);
				/* A capture proof (version 2) is checked as idprovd does. */
				if (rec->has_capture &&
				    fmt_manifest_capture_verify(fmt_manifest_reader_header(r), rec,
				                                NULL) == IDP_OK)
					captures_ok++;
			}
		}
	}
	if (rc == IDP_OK && fmt_manifest_reader_finish(r, NULL) == IDP_OK &&
	    records != fmt_manifest_reader_header(r)->count)
		abort();
	fmt_manifest_dedup_free(d);
	fmt_manifest_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (p256 == NULL) {
		if (fmt_key_generate(FMT_KEY_P256, &p256, NULL) != IDP_OK ||
		    fmt_key_generate(FMT_KEY_ED25519, &ed25519, NULL) != IDP_OK ||
		    (store = X509_STORE_new()) == NULL)
			abort();
	}
	if (size < 3 || size > 64 * 1024)
		return 0;
	size_t chunk = data[0];
	size_t sig_len = (size_t)data[1] << 8 | data[2];
	data += 3;
	size -= 3;
	if (sig_len > size)
		sig_len = size;
	const uint8_t *sig = data, *body = data + sig_len;
	size_t len = size - sig_len;

	read_body(body, len, chunk);

	/* One trust per input (byte 0 picks it too): verification is the slow part. */
	struct fmt_manifest_trust trusts[3] = {{p256, NULL}, {ed25519, NULL}, {NULL, store}};
	struct fmt_manifest_verified v;
	if (sig_len > 0 &&
	    fmt_manifest_verify(sig, sig_len, &trusts[chunk % 3], body, len, &v, NULL) == IDP_OK)
		abort();
	return 0;
}
