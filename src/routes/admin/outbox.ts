// HTTP for mail/outbox-admin.ts: /admin/outbox.
import { Type } from 'typebox';
import * as outbox from '../../mail/outbox-admin.js';
import { problems } from '../../schemas.js';
import type { Context } from '../../services/context.js';
import type { App } from '../types.js';
import { adminProblems, adminSecurity } from './auth.js';

const date = Type.String({ format: 'date-time' });
// Spelled out (not mapped from OUTBOX_STATUSES) so that the static type keeps the literals.
const Status = Type.Union([Type.Literal('pending'), Type.Literal('sent'), Type.Literal('failed'), Type.Literal('cancelled')], {
  description: 'cancelled: by an operator, before it was sent.',
});
const OutboxEmail = Type.Object(
  {
    id: Type.Integer(),
    userId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
    recipient: Type.String(),
    kind: Type.String({ description: 'activation, password_reset, password_set, password_changed, …' }),
    subject: Type.String(),
    status: Status,
    attempts: Type.Integer(),
    nextAttemptAt: date,
    lastError: Type.Union([Type.String(), Type.Null()]),
    createdAt: date,
    sentAt: Type.Union([date, Type.Null()]),
  },
  { additionalProperties: false, description: 'An email of the outbox, without its bodies (they hold a live token until sent).' },
);
const Id = Type.Object({ id: Type.Integer({ minimum: 1, description: 'The outbox id.' }) }, { additionalProperties: false });

export function adminOutboxRoutes(app: App, ctx: Context): void {
  const tags = ['Admin'];
  const security = adminSecurity;
  const common = adminProblems(ctx.config);
  const envelope = Type.Object({ email: OutboxEmail }, { additionalProperties: false });

  app.get('/outbox', {
    schema: {
      tags,
      security,
      operationId: 'adminListOutbox',
      summary: 'List queued, sent, failed and cancelled email',
      description: 'Newest first, a page at a time (`nextCursor` → `cursor`). Filter by `status`.',
      querystring: Type.Object(
        {
          status: Type.Optional(Status),
          cursor: Type.Optional(Type.String({ maxLength: 512 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, description: 'Page size (default 50).' })),
        },
        { additionalProperties: false },
      ),
      response: {
        200: Type.Object({ emails: Type.Array(OutboxEmail), nextCursor: Type.Union([Type.String(), Type.Null()]) }, { additionalProperties: false }),
        ...problems(400, ...common),
      },
    },
    handler: (request) => outbox.listOutbox(ctx, request.query),
  });

  app.post('/outbox/:id/requeue', {
    schema: {
      tags,
      security,
      operationId: 'adminRequeueEmail',
      summary: 'Send a failed email again',
      description: 'Back to pending, attempts from zero, due now. `email_not_failed` (409) for any other status.',
      params: Id,
      response: { 200: envelope, ...problems(400, 404, 409, ...common) },
    },
    handler: (request) => outbox.requeueEmail(ctx, request.params.id),
  });

  app.post('/outbox/:id/cancel', {
    schema: {
      tags,
      security,
      operationId: 'adminCancelEmail',
      summary: 'Cancel a pending email',
      description: 'It is not sent and its bodies are erased. `email_not_pending` (409) for any other status.',
      params: Id,
      response: { 200: envelope, ...problems(400, 404, 409, ...common) },
    },
    handler: (request) => outbox.cancelEmail(ctx, request.params.id),
  });
}
