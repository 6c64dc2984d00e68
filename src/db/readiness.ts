// The readiness check: the database answers and has every migration this build ships. One query
// does both (Drizzle's migrator records each applied migration with its journal timestamp), so the
// probe costs what a ping costs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { type Db, MIGRATIONS_FOLDER, rowsOf } from './index.js';

/** The journal timestamp of the newest migration of this build. */
export function latestMigration(): number {
  const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as { entries: { when: number }[] };
  return Math.max(0, ...journal.entries.map((e) => e.when));
}

export type Readiness = 'ready' | 'migrations_pending';

/**
 * The readiness query, as plain SQL with the newest migration's timestamp as $1: the probe runs it
 * on a connection of its own (db/postgres.ts), not through the request pool.
 */
export const READINESS_SQL = 'select count(*)::int as n from drizzle.__drizzle_migrations where created_at >= $1';

export function readinessOf(rows: readonly { n: number }[]): Readiness {
  return rows[0]?.n > 0 ? 'ready' : 'migrations_pending';
}

/** Throws when the database does not answer. */
export function readinessCheck(db: Db): () => Promise<Readiness> {
  const latest = latestMigration();
  return async () => {
    const result = await db.execute<{ n: number }>(
      sql`select count(*)::int as n from drizzle.__drizzle_migrations where created_at >= ${latest}`,
    );
    // postgres.js answers an array of rows, PGlite { rows }.
    return readinessOf(rowsOf<{ n: number }>(result));
  };
}
