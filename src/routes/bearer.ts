// The guard of bearer endpoints. It runs in onRequest, before the body is even read, so that an
// unauthenticated caller learns nothing about the body's validity (401 before 400).
// `Authorization: Bearer <jwt>`, or `JWT <jwt>` as django-graphql-jwt sends it.
import type { FastifyRequest } from 'fastify';
import type { UserRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { AccessClaims } from '../lib/jwt.js';
import type { Context } from '../services/context.js';
import { resolveAccessToken } from '../services/sessions.js';

declare module 'fastify' {
  interface FastifyRequest {
    auth: { user: UserRow; claims: AccessClaims } | null;
  }
}

export { bearerSecurity } from '../openapi/responses.js';

export function bearer(ctx: Context) {
  return async function authenticate(request: FastifyRequest): Promise<void> {
    const match = /^(?:Bearer|JWT) +([^\s]+) *$/i.exec(request.headers.authorization ?? '');
    if (!match) throw new AppError('unauthenticated');
    try {
      request.auth = await resolveAccessToken(ctx, match[1]);
    } catch (err) {
      if (err instanceof AppError) throw new AppError('unauthenticated', { cause: err });
      throw err;
    }
  };
}

/** The authenticated account of a request that passed the bearer guard. */
export function userOf(request: FastifyRequest): UserRow {
  if (!request.auth) throw new AppError('unauthenticated');
  return request.auth.user;
}
