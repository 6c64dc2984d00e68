// How much of the connection pool is in use, for the metrics. Neither postgres.js nor PGlite
// reports it, so the client Drizzle is given is wrapped: a statement outside a transaction holds
// a connection until it settles, a transaction holds one from BEGIN to COMMIT. More holders than
// connections means callers are queueing for one.

export interface PoolStats {
  /** Connections the pool may open (1 for PGlite: one connection in this process). */
  max: number;
  /** Statements and transactions holding or waiting for a connection now. */
  active(): number;
}

/**
 * Wraps a postgres.js `sql` or a PGlite instance: `methods` are the ones Drizzle calls
 * (postgres.js: unsafe, begin; PGlite: query, transaction). Everything else passes through.
 */
export function trackPool<C extends object>(client: C, max: number, methods: readonly string[]): { client: C; stats: PoolStats } {
  let active = 0;
  const settle = () => void active--;
  const wrapped = new Proxy(client, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      if (!methods.includes(key as string)) return value.bind(target); // PGlite's private fields need the real `this`
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        return countWhilePending(result, () => active++, settle);
      };
    },
  });
  return { client: wrapped, stats: { max, active: () => active } };
}

// A promise (postgres.js's begin, PGlite's calls) is already running: counted from the call, so a
// transaction that nobody awaits yet still shows. postgres.js queries are lazy thenables (they run
// when first awaited, and `.values()` may still be called on them before that), so their count
// starts at the first `then`, not at the call.
function countWhilePending<T>(result: T, start: () => void, end: () => void): T {
  if (result instanceof Promise) {
    start();
    result.then(end, end);
    return result;
  }
  if (!result || typeof (result as { then?: unknown }).then !== 'function') return result;
  const thenable = result as unknown as PromiseLike<unknown> & { then: PromiseLike<unknown>['then'] };
  const then = thenable.then;
  let counted = false;
  thenable.then = function (this: PromiseLike<unknown>, onFulfilled?: any, onRejected?: any) {
    if (!counted) {
      counted = true;
      start();
      then.call(this, end, end);
    }
    return then.call(this, onFulfilled, onRejected);
  } as typeof then;
  return result;
}
