// Picks the limits store from the configuration: Redis when REDIS_URL is set, the database otherwise.
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../../config.js';
import type { Db } from '../../db/index.js';
import { databaseStore } from './database.js';
import { guarded, type LimitStore } from './index.js';

export async function openLimitStore(
  config: Readonly<Config>,
  db: Db,
  log: FastifyBaseLogger,
  options: { offsetMs?: () => number; onFailure?: (err: unknown) => void } = {},
): Promise<LimitStore> {
  // ioredis is imported only when it is used (a few MB of an idle process otherwise).
  const store = config.redis.url
    ? await (await import('./redis.js')).redisStore({ url: config.redis.url, prefix: config.redis.prefix, log })
    : databaseStore(db, options.offsetMs);
  return guarded(store, { failClosed: config.rateLimit.failClosed, log, onFailure: options.onFailure });
}
