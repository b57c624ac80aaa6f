/*
 * keystore.c - see keystore.h.
 */
#include "formats/io/keystore.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/store.h>

struct fio_keystore {
	OSSL_LIB_CTX *libctx;
	OSSL_PROVIDER *prov[FIO_KEYSTORE_PROVIDERS_MAX + 1]; /* + "base" */
	size_t n_prov;
	struct fmt_key *key;
};

/* The URI for a message: up to its first '?' (a PKCS#11 URI may carry
 * pin-value after it), quoted. */
static const char *shown(const char *uri, char q[static IDP_QUOTE_MAX])
{
	return idp_quote(uri, strcspn(uri, "?"), q);
}

static enum idp_err load_provider(struct fio_keystore *ks, const char *name, size_t len,
                                  struct idp_error *err)
{
	char q[IDP_QUOTE_MAX];
	if (len == 0 || len >= FIO_KEYSTORE_NAME_MAX)
		return idp_error_set(err, IDP_E_ARG, "key providers: name \"%s\" is empty or over %u bytes",
		                     idp_quote(name, len, q), FIO_KEYSTORE_NAME_MAX - 1);
	if (ks->n_prov >= FIO_KEYSTORE_PROVIDERS_MAX)
		return idp_error_set(err, IDP_E_ARG, "key providers: more than %u",
		                     FIO_KEYSTORE_PROVIDERS_MAX);
	char nm[FIO_KEYSTORE_NAME_MAX];
	memcpy(nm, name, len);
	nm[len] = '\0';
	OSSL_PROVIDER *p = OSSL_PROVIDER_load(ks->libctx, nm);
	if (p == NULL)
		return idp_error_ssl(err, IDP_E_NOTFOUND, "key provider \"%s\": does not load",
		                     idp_quote(name, len, q));
	ks->prov[ks->n_prov++] = p;
	return IDP_OK;
}

static enum idp_err load_providers(struct fio_keystore *ks, const char *list, struct idp_error *err)
{
	if (list == NULL || list[0] == '\0')
		list = "default";
	const size_t list_max = (size_t)FIO_KEYSTORE_PROVIDERS_MAX * FIO_KEYSTORE_NAME_MAX;
	if (strnlen(list, list_max + 1) > list_max)
		return idp_error_set(err, IDP_E_ARG, "key providers: list too long");
	bool has_base = false;
	for (const char *p = list;;) {
		size_t n = strcspn(p, ",");
		while (n > 0 && *p == ' ') {
			p++;
			n--;
		}
		while (n > 0 && p[n - 1] == ' ')
			n--;
		enum idp_err rc = load_provider(ks, p, n, err);
		if (rc != IDP_OK)
			return rc;
		if ((n == 7 && memcmp(p, "default", 7) == 0) || (n == 4 && memcmp(p, "base", 4) == 0))
			has_base = true;
		p += strcspn(p, ",");
		if (*p == '\0')
			break;
		p++;
	}
	if (!has_base) {
		OSSL_PROVIDER *b = OSSL_PROVIDER_load(ks->libctx, "base");
		if (b == NULL)
			return idp_error_ssl(err, IDP_E_NOTFOUND, "key provider \"base\": does not load");
		ks->prov[ks->n_prov++] = b;
	}
	return IDP_OK;
}

/* Read every object at uri; exactly one private key must be among them. */
static enum idp_err load_key(struct fio_keystore *ks, const char *uri, struct idp_error *err)
{
	char q[IDP_QUOTE_MAX];
	OSSL_STORE_CTX *st = OSSL_STORE_open_ex(uri, ks->libctx, NULL, NULL, NULL, NULL, NULL, NULL);
	if (st == NULL)
		return idp_error_ssl(err, IDP_E_IO, "key store \"%s\": does not open", shown(uri, q));
	enum idp_err rc = IDP_OK;
	EVP_PKEY *found = NULL;
	/* No OSSL_STORE_expect: the file loader then fails on a public key
	 * instead of skipping it, and tpm2's cannot filter at all. Public keys,
	 * certificates and parameters are skipped here. */
	for (unsigned i = 0; rc == IDP_OK && i < 64 && !OSSL_STORE_eof(st); i++) {
		OSSL_STORE_INFO *info = OSSL_STORE_load(st);
		if (info == NULL) {
			if (OSSL_STORE_error(st) != 0 && !OSSL_STORE_eof(st))
				rc = idp_error_ssl(err, IDP_E_IO, "key store \"%s\": read", shown(uri, q));
			continue;
		}
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) {
			if (found != NULL)
				rc = idp_error_set(err, IDP_E_CONFLICT,
				                   "key store \"%s\": more than one private key",
				                   shown(uri, q));
			else
				found = OSSL_STORE_INFO_get1_PKEY(info);
		}
		OSSL_STORE_INFO_free(info);
	}
	(void)OSSL_STORE_close(st);
	if (rc == IDP_OK && found == NULL)
		rc = idp_error_ssl(err, IDP_E_NOTFOUND, "key store \"%s\": no private key",
		                   shown(uri, q));
	if (rc == IDP_OK) {
		rc = fmt_key_from_provider(found, ks->libctx, &ks->key, err);
		if (rc != IDP_OK)
			idp_error_prefix(err, "key store \"%s\"", shown(uri, q));
	}
	EVP_PKEY_free(found);
	ERR_clear_error();
	return rc;
}

enum idp_err fio_keystore_open(const char *uri, const char *providers, struct fio_keystore **out,
                               struct idp_error *err)
{
	*out = NULL;
	if (uri == NULL || uri[0] == '\0' ||
	    strnlen(uri, FIO_KEYSTORE_URI_MAX + 1) > FIO_KEYSTORE_URI_MAX)
		return idp_error_set(err, IDP_E_ARG, "key store: URI missing or over %u bytes",
		                     FIO_KEYSTORE_URI_MAX);
	struct fio_keystore *ks = calloc(1, sizeof(*ks));
	if (ks == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "key store: out of memory");
	enum idp_err rc = IDP_OK;
	ks->libctx = OSSL_LIB_CTX_new();
	if (ks->libctx == NULL)
		rc = idp_error_ssl(err, IDP_E_NOMEM, "key store: out of memory");
	if (rc == IDP_OK)
		rc = load_providers(ks, providers, err);
	if (rc == IDP_OK)
		rc = load_key(ks, uri, err);
	if (rc != IDP_OK) {
		fio_keystore_free(ks);
		return rc;
	}
	*out = ks;
	return IDP_OK;
}

struct fmt_key *fio_keystore_key(const struct fio_keystore *ks)
{
	return ks->key;
}

void fio_keystore_free(struct fio_keystore *ks)
{
	if (ks == NULL)
		return;
	/* The key holds its provider's key manager: free it first. */
	fmt_key_free(ks->key);
	for (size_t i = ks->n_prov; i > 0; i--)
		(void)OSSL_PROVIDER_unload(ks->prov[i - 1]);
	OSSL_LIB_CTX_free(ks->libctx);
	free(ks);
}
