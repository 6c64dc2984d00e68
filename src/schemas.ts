// Shared TypeBox shapes. Each serves at once as request validation, as the response serializer's
// allowlist (a column that is not listed here can never reach a client: no hash can leak) and as
// an OpenAPI component (named by its $id, see app.ts).
import { Type, type Static, type TSchema } from 'typebox';

/** A reference to a registered shared schema that keeps its static type. */
export const ref = <T extends TSchema>(schema: T & { $id?: string }) => Type.Unsafe<Static<T>>(Type.Ref(schema.$id!));

export const User = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    email: Type.Union([Type.String(), Type.Null()]),
    username: Type.Union([Type.String(), Type.Null()]),
    firstName: Type.String(),
    lastName: Type.String(),
    verified: Type.Boolean(),
    archived: Type.Boolean(),
    isActive: Type.Boolean(),
    hasPassword: Type.Boolean(),
    dateJoined: Type.String({ format: 'date-time' }),
    lastLogin: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { $id: 'User', additionalProperties: false },
);
export type UserOut = Static<typeof User>;

const tokenFields = {
  token: Type.String({ description: 'The access token (a JWT).' }),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer({ description: 'Seconds until the access token expires.' }),
  payload: Type.Record(Type.String(), Type.Unknown(), { description: "The access token's claims." }),
  refreshToken: Type.Optional(Type.String({ description: 'Present when refresh tokens are on.' })),
  refreshExpiresIn: Type.Optional(Type.Integer({ description: 'Unix seconds when the refresh token expires.' })),
};

export const TokenOutput = Type.Object(
  {
    ...tokenFields,
    user: Type.Optional(ref(User)),
    unarchiving: Type.Optional(Type.Boolean({ description: 'True when this login un-archived the account.' })),
  },
  { $id: 'TokenOutput', additionalProperties: false },
);
export type TokenOut = Static<typeof TokenOutput>;

export const RegisterOutput = Type.Object(
  {
    user: ref(User),
    token: Type.Optional(tokenFields.token),
    tokenType: Type.Optional(tokenFields.tokenType),
    expiresIn: Type.Optional(tokenFields.expiresIn),
    payload: Type.Optional(tokenFields.payload),
    refreshToken: tokenFields.refreshToken,
    refreshExpiresIn: tokenFields.refreshExpiresIn,
  },
  {
    $id: 'RegisterOutput',
    additionalProperties: false,
    description: 'The user; with the token fields when ALLOW_LOGIN_NOT_VERIFIED is on and the account has a password.',
  },
);

const FieldError = Type.Object({ message: Type.String(), code: Type.String() }, { additionalProperties: false });

export const Problem = Type.Object(
  {
    type: Type.String({ format: 'uri' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable, snake_case error code.' }),
    errors: Type.Optional(
      Type.Record(Type.String(), Type.Array(FieldError), {
        description: 'Errors per request field (camelCase); nonFieldErrors holds the rest.',
      }),
    ),
    requestId: Type.String(),
  },
  { $id: 'Problem', description: 'An RFC 9457 problem document.' },
);

export const Accepted = Type.Object(
  { detail: Type.String() },
  { $id: 'Accepted', additionalProperties: false, description: 'The same answer whatever the address, so it tells nothing about accounts.' },
);

export const sharedSchemas = [User, TokenOutput, RegisterOutput, Problem, Accepted];

// Field shapes, with Django's limits.
export const Email = Type.String({ format: 'email', maxLength: 254, description: 'An email address.' });
export const Username = Type.String({
  minLength: 1,
  maxLength: 150,
  pattern: '^[\\p{L}\\p{N}@.+\\-_]+$',
  description: '1–150 letters, digits and @.+-_',
});
// PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
export const Name = Type.String({ maxLength: 150, pattern: '^[^\\u0000]*$' });
// No maxLength here: an over-long password is a password rule error (password_too_long),
// refused before hashing; the body limit bounds it first.
export const Password = Type.String({ minLength: 1 });
export const OpaqueToken = Type.String({ minLength: 1, maxLength: 512 });

const STATUS_TEXT: Record<number, string> = {
  400: 'Invalid request, token or password (see `code` and `errors`).',
  401: 'Not authenticated, or invalid credentials.',
  403: 'The account must be verified first.',
  404: 'Not found.',
  409: 'Conflicts with the state of an account.',
  413: 'The body is too large.',
  415: 'The body is not JSON.',
  429: 'Too many requests; see Retry-After.',
  503: 'The service or its database is unavailable.',
};

/**
 * Problem responses for the given statuses, for a route's `response` schema. Declaring them lets
 * the OpenAPI document list them and keeps the serializer from stripping `code` and `errors`.
 */
export function problems(...statuses: number[]) {
  const response = (status: number) => ({
    description: STATUS_TEXT[status],
    content: { 'application/problem+json': { schema: ref(Problem) } },
  });
  return Object.fromEntries(statuses.map((s) => [s, response(s)]));
}
