// Test harness: a real app on a real database (PGlite by default, PostgreSQL when
// TEST_DATABASE_URL is set: one fresh database per app), a real SMTP server in-process, and a
// clock tests can move. Everything is torn down with the test.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import { type ParsedMail, simpleParser } from 'mailparser';
import { count, eq } from 'drizzle-orm';
import postgres from 'postgres';
import { SMTPServer } from 'smtp-server';
import type { Test } from 'tap';
import { buildApp } from '../src/app.js';
import { type Config, loadConfig } from '../src/config.js';
import { type Database, MIGRATIONS_FOLDER, openDatabase } from '../src/db/index.js';
import { usePglite } from '../src/db/pglite.js';
import { seedFromTemplate } from '../src/db/pglite-template.js';
import { outbox, users } from '../src/db/schema.js';
import { ERRORS, type ErrorCode } from '../src/errors.js';
import { type Clock, skewedClock } from '../src/lib/clock.js';
import type { WorkerOptions as OutboxOptions } from '../src/outbox/worker.js';
import type { App } from '../src/routes/types.js';

/** The subset of tap's Test that the helpers need. */
export interface T {
  teardown(fn: () => unknown): void;
}

// ---------------------------------------------------------------------------------------------
// Database

let template: Promise<PGlite> | undefined;

/** The PostgreSQL URL of each database makeDatabase made. */
const urls = new WeakMap<Database, string>();

/**
 * On PostgreSQL, another pool of connections to `h`'s database, as another instance of the service
 * has (its own statements, locks and batches); undefined on PGlite, which has one owner.
 */
export async function anotherPool(t: T, h: TestApp): Promise<Database | undefined> {
  const url = urls.get(h.db);
  if (!url) return undefined;
  const db = await openDatabase(url, '');
  t.teardown(() => db.close());
  return db;
}

/** A fresh, migrated, empty database of its own. */
export async function makeDatabase(t: T): Promise<Database> {
  const url = process.env.TEST_DATABASE_URL;
  if (url) {
    const name = `t_${randomBytes(6).toString('hex')}`;
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    const u = new URL(url);
    u.pathname = `/${name}`;
    const db = await openDatabase(u.toString(), '');
    urls.set(db, u.toString());
    t.teardown(async () => {
      await db.close();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    });
    return db;
  }
  // A fresh PGlite costs seconds; a clone of a migrated one about one.
  template ??= openTemplate();
  // clone() is typed as the interface, but returns a PGlite.
  const db = await usePglite((await (await template).clone()) as PGlite);
  t.teardown(() => db.close());
  return db;
}

/**
 * This file's migrated, empty PGlite that each test's database is cloned from: a copy of the
 * build's template when `npm run build` made one (db/pglite-template.ts; about 1 s to copy and
 * open), else initdb and the migrations (about 4 s of CPU, in every test file).
 */
async function openTemplate(): Promise<PGlite> {
  const dir = mkdtempSync(join(tmpdir(), 'authservice-test-template-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const pg = seedFromTemplate(join(dir, 'pgdata')) ? await PGlite.create(join(dir, 'pgdata')) : await PGlite.create();
  await migrate(drizzle(pg), { migrationsFolder: MIGRATIONS_FOLDER });
  return pg;
}

// ---------------------------------------------------------------------------------------------
// SMTP

export interface Sink {
  url: string;
  messages: ParsedMail[];
  /** Waits for the n-th (1-based) email to `to` and returns it. */
  waitFor(to: string, n?: number, timeoutMs?: number): Promise<ParsedMail>;
  /** Waits for the n-th (1-based) email to `to` with that subject and returns it. */
  waitForSubject(to: string, subject: string, n?: number, timeoutMs?: number): Promise<ParsedMail>;
  /** Emails to `to` so far (with that subject, when given). */
  to(to: string, subject?: string): ParsedMail[];
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface SinkOptions {
  /** Scripts the answer to RCPT TO: undefined accepts, a number rejects with that SMTP response code (5xx permanent, 4xx temporary). */
  reply?: (address: string) => number | undefined;
  /** Milliseconds the server waits before answering the message's DATA (Infinity: it stalls until stopped). */
  delay?: (address: string) => number;
}

/** A real SMTP server in-process, scriptable with SinkOptions. */
export async function smtpSink(t: T, options: SinkOptions = {}): Promise<Sink & { accepted: number; started: number; connections: number }> {
  const messages: ParsedMail[] = [];
  const stalls = new Set<() => void>();
  let port = 0;
  let server: SMTPServer;
  const create = () =>
    new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onConnect(_session, callback) {
        sink.connections++;
        callback();
      },
      onRcptTo(address, _session, callback) {
        const code = options.reply?.(address.address);
        if (code === undefined) return callback();
        const err = new Error(code >= 500 ? 'no such user' : 'mailbox busy, try again later');
        (err as Error & { responseCode: number }).responseCode = code;
        callback(err);
      },
      onData(stream, session, callback) {
        sink.started++;
        const wait = options.delay?.(session.envelope.rcptTo[0]?.address ?? '') ?? 0;
        simpleParser(stream)
          .then(async (mail) => {
            if (wait > 0) {
              // Answered later (or, stalled, never: the connection is dropped when the server stops).
              await new Promise<void>((resolve) => {
                const done = () => (stalls.delete(done), resolve());
                stalls.add(done);
                if (Number.isFinite(wait)) setTimeout(done, wait);
              });
              if (!server.server.listening) return callback(new Error('server stopped'));
            }
            messages.push(mail);
            sink.accepted++;
            callback();
          })
          .catch(callback);
      },
    });
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = create();
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server.server.address() as { port: number }).port;
        resolve();
      });
    });
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const release of [...stalls]) release();
      // Stalled clients are not waited for (smtp-server would wait 30 s for them).
      for (const connection of (server as unknown as { connections: Set<{ close(): void }> }).connections ?? []) connection.close();
    });
  await listen();
  const sink: Sink & { accepted: number; started: number; connections: number } = {
    connections: 0,
    accepted: 0,
    started: 0,
    url: `smtp://127.0.0.1:${port}`,
    messages,
    to: (to, subject) =>
      messages.filter((m) => recipientOf(m)?.toLowerCase() === to.toLowerCase() && (subject === undefined || m.subject === subject)),
    waitFor: (to, n = 1, timeoutMs = 10_000) => waitForMail(sink, to, undefined, n, timeoutMs),
    waitForSubject: (to, subject, n = 1, timeoutMs = 10_000) => waitForMail(sink, to, subject, n, timeoutMs),
    stop: close,
    start: listen,
  };
  t.teardown(() => close().catch(() => {}));
  return sink;
}

async function waitForMail(sink: Sink, to: string, subject: string | undefined, n: number, timeoutMs: number): Promise<ParsedMail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = sink.to(to, subject);
    if (found.length >= n) return found[n - 1];
    const what = subject === undefined ? '' : ` "${subject}"`;
    if (Date.now() > deadline) throw new Error(`no email #${n}${what} to ${to} within ${timeoutMs} ms (got ${found.length})`);
    await sleep(25);
  }
}

/** The (first) address an email was sent to, as written. */
export const recipientOf = (m: ParsedMail) => (Array.isArray(m.to) ? m.to[0] : m.to)?.value[0]?.address;

/** The one-time token in an email's link (the last path segment of the link). */
export function tokenIn(mail: ParsedMail): string {
  const m = /\/(?:activate|password-reset|password-set|confirm-email)\/([A-Za-z0-9_-]{20,})/.exec(mail.text ?? '');
  if (!m) throw new Error(`no token link in email: ${mail.subject}`);
  return decodeURIComponent(m[1]);
}

// ---------------------------------------------------------------------------------------------
// Clock

export interface TestClock {
  now: () => Date;
  /** Moves time forward by `seconds`. */
  advance(seconds: number): void;
}

export function testClock(): TestClock {
  let offset = 0;
  return { now: () => new Date(Date.now() + offset), advance: (s) => void (offset += s * 1000) };
}

// ---------------------------------------------------------------------------------------------
// App

export interface TestApp {
  app: App;
  db: Database;
  config: Readonly<Config>;
  clock: TestClock;
  mail: Sink;
  /** The app's log lines, parsed (only with `captureLogs`). */
  logs: Record<string, any>[];
}

export interface TestAppOptions {
  /** Environment variables, as an operator would set them. */
  env?: Record<string, string>;
  outbox?: Partial<OutboxOptions>;
  /** Keep the app's log lines (at LOG_LEVEL, info unless `env` says otherwise) in `logs`. */
  captureLogs?: boolean;
}

/** A ready app on a fresh database, sending email to an in-process SMTP server. */
export async function buildTestApp(t: T, options: TestAppOptions = {}): Promise<TestApp> {
  const [db, mail] = await Promise.all([makeDatabase(t), smtpSink(t)]);
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-test-'));
  const clock = testClock();
  // Registered before the app's own teardown, so it runs after the app has closed.
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const logs: Record<string, any>[] = [];
  const config = testConfig({ DATA_DIR: dataDir, SMTP_URL: mail.url, ...(options.captureLogs ? { LOG_LEVEL: 'info' } : {}), ...options.env });
  const app = await startApp(t, config, db, clock.now, options.outbox, options.captureLogs ? logs : undefined);
  return { app, db, config, clock, mail, logs };
}

/**
 * A second instance beside `h`: the same database (through `h`'s pool unless `db` is another one:
 * anotherPool), clock, SMTP server and data folder (so the same development signing key), with
 * other settings. Closed at the end of the test that made it,
 * before the shared database.
 */
export async function buildSiblingApp(t: T, h: TestApp, env: Record<string, string> = {}, outbox?: Partial<OutboxOptions>, db: Database = h.db): Promise<App> {
  return startApp(t, testConfig({ DATA_DIR: h.config.dataDir, SMTP_URL: h.mail.url, ...env }), db, h.clock.now, outbox);
}

/**
 * A sibling whose own clock is `skewSeconds` off `h`'s (ahead when positive) while the database
 * keeps `h`'s time, as an instance with a wrong clock would (lib/clock.ts skewedClock).
 */
export async function buildSkewedSibling(t: T, h: TestApp, skewSeconds: number, outbox?: Partial<OutboxOptions>): Promise<App> {
  const config = testConfig({ DATA_DIR: h.config.dataDir, SMTP_URL: h.mail.url });
  return startApp(t, config, h.db, skewedClock(h.clock.now, skewSeconds * 1000), outbox);
}

export function testConfig(env: Record<string, string>): Readonly<Config> {
  return loadConfig({
    FRONTEND_URL: 'https://app.example.com',
    // Cheap hashes in tests; benchmarks use the production cost.
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_ITERATIONS: '1',
    LOG_LEVEL: 'silent',
    // Throttles off unless a test turns one on (each has its own tests).
    RATE_LIMIT_MAX: '0',
    RATE_LIMIT_TOKEN_MAX: '0',
    LOGIN_FAILURE_LIMIT: '0',
    MAIL_RECIPIENT_LIMIT: '0',
    MAIL_RECIPIENT_DAILY_LIMIT: '0',
    ...env,
  });
}

async function startApp(
  t: T,
  config: Readonly<Config>,
  db: Database,
  now: Clock,
  outbox?: Partial<OutboxOptions>,
  logs?: Record<string, unknown>[],
): Promise<App> {
  const app = await buildApp(config, db, {
    now,
    ...(logs ? { logStream: { write: (line: string) => void logs.push(JSON.parse(line)) } } : { logger: false }),
    outbox: { baseDelay: 100, maxDelay: 1_000, pollInterval: 50, ...outbox },
  });
  guardDocumentedProblems(app);
  await app.ready();
  t.teardown(() => app.close());
  return app;
}

/**
 * Every problem a test sees must be documented for its operation (its status, and its code in
 * that status's `code` enum: src/openapi/responses.ts problems()). One that is not is turned
 * into a 500 naming it, so the test that met it fails and says what to add.
 */
function guardDocumentedProblems(app: App): void {
  app.addHook('onSend', async (request, reply, payload) => {
    const response = request.routeOptions.schema?.response as Record<string, any> | undefined;
    if (reply.statusCode < 400 || !request.routeOptions.url || !response || typeof payload !== 'string') return payload;
    const problem = safeJson(payload);
    const declared = response[reply.statusCode]?.content?.['application/problem+json']?.schema?.allOf?.[1]?.properties?.code?.enum;
    if (Array.isArray(declared) && declared.includes(problem?.code)) return payload;
    const where = `${request.method} ${request.routeOptions.url}`;
    reply.code(500);
    return JSON.stringify({
      ...problem,
      status: 500,
      code: 'internal_error',
      detail: `UNDOCUMENTED: ${where} answered ${reply.statusCode} ${problem?.code}, which its schema does not list: add it to the route's problems().`,
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Requests

let counter = 0;
/** A unique, valid email and username for this test run. */
export function uniqueUser(prefix = 'user') {
  const id = `${prefix}${process.pid}x${++counter}x${randomBytes(3).toString('hex')}`;
  return { email: `${id}@example.com`, username: id };
}

export const PASSWORD = 'correct horse battery staple';

export async function post(app: App, url: string, body: unknown, token?: string) {
  const res = await app.inject({
    method: 'POST',
    url,
    payload: body as object,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: res.statusCode, headers: res.headers, body: res.body ? safeJson(res.body) : undefined, raw: res.body };
}

export async function get(app: App, url: string, token?: string) {
  const res = await app.inject({ method: 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.statusCode, headers: res.headers, body: res.body ? safeJson(res.body) : undefined, raw: res.body };
}

/** An answer as `post` and `get` give it. */
export type Res = Awaited<ReturnType<typeof post>>;

/** The body parsed as JSON, or the text itself when it is not JSON. */
export function safeJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Registers an account (default fields and password) and returns what the API answered. */
export async function registerUser(app: App, fields: Record<string, unknown> = {}) {
  const user = uniqueUser();
  const body = { ...user, password1: PASSWORD, password2: PASSWORD, ...fields };
  const res = await post(app, '/register', body);
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${res.raw}`);
  return { ...res.body, email: body.email as string, username: body.username as string, password: body.password1 as string };
}

/** Registers and verifies an account through its activation email; logs in and returns the tokens. */
export async function verifiedUser(h: TestApp, fields: Record<string, unknown> = {}) {
  const reg = await registerUser(h.app, fields);
  const mail = await h.mail.waitFor(reg.email);
  const verify = await post(h.app, '/verify-account', { token: tokenIn(mail) });
  if (verify.status !== 204) throw new Error(`verify failed: ${verify.status} ${verify.raw}`);
  const login = await post(h.app, '/token', { email: reg.email, password: reg.password });
  if (login.status !== 200) throw new Error(`login failed: ${login.status} ${login.raw}`);
  return { ...reg, login: login.body, token: login.body.token as string, refreshToken: login.body.refreshToken as string };
}

/** The stored row of a user. */
export async function userRow(h: TestApp, id: string) {
  const [row] = await h.db.db.select().from(users).where(eq(users.id, id));
  return row;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the work after responses is done and the outbox has nothing pending: every email
 * queued so far has reached the SMTP server (a row is marked sent only after the server took it).
 */
export async function outboxSettled(h: TestApp, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await h.app.backgroundIdle();
    const [{ n }] = await h.db.db.select({ n: count() }).from(outbox).where(eq(outbox.status, 'pending'));
    if (n === 0) return;
    if (Date.now() > deadline) throw new Error(`${n} email(s) still pending after ${timeoutMs} ms`);
    await sleep(25);
  }
}

// ---------------------------------------------------------------------------------------------
// Problem documents (RFC 9457; the README's "Errors")

/** Any answer with these members (a file's own request helper may add more). */
interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: any;
  raw: string;
}

/** The members a problem document may have. */
export const PROBLEM_MEMBERS = ['type', 'title', 'status', 'detail', 'code', 'errors', 'retryAfter', 'requestId'];

export interface ProblemOptions {
  /**
   * The detail: exactly this string, or matching this RegExp. Without it, the code's own detail
   * (ERRORS[code].detail); for validation_failed, whose detail is a summary, any non-empty string.
   */
  detail?: string | RegExp;
  /** The exact `errors` member (deep-equal). */
  errors?: Record<string, unknown>;
  /** The fields `errors` names: exactly these ([]: no `errors` member). */
  fields?: string[];
  /** Field → a field-level code expected among that field's errors. */
  fieldCodes?: Record<string, string>;
  /** Prefixes every assertion message (for answers checked in a loop). */
  label?: string;
}

/**
 * Asserts the whole problem document of an error answer for `code`: the status and title of the
 * code (src/errors.ts), application/problem+json, a `type` URI ending in /<code>, the status and
 * code members, the detail (see ProblemOptions.detail), a requestId, no other members, and
 * `errors` in the { field: [{ message, code }] } shape. Without `errors` or `fields`, only a
 * validation_failed answer may have an `errors` member. An unauthenticated answer carries a
 * Bearer challenge (WWW-Authenticate).
 */
export function assertProblem(t: Test, res: Answer, code: ErrorCode, opts: ProblemOptions = {}): void {
  const { status, title } = ERRORS[code];
  const say = (message: string) => (opts.label ? `${opts.label}: ${message}` : message);
  t.equal(res.status, status, say(`status ${status} (${code})`), { raw: res.raw?.slice(0, 500) });
  t.match(String(res.headers['content-type']), /^application\/problem\+json/, say('Content-Type: application/problem+json'));
  const b = res.body;
  if (!b || typeof b !== 'object' || Array.isArray(b)) {
    t.fail(say('a problem document (a JSON object)'), { raw: res.raw?.slice(0, 500) });
    return;
  }
  t.same(Object.keys(b).filter((k) => !PROBLEM_MEMBERS.includes(k)), [], say('no members beyond the problem shape'));
  t.ok(
    typeof b.type === 'string' && new RegExp(`^https?://.+/${code}$`).test(b.type) && URL.canParse(b.type),
    say(`type: a URI ending in /${code} (got ${b.type})`),
  );
  t.equal(b.title, title, say('title'));
  t.equal(b.status, status, say('status member'));
  t.equal(b.code, code, say('code member'));
  const detail = opts.detail ?? (code === 'validation_failed' ? undefined : ERRORS[code].detail);
  if (detail instanceof RegExp) t.ok(typeof b.detail === 'string' && detail.test(b.detail), say(`detail matches ${detail}`), { found: b.detail });
  else if (detail !== undefined) t.equal(b.detail, detail, say('detail'));
  else t.ok(typeof b.detail === 'string' && b.detail.length > 0, say('a detail'), { found: b.detail });
  t.ok(typeof b.requestId === 'string' && b.requestId.length > 0, say('a requestId'), { found: b.requestId });
  if ('errors' in b) {
    t.same(fieldErrorsIssues(b.errors), [], say('errors: { field: [{ message, code }] }'));
  }
  if (opts.errors) t.strictSame(b.errors, opts.errors, say('errors'));
  if (opts.fields) {
    const names = Object.keys(b.errors ?? {}).sort();
    t.same(names, [...opts.fields].sort(), say(opts.fields.length ? `errors names ${opts.fields.join(', ')}` : 'no field errors'));
  } else if (!opts.errors && code !== 'validation_failed') {
    t.notOk('errors' in b, say('no field errors'));
  }
  for (const [field, fieldCode] of Object.entries(opts.fieldCodes ?? {})) {
    t.ok(codesOf(res, field).includes(fieldCode), say(`errors.${field} has code ${fieldCode}`));
  }
  if (code === 'unauthenticated') {
    t.match(String(res.headers['www-authenticate'] ?? ''), /^Bearer\b/, say('WWW-Authenticate: Bearer'));
  }
  if (code === 'rate_limited') {
    t.ok(Number.isInteger(b.retryAfter) && b.retryAfter > 0, say(`retryAfter: the wait in seconds (got ${b.retryAfter})`));
    t.equal(String(b.retryAfter), String(res.headers['retry-after']), say('retryAfter is the Retry-After header'));
  } else if ('retryAfter' in b) {
    t.ok(Number.isInteger(b.retryAfter) && b.retryAfter >= 0, say('retryAfter: seconds'));
  }
}

/** What is wrong with an `errors` member: it must map fields to non-empty lists of { message, code }. */
function fieldErrorsIssues(errors: unknown): string[] {
  if (!errors || typeof errors !== 'object' || Array.isArray(errors)) return [`not an object: ${JSON.stringify(errors)}`];
  const entries = Object.entries(errors);
  if (entries.length === 0) return ['names no field'];
  const issues: string[] = [];
  for (const [field, list] of entries) {
    if (!Array.isArray(list) || list.length === 0) issues.push(`${field}: not a non-empty list`);
    else if (!list.every((e) => typeof e?.message === 'string' && e.message.length > 0 && typeof e?.code === 'string' && e.code.length > 0)) {
      issues.push(`${field}: not all { message, code }: ${JSON.stringify(list).slice(0, 200)}`);
    }
  }
  return issues;
}

/** The field-level codes of `errors[field]`, in order. */
export const codesOf = (res: { body: any }, field: string): string[] => (res.body?.errors?.[field] ?? []).map((e: { code: string }) => e.code);

/** What is wrong with any error answer as a problem document, whatever its code; [] when nothing. */
export function problemIssues(res: Answer): string[] {
  const issues: string[] = [];
  if (!/^application\/problem\+json/.test(String(res.headers['content-type']))) issues.push(`content-type ${res.headers['content-type']}`);
  const b = res.body;
  if (!b || typeof b !== 'object' || Array.isArray(b)) return [...issues, `body is not an object: ${res.raw.slice(0, 200)}`];
  const extra = Object.keys(b).filter((k) => !PROBLEM_MEMBERS.includes(k));
  if (extra.length) issues.push(`extra members ${extra.join(', ')}`);
  const code = b.code as ErrorCode;
  if (!(code in ERRORS)) issues.push(`unknown code ${b.code}`);
  else {
    if (b.status !== ERRORS[code].status || res.status !== b.status) issues.push(`status ${res.status}/${b.status} for ${code}`);
    if (b.title !== ERRORS[code].title) issues.push(`title ${b.title}`);
  }
  if (typeof b.type !== 'string' || !b.type.endsWith(`/${b.code}`)) issues.push(`type ${b.type}`);
  if (typeof b.detail !== 'string' || !b.detail) issues.push('no detail');
  if (typeof b.requestId !== 'string' || !b.requestId) issues.push('no requestId');
  if ('errors' in b) issues.push(...fieldErrorsIssues(b.errors).map((issue) => `errors: ${issue}`));
  return issues;
}
