// A CPU profile of one route under load: `node scripts/bench-profile.mjs [/me|/token/verify|/token|/register] [pg|pglite]`.
// /token (login) and /register run at the production argon2 cost, login with 4 connections over 16
// accounts, register with 8 and a new account each time; the profile is the main thread's (the
// hashes run on libuv's threads and are not in it).
// Starts the compiled service (`npm run build` first) with --cpu-prof on a fresh PostgreSQL database
// (BENCH_POSTGRES_URL, default the local server) or a fresh PGlite folder, registers 300 accounts at
// a cheap argon2 cost, runs 20 connections for 6 s (each request another session's token), stops it
// and prints the share of the load phase's CPU samples by package and the top functions by self time.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startService, stop } from './bench-process.mjs';
const path = process.argv[2] ?? '/me';
const dbkind = process.argv[3] ?? 'pg';
const ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
const name = `prof_${randomBytes(4).toString('hex')}`;
const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
if (dbkind === 'pg') await admin.unsafe(`create database ${name}`);
const dir = mkdtempSync(join(tmpdir(), 'authservice-profile-'));
const { child, base } = await startService(['--cpu-prof', `--cpu-prof-dir=${dir}`, 'dist/main.cjs'], {
  LOG_LEVEL: 'warn', JWT_PRIVATE_KEY: key, JWT_EXPIRATION_DELTA: '1h', RATE_LIMIT_MAX: '1000000', RATE_LIMIT_TOKEN_MAX: '1000000', ...(path === '/token' || path === '/register' ? {} : { ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1' }),
  DATABASE_URL: dbkind === 'pg' ? Object.assign(new URL(ADMIN_URL), { pathname: `/${name}` }).toString() : '', DATA_DIR: join(dir, 'data'),
});
const run = randomBytes(3).toString('hex');
const tokens = [];
const accounts = path === '/token' ? 16 : path === '/register' ? 0 : 300;
for (let i = 0; i < accounts; i++) {
  const r = await fetch(base + '/register', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `p${i}@example.com`, username: `p${i}`, password1: 'correct horse battery staple', password2: 'correct horse battery staple' }) });
  tokens.push((await r.json()).token);
}
let i = 0;
const opts = path === '/me'
  ? { url: base + '/me', requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, headers: { authorization: `Bearer ${tokens[i++ % tokens.length]}` } }) }] }
  : path === '/register'
    ? { url: base + path, requests: [{ method: 'POST', setupRequest: (req) => { const n = `r${i++}x${run}`; return { ...req, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `${n}@example.com`, username: n, password1: 'correct horse battery staple', password2: 'correct horse battery staple' }) }; } }] }
  : path === '/token'
    ? { url: base + path, requests: [{ method: 'POST', setupRequest: (req) => ({ ...req, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `p${i++ % accounts}@example.com`, password: 'correct horse battery staple' }) }) }] }
    : { url: base + path, requests: [{ method: 'POST', setupRequest: (req) => ({ ...req, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: tokens[i++ % tokens.length] }) }) }] };
const r = await new Promise((res, rej) => autocannon({ ...opts, connections: path === '/token' ? 4 : path === '/register' ? 8 : 20, duration: 6 }, (e, x) => (e ? rej(e) : res(x))));
console.log('2xx', r['2xx'], 'non2xx', r.non2xx, 'rps', r.requests.average);
await stop(child);
if (dbkind === 'pg') await admin.unsafe(`drop database if exists ${name} with (force)`);
await admin.end();
const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
const prof = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8'));
const self = new Map(); const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const stamps = []; let ts = prof.startTime; for (const d of prof.timeDeltas) { ts += d; stamps.push(ts); }
const from = prof.endTime - 6_000_000 + 300_000; // the load phase only (the last 6 s), minus shutdown
const dt = new Map(); for (let k = 0; k < prof.samples.length; k++) if (stamps[k] >= from && stamps[k] <= prof.endTime - 300_000) dt.set(prof.samples[k], (dt.get(prof.samples[k]) ?? 0) + (prof.timeDeltas[k] ?? 0));
let total = 0;
for (const [id, t] of dt) { const n = byId.get(id); const cf = n.callFrame; const k = `${cf.functionName || '(anon)'} ${cf.url.replace(/.*node_modules\//, '').replace(/^file:\/\/.*?\/(dist|src)\//, '$1/')}:${cf.lineNumber}`; if (cf.functionName === '(idle)') continue; self.set(k, (self.get(k) ?? 0) + t); total += t; }
// inclusive by package
const pkg = new Map();
for (const [id, t] of dt) { const n = byId.get(id); if (n.callFrame.functionName === '(idle)') continue; const u = n.callFrame.url; const p = u.includes('node_modules/') ? u.replace(/.*node_modules\//, '').split('/').slice(0, u.includes('node_modules/@') ? 2 : 1).join('/') : u.startsWith('node:') ? 'node:' + u.slice(5).split('/')[0] : u.startsWith('wasm://') ? '(WebAssembly: PGlite)' : u.includes('/dist/') ? 'service' : (n.callFrame.functionName || '(native)'); pkg.set(p, (pkg.get(p) ?? 0) + t); }
console.log('busy ms', (total / 1000).toFixed(0));
console.log([...pkg].sort((a, b) => b[1] - a[1]).slice(0, 18).map(([k, v]) => `${(100 * v / total).toFixed(1)}% ${k}`).join('\n'));
console.log('--- self top');
console.log([...self].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, v]) => `${(100 * v / total).toFixed(1)}% ${k}`).join('\n'));
rmSync(dir, { recursive: true, force: true });
