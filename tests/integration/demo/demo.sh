#!/usr/bin/env bash
# demo.sh - make demo's script (samples/demo.sh) run against the built
# binaries from a checkout path, a binary path and a work path with spaces in
# them. Its outcomes are asserted from the state it keeps (KEEP_DIR) and the
# server's audit chain, not from its narration: idprovd's database holds
# every device the station PASSed and whose manifest reached the site,
# provisioned with the key that device's agent holds (dev-04 then revoked);
# dev-08, in no manifest, approved at once by its out-of-band secret with no
# administrator; dev-07, whose batch never left the factory, pending until
# approved by its label (a label naming another key refused first); a
# suspension (by the rogue avahi-publish where namespaces are allowed, by
# hand otherwise) during which dev-06 was answered `suspended`, then the
# resume, then dev-06 provisioned; nothing of the sealed dev-99 that FAILed;
# the chain seq 1 -> 2 is the station's two manifests; the agents hold device
# tokens (dev-04 none). With namespaces the agents found the server by
# DNS-SD and pinned its CA from the TXT record; without (here forced by
# IDPROV_DEMO_NETNS=off, in a second full run) the demo said so in one line.
# The summary's figures are the admin API's (idprov-admin --json against a
# server restarted on the kept state, as the demo's "look next" says, whose
# web UI answers). Nothing the demo started is left running and its
# namespaces are gone. A demo interrupted by Ctrl-C (SIGINT to its process
# group) at the site (held there by IDPROV_DEMO_PAUSE), with its server,
# daemons and namespaces up, stops every process it started, deletes the
# namespaces and removes its work directory; so does one whose output pipe is closed part way. The scripts
# are ShellCheck-clean at every severity.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"

ln -s "$IDP_TOP" "$T_TMP/check out"
ln -s "$IDP_BIN" "$T_TMP/bin dir"
demo="$T_TMP/check out/samples/demo.sh"
# marked PREFIX: the PIDs of processes the demo with a work dir starting
# with PREFIX started (each has IDPROV_DEMO_WORK=<work dir> in its
# environment), or whose working directory is there. Four processes in all,
# not some for each process on the machine: this runs often, on a busy one.
marked() {
	{
		find /proc -mindepth 2 -maxdepth 2 -name cwd -printf '%h\t%l\n' 2>/dev/null |
			W=$1 awk -F '\t' '{ w = ENVIRON["W"] }
				$2 == w || index($2, w "/") == 1 || $2 == w " (deleted)" { print substr($1, 7) }'
		grep -lzF -- "IDPROV_DEMO_WORK=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
	} | sort -u
}
# wait_for FILE ERE: until FILE has a line matching ERE (at most 120 s: the
# machine may be busy).
wait_for() {
	for _ in $(seq 1 1200); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# namespaces OUT: the network namespaces the demo said it made.
namespaces() { sed -n 's/^  network   namespaces \([^ ]*\) (server.* and \([^ ]*\) (devices.*/\1 \2/p' "$1"; }
ns_gone() {
	local n
	for n in $(namespaces "$1"); do ip netns list | grep -qw "$n" && return 1; done
	return 0
}
netns_ok=no
if ip netns add "idpdt$$" 2>/dev/null; then
	ip netns del "idpdt$$"
	netns_ok=yes
fi

t_run "shellcheck: samples/demo.sh, samples/netns.sh and this test are clean" \
	shellcheck -e SC1091 "$IDP_TOP/samples/demo.sh" "$IDP_TOP/samples/netns.sh" \
	"$IDP_TOP/tests/netns.inc" "$IDP_TOP/tests/integration/demo/demo.sh"

# check_run W OUT MODE: the outcomes of a whole run kept in W (MODE netns or
# loopback).
check_run() {
	local w=$1 o=$2 mode=$3 d
	local db=$w/state/idprov.db
	q() { sqlite3 -readonly "$db" "$1"; }
	# spki_hex DIR: the agent's public key (SPKI DER) in DIR as hex.
	spki_hex() { openssl pkey -pubin -in "$1/key.pub" -outform DER | od -An -tx1 -v | tr -d ' \n'; }
	token_of() { (cd "$w" && "$IDP_BIN/idprov-agent" --config "$1.conf" status --json) |
		sed -n 's/.*"token":"\([a-z]*\)".*/\1/p'; }
	# seq EVENT SUBJECT: the audit seq of the first such entry.
	seq_of() { q "SELECT min(seq) FROM audit WHERE event = '$1' AND coalesce(subject, '') = '$2'"; }

	for d in dev-01 dev-02 dev-03 dev-05 dev-06 dev-07 dev-08; do
		t_run "$mode: $d approved and provisioned" \
			[ "$(q "SELECT state || ' ' || (provisioned_at > 0) FROM devices WHERE id = '$d'")" = "approved 1" ]
		t_run "$mode: $d: the server's key is its agent's" \
			[ "$(q "SELECT lower(hex(public_key)) FROM devices WHERE id = '$d'")" = "$(spki_hex "$w/$d")" ]
		t_run "$mode: $d: the agent holds a device token" [ "$(token_of "$d")" = device ]
	done
	t_run "$mode: dev-04 provisioned, then revoked" \
		[ "$(q "SELECT state || ' ' || (provisioned_at > 0) FROM devices WHERE id = 'dev-04'")" = "revoked 1" ]
	t_run "$mode: dev-04: the agent holds no token" [ "$(token_of dev-04)" = none ]
	t_run "$mode: dev-99 (FAIL at the station): unknown to the server" \
		[ "$(q "SELECT count(*) FROM devices WHERE id = 'dev-99' OR mac = '02:1a:2c:00:00:63'")" = 0 ]
	t_refuse "$mode: dev-99 in no manifest" grep -q '"id":"dev-99"' "$w"/station/batches/*.manifest
	t_run "$mode: no other devices" [ "$(q "SELECT count(*) FROM devices")" = 8 ]

	# OOB: dev-08 approved by its proof, no administrator, in no manifest.
	t_run "$mode: dev-08 in no batch" [ "$(q "SELECT coalesce(batch_id, '-') FROM devices WHERE id = 'dev-08'")" = - ]
	t_run "$mode: dev-08 approved by its out-of-band secret" \
		[ "$(q "SELECT detail FROM audit WHERE event = 'provision.approved' AND subject = 'dev-08'")" = \
		"out-of-band secret proven" ]
	t_run "$mode: dev-08 approved by no administrator" \
		[ "$(q "SELECT count(*) FROM audit WHERE event = 'admin.approved' AND subject = 'dev-08'")" = 0 ]
	t_run "$mode: dev-08's secret entered once, used once" \
		[ "$(q "SELECT count(*) || ' ' || (min(used_at) > 0) FROM oob_secrets WHERE device_id = 'dev-08'")" = "1 1" ]
	t_refuse "$mode: dev-08's secret in no log" grep -rqF -- "$(cat "$w/dev-08.secret")" "$w/logs" "$o"

	# Label: dev-07's batch stayed at the factory; pending, then approved by
	# the label's key, which is its agent's; a label with another key refused.
	t_run "$mode: dev-07's manifest (line-003) never reached the site" \
		[ "$(q "SELECT count(*) FROM batches WHERE id = 'line-003'") $(q "SELECT coalesce(batch_id, '-') FROM devices WHERE id = 'dev-07'")" = "0 -" ]
	label=$(zbarimg -q --raw "$w/labels/dev-07.pgm" 2>/dev/null)
	t_run "$mode: dev-07's label names its agent's key" \
		[ "$label" = "IDPL1;dev-07;$(openssl pkey -pubin -in "$w/dev-07/key.pub" -outform DER | sha256sum | cut -c1-64)" ]
	t_run "$mode: dev-07 pending before it was approved" \
		[ "$(seq_of provision.pending dev-07)" -lt "$(seq_of admin.approved dev-07)" ]
	t_run "$mode: dev-07 approved once, with the label's key" \
		[ "$(q "SELECT group_concat(detail) FROM audit WHERE event = 'admin.approved' AND subject = 'dev-07'")" = "sha256:${label##*;}" ]
	t_grep "$mode: approved with idprov-admin approve --label" \
		"^  \\$ adm approve --label( \\\\)?$" "$o"
	t_grep "$mode: the label with dev-01's key refused" '^    admin +a label naming dev-07 with dev-01.s key: refused \(409\)' "$o"

	# Suspension: dev-06 answered `suspended` in it, provisioned after resume.
	if [ "$mode" = netns ]; then
		t_run "$mode: suspended by the rogue publisher" \
			[ "$(q "SELECT count(*) FROM audit WHERE event = 'site.suspended' AND detail LIKE 'rogue DNS-SD publisher: name=\"idprov rogue\"%port=8443%'")" = 1 ]
		t_run "$mode: the rogue flagged" [ "$(q "SELECT count(*) FROM flags WHERE kind = 'rogue-server'")" = 1 ]
		t_grep "$mode: resume refused while the rogue was there" '^    admin +resume refused: the rogue is still published' "$o"
		sus=$(seq_of site.suspended '')
	else
		sus=$(seq_of admin.suspended '')
	fi
	in_order() { [ -n "$1" ] && [ -n "$2" ] && [ -n "$3" ] && [ "$1" -lt "$2" ] && [ "$2" -lt "$3" ]; }
	t_run "$mode: the suspension, then the resume, then dev-06 provisioned" \
		in_order "$sus" "$(seq_of admin.resumed '')" "$(seq_of provision.approved dev-06)"
	t_grep "$mode: dev-06 answered suspended (exit 4)" \
		'^    dev-06 +503 suspended: provisioning suspended until an administrator resumes it \(exit 4\)' "$o"
	t_run "$mode: not suspended at the end" [ "$(q "SELECT suspended FROM site_state")" = 0 ]

	# DNS-SD, or the loopback line.
	if [ "$mode" = netns ]; then
		for d in dev-01 dev-02 dev-03 dev-04 dev-05; do
			t_grep "$mode: $d found the server by DNS-SD" 'event=discover.chosen url=https://10\.79\.1\.1:[0-9]+ ' "$w/logs/$d.site.log"
			t_grep "$mode: $d pinned the CA from the TXT record" \
				"event=ca.pinned source=dns-sd fingerprint=$(openssl x509 -in "$w/state/ca.pem" -outform DER | sha256sum | cut -c1-64)" \
				"$w/logs/$d.site.log"
		done
		t_refuse "$mode: the agents were given no server" grep -q '^server' "$w"/dev-0[1-5].conf
		t_grep "$mode: the server published _idprov._tcp" 'event=dnssd.published' "$w/logs/idprovd.log"
		t_grep "$mode: the server saw the rogue" 'event=site.rogue name="idprov rogue" .* port=8443 ' "$w/logs/idprovd.log"
		t_grep "$mode: dev-06 refused to choose between two CAs (exit 8)" '^    dev-06 +two servers naming different CAs: it chooses neither \(exit 8\)' "$o"
		t_run "$mode: its namespaces are gone" ns_gone "$o"
	else
		t_grep "$mode: says it runs on loopback, in one line" \
			'^  network   127\.0\.0\.1 only, no DNS-SD \(agents get the server URL\): IDPROV_DEMO_NETNS=off$' "$o"
		t_grep "$mode: and suspends by hand" "^  \\$ adm suspend --reason 'demo: what a rogue DNS-SD publisher triggers'" "$o"
	fi

	t_run "$mode: batches: seq 1 line-001 (4), seq 2 line-002 (2)" \
		[ "$(q "SELECT group_concat(sequence || ' ' || id || ' ' || device_count, ', ')
			FROM (SELECT * FROM batches WHERE station_id = 'station-01' ORDER BY sequence)")" = \
		"1 line-001 4, 2 line-002 2" ]
	h1=$(sha256sum "$w/station/batches/line-001.manifest" | cut -c1-64)
	t_run "$mode: seq 1 is the station's line-001 manifest" \
		[ "$(q "SELECT lower(hex(hash)) FROM batches WHERE sequence = 1")" = "$h1" ]
	t_run "$mode: seq 2 chains to it" [ "$(q "SELECT lower(hex(prev_hash)) FROM batches WHERE sequence = 2")" = "$h1" ]
	"$IDP_BIN/idprov-station" batches --state "$w/station" >"$T_TMP/batches"
	t_grep "$mode: line-001 went by upload" '^line-001 +4 devices  uploaded' "$T_TMP/batches"
	t_grep "$mode: line-002 was carried (never uploaded)" '^line-002 +2 devices  pending' "$T_TMP/batches"
	t_grep "$mode: line-003 stayed at the factory" '^line-003 +1 devices  pending' "$T_TMP/batches"

	# The summary against the admin API, on a server restarted on the kept
	# state (the demo's "look next"), and its web UI.
	if srv_start "$w/state" --dnssd=off; then
		a() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$w/state/admin.token" --json "$@"; }
		rows() { tr '{' '\n' | grep -cE -- "$1" || true; }
		fig() { sed -n "s/^    $1  *\\([^ ]*\\( \\/ [0-9]*\\)\\{0,1\\}\\) .*/\\1/p" "$o"; }
		a devices >"$T_TMP/devices.json"
		a flags --open >"$T_TMP/flags.json"
		a report unprovisioned >"$T_TMP/hostage.json"
		a audit verify >"$T_TMP/verify.json"
		t_run "$mode: summary: devices read 8, PASS / FAIL 7 / 1 (the stations' lines)" \
			[ "$(fig 'devices read') $(fig 'PASS \/ FAIL')" = "8 7 / 1" ]
		t_run "$mode: summary: enrolled = devices with a batch" \
			[ "$(fig enrolled)" = "$(rows '"batch_id":"' <"$T_TMP/devices.json")" ]
		t_run "$mode: summary: enrolled = the database's" [ "$(fig enrolled)" = "$(q "SELECT count(*) FROM devices WHERE batch_id IS NOT NULL")" ]
		t_run "$mode: summary: provisioned = approved + revoked" \
			[ "$(fig provisioned)" = "$(rows '"state":"(approved|revoked)"' <"$T_TMP/devices.json")" ]
		t_run "$mode: summary: provisioned = the database's" [ "$(fig provisioned)" = "$(q "SELECT count(*) FROM devices WHERE provisioned_at > 0")" ]
		t_run "$mode: summary: pending" [ "$(fig pending)" = "$(rows '"state":"pending"' <"$T_TMP/devices.json")" ]
		t_run "$mode: summary: flagged = open flags" [ "$(fig flagged)" = "$(rows '"kind":' <"$T_TMP/flags.json")" ]
		t_run "$mode: summary: hostage report" [ "$(fig 'hostage report')" = "$(rows '"id":' <"$T_TMP/hostage.json")" ]
		t_run "$mode: summary: audit chain verified" [ "$(fig 'audit chain')" = verified ]
		t_grep "$mode: the audit chain is intact" '"intact":true' "$T_TMP/verify.json"
		t_run "$mode: the web UI answers" \
			[ "$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/ui/")" = 200 ]
		srv_stop
	else
		t_fail "$mode: idprovd restarts on the kept state"
	fi
	t_run "$mode: nothing it started is left running" [ -z "$(marked "$w")" ]
}

w="$T_TMP/work dir"
bash "$demo" "$T_TMP/bin dir" "$w" >"$T_TMP/out" 2>&1
rc=$?
t_run "the demo exits 0" [ "$rc" = 0 ]
[ "$rc" = 0 ] || tail -30 "$T_TMP/out" | sed 's/^/    # /'
if [ "$netns_ok" = yes ]; then
	t_grep "namespaces allowed: the demo makes them" '^  network   namespaces idpdemo-site-[0-9]+ \(server, 10\.79\.1\.1\) and idpdemo-dev-[0-9]+' "$T_TMP/out"
	check_run "$w" "$T_TMP/out" netns
else
	echo "skip - network namespaces not allowed here: the DNS-SD run did not happen"
	t_grep "namespaces not allowed: said in one line" '^  network   127\.0\.0\.1 only, no DNS-SD .*: network namespaces not allowed here' "$T_TMP/out"
fi
w2="$T_TMP/work dir 2"
IDPROV_DEMO_NETNS=off bash "$demo" "$T_TMP/bin dir" "$w2" >"$T_TMP/out-lo" 2>&1
rc=$?
t_run "loopback: the demo exits 0" [ "$rc" = 0 ]
[ "$rc" = 0 ] || tail -30 "$T_TMP/out-lo" | sed 's/^/    # /'
check_run "$w2" "$T_TMP/out-lo" loopback

# Ctrl-C at the site: SIGINT to the demo's process group (as a terminal
# sends it) with the server, the daemons and the namespaces up. The demo
# runs with IDPROV_DEMO_PAUSE=1, its input a FIFO this test writes a line
# to at each pause, and is held at the last pause (before its summary, the
# site done) while the checks look: it waits there on its input, so it
# cannot run on to its end meanwhile. (Taken from its "dev-07 pending" line
# instead, a slow check could find it already finished: it once did, under
# load.)
mkdir "$T_TMP/tmp dir"
mkfifo "$T_TMP/enter"
exec 9<>"$T_TMP/enter" # held open: the demo's reads wait rather than end
set -m                 # its own process group, SIGINT not ignored
IDPROV_DEMO_PAUSE=1 TMPDIR="$T_TMP/tmp dir" env --default-signal=INT bash "$demo" "$T_TMP/bin dir" \
	<"$T_TMP/enter" >"$T_TMP/out2" 2>&1 &
dpid=$!
set +m
T_CLEANUP+=("kill -TERM -- -$dpid 2>/dev/null || true")
# paused N: the demo says it waits before step N.
paused() { wait_for "$T_TMP/out2" "^  \\(paused before step $1: Enter goes on\\)$"; }
t_run "Ctrl-C run: paused before step 2" paused 2
echo >&9
t_run "Ctrl-C run: paused before step 3" paused 3
echo >&9
t_run "Ctrl-C run reaches the site and waits there (before its summary)" paused 4
t_refuse "Ctrl-C run: no summary yet" grep -q '^== 4\. Summary' "$T_TMP/out2"
t_grep "Ctrl-C run: the site happened (dev-07 pending, then approved)" \
	'^ +admin +approves dev-07 by its label' "$T_TMP/out2"
# running DIR PROG...: each PROG is among the processes the demo started.
running() {
	local d=$1 p
	shift
	for p in $(marked "$d"); do cat "/proc/$p/comm"; done 2>/dev/null | sort -u >"$T_TMP/comms"
	for p in "$@"; do grep -qx "$p" "$T_TMP/comms" || return 1; done
}
if [ "$netns_ok" = yes ]; then
	t_run "its server, buses and avahi-daemons are running" \
		running "$T_TMP/tmp dir" idprovd dbus-daemon avahi-daemon
else
	t_run "its server is running" running "$T_TMP/tmp dir" idprovd
fi
if [ "$netns_ok" = yes ]; then
	t_run "its two namespaces are named" [ "$(namespaces "$T_TMP/out2" | wc -w)" = 2 ]
	t_refuse "its namespaces exist" ns_gone "$T_TMP/out2"
fi
kill -INT -- "-$dpid"
wait "$dpid"
rc=$?
exec 9>&-
t_run "Ctrl-C: the demo exits 130" [ "$rc" = 130 ]
t_grep "Ctrl-C: says it failed" 'demo: FAILED \(exit 130\)' "$T_TMP/out2"
t_run "Ctrl-C: nothing left running" [ -z "$(marked "$T_TMP/tmp dir")" ]
t_run "Ctrl-C: the namespaces are gone" ns_gone "$T_TMP/out2"
t_run "Ctrl-C: the work directory is removed" [ -z "$(ls -A "$T_TMP/tmp dir")" ]

# Its output piped into a reader that stops early (SIGPIPE at its default, as
# in a terminal): it stops its processes and removes its work directory all
# the same, though it can no longer say so.
TMPDIR="$T_TMP/tmp dir" env --default-signal=PIPE bash "$demo" "$T_TMP/bin dir" 2>&1 | head -20 >"$T_TMP/out3"
t_grep "pipe: the reader saw the line start" '^ +station +opened batch line-001' "$T_TMP/out3"
gone() { [ -z "$(marked "$T_TMP/tmp dir")" ] && [ -z "$(ls -A "$T_TMP/tmp dir")" ] && ns_gone "$T_TMP/out3"; }
for _ in $(seq 1 100); do gone && break; sleep 0.1; done
t_run "pipe closed: nothing left running, namespaces gone, work directory removed" gone
t_done
