# formats/io/ - the I/O half of the shared library (libidprov-io.a): the one
# HTTPS client, the TLS exporter, the DNS-SD glue (avahi-client) and keys
# kept behind an OpenSSL 3 provider (keystore: TPM, secure element). No
# formats/*.c includes it, so the codecs stay pure; the programs link it
# after formats.
PROJECT_LIBS += io
LIBS_io += $(wildcard formats/io/*.c)

# The embedded DNS-SD backend (dnssd_core.c) links a private static copy of
# libavahi-core. WARNING: libavahi-core and libavahi-client both export an
# avahi_entry_group_free (each its own, with other arguments); with both
# shared libraries in one process every call binds to one of them, and the
# other library crashes (measured: libavahi-core's cleanup called the
# client's, "Assertion `client' failed"). In the copy that symbol is renamed.
EXTERN_LIBS += avahicore
AVAHI_CORE_A := $(shell pkg-config --variable=libdir avahi-core 2>/dev/null)/libavahi-core.a
$(B)/lib/libidprov-avahicore.a: $(AVAHI_CORE_A)
	@mkdir -p $(@D)
	objcopy --redefine-sym avahi_entry_group_free=idp_avahi_core_entry_group_free $< $@
