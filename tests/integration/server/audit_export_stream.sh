#!/usr/bin/env bash
# audit_export_stream.sh - GET /v1/admin/audit/export streams: with a log of
# 120,000 entries of 1 KiB (an export of over 120 MiB) the server's peak RSS
# grows by a fraction of the export (it holds one page of 1000 rows,
# not the log: before, the whole export and a contiguous copy of it were in
# memory), the export is complete (header, every entry once, in order), and
# a client that goes away mid-export ends the stream cleanly: the server
# logs it, frees it (ASan's leak check at exit) and keeps answering.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# Under ASan, freed memory waits in a quarantine (256 MiB by default) and
# would count as growth: keep it small so RSS shows what the server holds.
[ -n "${ASAN_OPTIONS+x}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=4"
n=120000
st=$T_TMP/state
t_run "server starts (creates the database)" srv_start "$st" --threads 1
t_run "server stops" srv_stop
# The entries are written beside the server (stopped): their hashes are
# random, so this log is for size, not for verification (audit.sh verifies
# streamed exports).
sqlite3 "$st/idprov.db" "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $n)
	INSERT INTO audit (seq, at, event, subject, detail, hash, actor)
	SELECT i, 1764526805 + i, 'provision.pending', printf('dev-%06d', i), hex(randomblob(500)),
	randomblob(32), 'server' FROM k;"
t_run "$n entries stored" [ "$(sqlite3 -readonly "$st/idprov.db" 'select count(*) from audit')" = "$n" ]
t_run "server starts again" srv_start "$st" --threads 1
token=$(cat "$st/admin.token")
base=$(rss_kb "$SRV_PID" VmRSS)
code=$(srv_curl --max-time 300 -o "$T_TMP/export.jsonl" -w '%{http_code}' \
	-H "Authorization: Bearer $token" "$SRV_URL/v1/admin/audit/export")
t_run "export: 200" [ "$code" = 200 ]
bytes=$(stat -c %s "$T_TMP/export.jsonl")
peak=$(rss_kb "$SRV_PID" VmHWM)
grow=$(((peak - base) / 1024))
echo "# export ${bytes} bytes; server RSS base ${base} KiB, peak ${peak} KiB, grew ${grow} MiB"
t_run "the export is over 120 MiB" [ "$bytes" -gt $((120 * 1024 * 1024)) ]
t_run "server peak RSS grew by ${grow} MiB (< 40 MiB; the export is 135)" [ "$grow" -lt 40 ]
t_run "export: the header first" [ "$(head -1 "$T_TMP/export.jsonl" | jq -r '.type + " " + (.first_seq | tostring)')" = "export 1" ]
t_run "export: every entry once, in order" \
	[ "$(jq -r 'select(.type == "entry") | .seq' "$T_TMP/export.jsonl" | awk -v n="$n" '$1 != NR {bad = 1} END {print (NR == n && !bad) ? "ok" : "bad " NR}')" = ok ]
code=$(srv_curl -o "$T_TMP/since.jsonl" -w '%{http_code}' -H "Authorization: Bearer $token" \
	"$SRV_URL/v1/admin/audit/export?since=$((1764526805 + n - 5))")
t_run "export since a time: 200" [ "$code" = 200 ]
t_run "  ... starts at that entry, chained on the one before" \
	[ "$(head -1 "$T_TMP/since.jsonl" | jq -r '.first_seq')" = $((n - 5)) ]
t_run "  ... and has the last 6" [ "$(grep -c '"type":"entry"' "$T_TMP/since.jsonl")" = 6 ]

# A client that reads 1 MiB and goes away.
srv_curl -H "Authorization: Bearer $token" "$SRV_URL/v1/admin/audit/export" 2>/dev/null | head -c 1048576 >/dev/null
t_run "the server logs the export cut short" t_wait "$SRV_ERR" 'action=audit_export error="connection closed after'
t_run "the server still answers" [ "$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/health")" = 200 ]
srv_stop
t_run "server stops cleanly (no leak under ASan)" [ "$SRV_RC" = 0 ]
[ "$SRV_RC" = 0 ] || tail -30 "$SRV_ERR"
t_done
