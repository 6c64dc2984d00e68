// Which routes are throttled: those where a client could guess a secret (a password, an email
// token) or make us send email. Reading (/me, /token/verify), refreshing and the JWKS are not.
import type { Config } from '../config.js';

/** Route options for a throttled route; `{}` when RATE_LIMIT_MAX is 0 (off). */
export function limited(config: Readonly<Config>): { config?: { rateLimit: { max: number; timeWindow: number } } } {
  if (config.rateLimit.max === 0) return {};
  return { config: { rateLimit: { max: config.rateLimit.max, timeWindow: config.rateLimit.window * 1000 } } };
}
