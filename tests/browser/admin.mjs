// The admin page (GET /admin, crates/sipwake/assets/admin.html) in a real
// browser, for sipwake's end-to-end tests: the system's headless Chromium,
// driven by playwright-core (which never downloads a browser of its own),
// signs in like an operator (types the token, clicks "Sign in"), optionally
// searches an AoR prefix and opens a call's push audit, waits for the data,
// then prints what the page SHOWS (read back from the DOM, not from the API)
// and saves a full-page screenshot.
//
// Usage: node admin.mjs '<json>'   with the JSON object:
//   url          "http://127.0.0.1:PORT/admin"   (required)
//   token        the management bearer token    ("" or absent: none)
//   userDataDir  a fresh directory for Chromium's profile (required)
//   screenshot   "/path/x.png"                   (optional)
//   aor          an AoR prefix to search          (optional)
//   callId       a Call-ID whose push audit to open (optional)
//   waitFor      {bindings: n, pushes: n, callEvents: n, flagged: n,
//                parked: n, blocked: n}: wait (up to 20 s) until at least
//                that many rows are shown (optional)
//   wrongToken   true: types token + "x" and reports the refusal
//   chromium     the browser binary (optional, default /usr/bin/chromium)
//
// Prints ONE JSON line and exits 0:
//   {"signedIn":true,"counters":{name:text},"bindings":[...],"pushes":[...],
//    "callEvents":[...],"flagged":[...],"parked":[...],"blocked":[...],
//    "notes":{section: text},"errors":[...]}
//   with wrongToken: {"signedIn":false,"message":"wrong token","errors":[...]}
// or {"error":"..."} and exits 1.

import { chromium } from 'playwright-core';

const WAIT_MS = 20_000;

function out(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

// Runs in the page: every row of a section's table as {col: text}, plus
// the row's data-* attributes under their own names (aor, binding, event…).
function readPage() {
  const text = (n) => (n ? n.innerText.replace(/\s*\n+\s*/g, ' · ').replace(/\s+/g, ' ').trim() : null);
  const rows = (testid) => [...document.querySelectorAll(`tr[data-testid="${testid}"]`)].map((tr) => {
    // The cells as shown; then the row's attributes, whole where a cell
    // is cut short (aor, callId, binding…).
    const o = {};
    for (const c of tr.querySelectorAll('td[data-col]')) o[c.dataset.col] = text(c);
    for (const [k, v] of Object.entries(tr.dataset)) if (k !== 'testid') o[k] = v;
    return o;
  });
  const counters = {};
  for (const c of document.querySelectorAll('[data-counter]')) counters[c.dataset.counter] = text(c.querySelector('.v'));
  // The notes shown ("none", an error, "push is off…"), by section.
  const notes = {};
  for (const s of document.querySelectorAll('main section[id]')) {
    const n = s.querySelector('[data-role="note"]');
    if (n && !n.hidden && n.textContent.trim()) notes[s.id] = n.textContent.trim();
  }
  return {
    server: text(document.getElementById('server-meta')),
    status: text(document.getElementById('status')),
    counters,
    bindingsSummary: text(document.getElementById('bindings-sub')),
    bindings: rows('binding-row'),
    pushes: rows('push-row'),
    callTitle: text(document.getElementById('call-sub')),
    callEvents: rows('call-event').map((e) => ({ ...e, text: e.details })),
    flagged: rows('flagged-row'),
    parked: rows('parked-row'),
    blocked: rows('blocked-row'),
    notes,
  };
}

async function main() {
  const opts = JSON.parse(process.argv[2] || '{}');
  for (const k of ['url', 'userDataDir']) {
    if (!opts[k]) throw new Error(`missing "${k}" in the JSON argument`);
  }
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  const context = await chromium.launchPersistentContext(opts.userDataDir, {
    executablePath: opts.chromium || '/usr/bin/chromium',
    headless: true,
    args,
    viewport: { width: 1280, height: 900 },
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  try {
    return await drive(context, opts);
  } finally {
    await context.close().catch(() => {});
  }
}

async function drive(context, opts) {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(WAIT_MS);
  // Errors: the page's own, the console's, and requests that failed. The
  // page's expected answers are not errors: 401 (a wrong token), 404 (a
  // Call-ID without audit, push routes with push off: shown as notes).
  const errors = [];
  page.on('pageerror', (err) => errors.push(`page: ${err.message || err}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.method()} ${r.url()}: ${r.failure() ? r.failure().errorText : '?'}`));
  page.on('response', (r) => {
    const s = r.status();
    if (s >= 400 && s !== 401 && s !== 404) errors.push(`HTTP ${s}: ${r.request().method()} ${r.url()}`);
  });

  const resp = await page.goto(opts.url);
  if (!resp || !resp.ok()) throw new Error(`GET ${opts.url}: ${resp ? resp.status() : 'no response'}`);
  const csp = resp.headers()['content-security-policy'] || null;

  // Sign in like an operator: type the token, click the button.
  const typed = `${opts.token || ''}${opts.wrongToken ? 'x' : ''}`;
  await page.locator('#token').click();
  if (typed) await page.locator('#token').pressSequentially(typed);
  await page.locator('#sign-in').click();
  // Signed in (the first refresh done) or refused (the form with a message).
  await page.waitForFunction(() => {
    if (document.body.dataset.loaded === 'true') return true;
    const msg = document.getElementById('login-msg').textContent.trim();
    return !document.getElementById('login').hidden && msg !== '' && msg !== 'signing in…';
  });
  const signedIn = await page.evaluate(() => document.body.dataset.loaded === 'true');
  if (!signedIn) {
    const message = (await page.locator('#login-msg').textContent()).trim();
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
    return { signedIn: false, message, errors };
  }

  if (opts.aor !== undefined && opts.aor !== null) {
    const want = `prefix=${encodeURIComponent(opts.aor)}&`;
    const answered = page.waitForResponse((r) => r.url().includes('/api/v1/aors?') && r.url().includes(want));
    await page.locator('#aor-search').fill(opts.aor);
    await page.locator('#aor-search').press('Enter');
    await answered;
    // Rendered: the summary names the prefix (or the "none" note does).
    await page.waitForFunction((p) => {
      const s = document.querySelector('#bindings');
      return !p || s.innerText.includes(p);
    }, opts.aor);
  }

  if (opts.callId) {
    const answered = page.waitForResponse((r) => r.url().includes('/api/v1/push/calls/'));
    await page.locator('#call-id').fill(opts.callId);
    await page.locator('#call-go').click();
    await answered;
    await page.waitForFunction((id) => (document.getElementById('call-sub').textContent || '').includes(id), opts.callId);
  }

  let waitTimedOut = false;
  if (opts.waitFor && typeof opts.waitFor === 'object') {
    const ids = { bindings: 'binding-row', pushes: 'push-row', callEvents: 'call-event', flagged: 'flagged-row', parked: 'parked-row', blocked: 'blocked-row' };
    const want = Object.entries(opts.waitFor).filter(([k]) => ids[k]).map(([k, n]) => [ids[k], Number(n)]);
    try {
      await page.waitForFunction(
        (w) => w.every(([t, n]) => document.querySelectorAll(`tr[data-testid="${t}"]`).length >= n),
        want, { timeout: WAIT_MS, polling: 250 },
      );
    } catch {
      waitTimedOut = true;
    }
  }

  const shown = await page.evaluate(readPage);
  if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
  return { signedIn: true, ...shown, ...(waitTimedOut ? { waitTimedOut } : {}), csp, errors };
}

main().then((result) => {
  out(result);
  process.exit(0);
}, (err) => {
  out({ error: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
