/*
 * keyfile.h - keys in files: save a key pair (private PKCS#8 PEM with mode
 * 0600, public SPKI PEM with mode 0644, both written atomically) and load
 * either half. Spec: formats/keys.md. Thread-safe.
 */
#ifndef IDP_FORMATS_KEYFILE_H
#define IDP_FORMATS_KEYFILE_H

#include "formats/error.h"
#include "formats/keys.h"

/* Write key's private half to priv_path (0600) and, when pub_path is not NULL,
 * its public half to pub_path (0644). Each file is replaced atomically. */
IDP_MUST_CHECK enum idp_err fmt_keyfile_save(const struct fmt_key *key, const char *priv_path,
                                             const char *pub_path, struct idp_error *err);

/* Load a private key PEM file. Errors name the path. Caller frees *out. */
IDP_MUST_CHECK enum idp_err fmt_keyfile_load_private(const char *path, struct fmt_key **out,
                                                     struct idp_error *err);

/* Load a public key PEM file (SPKI); a private key file is accepted too and
 * only its public half is kept. Errors name the path. Caller frees *out. */
IDP_MUST_CHECK enum idp_err fmt_keyfile_load_public(const char *path, struct fmt_key **out,
                                                    struct idp_error *err);

#endif /* IDP_FORMATS_KEYFILE_H */
