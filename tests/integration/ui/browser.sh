#!/usr/bin/env bash
# browser.sh - idprovd's web UI (/ui/) in Debian's chromium, driven by
# playwright-core (tests/ui/ui.test.mjs) against a real idprovd on loopback,
# with real idprov-agent processes as the devices: log in, a pending device
# appears live and is approved (the agent then gets its token), reject,
# approve by label (matching, mismatching, another version; the second key
# of a contested ID), the batch
# chain with its gap, the hostage report, the factory CA, forged
# cross-site and CSRF-less requests refused, logout ends the session, the
# CSP header, no console errors. Screenshots go to $IDP_BUILD/ui-screenshots.
# Skips (RESULT 0 0, saying why) only when node, playwright-core or chromium
# is missing or chromium cannot start.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"
. "$(dirname "$0")/site.inc"

skip() { echo "SKIP: $*"; echo "RESULT 0 0"; exit 0; }
why=$(ui_browser_missing)
[ -z "$why" ] || skip "$why"
: "${UI_CHROMIUM:=/usr/bin/chromium}"

A=$IDP_BIN/idprov-agent
t_run "server starts" srv_start "$T_TMP/srv" --pending-retry-after 1s
t_run "a station, a CA and two batches with a gap" ui_site
# 2500 more devices (dev-10001..dev-12500 sort between dev-0008 and dev-u1),
# so that finding dev-u* by text takes the page through several server pages.
awk 'BEGIN { for (i = 1; i <= 2500; i++) printf "dev-1%04d,02:20:00:00:%02x:%02x,SB-%05d\n", i, int(i / 256), i % 256, i }' \
	>"$T_TMP/b4.csv"
"$IDP_BIN/idprov-manifest" create --key "$IDP_TOP/samples/manifests/sample-station-p256.key" \
	--batch b-ui-4 --station station-01 --seq 4 --prev "$T_TMP/b3.manifest" --product sx1 \
	--devices "$T_TMP/b4.csv" --format csv --out "$T_TMP/b4.manifest" >/dev/null
code=$(srv_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$T_TMP/srv/admin.token")" \
	-H 'Content-Type: application/vnd.idprov.manifest' \
	-H "Idprov-Signature: $(base64 -w0 "$T_TMP/b4.manifest.sig")" \
	--data-binary @"$T_TMP/b4.manifest" "$SRV_URL/v1/admin/import")
t_run "2500 more devices imported" [ "$code" = 201 ]
# The agents' keys, made now; the fingerprints are what their labels carry.
# Agent n runs in $T_TMP/agent-n as dev-u<n>, but 6 also as dev-u5: two keys
# under one ID (contested).
for n in 1 2 3 4 5 6; do
	id=dev-u$n
	[ "$n" = 6 ] && id=dev-u5
	"$A" --state-dir "$T_TMP/agent-$n" key --id "$id" --mac "02:00:5e:00:c1:0$n" \
		>"$T_TMP/u$n.pub" 2>>"$T_TMP/agent-$n.log"
	export "UI_FP_$n=$(openssl pkey -pubin -in "$T_TMP/u$n.pub" -outform DER | sha256sum | cut -c1-64)"
done
t_run "agent keys made" [ ${#UI_FP_6} = 64 ]

export UI_URL=$SRV_URL UI_CA=$SRV_CA UI_AGENT=$A UI_TMP=$T_TMP UI_CHROMIUM UI_CA_SHA
export UI_SHOTS=${IDP_BUILD:-$IDP_TOP/build/plain}/ui-screenshots
UI_TOKEN=$(cat "$T_TMP/srv/admin.token")
export UI_TOKEN
ui_node ui.test.mjs 600 || [ $? != 77 ] || { srv_stop; echo "RESULT 0 0"; exit 0; }
t_refuse "the credential is not in the server log" grep -qF -- "$UI_TOKEN" "$SRV_ERR"
t_grep "logins and logouts are logged" 'event=ui.logout' "$SRV_ERR"
t_grep "forged requests are logged" 'event=ui.refused' "$SRV_ERR"
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
