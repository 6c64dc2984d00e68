// What happened to an account, recorded in one place. Every service calls recordEvent at the
// moment a security-relevant thing happens (a failed or successful login, a detected refresh-token
// replay, a password change, …). Today it writes one log line with a stable `event` field and
// counts the event in the metrics; the audit row and the webhook deliveries hang off this same
// function, written in the caller's transaction `tx` so that an event is recorded if and only if
// its change commits (tx is null where there is no change, e.g. a failed login).
//
// Never a secret in an event: no password, no token, no hash. Identifiers (email, username) are
// not logged either: the user id is enough to find the account, and it is not personal data.
import type { Tx } from '../db/index.js';
import type { Context } from './context.js';

export const SECURITY_EVENTS = [
  'login_failed',
  'login_succeeded',
  'refresh_reuse_detected',
  'password_changed',
  'password_reset',
  'password_set',
  'email_changed',
  'account_archived',
  'account_deleted',
  'rate_limited',
] as const;
export type SecurityEventType = (typeof SECURITY_EVENTS)[number];

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
  /** Anything else worth knowing, never a secret (e.g. `{ deactivated: true }`). */
  detail?: Record<string, string | number | boolean | null>;
}

/** Failures and theft signals are warnings: they should reach an operator at LOG_LEVEL=warn. */
const WARN: ReadonlySet<SecurityEventType> = new Set(['login_failed', 'refresh_reuse_detected', 'rate_limited']);

/**
 * Records a security event: the log line now, the audit row and webhooks (in `tx`) later.
 * `ctx.client` (set per request by the HTTP layer) gives the client address and user agent;
 * scripts and background work have none.
 */
export async function recordEvent(ctx: Context, tx: Tx | null, event: SecurityEvent): Promise<void> {
  void tx; // the audit row goes here, in the caller's transaction
  const line = {
    event: event.type,
    userId: event.userId,
    ...(event.sessionId ? { sessionId: event.sessionId } : {}),
    ...(event.reason ? { reason: event.reason } : {}),
    ...(event.detail ? { detail: event.detail } : {}),
    client: ctx.client ? { ip: ctx.client.ip, userAgent: ctx.client.userAgent } : null,
  };
  const message = `security event: ${event.type}`;
  if (WARN.has(event.type)) ctx.log.warn(line, message);
  else ctx.log.info(line, message);
  ctx.metrics.securityEvent(event);
}
