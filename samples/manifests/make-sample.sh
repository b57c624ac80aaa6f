#!/usr/bin/env bash
# make-sample.sh [BIN_DIR] - (re)generate the signed sample manifests in this
# directory from the device lists, one per signature kind, with the SAMPLE keys
# here (made on first run). The keys are published: never trust them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bin=${1:-$top/build/plain/bin}
tool="$bin/idprov-manifest"
cd "$here"

[ -f sample-station-p256.key ] ||
	"$tool" keygen --type p256 --out sample-station-p256.key
[ -f sample-station-ed25519.key ] ||
	"$tool" keygen --type ed25519 --out sample-station-ed25519.key
if [ ! -f sample-factory-ca.pem ]; then
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out sample-factory-ca.key
	openssl req -x509 -new -key sample-factory-ca.key -sha256 -days 9000 \
		-subj "/O=idprov SAMPLE/CN=SAMPLE factory CA (do not trust)" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
		-out sample-factory-ca.pem
fi
if [ ! -f sample-station.crt ]; then
	ext=$(mktemp)
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' >"$ext"
	openssl req -new -key sample-station-p256.key -subj "/O=idprov SAMPLE/CN=station-01" |
		openssl x509 -req -CA sample-factory-ca.pem -CAkey sample-factory-ca.key -sha256 \
			-set_serial 2 -days 9000 -extfile "$ext" -out sample-station.crt
	rm -f "$ext"
fi

common=(--product "Sensor X1 rev B" --created 2026-11-23T12:00:00Z)
"$tool" create "${common[@]}" --station station-01 --key sample-station-p256.key \
	--batch sample-es256 --seq 1 --devices devices.csv --out sample-es256.manifest
"$tool" create "${common[@]}" --station station-01 --key sample-station-p256.key \
	--cert sample-station.crt --batch sample-cms --seq 2 --prev sample-es256.manifest \
	--devices devices-2.csv --out sample-cms.manifest
"$tool" create "${common[@]}" --station station-02 --key sample-station-ed25519.key \
	--batch sample-ed25519 --seq 1 --devices devices.jsonl --out sample-ed25519.manifest
