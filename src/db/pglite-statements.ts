// Named prepared statements for PGlite. PGlite's own query() sends Parse, Describe, Bind,
// Describe, Execute and Sync as six separate calls into its WebAssembly, and parses and plans
// the statement every time: about 0.3 ms of the event loop's thread for the bearer check's
// session lookup on this machine. Here each distinct statement text is parsed once under a name
// (Parse + Describe, remembered with its parameter types), and every later call is one call
// carrying Bind, Describe, Execute and Sync: about 0.08 ms. PGlite runs on the event loop's
// thread, so this is the whole embedded default's throughput (issue 10 item 8).
//
// Drizzle is given this object in place of the PGlite instance: it calls query() and
// transaction() (tx.query()), nothing else (its migrator is given PGlite itself). The answer is PGlite's own result shape, parsed by
// PGlite's own parser, and errors are PGlite's DatabaseError (with `code`), thrown after the
// Sync was processed, so the connection is always back at ready-for-query.
import { PGlite, type QueryOptions, type Results, type Transaction, parse, protocol } from '@electric-sql/pglite';

const { serialize } = protocol;

interface Statement {
  name: string;
  paramTypes: number[];
}

/** Distinct statement texts kept prepared; the oldest is closed beyond it (admin filters vary). */
const MAX_STATEMENTS = 256;

export class PreparedPglite {
  readonly #pg: PGlite;
  readonly #statements = new Map<string, Statement>();
  #closing: string[] = [];
  #next = 0;

  constructor(pg: PGlite) {
    this.#pg = pg;
  }

  /** A statement outside a transaction: waits for any transaction to end, as PGlite's own does. */
  query<T>(text: string, params: unknown[] = [], options?: QueryOptions): Promise<Results<T>> {
    if (!plain(options)) return this.#pg.query<T>(text, params, options);
    return this.#pg._runExclusiveTransaction(() => this.#run<T>(text, params, options, true));
  }

  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.#pg.transaction((tx) =>
      fn({
        ...tx,
        get closed() {
          return tx.closed;
        },
        // A closed transaction's query() throws PGlite's own "Transaction is closed".
        query: <R>(text: string, params?: unknown[], options?: QueryOptions) =>
          tx.closed || !plain(options) ? tx.query<R>(text, params, options) : this.#run<R>(text, params ?? [], options, false),
      }),
    );
  }

  async #run<T>(text: string, params: unknown[], options: QueryOptions | undefined, sync: boolean): Promise<Results<T>> {
    await this.#pg._checkReady();
    return this.#pg._runExclusiveQuery(async () => {
      const statement = this.#statements.get(text) ?? (await this.#prepare(text));
      const values = params.map((value, i) => {
        if (value === null || value === undefined) return null;
        const serializer = this.#pg.serializers[statement.paramTypes[i]];
        return serializer ? serializer(value) : String(value);
      });
      const message = concat([
        ...this.#closing.splice(0).map((name) => serialize.close({ type: 'S', name })),
        serialize.bind({ statement: statement.name, values }),
        serialize.describe({ type: 'P' }),
        serialize.execute({}),
        serialize.sync(),
      ]);
      const { messages } = await this.#pg.execProtocol(message, { syncToFs: false });
      // Outside a transaction the write is flushed to the data folder now, as PGlite's query() does.
      if (sync) await this.#pg.syncToFs();
      return parse.parseResults(messages, this.#parsers(options?.parsers), { rowMode: options?.rowMode })[0] as Results<T>;
    });
  }

  // PGlite's parseResults spreads the caller's parsers over its several hundred own ones on every
  // call (11 % of /me's CPU in a profile). Drizzle passes a handful (timestamps left as strings), in
  // a new object for each query it builds: they are laid over PGlite's by prototype, not copied.
  #parsers(overrides: QueryOptions['parsers']): PGlite['parsers'] {
    return overrides ? Object.assign(Object.create(this.#pg.parsers) as PGlite['parsers'], overrides) : this.#pg.parsers;
  }

  async #prepare(text: string): Promise<Statement> {
    const name = `pglite_${this.#next++}`;
    const { messages } = await this.#pg.execProtocol(
      concat([serialize.parse({ name, text, types: [] }), serialize.describe({ type: 'S', name }), serialize.sync()]),
      { syncToFs: false },
    );
    const statement = { name, paramTypes: parse.parseDescribeStatementResults(messages) };
    if (this.#statements.size >= MAX_STATEMENTS) {
      const [oldest] = this.#statements;
      this.#statements.delete(oldest[0]);
      this.#closing.push(oldest[1].name);
    }
    this.#statements.set(text, statement);
    return statement;
  }
}

// Drizzle passes only rowMode and parsers; a blob (COPY) or explicit parameter types take
// PGlite's own path.
function plain(options: QueryOptions | undefined): boolean {
  return !options || (options.blob === undefined && options.paramTypes === undefined && options.serializers === undefined);
}

function concat(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
