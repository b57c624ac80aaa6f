#!/usr/bin/env bash
# usb.sh - the station's USB transport under umockdev (tests/tools/usb-rig.c):
# test devices (1d50:6189, vendor interface 0, bulk 0x81/0x01) are plugged
# into and out of a testbed with uevents, their usbdevfs ioctls answered by
# the rig; the real idprov-station runs inside it with libusb and hotplug.
# Checks: `ports --usb` lists the device with its USB serial; a line of
# devices reads PASS one after the other as they are plugged in; a wrong
# proof is one FAIL however long the device stays connected; a device
# unplugged mid-read (at its CHALLENGE) is FAIL naming the unplug and the
# line goes on; the real agent behind the endpoints PASSes with its own key
# and, sealed, is one FAIL naming the seal; one-shot read with nothing
# plugged in is NO DEVICE (exit 4);
# a device without the configured interface is named and skipped; bad
# --usb values are usage errors (exit 2).
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/station.inc"
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0

st=$T_TMP/state
ctl=$T_TMP/ctl
"$IDP_BIN/idprov-manifest" keygen --type p256 --out "$T_TMP/st.key" >/dev/null
# rig_start OUT PROGRAM ARGS...: the rig and its program in the background
# (stdout to OUT, the rig's lines to OUT.rig); commands go to fd 3.
rig_start() {
	local out=$1
	shift
	rm -f "$ctl"
	mkfifo "$ctl"
	"$IDP_BUILD/tools/usb-rig" "$ctl" -- "$@" >"$out" 2>"$out.rig" &
	RIG_PID=$!
	T_CLEANUP+=("st_kill $RIG_PID")
	exec 3>"$ctl"
}
rig() { echo "$*" >&3; }
rig_wait() {
	wait "$RIG_PID"
	local r=$?
	exec 3>&-
	return $r
}
count() { grep -cE -- "$1" "$2"; }
# sessions_after OUT N: wait (bounded) until the rig saw N more sessions
sessions_after() {
	local dev=$1 want=$(($(count "^rig: $1 session" "$2.rig") + $3))
	st_wait_lines "$2.rig" "^rig: $dev session" "$want"
}

# ports: the device plugged in before the station looks.
# shellcheck disable=SC2016 # expanded by the inner bash
rig_start "$T_TMP/ports" bash -c 'for _ in $(seq 1 100); do [ -e "$0" ] && break; sleep 0.1; done
	exec "$1" ports --usb 1d50:6189' "$T_TMP/go" "$IDP_BIN/idprov-station"
rig plug 7
st_wait_lines "$T_TMP/ports.rig" '^rig: plugged usb-7' 1
touch "$T_TMP/go"
rig_wait
t_run "ports: exit 0" [ $? = 0 ]
t_grep "ports: the USB device with its serial" \
	'^usb:001:002  usb 1d50:6189  serial IDPUSB7  idprov Test Device$' "$T_TMP/ports"

# A line over USB. A test device left connected answers nothing after its
# PROOF (tests/device/wire_device.c: the next HELLO is the next device's),
# so each of the station's later sessions with it lasts the hello window:
# 1 s, not 3 (a device that does not answer within it is asked again, never
# failed, so a busy machine cannot make this window fail a check).
rig_start "$T_TMP/run" "$IDP_BIN/idprov-station" run --state "$st" --station st-1 --batch u-1 \
	--product "Sensor X1" --usb 1d50:6189 --hello-window-ms 1000 --timeout-ms 2000
rig plug 1
t_run "usb-1: PASS" st_wait_lines "$T_TMP/run" '^PASS  usb-1  SN-1  02:1a:2c:00:00:01  p256 ' 1
rig unplug
rig plug 2
t_run "usb-2: PASS" st_wait_lines "$T_TMP/run" '^PASS  usb-2  SN-2 ' 1
t_run "usb-2 left connected: 3 more sessions" sessions_after usb-2 "$T_TMP/run" 3
t_run "usb-2: still one line" [ "$(count 'usb-2' "$T_TMP/run")" = 1 ]
rig unplug
rig plug 3 wrong-proof
t_run "wrong proof: FAIL" st_wait_lines "$T_TMP/run" '^FAIL  usb-3  proof: .*: unplug it  ' 1
t_run "wrong proof left connected: 3 more sessions" sessions_after usb-3 "$T_TMP/run" 3
t_run "wrong proof: one FAIL line" [ "$(count '^FAIL ' "$T_TMP/run")" = 1 ]
rig unplug
rig plug 4 unplug-at-challenge
t_run "unplugged mid-read: FAIL" st_wait_lines "$T_TMP/run" '^FAIL  usb-4  ' 1
t_grep "unplugged mid-read: named" \
	'^FAIL  usb-4  usb: device unplugged during CHALLENGE  \[2 pass 2 fail 2\]' "$T_TMP/run"
t_grep "the rig cut it at its CHALLENGE" '^rig: unplugged at CHALLENGE' "$T_TMP/run.rig"
rig plug 5 noise
t_run "the line goes on: usb-5 PASS" st_wait_lines "$T_TMP/run" '^PASS  usb-5  SN-5 .*\[3 pass 3 fail 2\]' 1
rig quit
rig_wait
t_run "SIGTERM: exit 0" [ $? = 0 ]
t_grep "batch closed with 3 devices" '^closed batch u-1: 3 devices \(PASS 3, FAIL 2' "$T_TMP/run"
"$IDP_BIN/idprov-station" batches --state "$st" --batch u-1 >"$T_TMP/list"
t_run "journal: usb-1, usb-2, usb-5" [ "$(cut -d' ' -f1 "$T_TMP/list" | tr '\n' ' ')" = "usb-1 usb-2 usb-5 " ]

# The real agent (idprov-agent factory) behind the USB endpoints: PASS with
# the agent's own key, one proof however long it stays; sealed, one FAIL.
agt=$T_TMP/agt8
"$IDP_BIN/idprov-agent" --state-dir "$agt" --id agt-u8 --mac 02:1a:2c:00:04:08 --serial SN-U8 \
	key >"$T_TMP/agt8.pub" 2>/dev/null
rig_start "$T_TMP/agent" "$IDP_BIN/idprov-station" run --state "$st" --station st-1 --batch u-3 \
	--product "Sensor X1" --usb 1d50:6189 --hello-window-ms 3000 --timeout-ms 2000
rig agent 8 "$IDP_BIN/idprov-agent" "$agt"
t_run "agent over USB: PASS" st_wait_lines "$T_TMP/agent" '^PASS  agt-u8  SN-U8  02:1a:2c:00:04:08 ' 1
t_run "agent left connected: 3 more sessions" sessions_after usb-8 "$T_TMP/agent" 3
t_run "agent: one proof signed" [ "$(count 'factory.proof' "$agt.log")" = 1 ]
rig unplug
# the agent process is gone (its state directory free) once the rig says so
st_wait_lines "$T_TMP/agent.rig" '^rig: unplugged usb-8' 1
"$IDP_BIN/idprov-agent" --state-dir "$agt" --id agt-u8 --mac 02:1a:2c:00:04:08 seal 2>/dev/null
t_run "agent 8 sealed" [ -e "$agt/sealed" ]
rig agent 8 "$IDP_BIN/idprov-agent" "$agt"
t_run "sealed agent over USB: FAIL" st_wait_lines "$T_TMP/agent" '^FAIL  agt-u8  ' 1
t_run "sealed agent left connected: 3 more sessions" sessions_after usb-8 "$T_TMP/agent" 3
t_grep "sealed agent: FAIL names the seal" \
	'^FAIL  agt-u8  device: ERROR [A-Z_]+ to CHALLENGE: challenge: device is sealed: unplug it' "$T_TMP/agent"
t_run "sealed agent: one CHALLENGE refused" [ "$(count 'factory.refused' "$agt.log")" = 1 ]
rig quit
rig_wait
t_run "agent run: exit 0" [ $? = 0 ]
m=$st/batches/u-3.manifest
"$IDP_BIN/idprov-station" close --state "$st" --batch u-3 --key "$T_TMP/st.key" >/dev/null
pub=$(grep -v '^-----' "$T_TMP/agt8.pub" | tr -d '\n')
t_run "manifest record carries the agent's own key" grep -q "\"id\":\"agt-u8\".*\"pub\":\"$pub\"" "$m"

# One-shot read: nothing plugged in, then a device.
rig_start "$T_TMP/none" "$IDP_BIN/idprov-station" read --state "$st" --station st-1 --batch u-2 \
	--product "Sensor X1" --usb 1d50:6189 --hello-window-ms 1000
rig_wait
t_run "read, nothing plugged: exit 4" [ $? = 4 ]
t_grep "no device named" '^NO DEVICE  usb: no device 1d50:6189 plugged in' "$T_TMP/none"
rig_start "$T_TMP/one" "$IDP_BIN/idprov-station" read --state "$st" --station st-1 --batch u-2 \
	--product "Sensor X1" --usb 1d50:6189 --hello-window-ms 3000
rig plug 6
rig_wait
t_run "read: PASS exits 0" [ $? = 0 ]
t_grep "read: PASS line" '^PASS  usb-6  SN-6 ' "$T_TMP/one"

# A device without the configured interface is named and skipped, not read.
rig_start "$T_TMP/noif" "$IDP_BIN/idprov-station" read --state "$st" --station st-1 --batch u-2 \
	--usb 1d50:6189 --usb-interface 1 --hello-window-ms 1500
rig plug 9
rig_wait
t_run "wrong interface: nothing read, exit 4" [ $? = 4 ]
t_grep "wrong interface: named" \
	'usb 1d50:6189 bus 1 device [0-9]+: interface 1 has no bulk IN and OUT endpoint' "$T_TMP/noif.rig"
t_refuse "wrong interface: no session opened" grep -q 'session' "$T_TMP/noif.rig"

# Usage errors.
"$IDP_BIN/idprov-station" read --state "$st" --station st-1 --usb 1d50 2>"$T_TMP/e1"
t_run "--usb without product: exit 2" [ $? = 2 ]
t_grep "--usb named" 'usb: "1d50" is not VENDOR:PRODUCT in hex' "$T_TMP/e1"
"$IDP_BIN/idprov-station" read --state "$st" --station st-1 --usb 1d50:6189 --port /dev/null 2>"$T_TMP/e2"
t_run "--usb and --port: exit 2" [ $? = 2 ]
t_grep "one line only" 'give one of --port PATH, --usb VID:PID or --pty' "$T_TMP/e2"
"$IDP_BIN/idprov-station" ports --usb 1d50:6189 --usb-interface 300 2>"$T_TMP/e3"
t_run "bad interface: exit 2" [ $? = 2 ]
t_grep "interface named" 'usb: interface "300" is not a number 0..255' "$T_TMP/e3"
t_done
