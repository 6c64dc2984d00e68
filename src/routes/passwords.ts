// HTTP for services/passwords.ts: send-password-reset-email, password-reset, password-set, password-change.
import { Type } from 'typebox';
import { Accepted, Email, OpaqueToken, Password, problems, ref, TokenOutput } from '../schemas.js';
import type { Context } from '../services/context.js';
import * as passwords from '../services/passwords.js';
import { bearer, bearerSecurity, userOf } from './bearer.js';
import { limited } from './limits.js';
import type { App } from './types.js';

export function passwordRoutes(app: App, ctx: Context): void {
  const { config } = ctx;
  const tags = ['Password'];
  const redeemBody = Type.Object({ token: OpaqueToken, newPassword1: Password, newPassword2: Password }, { additionalProperties: false });

  app.post('/send-password-reset-email', {
    ...limited(config),
    schema: {
      tags,
      operationId: 'sendPasswordResetEmail',
      summary: 'Email a password reset link',
      description:
        'Always 202, in the same time, whatever the address. A verified account gets a reset link; an unverified one ' +
        'the activation email instead; an unknown or inactive one nothing. (SendPasswordResetEmailMixin)',
      body: Type.Object({ email: Email }, { additionalProperties: false }),
      response: { 202: ref(Accepted), ...problems(400, 413, 415, 429) },
    },
    handler: async (request, reply) => {
      passwords.sendPasswordResetEmail(ctx, request.body.email);
      return reply.code(202).send({ detail: 'If this address has an account, an email is on its way.' });
    },
  });

  app.post('/password-reset', {
    ...limited(config),
    schema: {
      tags,
      operationId: 'passwordReset',
      summary: 'Set a new password with the token from a reset email',
      description:
        'The token works once. Verifies the account if it was not, ends every session, and kills every other reset ' +
        'and set link of the account. Password rule errors are on `newPassword2`. (PasswordResetMixin)',
      body: redeemBody,
      response: { 204: Type.Null({ description: 'Password changed.' }), ...problems(400, 413, 415, 429) },
    },
    handler: async (request, reply) => {
      await passwords.resetPassword(ctx, request.body);
      return reply.code(204).send(null);
    },
  });

  app.post('/password-set', {
    ...limited(config),
    schema: {
      tags,
      operationId: 'passwordSet',
      summary: 'Set the first password of a passwordless account',
      description:
        'As password-reset, with a password-set token; `password_already_set` (409) when the account has a password. ' +
        '(PasswordSetMixin)',
      body: redeemBody,
      response: { 204: Type.Null({ description: 'Password set.' }), ...problems(400, 409, 413, 415, 429) },
    },
    handler: async (request, reply) => {
      await passwords.setPassword(ctx, request.body);
      return reply.code(204).send(null);
    },
  });

  app.post('/password-change', {
    ...limited(config),
    onRequest: bearer(ctx),
    schema: {
      tags,
      operationId: 'passwordChange',
      summary: 'Change the password, knowing the old one',
      description:
        'Verified accounts only; `invalid_password` on `errors.oldPassword`. Ends every session, this one too, and ' +
        'answers with fresh tokens. (PasswordChangeMixin)',
      security: bearerSecurity,
      body: Type.Object({ oldPassword: Password, newPassword1: Password, newPassword2: Password }, { additionalProperties: false }),
      response: { 200: ref(TokenOutput), ...problems(400, 401, 403, 413, 415, 429) },
    },
    handler: (request) => passwords.changePassword(ctx, userOf(request), request.body),
  });
}
