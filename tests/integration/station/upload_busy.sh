#!/usr/bin/env bash
# upload_busy.sh - both clients' uploads (idprov-station upload,
# idprov-admin import) meeting the database's write lock held elsewhere (the
# sqlite3 CLI in BEGIN IMMEDIATE here; in the field: another import still in
# its transaction on the other loop, e.g. the first copy of a manifest sent
# again). Each waits for the lock off the loop and is then imported from its
# spooled body (a rerun was answered 500 "upload spool: spent" before;
# server/import_busy.sh covers the server's side with idprov-admin); the
# same manifest sent by both while the lock is held is imported once (201,
# then "already imported"); a lock held past the bound is answered 503 with
# Retry-After, which both clients retry by themselves, and each such 503
# logs one batch.refused naming the busy database (none did before). Every
# step waits on events (log lines, the client's exit), never on a time
# window.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"
. "$(dirname "$0")/station.inc"

samples=$IDP_TOP/samples/manifests
st=$T_TMP/state
srv=$T_TMP/srv
pki=$T_TMP/pki
mkdir -p "$st/batches"
st_pki "$pki" station-01
t_run "server starts" srv_start "$srv" --station-ca "$pki/ca.pem" --throttle-per-minute 0
token=$(cat "$srv/admin.token")
cp "$srv/admin.token" "$T_TMP/token"
db=$srv/idprov.db
q() { sqlite3 -readonly "$db" "$1"; }
snap() { q "select (select count(*) from devices) || '/' || (select count(*) from batches) || '/' || (select count(*) from audit where event = 'batch.imported')"; }
plus() { echo "$1" | awk -F/ -v n="$2" -v b="$3" '{print $1 + n "/" $2 + b "/" $3 + b}'; }
t_run "station trusted" bash -c "IDPROV_ADMIN_TOKEN=$token '$IDP_BIN/idprov-admin' --server '$SRV_URL' \
	--ca '$SRV_CA' station add station-01 '$samples/sample-station-p256.pub' >/dev/null"

# manifest BATCH SEQ N MAC-BYTE [PREV]: BATCH's signed manifest of N devices
manifest() {
	awk -v n="$3" -v p="$1-" -v b="$4" -v s="S$1-" 'BEGIN { for (i = 1; i <= n; i++)
		printf "%s%06d,02:%s:00:00:%02x:%02x,%s%06dA\n", p, i, b, int(i / 256) % 256, i % 256, s, i }' \
		>"$T_TMP/$1.csv"
	"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" --batch "$1" \
		--station station-01 --seq "$2" --product sx1 --devices "$T_TMP/$1.csv" --format csv \
		${5:+--prev "$st/batches/$5.manifest"} --out "$st/batches/$1.manifest" >/dev/null
}
# send_bg CLIENT BATCH: BATCH's manifest sent by CLIENT (station:
# idprov-station upload, admin: idprov-admin import) in the background; PID
# in BG, output in $T_TMP/BATCH.CLIENT
send_bg() {
	if [ "$1" = station ]; then
		"$IDP_BIN/idprov-station" upload --state "$st" --server "$SRV_URL" --ca "$SRV_CA" \
			--client-cert "$pki/client.pem" --client-key "$pki/client.key" --batch "$2"
	else
		"$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/token" \
			--json import "$st/batches/$2.manifest"
	fi >"$T_TMP/$2.$1" 2>&1 &
	BG=$!
	T_CLEANUP+=("kill $BG 2>/dev/null")
}
# created CLIENT BATCH: CLIENT's output says it created BATCH (201)
created() {
	case $1 in
	station) grep -q "^$2: uploaded 201 devices 2000\$" "$T_TMP/$2.$1" ;;
	*) grep -q '"created":true' "$T_TMP/$2.$1" ;;
	esac
}
# again CLIENT BATCH: CLIENT's output says BATCH was already imported (200)
again() {
	case $1 in
	station) grep -q "^$2: uploaded 200 devices 2000 (already imported)\$" "$T_TMP/$2.$1" ;;
	*) grep -q '"created":false' "$T_TMP/$2.$1" ;;
	esac
}
waiting() { grep -c 'event=request.waiting .*path=/v1/\(batches\|admin/import\)' "$SRV_ERR"; }
status_count() { grep -c "event=http.request .*path=/v1/\(batches\|admin/import\) status=$1" "$SRV_ERR"; }
count() { grep -cE -- "$1" "$SRV_ERR"; }
busy_refused='event=batch.refused .*code=unavailable reason="store: busy: another process held the write lock'

any_path='path=/v1/(batches|admin/import)'
seq=0 prev=
next_manifest() { # BATCH: the next manifest of the chain
	seq=$((seq + 1))
	t_run "manifest $1 made (2000 devices)" manifest "$1" $seq 2000 $((20 + seq)) ${prev:+"$prev"}
	prev=$1
}

# ---------------------------------------------------------------- waits, then imported
for client in station admin; do
	b=wait-$client
	next_manifest "$b"
	before=$(snap)
	w=$(waiting)
	t_run "$client: lock held by the sqlite3 CLI" srv_lock_hold "$db"
	send_bg $client "$b"
	pid=$BG
	t_run "$client: waits for the lock (request.waiting)" \
		t_wait "$SRV_ERR" "event=request.waiting .*$any_path" $((w + 1))
	t_run "$client: nothing imported while the lock is held" [ "$(snap)" = "$before" ]
	srv_lock_release
	wait "$pid"
	rc=$?
	t_run "$client: then goes through: exit $rc" [ "$rc" -eq 0 ]
	t_run "$client: imported from the spool, run again (201)" created $client "$b"
	t_run "$client: imported once" [ "$(snap)" = "$(plus "$before" 2000 1)" ]
done

# ---------------------------------------------------------------- the same manifest twice
b=twice
next_manifest $b
before=$(snap)
w=$(waiting)
t_run "lock held for a double send" srv_lock_hold "$db"
send_bg station $b
p1=$BG
send_bg admin $b
p2=$BG
t_run "both copies wait for the lock" t_wait "$SRV_ERR" "event=request.waiting .*$any_path" $((w + 2))
srv_lock_release
wait "$p1"
rc1=$?
wait "$p2"
rc2=$?
t_run "both clients succeed: station exit $rc1, admin exit $rc2" [ "$((rc1 | rc2))" -eq 0 ]
if created station $b; then
	t_run "the station's copy created it, the admin's was already imported" again admin $b
else
	t_run "the admin's copy created it" created admin $b
	t_run "the station's copy was already imported" again station $b
fi
t_run "imported once, one audit entry" [ "$(snap)" = "$(plus "$before" 2000 1)" ]

# ---------------------------------------------------------------- past the bound: 503, retried
for client in station admin; do
	b=bound-$client
	next_manifest "$b"
	before=$(snap)
	n503=$(status_count 503)
	nref=$(count "$busy_refused")
	t_run "$client: lock held past the bound" srv_lock_hold "$db"
	send_bg $client "$b"
	pid=$BG
	t_run "$client: answered 503 after the bound" \
		t_wait "$SRV_ERR" "event=http.request .*$any_path status=503" $((n503 + 1))
	t_run "$client: still at it (retrying by itself)" kill -0 "$pid"
	srv_lock_release
	wait "$pid"
	rc=$?
	t_run "$client: its retry goes through: exit $rc" [ "$rc" -eq 0 ]
	t_run "$client: its retry imported it (201)" created $client "$b"
	t_run "$client: imported once after the 503" [ "$(snap)" = "$(plus "$before" 2000 1)" ]
	t_run "$client: the 503 logged one batch.refused naming the busy database" \
		[ "$(count "$busy_refused")" = $((nref + 1)) ]
done
t_grep "the 503s name the busy lock in the log" "event=request.error .*code=unavailable .*busy" "$SRV_ERR"

t_run "never a 500" [ "$(status_count 500)" = 0 ]
n503=$(status_count 503)
t_run "one batch.refused per upload answered 503 ($n503)" \
	[ "$(count 'event=batch.refused .*code=unavailable')" = "$n503" ]
nup=$(count 'event=batch.upload ')
t_run "each upload logged one outcome ($nup: batch.imported or batch.refused)" \
	[ "$(($(count 'event=batch.imported ') + $(count 'event=batch.refused ')))" = "$nup" ]
t_refuse "no spent spool" grep -q 'upload spool: spent' "$SRV_ERR"
t_refuse "no sanitizer report" grep -qE 'AddressSanitizer|runtime error' "$SRV_ERR"
echo "# batches: $(q "select id || ' ' || state from batches order by sequence" | tr '\n' ' ')"
t_run "no gap flagged" [ "$(q "select count(*) from batches where state != 'imported'")" = 0 ]
t_run "database integrity" [ "$(q 'pragma integrity_check')" = ok ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
