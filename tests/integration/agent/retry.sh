#!/usr/bin/env bash
# retry.sh - idprov-agent tries a request again by itself only when no
# decision came back (device-agent/agent.h, attempts): after 503
# unavailable with Retry-After (another process, the sqlite3 CLI, holds the
# database's write lock past the server's 5 s bound) one `run --once` tries
# again on a new connection and ends provisioned; a refusal (key_mismatch,
# a decision) is never tried again, nor a server that is not there with
# --attempts 1; a bad --attempts is a usage error. Assertions are on the
# server's request log and the agent's exit code and log, not on times (the
# crash between commit and answer: tests/integration/server/provision_retry.sh).
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"

A=${IDP_BUILD:-$IDP_TOP/build/plain}/tools/idp_attack
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T_TMP/no-such-bus
st=$T_TMP/srv
t_run "server starts" srv_start "$st" --dnssd=off --throttle-per-minute 0 \
	--throttle-device-burst 1000
db=$st/idprov.db
q() { sqlite3 -readonly "$db" "$1"; }
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" \
	--token-file "$st/admin.token" "$@" >/dev/null; }
# agent DIR ID MAC [ARGS...]: one `run --once`; its log in DIR.log
agent() {
	local dir=$1 id=$2 mac=$3
	shift 3
	timeout 120 "$IDP_BIN/idprov-agent" --state-dir "$dir" --id "$id" --mac "$mac" \
		--server "$SRV_URL" --ca "$SRV_CA" "$@" run --once --wait 1 2>>"$dir.log"
}
provisions() { grep -c 'event=http.request .*path=/v1/provision ' "$SRV_ERR"; }

# ---------------------------------------------------------------- a refusal
"$A" key "$T_TMP/k1" p256 || t_fail "key"
"$A" send "$SRV_PORT" "$T_TMP/k1" provision dev-rf 02:00:5e:50:00:01 good >/dev/null 2>&1
t_run "dev-rf known with another key (approved)" adm approve dev-rf
n=$(provisions)
agent "$T_TMP/rf" dev-rf 02:00:5e:50:00:01
rc=$?
t_run "key_mismatch: the agent exits 6 (rejected)" [ "$rc" = 6 ]
t_run "one provision request reached the server, not retried" [ "$(provisions)" = $((n + 1)) ]
t_refuse "no retry logged" grep -q 'event=request.retry' "$T_TMP/rf.log"

# ---------------------------------------------------------------- 503 unavailable
agent "$T_TMP/lk" dev-lk 02:00:5e:50:00:02
t_run "dev-lk: pending, then approved" adm approve dev-lk
n=$(provisions)
t_run "the sqlite3 CLI holds the write lock" srv_lock_hold "$db"
agent "$T_TMP/lk" dev-lk 02:00:5e:50:00:02 &
ag=$!
T_CLEANUP+=("kill $ag 2>/dev/null")
t_run "the server answers the provision 503 once its bound passed" \
	t_wait "$SRV_ERR" 'event=http.request .*path=/v1/provision status=503' 1
srv_lock_release
wait "$ag"
t_run "one agent run ends provisioned after the lock goes (exit 0)" [ $? = 0 ]
t_grep "it tried again after 503 unavailable, honouring Retry-After" \
	'event=request.retry .*device=dev-lk request=provision attempt=2 of=3 after=503_unavailable retry_after=[1-9]' \
	"$T_TMP/lk.log"
t_run "two provision requests: the 503 and the approved retry" [ "$(provisions)" = $((n + 2)) ]
t_grep "the retry was approved" 'event=http.request .*path=/v1/provision status=200' "$SRV_ERR"
t_run "dev-lk: one live token, a device token" \
	[ "$(q "SELECT count(*) || '/' || sum(kind = 'device') FROM tokens WHERE device_id = 'dev-lk' AND used = 0 AND revoked_at = 0")" = 1/1 ]

# ---------------------------------------------------------------- bounds
t_run "--attempts 0: usage error (exit 2)" \
	[ "$(agent "$T_TMP/u" dev-u 02:00:5e:50:00:03 --attempts 0; echo $?)" = 2 ]
t_run "--attempts 11: usage error (exit 2)" \
	[ "$(agent "$T_TMP/u" dev-u 02:00:5e:50:00:03 --attempts 11; echo $?)" = 2 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
agent "$T_TMP/gone" dev-g 02:00:5e:50:00:04 --attempts 1
rc=$?
t_run "no server, --attempts 1: exit 4 (server unreachable)" [ "$rc" = 4 ]
t_refuse "and no retry" grep -q 'event=request.retry' "$T_TMP/gone.log"
agent "$T_TMP/gone2" dev-g 02:00:5e:50:00:04 --attempts 2
t_grep "no server, --attempts 2: one retry after the refused connection" \
	'event=request.retry .*request=provision attempt=2 of=2 after=' "$T_TMP/gone2.log"
t_run "integrity_check ok" [ "$(q 'PRAGMA integrity_check')" = ok ]
t_done
