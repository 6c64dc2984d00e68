// A login's first statement: the identifier's failure count (services/throttle.ts) and the account
// lookup, as one statement when the limits live in the service's database (no REDIS_URL): the
// count's upsert (lib/store/database.ts countHits) is a CTE of the lookup. One socket write and one
// backend wakeup where the two took two (issue 10, item 6). The count still comes first for every
// identifier, known or not, and a refused attempt answers the same whatever the lookup found.
import { sql } from 'drizzle-orm';
import type { Db } from '../db/index.js';
import { dbOffsetMs } from '../db/now.js';
import { type UserRow, users } from '../db/schema.js';
import { countHits } from '../lib/store/database.js';
import type { Context } from './context.js';
import { countPasswordAttempt, lockedError } from './throttle.js';
import { findUserBy, identifierIs, normalizeIdentifier } from './users.js';

type Field = 'email' | 'username';

function build(db: Db, field: Field) {
  const hit = db
    .$with('hit', { count: sql<number>`count`.as('count'), resetMs: sql<number>`reset_ms`.as('reset_ms') })
    .as(countHits(sql.placeholder('hits'), sql.placeholder('offset')));
  return db
    .with(hit)
    .select({ user: users, count: hit.count, resetMs: hit.resetMs })
    .from(hit)
    .leftJoin(users, identifierIs(field, sql.placeholder('value')))
    .limit(1)
    .prepare(`login_lookup_by_${field}`);
}

const prepared = new WeakMap<Db, Record<Field, ReturnType<typeof build>>>();
function statement(db: Db, field: Field) {
  let both = prepared.get(db);
  if (!both) {
    both = { email: build(db, 'email'), username: build(db, 'username') };
    prepared.set(db, both);
  }
  return both[field];
}

/**
 * Counts a password attempt under `key` (429 when over the limit) and finds the account whose
 * `field` is `value`: countPasswordAttempt and findUserBy, in one statement where it can be.
 */
export async function countAndFind(ctx: Context, key: string, field: Field, value: string): Promise<UserRow | undefined> {
  const { limit, window } = ctx.config.loginThrottle;
  if (limit === 0 || ctx.limits.kind !== 'database') {
    const [, user] = await Promise.all([countPasswordAttempt(ctx, key), findUserBy(ctx.db, field, value)]);
    return user;
  }
  const [row] = await statement(ctx.db, field).execute({
    hits: JSON.stringify([{ key, n: 1, window_ms: window * 1000 }]),
    offset: dbOffsetMs(ctx.now),
    value: normalizeIdentifier(value),
  });
  if (Number(row.count) > limit) throw lockedError(Number(row.resetMs));
  return row.user ?? undefined;
}
