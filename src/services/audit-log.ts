// The audit log (auth_events): written by recordEvent (services/events.ts) through
// writeAuditEvent, in the transaction of the change it records; read by GET /admin/events; purged
// by housekeeping after AUDIT_RETENTION. Append-only: nothing updates a row.
// Never a secret in a row: events carry ids, reasons and small flags, not passwords, tokens,
// hashes or admin keys (an admin action names the key's id).
import { and, desc, eq, gte, inArray, lt, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../db/index.js';
import { authEvents } from '../db/schema.js';
import { decodeCursor, encodeCursor } from '../lib/cursor.js';
import type { Context } from './context.js';

export interface AuditRecord {
  /** The event's id (made by recordEvent: its webhooks' webhook-id too); generated when absent. */
  id?: string;
  type: string;
  userId: string | null;
  sessionId?: string | null;
  /** Who acted, when not the account itself: `admin:<key id>`, `cli`. */
  actor?: string | null;
  reason?: string | null;
  detail?: Record<string, string | number | boolean | null> | null;
  client: { ip: string; userAgent: string | null } | null;
  requestId?: string | null;
  at: Date;
}

/** An audit row keeps this much of its client's user agent (a client chooses it). */
export const AUDIT_USER_AGENT_MAX = 512;

/** Inserts the audit row (in `db`, the caller's transaction when there is a change); its public id and time. */
export async function writeAuditEvent(db: Db | Tx, record: AuditRecord): Promise<{ id: string; createdAt: Date }> {
  const [row] = await db
    .insert(authEvents)
    .values({
      ...(record.id ? { id: record.id } : {}),
      type: record.type,
      userId: record.userId,
      sessionId: record.sessionId ?? null,
      actor: record.actor ?? null,
      reason: record.reason ?? null,
      detail: record.detail ?? null,
      clientAddress: record.client?.ip ?? null,
      userAgent: record.client?.userAgent?.slice(0, AUDIT_USER_AGENT_MAX) ?? null,
      requestId: record.requestId ?? null,
      createdAt: record.at,
    })
    .returning({ id: authEvents.id, createdAt: authEvents.createdAt });
  return row;
}

export interface AuditEventOut {
  id: string;
  type: string;
  userId: string | null;
  sessionId: string | null;
  actor: string | null;
  reason: string | null;
  detail: Record<string, string | number | boolean | null> | null;
  clientAddress: string | null;
  userAgent: string | null;
  requestId: string | null;
  createdAt: string;
}

export interface EventFilter {
  userId?: string;
  type?: string;
  since?: string;
  until?: string;
  cursor?: string;
  limit?: number;
}

const isSeq = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;

export async function listEvents(ctx: Context, f: EventFilter): Promise<{ events: AuditEventOut[]; nextCursor: string | null }> {
  const limit = f.limit ?? 50;
  const where: SQL[] = [];
  if (f.userId) where.push(eq(authEvents.userId, f.userId));
  if (f.type) where.push(eq(authEvents.type, f.type));
  if (f.since) where.push(gte(authEvents.createdAt, new Date(f.since)));
  if (f.until) where.push(lt(authEvents.createdAt, new Date(f.until)));
  if (f.cursor !== undefined) where.push(lt(authEvents.seq, decodeCursor(f.cursor, [isSeq])[0] as number));
  const rows = await ctx.db.select().from(authEvents).where(and(...where)).orderBy(desc(authEvents.seq)).limit(limit + 1);
  const page = rows.slice(0, limit);
  return {
    events: page.map((r) => ({
      id: r.id,
      type: r.type,
      userId: r.userId,
      sessionId: r.sessionId,
      actor: r.actor,
      reason: r.reason,
      detail: r.detail ?? null,
      clientAddress: r.clientAddress,
      userAgent: r.userAgent,
      requestId: r.requestId,
      createdAt: r.createdAt.toISOString(),
    })),
    nextCursor: rows.length > limit ? encodeCursor([page.at(-1)!.seq]) : null,
  };
}

/** Deletes audit rows older than the retention (seconds), in bounded batches (housekeeping). */
export async function purgeAuditEvents(db: Db, at: Date, retention: number, batch = 1000): Promise<number> {
  const before = new Date(at.getTime() - retention * 1000);
  let total = 0;
  for (;;) {
    const seqs = db.select({ seq: authEvents.seq }).from(authEvents).where(lt(authEvents.createdAt, before)).limit(batch);
    const deleted = await db.delete(authEvents).where(inArray(authEvents.seq, seqs)).returning({ seq: authEvents.seq });
    total += deleted.length;
    if (deleted.length < batch) return total;
  }
}
