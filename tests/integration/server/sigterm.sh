#!/usr/bin/env bash
# sigterm.sh - graceful stop: a request still uploading its body when
# SIGTERM arrives gets its whole answer, idle keep-alive connections are
# closed at once, new connections are refused, and idprovd exits 0.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "server listens" srv_start "$st"

# A 16 KiB body at 2 KiB/s: still in flight for several seconds.
head -c 16384 /dev/zero >"$T_TMP/body8k"
srv_curl --limit-rate 2k -X POST --data-binary @"$T_TMP/body8k" -o "$T_TMP/inflight" \
	-w '%{http_code}' "$SRV_URL/v1/health" >"$T_TMP/inflight.code" 2>"$T_TMP/inflight.err" &
inflight=$!
# An idle keep-alive client: one request, then it waits.
(printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n'; sleep 15) |
	timeout 20 openssl s_client -quiet -CAfile "$SRV_CA" -connect 127.0.0.1:$SRV_PORT \
		>"$T_TMP/idle" 2>&1 &
idle=$!
T_CLEANUP+=("kill $inflight $idle 2>/dev/null")
sleep 1.5
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
kill "$idle" 2>/dev/null
wait "$idle"
t_grep "idle client had its answer" '"status":"ok"' "$T_TMP/idle"
t_grep "stop is logged" 'event=http.stopped status=0' "$SRV_ERR"
t_done
