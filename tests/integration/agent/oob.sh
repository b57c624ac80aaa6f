#!/usr/bin/env bash
# oob.sh - out-of-band label secrets end to end with the real programs: the
# installer enters a secret with idprov-admin (stdin, or a CSV of many; only
# a KDF verifier reaches the server), idprov-agent --oob-secret-file proves
# it on its TLS connection and is approved at once, with no administrator
# approval; a wrong secret is refused oob_mismatch, flagged and approves
# nothing; a CSV with a bad line enters nothing; the secrets appear in no
# log, no database row and no command line.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"

A=$IDP_BIN/idprov-agent
t_run "server starts" srv_start "$T_TMP/srv" --pending-retry-after 1s
db=$T_TMP/srv/idprov.db
token=$(cat "$T_TMP/srv/admin.token")
adm() { IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" "$@"; }
agent() {
	local d=$1
	shift
	"$A" --state-dir "$T_TMP/$d" "$@" 2>>"$T_TMP/$d.log"
}
q() { sqlite3 -readonly "$db" "$1"; }

s1='Lb1-7Q2X-a9!'
s2='Lb2-Zz81-c4?'
printf '%s\n' "$s1" >"$T_TMP/s1"
printf '%s\n' "$s2" >"$T_TMP/s2"
printf 'not-%s\n' "$s2" >"$T_TMP/s2.wrong"

t_run "oob add from stdin" adm oob add dev-o1 --expires 2h <"$T_TMP/s1"
t_run "entry stored" [ "$(q "select count(*) from oob_secrets where device_id='dev-o1' and used_at=0")" = 1 ]
t_run "entry expires in 2 h" [ "$(q "select expires_at - created_at from oob_secrets where device_id='dev-o1'")" = 7200 ]
t_run "oob add audited with its actor" [ "$(q "select actor from audit where event='admin.oob_added' and subject='dev-o1'")" = admin ]
code=$(adm oob add dev-o9 </dev/null 2>"$T_TMP/empty.err"; echo $?)
t_run "no secret on stdin: refused (exit 3)" [ "$code" = 3 ]
t_run "nothing stored for it" [ "$(q "select count(*) from oob_secrets where device_id='dev-o9'")" = 0 ]

t_run "agent with the right secret: provisioned" agent o1 run --once --id dev-o1 \
	--mac 02:00:5e:00:c1:01 --server "$SRV_URL" --ca "$SRV_CA" --oob-secret-file "$T_TMP/s1" --wait 30
t_grep "agent: exchanged without an administrator" 'event=token.exchanged device=dev-o1' "$T_TMP/o1.log"
t_run "approved by the proof" [ "$(q "select count(*) from audit where event='provision.approved' and subject='dev-o1' and detail='out-of-band secret proven'")" = 1 ]
t_run "no administrator approval" [ "$(q "select count(*) from audit where event='admin.approved'")" = 0 ]
t_run "entry used once" [ "$(q "select used_at > 0 from oob_secrets where device_id='dev-o1'")" = 1 ]
t_grep "server logs the outcome" 'event=device.oob .*device=dev-o1 outcome=proven' "$SRV_ERR"

# A CSV: a bad line anywhere and nothing is entered; then a good file.
printf 'device_id,secret\ndev-o2,%s\ndev-o3,has space\n' "$s2" >"$T_TMP/bad.csv"
code=$(adm oob import "$T_TMP/bad.csv" 2>"$T_TMP/bad.err"; echo $?)
t_run "csv with a bad line: refused (exit 3)" [ "$code" = 3 ]
t_grep "csv: names file and line" 'bad.csv:3: oob secret: byte 3 is not printable' "$T_TMP/bad.err"
t_refuse "csv: the secret not quoted" grep -qF 'has space' "$T_TMP/bad.err"
t_run "csv: nothing entered" [ "$(q "select count(*) from oob_secrets where device_id in ('dev-o2','dev-o3')")" = 0 ]
printf '# site 4, replacement units\ndev-o2,%s\n\ndev-o3,%s\n' "$s2" "$s1" >"$T_TMP/good.csv"
t_run "csv import" adm oob import "$T_TMP/good.csv"
t_run "csv: both entered" [ "$(q "select count(*) from oob_secrets where device_id in ('dev-o2','dev-o3')")" = 2 ]
t_run "oob list" adm --json oob list >"$T_TMP/list"
t_grep "list names the entries" '"device_id":"dev-o2"' "$T_TMP/list"
t_refuse "list shows no verifier" grep -q verifier "$T_TMP/list"

agent o2 run --once --id dev-o2 --mac 02:00:5e:00:c1:02 --server "$SRV_URL" --ca "$SRV_CA" \
	--oob-secret-file "$T_TMP/s2.wrong" --wait 30
rc=$?
t_run "agent with a wrong secret: fails" [ "$rc" != 0 ]
t_grep "wrong secret: rejected oob_mismatch" 'rejected \(oob_mismatch\)' "$T_TMP/o2.log"
t_run "wrong secret: flagged" [ "$(q "select count(*) from flags where kind='oob-mismatch' and subject='dev-o2' and cleared=0")" = 1 ]
t_run "wrong secret: not approved, nothing stored" [ "$(q "select count(*) from devices where id='dev-o2'")" = 0 ]
t_run "wrong secret: counted" [ "$(q "select failures from oob_secrets where device_id='dev-o2'")" = 1 ]
t_run "agent with the right secret after: provisioned" agent o2b run --once --id dev-o2 \
	--mac 02:00:5e:00:c1:02 --server "$SRV_URL" --ca "$SRV_CA" --oob-secret-file "$T_TMP/s2" --wait 30

for s in "$s1" "$s2"; do
	t_refuse "secret in no log" grep -qF -- "$s" "$SRV_ERR" "$SRV_OUT" "$T_TMP"/o*.log
	t_refuse "secret in no database row" bash -c "sqlite3 -readonly '$db' .dump | grep -qF -- '$s'"
done
t_run "server stops" srv_stop
t_done
