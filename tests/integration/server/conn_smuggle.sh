#!/usr/bin/env bash
# conn_smuggle.sh - issue 8 item 7: the connection filter and evhttp must
# see the same requests. evhttp ends a head at a line starting with NUL, the
# filter did not, so a second request, a chunked body or a body outliving
# the deadline could be hidden from the filter. Heads holding a NUL, a bare
# CR or an obs-fold line are now refused with a JSON 400 and nothing after
# them is read. Also: OPTIONS, unknown methods and absolute-form targets
# get a JSON answer (they used to get nothing), and HEAD on a GET route
# answers like GET without the body (it used to be 405).
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

probe=$IDP_BUILD/tools/idp_probe
st=$T_TMP/state
t_run "server listens" srv_start "$st" --threads 1 --header-timeout 3 --body-timeout 3

# send DESC FILE: the server's whole answer to the raw bytes in FILE.
send() { timeout 30 "$probe" raw "$SRV_PORT" <"$1" >"$1.out" 2>&1; }
answers() { grep -ac '^HTTP/1.1 ' "$1"; }
# refused DESC CODE FILE: exactly one answer, CODE with a JSON error body.
refused() {
	local d=$1 code=$2 f=$3
	send "$f"
	if [ "$(answers "$f.out")" -eq 1 ] && head -1 "$f.out" | grep -aq "^HTTP/1.1 $code " &&
		tail -1 "$f.out" | grep -aqE '^\{"error":\{"code":"[a-z_]+","message":"[^"]+"\}\}$'; then
		t_ok "$d"
	else
		t_fail "$d: $(tr '\r\n' '  ' <"$f.out" | head -c 400)"
	fi
}

printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\0\r\nGET /v1/ca HTTP/1.1\r\nHost: x\r\n\r\n' >"$T_TMP/nul2"
refused "a second request hidden behind a NUL line is refused, alone" 400 "$T_TMP/nul2"
t_refuse "the hidden request was not served" grep -q 'path=/v1/ca' "$SRV_ERR"

printf 'POST /v1/nonce HTTP/1.1\r\nHost: x\r\n\0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' >"$T_TMP/nulte"
refused "a chunked body hidden behind a NUL line is refused" 400 "$T_TMP/nulte"
printf 'POST /v1/nonce HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' >"$T_TMP/te"
refused "a visible chunked body gets 411" 411 "$T_TMP/te"
printf 'POST /v1/nonce HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' >"$T_TMP/fold"
refused "an obs-fold line is refused" 400 "$T_TMP/fold"
printf 'GET /v1/health HTTP/1.1\r\nHost: x\rX-B: 2\r\n\r\n' >"$T_TMP/cr"
refused "a bare CR in the head is refused" 400 "$T_TMP/cr"
printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nX-C: a\0b\r\n\r\n' >"$T_TMP/nulv"
refused "a NUL inside a header value is refused" 400 "$T_TMP/nulv"
printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello' >"$T_TMP/name"
refused "a header name with a space is refused" 400 "$T_TMP/name"

# A body announced behind a NUL line would outlive the body deadline: the
# refusal comes at once, before the 3 s deadline could fire.
printf 'POST /v1/nonce HTTP/1.1\r\nHost: x\r\n\0\r\nContent-Length: 1000\r\n\r\n' >"$T_TMP/nulcl"
refused "a body announced behind a NUL line is refused" 400 "$T_TMP/nulcl"

printf 'OPTIONS /v1/ca HTTP/1.1\r\nHost: x\r\n\r\n' >"$T_TMP/opt"
refused "OPTIONS gets a JSON 405" 405 "$T_TMP/opt"
t_grep "the 405 names the allowed methods" '^Allow: GET, HEAD' "$T_TMP/opt.out"
printf 'BREW /v1/ca HTTP/1.1\r\nHost: x\r\n\r\n' >"$T_TMP/brew"
refused "an unknown method gets a JSON 405" 405 "$T_TMP/brew"
printf 'GET https://127.0.0.1/v1/ca HTTP/1.1\r\nHost: x\r\n\r\n' >"$T_TMP/abs"
refused "an absolute-form target gets a JSON 400" 400 "$T_TMP/abs"

printf 'HEAD /v1/ca HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$T_TMP/head"
send "$T_TMP/head"
t_run "HEAD on a GET route answers 200" bash -c "head -1 '$T_TMP/head.out' | grep -aq '^HTTP/1.1 200 '"
t_grep "HEAD answers with GET's content type" '^Content-Type: application/x-pem-file' "$T_TMP/head.out"
t_refuse "HEAD sends no body" grep -aq 'BEGIN CERTIFICATE' "$T_TMP/head.out"
t_grep "HEAD gives GET's Content-Length" "^Content-Length: $(wc -c <"$st/ca.pem")"$'\r'"?\$" "$T_TMP/head.out"

srv_curl -o "$T_TMP/ca" "$SRV_URL/v1/ca"
t_run "server still answers" cmp -s "$T_TMP/ca" "$st/ca.pem"
srv_stop
t_run "exits 0" [ "$SRV_RC" -eq 0 ]
t_done
