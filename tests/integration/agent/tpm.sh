#!/usr/bin/env bash
# tpm.sh - the agent's key kept in a (software) TPM: swtpm in socket mode with
# its own state, a persistent P-256 key made in it with tpm2-tools, the agent
# loading it through the tpm2-openssl provider (--key-uri handle:...
# --key-providers tpm2). Against a real idprovd on loopback: the unknown
# device is pending, approved only for the TPM key's SHA-256 (read from the
# TPM by tpm2_readpublic, not from the agent), exchanges and renews; no
# private key is ever in the state dir. At the factory, idprov-station reads
# the device (its PROOF signed by the TPM) as PASS. Refusals: a key.pem beside the URI, a
# different TPM key for the same device, dropping the URI (no new key file),
# a provider that does not exist. Skips (with the reason) only when swtpm
# cannot start here.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"
. "$(dirname "$0")/../station/station.inc"

A=$IDP_BIN/idprov-agent
HANDLE=0x81000001
OTHER=0x81000002

# --- the software TPM -----------------------------------------------------
# swtpm cannot listen on port 0 and report the port, so a random free-looking
# pair is tried, a bounded number of times; the pid file says it is ours.
mkdir -p "$T_TMP/tpm"
TPM_PID=""
for _ in 1 2 3 4 5; do
	port=$((20000 + RANDOM % 20000))
	rm -f "$T_TMP/swtpm.pid"
	swtpm socket --tpm2 --tpmstate dir="$T_TMP/tpm" \
		--server type=tcp,port=$port,bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
		--flags not-need-init,startup-clear --pid file="$T_TMP/swtpm.pid" \
		--log file="$T_TMP/swtpm.log" --daemon 2>>"$T_TMP/swtpm.err" || continue
	TPM_PID=$(cat "$T_TMP/swtpm.pid" 2>/dev/null)
	[ -n "$TPM_PID" ] && kill -0 "$TPM_PID" 2>/dev/null && break
	TPM_PID=""
done
if [ -z "$TPM_PID" ]; then
	echo "skip - swtpm cannot start here ($(head -c 200 "$T_TMP/swtpm.err")):" \
		"the hardware-key test did not run"
	t_done
fi
T_CLEANUP+=("kill $TPM_PID 2>/dev/null || true")
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
export TPM2OPENSSL_TCTI=$TPM2TOOLS_TCTI
t_ok "swtpm started (pid $TPM_PID, port $port)"

# tpm_key HANDLE: a P-256 signing key under the owner's primary, made
# persistent at HANDLE. Without a resource manager each tool's transient
# objects are flushed by hand.
tpm_key() {
	local d=$T_TMP/mk.$1
	mkdir -p "$d"
	tpm2_createprimary -Q -C o -G ecc256 -c "$d/primary.ctx" &&
		tpm2_flushcontext -t &&
		tpm2_create -Q -C "$d/primary.ctx" -G ecc256:ecdsa-sha256 -u "$d/k.pub" -r "$d/k.priv" &&
		tpm2_flushcontext -t &&
		tpm2_load -Q -C "$d/primary.ctx" -u "$d/k.pub" -r "$d/k.priv" -c "$d/k.ctx" &&
		tpm2_evictcontrol -Q -C o -c "$d/k.ctx" "$1" &&
		tpm2_flushcontext -t
}
t_run "persistent P-256 key made in the TPM" tpm_key $HANDLE
t_run "a second TPM key" tpm_key $OTHER
t_run "TPM key read back by tpm2_readpublic" \
	tpm2_readpublic -Q -c $HANDLE -f pem -o "$T_TMP/tpm.pub.pem"
tpm_fp=$(openssl pkey -pubin -in "$T_TMP/tpm.pub.pem" -outform DER | sha256sum | cut -c1-64)
tpm2_readpublic -Q -c $OTHER -f pem -o "$T_TMP/other.pub.pem"
other_fp=$(openssl pkey -pubin -in "$T_TMP/other.pub.pem" -outform DER | sha256sum | cut -c1-64)
t_run "the two TPM keys differ" [ "$tpm_fp" != "$other_fp" ]

# no_private DIR: no key file, and no private key of any kind in any file.
no_private() {
	[ ! -e "$T_TMP/$1/key.pem" ] && [ ! -e "$T_TMP/$1/key.pem.new" ] &&
		! grep -rqE 'PRIVATE KEY' "$T_TMP/$1"
}

# --- at the factory: the station reads a PROOF the TPM signed ----------------
"$IDP_BIN/idprov-manifest" keygen --type p256 --out "$T_TMP/st.key" >/dev/null
t_run "station starts on a pty" st_start "$T_TMP/read" read --state "$T_TMP/st" --station st-1 \
	--batch f-1 --product "Sensor X1" --pty --hello-window-ms 3000
(exec "$A" --state-dir "$T_TMP/fac" --id dev-t1 --mac 02:00:5e:00:c1:01 --serial SN-T1 \
	--key-uri "handle:$HANDLE" --key-providers tpm2 factory --console "$ST_PTY" 2>"$T_TMP/fac.log") &
fpid=$!
T_CLEANUP+=("kill $fpid 2>/dev/null || true")
wait "$ST_PID"
t_run "factory: the station reads PASS (exit 0)" [ $? = 0 ]
t_grep "factory: PASS line for the TPM device" '^PASS  dev-t1  SN-T1  02:00:5e:00:c1:01  p256' "$T_TMP/read"
kill -TERM "$fpid"
wait "$fpid"
t_grep "factory: the agent signed one proof" 'event=factory.proof' "$T_TMP/fac.log"
t_run "factory: no private key in the state dir" no_private fac

# --- the server -------------------------------------------------------------
t_run "server starts" srv_start "$T_TMP/srv" --pending-retry-after 1s --token-lifetime 60s
token=$(cat "$T_TMP/srv/admin.token")
adm() { IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" "$@"; }
# agent DIR ARGS...: the agent with its state in $T_TMP/DIR, stderr to DIR.log.
agent() {
	local d=$1
	shift
	"$A" --state-dir "$T_TMP/$d" --id dev-t1 --mac 02:00:5e:00:c1:01 "$@" 2>>"$T_TMP/$d.log"
}
agent_bg() {
	local d=$1
	shift
	exec "$A" --state-dir "$T_TMP/$d" --id dev-t1 --mac 02:00:5e:00:c1:01 "$@" \
		2>>"$T_TMP/$d.log"
}
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }
HW=(--key-uri "handle:$HANDLE" --key-providers tpm2)

# --- the agent's identity is the TPM key -------------------------------------
agent tpm "${HW[@]}" key >"$T_TMP/agent.pub.pem"
t_run "agent key: the TPM key's public half" \
	[ "$(openssl pkey -pubin -in "$T_TMP/agent.pub.pem" -outform DER | sha256sum | cut -c1-64)" = "$tpm_fp" ]
t_grep "agent key: loaded from the store" "event=key.loaded source=store type=p256 fingerprint=$tpm_fp" "$T_TMP/tpm.log"
t_run "no private key in the state dir after key" no_private tpm

# --- unknown device: pending, approved for the TPM key only ----------------
agent_bg tpm "${HW[@]}" run --once --server "$SRV_URL" --ca "$SRV_CA" --wait 120 &
apid=$!
T_CLEANUP+=("kill $apid 2>/dev/null || true")
t_run "pending: seen (the proof was signed by the TPM)" t_wait "$T_TMP/tpm.log" 'event=provision.pending device=dev-t1'
t_refuse "approval for another key is refused" adm approve dev-t1 --key "$other_fp"
t_run "approved for the TPM key's SHA-256" adm approve dev-t1 --key "$tpm_fp"
wait "$apid"
t_run "provisioned with the TPM key (exit 0)" [ $? = 0 ]
t_grep "token exchanged" 'event=token.exchanged device=dev-t1' "$T_TMP/tpm.log"
adm devices >"$T_TMP/devices.out" 2>&1
t_grep "the server holds the TPM key" "$tpm_fp" "$T_TMP/devices.out"
t_run "no private key in the state dir after provisioning" no_private tpm

# --- renewal, signed by the TPM again -------------------------------------------
t_run "renewal with the TPM key (exit 0)" agent tpm "${HW[@]}" run --once --renew --server "$SRV_URL"
t_grep "renewed" 'event=token.renewed device=dev-t1' "$T_TMP/tpm.log"
agent tpm "${HW[@]}" status --json >"$T_TMP/st.json"
t_run "status: key source is the store" [ "$(json_field key_source <"$T_TMP/st.json")" = store ]
t_run "status: fingerprint is the TPM key's" [ "$(json_field key_fingerprint <"$T_TMP/st.json")" = "$tpm_fp" ]
t_run "status: device token" [ "$(json_field token <"$T_TMP/st.json")" = device ]
t_run "no private key in the state dir after renewal" no_private tpm
cp "$T_TMP/tpm/state.json" "$T_TMP/state.before"

# --- refusals: never a second identity ---------------------------------------
agent tpm --key-uri "handle:$OTHER" --key-providers tpm2 run --once --renew --server "$SRV_URL"
rc=$?
t_run "another TPM key for this device: exit 3" [ "$rc" = 3 ]
t_grep "another TPM key: named" "key URI names key $other_fp, but this device is $tpm_fp" "$T_TMP/tpm.log"
t_run "another TPM key: state unchanged" cmp -s "$T_TMP/tpm/state.json" "$T_TMP/state.before"
agent tpm run --once --renew --server "$SRV_URL"
rc=$?
t_run "key URI dropped: exit 3" [ "$rc" = 3 ]
t_grep "key URI dropped: says the key is elsewhere" 'key.pub exists without key.pem' "$T_TMP/tpm.log"
t_run "key URI dropped: no key file made" no_private tpm
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T_TMP/tpm/key.pem" 2>/dev/null
agent tpm "${HW[@]}" run --once --renew --server "$SRV_URL"
rc=$?
t_run "key.pem beside the key URI: exit 3" [ "$rc" = 3 ]
t_grep "key.pem beside the key URI: named" 'exists and a key URI is set' "$T_TMP/tpm.log"
rm -f "$T_TMP/tpm/key.pem"
agent bad --key-uri "handle:$HANDLE" --key-providers no-such-provider key
rc=$?
t_run "unknown provider: exit 3" [ "$rc" = 3 ]
# The error message is a log value: quoted, its quotes escaped (formats/io/log.h).
t_grep "unknown provider: named" 'error="device key: key provider \\"no-such-provider\\": does not load' "$T_TMP/bad.log"
agent bad --key-uri "handle:0x81000009" --key-providers tpm2 key
rc=$?
t_run "no key at the handle: exit 3" [ "$rc" = 3 ]
t_refuse "no key at the handle: nothing written" test -e "$T_TMP/bad/key.pub"
t_run "after the refusals: renewal still works" agent tpm "${HW[@]}" run --once --renew --server "$SRV_URL"
t_refuse "no secret in the logs" grep -qE 'eyJ|PRIVATE' "$T_TMP/tpm.log"
t_done
