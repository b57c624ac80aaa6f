#!/usr/bin/env bash
# station_kill.sh - the station killed (SIGKILL) in the middle of a batch of
# real agents, while a device is being read (its agent has just signed its
# proof): restarted without --batch, it resumes the batch from its journal;
# the device in flight, connected again, is either read now or refused as
# already in the batch; the batch closes with every device once, uploads,
# and every device provisions on site with the key the station read.
# tests/integration/station/kill.sh kills at random points against the test
# device and checks the journal itself; this is the same crash seen from the
# server and the devices.
. "$(dirname "$0")/e2e.inc"

# read_one OUT N: device N's agent on the station's pty until the station
# shows its line (PASS, or FAIL as already in the batch).
read_one() {
	e2e_factory "$ST_PTY" "$2"
	st_wait_lines "$1" "^(PASS|FAIL)  $E2E_ID  " 1
	local r=$?
	kill -TERM "$AGT_PID" 2>/dev/null
	wait "$AGT_PID" 2>/dev/null
	return $r
}

t_run "station starts batch K-1" st_start "$T_TMP/r1" run --state "$E2E_ST" --station st-1 \
	--batch K-1 --product "Sensor X1" --count 5 --pty --key "$E2E_KEY" --hello-window-ms 3000
t_run "device 1 read" read_one "$T_TMP/r1" 1
t_run "device 2 read" read_one "$T_TMP/r1" 2
# Device 3 in flight: kill the station as soon as the agent has signed.
e2e_factory "$ST_PTY" 3
t_run "device 3 signed its proof" t_wait "$T_TMP/factory-3.log" 'event=factory.proof'
kill -9 "$ST_PID"
wait "$ST_PID" 2>/dev/null
t_run "station killed (SIGKILL)" [ $? = 137 ]
kill -TERM "$AGT_PID" 2>/dev/null
wait "$AGT_PID" 2>/dev/null
t_refuse "no manifest yet" test -e "$E2E_ST/batches/K-1.manifest"

st_start "$T_TMP/r2" run --state "$E2E_ST" --station st-1 --product "Sensor X1" --count 5 \
	--pty --key "$E2E_KEY" --hello-window-ms 3000
t_grep "restart resumed K-1 from the journal" '^resumed batch K-1: [23] devices from the journal' "$T_TMP/r2"
t_run "device 3 connected again: shown" read_one "$T_TMP/r2" 3
grep -E '^(PASS|FAIL)  e2e-03 ' "$T_TMP/r2" >"$T_TMP/d3"
if grep -q '^FAIL' "$T_TMP/d3"; then
	t_grep "device 3 was journaled before the kill: refused as already in the batch" \
		'already in this batch' "$T_TMP/d3"
else
	t_grep "device 3 was not journaled before the kill: read now" '^PASS' "$T_TMP/d3"
fi
t_run "device 4 read" read_one "$T_TMP/r2" 4
t_run "device 5 read" read_one "$T_TMP/r2" 5
wait "$ST_PID"
t_run "resumed run closes at --count (exit 0)" [ $? = 0 ]
t_grep "K-1 closed with 5 devices" '^closed batch K-1: 5 devices' "$T_TMP/r2"
"$IDP_BIN/idprov-manifest" show "$E2E_ST/batches/K-1.manifest" --station-pub "$T_TMP/st.pub" |
	awk '/^  /{print $1}' | sort >"$T_TMP/ids"
t_run "manifest: each device once" [ "$(tr '\n' ' ' <"$T_TMP/ids")" = "e2e-01 e2e-02 e2e-03 e2e-04 e2e-05 " ]

t_run "server starts" e2e_srv_start
t_run "station trusted" adm station add st-1 "$T_TMP/st.pub"
e2e_upload --pending
t_run "upload: exit 0" [ $? = 0 ]
t_grep "K-1 uploaded with 5 devices" '^K-1: uploaded 201 devices 5$' "$T_TMP/up"
t_run "the store: one batch, 5 devices" \
	[ "$(sqlite3 -readonly "$SRV_DIR/idprov.db" "select count(*) from batches"):$(sqlite3 -readonly "$SRV_DIR/idprov.db" "select count(*) from devices")" = 1:5 ]
for n in 1 2 3 4 5; do
	e2e_site "$n"
	t_run "device $n provisions (exit 0)" [ $? = 0 ]
done
adm --json devices >"$T_TMP/devs.json"
for n in 1 2 3 4 5; do
	e2e_device "$n"
	t_grep "$E2E_ID approved with the key the station read" \
		"\"id\":\"$E2E_ID\",\"state\":\"approved\"[^}]*\"key_sha256\":\"$(e2e_fp "$n")\"" "$T_TMP/devs.json"
done
srv_stop
t_done
