// POST /register, POST /verify-account, POST /resend-activation-email, through HTTP, on a real
// database, with the emails read from a real SMTP server.
import { randomBytes } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import t from 'tap';
import { emailTokens, outbox, users } from '../src/db/schema.js';
import {
  assertProblem,
  buildTestApp,
  codesOf,
  get,
  PASSWORD,
  post,
  registerUser,
  type Res,
  sleep,
  type TestApp,
  tokenIn,
  uniqueUser,
  verifiedUser,
} from './helpers.js';

const RULE_CODES = ['password_too_similar', 'password_too_short', 'password_too_common', 'password_entirely_numeric'];

/** Every key anywhere in a JSON value. */
function keysDeep(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) keysDeep(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.push(k);
      keysDeep(v, out);
    }
  }
  return out;
}

const USER_KEYS = ['archived', 'dateJoined', 'email', 'firstName', 'hasPassword', 'id', 'isActive', 'lastLogin', 'lastName', 'username', 'verified'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const isDateTime = (v: unknown) => typeof v === 'string' && !Number.isNaN(Date.parse(v)) && /T/.test(v);

async function countUsers(h: TestApp, where?: ReturnType<typeof sql>): Promise<number> {
  const q = h.db.db.select({ n: sql<number>`count(*)::int` }).from(users);
  const [row] = await (where ? q.where(where) : q);
  return Number(row.n);
}

const body = (fields: Record<string, unknown> = {}) => ({ ...uniqueUser(), password1: PASSWORD, password2: PASSWORD, ...fields });

// =============================================================================================
t.test('POST /register with default settings', async (t) => {
  const h = await buildTestApp(t);

  t.test('201 RegisterOutput: the user and tokens (ALLOW_LOGIN_NOT_VERIFIED defaults to true), no-store, no secret', async (t) => {
    const input = body();
    const before = Math.floor(Date.now() / 1000);
    const res = await post(h.app, '/register', input);
    t.equal(res.status, 201);
    t.match(String(res.headers['content-type']), /^application\/json/);
    t.match(String(res.headers['cache-control']), /no-store/, 'Cache-Control: no-store');
    const b = res.body;
    t.same(Object.keys(b).sort(), ['expiresIn', 'payload', 'refreshExpiresIn', 'refreshToken', 'token', 'tokenType', 'user'], 'user and token fields');
    const u = b.user;
    t.same(Object.keys(u).sort(), USER_KEYS, 'exactly the User fields');
    t.match(u.id, UUID);
    t.equal(u.email, input.email);
    t.equal(u.username, input.username);
    t.equal(u.firstName, '');
    t.equal(u.lastName, '');
    t.equal(u.verified, false);
    t.equal(u.archived, false);
    t.equal(u.isActive, true);
    t.equal(u.hasPassword, true);
    t.ok(isDateTime(u.dateJoined), 'dateJoined is a date-time');
    t.ok(isDateTime(u.lastLogin), 'lastLogin set: register logged the account in');
    t.equal(typeof b.token, 'string');
    t.equal(b.token.split('.').length, 3, 'the access token is a JWT');
    t.equal(b.tokenType, 'Bearer');
    t.equal(b.expiresIn, 300, 'JWT_EXPIRATION_DELTA defaults to 5 minutes');
    t.equal(b.payload.sub, u.id);
    t.equal(b.payload.username, input.username);
    t.equal(b.payload.email, input.email);
    t.equal(typeof b.refreshToken, 'string');
    t.ok(Number.isInteger(b.refreshExpiresIn), 'refreshExpiresIn is unix seconds');
    t.ok(Math.abs(b.refreshExpiresIn - (before + 7 * 86400)) < 60, 'refresh token lives 7 days');

    // No password, no hash, no internal column, anywhere.
    t.notOk(res.raw.includes(PASSWORD), 'the password is not echoed');
    t.notMatch(res.raw, /\$argon2/, 'no argon2 hash');
    const [row] = await h.db.db.select().from(users).where(eq(users.id, u.id));
    t.ok(row.passwordHash, 'a hash is stored');
    t.notOk(res.raw.includes(row.passwordHash!), 'the stored hash is not in the body');
    t.same(keysDeep(b).filter((k) => /password|hash/i.test(k) && k !== 'hasPassword'), [], 'no password or hash member');

    // The tokens are real: the access token opens /me, the refresh token rotates.
    const me = await get(h.app, '/me', b.token);
    t.equal(me.status, 200);
    t.same(me.body.user, u, '/me shows the registered user');
    const refreshed = await post(h.app, '/token/refresh', { refreshToken: b.refreshToken });
    t.equal(refreshed.status, 200, 'the refresh token works');
  });

  t.test('the password is stored hashed, never in clear', async (t) => {
    const input = body();
    const res = await post(h.app, '/register', input);
    t.equal(res.status, 201);
    const [row] = await h.db.db.select().from(users).where(eq(users.id, res.body.user.id));
    t.not(row.passwordHash, PASSWORD);
    t.match(row.passwordHash, /^\$argon2id\$/, 'argon2id');
  });

  t.test('password rules: password_too_short (counted in code points), on password2 only', async (t) => {
    const res = await post(h.app, '/register', body({ password1: 'aZ9$kq', password2: 'aZ9$kq' }));
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
    t.same(Object.keys(res.body.errors), ['password2'], 'rule errors sit on password2 only');
    t.same(res.body.errors.password2, [
      { message: 'This password is too short. It must contain at least 8 characters.', code: 'password_too_short' },
    ]);

    // Seven emoji are fourteen UTF-16 units but seven characters: too short.
    const seven = '😀🙂🚀🌍🎲🧩🦊';
    const short = await post(h.app, '/register', body({ password1: seven, password2: seven }));
    assertProblem(t, short, 'validation_failed', { fields: ['password2'] });
    t.same(codesOf(short, 'password2'), ['password_too_short'], 'length counts code points, not UTF-16 units');
    const eight = `${seven}🐙`;
    const ok = await post(h.app, '/register', body({ password1: eight, password2: eight }));
    t.equal(ok.status, 201, 'eight code points are enough');
  });

  t.test('password rules: password_entirely_numeric', async (t) => {
    const res = await post(h.app, '/register', body({ password1: '83749261503', password2: '83749261503' }));
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
    t.same(res.body.errors.password2, [{ message: 'This password is entirely numeric.', code: 'password_entirely_numeric' }]);
  });

  t.test('password rules: password_too_common, matched case-insensitively', async (t) => {
    for (const pw of ['qwertyuiop', 'QwertyUIOP', 'baseball']) {
      const res = await post(h.app, '/register', body({ password1: pw, password2: pw }));
      assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
      t.same(res.body.errors.password2, [{ message: 'This password is too common.', code: 'password_too_common' }], pw);
    }
  });

  t.test('password rules: password_too_similar to the username', async (t) => {
    const res = await post(h.app, '/register', {
      email: `${uniqueUser().username}@example.com`,
      username: 'marmalade_sky',
      password1: 'marmaladesky!',
      password2: 'marmaladesky!',
    });
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
    t.same(res.body.errors.password2, [{ message: 'The password is too similar to the username.', code: 'password_too_similar' }]);
  });

  t.test('password rules: password_too_similar to the email', async (t) => {
    const res = await post(h.app, '/register', {
      email: 'zebra.crossing@example.com',
      username: 'quill7',
      password1: 'zebra.crossing',
      password2: 'zebra.crossing',
    });
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
    t.same(res.body.errors.password2, [{ message: 'The password is too similar to the email address.', code: 'password_too_similar' }]);
  });

  t.test('password rules: password_mismatch', async (t) => {
    const res = await post(h.app, '/register', body({ password1: PASSWORD, password2: `${PASSWORD}!` }));
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
    t.same(res.body.errors, { password2: [{ message: 'The two password fields didn’t match.', code: 'password_mismatch' }] });
  });

  t.test('password rules: password_too_long above PASSWORD_MAX_LENGTH (default 1024), refused alone', async (t) => {
    const long = randomBytes(1100).toString('base64url').slice(0, 1025);
    const res = await post(h.app, '/register', body({ password1: long, password2: long }));
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
    t.same(codesOf(res, 'password2'), ['password_too_long']);
    t.match(res.body.errors.password2[0].message, /1024/, 'the message names the limit');
    const max = long.slice(0, 1024);
    const ok = await post(h.app, '/register', body({ password1: max, password2: max }));
    t.equal(ok.status, 201, '1024 characters are accepted');
  });

  t.test('password rules: "123"/"123" reports every rule it breaks at once, in Django\'s order', async (t) => {
    const res = await post(h.app, '/register', body({ password1: '123', password2: '123' }));
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
    t.same(Object.keys(res.body.errors), ['password2']);
    const codes = codesOf(res, 'password2');
    t.ok(codes.includes('password_too_short'), 'too short');
    t.ok(codes.includes('password_entirely_numeric'), 'entirely numeric');
    t.ok(codes.every((c) => RULE_CODES.includes(c)), 'only rule codes');
    t.same(codes, RULE_CODES.filter((c) => codes.includes(c)), "Django's order");
    t.notOk('token' in res.body, 'no token');
  });

  t.test('password rules: a password breaking all four rules gets all four errors', async (t) => {
    const res = await post(h.app, '/register', { email: 'digits@example.com', username: '123456', password1: '123456', password2: '123456' });
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
    t.same(res.body.errors.password2, [
      { message: 'The password is too similar to the username.', code: 'password_too_similar' },
      { message: 'This password is too short. It must contain at least 8 characters.', code: 'password_too_short' },
      { message: 'This password is too common.', code: 'password_too_common' },
      { message: 'This password is entirely numeric.', code: 'password_entirely_numeric' },
    ]);
  });

  t.test('every field error is reported at once: schema errors and password rules in one answer', async (t) => {
    const res = await post(h.app, '/register', body({ email: 'not-an-email', username: 'has space', password1: '123', password2: '123' }));
    assertProblem(t, res, 'validation_failed', { fields: ['email', 'username', 'password2'] });
    t.same(codesOf(res, 'email'), ['invalid']);
    t.same(codesOf(res, 'username'), ['invalid']);
    t.ok(codesOf(res, 'password2').includes('password_too_short'), 'the rules ran despite the schema errors');
    const mismatch = await post(h.app, '/register', body({ email: 42, password1: 'correct horse battery', password2: 'another horse battery' }));
    assertProblem(t, mismatch, 'validation_failed', { fields: ['email', 'password2'] });
    t.same(codesOf(mismatch, 'password2'), ['password_mismatch']);
  });

  t.test('a weak password is a 400 even when the email is taken (rules run before any lookup)', async (t) => {
    const reg = await registerUser(h.app);
    const res = await post(h.app, '/register', { email: reg.email, username: uniqueUser().username, password1: '123', password2: '123' });
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
  });

  t.test('409 unique on errors.email for the same email in another case', async (t) => {
    const reg = await registerUser(h.app);
    const res = await post(h.app, '/register', body({ email: reg.email.toUpperCase() }));
    const message = 'A user with that email already exists.';
    assertProblem(t, res, 'unique', { detail: message, fields: ['email'] });
    t.same(res.body.errors, { email: [{ message, code: 'unique' }] });
    t.notOk('token' in res.body || 'refreshToken' in res.body, 'no tokens');
    t.equal(await countUsers(h, sql`lower(${users.email}) = lower(${reg.email})`), 1, 'one account for that email');
  });

  t.test('409 unique on errors.username for the same username in another case', async (t) => {
    const reg = await registerUser(h.app);
    const res = await post(h.app, '/register', body({ username: reg.username.toUpperCase() }));
    const message = 'A user with that username already exists.';
    assertProblem(t, res, 'unique', { detail: message, fields: ['username'] });
    t.same(res.body.errors, { username: [{ message, code: 'unique' }] });
    t.notOk('token' in res.body || 'refreshToken' in res.body, 'no tokens');
  });

  t.test('409 unique for the same payload again (GA: same payload)', async (t) => {
    const input = body();
    t.equal((await post(h.app, '/register', input)).status, 201);
    const res = await post(h.app, '/register', input);
    const field = res.body.errors?.email ? 'email' : 'username'; // whichever the service checks first
    assertProblem(t, res, 'unique', { detail: `A user with that ${field} already exists.`, fields: [field] });
    t.ok(res.body.errors?.email || res.body.errors?.username, 'errors names the field');
    t.notOk('token' in res.body, 'no tokens');
  });

  t.test('409 unique for a username that differs only by Unicode compatibility (NFKC)', async (t) => {
    const name = `nfkc${randomBytes(3).toString('hex')}`;
    t.equal((await post(h.app, '/register', body({ username: name }))).status, 201);
    // Full-width letters and digits: NFKC folds them to ASCII.
    const fullWidth = [...name].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join('');
    const res = await post(h.app, '/register', body({ username: fullWidth }));
    assertProblem(t, res, 'unique', { detail: 'A user with that username already exists.', fields: ['username'] });
  });

  t.test('20 concurrent registrations of one email: one 201, nineteen 409 unique, one row', async (t) => {
    const email = uniqueUser().email;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        post(h.app, '/register', {
          email: i % 2 ? email.toUpperCase() : email,
          username: `${uniqueUser().username}c${i}`,
          password1: PASSWORD,
          password2: PASSWORD,
        }),
      ),
    );
    const statuses = results.map((r) => r.status);
    t.equal(statuses.filter((s) => s === 201).length, 1, 'exactly one 201');
    t.equal(statuses.filter((s) => s === 409).length, 19, 'nineteen 409');
    for (const r of results.filter((r) => r.status !== 201)) {
      t.equal(r.body.code, 'unique');
      t.ok(r.body.errors?.email, 'errors.email');
    }
    t.equal(await countUsers(h, sql`lower(${users.email}) = lower(${email})`), 1, 'exactly one row in users');
  });

  t.test('schema: an unknown property is a 400 naming it (firstName is not in the default REGISTER_FIELDS)', async (t) => {
    for (const extra of [{ firstName: 'Ann' }, { verified: true }, { isAdmin: true }]) {
      const res = await post(h.app, '/register', body(extra));
      const field = Object.keys(extra)[0];
      assertProblem(t, res, 'validation_failed', { fields: [field] });
    }
  });

  t.test('schema: a number for a string is a 400, never coerced', async (t) => {
    const res = await post(h.app, '/register', body({ password1: 12345678, password2: 12345678 }));
    assertProblem(t, res, 'validation_failed', { fields: ['password1', 'password2'] });
    const name = await post(h.app, '/register', body({ username: 1234567 }));
    assertProblem(t, name, 'validation_failed', { fields: ['username'] });
    t.equal(await countUsers(h, sql`${users.username} = '1234567'`), 0, 'no account was created');
  });

  t.test('schema: a bad email syntax is errors.email', async (t) => {
    for (const email of ['not-an-email', 'a@b@example.com', 'spaces in@example.com', '@example.com']) {
      const res = await post(h.app, '/register', body({ email }));
      assertProblem(t, res, 'validation_failed', { fields: ['email'] });
      t.same(codesOf(res, 'email'), ['invalid'], email);
    }
  });

  t.test('schema: a username with a space is errors.username; 150 characters is the limit', async (t) => {
    const res = await post(h.app, '/register', body({ username: 'john doe' }));
    assertProblem(t, res, 'validation_failed', { fields: ['username'] });
    t.same(codesOf(res, 'username'), ['invalid']);
    const long = await post(h.app, '/register', body({ username: 'u'.repeat(151) }));
    assertProblem(t, long, 'validation_failed', { fields: ['username'] });
    t.ok(codesOf(long, 'username').includes('max_length'), 'max_length');
    const ok = await post(h.app, '/register', body({ username: 'u'.repeat(150) }));
    t.equal(ok.status, 201, '150 characters are accepted');
  });

  t.test('regression: the username rules hold for the NFKC form that is stored (U+FDFA expands to words with spaces)', async (t) => {
    const ligature = await post(h.app, '/register', body({ username: '\uFDFA' }));
    assertProblem(t, ligature, 'validation_failed', { fields: ['username'] });
    t.same(codesOf(ligature, 'username'), ['invalid']);
    const long = await post(h.app, '/register', body({ username: '\u3392'.repeat(50) })); // ㎒ → MHz: 150 → fine, 3 × 50
    t.equal(long.status, 201, 'a name whose NFKC form is 150 characters is accepted');
    const tooLong = await post(h.app, '/register', body({ username: '\u3392'.repeat(51) }));
    assertProblem(t, tooLong, 'validation_failed', { fields: ['username'] });
    t.ok(codesOf(tooLong, 'username').includes('max_length'), 'the limit applies to the stored form');
  });

  t.test('schema: an email over 254 characters is errors.email (254 is accepted)', async (t) => {
    const domain = (last: number) => `${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(last)}.com`;
    const tooLong = `${'a'.repeat(64)}@${domain(58)}`;
    t.equal(tooLong.length, 255);
    const res = await post(h.app, '/register', body({ email: tooLong }));
    assertProblem(t, res, 'validation_failed', { fields: ['email'] });
    t.ok(codesOf(res, 'email').includes('max_length'), 'max_length');
    const max = `${'a'.repeat(64)}@${domain(57)}`;
    t.equal(max.length, 254);
    const ok = await post(h.app, '/register', body({ email: max }));
    t.equal(ok.status, 201, '254 characters are accepted');
  });

  t.test('schema: missing fields are each named in errors as required', async (t) => {
    const res = await post(h.app, '/register', {});
    assertProblem(t, res, 'validation_failed', { fields: ['email', 'username', 'password1', 'password2'] });
    for (const f of ['email', 'username', 'password1', 'password2']) t.same(codesOf(res, f), ['required'], f);
    const { email, username } = uniqueUser();
    for (const [missing, partial] of [
      ['email', { username, password1: PASSWORD, password2: PASSWORD }],
      ['username', { email, password1: PASSWORD, password2: PASSWORD }],
      ['password1', { email, username, password2: PASSWORD }],
      ['password2', { email, username, password1: PASSWORD }],
    ] as const) {
      const one = await post(h.app, '/register', partial);
      assertProblem(t, one, 'validation_failed', { fields: [missing] });
      t.same(Object.keys(one.body.errors), [missing], `only ${missing}`);
      t.same(codesOf(one, missing), ['required']);
    }
    t.equal(await countUsers(h, sql`${users.username} = ${username}`), 0, 'no account was created');
  });

  t.test('a failed registration leaves no account, token or email behind', async (t) => {
    const input = body({ password1: '123', password2: '123' });
    t.equal((await post(h.app, '/register', input)).status, 400);
    t.equal(await countUsers(h, sql`${users.email} = ${input.email}`), 0);
    const rows = await h.db.db.select().from(outbox).where(eq(outbox.recipient, input.email));
    t.equal(rows.length, 0, 'nothing in the outbox');
  });
});

// =============================================================================================
t.test('POST /register with ALLOW_LOGIN_NOT_VERIFIED=false, REGISTER_FIELDS with names, PASSWORD_MAX_LENGTH=64', async (t) => {
  const h = await buildTestApp(t, {
    env: { ALLOW_LOGIN_NOT_VERIFIED: 'false', REGISTER_FIELDS: 'email,username,firstName,lastName', PASSWORD_MAX_LENGTH: '64' },
  });
  const names = { firstName: 'Ada', lastName: 'Lovelace' };

  t.test('ALLOW_LOGIN_NOT_VERIFIED=false: the user alone, no token fields; login is not_verified', async (t) => {
    const input = body(names);
    const res = await post(h.app, '/register', input);
    t.equal(res.status, 201);
    t.same(Object.keys(res.body), ['user'], 'the user alone');
    t.same(Object.keys(res.body.user).sort(), USER_KEYS);
    t.equal(res.body.user.firstName, 'Ada');
    t.equal(res.body.user.lastName, 'Lovelace');
    t.equal(res.body.user.verified, false);
    t.equal(res.body.user.hasPassword, true);
    t.equal(res.body.user.lastLogin, null, 'not logged in');
    t.notOk(res.raw.includes(PASSWORD));

    const login = await post(h.app, '/token', { email: input.email, password: PASSWORD });
    assertProblem(t, login, 'not_verified', { detail: 'Please verify your account.' });
    const wrong = await post(h.app, '/token', { email: input.email, password: `${PASSWORD}x` });
    assertProblem(t, wrong, 'invalid_credentials', { detail: 'Please, enter valid credentials.' });

    // After verification the account logs in.
    const mail = await h.mail.waitFor(input.email);
    t.equal((await post(h.app, '/verify-account', { token: tokenIn(mail) })).status, 204);
    t.equal((await post(h.app, '/token', { email: input.email, password: PASSWORD })).status, 200);
  });

  t.test('REGISTER_FIELDS=email,username,firstName,lastName requires all of them', async (t) => {
    const res = await post(h.app, '/register', body());
    assertProblem(t, res, 'validation_failed', { fields: ['firstName', 'lastName'] });
    t.same(codesOf(res, 'firstName'), ['required']);
    t.same(codesOf(res, 'lastName'), ['required']);
    const noLast = await post(h.app, '/register', body({ firstName: 'Ada' }));
    assertProblem(t, noLast, 'validation_failed', { fields: ['lastName'] });
    t.same(Object.keys(noLast.body.errors), ['lastName']);
    const tooLong = await post(h.app, '/register', body({ firstName: 'A'.repeat(151), lastName: 'B' }));
    assertProblem(t, tooLong, 'validation_failed', { fields: ['firstName'] });
    t.ok(codesOf(tooLong, 'firstName').includes('max_length'));
  });

  t.test('password_too_similar to the first name', async (t) => {
    const res = await post(h.app, '/register', body({ firstName: 'Bartholomew', lastName: 'Quince', password1: 'bartholomew-lane', password2: 'bartholomew-lane' }));
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
    t.same(res.body.errors.password2, [{ message: 'The password is too similar to the first name.', code: 'password_too_similar' }]);
  });

  t.test('password_too_long follows PASSWORD_MAX_LENGTH (64)', async (t) => {
    const pw = randomBytes(60).toString('base64url').slice(0, 65);
    const res = await post(h.app, '/register', body({ ...names, password1: pw, password2: pw }));
    assertProblem(t, res, 'validation_failed', { fields: ['password2'] });
    t.same(codesOf(res, 'password2'), ['password_too_long']);
    t.match(res.body.errors.password2[0].message, /64/);
    const ok = await post(h.app, '/register', body({ ...names, password1: pw.slice(0, 64), password2: pw.slice(0, 64) }));
    t.equal(ok.status, 201, '64 characters are accepted');
  });
});

// =============================================================================================
t.test('POST /register with ALLOW_PASSWORDLESS_REGISTRATION=true', async (t) => {
  const h = await buildTestApp(t, { env: { ALLOW_PASSWORDLESS_REGISTRATION: 'true' } });

  t.test('without password1/password2: 201, hasPassword false, no tokens; login refused with invalid_credentials', async (t) => {
    const input = uniqueUser();
    const res = await post(h.app, '/register', input);
    t.equal(res.status, 201);
    t.same(Object.keys(res.body), ['user'], 'no token fields');
    t.equal(res.body.user.hasPassword, false);
    t.equal(res.body.user.verified, false);
    const [row] = await h.db.db.select().from(users).where(eq(users.id, res.body.user.id));
    t.equal(row.passwordHash, null, 'no hash stored');
    for (const password of [PASSWORD, 'x', '']) {
      const login = await post(h.app, '/token', { email: input.email, password });
      if (password === '') t.equal(login.status, 400, 'an empty password is a schema error');
      else assertProblem(t, login, 'invalid_credentials', { detail: 'Please, enter valid credentials.' });
    }
    const byName = await post(h.app, '/token', { username: input.username, password: PASSWORD });
    assertProblem(t, byName, 'invalid_credentials', { detail: 'Please, enter valid credentials.' });
  });

  t.test('the activation email is sent, no password-set email (SEND_PASSWORD_SET_EMAIL defaults to false)', async (t) => {
    const input = uniqueUser();
    t.equal((await post(h.app, '/register', input)).status, 201);
    const mail = await h.mail.waitFor(input.email);
    t.equal(mail.subject, 'Activate your account');
    await sleep(400);
    t.equal(h.mail.to(input.email).length, 1, 'one email only');
    const kinds = (await h.db.db.select().from(outbox).where(eq(outbox.recipient, input.email))).map((r) => r.kind);
    t.same(kinds, ['activation']);
  });

  t.test('sending only password1 (or only password2) is a 400 naming the other', async (t) => {
    const only1 = await post(h.app, '/register', { ...uniqueUser(), password1: PASSWORD });
    assertProblem(t, only1, 'validation_failed', { fields: ['password2'] });
    t.same(codesOf(only1, 'password2'), ['required']);
    const only2 = await post(h.app, '/register', { ...uniqueUser(), password2: PASSWORD });
    assertProblem(t, only2, 'validation_failed', { fields: ['password1'] });
    t.same(codesOf(only2, 'password1'), ['required']);
  });

  t.test('passwords sent are checked and set as usual', async (t) => {
    const weak = await post(h.app, '/register', body({ password1: '123', password2: '123' }));
    assertProblem(t, weak, 'validation_failed', { fields: ['password2'] });
    const res = await post(h.app, '/register', body());
    t.equal(res.status, 201);
    t.equal(res.body.user.hasPassword, true);
    t.equal(typeof res.body.token, 'string', 'tokens, as for any account with a password');
  });
});

t.test('POST /register with ALLOW_PASSWORDLESS_REGISTRATION=true and SEND_PASSWORD_SET_EMAIL=true', async (t) => {
  const h = await buildTestApp(t, { env: { ALLOW_PASSWORDLESS_REGISTRATION: 'true', SEND_PASSWORD_SET_EMAIL: 'true' } });

  t.test('a passwordless registration gets a password-set email whose token sets the password', async (t) => {
    const input = uniqueUser();
    t.equal((await post(h.app, '/register', input)).status, 201);
    await h.mail.waitFor(input.email, 2);
    const bySubject = Object.fromEntries(h.mail.to(input.email).map((m) => [m.subject, m]));
    t.ok(bySubject['Activate your account'], 'the activation email');
    const set = bySubject['Set your password'];
    t.ok(set, 'the password-set email');
    const token = tokenIn(set);
    t.ok(set.text?.includes(`https://app.example.com/password-set/${token}`), 'PASSWORD_SET_URL link');
    const res = await post(h.app, '/password-set', { token, newPassword1: PASSWORD, newPassword2: PASSWORD });
    t.equal(res.status, 204);
    const login = await post(h.app, '/token', { email: input.email, password: PASSWORD });
    t.equal(login.status, 200, 'the account logs in with the password it set');
  });

  t.test('a registration with a password gets no password-set email', async (t) => {
    const reg = await registerUser(h.app);
    await h.mail.waitFor(reg.email);
    await sleep(400);
    t.same(h.mail.to(reg.email).map((m) => m.subject), ['Activate your account']);
  });
});

t.test('POST /register with SEND_ACTIVATION_EMAIL=false', async (t) => {
  const h = await buildTestApp(t, { env: { SEND_ACTIVATION_EMAIL: 'false' } });
  const reg = await registerUser(h.app);
  await sleep(500);
  t.equal(h.mail.to(reg.email).length, 0, 'no email');
  t.equal((await h.db.db.select().from(outbox).where(eq(outbox.recipient, reg.email))).length, 0, 'no outbox row');
  t.equal((await h.db.db.select().from(emailTokens).where(eq(emailTokens.userId, reg.user.id))).length, 0, 'no token');
  // The account can still ask for its activation link.
  t.equal((await post(h.app, '/resend-activation-email', { email: reg.email })).status, 202);
  await h.app.backgroundIdle();
  const mail = await h.mail.waitFor(reg.email);
  t.equal((await post(h.app, '/verify-account', { token: tokenIn(mail) })).status, 204);
});

// =============================================================================================
t.test('POST /verify-account', async (t) => {
  const h = await buildTestApp(t);

  t.test('the activation email token verifies the account (204, /me verified)', async (t) => {
    const reg = await registerUser(h.app);
    const mail = await h.mail.waitFor(reg.email);
    const res = await post(h.app, '/verify-account', { token: tokenIn(mail) });
    t.equal(res.status, 204);
    t.equal(res.raw, '', 'no body');
    // Verification ends the sessions started before it (account pre-hijacking): log in again.
    t.equal((await get(h.app, '/me', reg.token)).status, 401, 'the registration session ended with the verification');
    const me = await get(h.app, '/me', (await post(h.app, '/token', { email: reg.email, password: PASSWORD })).body.token);
    t.equal(me.status, 200);
    t.equal(me.body.user.verified, true);
    const [row] = await h.db.db.select().from(users).where(eq(users.id, reg.user.id));
    t.equal(row.verified, true, 'stored verified');
  });

  t.test('a garbage token is invalid_token', async (t) => {
    for (const token of ['garbage', randomBytes(32).toString('base64url')]) {
      const res = await post(h.app, '/verify-account', { token });
      assertProblem(t, res, 'invalid_token', { detail: 'Invalid token.' });
    }
    const missing = await post(h.app, '/verify-account', {});
    assertProblem(t, missing, 'validation_failed', { fields: ['token'] });
    const number = await post(h.app, '/verify-account', { token: 12345 });
    assertProblem(t, number, 'validation_failed', { fields: ['token'] });
  });

  t.test('the same token again is already_verified (409)', async (t) => {
    const reg = await registerUser(h.app);
    const token = tokenIn(await h.mail.waitFor(reg.email));
    t.equal((await post(h.app, '/verify-account', { token })).status, 204);
    const again = await post(h.app, '/verify-account', { token });
    assertProblem(t, again, 'already_verified', { detail: 'Account already verified.' });
  });

  t.test('a password-reset token used here is invalid_token (and stays good for its purpose)', async (t) => {
    const user = await verifiedUser(h);
    const sent = await post(h.app, '/send-password-reset-email', { email: user.email });
    t.equal(sent.status, 202);
    await h.app.backgroundIdle();
    const mail = await h.mail.waitFor(user.email, 2);
    t.equal(mail.subject, 'Reset your password');
    const token = tokenIn(mail);
    const res = await post(h.app, '/verify-account', { token });
    assertProblem(t, res, 'invalid_token', { detail: 'Invalid token.' });
    const reset = await post(h.app, '/password-reset', { token, newPassword1: `${PASSWORD} 2`, newPassword2: `${PASSWORD} 2` });
    t.equal(reset.status, 204, 'the reset token was not consumed by the wrong endpoint');
  });

  t.test('concurrent verifications of one token: exactly one 204', async (t) => {
    const reg = await registerUser(h.app);
    const token = tokenIn(await h.mail.waitFor(reg.email));
    const results = await Promise.all(Array.from({ length: 10 }, () => post(h.app, '/verify-account', { token })));
    t.equal(results.filter((r) => r.status === 204).length, 1, 'exactly one 204');
    for (const r of results.filter((r) => r.status !== 204)) {
      t.ok(['already_verified', 'invalid_token'].includes(r.body.code), `a loser gets ${r.body.code}`);
    }
    const me = await get(h.app, '/me', (await post(h.app, '/token', { email: reg.email, password: PASSWORD })).body.token);
    t.equal(me.body.user.verified, true);
  });

  t.test('after verification, an older activation token of the account is already_verified', async (t) => {
    const reg = await registerUser(h.app);
    const older = tokenIn(await h.mail.waitFor(reg.email));
    t.equal((await post(h.app, '/resend-activation-email', { email: reg.email })).status, 202);
    await h.app.backgroundIdle();
    const newer = tokenIn(await h.mail.waitFor(reg.email, 2));
    t.not(newer, older, 'a new token');
    t.equal((await post(h.app, '/verify-account', { token: newer })).status, 204);
    const res = await post(h.app, '/verify-account', { token: older });
    assertProblem(t, res, 'already_verified', { detail: 'Account already verified.' });
  });

  t.test('an older activation token stays valid after a resend until one is used', async (t) => {
    const reg = await registerUser(h.app);
    const older = tokenIn(await h.mail.waitFor(reg.email));
    t.equal((await post(h.app, '/resend-activation-email', { email: reg.email })).status, 202);
    await h.app.backgroundIdle();
    const newer = tokenIn(await h.mail.waitFor(reg.email, 2));
    t.equal((await post(h.app, '/verify-account', { token: older })).status, 204, 'the older token works');
    assertProblem(t, await post(h.app, '/verify-account', { token: newer }), 'already_verified', { detail: 'Account already verified.' });
  });
});

t.test('POST /verify-account: expiry (EXPIRATION_ACTIVATION_TOKEN default 7d)', async (t) => {
  const h = await buildTestApp(t);
  const a = await registerUser(h.app);
  const b = await registerUser(h.app);
  const tokenA = tokenIn(await h.mail.waitFor(a.email));
  const tokenB = tokenIn(await h.mail.waitFor(b.email));
  h.clock.advance(7 * 86400 - 60);
  t.equal((await post(h.app, '/verify-account', { token: tokenA })).status, 204, 'a minute before expiry: verified');
  h.clock.advance(120);
  const res = await post(h.app, '/verify-account', { token: tokenB });
  assertProblem(t, res, 'expired_token', { detail: 'Expired token.' });
  const login = await post(h.app, '/token', { email: b.email, password: PASSWORD });
  t.equal(login.body.user.verified, false, 'the expired token verified nothing');
  // A new link works.
  t.equal((await post(h.app, '/resend-activation-email', { email: b.email })).status, 202);
  await h.app.backgroundIdle();
  const fresh = tokenIn(await h.mail.waitFor(b.email, 2));
  t.equal((await post(h.app, '/verify-account', { token: fresh })).status, 204, 'a resent token verifies');
});

t.test('POST /verify-account: expiry follows EXPIRATION_ACTIVATION_TOKEN=1h', async (t) => {
  const h = await buildTestApp(t, { env: { EXPIRATION_ACTIVATION_TOKEN: '1h' } });
  const a = await registerUser(h.app);
  const b = await registerUser(h.app);
  const tokenA = tokenIn(await h.mail.waitFor(a.email));
  const tokenB = tokenIn(await h.mail.waitFor(b.email));
  h.clock.advance(3600 - 30);
  t.equal((await post(h.app, '/verify-account', { token: tokenA })).status, 204);
  h.clock.advance(60);
  assertProblem(t, await post(h.app, '/verify-account', { token: tokenB }), 'expired_token', { detail: 'Expired token.' });
});

// =============================================================================================
t.test('POST /resend-activation-email', async (t) => {
  const h = await buildTestApp(t);

  t.test('202 with the same body and headers for an unknown, an unverified and a verified account; only the unverified gets an email', async (t) => {
    const unverified = await registerUser(h.app);
    await h.mail.waitFor(unverified.email);
    const verified = await verifiedUser(h);
    const unknown = uniqueUser().email;

    const answers = [];
    for (const email of [unknown, unverified.email, verified.email]) answers.push(await post(h.app, '/resend-activation-email', { email }));
    const strip = (headers: Res['headers']) => {
      const copy: Record<string, unknown> = { ...headers };
      for (const k of Object.keys(copy)) if (k === 'date' || /request-?id/i.test(k)) delete copy[k];
      return copy;
    };
    for (const a of answers) t.equal(a.status, 202);
    t.equal(typeof answers[0].body.detail, 'string', 'a detail message');
    t.same(answers[1].body, answers[0].body, 'unverified: same body as unknown');
    t.same(answers[2].body, answers[0].body, 'verified: same body as unknown');
    t.equal(answers[1].raw, answers[0].raw);
    t.equal(answers[2].raw, answers[0].raw);
    t.same(strip(answers[1].headers), strip(answers[0].headers), 'unverified: same headers as unknown');
    t.same(strip(answers[2].headers), strip(answers[0].headers), 'verified: same headers as unknown');

    await h.app.backgroundIdle();
    await h.mail.waitFor(unverified.email, 2);
    await sleep(400);
    t.equal(h.mail.to(unverified.email).length, 2, 'the unverified account got a second activation email');
    t.equal(h.mail.to(unverified.email)[1].subject, 'Activate your account');
    t.equal(h.mail.to(verified.email).length, 1, 'the verified account got nothing more');
    t.equal(h.mail.to(unknown).length, 0, 'the unknown address got nothing');
    t.equal((await h.db.db.select().from(outbox).where(eq(outbox.recipient, unknown))).length, 0, 'nothing queued for the unknown address');
  });

  t.test('a malformed email is 400 validation_failed on errors.email', async (t) => {
    for (const email of ['not-an-email', 'a@', '']) {
      const res = await post(h.app, '/resend-activation-email', { email });
      assertProblem(t, res, 'validation_failed', { fields: ['email'] });
    }
    assertProblem(t, await post(h.app, '/resend-activation-email', {}), 'validation_failed', { fields: ['email'] });
    assertProblem(t, await post(h.app, '/resend-activation-email', { email: 42 }), 'validation_failed', { fields: ['email'] });
    const extra = await post(h.app, '/resend-activation-email', { email: uniqueUser().email, username: 'x' });
    assertProblem(t, extra, 'validation_failed', { fields: ['username'] });
  });

  t.test('the resent token verifies the account', async (t) => {
    const reg = await registerUser(h.app);
    await h.mail.waitFor(reg.email);
    t.equal((await post(h.app, '/resend-activation-email', { email: reg.email })).status, 202);
    await h.app.backgroundIdle();
    const mail = await h.mail.waitFor(reg.email, 2);
    t.equal((await post(h.app, '/verify-account', { token: tokenIn(mail) })).status, 204);
    t.equal((await get(h.app, '/me', (await post(h.app, '/token', { email: reg.email, password: PASSWORD })).body.token)).body.user.verified, true);
  });

  t.test('the address is matched case-insensitively and the email goes to the stored address', async (t) => {
    const { username } = uniqueUser();
    const stored = `Mixed.${username}@Example.com`;
    t.equal((await post(h.app, '/register', { email: stored, username, password1: PASSWORD, password2: PASSWORD })).status, 201);
    await h.mail.waitFor(stored);
    t.equal((await post(h.app, '/resend-activation-email', { email: stored.toLowerCase() })).status, 202);
    await h.app.backgroundIdle();
    await h.mail.waitFor(stored, 2);
    const rows = await h.db.db.select().from(outbox).where(sql`lower(${outbox.recipient}) = lower(${stored})`);
    t.same(rows.map((r) => r.recipient), [stored, stored], 'both emails to the stored address');
  });
});

// Regression: the NFKC hook is attached per route (app.ts), to the routes whose body schema may
// hold an email or a username, through the schemas' $ref; token checks and bearer reads skip it.
t.test('the identifier normalisation hook is on the routes with identifiers, and only there', async (t) => {
  const h = await buildTestApp(t);
  // printRoutes draws a tree: a node line per path segment (its methods in parentheses; a method
  // variant of the same node sits one level deeper without a branch mark), then its hooks.
  const hooked = new Set<string>();
  let path: string[] = [];
  let methods: string[] = [];
  for (const line of h.app.printRoutes({ includeHooks: true, commonPrefix: false }).split('\n')) {
    const node = /^((?:│   |    )*)([├└]── )?(\S+) \(([A-Z, ]+)\)$/.exec(line);
    if (node) {
      const depth = node[1].length / 4 - (node[2] ? 0 : 1);
      path = [...path.slice(0, depth), node[3]];
      methods = node[4].split(', ');
    } else if (/\(preValidation\).*normalizeIdentifiers/.test(line)) {
      for (const method of methods) hooked.add(`${method} ${path.join('')}`);
    }
  }
  for (const url of ['/register', '/token', '/resend-activation-email', '/send-password-reset-email']) {
    t.ok(hooked.has(`POST ${url}`), `POST ${url} normalises identifiers`);
  }
  for (const url of ['/token/verify', '/token/refresh', '/token/revoke', '/verify-account', '/password-reset']) {
    t.notOk(hooked.has(`POST ${url}`), `POST ${url} does not run the hook`);
  }
  t.notOk(hooked.has('GET /me'), 'GET /me does not run the hook');
});
