// Housekeeping cost against table size (issue 10 item 2): for 10 k, 100 k and 1 M refresh tokens
// (2 sessions per account, 5 refresh tokens per session, 10 % of sessions revoked two days ago),
// times purgeStale (batched, indexed) and the deletion of one account with 12 sessions, on a fresh
// PostgreSQL database each. Per purged row the cost should not grow with the table.
//   node --import tsx scripts/bench-purge.ts          (BENCH_POSTGRES_URL, SIZES=10000,100000,1000000)
//   WITHOUT_INDEXES=1 …                                 the same without the new indexes (before)
// Each statement is bounded by a 120 s statement_timeout; the databases are dropped.
import { randomBytes } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import postgres from 'postgres';
import { openDatabase } from '../src/db/index.js';
import { users } from '../src/db/schema.js';
import { purgeStale } from '../src/services/housekeeping.js';

const adminUrl = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const sizes = (process.env.SIZES ?? '10000,100000,1000000').split(',').map(Number);
const withoutIndexes = Boolean(process.env.WITHOUT_INDEXES);
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });

console.log(`purgeStale on PostgreSQL, batches of 1,000${withoutIndexes ? ', WITHOUT refresh_tokens_session_id_idx, sessions_ended_idx' : ''}`);
console.log('| refresh tokens | sessions | purged (sessions + their refresh tokens) | purge | µs per purged row | delete an account with 12 sessions |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const tokens of sizes) {
  const name = `purge_${randomBytes(4).toString('hex')}`;
  await admin.unsafe(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = await openDatabase(url.toString(), '');
  const raw = postgres(url.toString(), { max: 1, onnotice: () => {} });
  try {
    await raw`set statement_timeout = '120s'`;
    const accounts = tokens / 10;
    await raw`insert into users (email, username) select 'u' || g || '@example.com', 'u' || g from generate_series(1, ${accounts}) g`;
    await raw`
      insert into sessions (user_id, created_at, expires_at, revoked_at)
      select u.id, now() - interval '3 days', now() + interval '4 days',
             case when random() < 0.1 then now() - interval '2 days' end
      from users u, generate_series(1, 2)`;
    await raw`
      insert into refresh_tokens (session_id, token_hash, created_at)
      select s.id, md5(random()::text) || g || s.id, now() - interval '3 days' from sessions s, generate_series(1, 5) g`;
    // The account to delete: 12 sessions, 60 refresh tokens.
    const [victim] = await raw`insert into users (email, username) values ('victim@example.com', 'victim') returning id`;
    await raw`insert into sessions (user_id, created_at, expires_at) select ${victim.id}, now(), now() + interval '7 days' from generate_series(1, 12)`;
    await raw`insert into refresh_tokens (session_id, token_hash, created_at) select s.id, md5(random()::text) || g || s.id, now() from sessions s, generate_series(1, 5) g where s.user_id = ${victim.id}`;
    if (withoutIndexes) await raw`drop index refresh_tokens_session_id_idx, sessions_ended_idx`;
    await raw`vacuum analyze`;
    const [{ n: sessionCount }] = await raw`select count(*)::int as n from sessions`;
    const [{ n: deadTokens }] = await raw`select count(*)::int as n from refresh_tokens t join sessions s on s.id = t.session_id where s.revoked_at is not null`;

    let purgeCell: string;
    let perRow: string;
    let purgedCell: string;
    const t0 = performance.now();
    try {
      const purged = await purgeStale(database.db, new Date());
      const ms = performance.now() - t0;
      const rows = purged.sessions + deadTokens;
      purgedCell = `${purged.sessions.toLocaleString('en')} + ${deadTokens.toLocaleString('en')}`;
      purgeCell = `${(ms / 1000).toFixed(2)} s`;
      perRow = ((ms * 1000) / rows).toFixed(1);
    } catch (err) {
      purgedCell = `(${deadTokens.toLocaleString('en')} tokens due)`;
      purgeCell = `> ${((performance.now() - t0) / 1000).toFixed(0)} s (${(err as { cause?: { code?: string } }).cause?.code ?? err})`;
      perRow = '—';
    }
    const t1 = performance.now();
    await database.db.delete(users).where(eq(users.id, victim.id));
    const deleteMs = performance.now() - t1;
    await database.db.execute(sql`select 1`);
    console.log(`| ${tokens.toLocaleString('en')} | ${sessionCount.toLocaleString('en')} | ${purgedCell} | ${purgeCell} | ${perRow} | ${deleteMs.toFixed(1)} ms |`);
  } finally {
    await raw.end();
    await database.close();
    await admin.unsafe(`drop database if exists ${name} with (force)`);
  }
}
await admin.end();
