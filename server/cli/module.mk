# server/cli/ - idprov-admin, the administrator's command line: a client of the
# admin API over HTTPS. It includes only formats/ and formats/io/.
PROGS += idprov-admin
idprov-admin_SRCS := server/cli/admin_main.c server/cli/table.c
idprov-admin_LIBS := io formats
idprov-admin_PKGS := openssl libcjson libcurl
MANPAGES += docs/man/idprov-admin.8
