#!/usr/bin/env bash
# held.sh - a device that stays connected after it was reported is read
# once and reported once (issue 12): in continuous mode a sealed agent left
# on the console is one FAIL naming the seal and "unplug it", however many
# times the station then asks who is there (HELLO and INFO only: the agent
# refuses no second CHALLENGE); an agent left connected after its PASS signs
# one proof and has one PASS line; the next agent on the same console is
# read at once; an agent of an earlier batch is one FAIL. Before this, the
# station read such a device again and again (a FAIL line each time, a
# proof signed each time). Asserts on the agents' own session logs
# (factory.hello per session), never on elapsed time.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/station.inc"

st=$T_TMP/state
for n in 1 2 3; do
	"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev$n" --id "agt-$n" --mac "02:1a:2c:00:03:0$n" \
		--serial "SN-H$n" key >/dev/null 2>&1
done
"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev1" --id agt-1 --mac 02:1a:2c:00:03:01 seal 2>/dev/null
t_run "agent 1 sealed" [ -e "$T_TMP/dev1/sealed" ]

# agent_start PTY N LOG: agent N answering on PTY; sets AGT_PID.
agent_start() {
	"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev$2" --id "agt-$2" --mac "02:1a:2c:00:03:0$2" \
		--serial "SN-H$2" factory --console "$1" 2>"$3" &
	AGT_PID=$!
	T_CLEANUP+=("st_kill $AGT_PID")
}
agent_stop() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
count() { grep -cE -- "$1" "$2"; }
# sessions_after LOG N: wait (bounded) until LOG shows N more sessions
sessions_after() {
	local want=$(($(count 'factory.hello' "$1") + $2))
	st_wait_lines "$1" 'factory.hello' "$want"
}

t_run "run starts on a pty" st_start "$T_TMP/run" run --state "$st" --station st-1 \
	--batch h-1 --product "Sensor X1" --pty --hello-window-ms 3000 --timeout-ms 500

# A sealed agent stays on the console.
agent_start "$ST_PTY" 1 "$T_TMP/agent1.log"
t_run "sealed: FAIL shown" st_wait_lines "$T_TMP/run" '^FAIL  agt-1 ' 1
t_run "sealed: asked who is there 4 more times" sessions_after "$T_TMP/agent1.log" 4
t_run "sealed: one FAIL line" [ "$(count '^FAIL ' "$T_TMP/run")" = 1 ]
t_grep "sealed: FAIL names the seal and says unplug it" \
	'^FAIL  agt-1  device: ERROR [A-Z_]+ to CHALLENGE: challenge: device is sealed: unplug it  \[0 pass 0 fail 1\]' "$T_TMP/run"
t_run "sealed: one CHALLENGE refused" [ "$(count 'factory.refused' "$T_TMP/agent1.log")" = 1 ]
agent_stop "$AGT_PID"

# The next device on the same console: read at once, PASS, then left connected.
agent_start "$ST_PTY" 2 "$T_TMP/agent2.log"
t_run "agent 2: PASS shown" st_wait_lines "$T_TMP/run" '^PASS  agt-2  SN-H2 ' 1
t_run "agent 2: asked who is there 4 more times" sessions_after "$T_TMP/agent2.log" 4
t_run "agent 2: one PASS line" [ "$(count '^PASS ' "$T_TMP/run")" = 1 ]
t_run "agent 2: signed one proof" [ "$(count 'factory.proof' "$T_TMP/agent2.log")" = 1 ]
t_run "agent 2: no FAIL" [ "$(count '^FAIL ' "$T_TMP/run")" = 1 ]
agent_stop "$AGT_PID"

# Then agent 3 on the same console.
agent_start "$ST_PTY" 3 "$T_TMP/agent3.log"
t_run "agent 3: PASS shown" st_wait_lines "$T_TMP/run" '^PASS  agt-3  SN-H3 ' 1
agent_stop "$AGT_PID"
kill -TERM "$ST_PID"
wait "$ST_PID"
t_run "SIGTERM closes the batch, exit 0" [ $? = 0 ]
t_grep "h-1 closed with 2 devices" '^closed batch h-1: 2 devices \(PASS 2, FAIL 1' "$T_TMP/run"

# A device of an earlier batch, left connected: one FAIL.
t_run "second run starts" st_start "$T_TMP/run2" run --state "$st" --station st-1 \
	--batch h-2 --product "Sensor X1" --pty --hello-window-ms 3000 --timeout-ms 500
agent_start "$ST_PTY" 2 "$T_TMP/agent2b.log"
t_run "earlier batch: FAIL shown" st_wait_lines "$T_TMP/run2" '^FAIL  agt-2 ' 1
t_run "earlier batch: asked who is there 4 more times" sessions_after "$T_TMP/agent2b.log" 4
t_run "earlier batch: one FAIL line" [ "$(count '^FAIL ' "$T_TMP/run2")" = 1 ]
t_grep "earlier batch: named, unplug it" \
	'^FAIL  agt-2  already in an earlier batch of this station.*: unplug it  \[' "$T_TMP/run2"
agent_stop "$AGT_PID"
kill -TERM "$ST_PID"
wait "$ST_PID"
t_run "empty batch left open, exit 0" [ $? = 0 ]
t_done
