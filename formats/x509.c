/*
 * x509.c - see x509.h.
 */
#include "formats/x509.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

/* The reason code of the sentinel error fmt_x509_list_parse pushes (OpenSSL
 * itself never raises ERR_LIB_USER errors). */
#define X509_SENTINEL 1

/* The first pat[0..pl) in s[0..n), or NULL. memchr to the candidates: a
 * memcmp at every offset cost a tenth of fuzz_x509's time. */
static const uint8_t *find(const uint8_t *s, size_t n, const char *pat, size_t pl)
{
	while (pl > 0 && n >= pl) {
		const uint8_t *c = memchr(s, pat[0], n - pl + 1);
		if (c == NULL)
			return NULL;
		if (memcmp(c, pat, pl) == 0)
			return c;
		n -= (size_t)(c - s) + 1;
		s = c + 1;
	}
	return NULL;
}

/* Count the certificate blocks of a PEM text that is nothing but blocks:
 * BEGIN line, body, END line, an optional '\n', the next BEGIN line. */
static enum idp_err strict_blocks(const uint8_t *s, size_t n, size_t *count,
                                  struct idp_error *err)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----\n";
	static const char end[] = "\n-----END CERTIFICATE-----";
	size_t bl = sizeof(begin) - 1, el = sizeof(end) - 1;
	*count = 0;
	size_t i = 0;
	while (i < n) {
		if (n - i < bl || memcmp(s + i, begin, bl) != 0)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "not a PEM certificate list (offset %zu)", i);
		const uint8_t *e = find(s + i + bl, n - i - bl, end, el);
		if (e == NULL)
			return idp_error_set(err, IDP_E_FORMAT, "certificate %zu has no END line",
			                     *count + 1);
		i = (size_t)(e - s) + el;
		if (i < n && s[i] == '\n')
			i++;
		(*count)++;
	}
	return IDP_OK;
}

/* True when the text after the last complete END line starts (after
 * white space) with '-': a BEGIN line cut short, which OpenSSL would skip
 * as text, dropping the last certificate of a truncated list unnoticed. */
static bool cut_marker_at_end(const uint8_t *s, size_t n)
{
	static const char end[] = "-----END ";
	size_t el = sizeof(end) - 1, after = 0;
	const uint8_t *e;
	while (after < n && (e = find(s + after, n - after, end, el)) != NULL)
		after = (size_t)(e - s) + el;
	if (after > 0) {
		while (after < n && s[after] != '\n')
			after++;
	}
	while (after < n && (s[after] == '\n' || s[after] == '\r' || s[after] == ' ' ||
	                     s[after] == '\t'))
		after++;
	return after < n && s[after] == '-';
}

/* True when s[0..n) holds a BEGIN line of a block PEM_read_bio_X509 reads
 * (CERTIFICATE, X509 CERTIFICATE). */
static bool begin_line_in(const uint8_t *s, size_t n)
{
	static const char *const begins[] = {"-----BEGIN CERTIFICATE-----",
	                                     "-----BEGIN X509 CERTIFICATE-----"};
	for (size_t b = 0; b < sizeof(begins) / sizeof(begins[0]); b++)
		if (find(s, n, begins[b], strlen(begins[b])) != NULL)
			return true;
	return false;
}

enum idp_err fmt_x509_list_parse(const uint8_t *buf, size_t len, size_t max, unsigned flags,
                                 STACK_OF(X509) **out, struct idp_error *err)
{
	*out = NULL;
	if (len > INT_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "certificate list: %zu bytes", len);
	size_t blocks = 0;
	enum idp_err rc = IDP_OK;
	if ((flags & FMT_X509_STRICT) && (rc = strict_blocks(buf, len, &blocks, err)) != IDP_OK)
		return rc;
	STACK_OF(X509) *certs = sk_X509_new_null();
	BIO *bio = len > 0 ? BIO_new_mem_buf(buf, (int)len) : NULL;
	if (certs == NULL || (len > 0 && bio == NULL)) {
		rc = idp_error_ssl(err, IDP_E_NOMEM, "certificate list: out of memory");
		goto out;
	}
	/* Errors before ours are the caller's: look only at what the loop adds.
	 * WARNING: ERR_peek_last_error sees through a mark, so when the loop adds
	 * nothing it would return the caller's last error: a sentinel error on
	 * top of the mark (popped with it) stands for "nothing added". */
	(void)ERR_set_mark();
	ERR_raise(ERR_LIB_USER, X509_SENTINEL);
	X509 *c = NULL;
	const uint8_t *rest = NULL; /* where the read that found no certificate began */
	size_t rest_len = 0;
	for (;;) {
		char *at = NULL;
		long left = bio != NULL ? BIO_get_mem_data(bio, &at) : 0;
		if (bio == NULL || (c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
			rest = (const uint8_t *)at;
			rest_len = left > 0 && at != NULL ? (size_t)left : 0;
			break;
		}
		if ((size_t)sk_X509_num(certs) >= max || sk_X509_push(certs, c) <= 0) {
			X509_free(c);
			(void)ERR_pop_to_mark();
			rc = idp_error_set(err, IDP_E_LIMIT, "more than %zu certificates", max);
			goto out;
		}
	}
	/* The loop ends with "no start line" at the end of good input only; any
	 * other error is a certificate block that did not parse. WARNING:
	 * OpenSSL 3.0 also gives up on some damaged blocks without any error
	 * (a body line that starts like an END line), so a certificate BEGIN
	 * line left in the unread text is a block that did not parse too. */
	unsigned long e = bio != NULL ? ERR_peek_last_error() : 0;
	if (ERR_GET_LIB(e) == ERR_LIB_USER && ERR_GET_REASON(e) == X509_SENTINEL)
		e = 0;
	(void)ERR_pop_to_mark();
	size_t n = (size_t)sk_X509_num(certs);
	bool clean_end = e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM &&
	                             ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
	if (!clean_end || begin_line_in(rest, rest_len) ||
	    ((flags & FMT_X509_STRICT) && n != blocks) || (n > 0 && cut_marker_at_end(buf, len)))
		rc = idp_error_set(err, IDP_E_FORMAT, "certificate %zu does not parse", n + 1);
	else if (n == 0)
		rc = idp_error_set(err, IDP_E_FORMAT, "no PEM certificate found");
	if (rc != IDP_OK)
		goto out;
	*out = certs;
	certs = NULL;
out:
	sk_X509_pop_free(certs, X509_free);
	BIO_free(bio);
	return rc;
}

enum idp_err fmt_x509_parse_first(const uint8_t *buf, size_t len, X509 **out,
                                  struct idp_error *err)
{
	*out = NULL;
	STACK_OF(X509) *certs = NULL;
	enum idp_err rc = fmt_x509_list_parse(buf, len, FMT_X509_LIST_MAX, 0, &certs, err);
	if (rc != IDP_OK)
		return rc;
	*out = sk_X509_shift(certs);
	sk_X509_pop_free(certs, X509_free);
	return IDP_OK;
}

enum idp_err fmt_x509_store_add(X509_STORE *store, const STACK_OF(X509) *certs,
                                struct idp_error *err)
{
	for (int i = 0; i < sk_X509_num(certs); i++)
		if (X509_STORE_add_cert(store, sk_X509_value(certs, i)) != 1)
			return idp_error_ssl(err, IDP_E_CRYPTO, "certificate %d: add to store",
			                     i + 1);
	return IDP_OK;
}

enum idp_err fmt_x509_store_parse(const uint8_t *buf, size_t len, size_t max, X509_STORE **out,
                                  struct idp_error *err)
{
	*out = NULL;
	STACK_OF(X509) *certs = NULL;
	enum idp_err rc = fmt_x509_list_parse(buf, len, max, 0, &certs, err);
	if (rc != IDP_OK)
		return rc;
	X509_STORE *store = X509_STORE_new();
	if (store == NULL)
		rc = idp_error_ssl(err, IDP_E_NOMEM, "certificate list: out of memory");
	else
		rc = fmt_x509_store_add(store, certs, err);
	sk_X509_pop_free(certs, X509_free);
	if (rc != IDP_OK) {
		X509_STORE_free(store);
		return rc;
	}
	*out = store;
	return IDP_OK;
}

enum idp_err fmt_x509_cn(const X509 *cert, char *out, size_t size, size_t *len,
                         struct idp_error *err)
{
	if (size > 0)
		out[0] = '\0';
	*len = 0;
	const X509_NAME *subject = X509_get_subject_name(cert);
	int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	const ASN1_STRING *cn = NULL;
	/* WARNING: a second commonName would let two readers see two names. */
	if (at >= 0 && X509_NAME_get_index_by_NID(subject, NID_commonName, at) < 0)
		cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
	int n = cn != NULL ? ASN1_STRING_length(cn) : 0;
	const uint8_t *data = cn != NULL ? ASN1_STRING_get0_data(cn) : NULL;
	if (n <= 0 || size < 2 || (size_t)n > size - 1 || data == NULL ||
	    memchr(data, '\0', (size_t)n) != NULL)
		return idp_error_set(err, IDP_E_FORMAT, "no single commonName of 1..%zu bytes",
		                     size > 0 ? size - 1 : 0);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*len = (size_t)n;
	return IDP_OK;
}
