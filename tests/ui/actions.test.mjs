// actions.test.mjs - the web UI's review actions in a real browser (Debian's
// chromium driven by playwright-core, a real idprovd on loopback): resolving
// a flag (with a confirmation; the viewer cannot), the banner shown while
// provisioning is suspended with its resume button (admins only, CSRF-
// protected), and a device's history from the audit log. Each control is
// found by its accessible name and driven with the keyboard where a person
// would. Run by tests/integration/ui/actions.sh, which starts the server with
// two open batch-gap flags (b-ui-3, b-ui-7), suspends provisioning, issues a
// viewer credential and passes, besides lib.mjs's variables:
//   UI_VIEWER   the viewer credential's secret
// Prints "ok - ..." / "not ok - ..."; exit 77 when chromium cannot start.
import { env, URL0, ok, raw, bearer, launch, openPage, shot, sessionCookie, run } from './lib.mjs';

const json = async (p, h = bearer) => JSON.parse((await raw('GET', p, h)).body);
const openFlags = async () => (await json('/v1/admin/flags')).flags;
const suspended = async () => (await json('/v1/admin/suspension')).suspended;

async function login(browser, secret, who) {
  const { context, page, errors } = await openPage(browser);
  await page.goto(`${URL0}/ui/`);
  await page.getByLabel('Admin credential').fill(secret);
  await page.getByLabel('Admin credential').press('Enter');
  await page.locator('#who', { hasText: `Signed in as ${who}` }).waitFor();
  return { context, page, errors };
}

async function main() {
  const browser = await launch();
  const flags0 = await openFlags();
  const gap3 = flags0.find((f) => f.kind === 'batch-gap' && f.subject === 'b-ui-3');
  const gap7 = flags0.find((f) => f.kind === 'batch-gap' && f.subject === 'b-ui-7');
  ok(gap3 && gap7 && await suspended(), 'set-up: two open batch-gap flags, provisioning suspended');

  // --- a viewer: sees the banner and the flags, can change neither -----------
  const v = await login(browser, env.UI_VIEWER, 'ops-view');
  const vbanner = v.page.getByRole('alert').filter({ hasText: 'Provisioning is suspended' });
  await vbanner.waitFor();
  ok((await vbanner.innerText()).includes('maintenance window'), 'viewer: the banner names the reason');
  ok(await v.page.getByRole('button', { name: 'Resume provisioning' }).count() === 0 &&
    (await vbanner.innerText()).includes('An administrator can resume it'), 'viewer: no resume button');
  await v.page.getByRole('link', { name: 'Flags' }).click();
  await v.page.locator(`tr[data-seq="${gap3.seq}"]`).waitFor();
  ok(await v.page.getByRole('button', { name: /^Resolve/ }).count() === 0, 'viewer: flags listed, no resolve button');
  await shot(v.page, 'flags-viewer');
  const vcookie = await sessionCookie(v.context);
  const vsess = JSON.parse((await raw('GET', '/ui/session', { Cookie: vcookie })).body);
  let r = await raw('POST', '/v1/admin/flags/resolve', { Cookie: vcookie, 'X-CSRF-Token': vsess.csrf }, JSON.stringify({ seq: gap3.seq }));
  ok(r.status === 403, 'viewer session with its CSRF token: the API refuses to resolve (403)', `${r.status} ${r.body}`);
  r = await raw('POST', '/v1/admin/resume', { Cookie: vcookie, 'X-CSRF-Token': vsess.csrf }, '{}');
  ok(r.status === 403, 'viewer session: the API refuses to resume (403)', `${r.status} ${r.body}`);
  ok((await openFlags()).length === flags0.length && await suspended(), 'viewer attempts changed nothing');
  ok(v.errors.length === 0, 'viewer page: no console errors', v.errors.join(' | '));
  await v.context.close();

  // --- the admin: banner with resume ---------------------------------------------
  const a = await login(browser, env.UI_TOKEN, 'admin');
  const banner = a.page.getByRole('alert').filter({ hasText: 'Provisioning is suspended' });
  await banner.waitFor();
  const resume = a.page.getByRole('button', { name: 'Resume provisioning' });
  ok(await resume.isVisible() && (await banner.innerText()).includes('maintenance window'), 'admin: the banner with its reason and a resume button');
  ok(!/\bnull\b|undefined|NaN/.test(await banner.innerText()), 'the banner shows no null, undefined or NaN', await banner.innerText());
  await shot(a.page, 'suspended-banner');
  const acookie = await sessionCookie(a.context);
  const asess = JSON.parse((await raw('GET', '/ui/session', { Cookie: acookie })).body);
  r = await raw('POST', '/v1/admin/resume', { Cookie: acookie }, '{}');
  ok(r.status === 403 && await suspended(), 'resume with the session cookie but no CSRF token: 403, still suspended', `${r.status} ${r.body}`);
  r = await raw('POST', '/v1/admin/flags/resolve', { Cookie: acookie }, JSON.stringify({ seq: gap3.seq }));
  ok(r.status === 403 && (await openFlags()).length === flags0.length, 'resolve without a CSRF token: 403, flag still open', `${r.status} ${r.body}`);

  // --- resolve a flag: cancel first (keyboard), then confirm -----------------------
  await a.page.getByRole('link', { name: 'Flags' }).click();
  const resolve3 = a.page.getByRole('button', { name: `Resolve flag ${gap3.seq} (batch-gap b-ui-3)` });
  await resolve3.waitFor();
  await shot(a.page, 'flags');
  await resolve3.focus();
  await a.page.keyboard.press('Enter');
  await a.page.locator('#confirm').waitFor({ state: 'visible' });
  ok((await a.page.locator('#confirm-text').innerText()).includes(`Resolve flag #${gap3.seq}`), 'resolve asks for confirmation, naming the flag');
  await a.page.keyboard.press('Escape');
  await a.page.locator('#confirm').waitFor({ state: 'hidden' });
  ok((await openFlags()).some((f) => f.seq === gap3.seq), 'cancelled confirmation: the flag stays open');
  await resolve3.focus();
  await a.page.keyboard.press('Enter');
  await a.page.locator('#confirm').waitFor({ state: 'visible' });
  await a.page.keyboard.press('Tab'); // from Cancel to Confirm
  await a.page.keyboard.press('Enter');
  await a.page.locator('.status.ok', { hasText: `Flag #${gap3.seq} resolved.` }).waitFor();
  const open1 = await openFlags();
  ok(!open1.some((f) => f.seq === gap3.seq) && open1.some((f) => f.seq === gap7.seq), 'resolved by keyboard: it leaves the open list, the other stays');
  await a.page.locator(`tr[data-seq="${gap3.seq}"]`).waitFor({ state: 'detached' });
  ok(true, 'the flags page refreshes without it');
  const resolved = (await json('/v1/admin/flags?state=resolved')).flags;
  ok(resolved.some((f) => f.seq === gap3.seq) && !resolved.some((f) => f.seq === gap7.seq), 'GET flags?state=resolved lists it');
  await a.page.getByLabel('Show flags').selectOption('resolved');
  await a.page.getByRole('button', { name: 'Show', exact: true }).click();
  await a.page.locator('h2', { hasText: 'Resolved flags' }).waitFor();
  ok(await a.page.locator(`tr[data-seq="${gap3.seq}"]`).count() === 1 &&
    await a.page.getByRole('button', { name: /^Resolve/ }).count() === 0, 'the resolved view lists it, without buttons');
  r = await raw('POST', '/v1/admin/flags/resolve', { Cookie: acookie, 'X-CSRF-Token': asess.csrf }, JSON.stringify({ seq: gap3.seq }));
  ok(r.status === 404 && /no such open flag/.test(r.body), 'resolving it again: 404', `${r.status} ${r.body}`);

  // --- the history of its subject, from the audit log --------------------------------
  await a.page.getByRole('link', { name: 'b-ui-3' }).click();
  await a.page.locator('h2', { hasText: 'History of b-ui-3' }).waitFor();
  const hist = await a.page.locator('#view table').innerText();
  ok(/batch\.imported/.test(hist) && /admin\.flag_resolved/.test(hist) && /batch-gap #/.test(hist),
    'history of b-ui-3: imported, then its flag resolved', hist.slice(0, 400));
  ok(!/b-ui-7|b-ui-1\b|admin\.suspended/.test(hist), 'history of b-ui-3: no other subject\'s entries', hist.slice(0, 400));
  ok(/\badmin\b/.test(hist.split('\n').find((l) => /flag_resolved/.test(l)) || ''), 'history: the actor who resolved it');
  await shot(a.page, 'history-batch');
  await a.page.getByLabel('Subject (device, batch or station ID)').fill('dev-0001');
  await a.page.getByLabel('Subject (device, batch or station ID)').press('Enter');
  await a.page.locator('h2', { hasText: 'History of dev-0001' }).waitFor();
  await a.page.locator('#audit-none', { hasText: 'No entries for dev-0001.' }).waitFor();
  ok(true, 'history of a device with no entries says so');

  // --- resume from the banner, by keyboard ---------------------------------------------
  await resume.focus();
  await a.page.keyboard.press('Enter');
  await a.page.locator('#confirm').waitFor({ state: 'visible' });
  ok((await a.page.locator('#confirm-text').innerText()).includes('Resume provisioning?'), 'resume asks for confirmation');
  await a.page.keyboard.press('Tab');
  await a.page.keyboard.press('Enter');
  await banner.waitFor({ state: 'hidden' });
  ok(!(await suspended()), 'resumed: the API says provisioning runs');
  await a.page.locator('.status.ok', { hasText: 'Provisioning resumed.' }).waitFor();
  ok(true, 'resumed: the banner is gone and the page says so');
  const audit = (await json('/v1/admin/audit')).entries;
  const resumedEntry = audit.filter((e) => e.event === 'admin.resumed').pop();
  const resolvedEntry = audit.find((e) => e.event === 'admin.flag_resolved' && e.subject === 'b-ui-3');
  ok(resumedEntry && resumedEntry.actor === 'admin' && resolvedEntry && resolvedEntry.actor === 'admin' &&
    resolvedEntry.detail === `batch-gap #${gap3.seq}`, 'audit: the resume and the resolution, by admin', JSON.stringify([resumedEntry, resolvedEntry]));

  // --- suspended again while the page is open: the banner comes back by itself --------
  r = await raw('POST', '/v1/admin/suspend', bearer, JSON.stringify({ reason: 'rogue drill' }));
  ok(r.status === 200, 'suspended again through the API');
  await a.page.getByRole('alert').filter({ hasText: 'rogue drill' }).waitFor();
  ok(true, 'the banner appears without a reload');
  ok(a.errors.length === 0, 'admin page: no console errors', a.errors.join(' | '));
  await a.context.close();
  await browser.close();
}

await run(main);
