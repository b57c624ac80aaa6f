/*
 * tls.c - RFC 9266 tls-exporter (see tls.h).
 */
#include <string.h>

#include <openssl/crypto.h>

#include "formats/io/tls.h"

enum idp_err fio_tls_exporter(SSL *ssl, uint8_t out[static FIO_TLS_EXPORTER_LEN],
                              struct idp_error *err)
{
	static const unsigned char empty[1] = {0};
	/* use_context = 1 with a zero-length context: RFC 9266's definition. */
	if (ssl == NULL || SSL_is_init_finished(ssl) != 1 ||
	    SSL_export_keying_material(ssl, out, FIO_TLS_EXPORTER_LEN, FMT_API_EXPORTER_LABEL,
	                               strlen(FMT_API_EXPORTER_LABEL), empty, 0, 1) != 1) {
		OPENSSL_cleanse(out, FIO_TLS_EXPORTER_LEN);
		return idp_error_ssl(err, IDP_E_CRYPTO, "tls: no exporter for this connection");
	}
	return IDP_OK;
}
