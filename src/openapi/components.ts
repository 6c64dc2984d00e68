// The named request and response bodies of the API, built for one surface (openapi/surface.ts):
// the running configuration's, or every configuration's for the committed document. Each is a
// component (its $id is its name), with a description and an example that works as is against
// the default configuration (Swagger UI's "Try it out": register, then log in).
import { type Static, Type, type TSchema } from 'typebox';
import type { ProfileField } from '../config.js';
import { AccessTokenClaims, CLAIMS_EXAMPLE, Email, Name, OpaqueToken, Password, ref, User, USER_EXAMPLE, Username } from '../schemas.js';
import type { ApiSurface, Presence } from './surface.js';

export const EXAMPLE = {
  email: 'ada@example.com',
  username: 'ada',
  firstName: 'Ada',
  lastName: 'Lovelace',
  password: 'correct horse battery staple',
  newPassword: 'a new horse, another staple',
  accessToken: 'eyJhbGciOiJFZERTQSIsImtpZCI6ImRldiJ9.eyJzdWIiOiIwMTkwYTRiMi03YzFlIn0.c2lnbmF0dXJl',
  refreshToken: 'q8ZfYk2vN0bT1sWc9xHj3LmR5pA7eU4iO6gD2yKzVwE',
  emailToken: 'n3Vd8QkP2xLs7RtY1bWc5HjM9aZe4UfG6iO0pKqTyXs',
};

const FIELD_SCHEMAS: Record<ProfileField, TSchema> = { email: Email, username: Username, firstName: Name, lastName: Name };
const FIELD_EXAMPLES: Record<ProfileField, string> = { email: EXAMPLE.email, username: EXAMPLE.username, firstName: EXAMPLE.firstName, lastName: EXAMPLE.lastName };

function fields(required: readonly ProfileField[], optional: readonly ProfileField[]): Record<string, TSchema> {
  const props: Record<string, TSchema> = {};
  for (const f of [...required, ...optional]) props[f] = required.includes(f) ? FIELD_SCHEMAS[f] : Type.Optional(FIELD_SCHEMAS[f]);
  return props;
}

const present = (presence: Presence, schema: TSchema): TSchema | undefined =>
  presence === false ? undefined : presence === true ? schema : Type.Optional(schema);

function tokenProperties(refresh: Presence): Record<string, TSchema> {
  const props: Record<string, TSchema> = {
    token: Type.String({ description: 'The access token: a JWT to send as `Authorization: Bearer <token>`.' }),
    tokenType: Type.Literal('Bearer'),
    expiresIn: Type.Integer({ description: 'Seconds until the access token expires.' }),
    payload: ref(AccessTokenClaims),
  };
  const refreshToken = present(refresh, Type.String({ description: 'The refresh token (opaque, single use: each refresh rotates it).' }));
  const refreshExpiresIn = present(refresh, Type.Integer({ description: 'When the refresh token (and the session) expires, in Unix seconds.' }));
  if (refreshToken && refreshExpiresIn) Object.assign(props, { refreshToken, refreshExpiresIn });
  return props;
}

const REFRESH_NOTE: Record<string, string> = {
  true: '',
  false: ' No refresh token: JWT_LONG_RUNNING_REFRESH_TOKEN is off.',
  depends: ' `refreshToken` and `refreshExpiresIn` are present when refresh tokens are on (JWT_LONG_RUNNING_REFRESH_TOKEN, the default).',
};

function tokenExample(refresh: Presence) {
  return {
    token: EXAMPLE.accessToken,
    tokenType: 'Bearer',
    expiresIn: 300,
    payload: CLAIMS_EXAMPLE,
    ...(refresh === false ? {} : { refreshToken: EXAMPLE.refreshToken, refreshExpiresIn: 1768212000 }),
  };
}

/** Exactly one of the shapes (TypeBox's Union is an anyOf; SDK generators expect oneOf here). */
const oneOf = <T extends TSchema>(shapes: T[], options: { $id: string; description: string; example: unknown }) =>
  Type.Unsafe<Static<T>>({ oneOf: shapes, ...options });

const object = (id: string, props: Record<string, TSchema>, description: string, example: unknown) =>
  Type.Object(props, { $id: id, additionalProperties: false, description, example });

/** Every component of the surface, by name. */
export function buildComponents(s: ApiSurface) {
  const refreshNote = REFRESH_NOTE[String(s.refreshTokens)];
  const userExample = USER_EXAMPLE;

  // Register.
  const passwords = s.registerPasswords === 'required' ? { password1: Password, password2: Password } : { password1: Type.Optional(Password), password2: Type.Optional(Password) };
  const registerFields = [...s.registerRequired, ...s.registerOptional];
  // The example names an email and a username where the surface has them (the default REGISTER_FIELDS).
  const exampleFields = registerFields.filter((f) => s.registerRequired.includes(f) || f === 'email' || f === 'username');
  const RegisterRequest = object(
    'RegisterRequest',
    { ...fields(s.registerRequired, s.registerOptional), ...passwords },
    'A new account: the profile fields of REGISTER_FIELDS and the password twice' +
      (s.registerPasswords === 'optional' ? ' (both may be left out when ALLOW_PASSWORDLESS_REGISTRATION is on).' : '.'),
    { ...Object.fromEntries(exampleFields.map((f) => [f, FIELD_EXAMPLES[f]])), password1: EXAMPLE.password, password2: EXAMPLE.password },
  );
  const RegisterResponseUserOnly = object(
    'RegisterResponseUserOnly',
    { user: ref(User) },
    'The new account, not logged in (unverified accounts may not log in, or it has no password yet).',
    { user: { ...userExample, lastLogin: null } },
  );
  const registeredExample = { user: userExample, ...tokenExample(s.refreshTokens) };
  const RegisterResponseWithTokens = object(
    'RegisterResponseWithTokens',
    { user: ref(User), ...tokenProperties(s.refreshTokens) },
    'The new account, logged in (ALLOW_LOGIN_NOT_VERIFIED, the default, and a password).' + refreshNote,
    registeredExample,
  );
  const registerAlternatives = s.registerTokens === 'depends' ? [RegisterResponseUserOnly, RegisterResponseWithTokens] : [];
  const RegisterResponse =
    s.registerTokens === 'depends'
      ? oneOf([ref(RegisterResponseUserOnly), ref(RegisterResponseWithTokens)], {
          $id: 'RegisterResponse',
          description: 'The new account, and tokens when it is logged in at once: tell them apart by `token`.',
          example: registeredExample,
        })
      : s.registerTokens
        ? { ...RegisterResponseWithTokens, $id: 'RegisterResponse' }
        : { ...RegisterResponseUserOnly, $id: 'RegisterResponse' };

  // Log in. Exactly one identifier: a oneOf of the allowed shapes. (The validator takes the
  // looser loginBody, so that both or neither get the one "give exactly one" error.)
  const loginExample = (field: 'email' | 'username') => ({ [field]: FIELD_EXAMPLES[field], password: EXAMPLE.password });
  const loginShape = (field: 'email' | 'username') =>
    object(
      field === 'email' ? 'LoginWithEmail' : 'LoginWithUsername',
      { [field]: FIELD_SCHEMAS[field], password: Password },
      `Log in by ${field} (case-insensitive).`,
      loginExample(field),
    );
  const loginShapes = s.loginFields.map(loginShape);
  const loginDescription = `The password and exactly one of ${s.loginFields.map((f) => `\`${f}\``).join(', ')} (LOGIN_ALLOWED_FIELDS).`;
  const LoginRequest =
    loginShapes.length === 1
      ? { ...loginShapes[0], $id: 'LoginRequest', description: loginDescription }
      : oneOf(loginShapes.map((shape) => ref(shape)), { $id: 'LoginRequest', description: loginDescription, example: loginExample(s.loginFields[0]) });
  const loginAlternatives = loginShapes.length === 1 ? [] : loginShapes;
  const loginBody = Type.Object({ ...Object.fromEntries(s.loginFields.map((f) => [f, Type.Optional(FIELD_SCHEMAS[f])])), password: Password }, { additionalProperties: false });
  const LoginResponse = object(
    'LoginResponse',
    {
      ...tokenProperties(s.refreshTokens),
      user: ref(User),
      unarchiving: Type.Boolean({ description: 'True when this login un-archived the account.' }),
    },
    'A new session: the access token, its claims, the refresh token, and the account.' + refreshNote,
    { ...tokenExample(s.refreshTokens), user: userExample, unarchiving: false },
  );

  const tokenBody = (id: string, description: string) =>
    object(id, { token: OpaqueToken }, description, { token: EXAMPLE.emailToken });
  const emailBody = (id: string, description: string) => object(id, { email: Email }, description, { email: EXAMPLE.email });
  const redeemBody = (id: string, description: string) =>
    object(id, { token: OpaqueToken, newPassword1: Password, newPassword2: Password }, description, {
      token: EXAMPLE.emailToken,
      newPassword1: EXAMPLE.newPassword,
      newPassword2: EXAMPLE.newPassword,
    });
  const refreshBody = (id: string, description: string) => object(id, { refreshToken: OpaqueToken }, description, { refreshToken: EXAMPLE.refreshToken });
  const confirmBody = (id: string, description: string) => object(id, { password: Password }, description, { password: EXAMPLE.password });
  const userAnswer = (id: string, description: string) => object(id, { user: ref(User) }, description, { user: userExample });
  const updateExample = Object.fromEntries(s.updateFields.filter((f) => f !== 'email' && f !== 'username').map((f) => [f, FIELD_EXAMPLES[f]]));

  const components = {
    RegisterRequest,
    RegisterResponse,
    VerifyAccountRequest: tokenBody('VerifyAccountRequest', 'The token of an activation email (the {token} of ACTIVATION_URL).'),
    ResendActivationEmailRequest: emailBody('ResendActivationEmailRequest', 'The address to send a new activation link to.'),
    LoginRequest,
    LoginResponse,
    MeResponse: userAnswer('MeResponse', 'The account of the access token.'),
    ArchiveAccountRequest: confirmBody('ArchiveAccountRequest', 'The current password, to confirm.'),
    DeleteAccountRequest: confirmBody('DeleteAccountRequest', 'The current password, to confirm.'),
    UpdateAccountRequest: object(
      'UpdateAccountRequest',
      {
        ...fields([], s.updateFields),
        ...(s.updateFields.includes('email')
          ? { password: Type.Optional(Type.String({ minLength: 1, description: 'The current password: required with `email`.' })) }
          : {}),
      },
      `Any subset of ${s.updateFields.map((f) => `\`${f}\``).join(', ')} (UPDATE_FIELDS); fields left out stay as they are.`,
      Object.keys(updateExample).length
        ? updateExample
        : { [s.updateFields[0]]: FIELD_EXAMPLES[s.updateFields[0]], ...(s.updateFields[0] === 'email' ? { password: EXAMPLE.password } : {}) },
    ),
    UpdateAccountResponse: userAnswer('UpdateAccountResponse', 'The account as updated.'),
    ConfirmEmailChangeRequest: tokenBody('ConfirmEmailChangeRequest', 'The token of an email-change confirmation (the {token} of EMAIL_CHANGE_URL).'),
    VerifyTokenRequest: object(
      'VerifyTokenRequest',
      { token: Type.String({ description: 'An access token.' }) },
      'An access token to check (not a refresh token).',
      { token: EXAMPLE.accessToken },
    ),
    VerifyTokenResponse: object('VerifyTokenResponse', { payload: ref(AccessTokenClaims) }, 'The claims of a valid access token whose session is alive.', {
      payload: CLAIMS_EXAMPLE,
    }),
    RefreshRequest: refreshBody('RefreshRequest', 'The refresh token of the last login or refresh.'),
    RefreshResponse: object('RefreshResponse', tokenProperties(true), 'A new access token and the next refresh token (the one sent is spent).', tokenExample(true)),
    RevokeRequest: refreshBody('RevokeRequest', 'A refresh token of the session to end.'),
    RevokeResponse: object('RevokeResponse', { revoked: Type.Integer({ description: 'Unix seconds of the revocation.' }) }, 'The session has ended.', {
      revoked: 1767607800,
    }),
    SendPasswordResetEmailRequest: emailBody('SendPasswordResetEmailRequest', 'The address to send a password reset link to.'),
    PasswordResetRequest: redeemBody('PasswordResetRequest', 'The token of a password reset email and the new password twice.'),
    PasswordSetRequest: redeemBody('PasswordSetRequest', 'The token of a password-set email and the first password twice.'),
    PasswordChangeRequest: object(
      'PasswordChangeRequest',
      { oldPassword: Password, newPassword1: Password, newPassword2: Password },
      'The current password and the new one twice.',
      { oldPassword: EXAMPLE.password, newPassword1: EXAMPLE.newPassword, newPassword2: EXAMPLE.newPassword },
    ),
    PasswordChangeResponse: object(
      'PasswordChangeResponse',
      { ...tokenProperties(s.refreshTokens), user: ref(User) },
      'A fresh session (every other one has ended) and the account.' + refreshNote,
      { ...tokenExample(s.refreshTokens), user: userExample },
    ),
    JwkSet: Type.Object(
      {
        keys: Type.Array(
          Type.Object(
            {
              kty: Type.String({ description: 'OKP (EdDSA), EC (ES256) or RSA (RS256).' }),
              kid: Type.String(),
              alg: Type.String(),
              use: Type.Literal('sig'),
            },
            { additionalProperties: Type.String(), description: 'A public JWK; its other members depend on the key type (crv, x, y, n, e).' },
          ),
        ),
      },
      {
        $id: 'JwkSet',
        additionalProperties: false,
        description: 'The public keys that verify access tokens (RFC 7517). Empty under HS256.',
        example: { keys: [{ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', kid: 'dev', alg: 'EdDSA', use: 'sig' }] },
      },
    ),
    HealthResponse: object('HealthResponse', { status: Type.Literal('ok') }, 'The service and its database answer.', { status: 'ok' }),
  };
  return {
    ...components,
    /** The surface these components document (routes read its throttles). */
    surface: s,
    /** The body the login route validates (see LoginRequest). */
    loginBody,
    /** Everything to app.addSchema, the alternatives of the unions first. */
    all: [...registerAlternatives, ...loginAlternatives, ...Object.values(components)],
  };
}

export type Components = ReturnType<typeof buildComponents>;
