// The email outbox (Ory Kratos's "courier"). An email is a row written in the same transaction as
// the change that causes it, so a rolled-back change sends nothing and a committed one always
// sends. A worker in each instance sends due rows after commit:
// - claiming: one UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) pushes the claimed rows'
//   next_attempt_at one lease ahead, so two instances never send the same row at once, and a
//   crash mid-send only delays the email until the lease runs out;
// - retrying: a connection failure or a 4xx SMTP reply is retried with exponential backoff; a 5xx
//   reply, or the last allowed attempt, marks the row failed (kept for an operator to see);
// - forgetting: once sent, the bodies (which hold a live token) are blanked.
import { and, count, eq, inArray, lte, sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import nodemailer from 'nodemailer';
import type { Db, Tx } from '../db/index.js';
import { outbox } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import type { Rendered } from './templates.js';

export interface Mail {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
}

/** Sends one email or throws; nodemailer's SMTP errors carry `responseCode`. */
export type Transport = (mail: Mail) => Promise<void>;

export type OutboxRow = typeof outbox.$inferSelect;

/**
 * Rows that are not emails yet, by kind: an email request (services/email-requests.ts) is resolved
 * by its resolver instead of being sent, with the same lease, retries and backoff.
 */
export type Resolvers = ReadonlyMap<string, (row: OutboxRow) => Promise<void>>;

export interface OutboxOptions {
  from: string;
  /** First retry delay in ms; doubles with each attempt, capped at maxDelay. */
  baseDelay: number;
  maxDelay: number;
  maxAttempts: number;
  /** How long a claimed row is reserved for the sender (ms). */
  lease: number;
  /** How often to look for due rows when nothing woke the worker (ms). */
  pollInterval: number;
  batchSize: number;
}

export const DEFAULT_OUTBOX: Omit<OutboxOptions, 'from'> = {
  baseDelay: 5_000,
  maxDelay: 15 * 60_000,
  maxAttempts: 10,
  lease: 60_000,
  pollInterval: 5_000,
  batchSize: 20,
};

/** Writes an email to the outbox inside the caller's transaction. */
export async function enqueueEmail(tx: Tx, to: { userId: string | null; address: string }, email: Rendered): Promise<void> {
  await tx.insert(outbox).values({ userId: to.userId, recipient: to.address, ...email });
}

/** Emails in the outbox by status (pending, sent, failed), for the metrics. */
export async function outboxDepth(db: Db): Promise<Record<string, number>> {
  const rows = await db.select({ status: outbox.status, n: count() }).from(outbox).groupBy(outbox.status);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

export function smtpTransport(url: string): Transport {
  const transporter = nodemailer.createTransport(url, {
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  } as never);
  return async (mail) => void (await transporter.sendMail(mail));
}

/** Development: with no SMTP_URL, the email (link included) goes to the log. */
export function logTransport(log: FastifyBaseLogger): Transport {
  return async (mail) => log.info({ email: { to: mail.to, subject: mail.subject, text: mail.text } }, 'email (SMTP_URL is not set, so it was logged instead of sent)');
}

export class OutboxWorker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;

  constructor(
    private readonly db: Db,
    private readonly send: Transport,
    private readonly options: OutboxOptions,
    private readonly now: Clock,
    private readonly log: FastifyBaseLogger,
    private readonly observeAttempt: (result: 'sent' | 'retry' | 'failed', seconds: number) => void = () => {},
    private readonly resolvers: Resolvers = new Map(),
  ) {}

  start(): void {
    this.stopped = false;
    this.wake();
  }

  /** Look for due emails now (called after a transaction that enqueued one commits). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.drain()
      .catch((err) => this.log.error({ err }, 'outbox: pass failed'))
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        if (this.again) {
          this.again = false;
          this.wake();
        } else {
          this.timer = setTimeout(() => this.wake(), this.options.pollInterval);
          this.timer.unref();
        }
      });
  }

  /** Stops polling and waits for the email being sent; unsent ones stay queued for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private async drain(): Promise<void> {
    for (;;) {
      const batch = await this.claim();
      if (batch.length === 0) return;
      for (const row of batch) await this.deliver(row);
      if (this.stopped) return;
    }
  }

  private async claim() {
    const now = this.now();
    const due = this.db
      .select({ id: outbox.id })
      .from(outbox)
      .where(and(eq(outbox.status, 'pending'), lte(outbox.nextAttemptAt, now)))
      .orderBy(outbox.nextAttemptAt, outbox.id)
      .limit(this.options.batchSize)
      .for('update', { skipLocked: true });
    return this.db
      .update(outbox)
      .set({ nextAttemptAt: new Date(now.getTime() + this.options.lease), attempts: sql`${outbox.attempts} + 1` })
      .where(inArray(outbox.id, due))
      .returning();
  }

  private async deliver(row: OutboxRow): Promise<void> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    const resolve = this.resolvers.get(row.kind);
    const isRequest = resolve !== undefined || row.kind.startsWith('request:'); // not an email: no email metrics
    try {
      if (resolve) {
        // An email request: resolved (its email, if any, queued as a row of its own), not sent.
        // The resolver marks the row resolved itself, fenced on this claim.
        await resolve(row);
        this.log.info({ outboxId: row.id, kind: row.kind, attempts: row.attempts }, 'outbox: email request resolved');
        return;
      } else if (row.kind.startsWith('request:')) {
        // A request this worker cannot resolve is never mailed as it stands (it has no body, and
        // its address is whatever a client typed): it waits, with backoff, for a worker that can.
        throw new Error(`outbox: no resolver for ${row.kind}`);
      } else {
        await this.send({ from: this.options.from, to: row.recipient, subject: row.subject, text: row.text, html: row.html });
        this.observeAttempt('sent', seconds());
      }
      await this.db
        .update(outbox)
        .set({ status: 'sent', sentAt: this.now(), text: '', html: '', lastError: null })
        .where(eq(outbox.id, row.id));
      this.log.info({ outboxId: row.id, kind: row.kind, attempts: row.attempts }, 'outbox: email sent');
    } catch (err) {
      const code = (err as { responseCode?: number }).responseCode;
      const permanent = code !== undefined && code >= 500;
      const lastError = String((err as Error).message ?? err).slice(0, 500);
      const failed = permanent || row.attempts >= this.options.maxAttempts;
      if (!isRequest) this.observeAttempt(failed ? 'failed' : 'retry', seconds());
      // Only while this claim holds (attempts is the claim's fencing token): a row whose lease ran
      // out may have been claimed, and resolved or sent, by another instance meanwhile.
      const mine = and(eq(outbox.id, row.id), eq(outbox.attempts, row.attempts), eq(outbox.status, 'pending'));
      if (failed) {
        await this.db.update(outbox).set({ status: 'failed', lastError }).where(mine);
        this.log.error({ outboxId: row.id, kind: row.kind, attempts: row.attempts, lastError }, 'outbox: email failed for good');
      } else {
        const delay = Math.min(this.options.baseDelay * 2 ** (row.attempts - 1), this.options.maxDelay);
        await this.db
          .update(outbox)
          .set({ nextAttemptAt: new Date(this.now().getTime() + delay), lastError })
          .where(mine);
        this.log.warn({ outboxId: row.id, kind: row.kind, attempts: row.attempts, retryInMs: delay, lastError }, 'outbox: send failed, will retry');
      }
    }
  }
}
