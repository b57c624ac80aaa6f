#!/usr/bin/env bash
# oob_import_stream.sh - idprov-admin oob import checks its CSV a line at a
# time, twice (all lines checked before any is sent, then sent): its peak
# memory does not grow with the file. Two files whose last line is bad (so
# nothing is sent and no server is needed), 20 lines and about 12 MiB: both
# refused naming their last line, and the large one's peak RSS
# (t_peak_rss) within 4 MiB of the small one's (holding the file would
# add 12 MiB).
. "$(dirname "$0")/../../lib.sh"

# csv N FILE: N good lines, then one whose secret holds a space.
csv() {
	awk -v n="$1" 'BEGIN { print "device_id,secret"
		for (i = 1; i <= n; i++) printf "dev-%08d,Lb%08d-7Q2X-a9!-padding-padding-padding\n", i, i
		print "dev-bad,has space" }' >"$2"
}
# import_peak N: import a file of N good lines and a bad one; prints the
# peak RSS in KiB; the refusal in $T_TMP/err.N.
import_peak() {
	csv "$1" "$T_TMP/s$1.csv"
	IDPROV_ADMIN_TOKEN=unused t_peak_rss "$T_TMP/rss$1" "$IDP_BIN/idprov-admin" \
		--server https://127.0.0.1:1 --ca /dev/null oob import "$T_TMP/s$1.csv" \
		>/dev/null 2>"$T_TMP/err.$1"
	echo "$? $(cat "$T_TMP/rss$1")"
}
read -r rc small < <(import_peak 20)
t_run "20 lines and a bad one: refused (exit 3)" [ "$rc" = 3 ]
t_grep "20 lines: the bad line named" "s20.csv:22: oob secret: byte 3 is not printable" \
	"$T_TMP/err.20"
t_grep "20 lines: nothing entered" 's20.csv: 0 secrets entered' "$T_TMP/err.20"
read -r rc large < <(import_peak 200000)
t_run "200,000 lines and a bad one: refused (exit 3)" [ "$rc" = 3 ]
t_grep "200,000 lines: the bad line named" \
	"s200000.csv:200002: oob secret: byte 3 is not printable" "$T_TMP/err.200000"
echo "# measured: peak RSS $small KiB (20 lines), $large KiB (200,000 lines," \
	"$(stat -c %s "$T_TMP/s200000.csv") bytes)"
t_run "peak RSS of the large import within 4 MiB of the small one's" \
	[ "$large" -le $((small + 4096)) ]
t_done
