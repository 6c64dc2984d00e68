// The delivery machinery behind the outbox (Ory Kratos's "courier"): rows written in the caller's
// transaction, delivered after commit by one worker per instance. One machinery for every channel
// (email today; resolved requests and webhooks are more channels or more row kinds of it): a lease
// per row, backoff, dead-lettering; channels differ only in their table and their senders.
// Invariants:
// - claiming: one row per statement (UPDATE … WHERE id IN (SELECT … LIMIT 1 FOR UPDATE SKIP
//   LOCKED)) pushes that row's next_attempt_at one lease ahead and counts the attempt. Times are
//   the database's real now() (db/now.ts), so instances with skewed clocks agree on what is due;
//   scheduling is operational time, so a test that moves the service's clock does not make a
//   row in flight due again;
// - a lease covers what it claims: while a row is being delivered its lease is renewed (every
//   quarter lease); if it cannot be renewed in time (the database is unreachable), the delivery is
//   aborted while a quarter of the lease is still left, so no other instance is ever handed a row
//   whose sender may still be sending. `attempts` is the fencing token: every write after the
//   claim is conditional on it, so a holder that lost its lease cannot overwrite the next one's;
// - at least once: a crash after the receiver took a message and before the row was marked sent
//   delivers it again once the lease has run out (the one duplicate left, bounded by the lease);
// - retrying: a transient failure is retried with exponential backoff; a permanent one
//   (`err.permanent`) or the last allowed attempt marks the row failed (the dead letter, kept for
//   an operator to see);
// - concurrency: up to `concurrency` rows are in flight at once, so one slow message does not hold
//   up the queue;
// - shutdown: stop() claims nothing more, lets deliveries in flight finish for a short grace, then
//   aborts them; an aborted row is released (due at once, the attempt not counted) for any instance.
import { and, eq, getTableColumns, getTableName, inArray, lte, type SQL, sql } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../db/index.js';
import { dbNow, dbNowPlus } from '../db/now.js';

export type DeliveryStatus = 'pending' | 'sent' | 'failed';

/** The columns every delivery table has (see db/schema.ts email_outbox). */
export type QueueTable = PgTable & {
  id: PgColumn;
  kind: PgColumn;
  status: PgColumn;
  attempts: PgColumn;
  nextAttemptAt: PgColumn;
  lastError: PgColumn;
};

export interface QueueRow {
  id: number;
  kind: string;
  attempts: number;
}

/**
 * Delivers one row or throws. It must stop when `signal` aborts (shutdown, or a lease that can no
 * longer be renewed). An error with `permanent: true` is not retried.
 */
export type Sender<Row> = (row: Row, signal: AbortSignal) => Promise<void>;

export interface Channel<Row extends QueueRow = any> {
  /** For the logs: "email", "webhook", … */
  name: string;
  table: QueueTable;
  /** The sender of each row kind; '*' for every kind not listed. */
  senders: Record<string, Sender<Row>>;
  /** Attempts before a row is failed, when not the worker's `maxAttempts` (WEBHOOK_MAX_ATTEMPTS). */
  maxAttempts?: number;
  /** Columns written with status 'sent' once a row is delivered (`now` is the database's time). */
  delivered?: (now: SQL) => Record<string, unknown>;
}

export interface WorkerOptions {
  /** First retry delay in ms; doubles with each attempt, capped at maxDelay. */
  baseDelay: number;
  maxDelay: number;
  maxAttempts: number;
  /** How long a claimed row is reserved for its sender (ms); renewed while the sender works. */
  lease: number;
  /** How often to look for due rows when nothing woke the worker (ms). */
  pollInterval: number;
  /** Rows delivered at once (SMTP: the size of the connection pool). */
  concurrency: number;
  /** A delivery still running after this long is aborted and retried later (ms). */
  sendTimeout: number;
  /** On stop, how long deliveries in flight may finish before they are aborted (ms). */
  stopGrace: number;
}

export const DEFAULT_WORKER: WorkerOptions = {
  baseDelay: 5_000,
  maxDelay: 15 * 60_000,
  maxAttempts: 10,
  lease: 60_000,
  pollInterval: 5_000,
  concurrency: 5,
  sendTimeout: 120_000,
  stopGrace: 2_000,
};

type AbortReason = 'shutdown' | 'lease' | 'timeout';

class DeliveryAborted extends Error {
  constructor(readonly reason: AbortReason) {
    super(
      reason === 'shutdown'
        ? 'aborted: the service is shutting down'
        : reason === 'lease'
          ? 'aborted: the lease could not be renewed'
          : 'aborted: the delivery took too long',
    );
    this.name = 'DeliveryAborted';
  }
}

export class DeliveryWorker {
  private stopped = true;
  private lanes = 0;
  private wakes = 0;
  private nextChannel = 0;
  private poll: NodeJS.Timeout | undefined;
  private failing = false;
  private readonly inFlight = new Set<AbortController>();
  private readonly idleWaiters = new Set<() => void>();

  constructor(
    private readonly db: Db,
    private readonly channels: Channel[],
    private readonly options: WorkerOptions,
    private readonly log: FastifyBaseLogger,
    /** One delivery attempt's outcome and duration, for the metrics (an aborted one is not counted). */
    private readonly observeAttempt: (result: 'sent' | 'retry' | 'failed', seconds: number, channel: string, kind: string) => void = () => {},
  ) {}

  start(): void {
    this.stopped = false;
    clearInterval(this.poll);
    this.poll = setInterval(() => this.wake(), this.options.pollInterval).unref();
    this.wake();
  }

  /** Look for due rows now (called after a transaction that enqueued one commits). */
  wake(): void {
    if (this.stopped) return;
    this.wakes++;
    if (this.lanes < this.options.concurrency) this.spawn();
  }

  /**
   * Claims nothing more; deliveries in flight get `stopGrace` to finish, then are aborted and their
   * rows released. Resolves when no delivery is running.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.poll);
    if (this.lanes === 0) return;
    const idle = new Promise<void>((resolve) => this.idleWaiters.add(resolve));
    const grace = setTimeout(() => {
      for (const c of this.inFlight) c.abort(new DeliveryAborted('shutdown'));
    }, this.options.stopGrace);
    await idle;
    clearTimeout(grace);
  }

  private spawn(): void {
    this.lanes++;
    this.lane()
      .catch((err) => {
        if (!this.failing) this.log.warn({ err }, 'outbox: cannot claim deliveries (will retry)');
        this.failing = true;
      })
      .finally(() => {
        this.lanes--;
        if (this.lanes === 0) {
          for (const resolve of this.idleWaiters) resolve();
          this.idleWaiters.clear();
        }
      });
  }

  /**
   * Claims and delivers rows one at a time until none is due. Each claim also says whether another
   * row was due then (in any channel): only then does another lane start to look, and only then,
   * or when the worker was woken meanwhile, does this lane claim again after delivering. A claim
   * that finds nothing costs a statement per channel; a lone email costs its claim and its mark.
   */
  private async lane(): Promise<void> {
    while (!this.stopped) {
      const seen = this.wakes;
      const claimStarted = performance.now();
      const claimed = await this.claimAny();
      if (this.failing) {
        this.failing = false;
        this.log.info('outbox: claiming again');
      }
      if (!claimed) {
        if (this.wakes !== seen) continue; // woken while claiming: something may have been enqueued
        return;
      }
      if (this.stopped) {
        await this.release(claimed.channel, claimed.row, 'shutdown').catch(() => {});
        return;
      }
      // More is due: let another lane look while this one delivers.
      if (claimed.moreDue && this.lanes < this.options.concurrency) this.spawn();
      await this.deliver(claimed.channel, claimed.row, claimStarted + this.options.lease);
      // Nothing else was due at the claim and nothing was enqueued here since: the poll finds
      // what becomes due later (a retry's backoff, another instance's rows).
      if (!claimed.moreDue && this.wakes === seen) return;
    }
  }

  private async claimAny(): Promise<{ channel: Channel; row: QueueRow; moreDue: boolean } | undefined> {
    for (let i = 0; i < this.channels.length; i++) {
      const channel = this.channels[(this.nextChannel + i) % this.channels.length];
      const claimed = await this.claim(channel);
      if (claimed) {
        this.nextChannel = (this.nextChannel + i + 1) % this.channels.length;
        const { moreDue, ...row } = claimed;
        return { channel, row: row as unknown as QueueRow, moreDue: Boolean(moreDue) };
      }
    }
    return undefined;
  }

  private async claim(channel: Channel): Promise<(Record<string, unknown> & { moreDue: unknown }) | undefined> {
    const t = channel.table;
    const due = this.db
      .select({ id: t.id })
      .from(t)
      .where(and(eq(t.status, 'pending'), lte(t.nextAttemptAt, dbNow())))
      .orderBy(t.nextAttemptAt, t.id)
      .limit(1)
      .for('update', { skipLocked: true });
    const [row] = await this.db
      .update(t)
      .set({ nextAttemptAt: dbNowPlus(this.options.lease), attempts: sql`${t.attempts} + 1` } as never)
      .where(inArray(t.id, due))
      .returning({ ...getTableColumns(t), moreDue: this.moreDue(t) });
    return row as (Record<string, unknown> & { moreDue: unknown }) | undefined;
  }

  /**
   * For a claim's RETURNING: whether any channel had another row due (the statement's snapshot:
   * the claimed row still looks due in it, so it is left out; so may rows other claims are taking
   * at the same moment, which only costs a claim that finds nothing).
   */
  private moreDue(claimed: QueueTable): SQL<boolean> {
    // By hand: Drizzle writes RETURNING's columns unqualified, and the subquery needs two names.
    const column = (c: PgColumn) => sql.identifier(c.name);
    const due = this.channels.map(({ table }) => {
      const notClaimed =
        table === claimed ? sql` and other.${column(table.id)} <> ${sql.identifier(getTableName(claimed))}.${column(claimed.id)}` : sql``;
      return sql`exists (select 1 from ${sql.identifier(getTableName(table))} as other where other.${column(table.status)} = 'pending' and other.${column(table.nextAttemptAt)} <= now()${notClaimed})`;
    });
    return sql<boolean>`(${sql.join(due, sql` or `)})`;
  }

  /** A write to a claimed row, only while this claim still holds it (attempts is the fence). */
  private async update(channel: Channel, row: QueueRow, set: Record<string, unknown>): Promise<boolean> {
    const t = channel.table;
    const done = await this.db
      .update(t)
      .set(set as never)
      .where(and(eq(t.id, row.id), eq(t.attempts, row.attempts), eq(t.status, 'pending')))
      .returning({ id: t.id });
    return done.length === 1;
  }

  private release(channel: Channel, row: QueueRow, reason: AbortReason): Promise<boolean> {
    const t = channel.table;
    return this.update(channel, row, {
      nextAttemptAt: dbNow(),
      attempts: sql`${t.attempts} - 1`,
      lastError: new DeliveryAborted(reason).message,
    });
  }

  private async deliver(channel: Channel, row: QueueRow, leaseUntilAtClaim: number): Promise<void> {
    const { lease, sendTimeout } = this.options;
    const controller = new AbortController();
    this.inFlight.add(controller);
    const started = performance.now();
    // The lease as this process knows it: measured from when the claim (or renewal) was asked,
    // so it can only end later in the database than here.
    let leaseUntil = leaseUntilAtClaim;
    let renewing = false;
    let lastRenewal = started;
    const margin = lease / 4;
    const watch = setInterval(() => {
      const at = performance.now();
      if (at > leaseUntil - margin) return controller.abort(new DeliveryAborted('lease'));
      if (at - started > sendTimeout) return controller.abort(new DeliveryAborted('timeout'));
      if (renewing || at - lastRenewal < margin) return;
      renewing = true;
      lastRenewal = at;
      this.update(channel, row, { nextAttemptAt: dbNowPlus(lease) })
        .then((held) => {
          if (held) leaseUntil = at + lease;
          else controller.abort(new DeliveryAborted('lease'));
        })
        .catch(() => {}) // the database is away: the deadline above decides
        .finally(() => (renewing = false));
    }, Math.min(1_000, margin)).unref();

    const info = { outboxId: row.id, channel: channel.name, kind: row.kind, attempts: row.attempts };
    let error: unknown;
    try {
      const sender = channel.senders[row.kind] ?? channel.senders['*'];
      if (!sender) throw Object.assign(new Error(`no sender for kind "${row.kind}"`), { permanent: true });
      // The race makes an abort final even for a sender that ignores its signal.
      await Promise.race([
        sender(row, controller.signal),
        new Promise<never>((_, reject) => {
          const onAbort = () => reject(controller.signal.reason);
          if (controller.signal.aborted) onAbort();
          else controller.signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } catch (err) {
      error = controller.signal.aborted ? controller.signal.reason : err;
    } finally {
      clearInterval(watch);
      this.inFlight.delete(controller);
    }

    const seconds = (performance.now() - started) / 1000;
    try {
      if (error === undefined) {
        this.observeAttempt('sent', seconds, channel.name, row.kind);
        const held = await this.markDelivered(channel, row, () => leaseUntil);
        // Not held: the row was deleted (its account with it) or claimed again while in flight.
        this.log.info(info, held ? `outbox: ${channel.name} delivered` : `outbox: ${channel.name} delivered, but its row was gone or claimed again meanwhile`);
      } else if (error instanceof DeliveryAborted && error.reason !== 'timeout') {
        await this.release(channel, row, error.reason);
        this.log.warn({ ...info, reason: error.message }, `outbox: ${channel.name} delivery aborted, queued for a retry`);
      } else {
        await this.failed(channel, row, error, seconds);
      }
    } catch (err) {
      // The database went away mid-delivery: the row's lease runs out and it is retried.
      this.log.warn({ ...info, err }, `outbox: could not record the outcome of a ${channel.name} delivery (it will be retried)`);
    }
  }

  /**
   * Marks a delivered row sent, retrying while the lease holds (else it would be sent twice).
   * False when this claim no longer holds the row.
   */
  private async markDelivered(channel: Channel, row: QueueRow, leaseUntil: () => number): Promise<boolean> {
    const now = dbNow();
    const set = { status: 'sent', lastError: null, ...channel.delivered?.(now) };
    for (;;) {
      try {
        return await this.update(channel, row, set);
      } catch (err) {
        // While stopping, give up at once: shutdown is bounded; the row is then sent again later.
        if (this.stopped || performance.now() > leaseUntil() - 1_000) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  private async failed(channel: Channel, row: QueueRow, err: unknown, seconds: number): Promise<void> {
    const info = { outboxId: row.id, channel: channel.name, kind: row.kind, attempts: row.attempts };
    const lastError = String((err as Error)?.message ?? err).slice(0, 500);
    const permanent = (err as { permanent?: unknown })?.permanent === true;
    const final = permanent || row.attempts >= (channel.maxAttempts ?? this.options.maxAttempts);
    this.observeAttempt(final ? 'failed' : 'retry', seconds, channel.name, row.kind);
    if (final) {
      await this.update(channel, row, { status: 'failed', lastError });
      this.log.error({ ...info, lastError }, `outbox: ${channel.name} failed for good`);
      return;
    }
    const delay = Math.min(this.options.baseDelay * 2 ** (row.attempts - 1), this.options.maxDelay);
    await this.update(channel, row, { nextAttemptAt: dbNowPlus(delay), lastError });
    this.log.warn({ ...info, retryInMs: delay, lastError }, `outbox: ${channel.name} failed, will retry`);
  }
}
