// The process entry: `node dist/main.cjs` (what `npm start`, the Dockerfile and compose run).
// libuv sizes its thread pool, where the argon2 hashes run, once: from UV_THREADPOOL_SIZE, when
// something first queues work on it. An ES module entry's own loading already does (Node reads
// the module's file on the pool), too early for the service to set it; so this one file is
// CommonJS, sizes the pool, and then imports the service (dist/server.js).
//
// The size: PASSWORD_HASH_CONCURRENCY, which defaults to the core count. Hashes never run more at
// once than that, so threads beyond it would only idle, and cost memory: glibc gives each thread
// that has hashed a malloc arena of its own, which keeps that thread's 19 MiB hashing buffer after
// the hash (README, Performance). An explicit UV_THREADPOOL_SIZE wins.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';

if (existsSync('.env')) process.loadEnvFile('.env');
if (!process.env.UV_THREADPOOL_SIZE) {
  const hashes = Number(process.env.PASSWORD_HASH_CONCURRENCY);
  // An invalid value is the configuration's to refuse (src/config.ts), with its message.
  process.env.UV_THREADPOOL_SIZE = String(Number.isInteger(hashes) && hashes >= 1 && hashes <= 1024 ? hashes : availableParallelism());
}
void import('./server.js');
