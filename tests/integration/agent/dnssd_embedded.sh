#!/usr/bin/env bash
# dnssd_embedded.sh - DNS-SD with the embedded Avahi (libavahi-core inside
# idprovd and idprov-agent: formats/io/dnssd.h), with real mDNS between two
# network namespaces this test creates (a veth pair, 10.79.1.0/24 used only
# inside them) in which NO avahi-daemon and NO dbus-daemon run
# (DBUS_SYSTEM_BUS_ADDRESS names a socket that does not exist, so "auto"
# cannot reach a daemon elsewhere either). idprovd in A chooses the embedded
# backend by itself (auto) and publishes; idprov-agent in B, embedded too,
# discovers it, pins the CA fingerprint from the TXT record and provisions
# (pending, then idprov-admin approve). Then A gets a dbus-daemon and an
# avahi-daemon, idprovd there chooses the daemon (auto), and an embedded
# agent in B finds that one (mixing). Also, everywhere: a bad backend name
# is refused by both programs, and "daemon" without a daemon says so. Where
# namespaces are not allowed, the namespace part says "skip".
. "$(dirname "$0")/../../lib.sh"

A=$IDP_BIN/idprov-agent
. "$IDP_TOP/tests/netns.inc"
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T_TMP/no-such-bus

# --- the choice (runs everywhere) ------------------------------------------------
"$A" --dnssd-backend bogus --state-dir "$T_TMP/bad" run --once --id dev-x \
	--mac 02:00:5e:00:f0:01 2>"$T_TMP/bad.log"
rc=$?
t_run "agent: unknown backend refused (exit 2)" [ "$rc" = 2 ]
t_grep "agent: the refusal names the value and the choices" \
	"'bogus' is not auto, daemon or embedded" "$T_TMP/bad.log"
t_refuse "agent: nothing created for a refused option" test -e "$T_TMP/bad/key.pem"
"$IDP_BIN/idprovd" --foreground --state-dir "$T_TMP/badsrv" --listen 127.0.0.1:0 \
	--dnssd-backend=bogus >/dev/null 2>"$T_TMP/badsrv.log"
rc=$?
t_run "idprovd: unknown backend refused (exit 2)" [ "$rc" = 2 ]
t_grep "idprovd: the refusal names the key and the value" \
	"dnssd-backend: 'bogus' is not auto, daemon or embedded" "$T_TMP/badsrv.log"
"$A" --dnssd-backend daemon --state-dir "$T_TMP/nod" run --once --id dev-n1 \
	--mac 02:00:5e:00:f0:02 2>"$T_TMP/nod.log"
rc=$?
t_run "agent: daemon backend without avahi-daemon: exit 4" [ "$rc" = 4 ]
t_grep "agent: says which backend, chosen by the option" \
	'event=discover.backend backend=daemon chosen=dnssd-backend' "$T_TMP/nod.log"
t_grep "agent: says the daemon is missing" 'cannot reach avahi-daemon' "$T_TMP/nod.log"

# --- the namespaces ----------------------------------------------------------------
NA=idpeA$$
NB=idpeB$$
netns_link_or_skip "$NA" 10.79.1.1/24 "$NB" 10.79.1.2/24 \
	"the embedded DNS-SD discovery between namespaces did not run"
VA=$NETNS_VA
t_refuse "no dbus-daemon reachable" test -S "$T_TMP/no-such-bus"

# --- idprovd in A, embedded by itself ----------------------------------------------
ip netns exec "$NA" "$IDP_BIN/idprovd" --foreground --state-dir "$T_TMP/srv" \
	--listen 10.79.1.1:0 --server-name 10.79.1.1 --threads 2 --pending-retry-after 1s \
	>/dev/null 2>"$T_TMP/srv.log" &
SRV_PID=$!
NETNS_PIDS+=("$SRV_PID")
t_run "server publishes _idprov._tcp" t_wait "$T_TMP/srv.log" 'event=dnssd.published'
t_grep "server: embedded, chosen by auto (no daemon)" \
	'event=dnssd.backend backend=embedded chosen=auto:no-avahi-daemon' "$T_TMP/srv.log"
t_run "server: its watch runs (embedded)" t_wait "$T_TMP/srv.log" 'event=dnssd.watching'
port=$(grep -o 'event=http.listening addr=10.79.1.1:[0-9]*' "$T_TMP/srv.log" | head -1 |
	sed 's/.*://')
url=https://10.79.1.1:$port
ca_fp=$(openssl x509 -in "$T_TMP/srv/ca.pem" -outform DER | sha256sum | cut -c1-64)
token=$(cat "$T_TMP/srv/admin.token")
adm() { (IDPROV_ADMIN_TOKEN=$token ip netns exec "$NA" "$IDP_BIN/idprov-admin" \
	--server "$1" --ca "$2" "${@:3}"); }

# --- the agent in B, embedded by itself: discovers, pins from TXT, provisions --------
ip netns exec "$NB" "$A" --state-dir "$T_TMP/ag" run --once --id dev-e1 \
	--mac 02:00:5e:00:f1:01 --wait 60 2>"$T_TMP/ag.log" &
apid=$!
NETNS_PIDS+=("$apid")
t_run "agent: pending seen" t_wait "$T_TMP/ag.log" 'event=provision.pending device=dev-e1'
t_grep "agent: embedded, chosen by auto" \
	'event=discover.backend backend=embedded chosen=auto:no-avahi-daemon' "$T_TMP/ag.log"
t_grep "agent: found the server, not its own" \
	"event=discover.found addr=10.79.1.1 port=$port fp=$ca_fp own=no" "$T_TMP/ag.log"
t_grep "agent: chose the server's URL" "event=discover.chosen url=$url fp=$ca_fp" "$T_TMP/ag.log"
t_grep "agent: pinned the TXT fingerprint" "event=ca.pinned source=dns-sd fingerprint=$ca_fp" \
	"$T_TMP/ag.log"
t_run "admin approves" adm "$url" "$T_TMP/srv/ca.pem" approve dev-e1 >/dev/null
wait "$apid"
t_run "agent: provisioned (exit 0)" [ $? = 0 ]
t_grep "agent: token exchanged" 'event=token.exchanged device=dev-e1' "$T_TMP/ag.log"
"$A" --state-dir "$T_TMP/ag" status --json --id dev-e1 >"$T_TMP/st.json" 2>/dev/null
t_run "status: pinned CA is the server's" [ "$(json_field pinned_ca <"$T_TMP/st.json")" = "$ca_fp" ]
t_refuse "server: its own instance is no rogue" grep -q 'event=site.rogue' "$T_TMP/srv.log"
kill -TERM "$SRV_PID"
wait "$SRV_PID"
t_run "server stops cleanly" [ $? = 0 ]
t_grep "server withdrew its publication" 'event=dnssd.withdrawn instances=1' "$T_TMP/srv.log"

# --- mixing: a daemon in A, idprovd on it (auto), the embedded agent in B finds it ----
t_run "A: dbus-daemon" bus a "$NA"
t_run "A: avahi-daemon" avahi a "$NA" "$VA"
(in_ns a "$NA" "$IDP_BIN/idprovd" --foreground --state-dir "$T_TMP/srv2" \
	--listen 10.79.1.1:0 --server-name 10.79.1.1 --threads 1) >/dev/null 2>"$T_TMP/srv2.log" &
NETNS_PIDS+=("$!")
t_run "daemon server publishes" t_wait "$T_TMP/srv2.log" 'event=dnssd.published'
t_grep "daemon server: daemon, chosen by auto" \
	'event=dnssd.backend backend=daemon chosen=auto:avahi-daemon' "$T_TMP/srv2.log"
port2=$(grep -o 'event=http.listening addr=10.79.1.1:[0-9]*' "$T_TMP/srv2.log" | head -1 |
	sed 's/.*://')
ca2_fp=$(openssl x509 -in "$T_TMP/srv2/ca.pem" -outform DER | sha256sum | cut -c1-64)
(ip netns exec "$NB" "$A" --dnssd-backend embedded --state-dir "$T_TMP/ag2" run --once \
	--id dev-e2 --mac 02:00:5e:00:f1:02 --wait 1 2>"$T_TMP/ag2.log")
rc=$?
t_run "embedded agent, daemon server: pending (exit 5)" [ "$rc" = 5 ]
t_grep "embedded agent: chosen by the option" \
	'event=discover.backend backend=embedded chosen=dnssd-backend' "$T_TMP/ag2.log"
t_grep "embedded agent: chose the daemon server, pinned its CA" \
	"event=discover.chosen url=https://10.79.1.1:$port2 fp=$ca2_fp" "$T_TMP/ag2.log"
t_grep "embedded agent: no trace of the stopped embedded server" \
	"discover.chosen .* instances=1" "$T_TMP/ag2.log"
t_done
