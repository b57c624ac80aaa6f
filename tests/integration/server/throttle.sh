#!/usr/bin/env bash
# throttle.sh - the per-address throttle of POST /v1/nonce and /v1/provision
# over real HTTPS: a flood from 127.0.0.2 gets its burst, then 429 with
# Retry-After and the JSON "throttled" error, and writes no rows; meanwhile
# 127.0.0.1 is answered normally; a throttled provision request is refused
# before its body is parsed; the refusals are logged and in /metrics;
# throttle-per-minute 0 turns it off.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

burst=5
t_run "server starts" srv_start "$T_TMP/srv" --throttle-per-minute 1 --throttle-burst $burst
token=$(cat "$T_TMP/srv/admin.token")
db=$T_TMP/srv/idprov.db
nonces() { sqlite3 -readonly "$db" "select count(*) from nonces"; }

# 20 nonce requests from 127.0.0.2 on one keep-alive connection: the codes
# in order, one a line.
# (curl's -o applies to one URL: each gets its own.)
set_urls() { urls=(); for _ in $(seq 1 20); do urls+=(-o /dev/null "$SRV_URL/v1/nonce"); done; }
set_urls
srv_curl --interface 127.0.0.2 -X POST -H 'Content-Length: 0' -D "$T_TMP/flood.h" \
	-w '%{http_code}\n' "${urls[@]}" >"$T_TMP/flood"
t_run "flood: the burst answered 200" [ "$(head -$burst "$T_TMP/flood" | sort -u)" = 200 ]
t_run "flood: the rest 429" [ "$(tail -n +$((burst + 1)) "$T_TMP/flood" | sort -u)" = 429 ]
t_run "flood: 20 answers" [ "$(wc -l <"$T_TMP/flood")" = 20 ]
t_grep "flood: Retry-After given" '^Retry-After: [1-9][0-9]*' "$T_TMP/flood.h"
t_run "flood: only the burst's nonces stored" [ "$(nonces)" = $burst ]

# Another address is not slowed: its own burst is whole (the first $burst
# URLs of the list: each is "-o /dev/null URL").
srv_curl --interface 127.0.0.1 -X POST -H 'Content-Length: 0' \
	-w '%{http_code}\n' "${urls[@]:0:$((burst * 3))}" >"$T_TMP/other.codes"
t_run "127.0.0.1 meanwhile: all $burst answered 200" [ "$(sort -u "$T_TMP/other.codes")" = 200 ]
t_run "127.0.0.1's nonces stored" [ "$(nonces)" = $((burst * 2)) ]

code=$(srv_curl --interface 127.0.0.2 -o "$T_TMP/body" -D "$T_TMP/h" -w '%{http_code}' -X POST \
	-H 'Content-Type: application/json' --data-binary '{"not":"parsed"}' "$SRV_URL/v1/provision")
t_run "throttled provision: 429 before the body is parsed" [ "$code" = 429 ]
t_grep "throttled provision: JSON error throttled" '"code":"throttled"' "$T_TMP/body"
t_grep "throttled provision: names the address" 'too many requests from 127.0.0.2' "$T_TMP/body"
ra=$(sed -n 's/^Retry-After: \([0-9]*\).*/\1/p' "$T_TMP/h")
t_grep "throttled provision: retry_after in the body equals the header" "\"retry_after\":$ra}" "$T_TMP/body"
t_grep "throttled: logged" 'event=request.throttled .*source=127.0.0.2' "$SRV_ERR"
t_run "health is not throttled" [ "$(srv_curl --interface 127.0.0.2 -o /dev/null -w '%{http_code}' "$SRV_URL/v1/health")" = 200 ]
srv_curl -o "$T_TMP/metrics" -H "Authorization: Bearer $token" "$SRV_URL/metrics"
t_grep "metrics: the refusals counted" '^idprov_throttled_total\{by="address"\} 16$' "$T_TMP/metrics"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]

t_run "server starts without throttling" srv_start "$T_TMP/srv" --throttle-per-minute 0
set_urls
srv_curl --interface 127.0.0.2 -X POST -H 'Content-Length: 0' \
	-w '%{http_code}\n' "${urls[@]}" >"$T_TMP/flood"
t_run "throttle off: all 20 answered 200" [ "$(sort -u "$T_TMP/flood")" = 200 ]
srv_stop
t_run "server stops cleanly again" [ "$SRV_RC" -eq 0 ]
t_done
