#!/usr/bin/env bash
# kill.sh - kill -9 of idprov-station at random points of a batch
# (IDP_KILL_ROUNDS rounds, default 3, at least 2; make stress runs more):
# after each, the journal holds every device shown as PASS, and at
# most the one device in flight besides; a restart resumes the same batch.
# A torn last write (a partial entry appended, as a power cut leaves) is
# dropped on restart and the file is cut back. The closed manifest holds
# each device once.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/station.inc"

st=$T_TMP/state
key=$T_TMP/st.key
"$IDP_BIN/idprov-manifest" keygen --type ed25519 --out "$key" >/dev/null
journal=$st/batches/b-k.journal
: >"$T_TMP/shown"
kills=0
rounds=${IDP_KILL_ROUNDS:-3}
[ "$rounds" -ge 2 ] || rounds=2
for round in $(seq 1 "$rounds"); do
	# the last round names no batch: the open one is resumed
	args=(run --state "$st" --station st-1 --pty --hello-window-ms 3000)
	[ "$round" != "$rounds" ] && args+=(--batch b-k)
	[ "$round" = 1 ] && args+=(--product "Sensor X1")
	st_start "$T_TMP/r$round" "${args[@]}" || t_fail "round $round: station started"
	dev_start "$ST_PTY" --first $((round * 100)) --devices 50 --done "$T_TMP/sent$round"
	want=$((RANDOM % 4 + 1))
	st_wait_lines "$T_TMP/r$round" '^PASS ' "$want" || t_fail "round $round: $want PASS lines"
	sleep "0.0$((RANDOM % 10))"
	kill -9 "$ST_PID"
	wait "$ST_PID" 2>/dev/null
	kill "$DEV_PID" 2>/dev/null
	wait "$DEV_PID" 2>/dev/null
	kills=$((kills + 1))
	grep '^PASS ' "$T_TMP/r$round" | awk '{print $2}' >>"$T_TMP/shown"
	"$IDP_BIN/idprov-station" batches --state "$st" --batch b-k | awk '{print $1}' >"$T_TMP/journaled"
	t_run "round $round: every device shown as PASS is in the journal" \
		bash -c "[ -z \"\$(comm -23 <(sort '$T_TMP/shown') <(sort '$T_TMP/journaled'))\" ]"
	extra=$(comm -13 <(sort "$T_TMP/shown") <(sort "$T_TMP/journaled"))
	t_run "round $round: at most the device in flight besides ($extra)" \
		bash -c "[ \$(printf '%s' '$extra' | grep -c .) -le 1 ]"
	if [ -n "$extra" ]; then
		t_run "round $round: the extra one had sent its proof" grep -qx "$extra" "$T_TMP/sent$round"
		echo "$extra" >>"$T_TMP/shown"
	fi
done
t_grep "restart without --batch resumed the open batch" '^resumed batch b-k: [1-9][0-9]* devices from the journal' "$T_TMP/r$rounds"

# A torn last write: the first bytes of an entry whose length runs past the end.
printf 'IDJ1\002\000\001\020partial-device' >>"$journal"
st_start "$T_TMP/r4" run --state "$st" --station st-1 --batch b-k --pty --count $(($(wc -l <"$T_TMP/shown") + 2)) \
	--key "$key" --hello-window-ms 3000 || t_fail "round 4: station started"
t_grep "torn tail dropped: same count" "^resumed batch b-k: $(wc -l <"$T_TMP/shown") devices" "$T_TMP/r4"
dev_start "$ST_PTY" --first $(((rounds + 1) * 100)) --devices 2
wait "$ST_PID"
rc=$?
t_run "final run closes the batch" [ "$rc" = 0 ]
t_refuse "the torn bytes were cut off" grep -q partial-device "$journal"
t_grep "closed with 2 more" "^closed batch b-k: $(($(wc -l <"$T_TMP/shown") + 2)) devices" "$T_TMP/r4"
n=$(($(wc -l <"$T_TMP/shown") + 2))
t_grep "resumed run counts against --count" "^PASS .*\[$n/$n pass 2 fail 0\]" "$T_TMP/r4"
grep '^PASS ' "$T_TMP/r4" | awk '{print $2}' >>"$T_TMP/shown"
"$IDP_BIN/idprov-manifest" show "$st/batches/b-k.manifest" --station-pub "$T_TMP/st.pub" |
	awk '/^  /{print $1}' >"$T_TMP/manifest-ids"
t_run "manifest verifies" "$IDP_BIN/idprov-manifest" verify "$st/batches/b-k.manifest" --station-pub "$T_TMP/st.pub" -q
t_run "manifest = the devices shown as PASS (+ in-flight ones), each once" \
	bash -c "diff <(sort '$T_TMP/shown') <(sort '$T_TMP/manifest-ids')"
t_run "no duplicate in the manifest" bash -c "[ -z \"\$(sort '$T_TMP/manifest-ids' | uniq -d)\" ]"
t_done
