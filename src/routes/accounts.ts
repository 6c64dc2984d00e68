// HTTP for services/accounts.ts: register, verify-account, resend-activation-email, token (login),
// me, archive-account, delete-account, update-account.
import { Type, type TSchema } from 'typebox';
import type { ProfileField } from '../config.js';
import { Accepted, Email, Name, OpaqueToken, Password, problems, ref, RegisterOutput, TokenOutput, User, Username } from '../schemas.js';
import * as accounts from '../services/accounts.js';
import type { Context } from '../services/context.js';
import { toUserOut } from '../services/users.js';
import { fromValidation } from '../validation.js';
import { bearer, bearerSecurity, userOf } from './bearer.js';
import { limited } from './limits.js';
import type { App } from './types.js';

const FIELD_SCHEMAS: Record<ProfileField, TSchema> = { email: Email, username: Username, firstName: Name, lastName: Name };
const pick = (fields: readonly ProfileField[]) => Object.fromEntries(fields.map((f) => [f, FIELD_SCHEMAS[f]]));
const optional = (props: Record<string, TSchema>) => Object.fromEntries(Object.entries(props).map(([k, v]) => [k, Type.Optional(v)]));

export function accountRoutes(app: App, ctx: Context): void {
  const { config } = ctx;
  const authenticate = bearer(ctx);
  const tags = ['Account'];

  const passwordFields = { password1: Password, password2: Password };
  app.post('/register', {
    ...limited(config),
    schema: {
      tags,
      operationId: 'register',
      summary: 'Register an account',
      description:
        'Creates an unverified account with the fields of REGISTER_FIELDS and emails an activation link. ' +
        'Email and username are unique case-insensitively (409 `unique`). Password rules errors are on `password2`. ' +
        'When unverified accounts may log in, the answer carries tokens too. (RegisterMixin)',
      body: Type.Object(
        { ...pick(config.registerFields), ...(config.allowPasswordlessRegistration ? optional(passwordFields) : passwordFields) },
        { additionalProperties: false },
      ),
      response: { 201: ref(RegisterOutput), ...problems(400, 409, 413, 415, 429) },
    },
    // The schema's errors are handed to the service, which adds the password rules' errors to them.
    attachValidation: true,
    handler: async (request, reply) => {
      const schemaErrors = request.validationError ? fromValidation(request.validationError.validation).errors : undefined;
      return reply.code(201).send(await accounts.register(ctx, request.body as accounts.RegisterInput, schemaErrors));
    },
  });

  app.post('/verify-account', {
    ...limited(config),
    schema: {
      tags,
      operationId: 'verifyAccount',
      summary: 'Verify an account with the token from its activation email',
      description:
        'Marks the account verified. The token works once; other activation tokens of the account die with it. ' +
        '`already_verified` when the account is verified, `expired_token` past its lifetime. (VerifyAccountMixin)',
      body: Type.Object({ token: OpaqueToken }, { additionalProperties: false }),
      response: { 204: Type.Null({ description: 'Verified.' }), ...problems(400, 409, 413, 415, 429) },
    },
    handler: async (request, reply) => {
      await accounts.verifyAccount(ctx, request.body.token);
      return reply.code(204).send(null);
    },
  });

  app.post('/resend-activation-email', {
    ...limited(config),
    schema: {
      tags,
      operationId: 'resendActivationEmail',
      summary: 'Send the activation email again',
      description:
        'Always 202, whatever the address: an unverified account gets a new activation link; nothing tells whether ' +
        'the address has an account. (ResendActivationEmailMixin)',
      body: Type.Object({ email: Email }, { additionalProperties: false }),
      response: { 202: ref(Accepted), ...problems(400, 413, 415, 429) },
    },
    handler: async (request, reply) => {
      accounts.resendActivationEmail(ctx, request.body.email);
      return reply.code(202).send({ detail: 'If this address has an account that is not verified yet, an activation email is on its way.' });
    },
  });

  app.post('/token', {
    ...limited(config),
    schema: {
      tags: ['Token'],
      operationId: 'obtainToken',
      summary: 'Log in: obtain an access token and a refresh token',
      description:
        `\`password\` and exactly one of ${config.loginAllowedFields.map((f) => `\`${f}\``).join(', ')} (case-insensitive). ` +
        'One answer, `invalid_credentials`, in the same time, for an unknown account, a wrong password or an inactive account. ' +
        'An archived account is un-archived by its owner\'s login (`unarchiving: true`). (ObtainJSONWebTokenMixin)',
      body: Type.Object(
        { ...optional(pick(config.loginAllowedFields)), password: Password },
        { additionalProperties: false },
      ),
      response: { 200: ref(TokenOutput), ...problems(400, 401, 403, 413, 415, 429) },
    },
    handler: (request) => accounts.login(ctx, request.body),
  });

  app.get('/me', {
    onRequest: authenticate,
    schema: {
      tags,
      operationId: 'me',
      summary: 'The authenticated account',
      description:
        'The account of the access token, if its session is alive (not logged out, no password change since). ' +
        "(django-graphql-auth's `me` query)",
      security: bearerSecurity,
      response: { 200: Type.Object({ user: ref(User) }), ...problems(401) },
    },
    handler: async (request) => ({ user: toUserOut(userOf(request)) }),
  });

  const confirm = Type.Object({ password: Password }, { additionalProperties: false });
  app.post('/archive-account', {
    ...limited(config),
    onRequest: authenticate,
    schema: {
      tags,
      operationId: 'archiveAccount',
      summary: 'Archive the account',
      description:
        'Verified accounts only, with the password (`invalid_password` on `errors.password`). Ends every session; ' +
        'the next successful login un-archives the account. (ArchiveAccountMixin)',
      security: bearerSecurity,
      body: confirm,
      response: { 204: Type.Null({ description: 'Archived.' }), ...problems(400, 401, 403, 413, 415, 429) },
    },
    handler: async (request, reply) => {
      await accounts.archiveAccount(ctx, userOf(request), request.body.password);
      return reply.code(204).send(null);
    },
  });

  app.post('/delete-account', {
    ...limited(config),
    onRequest: authenticate,
    schema: {
      tags,
      operationId: 'deleteAccount',
      summary: 'Delete (or deactivate) the account',
      description:
        'Verified accounts only, with the password. ALLOW_DELETE_ACCOUNT=true removes the account and all of its data; ' +
        'false sets `isActive=false`. Either way every session ends. (DeleteAccountMixin)',
      security: bearerSecurity,
      body: confirm,
      response: { 204: Type.Null({ description: 'Deleted.' }), ...problems(400, 401, 403, 413, 415, 429) },
    },
    handler: async (request, reply) => {
      await accounts.deleteAccount(ctx, userOf(request), request.body.password);
      return reply.code(204).send(null);
    },
  });

  app.post('/update-account', {
    onRequest: authenticate,
    schema: {
      tags,
      operationId: 'updateAccount',
      summary: 'Update the account',
      description:
        `Verified accounts only. Any subset of ${config.updateFields.map((f) => `\`${f}\``).join(', ')}; a field left out ` +
        'stays as it is, any other field is a 400. A new email makes the account unverified and gets an activation ' +
        'email. (UpdateAccountMixin)',
      security: bearerSecurity,
      body: Type.Object(optional(pick(config.updateFields)), { additionalProperties: false }),
      response: { 200: Type.Object({ user: ref(User) }), ...problems(400, 401, 403, 409, 413, 415, 429) },
    },
    handler: (request) => accounts.updateAccount(ctx, userOf(request), request.body),
  });
}
