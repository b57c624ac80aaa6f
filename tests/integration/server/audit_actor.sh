#!/usr/bin/env bash
# audit_actor.sh - the audit entry's actor is inside the hash chain
# (formats/audit.md §2, version 2): an entry made by a named credential
# names it; changing that actor in the database, or in an export verified
# offline, or downgrading the entry to version 1 (whose hash leaves the
# actor out) is detected and the entry named. Entries written before the
# upgrade (version 1) still verify.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "server starts" srv_start "$st"
db=$st/idprov.db
printf '%s\n' "$(cat "$st/admin.token")" >"$T_TMP/token"
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --json "$@"; }
q() { sqlite3 "$db" "$1"; }

t_run "credential ops-admin" adm --token-file "$T_TMP/token" credential add ops-admin --role admin \
	--out "$T_TMP/ops.token"
t_run "ops-admin adds a station" adm --token-file "$T_TMP/ops.token" station add station-01 \
	"$IDP_TOP/samples/manifests/sample-station-p256.pub"
seq=$(q "select seq from audit where event = 'admin.station_added'")
t_run "its entry names ops-admin, hash version 2" [ "$(q "select actor || ' ' || v from audit where seq = $seq")" = "ops-admin 2" ]
t_run "verify: intact" adm --token-file "$T_TMP/token" audit verify
adm --token-file "$T_TMP/token" audit export >"$T_TMP/export.jsonl"
t_grep "export: version 2, the entry with its actor" \
	"\"seq\":$seq,.*\"actor\":\"ops-admin\",\"v\":2,\"hash\":" "$T_TMP/export.jsonl"
ov() { "$IDP_BIN/idprov-admin" audit verify --file "$1" >"$T_TMP/ov" 2>"$T_TMP/ov.err"; }
t_run "offline: the export verifies" ov "$T_TMP/export.jsonl"

# The export edited: another actor; the entry downgraded to version 1.
sed "/\"seq\":$seq,/s/\"actor\":\"ops-admin\"/\"actor\":\"admin\"/" "$T_TMP/export.jsonl" >"$T_TMP/actor.jsonl"
t_refuse "  (the edit was made)" cmp -s "$T_TMP/export.jsonl" "$T_TMP/actor.jsonl"
ov "$T_TMP/actor.jsonl"
t_run "offline: a changed actor, exit 1" [ $? = 1 ]
t_grep "offline: the entry named" "audit export broken: entry $seq: hash does not match" "$T_TMP/ov.err"
sed "/\"seq\":$seq,/s/\"v\":2/\"v\":1/" "$T_TMP/export.jsonl" >"$T_TMP/v1.jsonl"
ov "$T_TMP/v1.jsonl"
t_run "offline: downgraded to version 1, exit 1" [ $? = 1 ]
sed "/\"seq\":$seq,/s/,\"actor\":\"ops-admin\",\"v\":2//" "$T_TMP/export.jsonl" >"$T_TMP/none.jsonl"
ov "$T_TMP/none.jsonl"
t_run "offline: actor and version removed, exit 1" [ $? = 1 ]

# The database edited beside the running server.
t_run "change the actor in the database" q "update audit set actor = 'admin' where seq = $seq"
adm --token-file "$T_TMP/token" audit verify >"$T_TMP/v.out" 2>"$T_TMP/v.err"
t_run "verify: a changed actor, exit 1" [ $? = 1 ]
t_grep "verify: the entry named" "audit chain broken: entry $seq: hash does not match" "$T_TMP/v.err"
t_run "restore it, downgrade the version" q "update audit set actor = 'ops-admin', v = 1 where seq = $seq"
adm --token-file "$T_TMP/token" audit verify >"$T_TMP/v.out" 2>"$T_TMP/v.err"
t_run "verify: downgraded to version 1, exit 1" [ $? = 1 ]
t_run "restore the version" q "update audit set v = 2 where seq = $seq"
t_run "verify: intact again" adm --token-file "$T_TMP/token" audit verify
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
