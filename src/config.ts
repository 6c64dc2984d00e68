// The service's configuration: every variable of the README's table, parsed once from the environment
// into a frozen, typed object. Nothing else reads process.env. A bad value stops the start with
// one message that names every bad variable, so an operator fixes them all in one go.
import { parseKek } from './lib/kek.js';
import { parseWebhookSecret } from './lib/webhook-signature.js';
import { SECURITY_EVENTS } from './services/events.js';

import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';

export const JWT_ALGORITHMS = ['EdDSA', 'ES256', 'RS256', 'HS256'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export const LOGIN_FIELDS = ['email', 'username'] as const;
export const REGISTER_FIELDS = ['email', 'username', 'firstName', 'lastName'] as const;
export const UPDATE_FIELDS = ['username', 'firstName', 'lastName', 'email'] as const;
export type LoginField = (typeof LOGIN_FIELDS)[number];
export type ProfileField = (typeof REGISTER_FIELDS)[number];

export interface Config {
  port: number;
  host: string;
  nodeEnv: string;
  logLevel: string;
  databaseUrl: string | undefined; // postgres://… ; undefined = PGlite in dataDir; memory:// = PGlite in memory
  dataDir: string;
  publicUrl: string;
  frontendUrl: string;
  activationUrl: string;
  passwordResetUrl: string;
  passwordSetUrl: string;
  emailChangeUrl: string;
  smtpUrl: string | undefined;
  /** smtp: send through SMTP_URL; log: write emails (links included) to the log, for development. */
  emailTransport: 'smtp' | 'log';
  emailFrom: string;
  /** Exact origins (scheme://host[:port]) a browser may call the API from; ['*'] for any. */
  corsOrigins: string[];
  /** The bearer token /metrics requires; unset: no /metrics route at all. */
  metricsToken: string | undefined;
  /** Production on the embedded PGlite was asked for explicitly. */
  allowEmbeddedDatabase: boolean;
  jwt: {
    algorithm: JwtAlgorithm;
    privateKey: string | undefined;
    publicKey: string | undefined;
    secret: string | undefined;
    keyEncryptionKey: string | undefined; // seals the keys kept in the database (services/signing-keys.ts)
    keysReloadInterval: number; // seconds between two reads of the signing keys by an instance
    issuer: string | undefined;
    audience: string | undefined;
    expiresIn: number; // seconds
    longRunningRefreshToken: boolean;
    refreshExpiresIn: number; // seconds, absolute from the login
    refreshReuseInterval: number; // seconds
  };
  allowLoginNotVerified: boolean;
  loginAllowedFields: LoginField[];
  registerFields: ProfileField[];
  updateFields: ProfileField[];
  allowDeleteAccount: boolean;
  allowPasswordlessRegistration: boolean;
  sendActivationEmail: boolean;
  sendPasswordSetEmail: boolean;
  expiration: { activation: number; passwordReset: number; passwordSet: number; emailChange: number }; // seconds
  password: { minLength: number; maxLength: number; contextWords: string[] }; // contextWords: SERVICE_NAME first
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  /** Password hashes at once (the core count) and how many more may wait before a 503. */
  hashing: { concurrency: number; maxWaiting: number };
  /** Per client address, on the routes of routes/limits.ts; a max of 0 turns that limit off. */
  rateLimit: {
    max: number; // requests per window on the routes that guess a secret or send email
    window: number; // seconds
    tokenMax: number; // requests per window on /token/refresh, /token/verify, /token/revoke (generous)
    failClosed: boolean; // refuse (503) rather than skip throttling while the limits store is down
  };
  /** Where every limit is counted: Redis when set, the database otherwise (lib/store). */
  redis: { url: string | undefined; prefix: string };
  /** Failed logins per identifier, whatever the client address; limit 0 = off. */
  loginThrottle: { limit: number; window: number };
  /** Token emails per recipient address: per kind per window, and per day; 0 = off. */
  mailCap: { perKind: number; window: number; daily: number };
  trustProxy: boolean;
  /** The service's name: a context word no password may contain (ASVS 5.0 6.2.11). */
  serviceName: string;
  /** Slow and idle clients (seconds; maxConnections a count, 0 = no cap). */
  connections: { requestTimeout: number; headersTimeout: number; keepAliveTimeout: number; maxConnections: number };
  /**
   * ADMIN_API_KEYS: the service credentials of the admin API. Only the SHA-256 of each key is
   * kept, so the configuration object (which may be logged or dumped) never holds a usable key.
   * Empty: the /admin routes do not exist.
   */
  adminApiKeys: AdminApiKey[];
  auditRetention: number; // seconds an audit event is kept (services/audit-log.ts)
  adminRateLimit: { max: number; window: number }; // requests per window (seconds) per client on /admin; max 0 = off
  /** Outbox deliveries in flight at once (and SMTP connections); a claimed row's lease (seconds). */
  outbox: { concurrency: number; lease: number };
  /** Graceful shutdown ends within this many seconds, whatever is still running. */
  shutdownTimeout: number;
  /** How often (ms) the process looks at the CPU it used: the first quiet look after work collects garbage once (lib/idle-gc.ts); 0 = never. */
  idleGcInterval: number;
  /** Webhooks (outbox/webhooks.ts): each event POSTed to every URL, signed (Standard Webhooks). */
  webhooks: {
    urls: string[]; // WEBHOOK_URLS; empty: no webhooks
    events: string[] | undefined; // WEBHOOK_EVENTS: only these types (`admin.*`: every admin action); undefined: all
    secret: string | undefined; // WEBHOOK_SECRET, whsec_<base64> (checked); required with urls
    timeout: number; // WEBHOOK_TIMEOUT: milliseconds per attempt
    maxAttempts: number; // WEBHOOK_MAX_ATTEMPTS: then the delivery is failed (dead-lettered)
  };
  /** Bounds on every wait for the database, in milliseconds (db/index.ts DatabaseOptions). */
  database: { poolSize: number; connectTimeout: number; acquireTimeout: number; queryTimeout: number; pingTimeout: number };
}

export interface AdminApiKey {
  /** Names the key in audit events and logs: the `id` of `id:secret`, or `key-` + the first 8 hex digits of its SHA-256. */
  id: string;
  /** SHA-256 of the key, hex. */
  digest: string;
}

/** The default SERVICE_NAME, and the OpenAPI document's title. */
export const DEFAULT_SERVICE_NAME = 'Auth service';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    // One problem, one line (what an operator sees in a container log); several, one per line.
    super(problems.length === 1 ? `Invalid configuration: ${problems[0]}` : `Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "3600", "15m", "1h", "7d" → seconds. */
export function parseDuration(value: string): number | undefined {
  const m = /^(\d+)\s*([smhd]?)$/.exec(value.trim());
  return m ? Number(m[1]) * UNITS[m[2] || 's'] : undefined;
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env): Readonly<Config> {
  const problems: string[] = [];
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const str = (name: string, fallback: string) => get(name) ?? fallback;
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= min && n <= max)) {
      problems.push(`${name}: expected an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return n;
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = get(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (raw === 'true' || raw === '1') return true;
    if (raw === 'false' || raw === '0') return false;
    problems.push(`${name}: expected true, false, 1 or 0, got "${raw}"`);
    return fallback;
  };
  const duration = (name: string, fallback: string, min = 1): number => {
    const raw = get(name) ?? fallback;
    const n = parseDuration(raw);
    if (n === undefined || n < min) {
      problems.push(`${name}: expected a duration of at least ${min}s such as 3600, 15m, 1h or 7d, got "${raw}"`);
      return parseDuration(fallback)!;
    }
    return n;
  };
  // Milliseconds: "500ms", or seconds as everywhere else ("5", "5s").
  const toMs = (raw: string): number => {
    const m = /^(\d+)\s*ms$/.exec(raw.trim());
    if (m) return Number(m[1]);
    const seconds = parseDuration(raw);
    return seconds === undefined ? NaN : seconds * 1000;
  };
  const millis = (name: string, fallback: string, min: number, max: number): number => {
    const raw = get(name) ?? fallback;
    const n = toMs(raw);
    if (!(n >= min && n <= max)) {
      problems.push(`${name}: expected a duration from ${min} ms to ${max / 1000} s such as 500ms or 5s, got "${raw}"`);
      return toMs(fallback);
    }
    return n;
  };
  const list = <T extends string>(name: string, fallback: T[], allowed: readonly T[]): T[] => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const items = [...new Set(raw.split(',').map((s) => s.trim()).filter(Boolean))];
    const bad = items.filter((i) => !allowed.includes(i as T));
    if (bad.length || items.length === 0) {
      problems.push(`${name}: expected a comma-separated list from ${allowed.join(', ')}, got "${raw}"`);
      return fallback;
    }
    return items as T[];
  };
  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const raw = get(name) ?? fallback;
    if (allowed.includes(raw as T)) return raw as T;
    problems.push(`${name}: expected one of ${allowed.join(', ')}, got "${raw}"`);
    return fallback;
  };
  const url = (name: string, fallback: string, protocols: string[]): string => {
    const raw = get(name) ?? fallback;
    try {
      const u = new URL(raw.replace('{token}', 'token'));
      if (!protocols.includes(u.protocol)) throw new Error();
    } catch {
      problems.push(`${name}: expected a ${protocols.join(' or ')} URL, got "${raw}"`);
    }
    return raw.replace(/\/$/, '');
  };
  const origins = (name: string, fallback: string[]): string[] => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const items = [...new Set(raw.split(',').map((s) => s.trim().replace(/\/$/, '')).filter(Boolean))];
    if (items.length === 1 && items[0] === '*') return items;
    const bad = items.filter((i) => !URL.canParse(i) || new URL(i).origin !== i);
    if (bad.length || items.length === 0) {
      problems.push(`${name}: expected * or a comma-separated list of origins such as https://app.example.com (scheme, host and port only), got "${raw}"`);
      return fallback;
    }
    return items;
  };
  const tokenUrl = (name: string, base: string, path: string): string => {
    const value = url(name, `${base}${path}`, ['http:', 'https:']);
    if (!value.includes('{token}')) problems.push(`${name}: must contain {token}, got "${value}"`);
    return value;
  };

  const port = int('PORT', 3000, 0, 65535);
  const nodeEnv = str('NODE_ENV', 'development');
  const publicUrl = url('PUBLIC_URL', `http://localhost:${port}`, ['http:', 'https:']);
  const frontendUrl = url('FRONTEND_URL', publicUrl, ['http:', 'https:']);

  const databaseUrl = get('DATABASE_URL');
  if (databaseUrl && databaseUrl !== 'memory://' && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('DATABASE_URL: expected a postgres:// URL or memory://');
  }
  const redisUrl = get('REDIS_URL');
  if (redisUrl !== undefined) url('REDIS_URL', redisUrl, ['redis:', 'rediss:']);
  const smtpUrl = get('SMTP_URL');
  if (smtpUrl !== undefined) url('SMTP_URL', smtpUrl, ['smtp:', 'smtps:']);
  const production = nodeEnv === 'production';
  // Production rails: a service that logs live links instead of mailing them, or that keeps its
  // accounts in an embedded database inside one container, must be chosen, not stumbled into.
  const emailTransport = oneOf('EMAIL_TRANSPORT', smtpUrl || production ? 'smtp' : 'log', ['smtp', 'log'] as const);
  if (emailTransport === 'smtp' && !smtpUrl) {
    problems.push(
      production && get('EMAIL_TRANSPORT') === undefined
        ? 'SMTP_URL: required in production, or emails (with their live links) would only be written to the log; set EMAIL_TRANSPORT=log to accept that'
        : 'SMTP_URL: required with EMAIL_TRANSPORT=smtp',
    );
  }
  const allowEmbeddedDatabase = bool('ALLOW_EMBEDDED_DATABASE', false);
  if (production && (!databaseUrl || databaseUrl === 'memory://') && !allowEmbeddedDatabase) {
    problems.push(
      'DATABASE_URL: required in production (a postgres:// URL); the embedded database is for development — set ALLOW_EMBEDDED_DATABASE=true to run on it anyway',
    );
  }
  const corsOrigins = origins('CORS_ORIGINS', [...new Set([new URL(frontendUrl).origin, new URL(publicUrl).origin])]);
  const metricsToken = get('METRICS_TOKEN');
  if (metricsToken !== undefined && metricsToken.length < 16) problems.push('METRICS_TOKEN: must be at least 16 characters');

  const algorithm = oneOf('JWT_ALGORITHM', 'EdDSA', JWT_ALGORITHMS);
  const secret = get('JWT_SECRET');
  const privateKey = get('JWT_PRIVATE_KEY')?.replace(/\\n/g, '\n');
  const publicKey = get('JWT_PUBLIC_KEY')?.replace(/\\n/g, '\n');
  if (algorithm === 'HS256') {
    if (!secret || Buffer.byteLength(secret) < 32) problems.push('JWT_SECRET: HS256 needs a secret of at least 32 bytes');
  }
  const keyEncryptionKey = get('KEY_ENCRYPTION_KEY');
  if (keyEncryptionKey !== undefined && !parseKek(keyEncryptionKey)) {
    problems.push('KEY_ENCRYPTION_KEY: expected 32 bytes in base64 or hex (openssl rand -base64 32)');
  }
  if (algorithm !== 'HS256' && nodeEnv === 'production' && !privateKey && !keyEncryptionKey) {
    problems.push(`JWT_PRIVATE_KEY or KEY_ENCRYPTION_KEY: required in production for ${algorithm} (static keys, or keys kept in the database sealed with that key)`);
  }

  const minLength = int('PASSWORD_MIN_LENGTH', 8, 1, 4096);
  const maxLength = int('PASSWORD_MAX_LENGTH', 1024, 1, 4096);
  if (maxLength < minLength) problems.push('PASSWORD_MAX_LENGTH: must not be below PASSWORD_MIN_LENGTH');

  const config: Config = {
    port,
    host: str('HOST', '127.0.0.1'),
    nodeEnv,
    logLevel: oneOf('LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    databaseUrl,
    dataDir: str('DATA_DIR', './data'),
    publicUrl,
    frontendUrl,
    activationUrl: tokenUrl('ACTIVATION_URL', frontendUrl, '/activate/{token}'),
    passwordResetUrl: tokenUrl('PASSWORD_RESET_URL', frontendUrl, '/password-reset/{token}'),
    passwordSetUrl: tokenUrl('PASSWORD_SET_URL', frontendUrl, '/password-set/{token}'),
    emailChangeUrl: tokenUrl('EMAIL_CHANGE_URL', frontendUrl, '/confirm-email/{token}'),
    smtpUrl,
    emailTransport,
    corsOrigins,
    metricsToken,
    allowEmbeddedDatabase,
    emailFrom: str('EMAIL_FROM', 'no-reply@localhost'),
    jwt: {
      algorithm,
      privateKey,
      publicKey,
      secret,
      keyEncryptionKey,
      keysReloadInterval: duration('JWT_KEYS_RELOAD_INTERVAL', '1m'),
      issuer: get('JWT_ISSUER'),
      audience: get('JWT_AUDIENCE'),
      expiresIn: duration('JWT_EXPIRATION_DELTA', '5m'),
      longRunningRefreshToken: bool('JWT_LONG_RUNNING_REFRESH_TOKEN', true),
      refreshExpiresIn: duration('JWT_REFRESH_EXPIRATION_DELTA', '7d'),
      refreshReuseInterval: duration('REFRESH_TOKEN_REUSE_INTERVAL', '10s', 0),
    },
    allowLoginNotVerified: bool('ALLOW_LOGIN_NOT_VERIFIED', true),
    loginAllowedFields: list('LOGIN_ALLOWED_FIELDS', ['email', 'username'], LOGIN_FIELDS),
    registerFields: list('REGISTER_FIELDS', ['email', 'username'], REGISTER_FIELDS),
    updateFields: list('UPDATE_FIELDS', ['firstName', 'lastName'], UPDATE_FIELDS),
    allowDeleteAccount: bool('ALLOW_DELETE_ACCOUNT', false),
    allowPasswordlessRegistration: bool('ALLOW_PASSWORDLESS_REGISTRATION', false),
    sendActivationEmail: bool('SEND_ACTIVATION_EMAIL', true),
    sendPasswordSetEmail: bool('SEND_PASSWORD_SET_EMAIL', false),
    expiration: {
      activation: duration('EXPIRATION_ACTIVATION_TOKEN', '7d'),
      passwordReset: duration('EXPIRATION_PASSWORD_RESET_TOKEN', '1h'),
      passwordSet: duration('EXPIRATION_PASSWORD_SET_TOKEN', '1h'),
      emailChange: duration('EXPIRATION_EMAIL_CHANGE_TOKEN', '1d'),
    },
    password: {
      minLength,
      maxLength,
      contextWords: [str('SERVICE_NAME', DEFAULT_SERVICE_NAME), ...(get('PASSWORD_CONTEXT_WORDS') ?? '').split(',')]
        .map((w) => w.trim())
        .filter(Boolean),
    },
    argon2: {
      memoryCost: int('ARGON2_MEMORY_KIB', 19456, 1024, 4194304),
      timeCost: int('ARGON2_ITERATIONS', 2, 1, 100),
      parallelism: int('ARGON2_PARALLELISM', 1, 1, 64),
    },
    hashing: {
      concurrency: int('PASSWORD_HASH_CONCURRENCY', availableParallelism(), 1, 1024),
      maxWaiting: int('PASSWORD_HASH_QUEUE', 32, 0, 1_000_000),
    },
    rateLimit: {
      max: int('RATE_LIMIT_MAX', 20, 0, 1_000_000),
      window: duration('RATE_LIMIT_WINDOW', '1m'),
      tokenMax: int('RATE_LIMIT_TOKEN_MAX', 600, 0, 1_000_000),
      failClosed: bool('RATE_LIMIT_FAIL_CLOSED', false),
    },
    redis: { url: redisUrl, prefix: str('REDIS_PREFIX', 'authservice:') },
    loginThrottle: { limit: int('LOGIN_FAILURE_LIMIT', 10, 0, 100), window: duration('LOGIN_FAILURE_WINDOW', '15m') },
    mailCap: {
      perKind: int('MAIL_RECIPIENT_LIMIT', 1, 0, 1000),
      window: duration('MAIL_RECIPIENT_WINDOW', '60s'),
      daily: int('MAIL_RECIPIENT_DAILY_LIMIT', 10, 0, 10_000),
    },
    trustProxy: bool('TRUST_PROXY', false),
    adminApiKeys: parseAdminKeys(get('ADMIN_API_KEYS'), problems),
    auditRetention: duration('AUDIT_RETENTION', '90d'),
    adminRateLimit: { max: int('ADMIN_RATE_LIMIT_MAX', 300, 0, 1_000_000), window: duration('ADMIN_RATE_LIMIT_WINDOW', '1m') },
    serviceName: str('SERVICE_NAME', DEFAULT_SERVICE_NAME),
    connections: {
      requestTimeout: duration('REQUEST_TIMEOUT', '15s'),
      headersTimeout: duration('HEADERS_TIMEOUT', '10s'),
      keepAliveTimeout: duration('KEEP_ALIVE_TIMEOUT', '10s'),
      maxConnections: int('MAX_CONNECTIONS', 1000, 0, 1_000_000),
    },
    outbox: { concurrency: int('OUTBOX_CONCURRENCY', 5, 1, 100), lease: duration('OUTBOX_LEASE', '60s', 8) },
    shutdownTimeout: duration('SHUTDOWN_TIMEOUT', '10s', 2),
    idleGcInterval: millis('IDLE_GC_INTERVAL', '10s', 0, 3_600_000),
    webhooks: {
      ...parseWebhooks(get, problems),
      timeout: millis('WEBHOOK_TIMEOUT', '10s', 100, 60_000),
      maxAttempts: int('WEBHOOK_MAX_ATTEMPTS', 10, 1, 50),
    },
    database: {
      poolSize: int('DB_POOL_SIZE', 10, 1, 1000),
      connectTimeout: millis('DB_CONNECT_TIMEOUT', '2s', 100, 600_000),
      acquireTimeout: millis('DB_ACQUIRE_TIMEOUT', '2s', 10, 600_000),
      queryTimeout: millis('DB_QUERY_TIMEOUT', '5s', 100, 3_600_000),
      pingTimeout: millis('DB_PING_TIMEOUT', '1s', 100, 60_000),
    },
  };
  if (config.connections.headersTimeout > config.connections.requestTimeout) {
    problems.push('HEADERS_TIMEOUT: must not be above REQUEST_TIMEOUT');
  }
  if (!config.registerFields.includes('email') && !config.registerFields.includes('username')) {
    problems.push('REGISTER_FIELDS: must include email or username, or nobody could log in');
  }
  if (config.loginAllowedFields.some((f) => !config.registerFields.includes(f))) {
    problems.push('LOGIN_ALLOWED_FIELDS: every login field must also be in REGISTER_FIELDS');
  }
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze(config);
}

/** WEBHOOK_URLS, WEBHOOK_EVENTS, WEBHOOK_SECRET. A problem never quotes the secret. */
function parseWebhooks(get: (name: string) => string | undefined, problems: string[]): Pick<Config['webhooks'], 'urls' | 'events' | 'secret'> {
  const items = (name: string) => [...new Set((get(name) ?? '').split(',').map((s) => s.trim()).filter(Boolean))];
  const urls = items('WEBHOOK_URLS');
  for (const u of urls) {
    let ok = false;
    try {
      const parsed = new URL(u);
      ok = ['http:', 'https:'].includes(parsed.protocol) && parsed.username === '' && parsed.password === '';
    } catch {}
    if (!ok) problems.push(`WEBHOOK_URLS: expected comma-separated http or https URLs (without user:password@), got "${u}"`);
  }
  const events = get('WEBHOOK_EVENTS') === undefined ? undefined : items('WEBHOOK_EVENTS');
  // A misspelt type would silently never match: only the published types, or admin.<action>.
  const published = SECURITY_EVENTS.filter((e) => e !== 'rate_limited') as readonly string[];
  for (const e of events ?? []) {
    if (!published.includes(e) && !/^admin\.([a-z_]+|\*)$/.test(e)) {
      problems.push(`WEBHOOK_EVENTS: expected event types from ${published.join(', ')} or admin.* (rate_limited is never sent), got "${e}"`);
    }
  }
  const raw = get('WEBHOOK_SECRET');
  const secret = raw !== undefined && parseWebhookSecret(raw) ? raw : undefined;
  if (raw !== undefined && !secret) {
    problems.push('WEBHOOK_SECRET: expected whsec_ followed by the base64 of at least 24 random bytes (whsec_$(openssl rand -base64 32))');
  }
  if (urls.length > 0 && raw === undefined) {
    problems.push('WEBHOOK_SECRET: required with WEBHOOK_URLS, so that receivers can check the signature (whsec_$(openssl rand -base64 32))');
  }
  return { urls, events, secret };
}

export const ADMIN_KEY_MIN_LENGTH = 32;
const ADMIN_KEY_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * "ops:<secret>,ci:<secret>" or bare "<secret>" entries, comma-separated. A secret must be at least
 * 32 characters (`authservice keygen --admin-key` makes one of 43); ids and secrets are unique.
 * The problems never quote a secret.
 */
export function parseAdminKeys(raw: string | undefined, problems: string[]): AdminApiKey[] {
  if (raw === undefined) return [];
  const keys: AdminApiKey[] = [];
  const entries = raw.split(',').map((s) => s.trim());
  entries.forEach((entry, i) => {
    const where = `ADMIN_API_KEYS: entry ${i + 1} of ${entries.length}`;
    const colon = entry.indexOf(':');
    const named = colon > 0 && ADMIN_KEY_ID.test(entry.slice(0, colon));
    const secret = named ? entry.slice(colon + 1) : entry;
    if (entry === '') return void problems.push(`${where} is empty`);
    if (/\s/.test(secret)) return void problems.push(`${where}: a key must not contain whitespace`);
    if (secret.length < ADMIN_KEY_MIN_LENGTH) {
      return void problems.push(`${where}: a key must be at least ${ADMIN_KEY_MIN_LENGTH} characters (generate one with: npx authservice keygen --admin-key)`);
    }
    const digest = createHash('sha256').update(secret).digest('hex');
    const id = named ? entry.slice(0, colon) : `key-${digest.slice(0, 8)}`;
    if (keys.some((k) => k.id === id)) return void problems.push(`${where}: the id "${id}" is used twice`);
    if (keys.some((k) => k.digest === digest)) return void problems.push(`${where}: the same key is listed twice`);
    keys.push({ id, digest });
  });
  return keys;
}

function deepFreeze<T extends object>(o: T): Readonly<T> {
  for (const v of Object.values(o)) if (v && typeof v === 'object') deepFreeze(v);
  return Object.freeze(o);
}
