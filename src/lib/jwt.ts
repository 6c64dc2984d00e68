// Access tokens: short-lived JWTs, signed by @fastify/jwt (fast-jwt) with one pinned algorithm.
// Verification refuses anything but that algorithm (so `alg: none` and HS256-with-the-public-key
// are refused), an unknown `kid`, a wrong `iss`/`aud`, and a token without `exp`. Whether the
// token's session is still alive is the sessions service's business, not this module's.
import { randomUUID } from 'node:crypto';
import type { JWT } from '@fastify/jwt';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { type Clock, unixSeconds } from './clock.js';
import type { SigningKeys } from './keys.js';

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
  issue(subject: { userId: string; username: string | null; email: string | null }, session: { id: string; createdAt: Date }): IssuedAccessToken;
  /** The claims of a well-signed, unexpired token; AppError invalid_token / expired_token otherwise. */
  verify(token: string): AccessClaims;
}

/** @fastify/jwt options: the algorithm is pinned on both sides. */
export function fastifyJwtOptions(keys: SigningKeys, config: Config['jwt']) {
  return {
    secret: { private: keys.signKey, public: keys.verifyKey },
    sign: { algorithm: keys.algorithm, ...(keys.kid ? { kid: keys.kid } : {}) },
    verify: {
      algorithms: [keys.algorithm],
      // `exp` is enforced below against the service clock (tests move it), and is required there.
      ignoreExpiration: true,
      ...(config.issuer ? { allowedIss: config.issuer } : {}),
      ...(config.audience ? { allowedAud: config.audience } : {}),
    },
  };
}

export function createAccessTokens(jwt: JWT, keys: SigningKeys, config: Config['jwt'], now: Clock): AccessTokens {
  return {
    issue(subject, session) {
      const iat = unixSeconds(now());
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
      return { token: jwt.sign(payload), expiresIn: config.expiresIn, payload };
    },

    verify(token) {
      let claims: Partial<AccessClaims>;
      try {
        const decoded = jwt.decode<{ header: { kid?: string } }>(token, { complete: true });
        if (keys.kid && decoded?.header.kid !== keys.kid) throw new Error('unknown kid');
        claims = jwt.verify<Partial<AccessClaims>>(token);
      } catch (cause) {
        throw new AppError('invalid_token', { cause });
      }
      const { sub, sid, jti, exp } = claims;
      if (typeof sub !== 'string' || typeof sid !== 'string' || typeof jti !== 'string' || typeof exp !== 'number') {
        throw new AppError('invalid_token');
      }
      // fast-jwt checks iss/aud only when the claim is present: a token from an instance that
      // shares the key but sets no issuer must not pass here.
      if (config.issuer && claims.iss !== config.issuer) throw new AppError('invalid_token');
      if (config.audience && ![claims.aud].flat().includes(config.audience)) throw new AppError('invalid_token');
      if (exp <= unixSeconds(now())) throw new AppError('expired_token');
      return claims as AccessClaims;
    },
  };
}
