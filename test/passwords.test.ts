// Passwords: POST /send-password-reset-email, /password-reset, /password-set, /password-change
// (the README's "Passwords" and "Password policy"), and the counterparts of the seed tests of
// those mixins in django-graphql-auth.
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { eq } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { outbox, users } from '../src/db/schema.js';
import type { App } from '../src/routes/types.js';
import {
  assertProblem,
  buildTestApp,
  get,
  PASSWORD,
  post,
  recipientOf,
  registerUser,
  type Res,
  sleep,
  type TestApp,
  outboxSettled,
  tokenIn,
  uniqueUser,
  userRow,
  verifiedUser,
} from './helpers.js';

const RESET_SUBJECT = 'Reset your password';
const ACTIVATION_SUBJECT = 'Activate your account';
const SET_SUBJECT = 'Set your password';
const CHANGED_SUBJECT = 'Your password was changed';

const MISMATCH = [{ message: 'The two password fields didn’t match.', code: 'password_mismatch' }];
// Django's order: too short, too common (when "123" is on the list), entirely numeric.
const SHORT_8 = { message: 'This password is too short. It must contain at least 8 characters.', code: 'password_too_short' };
const COMMON = { message: 'This password is too common.', code: 'password_too_common' };
const NUMERIC = { message: 'This password is entirely numeric.', code: 'password_entirely_numeric' };
const TOO_SIMILAR_USERNAME = [{ message: 'The password is too similar to the username.', code: 'password_too_similar' }];
const INVALID_OLD_PASSWORD = { oldPassword: [{ message: 'Invalid password.', code: 'invalid_password' }] };

// ---------------------------------------------------------------------------------------------
// Helpers

/** A POST with extra request headers (Host, X-Forwarded-Host…). */
async function postWith(app: App, url: string, body: unknown, headers: Record<string, string>): Promise<Res> {
  const res = await app.inject({ method: 'POST', url, payload: body as object, headers });
  return { status: res.statusCode, headers: res.headers, body: res.body ? JSON.parse(res.body) : undefined, raw: res.body };
}

/** "123"/"123": too short and entirely numeric (and too common, between them, if "123" is on the list), on newPassword2. */
function rules123(t: Test, res: Res): void {
  assertProblem(t, res, 'validation_failed');
  t.strictSame(Object.keys(res.body.errors ?? {}), ['newPassword2'], 'errors on newPassword2 only');
  const errors: { code: string }[] = res.body.errors?.newPassword2 ?? [];
  t.strictSame(errors.filter((e) => e.code !== 'password_too_common'), [SHORT_8, NUMERIC], 'too short, entirely numeric');
  if (errors.length === 3) t.strictSame(errors, [SHORT_8, COMMON, NUMERIC], "in Django's order");
}

/** Asks for a reset email and returns the token of the n-th reset email to that address. */
async function resetToken(h: TestApp, email: string, n = 1): Promise<string> {
  const res = await post(h.app, '/send-password-reset-email', { email });
  if (res.status !== 202) throw new Error(`send-password-reset-email: ${res.status} ${res.raw}`);
  await h.app.backgroundIdle();
  return tokenIn(await h.mail.waitForSubject(email, RESET_SUBJECT, n));
}

async function hashOf(h: TestApp, userId: string): Promise<string | null> {
  const [row] = await h.db.db.select({ hash: users.passwordHash }).from(users).where(eq(users.id, userId));
  return row.hash;
}

const login = (h: TestApp, email: string, password: string) => post(h.app, '/token', { email, password });

/** Registers a passwordless account (ALLOW_PASSWORDLESS_REGISTRATION) and returns it with its password-set token. */
async function passwordlessUser(h: TestApp) {
  const u = uniqueUser('nopw');
  const res = await post(h.app, '/register', u);
  if (res.status !== 201) throw new Error(`passwordless register: ${res.status} ${res.raw}`);
  const setMail = await h.mail.waitForSubject(u.email, SET_SUBJECT);
  const activationMail = await h.mail.waitForSubject(u.email, ACTIVATION_SUBJECT);
  return { ...u, id: res.body.user.id as string, register: res, setMail, setToken: tokenIn(setMail), activationToken: tokenIn(activationMail) };
}

/** A tiny HTTP client on its own thread: POSTs JSON and reports how long the answer took. */
const TIMING_CLIENT = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', async ({ url, body }) => {
  const start = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  await res.arrayBuffer();
  parentPort.postMessage({ ms: performance.now() - start, status: res.status });
});
`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---------------------------------------------------------------------------------------------
// Default settings (plus email among UPDATE_FIELDS, for the email-change case).

t.test('passwords, default settings', async (t) => {
  const h = await buildTestApp(t, { env: { UPDATE_FIELDS: 'firstName,lastName,email' } });

  // ----- send-password-reset-email

  t.test('send-password-reset-email: a malformed email is a 400 with errors.email', async (t) => {
    for (const email of ['not-an-email', 'a@', '']) {
      const res = await post(h.app, '/send-password-reset-email', { email });
      assertProblem(t, res, 'validation_failed');
      t.ok(Array.isArray(res.body.errors?.email) && res.body.errors.email.length > 0, `errors.email for ${JSON.stringify(email)}`);
      t.ok(['invalid', 'required'].includes(res.body.errors.email[0].code), 'a field-level code');
    }
    assertProblem(t, await post(h.app, '/send-password-reset-email', {}), 'validation_failed', {
      errors: { email: [{ message: 'This field is required.', code: 'required' }] },
    });
  });

  t.test('send-password-reset-email: the email goes to the stored address, not to the one typed in the request', async (t) => {
    const base = uniqueUser('Mixed');
    const stored = `Mixed.${base.username}@Example.com`;
    const u = await registerUser(h.app, { email: stored });
    await h.mail.waitForSubject(stored, ACTIVATION_SUBJECT);
    t.equal(u.user.email, stored, 'stored as registered (case kept)');
    const verify = await post(h.app, '/verify-account', { token: tokenIn(h.mail.to(stored, ACTIVATION_SUBJECT)[0]) });
    t.equal(verify.status, 204);

    const res = await post(h.app, '/send-password-reset-email', { email: stored.toUpperCase() });
    t.equal(res.status, 202);
    await h.app.backgroundIdle();
    const mail = await h.mail.waitForSubject(stored, RESET_SUBJECT);
    const [local, domain] = String(recipientOf(mail)).split('@');
    t.equal(local, stored.split('@')[0], 'the recipient is the stored address (local part exactly as stored)');
    t.equal(domain.toLowerCase(), 'example.com');
    const rows = await h.db.db.select().from(outbox).where(eq(outbox.userId, u.user.id));
    t.ok(rows.length > 0 && rows.every((r) => r.recipient === stored), 'every outbox row of the account goes to the stored address');
  });

  t.test('send-password-reset-email: Host and X-Forwarded-Host do not change the emailed link', async (t) => {
    const u = await verifiedUser(h);
    const cases: [string, Record<string, string>][] = [
      ['Host', { host: 'evil.test' }],
      ['X-Forwarded-Host', { 'x-forwarded-host': 'evil.test', 'x-forwarded-proto': 'http' }],
      ['Forwarded', { forwarded: 'host=evil.test;proto=http' }],
    ];
    let n = 0;
    for (const [name, headers] of cases) {
      const res = await postWith(h.app, '/send-password-reset-email', { email: u.email }, headers);
      t.equal(res.status, 202, name);
      await h.app.backgroundIdle();
      const mail = await h.mail.waitForSubject(u.email, RESET_SUBJECT, ++n);
      t.match(mail.text ?? '', /https:\/\/app\.example\.com\/password-reset\/[A-Za-z0-9_-]{40,}/, `${name}: link on PASSWORD_RESET_URL`);
      t.notMatch(mail.text ?? '', /evil\.test/, `${name}: no trace of the header in the text`);
      t.notMatch(String(mail.html ?? ''), /evil\.test/, `${name}: no trace of the header in the HTML`);
    }
  });

  t.test('send-password-reset-email: unknown and known addresses answer in about the same time', async (t) => {
    const u = await verifiedUser(h);
    const unknown = uniqueUser('ghost').email;
    // Timed by a real HTTP client on its own thread, over a socket: what a client outside sees.
    // (In-process timing would also count work the server does after the answer has left.)
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as AddressInfo;
    const client = new Worker(TIMING_CLIENT, { eval: true });
    t.teardown(() => client.terminate());
    const timeOne = async (email: string) => {
      // The error listener goes with its answer: one left behind per request was a listener leak.
      const answer = new Promise<{ ms: number; status: number }>((resolve, reject) => {
        client.once('error', reject);
        client.once('message', (m) => {
          client.off('error', reject);
          resolve(m);
        });
      });
      client.postMessage({ url: `http://127.0.0.1:${port}/send-password-reset-email`, body: JSON.stringify({ email }) });
      const { ms, status } = await answer;
      if (status !== 202) throw new Error(`unexpected ${status}`);
      await h.app.backgroundIdle(); // the work after the answer is not timed, and does not slow the next one
      return ms;
    };
    for (let i = 0; i < 3; i++) {
      await timeOne(unknown);
      await timeOne(u.email);
    }
    const known: number[] = [];
    const ghost: number[] = [];
    for (let i = 0; i < 15; i++) {
      if (i % 2) {
        known.push(await timeOne(u.email));
        ghost.push(await timeOne(unknown));
      } else {
        ghost.push(await timeOne(unknown));
        known.push(await timeOne(u.email));
      }
    }
    const mk = median(known);
    const mg = median(ghost);
    const ratio = mk / mg;
    t.ok((ratio >= 0.5 && ratio <= 2) || Math.abs(mk - mg) < 2, `median known ${mk.toFixed(2)} ms vs unknown ${mg.toFixed(2)} ms`);
    await h.app.backgroundIdle();
    // The emails leave through the outbox after the answer: wait for them rather than race the worker.
    t.ok(await h.mail.waitForSubject(u.email, RESET_SUBJECT), 'the known address did get its emails');
  });

  // ----- password-reset

  t.test('password-reset: a valid token sets the new password; old refused, new accepted, hash changed, email sent', async (t) => {
    const u = await verifiedUser(h);
    const token = await resetToken(h, u.email);
    const mail = h.mail.to(u.email, RESET_SUBJECT)[0];
    t.match(mail.text ?? '', /https:\/\/app\.example\.com\/password-reset\//, 'the link is on PASSWORD_RESET_URL');
    const before = await hashOf(h, u.user.id);
    const newPassword = 'a brand new reset passphrase';

    const res = await post(h.app, '/password-reset', { token, newPassword1: newPassword, newPassword2: newPassword });
    t.equal(res.status, 204, res.raw);
    t.equal(res.raw, '', 'no body');
    const after = await hashOf(h, u.user.id);
    t.ok(after && after !== before, 'the stored hash changed');

    assertProblem(t, await login(h, u.email, u.password), 'invalid_credentials');
    const ok = await login(h, u.email, newPassword);
    t.equal(ok.status, 200, 'the new password logs in');
    t.equal(ok.body.user.verified, true, 'still verified');
    t.equal(ok.body.user.hasPassword, true);
    await h.mail.waitForSubject(u.email, CHANGED_SUBJECT);
    t.pass('"Your password was changed" arrived');

    // Single use: the same token again.
    assertProblem(t, await post(h.app, '/password-reset', { token, newPassword1: 'yet another passphrase', newPassword2: 'yet another passphrase' }), 'invalid_token');
    t.equal(await hashOf(h, u.user.id), after, 'the second attempt changed nothing');
    t.equal((await login(h, u.email, newPassword)).status, 200);
  });

  t.test('password-reset ends every session of the account (access tokens 401, refresh tokens invalid_token)', async (t) => {
    const u = await verifiedUser(h);
    const second = await login(h, u.email, u.password);
    t.equal(second.status, 200);
    const sessions = [
      { token: u.token, refreshToken: u.refreshToken },
      { token: second.body.token as string, refreshToken: second.body.refreshToken as string },
    ];
    for (const s of sessions) t.equal((await get(h.app, '/me', s.token)).status, 200, 'alive before the reset');

    const token = await resetToken(h, u.email);
    const res = await post(h.app, '/password-reset', { token, newPassword1: 'reset ends the sessions', newPassword2: 'reset ends the sessions' });
    t.equal(res.status, 204, res.raw);

    for (const s of sessions) {
      const me = await get(h.app, '/me', s.token);
      assertProblem(t, me, 'unauthenticated');
      assertProblem(t, await post(h.app, '/token/verify', { token: s.token }), 'invalid_token');
      assertProblem(t, await post(h.app, '/token/refresh', { refreshToken: s.refreshToken }), 'invalid_token');
    }
    const fresh = await login(h, u.email, 'reset ends the sessions');
    t.equal(fresh.status, 200);
    t.equal((await get(h.app, '/me', fresh.body.token)).status, 200, 'a new login works');
  });

  t.test('password-reset: rule errors on newPassword2 (similarity uses the token’s account); hash unchanged; the token survives', async (t) => {
    const u = await verifiedUser(h);
    const token = await resetToken(h, u.email);
    const before = await hashOf(h, u.user.id);

    assertProblem(t, await post(h.app, '/password-reset', { token, newPassword1: 'one good passphrase', newPassword2: 'another passphrase' }), 'validation_failed', {
      errors: { newPassword2: MISMATCH },
    });
    rules123(t, await post(h.app, '/password-reset', { token, newPassword1: '123', newPassword2: '123' }));
    // Common passwords are matched case-insensitively.
    assertProblem(t, await post(h.app, '/password-reset', { token, newPassword1: 'PassWord', newPassword2: 'PassWord' }), 'validation_failed', {
      errors: { newPassword2: [COMMON] },
    });
    // The body names no account: only the token tells whose username this looks like.
    const similar = `${u.username}!`;
    assertProblem(t, await post(h.app, '/password-reset', { token, newPassword1: similar, newPassword2: similar }), 'validation_failed', {
      errors: { newPassword2: TOO_SIMILAR_USERNAME },
    });
    assertProblem(t, await post(h.app, '/password-reset', { token, newPassword1: 'only one field' }), 'validation_failed', {
      errors: { newPassword2: [{ message: 'This field is required.', code: 'required' }] },
    });

    t.equal(await hashOf(h, u.user.id), before, 'hash unchanged after the failed attempts');
    t.equal((await login(h, u.email, u.password)).status, 200, 'the old password still works');
    t.equal(h.mail.to(u.email, CHANGED_SUBJECT).length, 0, 'no "password changed" email for a failed attempt');

    // Validation comes before the token is consumed: the link still works.
    const res = await post(h.app, '/password-reset', { token, newPassword1: 'finally a good one', newPassword2: 'finally a good one' });
    t.equal(res.status, 204, res.raw);
  });

  t.test('password-reset: a garbage token is invalid_token and changes nothing', async (t) => {
    const u = await verifiedUser(h);
    const before = await hashOf(h, u.user.id);
    for (const token of ['garbage', 'x'.repeat(43), `${(await resetToken(h, u.email)).slice(0, -2)}AA`]) {
      assertProblem(t, await post(h.app, '/password-reset', { token, newPassword1: 'a valid new passphrase', newPassword2: 'a valid new passphrase' }), 'invalid_token');
    }
    t.equal(await hashOf(h, u.user.id), before, 'hash unchanged');
    t.equal((await login(h, u.email, u.password)).status, 200);
  });

  t.test('password-reset: tokens of another purpose are invalid_token (activation, password-set)', async (t) => {
    const u = await registerUser(h.app);
    const activation = tokenIn(await h.mail.waitForSubject(u.email, ACTIVATION_SUBJECT));
    assertProblem(t, await post(h.app, '/password-reset', { token: activation, newPassword1: 'a valid new passphrase', newPassword2: 'a valid new passphrase' }), 'invalid_token');
    t.equal((await userRow(h, u.user.id)).verified, false, 'still unverified');
    t.equal((await post(h.app, '/verify-account', { token: activation })).status, 204, 'the activation token is still good for its purpose');

    const v = await verifiedUser(h);
    const reset = await resetToken(h, v.email);
    assertProblem(t, await post(h.app, '/password-set', { token: reset, newPassword1: 'a valid new passphrase', newPassword2: 'a valid new passphrase' }), 'invalid_token');
    assertProblem(t, await post(h.app, '/verify-account', { token: reset }), 'invalid_token');
    t.equal((await post(h.app, '/password-reset', { token: reset, newPassword1: 'a valid new passphrase', newPassword2: 'a valid new passphrase' })).status, 204);
  });

  t.test('password-reset: expired after EXPIRATION_PASSWORD_RESET_TOKEN (1h), still good just before', async (t) => {
    const a = await verifiedUser(h);
    const b = await verifiedUser(h);
    const tokenA = await resetToken(h, a.email);
    const tokenB = await resetToken(h, b.email);
    const beforeB = await hashOf(h, b.user.id);

    h.clock.advance(3600 - 30);
    const ok = await post(h.app, '/password-reset', { token: tokenA, newPassword1: 'just in time passphrase', newPassword2: 'just in time passphrase' });
    t.equal(ok.status, 204, `30 s before expiry: ${ok.raw}`);

    h.clock.advance(31);
    assertProblem(t, await post(h.app, '/password-reset', { token: tokenB, newPassword1: 'too late passphrase', newPassword2: 'too late passphrase' }), 'expired_token');
    t.equal(await hashOf(h, b.user.id), beforeB, 'hash unchanged');
    t.equal((await login(h, b.email, b.password)).status, 200, 'the old password still works');
  });

  t.test('password-reset: an older reset token is refused once a newer one was used', async (t) => {
    const u = await verifiedUser(h);
    const first = await resetToken(h, u.email, 1);
    const second = await resetToken(h, u.email, 2);
    t.not(first, second);
    t.equal((await post(h.app, '/password-reset', { token: second, newPassword1: 'the second link wins', newPassword2: 'the second link wins' })).status, 204);
    const after = await hashOf(h, u.user.id);
    assertProblem(t, await post(h.app, '/password-reset', { token: first, newPassword1: 'the first link is dead', newPassword2: 'the first link is dead' }), 'invalid_token');
    t.equal(await hashOf(h, u.user.id), after, 'hash unchanged');
    t.equal((await login(h, u.email, 'the second link wins')).status, 200);
  });

  t.test('password-reset: a reset token is refused after /password-change', async (t) => {
    const u = await verifiedUser(h);
    const token = await resetToken(h, u.email);
    const change = await post(h.app, '/password-change', { oldPassword: u.password, newPassword1: 'changed by the owner', newPassword2: 'changed by the owner' }, u.token);
    t.equal(change.status, 200, change.raw);
    assertProblem(t, await post(h.app, '/password-reset', { token, newPassword1: 'an old link in a mailbox', newPassword2: 'an old link in a mailbox' }), 'invalid_token');
    t.equal((await login(h, u.email, 'changed by the owner')).status, 200);
    assertProblem(t, await login(h, u.email, 'an old link in a mailbox'), 'invalid_credentials');
  });

  t.test('password-reset: a reset link sent before an email change cannot reset once the change is confirmed', async (t) => {
    const u = await verifiedUser(h);
    const token = await resetToken(h, u.email);
    const newEmail = uniqueUser('moved').email;
    const upd = await post(h.app, '/update-account', { email: newEmail, password: PASSWORD }, u.token);
    t.equal(upd.status, 200, upd.raw);
    t.equal(upd.body.user.verified, true, 'still verified: the change is pending');
    const confirm = await h.mail.waitForSubject(newEmail, 'Confirm your new email address');
    t.equal((await post(h.app, '/confirm-email-change', { token: tokenIn(confirm) })).status, 204);
    const before = await hashOf(h, u.user.id);
    assertProblem(t, await post(h.app, '/password-reset', { token, newPassword1: 'a link to the old mailbox', newPassword2: 'a link to the old mailbox' }), 'invalid_token');
    const row = await userRow(h, u.user.id);
    t.equal(row.email, newEmail);
    t.equal(row.passwordHash, before, 'hash unchanged');

    // The new address is proven: a reset request sends it a reset link.
    t.equal((await post(h.app, '/send-password-reset-email', { email: newEmail })).status, 202);
    await h.app.backgroundIdle();
    await h.mail.waitForSubject(newEmail, RESET_SUBJECT);
  });

  t.test('password-reset race: ten concurrent redemptions of one token, exactly one wins', async (t) => {
    const u = await verifiedUser(h);
    const token = await resetToken(h, u.email);
    const passwords = Array.from({ length: 10 }, (_, i) => `concurrent passphrase number ${i}`);
    const results = await Promise.all(passwords.map((p) => post(h.app, '/password-reset', { token, newPassword1: p, newPassword2: p })));
    const winners = results.map((r, i) => (r.status === 204 ? i : -1)).filter((i) => i >= 0);
    t.equal(winners.length, 1, `exactly one 204 (got ${results.map((r) => r.status).join(',')})`);
    for (const r of results) if (r.status !== 204) assertProblem(t, r, 'invalid_token');
    const logins = await Promise.all(passwords.map((p) => login(h, u.email, p)));
    t.same(
      logins.map((l) => l.status),
      passwords.map((_, i) => (i === winners[0] ? 200 : 401)),
      'only the winner’s password logs in',
    );
    assertProblem(t, await login(h, u.email, u.password), 'invalid_credentials');
    await h.mail.waitForSubject(u.email, CHANGED_SUBJECT);
    await sleep(200);
    t.equal(h.mail.to(u.email, CHANGED_SUBJECT).length, 1, 'one "password changed" email');
  });

  // ----- password-change

  t.test('password-change: no access token → 401, even with a bad body', async (t) => {
    for (const body of [{}, { nonsense: true }, { oldPassword: 1 }, { oldPassword: PASSWORD, newPassword1: 'x', newPassword2: 'y' }]) {
      const res = await post(h.app, '/password-change', body);
      assertProblem(t, res, 'unauthenticated');
      t.equal(res.headers['www-authenticate'], 'Bearer');
    }
    const forged = await post(h.app, '/password-change', {}, 'not.a.jwt');
    assertProblem(t, forged, 'unauthenticated');
  });

  t.test('password-change: an unverified account → 403 not_verified, nothing changed', async (t) => {
    const u = await registerUser(h.app);
    t.type(u.token, 'string', 'unverified accounts may log in by default');
    const before = await hashOf(h, u.user.id);
    assertProblem(t, await post(h.app, '/password-change', { oldPassword: u.password, newPassword1: 'an unverified change', newPassword2: 'an unverified change' }, u.token), 'not_verified');
    t.equal(await hashOf(h, u.user.id), before);
    t.equal((await get(h.app, '/me', u.token)).status, 200, 'the session is untouched');
  });

  t.test('password-change: a wrong oldPassword → 400 invalid_password on errors.oldPassword', async (t) => {
    const u = await verifiedUser(h);
    const before = await hashOf(h, u.user.id);
    assertProblem(t, await post(h.app, '/password-change', { oldPassword: 'not my password', newPassword1: 'a good new passphrase', newPassword2: 'a good new passphrase' }, u.token), 'invalid_password', {
      errors: INVALID_OLD_PASSWORD,
    });
    t.equal(await hashOf(h, u.user.id), before, 'hash unchanged');
    t.equal((await get(h.app, '/me', u.token)).status, 200, 'the session is untouched');
    t.equal((await post(h.app, '/token/refresh', { refreshToken: u.refreshToken })).status, 200, 'the refresh token is untouched');
  });

  t.test('password-change: mismatch and rule errors on newPassword2, no tokens, hash and session unchanged', async (t) => {
    const u = await verifiedUser(h);
    const before = await hashOf(h, u.user.id);
    const mismatch = await post(h.app, '/password-change', { oldPassword: u.password, newPassword1: 'one good passphrase', newPassword2: 'another passphrase' }, u.token);
    assertProblem(t, mismatch, 'validation_failed', { errors: { newPassword2: MISMATCH } });
    t.equal(mismatch.body.token, undefined, 'no token');
    t.equal(mismatch.body.refreshToken, undefined, 'no refresh token');
    const weak = await post(h.app, '/password-change', { oldPassword: u.password, newPassword1: '123', newPassword2: '123' }, u.token);
    rules123(t, weak);
    t.equal(weak.body.token, undefined, 'no token');
    const similar = `${u.username}!`;
    assertProblem(t, await post(h.app, '/password-change', { oldPassword: u.password, newPassword1: similar, newPassword2: similar }, u.token), 'validation_failed', {
      errors: { newPassword2: TOO_SIMILAR_USERNAME },
    });
    t.equal(await hashOf(h, u.user.id), before, 'hash unchanged');
    t.equal((await get(h.app, '/me', u.token)).status, 200, 'the session is untouched');
    t.equal((await login(h, u.email, u.password)).status, 200, 'the old password still works');
  });

  t.test('password-change: the body (400) is checked before verified (403)', async (t) => {
    // On bearer endpoints: the access token, then the body (400), then verified (403), then
    // the password confirmation. Password rules and the mismatch are body errors (validation_failed).
    const u = await registerUser(h.app);
    assertProblem(t, await post(h.app, '/password-change', { oldPassword: u.password, newPassword1: 'one good passphrase', newPassword2: 'another passphrase' }, u.token), 'validation_failed', {
      errors: { newPassword2: MISMATCH },
    });
    assertProblem(t, await post(h.app, '/password-change', { oldPassword: u.password, newPassword1: 'x' }, u.token), 'validation_failed', {
      errors: { newPassword2: [{ message: 'This field is required.', code: 'required' }] },
    });
  });

  t.test('password-change: the body (400) is checked before the password confirmation (invalid_password)', async (t) => {
    const u = await verifiedUser(h);
    rules123(t, await post(h.app, '/password-change', { oldPassword: 'not my password', newPassword1: '123', newPassword2: '123' }, u.token));
  });

  t.test('password-change: success → fresh TokenOutput; every old session dies; new password only', async (t) => {
    const u = await verifiedUser(h);
    const other = await login(h, u.email, u.password);
    t.equal(other.status, 200);
    const before = await hashOf(h, u.user.id);
    const newPassword = 'a changed passphrase';

    const res = await post(h.app, '/password-change', { oldPassword: u.password, newPassword1: newPassword, newPassword2: newPassword }, u.token);
    t.equal(res.status, 200, res.raw);
    t.equal(res.headers['cache-control'], 'no-store');
    const out = res.body;
    t.type(out.token, 'string');
    t.not(out.token, u.token, 'a new access token');
    t.equal(out.tokenType, 'Bearer');
    t.ok(Number.isInteger(out.expiresIn) && out.expiresIn > 0, 'expiresIn');
    t.equal(out.payload.sub, u.user.id, 'payload.sub');
    t.type(out.refreshToken, 'string');
    t.not(out.refreshToken, u.refreshToken, 'a new refresh token');
    t.ok(Number.isInteger(out.refreshExpiresIn), 'refreshExpiresIn');
    t.equal(out.user.id, u.user.id);
    t.equal(out.user.verified, true);
    t.equal(out.user.hasPassword, true);
    t.notOk('password' in out.user || 'passwordHash' in out.user, 'no hash in the user');
    const after = await hashOf(h, u.user.id);
    t.ok(after && after !== before, 'hash changed');

    // The calling session and every other one are dead.
    for (const [name, s] of [['this call', { token: u.token, refreshToken: u.refreshToken }], ['another session', other.body]] as const) {
      assertProblem(t, await get(h.app, '/me', s.token), 'unauthenticated');
      assertProblem(t, await post(h.app, '/token/refresh', { refreshToken: s.refreshToken }), 'invalid_token');
      t.pass(`${name}: dead`);
    }
    // The new ones work.
    const me = await get(h.app, '/me', out.token);
    t.equal(me.status, 200);
    t.equal(me.body.user.id, u.user.id);
    const refreshed = await post(h.app, '/token/refresh', { refreshToken: out.refreshToken });
    t.equal(refreshed.status, 200, 'the new refresh token works');

    assertProblem(t, await login(h, u.email, u.password), 'invalid_credentials');
    t.equal((await login(h, u.email, newPassword)).status, 200, 'the new password logs in');
    await h.mail.waitForSubject(u.email, CHANGED_SUBJECT);
    t.pass('"Your password was changed" arrived');
  });

  t.test('passwords are NFC-normalised: é typed as one code point or as e + combining accent is the same password', async (t) => {
    const u = await verifiedUser(h);
    const composed = 'mot de passe \u00e9t\u00e9 cr\u00e8me';
    const decomposed = 'mot de passe e\u0301te\u0301 cre\u0300me';
    t.not(composed, decomposed);
    t.equal(composed, decomposed.normalize('NFC'));
    const res = await post(h.app, '/password-change', { oldPassword: u.password, newPassword1: composed, newPassword2: composed }, u.token);
    t.equal(res.status, 200, res.raw);
    t.equal((await login(h, u.email, decomposed)).status, 200, 'decomposed form logs in');
    t.equal((await login(h, u.email, composed)).status, 200, 'composed form logs in');
    assertProblem(t, await login(h, u.email, 'mot de passe ete creme'), 'invalid_credentials');

    // And the other way round, through a reset.
    const token = await resetToken(h, u.email);
    const reset = await post(h.app, '/password-reset', { token, newPassword1: decomposed, newPassword2: decomposed });
    t.equal(reset.status, 204, reset.raw);
    t.equal((await login(h, u.email, composed)).status, 200, 'composed form logs in after a decomposed reset');
  });
});

// ---------------------------------------------------------------------------------------------
// Passwordless registration with password-set emails, and a small PASSWORD_MAX_LENGTH.

t.test('passwords, passwordless registration (SEND_PASSWORD_SET_EMAIL) and PASSWORD_MAX_LENGTH=64', async (t) => {
  const h = await buildTestApp(t, {
    env: { ALLOW_PASSWORDLESS_REGISTRATION: 'true', SEND_PASSWORD_SET_EMAIL: 'true', PASSWORD_MAX_LENGTH: '64' },
  });

  t.test('send-password-reset-email: the same 202 for unknown, verified, unverified, inactive and passwordless; the right emails only', async (t) => {
    const unknown = uniqueUser('ghost').email;
    const verified = await verifiedUser(h);
    const unverified = await registerUser(h.app);
    await h.mail.waitForSubject(unverified.email, ACTIVATION_SUBJECT);
    const inactive = await verifiedUser(h);
    const del = await post(h.app, '/delete-account', { password: inactive.password }, inactive.token);
    t.equal(del.status, 204, del.raw);
    assertProblem(t, await login(h, inactive.email, inactive.password), 'invalid_credentials');
    const nopw = await passwordlessUser(h);
    t.equal(nopw.register.body.user.hasPassword, false);
    await outboxSettled(h); // every registration email has arrived before counting
    const count = (email: string) => h.mail.to(email).length;
    const outboxCount = async (email: string) => (await h.db.db.select().from(outbox).where(eq(outbox.recipient, email))).length;
    const beforeMail = { inactive: count(inactive.email), nopw: count(nopw.email), unverified: count(unverified.email), verified: count(verified.email) };
    const beforeOutbox = { inactive: await outboxCount(inactive.email), unknown: await outboxCount(unknown) };

    const cases = { unknown, verified: verified.email, unverified: unverified.email, inactive: inactive.email, passwordless: nopw.email };
    const answers: Record<string, Res> = {};
    for (const [name, email] of Object.entries(cases)) answers[name] = await post(h.app, '/send-password-reset-email', { email });
    const strip = (headers: Res['headers']) => {
      const { date: _date, 'x-request-id': _id, 'request-id': _rid, ...rest } = headers;
      return rest;
    };
    for (const [name, res] of Object.entries(answers)) {
      t.equal(res.status, 202, `${name}: 202`);
      t.strictSame(res.body, answers.unknown.body, `${name}: same body as for an unknown address`);
      t.strictSame(strip(res.headers), strip(answers.unknown.headers), `${name}: same headers as for an unknown address`);
    }
    t.equal(answers.unknown.headers['cache-control'], 'no-store');

    await h.app.backgroundIdle();
    const reset = await h.mail.waitForSubject(verified.email, RESET_SUBJECT);
    t.match(reset.text ?? '', /https:\/\/app\.example\.com\/password-reset\/[A-Za-z0-9_-]{40,}/, 'verified: a reset link on PASSWORD_RESET_URL');
    await h.mail.waitForSubject(unverified.email, ACTIVATION_SUBJECT, 2);
    t.pass('unverified: a second activation email');
    await h.mail.waitForSubject(nopw.email, ACTIVATION_SUBJECT, 2);
    t.pass('passwordless (unverified): a second activation email');
    await sleep(300);
    t.equal(count(verified.email), beforeMail.verified + 1, 'verified: the reset email only');
    t.equal(count(unverified.email), beforeMail.unverified + 1, 'unverified: the activation email only');
    t.equal(h.mail.to(unverified.email, RESET_SUBJECT).length, 0, 'unverified: no reset link');
    t.equal(count(nopw.email), beforeMail.nopw + 1, 'passwordless: the activation email only');
    t.equal(count(unknown), 0, 'unknown: nothing');
    t.equal(count(inactive.email), beforeMail.inactive, 'inactive: nothing');
    t.equal(await outboxCount(unknown), beforeOutbox.unknown, 'unknown: nothing queued');
    t.equal(await outboxCount(inactive.email), beforeOutbox.inactive, 'inactive: nothing queued');
  });

  t.test('password-set: the password-set email’s token sets the password, verifies the account, and logs in', async (t) => {
    const u = await passwordlessUser(h);
    t.equal(u.register.body.user.hasPassword, false);
    t.equal(u.register.body.user.verified, false);
    t.equal(u.register.body.token, undefined, 'no tokens for an account without a password');
    t.match(u.setMail.text ?? '', /https:\/\/app\.example\.com\/password-set\/[A-Za-z0-9_-]{40,}/, 'link on PASSWORD_SET_URL');
    assertProblem(t, await login(h, u.email, 'anything at all here'), 'invalid_credentials');
    t.equal(await hashOf(h, u.id), null);

    const password = 'my very first passphrase';
    const res = await post(h.app, '/password-set', { token: u.setToken, newPassword1: password, newPassword2: password });
    t.equal(res.status, 204, res.raw);
    t.equal(res.raw, '');
    t.type(await hashOf(h, u.id), 'string', 'a hash is stored');
    const ok = await login(h, u.email, password);
    t.equal(ok.status, 200, ok.raw);
    t.equal(ok.body.user.verified, true, 'password-set verified the account (the mailbox is proven)');
    t.equal(ok.body.user.hasPassword, true);
    const me = await get(h.app, '/me', ok.body.token);
    t.equal(me.body.user.hasPassword, true);
    t.equal(me.body.user.verified, true);
    await h.mail.waitForSubject(u.email, CHANGED_SUBJECT);
    t.pass('"Your password was changed" arrived');
    // The activation link has nothing left to do.
    assertProblem(t, await post(h.app, '/verify-account', { token: u.activationToken }), 'already_verified');
  });

  t.test('password-set on an account that has a password → 409 password_already_set, nothing changed', async (t) => {
    // password_already_set is reachable through the API with a set token whose account got a
    // password since: (a) the same token used a second time; (b) a token killed by a reset.
    const a = await passwordlessUser(h);
    const first = 'the first password set';
    t.equal((await post(h.app, '/password-set', { token: a.setToken, newPassword1: first, newPassword2: first })).status, 204);
    const hashA = await hashOf(h, a.id);
    assertProblem(t, await post(h.app, '/password-set', { token: a.setToken, newPassword1: 'a second password set', newPassword2: 'a second password set' }), 'password_already_set', {
      detail: 'Password already set for account.',
    });
    t.equal(await hashOf(h, a.id), hashA, 'hash unchanged');
    t.equal((await login(h, a.email, first)).status, 200);
    assertProblem(t, await login(h, a.email, 'a second password set'), 'invalid_credentials');

    // (b) verify, reset (a verified passwordless account gets a reset link), then the set link.
    const b = await passwordlessUser(h);
    t.equal((await post(h.app, '/verify-account', { token: b.activationToken })).status, 204);
    const reset = await resetToken(h, b.email);
    t.equal((await post(h.app, '/password-reset', { token: reset, newPassword1: 'set through a reset', newPassword2: 'set through a reset' })).status, 204);
    const hashB = await hashOf(h, b.id);
    const session = await login(h, b.email, 'set through a reset');
    t.equal(session.status, 200);
    assertProblem(t, await post(h.app, '/password-set', { token: b.setToken, newPassword1: 'set through the set link', newPassword2: 'set through the set link' }), 'password_already_set', {
      detail: 'Password already set for account.',
    });
    t.equal(await hashOf(h, b.id), hashB, 'hash unchanged');
    t.equal((await get(h.app, '/me', session.body.token)).status, 200, 'sessions untouched');
    t.equal((await login(h, b.email, 'set through a reset')).status, 200);
  });

  t.test('password-set kills the account’s pending reset links', async (t) => {
    const u = await passwordlessUser(h);
    t.equal((await post(h.app, '/verify-account', { token: u.activationToken })).status, 204);
    const reset = await resetToken(h, u.email);
    t.equal((await post(h.app, '/password-set', { token: u.setToken, newPassword1: 'set before the reset', newPassword2: 'set before the reset' })).status, 204);
    assertProblem(t, await post(h.app, '/password-reset', { token: reset, newPassword1: 'reset with a dead link', newPassword2: 'reset with a dead link' }), 'invalid_token');
    t.equal((await login(h, u.email, 'set before the reset')).status, 200);
  });

  t.test('password-set: mismatch and rule errors on newPassword2; nothing changes; the token survives', async (t) => {
    const u = await passwordlessUser(h);
    assertProblem(t, await post(h.app, '/password-set', { token: u.setToken, newPassword1: 'one good passphrase', newPassword2: 'another passphrase' }), 'validation_failed', {
      errors: { newPassword2: MISMATCH },
    });
    rules123(t, await post(h.app, '/password-set', { token: u.setToken, newPassword1: '123', newPassword2: '123' }));
    const similar = `${u.username}!`;
    assertProblem(t, await post(h.app, '/password-set', { token: u.setToken, newPassword1: similar, newPassword2: similar }), 'validation_failed', {
      errors: { newPassword2: TOO_SIMILAR_USERNAME },
    });
    t.equal(await hashOf(h, u.id), null, 'still no password');
    t.equal((await userRow(h, u.id)).verified, false, 'still unverified');
    t.equal((await post(h.app, '/password-set', { token: u.setToken, newPassword1: 'now a good one', newPassword2: 'now a good one' })).status, 204);
  });

  t.test('password-set: a garbage token is invalid_token and changes nothing', async (t) => {
    const u = await passwordlessUser(h);
    assertProblem(t, await post(h.app, '/password-set', { token: 'garbage', newPassword1: 'a valid new passphrase', newPassword2: 'a valid new passphrase' }), 'invalid_token');
    assertProblem(t, await post(h.app, '/password-set', { token: u.activationToken, newPassword1: 'a valid new passphrase', newPassword2: 'a valid new passphrase' }), 'invalid_token');
    t.equal(await hashOf(h, u.id), null, 'still no password');
    t.equal((await userRow(h, u.id)).verified, false, 'still unverified');
  });

  t.test('password-set: expired after EXPIRATION_PASSWORD_SET_TOKEN (1h)', async (t) => {
    const u = await passwordlessUser(h);
    h.clock.advance(3601);
    assertProblem(t, await post(h.app, '/password-set', { token: u.setToken, newPassword1: 'a late passphrase', newPassword2: 'a late passphrase' }), 'expired_token');
    t.equal(await hashOf(h, u.id), null);
  });

  t.test('a password longer than PASSWORD_MAX_LENGTH → 400 password_too_long on newPassword2; at the limit it is fine', async (t) => {
    const u = await verifiedUser(h);
    const before = await hashOf(h, u.user.id);
    const tooLong = 'abcdefgh'.repeat(8) + 'z'; // 65
    t.equal(tooLong.length, 65);
    const res = await post(h.app, '/password-change', { oldPassword: u.password, newPassword1: tooLong, newPassword2: tooLong }, u.token);
    assertProblem(t, res, 'validation_failed');
    t.equal(res.body.errors?.newPassword2?.length, 1, 'one error');
    t.equal(res.body.errors?.newPassword2?.[0]?.code, 'password_too_long');
    t.type(res.body.errors?.newPassword2?.[0]?.message, 'string');
    t.equal(await hashOf(h, u.user.id), before, 'hash unchanged');

    const token = await resetToken(h, u.email);
    const resetTooLong = await post(h.app, '/password-reset', { token, newPassword1: tooLong, newPassword2: tooLong });
    assertProblem(t, resetTooLong, 'validation_failed');
    t.equal(resetTooLong.body.errors?.newPassword2?.[0]?.code, 'password_too_long');
    // Counted in code points: 64 code points are fine even when they are 124 UTF-16 units.
    const astral = '\u{1F600}'.repeat(60) + 'abcd';
    t.equal([...astral].length, 64);
    const resetAstral = await post(h.app, '/password-reset', { token, newPassword1: astral, newPassword2: astral });
    t.equal(resetAstral.status, 204, resetAstral.raw);
    const fresh = await login(h, u.email, astral);
    t.equal(fresh.status, 200);

    const atLimit = tooLong.slice(0, 64);
    const ok = await post(h.app, '/password-change', { oldPassword: astral, newPassword1: atLimit, newPassword2: atLimit }, fresh.body.token);
    t.equal(ok.status, 200, ok.raw);
    t.equal((await login(h, u.email, atLimit)).status, 200);
  });
});
