// Configuration: every variable of the README's table, parsed once; a bad value stops the start with one
// message naming every bad variable.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { ConfigError, loadConfig, parseDuration } from '../src/config.js';

t.test('defaults are those of the README', async (t) => {
  const c = loadConfig({});
  t.equal(c.port, 3000);
  t.equal(c.host, '127.0.0.1');
  t.equal(c.databaseUrl, undefined);
  t.equal(c.dataDir, './data');
  t.equal(c.publicUrl, 'http://localhost:3000');
  t.equal(c.frontendUrl, 'http://localhost:3000');
  t.equal(c.activationUrl, 'http://localhost:3000/activate/{token}');
  t.equal(c.passwordResetUrl, 'http://localhost:3000/password-reset/{token}');
  t.equal(c.passwordSetUrl, 'http://localhost:3000/password-set/{token}');
  t.equal(c.emailFrom, 'no-reply@localhost');
  t.same(c.jwt, {
    algorithm: 'EdDSA',
    privateKey: undefined,
    publicKey: undefined,
    secret: undefined,
    keyEncryptionKey: undefined,
    keysReloadInterval: 60,
    issuer: undefined,
    audience: undefined,
    expiresIn: 300,
    longRunningRefreshToken: true,
    refreshExpiresIn: 7 * 86400,
    refreshReuseInterval: 10,
  });
  t.equal(c.allowLoginNotVerified, true);
  t.same(c.loginAllowedFields, ['email', 'username']);
  t.same(c.registerFields, ['email', 'username']);
  t.same(c.updateFields, ['firstName', 'lastName']);
  t.equal(c.allowDeleteAccount, false);
  t.equal(c.allowPasswordlessRegistration, false);
  t.equal(c.sendActivationEmail, true);
  t.equal(c.sendPasswordSetEmail, false);
  t.same(c.expiration, { activation: 7 * 86400, passwordReset: 3600, passwordSet: 3600, emailChange: 86400 });
  t.equal(c.emailChangeUrl, 'http://localhost:3000/confirm-email/{token}');
  // The limits of the hardening issue (README "Security").
  t.same(c.rateLimit, { max: 20, window: 60, tokenMax: 600, failClosed: false });
  t.same(c.redis, { url: undefined, prefix: 'authservice:' });
  t.same(c.loginThrottle, { limit: 10, window: 900 });
  t.same(c.mailCap, { perKind: 1, window: 60, daily: 10 });
  t.same(c.password, { minLength: 8, maxLength: 1024, contextWords: ['Auth service'] });
  t.same(c.argon2, { memoryCost: 19456, timeCost: 2, parallelism: 1 });
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.jwt), 'frozen');
});

t.test('durations take seconds or a unit; booleans true/false/1/0; FRONTEND_URL feeds the links', async (t) => {
  t.equal(parseDuration('3600'), 3600);
  t.equal(parseDuration('15m'), 900);
  t.equal(parseDuration('1h'), 3600);
  t.equal(parseDuration('7d'), 604800);
  t.equal(parseDuration('7 weeks'), undefined);
  const c = loadConfig({
    PORT: '8080',
    JWT_EXPIRATION_DELTA: '15m',
    REFRESH_TOKEN_REUSE_INTERVAL: '0',
    ALLOW_DELETE_ACCOUNT: '1',
    ALLOW_LOGIN_NOT_VERIFIED: 'FALSE',
    FRONTEND_URL: 'https://app.example.com/',
    UPDATE_FIELDS: 'email, username',
  });
  t.equal(c.port, 8080);
  t.equal(c.publicUrl, 'http://localhost:8080');
  t.equal(c.jwt.expiresIn, 900);
  t.equal(c.jwt.refreshReuseInterval, 0);
  t.equal(c.allowDeleteAccount, true);
  t.equal(c.allowLoginNotVerified, false);
  t.equal(c.activationUrl, 'https://app.example.com/activate/{token}');
  t.same(c.updateFields, ['email', 'username']);
});

t.test('every bad variable is named in one error', async (t) => {
  const bad = {
    PORT: 'eighty',
    DATABASE_URL: 'mysql://x',
    JWT_ALGORITHM: 'none',
    JWT_EXPIRATION_DELTA: '5 minutes',
    ALLOW_DELETE_ACCOUNT: 'yes',
    LOGIN_ALLOWED_FIELDS: 'email,phone',
    UPDATE_FIELDS: 'isActive',
    ACTIVATION_URL: 'https://app.example.com/activate',
    SMTP_URL: 'http://mail',
    ARGON2_MEMORY_KIB: '10',
    PASSWORD_MIN_LENGTH: '20',
    PASSWORD_MAX_LENGTH: '10',
  };
  try {
    loadConfig(bad);
    t.fail('loadConfig accepted bad values');
  } catch (err) {
    t.ok(err instanceof ConfigError);
    const names = (err as ConfigError).problems.map((p) => p.split(':')[0]);
    for (const name of Object.keys(bad).filter((n) => n !== 'PASSWORD_MIN_LENGTH')) t.ok(names.includes(name), `names ${name}`);
  }
});

t.test('HS256 needs a 32-byte secret; production needs a signing key', async (t) => {
  t.throws(() => loadConfig({ JWT_ALGORITHM: 'HS256', JWT_SECRET: 'short' }), /JWT_SECRET/);
  t.equal(loadConfig({ JWT_ALGORITHM: 'HS256', JWT_SECRET: 'x'.repeat(32) }).jwt.algorithm, 'HS256');
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /JWT_PRIVATE_KEY/);
});

t.test('the service refuses to start on a bad configuration, naming each bad variable', async (t) => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: 'eighty', JWT_ALGORITHM: 'none', DATA_DIR: '/nonexistent/never-created' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(run.status, 1, 'exit code 1');
  t.match(run.stderr, /Invalid configuration/);
  t.match(run.stderr, /PORT/);
  t.match(run.stderr, /JWT_ALGORITHM/);
});
