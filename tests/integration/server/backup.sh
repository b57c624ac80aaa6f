#!/usr/bin/env bash
# backup.sh - idprov-admin backup (issue 9 §1): the server snapshots its
# database (VACUUM INTO) while writes go on and streams it to the CLI, which
# writes FILE atomically (0600). The snapshot holds every write answered
# before the backup began and passes integrity_check; restored into a new
# state directory with the key files (docs/administrator.md, "Backup and
# restore"), a server starts on it with the same CA, credential, stations
# and devices. Unauthenticated or malformed requests get nothing, and no
# temporary file is left behind. The CLI streams the answer to FILE: its
# peak RSS for a database of 40 MB is within 4 MiB of a small one's, and an
# error answer, an answer cut mid-body, a truncated database and a SIGTERM
# mid-answer each leave an existing FILE as it was and no temp file.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

samples=$IDP_TOP/samples/manifests
st=$T_TMP/state
t_run "server starts" srv_start "$st"
cp "$st/admin.token" "$T_TMP/token"
url=$SRV_URL
cli() {
	"$IDP_BIN/idprov-admin" --server "$url" --ca "$SRV_CA" --token-file "$T_TMP/token" --json "$@"
}

# A trusted station and an imported batch: preloaded devices to find again.
t_run "station added" cli station add station-01 "$samples/sample-station-p256.pub" >/dev/null
grep -v '^#' "$samples/devices.csv" | head -3 | cut -d, -f1-3 >"$T_TMP/devs.csv"
"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" --batch b-bk-1 \
	--station station-01 --seq 1 --product sx1 --devices "$T_TMP/devs.csv" --format csv \
	--out "$T_TMP/b1.manifest" >/dev/null
t_run "batch imported" cli import "$T_TMP/b1.manifest" >/dev/null
t_run "a device revoked" cli revoke dev-0002 >/dev/null
cli devices >"$T_TMP/devices.before"

# Writes in the background while the backups run: each answered station is
# appended to answered.txt. One key per station (a key under two enabled
# station IDs is refused).
for i in $(seq 1 40); do
	openssl genpkey -algorithm ed25519 2>/dev/null | openssl pkey -pubout -out "$T_TMP/w$i.pub"
done
: >"$T_TMP/answered.txt"
(
	for i in $(seq 1 40); do
		cli station add "st-w$i" "$T_TMP/w$i.pub" 2>/dev/null | grep -q '"ok":true' &&
			echo "st-w$i" >>"$T_TMP/answered.txt"
	done
) &
writer=$!
T_CLEANUP+=("kill $writer 2>/dev/null")
for _ in $(seq 1 200); do [ "$(wc -l <"$T_TMP/answered.txt")" -ge 5 ] && break; sleep 0.1; done
cp "$T_TMP/answered.txt" "$T_TMP/answered.before"
t_run "backup while writes go on" cli backup "$T_TMP/backup.db" >"$T_TMP/cli.out"
t_grep "backup answers the file and its size" '^\{"ok":true,"file":".*backup.db","bytes":[0-9]+\}$' "$T_TMP/cli.out"
t_run "second backup while writes go on" cli backup "$T_TMP/backup2.db" >/dev/null
wait "$writer"
t_run "writes went on during the backups" [ "$(wc -l <"$T_TMP/answered.txt")" -gt "$(wc -l <"$T_TMP/answered.before")" ]
t_run "backup file is 0600" [ "$(stat -c %a "$T_TMP/backup.db")" = 600 ]
t_run "backup passes integrity_check" [ "$(sqlite3 "$T_TMP/backup.db" 'pragma integrity_check')" = ok ]
t_run "second backup passes integrity_check" [ "$(sqlite3 "$T_TMP/backup2.db" 'pragma integrity_check')" = ok ]
lost=0
while read -r s; do
	[ "$(sqlite3 "$T_TMP/backup.db" "select count(*) from stations where id='$s'")" = 1 ] ||
		lost=$((lost + 1))
done <"$T_TMP/answered.before"
t_run "every write answered before the backup is in it ($(wc -l <"$T_TMP/answered.before") checked)" [ "$lost" = 0 ]
t_run "no temporary file left in the state directory" [ -z "$(find "$st" -maxdepth 1 -iname "*backup*")" ]
t_grep "backup logged" 'event=admin.done .*action=backup bytes=[0-9]+' "$SRV_ERR"

# Refusals: no credential, a body, an unwritable destination, another CA.
code=$(srv_curl -o "$T_TMP/out" -w '%{http_code}' -X POST "$SRV_URL/v1/admin/backup")
t_run "no credential: 401" [ "$code" = 401 ]
t_refuse "no credential: no database in the answer" grep -q 'SQLite format 3' "$T_TMP/out"
code=$(srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Bearer $(cat "$T_TMP/token")" \
	-H 'Content-Type: application/json' --data-binary '{"x":1}' "$SRV_URL/v1/admin/backup")
t_run "a body: 400" [ "$code" = 400 ]
t_grep "a body: JSON error" '"code":"bad_request"' "$T_TMP/out"
cli backup "$T_TMP/no/such/dir/b.db" 2>"$T_TMP/err.out"
t_run "unwritable destination exits 3" [ $? = 3 ]
t_grep "and names it" 'no/such/dir' "$T_TMP/err.out"
"$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$samples/sample-factory-ca.pem" \
	--token-file "$T_TMP/token" backup "$T_TMP/other-ca.db" 2>/dev/null
t_run "another CA exits 3" [ $? = 3 ]
t_run "and writes nothing" [ ! -e "$T_TMP/other-ca.db" ]

# Restore into a new state directory: the database plus the key files.
cli devices >"$T_TMP/devices.before"
fp=$(srv_curl "$SRV_URL/v1/health" | grep -o '"ca_fingerprint":"[0-9a-f]*"')
srv_stop
r=$T_TMP/restored
mkdir -m 0700 "$r"
cp "$T_TMP/backup.db" "$r/idprov.db"
chmod 0600 "$r/idprov.db"
cp -p "$st/ca.pem" "$st/ca.key" "$st/token.key" "$st/token.pub" "$st/admin.hash" "$r/"
# A snapshot left by a server killed during a backup is removed at start.
printf 'SQLite format 3' >"$r/.backup-4242-0.tmp"
t_run "server starts on the restored directory" srv_start "$r"
t_run "a stale backup snapshot is removed at start" [ ! -e "$r/.backup-4242-0.tmp" ]
url=$SRV_URL
t_run "same CA" [ "$(srv_curl "$SRV_URL/v1/health" | grep -o '"ca_fingerprint":"[0-9a-f]*"')" = "$fp" ]
cli devices >"$T_TMP/devices.after"
t_run "same admin credential" [ $? = 0 ]
t_run "same devices, same states" cmp -s "$T_TMP/devices.before" "$T_TMP/devices.after"
t_grep "the revoked device is still revoked" '"id":"dev-0002","state":"revoked"' "$T_TMP/devices.after"
cli station list >"$T_TMP/stations.after"
t_grep "the station is there" '"id":"station-01"' "$T_TMP/stations.after"
t_run "same import again: already imported" cli import "$T_TMP/b1.manifest" >"$T_TMP/imp.out"
t_grep "the batch is known" '"created":false' "$T_TMP/imp.out"
srv_stop
t_run "restored server stops cleanly" [ "$SRV_RC" = 0 ]

# Constant memory: idprov-admin writes the answer to FILE's temp file as it
# arrives, so the backup of a database of tens of MB peaks within 4 MiB of
# a small one's (holding the answer would add all of it). The padding is
# written by the sqlite3 CLI while no server runs.
t_run "server starts again" srv_start "$r"
url=$SRV_URL
# cli as one command (t_peak_rss runs a program, not a function).
admin() { adm=("$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/token" --json); }
admin
t_peak_rss "$T_TMP/rss.small" "${adm[@]}" backup "$T_TMP/small.db" >/dev/null
t_run "small backup done" [ $? = 0 ]
srv_stop
sqlite3 "$r/idprov.db" "create table pad(b blob);
	with recursive n(i) as (select 1 union all select i + 1 from n where i < 40)
	insert into pad select randomblob(1048576) from n;"
t_run "server starts on a database of 40 MB more" srv_start "$r"
url=$SRV_URL
admin
t_peak_rss "$T_TMP/rss.large" "${adm[@]}" backup "$T_TMP/large.db" >"$T_TMP/cli.out"
t_run "large backup done" [ $? = 0 ]
small=$(cat "$T_TMP/rss.small") large=$(cat "$T_TMP/rss.large") bytes=$(stat -c %s "$T_TMP/large.db")
echo "# measured: peak RSS $small KiB (backup of $(stat -c %s "$T_TMP/small.db") bytes)," \
	"$large KiB (backup of $bytes bytes)"
t_run "large backup over 40 MB" [ "$bytes" -gt 41943040 ]
t_run "peak RSS of the large backup within 4 MiB of the small one's" \
	[ "$large" -le $((small + 4096)) ]
t_grep "its size printed" "\"bytes\":$bytes}" "$T_TMP/cli.out"
t_run "large backup passes integrity_check" \
	[ "$(sqlite3 "$T_TMP/large.db" 'pragma integrity_check')" = ok ]
t_run "large backup holds the padding" \
	[ "$(sqlite3 "$T_TMP/large.db" 'select count(*) from pad')" = 40 ]
t_run "large backup is 0600" [ "$(stat -c %a "$T_TMP/large.db")" = 600 ]
srv_stop

# An existing FILE is kept whole, and no temp file is left beside it, when
# the answer is an error, is cut mid-body (the server dies: fault point
# backup.cut), or is well framed but holds a truncated database (fault point
# backup.short: only the size its SQLite header gives tells).
old=$(sha256sum <"$T_TMP/large.db")
intact() { [ -s "$T_TMP/large.db" ] && [ "$(sha256sum <"$T_TMP/large.db")" = "$old" ] &&
	[ -z "$(find "$T_TMP" -maxdepth 1 -name 'large.db.tmp-*')" ]; }
t_run "server starts again" srv_start "$r"
url=$SRV_URL
t_forge "$(cat "$T_TMP/token")" >"$T_TMP/forged"
chmod 600 "$T_TMP/forged"
"$IDP_BIN/idprov-admin" --server "$url" --ca "$SRV_CA" --token-file "$T_TMP/forged" \
	backup "$T_TMP/large.db" 2>"$T_TMP/err.out"
t_run "a refused backup exits 1" [ $? = 1 ]
t_grep "and prints the server's error" 'refused \(401 unauthorized\)' "$T_TMP/err.out"
t_run "FILE intact after a refused backup" intact
srv_stop
IDPROVD_TEST_FAULT=backup.cut srv_start "$r"
url=$SRV_URL
cli backup "$T_TMP/large.db" 2>"$T_TMP/err.out"
t_run "a backup cut mid-answer exits 3" [ $? = 3 ]
wait "$SRV_PID"
t_run "the server died in the middle of the answer (fault point)" [ $? = 99 ]
t_run "FILE intact after a cut backup" intact
IDPROVD_TEST_FAULT=backup.short srv_start "$r"
url=$SRV_URL
cli backup "$T_TMP/large.db" 2>"$T_TMP/err.out"
t_run "a truncated database exits 3" [ $? = 3 ]
t_grep "named as cut by its header" \
	'the answer is cut: [0-9]+ bytes, its SQLite header gives [0-9]+$' "$T_TMP/err.out"
read -r got want < <(sed -n 's/.*is cut: \([0-9]*\) bytes, its SQLite header gives \([0-9]*\)$/\1 \2/p' "$T_TMP/err.out")
t_run "half of the database came" [ "$got" = $((${want:-0} / 2)) ] && [ "$got" -gt 0 ]
wait "$SRV_PID"
t_run "the server died after the short answer (fault point)" [ $? = 99 ]
t_run "FILE intact after a truncated database" intact
IDPROVD_TEST_FAULT=backup.short srv_start "$r"
url=$SRV_URL
cli backup "$T_TMP/new.db" 2>/dev/null
t_run "a truncated database to a new FILE exits 3" [ $? = 3 ]
srv_kill "$SRV_PID"
t_run "and leaves no FILE" [ ! -e "$T_TMP/new.db" ]
t_run "and no temp file" [ -z "$(find "$T_TMP" -maxdepth 1 -name 'new.db.tmp-*')" ]

# Stopped mid-answer (SIGTERM): the temp file, half written while the server
# stalls (fault point backup.stall), is removed and FILE kept.
IDPROVD_TEST_FAULT=backup.stall srv_start "$r"
admin
"${adm[@]}" backup "$T_TMP/large.db" >/dev/null 2>&1 &
bk=$!
T_CLEANUP+=("kill $bk 2>/dev/null")
half() { [ -n "$(find "$T_TMP" -maxdepth 1 -name 'large.db.tmp-*' -size +1000k)" ]; }
for _ in $(seq 1 600); do half && break; sleep 0.1; done
t_run "a stalled backup has written part of its temp file" half
kill -TERM "$bk"
wait "$bk"
t_run "SIGTERM ends it (status 143)" [ $? = 143 ]
t_run "FILE intact, its temp file removed" intact
srv_kill "$SRV_PID"
t_done
