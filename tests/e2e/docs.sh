#!/usr/bin/env bash
# docs.sh - every command shown in README.md and docs/*.md is run here, so
# the docs cannot drift from the programs.
#
# The convention: a command shown in a ```sh block of README.md or
# docs/*.md (continuation lines joined, comments dropped, blanks squeezed:
# tests/e2e/doccmds.awk) appears here, quoted exactly, as the argument of
#   doc_run [-x STATUS] 'CMD'  CMD itself is run (eval, in this shell, in the
#                              current directory) after doc_subst (below);
#                              passes when it exits STATUS (default 0)
#   doc_bg 'CMD'               the same in the background; DOC_PID, output in
#                              $T_TMP/doc.bg
#   doc_as 'CMD' ACTUAL...     ACTUAL is what this test runs for CMD (said why)
#   doc_in 'CMD' FILE          FILE (another test) runs CMD: it holds the
#                              program and every option CMD uses
#   doc_skip 'CMD' REASON      not run, with the reason
# The first check fails for a shown command that is not here, and for a
# command here that no doc shows any more. Programs run from the build
# (wrappers in $T_TMP/docbin, first in PATH) with the test server's URL and
# CA; doc_subst replaces the paths and placeholders of the docs (/etc/idprov,
# /var/lib/idprov, https://site:8443, 3f1c...e9, KEY_SHA256, a SHA-256 in
# hex, ...) by the test's. A "$ CMD" line in another fenced block (a session
# shown with its output) is a shown command too.
. "$(dirname "$0")/e2e.inc"
cd "$IDP_TOP" || exit 1

# --- every shown command is here, and everything here is shown
doc_commands() { awk -f "$IDP_TOP/tests/e2e/doccmds.awk" "$@" | cut -f2 | sort -u; }
mirrored() {
	sed -nE "s/^[[:space:]]*([A-Z_]+=[^ ]+ )?doc_(run|bg|as|in|skip) (-x [0-9]+ )?'([^']*)'.*/\\4/p" "$1" |
		sort -u
}
doc_commands README.md docs/*.md >"$T_TMP/shown"
mirrored "$IDP_TOP/tests/e2e/docs.sh" >"$T_TMP/mirrored"
t_run "the docs show at least 60 commands" [ "$(wc -l <"$T_TMP/shown")" -ge 60 ]
comm -23 "$T_TMP/shown" "$T_TMP/mirrored" >"$T_TMP/missing"
comm -13 "$T_TMP/shown" "$T_TMP/mirrored" >"$T_TMP/stale"
if [ -s "$T_TMP/missing" ]; then t_fail "shown in a doc, run by no test:"; sed 's/^/    # /' "$T_TMP/missing"
else t_ok "every command the docs show is run here"; fi
if [ -s "$T_TMP/stale" ]; then t_fail "run here, shown by no doc any more:"; sed 's/^/    # /' "$T_TMP/stale"
else t_ok "every command run here is still shown"; fi
# The check can fail: a doc showing a new command, continued over two lines.
printf '# x\n\n```sh\nidprov-admin frobnicate \\\n    --all   # new\n```\n' >"$T_TMP/probe.md"
t_grep "a new shown command is found" '^idprov-admin frobnicate --all$' \
	<(doc_commands "$T_TMP/probe.md" | comm -23 - "$T_TMP/mirrored")

# --- the harness
mkdir -p "$T_TMP/docbin" "$T_TMP/etc/idprov" "$T_TMP/backup"
export DOC_BIN=$IDP_BIN DOC_AGENT=$T_TMP/agent-state
printf '#!/bin/sh\nexec "$DOC_BIN/idprov-admin" --server "$DOC_URL" --ca "$DOC_CA" "$@"\n' \
	>"$T_TMP/docbin/idprov-admin"
printf '#!/bin/sh\nexec "$DOC_BIN/idprov-agent" --state-dir "$DOC_AGENT" "$@"\n' >"$T_TMP/docbin/idprov-agent"
for p in idprov-manifest idprov-station idprovd; do
	printf '#!/bin/sh\nexec "$DOC_BIN/%s" "$@"\n' "$p" >"$T_TMP/docbin/$p"
done
chmod 0755 "$T_TMP/docbin"/*
export PATH="$T_TMP/docbin:$PATH"
DOC_FP=
SRV_PORT='' SRV_URL=''
mac=02:1a:2b:00:00:0a
[ -r /sys/class/net/eth0/address ] && mac=$(cat /sys/class/net/eth0/address)
doc_subst() {
	local c=$1
	c=${c//\/etc\/idprov/$T_TMP/etc/idprov}
	c=${c//\/var\/lib\/idprov/$SRV_DIR}
	c=${c//https:\/\/localhost:8443/https://localhost:$SRV_PORT}
	c=${c//https:\/\/site:8443/$SRV_URL}
	c=${c//\/srv\/backup\//$T_TMP/backup/}
	c=${c//3f1c...e9/$DOC_FP}
	c=${c//KEY_SHA256/$DOC_FP}
	while [[ $c =~ [0-9a-f]{64} ]]; do c=${c//${BASH_REMATCH[0]}/@FP@}; done
	c=${c//@FP@/$DOC_FP}
	c=${c//IDPROV_ADMIN_TOKEN=.../IDPROV_ADMIN_TOKEN=\$(cat $SRV_DIR/admin.token)}
	c=${c//\[--config FILE | --state-dir DIR\]/--state-dir $SRV_DIR}
	c=${c//\[--cert station.crt\] /}
	c=${c//audit-2026-11-30.jsonl/audit-\$(date +%F).jsonl}
	c=${c#sudo }
	# no eth0 here: the MAC it would give
	[ -r /sys/class/net/eth0/address ] || c=${c//--iface eth0/--mac $mac}
	printf '%s' "$c"
}
doc_run() {
	local want=0 rc
	if [ "$1" = -x ]; then want=$2; shift 2; fi
	eval "$(doc_subst "$1")" >"$T_TMP/doc.out" 2>&1 <"${DOC_IN:-/dev/null}"
	rc=$?
	if [ "$rc" = "$want" ]; then t_ok "doc: $1"; else
		t_fail "doc: $1 (exit $rc, want $want)"; sed 's/^/    # /' "$T_TMP/doc.out" | head -10; fi
}
doc_bg() {
	(eval "exec $(doc_subst "$1")") >"$T_TMP/doc.bg" 2>&1 </dev/null &
	DOC_PID=$!
	T_CLEANUP+=("st_kill $DOC_PID")
	t_ok "doc: $1 (started, pid $DOC_PID)"
}
doc_as() { local d=$1; shift; t_run "doc: $d (as: $*)" "$@"; }
doc_in() {
	local w ok=0
	for w in $1; do
		case $w in -*|tpm2_*|idprov*|make|demo|openssl) grep -qF -- "$w" "$IDP_TOP/$2" || ok=1 ;; esac
	done
	if [ $ok = 0 ]; then t_ok "doc: $1 (run by $2)"; else t_fail "doc: $1 (not all of it in $2)"; fi
}
doc_skip() { t_ok "doc: $1 (not run: $2)"; }
quiet() { "$@" >/dev/null 2>&1; }
# out RE: the last doc_run's output matches RE
out() { t_grep "  its output: $1" "$1" "$T_TMP/doc.out"; }

# --- README.md
doc_skip 'make check' 'this test runs inside make check'
doc_in 'make demo' tests/integration/demo/demo.sh
mkdir -p "$T_TMP/readme" && cd "$T_TMP/readme" || exit 1
printf 'dev-0001,%s,SN-0001,\n' "$mac" >devices.csv
doc_run 'idprov-manifest keygen --type p256 --out station.key'
doc_run 'idprov-manifest create --key station.key --batch B-1 --station st-1 --seq 1 --product "Sensor X1" --devices devices.csv --out B-1.manifest'
t_run "  B-1.manifest.sig written" test -s B-1.manifest.sig
doc_run 'idprov-manifest verify B-1.manifest --station-pub station.pub'
doc_run 'idprov-manifest show B-1.manifest --station-pub station.pub'
out "dev-0001 +$mac +SN-0001"
st_pki "$E2E_PKI" line-2 # the station of the station-operator section below
doc_as 'idprovd' srv_start "$SRV_DIR" --station-ca "$E2E_PKI/ca.pem" # in the foreground: the test holds its PID
export DOC_URL=$SRV_URL DOC_CA=$SRV_CA
IDPROV_ADMIN_TOKEN=$(cat "$SRV_DIR/admin.token")
export IDPROV_ADMIN_TOKEN
doc_run 'idprov-admin station add st-1 station.pub'
doc_run 'idprov-admin import B-1.manifest'
# dev-0009: a device no manifest names asks first
"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev9" --id dev-0009 --mac 02:1a:2b:00:00:09 \
	--server "$SRV_URL" --ca "$SRV_CA" run --once --wait 1 2>/dev/null
doc_run 'idprov-admin devices --state pending'
out 'dev-0009'
DOC_FP=$("$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev9" --id dev-0009 status --json |
	sed -n 's/.*"key_fingerprint":"\([0-9a-f]*\)".*/\1/p')
doc_run 'idprov-admin approve dev-0009 --key KEY_SHA256'
doc_run 'idprov-admin flags --open'
cp "$SRV_CA" site-ca.pem
doc_bg 'idprov-agent --id dev-0001 --iface eth0 --server https://site:8443 --ca site-ca.pem run'
t_run "  the agent exchanged its token" t_wait "$T_TMP/doc.bg" "event=token.exchanged"
t_run "  and sleeps until its renewal" t_wait "$T_TMP/doc.bg" "event=agent.sleep"
kill -TERM "$DOC_PID"
wait "$DOC_PID"
t_run "  SIGTERM ends it while it sleeps (exit 0)" [ $? = 0 ]
doc_run 'idprov-agent --id dev-0001 status --json'
out '"device_id":"dev-0001".*"token":"device"'

# --- docs/administrator.md
mkdir -p "$T_TMP/admin" && cd "$T_TMP/admin" || exit 1
srv_stop
doc_as 'idprovd --foreground' srv_start "$SRV_DIR" --station-ca "$E2E_PKI/ca.pem" # the same state directory again
export DOC_URL=$SRV_URL DOC_CA=$SRV_CA
doc_run 'curl --cacert /var/lib/idprov/ca.pem https://localhost:8443/v1/health'
out '"status"'
old=$IDPROV_ADMIN_TOKEN
doc_run 'idprovd --reset-admin [--config FILE | --state-dir DIR]'
doc_in 'idprovd --check-config --config /etc/idprov/idprovd.conf' tests/integration/server/check_config.sh
doc_as 'systemctl reload idprovd' kill -HUP "$SRV_PID" # the unit's ExecReload (install.sh verifies the unit)
t_run "  the server took the new credential" t_wait "$SRV_ERR" 'event=admin.reloaded'
t_refuse "  the old credential is refused" quiet "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" whoami
doc_run 'sudo cat /var/lib/idprov/admin.token'
out '^[A-Za-z0-9_-]{20,}$'
doc_run 'export IDPROV_ADMIN_TOKEN=...'
t_run "  the new credential works" [ "$IDPROV_ADMIN_TOKEN" != "$old" ]
doc_run 'idprov-admin token-key rotate'
doc_run 'idprov-admin suspend --reason "line 3 audit"'
doc_run 'idprov-admin suspension'
out 'line 3 audit'
doc_run 'idprov-admin resume'
DOC_FP=$(printf 'another server' | sha256sum | cut -c1-64)
doc_run 'idprov-admin allow add 192.0.2.20:8443'
doc_run 'idprov-admin allow add idprov-b.local:8443'
doc_run 'idprov-admin allow add 3f1c...e9'
doc_run 'idprov-admin allow list'
out "$DOC_FP"
doc_run 'idprov-admin allow remove 192.0.2.20:8443'
"$IDP_BIN/idprov-manifest" keygen --type p256 --out station-01.key >/dev/null
printf 'dev-0101,02:1a:2b:00:00:01,SN-0101,\n' >b1.csv
"$IDP_BIN/idprov-manifest" create --key station-01.key --batch b-2026-0001 --station station-01 --seq 1 \
	--product "Sensor X1" --devices b1.csv --out b-2026-0001.manifest >/dev/null
doc_run 'idprov-admin station add station-01 station-01.pub'
doc_run 'idprov-admin ca list'
doc_run 'idprov-admin import b-2026-0001.manifest'
"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev42" --id dev-0042 --mac 02:1a:2b:00:00:42 \
	--server "$SRV_URL" --ca "$SRV_CA" run --once --wait 1 2>/dev/null
doc_run 'idprov-admin devices --state pending'
DOC_FP=$("$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev42" --id dev-0042 status --json |
	sed -n 's/.*"key_fingerprint":"\([0-9a-f]*\)".*/\1/p')
out "dev-0042 .*$DOC_FP|$DOC_FP.*dev-0042|dev-0042"
doc_run 'idprov-admin approve dev-0042 --key 3f1c...e9'
# A device read at a factory station whose batch never arrived: its label
# (the station's PGM raster, as a scanned label.png) approves it.
mkdir -p "$T_TMP/labels"
st_start "$T_TMP/lab-read" run --state "$T_TMP/lab-st" --station st-lab --batch LB-1 \
	--product "Sensor X1" --count 1 --pty --hello-window-ms 3000 --label-dir "$T_TMP/labels" || t_fail "label station"
e2e_factory "$ST_PTY" 6
st_wait_lines "$T_TMP/lab-read" '^PASS  e2e-06  ' 1 || t_fail "device 6 read for its label"
kill -TERM "$AGT_PID" 2>/dev/null
wait "$AGT_PID" 2>/dev/null
wait "$ST_PID"
cp "$T_TMP/labels/e2e-06.pgm" label.png
e2e_site 6 --wait 1
t_run "  device 6 pending on site (exit 5)" [ $? = 5 ]
doc_run 'idprov-admin approve --label "$(zbarimg -q --raw label.png)"'
out "e2e-06"
e2e_site 6
t_run "  device 6 approved by its label provisions (exit 0)" [ $? = 0 ]
doc_run 'idprov-admin flags --open'
# The session administrator.md shows: the same columns, the same answer.
"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev07" --id dev-07 --mac 02:1a:2b:00:00:07 \
	--server "$SRV_URL" --ca "$SRV_CA" run --once --wait 1 2>/dev/null
doc_run 'idprov-admin devices --state pending'
shown() { # CMD: the output lines the doc shows after "$ CMD"
	awk -v c="\$ $1" '$0 == c { on = 1; next } on && /^(\$ |```)/ { exit } on' "$IDP_TOP/docs/administrator.md"
}
t_run "  the table's columns are those shown" \
	[ "$(head -1 "$T_TMP/doc.out" | tr -s ' ')" = "$(shown 'idprov-admin devices --state pending' | head -1 | tr -s ' ')" ]
DOC_FP=$("$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev07" --id dev-07 status --json |
	sed -n 's/.*"key_fingerprint":"\([0-9a-f]*\)".*/\1/p')
doc_run 'idprov-admin approve dev-07 --key ca358758f6d27e6cf45272937977a748fd88391db679ceda7dc7bf1f005ee879'
t_run "  the answer's rows are those shown" [ "$(awk '{print $1}' "$T_TMP/doc.out" | tr '\n' ' ')" = \
	"$(shown 'idprov-admin approve dev-07 --key ca358758f6d27e6cf45272937977a748fd88391db679ceda7dc7bf1f005ee879' | awk '{print $1}' | tr '\n' ' ')" ]
doc_run 'idprov-admin flags --kind key-reuse --device dev-0042'
# An open flag to resolve: another key claims dev-0009 (refused key_mismatch).
"$IDP_BIN/idprov-agent" --state-dir "$T_TMP/dev9-other" --id dev-0009 --mac 02:1a:2b:00:00:09 \
	--server "$SRV_URL" --ca "$SRV_CA" run --once --wait 1 2>/dev/null
# The doc's 17 stands for a flag's seq: this resolves the first open flag.
idprov-admin --json flags --open >"$T_TMP/flags.json"
DOC_FLAG=$(jq -r '[.. | objects | select(has("seq")) | .seq][0] // empty' "$T_TMP/flags.json")
doc_as 'idprov-admin flag resolve 17' idprov-admin flag resolve "${DOC_FLAG:-none}"
t_run "  the flag is resolved" quiet sh -c "idprov-admin --json flags --state resolved | grep -q '\"seq\":${DOC_FLAG}[,}]'"
doc_run 'idprov-admin audit --subject dev-0042'
out 'dev-0042'
doc_run 'idprov-admin release mac 02:1a:2b:00:00:01'
doc_run 'idprov-admin backup /srv/backup/idprov-$(date +%F).db'
t_run "  the backup is a database" quiet sqlite3 -readonly "$T_TMP/backup/idprov-$(date +%F).db" 'select count(*) from devices'
doc_run 'idprov-admin audit verify'
doc_run 'idprov-admin report unprovisioned --older-than 7d'
doc_run 'idprov-admin credential add ops-view --role viewer --out ops-view.token'
doc_run 'idprov-admin credential add alice --role admin'
doc_run 'idprov-admin credential list'
out 'alice'
doc_run 'idprov-admin credential revoke alice'
doc_run 'idprov-admin --token-file ops-view.token whoami'
out '^role +viewer$'
printf 'label-secret-7f31\n' >secret.txt
DOC_IN=secret.txt doc_run 'idprov-admin oob add dev-7f31'
doc_run 'idprov-admin oob add dev-7f31 --expires 2d <secret.txt'
printf 'dev-8a01,label-secret-8a01\ndev-8a02,label-secret-8a02\n' >site4-labels.csv
doc_run 'idprov-admin oob import site4-labels.csv'
doc_run 'idprov-admin oob list'
out 'dev-8a02'
doc_run 'idprov-admin audit'
out 'admin'
doc_run 'idprov-admin audit --after 1000'
doc_run 'idprov-admin audit export > audit-$(date +%F).jsonl'
t_run "  the export holds entries" test -s "audit-$(date +%F).jsonl"
doc_run 'idprov-admin audit export --since 1200'
doc_run 'idprov-admin audit export --since 2026-11-30T00:00:00Z'
cp "$SRV_DIR/audit.pub" audit.pub
doc_run 'idprov-admin audit verify --file audit-2026-11-30.jsonl --key audit.pub'
doc_run 'idprov-admin report unprovisioned'
doc_run 'idprov-admin report unprovisioned --batch b-2026-0001'

# --- docs/reliability.md and docs/performance.md: build, attack and benchmark
# commands that make check runs itself
doc_skip 'make VARIANT=asan build-tests' 'make check builds it (Makefile, target check)'
doc_skip 'make -j2 VARIANT=plain programs' 'make check builds it (Makefile, target check)'
doc_skip 'IDP_TOP=$PWD IDP_BUILD=$PWD/build/asan IDP_BIN=$PWD/build/asan/bin bash tests/integration/server/attack.sh' \
	'tests/run-suite runs tests/integration/server/attack.sh in both variants'
doc_skip 'make -j2 VARIANT=plain build/plain/bench/bench_api && build/plain/bench/bench_api' \
	'make check runs every benchmark once (tests/run-bench --smoke)'
doc_skip 'IDP_TOP=$PWD IDP_BUILD=$PWD/build/plain IDP_BIN=$PWD/build/plain/bin bash tests/bench/agent.sh' \
	'make check runs every benchmark once (tests/run-bench --smoke)'
doc_skip 'strace -f --seccomp-bpf -T -e trace=fsync,poll,connect build/plain/bin/idprov-agent --state-dir S --id ID --mac MAC --server URL --ca CA run --once' \
	'a measuring aid for a developer (durable.sh checks the fsyncs); the agent run is run above'
# docs/reliability.md: fuzzing (make check replays the corpus with the fuzz build)
doc_skip 'make fuzz-build' 'make check builds the fuzz targets (Makefile, target check)'
doc_skip 'make fuzz-replay' 'make check replays every corpus file (tests/run-fuzz --replay)'
doc_skip 'tests/fuzz/long-run' 'a long run takes hours (up to 10^7 executions per target)'
doc_skip 'FUZZ_MAX_SECONDS=400 tests/fuzz/long-run fuzz_token fuzz_x509' \
	'a long run takes minutes per target'
doc_skip 'build/fuzz/fuzz_token -set_cover_merge=1 -use_counters=0 tests/fuzz/corpus/fuzz_token build/fuzz-long/fuzz_token/corpus' \
	'needs the corpus of a long run'

# --- docs/firmware-integrator.md: a TPM is swtpm's; tpm.sh makes the key so
doc_in 'tpm2_createprimary -C o -G ecc256 -c primary.ctx' tests/integration/agent/tpm.sh
doc_in 'tpm2_create -C primary.ctx -G ecc256:ecdsa-sha256 -u k.pub -r k.priv' tests/integration/agent/tpm.sh
doc_in 'tpm2_load -C primary.ctx -u k.pub -r k.priv -c k.ctx' tests/integration/agent/tpm.sh
doc_in 'tpm2_evictcontrol -C o -c k.ctx 0x81000001' tests/integration/agent/tpm.sh
doc_in 'tpm2_readpublic -c 0x81000001 -f pem -o device.pub.pem' tests/integration/agent/tpm.sh

# --- docs/station-operator.md
cd "$T_TMP" || exit 1
doc_run 'install -d -m 0755 /etc/idprov'
doc_run 'idprov-manifest keygen --type p256 --out /etc/idprov/station.key'
cd "$T_TMP/etc/idprov" || exit 1
doc_run 'openssl req -new -key station.key -subj /CN=station-01 -out station.csr'
t_run "  a CSR for station-01" bash -c "openssl req -in station.csr -noout -subject | grep -q station-01"
printf 'dev-4101,02:1a:2b:00:41:01,SN-4101,\n' >devices.csv
"$IDP_BIN/idprov-manifest" create --key station.key --batch B-2026-0041 --station station-01 --seq 41 \
	--prev-sha256 "$(printf 'B-2026-0040' | sha256sum | cut -c1-64)" --product "Sensor X1 rev B" --devices devices.csv --out B-2026-0041.manifest >/dev/null
printf 'dev-4201,02:1a:2b:00:42:01,SN-4201,\n' >devices.csv
doc_run 'idprov-manifest create --key station.key [--cert station.crt] --batch B-2026-0042 --station station-01 --seq 42 --prev B-2026-0041.manifest --product "Sensor X1 rev B" --devices devices.csv --out B-2026-0042.manifest'
doc_run 'idprov-manifest verify B-2026-0042.manifest --station-pub station.pub'
doc_run 'idprov-manifest show B-2026-0042.manifest --station-pub station.pub'
out 'dev-4201'
cat >station.conf <<CONF
# the station of docs/station-operator.md section 5, on a pty
state    $T_TMP/line-2
station  line-2
key      $T_TMP/etc/idprov/station.key
pty
server   $SRV_URL
ca       $SRV_CA
client-cert $E2E_PKI/client.pem
client-key  $E2E_PKI/client.key
CONF
"$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" station add line-2 station.pub >/dev/null
doc_bg 'idprov-station run --config /etc/idprov/station.conf --batch B-2026-0042 --product "Sensor X1 rev B" --count 500'
t_run "  the station shows its pty" t_wait "$T_TMP/doc.bg" '^pty '
ST_PTY=$(awk '/^pty /{print $2; exit}' "$T_TMP/doc.bg")
for n in 1 2; do
	e2e_factory "$ST_PTY" "$n"
	t_run "  device $n: PASS" st_wait_lines "$T_TMP/doc.bg" "^PASS  $E2E_ID  " 1
	kill -TERM "$AGT_PID"
	wait "$AGT_PID"
done
kill -TERM "$DOC_PID"
wait "$DOC_PID"
t_run "  SIGTERM closes the batch (exit 0)" [ $? = 0 ]
t_grep "  closed and signed with 2 devices" '^closed batch B-2026-0042: 2 devices' "$T_TMP/doc.bg"
doc_run 'idprov-station upload --config /etc/idprov/station.conf --pending'
out '^B-2026-0042: uploaded 201 devices 2$'
doc_run 'idprov-station batches --config /etc/idprov/station.conf'
out '^B-2026-0042 +2 devices  uploaded 201'
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
