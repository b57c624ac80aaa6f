#!/usr/bin/env bash
# relay.sh - a relay between the agent and the server is refused: a relay
# that terminates the agent's TLS with its own certificate (which this device
# was made to trust: the seed's "devices that do not possess the server CA")
# and forwards the request over its own TLS connection to idprovd (socat
# OPENSSL-LISTEN -> OPENSSL) carries the device's proof verbatim; the proof
# signs the RFC 9266 exporter of the agent's connection, the server checks
# it against the exporter of the relay's, and refuses with 401 pop_invalid
# (formats/api.md section 5.1). The device stays preloaded, unprovisioned;
# the same agent connecting directly is approved, so the relay alone made
# the difference. test_api_server.c relays a proof between two connections
# in-process; this puts a real relay between the real programs.
. "$(dirname "$0")/e2e.inc"

t_run "factory: batch R-1 read from 1 agent" e2e_read R-1 1
t_run "server starts" e2e_srv_start
t_run "station trusted" adm station add st-1 "$T_TMP/st.pub"
e2e_upload --batch R-1
t_run "R-1 uploaded" [ $? = 0 ]

# The relay: its own certificate for 127.0.0.1, a port the kernel picks.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=relay \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$T_TMP/relay.key" -out "$T_TMP/relay.pem" 2>/dev/null
socat -d -d "OPENSSL-LISTEN:0,bind=127.0.0.1,fork,reuseaddr,cert=$T_TMP/relay.pem,key=$T_TMP/relay.key,verify=0" \
	"OPENSSL:127.0.0.1:$SRV_PORT,cafile=$SRV_CA,verify=1" 2>"$T_TMP/relay.log" &
relay=$!
T_CLEANUP+=("st_kill $relay")
rport=
for _ in $(seq 1 100); do
	rport=$(ss -Hltnp 2>/dev/null | grep "pid=$relay," | awk '{print $4}' | sed 's/.*://' | head -1)
	[ -n "$rport" ] && break
	sleep 0.1
done
t_run "relay listening on 127.0.0.1:$rport" [ -n "$rport" ]

srv_url=$SRV_URL srv_ca=$SRV_CA
SRV_URL=https://127.0.0.1:$rport SRV_CA=$T_TMP/relay.pem
e2e_site 1
t_run "through the relay: refused (exit 6)" [ $? = 6 ]
SRV_URL=$srv_url SRV_CA=$srv_ca
t_grep "the relay forwarded a connection to the server" 'starting data transfer loop|transferred' "$T_TMP/relay.log"
t_grep "the agent names the refusal: 401 pop_invalid, the TLS channel" \
	'server refused \(401 pop_invalid\): pop: signature does not match .*TLS channel' "$T_TMP/site-1.log"
t_grep "the server logged the refused proof" 'event=device.refused .*check=pop_invalid' "$SRV_ERR"
adm --json devices >"$T_TMP/devs.json"
t_grep "device 1 still preloaded" '"id":"e2e-01","state":"preloaded"' "$T_TMP/devs.json"
e2e_device 1
t_run "the device had pinned the relay's certificate" cmp -s "$E2E_DIR/ca.pem" "$T_TMP/relay.pem"
t_refuse "the agent holds no token" grep -q '"token":"device"' <("$IDP_BIN/idprov-agent" \
	--state-dir "$E2E_DIR" --id "$E2E_ID" status --json)

# The device's trust reset (the pin removed), the same key, straight to the server.
rm "$E2E_DIR/ca.pem"
e2e_site 1
t_run "directly: approved (exit 0)" [ $? = 0 ]
adm --json devices >"$T_TMP/devs.json"
t_grep "device 1 approved with its key" \
	"\"id\":\"e2e-01\",\"state\":\"approved\"[^}]*\"key_sha256\":\"$(e2e_fp 1)\"" "$T_TMP/devs.json"
srv_stop
t_done
