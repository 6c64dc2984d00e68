// Deletes what can no longer matter, so tables do not grow without bound (django-graphql-jwt's
// `cleartokens`). A day's grace keeps recent history for support; the answers to clients do not
// change: a purged token or session is as invalid as a revoked or expired one. Idempotent, so
// several instances may run it at once.
//
// Cost: each purge deletes in batches of PURGE_BATCH rows, each found through an index
// (schema.ts: sessions_ended_idx, email_tokens_spent_idx, email_outbox_sent_idx/failed_idx) and
// each cascading through indexed foreign keys, so a batch costs the same whatever the table size,
// holds its row locks briefly, and never makes one long transaction that blocks logins
// (scripts/bench-purge.mjs measures it from 10 k to 1 M rows).
import { and, eq, inArray, lt, sql, type SQL } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import { emailTokens, outbox, sessions } from '../db/schema.js';
import type { Db } from '../db/index.js';

const DAY = 86_400_000;
export const PURGE_BATCH = 1000;

export async function purgeStale(
  db: Db,
  at: Date,
  batch = PURGE_BATCH,
): Promise<{ sessions: number; emailTokens: number; emails: number }> {
  const now = at.getTime();
  const dayAgo = new Date(now - DAY);
  // Refresh tokens go with their session (ON DELETE CASCADE, through refresh_tokens_session_id_idx).
  // LEAST skips nulls: "revoked, or expired, more than a day ago" in one indexed expression.
  const deadSessions = await purgeInBatches(db, sessions, sessions.id, lt(sql`least(${sessions.revokedAt}, ${sessions.expiresAt})`, sql`${dayAgo.toISOString()}::timestamptz`), batch);
  const deadTokens = await purgeInBatches(db, emailTokens, emailTokens.id, lt(sql`least(${emailTokens.usedAt}, ${emailTokens.expiresAt})`, sql`${dayAgo.toISOString()}::timestamptz`), batch);
  const sent = await purgeInBatches(db, outbox, outbox.id, and(eq(outbox.status, 'sent'), lt(outbox.sentAt, new Date(now - 7 * DAY)))!, batch);
  const failed = await purgeInBatches(db, outbox, outbox.id, and(eq(outbox.status, 'failed'), lt(outbox.createdAt, new Date(now - 30 * DAY)))!, batch);
  return { sessions: deadSessions, emailTokens: deadTokens, emails: sent + failed };
}

/** Deletes the rows matching `where`, at most `batch` per statement (each its own transaction). */
async function purgeInBatches(db: Db, table: PgTable, id: PgColumn, where: SQL, batch: number): Promise<number> {
  let total = 0;
  for (;;) {
    const ids = db.select({ id }).from(table).where(where).limit(batch);
    const deleted = await db.delete(table).where(inArray(id, ids)).returning({ id });
    total += deleted.length;
    if (deleted.length < batch) return total;
  }
}
