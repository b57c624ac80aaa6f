#!/usr/bin/env bash
# iface.sh - --iface IFACE reads the MAC from /sys/class/net/IFACE/address,
# a sysfs attribute whose size is a whole page whatever it holds: the agent
# reads and parses it (it once refused it as "4096 bytes, max 64", so the
# README's `--iface eth0` could not work). lo's all-zero address is read and
# refused by name; an interface with an address gives a key.
. "$(dirname "$0")/../../lib.sh"

agent() { "$IDP_BIN/idprov-agent" --state-dir "$T_TMP/$1" --id dev-if "${@:2}"; }
quiet() { "$@" >/dev/null 2>&1; }
agent lo --iface lo key >/dev/null 2>"$T_TMP/lo.err"
t_run "--iface lo: refused (exit 3)" [ $? = 3 ]
t_grep "--iface lo: the address was read and named all-zero" \
	'mac from /sys/class/net/lo/address: mac: .*00:00:00:00:00:00.* is the all-zero address' "$T_TMP/lo.err"
t_refuse "--iface lo: not refused for the file's size" grep -q 'bytes, max' "$T_TMP/lo.err"
# Any interface with a real address (a veth, eth0...): the agent starts on it.
for i in /sys/class/net/*; do
	a=$(cat "$i/address" 2>/dev/null) || continue
	case $a in ??:??:??:??:??:??) ;; *) continue ;; esac
	[ "$a" = 00:00:00:00:00:00 ] && continue
	n=${i##*/}
	t_run "--iface $n ($a): the agent makes its key" quiet agent "if-$n" --iface "$n" key
	break
done
agent none --iface no-such-if0 key >/dev/null 2>"$T_TMP/none.err"
t_run "--iface of no interface: exit 3" [ $? = 3 ]
t_grep "--iface of no interface: named" '/sys/class/net/no-such-if0/address: No such file' "$T_TMP/none.err"
t_done
