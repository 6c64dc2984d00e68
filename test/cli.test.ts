// The CLI (src/cli.ts) as an operator runs it: `node bin/authservice.mjs <command>` in a child
// process, on the embedded database in a DATA_DIR (PGlite) or, with TEST_DATABASE_URL, on a
// PostgreSQL database of its own; its effects checked through the HTTP API of an app on the same
// database.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import postgres from 'postgres';
import t, { type Test } from 'tap';
import { buildApp } from '../src/app.js';
import { main } from '../src/cli.js';
import { loadConfig, parseAdminKeys } from '../src/config.js';
import { openDatabase } from '../src/db/index.js';
import { outbox } from '../src/db/schema.js';
import type { App } from '../src/routes/types.js';
import { PASSWORD, post, uniqueUser } from './helpers.js';

const BIN = new URL('../bin/authservice.mjs', import.meta.url).pathname;
const ADMIN_KEY = 'ops-key-0123456789abcdefghijklmnopqrstuvwxyz';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(env: Record<string, string>, args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { env: { PATH: process.env.PATH ?? '', ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1', LOG_LEVEL: 'silent', ...env }, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin ?? '');
  });
}

/**
 * The same entry in this process (src/cli.ts main), for the many refusal cases: a child process
 * costs seconds on a loaded machine, and the parsing and error paths are the same code.
 */
async function cliHere(env: Record<string, string>, args: string[], stdin = ''): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    out: (s) => void (stdout += s),
    err: (s) => void (stderr += s),
    env: { ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1', LOG_LEVEL: 'silent', ...env },
    stdin: async () => stdin,
  });
  return { code, stdout, stderr };
}

/** A database for the CLI: a DATA_DIR (PGlite), or a fresh PostgreSQL database. */
async function cliDatabase(t: Test): Promise<Record<string, string>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-cli-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const url = process.env.TEST_DATABASE_URL;
  if (!url) return { DATA_DIR: dataDir };
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  t.teardown(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });
  const u = new URL(url);
  u.pathname = `/${name}`;
  return { DATA_DIR: dataDir, DATABASE_URL: u.toString() };
}

/** Opens the CLI's database in this process, with an app on it, for the duration of `fn` (PGlite allows one opener). */
async function withApp<T>(env: Record<string, string>, fn: (app: App, db: Awaited<ReturnType<typeof openDatabase>>) => Promise<T>): Promise<T> {
  const config = loadConfig({ ...env, LOG_LEVEL: 'silent', ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1', RATE_LIMIT_MAX: '0' });
  const database = await openDatabase(config.databaseUrl, config.dataDir);
  const app = await buildApp(config, database, { logger: false });
  try {
    await app.ready();
    return await fn(app, database);
  } finally {
    await app.close();
    await database.close();
  }
}

t.test('help, usage errors and keygen (no database)', async (t) => {
  const none = await cli({}, []);
  t.equal(none.code, 2, 'no command: exit 2');
  t.match(none.stdout, /Usage: authservice <command>/);
  for (const name of ['migrate', 'keygen', 'keys:rotate', 'keys:list', 'users:create', 'users:verify', 'users:deactivate', 'users:reactivate', 'outbox:requeue']) {
    t.match(none.stdout, new RegExp(`\\n  ${name} `), `${name} is listed`);
  }
  const help = await cli({}, ['users:create', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: authservice users:create/);
  t.match(help.stdout, /--password-stdin/);
  for (const name of ['migrate', 'keygen', 'keys:rotate', 'keys:list', 'users:verify', 'users:deactivate', 'users:reactivate', 'outbox:requeue']) {
    const r = await cliHere({}, [name, '--help']);
    t.equal(r.code, 0, `${name} --help: exit 0`);
    t.match(r.stdout, new RegExp(`^Usage: authservice ${name}`), `${name} --help: its usage`);
  }

  const unknown = await cliHere({}, ['users:frobnicate']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command "users:frobnicate"/);
  const badOption = await cli({}, ['users:create', '--emial', 'a@b.co']);
  t.equal(badOption.code, 2);
  t.match(badOption.stderr, /Unknown option '--emial'/);
  const badConfig = await cliHere({ DATABASE_URL: 'mysql://x' }, ['migrate']);
  t.equal(badConfig.code, 2, 'a bad configuration: exit 2');
  t.match(badConfig.stderr, /DATABASE_URL: expected a postgres:\/\/ URL/);

  const pem = await cli({}, ['keygen']);
  t.equal(pem.code, 0);
  t.equal(createPrivateKey(pem.stdout).asymmetricKeyType, 'ed25519', 'an Ed25519 PEM by default');
  const es = await cliHere({}, ['keygen', '--algorithm', 'ES256']);
  t.equal(createPrivateKey(es.stdout).asymmetricKeyType, 'ec');
  const hs = await cliHere({}, ['keygen', '--algorithm', 'HS256']);
  t.equal(hs.code, 2);
  t.match(hs.stderr, /HS256 uses JWT_SECRET/);
  const bogus = await cliHere({}, ['keygen', '--algorithm', 'XS512']);
  t.equal(bogus.code, 2);
  const key = await cli({}, ['keygen', '--admin-key', '--id', 'ci']);
  t.equal(key.code, 0);
  const problems: string[] = [];
  t.same(parseAdminKeys(key.stdout.trim(), problems).map((k) => k.id), ['ci'], 'an ADMIN_API_KEYS entry');
  t.same(problems, []);
  t.equal((await cliHere({}, ['keygen', '--admin-key', '--id', 'bad id'])).code, 2);

});

t.test('migrate, users:*, outbox:requeue on a real database', async (t) => {
  const env = await cliDatabase(t);
  const migrate = await cli(env, ['migrate']);
  t.equal(migrate.code, 0, migrate.stderr);
  t.same(JSON.parse(migrate.stdout), { migrated: true });

  // keys:rotate: the service call of POST /admin/keys/rotate (its rules are test/keys.test.ts's).
  const soon = await cliHere(env, ['keys:rotate']);
  t.equal(soon.code, 1, 'a fresh next key: too soon, exit 1');
  t.match(soon.stderr, /\(key_rotation_too_soon\)/);
  const rotated = await cli(env, ['keys:rotate', '--force']);
  t.equal(rotated.code, 0, rotated.stderr);
  t.match(JSON.parse(rotated.stdout), { source: 'database', keys: [{ status: 'current' }, { status: 'next' }, { status: 'retired' }] });
  const hs = await cliHere({ ...env, JWT_ALGORITHM: 'HS256', JWT_SECRET: 'x'.repeat(40) }, ['keys:rotate']);
  t.equal(hs.code, 1);
  t.match(hs.stderr, /\(key_rotation_unavailable\)/);

  const u = uniqueUser();
  const created = await cli(env, ['users:create', '--email', u.email, '--username', u.username, '--first-name', 'Ada', '--password-stdin', '--verified'], `${PASSWORD}\n`);
  t.equal(created.code, 0, created.stderr);
  const user = JSON.parse(created.stdout).user;
  t.match(user, { email: u.email, username: u.username, firstName: 'Ada', verified: true, hasPassword: true });

  const weak = await cliHere(env, ['users:create', '--email', uniqueUser().email, '--password-stdin'], '1234\n');
  t.equal(weak.code, 1, 'a password rule: exit 1');
  t.match(weak.stderr, /password: .*too short.*\(password_too_short\)/);
  const taken = await cliHere(env, ['users:create', '--email', u.email.toUpperCase()]);
  t.equal(taken.code, 1);
  t.match(taken.stderr, /A user with that email already exists\. \(unique\)/);
  const badEmail = await cliHere(env, ['users:create', '--email', 'not-an-email']);
  t.equal(badEmail.code, 2);
  t.match(badEmail.stderr, /--email: not an email address/);
  const nothing = await cliHere(env, ['users:create']);
  t.equal(nothing.code, 1);
  t.match(nothing.stderr, /Give an email or a username/);

  const plain = uniqueUser();
  const unverified = JSON.parse((await cli(env, ['users:create', '--username', plain.username])).stdout).user;
  t.equal(unverified.verified, false);
  const verified = await cli(env, ['users:verify', plain.username]);
  t.equal(verified.code, 0, verified.stderr);
  t.equal(JSON.parse(verified.stdout).user.verified, true, 'verified, named by username');

  const off = await cli({ ...env, LOG_LEVEL: 'info' }, ['users:deactivate', u.email]);
  t.equal(off.code, 0, off.stderr);
  t.equal(JSON.parse(off.stdout).user.isActive, false);
  // Audited as the same call over the admin API would be, with the `cli` key id.
  const lines = off.stderr.trim().split('\n').map((l) => JSON.parse(l));
  t.match(lines.find((l) => l.event === 'account_deactivated'), { userId: user.id, detail: { by: 'admin', keyId: 'cli' } });
  t.match(lines.find((l) => l.event === 'admin.deactivate_user'), { userId: user.id, detail: { keyId: 'cli', outcome: 'ok' } });
  await withApp(env, async (app) => {
    t.equal((await post(app, '/token', { email: u.email, password: PASSWORD })).status, 401, 'a deactivated account cannot log in');
  });
  const on = await cli(env, ['users:reactivate', user.id]);
  t.equal(on.code, 0, on.stderr);
  t.equal(JSON.parse(on.stdout).user.isActive, true, 'reactivated, named by id');
  const failedId = await withApp(env, async (app, db) => {
    t.equal((await post(app, '/token', { email: u.email, password: PASSWORD })).status, 200, 'logs in again');
    const [row] = await db.db
      .insert(outbox)
      .values({ recipient: u.email, kind: 'activation', subject: 's', text: 't', html: 'h', status: 'failed', attempts: 10, lastError: '550' })
      .returning();
    return row.id;
  });
  const missing = await cliHere({ ...env, LOG_LEVEL: 'info' }, ['users:deactivate', 'nobody@example.com']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /No user with the email "nobody@example.com". \(user_not_found\)/);
  t.equal((await cliHere(env, ['users:verify'])).code, 2, 'no account named: exit 2');

  const requeued = await cli(env, ['outbox:requeue', String(failedId)]);
  t.equal(requeued.code, 0, requeued.stderr);
  t.match(JSON.parse(requeued.stdout).emails[0], { id: failedId, status: 'pending', attempts: 0 });
  const again = await cliHere(env, ['outbox:requeue', String(failedId)]);
  t.equal(again.code, 1);
  t.match(again.stderr, /Only a failed email can be requeued\. \(email_not_failed\)/);
  t.equal((await cliHere(env, ['outbox:requeue', 'abc'])).code, 2);
  t.equal((await cliHere(env, ['outbox:requeue', '999999'])).code, 1);
  await withApp(env, async (_app, db) => {
    const [row] = await db.db.select().from(outbox).where(eq(outbox.id, failedId));
    t.ok(row.status === 'pending' || row.status === 'sent', `the requeued email is back in the queue (${row.status})`);
  });

  // The audit log (through GET /admin/events): the CLI's calls are admin.<action> events of the
  // `cli` actor, and the account events of its changes are there too, as for the admin API.
  await withApp({ ...env, ADMIN_API_KEYS: `ops:${ADMIN_KEY}` }, async (app) => {
    const res = await app.inject({ method: 'GET', url: '/admin/events?limit=200', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    t.equal(res.statusCode, 200, res.body);
    const events = (JSON.parse(res.body).events as { type: string; userId: string | null; actor: string | null; detail: Record<string, unknown> | null }[]).reverse();
    const cliCalls = events.filter((e) => e.actor === 'admin:cli' && e.type.startsWith('admin.'));
    t.same(
      cliCalls.map((e) => e.type),
      [
        'admin.rotate_signing_keys', // too soon: refused, audited with its code
        'admin.rotate_signing_keys',
        'admin.rotate_signing_keys', // HS256: unavailable
        'admin.create_user',
        'admin.create_user', // the weak password
        'admin.create_user', // taken
        'admin.create_user', // neither email nor username
        'admin.create_user',
        'admin.verify_user',
        'admin.deactivate_user',
        'admin.reactivate_user',
        'admin.deactivate_user', // nobody@example.com
        'admin.requeue_email',
        'admin.requeue_email', // not failed any more
        'admin.requeue_email', // 999999
      ],
      'every CLI call that reached the services, refusals included (usage errors never get that far)',
    );
    t.match(cliCalls[0].detail, { keyId: 'cli', outcome: 'key_rotation_too_soon' });
    t.match(cliCalls[9], { userId: user.id, detail: { keyId: 'cli', outcome: 'ok' } });
    t.same(
      events.filter((e) => e.userId === user.id && !e.type.startsWith('admin.')).map((e) => [e.type, e.actor]),
      [
        ['registered', 'admin:cli'],
        ['account_deactivated', 'admin:cli'],
        ['login_failed', null], // deactivated
        ['account_reactivated', 'admin:cli'],
        ['login_succeeded', null],
      ],
      "the account's events, attributed to the CLI",
    );
  });
});

// The production image has dist/ and no TypeScript tooling (no src/, no tsx): `npm run keys:rotate`
// and `npx authservice` (package.json "bin") must run the compiled CLI. A copy of the image's
// layout (bin/, package.json, migrations/, dist/ from `npm run build`) without src/.
t.test('the compiled CLI: npm run keys:rotate and npx authservice from the build, without src/', async (t) => {
  const root = new URL('..', import.meta.url).pathname;
  execFileSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'pipe' });
  const image = mkdtempSync(join(tmpdir(), 'authservice-image-'));
  t.teardown(() => rmSync(image, { recursive: true, force: true }));
  cpSync(join(root, 'bin'), join(image, 'bin'), { recursive: true });
  cpSync(join(root, 'package.json'), join(image, 'package.json'));
  cpSync(join(root, 'dist'), join(image, 'dist'), { recursive: true });
  cpSync(join(root, 'migrations'), join(image, 'migrations'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(image, 'node_modules'));
  t.notOk(existsSync(join(image, 'src')), 'no sources');
  const env = await cliDatabase(t);
  const run = (cmd: string, args: string[]): Run => {
    const r = spawnSync(cmd, args, {
      cwd: image,
      encoding: 'utf8',
      timeout: 120_000,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1', LOG_LEVEL: 'silent', ...env },
    });
    return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
  };
  const migrated = run('npx', ['--no-install', 'authservice', 'migrate']);
  t.equal(migrated.code, 0, migrated.stderr);
  t.same(JSON.parse(migrated.stdout), { migrated: true });
  const rotated = run('npm', ['run', '-s', 'keys:rotate', '--', '--force']);
  t.equal(rotated.code, 0, rotated.stderr);
  t.match(JSON.parse(rotated.stdout), { source: 'database', keys: [{ status: 'current' }, { status: 'next' }, { status: 'retired' }] });
  const help = run('npx', ['--no-install', 'authservice', 'users:verify', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: authservice users:verify/);
  const bad = run('npx', ['--no-install', 'authservice', 'users:verify']);
  t.equal(bad.code, 2, 'bad input: non-zero');
  t.match(bad.stderr, /authservice users:verify: name the account/);
  const noDist = mkdtempSync(join(tmpdir(), 'authservice-nodist-'));
  t.teardown(() => rmSync(noDist, { recursive: true, force: true }));
  cpSync(join(root, 'bin'), join(noDist, 'bin'), { recursive: true });
  const missing = spawnSync(process.execPath, [join(noDist, 'bin', 'authservice.mjs'), 'migrate'], { encoding: 'utf8' });
  t.equal(missing.status, 1);
  t.match(missing.stderr, /dist\/cli.js is missing: run `npm run build`/, 'neither sources nor a build: one clear line');
});
