// HTTP for the owner's sessions (services/sessions.ts): list them, end one, end the others or all.
import { Type } from 'typebox';
import { AppError } from '../errors.js';
import { forRequest } from '../http/request-context.js';
import { BODY_ERRORS, bearerSecurity, noContent, problems, success } from '../openapi/responses.js';
import { ref } from '../schemas.js';
import type { Context } from '../services/context.js';
import * as sessions from '../services/sessions.js';
import { bearer, userOf } from './bearer.js';
import type { App } from './types.js';

const SESSION_EXAMPLE = {
  id: '5b1f0d7e-8c1a-4b7e-9d3e-2f6a1c0b9e41',
  createdAt: '2026-12-01T09:00:00.000Z',
  lastUsedAt: '2026-12-01T09:55:00.000Z',
  expiresAt: '2026-12-08T09:00:00.000Z',
  userAgent: 'Mozilla/5.0 (X11; Linux x86_64)',
  ipAddress: '203.0.113.7',
  current: true,
};

const date = (description: string) => Type.String({ format: 'date-time', description });
const Session = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    createdAt: date('The login that started it.'),
    lastUsedAt: date('Its last refresh (or its login, if never refreshed).'),
    expiresAt: date('When it ends by itself, unless used to refresh before (with sliding refresh off, its absolute end).'),
    userAgent: Type.Union([Type.String(), Type.Null()], { description: 'The User-Agent of the login.' }),
    ipAddress: Type.Union([Type.String(), Type.Null()], { description: 'The client address of the login.' }),
    current: Type.Boolean({ description: 'True for the session of the access token of this request.' }),
  },
  {
    $id: 'Session',
    additionalProperties: false,
    description: 'A live session: never any token.',
    example: SESSION_EXAMPLE,
  },
);
const SessionList = Type.Object(
  { sessions: Type.Array(ref(Session)) },
  {
    $id: 'SessionListResponse',
    additionalProperties: false,
    description: "The account's live sessions, most recently used first.",
    example: { sessions: [SESSION_EXAMPLE] },
  },
);
const RevokeSessionsRequest = Type.Object(
  { scope: Type.Union([Type.Literal('others'), Type.Literal('all')], { description: 'others: every session but this one; all: this one too.' }) },
  {
    $id: 'RevokeSessionsRequest',
    additionalProperties: false,
    description: "Which of the account's sessions to end (GoTrue's logout scopes).",
    example: { scope: 'others' },
  },
);
export const sessionSchemas = [Session, SessionList, RevokeSessionsRequest];

/** The session id of the bearer request (its access token's `sid`). */
function sessionOf(request: Parameters<typeof userOf>[0]): string {
  if (!request.auth) throw new AppError('unauthenticated');
  return request.auth.claims.sid;
}

export function sessionRoutes(app: App, ctx: Context): void {
  const tags = ['Session'];
  const onRequest = bearer(ctx);
  const security = bearerSecurity;

  app.get('/sessions', {
    onRequest,
    schema: {
      tags,
      security,
      operationId: 'listSessions',
      summary: "The account's live sessions",
      description:
        'Every session of the account that has not ended, most recently used first, with the user agent and client ' +
        'address of its login; `current: true` marks this request\'s. Never token material.',
      response: { 200: success(ref(SessionList), 'The live sessions.'), ...problems('unauthenticated') },
    },
    handler: (request) => sessions.listSessions(forRequest(ctx, request), userOf(request).id, sessionOf(request)),
  });

  app.delete('/sessions/:id', {
    onRequest,
    schema: {
      tags,
      security,
      operationId: 'endSession',
      summary: 'End one session',
      description:
        'Its access and refresh tokens stop working at once. The current session may be ended too (a logout). ' +
        '`session_not_found` (404) for an unknown, ended or another account\'s session.',
      params: Type.Object({ id: Type.String({ description: 'A session id from GET /sessions.' }) }, { additionalProperties: false }),
      response: { 204: noContent('Ended.'), ...problems('unauthenticated', 'session_not_found') },
    },
    handler: async (request, reply) => {
      await sessions.endSession(forRequest(ctx, request), userOf(request).id, request.params.id, sessionOf(request));
      return reply.code(204).send(null);
    },
  });

  app.post('/sessions/revoke', {
    onRequest,
    schema: {
      tags,
      security,
      operationId: 'revokeSessions',
      summary: 'End the other sessions, or all of them',
      description:
        "GoTrue's logout scopes: `others` ends every session but this one (after a password scare, say); `all` ends " +
        'this one too. Their access and refresh tokens stop working at once.',
      body: ref(RevokeSessionsRequest),
      response: { 204: noContent('Ended.'), ...problems(...BODY_ERRORS, 'unauthenticated') },
    },
    handler: async (request, reply) => {
      await sessions.revokeSessions(forRequest(ctx, request), userOf(request).id, sessionOf(request), request.body.scope);
      return reply.code(204).send(null);
    },
  });
}
