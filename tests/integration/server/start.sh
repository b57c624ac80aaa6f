#!/usr/bin/env bash
# start.sh - idprovd's first start creates the state directory with tight
# modes and writes the admin credential to admin.token (0600), never to its
# output; a second start reuses it all (same CA); TLS 1.2 and 1.3 work with
# the CA, TLS 1.1 is refused; IPv6 works; --help, --version and config errors
# behave; loose modes are refused, a symlinked state dir is allowed.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

st=$T_TMP/state
t_run "first start listens" srv_start "$st"
t_run "admin credential in admin.token" grep -qxE '[A-Za-z0-9_-]{43}' "$st/admin.token"
secret=$(cat "$st/admin.token")
t_run "nothing on stdout" [ ! -s "$SRV_OUT" ]
t_refuse "credential not in the log" grep -qF -- "$secret" "$SRV_ERR"
t_grep "the log names the file, not the secret" "event=admin.created path=$st/admin.token" "$SRV_ERR"
t_run "credential in clear only in admin.token" [ "$(grep -rlF -- "$secret" "$st")" = "$st/admin.token" ]
t_grep "the process is not dumpable (no core file with the keys)" 'event=process.secured dumpable=0' "$SRV_ERR"
t_grep "token key creation is logged" 'event=token.key_created kid=t-[0-9a-f]{16} ' "$SRV_ERR"
modes=$(stat -c '%n %a' "$st" "$st"/ca.key "$st"/server.key "$st"/token.key "$st"/admin.hash \
	"$st"/admin.token "$st"/idprov.db "$st"/ca.pem | sed "s|$st|S|")
expect="S 700
S/ca.key 600
S/server.key 600
S/token.key 600
S/admin.hash 600
S/admin.token 600
S/idprov.db 600
S/ca.pem 644"
t_run "state files have tight modes" [ "$modes" = "$expect" ]
fp1=$(openssl x509 -in "$st/ca.pem" -noout -fingerprint -sha256)

srv_curl --tlsv1.3 "$SRV_URL/v1/health" >"$T_TMP/h13" 2>&1
t_grep "health over TLS 1.3" '"status":"ok"' "$T_TMP/h13"
srv_curl --tlsv1.2 --tls-max 1.2 -w '%{ssl_verify_result}' "$SRV_URL/v1/health" >"$T_TMP/h12" 2>&1
t_grep "health over TLS 1.2" '"status":"ok".*0$' "$T_TMP/h12"
srv_curl "https://localhost:$SRV_PORT/v1/ca" >"$T_TMP/ca.got"
t_run "GET /v1/ca is the CA" cmp -s "$T_TMP/ca.got" "$st/ca.pem"
t_run "TLS 1.2 handshake with s_client" bash -c "echo | timeout 10 openssl s_client -tls1_2 -CAfile '$st/ca.pem' -connect 127.0.0.1:$SRV_PORT >/dev/null 2>&1"
t_refuse "TLS 1.1 refused" bash -c "echo | timeout 10 openssl s_client -tls1_1 -connect 127.0.0.1:$SRV_PORT >/dev/null 2>&1"
t_refuse "a client without the CA is refused" curl -s --max-time 10 "$SRV_URL/v1/health" -o /dev/null
srv_stop
t_run "SIGTERM exits 0" [ "$SRV_RC" -eq 0 ]
t_grep "stop is logged" 'event=http.stopped' "$SRV_ERR"

t_run "second start listens" srv_start "$st" --listen '[::1]:0'
t_run "second start prints nothing" [ ! -s "$SRV_OUT" ]
t_refuse "second start makes no token key" grep -q 'event=token.key_created' "$SRV_ERR"
fp2=$(openssl x509 -in "$st/ca.pem" -noout -fingerprint -sha256)
t_run "second start keeps the CA" [ "$fp1" = "$fp2" ]
t_grep "second start reuses the state" 'event=state.ready .*created=no .*cert_issued=no' "$SRV_ERR"
port6=$(grep -o 'addr=\[::1\]:[0-9]*' "$SRV_ERR" | head -1 | sed 's/.*://')
srv_curl "https://[::1]:$port6/v1/health" >"$T_TMP/h6" 2>&1
t_grep "health over IPv6 ::1" '"status":"ok"' "$T_TMP/h6"
srv_stop

t_run "--version" bash -c "'$IDP_BIN/idprovd' --version | grep -q '^idprovd [0-9]'"
t_run "--help lists every key" bash -c "'$IDP_BIN/idprovd' --help | grep -q -- '--header-timeout'"
printf 'threads = 2\nlisten = 127.0.0.1:0\nbogus-key = 1\n' >"$T_TMP/bad.conf"
"$IDP_BIN/idprovd" --config "$T_TMP/bad.conf" --state-dir "$T_TMP/s2" >"$T_TMP/bad.out" 2>&1
rc=$?
t_run "bad config key exits 2" [ "$rc" -eq 2 ]
t_grep "bad config key is named with file and line" "bad.conf:3: unknown key 'bogus-key'" "$T_TMP/bad.out"
t_run "bad config creates nothing" [ ! -e "$T_TMP/s2" ]
"$IDP_BIN/idprovd" --threads zero >"$T_TMP/bad2.out" 2>&1
t_grep "bad flag value is named" "threads: 'zero'" "$T_TMP/bad2.out"
# A state directory reached through a symlink (systemd DynamicUser=yes).
ln -s "$st" "$T_TMP/link"
t_run "symlinked state dir starts" srv_start "$T_TMP/link"
srv_stop
chmod 0777 "$st"
"$IDP_BIN/idprovd" --foreground --state-dir "$st" --listen 127.0.0.1:0 >"$T_TMP/ww.out" 2>&1
rc=$?
t_run "world-writable state dir refused" [ "$rc" -eq 1 ]
t_grep "refusal names the dir" "mode 777" "$T_TMP/ww.out"
chmod 0755 "$st"
"$IDP_BIN/idprovd" --foreground --state-dir "$st" --listen 127.0.0.1:0 >"$T_TMP/ww.out" 2>&1
t_grep "world-readable state dir refused with the fix" "mode 755 .*chmod 700" "$T_TMP/ww.out"
chmod 0700 "$st"
chmod 0644 "$st/ca.key"
"$IDP_BIN/idprovd" --foreground --state-dir "$st" --listen 127.0.0.1:0 >"$T_TMP/ck.out" 2>&1
rc=$?
t_run "readable ca.key refused" [ "$rc" -eq 1 ]
t_grep "refusal names ca.key, mode and fix" "ca.key: mode 644 lets others read .*chmod 600" "$T_TMP/ck.out"
t_done
