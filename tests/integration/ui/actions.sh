#!/usr/bin/env bash
# actions.sh - the web UI's review actions (tests/ui/actions.test.mjs in
# Debian's chromium) and the admin API and idprov-admin commands behind them:
# flag resolve (POST /v1/admin/flags/resolve, GET flags?state=resolved,
# `idprov-admin flag resolve`), the suspension banner with resume, and a
# subject's history (GET /v1/admin/audit?subject=, `idprov-admin audit
# --subject`). Bad input is refused and changes nothing. The browser part
# skips (saying why) only when node, playwright-core or chromium is missing.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"
. "$(dirname "$0")/site.inc"

t_run "server starts" srv_start "$T_TMP/srv" --threads 1
t_run "a station, a CA and batches 1 and 3 (a gap)" ui_site
token=$(cat "$T_TMP/srv/admin.token")
printf '%s\n' "$token" >"$T_TMP/token"
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/token" "$@"; }
api() { # METHOD PATH [BODY]: status printed, answer in $T_TMP/out
	local m=$1 p=$2
	shift 2
	srv_curl -o "$T_TMP/out" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/json' ${1+--data-binary "$1"} "$SRV_URL/v1/admin/$p"
}
audit_rows() { sqlite3 -readonly "$T_TMP/srv/idprov.db" 'select count(*) from audit'; }

# Batch 5 after 3 (4 missing): a second batch-gap flag, on b-ui-5, resolved
# with idprov-admin; the browser part resolves b-ui-3's (and sees b-ui-7's).
awk 'BEGIN { for (i = 1; i <= 3; i++) printf "dev-5%03d,02:50:00:00:00:%02x,S5-%03d\n", i, i, i }' >"$T_TMP/b5.csv"
"$IDP_BIN/idprov-manifest" create --key "$IDP_TOP/samples/manifests/sample-station-p256.key" \
	--batch b-ui-5 --station station-01 --seq 5 --prev "$T_TMP/b3.manifest" --product sx1 \
	--devices "$T_TMP/b5.csv" --format csv --out "$T_TMP/b5.manifest" >/dev/null
code=$(srv_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
	-H 'Content-Type: application/vnd.idprov.manifest' \
	-H "Idprov-Signature: $(base64 -w0 "$T_TMP/b5.manifest.sig")" \
	--data-binary @"$T_TMP/b5.manifest" "$SRV_URL/v1/admin/import")
t_run "batch 5 imported after a gap" [ "$code" = 201 ]
t_run "flags: 200" [ "$(api GET flags)" = 200 ]
seq5=$(jq -r '.flags[] | select(.subject == "b-ui-5") | .seq' "$T_TMP/out")
t_run "two open batch-gap flags" [ "$(jq '[.flags[] | select(.kind == "batch-gap")] | length' "$T_TMP/out")" = 2 ]

# --- the API refuses bad input and changes nothing ---------------------------
n0=$(audit_rows)
t_run "resolve: a string seq is 400" [ "$(api POST flags/resolve '{"seq":"1"}')" = 400 ]
t_grep "  ... naming the member" 'seq' "$T_TMP/out"
t_run "resolve: an unknown member is 400" [ "$(api POST flags/resolve "{\"seq\":$seq5,\"x\":1}")" = 400 ]
t_run "resolve: an empty body is 400" [ "$(api POST flags/resolve '')" = 400 ]
t_run "resolve: no such flag is 404" [ "$(api POST flags/resolve '{"seq":999999}')" = 404 ]
t_grep "  ... naming it" 'flag 999999: no such open flag' "$T_TMP/out"
t_run "resolve without a credential: 401" \
	[ "$(srv_curl -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "{\"seq\":$seq5}" "$SRV_URL/v1/admin/flags/resolve")" = 401 ]
t_run "flags?state=bogus: 400" [ "$(api GET 'flags?state=bogus')" = 400 ]
t_run "audit?subject=-bad: 400" [ "$(api GET 'audit?subject=-bad')" = 400 ]
t_run "refusals wrote no audit entry" [ "$(audit_rows)" = "$n0" ]
t_run "both flags still open" [ "$(api GET flags)" = 200 ] 
t_run "  ... (two rows)" [ "$(jq '.flags | length' "$T_TMP/out")" = 2 ]

# --- idprov-admin flag resolve / flags --state / audit --subject --------------
t_run "idprov-admin flag resolve" adm --json flag resolve "$seq5" >/dev/null
adm --json flag resolve "$seq5" >"$T_TMP/again.out" 2>"$T_TMP/again.err"
t_run "resolving it again: exit 1 (refused)" [ $? = 1 ]
t_grep "  ... the server's reason" "refused \(404 not_found\): flag $seq5: no such open flag" "$T_TMP/again.err"
adm flag resolve 12x >/dev/null 2>&1
t_run "flag resolve 12x: usage (exit 2)" [ $? = 2 ]
adm --json flags --state resolved >"$T_TMP/res.json"
t_run "flags --state resolved lists it" [ "$(jq -r '.flags[0].subject' "$T_TMP/res.json")" = b-ui-5 ]
adm --json flags >"$T_TMP/open.json"
t_run "flags: b-ui-5 no longer open" [ "$(jq '[.flags[] | select(.subject == "b-ui-5")] | length' "$T_TMP/open.json")" = 0 ]
adm --json audit --subject b-ui-5 >"$T_TMP/hist.json"
t_run "audit --subject: only that subject" [ "$(jq '[.entries[] | select(.subject != "b-ui-5")] | length' "$T_TMP/hist.json")" = 0 ]
t_run "audit --subject: imported, then resolved by admin" \
	[ "$(jq -r '[.entries[] | .event + "/" + (.actor // "-")] | join(" ")' "$T_TMP/hist.json")" = "batch.imported/admin admin.flag_resolved/admin" ]
adm audit --subject b-ui-5 >"$T_TMP/hist.txt"
t_grep "audit --subject as a table" 'admin\.flag_resolved.*batch-gap #' "$T_TMP/hist.txt"
t_run "flag resolve: the open-flag metric follows" [ "$(srv_curl -H "Authorization: Bearer $token" "$SRV_URL/metrics" | awk '$1 == "idprov_open_flags" {print $2}')" = 1 ]

# --- the subject filter skips the entries of others (suspend/resume: none) -----
for i in $(seq 1 3); do api POST suspend "{\"reason\":\"r$i\"}" >/dev/null; api POST resume '{}' >/dev/null; done
t_run "audit?subject=b-ui-1: 200" [ "$(api GET 'audit?subject=b-ui-1')" = 200 ]
t_run "  ... its entries only" [ "$(jq '[.entries[] | select(.subject != "b-ui-1")] | length' "$T_TMP/out")" = 0 ]
t_run "  ... and it has one" [ "$(jq '.entries | length' "$T_TMP/out")" -ge 1 ]

# --- the browser ---------------------------------------------------------------
skip=$(ui_browser_missing)
if [ -n "$skip" ]; then
	echo "SKIP: browser part: $skip"
else
	# A third gap (batch 7 after 5): an open flag besides b-ui-3's.
	t_run "viewer credential" [ "$(api POST credentials '{"name":"ops-view","role":"viewer"}')" = 201 ]
	UI_VIEWER=$(jq -r .secret "$T_TMP/out")
	awk 'BEGIN { for (i = 1; i <= 2; i++) printf "dev-7%03d,02:70:00:00:00:%02x,S7-%03d\n", i, i, i }' >"$T_TMP/b7.csv"
	"$IDP_BIN/idprov-manifest" create --key "$IDP_TOP/samples/manifests/sample-station-p256.key" \
		--batch b-ui-7 --station station-01 --seq 7 --prev "$T_TMP/b5.manifest" --product sx1 \
		--devices "$T_TMP/b7.csv" --format csv --out "$T_TMP/b7.manifest" >/dev/null
	srv_curl -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/vnd.idprov.manifest' \
		-H "Idprov-Signature: $(base64 -w0 "$T_TMP/b7.manifest.sig")" \
		--data-binary @"$T_TMP/b7.manifest" "$SRV_URL/v1/admin/import"
	t_run "suspended for the browser part" [ "$(api POST suspend '{"reason":"maintenance window"}')" = 200 ]
	export UI_URL=$SRV_URL UI_CA=$SRV_CA UI_TOKEN=$token UI_VIEWER UI_CHROMIUM=${UI_CHROMIUM:-/usr/bin/chromium}
	export UI_SHOTS=${IDP_BUILD:-$IDP_TOP/build/plain}/ui-screenshots
	ui_node actions.test.mjs 300 || true
fi
srv_stop
t_run "server stops cleanly" [ "$SRV_RC" = 0 ]
t_done
