// `node scripts/bench-start.mjs`: how long the compiled service (`npm run build` first) takes to
// answer its first 200 on /health on the embedded PGlite, on a new DATA_DIR (a first start) and
// again on the same folder (a restart), as medians of BENCH_START_RUNS (default 7) runs, with the
// CPU the process spent until then (all threads, /proc/<pid>/stat). `npm run bench` times one of
// each among its other rows; this script repeats them, since one start on a shared machine says
// little. Loopback only, random ports; each DATA_DIR is removed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startService, stop } from './bench-process.mjs';

const RUNS = Number(process.env.BENCH_START_RUNS ?? 7);

/** Starts `node dist/main.cjs`, polls /health every 10 ms, stops it; wall and CPU ms to the first 200. */
async function startOnce(dataDir) {
  const env = { NODE_ENV: 'development', DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'warn' };
  const { child, startMs, startCpuMs } = await startService(['dist/main.cjs'], env, 10);
  await stop(child);
  return { wallMs: startMs, cpuMs: startCpuMs };
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
