// A registration's writes as one statement (a data-modifying CTE): the account, its session and
// first refresh token when it logs in, the `registered` audit row, and its activation email with
// the recipient's mail caps (token-email-statement.ts). One statement is atomic without BEGIN and
// COMMIT: one socket write and one backend wakeup where the transaction waits four times (BEGIN,
// the account, the rest together, COMMIT; issue 10, item 6). A taken email or username fails the
// statement with the unique index's error, as the transaction's insert did (users.ts
// withUniqueCheck).
//
// Only the common case takes it: a password and no webhook to queue for `registered`. The rest
// keeps the transaction in accounts.ts.
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { rowsOf } from '../db/index.js';
import type { UserRow } from '../db/schema.js';
import type { Tokens } from '../schemas.js';
import { ACCOUNT_COLUMNS, type AccountRow, accountOf, sessionSteps, sessionValues } from './account-statements.js';
import type { Context } from './context.js';
import { newTokenEmail } from './email-tokens.js';
import { capsBefore, tokenEmailSteps } from './token-email-statement.js';
import { withSkeleton } from './users.js';

export interface NewAccount {
  email?: string;
  username?: string;
  firstName?: string;
  lastName?: string;
}

/** Writes a new account with a password; its tokens when `logsIn`. */
export async function writeRegistration(
  ctx: Context,
  profile: NewAccount,
  passwordHash: string,
  logsIn: boolean,
): Promise<{ account: UserRow; tokens?: Tokens }> {
  const { values, done } = sessionValues(ctx, { type: 'registered', detail: { hasPassword: true } }, logsIn);
  const id = randomUUID();
  const { email = null, username = null, firstName = '', lastName = '', usernameSkeleton = null } = withSkeleton(profile);
  const mail = ctx.config.sendActivationEmail ? newTokenEmail(ctx, { id, email, username, firstName, verified: false }, 'activation') : undefined;
  // Over a cap counted outside the statement (Redis), the account is made without its email.
  const activation = mail && (await capsBefore(ctx, mail)) ? mail : undefined;
  const result = await ctx.db.execute(sql`
    with account as (
      insert into users (id, email, username, username_skeleton, first_name, last_name, password_hash, date_joined, last_login)
      values (${id}::uuid, ${email}::text, ${username}::text, ${usernameSkeleton}::text, ${firstName}::text, ${lastName}::text,
        ${passwordHash}::text, ${values.now}::timestamptz, ${logsIn ? values.now : null}::timestamptz)
      returning ${ACCOUNT_COLUMNS}
    ), ${sessionSteps((name) => values[name])}${activation ? sql`, ${tokenEmailSteps(ctx, activation)}` : sql``}
    select account.*, session.expires_ms from account left join session on true`);
  const [row] = rowsOf<AccountRow & { expires_ms: number | null }>(result);
  const account = accountOf(row);
  return { account, tokens: done(account, row.expires_ms) };
}
