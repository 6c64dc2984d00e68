// A token email's writes as one statement: when the limits live in the service's database (no
// REDIS_URL), the recipient's mail caps are counted in it (services/throttle.ts; the day's cap is
// not counted when the kind's refuses), and only when both allow it are the token and its outbox
// row inserted. One wait on the caller's transaction where counting and writing took three (issue
// 10, item 6). With Redis the caps are counted there first (throttle.ts mayMail), and the
// statement only writes.
//
// Column names are spelled out because this is the statement's text; schema.ts is the reference
// for them. Its text is the same for every call (the values are parameters; a disabled cap counts
// an empty list), so the driver prepares it once per connection (db/prepare-all.ts).
import { type SQL, sql } from 'drizzle-orm';
import { rowsOf, type Tx } from '../db/index.js';
import { dbOffsetMs, shiftedNow } from '../db/now.js';
import type { EmailTokenPurpose } from '../db/schema.js';
import { countHits } from '../lib/store/database.js';
import type { Rendered } from '../mail/templates.js';
import type { Context } from './context.js';
import { DAY_MS, mailKeys, mayMail } from './throttle.js';

export interface TokenEmail {
  userId: string;
  purpose: EmailTokenPurpose;
  tokenHash: string;
  /** email_change only: the address the account moves to. */
  newEmail: string | null;
  /** The recipient: what the caps count. */
  to: string;
  lifetimeMs: number;
  email: Rendered;
}

/**
 * CTEs `per_kind`, `per_day`, `allowed` (one row when both caps allow the email), `token` and
 * `email`: the steps of writeTokenEmail, for a statement that has more to do (register-statement.ts).
 */
export function tokenEmailSteps(ctx: Context, mail: TokenEmail): SQL {
  const { perKind, window, daily } = ctx.config.mailCap;
  const keys = mailKeys(mail.purpose, mail.to);
  const offset = dbOffsetMs(ctx.now);
  // An empty list counts nothing and allows: a disabled cap, or caps counted before (capsBefore).
  const counted = ctx.limits.kind === 'database';
  const hitList = (key: string, windowMs: number, limit: number) =>
    JSON.stringify(counted && limit > 0 ? [{ key, n: 1, window_ms: windowMs }] : []);
  const kindAllows = sql`not exists (select from per_kind where count > ${perKind})`;
  return sql`
    per_kind as (${countHits(hitList(keys.perKind, window * 1000, perKind), offset)}),
    per_day as (${countHits(hitList(keys.daily, DAY_MS, daily), offset, kindAllows)}),
    allowed as (
      select where ${kindAllows} and not exists (select from per_day where count > ${daily})
    ), token as (
      insert into email_tokens (user_id, purpose, token_hash, new_email, created_at, expires_at)
      select ${mail.userId}::uuid, ${mail.purpose}::text, ${mail.tokenHash}::text, ${mail.newEmail}::text,
        ${ctx.now().toISOString()}::timestamptz, ${shiftedNow(offset)} + ${mail.lifetimeMs}::float8 * interval '1 millisecond'
      from allowed
    ), email as (
      insert into email_outbox (user_id, recipient, kind, subject, text, html)
      select ${mail.userId}::uuid, ${mail.to}::text, ${mail.email.kind}::text, ${mail.email.subject}::text,
        ${mail.email.text}::text, ${mail.email.html}::text
      from allowed
    )`;
}

/**
 * The caps that are not steps of the statement (the Redis store's), counted now: whether they allow
 * the email. True at once with the database store, whose caps the statement counts.
 */
export async function capsBefore(ctx: Context, mail: TokenEmail): Promise<boolean> {
  return ctx.limits.kind === 'database' || mayMail(ctx, mail.purpose, mail.to);
}

/** Writes the token and its email in `tx` unless a mail cap refuses; whether it did. */
export async function writeTokenEmail(tx: Tx, ctx: Context, mail: TokenEmail): Promise<boolean> {
  if (!(await capsBefore(ctx, mail))) return false;
  const result = await tx.execute<{ sent: boolean }>(sql`with ${tokenEmailSteps(ctx, mail)} select exists (select from allowed) as sent`);
  return rowsOf<{ sent: boolean }>(result)[0].sent;
}
