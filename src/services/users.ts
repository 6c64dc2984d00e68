// Small helpers around the users table shared by the services: lookups by identifier, the
// public shape of a user, and turning a unique-index violation into the 409 a client expects.
import { eq, sql } from 'drizzle-orm';
import { PgTransaction } from 'drizzle-orm/pg-core';
import type { Db, Tx } from '../db/index.js';
import { pgErrorOf } from '../db/index.js';
import { type UserRow, users } from '../db/schema.js';
import { AppError } from '../errors.js';
import { usernameSkeleton } from '../lib/skeleton.js';
import type { UserOut } from '../schemas.js';

/** Identifiers are stored NFKC-normalised (so full-width ＡＢＣ and ABC are one name) and compared lower-cased. */
export const normalizeIdentifier = (value: string): string => value.normalize('NFKC');

/** The account whose email or username is `value` (normalised), case-insensitively. */
export const identifierIs = (field: 'email' | 'username', value: unknown) =>
  sql`lower(${field === 'email' ? users.email : users.username}) = lower(${value})`;

const byIdentifier = (db: Db | Tx, field: 'email' | 'username', value: unknown) => db.select().from(users).where(identifierIs(field, value)).limit(1);

// Login runs this on every attempt: built and prepared once per database (no query building, no
// describe round trip per call), as the bearer session lookup is.
const preparedLookups = new WeakMap<Db, Record<'email' | 'username', ReturnType<ReturnType<typeof byIdentifier>['prepare']>>>();
function preparedLookup(db: Db, field: 'email' | 'username') {
  let lookups = preparedLookups.get(db);
  if (!lookups) {
    lookups = {
      email: byIdentifier(db, 'email', sql.placeholder('value')).prepare('user_by_email'),
      username: byIdentifier(db, 'username', sql.placeholder('value')).prepare('user_by_username'),
    };
    preparedLookups.set(db, lookups);
  }
  return lookups[field];
}

/** The account with that email or username, case-insensitively (served by the lower() unique indexes). */
export async function findUserBy(db: Db | Tx, field: 'email' | 'username', value: string): Promise<UserRow | undefined> {
  const normalized = normalizeIdentifier(value);
  const [row] = db instanceof PgTransaction ? await byIdentifier(db, field, normalized) : await preparedLookup(db, field).execute({ value: normalized });
  return row;
}

export async function findUserById(db: Db | Tx, id: string): Promise<UserRow | undefined> {
  const [row] = await db.select().from(users).where(eq(users.id, id)).limit(1);
  return row;
}

export function toUserOut(u: UserRow): UserOut {
  return {
    id: u.id,
    email: u.email,
    username: u.username,
    firstName: u.firstName,
    lastName: u.lastName,
    verified: u.verified,
    archived: u.archived,
    isActive: u.isActive,
    hasPassword: u.passwordHash !== null,
    dateJoined: u.dateJoined.toISOString(),
    lastLogin: u.lastLogin ? u.lastLogin.toISOString() : null,
  };
}

/**
 * The username's columns for a write: every insert or update of users.username goes through this,
 * so that its confusable skeleton (the unique index that refuses look-alikes) is always set with it.
 */
export function withSkeleton<T extends { username?: string | null }>(profile: T): T & { usernameSkeleton?: string | null } {
  if (profile.username === undefined) return profile;
  return { ...profile, usernameSkeleton: profile.username === null ? null : usernameSkeleton(profile.username) };
}

const UNIQUE_FIELDS = new Map<string, 'email' | 'username'>([
  ['users_email_key', 'email'],
  ['users_username_key', 'username'],
  ['users_username_skeleton_key', 'username'], // a look-alike of a taken username is taken
]);

/** Runs a write and turns a violation of the email/username unique index into 409 `unique`. */
export async function withUniqueCheck<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    const { code, constraint } = pgErrorOf(err);
    const field = constraint ? UNIQUE_FIELDS.get(constraint) : undefined;
    if (code !== '23505' || !field) throw err;
    const message = `A user with that ${field} already exists.`;
    throw new AppError('unique', { detail: message, errors: { [field]: [{ message, code: 'unique' }] } });
  }
}

/**
 * Fills the skeleton of accounts made before it existed (once, at start; idempotent, and safe
 * with several instances). Two old accounts that already look alike keep their names: the later
 * one gets no skeleton (it cannot be unique) and is reported, for an operator to rename.
 */
export async function backfillUsernameSkeletons(db: Db): Promise<{ filled: number; conflicts: string[] }> {
  const rows = await db
    .select({ id: users.id, username: users.username })
    .from(users)
    .where(sql`${users.username} is not null and ${users.usernameSkeleton} is null`)
    .orderBy(users.dateJoined);
  let filled = 0;
  const conflicts: string[] = [];
  for (const row of rows) {
    try {
      await db
        .update(users)
        .set({ usernameSkeleton: usernameSkeleton(row.username!) })
        .where(sql`${users.id} = ${row.id} and ${users.usernameSkeleton} is null`);
      filled++;
    } catch (err) {
      if (pgErrorOf(err).code !== '23505') throw err;
      conflicts.push(row.id);
    }
  }
  return { filled, conflicts };
}
