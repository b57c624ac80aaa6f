#!/usr/bin/env bash
# outside_reader.sh - no answered write is lost while other processes touch
# the database (issue 9 §1): the real sqlite3 CLI runs ".backup" and a plain
# read-only query beside a running idprovd, a second idprovd is started and
# stopped on the same state directory (it is refused: lock.sh), writes are
# confirmed by idprov-admin
# in between; then idprovd is killed with SIGKILL, started again, and every
# answered write must be there, with PRAGMA integrity_check = ok.
#
# Before the fix, srv_store_open() did open()+close() on idprov.db once per
# event loop, which dropped the process's POSIX locks: the CLI then saw no
# other user and deleted the server's -wal and -shm on its close, and the
# writes answered after that were gone after the restart.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
db=$st/idprov.db
t_run "server starts" srv_start "$st"
first_pid=$SRV_PID
cp "$st/admin.token" "$T_TMP/token"
cli() {
	"$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/token" --json \
		"$@" >"$T_TMP/cli" 2>&1
}

# station_add N: a fresh key, trusted as station st-N; recorded when answered.
answered=()
station_add() {
	openssl genpkey -algorithm ed25519 -out "$T_TMP/k$1.pem" 2>/dev/null &&
		openssl pkey -in "$T_TMP/k$1.pem" -pubout -out "$T_TMP/k$1.pub" 2>/dev/null || return 1
	cli station add "st-$1" "$T_TMP/k$1.pub" && grep -q '"ok":true' "$T_TMP/cli" &&
		answered+=("st-$1")
}

ok=0
for i in 1 2 3; do station_add "$i" && ok=$((ok + 1)); done
t_run "three writes answered before the outside reader" [ "$ok" = 3 ]
wal_inode=$(stat -c %i "$db-wal")
t_run "sqlite3 .backup beside the server" sqlite3 "$db" ".backup '$T_TMP/cli-backup.db'"
t_run "the CLI's backup is whole" [ "$(sqlite3 "$T_TMP/cli-backup.db" 'pragma integrity_check')" = ok ]
ok=0
for i in 4 5 6; do station_add "$i" && ok=$((ok + 1)); done
t_run "three writes answered after .backup" [ "$ok" = 3 ]
t_run "read-only query beside the server" \
	[ "$(sqlite3 -readonly "$db" 'select count(*) from stations')" -ge 3 ]
for i in 7 8; do station_add "$i"; done
t_run "server's WAL survives the outside readers" [ "$(stat -c %i "$db-wal" 2>/dev/null)" = "$wal_inode" ]

# A second server on the same state directory, started and stopped.
"$IDP_BIN/idprovd" --foreground --state-dir "$st" --listen 127.0.0.1:0 --threads 2 \
	>"$T_TMP/second.out" 2>"$T_TMP/second.err" &
second=$!
T_CLEANUP+=("srv_kill $second")
for _ in $(seq 1 100); do
	grep -q 'event=http.listening' "$T_TMP/second.err" && break
	kill -0 "$second" 2>/dev/null || break
	sleep 0.1
done
kill -TERM "$second" 2>/dev/null
wait "$second"
t_run "the second server was refused" [ $? = 1 ]
t_grep "naming the first one's PID" "in use by another idprovd \\(pid $first_pid," "$T_TMP/second.err"
for i in 9 10; do station_add "$i"; done
t_run "first server still answers" srv_curl -o /dev/null "$SRV_URL/v1/health"
t_run "ten writes answered in all" [ "${#answered[@]}" = 10 ]

kill -9 "$first_pid"
wait "$first_pid" 2>/dev/null
t_run "server starts again after SIGKILL" srv_start "$st"
t_run "station list after the restart" cli station list
missing=0
for s in "${answered[@]}"; do
	grep -q "\"id\":\"$s\"" "$T_TMP/cli" || { missing=$((missing + 1)); echo "# lost: $s"; }
done
t_run "every answered write is there (${#answered[@]} answered, $missing lost)" [ "$missing" = 0 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]
t_run "integrity_check = ok" [ "$(sqlite3 "$db" 'pragma integrity_check')" = ok ]
t_done
