#!/usr/bin/env bash
# agent.sh - idprov-station against the REAL device agent in factory mode
# (idprov-agent factory --console PTY) on the station's pty: a line of three
# agents, with boot-log and kernel lines written to the same console by
# another writer, reads PASS and is closed into a manifest holding each
# agent's own key (idprov-agent key); an agent that stopped answering (a hung
# device, SIGSTOP) is NO DEVICE (exit 4); a sealed agent is FAIL naming the
# seal (exit 1) and its key is in no manifest. The wrong-proof case stays on
# the test device (line.sh, serial.sh): the agent signs only with its own key
# over its own INFO and has no switch to do otherwise.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/station.inc"

st=$T_TMP/state
key=$T_TMP/st.key
"$IDP_BIN/idprov-manifest" keygen --type p256 --out "$key" >/dev/null

# agent_dir N: a device's state directory with its key made (and printed to N.pub)
agent_dir() {
	"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev$1" --id "agt-$1" --mac "02:1a:2c:00:01:0$1" \
		--serial "SN-A$1" key >"$T_TMP/dev$1.pub" 2>"$T_TMP/dev$1.keyerr"
}
# agent_start PTY N [stop]: the agent of device N answering on PTY; sets
# AGT_PID. With stop, the process stops itself before it execs the agent (a
# device that hangs before it ever answers), so no answer can slip out.
agent_start() {
	(
		[ "${3:-}" = stop ] && kill -STOP $BASHPID
		exec "$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev$2" --id "agt-$2" --mac "02:1a:2c:00:01:0$2" \
			--serial "SN-A$2" --fw-version 2.0.1 factory --console "$1" 2>"$T_TMP/agent$2.log"
	) &
	AGT_PID=$!
	T_CLEANUP+=("st_kill $AGT_PID")
}
agent_stop() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
# noise PTY: a boot log and kernel lines on the console beside the agent
noise() {
	local i
	printf 'U-Boot 2024.01\r\nDRAM:  512 MiB\r\nStarting kernel ...\r\n' >"$1"
	for i in 1 2 3 4 5; do
		printf '[    %d.000000] usb 1-1: new high-speed USB device\r\n' "$i" >"$1"
	done
}

for n in 1 2 3 4 5; do agent_dir $n; done
t_run "agent 1 made its key" [ -s "$T_TMP/dev1.pub" ]
t_run "agent 5 made its key" [ -s "$T_TMP/dev5.pub" ]

# A line of three agents, one after the other on the same console.
t_run "run starts on a pty" st_start "$T_TMP/run" run --state "$st" --station st-1 \
	--batch a-1 --product "Sensor X1" --count 3 --pty --key "$key" --hello-window-ms 3000
for n in 1 2 3; do
	noise "$ST_PTY"
	agent_start "$ST_PTY" $n
	noise "$ST_PTY"
	t_run "agent $n: PASS shown" st_wait_lines "$T_TMP/run" "^PASS  agt-$n  SN-A$n  02:1a:2c:00:01:0$n  p256" 1
	agent_stop "$AGT_PID"
	t_grep "agent $n: signed one proof" 'factory.proof' "$T_TMP/agent$n.log"
done
wait "$ST_PID"
t_run "run exits 0 after --count" [ $? = 0 ]
t_grep "batch closed" '^closed batch a-1: 3 devices' "$T_TMP/run"
m=$st/batches/a-1.manifest
t_run "manifest verifies" "$IDP_BIN/idprov-manifest" verify "$m" --station-pub "$T_TMP/st.pub" -q
for n in 1 2 3; do
	pub=$(grep -v '^-----' "$T_TMP/dev$n.pub" | tr -d '\n')
	t_run "agent $n: manifest record carries the agent's own key" \
		grep -q "\"id\":\"agt-$n\",\"mac\":\"02:1a:2c:00:01:0$n\",\"serial\":\"SN-A$n\",\"pub\":\"$pub\"" "$m"
done

one() {
	st_start "$T_TMP/one" read --state "$st" --station st-1 --batch a-2 --product "Sensor X1" \
		--pty --hello-window-ms 1500 --timeout-ms 500 || return 99
	agent_start "$ST_PTY" "$1" "${2:-}"
	wait "$ST_PID"
	local r=$?
	kill -CONT "$AGT_PID" 2>/dev/null
	agent_stop "$AGT_PID"
	return $r
}
# A device that stops answering: the agent hangs (SIGSTOP) before the station's HELLO.
one 4 stop
t_run "hung agent: exit 4" [ $? = 4 ]
t_grep "hung agent: no device" '^NO DEVICE  device: no answer to HELLO' "$T_TMP/one"

# The sealing rule: a sealed agent signs nothing and the station says why.
"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev5" --id agt-5 --mac 02:1a:2c:00:01:05 seal 2>/dev/null
t_run "agent 5 sealed" [ -e "$T_TMP/dev5/sealed" ]
one 5
t_run "sealed agent: exit 1" [ $? = 1 ]
t_grep "sealed agent: FAIL names the seal" '^FAIL  agt-5  device: ERROR [A-Z_]+ to CHALLENGE: challenge: device is sealed' "$T_TMP/one"
t_grep "the agent logged its refusal" 'factory.refused.*reason=sealed' "$T_TMP/agent5.log"
t_refuse "no proof signed by the sealed agent" grep -q 'factory.proof' "$T_TMP/agent5.log"
# The hung agent answers once resumed: the same console, read again, PASSes.
one 4
t_run "agent 4 resumed: PASS" [ $? = 0 ]
t_grep "agent 4 PASS line" '^PASS  agt-4  SN-A4' "$T_TMP/one"
t_done
