#!/usr/bin/env bash
# import_busy.sh - a manifest import that meets the store's write lock (the
# sqlite3 CLI in BEGIN IMMEDIATE) waits for it off the loop and is run again
# from the start on a timer (server/conn.c, "Busy store"). Those runs are not
# outcomes: the batch is logged once however many runs it took
# (batch.upload once, then batch.imported or batch.refused once), and a
# refusal after the wait says why (conflict), not "unavailable".
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

samples=$IDP_TOP/samples/manifests
st=$T_TMP/srv
t_run "server starts (one event loop)" srv_start "$st" --threads 1 --log-burst 0
db=$st/idprov.db
cli() {
	"$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$st/admin.token" \
		--json "$@"
}
t_run "station added" cli station add station-01 "$samples/sample-station-p256.pub" \
	>/dev/null
grep -v '^#' "$samples/devices.csv" | head -3 | cut -d, -f1-3 >"$T_TMP/d1.csv"
grep -v '^#' "$samples/devices.csv" | sed -n 4,5p | cut -d, -f1-3 >"$T_TMP/d2.csv"
# manifest OUT DEVICES: batch b-busy-1, seq 1, signed by station-01.
manifest() {
	"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" \
		--batch b-busy-1 --station station-01 --seq 1 --product sx1 --devices "$2" \
		--format csv --out "$1" >/dev/null
}
t_run "manifest made" manifest "$T_TMP/m1.manifest" "$T_TMP/d1.csv"
t_run "conflicting manifest made (same batch, other devices)" \
	manifest "$T_TMP/m2.manifest" "$T_TMP/d2.csv"

count() { grep -c -- "$1" "$SRV_ERR"; }
# import_waits N MANIFEST OUT: import MANIFEST in the background (BG) while
# the lock is held, until it is the Nth request logged as waiting; then
# the lock goes and the import is answered (exit status in OUT.rc).
import_waits() {
	t_run "lock held by the sqlite3 CLI" srv_lock_hold "$db"
	(cli import "$2" >"$3" 2>&1; echo $? >"$3.rc") &
	BG=$!
	T_CLEANUP+=("kill $BG 2>/dev/null")
	t_run "$(basename "$2"): waits for the lock" \
		t_wait "$SRV_ERR" 'event=request.waiting .*path=/v1/admin/import lock=busy' "$1"
	# Not asserted: time for the timer to run the handler a few more
	# times (10-200 ms apart) before the lock goes.
	sleep 0.5
	srv_lock_release
	wait "$BG"
}

import_waits 1 "$T_TMP/m1.manifest" "$T_TMP/i1.out"
t_run "lock released: imported" [ "$(cat "$T_TMP/i1.out.rc")" = 0 ]
t_grep "the answer: created" '"created":true' "$T_TMP/i1.out"
t_grep "its request ran again" \
	'event=http.request .*path=/v1/admin/import status=201 runs=([2-9]|[1-9][0-9]+)$' "$SRV_ERR"
t_run "batch.upload logged once" [ "$(count 'event=batch.upload ')" = 1 ]
t_run "batch.imported logged once" [ "$(count 'event=batch.imported ')" = 1 ]
t_run "no batch.refused for the waiting runs" [ "$(count 'event=batch.refused ')" = 0 ]

import_waits 2 "$T_TMP/m2.manifest" "$T_TMP/i2.out"
t_refuse "lock released: the conflicting batch refused" [ "$(cat "$T_TMP/i2.out.rc")" = 0 ]
t_grep "its request ran again, answered 409" \
	'event=http.request .*path=/v1/admin/import status=409 runs=([2-9]|[1-9][0-9]+)$' "$SRV_ERR"
t_run "batch.upload logged once more" [ "$(count 'event=batch.upload ')" = 2 ]
t_run "batch.refused logged once" [ "$(count 'event=batch.refused ')" = 1 ]
t_grep "the refusal says why" 'event=batch.refused .*code=conflict' "$SRV_ERR"
t_run "the batch holds its first devices only" \
	[ "$(sqlite3 -readonly "$db" "SELECT count(*) FROM devices")" = 3 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
