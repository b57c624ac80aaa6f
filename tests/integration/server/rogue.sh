#!/usr/bin/env bash
# rogue.sh - rogue server detection and the provisioning suspension, for real.
# Loopback part (runs everywhere): `idprov-admin suspend` makes POST
# /v1/provision answer 503 `suspended` with the reason and Retry-After; the
# suspension survives a restart; `resume` lets provisioning go on.
# Namespace part: namespaces this test creates (veth pairs, each with its own
# dbus-daemon and avahi-daemon, tests/netns.inc): idprovd publishes and
# watches _idprov._tcp in A; its own instance is not a rogue; a second
# publisher in B (avahi-publish, not project code) that is on the allow-list
# changes nothing; one that is not suspends provisioning at once (503
# suspended, flag, audit entry, log line, metric); resume is refused while it
# is still published, and works once it is withdrawn; then a device
# provisions. The watch survives its avahi-daemon going away and coming back. Where namespaces are not allowed the test says so and only the
# loopback part is counted.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"
. "$IDP_TOP/tests/netns.inc"

AG=$IDP_BIN/idprov-agent
nobus=unix:path=$T_TMP/no-such-bus
# provision URL CA: POST an empty request; prints the status code, body in $T_TMP/prov.
provision() {
	curl -sS --max-time 20 --cacert "$2" -o "$T_TMP/prov" -D "$T_TMP/prov.h" -w '%{http_code}' \
		-H 'Content-Type: application/json' -d '{}' "$1/v1/provision"
}

# --- loopback: suspend, restart, resume ------------------------------------------
st=$T_TMP/lo
export DBUS_SYSTEM_BUS_ADDRESS=$nobus
t_run "server starts (no avahi-daemon)" srv_start "$st" --dnssd-backend=daemon
t_grep "no avahi-daemon: rogue detection off, said so" 'event=dnssd.watch_failed .*rogue detection off' "$SRV_ERR"
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$st/admin.token" --json "$@" >"$T_TMP/cli" 2>"$T_TMP/cli.err"; }
metric() { srv_curl -H "Authorization: Bearer $(cat "$st/admin.token")" "$SRV_URL/metrics" | grep "^$1 "; }
t_run "not suspended: provision parses the request (400)" [ "$(provision "$SRV_URL" "$SRV_CA")" = 400 ]
t_run "metric idprov_suspended 0" [ "$(metric idprov_suspended)" = "idprov_suspended 0" ]
t_run "suspend --reason" adm suspend --reason "maintenance window"
t_grep "suspend: answered" '"ok":true,"suspended":true' "$T_TMP/cli"
t_run "suspended: provision 503" [ "$(provision "$SRV_URL" "$SRV_CA")" = 503 ]
t_grep "suspended: code suspended with the reason" '"code":"suspended","message":"provisioning suspended until an administrator resumes it: maintenance window","retry_after":300' "$T_TMP/prov"
t_grep "suspended: Retry-After header" '^Retry-After: 300' "$T_TMP/prov.h"
code=$(srv_curl -o "$T_TMP/exch" -w '%{http_code}' -H 'Content-Type: application/json' -d '{}' "$SRV_URL/v1/token/exchange")
t_run "suspended: token exchange 503 too" [ "$code" = 503 ]
code=$(srv_curl -o /dev/null -w '%{http_code}' -X POST "$SRV_URL/v1/nonce")
t_run "suspended: nonces still served (200)" [ "$code" = 200 ]
t_run "metric idprov_suspended 1" [ "$(metric idprov_suspended)" = "idprov_suspended 1" ]
adm suspend
t_run "suspend twice: refused (exit 1)" [ $? = 1 ]
t_grep "suspend twice: named" 'refused \(409 conflict\): provisioning is suspended already' "$T_TMP/cli.err"
t_run "audit list" adm audit
t_grep "audit entry admin.suspended with the reason" '"event":"admin.suspended","subject":null,"detail":"maintenance window"' "$T_TMP/cli"
t_grep "log line" 'event=admin.done .*action=suspend' "$SRV_ERR"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_run "server starts again" srv_start "$st" --dnssd-backend=daemon
t_grep "restart: still suspended, said at start" 'level=warn event=site.suspended_at_start .*reason="maintenance window"' "$SRV_ERR"
t_run "restart: provision still 503" [ "$(provision "$SRV_URL" "$SRV_CA")" = 503 ]
t_run "suspension" adm suspension
t_grep "suspension: shows the reason" '"suspended":true,"reason":"maintenance window"' "$T_TMP/cli"
code=$(srv_curl -o /dev/null -w '%{http_code}' -X POST -d '{}' "$SRV_URL/v1/admin/resume")
t_run "resume without credential: 401" [ "$code" = 401 ]
t_run "resume" adm resume
t_grep "resume: answered" '"ok":true,"suspended":false' "$T_TMP/cli"
t_run "resumed: provision parses again (400)" [ "$(provision "$SRV_URL" "$SRV_CA")" = 400 ]
adm resume
t_run "resume twice: refused (exit 1)" [ $? = 1 ]
t_refuse "allow add a bad entry: refused" adm allow add "not an entry"
t_grep "bad entry named" 'entry: not HOST:PORT' "$T_TMP/cli.err"
srv_stop
t_run "server stops cleanly again" [ "$SRV_RC" = 0 ]
unset DBUS_SYSTEM_BUS_ADDRESS

# --- the namespaces ------------------------------------------------------------------
NA=idprA$$
NB=idprB$$
netns_pair_or_skip a "$NA" 10.78.1.1/24 b "$NB" 10.78.1.2/24 \
	"the rogue publisher part did not run; the loopback part above did"
VA=$NETNS_VA
AVAHI_A=$NETNS_AVAHI_A

sa=$T_TMP/srv
(in_ns a "$NA" "$IDP_BIN/idprovd" --foreground --state-dir "$sa" --listen 10.78.1.1:0 \
	--server-name 10.78.1.1 --threads 2 --pending-retry-after 1s) >/dev/null 2>"$T_TMP/srv.log" &
SPID=$!
NETNS_PIDS+=("$SPID")
t_run "server publishes" t_wait "$T_TMP/srv.log" 'event=dnssd.published'
t_run "server watches" t_wait "$T_TMP/srv.log" 'event=dnssd.watching type=_idprov._tcp'
port=$(grep -o 'event=http.listening addr=10.78.1.1:[0-9]*' "$T_TMP/srv.log" | head -1 | sed 's/.*://')
url=https://10.78.1.1:$port
ca_fp=$(openssl x509 -in "$sa/ca.pem" -outform DER | sha256sum | cut -c1-64)
tok=$sa/admin.token
nadm() { (in_ns a "$NA" "$IDP_BIN/idprov-admin" --server "$url" --ca "$sa/ca.pem" --token-file "$tok" --json "$@") >"$T_TMP/cli" 2>"$T_TMP/cli.err"; }
nprov() { (in_ns a "$NA" curl -sS --max-time 20 --cacert "$sa/ca.pem" -o "$T_TMP/prov" -w '%{http_code}' \
	-H 'Content-Type: application/json' -d '{}' "$url/v1/provision"); }
nmetric() { (in_ns a "$NA" curl -sS --max-time 20 --cacert "$sa/ca.pem" -H "Authorization: Bearer $(cat "$tok")" \
	"$url/metrics") | grep "^$1 "; }

# A second server the site knows: allow-listed by host name and port.
t_run "allow add B's second server" nadm allow add "idpd-b-$$.local:9443"
other_fp=$(printf 'second' | sha256sum | cut -c1-64)
(in_ns b "$NB" avahi-publish -s "idprov second" _idprov._tcp 9443 v=1 path=/v1 "fp=$other_fp") \
	>"$T_TMP/second.log" 2>&1 &
NETNS_PIDS+=("$!")
t_run "second server published by avahi-publish" t_wait "$T_TMP/second.log" 'Established under name'
t_run "server saw it as allowed" t_wait "$T_TMP/srv.log" "event=site.allowed name=\"idprov second\" host=\"idpd-b-$$.local\" addr=10.78.1.2 port=9443 fp=$other_fp"
t_run "allowed publisher: not suspended (400)" [ "$(nprov)" = 400 ]
t_refuse "own instance not a rogue: no site.rogue yet" grep -q 'event=site.rogue' "$T_TMP/srv.log"

# A rogue: another CA's fingerprint, not on the list.
rogue_fp=$(printf 'rogue' | sha256sum | cut -c1-64)
t0=$(date +%s%3N)
(in_ns b "$NB" avahi-publish -s "idprov rogue" _idprov._tcp 8443 v=1 path=/v1 "fp=$rogue_fp") \
	>"$T_TMP/rogue.log" 2>&1 &
RPID=$!
NETNS_PIDS+=("$RPID")
t_run "rogue published by avahi-publish" t_wait "$T_TMP/rogue.log" 'Established under name'
t_run "server suspended provisioning" t_wait "$T_TMP/srv.log" 'level=warn event=site.suspended reason='
# A figure, not an assertion: from starting avahi-publish to the suspension.
ts=$(grep -o '^ts=[^ ]* level=warn event=site.suspended ' "$T_TMP/srv.log" | head -1 | cut -d' ' -f1 | cut -c4-)
[ -z "$ts" ] || echo "# measured: rogue published -> suspended in $(($(date -d "$ts" +%s%3N) - t0)) ms"
t_grep "log line names the rogue" "level=warn event=site.rogue name=\"idprov rogue\" host=\"idpd-b-$$.local\" addr=10.78.1.2 port=8443 fp=$rogue_fp own=no" "$T_TMP/srv.log"
t_run "rogue: provision 503" [ "$(nprov)" = 503 ]
t_grep "rogue: suspended, reason names it" "\"code\":\"suspended\",\"message\":\"provisioning suspended until an administrator resumes it: rogue DNS-SD publisher: name=.*idprov rogue.* addr=10.78.1.2 port=8443 fp=$rogue_fp\"" "$T_TMP/prov"
t_run "flags" nadm flags
t_grep "rogue: flag rogue-server" '"kind":"rogue-server"' "$T_TMP/cli"
t_run "audit list" nadm audit
t_grep "rogue: audit entry site.suspended" "\"event\":\"site.suspended\",\"subject\":null,\"detail\":\"rogue DNS-SD publisher: .*port=8443 fp=$rogue_fp\"" "$T_TMP/cli"
t_run "rogue: metric idprov_suspended 1" [ "$(nmetric idprov_suspended)" = "idprov_suspended 1" ]
t_run "suspension" nadm suspension
t_grep "suspension: the rogue listed, not allowed" "\"name\":\"idprov rogue\",\"host\":\"idpd-b-$$.local\",\"addr\":\"10.78.1.2\",\"port\":8443,\"fp\":\"$rogue_fp\",\"allowed\":false" "$T_TMP/cli"
nadm resume
t_run "resume while the rogue is published: refused (exit 1)" [ $? = 1 ]
t_grep "resume refusal names the rogue" "refused \(409 conflict\): resume: a rogue publisher is still there: \"idprov rogue\" at 10.78.1.2 port 8443" "$T_TMP/cli.err"
t_run "still suspended" [ "$(nprov)" = 503 ]
netns_kill "$RPID"
t_run "server saw the rogue withdrawn" t_wait "$T_TMP/srv.log" 'event=site.gone name="idprov rogue"'
t_run "resume" nadm resume
t_run "resumed: metric idprov_suspended 0" [ "$(nmetric idprov_suspended)" = "idprov_suspended 0" ]
t_grep "resume audited" 'event=admin.done .*action=resume' "$T_TMP/srv.log"
# A device in B provisions (pending: unknown to any manifest) against the real server.
(in_ns b "$NB" "$AG" --state-dir "$T_TMP/ag" run --once --id dev-r1 --mac 02:00:5e:00:e1:01 \
	--server "$url" --ca-fingerprint "$ca_fp" --wait 1 2>"$T_TMP/ag.log")
rc=$?
t_run "resumed: a device provisions (pending, exit 5)" [ "$rc" = 5 ]
t_grep "resumed: the agent got a decision, no suspension" 'provision: still pending' "$T_TMP/ag.log"

# A's avahi-daemon goes away and comes back: the watch waits, then browses
# again, and a rogue published after that still suspends provisioning.
netns_kill "$AVAHI_A"
t_run "daemon gone: the watch says so" t_wait "$T_TMP/srv.log" 'level=warn event=dnssd.watch_failed error="avahi-daemon not reachable'
t_run "A: avahi-daemon again" avahi a "$NA" "$VA"
# wait_count PATTERN N: until the server log has N lines matching PATTERN (30 s at most).
wait_count() {
	local _
	for _ in $(seq 1 300); do
		[ "$(grep -cE -- "$1" "$T_TMP/srv.log")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
t_run "daemon back: watching again" wait_count 'event=dnssd.watching' 2
t_run "daemon back: published again" wait_count 'event=dnssd.published' 2
# browse_a: B's avahi-browse resolves A's instance (its address and port);
# tried up to 30 times, as announcements take a moment to arrive.
browse_a() {
	local _
	for _ in $(seq 1 30); do
		(in_ns b "$NB" avahi-browse -rpt _idprov._tcp) 2>/dev/null >"$T_TMP/browse.out"
		grep -q "^=;.*;_idprov._tcp;local;.*;10.78.1.1;$port;" "$T_TMP/browse.out" && return 0
		sleep 1
	done
	return 1
}
t_run "daemon back: B's avahi-browse finds the server again" browse_a
# The second rogue appears while another process (the sqlite3 CLI) holds
# the database's write lock: the watch does not sit in SQLite's busy wait
# nor drop the suspension; it queues it (site.waiting), the server answers
# meanwhile, and the suspension is written once the lock goes.
t_run "the sqlite3 CLI holds the write lock" srv_lock_hold "$sa/idprov.db"
(in_ns b "$NB" avahi-publish -s "idprov rogue 2" _idprov._tcp 8444 v=1 path=/v1 "fp=$rogue_fp") \
	>"$T_TMP/rogue2.log" 2>&1 &
NETNS_PIDS+=("$!")
t_run "second rogue published" t_wait "$T_TMP/rogue2.log" 'Established under name'
t_run "locked: the watch queues its suspension (site.waiting)" \
	wait_count 'level=warn event=site.waiting queued=1 ' 1
t_run "locked: health answered meanwhile" [ "$( (in_ns a "$NA" curl -sS --max-time 20 \
	--cacert "$sa/ca.pem" -o /dev/null -w '%{http_code}' "$url/v1/health") )" = 200 ]
t_run "locked: an admin device listing answered meanwhile" nadm devices
t_run "locked: the suspension is not written yet" nadm suspension
t_grep "locked: not suspended yet" '"suspended":false' "$T_TMP/cli"
t_refuse "locked: nothing dropped" grep -q 'suspension not recorded' "$T_TMP/srv.log"
srv_lock_release
t_run "after the daemon's return: suspended again" wait_count 'level=warn event=site.suspended reason=' 2
t_grep "written once the lock went" 'level=warn event=site.suspended reason=.*idprov rogue 2.* waited=yes' "$T_TMP/srv.log"
t_grep "suspended again: the second rogue named" 'event=site.rogue name="idprov rogue 2"' "$T_TMP/srv.log"
t_run "suspended again: provision 503" [ "$(nprov)" = 503 ]
kill -TERM "$SPID"
wait "$SPID"
t_run "server stops cleanly" [ $? = 0 ]
t_done
