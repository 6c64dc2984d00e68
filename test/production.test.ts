// Production rails and the compiled build: the service refuses, with one clear line, to start in
// production without SMTP or on the embedded database (unless told so explicitly), and the
// production command runs the compiled JavaScript in dist/ with no TypeScript tooling.
import { type ChildProcess, execFileSync, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { call } from './process.js';

const KEY = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const PG = 'postgres://auth@db.internal:5432/auth';
const PRODUCTION = { NODE_ENV: 'production', JWT_PRIVATE_KEY: KEY };

t.test('production needs SMTP_URL, unless EMAIL_TRANSPORT=log is set explicitly', async (t) => {
  t.throws(() => loadConfig({ ...PRODUCTION, DATABASE_URL: PG }), /SMTP_URL: required in production.*EMAIL_TRANSPORT=log/);
  t.equal(loadConfig({ ...PRODUCTION, DATABASE_URL: PG, SMTP_URL: 'smtp://mail:587' }).emailTransport, 'smtp');
  t.equal(loadConfig({ ...PRODUCTION, DATABASE_URL: PG, EMAIL_TRANSPORT: 'log' }).emailTransport, 'log');
  t.equal(loadConfig({}).emailTransport, 'log', 'development without SMTP_URL: the log');
  t.equal(loadConfig({ SMTP_URL: 'smtp://mail:587' }).emailTransport, 'smtp');
  t.throws(() => loadConfig({ EMAIL_TRANSPORT: 'smtp' }), /SMTP_URL: required with EMAIL_TRANSPORT=smtp/);
  t.throws(() => loadConfig({ EMAIL_TRANSPORT: 'carrier-pigeon' }), /EMAIL_TRANSPORT: expected one of smtp, log/);
});

t.test('production refuses the embedded database, unless ALLOW_EMBEDDED_DATABASE=true', async (t) => {
  const smtp = { SMTP_URL: 'smtp://mail:587' };
  t.throws(() => loadConfig({ ...PRODUCTION, ...smtp }), /DATABASE_URL: required in production.*ALLOW_EMBEDDED_DATABASE=true/);
  t.throws(() => loadConfig({ ...PRODUCTION, ...smtp, DATABASE_URL: 'memory://' }), /DATABASE_URL: required in production/);
  t.equal(loadConfig({ ...PRODUCTION, ...smtp, ALLOW_EMBEDDED_DATABASE: 'true' }).allowEmbeddedDatabase, true);
  t.doesNotThrow(() => loadConfig({ ...PRODUCTION, ...smtp, DATABASE_URL: PG }));
  t.doesNotThrow(() => loadConfig({}), 'development: the embedded database is the default');
});

t.test('METRICS_TOKEN and CORS_ORIGINS are checked at start', async (t) => {
  t.throws(() => loadConfig({ METRICS_TOKEN: 'short' }), /METRICS_TOKEN: must be at least 16 characters/);
  t.throws(() => loadConfig({ CORS_ORIGINS: 'https://app.example.com/path' }), /CORS_ORIGINS: expected \* or a comma-separated list of origins/);
  t.throws(() => loadConfig({ CORS_ORIGINS: 'app.example.com' }), /CORS_ORIGINS/);
  t.same(loadConfig({ CORS_ORIGINS: '*' }).corsOrigins, ['*']);
  t.same(loadConfig({ CORS_ORIGINS: 'https://a.example.com/, http://localhost:5173' }).corsOrigins, ['https://a.example.com', 'http://localhost:5173']);
  t.same(loadConfig({ FRONTEND_URL: 'https://app.example.com/sub' }).corsOrigins, ['https://app.example.com', 'http://localhost:3000']);
});

/** Runs the service to its exit (it must exit by itself) and returns its exit code and output. */
function runToExit(args: string[], env: Record<string, string>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-prod-'));
  try {
    const run = spawnSync(process.execPath, args, {
      env: { PATH: process.env.PATH, DATA_DIR: dataDir, PORT: '0', ...env },
      encoding: 'utf8',
      timeout: 240_000,
    });
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

t.test('the process exits 1 with one clear line (no stack) on each production rail', async (t) => {
  const src = ['--import', 'tsx', 'src/server.ts'];
  for (const [label, env, pattern] of [
    ['no SMTP_URL', { ...PRODUCTION, DATABASE_URL: PG }, /^Invalid configuration: SMTP_URL: required in production/],
    ['the embedded database', { ...PRODUCTION, SMTP_URL: 'smtp://mail:587' }, /^Invalid configuration: DATABASE_URL: required in production/],
    ['no signing key', { NODE_ENV: 'production', SMTP_URL: 'smtp://mail:587', DATABASE_URL: PG }, /^Invalid configuration: JWT_PRIVATE_KEY or KEY_ENCRYPTION_KEY: required in production/],
  ] as const) {
    const run = runToExit(src, env);
    t.equal(run.status, 1, `${label}: exit 1`);
    const lines = run.stderr.trim().split('\n');
    t.equal(lines.length, 1, `${label}: one line`, { stderr: run.stderr });
    t.match(lines[0], pattern, label);
    t.equal(run.stdout, '', `${label}: nothing else`);
  }
});

t.test('a database that cannot be reached at start: one structured line naming it and the reason, exit 1, no stack', async (t) => {
  const run = runToExit(['--import', 'tsx', 'src/server.ts'], { DATABASE_URL: 'postgres://postgres:secret-pw@127.0.0.1:1/authdb', SMTP_URL: 'smtp://mail:587' });
  t.equal(run.status, 1, 'exit 1');
  const lines = run.stderr.trim().split('\n');
  t.equal(lines.length, 1, 'one line', { stderr: run.stderr });
  const line = JSON.parse(lines[0]);
  t.match(line, { level: 'fatal', msg: /database cannot be opened/, database: 'PostgreSQL at 127.0.0.1:1/authdb', reason: /ECONNREFUSED/ });
  t.notMatch(run.stderr, /secret-pw/, 'never the password');
  t.notMatch(run.stderr, /\n\s+at /, 'no stack');
});

interface Running {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * Starts `node <args>` and waits until it listens. `bare`: without the ES module that tap's
 * coverage adds to every node it spawns (through NODE_OPTIONS), for a test of what a process does
 * before any ES module is loaded.
 */
async function start(args: string[], env: Record<string, string>, { bare = false } = {}): Promise<Running> {
  const options: SpawnOptions = { env: { PATH: process.env.PATH, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] };
  const child: ChildProcess = bare ? spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, ...args], options) : spawn(process.execPath, args, options);
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 240_000; // generous: a loaded CI machine starts slowly
  for (;;) {
    const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
    if (m) return { child, url: m[1], output: () => output, exited };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start (exit code ${child.exitCode}): ${output.slice(-1500).replace(/\n/g, " | ")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('npm run build compiles to dist/; `node dist/main.cjs` serves in production and says how in one line', async (t) => {
  execFileSync('npm', ['run', '-s', 'build'], { stdio: 'pipe' });
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-prod-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const server = await start(['dist/main.cjs'], {
    ...PRODUCTION,
    DATA_DIR: dataDir,
    EMAIL_TRANSPORT: 'log',
    ALLOW_EMBEDDED_DATABASE: 'true',
    LOG_LEVEL: 'info',
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_ITERATIONS: '1',
  });
  t.teardown(() => server.child.kill('SIGKILL'));
  const ready = await fetch(`${server.url}/health/ready`);
  t.equal(ready.status, 200, 'ready');
  t.equal((await fetch(`${server.url}/health/live`)).status, 200, 'live');
  server.child.kill('SIGTERM');
  t.equal(await server.exited, 0, 'SIGTERM: a clean exit');

  const lines = server
    .output()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const listening = lines.filter((l) => /^Server listening at/.test(l.msg));
  t.equal(listening.length, 1, 'one start-up line');
  t.match(listening[0].msg, /^Server listening at http:\/\/127\.0\.0\.1:\d+; docs at http:\/\/127\.0\.0\.1:\d+\/docs; database: embedded PGlite in .+; mail: written to the log/);
  const warnings = lines.filter((l) => l.level === 40).map((l) => l.msg);
  t.match(warnings.join('\n'), /EMAIL_TRANSPORT=log in production/, 'a warning for the log transport');
  t.match(warnings.join('\n'), /ALLOW_EMBEDDED_DATABASE=true in production/, 'a warning for the embedded database');
  t.notOk(lines.some((l) => l.level >= 50), 'no error');
});

t.test('dist/main.cjs sizes libuv\'s thread pool to PASSWORD_HASH_CONCURRENCY; an explicit UV_THREADPOOL_SIZE wins', async (t) => {
  // The pool's threads are the process's only ones that vary with these settings, so the
  // differences between thread counts are the differences between pool sizes. Each process
  // hashes (a registration) first, so its pool exists however lazily libuv creates it. Bare: an
  // ES module preloaded with --import (as tap's coverage does) starts the pool before any entry
  // can size it, as it would in production (README, Configuration).
  async function threadsWith(env: Record<string, string>) {
    const dataDir = mkdtempSync(join(tmpdir(), 'authservice-prod-'));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
    const server = await start(['dist/main.cjs'], { ...PRODUCTION, DATA_DIR: dataDir, EMAIL_TRANSPORT: 'log', ALLOW_EMBEDDED_DATABASE: 'true', ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1', ...env }, { bare: true });
    t.teardown(() => server.child.kill('SIGKILL'));
    const password = 'a long enough Passw0rd!';
    const res = await call(server.url, 'POST', '/register', { email: 'pool@example.com', username: 'pool', password1: password, password2: password });
    t.equal(res.status, 201, 'a registration (a hash on the pool)');
    const threads = readdirSync(`/proc/${server.child.pid}/task`).length;
    server.child.kill('SIGTERM');
    await server.exited;
    return threads;
  }
  const one = await threadsWith({ PASSWORD_HASH_CONCURRENCY: '1' });
  t.equal((await threadsWith({ PASSWORD_HASH_CONCURRENCY: '3' })) - one, 2, 'three hashes at once: a pool of 3, two threads more than a pool of 1');
  t.equal((await threadsWith({ PASSWORD_HASH_CONCURRENCY: '1', UV_THREADPOOL_SIZE: '5' })) - one, 4, 'UV_THREADPOOL_SIZE=5: a pool of 5');
});

const pgUrl = process.env.TEST_DATABASE_URL;
t.test('the start-up line names PostgreSQL and SMTP without their passwords', { skip: !pgUrl && 'needs TEST_DATABASE_URL (a PostgreSQL server)' }, async (t) => {
  // A database of its own: the shared one may hold signing secrets sealed by another run's key.
  const admin = postgres(pgUrl!, { max: 1, onnotice: () => {} });
  const name = `t_prod_${process.pid}_${Date.now()}`;
  await admin.unsafe(`create database ${name}`);
  t.teardown(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });
  const fresh = new URL(pgUrl!);
  fresh.pathname = `/${name}`;
  const url = fresh.toString();
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-prod-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const withPassword = new URL(url);
  withPassword.password = withPassword.password || 'not-the-password';
  const server = await start(['--import', 'tsx', 'src/server.ts'], {
    DATA_DIR: dataDir,
    DATABASE_URL: url,
    SMTP_URL: 'smtp://user:smtp-secret@127.0.0.1:2525',
    LOG_LEVEL: 'info',
  });
  t.teardown(() => server.child.kill('SIGKILL'));
  server.child.kill('SIGTERM');
  await server.exited;
  const line = server.output().split('\n').find((l) => l.includes('Server listening at'))!;
  const u = new URL(url);
  t.match(line, `database: PostgreSQL at ${u.hostname}:${u.port || 5432}${u.pathname}`);
  t.match(line, 'mail: SMTP via smtp://127.0.0.1:2525');
  t.notMatch(line, 'smtp-secret');
});

t.test('tsx is a development dependency only: `npm ls tsx --omit=dev` is empty', async (t) => {
  const ls = spawnSync('npm', ['ls', 'tsx', '--omit=dev', '--json'], { encoding: 'utf8' });
  t.same(JSON.parse(ls.stdout).dependencies ?? {}, {}, 'no production path to tsx');
  const typescript = spawnSync('npm', ['ls', 'typescript', '--omit=dev', '--json'], { encoding: 'utf8' });
  t.same(JSON.parse(typescript.stdout).dependencies ?? {}, {}, 'nor to typescript');
});

t.test('.env.example lists every variable the configuration reads', async (t) => {
  const read = new Set<string>();
  const env = new Proxy({} as Record<string, string | undefined>, {
    get(_target, name) {
      if (typeof name === 'string') read.add(name);
      return undefined;
    },
  });
  loadConfig(env);
  loadConfig(new Proxy({ JWT_ALGORITHM: 'HS256', JWT_SECRET: 'x'.repeat(32) } as Record<string, string | undefined>, {
    get(target, name) {
      if (typeof name === 'string') read.add(name);
      return target[name as string];
    },
  }));
  const listed = new Set([...readFileSync('.env.example', 'utf8').matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]));
  const missing = [...read].filter((name) => !listed.has(name));
  t.same(missing, [], 'every variable read is in .env.example');
  t.ok(read.size >= 40, `${read.size} variables read`);
});

t.test('no source comment cites a file outside the repository', async (t) => {
  const outside = /\b(spec\/|design\/|BEHAVIOUR\.md|API\.md|STACK\.md|ARCHITECTURE\.md|SEED-TESTS\.md|\/work\/)/;
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(ts|mjs|js)$/.test(entry.name)) {
        readFileSync(path, 'utf8')
          .split('\n')
          .forEach((line, i) => outside.test(line) && offenders.push(`${path}:${i + 1}: ${line.trim()}`));
      }
    }
  };
  for (const dir of ['src', 'test', 'scripts']) walk(dir);
  t.same(offenders.filter((o) => !o.startsWith('test/production.test.ts')), []);
});
