#!/usr/bin/env bash
# admin_cli.sh - idprov-admin's human output against a real idprovd: tables
# with aligned columns and times in local ISO 8601 (checked against date(1)
# in a fixed +01:00 zone), a contested device's other keys under its row,
# control bytes from the database shown escaped, name/value lines for
# changes, --json (also after the command) giving the API's document,
# --version, help with one command a line, and a value the API would refuse
# refused before anything is sent.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

samples=$IDP_TOP/samples/manifests
st=$T_TMP/state
t_run "server starts" srv_start "$st"
cp "$st/admin.token" "$T_TMP/token"
db=$st/idprov.db
export TZ=XXX-1 # POSIX TZ: one hour east of UTC, no tzdata needed
cli() {
	"$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/token" \
		"$@" >"$T_TMP/out" 2>"$T_TMP/err"
}
# aligned FILE: every column of the header starts at the same place on every
# row (cells hold no spaces, except the last column).
aligned() {
	awk 'NR == 1 { for (i = 2; i <= length($0); i++)
			if (substr($0, i, 1) != " " && substr($0, i - 1, 1) == " ") p[++n] = i
		next }
	/^    / || /^\(none\)$/ || /^more: / { next }
	{ for (k = 1; k <= n; k++)
		if (substr($0, p[k], 1) == " " || substr($0, p[k] - 1, 1) != " ") bad++
	  rows++ }
	END { exit (bad > 0 || rows == 0) }' "$1"
}

# A mistyped manifest path is named as the manifest, once (not as the .sig
# file beside it, not "path: path: ...").
t_refuse "import of a missing manifest refused" cli import "$T_TMP/missing.manifest"
t_grep "the error names the manifest" "^idprov-admin: $T_TMP/missing.manifest: No such file" \
	"$T_TMP/err"
t_refuse "the .sig is not what is named" grep -q 'missing.manifest.sig' "$T_TMP/err"
openssl genpkey -algorithm ed25519 -out "$T_TMP/st-priv.key" 2>/dev/null
t_refuse "station add with a private key refused" cli station add st-priv "$T_TMP/st-priv.key"
t_grep "the error says it is a private key" 'this is a private key; give the station.s \.pub file' \
	"$T_TMP/err"
cli --json station list
t_refuse "no station was added" grep -q '"st-priv"' "$T_TMP/out"
t_run "--version" cli --version
t_grep "--version names the release" '^idprov-admin [0-9]+\.[0-9]+\.[0-9]+$' "$T_TMP/out"
t_run "--help" cli --help
missing=0
for c in 'station add' 'station disable' 'station list' 'ca add' 'import' 'devices' 'approve' \
	'reject' 'revoke' 'release' 'flags' 'audit \[' 'audit verify' 'report unprovisioned' \
	'token-key rotate' 'backup'; do
	grep -qE "^  $c" "$T_TMP/out" || { missing=$((missing + 1)); echo "# not on its own line: $c"; }
done
t_run "--help: each command on its own line" [ "$missing" = 0 ]

t_run "station add" cli station add station-01 "$samples/sample-station-p256.pub"
t_grep "station add: name/value lines" '^id  station-01$' "$T_TMP/out"
m=$T_TMP/b1.manifest
grep -v '^#' "$samples/devices.csv" | head -3 | cut -d, -f1-3 >"$T_TMP/devs.csv"
"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" --batch b-cli-1 \
	--station station-01 --seq 1 --product sx1 --devices "$T_TMP/devs.csv" --format csv \
	--out "$m" >/dev/null
t_run "import" cli import "$m"
t_grep "import: the batch's devices" '^devices   3$' "$T_TMP/out"
t_grep "import: created" '^created   yes$' "$T_TMP/out"

# A contested pending device (two keys), a page and more of flags, a flag
# whose detail is not UTF-8 (a row altered outside the server) and one whose
# detail holds an escape sequence (the newest), written with the server
# stopped.
srv_stop
t_run "rows written" sqlite3 "$db" "
	insert into devices(id, state, public_key, created_at, updated_at, attempts)
		values ('dev-p1', 'pending', x'01', 1764526805, 1764526805, 2);
	insert into contenders(device_id, public_key, mac, first_seen, last_seen, attempts)
		values ('dev-p1', x'02', '02:00:5e:00:00:09', 1764526805, 1764526900, 2);
	insert into flags(kind, subject, detail, created_at, last_seen)
		with recursive n(i) as (select 1 union all select i + 1 from n where i < 1000)
		select 'bulk', 'dev-b' || i, 'one of many', 1764526805, 1764526805 from n;
	insert into flags(kind, subject, detail, created_at, last_seen)
		values ('odd', 'dev-o1', cast(x'41ff42' as text), 1764526805, 1764526805);
	insert into flags(kind, subject, detail, created_at, last_seen)
		values ('contested', 'dev-p1', 'second key' || char(27) || '[31m red', 1764526805, 1764526805);"
t_run "server restarts" srv_start "$st"

t_run "devices" cli devices
t_grep "devices: header" '^ID +STATE +MAC +SERIAL +BATCH_ID +HAS_KEY +KEY_SHA256 +UPDATED_AT +ATTEMPTS +CONTESTED$' "$T_TMP/out"
t_run "devices: columns aligned" aligned "$T_TMP/out"
t_run "devices: four rows" [ "$(grep -cE '^dev-' "$T_TMP/out")" = 4 ]
want=$(date -d @1764526805 +%Y-%m-%dT%H:%M:%S%:z)
t_run "the oracle is in +01:00" [ "${want: -6}" = "+01:00" ]
want=${want/+/\\+} # as a regular expression
t_grep "devices: time in local ISO 8601" "^dev-p1 +pending +- +- +- +yes +[0-9a-f]{64} +$want +2 +yes$" "$T_TMP/out"
t_grep "devices: other key under its row" "^    other_keys: key_sha256=[0-9a-f]{64} mac=02:00:5e:00:00:09 first_seen=$want last_seen=.*\+01:00 attempts=2$" "$T_TMP/out"
t_run "devices --json after the command" cli devices --json
t_grep "--json: the API's document" '^\{"devices":\[\{"id":"dev-0001",.*"contested":true,"other_keys":\[\{"key_sha256":"[0-9a-f]{64}","mac":"02:00:5e:00:00:09","first_seen":1764526805,' "$T_TMP/out"
t_run "--json: one line" [ "$(wc -l <"$T_TMP/out")" = 1 ]
t_run "devices --state rejected" cli devices --state rejected
t_grep "empty list: (none)" '^\(none\)$' "$T_TMP/out"

t_run "flags" cli flags
t_grep "flags: header, detail last" '^SEQ +KIND +SUBJECT +COUNT +FIRST_SEEN +LAST_SEEN +DETAIL$' "$T_TMP/out"
t_grep "flags: the escape byte shown as text" 'second key\\x1b\[31m red$' "$T_TMP/out"
t_refuse "flags: no raw escape byte printed" grep -q $'\x1b' "$T_TMP/out"
t_run "flags: columns aligned" aligned "$T_TMP/out"
t_run "flags --json with a detail that is not UTF-8" cli flags --json
t_grep "that detail escaped, the rest listed" '"kind":"odd","subject":"dev-o1","detail":"\\"A\\\\xffB\\"",' "$T_TMP/out"
t_run "flags --kind bulk" cli flags --kind bulk
t_run "a full page: 1000 rows" [ "$(grep -c ' bulk ' "$T_TMP/out")" = 1000 ]
t_grep "a full page names the next one" '^more: continue with --after 1$' "$T_TMP/out"
t_run "flags --kind bulk --after 1" cli flags --kind bulk --after 1
t_grep "the next page is empty" '^\(none\)$' "$T_TMP/out"

t_run "station list" cli station list
t_grep "stations: header" '^ID +ENABLED +KEY_SHA256 +CREATED_AT$' "$T_TMP/out"
t_grep "stations: enabled, with its time" '^station-01 +yes +[0-9a-f]{64} +[0-9-]{10}T[0-9:]{8}\+01:00$' "$T_TMP/out"
TZ=XXX+5:30 cli station list
t_run "station list west of UTC, half hours" [ $? = 0 ]
t_grep "a negative offset with its minutes" '^station-01 +yes +[0-9a-f]{64} +[0-9-]{10}T[0-9:]{8}-05:30$' "$T_TMP/out"
t_run "report unprovisioned" cli report unprovisioned
t_grep "report: age as a duration" '^dev-0001 +preloaded +b-cli-1 +station-01 +[0-9T:+-]+ +[0-9]+s +0$' "$T_TMP/out"
t_run "report: columns aligned" aligned "$T_TMP/out"
t_run "audit" cli audit
t_grep "audit: header, detail last" '^SEQ +AT +EVENT +SUBJECT +ACTOR +HASH +DETAIL$' "$T_TMP/out"
t_run "audit verify" cli audit verify
t_grep "audit verify: intact" '^intact +yes$' "$T_TMP/out"
t_run "revoke" cli revoke dev-0001
t_grep "revoke: names the device" '^id +dev-0001$' "$T_TMP/out"

# A value the API refuses is refused before sending: exit 1, nothing logged.
cli release colour red
t_run "bad kind: exit 1" [ $? = 1 ]
t_grep "bad kind: named" 'refused before sending: kind: must be id, serial, mac or key, not "colour"' "$T_TMP/err"
t_refuse "bad kind: never sent" grep -q 'action=release' "$SRV_ERR"
cli approve dev-p1 --key abc
t_run "short key: exit 1" [ $? = 1 ]
t_grep "short key: named" 'key_sha256: must be 64 lower-case hex digits' "$T_TMP/err"

srv_stop
t_run "server stops cleanly" [ "$SRV_RC" -eq 0 ]
t_done
