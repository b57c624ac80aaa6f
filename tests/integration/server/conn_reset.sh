#!/usr/bin/env bash
# conn_reset.sh - issue 8 item 1: a client that pipelines tens of thousands
# of requests on one TLS connection, never reads the answers and then resets
# the connection (SO_LINGER 0) must not crash idprovd (it used to free the
# connection filter twice: heap-use-after-free in conn_free under ASan).
# Many rounds; after them the server is still up, answers, logged no
# libevent reference warning and no sanitizer report, and stops cleanly.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

probe=$IDP_BUILD/tools/idp_probe # --log-burst 0 below: every request is logged, and counted
st=$T_TMP/state
t_run "server listens" srv_start "$st" --log-burst 0

"$probe" flood "$SRV_PORT" 30000 40 /v1/ca >"$T_TMP/flood" 2>&1
rc=$?
t_run "40 rounds of 30000 pipelined requests, each reset, all connected (exit $rc)" [ "$rc" -eq 0 ]
t_run "every round was sent" [ "$(grep -c '^round .* sent [1-9]' "$T_TMP/flood")" -eq 40 ]
t_run "server still running" kill -0 "$SRV_PID"
srv_curl -o "$T_TMP/ca" "$SRV_URL/v1/ca"
t_run "server still answers GET /v1/ca" cmp -s "$T_TMP/ca" "$st/ca.pem"
t_refuse "no libevent reference warning" grep -q 'too few references' "$SRV_ERR"
t_refuse "no sanitizer report" grep -qE 'AddressSanitizer|runtime error' "$SRV_ERR"
n=$(grep -c "event=http.request" "$SRV_ERR")
t_run "the server answered pipelined requests before the resets ($n)" [ "$n" -gt 100 ]
srv_stop
t_run "exits 0 after the attack" [ "$SRV_RC" -eq 0 ]
t_done
