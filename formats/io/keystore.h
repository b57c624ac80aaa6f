/*
 * keystore.h - a private key that stays behind an OpenSSL 3 provider: named
 * by an OSSL_STORE URI ("handle:0x81000001" for a TPM through tpm2-openssl,
 * "pkcs11:..." through a PKCS#11 provider, "file:/path" through OpenSSL's
 * own), loaded through the named providers in an OpenSSL library context of
 * its own, so that the rest of the program (TLS, hashing) keeps OpenSSL's
 * default implementations and configuration. The key signs through its
 * provider (formats/keys.h, fmt_key_from_provider); its private half is
 * never exported. Part of formats/io (no policy). Spec: formats/keys.md.
 *
 * Threads: one keystore and its key belong to one thread at a time (a
 * provider's session with its hardware, a TPM's for one, is not shared);
 * distinct keystores are independent.
 */
#ifndef IDP_FORMATS_IO_KEYSTORE_H
#define IDP_FORMATS_IO_KEYSTORE_H

#include "formats/error.h"
#include "formats/keys.h"

#define FIO_KEYSTORE_URI_MAX       1024u /* bytes of a store URI */
#define FIO_KEYSTORE_PROVIDERS_MAX 8u    /* provider names in one list */
#define FIO_KEYSTORE_NAME_MAX      64u   /* bytes of one provider name or module path */

struct fio_keystore; /* opaque: the library context, its providers, the key */

/* Load the one private key at uri through providers, a comma-separated list
 * of provider names (or module paths) loaded in this order; NULL or "" is
 * "default". Unless "default" or "base" is named, "base" is loaded after
 * them, for the public-key encoders. Provider settings come from their own
 * environment (TPM2OPENSSL_TCTI for tpm2-openssl); a PIN, where one is
 * needed, comes in the URI (no prompt is ever shown). Errors never quote
 * the URI past its first '?' (a PKCS#11 URI may carry pin-value there):
 * IDP_E_ARG a bad URI or list, IDP_E_NOTFOUND a provider that does not load
 * or no private key at uri, IDP_E_IO the store does not open,
 * IDP_E_CONFLICT more than one private key at uri, IDP_E_UNSUPPORTED a key
 * that is neither P-256 nor Ed25519. *out gets the keystore (NULL on
 * failure); release it with fio_keystore_free. */
IDP_MUST_CHECK enum idp_err fio_keystore_open(const char *uri, const char *providers,
                                              struct fio_keystore **out, struct idp_error *err);

/* The key (borrowed: valid while ks lives; signs through its provider). */
struct fmt_key *fio_keystore_key(const struct fio_keystore *ks);

/* Release the key, unload the providers, free the context. NULL is a no-op. */
void fio_keystore_free(struct fio_keystore *ks);

#endif /* IDP_FORMATS_IO_KEYSTORE_H */
