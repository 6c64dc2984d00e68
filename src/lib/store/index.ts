// The limits store: fixed-window counters that every instance of the service sees (the house rule:
// nothing that must hold across instances lives in process memory). Two implementations behind one
// interface: Redis when REDIS_URL is set (redis.ts), otherwise the service's own database
// (database.ts: PostgreSQL, shared by every instance; or the embedded PGlite, which has exactly one
// owner process). Both keep their counts over a restart.
//
// Failure policy (guarded below): the store is an availability dependency only for throttling. A
// store that does not answer fails open by default — limits are off, a warning is logged (at most
// every 10 s) and `onFailure` is told — or closed with RATE_LIMIT_FAIL_CLOSED=true: the request is
// answered 503 service_unavailable.
import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { type Db, isDatabaseUnavailable } from '../../db/index.js';
import { AppError } from '../../errors.js';

export interface Hit {
  /** Events counted under the key in the current window, this one included. */
  count: number;
  /** Milliseconds until the current window ends (and the count starts again from zero). */
  resetMs: number;
}

export interface LimitStore {
  readonly kind: 'redis' | 'database';
  /**
   * Counts one event under `key` in a fixed window of `windowMs` that starts with the key's first
   * event, atomically (concurrent hits from any instance each get a distinct count). A count that
   * must be part of a transaction's change is a step of its statement instead (countHits in
   * database.ts; services/token-email-statement.ts).
   */
  hit(key: string, windowMs: number): Promise<Hit>;
  /** Forgets the key (a successful login resets its failure count). */
  reset(key: string): Promise<void>;
  /** The store class for @fastify/rate-limit's `store` option (per-client limits). */
  readonly rateLimitStore: RateLimitStoreClass;
  close(): Promise<void>;
}

/** @fastify/rate-limit's store contract (its LocalStore/RedisStore shape). */
export interface RateLimitStore {
  incr(key: string, cb: (err: Error | null, res?: { current: number; ttl: number }) => void, timeWindow: number, max: number): void;
  child(routeOptions: { routeInfo: { method?: string | string[]; url?: string } }): RateLimitStore;
}
export type RateLimitStoreClass = new (globalParams: unknown) => RateLimitStore;

/**
 * A key for the store that names what is counted without holding an identifier in clear: emails
 * and usernames are personal data, and the store (Redis especially) is read by operators.
 */
export function limitKey(kind: string, ...parts: string[]): string {
  return `${kind}:${createHash('sha256').update(parts.join('\0')).digest('base64url').slice(0, 32)}`;
}

export interface FailurePolicy {
  failClosed: boolean;
  log: FastifyBaseLogger;
  /** Told of every failed store call (a metric hook). */
  onFailure?: (err: unknown) => void;
}

/** Wraps a store with the failure policy; the rate-limit plugin's store gets the same policy. */
export function guarded(store: LimitStore, policy: FailurePolicy): LimitStore {
  let lastWarning = 0;
  const failed = (err: unknown): void => {
    policy.onFailure?.(err);
    // A database store whose database is unavailable refuses at once, whatever the policy: the
    // request needs that database next anyway, and going on would make it wait a second bound
    // (DB_QUERY_TIMEOUT, then DB_ACQUIRE_TIMEOUT) before its 503.
    const refuse = policy.failClosed || (store.kind === 'database' && isDatabaseUnavailable(err));
    if (Date.now() - lastWarning > 10_000) {
      lastWarning = Date.now();
      policy.log.warn(
        { err, store: store.kind },
        refuse
          ? 'limits store unavailable: refusing throttled requests'
          : 'limits store unavailable: limits are off until it answers again',
      );
    }
    if (refuse) throw new AppError('service_unavailable', { detail: 'The service is unavailable, try again later.', cause: err });
  };
  const Inner = store.rateLimitStore;
  class GuardedRateLimitStore implements RateLimitStore {
    constructor(
      params: unknown,
      private readonly inner: RateLimitStore = new Inner(params),
    ) {}
    incr(key: string, cb: (err: Error | null, res?: { current: number; ttl: number }) => void, timeWindow: number, max: number): void {
      this.inner.incr(
        key,
        (err, res) => {
          if (!err) return cb(null, res);
          try {
            failed(err);
            cb(null, { current: 0, ttl: timeWindow }); // open: this request is not counted
          } catch (refusal) {
            cb(refusal as Error);
          }
        },
        timeWindow,
        max,
      );
    }
    child(routeOptions: Parameters<RateLimitStore['child']>[0]): RateLimitStore {
      return new GuardedRateLimitStore(undefined, this.inner.child(routeOptions));
    }
  }
  return {
    kind: store.kind,
    async hit(key, windowMs) {
      try {
        return await store.hit(key, windowMs);
      } catch (err) {
        if (err instanceof AppError) throw err;
        failed(err);
        return { count: 0, resetMs: 0 };
      }
    },
    async reset(key) {
      try {
        await store.reset(key);
      } catch (err) {
        failed(err);
      }
    },
    rateLimitStore: GuardedRateLimitStore,
    close: () => store.close(),
  };
}

export type { Db };
