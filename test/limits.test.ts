// Limits that every instance shares (issue 9 item 10, issue 7 items 4-6): the per-client limits of
// @fastify/rate-limit, the per-account login failures and the per-recipient mail caps, counted in
// the shared limits store — Redis when REDIS_URL is set, the database otherwise — never in one
// process's memory. Three instances on one database (and one Redis) must see one count, a restart
// must not reset it, and a Redis outage fails open (or closed, by a setting) without hanging.
import { createServer, type Socket } from 'node:net';
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { buildApp } from '../src/app.js';
import type { App } from '../src/routes/types.js';
import { rowsOf } from '../src/db/index.js';
import { assertProblem, buildSiblingApp, buildTestApp, get, makeDatabase, outboxSettled, PASSWORD, post, registerUser, smtpSink, testConfig, uniqueUser } from './helpers.js';
import { testRedis } from './redis-helpers.js';

const THROTTLED_ROUTES = new Set(['/token/refresh', '/token/verify', '/token/revoke']);

t.test('rate limits on /token/refresh, /token/verify and /token/revoke: 429 rate_limited, Retry-After, RateLimit-* headers', async (t) => {
  const h = await buildTestApp(t, { env: { RATE_LIMIT_TOKEN_MAX: '3', RATE_LIMIT_WINDOW: '1m' } });
  for (const url of THROTTLED_ROUTES) {
    const body = url === '/token/verify' ? { token: 'not-a-token' } : { refreshToken: 'x'.repeat(43) };
    for (let i = 1; i <= 3; i++) {
      const res = await post(h.app, url, body);
      t.equal(res.status, 400, `${url}: attempt ${i} is answered (invalid_token)`);
      t.equal(res.headers['ratelimit-limit'], '3', `${url}: RateLimit-Limit`);
      t.equal(res.headers['ratelimit-remaining'], String(3 - i), `${url}: RateLimit-Remaining`);
      t.ok(Number(res.headers['ratelimit-reset']) > 0, `${url}: RateLimit-Reset`);
    }
    const res = await post(h.app, url, body);
    assertProblem(t, res, 'rate_limited', { detail: /\d/, label: url });
    const retryAfter = Number(res.headers['retry-after']);
    t.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 60, `${url}: Retry-After in seconds (got ${res.headers['retry-after']})`);
    t.equal(res.headers['ratelimit-remaining'], '0', `${url}: RateLimit-Remaining: 0`);
    t.notOk(res.headers['x-ratelimit-limit'], `${url}: the standard names, not X-RateLimit-*`);
  }
  const other = await h.app.inject({ method: 'POST', url: '/token/verify', payload: { token: 'x' }, remoteAddress: '203.0.113.9' });
  t.equal(other.statusCode, 400, 'another client address has its own count');
});

t.test('the OpenAPI document lists 429 exactly on the routes that can answer it', async (t) => {
  const h = await buildTestApp(t);
  // The document covers every configuration (the committed one is generated so): with the
  // defaults every limit is on, so every POST route can answer 429 but POST /sessions/revoke (a
  // bearer route that checks no credential and sends no email: nothing to guess or flood); /me,
  // /health and the JWKS cannot.
  const cases: [env: Record<string, string>, expected: (path: string) => boolean][] = [
    [{ RATE_LIMIT_MAX: '20', RATE_LIMIT_TOKEN_MAX: '600', LOGIN_FAILURE_LIMIT: '10' }, (path) => path !== '/sessions/revoke'],
  ];
  for (const [env, expected] of cases) {
    const app = await buildSiblingApp(t, h, { ...env, UPDATE_FIELDS: 'firstName,lastName,email' });
    const doc = (await get(app, '/openapi.json')).body;
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const listed = '429' in (op.responses ?? {});
        const want = method === 'post' && expected(path);
        t.equal(listed, want, `${JSON.stringify(env)}: ${method.toUpperCase()} ${path} ${want ? 'lists' : 'does not list'} 429`);
      }
    }
  }
});

/** 30 login attempts spread round-robin over the instances; how many got past the per-client limit. */
async function answeredOf(apps: App[], attempts = 30): Promise<number> {
  const body = { email: uniqueUser().email, password: PASSWORD };
  let answered = 0;
  for (let i = 0; i < attempts; i++) {
    const res = await post(apps[i % apps.length], '/token', body);
    if (res.status !== 429) answered++;
  }
  return answered;
}

t.test('three instances on one database share the per-client limit, and a restart keeps it', async (t) => {
  const env = { RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW: '1m' };
  const h = await buildTestApp(t, { env });
  const apps = [h.app, await buildSiblingApp(t, h, env), await buildSiblingApp(t, h, env)];
  t.equal(await answeredOf(apps), 5, 'RATE_LIMIT_MAX=5: 5 of 30 attempts through three instances are answered, not 15');

  // The same client again, on an instance started after the others counted.
  const body = { email: uniqueUser().email, password: PASSWORD };
  for (let i = 0; i < 5; i++) await post(apps[i % 3], '/token', body);
  await apps[1].close();
  const restarted = await buildSiblingApp(t, h, env);
  const res = await post(restarted, '/token', body);
  assertProblem(t, res, 'rate_limited', { detail: /\d/, label: 'a restarted instance' });
});

// A count commits without a WAL flush (migration 0008): one upsert per throttled request must not
// wait on the disk. A crash of the database empties the table (README: Limits).
t.test('the limit counters are an unlogged table', async (t) => {
  const h = await buildTestApp(t);
  const result = await h.db.db.execute(sql`select relpersistence from pg_class where relname = 'rate_limits' and relkind = 'r'`);
  const rows = (Array.isArray(result) ? result : (result as unknown as { rows: unknown[] }).rows) as { relpersistence: string }[];
  t.same(rows, [{ relpersistence: 'u' }], 'rate_limits is UNLOGGED');
});

// Without a Redis (and without TEST_REQUIRE_REDIS=1) the Redis tests are skipped, saying why.
const redis = await testRedis(t);
const redisSkip = 'skip' in redis ? redis.skip : false;

t.test('three instances on PostgreSQL (or PGlite) + Redis share every limit through Redis', { skip: redisSkip }, async (t) => {
  if ('skip' in redis) return;
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW: '1m' };
  const h = await buildTestApp(t, { env });
  const apps = [h.app, await buildSiblingApp(t, h, env), await buildSiblingApp(t, h, env)];
  t.equal(await answeredOf(apps), 5, 'RATE_LIMIT_MAX=5: 5 of 30 attempts through three instances are answered');
  const keys = await redis.keys();
  t.ok(keys.some((k) => k.startsWith(`${redis.prefix}rl:POST/token-`)), 'the count is in Redis, under REDIS_PREFIX', { keys });
  t.notOk(keys.some((k) => k.includes('@')), 'no key holds an email address in clear');

  await apps[2].close();
  const restarted = await buildSiblingApp(t, h, env);
  const res = await post(restarted, '/token', { email: uniqueUser().email, password: PASSWORD });
  assertProblem(t, res, 'rate_limited', { detail: /\d/, label: 'a restarted instance still counts the client' });
});

t.test('with Redis the mail caps count there, and a refused email is not written', { skip: redisSkip }, async (t) => {
  if ('skip' in redis) return;
  // The database store counts the caps inside the email's own statement
  // (services/token-email-statement.ts); this is the other store's path (throttle.ts mayMail).
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, MAIL_RECIPIENT_LIMIT: '1', MAIL_RECIPIENT_WINDOW: '60s', MAIL_RECIPIENT_DAILY_LIMIT: '2' };
  const h = await buildTestApp(t, { env });
  const u = await registerUser(h.app); // the first activation email
  for (let i = 0; i < 3; i++) t.equal((await post(h.app, '/resend-activation-email', { email: u.email })).status, 202);
  await outboxSettled(h);
  t.equal(h.mail.to(u.email, 'Activate your account').length, 1, 'one activation email reached the address');
  const tokens = await h.db.db.execute(sql`select count(*)::int as n from email_tokens where user_id = ${u.user.id}`);
  t.same(rowsOf(tokens), [{ n: 1 }], 'and one activation token exists: the refused ones were not written');
  const keys = await redis.keys();
  const mailKeys = keys.filter((k) => k.startsWith(`${redis.prefix}mail:`));
  t.equal(mailKeys.length, 2, 'the count of the kind and that of the day are in Redis', { keys });
  const rows = await h.db.db.execute(sql`select count(*)::int as n from rate_limits where key like 'mail:%'`);
  t.same(rowsOf(rows), [{ n: 0 }], 'and not in the database');
});

/** An app whose log lines are collected (warnings about the limits store). */
async function appWithLog(t: Test, env: Record<string, string>) {
  const db = await makeDatabase(t);
  const mail = await smtpSink(t);
  const lines: any[] = [];
  const app = await buildApp(testConfig({ SMTP_URL: mail.url, LOG_LEVEL: 'warn', ...env }), db, {
    logStream: { write: (line) => void lines.push(JSON.parse(line)) },
    outbox: { pollInterval: 50 },
  });
  await app.ready();
  t.teardown(() => app.close());
  return { app, lines };
}

/** A port where nothing listens. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

t.test('a Redis outage fails open by default: limits off, a warning logged, no hang', async (t) => {
  const port = await closedPort();
  const METRICS_TOKEN = 'metrics-token-0123456789';
  const { app, lines } = await appWithLog(t, { REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_MAX: '2', METRICS_TOKEN });
  const body = { email: uniqueUser().email, password: PASSWORD };
  const started = Date.now();
  for (let i = 1; i <= 4; i++) {
    const res = await post(app, '/token', body);
    t.equal(res.status, 401, `attempt ${i} is answered: the limit is off while Redis is away`);
  }
  t.ok(Date.now() - started < 5_000, 'and answered at once, not after Redis timeouts');
  t.ok(
    lines.some((l) => l.level === 40 && /limits store unavailable/.test(l.msg)),
    'a warning says the limits are off',
    { lines: lines.map((l) => l.msg) },
  );
  const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  const failures = Number(/^limits_store_failures_total\{store="redis"\} (\d+)$/m.exec(metrics.body)?.[1]);
  t.ok(failures >= 4, `and a metric is raised: limits_store_failures_total{store="redis"} ${failures}`);
});

t.test('RATE_LIMIT_FAIL_CLOSED=true: a Redis outage answers 503 service_unavailable on throttled routes', async (t) => {
  const port = await closedPort();
  const { app } = await appWithLog(t, { REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_MAX: '2', RATE_LIMIT_FAIL_CLOSED: 'true' });
  const res = await post(app, '/token', { email: uniqueUser().email, password: PASSWORD });
  assertProblem(t, res, 'service_unavailable', { detail: /unavailable/i });
  t.equal((await get(app, '/health')).status, 200, 'routes without a limit still answer');
});

t.test('a Redis that accepts connections but never answers costs a request about a second, not a hang', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((s) => void sockets.add(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const { port } = silent.address() as { port: number };
  const { app } = await appWithLog(t, { REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_MAX: '2' });
  const started = Date.now();
  const res = await post(app, '/token', { email: uniqueUser().email, password: PASSWORD });
  t.equal(res.status, 401, 'answered (fail open)');
  t.ok(Date.now() - started < 3_000, `within the command timeout (${Date.now() - started} ms)`);
});
