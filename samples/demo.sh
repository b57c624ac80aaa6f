#!/usr/bin/env bash
# demo.sh [BIN_DIR [KEEP_DIR]] - the production line to site, narrated:
# real idprov-agent processes in factory mode, each connected in turn to the
# pty of one idprov-station in continuous mode (one sealed device fails its
# proof and is refused), labels, the signed batch uploaded to a fresh idprovd
# over HTTPS with a client certificate, a second batch carried as a file and
# imported, then the same agents in site mode: they find idprovd by DNS-SD
# (_idprov._tcp through avahi-daemon, in two network namespaces the demo
# makes: the server's and the devices'), are approved from the manifest,
# exchange and renew tokens; a device with an out-of-band secret approved at
# once; an unlisted device pending until approved by its label; a rogue
# DNS-SD publisher suspends provisioning until it is gone and the
# administrator resumes; a revoked device refused; a summary.
# Where network namespaces are not allowed (not root, no CAP_SYS_ADMIN, no
# ip/avahi-daemon/dbus-daemon, or IDPROV_DEMO_NETNS=off), it says so in one
# line and runs on 127.0.0.1 with the server URL given to the agents (an
# avahi-daemon of its own outside a namespace would announce the demo on the
# machine's real networks, loopback carries no mDNS, and it would clash with
# the system's /run/avahi-daemon); the rogue is then a suspension by hand.
# Every process it starts is stopped by its PID on exit, and the namespaces
# deleted, also on failure or Ctrl-C; every such process has
# IDPROV_DEMO_WORK=<work dir> in its environment. With KEEP_DIR the work
# directory is KEEP_DIR and is kept (tests read the servers' state from it;
# it must be new or empty); otherwise a temporary one is made under $TMPDIR
# and removed. With IDPROV_DEMO_PAUSE=1 it stops before each step after the
# first, everything it started still running, until a line (Enter) comes on
# its standard input (end of input goes on too): a presenter's pace.
set -euo pipefail
bin=$(cd "${1:-build/plain/bin}" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
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
netdir=''
nettmp=''
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
	# A signal's trap may run inside a command whose output goes to a log
	# (run's redirection of a shell function, such as adm): say it where
	# the demo's own output goes.
	exec 1>&7 2>&8
	for p in "${pids[@]}"; do stop "$p"; done
	[ -z "$netdir" ] || netns_teardown
	[ -z "$nettmp" ] || rm -rf "$nettmp"
	[ -n "$keep" ] || rm -rf "$work"
	[ "$rc" = 0 ] ||
		echo "demo: FAILED (exit $rc); every process it started is stopped" >&2 2>/dev/null
	exit "$rc"
}
exec 7>&1 8>&2 # the demo's own output, for cleanup
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
cd "$work"
mkdir -p logs
PATH="$bin:$PATH"
IDPROV_DEMO_WORK=$work
export PATH IDPROV_DEMO_WORK

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
# quote ARG: ARG as a shell reads it back as the same word.
quote() {
	if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
		printf '%s' "$1"
	else
		printf "'%s'" "${1//\'/\'\\\'\'}"
	fi
}
n_step=0
step() {
	n_step=$((n_step + 1))
	# What it waits on is its input: the line below is said just before.
	if [ "${IDPROV_DEMO_PAUSE:-}" = 1 ] && [ "$n_step" -gt 1 ]; then
		printf '\n  (paused before step %s: Enter goes on)\n' "$n_step"
		read -r _ || true
	fi
	printf '\n%s== %s%s\n' "$bold" "$*" "$plain"
}
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
# bg OUT [site|dev] ARGS...: start a command in the background (in the
# server's or the devices' network namespace with site or dev), stdout to
# OUT, stderr to OUT.log; its PID (in pids[], stopped on exit) as $last.
bg() {
	local o=$1 ns=''
	shift
	case $1 in
	site) ns=$ns_site ;;
	dev) ns=$ns_dev ;;
	esac
	if [ -n "$ns" ]; then
		DBUS_SYSTEM_BUS_ADDRESS=unix:path=$netdir/$1.bus ip netns exec "$ns" "${@:2}" \
			>"$o" 2>"$o.log" &
	else
		"$@" >"$o" 2>"$o.log" &
	fi
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

# count ERE FILE: how many JSON objects in FILE (one answer) match ERE.
count() { tr '{' '\n' <"$2" | grep -cE -- "$1" || true; }

# ----------------------------------------------------------------------------
# The network: the server's namespace and the devices', or 127.0.0.1.
ns_site=idpdemo-site-$$
ns_dev=idpdemo-dev-$$
site_ip=10.79.1.1
dev_ip=10.79.1.2
S=()
D=()
why=''
# net_up: the two namespaces, a veth pair, a dbus-daemon and an avahi-daemon
# in each (samples/netns.sh); false with the reason in $why.
net_up() {
	local c
	for c in ip dbus-daemon avahi-daemon avahi-publish avahi-browse; do
		command -v "$c" >/dev/null || { why="no $c here"; return 1; }
	done
	# The buses' sockets: a D-Bus address takes a path of at most 107 bytes,
	# and a space (say) only %-escaped: else a short one under /tmp.
	netdir=$work/net
	if [ "${#netdir}" -gt 80 ] || [[ $netdir =~ [^-A-Za-z0-9_/.] ]]; then
		nettmp=$(mktemp -d /tmp/idpdemo.XXXXXX)
		netdir=$nettmp
	fi
	mkdir -p "$netdir"
	# shellcheck disable=SC2034 # samples/netns.sh's
	NETNS_DIR=$netdir
	# shellcheck source=samples/netns.sh
	. "$here/netns.sh"
	local rc=0
	netns_pair site "$ns_site" "$site_ip/24" dev "$ns_dev" "$dev_ip/24" || rc=$?
	case $rc in
	0) return 0 ;;
	2) why="network namespaces not allowed here ($(head -1 "$netdir/netns.err" | cut -c1-80))" ;;
	*) why="the namespaces could not be set up (logs in $netdir)" ;;
	esac
	return 1
}
site() { DBUS_SYSTEM_BUS_ADDRESS=unix:path=$netdir/site.bus ip netns exec "$ns_site" "$@"; }
dev() { DBUS_SYSTEM_BUS_ADDRESS=unix:path=$netdir/dev.bus ip netns exec "$ns_dev" "$@"; }

t0=$(date +%s)
echo "${bold}idprov demo${plain}: factory line -> signed batch -> site server -> devices"
echo "  work dir  $work"
echo "  commands  run there with PATH=$bin:\$PATH"
if [ "${IDPROV_DEMO_NETNS:-}" = off ]; then
	why="IDPROV_DEMO_NETNS=off"
elif ! net_up; then
	[ -z "$netdir" ] || netns_teardown
fi
if [ -z "$why" ]; then
	S=(site)
	D=(dev)
	srv_ip=$site_ip
	srv_opts=(--server-name "$site_ip")
	echo "  network   namespaces $ns_site (server, $site_ip) and $ns_dev (devices, $dev_ip),"
	echo "            a veth pair, a dbus-daemon + avahi-daemon in each: DNS-SD between them"
	printf '  $ site() { DBUS_SYSTEM_BUS_ADDRESS=%s ip netns exec %s "$@"; }\n' \
		"$(quote "unix:path=$netdir/site.bus")" "$ns_site"
	printf '  $ dev() { DBUS_SYSTEM_BUS_ADDRESS=%s ip netns exec %s "$@"; }\n' \
		"$(quote "unix:path=$netdir/dev.bus")" "$ns_dev"
else
	srv_ip=127.0.0.1
	srv_opts=(--dnssd=off)
	echo "  network   127.0.0.1 only, no DNS-SD (agents get the server URL): $why"
fi

# ----------------------------------------------------------------------------
step "1. Factory: station-01 reads each device on its line (a pty), in continuous mode"
run idprov-manifest keygen --type p256 --out station.key
ev station "signing key station.key, public half station.pub"
mkdir -p labels
cat >station.conf <<'EOT'
state station
station station-01
key station.key
label-dir labels
timeout-ms 1500
EOT
ev station "settings in station.conf: $(paste -sd ';' station.conf | sed 's/;/; /g')"
for n in 1 2 3 4 6 7 8 99; do device "$n"; done
device 5 ed25519
ev devices "dev-01..dev-07 are good; dev-99 was sealed in an earlier life:"
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
# closed OUT BATCH: the station's closing lines, hashes cut short.
closed() {
	grep -E "^(closed|station/batches/$2)" "$1" |
		sed -E "s/ \(PASS.*//; s/([0-9a-f]{12})[0-9a-f]{52}/\1.../" |
		while IFS= read -r l; do ev station "$l"; done
}
# small_batch BATCH N...: a batch of exactly these devices (--count), read
# on a new line; the station closes it by itself.
small_batch() {
	local b=$1
	shift
	show idprov-station run --config station.conf --batch "$b" --product 'Sensor X1' --count "$#" --pty
	bg "logs/$b" idprov-station run --config station.conf --batch "$b" --product 'Sensor X1' \
		--count "$#" --pty
	st_pid=$last
	wait_for "logs/$b" '^pty ' 1 "$st_pid"
	pty=$(awk '/^pty /{print $2; exit}' "logs/$b")
	ev station "$(head -1 "logs/$b"); line on $pty"
	read_devices "logs/$b" "$@"
	wait "$st_pid" || { cat "logs/$b.log" >&2; exit 1; }
	forget "$st_pid"
	stop "$last" && forget "$last" # the last device, still on the line
	closed "logs/$b" "$b"
}

show idprov-station run --config station.conf --batch line-001 --product 'Sensor X1' --pty
bg logs/line-001 idprov-station run --config station.conf --batch line-001 --product 'Sensor X1' --pty
st_pid=$last
wait_for logs/line-001 '^pty ' 1 "$st_pid"
pty=$(awk '/^pty /{print $2; exit}' logs/line-001)
ev station "$(head -1 logs/line-001); line on $pty"
read_devices logs/line-001 1 2 3 4 99
stop "$last" && forget "$last" # dev-99 unplugged
show kill -TERM "$st_pid"
ev operator "ends the batch (SIGTERM, as Ctrl-C or typing close)"
kill -TERM "$st_pid"
wait "$st_pid" || { cat logs/line-001.log >&2; exit 1; }
forget "$st_pid"
closed logs/line-001 line-001
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
srv_cmd=(idprovd --foreground --state-dir state --listen "$srv_ip:0" "${srv_opts[@]}"
	--station-ca factory-ca.pem)
show "${S[@]}" "${srv_cmd[@]}"
bg logs/idprovd "${S[@]}" "${srv_cmd[@]}"
srv_pid=$last
wait_for logs/idprovd.log "event=http.listening addr=$srv_ip:[0-9]+" 1 "$srv_pid"
port=$(grep -oE "event=http.listening addr=$srv_ip:[0-9]+" logs/idprovd.log | head -1 |
	sed 's/.*://')
url=https://$srv_ip:$port
ev idprovd "listening on $url; made state/ca.pem, its keys, idprov.db"
ev idprovd "and the admin credential state/admin.token (0600, never printed)"
ev idprovd "web UI at $url/ui/${S[*]:+ (site network)}: sign in with state/admin.token"
ev idprovd "--station-ca: station client certificates must chain to factory-ca.pem"
if [ "${#S[@]}" -gt 0 ]; then
	wait_for logs/idprovd.log 'event=dnssd.published' 1 "$srv_pid"
	wait_for logs/idprovd.log 'event=dnssd.watching' 1 "$srv_pid"
	ev idprovd "publishes _idprov._tcp by DNS-SD, and watches for other publishers"
fi
adm() { "${S[@]}" idprov-admin --server "$url" --ca state/ca.pem --token-file state/admin.token "$@"; }
printf '  $ adm() { %sidprov-admin --server %s --ca state/ca.pem --token-file state/admin.token "$@"; }\n' \
	"${S[*]/%/ }" "$url"
run adm station add station-01 station.pub
ev admin "trusts station-01's signing key"
printf 'server %s\nca state/ca.pem\nclient-cert station-client.pem\nclient-key station-client.key\n' \
	"$url" >>station.conf
ev station "station.conf += server $url, ca, client-cert, client-key"
run "${S[@]}" idprov-station upload --config station.conf --batch line-001
ev station "$(cat "$out")"

small_batch line-002 5 6
mkdir -p usb-stick
run cp station/batches/line-002.manifest station/batches/line-002.manifest.sig usb-stick/
ev carrier "line-002 travels as a file, not uploaded"
run adm --json import usb-stick/line-002.manifest
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
small_batch line-003 7
ev carrier "line-003 stays at the factory: its manifest never reaches this site"

# ----------------------------------------------------------------------------
ca_fp=$(openssl x509 -in state/ca.pem -outform DER | sha256sum | cut -c1-64)
# site_conf NN: dev-NN's settings for the site: with DNS-SD none (it finds the
# server and pins the CA from the TXT record); without, the URL and the CA's
# fingerprint, as an installer would enter them.
site_conf() {
	[ "${#D[@]}" -gt 0 ] || printf 'server %s\nca-fingerprint %s\n' "$url" "$ca_fp" >>"dev-$1.conf"
}
# events FILE: the agent's events in its log FILE, in words.
events() {
	local e=() u
	u=$(grep -o 'event=discover.chosen url=[^ ]*' "$1" | head -1 | sed 's|.*//||')
	[ -z "$u" ] || e+=("DNS-SD: $u")
	grep -q 'event=ca.pinned source=dns-sd' "$1" && e+=("CA pinned (TXT)")
	grep -q 'event=ca.pinned source=first-use' "$1" && e+=("CA pinned on first use")
	grep -q 'event=provision.approved' "$1" && e+=("approved")
	grep -q 'event=token.exchanged' "$1" && e+=("token exchanged")
	grep -q 'event=token.renewed' "$1" && e+=("token renewed")
	printf '%s' "${e[0]}"
	[ "${#e[@]}" -lt 2 ] || printf ', %s' "${e[@]:1}"
}
batch_of() {
	sqlite3 -readonly state/idprov.db "SELECT coalesce(batch_id, 'no batch') FROM devices WHERE id = '$1'"
}
if [ "${#D[@]}" -gt 0 ]; then
	step "3. Site: the devices, in their own network namespace, find idprovd by DNS-SD"
else
	step "3. Site: the devices' agents against $url (no DNS-SD here: the URL is given)"
fi
show sh -c 'openssl x509 -in state/ca.pem -outform DER | sha256sum'
ev installer "the site CA's fingerprint is ${ca_fp:0:16}..."
if [ "${#D[@]}" -gt 0 ]; then
	ev installer "the agents' settings name no server and no CA"
	for _ in 1 2 3 4 5; do
		run dev avahi-browse -rtp _idprov._tcp
		grep -q "^=.*fp=$ca_fp" "$out" && break
	done
	IFS=';' read -r _ _ _ name _ _ _ addr p txt <<<"$(grep -m1 "^=.*fp=$ca_fp" "$out")"
	ev dns-sd "\"${name//\\032/ }\" at $addr port $p, TXT ${txt//\"/}" | sed -E 's/([0-9a-f]{16})[0-9a-f]{48}/\1.../'
else
	for n in 01 02 03 04 05 06 07; do site_conf "$n"; done
fi
# shellcheck disable=SC2016 # a command shown as typed
printf '  $ for n in 01 02 03 04 05; do %sidprov-agent --config dev-$n.conf run --once & done; wait\n' \
	"${D[*]/%/ }"
wave=()
for n in 01 02 03 04 05; do
	bg "logs/dev-$n.site" "${D[@]}" idprov-agent --config "dev-$n.conf" run --once
	wave+=("$last")
done
i=0
for n in 01 02 03 04 05; do
	wait "${wave[$i]}" || {
		sed 's/^/      | /' "logs/dev-$n.site.log" >&2
		echo "demo: dev-$n did not provision" >&2
		exit 1
	}
	forget "${wave[$i]}"
	i=$((i + 1))
	ev "dev-$n" "$(events "logs/dev-$n.site.log") (manifest $(batch_of "dev-$n"))"
done
for n in 01 05; do
	run "${D[@]}" idprov-agent --config "dev-$n.conf" run --once --renew
	exp=$(idprov-agent --config "dev-$n.conf" status --json | json token_expires)
	ev "dev-$n" "$(events "$out"), valid until $(date -u -d "@$exp" '+%F %H:%M') UTC"
done

ev dev-08 "a replacement unit, in no manifest: a secret printed on its label"
show sh -c 'openssl rand -base64 12 >dev-08.secret'
openssl rand -base64 12 >dev-08.secret
echo 'oob-secret-file dev-08.secret' >>dev-08.conf
site_conf 08
ev dev-08 "dev-08.conf += oob-secret-file dev-08.secret (the device knows its secret)"
echo '  $ adm oob add dev-08 --expires 1h <dev-08.secret'
n_log=$((n_log + 1))
out=logs/$n_log.out
adm oob add dev-08 --expires 1h <dev-08.secret >"$out" 2>&1
ev admin "the installer types the label's secret: only a verifier reaches the server"
run "${D[@]}" idprov-agent --config dev-08.conf run --once
ev dev-08 "$(events "$out")"
ev dev-08 "approved at once: it proved its secret (no manifest, no administrator)"

refused 5 "${D[@]}" idprov-agent --config dev-07.conf run --once --wait 1
ev dev-07 "pending (exit 5): line-003's manifest never came; it has its label"
show zbarimg -q --raw labels/dev-07.pgm
label=$(zbarimg -q --raw labels/dev-07.pgm 2>/dev/null)
ev installer "scans dev-07's label: ${label:0:29}..."
forged="IDPL1;dev-07;${qr##*;}"
refused 1 adm approve --label "$forged"
ev admin "a label naming dev-07 with dev-01's key: refused (409), not approved"
run adm approve --label "$label"
ev admin "approves dev-07 by its label: the key it presented is the label's"
run "${D[@]}" idprov-agent --config dev-07.conf run --once
ev dev-07 "$(events "$out")"

if [ "${#D[@]}" -gt 0 ]; then
	rogue_fp=$(openssl rand -hex 32)
	rogue=(avahi-publish -s 'idprov rogue' _idprov._tcp 8443 v=1 path=/v1 "fp=$rogue_fp")
	show dev "${rogue[@]}"
	bg logs/rogue dev "${rogue[@]}"
	rogue_pid=$last
	wait_for logs/rogue.log 'Established under name' 1 "$rogue_pid"
	ev rogue "another _idprov._tcp on the devices' network: port 8443, another CA"
	wait_for logs/idprovd.log 'event=site.suspended' 1 "$srv_pid"
	ev idprovd "sees it (not its own, not allowed): provisioning suspended at once"
	refused 8 dev idprov-agent --config dev-06.conf run --once
	ev dev-06 "two servers naming different CAs: it chooses neither (exit 8)"
	printf 'ca-fingerprint %s\n' "$ca_fp" >>dev-06.conf
	ev installer "dev-06.conf += ca-fingerprint ${ca_fp:0:16}... (the site CA's)"
else
	ev site "no DNS-SD here, so no rogue publisher to see: the administrator"
	ev site "suspends by hand, which is what a rogue publisher triggers"
	run adm suspend --reason 'demo: what a rogue DNS-SD publisher triggers'
fi
refused 4 "${D[@]}" idprov-agent --config dev-06.conf run --once
ev dev-06 "$(grep -o '503 suspended): [^:]*' "$out" | head -1 | sed 's/)//') (exit 4)"
if [ "${#D[@]}" -gt 0 ]; then
	refused 1 adm resume
	ev admin "resume refused: the rogue is still published"
	show kill -TERM "$rogue_pid"
	stop "$rogue_pid"
	forget "$rogue_pid"
	ev operator "finds the rogue and unplugs it"
	wait_for logs/idprovd.log 'event=site.gone' 1 "$srv_pid"
	ev idprovd "sees it gone"
fi
run adm resume
ev admin "resumes provisioning"
run "${D[@]}" idprov-agent --config dev-06.conf run --once
ev dev-06 "$(events "$out") (manifest $(batch_of dev-06))"

run adm revoke dev-04
ev admin "revokes dev-04"
refused 7 "${D[@]}" idprov-agent --config dev-04.conf run --once --renew
ev dev-04 "refused: revoked (exit 7)"

# ----------------------------------------------------------------------------
step "4. Summary"
read_pass=$(sed -n '/^PASS /p' logs/line-00? | grep -c . || true)
read_fail=$(sed -n '/^FAIL /p' logs/line-00? | grep -c . || true)
run adm --json devices
cp "$out" logs/devices.json
run adm --json flags --open
cp "$out" logs/flags.json
run adm --json report unprovisioned
cp "$out" logs/unprovisioned.json
run adm --json audit verify
cp "$out" logs/audit-verify.json
enrolled=$(count '"batch_id":"' logs/devices.json)
provisioned=$(count '"state":"(approved|revoked)"' logs/devices.json)
pending=$(count '"state":"pending"' logs/devices.json)
flagged=$(count '"kind":' logs/flags.json)
kinds=$({ grep -o '"kind":"[^"]*"' logs/flags.json || true; } | cut -d'"' -f4 | sort -u | paste -sd ' ')
hostage=$(count '"id":' logs/unprovisioned.json)
intact=$(json intact <logs/audit-verify.json)
entries=$(json entries <logs/audit-verify.json)
verdict=BROKEN
[ "$intact" = true ] && verdict=verified
row() { printf '    %-16s %-9s %s\n' "$@"; }
row "devices read" "$((read_pass + read_fail))" "by station-01 on lines line-001..003"
row "PASS / FAIL" "$read_pass / $read_fail" "the FAIL (dev-99, sealed) is in no manifest"
row enrolled "$enrolled" "devices in the manifests idprovd imported"
row provisioned "$provisioned" "approved at the site (dev-04 revoked since)"
row pending "$pending" "waiting for an administrator"
row flagged "$flagged" "open flags${kinds:+: $kinds}"
row "hostage report" "$hostage" "manifest devices never provisioned"
row "audit chain" "$verdict" "$entries entries, hash chain recomputed"
echo
printf '    %-7s %-8s %-9s %-9s %-15s %s\n' device factory manifest server key token
for n in 01 02 03 04 05 06 07 08 99; do
	fac=PASS
	[ "$n" = 99 ] && fac=FAIL
	[ "$n" = 08 ] && fac=-
	d=$(tr '{' '\n' <logs/devices.json | grep "\"id\":\"dev-$n\"" || true)
	k=$(json key_sha256 <<<"$d")
	b=$(json batch_id <<<"$d" | sed 's/^null$//')
	tok=$(idprov-agent --config "dev-$n.conf" status --json 2>/dev/null | json token || true)
	printf '    %-7s %-8s %-9s %-9s %-15s %s\n' "dev-$n" "$fac" "${b:--}" \
		"$(json state <<<"$d" | grep . || echo absent)" "${k:+${k:0:12}...}" "${tok:--}"
done
[ "$verdict" = verified ] || { echo "demo: the audit chain does not verify" >&2; exit 1; }
show kill -TERM "$srv_pid"
kill -TERM "$srv_pid"
wait "$srv_pid"
forget "$srv_pid"
ev idprovd "stopped cleanly"
if [ "${#S[@]}" -gt 0 ]; then
	netns_teardown
	ev network "namespaces $ns_site and $ns_dev deleted, their daemons stopped"
fi
echo
echo "idprov demo: done in $(($(date +%s) - t0)) s; nothing left running."
if [ -n "$keep" ]; then
	echo "  look next:"
	printf '    %-10s %s\n' "state" "$work/state (idprovd), station/ (station-01), dev-NN/ (agents), logs/"
	printf '    %-10s %s\n' "credential" "$work/state/admin.token (the administrator's; 0600)"
	printf '    %-10s %s\n' "web UI" "start idprovd on that state, then open https://127.0.0.1:8443/ui/:"
	show "$bin/idprovd" --foreground --state-dir "$work/state" --listen 127.0.0.1:8443 --dnssd=off
else
	echo "  (run samples/demo.sh BIN_DIR DIR to keep the state in DIR: the server's state,"
	echo "  its admin credential and web UI, the station's and the agents' directories)"
fi
