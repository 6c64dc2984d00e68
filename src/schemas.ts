// Shared TypeBox shapes. Each serves at once as request validation, as the response serializer's
// allowlist (a column that is not listed here can never reach a client: no hash can leak) and as
// an OpenAPI component (named by its $id, see app.ts).
import { Type, type Static, type TSchema } from 'typebox';
import { ERRORS, type ErrorCode } from './errors.js';

/** A reference to a registered shared schema that keeps its static type. */
export const ref = <T extends TSchema>(schema: T & { $id?: string }) => Type.Unsafe<Static<T>>(Type.Ref(schema.$id!));
/** A reference to a registered schema built at run time (its static type given by the caller). */
export const refAs = <T>(schema: TSchema & { $id?: string }) => Type.Unsafe<T>(Type.Ref(schema.$id!));

const EXAMPLE_ID = '0190a4b2-7c1e-7f3a-9b2d-4e5f6a7b8c9d';

/** The examples of the documented shapes (Swagger UI shows them). */
export const USER_EXAMPLE = {
  id: EXAMPLE_ID,
  email: 'ada@example.com',
  username: 'ada',
  firstName: '',
  lastName: '',
  verified: false,
  archived: false,
  isActive: true,
  hasPassword: true,
  dateJoined: '2026-01-05T10:00:00.000Z',
  lastLogin: '2026-01-05T10:00:00.000Z',
};

export const CLAIMS_EXAMPLE = {
  sub: EXAMPLE_ID,
  sid: '0190a4b2-7c1e-7f3a-9b2d-000000000001',
  jti: '0190a4b2-7c1e-7f3a-9b2d-000000000002',
  iat: 1767607200,
  exp: 1767607500,
  origIat: 1767607200,
  username: 'ada',
  email: 'ada@example.com',
};

export const User = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    email: Type.Union([Type.String(), Type.Null()], { description: 'Null when the account was registered without one.' }),
    username: Type.Union([Type.String(), Type.Null()], { description: 'Null when the account was registered without one.' }),
    firstName: Type.String(),
    lastName: Type.String(),
    verified: Type.Boolean({ description: 'The email address is proven (activation link, or a password reset/set link).' }),
    archived: Type.Boolean({ description: "Archived by its owner; the owner's next successful login un-archives it." }),
    isActive: Type.Boolean({ description: 'False once deactivated (delete-account with ALLOW_DELETE_ACCOUNT=false).' }),
    hasPassword: Type.Boolean({ description: 'False for a passwordless account until password-set.' }),
    dateJoined: Type.String({ format: 'date-time' }),
    lastLogin: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  {
    $id: 'User',
    additionalProperties: false,
    description: 'An account, as clients see it (never a hash or a token).',
    example: USER_EXAMPLE,
  },
);
export type UserOut = Static<typeof User>;

export const AccessTokenClaims = Type.Object(
  {
    sub: Type.String({ format: 'uuid', description: "The account's id." }),
    sid: Type.String({ format: 'uuid', description: "The session's id: ending the session kills the token." }),
    jti: Type.String({ format: 'uuid', description: "The token's own id." }),
    iat: Type.Integer({ description: 'Issued at (Unix seconds).' }),
    exp: Type.Integer({ description: 'Expires at (Unix seconds).' }),
    origIat: Type.Integer({ description: 'When the session started: the login (Unix seconds).' }),
    username: Type.Union([Type.String(), Type.Null()]),
    email: Type.Union([Type.String(), Type.Null()]),
    iss: Type.Optional(Type.String({ description: 'JWT_ISSUER, when configured.' })),
    aud: Type.Optional(Type.String({ description: 'JWT_AUDIENCE, when configured.' })),
  },
  {
    $id: 'AccessTokenClaims',
    additionalProperties: false,
    description: "The claims of an access token (its JWT payload), as the service signed them.",
    example: CLAIMS_EXAMPLE,
  },
);
export type AccessTokenClaimsOut = Static<typeof AccessTokenClaims>;

/** What a login, a refresh or a password change hands out (services/sessions.ts). */
export interface Tokens {
  token: string;
  tokenType: 'Bearer';
  expiresIn: number;
  payload: AccessTokenClaimsOut;
  refreshToken?: string;
  refreshExpiresIn?: number;
}
export type TokenOut = Tokens & { user?: UserOut; unarchiving?: boolean };

const FieldError = Type.Object(
  { message: Type.String(), code: Type.String({ description: 'A field-level code: required, invalid, max_length, password_too_short, …' }) },
  { additionalProperties: false },
);

export const Problem = Type.Object(
  {
    type: Type.String({ format: 'uri', description: 'A URI naming the problem: `<PUBLIC_URL>/problems/<code>`.' }),
    title: Type.String({ description: "The code's title; the same for every occurrence." }),
    status: Type.Integer({ description: 'The HTTP status.' }),
    detail: Type.String({ description: 'What went wrong, for a human.' }),
    code: Type.Enum(Object.keys(ERRORS) as ErrorCode[], { description: 'Stable, snake_case error code: branch on this.' }),
    errors: Type.Optional(
      Type.Record(Type.String(), Type.Array(FieldError), {
        description: 'Errors per request field (camelCase); nonFieldErrors holds the rest.',
      }),
    ),
    retryAfter: Type.Optional(Type.Integer({ minimum: 0, description: 'Seconds to wait before trying again (with `rate_limited`, as the Retry-After header).' })),
    requestId: Type.String({ description: 'The id of the request in the service log.' }),
  },
  {
    $id: 'Problem',
    description: 'An RFC 9457 problem document: every error answer, as application/problem+json.',
    example: {
      type: 'http://localhost:3000/problems/invalid_credentials',
      title: 'Invalid credentials',
      status: 401,
      detail: 'Please, enter valid credentials.',
      code: 'invalid_credentials',
      requestId: '5b2f7c3e-8d1a-4e6b-9f0c-1a2b3c4d5e6f',
    },
  },
);

export const Accepted = Type.Object(
  { detail: Type.String() },
  {
    $id: 'Accepted',
    additionalProperties: false,
    description: 'The same answer whatever the address, so it tells nothing about accounts.',
    example: { detail: 'If this address has an account, an email is on its way.' },
  },
);

/** The shapes every configuration shares; openapi/components.ts adds the configuration's own. */
export const sharedSchemas = [User, AccessTokenClaims, Problem, Accepted];

// Field shapes, with Django's limits.
export const Email = Type.String({
  format: 'email',
  maxLength: 254,
  description: 'An email address within RFC 5321 §4.5.3.1: a local part of at most 64 characters, domain labels of at most 63.',
});
// Letters include invisible ones (U+3164 HANGUL FILLER is a letter, Lo): default-ignorable code
// points are refused outright, so that `eve` and `eve` + U+3164 are not two names.
export const Username = Type.String({
  minLength: 1,
  maxLength: 150,
  pattern: '^(?!.*\\p{Default_Ignorable_Code_Point})[\\p{L}\\p{N}@.+\\-_]+$',
  description:
    '1–150 letters, digits and @.+-_; no default-ignorable (invisible) code points. Unique case-insensitively and by ' +
    'UTS #39 confusable skeleton: a name that looks like a taken one (Cyrillic `е` for Latin `e`) is 409 `unique`.',
});
// PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
export const Name = Type.String({ maxLength: 150, pattern: '^[^\\u0000]*$' });
// No maxLength here: an over-long password is a password rule error (password_too_long),
// refused before hashing; the body limit bounds it first.
export const Password = Type.String({ minLength: 1 });
export const OpaqueToken = Type.String({ minLength: 1, maxLength: 512 });
