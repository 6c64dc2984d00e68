// HTTP for services/signing-keys.ts: /admin/keys (list) and /admin/keys/rotate.
import { Type } from 'typebox';
import { BODY_ERRORS, problems, success } from '../../openapi/responses.js';
import { ref } from '../../schemas.js';
import type { Context } from '../../services/context.js';
import { listSigningKeys, rotateSigningKeys } from '../../services/signing-keys.js';
import type { App } from '../types.js';
import { adminLimits, adminSecurity } from './auth.js';

const date = Type.String({ format: 'date-time' });
const EXAMPLE_KEY = {
  kid: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
  algorithm: 'EdDSA',
  status: 'current',
  published: true,
  createdAt: '2026-01-05T10:00:00.000Z',
  activatedAt: '2026-01-05T10:00:00.000Z',
  retiredAt: null,
  publishedUntil: null,
};
const SigningKey = Type.Object(
  {
    kid: Type.String({ description: 'The RFC 7638 thumbprint of the public key, as in the JWKS and token headers.' }),
    algorithm: Type.String(),
    status: Type.Union([Type.Literal('current'), Type.Literal('next'), Type.Literal('retired')], {
      description: 'current signs; next is published and signs nothing yet; retired verifies until its tokens have expired.',
    }),
    published: Type.Boolean({ description: 'In the JWKS now.' }),
    createdAt: date,
    activatedAt: Type.Union([date, Type.Null()]),
    retiredAt: Type.Union([date, Type.Null()]),
    publishedUntil: Type.Union([date, Type.Null()], { description: 'Retired keys: when the key leaves the JWKS.' }),
  },
  {
    $id: 'AdminSigningKey',
    additionalProperties: false,
    description: 'A signing key, without any key material.',
    example: EXAMPLE_KEY,
  },
);
const KeyList = Type.Object(
  {
    source: Type.Union([Type.Literal('database'), Type.Literal('environment'), Type.Literal('secret')], {
      description: 'Where the keys live: the database (rotatable), JWT_PRIVATE_KEY, or the HS256 JWT_SECRET (then `keys` is empty).',
    }),
    keys: Type.Array(ref(SigningKey)),
  },
  {
    $id: 'AdminSigningKeysResponse',
    additionalProperties: false,
    description: 'The signing keys: current first, then next, then retired.',
    example: { source: 'database', keys: [EXAMPLE_KEY] },
  },
);
const AdminRotateSigningKeysRequest = Type.Object(
  { force: Type.Optional(Type.Boolean({ description: 'Rotate even if the next key was published less than 300 s ago (a suspected leak).' })) },
  { $id: 'AdminRotateSigningKeysRequest', additionalProperties: false, description: 'Optional: `force`.', example: { force: false } },
);
/** The named shapes of this module (app.ts registers them when the admin API is on). */
export const adminKeySchemas = [SigningKey, KeyList, AdminRotateSigningKeysRequest];

export function adminKeyRoutes(app: App, ctx: Context): void {
  const tags = ['Admin'];
  const security = adminSecurity;
  const { common, rateLimited } = adminLimits(ctx.config);
  const keyList = success(ref(KeyList), 'The signing keys.', { rateLimited });

  app.get('/keys', {
    schema: {
      tags,
      security,
      operationId: 'adminListSigningKeys',
      summary: 'List the access-token signing keys',
      description: 'Current first, then next, then retired keys, newest first. No key material.',
      response: { 200: keyList, ...problems(...common) },
    },
    handler: () => listSigningKeys(ctx),
  });

  app.post('/keys/rotate', {
    schema: {
      tags,
      security,
      operationId: 'adminRotateSigningKeys',
      summary: 'Rotate the signing keys without logging anyone out',
      description:
        'Promotes the next key (already published) to current, retires the current key (still published and verifying ' +
        'until every token it signed has expired) and publishes a new next key. Every instance follows within ' +
        'JWT_KEYS_RELOAD_INTERVAL, and at once on a token of the new key. `key_rotation_too_soon` (409) while the next key ' +
        'has been published for less than the JWKS cache lifetime (300 s), unless `force`; `key_rotation_unavailable` (409) ' +
        'when the keys come from JWT_PRIVATE_KEY or JWT_SECRET.',
      body: Type.Optional(ref(AdminRotateSigningKeysRequest)),
      response: { 200: keyList, ...problems(...BODY_ERRORS, 'key_rotation_too_soon', 'key_rotation_unavailable', ...common) },
    },
    handler: (request) => rotateSigningKeys({ ...ctx, ring: ctx.keys }, { force: request.body?.force === true }),
  });
}
