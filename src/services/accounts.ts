// Accounts: register, verify, resend activation, login, and the bearer-only account operations
// (archive, delete, update). Writes the users table (passwords.ts writes password_hash).
import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { LoginField, ProfileField } from '../config.js';
import type { Tx } from '../db/index.js';
import { users, type UserRow } from '../db/schema.js';
import { AppError, type FieldErrors, fieldError } from '../errors.js';
import { checkNewPassword } from '../lib/password-rules.js';
import { enqueueEmail } from '../mail/outbox.js';
import { emailChangedEmail, emailChangeRequestedEmail } from '../mail/templates.js';
import { webhookTargets } from '../outbox/webhooks.js';
import type { TokenOut, UserOut } from '../schemas.js';
import { validationFailed } from '../validation.js';
import type { Context } from './context.js';
import { requestEmail, REQUEST_KINDS } from './email-requests.js';
import { consumeEmailToken, killEmailTokens, sendTokenEmail } from './email-tokens.js';
import { recordEvent } from './events.js';
import { countAndFind } from './login-lookup.js';
import { writeLogin } from './login-statement.js';
import { writeRegistration } from './register-statement.js';
import { endAllSessions, startSession } from './sessions.js';
import { clearFailures, confirmKey, countPasswordAttempt, loginKey } from './throttle.js';
import { findUserBy, normalizeIdentifier, toUserOut, withSkeleton, withUniqueCheck } from './users.js';

export type Profile = Partial<Record<ProfileField, string>>;

export interface RegisterInput extends Profile {
  password1?: string;
  password2?: string;
}

/**
 * POST /register. `schemaErrors` are the body's schema errors, if any: the password rules run
 * anyway, so that every field error is reported at once, and before any lookup, so that the
 * answer for a weak password never depends on whether the email is taken.
 */
export async function register(
  ctx: Context,
  input: RegisterInput,
  schemaErrors?: FieldErrors,
): Promise<{ user: UserOut } & Partial<TokenOut>> {
  const { config } = ctx;
  const body: RegisterInput = input !== null && typeof input === 'object' && !Array.isArray(input) ? input : {};
  const profile = normalizeProfile(body);
  const errors = mergeErrors(schemaErrors, registerPasswordErrors(ctx, body, profile));
  if (errors) throw validationFailed(errors);
  const passwordHash = body.password1 === undefined ? null : await ctx.hasher.hash(body.password1);

  // Registration logs in when it can (unverified accounts may, by default): its session is the
  // registered event's, and the account's first login is now.
  const logsIn = passwordHash !== null && config.allowLoginNotVerified;
  if (passwordHash !== null && webhookTargets(config, 'registered').length === 0) {
    // The common case: one statement (services/register-statement.ts).
    const { account, tokens } = await withUniqueCheck(() => writeRegistration(ctx, profile, passwordHash, logsIn));
    ctx.mailQueued();
    return { ...tokens, user: toUserOut(account) };
  }
  // Passwordless (perhaps two emails) or with a webhook to queue: a transaction.
  const result = await withUniqueCheck(() =>
    ctx.db.transaction(async (tx) => {
      const now = ctx.now();
      const [user] = await tx
        .insert(users)
        .values({ ...withSkeleton(profile), passwordHash, dateJoined: now, ...(logsIn ? { lastLogin: now } : {}) })
        .returning();
      // Once the account exists, its email, its session and the event do not depend on one
      // another: issued together, postgres.js pipelines them on the transaction's connection.
      const sessionId = logsIn ? randomUUID() : undefined;
      const [tokens] = await Promise.all([
        logsIn ? startSession(tx, ctx, user, ctx.client, sessionId) : undefined,
        config.sendActivationEmail ? sendTokenEmail(tx, ctx, user, 'activation') : undefined,
        !passwordHash && config.sendPasswordSetEmail ? sendTokenEmail(tx, ctx, user, 'password_set') : undefined,
        recordEvent(ctx, tx, { type: 'registered', userId: user.id, sessionId, detail: { hasPassword: passwordHash !== null } }),
      ]);
      return { ...tokens, user: toUserOut(user) };
    }),
  );
  ctx.mailQueued();
  return result;
}

/** Both passwords, checked by the rules; or, under passwordless registration, neither. */
function registerPasswordErrors(ctx: Context, { password1, password2 }: RegisterInput, profile: Profile): FieldErrors | undefined {
  if (typeof password1 === 'string' && typeof password2 === 'string') {
    return checkNewPassword(password1, password2, 'password2', ctx.config.password, profile);
  }
  if (password1 === undefined && password2 !== undefined) return { password1: [REQUIRED] };
  if (password2 === undefined && password1 !== undefined) return { password2: [REQUIRED] };
  return undefined; // neither: the schema requires them unless passwordless registration is on
}

const REQUIRED = { message: 'This field is required.', code: 'required' };

function mergeErrors(a: FieldErrors | undefined, b: FieldErrors | undefined): FieldErrors | undefined {
  if (!a || !b) return a ?? b;
  // `a` is keyed by client-chosen field names: merge in a Map, not by indexing a plain object.
  const merged = new Map(Object.entries(a));
  for (const [field, list] of Object.entries(b)) {
    const existing = merged.get(field) ?? [];
    merged.set(field, [...existing, ...list.filter((e) => !existing.some((m) => m.code === e.code))]);
  }
  return Object.fromEntries(merged);
}

/**
 * POST /verify-account. Verifying ends every session started before it (account pre-hijacking,
 * Sudhodanan & Paverd 2022): whoever registered the address may have logged in with a password of
 * their choosing; the verifier proved the inbox, not those sessions.
 */
export async function verifyAccount(ctx: Context, token: string): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    const user = await consumeEmailToken(tx, ctx, token, 'activation', (u) => {
      if (u.verified) throw new AppError('already_verified');
    });
    await tx.update(users).set({ verified: true }).where(eq(users.id, user.id));
    await killEmailTokens(tx, ctx, user.id, ['activation']);
    await endAllSessions(tx, ctx, user.id);
    await recordEvent(ctx, tx, { type: 'verified', userId: user.id });
  });
}

/**
 * POST /resend-activation-email. Records the request (the same write for every address) and
 * nothing more: the outbox worker resolves it later (services/email-requests.ts), so that neither
 * the answer nor any timing tells whether the address has an account (GA answers already_verified).
 */
export function resendActivationEmail(ctx: Context, email: string): Promise<void> {
  return requestEmail(ctx, REQUEST_KINDS.activation, email);
}

export type LoginInput = Partial<Record<LoginField, string>> & { password: string };

/** POST /token. */
export async function login(ctx: Context, input: LoginInput): Promise<TokenOut & { unarchiving: boolean }> {
  const fields = ctx.config.loginAllowedFields.filter((f) => input[f] !== undefined);
  if (fields.length !== 1) {
    const names = ctx.config.loginAllowedFields.join(' or ');
    throw fieldError('validation_failed', 'nonFieldErrors', 'invalid', `Give exactly one of ${names}, with the password.`);
  }
  // Per identifier, whatever the client address, known or not (services/throttle.ts): counted
  // before the password is checked, so that a locked identifier answers the same for everyone.
  const throttleKey = loginKey(fields[0], input[fields[0]]!);
  ctx.hasher.admit(); // a 503 for load is not an attempt
  // The count and the lookup together (services/login-lookup.ts): the count still comes before
  // the password is checked, and a refused attempt answers the same whatever the lookup found.
  const user = await countAndFind(ctx, throttleKey, fields[0], input[fields[0]]!);
  // The hash is checked even when there is no account (against a dummy hash): the same answer in
  // the same time for an unknown identifier, a wrong password, a passwordless or inactive account.
  const ok = await ctx.hasher.verify(user?.passwordHash ?? null, input.password);
  if (!user || !ok || !user.isActive) {
    const reason = !user ? 'unknown_account' : !user.passwordHash ? 'no_password' : !ok ? 'wrong_password' : 'inactive';
    await recordEvent(ctx, null, { type: 'login_failed', userId: user?.id ?? null, reason });
    throw new AppError('invalid_credentials');
  }
  // The right password: the failures before it are forgiven (beside the login's writes below).
  const forgive = () => clearFailures(ctx, throttleKey);
  if (!user.verified && !ctx.config.allowLoginNotVerified) {
    await forgive();
    await recordEvent(ctx, null, { type: 'login_failed', userId: user.id, reason: 'not_verified' });
    throw new AppError('not_verified');
  }

  // GA un-archives before checking the password; here only the owner's successful login does.
  const unarchiving = user.archived;
  const upgradedHash = ctx.hasher.needsUpgrade(user.passwordHash!) ? await ctx.hasher.hash(input.password) : undefined;
  if (!unarchiving && webhookTargets(ctx.config, 'login_succeeded').length === 0) {
    // The common case: one statement (services/login-statement.ts), which also clears the failures
    // when they are counted in the database. A Redis store is cleared beside it; if that store
    // refuses (RATE_LIMIT_FAIL_CLOSED, logged by the store), the login written beside it stands:
    // the failures then stay counted, the stricter side.
    const inStatement = ctx.limits.kind === 'database';
    const [, written] = await Promise.all([
      inStatement ? undefined : forgive().catch(() => {}),
      writeLogin(ctx, user, upgradedHash, inStatement ? throttleKey : null),
    ]);
    if (!written) throw new AppError('invalid_credentials'); // deactivated or deleted since the lookup
    const { account, ...tokens } = written;
    return { ...tokens, user: toUserOut(account), unarchiving };
  }
  await forgive();
  return ctx.db.transaction(async (tx) => {
    // The account's update, the session and the audit event do not depend on one another (the
    // session's id is made here; the update changes nothing a token carries): issued together,
    // postgres.js sends them in one write, and the transaction waits for one round trip where it
    // waited for three.
    const sessionId = randomUUID();
    const [[updated], tokens] = await Promise.all([
      tx
        .update(users)
        .set({ lastLogin: ctx.now(), archived: false, ...(upgradedHash ? { passwordHash: upgradedHash } : {}) })
        .where(eq(users.id, user.id))
        .returning(),
      startSession(tx, ctx, user, ctx.client, sessionId),
      recordEvent(ctx, tx, { type: 'login_succeeded', userId: user.id, sessionId, detail: unarchiving ? { unarchived: true } : undefined }),
    ]);
    // A login reopens an archived account (django-graphql-auth's rule): an unarchive too.
    if (unarchiving) await recordEvent(ctx, tx, { type: 'account_unarchived', userId: user.id, sessionId, detail: { by: 'login' } });
    return { ...tokens, user: toUserOut(updated), unarchiving };
  });
}

/** Bearer endpoints that change the account need a verified account (GA's `verification_required`). */
export function requireVerified(user: UserRow): void {
  if (!user.verified) throw new AppError('not_verified');
}

/** The password confirmation of archive, delete and password change. */
export async function confirmPassword(ctx: Context, user: UserRow, password: string, field: string): Promise<void> {
  // A stolen access token must not become a password oracle: the same failure limit as login.
  ctx.hasher.admit(); // a 503 for load is not an attempt
  await countPasswordAttempt(ctx, confirmKey(user.id));
  if (!(await ctx.hasher.verify(user.passwordHash, password))) {
    throw fieldError('invalid_password', field, 'invalid_password', 'Invalid password.');
  }
  await clearFailures(ctx, confirmKey(user.id));
}

/** POST /archive-account: as a password change, every session and every unused email link dies. */
export async function archiveAccount(ctx: Context, user: UserRow, password: string): Promise<void> {
  requireVerified(user);
  await confirmPassword(ctx, user, password, 'password');
  await ctx.db.transaction(async (tx) => {
    await tx.update(users).set({ archived: true }).where(eq(users.id, user.id));
    await endAllSessions(tx, ctx, user.id);
    await killEmailTokens(tx, ctx, user.id);
    await recordEvent(ctx, tx, { type: 'account_archived', userId: user.id });
  });
}

/** POST /delete-account: removes the account, or deactivates it, as ALLOW_DELETE_ACCOUNT says. */
export async function deleteAccount(ctx: Context, user: UserRow, password: string): Promise<void> {
  requireVerified(user);
  await confirmPassword(ctx, user, password, 'password');
  await ctx.db.transaction(async (tx) => {
    if (ctx.config.allowDeleteAccount) {
      // Sessions, refresh tokens, email tokens and unsent email go with it (ON DELETE CASCADE).
      await tx.delete(users).where(eq(users.id, user.id));
    } else {
      await tx.update(users).set({ isActive: false }).where(eq(users.id, user.id));
      await endAllSessions(tx, ctx, user.id);
      await killEmailTokens(tx, ctx, user.id); // dead even if the account is ever re-activated
    }
    await recordEvent(ctx, tx, { type: 'account_deleted', userId: user.id, detail: { deactivated: !ctx.config.allowDeleteAccount } });
  });
}

export type UpdateInput = Profile & { password?: string };

/**
 * POST /update-account: a true PATCH over UPDATE_FIELDS (the schema refuses every other field).
 * A new email needs the current password in the same body and is only pending until the token
 * mailed to the new address comes back (confirmEmailChange): a stolen access token alone can no
 * longer move the account to an attacker's address and take it with a reset. The current address
 * is told, and keeps working, meanwhile. A taken new address answers exactly as a free one, and its
 * owner gets nothing (no enumeration).
 */
export async function updateAccount(ctx: Context, user: UserRow, input: UpdateInput): Promise<{ user: UserOut }> {
  const { password, ...fields } = input;
  const changes = normalizeProfile(fields);
  // The body first (the contract's order for bearer endpoints), then verified, then the password.
  if (changes.email !== undefined && password === undefined) {
    throw fieldError('validation_failed', 'password', 'required', 'The current password is required to change the email address.');
  }
  requireVerified(user);
  if (password !== undefined) await confirmPassword(ctx, user, password, 'password');
  let newEmail: string | undefined;
  if (changes.email !== undefined && changes.email.toLowerCase() !== (user.email ?? '').toLowerCase()) {
    newEmail = changes.email;
    delete changes.email; // pending, not applied
  }
  if (Object.keys(changes).length === 0 && !newEmail) return { user: toUserOut(user) };
  const updated = await withUniqueCheck(() =>
    ctx.db.transaction(async (tx) => {
      const [row] = Object.keys(changes).length
        ? await tx.update(users).set(withSkeleton(changes)).where(eq(users.id, user.id)).returning()
        : [user];
      if (newEmail) await requestEmailChange(tx, ctx, row, newEmail);
      return row;
    }),
  );
  if (newEmail) ctx.mailQueued();
  return { user: toUserOut(updated) };
}

async function requestEmailChange(tx: Tx, ctx: Context, user: UserRow, newEmail: string): Promise<void> {
  const taken = await findUserBy(tx, 'email', newEmail);
  if (!taken) await sendTokenEmail(tx, ctx, user, 'email_change', newEmail);
  // Not the address (personal data), and not whether it is taken (the answer does not say either).
  await recordEvent(ctx, tx, { type: 'email_change_requested', userId: user.id });
  if (user.email) {
    const name = user.firstName || user.username;
    await enqueueEmail(tx, { userId: user.id, address: user.email }, emailChangeRequestedEmail(name, newEmail));
  }
}

/**
 * POST /confirm-email-change: the token mailed to the new address moves the account to it (and
 * keeps it verified: the new inbox is proven). Of several pending changes, the last confirmed
 * wins: confirmations lock the account row, so they apply one after the other; two accounts
 * confirming one address meet the unique index, and the second gets 409 unique. Links mailed to
 * the old address (activation, reset, set) die; the old address is told.
 */
export async function confirmEmailChange(ctx: Context, token: string): Promise<void> {
  await withUniqueCheck(() =>
    ctx.db.transaction(async (tx) => {
      const { id, pendingEmail } = await consumeEmailToken(tx, ctx, token, 'email_change');
      const [current] = await tx.select().from(users).where(eq(users.id, id)).for('update');
      const [row] = await tx.update(users).set({ email: pendingEmail, verified: true }).where(eq(users.id, id)).returning();
      await killEmailTokens(tx, ctx, id, ['activation', 'password_reset', 'password_set']);
      if (current.email && current.email.toLowerCase() !== row.email?.toLowerCase()) {
        const name = row.firstName || row.username;
        await enqueueEmail(tx, { userId: id, address: current.email }, emailChangedEmail(name, row.email!));
      }
      await recordEvent(ctx, tx, { type: 'email_changed', userId: id });
    }),
  );
  ctx.mailQueued();
}

/** The session id of freshly issued tokens (the access token's `sid`). */
export const sessionOf = (tokens: { payload: Record<string, unknown> }): string => String(tokens.payload.sid);

function normalizeProfile(input: Profile): Profile {
  const out: Profile = {};
  // typeof checks: register also sees bodies that failed the schema (to report all errors at once).
  if (typeof input.email === 'string') out.email = normalizeIdentifier(input.email);
  if (typeof input.username === 'string') out.username = normalizeIdentifier(input.username);
  if (typeof input.firstName === 'string') out.firstName = input.firstName;
  if (typeof input.lastName === 'string') out.lastName = input.lastName;
  return out;
}
