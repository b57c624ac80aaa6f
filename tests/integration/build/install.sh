#!/usr/bin/env bash
# make install honours PREFIX and DESTDIR, installs every program and man page,
# the systemd units, the udev rule, the docs and a default idprovd.conf; the
# installed programs run, the installed idprovd starts on the installed
# default config, the units pass systemd-analyze verify, the udev rule parses
# (udevadm test), and the default config names every key idprovd knows.
. "$IDP_TOP/tests/lib.sh"
. "$IDP_TOP/tests/integration/server/idprovd.inc"
cd "$IDP_TOP" || exit 1
dest="$T_TMP/root"
t_run "make install DESTDIR PREFIX" make -s --no-print-directory install DESTDIR="$dest" PREFIX=/opt/idp
for p in $(make -s --no-print-directory print-PROGS); do
	t_run "program $p has a man page" grep -qE "(^| )docs/man/$p\.[18]( |\$)" \
		<(make -s --no-print-directory print-MANPAGES)
done
for p in $(make -s --no-print-directory print-PROGS); do
	t_run "program $p installed and runs" "$dest/opt/idp/bin/$p" --help
done 2>/dev/null
# One version for every program, the one in formats/version.h.
ver=$(sed -n 's/^#define IDP_VERSION "\(.*\)"$/\1/p' formats/version.h)
for p in $(make -s --no-print-directory print-PROGS); do
	t_grep "$p --version prints $ver" "^$p $ver\$" <("$dest/opt/idp/bin/$p" --version)
done
n=0
for m in $(make -s --no-print-directory print-MANPAGES); do
	sect=${m##*.}
	[ -f "$dest/opt/idp/share/man/man$sect/$(basename "$m")" ] && n=$((n + 1))
done
want=$(make -s --no-print-directory print-MANPAGES | wc -w)
if [ "$n" -eq "$want" ] && [ "$want" -gt 0 ]; then t_ok "all $want man pages installed"; else t_fail "$n of $want man pages installed"; fi
# Each program links only the libraries it uses: the server no serial, USB
# or HTTP-client library; the device agent no server or station library (of
# Avahi only the client library, for DNS-SD through avahi-daemon: the
# embedded backend's libavahi-core is linked statically, formats/io/module.mk).
needed() { objdump -p "$1" | sed -n 's/^ *NEEDED *//p'; }
bin=$dest/opt/idp/bin
t_refuse "idprovd links no libserialport, libusb, libcurl" \
	grep -qE 'libserialport|libusb|libcurl' <(needed "$bin/idprovd")
t_refuse "idprov-agent links no sqlite, libevent, libserialport, libusb, avahi-core" \
	grep -qE 'sqlite|libevent|libserialport|libusb|avahi-core' <(needed "$bin/idprov-agent")
t_grep "idprov-agent links avahi-client (discovery)" 'libavahi-client' <(needed "$bin/idprov-agent")
t_refuse "idprov-admin links no sqlite, libevent, libserialport, libusb" \
	grep -qE 'sqlite|libevent|libserialport|libusb' <(needed "$bin/idprov-admin")
# The man pages are clean for mandoc's linter (dates, macros, references).
for m in $(make -s --no-print-directory print-MANPAGES); do
	t_run "mandoc -T lint finds nothing in $m" mandoc -T lint -W warning "$m"
done
# The systemd units: every one in samples/, installed with PREFIX's paths,
# and valid for systemd (verified where the programs really are: an install
# without DESTDIR, its default config kept in the temporary tree too).
units=$(cd samples && ls ./*.service | sed 's|^\./||')
t_run "three units in samples/" [ "$(echo "$units" | wc -w)" = 3 ]
for u in $units; do
	t_grep "$u installed with PREFIX's paths" "^ExecStart=/opt/idp/bin/idprov" \
		"$dest/opt/idp/lib/systemd/system/$u"
done
real=$T_TMP/real
t_run "make install PREFIX=$real" make -s --no-print-directory install PREFIX="$real" SYSCONFDIR="$real/etc"
for u in $units; do
	t_run "systemd-analyze verify $u" systemd-analyze verify --man=no "$real/lib/systemd/system/$u"
done
t_refuse "nothing is installed outside DESTDIR" test -e /opt/idp/bin

# The udev rule: in PREFIX/lib/udev/rules.d (UDEVRULESDIR), and parsed by
# udev itself. Debian 12's udevadm (252) has no `udevadm verify` (253), so
# `udevadm test` reads the rules with the installed file bound over
# /etc/udev/rules.d in a private mount namespace: udev names every line it
# cannot parse. The group idprov is the administrator's to create
# (samples/60-idprov-station.rules), so "Unknown group" is the one message
# allowed. A rule with a bad key shows the check can fail.
rules=$dest/opt/idp/lib/udev/rules.d/60-idprov-station.rules
t_run "udev rule installed" cmp -s samples/60-idprov-station.rules "$rules"
udev_parse() {
	unshare -m bash -c 'mount --bind "$1" /etc/udev/rules.d && udevadm test --action=add /sys/class/tty/console 2>&1' \
		udev "$1" | grep '^/etc/udev/rules.d/'
}
mkdir -p "$T_TMP/udev" "$T_TMP/udev-bad"
cp "$rules" "$T_TMP/udev/"
udev_parse "$T_TMP/udev" >"$T_TMP/udev.out"
t_grep "udevadm test read the rule" "60-idprov-station.rules:[0-9]+ Unknown group 'idprov'" "$T_TMP/udev.out"
t_refuse "udevadm test finds nothing else in the rule" grep -v "Unknown group 'idprov'" "$T_TMP/udev.out"
sed 's/ATTR{idVendor}/ATTRS{idVendor/' "$rules" >"$T_TMP/udev-bad/60-bad.rules"
t_grep "a broken rule is named" '60-bad.rules:[0-9]+ ' <(udev_parse "$T_TMP/udev-bad")

# The docs: the README, every guide, image and format spec, and the examples.
doc=$dest/opt/idp/share/doc/idprov
for f in README.md $(git ls-files 'docs/*.md' 'docs/images/*'); do
	t_run "doc $f installed" cmp -s "$f" "$doc/$f"
done
for f in $(git ls-files 'formats/*.md'); do
	t_run "spec $f installed" cmp -s "$f" "$doc/$f"
done

# The default config: in SYSCONFDIR/idprov, every key commented, and the keys
# and defaults are idprovd's own (--help lists them from the table in
# server/config.c), so the file cannot drift from the code.
conf=$dest/etc/idprov/idprovd.conf
t_run "default idprovd.conf installed" cmp -s samples/idprovd.conf "$conf"
t_refuse "every key in it is commented" grep -qE '^[a-z]' "$conf"
echo 'threads = 1' >>"$conf"
make -s --no-print-directory install DESTDIR="$dest" PREFIX=/opt/idp >/dev/null 2>&1
t_grep "a second install keeps the administrator's config" '^threads = 1$' "$conf"
sed -i '$d' "$conf"
bin=$dest/opt/idp/bin
# conf_drift FILE: keys of idprovd --help missing from FILE, keys FILE has
# that idprovd does not, and defaults that differ (where --help's default is
# one word, not "none" nor a placeholder like HOSTNAME: the other lines show
# an example).
conf_drift() {
	"$bin/idprovd" --help 2>&1 | awk '/^  --/ { k = substr($1, 3); next }
		k && /\(default: / { d = $0; sub(/.*\(default: /, "", d); sub(/\)$/, "", d); print k "\t" d; k = "" }' |
		sort >"$T_TMP/help.keys"
	awk '/^#[a-z][a-z0-9-]* = / { k = substr($1, 2); if (!(k in s)) { s[k] = 1; v = $0
		sub(/^#[^=]*= /, "", v); print k "\t" v } }' "$1" | sort >"$T_TMP/conf.keys"
	join -t "$(printf '\t')" -a1 -a2 -e MISSING -o 0,1.2,2.2 "$T_TMP/help.keys" "$T_TMP/conf.keys" |
		awk -F '\t' '$2 == "MISSING" || $3 == "MISSING" || ($2 != $3 && $2 !~ / |[A-Z][A-Z]/ && $2 != "none")'
}
t_run "idprovd --help lists at least 30 keys" [ "$(conf_drift "$conf" >/dev/null; wc -l <"$T_TMP/help.keys")" -ge 30 ]
conf_drift "$conf" >"$T_TMP/drift"
t_run "the default config names every key with its default" [ ! -s "$T_TMP/drift" ]
sed 's/^#max-body = .*/#max-body = 32K/; /^#nonce-lifetime = /d' "$conf" >"$T_TMP/drifted.conf"
conf_drift "$T_TMP/drifted.conf" >"$T_TMP/drift"
t_grep "a missing key is found" '^nonce-lifetime	.*	MISSING$' "$T_TMP/drift"
t_grep "a changed default is found" '^max-body	16K	32K$' "$T_TMP/drift"

# The installed idprovd starts on the installed default config (on loopback).
# shellcheck disable=SC2034 # srv_start runs $IDP_BIN/idprovd
IDP_BIN=$bin
t_run "installed idprovd starts with the installed config" \
	srv_start "$T_TMP/state" --config "$conf"
t_grep "it answers /v1/health" '"status"' <(srv_curl "$SRV_URL/v1/health")
srv_stop
t_run "it stops cleanly" [ "$SRV_RC" = 0 ]
t_done
