// The guard of the admin API: `Authorization: Bearer <admin key>`, one of ADMIN_API_KEYS.
// Why it is shaped this way:
// - the presented key is hashed (SHA-256) and the digest compared with every configured key's
//   digest with timingSafeEqual, without stopping at a match: the time does not depend on how much
//   of a key was guessed, nor on which key matched, nor on the presented key's length;
// - only digests are held (config.ts), so neither the configuration nor a heap dump holds a key,
//   and the logger redacts the Authorization header (app.ts);
// - it runs in preParsing, after the per-client admin rate limit (onRequest, see index.ts) and
//   before the body is read, so a caller without the key learns nothing about body validity and a
//   key-guesser is throttled.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { AdminApiKey, Config } from '../../config.js';
import { AppError, type ErrorCode } from '../../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The admin key that authenticated this request (its id only), on /admin routes. */
    admin: { keyId: string } | null;
  }
}

/** The OpenAPI security scheme of the admin API (registered in app.ts). */
export const ADMIN_SECURITY_SCHEME = {
  adminApiKey: {
    type: 'http',
    scheme: 'bearer',
    description: 'One of the service credentials of ADMIN_API_KEYS (not a user access token).',
  },
} as const;

/** The `security` of every admin route. */
export const adminSecurity = [{ adminApiKey: [] }];

/** Codes every admin route may answer, besides its own (for problems()). */
export const ADMIN_ERRORS = ['unauthenticated', 'rate_limited'] as const satisfies readonly ErrorCode[];

/**
 * What every admin route documents about its limit: the RateLimit-* headers and 429 only while
 * ADMIN_RATE_LIMIT_MAX is not 0 (the document lists 429 exactly where it can be answered).
 */
export function adminLimits(config: Readonly<Config>): { common: ErrorCode[]; rateLimited: boolean } {
  const rateLimited = config.adminRateLimit.max > 0;
  return { common: ADMIN_ERRORS.filter((c) => rateLimited || c !== 'rate_limited'), rateLimited };
}

/** The id of the key whose digest matches, checking every key in constant time; undefined when none. */
export function matchAdminKey(keys: readonly AdminApiKey[], presented: string): string | undefined {
  const digest = createHash('sha256').update(presented).digest();
  let found: string | undefined;
  for (const key of keys) {
    // No early exit: every key is compared whatever the outcome.
    if (timingSafeEqual(digest, Buffer.from(key.digest, 'hex')) && found === undefined) found = key.id;
  }
  return found;
}

/** A preParsing hook that authenticates the request with an admin key, or answers 401. */
export function adminGuard(keys: readonly AdminApiKey[]) {
  return async function authenticateAdmin(request: FastifyRequest): Promise<void> {
    const match = /^Bearer +([^\s]+) *$/i.exec(request.headers.authorization ?? '');
    const keyId = match ? matchAdminKey(keys, match[1]) : undefined;
    if (!keyId) {
      // The log line names the client, never the presented value.
      request.log.warn({ event: 'admin_auth_failed', clientAddress: request.ip }, 'admin API: missing or wrong admin key');
      throw new AppError('unauthenticated', { detail: 'A valid admin API key is required.' });
    }
    request.admin = { keyId };
  };
}

/** The admin key id of a request that passed the guard. */
export function adminOf(request: FastifyRequest): { keyId: string } {
  if (!request.admin) throw new AppError('unauthenticated');
  return request.admin;
}
