// Prometheus metrics over HTTP: every answer is counted and timed by route template (never the
// raw URL, so an attacker cannot blow up the series), and GET /metrics serves the registry to
// `Authorization: Bearer <METRICS_TOKEN>` only. With METRICS_TOKEN unset the route does not exist:
// metrics are never public by accident.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../errors.js';
import type { Metrics } from '../lib/metrics.js';

export const metricsPlugin = fp(
  async (app: FastifyInstance, options: { metrics: Metrics; token: string | undefined }) => {
    const { metrics, token } = options;
    // Synchronous: it runs on every request, and an async hook costs a promise and a tick each time.
    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? '(unmatched)';
      metrics.httpRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
      done();
    });
    if (!token) return;
    const expected = Buffer.from(`Bearer ${token}`);
    app.get('/metrics', {
      schema: { hide: true },
      handler: async (request, reply) => {
        const given = Buffer.from(request.headers.authorization ?? '');
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new AppError('unauthenticated');
        return reply
          .type(metrics.registry.contentType)
          .header('cache-control', 'no-store')
          .send(await metrics.registry.metrics());
      },
    });
  },
  { name: 'metrics' },
);
