// Security headers on every answer, by @fastify/helmet (the Fastify team's plugin over helmet):
// X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer, X-Frame-Options: DENY,
// Cross-Origin-Opener-Policy / -Resource-Policy, Strict-Transport-Security (ignored by browsers
// over plain HTTP), and a Content-Security-Policy. The API answers JSON that no browser should
// ever render or frame: `default-src 'none'; frame-ancestors 'none'` (OWASP's REST advice). Swagger
// UI (/docs) is an HTML page: its own policy allows what it loads — its scripts, styles, fonts
// and images from this origin only, the OpenAPI document by fetch — and still refuses framing.
import fastifyHelmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';

export const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

// No inline script and no eval: Swagger UI 5 loads every script from a file (its csp.json lists no
// inline hashes). Its React code applies an inline style, so styles, not scripts, allow
// 'unsafe-inline' (helmet's own default does the same). No upgrade-insecure-requests, which would
// break /docs served over plain HTTP.
export const DOCS_CSP = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  "style-src 'self' 'unsafe-inline'",
].join('; ');

export async function securityHeaders(app: FastifyInstance): Promise<void> {
  await app.register(fastifyHelmet, {
    global: true,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
  });
}

/** @fastify/swagger-ui's option that replaces the policy on its own routes. */
export const swaggerUiCsp = { staticCSP: DOCS_CSP };
