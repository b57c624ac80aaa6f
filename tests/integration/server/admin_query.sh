#!/usr/bin/env bash
# admin_query.sh - every admin listing parses its query with the one parser
# (srv_admin_query, server/admin.h): a parameter it does not list, one given
# twice, or a malformed value is answered 400 invalid_field naming the
# parameter, and nothing is listed. GET /v1/admin/devices parsed its own
# query and ignored unknown and repeated parameters (200); the out-of-band
# listing took any after (200); both are refused now.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "server starts" srv_start "$st"
token=$(cat "$st/admin.token")
get() { srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Bearer $token" "$SRV_URL/v1/admin/$1"; }
# refused PATH MESSAGE: 400 invalid_field with a message that starts with
# MESSAGE (an ERE).
refused() {
	t_run "$1: 400" [ "$(get "$1")" = 400 ]
	t_grep "$1: named" "^\\{\"error\":\\{\"code\":\"invalid_field\",\"message\":\"$2" "$T_TMP/out"
}

t_run "devices: 200" [ "$(get 'devices?state=pending&after=dev-1')" = 200 ]
t_run "devices: a list" [ "$(jq -c '.devices' "$T_TMP/out")" = '[]' ]
refused 'devices?page=2' 'query: unknown parameter page'
refused 'devices?state=pending&state=approved' 'query: repeated parameter state'
refused 'devices?after=dev-1&after=dev-2' 'query: repeated parameter after'
refused 'devices?state=lost' 'state: must be preloaded, pending, approved, rejected or revoked'
refused 'devices?after=-x' 'after: '
refused 'devices?state=%ff%fe' 'state: must be'
t_run "devices: a malformed query: 400" [ "$(get 'devices?%zz')" = 400 ]
refused 'oob?after=-x' 'after: '
refused 'oob?after=dev-1&after=dev-2' 'query: repeated parameter after'
# Every listing: an unknown parameter and a repeated one (its own "after",
# or "station" for the batches, "since_seq" for the export).
for p in stations:after devices:after flags:after audit:after report/unprovisioned:after \
	oob:after credentials:after allow:after cas:after batches:station audit/export:since_seq; do
	path=${p%%:*} name=${p#*:}
	refused "$path?colour=red" 'query: unknown parameter colour'
	refused "$path?$name=1&$name=2" "query: repeated parameter $name"
done
# No parameters at all.
for path in whoami audit/verify suspension; do
	refused "$path?colour=red" 'query: unknown parameter colour'
done
# The parameter's name is quoted and escaped as any client text in an answer.
refused 'devices?a%01b=1' 'query: unknown parameter .{2}a%01b.{2}"'
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
