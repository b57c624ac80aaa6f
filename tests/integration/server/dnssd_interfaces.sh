#!/usr/bin/env bash
# dnssd_interfaces.sh - idprovd speaks mDNS only on the interfaces of its
# listen addresses (server/publish.c, fio_dnssd_use_interfaces in
# formats/io/dnssd.h), with the embedded Avahi (no avahi-daemon, no D-Bus:
# DBUS_SYSTEM_BUS_ADDRESS names a socket that does not exist).
# Everywhere: a loopback server restricts itself to the loopback interface
# (and still watches: in a namespace, it hears a rogue on the same host). In network namespaces this test creates: A is linked
# to B (10.82.1.0/24) and to C (10.82.2.0/24) by two veth pairs; B and C
# run their own dbus-daemon and avahi-daemon. The kernel's multicast
# memberships in A (/proc/net/igmp, igmp6: 224.0.0.251 / ff02::fb) say on
# which interfaces the responder listens; B's and C's daemons say where the
# publication arrives, and rogues published in B and C say where the watch
# hears; an agent with --iface browses that link only; dnssd-interfaces
# overrides the choice. A wildcard
# listener, last, joins both links: the membership check can fail. Where namespaces are not allowed, that part says "skip".
. "$(dirname "$0")/../../lib.sh"
. "$IDP_TOP/tests/integration/server/idprovd.inc"
. "$IDP_TOP/tests/netns.inc"
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T_TMP/no-such-bus

# --- loopback, in the test's own namespace ------------------------------------------
t_run "loopback server starts" srv_start "$T_TMP/lo"
t_run "loopback server: its watch runs" t_wait "$SRV_ERR" 'event=dnssd.watching'
t_grep "loopback server: embedded" 'event=dnssd.backend backend=embedded' "$SRV_ERR"
t_grep "loopback server: mDNS on the loopback interface only" \
	'event=dnssd.interfaces names=lo$' "$SRV_ERR"
srv_stop
t_run "loopback server stops cleanly" [ "$SRV_RC" = 0 ]
# An IPv4-mapped IPv6 address is that IPv4 address: listened on as such,
# on the interface that owns it.
t_run "IPv4-mapped loopback server starts" srv_start "$T_TMP/lo4" \
	--listen '[::ffff:127.0.0.1]:0'
t_run "IPv4-mapped: its watch runs" t_wait "$SRV_ERR" 'event=dnssd.watching'
t_grep "IPv4-mapped: mDNS on the loopback interface only" 'event=dnssd.interfaces names=lo$' \
	"$SRV_ERR"
t_refuse "IPv4-mapped: no address on no interface" grep -q 'dnssd.interface_unknown' "$SRV_ERR"
srv_stop
t_run "IPv4-mapped loopback server stops cleanly" [ "$SRV_RC" = 0 ]

# --- two links ----------------------------------------------------------------------
NA=idpiA$$
NB=idpiB$$
NC=idpiC$$
if ! netns_add "$NA"; then
	echo "skip - network namespaces not allowed here ($(head -c 200 "$T_TMP/netns.err")):" \
		"the per-interface part did not run"
	t_done
fi
t_run "namespaces B and C created" netns_add "$NB" "$NC"
t_run "veth pair A-B" netns_link "$NA" 10.82.1.1/24 "$NB" 10.82.1.2/24
VAB=$NETNS_VA
VB=$NETNS_VB
t_run "veth pair A-C" netns_link "$NA" 10.82.2.1/24 "$NC" 10.82.2.2/24
VAC=$NETNS_VA
VC=$NETNS_VB
t_run "B: dbus-daemon" bus b "$NB"
t_run "B: avahi-daemon" avahi b "$NB" "$VB"
t_run "C: dbus-daemon" bus c "$NC"
t_run "C: avahi-daemon" avahi c "$NC" "$VC"
in_b() { in_ns b "$NB" "$@"; }
in_c() { in_ns c "$NC" "$@"; }

# joined DEV: in A, DEV is a member of the mDNS group (IPv4 or IPv6).
joined() {
	ip netns exec "$NA" awk -v d="$1" '/^[0-9]/ { dev = $2; sub(/:$/, "", dev) }
		$1 == "FB0000E0" && dev == d { f = 1 } END { exit !f }' /proc/net/igmp ||
		ip netns exec "$NA" awk -v d="$1" \
			'$2 == d && $3 == "ff0200000000000000000000000000fb" { f = 1 } END { exit !f }' \
			/proc/net/igmp6
}
# wait_joined DEV: until DEV is a member (10 s at most).
wait_joined() {
	local _
	for _ in $(seq 1 100); do
		joined "$1" && return 0
		sleep 0.1
	done
	return 1
}
# start_a LOG ADDR [ARGS...]: idprovd in A listening on ADDR:0 (SPID).
start_a() {
	ip netns exec "$NA" "$IDP_BIN/idprovd" --foreground --state-dir "$T_TMP/srv" \
		--listen "$2:0" --server-name 10.82.1.1 --threads 1 "${@:3}" >/dev/null 2>"$1" &
	SPID=$!
	NETNS_PIDS+=("$SPID")
}
stop_a() { kill -TERM "$SPID" && wait "$SPID"; }

# A loopback server in A: the loopback interface only, neither link.
start_a "$T_TMP/alo.log" 127.0.0.1
t_run "A, loopback: watching" t_wait "$T_TMP/alo.log" 'event=dnssd.watching'
t_grep "A, loopback: names=lo" 'event=dnssd.interfaces names=lo$' "$T_TMP/alo.log"
t_run "A, loopback: the mDNS group joined on lo" wait_joined lo
t_refuse "A, loopback: not on the link to B" joined "$VAB"
t_refuse "A, loopback: not on the link to C" joined "$VAC"
# Its watch still hears the host: a rogue that A's own avahi-daemon (on lo
# only) publishes. The daemon goes before the next part.
t_run "A: dbus-daemon" bus a "$NA"
abus=$BUS_PID
t_run "A: avahi-daemon on lo" avahi a "$NA" lo
aavahi=$AVAHI_PID
rogue_fp=$(printf 'rogue' | sha256sum | cut -c1-64)
(in_ns a "$NA" avahi-publish -s "idprov rogue A" _idprov._tcp 8443 v=1 path=/v1 \
	"fp=$rogue_fp") >"$T_TMP/rogue_a.log" 2>&1 &
rpid=$!
NETNS_PIDS+=("$rpid")
t_run "A, loopback: the watch heard a rogue on the same host" t_wait "$T_TMP/alo.log" \
	'level=warn event=site.rogue name="idprov rogue A"'
t_run "A, loopback: stops cleanly" stop_a
netns_kill "$rpid"
netns_kill "$aavahi"
netns_kill "$abus"

# A rogue on C's link, published before the server starts: a watch that
# listened there would hear it (announcements, and answers to its queries).
(in_c avahi-publish -s "idprov rogue C" _idprov._tcp 8443 v=1 path=/v1 "fp=$rogue_fp") \
	>"$T_TMP/rogue_c.log" 2>&1 &
NETNS_PIDS+=("$!")
t_run "rogue published in C" t_wait "$T_TMP/rogue_c.log" 'Established under name'

# The server on A's address towards B.
start_a "$T_TMP/srv.log" 10.82.1.1
t_run "A on B's link: publishes" t_wait "$T_TMP/srv.log" 'event=dnssd.published'
t_grep "A on B's link: names the link to B only" "event=dnssd.interfaces names=$VAB\$" \
	"$T_TMP/srv.log"
t_run "A on B's link: the mDNS group joined on the link to B" wait_joined "$VAB"
t_refuse "A on B's link: not joined on the link to C" joined "$VAC"
t_refuse "A on B's link: not joined on lo" joined lo
port=$(grep -o 'event=http.listening addr=10.82.1.1:[0-9]*' "$T_TMP/srv.log" | head -1 |
	sed 's/.*://')
# listed NS_FN: that namespace's avahi-daemon resolves A's instance.
listed() {
	("$1" avahi-browse -rpt _idprov._tcp) 2>/dev/null >"$T_TMP/browse.out"
	grep -q "^=;.*;_idprov._tcp;local;.*;10.82.1.1;$port;" "$T_TMP/browse.out"
}
seen_b() {
	local _
	for _ in $(seq 1 15); do
		listed in_b && return 0
		sleep 1
	done
	return 1
}
t_run "B's avahi-daemon resolves A's instance" seen_b
# B has it, so the announcements are out: C, asking now, does not.
t_refuse "C's avahi-daemon does not see A's instance" listed in_c
t_refuse "server did not hear the rogue on C's link" grep -q 'event=site.rogue' "$T_TMP/srv.log"
(in_b avahi-publish -s "idprov rogue B" _idprov._tcp 8443 v=1 path=/v1 "fp=$rogue_fp") \
	>"$T_TMP/rogue_b.log" 2>&1 &
NETNS_PIDS+=("$!")
t_run "rogue published in B" t_wait "$T_TMP/rogue_b.log" 'Established under name'
t_run "server heard the rogue on B's link" t_wait "$T_TMP/srv.log" \
	'level=warn event=site.rogue name="idprov rogue B" .*addr=10.82.1.2 '
t_refuse "server still did not hear the rogue on C's link" \
	grep -q 'event=site.rogue name="idprov rogue C"' "$T_TMP/srv.log"
t_run "A on B's link: stops cleanly" stop_a
# The same address written IPv4-mapped: the same interface.
start_a "$T_TMP/map.log" '[::ffff:10.82.1.1]'
t_run "A on B's link, IPv4-mapped: watching" t_wait "$T_TMP/map.log" 'event=dnssd.watching'
t_grep "A on B's link, IPv4-mapped: listens on the IPv4 address" \
	'event=http.listening addr=10.82.1.1:[0-9]' "$T_TMP/map.log"
t_grep "A on B's link, IPv4-mapped: names the link to B only" \
	"event=dnssd.interfaces names=$VAB\$" "$T_TMP/map.log"
t_run "A on B's link, IPv4-mapped: the mDNS group joined on the link to B" wait_joined "$VAB"
t_refuse "A on B's link, IPv4-mapped: not joined on lo" joined lo
t_run "A on B's link, IPv4-mapped: stops cleanly" stop_a

# The agent (device-agent/) browses embedded: with --iface on that link
# only; with --mac alone on every interface (both rogues).
agent_a() {
	(timeout 60 ip netns exec "$NA" "$IDP_BIN/idprov-agent" --dnssd-backend embedded \
		--state-dir "$T_TMP/ag-$1" run --once --id "dev-$1" --discover-wait 3 "${@:2}") \
		2>"$T_TMP/ag-$1.log"
}
agent_a i1 --iface "$VAB"
t_grep "agent --iface: browses that interface only" "event=discover.interfaces names=$VAB\$" \
	"$T_TMP/ag-i1.log"
t_grep "agent --iface: found the rogue on its link" 'event=discover.found addr=10.82.1.2 ' \
	"$T_TMP/ag-i1.log"
t_refuse "agent --iface: nothing from the other link" \
	grep -q 'event=discover.found addr=10.82.2.2 ' "$T_TMP/ag-i1.log"
agent_a i2 --mac 02:00:5e:00:f2:02
t_grep "agent --mac: browses every interface" 'event=discover.interfaces names=all$' \
	"$T_TMP/ag-i2.log"
t_grep "agent --mac: found the rogue on the other link too" \
	'event=discover.found addr=10.82.2.2 ' "$T_TMP/ag-i2.log"

# dnssd-interfaces overrides the listen addresses' interfaces.
start_a "$T_TMP/over.log" 10.82.1.1 --dnssd-interfaces "$VAC"
t_run "dnssd-interfaces: watching" t_wait "$T_TMP/over.log" 'event=dnssd.watching'
t_grep "dnssd-interfaces: logged as given" \
	"event=dnssd.interfaces names=$VAC from=dnssd-interfaces\$" "$T_TMP/over.log"
t_run "dnssd-interfaces: joined on the link to C" wait_joined "$VAC"
t_refuse "dnssd-interfaces: not on the link to B" joined "$VAB"
t_run "dnssd-interfaces: stops cleanly" stop_a

# A wildcard listener: every interface, so both links (the check above can fail).
start_a "$T_TMP/any.log" 0.0.0.0
t_run "A, wildcard: watching" t_wait "$T_TMP/any.log" 'event=dnssd.watching'
t_grep "A, wildcard: names=all" 'event=dnssd.interfaces names=all$' "$T_TMP/any.log"
t_run "A, wildcard: joined on the link to B" wait_joined "$VAB"
t_run "A, wildcard: joined on the link to C" wait_joined "$VAC"
t_run "A, wildcard: heard the rogue on C's link" t_wait "$T_TMP/any.log" \
	'event=site.rogue name="idprov rogue C"'
t_run "A, wildcard: stops cleanly" stop_a
t_done
