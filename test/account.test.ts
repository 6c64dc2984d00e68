// POST /archive-account, POST /delete-account, POST /update-account (bearer, verified
// accounts only). Test names starting with "GA …" / "SDA …" are
// the counterparts of django-graphql-auth's and strawberry-django-auth's seed tests
// (ArchiveAccount, DeleteAccount, UpdateAccount).
import { and, eq, inArray, ne } from 'drizzle-orm';
import type { ParsedMail } from 'mailparser';
import t, { type Test } from 'tap';
import { emailTokens, outbox, refreshTokens, sessions } from '../src/db/schema.js';
import {
  assertProblem,
  buildTestApp,
  get,
  PASSWORD,
  post,
  registerUser,
  type Res,
  safeJson,
  type TestApp,
  tokenIn,
  uniqueUser,
  userRow,
  verifiedUser,
  sleep,
} from './helpers.js';

const INVALID_PASSWORD = { password: [{ message: 'Invalid password.', code: 'invalid_password' }] };

async function logIn(h: TestApp, email: string, password = PASSWORD) {
  const res = await post(h.app, '/token', { email, password });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${res.raw}`);
  return { token: res.body.token as string, refreshToken: res.body.refreshToken as string, body: res.body };
}

/** Every way a client could still use a session: bearer endpoint, /token/verify, /token/refresh. */
async function assertSessionDead(t: Test, h: TestApp, s: { token: string; refreshToken: string }, label: string) {
  await t.test(`${label}: access token and refresh token are dead`, async (t) => {
    assertProblem(t, await get(h.app, '/me', s.token), 'unauthenticated');
    assertProblem(t, await post(h.app, '/token/verify', { token: s.token }), 'invalid_token');
    assertProblem(t, await post(h.app, '/token/refresh', { refreshToken: s.refreshToken }), 'invalid_token');
  });
}

async function rawPost(h: TestApp, url: string, payload: string, token?: string): Promise<Res> {
  const res = await h.app.inject({
    method: 'POST',
    url,
    payload,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  return { status: res.statusCode, headers: res.headers, body: safeJson(res.body), raw: res.body };
}

const ENDPOINTS = [
  { url: '/archive-account', valid: { password: PASSWORD }, invalid: {} as Record<string, unknown>, invalidField: 'password' },
  { url: '/delete-account', valid: { password: PASSWORD }, invalid: {} as Record<string, unknown>, invalidField: 'password' },
  { url: '/update-account', valid: { firstName: 'Ada' }, invalid: { foo: 'bar' } as Record<string, unknown>, invalidField: 'foo' },
];

// =============================================================================================
// Default settings: ALLOW_DELETE_ACCOUNT=false, UPDATE_FIELDS=firstName,lastName,
// ALLOW_LOGIN_NOT_VERIFIED=true (so an unverified account has a token from /register).

t.test('default settings', async (t) => {
  const h = await buildTestApp(t);

  // ------------------------------------------------------------------------------------------
  // Check order on the three bearer endpoints: 401, then 400 (body), then 403, then invalid_password.

  for (const ep of ENDPOINTS) {
    await t.test(`${ep.url}: check order`, async (t) => {
      await t.test(`GA/SDA ${ep.url} "anonymous": no token → 401 unauthenticated with WWW-Authenticate`, async (t) => {
        const res = await post(h.app, ep.url, ep.valid);
        assertProblem(t, res, 'unauthenticated');
        t.equal(res.headers['www-authenticate'], 'Bearer', 'no credentials: a bare Bearer challenge');
      });

      await t.test(`${ep.url}: no token and an invalid body → 401, not 400 (the token is checked first)`, async (t) => {
        assertProblem(t, await post(h.app, ep.url, ep.invalid), 'unauthenticated');
        assertProblem(t, await post(h.app, ep.url, { password: 12345678, verified: true }), 'unauthenticated');
        assertProblem(t, await rawPost(h, ep.url, '{"password":'), 'unauthenticated');
      });

      await t.test(`${ep.url}: a forged or malformed access token → 401 unauthenticated`, async (t) => {
        assertProblem(t, await post(h.app, ep.url, ep.valid, 'not-a-jwt'), 'unauthenticated');
        const u = await verifiedUser(h);
        const [head, payload] = u.token.split('.');
        assertProblem(t, await post(h.app, ep.url, ep.valid, `${head}.${payload}.AAAA`), 'unauthenticated');
        const res = await h.app.inject({ method: 'POST', url: ep.url, payload: ep.valid, headers: { authorization: u.token } });
        t.equal(res.statusCode, 401, 'a token without the Bearer scheme');
      });

      await t.test(`${ep.url}: a valid token with an invalid body → 400 validation_failed`, async (t) => {
        const u = await verifiedUser(h);
        assertProblem(t, await post(h.app, ep.url, ep.invalid, u.token), 'validation_failed', {
          fields: [ep.invalidField],
        });
        const before = await userRow(h, u.user.id);
        // Types are not coerced.
        const typed = ep.url === '/update-account' ? { firstName: 12345678 } : { password: 12345678 };
        assertProblem(t, await post(h.app, ep.url, typed, u.token), 'validation_failed', {
          fields: [Object.keys(typed)[0]],
          fieldCodes: { [Object.keys(typed)[0]]: 'invalid' },
        });
        assertProblem(t, await rawPost(h, ep.url, '{"password":', u.token), 'validation_failed', { fields: [] });
        t.strictSame(await userRow(h, u.user.id), before, 'nothing changed');
        t.equal((await get(h.app, '/me', u.token)).status, 200, 'the session still works');
      });

      await t.test(`${ep.url}: an unverified account with an invalid body → 400, not 403 (the body before verified)`, async (t) => {
        const u = await registerUser(h.app);
        assertProblem(t, await post(h.app, ep.url, ep.invalid, u.token), 'validation_failed', { fields: [ep.invalidField] });
      });

      await t.test(`GA/SDA ${ep.url} "unverified": → 403 not_verified and nothing changed`, async (t) => {
        const u = await registerUser(h.app);
        t.ok(u.token, 'register returned a token (ALLOW_LOGIN_NOT_VERIFIED defaults to true)');
        const before = await userRow(h, u.user.id);
        t.equal(before.verified, false);
        assertProblem(t, await post(h.app, ep.url, ep.valid, u.token), 'not_verified');
        t.strictSame(await userRow(h, u.user.id), before, 'the row is unchanged (not archived, still active, same name)');
        const me = await get(h.app, '/me', u.token);
        t.equal(me.status, 200, 'the session is untouched');
        t.equal(me.body.user.archived, false);
        t.equal(me.body.user.isActive, true);
      });

      if (ep.url !== '/update-account') {
        await t.test(`${ep.url}: an unverified account with a wrong password → 403 not_verified (verified before the password)`, async (t) => {
          const u = await registerUser(h.app);
          assertProblem(t, await post(h.app, ep.url, { password: 'wrong password 123' }, u.token), 'not_verified');
        });
      }
    });
  }

  // ------------------------------------------------------------------------------------------
  // Archive

  await t.test('/archive-account', async (t) => {
    await t.test('GA/SDA ArchiveAccount "wrong password": → 400 invalid_password on errors.password, not archived', async (t) => {
      const u = await verifiedUser(h);
      const res = await post(h.app, '/archive-account', { password: 'not the password' }, u.token);
      assertProblem(t, res, 'invalid_password', { errors: INVALID_PASSWORD });
      t.equal((await userRow(h, u.user.id)).archived, false, 'not archived');
      t.equal((await get(h.app, '/me', u.token)).status, 200, 'the session still works');
      const refreshed = await post(h.app, '/token/refresh', { refreshToken: u.refreshToken });
      t.equal(refreshed.status, 200, 'the refresh token still works');
    });

    await t.test(
      'GA/SDA ArchiveAccount "right password → archived" and "refresh tokens revoked after archive" (with two sessions of the same user)',
      async (t) => {
        const u = await verifiedUser(h);
        const first = { token: u.token, refreshToken: u.refreshToken };
        const second = await logIn(h, u.email);
        const other = await verifiedUser(h); // another account's session is not touched

        const res = await post(h.app, '/archive-account', { password: PASSWORD }, first.token);
        t.equal(res.status, 204);
        t.equal(res.raw, '', 'no body');
        const row = await userRow(h, u.user.id);
        t.equal(row.archived, true, 'archived in the database');
        t.equal(row.isActive, true, 'still active');
        t.equal(row.verified, true, 'still verified');

        await assertSessionDead(t, h, first, 'the session that archived');
        await assertSessionDead(t, h, second, 'a second session of the same user');
        t.equal((await get(h.app, '/me', other.token)).status, 200, "another account's session still works");

        await t.test('a failed login leaves it archived', async (t) => {
          const bad = await post(h.app, '/token', { email: u.email, password: 'not the password' });
          assertProblem(t, bad, 'invalid_credentials');
          t.notOk(bad.body?.token, 'no token');
          t.equal((await userRow(h, u.user.id)).archived, true, 'still archived');
        });

        await t.test('GA/SDA ObtainJSONWebToken "archived user logs in": the next successful login un-archives it', async (t) => {
          const login = await post(h.app, '/token', { username: u.username, password: PASSWORD });
          t.equal(login.status, 200);
          t.equal(login.body.unarchiving, true, 'unarchiving: true');
          t.equal(login.body.user.archived, false);
          t.ok(login.body.token && login.body.refreshToken, 'tokens');
          const me = await get(h.app, '/me', login.body.token);
          t.equal(me.status, 200);
          t.equal(me.body.user.archived, false, '/me shows archived false');
          t.equal((await userRow(h, u.user.id)).archived, false, 'not archived in the database');
          const again = await post(h.app, '/token', { email: u.email, password: PASSWORD });
          t.not(again.body.unarchiving, true, 'a later login does not claim to un-archive');
        });

        await assertSessionDead(t, h, first, 'after un-archiving, the session that archived');
        await assertSessionDead(t, h, second, 'after un-archiving, the second session');
      },
    );
  });

  // ------------------------------------------------------------------------------------------
  // Delete, ALLOW_DELETE_ACCOUNT=false: deactivate.

  await t.test('/delete-account with ALLOW_DELETE_ACCOUNT=false (default)', async (t) => {
    await t.test('GA/SDA DeleteAccount "wrong password": → 400 invalid_password on errors.password, still active', async (t) => {
      const u = await verifiedUser(h);
      const res = await post(h.app, '/delete-account', { password: 'not the password' }, u.token);
      assertProblem(t, res, 'invalid_password', { errors: INVALID_PASSWORD });
      const row = await userRow(h, u.user.id);
      t.equal(row.isActive, true, 'still active');
      t.equal((await get(h.app, '/me', u.token)).status, 200, 'the session still works');
    });

    await t.test('GA DeleteAccount "default settings": is_active false, row kept, every token dead, cannot log in, email stays taken', async (t) => {
      const u = await verifiedUser(h);
      const first = { token: u.token, refreshToken: u.refreshToken };
      const second = await logIn(h, u.email);

      const res = await post(h.app, '/delete-account', { password: PASSWORD }, first.token);
      t.equal(res.status, 204);
      t.equal(res.raw, '', 'no body');
      const row = await userRow(h, u.user.id);
      t.ok(row, 'the row still exists');
      t.equal(row?.isActive, false, 'is_active false');

      await assertSessionDead(t, h, first, 'the session that deleted');
      await assertSessionDead(t, h, second, 'a second session of the same user');

      assertProblem(t, await post(h.app, '/token', { email: u.email, password: PASSWORD }), 'invalid_credentials');
      assertProblem(t, await post(h.app, '/token', { username: u.username, password: PASSWORD }), 'invalid_credentials');
      t.equal((await userRow(h, u.user.id)).isActive, false, 'a login does not re-activate it');

      const again = await post(h.app, '/register', {
        email: u.email.toUpperCase(),
        username: uniqueUser().username,
        password1: PASSWORD,
        password2: PASSWORD,
      });
      const emailMessage = 'A user with that email already exists.';
      assertProblem(t, again, 'unique', { detail: emailMessage, errors: { email: [{ message: emailMessage, code: 'unique' }] } });
      const sameName = await post(h.app, '/register', {
        email: uniqueUser().email,
        username: u.username,
        password1: PASSWORD,
        password2: PASSWORD,
      });
      const usernameMessage = 'A user with that username already exists.';
      assertProblem(t, sameName, 'unique', {
        detail: usernameMessage,
        errors: { username: [{ message: usernameMessage, code: 'unique' }] },
      });
    });
  });

  // ------------------------------------------------------------------------------------------
  // Update with UPDATE_FIELDS=firstName,lastName (default).

  await t.test('/update-account with UPDATE_FIELDS=firstName,lastName (default)', async (t) => {
    await t.test('GA/SDA UpdateAccount "verified → first name saved"', async (t) => {
      const u = await verifiedUser(h);
      const res = await post(h.app, '/update-account', { firstName: 'Ada' }, u.token);
      t.equal(res.status, 200);
      t.match(String(res.headers['content-type']), /^application\/json/);
      t.same(Object.keys(res.body), ['user'], 'the answer is { user }');
      t.same(
        Object.keys(res.body.user).sort(),
        ['archived', 'dateJoined', 'email', 'firstName', 'hasPassword', 'id', 'isActive', 'lastLogin', 'lastName', 'username', 'verified'],
        'a User and nothing else',
      );
      t.equal(res.body.user.firstName, 'Ada');
      t.equal(res.body.user.id, u.user.id);
      t.equal((await userRow(h, u.user.id)).firstName, 'Ada', 'saved');
      t.equal((await get(h.app, '/me', u.token)).body.user.firstName, 'Ada', '/me shows it');
    });

    await t.test('PATCH semantics: { firstName } changes only firstName, lastName stays', async (t) => {
      const u = await verifiedUser(h);
      const both = await post(h.app, '/update-account', { firstName: 'Ada', lastName: 'Lovelace' }, u.token);
      t.equal(both.status, 200);
      t.equal(both.body.user.lastName, 'Lovelace');
      const res = await post(h.app, '/update-account', { firstName: 'Grace' }, u.token);
      t.equal(res.status, 200);
      t.equal(res.body.user.firstName, 'Grace');
      t.equal(res.body.user.lastName, 'Lovelace', 'lastName left as it was');
      const row = await userRow(h, u.user.id);
      t.equal(row.firstName, 'Grace');
      t.equal(row.lastName, 'Lovelace', 'lastName unchanged in the database');
      const last = await post(h.app, '/update-account', { lastName: 'Hopper' }, u.token);
      t.equal(last.body.user.firstName, 'Grace', 'firstName left as it was');
      t.equal(last.body.user.lastName, 'Hopper');
      const blank = await post(h.app, '/update-account', { lastName: '' }, u.token);
      t.equal(blank.status, 200, 'an empty name is allowed (Django blank=True)');
      t.equal((await userRow(h, u.user.id)).lastName, '', 'an explicit empty string is applied');
      t.equal((await userRow(h, u.user.id)).firstName, 'Grace');
    });

    await t.test('{} is fine and changes nothing', async (t) => {
      const u = await verifiedUser(h);
      await post(h.app, '/update-account', { firstName: 'Ada', lastName: 'Lovelace' }, u.token);
      const before = await userRow(h, u.user.id);
      const me = await get(h.app, '/me', u.token);
      const res = await post(h.app, '/update-account', {}, u.token);
      t.equal(res.status, 200);
      t.strictSame(res.body.user, me.body.user, 'the same user as /me');
      t.strictSame(await userRow(h, u.user.id), before, 'the row is unchanged');
    });

    await t.test('GA/SDA UpdateAccount "over-long first name → errors.firstName, unchanged": 151 (and 300) characters → 400 max_length', async (t) => {
      const u = await verifiedUser(h);
      await post(h.app, '/update-account', { firstName: 'Ada', lastName: 'Lovelace' }, u.token);
      for (const n of [151, 300]) {
        const res = await post(h.app, '/update-account', { firstName: 'a'.repeat(n) }, u.token);
        assertProblem(t, res, 'validation_failed', { fields: ['firstName'], fieldCodes: { firstName: 'max_length' } });
        t.equal((await userRow(h, u.user.id)).firstName, 'Ada', `firstName unchanged after ${n} characters`);
      }
      const last = await post(h.app, '/update-account', { firstName: 'Grace', lastName: 'b'.repeat(151) }, u.token);
      assertProblem(t, last, 'validation_failed', { fields: ['lastName'], fieldCodes: { lastName: 'max_length' } });
      const row = await userRow(h, u.user.id);
      t.equal(row.firstName, 'Ada', 'the valid field of a refused body is not applied either');
      t.equal(row.lastName, 'Lovelace');
      const ok = await post(h.app, '/update-account', { firstName: 'a'.repeat(150) }, u.token);
      t.equal(ok.status, 200, '150 characters are allowed');
      t.equal((await userRow(h, u.user.id)).firstName, 'a'.repeat(150));
    });

    for (const [field, value] of [
      ['verified', false],
      ['archived', true],
      ['isActive', false],
      ['id', '00000000-0000-4000-8000-000000000000'],
      ['password', 'a brand new password'],
      ['email', 'new-address@example.com'],
      ['username', 'brandnewname'],
      ['foo', 'bar'],
    ] as const) {
      await t.test(`a field outside UPDATE_FIELDS, ${field} → 400 naming it, nothing changed`, async (t) => {
        const u = await verifiedUser(h);
        const before = await userRow(h, u.user.id);
        const res = await post(h.app, '/update-account', { firstName: 'Changed', [field]: value }, u.token);
        assertProblem(t, res, 'validation_failed', { fields: [field] });
        t.strictSame(await userRow(h, u.user.id), before, 'the row is unchanged (firstName included)');
        const alone = await post(h.app, '/update-account', { [field]: value }, u.token);
        assertProblem(t, alone, 'validation_failed', { fields: [field] });
        t.strictSame(await userRow(h, u.user.id), before, 'still unchanged');
        t.equal((await logIn(h, u.email)).body.user.email, u.email, 'the same password still logs in, same email');
      });
    }

    await t.test('types are not coerced: firstName null or a number → 400', async (t) => {
      const u = await verifiedUser(h);
      for (const value of [null, 42, ['Ada'], { first: 'Ada' }]) {
        const res = await post(h.app, '/update-account', { firstName: value }, u.token);
        assertProblem(t, res, 'validation_failed', { fields: ['firstName'] });
      }
      t.equal((await userRow(h, u.user.id)).firstName, '', 'unchanged');
    });
  });
});

// =============================================================================================
// ALLOW_DELETE_ACCOUNT=true: the row and everything of it goes.

t.test('ALLOW_DELETE_ACCOUNT=true', async (t) => {
  // A failed send waits 30 s for its retry: the deletion below must fall between two attempts.
  const h = await buildTestApp(t, { env: { ALLOW_DELETE_ACCOUNT: 'true' }, outbox: { maxAttempts: 1000, baseDelay: 30_000, maxDelay: 30_000 } });

  await t.test('GA/SDA DeleteAccount "wrong password" and "unverified" still refuse under ALLOW_DELETE_ACCOUNT=true', async (t) => {
    const u = await verifiedUser(h);
    assertProblem(t, await post(h.app, '/delete-account', { password: 'not the password' }, u.token), 'invalid_password', {
      errors: INVALID_PASSWORD,
    });
    t.ok(await userRow(h, u.user.id), 'the row is still there');
    const v = await registerUser(h.app);
    assertProblem(t, await post(h.app, '/delete-account', { password: PASSWORD }, v.token), 'not_verified');
    t.ok(await userRow(h, v.user.id), 'the unverified row is still there');
  });

  await t.test(
    'GA/SDA DeleteAccount "settings_b → row no longer exists": row, sessions, refresh tokens, email tokens and unsent email gone; email and username free again',
    async (t) => {
      const u = await verifiedUser(h);
      const id = u.user.id as string;
      const first = { token: u.token, refreshToken: u.refreshToken };
      const second = await logIn(h, u.email);
      // A rotated refresh token too (a chain of two rows).
      const rotated = await post(h.app, '/token/refresh', { refreshToken: second.refreshToken });
      t.equal(rotated.status, 200);
      const secondNow = { token: rotated.body.token as string, refreshToken: rotated.body.refreshToken as string };

      // An email that cannot leave yet: the mail server is down, so the reset email stays in the outbox.
      await h.mail.stop();
      let mailUp = false;
      t.teardown(async () => {
        if (!mailUp) await h.mail.start().catch(() => {});
      });
      const asked = await post(h.app, '/send-password-reset-email', { email: u.email });
      t.equal(asked.status, 202);
      // The outbox worker resolves the request after the answer (services/email-requests.ts).
      for (let i = 0; i < 400; i++) {
        const made = await h.db.db.select().from(emailTokens).where(and(eq(emailTokens.userId, id), eq(emailTokens.purpose, 'password_reset')));
        if (made.length) break;
        await sleep(25);
      }

      const sessionIds = (await h.db.db.select({ id: sessions.id }).from(sessions).where(eq(sessions.userId, id))).map((r) => r.id);
      t.ok(sessionIds.length >= 2, 'two sessions before');
      const rtBefore = await h.db.db.select().from(refreshTokens).where(inArray(refreshTokens.sessionId, sessionIds));
      t.ok(rtBefore.length >= 3, 'refresh tokens before');
      const etBefore = await h.db.db.select().from(emailTokens).where(eq(emailTokens.userId, id));
      t.ok(etBefore.some((r) => r.purpose === 'password_reset' && r.usedAt === null), 'an unused reset token before');
      // Its first attempt has failed: no delivery is in flight. (One that had started before the
      // deletion may still arrive: an SMTP hand-over in progress cannot be recalled, README.)
      let unsent: (typeof outbox.$inferSelect)[] = [];
      for (let i = 0; i < 400; i++) {
        unsent = await h.db.db
          .select()
          .from(outbox)
          .where(and(eq(outbox.userId, id), ne(outbox.status, 'sent')));
        if (unsent[0]?.lastError) break;
        await sleep(25);
      }
      t.equal(unsent.length, 1, 'one unsent email before');
      t.ok(unsent[0]?.lastError, 'its first attempt failed (the mail server is down)');
      const resetToken = tokenIn({ text: unsent[0]?.text ?? '' } as ParsedMail);

      const res = await post(h.app, '/delete-account', { password: PASSWORD }, first.token);
      t.equal(res.status, 204);
      t.equal(res.raw, '', 'no body');

      t.equal(await userRow(h, id), undefined, 'the row is gone');
      t.same(await h.db.db.select().from(sessions).where(eq(sessions.userId, id)), [], 'its sessions are gone');
      t.same(await h.db.db.select().from(refreshTokens).where(inArray(refreshTokens.sessionId, sessionIds)), [], 'its refresh tokens are gone');
      t.same(await h.db.db.select().from(emailTokens).where(eq(emailTokens.userId, id)), [], 'its email tokens are gone');
      t.same(await h.db.db.select().from(outbox).where(eq(outbox.userId, id)), [], 'its outbox rows are gone');
      t.same(
        await h.db.db
          .select()
          .from(outbox)
          .where(and(eq(outbox.recipient, u.email), ne(outbox.status, 'sent'))),
        [],
        'no unsent email to its address',
      );

      await h.mail.start();
      mailUp = true;
      assertProblem(
        t,
        await post(h.app, '/password-reset', { token: resetToken, newPassword1: 'another fine passphrase', newPassword2: 'another fine passphrase' }),
        'invalid_token',
      );

      await assertSessionDead(t, h, first, 'the session that deleted');
      await assertSessionDead(t, h, second, 'the rotated-away refresh token of the second session');
      await assertSessionDead(t, h, secondNow, 'the second session');
      assertProblem(t, await post(h.app, '/token', { email: u.email, password: PASSWORD }), 'invalid_credentials');

      // The same email and username register again: a new account, which the old tokens never reach.
      const again = await post(h.app, '/register', { email: u.email, username: u.username, password1: PASSWORD, password2: PASSWORD });
      t.equal(again.status, 201, 'the same email and username register again');
      const newId = again.body.user.id as string;
      t.not(newId, id, 'a new account');
      t.equal(again.body.user.verified, false, 'the new account starts unverified');
      assertProblem(t, await get(h.app, '/me', first.token), 'unauthenticated');
      assertProblem(t, await get(h.app, '/me', secondNow.token), 'unauthenticated');
      assertProblem(t, await post(h.app, '/token/refresh', { refreshToken: first.refreshToken }), 'invalid_token');
      assertProblem(t, await post(h.app, '/token/refresh', { refreshToken: secondNow.refreshToken }), 'invalid_token');
      assertProblem(t, await post(h.app, '/token/verify', { token: first.token }), 'invalid_token');
      const me = await get(h.app, '/me', again.body.token);
      t.equal(me.status, 200, "the new account's own token works");
      t.equal(me.body.user.id, newId);

      // The new account gets its own activation email; the old reset email never goes out.
      await h.mail.waitFor(u.email, 2);
      await new Promise((r) => setTimeout(r, 300));
      t.same(
        h.mail.to(u.email).map((m) => m.subject),
        ['Activate your account', 'Activate your account'],
        'only the two activation emails reached the address; the deleted account’s reset email was dropped',
      );
    },
  );
});

// =============================================================================================
// UPDATE_FIELDS=firstName,lastName,username,email.

t.test('UPDATE_FIELDS=firstName,lastName,username,email', async (t) => {
  const h = await buildTestApp(t, { env: { UPDATE_FIELDS: 'firstName,lastName,username,email' } });

  const outboxOf = async (id: string) => h.db.db.select().from(outbox).where(eq(outbox.userId, id));

  await t.test('GA/SDA UpdateAccount "settings_b → success": username, firstName and lastName together', async (t) => {
    const u = await verifiedUser(h);
    const username = uniqueUser('renamed').username;
    const res = await post(h.app, '/update-account', { username, firstName: 'Ada', lastName: 'Lovelace' }, u.token);
    t.equal(res.status, 200);
    t.match(res.body.user, { username, firstName: 'Ada', lastName: 'Lovelace', email: u.email, verified: true });
    const row = await userRow(h, u.user.id);
    t.match(row, { username, firstName: 'Ada', lastName: 'Lovelace', email: u.email, verified: true });
    const login = await post(h.app, '/token', { username: username.toUpperCase(), password: PASSWORD });
    t.equal(login.status, 200, 'logs in with the new username');
    assertProblem(t, await post(h.app, '/token', { username: u.username, password: PASSWORD }), 'invalid_credentials');
  });

  await t.test(
    'GA UpdateAccount "settings_b unique clash" (here: username uniqueness): a username taken by another account, in another case → 409 unique on errors.username',
    async (t) => {
      const other = await registerUser(h.app);
      const u = await verifiedUser(h);
      const res = await post(h.app, '/update-account', { username: other.username.toUpperCase(), firstName: 'Ada' }, u.token);
      const message = 'A user with that username already exists.';
      assertProblem(t, res, 'unique', { detail: message, errors: { username: [{ message, code: 'unique' }] } });
      const row = await userRow(h, u.user.id);
      t.equal(row.username, u.username, 'username unchanged');
      t.equal(row.firstName, '', 'nothing else changed either');
    },
  );

  await t.test('an email taken by another account, in another case → 200 as for a free one (no enumeration), still verified, nothing changed, nothing to the taken address', async (t) => {
    const other = await registerUser(h.app);
    const u = await verifiedUser(h);
    const res = await post(h.app, '/update-account', { email: other.email.toUpperCase(), password: PASSWORD }, u.token);
    t.equal(res.status, 200, 'the same answer as for a free address (issue 7 item 1; the original contract said 409)');
    t.match(res.body.user, { email: u.email, verified: true });
    const row = await userRow(h, u.user.id);
    t.equal(row.email, u.email, 'email unchanged');
    t.equal(row.verified, true, 'still verified');
    t.strictSame((await outboxOf(other.user.id)).map((m) => m.kind), ['activation'], 'the taken address got nothing new');
  });

  await t.test('invalid username or email syntax → 400 naming the field, nothing changed', async (t) => {
    const u = await verifiedUser(h);
    const before = await userRow(h, u.user.id);
    for (const username of ['has space', 'semi;colon', 'slash/name', '', 'a'.repeat(151)]) {
      const res = await post(h.app, '/update-account', { username }, u.token);
      assertProblem(t, res, 'validation_failed', { fields: ['username'] });
    }
    for (const email of ['not-an-email', 'a@', '', `${'a'.repeat(250)}@example.com`]) {
      const res = await post(h.app, '/update-account', { email }, u.token);
      assertProblem(t, res, 'validation_failed', { fields: ['email'] });
    }
    t.strictSame(await userRow(h, u.user.id), before, 'the row is unchanged');
  });

  await t.test(
    'changing the email → 200, still verified and pending; the token mailed to the new address moves it; links sent to the old address die',
    async (t) => {
      const u = await verifiedUser(h);
      t.equal((await post(h.app, '/send-password-reset-email', { email: u.email })).status, 202);
      await h.app.backgroundIdle();
      const resetMail = await h.mail.waitFor(u.email, 2);
      t.equal(resetMail.subject, 'Reset your password');
      const oldReset = tokenIn(resetMail);

      const newEmail = uniqueUser('moved').email;
      const res = await post(h.app, '/update-account', { email: newEmail, password: PASSWORD }, u.token);
      t.equal(res.status, 200);
      t.equal(res.body.user.email, u.email, 'the old address until the new one is confirmed');
      t.equal(res.body.user.verified, true, 'still verified');
      t.match(await userRow(h, u.user.id), { email: u.email, verified: true });
      t.equal((await post(h.app, '/update-account', { firstName: 'Ada' }, u.token)).status, 200, 'verified-only endpoints keep working');

      const confirm = await h.mail.waitFor(newEmail, 1);
      t.equal(confirm.subject, 'Confirm your new email address', 'a confirmation email to the new address');
      t.equal((await post(h.app, '/confirm-email-change', { token: tokenIn(confirm) })).status, 204);

      const viaOldReset = await post(h.app, '/password-reset', {
        token: oldReset,
        newPassword1: 'a different passphrase',
        newPassword2: 'a different passphrase',
      });
      assertProblem(t, viaOldReset, 'invalid_token');
      const me = await get(h.app, '/me', u.token);
      t.equal(me.body.user.verified, true);
      t.equal(me.body.user.email, newEmail);
      t.equal((await logIn(h, newEmail)).body.user.id, u.user.id, 'logs in with the new email');
      assertProblem(t, await post(h.app, '/token', { email: u.email, password: PASSWORD }), 'invalid_credentials');
    },
  );

  await t.test('changing only the case of one’s own email keeps the account verified and sends nothing', async (t) => {
    const u = await verifiedUser(h);
    const before = await outboxOf(u.user.id);
    const [local, domain] = u.email.split('@');
    const recased = `${local.toUpperCase()}@${domain.toUpperCase()}`;
    const res = await post(h.app, '/update-account', { email: recased, password: PASSWORD }, u.token);
    t.equal(res.status, 200);
    t.equal(res.body.user.verified, true, 'still verified');
    t.equal(res.body.user.email.toLowerCase(), u.email.toLowerCase());
    t.equal((await userRow(h, u.user.id)).verified, true, 'still verified in the database');
    t.equal((await outboxOf(u.user.id)).length, before.length, 'no activation email queued');
    t.equal((await post(h.app, '/update-account', { firstName: 'Ada' }, u.token)).status, 200, 'verified-only endpoints still work');
  });

  await t.test('setting one’s own username and email unchanged is not a clash', async (t) => {
    const u = await verifiedUser(h);
    const res = await post(h.app, '/update-account', { username: u.username, email: u.email, password: PASSWORD }, u.token);
    t.equal(res.status, 200);
    t.equal(res.body.user.verified, true);
  });
});
