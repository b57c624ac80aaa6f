# enroll/ - the station tool and its helpers.
# idprov-manifest: create, sign, verify and show batch manifests (formats/manifest.md).
PROGS += idprov-manifest
idprov-manifest_SRCS = enroll/manifest_main.c
idprov-manifest_LIBS = formats
idprov-manifest_PKGS = openssl libcjson
MANPAGES += docs/man/idprov-manifest.1
