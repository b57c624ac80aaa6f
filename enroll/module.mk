# enroll/ - the station tool and its helpers.
# idprov-manifest: create, sign, verify and show batch manifests (formats/manifest.md).
PROGS += idprov-manifest
idprov-manifest_SRCS = enroll/manifest_main.c
idprov-manifest_LIBS = enroll formats
idprov-manifest_PKGS = openssl libcjson
MANPAGES += docs/man/idprov-manifest.1

# libidprov-enroll: the station's modules, shared by idprov-station and
# idprov-manifest (and linked into the unit tests).
PROJECT_LIBS += enroll
LIBS_enroll += $(filter-out %_main.c,$(wildcard enroll/*.c))

# idprov-station: the factory line (docs/station-operator.md).
PROGS += idprov-station
idprov-station_SRCS = enroll/station_main.c
idprov-station_LIBS = enroll io formats
idprov-station_PKGS = openssl libcjson libcurl libserialport libqrencode libusb-1.0
MANPAGES += docs/man/idprov-station.1
