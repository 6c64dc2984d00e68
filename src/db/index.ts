// Opens the database: PostgreSQL when a postgres:// URL is given (db/postgres.ts), otherwise the
// embedded PGlite (PostgreSQL in WebAssembly) kept in a folder or in memory (db/pglite.ts, loaded
// only then). Both get the same schema and the same migrations, applied here at start.
import { fileURLToPath } from 'node:url';
import type { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import type { PoolStats } from './pool-stats.js';
import type { Readiness } from './readiness.js';
import type * as schema from './schema.js';

/** The rows of `execute`: postgres.js returns them as an array, PGlite as `{ rows }`. */
export function rowsOf<Row>(result: unknown): Row[] {
  return Array.isArray(result) ? (result as Row[]) : (result as { rows: Row[] }).rows;
}

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../migrations', import.meta.url));

// Drizzle's two drivers share the query-builder API; the service is written against this one.
export type Db = ReturnType<typeof drizzlePostgres<typeof schema>>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export interface Database {
  db: Db;
  kind: 'postgres' | 'pglite';
  /** Connections in use, for the metrics. */
  pool: PoolStats;
  /**
   * The readiness check (db/readiness.ts): whether the database has every migration of this
   * build. Rejects when the database does not answer, or when the request pool cannot hand out a
   * connection, within `pingTimeout` whatever the database does (its own connection, not the
   * request pool's queue).
   */
  ready(): Promise<Readiness>;
  close(): Promise<void>;
}

/** Every bound on waiting for the database (milliseconds); see README "Failure behaviour". */
export interface DatabaseOptions {
  /** Connections in the request pool (PostgreSQL). */
  poolSize: number;
  /** Opening a connection, TCP and start-up included. */
  connectTimeout: number;
  /** Waiting for a free connection of the pool. */
  acquireTimeout: number;
  /** One statement (PostgreSQL's statement_timeout); a silent server gets one more second. */
  queryTimeout: number;
  /** The readiness probe's query, connection included. */
  pingTimeout: number;
}

export const DEFAULT_DATABASE: DatabaseOptions = {
  poolSize: 10,
  connectTimeout: 2_000,
  acquireTimeout: 2_000,
  queryTimeout: 5_000,
  pingTimeout: 1_000,
};

export async function openDatabase(url: string | undefined, dataDir: string, options: Partial<DatabaseOptions> = {}): Promise<Database> {
  const opts = { ...DEFAULT_DATABASE, ...options };
  if (url && url !== 'memory://') return (await import('./postgres.js')).openPostgres(url, opts);
  return (await import('./pglite.js')).openPglite(url === 'memory://' ? undefined : dataDir, opts);
}

// Errors that mean "the database cannot serve this now", as opposed to "this query is wrong":
// socket errors; postgres.js's connection states and our bounded waits (QUEUE_TIMEOUT: no free
// connection in time, QUERY_TIMEOUT: a silent server); PostgreSQL's class 08 (connection), 53
// (insufficient resources), 57 (operator intervention: 57014 a statement cancelled by
// statement_timeout, 57P01-03 shutting down or starting up), 55P03 (lock_timeout), 25P03 (idle in
// transaction timeout), 3D000 (the database does not exist), 28xxx (authentication); a closed PGlite.
const UNAVAILABLE = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'QUEUE_TIMEOUT', 'QUERY_TIMEOUT',
  '55P03', '25P03', '3D000',
]);
const UNAVAILABLE_CLASSES = ['08', '53', '57', '28'];

/** True when an error (or its cause) says the database is unreachable or cannot serve now. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.code === 'string' && (UNAVAILABLE.has(e.code) || (/^[0-9A-Z]{5}$/.test(e.code) && UNAVAILABLE_CLASSES.includes(e.code.slice(0, 2))))) {
      return true;
    }
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

/** Rejects with `message` after `ms`, unless `work` settles first. */
export function within<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(message), { code: 'PING_TIMEOUT' })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
