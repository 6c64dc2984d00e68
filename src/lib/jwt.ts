// Access tokens: short-lived JWTs, signed by fast-jwt with the key ring's current key and one
// pinned algorithm. Verification picks the key by the token's `kid` (current, next or a retired
// key still published: lib/keys.ts), and refuses anything but the pinned algorithm (so `alg: none`
// and HS256-with-the-public-key are refused), an unknown `kid`, a wrong `iss`/`aud`, and a token
// without `exp`. Whether the
// token's session is still alive is the sessions service's business, not this module's.
import { randomUUID } from 'node:crypto';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { type Clock, unixSeconds } from './clock.js';
import type { KeyRing, RingKey } from './keys.js';

/** How far in the future an `iat` may be (clock skew between instances). */
export const IAT_SKEW_SECONDS = 30;

export interface AccessClaims {
  sub: string; // user id
  sid: string; // session id
  jti: string;
  iat: number;
  exp: number;
  origIat: number; // the login that started this session
  username: string | null;
  email: string | null;
  iss?: string;
  aud?: string;
}

export interface IssuedAccessToken {
  token: string;
  expiresIn: number;
  payload: AccessClaims;
}

export interface AccessTokens {
  /** `at`: the issue time (default now); a login passes its session's start, so that origIat = iat. */
  issue(subject: { userId: string; username: string | null; email: string | null }, session: { id: string; createdAt: Date }, at?: Date): IssuedAccessToken;
  /** The claims of a well-signed, unexpired token; AppError invalid_token / expired_token otherwise. */
  verify(token: string): Promise<AccessClaims>;
}

export function createAccessTokens(ring: KeyRing, config: Config['jwt'], now: Clock): AccessTokens {
  return {
    issue(subject, session, at) {
      const iat = unixSeconds(at ?? now());
      const payload: AccessClaims = {
        sub: subject.userId,
        sid: session.id,
        jti: randomUUID(),
        iat,
        exp: iat + config.expiresIn,
        origIat: unixSeconds(session.createdAt),
        username: subject.username,
        email: subject.email,
        ...(config.issuer ? { iss: config.issuer } : {}),
        ...(config.audience ? { aud: config.audience } : {}),
      };
      return { token: ring.keys().current.sign(payload), expiresIn: config.expiresIn, payload };
    },

    async verify(token) {
      const kid = headerKid(token);
      let key = ring.keys().byKid.get(kid);
      if (!key && kid) {
        // A kid we do not know may be a key another instance has just promoted.
        await ring.reloadForUnknownKid();
        key = ring.keys().byKid.get(kid);
      }
      const claims = verifyWith(key, token);
      const { sub, sid, jti, exp, iat } = claims;
      if (typeof sub !== 'string' || typeof sid !== 'string' || typeof jti !== 'string' || typeof exp !== 'number') {
        throw new AppError('invalid_token');
      }
      // A token issued in the future was not issued by this service's clock: a forged or
      // mis-minted token, or one made to outlive its lifetime. Allow only a small skew between
      // instances (RFC 7519 §4.1.6 leaves iat's check to us; 30 s as most verifiers do).
      if (typeof iat !== 'number' || iat > unixSeconds(now()) + IAT_SKEW_SECONDS) throw new AppError('invalid_token');
      // fast-jwt checks iss/aud only when the claim is present: a token from an instance that
      // shares the key but sets no issuer must not pass here.
      if (config.issuer && claims.iss !== config.issuer) throw new AppError('invalid_token');
      if (config.audience && ![claims.aud].flat().includes(config.audience)) throw new AppError('invalid_token');
      if (exp <= unixSeconds(now())) throw new AppError('expired_token');
      return claims as AccessClaims;
    },
  };
}

function verifyWith(key: RingKey | undefined, token: string): Partial<AccessClaims> {
  if (!key) throw new AppError('invalid_token');
  try {
    return key.verify(token) as Partial<AccessClaims>;
  } catch (cause) {
    throw new AppError('invalid_token', { cause });
  }
}

/**
 * The `kid` of a compact JWS header; undefined when there is none (HS256 tokens). A string that
 * is not a JWT yields a kid no key has, so the caller refuses it.
 */
function headerKid(token: string): string | undefined {
  const dot = token.indexOf('.');
  if (dot <= 0) return '';
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8'));
    if (header === null || typeof header !== 'object') return '';
    if (header.kid === undefined) return undefined;
    return typeof header.kid === 'string' ? header.kid : '';
  } catch {
    return '';
  }
}
