// `npm run build` (and `npm start` when it compiles): an empty, migrated PGlite database, made once
// per PGlite version and set of migrations, that the service copies into a new DATA_DIR instead of
// running PGlite's initdb and the migrations at its first start (4 s and 0.7 s of CPU here, against
// 0.2 s for the copy: issue 10 item 8). It lives in node_modules/.cache/authservice/, named by the
// PGlite version and a digest of migrations/ (src/db/pglite-template.ts finds it the same way and
// falls back to initdb when it is missing); a new one replaces the others.
//
// Not an install script: `npx authservice` installs the project into npm's cache and would run it.
// Skipped with NODE_ENV=production (the image runs on PostgreSQL) and AUTHSERVICE_PGLITE_TEMPLATE=0.
// A failure here only warns: the service works without a template, with a slower first start.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const migrations = fileURLToPath(new URL('../migrations', import.meta.url));

/** The migrations Drizzle applies (its journal and the SQL files), as src/db/pglite-template.ts digests them. */
function migrationsDigest(folder) {
  const hash = createHash('sha256');
  for (const name of ['meta/_journal.json', ...readdirSync(folder).filter((n) => n.endsWith('.sql')).sort()]) hash.update(name).update(readFileSync(join(folder, name)));
  return hash.digest('hex').slice(0, 16);
}

if (process.env.NODE_ENV === 'production' || process.env.AUTHSERVICE_PGLITE_TEMPLATE === '0') process.exit(0);

let partial;
try {
  const entry = import.meta.resolve('@electric-sql/pglite');
  const { version } = JSON.parse(readFileSync(new URL('../package.json', entry), 'utf8'));
  const target = fileURLToPath(new URL(`../../../.cache/authservice/pglite-${version}-${migrationsDigest(migrations)}`, entry));
  if (!existsSync(target)) {
    const started = performance.now();
    partial = `${target}.partial-${process.pid}`;
    mkdirSync(partial, { recursive: true });
    const { PGlite } = await import('@electric-sql/pglite');
    const { drizzle } = await import('drizzle-orm/pglite');
    const { migrate } = await import('drizzle-orm/pglite/migrator');
    const pg = await PGlite.create(`${partial}/pgdata`);
    await migrate(drizzle(pg), { migrationsFolder: migrations });
    await pg.close();
    renameSync(partial, target); // whole or absent: the service never sees half a template
    // Templates of other versions or migrations are of no use any more (each is about 40 MB).
    for (const name of readdirSync(dirname(target))) {
      if (name.startsWith('pglite-') && !name.includes('.partial-') && join(dirname(target), name) !== target) rmSync(join(dirname(target), name), { recursive: true, force: true });
    }
    console.log(`authservice: embedded database template for PGlite ${version} made in ${((performance.now() - started) / 1000).toFixed(1)} s (${target})`);
  }
} catch (err) {
  console.warn(`authservice: no embedded database template (the first start will run initdb): ${err instanceof Error ? err.message : err}`);
  if (partial) rmSync(partial, { recursive: true, force: true });
}
