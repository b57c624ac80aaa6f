#!/usr/bin/env bash
# agent.sh - what one site provisioning costs a device: the wall time and
# peak RSS of `idprov-agent run --once` provisioning a fresh device (its key
# made beforehand; CA pinned from a file, provision, exchange: two signed
# requests) against curl doing one HTTPS GET of /v1/health on the same
# server, alternated in the same run; medians and ratios (goal: <= 1.5).
# With swtpm, the same provisioning with the key in a software TPM, each
# from a fresh state dir (a device reset in the field: the server approves
# the key it recorded the first time); the difference is the TPM's cost,
# over a TCP socket. Then the binary's size and the
# shared libraries it loads. Then renewals by an agent that stays (the
# library in tests/tools/agent_embed, each renewal on a new connection):
# resumed TLS sessions against full handshakes (a second server started
# with tls-session-lifetime 0). Prints figures; fails only when a run fails.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../integration/server/idprovd.inc"

A=$IDP_BIN/idprov-agent
N=9
samples=$IDP_TOP/samples/manifests
srv_start "$T_TMP/srv" || { echo "agent bench: idprovd did not start"; exit 1; }
token=$(cat "$T_TMP/srv/admin.token")
adm() { IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" "$@"; }
{
	for i in $(seq 1 $N); do printf 'dev-b%02d,02:00:5e:00:b0:%02x,SB-%04d,\n' "$i" "$i" "$i"; done
	echo "dev-tpm,02:00:5e:00:c0:01,SB-0100,"
	for i in 1 2 3; do printf 'dev-rn%d,02:00:5e:00:c1:%02x,SB-02%02d,\n' "$i" "$i" "$i"; done
} >"$T_TMP/devs.csv"
if ! { "$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" \
	--batch b-bench --station station-01 --seq 1 --product sx1 --devices "$T_TMP/devs.csv" \
	--format csv --out "$T_TMP/b.manifest" >/dev/null &&
	adm station add station-01 "$samples/sample-station-p256.pub" >/dev/null &&
	adm import "$T_TMP/b.manifest" --sig "$T_TMP/b.manifest.sig" >/dev/null; }; then
	echo "agent bench: manifest import failed"
	exit 1
fi

# measure OUT CMD...: append "MICROSECONDS KILOBYTES" (wall, peak RSS) to OUT.
measure() {
	local out=$1 t0 t1 rss
	shift
	t0=$(date +%s%N)
	/usr/bin/time -f '%M' -o "$T_TMP/rss" "$@" >/dev/null 2>>"$T_TMP/bench.log" || return 1
	t1=$(date +%s%N)
	rss=$(tail -1 "$T_TMP/rss")
	echo "$(((t1 - t0) / 1000)) $rss" >>"$out"
}
# median FILE COLUMN
median() { cut -d' ' -f"$2" "$1" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# swtpm for the TPM line, when it starts (as tests/integration/agent/tpm.sh).
tpm=""
mkdir -p "$T_TMP/tpm"
port=$((20000 + RANDOM % 20000))
if swtpm socket --tpm2 --tpmstate dir="$T_TMP/tpm" --server type=tcp,port=$port,bindaddr=127.0.0.1 \
	--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear \
	--pid file="$T_TMP/swtpm.pid" --daemon 2>/dev/null; then
	T_CLEANUP+=("kill $(cat "$T_TMP/swtpm.pid") 2>/dev/null || true")
	export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port" TPM2OPENSSL_TCTI="swtpm:host=127.0.0.1,port=$port"
	d=$T_TMP/mk
	mkdir -p "$d"
	tpm2_createprimary -Q -C o -G ecc256 -c "$d/p.ctx" && tpm2_flushcontext -t &&
		tpm2_create -Q -C "$d/p.ctx" -G ecc256:ecdsa-sha256 -u "$d/k.pub" -r "$d/k.priv" &&
		tpm2_flushcontext -t && tpm2_load -Q -C "$d/p.ctx" -u "$d/k.pub" -r "$d/k.priv" -c "$d/k.ctx" &&
		tpm2_evictcontrol -Q -C o -c "$d/k.ctx" 0x81000001 >/dev/null && tpm2_flushcontext -t &&
		tpm=yes
fi

for i in $(seq 1 $N); do
	id=$(printf 'dev-b%02d' "$i")
	mac=$(printf '02:00:5e:00:b0:%02x' "$i")
	"$A" --state-dir "$T_TMP/a$i" --id "$id" --mac "$mac" key >/dev/null 2>>"$T_TMP/bench.log"
	measure "$T_TMP/agent" "$A" --state-dir "$T_TMP/a$i" --id "$id" --mac "$mac" \
		--server "$SRV_URL" --ca "$SRV_CA" run --once || { echo "agent bench: agent failed"; exit 1; }
	measure "$T_TMP/curl" curl -sS --max-time 20 --cacert "$SRV_CA" -o /dev/null "$SRV_URL/v1/health" ||
		{ echo "agent bench: curl failed"; exit 1; }
	if [ -n "$tpm" ]; then
		measure "$T_TMP/tpmrun" "$A" --state-dir "$T_TMP/t$i" --id dev-tpm \
			--mac 02:00:5e:00:c0:01 --key-uri handle:0x81000001 --key-providers tpm2 \
			--server "$SRV_URL" --ca "$SRV_CA" run --once ||
			{ echo "agent bench: agent with the TPM key failed"; exit 1; }
	fi
done
aw=$(median "$T_TMP/agent" 1) ar=$(median "$T_TMP/agent" 2)
cw=$(median "$T_TMP/curl" 1) cr=$(median "$T_TMP/curl" 2)
awk -v aw="$aw" -v ar="$ar" -v cw="$cw" -v cr="$cr" -v n=$N 'BEGIN {
	printf "agent provisioning  wall %6.1f ms  curl GET %6.1f ms  ratio %.2f (median of %d; goal <= 1.5)%s\n", aw/1000, cw/1000, aw/cw, n, aw/cw <= 1.5 ? "" : "  ABOVE GOAL"
	printf "agent provisioning  peak RSS %6d kB  curl %6d kB  ratio %.2f (median of %d)\n", ar, cr, ar/cr, n }'
if [ -n "$tpm" ]; then
	tw=$(median "$T_TMP/tpmrun" 1)
	awk -v tw="$tw" -v aw="$aw" -v n=$N 'BEGIN {
		printf "agent provisioning, TPM key  wall %6.1f ms  file key %6.1f ms  ratio %.2f (median of %d)\n", tw/1000, aw/1000, tw/aw, n }'
else
	echo "agent with TPM key: skipped (swtpm did not start)"
fi
echo "idprov-agent binary: $(stat -c %s "$A") bytes ($(basename "$(dirname "$IDP_BIN")") build)"
echo "shared libraries: $(ldd "$A" | awk '{print $1}' | sed 's|.*/||' | sort | tr '\n' ' ')"

# Renewals in one process, each on a new connection: median wall time and
# agent CPU time of one agt_run_once renewal, resumed (ticket) against full
# handshakes (the wall time is mostly fsyncs, the agent's and the server's
# commit; the handshake shows in the CPU time); three
# rounds of R renewals on each server, alternating which goes first.
R=7
renewals() { # OUT DEVICE-NUMBER URL CA: R renewals' microseconds added to OUT
	"$IDP_BUILD/tools/agent_embed" "$T_TMP/ren$2.$RANDOM" "dev-rn$2" "02:00:5e:00:c1:0$2" "$3" "$4" "$R" \
		2>>"$T_TMP/bench.log" |
		awk '/^renewed/ {sub(/us=/, "", $3); sub(/cpu_us=/, "", $4); print $3 " " ($0 ~ /tls=resumed/) " " $4}' >>"$1"
}
url1=$SRV_URL ca1=$SRV_CA
: >"$T_TMP/ren1" && : >"$T_TMP/ren0"
if srv_start "$T_TMP/srv0" --tls-session-lifetime 0 && token=$(cat "$T_TMP/srv0/admin.token") &&
	adm station add station-01 "$samples/sample-station-p256.pub" >/dev/null &&
	adm import "$T_TMP/b.manifest" --sig "$T_TMP/b.manifest.sig" >/dev/null &&
	renewals "$T_TMP/ren1" 1 "$url1" "$ca1" && renewals "$T_TMP/ren0" 1 "$SRV_URL" "$SRV_CA" &&
	renewals "$T_TMP/ren0" 2 "$SRV_URL" "$SRV_CA" && renewals "$T_TMP/ren1" 2 "$url1" "$ca1" &&
	renewals "$T_TMP/ren1" 3 "$url1" "$ca1" && renewals "$T_TMP/ren0" 3 "$SRV_URL" "$SRV_CA" &&
	[ "$(awk '$2 == 1' "$T_TMP/ren1" | wc -l)" = $((3 * R)) ] &&
	[ "$(awk '$2 == 0' "$T_TMP/ren0" | wc -l)" = $((3 * R)) ]; then
	rw=$(median "$T_TMP/ren1" 1) fw=$(median "$T_TMP/ren0" 1)
	rc=$(median "$T_TMP/ren1" 3) fc=$(median "$T_TMP/ren0" 3)
	awk -v rw="$rw" -v fw="$fw" -v rc="$rc" -v fc="$fc" -v n=$((3 * R)) 'BEGIN {
		printf "agent renewal  resumed TLS %6.2f ms  full handshake %6.2f ms  speed-up %.2f (wall, median of %d)\n", rw/1000, fw/1000, fw/rw, n
		printf "agent renewal  resumed TLS %6.2f ms  full handshake %6.2f ms  speed-up %.2f (agent CPU, median of %d)\n", rc/1000, fc/1000, (rc > 0 ? fc/rc : 0), n }'
else
	echo "agent bench: renewals failed"
	exit 1
fi
