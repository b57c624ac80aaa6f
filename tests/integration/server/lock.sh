#!/usr/bin/env bash
# lock.sh - one idprovd per state directory (issue 9 §2): the running server
# holds an flock on STATE/idprovd.lock with its PID in it; a second server on
# the same directory exits 1 naming that PID, changes nothing and leaves the
# first one serving; the lock goes with the process (clean stop or SIGKILL).
# Daemon mode: --pid-file names the daemon (not the parent that exited),
# the lock file names the same PID, and the pid file is removed at SIGTERM.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "first server starts" srv_start "$st"
t_run "lock file names the server" [ "$(cat "$st/idprovd.lock")" = "$SRV_PID" ]
t_run "lock file is 0600" [ "$(stat -c %a "$st/idprovd.lock")" = 600 ]
sum_before=$(sha256sum "$st"/*.pem "$st"/*.key "$st"/admin.hash | sha256sum)

# second ARGS...: run a second idprovd on the same directory; its status in rc.
second() {
	timeout 30 "$IDP_BIN/idprovd" --state-dir "$st" --listen 127.0.0.1:0 --threads 1 "$@" \
		>"$T_TMP/second.out" 2>"$T_TMP/second.err"
	rc=$?
}
second --foreground
t_run "second server exits 1" [ "$rc" = 1 ]
t_grep "second server names the holder's PID" \
	"in use by another idprovd \\(pid $SRV_PID, lock $st/idprovd.lock\\)" "$T_TMP/second.err"
t_refuse "second server never listened" grep -q 'event=http.listening' "$T_TMP/second.err"
second
t_run "second server in daemon mode exits 1 too" [ "$rc" = 1 ]
t_grep "and names the PID" "pid $SRV_PID" "$T_TMP/second.err"
t_run "state files unchanged" [ "$(sha256sum "$st"/*.pem "$st"/*.key "$st"/admin.hash | sha256sum)" = "$sum_before" ]
t_run "first server still answers" srv_curl -o /dev/null "$SRV_URL/v1/health"
t_run "lock file still names the first server" [ "$(cat "$st/idprovd.lock")" = "$SRV_PID" ]
srv_stop
t_run "first server stops cleanly" [ "$SRV_RC" = 0 ]

t_run "a new server starts once the first stopped" srv_start "$st"
srv_kill "$SRV_PID"
t_run "and after a SIGKILL too" srv_start "$st"
srv_stop

# Daemon mode with a pid file.
pidf=$T_TMP/run/idprovd.pid
mkdir -p "$T_TMP/run"
"$IDP_BIN/idprovd" --state-dir "$st" --listen 127.0.0.1:0 --threads 1 --pid-file "$pidf" \
	>"$T_TMP/daemon.out" 2>"$T_TMP/daemon.err" &
parent=$!
wait "$parent"
t_run "daemon: the parent exits 0 once the server listens" [ $? = 0 ]
daemon=$(cat "$pidf" 2>/dev/null)
T_CLEANUP+=("[ -n '$daemon' ] && kill -9 '$daemon' 2>/dev/null")
t_run "daemon: pid file names a running process" kill -0 "${daemon:-0}"
t_run "daemon: not the parent that exited" [ "${daemon:-0}" != "$parent" ]
t_run "daemon: it is idprovd" grep -q idprovd "/proc/${daemon:-0}/cmdline"
t_run "daemon: lock file names the same PID" [ "$(cat "$st/idprovd.lock")" = "$daemon" ]
second --foreground
t_run "daemon: a second server exits 1" [ "$rc" = 1 ]
t_grep "daemon: naming the daemon's PID" "pid $daemon," "$T_TMP/second.err"
port=$(grep -o 'event=http.listening addr=127.0.0.1:[0-9]*' "$T_TMP/daemon.err" | head -1 | sed 's/.*://')
t_run "daemon: answers" srv_curl -o /dev/null "https://127.0.0.1:$port/v1/health"
kill -TERM "$daemon"
for _ in $(seq 1 150); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
t_refuse "daemon: stopped by SIGTERM" bash -c "kill -0 '$daemon' 2>/dev/null"
t_grep "daemon: stop logged" 'event=http.stopped status=0' "$T_TMP/daemon.err"
t_run "daemon: pid file removed at the clean stop" [ ! -e "$pidf" ]
t_done
