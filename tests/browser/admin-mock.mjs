// A stand-in for sipwake's management listener, to try the admin page
// (crates/sipwake/assets/admin.html) without building the Rust server:
// serves the page at /admin and fixture JSON for the API it reads, with the
// bearer token required (as the server does). No dependencies.
//
// Usage: node admin-mock.mjs PORT TOKEN [--push-off] [--empty]
//   PORT        0 picks a free port; prints "listening PORT" when ready
//   TOKEN       the bearer token ("" : no token needed, as a server without one)
//   --push-off  /api/v1/push/* answer 404 {"error":"push is off ..."}
//   --empty     every list is empty (the page's "none" states)
// The page is read from disk on every request: edit it, reload the browser.
//
// Fixtures (times relative to now): AoRs alice@example.com (a push binding
// over UDP and a WebRTC one) and bob@example.com (a plain binding whose user
// agent carries HTML, to see it escaped); recent pushes; the push audit of
// Call-ID "abc@host" (parked → push → woken → forked → answered), any other
// Call-ID answers 404; one flagged device, one parked INVITE, two blocked
// sources.

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

const [portArg = '0', token = 'secret', ...flags] = process.argv.slice(2);
const pushOff = flags.includes('--push-off');
const empty = flags.includes('--empty');
const page = new URL('../../crates/sipwake/assets/admin.html', import.meta.url);
const started = Date.now();

const CSP = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:";

function fixtures(now) {
  const push = (id, agoMs, extra) => ({
    id, at_ms: now - agoMs, aor: 'alice@example.com', binding: 'b1f2c3d4e5f60718', provider: 'apns',
    reason: 'call', method: 'INVITE', call_id: 'abc@host', attempt: 1, outcome: 'ok', latency_ms: 42, ...extra,
  });
  const pushes = [
    push(17, 4_000, { reason: 'call', outcome: 'ok', latency_ms: 42 }),
    push(16, 65_000, { reason: 'refresh', method: null, call_id: null, outcome: 'ok', latency_ms: 1230 }),
    push(15, 200_000, { aor: 'carol@example.com', binding: 'c9c9c9c9', provider: 'fcm', reason: 'call', call_id: 'lost-call-7f3e9a@10.0.0.9', outcome: 'timeout', latency_ms: null, attempt: 2 }),
    push(14, 210_000, { aor: 'carol@example.com', binding: 'c9c9c9c9', provider: 'fcm', reason: 'call', call_id: 'lost-call-7f3e9a@10.0.0.9', outcome: 'failed', latency_ms: 5000 }),
    push(13, 900_000, { aor: 'dave@example.com', binding: 'd0d0d0d0', provider: 'webpush', reason: 'test', method: null, call_id: null, outcome: 'rejected', latency_ms: 88 }),
  ];
  const alice1 = {
    id: 'b1f2c3d4e5f60718', aor: 'alice@example.com',
    contact: '<sip:alice@127.0.0.1:5062;pn-provider=apns;pn-prid=00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0;pn-param=ABCD1234.com.example.voip>',
    q: null, expires_in_secs: 3590, expires_at_ms: now + 3_590_000, call_id: 'reg-1@127.0.0.1', cseq: 2, instance: null, reg_id: null, path: [],
    flow: { transport: 'udp', remote: '127.0.0.1:5062', local: '127.0.0.1:5060', connection: null, alive: true },
    user_agent: 'Acme Phone/2.4 (iOS 18)', registered_at_ms: now - 10_000, push_capable: true,
    push: { provider: 'apns', prid: '00fc13adff78512…', param: 'ABCD1234.com.example.voip' },
    push_state: { binding: 'b1f2c3d4e5f60718', provider: 'apns', pnsreg: false, expires_in_ms: 3_590_000, registered_ago_ms: 10_000, next_refresh_in_ms: 3_400_000, refresh_attempts: 0, last_push_ago_ms: 4_000, consecutive_failures: 0, invalid: false, parked: 1, purrs: 1, purr_age_ms: 10_000 },
    last_push: pushes[0], upstream: null,
  };
  const alice2 = {
    id: 'a7a7a7a7a7a7', aor: 'alice@example.com', contact: 'sip:x8k2m1@df7jal23ls0d.invalid;transport=ws;pn-provider=webpush;pn-prid=https%3A%2F%2Fpush.example%2Fsub%2F123',
    q: '0.5', expires_in_secs: 412, expires_at_ms: now + 412_000, call_id: 'reg-2', cseq: 7, instance: '<urn:uuid:6b1f…>', reg_id: 1, path: [],
    flow: { transport: 'wss', remote: '192.0.2.44:51812', local: '0.0.0.0:8443', connection: 12, alive: false },
    user_agent: 'JsSIP 3.13.8', registered_at_ms: now - 188_000, push_capable: true, push: { provider: 'webpush', prid: 'https://push.example/sub/123', param: null },
    push_state: { binding: 'a7a7a7a7a7a7', provider: 'webpush', pnsreg: true, expires_in_ms: 412_000, registered_ago_ms: 188_000, next_refresh_in_ms: null, refresh_attempts: 2, last_push_ago_ms: null, consecutive_failures: 3, invalid: true, parked: 0, purrs: 0, purr_age_ms: null },
    last_push: null, upstream: null,
  };
  const bob = {
    id: 'bb00bb00', aor: 'bob@example.com', contact: 'sip:bob@198.51.100.5:5060', q: null, expires_in_secs: 86_000, expires_at_ms: now + 86_000_000,
    call_id: 'reg-3', cseq: 1, instance: null, reg_id: null, path: [],
    flow: { transport: 'tcp', remote: '198.51.100.5:40112', local: '0.0.0.0:5060', connection: 3, alive: true },
    user_agent: '<img src=x onerror=alert(1)> "quoted" & co', registered_at_ms: now - 400_000, push_capable: false, push: null, push_state: null, last_push: null, upstream: null,
  };
  const aors = [{ aor: 'alice@example.com', bindings: [alice1, alice2] }, { aor: 'bob@example.com', bindings: [bob] }];
  const t0 = now - 6_000;
  const events = [
    { at_ms: t0, event: 'parked', method: 'INVITE', request: 3, bindings: 2, aor: 'alice@example.com' },
    { at_ms: t0 + 12, event: 'push', binding: alice1.id, aor: 'alice@example.com', id: 17, provider: 'apns', reason: 'call', attempt: 1, outcome: 'ok', latency_ms: 42 },
    { at_ms: t0 + 13, event: 'push', binding: alice2.id, aor: 'alice@example.com', id: 18, provider: 'webpush', reason: 'call', attempt: 1, outcome: 'rejected', latency_ms: 310 },
    { at_ms: t0 + 862, event: 'woken', binding: alice1.id, aor: 'alice@example.com', after_push_ms: 850 },
    { at_ms: t0 + 870, event: 'forked', binding: alice1.id, request: 3, wake_latency_ms: 850 },
    { at_ms: t0 + 4_870, event: 'not-woken', binding: alice2.id, request: 3 },
    { at_ms: t0 + 5_400, event: 'answered', request: 3, code: 200, outcome: 'answered' },
  ];
  return {
    stats: {
      version: '0.1.0', uptime_secs: Math.floor((now - started) / 1000) + 3725, loading: false, aors: 2, bindings: 3, push_bindings: 2,
      transactions: 1, proxy_contexts: 0, branches_started: 5, tcp_connections: 1, requests: 40, parse_errors: 0, responses_2xx: 20,
      responses_4xx: 10, responses_5xx: 0, store_commits: 9, store_batches: 9, store_failed_commits: 0, parked_requests: 1,
      pushes_sent: 4, pushes_failed: 1, flagged_devices: 1,
    },
    aors,
    pushes,
    calls: { 'abc@host': events },
    bindingEvents: { [alice1.id]: events.filter((e) => e.binding === alice1.id) },
    flagged: [{ aor: 'carol@example.com', binding: 'c9c9c9c9c9c9', provider: 'fcm', reason: 'refresh-unanswered', refresh_pushes: 2, times: 3, at_ms: now - 180_000 }],
    parked: [{ request: 3, call_id: 'abc@host', method: 'INVITE', kind: 'initial', age_ms: 1200, waiting: [alice1.id, alice2.id], woken: 0, caller: 'sip:bob@example.com' }],
    blocked: [
      { source: '192.0.2.7', reason: 'rate-limit', remaining_secs: 55 },
      { source: '2001:db8:1:2::/64', reason: 'auth-failures', remaining_secs: 3300 },
    ],
  };
}

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/html; charset=utf-8' : 'application/json', 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://mock');
  const path = url.pathname;
  if (req.method === 'GET' && path === '/admin') {
    let html;
    try { html = readFileSync(page, 'utf8'); } catch (err) { return send(res, 500, { error: String(err) }); }
    return send(res, 200, html, { 'Content-Security-Policy': CSP });
  }
  if (!path.startsWith('/api/v1/')) return send(res, 404, { error: `no route ${req.method} ${path}` });
  if (token && req.headers.authorization !== `Bearer ${token}`) return send(res, 401, { error: 'missing or wrong bearer token' });
  if (req.method !== 'GET') return send(res, 405, { error: 'the mock is read-only' });
  const f = fixtures(Date.now());
  const list = (xs) => (empty ? [] : xs);
  if (pushOff && path.startsWith('/api/v1/push/')) return send(res, 404, { error: 'push is off ([push] enable = false)' });
  let m;
  if (path === '/api/v1/stats') return send(res, 200, f.stats);
  if (path === '/api/v1/aors') {
    const prefix = url.searchParams.get('prefix') || '';
    const limit = Number(url.searchParams.get('limit') || 100);
    let aors = list(f.aors).filter((a) => a.aor.startsWith(prefix));
    if (pushOff) aors = aors.map((a) => ({ ...a, bindings: a.bindings.map((b) => ({ ...b, push_state: null, last_push: null })) }));
    return send(res, 200, { total: aors.length, offset: 0, aors: aors.slice(0, limit) });
  }
  if (path === '/api/v1/push/recent') return send(res, 200, { pushes: list(f.pushes).slice(0, Number(url.searchParams.get('limit') || 50)) });
  if ((m = path.match(/^\/api\/v1\/push\/calls\/(.+)$/))) {
    const id = decodeURIComponent(m[1]);
    const events = empty ? null : f.calls[id];
    return events ? send(res, 200, { call_id: id, events }) : send(res, 404, { error: `no push audit for Call-ID ${id}` });
  }
  if ((m = path.match(/^\/api\/v1\/push\/bindings\/(.+)$/))) {
    const id = decodeURIComponent(m[1]);
    const events = empty ? null : f.bindingEvents[id];
    return events ? send(res, 200, { binding: id, events }) : send(res, 404, { error: `no push audit for binding ${id}` });
  }
  if (path === '/api/v1/push/flagged') return send(res, 200, { flagged: list(f.flagged) });
  if (path === '/api/v1/push/parked') return send(res, 200, { parked: list(f.parked) });
  if (path === '/api/v1/defence/blocked') return send(res, 200, { blocked: list(f.blocked) });
  return send(res, 404, { error: `no route GET ${path}; GET /api/v1 lists the routes` });
});

server.listen(Number(portArg), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
