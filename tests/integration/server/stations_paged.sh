#!/usr/bin/env bash
# stations_paged.sh - GET /v1/admin/stations pages like the other listings:
# with 1,500 stations (more than one answer holds, FMT_ADMIN_LIST_MAX 1000)
# the first page has 1000 rows and "next", ?after= gives the other 500 and
# no "next", every station exactly once in ID order; idprov-admin station
# list --after does the same; a bad after is refused. Before, this answered
# 500 ("cannot encode the answer") past 1000 stations.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "server starts (creates the database)" srv_start "$st" --threads 1
t_run "server stops" srv_stop
# 1,500 stations written beside idprovd's schema (the server is stopped):
# IDs st-0001..st-1500, distinct 91-byte key blobs (listed by their SHA-256).
sqlite3 "$st/idprov.db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
	INSERT INTO stations (id, public_key, enabled, created_at)
	SELECT printf('st-%04d', i), randomblob(91), 1, 1764526805 FROM n;"
t_run "1500 stations stored" [ "$(sqlite3 -readonly "$st/idprov.db" 'select count(*) from stations')" = 1500 ]
t_run "server starts again" srv_start "$st" --threads 1
token=$(cat "$st/admin.token")
get() { srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Bearer $token" "$SRV_URL/v1/admin/$1"; }

t_run "page 1: 200" [ "$(get stations)" = 200 ]
t_run "page 1: 1000 rows" [ "$(jq '.stations | length' "$T_TMP/out")" = 1000 ]
t_run "page 1: next is the last row's ID" [ "$(jq -r '.next' "$T_TMP/out")" = st-1000 ]
jq -r '.stations[].id' "$T_TMP/out" >"$T_TMP/ids"
t_run "page 2: 200" [ "$(get 'stations?after=st-1000')" = 200 ]
t_run "page 2: 500 rows, no next" [ "$(jq '[(.stations | length), has("next")] | tostring' "$T_TMP/out")" = '"[500,false]"' ]
jq -r '.stations[].id' "$T_TMP/out" >>"$T_TMP/ids"
seq -f 'st-%04g' 1 1500 >"$T_TMP/want"
t_run "every station once, in ID order" cmp -s "$T_TMP/ids" "$T_TMP/want"
t_run "a bad after: 400" [ "$(get 'stations?after=-x')" = 400 ]
t_run "an unknown parameter: 400" [ "$(get 'stations?page=2')" = 400 ]

adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$st/admin.token" "$@"; }
adm station list >"$T_TMP/t1"
t_grep "station list: a table, and how to go on" '^more: continue with --after st-1000$' "$T_TMP/t1"
adm --json station list --after st-1400 >"$T_TMP/t2"
t_run "station list --after: the last 100" [ "$(jq '.stations | length' "$T_TMP/t2")" = 100 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
