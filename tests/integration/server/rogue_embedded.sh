#!/usr/bin/env bash
# rogue_embedded.sh - rogue server detection with the embedded Avahi
# (libavahi-core inside idprovd, formats/io/dnssd.h), for real, in two
# network namespaces this test creates (a veth pair, 10.80.1.0/24 used only
# inside them). A has NO avahi-daemon and NO dbus-daemon: idprovd there
# chooses the embedded backend (auto), publishes and watches _idprov._tcp
# in-process. B has its own dbus-daemon and avahi-daemon, which first holds
# A's host name (avahi-publish -a): A's responder takes another one and
# still knows its own instance. Then a rogue published in B with
# avahi-publish (not project code) suspends provisioning in A (log, 503);
# its withdrawal is seen. When idprovd stops, its goodbye packets remove the
# instance from B's daemon. Started again while B publishes its instance
# name, it takes the next name. Where namespaces are not allowed the test
# says "skip".
. "$(dirname "$0")/../../lib.sh"
. "$IDP_TOP/tests/netns.inc"

nobus=unix:path=$T_TMP/no-such-bus
NA=idprA$$
NB=idprB$$
netns_link_or_skip "$NA" 10.80.1.1/24 "$NB" 10.80.1.2/24 \
	"the embedded rogue detection did not run"
VB=$NETNS_VB
t_run "B: dbus-daemon" bus b "$NB"
t_run "B: avahi-daemon" avahi b "$NB" "$VB"
in_b() { in_ns b "$NB" "$@"; }

# B's daemon holds the name A's responder would take (the system's host
# name, shared by the namespaces): A must pick another.
me=$(hostname | cut -d. -f1)
(in_b avahi-publish -a -R "$me.local" 10.80.1.99) >"$T_TMP/name.log" 2>&1 &
NETNS_PIDS+=("$!")
t_run "B holds A's host name" t_wait "$T_TMP/name.log" 'Established under name'

sa=$T_TMP/srv
(DBUS_SYSTEM_BUS_ADDRESS=$nobus exec ip netns exec "$NA" "$IDP_BIN/idprovd" --foreground \
	--state-dir "$sa" --listen 10.80.1.1:0 --server-name 10.80.1.1 --threads 2) \
	>/dev/null 2>"$T_TMP/srv.log" &
SPID=$!
NETNS_PIDS+=("$SPID")
t_run "server publishes" t_wait "$T_TMP/srv.log" 'event=dnssd.published'
t_grep "server: embedded, chosen by auto (no daemon)" \
	'event=dnssd.backend backend=embedded chosen=auto:no-avahi-daemon' "$T_TMP/srv.log"
t_grep "server: host name taken on the link, another one used" \
	"level=warn event=dnssd.host_renamed host=\"$me-2\"" "$T_TMP/srv.log"
port=$(grep -o 'event=http.listening addr=10.80.1.1:[0-9]*' "$T_TMP/srv.log" | head -1 | sed 's/.*://')
url=https://10.80.1.1:$port
t_run "server: its watch knows its own instance" t_wait "$T_TMP/srv.log" \
	"event=site.own name=\"idprov on [^\"]*\" host=\"$me-2.local\" addr=10.80.1.1 port=$port"
t_refuse "server: own instance not a rogue" grep -q 'event=site.rogue' "$T_TMP/srv.log"
# browse_b WANT: B's avahi-daemon lists (WANT=1) or no longer lists (WANT=0)
# A's instance; tried up to 15 times, as packets take a moment to arrive.
browse_b() {
	local _ n
	for _ in $(seq 1 15); do
		(in_b avahi-browse -rpt _idprov._tcp) 2>/dev/null >"$T_TMP/browse.out"
		n=$(grep -c "^=;.*;_idprov._tcp;local;$me-2.local;10.80.1.1;$port;" "$T_TMP/browse.out")
		{ [ "$1" = 1 ] && [ "$n" -gt 0 ]; } || { [ "$1" = 0 ] && [ "$n" = 0 ]; } && return 0
		sleep 1
	done
	return 1
}
t_run "B's avahi-daemon resolves A's instance on its new host name" browse_b 1

nprov() { (ip netns exec "$NA" curl -sS --max-time 20 --cacert "$sa/ca.pem" -o "$T_TMP/prov" \
	-w '%{http_code}' -H 'Content-Type: application/json' -d '{}' "$url/v1/provision"); }
t_run "not suspended: provision parses the request (400)" [ "$(nprov)" = 400 ]
rogue_fp=$(printf 'rogue' | sha256sum | cut -c1-64)
t0=$(date +%s%3N)
(in_b avahi-publish -s "idprov rogue" _idprov._tcp 8443 v=1 path=/v1 "fp=$rogue_fp") \
	>"$T_TMP/rogue.log" 2>&1 &
RPID=$!
NETNS_PIDS+=("$RPID")
t_run "rogue published by avahi-publish in B" t_wait "$T_TMP/rogue.log" 'Established under name'
t_run "server suspended provisioning" t_wait "$T_TMP/srv.log" 'level=warn event=site.suspended reason='
# A figure, not an assertion: from starting avahi-publish to the suspension.
ts=$(grep -o '^ts=[^ ]* level=warn event=site.suspended ' "$T_TMP/srv.log" | head -1 | cut -d' ' -f1 | cut -c4-)
[ -z "$ts" ] || echo "# measured: rogue published -> suspended in $(($(date -d "$ts" +%s%3N) - t0)) ms (embedded)"
t_grep "log line names the rogue, not own" \
	"level=warn event=site.rogue name=\"idprov rogue\" host=\"idpd-b-$$.local\" addr=10.80.1.2 port=8443 fp=$rogue_fp own=no" \
	"$T_TMP/srv.log"
t_run "rogue: provision 503" [ "$(nprov)" = 503 ]
t_grep "rogue: suspended, reason names it" '"code":"suspended",.*rogue DNS-SD publisher' "$T_TMP/prov"
netns_kill "$RPID"
t_run "server saw the rogue withdrawn" t_wait "$T_TMP/srv.log" 'event=site.gone name="idprov rogue"'

kill -TERM "$SPID"
wait "$SPID"
t_run "server stops cleanly" [ $? = 0 ]
t_grep "server withdrew its publication" 'event=dnssd.withdrawn instances=1' "$T_TMP/srv.log"
t_run "goodbye: B's avahi-daemon no longer lists A's instance" browse_b 0

# A service-name collision: B publishes A's instance name first; A, started
# again, takes the next name and publishes under it.
(in_b avahi-publish -s "idprov on $me" _idprov._tcp 9443 v=1 path=/v1 "fp=$rogue_fp") \
	>"$T_TMP/same.log" 2>&1 &
NETNS_PIDS+=("$!")
t_run "B publishes A's instance name" t_wait "$T_TMP/same.log" 'Established under name'
(DBUS_SYSTEM_BUS_ADDRESS=$nobus exec ip netns exec "$NA" "$IDP_BIN/idprovd" --foreground \
	--state-dir "$sa" --listen 10.80.1.1:0 --server-name 10.80.1.1 --threads 1) \
	>/dev/null 2>"$T_TMP/srv2.log" &
SPID=$!
NETNS_PIDS+=("$SPID")
t_run "name taken: the server renames its instance" t_wait "$T_TMP/srv2.log" \
	"level=warn event=dnssd.renamed type=_idprov._tcp name=\"idprov on $me #2\""
t_run "name taken: published under the new name" t_wait "$T_TMP/srv2.log" \
	"event=dnssd.published type=_idprov._tcp name=\"idprov on $me #2\""
kill -TERM "$SPID"
wait "$SPID"
t_run "server stops cleanly again" [ $? = 0 ]
t_done
