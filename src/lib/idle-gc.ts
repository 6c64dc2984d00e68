// One full garbage collection each time the process goes quiet after work.
//
// V8 collects the old generation when it reaches its limit, which for this process is far above
// what it keeps alive, and even then keeps the pages it used (and the young generation at the size
// load grew it to) until its memory reducer gives them back, which starts only after some of its
// collections and not others. So an instance that served a burst kept that memory for good:
// measured after 15 s of GET /me at 20 connections, a 151 MB heap for 32 MB alive and a 213 MB RSS
// still 60 s later; one collection brought the heap to 66 MB and the RSS to 128 MB (README,
// Performance). Every `intervalMs` the process looks at the CPU it used since the last look: 2 % of
// a core or more is work; under it, the first look after work (or after start-up) collects once. A
// pause of tens of milliseconds, when nothing is waiting, after work that cost more than that.
//
// Node gives JavaScript no gc() unless started with --expose-gc, and the service is started with
// plain `node`: the flag is set at run time and the function taken from a new context, which is
// where V8 installs it.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const IDLE_CPU_SHARE = 0.02;

/** Starts the looks; `collected` hears of each collection (the heap in use, garbage included, in bytes: before and after). */
export function collectWhenIdle(intervalMs: number, collected: (before: number, after: number) => void): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const heapUsed = () => getHeapStatistics().used_heap_size;
  let worked = true; // start-up's own garbage
  let cpu = process.cpuUsage();
  setInterval(() => {
    const used = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    if ((used.user + used.system) / 1000 >= intervalMs * IDLE_CPU_SHARE) worked = true;
    else if (worked) {
      worked = false;
      const before = heapUsed();
      gc();
      cpu = process.cpuUsage(); // the collection's own CPU is not work
      collected(before, heapUsed());
    }
  }, intervalMs).unref(); // never what keeps the process alive
}
