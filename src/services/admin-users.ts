// Account management by an operator (the admin API and the CLI): list, look up, create, change,
// delete, and the state changes (verify, archive, deactivate, their reverses, logout, reset email).
// An operator's act, not the owner's: no password confirmation, no `verified` precondition; but the
// same rules as everywhere else for what follows from a change (archiving or deactivating ends every
// session, a new email kills the links sent to the old one, passwords obey the password rules), by
// reusing the accounts/passwords/sessions functions. Writes the users table, as accounts.ts does.
// The state changes are idempotent (a retried script is harmless): they answer the account as it
// now is, and record the account event only when something changed.
import { and, desc, eq, gte, lt, type SQL, sql } from 'drizzle-orm';
import type { Tx } from '../db/index.js';
import { type UserRow, users } from '../db/schema.js';
import { AppError, type FieldErrors } from '../errors.js';
import { decodeCursor, encodeCursor, isTimestampText, isUuid } from '../lib/cursor.js';
import { checkNewPassword } from '../lib/password-rules.js';
import type { UserOut } from '../schemas.js';
import { validationFailed } from '../validation.js';
import type { Profile } from './accounts.js';
import type { Context } from './context.js';
import { killEmailTokens, sendTokenEmail } from './email-tokens.js';
import { recordEvent, type SecurityEventType } from './events.js';
import { endAllSessions } from './sessions.js';
import { findUserById, normalizeIdentifier, toUserOut, withSkeleton, withUniqueCheck } from './users.js';

/** Who acts: the admin key's id (HTTP) or `cli` (the command line). */
export interface Actor {
  keyId: string;
}

/**
 * The account event of an operator's change, in its transaction, attributed to the key. (The
 * `admin.<action>` event of the call itself is recorded by the caller: routes/admin/audit.ts, the CLI.)
 */
function recordChange(ctx: Context, tx: Tx, actor: Actor, type: SecurityEventType, userId: string, detail: Record<string, string | number | boolean | null> = {}) {
  return recordEvent(ctx, tx, { type, userId, actor: `admin:${actor.keyId}`, detail: { by: 'admin', keyId: actor.keyId, ...detail } });
}

export interface UserFilters {
  email?: string;
  username?: string;
  verified?: boolean;
  archived?: boolean;
  active?: boolean;
  joinedAfter?: string;
  joinedBefore?: string;
  cursor?: string;
  limit?: number;
}

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;

/** `like` pattern for a literal prefix (%, _ and \ in the input match themselves). */
const likePrefix = (prefix: string) => `${prefix.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
// Microsecond text of a timestamp: JavaScript dates stop at milliseconds, and a cursor that rounds
// would skip or repeat rows joined within the same millisecond.
const joinedText = sql<string>`to_char(${users.dateJoined} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** Newest first; `nextCursor` is null on the last page. */
export async function listUsers(ctx: Context, f: UserFilters): Promise<{ users: UserOut[]; nextCursor: string | null }> {
  const limit = f.limit ?? DEFAULT_PAGE;
  const where: SQL[] = [];
  if (f.email !== undefined) where.push(sql`lower(${users.email}) like ${likePrefix(normalizeIdentifier(f.email))} escape '\\'`);
  if (f.username !== undefined) where.push(sql`lower(${users.username}) like ${likePrefix(normalizeIdentifier(f.username))} escape '\\'`);
  if (f.verified !== undefined) where.push(eq(users.verified, f.verified));
  if (f.archived !== undefined) where.push(eq(users.archived, f.archived));
  if (f.active !== undefined) where.push(eq(users.isActive, f.active));
  if (f.joinedAfter !== undefined) where.push(gte(users.dateJoined, new Date(f.joinedAfter)));
  if (f.joinedBefore !== undefined) where.push(lt(users.dateJoined, new Date(f.joinedBefore)));
  if (f.cursor !== undefined) {
    const [joined, id] = decodeCursor(f.cursor, [isTimestampText, isUuid]) as [string, string];
    where.push(sql`(${users.dateJoined}, ${users.id}) < (${joined}::timestamptz, ${id}::uuid)`);
  }
  const rows = await ctx.db
    .select({ user: users, joined: joinedText })
    .from(users)
    .where(and(...where))
    .orderBy(desc(users.dateJoined), desc(users.id))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    users: page.map((r) => toUserOut(r.user)),
    nextCursor: rows.length > limit && last ? encodeCursor([last.joined, last.user.id]) : null,
  };
}

async function mustFind(tx: Tx | Context['db'], id: string): Promise<UserRow> {
  const user = isUuid(id) ? await findUserById(tx, id) : undefined;
  if (!user) throw new AppError('user_not_found');
  return user;
}

export async function getUser(ctx: Context, id: string): Promise<{ user: UserOut }> {
  return { user: toUserOut(await mustFind(ctx.db, id)) };
}

export interface CreateUserInput extends Profile {
  password?: string;
  verified?: boolean;
  sendActivationEmail?: boolean;
  sendPasswordSetEmail?: boolean;
}

/**
 * An account made by an operator: with a password (checked by the password rules) or without one,
 * verified or not, and on request the activation email (unverified accounts) or the password-set
 * email (passwordless ones). REGISTER_FIELDS does not apply: an operator may set any profile field.
 */
export async function createUser(ctx: Context, actor: Actor, input: CreateUserInput): Promise<{ user: UserOut }> {
  const profile = normalize(input);
  const errors: FieldErrors = {};
  const add = (field: string, message: string, code = 'invalid') => (errors[field] ??= []).push({ message, code });
  if (!profile.email && !profile.username) add('nonFieldErrors', 'Give an email or a username (or both).', 'required');
  if (input.sendActivationEmail && input.verified) add('sendActivationEmail', 'The account is created verified: it needs no activation email.');
  if (input.sendActivationEmail && !profile.email) add('sendActivationEmail', 'An activation email needs an email address.');
  if (input.sendPasswordSetEmail && input.password !== undefined) add('sendPasswordSetEmail', 'The account is given a password: it needs no password-set email.');
  if (input.sendPasswordSetEmail && !profile.email) add('sendPasswordSetEmail', 'A password-set email needs an email address.');
  if (input.password !== undefined) {
    const passwordErrors = checkNewPassword(input.password, input.password, 'password', ctx.config.password, profile);
    for (const e of passwordErrors?.password ?? []) add('password', e.message, e.code);
  }
  if (Object.keys(errors).length) throw validationFailed(errors);
  const passwordHash = input.password === undefined ? null : await ctx.hasher.hash(input.password);

  const user = await withUniqueCheck(() =>
    ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(users)
        .values({ ...withSkeleton(profile), passwordHash, verified: input.verified ?? false, dateJoined: ctx.now() })
        .returning();
      if (input.sendActivationEmail) await sendTokenEmail(tx, ctx, row, 'activation');
      if (input.sendPasswordSetEmail) await sendTokenEmail(tx, ctx, row, 'password_set');
      await recordChange(ctx, tx, actor, 'registered', row.id, { verified: row.verified, hasPassword: passwordHash !== null });
      return row;
    }),
  );
  if (input.sendActivationEmail || input.sendPasswordSetEmail) ctx.mailQueued();
  return { user: toUserOut(user) };
}

/**
 * A PATCH of profile fields. A new email is set directly (an operator's act: no password, no
 * confirmation link), keeps the account's verified state, and kills the activation, reset and set
 * links sent to the old address.
 */
export async function updateUser(ctx: Context, actor: Actor, id: string, input: Profile): Promise<{ user: UserOut }> {
  const changes = normalize(input);
  const updated = await withUniqueCheck(() =>
    ctx.db.transaction(async (tx) => {
      const user = await mustFind(tx, id);
      if (Object.keys(changes).length === 0) return user;
      const emailChanged = changes.email !== undefined && changes.email.toLowerCase() !== (user.email ?? '').toLowerCase();
      const [row] = await tx.update(users).set(withSkeleton(changes)).where(eq(users.id, user.id)).returning();
      if (emailChanged) {
        await killEmailTokens(tx, ctx, user.id, ['activation', 'password_reset', 'password_set']);
        await recordChange(ctx, tx, actor, 'email_changed', user.id);
      }
      return row;
    }),
  );
  return { user: toUserOut(updated) };
}

/** Removes the account and everything of it (sessions, tokens, unsent email: ON DELETE CASCADE). */
export async function deleteUser(ctx: Context, actor: Actor, id: string): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    const user = await mustFind(tx, id);
    await tx.delete(users).where(eq(users.id, user.id));
    await recordChange(ctx, tx, actor, 'account_deleted', user.id, { deactivated: false });
  });
}

type StateChange = (tx: Tx, user: UserRow) => Promise<Partial<UserRow> | undefined>;

/**
 * Applies a state change in one transaction, under a row lock so two operators cannot interleave;
 * records `event` only when something changed.
 */
async function changeState(ctx: Context, actor: Actor, id: string, event: SecurityEventType, change: StateChange): Promise<{ user: UserOut }> {
  const user = await ctx.db.transaction(async (tx) => {
    const [locked] = isUuid(id) ? await tx.select().from(users).where(eq(users.id, id)).for('update') : [];
    if (!locked) throw new AppError('user_not_found');
    const set = await change(tx, locked);
    if (!set) return locked;
    const [row] = await tx.update(users).set(set).where(eq(users.id, locked.id)).returning();
    await recordChange(ctx, tx, actor, event, locked.id);
    return row;
  });
  return { user: toUserOut(user) };
}

/** Marks the account verified (as its activation link would) and kills its activation links. */
export function verifyUser(ctx: Context, actor: Actor, id: string) {
  return changeState(ctx, actor, id, 'verified', async (tx, user) => {
    if (user.verified) return undefined;
    await killEmailTokens(tx, ctx, user.id, ['activation']);
    return { verified: true };
  });
}

/** Archives the account and ends every session (as /archive-account); its next login un-archives it. */
export function archiveUser(ctx: Context, actor: Actor, id: string) {
  return changeState(ctx, actor, id, 'account_archived', async (tx, user) => {
    if (user.archived) return undefined;
    await endAllSessions(tx, ctx, user.id);
    return { archived: true };
  });
}

export function unarchiveUser(ctx: Context, actor: Actor, id: string) {
  return changeState(ctx, actor, id, 'account_unarchived', async (_tx, user) => (user.archived ? { archived: false } : undefined));
}

/** isActive=false: no login, no token, no email link works; every session ends. */
export function deactivateUser(ctx: Context, actor: Actor, id: string) {
  return changeState(ctx, actor, id, 'account_deactivated', async (tx, user) => {
    if (!user.isActive) return undefined;
    await endAllSessions(tx, ctx, user.id);
    return { isActive: false };
  });
}

/** isActive=true again: the account can log in; sessions ended by the deactivation stay ended. */
export function reactivateUser(ctx: Context, actor: Actor, id: string) {
  return changeState(ctx, actor, id, 'account_reactivated', async (_tx, user) => (user.isActive ? undefined : { isActive: true }));
}

/** Ends every session of the account: its access and refresh tokens stop working at once. */
export async function logoutUser(ctx: Context, actor: Actor, id: string): Promise<{ sessionsEnded: number }> {
  return ctx.db.transaction(async (tx) => {
    const user = await mustFind(tx, id);
    const sessionsEnded = await endAllSessions(tx, ctx, user.id);
    await recordChange(ctx, tx, actor, 'logged_out', user.id, { scope: 'all', sessions: sessionsEnded });
    return { sessionsEnded };
  });
}

/**
 * Emails the account a password reset link now (the public endpoint's answer hides whether an
 * account exists; an operator is told). The link also verifies the account when used.
 */
export async function sendPasswordReset(ctx: Context, _actor: Actor, id: string): Promise<{ detail: string }> {
  await ctx.db.transaction(async (tx) => {
    const user = await mustFind(tx, id);
    if (!user.email) throw new AppError('no_email_address');
    if (!user.isActive) throw new AppError('account_inactive');
    await sendTokenEmail(tx, ctx, user, 'password_reset');
  });
  ctx.mailQueued();
  return { detail: 'A password reset email is on its way.' };
}

function normalize(input: Profile): Profile {
  const out: Profile = {};
  if (input.email !== undefined) out.email = normalizeIdentifier(input.email);
  if (input.username !== undefined) out.username = normalizeIdentifier(input.username);
  if (input.firstName !== undefined) out.firstName = input.firstName;
  if (input.lastName !== undefined) out.lastName = input.lastName;
  return out;
}
