#!/usr/bin/env bash
# upload.sh - idprov-station upload against a real idprovd on loopback: the
# station authenticates with a client certificate from a CA made here with
# openssl (idprovd --station-ca) and signs with a key trusted through
# idprov-admin station add. A batch imports (201); the same upload again
# imports once (200, "already imported"); with the server down the batch
# stays pending (exit 5) and upload --pending delivers it once the server is
# back; a disabled station is refused (exit 1) and the batch marked refused.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"
. "$(dirname "$0")/station.inc"

st=$T_TMP/state
srv=$T_TMP/srv
pki=$T_TMP/pki
st_pki "$pki" st-1
q() { "$@" >/dev/null 2>&1; }
t_run "client certificate made" [ -s "$pki/client.pem" ]
"$IDP_BIN/idprov-manifest" keygen --type p256 --out "$T_TMP/st.key" >/dev/null

t_run "server starts" srv_start "$srv" --station-ca "$pki/ca.pem"
token=$(cat "$srv/admin.token")
admin() { IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" "$@"; }
t_run "station trusted" q admin station add st-1 "$T_TMP/st.pub"

# batch B with N devices from the test device, closed and signed
make_batch() {
	st_start "$T_TMP/run-$1" run --state "$st" --station st-1 --batch "$1" --product "Sensor X1" \
		--count "$2" --pty --key "$T_TMP/st.key" --hello-window-ms 3000 || return 1
	dev_start "$ST_PTY" --first "$3" --devices "$2"
	wait "$ST_PID"
}
upload() {
	"$IDP_BIN/idprov-station" upload --state "$st" --server "$SRV_URL" --ca "$SRV_CA" \
		--client-cert "$pki/client.pem" --client-key "$pki/client.key" --attempts 2 "$@" \
		>"$T_TMP/up" 2>&1
}
db=$srv/idprov.db
t_run "batch u-1 made" make_batch u-1 3 1
upload --batch u-1
t_run "upload: exit 0" [ $? = 0 ]
t_grep "imported: 201, 3 devices" '^u-1: uploaded 201 devices 3$' "$T_TMP/up"
upload --batch u-1
t_run "same upload again: exit 0" [ $? = 0 ]
t_grep "second upload imported once (200)" '^u-1: uploaded 200 devices 3 \(already imported\)$' "$T_TMP/up"
t_run "one batch, 3 devices in the store" [ "$(sqlite3 -readonly "$db" "select count(*) from batches"):$(sqlite3 -readonly "$db" "select count(*) from devices")" = 1:3 ]
"$IDP_BIN/idprov-station" batches --state "$st" >"$T_TMP/list"
t_grep "batches shows uploaded" '^u-1 +3 devices  uploaded 200' "$T_TMP/list"

srv_stop
t_run "batch u-2 made while the server is down" make_batch u-2 2 10
upload --pending
t_run "server down: exit 5" [ $? = 5 ]
t_grep "not delivered, still pending" 'u-2: not delivered, still pending' "$T_TMP/up"
"$IDP_BIN/idprov-station" batches --state "$st" >"$T_TMP/list"
t_grep "u-2 pending" '^u-2 +2 devices  pending$' "$T_TMP/list"
t_run "server back" srv_start "$srv" --station-ca "$pki/ca.pem"
upload --pending
t_run "upload --pending: exit 0" [ $? = 0 ]
t_grep "u-2 delivered" '^u-2: uploaded 201 devices 2$' "$T_TMP/up"
t_refuse "u-1 not sent again" grep -q '^u-1' "$T_TMP/up"
upload --pending
t_grep "nothing pending" '^no pending batches$' "$T_TMP/up"

t_run "station disabled" q admin station disable st-1
t_run "batch u-3 made" make_batch u-3 1 20
upload --batch u-3
t_run "disabled station: exit 1" [ $? = 1 ]
t_grep "refusal named" 'REFUSED: .*(403|disabled)' "$T_TMP/up"
"$IDP_BIN/idprov-station" batches --state "$st" >"$T_TMP/list"
t_grep "u-3 marked refused" '^u-3 +1 devices  refused: ' "$T_TMP/list"
t_run "store unchanged: 5 devices" [ "$(sqlite3 -readonly "$db" "select count(*) from devices")" = 5 ]
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
