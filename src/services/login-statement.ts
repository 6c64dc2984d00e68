// A successful login's writes as one prepared statement (a data-modifying CTE): the account's
// update (last login, un-archive, an upgraded hash), its new session and first refresh token, and
// the login_succeeded audit row; and the identifier's failure count is cleared when it is kept in
// the database. One statement is atomic without BEGIN and COMMIT, so the login after its hash
// costs one socket write and one backend wakeup where a transaction cost three, and no query is
// built per call (issue 10, item 6).
//
// Only the common case takes it: no webhook to queue for login_succeeded and no archived account
// (whose login is also an account_unarchived event). Those keep the transaction in accounts.ts.
// The session's steps are account-statements.ts's, shared with a registration's statement.
import { sql } from 'drizzle-orm';
import { rawPrepared } from '../db/prepared.js';
import type { UserRow } from '../db/schema.js';
import type { TokenOut } from '../schemas.js';
import { ACCOUNT_COLUMNS, type AccountRow, accountOf, type SessionValues, sessionSteps, sessionValues } from './account-statements.js';
import type { Context } from './context.js';

type Values = SessionValues & { userId: string; newHash: string | null; clearKey: string | null };
const p = (name: keyof Values) => sql.placeholder(name);

// The update matches only an active account: one deactivated or deleted since the lookup gets no
// session (the inserts read the update's row), and keeps its failure count.
const loginStatement = rawPrepared<AccountRow & { expires_ms: number }>(
  'login_write',
  () => sql`
    with account as (
      update users set last_login = ${p('now')}::timestamptz, archived = false,
        password_hash = coalesce(${p('newHash')}::text, password_hash)
      where id = ${p('userId')}::uuid and is_active
      returning ${ACCOUNT_COLUMNS}
    ), ${sessionSteps(p)}, cleared as (
      delete from rate_limits where key = ${p('clearKey')}::text and exists (select from account)
    )
    select account.*, session.expires_ms from account, session`,
);

/**
 * Writes a successful login of `user` (found and checked by the caller) and returns its tokens and
 * the updated account; undefined when the account is no longer active. `clearKey`: a key of the
 * database limits store to delete with it (the identifier's failures), or null.
 */
export async function writeLogin(
  ctx: Context,
  user: UserRow,
  upgradedHash: string | undefined,
  clearKey: string | null,
): Promise<(Omit<TokenOut, 'user' | 'unarchiving'> & { account: UserRow }) | undefined> {
  const { values, done } = sessionValues(ctx, { type: 'login_succeeded' }, true);
  const all: Values = { ...values, userId: user.id, newHash: upgradedHash ?? null, clearKey };
  const [row] = await loginStatement(ctx.db).all(all);
  if (!row) return undefined;
  const account = accountOf(row);
  return { ...done(account, row.expires_ms)!, account };
}
