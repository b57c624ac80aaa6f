#!/usr/bin/env bash
# roles.sh - named admin credentials with roles over real HTTPS: the state
# directory's admin.token is the credential "admin"; idprov-admin credential
# add/list/revoke; a viewer reads (lists, audit, metrics, whoami) but every
# write is refused 403 before its body is read, audited with the viewer's
# name as actor, and changes nothing; a revoked credential is refused 401 at
# once; every audit entry names its actor; secrets never reach the log or
# the database.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "server starts" srv_start "$st"
db=$st/idprov.db
tf=$st/admin.token
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" "$@"; }
snap() { sqlite3 -readonly "$db" "select name, role, revoked_at from admin_credentials; select count(*) from stations;"; }

t_run "whoami with admin.token" adm --token-file "$tf" --json whoami >"$T_TMP/who"
t_grep "the state directory's credential is named admin" '"name":"admin","role":"admin"' "$T_TMP/who"
adm --token-file "$tf" whoami >"$T_TMP/who.txt"
t_grep "whoami as a table by default" '^role +admin$' "$T_TMP/who.txt"

t_run "credential add viewer (to a file)" adm --token-file "$tf" credential add ops-view \
	--role viewer --out "$T_TMP/view.token" >"$T_TMP/add.out"
t_run "secret file is mode 0600" [ "$(stat -c %a "$T_TMP/view.token")" = 600 ]
t_refuse "secret not printed when written to a file" grep -qF "$(cat "$T_TMP/view.token")" "$T_TMP/add.out"
t_run "credential add admin (printed once)" adm --token-file "$tf" --json credential add ops-admin \
	--role admin >"$T_TMP/add2.out"
sed -n 's/.*"secret":"\([^"]*\)".*/\1/p' "$T_TMP/add2.out" >"$T_TMP/adm2.token"
t_run "printed secret is 43 characters" [ "$(tr -d '\n' <"$T_TMP/adm2.token" | wc -c)" = 43 ]
view=$(cat "$T_TMP/view.token")
adm2=$(cat "$T_TMP/adm2.token")
t_refuse "secrets not in the database" bash -c "sqlite3 -readonly '$db' .dump | grep -qF -e '$view' -e '$adm2'"

code=$(adm --token-file "$tf" credential add ops-view --role admin 2>"$T_TMP/dup.err"; echo $?)
t_run "a taken name is refused (exit 1)" [ "$code" = 1 ]
t_grep "taken name named" 'ops-view: the name is taken' "$T_TMP/dup.err"
code=$(adm --token-file "$tf" credential add x --role root 2>"$T_TMP/role.err"; echo $?)
t_run "an unknown role is refused" [ "$code" = 1 ]
t_grep "unknown role named" 'role: must be admin or viewer' "$T_TMP/role.err"
code=$(adm --token-file "$tf" credential add 'a b' --role viewer 2>/dev/null; echo $?)
t_run "a bad name is refused" [ "$code" = 1 ]
code=$(adm --token-file "$tf" credential add admin --role viewer 2>/dev/null; echo $?)
t_run "the name admin is reserved" [ "$code" = 1 ]

t_run "viewer: whoami" adm --token-file "$T_TMP/view.token" --json whoami >"$T_TMP/who"
t_grep "viewer named with its role" '"name":"ops-view","role":"viewer"' "$T_TMP/who"
t_run "viewer: devices list" adm --token-file "$T_TMP/view.token" devices
t_run "viewer: credential list" adm --token-file "$T_TMP/view.token" --json credential list >"$T_TMP/list"
t_grep "list shows both with roles" '"name":"ops-view","role":"viewer"' "$T_TMP/list"
t_refuse "list shows no secret or hash" grep -qE 'secret|hash' "$T_TMP/list"
t_run "viewer: audit verify" adm --token-file "$T_TMP/view.token" audit verify
code=$(srv_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $view" "$SRV_URL/metrics")
t_run "viewer: metrics 200" [ "$code" = 200 ]

before=$(snap)
pub=$IDP_TOP/samples/manifests/sample-station-p256.pub
code=$(adm --token-file "$T_TMP/view.token" station add st-v "$pub" 2>"$T_TMP/deny.err"; echo $?)
t_run "viewer: station add refused (exit 1)" [ "$code" = 1 ]
t_grep "viewer: 403 forbidden, read-only named" '403 forbidden.*role viewer: read-only' "$T_TMP/deny.err"
code=$(adm --token-file "$T_TMP/view.token" credential add sneaky --role admin 2>/dev/null; echo $?)
t_run "viewer: cannot add a credential" [ "$code" = 1 ]
code=$(adm --token-file "$T_TMP/view.token" credential revoke ops-admin 2>/dev/null; echo $?)
t_run "viewer: cannot revoke" [ "$code" = 1 ]
# Refused on the head: a large body is never read (no 413, no wait for it).
code=$(head -c 100000 /dev/zero | srv_curl -o "$T_TMP/out" -w '%{http_code}' \
	-H "Authorization: Bearer $view" -H 'Content-Type: application/json' \
	--data-binary @- "$SRV_URL/v1/admin/devices/approve")
t_run "viewer: write refused on the head 403" [ "$code" = 403 ]
t_grep "viewer: JSON error forbidden" '"code":"forbidden"' "$T_TMP/out"
t_run "viewer's refused writes changed nothing" [ "$(snap)" = "$before" ]
t_run "refusals audited with the viewer as actor" [ "$(sqlite3 -readonly "$db" \
	"select count(*) from audit where event='admin.denied' and actor='ops-view'")" -ge 4 ]

t_run "second admin: station add" adm --token-file "$T_TMP/adm2.token" station add st-2 "$pub"
t_run "its audit entry names ops-admin" [ "$(sqlite3 -readonly "$db" \
	"select actor from audit where event='admin.station_added' and subject='st-2'")" = ops-admin ]
t_run "admin: revoke the viewer" adm --token-file "$tf" credential revoke ops-view
t_run "revocation audited by admin" [ "$(sqlite3 -readonly "$db" \
	"select actor from audit where event='admin.credential_revoked' and subject='ops-view'")" = admin ]
code=$(srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Bearer $view" "$SRV_URL/v1/admin/whoami")
t_run "revoked credential refused 401 at once" [ "$code" = 401 ]
code=$(adm --token-file "$tf" credential revoke ops-view 2>/dev/null; echo $?)
t_run "revoking twice is refused" [ "$code" = 1 ]
code=$(adm --token-file "$tf" credential revoke admin 2>"$T_TMP/rv.err"; echo $?)
t_run "the built-in admin cannot be revoked over the API" [ "$code" = 1 ]
t_grep "names --reset-admin" 'reset-admin' "$T_TMP/rv.err"
code=$(adm --token-file "$tf" credential add ops-view --role viewer 2>/dev/null; echo $?)
t_run "a revoked name is not reused" [ "$code" = 1 ]
# A forged credential: the right length, wrong bytes; a truncated one.
code=$(srv_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(t_forge "$adm2")" "$SRV_URL/v1/admin/whoami")
t_run "forged credential 401" [ "$code" = 401 ]
code=$(srv_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${adm2:0:20}" "$SRV_URL/v1/admin/whoami")
t_run "truncated credential 401" [ "$code" = 401 ]
t_run "no audit entry without an actor" [ "$(sqlite3 -readonly "$db" \
	"select count(*) from audit where actor is null or actor = ''")" = 0 ]
t_run "audit chain still verifies" adm --token-file "$tf" audit verify
t_refuse "no secret in the log" grep -qF -e "$view" -e "$adm2" -e "$(cat "$tf")" "$SRV_ERR"

# An existing state directory keeps working across a restart: admin.token
# and the named credentials.
t_run "server stops" srv_stop
t_run "server restarts" srv_start "$st"
t_run "admin.token after restart" adm --token-file "$tf" whoami
t_run "named admin after restart" adm --token-file "$T_TMP/adm2.token" whoami
t_done
