#!/usr/bin/env bash
# openssl.sh - the stock openssl verification commands of formats/manifest.md
# pass on good manifests of every kind and fail on tampered ones; signatures
# made by the stock command verify with idprov-manifest; the committed
# samples verify; the CLI names file, line and field in its errors and keeps
# its documented exit codes.
source "$(dirname "$0")/../../lib.sh"
tool="$IDP_BIN/idprov-manifest"
samples="$IDP_TOP/samples/manifests"
cd "$T_TMP" || exit 1

# --- fixtures: station keys, a factory CA and a station certificate
"$tool" keygen --type p256 --out st.key >/dev/null
"$tool" keygen --type ed25519 --out ed.key >/dev/null
t_grep "keygen writes the private key with mode 0600" '^-rw-------' <(ls -l st.key)
"$tool" keygen --type p256 --out st.key 2>kg.err
rc=$?
if [ $rc -eq 1 ]; then t_ok "keygen over an existing key is refused (exit 1)"; else
	t_fail "keygen over an existing key exited $rc, not 1"; fi
t_grep "and says --force replaces it" 'REFUSED: st.key or st.pub exists; use --force' kg.err
t_refuse "keygen into a missing directory fails" "$tool" keygen --type p256 \
	--out "$T_TMP/no-dir/station.key" 2>kg.err
t_grep "naming the key's path and the missing directory" \
	"no-dir/station.key: its directory does not exist" kg.err
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=test factory CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -out ca.pem
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' >st.ext
openssl req -new -key st.key -subj "/CN=station-01" 2>/dev/null |
	openssl x509 -req -CA ca.pem -CAkey ca.key -sha256 -set_serial 7 -days 30 -extfile st.ext \
		-out st.crt 2>/dev/null
mk() { # mk OUT KEY [extra args...]
	local out=$1 key=$2
	shift 2
	"$tool" create --key "$key" --batch "b-$out" --station station-01 --seq 1 \
		--product "Test P1" --devices "$samples/devices.csv" --out "$out.manifest" "$@" >/dev/null
}
mk es st.key
mk cms st.key --cert st.crt
mk ed ed.key
# one changed byte in the body (the first serial's last digit)
for k in es cms ed; do
	sed '2s/000001"/000009"/' "$k.manifest" >"$k.bad"
	cmp -s "$k.manifest" "$k.bad" && t_fail "tampering $k changed nothing"
done

# --- the stock commands, exactly as formats/manifest.md shows them
t_run "openssl dgst verifies es256" \
	openssl dgst -sha256 -verify st.pub -signature es.manifest.sig es.manifest
t_refuse "openssl dgst refuses tampered es256" \
	openssl dgst -sha256 -verify st.pub -signature es.manifest.sig es.bad
t_run "openssl cms verifies cms" \
	openssl cms -verify -binary -inform DER -in cms.manifest.sig -content cms.manifest \
	-CAfile ca.pem -out /dev/null
t_refuse "openssl cms refuses tampered cms" \
	openssl cms -verify -binary -inform DER -in cms.manifest.sig -content cms.bad \
	-CAfile ca.pem -out /dev/null
openssl dgst -sha256 -binary -out ed.sha256 ed.manifest
openssl dgst -sha256 -binary -out ed.bad.sha256 ed.bad
t_run "openssl pkeyutl verifies ed25519 over SHA-256(body)" \
	openssl pkeyutl -verify -pubin -inkey ed.pub -rawin -in ed.sha256 -sigfile ed.manifest.sig
t_refuse "openssl pkeyutl refuses tampered ed25519" \
	openssl pkeyutl -verify -pubin -inkey ed.pub -rawin -in ed.bad.sha256 -sigfile ed.manifest.sig
t_refuse "openssl pkeyutl refuses ed25519 over the raw body (not what is signed)" \
	openssl pkeyutl -verify -pubin -inkey ed.pub -rawin -in ed.manifest -sigfile ed.manifest.sig

# --- our verifier agrees, both ways
t_run "idprov-manifest verifies es256" "$tool" verify es.manifest --station-pub st.pub -q
t_run "idprov-manifest verifies cms" "$tool" verify cms.manifest --ca ca.pem -q
t_run "idprov-manifest verifies ed25519" "$tool" verify ed.manifest --station-pub ed.pub -q
for k in es:--station-pub:st.pub cms:--ca:ca.pem ed:--station-pub:ed.pub; do
	IFS=: read -r n opt f <<<"$k"
	"$tool" verify "$n.bad" --sig "$n.manifest.sig" "$opt" "$f" 2>err.txt
	rc=$?
	[ $rc -eq 1 ] && t_ok "tampered $n refused with exit 1" || t_fail "tampered $n: exit $rc"
	t_grep "tampered $n: named refusal" "REFUSED: $n.bad: signature: does not match the body" err.txt
done
openssl dgst -sha256 -sign st.key -out es.stock.sig es.manifest
t_run "a stock es256 signature verifies with idprov-manifest" \
	"$tool" verify es.manifest --sig es.stock.sig --station-pub st.pub -q
openssl cms -sign -binary -in cms.manifest -signer st.crt -inkey st.key -outform DER \
	-out cms.stock.sig
t_run "a stock cms signature verifies with idprov-manifest" \
	"$tool" verify cms.manifest --sig cms.stock.sig --ca ca.pem -q
openssl pkeyutl -sign -inkey ed.key -rawin -in ed.sha256 -out ed.stock.sig
t_run "a stock ed25519 signature verifies with idprov-manifest" \
	"$tool" verify ed.manifest --sig ed.stock.sig --station-pub ed.pub -q
t_refuse "cms against another CA is refused" "$tool" verify cms.manifest --ca "$samples/sample-factory-ca.pem"

# --- an intermediate CA rides inside the cms; the purpose is smime_sign for both
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out int.key 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n' >int.ext
openssl req -new -key int.key -subj "/CN=test line CA" 2>/dev/null |
	openssl x509 -req -CA ca.pem -CAkey ca.key -sha256 -set_serial 8 -days 30 -extfile int.ext \
		-out int.pem 2>/dev/null
openssl req -new -key st.key -subj "/OU=via line CA/CN=station-01" 2>/dev/null |
	openssl x509 -req -CA int.pem -CAkey int.key -sha256 -set_serial 9 -days 30 -extfile st.ext \
		-out st-int.crt 2>/dev/null
mk chain st.key --cert st-int.crt --chain int.pem
t_run "a chain through an intermediate verifies (root only trusted)" \
	"$tool" verify chain.manifest --ca ca.pem -q
t_run "openssl cms verifies the same chain" \
	openssl cms -verify -binary -inform DER -in chain.manifest.sig -content chain.manifest \
	-CAfile ca.pem -out /dev/null
mk nochain st.key --cert st-int.crt
t_refuse "without the intermediate it does not" "$tool" verify nochain.manifest --ca ca.pem -q
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >tls.ext
openssl req -new -key st.key -subj "/OU=a TLS server/CN=station-01" 2>/dev/null |
	openssl x509 -req -CA ca.pem -CAkey ca.key -sha256 -set_serial 10 -days 30 -extfile tls.ext \
		-out tls.crt 2>/dev/null
mk tls st.key --cert tls.crt
"$tool" verify tls.manifest --ca ca.pem 2>err.txt
t_grep "a serverAuth-only certificate cannot sign manifests" \
	"station certificate: unsuitable certificate purpose" err.txt
t_refuse "nor for openssl cms -verify" \
	openssl cms -verify -binary -inform DER -in tls.manifest.sig -content tls.manifest \
	-CAfile ca.pem -out /dev/null

# --- the certificate names the station: a certified station cannot write as another
"$tool" create --key st.key --cert st.crt --batch b-spoof --station station-02 --seq 1 \
	--product "Test P1" --devices "$samples/devices.csv" --out spoof.manifest 2>err.txt
t_grep "create refuses a --station that is not the certificate's CN" \
	'station: header says "station-02" but the station certificate is for "station-01"' err.txt
t_refuse "and writes no manifest" test -e spoof.manifest
# the same batch made with the stock command, as a rogue station would
"$tool" create --key st.key --batch b-spoof --station station-02 --seq 1 \
	--product "Test P1" --devices "$samples/devices.csv" --out spoof.manifest >/dev/null
sed -i 's/"sig":"es256"/"sig":"cms"/' spoof.manifest
openssl cms -sign -binary -in spoof.manifest -signer st.crt -inkey st.key -outform DER \
	-out spoof.manifest.sig
t_run "openssl cms alone accepts a batch another station's certificate signed" \
	openssl cms -verify -binary -inform DER -in spoof.manifest.sig -content spoof.manifest \
	-CAfile ca.pem -out /dev/null
"$tool" verify spoof.manifest --ca ca.pem 2>err.txt
t_grep "idprov-manifest refuses it, naming both" \
	'station: header says "station-02" but the station certificate is for "station-01"' err.txt

# --- the committed samples verify
t_run "sample es256 verifies" "$tool" verify "$samples/sample-es256.manifest" \
	--station-pub "$samples/sample-station-p256.pub" -q
t_run "sample cms verifies" "$tool" verify "$samples/sample-cms.manifest" \
	--ca "$samples/sample-factory-ca.pem" -q
t_run "sample ed25519 verifies" "$tool" verify "$samples/sample-ed25519.manifest" \
	--station-pub "$samples/sample-station-ed25519.pub" -q
t_run "sample cms chains to the es256 sample (prev)" \
	grep -q "\"prev\":\"$(openssl dgst -sha256 -r "$samples/sample-es256.manifest" | cut -c1-64)\"" \
	"$samples/sample-cms.manifest"

# --- errors name file, line and field, after a valid signature
# A signed body whose line 3 has a bad MAC: the signature is fine, the record is not.
{
	head -n 2 es.manifest
	sed -n 3p es.manifest | sed 's/"mac":"[^"]*"/"mac":"00:11:22:33:44"/'
	tail -n +4 es.manifest
} >badmac.manifest
openssl dgst -sha256 -sign st.key -out badmac.manifest.sig badmac.manifest
"$tool" verify badmac.manifest --station-pub st.pub 2>err.txt
t_grep "a bad MAC is named by line and field" \
	'REFUSED: badmac.manifest: line 3: mac: "00:11:22:33:44" is not an EUI-48 address' err.txt
{
	head -n 3 es.manifest
	sed -n 3p es.manifest | sed 's/"id":"dev-0002"/"id":"dev-0099"/; s/"mac":"[^"]*"/"mac":"02:1a:2b:00:00:99"/; s/,"pub":"[^"]*"//'
	tail -n +5 es.manifest
} >dup.manifest
openssl dgst -sha256 -sign st.key -out dup.manifest.sig dup.manifest
"$tool" verify dup.manifest --station-pub st.pub 2>err.txt
t_grep "a repeated serial is named by line" \
	'line 4: serial: "SX1-2026-000002" appears twice in the batch' err.txt
printf 'dev-1,02:00:00:00:00:01,S1\ndev-2,02-00-00-00-00-02,S2\n' >devs.csv
"$tool" create --key st.key --batch b --station s --seq 1 --product p --devices devs.csv \
	--out x.manifest 2>err.txt
rc=$?
[ $rc -eq 1 ] && t_ok "a bad device list exits 1" || t_fail "bad device list: exit $rc"
t_grep "a bad device list is named by file, line and field" \
	'devs.csv: line 2: mac: "02-00-00-00-00-02" is not in canonical form' err.txt
t_refuse "no manifest is written from a bad list" test -e x.manifest
"$tool" create --key st.key --batch b --station s --seq 1 --product p --devices "$samples/devices.csv" \
	--created 2026-11-23T12:00:00Zjunk --out x.manifest 2>err.txt
t_grep "an over-long --created is refused, not cut" 'REFUSED: --created: longer than 20 bytes' err.txt
"$tool" verify es.manifest 2>/dev/null
rc=$?
[ $rc -eq 2 ] && t_ok "missing trust is a usage error (exit 2)" || t_fail "usage: exit $rc"
"$tool" verify nosuch.manifest --station-pub st.pub 2>err.txt
rc=$?
[ $rc -eq 3 ] && t_ok "a missing file exits 3" || t_fail "missing file: exit $rc"
t_done
