/*
 * oob.c - see oob.h. Spec: formats/api.md §15.
 */
#include "formats/oob.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/sha.h>

enum idp_err fmt_oob_secret_check(const char *s, size_t len, struct idp_error *err)
{
	if (len == 0)
		return idp_error_set(err, IDP_E_FORMAT, "oob secret: empty");
	if (len > FMT_OOB_SECRET_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "oob secret: longer than %u bytes",
		                     FMT_OOB_SECRET_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "oob secret: byte %zu is not printable ASCII without "
			                     "space",
			                     i);
	return IDP_OK;
}

/* The ID's length in *n: 1..FMT_OOB_ID_MAX, else IDP_E_FORMAT. */
static enum idp_err id_len(const char *device_id, size_t *n, struct idp_error *err)
{
	*n = device_id != NULL ? strnlen(device_id, FMT_OOB_ID_MAX + 1) : 0;
	if (*n == 0 || *n > FMT_OOB_ID_MAX)
		return idp_error_set(err, IDP_E_FORMAT, "oob: device ID of 1 to %u bytes",
		                     FMT_OOB_ID_MAX);
	return IDP_OK;
}

enum idp_err fmt_oob_verifier(const char *device_id, const char *secret, size_t len,
                              uint8_t out[static FMT_OOB_LEN], struct idp_error *err)
{
	memset(out, 0, FMT_OOB_LEN);
	size_t n = 0;
	enum idp_err rc = id_len(device_id, &n, err);
	if (rc == IDP_OK)
		rc = fmt_oob_secret_check(secret, len, err);
	if (rc != IDP_OK)
		return rc;
	uint8_t salt[sizeof(FMT_OOB_SALT_TAG) + 1 + FMT_OOB_ID_MAX];
	size_t sl = sizeof(FMT_OOB_SALT_TAG); /* the tag and its NUL */
	memcpy(salt, FMT_OOB_SALT_TAG, sl);
	salt[sl++] = (uint8_t)n;
	memcpy(salt + sl, device_id, n);
	sl += n;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "PBKDF2", NULL);
	EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	unsigned int iter = FMT_OOB_KDF_ITER;
	OSSL_PARAM params[] = {
	        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)(uintptr_t) "SHA256",
	                                         0),
	        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
	                                          (void *)(uintptr_t)secret, len),
	        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sl),
	        OSSL_PARAM_construct_uint(OSSL_KDF_PARAM_ITER, &iter),
	        OSSL_PARAM_construct_end(),
	};
	if (kctx == NULL || EVP_KDF_derive(kctx, out, FMT_OOB_LEN, params) != 1) {
		OPENSSL_cleanse(out, FMT_OOB_LEN);
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "oob: pbkdf2");
	}
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

enum idp_err fmt_oob_proof(const uint8_t verifier[static FMT_OOB_LEN],
                           const uint8_t exporter[static FMT_OOB_EXPORTER_LEN],
                           const char *device_id, const uint8_t *spki, size_t spki_len,
                           uint8_t out[static FMT_OOB_LEN], struct idp_error *err)
{
	memset(out, 0, FMT_OOB_LEN);
	size_t n = 0;
	if (id_len(device_id, &n, err) != IDP_OK)
		return IDP_E_FORMAT;
	if (spki == NULL || spki_len == 0)
		return idp_error_set(err, IDP_E_ARG, "oob: no public key");
	uint8_t zero[FMT_OOB_EXPORTER_LEN] = {0};
	if (CRYPTO_memcmp(exporter, zero, sizeof(zero)) == 0)
		return idp_error_set(err, IDP_E_ARG, "oob: the exporter is all zero (not read?)");
	uint8_t msg[sizeof(FMT_OOB_PROOF_TAG) + FMT_OOB_EXPORTER_LEN + 1 + FMT_OOB_ID_MAX +
	            SHA256_DIGEST_LENGTH];
	size_t ml = sizeof(FMT_OOB_PROOF_TAG); /* the tag and its NUL */
	memcpy(msg, FMT_OOB_PROOF_TAG, ml);
	memcpy(msg + ml, exporter, FMT_OOB_EXPORTER_LEN);
	ml += FMT_OOB_EXPORTER_LEN;
	msg[ml++] = (uint8_t)n;
	memcpy(msg + ml, device_id, n);
	ml += n;
	if (SHA256(spki, spki_len, msg + ml) == NULL)
		return idp_error_ssl(err, IDP_E_CRYPTO, "oob: hash public key");
	ml += SHA256_DIGEST_LENGTH;
	size_t olen = 0;
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, verifier, FMT_OOB_LEN, msg, ml, out,
	              FMT_OOB_LEN, &olen) == NULL ||
	    olen != FMT_OOB_LEN) {
		OPENSSL_cleanse(out, FMT_OOB_LEN);
		return idp_error_ssl(err, IDP_E_CRYPTO, "oob: hmac");
	}
	return IDP_OK;
}
