// A throwaway PostgreSQL 15 cluster of a test's own (initdb/pg_ctl under a temp dir, a free port,
// run as the postgres user), for the tests that stop, crash or freeze the database. The machine's
// shared server (127.0.0.1:5432) is never touched. Removed at teardown.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { T } from './helpers.js';

const BIN = '/usr/lib/postgresql/15/bin';

export interface Cluster {
  url: string;
  port: number;
  /** pg_ctl stop -m fast | immediate (immediate is a crash: no checkpoint, recovery at start). */
  stop(mode?: 'fast' | 'immediate'): void;
  start(): void;
  /** kill -9 of the postmaster and every backend: the hardest crash. */
  kill(): void;
  /** SIGSTOP: the server stops answering without closing anything (a network black hole). */
  freeze(): void;
  thaw(): void;
  /** Runs SQL through psql, as the superuser. */
  psql(sql: string): string;
  /** Runs SQL through psql in the background: `started` once connected, `done` when it ends. */
  psqlAsync(sql: string): { started: Promise<void>; done: Promise<void> };
}

/** True when this machine can run a cluster (PostgreSQL 15 binaries, root to become postgres). */
export const canRunCluster = (() => {
  try {
    execFileSync(`${BIN}/pg_ctl`, ['--version'], { stdio: 'ignore' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
})();

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function asPostgres(cmd: string, args: string[], opts: { allowFail?: boolean } = {}): string {
  const r = spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export async function startCluster(t: T, settings: Record<string, string> = {}): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'authservice-pg-'));
  chmodSync(dir, 0o700);
  chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  const data = join(dir, 'data');
  const port = await freePort();
  asPostgres(`${BIN}/initdb`, ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const opts = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${dir}`,
    '-c fsync=off',
    '-c max_connections=100',
    ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`),
  ].join(' ');
  const log = join(dir, 'log');
  const start = () => void asPostgres(`${BIN}/pg_ctl`, ['-D', data, '-l', log, '-o', opts, '-w', '-t', '60', 'start']);
  const pid = () => Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  start();
  const cluster: Cluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop: (mode = 'fast') => void asPostgres(`${BIN}/pg_ctl`, ['-D', data, '-m', mode, '-w', '-t', '60', 'stop'], { allowFail: true }),
    kill: () => {
      const main = pid();
      // The postmaster's children (backends, checkpointer, …) die with it, as in a real crash.
      const children = spawnSync('pgrep', ['-P', String(main)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
      for (const p of [main, ...children]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {}
      }
      for (let i = 0; i < 100 && spawnSync('kill', ['-0', String(main)]).status === 0; i++) spawnSync('sleep', ['0.05']);
      rmSync(join(data, 'postmaster.pid'), { force: true });
    },
    freeze: () => {
      const main = pid();
      const children = spawnSync('pgrep', ['-P', String(main)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
      for (const p of [main, ...children]) process.kill(p, 'SIGSTOP');
    },
    thaw: () => {
      const main = pid();
      const children = spawnSync('pgrep', ['-P', String(main)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
      for (const p of [main, ...children]) process.kill(p, 'SIGCONT');
    },
    psql: (sql) => asPostgres(`${BIN}/psql`, ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-Atc', sql]),
    psqlAsync: (sql) => {
      // `\echo` marks the moment the statements before it have run (the lock is held).
      const script = sql.replace(/;\s*select pg_sleep/i, "; \\echo started\nselect pg_sleep");
      const child = spawn('runuser', ['-u', 'postgres', '--', `${BIN}/psql`, '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-At'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      child.stdin.end(script);
      let out = '';
      const started = new Promise<void>((resolve) => {
        child.stdout.on('data', (d) => {
          out += d;
          if (out.includes('started')) resolve();
        });
        child.on('exit', () => resolve());
      });
      const done = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      return { started, done };
    },
  };
  t.teardown(() => {
    try {
      cluster.thaw();
    } catch {}
    asPostgres(`${BIN}/pg_ctl`, ['-D', data, '-m', 'immediate', '-w', 'stop'], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  });
  return cluster;
}
