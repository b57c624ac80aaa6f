#!/usr/bin/env bash
# serial.sh - the station's serial path through the real libserialport, on a
# USB serial adapter (FTDI 0403:6001) that umockdev presents with a pty
# behind /dev/ttyUSB0 (tests/tools/serial-rig.c): the port is listed
# with its USB identity, opened through libserialport at 115200 8N1, and a
# device with boot noise, split writes and cut frames reads PASS; a wrong
# proof and a device that stops before PROOF are FAIL with their reason. The
# real agent (idprov-agent factory) behind the adapter reads PASS, and once
# sealed is FAIL naming the seal.
. "$(dirname "$0")/../../lib.sh"
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0
rig() { timeout 60 "$IDP_BUILD/tools/serial-rig" "$@" >"$T_TMP/out" 2>&1; }

rig ports
t_run "ports: exit 0" [ $? = 0 ]
t_grep "ports: USB vendor, product, serial" '^/dev/ttyUSB0  usb 0403:6001  serial IDPTEST01  FTDI FT232R USB UART$' "$T_TMP/out"

rig read --noise --split --cut
t_run "noisy device: exit 0" [ $? = 0 ]
t_grep "opened through libserialport" '^opened /dev/ttyUSB0 through libserialport$' "$T_TMP/out"
t_grep "PASS after early resends, no timeout" '^PASS usb-1 SN-1 resends 0 early [1-9]' "$T_TMP/out"

rig read --wrong-proof
t_run "wrong proof: exit 1" [ $? = 1 ]
t_grep "wrong proof named" '^FAIL proof: signature does not match' "$T_TMP/out"

rig read --silent-challenge
t_run "no PROOF: exit 1" [ $? = 1 ]
t_grep "no PROOF named" '^FAIL device: no CHALLENGE answer after 4 attempts' "$T_TMP/out"

rig read --agent "$IDP_BIN/idprov-agent" "$T_TMP/agent"
t_run "real agent: exit 0" [ $? = 0 ]
t_grep "real agent: PASS" '^PASS usb-agent SN-U1 resends 0 early 0$' "$T_TMP/out"
t_grep "real agent signed its proof" 'event=factory.proof' "$T_TMP/out"
"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/agent" --id usb-agent --mac 02:1a:2c:00:02:01 seal 2>/dev/null
rig read --agent "$IDP_BIN/idprov-agent" "$T_TMP/agent"
t_run "sealed agent: exit 1" [ $? = 1 ]
t_grep "sealed agent: FAIL names the seal" '^FAIL device: ERROR [A-Z_]+ to CHALLENGE: challenge: device is sealed$' "$T_TMP/out"
t_refuse "sealed agent signed nothing" grep -q 'event=factory.proof' "$T_TMP/out"
t_done
