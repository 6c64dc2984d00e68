// A new DATA_DIR's embedded database starts as a copy of the empty data folder that the build made
// (scripts/pglite-template.mjs, run by `npm run build` and by `npm start` when it compiles):
// PGlite's initdb costs about 4 s of CPU here, the copy about 0.2 s, so a first start takes about
// as long as a restart (issue 10 item 8). Without a template (the production image, or a build
// that could not make one) PGlite runs initdb.
import { cpSync, existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** node_modules/.cache/authservice/pglite-<version>/pgdata, as scripts/pglite-template.mjs makes it. */
export function templateFolder(): string {
  const entry = import.meta.resolve('@electric-sql/pglite');
  const { version } = JSON.parse(readFileSync(new URL('../package.json', entry), 'utf8')) as { version: string };
  return fileURLToPath(new URL(`../../../.cache/authservice/pglite-${version}/pgdata`, entry));
}

/**
 * Copies the template to `pgdata` when `pgdata` does not exist yet; true when it did. The caller
 * holds DATA_DIR's lock. The copy is made beside it and renamed into place, so a crash during it
 * leaves no half database: the next start copies again.
 */
export function seedFromTemplate(pgdata: string, template = templateFolder()): boolean {
  if (existsSync(pgdata) || !existsSync(template)) return false;
  const partial = `${pgdata}.from-template`;
  rmSync(partial, { recursive: true, force: true });
  cpSync(template, partial, { recursive: true });
  renameSync(partial, pgdata);
  return true;
}
