// Security headers on every answer, as helmet computes them: X-Content-Type-Options: nosniff,
// Referrer-Policy: no-referrer, X-Frame-Options: DENY, Cross-Origin-Opener-Policy / -Resource-Policy,
// Strict-Transport-Security (ignored by browsers over plain HTTP), and a Content-Security-Policy.
// The API answers JSON that no browser should ever render or frame: `default-src 'none';
// frame-ancestors 'none'` (OWASP's REST advice). Swagger UI (/docs) is an HTML page: its own policy
// allows what it loads — its scripts, styles, fonts and images from this origin only, the OpenAPI
// document by fetch — and still refuses framing.
//
// The headers do not depend on the request, so helmet runs once, at start, and every answer gets
// the same set from one synchronous hook. (@fastify/helmet, used before, builds helmet's whole
// middleware from its options again on every request, in two hooks one of which is async: 4-5 %
// of a bearer check's CPU in a profile.)
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';

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

const OPTIONS: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] },
  },
  frameguard: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
};

/** The headers helmet sets with these options (none of which looks at the request). */
export function helmetHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader: (name: string, value: unknown) => void (headers[name.toLowerCase()] = String(value)),
    removeHeader: (name: string) => void delete headers[name.toLowerCase()],
  };
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err;
  });
  return headers;
}

export async function securityHeaders(app: FastifyInstance): Promise<void> {
  const headers = helmetHeaders(OPTIONS);
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(headers);
    done();
  });
}

/** @fastify/swagger-ui's option that replaces the policy on its own routes. */
export const swaggerUiCsp = { staticCSP: DOCS_CSP };
