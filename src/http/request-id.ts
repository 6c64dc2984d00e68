// Request ids and trace ids. Every answer carries `X-Request-Id`: the id in the logs and in problem
// documents, always generated here (a client-chosen id could be used to forge or collide log
// lines). A W3C `traceparent` header is accepted and its trace id is bound to the request's log
// lines (`traceId`), so a request can be followed through the caller's tracing system; an invalid
// one is ignored, as the W3C Trace Context recommendation says.
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';

// version-traceid-parentid-flags; version ff is invalid, as are all-zero ids.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

/** The trace id of a valid `traceparent` header, else undefined. */
export function traceIdOf(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined; // repeated headers are invalid
  const m = TRACEPARENT.exec(header.trim());
  if (!m || m[1] === 'ff' || /^0+$/.test(m[2]) || /^0+$/.test(m[3])) return undefined;
  if (m[1] === '00' && header.trim().length !== 55) return undefined; // version 00 has no extra fields
  return m[2];
}

/**
 * Fastify's `childLoggerFactory`: each request's logger carries the trace id from the start, so
 * "incoming request" and "request completed" lines have it too.
 */
export const traceChildLogger: NonNullable<FastifyServerOptions['childLoggerFactory']> = function (logger, bindings, options, rawRequest) {
  const traceId = traceIdOf(rawRequest.headers.traceparent);
  return logger.child(traceId ? { ...bindings, traceId } : bindings, options);
};

export const requestIdPlugin = fp(
  async (app: FastifyInstance) => {
    // onSend runs for every answer, error documents and 404s included (synchronous: no promise per request).
    app.addHook('onSend', (request, reply, payload, done) => {
      reply.header('x-request-id', request.id);
      done(null, payload);
    });
  },
  { name: 'request-id' },
);
