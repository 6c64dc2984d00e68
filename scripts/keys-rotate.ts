// `npm run keys:rotate [-- --force]`: promotes the next signing key (services/signing-keys.ts).
// A thin entry over the same service function as POST /admin/keys/rotate; the CLI's
// `keys:rotate` command replaces it when the CLI lands. With the embedded database (no
// DATABASE_URL) run it while the service is stopped: PGlite is a single process's database.
import { existsSync } from 'node:fs';
import { ConfigError, loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/index.js';
import { AppError } from '../src/errors.js';
import { rotateSigningKeys } from '../src/services/signing-keys.js';

if (existsSync('.env')) process.loadEnvFile('.env');
const args = process.argv.slice(2);
if (args.includes('--help') || args.some((a) => a !== '--force')) {
  console.log('usage: npm run keys:rotate [-- --force]\n  Promotes the next signing key to current, retires the current one, publishes a new next key.\n  --force  rotate even if the next key has been published for less than the JWKS cache lifetime (300 s)');
  process.exit(args.includes('--help') ? 0 : 2);
}
try {
  const config = loadConfig(process.env);
  const database = await openDatabase(config.databaseUrl, config.dataDir);
  try {
    const { keys } = await rotateSigningKeys({ db: database.db, config, now: () => new Date() }, { force: args.includes('--force') });
    for (const k of keys.filter((key) => key.published)) console.log(`${k.status.padEnd(8)} ${k.kid}${k.publishedUntil ? `  published until ${k.publishedUntil}` : ''}`);
  } finally {
    await database.close();
  }
} catch (err) {
  if (err instanceof ConfigError || err instanceof AppError) {
    console.error(err instanceof AppError ? `keys:rotate: ${err.message}` : err.message);
    process.exit(1);
  }
  throw err;
}
