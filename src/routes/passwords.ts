// HTTP for services/passwords.ts: send-password-reset-email, password-reset, password-set, password-change.
import type { Components } from '../openapi/components.js';
import { BODY_ERRORS, bearerSecurity, limitedProblems, noContent, publicSecurity, success } from '../openapi/responses.js';
import { Accepted, ref, refAs } from '../schemas.js';
import { forRequest } from '../http/request-context.js';
import type { Context } from '../services/context.js';
import * as passwords from '../services/passwords.js';
import { bearer, userOf } from './bearer.js';
import { documentedLimits, limited } from './limits.js';
import type { App } from './types.js';

export function passwordRoutes(app: App, ctx: Context, api: Components): void {
  const { config } = ctx;
  const tags = ['Password'];
  // Every route here is throttled (limited()); password-change checks a password under the per-account count too.
  const guessed = documentedLimits(api.surface.throttles, 'guess');
  const guessedPassword = documentedLimits(api.surface.throttles, 'guess', true);
  type Redeem = { token: string } & passwords.NewPassword;

  app.post('/send-password-reset-email', {
    ...limited(config),
    schema: {
      tags,
      operationId: 'sendPasswordResetEmail',
      summary: 'Email a password reset link',
      description:
        'Always 202, in the same time, whatever the address, once the request is recorded (503 if it cannot be). ' +
        'The outbox worker resolves it a few seconds later: a verified account gets a reset link; an unverified one ' +
        'the activation email instead; an unknown or inactive one nothing. (SendPasswordResetEmailMixin)',
      security: publicSecurity,
      body: refAs<{ email: string }>(api.SendPasswordResetEmailRequest),
      response: { 202: success(ref(Accepted), 'Accepted (whatever the address).', { rateLimited: guessed.rateLimited }), ...limitedProblems(guessed, ...BODY_ERRORS) },
    },
    handler: async (request, reply) => {
      await passwords.sendPasswordResetEmail(forRequest(ctx, request), request.body.email);
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
      security: publicSecurity,
      body: refAs<Redeem>(api.PasswordResetRequest),
      response: {
        204: noContent('Password changed.', { rateLimited: guessed.rateLimited }),
        ...limitedProblems(guessed, ...BODY_ERRORS, 'invalid_token', 'expired_token'),
      },
    },
    handler: async (request, reply) => {
      await passwords.resetPassword(forRequest(ctx, request), request.body);
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
      security: publicSecurity,
      body: refAs<Redeem>(api.PasswordSetRequest),
      response: {
        204: noContent('Password set.', { rateLimited: guessed.rateLimited }),
        ...limitedProblems(guessed, ...BODY_ERRORS, 'invalid_token', 'expired_token', 'password_already_set'),
      },
    },
    handler: async (request, reply) => {
      await passwords.setPassword(forRequest(ctx, request), request.body);
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
      body: refAs<{ oldPassword: string } & passwords.NewPassword>(api.PasswordChangeRequest),
      response: {
        200: success(ref(api.PasswordChangeResponse), 'Changed: a fresh session.', { rateLimited: guessedPassword.rateLimited }),
        ...limitedProblems(guessedPassword, ...BODY_ERRORS, 'invalid_password', 'unauthenticated', 'not_verified'),
      },
    },
    handler: (request) => passwords.changePassword(forRequest(ctx, request), userOf(request), request.body),
  });
}
