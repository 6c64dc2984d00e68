// src/db/prepare-all.ts: the statements Drizzle builds are prepared once per connection and reused,
// in and out of transactions (PostgreSQL only: PGlite prepares its own, src/db/pglite-statements.ts).
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import t from 'tap';
import { preparingEveryStatement } from '../src/db/prepare-all.js';

const url = process.env.TEST_DATABASE_URL;

t.test('a built statement is prepared once per connection, then executed by name', { skip: !url && 'needs TEST_DATABASE_URL (a PostgreSQL server)' }, async (t) => {
  const marker = `prepare_all_${process.pid}_${Date.now()}`;
  // The texts this connection has prepared that carry the marker, with how often each ran.
  const preparedOf = async (db: ReturnType<typeof drizzle>) => {
    const rows = await db.execute<{ statement: string; runs: number }>(
      sql`select statement, (generic_plans + custom_plans)::int as runs from pg_prepared_statements where statement like ${`%${marker}%`} and statement not like '%pg_prepared_statements%'`,
    );
    return [...rows];
  };

  // One connection each, so that pg_prepared_statements (per connection) sees every statement.
  const client = postgres(url!, { max: 1, onnotice: () => {} });
  const plain = postgres(url!, { max: 1, onnotice: () => {} });
  t.teardown(() => Promise.all([client.end({ timeout: 1 }), plain.end({ timeout: 1 })]));
  const db = drizzle(preparingEveryStatement(client));
  // The marker is in the statement's text (a literal), the number a parameter.
  const query = (n: number) => sql`select ${n}::int as n, ${sql.raw(`'${marker}'`)}::text as marker`;

  for (let n = 1; n <= 3; n++) t.same([...(await db.execute(query(n)))], [{ n, marker }], 'the answer is unchanged');
  await db.transaction(async (tx) => {
    t.same([...(await tx.execute(query(4)))], [{ n: 4, marker }], 'in a transaction too');
    await tx.transaction(async (savepoint) => void (await savepoint.execute(query(5))));
  });
  const prepared = await preparedOf(db);
  t.equal(prepared.length, 1, 'one statement prepared for the text');
  t.equal(prepared[0]?.runs, 5, 'and run five times by name: three alone, one in a transaction, one in a savepoint');

  // Without the wrapper, Drizzle's statements are unnamed: nothing is kept, each is parsed again.
  const unwrapped = drizzle(plain);
  await unwrapped.execute(query(6));
  t.same(await preparedOf(unwrapped), [], 'the plain client prepares nothing (what the wrapper changes)');
});
