// Opens the database: PostgreSQL when a postgres:// URL is given, otherwise the embedded PGlite
// (PostgreSQL in WebAssembly) kept in a folder or in memory. Both get the same schema and the same
// migrations, applied here at start.
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { type PoolStats, trackPool } from './pool-stats.js';
import * as schema from './schema.js';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../migrations', import.meta.url));

// Drizzle's two drivers share the query-builder API; the service is written against this one.
export type Db = ReturnType<typeof drizzlePostgres<typeof schema>>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export interface Database {
  db: Db;
  kind: 'postgres' | 'pglite';
  /** Connections in use, for the metrics. */
  pool: PoolStats;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Any lock key will do, as long as every instance of this service uses the same one. */
const MIGRATION_LOCK = 727_465_001;

export async function openDatabase(url: string | undefined, dataDir: string): Promise<Database> {
  if (url && url !== 'memory://') return openPostgres(url);
  // PGlite (WebAssembly, tens of MB) is loaded only when it is used: not in PostgreSQL mode.
  const { PGlite } = await import('@electric-sql/pglite');
  let pg: PGlite;
  if (url === 'memory://') {
    pg = await PGlite.create();
  } else {
    mkdirSync(dataDir, { recursive: true }); // PGlite does not create parent folders
    pg = await PGlite.create(`${dataDir}/pgdata`);
  }
  return usePglite(pg);
}

/** Wraps an open PGlite (tests pass a clone of a migrated template) and migrates it. */
export async function usePglite(pg: PGlite): Promise<Database> {
  const [{ drizzle: drizzlePglite }, { migrate: migratePglite }] = await Promise.all([
    import('drizzle-orm/pglite'),
    import('drizzle-orm/pglite/migrator'),
  ]);
  // PGlite is a single connection in this process: no other instance can race the migration.
  await migratePglite(drizzlePglite(pg), { migrationsFolder: MIGRATIONS_FOLDER });
  const tracked = trackPool(pg, 1, ['query', 'transaction']);
  const db = drizzlePglite(tracked.client, { schema });
  return {
    db: db as unknown as Db,
    kind: 'pglite',
    pool: tracked.stats,
    ping: async () => void (await pg.query('select 1')),
    close: async () => {
      if (!pg.closed) await pg.close();
    },
  };
}

async function openPostgres(url: string): Promise<Database> {
  // Migrate on a dedicated connection that holds an advisory lock, so that several instances
  // starting at once apply each migration exactly once.
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin`select pg_advisory_lock(${MIGRATION_LOCK})`;
    await migratePostgres(drizzlePostgres(admin), { migrationsFolder: MIGRATIONS_FOLDER });
    await admin`select pg_advisory_unlock(${MIGRATION_LOCK})`;
  } finally {
    await admin.end();
  }
  const max = 10;
  const client = postgres(url, { max, onnotice: () => {}, connect_timeout: 10 });
  const tracked = trackPool(client, max, ['unsafe', 'begin']);
  return {
    db: drizzlePostgres(tracked.client, { schema }),
    kind: 'postgres',
    pool: tracked.stats,
    ping: async () => void (await client`select 1`),
    close: () => client.end({ timeout: 5 }),
  };
}

// Errors that mean "the database cannot be reached", as opposed to "this query is wrong":
// socket errors, postgres.js's connection states, PostgreSQL's class 08 and shutdown codes, and a
// closed PGlite.
const UNAVAILABLE = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
  '57P01', '57P02', '57P03', '53300',
]);

/** True when an error (or its cause) says the database is unreachable. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.code === 'string' && (UNAVAILABLE.has(e.code) || e.code.startsWith('08'))) return true;
    if (typeof e.message === 'string' && /PGlite is closed/i.test(e.message)) return true;
  }
  return false;
}

/** The PostgreSQL error code behind a Drizzle error (23505 = unique violation). */
export function pgErrorOf(err: unknown): { code?: string; constraint?: string } {
  const e = err as { code?: string; constraint?: string; constraint_name?: string; cause?: unknown };
  if (e?.code && /^[0-9A-Z]{5}$/.test(e.code)) return { code: e.code, constraint: e.constraint ?? e.constraint_name };
  return e?.cause ? pgErrorOf(e.cause) : {};
}
