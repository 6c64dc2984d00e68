// Every table, the single source of the data shape; migrations/ is generated from this file.
// Each table is written by one service module (named beside it).
import { sql } from 'drizzle-orm';
import { bigserial, boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

// services/accounts.ts (and passwords.ts for password_hash).
export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // Stored NFKC-normalised; unique case-insensitively through the lower() indexes below, so two
    // concurrent registrations of A@x.io and a@x.io leave exactly one row.
    email: text('email'),
    username: text('username'),
    // lib/skeleton.ts: the UTS #39 confusable skeleton of the username, case-folded. Unique, so
    // that `еve` (Cyrillic е) cannot register beside `eve`, even when both try at once. Null only
    // for accounts without a username (and, after an upgrade, until the start-up backfill).
    usernameSkeleton: text('username_skeleton'),
    firstName: text('first_name').notNull().default(''),
    lastName: text('last_name').notNull().default(''),
    passwordHash: text('password_hash'), // null: a passwordless account
    isActive: boolean('is_active').notNull().default(true),
    verified: boolean('verified').notNull().default(false),
    archived: boolean('archived').notNull().default(false),
    dateJoined: ts('date_joined').notNull().defaultNow(),
    lastLogin: ts('last_login'),
  },
  (t) => [
    uniqueIndex('users_email_key').on(sql`lower(${t.email})`),
    uniqueIndex('users_username_key').on(sql`lower(${t.username})`),
    uniqueIndex('users_username_skeleton_key').on(t.usernameSkeleton),
  ],
);

// services/sessions.ts. A login starts a session; its access tokens carry its id and its refresh
// tokens belong to it. Ending the session (revoked_at) kills all of them at once.
export const sessions = pgTable(
  'sessions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: ts('created_at').notNull(), // the login: origIat
    expiresAt: ts('expires_at').notNull(), // absolute end of the refresh chain
    revokedAt: ts('revoked_at'),
    // What the owner sees in GET /sessions to recognise a login: the client at the login. Its last
    // use is not stored: it is the newest refresh token's created_at (no write on any request).
    userAgent: text('user_agent'),
    ipAddress: text('ip_address'),
  },
  // sessions_ended_idx serves housekeeping's purge (LEAST skips a null revoked_at): without it each
  // purge batch would scan the table.
  (t) => [index('sessions_user_id_idx').on(t.userId), index('sessions_ended_idx').on(sql`least(${t.revokedAt}, ${t.expiresAt})`)],
);

// services/sessions.ts. Only the SHA-256 of a refresh token is stored. A token is rotated once
// (rotated_at); its child points back to it through parent_id.
export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    sessionId: uuid('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    parentId: uuid('parent_id'),
    tokenHash: text('token_hash').notNull(),
    createdAt: ts('created_at').notNull(),
    rotatedAt: ts('rotated_at'),
  },
  // Every foreign key has an index: ON DELETE CASCADE from sessions looks refresh tokens up by
  // session_id (without it, each deleted session scanned the whole table).
  (t) => [
    uniqueIndex('refresh_tokens_hash_key').on(t.tokenHash),
    uniqueIndex('refresh_tokens_parent_key').on(t.parentId),
    index('refresh_tokens_session_id_idx').on(t.sessionId),
  ],
);

export const EMAIL_TOKEN_PURPOSES = ['activation', 'password_reset', 'password_set', 'email_change'] as const;
export type EmailTokenPurpose = (typeof EMAIL_TOKEN_PURPOSES)[number];

// services/email-tokens.ts. One-time tokens sent by email, stored as SHA-256.
export const emailTokens = pgTable(
  'email_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    purpose: text('purpose').$type<EmailTokenPurpose>().notNull(),
    tokenHash: text('token_hash').notNull(),
    // email_change only: the address the account moves to once this token is posted back.
    newEmail: text('new_email'),
    createdAt: ts('created_at').notNull(),
    expiresAt: ts('expires_at').notNull(),
    usedAt: ts('used_at'),
  },
  (t) => [
    uniqueIndex('email_tokens_hash_key').on(t.tokenHash),
    index('email_tokens_user_id_idx').on(t.userId),
    index('email_tokens_spent_idx').on(sql`least(${t.usedAt}, ${t.expiresAt})`), // housekeeping
  ],
);

export const OUTBOX_STATUSES = ['pending', 'sent', 'failed', 'cancelled'] as const;
export type OutboxStatus = (typeof OUTBOX_STATUSES)[number]; // cancelled: by an operator, before it was sent

// mail/outbox.ts. Written in the same transaction as the change that causes the email; sent after
// commit by the worker. user_id cascades so deleting an account drops its unsent mail.
export const outbox = pgTable(
  'email_outbox',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    userId: uuid('user_id').references(() => users.id, { onDelete: 'cascade' }),
    recipient: text('recipient').notNull(),
    kind: text('kind').notNull(),
    subject: text('subject').notNull(),
    // The bodies hold a live one-time token until sent; they are blanked once the mail is out.
    text: text('text').notNull(),
    html: text('html').notNull(),
    status: text('status').$type<OutboxStatus>().notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: ts('next_attempt_at').notNull().defaultNow(),
    lastError: text('last_error'),
    createdAt: ts('created_at').notNull().defaultNow(),
    sentAt: ts('sent_at'),
  },
  (t) => [
    index('email_outbox_due_idx').on(t.nextAttemptAt).where(sql`status = 'pending'`),
    index('email_outbox_user_id_idx').on(t.userId), // the account delete's cascade
    // housekeeping: old sent and old failed email
    index('email_outbox_sent_idx').on(t.sentAt).where(sql`status = 'sent'`),
    index('email_outbox_failed_idx').on(t.createdAt).where(sql`status = 'failed'`),
  ],
);

export type UserRow = typeof users.$inferSelect;

export const SIGNING_KEY_STATUSES = ['next', 'current', 'retired'] as const;
export type SigningKeyStatus = (typeof SIGNING_KEY_STATUSES)[number];

// services/signing-keys.ts. The access-token signing keys when they are not given in
// JWT_PRIVATE_KEY: a `next` key (published, signs nothing yet), the `current` key (signs) and
// `retired` keys (published until every token they signed has expired). The private key is
// encrypted with the key-encryption key (KEY_ENCRYPTION_KEY), which never enters the database.
export const signingKeys = pgTable(
  'signing_keys',
  {
    kid: text('kid').primaryKey(), // RFC 7638 thumbprint of the public key
    algorithm: text('algorithm').notNull(),
    status: text('status').$type<SigningKeyStatus>().notNull(),
    publicKey: text('public_key').notNull(), // SPKI PEM
    privateKey: text('private_key').notNull(), // PKCS#8 PEM, sealed with the KEK (lib/kek.ts)
    createdAt: ts('created_at').notNull(), // published from then on
    activatedAt: ts('activated_at'),
    retiredAt: ts('retired_at'),
  },
  (t) => [
    // At most one current and one next key per algorithm, whatever two instances do at once.
    uniqueIndex('signing_keys_current_key').on(t.algorithm).where(sql`status = 'current'`),
    uniqueIndex('signing_keys_next_key').on(t.algorithm).where(sql`status = 'next'`),
  ],
);

// services/signing-keys.ts. Service-wide secrets generated once and shared by every instance:
// `refresh_token_hmac` derives a refresh token's child (services/sessions.ts). It is independent
// of the signing keys, so rotating them never changes a derivation. Sealed with the KEK.
export const serviceSecrets = pgTable('service_secrets', {
  name: text('name').primaryKey(),
  value: text('value').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
});

// lib/store/database.ts. Fixed-window counters shared by every instance when there is no Redis
// (per-client rate limits, per-account login failures, per-recipient mail caps). Keys never hold
// an email or a username in clear (lib/store/index.ts limitKey hashes them). UNLOGGED (migration
// 0008, which drizzle-kit cannot express): no WAL flush per count; emptied by a database crash.
export const rateLimits = pgTable(
  'rate_limits',
  {
    key: text('key').primaryKey(),
    count: integer('count').notNull(),
    resetAt: ts('reset_at').notNull(),
  },
  (t) => [index('rate_limits_reset_at_idx').on(t.resetAt)],
);

// services/events.ts (its one writer). The audit log: one row per thing that happened to an
// account, inserted in the transaction of the change it records (so it exists if and only if the
// change committed), never updated; deleted by housekeeping after AUDIT_RETENTION. No foreign key
// on user_id: the record of an account outlives the account. Never a secret in it.
export const authEvents = pgTable(
  'auth_events',
  {
    seq: bigserial('seq', { mode: 'number' }).primaryKey(), // insertion order: the cursor
    id: uuid('id').notNull().defaultRandom(), // the public id; the webhook-id of its deliveries
    type: text('type').notNull(),
    userId: uuid('user_id'),
    sessionId: uuid('session_id'),
    actor: text('actor'), // who did it, when not the account itself: admin:<key id>
    reason: text('reason'),
    detail: jsonb('detail').$type<Record<string, string | number | boolean | null>>(),
    clientAddress: text('client_address'),
    userAgent: text('user_agent'),
    requestId: text('request_id'),
    createdAt: ts('created_at').notNull(),
  },
  (t) => [
    uniqueIndex('auth_events_id_key').on(t.id),
    index('auth_events_user_id_idx').on(t.userId, t.seq),
    index('auth_events_type_idx').on(t.type, t.seq),
    index('auth_events_created_at_idx').on(t.createdAt),
  ],
);

export const WEBHOOK_STATUSES = ['pending', 'sent', 'failed', 'cancelled'] as const;
export type WebhookStatus = (typeof WEBHOOK_STATUSES)[number];

// outbox/webhooks.ts. One row per (event, endpoint), written by services/events.ts in the event's
// transaction; delivered after commit by the outbox worker (the webhook channel). The body is the
// exact JSON signed and sent on every attempt. Unique per (event, endpoint): one delivery each,
// however many instances run. No foreign key on event_id: the audit log is its own module.
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    kind: text('kind').notNull().default('event'),
    eventId: uuid('event_id').notNull(), // the event's id: the webhook-id header
    url: text('url').notNull(),
    type: text('type').notNull(),
    body: text('body').notNull(),
    status: text('status').$type<WebhookStatus>().notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: ts('next_attempt_at').notNull().defaultNow(),
    lastError: text('last_error'),
    createdAt: ts('created_at').notNull().defaultNow(),
    sentAt: ts('sent_at'),
  },
  (t) => [
    uniqueIndex('webhook_deliveries_event_url_key').on(t.eventId, t.url),
    index('webhook_deliveries_due_idx').on(t.nextAttemptAt).where(sql`status = 'pending'`),
  ],
);
