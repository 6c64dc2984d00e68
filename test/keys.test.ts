// Signing-key rotation without logouts (services/signing-keys.ts): the JWKS publishes the
// current key, the next key before it signs, and retired keys until their tokens have expired;
// the kid picks the verifying key; rotations under load fail no request, on two instances.
// Rotations are run as `keys:rotate` runs them: the service function, from outside the instances.
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, verify as cryptoVerify } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import postgres from 'postgres';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { serviceSecrets, signingKeys } from '../src/db/schema.js';
import { AppError } from '../src/errors.js';
import type { App } from '../src/routes/types.js';
import { rotateSigningKeys } from '../src/services/signing-keys.js';
import { assertProblem, buildSiblingApp, buildTestApp, get, PASSWORD, post, registerUser, safeJson, sleep, type TestApp } from './helpers.js';

const header = (token: string) => JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString('utf8'));
const jwks = async (app: App) => (await get(app, '/.well-known/jwks.json')).body.keys as { kid: string; x: string }[];
const kids = async (app: App) => (await jwks(app)).map((k) => k.kid);
const rotate = (h: TestApp, force = false) => rotateSigningKeys({ db: h.db.db, config: h.config, now: h.clock.now }, { force });
const login = async (app: App, u: { email: string }) => {
  const res = await post(app, '/token', { email: u.email, password: PASSWORD });
  if (res.status !== 200) throw new Error(`login ${res.status} ${res.raw}`);
  return res.body as { token: string; refreshToken: string };
};

/** The token checks out against the JWKS alone, as a resource server would check it. */
async function verifiesWithJwks(app: App, token: string): Promise<boolean> {
  const [h, p, s] = token.split('.');
  const jwk = (await jwks(app)).find((k) => k.kid === header(token).kid);
  if (!jwk) return false;
  return cryptoVerify(null, Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk as never, format: 'jwk' }), Buffer.from(s, 'base64url'));
}

t.test('keys in the database: rotation publishes, promotes and retires', async (t) => {
  const h = await buildTestApp(t, { env: { JWT_KEYS_RELOAD_INTERVAL: '1s', JWT_EXPIRATION_DELTA: '1h' } });
  const u = await registerUser(h.app);
  const [k1, k2] = await kids(h.app);
  t.equal(header(u.token).kid, k1, 'the first key signs');
  t.not(k1, k2, 'a second key is published');
  t.ok(await verifiesWithJwks(h.app, u.token), 'a resource server verifies the token with the JWKS');

  t.test('the private keys are sealed with the key-encryption key, never stored in the clear', async (t) => {
    const rows = await h.db.db.select().from(signingKeys);
    t.equal(rows.length, 2);
    for (const row of rows) {
      t.notMatch(row.privateKey, /PRIVATE KEY|BEGIN/, `${row.kid}: no PEM in the database`);
      t.match(row.privateKey, /^v1\./, 'a sealed value');
      t.match(row.publicKey, /BEGIN PUBLIC KEY/);
    }
    const [secret] = await h.db.db.select().from(serviceSecrets);
    t.match(secret.value, /^v1\./, 'the refresh-token secret is sealed too');
  });

  t.test('a rotation too soon after the next key was published is refused, unless forced', async (t) => {
    const err = await rotate(h).catch((e) => e);
    t.ok(err instanceof AppError && err.code === 'key_rotation_too_soon', 'key_rotation_too_soon');
    t.match(err.message, /published for \d+ s.*300 s/);
    t.same(await kids(h.app), [k1, k2], 'nothing changed');
  });

  t.test('rotation: the next key signs, the old one still verifies, a new next key is published', async (t) => {
    const before = await login(h.app, u);
    h.clock.advance(301); // the next key has now been published for a whole JWKS cache lifetime
    const { keys } = await rotate(h);
    t.same(keys.map((k) => [k.kid, k.status]).slice(0, 3), [[k2, 'current'], [keys[1].kid, 'next'], [k1, 'retired']]);
    const k3 = keys[1].kid;
    await sleep(1_300); // the instance rereads its keys every JWT_KEYS_RELOAD_INTERVAL
    t.same(await kids(h.app), [k2, k3, k1], 'JWKS: current, next, retired');
    const after = await login(h.app, u);
    t.equal(header(after.token).kid, k2, 'the promoted key signs new tokens');
    t.ok(await verifiesWithJwks(h.app, after.token), 'a resource server verifies the new token with the JWKS');
    t.equal((await get(h.app, '/me', before.token)).status, 200, 'a token of the retired key still verifies');
    t.ok(await verifiesWithJwks(h.app, before.token), 'and the JWKS still verifies it');

    // A refresh token issued before the rotation: refreshed after it, and retried, gets the same child.
    const first = await post(h.app, '/token/refresh', { refreshToken: before.refreshToken });
    t.equal(first.status, 200, 'refresh across a rotation');
    t.equal(header(first.body.token).kid, k2);
    const retry = await post(h.app, '/token/refresh', { refreshToken: before.refreshToken });
    t.equal(retry.status, 200, 'a retry within the reuse interval');
    t.equal(retry.body.refreshToken, first.body.refreshToken, 'gets the same child: the HMAC secret did not change');

    // Once every token the retired key signed has expired, it leaves the JWKS.
    h.clock.advance(h.config.jwt.expiresIn + h.config.jwt.keysReloadInterval + 61);
    await sleep(1_300);
    t.same(await kids(h.app), [k2, k3], 'the retired key is no longer published');
    const res = await get(h.app, '/me', before.token);
    t.equal(res.status, 401, 'its (expired) tokens are refused');
  });
});

t.test('two rotations under load on two instances: no request fails', async (t) => {
  // Long-lived access tokens, so that moving the clock past the JWKS cache lifetime expires none.
  const env = { JWT_EXPIRATION_DELTA: '1h', JWT_KEYS_RELOAD_INTERVAL: '1s' };
  const h = await buildTestApp(t, { env });
  // The second instance rereads its keys only hourly: it must learn a new key from its first token.
  const b = await buildSiblingApp(t, h, { ...env, JWT_KEYS_RELOAD_INTERVAL: '1h' });
  const apps = [h.app, b];
  const users = await Promise.all(Array.from({ length: 6 }, () => registerUser(h.app)));
  const sessions = await Promise.all(users.map((u, i) => login(apps[i % 2], u)));
  const firstTokens = sessions.map((s) => s.token); // signed by the first key, used throughout
  const failures: string[] = [];
  let requests = 0;
  let running = true;
  const check = (what: string, status: number, raw: string) => {
    requests++;
    if (status !== 200) failures.push(`${what}: ${status} ${raw.slice(0, 200)}`);
  };

  const worker = async (i: number) => {
    let refreshToken = sessions[i].refreshToken;
    let token = sessions[i].token;
    for (let n = 0; running; n++) {
      const app = apps[n % 2];
      const other = apps[(n + 1) % 2];
      const me = await get(other, '/me', token);
      check(`worker ${i} /me`, me.status, me.raw);
      const old = await get(app, '/me', firstTokens[i]);
      check(`worker ${i} /me with a first-key token`, old.status, old.raw);
      const r = await post(app, '/token/refresh', { refreshToken });
      check(`worker ${i} refresh`, r.status, r.raw);
      if (r.status === 200) ({ token, refreshToken } = r.body);
      const v = await post(other, '/token/verify', { token });
      check(`worker ${i} verify on the other instance`, v.status, v.raw);
      if (n % 5 === 0) {
        const l = await post(app, '/token', { email: users[i].email, password: PASSWORD });
        check(`worker ${i} login`, l.status, l.raw);
        if (l.status === 200) {
          const cross = await get(other, '/me', l.body.token);
          check(`worker ${i} /me with a fresh login on the other instance`, cross.status, cross.raw);
        }
      }
    }
  };
  const load = Promise.all(users.map((_, i) => worker(i)));

  const signedBy = new Set<string>();
  const collect = async () => {
    for (const app of apps) signedBy.add(header((await login(app, users[0])).token).kid);
  };
  await sleep(500);
  await collect();
  const [k1] = await kids(h.app);
  h.clock.advance(301);
  const first = await rotate(h);
  await sleep(1_500); // instance a reloads, b does not (hourly)
  await collect();
  h.clock.advance(301);
  const second = await rotate(h);
  await sleep(1_500);
  await collect();
  running = false;
  await load;

  t.same(failures, [], `no request failed (${requests} requests)`);
  t.ok(requests > 100, `under load: ${requests} requests`);
  t.equal(second.keys[0].status, 'current');
  t.same(
    second.keys.map((k) => k.status),
    ['current', 'next', 'retired', 'retired'],
    'two rotations: current, next and two retired keys',
  );
  t.equal(second.keys.find((k) => k.kid === k1)?.status, 'retired');
  t.equal(first.keys[0].kid, second.keys[2].kid, 'the first rotation\'s current key is retired by the second');
  t.ok(signedBy.has(second.keys[0].kid), 'instance a signs with the newest key');
  t.ok(signedBy.has(k1), 'instance b still signs with the first key (it has not reloaded), and a verifies it');
  // b has not reloaded on its own, but verified a's newest tokens: it learnt them on their first use.
  t.same(await kids(b), await kids(h.app), 'b serves the same JWKS after learning the new key');
});

t.test('JWT_PRIVATE_KEY with several PEMs: the first signs, every one verifies, no rotation by command', async (t) => {
  const a = generateKeyPairSync('ed25519').privateKey;
  const c = generateKeyPairSync('ed25519').privateKey;
  const pem = (k: typeof a) => k.export({ type: 'pkcs8', format: 'pem' }).toString();
  const thumb = (k: typeof a) => {
    const jwk = createPublicKey(k).export({ format: 'jwk' });
    return createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })).digest('base64url');
  };
  const h = await buildTestApp(t, { env: { JWT_PRIVATE_KEY: `${pem(a)}\n${pem(c)}`.replace(/\n/g, '\\n') } });
  t.same(await kids(h.app), [thumb(a), thumb(c)], 'both published, the first first');
  const u = await registerUser(h.app);
  t.equal(header(u.token).kid, thumb(a), 'the first signs');
  // A token signed by the second key (as the previous deployment, where it was first, signed them).
  const [, p] = u.token.split('.');
  const input = `${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'JWT', kid: thumb(c) })).toString('base64url')}.${p}`;
  const byC = `${input}.${sign(null, Buffer.from(input), c).toString('base64url')}`;
  t.equal((await get(h.app, '/me', byC)).status, 200, 'a token of the second key verifies');
  const wrongKid = `${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'JWT', kid: thumb(a) })).toString('base64url')}.${p}.${byC.split('.')[2]}`;
  t.equal((await get(h.app, '/me', wrongKid)).status, 401, 'the kid picks the key: signed by c, named a, refused');
  const err = await rotate(h, true).catch((e) => e);
  t.ok(err instanceof AppError && err.code === 'key_rotation_unavailable', 'key_rotation_unavailable');
  t.match(err.message, /JWT_PRIVATE_KEY/);
});

t.test('the development key of an earlier version (DATA_DIR) becomes the first current key', async (t) => {
  const legacy = generateKeyPairSync('ed25519').privateKey;
  const h = await buildTestApp(t);
  writeFileSync(join(h.config.dataDir, 'jwt-eddsa.pem'), legacy.export({ type: 'pkcs8', format: 'pem' }).toString());
  // A fresh database (the upgrade) with that DATA_DIR: another test app on its own database.
  const h2 = await buildTestApp(t, { env: { DATA_DIR: h.config.dataDir } });
  const jwk = createPublicKey(legacy).export({ format: 'jwk' });
  t.equal((await jwks(h2.app))[0].x, jwk.x, 'the legacy key is the current key');
});

t.test('a key-encryption key that does not open the stored keys stops the start, naming it', async (t) => {
  const h = await buildTestApp(t);
  const config = loadConfig({ ...envOf(h), KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64') });
  await t.rejects(buildApp(config, h.db, { logger: false }), /key-encryption key/);
  // The right KEK (the generated one in DATA_DIR) opens them.
  t.equal((await h.db.db.select().from(signingKeys).where(eq(signingKeys.status, 'current'))).length, 1);
});

t.test('configuration: KEY_ENCRYPTION_KEY is 32 bytes; production needs static keys or a KEK', async (t) => {
  t.throws(() => loadConfig({ KEY_ENCRYPTION_KEY: 'short' }), /KEY_ENCRYPTION_KEY: expected 32 bytes/);
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /JWT_PRIVATE_KEY or KEY_ENCRYPTION_KEY/);
  t.ok(loadConfig({ NODE_ENV: 'production', KEY_ENCRYPTION_KEY: randomBytes(32).toString('hex'), SMTP_URL: 'smtp://mail:587', DATABASE_URL: 'postgres://postgres@db:5432/auth' }));
  t.throws(() => loadConfig({ JWT_KEYS_RELOAD_INTERVAL: 'soon' }), /JWT_KEYS_RELOAD_INTERVAL/);
});

function envOf(h: TestApp): Record<string, string> {
  return { DATA_DIR: h.config.dataDir, LOG_LEVEL: 'silent', ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1' };
}


t.test('npx authservice keys:rotate (npm run keys:rotate): refused too soon with a clear message, --force rotates', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-keys-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const env: Record<string, string> = { ...(process.env as Record<string, string>), DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
  let dropDatabase: (() => Promise<void>) | undefined;
  const url = process.env.TEST_DATABASE_URL;
  if (url) {
    const name = `t_keys_${randomBytes(4).toString('hex')}`;
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    const u = new URL(url);
    u.pathname = `/${name}`;
    env.DATABASE_URL = u.toString();
    dropDatabase = async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    };
    t.teardown(dropDatabase);
  } else delete env.DATABASE_URL;
  const run = (...args: string[]) => spawnSync(process.execPath, ['bin/authservice.mjs', 'keys:rotate', ...args], { env, encoding: 'utf8', timeout: 120_000 });

  const soon = run();
  t.equal(soon.status, 1, 'exit 1');
  t.match(soon.stderr, /^authservice keys:rotate: The next key has been published for \d+ s.*\(key_rotation_too_soon\)/, 'says why, and what to do');
  const forced = run('--force');
  t.equal(forced.status, 0, 'exit 0 with --force');
  const answer = JSON.parse(forced.stdout);
  t.same(
    answer.keys.filter((k: { published: boolean }) => k.published).map((k: { status: string }) => k.status),
    ['current', 'next', 'retired'],
    'prints the keys',
  );
  const bad = run('--frobnicate');
  t.equal(bad.status, 2, 'an unknown option: exit 2 with the usage');
  t.match(bad.stderr, /Usage: authservice keys:rotate \[--force\]/);
  const list = spawnSync(process.execPath, ['bin/authservice.mjs', 'keys:list'], { env, encoding: 'utf8', timeout: 120_000 });
  t.equal(list.status, 0, list.stderr);
  t.same(JSON.parse(list.stdout).keys.map((k: { kid: string }) => k.kid), answer.keys.map((k: { kid: string }) => k.kid), 'keys:list: the same keys');
});

t.test('POST /admin/keys/rotate and GET /admin/keys, behind the admin key', async (t) => {
  const ADMIN = 'ops-key-0123456789abcdefghijklmnopqrstuvwxyz';
  const h = await buildTestApp(t, { env: { ADMIN_API_KEYS: `ops:${ADMIN}`, JWT_EXPIRATION_DELTA: '1h', JWT_KEYS_RELOAD_INTERVAL: '1h' } });
  const admin = async (method: 'GET' | 'POST', url: string, body?: object, key = ADMIN) => {
    const res = await h.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(body ? { payload: body } : {}) });
    return { status: res.statusCode, headers: res.headers, body: safeJson(res.body), raw: res.body };
  };
  const u = await registerUser(h.app);
  const [k1, k2] = await kids(h.app);

  const list = await admin('GET', '/admin/keys');
  t.equal(list.status, 200);
  t.equal(list.body.source, 'database');
  t.same(list.body.keys.map((k: { kid: string; status: string }) => [k.kid, k.status]), [[k1, 'current'], [k2, 'next']]);
  t.notMatch(list.raw, /PRIVATE|v1\./, 'no key material');

  assertProblem(t, await admin('POST', '/admin/keys/rotate', {}, 'wrong-key-0123456789abcdefghijklmnopqrstuv'), 'unauthenticated', { detail: 'A valid admin API key is required.' });
  assertProblem(t, await admin('POST', '/admin/keys/rotate', {}), 'key_rotation_too_soon', { detail: /^The next key has been published for \d+ s; resource servers may cache the JWKS for 300 s\. Try again in \d+ s, or force the rotation\.$/ });
  assertProblem(t, await admin('POST', '/admin/keys/rotate', { force: 'yes' }), 'validation_failed');

  const forced = await admin('POST', '/admin/keys/rotate', { force: true });
  t.equal(forced.status, 200, 'forced rotation');
  t.same(forced.body.keys.map((k: { status: string }) => k.status), ['current', 'next', 'retired']);
  // The instance that rotated reloads at once (no wait for JWT_KEYS_RELOAD_INTERVAL).
  const after = await login(h.app, u);
  t.equal(header(after.token).kid, k2, 'the promoted key signs at once');
  t.equal((await get(h.app, '/me', u.token)).status, 200, 'the first token still verifies');
  h.clock.advance(301);
  const bare = await admin('POST', '/admin/keys/rotate');
  assertProblem(t, bare, 'validation_failed'); // a body is required: {} or {"force": true}
  const again = await admin('POST', '/admin/keys/rotate', {});
  t.equal(again.status, 200, 'a rotation with an empty object, 300 s later');
  t.equal((await get(h.app, '/me', u.token)).status, 200, 'the first token, two rotations later');
  t.equal((await get(h.app, '/me', after.token)).status, 200, 'the second key\'s token');
  t.same((await kids(h.app)).length, 4, 'current, next and two retired keys published');

  t.test('static keys: key_rotation_unavailable', async (t) => {
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const s = await buildTestApp(t, { env: { ADMIN_API_KEYS: `ops:${ADMIN}`, JWT_PRIVATE_KEY: pem } });
    const res = await s.app.inject({ method: 'POST', url: '/admin/keys/rotate', headers: { authorization: `Bearer ${ADMIN}` }, payload: { force: true } });
    assertProblem(t, { status: res.statusCode, headers: res.headers, body: safeJson(res.body), raw: res.body }, 'key_rotation_unavailable', {
      detail: 'The signing keys come from JWT_PRIVATE_KEY: rotate by listing the new key after the current one, deploying, then moving it first.',
    });
    const listed = await s.app.inject({ method: 'GET', url: '/admin/keys', headers: { authorization: `Bearer ${ADMIN}` } });
    t.same(JSON.parse(listed.body), { source: 'environment', keys: [] });
  });
});
