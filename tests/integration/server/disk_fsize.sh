#!/usr/bin/env bash
# shellcheck disable=SC2034 # SRV_PREFIX is read by srv_start (idprovd.inc)
# disk_fsize.sh - the file size limit as a full disk (issue 16, "Disk full",
# the RLIMIT_FSIZE variant; no root needed): idprovd runs under `prlimit
# --fsize=N` (util-linux), so a write that would take the database's WAL
# past N bytes fails with EFBIG (idprovd ignores SIGXFSZ). Such writes are
# refused 503 storage_full with Retry-After, reads are answered, nothing
# is corrupted (integrity_check, audit verify) and the decision answered
# before is intact; restarted with a higher limit, service resumes.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

A=${IDP_BUILD:-$IDP_TOP/build/plain}/tools/idp_attack
st=$T_TMP/fs
LIMIT=409600 # bytes: the new database and its WAL take about 200 KiB
SRV_PREFIX="prlimit --fsize=$LIMIT"
t_run "server starts with RLIMIT_FSIZE $LIMIT" srv_start "$st" --throttle-per-minute 0 \
	--log-burst 0 --throttle-device-burst 1000
t_run "the limit is the server's" \
	grep -Eq "^Max file size +$LIMIT +$LIMIT " "/proc/$SRV_PID/limits"
db=$st/idprov.db
q() { sqlite3 -readonly "$db" "$1"; }
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" \
	--token-file "$st/admin.token" "$@"; }
verify() { adm audit verify >"$T_TMP/verify.out"; }
"$A" key "$T_TMP/k1" p256 && "$A" key "$T_TMP/k2" p256 || t_fail "keys"

# A decision answered before the limit is reached.
"$A" send "$SRV_PORT" "$T_TMP/k1" provision dev-f1 02:00:5e:31:00:01 good >/dev/null 2>&1
adm approve dev-f1 >/dev/null 2>&1 || t_fail "approve dev-f1"
"$A" send "$SRV_PORT" "$T_TMP/k1" provision dev-f1 02:00:5e:31:00:01 good >"$T_TMP/f1.out" 2>&1
t_grep "dev-f1 provisioned before the limit" '^answer 200 approved' "$T_TMP/f1.out"
f1_before=$(q "SELECT state || '/' || (SELECT count(*) FROM tokens WHERE device_id = 'dev-f1') FROM devices WHERE id = 'dev-f1'")

# ---------------------------------------------------------------- at the limit
srv_until_full "nonces until the WAL reaches the limit"
t_run "the WAL stopped at the limit" [ "$(stat -c %s "$db-wal")" -le "$LIMIT" ]
"$A" send "$SRV_PORT" "$T_TMP/k2" provision dev-f2 02:00:5e:31:00:02 good >"$T_TMP/f2.out" 2>&1
t_grep "a provisioning request: 503 storage_full" '^answer 503 storage_full' "$T_TMP/f2.out"
t_run "nothing of it stored" [ "$(q "SELECT count(*) FROM devices WHERE id = 'dev-f2'")" = 0 ]
t_run "reads still answered: health 200" \
	[ "$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/health")" = 200 ]
listing() { adm --json devices >"$T_TMP/devices.json"; }
t_run "reads still answered: the device listing" listing
t_grep "which names dev-f1" '"id":"dev-f1"' "$T_TMP/devices.json"
t_grep "the cause is logged, named (event=store.full, File too large)" \
	'event=store.full .*refused=.*error="store: [a-z ]*: disk I/O error: File too large"' "$SRV_ERR"
t_refuse "no 500 answered" grep -q 'status=500' "$SRV_ERR"
t_run "server still up" kill -0 "$SRV_PID"
t_run "integrity_check ok beside the server" [ "$(q 'PRAGMA integrity_check')" = ok ]
t_run "the decision answered before is intact" \
	[ "$(q "SELECT state || '/' || (SELECT count(*) FROM tokens WHERE device_id = 'dev-f1') FROM devices WHERE id = 'dev-f1'")" = "$f1_before" ]
srv_stop
t_run "server stops (exit 0)" [ "$SRV_RC" = 0 ]

# ---------------------------------------------------------------- a higher limit
SRV_PREFIX="prlimit --fsize=$((64 * 1024 * 1024))"
t_run "server restarts with a 64 MiB limit" srv_start "$st" --throttle-per-minute 0 \
	--log-burst 0 --throttle-device-burst 1000
t_run "a nonce is answered 200" [ "$(srv_nonce)" = 200 ]
"$A" send "$SRV_PORT" "$T_TMP/k2" provision dev-f2 02:00:5e:31:00:02 good >"$T_TMP/f2.out" 2>&1
t_grep "the provisioning request is decided" '^answer 202 pending' "$T_TMP/f2.out"
t_run "the decision answered before is still intact" \
	[ "$(q "SELECT state || '/' || (SELECT count(*) FROM tokens WHERE device_id = 'dev-f1') FROM devices WHERE id = 'dev-f1'")" = "$f1_before" ]
t_run "idprov-admin audit verify" verify
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_run "integrity_check ok" [ "$(q 'PRAGMA integrity_check')" = ok ]
t_done
