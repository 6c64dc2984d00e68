// HTTP for services/sessions.ts: token verify, refresh, revoke; and the JWKS.
import type { Components } from '../openapi/components.js';
import { BODY_ERRORS, limitedProblems, problems, publicSecurity, success } from '../openapi/responses.js';
import { ref, refAs } from '../schemas.js';
import { forRequest } from '../http/request-context.js';
import type { Context } from '../services/context.js';
import * as sessions from '../services/sessions.js';
import { JWKS_MAX_AGE } from '../services/signing-keys.js';
import { documentedLimits, limited } from './limits.js';
import type { App } from './types.js';

export function tokenRoutes(app: App, ctx: Context, api: Components): void {
  const { config } = ctx;
  const tags = ['Token'];
  // Throttled generously (RATE_LIMIT_TOKEN_MAX): they guess tokens, but clients call them often.
  // Documented where RATE_LIMIT_TOKEN_MAX is not 0 (the committed document covers every configuration).
  const tokenLimits = documentedLimits(api.surface.throttles, 'token');
  const security = publicSecurity; // the token in the body is the credential

  app.post('/token/verify', {
      ...limited(config, 'token'),
    schema: {
      tags,
      operationId: 'verifyToken',
      summary: 'Check an access token',
      description:
        'Checks the signature (pinned algorithm), `exp`, `iss`/`aud` when configured, and that the token\'s session ' +
        'and account are still alive: the authoritative answer, revocation included. Not for refresh tokens. (VerifyTokenMixin)',
      security,
      // Any string: an empty or absurd token is an invalid token, as it is on bearer endpoints.
      body: refAs<{ token: string }>(api.VerifyTokenRequest),
      response: {
        200: success(ref(api.VerifyTokenResponse), 'The token is valid and its session alive.', { rateLimited: tokenLimits.rateLimited }),
        ...limitedProblems(tokenLimits, ...BODY_ERRORS, 'invalid_token', 'expired_token'),
      },
    },
    handler: (request) => sessions.verifyToken(forRequest(ctx, request), request.body.token),
  });

  if (ctx.config.jwt.longRunningRefreshToken) {
    app.post('/token/refresh', {
      ...limited(config, 'token'),
      schema: {
        tags,
        operationId: 'refreshToken',
        summary: 'Exchange a refresh token for new tokens',
        description:
          'Rotates the refresh token: the answer holds a new access token and a new refresh token, and the old one is spent. ' +
          'Presenting a spent refresh token again ends the whole session (`invalid_token`), except for a retry within ' +
          'REFRESH_TOKEN_REUSE_INTERVAL, which gets the same new token again. (RefreshTokenMixin)',
        security,
        body: refAs<{ refreshToken: string }>(api.RefreshRequest),
        response: {
          200: success(ref(api.RefreshResponse), 'Refreshed: the next refresh token.', { rateLimited: tokenLimits.rateLimited }),
          ...limitedProblems(tokenLimits, ...BODY_ERRORS, 'invalid_token', 'expired_token'),
        },
      },
      handler: (request) => sessions.refresh(forRequest(ctx, request), request.body.refreshToken),
    });

    app.post('/token/revoke', {
      ...limited(config, 'token'),
      schema: {
        tags,
        operationId: 'revokeToken',
        summary: 'Log out: revoke a refresh token and its session',
        description:
          'Ends the session of the refresh token: its refresh tokens and its access tokens stop working. The token must ' +
          'exist and not be revoked already. (RevokeTokenMixin)',
        security,
        body: refAs<{ refreshToken: string }>(api.RevokeRequest),
        response: { 200: success(ref(api.RevokeResponse), 'Revoked.', { rateLimited: tokenLimits.rateLimited }), ...limitedProblems(tokenLimits, ...BODY_ERRORS, 'invalid_token') },
      },
      handler: (request) => sessions.revoke(forRequest(ctx, request), request.body.refreshToken),
    });
  }

  app.get('/.well-known/jwks.json', {
    schema: {
      tags,
      operationId: 'jwks',
      summary: 'The public keys that sign access tokens (JWK Set)',
      description:
        'For resource servers that verify access tokens themselves: the current key, the next key (published before it ' +
        'signs anything) and retired keys until every token they signed has expired. Pick the key by the token\'s `kid`; ' +
        'refetch on an unknown one. Empty under HS256.',
      security,
      response: {
        200: success(ref(api.JwkSet), 'The JWK Set.', { headers: { 'cache-control': { type: 'string', description: '`public, max-age=300`: refetch on an unknown `kid`.' } } }),
        ...problems(),
      },
    },
    handler: async (_request, reply) => {
      reply.header('cache-control', `public, max-age=${JWKS_MAX_AGE}`);
      return ctx.keys.keys().jwks;
    },
  });
}
