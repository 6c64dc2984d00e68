// The real process gives its heap back once it is quiet after a burst (lib/idle-gc.ts), and never
// while it is busy.
import t from 'tap';
import { call, startServer, stopServer } from './process.js';

const collections = (output: string) => output.split('\n').filter((l) => l.includes('"idle: garbage collected"')).map((l) => JSON.parse(l));

/** Requests for `ms`, 20 at a time: garbage on the heap (each request's objects). */
async function burst(url: string, ms: number) {
  const end = Date.now() + ms;
  let i = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (Date.now() < end) await call(url, 'POST', '/token/verify', { token: `not.a.token${i++}` });
    }),
  );
}

t.test('quiet after a burst: one collection gives the heap back; none during the burst', async (t) => {
  const server = await startServer(t, { DATABASE_URL: 'memory://', LOG_LEVEL: 'debug', IDLE_GC_INTERVAL: '1s' });
  await new Promise((r) => setTimeout(r, 2500)); // start-up's own garbage, collected or not
  const before = collections(server.output()).length;
  await burst(server.url, 4000);
  const duringBurst = collections(server.output()).length - before;
  await new Promise((r) => setTimeout(r, 3000));
  const after = collections(server.output()).slice(before);
  t.ok(after.length >= 1, `collected once quiet (${after.length})`);
  t.equal(duringBurst, 0, 'none in 4 s of requests (checked every second)');
  const last = after.at(-1);
  t.ok(last.heapUsedMb.after < last.heapUsedMb.before, `the heap in use: ${last.heapUsedMb.before} → ${last.heapUsedMb.after} MB`);
  t.equal((await call(server.url, 'GET', '/health')).status, 200, 'and it still serves');
  t.equal(await stopServer(server), 0);
});

t.test('IDLE_GC_INTERVAL=0: never', async (t) => {
  const server = await startServer(t, { DATABASE_URL: 'memory://', LOG_LEVEL: 'debug', IDLE_GC_INTERVAL: '0' });
  await burst(server.url, 3000);
  await new Promise((r) => setTimeout(r, 2500));
  t.same(collections(server.output()), []);
  t.equal(await stopServer(server), 0);
});
