// The service process against a PostgreSQL that dies, freezes or locks up (a throwaway cluster of
// the test's own: test/pg-cluster.ts): it never dies with the database, answers every request
// within its bound (503 service_unavailable + Retry-After when the database is sick), keeps
// /health within a second, and recovers by itself.
import t, { type Test } from 'tap';
import { PASSWORD, smtpSink, uniqueUser } from './helpers.js';
import { canRunCluster, startCluster } from './pg-cluster.js';
import { call, type Running, startServer, stopServer } from './process.js';

const skip = !canRunCluster && 'needs PostgreSQL 15 binaries and root';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Answer = Awaited<ReturnType<typeof call>>;
// The load below comes from one address, faster than RATE_LIMIT_TOKEN_MAX's 600 refreshes a minute
// on a quick machine; these tests are about the database, so that limit is off (limits.test.ts tests
// it).
const NO_TOKEN_LIMIT = { RATE_LIMIT_TOKEN_MAX: '0' };

/**
 * Runs requests of every kind in `workers` loops until stopped; records every answer. The loops
 * also stop when the test ends, so a failed assertion cannot leave them running until tap's
 * per-file timeout.
 */
function load(t: Test, server: Running, users: { email: string; token: string; refreshToken: string }[], workers = 6) {
  const answers: (Answer & { op: string })[] = [];
  let running = true;
  // One user per loop: a client refreshes one session at a time. Two loops sharing a session's
  // refresh token could write back a stale one after an outage (the slower answer last) and replay
  // it after the reuse interval, which the service rightly treats as theft and ends the session.
  if (users.length < workers) throw new Error(`load: ${workers} loops need as many users, got ${users.length}`);
  const loops = Array.from({ length: workers }, async (_, w) => {
    let n = 0;
    while (running) {
      n++;
      const u = users[w];
      const op = ['me', 'refresh', 'register', 'reset', 'health'][n % 5];
      let a: Answer;
      if (op === 'me') a = await call(server.url, 'GET', '/me', undefined, u.token);
      else if (op === 'refresh') {
        a = await call(server.url, 'POST', '/token/refresh', { refreshToken: u.refreshToken });
        if (a.status === 200) {
          u.refreshToken = a.body.refreshToken;
          u.token = a.body.token;
        }
      } else if (op === 'register') {
        const nu = uniqueUser('load');
        a = await call(server.url, 'POST', '/register', { ...nu, password1: PASSWORD, password2: PASSWORD });
      } else if (op === 'reset') a = await call(server.url, 'POST', '/send-password-reset-email', { email: u.email });
      else a = await call(server.url, 'GET', '/health');
      answers.push({ ...a, op });
      if (a.status === 0 || a.status === 503) await sleep(50);
    }
  });
  const stop = async () => {
    running = false;
    await Promise.all(loops);
  };
  t.teardown(stop);
  return { answers, stop };
}

async function usersOn(server: Running, n: number) {
  const users = [];
  for (let i = 0; i < n; i++) {
    const u = uniqueUser('fault');
    const reg = await call(server.url, 'POST', '/register', { ...u, password1: PASSWORD, password2: PASSWORD });
    if (reg.status !== 201) throw new Error(`register: ${reg.status} ${reg.raw}`);
    users.push({ email: u.email, token: reg.body.token as string, refreshToken: reg.body.refreshToken as string });
  }
  return users;
}

/** What must hold for every answer under a database fault. */
function checkAnswers(t: Test, answers: (Answer & { op: string })[], boundMs: number) {
  const allowed = new Set([200, 201, 202, 204, 400, 401, 503]);
  const bad = answers.filter((a) => !allowed.has(a.status));
  t.same(bad.map((a) => `${a.op} ${a.status} ${a.raw.slice(0, 200)}`), [], 'no 500, no dropped connection: only answers a client can act on');
  const unavailable = answers.filter((a) => a.status === 503);
  const malformed = unavailable.filter((a) => a.body?.code !== 'service_unavailable' || !a.headers.get('retry-after'));
  t.same(malformed.map((a) => `${a.op} ${a.raw.slice(0, 200)}`), [], 'every 503 is service_unavailable with Retry-After');
  const slow = answers.filter((a) => a.ms > boundMs);
  t.same(slow.map((a) => `${a.op} ${a.status} ${a.ms} ms`), [], `every answer within ${boundMs} ms`);
  const health = answers.filter((a) => a.op === 'health');
  // DB_PING_TIMEOUT is 1 s; the slack is the event loop's lag on a loaded shared machine.
  const slowHealth = health.filter((a) => a.ms > 2_500);
  t.same(slowHealth.map((a) => `${a.status} ${a.ms} ms`), [], '/health within 1 s (plus scheduling slack)');
  return { unavailable: unavailable.length, total: answers.length };
}

/** The log lines at error level or above (shown whole when a test fails, not cut by tap). */
function errorLines(server: Running): string[] {
  return server
    .output()
    .split('\n')
    .filter((l) => /"level":(50|60)/.test(l))
    .map((l) => l.slice(0, 2_000));
}

async function recovered(server: Running, users: { token: string }[], timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const [health, me] = await Promise.all([call(server.url, 'GET', '/health'), call(server.url, 'GET', '/me', undefined, users[0].token)]);
    if (health.status === 200 && me.status === 200) return Date.now() - started;
    if (Date.now() - started > timeoutMs) {
      const warnings = server.output().split('\n').filter((l) => l.includes('"level":40') && !l.includes('"rate_limited"'));
      const last = warnings.slice(-6).map((l) => l.slice(0, 600));
      throw new Error(`not recovered after ${timeoutMs} ms: /health ${health.status}, /me ${me.status} ${me.raw.slice(0, 200)}; last warnings:\n${last.join('\n')}`);
    }
    await sleep(100);
  }
}

// /health once stayed 503 "pool exhausted" long after a restart: readiness kept a verdict for 5 s
// after every request that timed out waiting for a connection, and the traffic of a loaded
// machine kept renewing it. Readiness now measures the pool afresh on every check.
t.test('ten stops and crashes of PostgreSQL under load: the process survives every one and recovers by itself', { skip }, async (t) => {
  const cluster = await startCluster(t);
  const mail = await smtpSink(t);
  const server = await startServer(t, { ...NO_TOKEN_LIMIT, DATABASE_URL: cluster.url, SMTP_URL: mail.url });
  const users = await usersOn(server, 6);
  const traffic = load(t, server, users);
  const modes: ('fast' | 'immediate' | 'kill')[] = ['immediate', 'fast', 'kill'];
  const recoveries: number[] = [];
  for (let round = 0; round < 10; round++) {
    await sleep(400);
    const mode = modes[round % 3];
    if (mode === 'kill') cluster.kill();
    else cluster.stop(mode);
    await sleep(1_200); // down, under load
    t.ok(server.alive(), `round ${round + 1} (${mode}): the process is alive while the database is down`);
    cluster.start();
    recoveries.push(await recovered(server, users));
    t.ok(server.alive(), `round ${round + 1}: alive after the restart`);
  }
  await traffic.stop();
  const { unavailable, total } = checkAnswers(t, traffic.answers, 8_000);
  t.ok(unavailable > 0, `the outages were seen: ${unavailable} of ${total} answers were 503`);
  t.ok(Math.max(...recoveries) < 5_000, `recovered within 5 s of each restart (${recoveries.join(', ')} ms)`);
  t.same(errorLines(server), [], 'nothing logged as an error: outages are warnings');
  t.notMatch(server.output(), /TypeError|uncaught/i);
  t.equal(await stopServer(server), 0, 'and it still shuts down cleanly');
});

t.test('a database that stops answering (no RST): 503 within the bound, /health within 1 s, recovery when it answers again', { skip }, async (t) => {
  const cluster = await startCluster(t);
  const mail = await smtpSink(t);
  const server = await startServer(t, { ...NO_TOKEN_LIMIT, DATABASE_URL: cluster.url, SMTP_URL: mail.url });
  const users = await usersOn(server, 4);
  const traffic = load(t, server, users, 4);
  await sleep(300);
  cluster.freeze();
  await sleep(9_000);
  t.ok(server.alive());
  cluster.thaw();
  const took = await recovered(server, users);
  await traffic.stop();
  // A query in flight gets DB_QUERY_TIMEOUT + 1 s (6 s); a new one the connect timeout (2 s).
  const { unavailable } = checkAnswers(t, traffic.answers, 7_500);
  t.ok(unavailable > 0, `503s while frozen (${unavailable})`);
  t.ok(took < 5_000, `recovered ${took} ms after the thaw`);
  t.equal(await stopServer(server), 0);
});

t.test('a table lock that exhausts the pool: 503 within the bound, statement_timeout (57014) is a 503 logged as a warning, /health says so within 1 s', { skip }, async (t) => {
  const cluster = await startCluster(t);
  const mail = await smtpSink(t);
  const server = await startServer(t, { ...NO_TOKEN_LIMIT, DATABASE_URL: cluster.url, SMTP_URL: mail.url, DB_POOL_SIZE: '3', DB_QUERY_TIMEOUT: '2s', DB_ACQUIRE_TIMEOUT: '1s' });
  const users = await usersOn(server, 8);
  const traffic = load(t, server, users, 8);
  await sleep(300);
  // Held by another client for 6 s: every query on users waits for it.
  const locker = cluster.psqlAsync('begin; lock table users in access exclusive mode; select pg_sleep(6); commit;');
  await locker.started;
  await sleep(500);
  const healthDuring: Answer[] = [];
  for (let i = 0; i < 8; i++) {
    healthDuring.push(await call(server.url, 'GET', '/health'));
    await sleep(250);
  }
  await locker.done;
  await recovered(server, users);
  await traffic.stop();
  checkAnswers(t, traffic.answers, 4_500);
  t.ok(healthDuring.every((a) => a.ms < 2_500), `/health answered within 1 s throughout (${healthDuring.map((a) => a.ms).join(', ')} ms)`);
  t.ok(healthDuring.some((a) => a.status === 503), `and said the pool was exhausted (${healthDuring.map((a) => a.status).join(', ')})`);
  t.match(server.output(), /"level":40[^\n]*"code":"(57014|QUEUE_TIMEOUT)"/, 'cancelled statements and pool timeouts are warnings');
  t.same(errorLines(server), [], 'never an error');
  t.equal(await stopServer(server), 0);
});

