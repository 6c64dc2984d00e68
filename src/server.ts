// The service process (entered through main.cts): reads the environment (and .env when present),
// opens the database, builds the app, listens, and shuts down gracefully on SIGTERM/SIGINT: stop
// accepting, drain requests and background work, stop the outbox worker (queued email stays
// queued), close the database.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { buildApp } from './app.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { type Database, openDatabase } from './db/index.js';
import { ensureDataDir, StartupError } from './lib/data-dir.js';
import { collectWhenIdle } from './lib/idle-gc.js';

if (existsSync('.env')) process.loadEnvFile('.env');

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(1);
}

/** A start-up failure an operator must fix: one structured line, exit 1, no stack. */
function fatal(msg: string, fields: Record<string, unknown>): never {
  process.stderr.write(`${JSON.stringify({ level: 'fatal', time: Date.now(), pid: process.pid, hostname: hostname(), msg, ...fields })}\n`);
  process.exit(1);
}

// A DATA_DIR or a database that cannot be used (unreachable, missing, not migratable, owned by
// another process) is an operator's problem, not a bug: one structured line naming it (never a
// password) and the reason, then exit 1.
let database: Database | undefined;
let app: Awaited<ReturnType<typeof buildApp>>;
try {
  // DATA_DIR holds the embedded database and the development signing key: check it first when
  // either is used, so a bad folder is one clear line and not a stack from deep inside.
  const devKey = !config.jwt.privateKey && config.jwt.algorithm !== 'HS256';
  if (!config.databaseUrl || devKey) ensureDataDir(config.dataDir);
  database = await openDatabase(config.databaseUrl, config.dataDir, config.database);
  app = await buildApp(config, database);
} catch (err) {
  await database?.close().catch(() => {});
  if (err instanceof StartupError && 'dataDir' in err.fields) fatal(err.message, err.fields);
  // db/postgres.ts names the host, port and user, and says the reason in words where it knows it.
  const { reason, code, database: _name, ...where } = err instanceof StartupError ? err.fields : ({} as Record<string, unknown>);
  const why = reason ? [code, reason].filter(Boolean).join(': ') : reasonOf(err);
  fatal('could not start: the database cannot be opened', { database: describeDatabase(config), reason: why, ...where });
}

// A rejection nobody handled is a bug, but not one that should take every request down with it
// (a database outage must never kill the process): logged as an error, and the service goes on.
process.on('unhandledRejection', (err) => app.log.error({ err }, 'unhandled rejection (a bug: please report it)'));

let closing = false;
async function shutdown(signal: string) {
  if (closing) return;
  closing = true;
  app.log.info({ signal }, 'shutting down');
  // The bound holds whatever happens below: the timer stays armed until the process has exited,
  // not just until the close calls return (something left open would otherwise keep it alive).
  let closed = false;
  setTimeout(() => {
    if (closed) {
      app.log.warn('shutdown: closed, but something kept the process alive; exiting');
      process.exit(0);
    }
    app.log.error({ timeoutSeconds: config.shutdownTimeout }, 'shutdown did not finish in time; exiting');
    process.exit(1);
  }, config.shutdownTimeout * 1000).unref();
  try {
    await app.close();
    await database!.close();
    closed = true;
    app.log.info('shut down');
  } catch (err) {
    app.log.error({ err }, 'shutdown failed');
    process.exit(1);
  }
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));

if (config.nodeEnv === 'production' && config.emailTransport === 'log') {
  app.log.warn('EMAIL_TRANSPORT=log in production: emails, with their live links, are written to the log instead of being sent');
}
if (config.nodeEnv === 'production' && database!.kind === 'pglite') {
  app.log.warn(`ALLOW_EMBEDDED_DATABASE=true in production: one instance only, on the embedded database in ${config.dataDir}`);
}

// One line says where it listens, where the docs are, and which database and mail it uses.
// (Fastify logs one line per address; listening on 0.0.0.0 gives one more per network interface.)
let described = false;
const listenTextResolver = (address: string) => {
  if (described) return `Server listening at ${address} too`;
  described = true;
  return `Server listening at ${address}; docs at ${address}/docs; database: ${describeDatabase(config)}; mail: ${describeMail(config)}`;
};

try {
  await app.listen({ port: config.port, host: config.host, listenTextResolver });
} catch (err) {
  app.log.error({ err }, 'could not start');
  await database!.close();
  process.exit(1);
}

// After a burst, the garbage is given back once the process is quiet (lib/idle-gc.ts).
if (config.idleGcInterval > 0) {
  const mb = (bytes: number) => Math.round(bytes / 1048576);
  collectWhenIdle(config.idleGcInterval, (before, after) => app.log.debug({ heapUsedMb: { before: mb(before), after: mb(after) } }, 'idle: garbage collected'));
}

/** The database, without its password. */
function describeDatabase(c: Readonly<Config>): string {
  if (c.databaseUrl === 'memory://') return 'embedded PGlite, in memory';
  if (!c.databaseUrl) return `embedded PGlite in ${c.dataDir}`;
  const u = new URL(c.databaseUrl);
  return `PostgreSQL at ${u.hostname}:${u.port || 5432}${u.pathname}`;
}

function describeMail(c: Readonly<Config>): string {
  if (c.emailTransport === 'log') return 'written to the log (EMAIL_TRANSPORT=log), not sent';
  const u = new URL(c.smtpUrl!);
  return `SMTP via ${u.protocol}//${u.hostname}:${u.port || (u.protocol === 'smtps:' ? 465 : 587)}`;
}

/** The driver's code and message of an error and its causes, without a stack. */
function reasonOf(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined; e && parts.length < 4; e = e.cause as typeof e) {
    const text = [typeof e.code === 'string' ? e.code : '', typeof e.message === 'string' ? e.message.split('\n')[0] : ''].filter(Boolean).join(' ');
    if (text && !parts.includes(text)) parts.push(text);
  }
  return parts.join(': ') || String(err);
}
