#!/usr/bin/env bash
# body_rate.sh - issue 16: the body deadline is a minimum data rate
# (body-timeout, extended by a second for every body-min-rate bytes
# received; never more than body-timeout of silence), not a total time. With
# --body-timeout 2 --body-min-rate 128, over real TLS on loopback
# (tests/tools/idp_attack pace sends a body at a steady rate):
# - clients sending 16 times faster than the minimum rate, for about four
#   times body-timeout, get their answer: a manifest upload (spooled,
#   imported) and an API body (answered by its handler);
# - clients trickling 16 times slower than the rate are cut (closed without
#   an answer, as every deadline), and each cut is logged
#   (event=conn.deadline phase=body) with its bytes; nothing is imported;
# - a client that sends half its body at once and then stops is cut by the
#   silence bound, not kept for the credit its bytes earned;
# - the server serves other clients meanwhile;
# - with --body-min-rate 0 (the rule before: body-timeout for the whole
#   body) the same honest clients are cut.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

A=${IDP_BUILD:-$IDP_TOP/build/plain}/tools/idp_attack
samples=$IDP_TOP/samples/manifests
st=$T_TMP/state
MIN=128 FAST=2048 SLOW=8 # bytes a second: 16 times above and below the minimum
db=$st/idprov.db
q() { sqlite3 -readonly "$db" "$1"; }
cuts() { grep -c 'event=conn.deadline .*phase=body' "$SRV_ERR"; }

t_run "server starts (body-timeout 2s, body-min-rate $MIN)" srv_start "$st" --body-timeout 2 \
	--body-min-rate $MIN --request-timeout 2 --log-burst 0
token=$(cat "$st/admin.token")
cp "$st/admin.token" "$T_TMP/token"
t_run "trust station-01" "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" \
	--token-file "$T_TMP/token" station add station-01 "$samples/sample-station-p256.pub" >/dev/null
n=240
awk -v n=$n 'BEGIN { for (i = 1; i <= n; i++)
	printf "r-%06d,02:1d:00:00:%02x:%02x,SR-%06dA\n", i, int(i / 256) % 256, i % 256, i }' \
	>"$T_TMP/devs.csv"
m=$T_TMP/rate.manifest
t_run "a $n-device manifest is made" "$IDP_BIN/idprov-manifest" create \
	--key "$samples/sample-station-p256.key" --batch rate-1 --station station-01 --seq 1 \
	--product sx1 --devices "$T_TMP/devs.csv" --format csv --out "$m"
mlen=$(wc -c <"$m")
# An API body the handler reads whole: padding, then an empty object.
head -c 15000 /dev/zero | tr '\0' ' ' >"$T_TMP/pad.json"
printf '{}' >>"$T_TMP/pad.json"
plen=$(wc -c <"$T_TMP/pad.json")
echo "# manifest $mlen bytes, API body $plen bytes: $((mlen / FAST)) s and $((plen / FAST)) s at $FAST B/s"
{
	printf 'POST /v1/admin/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n' "$token"
	printf 'Content-Type: application/vnd.idprov.manifest\r\nIdprov-Signature: %s\r\n' "$(base64 -w0 "$m.sig")"
	printf 'Connection: close\r\nContent-Length: %s\r\n\r\n' "$mlen"
	cat "$m"
} >"$T_TMP/import.req"
{
	printf 'POST /v1/provision HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
	printf 'Connection: close\r\nContent-Length: %s\r\n\r\n' "$plen"
	cat "$T_TMP/pad.json"
} >"$T_TMP/prov.req"

# pace NAME RATE REQUEST: in the background, output in $T_TMP/NAME.
PIDS=()
pace() {
	timeout 150 "$A" pace "$SRV_PORT" "$2" <"$3" >"$T_TMP/$1" 2>&1 &
	PIDS+=($!)
	T_CLEANUP+=("kill $! 2>/dev/null")
}
before=$(cuts)
pace fast.import $FAST "$T_TMP/import.req"
pace fast.prov $FAST "$T_TMP/prov.req"
pace slow.import $SLOW "$T_TMP/import.req"
pace slow.prov $SLOW "$T_TMP/prov.req"
t_run "the two tricklers are cut by the body deadline" \
	t_wait "$SRV_ERR" 'event=conn.deadline .*phase=body' $((before + 2))
t_run "another client is served meanwhile" \
	[ "$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/health")" = 200 ]
for p in "${PIDS[@]}"; do wait "$p"; done
for f in fast.import fast.prov slow.import slow.prov; do echo "# $f: $(cat "$T_TMP/$f")"; done
t_grep "manifest at $FAST B/s (16x the minimum): whole body sent, 201" \
	"^pace sent=$mlen closed=1 status=201$" "$T_TMP/fast.import"
t_run "its $n devices are imported" [ "$(q "select count(*) from devices where batch_id = 'rate-1'")" = $n ]
t_grep "API body at $FAST B/s: whole body sent, answered by its handler (400)" \
	"^pace sent=$plen closed=1 status=400$" "$T_TMP/fast.prov"
t_grep "manifest at $SLOW B/s (1/16 of the minimum): closed without an answer" \
	'^pace sent=[0-9]+ closed=1 status=0$' "$T_TMP/slow.import"
t_grep "API body at $SLOW B/s: closed without an answer" \
	'^pace sent=[0-9]+ closed=1 status=0$' "$T_TMP/slow.prov"
t_run "exactly the two tricklers were cut ($before -> $(cuts))" [ "$(cuts)" -eq $((before + 2)) ]
t_grep "each cut is logged with its bytes and the rate" \
	"event=conn.deadline .*phase=body got=[0-9]+ left=[1-9][0-9]* min_rate=$MIN" "$SRV_ERR"
t_run "one batch only" [ "$(q "select count(*) from batches")" = 1 ]

# Half a body at once, then nothing: its bytes earned ~60 s of credit, but
# the silence bound (body-timeout after the last bytes) cuts it.
before=$(cuts)
head -c $(($(wc -c <"$T_TMP/prov.req") - plen / 2)) "$T_TMP/prov.req" >"$T_TMP/half.req"
out=$("$A" stall "$SRV_PORT" <"$T_TMP/half.req")
t_run "half a body then silence: closed without an answer ($out)" [ "$out" = "stall closed=1 status=0" ]
t_run "... by the body deadline" [ "$(cuts)" -eq $((before + 1)) ]
t_run "server still up" kill -0 "$SRV_PID"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]
t_run "no sanitizer report" [ "$(grep -c 'Sanitizer' "$SRV_ERR")" -eq 0 ]

# body-min-rate 0: body-timeout bounds the whole body (the rule before
# issue 16), and the same honest clients are cut.
t_run "server restarts with body-min-rate 0" srv_start "$st" --body-timeout 2 --body-min-rate 0 \
	--log-burst 0
before=$(cuts)
PIDS=()
pace old.import $FAST "$T_TMP/import.req"
pace old.prov $FAST "$T_TMP/prov.req"
for p in "${PIDS[@]}"; do wait "$p"; done
for f in old.import old.prov; do echo "# $f: $(cat "$T_TMP/$f")"; done
t_grep "body-min-rate 0: the manifest at $FAST B/s is cut" '^pace sent=[0-9]+ closed=1 status=0$' \
	"$T_TMP/old.import"
t_grep "body-min-rate 0: the API body at $FAST B/s is cut" '^pace sent=[0-9]+ closed=1 status=0$' \
	"$T_TMP/old.prov"
t_run "body-min-rate 0: both cuts logged" [ "$(cuts)" -eq $((before + 2)) ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]
t_run "no sanitizer report" [ "$(grep -c 'Sanitizer' "$SRV_ERR")" -eq 0 ]
t_done
