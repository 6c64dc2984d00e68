// `npm run bench`: the service against its limits, measured side by side in one run.
//
// For each database (PostgreSQL when reachable, then the embedded PGlite default) it:
//   1. seeds distinct accounts, sessions and refresh tokens through the API (a first process with a
//      cheap argon2 cost, so that seeding thousands of sessions takes seconds);
//   2. restarts the service with the production argon2 cost (a fresh process, as deployed) and
//      starts a bare Fastify process with only the unavoidable crypto (scripts/bench-baseline.mjs);
//   3. runs each row and its baseline alternately, BENCH_RUNS times, and reports medians.
// Every request uses a different session's token; a refresh token is presented once (each
// response's new token is the next request's), a registration is a new account.
// CPU per request = the server process's CPU (all threads, /proc/<pid>/stat) plus, on PostgreSQL,
// the CPU of the backends serving the benchmark's database (in parentheses in the table), over the
// requests answered. The machine is shared: CPU per request and ratios in the same run are the
// figures to trust, not req/s.
//
// Environment: BENCH_DATABASES=postgres,pglite  BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
//              BENCH_RUNS=3  BENCH_SECONDS=2  BENCH_SESSIONS=2000
// The service runs as deployed, compiled (`node dist/main.cjs`), when dist/ is up to date with
// src/ (`npm run build` first); otherwise through tsx, and the first line says which.
// Throttling stays on, at a ceiling the benchmark cannot reach from its one address
// (RATE_LIMIT_MAX = RATE_LIMIT_TOKEN_MAX = 1,000,000 per minute): its per-request cost is measured.
// Loopback only, random ports, every run bounded in time; the databases it creates are dropped.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { cpuMsOf, startProcess, startService as startServiceProcess, stop } from './bench-process.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 45);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 2000);
const DATABASES = (process.env.BENCH_DATABASES ?? 'postgres,pglite').split(',');
// BENCH_ONLY: a regular expression; only the rows whose name matches it run, with their limits.
const ONLY = new RegExp(process.env.BENCH_ONLY ?? '', 'i');
const ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const PASSWORD = 'correct horse battery staple';
const THREADS = String(availableParallelism());

// dist/ is used only when it is newer than every source file (npm run build).
const newest = (path) => {
  const s = statSync(path);
  return s.isDirectory() ? Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name)))) : s.mtimeMs;
};
const COMPILED = existsSync('dist/.build-stamp') && statSync('dist/.build-stamp').mtimeMs >= newest('src');
const SERVER_ARGS = COMPILED ? ['dist/main.cjs'] : ['--import', 'tsx', 'src/server.ts'];

// ---------------------------------------------------------------------------------------------
// Processes (the shared part: scripts/bench-process.mjs)

const rssMbOf = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

/** Starts `node <args>` and resolves once its stdout matches `readyLine` (the baseline's port). */
function start(args, env, readyLine) {
  const child = startProcess(args, env);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start`)), 60_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = readyLine.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve({ child, match });
      }
    });
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${out.slice(-2000)}`)));
  });
}

const startService = (env) => startServiceProcess(SERVER_ARGS, env);

// ---------------------------------------------------------------------------------------------
// Seeding

const post = async (base, path, body, token) => {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
};

async function pool(n, concurrency, work) {
  const out = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await work(i);
      }
    }),
  );
  return out;
}

const runId = randomBytes(3).toString('hex');
let accounts = 0;
async function registerAccount(base) {
  const n = accounts++;
  const res = await post(base, '/register', { email: `b${runId}${n}@example.com`, username: `b${runId}${n}`, password1: PASSWORD, password2: PASSWORD });
  if (res.status !== 201 || !res.body.refreshToken) throw new Error(`seeding: register answered ${res.status} ${JSON.stringify(res.body)}`);
  return { email: `b${runId}${n}@example.com`, token: res.body.token, refreshToken: res.body.refreshToken };
}

// ---------------------------------------------------------------------------------------------
// Measuring

/** One autocannon run; CPU of the server (and its PostgreSQL backends) over it. */
async function measure(target, opts) {
  const backends = target.backendPids ? await target.backendPids() : [];
  const server0 = cpuMsOf(target.pid);
  const db0 = backends.reduce((s, p) => s + cpuMsOf(p), 0);
  const duration = opts.duration ?? SECONDS;
  const result = await new Promise((resolve, reject) => autocannon({ ...opts, duration }, (err, r) => (err ? reject(err) : resolve(r))));
  const after = target.backendPids ? await target.backendPids() : [];
  const all = [...new Set([...backends, ...after])];
  const server1 = cpuMsOf(target.pid);
  const db1 = all.reduce((s, p) => s + cpuMsOf(p), 0);
  const ok = result['2xx'];
  if (process.env.BENCH_DEBUG) console.error(opts.url, result.non2xx, result.errors, result.timeouts);
  return {
    ok,
    errors: result.non2xx + result.errors + result.timeouts,
    detail: `${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`,
    rps: ok / duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuMs: ok ? (server1 - server0 + db1 - db0) / ok : NaN,
    dbCpuMs: ok && target.backendPids ? (db1 - db0) / ok : NaN,
  };
}

const median = (xs) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function summarise(samples) {
  return {
    rps: median(samples.map((s) => s.rps)),
    p50: median(samples.map((s) => s.p50)),
    p99: median(samples.map((s) => s.p99)),
    cpuMs: median(samples.map((s) => s.cpuMs)),
    dbCpuMs: median(samples.map((s) => s.dbCpuMs)),
    ok: samples.reduce((n, s) => n + s.ok, 0),
    errors: samples.reduce((n, s) => n + s.errors, 0),
  };
}

// ---------------------------------------------------------------------------------------------
// Request makers: each request a different session, each refresh token once

function bearerRequests(base, path, sessions, method = 'GET') {
  let i = 0;
  return {
    url: base + path,
    requests: [
      {
        method,
        setupRequest: (req) => {
          const token = sessions[i++ % sessions.length].token;
          if (method === 'GET') return { ...req, headers: { authorization: `Bearer ${token}` } };
          return { ...req, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) };
        },
      },
    ],
  };
}

function refreshRequests(base, chains) {
  // One free list across runs: a chain cut off by the end of a run (its response never read)
  // is never back in it.
  const free = (chains.free ??= [...chains]);
  return {
    url: `${base}/token/refresh`,
    requests: [
      {
        method: 'POST',
        setupRequest: (req, context) => {
          // A chain is in one request at a time; one cut off by the end of a run is never reused.
          const chain = free.shift();
          if (!chain) throw new Error('bench: out of refresh chains (raise BENCH_SESSIONS)');
          context.chain = chain;
          return { ...req, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: chain.refreshToken }) };
        },
        onResponse: (status, body, context) => {
          const chain = context.chain;
          if (!chain) return;
          context.chain = undefined;
          if (status !== 200) {
            if (process.env.BENCH_DEBUG) console.error('refresh', status, body);
            return; // counted as non-2xx; the chain is dropped
          }
          chain.refreshToken = JSON.parse(body).refreshToken;
          free.push(chain);
        },
      },
    ],
  };
}

function loginRequests(base, users) {
  let i = 0;
  return {
    url: `${base}/token`,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => ({ ...req, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: users[i++ % users.length].email, password: PASSWORD }) }),
      },
    ],
  };
}

function registerRequests(base, path = '/register') {
  let i = 0;
  const prefix = randomBytes(3).toString('hex');
  return {
    url: base + path,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => {
          const n = `r${prefix}${i++}`;
          return { ...req, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `${n}@example.com`, username: n, password1: PASSWORD, password2: PASSWORD }) };
        },
      },
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// One database

async function benchDatabase(kind, key) {
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-bench-'));
  let databaseUrl;
  let admin;
  let dbName;
  if (kind === 'postgres') {
    admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    try {
      await admin`select 1`;
    } catch (err) {
      console.log(`PostgreSQL not reachable at ${ADMIN_URL} (${err.code ?? err.message}): skipped`);
      await admin.end();
      return [];
    }
    dbName = `bench_${randomBytes(4).toString('hex')}`;
    await admin.unsafe(`create database ${dbName}`);
    const u = new URL(ADMIN_URL);
    u.pathname = `/${dbName}`;
    databaseUrl = u.toString();
  }
  const label = kind === 'postgres' ? 'PostgreSQL' : 'embedded PGlite';
  const env = {
    NODE_ENV: 'development',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_MAX: '1000000',
    RATE_LIMIT_TOKEN_MAX: '1000000',
    JWT_PRIVATE_KEY: key,
    JWT_EXPIRATION_DELTA: '1h',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  };
  // postgres.js: pass every key, so an inherited DATABASE_URL cannot leak into the PGlite run.
  if (!databaseUrl) env.DATABASE_URL = '';
  const rows = [];
  let service;
  let baseline;
  try {
    // 1. Seeding, at a cheap argon2 cost. The first start on an empty DATA_DIR is timed.
    const seeder = await startService({ ...env, ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1' });
    rows.push({ group: 'start', name: `first start, ${label} (empty database)`, value: `${(seeder.startMs / 1000).toFixed(2)} s to a first 200 on /health` });
    const t0 = performance.now();
    const seeded = await pool(SESSIONS, 8, () => registerAccount(seeder.base));
    console.log(`${label}: ${SESSIONS} accounts and sessions seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await stop(seeder.child);

    // 2. The service at the production cost, and the baseline.
    service = await startService(env);
    await new Promise((r) => setTimeout(r, 1000));
    rows.push({ group: 'memory', name: `RSS 1 s after start, ${label}`, value: `${rssMbOf(service.child.pid).toFixed(0)} MB` });
    rows.push({ group: 'start', name: `restart, ${label} (existing database)`, value: `${(service.startMs / 1000).toFixed(2)} s` });
    const { child: baseChild, match } = await start(['scripts/bench-baseline.mjs'], { JWT_PRIVATE_KEY: key, UV_THREADPOOL_SIZE: THREADS }, /port (\d+)/);
    baseline = baseChild;
    const baseUrl = `http://127.0.0.1:${match[1]}`;
    const loginUsers = await pool(16, 4, () => registerAccount(service.base)); // production-cost hashes

    const svc = {
      pid: service.child.pid,
      backendPids: admin ? async () => (await admin`select pid from pg_stat_activity where datname = ${dbName}`).map((r) => r.pid) : undefined,
    };
    const base = { pid: baseline.pid };
    const half = Math.floor(seeded.length / 2);
    const bearerSessions = seeded.slice(0, half);
    const chains = seeded.slice(half).map((s) => ({ refreshToken: s.refreshToken }));

    const allRows = [
      { name: 'EdDSA verify alone (bare Fastify)', target: base, opts: () => ({ ...bearerRequests(baseUrl, '/jwt', bearerSessions), connections: 20 }), baselineOf: 'jwt' },
      { name: `GET /me, ${label}`, target: svc, opts: () => ({ ...bearerRequests(service.base, '/me', bearerSessions), connections: 20 }), against: 'jwt' },
      { name: `POST /token/verify, ${label}`, target: svc, opts: () => ({ ...bearerRequests(service.base, '/token/verify', bearerSessions, 'POST'), connections: 20 }), against: 'jwt' },
      { name: `POST /token/refresh, ${label}, each token once`, target: svc, opts: () => ({ ...refreshRequests(service.base, chains), connections: 20 }), against: 'jwt' },
      { name: 'argon2id verify alone, 4 connections', target: base, opts: () => ({ ...loginRequests(baseUrl, loginUsers), url: `${baseUrl}/argon2/verify`, connections: 4, duration: 2 * SECONDS }), baselineOf: 'verify' },
      { name: `POST /token, right password, 4 connections, ${label}`, target: svc, opts: () => ({ ...loginRequests(service.base, loginUsers), connections: 4, duration: 2 * SECONDS }), against: 'verify' },
      { name: 'argon2id hash alone, 8 connections', target: base, opts: () => ({ ...registerRequests(baseUrl, '/argon2/hash'), connections: 8, duration: 2 * SECONDS }), baselineOf: 'hash' },
      { name: `POST /register, 8 connections, ${label}`, target: svc, opts: () => ({ ...registerRequests(service.base), connections: 8, duration: 2 * SECONDS }), against: 'hash' },
    ];
    const chosen = allRows.filter((row) => row.against && ONLY.test(row.name));
    const table = allRows.filter((row) => chosen.includes(row) || chosen.some((c) => c.against === row.baselineOf));
    // Warm both processes (JIT, pools, PostgreSQL's caches) before anything counts.
    for (const row of table) await measureQuietly(row, 1);
    const samples = new Map(table.map((row) => [row, []]));
    // Alternate: run r of every row, then run r + 1, so that a noisy moment hits all rows alike.
    for (let r = 0; r < RUNS; r++) {
      for (const row of table) samples.get(row).push(await measure(row.target, row.opts()));
    }
    const results = new Map(table.map((row) => [row, summarise(samples.get(row))]));
    const baselines = Object.fromEntries(table.filter((row) => row.baselineOf).map((row) => [row.baselineOf, results.get(row)]));
    for (const row of table) {
      const s = results.get(row);
      const b = row.against && baselines[row.against];
      rows.push({
        group: 'load',
        name: row.name,
        ...s,
        cpuRatio: b ? b.cpuMs / s.cpuMs : undefined,
        rpsRatio: b ? s.rps / b.rps : undefined,
        isBaseline: Boolean(row.baselineOf),
      });
    }
    // Idle after the load: V8 gives back the young generation that start-up and the load grew
    // once the process has been quiet for a while (its memory reducer, about 30 s here), so the
    // figure 1 s after start is not what an idle instance holds.
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    rows.push({ group: 'memory', name: `RSS idle ${IDLE_SECONDS} s after the load, ${label}`, value: `${rssMbOf(service.child.pid).toFixed(0)} MB` });
  } finally {
    if (service) await stop(service.child);
    if (baseline) await stop(baseline);
    rmSync(dataDir, { recursive: true, force: true });
    if (admin) {
      await admin.unsafe(`drop database if exists ${dbName} with (force)`).catch(() => {});
      await admin.end();
    }
  }
  return rows;
}

async function measureQuietly(row, seconds) {
  await new Promise((resolve, reject) => autocannon({ ...row.opts(), duration: seconds }, (err, r) => (err ? reject(err) : resolve(r))));
}

// ---------------------------------------------------------------------------------------------

const { privateKey } = generateKeyPairSync('ed25519');
const key = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const began = performance.now();
console.log(
  `npm run bench: node ${process.version}, ${cpus().length} × ${cpus()[0]?.model.trim()}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, ` +
    `service: node ${SERVER_ARGS.join(' ')}, hash concurrency and libuv pool ${THREADS} (the baseline's pool too), ${RUNS} alternating runs of ${SECONDS} s per row (medians), ${SESSIONS} distinct sessions`,
);
const all = [];
for (const kind of DATABASES) all.push(...(await benchDatabase(kind.trim(), key)));

const f = (x, d = 2) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(d));
const pct = (x) => (x === undefined ? '—' : `${Math.round(x * 100)} %`);
console.log('\n| operation | CPU ms / request (of which PostgreSQL) | req/s | p50 / p99 ms | ratio to its limit: CPU, req/s | requests (non-2xx) |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const row of all.filter((r) => r.group === 'load')) {
  const ratio = row.isBaseline ? 'the limit' : row.cpuRatio === undefined ? '—' : `${pct(row.cpuRatio)}, ${pct(row.rpsRatio)}`;
  console.log(`| ${row.name} | ${f(row.cpuMs, 3)}${Number.isNaN(row.dbCpuMs ?? NaN) ? '' : ` (${f(row.dbCpuMs, 3)})`} | ${Math.round(row.rps).toLocaleString('en')} | ${row.p50} / ${row.p99} | ${ratio} | ${row.ok.toLocaleString('en')} (${row.errors}) |`);
}
console.log('');
for (const row of all.filter((r) => r.group !== 'load')) console.log(`- ${row.name}: ${row.value}`);
console.log(`\nbench took ${((performance.now() - began) / 1000).toFixed(0)} s; load average now ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
process.exit(0);
