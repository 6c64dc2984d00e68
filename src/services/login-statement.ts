// A successful login's writes as one prepared statement (a data-modifying CTE): the account's
// update (last login, un-archive, an upgraded hash), its new session and first refresh token, and
// the login_succeeded audit row; and the identifier's failure count is cleared when it is kept in
// the database. One statement is atomic without BEGIN and COMMIT, so the login after its hash
// costs one socket write and one backend wakeup where a transaction cost three, and no query is
// built per call (issue 10, item 6).
//
// Only the common case takes it: no webhook to queue for login_succeeded and no archived account
// (whose login is also an account_unarchived event). Those keep the transaction in accounts.ts.
// Column names are spelled out because this is the statement's text as PostgreSQL prepares it;
// schema.ts is the reference for them.
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { dbOffsetMs, shiftedNow } from '../db/now.js';
import { rawPrepared } from '../db/prepared.js';
import type { UserRow } from '../db/schema.js';
import { hashToken, newToken } from '../lib/tokens.js';
import type { TokenOut } from '../schemas.js';
import { AUDIT_USER_AGENT_MAX } from './audit-log.js';
import type { Context } from './context.js';
import { announceEvent } from './events.js';
import { SESSION_USER_AGENT_MAX, tokensFor } from './sessions.js';

interface Row {
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
  expires_ms: number;
}

// Milliseconds as exact numbers: extract(epoch) is numeric, so floor(… * 1000) loses nothing that
// a Date holds. The update matches only an active account: one deactivated or deleted since the
// lookup gets no session (the inserts read the update's row).
const loginStatement = rawPrepared<Row>(
  'login_write',
  () => sql`
    with account as (
      update users set last_login = ${sql.placeholder('now')}::timestamptz, archived = false,
        password_hash = coalesce(${sql.placeholder('newHash')}::text, password_hash)
      where id = ${sql.placeholder('userId')}::uuid and is_active
      returning id, email, username, username_skeleton, first_name, last_name, password_hash, is_active, verified, archived,
        floor(extract(epoch from date_joined) * 1000)::float8 as date_joined_ms
    ), session as (
      insert into sessions (id, user_id, created_at, expires_at, user_agent, ip_address)
      select ${sql.placeholder('sessionId')}::uuid, id, ${sql.placeholder('now')}::timestamptz,
        ${shiftedNow(sql.placeholder('offsetMs'))} + ${sql.placeholder('lifetimeMs')}::float8 * interval '1 millisecond',
        ${sql.placeholder('sessionUserAgent')}::text, ${sql.placeholder('ip')}::text
      from account
      returning id, floor(extract(epoch from expires_at) * 1000)::float8 as expires_ms
    ), refresh as (
      insert into refresh_tokens (session_id, token_hash, created_at)
      select id, ${sql.placeholder('refreshHash')}::text, ${sql.placeholder('now')}::timestamptz
      from session where ${sql.placeholder('refreshHash')}::text is not null
    ), event as (
      insert into auth_events (id, type, user_id, session_id, client_address, user_agent, request_id, created_at)
      select ${sql.placeholder('eventId')}::uuid, 'login_succeeded', id, ${sql.placeholder('sessionId')}::uuid,
        ${sql.placeholder('ip')}::text, ${sql.placeholder('eventUserAgent')}::text, ${sql.placeholder('requestId')}::text,
        ${sql.placeholder('now')}::timestamptz
      from account
    ), cleared as (
      delete from rate_limits where key = ${sql.placeholder('clearKey')}::text and exists (select from account)
    )
    select account.*, session.expires_ms from account, session`,
);

/**
 * Writes a successful login of `user` (found and checked by the caller) and returns its tokens and
 * the updated account; undefined when the account is no longer active. `clearKey`: a key of the
 * database limits store to delete with it (the identifier's failures), or null.
 */
export async function writeLogin(
  ctx: Context,
  user: UserRow,
  upgradedHash: string | undefined,
  clearKey: string | null,
): Promise<(Omit<TokenOut, 'user' | 'unarchiving'> & { account: UserRow }) | undefined> {
  const now = ctx.now();
  const sessionId = randomUUID();
  const eventId = randomUUID();
  const refreshToken = ctx.config.jwt.longRunningRefreshToken ? newToken() : undefined;
  const { client } = ctx;
  const [row] = await loginStatement(ctx.db).all({
    now: now.toISOString(),
    offsetMs: dbOffsetMs(ctx.now),
    newHash: upgradedHash ?? null,
    userId: user.id,
    sessionId,
    lifetimeMs: ctx.config.jwt.refreshExpiresIn * 1000,
    sessionUserAgent: client?.userAgent?.slice(0, SESSION_USER_AGENT_MAX) ?? null,
    ip: client?.ip ?? null,
    refreshHash: refreshToken ? hashToken(refreshToken) : null,
    eventId,
    eventUserAgent: client?.userAgent?.slice(0, AUDIT_USER_AGENT_MAX) ?? null,
    requestId: ctx.requestId ?? null,
    clearKey,
  });
  if (!row) return undefined;
  announceEvent(ctx, eventId, { type: 'login_succeeded', userId: user.id, sessionId });
  const account: UserRow = {
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
    lastLogin: now,
  };
  const session = { id: sessionId, createdAt: now, expiresAt: new Date(Number(row.expires_ms)) };
  // Issued at the session's start, as startSession's tokens are.
  return { ...tokensFor(ctx, account, session, refreshToken, now), account };
}
