#!/usr/bin/env bash
# listings_paged.sh - the admin listings that answered every row at once
# page like stations_paged.sh's: with 1,500 rows each (more than one answer
# holds, FMT_ADMIN_LIST_MAX 1000) GET /v1/admin/cas, /v1/admin/allow and
# /v1/admin/credentials answer a first page of 1000 rows and "next", ?after=
# gives the other rows and no "next", every row exactly once in key order;
# idprov-admin ca list, allow list and credential list take --after; a bad
# after is refused naming it. Before, each answered 500 ("admin api: more
# than 1000 rows") past 1000 rows. The allow entries (longer than an ID) and
# the credential names (starting with "_", not an ID) check that "next"
# carries any row key, not only IDs. The listings that paged already are
# checked past 1000 rows the same way: devices (all, and by state), the
# hostage report, flags (newest first), the audit log and the out-of-band
# entries.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "server starts (creates the database)" srv_start "$st" --threads 1
t_run "server stops" srv_stop
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj '/CN=paged factory CA' -keyout "$T_TMP/ca.key" -out "$T_TMP/ca.pem" 2>/dev/null
pem=$(sed "s/'/''/g" "$T_TMP/ca.pem")
long=an-allowed-host-whose-name-is-longer-than-any-id-of-sixty-four-bytes
# 1,500 rows of each, written beside idprovd's schema (the server is stopped).
sqlite3 "$st/idprov.db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
	INSERT INTO factory_cas (name, cert_pem, created_at) SELECT printf('ca-%04d', i), '$pem', 1764526805 FROM n;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
	INSERT INTO site_allow (entry, added_at) SELECT printf('$long-%04d.local:8443', i), 1764526805 FROM n;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
	INSERT INTO admin_credentials (name, role, lookup, hash, created_at)
	SELECT printf('_op-%04d', i), 'viewer', i, randomblob(32), 1764526805 FROM n;
	INSERT INTO batches (id, station_id, sequence, hash, device_count, imported_at, state)
	VALUES ('b-1', 'st-1', 1, randomblob(32), 1500, 1764526805, 'imported');
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
	INSERT INTO devices (id, serial, state, batch_id, created_at, updated_at)
	SELECT printf('dev-%04d', i), printf('SN-%04d', i), 'preloaded', 'b-1', 1764526805, 1764526805 FROM n;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
	INSERT INTO flags (seq, kind, subject, detail, created_at, last_seen)
	SELECT i, 'mac-mismatch', printf('dev-%04d', i), 'seen', 1764526805, 1764526805 FROM n;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
	INSERT INTO audit (seq, at, event, subject, hash) SELECT i, 1764526805, 'admin.approved',
		printf('dev-%04d', i), randomblob(32) FROM n;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
	INSERT INTO oob_secrets (device_id, verifier, created_at, expires_at)
	SELECT printf('dev-%04d', i), randomblob(32), 1764526805, 1864526805 FROM n;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 350)
	INSERT INTO stations (id, public_key, enabled, created_at)
	SELECT printf('bs-%04d', i), randomblob(91), 1, 1764526805 FROM n;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 350),
	s(q) AS (VALUES (1), (3))
	INSERT INTO batches (id, station_id, sequence, hash, prev_hash, device_count, imported_at, state)
	SELECT printf('bb-%04d-%d', i, q), printf('bs-%04d', i), q, randomblob(32),
		CASE q WHEN 1 THEN NULL ELSE randomblob(32) END, 0, 1764526805,
		CASE q WHEN 1 THEN 'imported' ELSE 'gap' END FROM n, s;"
t_run "1500 CAs, allow entries and credentials stored" [ "$(sqlite3 -readonly "$st/idprov.db" \
	'select (select count(*) from factory_cas) || (select count(*) from site_allow) || (select count(*) from admin_credentials)')" = 150015001500 ]
t_run "server starts again" srv_start "$st" --threads 1
token=$(cat "$st/admin.token")
get() { srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Bearer $token" "$SRV_URL/v1/admin/$1"; }
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$st/admin.token" "$@"; }

# paged WHAT PATH ARRAY KEY FIRST_NEXT REST WANT: PATH's first page holds
# 1000 rows of ARRAY and names FIRST_NEXT; ?after= it gives REST rows and no
# "next"; the KEY members of both, in order, are the file WANT.
paged() {
	local what=$1 path=$2 arr=$3 key=$4 next=$5 rest=$6 want=$7
	t_run "$what: page 1: 200" [ "$(get "$path")" = 200 ]
	t_run "$what: page 1: 1000 rows" [ "$(jq ".$arr | length" "$T_TMP/out")" = 1000 ]
	t_run "$what: page 1: next is the last row's key" [ "$(jq -r '.next' "$T_TMP/out")" = "$next" ]
	jq -r ".${arr}[].$key" "$T_TMP/out" >"$T_TMP/keys"
	local sep='?'
	case $path in *\?*) sep='&' ;; esac
	t_run "$what: page 2: 200" [ "$(get "$path${sep}after=$(jq -rn --arg v "$next" '$v|@uri')")" = 200 ]
	t_run "$what: page 2: $rest rows, no next" \
		[ "$(jq -c '[(.'"$arr"' | length), has("next")]' "$T_TMP/out")" = "[$rest,false]" ]
	jq -r ".${arr}[].$key" "$T_TMP/out" >>"$T_TMP/keys"
	t_run "$what: every row once, in order" cmp -s "$T_TMP/keys" "$want"
	t_run "$what: an unknown parameter: 400" [ "$(get "$path${sep}page=2")" = 400 ]
	t_grep "$what: the unknown parameter named" '"query: unknown parameter page"' "$T_TMP/out"
}

seq -f 'ca-%04g' 1 1500 >"$T_TMP/want"
paged CAs cas cas name ca-1000 500 "$T_TMP/want"
t_run "CAs: after ca-1499: 200" [ "$(get 'cas?after=ca-1499')" = 200 ]
t_run "CAs: the row is the certificate's" [ "$(jq -r '.cas[] | .name + " " + .subject + " " + .sha256' "$T_TMP/out")" = \
	"ca-1500 /CN=paged factory CA $(openssl x509 -in "$T_TMP/ca.pem" -outform DER | sha256sum | cut -c1-64)" ]
t_run "CAs: a bad after: 400" [ "$(get 'cas?after=-x')" = 400 ]
t_grep "CAs: the bad after named" '"after: ' "$T_TMP/out"
adm ca list >"$T_TMP/t1"
t_grep "ca list: a table, and how to go on" '^more: continue with --after ca-1000$' "$T_TMP/t1"
adm --json ca list --after ca-1400 >"$T_TMP/t2"
t_run "ca list --after: the last 100" [ "$(jq '.cas | length' "$T_TMP/t2")" = 100 ]

seq -f "$long-%04g.local:8443" 1 1500 >"$T_TMP/want"
paged "allow-list" allow allow entry "$long-1000.local:8443" 500 "$T_TMP/want"
t_run "allow-list: a bad after: 400" [ "$(get 'allow?after=no%20entry')" = 400 ]
t_grep "allow-list: the bad after named" '"after: not an allow-list entry"' "$T_TMP/out"
adm allow list >"$T_TMP/t1"
t_grep "allow list: how to go on" "^more: continue with --after $long-1000.local:8443\$" "$T_TMP/t1"
adm --json allow list --after "$long-1499.local:8443" >"$T_TMP/t2"
t_run "allow list --after: the last one" [ "$(jq -c '[.allow[].entry]' "$T_TMP/t2")" = "[\"$long-1500.local:8443\"]" ]

# The state directory's "admin" is the first page's first row: 999 named
# ones follow it there.
{ echo admin; seq -f '_op-%04g' 1 1500; } >"$T_TMP/want"
paged credentials credentials credentials name _op-0999 501 "$T_TMP/want"
t_run "credentials: a bad after: 400" [ "$(get 'credentials?after=a%2Fb')" = 400 ]
t_grep "credentials: the bad after named" '"after: not a credential name' "$T_TMP/out"
adm credential list >"$T_TMP/t1"
t_grep "credential list: how to go on" '^more: continue with --after _op-0999$' "$T_TMP/t1"
adm --json credential list --after _op-1498 >"$T_TMP/t2"
t_run "credential list --after: the last two" [ "$(jq -c '[.credentials[].name]' "$T_TMP/t2")" = '["_op-1499","_op-1500"]' ]

# The listings that paged already, past 1000 rows too.
seq -f 'dev-%04g' 1 1500 >"$T_TMP/want"
paged devices devices devices id dev-1000 500 "$T_TMP/want"
paged "preloaded devices" 'devices?state=preloaded' devices id dev-1000 500 "$T_TMP/want"
paged "hostage report" report/unprovisioned devices id dev-1000 500 "$T_TMP/want"
paged "out-of-band entries" oob entries device_id dev-1000 500 "$T_TMP/want"
seq 1 1500 >"$T_TMP/want"
paged "audit log" audit entries seq 1000 500 "$T_TMP/want"
seq 1500 -1 1 >"$T_TMP/want"
paged flags flags flags seq 501 500 "$T_TMP/want"

# Batch chains: 350 stations (more than the 256 it read at once, whose
# rest it dropped without a word), 3 rows each (sequence 2 missing): 1050
# rows, the first 1000 then "next" naming the last row (bs-0334:1), then
# the other 50; every (station, sequence) once, in order.
rows() { jq -r '.batches[] | "\(.station_id):\(.sequence)"' "$T_TMP/out"; }
t_run "batches: page 1: 200" [ "$(get batches)" = 200 ]
t_run "batches: page 1: 1000 rows, truncated, next the last row" \
	[ "$(jq -c '[(.batches | length), .truncated, .next]' "$T_TMP/out")" = '[1000,true,"bs-0334:1"]' ]
rows >"$T_TMP/keys"
t_run "batches: page 2: 200" [ "$(get 'batches?after=bs-0334:1')" = 200 ]
t_run "batches: page 2: 50 rows, the last" \
	[ "$(jq -c '[(.batches | length), .truncated, has("next")]' "$T_TMP/out")" = '[50,false,false]' ]
t_run "batches: page 2 goes on with the rest of bs-0334's chain" \
	[ "$(jq -c '.batches[0:2] | map([.station_id, .sequence, .missing, .chained])' "$T_TMP/out")" = \
	'[["bs-0334",2,true,null],["bs-0334",3,false,false]]' ]
rows >>"$T_TMP/keys"
for i in $(seq -f '%04g' 1 350); do printf 'bs-%s:1\nbs-%s:2\nbs-%s:3\n' "$i" "$i" "$i"; done >"$T_TMP/want"
t_run "batches: every station's sequences once, in order" cmp -s "$T_TMP/keys" "$T_TMP/want"
t_run "batches: one station, after its row 2: 200" [ "$(get 'batches?station=bs-0350&after=bs-0350:2')" = 200 ]
t_run "batches: one station, after its row 2: row 3" [ "$(rows | paste -sd ' ')" = bs-0350:3 ]
for bad in bs-0001 bs-0001:0 :1 bs-0001:x -x:1; do
	t_run "batches: after=$bad: 400" [ "$(get "batches?after=$bad")" = 400 ]
done
t_grep "batches: the bad after named" '"after: not STATION:SEQUENCE' "$T_TMP/out"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
