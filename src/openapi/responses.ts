// The OpenAPI conventions every route follows (README "OpenAPI conventions"):
// - success(schema, description): a named body, a description, and the headers it carries;
// - problems(...codes): the error codes the operation can answer, grouped by their status, each
//   status with a Problem whose `code` is narrowed to those codes; 500 and 503 always;
// - security: bearerSecurity or publicSecurity on every operation, never left to a default.
// Declaring error statuses also keeps Fastify's serializer from stripping `code` and `errors`.
import type { SwaggerTransform } from '@fastify/swagger';
import { Type, type TSchema } from 'typebox';
import { ERRORS, type ErrorCode } from '../errors.js';
import { Problem, ref } from '../schemas.js';

/** `security` of an operation anyone may call (no credentials). */
export const publicSecurity: Array<Record<string, string[]>> = [];
/** `security` of an operation that needs an access token. */
export const bearerSecurity = [{ bearerAuth: [] }];

// Response headers. The names are the ones the service sends (checked by test/client.test.ts on a
// real 429); CORS exposes them to browsers.
const seconds = (description: string) => ({ type: 'integer', minimum: 0, description });
export const RATE_LIMIT_HEADERS = {
  'RateLimit-Limit': seconds('Requests allowed per window for this client on this route.'),
  'RateLimit-Remaining': seconds('Requests left in the current window.'),
  'RateLimit-Reset': seconds('Seconds until the window resets.'),
};
const RETRY_AFTER = { 'Retry-After': seconds('Seconds to wait before trying again.') };
const WWW_AUTHENTICATE = {
  'WWW-Authenticate': {
    type: 'string',
    description: 'The Bearer challenge (RFC 6750): `Bearer` without a token, `Bearer error="invalid_token"` with a bad one.',
  },
};

/** Errors any route with a JSON body can answer. */
export const BODY_ERRORS = ['validation_failed', 'payload_too_large', 'unsupported_media_type'] as const satisfies readonly ErrorCode[];

const STATUS_TEXT: Record<number, string> = {
  400: 'The request, a token or a password is not valid (see `code` and `errors`).',
  401: 'Not authenticated, or the credentials are not valid.',
  403: 'The account must be verified first.',
  404: 'Not found.',
  409: 'Conflicts with the state of an account.',
  413: 'The body is too large.',
  415: 'The body is not JSON, or not in UTF-8 (a charset other than utf-8).',
  429: 'Too many requests: wait `Retry-After` seconds (also `retryAfter` in the body).',
  500: 'An unexpected error on the service side; nothing about it is revealed.',
  503: 'The service or its database is unavailable, or it is shutting down: try again later (`Retry-After` when known).',
};

export interface SuccessOptions {
  /** The route is throttled (routes/limits.ts): its answers carry the rate-limit headers. */
  rateLimited?: boolean;
  headers?: Record<string, unknown>;
}

/** A success response: a described JSON body (a named component, see openapi/components.ts). */
export function success(schema: TSchema, description: string, options: SuccessOptions = {}) {
  const headers = { ...(options.rateLimited ? RATE_LIMIT_HEADERS : {}), ...options.headers };
  return {
    description,
    ...(Object.keys(headers).length ? { headers } : {}),
    content: { 'application/json': { schema } },
  };
}

/** A success response without a body (204). */
export function noContent(description: string, options: SuccessOptions = {}) {
  const headers = { ...(options.rateLimited ? RATE_LIMIT_HEADERS : {}), ...options.headers };
  return Type.Null({ description, ...(Object.keys(headers).length ? { headers } : {}) });
}

/**
 * The problem responses of an operation: one per status of the given codes (src/errors.ts),
 * with `code` narrowed to the codes of that status; internal_error (500) and
 * service_unavailable (503) are added to every operation.
 */
export function problems(...codes: ErrorCode[]) {
  return problemResponses(codes, true);
}

/** What a route's limits allow it to answer (routes/limits.ts documentedLimits). */
export interface RouteLimits {
  /** Its per-client limit is on: every answer carries the RateLimit-* headers. */
  rateLimited: boolean;
  /** Some limit can refuse it (per client, or the per-account count of password checks): 429. */
  canRefuse: boolean;
}

/** problems(), with `rate_limited` (429) only when the route's limits can answer it. */
export function limitedProblems(limits: RouteLimits, ...codes: ErrorCode[]) {
  return problemResponses(limits.canRefuse ? [...codes, 'rate_limited'] : codes, limits.rateLimited);
}

function problemResponses(codes: ErrorCode[], rateLimitHeaders: boolean) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set<ErrorCode>([...codes, 'internal_error', 'service_unavailable'])) {
    const { status } = ERRORS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<number, unknown> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    const headers = {
      ...(status === 429 ? { ...RETRY_AFTER, ...(rateLimitHeaders ? RATE_LIMIT_HEADERS : {}) } : {}),
      ...(status === 503 ? RETRY_AFTER : {}),
      ...(list.includes('unauthenticated') ? WWW_AUTHENTICATE : {}),
    };
    const codeList = list.map((c) => `\`${c}\``).join(', ');
    responses[status] = {
      description: `${STATUS_TEXT[status] ?? ERRORS[list[0]].title} Codes: ${codeList}.`,
      ...(Object.keys(headers).length ? { headers } : {}),
      content: {
        'application/problem+json': {
          schema: Type.Intersect([ref(Problem), Type.Object({ code: Type.Enum(list) })]),
        },
      },
    };
  }
  return responses;
}

/**
 * Route option `config.swaggerTransform` for a route whose document shows a more precise body than
 * the one it validates (the login's oneOf: the validator's looser shape gives a better error).
 */
export function documentBodyAs(body: TSchema): SwaggerTransform {
  return ({ schema, url }) => ({ schema: { ...schema, body }, url });
}
