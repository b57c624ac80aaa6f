#!/usr/bin/env bash
# stress.sh - `make stress` (issue 16; docs/reliability.md): a real idprovd on
# loopback with a real SQLite file, driven by the load generator
# tests/tools/idprov-load.c (a process of its own), then faults under load:
#   ramp      the load at 2, 4, 8, ... clients: the highest one with zero
#             failed requests is the load held
#   load      that load, with renewals, admin listings, two online backups
#             (idprov-admin backup) and a manifest import at the same time
#   kill      kill -9 of idprovd at random moments under load, restart, the
#             database checks after every restart; outside readers (sqlite3
#             .backup, read-only queries, idprov-admin backup) all along
#   lock      another process holds BEGIN IMMEDIATE (sqlite3 CLI): shorter
#             than the busy bound, requests wait; longer, they fail clearly
#   disk full the state directory on a small tmpfs filled up (as root; else
#             RLIMIT_FSIZE of idprovd by prlimit): clear errors, nothing
#             corrupted, service resumes when space returns
#   station   tests/integration/station/kill.sh with more rounds
#   agent     tests/integration/agent/kill.sh with more kills
#   attack    tests/integration/server/attack.sh (or tests/stress/attack.sh)
#             when it exists; its last line: "attack: N tried, N refused,
#             N unexpected"
# After every phase: tests/tools/idprov-load check (every answered decision
# present once, no token or proof answered twice, one live token per
# device, integrity_check ok) and idprov-admin audit verify. Ends with the
# table. Sizes from the environment (defaults in brackets): STRESS_DEVICES
# [6000], STRESS_RAMP [2 8 32 64 128], STRESS_RAMP_SECONDS [6],
# STRESS_LOAD_SECONDS [20], STRESS_KILLS [100], STRESS_KILL_CLIENTS [16],
# STRESS_STATION_ROUNDS [8],
# STRESS_AGENT_KILLS [20]. Every loop is bounded in count and time.
. "$(dirname "$0")/../lib.sh"
. "$IDP_TOP/tests/integration/server/idprovd.inc"
# STRESS_LOGS=DIR keeps the server logs and load outputs there.
if [ -n "${STRESS_LOGS:-}" ]; then
	mkdir -p "$STRESS_LOGS"
	T_CLEANUP=("cp \"\$T_TMP\"/*.err \"\$T_TMP\"/*.load \"\$T_TMP\"/*.sub '$STRESS_LOGS'/ 2>/dev/null")
fi
: "${IDP_BUILD:=$IDP_TOP/build/plain}"
LOAD=$IDP_BUILD/tools/idprov-load
DEVICES=${STRESS_DEVICES:-6000}
RAMP=${STRESS_RAMP:-2 8 32 64 128}
RAMP_SECONDS=${STRESS_RAMP_SECONDS:-6}
LOAD_SECONDS=${STRESS_LOAD_SECONDS:-20}
KILLS=${STRESS_KILLS:-100}
KILL_CLIENTS=${STRESS_KILL_CLIENTS:-16}
STATION_ROUNDS=${STRESS_STATION_ROUNDS:-8}
AGENT_KILLS=${STRESS_AGENT_KILLS:-20}
samples=$IDP_TOP/samples/manifests
st=$T_TMP/state
ans=$T_TMP/answers.txt
: >"$ans"
table=$T_TMP/table
: >"$table"
row() { printf '%-34s %s\n' "$1" "$2" >>"$table"; }
next=0 # the first device no phase has used yet

# ---------------------------------------------------------------- server
SRV_ARGS=(--threads 2 --throttle-per-minute 0 --throttle-device-per-minute 0)
# start_on DIR PORT: idprovd on 127.0.0.1:PORT (0: the kernel's pick; then
# PORT is learnt); SRV_PID, SRV_PORT, SRV_URL, SRV_ERR.
start_on() {
	local dir=$1 want=$2 _
	SRV_ERR=$T_TMP/idprovd.$RANDOM.err
	"$IDP_BIN/idprovd" --foreground --state-dir "$dir" --listen "127.0.0.1:$want" \
		"${SRV_ARGS[@]}" >/dev/null 2>"$SRV_ERR" &
	SRV_PID=$!
	T_CLEANUP+=("srv_kill $SRV_PID")
	for _ in $(seq 1 200); do
		SRV_PORT=$(grep -o 'event=http.listening addr=127.0.0.1:[0-9]*' "$SRV_ERR" 2>/dev/null |
			head -1 | sed 's/.*://')
		[ -n "$SRV_PORT" ] && break
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	SRV_URL=https://127.0.0.1:$SRV_PORT
	SRV_CA=$dir/ca.pem
	[ -n "$SRV_PORT" ]
}
adm() {
	"$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$st/admin.token" \
		--json "$@"
}
# check NAME: the database checks and the audit chain; prints the figures.
check() {
	local out
	out=$("$LOAD" check --db "$st/idprov.db" --answers "$ans" 2>&1)
	local rc=$?
	echo "$1: $out" | tail -1
	if [ $rc = 0 ]; then t_ok "$1: database checks"; else t_fail "$1: database checks"; echo "$out"; fi
	if adm audit verify | grep -q '"intact":true'; then t_ok "$1: audit chain verifies"; else
		t_fail "$1: audit chain verifies"; fi
}
# field LINE NAME: the value of NAME=... in LINE.
field() { grep -o "$2=[^ ]*" <<<"$1" | head -1 | cut -d= -f2; }
# load NAME ARGS...: a run of the load generator on devices from $next;
# output in $T_TMP/NAME.load.
load() {
	local name=$1
	shift
	"$LOAD" run --server "$SRV_URL" --ca "$SRV_CA" --dir "$T_TMP/devs" --answers "$ans" \
		--token-file "$st/admin.token" --first "$next" "$@" >"$T_TMP/$name.load" 2>&1
}

echo "# stress: preparing $DEVICES devices"
"$LOAD" prepare --dir "$T_TMP/devs" --devices "$DEVICES" --prefix ld >/dev/null ||
	t_fail "devices prepared"
"$LOAD" prepare --dir "$T_TMP/more" --devices 1000 --prefix more --tag 77 >/dev/null ||
	t_fail "second batch prepared"
t_run "server starts" start_on "$st" 0
PORT=$SRV_PORT
adm station add station-01 "$samples/sample-station-p256.pub" >/dev/null
# mk BATCH CSV OUT: the station's next manifest (sequence and previous
# hash chained in SEQ and PREV).
SEQ=0 PREV=""
mk() {
	SEQ=$((SEQ + 1))
	PREV=$("$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" \
		--batch "$1" --station station-01 --seq "$SEQ" --product sx1 --devices "$2" \
		--format csv --out "$3" ${PREV:+--prev-sha256 "$PREV"} | awk '/^sha256 /{print $2}')
	[ -n "$PREV" ] || t_fail "manifest $1 created"
}
mk b-load-1 "$T_TMP/devs/devices.csv" "$T_TMP/b1.manifest"
mk b-load-2 "$T_TMP/more/devices.csv" "$T_TMP/b2.manifest"
t_run "manifest of $DEVICES devices imported" adm import "$T_TMP/b1.manifest" >/dev/null

# The checker can fail: an answer whose token the server never issued is
# lost, and an answer recorded twice is a token answered twice.
printf 'provision ld-000000 AAAAAAAAAAAAAAAAAAAAAA sig -\n%.0s' 1 2 >"$T_TMP/forged.txt"
"$LOAD" check --db "$st/idprov.db" --answers "$T_TMP/forged.txt" >"$T_TMP/forged.out" 2>&1
t_run "check: a decision the server never issued exits 1" [ $? = 1 ]
t_grep "check: and counts it as lost, and answered twice" ' lost=2 .* dup_token=1 dup_proof=1 ' "$T_TMP/forged.out"

# ---------------------------------------------------------------- ramp
# The load held: the most clients with zero failed requests; the best rate.
best_c=0 best_rps=0 best_p99=0 held_rps=0 held_p99=0
for c in $RAMP; do
	n=400
	load "ramp$c" --clients "$c" --count "$n" --seconds "$RAMP_SECONDS" --renew-rate 0 \
		--retry-seconds 5
	line=$(grep '^load: clients' "$T_TMP/ramp$c.load")
	next=$((next + n))
	echo "ramp: $line"
	fa=$(field "$line" failed_attempts) gu=$(field "$line" gave_up) rps=$(field "$line" rps)
	if [ "${fa:-1}" = 0 ] && [ "${gu:-1}" = 0 ]; then
		best_c=$c held_rps=$rps held_p99=$(field "$line" p99_ms)
		if [ "${rps:-0}" -gt "$best_rps" ]; then
			best_rps=$rps best_p99=$(field "$line" p99_ms) rate_c=$c
		fi
	fi
	grep '^failed:' "$T_TMP/ramp$c.load" | head -5
done
t_run "ramp: a load with zero failed requests" [ "$best_c" -gt 0 ]
[ "$best_c" -gt 0 ] || best_c=2
check ramp

# ---------------------------------------------------------------- load
rate=$((best_rps / 8 > 5 ? best_rps / 8 : 5))
load main --clients "$best_c" --count $((DEVICES / 4)) --seconds "$LOAD_SECONDS" \
	--renew-rate "$rate" --renewers 2 --list-rate 4 &
lpid=$!
T_CLEANUP+=("kill $lpid 2>/dev/null")
sleep 1
adm backup "$T_TMP/online1.db" >"$T_TMP/backup1.out" 2>&1
b1=$?
adm import "$T_TMP/b2.manifest" >"$T_TMP/import2.out" 2>&1
i2=$?
adm backup "$T_TMP/online2.db" >"$T_TMP/backup2.out" 2>&1
b2=$?
wait "$lpid"
lrc=$?
next=$((next + DEVICES / 4))
line=$(grep '^load: clients' "$T_TMP/main.load")
echo "load: $line"
grep '^load: devices' "$T_TMP/main.load"
grep '^failed:' "$T_TMP/main.load" | head -5
t_run "load: the run ends with every operation answered" [ "$lrc" = 0 ]
t_run "load: zero failed requests" [ "$(field "$line" failed_attempts)" = 0 ]
t_run "load: online backup during the load" [ "$b1" = 0 ]
t_run "load: second online backup" [ "$b2" = 0 ]
t_grep "load: manifest import during the load" '"created":true' "$T_TMP/import2.out"
[ "$i2" = 0 ] || t_fail "load: import exit status $i2"
for b in online1 online2; do
	t_run "load: $b passes integrity_check" [ "$(sqlite3 "$T_TMP/$b.db" 'pragma integrity_check')" = ok ]
done
check load
row "load held (clients, req/s, p50, p99)" "$best_c provisioning clients + 2 renewers ($rate/s) + listings 4/s: $(field "$line" rps) req/s, p50 $(field "$line" p50_ms) ms, p99 $(field "$line" p99_ms) ms"
row "ramp: most clients, zero failures" "$best_c clients: $held_rps req/s, p99 $held_p99 ms"
row "ramp: best rate, zero failures" "${rate_c:-?} clients: $best_rps req/s, p99 $best_p99 ms"

# ---------------------------------------------------------------- kill -9
stop=$T_TMP/stop.kill
# At most KILL_CLIENTS clients: with more, a request outlives the time
# between two kills (seconds under ASan) and few would ever complete.
kc=$((best_c < KILL_CLIENTS ? best_c : KILL_CLIENTS))
load kill --clients "$kc" --count $((DEVICES - next)) --seconds 900 --renew-rate "$rate" \
	--renewers 2 --list-rate 2 --retry-seconds 120 --stop-file "$stop" &
lpid=$!
T_CLEANUP+=("kill $lpid 2>/dev/null")
# Kills begin once the load runs (answers are being recorded).
base=$(wc -l <"$ans")
for _ in $(seq 1 300); do [ "$(wc -l <"$ans")" -gt $((base + 20)) ] && break; sleep 0.1; done
# Outside readers until the stop file: the SQLite CLI's .backup and a
# read-only query, idprov-admin backup (fails while the server is down).
(
	n=0 bad=0 ok_adm=0
	for _ in $(seq 1 2000); do
		[ -e "$stop" ] && break
		n=$((n + 1))
		rm -f "$T_TMP/outside.db"
		sqlite3 "$st/idprov.db" ".timeout 10000" ".backup '$T_TMP/outside.db'" 2>/dev/null &&
			{ [ "$(sqlite3 "$T_TMP/outside.db" 'pragma integrity_check')" = ok ] || bad=$((bad + 1)); }
		sqlite3 -readonly "$st/idprov.db" ".timeout 10000" \
			"select count(*) from tokens; select count(*) from devices where state='approved'" \
			>/dev/null 2>&1 || true
		adm backup "$T_TMP/outside-adm.db" >/dev/null 2>&1 && ok_adm=$((ok_adm + 1))
		sleep 0.2
	done
	echo "outside: $n rounds, $bad bad copies, $ok_adm idprov-admin backups"
) >"$T_TMP/outside.out" 2>&1 &
opid=$!
T_CLEANUP+=("kill $opid 2>/dev/null")
kills=0 restarts_bad=0 checks_bad=0
t0=$SECONDS
for k in $(seq 1 "$KILLS"); do
	[ $((SECONDS - t0)) -gt 900 ] && break
	sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
	srv_kill "$SRV_PID"
	kills=$((kills + 1))
	started=0
	for _ in 1 2 3 4 5; do
		start_on "$st" "$PORT" && { started=1; break; }
		srv_kill "$SRV_PID"
		sleep 0.2
	done
	[ "$started" = 1 ] || { restarts_bad=$((restarts_bad + 1)); break; }
	if ! "$LOAD" check --db "$st/idprov.db" --answers "$ans" >"$T_TMP/kcheck" 2>&1; then
		checks_bad=$((checks_bad + 1))
		echo "kill $k:"
		cat "$T_TMP/kcheck"
	fi
	if [ $((k % 10)) = 0 ]; then
		adm audit verify | grep -q '"intact":true' || checks_bad=$((checks_bad + 1))
		echo "kill $k: $(tail -1 "$T_TMP/kcheck")"
	fi
done
touch "$stop"
wait "$lpid"
lrc=$?
wait "$opid"
next=$DEVICES
line=$(grep '^load: clients' "$T_TMP/kill.load")
echo "kill: $line"
grep '^failed:' "$T_TMP/kill.load" | head -8
cat "$T_TMP/outside.out"
t_run "kill: $kills kills of idprovd under load, each restart served" [ "$restarts_bad" = 0 ]
t_run "kill: the checks held after every restart" [ "$checks_bad" = 0 ]
t_run "kill: every client operation finished by retrying (none gave up)" [ "$lrc" = 0 ]
t_grep "kill: outside copies all pass integrity_check" ' 0 bad copies' "$T_TMP/outside.out"
check kill
row "kill -9 of idprovd under load" "$kc clients; $kills kills, $((kills - restarts_bad)) restarts; checks failed after $checks_bad; $(field "$line" answered) decisions answered meanwhile, $(field "$line" failed_attempts) attempts retried, $(field "$line" gave_up) ops given up"
row "outside readers during the kills" "$(sed 's/^outside: //' "$T_TMP/outside.out")"

# ---------------------------------------------------------------- lock
"$LOAD" prepare --dir "$T_TMP/lockdevs" --devices 600 --prefix lk --tag 78 >/dev/null
mk b-lock "$T_TMP/lockdevs/devices.csv" "$T_TMP/b3.manifest"
adm import "$T_TMP/b3.manifest" >/dev/null
# hold SECONDS: BEGIN IMMEDIATE in the SQLite CLI, released after SECONDS;
# waits until the lock is held (the CLI prints "locked").
hold() {
	(
		printf '.timeout 10000\nBEGIN IMMEDIATE;\n.print locked\n'
		sleep "$1"
		printf 'ROLLBACK;\n'
	) | sqlite3 "$st/idprov.db" >"$T_TMP/hold.out" 2>&1 &
	HOLD_PID=$!
	T_CLEANUP+=("kill $HOLD_PID 2>/dev/null")
	t_wait "$T_TMP/hold.out" '^locked'
}
lockload() { # NAME FIRST
	"$LOAD" run --server "$SRV_URL" --ca "$SRV_CA" --dir "$T_TMP/lockdevs" --answers "$ans" \
		--first "$2" --count 150 --clients 4 --seconds 120 --retry-seconds 60 \
		>"$T_TMP/$1.load" 2>&1
}
# A short hold (2 s, under the 5 s busy bound): requests wait, none fails.
hold 2
t_ok "lock: BEGIN IMMEDIATE held by the sqlite3 CLI (2 s)"
lockload lock-short 0
wait "$HOLD_PID"
line=$(grep '^load: clients' "$T_TMP/lock-short.load")
echo "lock (2 s): $line"
t_run "lock 2 s: requests waited, zero failed" [ "$(field "$line" failed_attempts)" = 0 ]
# A long hold (12 s): requests fail after the bound with a clear 503, then
# succeed. The lock is taken first: a fast server would be done before it.
hold 12
lockload lock-long 150
lrc=$?
wait "$HOLD_PID"
line=$(grep '^load: clients' "$T_TMP/lock-long.load")
echo "lock (12 s): $line"
grep '^failed:' "$T_TMP/lock-long.load"
t_grep "lock 12 s: requests failed with 503" '^failed: [0-9]+ x [a-z]+: 503 ' "$T_TMP/lock-long.load"
t_refuse "lock 12 s: no other failure than 503" grep -vE '^failed: [0-9]+ x [a-z]+: 503 |^load:' "$T_TMP/lock-long.load"
t_run "lock 12 s: every operation finished once the lock was gone" [ "$lrc" = 0 ]
t_run "lock: the server is still up" kill -0 "$SRV_PID"
check lock
lock503=$(grep '^failed:' "$T_TMP/lock-long.load" | awk '{s += $2} END {print s + 0}')
row "database locked (2 s, then 12 s)" "2 s: $(field "$(grep '^load: clients' "$T_TMP/lock-short.load")" failed_attempts) failed; 12 s: $lock503 answered 503, $(field "$line" gave_up) given up; $(grep -m1 '^failed:' "$T_TMP/lock-long.load" | sed 's/^failed: [0-9]* x //' | cut -c1-70)"

# ---------------------------------------------------------------- disk full
srv_kill "$SRV_PID"
full_dir=$T_TMP/full
mkdir -p "$full_dir"
mode=""
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=48m,mode=0700 tmpfs "$full_dir" 2>/dev/null; then
	mode=tmpfs
	T_CLEANUP+=("umount '$full_dir' 2>/dev/null")
fi
if [ -n "$mode" ]; then
	cp -a "$st/." "$full_dir/"
	st_main=$st ans_main=$ans
	st=$full_dir ans=$T_TMP/answers-full.txt
	cp "$ans_main" "$ans"
	start_on "$st" "$PORT" || t_fail "disk full: server starts on the tmpfs"
	check "disk full, before"
	"$LOAD" prepare --dir "$T_TMP/fulldevs" --devices 400 --prefix fu --tag 79 >/dev/null
	mk b-full "$T_TMP/fulldevs/devices.csv" "$T_TMP/b4.manifest"
	adm import "$T_TMP/b4.manifest" >/dev/null
	"$LOAD" run --server "$SRV_URL" --ca "$SRV_CA" --dir "$T_TMP/fulldevs" --answers "$ans" \
		--count 400 --clients 4 --seconds 180 --retry-seconds 90 >"$T_TMP/full.load" 2>&1 &
	lpid=$!
	T_CLEANUP+=("kill $lpid 2>/dev/null")
	t_wait "$SRV_ERR" 'event=device.decision' || true
	dd if=/dev/zero of="$st/filler" bs=1M count=100 2>/dev/null
	t_run "disk full: the filesystem is full" [ "$(df --output=avail "$st" | tail -1)" -lt 64 ]
	t_run "disk full: the log names the cause" t_wait "$SRV_ERR" 'event=store.full .*error="store: [a-z ]*: database or disk is full"'
	sleep 2 # requests go on failing for a while
	t_grep "disk full: requests refused 503 (storage_full)" 'path=/v1/(provision|token/exchange|nonce) status=503' "$SRV_ERR"
	t_refuse "disk full: none answered 500" grep -qE 'path=/v1/(provision|token/exchange|nonce) status=500' "$SRV_ERR"
	t_run "disk full: the server is still up" kill -0 "$SRV_PID"
	rm -f "$st/filler"
	wait "$lpid"
	lrc=$?
	line=$(grep '^load: clients' "$T_TMP/full.load")
	echo "disk full: $line"
	grep '^failed:' "$T_TMP/full.load" | head -5
	t_run "disk full: every operation finished once space returned" [ "$lrc" = 0 ]
	check "disk full, after"
	full_failed=$(field "$line" failed_attempts)
	row "disk full (48 MiB tmpfs filled)" "$full_failed requests refused while full, $(field "$line" gave_up) given up; resumed: $(field "$line" answered) answered; integrity ok"
	srv_kill "$SRV_PID"
	st=$st_main ans=$ans_main
	start_on "$st" "$PORT" || t_fail "server back on the main state directory"
else
	start_on "$st" "$PORT" || t_fail "server restarts"
	row "disk full" "skipped: needs root for a tmpfs mount"
	t_ok "disk full: skipped (not root)"
fi

# ---------------------------------------------------------------- station, agent
# These reuse the integration tests' own checks (their RESULT lines).
sub() { # NAME VAR=VALUE SCRIPT
	local out=$T_TMP/$1.sub
	env "$2" bash "$IDP_TOP/$3" >"$out" 2>&1
	local r
	r=$(grep '^RESULT' "$out" | tail -1)
	echo "$1: $r"
	grep '^not ok' "$out" | head -5
	if [ "$(awk '{print $3}' <<<"$r")" = 0 ] && [ -n "$r" ]; then t_ok "$1: its checks held"; else
		t_fail "$1: its checks held"; fi
	row "$1" "$4: $(awk '{print $2 " checks passed, " $3 " failed"}' <<<"$r")"
}
sub station "IDP_KILL_ROUNDS=$STATION_ROUNDS" tests/integration/station/kill.sh \
	"$STATION_ROUNDS kill -9 of idprov-station mid-batch"
AGENT_KILLS=$((AGENT_KILLS > 200 ? 200 : AGENT_KILLS))
sub agent "IDP_KILL_EXTRA=$AGENT_KILLS" tests/integration/agent/kill.sh \
	"$((AGENT_KILLS + 12)) kill -9 of idprov-agent mid-provisioning"

# ---------------------------------------------------------------- attack
attack=$IDP_TOP/tests/integration/server/attack.sh
[ -f "$attack" ] || attack=$IDP_TOP/tests/stress/attack.sh
if [ -f "$attack" ]; then
	bash "$attack" >"$T_TMP/attack.out" 2>&1
	a=$(grep '^attack: ' "$T_TMP/attack.out" | tail -1)
	echo "${a:-attack: no summary line}"
	row "bad inputs tried" "${a#attack: }"
	case $a in *" 0 unexpected"*) t_ok "attack: nothing unexpected" ;; *) t_fail "attack: $a" ;; esac
else
	row "bad inputs tried" "(no attack script)"
fi

# ---------------------------------------------------------------- the end
srv_stop
t_run "server stops cleanly at the end" [ "$SRV_RC" = 0 ]
final=$("$LOAD" check --db "$st/idprov.db" --answers "$ans" 2>&1 | tail -1)
echo "final: $final"
lost=$(field "$final" lost)
row "decisions answered / lost (goal 0)" "$(field "$final" answered) answered, ${lost:-?} lost"
t_run "final: no answered decision lost" [ "${lost:-1}" = 0 ]
echo
echo "== make stress: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$table"
t_done
