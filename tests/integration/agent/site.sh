#!/usr/bin/env bash
# site.sh - idprov-agent against a real idprovd on loopback over real TLS:
# a preloaded key (manifest made with idprov-manifest naming the agent's key),
# a MAC-only record with trust on first use checked by fingerprint, an
# unknown device pending until idprov-admin approves it, renewal by the daemon
# at half the token's lifetime, a wrong pre-loaded CA, a TOFU pin then a
# different server CA, a wrong fingerprint, a revoked device, and the library
# embedded in a program that is not the CLI.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"

A=$IDP_BIN/idprov-agent
samples=$IDP_TOP/samples/manifests
t_run "server starts" srv_start "$T_TMP/srv" --pending-retry-after 1s --token-lifetime 60s
token=$(cat "$T_TMP/srv/admin.token")
adm() { IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" "$@"; }
# agent DIR ARGS...: the agent with its state in $T_TMP/DIR, stderr to DIR.log.
agent() {
	local d=$1
	shift
	"$A" --state-dir "$T_TMP/$d" "$@" 2>>"$T_TMP/$d.log"
}
# agent_bg DIR ARGS...: the same, replacing the background subshell, so that
# $! is the agent's own PID.
agent_bg() {
	local d=$1
	shift
	exec "$A" --state-dir "$T_TMP/$d" "$@" 2>>"$T_TMP/$d.log"
}
ca_fp=$(openssl x509 -in "$SRV_CA" -outform DER | sha256sum | cut -c1-64)
# json_field NAME < JSON: a string or number member of status --json's flat object.
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }

# --- a manifest naming the agents' keys (preloaded) and a MAC only ---------
agent pre key --id dev-a1 --mac 02:00:5e:00:a1:01 >"$T_TMP/pre.pub.pem"
t_grep "key created on first use" 'BEGIN PUBLIC KEY' "$T_TMP/pre.pub.pem"
t_grep "key creation logged" 'event=key.created type=p256' "$T_TMP/pre.log"
t_run "key is 0600" [ "$(stat -c %a "$T_TMP/pre/key.pem")" = 600 ]
t_run "state dir is 0700" [ "$(stat -c %a "$T_TMP/pre")" = 700 ]
fp0=$(sha256sum "$T_TMP/pre/key.pem")
agent emb key --id dev-a9 --mac 02:00:5e:00:a1:09 --key-type ed25519 >"$T_TMP/emb.pub.pem"
t_grep "ed25519 by option" 'event=key.created type=ed25519' "$T_TMP/emb.log"
agent rev key --id dev-a7 --mac 02:00:5e:00:a1:07 >"$T_TMP/rev.pub.pem"
cat >"$T_TMP/devs.csv" <<EOF
dev-a1,02:00:5e:00:a1:01,SA1-0001,$T_TMP/pre.pub.pem
dev-a2,02:00:5e:00:a1:02,SA1-0002,
dev-a6,02:00:5e:00:a1:06,SA1-0006,
dev-a7,02:00:5e:00:a1:07,SA1-0007,$T_TMP/rev.pub.pem
dev-a9,02:00:5e:00:a1:09,SA1-0009,$T_TMP/emb.pub.pem
EOF
t_run "manifest made" "$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" \
	--batch b-agent-1 --station station-01 --seq 1 --product sx1 --devices "$T_TMP/devs.csv" \
	--format csv --out "$T_TMP/b.manifest"
t_run "station trusted" adm station add station-01 "$samples/sample-station-p256.pub"
t_run "manifest imported" adm import "$T_TMP/b.manifest" --sig "$T_TMP/b.manifest.sig"

# --- preloaded key, pre-loaded CA ---------------------------------------------
t_run "preloaded: provisions (exit 0)" agent pre run --once --id dev-a1 --mac 02:00:5e:00:a1:01 \
	--server "$SRV_URL" --ca "$SRV_CA"
t_grep "preloaded: approved" 'event=provision.approved device=dev-a1' "$T_TMP/pre.log"
t_grep "preloaded: token exchanged" 'event=token.exchanged device=dev-a1' "$T_TMP/pre.log"
t_grep "preloaded: sealed after the first provisioning" 'event=factory.sealed' "$T_TMP/pre.log"
agent pre status --json --id dev-a1 >"$T_TMP/st.json"
t_run "status: device token" [ "$(json_field token <"$T_TMP/st.json")" = device ]
t_run "status: pinned CA is the server's" [ "$(json_field pinned_ca <"$T_TMP/st.json")" = "$ca_fp" ]
nr=$(json_field next_renewal <"$T_TMP/st.json")
te=$(json_field token_expires <"$T_TMP/st.json")
t_run "status: next renewal before expiry" test "$nr" -gt 0 -a "$nr" -lt "$te"
t_run "state.json is 0600" [ "$(stat -c %a "$T_TMP/pre/state.json")" = 600 ]
t_run "key never replaced" [ "$(sha256sum "$T_TMP/pre/key.pem")" = "$fp0" ]
t_refuse "no token in the log" grep -qE 'eyJ' "$T_TMP/pre.log"
t_run "forced renewal" agent pre run --once --renew --id dev-a1 --mac 02:00:5e:00:a1:01 --server "$SRV_URL"
t_grep "renewed" 'event=token.renewed device=dev-a1' "$T_TMP/pre.log"

# --- renewal by the daemon at half the lifetime (60 s tokens) ----------------
agent_bg pre run --id dev-a1 --mac 02:00:5e:00:a1:01 --server "$SRV_URL" &
dpid=$!
T_CLEANUP+=("kill $dpid 2>/dev/null || true")
n0=$(grep -c 'event=token.renewed' "$T_TMP/pre.log")

# --- MAC only, trust on first use checked against the CA fingerprint --------
t_run "mac-only: provisions with TOFU" agent mac run --once --id dev-a2 --mac 02:00:5e:00:a1:02 \
	--server "$SRV_URL" --ca-fingerprint "$ca_fp" --wait 30
t_grep "mac-only: CA pinned on first use" "event=ca.pinned source=first-use fingerprint=$ca_fp" "$T_TMP/mac.log"
t_run "mac-only: pin is the server's CA" cmp -s "$T_TMP/mac/ca.pem" "$SRV_CA"

# --- a config file, server nonces, an out-of-band secret never logged --------
oob='Lb1-s3cr3t!x'
printf '%s\n' "$oob" >"$T_TMP/oob"
cat >"$T_TMP/agent.conf" <<EOF
# agent settings, names as the long options
id = dev-a6
mac 02:00:5e:00:a1:06
server = $SRV_URL
ca = $SRV_CA
oob-file = $T_TMP/oob
nonce
EOF
t_run "config file, nonce, oob: provisions" agent cfg --config "$T_TMP/agent.conf" run --once
t_grep "config file: exchanged" 'event=token.exchanged device=dev-a6' "$T_TMP/cfg.log"
t_refuse "oob secret never logged" grep -qF -- "$oob" "$T_TMP/cfg.log" "$SRV_ERR" "$SRV_OUT"
t_refuse "a bad setting is refused" agent cfg --config "$T_TMP/devs.csv" status

# --- a wrong fingerprint: nothing pinned --------------------------------------
agent fpw run --once --id dev-a3 --mac 02:00:5e:00:a1:03 --server "$SRV_URL" \
	--ca-fingerprint "$(printf '%064d' 0)"
rc=$?
t_run "wrong fingerprint: exit 8" [ "$rc" = 8 ]
t_grep "wrong fingerprint: named" 'expected 0{64}: refused' "$T_TMP/fpw.log"
t_refuse "wrong fingerprint: no pin written" test -e "$T_TMP/fpw/ca.pem"

# --- a wrong pre-loaded CA ------------------------------------------------------
agent wca run --once --id dev-a4 --mac 02:00:5e:00:a1:04 --server "$SRV_URL" \
	--ca "$samples/sample-factory-ca.pem"
rc=$?
t_run "wrong CA: exit 8" [ "$rc" = 8 ]
t_grep "wrong CA: reported" 'not the pinned CA' "$T_TMP/wca.log"

# --- unknown device: pending until approved by idprov-admin -----------------
agent_bg unk run --once --id dev-u1 --mac 02:00:5e:00:b1:01 --server "$SRV_URL" --ca "$SRV_CA" \
	--wait 120 &
upid=$!
T_CLEANUP+=("kill $upid 2>/dev/null || true")
t_run "unknown: pending seen" t_wait "$T_TMP/unk.log" 'event=provision.pending device=dev-u1'
t_run "unknown: approved by idprov-admin" adm approve dev-u1
wait "$upid"
t_run "unknown: agent completes (exit 0)" [ $? = 0 ]
t_grep "unknown: exchanged" 'event=token.exchanged device=dev-u1' "$T_TMP/unk.log"

# --- pending beyond --wait: exit 5 ----------------------------------------------
agent pnd run --once --id dev-u2 --mac 02:00:5e:00:b1:02 --server "$SRV_URL" --ca "$SRV_CA" --wait 2
rc=$?
t_run "still pending: exit 5" [ "$rc" = 5 ]

# --- revoked: stops with exit 7 -------------------------------------------------
t_run "revoked device first provisions" agent rev run --once --id dev-a7 \
	--mac 02:00:5e:00:a1:07 --server "$SRV_URL" --ca "$SRV_CA"
t_run "admin revokes it" adm revoke dev-a7
agent rev run --renew --id dev-a7 --mac 02:00:5e:00:a1:07 --server "$SRV_URL"
rc=$?
t_run "revoked: exit 7 (the daemon stops)" [ "$rc" = 7 ]
t_grep "revoked: reason logged" 'event=provision.rejected device=dev-a7 reason=revoked' "$T_TMP/rev.log"

# --- the library embedded in another program --------------------------------
out=$("$IDP_BUILD/tools/agent_embed" "$T_TMP/emb" dev-a9 02:00:5e:00:a1:09 "$SRV_URL" "$SRV_CA")
t_run "embedded library provisions" [ "${out%% *}" = provisioned ]

# --- an expired token (device offline past its expiry): provisions again -----
# The stored token's times are moved into the past (its signature no longer
# matters: the agent reads its own token's times without a key and never
# sends an expired one).
tok=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$T_TMP/mac/state.json")
p64=$(printf '%s' "$tok" | cut -d. -f2 | tr '_-' '/+')
while [ $((${#p64} % 4)) != 0 ]; do p64="$p64="; done
claims=$(printf '%s' "$p64" | base64 -d | sed -E 's/"iat":[0-9]+/"iat":1700000000/;
	s/"nbf":[0-9]+/"nbf":1700000000/; s/"exp":[0-9]+/"exp":1700000600/')
p2=$(printf '%s' "$claims" | base64 -w0 | tr '+/' '-_' | tr -d '=')
old_tok=$tok
tok="$(printf '%s' "$tok" | cut -d. -f1).$p2.$(printf '%s' "$tok" | cut -d. -f3)"
sed -i "s|$old_tok|$tok|" "$T_TMP/mac/state.json"
agent mac status --json --id dev-a2 >"$T_TMP/exp.json"
t_run "expired: status shows the past expiry" [ "$(json_field token_expires <"$T_TMP/exp.json")" = 1700000600 ]
t_run "expired: run provisions again (exit 0)" agent mac run --once --id dev-a2 \
	--mac 02:00:5e:00:a1:02 --server "$SRV_URL"
t_grep "expired: noticed" 'event=token.expired device=dev-a2' "$T_TMP/mac.log"
agent mac status --json --id dev-a2 >"$T_TMP/exp.json"
t_run "expired: a new token in the future" [ "$(json_field token_expires <"$T_TMP/exp.json")" -gt "$(date +%s)" ]

# --- daemon renewal (started above) -------------------------------------------
for _ in $(seq 1 450); do
	[ "$(grep -c 'event=token.renewed' "$T_TMP/pre.log")" -gt "$n0" ] && break
	sleep 0.1
done
t_run "daemon: a renewal after it started" [ "$(grep -c 'event=token.renewed' "$T_TMP/pre.log")" -gt "$n0" ]
kill -TERM "$dpid"
wait "$dpid"
t_run "daemon: SIGTERM ends it with exit 0" [ $? = 0 ]

# --- TOFU pin, then a server with another CA ---------------------------------
srv_stop
agent pre run --once --renew --id dev-a1 --mac 02:00:5e:00:a1:01 --server "$SRV_URL"
t_run "server down: exit 4 (temporary)" [ $? = 4 ]
t_run "server down: token kept" grep -q '"token_kind":"device"' "$T_TMP/pre/state.json"
t_run "second server (another CA) starts" srv_start "$T_TMP/srv2"
agent mac run --once --id dev-a2 --mac 02:00:5e:00:a1:02 --server "$SRV_URL"
rc=$?
t_run "different CA after the pin: exit 8" [ "$rc" = 8 ]
t_grep "different CA: reported" 'not the pinned CA' "$T_TMP/mac.log"
t_run "pin unchanged" [ "$(openssl x509 -in "$T_TMP/mac/ca.pem" -outform DER | sha256sum | cut -c1-64)" = "$ca_fp" ]
t_done
