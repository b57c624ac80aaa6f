#!/usr/bin/env bash
# tamper.sh - a carried manifest that was tampered with on the way is
# refused by `idprov-admin import` with an error naming the signature, and
# the server's data is unchanged (digest of the admin's --json listings and
# of a sqlite3 dump of the devices, batches and stations tables, before and
# after; not the unprovisioned report, whose ages grow): one byte of the
# body changed (the .sig kept), and the body signed by another trusted
# station instead of the one it names. The untouched
# files then import. tests/unit/test_manifest.c flips every byte of
# signatures and bodies in-process; this carries real station output to a
# real server.
. "$(dirname "$0")/e2e.inc"

t_run "factory: batch T-0 read from 1 agent" e2e_read T-0 3
t_run "factory: batch T-1 read from 2 agents" e2e_read T-1 1 2
m=$E2E_ST/batches/T-1.manifest
"$IDP_BIN/idprov-manifest" keygen --type p256 --out "$T_TMP/st2.key" >/dev/null
t_run "server starts" e2e_srv_start
t_run "station st-1 trusted" adm station add st-1 "$T_TMP/st.pub"
t_run "station st-2 trusted" adm station add st-2 "$T_TMP/st2.pub"
e2e_upload --batch T-0
t_run "T-0 uploaded (the store is not empty)" [ $? = 0 ]

db=$SRV_DIR/idprov.db
digest() {
	{
		adm --json devices
		adm --json station list
		sqlite3 -readonly "$db" '.dump devices batches stations'
	} 2>&1 | sha256sum
}

# One byte of the body changed: the serial of device 1 (SN-E01 -> SN-E0x).
mkdir -p "$T_TMP/carried"
cp "$m.sig" "$T_TMP/carried/T-1.manifest.sig"
sed 's/"serial":"SN-E01"/"serial":"SN-E0x"/' "$m" >"$T_TMP/carried/T-1.manifest"
t_run "the tampered copy differs in one byte" \
	[ "$(cmp -l "$m" "$T_TMP/carried/T-1.manifest" | wc -l)" = 1 ]
before=$(digest)
adm import "$T_TMP/carried/T-1.manifest" >"$T_TMP/imp1" 2>&1
t_run "one byte changed: refused (exit 1)" [ $? = 1 ]
t_grep "one byte changed: the error names the signature" '403.*signature: does not match the body' "$T_TMP/imp1"
t_run "one byte changed: data unchanged" [ "$(digest)" = "$before" ]

# The body as st-1 wrote it, signed by st-2 (a trusted station, not the one it names).
cp "$m" "$T_TMP/carried/T-1.manifest"
openssl dgst -sha256 -sign "$T_TMP/st2.key" -out "$T_TMP/carried/T-1.manifest.sig" "$m"
t_run "st-2's signature verifies with st-2's key" openssl dgst -sha256 -verify "$T_TMP/st2.pub" \
	-signature "$T_TMP/carried/T-1.manifest.sig" "$m"
adm import "$T_TMP/carried/T-1.manifest" >"$T_TMP/imp2" 2>&1
t_run "another station's signature: refused (exit 1)" [ $? = 1 ]
t_grep "another station's signature: the error names the signature" '403.*signature: does not match the body' "$T_TMP/imp2"
t_run "another station's signature: data unchanged" [ "$(digest)" = "$before" ]
adm --json devices >"$T_TMP/devs.json"
t_refuse "device 1 unknown to the server" grep -q '"id":"e2e-01"' "$T_TMP/devs.json"

# The files as the station wrote them import.
cp "$m.sig" "$T_TMP/carried/T-1.manifest.sig"
t_run "the untouched files import" adm import "$T_TMP/carried/T-1.manifest"
t_run "data changed by the real import" [ "$(digest)" != "$before" ]
srv_stop
t_done
