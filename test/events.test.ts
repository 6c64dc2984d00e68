// The audit log (auth_events, services/audit-log.ts) and GET /admin/events: filters, cursor
// pagination, bad filters as 400s, append-only in the database, purged after AUDIT_RETENTION.
// Rows are written here by writeAuditEvent, the function recordEvent calls in the caller's
// transaction (a rolled-back transaction leaves no row: proven below).
import t from 'tap';
import { authEvents } from '../src/db/schema.js';
import { type AuditRecord, purgeAuditEvents, writeAuditEvent } from '../src/services/audit-log.js';
import { assertProblem, buildTestApp, safeJson, type TestApp } from './helpers.js';

const ADMIN = 'ops-key-0123456789abcdefghijklmnopqrstuvwxyz';
const USER_A = '11111111-1111-4111-8111-111111111111';
const USER_B = '22222222-2222-4222-8222-222222222222';

async function events(h: TestApp, query = '', key = ADMIN) {
  const res = await h.app.inject({ method: 'GET', url: `/admin/events${query}`, headers: { authorization: `Bearer ${key}` } });
  return { status: res.statusCode, headers: res.headers, body: res.body ? safeJson(res.body) : undefined, raw: res.body };
}

t.test('GET /admin/events', async (t) => {
  const h = await buildTestApp(t, { env: { ADMIN_API_KEYS: `ops:${ADMIN}` } });
  const client = { ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (audit test)', requestId: 'req-1' };
  const record = (type: string, userId: string | null, extra: Partial<AuditRecord> = {}) =>
    writeAuditEvent(h.db.db, { type, userId, client, requestId: client.requestId, at: h.clock.now(), ...extra });
  const t0 = h.clock.now();
  await record('registered', USER_A, { detail: { passwordless: false } });
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
    t.same((await events(h, `?since=${at(40)}`)).body.events.length, 1, 'since includes its instant');
  });

  t.test('cursor pagination walks every event once, newest first', async (t) => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Awaited<ReturnType<typeof events>> = await events(h, `?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      t.equal(page.status, 200);
      t.ok(page.body.events.length <= 2);
      seen.push(...page.body.events.map((e: { id: string }) => e.id));
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor && pages < 20);
    t.equal(pages, 3);
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
    t.equal(await purgeAuditEvents(h.db.db, h.clock.now(), h.config.auditRetention, 2), 5, 'the old events go, in batches');
    t.same((await events(h)).body.events.map((e: { createdAt: string }) => e.createdAt).length, 1, 'the recent one stays');
  });
});

t.test('GET /admin/events does not exist without ADMIN_API_KEYS', async (t) => {
  const h = await buildTestApp(t);
  assertProblem(t, await events(h), 'not_found');
});
