// A WebRTC softphone in a real browser, for sipwake's end-to-end tests:
// JsSIP in the system's headless Chromium (driven by playwright-core, which
// never downloads a browser of its own), registering over WSS with RFC 8599
// WebPush parameters in its Contact URI and answering every call.
//
// Usage: node phone.mjs '<json>'   with the JSON object:
//   wss            "wss://127.0.0.1:PORT"         the server's WSS listener
//   uri            "sip:user@domain"              the AoR
//   password       digest password (optional)
//   contactUser    the Contact URI's user part    (optional; random otherwise)
//   pn             { provider, prid, p256dh, auth } RFC 8599 Contact URI
//                  parameters (prid as it goes on the wire: escaped)
//   userDataDir    a fresh directory for Chromium's profile (required)
//   spki           base64 SHA-256 of the server certificate's SPKI, passed
//                  as --ignore-certificate-errors-spki-list (optional)
//   ignoreHTTPSErrors  Playwright's context option instead (optional)
//   expires        REGISTER expiry in seconds (optional, default 600)
//   chromium       the browser binary (optional, default /usr/bin/chromium)
//
// Events go to stdout as JSON lines: launched (with Chromium's PID),
// started (the Contact URI), connected, disconnected, registered,
// registrationFailed, unregistered, incoming (the INVITE's Request-URI,
// caller and raw text), accepted, confirmed, ended, failed, asleep, error,
// closed. Commands come on stdin as JSON lines:
//   {"cmd":"sleep"}    closes the page, and its WebSocket with it, without
//                      un-registering: a browser whose tab is gone, or
//                      frozen, and whose only way in is a push;
//   {"cmd":"register"} registers now, as the app does when its service
//                      worker gets a push: asleep, a new page starts the
//                      phone again (same Contact, same +sip.instance) on a
//                      new connection; awake, the running phone registers
//                      again;
//   {"cmd":"quit"}     ends (EOF on stdin too).

import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { buildSync } from 'esbuild';

const require = createRequire(import.meta.url);

function emit(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

function fail(message) {
  emit('error', { message: String(message) });
}

// JsSIP ships CommonJS only: bundle it for the page (one IIFE, global JsSIP).
function jssipBundle() {
  const out = buildSync({
    entryPoints: [require.resolve('jssip')],
    bundle: true,
    format: 'iife',
    globalName: 'JsSIP',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
  });
  return out.outputFiles[0].text;
}

// Chromium's PID, from the profile lock it writes ("host-PID").
function chromiumPid(userDataDir) {
  try {
    const target = readlinkSync(join(userDataDir, 'SingletonLock'));
    const pid = Number(target.slice(target.lastIndexOf('-') + 1));
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

// Runs inside the page: the JsSIP user agent. Its events come back through
// the exposed `phoneEvent` binding.
function startUa(opts) {
  /* global JsSIP, phoneEvent */
  const report = (event, fields = {}) => phoneEvent({ event, ...fields });
  const params = [];
  if (opts.pn) {
    const { provider, prid, p256dh, auth } = opts.pn;
    params.push(`pn-provider=${provider}`);
    if (prid) params.push(`pn-prid=${prid}`);
    if (p256dh) params.push(`pn-webpush-p256dh=${p256dh}`);
    if (auth) params.push(`pn-webpush-auth=${auth}`);
  }
  const contactUri = [`sip:${opts.contactUser}@${opts.contactHost};transport=ws`, ...params].join(';');
  const socket = new JsSIP.WebSocketInterface(opts.wss);
  const ua = new JsSIP.UA({
    sockets: [socket],
    uri: opts.uri,
    password: opts.password,
    contact_uri: contactUri,
    instance_id: opts.instanceId,
    register: true,
    register_expires: opts.expires || 600,
    session_timers: false,
    connection_recovery_min_interval: 1,
    connection_recovery_max_interval: 2,
  });
  ua.on('connected', () => report('connected'));
  ua.on('disconnected', (e) => report('disconnected', { error: !!e.error }));
  ua.on('registered', (e) => report('registered', {
    status: e.response.status_code,
    contact: e.response.getHeaders('contact'),
    featureCaps: e.response.getHeader('feature-caps') || null,
  }));
  ua.on('unregistered', () => report('unregistered'));
  ua.on('registrationFailed', (e) => report('registrationFailed', {
    cause: e.cause,
    status: e.response ? e.response.status_code : null,
  }));
  ua.on('newRTCSession', (e) => {
    if (e.originator !== 'remote') return;
    const s = e.session;
    const rq = e.request;
    report('incoming', {
      ruri: rq.ruri.toString(),
      from: rq.from.uri.toString(),
      displayName: rq.from.display_name || null,
      callId: rq.call_id,
      raw: rq.data,
    });
    s.on('accepted', () => report('accepted', { callId: rq.call_id }));
    s.on('confirmed', () => report('confirmed', { callId: rq.call_id }));
    s.on('ended', (x) => report('ended', { callId: rq.call_id, originator: x.originator, cause: x.cause }));
    s.on('failed', (x) => report('failed', { callId: rq.call_id, originator: x.originator, cause: x.cause }));
    try {
      s.answer({ mediaConstraints: { audio: true, video: false } });
    } catch (err) {
      report('error', { message: `answer: ${err}` });
    }
  });
  window.sipwakeUa = ua;
  ua.start();
  return contactUri;
}

async function main() {
  const opts = JSON.parse(process.argv[2] || '{}');
  for (const k of ['wss', 'uri', 'userDataDir']) {
    if (!opts[k]) throw new Error(`missing "${k}" in the JSON argument`);
  }
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
  ];
  if (opts.spki) args.push(`--ignore-certificate-errors-spki-list=${opts.spki}`);
  const context = await chromium.launchPersistentContext(opts.userDataDir, {
    executablePath: opts.chromium || '/usr/bin/chromium',
    headless: true,
    args,
    ignoreHTTPSErrors: !!opts.ignoreHTTPSErrors,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  emit('launched', { chromiumPid: chromiumPid(opts.userDataDir) });
  let closing = false;
  const close = async (why) => {
    if (closing) return;
    closing = true;
    try {
      await context.close();
    } catch (err) {
      fail(`close: ${err}`);
    }
    emit('closed', { why });
    process.exit(0);
  };
  context.on('close', () => {
    if (!closing) {
      emit('error', { message: 'the browser went away' });
      process.exit(1);
    }
  });
  // One phone identity for every page: a woken page registers the same
  // Contact and instance, replacing the binding's flow (RFC 5626).
  const ua = {
    ...opts,
    contactUser: opts.contactUser || Math.random().toString(36).slice(2, 10),
    contactHost: `${Math.random().toString(36).slice(2, 12)}.invalid`,
    instanceId: randomUUID(),
  };
  const bundle = jssipBundle();
  let page = null;
  await context.exposeFunction('phoneEvent', ({ event, ...fields }) => emit(event, fields));
  const openPhone = async () => {
    const p = context.pages()[0] || (await context.newPage());
    p.on('console', (m) => {
      if (m.type() === 'error') emit('console', { text: m.text() });
    });
    p.on('pageerror', (err) => fail(`page: ${err}`));
    // A file:// page: a secure context (getUserMedia and RTCPeerConnection
    // need one) that Chromium's Local Network Access checks let reach a
    // loopback server (about:blank is blocked: ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
    await p.goto(new URL('./phone.html', import.meta.url).href);
    await p.addScriptTag({ content: bundle });
    const contact = await p.evaluate(startUa, ua);
    page = p;
    emit('started', { contact });
  };
  await openPhone();

  const rl = createInterface({ input: process.stdin });
  rl.on('line', async (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      fail(`not JSON: ${line}`);
      return;
    }
    switch (msg.cmd) {
      case 'register':
        if (page) {
          await page.evaluate(() => window.sipwakeUa.register()).catch((err) => fail(`register: ${err}`));
        } else {
          await openPhone().catch((err) => fail(`wake: ${err}`));
        }
        break;
      case 'sleep':
        if (page) {
          const p = page;
          page = null;
          // A blank page keeps the browser (and the context) open.
          await context.newPage();
          await p.close({ runBeforeUnload: false }).catch((err) => fail(`sleep: ${err}`));
        }
        emit('asleep');
        break;
      case 'quit':
        await close('quit');
        break;
      default:
        fail(`unknown command: ${line}`);
    }
  });
  rl.on('close', () => close('stdin closed'));
}

main().catch((err) => {
  fail(err && err.stack ? err.stack : err);
  process.exit(1);
});
