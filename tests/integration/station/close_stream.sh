#!/usr/bin/env bash
# close_stream.sh - idprov-station close reads the batch's journal a piece
# at a time and writes the manifest to a temporary file as it signs it
# (enroll/batch.c walk, enroll/manifest_build.h enr_manifest_out): its peak
# memory does not grow with the batch. A journal of 200 devices and one of
# 60,000 (about 14 MiB; journal-gen writes them) are closed; the larger
# close's peak RSS (t_peak_rss) must stay within 4 MiB of the
# smaller's (reading the journal whole alone would add 14 MiB). Both manifests are whole: the printed SHA-256 is the file's, one
# line per device after the header, no temporary file left beside them.
. "$(dirname "$0")/../../lib.sh"

gen=$IDP_BUILD/tools/journal-gen
key=$IDP_TOP/samples/manifests/sample-station-p256.key
# close_peak N: close a batch of N devices in its own state directory;
# prints the peak RSS in KiB.
close_peak() {
	local st=$T_TMP/s$1
	mkdir -p "$st/batches"
	"$gen" "$st/batches/b-$1.journal" "b-$1" station-01 sx1 "$1" || return 1
	t_peak_rss "$T_TMP/rss$1" "$IDP_BIN/idprov-station" close --state "$st" \
		--batch "b-$1" --key "$key" >"$T_TMP/close$1" 2>&1 || return 1
	cat "$T_TMP/rss$1"
}
# whole N: the manifest of N devices is complete and is what was printed.
whole() {
	local m=$T_TMP/s$1/batches/b-$1.manifest
	grep -q "^$m: $1 devices, seq 1, sha256 $(sha256sum <"$m" | cut -c1-64): pending upload$" \
		"$T_TMP/close$1" &&
		[ "$(wc -l <"$m")" = $(($1 + 1)) ] && [ -s "$m.sig" ] &&
		[ -z "$(find "$T_TMP/s$1/batches" -name '*.tmp-*')" ]
}
small=$(close_peak 200)
t_run "200 devices closed" [ -n "$small" ]
t_run "200 devices: the manifest is whole" whole 200
large=$(close_peak 60000)
t_run "60,000 devices closed" [ -n "$large" ]
t_run "60,000 devices: the manifest is whole" whole 60000
echo "# measured: peak RSS $small KiB (200 devices), $large KiB (60,000 devices," \
	"journal $(stat -c %s "$T_TMP/s60000/batches/b-60000.journal") bytes)"
t_run "peak RSS of the large close within 4 MiB of the small one's" \
	[ "$large" -le $((small + 4096)) ]

# The window and a torn tail: zeros past the window's end (a size grown
# over blocks that never got their data) are a torn tail; zeros followed
# by anything else are damage, named at the file's offset.
st=$T_TMP/torn
mkdir -p "$st/batches"
"$gen" "$st/batches/b-t.journal" b-t station-01 sx1 300 || t_fail "journal-gen"
good=$(stat -c %s "$st/batches/b-t.journal")
cp "$st/batches/b-t.journal" "$T_TMP/b-t.journal"
head -c 200000 /dev/zero >>"$st/batches/b-t.journal"
"$IDP_BIN/idprov-station" close --state "$st" --batch b-t --key "$key" >/dev/null
t_run "200 KB of zeros after the journal: a torn tail, closed" [ $? = 0 ]
t_run "torn tail: all 300 devices" [ "$(wc -l <"$st/batches/b-t.manifest")" = 301 ]
mkdir -p "$T_TMP/dmg/batches"
{ cat "$T_TMP/b-t.journal"; head -c 200000 /dev/zero; printf x; } >"$T_TMP/dmg/batches/b-t.journal"
t_refuse "zeros then a byte: refused" "$IDP_BIN/idprov-station" close --state "$T_TMP/dmg" \
	--batch b-t --key "$key" 2>"$T_TMP/dmg.err"
t_grep "the damage named at its offset in the file" \
	"b-t.journal: journal: offset $good: damaged entry before further data" "$T_TMP/dmg.err"
t_refuse "no manifest for the damaged journal" test -e "$T_TMP/dmg/batches/b-t.manifest"
t_done
