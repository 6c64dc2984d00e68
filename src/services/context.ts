// What every service function is given: explicit dependencies, no globals, nothing of Fastify,
// so scripts and tests can call services directly.
import type { Config } from '../config.js';
import type { Db } from '../db/index.js';
import type { Clock } from '../lib/clock.js';
import type { AccessTokens } from '../lib/jwt.js';
import type { KeyRing } from '../lib/keys.js';
import type { LimitStore } from '../lib/store/index.js';
import type { Metrics } from '../lib/metrics.js';
import type { PasswordHasher } from '../lib/password.js';

/** The log methods services use (pino's, as Fastify's logger provides them). */
export interface Logger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Who is calling, for the security-event log and the audit trail: set per request by the HTTP layer. */
export interface ClientInfo {
  ip: string;
  userAgent: string | null;
}

export interface Context {
  config: Readonly<Config>;
  db: Db;
  now: Clock;
  hasher: PasswordHasher;
  accessTokens: AccessTokens;
  /** The signing keys (services/signing-keys.ts) and the refresh-token HMAC secret. */
  keys: KeyRing;
  /** Counters every instance shares: per-account login failures, per-recipient mail caps. */
  limits: LimitStore;
  metrics: Metrics;
  /** The app's logger; within a request, the request's (it carries the request and trace ids). */
  log: Logger;
  /** The client of the current request; null outside a request (scripts, background work). */
  client: ClientInfo | null;
  /** The current request's id, kept with its audit events; absent outside a request. */
  requestId?: string;
  /**
   * Says that the current work queued webhook deliveries, perhaps in a transaction not yet
   * committed: the worker is woken once it has (within a request, after the response).
   */
  webhooksQueued(): void;
  /** Tells the outbox worker that a committed transaction enqueued email. */
  mailQueued(): void;
  /** Runs work after the response, tracked so that shutdown waits for it (see lib/tasks.ts). */
  background(name: string, work: () => Promise<void>): void;
}
