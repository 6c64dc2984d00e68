// Small helpers around the users table shared by the services: lookups by identifier, the
// public shape of a user, and turning a unique-index violation into the 409 a client expects.
import { eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/index.js';
import { pgErrorOf } from '../db/index.js';
import { type UserRow, users } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { UserOut } from '../schemas.js';

/** Identifiers are stored NFKC-normalised (so full-width ＡＢＣ and ABC are one name) and compared lower-cased. */
export const normalizeIdentifier = (value: string): string => value.normalize('NFKC');

/** The account with that email or username, case-insensitively (served by the lower() unique indexes). */
export async function findUserBy(db: Db | Tx, field: 'email' | 'username', value: string): Promise<UserRow | undefined> {
  const column = field === 'email' ? users.email : users.username;
  const [row] = await db.select().from(users).where(sql`lower(${column}) = lower(${normalizeIdentifier(value)})`).limit(1);
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

const UNIQUE_FIELDS: Record<string, 'email' | 'username'> = { users_email_key: 'email', users_username_key: 'username' };

/** Runs a write and turns a violation of the email/username unique index into 409 `unique`. */
export async function withUniqueCheck<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    const { code, constraint } = pgErrorOf(err);
    const field = constraint ? UNIQUE_FIELDS[constraint] : undefined;
    if (code !== '23505' || !field) throw err;
    const message = `A user with that ${field} already exists.`;
    throw new AppError('unique', { detail: message, errors: { [field]: [{ message, code: 'unique' }] } });
  }
}
