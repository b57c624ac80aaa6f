#!/usr/bin/env bash
# labels.sh - labels are made only after PASS: each PASSed device gets a ZPL
# label (sent to --print-cmd), an SVG preview and a PGM raster whose QR code
# an independent decoder (zbarimg) reads back as exactly
# IDPL1;<id>;<SHA-256 of the key it proved> (formats/label.md), the key
# taken from the signed manifest; a device that FAILs gets no label.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/station.inc"

st=$T_TMP/state
labels=$T_TMP/labels
mkdir -p "$labels"
"$IDP_BIN/idprov-manifest" keygen --type ed25519 --out "$T_TMP/st.key" >/dev/null
t_run "run starts" st_start "$T_TMP/run" run --state "$st" --station st-1 --batch l-1 \
	--product "Sensor X1" --count 2 --pty --key "$T_TMP/st.key" --hello-window-ms 3000 \
	--label-dir "$labels" --print-cmd "cat >>'$T_TMP/printed.zpl'"
dev_start "$ST_PTY" --devices 2 --type p256
wait "$ST_PID"
t_run "run exits 0" [ $? = 0 ]
m=$st/batches/l-1.manifest
for id in dev-1 dev-2; do
	pub=$(grep "\"id\":\"$id\"" "$m" | sed 's/.*"pub":"\([^"]*\)".*/\1/')
	fp=$(printf '%s' "$pub" | base64 -d | sha256sum | cut -d' ' -f1)
	got=$(zbarimg -q --raw "$labels/$id.pgm" 2>/dev/null)
	t_run "$id: zbarimg reads the payload with the proved key's fingerprint" \
		[ "$got" = "IDPL1;$id;$fp" ]
	t_grep "$id: ZPL label printed with its payload" "^\^FO20,20\^BQN,2,5\^FDMA,IDPL1;$id;$fp\^FS$" \
		"$T_TMP/printed.zpl"
	t_grep "$id: SVG preview" '^<svg xmlns=' "$labels/$id.svg"
done
t_run "two labels printed" [ "$(grep -c '^\^XA$' "$T_TMP/printed.zpl")" = 2 ]

st_start "$T_TMP/one" read --state "$st" --station st-1 --batch l-2 --product P --pty \
	--hello-window-ms 3000 --label-dir "$labels"
dev_start "$ST_PTY" --first 11 --wrong-proof
wait "$ST_PID"
t_run "wrong proof: exit 1" [ $? = 1 ]
t_refuse "no label for a FAIL" bash -c "ls '$labels' | grep -q dev-11"
t_done
