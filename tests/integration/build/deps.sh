#!/usr/bin/env bash
# The dependency script is the one list of packages: every pkg-config module the
# build uses resolves, every listed package exists in Debian, and when all are
# installed the script returns without calling apt-get at all.
. "$IDP_TOP/tests/lib.sh"
cd "$IDP_TOP" || exit 1

# 1. No apt-get when everything is present: an apt-get that fails must not be reached.
mkdir -p "$T_TMP/bin"
printf '#!/bin/sh\necho "apt-get called: $*" >&2\nexit 99\n' >"$T_TMP/bin/apt-get"
chmod +x "$T_TMP/bin/apt-get"
t_run "install-deps is a no-op when all packages are present" \
	env PATH="$T_TMP/bin:$PATH" .ci/install-deps

# 2. Every pkg-config module named in the Makefile (and Check) resolves.
mods=$(make -s --no-print-directory print-PKGS)
missing=""
for m in $mods check; do pkg-config --exists "$m" || missing="$missing $m"; done
if [ -z "$missing" ]; then t_ok "pkg-config finds every module the build uses"; else t_fail "pkg-config misses:$missing"; fi

# 3. Every package in the list is installed (what the fresh machine will get).
pkgs=$(sed -n '/^PACKAGES="/,/^"/p' .ci/install-deps | grep -v '"')
missing=""
for p in $pkgs; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing="$missing $p"
done
if [ -z "$missing" ]; then t_ok "every listed package is installed"; else t_fail "not installed:$missing"; fi

# 4. The headers the sources include come from listed packages (or their dependencies).
missing=""
for h in openssl/evp.h sqlite3.h cjson/cJSON.h curl/curl.h libserialport.h libusb-1.0/libusb.h \
	event2/http.h avahi-client/client.h check.h; do
	[ -n "$(find /usr/include -path "*/$h" -print -quit)" ] || missing="$missing $h"
done
if [ -z "$missing" ]; then t_ok "the library headers the sources use are installed"; else t_fail "headers missing:$missing"; fi
t_done
