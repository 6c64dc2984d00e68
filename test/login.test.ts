// POST /token (ObtainJSONWebTokenMixin) and GET /me: what a client sees when it logs in and uses
// its access token. The contract: the README and the OpenAPI document (TokenOutput, errors).
import { eq, sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { sessions } from '../src/db/schema.js';
import {
  anotherPool,
  assertProblem,
  buildSiblingApp,
  buildTestApp,
  get,
  PASSWORD,
  post,
  registerUser,
  type Res,
  safeJson,
  sleep,
  type TestApp,
  tokenIn,
  uniqueUser,
  userRow,
  verifiedUser,
} from './helpers.js';

const USER_KEYS = ['archived', 'dateJoined', 'email', 'firstName', 'hasPassword', 'id', 'isActive', 'lastLogin', 'lastName', 'username', 'verified'];
const TOKEN_OUTPUT_KEYS = ['expiresIn', 'payload', 'refreshExpiresIn', 'refreshToken', 'token', 'tokenType', 'unarchiving', 'user'];
const INVALID_CREDENTIALS = 'Please, enter valid credentials.';

/** A problem body without its requestId, to compare two answers. */
const withoutRequestId = (body: unknown) => {
  const { requestId: _, ...rest } = body as Record<string, unknown>;
  return rest;
};

const decodeSegment = (segment: string) => JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
const encodeSegment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const alternateCase = (s: string) => [...s].map((c, i) => (i % 2 ? c.toUpperCase() : c.toLowerCase())).join('');
const nowSeconds = (h: TestApp) => Math.floor(h.clock.now().getTime() / 1000);

async function getWithAuth(h: TestApp, authorization: string | undefined) {
  const res = await h.app.inject({ method: 'GET', url: '/me', headers: authorization === undefined ? {} : { authorization } });
  return { status: res.statusCode, headers: res.headers, body: safeJson(res.body), raw: res.body } as Res;
}

/** A full TokenOutput of a fresh login (its members and the access token's claims). */
function assertTokenOutput(t: Test, h: TestApp, res: Res, account: { id?: string; email: string; username: string }) {
  t.equal(res.status, 200, 'login answers 200');
  t.match(String(res.headers['cache-control']), /no-store/, 'Cache-Control: no-store');
  const body = res.body;
  t.same(Object.keys(body).sort(), TOKEN_OUTPUT_KEYS, 'exactly the TokenOutput members');
  t.equal(body.tokenType, 'Bearer');
  t.equal(body.expiresIn, 300, 'JWT_EXPIRATION_DELTA defaults to 5 minutes');
  t.type(body.refreshToken, 'string');
  t.ok(body.refreshToken.length >= 43, 'a refresh token of at least 256 bits');
  const now = nowSeconds(h);

  const p = body.payload;
  t.has(p, { username: account.username, email: account.email }, 'payload carries the username and email');
  t.type(p.sub, 'string');
  if (account.id) t.equal(p.sub, account.id, 'sub is the user id');
  t.equal(p.sub, body.user.id, 'sub is the id of the user returned');
  t.type(p.jti, 'string');
  t.ok(Math.abs(p.iat - now) <= 5, 'iat is now');
  t.equal(p.exp - p.iat, 300, 'exp = iat + 5 minutes');
  t.equal(p.origIat, p.iat, 'origIat is the time of this login');
  t.notOk('iss' in p || 'aud' in p, 'no iss/aud when not configured');
  t.ok(Math.abs(body.refreshExpiresIn - (p.origIat + 7 * 86400)) <= 2, 'refreshExpiresIn: unix seconds, 7 days after the login');

  // The token is a JWT whose claims are the payload answered.
  const [header, claims, signature] = body.token.split('.');
  t.ok(signature, 'a signed JWT');
  t.has(decodeSegment(header), { alg: 'EdDSA' }, 'EdDSA by default');
  t.type(decodeSegment(header).kid, 'string', 'with a kid header');
  t.same(decodeSegment(claims), p, 'payload = the claims of the token');

  t.same(Object.keys(body.user).sort(), USER_KEYS, 'user has exactly the User members');
  t.has(body.user, { email: account.email, username: account.username, isActive: true, archived: false, hasPassword: true });
  t.ok(body.user.lastLogin, 'lastLogin is set');
  t.ok(Math.abs(Date.parse(body.user.lastLogin) / 1000 - now) <= 5, 'lastLogin is now');
  t.equal(body.unarchiving, false, 'unarchiving false for an account that was not archived');
  t.notMatch(res.raw, /\$argon2/, 'no password hash in the answer');
}

// One app with the default settings for the sub-tests that need nothing else.
const h = await buildTestApp(t);

t.test('login by email and by username, in any case, returns a full TokenOutput', async (t) => {
  const base = uniqueUser('Login');
  const account = { email: `Mixed.${base.email.replace('@example.com', '@Example.COM')}`, username: `Mixed${base.username}` };
  const reg = await registerUser(h.app, account);
  const id = reg.user.id as string;

  const identifiers: [string, Record<string, string>][] = [
    ['email as registered', { email: account.email }],
    ['email lower case', { email: account.email.toLowerCase() }],
    ['email upper case', { email: account.email.toUpperCase() }],
    ['email mixed case', { email: alternateCase(account.email) }],
    ['username as registered', { username: account.username }],
    ['username lower case', { username: account.username.toLowerCase() }],
    ['username upper case', { username: account.username.toUpperCase() }],
    ['username mixed case', { username: alternateCase(account.username) }],
  ];
  const jtis = new Set<string>();
  for (const [name, identifier] of identifiers) {
    await t.test(name, async (t) => {
      const res = await post(h.app, '/token', { ...identifier, password: PASSWORD });
      assertTokenOutput(t, h, res, { id, ...account });
      jtis.add(res.body.payload.jti);
      const me = await get(h.app, '/me', res.body.token);
      t.equal(me.status, 200, 'the access token works on GET /me');
      t.equal(me.body.user.id, id);
    });
  }
  t.equal(jtis.size, identifiers.length, 'every login has its own jti');
  t.equal((await userRow(h, id)).email, account.email, 'the email keeps the case it was registered with');
});

t.test('an unverified account logs in by default (ALLOW_LOGIN_NOT_VERIFIED=true)', async (t) => {
  const reg = await registerUser(h.app);
  t.equal(reg.user.verified, false);
  const res = await post(h.app, '/token', { username: reg.username, password: PASSWORD });
  assertTokenOutput(t, h, res, reg);
  t.equal(res.body.user.verified, false);
});

t.test('ALLOW_LOGIN_NOT_VERIFIED=false: unverified account, right password → 403 not_verified; wrong → 401 invalid_credentials', async (t) => {
  const hv = await buildTestApp(t, { env: { ALLOW_LOGIN_NOT_VERIFIED: 'false' } });
  const reg = await registerUser(hv.app);
  t.notOk('token' in reg || 'refreshToken' in reg, 'register returns no tokens when unverified accounts may not log in');
  t.equal(reg.user.lastLogin, null, 'and does not log in');

  const right = await post(hv.app, '/token', { email: reg.email, password: PASSWORD });
  assertProblem(t, right, 'not_verified', { detail: 'Please verify your account.' });
  t.notOk(right.raw?.includes('token"'), 'no token');

  // The password is checked first: a wrong one must not learn that the account is unverified.
  const wrong = await post(hv.app, '/token', { email: reg.email, password: `${PASSWORD}x` });
  assertProblem(t, wrong, 'invalid_credentials', { detail: INVALID_CREDENTIALS });
  const unknown = await post(hv.app, '/token', { email: uniqueUser().email, password: PASSWORD });
  t.same(withoutRequestId(wrong.body), withoutRequestId(unknown.body), 'the same answer as for an unknown account');

  t.equal((await userRow(hv, reg.user.id)).lastLogin, null, 'neither attempt logged in');

  // Once verified, the same account logs in.
  const mail = await hv.mail.waitFor(reg.email);
  t.equal((await post(hv.app, '/verify-account', { token: tokenIn(mail) })).status, 204);
  const after = await post(hv.app, '/token', { email: reg.email, password: PASSWORD });
  assertTokenOutput(t, hv, after, reg);
});

t.test('unknown identifier, wrong password, passwordless and inactive accounts: one identical 401 invalid_credentials', async (t) => {
  const hp = await buildTestApp(t, { env: { ALLOW_PASSWORDLESS_REGISTRATION: 'true' } });
  const known = await registerUser(hp.app);

  const passwordless = uniqueUser('nopw');
  const reg = await post(hp.app, '/register', passwordless);
  t.equal(reg.status, 201, 'passwordless registration');
  t.equal(reg.body.user.hasPassword, false);

  // delete-account under the default ALLOW_DELETE_ACCOUNT=false makes the account inactive.
  const inactive = await verifiedUser(hp);
  t.equal((await post(hp.app, '/delete-account', { password: PASSWORD }, inactive.token)).status, 204, 'deactivated');
  t.equal((await userRow(hp, inactive.user.id)).isActive, false, 'the account is inactive');

  const attempts: [string, Record<string, string>][] = [
    ['unknown email', { email: uniqueUser().email, password: PASSWORD }],
    ['unknown username', { username: uniqueUser().username, password: PASSWORD }],
    ['wrong password by email', { email: known.email, password: `${PASSWORD}!` }],
    ['wrong password by username', { username: known.username, password: 'Correct Horse Battery Staple' }],
    ['passwordless account', { email: passwordless.email, password: PASSWORD }],
    ['passwordless account, by username', { username: passwordless.username, password: 'anything at all 123' }],
    ['inactive account, right password', { email: inactive.email, password: PASSWORD }],
    ['inactive account, by username', { username: inactive.username, password: PASSWORD }],
    ['inactive account, wrong password', { email: inactive.email, password: `${PASSWORD}!` }],
  ];
  const answers: Res[] = [];
  for (const [name, body] of attempts) {
    const res = await post(hp.app, '/token', body);
    await t.test(name, async (t) => assertProblem(t, res, 'invalid_credentials', { detail: INVALID_CREDENTIALS }));
    answers.push(res);
  }
  const first = answers[0];
  const headerNames = (r: Res) =>
    Object.keys(r.headers)
      .filter((k) => k !== 'date')
      .sort();
  answers.forEach((res, i) => {
    t.same(withoutRequestId(res.body), withoutRequestId(first.body), `${attempts[i][0]}: the same body as an unknown email`);
    t.same(headerNames(res), headerNames(first), `${attempts[i][0]}: the same headers`);
    t.equal(res.headers['content-type'], first.headers['content-type']);
  });
  const ids = new Set(answers.map((r) => r.body.requestId));
  t.equal(ids.size, answers.length, 'every answer has its own requestId');

  t.equal((await userRow(hp, inactive.user.id)).isActive, false, 'the inactive account stays inactive');
});

t.test('an unknown identifier and a wrong password take about the same time (a dummy argon2 runs)', async (t) => {
  // The production cost, so that a skipped verification would stand out against the database work.
  const ht = await buildTestApp(t, { env: { ARGON2_MEMORY_KIB: '19456', ARGON2_ITERATIONS: '2' } });
  const reg = await registerUser(ht.app);
  const time = async (body: object) => {
    const start = process.hrtime.bigint();
    const res = await post(ht.app, '/token', body);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (res.status !== 401) throw new Error(`expected 401, got ${res.status} ${res.raw}`);
    return ms;
  };
  const unknown = () => time({ email: uniqueUser().email, password: PASSWORD });
  const wrong = () => time({ email: reg.email, password: `${PASSWORD}?` });
  // Warm up both paths (JIT, connection, query plans).
  for (let i = 0; i < 3; i++) {
    await unknown();
    await wrong();
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < 15; i++) {
    a.push(await unknown());
    b.push(await wrong());
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  const ratio = median(a) / median(b);
  t.comment(`median unknown ${median(a).toFixed(1)} ms, wrong password ${median(b).toFixed(1)} ms, ratio ${ratio.toFixed(2)}`);
  t.ok(ratio >= 0.5 && ratio <= 2, `the ratio of the medians (${ratio.toFixed(2)}) is between 0.5 and 2`);
});

t.test('login body rules', async (t) => {
  const reg = await registerUser(h.app);
  const cases: [string, unknown, Record<string, unknown> | undefined][] = [
    ['both email and username', { email: reg.email, username: reg.username, password: PASSWORD }, undefined],
    ['neither email nor username', { password: PASSWORD }, undefined],
    ['no password', { email: reg.email }, { password: [{ code: 'required' }] }],
    ['an unknown property', { email: reg.email, password: PASSWORD, rememberMe: true }, { rememberMe: [{ code: String }] }],
    ['a number as password (no coercion)', { email: reg.email, password: 12345678 }, { password: [{ code: 'invalid' }] }],
    ['a number as username (no coercion)', { username: 12345678, password: PASSWORD }, { username: [{ code: 'invalid' }] }],
    ['null as email', { email: null, password: PASSWORD }, { email: [{ code: String }] }],
    ['an array as password', { email: reg.email, password: [PASSWORD] }, { password: [{ code: 'invalid' }] }],
  ];
  for (const [name, body, errors] of cases) {
    await t.test(`${name} → 400`, async (t) => {
      const res = await post(h.app, '/token', body);
      assertProblem(t, res, 'validation_failed', { fields: errors && Object.keys(errors) });
      if (errors) t.match(res.body.errors, errors, 'field errors');
      const fieldErrors = res.body.errors as Record<string, { message: string; code: string }[]> | undefined;
      t.ok(fieldErrors && Object.keys(fieldErrors).length > 0, 'errors says what is wrong');
      for (const list of Object.values(fieldErrors ?? {})) {
        t.ok(Array.isArray(list) && list.every((e) => typeof e.message === 'string' && typeof e.code === 'string'), 'errors: [{ message, code }]');
      }
    });
  }
  const before = (await userRow(h, reg.user.id)).lastLogin?.toISOString() ?? null;
  t.equal(before, reg.user.lastLogin, 'none of the refused bodies logged in');
});

t.test('LOGIN_ALLOWED_FIELDS=username: email is an unknown property', async (t) => {
  const hu = await buildTestApp(t, { env: { LOGIN_ALLOWED_FIELDS: 'username' } });
  const reg = await registerUser(hu.app);
  const byEmail = await post(hu.app, '/token', { email: reg.email, password: PASSWORD });
  assertProblem(t, byEmail, 'validation_failed', { fields: ['email'] });
  const both = await post(hu.app, '/token', { email: reg.email, username: reg.username, password: PASSWORD });
  assertProblem(t, both, 'validation_failed', { fields: ['email'] });
  const byUsername = await post(hu.app, '/token', { username: reg.username.toUpperCase(), password: PASSWORD });
  assertTokenOutput(t, hu, byUsername, reg);
});

t.test('archived account: a failed login leaves it archived; the owner’s login un-archives it (unarchiving: true)', async (t) => {
  const v = await verifiedUser(h);
  const archive = await post(h.app, '/archive-account', { password: PASSWORD }, v.token);
  t.equal(archive.status, 204, 'archived');
  t.equal((await userRow(h, v.user.id)).archived, true);
  const me = await get(h.app, '/me', v.token);
  assertProblem(t, me, 'unauthenticated', { detail: 'Unauthenticated.' });

  // GA un-archives before checking the password; a stranger's attempt must not.
  const failed = await post(h.app, '/token', { email: v.email, password: `${PASSWORD}!` });
  assertProblem(t, failed, 'invalid_credentials', { detail: INVALID_CREDENTIALS });
  t.equal((await userRow(h, v.user.id)).archived, true, 'still archived after a failed login');

  const ok = await post(h.app, '/token', { username: v.username, password: PASSWORD });
  t.equal(ok.status, 200);
  t.equal(ok.body.unarchiving, true, 'unarchiving: true');
  t.equal(ok.body.user.archived, false, 'the user answered is no longer archived');
  t.type(ok.body.token, 'string');
  t.type(ok.body.refreshToken, 'string');
  t.equal((await userRow(h, v.user.id)).archived, false, 'un-archived in the database');
  const me2 = await get(h.app, '/me', ok.body.token);
  t.equal(me2.status, 200, 'the new token works');
  t.equal(me2.body.user.archived, false);

  const again = await post(h.app, '/token', { email: v.email, password: PASSWORD });
  t.equal(again.status, 200);
  t.equal(again.body.unarchiving, false, 'the next login does not un-archive again');
});

t.test('a hash made at a lower argon2 cost is upgraded at the next successful login', async (t) => {
  // The harness app hashes at m=1024. A second app on the same database is configured at m=2048.
  const reg = await registerUser(h.app);
  await h.mail.waitFor(reg.email); // the first app's outbox has sent its email; the second app will not take it
  const hashOf = async () => (await userRow(h, reg.user.id)).passwordHash!;
  const original = await hashOf();
  t.match(original, /^\$argon2id\$v=19\$m=1024,t=1,p=1\$/, 'registered at m=1024');

  const app2 = await buildSiblingApp(t, h, { ARGON2_MEMORY_KIB: '2048' });
  const wrong = await post(app2, '/token', { email: reg.email, password: `${PASSWORD}!` });
  t.equal(wrong.status, 401);
  t.equal(await hashOf(), original, 'a failed login does not touch the hash');

  const ok = await post(app2, '/token', { email: reg.email, password: PASSWORD });
  t.equal(ok.status, 200, 'logs in on the costlier app');
  const upgraded = await hashOf();
  t.match(upgraded, /^\$argon2id\$v=19\$m=2048,t=1,p=1\$/, 'the stored hash is now at m=2048');
  t.not(upgraded, original);

  const again = await post(app2, '/token', { username: reg.username, password: PASSWORD });
  t.equal(again.status, 200, 'the upgraded hash still logs in');
  t.equal(await hashOf(), upgraded, 'a hash at the configured cost is not hashed again');

  const onFirst = await post(h.app, '/token', { email: reg.email, password: PASSWORD });
  t.equal(onFirst.status, 200, 'and logs in on the cheaper app too');
  t.equal(await hashOf(), upgraded, 'a login at a lower configured cost never downgrades the hash');
});

t.test('GET /me', async (t) => {
  const v = await verifiedUser(h);

  await t.test('returns the user, without any password or hash field', async (t) => {
    const res = await get(h.app, '/me', v.token);
    t.equal(res.status, 200);
    t.same(Object.keys(res.body), ['user']);
    t.same(Object.keys(res.body.user).sort(), USER_KEYS, 'exactly the User members');
    t.has(res.body.user, { id: v.user.id, email: v.email, username: v.username, verified: true, archived: false, isActive: true, hasPassword: true });
    t.notMatch(res.raw, /\$argon2|"password"|passwordHash|password_hash/i, 'no password or hash in the answer');
  });

  await t.test('the JWT prefix works as well as Bearer (and the scheme is case-insensitive)', async (t) => {
    for (const scheme of ['Bearer', 'JWT', 'bearer']) {
      const res = await getWithAuth(h, `${scheme} ${v.token}`);
      t.equal(res.status, 200, `${scheme} <token>`);
      t.equal(res.body.user?.id, v.user.id);
    }
  });

  const [header, payload, signature] = v.token.split('.');
  const claims = decodeSegment(payload);
  const other = await registerUser(h.app);
  const tampered = `${header}.${encodeSegment({ ...claims, sub: other.user.id, exp: claims.exp + 3600 })}.${signature}`;
  const tamperedUsername = `${header}.${encodeSegment({ ...claims, username: 'admin' })}.${signature}`;
  const algNone = `${encodeSegment({ alg: 'none', typ: 'JWT' })}.${payload}.`;
  const algNoneKid = `${encodeSegment({ alg: 'none', typ: 'JWT', kid: decodeSegment(header).kid })}.${payload}.`;
  const cases: [string, string | undefined][] = [
    ['no Authorization header', undefined],
    ['"Bearer" with no token', 'Bearer'],
    ['"Bearer " with an empty token', 'Bearer '],
    ['Basic credentials', 'Basic xyz'],
    ['a token without a scheme', v.token],
    ['a token with a tampered payload (another sub, later exp)', `Bearer ${tampered}`],
    ['a token with a tampered username', `Bearer ${tamperedUsername}`],
    ['a token with alg: none', `Bearer ${algNone}`],
    ['a token with alg: none and the real kid', `Bearer ${algNoneKid}`],
    ['a token without its signature', `Bearer ${header}.${payload}`],
    ['a garbage string', 'Bearer not-a-jwt'],
    ['garbage in three segments', 'Bearer aaa.bbb.ccc'],
    ['a refresh token as access token', `Bearer ${v.refreshToken}`],
  ];
  for (const [name, authorization] of cases) {
    await t.test(`${name} → 401 unauthenticated`, async (t) => {
      const res = await getWithAuth(h, authorization);
      assertProblem(t, res, 'unauthenticated', { detail: 'Unauthenticated.' });
    });
  }

  await t.test('an expired access token → 401 unauthenticated (the clock moves past JWT_EXPIRATION_DELTA)', async (t) => {
    const login = await post(h.app, '/token', { email: v.email, password: PASSWORD });
    t.equal(login.status, 200);
    h.clock.advance(290);
    t.equal((await get(h.app, '/me', login.body.token)).status, 200, 'still good shortly before exp');
    h.clock.advance(11);
    const res = await get(h.app, '/me', login.body.token);
    assertProblem(t, res, 'unauthenticated', { detail: 'Unauthenticated.' });
    const fresh = await post(h.app, '/token', { email: v.email, password: PASSWORD });
    t.equal((await get(h.app, '/me', fresh.body.token)).status, 200, 'a fresh login works again');
  });
});

t.test('an account deactivated while its login is checked gets no session (the write matches only an active account)', { skip: !process.env.TEST_DATABASE_URL && 'needs TEST_DATABASE_URL: another connection holds the account row' }, async (t) => {
  const h = await buildTestApp(t);
  const other = (await anotherPool(t, h))!;
  const v = await verifiedUser(h);
  const id = v.user.id as string;
  const sessionsOf = async () => (await h.db.db.select({ id: sessions.id }).from(sessions).where(eq(sessions.userId, id))).length;
  const before = await sessionsOf();
  // Another instance holds the account's row: the login looks the account up and checks the
  // password (reads are not blocked), then its write waits for the row. The account is
  // deactivated meanwhile, and the write finds no active account once the lock is released.
  let login: Promise<Res> | undefined;
  await other.db.transaction(async (tx) => {
    await tx.execute(sql`select 1 from users where id = ${id} for update`);
    login = post(h.app, '/token', { email: v.email, password: PASSWORD });
    for (let i = 0; ; i++) {
      const [waiting] = await tx.execute<{ n: number }>(sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`);
      if (waiting.n > 0) break;
      if (i > 500) throw new Error('the login never waited for the row');
      await sleep(10);
    }
    await tx.execute(sql`update users set is_active = false where id = ${id}`);
  });
  const res = await login!;
  assertProblem(t, res, 'invalid_credentials', { detail: INVALID_CREDENTIALS });
  t.equal(await sessionsOf(), before, 'no session was written for the deactivated account');
  t.equal((await userRow(h, id)).isActive, false);
});
