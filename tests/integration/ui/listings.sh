#!/usr/bin/env bash
# listings.sh - the admin listings the web UI reads (server/admin_views.c):
# GET /v1/admin/batches walks each station's chain and shows a missing
# sequence and a batch not chained on the one before; ?station= filters,
# an unknown parameter or a bad ID is refused; GET /v1/admin/cas lists the
# trusted factory CA with the certificate's SHA-256 as openssl computes it;
# both refuse a request without a credential and accept a UI session.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"
. "$(dirname "$0")/site.inc"

t_run "server starts" srv_start "$T_TMP/srv" --threads 1
token=$(cat "$T_TMP/srv/admin.token")
get() { srv_curl -o "$T_TMP/out" -w '%{http_code}' "$@"; }
adm() { get -H "Authorization: Bearer $token" "$SRV_URL/v1/admin/$1"; }

t_run "empty site: no batches" [ "$(adm batches)" = 200 ]
t_grep "empty site: an empty list" '^\{"batches":\[\],"truncated":false\}$' "$T_TMP/out"
t_run "empty site: no CAs" [ "$(adm cas)" = 200 ]
t_grep "empty site: an empty CA list" '^\{"cas":\[\]\}$' "$T_TMP/out"
t_run "a station, a CA and batches 1 and 3" ui_site

t_run "batches: 200" [ "$(adm batches)" = 200 ]
t_grep "sequence 1 imported, chained on nothing" '"sequence":1,"missing":false,"id":"b-ui-1","state":"imported".*"prev_hash":null,"chained":true' "$T_TMP/out"
t_grep "sequence 2 missing" '\{"station_id":"station-01","sequence":2,"missing":true\}' "$T_TMP/out"
t_grep "sequence 3 imported after a gap, not chained on sequence 2" '"sequence":3,"missing":false,"id":"b-ui-3","state":"gap".*"chained":false' "$T_TMP/out"
t_run "three rows" [ "$(grep -o '"sequence":' "$T_TMP/out" | wc -l)" = 3 ]
b1=$(sqlite3 -readonly "$T_TMP/srv/idprov.db" "select lower(hex(hash)) from batches where id='b-ui-1'")
t_grep "the listed hash is the stored one" "\"id\":\"b-ui-1\".*\"hash\":\"$b1\"" "$T_TMP/out"
t_run "station filter: 200" [ "$(adm 'batches?station=station-01')" = 200 ]
t_run "station filter: same three rows" [ "$(grep -o '"sequence":' "$T_TMP/out" | wc -l)" = 3 ]
t_run "other station: 200" [ "$(adm 'batches?station=station-02')" = 200 ]
t_grep "other station: none" '^\{"batches":\[\],"truncated":false\}$' "$T_TMP/out"
t_run "bad station ID: 400" [ "$(adm 'batches?station=-x')" = 400 ]
t_run "unknown parameter: 400" [ "$(adm 'batches?page=1')" = 400 ]
t_grep "the unknown parameter is named, as on every admin listing" \
	'"message":"query: unknown parameter page"' "$T_TMP/out"
t_run "no credential: 401" [ "$(get "$SRV_URL/v1/admin/batches")" = 401 ]

t_run "CAs: 200" [ "$(adm cas)" = 200 ]
t_grep "the CA by name, SHA-256 and subject" "\"name\":\"line-1\",\"sha256\":\"$UI_CA_SHA\",\"subject\":\"/O=idprov SAMPLE/CN=SAMPLE factory CA" "$T_TMP/out"
t_grep "its expiry" '"not_after":"20[0-9]{2}-[0-9]{2}-[0-9]{2}T' "$T_TMP/out"
t_run "CAs without credential: 401" [ "$(get "$SRV_URL/v1/admin/cas")" = 401 ]

srv_curl -c "$T_TMP/jar" -o /dev/null -H 'Content-Type: application/json' \
	--data-binary "{\"credential\":\"$token\"}" "$SRV_URL/ui/login"
cookie=$(awk '$6 == "__Host-idprov-session" {print $6 "=" $7}' "$T_TMP/jar")
t_run "batches with a UI session: 200" [ "$(get -H "Cookie: $cookie" "$SRV_URL/v1/admin/batches")" = 200 ]
t_run "CAs with a UI session: 200" [ "$(get -H "Cookie: $cookie" "$SRV_URL/v1/admin/cas")" = 200 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
