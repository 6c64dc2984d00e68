// The service's Prometheus metrics (prom-client), one registry per app so that several apps in
// one process (tests, sibling instances) never mix their counts. Everything that is counted is
// counted here; the HTTP layer serves it at /metrics (src/http/metrics.ts).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PoolStats } from '../db/pool-stats.js';
import type { SecurityEvent } from '../services/events.js';

export interface Metrics {
  registry: Registry;
  /** An answer was sent: its route template (never the raw URL), method, status and duration. */
  httpRequest(method: string, route: string, status: number, seconds: number): void;
  /** An argon2 hash or verify starts; call the result when it ends. */
  hashStarted(operation: 'hash' | 'verify'): () => void;
  /** The outbox tried to send one email. */
  emailAttempt(result: 'sent' | 'retry' | 'failed', seconds: number): void;
  /** The outbox tried to deliver one webhook to one endpoint. */
  webhookAttempt(result: 'sent' | 'retry' | 'failed', seconds: number): void;
  securityEvent(event: SecurityEvent): void;
  /** A call to the limits store (Redis, or the database) failed: limits were skipped or refused. */
  limitsStoreFailure(store: 'redis' | 'database'): void;
  /** Sources read at scrape time: the outbox depth by status, the database pool. */
  observe(sources: { outboxDepth?: () => Promise<Record<string, number>>; pool?: PoolStats }): void;
}

/** Seconds, for one outbox delivery attempt (an email or a webhook): 10 ms to the 30 s timeouts. */
const DELIVERY_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];

  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP answers, by method, route template and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers,
  });
  const latency = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from the request to its answer, by method, route template and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const hashesInFlight = new Gauge({
    name: 'argon2_operations_in_flight',
    help: 'argon2 hashes and verifications running or queued for the thread pool now.',
    registers,
  });
  const hashDuration = new Histogram({
    name: 'argon2_duration_seconds',
    help: 'Duration of argon2 hashes and verifications (queueing for the thread pool included).',
    labelNames: ['operation'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const emailSends = new Histogram({
    name: 'outbox_send_duration_seconds',
    help: 'Duration of one email send attempt, by result: sent, retry (will be tried again), failed (for good).',
    labelNames: ['result'] as const,
    buckets: DELIVERY_BUCKETS,
    registers,
  });
  const webhookSends = new Histogram({
    name: 'webhook_delivery_duration_seconds',
    help: 'Duration of one webhook delivery attempt to one endpoint, by result: sent, retry (will be tried again), failed (for good).',
    labelNames: ['result'] as const,
    buckets: DELIVERY_BUCKETS,
    registers,
  });
  const events = new Counter({
    name: 'auth_security_events_total',
    help: 'Security events (the `event` field of the security-event log line).',
    labelNames: ['event'] as const,
    registers,
  });
  const loginFailures = new Counter({
    name: 'auth_login_failures_total',
    help: 'Failed logins, by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  const rateLimited = new Counter({
    name: 'auth_rate_limited_total',
    help: 'Requests refused by a rate limit, by route template.',
    labelNames: ['route'] as const,
    registers,
  });
  const reuse = new Counter({
    name: 'auth_refresh_token_reuse_detected_total',
    help: 'Spent refresh tokens presented again after the reuse interval (theft signals); each ended its session.',
    registers,
  });

  let outboxDepth: (() => Promise<Record<string, number>>) | undefined;
  let lastDepth: Record<string, number> = {};
  let refreshing: Promise<void> | undefined;
  new Gauge({
    name: 'outbox_emails',
    help: 'Emails in the outbox, by status (pending, sent, failed).',
    labelNames: ['status'] as const,
    registers,
    async collect() {
      if (!outboxDepth) return;
      // A scrape never fails, and never waits long, because of the database: it waits up to
      // 250 ms for a fresh count, else reports the last one (the count keeps running).
      refreshing ??= outboxDepth()
        .then((depth) => void (lastDepth = depth), () => {})
        .finally(() => (refreshing = undefined));
      await Promise.race([refreshing, new Promise((resolve) => setTimeout(resolve, 250).unref())]);
      this.reset();
      for (const [status, n] of Object.entries({ pending: 0, sent: 0, failed: 0, ...lastDepth })) this.set({ status }, n);
    },
  });
  let pool: PoolStats | undefined;
  new Gauge({
    name: 'db_pool_connections_max',
    help: 'Connections the database pool may open.',
    registers,
    collect() {
      if (pool) this.set(pool.max);
    },
  });
  new Gauge({
    name: 'db_pool_connections_in_use',
    help: 'Database connections held by a statement or a transaction now.',
    registers,
    collect() {
      if (pool) this.set(Math.min(pool.active(), pool.max));
    },
  });
  new Gauge({
    name: 'db_pool_waiting',
    help: 'Statements and transactions waiting for a free database connection now.',
    registers,
    collect() {
      if (pool) this.set(Math.max(0, pool.active() - pool.max));
    },
  });
  const storeFailures = new Counter({
    name: 'limits_store_failures_total',
    help: 'Failed calls to the limits store (the rate limits could not be counted: skipped, or 503 with RATE_LIMIT_FAIL_CLOSED), by store.',
    labelNames: ['store'] as const,
    registers,
  });
  // Pre-create the series that matter at zero, so a dashboard sees 0 rather than no data.
  for (const reason of ['unknown_account', 'wrong_password', 'inactive', 'no_password', 'not_verified']) loginFailures.inc({ reason }, 0);
  reuse.inc(0);
  for (const store of ['redis', 'database']) storeFailures.inc({ store }, 0);

  return {
    registry,
    httpRequest(method, route, status, seconds) {
      const labels = { method, route, status: String(status) };
      requests.inc(labels);
      latency.observe(labels, seconds);
    },
    hashStarted(operation) {
      hashesInFlight.inc();
      const end = hashDuration.startTimer({ operation });
      return () => {
        hashesInFlight.dec();
        end();
      };
    },
    emailAttempt(result, seconds) {
      emailSends.observe({ result }, seconds);
    },
    webhookAttempt(result, seconds) {
      webhookSends.observe({ result }, seconds);
    },
    securityEvent(event) {
      events.inc({ event: event.type });
      if (event.type === 'login_failed') loginFailures.inc({ reason: event.reason ?? 'unknown' });
      else if (event.type === 'rate_limited') rateLimited.inc({ route: event.reason ?? 'unknown' });
      else if (event.type === 'refresh_reuse_detected') reuse.inc();
    },
    limitsStoreFailure(store) {
      storeFailures.inc({ store });
    },
    observe(sources) {
      outboxDepth = sources.outboxDepth ?? outboxDepth;
      pool = sources.pool ?? pool;
    },
  };
}
