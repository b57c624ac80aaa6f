// label.js - the device label payload of formats/label.md, version 1:
// "IDPL1;<device ID>;<64 lower-case hex SHA-256 of the key's SPKI>".
// Mirrors formats/label.c's reader: one spelling only, a trailing newline
// (from a scanner) ignored, another version refused as unsupported.
export const LABEL_MAX = 135;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const FP_RE = /^[0-9a-f]{64}$/;

// {id, fingerprint} or throws an Error naming the problem.
export function parseLabel(text) {
  let s = String(text);
  if (s.endsWith('\r\n')) s = s.slice(0, -2);
  else if (s.endsWith('\n')) s = s.slice(0, -1);
  if (s.length > LABEL_MAX) throw new Error(`label: ${s.length} bytes, max ${LABEL_MAX}`);
  if (!s.startsWith('IDPL')) throw new Error('label: not a device label (must start with IDPL1;)');
  if (!s.startsWith('IDPL1;')) throw new Error('label: unsupported label version');
  const parts = s.split(';');
  if (parts.length !== 3) throw new Error('label: must be IDPL1;<device ID>;<fingerprint>');
  const [, id, fp] = parts;
  if (!ID_RE.test(id)) throw new Error('label: the device ID is not a valid ID');
  if (!FP_RE.test(fp)) throw new Error('label: the fingerprint must be 64 lower-case hex digits');
  return { id, fingerprint: fp };
}
