// The limits store on the service's database (no REDIS_URL): one row per key in rate_limits, counted
// by a single upsert, so concurrent hits from every instance on one PostgreSQL are serialised by the
// row lock and each gets its own count. Windows are measured with the database's clock (now()), the
// one clock all instances share; `offsetMs` lets the tests' movable clock move it too.
import { type SQL, sql } from 'drizzle-orm';
import type { Db } from '../../db/index.js';
import { shiftedNow } from '../../db/now.js';
import { rawPrepared } from '../../db/prepared.js';
import { rateLimits } from '../../db/schema.js';
import { turnBatcher } from '../turn-batch.js';
import type { Hit, LimitStore, RateLimitStore } from './index.js';

type HitRow = { key: string; count: number; reset_ms: number };

// One statement text for every hit: `hits` is a JSON array of { key, n, window_ms }, each key once,
// and each key's count grows by its n (a window that has ended starts again from n). `now` is the
// database's, moved by the tests' offset. Rows are inserted in key order, so two instances'
// statements lock shared keys in the same order and cannot deadlock. `when` makes the counting
// conditional (a step of a larger statement: services/token-email-statement.ts).
export const countHits = (hits: unknown, offsetMs: unknown, when: SQL = sql`true`) => {
  const now = shiftedNow(offsetMs);
  return sql`
      insert into ${rateLimits} (key, count, reset_at)
      select h.key, h.n, ${now} + h.window_ms * interval '1 millisecond'
        from json_to_recordset(${hits}::json) as h(key text, n int, window_ms float8)
        where ${when}
        order by h.key
      on conflict (key) do update set
        count = case when ${rateLimits.resetAt} <= ${now} then excluded.count else ${rateLimits.count} + excluded.count end,
        reset_at = case when ${rateLimits.resetAt} <= ${now} then excluded.reset_at else ${rateLimits.resetAt} end
      returning key, count, ceil(extract(epoch from (reset_at - ${now})) * 1000)::float8 as reset_ms`;
};

// A count that belongs to a transaction's change (a token email's mail caps) is that statement as a
// step of the change's own statement (services/token-email-statement.ts), and a login's failure
// count a step of its lookup (services/login-lookup.ts). Every hit through the store (each throttled
// request: login, register, token checks and refreshes) is batched per turn of the event loop
// (lib/turn-batch.ts): the turn's hits are one
// execution of it, prepared once per database, and each hit gets its own count back (the key's new
// count minus the hits after it in the batch), as if they had come one by one. A key always comes
// with the same window (the key names its limit); in one batch, its first hit's window counts.
const preparedHits = rawPrepared<HitRow>('rate_limit_hits', () => countHits(sql.placeholder('hits'), sql.placeholder('offset')));

const toHit = (row: HitRow, laterInBatch = 0): Hit => ({
  count: Number(row.count) - laterInBatch,
  resetMs: Math.max(0, Number(row.reset_ms)),
});

interface Counted {
  key: string;
  windowMs: number;
}

function batchedHits(db: Db, offsetMs: () => number) {
  const statement = preparedHits(db);
  return turnBatcher<Counted, Hit>(async (hits) => {
    // key → [window, hits so far]: each hit's place among its key's hits in this batch.
    const groups = new Map<string, { window_ms: number; n: number }>();
    const places = hits.map(({ key, windowMs }) => {
      const group = groups.get(key);
      if (group) return group.n++;
      groups.set(key, { window_ms: windowMs, n: 1 });
      return 0;
    });
    const json = JSON.stringify([...groups].map(([key, g]) => ({ key, n: g.n, window_ms: g.window_ms })));
    const rows = await statement.all({ hits: json, offset: offsetMs() });
    const byKey = new Map(rows.map((row) => [row.key, row]));
    return hits.map(({ key }, i) => toHit(byKey.get(key) as HitRow, (groups.get(key) as { n: number }).n - 1 - places[i]));
  });
}

const preparedReset = rawPrepared<never>('rate_limit_reset', () => sql`delete from ${rateLimits} where key = ${sql.placeholder('key')}`);

export function databaseStore(db: Db, offsetMs: () => number = () => 0): LimitStore {
  const batched = batchedHits(db, offsetMs);
  const hit = (key: string, windowMs: number): Promise<Hit> => batched({ key, windowMs });

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
