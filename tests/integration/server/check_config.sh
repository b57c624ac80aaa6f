#!/usr/bin/env bash
# check_config.sh - idprovd --check-config: a valid file prints every
# effective setting (defaults, then the file, then the command line) as
# config file lines and exits 0; its output read back gives the same output;
# a bad value, an unknown key, a missing or non-PEM station-ca, a bad
# server-url exit 2 naming the problem. No run creates anything in the state
# directory.
. "$(dirname "$0")/../../lib.sh"

idp=$IDP_BIN/idprovd
st=$T_TMP/state
mkdir -m 700 "$st"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=station-ca \
	-days 2 -keyout "$T_TMP/ca.key" -out "$T_TMP/ca.pem" >/dev/null 2>&1
t_run "a test CA is made" [ -s "$T_TMP/ca.pem" ]

cat >"$T_TMP/good.conf" <<CONF
# a site's configuration
state-dir = $st
listen = 127.0.0.1:8443
listen = [::1]:9443
threads = 2
server-name = idprov.example
rule = product=P1 field=serial pattern=^[0-9]{8}\$ check=luhn
station-ca = $T_TMP/ca.pem
token-lifetime = 7200
max-manifest = 1048576
dnssd-interfaces = eth1,eth2
CONF
"$idp" --check-config --config "$T_TMP/good.conf" >"$T_TMP/out1" 2>"$T_TMP/err1"
t_run "a valid file exits 0" [ $? -eq 0 ]
t_run "nothing on stderr" [ ! -s "$T_TMP/err1" ]
t_grep "file values are shown" "^station-ca = $T_TMP/ca.pem\$" "$T_TMP/out1"
t_run "both listen values, in order" [ "$(grep '^listen = ' "$T_TMP/out1" | tr '\n' ' ')" = \
	"listen = 127.0.0.1:8443 listen = [::1]:9443 " ]
t_grep "the rule is shown as written" '^rule = product=P1 field=serial pattern=\^\[0-9\]\{8\}\$ check=luhn$' "$T_TMP/out1"
t_grep "durations in the file's units" '^token-lifetime = 2h$' "$T_TMP/out1"
t_grep "sizes in the file's units" '^max-manifest = 1M$' "$T_TMP/out1"
t_grep "interface lists" '^dnssd-interfaces = eth1,eth2$' "$T_TMP/out1"
t_grep "defaults are shown" '^nonce-lifetime = 2m$' "$T_TMP/out1"
t_grep "default sizes are shown" '^max-body = 16K$' "$T_TMP/out1"
t_grep "default booleans are shown" '^dnssd = yes$' "$T_TMP/out1"
t_grep "an unset key is a comment" '^# pid-file = ' "$T_TMP/out1"
# One line per key of --help (listen: one per value), in its order.
keys_help=$("$idp" --help | sed -n 's/^  --\([a-z0-9-]*\).*/\1/p' |
	grep -vx -e config -e reset-admin -e check-config | tr '\n' ' ')
keys_out=$(sed -n 's/^\(# \)\{0,1\}\([a-z0-9-]*\) = .*/\2/p' "$T_TMP/out1" | uniq | tr '\n' ' ')
t_run "every key once, in the key table's order" [ "$keys_help" = "$keys_out" ]

"$idp" --check-config --config "$T_TMP/out1" >"$T_TMP/out2" 2>"$T_TMP/err2"
t_run "the output is a valid config file" [ $? -eq 0 ]
t_run "read back, it gives the same output" cmp -s "$T_TMP/out1" "$T_TMP/out2"

"$idp" --check-config --config "$T_TMP/good.conf" --threads 3 --listen 127.0.0.2:1 \
	--dnssd=no >"$T_TMP/out3" 2>&1
t_run "with flags, exit 0" [ $? -eq 0 ]
t_grep "a flag wins over the file" '^threads = 3$' "$T_TMP/out3"
t_run "a flag's list replaces the file's" [ "$(grep -c '^listen = ' "$T_TMP/out3")" -eq 1 ]
t_grep "the flag's listen value" '^listen = 127.0.0.2:1$' "$T_TMP/out3"
t_grep "a boolean flag" '^dnssd = no$' "$T_TMP/out3"

"$idp" --check-config --state-dir "$st" >"$T_TMP/out4" 2>&1
t_run "no file: defaults, exit 0" [ $? -eq 0 ]
t_grep "default listen" '^listen = \[::\]:8443$' "$T_TMP/out4"
t_grep "default threads: the cores" "^threads = $(nproc)\$" "$T_TMP/out4"
t_grep "no rule by default" '^# rule = ' "$T_TMP/out4"

# check NAME WANT FILE-LINES...: --check-config on a file of the lines
# exits 2 and says WANT (ERE) on stderr, and prints nothing on stdout.
check_bad() {
	local name=$1 want=$2
	shift 2
	printf '%s\n' "state-dir = $st" "$@" >"$T_TMP/$name.conf"
	"$idp" --check-config --config "$T_TMP/$name.conf" >"$T_TMP/$name.out" 2>"$T_TMP/$name.err"
	local rc=$?
	t_run "$name: exit 2" [ "$rc" -eq 2 ]
	t_grep "$name: the error names it" "$want" "$T_TMP/$name.err"
	t_run "$name: nothing on stdout" [ ! -s "$T_TMP/$name.out" ]
}
check_bad bad_value "bad_value.conf:3: threads: '0' is not a number from 1 to 64" \
	"listen = 127.0.0.1:0" "threads = 0"
check_bad unknown_key "unknown_key.conf:2: unknown key 'listn'" "listn = 127.0.0.1:0"
check_bad twice "twice.conf:3: threads: set twice" "threads = 2" "threads = 3"
check_bad bad_rule "bad_rule.conf:2: " "rule = product=P1 field=colour"
check_bad no_station_ca "station-ca $T_TMP/nothere.pem: No such file or directory" \
	"station-ca = $T_TMP/nothere.pem"
printf 'not a certificate\n' >"$T_TMP/junk.pem"
check_bad junk_admin_ca "admin-ca $T_TMP/junk.pem" "admin-ca = $T_TMP/junk.pem"
check_bad http_url "server-url: must be https://" "server-url = http://idprov.example"
"$idp" --check-config --station-ca "$T_TMP/nothere.pem" --state-dir "$st" >/dev/null 2>"$T_TMP/flag.err"
t_run "a missing station-ca flag: exit 2" [ $? -eq 2 ]
t_grep "the flag's file is named" "station-ca $T_TMP/nothere.pem: No such file" "$T_TMP/flag.err"
"$idp" --check-config --reset-admin --state-dir "$st" >/dev/null 2>"$T_TMP/both.err"
t_run "--check-config with --reset-admin: exit 2" [ $? -eq 2 ]
t_grep "the conflict is named" "exclude each other" "$T_TMP/both.err"
"$idp" --check-config --server-url $'https://a\nb' --state-dir "$st" >"$T_TMP/nl.out" 2>"$T_TMP/nl.err"
t_run "a value with a line break: exit 2" [ $? -eq 2 ]
t_grep "it is named" "server-url: .*cannot be written as a config file line" "$T_TMP/nl.err"

# The same missing station-ca stops a real start with the same message.
"$idp" --foreground --state-dir "$T_TMP/real" --listen 127.0.0.1:0 --threads 1 --dnssd=no \
	--station-ca "$T_TMP/nothere.pem" >/dev/null 2>"$T_TMP/start.err"
t_run "a start with it fails" [ $? -eq 1 ]
t_grep "with the same message" "station-ca $T_TMP/nothere.pem: No such file or directory" "$T_TMP/start.err"

t_run "no check created anything in the state dir" [ -z "$(ls -A "$st")" ]
t_run "nor a missing state dir" bash -c "'$idp' --check-config --state-dir '$T_TMP/none' >/dev/null && [ ! -e '$T_TMP/none' ]"
t_done
