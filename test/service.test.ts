// The service surface: health, the Swagger UI (the document: openapi.test.ts), the generic errors every endpoint
// shares (404, 405, 413, 415, malformed bodies, rate limiting), that no response ever carries a
// password hash or a token hash, and that nothing a client sends produces a 500.
// The contract: every endpoint, the errors and the response shapes of the README and the OpenAPI document.
import t from 'tap';
import { emailTokens, refreshTokens, users } from '../src/db/schema.js';
import type { App } from '../src/routes/types.js';
import { serializeError } from '../src/lib/log.js';
import { assertProblem, buildTestApp, PASSWORD, problemIssues, registerUser, tokenIn, uniqueUser, verifiedUser } from './helpers.js';

interface Res {
  method: string;
  url: string;
  status: number;
  headers: Record<string, unknown>;
  body: any;
  raw: string;
}

/** Every response this file sees, to look for hashes in them at the end. */
const seen: Res[] = [];

async function call(
  app: App,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH',
  url: string,
  opts: { body?: unknown; raw?: string | Buffer; contentType?: string; token?: string; remoteAddress?: string } = {},
): Promise<Res> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.contentType !== undefined) headers['content-type'] = opts.contentType;
  let payload: string | Buffer | undefined;
  if (opts.raw !== undefined) payload = opts.raw;
  else if (opts.body !== undefined) {
    payload = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await app.inject({ method, url, headers, payload, ...(opts.remoteAddress ? { remoteAddress: opts.remoteAddress } : {}) });
  let body: unknown = res.body;
  try {
    body = JSON.parse(res.body);
  } catch {
    // not JSON
  }
  const out: Res = { method, url, status: res.statusCode, headers: res.headers, body, raw: res.body };
  seen.push(out);
  return out;
}

const BEARER = new Set(['/archive-account', '/delete-account', '/password-change', '/update-account', '/me']);

// One app with the default settings.
const h = await buildTestApp(t);

t.test('GET /health answers 200 {status:"ok"}', async (t) => {
  const res = await call(h.app, 'GET', '/health');
  t.equal(res.status, 200);
  t.strictSame(res.body, { status: 'ok' });
  t.match(String(res.headers['content-type']), /^application\/json/);
});

// The OpenAPI document itself: test/openapi.test.ts.

t.test('GET /docs answers the Swagger UI (HTML)', async (t) => {
  let url = '/docs';
  let res = await call(h.app, 'GET', url);
  for (let hops = 0; hops < 3 && res.status >= 300 && res.status < 400; hops++) {
    url = new URL(String(res.headers.location), `http://localhost${url}`).pathname;
    res = await call(h.app, 'GET', url);
  }
  t.equal(res.status, 200);
  t.match(String(res.headers['content-type']), /^text\/html/);
  t.match(res.raw, /swagger/i, 'the Swagger UI page');
  // Its assets load too.
  const asset = /(?:src|href)="([^"]*swagger-ui[^"]*\.(?:js|css))"/.exec(res.raw)?.[1];
  t.ok(asset, 'the page references the Swagger UI assets');
  if (asset) {
    const assetRes = await call(h.app, 'GET', new URL(asset, `http://localhost${url}`).pathname);
    t.equal(assetRes.status, 200, `${asset} loads`);
  }
});

t.test('generic errors are problem documents', async (t) => {
  await t.test('unknown route → 404 not_found', async (t) => {
    for (const [method, url] of [['GET', '/nope'], ['POST', '/tokens'], ['GET', '/token/verify/extra']] as const) {
      const res = await call(h.app, method, url, method === 'POST' ? { body: {} } : {});
      assertProblem(t, res, 'not_found');
    }
  });

  await t.test('a known route with the wrong method → 405 method_not_allowed with Allow', async (t) => {
    for (const [method, url, allow] of [
      ['GET', '/register', 'POST'],
      ['DELETE', '/token', 'POST'],
      ['POST', '/me', 'GET'],
      ['PUT', '/health', 'GET'],
    ] as const) {
      const res = await call(h.app, method, url);
      assertProblem(t, res, 'method_not_allowed');
      const allowed = String(res.headers.allow ?? '')
        .split(',')
        .map((s) => s.trim());
      t.ok(allowed.includes(allow), `${method} ${url}: Allow lists ${allow} (got "${res.headers.allow}")`);
      t.notOk(allowed.includes(method), `${method} ${url}: Allow does not list ${method}`);
    }
  });

  await t.test('a body over 64 KiB → 413 payload_too_large', async (t) => {
    const body = { email: 'a@example.com', password: 'x'.repeat(65 * 1024) };
    const res = await call(h.app, 'POST', '/token', { body });
    assertProblem(t, res, 'payload_too_large');
    const reg = await call(h.app, 'POST', '/register', { body: { ...uniqueUser(), password1: 'x'.repeat(70_000), password2: 'x' } });
    assertProblem(t, reg, 'payload_too_large');
    // Just under the limit is read (and refused for what it says, not for its size).
    const under = await call(h.app, 'POST', '/token', { body: { email: 'a@example.com', password: 'x'.repeat(60 * 1024) } });
    t.not(under.status, 413, 'a body under 64 KiB is not too large');
    t.ok(under.status < 500);
  });

  await t.test('a body that is not JSON → 415 unsupported_media_type', async (t) => {
    const json = JSON.stringify({ email: 'a@example.com', password: PASSWORD });
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml']) {
      const res = await call(h.app, 'POST', '/token', { raw: json, contentType });
      assertProblem(t, res, 'unsupported_media_type');
    }
    const none = await call(h.app, 'POST', '/token', { raw: json });
    assertProblem(t, none, 'unsupported_media_type');
  });

  await t.test('application/json with a charset is JSON', async (t) => {
    const res = await call(h.app, 'POST', '/token', {
      raw: JSON.stringify({ email: uniqueUser().email, password: PASSWORD }),
      contentType: 'application/json; charset=utf-8',
    });
    assertProblem(t, res, 'invalid_credentials', { detail: 'Please, enter valid credentials.' });
  });

  const malformed: [string, string][] = [
    ['malformed JSON', '{"email": "a@example.com", "password": '],
    ['a trailing comma', '{"email": "a@example.com", "password": "x",}'],
    ['single quotes', "{'email': 'a@example.com'}"],
    ['a JSON array', JSON.stringify([{ email: 'a@example.com', password: PASSWORD }])],
    ['an empty JSON array', '[]'],
    ['a JSON string', JSON.stringify('email=a@example.com')],
    ['a JSON number', '12345678'],
    ['JSON null', 'null'],
    ['JSON true', 'true'],
    ['an empty body', ''],
    ['only whitespace', '   \n'],
    ['a __proto__ key', '{"__proto__": {"isAdmin": true}, "email": "a@example.com", "password": "x"}'],
    ['a nested __proto__ key', '{"email": "a@example.com", "password": {"__proto__": {"x": 1}}}'],
    ['a constructor.prototype key', '{"constructor": {"prototype": {"isAdmin": true}}, "email": "a@example.com", "password": "x"}'],
  ];
  for (const [name, raw] of malformed) {
    await t.test(`${name} → 400 validation_failed`, async (t) => {
      for (const url of ['/token', '/register', '/verify-account']) {
        const res = await call(h.app, 'POST', url, { raw, contentType: 'application/json' });
        await t.test(url, async (t) => assertProblem(t, res, 'validation_failed'));
      }
    });
  }

  await t.test('a __proto__ key pollutes nothing', async (t) => {
    t.equal(({} as any).isAdmin, undefined, 'Object.prototype is untouched');
    const res = await call(h.app, 'GET', '/health');
    t.equal(res.status, 200, 'and the service still answers');
  });

  await t.test('every answer has its own requestId', async (t) => {
    const a = await call(h.app, 'GET', '/nope');
    const b = await call(h.app, 'GET', '/nope');
    t.not(a.body.requestId, b.body.requestId);
  });
});

t.test('rate limiting: the 4th POST /token of a client within the window → 429 rate_limited with Retry-After', async (t) => {
  const hr = await buildTestApp(t, { env: { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW: '1m' } });
  const body = { email: uniqueUser().email, password: PASSWORD };
  for (let i = 1; i <= 3; i++) {
    const res = await call(hr.app, 'POST', '/token', { body });
    t.equal(res.status, 401, `attempt ${i} is answered`);
  }
  const res = await call(hr.app, 'POST', '/token', { body });
  assertProblem(t, res, 'rate_limited', { detail: /\d/ });
  const retryAfter = Number(res.headers['retry-after']);
  t.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 60, `Retry-After is the wait in seconds (got ${res.headers['retry-after']})`);
  const fifth = await call(hr.app, 'POST', '/token', { body });
  t.equal(fifth.status, 429, 'and stays limited within the window');

  const other = await call(hr.app, 'POST', '/token', { body, remoteAddress: '203.0.113.7' });
  t.equal(other.status, 401, 'another client is not limited');
});

t.test('a full flow over every endpoint', async (t) => {
  const u = uniqueUser('flow');
  const reg = await call(h.app, 'POST', '/register', { body: { ...u, password1: PASSWORD, password2: PASSWORD } });
  t.equal(reg.status, 201, 'register');
  t.equal((await call(h.app, 'POST', '/resend-activation-email', { body: { email: u.email } })).status, 202, 'resend-activation-email');
  await h.app.backgroundIdle();
  await h.mail.waitFor(u.email, 2);
  t.equal((await call(h.app, 'POST', '/verify-account', { body: { token: tokenIn(h.mail.to(u.email)[0]) } })).status, 204, 'verify-account');

  const login = await call(h.app, 'POST', '/token', { body: { email: u.email, password: PASSWORD } });
  t.equal(login.status, 200, 'token');
  t.equal((await call(h.app, 'GET', '/me', { token: login.body.token })).status, 200, 'me');
  t.equal((await call(h.app, 'POST', '/token/verify', { body: { token: login.body.token } })).status, 200, 'token/verify');
  const refreshed = await call(h.app, 'POST', '/token/refresh', { body: { refreshToken: login.body.refreshToken } });
  t.equal(refreshed.status, 200, 'token/refresh');
  t.equal((await call(h.app, 'POST', '/update-account', { body: { firstName: 'Ada' }, token: refreshed.body.token })).status, 200, 'update-account');

  t.equal((await call(h.app, 'POST', '/send-password-reset-email', { body: { email: u.email } })).status, 202, 'send-password-reset-email');
  await h.app.backgroundIdle();
  const resetMail = await h.mail.waitFor(u.email, 3);
  const newPassword = `${PASSWORD} again`;
  const reset = await call(h.app, 'POST', '/password-reset', { body: { token: tokenIn(resetMail), newPassword1: newPassword, newPassword2: newPassword } });
  t.equal(reset.status, 204, 'password-reset');

  const login2 = await call(h.app, 'POST', '/token', { body: { username: u.username, password: newPassword } });
  t.equal(login2.status, 200, 'token after reset');
  const changed = await call(h.app, 'POST', '/password-change', {
    body: { oldPassword: newPassword, newPassword1: PASSWORD, newPassword2: PASSWORD },
    token: login2.body.token,
  });
  t.equal(changed.status, 200, 'password-change');
  t.equal((await call(h.app, 'POST', '/token/revoke', { body: { refreshToken: changed.body.refreshToken } })).status, 200, 'token/revoke');

  const login3 = await call(h.app, 'POST', '/token', { body: { email: u.email, password: PASSWORD } });
  t.equal((await call(h.app, 'POST', '/archive-account', { body: { password: PASSWORD }, token: login3.body.token })).status, 204, 'archive-account');
  const login4 = await call(h.app, 'POST', '/token', { body: { email: u.email, password: PASSWORD } });
  t.equal(login4.body.unarchiving, true, 'login un-archives');
  t.equal((await call(h.app, 'POST', '/delete-account', { body: { password: PASSWORD }, token: login4.body.token })).status, 204, 'delete-account');

  t.equal((await call(h.app, 'GET', '/.well-known/jwks.json')).status, 200, 'jwks');

  // Error answers of the bearer and password endpoints too.
  t.equal((await call(h.app, 'POST', '/archive-account', { body: { password: PASSWORD }, token: login4.body.token })).status, 401);
  t.equal((await call(h.app, 'POST', '/token', { body: { email: u.email, password: PASSWORD } })).status, 401, 'inactive');
  t.equal((await call(h.app, 'POST', '/token/refresh', { body: { refreshToken: login.body.refreshToken } })).status, 400, 'reused refresh token');
});

// Hostile bodies, per endpoint: the fields it takes.
const POST_ENDPOINTS: [path: string, fields: string[]][] = [
  ['/register', ['email', 'username', 'password1', 'password2']],
  ['/verify-account', ['token']],
  ['/resend-activation-email', ['email']],
  ['/send-password-reset-email', ['email']],
  ['/password-reset', ['token', 'newPassword1', 'newPassword2']],
  ['/password-set', ['token', 'newPassword1', 'newPassword2']],
  ['/token', ['email', 'password']],
  ['/token', ['username', 'password']],
  ['/token', ['email', 'username', 'password']],
  ['/token/verify', ['token']],
  ['/token/refresh', ['refreshToken']],
  ['/token/revoke', ['refreshToken']],
  ['/archive-account', ['password']],
  ['/delete-account', ['password']],
  ['/password-change', ['oldPassword', 'newPassword1', 'newPassword2']],
  ['/update-account', ['firstName', 'lastName']],
];

/** Raw JSON of an object nested `depth` levels deep (built as text: too deep for JSON.stringify). */
const nested = (depth: number): string => `${'{"a":'.repeat(depth)}"deep"${'}'.repeat(depth)}`;
/** A raw JSON body: each field set to the raw JSON `value`. */
const rawEach = (fields: string[], value: string) => `{${fields.map((f) => `${JSON.stringify(f)}:${value}`).join(',')}}`;
const LONG_EMAIL_LOCAL = `${'a'.repeat(300)}@example.com`;
const LONG_EMAIL_254 = `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(55)}.com`; // 254 characters
const LONG_EMAIL_LOCAL_65 = `${'a'.repeat(65)}@example.com`;
const ODD = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\u202eevil\u202c',
  '\u200b\u200c\u200d\ufeff',
  'e\u0301\u0301\u0301\u0301',
  '👩‍👩‍👧‍👦🏳️‍🌈',
  'ﷺ',
  'Ａｄｍｉｎ',
  '\u0085\u2028\u2029\r\n\t',
  "'; drop table users; --",
  '%00%0d%0a',
  '${jndi:ldap://x}',
  '../../../../etc/passwd',
];

/** [name, raw JSON body]. */
function hostileBodies(fields: string[]): [string, string][] {
  const each = (v: () => unknown) => Object.fromEntries(fields.map((f) => [f, v()]));
  const huge = Math.floor(60_000 / fields.length);
  const bodies: [string, unknown | { raw: string }][] = [
    ['an empty object', {}],
    ['null in every field', each(() => null)],
    ['true in every field', each(() => true)],
    ['false in every field', each(() => false)],
    ['a number in every field', each(() => 12345678)],
    ['a float in every field', each(() => 1e308)],
    ['an array in every field', each(() => ['x'])],
    ['an object in every field', each(() => ({ x: 'y' }))],
    ['a deeply nested object in every field', { raw: rawEach(fields, nested(Math.floor(huge / 6))) }],
    ['a deeply nested body', { raw: nested(10_000) }],
    ['a deeply nested array in every field', { raw: rawEach(fields, `${'['.repeat(Math.floor(huge / 2))}${']'.repeat(Math.floor(huge / 2))}`) }],
    ['a huge string in every field', each(() => 'x'.repeat(huge))],
    ['a huge unicode string in every field', each(() => '€'.repeat(Math.floor(huge / 3)))],
    ['an empty string in every field', each(() => '')],
    ['whitespace in every field', each(() => '   ')],
    ['a very long email in every field', each(() => LONG_EMAIL_LOCAL)],
    ['a 254-character email in every field', each(() => LONG_EMAIL_254)],
    ['an email with a 65-character local part in every field', each(() => LONG_EMAIL_LOCAL_65)],
    ['many unknown properties', { ...each(() => 'x'), ...Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i])) }],
  ];
  for (const odd of ODD) {
    bodies.push([`${JSON.stringify(odd)} in every field`, each(() => odd)]);
    // Right types and a valid email where one is needed, so the oddity reaches the services.
    bodies.push([
      `${JSON.stringify(odd)} in every field but a valid email`,
      Object.fromEntries(fields.map((f) => [f, f === 'email' ? uniqueUser().email : f.startsWith('password') || f.startsWith('newPassword') ? `${odd}${PASSWORD}` : odd])),
    ]);
    bodies.push([`${JSON.stringify(odd)} inside an email`, each(() => `a${odd}b@example.com`)]);
  }
  return bodies.map(([name, body]) => [name, body && typeof body === 'object' && 'raw' in body ? String(body.raw) : JSON.stringify(body)]);
}

t.test('nothing a client sends produces a 500', async (t) => {
  const v = await verifiedUser(h);
  const failures: string[] = [];
  let requests = 0;
  for (const [path, fields] of POST_ENDPOINTS) {
    for (const [name, body] of hostileBodies(fields)) {
      for (const token of BEARER.has(path) ? [undefined, v.token] : [undefined]) {
        const res = await call(h.app, 'POST', path, { raw: body, contentType: 'application/json', token });
        requests++;
        const label = `POST ${path} [${fields.join(',')}] ${token ? 'with a token' : ''} ${name}`;
        if (res.status >= 500) failures.push(`${label}: ${res.status} ${res.raw.slice(0, 300)}`);
        else if (res.status >= 400) {
          const issues = problemIssues(res);
          if (issues.length) failures.push(`${label}: ${res.status} not a problem document: ${issues.join('; ')}`);
        }
      }
    }
  }
  await h.app.backgroundIdle();
  t.ok(requests > 500, `${requests} hostile requests sent`);
  t.same(failures, [], 'every answer is < 500, and every error a problem document');
  // The account used for the bearer endpoints is still whole: no hostile body archived, deleted or changed it.
  const me = await call(h.app, 'GET', '/me', { token: v.token });
  t.equal(me.status, 200, 'the bearer account still works');
  t.has(me.body.user, { archived: false, isActive: true });
  const health = await call(h.app, 'GET', '/health');
  t.equal(health.status, 200, 'and the service is healthy');
});

t.test('no response carries a password hash or a token hash', async (t) => {
  const hashes = new Set<string>();
  for (const row of await h.db.db.select({ hash: users.passwordHash }).from(users)) if (row.hash) hashes.add(row.hash);
  const passwordHashes = hashes.size;
  for (const row of await h.db.db.select({ hash: refreshTokens.tokenHash }).from(refreshTokens)) hashes.add(row.hash);
  for (const row of await h.db.db.select({ hash: emailTokens.tokenHash }).from(emailTokens)) hashes.add(row.hash);
  t.ok(passwordHashes > 0 && hashes.size > passwordHashes, `${passwordHashes} password hashes and ${hashes.size - passwordHashes} token hashes to look for`);
  t.ok(seen.length > 500, `${seen.length} responses seen in this file`);
  const leaks: string[] = [];
  for (const res of seen) {
    const text = `${JSON.stringify(res.headers)}\n${res.raw}`;
    if (text.includes('$argon2')) leaks.push(`${res.method} ${res.url} ${res.status}: $argon2`);
    for (const hash of hashes) if (text.includes(hash)) leaks.push(`${res.method} ${res.url} ${res.status}: a stored hash`);
  }
  t.same(leaks, [], 'no hash in any response');
});

t.test('regression: a failed query is logged with its SQL but never its parameters (hashes, emails)', async (t) => {
  const h = await buildTestApp(t);
  const reg = await registerUser(h.app);
  const secret = '$argon2id$v=19$m=1024,t=1,p=1$c2VjcmV0LXBhcmFtZXRlcg$bm90LWEtcmVhbC1oYXNo';
  // A real failing query: a second account with a taken email violates the unique index.
  const err = await h.db.db
    .insert(users)
    .values({ email: reg.email.toUpperCase(), username: 'someone-else', passwordHash: secret })
    .then(() => undefined, (e: Error) => e);
  t.ok(err instanceof Error, 'the query failed');
  t.match(String(err?.message), secret, 'the driver-level error message does carry the parameters');
  const logged = JSON.stringify(serializeError(err as Error));
  t.notMatch(logged, secret, 'the logged form has no password hash');
  t.notMatch(logged, reg.email.toUpperCase(), 'nor the email');
  t.match(logged, /insert into .*users/, 'but says which query failed');
  t.match(logged, /23505/, "and the database's error code");
});
