// Process entry: reads the environment (and .env when present), opens the database, builds the
// app, listens, and shuts down gracefully on SIGTERM/SIGINT: stop accepting, drain requests and
// background work, stop the outbox worker (queued email stays queued), close the database.
import { existsSync } from 'node:fs';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { openDatabase } from './db/index.js';

if (existsSync('.env')) process.loadEnvFile('.env');

let config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(1);
}

const database = await openDatabase(config.databaseUrl, config.dataDir);
const app = await buildApp(config, database);

let closing = false;
async function shutdown(signal: string) {
  if (closing) return;
  closing = true;
  app.log.info({ signal }, 'shutting down');
  const force = setTimeout(() => process.exit(1), 15_000).unref();
  try {
    await app.close();
    await database.close();
  } finally {
    clearTimeout(force);
  }
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));

try {
  await app.listen({ port: config.port, host: config.host });
} catch (err) {
  app.log.error({ err }, 'could not start');
  await database.close();
  process.exit(1);
}
