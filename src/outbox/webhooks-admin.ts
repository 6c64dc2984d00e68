// Webhook deliveries as an operator sees them, beside the email outbox (mail/outbox-admin.ts):
// list by status, requeue a failed one. The body is not returned (the receiver has it; the list
// stays small); no secret is ever in it.
import { and, desc, eq } from 'drizzle-orm';
import { dbNow } from '../db/now.js';
import { webhookDeliveries, type WebhookStatus } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { Context } from '../services/context.js';
import { newestFirst, withIsoTimes } from './admin-pages.js';

export interface WebhookEntry {
  id: number;
  eventId: string;
  type: string;
  url: string;
  status: WebhookStatus;
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
  createdAt: string;
  sentAt: string | null;
}

const w = webhookDeliveries;
const columns = {
  id: w.id,
  eventId: w.eventId,
  type: w.type,
  url: w.url,
  status: w.status,
  attempts: w.attempts,
  nextAttemptAt: w.nextAttemptAt,
  lastError: w.lastError,
  createdAt: w.createdAt,
  sentAt: w.sentAt,
};

const toEntry = (row: { [K in keyof typeof columns]: (typeof w.$inferSelect)[K] }): WebhookEntry => withIsoTimes(row);

/** Newest first, a page at a time (`nextCursor` null on the last page). */
export async function listWebhookDeliveries(
  ctx: Context,
  f: { status?: WebhookStatus; cursor?: string; limit?: number },
): Promise<{ deliveries: WebhookEntry[]; nextCursor: string | null }> {
  const { page, nextCursor } = await newestFirst(w, f, (where, count) =>
    ctx.db.select(columns).from(w).where(where).orderBy(desc(w.id)).limit(count),
  );
  return { deliveries: page.map(toEntry), nextCursor };
}

/** A failed delivery goes back to the queue as new: attempts from zero, due now, the same webhook-id. */
export async function requeueWebhookDelivery(ctx: Context, id: number): Promise<{ delivery: WebhookEntry }> {
  // One conditional UPDATE decides: of two operators one wins.
  const [row] = await ctx.db
    .update(w)
    .set({ status: 'pending', attempts: 0, nextAttemptAt: dbNow(), lastError: null })
    .where(and(eq(w.id, id), eq(w.status, 'failed')))
    .returning(columns);
  if (!row) {
    const [exists] = await ctx.db.select({ id: w.id }).from(w).where(eq(w.id, id));
    throw new AppError(exists ? 'webhook_not_failed' : 'webhook_not_found');
  }
  ctx.webhooksQueued();
  return { delivery: toEntry(row) };
}
