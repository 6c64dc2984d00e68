// The services' context for one request: the app's context with the request's logger (it carries
// the request and trace ids) and the client's address and user agent, for the security events.
import type { FastifyRequest } from 'fastify';
import type { Context } from '../services/context.js';

const USER_AGENT_MAX = 256; // a log line is not a place for a client's megabyte of header

// Requests whose work queued webhooks: their transactions have committed once the response is
// sent, and the app wakes the outbox worker then (app.ts onResponse).
const queuedWebhooks = new WeakSet<FastifyRequest>();

export function queuedWebhooksFor(request: FastifyRequest): boolean {
  return queuedWebhooks.has(request);
}

export function forRequest(ctx: Context, request: FastifyRequest): Context {
  const userAgent = request.headers['user-agent'];
  return {
    ...ctx,
    log: request.log,
    requestId: String(request.id),
    webhooksQueued: () => void queuedWebhooks.add(request),
    client: { ip: request.ip, userAgent: typeof userAgent === 'string' ? userAgent.slice(0, USER_AGENT_MAX) : null },
  };
}
