#!/usr/bin/env bash
# disk_full.sh - the state directory's filesystem is full (issue 16, "Disk
# full"; a small tmpfs this test mounts, so it needs root: without, it is
# skipped): every write is refused 503 storage_full with Retry-After (the
# body's retry_after equal to it), provisioning, nonces and a manifest import
# alike, and a manifest upload whose spool file (server/spool.h) meets the
# full disk (ENOSPC), its spool then gone, or cannot be made (no inode left); reads are still answered; the
# cause is logged once (event=store.full), not per request, and counted in
# /metrics; once space returns the next requests succeed, that upload too;
# the decision answered before is intact and the database passes
# integrity_check.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

A=${IDP_BUILD:-$IDP_TOP/build/plain}/tools/idp_attack
samples=$IDP_TOP/samples/manifests
st=$T_TMP/full
mkdir -p "$st"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=8m,nr_inodes=64,mode=0700 tmpfs "$st" 2>/dev/null; then
	t_ok "disk full: skipped (needs root to mount a tmpfs)"
	t_done
fi
T_CLEANUP+=("umount '$st' 2>/dev/null")
t_run "server starts on an 8 MiB tmpfs" srv_start "$st" --throttle-per-minute 0 --log-burst 0 \
	--throttle-device-burst 1000
db=$st/idprov.db
cp "$st/admin.token" "$T_TMP/token"
token=$(cat "$T_TMP/token")
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/token" "$@"; }
"$A" key "$T_TMP/k1" p256 && "$A" key "$T_TMP/k2" p256 || t_fail "keys"
t_run "trust station-01" adm station add station-01 "$samples/sample-station-p256.pub" >/dev/null
printf 'df-%04d,02:1d:00:00:%02x:%02x,SN-DF-%04d\n' 1 0 1 1 2 0 2 2 3 0 3 3 >"$T_TMP/devs.csv"
t_run "a manifest to import" "$IDP_BIN/idprov-manifest" create \
	--key "$samples/sample-station-p256.key" --batch df-1 --station station-01 --seq 1 \
	--product sx1 --devices "$T_TMP/devs.csv" --format csv --out "$T_TMP/df.manifest"
# The next in the chain: 3000 devices, larger than the space left once full.
awk 'BEGIN { for (i = 1; i <= 3000; i++)
	printf "dg-%06d,02:1d:01:00:%02x:%02x,SN-DG-%06d\n", i, int(i / 256), i % 256, i }' \
	>"$T_TMP/big.csv"
t_run "a larger manifest to import" "$IDP_BIN/idprov-manifest" create \
	--key "$samples/sample-station-p256.key" --batch df-2 --station station-01 --seq 2 \
	--product sx1 --devices "$T_TMP/big.csv" --format csv --prev "$T_TMP/df.manifest" \
	--out "$T_TMP/big.manifest" >/dev/null
import() { # [NAME]: prints the status of POST /v1/admin/import of $T_TMP/NAME.manifest (df)
	local m=$T_TMP/${1:-df}.manifest
	srv_curl -o "$T_TMP/import.json" -D "$T_TMP/import.h" -w '%{http_code}' \
		-H "Authorization: Bearer $token" -H 'Content-Type: application/vnd.idprov.manifest' \
		-H "Idprov-Signature: $(base64 -w0 "$m.sig")" \
		--data-binary @"$m" "$SRV_URL/v1/admin/import"
}
nonce() { srv_nonce; }

# A decision answered before the disk fills.
"$A" send "$SRV_PORT" "$T_TMP/k1" provision dev-d1 02:00:5e:30:00:01 good >/dev/null 2>&1
adm approve dev-d1 >/dev/null 2>&1 || t_fail "approve dev-d1"
"$A" send "$SRV_PORT" "$T_TMP/k1" provision dev-d1 02:00:5e:30:00:01 good - "$T_TMP/d1.tok" >"$T_TMP/d1.out" 2>&1
t_grep "dev-d1 provisioned before the disk fills" '^answer 200 approved' "$T_TMP/d1.out"
q() { sqlite3 -readonly "$db" "$1"; }
d1_before=$(q "SELECT state || '/' || (SELECT count(*) FROM tokens WHERE device_id = 'dev-d1') FROM devices WHERE id = 'dev-d1'")

# ---------------------------------------------------------------- full
dd if=/dev/zero of="$st/fill" bs=64k 2>/dev/null
t_run "the filesystem is full" [ "$(df --output=avail "$st" | tail -1)" -lt 64 ]
# The WAL may still have room for a few commits: write until one is refused.
srv_until_full "nonces once the WAL cannot grow"
"$A" send "$SRV_PORT" "$T_TMP/k2" provision dev-d2 02:00:5e:30:00:02 good >"$T_TMP/d2.out" 2>&1
t_grep "a provisioning request: 503 storage_full" '^answer 503 storage_full' "$T_TMP/d2.out"
t_run "nothing of it stored" [ "$(q "SELECT count(*) FROM devices WHERE id = 'dev-d2'")" = 0 ]
code=$(import)
t_run "a manifest import: 503" [ "$code" = 503 ]
t_grep "import: storage_full" '"code":"storage_full"' "$T_TMP/import.json"
t_grep "import: with Retry-After" '^Retry-After: [1-9]' "$T_TMP/import.h"
t_run "import: no batch stored" [ "$(q "SELECT count(*) FROM batches")" = 0 ]
avail=$(df --output=avail -B1 "$st" | tail -1)
t_run "the larger manifest ($(stat -c %s "$T_TMP/big.manifest") bytes) exceeds the $avail bytes left" \
	[ "$(stat -c %s "$T_TMP/big.manifest")" -gt "$avail" ]
code=$(import big)
t_run "an upload whose spool fills the disk: 503" [ "$code" = 503 ]
t_grep "spool: storage_full" '"code":"storage_full"' "$T_TMP/import.json"
t_grep "spool: with Retry-After" '^Retry-After: [1-9]' "$T_TMP/import.h"
t_run "spool: no batch stored" [ "$(q "SELECT count(*) FROM batches")" = 0 ]
t_refuse "spool: not an internal error (upload.spool)" grep -q 'event=upload.spool' "$SRV_ERR"
t_run "spool: its file is gone (no deleted file of the state directory held open)" \
	[ -z "$(find "/proc/$SRV_PID/fd" -lname "$st/*(deleted)" -print -quit)" ]
t_run "spool: its space is free again" [ "$(df --output=avail -B1 "$st" | tail -1)" -ge "$avail" ]
t_run "reads still answered: health 200" \
	[ "$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/health")" = 200 ]
for _ in 1 2 3; do nonce >/dev/null; done
t_run "the cause logged once for all the refusals" [ "$(grep -c 'event=store.full' "$SRV_ERR")" = 1 ]
t_grep "and names it" 'event=store.full .*error="store: [a-z ]*: database or disk is full"' "$SRV_ERR"
t_refuse "no 500 answered" grep -q 'status=500' "$SRV_ERR"
srv_curl -o "$T_TMP/metrics" -H "Authorization: Bearer $token" "$SRV_URL/metrics"
n=$(sed -n 's/^idprov_storage_full_total \([0-9]*\)$/\1/p' "$T_TMP/metrics")
t_run "metrics: idprov_storage_full_total counts the refusals ($n)" [ "${n:-0}" -ge 7 ]
t_run "server still up" kill -0 "$SRV_PID"

# ---------------------------------------------------------------- space returns
rm -f "$st/fill"
t_run "space back: a nonce is answered 200" [ "$(nonce)" = 200 ]
"$A" send "$SRV_PORT" "$T_TMP/k2" provision dev-d2 02:00:5e:30:00:02 good >"$T_TMP/d2.out" 2>&1
t_grep "space back: the provisioning request is decided" '^answer 202 pending' "$T_TMP/d2.out"
t_run "space back: the import is created (201)" [ "$(import)" = 201 ]
# No inode left (the tmpfs has 64): the upload's spool file cannot be made.
for i in $(seq 1 64); do touch "$st/inode.$i" 2>/dev/null || break; done
t_run "no inode left" [ "$(df --output=iavail "$st" | tail -1)" -eq 0 ]
code=$(import big)
t_run "no inode: an upload whose spool cannot be made: 503" [ "$code" = 503 ]
t_grep "no inode: storage_full" '"code":"storage_full"' "$T_TMP/import.json"
t_grep "no inode: with Retry-After" '^Retry-After: [1-9]' "$T_TMP/import.h"
t_refuse "no inode: not an internal error (upload.spool)" grep -q 'event=upload.spool' "$SRV_ERR"
t_run "no inode: writes that need no new file go on (nonce 200)" [ "$(nonce)" = 200 ]
rm -f "$st"/inode.*
t_run "space back: the larger upload is created (201)" [ "$(import big)" = 201 ]
t_run "the decision answered before is intact" \
	[ "$(q "SELECT state || '/' || (SELECT count(*) FROM tokens WHERE device_id = 'dev-d1') FROM devices WHERE id = 'dev-d1'")" = "$d1_before" ]
t_run "integrity_check ok" [ "$(q 'PRAGMA integrity_check')" = ok ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_run "audit chain verifies after a restart" srv_start "$st"
verify() { adm audit verify >"$T_TMP/verify.out"; }
t_run "idprov-admin audit verify" verify
t_grep "... intact" '^intact +yes$' "$T_TMP/verify.out"
srv_stop
t_done
