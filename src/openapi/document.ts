// The OpenAPI document's frame: info, servers, tags, security schemes. The operations come from
// the routes' schemas (see responses.ts for the conventions they follow).
import type { SwaggerOptions } from '@fastify/swagger';
import { ADMIN_SECURITY_SCHEME } from '../routes/admin/auth.js';

/**
 * The contract's version. The major number must change with any breaking change to the committed
 * document (scripts/openapi-diff.ts checks it against openapi/baseline.json in CI).
 */
export const API_VERSION = '2.0.0';

/** Every tag an operation may use, with its description (Redocly refuses an undeclared tag). */
export const TAGS = [
  { name: 'Account', description: 'Registration, email verification, the current account, archive, delete and update.' },
  { name: 'Token', description: 'Log in, check an access token, refresh and revoke; the public signing keys (JWKS).' },
  { name: 'Password', description: 'Password reset and set by email link, and password change.' },
  { name: 'Session', description: "The account's live sessions: list them, end one, end the others or all." },
  { name: 'Service', description: 'Health of the service.' },
];
const ADMIN_TAG = { name: 'Admin', description: 'Operator access with an ADMIN_API_KEYS key; absent when it is unset.' };

/** `admin`: the admin API is on (ADMIN_API_KEYS), so its tag and security scheme are listed. */
export function swaggerOptions({ admin }: { admin: boolean }): SwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Auth service',
        version: API_VERSION,
        description:
          "django-graphql-auth's account mixins as a REST API: registration, email verification, password reset, " +
          'JWT login with rotating refresh tokens. Errors are RFC 9457 problem documents whose `code` is stable. ' +
          'The committed openapi/openapi.json describes every configuration (a field that a setting decides is optional ' +
          "there); a running service's /openapi.json describes its own configuration.",
        license: { name: 'MIT', identifier: 'MIT' },
        contact: { name: 'Auth service maintainers' },
      },
      // Relative: the operations are at the root of wherever the document was fetched from, so
      // Swagger UI's "Try it out" works from localhost, 127.0.0.1 or a public host alike.
      servers: [{ url: '/', description: 'This service (the host that served this document)' }],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token from POST /token (or `JWT <token>`).' },
          ...(admin ? ADMIN_SECURITY_SCHEME : {}),
        },
      },
      tags: admin ? [...TAGS, ADMIN_TAG] : TAGS,
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  };
}
