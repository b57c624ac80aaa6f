# shellcheck shell=bash
# tests/lib.sh - helpers for shell tests (sourced). Each check prints ok/not ok;
# t_done prints "RESULT <passed> <failed>" for tests/run-suite and exits.
# Environment from run-suite: IDP_TOP, IDP_BIN, IDP_BUILD, IDP_VARIANT.
set -u
: "${IDP_TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${IDP_BIN:=$IDP_TOP/build/plain/bin}"
T_PASS=0
T_FAIL=0
T_TMP=$(mktemp -d)
T_CLEANUP=()
t_cleanup() {
	local c
	for c in "${T_CLEANUP[@]}"; do eval "$c" || true; done
	rm -rf "$T_TMP"
}
trap t_cleanup EXIT

t_ok() { T_PASS=$((T_PASS + 1)); echo "ok - $*"; }
t_fail() { T_FAIL=$((T_FAIL + 1)); echo "not ok - $*"; }
# t_run DESC CMD... : passes when CMD exits 0
t_run() { local d=$1; shift; if "$@"; then t_ok "$d"; else t_fail "$d (exit $?)"; fi; }
# t_refuse DESC CMD... : passes when CMD exits non-zero
t_refuse() { local d=$1; shift; if "$@"; then t_fail "$d (unexpected success)"; else t_ok "$d"; fi; }
# t_grep DESC PATTERN FILE : passes when FILE contains PATTERN (extended regex)
t_grep() { if grep -qE -- "$2" "$3"; then t_ok "$1"; else t_fail "$1 (no /$2/ in $3)"; sed 's/^/    # /' "$3" | head -20; fi; }
# t_wait FILE PATTERN [N] : until PATTERN (extended regex) shows in FILE (on
# N lines at least, default 1); false after 60 s. For waiting on an event
# before asserting on it.
t_wait() {
	local _
	for _ in $(seq 1 600); do
		[ "$(grep -cE -- "$2" "$1" 2>/dev/null)" -ge "${3:-1}" ] && return 0
		sleep 0.1
	done
	return 1
}
# STR with its last character replaced by one that surely differs (a forged
# secret of the right length): "x" unless it already ends in x, then "y".
t_forge() { local s=$1; if [ "${s: -1}" = x ]; then echo "${s%?}y"; else echo "${s%?}x"; fi; }
# t_peak_rss OUT CMD... : run CMD under /usr/bin/time and return its exit
# status; its peak RSS in KiB goes alone to OUT. Under ASan the quarantine of
# freed memory is off for CMD, so that RSS counts what is live. For tests that
# memory does not grow with the input: two runs compared within a few MiB.
t_peak_rss() {
	local out=$1 opts=${ASAN_OPTIONS:-} rc
	shift
	[ "${IDP_VARIANT:-}" = asan ] && opts="$opts:quarantine_size_mb=0"
	ASAN_OPTIONS=$opts /usr/bin/time -o "$out.time" -f %M "$@"
	rc=$?
	tail -1 "$out.time" >"$out"
	rm -f "$out.time"
	return "$rc"
}

t_done() { echo "RESULT $T_PASS $T_FAIL"; [ "$T_FAIL" -eq 0 ]; exit $?; }
