// pages.js - one function per page; each renders into the view element with
// DOM calls only (textContent, never innerHTML: every value is data).
import { get, post, withQuery, ApiError } from './api.js';
import { parseLabel } from './label.js';

// ---------------------------------------------------------------- helpers
export function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

// Replace el's children with kids, leaving out the absent ones (null).
function put(el, ...kids) {
  el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined));
}

const when = (t) => (t ? new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 19) : '');
const age = (s) => (s >= 86400 ? `${Math.floor(s / 86400)} d` : s >= 3600 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 60)} min`);
// A fingerprint in groups of 8 for reading aloud against a label.
const fp = (x) => (x ? x.match(/.{1,8}/g).join(' ') : '');

function table(caption, cols, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'skip' }, caption),
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows)));
}

// The page-wide message line (#flash): it outlives the re-rendering of a
// page, so the outcome of a decision stays readable after the list refreshes.
function status() {
  return document.getElementById('flash');
}

export function say(el, text, cls = '') {
  el.className = `status ${cls}`;
  el.textContent = text;
}

function failText(e) {
  return e instanceof ApiError ? `${e.message} (${e.status} ${e.code})` : String(e.message || e);
}

// Ask before a change; resolves true when confirmed.
export function confirmDialog(text, detail) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-detail').textContent = detail || '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = 'cancel';
    d.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

// ---------------------------------------------------------------- pending
export async function pending(view, ctx) {
  const msg = status();
  const canWrite = ctx.role === 'admin';
  // A refresh (live counts) replaces the list only: the label field keeps
  // what is being typed or scanned into it.
  let list = view.querySelector('#pending-list');
  if (!list) {
    list = h('div', { id: 'pending-list' });
    put(view, h('h2', {}, 'Pending requests'),
      h('p', {}, 'Devices that asked for an identity and wait for a decision. Compare the fingerprint with the device\'s label before approving.'),
      canWrite ? labelForm(msg, ctx) : null, list);
  }
  const data = await get(withQuery('/v1/admin/devices', { state: 'pending' }));
  const rows = data.devices.map((d) => h('tr', { 'data-id': d.id },
    h('td', {}, d.id), h('td', {}, d.mac || ''), h('td', {}, d.serial || ''),
    h('td', { class: 'fp' }, d.contested ? contested(ctx, msg, d, canWrite) : fp(d.key_sha256)),
    h('td', {}, String(d.attempts)), h('td', {}, when(d.updated_at)),
    canWrite ? h('td', {},
      d.contested ? null : h('button', { type: 'button', class: 'primary', 'aria-label': `Approve ${d.id}`,
        onclick: () => decide(ctx, msg, 'approve', d, d.key_sha256) }, 'Approve'), ' ',
      h('button', { type: 'button', class: 'danger', 'aria-label': `Reject ${d.id}`,
        onclick: () => decide(ctx, msg, 'reject', d) }, 'Reject')) : null));
  put(list, rows.length === 0 ? h('p', { id: 'no-pending' }, 'No pending requests.')
    : table('Pending requests', ['Device ID', 'MAC', 'Serial', 'Key fingerprint (SHA-256)', 'Attempts', 'Last seen',
      ...(canWrite ? ['Decision'] : [])], rows));
  if (data.next) list.append(h('p', {}, 'More than one page pending: decide on these first.'));
}

// Every key presented for a contested ID (its MAC beside it), each with its
// own approve button: the first key does not win by being first.
function contested(ctx, msg, d, canWrite) {
  const keys = [{ key_sha256: d.key_sha256, mac: d.mac }, ...d.other_keys];
  return h('div', {}, h('span', { class: 'badge warn' }, `contested: ${keys.length} keys`),
    h('ul', { class: 'keys' }, keys.map((k) => h('li', {}, fp(k.key_sha256), ` (MAC ${k.mac || '?'}) `,
      canWrite ? h('button', { type: 'button', 'aria-label': `Approve ${d.id} with key ${k.key_sha256.slice(0, 8)}`,
        onclick: () => decide(ctx, msg, 'approve', d, k.key_sha256) }, 'Approve this key') : null))));
}

// The keys presented for d: the one on record, then a contested ID's others.
function keysOf(d) {
  return [d.key_sha256, ...(d.other_keys || []).map((k) => k.key_sha256)].filter((k) => k);
}

async function decide(ctx, msg, action, d, key) {
  const ok = await confirmDialog(`${action === 'approve' ? 'Approve' : 'Reject'} device ${d.id}?`,
    action === 'approve' && key ? `Key SHA-256: ${fp(key)}` : '');
  if (!ok) return;
  try {
    const body = action === 'approve' && key ? { id: d.id, key_sha256: key } : { id: d.id };
    await post(`/v1/admin/devices/${action}`, body);
    say(msg, `${d.id} ${action === 'approve' ? 'approved' : 'rejected'}.`, 'ok');
  } catch (e) {
    say(msg, `${action} ${d.id}: ${failText(e)}`, 'error');
  }
  ctx.refresh();
}

function labelForm(msg, ctx) {
  const input = h('input', { id: 'label-payload', name: 'label', size: 60, autocomplete: 'off',
    spellcheck: 'false', placeholder: 'IDPL1;<device ID>;<fingerprint>' });
  const form = h('form', { class: 'inline', id: 'label-form' },
    h('div', {}, h('label', { for: 'label-payload' }, 'Approve by label (scan or paste the label payload)'), input),
    h('button', { type: 'submit' }, 'Approve by label'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let l;
    try { l = parseLabel(input.value); } catch (e) { say(msg, e.message, 'error'); return; }
    // The key on record now, fetched fresh: approval only when it is the label's.
    let dev;
    try {
      const data = await get(withQuery('/v1/admin/devices', { state: 'pending' }));
      dev = data.devices.find((d) => d.id === l.id);
    } catch (e) { say(msg, failText(e), 'error'); return; }
    if (!dev) { say(msg, `label: ${l.id} is not pending`, 'error'); return; }
    if (!keysOf(dev).includes(l.fingerprint)) {
      say(msg, `label: fingerprint does not match the key ${l.id} presented; not approved`, 'error');
      return;
    }
    const ok = await confirmDialog(`Approve device ${l.id}? The label matches its key.`, `Key SHA-256: ${fp(l.fingerprint)}`);
    if (!ok) return;
    try {
      await post('/v1/admin/devices/approve', { id: l.id, key_sha256: l.fingerprint });
      say(msg, `${l.id} approved by label.`, 'ok');
      input.value = '';
    } catch (e) { say(msg, `approve ${l.id}: ${failText(e)}`, 'error'); }
    ctx.refresh();
  });
  return form;
}

// ---------------------------------------------------------------- devices
const STATES = ['', 'preloaded', 'pending', 'approved', 'rejected', 'revoked'];
const SCAN_PAGES = 20; // server pages (1000 devices each) scanned for one page of matches
const PAGE = 100;

export async function devices(view, ctx) {
  const st = ctx.params;
  const f = {
    state: h('select', { id: 'f-state', name: 'state' }, STATES.map((s) => h('option', { value: s, selected: s === (st.state || '') }, s || 'any'))),
    batch: h('input', { id: 'f-batch', name: 'batch', value: st.batch || '', size: 16 }),
    flag: h('select', { id: 'f-flag', name: 'flag' }, h('option', { value: '' }, 'any'), h('option', { value: 'open', selected: st.flag === 'open' }, 'with an open flag')),
    text: h('input', { id: 'f-text', name: 'q', type: 'search', value: st.q || '', size: 20 }),
  };
  const form = h('form', { class: 'filters', id: 'device-filters' },
    h('div', {}, h('label', { for: 'f-state' }, 'State'), f.state),
    h('div', {}, h('label', { for: 'f-batch' }, 'Batch'), f.batch),
    h('div', {}, h('label', { for: 'f-flag' }, 'Flag'), f.flag),
    h('div', {}, h('label', { for: 'f-text' }, 'ID, MAC or serial contains'), f.text),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.go('devices', { state: f.state.value, batch: f.batch.value.trim(), flag: f.flag.value, q: f.text.value.trim() });
  });
  const msg = status();
  const out = h('div');
  put(view, h('h2', {}, 'Devices'), form, out);
  let flagged = null;
  if (st.flag === 'open') {
    const fl = await get('/v1/admin/flags');
    flagged = new Set(fl.flags.map((x) => x.subject));
  }
  const q = (st.q || '').toLowerCase();
  const match = (d) => (!st.batch || d.batch_id === st.batch) && (!flagged || flagged.has(d.id)) &&
    (!q || [d.id, d.mac, d.serial].some((v) => v && v.toLowerCase().includes(q)));
  const found = [];
  let after = st.after || '';
  let next = '';
  for (let i = 0; i < SCAN_PAGES && found.length < PAGE; i++) {
    const data = await get(withQuery('/v1/admin/devices', { state: st.state, after }));
    for (const d of data.devices) {
      if (found.length === PAGE) break;
      if (match(d)) found.push(d);
      next = d.id;
    }
    if (!data.next && found.length < PAGE) { next = ''; break; }
    after = data.next;
  }
  const rows = found.map((d) => h('tr', {},
    h('td', {}, h('a', { href: `#audit?subject=${encodeURIComponent(d.id)}`, title: `History of ${d.id}` }, d.id)), h('td', {}, d.state), h('td', {}, d.batch_id || ''), h('td', {}, d.mac || ''),
    h('td', {}, d.serial || ''), h('td', { class: 'fp' }, fp(d.key_sha256)),
    h('td', {}, flagged && flagged.has(d.id) ? 'open flag' : ''), h('td', {}, when(d.updated_at))));
  say(msg, `${found.length} device(s) shown${st.after ? ` after ${st.after}` : ''}` +
    `${next && found.length < PAGE ? `; searched up to ${next}, Next page searches on` : ''}.`);
  put(out, table('Devices', ['ID', 'State', 'Batch', 'MAC', 'Serial', 'Key fingerprint', 'Flag', 'Updated'], rows),
    h('div', { class: 'pager' },
      st.after ? h('button', { type: 'button', onclick: () => ctx.go('devices', { ...st, after: '' }) }, 'First page') : null,
      next ? h('button', { type: 'button', id: 'next-page', onclick: () => ctx.go('devices', { ...st, after: next }) }, 'Next page') : null));
}

// ---------------------------------------------------------------- flags
export async function flags(view, ctx) {
  const msg = status();
  const resolved = ctx.params.state === 'resolved';
  const canResolve = ctx.role === 'admin' && !resolved;
  const show = h('select', { id: 'fl-state', name: 'state' },
    h('option', { value: 'open', selected: !resolved }, 'open'),
    h('option', { value: 'resolved', selected: resolved }, 'resolved'));
  const form = h('form', { class: 'filters', id: 'flag-filters' },
    h('div', {}, h('label', { for: 'fl-state' }, 'Show flags'), show),
    h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.go('flags', { state: show.value === 'resolved' ? 'resolved' : '' });
  });
  const data = await get(withQuery('/v1/admin/flags', { state: resolved ? 'resolved' : '' }));
  const byKind = new Map();
  for (const f of data.flags) byKind.set(f.kind, (byKind.get(f.kind) || 0) + f.count);
  const what = resolved ? 'Resolved flags' : 'Open flags';
  put(view, h('h2', {}, what), form,
    h('ul', { class: 'summary', 'aria-label': `${what} by kind` },
      [...byKind].map(([k, n]) => h('li', {}, `${k}: ${n}`)),
      byKind.size === 0 ? h('li', {}, resolved ? 'No resolved flags.' : 'No open flags.') : null),
    table(what, ['#', 'Kind', 'Subject', 'Detail', 'Count', 'First seen', 'Last seen', ...(canResolve ? ['Review'] : [])],
      data.flags.map((f) => h('tr', { 'data-seq': String(f.seq) }, h('td', {}, String(f.seq)), h('td', {}, f.kind),
        h('td', {}, f.subject ? h('a', { href: `#audit?subject=${encodeURIComponent(f.subject)}`, title: `History of ${f.subject}` }, f.subject) : ''),
        h('td', {}, f.detail), h('td', {}, String(f.count)), h('td', {}, when(f.first_seen)), h('td', {}, when(f.last_seen)),
        canResolve ? h('td', {}, h('button', { type: 'button', 'aria-label': `Resolve flag ${f.seq} (${f.kind} ${f.subject})`,
          onclick: () => resolveFlag(ctx, msg, f) }, 'Resolve')) : null))),
    data.next ? h('p', { class: 'muted' }, 'Only the newest 1000 are shown.') : null);
}

async function resolveFlag(ctx, msg, f) {
  const ok = await confirmDialog(`Resolve flag #${f.seq} (${f.kind} on ${f.subject || 'no subject'})?`,
    'It leaves the open list; the audit log records who resolved it. Raised again, it opens a new flag.');
  if (!ok) return;
  try {
    await post('/v1/admin/flags/resolve', { seq: f.seq });
    say(msg, `Flag #${f.seq} resolved.`, 'ok');
  } catch (e) {
    say(msg, `resolve flag #${f.seq}: ${failText(e)}`, 'error');
  }
  ctx.refresh();
}

// ---------------------------------------------------------------- suspension
// The banner above every page while provisioning is suspended (a rogue
// DNS-SD publisher, or an administrator's hold), with resume for admins.
export async function suspension(banner, role, onChange) {
  const s = await get('/v1/admin/suspension');
  if (!s.suspended) {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  const key = `${s.since}|${s.reason}|${role}|${(s.seen || []).length}`;
  if (!banner.hidden && banner.dataset.key === key) return; // unchanged: keep focus and messages
  banner.dataset.key = key;
  const rogues = (s.seen || []).filter((x) => !x.allowed);
  const note = h('p', { id: 'suspended-status', class: 'status', role: 'status' });
  const resume = role === 'admin' ? h('button', { type: 'button', id: 'resume', class: 'primary', onclick: async () => {
    const ok = await confirmDialog('Resume provisioning?',
      rogues.length ? 'Another publisher is still seen: allow-list it or withdraw it first, or the server refuses.' : 'Devices can then provision again.');
    if (!ok) return;
    try {
      await post('/v1/admin/resume', {});
      say(status(), 'Provisioning resumed.', 'ok');
      onChange();
    } catch (e) { say(note, `resume: ${failText(e)}`, 'error'); }
  } }, 'Resume provisioning') : null;
  put(banner,
    h('h2', { id: 'suspended-title' }, 'Provisioning is suspended'),
    h('p', {}, `Since ${when(s.since)}: ${s.reason || 'no reason given'}.`),
    rogues.length ? h('ul', { 'aria-label': 'Other publishers seen' }, rogues.map((x) =>
      h('li', {}, `"${x.name}" at ${x.addr} port ${x.port}, CA fingerprint ${x.fp || 'none'}`))) : null,
    role === 'admin' ? null : h('p', {}, 'An administrator can resume it.'),
    resume, note);
  banner.hidden = false;
}

// ---------------------------------------------------------------- hostage report
export async function report(view, ctx) {
  const st = ctx.params;
  const older = h('input', { id: 'r-older', name: 'older_than', type: 'number', min: '1', value: st.older_than || '', size: 8 });
  const batch = h('input', { id: 'r-batch', name: 'batch', value: st.batch || '', size: 16 });
  const form = h('form', { class: 'filters' },
    h('div', {}, h('label', { for: 'r-older' }, 'Imported at least (seconds) ago'), older),
    h('div', {}, h('label', { for: 'r-batch' }, 'Batch'), batch),
    h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.go('report', { older_than: older.value, batch: batch.value.trim() });
  });
  const data = await get(withQuery('/v1/admin/report/unprovisioned', { older_than: st.older_than, batch: st.batch, after: st.after }));
  put(view, h('h2', {}, 'Hostage report'),
    h('p', {}, 'Devices a manifest named that never provisioned: preloaded, or held pending.'), form,
    table('Unprovisioned devices', ['ID', 'State', 'Batch', 'Station', 'Imported', 'Age', 'Attempts'],
      data.devices.map((d) => h('tr', {}, h('td', {}, d.id), h('td', {}, d.state), h('td', {}, d.batch_id),
        h('td', {}, d.station_id), h('td', {}, when(d.imported_at)), h('td', {}, age(d.age)), h('td', {}, String(d.attempts))))),
    data.next ? h('button', { type: 'button', onclick: () => ctx.go('report', { ...st, after: data.next }) }, 'Next page') : null);
}

// ---------------------------------------------------------------- audit
export async function audit(view, ctx) {
  const st = ctx.params;
  const msg = status();
  const verify = h('button', { type: 'button', id: 'audit-verify', onclick: async () => {
    try {
      const v = await get('/v1/admin/audit/verify');
      if (v.intact) say(msg, `Chain intact: ${v.entries} entries, head #${v.head_seq} ${v.head_hash}`, 'ok');
      else say(msg, `Chain BROKEN at entry #${v.broken_seq}: ${v.reason} (${v.entries} verified before it)`, 'error');
    } catch (e) { say(msg, failText(e), 'error'); }
  } }, 'Verify the chain');
  const subject = h('input', { id: 'a-subject', name: 'subject', value: st.subject || '', size: 20 });
  const form = h('form', { class: 'filters', id: 'audit-filters' },
    h('div', {}, h('label', { for: 'a-subject' }, 'Subject (device, batch or station ID)'), subject),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.go('audit', { subject: subject.value.trim() });
  });
  // A subject's history is filtered by the server (GET audit?subject=).
  const data = await get(withQuery('/v1/admin/audit', { subject: st.subject, after: st.after }));
  const next = data.next || '';
  put(view, h('h2', {}, st.subject ? `History of ${st.subject}` : 'Audit log'), verify, form,
    data.entries.length === 0 ? h('p', { id: 'audit-none' }, st.subject ? `No entries for ${st.subject}.` : 'No entries.') : null,
    table('Audit entries', ['#', 'Time', 'Event', 'Subject', 'Detail', 'Actor', 'Hash'],
      data.entries.map((a) => h('tr', {}, h('td', {}, String(a.seq)), h('td', {}, when(a.at)), h('td', {}, a.event),
        h('td', {}, a.subject || ''), h('td', {}, a.detail || ''), h('td', {}, a.actor || ''),
        h('td', { class: 'fp' }, (a.hash || '').slice(0, 16))))),
    next ? h('button', { type: 'button', id: 'audit-next', onclick: () => ctx.go('audit', { ...st, after: next }) }, `Next page (after #${next})`) : null);
}

// ---------------------------------------------------------------- batches
export async function batches(view, ctx) {
  const st = ctx.params;
  const station = h('input', { id: 'b-station', name: 'station', value: st.station || '', size: 16 });
  const form = h('form', { class: 'filters' },
    h('div', {}, h('label', { for: 'b-station' }, 'Station'), station),
    h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.go('batches', { station: station.value.trim() });
  });
  const data = await get(withQuery('/v1/admin/batches', { station: st.station, after: st.after }));
  const per = new Map();
  for (const b of data.batches) {
    if (!per.has(b.station_id)) per.set(b.station_id, []);
    per.get(b.station_id).push(b);
  }
  const sections = [...per].map(([sid, list]) => {
    const gaps = list.filter((b) => b.missing).length;
    const broken = list.filter((b) => !b.missing && !b.chained).length;
    return h('section', { 'aria-label': `Station ${sid}` },
      h('h3', {}, `Station ${sid}: ${list.length} sequence(s)`,
        gaps ? h('span', { class: 'badge error' }, ` ${gaps} missing`) : null,
        broken ? h('span', { class: 'badge warn' }, ` ${broken} not chained`) : null),
      table(`Batches of ${sid}`, ['#', 'Batch', 'State', 'Product', 'Devices', 'Imported', 'Chain'],
        list.map((b) => (b.missing
          ? h('tr', { class: 'missing' }, h('td', {}, String(b.sequence)), h('td', { colspan: '6', class: 'error' }, 'missing: never imported'))
          : h('tr', {}, h('td', {}, String(b.sequence)), h('td', {}, b.id),
            h('td', { class: b.state === 'gap' ? 'warn' : '' }, b.state), h('td', {}, b.product),
            h('td', {}, String(b.devices)), h('td', {}, when(b.imported_at)),
            h('td', { class: b.chained ? 'ok' : 'warn', title: `prev ${b.prev_hash || 'none'}` },
              b.chained ? 'chained' : 'not chained to the one before'))))));
  });
  put(view, h('h2', {}, 'Batches per station'),
    h('p', {}, 'Each station numbers its batches 1, 2, ...; each batch carries the hash of the one before. A missing number or a broken link stands out here.'),
    form, ...sections, per.size === 0 ? h('p', {}, 'No batches imported.') : null,
    h('div', { class: 'pager' },
      st.after ? h('button', { type: 'button', onclick: () => ctx.go('batches', { station: st.station }) }, 'First page') : null,
      data.next ? h('button', { type: 'button', id: 'batches-next', onclick: () => ctx.go('batches', { ...st, after: data.next }) }, 'Next page (1000 rows a page)') : null));
}

// ---------------------------------------------------------------- stations
export async function stations(view, ctx) {
  const st = ctx.params;
  const [data, cas] = await Promise.all([get(withQuery('/v1/admin/stations', { after: st.after })), get('/v1/admin/cas')]);
  put(view, h('h2', {}, 'Stations'),
    table('Stations', ['ID', 'Enabled', 'Key fingerprint (SHA-256)', 'Trusted since'],
      data.stations.map((s) => h('tr', {}, h('td', {}, s.id), h('td', {}, s.enabled ? 'yes' : 'no'),
        h('td', { class: 'fp' }, fp(s.key_sha256)), h('td', {}, when(s.created_at))))),
    h('div', { class: 'pager' },
      st.after ? h('button', { type: 'button', onclick: () => ctx.go('stations', {}) }, 'First page') : null,
      data.next ? h('button', { type: 'button', id: 'stations-next', onclick: () => ctx.go('stations', { after: data.next }) }, 'Next page') : null),
    h('h2', {}, 'Factory CAs'),
    cas.cas.length === 0 ? h('p', {}, 'No factory CA trusted.')
      : table('Factory CAs', ['Name', 'Subject', 'Certificate SHA-256', 'Valid until'],
        cas.cas.map((c) => h('tr', {}, h('td', {}, c.name), h('td', {}, c.subject || ''),
          h('td', { class: 'fp' }, fp(c.sha256 || '')), h('td', {}, c.not_after || '')))),
    cas.next ? h('p', { class: 'warn' }, `Only the first 1000 factory CAs, by name: idprov-admin ca list --after ${cas.next} lists the others.`) : null);
}
