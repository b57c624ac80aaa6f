// lib.mjs - what the browser tests share (ui.test.mjs, actions.test.mjs):
// the check printer, requests from the script itself (not the browser) with
// the server's CA, chromium's start, screenshots and the confirmation dialog.
// The environment is the wrapper's (tests/integration/ui/*.sh): UI_URL,
// UI_CA, UI_TOKEN, UI_SHOTS, UI_CHROMIUM.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const env = process.env;
export const URL0 = env.UI_URL;
export const STEP_MS = 30000; // bound of every wait for the page or a process
export const result = { failed: 0 };
const ca = fs.readFileSync(env.UI_CA);

export function ok(cond, what, detail = '') {
  if (cond) console.log(`ok - ${what}`);
  else {
    result.failed++;
    console.log(`not ok - ${what}${detail ? ` (${detail})` : ''}`);
  }
  return cond;
}

// A request from this script (not the browser), with the server's CA.
export function raw(method, p, headers = {}, body = null) {
  return new Promise((resolve, reject) => {
    const u = new URL(p, URL0);
    const req = https.request({ method, hostname: u.hostname, port: u.port, path: u.pathname + u.search, ca,
      headers: { ...headers, ...(body !== null ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } : {}) },
      timeout: STEP_MS }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

export const bearer = { Authorization: `Bearer ${env.UI_TOKEN}` };

// Debian's chromium, or exit 77 (the wrapper reports the skip) when it
// cannot start.
export async function launch() {
  try {
    return await chromium.launch({ executablePath: env.UI_CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu'], timeout: STEP_MS });
  } catch (e) {
    console.log(`SKIP: chromium cannot start: ${String(e.message).split('\n')[0]}`);
    process.exit(77);
  }
  return null;
}

// A new browser context and page at laptop size; errors collects the page's
// console errors and uncaught exceptions. The server's CA is not in
// chromium's store: the page's own TLS is what the tests trust (their own
// requests, raw(), check it with the CA).
export async function openPage(browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(STEP_MS);
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { context, page, errors };
}

export async function shot(page, name) {
  fs.mkdirSync(env.UI_SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(env.UI_SHOTS, `${name}.png`), fullPage: true });
}

export async function confirm(page) {
  const dlg = page.locator('#confirm');
  await dlg.waitFor({ state: 'visible', timeout: STEP_MS });
  await page.locator('#confirm-ok').click();
}

// The session cookie of a browser context as a Cookie header value.
export async function sessionCookie(context) {
  const c = (await context.cookies()).find((x) => x.name === '__Host-idprov-session');
  return c ? `${c.name}=${c.value}` : '';
}

// Run main (async); a throw is one failed check; cleanup runs either way.
// Exits 0 when every check passed, else 1.
export async function run(main, cleanup = () => {}) {
  try {
    await main();
  } catch (e) {
    result.failed++;
    console.log(`not ok - ${String(e.message || e).split('\n')[0]}`);
  } finally {
    cleanup();
  }
  process.exit(result.failed === 0 ? 0 : 1);
}
