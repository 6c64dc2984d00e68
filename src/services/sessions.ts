// Sessions, refresh tokens and the liveness of access tokens.
// Invariants:
// - a login starts one session; its access tokens carry its id (`sid`) and its refresh tokens
//   belong to it. Ending a session (revoked_at) kills every token of it at once, which is why a
//   refresh that races a logout, a password change or an archive can never leave a live token:
//   whatever child it creates belongs to a session that is, or is about to be, ended;
// - refresh tokens rotate on every use and are stored as SHA-256 only. A child is derived from its
//   parent with a server-side HMAC (lib/keys.ts hmacKey), so a client that lost the response and
//   retries within REFRESH_TOKEN_REUSE_INTERVAL gets the same child back without the raw child
//   ever being stored; the unique index on parent_id makes a second child impossible;
// - the common case (a live token, never rotated) is one prepared statement: an UPDATE that
//   marks the token rotated only if it is unrotated and its session and account are alive, and
//   inserts the child in the same statement (a data-modifying CTE). Concurrent refreshes of one
//   token are serialised by that UPDATE's row lock: one rotates, the others find no unrotated row;
// - every other case (unknown, expired, revoked, a retry, a replay) takes the transaction below,
//   which locks the parent row (FOR UPDATE) and decides: a retry within the interval gets the same
//   child, anything else past it is treated as theft and the whole session ends.
import { randomUUID } from 'node:crypto';
import { and, eq, gt, isNull, ne, sql } from 'drizzle-orm';
import type { Tx } from '../db/index.js';
import { rawPrepared } from '../db/prepared.js';
import { dbNow, dbNowPlus, dbOffsetMs, shiftedNow } from '../db/now.js';
import { refreshTokens, sessions, type UserRow, users } from '../db/schema.js';
import { AppError } from '../errors.js';
import { addSeconds, unixSeconds } from '../lib/clock.js';
import type { AccessClaims } from '../lib/jwt.js';
import { deriveToken, hashToken, newToken } from '../lib/tokens.js';
import type { TokenOut } from '../schemas.js';
import type { Context } from './context.js';
import { recordEvent } from './events.js';
import { findSessionUser } from './session-lookup.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Tokens = Omit<TokenOut, 'user' | 'unarchiving'>;

/** The client of a login, shown to the owner in GET /sessions. */
export interface LoginClient {
  ip: string | null;
  userAgent: string | null;
}

/** A session keeps this much of its client's user agent (a client chooses it). */
export const SESSION_USER_AGENT_MAX = 256;

/**
 * Starts a session for the user and returns its first access (and refresh) token. `id` may be
 * made by the caller, so that its own statements naming the session (an audit event) can be
 * issued beside these rather than after them.
 */
export async function startSession(
  tx: Tx,
  ctx: Context,
  user: Pick<UserRow, 'id' | 'username' | 'email'>,
  client: LoginClient | null = ctx.client,
  id: string = randomUUID(),
): Promise<Tokens> {
  const now = ctx.now();
  const refreshToken = ctx.config.jwt.longRunningRefreshToken ? newToken() : undefined;
  // The session's id is made here, so its refresh token needs nothing back from its insert: issued
  // together, postgres.js sends both in one write and runs them in order on the transaction.
  const [[session]] = await Promise.all([
    tx
      .insert(sessions)
      .values({
        id,
        userId: user.id,
        createdAt: now,
        // On the database's clock: another instance compares it (db/now.ts).
        expiresAt: dbNowPlus(ctx.config.jwt.refreshExpiresIn * 1000, ctx.now),
        userAgent: client?.userAgent?.slice(0, SESSION_USER_AGENT_MAX) ?? null,
        ipAddress: client?.ip ?? null,
      })
      .returning(),
    refreshToken ? tx.insert(refreshTokens).values({ sessionId: id, tokenHash: hashToken(refreshToken), createdAt: now }) : undefined,
  ]);
  // Issued at the session's start: read twice, the clock could cross a second between the two.
  return tokensFor(ctx, user, session, refreshToken, session.createdAt);
}

export function tokensFor(
  ctx: Context,
  user: Pick<UserRow, 'id' | 'username' | 'email'>,
  session: Pick<typeof sessions.$inferSelect, 'id' | 'createdAt' | 'expiresAt'>,
  refreshToken: string | undefined,
  at?: Date,
): Tokens {
  const access = ctx.accessTokens.issue({ userId: user.id, username: user.username, email: user.email }, session, at);
  return {
    token: access.token,
    tokenType: 'Bearer',
    expiresIn: access.expiresIn,
    payload: access.payload,
    ...(refreshToken ? { refreshToken, refreshExpiresIn: unixSeconds(session.expiresAt) } : {}),
  };
}

/** Ends every session of the account (password change, reset, set, archive, delete); returns how many were live. */
export async function endAllSessions(tx: Tx, ctx: Context, userId: string): Promise<number> {
  const ended = await tx
    .update(sessions)
    .set({ revokedAt: dbNow(ctx.now) })
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt)))
    .returning({ id: sessions.id });
  return ended.length;
}

type Outcome = { tokens: Tokens } | { error: AppError };

// Column names are spelled out (not interpolated from the schema) because this is the statement's
// text as PostgreSQL prepares it; schema.ts is the reference for them.
const rotateQuery = rawPrepared<{
  session_id: string;
  user_id: string;
  username: string | null;
  email: string | null;
  created_at: number;
  expires_at: number;
}>(
  'refresh_rotate',
  () => sql`
    with parent as (
      update refresh_tokens as t set rotated_at = ${shiftedNow(sql.placeholder('offsetMs'))}
      from sessions as s, users as u
      where t.token_hash = ${sql.placeholder('hash')} and t.rotated_at is null
        and s.id = t.session_id and s.revoked_at is null and s.expires_at > ${shiftedNow(sql.placeholder('offsetMs'))}
        and u.id = s.user_id and u.is_active and not u.archived
      returning t.id, t.session_id, u.id as user_id, u.username, u.email,
        extract(epoch from s.created_at)::float8 as created_at, extract(epoch from s.expires_at)::float8 as expires_at
    ), child as (
      insert into refresh_tokens (session_id, parent_id, token_hash, created_at)
      select session_id, id, ${sql.placeholder('childHash')}, ${sql.placeholder('now')}::timestamptz from parent
    )
    select session_id, user_id, username, email, created_at, expires_at from parent`,
);

/** POST /token/refresh. */
export async function refresh(ctx: Context, refreshToken: string): Promise<TokenOut> {
  const now = ctx.now();
  const child = deriveToken(ctx.keys.hmacKey, refreshToken);
  // rotated_at and the session's expiry on the database's clock (db/now.ts), shifted by an
  // injected test clock's offset.
  const offsetMs = dbOffsetMs(ctx.now);
  const [rotated] = await rotateQuery(ctx.db).all({ now: now.toISOString(), offsetMs, hash: hashToken(refreshToken), childHash: hashToken(child) });
  if (rotated) {
    const user = { id: rotated.user_id, username: rotated.username, email: rotated.email };
    const session = { id: rotated.session_id, createdAt: new Date(rotated.created_at * 1000), expiresAt: new Date(rotated.expires_at * 1000) };
    return tokensFor(ctx, user, session, child, now);
  }
  return refreshSlowly(ctx, refreshToken);
}

/** Everything but a live, unrotated token: refused, a retry within the interval, or a replay. */
async function refreshSlowly(ctx: Context, refreshToken: string): Promise<TokenOut> {
  const outcome = await ctx.db.transaction(async (tx): Promise<Outcome> => {
    // Rotation times are written and compared on the database's clock (db/now.ts): the retry of a
    // refresh may reach another instance, whose own clock may be seconds ahead or behind.
    const [row] = await tx
      .select({
        token: refreshTokens,
        session: sessions,
        user: users,
        msSinceRotation: sql<number | null>`(extract(epoch from (${dbNow(ctx.now)} - ${refreshTokens.rotatedAt})) * 1000)::float8`,
        expired: sql<boolean>`${sessions.expiresAt} <= ${dbNow(ctx.now)}`,
      })
      .from(refreshTokens)
      .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
      .innerJoin(users, eq(users.id, sessions.userId))
      .where(eq(refreshTokens.tokenHash, hashToken(refreshToken)))
      .for('update', { of: refreshTokens })
      .limit(1);
    if (!row || row.session.revokedAt || !row.user.isActive || row.user.archived) return { error: new AppError('invalid_token') };
    if (row.expired) return { error: new AppError('expired_token') };
    const now = ctx.now();

    const child = deriveToken(ctx.keys.hmacKey, refreshToken);
    if (row.token.rotatedAt === null) {
      await tx.update(refreshTokens).set({ rotatedAt: dbNow(ctx.now) }).where(eq(refreshTokens.id, row.token.id));
      await tx.insert(refreshTokens).values({ sessionId: row.session.id, parentId: row.token.id, tokenHash: hashToken(child), createdAt: now });
      return { tokens: tokensFor(ctx, row.user, row.session, child) };
    }
    // Already rotated: a retry within the interval gets the same child, if that child is still the
    // session's newest token; anything else is a replay of a stolen token.
    const withinInterval = Number(row.msSinceRotation) < ctx.config.jwt.refreshReuseInterval * 1000;
    if (withinInterval) {
      const [childRow] = await tx.select().from(refreshTokens).where(eq(refreshTokens.parentId, row.token.id)).limit(1);
      if (childRow && childRow.rotatedAt === null) return { tokens: tokensFor(ctx, row.user, row.session, child) };
    }
    await tx.update(sessions).set({ revokedAt: dbNow(ctx.now) }).where(eq(sessions.id, row.session.id));
    await recordEvent(ctx, tx, { type: 'refresh_reuse_detected', userId: row.user.id, sessionId: row.session.id });
    return { error: new AppError('invalid_token') };
  });
  // The revocation of a reused token's session must commit, so the error is thrown after the transaction.
  if ('error' in outcome) throw outcome.error;
  return outcome.tokens;
}

/** POST /token/revoke: ends the session behind a refresh token. */
export async function revoke(ctx: Context, refreshToken: string): Promise<{ revoked: number }> {
  const now = ctx.now();
  await ctx.db.transaction(async (tx) => {
    const ended = await tx
      .update(sessions)
      .set({ revokedAt: dbNow(ctx.now) })
      .where(
        and(
          isNull(sessions.revokedAt),
          sql`${sessions.id} = (select ${refreshTokens.sessionId} from ${refreshTokens} where ${refreshTokens.tokenHash} = ${hashToken(refreshToken)})`,
        ),
      )
      .returning({ id: sessions.id, userId: sessions.userId });
    if (ended.length === 0) throw new AppError('invalid_token');
    await recordEvent(ctx, tx, { type: 'logged_out', userId: ended[0].userId, sessionId: ended[0].id, detail: { scope: 'session' } });
  });
  return { revoked: unixSeconds(now) };
}

/**
 * The account behind an access token whose session is alive, for bearer endpoints and
 * /token/verify. Throws invalid_token / expired_token; the caller decides how to answer.
 */
export async function resolveAccessToken(ctx: Context, token: string): Promise<{ user: UserRow; claims: AccessClaims }> {
  const claims = await ctx.accessTokens.verify(token);
  if (!UUID.test(claims.sid) || !UUID.test(claims.sub)) throw new AppError('invalid_token');
  const row = await findSessionUser(ctx.db, claims.sid, claims.sub);
  if (!row || row.revokedAt || !row.user.isActive || row.user.archived) throw new AppError('invalid_token');
  return { user: row.user, claims };
}

/** POST /token/verify. */
export async function verifyToken(ctx: Context, token: string): Promise<{ payload: AccessClaims }> {
  const { claims } = await resolveAccessToken(ctx, token);
  return { payload: { ...claims } };
}

// ---------------------------------------------------------------------------------------------
// The owner's view of their sessions (GET /sessions, DELETE /sessions/{id}, POST /sessions/revoke).

export interface SessionOut {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  userAgent: string | null;
  ipAddress: string | null;
  current: boolean;
}

/**
 * A session is live while it is not revoked and can still be used: until its refresh chain ends
 * (expires_at) with refresh tokens, or until its one access token expires without them.
 */
function liveSessions(ctx: Context, userId: string) {
  // gt() on the column, not raw sql: the column maps the Date for the driver (postgres.js, under
  // Drizzle, cannot take a raw Date parameter). Without refresh tokens a session lives as long as
  // its access token, whose expiry is on the clock of the instance that issued it.
  const usableUntil = ctx.config.jwt.longRunningRefreshToken
    ? gt(sessions.expiresAt, dbNow(ctx.now))
    : gt(sessions.createdAt, new Date(ctx.now().getTime() - ctx.config.jwt.expiresIn * 1000));
  return and(eq(sessions.userId, userId), isNull(sessions.revokedAt), usableUntil);
}

/** The account's live sessions, most recently used first; `current` marks the caller's. */
export async function listSessions(ctx: Context, userId: string, currentSessionId: string): Promise<{ sessions: SessionOut[] }> {
  // The last use is the newest refresh of the session (each refresh inserts a token row), or the
  // login itself: nothing is written on bearer requests or refreshes to track it.
  const lastUsed = sql<Date>`coalesce(max(${refreshTokens.createdAt}), ${sessions.createdAt})`.mapWith(sessions.createdAt);
  const rows = await ctx.db
    .select({
      id: sessions.id,
      createdAt: sessions.createdAt,
      expiresAt: sessions.expiresAt,
      userAgent: sessions.userAgent,
      ipAddress: sessions.ipAddress,
      lastUsedAt: lastUsed,
    })
    .from(sessions)
    .leftJoin(refreshTokens, eq(refreshTokens.sessionId, sessions.id))
    .where(liveSessions(ctx, userId))
    .groupBy(sessions.id)
    .orderBy(sql`${lastUsed} desc`, sessions.id);
  return {
    sessions: rows.map((r) => ({
      id: r.id,
      createdAt: r.createdAt.toISOString(),
      lastUsedAt: new Date(r.lastUsedAt).toISOString(),
      expiresAt: ctx.config.jwt.longRunningRefreshToken ? r.expiresAt.toISOString() : addSeconds(r.createdAt, ctx.config.jwt.expiresIn).toISOString(),
      userAgent: r.userAgent,
      ipAddress: r.ipAddress,
      current: r.id === currentSessionId,
    })),
  };
}

/** Ends one live session of the account (the caller's own too): its access and refresh tokens die at once. */
export async function endSession(ctx: Context, userId: string, sessionId: string, currentSessionId: string): Promise<void> {
  if (!UUID.test(sessionId)) throw new AppError('session_not_found');
  await ctx.db.transaction(async (tx) => {
    const ended = await tx
      .update(sessions)
      .set({ revokedAt: dbNow(ctx.now) })
      .where(and(eq(sessions.id, sessionId), liveSessions(ctx, userId)))
      .returning({ id: sessions.id });
    // Another account's session is as unknown as a made-up id.
    if (ended.length === 0) throw new AppError('session_not_found');
    await recordEvent(ctx, tx, { type: 'session_revoked', userId, sessionId, detail: { current: sessionId === currentSessionId } });
  });
}

/** GoTrue's logout scopes: `others` ends every session but the caller's, `all` every one. */
export async function revokeSessions(ctx: Context, userId: string, currentSessionId: string, scope: 'others' | 'all'): Promise<{ revoked: number }> {
  const where = scope === 'all' ? liveSessions(ctx, userId) : and(liveSessions(ctx, userId), ne(sessions.id, currentSessionId));
  return ctx.db.transaction(async (tx) => {
    const ended = await tx.update(sessions).set({ revokedAt: dbNow(ctx.now) }).where(where).returning({ id: sessions.id });
    // all: a logout everywhere; others: the other sessions revoked, the caller's kept.
    const type = scope === 'all' ? 'logged_out' : 'session_revoked';
    await recordEvent(ctx, tx, { type, userId, sessionId: currentSessionId, detail: { scope, sessions: ended.length } });
    return { revoked: ended.length };
  });
}
