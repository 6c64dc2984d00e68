// The real service process (node --import tsx src/server.ts), for tests that kill it, signal it or
// watch it survive faults.
import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import type { T } from './helpers.js';

export interface Running {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
  alive: () => boolean;
}

/** Starts src/server.ts with the given environment and waits until it listens. */
export async function startServer(t: T, env: Record<string, string>, options: SpawnOptions = {}): Promise<Running> {
  const { child, output, exited } = spawnServer(env, options);
  t.teardown(() => void child.kill('SIGKILL'));
  const deadline = Date.now() + 180_000;
  for (;;) {
    const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output());
    if (m) return { child, url: m[1], output, exited, alive: () => child.exitCode === null && child.signalCode === null };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Spawns the server without waiting (for starts that are expected to fail). */
export function spawnServer(env: Record<string, string>, options: SpawnOptions = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1', RATE_LIMIT_MAX: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out + err, stdout: () => out, stderr: () => err, exited };
}

export async function stopServer(server: Running, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  server.child.kill(signal);
  return server.exited;
}

/** A JSON request to the running server; never throws (a network error is status 0). */
export async function call(base: string, method: string, path: string, body?: unknown, token?: string, timeoutMs = 20_000) {
  const started = Date.now();
  try {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, headers: res.headers, body: json, raw: text, ms: Date.now() - started };
  } catch (err) {
    return { status: 0, headers: new Headers(), body: undefined, raw: String(err), ms: Date.now() - started };
  }
}
