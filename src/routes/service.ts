// The service's own endpoints: a pointer from / to the docs, the probes, the OpenAPI document.
// - /health/live: the process answers (restart it when this fails);
// - /health/ready: the database answers, has every migration of this build, and the instance is
//   not shutting down (take it out of rotation when this fails); /health is the same as ready.
import type { Config } from '../config.js';
import type { Database } from '../db/index.js';
import { AppError } from '../errors.js';
import type { Components } from '../openapi/components.js';
import { problems, publicSecurity, success } from '../openapi/responses.js';
import { ref } from '../schemas.js';
import type { App } from './types.js';

export function serviceRoutes(app: App, config: Readonly<Config>, database: Database, api: Components): void {
  const tags = ['Service'];
  // PUBLIC_URL's path: behind a proxy that serves this service under /auth, the links say /auth/docs.
  const base = new URL(config.publicUrl).pathname.replace(/\/$/, '');

  // A pointer, not an API operation: kept out of the OpenAPI document.
  app.get('/', {
    schema: { hide: true },
    handler: async (request, reply) => {
      if (/\btext\/html\b/.test(request.headers.accept ?? '')) return reply.redirect(`${base}/docs`, 302);
      return { name: 'Auth service', docs: `${base}/docs`, openapi: `${base}/openapi.json`, health: `${base}/health` };
    },
  });

  const readiness = async () => {
    let state;
    try {
      state = await database.ready();
    } catch (cause) {
      const exhausted = (cause as { code?: unknown })?.code === 'POOL_EXHAUSTED';
      throw new AppError('service_unavailable', { detail: exhausted ? 'The database connection pool is exhausted.' : 'The database does not answer.', cause });
    }
    if (state === 'migrations_pending') {
      throw new AppError('service_unavailable', { detail: 'The database lacks migrations of this version.' });
    }
    return { status: 'ok' as const };
  };
  for (const url of ['/health', '/health/ready']) {
    app.get(url, {
      schema: {
        tags,
        operationId: url === '/health' ? 'health' : 'healthReady',
        summary: url === '/health' ? 'Readiness (the same as /health/ready)' : 'Readiness: ready to serve traffic',
        description:
          '200 when the database answers and has every migration of this version; 503 otherwise, and while shutting down.',
        security: publicSecurity,
        response: { 200: success(ref(api.HealthResponse), 'Ready: the database answers and is migrated.'), ...problems('service_unavailable') },
      },
      handler: readiness,
    });
  }
  app.get('/health/live', {
    schema: {
      tags,
      operationId: 'healthLive',
      summary: 'Liveness: the process answers',
      description: 'Always 200 while the process serves requests; it does not touch the database (503 only while shutting down).',
      security: publicSecurity,
      response: { 200: success(ref(api.HealthResponse), 'The process answers.'), ...problems('service_unavailable') },
    },
    handler: async () => ({ status: 'ok' as const }),
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
