#!/usr/bin/env bash
# demo.sh - make demo's script (samples/demo.sh) run against the built
# binaries from a checkout path, a binary path and a work path with spaces in
# them. Its outcomes are asserted from the state it keeps (KEEP_DIR), not from
# its narration: idprovd's database holds every device the station PASSed,
# provisioned with the key that device's agent holds (dev-04 then revoked),
# the unlisted dev-07 approved with its own key and no batch, nothing of the
# sealed dev-99 that FAILed (nor in any manifest); the chain seq 1 -> 2 is the
# station's two manifests; the agents hold device tokens (dev-04 none); and
# nothing the demo started is left running. A demo stopped by SIGTERM in the
# middle of the factory line stops every process it started and removes its
# work directory, and so does one whose output pipe is closed part way. The
# script is ShellCheck-clean at every severity.
. "$(dirname "$0")/../../lib.sh"

ln -s "$IDP_TOP" "$T_TMP/check out"
ln -s "$IDP_BIN" "$T_TMP/bin dir"
demo="$T_TMP/check out/samples/demo.sh"
w="$T_TMP/work dir"
# procs_in DIR: the PIDs of processes whose working directory is in DIR.
procs_in() {
	local p c
	for p in /proc/[0-9]*; do
		c=$(readlink "$p/cwd" 2>/dev/null) || continue
		case $c in "$1" | "$1"/* | "$1 (deleted)") echo "${p#/proc/}" ;; esac
	done
}
# wait_for FILE ERE: until FILE has a line matching ERE (at most 60 s).
wait_for() {
	for _ in $(seq 1 600); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

t_run "shellcheck: samples/demo.sh and this test are clean" \
	shellcheck -e SC1091 "$IDP_TOP/samples/demo.sh" "$IDP_TOP/tests/integration/demo/demo.sh"

bash "$demo" "$T_TMP/bin dir" "$w" >"$T_TMP/out" 2>&1
rc=$?
t_run "the demo exits 0" [ "$rc" = 0 ]
[ "$rc" = 0 ] || tail -30 "$T_TMP/out" | sed 's/^/    # /'
t_run "nothing it started is left running" [ -z "$(procs_in "$w")" ]

db=$w/state/idprov.db
q() { sqlite3 -readonly "$db" "$1"; }
# spki_hex DIR: the agent's public key (SPKI DER) in DIR as hex.
spki_hex() { openssl pkey -pubin -in "$1/key.pub" -outform DER | od -An -tx1 -v | tr -d ' \n'; }
token_of() { (cd "$w" && "$IDP_BIN/idprov-agent" --config "$1.conf" status --json) |
	sed -n 's/.*"token":"\([a-z]*\)".*/\1/p'; }
for d in dev-01 dev-02 dev-03 dev-05 dev-06; do
	t_run "$d: approved and provisioned" \
		[ "$(q "SELECT state || ' ' || (provisioned_at > 0) FROM devices WHERE id = '$d'")" = "approved 1" ]
	t_run "$d: the server's key is its agent's" \
		[ "$(q "SELECT lower(hex(public_key)) FROM devices WHERE id = '$d'")" = "$(spki_hex "$w/$d")" ]
	t_run "$d: the agent holds a device token" [ "$(token_of "$d")" = device ]
done
t_run "dev-04: provisioned, then revoked" \
	[ "$(q "SELECT state || ' ' || (provisioned_at > 0) FROM devices WHERE id = 'dev-04'")" = "revoked 1" ]
t_run "dev-04: the agent holds no token" [ "$(token_of dev-04)" = none ]
t_run "dev-07 (in no manifest): approved, provisioned, no batch" \
	[ "$(q "SELECT state || ' ' || (provisioned_at > 0) || ' ' || coalesce(batch_id, '-')
		FROM devices WHERE id = 'dev-07'")" = "approved 1 -" ]
t_run "dev-07: approved with its own key" \
	[ "$(q "SELECT lower(hex(public_key)) FROM devices WHERE id = 'dev-07'")" = "$(spki_hex "$w/dev-07")" ]
t_run "dev-07: the agent holds a device token" [ "$(token_of dev-07)" = device ]
t_run "dev-99 (FAIL at the station): unknown to the server" \
	[ "$(q "SELECT count(*) FROM devices WHERE id = 'dev-99' OR mac = '02:1a:2c:00:00:63'")" = 0 ]
t_refuse "dev-99: in no manifest" grep -q '"id":"dev-99"' "$w"/station/batches/*.manifest
t_run "no other devices" [ "$(q "SELECT count(*) FROM devices")" = 7 ]
t_run "batches: seq 1 line-001 (4), seq 2 line-002 (2)" \
	[ "$(q "SELECT group_concat(sequence || ' ' || id || ' ' || device_count, ', ')
		FROM (SELECT * FROM batches WHERE station_id = 'station-01' ORDER BY sequence)")" = \
	"1 line-001 4, 2 line-002 2" ]
h1=$(sha256sum "$w/station/batches/line-001.manifest" | cut -c1-64)
t_run "seq 1 is the station's line-001 manifest" \
	[ "$(q "SELECT lower(hex(hash)) FROM batches WHERE sequence = 1")" = "$h1" ]
t_run "seq 2 chains to it" [ "$(q "SELECT lower(hex(prev_hash)) FROM batches WHERE sequence = 2")" = "$h1" ]
"$IDP_BIN/idprov-station" batches --state "$w/station" >"$T_TMP/batches"
t_grep "line-001 went by upload" '^line-001 +4 devices  uploaded' "$T_TMP/batches"
t_grep "line-002 was carried (never uploaded)" '^line-002 +2 devices  pending' "$T_TMP/batches"

# Stopped part way: with a station and an agent running.
mkdir "$T_TMP/tmp dir"
TMPDIR="$T_TMP/tmp dir" bash "$demo" "$T_TMP/bin dir" >"$T_TMP/out2" 2>&1 &
dpid=$!
T_CLEANUP+=("kill $dpid 2>/dev/null || true")
t_run "second run reaches dev-02 on the line" wait_for "$T_TMP/out2" '^ +station +PASS  dev-02 '
t_run "its processes are running (demo, station, agent)" [ "$(procs_in "$T_TMP/tmp dir" | wc -l)" -ge 3 ]
kill -TERM "$dpid"
wait "$dpid"
rc=$?
t_run "SIGTERM: the demo exits 143" [ "$rc" = 143 ]
t_grep "SIGTERM: says it failed" 'demo: FAILED \(exit 143\)' "$T_TMP/out2"
t_run "SIGTERM: nothing left running" [ -z "$(procs_in "$T_TMP/tmp dir")" ]
t_run "SIGTERM: the work directory is removed" [ -z "$(ls -A "$T_TMP/tmp dir")" ]

# Its output piped into a reader that stops early (SIGPIPE at its default, as
# in a terminal): it stops its processes and removes its work directory all
# the same, though it can no longer say so.
env --default-signal=PIPE bash "$demo" "$T_TMP/bin dir" 2>&1 | head -16 >"$T_TMP/out3"
t_grep "pipe: the reader saw the line start" '^ +station +opened batch line-001' "$T_TMP/out3"
gone() { [ -z "$(procs_in "$T_TMP/tmp dir")" ] && [ -z "$(ls -A "$T_TMP/tmp dir")" ]; }
for _ in $(seq 1 100); do gone && break; sleep 0.1; done
t_run "pipe closed: nothing left running, work directory removed" gone
t_done
