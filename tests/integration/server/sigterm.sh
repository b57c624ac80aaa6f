#!/usr/bin/env bash
# sigterm.sh - graceful stop: a request still uploading its body when
# SIGTERM arrives gets its whole answer, idle keep-alive connections are
# closed at once, new connections are refused, and idprovd exits 0.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "server listens" srv_start "$st"

# A 12 KiB body at 3 KiB/s: still in flight for a few seconds.
head -c 12288 /dev/zero >"$T_TMP/body8k"
srv_curl --limit-rate 3k -X POST --data-binary @"$T_TMP/body8k" -o "$T_TMP/inflight" \
	-w '%{http_code}' "$SRV_URL/v1/health" >"$T_TMP/inflight.code" 2>"$T_TMP/inflight.err" &
inflight=$!
# An idle client: connected, silent (no TLS handshake yet).
timeout 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SRV_PORT; cat <&3 >/dev/null" &
idle=$!
T_CLEANUP+=("kill $inflight $idle 2>/dev/null")
sleep 1
start=$SECONDS
kill -TERM "$SRV_PID"
sleep 0.5
t_refuse "no new connections while stopping" \
	curl -s --max-time 2 --cacert "$SRV_CA" -o /dev/null "$SRV_URL/v1/health"
wait "$SRV_PID"
rc=$?
took=$((SECONDS - start))
wait "$inflight"
t_run "in-flight request finished" [ "$(cat "$T_TMP/inflight.code")" = 405 ]
t_grep "in-flight request got its JSON answer" '"code":"method_not_allowed"' "$T_TMP/inflight"
t_run "exit status 0" [ "$rc" -eq 0 ]
t_run "stopped within the bound (${took}s)" test "$took" -le 15
stop_line=$(grep -n 'event=http.stopping' "$SRV_ERR" | cut -d: -f1)
req_line=$(grep -n 'path=/v1/health status=405' "$SRV_ERR" | cut -d: -f1)
t_run "the request was answered after SIGTERM" test "${req_line:-0}" -gt "${stop_line:-99999}"
wait "$idle"
idle_rc=$?
t_run "idle client closed by the server, not by its own timeout" test "$idle_rc" -ne 124
t_grep "stop is logged" 'event=http.stopped status=0' "$SRV_ERR"
t_done
