# formats/io/ - the I/O half of the shared library (libidprov-io.a): the one
# HTTPS client, the TLS exporter, the DNS-SD glue (avahi-client) and keys
# kept behind an OpenSSL 3 provider (keystore: TPM, secure element). No
# formats/*.c includes it, so the codecs stay pure; the programs link it
# after formats.
PROJECT_LIBS += io
LIBS_io += $(wildcard formats/io/*.c)
