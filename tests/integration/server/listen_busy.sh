#!/usr/bin/env bash
# listen_busy.sh - issue 9 §2: a second idprovd on a port in use used to
# start and join the first one's SO_REUSEPORT group (the kernel then split
# the connections between two servers with different CAs). Now idprovd
# refuses to start, naming the address, when another idprovd, a plain
# listener or another SO_REUSEPORT listener holds the port; its own
# per-thread listeners still share it.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

probe=$IDP_BUILD/tools/idp_probe
t_run "first server listens with 2 threads" srv_start "$T_TMP/a" --threads 2
first_pid=$SRV_PID port=$SRV_PORT

# second DESC PORT: a second idprovd on 127.0.0.1:PORT must exit non-zero
# (not time out) and name the address.
second() {
	timeout 60 "$IDP_BIN/idprovd" --foreground --state-dir "$T_TMP/b.$2" \
		--listen "127.0.0.1:$2" --threads 2 >"$T_TMP/b.out" 2>&1
	local rc=$?
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] &&
		grep -q "listen 127.0.0.1:$2: address already in use" "$T_TMP/b.out"; then
		t_ok "$1 (exit $rc)"
	else
		t_fail "$1 (exit $rc): $(tail -3 "$T_TMP/b.out")"
	fi
}
second "a second idprovd on the same port refuses to start" "$port"
srv_curl -o "$T_TMP/ca" "https://127.0.0.1:$port/v1/ca"
t_run "the first server still answers with its CA" cmp -s "$T_TMP/ca" "$T_TMP/a/ca.pem"
kill -0 "$first_pid"
t_run "the first server is still running" [ $? -eq 0 ]

for mode in plain reuseport; do
	coproc L { "$probe" listen 0 "$mode"; }
	T_CLEANUP+=("kill $L_PID 2>/dev/null")
	read -r -t 20 line <&"${L[0]}"
	second "idprovd refuses a port held by a $mode listener" "${line#port=}"
	eval "exec ${L[1]}>&-"
	wait "$L_PID" 2>/dev/null
done
SRV_PID=$first_pid
srv_stop
t_run "first server exits 0" [ "$SRV_RC" -eq 0 ]
t_done
