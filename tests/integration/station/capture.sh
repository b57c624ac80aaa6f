#!/usr/bin/env bash
# capture.sh - the capture proof travels with the device (formats/manifest.md
# 2.4): idprov-station writes a version 2 manifest whose records carry the
# station nonce and the device's PROOF signature, and idprovd verifies every
# one at import. The genuine batch imports (201); a copy with one capture
# signature altered, or with two devices' proofs swapped, re-signed with the
# station key so that the manifest signature itself is valid, is refused
# whole, naming the device, and leaves the store unchanged.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"
. "$(dirname "$0")/station.inc"

st=$T_TMP/state
srv=$T_TMP/srv
key=$T_TMP/st.key
"$IDP_BIN/idprov-manifest" keygen --type p256 --out "$key" >/dev/null
t_run "run starts" st_start "$T_TMP/run" run --state "$st" --station st-1 --batch c-1 \
	--product "Sensor X1" --count 3 --pty --key "$key" --hello-window-ms 3000
dev_start "$ST_PTY" --devices 3 --type p256
wait "$ST_PID"
t_run "run closes and signs the batch" [ $? = 0 ]
m=$st/batches/c-1.manifest
t_run "manifest is version 2" grep -q '^{"v":2,"batch":"c-1"' "$m"
t_run "every record carries its capture" \
	[ "$(grep -cE ',"capture":\{"nonce":"[0-9a-f]{64}","sig":"[A-Za-z0-9+/]{86}=="\}\}$' "$m")" = 3 ]
t_run "manifest verifies" "$IDP_BIN/idprov-manifest" verify "$m" --station-pub "$T_TMP/st.pub" -q

t_run "server starts" srv_start "$srv"
token=$(cat "$srv/admin.token")
db=$srv/idprov.db
snap() { sqlite3 -readonly "$db" .dump; }
cli() { IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --json "$@"; }
t_run "station trusted" bash -c "IDPROV_ADMIN_TOKEN=$token '$IDP_BIN/idprov-admin' --server $SRV_URL --ca '$SRV_CA' station add st-1 '$T_TMP/st.pub' >/dev/null"
# import FILE: POST FILE with a fresh es256 signature by the station key
import() {
	openssl dgst -sha256 -sign "$key" -out "$1.sig" "$1" || return 99
	srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/vnd.idprov.manifest' \
		-H "Idprov-Signature: $(base64 -w0 "$1.sig")" --data-binary @"$1" "$SRV_URL/v1/admin/import"
}

# One capture signature altered: the first base64 digit of dev-2's changed,
# and the body signed again with the station key.
f1=$T_TMP/altered.manifest
sed -E '/"id":"dev-2"/ { s/("sig":")A/\1B/; t; s/("sig":")./\1A/ }' "$m" >"$f1"
openssl dgst -sha256 -sign "$key" -out "$f1.sig" "$f1"
t_run "altered copy differs in one record" [ "$(diff "$m" "$f1" | grep -c '^>')" = 1 ]
t_run "the altered copy's manifest signature is valid" \
	openssl dgst -sha256 -verify "$T_TMP/st.pub" -signature "$f1.sig" "$f1"
"$IDP_BIN/idprov-manifest" verify "$f1" --station-pub "$T_TMP/st.pub" -q 2>"$T_TMP/v1"
t_run "idprov-manifest verify refuses the altered capture (exit 1)" [ $? = 1 ]
t_grep "verify names the device" 'line 3: device dev-2: capture: proof: signature does not match' "$T_TMP/v1"
snap >"$T_TMP/before"
code=$(import "$f1")
t_run "altered capture: import refused 403 (as a bad signature)" [ "$code" = 403 ]
t_grep "refusal names the device and the capture" \
	'line 3: device dev-2: capture: proof: signature does not match' "$T_TMP/out"
t_run "store unchanged" bash -c "[ \"\$(sqlite3 -readonly '$db' .dump)\" = \"\$(cat '$T_TMP/before')\" ]"

# Two devices' proofs swapped: each is a real proof, of the other device.
f2=$T_TMP/swapped.manifest
l2=$(grep '"id":"dev-2"' "$m")
l3=$(grep '"id":"dev-3"' "$m")
while IFS= read -r line; do
	case $line in
	"$l2") printf '%s,"capture":%s\n' "${l2%%,\"capture\":*}" "${l3#*,\"capture\":}" ;;
	"$l3") printf '%s,"capture":%s\n' "${l3%%,\"capture\":*}" "${l2#*,\"capture\":}" ;;
	*) printf '%s\n' "$line" ;;
	esac
done <"$m" >"$f2"
t_run "swapped copy differs in two records" [ "$(diff "$m" "$f2" | grep -c '^>')" = 2 ]
code=$(import "$f2")
t_run "swapped captures: import refused 403" [ "$code" = 403 ]
t_grep "refusal names the first device" 'line 3: device dev-2: capture: proof: ' "$T_TMP/out"
t_run "store unchanged" bash -c "[ \"\$(sqlite3 -readonly '$db' .dump)\" = \"\$(cat '$T_TMP/before')\" ]"
t_grep "refusals logged" 'batch.refused' "$SRV_ERR"

# The genuine batch, as the station signed it.
cli import "$m" >"$T_TMP/genuine"
t_run "genuine batch imports" [ $? = 0 ]
t_grep "genuine batch created with 3 devices" '"devices":3,"created":true' "$T_TMP/genuine"
t_run "3 devices preloaded from batch c-1" \
	[ "$(sqlite3 -readonly "$db" "select count(*) from devices where batch_id='c-1' and state='preloaded'")" = 3 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
