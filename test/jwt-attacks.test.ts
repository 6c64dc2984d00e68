// Forged, altered, misused and otherwise bad access tokens: each one must be refused both by a
// bearer endpoint (GET /me: 401 unauthenticated, WWW-Authenticate: Bearer) and by POST
// /token/verify (400 invalid_token). Every forging technique is first shown to produce an
// accepted token when used with the right key and claims (the positive controls), so that a
// refusal proves the check, not a bug in the forgery.
import { createHash, createHmac, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import t, { type Test } from 'tap';
import type { ErrorCode } from '../src/errors.js';
import type { App } from '../src/routes/types.js';
import { assertProblem, buildSiblingApp, buildTestApp, get, PASSWORD, post, registerUser, safeJson, type TestApp, verifiedUser } from './helpers.js';

/** GET /me with exactly `Authorization: Bearer <token>` (even an empty one). */
async function me(app: App, token: string) {
  const res = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, headers: res.headers, body: safeJson(res.body), raw: res.body };
}

const verify = (app: App, token: string) => post(app, '/token/verify', { token });

/** The token is refused: /me 401 unauthenticated with WWW-Authenticate, /token/verify 400 `verifyCode`. */
async function assertRefused(t: Test, app: App, token: string, what: string, verifyCode: ErrorCode = 'invalid_token'): Promise<void> {
  assertProblem(t, await me(app, token), 'unauthenticated', { label: `${what} on /me` });
  assertProblem(t, await verify(app, token), verifyCode, { label: `${what} on /token/verify` });
}

async function assertAccepted(t: Test, app: App, token: string, what: string): Promise<void> {
  t.equal((await me(app, token)).status, 200, `${what}: /me 200 (control)`);
  t.equal((await verify(app, token)).status, 200, `${what}: /token/verify 200 (control)`);
}

// --- JWT by hand, with node:crypto only --------------------------------------------------------

const b64u = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function decode(token: string) {
  const [h, p, s] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
    h,
    p,
    s,
  };
}

/** An EdDSA (Ed25519) JWS over the exact header and payload given. */
function signEd25519(header: object, payload: object, key: KeyObject): string {
  const input = `${b64u(header)}.${b64u(payload)}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

/** RFC 7638 thumbprint of an Ed25519 public key. */
function okpThumbprint(key: KeyObject): string {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })).digest('base64url');
}

const nowSeconds = (h: TestApp) => Math.floor(h.clock.now().getTime() / 1000);

// --- The attacks that need no knowledge of the service's private key ---------------------------

async function keylessAttacks(t: Test, h: TestApp): Promise<void> {
  const victim = await registerUser(h.app);
  const other = await registerUser(h.app);
  const real = decode(victim.token);
  const jwks = (await get(h.app, '/.well-known/jwks.json')).body;
  const jwk = jwks.keys[0];
  t.equal(real.header.kid, jwk.kid, 'the real token carries the JWKS kid');
  await assertAccepted(t, h.app, victim.token, 'the real token');

  t.test('alg: none (unsigned), in every spelling', async (t) => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const header = { alg, typ: 'JWT', kid: jwk.kid };
      await assertRefused(t, h.app, `${b64u(header)}.${real.p}.`, `alg ${alg}, empty signature`);
      await assertRefused(t, h.app, `${b64u(header)}.${real.p}.${real.s}`, `alg ${alg}, the real signature kept`);
    }
  });

  t.test('HS256 signed with the service\'s public key as the HMAC secret (algorithm confusion)', async (t) => {
    const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
    const secrets: [string, Buffer | string][] = [
      ['the PEM', pem],
      ['the PEM without its last newline', pem.trimEnd()],
      ['the raw public key', Buffer.from(jwk.x, 'base64url')],
      ['the JWK x member', jwk.x],
    ];
    for (const [name, secret] of secrets) {
      const input = `${b64u({ alg: 'HS256', typ: 'JWT', kid: jwk.kid })}.${real.p}`;
      const token = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
      await assertRefused(t, h.app, token, `HS256 over ${name}`);
    }
  });

  t.test('a tampered payload (sub changed to another user) with the original signature', async (t) => {
    const payload = { ...real.payload, sub: other.user.id };
    await assertRefused(t, h.app, `${real.h}.${b64u(payload)}.${real.s}`, 'sub changed');
    const later = { ...real.payload, exp: real.payload.exp + 86400 };
    await assertRefused(t, h.app, `${real.h}.${b64u(later)}.${real.s}`, 'exp extended');
  });

  t.test('a token signed by another Ed25519 key, with the service\'s kid', async (t) => {
    const { privateKey } = generateKeyPairSync('ed25519');
    await assertRefused(t, h.app, signEd25519(real.header, real.payload, privateKey), 'foreign key, right kid');
  });

  t.test('a well-signed token with an unknown kid: a key of our own, with its own kid', async (t) => {
    // The service's key is unknown here, so "well-signed" means: correctly signed by a key whose
    // kid is not in the JWKS (the attacker's own key, named by its own thumbprint).
    const { privateKey } = generateKeyPairSync('ed25519');
    const header = { ...real.header, kid: okpThumbprint(privateKey) };
    await assertRefused(t, h.app, signEd25519(header, real.payload, privateKey), 'own key, own kid');
  });

  t.test('a refresh token presented as an access token', async (t) => {
    await assertRefused(t, h.app, victim.refreshToken, 'refresh token');
  });

  t.test('an empty string', async (t) => {
    await assertRefused(t, h.app, '', 'empty token');
  });

  t.test('a 10 KB string', async (t) => {
    await assertRefused(t, h.app, 'A'.repeat(10 * 1024), '10 KB of A');
    const padded = { ...real.payload, pad: randomBytes(7 * 1024).toString('base64url') };
    const big = `${real.h}.${b64u(padded)}.${real.s}`;
    t.ok(big.length >= 10 * 1024, 'a 10 KB JWT-shaped string');
    await assertRefused(t, h.app, big, '10 KB JWT-shaped');
  });
}

t.test('default settings (generated key, no issuer or audience)', async (t) => {
  const h = await buildTestApp(t);
  await keylessAttacks(t, h);
});

// --- With a key shared through the environment ---------------------------------------------------

const ISSUER = 'https://a.example.com';
const AUDIENCE = 'api-a';
const { privateKey: serviceKey } = generateKeyPairSync('ed25519');
const SERVICE_PEM = serviceKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const SHARED_ENV = { JWT_PRIVATE_KEY: SERVICE_PEM, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, ALLOW_DELETE_ACCOUNT: 'true' };

/** A second instance on the same database, the same clock and the same key, with other settings. */
const sibling = (t: Test, h: TestApp, env: Record<string, string>): Promise<App> => buildSiblingApp(t, h, { ...SHARED_ENV, ...env });

t.test(`JWT_PRIVATE_KEY from the environment, JWT_ISSUER and JWT_AUDIENCE set`, async (t) => {
  const h = await buildTestApp(t, { env: SHARED_ENV });
  const kid = (await get(h.app, '/.well-known/jwks.json')).body.keys[0].kid;
  t.equal(kid, okpThumbprint(serviceKey), 'the service uses the key from the environment');

  await keylessAttacks(t, h);

  const victim = await registerUser(h.app);
  const real = decode(victim.token);
  t.equal(real.payload.iss, ISSUER);
  t.equal(real.payload.aud, AUDIENCE);

  t.test('control: a token signed here by hand with the service key and real claims is accepted', async (t) => {
    await assertAccepted(t, h.app, signEd25519(real.header, { ...real.payload, jti: 'hand-made' }, serviceKey), 'hand-signed');
  });

  t.test('a well-signed token with an unknown kid: the service\'s own key, another kid', async (t) => {
    // Possible here because the test knows the service key: the signature is right, only the kid
    // names no key of the JWKS.
    for (const k of ['unknown-kid', `${kid}x`, '']) {
      await assertRefused(t, h.app, signEd25519({ ...real.header, kid: k }, real.payload, serviceKey), `service key, kid "${k}"`);
    }
  });

  t.test('a token without exp', async (t) => {
    const { exp: _exp, ...noExp } = real.payload;
    await assertRefused(t, h.app, signEd25519(real.header, noExp, serviceKey), 'no exp');
    await assertRefused(t, h.app, signEd25519(real.header, { ...real.payload, exp: String(real.payload.exp) }, serviceKey), 'exp as a string');
    await assertRefused(t, h.app, signEd25519(real.header, { ...real.payload, exp: null }, serviceKey), 'exp null');
  });

  t.test('an access token whose exp is in the past', async (t) => {
    const past = { ...real.payload, iat: nowSeconds(h) - 600, exp: nowSeconds(h) - 1 };
    // Well-signed and expired: /token/verify answers expired_token.
    await assertRefused(t, h.app, signEd25519(real.header, past, serviceKey), 'well-signed, exp in the past', 'expired_token');
    // Expired and forged: the signature is checked first, so the answer is invalid_token.
    const { privateKey } = generateKeyPairSync('ed25519');
    await assertRefused(t, h.app, signEd25519(real.header, past, privateKey), 'forged, exp in the past');
    await assertRefused(t, h.app, `${real.h}.${b64u(past)}.${real.s}`, 'tampered exp in the past');
  });

  t.test('future iat beyond the 30 s clock skew is invalid_token (issue 7 item 14)', async (t) => {
    const at = (iat: number) => signEd25519(real.header, { ...real.payload, jti: `iat-${iat}`, iat, exp: iat + 300 }, serviceKey);
    // A token minted for the future would outlive its lifetime from our point of view.
    await assertRefused(t, h.app, at(nowSeconds(h) + 31 + 1), 'iat 32 s ahead');
    await assertRefused(t, h.app, at(nowSeconds(h) + 3600), 'iat an hour ahead');
    await assertRefused(t, h.app, signEd25519(real.header, (({ iat: _i, ...rest }) => rest)(real.payload), serviceKey), 'no iat');
    await assertRefused(t, h.app, signEd25519(real.header, { ...real.payload, iat: String(real.payload.iat) }, serviceKey), 'iat as a string');
    // Within the skew (another instance's clock a little ahead): accepted.
    await assertAccepted(t, h.app, at(nowSeconds(h) + 20), 'iat 20 s ahead');
  });

  t.test('wrong iss and wrong aud, signed by hand with the service key', async (t) => {
    const cases: [string, object][] = [
      ['iss of another issuer', { ...real.payload, iss: 'https://b.example.com' }],
      ['no iss', (({ iss: _i, ...rest }) => rest)(real.payload)],
      ['aud of another audience', { ...real.payload, aud: 'api-b' }],
      ['aud as a list without ours', { ...real.payload, aud: ['api-b', 'api-c'] }],
      ['no aud', (({ aud: _a, ...rest }) => rest)(real.payload)],
    ];
    for (const [name, payload] of cases) await assertRefused(t, h.app, signEd25519(real.header, payload, serviceKey), name);
  });

  t.test('a token from an instance with another issuer but the same key (and the same database)', async (t) => {
    const b = await sibling(t, h, { JWT_ISSUER: 'https://b.example.com' });
    const user = await registerUser(b);
    t.equal(user.payload.iss, 'https://b.example.com');
    await assertAccepted(t, b, user.token, 'issuer b\'s token on issuer b');
    // Same key, same kid, same database (the user and the session exist here): only iss differs.
    t.equal(decode(user.token).header.kid, kid);
    await assertRefused(t, h.app, user.token, 'issuer b\'s token on issuer a');
    const login = await post(h.app, '/token', { email: user.email, password: PASSWORD });
    await assertRefused(t, b, login.body.token, 'issuer a\'s token on issuer b');
  });

  t.test('a token from an instance with no issuer or audience configured but the same key (and the same database)', async (t) => {
    // A staging or internal instance given the production key without JWT_ISSUER / JWT_AUDIENCE:
    // its tokens carry no iss and no aud, and must not pass where they are configured.
    const d = await sibling(t, h, { JWT_ISSUER: '', JWT_AUDIENCE: '' });
    const user = await registerUser(d);
    t.notOk('iss' in user.payload, 'no iss');
    t.notOk('aud' in user.payload, 'no aud');
    await assertAccepted(t, d, user.token, 'the unconfigured instance\'s token on itself');
    await assertRefused(t, h.app, user.token, 'a token without iss and aud on issuer a');
  });

  t.test('a token from an instance with another audience but the same key (and the same database)', async (t) => {
    const c = await sibling(t, h, { JWT_AUDIENCE: 'api-b' });
    const user = await registerUser(c);
    t.equal(user.payload.aud, 'api-b');
    await assertAccepted(t, c, user.token, 'audience b\'s token on audience b');
    await assertRefused(t, h.app, user.token, 'audience b\'s token on audience a');
  });

  t.test('a token for a deleted account (ALLOW_DELETE_ACCOUNT=true)', async (t) => {
    const u = await verifiedUser(h);
    await assertAccepted(t, h.app, u.token, 'before the delete');
    const del = await post(h.app, '/delete-account', { password: PASSWORD }, u.token);
    t.equal(del.status, 204);
    await assertRefused(t, h.app, u.token, 'the deleted account\'s token');
    // Still refused when hand-signed with the right key: the account is gone, not just the session.
    await assertRefused(t, h.app, signEd25519(decode(u.token).header, { ...decode(u.token).payload, jti: 'x' }, serviceKey), 're-signed token of the deleted account');
    // The email and username are free again; the new account is another subject.
    const again = await registerUser(h.app, { email: u.email, username: u.username });
    t.not(again.user.id, u.user.id);
    await assertRefused(t, h.app, u.token, 'the old token after the address is registered again');
  });
});
