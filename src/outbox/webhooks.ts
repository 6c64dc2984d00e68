// The webhook channel of the outbox (outbox/worker.ts has the machinery: leases, backoff,
// dead-lettering, shutdown). Each event (services/events.ts) becomes one row per endpoint of
// WEBHOOK_URLS whose WEBHOOK_EVENTS filter admits it, written in the event's transaction; the
// worker POSTs it after commit, in the Standard Webhooks format (https://www.standardwebhooks.com):
// - the body is fixed when the row is written, so every attempt sends the same bytes;
// - `webhook-id` is the event's id, the same on every attempt and every endpoint: a receiver
//   that saw it already drops the retry (the one duplicate at-least-once delivery can leave);
// - `webhook-timestamp` is the attempt's time in unix seconds (the receiver's replay window applies
//   to it: a retry an hour later must still verify), and `webhook-signature` is `v1,` + base64
//   HMAC-SHA256 over "<id>.<timestamp>.<body>" keyed with the bytes of WEBHOOK_SECRET
//   (whsec_<base64>, the spec libraries' format);
// - any answer but 2xx, a network error or WEBHOOK_TIMEOUT is retried with the worker's backoff;
//   after WEBHOOK_MAX_ATTEMPTS the row is failed (the dead letter, kept in webhook_deliveries for
//   an operator). Redirects are not followed (a 3xx is a failure): the operator named the endpoint,
//   and a signed event must not be carried elsewhere by whoever answers there.
import { count } from 'drizzle-orm';
import type { Config } from '../config.js';
import type { Db, Tx } from '../db/index.js';
import { webhookDeliveries } from '../db/schema.js';
import { parseWebhookSecret, signWebhook } from '../lib/webhook-signature.js';
import type { Channel } from './worker.js';

export type WebhookRow = typeof webhookDeliveries.$inferSelect;

export interface WebhookEvent {
  /** The event's id (a UUID made once, in services/events.ts): the webhook-id. */
  id: string;
  type: string;
  createdAt: Date;
  /** Never a secret, token, password or hash. */
  data: Record<string, unknown>;
}

/** The endpoints that receive an event of this type (`admin.*` in WEBHOOK_EVENTS: every admin action). */
export function webhookTargets(config: Readonly<Config>, type: string): readonly string[] {
  const { urls, events } = config.webhooks;
  if (urls.length === 0) return [];
  if (events && !events.some((e) => e === type || (e.endsWith('.*') && type.startsWith(e.slice(0, -1))))) return [];
  return urls;
}

/** Queues the event for each of `urls` (its webhookTargets), in the caller's transaction. */
export async function enqueueWebhooks(db: Db | Tx, urls: readonly string[], event: WebhookEvent): Promise<void> {
  if (urls.length === 0) return;
  const body = JSON.stringify({ type: event.type, timestamp: event.createdAt.toISOString(), data: event.data });
  // One row per (event, endpoint): a second write of the same event (there is none today) is a no-op.
  await db
    .insert(webhookDeliveries)
    .values(urls.map((url) => ({ eventId: event.id, url, type: event.type, body })))
    .onConflictDoNothing();
}

/** Webhook deliveries by status (pending, sent, failed), for the metrics. */
export async function webhookDepth(db: Db): Promise<Record<string, number>> {
  const rows = await db.select({ status: webhookDeliveries.status, n: count() }).from(webhookDeliveries).groupBy(webhookDeliveries.status);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/** The outbox channel that POSTs webhook rows. */
export function webhookChannel(config: Readonly<Config>): Channel<WebhookRow> {
  const key = parseWebhookSecret(config.webhooks.secret ?? '');
  return {
    name: 'webhook',
    table: webhookDeliveries,
    maxAttempts: config.webhooks.maxAttempts,
    senders: {
      '*': async (row, signal) => {
        if (!key) throw Object.assign(new Error('WEBHOOK_SECRET is not set'), { permanent: true });
        // Real time, not the service's clock: the receiver compares it with its own.
        const timestamp = Math.floor(Date.now() / 1000);
        let res: Response;
        try {
          res = await fetch(row.url, {
            method: 'POST',
            redirect: 'manual',
            signal: AbortSignal.any([signal, AbortSignal.timeout(config.webhooks.timeout)]),
            headers: {
              'content-type': 'application/json',
              'user-agent': 'authservice-webhooks',
              'webhook-id': row.eventId,
              'webhook-timestamp': String(timestamp),
              'webhook-signature': signWebhook(key, row.eventId, timestamp, row.body),
            },
            body: row.body,
          });
        } catch (err) {
          if (signal.aborted) throw err; // shutdown or lease: the worker releases the row
          throw new Error(describeFetchError(err, config.webhooks.timeout));
        }
        // The answer's body is not needed (and may be large or slow): drop it.
        await res.body?.cancel().catch(() => {});
        if (res.status < 200 || res.status > 299) {
          throw new Error(`HTTP ${res.status} from the endpoint${res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : ''}`);
        }
      },
    },
    delivered: (now) => ({ sentAt: now }),
  };
}

/** A failed fetch in a line for last_error: the timeout, or the network error's code. Never the URL. */
function describeFetchError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return `timeout: no answer within WEBHOOK_TIMEOUT (${timeoutMs} ms)`;
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `network error: ${e?.message ?? String(err)}${cause ? ` (${cause})` : ''}`;
}
