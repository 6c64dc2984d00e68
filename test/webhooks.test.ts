// Webhooks (outbox/webhooks.ts): each event POSTed to WEBHOOK_URLS in the Standard Webhooks format,
// received here by a real HTTP server on 127.0.0.1 and checked with the `standardwebhooks` package
// and with the spec's algorithm written again below; retried after a 500 with the same webhook-id
// and body, one delivery per event and endpoint (also with two instances on one database),
// filtered by WEBHOOK_EVENTS, dead-lettered after the bound, never blocking a request.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';
import { webhookDeliveries } from '../src/db/schema.js';
import { assertProblem, buildSiblingApp, buildTestApp, PASSWORD, post, registerUser, safeJson, sleep, type T, type TestApp, verifiedUser } from './helpers.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const ADMIN = 'ops-key-0123456789abcdefghijklmnopqrstuvwxyz';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  answered: number; // 0: never answered (hung)
}

type Answer = number | 'hang' | { redirect: string };

/**
 * A webhook receiver: `answer(request, n)` gives the answer to the n-th (1-based) request with
 * that webhook-id on that path: a status, 'hang' (never answers), or a redirect.
 */
async function receiver(t: T, answer: (r: Omit<Received, 'answered'>, n: number) => Answer = () => 200) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const r = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      const n = received.filter((x) => x.path === r.path && x.headers['webhook-id'] === r.headers['webhook-id']).length + 1;
      const a = answer(r, n);
      if (a === 'hang') return void received.push({ ...r, answered: 0 });
      if (typeof a === 'object') {
        received.push({ ...r, answered: 302 });
        return void res.writeHead(302, { location: a.redirect }).end();
      }
      received.push({ ...r, answered: a });
      res.writeHead(a, { 'content-type': 'text/plain' }).end(a < 300 ? 'ok' : 'no');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: (path: string) => `${base}${path}`,
    received,
    on: (path: string) => received.filter((r) => r.path === path),
    /** Waits until `ok(received)` holds. */
    async until(ok: (r: Received[]) => boolean, what: string, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!ok(received)) {
        if (Date.now() > deadline) throw new Error(`receiver: ${what} not within ${timeoutMs} ms (got ${received.length} requests)`);
        await sleep(25);
      }
    },
  };
}

/** The Standard Webhooks check, written from the spec without the package: v1 HMAC-SHA256 over id.timestamp.body. */
function verifyBySpec(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`).digest();
  return String(headers['webhook-signature'] ?? '')
    .split(' ')
    .some((sig) => {
      const [version, value] = sig.split(',');
      const given = Buffer.from(value ?? '', 'base64');
      return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
    });
}

const deliveries = (h: TestApp) => h.db.db.select().from(webhookDeliveries).orderBy(webhookDeliveries.id);

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

t.test('register, verify and login produce signed POSTs; a 500 is retried with the same webhook-id and body', async (t) => {
  // Each endpoint answers 500 to the first attempt of every message, then 200.
  const hooks = await receiver(t, (_r, n) => (n === 1 ? 500 : 200));
  const h = await buildTestApp(t, { env: { WEBHOOK_URLS: `${hooks.url('/a')},${hooks.url('/b')}`, WEBHOOK_SECRET: SECRET, ADMIN_API_KEYS: `ops:${ADMIN}` } });
  const u = await verifiedUser(h); // registered, verified, login_succeeded
  t.equal((await post(h.app, '/token', { email: u.email, password: 'not the password' })).status, 401); // login_failed
  const types = ['registered', 'verified', 'login_succeeded', 'login_failed'];

  // 4 events × 2 endpoints, each answered 500 once, then 200.
  await hooks.until((r) => r.filter((x) => x.answered === 200).length >= 8, 'eight accepted deliveries');
  await sleep(500); // nothing more may come
  const rows = await deliveries(h);
  t.equal(rows.length, 8, 'one row per event and endpoint');
  t.ok(rows.every((r) => r.status === 'sent' && r.attempts === 2 && r.sentAt), 'each sent on its second attempt');
  const eventIds = [...new Set(rows.map((r) => r.eventId))];
  t.equal(eventIds.length, 4, 'four events');
  // The webhook-id is the audit row's id: a receiver can look the event up in GET /admin/events.
  const audit = await h.app.inject({ method: 'GET', url: `/admin/events?userId=${u.user.id}`, headers: { authorization: `Bearer ${ADMIN}` } });
  t.equal(audit.statusCode, 200);
  const audited = (audit.json().events as { id: string; type: string }[]).filter((e) => types.includes(e.type));
  t.same(audited.map((e) => e.id).sort(), [...eventIds].sort(), "each webhook-id is its event's id in the audit log");

  const wh = new Webhook(SECRET);
  const seen: string[] = [];
  for (const id of eventIds) {
    for (const path of ['/a', '/b']) {
      const attempts = hooks.on(path).filter((r) => r.headers['webhook-id'] === id);
      t.same(attempts.map((a) => a.answered), [500, 200], `${id} → ${path}: a 500, then one accepted retry`);
      t.equal(new Set(attempts.map((a) => a.body)).size, 1, 'the retry sends the same body');
      for (const a of attempts) {
        t.equal(a.headers['content-type'], 'application/json');
        t.match(a.headers['webhook-timestamp'], /^\d{10}$/, 'webhook-timestamp: unix seconds');
        t.ok(Math.abs(Number(a.headers['webhook-timestamp']) - Date.now() / 1000) < 60, 'a current timestamp');
        t.match(a.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+={0,2}$/, 'v1,<base64>');
        t.ok(verifyBySpec(SECRET, a.headers, a.body), "the signature, checked by the spec's algorithm");
        const payload = wh.verify(a.body, a.headers as Record<string, string>) as { type: string; timestamp: string; data: Record<string, unknown> };
        t.same(Object.keys(payload).sort(), ['data', 'timestamp', 'type'], 'body: type, timestamp, data');
        t.ok(types.includes(payload.type), `standardwebhooks verifies it (${payload.type})`);
        t.match(payload.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'an ISO 8601 timestamp');
        t.equal(payload.data.userId, u.user.id, 'the account');
        t.equal(payload.data.userAgent, 'lightMyRequest', "the client's user agent");
        if (path === '/a' && a.answered === 200) seen.push(payload.type);
      }
      t.ok(!verifyBySpec(`whsec_${randomBytes(32).toString('base64')}`, attempts[0].headers, attempts[0].body), 'another secret does not verify');
      t.throws(() => wh.verify(`${attempts[0].body} `, attempts[0].headers as Record<string, string>), 'a changed body does not verify');
    }
  }
  t.same(seen.sort(), [...types].sort(), 'one delivery per event: registered, verified, login_succeeded, login_failed');
  const failed = hooks.received.find((r) => JSON.parse(r.body).type === 'login_failed');
  t.equal(JSON.parse(failed!.body).data.reason, 'wrong_password');
  for (const secret of [PASSWORD, u.token, u.refreshToken, u.email, u.username]) {
    t.notOk(hooks.received.some((r) => r.body.includes(secret)), 'no password, token, email or username in any webhook');
  }
});

t.test('two instances on one database: each event is delivered once per endpoint', async (t) => {
  const hooks = await receiver(t);
  const env = { WEBHOOK_URLS: `${hooks.url('/a')},${hooks.url('/b')}`, WEBHOOK_SECRET: SECRET, WEBHOOK_EVENTS: 'registered' };
  const h = await buildTestApp(t, { env });
  const other = await buildSiblingApp(t, h, env);
  // Both workers poll every 50 ms and compete for every row.
  await Promise.all(Array.from({ length: 10 }, (_, i) => registerUser(i % 2 ? h.app : other)));
  await hooks.until((r) => r.length >= 20, 'twenty deliveries');
  await sleep(800);
  t.equal(hooks.received.length, 20, '10 events × 2 endpoints, none twice');
  for (const path of ['/a', '/b']) {
    const ids = hooks.on(path).map((r) => r.headers['webhook-id']);
    t.equal(new Set(ids).size, 10, `${path}: ten distinct webhook-ids, each once`);
  }
  const rows = await deliveries(h);
  t.equal(rows.length, 20);
  t.ok(rows.every((r) => r.status === 'sent' && r.attempts === 1), 'each sent on its first attempt');
});

t.test('WEBHOOK_EVENTS filters; a refused change sends nothing; a slow receiver never slows a request', async (t) => {
  const hooks = await receiver(t, (r) => (r.path === '/slow' ? 'hang' : 200));
  const h = await buildTestApp(t, {
    env: {
      WEBHOOK_URLS: `${hooks.url('/fast')},${hooks.url('/slow')}`,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_EVENTS: 'registered,login_failed',
      WEBHOOK_TIMEOUT: '1500ms',
    },
  });
  const u = await registerUser(h.app);
  await hooks.until((r) => r.some((x) => x.path === '/slow'), 'the slow endpoint holds a delivery');
  // While it hangs, requests answer as fast as without webhooks.
  const started = Date.now();
  for (let i = 0; i < 3; i++) await registerUser(h.app);
  t.equal((await post(h.app, '/token', { email: u.email, password: PASSWORD })).status, 200, 'login_succeeded: not in WEBHOOK_EVENTS');
  t.equal((await post(h.app, '/token', { email: u.email, password: 'wrong' })).status, 401);
  const took = Date.now() - started;
  t.ok(took < 2_000, `five requests took ${took} ms while an endpoint hangs`);
  const dup = await post(h.app, '/register', { email: u.email, username: `${u.username}z`, password1: PASSWORD, password2: PASSWORD });
  t.equal(dup.status, 409, 'a duplicate registration is refused: nothing is sent for it');

  await hooks.until((r) => r.filter((x) => x.path === '/fast').length >= 5, 'five events on /fast');
  await sleep(500);
  // By webhook-id: on this loaded machine an answer can miss the short WEBHOOK_TIMEOUT and be sent
  // again (at least once); the two-instance test above counts exact deliveries.
  const byId = new Map(hooks.on('/fast').map((r) => [r.headers['webhook-id'], JSON.parse(r.body).type as string]));
  t.same([...byId.values()].sort(), ['login_failed', 'registered', 'registered', 'registered', 'registered'], 'only the filtered types, nothing for the refused registration');
  const fastRows = (await deliveries(h)).filter((r) => r.url.endsWith('/fast'));
  t.equal(fastRows.length, 5, 'one row per event');
  if (hooks.on('/fast').length > 5) t.comment(`/fast got ${hooks.on('/fast').length} requests; attempts per row: ${fastRows.map((r) => r.attempts).join(',')}`);
  // The hanging endpoint times out (WEBHOOK_TIMEOUT) and is retried.
  const slow = await until('a timed-out attempt', async () => {
    const rows = (await deliveries(h)).filter((r) => r.url.endsWith('/slow'));
    return rows.some((r) => /timeout/.test(r.lastError ?? '')) && rows;
  });
  t.ok(slow.every((r) => r.status === 'pending'), 'still queued: neither sent nor given up');
  t.match(slow.find((r) => r.lastError)?.lastError, /^timeout: no answer within WEBHOOK_TIMEOUT \(1500 ms\)$/);
});

const METRICS_TOKEN = 'metrics-token-0123456789';

t.test('failed after WEBHOOK_MAX_ATTEMPTS; redirects are not followed; a network error is retried', async (t) => {
  const hooks = await receiver(t, (r) => (r.path === '/moved' ? { redirect: '/elsewhere' } : 500));
  // A port nobody listens on: connection refused.
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const refused = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/refused`;
  await new Promise((resolve) => closed.close(resolve));
  const h = await buildTestApp(t, {
    env: {
      WEBHOOK_URLS: `${hooks.url('/down')},${hooks.url('/moved')},${refused}`,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_EVENTS: 'registered',
      WEBHOOK_MAX_ATTEMPTS: '3',
      ADMIN_API_KEYS: `ops:${ADMIN}`,
      METRICS_TOKEN,
    },
  });
  await registerUser(h.app);
  const rows = await until('both failed', async () => {
    const rows = await deliveries(h);
    return rows.every((r) => r.status === 'failed') && rows;
  });
  const down = rows.find((r) => r.url.endsWith('/down'))!;
  const moved = rows.find((r) => r.url.endsWith('/moved'))!;
  t.equal(down.attempts, 3, 'three attempts, then failed');
  t.equal(down.lastError, 'HTTP 500 from the endpoint');
  t.equal(moved.attempts, 3);
  t.equal(moved.lastError, 'HTTP 302 from the endpoint (redirects are not followed)');
  const gone = rows.find((r) => r.url === refused)!;
  t.equal(gone.attempts, 3, 'a refused connection is retried, then failed');
  t.match(gone.lastError, /^network error: .*ECONNREFUSED/);
  await sleep(500);
  t.equal(hooks.on('/down').length, 3, 'no attempt after the last');
  t.equal(hooks.on('/moved').length, 3);
  t.equal(hooks.on('/elsewhere').length, 0, 'the redirect was not followed');
  t.equal(new Set(hooks.received.map((r) => r.headers['webhook-id'])).size, 1, 'one webhook-id throughout');
  const metrics = (await h.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).body;
  const attempts = (result: string) => Number(new RegExp(`^webhook_delivery_duration_seconds_count\\{result="${result}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
  t.same([attempts('retry'), attempts('failed'), attempts('sent')], [6, 3, 0], 'the metrics: 2 retries and a final failure per endpoint');

  // The admin API lists the failed deliveries and requeues one.
  const admin = async (method: 'GET' | 'POST', url: string) => {
    const res = await h.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` } });
    return { status: res.statusCode, headers: res.headers, body: res.body ? safeJson(res.body) : undefined, raw: res.body };
  };
  const list = await admin('GET', '/admin/webhooks?status=failed');
  t.equal(list.status, 200);
  t.same(list.body.deliveries.map((d: { id: number }) => d.id).sort(), rows.map((r) => r.id).sort(), 'GET /admin/webhooks?status=failed: the three');
  t.equal((await admin('GET', '/admin/webhooks?status=sent')).body.deliveries.length, 0);
  const requeued = await admin('POST', `/admin/webhooks/${down.id}/requeue`);
  t.equal(requeued.status, 200);
  t.match(requeued.body.delivery, { id: down.id, eventId: down.eventId, status: 'pending', attempts: 0, lastError: null });
  assertProblem(t, await admin('POST', `/admin/webhooks/${down.id}/requeue`), 'webhook_not_failed');
  assertProblem(t, await admin('POST', '/admin/webhooks/999999/requeue'), 'webhook_not_found');
  await hooks.until((r) => r.filter((x) => x.path === '/down').length >= 4, 'the requeued delivery is sent again');
  t.equal(hooks.on('/down')[3].headers['webhook-id'], down.eventId, 'with the same webhook-id');
});

t.test('shutdown aborts a delivery in flight; the row stays pending and another instance delivers it', async (t) => {
  let hang = true;
  const hooks = await receiver(t, () => (hang ? 'hang' : 200));
  const env = { WEBHOOK_URLS: hooks.url('/h'), WEBHOOK_SECRET: SECRET, WEBHOOK_EVENTS: 'registered', WEBHOOK_TIMEOUT: '60s' };
  const h = await buildTestApp(t, { env, outbox: { stopGrace: 300 } });
  await registerUser(h.app);
  await hooks.until((r) => r.length >= 1, 'the delivery to start');
  const closing = Date.now();
  await h.app.close();
  const took = Date.now() - closing;
  t.ok(took < 2_000, `closed in ${took} ms (the grace is 300 ms, WEBHOOK_TIMEOUT 60 s)`);
  const [row] = await deliveries(h);
  t.equal(row.status, 'pending', 'still queued');
  t.equal(row.attempts, 0, 'the aborted attempt is not counted');
  t.match(row.lastError, /shutting down/);

  hang = false;
  await buildSiblingApp(t, h, env);
  await hooks.until((r) => r.some((x) => x.answered === 200), 'the next instance delivers it');
  const [done] = await until('sent', async () => {
    const rows = await deliveries(h);
    return rows[0]?.status === 'sent' && rows;
  });
  t.equal(done.attempts, 1);
  t.equal(new Set(hooks.received.map((r) => r.headers['webhook-id'])).size, 1, 'the same webhook-id');
});

t.test('configuration: validated at start, one clear line per problem, never quoting the secret', async (t) => {
  const problem = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return undefined;
    } catch (err) {
      t.ok(err instanceof ConfigError);
      return (err as Error).message;
    }
  };
  t.equal(
    problem({ WEBHOOK_URLS: 'https://hooks.example.com/x' }),
    'Invalid configuration: WEBHOOK_SECRET: required with WEBHOOK_URLS, so that receivers can check the signature (whsec_$(openssl rand -base64 32))',
  );
  t.match(problem({ WEBHOOK_URLS: 'https://hooks.example.com/x', WEBHOOK_SECRET: 'plain-secret-value' }), /^Invalid configuration: WEBHOOK_SECRET: expected whsec_/);
  t.notMatch(problem({ WEBHOOK_URLS: 'https://hooks.example.com/x', WEBHOOK_SECRET: 'whsec_c2hvcnQ=' }) ?? '', /c2hvcnQ/, 'the secret is not quoted');
  t.match(problem({ WEBHOOK_URLS: 'ftp://x', WEBHOOK_SECRET: SECRET }), /WEBHOOK_URLS: expected comma-separated http or https URLs/);
  t.match(problem({ WEBHOOK_URLS: 'https://user:pw@hooks.example.com/x', WEBHOOK_SECRET: SECRET }), /WEBHOOK_URLS/);
  t.match(problem({ WEBHOOK_EVENTS: 'Login Failed' }), /WEBHOOK_EVENTS: expected event types/);
  t.match(problem({ WEBHOOK_EVENTS: 'registerd' }), /WEBHOOK_EVENTS: expected event types from registered, .* got "registerd"$/, 'a misspelt type is refused');
  t.match(problem({ WEBHOOK_EVENTS: 'rate_limited' }), /rate_limited is never sent/);
  t.match(problem({ WEBHOOK_TIMEOUT: '5m' }), /WEBHOOK_TIMEOUT/);
  t.match(problem({ WEBHOOK_MAX_ATTEMPTS: '0' }), /WEBHOOK_MAX_ATTEMPTS/);

  const off = loadConfig({});
  t.same(off.webhooks, { urls: [], events: undefined, secret: undefined, timeout: 10_000, maxAttempts: 10 }, 'off by default; safe defaults');
  const c = loadConfig({ WEBHOOK_URLS: 'https://a.example.com/h, https://b.example.com/h', WEBHOOK_SECRET: SECRET, WEBHOOK_EVENTS: 'registered,admin.*' });
  t.same(c.webhooks.urls, ['https://a.example.com/h', 'https://b.example.com/h']);
  t.same(c.webhooks.events, ['registered', 'admin.*']);
});
