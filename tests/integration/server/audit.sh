#!/usr/bin/env bash
# audit.sh - the audit hash chain and the hostage report over real HTTPS with
# a real database: admin actions are chained; `idprov-admin audit verify`
# passes on an untouched log and, after a row is altered, deleted or two rows
# swapped with the sqlite3 CLI beside the running server, exits 1 naming the
# entry; `idprov-admin audit` lists entries; the unprovisioned report lists
# manifest devices never provisioned with batch, station and import time, and
# filters by age and batch. Unauthenticated callers are refused.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

samples=$IDP_TOP/samples/manifests
st=$T_TMP/state
t_run "server starts" srv_start "$st"
token=$(cat "$st/admin.token")
db=$st/idprov.db
printf '%s\n' "$token" >"$T_TMP/token"
cli() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/token" --json "$@" >"$T_TMP/cli" 2>"$T_TMP/cli.err"; }
q() { sqlite3 "$db" "$1"; }

# Decisions that write audit entries: a station, an import, a revoke, releases.
t_run "station add" cli station add station-01 "$samples/sample-station-p256.pub"
m=$T_TMP/b1.manifest
grep -v '^#' "$samples/devices.csv" | head -3 | cut -d, -f1-3 >"$T_TMP/devs.csv"
t_run "manifest created" "$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" \
	--batch b-audit-1 --station station-01 --seq 1 --product sx1 --devices "$T_TMP/devs.csv" \
	--format csv --out "$m" >/dev/null
t_run "import" cli import "$m"
t_run "revoke dev-0001" cli revoke dev-0001
t_run "release a serial" cli release serial SX1-2026-000001
t_run "release a mac" cli release mac 02:1a:2b:00:00:01
n=$(q "select count(*) from audit")
t_run "entries written" [ "$n" -ge 5 ]
t_run "every entry has a 32-byte hash" [ "$(q "select count(*) from audit where length(hash) = 32")" = "$n" ]

t_run "verify: untouched log intact" cli audit verify
t_grep "verify: intact to the head" "\"intact\":true,\"entries\":$n,\"head_seq\":$n" "$T_TMP/cli"
head=$(grep -o '"head_hash":"[0-9a-f]*"' "$T_TMP/cli")
t_run "list" cli audit
t_grep "list: entries with hashes" '^\{"entries":\[\{"seq":1,"at":[0-9]+,"event":"admin.station_added","subject":"station-01","detail":null,"actor":"admin","hash":"[0-9a-f]{64}"\}' "$T_TMP/cli"
t_grep "list: the head's hash is the verified head" "\"seq\":$n,.*\"hash\":${head#\"head_hash\":}" "$T_TMP/cli"
t_run "list --after 3" cli audit --after 3
t_grep "list --after: starts at 4" '^\{"entries":\[\{"seq":4,' "$T_TMP/cli"
cli audit --after x
t_run "list --after x: refused (exit 1)" [ $? -eq 1 ]
t_grep "list --after x: named" 'after: not a positive integer' "$T_TMP/cli.err"
t_run "no credential: 401" [ "$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/admin/audit/verify")" = 401 ]

# Tampering with the sqlite3 CLI beside the running server.
det=$(q "select quote(detail) from audit where seq = 3")
t_run "alter entry 3" q "update audit set detail = 'nothing to see' where seq = 3"
cli audit verify
t_run "altered: verify exits 1" [ $? -eq 1 ]
t_grep "altered: entry 3 named" 'audit chain broken: entry 3: hash does not match' "$T_TMP/cli.err"
t_grep "altered: answer says broken_seq 3" '"intact":false,"entries":2,.*"broken_seq":3' "$T_TMP/cli"
t_grep "altered: logged" 'event=audit.broken .*seq=3 verified=2' "$SRV_ERR"
t_run "put entry 3 back" q "update audit set detail = $det where seq = 3"
t_run "restored: intact" cli audit verify

t_run "swap entries 2 and 4" q "begin; update audit set seq = -2 where seq = 2; update audit set seq = 2 where seq = 4; update audit set seq = 4 where seq = -2; commit"
cli audit verify
t_run "reordered: verify exits 1" [ $? -eq 1 ]
t_grep "reordered: entry 2 named" 'entry 2: hash does not match' "$T_TMP/cli.err"
t_run "swap back" q "begin; update audit set seq = -2 where seq = 2; update audit set seq = 2 where seq = 4; update audit set seq = 4 where seq = -2; commit"
t_run "swapped back: intact" cli audit verify

t_run "delete entry 2" q "delete from audit where seq = 2"
cli audit verify
t_run "deleted: verify exits 1" [ $? -eq 1 ]
t_grep "deleted: the gap named" 'entry 3 follows entry 1: entries missing or inserted' "$T_TMP/cli.err"

# The hostage report: the import's three devices, one revoked.
t_run "report" cli report unprovisioned
t_grep "report: two devices with batch, station, import time" '^\{"devices":\[\{"id":"dev-0002","state":"preloaded","batch_id":"b-audit-1","station_id":"station-01","imported_at":[0-9]+,"age":[0-9]+,"attempts":0\},\{"id":"dev-0003",' "$T_TMP/cli"
t_run "report: revoked device not listed" [ "$(grep -c dev-0001 "$T_TMP/cli")" = 0 ]
t_run "dev-0003 provisioned" q "update devices set state = 'approved', provisioned_at = unixepoch() where id = 'dev-0003'"
t_run "batch imported three days ago" q "update batches set imported_at = unixepoch() - 3 * 86400"
t_run "report --older-than 2d" cli report unprovisioned --older-than 2d
t_grep "older than 2d: dev-0002 only" '^\{"devices":\[\{"id":"dev-0002"[^]]*\],"now":[0-9]+\}$' "$T_TMP/cli"
t_grep "older than 2d: its age" '"age":2592[0-9]{2}' "$T_TMP/cli"
t_run "report --older-than 4d" cli report unprovisioned --older-than 4d
t_grep "older than 4d: none" '^\{"devices":\[\],"now":[0-9]+\}$' "$T_TMP/cli"
t_run "report --batch other" cli report unprovisioned --batch b-other
t_grep "other batch: none" '^\{"devices":\[\],' "$T_TMP/cli"
cli report unprovisioned --older-than 3x
t_run "bad duration: usage (exit 2)" [ $? -eq 2 ]
t_grep "bad duration named" 'older-than: not a duration' "$T_TMP/cli.err"
code=$(srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Bearer $token" "$SRV_URL/v1/admin/report/unprovisioned?colour=red")
t_run "unknown parameter: 400" [ "$code" = 400 ]
t_grep "unknown parameter named" '"code":"invalid_field","message":"query: unknown parameter colour"' "$T_TMP/out"
t_run "report without credential: 401" [ "$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/admin/report/unprovisioned")" = 401 ]

srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]
t_done
