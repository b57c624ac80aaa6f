#!/usr/bin/env bash
# agent_kill.sh - devices read at the factory (their keys in the station's
# signed manifest, uploaded) are killed (SIGKILL) in the middle of their
# first site provisioning: after the CA is pinned on first use, after the
# approval, after the token exchange, and at a staggered time. Restarted,
# each recovers and ends provisioned with the key the station read (the
# server holds it from the manifest and refuses any other as key_mismatch).
# tests/integration/agent/kill.sh kills at more points against MAC-only
# records; here the key comes through the whole line.
. "$(dirname "$0")/e2e.inc"

points="ca.pinned provision.approved token.exchanged 0.3"
t_run "factory: batch A-1 read from 4 agents" e2e_read A-1 1 2 3 4
t_run "server starts" e2e_srv_start
t_run "station trusted" adm station add st-1 "$T_TMP/st.pub"
e2e_upload --batch A-1
t_run "A-1 uploaded" [ $? = 0 ]
# shellcheck disable=SC2034 # read by e2e_site_args (e2e.inc)
E2E_CA_FP=$(openssl x509 -in "$SRV_CA" -outform DER | sha256sum | cut -d' ' -f1)

n=0
for p in $points; do
	n=$((n + 1))
	e2e_device "$n"
	key0=$(sha256sum <"$E2E_DIR/key.pem")
	e2e_site_bg "$n"
	case $p in
	[0-9]*) sleep "$p" ;;
	*) t_wait "$T_TMP/site-$n.log" "event=$p" || t_fail "device $n: no $p event" ;;
	esac
	kill -9 "$AGT_PID" 2>/dev/null
	wait "$AGT_PID" 2>/dev/null
	e2e_site "$n"
	t_run "device $n killed at $p: the restart ends provisioned (exit 0)" [ $? = 0 ]
	t_run "device $n killed at $p: key file unchanged" [ "$(sha256sum <"$E2E_DIR/key.pem")" = "$key0" ]
	t_refuse "device $n killed at $p: no key mismatch" grep -q key_mismatch "$T_TMP/site-$n.log"
	t_run "device $n killed at $p: pinned the server's CA" cmp -s "$E2E_DIR/ca.pem" "$SRV_CA"
	"${E2E_ARGS[@]}" status --json >"$T_TMP/status-$n.json"
	t_grep "device $n killed at $p: holds a device token" '"token":"device"' "$T_TMP/status-$n.json"
done
adm --json devices >"$T_TMP/devs.json"
for n in 1 2 3 4; do
	e2e_device "$n"
	pub=$(grep -v '^-----' "$E2E_DIR/key.pub" | tr -d '\n')
	t_run "$E2E_ID: the manifest names the key the agent holds" \
		grep -q "\"id\":\"$E2E_ID\",[^}]*\"pub\":\"$pub\"" "$E2E_ST/batches/A-1.manifest"
	t_grep "$E2E_ID approved with that key" \
		"\"id\":\"$E2E_ID\",\"state\":\"approved\"[^}]*\"key_sha256\":\"$(e2e_fp "$n")\"" "$T_TMP/devs.json"
done
srv_stop
t_done
