#!/usr/bin/env bash
# demo.sh [BIN_DIR [KEEP_DIR]] - the production line to site, on 127.0.0.1,
# narrated: real idprov-agent processes in factory mode, each connected in
# turn to the pty of one idprov-station in continuous mode (one sealed device
# fails its proof and is refused), labels, the signed batch uploaded to a
# fresh idprovd over HTTPS with a client certificate, a second batch carried
# as a file and imported, then the same agents in site mode: provisioned and
# approved from the manifest, token exchanged and renewed; an unlisted device
# pending until approved by its key; a revoked device refused; a summary.
# Every process it starts is stopped by its PID on exit, also on failure or
# Ctrl-C. With KEEP_DIR the work directory is KEEP_DIR and is kept (tests
# read the servers' state from it; it must be new or empty); otherwise a
# temporary one is made under $TMPDIR and removed.
set -euo pipefail
bin=$(cd "${1:-build/plain/bin}" && pwd)
keep=${2:-}
if [ -n "$keep" ]; then
	mkdir -p "$keep"
	if [ -n "$(ls -A "$keep")" ]; then
		echo "demo: $keep is not empty: give a new directory to keep the state in" >&2
		exit 2
	fi
	work=$(cd "$keep" && pwd)
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/idprov-demo.XXXXXX")
fi
pids=()
# stop PID: SIGTERM, then SIGKILL if it is still there after 5 s.
stop() {
	local i
	kill -TERM "$1" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	[ "$i" -lt 50 ] || kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
# cleanup: on any exit. No set -e here, and output last: a closed terminal
# or pipe must not keep it from stopping the processes and removing $work.
cleanup() {
	local rc=$? p
	set +e
	trap - EXIT INT TERM HUP PIPE
	for p in "${pids[@]}"; do stop "$p"; done
	[ -n "$keep" ] || rm -rf "$work"
	[ "$rc" = 0 ] ||
		echo "demo: FAILED (exit $rc); every process it started is stopped" >&2 2>/dev/null
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
cd "$work"
mkdir -p logs
PATH="$bin:$PATH"
export PATH

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
# quote ARG: ARG as a shell reads it back as the same word.
quote() {
	if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
		printf '%s' "$1"
	else
		printf "'%s'" "${1//\'/\'\\\'\'}"
	fi
}
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
# show ARGS...: print a command as typed (long ones continued with \).
show() {
	local a w line='  $'
	for a in "$@"; do
		w=$(quote "$a")
		if [ $((${#line} + ${#w})) -gt 92 ]; then
			printf '%s \\\n' "$line"
			line='      '
		fi
		line+=" $w"
	done
	printf '%s\n' "$line"
}
# ev WHO TEXT: one event line.
ev() { printf '    %-9s %s\n' "$1" "$2"; }
n_log=0
# run ARGS...: show and run a command, its output to logs/N.out (set as $out).
run() {
	show "$@"
	n_log=$((n_log + 1))
	out=logs/$n_log.out
	"$@" >"$out" 2>&1 || {
		local rc=$?
		sed 's/^/      | /' "$out" >&2
		echo "demo: the command above failed (exit $rc)" >&2
		return "$rc"
	}
}
# refused RC ARGS...: show and run a command that must exit with RC.
refused() {
	local want=$1 rc=0
	shift
	show "$@"
	n_log=$((n_log + 1))
	out=logs/$n_log.out
	"$@" >"$out" 2>&1 || rc=$?
	if [ "$rc" != "$want" ]; then
		sed 's/^/      | /' "$out" >&2
		echo "demo: UNEXPECTED: exit $rc, not $want" >&2
		return 1
	fi
}
# wait_for FILE ERE [N [PID]]: until FILE has N (default 1) lines matching ERE
# (30 s at most; not once PID, when given, has exited).
wait_for() {
	local i c
	for i in $(seq 1 600); do
		c=$(grep -cE -- "$2" "$1" 2>/dev/null || true)
		[ "${c:-0}" -ge "${3:-1}" ] && return 0
		[ -z "${4:-}" ] || kill -0 "$4" 2>/dev/null || break
		sleep 0.05
	done
	echo "demo: no /$2/ in $1" >&2
	return 1
}
# bg OUT ARGS...: start a command in the background, stdout to OUT, stderr to
# OUT.log; its PID (in pids[], stopped on exit) as $last.
bg() {
	local o=$1
	shift
	"$@" >"$o" 2>"$o.log" &
	last=$!
	pids+=("$last")
}
forget() {
	local p keep_p=()
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep_p+=("$p"); done
	pids=("${keep_p[@]}")
}
# json NAME < JSON: a string or number member of a flat JSON object.
json() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -1; }
# mac N: the demo's MAC of device N.
mac() { printf '02:1a:2c:00:00:%02x' "$1"; }
# device N [KEYTYPE]: write devN.conf, the agent's settings of device dev-0N.
device() {
	local id
	id=$(printf 'dev-%02d' "$1")
	printf 'state-dir %s\nid %s\nmac %s\nserial SN-%04d\nkey-type %s\n' \
		"$id" "$id" "$(mac "$1")" "$1" "${2:-p256}" >"$id.conf"
}

t0=$(date +%s)
echo "${bold}idprov demo${plain}: factory line -> signed batch -> site server -> devices, on 127.0.0.1"
echo "  work dir  $work"
echo "  commands  run there with PATH=$bin:\$PATH"

# ----------------------------------------------------------------------------
step "1. Factory: station-01 reads each device on its line (a pty), in continuous mode"
run idprov-manifest keygen --type p256 --out station.key
ev station "signing key station.key, public half station.pub"
mkdir -p labels
cat >station.conf <<'EOF'
state station
station station-01
key station.key
label-dir labels
timeout-ms 1500
EOF
ev station "settings in station.conf: $(paste -sd ';' station.conf | sed 's/;/; /g')"
for n in 1 2 3 4 99; do device "$n"; done
device 2 ed25519
ev devices "dev-01..dev-04 are good; dev-99 was sealed in an earlier life:"
run idprov-agent --config dev-99.conf seal
ev dev-99 "sealed: it answers every CHALLENGE with an error"

# read_devices OUT N...: connect dev-0N in turn to the running station's pty
# (its output in OUT), each until the station has shown its PASS or FAIL,
# then unplug it (stop the agent) once the station has asked it twice more
# who it is (a device left connected after its line gets HELLO and INFO
# only, 300 ms apart, and no second line). The last device stays connected: its
# agent's PID is $last, for the caller to stop once the station is done.
read_devices() {
	local so=$1 n id line seen apid hellos
	shift
	for n in "$@"; do
		id=$(printf 'dev-%02d' "$n")
		seen=$(grep -cE '^(PASS|FAIL) ' "$so" || true)
		show idprov-agent --config "$id.conf" factory --console "$pty"
		bg "logs/$id.factory" idprov-agent --config "$id.conf" factory --console "$pty"
		apid=$last
		wait_for "$so" '^(PASS|FAIL) ' $((seen + 1))
		line=$(grep -E '^(PASS|FAIL) ' "$so" | sed -n "$((seen + 1))p")
		ev station "${line%%  \[*}"
		[ "$n" = "${*: -1}" ] && return 0
		hellos=$(grep -c 'factory.hello' "logs/$id.factory.log" || true)
		wait_for "logs/$id.factory.log" 'factory.hello' $((hellos + 2))
		stop "$apid"
		forget "$apid"
	done
}

show idprov-station run --config station.conf --batch line-001 --product 'Sensor X1' --pty
bg logs/station-1 idprov-station run --config station.conf --batch line-001 --product 'Sensor X1' --pty
st_pid=$last
wait_for logs/station-1 '^pty ' 1 "$st_pid"
pty=$(awk '/^pty /{print $2; exit}' logs/station-1)
ev station "$(head -1 logs/station-1); line on $pty"
read_devices logs/station-1 1 2 3 4 99
stop "$last" && forget "$last" # dev-99 unplugged
show kill -TERM "$st_pid"
ev operator "ends the batch (SIGTERM, as Ctrl-C or typing close)"
kill -TERM "$st_pid"
wait "$st_pid" || { cat logs/station-1.log >&2; exit 1; }
forget "$st_pid"
grep -E "^(closed|station/batches/line-001)" logs/station-1 | sed -E "s/ \(PASS.*//; s/([0-9a-f]{12})[0-9a-f]{52}/\1.../" |
	while IFS= read -r l; do ev station "$l"; done
ev labels "$(find labels -name '*.pgm' | sort | sed 's|labels/||' | paste -sd ' ') (no label for dev-99)"
show zbarimg -q --raw labels/dev-01.pgm
qr=$(zbarimg -q --raw labels/dev-01.pgm 2>/dev/null)
ev label "dev-01's QR code reads ${qr:0:40}..."
grep -q '"id":"dev-99"' station/batches/line-001.manifest &&
	{ echo "demo: dev-99 is in the manifest" >&2; exit 1; }

# ----------------------------------------------------------------------------
step "2. Delivery: idprovd's first start, no configuration file; HTTPS upload; a batch by hand"
ev pki "a factory CA issues station-01 its client certificate (openssl):"
run openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj '/CN=demo factory CA' -keyout factory-ca.key -out factory-ca.pem
run openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=station-01 \
	-keyout station-client.key -out station-client.csr
echo '  $ echo extendedKeyUsage=clientAuth >client.ext'
echo extendedKeyUsage=clientAuth >client.ext
run openssl x509 -req -in station-client.csr -CA factory-ca.pem -CAkey factory-ca.key \
	-CAcreateserial -days 30 -extfile client.ext -out station-client.pem
show idprovd --foreground --state-dir state --listen 127.0.0.1:0 --station-ca factory-ca.pem
bg logs/idprovd idprovd --foreground --state-dir state --listen 127.0.0.1:0 \
	--station-ca factory-ca.pem
srv_pid=$last
wait_for logs/idprovd.log 'event=http.listening addr=127.0.0.1:[0-9]+' 1 "$srv_pid"
port=$(grep -oE 'event=http.listening addr=127.0.0.1:[0-9]+' logs/idprovd.log | head -1 |
	sed 's/.*://')
url=https://127.0.0.1:$port
ev idprovd "listening on $url; made state/ca.pem, its keys, idprov.db"
ev idprovd "and the admin credential state/admin.token (0600, never printed)"
ev idprovd "--station-ca: station client certificates must chain to factory-ca.pem"
adm() { idprov-admin --server "$url" --ca state/ca.pem --token-file state/admin.token "$@"; }
printf '  $ adm() { idprov-admin --server %s --ca state/ca.pem --token-file state/admin.token "$@"; }\n' "$url"
run adm station add station-01 station.pub
ev admin "trusts station-01's signing key"
printf 'server %s\nca state/ca.pem\nclient-cert station-client.pem\nclient-key station-client.key\n' \
	"$url" >>station.conf
ev station "station.conf += server $url, ca, client-cert, client-key"
run idprov-station upload --config station.conf --batch line-001
ev station "$(cat "$out")"

show idprov-station run --config station.conf --batch line-002 --product 'Sensor X1' --count 2 --pty
device 5
device 6
bg logs/station-2 idprov-station run --config station.conf --batch line-002 \
	--product 'Sensor X1' --count 2 --pty
st_pid=$last
wait_for logs/station-2 '^pty ' 1 "$st_pid"
pty=$(awk '/^pty /{print $2; exit}' logs/station-2)
ev station "$(head -1 logs/station-2); line on $pty"
read_devices logs/station-2 5 6
wait "$st_pid" || { cat logs/station-2.log >&2; exit 1; }
forget "$st_pid"
stop "$last" && forget "$last" # dev-06, still on the line
grep -E "^(closed|station/batches/line-002)" logs/station-2 | sed -E "s/ \(PASS.*//; s/([0-9a-f]{12})[0-9a-f]{52}/\1.../" |
	while IFS= read -r l; do ev station "$l"; done
mkdir -p usb-stick
run cp station/batches/line-002.manifest station/batches/line-002.manifest.sig usb-stick/
ev carrier "line-002 travels as a file, not uploaded"
run adm import usb-stick/line-002.manifest --json
ev admin "imported: $(json devices <"$out") devices"
sqlite3 -readonly state/idprov.db "SELECT sequence, id, device_count, lower(hex(hash)),
	lower(hex(prev_hash)) FROM batches WHERE station_id = 'station-01'
	ORDER BY sequence" >logs/chain
h1=''
while IFS='|' read -r seq b count h prev; do
	p=${prev:0:12}
	ev chain "seq $seq  $b  $count devices  sha256 ${h:0:12}  prev ${p:-(none)}"
	[ "$seq" = 1 ] && h1=$h
	[ "$seq" = 2 ] && [ "$prev" != "$h1" ] && { echo "demo: the chain is broken" >&2; exit 1; }
done <logs/chain
ev chain "seq 1 -> 2: line-002's prev is line-001's hash (idprovd's store)"

# ----------------------------------------------------------------------------
step "3. Site: the devices' agents against $url (DNS-SD is not built yet: the URL is given)"
ca_fp=$(openssl x509 -in state/ca.pem -outform DER | sha256sum | cut -c1-64)
show sh -c 'openssl x509 -in state/ca.pem -outform DER | sha256sum'
ev installer "the site CA's fingerprint ${ca_fp:0:16}...: agents trust it on first use"
site() { printf 'server %s\nca-fingerprint %s\n' "$url" "$ca_fp" >>"dev-$1.conf"; }
# events FILE: the agent's events in its log FILE, in words.
events() {
	local e=()
	grep -q 'event=ca.pinned source=first-use' "$1" && e+=("CA pinned on first use")
	grep -q 'event=provision.approved' "$1" && e+=("approved")
	grep -q 'event=token.exchanged' "$1" && e+=("token exchanged")
	grep -q 'event=token.renewed' "$1" && e+=("token renewed")
	grep -q 'event=factory.sealed' "$1" && e+=("factory mode sealed")
	printf '%s' "${e[0]}"
	[ "${#e[@]}" -lt 2 ] || printf ', %s' "${e[@]:1}"
}
batch_of() {
	sqlite3 -readonly state/idprov.db "SELECT coalesce(batch_id, 'no batch') FROM devices WHERE id = '$1'"
}
for n in 01 02 03 04 05 06; do
	site "$n"
	run idprov-agent --config "dev-$n.conf" run --once
	ev "dev-$n" "$(events "$out") (manifest $(batch_of "dev-$n"))"
done
for n in 01 05; do
	run idprov-agent --config "dev-$n.conf" run --once --renew
	exp=$(idprov-agent --config "dev-$n.conf" status --json | json token_expires)
	ev "dev-$n" "$(events "$out"), valid until $(date -u -d "@$exp" '+%F %H:%M') UTC"
done
device 7
site 07
refused 5 idprov-agent --config dev-07.conf run --once --wait 1
ev dev-07 "still pending after its --wait: no manifest names it (exit 5)"
run adm devices --state pending --json
fp7=$(tr '{' '\n' <"$out" | grep '"id":"dev-07"' | json key_sha256)
fp7=${fp7#sha256:}
idprov-agent --config dev-07.conf status --json >logs/dev-07.status
if [ -z "$fp7" ] || [ "$fp7" != "$(json key_fingerprint <logs/dev-07.status)" ]; then
	echo "demo: dev-07's key on the server is not its own" >&2
	exit 1
fi
ev admin "dev-07 pending with key ${fp7:0:16}..., the one its label shows"
run adm approve dev-07 --key "$fp7"
ev admin "approves dev-07 with that key"
run idprov-agent --config dev-07.conf run --once
ev dev-07 "$(events "$out")"
run adm revoke dev-04
ev admin "revokes dev-04"
refused 7 idprov-agent --config dev-04.conf run --once --renew
ev dev-04 "refused: revoked (exit 7)"

# ----------------------------------------------------------------------------
step "4. Summary"
printf '    %-7s %-8s %-9s %-9s %-11s %s\n' device factory batch server provisioned token
for n in 01 02 03 04 05 06 07 99; do
	fac=PASS
	[ "$n" = 99 ] && fac=FAIL
	[ "$n" = 07 ] && fac=-
	row=$(sqlite3 -readonly state/idprov.db "SELECT coalesce(batch_id, '-'), state,
		CASE WHEN provisioned_at > 0 THEN 'yes' ELSE 'no' END FROM devices WHERE id = 'dev-$n'")
	[ -n "$row" ] || row="-|absent|no"
	tok=$(idprov-agent --config "dev-$n.conf" status --json 2>/dev/null | json token || true)
	IFS='|' read -r b s p <<<"$row"
	printf '    %-7s %-8s %-9s %-9s %-11s %s\n' "dev-$n" "$fac" "$b" "$s" "$p" "${tok:--}"
done
run adm devices --json
ev admin "its JSON, one device a line: id, state, MAC, batch, key SHA-256, attempts"
tr "{" "\n" <"$out" | grep '"id":' | while IFS= read -r d; do
	k=$(json key_sha256 <<<"$d")
	printf '      %-7s %-9s %s  %-9s %-15s %s\n' "$(json id <<<"$d")" "$(json state <<<"$d")" \
		"$(json mac <<<"$d")" "$(json batch_id <<<"$d")" "${k:0:12}..." "$(json attempts <<<"$d")"
done
show kill -TERM "$srv_pid"
kill -TERM "$srv_pid"
wait "$srv_pid"
forget "$srv_pid"
ev idprovd "stopped cleanly"
echo
echo "idprov demo: done in $(($(date +%s) - t0)) s; nothing left running."
if [ -n "$keep" ]; then
	echo "  look in $work: state/ (idprovd), station/ (station-01), dev-NN/ (agents), logs/"
else
	echo "  (run samples/demo.sh BIN_DIR DIR to keep the state in DIR)"
fi
