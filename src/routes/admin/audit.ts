// Every authenticated admin call is an audit event `admin.<action>` naming the key that made it
// (its id, never the key): reads too (who looked at which account), refusals too (with their
// problem code). The action is the route's operationId without its `admin` prefix, in snake_case
// (adminDeactivateUser → admin.deactivate_user), so every admin route module gets it without a
// line of its own. Recorded in onSend, before the answer leaves: when the caller has its answer,
// the call is in the log. The account events of the change itself (account_deactivated…,
// attributed to the key) are written by the services in the change's transaction. A call without
// a valid key is not an admin event: the guard answers 401 and logs it.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { forRequest } from '../../http/request-context.js';
import type { Context } from '../../services/context.js';
import { recordEvent } from '../../services/events.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** What the admin call's answer was about, for its audit event. */
    adminAudit?: { userId?: string | null; code?: string; emailId?: number };
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** adminDeactivateUser → deactivate_user. */
export function adminAction(operationId: string | undefined): string {
  const name = (operationId ?? 'unknown').replace(/^admin(?=[A-Z])/, '');
  return name.replace(/[A-Z]/g, (c, i) => (i ? '_' : '') + c.toLowerCase());
}

/** preSerialization: notes the account (and the problem code) the answer is about. */
export async function noteAuditTarget(request: FastifyRequest, _reply: FastifyReply, payload: unknown): Promise<unknown> {
  const body = payload as { user?: { id?: string }; email?: { id?: number; userId?: string | null }; code?: string } | null;
  if (body && typeof body === 'object') {
    request.adminAudit = {
      userId: body.user?.id ?? body.email?.userId,
      code: typeof body.code === 'string' ? body.code : undefined,
      emailId: body.email?.id,
    };
  }
  return payload;
}

/** onSend: records `admin.<action>` for a call that passed the key guard, before the answer is sent. */
export function auditAdminCall(ctx: Context) {
  return async function audit(request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
    if (!request.admin) return payload;
    const params = (request.params ?? {}) as { id?: unknown };
    const paramId = typeof params.id === 'string' && UUID.test(params.id) ? params.id : null;
    const noted = request.adminAudit ?? {};
    const outboxId = typeof params.id === 'number' ? params.id : noted.emailId;
    const detail: Record<string, string | number | boolean | null> = { keyId: request.admin.keyId, status: reply.statusCode };
    if (noted.code) detail.code = noted.code;
    if (outboxId !== undefined) detail.emailId = outboxId;
    try {
      await recordEvent(forRequest(ctx, request), null, {
        type: `admin.${adminAction(request.routeOptions.schema?.operationId as string | undefined)}`,
        userId: noted.userId ?? paramId,
        actor: `admin:${request.admin.keyId}`,
        detail,
      });
    } catch (err) {
      // The change (if any) has committed with its own account event; a call whose audit row
      // could not be written must at least be seen.
      request.log.error({ err, keyId: request.admin.keyId }, 'admin API: could not record the audit event');
    }
    return payload;
  };
}
