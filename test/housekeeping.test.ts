// Housekeeping deletes rows that can no longer matter, and changes no answer a client gets.
import { count, sql } from 'drizzle-orm';
import t from 'tap';
import { emailTokens, outbox, refreshTokens, sessions } from '../src/db/schema.js';
import { purgeStale } from '../src/services/housekeeping.js';
import { buildTestApp, get, post, verifiedUser } from './helpers.js';

t.test('purgeStale removes ended sessions, spent email tokens and old sent email; live ones stay', async (t) => {
  const h = await buildTestApp(t);
  const db = h.db.db;
  const rows = async () => ({
    sessions: (await db.select({ n: count() }).from(sessions))[0].n,
    refreshTokens: (await db.select({ n: count() }).from(refreshTokens))[0].n,
    emailTokens: (await db.select({ n: count() }).from(emailTokens))[0].n,
    outbox: (await db.select({ n: count() }).from(outbox))[0].n,
  });

  const ended = await verifiedUser(h); // register (session 1), verify (token used), login (session 2)
  t.equal((await post(h.app, '/token/revoke', { refreshToken: ended.refreshToken })).status, 200);
  const live = await verifiedUser(h);
  const before = await rows();
  t.same(await purgeStale(db, h.clock.now()), { sessions: 0, emailTokens: 0, emails: 0 }, 'nothing is stale yet');

  // Two days on: the revoked session and the used activation tokens are past the day of grace;
  // the live sessions (7-day refresh lifetime) are not.
  h.clock.advance(2 * 86400);
  const purged = await purgeStale(db, h.clock.now());
  t.equal(purged.sessions, 3, 'the revoked session, and both registration sessions ended by the verifications');
  t.equal(purged.emailTokens, 2, 'both used activation tokens');
  t.equal(purged.emails, 0, 'sent email is kept for a week');
  const after = await rows();
  t.equal(after.sessions, before.sessions - 3);
  t.ok(after.refreshTokens < before.refreshTokens, "the revoked session's refresh tokens went with it");

  // Answers do not change: the revoked refresh token is still refused, the live one still works.
  const refused = await post(h.app, '/token/refresh', { refreshToken: ended.refreshToken });
  t.equal(refused.status, 400);
  t.equal(refused.body.code, 'invalid_token');
  t.equal((await post(h.app, '/token/refresh', { refreshToken: live.refreshToken })).status, 200);

  // Eight days on: every session is past its lifetime, and the sent activation emails are old.
  h.clock.advance(6 * 86400);
  const later = await purgeStale(db, h.clock.now());
  t.ok(later.emails >= 2, 'sent email older than a week');
  t.same(await rows(), { sessions: 0, refreshTokens: 0, emailTokens: 0, outbox: 0 });
  t.equal((await get(h.app, '/me', live.token)).status, 401);
});

t.test('purgeStale deletes in bounded batches until nothing stale is left', async (t) => {
  const h = await buildTestApp(t);
  const db = h.db.db;
  const ended = [];
  for (let i = 0; i < 5; i++) ended.push(await verifiedUser(h, { email: `batch${i}@example.com`, username: `batch${i}` }));
  for (const u of ended) t.equal((await post(h.app, '/token/revoke', { refreshToken: u.refreshToken })).status, 200);
  h.clock.advance(2 * 86400);
  // A batch of 2 over 10 ended sessions (5 revoked, and the 5 registration sessions that each
  // verification ended): five full batches and an empty one, every row gone.
  const purged = await purgeStale(db, h.clock.now(), 2);
  t.equal(purged.sessions, 10, 'the revoked sessions and the registration sessions ended by the verifications');
  t.equal(purged.emailTokens, 5, 'the used activation tokens');
  t.same(await purgeStale(db, h.clock.now(), 2), { sessions: 0, emailTokens: 0, emails: 0 });
});

// Regression: refresh_tokens.session_id had no index, so every session deleted by ON DELETE
// CASCADE (housekeeping, account deletion) scanned the whole refresh_tokens table.
t.test('every foreign key has an index that starts with its columns', async (t) => {
  const h = await buildTestApp(t);
  const result = await h.db.db.execute(sql`
    select c.conrelid::regclass::text as "table", c.conname as "constraint"
    from pg_constraint c
    where c.contype = 'f'
      and not exists (
        select 1 from pg_index i
        where i.indrelid = c.conrelid
          and (i.indkey::int2[])[0:array_length(c.conkey, 1) - 1] = c.conkey
      )`);
  const rows = Array.isArray(result) ? result : (result as unknown as { rows: unknown[] }).rows;
  t.same(rows, [], 'foreign keys without an index');
  const fks = await h.db.db.execute(sql`select count(*)::int as n from pg_constraint where contype = 'f'`);
  const n = (Array.isArray(fks) ? fks : (fks as unknown as { rows: { n: number }[] }).rows)[0] as { n: number };
  t.ok(n.n >= 4, 'the check saw the foreign keys');
});
