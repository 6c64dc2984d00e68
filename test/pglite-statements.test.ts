// The embedded database's named prepared statements (src/db/pglite-statements.ts): the same
// answers and errors as PGlite's own query(), one parse per statement text, a connection that is
// always usable after an error, transactions that still commit and roll back, and a bounded number
// of statements kept. The service's own use of it is the whole suite on PGlite.
import { PGlite, types } from '@electric-sql/pglite';
import t, { type Test } from 'tap';
import { PreparedPglite } from '../src/db/pglite-statements.js';

// The options Drizzle passes: array rows, timestamps left as strings.
const drizzleOptions = { rowMode: 'array' as const, parsers: { [types.TIMESTAMPTZ]: (v: string) => v } };

async function setup(t: Test) {
  const pg = await PGlite.create();
  t.teardown(() => pg.close());
  await pg.exec(`
    create table items (id int primary key, name text not null, tags text[], doc jsonb, at timestamptz default now(), ok boolean);
    insert into items values (1, 'one', '{a,b}', '{"x": 1}', '2026-01-02T03:04:05Z', true);`);
  return { pg, prepared: new PreparedPglite(pg) };
}

/** How many statements PGlite has parsed under a name so far (the extended protocol's, not SQL's). */
async function named(pg: PGlite): Promise<string[]> {
  const { rows } = await pg.query<{ name: string }>('select name from pg_prepared_statements order by name');
  return rows.map((r) => r.name);
}

t.test('answers as PGlite does: rows, parsers, parameter types, affected rows', async (t) => {
  const { pg, prepared } = await setup(t);
  const statements: [string, unknown[]][] = [
    ['select * from items where id = $1', [1]],
    ['select name, tags, doc, at, ok from items where name = $1 and ok = $2', ['one', true]],
    ['select $1::jsonb as j, $2::text[] as a, $3::int as n, $4::timestamptz as t', [{ k: [1, 'two'] }, ['x', 'y,z'], null, new Date('2026-05-06T07:08:09Z')]],
    ["insert into items (id, name, doc) values ($1, $2, $3) returning id, doc", [2, 'two', JSON.stringify({ y: 2 })]],
    ['update items set name = name || $1 where id > $2', ['!', 0]],
  ];
  // Writes are undone after each run, so every run sees the same table.
  const undo = (text: string) => (text.startsWith('insert') ? pg.query('delete from items where id = 2') : text.startsWith('update') ? pg.query("update items set name = rtrim(name, '!')") : undefined);
  for (const [text, params] of statements) {
    for (const options of [undefined, drizzleOptions]) {
      const label = `${text} (${options ? 'array rows' : 'objects'})`;
      // Ours twice (a parse, then the named statement), then PGlite's own.
      const first = await prepared.query(text, params, options);
      await undo(text);
      const again = await prepared.query(text, params, options);
      await undo(text);
      const theirs = await pg.query(text, params, options);
      await undo(text);
      t.same(first, theirs, `${label}: first call`);
      t.same(again, theirs, `${label}: from the named statement`);
    }
  }
  t.ok((await named(pg)).length >= 1, 'the statements are kept parsed under a name');
});

t.test('an error is PGlite\'s DatabaseError with its code, and the connection serves the next query', async (t) => {
  const { pg, prepared } = await setup(t);
  await t.rejects(prepared.query('insert into items (id, name) values ($1, $2)', [1, 'dup']), { code: '23505' }, 'unique violation');
  await t.rejects(prepared.query('insert into items (id, name) values ($1, $2)', [1, 'dup']), { code: '23505' }, 'again, from the named statement');
  await t.rejects(prepared.query('select nope from items where id = $1', [1]), { code: '42703' }, 'a statement that does not parse');
  await t.rejects(prepared.query('select $1::int as n', ['not a number']), { code: '22P02' }, 'a parameter the type refuses');
  t.same((await prepared.query<{ n: number }>('select count(*)::int as n from items where id = $1', [1])).rows, [{ n: 1 }], 'the next query is served');
  t.same((await pg.query<{ n: number }>('select 1 as n')).rows, [{ n: 1 }], 'and PGlite\'s own path too');
});

t.test('transactions commit, roll back on a thrown error, and refuse queries once closed', async (t) => {
  const { pg, prepared } = await setup(t);
  await prepared.transaction(async (tx) => {
    await tx.query('insert into items (id, name) values ($1, $2)', [10, 'ten']);
    await tx.query('update items set name = $1 where id = $2', ['TEN', 10]);
  });
  t.same((await pg.query('select name from items where id = 10')).rows, [{ name: 'TEN' }], 'committed');

  await t.rejects(
    prepared.transaction(async (tx) => {
      await tx.query('insert into items (id, name) values ($1, $2)', [11, 'eleven']);
      await tx.query('insert into items (id, name) values ($1, $2)', [10, 'duplicate']);
    }),
    { code: '23505' },
  );
  t.same((await pg.query('select id from items where id = 11')).rows, [], 'the first write was rolled back');

  let kept: { query: (text: string, params?: unknown[]) => Promise<unknown> } | undefined;
  await prepared.transaction(async (tx) => {
    kept = tx;
  });
  await t.rejects(kept!.query('select 1'), /closed/, 'a finished transaction refuses queries');

  // A query outside waits for a transaction in progress instead of running inside it.
  let inside!: () => void;
  const held = new Promise<void>((r) => (inside = r));
  const tx = prepared.transaction(async (tx) => {
    await tx.query('insert into items (id, name) values ($1, $2)', [12, 'twelve']);
    await held;
    await tx.rollback();
  });
  const outside = prepared.query<{ n: number }>('select count(*)::int as n from items where id = $1', [12]);
  setTimeout(inside, 50);
  await tx;
  t.same((await outside).rows, [{ n: 0 }], 'the outside query saw the rolled-back state, after the transaction');
});

t.test('the statements kept are bounded: the oldest is closed when a new text arrives beyond the limit', async (t) => {
  const { pg, prepared } = await setup(t);
  for (let i = 0; i < 300; i++) await prepared.query(`select $1::int + ${i} as n`, [1]);
  const names = await named(pg);
  t.ok(names.length <= 257, `at most the limit kept (${names.length})`);
  t.ok(names.length >= 200, 'the recent ones are kept');
  t.same((await prepared.query<{ n: number }>('select $1::int + 0 as n', [1])).rows, [{ n: 1 }], 'an evicted text is parsed again');
});
