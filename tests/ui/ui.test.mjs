// ui.test.mjs - idprovd's web UI in a real browser: Debian's chromium driven
// by playwright-core against a real idprovd on loopback, devices played by
// real idprov-agent processes. Run by tests/integration/ui/browser.sh, which
// starts the server and passes everything in the environment:
//   UI_URL      https://127.0.0.1:PORT of the server
//   UI_CA       the server's CA certificate (for this script's own requests)
//   UI_TOKEN    the admin credential
//   UI_AGENT    the idprov-agent binary;  UI_TMP  a scratch directory
//   UI_FP_<N>   SHA-256 of the key of agent N (created beforehand): agent N
//               is device dev-u<N>, agent 6 is dev-u5 too (a contested ID)
//   UI_SHOTS    where the screenshots go
// Prints "ok - ..." / "not ok - ..." per check; exit 77 when chromium cannot
// start (the wrapper reports the skip), 1 on a failed check.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { env, URL0, STEP_MS, ok, raw, bearer, launch, openPage, shot, confirm, run } from './lib.mjs';

const agents = new Map();
// The device id as the admin API lists it (all pages), or undefined.
async function device(id) {
  let after = '';
  for (let i = 0; i < 10; i++) {
    const r = JSON.parse((await raw('GET', `/v1/admin/devices${after ? `?after=${after}` : ''}`, bearer)).body);
    const d = r.devices.find((x) => x.id === id);
    if (d || !r.next) return d;
    after = r.next;
  }
  return undefined;
}
async function deviceState(id) {
  const d = await device(id);
  return d ? d.state : 'absent';
}

// Start agent dev-u<n> (its key made by the wrapper): it asks to provision and
// waits up to 120 s for a decision. Resolves its exit code when it ends.
function startAgent(n) {
  const id = n === 6 ? 'dev-u5' : `dev-u${n}`;
  const log = fs.openSync(path.join(env.UI_TMP, `agent-${n}.log`), 'a');
  const child = spawn(env.UI_AGENT, ['--state-dir', path.join(env.UI_TMP, `agent-${n}`), 'run', '--once',
    '--id', id, '--mac', `02:00:5e:00:c1:0${n}`, '--server', URL0, '--ca', env.UI_CA, '--wait', '120'],
  { stdio: ['ignore', 'ignore', log] });
  const done = new Promise((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig)));
  agents.set(n, child);
  return done;
}

function within(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(t));
}

const fp = (n) => env[`UI_FP_${n}`];
const grouped = (x) => x.match(/.{1,8}/g).join(' ');

async function main() {
  const browser = await launch();
  const { context, page, errors } = await openPage(browser);

  // --- the page and its headers ---------------------------------------------
  const resp = await page.goto(`${URL0}/ui/`);
  const hd = resp.headers();
  ok(resp.status() === 200, 'GET /ui/ answers 200');
  const csp = hd['content-security-policy'] || '';
  ok(/default-src 'self'/.test(csp) && /script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), 'CSP: self only, no inline script', csp);
  ok(/frame-ancestors 'none'/.test(csp) && hd['x-frame-options'] === 'DENY', 'framing refused (CSP frame-ancestors, X-Frame-Options)');
  ok(hd['x-content-type-options'] === 'nosniff' && hd['referrer-policy'] === 'no-referrer', 'nosniff and no-referrer');
  await page.locator('#credential').waitFor();
  await shot(page, 'login');

  // --- a wrong credential, in a page of its own (its 401 is expected) ---------
  const probe = await context.newPage();
  await probe.goto(`${URL0}/ui/`);
  await probe.locator('#credential').fill('not-the-credential');
  await probe.locator('#login-form button[type=submit]').click();
  await probe.locator('#login-error', { hasText: 'Not an admin credential' }).waitFor();
  ok(await probe.locator('#nav').isHidden(), 'wrong credential: refused, still logged out');
  await probe.close();

  // --- log in with the keyboard ----------------------------------------------
  await page.locator('#credential').focus();
  await page.keyboard.type(env.UI_TOKEN);
  await page.keyboard.press('Enter');
  await page.locator('#who', { hasText: 'Signed in as admin' }).waitFor();
  ok(await page.locator('#nav').isVisible(), 'login: navigation shown');
  const cookie = (await context.cookies()).find((c) => c.name === '__Host-idprov-session');
  ok(cookie && cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict' && cookie.path === '/',
    'session cookie is HttpOnly, Secure, SameSite=Strict, Path=/', JSON.stringify(cookie));
  ok(!(await page.evaluate(() => document.cookie)).includes('idprov-session'), 'script cannot read the session cookie');
  const sessionCookie = `${cookie.name}=${cookie.value}`;
  await page.locator('#no-pending').waitFor();
  ok(true, 'pending page: none pending at first');

  // --- a device asks, appears without a reload, is approved, gets its token --
  const u1 = startAgent(1);
  const row1 = page.locator('tr[data-id="dev-u1"]');
  await row1.waitFor({ timeout: STEP_MS });
  ok(true, 'pending device appears without reloading the page');
  ok((await row1.locator('td.fp').innerText()).includes(grouped(fp(1))), 'its key fingerprint is shown');
  await page.locator('#counts', { hasText: 'Pending: 1' }).waitFor();
  ok(true, 'live counts show it pending');
  await shot(page, 'pending');
  await page.getByRole('button', { name: 'Approve dev-u1' }).click();
  await confirm(page);
  await page.locator('.status.ok', { hasText: 'dev-u1 approved' }).waitFor();
  ok(await deviceState('dev-u1') === 'approved', 'approve: stored as approved');
  ok(await within(u1, 60000, 'agent dev-u1') === 0, 'approved device receives its token (agent exit 0)');
  ok(/event=token\.exchanged device=dev-u1/.test(fs.readFileSync(path.join(env.UI_TMP, 'agent-1.log'), 'utf8')), 'agent log: token exchanged');

  // --- reject, after a cancelled confirmation ----------------------------------
  const u2 = startAgent(2);
  await page.locator('tr[data-id="dev-u2"]').waitFor();
  await page.getByRole('button', { name: 'Reject dev-u2' }).click();
  await page.locator('#confirm').waitFor({ state: 'visible' });
  await page.keyboard.press('Escape');
  await page.locator('#confirm').waitFor({ state: 'hidden' });
  ok(await deviceState('dev-u2') === 'pending', 'cancelled confirmation changes nothing');
  await page.getByRole('button', { name: 'Reject dev-u2' }).click();
  await confirm(page);
  await page.locator('.status.ok', { hasText: 'dev-u2 rejected' }).waitFor();
  ok(await deviceState('dev-u2') === 'rejected', 'reject: stored as rejected');
  ok(await within(u2, 60000, 'agent dev-u2') === 6, 'rejected device is told so (agent exit 6)');

  // --- approve by label: mismatching, malformed, matching ----------------------
  const u3 = startAgent(3);
  startAgent(4);
  await page.locator('tr[data-id="dev-u3"]').waitFor();
  await page.locator('tr[data-id="dev-u4"]').waitFor();
  const label = page.locator('#label-payload');
  await label.fill(`IDPL1;dev-u4;${fp(3)}`);
  await label.press('Enter');
  await page.locator('.status.error', { hasText: 'fingerprint does not match' }).waitFor();
  ok(await deviceState('dev-u4') === 'pending', 'label with another key\'s fingerprint: not approved');
  await label.fill(`IDPL2;dev-u3;${fp(3)}`);
  await label.press('Enter');
  await page.locator('.status.error', { hasText: 'unsupported label version' }).waitFor();
  ok(await deviceState('dev-u3') === 'pending', 'label of another version: refused');
  await label.fill(`IDPL1;dev-u3;${fp(3)}\n`);
  await label.press('Enter');
  await confirm(page);
  await page.locator('.status.ok', { hasText: 'dev-u3 approved by label' }).waitFor();
  ok(await deviceState('dev-u3') === 'approved', 'matching label: approved');
  ok(await within(u3, 60000, 'agent dev-u3') === 0, 'device approved by label receives its token');

  // A contested ID: two devices present two keys under dev-u5; the label of
  // the second picks its key, and only that device gets a token.
  startAgent(5);
  await page.locator('tr[data-id="dev-u5"]').waitFor();
  const u6 = startAgent(6);
  const row5 = page.locator('tr[data-id="dev-u5"]');
  await row5.locator('.badge', { hasText: 'contested: 2 keys' }).waitFor();
  ok((await row5.innerText()).includes(grouped(fp(6))), 'contested ID: both keys listed');
  ok(await row5.getByRole('button', { name: 'Approve dev-u5', exact: true }).count() === 0, 'contested ID: no approve without naming a key');
  await shot(page, 'pending-contested');
  await label.fill(`IDPL1;dev-u5;${fp(6)}`);
  await label.press('Enter');
  await confirm(page);
  await page.locator('.status.ok', { hasText: 'dev-u5 approved by label' }).waitFor();
  const d5 = await device('dev-u5');
  ok(d5.state === 'approved' && d5.key_sha256 === fp(6), 'contested ID: approved with the label\'s key, not the first', JSON.stringify(d5));
  ok(await within(u6, 60000, 'agent 6') === 0, 'the device with the label\'s key receives its token');
  await page.locator('#counts', { hasText: 'Pending: 1 ' }).waitFor();
  await page.locator('#counts', { hasText: 'Approved: 3 ' }).waitFor();
  ok(true, 'live counts follow the decisions');

  // --- the other pages ---------------------------------------------------------
  await page.locator('nav a[href="#devices"]').click();
  await page.locator('#device-filters').waitFor();
  await page.locator('#f-state').selectOption('approved');
  await page.locator('#device-filters button[type=submit]').click();
  await page.locator('.status', { hasText: '3 device(s) shown' }).waitFor();
  const devText = await page.locator('#view table').innerText();
  ok(devText.includes('dev-u1') && devText.includes('dev-u3') && devText.includes('dev-u5') && !devText.includes('dev-u2'), 'devices: state filter');
  await page.locator('#f-text').fill('u3');
  await page.locator('#device-filters button[type=submit]').click();
  await page.locator('.status', { hasText: '1 device(s) shown' }).waitFor();
  ok(true, 'devices: text filter');
  // Any state: the matches lie beyond 2500 other devices (3 server pages).
  await page.locator('#f-state').selectOption('');
  await page.locator('#f-text').fill('dev-u');
  await page.locator('#device-filters button[type=submit]').click();
  await page.locator('.status', { hasText: '5 device(s) shown.' }).waitFor();
  const any = await page.locator('#view table').innerText();
  ok(['dev-u1', 'dev-u2', 'dev-u3', 'dev-u4', 'dev-u5'].every((x) => any.includes(x)) && !any.includes('dev-1'),
    'devices: text filter across server pages');
  await page.locator('#f-text').fill('');
  await page.locator('#device-filters button[type=submit]').click();
  await page.locator('.status', { hasText: '100 device(s) shown.' }).waitFor();
  await page.locator('#next-page').click();
  await page.locator('.status', { hasText: '100 device(s) shown after dev-10093.' }).waitFor();
  ok(true, 'devices: paging by 100');
  await shot(page, 'devices');
  await page.locator('#f-text').fill('u3');
  await page.locator('#f-state').selectOption('approved');
  await page.locator('#device-filters button[type=submit]').click();
  await page.locator('.status', { hasText: '1 device(s) shown' }).waitFor();
  await page.getByRole('link', { name: 'dev-u3' }).click();
  await page.locator('h2', { hasText: 'History of dev-u3' }).waitFor();
  const hist = await page.locator('#view table').innerText();
  ok(/provision\.pending/.test(hist) && /admin\.approved/.test(hist) && !/dev-u1/.test(hist), 'device history: its audit entries only', hist.slice(0, 300));
  await shot(page, 'history');
  const pageText = {};
  for (const name of ['flags', 'report', 'batches', 'stations']) {
    await page.locator(`nav a[href="#${name}"]`).click();
    await page.locator(`#view[data-page="${name}"]:not([aria-busy]) h2`).first().waitFor();
    pageText[name] = await page.locator('#view').innerText();
    await shot(page, name);
  }
  ok(true, 'flags, hostage report, batches and stations pages render');
  ok(!Object.values(pageText).some((t) => /\bnull\b|undefined|NaN/.test(t)), 'no page shows null, undefined or NaN');
  ok(/dev-0001/.test(pageText.report) && /b-ui-1/.test(pageText.report), 'hostage report: the preloaded devices with their batch');
  ok(/missing: never imported/.test(pageText.batches) && /1 missing/.test(pageText.batches) &&
    /b-ui-3/.test(pageText.batches), 'batches: the gap at sequence 2 stands out', pageText.batches.slice(0, 200));
  ok(/line-1/.test(pageText.stations) && pageText.stations.includes(grouped(env.UI_CA_SHA)), 'stations: the factory CA with its fingerprint');
  await page.locator('nav a[href="#audit"]').click();
  await page.locator('#audit-verify').click();
  await page.locator('.status.ok', { hasText: 'Chain intact' }).waitFor();
  ok(true, 'audit: the chain verifies from the page');
  const auditText = await page.locator('#view table').innerText();
  ok(auditText.includes('dev-u2'), 'audit: the decisions are listed');
  await shot(page, 'audit');
  await page.setViewportSize({ width: 768, height: 1024 });
  await page.locator('nav a[href="#pending"]').click();
  await page.locator('#label-form').waitFor();
  await shot(page, 'pending-tablet');
  await page.setViewportSize({ width: 1280, height: 800 });

  // --- a viewer: everything shown, nothing to change ------------------------------
  let r0 = await raw('POST', '/v1/admin/credentials', bearer, JSON.stringify({ name: 'ops-view', role: 'viewer' }));
  ok(r0.status === 201, 'viewer credential issued', `${r0.status} ${r0.body}`);
  const viewerSecret = JSON.parse(r0.body).secret;
  const vctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const vpage = await vctx.newPage();
  await vpage.goto(`${URL0}/ui/`);
  await vpage.locator('#credential').fill(viewerSecret);
  await vpage.locator('#credential').press('Enter');
  await vpage.locator('#who', { hasText: 'Signed in as ops-view (viewer, read only)' }).waitFor();
  await vpage.locator('tr[data-id="dev-u4"]').waitFor();
  ok(await vpage.locator('#label-form').count() === 0 && await vpage.getByRole('button', { name: /^(Approve|Reject)/ }).count() === 0,
    'viewer: pending devices listed, no approve, reject or label controls');
  ok(!/\bnull\b/.test(await vpage.locator('#view').innerText()), 'viewer: nothing absent shows as null');
  await shot(vpage, 'pending-viewer');
  const vcookie = (await vctx.cookies()).find((c) => c.name === '__Host-idprov-session');
  const vsess = JSON.parse((await raw('GET', '/ui/session', { Cookie: `${vcookie.name}=${vcookie.value}` })).body);
  ok(vsess.name === 'ops-view' && vsess.role === 'viewer', 'viewer session: its name and role');
  r0 = await raw('POST', '/v1/admin/devices/approve', { Cookie: `${vcookie.name}=${vcookie.value}`, 'X-CSRF-Token': vsess.csrf },
    JSON.stringify({ id: 'dev-u4' }));
  ok(r0.status === 403 && await deviceState('dev-u4') === 'pending', 'viewer session with its token: the API refuses to approve (403)', `${r0.status} ${r0.body}`);
  r0 = await raw('POST', '/v1/admin/credentials/revoke', bearer, JSON.stringify({ name: 'ops-view' }));
  ok(r0.status === 200, 'viewer credential revoked');
  r0 = await raw('GET', '/v1/admin/devices', { Cookie: `${vcookie.name}=${vcookie.value}` });
  ok(r0.status === 401, 'revoking the credential ends its session', String(r0.status));
  await vctx.close();

  // --- forged cross-site requests ------------------------------------------------
  // A page of another site posting a form to the admin API: the browser does
  // not send the SameSite=Strict cookie, so the server sees no credential.
  const evil = await context.newPage();
  await evil.setContent(`<form id="f" method="post" enctype="text/plain" action="${URL0}/v1/admin/devices/approve">` +
    '<input name=\'{"id":"dev-u4","x":"\' value=\'"}\'></form>');
  const [nav] = await Promise.all([evil.waitForNavigation(), evil.evaluate(() => document.getElementById('f').submit())]);
  ok(nav && (nav.status() === 401 || nav.status() === 403), 'cross-site form POST refused', nav && String(nav.status()));
  await evil.close();
  const sess = JSON.parse((await raw('GET', '/ui/session', { Cookie: sessionCookie })).body);
  ok(sess.name === 'admin' && sess.role === 'admin' && /^[0-9a-f]{64}$/.test(sess.csrf), 'GET /ui/session gives the name, role and CSRF token');
  const body = JSON.stringify({ id: 'dev-u4' });
  let r = await raw('POST', '/v1/admin/devices/approve', { Cookie: sessionCookie }, body);
  ok(r.status === 403 && /X-CSRF-Token/.test(r.body), 'session cookie without CSRF token: 403', `${r.status} ${r.body}`);
  r = await raw('POST', '/v1/admin/devices/approve', { Cookie: sessionCookie, 'X-CSRF-Token': '0'.repeat(64) }, body);
  ok(r.status === 403, 'wrong CSRF token: 403', String(r.status));
  r = await raw('POST', '/v1/admin/devices/approve', { Cookie: sessionCookie, 'X-CSRF-Token': sess.csrf, Origin: 'https://evil.example' }, body);
  ok(r.status === 403 && /another origin/.test(r.body), 'right token from another origin: 403', `${r.status} ${r.body}`);
  r = await raw('POST', '/ui/login', { Origin: 'https://evil.example' }, JSON.stringify({ credential: env.UI_TOKEN }));
  ok(r.status === 403 && !r.headers['set-cookie'], 'login from another origin: 403, no cookie');
  ok(await deviceState('dev-u4') === 'pending', 'forged requests changed nothing');
  r = await raw('GET', '/v1/admin/devices', { Cookie: sessionCookie });
  ok(r.status === 200 && r.headers['cache-control'] === 'no-store', 'the API with the session cookie: 200, no-store');

  // --- a session ended elsewhere (another tab's logout) ---------------------------
  ok(errors.length === 0, 'no console errors on the page', errors.join(' | '));
  r = await raw('POST', '/ui/logout', { Cookie: sessionCookie, 'X-CSRF-Token': sess.csrf }, '');
  ok(r.status === 200, 'logout from another client: 200', String(r.status));
  await page.locator('#login-error', { hasText: 'Session ended' }).waitFor();
  ok(await page.locator('#nav').isHidden() && (await page.locator('#view').innerText()) === '',
    'the page notices at its next refresh and shows nothing but the login');

  // --- logout ------------------------------------------------------------------
  await page.locator('#credential').fill(env.UI_TOKEN);
  await page.locator('#credential').press('Enter');
  await page.locator('#who', { hasText: 'Signed in as admin' }).waitFor();
  const cookie2 = (await context.cookies()).find((c) => c.name === '__Host-idprov-session');
  ok(cookie2 && cookie2.value !== cookie.value, 'logged in again: a new session');
  await page.locator('#logout').click();
  await page.locator('#credential').waitFor();
  ok(await page.locator('#nav').isHidden(), 'logout: back at the login form');
  const gone = `${cookie2.name}=${cookie2.value}`;
  ok((await raw('GET', '/v1/admin/devices', { Cookie: gone })).status === 401, 'the logged-out session is refused');
  ok(!(await context.cookies()).some((c) => c.name === '__Host-idprov-session'), 'logout cleared the cookie in the browser');
  r = await raw('GET', '/v1/admin/devices', { Cookie: sessionCookie });
  ok(r.status === 401, 'old session cookie after logout: 401', String(r.status));
  r = await raw('POST', '/v1/admin/devices/approve', { Cookie: sessionCookie, 'X-CSRF-Token': sess.csrf }, body);
  ok(r.status === 401, 'old session cookie and token after logout: cannot approve', String(r.status));
  ok(JSON.parse((await raw('GET', '/ui/session', { Cookie: sessionCookie })).body).role === 'none', 'GET /ui/session: no session');
  await browser.close();
}

await run(main, () => {
  for (const c of agents.values()) if (c.exitCode === null) c.kill('SIGTERM');
});
