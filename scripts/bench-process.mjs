// What the benchmark scripts share: starting a process they measure, waiting for the service's
// first 200 on /health, reading a process's CPU time from /proc, stopping it. Every child is
// killed if the script exits first.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const TICK_MS = 1000 / 100; // /proc times are in clock ticks (USER_HZ = 100 on Linux)

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** The CPU ms a process has used, all its threads (utime + stime); 0 for one that has ended. */
export function cpuMsOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/** `node <args>`, with `env` over this process's environment; its stdout piped, stderr inherited. */
export function startProcess(args, env) {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/**
 * Starts the service (`node <args>`) on a random loopback port and polls /health every `pollMs`
 * until its first 200: `startMs` is the wall time to it, `startCpuMs` the process's CPU until then.
 */
export async function startService(args, env, pollMs = 50) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const started = performance.now();
  const child = startProcess(args, { ...env, PORT: String(port), HOST: '127.0.0.1' });
  child.stdout.resume();
  const base = `http://127.0.0.1:${port}`;
  while (performance.now() - started < 120_000) {
    if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode}`);
    if (await fetch(`${base}/health`).then((r) => r.ok, () => false)) {
      return { child, base, startMs: performance.now() - started, startCpuMs: cpuMsOf(child.pid) };
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
  child.kill('SIGKILL');
  throw new Error('the service did not answer within 120 s');
}

/** SIGTERM, then SIGKILL after 20 s; resolves when the process has exited. */
export function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
  });
}
