// Preloaded with `node --require` (package.json start), before anything can start libuv's thread
// pool: argon2 hashes on that pool, and Node's default of 4 threads on a 2-core machine lets 4
// hashes time-slice against each other and the event loop (issue 10 item 6 measured +11-16 % login
// throughput and a 5x lower /me p99 during a login storm with the pool at the core count).
// An explicit UV_THREADPOOL_SIZE wins.
'use strict';
if (!process.env.UV_THREADPOOL_SIZE) {
  process.env.UV_THREADPOOL_SIZE = String(Math.max(2, require('node:os').availableParallelism()));
}
