#!/usr/bin/env bash
# credential.sh - the admin credential (issue 8, items 6 and 9): bogus bearers
# (wrong, short, long, empty, other scheme, a flood of them) are answered 401
# while the right one works; the hash is read once at start (a damaged
# admin.hash under a running server changes nothing); the credential never
# appears in idprovd's output; --reset-admin writes a new one (0600) and the
# running server swaps on SIGHUP: the old one fails, the new one works. The
# flood's log lines are cut to the burst and every dropped one is counted.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "server starts" srv_start "$st" --log-burst 5
token=$(cat "$st/admin.token")
t_run "credential is 43 base64url characters" bash -c "[[ '$token' =~ ^[A-Za-z0-9_-]{43}\$ ]]"

# status BEARER-HEADER-VALUE: GET /v1/admin/stations with that Authorization;
# every status is also kept in $T_TMP/codes.
status() {
	local code
	code=$(srv_curl -o /dev/null -w '%{http_code}' -H "Authorization: $1" \
		"$SRV_URL/v1/admin/stations")
	echo "$code" >>"$T_TMP/codes"
	echo "$code"
}
t_run "right credential: 200" [ "$(status "Bearer $token")" = 200 ]
t_run "wrong credential: 401" [ "$(status "Bearer $(t_forge "$token")")" = 401 ]
t_run "short (one byte less): 401" [ "$(status "Bearer ${token%?}")" = 401 ]
t_run "long (one byte more): 401" [ "$(status "Bearer ${token}A")" = 401 ]
t_run "very long: 401" [ "$(status "Bearer $token$(head -c 300 /dev/zero | tr '\0' A)")" = 401 ]
t_run "empty bearer: 401" [ "$(status "Bearer ")" = 401 ]
t_run "other scheme: 401" [ "$(status "Basic $token")" = 401 ]

# A flood of bogus bearers on parallel connections: every one 401, and the
# server still answers the right credential and health afterwards.
seq 1 400 | xargs -P 8 -I{} curl -s --max-time 20 --cacert "$SRV_CA" -o /dev/null \
	-w '%{http_code}\n' -H 'Authorization: Bearer bogus-{}' "$SRV_URL/v1/admin/stations" \
	>"$T_TMP/flood"
t_run "400 bogus bearers: all 401" [ "$(grep -c '^401$' "$T_TMP/flood")" = 400 ]
cat "$T_TMP/flood" >>"$T_TMP/codes"
t_run "after the flood the credential works" [ "$(status "Bearer $token")" = 200 ]

# The hash is loaded once: replacing admin.hash under the running server
# (here with garbage) changes nothing until a reload, which refuses it.
cp -p "$st/admin.hash" "$T_TMP/admin.hash.saved"
printf 'sha256 AAAA\n' >"$st/admin.hash"
t_run "damaged admin.hash not re-read per request" [ "$(status "Bearer $token")" = 200 ]
kill -HUP "$SRV_PID"
for _ in $(seq 1 100); do grep -q 'event=admin.reload' "$SRV_ERR" && break; sleep 0.1; done
t_grep "reload of a damaged hash is refused and logged" 'event=admin.reload_failed .*admin.hash' "$SRV_ERR"
t_run "the credential in use stays" [ "$(status "Bearer $token")" = 200 ]
cp -p "$T_TMP/admin.hash.saved" "$st/admin.hash"

# Reset while the server runs; it swaps on SIGHUP.
"$IDP_BIN/idprovd" --reset-admin --state-dir "$st" >"$T_TMP/reset.out" 2>"$T_TMP/reset.err"
t_run "--reset-admin exits 0" [ $? -eq 0 ]
new=$(cat "$st/admin.token")
t_run "a new credential" [ "$new" != "$token" ]
t_run "admin.token is 0600" [ "$(stat -c %a "$st/admin.token")" = 600 ]
t_grep "--reset-admin names the file" "new admin credential in $st/admin.token" "$T_TMP/reset.err"
t_refuse "--reset-admin prints no secret" grep -qF -- "$new" "$T_TMP/reset.out" "$T_TMP/reset.err"
t_run "old credential works until the reload" [ "$(status "Bearer $token")" = 200 ]
n=$(grep -c 'event=admin.reloaded' "$SRV_ERR")
kill -HUP "$SRV_PID"
for _ in $(seq 1 100); do
	[ "$(grep -c 'event=admin.reloaded' "$SRV_ERR")" -gt "$n" ] && break
	sleep 0.1
done
t_grep "the reload is logged" 'event=admin.reloaded' "$SRV_ERR"
t_run "old credential now 401" [ "$(status "Bearer $token")" = 401 ]
t_run "new credential 200" [ "$(status "Bearer $new")" = 200 ]
t_refuse "no credential in idprovd's stdout" grep -qF -e "$token" -e "$new" "$SRV_OUT"
t_refuse "no credential in idprovd's log" grep -qF -e "$token" -e "$new" "$SRV_ERR"
srv_stop
# The log is rate-limited (--log-burst 5 per event per second): every refusal
# is either a line or counted in a log.suppressed line, none is lost.
n401=$(grep -c '^401$' "$T_TMP/codes")
lines=$(grep -c 'event=admin.unauthorized ' "$SRV_ERR")
dropped=$(sed -n 's/.*event=log.suppressed of=admin.unauthorized count=\([0-9]*\).*/\1/p' "$SRV_ERR" |
	awk '{s += $1} END {print s + 0}')
echo "# 401 answers: $n401, logged: $lines, suppressed: $dropped"
t_run "each 401 logged or counted as suppressed" [ $((lines + dropped)) -eq "$n401" ]
total=$(sed -n 's/.*event=http.stopped status=0 log_suppressed=\([0-9]*\).*/\1/p' "$SRV_ERR")
all=$(sed -n 's/.*event=log.suppressed of=[^ ]* count=\([0-9]*\).*/\1/p' "$SRV_ERR" |
	awk '{s += $1} END {print s + 0}')
t_run "the stop line counts every suppressed line (all events)" [ "${total:-x}" = "$all" ]

# A restart keeps the new credential; the old stays refused.
t_run "restart" srv_start "$st"
t_run "after restart: new 200" [ "$(status "Bearer $new")" = 200 ]
t_run "after restart: old 401" [ "$(status "Bearer $token")" = 401 ]
srv_stop

# An scrypt admin.hash of an older idprovd: refused at start, with the way out.
printf 'scrypt 16384 8 1 AAAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n' \
	>"$st/admin.hash"
"$IDP_BIN/idprovd" --foreground --state-dir "$st" --listen 127.0.0.1:0 >"$T_TMP/old.out" 2>&1
t_run "old scrypt hash: start refused" [ $? -eq 1 ]
t_grep "the refusal says to run --reset-admin" "scrypt hash .*idprovd --reset-admin" "$T_TMP/old.out"
t_run "--reset-admin fixes it" "$IDP_BIN/idprovd" --reset-admin --state-dir "$st" 2>/dev/null
t_run "then the server starts" srv_start "$st"
t_run "with the newest credential" [ "$(status "Bearer $(cat "$st/admin.token")")" = 200 ]
srv_stop
t_done
