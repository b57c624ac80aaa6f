#!/usr/bin/env bash
# demo.sh BIN_DIR - what exists so far, run end to end: make station keys,
# build and sign a batch manifest of each signature kind from the sample
# device list, verify it with idprov-manifest and again with the stock
# openssl command, then change one byte and show that both refuse it.
set -euo pipefail
bin=$(cd "${1:-build/plain/bin}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
tool="$bin/idprov-manifest"
work=$(mktemp -d)
srv_pid=""
# The demo's server is stopped by its PID, also when a step fails.
trap '[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
devices="$top/samples/manifests/devices.csv"

step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '$ %s\n' "$*"; "$@"; }
say() { printf '%s\n' "$*"; }
# refuse CMD...: run a command that must fail; show its message, not a trace.
refuse() {
	printf '$ %s\n' "$*"
	if "$@"; then echo "demo: UNEXPECTED: the tampered manifest was accepted" >&2; exit 1; fi
	echo "(refused, as it must be)"
}
# tamper IN OUT: copy IN to OUT with one byte changed (a digit of the first serial).
tamper() {
	cp "$1" "$2"
	local off old new
	off=$(grep -bo '"serial":"[^"]*' "$2" | sed -n 1p | cut -d: -f1)
	off=$((off + 10))
	old=$(dd if="$2" bs=1 skip="$off" count=1 2>/dev/null)
	new=$(printf '%s' "$old" | tr '0-9A-Za-z' '1-90B-ZAb-za')
	printf '%s' "$new" | dd of="$2" bs=1 seek="$off" conv=notrunc 2>/dev/null
	echo "$2: byte $off (in the first serial) changed from '$old' to '$new'"
}
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi

echo "idprov demo: batch manifests (formats/manifest.md); working in $work"
echo "device list: $devices"

step "1. es256: a P-256 station key signs the manifest"
run "$tool" keygen --type p256 --out station.key
run "$tool" create --key station.key --batch demo-001 --station station-01 --seq 1 \
	--product "Sensor X1 rev B" --devices "$devices" --out demo-001.manifest
run head -c 300 demo-001.manifest; echo " ..."
run "$tool" show demo-001.manifest --station-pub station.pub
step "   ... and the stock openssl command agrees"
run openssl dgst -sha256 -verify station.pub -signature demo-001.manifest.sig demo-001.manifest
step "   one changed byte: both refuse"
tamper demo-001.manifest bad-001.manifest
refuse "$tool" verify bad-001.manifest --sig demo-001.manifest.sig --station-pub station.pub
refuse openssl dgst -sha256 -verify station.pub -signature demo-001.manifest.sig bad-001.manifest

step "2. cms: a factory CA certifies the station key; the certificate rides in the signature"
run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out factory-ca.key
run openssl req -x509 -new -key factory-ca.key -sha256 -days 3650 -subj "/CN=demo factory CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-out factory-ca.pem
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' >station.ext
run openssl req -new -key station.key -subj "/CN=station-01" -out station.csr
run openssl x509 -req -in station.csr -CA factory-ca.pem -CAkey factory-ca.key -sha256 \
	-set_serial 2 -days 825 -extfile station.ext -out station.crt
run "$tool" create --key station.key --cert station.crt --batch demo-002 --station station-01 \
	--seq 2 --prev demo-001.manifest --product "Sensor X1 rev B" --devices "$devices" \
	--out demo-002.manifest
run "$tool" verify demo-002.manifest --ca factory-ca.pem
run openssl cms -verify -binary -inform DER -in demo-002.manifest.sig -content demo-002.manifest \
	-CAfile factory-ca.pem -out /dev/null
step "   one changed byte: both refuse"
tamper demo-002.manifest bad-002.manifest
refuse "$tool" verify bad-002.manifest --sig demo-002.manifest.sig --ca factory-ca.pem
refuse openssl cms -verify -binary -inform DER -in demo-002.manifest.sig -content bad-002.manifest \
	-CAfile factory-ca.pem -out /dev/null

step "3. ed25519: Ed25519 over SHA-256(body), so verification streams"
run "$tool" keygen --type ed25519 --out station-ed.key
run "$tool" create --key station-ed.key --batch demo-003 --station station-02 --seq 1 \
	--product "Sensor X1 rev B" --devices "$devices" --out demo-003.manifest
run "$tool" verify demo-003.manifest --station-pub station-ed.pub
run openssl dgst -sha256 -binary -out demo-003.sha256 demo-003.manifest
run openssl pkeyutl -verify -pubin -inkey station-ed.pub -rawin -in demo-003.sha256 \
	-sigfile demo-003.manifest.sig
step "   one changed byte: both refuse"
tamper demo-003.manifest bad-003.manifest
refuse "$tool" verify bad-003.manifest --sig demo-003.manifest.sig --station-pub station-ed.pub
openssl dgst -sha256 -binary -out bad-003.sha256 bad-003.manifest
refuse openssl pkeyutl -verify -pubin -inkey station-ed.pub -rawin -in bad-003.sha256 \
	-sigfile demo-003.manifest.sig

step "4. a manifest signed by the wrong station is refused by name"
refuse "$tool" verify demo-003.manifest --station-pub station.pub

step "5. on site: idprovd with no configuration; the manifests arrive as files"
say "\$ idprovd --foreground --state-dir state --listen 127.0.0.1:0   (first start creates CA, keys, database)"
"$bin/idprovd" --foreground --state-dir state --listen 127.0.0.1:0 --threads 2 \
	>idprovd.out 2>idprovd.log &
srv_pid=$!
port=""
for _ in $(seq 1 100); do
	port=$(grep -o 'event=http.listening addr=127.0.0.1:[0-9]*' idprovd.log | head -1 | sed 's/.*://' || true)
	[ -n "$port" ] && break
	kill -0 "$srv_pid" 2>/dev/null || break
	sleep 0.1
done
[ -n "$port" ] || { cat idprovd.log; echo "demo: idprovd did not start" >&2; exit 1; }
say "listening on 127.0.0.1:$port; the admin credential is in state/admin.token (mode 0600, never printed)"
admin="$bin/idprov-admin --server https://127.0.0.1:$port --ca state/ca.pem --token-file state/admin.token"
run $admin station add station-01 station.pub
run $admin ca add factory-ca.pem
run $admin import demo-001.manifest
run $admin import demo-001.manifest
say "(the same batch twice imports once)"
run $admin devices
step "   a changed byte, and devices already enrolled by another batch, are refused"
refuse $admin import bad-001.manifest --sig demo-001.manifest.sig
refuse $admin import demo-002.manifest
run $admin flags
kill -TERM "$srv_pid" && wait "$srv_pid" && srv_pid=""
say "idprovd stopped (SIGTERM, clean exit)"

printf '\nidprov demo: done (the station tool on serial/USB and the device agent come next)\n'
