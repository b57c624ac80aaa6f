#!/usr/bin/env bash
# limits.sh - idprovd's bounds: oversized body (413), oversized head (431),
# chunked body (411), unknown path and wrong method, all with JSON errors;
# slow-loris clients (one head byte a second, over TLS and over bare TCP)
# cut off by the head deadline; the connection bound holds new clients
# until a slot frees.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "server listens" srv_start "$st" --threads 1 --header-timeout 4 --max-connections 3

json_err() { # DESC CODE ERRCODE CURL-ARGS...
	local d=$1 code=$2 ec=$3
	shift 3
	srv_curl -o "$T_TMP/body" -w '%{http_code}' "$@" >"$T_TMP/code" 2>/dev/null
	if [ "$(cat "$T_TMP/code")" = "$code" ] &&
		grep -qE "^\{\"error\":\{\"code\":\"$ec\",\"message\":\"[^\"]+\"\}\}$" "$T_TMP/body"; then
		t_ok "$d"
	else
		t_fail "$d (got $(cat "$T_TMP/code"): $(head -c 200 "$T_TMP/body"))"
	fi
}

head -c 70000 /dev/zero >"$T_TMP/big"
json_err "oversized body gets 413 JSON" 413 too_large -X POST --data-binary @"$T_TMP/big" "$SRV_URL/v1/health"
json_err "oversized head gets 431 JSON" 431 headers_too_large -H "X-Pad: $(head -c 9000 /dev/zero | tr '\0' a)" "$SRV_URL/v1/health"
json_err "chunked body gets 411 JSON" 411 length_required -H 'Transfer-Encoding: chunked' -X POST -d x "$SRV_URL/v1/health"
json_err "unknown path gets 404 JSON" 404 not_found "$SRV_URL/v1/nothing"
json_err "wrong method gets 405 JSON" 405 method_not_allowed -X POST -d '{}' "$SRV_URL/v1/health"
srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/health" >"$T_TMP/code"
t_run "a normal request after the refusals" [ "$(cat "$T_TMP/code")" = 200 ]

# Slow loris over TLS: a request head one byte a second for up to 12 s.
# Asserted on events, not on a time window: the server logs one head
# deadline for the connection and closes it (the client did not end by
# itself: `timeout` did not have to stop it, exit 124).
deadlines() { grep -c 'event=conn.deadline' "$SRV_ERR"; }
before=$(deadlines)
(for c in G E T ' ' / v 1 / h e a l; do printf '%s' "$c"; sleep 1; done) |
	timeout 20 openssl s_client -quiet -no_ign_eof -CAfile "$SRV_CA" -connect 127.0.0.1:$SRV_PORT \
		>"$T_TMP/loris" 2>&1
rc=$?
t_run "slow-loris TLS client closed by the server (exit $rc, not 124)" [ "$rc" -ne 124 ]
t_run "its head deadline is logged" [ "$(deadlines)" -eq $((before + 1)) ]
# Slow loris before TLS: a bare TCP connection that never speaks.
before=$(deadlines)
timeout 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SRV_PORT; cat <&3 >/dev/null"
rc=$?
t_run "silent TCP client closed by the server (exit $rc, not 124)" [ "$rc" -ne 124 ]
t_run "its head deadline is logged" [ "$(deadlines)" -eq $((before + 1)) ]

# Connection bound: 3 idle TLS clients hold every slot; a 4th waits.
holders=()
for _ in 1 2 3; do
	(sleep 8 | openssl s_client -quiet -no_ign_eof -CAfile "$SRV_CA" -connect 127.0.0.1:$SRV_PORT \
		>/dev/null 2>&1) &
	holders+=($!)
	T_CLEANUP+=("kill ${holders[-1]} 2>/dev/null")
done
sleep 1
t_refuse "a client over the bound gets no handshake" \
	curl -s --max-time 1.5 --cacert "$SRV_CA" -o /dev/null "$SRV_URL/v1/health"
srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/health" >"$T_TMP/code" 2>/dev/null
t_run "served once the deadline frees the slots" [ "$(cat "$T_TMP/code")" = 200 ]
kill "${holders[@]}" 2>/dev/null
for p in "${holders[@]}"; do wait "$p" 2>/dev/null; done
srv_stop
t_run "exits 0" [ "$SRV_RC" -eq 0 ]
t_done
