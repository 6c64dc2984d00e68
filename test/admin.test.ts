// The admin API (/admin): its guard (ADMIN_API_KEYS), rate limit and absence when unset, account
// management and the outbox.
import { eq } from 'drizzle-orm';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { type Config, loadConfig, parseAdminKeys } from '../src/config.js';
import { outbox } from '../src/db/schema.js';
import { matchAdminKey } from '../src/routes/admin/auth.js';
import {
  assertProblem,
  buildTestApp,
  get,
  makeDatabase,
  outboxSettled,
  PASSWORD,
  post,
  registerUser,
  type Res,
  safeJson,
  type TestApp,
  tokenIn,
  uniqueUser,
  userRow,
  verifiedUser,
} from './helpers.js';

const OPS_KEY = 'ops-key-0123456789abcdefghijklmnopqrstuvwxyz';
const CI_KEY = 'ci-key-0123456789abcdefghijklmnopqrstuvwxyzAB';
const KEYS = `ops:${OPS_KEY},ci:${CI_KEY}`;

async function call(h: TestApp, method: string, url: string, opts: { body?: unknown; key?: string | null } = {}): Promise<Res> {
  const key = opts.key === undefined ? OPS_KEY : opts.key;
  const res = await h.app.inject({
    method: method as 'GET',
    url,
    ...(opts.body !== undefined ? { payload: opts.body as object } : {}),
    headers: key ? { authorization: `Bearer ${key}` } : {},
  });
  return { status: res.statusCode, headers: res.headers, body: res.body ? safeJson(res.body) : undefined, raw: res.body };
}

t.test('ADMIN_API_KEYS parsing', async (t) => {
  const problems: string[] = [];
  const keys = parseAdminKeys(`ops:${OPS_KEY}, ${CI_KEY}`, problems);
  t.same(problems, []);
  t.equal(keys[0].id, 'ops', 'id:secret names the key');
  t.match(keys[1].id, /^key-[0-9a-f]{8}$/, 'a bare key is named by its hash prefix');
  t.notOk(JSON.stringify(keys).includes(OPS_KEY) || JSON.stringify(keys).includes(CI_KEY), 'only digests are kept');

  const bad = (raw: string) => {
    const p: string[] = [];
    parseAdminKeys(raw, p);
    return p;
  };
  t.match(bad('ops:short'), [/entry 1 of 1: a key must be at least 32 characters/]);
  t.match(bad(`a:${OPS_KEY},a:${CI_KEY}`), [/the id "a" is used twice/]);
  t.match(bad(`a:${OPS_KEY},b:${OPS_KEY}`), [/the same key is listed twice/]);
  t.match(bad(`a:${OPS_KEY},`), [/entry 2 of 2 is empty/]);
  for (const p of [...bad('ops:short'), ...bad(`a:${OPS_KEY},b:${OPS_KEY}`)]) t.notOk(p.includes('short') || p.includes(OPS_KEY), 'no problem quotes a key');
  t.throws(() => loadConfig({ ADMIN_API_KEYS: 'x:tooshort' }), /ADMIN_API_KEYS/);
  t.same(loadConfig({}).adminApiKeys, [], 'unset: no keys');
});

t.test('matchAdminKey compares every key, so its time does not depend on the guess', async (t) => {
  const keys = parseAdminKeys(KEYS, []);
  t.equal(matchAdminKey(keys, OPS_KEY), 'ops');
  t.equal(matchAdminKey(keys, CI_KEY), 'ci');
  t.equal(matchAdminKey(keys, OPS_KEY.slice(0, -1)), undefined);
  t.equal(matchAdminKey(keys, `${OPS_KEY}x`), undefined);
  t.equal(matchAdminKey(keys, ''), undefined);
  // A guess sharing all but the last character with a key against one sharing nothing: the
  // fastest of many batches stays within a wide margin (the comparison is over SHA-256 digests).
  // The minimum, not the median: noise from a shared machine (another test file, GC, the
  // scheduler) only ever adds time, so the fastest batch is the one closest to the code's own cost.
  // The batches alternate (in turn first), so that drift falls on both alike.
  const near = `${OPS_KEY.slice(0, -1)}!`;
  const far = '!'.repeat(OPS_KEY.length);
  const batch = (guess: string) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < 5000; i++) matchAdminKey(keys, guess);
    return Number(process.hrtime.bigint() - start);
  };
  for (let i = 0; i < 3; i++) batch(far), batch(near); // warm up
  const nearBatches: number[] = [];
  const farBatches: number[] = [];
  for (let b = 0; b < 30; b++) {
    if (b % 2) nearBatches.push(batch(near)), farBatches.push(batch(far));
    else farBatches.push(batch(far)), nearBatches.push(batch(near));
  }
  const [a, b] = [Math.min(...nearBatches), Math.min(...farBatches)];
  t.ok(Math.max(a, b) / Math.min(a, b) < 1.5, `near-miss ${a} ns vs far-miss ${b} ns per 5000 (fastest batch)`);
});

t.test('without ADMIN_API_KEYS the admin routes do not exist', async (t) => {
  const h = await buildTestApp(t);
  for (const [method, url] of [['GET', '/admin/users'], ['POST', '/admin/users'], ['GET', '/admin/outbox']]) {
    assertProblem(t, await call(h, method, url, { body: method === 'POST' ? {} : undefined }), 'not_found', { label: `${method} ${url}` });
  }
  const spec = (await get(h.app, '/openapi.json')).body;
  t.notOk(Object.keys(spec.paths).some((p) => p.startsWith('/admin')), 'nor are they documented');
});

t.test('the admin guard', async (t) => {
  const h = await buildTestApp(t, { env: { ADMIN_API_KEYS: KEYS } });
  const user = await verifiedUser(h);
  const detail = 'A valid admin API key is required.';
  for (const [label, key] of [
    ['no Authorization', null],
    ['a wrong key', 'ops-key-0123456789abcdefghijklmnopqrstuvwxyZ'],
    ['a prefix of a key', OPS_KEY.slice(0, 20)],
    ["a user's access token", user.token],
  ] as const) {
    const res = await call(h, 'GET', '/admin/users', { key });
    assertProblem(t, res, 'unauthenticated', { label, detail });
  }
  const basic = await h.app.inject({ method: 'GET', url: '/admin/users', headers: { authorization: `Basic ${OPS_KEY}` } });
  t.equal(basic.statusCode, 401, 'another scheme is refused');
  // 401 before 400: an unauthenticated caller learns nothing about the body.
  assertProblem(t, await call(h, 'POST', '/admin/users', { key: 'nope', body: { bogus: true } }), 'unauthenticated', { detail });
  t.equal((await call(h, 'GET', '/admin/users', { key: OPS_KEY })).status, 200, 'the first key works');
  t.equal((await call(h, 'GET', '/admin/users', { key: CI_KEY })).status, 200, 'the second key works');
  const lower = await h.app.inject({ method: 'GET', url: '/admin/users', headers: { authorization: `bearer ${CI_KEY}` } });
  t.equal(lower.statusCode, 200, 'the scheme is case-insensitive');
  // An admin key is not a user credential.
  assertProblem(t, await get(h.app, '/me', OPS_KEY), 'unauthenticated');

  const spec = (await get(h.app, '/openapi.json')).body;
  t.same(spec.components.securitySchemes.adminApiKey, { type: 'http', scheme: 'bearer', description: spec.components.securitySchemes.adminApiKey.description });
  t.ok(spec.tags.some((tag: { name: string }) => tag.name === 'Admin'), 'an Admin tag');
  const adminOps = Object.entries(spec.paths)
    .filter(([p]) => p.startsWith('/admin'))
    .flatMap(([, ops]) => Object.values(ops as Record<string, { tags: string[]; security: unknown; responses: Record<string, unknown> }>));
  t.ok(adminOps.length >= 15, `${adminOps.length} admin operations`);
  for (const op of adminOps) {
    t.same(op.tags, ['Admin']);
    t.same(op.security, [{ adminApiKey: [] }]);
    t.ok(op.responses['401'], 'documents 401');
  }
});

t.test('an admin key never appears in the log', async (t) => {
  const db = await makeDatabase(t);
  const lines: string[] = [];
  const config: Readonly<Config> = loadConfig({
    ADMIN_API_KEYS: KEYS,
    LOG_LEVEL: 'trace',
    DATA_DIR: '/tmp',
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_ITERATIONS: '1',
  });
  const app = await buildApp(config, db, { logStream: { write: (line) => void lines.push(line) } });
  await app.ready();
  t.teardown(() => app.close());
  await app.inject({ method: 'GET', url: '/admin/users', headers: { authorization: `Bearer ${OPS_KEY}` } });
  await app.inject({ method: 'GET', url: '/admin/users', headers: { authorization: `Bearer ${OPS_KEY}x` } });
  await app.inject({ method: 'POST', url: '/admin/users', headers: { authorization: `Bearer ${CI_KEY}` }, payload: { email: 'x' } });
  t.ok(lines.length > 3, `the requests were logged (${lines.length} lines)`);
  t.ok(lines.some((l) => l.includes('admin_auth_failed')), 'the failed attempt is logged');
  const secretParts = [OPS_KEY, CI_KEY, OPS_KEY.slice(8, 30), CI_KEY.slice(8, 30)];
  t.same(lines.filter((l) => secretParts.some((s) => l.includes(s))), [], 'no line holds a key or part of one');
});

t.test('the admin API is rate limited per client, wrong keys included', async (t) => {
  const h = await buildTestApp(t, { env: { ADMIN_API_KEYS: KEYS, ADMIN_RATE_LIMIT_MAX: '3' } });
  for (let i = 0; i < 3; i++) t.equal((await call(h, 'GET', '/admin/users', { key: i === 1 ? 'wrong' : OPS_KEY })).status, i === 1 ? 401 : 200);
  const limited = await call(h, 'GET', '/admin/users', { key: 'wrong' });
  assertProblem(t, limited, 'rate_limited', { detail: /Too many requests/ });
  t.ok(limited.headers['retry-after'], 'Retry-After');
  assertProblem(t, await call(h, 'GET', '/admin/users'), 'rate_limited', { detail: /Too many requests/, label: 'a right key too' });
});

t.test('GET /admin/users: filters and cursor pagination', async (t) => {
  const h = await buildTestApp(t, { env: { ADMIN_API_KEYS: KEYS } });
  const made: string[] = [];
  for (let i = 0; i < 5; i++) {
    const u = await call(h, 'POST', '/admin/users', {
      body: { email: `Page${i}_x@Example.com`, username: `page${i}_x`, verified: i % 2 === 0 },
    });
    t.equal(u.status, 201, u.raw);
    made.push(u.body.user.id);
    h.clock.advance(1);
  }
  const other = await call(h, 'POST', '/admin/users', { body: { email: 'zed@example.com' } });
  t.equal(other.status, 201);

  // Pages of 2, newest first, every account exactly once.
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const res: Res = await call(h, 'GET', `/admin/users?limit=2${q}`);
    t.equal(res.status, 200, res.raw);
    t.ok(res.body.users.length <= 2);
    seen.push(...res.body.users.map((u: { id: string }) => u.id));
    cursor = res.body.nextCursor;
    pages++;
  } while (cursor && pages < 10);
  t.equal(pages, 3, 'three pages of 2 for 6 accounts');
  t.same(seen, [other.body.user.id, ...made.slice().reverse()], 'newest first, none repeated or skipped');

  const ids = async (query: string) => {
    const res = await call(h, 'GET', `/admin/users?${query}`);
    t.equal(res.status, 200, `${query}: ${res.raw.slice(0, 200)}`);
    return res.body.users.map((u: { id: string }) => u.id).sort();
  };
  t.same(await ids('email=page'), made.slice().sort(), 'email: a case-insensitive prefix');
  t.same(await ids('email=PAGE1'), [made[1]]);
  t.same(await ids('username=Page3'), [made[3]], 'username: a case-insensitive prefix');
  t.same(await ids('email=page_'), [], '_ matches itself, not any character');
  t.same(await ids('email=%25'), [], '% matches itself');
  t.same(await ids('verified=true&email=page'), [made[0], made[2], made[4]].sort());
  t.same(await ids('verified=false&email=page'), [made[1], made[3]].sort());
  await call(h, 'POST', `/admin/users/${made[1]}/archive`);
  await call(h, 'POST', `/admin/users/${made[2]}/deactivate`);
  t.same(await ids('archived=true'), [made[1]]);
  t.same(await ids('active=false'), [made[2]]);
  t.same(await ids('archived=false&active=true&email=page'), [made[0], made[3], made[4]].sort());
  const joined = async (i: number) => (await userRow(h, made[i])).dateJoined.toISOString();
  t.same(await ids(`joinedAfter=${await joined(3)}&email=page`), [made[3], made[4]].sort(), 'joinedAfter is inclusive');
  t.same(await ids(`joinedBefore=${await joined(1)}`), [made[0]], 'joinedBefore is exclusive');

  for (const [query, field] of [
    ['limit=0', 'limit'],
    ['limit=201', 'limit'],
    ['limit=abc', 'limit'],
    ['verified=yes', 'verified'],
    ['joinedAfter=yesterday', 'joinedAfter'],
    ['cursor=bm9wZQ', 'cursor'],
    ['unknown=1', 'unknown'],
  ]) {
    assertProblem(t, await call(h, 'GET', `/admin/users?${query}`), 'validation_failed', { label: query, fields: [field] });
  }
});

t.test('admin account management', async (t) => {
  const h = await buildTestApp(t, { env: { ADMIN_API_KEYS: KEYS } });

  await t.test('create: with a password, verified, logs in', async (t) => {
    const u = uniqueUser();
    const res = await call(h, 'POST', '/admin/users', { body: { ...u, password: PASSWORD, verified: true, firstName: 'Ada' } });
    t.equal(res.status, 201, res.raw);
    t.match(res.body.user, { email: u.email, username: u.username, firstName: 'Ada', verified: true, hasPassword: true, isActive: true });
    t.equal((await post(h.app, '/token', { email: u.email, password: PASSWORD })).status, 200);
    assertProblem(t, await call(h, 'POST', '/admin/users', { body: { email: u.email.toUpperCase() } }), 'unique', { fields: ['email'], detail: /already exists/ });
  });

  await t.test('create: passwordless, with the password-set email', async (t) => {
    const u = uniqueUser();
    const res = await call(h, 'POST', '/admin/users', { body: { email: u.email, sendPasswordSetEmail: true } });
    t.equal(res.status, 201, res.raw);
    t.match(res.body.user, { hasPassword: false, verified: false, username: null });
    const mail = await h.mail.waitFor(u.email);
    t.equal((await post(h.app, '/password-set', { token: tokenIn(mail), newPassword1: PASSWORD, newPassword2: PASSWORD })).status, 204);
    t.equal((await post(h.app, '/token', { email: u.email, password: PASSWORD })).status, 200);
  });

  await t.test('create: unverified, with the activation email', async (t) => {
    const u = uniqueUser();
    const res = await call(h, 'POST', '/admin/users', { body: { ...u, password: PASSWORD, sendActivationEmail: true } });
    t.equal(res.status, 201);
    const mail = await h.mail.waitFor(u.email);
    t.equal((await post(h.app, '/verify-account', { token: tokenIn(mail) })).status, 204);
    t.equal((await userRow(h, res.body.user.id)).verified, true);
  });

  await t.test('create: bad input', async (t) => {
    const u = uniqueUser();
    assertProblem(t, await call(h, 'POST', '/admin/users', { body: {} }), 'validation_failed', { fields: ['nonFieldErrors'] });
    assertProblem(t, await call(h, 'POST', '/admin/users', { body: { ...u, password: '123' } }), 'validation_failed', {
      fields: ['password'],
      fieldCodes: { password: 'password_too_short' },
    });
    assertProblem(t, await call(h, 'POST', '/admin/users', { body: { ...u, password: u.username } }), 'validation_failed', {
      fieldCodes: { password: 'password_too_similar' },
    });
    assertProblem(t, await call(h, 'POST', '/admin/users', { body: { username: u.username, sendActivationEmail: true } }), 'validation_failed', {
      fields: ['sendActivationEmail'],
    });
    assertProblem(t, await call(h, 'POST', '/admin/users', { body: { ...u, verified: true, sendActivationEmail: true } }), 'validation_failed', {
      fields: ['sendActivationEmail'],
    });
    assertProblem(t, await call(h, 'POST', '/admin/users', { body: { ...u, password: PASSWORD, sendPasswordSetEmail: true } }), 'validation_failed', {
      fields: ['sendPasswordSetEmail'],
    });
    assertProblem(t, await call(h, 'POST', '/admin/users', { body: { ...u, isActive: false } }), 'validation_failed', { fields: ['isActive'] });
    assertProblem(t, await call(h, 'POST', '/admin/users', { body: { ...u, verified: 'true' } }), 'validation_failed', { fields: ['verified'] });
  });

  await t.test('get, patch, delete', async (t) => {
    const user = await verifiedUser(h);
    const got = await call(h, 'GET', `/admin/users/${user.user.id}`);
    t.equal(got.status, 200);
    t.equal(got.body.user.email, user.email);
    t.notOk('passwordHash' in got.body.user, 'no hash');
    const missing = '00000000-0000-4000-8000-000000000000';
    assertProblem(t, await call(h, 'GET', `/admin/users/${missing}`), 'user_not_found');
    assertProblem(t, await call(h, 'GET', '/admin/users/not-a-uuid'), 'validation_failed', { fields: ['id'] });

    // A reset link sent to the old address dies with the email change.
    await post(h.app, '/send-password-reset-email', { email: user.email });
    const resetMail = await h.mail.waitForSubject(user.email, (await h.mail.waitFor(user.email, 2)).subject!, 1);
    const fresh = uniqueUser();
    const patched = await call(h, 'PATCH', `/admin/users/${user.user.id}`, { body: { email: fresh.email, lastName: 'Lovelace' } });
    t.equal(patched.status, 200, patched.raw);
    t.match(patched.body.user, { email: fresh.email, lastName: 'Lovelace', verified: true, username: user.username });
    assertProblem(t, await post(h.app, '/password-reset', { token: tokenIn(resetMail), newPassword1: 'another pass phrase 9', newPassword2: 'another pass phrase 9' }), 'invalid_token');
    t.equal((await post(h.app, '/token', { email: fresh.email, password: PASSWORD })).status, 200, 'logs in with the new email');
    const same = await call(h, 'PATCH', `/admin/users/${user.user.id}`, { body: {} });
    t.equal(same.status, 200, 'an empty patch changes nothing');
    const other = await registerUser(h.app);
    assertProblem(t, await call(h, 'PATCH', `/admin/users/${user.user.id}`, { body: { username: other.username.toUpperCase() } }), 'unique', { fields: ['username'], detail: /already exists/ });
    assertProblem(t, await call(h, 'PATCH', `/admin/users/${user.user.id}`, { body: { verified: false } }), 'validation_failed', { fields: ['verified'] });
    assertProblem(t, await call(h, 'PATCH', `/admin/users/${missing}`, { body: { firstName: 'x' } }), 'user_not_found');

    const del = await call(h, 'DELETE', `/admin/users/${user.user.id}`);
    t.equal(del.status, 204);
    t.notOk(await userRow(h, user.user.id), 'gone');
    assertProblem(t, await get(h.app, '/me', user.token), 'unauthenticated');
    assertProblem(t, await call(h, 'DELETE', `/admin/users/${user.user.id}`), 'user_not_found');
  });

  await t.test('verify, archive, unarchive, deactivate, reactivate, logout', async (t) => {
    const reg = await registerUser(h.app);
    const id = reg.user.id;
    const activation = await h.mail.waitFor(reg.email);
    const verified = await call(h, 'POST', `/admin/users/${id}/verify`);
    t.equal(verified.status, 200);
    t.equal(verified.body.user.verified, true);
    assertProblem(t, await post(h.app, '/verify-account', { token: tokenIn(activation) }), 'already_verified');
    t.equal((await call(h, 'POST', `/admin/users/${id}/verify`)).status, 200, 'idempotent');

    const login = async () => (await post(h.app, '/token', { email: reg.email, password: PASSWORD })).body;
    let s = await login();
    const archived = await call(h, 'POST', `/admin/users/${id}/archive`);
    t.equal(archived.body.user.archived, true);
    assertProblem(t, await get(h.app, '/me', s.token), 'unauthenticated', { label: 'archive ends sessions' });
    assertProblem(t, await post(h.app, '/token/refresh', { refreshToken: s.refreshToken }), 'invalid_token');
    t.equal((await call(h, 'POST', `/admin/users/${id}/unarchive`)).body.user.archived, false);

    s = await login();
    const off = await call(h, 'POST', `/admin/users/${id}/deactivate`);
    t.equal(off.body.user.isActive, false);
    assertProblem(t, await get(h.app, '/me', s.token), 'unauthenticated', { label: 'deactivate ends sessions' });
    assertProblem(t, await post(h.app, '/token', { email: reg.email, password: PASSWORD }), 'invalid_credentials');
    assertProblem(t, await call(h, 'POST', `/admin/users/${id}/send-password-reset`), 'account_inactive');
    t.equal((await call(h, 'POST', `/admin/users/${id}/deactivate`)).status, 200, 'idempotent');
    const on = await call(h, 'POST', `/admin/users/${id}/reactivate`);
    t.equal(on.body.user.isActive, true);
    s = await login();
    t.ok(s.token, 'logs in again after reactivation');

    const second = await login();
    const out = await call(h, 'POST', `/admin/users/${id}/logout`);
    t.same(out.body, { sessionsEnded: 2 });
    for (const x of [s, second]) assertProblem(t, await get(h.app, '/me', x.token), 'unauthenticated', { label: 'logout' });
    t.same((await call(h, 'POST', `/admin/users/${id}/logout`)).body, { sessionsEnded: 0 });

    const missing = '00000000-0000-4000-8000-000000000000';
    for (const action of ['verify', 'archive', 'unarchive', 'deactivate', 'reactivate', 'logout', 'send-password-reset']) {
      assertProblem(t, await call(h, 'POST', `/admin/users/${missing}/${action}`), 'user_not_found', { label: action });
    }
  });

  await t.test('send-password-reset', async (t) => {
    const user = await verifiedUser(h);
    const res = await call(h, 'POST', `/admin/users/${user.user.id}/send-password-reset`);
    t.equal(res.status, 202);
    const mail = await h.mail.waitFor(user.email, 2);
    const reset = await post(h.app, '/password-reset', { token: tokenIn(mail), newPassword1: 'another pass phrase 9', newPassword2: 'another pass phrase 9' });
    t.equal(reset.status, 204);
    const noEmail = await call(h, 'POST', '/admin/users', { body: { username: uniqueUser().username } });
    assertProblem(t, await call(h, 'POST', `/admin/users/${noEmail.body.user.id}/send-password-reset`), 'no_email_address');
  });
});

t.test('admin outbox: list, requeue a failed email, cancel a pending one', async (t) => {
  const h = await buildTestApp(t, { env: { ADMIN_API_KEYS: KEYS } });
  // A sent activation email, marked failed as the worker marks a permanently refused one.
  const reg = await registerUser(h.app);
  await outboxSettled(h);
  const [first] = await h.db.db.select().from(outbox).where(eq(outbox.recipient, reg.email));
  await h.db.db.update(outbox).set({ status: 'failed', lastError: '550 no such user' }).where(eq(outbox.id, first.id));

  const failed = await call(h, 'GET', '/admin/outbox?status=failed');
  t.equal(failed.status, 200, failed.raw);
  t.same(failed.body.emails.map((e: { id: number }) => e.id), [first.id]);
  t.match(failed.body.emails[0], { recipient: reg.email, kind: 'activation', status: 'failed', lastError: '550 no such user' });
  t.notOk('text' in failed.body.emails[0] || 'html' in failed.body.emails[0], 'never the bodies');

  const requeued = await call(h, 'POST', `/admin/outbox/${first.id}/requeue`);
  t.equal(requeued.status, 200, requeued.raw);
  t.match(requeued.body.email, { status: 'pending', attempts: 0, lastError: null });
  await h.mail.waitFor(reg.email, 2);
  await outboxSettled(h);
  assertProblem(t, await call(h, 'POST', `/admin/outbox/${first.id}/requeue`), 'email_not_failed');
  assertProblem(t, await call(h, 'POST', `/admin/outbox/${first.id}/cancel`), 'email_not_pending');
  assertProblem(t, await call(h, 'POST', '/admin/outbox/999999/requeue'), 'email_not_found');
  assertProblem(t, await call(h, 'POST', '/admin/outbox/abc/cancel'), 'validation_failed', { fields: ['id'] });
  assertProblem(t, await call(h, 'GET', '/admin/outbox?status=lost'), 'validation_failed', { fields: ['status'] });

  // A pending email (not due yet) is cancelled: never sent, its token erased.
  await h.db.db.insert(outbox).values({ recipient: 'later@example.com', kind: 'activation', subject: 's', text: 'secret link', html: 'secret link', nextAttemptAt: new Date(Date.now() + 3_600_000) });
  const [pending] = (await call(h, 'GET', '/admin/outbox?status=pending')).body.emails;
  const cancelled = await call(h, 'POST', `/admin/outbox/${pending.id}/cancel`);
  t.equal(cancelled.status, 200);
  t.equal(cancelled.body.email.status, 'cancelled');
  const [row] = await h.db.db.select().from(outbox).where(eq(outbox.id, pending.id));
  t.same([row.text, row.html], ['', ''], 'bodies erased');

  // Pagination over the outbox.
  const all: number[] = [];
  let cursor: string | null = null;
  do {
    const res: Res = await call(h, 'GET', `/admin/outbox?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
    all.push(...res.body.emails.map((e: { id: number }) => e.id));
    cursor = res.body.nextCursor;
  } while (cursor);
  const ids = (await h.db.db.select({ id: outbox.id }).from(outbox)).map((r) => r.id).sort((a, b) => b - a);
  t.same(all, ids, 'every email once, newest first');
});

t.test('every authenticated admin call is an admin.<action> event with the key id; changes are account events', async (t) => {
  const h = await buildTestApp(t, { env: { ADMIN_API_KEYS: KEYS }, captureLogs: true });
  const events = async (type: string, n = 1) => {
    for (let i = 0; i < 100 && h.logs.filter((l) => l.event === type).length < n; i++) await new Promise((r) => setTimeout(r, 20));
    return h.logs.filter((l) => l.event === type);
  };
  const user = await verifiedUser(h);
  const id = user.user.id;

  await call(h, 'GET', '/admin/users?limit=5');
  t.match(await events('admin.list_users'), [{ userId: null, detail: { keyId: 'ops', status: 200 } }]);
  await call(h, 'GET', `/admin/users/${id}`, { key: CI_KEY });
  t.match(await events('admin.get_user'), [{ userId: id, detail: { keyId: 'ci', status: 200 } }], 'the key that called');

  await call(h, 'POST', `/admin/users/${id}/deactivate`, { body: undefined });
  t.match(await events('admin.deactivate_user'), [{ userId: id, detail: { keyId: 'ops', status: 200 } }]);
  t.match(await events('account_deactivated'), [{ userId: id, detail: { by: 'admin', keyId: 'ops' } }]);
  await call(h, 'POST', `/admin/users/${id}/deactivate`);
  t.equal((await events('admin.deactivate_user', 2)).length, 2, 'a repeated call is audited');
  t.equal((await events('account_deactivated')).length, 1, 'but changed nothing, so no second account event');
  await call(h, 'POST', `/admin/users/${id}/reactivate`);
  t.match(await events('account_reactivated'), [{ userId: id, detail: { by: 'admin', keyId: 'ops' } }]);
  await call(h, 'POST', `/admin/users/${id}/archive`);
  await call(h, 'POST', `/admin/users/${id}/unarchive`);
  t.match(await events('account_unarchived'), [{ userId: id }]);
  await call(h, 'POST', `/admin/users/${id}/logout`);
  t.match(await events('logged_out'), [{ userId: id, detail: { by: 'admin', scope: 'all' } }]);
  const created = await call(h, 'POST', '/admin/users', { body: { email: uniqueUser().email, verified: true } });
  t.match(await events('admin.create_user'), [{ userId: created.body.user.id, detail: { keyId: 'ops', status: 201 } }], 'the created account');
  t.match((await events('registered')).filter((l) => l.userId === created.body.user.id), [{ actor: 'admin:ops', detail: { by: 'admin', verified: true, hasPassword: false } }]);
  await call(h, 'PATCH', `/admin/users/${id}`, { body: { email: uniqueUser().email } });
  t.match(await events('email_changed'), [{ userId: id, detail: { by: 'admin' } }]);
  await call(h, 'DELETE', `/admin/users/${created.body.user.id}`);
  t.match(await events('account_deleted'), [{ userId: created.body.user.id, detail: { by: 'admin', deactivated: false } }]);

  // Refusals are audited with their code; a call without a valid key is not an admin event.
  const missing = '00000000-0000-4000-8000-000000000000';
  await call(h, 'POST', `/admin/users/${missing}/verify`);
  t.match(await events('admin.verify_user'), [{ userId: missing, detail: { keyId: 'ops', status: 404, code: 'user_not_found' } }]);
  await call(h, 'POST', '/admin/outbox/999/requeue');
  t.match(await events('admin.requeue_email'), [{ detail: { status: 404, code: 'email_not_found', emailId: 999 } }]);
  const before = h.logs.filter((l) => String(l.event).startsWith('admin.')).length;
  await call(h, 'GET', '/admin/users', { key: 'wrong-key' });
  await new Promise((r) => setTimeout(r, 100));
  t.equal(h.logs.filter((l) => String(l.event).startsWith('admin.')).length, before, 'no admin event for a wrong key');
  for (const l of h.logs) t.notOk(JSON.stringify(l).includes(OPS_KEY) || JSON.stringify(l).includes(CI_KEY), 'no key in any line');
});
