// HTTP for services/admin-users.ts: /admin/users and the per-account operator acts.
import { forRequest } from '../../http/request-context.js';
import { Type } from 'typebox';
import { BODY_ERRORS, noContent, problems, success } from '../../openapi/responses.js';
import { Email, Name, Password, ref, User, Username } from '../../schemas.js';
import * as admin from '../../services/admin-users.js';
import type { Context } from '../../services/context.js';
import type { App } from '../types.js';
import { adminLimits, adminOf, adminSecurity } from './auth.js';

const EXAMPLE_USER = { user: { id: '0190a4b2-7c1e-7f3a-9b2d-4e5f6a7b8c9d', email: 'ada@example.com', username: 'ada', firstName: 'Ada', lastName: 'Lovelace', verified: true, archived: false, isActive: true, hasPassword: true, dateJoined: '2026-01-05T10:00:00.000Z', lastLogin: null } };
const AdminUserResponse = Type.Object(
  { user: ref(User) },
  { $id: 'AdminUserResponse', additionalProperties: false, description: 'One account.', example: EXAMPLE_USER },
);
const AdminListUsersResponse = Type.Object(
  {
    users: Type.Array(ref(User)),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'The cursor of the next page; null on the last page.' }),
  },
  { $id: 'AdminListUsersResponse', additionalProperties: false, description: 'A page of accounts, newest first.', example: { users: [EXAMPLE_USER.user], nextCursor: null } },
);
const AdminCreateUserRequest = Type.Object(
  {
    email: Type.Optional(Email),
    username: Type.Optional(Username),
    firstName: Type.Optional(Name),
    lastName: Type.Optional(Name),
    password: Type.Optional(Password),
    verified: Type.Optional(Type.Boolean({ description: 'Create the account verified (default false).' })),
    sendActivationEmail: Type.Optional(Type.Boolean({ description: 'Email an activation link (default false).' })),
    sendPasswordSetEmail: Type.Optional(Type.Boolean({ description: 'Email a password-set link (default false).' })),
  },
  {
    $id: 'AdminCreateUserRequest',
    additionalProperties: false,
    description: 'A new account: an email or a username (or both), optionally a password.',
    example: { email: 'grace@example.com', username: 'grace', verified: true },
  },
);
const AdminUpdateUserRequest = Type.Object(
  { email: Type.Optional(Email), username: Type.Optional(Username), firstName: Type.Optional(Name), lastName: Type.Optional(Name) },
  { $id: 'AdminUpdateUserRequest', additionalProperties: false, description: 'Any subset of the profile fields.', example: { firstName: 'Ada' } },
);
const AdminLogoutUserResponse = Type.Object(
  { sessionsEnded: Type.Integer({ description: 'How many sessions were live.' }) },
  { $id: 'AdminLogoutUserResponse', additionalProperties: false, description: 'Every session of the account has ended.', example: { sessionsEnded: 2 } },
);
const AdminSendPasswordResetResponse = Type.Object(
  { detail: Type.String() },
  { $id: 'AdminSendPasswordResetResponse', additionalProperties: false, description: 'The reset email is queued.', example: { detail: 'A password reset email is on its way.' } },
);
/** The named shapes of this module (app.ts registers them when the admin API is on). */
export const adminUserSchemas = [AdminUserResponse, AdminListUsersResponse, AdminCreateUserRequest, AdminUpdateUserRequest, AdminLogoutUserResponse, AdminSendPasswordResetResponse];
const Id = Type.Object({ id: Type.String({ format: 'uuid', description: 'The user id.' }) }, { additionalProperties: false });
const boolFilter = (description: string) => Type.Optional(Type.Boolean({ description }));

export function adminUserRoutes(app: App, ctx: Context): void {
  const tags = ['Admin'];
  const security = adminSecurity;
  const { common, rateLimited } = adminLimits(ctx.config);
  const UserEnvelope = success(ref(AdminUserResponse), 'The account.', { rateLimited });

  app.get('/users', {
    schema: {
      tags,
      security,
      operationId: 'adminListUsers',
      summary: 'List accounts',
      description:
        'Newest first, a page at a time: pass the answer\'s `nextCursor` as `cursor` for the next page (null on the last). ' +
        '`email` and `username` match case-insensitive prefixes; `joinedAfter` is inclusive, `joinedBefore` exclusive.',
      querystring: Type.Object(
        {
          email: Type.Optional(Type.String({ maxLength: 254, description: 'Case-insensitive prefix of the email.' })),
          username: Type.Optional(Type.String({ maxLength: 150, description: 'Case-insensitive prefix of the username.' })),
          verified: boolFilter('Only verified (true) or unverified (false) accounts.'),
          archived: boolFilter('Only archived (true) or not archived (false) accounts.'),
          active: boolFilter('Only active (true) or deactivated (false) accounts.'),
          joinedAfter: Type.Optional(Type.String({ format: 'date-time', description: 'Joined at or after this instant.' })),
          joinedBefore: Type.Optional(Type.String({ format: 'date-time', description: 'Joined before this instant.' })),
          cursor: Type.Optional(Type.String({ maxLength: 512, description: 'The `nextCursor` of the previous page.' })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: admin.MAX_PAGE, description: `Page size (default ${admin.DEFAULT_PAGE}).` })),
        },
        { additionalProperties: false },
      ),
      response: { 200: success(ref(AdminListUsersResponse), 'A page of accounts.', { rateLimited }), ...problems('validation_failed', ...common) },
    },
    handler: (request) => admin.listUsers(ctx, request.query),
  });

  app.get('/users/:id', {
    schema: {
      tags,
      security,
      operationId: 'adminGetUser',
      summary: 'One account',
      description: 'The account with that id; `user_not_found` (404) when there is none.',
      params: Id,
      response: { 200: UserEnvelope, ...problems('validation_failed', 'user_not_found', ...common) },
    },
    handler: (request) => admin.getUser(forRequest(ctx, request), request.params.id),
  });

  app.post('/users', {
    schema: {
      tags,
      security,
      operationId: 'adminCreateUser',
      summary: 'Create an account',
      description:
        'An email or a username (or both), any profile field whatever REGISTER_FIELDS says, and optionally a password ' +
        '(checked by the password rules; errors on `password`). `verified` creates it verified. On request, ' +
        '`sendActivationEmail` (an unverified account with an email) or `sendPasswordSetEmail` (a passwordless one).',
      body: ref(AdminCreateUserRequest),
      response: { 201: success(ref(AdminUserResponse), 'Created.', { rateLimited }), ...problems(...BODY_ERRORS, 'unique', ...common) },
    },
    handler: async (request, reply) => reply.code(201).send(await admin.createUser(forRequest(ctx, request), adminOf(request), request.body)),
  });

  app.patch('/users/:id', {
    schema: {
      tags,
      security,
      operationId: 'adminUpdateUser',
      summary: 'Change profile fields',
      description:
        'Any subset of email, username, firstName, lastName; a field left out stays as it is. A new email is set directly ' +
        '(no confirmation: an operator\'s act), the verified state is kept, and links sent to the old address stop working.',
      params: Id,
      body: ref(AdminUpdateUserRequest),
      response: { 200: UserEnvelope, ...problems(...BODY_ERRORS, 'user_not_found', 'unique', ...common) },
    },
    handler: (request) => admin.updateUser(forRequest(ctx, request), adminOf(request), request.params.id, request.body),
  });

  app.delete('/users/:id', {
    schema: {
      tags,
      security,
      operationId: 'adminDeleteUser',
      summary: 'Delete an account',
      description: 'Removes the account and all of its data (sessions, tokens, unsent email), whatever ALLOW_DELETE_ACCOUNT says.',
      params: Id,
      response: { 204: noContent('Deleted.', { rateLimited }), ...problems(...BODY_ERRORS, 'user_not_found', ...common) },
    },
    handler: async (request, reply) => {
      await admin.deleteUser(forRequest(ctx, request), adminOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  });

  const acts: [string, string, string, (c: Context, a: admin.Actor, id: string) => Promise<{ user: unknown }>][] = [
    ['verify', 'adminVerifyUser', 'Mark the account verified (its activation links die). Idempotent.', admin.verifyUser],
    ['archive', 'adminArchiveUser', 'Archive the account and end every session; its next login un-archives it. Idempotent.', admin.archiveUser],
    ['unarchive', 'adminUnarchiveUser', 'Un-archive the account. Idempotent.', admin.unarchiveUser],
    ['deactivate', 'adminDeactivateUser', 'Deactivate the account (isActive=false: no login, no token, no email link works) and end every session. Idempotent.', admin.deactivateUser],
    ['reactivate', 'adminReactivateUser', 'Reactivate a deactivated account (it can log in again). Idempotent.', admin.reactivateUser],
  ];
  for (const [action, operationId, summary, act] of acts) {
    app.post(`/users/:id/${action}`, {
      schema: {
        tags,
        security,
        operationId,
        summary,
        description: summary,
        params: Id,
        response: { 200: UserEnvelope, ...problems(...BODY_ERRORS, 'user_not_found', ...common) },
      },
      handler: (request) => act(forRequest(ctx, request), adminOf(request), request.params.id) as ReturnType<typeof admin.getUser>,
    });
  }

  app.post('/users/:id/logout', {
    schema: {
      tags,
      security,
      operationId: 'adminLogoutUser',
      summary: 'End every session of the account',
      description: 'Its access and refresh tokens stop working at once.',
      params: Id,
      response: { 200: success(ref(AdminLogoutUserResponse), 'Logged out.', { rateLimited }), ...problems(...BODY_ERRORS, 'user_not_found', ...common) },
    },
    handler: (request) => admin.logoutUser(forRequest(ctx, request), adminOf(request), request.params.id),
  });

  app.post('/users/:id/send-password-reset', {
    schema: {
      tags,
      security,
      operationId: 'adminSendPasswordReset',
      summary: 'Email the account a password reset link',
      description: '`no_email_address` or `account_inactive` (409) when it cannot be sent. Using the link also verifies the account.',
      params: Id,
      response: {
        202: success(ref(AdminSendPasswordResetResponse), 'Queued.', { rateLimited }),
        ...problems(...BODY_ERRORS, 'user_not_found', 'no_email_address', 'account_inactive', ...common),
      },
    },
    handler: async (request, reply) => reply.code(202).send(await admin.sendPasswordReset(forRequest(ctx, request), adminOf(request), request.params.id)),
  });
}
