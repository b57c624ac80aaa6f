#!/usr/bin/env bash
# durable.sh - the order of the agent's writes on a first provisioning, read
# from the system calls (strace): every state file's content is fsynced
# before its rename (except the seal, which counts by existing, and the copy
# of the --ca file, made again from it when unreadable), a directory fsync
# follows the last rename before the run ends, and the whole run makes three
# fsyncs (provisioning token, device token, and the one directory fsync that
# covers them, the CA copy and the seal). A renewal: its token is
# durable before the run ends (file, then directory).
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/../server/idprovd.inc"

A=$IDP_BIN/idprov-agent
samples=$IDP_TOP/samples/manifests
t_run "server starts" srv_start "$T_TMP/srv"
token=$(cat "$T_TMP/srv/admin.token")
adm() { IDPROV_ADMIN_TOKEN=$token "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" "$@"; }
echo "dev-d1,02:00:5e:00:d0:01,SD-0001," >"$T_TMP/devs.csv"
"$IDP_BIN/idprov-manifest" create --key "$samples/sample-station-p256.key" --batch b-dur-1 \
	--station station-01 --seq 1 --product sx1 --devices "$T_TMP/devs.csv" --format csv \
	--out "$T_TMP/b.manifest" >/dev/null
adm station add station-01 "$samples/sample-station-p256.pub" >/dev/null
t_run "records imported" adm import "$T_TMP/b.manifest" --sig "$T_TMP/b.manifest.sig"
S=$T_TMP/st
t_run "key made" "$A" --state-dir "$S" --id dev-d1 --mac 02:00:5e:00:d0:01 key >/dev/null

# check_order TRACE: reads strace -f -e trace=openat,fsync,rename,close
# output; prints one line per problem, "fsyncs N" at the end.
check_order() {
	awk -v dir="$S" '
	function fname(s) { sub(/^[^"]*"/, "", s); sub(/".*$/, "", s); return s }
	/openat\(/ && / = [0-9]+$/ { fd = $NF; f = fname($0); file[fd] = f; synced[f] = 0 }
	/fsync\(/ && / = 0$/ { n++; fd = $2; sub(/^fsync\(/, "", fd); sub(/\).*/, "", fd)
		f = file[fd]; synced[f] = 1; if (f == dir) dirsync = 1 }
	/rename\(/ && / = 0$/ { split($0, q, "\""); tmp = q[2]; to = q[4]
		if (to !~ /\/(sealed|ca\.pem)$/ && !synced[tmp]) print "renamed unsynced " to
		dirsync = 0; renamed = 1 }
	END { if (renamed && !dirsync) print "no directory fsync after the last rename"
		print "fsyncs " n + 0 }' "$1"
}

# LeakSanitizer cannot run under ptrace: leaks are checked by the other tests.
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
args=(--state-dir "$S" --id dev-d1 --mac 02:00:5e:00:d0:01 --server "$SRV_URL" --ca "$SRV_CA")
t_run "provisions under strace" strace -f -o "$T_TMP/prov.trace" -e trace=openat,fsync,rename \
	"$A" "${args[@]}" run --once
check_order "$T_TMP/prov.trace" >"$T_TMP/prov.check"
t_refuse "provisioning: every file synced before its rename, the directory after" \
	grep -v '^fsyncs' "$T_TMP/prov.check"
t_grep "provisioning: three fsyncs" '^fsyncs 3$' "$T_TMP/prov.check"
t_run "sealed" [ -f "$S/sealed" ]
t_run "renews under strace" strace -f -o "$T_TMP/renew.trace" -e trace=openat,fsync,rename \
	"$A" "${args[@]}" run --once --renew
check_order "$T_TMP/renew.trace" >"$T_TMP/renew.check"
t_refuse "renewal: the token synced before its rename, the directory after" \
	grep -v '^fsyncs' "$T_TMP/renew.check"
t_grep "renewal: two fsyncs" '^fsyncs 2$' "$T_TMP/renew.check"
t_done
