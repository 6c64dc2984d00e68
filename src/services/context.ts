// What every service function is given: explicit dependencies, no globals, nothing of Fastify,
// so scripts and tests can call services directly.
import type { Config } from '../config.js';
import type { Db } from '../db/index.js';
import type { Clock } from '../lib/clock.js';
import type { AccessTokens } from '../lib/jwt.js';
import type { KeyRing } from '../lib/keys.js';
import type { LimitStore } from '../lib/store/index.js';
import type { PasswordHasher } from '../lib/password.js';

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
  /** Tells the outbox worker that a committed transaction enqueued email. */
  mailQueued(): void;
  /** Runs work after the response, tracked so that shutdown waits for it (see lib/tasks.ts). */
  background(name: string, work: () => Promise<void>): void;
}
