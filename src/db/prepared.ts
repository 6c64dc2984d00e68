// Hand-written SQL as a named prepared statement, for the few hot statements the query builder
// cannot express as one statement (a data-modifying CTE). Prepared once per connection by
// postgres.js (no describe round trip per call), built once per database here; `sql.placeholder`
// marks the parameters. Rows come back as the database sends them (column names as selected).
import { type SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { Db } from './index.js';

const dialect = new PgDialect();

export interface RawPrepared<Row> {
  all(values: Record<string, unknown>): Promise<Row[]>;
}

export function rawPrepared<Row>(name: string, build: () => SQL): (db: Db) => RawPrepared<Row> {
  const perDb = new WeakMap<Db, RawPrepared<Row>>();
  return (db) => {
    let query = perDb.get(db);
    if (!query) {
      // Both drivers' prepared queries have all(): the rows as objects (typed on neither base class).
      const prepared = db._.session.prepareQuery(dialect.sqlToQuery(build()), undefined, name, false) as unknown as {
        all(values: Record<string, unknown>): Promise<Row[]>;
      };
      query = { all: (values) => prepared.all(values) };
      perDb.set(db, query);
    }
    return query;
  };
}
