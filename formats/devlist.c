/*
 * devlist.c - device list reader (formats/devlist.md). Pure; see devlist.h.
 */
#include <string.h>
#include <strings.h>

#include "formats/b64.h"
#include "formats/devlist.h"
#include "formats/mac.h"

#define CSV_FIELDS_MAX 4u

/* Copy a CSV field into a fixed record field; name the field when too long. */
static enum idp_err csv_field(const char *name, const uint8_t *s, size_t n, char *dst, size_t max,
                              struct idp_error *err)
{
	if (n > max)
		return idp_error_set(err, IDP_E_LIMIT, "%s: %zu bytes, max %zu", name, n, max);
	if (memchr(s, '\0', n) != NULL)
		return idp_error_set(err, IDP_E_FORMAT, "%s: holds a NUL byte", name);
	memcpy(dst, s, n);
	dst[n] = '\0';
	return IDP_OK;
}

/* The optional 4th CSV field: a PEM file path (ends in .pem) or SPKI base64. */
static enum idp_err csv_pub(const uint8_t *s, size_t n, struct fmt_manifest_record *r,
                            char pem_path[static FMT_DEVLIST_PATH_MAX + 1], struct idp_error *err)
{
	if (n > 4 && memcmp(s + n - 4, ".pem", 4) == 0) {
		enum idp_err rc = csv_field("pub", s, n, pem_path, FMT_DEVLIST_PATH_MAX, err);
		if (rc != IDP_OK)
			pem_path[0] = '\0';
		return rc;
	}
	enum idp_err rc = fmt_b64_decode(FMT_B64_STD, (const char *)s, n, r->pub, sizeof(r->pub),
	                                 &r->pub_len, err);
	if (rc != IDP_OK)
		idp_error_prefix(err, "pub");
	return rc;
}

/* Split a CSV line at commas into at most CSV_FIELDS_MAX + 1 fields. */
static size_t csv_split(const uint8_t *p, size_t len, const uint8_t *f[CSV_FIELDS_MAX + 1],
                        size_t fl[CSV_FIELDS_MAX + 1])
{
	const uint8_t *end = p + len;
	size_t nf = 0;
	while (nf < CSV_FIELDS_MAX + 1) {
		const uint8_t *c = memchr(p, ',', (size_t)(end - p));
		const uint8_t *e = c != NULL ? c : end;
		f[nf] = p;
		fl[nf++] = (size_t)(e - p);
		if (c == NULL)
			break;
		p = c + 1;
	}
	return nf;
}

/* The optional header row: the column names, in this order, any case. */
static bool csv_is_header(const uint8_t *const f[], const size_t fl[], size_t nf)
{
	static const char *const names[CSV_FIELDS_MAX] = {"id", "mac", "serial", "pub"};
	if (nf < 3 || nf > CSV_FIELDS_MAX)
		return false;
	for (size_t i = 0; i < nf; i++)
		if (fl[i] != strlen(names[i]) ||
		    strncasecmp((const char *)f[i], names[i], fl[i]) != 0)
			return false;
	return true;
}

/* One CSV line "id,mac,serial[,pub]" (no quoting: no field may hold a comma). */
static enum idp_err csv_record(const uint8_t *const f[], const size_t fl[], size_t nf,
                               struct fmt_manifest_record *r,
                               char pem_path[static FMT_DEVLIST_PATH_MAX + 1],
                               struct idp_error *err)
{
	if (nf < 3 || nf > CSV_FIELDS_MAX)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "csv: %zu%s fields, expected id,mac,serial[,pub]", nf,
		                     nf > CSV_FIELDS_MAX ? " or more" : "");
	enum idp_err rc;
	if ((rc = csv_field("id", f[0], fl[0], r->id, FMT_MANIFEST_ID_MAX, err)) ||
	    (rc = fmt_mac_parse((const char *)f[1], fl[1], r->mac, err)) ||
	    (rc = csv_field("serial", f[2], fl[2], r->serial, FMT_MANIFEST_ID_MAX, err)))
		return rc;
	if (nf == 4 && fl[3] > 0)
		return csv_pub(f[3], fl[3], r, pem_path, err);
	return IDP_OK;
}

enum idp_err fmt_devlist_next(struct fmt_devlist *d, const uint8_t *buf, size_t len,
                              struct fmt_manifest_record *r,
                              char pem_path[static FMT_DEVLIST_PATH_MAX + 1], int *got,
                              struct idp_error *err)
{
	*got = 0;
	pem_path[0] = '\0';
	if (d->format != FMT_DEVLIST_CSV && d->format != FMT_DEVLIST_JSONL)
		return idp_error_set(err, IDP_E_ARG, "device list: unknown format");
	while (d->pos < len) {
		const uint8_t *s = buf + d->pos;
		const uint8_t *lf = memchr(s, '\n', len - d->pos);
		size_t n = lf != NULL ? (size_t)(lf - s) : len - d->pos;
		d->pos += n + (lf != NULL);
		d->lineno++;
		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (n == 0 || s[0] == '#')
			continue;
		bool first = !d->seen_line;
		d->seen_line = true;
		memset(r, 0, sizeof(*r));
		if (d->format == FMT_DEVLIST_JSONL) {
			enum idp_err rc = fmt_manifest_parse_record(s, n, false, r, err);
			if (rc == IDP_OK)
				*got = 1;
			return rc;
		}
		const uint8_t *f[CSV_FIELDS_MAX + 1];
		size_t fl[CSV_FIELDS_MAX + 1];
		size_t nf = csv_split(s, n, f, fl);
		if (first && csv_is_header(f, fl, nf))
			continue;
		enum idp_err rc = csv_record(f, fl, nf, r, pem_path, err);
		if (rc == IDP_OK)
			*got = 1;
		return rc;
	}
	return IDP_OK;
}
