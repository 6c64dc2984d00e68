// What happened to an account, recorded in one place. Every service calls recordEvent at the
// moment a security-relevant thing happens (a failed or successful login, a detected refresh-token
// replay, a password change, …). It writes the audit row (services/audit-log.ts writeAuditEvent)
// in the caller's transaction `tx`, so that an event is recorded if and only if its change commits
// (tx is null where there is no change, e.g. a failed login: the row is then written on its own),
// then one log line with a stable `event` field, and counts the event in the metrics. The webhook
// deliveries of an audited event (outbox/webhooks.ts) are queued in the same transaction, under the
// audit row's id (their `webhook-id`): an event is published if and only if its change commits.
//
// Never a secret in an event: no password, no token, no hash. Identifiers (email, username) are
// not logged either: the user id is enough to find the account, and it is not personal data.
import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '../db/index.js';
import { enqueueWebhooks, webhookTargets } from '../outbox/webhooks.js';
import { writeAuditEvent } from './audit-log.js';
import type { Context } from './context.js';

/**
 * The event types of the audit log (auth_events), exactly issue 12's list: each is written to
 * auth_events, in the caller's transaction, as well as logged and counted.
 */
export const AUDIT_EVENTS = [
  'registered',
  'verified',
  'login_succeeded',
  'login_failed',
  'refresh_reuse_detected',
  'logged_out',
  'session_revoked',
  'password_changed',
  'password_reset',
  'password_set',
  'email_change_requested',
  'email_changed',
  'account_archived',
  'account_unarchived',
  'account_deactivated',
  'account_reactivated',
  'account_deleted',
] as const;
/** Security events that are logged and counted but are not account history (no audit row). */
export const LOG_ONLY_EVENTS = ['rate_limited'] as const;
export const SECURITY_EVENTS = [...AUDIT_EVENTS, ...LOG_ONLY_EVENTS] as const;
/** An operator's call to the admin API or the CLI: `admin.<action>`, e.g. admin.deactivate_user. */
export type AdminEventType = `admin.${string}`;
export type SecurityEventType = (typeof SECURITY_EVENTS)[number] | AdminEventType;

const AUDITED: ReadonlySet<string> = new Set(AUDIT_EVENTS);
/** Whether an event type is written to the audit log. */
export const isAudited = (type: string): boolean => AUDITED.has(type) || /^admin\.[a-z_]+$/.test(type);

export interface SecurityEvent {
  type: SecurityEventType;
  /** The account concerned; null when there is none (a login for an unknown identifier). */
  userId: string | null;
  /** The session concerned (a login's new session, the session a replay ended). */
  sessionId?: string;
  /**
   * Why, for failures: login_failed's `unknown_account`, `wrong_password`, `inactive`,
   * `no_password`, `not_verified`; rate_limited's route. Stable snake_case values.
   */
  reason?: string;
  /** Who acted, when not the account itself: `admin:<key id>` (the admin API, the CLI's `admin:cli`). */
  actor?: string;
  /** Anything else worth knowing, never a secret (e.g. `{ deactivated: true }`). */
  detail?: Record<string, string | number | boolean | null>;
}

/** Failures and theft signals are warnings: they should reach an operator at LOG_LEVEL=warn. */
const WARN: ReadonlySet<SecurityEventType> = new Set(['login_failed', 'refresh_reuse_detected', 'rate_limited']);

/**
 * Records a security event: the audit row and its webhook deliveries (in `tx`), the log line and
 * the metric. `ctx.client` (set per request by the HTTP layer) gives the client address and user
 * agent; scripts and background work have none. Returns the event's id.
 */
export async function recordEvent(ctx: Context, tx: Tx | null, event: SecurityEvent): Promise<string> {
  const id = randomUUID();
  if (isAudited(event.type)) {
    const at = ctx.now();
    const targets = webhookTargets(ctx.config, event.type);
    // What the audit row and the webhooks both carry: never a secret, token, password or hash,
    // and no email or username.
    const fields = {
      userId: event.userId,
      sessionId: event.sessionId ?? null,
      actor: event.actor ?? null,
      reason: event.reason ?? null,
      detail: event.detail ?? null,
    };
    // The audit row first, in the caller's transaction: if it cannot be written the change rolls
    // back with it. Without a change (tx null: a failed login, an admin read) it stands alone, in
    // a transaction of its own only when webhooks go with it.
    const write = async (db: Db | Tx) => {
      await writeAuditEvent(db, { id, type: event.type, ...fields, client: ctx.client, requestId: ctx.requestId ?? null, at });
      if (targets.length === 0) return;
      const data = { ...fields, clientAddress: ctx.client?.ip ?? null, userAgent: ctx.client?.userAgent ?? null };
      await enqueueWebhooks(db, targets, { id, type: event.type, createdAt: at, data });
    };
    if (tx) await write(tx);
    else if (targets.length > 0) await ctx.db.transaction(write);
    else await write(ctx.db);
    // Wakes the worker once the caller's transaction has committed (after the response).
    if (targets.length > 0) ctx.webhooksQueued();
  }
  announceEvent(ctx, id, event);
  return id;
}

/**
 * The log line and the metric of an event whose audit row is written (or, for a log-only event,
 * not needed): recordEvent's last step, and that of a statement that writes the row itself (the
 * login's, services/login-statement.ts).
 */
export function announceEvent(ctx: Context, id: string, event: SecurityEvent): void {
  const line = {
    event: event.type,
    eventId: id,
    userId: event.userId,
    ...(event.sessionId ? { sessionId: event.sessionId } : {}),
    ...(event.actor ? { actor: event.actor } : {}),
    ...(event.reason ? { reason: event.reason } : {}),
    ...(event.detail ? { detail: event.detail } : {}),
    client: ctx.client ? { ip: ctx.client.ip, userAgent: ctx.client.userAgent } : null,
  };
  const message = `security event: ${event.type}`;
  if (WARN.has(event.type)) ctx.log.warn(line, message);
  else ctx.log.info(line, message);
  ctx.metrics.securityEvent(event);
}
