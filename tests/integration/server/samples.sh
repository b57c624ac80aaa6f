#!/usr/bin/env bash
# samples.sh - the committed sample manifests are one coherent set: a site
# that trusts the sample stations imports all three (station-01 seq 1 -> 2,
# station-02 seq 1) into one server, 12 distinct devices preloaded, and the
# chain of station-01 shows seq 2 following seq 1.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

samples=$IDP_TOP/samples/manifests
st=$T_TMP/state
t_run "server starts" srv_start "$st"
cp "$st/admin.token" "$T_TMP/token"
db=$st/idprov.db
cli() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/token" \
	"$@" >"$T_TMP/cli" 2>&1; }

t_run "trust station-01 by key" cli station add station-01 "$samples/sample-station-p256.pub"
t_run "trust station-02 by key" cli station add station-02 "$samples/sample-station-ed25519.pub"
t_run "trust the sample factory CA (for the cms sample)" cli ca add "$samples/sample-factory-ca.pem"
for m in sample-es256 sample-cms sample-ed25519; do
	if cli import "$samples/$m.manifest"; then t_ok "import $m"; else
		t_fail "import $m: $(cat "$T_TMP/cli")"; fi
done
q() { sqlite3 -readonly "$db" "$1"; }
t_run "12 devices preloaded" [ "$(q "select count(*) from devices where state='preloaded'")" = 12 ]
t_run "12 distinct serials" [ "$(q "select count(distinct serial) from devices")" = 12 ]
t_run "station-01 chain: seq 1 then 2" \
	[ "$(q "select group_concat(sequence || ':' || state) from (select sequence, state from batches where station_id='station-01' order by sequence)")" = 1:imported,2:imported ]
t_run "the cms sample verifies against the factory CA" "$IDP_BIN/idprov-manifest" verify \
	"$samples/sample-cms.manifest" --ca "$samples/sample-factory-ca.pem" -q
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]
t_done
