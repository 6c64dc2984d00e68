// Every statement Drizzle builds, prepared on PostgreSQL (issue 10, item 6: "prepare them").
//
// postgres.js sends a statement with parameters that is not to be prepared as Parse + Describe,
// waits for the parameter types, and only then sends Bind + Execute: two round trips, and a parse
// and plan by the backend each time. Drizzle marks its queries unprepared unless they are named
// (`.prepare(name)`), so each insert and update of a transaction paid two waits. Asked to
// prepare, postgres.js names each distinct statement text once per connection and keeps it: the
// text's first execution on a connection pays the describe, every later one is one round trip and
// no parse. The texts are the code's own (values are always parameters; variable lists are
// subqueries or `= any($1)`), so the statements kept per connection are bounded by the code.
//
// The wrapper is given to Drizzle in place of the client: `unsafe` (what Drizzle runs statements
// with) asks for preparation, and the clients of `begin` and `savepoint` (a transaction's) are
// wrapped the same way. Statements without parameters keep postgres.js's simple protocol.
type Unsafe = (query: string, params?: unknown, options?: Record<string, unknown>) => unknown;
type Scoped = (...args: unknown[]) => unknown;

export function preparingEveryStatement<C extends object>(client: C): C {
  return new Proxy(client, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (key === 'unsafe') {
        const unsafe = value as Unsafe;
        return (query: string, params: unknown = [], options: Record<string, unknown> = {}) =>
          // postgres.js's own (query, options) form, without parameters, is passed on as it is.
          Array.isArray(params) ? unsafe.call(target, query, params, { ...options, prepare: true }) : unsafe.call(target, query, params);
      }
      if (key === 'begin' || key === 'savepoint') {
        const scoped = value as Scoped;
        return (...args: unknown[]) => {
          const fn = args.pop() as (sql: C) => unknown;
          return scoped.call(target, ...args, (sql: C) => fn(preparingEveryStatement(sql)));
        };
      }
      return value;
    },
  });
}
