#!/usr/bin/env bash
# attack.sh - every class of hostile input against one real idprovd on
# loopback (issue 16, "Bad input"), counted: forged proofs (another key, a
# flipped signature bit, a claim changed after signing, stale and future
# timestamps), replayed proofs (same connection, another connection, a used
# nonce, an unknown nonce, a proof for another endpoint), a relay that
# terminates TLS (the proof covers the relay's exporter), forged tokens
# (alg none, a kid the server never had, another signing key, and, signed
# with the server's own key, expired, another audience, another subject),
# swapped token kinds, a revoked and a spent token, an ID claimed with
# another key; oversized, truncated and malformed bodies and heads; slow
# heads/bodies (closed by their deadline); more connections than the bound
# (held until slots free, then served); a flood from one address (429 with
# Retry-After). Each is refused with its documented status and code
# (formats/api.md §9), logged with the check that refused it, the store
# (every table but the audit log, dumped read-only with the sqlite3 CLI)
# is unchanged by it and no audit entry is written (the one decision
# refusal, key_mismatch, writes its audit entry and flag instead), and a
# good request succeeds after each class.
# The last line is "attack: N tried, N refused, N unexpected" (make stress
# reads it); the tools: tests/tools/idp_attack.c, tests/tools/idp_probe.c.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

A=${IDP_BUILD:-$IDP_TOP/build/plain}/tools/idp_attack
P=${IDP_BUILD:-$IDP_TOP/build/plain}/tools/idp_probe
MAXCONN=8
t_run "server starts" srv_start "$T_TMP/srv" --header-timeout 2 --body-timeout 2 \
	--max-connections $MAXCONN --log-burst 0 --throttle-burst 300 --throttle-per-minute 1 \
	--throttle-device-burst 1000
db=$T_TMP/srv/idprov.db
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" \
	--token-file "$T_TMP/srv/admin.token" "$@"; }

TRIED=0 REFUSED=0 UNEXPECTED=0
# The store's digest: a read-only dump of every table but the audit log (and
# the tables named in $SKIP).
SKIP=
db_digest() {
	local t
	for t in $(sqlite3 -readonly "$db" "SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT IN ('audit', 'audit_checkpoints') ORDER BY name"); do
		case " $SKIP " in *" $t "*) continue ;; esac
		echo ".dump $t"
	done | sqlite3 -readonly "$db" | sha256sum | cut -c1-64
}
audit_n() { sqlite3 -readonly "$db" "SELECT count(*) FROM audit"; }
refused_n() { grep -c 'event=device.refused' "$SRV_ERR"; }

# attack DESC STATUS CODE CMD... : CMD's last "answer" line must be
# "answer STATUS CODE".
attack() {
	local d=$1 want="answer $2 $3" got
	shift 3
	got=$("$@" 2>"$T_TMP/attack.err" | grep '^answer' | tail -1)
	TRIED=$((TRIED + 1))
	if [ "$got" = "$want" ]; then
		REFUSED=$((REFUSED + 1))
		t_ok "$d: ${want#answer }"
	else
		UNEXPECTED=$((UNEXPECTED + 1))
		t_fail "$d: got '$got', want '$want'"
		sed 's/^/    # /' "$T_TMP/attack.err" | head -5
	fi
}
# expect DESC STATUS CODE CMD... : a good request (not counted as an attack).
expect() {
	local d=$1 want="answer $2 $3" got
	shift 3
	got=$("$@" 2>"$T_TMP/attack.err" | grep '^answer' | tail -1)
	if [ "$got" = "$want" ]; then t_ok "$d"; else
		t_fail "$d: got '$got', want '$want'"
		sed 's/^/    # /' "$T_TMP/attack.err" | head -5
	fi
}
# two_step DESC STATUS CODE CMD... : CMD is a two-step mode; its first
# request is good, the digest is taken after it, the second is the attack.
two_step() {
	local d=$1 want="answer $2 $3" first got pid
	shift 3
	coproc STEP { IDP_ATTACK_PAUSE=1 "$@" 2>"$T_TMP/attack.err"; }
	pid=$STEP_PID
	T_CLEANUP+=("kill $pid 2>/dev/null")
	read -r -t 30 first <&"${STEP[0]}"
	local before audit0
	before=$(db_digest)
	audit0=$(audit_n)
	echo go >&"${STEP[1]}"
	read -r -t 30 got <&"${STEP[0]}"
	wait "$pid"
	TRIED=$((TRIED + 1))
	if [[ $first == "answer 20"* ]] && [ "$got" = "$want" ] && [ "$(db_digest)" = "$before" ] &&
		[ "$(audit_n)" = "$audit0" ]; then
		REFUSED=$((REFUSED + 1))
		t_ok "$d: ${want#answer } (after '$first'), store and audit unchanged"
	else
		UNEXPECTED=$((UNEXPECTED + 1))
		t_fail "$d: first '$first', then '$got' (want '$want'), store $([ "$(db_digest)" = "$before" ] && echo same || echo changed)"
		sed 's/^/    # /' "$T_TMP/attack.err" | head -5
	fi
}
# class_begin NAME / class_end: the store and the audit log are unchanged
# by the class's refusals, each refusal of a device request was logged, the
# server is up and a good request succeeds.
class_begin() {
	CLASS=$1
	C_DIGEST=$(db_digest)
	C_AUDIT=$(audit_n)
	C_LOGGED=$(refused_n)
	C_TRIED=$TRIED
}
class_end() { # [LOGGED]: device.refused lines expected (default: one per attack)
	local logged=${1:-$((TRIED - C_TRIED))}
	t_run "$CLASS: store unchanged (sqlite3 read-only dump)" [ "$(db_digest)" = "$C_DIGEST" ]
	t_run "$CLASS: no audit entry" [ "$(audit_n)" = "$C_AUDIT" ]
	local n
	n=$(($(refused_n) - C_LOGGED))
	t_run "$CLASS: $logged refusals logged (device.refused: $n)" [ "$n" -eq "$logged" ]
	t_run "$CLASS: server still up" kill -0 "$SRV_PID"
	expect "$CLASS: a good request succeeds after it" 200 approved \
		"$A" send "$SRV_PORT" "$T_TMP/kg" provision dev-good 02:00:5e:10:01:01 good
}
# The server log's device.refused lines since the class began, with check=CHECK.
checks() { grep 'event=device.refused' "$SRV_ERR" | tail -n "$1" | grep -o 'check=[a-z_]*' | cut -d= -f2 | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' '; }

# ---------------------------------------------------------------- setup
for k in ka:p256 ke:ed25519 kg:p256 kx:p256; do
	"$A" key "$T_TMP/${k%%:*}" "${k#*:}" || t_fail "key ${k%%:*}"
done
# Three devices, approved by the administrator: dev-a (P-256), dev-e
# (Ed25519), dev-good (the good request after each class).
for d in a:ka:02:00:5e:10:00:0a e:ke:02:00:5e:10:00:0e good:kg:02:00:5e:10:01:01; do
	IFS=: read -r id key mac <<<"$d"
	mac=${d#*:*:}
	expect "dev-$id: unknown, pending" 202 pending "$A" send "$SRV_PORT" "$T_TMP/$key" provision "dev-$id" "$mac" good
	t_run "dev-$id: approved by the administrator" adm approve "dev-$id" >/dev/null
	expect "dev-$id: provisioned" 200 approved "$A" send "$SRV_PORT" "$T_TMP/$key" provision "dev-$id" "$mac" good - "$T_TMP/$id.prov"
done
MA=02:00:5e:10:00:0a ME=02:00:5e:10:00:0e
expect "dev-a: provisioning token exchanged" 200 approved \
	"$A" send "$SRV_PORT" "$T_TMP/ka" exchange dev-a $MA good "$T_TMP/a.prov" "$T_TMP/a.dev"

# ---------------------------------------------------------------- proofs
class_begin "forged proofs"
for k in ka:dev-a:$MA ke:dev-e:$ME; do
	IFS=: read -r key id _ <<<"$k"
	mac=${k#*:*:}
	attack "$id provision signed by another key" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/$key" provision "$id" "$mac" other-key
	attack "$id provision, signature bit flipped" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/$key" provision "$id" "$mac" sig-flip
	attack "$id provision, MAC changed after signing" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/$key" provision "$id" "$mac" claim-flip
	attack "$id provision, ts 1000 s old" 401 pop_stale "$A" send "$SRV_PORT" "$T_TMP/$key" provision "$id" "$mac" stale
	attack "$id provision, ts 1000 s ahead" 401 pop_stale "$A" send "$SRV_PORT" "$T_TMP/$key" provision "$id" "$mac" future
done
attack "dev-a renew signed by another key" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" renew dev-a $MA other-key "$T_TMP/a.dev"
attack "dev-a renew, signature bit flipped" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" renew dev-a $MA sig-flip "$T_TMP/a.dev"
class_end

class_begin "relayed proofs"
attack "dev-a provision through a TLS-terminating relay" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" provision dev-a $MA relay
attack "dev-e provision through a TLS-terminating relay" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/ke" provision dev-e $ME relay
attack "dev-a renew through a TLS-terminating relay" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" renew dev-a $MA relay "$T_TMP/a.dev"
attack "dev-a renew proof sent to exchange" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" renew dev-a $MA purpose-swap "$T_TMP/a.dev"
attack "dev-a unknown nonce" 401 nonce_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" provision dev-a $MA nonce-unknown
class_end

# Replays: the first request of each is good (it changes the store), the
# digest is taken between the two.
class_begin "replayed proofs"
two_step "dev-good proof replayed on its connection" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/kg" provision dev-good 02:00:5e:10:01:01 replay-conn
two_step "dev-good proof replayed on a new connection" 401 pop_invalid "$A" send "$SRV_PORT" "$T_TMP/kg" provision dev-good 02:00:5e:10:01:01 replay-new
two_step "dev-good nonce used twice" 401 nonce_invalid "$A" send "$SRV_PORT" "$T_TMP/kg" provision dev-good 02:00:5e:10:01:01 nonce-reuse
t_run "replays: each refusal logged" [ "$(refused_n)" -eq $((C_LOGGED + 3)) ]
t_grep "replay: logged as a used proof" 'event=device.refused .*device=dev-good .*refusal=proof' "$SRV_ERR"
t_grep "nonce: logged as a used nonce" 'event=device.refused .*device=dev-good .*refusal=nonce' "$SRV_ERR"
t_run "replays: server still up" kill -0 "$SRV_PID"

# ---------------------------------------------------------------- tokens
class_begin "forged tokens"
for how in alg-none other-key wrong-kid expired aud sub; do
	"$A" forge "$T_TMP/srv" "$T_TMP/a.dev" $how "$T_TMP/forged.$how" || t_fail "forge $how"
	attack "dev-a renew with a token forged: $how" 401 token_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" renew dev-a $MA good "$T_TMP/forged.$how"
done
attack "dev-a exchange with its device token (kind swapped)" 401 token_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" exchange dev-a $MA good "$T_TMP/a.dev"
attack "dev-e renew with dev-a's token (another device)" 401 token_invalid "$A" send "$SRV_PORT" "$T_TMP/ke" renew dev-e $ME good "$T_TMP/a.dev"
got=$(checks 8)
t_run "tokens: refused by the right checks ($got)" \
	[ "$got" = "alg=1 aud=1 expired=1 kid=1 kind=1 signature=1 sub=2 " ]
class_end

# A new provisioning revokes dev-a's token chain; then its new
# provisioning token is presented for renewal (kind swapped).
expect "dev-a provisions again" 200 approved "$A" send "$SRV_PORT" "$T_TMP/ka" provision dev-a $MA good - "$T_TMP/a.prov2"
class_begin "revoked tokens"
attack "dev-a renew with its revoked device token" 401 token_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" renew dev-a $MA good "$T_TMP/a.dev"
attack "dev-a renew with a provisioning token (kind swapped)" 401 token_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" renew dev-a $MA good "$T_TMP/a.prov2"
attack "dev-a exchange of the first, revoked provisioning token" 401 token_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" exchange dev-a $MA good "$T_TMP/a.prov"
class_end
expect "dev-a exchanges its new provisioning token" 200 approved "$A" send "$SRV_PORT" "$T_TMP/ka" exchange dev-a $MA good "$T_TMP/a.prov2" "$T_TMP/a.d1"
expect "dev-a renews" 200 approved "$A" send "$SRV_PORT" "$T_TMP/ka" renew dev-a $MA good "$T_TMP/a.d1" "$T_TMP/a.d2"
expect "dev-a renews again" 200 approved "$A" send "$SRV_PORT" "$T_TMP/ka" renew dev-a $MA good "$T_TMP/a.d2" "$T_TMP/a.d3"
class_begin "spent tokens"
attack "dev-a renew with a spent token" 401 token_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" renew dev-a $MA good "$T_TMP/a.d1"
attack "dev-a exchange of a spent provisioning token" 401 token_invalid "$A" send "$SRV_PORT" "$T_TMP/ka" exchange dev-a $MA good "$T_TMP/a.prov2"
class_end

# ---------------------------------------------------------------- identity
# An approved ID claimed with another key (a valid proof of that key): the
# decision refuses it, and this refusal is recorded: an audit entry and a
# flag for review, and its (valid) proof is spent with the decision;
# nothing else changes.
class_begin "identity theft"
SKIP="flags proofs"
C_DIGEST=$(db_digest)
attack "dev-a claimed with another key" 403 rejected "$A" send "$SRV_PORT" "$T_TMP/kx" provision dev-a $MA good
SKIP=
t_run "identity theft: store unchanged but for the flag" [ "$(SKIP="flags proofs" db_digest)" = "$C_DIGEST" ]
t_run "identity theft: one audit entry" [ "$(audit_n)" = $((C_AUDIT + 1)) ]
t_run "identity theft: audited as key_mismatch" [ "$(sqlite3 -readonly "$db" "SELECT event || ' ' || subject || ' ' || detail FROM audit ORDER BY seq DESC LIMIT 1")" = "provision.refused dev-a key-mismatch" ]
t_run "identity theft: flagged for review" [ "$(sqlite3 -readonly "$db" "SELECT count(*) FROM flags WHERE subject = 'dev-a' AND cleared = 0")" -ge 1 ]
t_run "identity theft: server still up" kill -0 "$SRV_PID"

# ---------------------------------------------------------------- bodies
# body DESC STATUS CODE CURL-ARGS... : a raw request's JSON error.
body() {
	local d=$1 st=$2 code=$3
	shift 3
	local got
	got=$(srv_curl -o "$T_TMP/body" -w '%{http_code}' "$@" 2>/dev/null)
	TRIED=$((TRIED + 1))
	if [ "$got" = "$st" ] && grep -qE "^\{\"error\":\{\"code\":\"$code\",\"message\":\"[^\"]+\"" "$T_TMP/body"; then
		REFUSED=$((REFUSED + 1))
		t_ok "$d: $st $code"
	else
		UNEXPECTED=$((UNEXPECTED + 1))
		t_fail "$d: got $got $(head -c 200 "$T_TMP/body")"
	fi
}
class_begin "bad bodies and heads"
J=(-X POST -H 'Content-Type: application/json')
head -c 20000 /dev/zero | tr '\0' ' ' >"$T_TMP/big"
head -c 3000 "$A" >"$T_TMP/garbage"
body "oversized provision body" 413 too_large "${J[@]}" --data-binary @"$T_TMP/big" "$SRV_URL/v1/provision"
body "oversized renew body" 413 too_large "${J[@]}" --data-binary @"$T_TMP/big" "$SRV_URL/v1/token/renew"
body "oversized head" 431 headers_too_large -H "X-Pad: $(head -c 9000 /dev/zero | tr '\0' a)" "${J[@]}" -d '{}' "$SRV_URL/v1/provision"
body "truncated JSON body" 400 invalid_field "${J[@]}" -d '{"device_id":"dev-a","mac":"02:00:5e:10' "$SRV_URL/v1/provision"
body "binary garbage body" 400 invalid_field "${J[@]}" --data-binary @"$T_TMP/garbage" "$SRV_URL/v1/token/exchange"
body "empty body" 400 bad_request "${J[@]}" -H 'Content-Length: 0' "$SRV_URL/v1/provision"
body "unknown member" 400 invalid_field "${J[@]}" -d '{"device_id":"dev-a","evil":1}' "$SRV_URL/v1/provision"
body "duplicate member" 400 invalid_field "${J[@]}" -d '{"device_id":"dev-a","device_id":"dev-e"}' "$SRV_URL/v1/provision"
body "deep nesting" 400 invalid_field "${J[@]}" -d '{"pop":{"ts":{"a":[1]}}}' "$SRV_URL/v1/provision"
body "chunked body" 411 length_required "${J[@]}" -H 'Transfer-Encoding: chunked' -d '{}' "$SRV_URL/v1/provision"
body "admin API without credential" 401 unauthorized "${J[@]}" -d '{"id":"dev-a"}' "$SRV_URL/v1/admin/devices/approve"
body "unknown path" 404 not_found "${J[@]}" -d '{}' "$SRV_URL/v1/provisionx"
body "GET on a POST route" 405 method_not_allowed "$SRV_URL/v1/provision"
body "token over 4096 bytes" 400 invalid_field "${J[@]}" -d "{\"token\":\"$(head -c 5000 /dev/zero | tr '\0' a)\"}" "$SRV_URL/v1/token/renew"
body "admin API with a forged bearer" 401 unauthorized -H "Authorization: Bearer $(t_forge "$(cat "$T_TMP/srv/admin.token")")" "$SRV_URL/v1/admin/devices"
body "manifest upload without a station certificate" 401 unauthorized -X POST -H 'Content-Type: application/vnd.idprov.manifest' --data-binary @"$T_TMP/garbage" "$SRV_URL/v1/batches"
# A NUL byte in the head and an obs-fold line: JSON 400 and the connection
# closed (idp_probe raw prints what came back until the close).
printf 'POST /v1/provision HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\n{}' |
	"$P" raw "$SRV_PORT" >"$T_TMP/raw" 2>/dev/null
TRIED=$((TRIED + 1))
if head -1 "$T_TMP/raw" | grep -q '^HTTP/1.1 400' && grep -q '"code":"bad_request"' "$T_TMP/raw"; then
	REFUSED=$((REFUSED + 1)); t_ok "NUL byte in the head: 400 bad_request"
else UNEXPECTED=$((UNEXPECTED + 1)); t_fail "NUL byte in the head: $(head -c 200 "$T_TMP/raw")"; fi
# Truncated heads and bodies: nothing more comes; the server closes each
# by its deadline (logged with the phase), without an answer.
stall() { # DESC PHASE FILE (not in a pipeline: the counts are this shell's)
	local d=$1 phase=$2 before
	before=$(grep -c "event=conn.deadline .*phase=$phase" "$SRV_ERR")
	local out
	out=$("$A" stall "$SRV_PORT" <"$3")
	TRIED=$((TRIED + 1))
	if [ "$out" = "stall closed=1 status=0" ] &&
		[ "$(grep -c "event=conn.deadline .*phase=$phase" "$SRV_ERR")" -eq $((before + 1)) ]; then
		REFUSED=$((REFUSED + 1)); t_ok "$d: closed by the $phase deadline"
	else UNEXPECTED=$((UNEXPECTED + 1)); t_fail "$d: $out"; fi
}
printf 'POST /v1/provision HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Le' \
	>"$T_TMP/head.cut"
stall "truncated head" head "$T_TMP/head.cut"
printf 'POST /v1/provision HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{"device_id":"dev-a",' \
	>"$T_TMP/body.cut"
stall "truncated body" body "$T_TMP/body.cut"
# The six bodies the device handler parsed (truncated, garbage, unknown,
# duplicate, nesting, long token) are logged as device refusals; the rest
# never reach it.
class_end 6

# ---------------------------------------------------------------- clients
class_begin "slow clients"
before=$(grep -c 'event=conn.deadline .*phase=head' "$SRV_ERR")
out=$("$A" loris "$SRV_PORT" 6)
TRIED=$((TRIED + 6))
n=$(sed -n 's/^loris closed=\([0-9]*\) .*/\1/p' <<<"$out")
after=$(grep -c 'event=conn.deadline .*phase=head' "$SRV_ERR")
if [ "${n:-0}" -eq 6 ] && [ "$after" -eq $((before + 6)) ]; then
	REFUSED=$((REFUSED + 6)); t_ok "6 slow-loris clients closed by their head deadline ($out)"
else
	UNEXPECTED=$((UNEXPECTED + 6 - ${n:-0})); REFUSED=$((REFUSED + ${n:-0}))
	t_fail "slow-loris: $out, deadlines $before -> $after"
fi
# A body trickled at 512 B/s, 1/16 of the default body-min-rate (8K): cut
# once the 2 s body-timeout and the credit of its bytes are spent.
head -c 16000 /dev/zero | tr '\0' ' ' >"$T_TMP/slow.body"
{
	printf 'POST /v1/provision HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
	printf 'Content-Length: 16000\r\n\r\n'
	cat "$T_TMP/slow.body"
} >"$T_TMP/slow.req"
before=$(grep -c 'event=conn.deadline .*phase=body' "$SRV_ERR")
out=$("$A" pace "$SRV_PORT" 512 <"$T_TMP/slow.req")
TRIED=$((TRIED + 1))
if [[ $out =~ ^pace\ sent=[0-9]+\ closed=1\ status=0$ ]] &&
	[ "$(grep -c 'event=conn.deadline .*phase=body' "$SRV_ERR")" -eq $((before + 1)) ]; then
	REFUSED=$((REFUSED + 1)); t_ok "a body trickled below body-min-rate: closed by its body deadline ($out)"
else UNEXPECTED=$((UNEXPECTED + 1)); t_fail "slow body: $out"; fi
class_end 0

# More silent connections than the bound ($MAXCONN over two threads): the
# ones beyond it wait in the listen queue, get their handshake when the
# head deadline closes a holder, and are closed by their own deadline in
# turn; a good client meanwhile is served once a slot is free.
class_begin "many connections"
before=$(grep -c 'event=conn.deadline .*phase=head' "$SRV_ERR")
N=$((MAXCONN + 4))
"$A" hold "$SRV_PORT" $N >"$T_TMP/hold" 2>&1 &
hold_pid=$!
T_CLEANUP+=("kill $hold_pid 2>/dev/null")
t_wait "$T_TMP/hold" '^held' || true
t_run "many connections: another client is served beside them" \
	[ "$(srv_curl -o /dev/null -w '%{http_code}' "$SRV_URL/v1/health")" = 200 ]
wait "$hold_pid"
TRIED=$((TRIED + N))
after=$(grep -c 'event=conn.deadline .*phase=head' "$SRV_ERR")
if grep -q "^held $N$" "$T_TMP/hold" && grep -q "^closed $N$" "$T_TMP/hold" &&
	[ "$after" -ge $((before + N)) ]; then
	REFUSED=$((REFUSED + N)); t_ok "$N silent connections (bound $MAXCONN): all held, all closed by their deadline"
else
	UNEXPECTED=$((UNEXPECTED + N)); t_fail "many connections: $(tr '\n' ' ' <"$T_TMP/hold"), deadlines $before -> $after"
fi
class_end 0

# A flood from one address (127.0.0.9): its burst is answered, the rest
# 429 throttled with Retry-After equal in header and body; other
# addresses are served meanwhile (class_end's good request from 127.0.0.1).
class_begin "flood from one address"
SKIP=nonces
C_DIGEST=$(db_digest)
out=$("$A" -s 127.0.0.9 flood "$SRV_PORT" 320 /v1/nonce)
TRIED=$((TRIED + 20))
if grep -q '^flood 200=300 429=20$' <<<"$out" && grep -qE '^retry_after=[1-9][0-9]* code=throttled$' <<<"$out"; then
	REFUSED=$((REFUSED + 20)); t_ok "flood of 320 from 127.0.0.9: 300 answered, 20 throttled with Retry-After"
else UNEXPECTED=$((UNEXPECTED + 20)); t_fail "flood: $(tr '\n' ' ' <<<"$out")"; fi
t_grep "flood: throttling logged" 'event=request.throttled .*source=127.0.0.9' "$SRV_ERR"
t_run "flood: only the answered nonces stored" [ "$(sqlite3 -readonly "$db" "SELECT count(*) FROM nonces")" -ge 300 ]
class_end 0
SKIP=

srv_stop
t_run "server stops cleanly (exit 0)" [ "$SRV_RC" -eq 0 ]
t_run "no sanitizer report in the server's output" [ "$(grep -c 'Sanitizer' "$SRV_ERR")" -eq 0 ]
t_run "integrity_check ok" [ "$(sqlite3 -readonly "$db" 'PRAGMA integrity_check')" = ok ]
echo "RESULT $T_PASS $T_FAIL"
echo "attack: $TRIED tried, $REFUSED refused, $UNEXPECTED unexpected"
[ "$T_FAIL" -eq 0 ]
