#!/usr/bin/env bash
# approve_label.sh - idprov-admin approve --label PAYLOAD (formats/label.md):
# a pending device is approved with the key its label names only when that
# is the key it presented. Refused, and nothing changed: a label naming
# another key (409, exit 1), a device not pending, and payloads that are
# not a version 1 label (another version, a truncated or upper-case
# fingerprint, an oversized payload, a bad ID: exit 3, nothing sent).
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T_TMP/no-such-bus
t_run "server starts" srv_start "$T_TMP/srv" --dnssd=off
db=$T_TMP/srv/idprov.db
q() { sqlite3 -readonly "$db" "$1"; }
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/srv/admin.token" "$@" >"$T_TMP/cli" 2>"$T_TMP/cli.err"; }
# code CMD...: its exit code.
code() { "$@"; echo $?; }

"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/ag" run --once --id dev-l1 --mac 02:00:5e:00:1b:01 \
	--server "$SRV_URL" --ca "$SRV_CA" --wait 1 2>"$T_TMP/ag.log"
t_run "dev-l1 pending" [ "$(q "SELECT state FROM devices WHERE id = 'dev-l1'")" = pending ]
fp=$(openssl pkey -pubin -in "$T_TMP/ag/key.pub" -outform DER | sha256sum | cut -c1-64)
spki=$(openssl pkey -pubin -in "$T_TMP/ag/key.pub" -outform DER | od -An -tx1 -v | tr -d ' \n')
t_run "its key on record is its own" [ "$(q "SELECT lower(hex(public_key)) FROM devices WHERE id = 'dev-l1'")" = "$spki" ]
audit_n=$(q "SELECT count(*) FROM audit")
other=${fp%?}$([ "${fp: -1}" = 0 ] && echo 1 || echo 0) # the last digit changed

t_run "another key: refused (exit 1)" [ "$(code adm approve --label "IDPL1;dev-l1;$other")" = 1 ]
t_grep "another key: 409 named" 'refused \(409 conflict\)' "$T_TMP/cli.err"
t_run "a device not pending: refused (exit 1)" [ "$(code adm approve --label "IDPL1;dev-nope;$fp")" = 1 ]
t_run "version 2: refused (exit 3)" [ "$(code adm approve --label "IDPL2;dev-l1;$fp")" = 3 ]
t_grep "version 2: named" 'label: .*version' "$T_TMP/cli.err"
t_run "not a label: refused (exit 3)" [ "$(code adm approve --label "dev-l1;$fp")" = 3 ]
t_run "truncated fingerprint: refused (exit 3)" [ "$(code adm approve --label "IDPL1;dev-l1;${fp:0:63}")" = 3 ]
t_run "upper-case fingerprint: refused (exit 3)" [ "$(code adm approve --label "IDPL1;dev-l1;${fp^^}")" = 3 ]
t_run "oversized: refused (exit 3)" [ "$(code adm approve --label "IDPL1;dev-l1;$fp$(printf 'a%.0s' $(seq 1 300))")" = 3 ]
t_run "bad ID: refused (exit 3)" [ "$(code adm approve --label "IDPL1;-dev;$fp")" = 3 ]
t_run "trailing text: refused (exit 3)" [ "$(code adm approve --label "IDPL1;dev-l1;$fp;x")" = 3 ]
t_run "still pending, nothing audited" \
	[ "$(q "SELECT state FROM devices WHERE id = 'dev-l1'") $(q "SELECT count(*) FROM audit")" = "pending $audit_n" ]

t_run "its own label: approved" adm approve --label "IDPL1;dev-l1;$fp"
t_run "approved with the label's key" \
	[ "$(q "SELECT detail FROM audit WHERE event = 'admin.approved' AND subject = 'dev-l1'")" = "sha256:$fp" ]
t_run "the agent provisions" "$IDP_BIN/idprov-agent" --state-dir "$T_TMP/ag" run --once --id dev-l1 \
	--mac 02:00:5e:00:1b:01 --server "$SRV_URL" --ca "$SRV_CA" --wait 1 2>>"$T_TMP/ag.log"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
