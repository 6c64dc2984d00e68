// The audit log (auth_events, services/audit-log.ts) and GET /admin/events: filters, cursor
// pagination, bad filters as 400s, append-only in the database, purged after AUDIT_RETENTION.
// Rows are written here by writeAuditEvent, the function recordEvent calls in the caller's
// transaction (a rolled-back transaction leaves no row: proven below).
import t from 'tap';
import { authEvents } from '../src/db/schema.js';
import { type AuditRecord, purgeAuditEvents, writeAuditEvent } from '../src/services/audit-log.js';
import { AUDIT_EVENTS } from '../src/services/events.js';
import { assertProblem, buildTestApp, outboxSettled, safeJson, type TestApp, tokenIn } from './helpers.js';

const ADMIN = 'ops-key-0123456789abcdefghijklmnopqrstuvwxyz';
const USER_A = '11111111-1111-4111-8111-111111111111';
const USER_B = '22222222-2222-4222-8222-222222222222';

async function events(h: TestApp, query = '', key = ADMIN) {
  const res = await h.app.inject({ method: 'GET', url: `/admin/events${query}`, headers: { authorization: `Bearer ${key}` } });
  return { status: res.statusCode, headers: res.headers, body: res.body ? safeJson(res.body) : undefined, raw: res.body };
}

/** The events of a page, without the admin.list_events rows this test's own reads of the log add. */
const recorded = <E extends { type: string }>(body: { events: E[] }) => body.events.filter((e) => e.type !== 'admin.list_events');

t.test('GET /admin/events', async (t) => {
  const h = await buildTestApp(t, { env: { ADMIN_API_KEYS: `ops:${ADMIN}` } });
  const client = { ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (audit test)', requestId: 'req-1' };
  const record = (type: string, userId: string | null, extra: Partial<AuditRecord> = {}) =>
    writeAuditEvent(h.db.db, { type, userId, client, requestId: client.requestId, at: h.clock.now(), ...extra });
  const t0 = h.clock.now();
  await record('registered', USER_A, { detail: { passwordless: false }, at: t0 });
  h.clock.advance(10);
  await record('login_failed', USER_A, { reason: 'wrong_password' });
  h.clock.advance(10);
  await record('login_failed', null, { reason: 'unknown_account' });
  h.clock.advance(10);
  await record('login_succeeded', USER_A, { sessionId: '33333333-3333-4333-8333-333333333333' });
  h.clock.advance(10);
  await record('admin.user_deactivated', USER_B, { actor: 'admin:ops', client: null });

  // A transaction that rolls back leaves no event: the row is written with the change or not at all.
  await h.db.db
    .transaction(async (tx) => {
      await writeAuditEvent(tx, { type: 'registered', userId: USER_B, client, at: h.clock.now() });
      throw new Error('the change failed');
    })
    .catch(() => {});

  const all = await events(h);
  t.equal(all.status, 200);
  t.same(
    all.body.events.map((e: { type: string }) => e.type),
    ['admin.user_deactivated', 'login_succeeded', 'login_failed', 'login_failed', 'registered'],
    'newest first; nothing from the rolled-back transaction',
  );
  t.equal(all.body.nextCursor, null);
  const registered = all.body.events.at(-1);
  t.same(Object.keys(registered).sort(), ['actor', 'clientAddress', 'createdAt', 'detail', 'id', 'reason', 'requestId', 'sessionId', 'type', 'userAgent', 'userId']);
  t.equal(registered.clientAddress, '203.0.113.7');
  t.equal(registered.userAgent, 'Mozilla/5.0 (audit test)');
  t.equal(registered.requestId, 'req-1');
  t.same(registered.detail, { passwordless: false });
  t.equal(registered.createdAt, t0.toISOString());
  t.match(registered.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  t.equal(all.body.events[0].actor, 'admin:ops', 'an admin action names the key id');

  t.test('filters: userId, type, since (inclusive), until (exclusive)', async (t) => {
    t.same((await events(h, `?userId=${USER_A}`)).body.events.map((e: { type: string }) => e.type), ['login_succeeded', 'login_failed', 'registered']);
    t.same(
      (await events(h, '?type=login_failed')).body.events.map((e: { userId: string | null; reason: string }) => [e.userId, e.reason]),
      [[null, 'unknown_account'], [USER_A, 'wrong_password']],
    );
    t.same((await events(h, `?type=login_failed&userId=${USER_A}`)).body.events.length, 1);
    t.same((await events(h, '?type=admin.user_deactivated')).body.events.length, 1, 'an admin.<action> type');
    const at = (s: number) => encodeURIComponent(new Date(t0.getTime() + s * 1000).toISOString());
    t.same((await events(h, `?since=${at(10)}&until=${at(30)}`)).body.events.map((e: { reason: string }) => e.reason), ['unknown_account', 'wrong_password']);
    t.same((await events(h, `?until=${at(0)}`)).body.events, [], 'until excludes its instant');
    t.same(recorded((await events(h, `?since=${at(40)}`)).body).length, 1, 'since includes its instant');
  });

  t.test('cursor pagination walks every event once, newest first', async (t) => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Awaited<ReturnType<typeof events>> = await events(h, `?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      t.equal(page.status, 200);
      t.ok(page.body.events.length <= 2);
      seen.push(...recorded<{ type: string; id: string }>(page.body).map((e) => e.id));
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor && pages < 20);
    t.ok(pages >= 3, 'several pages (the reads of the log are in it too)');
    t.same(seen, all.body.events.map((e: { id: string }) => e.id), 'the pages, concatenated, are the whole log');
    const filtered = await events(h, `?userId=${USER_A}&limit=2`);
    const next = await events(h, `?userId=${USER_A}&limit=2&cursor=${filtered.body.nextCursor}`);
    t.same(next.body.events.map((e: { type: string }) => e.type), ['registered'], 'a cursor keeps to the filter it is used with');
  });

  t.test('bad filters are 400s; a wrong key is 401', async (t) => {
    for (const q of ['?userId=nope', '?since=yesterday', '?until=2026-13-45T00:00:00Z', '?limit=0', '?limit=201', '?limit=ten', '?type=DROP%20TABLE', '?color=red']) {
      assertProblem(t, await events(h, q), 'validation_failed', { label: q });
    }
    for (const cursor of [Buffer.from('[-1]').toString('base64url'), 'not-a-cursor', Buffer.from('["x"]').toString('base64url')]) {
      assertProblem(t, await events(h, `?cursor=${cursor}`), 'validation_failed', { detail: 'The cursor is not one this API returned.' });
    }
    assertProblem(t, await events(h, '', 'wrong-key-0123456789abcdefghijklmnopqrstuv'), 'unauthenticated', { detail: 'A valid admin API key is required.' });
  });

  t.test('append-only: the database refuses to change a recorded event', async (t) => {
    const err = await h.db.db.update(authEvents).set({ type: 'forged' }).then(() => undefined, (e) => e);
    t.match(String(err?.cause?.message ?? err?.message), /auth_events is append-only/, 'the update is refused');
    t.equal((await events(h, '?type=forged')).body.events.length, 0);
  });

  t.test('purged after AUDIT_RETENTION (90 days) by housekeeping', async (t) => {
    t.equal(h.config.auditRetention, 90 * 86400, 'the default');
    t.equal(await purgeAuditEvents(h.db.db, h.clock.now(), h.config.auditRetention), 0, 'nothing is 90 days old yet');
    h.clock.advance(h.config.auditRetention - 3600);
    await record('login_failed', USER_A, { reason: 'wrong_password' });
    h.clock.advance(3600 + 60);
    t.ok((await purgeAuditEvents(h.db.db, h.clock.now(), h.config.auditRetention, 2)) >= 5, 'the old events go, in batches');
    t.same(recorded((await events(h)).body).length, 1, 'the recent one stays');
  });
});

t.test('GET /admin/events does not exist without ADMIN_API_KEYS', async (t) => {
  const h = await buildTestApp(t);
  assertProblem(t, await events(h), 'not_found');
});

// Through HTTP only: every event type of issue 12 (item 3) reaches auth_events, written by the
// services' recordEvent in the change's transaction, with the client's address and user agent;
// every admin call is an admin.<action> event naming the key's id, never the key.
t.test('every event type of the issue lands in auth_events, through the API', async (t) => {
  const h = await buildTestApp(t, {
    env: { ADMIN_API_KEYS: `ops:${ADMIN}`, UPDATE_FIELDS: 'firstName,lastName,email', JWT_LONG_RUNNING_REFRESH_TOKEN: 'true', REFRESH_TOKEN_REUSE_INTERVAL: '0' },
  });
  const ua = 'events-test/1.0';
  const send = async (method: 'POST' | 'DELETE', url: string, body?: object, token?: string) => {
    const res = await h.app.inject({
      method,
      url,
      ...(body ? { payload: body } : {}),
      headers: { 'user-agent': ua, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    return { status: res.statusCode, body: res.body ? safeJson(res.body) : undefined, raw: res.body };
  };
  const PASSWORD = 'correct horse battery staple';
  const email = `events-${Date.now()}@example.com`;

  const registration = await send('POST', '/register', { email, username: `ev${Date.now()}`, password1: PASSWORD, password2: PASSWORD });
  t.equal(registration.status, 201);
  const activation = await h.mail.waitFor(email);
  t.equal((await send('POST', '/verify-account', { token: tokenIn(activation) })).status, 204);
  t.equal((await send('POST', '/token', { email, password: 'not the password at all' })).status, 401);
  const login = await send('POST', '/token', { email, password: PASSWORD });
  t.equal(login.status, 200, login.raw);
  const userId = login.body.user.id as string;
  const sid = login.body.payload.sid as string;
  // A spent refresh token presented again (REFRESH_TOKEN_REUSE_INTERVAL=0): theft, the session ends.
  t.equal((await send('POST', '/token/refresh', { refreshToken: login.body.refreshToken })).status, 200);
  t.equal((await send('POST', '/token/refresh', { refreshToken: login.body.refreshToken })).status, 400);
  const a = (await send('POST', '/token', { email, password: PASSWORD })).body;
  const b = (await send('POST', '/token', { email, password: PASSWORD })).body;
  t.equal((await send('DELETE', `/sessions/${b.payload.sid}`, undefined, a.token)).status, 204);
  t.equal((await send('POST', '/token/revoke', { refreshToken: a.refreshToken })).status, 200);
  const c = (await send('POST', '/token', { email, password: PASSWORD })).body;
  const newPassword = 'another long passphrase';
  t.equal((await send('POST', '/password-change', { oldPassword: PASSWORD, newPassword1: newPassword, newPassword2: newPassword }, c.token)).status, 200);
  await send('POST', '/send-password-reset-email', { email });
  const resetMail = await h.mail.waitForSubject(email, 'Reset your password');
  t.equal((await send('POST', '/password-reset', { token: tokenIn(resetMail), newPassword1: PASSWORD, newPassword2: PASSWORD })).status, 204);
  const d = (await send('POST', '/token', { email, password: PASSWORD })).body;
  const newEmail = `events-new-${Date.now()}@example.com`;
  t.equal((await send('POST', '/update-account', { email: newEmail, password: PASSWORD }, d.token)).status, 200);
  const confirm = await h.mail.waitForSubject(newEmail, 'Confirm your new email address');
  t.equal((await send('POST', '/confirm-email-change', { token: tokenIn(confirm) })).status, 204);
  const e = (await send('POST', '/token', { email: newEmail, password: PASSWORD })).body;
  t.equal((await send('POST', '/sessions/revoke', { scope: 'all' }, e.token)).status, 204);
  const f = (await send('POST', '/token', { email: newEmail, password: PASSWORD })).body;
  t.equal((await send('POST', '/archive-account', { password: PASSWORD }, f.token)).status, 204);
  const g = await send('POST', '/token', { email: newEmail, password: PASSWORD });
  t.equal(g.body.unarchiving, true, 'a login unarchives');
  const admin = (method: 'GET' | 'POST' | 'DELETE', url: string, body?: object) =>
    h.app.inject({ method, url, ...(body ? { payload: body } : {}), headers: { authorization: `Bearer ${ADMIN}`, 'user-agent': 'ops-console' } });
  t.equal((await admin('POST', `/admin/users/${userId}/deactivate`)).statusCode, 200);
  t.equal((await admin('POST', `/admin/users/${userId}/reactivate`)).statusCode, 200);
  const other = `events-set-${Date.now()}@example.com`;
  const created = await admin('POST', '/admin/users', { email: other, sendPasswordSetEmail: true });
  t.equal(created.statusCode, 201, created.body);
  const setMail = await h.mail.waitFor(other);
  t.equal((await send('POST', '/password-set', { token: tokenIn(setMail), newPassword1: PASSWORD, newPassword2: PASSWORD })).status, 204);
  const h2 = (await send('POST', '/token', { email: newEmail, password: PASSWORD })).body;
  t.equal((await send('POST', '/delete-account', { password: PASSWORD }, h2.token)).status, 204);
  t.equal((await admin('GET', '/admin/users/00000000-0000-4000-8000-000000000000')).statusCode, 404);
  t.equal((await h.app.inject({ method: 'GET', url: '/admin/users', headers: { authorization: 'Bearer wrong-key-0123456789abcdefghijklmnopqrstuv' } })).statusCode, 401);
  await outboxSettled(h);

  // The whole log, oldest first.
  const all: Record<string, any>[] = [];
  let cursor: string | null = null;
  do {
    const page: Awaited<ReturnType<typeof events>> = await events(h, `?limit=200${cursor ? `&cursor=${cursor}` : ''}`);
    t.equal(page.status, 200);
    all.push(...page.body.events);
    cursor = page.body.nextCursor;
  } while (cursor);
  all.reverse();
  const mine = all.filter((ev) => ev.userId === userId && !ev.type.startsWith('admin.'));
  t.same(
    mine.map((ev) => ev.type),
    [
      'registered',
      'verified',
      'login_failed',
      'login_succeeded',
      'refresh_reuse_detected',
      'login_succeeded',
      'login_succeeded',
      'session_revoked',
      'logged_out',
      'login_succeeded',
      'password_changed',
      'password_reset',
      'login_succeeded',
      'email_change_requested',
      'email_changed',
      'login_succeeded',
      'logged_out',
      'login_succeeded',
      'account_archived',
      'login_succeeded',
      'account_unarchived',
      'account_deactivated',
      'account_reactivated',
      'login_succeeded',
      'account_deleted',
    ],
    "the account's history, in order",
  );
  const types = new Set(all.map((ev) => ev.type));
  for (const type of [
    'registered', 'verified', 'login_succeeded', 'login_failed', 'refresh_reuse_detected', 'logged_out', 'session_revoked',
    'password_changed', 'password_reset', 'password_set', 'email_change_requested', 'email_changed', 'account_archived',
    'account_unarchived', 'account_deactivated', 'account_reactivated', 'account_deleted',
  ]) {
    t.ok(types.has(type), `${type} is recorded`);
  }
  t.same([...types].filter((type) => !type.startsWith('admin.') && !AUDIT_EVENTS.includes(type as never)), [], 'no type outside the issue\'s list');

  const by = (type: string) => mine.filter((ev) => ev.type === type);
  t.match(by('login_failed')[0], { reason: 'wrong_password', clientAddress: '127.0.0.1', userAgent: ua, actor: null });
  t.match(by('login_failed')[0].requestId, /\S/, 'the request id');
  // Written by the registration's one statement (services/register-statement.ts).
  t.match(by('registered')[0], { detail: { hasPassword: true }, clientAddress: '127.0.0.1', userAgent: ua, actor: null, reason: null, requestId: /\S/ });
  t.equal(by('registered')[0].sessionId, registration.body.payload.sid, 'registration logs in: its session');
  t.equal(by('login_succeeded')[0].sessionId, sid);
  // Written by the login's one statement (services/login-statement.ts): the same row as any event's.
  t.match(by('login_succeeded')[0], { clientAddress: '127.0.0.1', userAgent: ua, actor: null, reason: null, detail: null, requestId: /\S/ });
  t.equal(by('refresh_reuse_detected')[0].sessionId, sid);
  t.match(by('session_revoked')[0], { sessionId: b.payload.sid });
  t.match(by('logged_out'), [{ sessionId: a.payload.sid }, { detail: { scope: 'all' } }]);
  t.match(by('account_deactivated')[0], { actor: 'admin:ops', clientAddress: '127.0.0.1', userAgent: 'ops-console', detail: { keyId: 'ops' } });
  t.match(all.find((ev) => ev.type === 'password_set'), { userId: created.json().user.id });

  // Admin calls: each one, reads and refusals too, with the key's id; the wrong key is no admin event.
  const adminEvents = all.filter((ev) => ev.type.startsWith('admin.'));
  t.same(
    adminEvents.map((ev) => ev.type),
    ['admin.deactivate_user', 'admin.reactivate_user', 'admin.create_user', 'admin.get_user'],
    'one per authenticated admin call',
  );
  t.match(adminEvents[0], { userId, actor: 'admin:ops', detail: { keyId: 'ops', status: 200 }, userAgent: 'ops-console' });
  t.match(adminEvents[2], { userId: created.json().user.id, detail: { status: 201 } });
  t.match(adminEvents[3], { detail: { status: 404, code: 'user_not_found' } });
  t.notOk(JSON.stringify(all).includes(ADMIN), 'never the key');
  for (const secret of [PASSWORD, newPassword, login.body.refreshToken, login.body.token, tokenIn(resetMail)]) {
    t.notOk(JSON.stringify(all).includes(secret), 'never a secret');
  }
  t.notOk(JSON.stringify(all).includes(newEmail), 'not the new address either');
  // The reads of the log above are admin calls too, recorded after the walk.
  t.ok((await events(h, '?type=admin.list_events')).body.events.length >= 1, 'reading the log is audited');
});
