// What a platform team runs the service with: request and trace ids, the probes, GET /, CORS,
// the security-event log and the metrics.
import t from 'tap';
import { buildTestApp, get, outboxSettled, PASSWORD, post, registerUser, sleep, tokenIn, type TestApp, verifiedUser } from './helpers.js';

const FRONTEND = 'https://app.example.com';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
const CONFIRM_EMAIL_CHANGE_SUBJECT = 'Confirm your new email address';

/** The security-event lines logged so far, optionally of one type. */
const events = (h: TestApp, type?: string) => h.logs.filter((l) => typeof l.event === 'string' && (!type || l.event === type));

const h = await buildTestApp(t, { captureLogs: true, env: { JWT_LONG_RUNNING_REFRESH_TOKEN: 'true', REFRESH_TOKEN_REUSE_INTERVAL: '0' } });

t.test('X-Request-Id on every answer: the id of the logs and of problem documents', async (t) => {
  const ok = await get(h.app, '/health');
  t.match(String(ok.headers['x-request-id']), /^[0-9a-f-]{36}$/, 'on a 200');
  const notFound = await get(h.app, '/nope');
  t.equal(notFound.headers['x-request-id'], notFound.body.requestId, 'on a 404, equal to the problem requestId');
  const bad = await post(h.app, '/token', { nope: 1 });
  t.equal(bad.headers['x-request-id'], bad.body.requestId, 'on a 400');
  const unauthenticated = await get(h.app, '/me');
  t.equal(unauthenticated.headers['x-request-id'], unauthenticated.body.requestId, 'on a 401');
  const client = await h.app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'chosen-by-client' } });
  t.not(client.headers['x-request-id'], 'chosen-by-client', 'a client-chosen id is never taken');
  const line = h.logs.find((l) => l.reqId === ok.headers['x-request-id']);
  t.ok(line, 'the same id is in the log lines of that request');
});

t.test("a W3C traceparent's trace id is in the request's log lines; an invalid one is ignored", async (t) => {
  const res = await h.app.inject({ method: 'GET', url: '/health', headers: { traceparent: TRACEPARENT } });
  const lines = h.logs.filter((l) => l.reqId === res.headers['x-request-id']);
  t.ok(lines.length >= 2, 'incoming and completed lines');
  t.ok(lines.every((l) => l.traceId === TRACE_ID), 'every line of the request carries traceId');
  for (const bad of [
    `ff-${TRACE_ID}-00f067aa0ba902b7-01`, // version ff is invalid
    `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, // all-zero trace id
    `00-${TRACE_ID}-${'0'.repeat(16)}-01`, // all-zero parent id
    `00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01`, // upper case is invalid
    `00-${TRACE_ID}-00f067aa0ba902b7-01-extra`, // version 00 has exactly four fields
    'garbage',
  ]) {
    const r = await h.app.inject({ method: 'GET', url: '/health', headers: { traceparent: bad } });
    t.equal(r.statusCode, 200, `${bad}: still answered`);
    const l = h.logs.filter((x) => x.reqId === r.headers['x-request-id']);
    t.ok(l.length > 0 && l.every((x) => x.traceId === undefined), `${bad}: no traceId`);
  }
  const future = await h.app.inject({ method: 'GET', url: '/health', headers: { traceparent: `cc-${TRACE_ID}-00f067aa0ba902b7-01-future` } });
  t.ok(h.logs.filter((x) => x.reqId === future.headers['x-request-id']).every((x) => x.traceId === TRACE_ID), 'a future version with more fields is read');
});

t.test('probes: /health/live, /health/ready, and /health as ready', async (t) => {
  for (const url of ['/health/live', '/health/ready', '/health']) {
    const res = await get(h.app, url);
    t.equal(res.status, 200, url);
    t.strictSame(res.body, { status: 'ok' }, url);
  }
});

t.test('GET / points to the docs: a redirect for a browser, links for anything else', async (t) => {
  const browser = await h.app.inject({ method: 'GET', url: '/', headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  t.equal(browser.statusCode, 302);
  t.equal(browser.headers.location, '/docs');
  const curl = await get(h.app, '/');
  t.equal(curl.status, 200);
  t.strictSame(curl.body, { name: 'Auth service', docs: '/docs', openapi: '/openapi.json', health: '/health' });
});

t.test('the OpenAPI servers entry is relative, so Swagger UI calls the host it was opened on', async (t) => {
  const doc = (await get(h.app, '/openapi.json')).body;
  t.same(doc.servers.map((s: { url: string }) => s.url), ['/']);
});

t.test('CORS', async (t) => {
  await t.test('a preflight from an allowed origin is answered for every route, without credentials', async (t) => {
    for (const [method, url] of [['POST', '/register'], ['POST', '/token'], ['GET', '/me'], ['POST', '/password-change'], ['GET', '/health']]) {
      const res = await h.app.inject({
        method: 'OPTIONS',
        url,
        headers: { origin: FRONTEND, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
      });
      t.equal(res.statusCode, 204, `${method} ${url}: 204`);
      t.equal(res.headers['access-control-allow-origin'], FRONTEND, `${url}: the origin is allowed`);
      t.match(String(res.headers['access-control-allow-methods']), method, `${url}: ${method} allowed`);
      t.match(String(res.headers['access-control-allow-headers']).toLowerCase(), /authorization/, `${url}: Authorization allowed`);
      t.notOk(res.headers['access-control-allow-credentials'], `${url}: no credentials`);
      t.equal(res.headers['access-control-max-age'], '600');
    }
  });

  await t.test('an actual request exposes Retry-After, RateLimit-*, WWW-Authenticate and X-Request-Id', async (t) => {
    const res = await h.app.inject({ method: 'GET', url: '/me', headers: { origin: FRONTEND } });
    t.equal(res.statusCode, 401);
    t.equal(res.headers['access-control-allow-origin'], FRONTEND, 'an error answer carries CORS headers too');
    const exposed = String(res.headers['access-control-expose-headers']).toLowerCase().split(/,\s*/);
    for (const header of ['retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'www-authenticate', 'x-request-id']) {
      t.ok(exposed.includes(header), `${header} exposed`);
    }
    t.match(String(res.headers.vary), /origin/i, 'Vary: Origin');
  });

  await t.test('another origin gets no CORS headers (the browser refuses to read the answer)', async (t) => {
    const preflight = await h.app.inject({
      method: 'OPTIONS',
      url: '/token',
      headers: { origin: 'https://evil.example.net', 'access-control-request-method': 'POST' },
    });
    t.notOk(preflight.headers['access-control-allow-origin']);
    const res = await h.app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://evil.example.net' } });
    t.notOk(res.headers['access-control-allow-origin']);
  });

  await t.test("CORS_ORIGINS replaces the default (FRONTEND_URL's origin and the service's own)", async (t) => {
    t.same(h.config.corsOrigins, [FRONTEND, 'http://localhost:3000'], 'the default');
    const other = await buildTestApp(t, { env: { CORS_ORIGINS: 'https://a.example.com, https://b.example.com:8443' } });
    const allowed = await other.app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://b.example.com:8443' } });
    t.equal(allowed.headers['access-control-allow-origin'], 'https://b.example.com:8443');
    const frontend = await other.app.inject({ method: 'GET', url: '/health', headers: { origin: FRONTEND } });
    t.notOk(frontend.headers['access-control-allow-origin'], 'FRONTEND_URL is no longer allowed');
  });
});

t.test('security events: one log line per event, with a stable `event`, the user id and the client, never a secret', async (t) => {
  const user = await verifiedUser(h);
  const before = h.logs.length;
  const ua = { 'user-agent': 'ops-test/1.0' };

  const wrong = await h.app.inject({ method: 'POST', url: '/token', payload: { email: user.email, password: 'wrong password here' }, headers: ua });
  t.equal(wrong.statusCode, 401);
  await post(h.app, '/token', { email: 'nobody-here@example.com', password: 'wrong password here' });
  const login = await post(h.app, '/token', { email: user.email, password: PASSWORD });
  // A spent refresh token presented again (REFRESH_TOKEN_REUSE_INTERVAL=0): theft, the session ends.
  const refreshed = await post(h.app, '/token/refresh', { refreshToken: login.body.refreshToken });
  t.equal(refreshed.status, 200);
  t.equal((await post(h.app, '/token/refresh', { refreshToken: login.body.refreshToken })).status, 400);
  const newPassword = 'another long passphrase';
  const changed = await post(
    h.app,
    '/password-change',
    { oldPassword: PASSWORD, newPassword1: newPassword, newPassword2: newPassword },
    user.token,
  );
  t.equal(changed.status, 200);
  await post(h.app, '/send-password-reset-email', { email: user.email });
  const resetMail = await h.mail.waitForSubject(user.email, 'Reset your password');
  const reset = await post(h.app, '/password-reset', { token: tokenIn(resetMail), newPassword1: PASSWORD, newPassword2: PASSWORD });
  t.equal(reset.status, 204);
  const relogin = await post(h.app, '/token', { email: user.email, password: PASSWORD });
  await post(h.app, '/archive-account', { password: PASSWORD }, relogin.body.token);
  const unarchive = await post(h.app, '/token', { email: user.email, password: PASSWORD });
  t.equal(unarchive.body.unarchiving, true);
  await post(h.app, '/delete-account', { password: PASSWORD }, unarchive.body.token);
  await outboxSettled(h);

  const lines = h.logs.slice(before).filter((l) => typeof l.event === 'string');
  t.same(
    lines.map((l) => l.event),
    [
      'login_failed',
      'login_failed',
      'login_succeeded',
      'refresh_reuse_detected',
      'password_changed',
      'password_reset',
      'login_succeeded',
      'account_archived',
      'login_succeeded',
      'account_unarchived',
      'account_deleted',
    ],
    'the events, in order',
  );
  const [wrongPassword, unknown, ok, reuse, pwChanged] = lines;
  t.equal(wrongPassword.reason, 'wrong_password');
  t.equal(wrongPassword.userId, user.user.id);
  t.equal(wrongPassword.client.ip, '127.0.0.1', 'the client address');
  t.equal(wrongPassword.client.userAgent, 'ops-test/1.0', 'the user agent');
  t.equal(wrongPassword.level, 40, 'a failed login is a warning');
  t.equal(unknown.reason, 'unknown_account');
  t.equal(unknown.userId, null, 'no account, no user id');
  t.equal(ok.level, 30);
  t.equal(ok.sessionId, login.body.payload.sid, 'the new session');
  t.equal(reuse.sessionId, login.body.payload.sid, 'the session the replay ended');
  t.equal(reuse.level, 40);
  t.equal(pwChanged.sessionId, changed.body.payload.sid);
  t.equal(lines[8].detail?.unarchived, true, 'the login that un-archived says so');
  t.same(lines[9].event, 'account_unarchived', 'and is an unarchive too');
  t.same(lines[10].detail, { deactivated: true });
  for (const l of lines) {
    t.equal(l.msg, `security event: ${l.event}`);
    t.ok(typeof l.reqId === 'string', `${l.event}: the request id`);
    const text = JSON.stringify(l);
    for (const secret of [PASSWORD, newPassword, 'wrong password here', login.body.refreshToken, login.body.token, user.email]) {
      t.notOk(text.includes(secret), `${l.event}: no password, token or email in the line`);
    }
  }
});

t.test('security events: email_changed, password_set and rate_limited', async (t) => {
  const h2 = await buildTestApp(t, {
    captureLogs: true,
    env: { UPDATE_FIELDS: 'email,firstName', RATE_LIMIT_MAX: '2', ALLOW_PASSWORDLESS_REGISTRATION: 'true', SEND_PASSWORD_SET_EMAIL: 'true' },
  });
  const user = await verifiedUser(h2);
  // An email change takes effect when the new address confirms it (hardening: two steps).
  const newEmail = `new-${user.email}`;
  const changed = await post(h2.app, '/update-account', { email: newEmail, password: PASSWORD }, user.token);
  t.equal(changed.status, 200);
  t.same(events(h2, 'email_changed'), [], 'nothing changed yet: the new address is pending');
  const confirm = await h2.mail.waitForSubject(newEmail, CONFIRM_EMAIL_CHANGE_SUBJECT);
  t.equal((await post(h2.app, '/confirm-email-change', { token: tokenIn(confirm) })).status, 204);
  t.same(events(h2, 'email_changed').map((l) => l.userId), [user.user.id]);

  const passwordless = await registerUser(h2.app, { password1: undefined, password2: undefined });
  const mail = await h2.mail.waitForSubject(passwordless.email, 'Set your password');
  const set = await post(h2.app, '/password-set', { token: tokenIn(mail), newPassword1: PASSWORD, newPassword2: PASSWORD });
  t.equal(set.status, 204);
  t.same(events(h2, 'password_set').map((l) => l.userId), [passwordless.user.id]);

  let limited;
  for (let i = 0; i < 4 && !limited; i++) {
    const res = await post(h2.app, '/verify-account', { token: 'x'.repeat(43) });
    if (res.status === 429) limited = res;
  }
  t.ok(limited, 'a 429');
  const [line] = events(h2, 'rate_limited');
  t.equal(line?.reason, '/verify-account', 'the route');
  t.equal(line?.client.ip, '127.0.0.1');
  await sleep(0);
});

/** Parses a Prometheus text exposition into `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

t.test('GET /metrics', async (t) => {
  const METRICS_TOKEN = 'metrics-token-0123456789';
  const m = await buildTestApp(t, { env: { METRICS_TOKEN, RATE_LIMIT_MAX: '3', REFRESH_TOKEN_REUSE_INTERVAL: '0' } });
  const scrape = async () => {
    const res = await m.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    t.equal(res.statusCode, 200, 'scrape: 200');
    return parseMetrics(res.body);
  };
  const value = (metrics: Map<string, number>, key: string) => metrics.get(key) ?? 0;

  await t.test('only to Authorization: Bearer <METRICS_TOKEN>; no route at all without METRICS_TOKEN', async (t) => {
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789', `Basic ${METRICS_TOKEN}`, `Bearer ${METRICS_TOKEN}x`]) {
      const res = await m.app.inject({ method: 'GET', url: '/metrics', headers: authorization ? { authorization } : {} });
      t.equal(res.statusCode, 401, `${authorization ?? 'no header'}: 401`);
      t.equal(JSON.parse(res.body).code, 'unauthenticated');
    }
    const ok = await m.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    t.equal(ok.statusCode, 200);
    t.match(String(ok.headers['content-type']), /^text\/plain; version=0\.0\.4/, 'the Prometheus text format');
    t.equal((await get(h.app, '/metrics')).status, 404, 'METRICS_TOKEN unset: 404');
    const doc = (await get(m.app, '/openapi.json')).body;
    t.notOk(doc.paths['/metrics'], 'not in the API document');
  });

  await t.test('each metric changes as the flows run', async (t) => {
    const before = await scrape();
    const user = await verifiedUser(m); // register (hash), activation email, verify, login (verify)
    await post(m.app, '/token', { email: user.email, password: 'wrong password here' });
    const spent = user.refreshToken;
    t.equal((await post(m.app, '/token/refresh', { refreshToken: spent })).status, 200);
    t.equal((await post(m.app, '/token/refresh', { refreshToken: spent })).status, 400, 'a replay');
    for (let i = 0; i < 4; i++) await post(m.app, '/verify-account', { token: 'x'.repeat(43) });
    await outboxSettled(m);
    const after = await scrape();

    const changed = (key: string, by?: number) => {
      const delta = value(after, key) - value(before, key);
      if (by === undefined) t.ok(delta > 0, `${key} rose (by ${delta})`);
      else t.equal(delta, by, `${key} rose by ${by}`);
    };
    changed('http_requests_total{method="POST",route="/token",status="200"}', 1);
    changed('http_requests_total{method="POST",route="/token",status="401"}', 1);
    changed('http_requests_total{method="POST",route="/verify-account",status="429"}');
    changed('http_request_duration_seconds_count{method="POST",route="/register",status="201"}', 1);
    changed('http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/register",status="201"}', 1);
    changed('argon2_duration_seconds_count{operation="hash"}', 1);
    changed('argon2_duration_seconds_count{operation="verify"}', 2);
    changed('outbox_emails{status="sent"}', 1);
    changed('outbox_send_duration_seconds_count{result="sent"}', 1);
    changed('auth_login_failures_total{reason="wrong_password"}', 1);
    changed('auth_rate_limited_total{route="/verify-account"}');
    changed('auth_refresh_token_reuse_detected_total', 1);
    changed('auth_security_events_total{event="login_succeeded"}', 1);
    t.equal(value(after, 'argon2_operations_in_flight'), 0, 'no hash in flight at rest');
    t.ok(value(after, 'db_pool_connections_max') >= 1, 'the pool size');
    t.notOk([...after.keys()].some((k) => k.includes('/nope') || k.includes('x'.repeat(43))), 'no raw URL in a label');
  });

  await t.test('hashes in flight and database connections in use are seen while they happen', async (t) => {
    // A slow hash (high iteration count) and a scrape while it runs.
    const slow = await buildTestApp(t, { env: { METRICS_TOKEN, ARGON2_ITERATIONS: '60' } });
    const scrapeSlow = async () =>
      parseMetrics((await slow.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).body);
    const login = post(slow.app, '/token', { email: 'nobody@example.com', password: 'wrong password here' });
    let inFlight = 0;
    for (let i = 0; i < 200 && inFlight === 0; i++) {
      inFlight = value(await scrapeSlow(), 'argon2_operations_in_flight');
      if (!inFlight) await sleep(2);
    }
    await login;
    t.ok(inFlight >= 1, `argon2_operations_in_flight was ${inFlight} during a login`);
    t.equal(value(await scrapeSlow(), 'argon2_operations_in_flight'), 0, 'and 0 after');

    // A transaction holds a connection for as long as it is open.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    const tx = slow.db.db.transaction(async () => {
      open();
      await held;
    });
    await opened;
    const during = await scrapeSlow();
    release();
    await tx;
    // Not awaited until after the scrape: the gauge counts it from BEGIN, not from the first await.
    t.ok(value(during, 'db_pool_connections_in_use') >= 1, 'db_pool_connections_in_use ≥ 1 while a transaction is open');
  });
});
