// Where a login's or a registration's CPU goes, thread by thread: the compiled service on a fresh
// PostgreSQL database, autocannon for BENCH_SECONDS (8) at BENCH_CONNECTIONS, then each thread's CPU
// (utime + stime from /proc/<pid>/task/<tid>/stat) and the benchmark database's backends' CPU,
// divided by the requests answered. The main thread runs the event loop; the two busiest others
// are libuv's pool, which hashes (PASSWORD_HASH_CONCURRENCY and the pool follow the core count);
// the rest are V8's helper threads (garbage collection, compilation).
//
//   npm run build && node scripts/bench-threads.mjs login      (4 connections, 16 accounts)
//   npm run build && node scripts/bench-threads.mjs register   (8 connections, a new account each)
//
// Environment: BENCH_POSTGRES_URL (as npm run bench), BENCH_SECONDS, BENCH_CONNECTIONS.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { cpuMsOf, startService, stop } from './bench-process.mjs';

const mode = process.argv[2];
if (mode !== 'login' && mode !== 'register') {
  console.error('usage: node scripts/bench-threads.mjs login|register');
  process.exit(2);
}
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? (mode === 'login' ? 4 : 8));
const ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const PASSWORD = 'correct horse battery staple';
const TICK_MS = 10; // /proc times are in clock ticks (USER_HZ = 100)

/** CPU ms of each thread of `pid`, by thread id. */
function threadsOf(pid) {
  const out = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, (Number(fields[11]) + Number(fields[12])) * TICK_MS);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
const dbName = `bench_threads_${randomBytes(4).toString('hex')}`;
await admin.unsafe(`create database ${dbName}`);
const url = new URL(ADMIN_URL);
url.pathname = `/${dbName}`;
const dataDir = mkdtempSync(join(tmpdir(), 'bench-threads-'));
const { privateKey } = generateKeyPairSync('ed25519');
const service = await startService(['dist/main.cjs'], {
  NODE_ENV: 'development',
  DATA_DIR: dataDir,
  LOG_LEVEL: 'warn',
  RATE_LIMIT_MAX: '1000000',
  RATE_LIMIT_TOKEN_MAX: '1000000',
  JWT_PRIVATE_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  DATABASE_URL: url.toString(),
});
try {
  const run = randomBytes(3).toString('hex');
  const json = (body) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const emails = [];
  if (mode === 'login') {
    for (let i = 0; i < 16; i++) {
      const account = { email: `t${run}${i}@example.com`, username: `t${run}${i}`, password1: PASSWORD, password2: PASSWORD };
      const res = await fetch(`${service.base}/register`, { method: 'POST', ...json(account) });
      if (res.status !== 201) throw new Error(`register answered ${res.status}`);
      emails.push(account.email);
    }
  }
  let n = 0;
  const next =
    mode === 'login'
      ? () => json({ email: emails[n++ % emails.length], password: PASSWORD })
      : () => {
          const name = `r${run}${n++}`;
          return json({ email: `${name}@example.com`, username: name, password1: PASSWORD, password2: PASSWORD });
        };
  const opts = {
    url: `${service.base}/${mode === 'login' ? 'token' : 'register'}`,
    connections: CONNECTIONS,
    requests: [{ method: 'POST', setupRequest: (req) => ({ ...req, ...next() }) }],
  };
  const load = (duration) => new Promise((resolve, reject) => autocannon({ ...opts, duration }, (err, r) => (err ? reject(err) : resolve(r))));
  await load(2); // warm-up: JIT, prepared statements, the pool's connections

  const backends = (await admin`select pid from pg_stat_activity where datname = ${dbName}`).map((r) => r.pid);
  const pid = service.child.pid;
  const before = threadsOf(pid);
  const db0 = backends.reduce((sum, p) => sum + cpuMsOf(p), 0);
  const result = await load(SECONDS);
  const after = threadsOf(pid);
  const db1 = backends.reduce((sum, p) => sum + cpuMsOf(p), 0);
  const ok = result['2xx'];
  if (ok === 0) throw new Error(`no request answered 2xx (${result.non2xx} non-2xx)`);

  const main = (after.get(String(pid)) - before.get(String(pid))) / ok;
  const others = [...after]
    .filter(([tid]) => tid !== String(pid))
    .map(([tid, ms]) => (ms - (before.get(tid) ?? 0)) / ok)
    .sort((a, b) => b - a);
  const f = (ms) => `${ms.toFixed(2)} ms`;
  const pool = others.slice(0, 2);
  console.log(`POST /${mode === 'login' ? 'token' : 'register'}: ${ok} answered in ${SECONDS} s at ${CONNECTIONS} connections (${result.non2xx} non-2xx); CPU per request:`);
  const line = (label, value) => console.log(`  ${label.padEnd(34)} ${value}`);
  line('main thread (event loop)', f(main));
  line('the two busiest others (hashing)', `${pool.map(f).join(' + ')} = ${f(pool[0] + pool[1])}`);
  line("the other threads (V8's helpers)", f(others.slice(2).reduce((a, b) => a + b, 0)));
  line("PostgreSQL's backends", f((db1 - db0) / ok));
} finally {
  await stop(service.child);
  await admin.unsafe(`drop database ${dbName} with (force)`);
  await admin.end();
  rmSync(dataDir, { recursive: true, force: true });
}
