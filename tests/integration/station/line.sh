#!/usr/bin/env bash
# line.sh - idprov-station on a pty against the test device: a line of
# devices with boot noise and cut frames is read, journaled and closed into
# a signed manifest that idprov-manifest verifies; one-shot reads exit 0
# PASS, 1 FAIL (wrong proof, device of an earlier batch), 4 no device; a
# second run on the same state directory is refused (exit 6).
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/station.inc"

st=$T_TMP/state
key=$T_TMP/st.key
"$IDP_BIN/idprov-manifest" keygen --type p256 --out "$key" >/dev/null
station() { local v=$1; shift; "$IDP_BIN/idprov-station" "$v" --state "$st" --station st-1 "$@"; }

# A line of 4 devices, noisy and cut, closed at --count 4 and signed.
t_run "run starts on a pty" st_start "$T_TMP/run" run --state "$st" --station st-1 \
	--batch b-1 --product "Sensor X1" --count 4 --pty --key "$key" --hello-window-ms 3000
dev_start "$ST_PTY" --devices 4 --noise --cut --split --type p256
wait "$ST_PID"
rc=$?
t_run "run exits 0 after --count" [ "$rc" = 0 ]
t_run "4 PASS lines" [ "$(grep -c '^PASS ' "$T_TMP/run")" = 4 ]
t_grep "PASS line names device, serial, MAC, key" \
	'^PASS  dev-4  SN-4  02:1a:2c:00:00:04  p256 .*\[4/4 pass 4 fail 0\]' "$T_TMP/run"
t_grep "batch closed" '^closed batch b-1: 4 devices' "$T_TMP/run"
m=$st/batches/b-1.manifest
t_run "manifest verifies" "$IDP_BIN/idprov-manifest" verify "$m" --station-pub "$T_TMP/st.pub" -q
"$IDP_BIN/idprov-manifest" show "$m" --station-pub "$T_TMP/st.pub" >"$T_TMP/show"
t_run "manifest holds the 4 devices" [ "$(grep -c '^  dev-' "$T_TMP/show")" = 4 ]
t_grep "manifest is seq 1" 'seq 1 ' "$T_TMP/show"
station batches >"$T_TMP/list"
t_grep "batches: pending" '^b-1 +4 devices  pending' "$T_TMP/list"

# One-shot reads into a second batch.
one() {
	local dev_args=$1
	shift
	st_start "$T_TMP/one" read --state "$st" --station st-1 --batch b-2 --product "Sensor X1" \
		--pty --hello-window-ms 1500 --timeout-ms 500 "$@" || return 99
	dev_start "$ST_PTY" $dev_args
	wait "$ST_PID"
	local r=$?
	kill "$DEV_PID" 2>/dev/null
	wait "$DEV_PID" 2>/dev/null
	return $r
}
one "--first 10"
t_run "read: PASS exits 0" [ $? = 0 ]
one "--first 11 --wrong-proof"
t_run "read: wrong proof exits 1" [ $? = 1 ]
t_grep "wrong proof: FAIL names the proof" '^FAIL  dev-11  proof: ' "$T_TMP/one"
one "--first 12 --silent"
t_run "read: silent device exits 4" [ $? = 4 ]
t_grep "silent: no device" '^NO DEVICE  device: no answer to HELLO' "$T_TMP/one"
one "--first 2"
t_run "read: device of an earlier batch exits 1" [ $? = 1 ]
t_grep "earlier batch named" '^FAIL  dev-2  already in an earlier batch of this station' "$T_TMP/one"
one "--first 13" --serial-rule 'pattern=SX1-[0-9]+'
t_run "read: serial rule exits 1" [ $? = 1 ]
t_grep "rule failure quoted" 'serial: "SN-13" does not match' "$T_TMP/one"
station batches >"$T_TMP/list"
t_grep "b-2 open with the one PASS" '^b-2 +1 devices  open' "$T_TMP/list"

"$IDP_BIN/idprov-station" read --state "$st" --station st-1 --batch b-3 --product P --pty \
	2>"$T_TMP/other" >/dev/null
t_run "another batch while b-2 is open: exit 1" [ $? = 1 ]
t_grep "open batch named" 'batch b-2 is still open' "$T_TMP/other"

# The state directory is held by a running station.
st_start "$T_TMP/hold" run --state "$st" --station st-1 --batch b-2 --pty --hello-window-ms 500
station batches >/dev/null
"$IDP_BIN/idprov-station" read --state "$st" --station st-1 --batch b-2 --port /dev/null 2>"$T_TMP/busy"
t_run "second station on the same state: exit 6" [ $? = 6 ]
t_grep "busy named" 'in use by another idprov-station' "$T_TMP/busy"
kill -TERM "$ST_PID"
wait "$ST_PID"
t_run "SIGTERM closes the batch, exit 0" [ $? = 0 ]
t_grep "closed on SIGTERM" '^closed batch b-2: 1 devices' "$T_TMP/hold"
station close --batch b-2 --key "$key" >"$T_TMP/close"
t_run "close signs b-2" [ $? = 0 ]
t_grep "b-2 is seq 2" 'b-2.manifest: 1 devices, seq 2, sha256 [0-9a-f]{64}: pending upload' "$T_TMP/close"
station close --batch b-2 --key "$key" >"$T_TMP/close"
t_run "close again is idempotent" [ $? = 0 ]
t_grep "already signed" 'already signed as seq 2' "$T_TMP/close"
"$IDP_BIN/idprov-manifest" show "$st/batches/b-2.manifest" --station-pub "$T_TMP/st.pub" >"$T_TMP/show"
t_run "b-2 chains to b-1" grep -q "\"prev\":\"$(sha256sum "$m" | cut -d' ' -f1)\"" "$st/batches/b-2.manifest"
t_done
