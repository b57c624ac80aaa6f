# shellcheck shell=bash
# netns.sh - network namespaces with their own D-Bus and avahi-daemon, for
# DNS-SD between "machines" on one host: sourced by samples/demo.sh and, via
# tests/netns.inc, by the DNS-SD tests (docs/design.md; measured facts in the
# "mDNS / DNS-SD: Avahi" notes: D-Bus sockets are files, not separated by
# network namespaces, so each namespace has its own bus on its own socket,
# and its avahi-daemon its own /run/avahi-daemon on a private tmpfs). Needs
# root (ip netns add). Set NETNS_DIR (a directory for the buses' sockets,
# settings and logs) before calling; netns_teardown stops every process
# started here by PID and deletes the namespaces (call it from the cleanup).
#   netns_add NAME...        create namespaces (false: not allowed here; the
#                            reason in $NETNS_DIR/netns.err)
#   netns_link NA ADDR_A NB ADDR_B  a veth pair between two namespaces
#   bus NAME NS              a dbus-daemon for NS on $NETNS_DIR/NAME.bus (BUS_PID)
#   avahi NAME NS IFACE      an avahi-daemon on that bus serving IFACE only (AVAHI_PID)
#   in_ns NAME NS CMD...     exec CMD in NS with NAME's bus
#   netns_pair BA NA ADDR_A BB NB ADDR_B  all of the above for two "machines"
#                            (below): what the demo and the tests set up
NETNS_PIDS=()
NETNS=()
NETNS_LINKS=()
netns_kill() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
netns_teardown() {
	local p n
	for p in "${NETNS_PIDS[@]}"; do netns_kill "$p"; done
	for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
	for n in "${NETNS_LINKS[@]}"; do ip link del "$n" 2>/dev/null || true; done # if never moved
	NETNS_PIDS=()
	NETNS=()
	NETNS_LINKS=()
}

# netns_wait FILE ERE: until FILE has a line matching ERE (20 s at most).
netns_wait() {
	local _
	for _ in $(seq 1 200); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "netns: no /$2/ in $1" >&2
	return 1
}

netns_add() {
	local n
	for n in "$@"; do
		ip netns add "$n" 2>"$NETNS_DIR/netns.err" || return 1
		NETNS+=("$n")
		ip -n "$n" link set lo up
	done
}

# netns_link NA ADDR_A/LEN NB ADDR_B/LEN: veth VA in NA, VB in NB (names in
# NETNS_VA, NETNS_VB), up and addressed.
netns_link() {
	NETNS_VA=idpv$$a${#NETNS_LINKS[@]}
	NETNS_VB=idpv$$b${#NETNS_LINKS[@]}
	ip link add "$NETNS_VA" type veth peer name "$NETNS_VB" || return 1
	NETNS_LINKS+=("$NETNS_VA")
	ip link set "$NETNS_VA" netns "$1" && ip link set "$NETNS_VB" netns "$3" &&
		ip -n "$1" addr add "$2" dev "$NETNS_VA" && ip -n "$3" addr add "$4" dev "$NETNS_VB" &&
		ip -n "$1" link set "$NETNS_VA" up && ip -n "$3" link set "$NETNS_VB" up
}

bus() {
	cat >"$NETNS_DIR/$1.dbus.conf" <<EOT
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$NETNS_DIR/$1.bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOT
	ip netns exec "$2" dbus-daemon --nofork --nosyslog --config-file="$NETNS_DIR/$1.dbus.conf" \
		>"$NETNS_DIR/$1.dbus.log" 2>&1 &
	BUS_PID=$!
	NETNS_PIDS+=("$BUS_PID")
	local _
	for _ in $(seq 1 100); do
		[ -S "$NETNS_DIR/$1.bus" ] && return 0
		sleep 0.1
	done
	return 1
}

# Its /run/avahi-daemon is on a tmpfs of its own (over /run in the
# namespace's private mount namespace, so the host's /run is not touched).
avahi() {
	cat >"$NETNS_DIR/$1.avahi.conf" <<EOT
[server]
host-name=idpd-$1-$$
use-ipv4=yes
use-ipv6=no
allow-interfaces=$3
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
EOT
	# shellcheck disable=SC2016 # $0 is sh -c's
	DBUS_SYSTEM_BUS_ADDRESS=unix:path=$NETNS_DIR/$1.bus ip netns exec "$2" sh -c \
		'mount -t tmpfs -o mode=0755 idpd-run /run && mkdir /run/avahi-daemon &&
		 exec avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title -f "$0"' \
		"$NETNS_DIR/$1.avahi.conf" >"$NETNS_DIR/$1.avahi.log" 2>&1 &
	AVAHI_PID=$!
	NETNS_PIDS+=("$AVAHI_PID")
	netns_wait "$NETNS_DIR/$1.avahi.log" 'Server startup complete'
}

# in_ns NAME NS CMD...: exec, so that "in_ns ... &" makes $! the command's PID.
in_ns() {
	local b=$1 n=$2
	shift 2
	DBUS_SYSTEM_BUS_ADDRESS=unix:path=$NETNS_DIR/$b.bus exec ip netns exec "$n" "$@"
}

# netns_pair BA NA ADDR_A/LEN BB NB ADDR_B/LEN: namespaces NA and NB joined
# by a veth pair (ADDR_A on NETNS_VA in NA, ADDR_B on NETNS_VB in NB), in
# each a dbus-daemon (bus BA in NA, BB in NB) and an avahi-daemon serving its
# veth end only (PIDs NETNS_AVAHI_A, NETNS_AVAHI_B). Returns 2 when no
# namespace may be made here (the reason in $NETNS_DIR/netns.err, nothing
# made), 1 when a later step failed (said on stderr; netns_teardown undoes
# what was made).
netns_pair() {
	netns_add "$2" || return 2
	netns_add "$5" || { echo "netns: namespace $5: $(cat "$NETNS_DIR/netns.err")" >&2; return 1; }
	netns_link "$2" "$3" "$5" "$6" || { echo "netns: no veth pair $2-$5" >&2; return 1; }
	if ! bus "$1" "$2" || ! bus "$4" "$5"; then
		echo "netns: no dbus-daemon (logs in $NETNS_DIR)" >&2
		return 1
	fi
	avahi "$1" "$2" "$NETNS_VA" || return 1
	# shellcheck disable=SC2034 # for the caller
	NETNS_AVAHI_A=$AVAHI_PID
	avahi "$4" "$5" "$NETNS_VB" || return 1
	# shellcheck disable=SC2034 # for the caller
	NETNS_AVAHI_B=$AVAHI_PID
}
