// The one wiring file: Fastify with the TypeBox provider, error handling, OpenAPI, the services'
// context, the outbox worker and the routes. Every piece is imported and registered explicitly.
import { randomUUID } from 'node:crypto';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Config } from './config.js';
import { type Database, isDatabaseUnavailable } from './db/index.js';
import { dbOffsetMs } from './db/now.js';
import { AppError, toProblem } from './errors.js';
import { connectionOptions } from './http/connections.js';
import { corsPlugin } from './http/cors.js';
import { jsonBody } from './http/json-body.js';
import { metricsPlugin } from './http/metrics.js';
import { forRequest, queuedWebhooksFor } from './http/request-context.js';
import { requestIdPlugin, traceChildLogger } from './http/request-id.js';
import { securityHeaders, swaggerUiCsp } from './http/security-headers.js';
import { shutdownGatePlugin } from './http/shutdown-gate.js';
import { type Clock, systemClock } from './lib/clock.js';
import { isEmailAddress } from './lib/email-address.js';
import { createAccessTokens } from './lib/jwt.js';
import { serializeError, serializeRequest } from './lib/log.js';
import { createMetrics } from './lib/metrics.js';
import { createHasher } from './lib/password.js';
import { openLimitStore } from './lib/store/open.js';
import { createTasks } from './lib/tasks.js';
import { type EmailRow, emailChannel, isRequest, logTransport, outboxDepth, smtpTransport, type Transport } from './mail/outbox.js';
import { webhookChannel } from './outbox/webhooks.js';
import { DEFAULT_WORKER, DeliveryWorker, type WorkerOptions } from './outbox/worker.js';
import { accountRoutes } from './routes/accounts.js';
import { adminRoutes, adminSchemas } from './routes/admin/index.js';
import { passwordRoutes } from './routes/passwords.js';
import { serviceRoutes } from './routes/service.js';
import { sessionRoutes, sessionSchemas } from './routes/sessions.js';
import { tokenRoutes } from './routes/tokens.js';
import type { App } from './routes/types.js';
import { fromValidation } from './validation.js';
import { buildComponents } from './openapi/components.js';
import { swaggerOptions } from './openapi/document.js';
import { ALL_CONFIGURATIONS, surfaceOf } from './openapi/surface.js';
import { sharedSchemas } from './schemas.js';
import type { Context } from './services/context.js';
import { purgeAuditEvents } from './services/audit-log.js';
import { REQUEST_KINDS, resolveEmailRequest } from './services/email-requests.js';
import { recordEvent } from './services/events.js';
import { purgeStale } from './services/housekeeping.js';
import { openKeyRing } from './services/signing-keys.js';
import { backfillUsernameSkeletons, normalizeIdentifier } from './services/users.js';

export interface Overrides {
  now?: Clock;
  transport?: Transport;
  outbox?: Partial<WorkerOptions>;
  logger?: boolean;
  /** Where the log goes instead of stdout (tests read it to prove that no secret is logged). */
  logStream?: { write(line: string): void };
  /**
   * Document (and validate) the surface of every configuration instead of this one's: only for
   * writing the committed openapi/openapi.json (scripts/openapi.ts), never for serving.
   */
  documentAllConfigurations?: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Resolves when the work started after responses (lib/tasks.ts) has finished. */
    backgroundIdle(): Promise<void>;
  }
}

export async function buildApp(config: Readonly<Config>, database: Database, overrides: Overrides = {}): Promise<App> {
  const app = Fastify({
    logger:
      overrides.logger === false
        ? false
        : {
            level: config.logLevel,
            redact: ['req.headers.authorization'],
            serializers: { err: serializeError, req: serializeRequest },
            ...(overrides.logStream ? { stream: overrides.logStream } : {}),
          },
    genReqId: () => randomUUID(), // never trust a client-chosen request id (src/http/request-id.ts)
    requestIdHeader: false,
    childLoggerFactory: traceChildLogger,
    trustProxy: config.trustProxy,
    bodyLimit: 64 * 1024,
    return503OnClosing: false, // answered with a problem document below
    ...connectionOptions(config),
    ajv: {
      // An auth API must not guess: "123" is not 123, and an unknown field is an error, not dropped.
      // `example` is OpenAPI's keyword for the documented examples (Swagger UI shows them).
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: true, keywords: ['example'] },
      // ajv-formats' "email" with RFC 5321's length limits (lib/email-address.ts).
      onCreate: (ajv) => void ajv.addFormat('email', isEmailAddress),
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  if (config.connections.maxConnections > 0) app.server.maxConnections = config.connections.maxConnections;

  const now = overrides.now ?? systemClock;
  const keys = await openKeyRing({ db: database.db, config, now }, (err) => app.log.warn({ err }, 'signing keys: reload failed'));

  // A database outage is an incident (warn), like a 503; anything else is a bug (error).
  const tasks = createTasks((name, err) =>
    isDatabaseUnavailable(err)
      ? app.log.warn({ err, task: name }, 'background task failed: the database is unavailable')
      : app.log.error({ err, task: name }, 'background task failed'),
  );
  const metrics = createMetrics();
  metrics.observe({ outboxDepth: () => outboxDepth(database.db), pool: database.pool });
  const outboxOptions: WorkerOptions = {
    ...DEFAULT_WORKER,
    concurrency: config.outbox.concurrency,
    lease: config.outbox.lease * 1000,
    // Deliveries in flight get a fifth of the shutdown bound to finish before they are aborted.
    stopGrace: Math.min(DEFAULT_WORKER.stopGrace, (config.shutdownTimeout * 1000) / 5),
    ...overrides.outbox,
  };
  const transport =
    overrides.transport ??
    (config.emailTransport === 'smtp' && config.smtpUrl
      ? smtpTransport(config.smtpUrl, { maxConnections: outboxOptions.concurrency })
      : logTransport(app.log));
  // Email requests (resend-activation, password reset) are outbox rows resolved by the worker.
  const resolvers = Object.fromEntries(Object.values(REQUEST_KINDS).map((kind) => [kind, (row: EmailRow) => resolveEmailRequest(ctx, row)]));
  // One worker for every outbox channel (email, webhooks); a channel is a table and its senders.
  const channels = [emailChannel(transport, config.emailFrom, resolvers), ...(config.webhooks.urls.length > 0 ? [webhookChannel(config)] : [])];
  const worker = new DeliveryWorker(database.db, channels, outboxOptions, app.log, (result, seconds, channel, kind) => {
    // outbox_send_duration_seconds is the emails': an email request resolved is not an email sent.
    if (channel === 'email' && !isRequest(kind)) metrics.emailAttempt(result, seconds);
    else if (channel === 'webhook') metrics.webhookAttempt(result, seconds);
  });
  // Per-client, per-account and per-recipient limits, in Redis or the database (lib/store).
  const limits = await openLimitStore(config, database.db, app.log, {
    offsetMs: () => dbOffsetMs(now),
    onFailure: () => metrics.limitsStoreFailure(config.redis.url ? 'redis' : 'database'),
  });
  const ctx: Context = {
    config,
    db: database.db,
    now,
    hasher: await createHasher(config.argon2, config.hashing, metrics.hashStarted),
    accessTokens: createAccessTokens(keys, config.jwt, now),
    keys,
    limits,
    metrics,
    log: app.log,
    client: null,
    mailQueued: () => worker.wake(),
    // Outside a request (scripts, background work) the caller has committed by the time this
    // matters; the worker's poll finds anything woken too early. Requests: see forRequest.
    webhooksQueued: () => worker.wake(),
    background: tasks.run,
  };
  app.decorate('backgroundIdle', tasks.idle);
  app.decorateRequest('auth', null);
  app.decorateRequest('admin', null);

  // Cross-cutting HTTP concerns, in the order they run on a request (src/http/).
  await app.register(requestIdPlugin);
  await app.register(corsPlugin, { origins: config.corsOrigins });
  await app.register(shutdownGatePlugin);
  await app.register(metricsPlugin, { metrics, token: config.metricsToken });

  // JSON only: Fastify's default text/plain parser would hand a string to a JSON schema. And JSON
  // only in UTF-8 and well-formed Unicode (http/json-body.ts).
  app.removeContentTypeParser('text/plain');
  jsonBody(app);
  await securityHeaders(app);
  const admin = config.adminApiKeys.length > 0;
  const api = buildComponents(overrides.documentAllConfigurations ? ALL_CONFIGURATIONS : surfaceOf(config));
  for (const schema of [...sharedSchemas, ...api.all, ...sessionSchemas, ...(admin ? adminSchemas : [])]) app.addSchema(schema);
  await app.register(fastifySwagger, swaggerOptions({ admin }));
  await app.register(fastifySwaggerUi, { routePrefix: '/docs', ...swaggerUiCsp });
  // Throttles guessing (passwords, tokens) and email flooding, per client address, on the routes
  // that opt in with `config: { rateLimit: … }` (routes/limits.ts). The counts live in the shared
  // limits store (Redis or the database), so every instance sees them. The standard RateLimit-*
  // header fields (IETF draft, enableDraftSpec) rather than X-RateLimit-*.
  await app.register(fastifyRateLimit, {
    global: false,
    enableDraftSpec: true,
    store: limits.rateLimitStore as never, // the plugin's store contract (lib/store/index.ts RateLimitStore)
    errorResponseBuilder: (_req, ctx) => rateLimited(ctx.after, ctx.ttl),
  });

  app.setErrorHandler(async (err: FastifyError, request, reply) => {
    const appErr = toAppError(err);
    if (appErr.code === 'service_unavailable') {
      // The database (or the shutdown) is the cause, not the request: try again shortly.
      reply.header('retry-after', '2');
    }
    if (appErr.code === 'rate_limited') {
      const route = request.routeOptions.url ?? '(unmatched)';
      await recordEvent(forRequest(ctx, request), null, { type: 'rate_limited', userId: request.auth?.user.id ?? null, reason: route });
    }
    // An unexpected error is a bug (error); an unavailable database or a shutdown is an incident (warn).
    if (appErr.code === 'internal_error') request.log.error({ err }, 'unexpected error');
    else if (appErr.status >= 500) request.log.warn({ err }, appErr.message);
    if (appErr.retryAfter !== undefined) reply.header('retry-after', String(appErr.retryAfter));
    if (appErr.code === 'unauthenticated') {
      reply.header('www-authenticate', request.headers.authorization ? 'Bearer error="invalid_token"' : 'Bearer');
    }
    return reply.code(appErr.status).type('application/problem+json').send(toProblem(appErr, request.id, config.publicUrl));
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    const allowed = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((method) => app.hasRoute({ method, url: path }));
    if (allowed.length) reply.header('allow', allowed.join(', '));
    throw new AppError(allowed.length ? 'method_not_allowed' : 'not_found');
  });
  // Identifiers are NFKC-normalised before validation, so the rules (username characters, lengths)
  // hold for the value that is stored: full-width or ligature forms cannot smuggle in a space.
  // Attached only to the routes whose body may hold such a field (the body schema is resolved
  // through its $ref and anyOf/oneOf/allOf: route bodies are named shared schemas): token checks
  // and other requests without an identifier pay nothing. A body that cannot be proved free of
  // identifiers (no schema, an unknown $ref) gets the hook.
  app.addHook('onRoute', (route) => {
    const methods = [route.method].flat();
    if (methods.every((method) => method === 'GET' || method === 'HEAD' || method === 'OPTIONS')) return;
    if (route.schema?.body !== undefined && !mayHoldIdentifier(route.schema.body, app.getSchemas())) return;
    route.preValidation = [normalizeIdentifiers, ...[route.preValidation ?? []].flat()];
  });
  // Webhooks queued in a request's transaction: committed now that the answer is out.
  // Only with webhooks configured, and synchronous: token checks pay no hook and no promise for it.
  if (config.webhooks.urls.length > 0) {
    app.addHook('onResponse', (request, _reply, done) => {
      if (queuedWebhooksFor(request)) worker.wake();
      done();
    });
  }
  // Answers about accounts and tokens are never cached by a browser or a proxy.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    done(null, payload);
  });

  accountRoutes(app, ctx, api);
  tokenRoutes(app, ctx, api);
  passwordRoutes(app, ctx, api);
  sessionRoutes(app, ctx);
  adminRoutes(app, ctx);

  serviceRoutes(app, config, database, api);

  // A minute after start, then hourly; unref'd so it never keeps the process alive.
  let housekeepingTimer: NodeJS.Timeout | undefined;
  const scheduleHousekeeping = (delay: number) => {
    housekeepingTimer = setTimeout(async () => {
      const at = now();
      await Promise.all([purgeStale(database.db, at), purgeAuditEvents(database.db, at, config.auditRetention)]).then(
        ([purged, auditEvents]) => app.log.info({ purged: { ...purged, auditEvents } }, 'housekeeping: purged stale rows'),
        (err) => app.log.error({ err }, 'housekeeping failed'),
      );
      scheduleHousekeeping(3_600_000);
    }, delay).unref();
  };
  app.addHook('onReady', async () => {
    // Accounts made before usernames had a confusable skeleton get theirs (a no-op afterwards).
    const backfill = await backfillUsernameSkeletons(database.db);
    if (backfill.filled) app.log.info({ filled: backfill.filled }, 'usernames: confusable skeletons filled');
    if (backfill.conflicts.length) {
      app.log.warn({ userIds: backfill.conflicts }, 'usernames: accounts whose username looks like an older one (no skeleton; rename them)');
    }
    worker.start();
    scheduleHousekeeping(60_000);
  });
  app.addHook('onClose', async () => {
    clearTimeout(housekeepingTimer);
    keys.close();
    await tasks.idle();
    await worker.stop();
    await limits.close();
    transport.close?.();
  });
  return app;
}

const IDENTIFIERS = ['email', 'username'];

type JsonSchema = { $ref?: unknown; properties?: Record<string, unknown>; anyOf?: unknown[]; oneOf?: unknown[]; allOf?: unknown[] };

/** Whether a body schema (or one it refers to or combines) has a top-level email or username. */
function mayHoldIdentifier(schema: unknown, shared: Record<string, unknown>, seen = new Set<unknown>()): boolean {
  if (schema === null || typeof schema !== 'object' || seen.has(schema)) return false;
  seen.add(schema);
  const s = schema as JsonSchema;
  if (typeof s.$ref === 'string') {
    const target = shared[s.$ref.replace(/#$/, '')];
    return target === undefined || mayHoldIdentifier(target, shared, seen);
  }
  if (s.properties && IDENTIFIERS.some((field) => field in s.properties!)) return true;
  return [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])].some((sub) => mayHoldIdentifier(sub, shared, seen));
}

function normalizeIdentifiers(request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  const body = request.body as Record<string, unknown> | null;
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    for (const field of IDENTIFIERS) {
      if (typeof body[field] === 'string') body[field] = normalizeIdentifier(body[field] as string);
    }
  }
  done();
}

function rateLimited(after: string, ttlMs: number): AppError {
  return new AppError('rate_limited', { detail: `Too many requests, try again in ${after}.`, retryAfter: Math.ceil(ttlMs / 1000) });
}

function toAppError(err: FastifyError): AppError {
  if (err instanceof AppError) return err;
  if (err.validation) return fromValidation(err.validation);
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('unsupported_media_type', { cause: err });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('payload_too_large', { cause: err });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('validation_failed', { detail: 'The request body is empty; send a JSON object.', cause: err });
  }
  if (isDatabaseUnavailable(err)) return new AppError('service_unavailable', { cause: err });
  if (err.statusCode === 429) return new AppError('rate_limited', { detail: err.message, cause: err });
  if (err.statusCode === 400 || err instanceof SyntaxError) {
    // The JSON parser's own errors (malformed JSON, __proto__ keys): say what, not where it broke.
    return new AppError('validation_failed', { detail: 'The request body is not valid JSON.', cause: err });
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return new AppError('validation_failed', { detail: 'The request is not valid.', cause: err });
  }
  return new AppError('internal_error', { cause: err });
}
