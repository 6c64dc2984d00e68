// One-time tokens sent by email (activation, password reset, password set).
// Invariants:
// - only the SHA-256 of a token is stored (lib/tokens.ts); the raw token exists in the email alone;
// - a token is consumed under a row lock (SELECT … FOR UPDATE), and marking it used happens in the
//   same transaction as the change it authorises, so of two concurrent redemptions exactly one
//   sees it unused;
// - a token dies when used, when it expires, and when the account's password changes by any route
//   (killEmailTokens), so an old link found in a mailbox is worthless.
import { and, eq, inArray, isNull } from 'drizzle-orm';
import type { Tx } from '../db/index.js';
import { type EmailTokenPurpose, emailTokens, type UserRow, users } from '../db/schema.js';
import { AppError } from '../errors.js';
import { addSeconds } from '../lib/clock.js';
import { hashToken, newToken } from '../lib/tokens.js';
import { enqueueEmail } from '../mail/outbox.js';
import { activationEmail, passwordResetEmail, passwordSetEmail } from '../mail/templates.js';
import type { Context } from './context.js';

function purposeSettings(ctx: Context, purpose: EmailTokenPurpose) {
  const { config } = ctx;
  switch (purpose) {
    case 'activation':
      return { url: config.activationUrl, lifetime: config.expiration.activation, template: activationEmail };
    case 'password_reset':
      return { url: config.passwordResetUrl, lifetime: config.expiration.passwordReset, template: passwordResetEmail };
    case 'password_set':
      return { url: config.passwordSetUrl, lifetime: config.expiration.passwordSet, template: passwordSetEmail };
  }
}

/**
 * Creates a token for `purpose` and puts its email in the outbox, both in the caller's transaction.
 * The email goes to the stored address (or, for an email change, the new stored one), never to a
 * string taken from the request.
 */
export async function sendTokenEmail(tx: Tx, ctx: Context, user: UserRow, purpose: EmailTokenPurpose): Promise<void> {
  if (!user.email) return; // an account registered without an email cannot be mailed
  const { url, lifetime, template } = purposeSettings(ctx, purpose);
  const token = newToken();
  const now = ctx.now();
  await tx.insert(emailTokens).values({
    userId: user.id,
    purpose,
    tokenHash: hashToken(token),
    createdAt: now,
    expiresAt: addSeconds(now, lifetime),
  });
  const link = url.replace('{token}', encodeURIComponent(token));
  await enqueueEmail(tx, { userId: user.id, address: user.email }, template(user.firstName || user.username, link, lifetime));
}

/** The account a token of that purpose belongs to, without consuming it (for the password-similarity rule). */
export async function peekTokenOwner(ctx: Context, token: string, purpose: EmailTokenPurpose): Promise<UserRow | undefined> {
  const [row] = await ctx.db
    .select({ user: users })
    .from(emailTokens)
    .innerJoin(users, eq(users.id, emailTokens.userId))
    .where(and(eq(emailTokens.tokenHash, hashToken(token)), eq(emailTokens.purpose, purpose)))
    .limit(1);
  return row?.user;
}

/**
 * Locks the token and checks it, in the order of spec/BEHAVIOUR.md: unknown or of another purpose →
 * invalid_token; `check(user)` may then throw its own error (already_verified…); used, or its
 * account inactive → invalid_token; past its lifetime → expired_token. Marks it used and returns
 * its account; the caller makes its change in the same transaction.
 */
export async function consumeEmailToken(
  tx: Tx,
  ctx: Context,
  token: string,
  purpose: EmailTokenPurpose,
  check: (user: UserRow) => void = () => {},
): Promise<UserRow> {
  const [row] = await tx
    .select({ token: emailTokens, user: users })
    .from(emailTokens)
    .innerJoin(users, eq(users.id, emailTokens.userId))
    .where(and(eq(emailTokens.tokenHash, hashToken(token)), eq(emailTokens.purpose, purpose)))
    .for('update', { of: emailTokens })
    .limit(1);
  if (!row) throw new AppError('invalid_token');
  check(row.user);
  if (row.token.usedAt || !row.user.isActive) throw new AppError('invalid_token');
  const now = ctx.now();
  if (row.token.expiresAt <= now) throw new AppError('expired_token');
  await tx.update(emailTokens).set({ usedAt: now }).where(eq(emailTokens.id, row.token.id));
  return row.user;
}

/** Kills every unused token of those purposes for the account. */
export async function killEmailTokens(tx: Tx, ctx: Context, userId: string, purposes: EmailTokenPurpose[]): Promise<void> {
  await tx
    .update(emailTokens)
    .set({ usedAt: ctx.now() })
    .where(and(eq(emailTokens.userId, userId), inArray(emailTokens.purpose, purposes), isNull(emailTokens.usedAt)));
}
