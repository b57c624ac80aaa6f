#!/usr/bin/env bash
# provision_retry.sh - a provisioning answer lost in a crash (issue 16): the
# server dies right after committing an approval, before the answer leaves
# (IDPROVD_TEST_FAULT=provision.committed: exit 99 at that point, as kill -9
# there would). After the restart the client's retry, a new request on a new
# connection with a new proof (what formats/io/httpc sends), is approved
# with a new token, the undelivered one revoked, and NOT flagged
# repeat-provision (formats/api.md §6.1). Once the token was exchanged,
# provisioning again is a reset and is flagged. Another key is refused
# key_mismatch; the first request's bytes re-sent on a new connection and a
# request relayed through another TLS connection fail their proof and issue
# nothing. Then idprov-agent through the same crash, for a provisioning and
# for a renewal, each in one invocation that retries by itself.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

A=${IDP_BUILD:-$IDP_TOP/build/plain}/tools/idp_attack
st=$T_TMP/srv
MAC=02:00:5e:40:00:01
t_run "server starts" srv_start "$st" --throttle-per-minute 0 --throttle-device-burst 1000
db=$st/idprov.db
q() { sqlite3 -readonly "$db" "$1"; }
tokens() { q "SELECT count(*) FROM tokens WHERE device_id = 'dev-r'"; }
live() { q "SELECT count(*) FROM tokens WHERE device_id = 'dev-r' AND used = 0 AND revoked_at = 0 AND expires_at > strftime('%s','now')"; }
flags() { q "SELECT coalesce(sum(\"count\"), 0) FROM flags WHERE kind = '$1' AND subject = 'dev-r'"; }
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" \
	--token-file "$st/admin.token" "$@"; }
send() { # MODE [KEY [TOKEN-IN [TOKEN-OUT]]]: one idp_attack request for dev-r; its answer lines
	"$A" send "$SRV_PORT" "${2:-$T_TMP/k1}" "${PURPOSE:-provision}" dev-r $MAC "$1" \
		"${3:--}" ${4:+"$4"} 2>"$T_TMP/send.err" | grep '^answer'
}
"$A" key "$T_TMP/k1" p256 && "$A" key "$T_TMP/kx" p256 || t_fail "keys"
t_run "dev-r: unknown, pending" [ "$(send good)" = "answer 202 pending" ]
t_run "dev-r: approved by the administrator" adm approve dev-r >/dev/null
srv_stop

# ---------------------------------------------------------------- the crash
IDPROVD_TEST_FAULT=provision.committed srv_start "$st" --throttle-per-minute 0 \
	--throttle-device-burst 1000
got=$(send good "$T_TMP/k1" - "$T_TMP/lost.tok")
wait "$SRV_PID"
rc=$?
t_run "the server died between the commit and the answer (exit 99)" [ "$rc" = 99 ]
t_run "the client got no decision" [ "$got" != "answer 200 approved" ]
t_run "the approval was committed: one provisioning token, unused" \
	[ "$(q "SELECT count(*) || '/' || sum(used) || '/' || sum(revoked_at > 0) FROM tokens WHERE device_id = 'dev-r'")" = 1/0/0 ]
lost_jti=$(q "SELECT jti FROM tokens WHERE device_id = 'dev-r'")

# ---------------------------------------------------------------- the retry
t_run "server restarts" srv_start "$st" --throttle-per-minute 0 --throttle-device-burst 1000
t_run "the client's retry (new connection, new proof): approved" \
	[ "$(send good "$T_TMP/k1" - "$T_TMP/r.tok")" = "answer 200 approved" ]
t_run "a new token was issued (2 in all)" [ "$(tokens)" = 2 ]
t_run "the undelivered token is revoked" \
	[ "$(q "SELECT revoked_at > 0 FROM tokens WHERE jti = '$lost_jti'")" = 1 ]
t_run "one live token" [ "$(live)" = 1 ]
t_run "no repeat-provision flag for the honest retry" [ "$(flags repeat-provision)" = 0 ]
t_run "the audit says it was a retry of a lost answer" \
	[ "$(q "SELECT count(*) FROM audit WHERE event = 'provision.approved' AND subject = 'dev-r' AND detail LIKE 'again: the answer of the last approval was lost%'")" = 1 ]

# ---------------------------------------------------------------- still flagged
t_run "another key for dev-r: rejected key_mismatch" \
	[ "$(send good "$T_TMP/kx")" = "answer 403 rejected" ]
t_run "and flagged key-mismatch" [ "$(flags key-mismatch)" = 1 ]
t_run "the retry's token is exchanged" \
	[ "$(PURPOSE=exchange send good "$T_TMP/k1" "$T_TMP/r.tok" "$T_TMP/r.dev")" = "answer 200 approved" ]
t_run "provisioning again after that (a reset in the field): approved" \
	[ "$(send good)" = "answer 200 approved" ]
t_run "and flagged repeat-provision" [ "$(flags repeat-provision)" = 1 ]

# ---------------------------------------------------------------- forged re-sends
n=$(tokens)
got=$(send replay-new | tr '\n' ' ')
t_run "the same bytes re-sent on a new connection: 401 pop_invalid (after '${got%% answer 401*}')" \
	[ "$got" = "answer 200 approved answer 401 pop_invalid " ]
t_run "the replay issued nothing (one token for the good request only)" [ "$(tokens)" = $((n + 1)) ]
n=$(tokens)
t_run "a request relayed through another TLS connection: 401 pop_invalid" \
	[ "$(send relay)" = "answer 401 pop_invalid" ]
t_run "the relay issued nothing" [ "$(tokens)" = "$n" ]
t_run "still one live token" [ "$(live)" = 1 ]
t_run "no more repeat-provision flags" [ "$(flags repeat-provision)" = 1 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]

# ---------------------------------------------------------------- the agent
# idprov-agent through the same crash, in ONE invocation: its request got no
# answer at all ("Empty reply from server"), so it tries again by itself
# (device-agent/agent.h, attempts), on a new connection with a new proof,
# after a backoff. The test restarts the server when it exits (the event),
# on the same port; the agent's next try is approved, unflagged, and it ends
# provisioned.
MAC2=02:00:5e:40:00:02
agent() { "$IDP_BIN/idprov-agent" --state-dir "$T_TMP/agent" --id dev-ag --mac $MAC2 \
	--server "https://127.0.0.1:$port" --ca "$st/ca.pem" "$@"; }
t_run "server starts" srv_start "$st" --throttle-per-minute 0 --throttle-device-burst 1000
port=$SRV_PORT
# One issuer for every restart (the default names the first listen port,
# which srv_start makes an ephemeral one).
url=(--server-url "https://127.0.0.1:$port")
agent run --once --wait 1 >/dev/null 2>&1
t_run "dev-ag: pending, then approved by the administrator" adm approve dev-ag >/dev/null
srv_stop
IDPROVD_TEST_FAULT=provision.committed srv_start "$st" --throttle-per-minute 0 \
	--throttle-device-burst 1000 --listen 127.0.0.1:$port "${url[@]}"
# Tries enough to outlast a slow restart (bounded: agent.h, 60 s in all).
agent --attempts 6 run --once --wait 1 >"$T_TMP/agent.out" 2>"$T_TMP/agent.err" &
ag=$!
T_CLEANUP+=("kill $ag 2>/dev/null")
wait "$SRV_PID"
t_run "the server died after committing dev-ag's approval (exit 99)" [ $? = 99 ]
t_run "dev-ag's approval was committed (one token)" \
	[ "$(q "SELECT count(*) FROM tokens WHERE device_id = 'dev-ag'")" = 1 ]
t_run "server restarts on the same port" srv_start "$st" --throttle-per-minute 0 \
	--throttle-device-burst 1000 --listen 127.0.0.1:$port "${url[@]}"
wait "$ag"
t_run "the one agent run ends provisioned (exit 0)" [ $? = 0 ]
t_grep "it tried again by itself after the lost answer" \
	'event=request.retry .*device=dev-ag request=provision attempt=2 of=6 after=[a-z_]*' \
	"$T_TMP/agent.err"
t_grep "the restarted server approved its retry" \
	'event=http.request .*path=/v1/provision status=200' "$SRV_ERR"
t_run "dev-ag: the undelivered token revoked, one live token (a device token)" \
	[ "$(q "SELECT sum(revoked_at > 0) || '/' || sum(used = 0 AND revoked_at = 0 AND kind = 'device') FROM tokens WHERE device_id = 'dev-ag'")" = 1/1 ]
t_run "dev-ag: one live token in all" \
	[ "$(q "SELECT count(*) FROM tokens WHERE device_id = 'dev-ag' AND used = 0 AND revoked_at = 0 AND expires_at > strftime('%s','now')")" = 1 ]
t_run "dev-ag: no repeat-provision flag" \
	[ "$(q "SELECT count(*) FROM flags WHERE kind = 'repeat-provision' AND subject = 'dev-ag'")" = 0 ]
t_run "the agent holds a device token" \
	[ "$(agent status --json | grep -o '"token":"[a-z]*"')" = '"token":"device"' ]
srv_stop

# ---------------------------------------------------------------- a renewal lost
# The same crash for a renewal (IDPROVD_TEST_FAULT=redeem.committed): the
# server commits the new device token, spending the old one, and dies before
# the answer leaves. The agent still holds only the old token; its own retry
# presents it again with a new proof, and the restarted server takes it for
# the retry of a lost answer (server/provision.c, retry_lost): a new token,
# the undelivered one revoked, audited token.reissued. No provisioning again.
tok() { grep -o '"token":"[^"]*"' "$T_TMP/agent/state.json"; }
old_tok=$(tok)
IDPROVD_TEST_FAULT=redeem.committed srv_start "$st" --throttle-per-minute 0 \
	--throttle-device-burst 1000 --listen 127.0.0.1:$port "${url[@]}"
agent --attempts 6 run --once --renew --wait 1 >"$T_TMP/renew.out" 2>"$T_TMP/renew.err" &
ag=$!
T_CLEANUP+=("kill $ag 2>/dev/null")
wait "$SRV_PID"
t_run "the server died after committing dev-ag's renewal (exit 99)" [ $? = 99 ]
t_run "the renewal was committed: the old device token used, a new one unused" \
	[ "$(q "SELECT sum(kind = 'device' AND used = 1) || '/' || sum(kind = 'device' AND used = 0 AND revoked_at = 0) FROM tokens WHERE device_id = 'dev-ag'")" = 1/1 ]
lost_jti=$(q "SELECT jti FROM tokens WHERE device_id = 'dev-ag' AND kind = 'device' AND used = 0 AND revoked_at = 0")
t_run "server restarts on the same port" srv_start "$st" --throttle-per-minute 0 \
	--throttle-device-burst 1000 --listen 127.0.0.1:$port "${url[@]}"
wait "$ag"
t_run "the one agent run ends renewed (exit 0)" [ $? = 0 ]
t_grep "it tried the renewal again by itself" \
	'event=request.retry .*device=dev-ag request=renew attempt=2 of=6' "$T_TMP/renew.err"
t_run "the restarted server took it for a lost answer (token.reissued)" \
	[ "$(q "SELECT count(*) FROM audit WHERE event = 'token.reissued' AND subject = 'dev-ag'")" = 1 ]
t_run "the undelivered device token is revoked" \
	[ "$(q "SELECT revoked_at > 0 FROM tokens WHERE jti = '$lost_jti'")" = 1 ]
t_run "dev-ag: one live token in all, a device token" \
	[ "$(q "SELECT count(*) || '/' || sum(kind = 'device') FROM tokens WHERE device_id = 'dev-ag' AND used = 0 AND revoked_at = 0 AND expires_at > strftime('%s','now')")" = 1/1 ]
t_run "dev-ag: not provisioned again, not flagged" \
	[ "$(q "SELECT count(*) FROM tokens WHERE device_id = 'dev-ag' AND kind = 'provisioning'")/$(q "SELECT count(*) FROM flags WHERE subject = 'dev-ag'")" = 2/0 ]
t_run "the agent holds a new device token" \
	[ -n "$old_tok" ] && [ "$(tok)" != "$old_tok" ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_run "integrity_check ok" [ "$(q 'PRAGMA integrity_check')" = ok ]
t_done
