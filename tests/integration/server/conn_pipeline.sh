#!/usr/bin/env bash
# conn_pipeline.sh - issue 8 item 5: a client that pipelines requests and
# reads no answer used to grow idprovd by ~25x the bytes it sent. The server
# now stops taking requests while a connection's unsent answers are above a
# watermark (256 KiB) and resumes when they drain: the held client gets only
# part of its requests answered, the server's peak RSS stays bounded, a
# client that reads gets every answer, and a held client that never reads
# is cut off by the request deadline.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

probe=$IDP_BUILD/tools/idp_probe
# ASan keeps freed memory in a quarantine (256 MiB by default) that would
# count as RSS; keep it small so that RSS shows what the server holds.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=8"
rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# Wait until the count of answered requests stops moving (bounded: 60 s);
# the server runs with --log-burst 0 so that every request is logged.
settle() {
	local prev=-1 n
	for _ in $(seq 1 120); do
		n=$(grep -c 'event=http.request' "$SRV_ERR")
		[ "$n" = "$prev" ] && break
		prev=$n
		sleep 0.5
	done
	echo $((n - before))
}

st=$T_TMP/state
t_run "server listens" srv_start "$st" --threads 1 --request-timeout 4 --log-burst 0
srv_curl -o /dev/null "$SRV_URL/v1/ca"
base=$(rss_kb "$SRV_PID" VmRSS)
before=$(grep -c 'event=http.request' "$SRV_ERR")

n=100000
coproc HOLD { "$probe" hold "$SRV_PORT" "$n" /v1/ca; }
# bash unsets HOLD and HOLD_PID once the coprocess ends (the server cuts it
# off below): keep the pid and the write end now.
hold_pid=$HOLD_PID
hold_in=${HOLD[1]}
T_CLEANUP+=("kill $hold_pid 2>/dev/null")
read -r -t 60 line <&"${HOLD[0]}"
t_run "client pipelined $n requests and reads nothing ($line)" [ -n "$line" ]
answered=$(settle)
peak=$(rss_kb "$SRV_PID" VmHWM)
grow=$(((peak - base) / 1024))
echo "# base ${base} KiB, peak ${peak} KiB, grew ${grow} MiB, answered ${answered} of $n"
t_run "server stopped taking requests at the watermark (answered $answered of $n)" \
	[ "$answered" -lt $((n / 4)) ]
t_run "server peak RSS grew by ${grow} MiB (< 32 MiB; 100000 answers are ~90 MiB)" \
	[ "$grow" -lt 32 ]
# A held client that never reads is cut off by the request deadline.
for _ in $(seq 1 40); do
	grep -q 'event=conn.deadline .*phase=output' "$SRV_ERR" && break
	sleep 0.5
done
t_grep "held connection cut off by the request deadline" 'event=conn.deadline .*phase=output' "$SRV_ERR"
eval "exec ${hold_in}>&-" 2>/dev/null
wait "$hold_pid" 2>/dev/null

"$probe" pipe "$SRV_PORT" 20000 /v1/ca >"$T_TMP/pipe" 2>&1
t_run "a pipelining client that reads gets all 20000 answers ($(cat "$T_TMP/pipe"))" \
	grep -qx 'answers=20000' "$T_TMP/pipe"
srv_curl -o "$T_TMP/ca" "$SRV_URL/v1/ca"
t_run "server still answers" cmp -s "$T_TMP/ca" "$st/ca.pem"
srv_stop
t_run "exits 0" [ "$SRV_RC" -eq 0 ]
t_done
