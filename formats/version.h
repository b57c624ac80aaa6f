/*
 * version.h - build-wide constants every program shares: the one version
 * string (printed by every --version) and idprovd's default state directory
 * (where idprov-admin finds the server's CA on the same host). Pure; no code.
 */
#ifndef IDP_FORMATS_VERSION_H
#define IDP_FORMATS_VERSION_H

#define IDP_VERSION "0.1.0"
#define IDP_SERVER_STATE_DIR "/var/lib/idprov"

#endif /* IDP_FORMATS_VERSION_H */
