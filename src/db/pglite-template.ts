// A new DATA_DIR's embedded database starts as a copy of the empty, migrated database that the build
// made (scripts/pglite-template.mjs, run by `npm run build` and by `npm start` when it compiles):
// PGlite's initdb and the migrations cost about 4.7 s of CPU here, the copy about 0.2 s, so a first
// start takes about as long as a restart (issue 10 item 8). Without a template for this PGlite
// version and these migrations (the production image, or a build that could not make one) PGlite
// runs initdb and the migrations run, as before.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MIGRATIONS_FOLDER } from './index.js';

/** node_modules/.cache/authservice/pglite-<version>-<migrations digest>/pgdata, as scripts/pglite-template.mjs names it. */
export function templateFolder(): string {
  const entry = import.meta.resolve('@electric-sql/pglite');
  const { version } = JSON.parse(readFileSync(new URL('../package.json', entry), 'utf8')) as { version: string };
  return fileURLToPath(new URL(`../../../.cache/authservice/pglite-${version}-${migrationsDigest(MIGRATIONS_FOLDER)}/pgdata`, entry));
}

/** The migrations Drizzle applies (its journal and the SQL files), digested as the build's script does. */
function migrationsDigest(folder: string): string {
  const hash = createHash('sha256');
  for (const name of ['meta/_journal.json', ...readdirSync(folder).filter((n) => n.endsWith('.sql')).sort()]) hash.update(name).update(readFileSync(join(folder, name)));
  return hash.digest('hex').slice(0, 16);
}

/**
 * Copies the template to `pgdata` when `pgdata` does not exist yet; true when it did. The caller
 * holds DATA_DIR's lock. The copy is made beside it and renamed into place, so a crash during it
 * leaves no half database: the next start copies again.
 */
export function seedFromTemplate(pgdata: string, templateAt?: string): boolean {
  if (existsSync(pgdata)) return false; // a restart: no template to find, no migrations to digest
  const template = templateAt ?? templateFolder();
  if (!existsSync(template)) return false;
  const partial = `${pgdata}.from-template`;
  rmSync(partial, { recursive: true, force: true });
  cpSync(template, partial, { recursive: true });
  renameSync(partial, pgdata);
  return true;
}
