#!/usr/bin/env bash
# upload_stream.sh - issue 17: idprov-station upload and idprov-admin import
# send a manifest from its file as they read it (formats/io/httpc.h
# fio_httpc_do_file), against a real idprovd on loopback.
# - Memory: a manifest several MiB larger than what the client process may
#   hold uploads; the client is limited to what a 10-device upload needs
#   plus 4 MiB (plain build: `ulimit -v`, found by bisection in this run;
#   ASan, whose shadow memory rules out `ulimit -v`: no single allocation
#   over 2 MiB, which a body held in memory needs).
# - Retry: a relay (idp_probe cut) resets the first connection in the middle
#   of the body; the client sends the file again from its start on a new
#   connection, and the batch is imported exactly once (station and admin).
# - Damaged files: a truncated manifest (cut inside a line, or a whole line
#   short), a missing one and a directory give an error naming the file,
#   and the server imports nothing.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"
. "$(dirname "$0")/station.inc"

samples=$IDP_TOP/samples/manifests
probe=$IDP_BUILD/tools/idp_probe
st=$T_TMP/state
srv=$T_TMP/srv
pki=$T_TMP/pki
mkdir -p "$st/batches"
st_pki "$pki" station-01
t_run "client certificate made" [ -s "$pki/client.pem" ]
t_run "server starts" srv_start "$srv" --station-ca "$pki/ca.pem"
token=$(cat "$srv/admin.token")
cp "$srv/admin.token" "$T_TMP/token"
db=$srv/idprov.db
q() { sqlite3 -readonly "$db" "$1"; }
snap() { q "select (select count(*) from devices) || '/' || (select count(*) from batches) || '/' || (select count(*) from audit where event = 'batch.imported')"; }
t_run "station trusted" bash -c "IDPROV_ADMIN_TOKEN=$token '$IDP_BIN/idprov-admin' --server '$SRV_URL' \
	--ca '$SRV_CA' station add station-01 '$samples/sample-station-p256.pub' >/dev/null"

devlist() { # N ID-PREFIX MAC-BYTE SERIAL-PREFIX
	awk -v n="$1" -v p="$2" -v b="$3" -v s="$4" 'BEGIN { for (i = 1; i <= n; i++)
		printf "%s%06d,02:%s:%02x:%02x:%02x:%02x,%s%06dA\n", p, i, b,
			int(i / 16777216) % 256, int(i / 65536) % 256, int(i / 256) % 256, i % 256, s, i }'
}
# manifest BATCH SEQ N MAC-BYTE [PREV]: BATCH's signed manifest in the
# station's state (after manifest PREV)
manifest() {
	devlist "$3" "$1-" "$4" "S$1-" >"$T_TMP/$1.csv"
	"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" --batch "$1" \
		--station station-01 --seq "$2" --product sx1 --devices "$T_TMP/$1.csv" --format csv \
		${5:+--prev "$st/batches/$5.manifest"} --out "$st/batches/$1.manifest" >/dev/null
}
# upload URL BATCH [STATION ARGS...]: exit status; output in $T_TMP/up
upload() {
	local url=$1 b=$2
	shift 2
	"$IDP_BIN/idprov-station" upload --state "$st" --server "$url" --ca "$SRV_CA" \
		--client-cert "$pki/client.pem" --client-key "$pki/client.key" --batch "$b" "$@" \
		>"$T_TMP/up" 2>&1
}
# import URL FILE: exit status; output in $T_TMP/imp
import() {
	"$IDP_BIN/idprov-admin" --server "$1" --ca "$SRV_CA" --token-file "$T_TMP/token" --json \
		import "$2" >"$T_TMP/imp" 2>&1
}

n=200000
t_run "a 10-device manifest made" manifest small 1 10 11
t_run "a $n-device manifest made" manifest big 2 $n 12 small
size=$(wc -c <"$st/batches/big.manifest")
echo "# big manifest: $size bytes"
t_run "the big manifest is over 12 MiB" [ "$size" -gt $((12 << 20)) ]

# ---- memory: the client may not hold the body
if [ "$IDP_VARIANT" = asan ]; then
	limited() { ASAN_OPTIONS="${ASAN_OPTIONS:-}:max_allocation_size_mb=2:allocator_may_return_null=1" "$@"; }
	t_run "asan: a 10-device upload under the allocation limit" limited upload "$SRV_URL" small
	t_grep "asan: small batch imported" '^small: uploaded 201 devices 10$' "$T_TMP/up"
else
	# ok_at KIB: the small upload succeeds with at most KIB of address space
	ok_at() { (ulimit -v "$1" && upload "$SRV_URL" small); }
	lo=8192 hi=1048576
	t_run "the small upload works with 1 GiB of address space" ok_at $hi
	while [ $((hi - lo)) -gt 1024 ]; do
		mid=$(((lo + hi) / 2))
		if ok_at $mid; then hi=$mid; else lo=$mid; fi
	done
	echo "# a 10-device upload needs $hi KiB of address space"
	limited() { (ulimit -v $((hi + 4096)) && "$@"); }
fi
# A client that sent the whole body again (it may, on a loaded machine: a
# lost answer) is answered "already imported" (200): what must hold is that
# the batch was imported exactly once (the database's counts and audit).
imported() { echo "^$1: uploaded (201 devices $2|200 devices $2 \\(already imported\\))\$"; }
before=$(snap)
limited upload "$SRV_URL" big
rc=$?
t_run "a $size-byte manifest uploads under the limit (exit $rc)" [ "$rc" -eq 0 ]
t_grep "big batch imported" "$(imported big $n)" "$T_TMP/up"
t_run "$n devices stored" [ "$(q "select count(*) from devices where batch_id = 'big'")" = $n ]
t_run "big: imported once, one audit entry" [ "$(snap)" = "$(echo "$before" |
	awk -F/ -v n=$n '{print $1 + n "/" $2 + 1 "/" $3 + 1}')" ]
limited import "$SRV_URL" "$st/batches/big.manifest"
rc=$?
t_run "idprov-admin import of it under the same limit (exit $rc)" [ "$rc" -eq 0 ]
t_grep "admin import: already imported" '"created":false' "$T_TMP/imp"

# ---- retry: the first connection is cut in the middle of the body
relay() { # CUT-BYTES: a relay to the server in the background; sets RELAY_PORT
	coproc RELAY { "$probe" cut "$SRV_PORT" "$1"; }
	relay_pid=$RELAY_PID
	T_CLEANUP+=("kill $relay_pid 2>/dev/null")
	local line
	read -r -t 20 line <&"${RELAY[0]}"
	RELAY_PORT=${line#port=}
	[ -n "$RELAY_PORT" ]
}
relay_stop() { # the relay's report in $T_TMP/relay
	eval "exec ${RELAY[1]}>&-"
	cat <&"${RELAY[0]}" >"$T_TMP/relay"
	wait "$relay_pid" 2>/dev/null
}
t_run "a second $n-device manifest made" manifest again 3 $n 13 big
size=$(wc -c <"$st/batches/again.manifest")
before=$(snap)
relay $((size / 2))
t_run "relay up" [ -n "$RELAY_PORT" ]
upload "https://127.0.0.1:$RELAY_PORT" again --attempts 3
rc=$?
relay_stop
t_run "station upload cut half-way, then sent again: exit $rc" [ "$rc" -eq 0 ]
t_grep "imported (201, or 200 to a copy sent once more)" "$(imported again $n)" "$T_TMP/up"
t_grep "the first connection was cut" '^conn 1 up=[0-9]+ cut$' "$T_TMP/relay"
up2=$(awk '/^conn 2 /{sub("up=", "", $3); print $3}' "$T_TMP/relay")
t_run "the second connection carried the whole body again ($up2 > $size)" [ "${up2:-0}" -gt "$size" ]
t_run "one batch, $n devices, one audit entry more" [ "$(snap)" = "$(echo "$before" |
	awk -F/ -v n=$n '{print $1 + n "/" $2 + 1 "/" $3 + 1}')" ]

t_run "a third manifest made" manifest adm 4 50000 14 again
size=$(wc -c <"$st/batches/adm.manifest")
before=$(snap)
relay $((size / 2))
t_run "relay up again" [ -n "$RELAY_PORT" ]
import "https://127.0.0.1:$RELAY_PORT" "$st/batches/adm.manifest"
rc=$?
relay_stop
t_run "admin import cut half-way, then sent again: exit $rc" [ "$rc" -eq 0 ]
t_grep "admin import created the batch" '"created":true' "$T_TMP/imp"
t_grep "the admin's first connection was cut" '^conn 1 up=[0-9]+ cut$' "$T_TMP/relay"
t_grep "and a second one made" '^conn 2 up=' "$T_TMP/relay"
t_run "one batch more, imported once" [ "$(snap)" = "$(echo "$before" |
	awk -F/ '{print $1 + 50000 "/" $2 + 1 "/" $3 + 1}')" ]

# ---- damaged files: named, and nothing imported
t_run "a fourth manifest made" manifest torn 5 50000 15 adm
cp "$st/batches/torn.manifest" "$T_TMP/whole.manifest"
size=$(wc -c <"$st/batches/torn.manifest")
truncate -s $((size - 10)) "$st/batches/torn.manifest"
before=$(snap)
requests() { grep -c 'event=http.request .*path=/v1/\(batches\|admin/import\)' "$SRV_ERR"; }
reqs=$(requests)
upload "$SRV_URL" torn
rc=$?
t_run "manifest cut inside its last line: station exit 3 (local), got $rc" [ "$rc" -eq 3 ]
t_grep "the error names the file and the cut" "torn: $st/batches/torn.manifest: line 50001: no LF at the end" "$T_TMP/up"
t_run "nothing imported" [ "$(snap)" = "$before" ]
"$IDP_BIN/idprov-station" batches --state "$st" >"$T_TMP/list"
t_refuse "the torn batch is not marked uploaded" grep -q '^torn .*uploaded' "$T_TMP/list"
head -n -1 "$T_TMP/whole.manifest" >"$st/batches/torn.manifest"
upload "$SRV_URL" torn
t_grep "a whole line short: the count is named" "torn.manifest: manifest: header count is 50000 but 49999 records follow" "$T_TMP/up"
t_run "still nothing imported" [ "$(snap)" = "$before" ]
import "$SRV_URL" "$st/batches/torn.manifest"
rc=$?
t_run "admin import of the short file: exit 3 (local), got $rc" [ "$rc" -eq 3 ]
t_grep "admin: the error names the file" "^idprov-admin: $st/batches/torn.manifest: manifest: header count" "$T_TMP/imp"
t_run "nothing imported by the admin either" [ "$(snap)" = "$before" ]
t_run "no cut upload reached the server as a whole request" [ "$(requests)" = "$reqs" ]
rm "$st/batches/torn.manifest"
upload "$SRV_URL" torn
rc=$?
t_run "missing manifest: exit 1, got $rc" [ "$rc" -eq 1 ]
t_grep "missing: named" "$st/batches/torn.manifest: No such file" "$T_TMP/up"
mkdir "$st/batches/torn.manifest"
upload "$SRV_URL" torn
t_grep "a directory: named" "$st/batches/torn.manifest: not a regular file" "$T_TMP/up"
t_run "database unchanged" [ "$(snap)" = "$before" ]
mv "$T_TMP/whole.manifest" "$T_TMP/fixed.manifest"
rmdir "$st/batches/torn.manifest" && mv "$T_TMP/fixed.manifest" "$st/batches/torn.manifest"
upload "$SRV_URL" torn
t_grep "the whole file then uploads" "$(imported torn 50000)" "$T_TMP/up"
t_refuse "no gap: every batch before it was imported" grep -q 'gap flagged' "$T_TMP/up"
t_run "never a 500" [ "$(grep -c 'event=http.request .*status=500' "$SRV_ERR")" = 0 ]
t_refuse "no sanitizer report" grep -qE 'AddressSanitizer|runtime error' "$SRV_ERR"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
