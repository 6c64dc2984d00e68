// POST /token/verify, /token/refresh, /token/revoke and GET /.well-known/jwks.json
// (the README's "Log in, who am I, tokens", and the refresh-token rotation and revocation rules).
import { createHmac, createPublicKey, verify as cryptoVerify, type JsonWebKey } from 'node:crypto';
import { eq } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { refreshTokens, sessions } from '../src/db/schema.js';
import { hashToken } from '../src/lib/tokens.js';
import { assertProblem, buildTestApp, get, PASSWORD, post, registerUser, type Res, type TestApp, verifiedUser } from './helpers.js';
import type { App } from '../src/routes/types.js';

const unixNow = (h: TestApp) => Math.floor(h.clock.now().getTime() / 1000);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const verify = (app: App, token: string) => post(app, '/token/verify', { token });
const refresh = (app: App, refreshToken: string) => post(app, '/token/refresh', { refreshToken });
const revoke = (app: App, refreshToken: string) => post(app, '/token/revoke', { refreshToken });

function decodeJwt(token: string) {
  const [h, p, s] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

/** Asserts that an access token is refused everywhere: /me 401, /token/verify invalid_token. */
async function assertAccessDead(t: Test, app: App, token: string, what = 'access token'): Promise<void> {
  const me = await get(app, '/me', token);
  t.equal(me.status, 401, `${what}: /me 401`);
  assertProblem(t, me, 'unauthenticated');
  assertProblem(t, await verify(app, token), 'invalid_token');
}

async function assertRefreshDead(t: Test, app: App, refreshToken: string): Promise<void> {
  assertProblem(t, await refresh(app, refreshToken), 'invalid_token');
}

async function assertAccessAlive(t: Test, app: App, token: string, what = 'access token'): Promise<void> {
  const me = await get(app, '/me', token);
  t.equal(me.status, 200, `${what}: /me 200`);
  t.equal((await verify(app, token)).status, 200, `${what}: /token/verify 200`);
}

function assertTokenOutput(t: Test, res: Res, withRefresh = true): void {
  t.equal(res.status, 200);
  t.equal(res.headers['cache-control'], 'no-store', 'Cache-Control: no-store');
  t.type(res.body.token, 'string');
  t.equal(res.body.tokenType, 'Bearer');
  t.type(res.body.expiresIn, 'number');
  t.type(res.body.payload, 'object');
  if (withRefresh) {
    t.type(res.body.refreshToken, 'string');
    t.type(res.body.refreshExpiresIn, 'number');
  } else {
    t.notOk('refreshToken' in res.body, 'no refreshToken');
    t.notOk('refreshExpiresIn' in res.body, 'no refreshExpiresIn');
  }
}

// ---------------------------------------------------------------------------------------------

t.test('default settings', async (t) => {
  const h = await buildTestApp(t);

  t.test('verify: a fresh access token answers its claims', async (t) => {
    const u = await verifiedUser(h);
    const res = await verify(h.app, u.token);
    t.equal(res.status, 200);
    t.same(Object.keys(res.body), ['payload'], 'only payload');
    const p = res.body.payload;
    t.equal(p.sub, u.login.user.id, 'sub is the user id');
    t.match(p.sid, UUID, 'sid');
    t.type(p.jti, 'string');
    t.ok(p.jti.length > 0, 'jti');
    t.type(p.iat, 'number');
    t.equal(p.exp, p.iat + 300, 'exp = iat + JWT_EXPIRATION_DELTA (5m)');
    t.equal(p.origIat, p.iat, 'origIat of a fresh login is its iat');
    t.ok(Math.abs(p.iat - unixNow(h)) <= 5, 'iat is now');
    t.equal(p.username, u.username);
    t.equal(p.email, u.email);
    t.notOk('iss' in p, 'no iss when JWT_ISSUER is unset');
    t.notOk('aud' in p, 'no aud when JWT_AUDIENCE is unset');
    t.same(p, u.login.payload, 'the same claims as the login answered');
    t.equal(u.login.expiresIn, 300);
  });

  t.test('verify: garbage is invalid_token', async (t) => {
    for (const garbage of ['garbage', 'not.a.jwt', 'eyJhbGciOiJFZERTQSJ9.e30.AAAA', 'a'.repeat(100)]) {
      assertProblem(t, await verify(h.app, garbage), 'invalid_token');
    }
  });

  t.test('verify: an expired access token is expired_token (and 401 on /me)', async (t) => {
    const u = await verifiedUser(h);
    h.clock.advance(290);
    t.equal((await verify(h.app, u.token)).status, 200, 'still good 10 s before exp');
    h.clock.advance(11);
    assertProblem(t, await verify(h.app, u.token), 'expired_token');
    const me = await get(h.app, '/me', u.token);
    assertProblem(t, me, 'unauthenticated');
  });

  t.test('verify: the access token of a revoked session is invalid_token', async (t) => {
    const u = await verifiedUser(h);
    t.equal((await verify(h.app, u.token)).status, 200, 'good before the revoke');
    t.equal((await revoke(h.app, u.refreshToken)).status, 200);
    assertProblem(t, await verify(h.app, u.token), 'invalid_token');
  });

  t.test('refresh: new access token, new refresh token, same origIat, no-store', async (t) => {
    const u = await verifiedUser(h);
    h.clock.advance(5);
    const res = await refresh(h.app, u.refreshToken);
    assertTokenOutput(t, res);
    t.notOk('user' in res.body, 'no user on refresh');
    t.not(res.body.refreshToken, u.refreshToken, 'a new refresh token');
    t.not(res.body.token, u.token, 'a new access token');
    const p = res.body.payload;
    t.equal(p.origIat, u.login.payload.origIat, 'origIat kept');
    t.ok(p.iat > u.login.payload.iat, 'a later iat');
    t.ok(p.exp > u.login.payload.exp, 'a later exp');
    t.equal(p.sid, u.login.payload.sid, 'same session');
    t.equal(p.sub, u.login.payload.sub, 'same subject');
    t.not(p.jti, u.login.payload.jti, 'a new jti');
    t.equal(res.body.expiresIn, 300);
    t.equal(res.body.refreshExpiresIn, u.login.refreshExpiresIn, 'the absolute end of the session does not move');
    t.same(decodeJwt(res.body.token).payload, p, 'payload is the token\'s claims');
    await assertAccessAlive(t, h.app, res.body.token, 'refreshed access token');
    const again = await refresh(h.app, res.body.refreshToken);
    assertTokenOutput(t, again);
    t.not(again.body.refreshToken, res.body.refreshToken, 'the new refresh token works and rotates again');
    t.equal(again.body.payload.origIat, u.login.payload.origIat);
  });

  t.test('refresh: refreshExpiresIn is the login time plus JWT_REFRESH_EXPIRATION_DELTA (7d)', async (t) => {
    const u = await verifiedUser(h);
    t.equal(u.login.refreshExpiresIn, u.login.payload.origIat + 7 * 86400);
  });

  t.test('refresh: garbage is invalid_token', async (t) => {
    for (const garbage of ['garbage', 'x'.repeat(43), 'eyJhbGciOiJFZERTQSJ9.e30.AAAA']) {
      assertProblem(t, await refresh(h.app, garbage), 'invalid_token');
    }
  });

  t.test('refresh: the session ends 7 days after the login, however often it was refreshed', async (t) => {
    const u = await verifiedUser(h);
    h.clock.advance(4 * 86400);
    const mid = await refresh(h.app, u.refreshToken);
    assertTokenOutput(t, mid);
    t.equal(mid.body.refreshExpiresIn, u.login.refreshExpiresIn, 'refreshing does not extend the session');
    h.clock.advance(3 * 86400 - 10);
    const late = await refresh(h.app, mid.body.refreshToken);
    assertTokenOutput(t, late);
    h.clock.advance(11);
    assertProblem(t, await refresh(h.app, late.body.refreshToken), 'expired_token');
  });

  t.test('refresh: an archived account\'s refresh token is invalid_token, even after it logs in again', async (t) => {
    const u = await verifiedUser(h);
    const archive = await post(h.app, '/archive-account', { password: PASSWORD }, u.token);
    t.equal(archive.status, 204);
    assertProblem(t, await refresh(h.app, u.refreshToken), 'invalid_token');
    const login = await post(h.app, '/token', { email: u.email, password: PASSWORD });
    t.equal(login.status, 200);
    t.equal(login.body.unarchiving, true);
    assertProblem(t, await refresh(h.app, u.refreshToken), 'invalid_token');
    t.equal((await refresh(h.app, login.body.refreshToken)).status, 200, 'the new session works');
  });

  t.test('reuse detection: a rotated refresh token presented after the interval ends the whole session', async (t) => {
    const u = await verifiedUser(h);
    const b = await refresh(h.app, u.refreshToken);
    assertTokenOutput(t, b);
    h.clock.advance(11);
    assertProblem(t, await refresh(h.app, u.refreshToken), 'invalid_token');
    await assertRefreshDead(t, h.app, b.body.refreshToken);
    await assertAccessDead(t, h.app, b.body.token, 'access token from the refresh');
    await assertAccessDead(t, h.app, u.token, 'access token from the login');
  });

  t.test('reuse detection: a retry within the interval gets the same child back', async (t) => {
    const u = await verifiedUser(h);
    const b = await refresh(h.app, u.refreshToken);
    assertTokenOutput(t, b);
    h.clock.advance(5);
    const retry = await refresh(h.app, u.refreshToken);
    assertTokenOutput(t, retry);
    t.equal(retry.body.refreshToken, b.body.refreshToken, 'the same refresh token B');
    t.equal(retry.body.payload.sid, b.body.payload.sid);
    await assertAccessAlive(t, h.app, retry.body.token, 'the retry\'s access token');
    await assertAccessAlive(t, h.app, b.body.token, 'the first access token');
    const c = await refresh(h.app, b.body.refreshToken);
    assertTokenOutput(t, c);
    t.not(c.body.refreshToken, b.body.refreshToken, 'B rotates as usual');
    // One child: still a single row whose parent is A.
    const [a] = await h.db.db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, hashToken(u.refreshToken)));
    const children = await h.db.db.select().from(refreshTokens).where(eq(refreshTokens.parentId, a.id));
    t.equal(children.length, 1, 'A has exactly one child');
  });

  t.test('reuse detection: a parent replayed after its child was used is theft, even within the interval', async (t) => {
    const u = await verifiedUser(h);
    const b = await refresh(h.app, u.refreshToken);
    const c = await refresh(h.app, b.body.refreshToken);
    assertTokenOutput(t, c);
    assertProblem(t, await refresh(h.app, u.refreshToken), 'invalid_token');
    await assertRefreshDead(t, h.app, c.body.refreshToken);
    await assertAccessDead(t, h.app, c.body.token);
  });

  t.test('concurrency: twenty concurrent refreshes of one token make at most one child', async (t) => {
    const u = await verifiedUser(h);
    const results = await Promise.all(Array.from({ length: 20 }, () => refresh(h.app, u.refreshToken)));
    const statuses = results.map((r) => r.status);
    t.same(statuses, Array(20).fill(200), 'all twenty are retries within the interval: 200');
    const children = new Set(results.filter((r) => r.status === 200).map((r) => r.body.refreshToken));
    t.equal(children.size, 1, 'every 200 carries the same refresh token');
    const [a] = await h.db.db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, hashToken(u.refreshToken)));
    const rows = await h.db.db.select().from(refreshTokens).where(eq(refreshTokens.parentId, a.id));
    t.equal(rows.length, 1, 'exactly one row whose parent is the original');
    const all = await h.db.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, a.sessionId));
    t.equal(all.length, 2, 'the session holds the original and its one child');
    const [child] = [...children];
    t.equal(rows[0]?.tokenHash, hashToken(child), 'the child row is the token that was answered');
    assertTokenOutput(t, await refresh(h.app, child));
  });

  t.test('race: a refresh racing an archive never leaves a live token behind', async (t) => {
    for (let round = 0; round < 3; round++) {
      const u = await verifiedUser(h);
      const [r, archive] = await Promise.all([
        refresh(h.app, u.refreshToken),
        post(h.app, '/archive-account', { password: PASSWORD }, u.token),
      ]);
      t.equal(archive.status, 204, 'archived');
      t.ok(r.status === 200 || r.status === 400, `refresh answered ${r.status}`);
      if (r.status === 400) assertProblem(t, r, 'invalid_token');
      await assertAccessDead(t, h.app, u.token, 'login access token');
      await assertRefreshDead(t, h.app, u.refreshToken);
      if (r.status === 200) {
        await assertAccessDead(t, h.app, r.body.token, 'refreshed access token');
        await assertRefreshDead(t, h.app, r.body.refreshToken);
      }
    }
  });

  t.test('race: a refresh racing a password change never leaves a live token behind', async (t) => {
    const NEW = 'quantum lantern orbit 7731';
    for (let round = 0; round < 3; round++) {
      const u = await verifiedUser(h);
      const [r, change] = await Promise.all([
        refresh(h.app, u.refreshToken),
        post(h.app, '/password-change', { oldPassword: PASSWORD, newPassword1: NEW, newPassword2: NEW }, u.token),
      ]);
      t.equal(change.status, 200, 'password changed');
      t.ok(r.status === 200 || r.status === 400, `refresh answered ${r.status}`);
      if (r.status === 400) assertProblem(t, r, 'invalid_token');
      await assertAccessDead(t, h.app, u.token, 'login access token');
      await assertRefreshDead(t, h.app, u.refreshToken);
      if (r.status === 200) {
        await assertAccessDead(t, h.app, r.body.token, 'refreshed access token');
        await assertRefreshDead(t, h.app, r.body.refreshToken);
      }
      await assertAccessAlive(t, h.app, change.body.token, 'the password change\'s own new token');
    }
  });

  t.test('revoke: ends the session; its tokens die; again or garbage is invalid_token', async (t) => {
    const u = await verifiedUser(h);
    const res = await revoke(h.app, u.refreshToken);
    t.equal(res.status, 200);
    t.same(Object.keys(res.body), ['revoked']);
    t.ok(Number.isInteger(res.body.revoked), 'revoked is an integer');
    t.ok(Math.abs(res.body.revoked - unixNow(h)) <= 2, 'revoked is now, in unix seconds');
    await assertRefreshDead(t, h.app, u.refreshToken);
    await assertAccessDead(t, h.app, u.token);
    assertProblem(t, await revoke(h.app, u.refreshToken), 'invalid_token');
    assertProblem(t, await revoke(h.app, 'garbage'), 'invalid_token');
    const row = await h.db.db.select().from(sessions).where(eq(sessions.id, u.login.payload.sid));
    t.ok(row[0]?.revokedAt, 'the session is marked revoked');
  });

  t.test('revoke: other sessions of the same user keep working', async (t) => {
    const u = await verifiedUser(h);
    const second = await post(h.app, '/token', { username: u.username, password: PASSWORD });
    t.equal(second.status, 200);
    t.not(second.body.payload.sid, u.login.payload.sid, 'a second session');
    t.equal((await revoke(h.app, u.refreshToken)).status, 200);
    await assertAccessDead(t, h.app, u.token);
    await assertAccessAlive(t, h.app, second.body.token, 'the other session\'s access token');
    assertTokenOutput(t, await refresh(h.app, second.body.refreshToken));
  });

  t.test('revoke: with the newest refresh token of a chain, every access token of the session dies', async (t) => {
    const u = await verifiedUser(h);
    const b = await refresh(h.app, u.refreshToken);
    t.equal((await revoke(h.app, b.body.refreshToken)).status, 200);
    await assertAccessDead(t, h.app, u.token, 'login access token');
    await assertAccessDead(t, h.app, b.body.token, 'refreshed access token');
    await assertRefreshDead(t, h.app, b.body.refreshToken);
  });

  t.test('JWKS: public Ed25519 key, cacheable, no private member; kid matches the tokens', async (t) => {
    const res = await get(h.app, '/.well-known/jwks.json');
    t.equal(res.status, 200);
    t.match(String(res.headers['content-type']), /^application\/(jwk-set\+)?json/);
    t.match(String(res.headers['cache-control']), /max-age=\d+/, 'Cache-Control with max-age');
    t.notMatch(String(res.headers['cache-control']), /no-store/);
    // The current key and the next one (published before it signs: test/keys.test.ts).
    t.equal(res.body.keys.length, 2, 'the current and the next key');
    t.not(res.body.keys[0].kid, res.body.keys[1].kid, 'two distinct keys');
    const [jwk] = res.body.keys;
    t.type(jwk.kid, 'string');
    t.ok(jwk.kid.length > 0);
    t.equal(jwk.alg, 'EdDSA');
    t.equal(jwk.use, 'sig');
    t.equal(jwk.kty, 'OKP');
    t.equal(jwk.crv, 'Ed25519');
    t.type(jwk.x, 'string');
    for (const k of res.body.keys) for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) t.notOk(m in k, `no private member ${m}`);
    const u = await registerUser(h.app);
    const { header } = decodeJwt(u.token);
    t.equal(header.kid, jwk.kid, 'the access token\'s kid is the first JWKS kid (the current key)');
    t.equal(header.alg, 'EdDSA');
  });

  t.test('resource server: the JWKS alone verifies an access token; a tampered one fails', async (t) => {
    const jwks = (await get(h.app, '/.well-known/jwks.json')).body;
    const u = await registerUser(h.app);
    const other = await registerUser(h.app);
    const { header, payload, signingInput, signature } = decodeJwt(u.token);
    const jwk = jwks.keys.find((k: JsonWebKey & { kid: string }) => k.kid === header.kid);
    t.ok(jwk, 'the kid is in the JWKS');
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    t.equal(cryptoVerify(null, Buffer.from(signingInput), key, signature), true, 'the signature checks out');
    const tamperedPayload = Buffer.from(JSON.stringify({ ...payload, sub: other.user.id })).toString('base64url');
    const tamperedInput = `${signingInput.split('.')[0]}.${tamperedPayload}`;
    t.equal(cryptoVerify(null, Buffer.from(tamperedInput), key, signature), false, 'a tampered payload does not');
    const flipped = Buffer.from(signature);
    flipped[0] ^= 1;
    t.equal(cryptoVerify(null, Buffer.from(signingInput), key, flipped), false, 'a tampered signature does not');
  });
});

t.test('JWT_ISSUER and JWT_AUDIENCE: the claims carry iss and aud', async (t) => {
  const h = await buildTestApp(t, { env: { JWT_ISSUER: 'https://auth.example.com', JWT_AUDIENCE: 'api.example.com' } });
  const u = await registerUser(h.app);
  t.equal(u.payload.iss, 'https://auth.example.com');
  t.equal(u.payload.aud, 'api.example.com');
  const res = await verify(h.app, u.token);
  t.equal(res.status, 200);
  t.equal(res.body.payload.iss, 'https://auth.example.com');
  t.equal(res.body.payload.aud, 'api.example.com');
  const r = await refresh(h.app, u.refreshToken);
  t.equal(r.body.payload.iss, 'https://auth.example.com', 'refreshed tokens too');
  t.equal(r.body.payload.aud, 'api.example.com');
  const claims = decodeJwt(r.body.token).payload;
  t.equal(claims.iss, 'https://auth.example.com');
  t.equal(claims.aud, 'api.example.com');
});

t.test('REFRESH_TOKEN_REUSE_INTERVAL=0: any replay is theft', async (t) => {
  const h = await buildTestApp(t, { env: { REFRESH_TOKEN_REUSE_INTERVAL: '0' } });

  t.test('a replay right away ends the session', async (t) => {
    const u = await verifiedUser(h);
    const b = await refresh(h.app, u.refreshToken);
    assertTokenOutput(t, b);
    assertProblem(t, await refresh(h.app, u.refreshToken), 'invalid_token');
    await assertRefreshDead(t, h.app, b.body.refreshToken);
    await assertAccessDead(t, h.app, b.body.token);
  });

  t.test('twenty concurrent refreshes: one 200, nineteen invalid_token, and the session ends', async (t) => {
    const u = await verifiedUser(h);
    const results = await Promise.all(Array.from({ length: 20 }, () => refresh(h.app, u.refreshToken)));
    const ok = results.filter((r) => r.status === 200);
    t.equal(ok.length, 1, 'exactly one 200');
    for (const r of results.filter((r) => r.status !== 200)) assertProblem(t, r, 'invalid_token');
    const [a] = await h.db.db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, hashToken(u.refreshToken)));
    const rows = await h.db.db.select().from(refreshTokens).where(eq(refreshTokens.parentId, a.id));
    t.equal(rows.length, 1, 'exactly one child row');
    // The nineteen others are replays of a rotated token: theft, so the session is over, and the
    // one 200's tokens are dead too.
    if (ok[0]) {
      await assertRefreshDead(t, h.app, ok[0].body.refreshToken);
      await assertAccessDead(t, h.app, ok[0].body.token, 'the winner\'s access token');
    }
    await assertAccessDead(t, h.app, u.token, 'the login access token');
    const [s] = await h.db.db.select().from(sessions).where(eq(sessions.id, a.sessionId));
    t.ok(s.revokedAt, 'the session is revoked');
  });
});

t.test('JWT_LONG_RUNNING_REFRESH_TOKEN=false: no refresh tokens, no refresh or revoke endpoints', async (t) => {
  const h = await buildTestApp(t, { env: { JWT_LONG_RUNNING_REFRESH_TOKEN: 'false' } });
  const reg = await registerUser(h.app);
  t.type(reg.token, 'string', 'register still logs in');
  t.notOk('refreshToken' in reg, 'register answers no refreshToken');
  t.notOk('refreshExpiresIn' in reg, 'register answers no refreshExpiresIn');
  const login = await post(h.app, '/token', { email: reg.email, password: PASSWORD });
  assertTokenOutput(t, login, false);
  await assertAccessAlive(t, h.app, login.body.token);
  for (const url of ['/token/refresh', '/token/revoke']) {
    const res = await post(h.app, url, { refreshToken: 'x'.repeat(43) });
    assertProblem(t, res, 'not_found');
  }
  const doc = (await get(h.app, '/openapi.json')).body;
  t.ok(doc.paths['/token/verify'], '/token/verify is documented');
  t.notOk(doc.paths['/token/refresh'], '/token/refresh is not documented');
  t.notOk(doc.paths['/token/revoke'], '/token/revoke is not documented');
});

t.test('OpenAPI documents refresh and revoke when refresh tokens are on', async (t) => {
  const h = await buildTestApp(t);
  const doc = (await get(h.app, '/openapi.json')).body;
  t.ok(doc.paths['/token/refresh']);
  t.ok(doc.paths['/token/revoke']);
});

for (const [alg, kty, extra] of [
  ['ES256', 'EC', { crv: 'P-256' }],
  ['RS256', 'RSA', {}],
] as const) {
  t.test(`JWT_ALGORITHM=${alg} works end to end, and the JWKS verifies its tokens`, async (t) => {
    const h = await buildTestApp(t, { env: { JWT_ALGORITHM: alg } });
    const reg = await registerUser(h.app);
    const login = await post(h.app, '/token', { username: reg.username, password: PASSWORD });
    t.equal(login.status, 200);
    await assertAccessAlive(t, h.app, login.body.token);
    const jwks = await get(h.app, '/.well-known/jwks.json');
    t.equal(jwks.status, 200);
    t.equal(jwks.body.keys.length, 2, 'the current and the next key');
    const [jwk] = jwks.body.keys;
    t.equal(jwk.alg, alg);
    t.equal(jwk.kty, kty);
    t.equal(jwk.use, 'sig');
    t.match(jwk, extra);
    for (const k of jwks.body.keys) for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) t.notOk(m in k, `no private member ${m}`);
    const { header, signingInput, signature } = decodeJwt(login.body.token);
    t.equal(header.alg, alg);
    t.equal(header.kid, jwk.kid);
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    const ok = cryptoVerify('sha256', Buffer.from(signingInput), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, signature);
    t.equal(ok, true, 'a resource server verifies it with the JWKS');
    assertTokenOutput(t, await refresh(h.app, login.body.refreshToken));
  });
}

t.test('JWT_ALGORITHM=HS256 with JWT_SECRET works end to end; the JWKS is empty', async (t) => {
  const secret = 'a-shared-secret-of-more-than-32-bytes!';
  const h = await buildTestApp(t, { env: { JWT_ALGORITHM: 'HS256', JWT_SECRET: secret } });
  const reg = await registerUser(h.app);
  const login = await post(h.app, '/token', { email: reg.email, password: PASSWORD });
  t.equal(login.status, 200);
  await assertAccessAlive(t, h.app, login.body.token);
  const { header, signingInput, signature } = decodeJwt(login.body.token);
  t.equal(header.alg, 'HS256');
  t.same(createHmac('sha256', secret).update(signingInput).digest(), signature, 'an HMAC-SHA256 with JWT_SECRET');
  const jwks = await get(h.app, '/.well-known/jwks.json');
  t.equal(jwks.status, 200);
  t.same(jwks.body, { keys: [] });
  assertTokenOutput(t, await refresh(h.app, login.body.refreshToken));
});
