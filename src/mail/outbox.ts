// The email channel of the outbox (outbox/worker.ts has the machinery: leases, retries, shutdown).
// An email is a row written in the same transaction as the change that causes it, so a rolled-back
// change sends nothing and a committed one always sends. Sent over a pooled SMTP transport; a
// connection failure or a 4xx reply is retried with backoff, a 5xx reply fails the row for good;
// once sent, the bodies (which hold a live token) are blanked.
import { count } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import nodemailer from 'nodemailer';
import type { Db, Tx } from '../db/index.js';
import { outbox } from '../db/schema.js';
import type { Channel } from '../outbox/worker.js';
import type { Rendered } from './templates.js';

export interface Mail {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
}

export interface Transport {
  /** Sends one email or throws; stops (throws) when `signal` aborts. An SMTP 5xx is `permanent`. */
  send(mail: Mail, signal: AbortSignal): Promise<void>;
  /** Closes pooled connections (at shutdown). */
  close?(): void;
}

export type EmailRow = typeof outbox.$inferSelect;

/** Writes an email to the outbox inside the caller's transaction. */
export async function enqueueEmail(tx: Tx, to: { userId: string | null; address: string }, email: Rendered): Promise<void> {
  await tx.insert(outbox).values({ userId: to.userId, recipient: to.address, ...email });
}

/** Emails in the outbox by status (pending, sent, failed), for the metrics. */
export async function outboxDepth(db: Db): Promise<Record<string, number>> {
  const rows = await db.select({ status: outbox.status, n: count() }).from(outbox).groupBy(outbox.status);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/**
 * Rows that are not emails yet, by kind: an email request (services/email-requests.ts) is resolved
 * by its resolver instead of being sent, with the same lease, retries and backoff. The resolver
 * marks its row resolved itself, in its own transaction, fenced on the claim.
 */
export type Resolvers = Readonly<Record<string, (row: EmailRow) => Promise<void>>>;

/** The outbox channel that sends email rows through `transport` and resolves email requests. */
export function emailChannel(transport: Transport, from: string, resolvers: Resolvers = {}): Channel<EmailRow> {
  return {
    name: 'email',
    table: outbox,
    senders: {
      ...resolvers,
      '*': async (row, signal) => {
        // A request this worker cannot resolve is never mailed as it stands (it has no body, and
        // its address is whatever a client typed): it waits, with backoff, for a worker that can.
        if (isRequest(row.kind)) throw new Error(`outbox: no resolver for ${row.kind}`);
        await transport.send({ from, to: row.recipient, subject: row.subject, text: row.text, html: row.html }, signal);
      },
    },
    delivered: (now) => ({ sentAt: now, text: '', html: '' }),
  };
}

/** An email request row (`request:<purpose>`), not an email: it is not counted as one. */
export function isRequest(kind: string): boolean {
  return kind.startsWith('request:');
}

export interface SmtpOptions {
  /** Connections kept open to the SMTP server, at most (the outbox's concurrency). */
  maxConnections: number;
}

/**
 * nodemailer over a pool of SMTP connections: several messages in flight at once, connections
 * reused. An aborted send closes the connection carrying it (nodemailer's per-message signal), so
 * a stalled server cannot hold a shutdown.
 */
export function smtpTransport(url: string, options: SmtpOptions): Transport {
  // One options object: with the URL as a separate first argument, nodemailer would take these as
  // message defaults and silently ignore the pool and the timeouts.
  const transporter = nodemailer.createTransport({
    url,
    pool: true,
    maxConnections: options.maxConnections,
    maxMessages: 100,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
    // A message whose connection closes is failed at once, not requeued inside nodemailer: the
    // outbox owns retries, and a retry must re-read its row (the account may have been deleted,
    // the email dropped, in between; a requeued copy would still go out when the server returns).
    maxRequeues: 0,
  } as never);
  return {
    async send(mail, signal) {
      try {
        await transporter.sendMail({ ...mail, signal } as never);
      } catch (err) {
        const code = (err as { responseCode?: number }).responseCode;
        if (code !== undefined && code >= 500) (err as { permanent?: boolean }).permanent = true;
        throw err;
      }
    },
    close: () => transporter.close(),
  };
}

/** Development: with no SMTP_URL, the email (link included) goes to the log. */
export function logTransport(log: FastifyBaseLogger): Transport {
  return {
    send: async (mail) =>
      log.info({ email: { to: mail.to, subject: mail.subject, text: mail.text } }, 'email (SMTP_URL is not set, so it was logged instead of sent)'),
  };
}
