/*
 * manifest_build.c - body buffer, signing material and the signed write of
 * a batch manifest; see manifest_build.h. Moved here from
 * enroll/manifest_main.c so that idprov-station signs the same way.
 */
#include "enroll/manifest_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/file.h"
#include "formats/keyfile.h"
#include "formats/manifest_sig.h"

static enum idp_err load_certs(const char *path, STACK_OF(X509) * *out, struct idp_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = fmt_file_read(path, FMT_MANIFEST_SIG_MAX, &buf, &len, err);
	if (rc == IDP_OK)
		rc = fmt_x509_list_parse(buf, len, FMT_MANIFEST_CERTS_MAX, 0, out, err);
	free(buf);
	if (rc != IDP_OK && rc != IDP_E_NOTFOUND && rc != IDP_E_IO)
		idp_error_prefix(err, "%s", path);
	return rc;
}

enum idp_err enr_signing_load(const char *key, const char *cert, const char *chain,
                              struct enr_signing *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	STACK_OF(X509) *certs = NULL;
	enum idp_err rc;
	if ((rc = fmt_keyfile_load_private(key, &out->key, err)) ||
	    (cert != NULL && (rc = load_certs(cert, &certs, err))) ||
	    (chain != NULL && (rc = load_certs(chain, &out->chain, err))))
		goto out;
	/* The first certificate of cert is the station's; the rest ride along. */
	out->cert = certs != NULL ? sk_X509_shift(certs) : NULL;
	if (out->cert != NULL && out->chain == NULL) {
		out->chain = certs;
		certs = NULL;
	} else if (out->cert != NULL) {
		while (sk_X509_num(certs) > 0)
			if (sk_X509_push(out->chain, sk_X509_shift(certs)) <= 0)
				break;
	}
out:
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

void enr_signing_free(struct enr_signing *s)
{
	fmt_key_free(s->key);
	X509_free(s->cert);
	sk_X509_pop_free(s->chain, X509_free);
	memset(s, 0, sizeof(*s));
}

enum idp_err enr_manifest_write(const struct enr_signing *s, struct fmt_manifest_header *h,
                                const struct fmt_buf *records, uint64_t count,
                                const char *out_path, uint8_t digest[static FMT_MANIFEST_HASH_LEN],
                                struct idp_error *err)
{
	struct fmt_buf body;
	struct fmt_manifest_signer *sg = NULL;
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	struct fmt_manifest_writer w;
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t ll = 0;
	char sigpath[ENR_PATH_MAX + 8];
	if (h->version == 0)
		h->version = FMT_MANIFEST_VERSION; /* no capture proofs: a device list */
	h->count = count;
	h->sig = s->cert != NULL                        ? FMT_MANIFEST_SIG_CMS
	         : fmt_key_type(s->key) == FMT_KEY_P256 ? FMT_MANIFEST_SIG_ES256
	                                                : FMT_MANIFEST_SIG_ED25519;
	enum idp_err rc;
	fmt_buf_init(&body, SIZE_MAX, 0); /* records came in a buffer already */
	if (strnlen(out_path, ENR_PATH_MAX + 1) > ENR_PATH_MAX)
		return idp_error_set(err, IDP_E_ARG, "%s: path too long", out_path);
	(void)snprintf(sigpath, sizeof(sigpath), "%s.sig", out_path); /* length checked above */
	if ((rc = fmt_key_fingerprint(s->key, h->key, err)) ||
	    (s->cert != NULL && (rc = fmt_manifest_cert_station_check(s->cert, h->station, err))) ||
	    (rc = fmt_manifest_writer_begin(&w, h, line, &ll, err)))
		goto out;
	fmt_buf_add(&body, line, ll);
	fmt_buf_add(&body, records->p, records->len);
	if ((rc = fmt_buf_check(&body, "manifest", err)))
		goto out;
	w.written = count;
	if ((rc = fmt_manifest_writer_finish(&w, err)) ||
	    (rc = fmt_manifest_signer_new(h->sig, s->key, s->cert, s->chain, &sg, err)) ||
	    (rc = fmt_manifest_signer_update(sg, body.p, body.len, err)) ||
	    (rc = fmt_manifest_signer_final(sg, &sig, &sig_len, digest, err)) ||
	    (rc = fmt_file_write_atomic(out_path, body.p, body.len, 0644, err)) ||
	    (rc = fmt_file_write_atomic(sigpath, sig, sig_len, 0644, err)))
		goto out;
out:
	fmt_manifest_signer_free(sg);
	free(sig);
	fmt_buf_free(&body);
	return rc;
}
