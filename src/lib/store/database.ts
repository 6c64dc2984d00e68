// The limits store on the service's database (no REDIS_URL): one row per key in rate_limits, counted
// by a single upsert, so concurrent hits from every instance on one PostgreSQL are serialised by the
// row lock and each gets its own count. Windows are measured with the database's clock (now()), the
// one clock all instances share; `offsetMs` lets the tests' movable clock move it too.
import { sql } from 'drizzle-orm';
import type { Db, Tx } from '../../db/index.js';
import { shiftedNow } from '../../db/now.js';
import { rawPrepared } from '../../db/prepared.js';
import { rateLimits } from '../../db/schema.js';
import type { Hit, LimitStore, RateLimitStore } from './index.js';

type HitRow = { count: number; reset_ms: number };

// The upsert as one statement text, its values as parameters: `now` moved by the tests' offset.
const upsert = (key: unknown, offsetMs: unknown, windowMs: unknown) => {
  const now = shiftedNow(offsetMs);
  return sql`
      insert into ${rateLimits} (key, count, reset_at)
      values (${key}, 1, ${now} + ${windowMs}::float8 * interval '1 millisecond')
      on conflict (key) do update set
        count = case when ${rateLimits.resetAt} <= ${now} then 1 else ${rateLimits.count} + 1 end,
        reset_at = case when ${rateLimits.resetAt} <= ${now} then excluded.reset_at else ${rateLimits.resetAt} end
      returning count, ceil(extract(epoch from (reset_at - ${now})) * 1000)::float8 as reset_ms`;
};
// Every throttled request (login, register, token checks and refreshes) counts here: prepared once
// per database, so a hit is one round trip with no query building (a transaction's hit, rarer,
// is built per call on the transaction).
const preparedHit = rawPrepared<HitRow>('rate_limit_hit', () => upsert(sql.placeholder('key'), sql.placeholder('offset'), sql.placeholder('window')));
const preparedReset = rawPrepared<never>('rate_limit_reset', () => sql`delete from ${rateLimits} where key = ${sql.placeholder('key')}`);

export function databaseStore(db: Db, offsetMs: () => number = () => 0): LimitStore {
  async function hit(key: string, windowMs: number, tx?: Tx): Promise<Hit> {
    let row: HitRow;
    if (tx) {
      const rows = await tx.execute<HitRow>(upsert(key, offsetMs(), windowMs));
      // postgres.js returns the rows as an array, PGlite as { rows }.
      [row] = Array.isArray(rows) ? rows : (rows as unknown as { rows: HitRow[] }).rows;
    } else {
      [row] = await preparedHit(db).all({ key, offset: offsetMs(), window: windowMs });
    }
    return { count: Number(row.count), resetMs: Math.max(0, Number(row.reset_ms)) };
  }

  class DatabaseRateLimitStore implements RateLimitStore {
    constructor(
      _params?: unknown,
      private readonly prefix = 'rl:',
    ) {}
    incr(key: string, cb: (err: Error | null, res?: { current: number; ttl: number }) => void, timeWindow: number): void {
      hit(this.prefix + key, timeWindow).then(
        (h) => cb(null, { current: h.count, ttl: h.resetMs }),
        (err) => cb(err),
      );
    }
    child(routeOptions: { routeInfo: { method?: string | string[]; url?: string } }): RateLimitStore {
      return new DatabaseRateLimitStore(undefined, `${this.prefix}${routeOptions.routeInfo.method}${routeOptions.routeInfo.url}-`);
    }
  }

  return {
    kind: 'database',
    hit,
    async reset(key) {
      await preparedReset(db).all({ key });
    },
    rateLimitStore: DatabaseRateLimitStore,
    close: async () => {},
  };
}
