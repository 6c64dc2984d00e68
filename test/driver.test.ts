// The patched postgres.js 3.4.9 (patches/postgres+3.4.9.patch), one reproducing test per patched
// behaviour. Unpatched, the first crashes the process, the second hangs, the third leaves an
// unhandled rejection, the fourth never ends, the others wait without bound, and the Queue's cost
// grows with every query ever made.
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import postgres from 'postgres';
import t from 'tap';
import { canRunCluster, startCluster } from './pg-cluster.js';

// The driver's internal queue, by path (the package does not export it), in both of its builds.
type QueueFactory = () => { length: number; push(x: unknown): unknown; shift(): any; remove(x: unknown): unknown };
const queues: Record<string, QueueFactory> = {
  esm: (await import(new URL('../node_modules/postgres/src/queue.js', import.meta.url).href)).default,
  cjs: createRequire(import.meta.url)('../node_modules/postgres/cjs/src/queue.js'),
};

type Sql = ReturnType<typeof postgres>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const opts = (extra: Record<string, unknown> = {}) => ({ onnotice: () => {}, ...extra }) as postgres.Options<Record<string, never>>;

t.test('the null-write crash: a query on a transaction whose backend died is rejected, the process survives (upstream #1154, #1066, #1208)', { skip: !canRunCluster && 'needs PostgreSQL 15 binaries and root' }, async (t) => {
  const cluster = await startCluster(t);
  const sql: Sql = postgres(cluster.url, opts({ max: 2 }));
  const admin: Sql = postgres(cluster.url, opts({ max: 1 }));
  t.teardown(() => Promise.all([sql.end({ timeout: 1 }), admin.end({ timeout: 1 })]));
  let uncaught: unknown;
  const onUncaught = (err: unknown) => (uncaught = err);
  // tap reports an uncaught exception as a failure anyway; this names it.
  process.prependListener('uncaughtException', onUncaught);
  t.teardown(() => process.removeListener('uncaughtException', onUncaught));

  let second: unknown;
  const tx = sql.begin(async (tx) => {
    const [{ pid }] = await tx`select pg_backend_pid() as pid`;
    await admin`select pg_terminate_backend(${pid})`;
    await sleep(300); // the close arrives; the transaction goes on, as an unawaited continuation would
    try {
      await tx`select 1`;
    } catch (err) {
      second = err;
      throw err;
    }
  });
  await t.rejects(tx, { code: 'CONNECTION_CLOSED' }, 'the transaction fails');
  await sleep(500); // the setImmediate that used to throw has run by now
  t.equal(uncaught, undefined, 'nothing was thrown outside the promise chain');
  t.match(second, { code: 'CONNECTION_CLOSED' }, 'the late query is rejected, not written to a null socket');
  t.same(await sql`select 1 as ok`, [{ ok: 1 }], 'the pool serves queries again');
});

t.test('a server that closes during start-up: the query fails within connect_timeout instead of hanging (upstream PR #1214)', async (t) => {
  // Accepts TCP and closes at once, cleanly (FIN, no error): a proxy whose backend is away.
  let accepted = 0;
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  const port = (server.address() as { port: number }).port;
  const sql: Sql = postgres(`postgres://x@127.0.0.1:${port}/x`, opts({ max: 1, connect_timeout: 1 }));
  t.teardown(() => sql.end({ timeout: 0 }));
  const started = Date.now();
  await t.rejects(sql`select 1`, { code: 'CONNECTION_CLOSED' });
  const took = Date.now() - started;
  t.ok(took < 2_500, `rejected after ${took} ms (connect_timeout 1 s)`);
  t.ok(accepted >= 2, `retried with backoff meanwhile (${accepted} attempts)`);
  t.ok(accepted < 200, `not a busy loop (${accepted} attempts)`);
});

t.test('a server that dies right after the handshake: the array-types query is no unhandled rejection', async (t) => {
  // Answers the start-up (AuthenticationOk, ReadyForQuery), then resets the connection on the
  // first query, which is postgres.js's own array-types query (fetch_types).
  const server = createServer((socket) => {
    let started = false;
    socket.on('data', () => {
      if (started) return socket.resetAndDestroy();
      started = true;
      socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0, 0x5a, 0, 0, 0, 5, 0x49])); // R ok, Z idle
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => void unhandled.push(err);
  process.prependListener('unhandledRejection', onUnhandled);
  t.teardown(() => process.removeListener('unhandledRejection', onUnhandled));
  const port = (server.address() as import('node:net').AddressInfo).port;
  const sql: Sql = postgres(`postgres://x@127.0.0.1:${port}/x`, opts({ max: 1, connect_timeout: 2 }));
  t.teardown(() => sql.end({ timeout: 0 }));
  await t.rejects(sql`select 1`, 'the query waiting on the connection fails');
  await sleep(300);
  t.same(unhandled.map(String), [], 'no promise was left to reject unhandled');
});

t.test('queue_timeout: a query that cannot start in time is rejected at once', { skip: !canRunCluster && 'needs PostgreSQL 15 binaries and root' }, async (t) => {
  const cluster = await startCluster(t);
  const sql: Sql = postgres(cluster.url, opts({ max: 1, queue_timeout: 0.5 }));
  t.teardown(() => sql.end({ timeout: 1 }));
  await sql`create table ran (id int)`;

  t.test('waiting for a connection (the only one is in a transaction): rejected, and it never runs', async (t) => {
    const holder = sql.begin(async (tx) => {
      await tx`select pg_sleep(1.5)`;
    });
    await sleep(100);
    const started = Date.now();
    await t.rejects(sql`insert into ran values (1)`, { code: 'QUEUE_TIMEOUT' });
    const took = Date.now() - started;
    t.ok(took >= 400 && took < 1_300, `rejected after ${took} ms (queue_timeout 0.5 s)`);
    await holder;
    await sleep(200);
    t.same(await sql`select count(*)::int as n from ran`, [{ n: 0 }], 'the timed-out insert never ran');
  });

  t.test('pipelined behind a slow statement on a busy connection: rejected in time', async (t) => {
    const holder = sql`select pg_sleep(1.5)`.execute();
    await sleep(100);
    const started = Date.now();
    await t.rejects(sql`select 1`, { code: 'QUEUE_TIMEOUT' });
    const took = Date.now() - started;
    t.ok(took >= 400 && took < 1_300, `rejected after ${took} ms (queue_timeout 0.5 s)`);
    await holder;
    t.same(await sql`select 3 as ok`, [{ ok: 3 }], 'the connection goes on serving');
  });
});

t.test('query_timeout: a server that stops answering without closing fails the query and the pool recovers', { skip: !canRunCluster && 'needs PostgreSQL 15 binaries and root' }, async (t) => {
  const cluster = await startCluster(t);
  const sql: Sql = postgres(cluster.url, opts({ max: 2, query_timeout: 1, connect_timeout: 1, connection: { statement_timeout: 500 } }));
  t.teardown(() => sql.end({ timeout: 1 }));
  await sql`select 1`;
  cluster.freeze(); // no RST, no FIN: the packets just go unanswered
  const started = Date.now();
  await t.rejects(sql`select 1`, { code: /QUERY_TIMEOUT|CONNECT_TIMEOUT/ });
  const took = Date.now() - started;
  t.ok(took < 2_500, `rejected after ${took} ms (query_timeout 1 s)`);
  cluster.thaw();
  t.same(await sql`select 2 as ok`, [{ ok: 2 }], 'answers again once the server does');
  // A live server's statement_timeout (shorter than query_timeout) answers first: 57014, and the
  // connection is kept.
  await t.rejects(sql`select pg_sleep(3)`, { code: '57014' }, 'a slow statement is cancelled by the server, not cut by the client');
  t.same(await sql`select 4 as ok`, [{ ok: 4 }]);
});

for (const [build, Queue] of Object.entries(queues)) t.test(`the Queue compacts (${build} build): its cost per operation stays flat however long the process runs (issue 10 item 1)`, async (t) => {
  // The pool's queues never drain under steady load: one item stays while others pass through.
  const q = Queue();
  q.push('resident');
  const stranger = {};
  const measure = () => {
    const started = process.hrtime.bigint();
    for (let i = 0; i < 2_000; i++) q.remove(stranger);
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  const early = measure();
  for (let i = 0; i < 2_000_000; i++) {
    q.push(i);
    q.push(q.shift()); // the resident goes round, so the queue is never empty
    q.shift();
  }
  const late = measure();
  t.equal(q.length, 1, 'one item left');
  t.equal(q.shift(), 'resident');
  t.equal(q.length, 0);
  t.equal(q.shift(), undefined, 'shift on an empty queue');
  // Unpatched, every remove() scans the 4,000,000 leaked slots: seconds for these 2,000 calls.
  t.ok(late < 200, `2,000 removes after 2,000,000 passes: ${late.toFixed(1)} ms (before: ${early.toFixed(1)} ms)`);

  const order = Queue();
  for (let i = 0; i < 10_000; i++) order.push(i);
  const out: number[] = [];
  for (let i = 0; i < 5_000; i++) out.push(order.shift());
  t.equal(order.remove(7_000), 7_000, 'remove finds a live item after compaction');
  t.equal(order.remove(10), null, 'and not a shifted one');
  while (order.length) out.push(order.shift());
  t.equal(out.length, 9_999);
  t.ok(out.every((v, i) => i === 0 || v > out[i - 1]), 'first in, first out across compactions');
});
