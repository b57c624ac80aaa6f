# server/ - the provisioning server idprovd and its library (libidprov-server.a):
# the store, the state directory, the configuration, HTTPS and the handlers.
# The programs' main() files stay out of the library.
SERVER_MAINS := server/idprovd.c
PROJECT_LIBS += server
LIBS_server += $(filter-out $(SERVER_MAINS),$(wildcard server/*.c))

PROGS += idprovd
idprovd_SRCS := server/idprovd.c
idprovd_LIBS := server io avahicore formats
idprovd_PKGS := openssl sqlite3 libcjson libevent libevent_openssl libevent_pthreads avahi-client
MANPAGES += docs/man/idprovd.8


# The web UI's files (server/ui/) compiled into the server library as one
# generated C file (server/ui/embed.sh: od + awk, no Node at build time).
UI_FILES := $(sort $(wildcard server/ui/*.html server/ui/*.css server/ui/*.js))
UI_GEN   := $(B)/gen/server/ui_assets.c
LIBS_server += $(UI_GEN)
$(UI_GEN): $(UI_FILES) server/ui/embed.sh
	@mkdir -p $(@D)
	server/ui/embed.sh $@ $(UI_FILES)
