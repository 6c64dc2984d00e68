// Abuse (issue 7 items 4 and 6): password guessing against one account from many client addresses,
// and mail bombing one address. Both are counted in the shared limits store, whatever the client
// address; the answers never tell an existing account from an unknown one.
import t from 'tap';
import { assertProblem, buildTestApp, outboxSettled, PASSWORD, post, registerUser, type TestApp, uniqueUser, verifiedUser } from './helpers.js';

const LOGIN_ENV = { LOGIN_FAILURE_LIMIT: '10', LOGIN_FAILURE_WINDOW: '15m' };

/** A login attempt from its own client address. */
let address = 0;
const from = () => `198.51.100.${(address++ % 250) + 1}`;
async function login(h: TestApp, body: Record<string, string>) {
  const res = await h.app.inject({ method: 'POST', url: '/token', payload: body, remoteAddress: from() });
  return { status: res.statusCode, headers: res.headers, body: res.json(), raw: res.body };
}

t.test('per-account login throttling: 105 wrong passwords from 21 addresses', async (t) => {
  const h = await buildTestApp(t, { env: LOGIN_ENV });

  await t.test('lock the account after LOGIN_FAILURE_LIMIT failures, the right password included, until the window ends', async (t) => {
    const u = await registerUser(h.app);
    for (let i = 1; i <= 10; i++) {
      const res = await login(h, { email: u.email, password: `wrong password ${i}` });
      t.equal(res.status, 401, `failure ${i} (from another address): 401 invalid_credentials`);
    }
    const locked = await login(h, { email: u.email, password: PASSWORD });
    assertProblem(t, locked, 'rate_limited', { detail: /try again in \d+ seconds/ });
    const retryAfter = Number(locked.headers['retry-after']);
    t.ok(retryAfter > 0 && retryAfter <= 900, `Retry-After within the 15-minute window (got ${retryAfter})`);
    const variant = await login(h, { email: u.email.toUpperCase(), password: PASSWORD });
    t.equal(variant.status, 429, 'the same identifier in another case is the same counter');

    h.clock.advance(15 * 60 + 1);
    const after = await login(h, { email: u.email, password: PASSWORD });
    t.equal(after.status, 200, 'the lock ends by itself with the window: no permanent lockout');
  });

  await t.test('an unknown identifier gets the same answers: 401 ten times, then the same 429', async (t) => {
    const known = await registerUser(h.app);
    const unknown = uniqueUser().email;
    const answers = { known: [] as number[], unknown: [] as number[] };
    let last: Record<string, any> = {};
    for (const [name, email] of [['known', known.email], ['unknown', unknown]] as const) {
      for (let i = 0; i < 11; i++) answers[name].push((last[name] = await login(h, { email, password: 'not the password' })).status);
    }
    t.strictSame(answers.unknown, answers.known, 'the same statuses, in the same order');
    t.strictSame(answers.known, [...Array(10).fill(401), 429]);
    t.equal(last.unknown.body.detail.replace(/\d+/, 'N'), last.known.body.detail.replace(/\d+/, 'N'), 'the same detail');
    t.ok(last.unknown.headers['retry-after'], 'and a Retry-After for the unknown identifier too');
  });

  await t.test('a successful login resets the count', async (t) => {
    const u = await registerUser(h.app);
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < 9; i++) t.equal((await login(h, { username: u.username, password: 'nope nope nope' })).status, 401);
      t.equal((await login(h, { username: u.username, password: PASSWORD })).status, 200, `round ${round}: 9 failures, then the owner logs in`);
    }
  });

  await t.test('at most ~100 guesses an hour, whatever the number of client addresses', async (t) => {
    const u = await registerUser(h.app);
    let guessed = 0;
    for (let minute = 0; minute < 60; minute++) {
      for (let i = 0; i < 3; i++) if ((await login(h, { email: u.email, password: `guess ${minute}-${i}` })).status === 401) guessed++;
      h.clock.advance(60);
    }
    t.ok(guessed <= 100, `${guessed} of 180 guesses in an hour were checked`);
    t.ok(guessed >= 30, 'and the lock does lift between windows');
  });

  await t.test('password confirmations on bearer routes count too: a stolen access token is no password oracle', async (t) => {
    const u = await verifiedUser(h);
    for (let i = 1; i <= 10; i++) {
      const res = await post(h.app, '/archive-account', { password: `wrong ${i}` }, u.token);
      t.equal(res.status, 400, `wrong confirmation ${i}: invalid_password`);
    }
    const locked = await post(h.app, '/archive-account', { password: PASSWORD }, u.token);
    assertProblem(t, locked, 'rate_limited', { detail: /\d/ });
    t.ok(locked.headers['retry-after'], 'Retry-After');
  });
});

t.test('mail bombing: per-recipient caps on token emails, whatever the client address; the answer stays 202', async (t) => {
  const h = await buildTestApp(t, { env: { MAIL_RECIPIENT_LIMIT: '1', MAIL_RECIPIENT_WINDOW: '60s', MAIL_RECIPIENT_DAILY_LIMIT: '4' } });
  const request = async (url: string, email: string) => {
    const res = await h.app.inject({ method: 'POST', url, payload: { email }, remoteAddress: from() });
    return { status: res.statusCode, body: res.json() };
  };

  await t.test('23 activation requests within seconds deliver one activation email', async (t) => {
    const u = await registerUser(h.app); // the first activation email
    const answers = new Set<string>();
    for (let i = 0; i < 22; i++) {
      const res = await request('/resend-activation-email', u.email);
      answers.add(`${res.status} ${JSON.stringify(res.body)}`);
    }
    t.equal(answers.size, 1, 'every answer is the same');
    t.match([...answers][0], /^202 /);
    await outboxSettled(h);
    t.equal(h.mail.to(u.email, 'Activate your account').length, 1, 'one activation email reached the address');

    h.clock.advance(61);
    await request('/resend-activation-email', u.email);
    await outboxSettled(h);
    t.equal(h.mail.to(u.email, 'Activate your account').length, 2, 'a minute later, one more');
  });

  await t.test('12 reset requests deliver one reset email; other kinds and other addresses have their own caps', async (t) => {
    const u = await verifiedUser(h);
    const other = await verifiedUser(h);
    for (let i = 0; i < 12; i++) {
      t.equal((await request('/send-password-reset-email', u.email)).status, 202);
      t.equal((await request('/send-password-reset-email', other.email)).status, 202);
    }
    await outboxSettled(h);
    t.equal(h.mail.to(u.email, 'Reset your password').length, 1, 'one reset email for the first address');
    t.equal(h.mail.to(other.email, 'Reset your password').length, 1, 'and one for the other');
  });

  await t.test('a daily cap over every kind (MAIL_RECIPIENT_DAILY_LIMIT)', async (t) => {
    const u = await verifiedUser(h); // 1: activation
    for (let i = 0; i < 5; i++) {
      h.clock.advance(61);
      await request('/send-password-reset-email', u.email);
      await outboxSettled(h); // the worker resolves the request (and applies the caps) at this clock, not the next one
    }
    await outboxSettled(h);
    t.equal(h.mail.to(u.email, 'Reset your password').length, 3, 'activation + 3 resets = the daily 4; the rest are dropped');
    h.clock.advance(86_400);
    await request('/send-password-reset-email', u.email);
    await outboxSettled(h);
    t.equal(h.mail.to(u.email, 'Reset your password').length, 4, 'the next day, mail flows again');
  });
});
