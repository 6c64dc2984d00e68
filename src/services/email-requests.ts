// Email requests: POST /resend-activation-email and /send-password-reset-email.
// Invariants (issue 7 item 18, issue 9 item 4):
// - the answer is given after one durable write, and that write is the same for every address: a
//   request row in the outbox (kind `request:<purpose>`, the address as given, no body). If it
//   fails, the client gets 503, never a 202 for a request that was lost;
// - nothing else happens on the request's path, nor right after it: the row is resolved later by
//   the outbox worker on its own schedule (its poll; the request does not wake it), so neither the
//   answer, nor its time, nor the time of the next request on the connection depends on whether
//   the address has an account;
// - resolving looks the account up, and when it qualifies creates the token and queues the email,
//   in one transaction that also marks the request row resolved — conditionally on the claim
//   (`attempts`, the worker's fencing token), so a request is resolved once even if its lease ran
//   out and another instance claimed it. The address is blanked once resolved.
// This module writes the request rows of email_outbox (mail/outbox.ts writes the emails).
import { and, eq } from 'drizzle-orm';
import { outbox } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { Context } from './context.js';
import { sendTokenEmail } from './email-tokens.js';
import { findUserBy, normalizeIdentifier } from './users.js';

export const REQUEST_KINDS = {
  activation: 'request:activation',
  passwordReset: 'request:password_reset',
} as const;
export type RequestKind = (typeof REQUEST_KINDS)[keyof typeof REQUEST_KINDS];

/** Writes the request row; the caller answers 202 once it resolves. 503 when it cannot be written. */
export async function requestEmail(ctx: Context, kind: RequestKind, email: string): Promise<void> {
  try {
    await ctx.db.insert(outbox).values({ userId: null, recipient: normalizeIdentifier(email), kind, subject: '', text: '', html: '' });
  } catch (cause) {
    throw new AppError('service_unavailable', { detail: 'The request could not be recorded; try again later.', cause });
  }
}

/** A claimed request row, as the outbox worker hands it over. */
export interface RequestRow {
  id: number;
  kind: string;
  recipient: string;
  attempts: number;
}

/** Resolves one request row (called by the outbox worker for `request:*` kinds). */
export async function resolveEmailRequest(ctx: Context, row: RequestRow): Promise<void> {
  const queued = await ctx.db.transaction(async (tx) => {
    // Fenced on the claim: a holder whose lease was taken over resolves nothing.
    const [mine] = await tx
      .update(outbox)
      .set({ status: 'sent', sentAt: ctx.now(), recipient: '' })
      .where(and(eq(outbox.id, row.id), eq(outbox.attempts, row.attempts), eq(outbox.status, 'pending')))
      .returning({ id: outbox.id });
    // Thrown, not returned: the worker must not mark as resolved a row another instance now holds.
    if (!mine) throw new Error('outbox: the claim on this email request was lost (its lease ran out)');
    const user = await findUserBy(tx, 'email', row.recipient);
    if (!user || !user.isActive) return false;
    if (row.kind === REQUEST_KINDS.activation) {
      if (user.verified) return false;
      await sendTokenEmail(tx, ctx, user, 'activation');
    } else if (row.kind === REQUEST_KINDS.passwordReset) {
      // An unverified account gets the activation email instead: its address is not proven yet.
      await sendTokenEmail(tx, ctx, user, user.verified ? 'password_reset' : 'activation');
    } else {
      throw new Error(`unknown request kind ${row.kind}`);
    }
    return true;
  });
  if (queued) ctx.mailQueued();
}
