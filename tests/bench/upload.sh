#!/usr/bin/env bash
# upload.sh - issue 17: the clients' peak RSS when they send a manifest
# (idprov-admin import, idprov-station upload: the file is read as it is
# sent, fio_httpc_do_file), for 100,000 devices against the same client
# sending 100 devices in the same run (the ceiling: what the client needs
# whatever the body), and with IDP_BENCH_1M=1 for 1,000,000 devices (as
# bench_import). Goal: flat, <= 1.10 of the ceiling. Peak RSS from
# /usr/bin/time (package time); the best of 3 runs each. Prints figures;
# fails only when an upload fails.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../integration/server/idprovd.inc"
. "$(dirname "$0")/../integration/station/station.inc"

samples=$IDP_TOP/samples/manifests
st=$T_TMP/state
mkdir -p "$st/batches"
st_pki "$T_TMP/pki" station-01 || { echo "upload bench: openssl failed"; exit 1; }
srv_start "$T_TMP/srv" --station-ca "$T_TMP/pki/ca.pem" --max-manifest 1G ||
	{ echo "upload bench: idprovd did not start"; exit 1; }
cp "$T_TMP/srv/admin.token" "$T_TMP/token"
admin=("$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" --token-file "$T_TMP/token")
station=("$IDP_BIN/idprov-station" upload --state "$st" --server "$SRV_URL" --ca "$SRV_CA"
	--client-cert "$T_TMP/pki/client.pem" --client-key "$T_TMP/pki/client.key")
"${admin[@]}" station add station-01 "$samples/sample-station-p256.pub" >/dev/null ||
	{ echo "upload bench: station add failed"; exit 1; }

# manifest BATCH SEQ N [PREV]: a signed manifest in the station's state
manifest() {
	awk -v n="$3" -v p="$1-" 'BEGIN { for (i = 1; i <= n; i++)
		printf "%s%07d,02:%02x:%02x:%02x:%02x:%02x,S%s%07d\n", p, i, length(p),
			int(i / 16777216) % 256, int(i / 65536) % 256, int(i / 256) % 256, i % 256, p, i }' \
		>"$T_TMP/$1.csv"
	"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" --batch "$1" \
		--station station-01 --seq "$2" --product sx1 --devices "$T_TMP/$1.csv" --format csv \
		${4:+--prev "$st/batches/$4.manifest"} --out "$st/batches/$1.manifest" >/dev/null &&
		rm -f "$T_TMP/$1.csv"
}
# rss CMD...: the command's peak RSS in KiB and its CPU seconds (user +
# system), each the best of 3 (the first run imports, the later ones are
# answered "already imported")
rss() {
	local best="" cpu="" r c _
	for _ in 1 2 3; do
		/usr/bin/time -f '%M %U %S' -o "$T_TMP/rss" "$@" >/dev/null 2>>"$T_TMP/bench.log" ||
			return 1
		read -r r c < <(tail -1 "$T_TMP/rss" | awk '{print $1, $2 + $3}')
		if [ -z "$best" ] || [ "$r" -lt "$best" ]; then best=$r; fi
		if [ -z "$cpu" ] || awk -v a="$c" -v b="$cpu" 'BEGIN { exit !(a < b) }'; then cpu=$c; fi
	done
	echo "$best $cpu"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

sizes="100 100000"
[ "${IDP_BENCH_1M:-}" = 1 ] && sizes="$sizes 1000000"
prev="" seq=0
for n in $sizes; do
	seq=$((seq + 1))
	manifest "m$n" $seq "$n" "$prev" || { echo "upload bench: manifest of $n failed"; exit 1; }
	prev=m$n
	bytes=$(wc -c <"$st/batches/m$n.manifest")
	read -r a ac < <(rss "${admin[@]}" import "$st/batches/m$n.manifest")
	[ -n "$a" ] || { echo "upload bench: import of $n failed"; exit 1; }
	read -r s sc < <(rss "${station[@]}" --batch "m$n")
	[ -n "$s" ] || { echo "upload bench: station upload of $n failed"; exit 1; }
	eval "adm_$n=$a sta_$n=$s"
	echo "$n devices ($bytes bytes): peak RSS (CPU) of idprov-admin import $a KiB ($ac s)," \
		"idprov-station upload $s KiB ($sc s)"
done
# shellcheck disable=SC2154 # adm_N and sta_N are set by the eval above
{
	echo "idprov-admin import peak RSS, 100,000 / 100 devices: $(ratio "$adm_100000" "$adm_100") (goal: flat, <= 1.10)"
	echo "idprov-station upload peak RSS, 100,000 / 100 devices: $(ratio "$sta_100000" "$sta_100") (goal: flat, <= 1.10)"
	if [ "${IDP_BENCH_1M:-}" = 1 ]; then
		echo "idprov-admin import peak RSS, 1,000,000 / 100 devices: $(ratio "$adm_1000000" "$adm_100") (goal: flat, <= 1.10)"
		echo "idprov-station upload peak RSS, 1,000,000 / 100 devices: $(ratio "$sta_1000000" "$sta_100") (goal: flat, <= 1.10)"
	else
		echo "upload peak RSS at 1,000,000 devices: not run (IDP_BENCH_1M=1 runs it)"
	fi
}
srv_stop
