// HTTP for services/accounts.ts: register, verify-account, resend-activation-email, token (login),
// me, archive-account, delete-account, update-account.
import { Type } from 'typebox';
import type { Components } from '../openapi/components.js';
import { BODY_ERRORS, bearerSecurity, documentBodyAs, limitedProblems, noContent, problems, publicSecurity, success } from '../openapi/responses.js';
import { Accepted, ref, refAs, type UserOut } from '../schemas.js';
import * as accounts from '../services/accounts.js';
import { forRequest } from '../http/request-context.js';
import type { Context } from '../services/context.js';
import { toUserOut } from '../services/users.js';
import { fromValidation } from '../validation.js';
import { bearer, userOf } from './bearer.js';
import { documentedLimits, limited } from './limits.js';
import type { App } from './types.js';

export function accountRoutes(app: App, ctx: Context, api: Components): void {
  const { config } = ctx;
  const authenticate = bearer(ctx);
  const tags = ['Account'];
  // Throttled routes (limited()) document the rate-limit headers and 429 where their limits can
  // answer it (routes/limits.ts documentedLimits): per client, and per account where a password is checked.
  const guessed = documentedLimits(api.surface.throttles, 'guess');
  const guessedPassword = documentedLimits(api.surface.throttles, 'guess', true);
  const userAnswer = refAs<{ user: UserOut }>;

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
      security: publicSecurity,
      body: refAs<accounts.RegisterInput>(api.RegisterRequest),
      response: {
        201: success(ref(api.RegisterResponse), 'Registered.', { rateLimited: guessed.rateLimited }),
        ...limitedProblems(guessed, ...BODY_ERRORS, 'unique'),
      },
    },
    // The schema's errors are handed to the service, which adds the password rules' errors to them.
    attachValidation: true,
    handler: async (request, reply) => {
      const schemaErrors = request.validationError ? fromValidation(request.validationError.validation).errors : undefined;
      return reply.code(201).send(await accounts.register(forRequest(ctx, request), request.body, schemaErrors));
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
      security: publicSecurity,
      body: refAs<{ token: string }>(api.VerifyAccountRequest),
      response: {
        204: noContent('Verified.', { rateLimited: guessed.rateLimited }),
        ...limitedProblems(guessed, ...BODY_ERRORS, 'invalid_token', 'expired_token', 'already_verified'),
      },
    },
    handler: async (request, reply) => {
      await accounts.verifyAccount(forRequest(ctx, request), request.body.token);
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
        'Always 202, whatever the address, once the request is recorded (503 if it cannot be): an unverified account ' +
        'gets a new activation link, sent a few seconds later by the outbox worker; nothing — the answer, its time, ' +
        'the time of the next request — tells whether the address has an account. (ResendActivationEmailMixin)',
      security: publicSecurity,
      body: refAs<{ email: string }>(api.ResendActivationEmailRequest),
      response: { 202: success(ref(Accepted), 'Accepted (whatever the address).', { rateLimited: guessed.rateLimited }), ...limitedProblems(guessed, ...BODY_ERRORS) },
    },
    handler: async (request, reply) => {
      await accounts.resendActivationEmail(forRequest(ctx, request), request.body.email);
      return reply.code(202).send({ detail: 'If this address has an account that is not verified yet, an activation email is on its way.' });
    },
  });

  app.post('/token', {
    // The document shows LoginRequest, a oneOf of the allowed shapes; the validator takes a looser
    // body so that both identifiers or neither get the one "give exactly one" error.
    config: { ...limited(config).config, swaggerTransform: documentBodyAs(ref(api.LoginRequest)) },
    schema: {
      tags: ['Token'],
      operationId: 'obtainToken',
      summary: 'Log in: obtain an access token and a refresh token',
      description:
        '`password` and exactly one of the identifiers of LOGIN_ALLOWED_FIELDS, `email` or `username` (case-insensitive). ' +
        'One answer, `invalid_credentials`, in the same time, for an unknown account, a wrong password or an inactive account. ' +
        'An archived account is un-archived by its owner\'s login (`unarchiving: true`). (ObtainJSONWebTokenMixin)',
      security: publicSecurity,
      body: Type.Unsafe<accounts.LoginInput>(api.loginBody),
      response: {
        200: success(ref(api.LoginResponse), 'Logged in.', { rateLimited: guessedPassword.rateLimited }),
        ...limitedProblems(guessedPassword, ...BODY_ERRORS, 'invalid_credentials', 'not_verified'),
      },
    },
    handler: (request) => accounts.login(forRequest(ctx, request), request.body),
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
      response: { 200: success(userAnswer(api.MeResponse), 'The account.'), ...problems('unauthenticated') },
    },
    handler: async (request) => ({ user: toUserOut(userOf(request)) }),
  });

  const confirmErrors = limitedProblems(guessedPassword, ...BODY_ERRORS, 'invalid_password', 'unauthenticated', 'not_verified');
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
      body: refAs<{ password: string }>(api.ArchiveAccountRequest),
      response: { 204: noContent('Archived.', { rateLimited: guessedPassword.rateLimited }), ...confirmErrors },
    },
    handler: async (request, reply) => {
      await accounts.archiveAccount(forRequest(ctx, request), userOf(request), request.body.password);
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
      body: refAs<{ password: string }>(api.DeleteAccountRequest),
      response: { 204: noContent('Deleted or deactivated.', { rateLimited: guessedPassword.rateLimited }), ...confirmErrors },
    },
    handler: async (request, reply) => {
      await accounts.deleteAccount(forRequest(ctx, request), userOf(request), request.body.password);
      return reply.code(204).send(null);
    },
  });

  app.post('/update-account', {
    ...limited(config),
    onRequest: authenticate,
    schema: {
      tags,
      operationId: 'updateAccount',
      summary: 'Update the account',
      description:
        'Verified accounts only. Any subset of the fields of UPDATE_FIELDS; a field left out ' +
        'stays as it is, any other field is a 400. A new `email` needs the current `password` in the same body ' +
        '(`invalid_password` on `errors.password`) and is only pending: the account keeps its address, and stays ' +
        'verified, until the link emailed to the new address is posted to /confirm-email-change; the current address ' +
        'is told. A taken address answers exactly as a free one (its owner gets nothing). This differs from the original contract, ' +
        'where a new email applied at once and unverified the account (hardening issue, item 1). (UpdateAccountMixin)',
      security: bearerSecurity,
      body: refAs<accounts.UpdateInput>(api.UpdateAccountRequest),
      response: {
        200: success(userAnswer(api.UpdateAccountResponse), 'Updated.', { rateLimited: guessedPassword.rateLimited }),
        ...limitedProblems(guessedPassword, ...BODY_ERRORS, 'unauthenticated', 'not_verified', 'unique', 'invalid_password'),
      },
    },
    handler: (request) => accounts.updateAccount(forRequest(ctx, request), userOf(request), request.body),
  });

  app.post('/confirm-email-change', {
    ...limited(config),
    schema: {
      tags,
      operationId: 'confirmEmailChange',
      summary: 'Confirm a new email address with the token emailed to it',
      description:
        'Moves the account to the address the token was sent to (when `email` is in UPDATE_FIELDS); the account stays ' +
        'verified. The token works once. Of several pending changes the last confirmed wins; `unique` (409) when another ' +
        'account took the address meanwhile. Links sent to the old address die, and the old address is told. A password ' +
        'change cancels pending changes.',
      security: publicSecurity,
      body: refAs<{ token: string }>(api.ConfirmEmailChangeRequest),
      response: {
        204: noContent('The address is changed.', { rateLimited: guessed.rateLimited }),
        ...limitedProblems(guessed, ...BODY_ERRORS, 'invalid_token', 'expired_token', 'unique'),
      },
    },
    handler: async (request, reply) => {
      await accounts.confirmEmailChange(ctx, request.body.token);
      return reply.code(204).send(null);
    },
  });
}
