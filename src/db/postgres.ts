// PostgreSQL through postgres.js (patched: patches/postgres+3.4.9.patch, see README "The database
// driver"). Every wait on the database is bounded by the driver itself, so a request is answered
// (503 when the database is sick) within the bound whatever the database does:
// - connect_timeout: opening a connection (a server that does not answer SYN or start-up);
// - queue_timeout (patch): waiting for a free connection of the pool (a pool held by a lock);
// - statement_timeout, server side, per connection: one statement (a slow query, a lock wait);
// - query_timeout (patch): a connection with queries in flight that stays silent (a server that
//   stops answering without closing: no RST); a little longer than statement_timeout, so that a
//   live server's own cancel (57014) wins and the connection survives;
// - idle_in_transaction_session_timeout: a transaction left open by a stalled client;
// - a reconnect backoff capped at 1 s (the driver's goes up to 20 s), so the pool recovers about
//   as soon as the database is back.
// The readiness ping has a connection of its own with shorter bounds, so it answers within
// pingTimeout even when the request pool is exhausted.
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { StartupError } from '../lib/data-dir.js';
import { trackPool } from './pool-stats.js';
import { preparingEveryStatement } from './prepare-all.js';
import { type Database, type DatabaseOptions, DEFAULT_DATABASE, isDatabaseUnavailable, MIGRATIONS_FOLDER, pgErrorOf, within } from './index.js';
import { latestMigration, READINESS_SQL, readinessOf } from './readiness.js';
import * as schema from './schema.js';

/** Any lock key will do, as long as every instance of this service uses the same one. */
const MIGRATION_LOCK = 727_465_001;

/** Up to 1 s between reconnect attempts (jittered); postgres.js's own reaches 20 s. */
const backoff = (retries: number) => Math.min(0.05 * 2 ** retries, 1) * (0.5 + Math.random() / 2);

// The patch's options, which postgres.js's types do not know.
type Options = postgres.Options<Record<string, never>> & { query_timeout?: number; queue_timeout?: number };

export async function openPostgres(url: string, options: DatabaseOptions = DEFAULT_DATABASE): Promise<Database> {
  const s = (ms: number) => ms / 1000; // postgres.js takes seconds
  const common: Options = { onnotice: () => {}, connect_timeout: s(options.connectTimeout), backoff };
  await migrate(url, common);

  const client = postgres(url, {
    ...common,
    max: options.poolSize,
    queue_timeout: s(options.acquireTimeout),
    query_timeout: s(options.queryTimeout) + 1,
    idle_timeout: 60,
    connection: {
      application_name: 'authservice',
      statement_timeout: options.queryTimeout,
      idle_in_transaction_session_timeout: Math.max(10_000, 2 * options.queryTimeout),
    },
  } as Options);
  // The probe: one connection of its own with short bounds. A probe that failed is thrown away
  // and the next check opens a fresh one, so no state left by an outage (a connection stuck in
  // its connect or reconnect backoff, a query queued behind one that never settled) can keep the
  // readiness check failing once the database is back.
  const openProbe = () =>
    postgres(url, {
      ...common,
      max: 1,
      connect_timeout: s(options.pingTimeout),
      queue_timeout: s(options.pingTimeout),
      query_timeout: s(options.pingTimeout),
      idle_timeout: 60,
      connection: { application_name: 'authservice-probe', statement_timeout: options.pingTimeout },
    } as Options);
  let probe = openProbe();
  const latest = latestMigration();

  const tracked = trackPool(preparingEveryStatement(client), options.poolSize, ['unsafe', 'begin']);
  return {
    db: drizzlePostgres(tracked.client, { schema }),
    kind: 'postgres',
    pool: tracked.stats,
    // Two questions at once, both within pingTimeout: does the database answer (on the probe's
    // own connection, so that an exhausted pool cannot hold the answer), and can the request pool
    // hand out a connection now (a trivial query through it)? Both are measured afresh on every
    // check, so readiness comes back as soon as the database and the pool do: nothing is
    // remembered from an earlier failure.
    ready: async () => {
      const deadline = performance.now() + options.pingTimeout;
      const used = probe;
      const answered = used.unsafe<{ n: number }[]>(READINESS_SQL, [latest]).execute();
      const pooled = client`select 1`.execute();
      // Either may settle after this check has given up on it.
      answered.catch(() => {});
      pooled.catch(() => {});
      let rows: { n: number }[];
      try {
        rows = await within(answered, options.pingTimeout, 'the database did not answer in time');
      } catch (err) {
        if (probe === used) {
          probe = openProbe();
          used.end({ timeout: 0 }).catch(() => {});
        }
        throw err;
      }
      try {
        await within(pooled, Math.max(0, deadline - performance.now()), 'the connection pool is exhausted');
      } catch (cause) {
        throw Object.assign(new Error('the connection pool is exhausted', { cause }), { code: 'POOL_EXHAUSTED' });
      }
      return readinessOf(rows);
    },
    close: async () => {
      await Promise.all([client.end({ timeout: 2 }), probe.end({ timeout: 0 })]);
    },
  };
}

/**
 * Migrates on a dedicated connection that holds an advisory lock, so that several instances
 * starting at once apply each migration exactly once. A database that cannot be reached or
 * does not exist stops the start with one line naming it and the reason.
 */
async function migrate(url: string, common: Options): Promise<void> {
  const admin = postgres(url, { ...common, max: 1, connection: { application_name: 'authservice-migrate' } } as Options);
  try {
    await admin`select pg_advisory_lock(${MIGRATION_LOCK})`;
    await migratePostgres(drizzlePostgres(admin), { migrationsFolder: MIGRATIONS_FOLDER });
    await admin`select pg_advisory_unlock(${MIGRATION_LOCK})`;
  } catch (err) {
    throw startupError(url, err);
  } finally {
    await admin.end({ timeout: 1 }).catch(() => {});
  }
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused: is PostgreSQL running and listening there?',
  CONNECT_TIMEOUT: 'no answer within the connect timeout',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'the host name could not be resolved',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'the connection was reset',
  CONNECTION_CLOSED: 'the server closed the connection',
  '3D000': 'the database does not exist',
  '28P01': 'password authentication failed',
  '28000': 'the server refused this user',
  '57P03': 'the server is starting up or shutting down',
  '53300': 'the server has too many connections',
};

/** A start-up failure naming the host, port, database and user (never the password) and the reason. */
export function startupError(url: string, err: unknown): Error {
  let target: Record<string, unknown> = {};
  try {
    const u = new URL(url);
    target = { host: u.hostname, port: Number(u.port || 5432), database: decodeURIComponent(u.pathname.slice(1)) || undefined, user: decodeURIComponent(u.username) || undefined };
  } catch {}
  const code = codeOf(err) ?? pgErrorOf(err).code;
  if (!isDatabaseUnavailable(err) && !(code && code in REASONS)) return err as Error;
  const reason = (code && REASONS[code]) ?? (err as Error).message;
  const where = `${target.host}:${target.port}${target.database ? `/${target.database}` : ''}`;
  return new StartupError(`cannot open the database ${where}: ${reason}`, { ...target, code, reason });
}

function codeOf(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}
