// app.js - the page's entry module: login and logout, the router (one page
// per URL fragment, #page?k=v), and the live counts from GET /metrics that
// refresh without reloading (and re-render the pending list when it changes).
import { get, post, setCsrf, parseMetrics, ApiError } from './api.js';
import * as pages from './pages.js';

const PAGES = { pending: pages.pending, devices: pages.devices, flags: pages.flags,
  report: pages.report, batches: pages.batches, audit: pages.audit, stations: pages.stations };
const COUNT_EVERY_MS = 3000;

const $ = (id) => document.getElementById(id);
const session = { role: 'none' };
let timer = null;
let lastCounts = '';

function route() {
  const [name, query] = (location.hash.slice(1) || 'pending').split('?');
  return { name: PAGES[name] ? name : 'pending', params: Object.fromEntries(new URLSearchParams(query || '')) };
}

function go(name, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  const hash = `#${name}${q ? `?${q}` : ''}`;
  if (location.hash === hash) render();
  else location.hash = hash;
}

async function render() {
  if (session.role === 'none') return;
  const r = route();
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === `#${r.name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const view = $('view');
  view.dataset.page = r.name;
  view.setAttribute('aria-busy', 'true');
  try {
    await PAGES[r.name](view, { role: session.role, params: r.params, go, refresh: render });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { loggedOut('Session ended: log in again.'); return; }
    view.replaceChildren(pages.h('p', { class: 'error', role: 'alert' }, `Cannot load: ${e.message}`));
  } finally {
    view.removeAttribute('aria-busy');
  }
}

async function counts() {
  try {
    await pages.suspension($('suspended'), session.role, counts);
    const m = parseMetrics(await get('/metrics'));
    const n = (k) => m.get(k) ?? 0;
    const text = `Pending: ${n('idprov_pending_devices')} · Open flags: ${n('idprov_open_flags')} · ` +
      `Approved: ${n('idprov_devices{state="approved"}')} · Preloaded: ${n('idprov_devices{state="preloaded"}')}`;
    if (text !== lastCounts) {
      const first = lastCounts === '';
      lastCounts = text;
      $('counts').textContent = text;
      if (!first && route().name === 'pending') render();
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) loggedOut('Session ended: log in again.');
  }
}

function loggedIn(s) {
  session.role = s.role;
  setCsrf(s.csrf);
  $('login').hidden = true;
  $('nav').hidden = false;
  $('view').hidden = false;
  $('logout').hidden = false;
  $('who').textContent = `Signed in as ${s.name} (${s.role === 'viewer' ? 'viewer, read only' : s.role})`;
  document.body.dataset.role = s.role;
  lastCounts = '';
  counts();
  clearInterval(timer);
  timer = setInterval(counts, COUNT_EVERY_MS);
  render();
}

function loggedOut(why) {
  session.role = 'none';
  setCsrf('');
  clearInterval(timer);
  timer = null;
  $('login').hidden = false;
  $('nav').hidden = true;
  $('view').hidden = true;
  $('view').replaceChildren();
  $('logout').hidden = true;
  $('who').textContent = '';
  $('counts').textContent = '';
  $('flash').textContent = '';
  $('suspended').hidden = true;
  $('suspended').replaceChildren();
  document.body.dataset.role = 'none';
  $('login-error').textContent = why || '';
  $('credential').focus();
}

async function login(ev) {
  ev.preventDefault();
  const input = $('credential');
  try {
    const s = await post('/ui/login', { credential: input.value.trim() });
    input.value = '';
    $('login-error').textContent = '';
    loggedIn(s);
    $('main').focus();
  } catch (e) {
    $('login-error').textContent = e instanceof ApiError && e.status === 401
      ? 'Not an admin credential.' : `Cannot log in: ${e.message}`;
  }
}

async function logout() {
  try { await post('/ui/logout'); } catch { /* the session is gone either way */ }
  loggedOut('Logged out.');
}

async function start() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', () => { pages.say($('flash'), ''); render(); });
  let s = { role: 'none' };
  try { s = await get('/ui/session'); } catch { /* shown as logged out */ }
  if (s.role === 'admin' || s.role === 'viewer') loggedIn(s);
  else loggedOut('');
}

start();
