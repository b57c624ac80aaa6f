#!/usr/bin/env bash
# admin.sh - idprovd's admin API (/v1/admin/): a missing or wrong bearer
# token is refused 401 and changes nothing; a station is trusted by key; a
# manifest it signed imports by file (its devices preloaded), twice imports
# once, tampered is refused with nothing changed; revoke and release are
# recorded with their audit entries; bad bodies are refused; one key under
# two enabled station IDs is refused, moving it from a disabled one is flagged.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

samples=$IDP_TOP/samples/manifests
st=$T_TMP/state
t_run "server starts" srv_start "$st"
token=$(cat "$st/admin.token")
db=$st/idprov.db
snap() { sqlite3 -readonly "$db" .dump; }

# admin METHOD PATH [CURL ARGS...]: the body to $T_TMP/out, the status printed.
admin() {
	local path=$1
	shift
	srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Bearer $token" \
		"$SRV_URL/v1/admin/$path" "$@"
}
json() { admin "$1" -H 'Content-Type: application/json' --data-binary "$2"; }

# PEM as a JSON string (newlines escaped).
pem_json() { awk '{printf "%s\\n", $0}' "$1"; }
body="{\"id\":\"station-01\",\"public_key\":\"$(pem_json "$samples/sample-station-p256.pub")\"}"
ca_body="{\"pem\":\"$(pem_json "$samples/sample-factory-ca.pem")\"}"
der64=$(openssl pkey -pubin -in "$samples/sample-station-ed25519.pub" -outform DER | base64 -w0)

snap >"$T_TMP/before"
code=$(srv_curl -o "$T_TMP/out" -w '%{http_code}' -H 'Content-Type: application/json' \
	--data-binary "$body" "$SRV_URL/v1/admin/stations")
t_run "no token: 401" [ "$code" = 401 ]
t_grep "no token: JSON error" '"code":"unauthorized"' "$T_TMP/out"
code=$(srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Bearer $(t_forge "$token")" \
	-H 'Content-Type: application/json' --data-binary "$body" "$SRV_URL/v1/admin/stations")
t_run "wrong token: 401" [ "$code" = 401 ]
code=$(srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Basic $token" \
	--data-binary @"$samples/sample-es256.manifest" "$SRV_URL/v1/admin/import")
t_run "other scheme: 401" [ "$code" = 401 ]
t_run "refused requests changed nothing" bash -c "[ \"\$(sqlite3 -readonly '$db' .dump)\" = \"\$(cat '$T_TMP/before')\" ]"
t_refuse "token not in the log" grep -qF -- "$token" "$SRV_ERR"

t_run "bad key refused 400" [ "$(json stations '{"id":"station-01","public_key":"bm90IGEga2V5"}')" = 400 ]
t_run "unknown member refused 400" [ "$(json stations '{"id":"s","public_key":"x","x":1}')" = 400 ]
t_grep "unknown member: invalid_field" '"code":"invalid_field"' "$T_TMP/out"
t_run "empty body refused 400" [ "$(json devices/approve '')" = 400 ]
t_grep "empty body: bad_request" '"code":"bad_request"' "$T_TMP/out"
# The Ed25519 identity point (small order: anyone can sign for it) as a station key.
weak='MCowBQYDK2VwAyEAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='
t_run "small-order station key refused 400" [ "$(json stations "{\"id\":\"station-w\",\"public_key\":\"$weak\"}")" = 400 ]
t_grep "small-order station key named" 'ed25519 public key is of small order' "$T_TMP/out"
t_run "small-order station key not stored" [ "$(sqlite3 -readonly "$db" "select count(*) from stations where id='station-w'")" = 0 ]
t_run "station add: 200" [ "$(json stations "$body")" = 200 ]
t_run "station in the store" [ "$(sqlite3 -readonly "$db" "select count(*) from stations where id='station-01'")" = 1 ]

# A manifest made now by idprov-manifest with the sample station key.
m=$T_TMP/b1.manifest
grep -v '^#' "$samples/devices.csv" | head -3 | cut -d, -f1-3 >"$T_TMP/devs.csv"
t_run "manifest created" "$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" \
	--batch b-admin-1 --station station-01 --seq 1 --product sx1 --devices "$T_TMP/devs.csv" \
	--format csv --out "$m" >/dev/null
sig=$(base64 -w0 "$m.sig")
import() {
	admin import -H 'Content-Type: application/vnd.idprov.manifest' \
		-H "Idprov-Signature: $sig" --data-binary @"$1"
}
head -c -2 "$m" >"$T_TMP/tampered.manifest"
printf 'x\n' >>"$T_TMP/tampered.manifest"
snap >"$T_TMP/before"
t_run "tampered manifest refused 403" [ "$(import "$T_TMP/tampered.manifest")" = 403 ]
t_run "tampered import changed nothing" bash -c "[ \"\$(sqlite3 -readonly '$db' .dump)\" = \"\$(cat '$T_TMP/before')\" ]"
t_run "import: 201" [ "$(import "$m")" = 201 ]
t_grep "import answers the batch" '"devices":3' "$T_TMP/out"
t_run "devices preloaded" [ "$(sqlite3 -readonly "$db" "select count(*) from devices where state='preloaded'")" = 3 ]
t_run "same import again: 200" [ "$(import "$m")" = 200 ]
t_grep "second import not created" '"created":false' "$T_TMP/out"
t_run "imported once" [ "$(sqlite3 -readonly "$db" "select count(*) from batches")" = 1 ]

t_run "revoke a preloaded device" [ "$(json devices/revoke '{"id":"dev-0001"}')" = 200 ]
t_run "device revoked" [ "$(sqlite3 -readonly "$db" "select state from devices where id='dev-0001'")" = revoked ]
t_run "revoke again: 409" [ "$(json devices/revoke '{"id":"dev-0001"}')" = 409 ]
t_run "approve a preloaded device: 409" [ "$(json devices/approve '{"id":"dev-0002"}')" = 409 ]
t_run "unknown device: 404" [ "$(json devices/reject '{"id":"nobody"}')" = 404 ]
# Pending devices are made by a provision request with a proof of possession,
# which shell cannot sign; two are written as the store would, with the
# server stopped (the request path is covered by tests/integration/server/test_provision.c).
srv_stop
t_run "pending devices written" sqlite3 "$db" "insert into devices(id, state, created_at, updated_at) values ('dev-p1', 'pending', 1, 1), ('dev-p2', 'pending', 1, 1)"
t_run "server restarts" srv_start "$st"
t_run "approve a pending device" [ "$(json devices/approve '{"id":"dev-p1"}')" = 200 ]
t_run "reject a pending device" [ "$(json devices/reject '{"id":"dev-p2"}')" = 200 ]
t_run "decisions stored" [ "$(sqlite3 -readonly "$db" "select group_concat(state) from (select state from devices where id like 'dev-p%' order by id)")" = approved,rejected ]
t_run "reject an approved device: 409" [ "$(json devices/reject '{"id":"dev-p1"}')" = 409 ]
t_run "release a serial" [ "$(json release '{"kind":"serial","value":"SX1-2026-000001"}')" = 200 ]
t_run "release a mac" [ "$(json release '{"kind":"mac","value":"02:1a:2b:00:00:01"}')" = 200 ]
t_run "bad kind refused" [ "$(json release '{"kind":"colour","value":"red"}')" = 400 ]
t_run "bad mac refused" [ "$(json release '{"kind":"mac","value":"02-1A"}')" = 400 ]
t_run "release audited with its value" [ "$(sqlite3 -readonly "$db" "select count(*) from audit where event='admin.released' and detail='mac 02:1a:2b:00:00:01'")" = 1 ]
t_run "releases stored" [ "$(sqlite3 -readonly "$db" "select count(*) from releases")" = 2 ]
t_run "audit entries" [ "$(sqlite3 -readonly "$db" "select count(*) from audit where event like 'admin.%'")" = 6 ]

t_run "CA add" [ "$(json cas "$ca_body")" = 200 ]
t_run "same CA again: 409" [ "$(json cas "$ca_body")" = 409 ]
t_run "a key is not a CA: 400" [ "$(json cas "{\"pem\":\"$(pem_json "$samples/sample-station-p256.pub")\"}")" = 400 ]
t_run "station add by base64 DER" [ "$(json stations "{\"id\":\"station-02\",\"public_key\":\"$der64\"}")" = 200 ]
# The idprov-admin CLI against the same server.
cli() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --json "$@" >"$T_TMP/cli" 2>&1; }
printf '%s\n' "$token" >"$T_TMP/token"
IDPROV_ADMIN_TOKEN=wrong cli revoke dev-0002
t_run "cli: wrong token exits 1" [ $? -eq 1 ]
t_grep "cli: names the server's error" 'refused \(401 unauthorized\)' "$T_TMP/cli"
env -u IDPROV_ADMIN_TOKEN "$IDP_BIN/idprov-admin" --server "$SRV_URL" revoke dev-0002 2>/dev/null
t_run "cli: no token exits 2" [ $? -eq 2 ]
cli --token-file "$T_TMP/token" --ca "$samples/sample-factory-ca.pem" revoke dev-0002
t_run "cli: other CA exits 3" [ $? -eq 3 ]
t_run "cli: import again" cli --token-file "$T_TMP/token" import "$m"
t_grep "cli: imported before" '"created":false' "$T_TMP/cli"
t_run "cli: revoke" env IDPROV_ADMIN_TOKEN="$token" "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" revoke dev-0002 >/dev/null
t_run "cli: station add with station-02's key refused" [ "$(cli --token-file "$T_TMP/token" station add station-03 "$samples/sample-station-ed25519.pub"; echo $?)" = 1 ]
t_grep "cli: the refusal names the key's station" 'already the key of station station-02' "$T_TMP/cli"
openssl genpkey -algorithm ed25519 2>/dev/null | openssl pkey -pubout -out "$T_TMP/st3.pub"
t_run "cli: station add" cli --token-file "$T_TMP/token" station add station-03 "$T_TMP/st3.pub"
t_run "cli: release a key" cli --token-file "$T_TMP/token" release key "$samples/sample-station-ed25519.pub"
t_run "cli: state in the store" [ "$(sqlite3 -readonly "$db" "select (select state from devices where id='dev-0002') || (select count(*) from stations) || (select count(*) from releases)")" = revoked33 ]
t_run "cli: station list" cli --token-file "$T_TMP/token" station list
t_grep "cli: stations listed" '"id":"station-03"' "$T_TMP/cli"
t_run "cli: devices --state revoked" cli --token-file "$T_TMP/token" devices --state revoked
t_run "cli: two revoked listed" [ "$(grep -o '"state":"revoked"' "$T_TMP/cli" | wc -l)" = 2 ]
t_run "cli: all devices" cli --token-file "$T_TMP/token" devices
t_run "cli: five listed" [ "$(grep -o '"id":' "$T_TMP/cli" | wc -l)" = 5 ]
t_run "cli: devices after dev-0003" cli --token-file "$T_TMP/token" devices --after dev-0003
t_grep "cli: page starts after" '^\{"devices":\[\{"id":"dev-p1".*"id":"dev-p2"[^{]*\]\}$' "$T_TMP/cli"
t_grep "cli: absent values listed as null" '"id":"dev-p1","state":"approved","mac":null,"serial":null,"batch_id":null' "$T_TMP/cli"
t_run "cli: flags" cli --token-file "$T_TMP/token" flags
t_grep "cli: flags listed" '^\{"flags":\[' "$T_TMP/cli"
cli --token-file "$T_TMP/token" devices --state lost
t_run "cli: bad state exits 1" [ $? -eq 1 ]
t_run "GET without token: 401" [ "$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/admin/devices")" = 401 ]
t_run "DELETE stations: 405" [ "$(srv_curl -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $token" "$SRV_URL/v1/admin/stations")" = 405 ]
cli --token-file "$T_TMP/token" release colour red
t_run "cli: bad kind exits 1" [ $? -eq 1 ]
# One key under two station IDs: refused while its station is enabled (either
# could sign as the other); after a disable it may move, with a flag.
snap >"$T_TMP/before"
t_run "station-01's key under another ID: 409" [ "$(json stations "{\"id\":\"station-05\",\"public_key\":\"$(pem_json "$samples/sample-station-p256.pub")\"}")" = 409 ]
t_grep "the refusal names station-01" 'already the key of station station-01' "$T_TMP/out"
t_run "the refusal changed nothing" bash -c "[ \"\$(sqlite3 -readonly '$db' .dump)\" = \"\$(cat '$T_TMP/before')\" ]"
t_run "station disable" [ "$(json stations/disable '{"id":"station-01"}')" = 200 ]
t_run "disabled station's manifest refused" [ "$(import "$m")" = 403 ]
t_run "the key moves to a new ID once disabled" [ "$(json stations "{\"id\":\"station-05\",\"public_key\":\"$(pem_json "$samples/sample-station-p256.pub")\"}")" = 200 ]
t_run "with a station-key-reuse flag" [ "$(sqlite3 -readonly "$db" "select count(*) from flags where kind='station-key-reuse' and subject='station-05'")" = 1 ]
t_grep "and a warning in the log" 'event=admin.station_key_reused station=station-05 other=station-01' "$SRV_ERR"

srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]
t_done
