#!/usr/bin/env bash
# resume.sh - TLS session resumption for a renewing agent (issue 17): an
# agent that stays (the library embedded by tests/tools/agent_embed, as
# `idprov-agent run` does) drops its connection after each step and renews
# on a new connection that resumes the session (the server's ticket), with
# the proof bound to that connection's own exporter: the server verifies it
# and renews. Against a server without tickets (tls-session-lifetime 0) the
# same renewals are full handshakes. A proof made on one connection and sent
# on a connection resuming its session is refused (its exporter differs),
# and changes nothing.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"

E=$IDP_BUILD/tools/agent_embed
ATK=$IDP_BUILD/tools/idp_attack
samples=$IDP_TOP/samples/manifests

# setup DIR [ARGS...]: a server with devices dev-r1..dev-r3 imported.
setup() {
	local dir=$1 token
	shift
	srv_start "$dir" --token-lifetime 1h "$@" || return 1
	token=$(cat "$dir/admin.token")
	"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" --batch b-res-1 \
		--station station-01 --seq 1 --product sx1 --devices "$T_TMP/devs.csv" --format csv \
		--out "$T_TMP/b.manifest" >/dev/null &&
		IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" \
			station add station-01 "$samples/sample-station-p256.pub" >/dev/null &&
		IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" \
			import "$T_TMP/b.manifest" --sig "$T_TMP/b.manifest.sig" >/dev/null
}
for i in 1 2 3; do printf 'dev-r%d,02:00:5e:00:e0:%02x,SR-%04d,\n' "$i" "$i" "$i"; done >"$T_TMP/devs.csv"

t_run "server with tickets starts" setup "$T_TMP/srv"
t_run "provisions, then renews 3 times in one process" \
	"$E" "$T_TMP/a1" dev-r1 02:00:5e:00:e0:01 "$SRV_URL" "$SRV_CA" 3 >"$T_TMP/a1.out" 2>"$T_TMP/a1.err"
t_grep "provisioned on a full handshake" 'event=token.exchanged .* tls=full' "$T_TMP/a1.err"
t_run "three renewals on resumed sessions" \
	[ "$(grep -c '^renewed [0-9]* .*device=dev-r1 .*tls=resumed' "$T_TMP/a1.out")" = 3 ]
"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/a1" --id dev-r1 status --json >"$T_TMP/a1.json"
t_grep "holds a device token" '"token":"device"' "$T_TMP/a1.json"

# A proof replayed on a connection resuming the session it was made on.
"$ATK" key "$T_TMP/k2" p256
"$ATK" send "$SRV_PORT" "$T_TMP/k2" provision dev-r2 02:00:5e:00:e0:02 replay-resumed - \
	"$T_TMP/r2.prov" >"$T_TMP/r2.out" 2>&1
t_grep "the first request approved" '^answer 200 approved' "$T_TMP/r2.out"
t_grep "the second connection resumed" '^resumed 1$' "$T_TMP/r2.out"
t_grep "the proof of the first connection refused on it" '^answer 401 pop_invalid' "$T_TMP/r2.out"
sqlite3 "$T_TMP/srv/idprov.db" "SELECT attempts FROM devices WHERE id = 'dev-r2'" >"$T_TMP/r2.n" 2>&1
t_grep "the refused replay changed nothing (one attempt)" '^1$' "$T_TMP/r2.n"
srv_stop

t_run "server without tickets starts" setup "$T_TMP/srv0" --tls-session-lifetime 0
t_run "renews twice against it" \
	"$E" "$T_TMP/a3" dev-r3 02:00:5e:00:e0:03 "$SRV_URL" "$SRV_CA" 2 >"$T_TMP/a3.out" 2>"$T_TMP/a3.err"
t_run "each renewal a full handshake" \
	[ "$(grep -c '^renewed [0-9]* .*tls=full' "$T_TMP/a3.out")" = 2 ]
t_done
