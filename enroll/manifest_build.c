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

#define ENR_MANIFEST_OUT_BUF 65536u /* bytes of record lines gathered per write() */

enum idp_err enr_manifest_out_begin(struct enr_manifest_out *o, const struct enr_signing *s,
                                    struct fmt_manifest_header *h, uint64_t count,
                                    const char *out_path, struct idp_error *err)
{
	memset(o, 0, sizeof(*o));
	o->file.fd = -1;
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t ll = 0;
	if (h->version == 0)
		h->version = FMT_MANIFEST_VERSION; /* no capture proofs: a device list */
	h->count = count;
	h->sig = s->cert != NULL                        ? FMT_MANIFEST_SIG_CMS
	         : fmt_key_type(s->key) == FMT_KEY_P256 ? FMT_MANIFEST_SIG_ES256
	                                                : FMT_MANIFEST_SIG_ED25519;
	if (strnlen(out_path, ENR_PATH_MAX + 1) > ENR_PATH_MAX)
		return idp_error_set(err, IDP_E_ARG, "%s: path too long", out_path);
	/* length checked above */
	(void)snprintf(o->sigpath, sizeof(o->sigpath), "%s.sig", out_path);
	enum idp_err rc;
	if ((rc = fmt_key_fingerprint(s->key, h->key, err)) ||
	    (s->cert != NULL && (rc = fmt_manifest_cert_station_check(s->cert, h->station, err))) ||
	    (rc = fmt_manifest_writer_begin(&o->w, h, line, &ll, err)) ||
	    (rc = fmt_manifest_signer_new(h->sig, s->key, s->cert, s->chain, &o->sg, err)))
		return rc;
	o->pend = malloc(ENR_MANIFEST_OUT_BUF);
	if (o->pend == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "manifest: out of memory");
	if ((rc = fmt_file_atomic_open(&o->file, out_path, 0644, err)))
		return rc;
	o->open = true;
	memcpy(o->pend, line, ll);
	o->pend_len = ll;
	return fmt_manifest_signer_update(o->sg, line, ll, err);
}

/* Write the gathered lines to the temp file. */
static enum idp_err out_flush(struct enr_manifest_out *o, struct idp_error *err)
{
	enum idp_err rc = fmt_file_atomic_write(&o->file, o->pend, o->pend_len, err);
	o->pend_len = 0;
	if (rc != IDP_OK)
		o->open = false; /* the temp file is gone */
	return rc;
}

enum idp_err enr_manifest_out_record(struct enr_manifest_out *o, const uint8_t *line, size_t len,
                                     struct idp_error *err)
{
	if (!o->open)
		return idp_error_set(err, IDP_E_ARG, "manifest: not being written");
	if (len > FMT_MANIFEST_LINE_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "manifest: line of %zu bytes", len);
	enum idp_err rc;
	if (o->pend_len + len > ENR_MANIFEST_OUT_BUF && (rc = out_flush(o, err)))
		return rc;
	memcpy(o->pend + o->pend_len, line, len);
	o->pend_len += len;
	o->w.written++;
	return fmt_manifest_signer_update(o->sg, line, len, err);
}

enum idp_err enr_manifest_out_finish(struct enr_manifest_out *o,
                                     uint8_t digest[static FMT_MANIFEST_HASH_LEN],
                                     struct idp_error *err)
{
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	enum idp_err rc;
	if (!o->open)
		return idp_error_set(err, IDP_E_ARG, "manifest: not being written");
	if ((rc = fmt_manifest_writer_finish(&o->w, err)) || (rc = out_flush(o, err)) ||
	    (rc = fmt_manifest_signer_final(o->sg, &sig, &sig_len, digest, err)))
		goto out;
	o->open = false;
	if ((rc = fmt_file_atomic_commit(&o->file, 0, err)) ||
	    (rc = fmt_file_write_atomic(o->sigpath, sig, sig_len, 0644, err)))
		goto out;
out:
	free(sig);
	return rc;
}

void enr_manifest_out_abort(struct enr_manifest_out *o)
{
	fmt_file_atomic_abort(&o->file);
	o->open = false;
	fmt_manifest_signer_free(o->sg);
	o->sg = NULL;
	free(o->pend);
	o->pend = NULL;
}

enum idp_err enr_manifest_write(const struct enr_signing *s, struct fmt_manifest_header *h,
                                const struct fmt_buf *records, uint64_t count,
                                const char *out_path, uint8_t digest[static FMT_MANIFEST_HASH_LEN],
                                struct idp_error *err)
{
	struct enr_manifest_out o;
	enum idp_err rc = enr_manifest_out_begin(&o, s, h, count, out_path, err);
	for (size_t off = 0; rc == IDP_OK && off < records->len;) {
		const uint8_t *nl = memchr(records->p + off, '\n', records->len - off);
		size_t n = nl != NULL ? (size_t)(nl - (records->p + off)) + 1 : records->len - off;
		rc = enr_manifest_out_record(&o, records->p + off, n, err);
		off += n;
	}
	if (rc == IDP_OK)
		rc = enr_manifest_out_finish(&o, digest, err);
	enr_manifest_out_abort(&o);
	return rc;
}
