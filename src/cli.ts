// The command line: `npx authservice <command>` (package.json "bin") or `npm run cli -- <command>`.
// One command per service call: the commands call the same service functions as the admin API
// (services/admin-users.ts, mail/outbox-admin.ts), with a Context built from the same
// configuration (the environment and .env, as the server reads them), so a rule holds whichever
// way an operator acts. Output: JSON on stdout (for scripts); errors on stderr, exit code 2 for bad
// usage (unknown command or option, malformed value, bad configuration), 1 when the operation was
// refused or failed (no such account, a password rule, a database error).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { type Config, ConfigError, JWT_ALGORITHMS, type JwtAlgorithm, loadConfig } from './config.js';
import { type Database, openDatabase } from './db/index.js';
import { AppError } from './errors.js';
import { systemClock } from './lib/clock.js';
import type { KeyRing } from './lib/keys.js';
import { createMetrics } from './lib/metrics.js';
import { createHasher } from './lib/password.js';
import type { LimitStore } from './lib/store/index.js';
import { openLimitStore } from './lib/store/open.js';
import { requeueEmail } from './mail/outbox-admin.js';
import * as admin from './services/admin-users.js';
import { listSigningKeys, rotateSigningKeys } from './services/signing-keys.js';
import type { Context } from './services/context.js';
import { recordEvent } from './services/events.js';
import { findUserBy } from './services/users.js';

/** Audit events of the CLI name this actor (an operator with database access, no admin key). */
export const CLI_ACTOR: admin.Actor = { keyId: 'cli' };

class UsageError extends Error {}

interface Io {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
  /** Standard input, read whole (for --password-stdin). */
  stdin(): Promise<string>;
}

interface Command {
  summary: string;
  usage: string;
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Whether it needs the database (and so the configuration). */
  database: boolean;
  /** The audit event of the call: admin.<action>, as for the same call over the admin API. */
  action?: string;
  run(args: { values: Record<string, string | boolean | undefined>; positionals: string[] }, env: CommandEnv): Promise<unknown>;
}

interface CommandEnv {
  io: Io;
  config: () => Readonly<Config>;
  ctx: () => Promise<Context>;
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/** An account named by its id, its email or its username. */
async function resolveUser(ctx: Context, who: string | undefined): Promise<string> {
  if (!who) throw new UsageError('name the account: its id, email or username');
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(who)) return who;
  const user = await findUserBy(ctx.db, who.includes('@') ? 'email' : 'username', who);
  if (!user) throw new AppError('user_not_found', { detail: `No user with the ${who.includes('@') ? 'email' : 'username'} "${who}".` });
  return user.id;
}

function stateCommand(verb: string, help: string, act: (ctx: Context, actor: admin.Actor, id: string) => Promise<unknown>): Command {
  return {
    action: `${verb}_user`,
    summary: help,
    usage: `users:${verb} <id | email | username>`,
    help: `${help}\nIdempotent: an account already in that state is answered as it is.`,
    options: {},
    database: true,
    async run({ positionals }, { ctx }) {
      if (positionals.length !== 1) throw new UsageError(positionals.length ? 'name one account' : 'name the account: its id, email or username');
      const c = await ctx();
      return act(c, CLI_ACTOR, await resolveUser(c, positionals[0]));
    },
  };
}

export const COMMANDS: Record<string, Command> = {
  migrate: {
    summary: 'Apply the database migrations (the server also does at start)',
    usage: 'migrate',
    help: 'Applies every pending migration to DATABASE_URL (or the embedded database in DATA_DIR), under the\nsame advisory lock as the server, so it is safe while other instances start.',
    options: {},
    database: true,
    async run(_args, { ctx }) {
      await ctx(); // opening the database migrates it
      return { migrated: true };
    },
  },

  keygen: {
    summary: 'Print a new JWT signing key (PEM), or a new admin API key',
    usage: 'keygen [--algorithm EdDSA|ES256|RS256] | keygen --admin-key [--id <name>]',
    help:
      'Without options: a new private key for JWT_PRIVATE_KEY, PKCS#8 PEM, for --algorithm (default: JWT_ALGORITHM, or EdDSA).\n' +
      '--admin-key: a new ADMIN_API_KEYS entry, "<id>:<43 random base64url characters>" (id: --id, default "admin").\n' +
      'Prints to stdout only; nothing is stored.',
    options: { algorithm: { type: 'string' }, 'admin-key': { type: 'boolean' }, id: { type: 'string' } },
    database: false,
    async run({ values }, { io }) {
      if (values['admin-key']) {
        if (values.algorithm !== undefined) throw new UsageError('--algorithm is for signing keys, not with --admin-key');
        const id = (values.id as string | undefined) ?? 'admin';
        if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) throw new UsageError(`--id: 1–64 letters, digits, "_", "." or "-", got "${id}"`);
        return `${id}:${randomBytes(32).toString('base64url')}\n`;
      }
      if (values.id !== undefined) throw new UsageError('--id names an admin key: use it with --admin-key');
      const algorithm = (values.algorithm as string | undefined) ?? io.env.JWT_ALGORITHM ?? 'EdDSA';
      if (algorithm === 'HS256') throw new UsageError('HS256 uses JWT_SECRET, not a key pair: e.g. openssl rand -base64 48');
      if (!(JWT_ALGORITHMS as readonly string[]).includes(algorithm)) throw new UsageError(`--algorithm: one of EdDSA, ES256, RS256, got "${algorithm}"`);
      return generateSigningKey(algorithm as Exclude<JwtAlgorithm, 'HS256'>);
    },
  },

  'keys:rotate': {
    summary: 'Promote the next signing key to current, without logging anyone out',
    usage: 'keys:rotate [--force]',
    help:
      'Retires the current key (it stays in the JWKS until every token it signed has expired), promotes the next key\n' +
      '(published since the previous rotation) and publishes a new next key; every instance follows within\n' +
      'JWT_KEYS_RELOAD_INTERVAL. The same service call as POST /admin/keys/rotate.\n' +
      '  --force   rotate even if the next key has been published for less than the JWKS cache lifetime (300 s)\n' +
      'Refused (exit 1) under HS256 and with keys from JWT_PRIVATE_KEY (key_rotation_unavailable).',
    options: { force: { type: 'boolean' } },
    action: 'rotate_signing_keys',
    database: true,
    async run({ values, positionals }, { ctx }) {
      if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
      const c = await ctx();
      return rotateSigningKeys({ db: c.db, config: c.config, now: c.now }, { force: Boolean(values.force) });
    },
  },

  'keys:list': {
    summary: 'List the signing keys (current, next, retired)',
    usage: 'keys:list',
    help: 'The signing keys of JWT_ALGORITHM kept in the database, current first, with when each retired one leaves the JWKS.\nThe same service call as GET /admin/keys.',
    options: {},
    database: true,
    async run({ positionals }, { ctx }) {
      if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
      const c = await ctx();
      return listSigningKeys({ db: c.db, config: c.config, now: c.now });
    },
  },

  'users:create': {
    action: 'create_user',
    summary: 'Create an account',
    usage: 'users:create (--email <email> | --username <name>) [options]',
    help:
      'Options:\n' +
      '  --email <email>, --username <name>   at least one\n' +
      '  --first-name <text>, --last-name <text>\n' +
      '  --password-stdin                     read the password from standard input (the password rules apply)\n' +
      '  --verified                           create it verified\n' +
      '  --send-activation-email              email an activation link (unverified accounts)\n' +
      '  --send-password-set-email            email a password-set link (accounts without a password)\n' +
      'Emails are queued in the outbox and sent by the running service.',
    options: {
      email: { type: 'string' },
      username: { type: 'string' },
      'first-name': { type: 'string' },
      'last-name': { type: 'string' },
      'password-stdin': { type: 'boolean' },
      verified: { type: 'boolean' },
      'send-activation-email': { type: 'boolean' },
      'send-password-set-email': { type: 'boolean' },
    },
    database: true,
    async run({ values, positionals }, { io, ctx }) {
      if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
      let password: string | undefined;
      if (values['password-stdin']) {
        password = (await io.stdin()).replace(/\r?\n$/, '');
        if (!password) throw new UsageError('--password-stdin: standard input is empty');
      }
      const input: admin.CreateUserInput = {
        ...(values.email !== undefined ? { email: values.email as string } : {}),
        ...(values.username !== undefined ? { username: values.username as string } : {}),
        ...(values['first-name'] !== undefined ? { firstName: values['first-name'] as string } : {}),
        ...(values['last-name'] !== undefined ? { lastName: values['last-name'] as string } : {}),
        ...(password !== undefined ? { password } : {}),
        verified: Boolean(values.verified),
        sendActivationEmail: Boolean(values['send-activation-email']),
        sendPasswordSetEmail: Boolean(values['send-password-set-email']),
      };
      checkFields(input);
      return admin.createUser(await ctx(), CLI_ACTOR, input);
    },
  },

  'users:verify': stateCommand('verify', 'Mark an account verified', admin.verifyUser),
  'users:deactivate': stateCommand('deactivate', 'Deactivate an account and end every session of it', admin.deactivateUser),
  'users:reactivate': stateCommand('reactivate', 'Reactivate a deactivated account', admin.reactivateUser),

  'outbox:requeue': {
    action: 'requeue_email',
    summary: 'Send failed emails again',
    usage: 'outbox:requeue <outbox id>...',
    help: 'Puts each failed email back in the queue (attempts from zero, due now); the running service sends it.\nFind the ids with GET /admin/outbox?status=failed.',
    options: {},
    database: true,
    async run({ positionals }, { ctx }) {
      if (positionals.length === 0) throw new UsageError('give the id of at least one failed email');
      const ids = positionals.map((p) => {
        if (!/^[1-9][0-9]{0,15}$/.test(p)) throw new UsageError(`"${p}" is not an outbox id (a positive integer)`);
        return Number(p);
      });
      const c = await ctx();
      const requeued = [];
      for (const id of ids) requeued.push((await requeueEmail(c, id)).email);
      return { emails: requeued };
    },
  },
};

/** The same field shapes as the HTTP schemas, so that the CLI refuses what the API refuses. */
function checkFields(input: admin.CreateUserInput): void {
  if (input.email !== undefined && (input.email.length > 254 || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(input.email))) {
    throw new UsageError(`--email: not an email address: "${input.email}"`);
  }
  if (input.username !== undefined && !/^[\p{L}\p{N}@.+\-_]{1,150}$/u.test(input.username)) {
    throw new UsageError('--username: 1–150 letters, digits and @.+-_');
  }
  for (const [flag, v] of [['--first-name', input.firstName], ['--last-name', input.lastName]] as const) {
    if (v !== undefined && (v.length > 150 || v.includes('\0'))) throw new UsageError(`${flag}: at most 150 characters`);
  }
}

export function generateSigningKey(algorithm: Exclude<JwtAlgorithm, 'HS256'>): string {
  const encoding = { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } } as const;
  const pair =
    algorithm === 'EdDSA'
      ? generateKeyPairSync('ed25519', encoding)
      : algorithm === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256', ...encoding })
        : generateKeyPairSync('rsa', { modulusLength: 3072, ...encoding });
  return pair.privateKey as unknown as string;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** The security-event lines of the services, as JSON lines on stderr (stdout is the command's answer). */
function stderrLogger(level: string, write: (text: string) => void): Context['log'] {
  const min = level === 'silent' ? Infinity : LEVELS.indexOf(level);
  const line = (name: string) => (fields: object, msg: string) => {
    if (LEVELS.indexOf(name) >= min) write(`${JSON.stringify({ level: name, time: Date.now(), ...fields, msg })}\n`);
  };
  return { info: line('info'), warn: line('warn'), error: line('error') };
}

/** The services' Context outside a request: no tokens are issued here, and mail is left to the service's worker. */
async function cliContext(config: Readonly<Config>, database: Database, limits: LimitStore, log: Context['log']): Promise<Context> {
  return {
    limits,
    config,
    db: database.db,
    now: systemClock,
    hasher: await createHasher(config.argon2),
    // No command signs or verifies a token; the key commands call services/signing-keys.ts.
    get keys(): KeyRing {
      throw new Error('the CLI holds no key ring');
    },
    accessTokens: {
      issue: () => {
        throw new Error('the CLI issues no access tokens');
      },
      verify: () => {
        throw new Error('the CLI verifies no access tokens');
      },
    },
    metrics: createMetrics(),
    log,
    client: null,
    mailQueued: () => {}, // the running service's outbox worker picks queued email up on its next poll
    webhooksQueued: () => {}, // and queued webhook deliveries too
    background: () => {
      throw new Error('the CLI runs no background work');
    },
  };
}

function helpText(name?: string): string {
  if (name && COMMANDS[name]) {
    const c = COMMANDS[name];
    return `Usage: authservice ${c.usage}\n\n${c.summary}.\n${c.help}\n`;
  }
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return (
    'Usage: authservice <command> [options]   (npx authservice …, or npm run cli -- …)\n\nCommands:\n' +
    Object.entries(COMMANDS)
      .map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`)
      .join('\n') +
    '\n\nauthservice <command> --help for its options. Configuration: the environment (and .env), as for the server.\n'
  );
}

/** Runs one command line; returns the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(helpText(rest[0]));
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`authservice: unknown command "${name}"\n\n${helpText()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(helpText(name));
    return 0;
  }
  let database: Database | undefined;
  let limits: LimitStore | undefined;
  let context: Context | undefined;
  // admin.<action> with the `cli` key id, once the call is over (as routes/admin/audit.ts does).
  const audit = async (result: unknown, code?: string) => {
    if (!command.action || !context) return;
    const out = result as { user?: { id?: string }; emails?: { id: number; userId: string | null }[] } | undefined;
    const detail: Record<string, string> = { keyId: CLI_ACTOR.keyId, outcome: code ?? 'ok' };
    if (out?.emails) detail.emailIds = out.emails.map((e) => e.id).join(',');
    await recordEvent(context, null, { type: `admin.${command.action}`, userId: out?.user?.id ?? out?.emails?.[0]?.userId ?? null, actor: `admin:${CLI_ACTOR.keyId}`, detail });
  };
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    let config: Readonly<Config> | undefined;
    const getConfig = () => (config ??= loadConfig(io.env));
    const result = await command.run(parsed as never, {
      io,
      config: getConfig,
      ctx: async () => {
        database ??= await openDatabase(getConfig().databaseUrl, getConfig().dataDir);
        if (!context) {
          const log = stderrLogger(getConfig().logLevel, (text) => io.err(text));
          // Per-recipient mail caps are shared with the running service (Redis or the database).
          limits = await openLimitStore(getConfig(), database.db, { ...log, debug: () => {}, trace: () => {}, fatal: log.error, child: () => log, level: getConfig().logLevel, silent: () => {} } as never);
          context = await cliContext(getConfig(), database, limits, log);
        }
        return context;
      },
    });
    await audit(result);
    io.out(typeof result === 'string' ? result : json(result));
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`authservice ${name}: ${err.message}\nUsage: authservice ${command.usage}   (--help for more)\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(`authservice ${name}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof AppError) {
      await audit(undefined, err.code).catch(() => {});
      const fields = err.errors
        ? Object.entries(err.errors).map(([f, list]) => `\n  ${f}: ${list.map((e) => `${e.message} (${e.code})`).join(' ')}`).join('')
        : '';
      io.err(`authservice ${name}: ${err.message} (${err.code})${fields}\n`);
      return 1;
    }
    io.err(`authservice ${name}: failed: ${(err as Error).message ?? err}\n`);
    return 1;
  } finally {
    await limits?.close();
    await database?.close();
  }
}

/** The process entry (bin/authservice.mjs, or `node --import tsx src/cli.ts`). */
export async function runFromProcess(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const readStdin = async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  };
  const code = await main(process.argv.slice(2), {
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
    env: process.env,
    stdin: readStdin,
  });
  process.exitCode = code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await runFromProcess();
