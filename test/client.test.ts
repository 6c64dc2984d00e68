// The TypeScript client (clients/typescript) against the real service over a socket: every
// endpoint and flow, typed answers and typed problem documents. Written as a client's user
// writes it: no casts, checked by `tsc -p clients/typescript` under strict and
// exactOptionalPropertyTypes (npm run typecheck). Its generated files must match the committed
// document (the drift test at the end).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { AuthError, createAuthClient, type ErrorOf, type Schemas } from '../clients/typescript/src/index.js';
import { type Mailbox, startMailbox, startService, tokenIn } from './client/harness.js';

const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'a new horse, another staple';
let counter = 0;
const unique = (prefix: string) => {
  const id = `${prefix}${process.pid}x${++counter}x${Date.now().toString(36)}`;
  return { email: `${id}@example.com`, username: id };
};

/** The AuthError a call rejects with (fails the test when it resolves). */
async function authError(call: Promise<unknown>): Promise<AuthError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof AuthError) return err;
    throw err;
  }
  throw new Error('the call succeeded; an AuthError was expected');
}

const mailbox: Mailbox = await startMailbox(t);
const service = await startService(t, mailbox, {
  ALLOW_PASSWORDLESS_REGISTRATION: 'true',
  SEND_PASSWORD_SET_EMAIL: 'true',
  ALLOW_DELETE_ACCOUNT: 'true',
  UPDATE_FIELDS: 'firstName,lastName,username',
  REFRESH_TOKEN_REUSE_INTERVAL: '0',
  RATE_LIMIT_MAX: '12',
  RATE_LIMIT_WINDOW: '1m',
});
const baseUrl = service.baseUrl;

t.test('register, verify with the emailed token, log in by email and by username, me, token verify', async (t) => {
  const auth = createAuthClient({ baseUrl });
  const who = unique('ada');
  const registered = await auth.register({ body: { ...who, password1: PASSWORD, password2: PASSWORD } });
  // RegisterResponse is a oneOf: tokens come with the user only when the account is logged in.
  if (!('token' in registered)) return void t.fail('register answers tokens under ALLOW_LOGIN_NOT_VERIFIED');
  t.equal(registered.tokenType, 'Bearer');
  t.equal(registered.user.email, who.email);
  t.equal(registered.user.verified, false);
  t.equal(auth.session.accessToken, registered.token, 'the client keeps the tokens');

  await auth.verifyAccount({ body: { token: tokenIn(await mailbox.next(who.email, /activ/i)) } });

  const byEmail = await auth.obtainToken({ body: { email: who.email, password: PASSWORD } });
  t.equal(byEmail.user.verified, true, 'verified');
  t.equal(byEmail.unarchiving, false);
  t.type(byEmail.refreshToken, 'string');
  const sub: string = byEmail.payload.sub; // typed claims: no runtime check needed
  t.equal(sub, byEmail.user.id);
  t.equal(byEmail.payload.exp - byEmail.payload.iat, byEmail.expiresIn);

  const byUsername = await auth.obtainToken({ body: { username: who.username.toUpperCase(), password: PASSWORD } });
  t.equal(byUsername.user.id, byEmail.user.id, 'the same account, case-insensitively');

  const { user } = await auth.me();
  t.equal(user.id, byEmail.user.id, 'me sends the kept access token');
  const verified = await auth.verifyToken({ body: { token: byUsername.token } });
  t.equal(verified.payload.sid, byUsername.payload.sid);
  t.equal(verified.payload.username, who.username);
});

t.test('refresh rotates; a spent refresh token ends the session; revoke logs out', async (t) => {
  const auth = createAuthClient({ baseUrl });
  const who = unique('bob');
  await auth.register({ body: { ...who, password1: PASSWORD, password2: PASSWORD } });
  const login = await auth.obtainToken({ body: { email: who.email, password: PASSWORD } });
  const first = login.refreshToken;
  const refreshed = await auth.refreshToken();
  t.not(refreshed.refreshToken, first, 'a new refresh token');
  t.equal(auth.session.refreshToken, refreshed.refreshToken, 'kept');
  t.equal(refreshed.payload.sid, login.payload.sid, 'the same session');
  t.equal(refreshed.payload.origIat, login.payload.origIat);
  t.equal((await auth.me()).user.email, who.email, 'the new access token works');

  if (first === undefined) return void t.fail('login answers a refresh token');
  const reuse = await authError(auth.refreshToken({ body: { refreshToken: first } }));
  t.equal(reuse.code, 'invalid_token', 'the spent token is refused');
  t.equal(reuse.status, 400);
  t.equal((await authError(auth.me())).code, 'unauthenticated', 'and its session has ended');

  const again = createAuthClient({ baseUrl });
  await again.obtainToken({ body: { username: who.username, password: PASSWORD } });
  const { revoked } = await again.revokeToken();
  t.type(revoked, 'number');
  t.same(again.session, {}, 'revoke forgets the tokens');
  const gone = await authError(again.verifyToken({ body: { token: login.token } }));
  t.equal(gone.code, 'invalid_token');
});

t.test('reset by email, change, update, archive with un-archive on login, delete', async (t) => {
  const auth = createAuthClient({ baseUrl });
  const who = unique('cyd');
  await auth.register({ body: { ...who, password1: PASSWORD, password2: PASSWORD } });
  await auth.verifyAccount({ body: { token: tokenIn(await mailbox.next(who.email, /activ/i)) } });

  const accepted = await auth.sendPasswordResetEmail({ body: { email: who.email } });
  t.type(accepted.detail, 'string');
  const reset = tokenIn(await mailbox.next(who.email, /reset/i));
  await auth.passwordReset({ body: { token: reset, newPassword1: NEW_PASSWORD, newPassword2: NEW_PASSWORD } });
  const old = await authError(auth.obtainToken({ body: { email: who.email, password: PASSWORD } }));
  t.equal(old.code, 'invalid_credentials', 'the old password no longer works');
  await auth.obtainToken({ body: { email: who.email, password: NEW_PASSWORD } });

  const before = auth.session.accessToken;
  const changed = await auth.passwordChange({ body: { oldPassword: NEW_PASSWORD, newPassword1: PASSWORD, newPassword2: PASSWORD } });
  t.not(changed.token, before, 'password-change answers a fresh session');
  t.equal(changed.user.email, who.email);
  if (before === undefined) return void t.fail('a token was kept');
  t.equal((await authError(auth.verifyToken({ body: { token: before } }))).code, 'invalid_token', 'the old session has ended');

  const { user } = await auth.updateAccount({ body: { firstName: 'Cyd', lastName: 'Charisse' } });
  t.equal(user.firstName, 'Cyd');
  t.equal(user.lastName, 'Charisse');

  await auth.archiveAccount({ body: { password: PASSWORD } });
  t.equal((await authError(auth.me())).code, 'unauthenticated', 'archiving ends every session');
  const back = await auth.obtainToken({ body: { username: who.username, password: PASSWORD } });
  t.equal(back.unarchiving, true, "the owner's login un-archives");
  t.equal(back.user.archived, false);

  const wrong = await authError(auth.deleteAccount({ body: { password: 'not the password' } }));
  t.equal(wrong.code, 'invalid_password');
  t.same(Object.keys(wrong.problem.errors ?? {}), ['password'], 'errors name the field');
  await auth.deleteAccount({ body: { password: PASSWORD } });
  const deleted = await authError(auth.obtainToken({ body: { email: who.email, password: PASSWORD } }));
  t.equal(deleted.code, 'invalid_credentials', 'the account is gone');
});

t.test('passwordless register, then password-set from the email', async (t) => {
  const auth = createAuthClient({ baseUrl });
  const who = unique('dee');
  const registered = await auth.register({ body: who });
  t.notOk('token' in registered, 'no password: no tokens');
  t.equal(registered.user.hasPassword, false);
  const set = tokenIn(await mailbox.next(who.email, /set/i));
  await auth.passwordSet({ body: { token: set, newPassword1: PASSWORD, newPassword2: PASSWORD } });
  const login = await auth.obtainToken({ body: { email: who.email, password: PASSWORD } });
  t.equal(login.user.hasPassword, true);
  t.equal(login.user.verified, true, 'the set link proved the address');
  const again = await authError(auth.passwordSet({ body: { token: set, newPassword1: PASSWORD, newPassword2: PASSWORD } }));
  t.equal(again.code, 'password_already_set', 'the link cannot set a password twice');
});

t.test('typed problem documents: invalid_credentials, per-operation codes, validation errors', async (t) => {
  const auth = createAuthClient({ baseUrl });
  const err = await authError(auth.obtainToken({ body: { email: unique('eve').email, password: PASSWORD } }));
  t.equal(err.status, 401);
  t.equal(err.problem.code, 'invalid_credentials');
  t.equal(err.problem.title, 'Invalid credentials');
  t.type(err.problem.requestId, 'string');
  t.match(err.problem.type, /\/problems\/invalid_credentials$/);

  // The bare client: the error is the operation's own problem union, its code narrowed.
  const { data, error } = await auth.api.POST('/token', { body: { username: unique('eve').username, password: PASSWORD } });
  t.equal(data, undefined);
  type LoginCode = ErrorOf<'obtainToken'>['code'];
  const code: LoginCode | undefined = error?.code;
  t.equal(code, 'invalid_credentials');

  const invalid = await authError(auth.register({ body: { email: 'not an email', username: 'ok', password1: 'x', password2: 'y' } }));
  t.equal(invalid.code, 'validation_failed');
  const fields: Schemas['Problem']['errors'] = invalid.problem.errors;
  t.ok(fields?.email?.length && fields.password2?.length, 'every field error at once');
  t.equal((await authError(auth.me())).code, 'unauthenticated', 'no token kept: 401');
});

t.test('rate_limited carries retryAfter, the Retry-After and rate-limit headers', async (t) => {
  const auth = createAuthClient({ baseUrl });
  const email = unique('flo').email;
  let limited: AuthError | undefined;
  for (let i = 0; i < 20 && !limited; i++) {
    try {
      await auth.resendActivationEmail({ body: { email } });
    } catch (err) {
      if (err instanceof AuthError) limited = err;
      else throw err;
    }
  }
  if (!limited) return void t.fail('no 429 within 20 requests (RATE_LIMIT_MAX=12)');
  t.equal(limited.status, 429);
  t.equal(limited.problem.code, 'rate_limited');
  const retryAfter: number | undefined = limited.problem.retryAfter;
  t.ok(retryAfter !== undefined && retryAfter > 0 && retryAfter <= 60, `retryAfter in seconds (${retryAfter})`);
  t.equal(limited.response.headers.get('retry-after'), String(retryAfter), 'the Retry-After header says the same');
  for (const name of ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset']) {
    t.ok(limited.response.headers.get(name) !== null, `${name}, as documented`);
  }
});

t.test('service operations: health, jwks', async (t) => {
  const auth = createAuthClient({ baseUrl });
  t.equal((await auth.health()).status, 'ok');
  const { keys } = await auth.jwks();
  t.ok(keys.length >= 1 && keys.every((k) => k.use === 'sig'), 'signing keys');
});

t.test('the generated client files are what `npm run openapi` writes', async (t) => {
  const { generateClient } = await import('../scripts/client-gen.js');
  const document = readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8');
  for (const [name, text] of Object.entries(await generateClient(document))) {
    const committed = readFileSync(new URL(`../clients/typescript/src/${name}`, import.meta.url), 'utf8');
    t.ok(committed === text, `clients/typescript/src/${name} is up to date (else: npm run openapi)`);
  }
});
