// Passwords: reset by email, set (passwordless accounts), change. Writes users.password_hash.
// Every password change, by any route, in one transaction: the new hash, the end of every session
// (so stolen tokens die), the death of every other unused reset/set link, and a notification email.
import { eq } from 'drizzle-orm';
import type { Tx } from '../db/index.js';
import { type EmailTokenPurpose, type UserRow, users } from '../db/schema.js';
import { AppError } from '../errors.js';
import { checkNewPassword } from '../lib/password-rules.js';
import { enqueueEmail } from '../mail/outbox.js';
import { passwordChangedEmail } from '../mail/templates.js';
import type { TokenOut } from '../schemas.js';
import { validationFailed } from '../validation.js';
import { confirmPassword, requireVerified, sessionOf } from './accounts.js';
import type { Context } from './context.js';
import { requestEmail, REQUEST_KINDS } from './email-requests.js';
import { consumeEmailToken, killEmailTokens, peekTokenOwner } from './email-tokens.js';
import { recordEvent } from './events.js';
import { endAllSessions, startSession } from './sessions.js';
import { toUserOut } from './users.js';

export interface NewPassword {
  newPassword1: string;
  newPassword2: string;
}

/**
 * POST /send-password-reset-email. Records the request (the same write for every address) and
 * nothing more: the outbox worker resolves it later (services/email-requests.ts): a verified
 * account gets a reset link; an unverified one the activation email instead (its address is not
 * proven yet); others nothing. So the answer and every timing are the same for every address.
 */
export function sendPasswordResetEmail(ctx: Context, email: string): Promise<void> {
  return requestEmail(ctx, REQUEST_KINDS.passwordReset, email);
}

/** POST /password-reset. */
export function resetPassword(ctx: Context, input: { token: string } & NewPassword): Promise<void> {
  return redeem(ctx, input, 'password_reset');
}

/** POST /password-set: as reset, for an account that has no password yet. */
export function setPassword(ctx: Context, input: { token: string } & NewPassword): Promise<void> {
  return redeem(ctx, input, 'password_set', (u) => {
    if (u.passwordHash !== null) throw new AppError('password_already_set');
  });
}

async function redeem(
  ctx: Context,
  input: { token: string } & NewPassword,
  purpose: EmailTokenPurpose,
  check?: (user: UserRow) => void,
): Promise<void> {
  // The rules first (the similarity rule compares with the token's account, when there is one),
  // then the costly hash outside the transaction, then the token, consumed under a lock.
  const owner = await peekTokenOwner(ctx, input.token, purpose);
  checkRules(ctx, input, owner ?? {});
  const hash = await ctx.hasher.hash(input.newPassword1);
  await ctx.db.transaction(async (tx) => {
    const user = await consumeEmailToken(tx, ctx, input.token, purpose, check);
    // Proving control of the mailbox verifies the account.
    await applyNewPassword(tx, ctx, user, hash, { verified: true });
    await recordEvent(ctx, tx, { type: purpose === 'password_set' ? 'password_set' : 'password_reset', userId: user.id });
  });
  ctx.mailQueued();
}

/** POST /password-change: ends every session, the caller's too, and starts a fresh one. */
export async function changePassword(
  ctx: Context,
  user: UserRow,
  input: { oldPassword: string } & NewPassword,
): Promise<TokenOut> {
  // The order of every bearer endpoint (README, "Bearer endpoints"): the body (the new password's rules too), then
  // verified, then the password confirmation.
  checkRules(ctx, input, user);
  requireVerified(user);
  await confirmPassword(ctx, user, input.oldPassword, 'oldPassword');
  const hash = await ctx.hasher.hash(input.newPassword1);
  const result = await ctx.db.transaction(async (tx) => {
    const updated = await applyNewPassword(tx, ctx, user, hash);
    const tokens = await startSession(tx, ctx, updated);
    await recordEvent(ctx, tx, { type: 'password_changed', userId: user.id, sessionId: sessionOf(tokens) });
    return { ...tokens, user: toUserOut(updated) };
  });
  ctx.mailQueued();
  return result;
}

function checkRules(ctx: Context, input: NewPassword, user: Partial<UserRow>): void {
  const errors = checkNewPassword(input.newPassword1, input.newPassword2, 'newPassword2', ctx.config.password, user);
  if (errors) throw validationFailed(errors);
}

async function applyNewPassword(tx: Tx, ctx: Context, user: UserRow, hash: string, extra: Partial<UserRow> = {}): Promise<UserRow> {
  const [updated] = await tx
    .update(users)
    .set({ passwordHash: hash, ...extra })
    .where(eq(users.id, user.id))
    .returning();
  await endAllSessions(tx, ctx, user.id);
  await killEmailTokens(tx, ctx, user.id, ['password_reset', 'password_set', 'email_change']);
  if (updated.email) {
    await enqueueEmail(tx, { userId: user.id, address: updated.email }, passwordChangedEmail(updated.verified ? updated.firstName || updated.username : null));
  }
  return updated;
}
