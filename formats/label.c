/*
 * label.c - the label QR payload; spec formats/label.md.
 */
#include "formats/label.h"

#include <string.h>

#include <openssl/sha.h>

#define PREFIX_LEN (sizeof(FMT_LABEL_PREFIX) - 1)

enum idp_err fmt_label_encode(const char *id, size_t id_len,
                              const uint8_t fp[static FMT_KEY_FINGERPRINT_LEN],
                              char out[static FMT_LABEL_MAX], size_t *len, struct idp_error *err)
{
	*len = 0;
	enum idp_err rc = fmt_id_check(id, id_len, "label: id", err);
	if (rc != IDP_OK)
		return rc;
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	memcpy(out, FMT_LABEL_PREFIX, PREFIX_LEN);
	n += PREFIX_LEN;
	memcpy(out + n, id, id_len);
	n += id_len;
	out[n++] = ';';
	for (size_t i = 0; i < FMT_KEY_FINGERPRINT_LEN; i++) {
		out[n++] = hex[fp[i] >> 4];
		out[n++] = hex[fp[i] & 15];
	}
	*len = n;
	return IDP_OK;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

enum idp_err fmt_label_parse(const char *buf, size_t len, char id[static FMT_ID_MAX + 1],
                             uint8_t fp[static FMT_KEY_FINGERPRINT_LEN], struct idp_error *err)
{
	id[0] = '\0';
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len < 5 || memcmp(buf, "IDPL", 4) != 0)
		return idp_error_set(err, IDP_E_FORMAT, "label: not an idprov label payload");
	if (len < PREFIX_LEN || memcmp(buf, FMT_LABEL_PREFIX, PREFIX_LEN) != 0)
		return idp_error_set(err, IDP_E_UNSUPPORTED,
		                     "label: version is not supported (this reader knows IDPL1)");
	const char *p = buf + PREFIX_LEN;
	size_t left = len - PREFIX_LEN;
	const char *semi = memchr(p, ';', left);
	if (semi == NULL)
		return idp_error_set(err, IDP_E_FORMAT, "label: no fingerprint");
	size_t id_len = (size_t)(semi - p);
	if (id_len > FMT_ID_MAX || fmt_id_check(p, id_len, "label: id", err) != IDP_OK)
		return idp_error_set(err, IDP_E_FORMAT, "label: id: not a device ID");
	const char *h = semi + 1;
	if ((size_t)(buf + len - h) != (size_t)2 * FMT_KEY_FINGERPRINT_LEN)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "label: fingerprint: expected 64 lower-case hex digits");
	for (size_t i = 0; i < FMT_KEY_FINGERPRINT_LEN; i++) {
		int a = hexval(h[2 * i]), b = hexval(h[2 * i + 1]);
		if (a < 0 || b < 0)
			return idp_error_set(
			        err, IDP_E_FORMAT,
			        "label: fingerprint: expected 64 lower-case hex digits");
		fp[i] = (uint8_t)(a << 4 | b);
	}
	memcpy(id, p, id_len);
	id[id_len] = '\0';
	return IDP_OK;
}

enum idp_err fmt_label_fingerprint(const uint8_t *spki, size_t len,
                                   uint8_t fp[static FMT_KEY_FINGERPRINT_LEN],
                                   struct idp_error *err)
{
	if (spki == NULL || len == 0)
		return idp_error_set(err, IDP_E_ARG, "label: no key");
	if (SHA256(spki, len, fp) == NULL)
		return idp_error_set(err, IDP_E_CRYPTO, "label: sha-256");
	return IDP_OK;
}
