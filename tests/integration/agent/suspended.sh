#!/usr/bin/env bash
# suspended.sh - an agent against a site whose provisioning is suspended
# (formats/api.md `suspended`: 503 with Retry-After 300): `run --once`
# reports the answer at once (exit 4, the message named) after one request,
# rather than sleeping through the Retry-After inside the request (it used
# to try three times, 300 s apart); after `idprov-admin resume` it
# provisions. The `timeout` only bounds a broken agent; the assertions are
# on its exit code, its log and the server's count of refused requests.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"

export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T_TMP/no-such-bus
t_run "server starts" srv_start "$T_TMP/srv" --dnssd=off
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/srv/admin.token" "$@" >/dev/null; }
agent() {
	timeout 120 "$IDP_BIN/idprov-agent" --state-dir "$T_TMP/ag" run --once --id dev-s1 \
		--mac 02:00:5e:00:5a:01 --server "$SRV_URL" --ca "$SRV_CA" --wait 1 2>>"$T_TMP/ag.log"
}
t_run "suspend" adm suspend --reason "line 3 audit"
agent
rc=$?
t_run "suspended: the agent exits 4 (temporary)" [ "$rc" = 4 ]
t_grep "suspended: it names the answer and the reason" \
	'server refused \(503 suspended\): provisioning suspended until an administrator resumes it: line 3 audit' \
	"$T_TMP/ag.log"
t_run "suspended: one request, not retried through Retry-After" \
	[ "$(grep -c 'event=request.suspended' "$SRV_ERR")" = 1 ]
t_run "resume" adm resume
agent
rc=$?
t_run "resumed: the agent provisions (pending, exit 5)" [ "$rc" = 5 ]
t_grep "resumed: a decision, not a suspension" 'provision: still pending' "$T_TMP/ag.log"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
