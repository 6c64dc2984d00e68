// One-time tokens sent by email (activation, password reset, password set).
// Invariants:
// - only the SHA-256 of a token is stored (lib/tokens.ts); the raw token exists in the email alone;
// - a token is consumed under a row lock (SELECT … FOR UPDATE), and marking it used happens in the
//   same transaction as the change it authorises, so of two concurrent redemptions exactly one
//   sees it unused;
// - a token dies when used, when it expires, and when the account's password changes by any route
//   (killEmailTokens), so an old link found in a mailbox is worthless.
import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Tx } from '../db/index.js';
import { dbNow } from '../db/now.js';
import { EMAIL_TOKEN_PURPOSES, type EmailTokenPurpose, emailTokens, type UserRow, users } from '../db/schema.js';
import { AppError } from '../errors.js';
import { hashToken, newToken } from '../lib/tokens.js';
import { activationEmail, emailChangeEmail, passwordResetEmail, passwordSetEmail } from '../mail/templates.js';
import type { Context } from './context.js';
import { type TokenEmail, writeTokenEmail } from './token-email-statement.js';

/** What a token email needs of its account. */
export type MailedAccount = Pick<UserRow, 'id' | 'email' | 'username' | 'firstName' | 'verified'>;

function purposeSettings(ctx: Context, purpose: EmailTokenPurpose, user: MailedAccount) {
  const { config } = ctx;
  // Names only to a proven address (mail/templates.ts): a verified account's stored address.
  const name = user.verified ? user.firstName || user.username : null;
  switch (purpose) {
    case 'activation':
      return { url: config.activationUrl, lifetime: config.expiration.activation, render: activationEmail };
    case 'password_reset':
      return {
        url: config.passwordResetUrl,
        lifetime: config.expiration.passwordReset,
        render: (url: string, lifetime: number) => passwordResetEmail(name, url, lifetime),
      };
    case 'password_set':
      return { url: config.passwordSetUrl, lifetime: config.expiration.passwordSet, render: passwordSetEmail };
    case 'email_change':
      return { url: config.emailChangeUrl, lifetime: config.expiration.emailChange, render: emailChangeEmail };
  }
}

/**
 * A new token for `purpose` and its email, not yet written: the email goes to the stored address —
 * or, for an email change, to the new address the token will move the account to — never to a
 * string taken from the request otherwise; the raw token is in the email only. Undefined when
 * there is no address to mail.
 */
export function newTokenEmail(
  ctx: Context,
  user: MailedAccount,
  purpose: EmailTokenPurpose,
  newEmail?: string,
): TokenEmail | undefined {
  const to = purpose === 'email_change' ? newEmail : user.email;
  if (!to) return undefined; // an account registered without an email cannot be mailed
  const { url, lifetime, render } = purposeSettings(ctx, purpose, user);
  const token = newToken();
  return {
    userId: user.id,
    purpose,
    tokenHash: hashToken(token),
    newEmail: purpose === 'email_change' ? to : null,
    to,
    lifetimeMs: lifetime * 1000,
    email: render(url.replace('{token}', encodeURIComponent(token)), lifetime),
  };
}

/**
 * Creates a token for `purpose` and puts its email in the outbox (newTokenEmail), both in the
 * caller's transaction. Over the recipient's mail cap (services/throttle.ts) nothing is created or
 * sent and false is returned; callers answer the same either way.
 */
export async function sendTokenEmail(
  tx: Tx,
  ctx: Context,
  user: MailedAccount,
  purpose: EmailTokenPurpose,
  newEmail?: string,
): Promise<boolean> {
  const mail = newTokenEmail(ctx, user, purpose, newEmail);
  // The caps, the token and the email in one statement (services/token-email-statement.ts).
  return mail ? writeTokenEmail(tx, ctx, mail) : false;
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
 * Locks the token and checks it, in this order: unknown or of another purpose →
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
): Promise<UserRow & { pendingEmail: string | null }> {
  const [row] = await tx
    .select({ token: emailTokens, user: users, expired: sql<boolean>`${emailTokens.expiresAt} <= ${dbNow(ctx.now)}` })
    .from(emailTokens)
    .innerJoin(users, eq(users.id, emailTokens.userId))
    .where(and(eq(emailTokens.tokenHash, hashToken(token)), eq(emailTokens.purpose, purpose)))
    .for('update', { of: emailTokens })
    .limit(1);
  if (!row) throw new AppError('invalid_token');
  check(row.user);
  if (row.token.usedAt || !row.user.isActive) throw new AppError('invalid_token');
  if (row.expired) throw new AppError('expired_token');
  await tx.update(emailTokens).set({ usedAt: dbNow(ctx.now) }).where(eq(emailTokens.id, row.token.id));
  return { ...row.user, pendingEmail: row.token.newEmail };
}

/** Kills every unused token of those purposes (default: every purpose) for the account. */
export async function killEmailTokens(
  tx: Tx,
  ctx: Context,
  userId: string,
  purposes: readonly EmailTokenPurpose[] = EMAIL_TOKEN_PURPOSES,
): Promise<void> {
  await tx
    .update(emailTokens)
    .set({ usedAt: dbNow(ctx.now) })
    .where(and(eq(emailTokens.userId, userId), inArray(emailTokens.purpose, purposes), isNull(emailTokens.usedAt)));
}
