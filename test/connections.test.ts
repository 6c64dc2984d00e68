// Slow and idle clients (issue 7 item 15), with real sockets against a real listening server: a
// body trickled a byte at a time, headers that never end, sockets that never send anything, idle
// kept-alive sockets, and more connections than the cap. Each is closed within its bound, with a
// problem document where an answer can still be written, and /health answers in under a second
// on a fresh connection while they are held.
import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { CONNECTIONS_CHECKING_INTERVAL_MS } from '../src/http/connections.js';
import type { App } from '../src/routes/types.js';
import { buildTestApp, problemIssues, safeJson, sleep } from './helpers.js';

async function listen(app: App): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as net.AddressInfo).port;
}

interface Held {
  socket: net.Socket;
  received: string;
  openedAt: number;
  closedAt: Promise<number>;
}

/** Opens a socket, writes `first` (if any), and records what it receives and when it closes. */
function hold(port: number, first?: string): Promise<Held> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const held: Held = {
      socket,
      received: '',
      openedAt: Date.now(),
      closedAt: new Promise((done) => socket.on('close', () => done(Date.now()))),
    };
    socket.on('data', (d) => (held.received += d));
    socket.on('error', () => {}); // a reset by the server is one of the outcomes under test
    socket.once('connect', () => {
      held.openedAt = Date.now();
      if (first) socket.write(first);
      resolve(held);
    });
    socket.once('error', reject);
  });
}

/** GET /health on a fresh connection: its status and how long it took. */
function health(port: number): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/health', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('health timed out')));
  });
}

/** The status line, headers and JSON body of a raw HTTP answer. */
function parseAnswer(text: string) {
  const [head, body = ''] = text.split('\r\n\r\n');
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: safeJson(body), raw: body };
}

const SETTINGS = { REQUEST_TIMEOUT: '3', HEADERS_TIMEOUT: '2', KEEP_ALIVE_TIMEOUT: '1' };
// A bound is checked on a timer; allow one check interval and a few seconds of scheduling on 2
// cores shared with other work. Without the bounds these sockets stay open for ever.
const SLACK_MS = CONNECTIONS_CHECKING_INTERVAL_MS + 3_500;

t.test('slow and idle clients are closed within their bounds while /health stays fast (item 15)', async (t) => {
  const h = await buildTestApp(t, { env: SETTINGS });
  const port = await listen(h.app);

  // 500 sockets that never send a byte, 20 whose headers never end, 20 that trickle a body.
  const idle = await Promise.all(Array.from({ length: 500 }, () => hold(port)));
  const partial = await Promise.all(Array.from({ length: 20 }, () => hold(port, 'POST /token HTTP/1.1\r\nHost: x\r\n')));
  const body = JSON.stringify({ email: 'slow@example.com', password: 'a password typed slowly' });
  const trickle = await Promise.all(
    Array.from({ length: 20 }, () =>
      hold(port, `POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`),
    ),
  );
  const drip = setInterval(() => {
    for (const s of trickle) if (!s.socket.destroyed) s.socket.write(body[0]);
  }, 500);
  t.teardown(() => clearInterval(drip));

  // While they are held: /health on fresh connections, under a second. On 2 cores shared with
  // other test runs one probe may be late for reasons of its own: 9 of 10 must be under 1 s, and
  // every one under 3 s (without the bounds, the held sockets never let go and nothing improves).
  const probes: number[] = [];
  for (let i = 0; i < 10; i++) {
    const res = await health(port);
    t.equal(res.status, 200, `health #${i + 1} while 540 slow sockets are held`);
    probes.push(res.ms);
    await sleep(100);
  }
  const fast = probes.filter((ms) => ms < 1_000).length;
  t.ok(fast >= 9, `health under 1 s in ${fast} of 10 probes (${probes.map((ms) => ms.toFixed(0)).join(', ')} ms)`);
  t.ok(Math.max(...probes) < 3_000, 'every probe under 3 s');

  const closed = async (group: Held[], bound: number, name: string) => {
    const times = await Promise.all(group.map(async (s) => (await s.closedAt) - s.openedAt));
    const worst = Math.max(...times);
    t.ok(worst <= bound + SLACK_MS, `${name}: all ${group.length} closed by the server within ${bound} ms (+ ${SLACK_MS} ms slack; worst ${worst} ms)`);
    return group.map((s) => parseAnswer(s.received));
  };
  const idleAnswers = await closed(idle, 2_000, 'sockets that never sent anything (HEADERS_TIMEOUT)');
  const partialAnswers = await closed(partial, 2_000, 'headers that never end (HEADERS_TIMEOUT)');
  const trickleAnswers = await closed(trickle, 3_000, 'a body trickled a byte every 500 ms (REQUEST_TIMEOUT)');
  for (const [name, answers] of [['partial headers', partialAnswers], ['trickled body', trickleAnswers], ['idle', idleAnswers.slice(0, 5)]] as const) {
    const a = answers[0];
    t.equal(a.status, 408, `${name}: 408`);
    t.equal(a.body?.code, 'request_timeout', `${name}: code request_timeout`);
    t.same(problemIssues({ status: a.status, headers: a.headers, body: a.body, raw: a.raw }), [], `${name}: a problem document`);
    t.equal(a.headers['x-content-type-options'], 'nosniff', `${name}: nosniff`);
    t.ok(answers.every((x) => x.status === 408), `${name}: every socket got the 408`);
  }
  t.equal((await health(port)).status, 200, 'the service is fine afterwards');
});

t.test('an idle kept-alive socket is closed after KEEP_ALIVE_TIMEOUT', async (t) => {
  const h = await buildTestApp(t, { env: SETTINGS });
  const port = await listen(h.app);
  const s = await hold(port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  const sent = Date.now();
  await sleep(300);
  t.match(s.received, /^HTTP\/1\.1 200/, 'the request was answered, the socket kept alive');
  const closedAt = await s.closedAt;
  t.ok(closedAt - sent <= 1_000 + SLACK_MS, `closed ${closedAt - sent} ms after the answer (KEEP_ALIVE_TIMEOUT 1 s)`);
});

t.test('connections beyond MAX_CONNECTIONS are closed at once; the others are served', async (t) => {
  const h = await buildTestApp(t, { env: { ...SETTINGS, MAX_CONNECTIONS: '20', HEADERS_TIMEOUT: '10', REQUEST_TIMEOUT: '10' } });
  const port = await listen(h.app);
  const held = await Promise.all(Array.from({ length: 20 }, () => hold(port)));
  await sleep(200); // the server has accepted them
  const extra = await hold(port);
  const opened = Date.now();
  const closedAt = await Promise.race([extra.closedAt, sleep(3_000).then(() => Infinity)]);
  t.ok(closedAt - opened < 1_000, `the 21st connection is closed at once (${closedAt - opened} ms)`);
  for (const s of held.slice(0, 5)) s.socket.destroy();
  await sleep(200);
  t.equal((await health(port)).status, 200, 'a freed slot serves /health');
  for (const s of held) s.socket.destroy();
});

t.test('the bounds are configurable and refused when absurd', async (t) => {
  const { loadConfig } = await import('../src/config.js');
  const c = loadConfig({ REQUEST_TIMEOUT: '30s', HEADERS_TIMEOUT: '5', KEEP_ALIVE_TIMEOUT: '72s', MAX_CONNECTIONS: '0' });
  t.same(c.connections, { requestTimeout: 30, headersTimeout: 5, keepAliveTimeout: 72, maxConnections: 0 });
  t.same(loadConfig({}).connections, { requestTimeout: 15, headersTimeout: 10, keepAliveTimeout: 10, maxConnections: 1000 }, 'the defaults');
  t.throws(() => loadConfig({ HEADERS_TIMEOUT: '20', REQUEST_TIMEOUT: '10' }), /HEADERS_TIMEOUT: must not be above REQUEST_TIMEOUT/);
  t.throws(() => loadConfig({ REQUEST_TIMEOUT: '0' }), /REQUEST_TIMEOUT/);
  t.throws(() => loadConfig({ MAX_CONNECTIONS: 'many' }), /MAX_CONNECTIONS/);
});
