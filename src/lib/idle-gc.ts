// One full garbage collection when the process goes quiet with garbage on its heap.
//
// V8 collects the old generation when it reaches its limit, which for this process is far above
// what it keeps alive, and its memory reducer (which would give the difference back once the
// process is quiet) starts only after such a collection. So an instance that served a burst kept
// its garbage for good: measured after 15 s of GET /me at 20 connections, 113 MB of old space for
// 32 MB alive, a 213 MB RSS still 60 s later; one collection brought it to 128 MB (README,
// Performance). Every `intervalMs`, if the process used under 2 % of a core since the last look
// and its heap grew by more than 8 MB since the smallest it was seen at, it collects once: a pause of tens
// of milliseconds, only when nothing is waiting for the process.
//
// Node gives JavaScript no gc() unless started with --expose-gc, and the service is started with
// plain `node`: the flag is set at run time and the function taken from a new context, which is
// where V8 installs it.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const IDLE_CPU_SHARE = 0.02;
const GROWTH_BYTES = 8 * 1024 * 1024;

/** Starts the checks; `collected` hears of each collection (heap sizes in bytes, before and after). */
export function collectWhenIdle(intervalMs: number, collected: (before: number, after: number) => void): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let baseline = getHeapStatistics().used_heap_size;
  let cpu = process.cpuUsage();
  setInterval(() => {
    const used = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    const idle = (used.user + used.system) / 1000 < intervalMs * IDLE_CPU_SHARE;
    const before = getHeapStatistics().used_heap_size;
    baseline = Math.min(baseline, before); // V8's own collections count as ours
    if (!idle || before - baseline < GROWTH_BYTES) return;
    gc();
    baseline = getHeapStatistics().used_heap_size;
    cpu = process.cpuUsage(); // the collection's own CPU is not the service's activity
    collected(before, baseline);
  }, intervalMs).unref(); // never what keeps the process alive
}
