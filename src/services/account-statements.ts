// What the one-statement writes of a login (login-statement.ts) and a registration
// (register-statement.ts) share: the account's columns as the statement returns them, and the steps
// that start a session for the account (its session, first refresh token and audit row), as CTEs
// that read the account from a CTE named `account`. Column names are spelled out because this is
// the statements' text; schema.ts is the reference for them.
import { randomUUID } from 'node:crypto';
import { type SQL, sql } from 'drizzle-orm';
import { dbOffsetMs, shiftedNow } from '../db/now.js';
import type { UserRow } from '../db/schema.js';
import { hashToken, newToken } from '../lib/tokens.js';
import type { Tokens } from '../schemas.js';
import { AUDIT_USER_AGENT_MAX } from './audit-log.js';
import type { Context } from './context.js';
import { announceEvent, type SecurityEvent } from './events.js';
import { SESSION_USER_AGENT_MAX, tokensFor } from './sessions.js';

/** A statement's value by name: a placeholder in a statement prepared once, or the value itself. */
export type Param = (name: keyof SessionValues) => unknown;

// Milliseconds as exact numbers: extract(epoch) is numeric, so floor(… * 1000) loses nothing that a
// Date holds (and the drivers give timestamps to Drizzle as strings, which a raw row would keep).
export const ACCOUNT_COLUMNS = sql.raw(`id, email, username, username_skeleton, first_name, last_name, password_hash, is_active,
  verified, archived, floor(extract(epoch from date_joined) * 1000)::float8 as date_joined_ms,
  floor(extract(epoch from last_login) * 1000)::float8 as last_login_ms`);

export interface AccountRow {
  id: string;
  email: string | null;
  username: string | null;
  username_skeleton: string | null;
  first_name: string;
  last_name: string;
  password_hash: string | null;
  is_active: boolean;
  verified: boolean;
  archived: boolean;
  date_joined_ms: number;
  last_login_ms: number | null;
}

export function accountOf(row: AccountRow): UserRow {
  return {
    id: row.id,
    email: row.email,
    username: row.username,
    usernameSkeleton: row.username_skeleton,
    firstName: row.first_name,
    lastName: row.last_name,
    passwordHash: row.password_hash,
    isActive: row.is_active,
    verified: row.verified,
    archived: row.archived,
    dateJoined: new Date(Number(row.date_joined_ms)),
    lastLogin: row.last_login_ms === null ? null : new Date(Number(row.last_login_ms)),
  };
}

/**
 * CTEs `session` (none when sessionId is null), `refresh` (none without a refresh token) and
 * `event` (the audit row), for the account in CTE `account`. `session` returns its expiry as
 * expires_ms.
 */
export const sessionSteps = (p: Param): SQL => sql`
    session as (
      insert into sessions (id, user_id, created_at, expires_at, user_agent, ip_address)
      select ${p('sessionId')}::uuid, id, ${p('now')}::timestamptz,
        ${shiftedNow(p('offsetMs'))} + ${p('lifetimeMs')}::float8 * interval '1 millisecond',
        ${p('sessionUserAgent')}::text, ${p('ip')}::text
      from account where ${p('sessionId')}::uuid is not null
      returning id, floor(extract(epoch from expires_at) * 1000)::float8 as expires_ms
    ), refresh as (
      insert into refresh_tokens (session_id, token_hash, created_at)
      select id, ${p('refreshHash')}::text, ${p('now')}::timestamptz
      from session where ${p('refreshHash')}::text is not null
    ), event as (
      insert into auth_events (id, type, user_id, session_id, client_address, user_agent, request_id, created_at, detail)
      select ${p('eventId')}::uuid, ${p('eventType')}::text, id, ${p('sessionId')}::uuid,
        ${p('ip')}::text, ${p('eventUserAgent')}::text, ${p('requestId')}::text,
        ${p('now')}::timestamptz, ${p('detail')}::jsonb
      from account
    )`;

// A type, not an interface: a statement's values are a plain record (RawPrepared.all).
export type SessionValues = {
  now: string;
  offsetMs: number;
  sessionId: string | null;
  lifetimeMs: number;
  sessionUserAgent: string | null;
  ip: string | null;
  refreshHash: string | null;
  eventId: string;
  eventType: string;
  eventUserAgent: string | null;
  requestId: string | null;
  detail: string | null;
};

/**
 * The values of sessionSteps for this request, and what to do once the statement has run: announce
 * the event (log line, metric) and issue the session's tokens.
 */
export function sessionValues(ctx: Context, event: Pick<SecurityEvent, 'type' | 'detail'>, startsSession: boolean) {
  const now = ctx.now();
  const sessionId = startsSession ? randomUUID() : null;
  const refreshToken = startsSession && ctx.config.jwt.longRunningRefreshToken ? newToken() : undefined;
  const { client } = ctx;
  const values: SessionValues = {
    now: now.toISOString(),
    offsetMs: dbOffsetMs(ctx.now),
    sessionId,
    lifetimeMs: ctx.config.jwt.refreshExpiresIn * 1000,
    sessionUserAgent: client?.userAgent?.slice(0, SESSION_USER_AGENT_MAX) ?? null,
    ip: client?.ip ?? null,
    refreshHash: refreshToken ? hashToken(refreshToken) : null,
    eventId: randomUUID(),
    eventType: event.type,
    eventUserAgent: client?.userAgent?.slice(0, AUDIT_USER_AGENT_MAX) ?? null,
    requestId: ctx.requestId ?? null,
    detail: event.detail ? JSON.stringify(event.detail) : null,
  };
  /** After the statement: the event's log line and metric, and the session's tokens (if any). */
  const done = (account: UserRow, expiresMs: number | null): Tokens | undefined => {
    announceEvent(ctx, values.eventId, { ...event, userId: account.id, sessionId: sessionId ?? undefined });
    if (!sessionId || expiresMs === null) return undefined;
    const session = { id: sessionId, createdAt: now, expiresAt: new Date(Number(expiresMs)) };
    // Issued at the session's start, as startSession's tokens are.
    return tokensFor(ctx, account, session, refreshToken, now);
  };
  return { values, done };
}
