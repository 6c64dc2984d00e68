// The limits that count something other than a client address, in the shared limits store
// (lib/store), so every instance sees them and a restart does not reset them:
// - failed password checks per login identifier (ASVS 2.2.1, NIST 800-63B 5.2.2): at most
//   LOGIN_FAILURE_LIMIT per LOGIN_FAILURE_WINDOW, from any number of client addresses. The count
//   is kept for any identifier, known or not, so a locked answer says nothing about whether the
//   account exists; the lock ends by itself with the window (no permanent lockout a stranger can
//   cause), and a successful login clears it. Attempts are counted before the password is checked,
//   so concurrent guesses cannot slip past the limit;
// - token emails per recipient address (mail bombing): MAIL_RECIPIENT_LIMIT of each kind per
//   MAIL_RECIPIENT_WINDOW, and MAIL_RECIPIENT_DAILY_LIMIT of all kinds a day. Over the cap the
//   email is silently not sent: the API's answer (202, or the change itself) stays the same.
import { AppError } from '../errors.js';
import { limitKey } from '../lib/store/index.js';
import type { Context } from './context.js';
import { normalizeIdentifier } from './users.js';

export const lockedError = (resetMs: number) => {
  const seconds = Math.max(1, Math.ceil(resetMs / 1000));
  return new AppError('rate_limited', {
    detail: `Too many failed attempts for this account, try again in ${seconds} seconds.`,
    retryAfter: seconds,
  });
};

/** The key of a login identifier: the same for every spelling that finds the same account. */
export const loginKey = (field: string, value: string) => limitKey('login', field, normalizeIdentifier(value).toLowerCase());

/** The key of the password confirmations of one account (archive, delete, password and email change). */
export const confirmKey = (userId: string) => limitKey('confirm', userId);

/**
 * Counts one password attempt under `key`; throws 429 rate_limited (with Retry-After) when the
 * window's limit is passed. Call before checking the password; `clearFailures` after a success.
 */
export async function countPasswordAttempt(ctx: Context, key: string): Promise<void> {
  const { limit, window } = ctx.config.loginThrottle;
  if (limit === 0) return;
  const hit = await ctx.limits.hit(key, window * 1000);
  if (hit.count > limit) throw lockedError(hit.resetMs);
}

export async function clearFailures(ctx: Context, key: string): Promise<void> {
  if (ctx.config.loginThrottle.limit === 0) return;
  await ctx.limits.reset(key);
}

/**
 * Whether one more token email of `kind` may go to `address` now; counts it when it may. This is
 * the Redis store's way, counted before the change is written: the database store counts inside
 * the email's own statement, so that a rolled-back change is not counted
 * (services/token-email-statement.ts).
 */
export async function mayMail(ctx: Context, kind: string, address: string): Promise<boolean> {
  const { perKind, window, daily } = ctx.config.mailCap;
  const keys = mailKeys(kind, address);
  if (perKind > 0) {
    const hit = await ctx.limits.hit(keys.perKind, window * 1000);
    if (hit.count > perKind) return false;
  }
  if (daily > 0) {
    const hit = await ctx.limits.hit(keys.daily, DAY_MS);
    if (hit.count > daily) return false;
  }
  return true;
}

export const DAY_MS = 86_400_000;

/** The mail caps' keys for a token email of `kind` to `address`: its kind's, and the day's over every kind. */
export function mailKeys(kind: string, address: string): { perKind: string; daily: string } {
  const recipient = normalizeIdentifier(address).toLowerCase();
  return { perKind: limitKey(`mail:${kind}`, recipient), daily: limitKey('mail:day', recipient) };
}
