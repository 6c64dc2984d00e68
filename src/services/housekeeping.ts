// Deletes what can no longer matter, so tables do not grow without bound (django-graphql-jwt's
// `cleartokens`). A day's grace keeps recent history for support; the answers to clients do not
// change: a purged token or session is as invalid as a revoked or expired one. Idempotent, so
// several instances may run it at once.
import { and, eq, lt, or } from 'drizzle-orm';
import { emailTokens, outbox, sessions } from '../db/schema.js';
import type { Db } from '../db/index.js';

const DAY = 86_400_000;

export async function purgeStale(db: Db, at: Date): Promise<{ sessions: number; emailTokens: number; emails: number }> {
  const now = at.getTime();
  const dayAgo = new Date(now - DAY);
  // Refresh tokens go with their session (ON DELETE CASCADE).
  const deadSessions = await db
    .delete(sessions)
    .where(or(lt(sessions.revokedAt, dayAgo), lt(sessions.expiresAt, dayAgo)))
    .returning({ id: sessions.id });
  const deadTokens = await db
    .delete(emailTokens)
    .where(or(lt(emailTokens.usedAt, dayAgo), lt(emailTokens.expiresAt, dayAgo)))
    .returning({ id: emailTokens.id });
  const oldEmails = await db
    .delete(outbox)
    .where(
      or(
        and(eq(outbox.status, 'sent'), lt(outbox.sentAt, new Date(now - 7 * DAY))),
        and(eq(outbox.status, 'failed'), lt(outbox.createdAt, new Date(now - 30 * DAY))),
      ),
    )
    .returning({ id: outbox.id });
  return { sessions: deadSessions.length, emailTokens: deadTokens.length, emails: oldEmails.length };
}
