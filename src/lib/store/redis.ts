// The limits store on Redis (REDIS_URL): shared by every instance, kept over restarts, and the
// per-client limit goes through @fastify/rate-limit's own Redis store. The client never queues a
// command while Redis is away (enableOfflineQueue: false) and gives up on a silent one after
// commandTimeout, so an outage costs a request at most that long, and the failure policy
// (index.ts guarded) decides what it means.
import { createRequire } from 'node:module';
import type { FastifyBaseLogger } from 'fastify';
import { Redis } from 'ioredis';
import type { Hit, LimitStore, RateLimitStore, RateLimitStoreClass } from './index.js';

// Not in the package's typings: the store @fastify/rate-limit uses for its `redis` option.
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore.js') as new (
  continueExceeding: boolean,
  exponentialBackoff: boolean,
  redis: Redis,
  key: string,
) => RateLimitStore;

// INCR and PEXPIRE in one script: a key can never be left without its expiry.
const HIT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}`;

export interface RedisStoreOptions {
  url: string;
  /** Prefixes every key, so several services (or test runs) can share one Redis. */
  prefix: string;
  log: FastifyBaseLogger;
  /** How long one command may take before it counts as a failure (ms). */
  commandTimeout?: number;
}

export async function redisStore(options: RedisStoreOptions): Promise<LimitStore> {
  const redis = new Redis(options.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: options.commandTimeout ?? 1_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000), // reconnect for ever, every 2 s at most
  });
  // Connection errors are reported by the failure policy when a request meets them; without a
  // listener ioredis would print every reconnect attempt on stderr.
  redis.on('error', () => {});
  try {
    // A Redis that accepts the connection but never answers would hold the start for ever.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer within 2 s')), 2_000);
    });
    await Promise.race([redis.connect(), timeout]).finally(() => clearTimeout(timer));
  } catch (err) {
    options.log.warn({ err }, 'Redis (REDIS_URL) does not answer at start; it is retried in the background');
  }
  const prefix = options.prefix;

  async function hit(key: string, windowMs: number): Promise<Hit> {
    const [count, ttl] = (await redis.eval(HIT, 1, prefix + key, windowMs)) as [number, number];
    return { count, resetMs: ttl };
  }

  // The plugin's RedisStore, constructed the way the plugin would for `redis: client`.
  const rateLimitStore: RateLimitStoreClass = class {
    constructor() {
      return new RedisStore(false, false, redis, `${prefix}rl:`);
    }
  } as unknown as RateLimitStoreClass;

  return {
    kind: 'redis',
    hit,
    async reset(key) {
      await redis.del(prefix + key);
    },
    rateLimitStore,
    close: async () => {
      redis.disconnect();
    },
  };
}
