#!/usr/bin/env bash
# kill.sh - idprov-agent killed with SIGKILL at several points of its first
# provisioning (after the key is created, the CA pinned, the provisioning
# token stored, the device token stored, and at staggered times), then
# restarted: it always ends provisioned, with whole state files, and with the
# key it created first (the server holds a MAC-only record, so it records the
# first key presented and would refuse another as key_mismatch), sealed. The
# same with a pre-loaded CA (whose copy waits for the device token's
# directory fsync), and a lost CA copy and seal restored by the next run.
# IDP_KILL_EXTRA=N (default 0; make stress sets it) adds N kills at random
# times (0.10 to 0.99 s into the run), each a device of its own.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"

A=$IDP_BIN/idprov-agent
samples=$IDP_TOP/samples/manifests
t_run "server starts" srv_start "$T_TMP/srv" --token-lifetime 60s
token=$(cat "$T_TMP/srv/admin.token")
adm() { IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" "$@"; }
agent_bg() {
	local d=$1
	shift
	exec "$A" --state-dir "$T_TMP/$d" "$@" 2>>"$T_TMP/$d.log"
}
wait_for() {
	local _
	for _ in $(seq 1 300); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.02
	done
	return 1
}

points="key.created ca.pinned provision.approved token.exchanged factory.sealed"
delays="0.05 0.2 0.4 0.6 0.8 1.0 1.5"
for _ in $(seq 1 "${IDP_KILL_EXTRA:-0}"); do
	delays+=" 0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
done
: >"$T_TMP/devs.csv"
n=0
for p in $points $delays ca.pinned provision.approved token.exchanged factory.sealed 0.1 0.3; do
	n=$((n + 1))
	printf 'dev-k%d,02:00:5e:00:c0:%02x,SK-%04d,\n' "$n" "$n" "$n" >>"$T_TMP/devs.csv"
done
"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" --batch b-kill-1 \
	--station station-01 --seq 1 --product sx1 --devices "$T_TMP/devs.csv" --format csv \
	--out "$T_TMP/b.manifest" >/dev/null
adm station add station-01 "$samples/sample-station-p256.pub" >/dev/null
t_run "MAC-only records imported" adm import "$T_TMP/b.manifest" --sig "$T_TMP/b.manifest.sig"

# check_dir D ID: every state file whole (the key parses, the pin is a
# certificate, and status reads state.json with the strict JSON parser).
check_dir() {
	openssl pkey -in "$1/key.pem" -noout 2>/dev/null &&
		openssl x509 -in "$1/ca.pem" -noout 2>/dev/null &&
		"$A" --state-dir "$1" --id "$2" status >/dev/null
}

# kill_at P WHAT [ARGS...]: a new device run in the background, SIGKILL at
# point P (a log event, or seconds), then a restart that must end
# provisioned with the same key, whole files, a device token, sealed.
n=0
kill_at() {
	local p=$1 what=$2 key1="" rc
	shift 2
	n=$((n + 1))
	d=k$n
	mac=$(printf '02:00:5e:00:c0:%02x' "$n")
	args=(--id "dev-k$n" --mac "$mac" --server "$SRV_URL" "$@")
	agent_bg "$d" run "${args[@]}" &
	pid=$!
	case $p in
	[0-9]*) sleep "$p" ;;
	*) wait_for "$T_TMP/$d.log" "event=$p" ;;
	esac
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	[ -f "$T_TMP/$d/key.pem" ] && key1=$(sha256sum <"$T_TMP/$d/key.pem")
	"$A" --state-dir "$T_TMP/$d" run --once "${args[@]}" 2>>"$T_TMP/$d.log"
	rc=$?
	t_run "$what $p: restart ends provisioned (exit 0)" [ "$rc" = 0 ]
	if [ -n "$key1" ]; then
		t_run "$what $p: same key" [ "$(sha256sum <"$T_TMP/$d/key.pem")" = "$key1" ]
	fi
	t_run "$what $p: state files whole" check_dir "$T_TMP/$d" "dev-k$n"
	t_refuse "$what $p: no key mismatch" grep -q key_mismatch "$T_TMP/$d.log"
	"$A" --state-dir "$T_TMP/$d" status --json --id "dev-k$n" >"$T_TMP/$d.json"
	t_grep "$what $p: holds a device token" '"token":"device"' "$T_TMP/$d.json"
	t_grep "$what $p: factory mode sealed" '"sealed":true' "$T_TMP/$d.json"
}
for p in $points $delays; do
	kill_at "$p" "killed at"
done
# A pre-loaded CA (--ca): its copy in the state dir, the provisioning token
# and the seal wait for the device token's directory fsync (one fsync
# covers them).
for p in ca.pinned provision.approved token.exchanged factory.sealed 0.1 0.3; do
	kill_at "$p" "pre-loaded CA, killed at" --ca "$SRV_CA"
done

# What a power cut before that directory fsync may lose, the next run
# restores: the CA copy (copied again from --ca, then used; also when it
# reads empty: it is written without an fsync of its own) and the seal.
rm "$T_TMP/$d/ca.pem" "$T_TMP/$d/sealed"
t_run "pin and seal lost: the next run renews" \
	"$A" --state-dir "$T_TMP/$d" run --once --renew "${args[@]}" 2>>"$T_TMP/$d.log"
t_run "pin and seal lost: the CA copied again" cmp -s "$SRV_CA" "$T_TMP/$d/ca.pem"
t_run "pin and seal lost: sealed again" [ -f "$T_TMP/$d/sealed" ]
t_grep "pin and seal lost: renewed over the copy" "event=token.renewed device=dev-k$n" "$T_TMP/$d.log"
: >"$T_TMP/$d/ca.pem"
t_run "CA copy garbled: the next run renews" \
	"$A" --state-dir "$T_TMP/$d" run --once --renew "${args[@]}" 2>>"$T_TMP/$d.log"
t_run "CA copy garbled: copied again" cmp -s "$SRV_CA" "$T_TMP/$d/ca.pem"
t_done
