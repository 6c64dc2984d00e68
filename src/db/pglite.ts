// The embedded database: PGlite in DATA_DIR (or in memory). Loaded only when used, so a service on
// PostgreSQL never pays for it. One owner per folder (lib/data-dir.ts lockDataDir).
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { and, eq, gt, sql } from 'drizzle-orm';
import { type DataDirLock, ensureDataDir, lockDataDir } from '../lib/data-dir.js';
import { type Database, type DatabaseOptions, type Db, DEFAULT_DATABASE, MIGRATIONS_FOLDER, within } from './index.js';
import { PreparedPglite } from './pglite-statements.js';
import { seedFromTemplate } from './pglite-template.js';
import { trackPool } from './pool-stats.js';
import { latestMigration, READINESS_SQL, readinessOf } from './readiness.js';
import * as schema from './schema.js';
import { outbox } from './schema.js';

export async function openPglite(dataDir: string | undefined, options: DatabaseOptions = DEFAULT_DATABASE): Promise<Database> {
  if (dataDir === undefined) return usePglite(await PGlite.create(), options);
  const path = ensureDataDir(dataDir);
  const lock = lockDataDir(path);
  try {
    seedFromTemplate(`${path}/pgdata`); // a first start copies the install's empty database instead of initdb
    const database = await usePglite(await PGlite.create(`${path}/pgdata`), options, lock);
    // This process is the folder's only owner: no other instance can be sending the outbox rows
    // a crashed predecessor had claimed, so every pending row is due at once instead of waiting
    // out its lease (issue 9 item 7: queued email goes out right after a kill -9).
    await retryPendingNow(database.db);
    return database;
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function retryPendingNow(db: Db): Promise<void> {
  // Rows waiting out a retry's backoff are tried once more too: a restart is a good time to.
  await db
    .update(outbox)
    .set({ nextAttemptAt: sql`now()` })
    .where(and(eq(outbox.status, 'pending'), gt(outbox.nextAttemptAt, sql`now()`)));
}

/** Wraps an open PGlite (tests pass a clone of a migrated template) and migrates it. */
export async function usePglite(pg: PGlite, options: DatabaseOptions = DEFAULT_DATABASE, lock?: DataDirLock): Promise<Database> {
  // PGlite is a single connection in this process: no other instance can race the migration.
  await migratePglite(drizzlePglite(pg), { migrationsFolder: MIGRATIONS_FOLDER });
  // Drizzle calls only query() and transaction(), which PreparedPglite has with PGlite's signatures.
  const tracked = trackPool(new PreparedPglite(pg) as unknown as PGlite, 1, ['query', 'transaction']);
  const latest = latestMigration();
  const db = drizzlePglite(tracked.client, { schema });
  return {
    db: db as unknown as Db,
    kind: 'pglite',
    pool: tracked.stats,
    ready: async () =>
      readinessOf(
        (await within(pg.query<{ n: number }>(READINESS_SQL, [latest]), options.pingTimeout, 'the embedded database did not answer in time')).rows,
      ),
    close: async () => {
      try {
        if (!pg.closed) await pg.close();
      } finally {
        lock?.release();
      }
    },
  };
}
