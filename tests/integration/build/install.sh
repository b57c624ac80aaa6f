#!/usr/bin/env bash
# make install honours PREFIX and DESTDIR, installs every program and man page,
# and the installed program runs.
. "$IDP_TOP/tests/lib.sh"
cd "$IDP_TOP" || exit 1
dest="$T_TMP/root"
t_run "make install DESTDIR PREFIX" make -s --no-print-directory install DESTDIR="$dest" PREFIX=/opt/idp
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
# Avahi only the client library, for DNS-SD discovery through avahi-daemon).
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
# The systemd units: installed with PREFIX's paths, and valid for systemd
# (verified where the programs really are: an install without DESTDIR).
for u in idprovd idprov-agent; do
	t_grep "$u.service installed with PREFIX's paths" "ExecStart=/opt/idp/bin/$u " \
		"$dest/opt/idp/lib/systemd/system/$u.service"
done
real=$T_TMP/real
t_run "make install PREFIX=$real" make -s --no-print-directory install PREFIX="$real"
for u in idprovd idprov-agent; do
	t_run "systemd-analyze verify $u.service" \
		systemd-analyze verify --man=no "$real/lib/systemd/system/$u.service"
done
t_refuse "nothing is installed outside DESTDIR" test -e /opt/idp/bin
t_done
