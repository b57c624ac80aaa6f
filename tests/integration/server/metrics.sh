#!/usr/bin/env bash
# metrics.sh - GET /metrics over real HTTPS: refused without the admin
# credential; with it, Prometheus text that `promtool check metrics` (the
# Debian prometheus package: an independent parser and linter) accepts, with
# the decisions, refusals by reason, devices, open flags and HTTP answers that
# real requests made (a device provisioned and one refused by the agent).
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

A=$IDP_BIN/idprov-agent
samples=$IDP_TOP/samples/manifests
t_run "server starts" srv_start "$T_TMP/srv"
token=$(cat "$T_TMP/srv/admin.token")
adm() { IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" "$@"; }
agent() {
	local d=$1
	shift
	"$A" --state-dir "$T_TMP/$d" "$@" 2>>"$T_TMP/$d.log"
}
scrape() { srv_curl -o "$T_TMP/metrics" -D "$T_TMP/headers" -w '%{http_code}' -H "Authorization: Bearer $token" "$SRV_URL/metrics"; }
# value NAME{LABELS}: the sample's value ("" when absent).
value() { awk -v k="$1" '$1 == k { print $2 }' "$T_TMP/metrics"; }

t_run "no credential: 401" [ "$(srv_curl -o "$T_TMP/out" -w '%{http_code}' "$SRV_URL/metrics")" = 401 ]
t_grep "no credential: JSON error" '"code":"unauthorized"' "$T_TMP/out"
t_run "wrong credential: 401" [ "$(srv_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(t_forge "$token")" "$SRV_URL/metrics")" = 401 ]

# A manifest with a preloaded key (provisions) and a MAC-only device (a
# claim with another MAC is refused).
agent m1 key --id dev-m1 --mac 02:00:5e:00:c1:01 >"$T_TMP/m1.pub.pem"
cat >"$T_TMP/devs.csv" <<EOF2
dev-m1,02:00:5e:00:c1:01,SM1-0001,$T_TMP/m1.pub.pem
dev-m2,02:00:5e:00:c1:02,SM1-0002,
EOF2
t_run "manifest made" "$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" \
	--batch b-metrics-1 --station station-01 --seq 1 --product sx1 --devices "$T_TMP/devs.csv" \
	--format csv --out "$T_TMP/b.manifest" >/dev/null
t_run "station trusted" adm station add station-01 "$samples/sample-station-p256.pub" >/dev/null
t_run "manifest imported" adm import "$T_TMP/b.manifest" --sig "$T_TMP/b.manifest.sig" >/dev/null
t_run "dev-m1 provisions" agent m1 run --once --id dev-m1 --mac 02:00:5e:00:c1:01 \
	--server "$SRV_URL" --ca "$SRV_CA"
t_refuse "dev-m2 with another MAC is refused" agent m2 run --once --id dev-m2 \
	--mac 02:00:5e:00:ff:02 --server "$SRV_URL" --ca "$SRV_CA"
reason=$(sqlite3 -readonly "$T_TMP/srv/idprov.db" "select detail from audit where event = 'provision.refused' and subject = 'dev-m2' limit 1")
t_run "the refusal is audited with a reason" [ -n "$reason" ]
flagkind=$(sqlite3 -readonly "$T_TMP/srv/idprov.db" "select kind from flags where cleared = 0 limit 1")

t_run "scrape: 200" [ "$(scrape)" = 200 ]
t_grep "scrape: Prometheus text content type" '^Content-Type: text/plain; version=0.0.4; charset=utf-8' "$T_TMP/headers"
t_run "promtool check metrics accepts it" bash -c "promtool check metrics <'$T_TMP/metrics' >'$T_TMP/promtool' 2>&1"
sed 's/^/    # /' "$T_TMP/promtool" | head -5
t_run "decisions: one approval" [ "$(value 'idprov_decisions_total{event="provision.approved"}')" = 1 ]
t_run "decisions: the import" [ "$(value 'idprov_decisions_total{event="batch.imported"}')" = 1 ]
t_run "refusals: one, by its reason" [ "$(value "idprov_provision_refusals_total{reason=\"$reason\"}")" = 1 ]
t_run "devices: one approved, one preloaded" [ "$(value 'idprov_devices{state="approved"}') $(value 'idprov_devices{state="preloaded"}')" = "1 1" ]
t_run "pending: none" [ "$(value idprov_pending_devices)" = 0 ]
t_run "the refusal raised a flag" [ -n "$flagkind" ]
t_run "open flags by kind" [ "$(value "idprov_flags_open{kind=\"$flagkind\"}")" -ge 1 ]
t_run "open flags in all" [ "$(value idprov_open_flags)" -ge 1 ]
t_run "HTTP: the 401s counted" [ "$(value 'idprov_http_responses_total{code="401"}')" -ge 2 ]
t_run "HTTP: 200s counted" [ "$(value 'idprov_http_responses_total{code="200"}')" -ge 3 ]
t_run "connections counted" [ "$(value idprov_http_connections_total)" -ge 5 ]
t_run "log suppressed present" [ -n "$(value idprov_log_suppressed_total)" ]
# A second scrape counts the first one's answer.
before=$(value 'idprov_http_responses_total{code="200"}')
t_run "scrape again: 200" [ "$(scrape)" = 200 ]
t_run "the first scrape's answer counted" [ "$(value 'idprov_http_responses_total{code="200"}')" -eq $((before + 1)) ]
t_run "a refused promtool input is refused (the oracle can fail)" bash -c "printf 'idprov_x{a=\"1} 2\n' | promtool check metrics >/dev/null 2>&1; [ \$? -ne 0 ]"

srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]
t_done
