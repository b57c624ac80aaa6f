/*
 * version.h - the one version string of idprov, printed by every program's
 * --version and sent as the agent version. Pure; no code.
 */
#ifndef IDP_FORMATS_VERSION_H
#define IDP_FORMATS_VERSION_H

#define IDP_VERSION "0.1.0"

#endif /* IDP_FORMATS_VERSION_H */
