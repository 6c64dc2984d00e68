// The outbox as an operator sees it: list by status, requeue a failed email, cancel a pending one.
// Beside mail/outbox.ts (the email channel; outbox/worker.ts sends), for the operator's writes to email_outbox. Never returns the
// bodies: until an email is sent they hold a live one-time token.
import { and, desc, eq } from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import { outbox, type OutboxStatus } from '../db/schema.js';
import { AppError } from '../errors.js';
import { dbNow } from '../db/now.js';
import type { Context } from '../services/context.js';
import { newestFirst, withIsoTimes } from '../outbox/admin-pages.js';

export interface OutboxEntry {
  id: number;
  userId: string | null;
  recipient: string;
  kind: string;
  subject: string;
  status: OutboxStatus;
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
  createdAt: string;
  sentAt: string | null;
}

const columns = {
  id: outbox.id,
  userId: outbox.userId,
  recipient: outbox.recipient,
  kind: outbox.kind,
  subject: outbox.subject,
  status: outbox.status,
  attempts: outbox.attempts,
  nextAttemptAt: outbox.nextAttemptAt,
  lastError: outbox.lastError,
  createdAt: outbox.createdAt,
  sentAt: outbox.sentAt,
};

const toEntry = (row: { [K in keyof typeof columns]: (typeof outbox.$inferSelect)[K] }): OutboxEntry => withIsoTimes(row);

/** Newest first, a page at a time (`nextCursor` null on the last page). */
export async function listOutbox(
  ctx: Context,
  f: { status?: OutboxStatus; cursor?: string; limit?: number },
): Promise<{ emails: OutboxEntry[]; nextCursor: string | null }> {
  const { page, nextCursor } = await newestFirst(outbox, f, (where, count) =>
    ctx.db.select(columns).from(outbox).where(where).orderBy(desc(outbox.id)).limit(count),
  );
  return { emails: page.map(toEntry), nextCursor };
}

async function transition(ctx: Context, id: number, from: OutboxStatus, set: PgUpdateSetSource<typeof outbox>): Promise<OutboxEntry> {
  // One conditional UPDATE decides: of two operators (or an operator and the worker) one wins.
  const [row] = await ctx.db
    .update(outbox)
    .set(set)
    .where(and(eq(outbox.id, id), eq(outbox.status, from)))
    .returning(columns);
  if (row) return toEntry(row);
  const [exists] = await ctx.db.select({ id: outbox.id }).from(outbox).where(eq(outbox.id, id));
  if (!exists) throw new AppError('email_not_found');
  throw new AppError(from === 'failed' ? 'email_not_failed' : 'email_not_pending');
}

/**
 * A failed email goes back to the queue as new: attempts from zero, due now. Its link may have
 * expired meanwhile (the email says for how long it is valid); the recipient can ask for another.
 */
export async function requeueEmail(ctx: Context, id: number): Promise<{ email: OutboxEntry }> {
  const email = await transition(ctx, id, 'failed', { status: 'pending', attempts: 0, nextAttemptAt: dbNow(), lastError: null });
  ctx.mailQueued();
  return { email };
}

/**
 * A pending email is not sent: its bodies (and so its one-time token) are erased. An email the
 * worker is handing to the SMTP server at this very moment may still go out (and is then marked sent).
 */
export async function cancelEmail(ctx: Context, id: number): Promise<{ email: OutboxEntry }> {
  return { email: await transition(ctx, id, 'pending', { status: 'cancelled', text: '', html: '' }) };
}
