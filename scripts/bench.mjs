// Benchmark: starts the service (production argon2 cost), makes a verified-enough account, then
// runs autocannon against the hot endpoints. Usage:
//   node scripts/bench.mjs                       # embedded PGlite in memory
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node scripts/bench.mjs
// Loopback only; every run is bounded in time.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';

const port = 3900 + Math.floor(Math.random() * 90);
const base = `http://127.0.0.1:${port}`;
const env = {
  ...process.env,
  PORT: String(port),
  DATABASE_URL: process.env.DATABASE_URL ?? 'memory://',
  DATA_DIR: mkdtempSync(join(tmpdir(), 'authservice-bench-')),
  LOG_LEVEL: 'warn',
  RATE_LIMIT_MAX: '0',
  UV_THREADPOOL_SIZE: '4',
};
const server = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
const stop = () => server.kill('SIGTERM');
process.on('exit', stop);

async function waitUp() {
  for (let i = 0; i < 120; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('service did not start');
}

const json = (body, token) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  body: JSON.stringify(body),
});

function run(title, { path, ...opts }) {
  return new Promise((resolve, reject) => {
    autocannon({ url: base + path, connections: 20, duration: 10, ...opts }, (err, r) => {
      if (err) return reject(err);
      const non2xx = r.non2xx;
      console.log(
        `${title.padEnd(34)} ${String(Math.round(r.requests.average)).padStart(6)} req/s  p50 ${r.latency.p50} ms  p99 ${r.latency.p99} ms  (${r.requests.total} requests, ${non2xx} non-2xx)`,
      );
      resolve(r);
    });
  });
}

try {
  await waitUp();
  const password = 'correct horse battery staple';
  const reg = await (await fetch(`${base}/register`, json({ email: 'bench@example.com', username: 'bench', password1: password, password2: password }))).json();
  const token = reg.token;
  console.log(`node ${process.version}, database ${env.DATABASE_URL.startsWith('postgres') ? 'PostgreSQL' : 'PGlite (memory)'}, 20 connections, 10 s each`);
  await run('GET /health', { path: '/health' });
  await run('GET /.well-known/jwks.json', { path: '/.well-known/jwks.json' });
  await run('GET /me (JWT + session lookup)', { path: '/me', headers: { authorization: `Bearer ${token}` } });
  await run('POST /token/verify', { path: '/token/verify', ...json({ token }) });
  await run('POST /token (argon2id verify)', { path: '/token', ...json({ email: 'bench@example.com', password }), connections: 4 });
  await run('POST /token wrong password', { path: '/token', ...json({ email: 'bench@example.com', password: 'nope nope nope' }), connections: 4 });
  await run('POST /token unknown account', { path: '/token', ...json({ email: 'nobody@example.com', password }), connections: 4 });
} finally {
  stop();
}
