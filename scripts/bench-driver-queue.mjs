// Regression benchmark for postgres.js's Queue (issue 10 item 1): 300,000 queries under
// concurrency through one client, CPU per query measured in consecutive windows. postgres.js
// 3.4.9's Queue only frees its array when it is completely empty; under load the connection
// queues never empty, so every push grows the array and every remove() scans it: CPU per query
// rises linearly with the queries served. With the compacting queue (patches/postgres+*.patch,
// applied by patch-package at install) it stays flat.
//
//   node scripts/bench-driver-queue.mjs     (BENCH_POSTGRES_URL, QUERIES=300000, CONCURRENCY=50)
//
// Exits 1 when the last window costs more than 1.3x the first (after a warm-up window), so it can
// guard the patch. Bounded: it stops after 300 s whatever the count.
import postgres from 'postgres';

const url = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const QUERIES = Number(process.env.QUERIES ?? 300_000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 50);
const WINDOWS = 12;
const perWindow = Math.floor(QUERIES / WINDOWS);
const deadline = Date.now() + 300_000;

// The service's settings: a pool of 10, every query prepared.
const sql = postgres(url, { max: 10, onnotice: () => {} });
await sql`select 1`;

const rows = [];
let done = 0;
let cpu = process.cpuUsage();
let wall = performance.now();
let timedOut = false;
async function worker() {
  while (done < QUERIES) {
    if (Date.now() > deadline) {
      timedOut = true;
      return;
    }
    await sql`select ${done}::int as n`;
    done++;
    if (done % perWindow === 0) {
      const used = process.cpuUsage(cpu);
      const now = performance.now();
      rows.push({ upTo: done, usPerQuery: (used.user + used.system) / perWindow, qps: perWindow / ((now - wall) / 1000), heapMb: process.memoryUsage().heapUsed / 1048576 });
      cpu = process.cpuUsage();
      wall = now;
    }
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
await sql.end({ timeout: 5 });

console.log(`postgres.js, ${CONCURRENCY} concurrent queries on a pool of 10, node ${process.version}`);
console.log('| queries served | client CPU µs / query | queries/s | heap MB |');
console.log('| --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.upTo.toLocaleString('en')} | ${r.usPerQuery.toFixed(1)} | ${Math.round(r.qps).toLocaleString('en')} | ${r.heapMb.toFixed(0)} |`);
if (timedOut || rows.length < 3) {
  console.log(`stopped at the 300 s bound after ${done} queries`);
  process.exit(1);
}
const first = rows[1].usPerQuery; // rows[0] includes JIT warm-up and connection set-up
const last = rows[rows.length - 1].usPerQuery;
const growth = last / first;
console.log(`\nlast window / second window: ${growth.toFixed(2)}x (${first.toFixed(1)} -> ${last.toFixed(1)} µs per query)`);
if (growth > 1.3) {
  console.log('FAIL: CPU per query grows with the queries served (the Queue leak)');
  process.exit(1);
}
console.log('OK: CPU per query is flat');
