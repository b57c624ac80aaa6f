#!/usr/bin/env bash
# session.sh - the web UI's session path without a browser (curl and the
# hostile client idp_probe on loopback): the files under /ui/ with their
# types and security headers; login refuses wrong, malformed, oversized and
# cross-origin credentials; a session cookie reads the admin API, and
# changes only with its CSRF token; a forged, doubled or logged-out cookie is
# refused; a head announcing a 16 MiB body with the cookie but no token is
# refused before the body is read; a bearer still works beside sessions;
# logout needs the token; a restart ends every session (in-memory table).
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"

probe=$IDP_BUILD/tools/idp_probe
st=$T_TMP/state
t_run "server starts" srv_start "$st" --threads 1
token=$(cat "$st/admin.token")
jar=$T_TMP/jar
# code ARGS...: the status of a request (body to $T_TMP/out).
code() { srv_curl -o "$T_TMP/out" -w '%{http_code}' "$@"; }
login() { code -c "$jar" -H 'Content-Type: application/json' --data-binary "$1" "$SRV_URL/ui/login"; }

# --- the files ---------------------------------------------------------------
for f in /ui/ /ui /ui/index.html /ui/app.js /ui/api.js /ui/pages.js /ui/label.js /ui/style.css; do
	srv_curl -D "$T_TMP/h" -o "$T_TMP/f" "$SRV_URL$f"
	case $f in
	*.js) want='text/javascript' ;;
	*.css) want='text/css' ;;
	*) want='text/html' ;;
	esac
	t_run "$f: 200 $want with CSP, no framing, nosniff" grep -qiE "^content-type: $want" "$T_TMP/h"
	t_grep "$f: CSP self only" "^Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'.*frame-ancestors 'none'" "$T_TMP/h"
	t_grep "$f: X-Frame-Options DENY" '^X-Frame-Options: DENY' "$T_TMP/h"
	t_grep "$f: not for other sites' pages" '^Cross-Origin-Resource-Policy: same-origin' "$T_TMP/h"
done
t_refuse "index.html has no inline script or style" grep -qiE '<script>|<style|style=|on[a-z]+=' "$T_TMP/f"
t_run "a file that is not there: 404" [ "$(code "$SRV_URL/ui/nothere.js")" = 404 ]
t_run "HEAD /ui/app.js: 200" [ "$(code -I "$SRV_URL/ui/app.js")" = 200 ]

# --- login -------------------------------------------------------------------
t_run "wrong credential: 401" [ "$(login '{"credential":"nope"}')" = 401 ]
t_refuse "wrong credential: no cookie" grep -q 'idprov-session' "$jar"
t_run "not JSON: 400" [ "$(login 'credential=x')" = 400 ]
t_run "unknown member: 400" [ "$(login "{\"credential\":\"$token\",\"role\":\"admin\"}")" = 400 ]
t_run "credential of 300 bytes: 400" [ "$(login "{\"credential\":\"$(head -c 300 /dev/zero | tr '\0' a)\"}")" = 400 ]
t_run "login from another origin: 403" [ "$(code -H 'Origin: https://evil.example' -H 'Content-Type: application/json' --data-binary "{\"credential\":\"$token\"}" "$SRV_URL/ui/login")" = 403 ]
t_run "no session yet" [ "$(srv_curl "$SRV_URL/ui/session")" = '{"name":"","role":"none","csrf":"","idle_timeout":900}' ]
t_run "login: 200" [ "$(login "{\"credential\":\"$token\"}")" = 200 ]
csrf=$(sed -n 's/.*"csrf":"\([0-9a-f]\{64\}\)".*/\1/p' "$T_TMP/out")
t_run "login answers the name, the role and a CSRF token" grep -q '^{"name":"admin","role":"admin","csrf":"[0-9a-f]\{64\}"' "$T_TMP/out"
t_run "CSRF token is 64 hex digits" [ ${#csrf} = 64 ]
cookie=$(awk '$6 == "__Host-idprov-session" {print $6 "=" $7}' "$jar")
t_run "session cookie set" [ ${#cookie} = $((22 + 64)) ]
t_refuse "the credential is not logged" grep -qF -- "$token" "$SRV_ERR"
t_refuse "the session ID is not logged" grep -qF -- "${cookie#*=}" "$SRV_ERR"

# --- the admin API through the session -----------------------------------------
t_run "GET with the cookie: 200" [ "$(code -H "Cookie: $cookie" "$SRV_URL/v1/admin/devices")" = 200 ]
t_run "GET /metrics with the cookie: 200" [ "$(code -H "Cookie: $cookie" "$SRV_URL/metrics")" = 200 ]
post() { code -H 'Content-Type: application/json' --data-binary '{"id":"nobody"}' "$@" "$SRV_URL/v1/admin/devices/reject"; }
t_run "POST with cookie, no token: 403" [ "$(post -H "Cookie: $cookie")" = 403 ]
t_grep "names the missing token" 'X-CSRF-Token' "$T_TMP/out"
t_run "POST with cookie, other token: 403" [ "$(post -H "Cookie: $cookie" -H "X-CSRF-Token: $(t_forge "$csrf")")" = 403 ]
t_run "POST with cookie and token: reaches the handler (404 nobody)" [ "$(post -H "Cookie: $cookie" -H "X-CSRF-Token: $csrf")" = 404 ]
t_run "POST from another origin: 403" [ "$(post -H "Cookie: $cookie" -H "X-CSRF-Token: $csrf" -H 'Origin: https://evil.example')" = 403 ]
t_run "POST from its own origin: 404 nobody" [ "$(post -H "Cookie: $cookie" -H "X-CSRF-Token: $csrf" -H "Origin: $SRV_URL")" = 404 ]
t_run "forged cookie: 401" [ "$(code -H "Cookie: __Host-idprov-session=${csrf}" "$SRV_URL/v1/admin/devices")" = 401 ]
t_run "truncated cookie: 401" [ "$(code -H "Cookie: ${cookie%?}" "$SRV_URL/v1/admin/devices")" = 401 ]
t_run "cookie given twice: 401" [ "$(code -H "Cookie: $cookie; $cookie" "$SRV_URL/v1/admin/devices")" = 401 ]
t_run "the token alone is no credential: 401" [ "$(post -H "X-CSRF-Token: $csrf")" = 401 ]
t_run "a wrong bearer is not rescued by the cookie: 401" [ "$(code -H "Cookie: $cookie" -H 'Authorization: Bearer nope' "$SRV_URL/v1/admin/devices")" = 401 ]
t_run "the bearer still works: 200" [ "$(code -H "Authorization: Bearer $token" "$SRV_URL/v1/admin/devices")" = 200 ]

# A head with the cookie but no token, announcing 16 MiB: refused before
# the body is read (the connection filter checks the session too).
printf 'POST /v1/admin/import HTTP/1.1\r\nHost: x\r\nCookie: %s\r\nContent-Type: application/vnd.idprov.manifest\r\nContent-Length: %s\r\n\r\n' \
	"$cookie" $((16 * 1024 * 1024)) >"$T_TMP/head"
timeout 60 "$probe" slow "$SRV_PORT" 1 $((16 * 1024 * 1024)) "$T_TMP/head" >"$T_TMP/slow" 2>&1
t_grep "cookie without token, 16 MiB announced: 403 before the body" 'status=403$' "$T_TMP/slow"
t_grep "refusal at the head is logged" 'event=ui.refused phase=head why="session: missing or wrong X-CSRF-Token"' "$SRV_ERR"

# --- logout --------------------------------------------------------------------
t_run "logout without the token: 403" [ "$(code -X POST -H "Cookie: $cookie" -H 'Content-Length: 0' "$SRV_URL/ui/logout")" = 403 ]
t_run "session still alive after it" [ "$(code -H "Cookie: $cookie" "$SRV_URL/v1/admin/devices")" = 200 ]
t_run "logout: 200" [ "$(code -D "$T_TMP/lh" -X POST -H "Cookie: $cookie" -H "X-CSRF-Token: $csrf" -H 'Content-Length: 0' "$SRV_URL/ui/logout")" = 200 ]
t_grep "logout clears the cookie" '^Set-Cookie: __Host-idprov-session=; .*Max-Age=0' "$T_TMP/lh"
t_run "after logout the cookie is refused: 401" [ "$(code -H "Cookie: $cookie" "$SRV_URL/v1/admin/devices")" = 401 ]
t_run "after logout the cookie and token cannot change: 401" [ "$(post -H "Cookie: $cookie" -H "X-CSRF-Token: $csrf")" = 401 ]

# --- a new login ends the browser's earlier session ----------------------------------
login "{\"credential\":\"$token\"}" >/dev/null
old=$(awk '$6 == "__Host-idprov-session" {print $6 "=" $7}' "$jar")
t_run "login again with the old cookie: 200" [ "$(code -c "$jar" -H "Cookie: $old" -H 'Content-Type: application/json' --data-binary "{\"credential\":\"$token\"}" "$SRV_URL/ui/login")" = 200 ]
cookie=$(awk '$6 == "__Host-idprov-session" {print $6 "=" $7}' "$jar")
t_run "a new session ID" [ "$cookie" != "$old" ]
t_run "the old session is ended: 401" [ "$(code -H "Cookie: $old" "$SRV_URL/v1/admin/devices")" = 401 ]

# --- a restart ends every session ------------------------------------------------------
t_run "the new session works" [ "$(code -H "Cookie: $cookie" "$SRV_URL/v1/admin/devices")" = 200 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_run "server restarts" srv_start "$st" --threads 1
t_run "after a restart the session is gone: 401" [ "$(code -H "Cookie: $cookie" "$SRV_URL/v1/admin/devices")" = 401 ]
srv_stop
t_done
