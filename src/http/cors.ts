// CORS for browser front ends on other origins. Exact origins only (CORS_ORIGINS; by default
// FRONTEND_URL's origin and this service's own), never credentials: tokens travel in the
// Authorization header, not in cookies, so no browser ever sends them on its own. Registered
// before every other hook, so that error answers (401, 429, 503) carry the CORS headers too and a
// front end can read their problem documents.
import fastifyCors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

/** Headers a front end needs to read: throttling, the Bearer challenge, the request id. */
export const EXPOSED_HEADERS = [
  'Retry-After',
  'RateLimit',
  'RateLimit-Policy',
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'X-RateLimit-Limit',
  'X-RateLimit-Remaining',
  'X-RateLimit-Reset',
  'WWW-Authenticate',
  'X-Request-Id',
  'Location',
];

export const corsPlugin = fp(
  async (app: FastifyInstance, options: { origins: string[] }) => {
    await app.register(fastifyCors, {
      origin: options.origins[0] === '*' ? '*' : options.origins,
      credentials: false,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      // Requested headers are allowed as asked (Authorization, Content-Type, traceparent, …): the
      // origin list is the gate, and no credentials are ever involved.
      exposedHeaders: EXPOSED_HEADERS,
      maxAge: 600, // browsers cache a preflight for ten minutes (Chromium caps it at two hours)
      // A bare OPTIONS (no Access-Control-Request-Method) is answered 204 with Allow-less headers
      // instead of @fastify/cors's plain-text 400.
      strictPreflight: false,
      hideOptionsRoute: true,
    });
  },
  { name: 'cors' },
);
