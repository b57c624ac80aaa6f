#!/usr/bin/env bash
# audit.sh - the audit hash chain and the hostage report over real HTTPS with
# a real database: admin actions are chained; `idprov-admin audit verify`
# passes on an untouched log and, after a row is altered, deleted or two rows
# swapped with the sqlite3 CLI beside the running server, exits 1 naming the
# entry; `idprov-admin audit` lists entries; the unprovisioned report lists
# manifest devices never provisioned with batch, station and import time, and
# filters by age and batch. Unauthenticated callers are refused.
# Signed checkpoints (one at every stop): truncating the tail, deleting
# checkpoints (with the tail), forging a checkpoint's signature and inserting
# entries are each detected and named; `audit export` writes JSON Lines whose
# checkpoint signature verifies offline with the openssl command, and which
# `idprov-admin audit verify --file` checks offline (edited, cut, other key).
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
t_grep "a checkpoint at the stop" 'event=audit.checkpoint n=1 seq=' "$SRV_ERR"

# --- signed checkpoints ----------------------------------------------------------
st=$T_TMP/state2
db=$st/idprov.db
t_run "second server starts" srv_start "$st"
printf '%s\n' "$(cat "$st/admin.token")" >"$T_TMP/token"
t_run "audit key made" [ -f "$st/audit.key" ]
t_run "audit public key made" [ -f "$st/audit.pub" ]
t_grep "audit key logged" 'event=audit.key_created path=.*/audit.key key_id=[0-9a-f]{64}' "$SRV_ERR"
for e in 10.0.0.1:1 10.0.0.2:2 10.0.0.3:3 10.0.0.4:4 10.0.0.5:5; do cli allow add "$e"; done
t_run "five entries" [ "$(q "select count(*) from audit")" = 5 ]
srv_stop
t_grep "stop: checkpoint 1 covers entry 5" 'event=audit.checkpoint n=1 seq=5 hash=[0-9a-f]{64}' "$SRV_ERR"
t_run "checkpoint file written" [ -f "$st/audit.checkpoint" ]
t_run "server starts again" srv_start "$st"
t_run "verify: intact with its checkpoint" cli audit verify
t_grep "verify: checkpoint named" '"intact":true,"entries":5,.*"checkpoints":1,"checkpoint_seq":5,.*"truncated":false' "$T_TMP/cli"
t_run "metric: checkpoint age" sh -c "srv_curl() { curl -sS --max-time 20 --cacert '$SRV_CA' \"\$@\"; }; srv_curl -H 'Authorization: Bearer $(cat "$st/admin.token")' '$SRV_URL/metrics' | grep -qE '^idprov_audit_checkpoint_age_seconds [0-9]+$'"

# Tail truncation: the last two entries go, the chain alone is intact.
t_run "keep entries 4..5 aside" q "attach '$T_TMP/keep.db' as k; create table k.a as select * from audit where seq >= 4"
t_run "truncate the tail" q "delete from audit where seq >= 4"
cli audit verify
t_run "truncated: verify exits 1" [ $? -eq 1 ]
t_grep "truncated: named" 'audit chain broken: entries 4..5 missing \(tail truncated\): checkpoint 1 signed at [0-9]+ covers entry 5, the log ends at 3' "$T_TMP/cli.err"
t_grep "truncated: flagged in the answer" '"intact":false,"entries":3,.*"broken_seq":4,.*"truncated":true' "$T_TMP/cli"
t_run "put them back" q "attach '$T_TMP/keep.db' as k; insert into audit select * from k.a"
t_run "restored: intact" cli audit verify

# Insertion at the tail (no valid hash) and in the middle (entries renumbered).
t_run "insert an entry at the end" q "insert into audit (seq, at, event, detail, hash) values (6, unixepoch(), 'admin.resumed', NULL, randomblob(32))"
cli audit verify
t_run "inserted at the end: verify exits 1" [ $? -eq 1 ]
t_grep "inserted at the end: named" 'entry 6: hash does not match' "$T_TMP/cli.err"
t_run "remove it" q "delete from audit where seq = 6"
t_run "insert in the middle" q "begin; update audit set seq = seq + 100 where seq >= 3; update audit set seq = seq - 99 where seq >= 103; insert into audit (seq, at, event, detail, hash) select 3, at, event, 'forged', hash from audit where seq = 4; commit"
cli audit verify
t_run "inserted in the middle: verify exits 1" [ $? -eq 1 ]
t_grep "inserted in the middle: entry 3 named" 'entry 3: hash does not match' "$T_TMP/cli.err"
t_run "undo the insertion" q "begin; delete from audit where seq = 3; update audit set seq = seq + 100 where seq >= 4; update audit set seq = seq - 101 where seq >= 104; commit"
t_run "undone: intact" cli audit verify

# A forged checkpoint signature.
sig=$(q "select hex(sig) from audit_checkpoints where n = 1")
other=00
[ "${sig:0:2}" != 00 ] || other=01
t_run "flip a byte of the signature" q "update audit_checkpoints set sig = X'$other${sig:2}' where n = 1"
cli audit verify
t_run "forged checkpoint: verify exits 1" [ $? -eq 1 ]
t_grep "forged checkpoint: named" 'checkpoint 1 \(entry 5\): signature does not verify' "$T_TMP/cli.err"
t_grep "forged checkpoint: its number" '"broken_checkpoint":1' "$T_TMP/cli"
t_run "put the signature back" q "update audit_checkpoints set sig = X'$sig' where n = 1"
t_run "signature back: intact" cli audit verify

# More entries and a second checkpoint; then the tail and that checkpoint go.
cli allow add 10.0.0.6:6
srv_stop
t_grep "stop: checkpoint 2 covers entry 6" 'event=audit.checkpoint n=2 seq=6 ' "$SRV_ERR"
t_run "server starts a third time" srv_start "$st"
t_run "delete checkpoint 2 and entry 6" q "begin; delete from audit_checkpoints where n = 2; delete from audit where seq = 6; commit"
cli audit verify
t_run "checkpoint deleted with the tail: verify exits 1" [ $? -eq 1 ]
t_grep "checkpoint deleted: named from the checkpoint file" 'checkpoints 2..2 missing from the database \(audit.checkpoint holds checkpoint 2 of entry 6\); entries after the log.s end are missing too' "$T_TMP/cli.err"

# The export verifies offline: checkpoint 1's signature with openssl, and
# the chain from entry 1 with SHA-256 (formats/audit.md §2, §3, §6).
t_run "export" sh -c "'$IDP_BIN/idprov-admin' --server '$SRV_URL' --ca '$SRV_CA' --token-file '$T_TMP/token' audit export >'$T_TMP/export.jsonl'"
t_grep "export: header first" '^\{"type":"export","version":2,"first_seq":1,"prev_hash":"0{64}","audit_key":"-----BEGIN PUBLIC KEY-----' "$T_TMP/export.jsonl"
t_run "export: one line per entry" [ "$(grep -c '"type":"entry"' "$T_TMP/export.jsonl")" = 5 ]
t_grep "export: checkpoint 1" '^\{"type":"checkpoint","n":1,"seq":5,' "$T_TMP/export.jsonl"
line=$(grep '"type":"checkpoint","n":1,' "$T_TMP/export.jsonl")
field() { printf '%s' "$line" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }
printf '%s\n' "$(grep '"type":"export"' "$T_TMP/export.jsonl" | sed 's/.*"audit_key":"\([^"]*\)".*/\1/; s/\\n/\n/g')" >"$T_TMP/audit.pub"
t_run "export: the key is audit.pub" cmp -s "$T_TMP/audit.pub" "$st/audit.pub"
{ printf 'idprov-audit-checkpoint-v1'; perl -e 'print pack("Q>Q>Q>", @ARGV)' "$(field n)" "$(field seq)" "$(field at)"
  printf '%s' "$(field hash)" | perl -ne 'print pack("H*", $_)'; } >"$T_TMP/ckpt.bin"
printf '%s' "$(field sig)" | openssl base64 -d -A >"$T_TMP/ckpt.sig"
t_run "offline: checkpoint signature verifies (openssl)" openssl pkeyutl -verify -pubin -inkey "$T_TMP/audit.pub" -rawin -in "$T_TMP/ckpt.bin" -sigfile "$T_TMP/ckpt.sig"
printf 'x' >>"$T_TMP/ckpt.bin"
t_refuse "offline: one more byte does not verify" openssl pkeyutl -verify -pubin -inkey "$T_TMP/audit.pub" -rawin -in "$T_TMP/ckpt.bin" -sigfile "$T_TMP/ckpt.sig"
t_run "export --since 3" sh -c "'$IDP_BIN/idprov-admin' --server '$SRV_URL' --ca '$SRV_CA' --token-file '$T_TMP/token' audit export --since 3 >'$T_TMP/export3.jsonl'"
h2=$(q "select lower(hex(hash)) from audit where seq = 2")
t_grep "export --since 3: chained on entry 2's hash" "^\\{\"type\":\"export\",\"version\":2,\"first_seq\":3,\"prev_hash\":\"$h2\"" "$T_TMP/export3.jsonl"
t_run "export --since 3: entries 3..5" [ "$(grep -c '"type":"entry"' "$T_TMP/export3.jsonl")" = 3 ]
cli audit export --since yesterday
t_run "export --since bad: usage (exit 2)" [ $? -eq 2 ]
# idprov-admin verifies an export offline, against the key the holder has.
ov() { "$IDP_BIN/idprov-admin" audit verify --file "$@" >"$T_TMP/ov" 2>"$T_TMP/ov.err"; }
t_run "offline verify with audit.pub" ov "$T_TMP/export.jsonl" --key "$st/audit.pub"
t_grep "offline: intact, 5 entries, 1 checkpoint" '^\{"intact":true,"first_seq":1,"last_seq":5,"entries":5,"checkpoints":1,"truncated":false,"key_id":"[0-9a-f]{64}"\}$' "$T_TMP/ov"
t_run "offline verify of the part from 3" ov "$T_TMP/export3.jsonl" --key "$st/audit.pub"
t_run "offline without --key: verifies, says whose key" ov "$T_TMP/export.jsonl"
t_grep "offline without --key: the note" "checked with the export's own key" "$T_TMP/ov.err"
sed 's/"detail":"10.0.0.3:3"/"detail":"10.0.0.9:9"/' "$T_TMP/export.jsonl" >"$T_TMP/edited.jsonl"
ov "$T_TMP/edited.jsonl" --key "$st/audit.pub"
t_run "offline: an edited entry, exit 1" [ $? -eq 1 ]
t_grep "offline: the edited entry named" 'audit export broken: entry 3: hash does not match' "$T_TMP/ov.err"
grep -v -e '"seq":4,"at"' -e '"seq":5,"at"' "$T_TMP/export.jsonl" | grep -v '"type":"checkpoint"' >"$T_TMP/cut.jsonl"
grep '"type":"checkpoint"' "$T_TMP/export.jsonl" >>"$T_TMP/cut.jsonl"
ov "$T_TMP/cut.jsonl" --key "$st/audit.pub"
t_run "offline: the tail cut, exit 1" [ $? -eq 1 ]
t_grep "offline: truncation named" 'audit export broken: entries missing at the end: checkpoint 1 covers entry 5' "$T_TMP/ov.err"
openssl genpkey -algorithm ed25519 2>/dev/null | openssl pkey -pubout >"$T_TMP/other.pub" 2>/dev/null
ov "$T_TMP/export.jsonl" --key "$T_TMP/other.pub"
t_run "offline: another key, exit 1" [ $? -eq 1 ]
t_grep "offline: another key named" 'audit_key: not the key given' "$T_TMP/ov.err"
# The file is read a line at a time, twice: a 60,000-line export (entry 5
# repeated: broken at the first repeat, every line still parsed) costs no
# more memory than the 5-entry one; peak RSS (/usr/bin/time %M) within
# 4 MiB (holding it would add 15 MiB). ASan: no quarantine, so RSS is
# what is live.
{ grep -v '"type":"checkpoint"' "$T_TMP/export.jsonl"
  l5=$(grep '"seq":5,"at"' "$T_TMP/export.jsonl")
  for _ in $(seq 1 60000); do printf '%s\n' "$l5"; done
  grep '"type":"checkpoint"' "$T_TMP/export.jsonl"; } >"$T_TMP/big.jsonl"
ov_peak() {
	t_peak_rss "$T_TMP/ov.rss" "$IDP_BIN/idprov-admin" audit verify --file "$1" \
		--key "$st/audit.pub" >"$T_TMP/ov" 2>"$T_TMP/ov.err"
	cat "$T_TMP/ov.rss"
}
small=$(ov_peak "$T_TMP/export.jsonl")
large=$(ov_peak "$T_TMP/big.jsonl")
t_grep "offline, 60,000 lines: broken at the first repeat" \
	'audit export broken: entry 5 follows entry 5: entries missing or inserted' "$T_TMP/ov.err"
echo "# measured: verify --file peak RSS $small KiB (5 entries), $large KiB" \
	"($(stat -c %s "$T_TMP/big.jsonl") bytes)"
t_run "offline, 60,000 lines: peak RSS within 4 MiB of the 5-entry export's" \
	[ "$large" -le $((small + 4096)) ]
srv_stop
t_run "server stops cleanly at the end" [ "$SRV_RC" -eq 0 ]
t_done
