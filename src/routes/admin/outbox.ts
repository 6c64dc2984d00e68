// HTTP for mail/outbox-admin.ts and outbox/webhooks-admin.ts: /admin/outbox, /admin/webhooks.
import { forRequest } from '../../http/request-context.js';
import { Type } from 'typebox';
import * as outbox from '../../mail/outbox-admin.js';
import * as webhooks from '../../outbox/webhooks-admin.js';
import { BODY_ERRORS, problems, success } from '../../openapi/responses.js';
import { ref } from '../../schemas.js';
import type { Context } from '../../services/context.js';
import type { App } from '../types.js';
import { adminLimits, adminSecurity } from './auth.js';

const date = Type.String({ format: 'date-time' });
// Spelled out (not mapped from OUTBOX_STATUSES) so that the static type keeps the literals.
const Status = Type.Union([Type.Literal('pending'), Type.Literal('sent'), Type.Literal('failed'), Type.Literal('cancelled')], {
  description: 'cancelled: by an operator, before it was sent.',
});
const EXAMPLE_EMAIL = {
  id: 42,
  userId: '0190a4b2-7c1e-7f3a-9b2d-4e5f6a7b8c9d',
  recipient: 'ada@example.com',
  kind: 'activation',
  subject: 'Activate your account',
  status: 'failed',
  attempts: 8,
  nextAttemptAt: '2026-01-05T10:00:00.000Z',
  lastError: '550 mailbox unavailable',
  createdAt: '2026-01-05T09:00:00.000Z',
  sentAt: null,
};
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
  { $id: 'AdminOutboxEmail', additionalProperties: false, description: 'An email of the outbox, without its bodies (they hold a live token until sent).', example: EXAMPLE_EMAIL },
);
const AdminOutboxEmailResponse = Type.Object(
  { email: ref(OutboxEmail) },
  { $id: 'AdminOutboxEmailResponse', additionalProperties: false, description: 'One email of the outbox.', example: { email: EXAMPLE_EMAIL } },
);
const AdminListOutboxResponse = Type.Object(
  { emails: Type.Array(ref(OutboxEmail)), nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'The cursor of the next page; null on the last.' }) },
  { $id: 'AdminListOutboxResponse', additionalProperties: false, description: 'A page of the outbox, newest first.', example: { emails: [EXAMPLE_EMAIL], nextCursor: null } },
);
const WebhookStatus = Type.Union([Type.Literal('pending'), Type.Literal('sent'), Type.Literal('failed')]);
const EXAMPLE_DELIVERY = {
  id: 7,
  eventId: '0b6e1c3a-4f0e-4d57-9c1f-5b2f7f3d9a41',
  type: 'registered',
  url: 'https://app.example.com/hooks/auth',
  status: 'failed',
  attempts: 10,
  nextAttemptAt: '2026-01-05T10:00:00.000Z',
  lastError: 'HTTP 503 from the endpoint',
  createdAt: '2026-01-05T09:00:00.000Z',
  sentAt: null,
};
const WebhookDelivery = Type.Object(
  {
    id: Type.Integer(),
    eventId: Type.String({ format: 'uuid', description: 'The event id: the webhook-id header of every attempt.' }),
    type: Type.String({ description: 'The event type.' }),
    url: Type.String({ description: 'The endpoint (one of WEBHOOK_URLS).' }),
    status: WebhookStatus,
    attempts: Type.Integer(),
    nextAttemptAt: date,
    lastError: Type.Union([Type.String(), Type.Null()]),
    createdAt: date,
    sentAt: Type.Union([date, Type.Null()]),
  },
  { $id: 'AdminWebhookDelivery', additionalProperties: false, description: 'A webhook delivery: one event to one endpoint.', example: EXAMPLE_DELIVERY },
);
const AdminWebhookDeliveryResponse = Type.Object(
  { delivery: ref(WebhookDelivery) },
  { $id: 'AdminWebhookDeliveryResponse', additionalProperties: false, description: 'One webhook delivery.', example: { delivery: EXAMPLE_DELIVERY } },
);
const AdminListWebhooksResponse = Type.Object(
  { deliveries: Type.Array(ref(WebhookDelivery)), nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'The cursor of the next page; null on the last.' }) },
  { $id: 'AdminListWebhooksResponse', additionalProperties: false, description: 'A page of webhook deliveries, newest first.', example: { deliveries: [EXAMPLE_DELIVERY], nextCursor: null } },
);

/** The named shapes of this module (app.ts registers them when the admin API is on). */
export const adminOutboxSchemas = [OutboxEmail, AdminOutboxEmailResponse, AdminListOutboxResponse, WebhookDelivery, AdminWebhookDeliveryResponse, AdminListWebhooksResponse];
const Id = Type.Object({ id: Type.Integer({ minimum: 1, description: 'The outbox id.' }) }, { additionalProperties: false });

export function adminOutboxRoutes(app: App, ctx: Context): void {
  const tags = ['Admin'];
  const security = adminSecurity;
  const { common, rateLimited } = adminLimits(ctx.config);
  const envelope = success(ref(AdminOutboxEmailResponse), 'The email.', { rateLimited });

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
      response: { 200: success(ref(AdminListOutboxResponse), 'A page of email.', { rateLimited }), ...problems('validation_failed', ...common) },
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
      response: { 200: envelope, ...problems(...BODY_ERRORS, 'email_not_found', 'email_not_failed', ...common) },
    },
    handler: (request) => outbox.requeueEmail(forRequest(ctx, request), request.params.id),
  });

  app.post('/outbox/:id/cancel', {
    schema: {
      tags,
      security,
      operationId: 'adminCancelEmail',
      summary: 'Cancel a pending email',
      description: 'It is not sent and its bodies are erased. `email_not_pending` (409) for any other status.',
      params: Id,
      response: { 200: envelope, ...problems(...BODY_ERRORS, 'email_not_found', 'email_not_pending', ...common) },
    },
    handler: (request) => outbox.cancelEmail(forRequest(ctx, request), request.params.id),
  });

  app.get('/webhooks', {
    schema: {
      tags,
      security,
      operationId: 'adminListWebhooks',
      summary: 'List pending, sent and failed webhook deliveries',
      description: 'Newest first, a page at a time (`nextCursor` → `cursor`). Filter by `status`.',
      querystring: Type.Object(
        {
          status: Type.Optional(WebhookStatus),
          cursor: Type.Optional(Type.String({ maxLength: 512 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, description: 'Page size (default 50).' })),
        },
        { additionalProperties: false },
      ),
      response: { 200: success(ref(AdminListWebhooksResponse), 'A page of webhook deliveries.', { rateLimited }), ...problems('validation_failed', ...common) },
    },
    handler: (request) => webhooks.listWebhookDeliveries(forRequest(ctx, request), request.query),
  });

  app.post('/webhooks/:id/requeue', {
    schema: {
      tags,
      security,
      operationId: 'adminRequeueWebhook',
      summary: 'Deliver a failed webhook again',
      description: 'Back to pending, attempts from zero, due now, with the same webhook-id. `webhook_not_failed` (409) for any other status.',
      params: Id,
      response: {
        200: success(ref(AdminWebhookDeliveryResponse), 'The delivery.', { rateLimited }),
        ...problems(...BODY_ERRORS, 'webhook_not_found', 'webhook_not_failed', ...common),
      },
    },
    handler: (request) => webhooks.requeueWebhookDelivery(forRequest(ctx, request), request.params.id),
  });
}
