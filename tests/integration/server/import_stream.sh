#!/usr/bin/env bash
# import_stream.sh - issue 17: a manifest upload streams to a spool file
# (unnamed, in the state directory) and is verified over its digest before
# its records are read back in one transaction. A manifest whose signature
# fails only at its very end, a truncated one, an oversized one and an upload
# cut off by the client leave the database unchanged with a clear error; the
# spool exists while the body arrives and is gone afterwards; a server killed
# (-9) during an import keeps the batch whole or not at all, and imports it
# whole after a restart; curl's "Expect: 100-continue" is answered.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

samples=$IDP_TOP/samples/manifests
probe=$IDP_BUILD/tools/idp_probe
st=$T_TMP/state
n=20000
t_run "server starts" srv_start "$st" --max-manifest 4M --body-timeout 5
token=$(cat "$st/admin.token")
cp "$st/admin.token" "$T_TMP/token"
db=$st/idprov.db
cli() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/token" \
	"$@" >"$T_TMP/cli" 2>&1; }
q() { sqlite3 -readonly "$db" "$1"; }
snap() { q "select (select count(*) from devices) || '/' || (select count(*) from batches) || '/' || (select count(*) from audit where event = 'batch.imported')"; }
# Unnamed spool files the server holds open in its state directory.
spools() { find "/proc/$SRV_PID/fd" -lname "$st/*(deleted)" 2>/dev/null | wc -l; }
wait_spools() { # COUNT: until the server holds COUNT spools (bounded: 60 s)
	local _
	for _ in $(seq 1 600); do
		[ "$(spools)" -eq "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
upload() { # FILE SIG [CURL ARGS...]: POST /v1/admin/import; prints the status
	local f=$1 s=$2
	shift 2
	srv_curl -o "$T_TMP/out" -w '%{http_code}' -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/vnd.idprov.manifest' \
		-H "Idprov-Signature: $(base64 -w0 "$s")" "$@" --data-binary @"$f" \
		"$SRV_URL/v1/admin/import"
}

t_run "trust station-01" cli station add station-01 "$samples/sample-station-p256.pub"
devlist() { # N ID-PREFIX MAC-BYTE SERIAL-PREFIX: a device list (csv), serials end in "A"
	awk -v n="$1" -v p="$2" -v b="$3" -v s="$4" 'BEGIN { for (i = 1; i <= n; i++)
		printf "%s%06d,02:%s:%02x:%02x:%02x:%02x,%s%06dA\n", p, i, b,
			int(i / 16777216) % 256, int(i / 65536) % 256, int(i / 256) % 256, i % 256, s, i }'
}
devlist $n dev- 1b SN- >"$T_TMP/devs.csv"
m=$T_TMP/big.manifest
t_run "a $n-device manifest is made" "$IDP_BIN/idprov-manifest" create \
	--key "$samples/sample-station-p256.key" --batch big-1 --station station-01 --seq 1 \
	--product sx1 --devices "$T_TMP/devs.csv" --format csv --out "$m"
echo "# manifest: $(wc -c <"$m") bytes"
before=$(snap)

# One byte of the last record changed (still a well-formed manifest): only
# the signature, checked over the digest of the whole body, can tell.
sed '$ s/A"}$/B"}/' "$m" >"$T_TMP/last.manifest"
t_refuse "last-byte change made a different body" cmp -s "$m" "$T_TMP/last.manifest"
t_run "bad signature at the end of $n records: 403" [ "$(upload "$T_TMP/last.manifest" "$m.sig")" = 403 ]
t_grep "the error names the signature" 'signature: does not match the body' "$T_TMP/out"
t_run "bad signature at the end: database unchanged" [ "$(snap)" = "$before" ]

head -n $((n / 2)) "$m" >"$T_TMP/half.manifest"
t_run "truncated manifest (half the lines): refused" [ "$(upload "$T_TMP/half.manifest" "$m.sig")" = 403 ]
t_grep "truncated: the error names the signature" 'signature: does not match the body' "$T_TMP/out"
t_run "truncated manifest: database unchanged" [ "$(snap)" = "$before" ]

head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' 'x' >"$T_TMP/huge"
t_run "manifest over max-manifest (4M): 413" [ "$(upload "$T_TMP/huge" "$m.sig")" = 413 ]
t_grep "oversized: the error names the limit" 'max 4194304' "$T_TMP/out"
t_run "oversized manifest: database unchanged" [ "$(snap)" = "$before" ]

# The client stops half-way through the body: the spool holds what came,
# then the body deadline closes the connection and the spool goes with it.
len=$(wc -c <"$m")
{
	printf 'POST /v1/admin/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n' "$token"
	printf 'Content-Type: application/vnd.idprov.manifest\r\nIdprov-Signature: %s\r\n' "$(base64 -w0 "$m.sig")"
	printf 'Content-Length: %s\r\n\r\n' "$len"
	head -c $((len / 2)) "$m"
} >"$T_TMP/cut.req"
"$probe" raw "$SRV_PORT" <"$T_TMP/cut.req" >"$T_TMP/cut.out" 2>&1 &
probe_pid=$!
T_CLEANUP+=("kill $probe_pid 2>/dev/null")
t_run "a cut-off upload is spooled to an unnamed file in the state directory" wait_spools 1
t_run "the body deadline closes the cut-off upload" t_wait "$SRV_ERR" 'event=conn.deadline .*phase=body'
t_run "its spool is gone" wait_spools 0
wait "$probe_pid" 2>/dev/null
t_run "cut-off upload: database unchanged" [ "$(snap)" = "$before" ]

# A client that asks before sending the body gets "100 Continue" from the
# filter (the head is held back from evhttp until the body is spooled).
{
	printf 'POST /v1/admin/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n' "$token"
	printf 'Content-Type: application/vnd.idprov.manifest\r\nIdprov-Signature: %s\r\n' "$(base64 -w0 "$m.sig")"
	printf 'Expect: 100-continue\r\nContent-Length: %s\r\n\r\n' "$len"
} >"$T_TMP/ask.req"
"$probe" raw "$SRV_PORT" <"$T_TMP/ask.req" >"$T_TMP/ask.out" 2>&1
t_grep "Expect: 100-continue is answered before the body" '^HTTP/1.1 100 Continue' "$T_TMP/ask.out"
t_run "the unsent body imports nothing" [ "$(snap)" = "$before" ]
t_run "upload with Expect: 100-continue: 201" [ "$(upload "$m" "$m.sig" -H 'Expect: 100-continue')" = 201 ]
t_grep "the answer counts every device" "\"devices\":$n" "$T_TMP/out"
t_run "$n devices preloaded" [ "$(q "select count(*) from devices where state='preloaded'")" = $n ]
t_run "idprov-admin import of the same file: not created again" cli --json import "$m"
t_grep "second import not created" '"created":false' "$T_TMP/cli"
t_run "no spool left open" [ "$(spools)" -eq 0 ]
t_refuse "no spool file left in the state directory" bash -c "ls -A '$st' | grep -q upload"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]

# kill -9 while a second, larger batch is imported: whatever the moment, the
# batch is there whole or not at all, and a confirmed one is always there.
n2=60000
devlist $n2 k- 1c SK- >"$T_TMP/devs2.csv"
m2=$T_TMP/big2.manifest
t_run "a $n2-device second manifest is made" "$IDP_BIN/idprov-manifest" create \
	--key "$samples/sample-station-p256.key" --batch big-2 --station station-01 --seq 2 \
	--prev "$m" --product sx1 --devices "$T_TMP/devs2.csv" --format csv --out "$m2"
t_run "server restarts" srv_start "$st"
upload "$m2" "$m2.sig" >"$T_TMP/kill.code" 2>/dev/null &
up_pid=$!
t_run "the upload reaches the import" t_wait "$SRV_ERR" 'event=batch.upload '
srv_kill "$SRV_PID"
wait "$up_pid" 2>/dev/null
got=$(q "select count(*) from devices where batch_id = 'big-2'")/$(q "select count(*) from batches where id = 'big-2'")
echo "# killed after the upload: answer '$(cat "$T_TMP/kill.code")', batch big-2 devices/rows: $got"
t_run "killed during the import: the batch whole or absent ($got)" \
	bash -c "[ '$got' = 0/0 ] || [ '$got' = $n2/1 ]"
if [ "$(cat "$T_TMP/kill.code")" = 201 ]; then
	t_run "a confirmed import survived the kill" [ "$got" = $n2/1 ]
fi
t_run "the first batch is untouched" [ "$(q "select count(*) from devices where batch_id = 'big-1'")" = $n ]
t_run "database intact" [ "$(q 'pragma integrity_check')" = ok ]
t_run "server restarts after the kill" srv_start "$st"
code=$(upload "$m2" "$m2.sig")
t_run "the batch is imported whole after the restart (got $code)" \
	bash -c "[ '$code' = 201 ] || [ '$code' = 200 ]"
t_run "$n2 devices of the second batch" [ "$(q "select count(*) from devices where batch_id = 'big-2'")" = $n2 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]
t_done
