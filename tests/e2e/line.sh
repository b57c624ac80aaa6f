#!/usr/bin/env bash
# line.sh - the whole line with real processes, every outcome asserted:
# factory (idprov-agent in factory mode on the station's pty, read by
# idprov-station in continuous mode; a sealed device FAILs and is in no
# manifest; closed and signed) -> delivery (the station's queue: with
# idprovd down the upload stays pending, exit 5, and `upload --pending`
# delivers it once idprovd is up; a second batch carried as a file and
# imported with idprov-admin import, chained seq 1 -> 2) -> site (the same
# agents in site mode are approved at once from the manifests with the key
# the station read, exchange and renew their tokens; the device that failed
# and one no manifest names wait as pending, the second until approved by
# its key; one with an out-of-band label secret is approved at once) -> the
# admin's view (devices, unprovisioned report, audit chain).
# What tests/integration/station/upload.sh covers with the test device
# (200 on a second upload, a disabled station) is not repeated here.
. "$(dirname "$0")/e2e.inc"

# Factory: batch L-1 (devices 1-3; device 7, sealed, fails), L-2 (devices 4-5).
t_run "factory: batch L-1 read from 3 agents, device 7 FAILs" e2e_read L-1 1 s7 2 3
t_grep "device 7 FAIL names the seal" '^FAIL  e2e-07  device: ERROR [A-Z_]+ to CHALLENGE: challenge: device is sealed' "$T_TMP/read-L-1"
t_grep "L-1 closed and signed" '^closed batch L-1: 3 devices' "$T_TMP/read-L-1"
t_refuse "device 7 is in no manifest" grep -q '"id":"e2e-07"' "$E2E_ST/batches/L-1.manifest"
t_run "factory: batch L-2 read from 2 agents" e2e_read L-2 4 5
t_run "L-2 verifies against the station key" "$IDP_BIN/idprov-manifest" verify \
	"$E2E_ST/batches/L-2.manifest" --station-pub "$T_TMP/st.pub" -q

# Delivery, server down: the queue keeps L-1 (L-2 is carried by hand below).
e2e_srv_start --token-lifetime 120s
srv_stop
e2e_upload --batch L-1
t_run "server down: upload exit 5" [ $? = 5 ]
t_grep "server down: L-1 still pending" 'L-1: not delivered, still pending' "$T_TMP/up"
t_refuse "server down: nothing reached the store" \
	test "$(sqlite3 -readonly "$SRV_DIR/idprov.db" 'select count(*) from batches')" != 0
t_run "server back up" e2e_srv_start --token-lifetime 120s
t_run "trust the station's key" adm station add st-1 "$T_TMP/st.pub"
"$IDP_BIN/idprov-station" batches --state "$E2E_ST" >"$T_TMP/list"
t_grep "queue: L-1 pending" '^L-1 +3 devices  pending$' "$T_TMP/list"
e2e_upload --pending
t_run "queue delivered: exit 0" [ $? = 0 ]
t_grep "L-1 delivered (201, 3 devices)" '^L-1: uploaded 201 devices 3$' "$T_TMP/up"
"$IDP_BIN/idprov-station" batches --state "$E2E_ST" >"$T_TMP/list"
t_grep "queue: L-1 uploaded" '^L-1 +3 devices  uploaded 201' "$T_TMP/list"

# Carried: L-2 imported from a copy of its files.
mkdir -p "$T_TMP/usb-stick"
cp "$E2E_ST/batches/L-2.manifest" "$E2E_ST/batches/L-2.manifest.sig" "$T_TMP/usb-stick/"
t_run "L-2 carried and imported" adm import "$T_TMP/usb-stick/L-2.manifest"
adm --json devices >"$T_TMP/devs.json"
for n in 1 2 3 4 5; do
	e2e_device "$n"
	t_grep "$E2E_ID preloaded" "\"id\":\"$E2E_ID\"[^}]*\"state\":\"preloaded\"" "$T_TMP/devs.json"
done
db=$SRV_DIR/idprov.db
chain=$(sqlite3 -readonly "$db" "select b2.sequence from batches b1 join batches b2 on b2.prev_hash = b1.hash where b1.id = 'L-1' and b1.sequence = 1 and b2.id = 'L-2'")
t_run "chain of st-1: L-2 (seq $chain) follows L-1 (seq 1) by its hash" [ "$chain" = 2 ]

# Site: each agent provisions, approved at once; its key is the one the station read.
for n in 1 2 3 4 5; do
	e2e_site "$n"
	t_run "device $n: provisioned (exit 0)" [ $? = 0 ]
	"$IDP_BIN/idprov-agent" --state-dir "$E2E_DIR" --id "$E2E_ID" status --json >"$T_TMP/st-$n.json"
	t_grep "device $n: holds a device token" '"token":"device"' "$T_TMP/st-$n.json"
done
t_grep "device 1: approved from the manifest" 'event=provision.approved' "$T_TMP/site-1.log"
pub=$(grep -v '^-----' "$T_TMP/dev/e2e-01/key.pub" | tr -d '\n')
t_run "device 1's manifest record carries the key its agent holds" \
	grep -q "\"id\":\"e2e-01\",[^}]*\"pub\":\"$pub\"" "$E2E_ST/batches/L-1.manifest"
e2e_site 2 --renew
t_run "device 2 renews its token" [ $? = 0 ]
t_grep "device 2: renewal logged" 'event=token.renewed' "$T_TMP/site-2.log"

# The device that failed at the factory is unknown on site: it waits, pending.
e2e_site 7 --wait 1
t_run "device 7 (FAIL at the factory): pending on site (exit 5)" [ $? = 5 ]

# A device no manifest names: pending until approved by its key.
e2e_site 9 --wait 1
t_run "unknown device 9: still pending (exit 5)" [ $? = 5 ]
adm --json devices --state pending >"$T_TMP/pending.json"
t_grep "device 9 listed as pending" '"id":"e2e-09"' "$T_TMP/pending.json"
t_run "device 9 approved by its key" adm approve e2e-09 --key "$(e2e_fp 9)"
e2e_site 9
t_run "device 9 provisioned after approval" [ $? = 0 ]

# A device no manifest names, with its label's out-of-band secret entered
# by the installer: approved at once.
printf 'label-secret-e2e-08\n' >"$T_TMP/oob-8"
t_run "installer enters device 8's label secret" adm oob add e2e-08 <"$T_TMP/oob-8"
e2e_site_args 8
"${E2E_ARGS[@]}" --oob-secret-file "$T_TMP/oob-8" run --once 2>>"$T_TMP/site-8.log"
t_run "device 8 with its label secret: approved at once (exit 0)" [ $? = 0 ]

# The admin's view: every device approved with the key its agent holds.
adm --json devices >"$T_TMP/devs.json"
for n in 1 2 3 4 5 8 9; do
	e2e_device "$n"
	t_grep "$E2E_ID approved with its agent's key" \
		"\"id\":\"$E2E_ID\",\"state\":\"approved\"[^}]*\"key_sha256\":\"$(e2e_fp "$n")\"" "$T_TMP/devs.json"
done
adm --json report unprovisioned >"$T_TMP/hostage.json"
t_refuse "hostage report: none left" grep -q '"id":"e2e-' "$T_TMP/hostage.json"
t_run "audit chain verifies" adm audit verify
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
