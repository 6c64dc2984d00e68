// `node scripts/bench-start.mjs`: how long the compiled service (`npm run build` first) takes to
// answer its first 200 on /health on the embedded PGlite, on a new DATA_DIR (a first start) and
// again on the same folder (a restart), as medians of BENCH_START_RUNS (default 7) runs, with the
// CPU the process spent until then (all threads, /proc/<pid>/stat). `npm run bench` times one of
// each among its other rows; this script repeats them, since one start on a shared machine says
// little. Loopback only, random ports; each DATA_DIR is removed.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const RUNS = Number(process.env.BENCH_START_RUNS ?? 7);
const TICK_MS = 1000 / 100; // /proc times are in clock ticks (USER_HZ = 100 on Linux)

function cpuMsOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime + stime
}

/** Starts `node dist/server.js`, polls /health every 10 ms, stops it; wall and CPU ms to the first 200. */
async function startOnce(dataDir) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const env = { ...process.env, NODE_ENV: 'development', DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'warn', PORT: String(port), HOST: '127.0.0.1' };
  const started = performance.now();
  const child = spawn(process.execPath, ['dist/server.js'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    while (performance.now() - started < 60_000) {
      if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
      if (ok) return { wallMs: performance.now() - started, cpuMs: cpuMsOf(child.pid) };
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('the service did not answer within 60 s');
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const first = [];
const again = [];
for (let i = 0; i < RUNS; i++) {
  const dir = mkdtempSync(join(tmpdir(), 'authservice-start-'));
  try {
    first.push(await startOnce(dir));
    again.push(await startOnce(dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
for (const [name, runs] of [['first start (new DATA_DIR)', first], ['restart (same DATA_DIR)', again]]) {
  const walls = runs.map((r) => r.wallMs);
  console.log(
    `${name}: ${(median(walls) / 1000).toFixed(2)} s median (${(Math.min(...walls) / 1000).toFixed(2)}–${(Math.max(...walls) / 1000).toFixed(2)} s), ` +
      `${(median(runs.map((r) => r.cpuMs)) / 1000).toFixed(2)} s of CPU, ${RUNS} runs`,
  );
}
