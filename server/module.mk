# server/ - the provisioning server idprovd and its library (libidprov-server.a):
# the store, the state directory, the configuration, HTTPS and the handlers.
# The programs' main() files stay out of the library.
SERVER_MAINS := server/idprovd.c
PROJECT_LIBS += server
LIBS_server += $(filter-out $(SERVER_MAINS),$(wildcard server/*.c))

PROGS += idprovd
idprovd_SRCS := server/idprovd.c
idprovd_LIBS := server io formats
idprovd_PKGS := openssl sqlite3 libcjson libevent libevent_openssl libevent_pthreads avahi-client
MANPAGES += docs/man/idprovd.8

