// Redis for tests: TEST_REDIS_URL, else REDIS_URL, else the machine's redis://127.0.0.1:6379 when it
// answers. Each caller gets a key prefix of its own and its keys are deleted at teardown. Without
// a Redis the tests that need one are skipped, saying why — unless TEST_REQUIRE_REDIS=1 (set by
// .ci/run), which turns a missing Redis into a failure.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { T } from './helpers.js';

let probed: Promise<{ url: string } | { reason: string }> | undefined;

function probe() {
  const url = process.env.TEST_REDIS_URL || process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  probed ??= (async () => {
    const redis = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => {});
    try {
      await redis.connect();
      await redis.ping();
      return { url };
    } catch (err) {
      return { reason: `no Redis answers at ${url.replace(/\/\/[^@/]*@/, '//***@')} (${(err as Error).message}); set TEST_REDIS_URL to run them` };
    } finally {
      redis.disconnect();
    }
  })();
  return probed;
}

export interface TestRedis {
  url: string;
  prefix: string;
  /** The keys under this prefix. */
  keys(): Promise<string[]>;
}

/** A Redis for this test with a prefix of its own, or the reason there is none (then skip). */
export async function testRedis(t: T): Promise<TestRedis | { skip: string }> {
  const found = await probe();
  if ('reason' in found) {
    if (process.env.TEST_REQUIRE_REDIS === '1') throw new Error(`TEST_REQUIRE_REDIS=1 but ${found.reason}`);
    return { skip: `Redis tests skipped: ${found.reason}` };
  }
  const prefix = `authservice-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
  const admin = new Redis(found.url, { maxRetriesPerRequest: 1 });
  admin.on('error', () => {});
  const keys = async () => {
    const out: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      out.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    return out;
  };
  t.teardown(async () => {
    const left = await keys();
    if (left.length) await admin.del(...left);
    admin.disconnect();
  });
  return { url: found.url, prefix, keys };
}
