// Which routes are throttled per client address, and how hard:
// - "guess": routes where a client could guess a secret (a password, an email token) or make us
//   send email — RATE_LIMIT_MAX per RATE_LIMIT_WINDOW;
// - "token": /token/refresh, /token/verify, /token/revoke, which guess a token too but which
//   well-behaved clients call often — the generous RATE_LIMIT_TOKEN_MAX per RATE_LIMIT_WINDOW.
// Reading (/me), the JWKS and the health probe are not throttled. The counts live in the shared
// limits store (lib/store), so every instance sees them. The routes that can answer 429 (these,
// and those that check a password under the per-account limit) list `rate_limited`.
import type { Config } from '../config.js';
import type { RouteLimits } from '../openapi/responses.js';
import type { Throttles } from '../openapi/surface.js';

export type LimitKind = 'guess' | 'token';

const maxOf = (config: Readonly<Config>, kind: LimitKind) => (kind === 'token' ? config.rateLimit.tokenMax : config.rateLimit.max);

/** Route options for a throttled route; `{}` when that limit is 0 (off). */
export function limited(
  config: Readonly<Config>,
  kind: LimitKind = 'guess',
): { config?: { rateLimit: { max: number; timeWindow: number } } } {
  const max = maxOf(config, kind);
  if (max === 0) return {};
  return { config: { rateLimit: { max, timeWindow: config.rateLimit.window * 1000 } } };
}

/**
 * What a route documents about its limits: the RateLimit-* headers when its per-client limit is
 * on, and 429 when that limit or, for a route that checks a password (`passwords`), the
 * per-account count can refuse it. An operator who sets a limit to 0 gets a document without it.
 */
export function documentedLimits(throttles: Throttles, kind: LimitKind, passwords = false): RouteLimits {
  const perClient = throttles[kind];
  return { rateLimited: perClient, canRefuse: perClient || (passwords && throttles.passwordAttempts) };
}
