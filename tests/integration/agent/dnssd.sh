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
kill_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
# Everything started is stopped by PID before the namespaces are deleted
# (T_CLEANUP runs in order, so one entry does both, in that order).
PIDS=()
NETNS=()
teardown() {
	local p n
	for p in "${PIDS[@]}"; do kill_pid "$p"; done
	for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
	[ -z "${VA:-}" ] || ip link del "$VA" 2>/dev/null || true # if never moved
}
T_CLEANUP+=("teardown")
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }

# --- without avahi-daemon (runs everywhere) ------------------------------------
nobus=unix:path=$T_TMP/no-such-bus
DBUS_SYSTEM_BUS_ADDRESS=$nobus "$A" --state-dir "$T_TMP/nod" run --once --id dev-n1 \
	--mac 02:00:5e:00:d0:01 2>"$T_TMP/nod.log"
rc=$?
t_run "no avahi-daemon: agent exits 4 (retry later)" [ "$rc" = 4 ]
t_grep "no avahi-daemon: agent says so" 'cannot reach avahi-daemon' "$T_TMP/nod.log"

# --- the namespaces ------------------------------------------------------------
NA=idpdA$$
NB=idpdB$$
VA=idpvA$$
VB=idpvB$$
if ! ip netns add "$NA" 2>"$T_TMP/netns.err"; then
	echo "skip - network namespaces not allowed here ($(head -c 200 "$T_TMP/netns.err")):" \
		"the DNS-SD discovery between namespaces did not run"
	t_done
fi
NETNS+=("$NA")
t_run "namespace B created" ip netns add "$NB"
NETNS+=("$NB")
t_run "veth pair created" ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$NA"
ip link set "$VB" netns "$NB"
ip -n "$NA" addr add 10.77.1.1/24 dev "$VA"
ip -n "$NB" addr add 10.77.1.2/24 dev "$VB"
for n in "$NA" "$NB"; do
	ip -n "$n" link set lo up
done
ip -n "$NA" link set "$VA" up
ip -n "$NB" link set "$VB" up

# bus NAME NS: a dbus-daemon for namespace NS on $T_TMP/NAME.bus; sets BUS_PID.
bus() {
	cat >"$T_TMP/$1.dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$T_TMP/$1.bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
	ip netns exec "$2" dbus-daemon --nofork --nosyslog --config-file="$T_TMP/$1.dbus.conf" \
		>"$T_TMP/$1.dbus.log" 2>&1 &
	BUS_PID=$!
	PIDS+=("$BUS_PID")
	local _
	for _ in $(seq 1 100); do
		[ -S "$T_TMP/$1.bus" ] && return 0
		sleep 0.1
	done
	return 1
}
# avahi NAME NS IFACE: an avahi-daemon on that bus, serving IFACE only, with
# its /run/avahi-daemon on a tmpfs of its own (over /run in the namespace's
# private mount namespace, so the host's /run is not touched).
avahi() {
	cat >"$T_TMP/$1.avahi.conf" <<EOF
[server]
host-name=idpd-$1-$$
use-ipv4=yes
use-ipv6=no
allow-interfaces=$3
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
EOF
	DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T_TMP/$1.bus ip netns exec "$2" sh -c \
		'mount -t tmpfs -o mode=0755 idpd-run /run && mkdir /run/avahi-daemon &&
		 exec avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title -f "$0"' \
		"$T_TMP/$1.avahi.conf" >"$T_TMP/$1.avahi.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	t_wait "$T_TMP/$1.avahi.log" 'Server startup complete'
}
t_run "A: dbus-daemon" bus a "$NA"
t_run "B: dbus-daemon" bus b "$NB"
t_run "A: avahi-daemon" avahi a "$NA" "$VA"
t_run "B: avahi-daemon" avahi b "$NB" "$VB"
# in_a / in_b CMD...: run CMD in namespace A / B with its bus. They exec, so
# that "in_a CMD &" makes $! the command's own PID (ip netns exec execs too).
in_a() { DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T_TMP/a.bus exec ip netns exec "$NA" "$@"; }
in_b() { DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T_TMP/b.bus exec ip netns exec "$NB" "$@"; }

# --- idprovd in A publishes ----------------------------------------------------
in_a "$IDP_BIN/idprovd" --foreground --state-dir "$T_TMP/srv" --listen 10.77.1.1:0 \
	--server-name 10.77.1.1 --threads 2 --pending-retry-after 1s >"$T_TMP/srv.out" \
	2>"$T_TMP/srv.log" &
SRV_PID=$!
PIDS+=("$SRV_PID")
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
PIDS+=("$apid")
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
in_b avahi-publish -s "idprov rogue" _idprov._tcp 8443 v=1 path=/v1 "fp=$rogue_fp" \
	>"$T_TMP/rogue.log" 2>&1 &
rpid=$!
PIDS+=("$rpid")
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
PIDS+=("$!")
t_run "link-local rogue address published" t_wait "$T_TMP/rogue-a.log" 'Established under name'
in_b avahi-publish -s -H "rogue-ll-$$.local" "idprov rogue ll" _idprov._tcp 8443 v=1 path=/v1 \
	"fp=$rogue_fp" >"$T_TMP/rogue-ll.log" 2>&1 &
PIDS+=("$!")
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
PIDS+=("$opid")
t_run "dnssd = off: server starts" t_wait "$T_TMP/off.log" 'event=http.listening'
t_grep "dnssd = off: logged" 'event=dnssd.off' "$T_TMP/off.log"
t_refuse "dnssd = off: nothing published" grep -q 'event=dnssd.publishing' "$T_TMP/off.log"
kill_pid "$opid"
DBUS_SYSTEM_BUS_ADDRESS=$nobus exec ip netns exec "$NA" "$IDP_BIN/idprovd" --foreground \
	--state-dir "$T_TMP/srv" --listen 10.77.1.1:0 --threads 1 >/dev/null 2>"$T_TMP/nod.srv.log" &
npid=$!
PIDS+=("$npid")
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
