#!/usr/bin/env bash
# busy_lock.sh - another process holds the database's write lock (the
# sqlite3 CLI in BEGIN IMMEDIATE; issue 16, "The database locked"): a write
# request waits for it off the event loop (event=request.waiting), so that
# on the same loop (--threads 1) GET /v1/health and an admin listing are
# answered while the provisioning request is still unanswered (an order of
# events, not a time); once the lock goes, the waiting request is decided;
# a lock held past the bound (5 s) is answered 503 unavailable with
# Retry-After; nothing is lost or written twice, and the database checks.
# Timer writes (the signed audit checkpoint) wait 20 ms at most too and are
# tried again later, never given up (the last section).
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

A=${IDP_BUILD:-$IDP_TOP/build/plain}/tools/idp_attack
st=$T_TMP/srv
t_run "server starts (one event loop)" srv_start "$st" --threads 1 --log-burst 0 \
	--throttle-per-minute 0 --throttle-device-burst 1000
db=$st/idprov.db
tok=$(cat "$st/admin.token")
"$A" key "$T_TMP/k1" p256 && "$A" key "$T_TMP/k2" p256 || t_fail "keys"

answered() { grep -q '^answer' "$1"; }
# provision_waits N KEY ID MAC: provision ID in the background (answer lines
# in $T_TMP/ID.out, PID in BG) while the lock is held; it must be the Nth
# request logged as waiting for the lock, and health must be answered on
# the same loop while it is still unanswered.
provision_waits() {
	local n=$1 out=$T_TMP/$3.out
	"$A" send "$SRV_PORT" "$2" provision "$3" "$4" good >"$out" 2>&1 &
	BG=$!
	T_CLEANUP+=("kill $BG 2>/dev/null")
	t_run "$3: waits for the lock (request.waiting logged)" \
		t_wait "$SRV_ERR" "event=request.waiting .*lock=busy" "$n"
	local code
	code=$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/health")
	t_run "$3: GET /v1/health answered 200 meanwhile, on the same loop" [ "$code" = 200 ]
}

# ---------------------------------------------------------------- lock released in time
t_run "lock held by the sqlite3 CLI" srv_lock_hold "$db"
provision_waits 1 "$T_TMP/k1" dev-lk1 02:00:5e:20:00:01
p1=$BG
code=$(srv_curl -o "$T_TMP/list.json" -w '%{http_code}' -H "Authorization: Bearer $tok" \
	"$SRV_URL/v1/admin/devices")
t_run "admin device listing answered 200 meanwhile" [ "$code" = 200 ]
t_refuse "the provision is still unanswered after both" answered "$T_TMP/dev-lk1.out"
t_run "and its client still waits" kill -0 "$p1"
srv_lock_release
wait "$p1"
t_grep "lock released: the provision is decided (pending)" '^answer 202 pending' "$T_TMP/dev-lk1.out"
t_grep "its request log line says it ran again" 'event=http.request .*path=/v1/provision status=202 runs=([2-9]|[1-9][0-9]+)( |$)' "$SRV_ERR"
t_run "the pending device is stored once" \
	[ "$(sqlite3 -readonly "$db" "SELECT count(*) FROM devices WHERE id = 'dev-lk1'")" = 1 ]

# ---------------------------------------------------------------- lock held past the bound
t_run "lock held again" srv_lock_hold "$db"
provision_waits 2 "$T_TMP/k2" dev-lk2 02:00:5e:20:00:02
p2=$BG
t_refuse "the second provision is unanswered when health answered" answered "$T_TMP/dev-lk2.out"
code=$(srv_curl -o "$T_TMP/nonce.json" -D "$T_TMP/nonce.h" -w '%{http_code}' -X POST \
	-H 'Content-Length: 0' "$SRV_URL/v1/nonce")
t_run "a nonce request waits out the bound: 503" [ "$code" = 503 ]
t_grep "503 unavailable" '"code":"unavailable"' "$T_TMP/nonce.json"
t_grep "with Retry-After" '^Retry-After: [1-9]' "$T_TMP/nonce.h"
ra=$(sed -n 's/^Retry-After: \([0-9]*\).*/\1/p' "$T_TMP/nonce.h" | tr -d '\r')
t_grep "retry_after in the body equals the header" "\"retry_after\":$ra}" "$T_TMP/nonce.json"
wait "$p2"
t_grep "the provision past the bound: 503 unavailable" '^answer 503 unavailable' "$T_TMP/dev-lk2.out"
t_grep "the refusal is logged with its cause" 'event=request.error .*store: busy: another process held the write lock' "$SRV_ERR"
t_run "nothing of them was stored" \
	[ "$(sqlite3 -readonly "$db" "SELECT count(*) FROM devices WHERE id = 'dev-lk2'")" = 0 ]
srv_lock_release
t_run "server still up" kill -0 "$SRV_PID"
"$A" send "$SRV_PORT" "$T_TMP/k2" provision dev-lk2 02:00:5e:20:00:02 good >"$T_TMP/p3.out" 2>&1
t_grep "lock gone: the retry is decided" '^answer 202 pending' "$T_TMP/p3.out"
t_run "each device stored once" \
	[ "$(sqlite3 -readonly "$db" "SELECT count(*) FROM devices WHERE id LIKE 'dev-lk%'")" = 2 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_run "integrity_check ok" [ "$(sqlite3 -readonly "$db" 'PRAGMA integrity_check')" = ok ]

# ---------------------------------------------------------------- timer writes
# A signed audit checkpoint (idprovd's main thread, on its timer: every
# second here) falls due while the lock is held: it waits 20 ms at most,
# logs audit.checkpoint_waiting and is tried again with a backoff, never
# given up; meanwhile the server answers health and an admin listing and
# its main thread takes a signal (SIGHUP: admin.reloaded); once the lock
# goes, the checkpoint is written.
st=$T_TMP/ck
t_run "server starts (a checkpoint every second)" srv_start "$st" --threads 1 --log-burst 0 \
	--audit-checkpoint-interval 1
db=$st/idprov.db
tok=$(cat "$st/admin.token")
ckpts() { sqlite3 -readonly "$db" "SELECT coalesce(max(n), 0) FROM audit_checkpoints"; }
t_run "a checkpoint signed on its timer" t_wait "$SRV_ERR" 'event=audit.checkpoint n=1 '
t_run "lock held" srv_lock_hold "$db"
t_run "a checkpoint due meets the lock: it waits" \
	t_wait "$SRV_ERR" 'event=audit.checkpoint_waiting tries=1 retry_in_s=1 '
n=$(ckpts)
code=$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/health")
t_run "GET /v1/health answered 200 meanwhile" [ "$code" = 200 ]
code=$(srv_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" \
	"$SRV_URL/v1/admin/devices")
t_run "admin device listing answered 200 meanwhile" [ "$code" = 200 ]
kill -HUP "$SRV_PID"
t_run "the main thread takes SIGHUP meanwhile (admin.reloaded)" \
	t_wait "$SRV_ERR" 'event=admin.reloaded signal=HUP'
t_run "and tries the checkpoint again, still locked" \
	t_wait "$SRV_ERR" 'event=audit.checkpoint_waiting tries=2 '
t_run "no checkpoint written while locked" [ "$(ckpts)" = "$n" ]
t_refuse "none given up" grep -q 'event=audit.checkpoint_failed' "$SRV_ERR"
t_run "the CLI still holds the lock" kill -0 "$SRV_HOLD_SAVED"
srv_lock_release
t_run "lock released: the waiting checkpoint is written" \
	t_wait "$SRV_ERR" "event=audit.checkpoint n=$((n + 1)) seq=[0-9]+ hash=[0-9a-f]+ tries=[2-9]"
t_run "and stored" [ "$(ckpts)" -gt "$n" ]

# An upload (its body spooled to a file as it arrives) that meets the lock
# runs again from the same file once the lock goes: imported, not 500.
samples=$IDP_TOP/samples/manifests
"$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$st/admin.token" \
	station add station-01 "$samples/sample-station-p256.pub" >/dev/null || t_fail "station"
printf 'bl-%04d,02:1b:00:00:00:%02x,SN-BL-%04d\n' 1 1 1 2 2 2 >"$T_TMP/bl.csv"
"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" --batch bl-1 \
	--station station-01 --seq 1 --product sx1 --devices "$T_TMP/bl.csv" --format csv \
	--out "$T_TMP/bl.manifest" || t_fail "manifest"
t_run "lock held again" srv_lock_hold "$db"
srv_curl -o "$T_TMP/import.json" -w '%{http_code}' -H "Authorization: Bearer $tok" \
	-H 'Content-Type: application/vnd.idprov.manifest' \
	-H "Idprov-Signature: $(base64 -w0 "$T_TMP/bl.manifest.sig")" \
	--data-binary @"$T_TMP/bl.manifest" "$SRV_URL/v1/admin/import" >"$T_TMP/import.code" &
imp=$!
T_CLEANUP+=("kill $imp 2>/dev/null")
t_run "an import waits for the lock" \
	t_wait "$SRV_ERR" 'event=request.waiting .*path=/v1/admin/import lock=busy'
srv_lock_release
wait "$imp"
t_run "lock released: the import is created from its spooled body (201)" \
	[ "$(cat "$T_TMP/import.code")" = 201 ]
t_refuse "no spool spent" grep -q 'upload spool: spent' "$SRV_ERR"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_run "integrity_check ok" [ "$(sqlite3 -readonly "$db" 'PRAGMA integrity_check')" = ok ]
t_done
