#!/usr/bin/env bash
# dnssd.sh - discovery by DNS-SD with real mDNS between two network
# namespaces this test creates (a veth pair, 10.77.1.0/24 used only inside
# them), each with its own dbus-daemon and avahi-daemon
# (../shared/TESTING-NOTES.md "mDNS / DNS-SD: Avahi"): idprovd publishes
# _idprov._tcp in A; idprov-agent in B, with no URL and no CA, discovers it,
# pins the CA fingerprint from the TXT record and provisions (pending, then
# idprov-admin approve). Then a second publisher naming another CA (made
# with avahi-publish, not project code): a new agent refuses to choose
# (exit 8), one that trusts the real CA's fingerprint picks the real server.
# Also: dnssd = off, and a server and an agent without avahi-daemon (a
# warning for the server, exit 4 for the agent). Where namespaces are not
# allowed, the namespace part says "skip" and only what ran is counted.
. "$(dirname "$0")/../../lib.sh"

A=$IDP_BIN/idprov-agent
. "$IDP_TOP/tests/netns.inc"
kill_pid() { netns_kill "$1"; }
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }

# --- without avahi-daemon (runs everywhere) ------------------------------------
nobus=unix:path=$T_TMP/no-such-bus
DBUS_SYSTEM_BUS_ADDRESS=$nobus "$A" --dnssd-backend daemon --state-dir "$T_TMP/nod" run --once --id dev-n1 \
	--mac 02:00:5e:00:d0:01 2>"$T_TMP/nod.log"
rc=$?
t_run "no avahi-daemon: agent exits 4 (retry later)" [ "$rc" = 4 ]
t_grep "no avahi-daemon: agent says so" 'cannot reach avahi-daemon' "$T_TMP/nod.log"

# --- the namespaces ------------------------------------------------------------
NA=idpdA$$
NB=idpdB$$
netns_pair_or_skip a "$NA" 10.77.1.1/24 b "$NB" 10.77.1.2/24 \
	"the DNS-SD discovery between namespaces did not run"
in_a() { in_ns a "$NA" "$@"; }
in_b() { in_ns b "$NB" "$@"; }

# --- idprovd in A publishes ----------------------------------------------------
in_a "$IDP_BIN/idprovd" --foreground --state-dir "$T_TMP/srv" --listen 10.77.1.1:0 \
	--server-name 10.77.1.1 --threads 2 --pending-retry-after 1s >"$T_TMP/srv.out" \
	2>"$T_TMP/srv.log" &
SRV_PID=$!
NETNS_PIDS+=("$SRV_PID")
t_run "server publishes _idprov._tcp" t_wait "$T_TMP/srv.log" 'event=dnssd.published'
port=$(grep -o 'event=http.listening addr=10.77.1.1:[0-9]*' "$T_TMP/srv.log" | head -1 |
	sed 's/.*://')
url=https://10.77.1.1:$port
ca_fp=$(openssl x509 -in "$T_TMP/srv/ca.pem" -outform DER | sha256sum | cut -c1-64)
t_grep "TXT fp is the CA certificate's SHA-256" \
	"event=dnssd.publishing type=_idprov._tcp name=\"idprov on [^\"]*\" port=$port fp=$ca_fp" \
	"$T_TMP/srv.log"
(in_a curl -sS --max-time 20 --cacert "$T_TMP/srv/ca.pem" "$url/v1/health") >"$T_TMP/health.json"
t_run "health's ca_fingerprint is the published fp" \
	[ "$(json_field ca_fingerprint <"$T_TMP/health.json")" = "$ca_fp" ]
token=$(cat "$T_TMP/srv/admin.token")
adm() { (IDPROV_ADMIN_TOKEN=$token in_a "$IDP_BIN/idprov-admin" --server "$url" \
	--ca "$T_TMP/srv/ca.pem" "$@"); }

# --- the agent in B discovers, pins from TXT, provisions -------------------------
in_b "$A" --state-dir "$T_TMP/ag" run --once --id dev-d1 --mac 02:00:5e:00:d1:01 \
	--wait 120 2>"$T_TMP/ag.log" &
apid=$!
NETNS_PIDS+=("$apid")
t_run "agent: pending seen" t_wait "$T_TMP/ag.log" 'event=provision.pending device=dev-d1'
t_grep "agent: found the server, not its own" "event=discover.found addr=10.77.1.1 port=$port fp=$ca_fp own=no" \
	"$T_TMP/ag.log"
t_grep "agent: chose the server's URL" "event=discover.chosen url=$url fp=$ca_fp" "$T_TMP/ag.log"
t_grep "agent: pinned the TXT fingerprint" "event=ca.pinned source=dns-sd fingerprint=$ca_fp" \
	"$T_TMP/ag.log"
t_run "admin approves" adm approve dev-d1 >/dev/null
wait "$apid"
t_run "agent: provisioned (exit 0)" [ $? = 0 ]
t_grep "agent: token exchanged" 'event=token.exchanged device=dev-d1' "$T_TMP/ag.log"
"$A" --state-dir "$T_TMP/ag" status --json --id dev-d1 >"$T_TMP/st.json" 2>/dev/null
t_run "status: server is the discovered URL" [ "$(json_field server <"$T_TMP/st.json")" = "$url" ]
t_run "status: pinned CA is the server's" [ "$(json_field pinned_ca <"$T_TMP/st.json")" = "$ca_fp" ]

# --- a second publisher naming another CA --------------------------------------
rogue_fp=$(printf 'rogue' | sha256sum | cut -c1-64)
# The server would suspend provisioning on seeing it (server/site.h,
# tests/integration/server/rogue.sh): allowed here, the agents are the subject.
t_run "admin allows the second CA" adm allow add "$rogue_fp" >/dev/null
in_b avahi-publish -s "idprov rogue" _idprov._tcp 8443 v=1 path=/v1 "fp=$rogue_fp" \
	>"$T_TMP/rogue.log" 2>&1 &
rpid=$!
NETNS_PIDS+=("$rpid")
t_run "rogue published by avahi-publish" t_wait "$T_TMP/rogue.log" 'Established under name'
# Precondition, not the subject: B's daemon knows both instances (avahi-browse
# stops when the daemon says it has reported all it knows; bounded retries).
both_known() {
	local _
	for _ in $(seq 1 30); do
		(in_b avahi-browse -rtp _idprov._tcp) >"$T_TMP/browse.out" 2>/dev/null
		grep -q "fp=$ca_fp" "$T_TMP/browse.out" && grep -q "fp=$rogue_fp" "$T_TMP/browse.out" &&
			return 0
	done
	return 1
}
t_run "B's avahi-daemon knows both instances" both_known
(in_b "$A" -v --state-dir "$T_TMP/ag2" run --once --id dev-d2 --mac 02:00:5e:00:d1:02 --wait 1 \
	2>"$T_TMP/ag2.log")
rc=$?
t_run "two CAs published: agent refuses (exit 8)" [ "$rc" = 8 ]
t_grep "two CAs: reported, not chosen" 'naming different CAs; not choosing' "$T_TMP/ag2.log"
t_refuse "two CAs: nothing pinned" test -e "$T_TMP/ag2/ca.pem"
(in_b "$A" --state-dir "$T_TMP/ag3" run --once --id dev-d3 --mac 02:00:5e:00:d1:03 --wait 1 \
	--ca-fingerprint "$ca_fp" 2>"$T_TMP/ag3.log")
rc=$?
t_run "trusted fingerprint: the real server chosen, pending (exit 5)" [ "$rc" = 5 ]
t_grep "trusted fingerprint: chose the real URL" "event=discover.chosen url=$url fp=$ca_fp" \
	"$T_TMP/ag3.log"
(in_b "$A" --state-dir "$T_TMP/ag4" run --once --id dev-d4 --mac 02:00:5e:00:d1:04 --wait 1 \
	--ca-fingerprint "$(printf 'other' | sha256sum | cut -c1-64)" 2>"$T_TMP/ag4.log")
rc=$?
t_run "no instance of the trusted CA: refused (exit 8)" [ "$rc" = 8 ]
t_grep "no instance of the trusted CA: reported" 'none with the trusted CA' "$T_TMP/ag4.log"
kill_pid "$rpid"
# A rogue whose address is link-local (no usable URL) still counts: it names
# another CA, so a new agent refuses rather than taking the other instance.
in_b avahi-publish -a "rogue-ll-$$.local" 169.254.7.7 >"$T_TMP/rogue-a.log" 2>&1 &
NETNS_PIDS+=("$!")
t_run "link-local rogue address published" t_wait "$T_TMP/rogue-a.log" 'Established under name'
in_b avahi-publish -s -H "rogue-ll-$$.local" "idprov rogue ll" _idprov._tcp 8443 v=1 path=/v1 \
	"fp=$rogue_fp" >"$T_TMP/rogue-ll.log" 2>&1 &
NETNS_PIDS+=("$!")
t_run "link-local rogue published" t_wait "$T_TMP/rogue-ll.log" 'Established under name'
(in_b "$A" -v --state-dir "$T_TMP/ag5" run --once --id dev-d5 --mac 02:00:5e:00:d1:05 --wait 1 \
	2>"$T_TMP/ag5.log")
rc=$?
t_run "link-local rogue: agent still refuses (exit 8)" [ "$rc" = 8 ]
t_grep "link-local rogue: seen with its address" 'event=discover.found addr=169.254.7.7 port=8443' \
	"$T_TMP/ag5.log"
t_grep "link-local rogue: reported, not chosen" 'naming different CAs; not choosing' \
	"$T_TMP/ag5.log"

# --- the server withdraws on stop; dnssd = off; no avahi-daemon ---------------
kill -TERM "$SRV_PID"
wait "$SRV_PID"
t_run "server stops cleanly" [ $? = 0 ]
t_grep "server withdrew its publication" 'event=dnssd.withdrawn instances=1' "$T_TMP/srv.log"
printf 'dnssd = off\n' >"$T_TMP/off.conf"
in_a "$IDP_BIN/idprovd" --foreground --config "$T_TMP/off.conf" --state-dir "$T_TMP/srv" \
	--listen 10.77.1.1:0 --threads 1 >/dev/null 2>"$T_TMP/off.log" &
opid=$!
NETNS_PIDS+=("$opid")
t_run "dnssd = off: server starts" t_wait "$T_TMP/off.log" 'event=http.listening'
t_grep "dnssd = off: logged" 'event=dnssd.off' "$T_TMP/off.log"
t_refuse "dnssd = off: nothing published" grep -q 'event=dnssd.publishing' "$T_TMP/off.log"
kill_pid "$opid"
DBUS_SYSTEM_BUS_ADDRESS=$nobus exec ip netns exec "$NA" "$IDP_BIN/idprovd" --foreground \
	--state-dir "$T_TMP/srv" --listen 10.77.1.1:0 --threads 1 --dnssd-backend=daemon \
	>/dev/null 2>"$T_TMP/nod.srv.log" &
npid=$!
NETNS_PIDS+=("$npid")
t_run "no avahi-daemon: server still starts" t_wait "$T_TMP/nod.srv.log" 'event=http.listening'
t_grep "no avahi-daemon: a warning" 'level=warn event=dnssd.unavailable .*cannot reach avahi-daemon' \
	"$T_TMP/nod.srv.log"
nport=$(grep -o 'event=http.listening addr=10.77.1.1:[0-9]*' "$T_TMP/nod.srv.log" | head -1 |
	sed 's/.*://')
health_a() { (in_a curl -sS --max-time 20 --cacert "$T_TMP/srv/ca.pem" -o /dev/null "$1/v1/health"); }
t_run "no avahi-daemon: server answers" health_a "https://10.77.1.1:$nport"
kill -TERM "$npid"
wait "$npid"
t_run "no avahi-daemon: server stops cleanly" [ $? = 0 ]
t_done
