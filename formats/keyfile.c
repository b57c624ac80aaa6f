/*
 * keyfile.c - see keyfile.h.
 */
#include "formats/keyfile.h"

#include <stdlib.h>
#include <string.h>

#include "formats/file.h"

enum idp_err fmt_keyfile_save(const struct fmt_key *key, const char *priv_path,
                              const char *pub_path, struct idp_error *err)
{
	char *pem = NULL;
	size_t len = 0;
	enum idp_err rc = fmt_key_private_pem(key, &pem, &len, err);
	if (rc != IDP_OK)
		return rc;
	rc = fmt_file_write_atomic(priv_path, (const uint8_t *)pem, len, 0600, err);
	fmt_key_free_secret(pem, len);
	if (rc != IDP_OK || pub_path == NULL)
		return rc;
	rc = fmt_key_public_pem(key, &pem, &len, err);
	if (rc != IDP_OK)
		return rc;
	rc = fmt_file_write_atomic(pub_path, (const uint8_t *)pem, len, 0644, err);
	free(pem);
	return rc;
}

enum idp_err fmt_keyfile_load_private(const char *path, struct fmt_key **out,
                                      struct idp_error *err)
{
	*out = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = fmt_file_read(path, FMT_KEY_PEM_MAX, &buf, &len, err);
	if (rc != IDP_OK)
		return rc;
	rc = fmt_key_parse_private_pem(buf, len, out, err);
	fmt_file_free_secret(buf, len);
	if (rc != IDP_OK)
		idp_error_prefix(err, "%s", path);
	return rc;
}

enum idp_err fmt_keyfile_load_public(const char *path, struct fmt_key **out, struct idp_error *err)
{
	*out = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = fmt_file_read(path, FMT_KEY_PEM_MAX, &buf, &len, err);
	if (rc != IDP_OK)
		return rc;
	static const char priv_tag[] = "PRIVATE KEY-----";
	bool is_private = false;
	for (size_t i = 0; i + sizeof(priv_tag) - 1 <= len; i++) {
		if (memcmp(buf + i, priv_tag, sizeof(priv_tag) - 1) == 0) {
			is_private = true;
			break;
		}
	}
	if (!is_private) {
		rc = fmt_key_parse_public_pem(buf, len, out, err);
	} else {
		struct fmt_key *priv = NULL;
		rc = fmt_key_parse_private_pem(buf, len, &priv, err);
		if (rc == IDP_OK) {
			uint8_t der[FMT_KEY_SPKI_MAX];
			size_t dlen = 0;
			rc = fmt_key_spki_der(priv, der, &dlen, err);
			if (rc == IDP_OK)
				rc = fmt_key_parse_spki_der(der, dlen, out, err);
		}
		fmt_key_free(priv);
	}
	fmt_file_free_secret(buf, len);
	if (rc != IDP_OK)
		idp_error_prefix(err, "%s", path);
	return rc;
}
