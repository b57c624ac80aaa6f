#!/usr/bin/env bash
# shellcheck disable=SC2034 # SRV_PREFIX is read by srv_start (idprovd.inc)
# disk_fsize.sh - the file size limit as a full disk (issue 16, "Disk full",
# the RLIMIT_FSIZE variant; no root needed): idprovd runs under `prlimit
# --fsize=N` (util-linux), so a write that would take the database's WAL
# past N bytes fails with EFBIG (idprovd ignores SIGXFSZ). Such writes are
# refused 503 storage_full with Retry-After, reads are answered, nothing
# is corrupted (integrity_check, audit verify) and the decision answered
# before is intact; restarted with a higher limit, service resumes.
# Then, on a new state directory, a manifest upload larger than the limit
# meets it in its spool file (server/spool.h) while the database has room:
# refused the same way (503 storage_full, the cause logged as store.full,
# not 500 upload.spool), the spool file gone, nothing imported, the server
# serving on; both upload clients retry, then give up naming storage full;
# with a higher limit the same upload is imported.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"
. "$(dirname "$0")/../station/station.inc"

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
t_grep "... intact" '^intact +yes$' "$T_TMP/verify.out"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_run "integrity_check ok" [ "$(q 'PRAGMA integrity_check')" = ok ]

# ---------------------------------------------------------------- an upload's spool at the limit
samples=$IDP_TOP/samples/manifests
st=$T_TMP/spool # adm, q and verify now use this server's state
db=$st/idprov.db
pki=$T_TMP/pki
sst=$T_TMP/station
mkdir -p "$sst/batches"
t_run "station PKI made" st_pki "$pki" station-01
SRV_PREFIX="prlimit --fsize=$LIMIT"
t_run "a new server starts with RLIMIT_FSIZE $LIMIT" srv_start "$st" --throttle-per-minute 0 \
	--log-burst 0 --station-ca "$pki/ca.pem"
t_run "station-01 trusted" adm station add station-01 "$samples/sample-station-p256.pub" \
	>"$T_TMP/station.out"
# manifest BATCH SEQ N [PREV]: BATCH's signed manifest of N devices, in the
# station's state
manifest() {
	awk -v n="$3" -v p="$1-" -v s="$2" 'BEGIN { for (i = 1; i <= n; i++)
		printf "%s%06d,02:1f:%02x:00:%02x:%02x,SN-%s%06d\n", p, i, s, int(i / 256) % 256,
			i % 256, p, i }' >"$T_TMP/$1.csv"
	"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" --batch "$1" \
		--station station-01 --seq "$2" --product sx1 --devices "$T_TMP/$1.csv" --format csv \
		${4:+--prev "$sst/batches/$4.manifest"} --out "$sst/batches/$1.manifest" >/dev/null
}
# upload BATCH [ARGS...]: idprov-station upload of BATCH, output in $T_TMP/BATCH.station
upload() {
	local b=$1
	shift
	"$IDP_BIN/idprov-station" upload --state "$sst" --server "$SRV_URL" --ca "$SRV_CA" \
		--client-cert "$pki/client.pem" --client-key "$pki/client.key" --batch "$b" "$@" \
		>"$T_TMP/$b.station" 2>&1
}
t_run "a small manifest" manifest small 1 3
t_run "a manifest larger than the limit, next in the chain" manifest big 2 12000 small
big=$sst/batches/big.manifest
t_run "it is $(stat -c %s "$big") bytes, over $LIMIT" [ "$(stat -c %s "$big")" -gt "$LIMIT" ]
snap() { q "SELECT (SELECT count(*) FROM devices) || '/' || (SELECT count(*) FROM batches) || '/' || (SELECT count(*) FROM audit)"; }
before=$(snap)
code=$(srv_curl -o "$T_TMP/big.json" -D "$T_TMP/big.h" -w '%{http_code}' \
	-H "Authorization: Bearer $(cat "$st/admin.token")" \
	-H 'Content-Type: application/vnd.idprov.manifest' \
	-H "Idprov-Signature: $(base64 -w0 "$big.sig")" --data-binary @"$big" \
	"$SRV_URL/v1/admin/import")
t_run "the upload meets the limit in its spool: 503 (got $code)" [ "$code" = 503 ]
t_grep "... storage_full" '"code":"storage_full"' "$T_TMP/big.json"
t_grep "... with Retry-After" '^Retry-After: [1-9]' "$T_TMP/big.h"
t_grep "the cause is logged as store.full, naming the spool and EFBIG" \
	'event=store.full .*error="upload spool: write: File too large"' "$SRV_ERR"
t_refuse "not as an internal error" grep -qE 'event=upload.spool|status=500' "$SRV_ERR"
t_run "nothing imported" [ "$(snap)" = "$before" ]
t_run "the spool file is gone (no deleted file of the state directory held open)" \
	[ -z "$(find "/proc/$SRV_PID/fd" -lname "$st/*(deleted)" -print -quit)" ]
# Both clients retry the 503 by themselves (the admin's after Retry-After),
# then give up naming the cause.
adm import "$big" >"$T_TMP/big.admin" 2>&1 &
adm_pid=$!
T_CLEANUP+=("kill $adm_pid 2>/dev/null")
upload big --attempts 2
rc=$?
t_run "idprov-station upload gives up (exit $rc)" [ "$rc" -ne 0 ]
t_grep "... after retrying" '503 storage_full' "$T_TMP/big.station"
t_grep "... saying storage full, still pending" \
	'^idprov-station: big: not delivered, still pending: server refused \(503 storage_full\): storage full' \
	"$T_TMP/big.station"
wait "$adm_pid"
rc=$?
t_run "idprov-admin import gives up (exit $rc)" [ "$rc" -ne 0 ]
t_grep "... saying storage full" '^idprov-admin: refused \(503 storage_full\): storage full' \
	"$T_TMP/big.admin"
n=$(grep -c 'event=http.request .* status=503' "$SRV_ERR")
t_run "each of the 6 tries (curl 1, station 2, admin 3) answered 503 ($n)" [ "$n" = 6 ]
t_run "still nothing imported" [ "$(snap)" = "$before" ]
t_run "the server serves on: the small batch is imported" upload small
t_grep "... created" '^small: uploaded 201 devices 3$' "$T_TMP/small.station"
t_run "server still up" kill -0 "$SRV_PID"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
SRV_PREFIX="prlimit --fsize=$((64 * 1024 * 1024))"
t_run "server restarts with a 64 MiB limit" srv_start "$st" --throttle-per-minute 0 \
	--log-burst 0 --station-ca "$pki/ca.pem"
t_run "the large upload goes through" upload big
t_grep "... created" '^big: uploaded 201 devices 12000$' "$T_TMP/big.station"
t_run "idprov-admin audit verify" verify
t_grep "... intact" '^intact +yes$' "$T_TMP/verify.out"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_run "integrity_check ok" [ "$(q 'PRAGMA integrity_check')" = ok ]
t_done
