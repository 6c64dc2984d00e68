// What the operator's views of the delivery tables (mail/outbox-admin.ts: email_outbox,
// outbox/webhooks-admin.ts: webhook_deliveries) share: newest-first pages keyed by id, filtered by
// status, and rows whose times are answered as ISO strings.
import { and, eq, lt, type SQL } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';
import { decodeCursor, encodeCursor } from '../lib/cursor.js';

export interface PageFilter {
  status?: string;
  cursor?: string;
  limit?: number;
}

const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;

/**
 * One page, newest first (`nextCursor` null on the last): `select` runs the table's query with the
 * page's condition and row count (one more than the page, to know whether another follows).
 */
export async function newestFirst<Row extends { id: number }>(
  table: { id: PgColumn; status: PgColumn },
  f: PageFilter,
  select: (where: SQL | undefined, count: number) => Promise<Row[]>,
): Promise<{ page: Row[]; nextCursor: string | null }> {
  const limit = f.limit ?? 50;
  const where: SQL[] = [];
  if (f.status) where.push(eq(table.status, f.status));
  if (f.cursor !== undefined) where.push(lt(table.id, decodeCursor(f.cursor, [isId])[0] as number));
  const rows = await select(and(...where), limit + 1);
  const page = rows.slice(0, limit);
  return { page, nextCursor: rows.length > limit ? encodeCursor([page.at(-1)!.id]) : null };
}

type Times = { nextAttemptAt: Date; createdAt: Date; sentAt: Date | null };
export type WithIsoTimes<Row extends Times> = Omit<Row, keyof Times> & { nextAttemptAt: string; createdAt: string; sentAt: string | null };

/** A delivery row as answered: its times as ISO strings. */
export function withIsoTimes<Row extends Times>(row: Row): WithIsoTimes<Row> {
  return {
    ...row,
    nextAttemptAt: row.nextAttemptAt.toISOString(),
    createdAt: row.createdAt.toISOString(),
    sentAt: row.sentAt ? row.sentAt.toISOString() : null,
  };
}
