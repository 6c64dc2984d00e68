// `npm run build` (and `npm start` when it compiles): an empty PGlite data folder, made once per
// PGlite version, that the service copies into a new DATA_DIR instead of running PGlite's initdb
// at its first start (4 s of CPU here against 0.2 s for the copy: issue 10 item 8). It lives in node_modules/.cache/authservice/, so a
// reinstall of another PGlite version makes a new one; the service (src/db/pglite-template.ts,
// which finds it the same way) falls back to initdb when it is missing.
//
// Not an install script: `npx authservice` installs the project into npm's cache and would run it.
// Skipped with NODE_ENV=production (the image runs on PostgreSQL) and AUTHSERVICE_PGLITE_TEMPLATE=0.
// A failure here only warns: the service works without a template, with a slower first start.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

if (process.env.NODE_ENV === 'production' || process.env.AUTHSERVICE_PGLITE_TEMPLATE === '0') process.exit(0);

let partial;
try {
  const entry = import.meta.resolve('@electric-sql/pglite');
  const { version } = JSON.parse(readFileSync(new URL('../package.json', entry), 'utf8'));
  const target = fileURLToPath(new URL(`../../../.cache/authservice/pglite-${version}`, entry));
  if (!existsSync(target)) {
    const started = performance.now();
    partial = `${target}.partial-${process.pid}`;
    mkdirSync(partial, { recursive: true });
    const { PGlite } = await import('@electric-sql/pglite');
    const pg = await PGlite.create(`${partial}/pgdata`);
    await pg.close();
    renameSync(partial, target); // whole or absent: the service never sees half a template
    console.log(`authservice: embedded database template for PGlite ${version} made in ${((performance.now() - started) / 1000).toFixed(1)} s (${target})`);
  }
} catch (err) {
  console.warn(`authservice: no embedded database template (the first start will run initdb): ${err instanceof Error ? err.message : err}`);
  if (partial) rmSync(partial, { recursive: true, force: true });
}
