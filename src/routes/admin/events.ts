// HTTP for services/audit-log.ts: GET /admin/events, the audit log.
import { Type } from 'typebox';
import { problems, success } from '../../openapi/responses.js';
import { ref } from '../../schemas.js';
import { listEvents } from '../../services/audit-log.js';
import type { Context } from '../../services/context.js';
import type { App } from '../types.js';
import { adminLimits, adminSecurity } from './auth.js';

const date = Type.String({ format: 'date-time' });
const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

const EXAMPLE_EVENT = {
  id: '5f0c8a3e-6f1b-4f7e-9d2a-2b7c1e4d9a10',
  type: 'login_failed',
  userId: '0b6f3c2e-8a41-4d1e-9f0a-6c2d7e9b1a34',
  sessionId: null,
  actor: null,
  reason: 'wrong_password',
  detail: null,
  clientAddress: '203.0.113.7',
  userAgent: 'Mozilla/5.0',
  requestId: 'c1f5e0b2-3d4a-4b6c-8e9f-0a1b2c3d4e5f',
  createdAt: '2026-01-05T10:00:00.000Z',
};
const AuditEvent = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'The event id (the `webhook-id` of its webhook deliveries).' }),
    type: Type.String({ description: 'registered, verified, login_succeeded, login_failed, …, admin.<action>.', examples: ['login_failed'] }),
    userId: nullable(Type.String({ format: 'uuid' })),
    sessionId: nullable(Type.String({ format: 'uuid' })),
    actor: nullable(Type.String({ description: 'Who acted when not the account itself: `admin:<key id>`, `cli`.' })),
    reason: nullable(Type.String({ description: 'Why, for failures (login_failed: unknown_account, wrong_password, inactive, …).' })),
    detail: nullable(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]))),
    clientAddress: nullable(Type.String({ description: 'The client address of the request (TRUST_PROXY decides which).' })),
    userAgent: nullable(Type.String()),
    requestId: nullable(Type.String()),
    createdAt: date,
  },
  {
    $id: 'AdminAuditEvent',
    additionalProperties: false,
    description: 'One entry of the audit log. Never a secret.',
    example: EXAMPLE_EVENT,
  },
);
const AdminListEventsResponse = Type.Object(
  {
    events: Type.Array(ref(AuditEvent)),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'The cursor of the next page; null on the last page.' }),
  },
  {
    $id: 'AdminListEventsResponse',
    additionalProperties: false,
    description: 'A page of the audit log, newest first.',
    example: { events: [EXAMPLE_EVENT], nextCursor: null },
  },
);
/** The named shapes of this module (registered with the admin API). */
export const adminEventSchemas = [AuditEvent, AdminListEventsResponse];

export function adminEventRoutes(app: App, ctx: Context): void {
  const { common, rateLimited } = adminLimits(ctx.config);
  app.get('/events', {
    schema: {
      tags: ['Admin'],
      security: adminSecurity,
      operationId: 'adminListEvents',
      summary: 'Read the audit log',
      description:
        'Newest first, a page at a time: pass the answer\'s `nextCursor` as `cursor` for the next page (null on the last). ' +
        '`since` is inclusive, `until` exclusive. Entries are kept for AUDIT_RETENTION (90 days by default).',
      querystring: Type.Object(
        {
          userId: Type.Optional(Type.String({ format: 'uuid', description: 'Events of this account.' })),
          type: Type.Optional(Type.String({ pattern: '^[a-z_]+(\\.[a-z_]+)?$', maxLength: 64, description: 'Events of this type.' })),
          since: Type.Optional(Type.String({ format: 'date-time', description: 'At or after this instant.' })),
          until: Type.Optional(Type.String({ format: 'date-time', description: 'Before this instant.' })),
          cursor: Type.Optional(Type.String({ maxLength: 512, description: 'The `nextCursor` of the previous page.' })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, description: 'Page size (default 50).' })),
        },
        { additionalProperties: false },
      ),
      response: {
        200: success(ref(AdminListEventsResponse), 'A page of the audit log.', { rateLimited }),
        ...problems('validation_failed', ...common),
      },
    },
    handler: (request) => listEvents(ctx, request.query),
  });
}
