// api.js - the one way the page talks to idprovd: the admin API with the
// session cookie (sent by the browser) and the session's CSRF token in the
// X-CSRF-Token header of every request that changes something.
let csrf = '';

export function setCsrf(token) {
  csrf = token || '';
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = csrf;
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body || {});
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = text;
  if ((r.headers.get('Content-Type') || '').startsWith('application/json')) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!r.ok) {
    const e = data && data.error ? data.error : {};
    throw new ApiError(r.status, e.code || 'http', e.message || `HTTP ${r.status}`);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body);

// path with the query parameters of q that are set.
export function withQuery(path, q) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}

// The samples of Prometheus text (GET /metrics) as name{labels} -> number.
export function parseMetrics(text) {
  const out = new Map();
  for (const line of String(text).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    if (i > 0) out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}
