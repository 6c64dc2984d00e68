// Start-up failures an operator must fix, each one structured line and exit 1 (no stack trace):
// an unreachable or missing database, a DATA_DIR that is a file or not writable, a DATA_DIR whose
// embedded database another process owns. And the embedded database after kill -9: the lock is
// taken over and queued email goes out at once. A new DATA_DIR starts from the build's template.
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { seedFromTemplate, templateFolder } from '../src/db/pglite-template.js';
import { PASSWORD, smtpSink, uniqueUser } from './helpers.js';
import { freePort } from './pg-cluster.js';
import { call, spawnServer, startServer, stopServer } from './process.js';

const tempDir = (t: Test) => {
  const dir = mkdtempSync(join(tmpdir(), 'authservice-start-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

/** Starts a server that must fail; returns its exit code and its one stderr line, parsed. */
async function failedStart(env: Record<string, string>, options = {}) {
  const p = spawnServer(env, options);
  const code = await p.exited;
  const lines = p.stderr().trim().split('\n').filter(Boolean);
  let line: any;
  try {
    line = JSON.parse(lines.at(-1) ?? '');
  } catch {}
  return { code, lines, line, output: p.output() };
}

function assertOneLine(t: Test, r: Awaited<ReturnType<typeof failedStart>>, message: RegExp) {
  t.equal(r.code, 1, 'exit 1');
  t.equal(r.lines.length, 1, 'one line on stderr', { lines: r.lines });
  t.match(r.line?.msg, message);
  t.equal(r.line?.level, 'fatal', 'a structured (JSON) fatal line');
  t.notMatch(r.output, /\n\s+at /, 'no stack trace');
}

t.test('an unreachable database at start: one line naming the host and the reason, exit 1', async (t) => {
  const port = await freePort(); // nobody listens there
  const r = await failedStart({ DATABASE_URL: `postgres://svc:secret@127.0.0.1:${port}/auth`, DATA_DIR: tempDir(t) });
  assertOneLine(t, r, /could not start: the database cannot be opened/);
  t.equal(r.line?.database, `PostgreSQL at 127.0.0.1:${port}/auth`);
  t.match(r.line?.reason, /^ECONNREFUSED: connection refused: is PostgreSQL running/);
  t.equal(r.line?.host, '127.0.0.1');
  t.equal(r.line?.port, port);
  t.notMatch(r.output, /secret/, 'never the password');
});

t.test('a missing database at start: one line saying it does not exist, exit 1', async (t) => {
  const r = await failedStart({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/no_such_db_authservice', DATA_DIR: tempDir(t) });
  assertOneLine(t, r, /could not start: the database cannot be opened/);
  t.equal(r.line?.database, 'PostgreSQL at 127.0.0.1:5432/no_such_db_authservice');
  t.match(r.line?.reason, /^3D000: the database does not exist/);
});

t.test('DATA_DIR is a file: one line, exit 1', async (t) => {
  const file = join(tempDir(t), 'data');
  writeFileSync(file, 'not a folder');
  const r = await failedStart({ DATA_DIR: file });
  assertOneLine(t, r, /DATA_DIR .*data is a file, not a folder/);
});

t.test('DATA_DIR not writable: one line, exit 1', { skip: process.getuid?.() !== 0 && 'needs root to run the service as another user' }, async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755); // readable and searchable by everyone, writable by root only
  const nobody = 65534;
  // The service runs as nobody, so root's bypass of permissions does not hide the problem.
  // tap's process-info hook, which tap injects into every child, writes to <cwd>/.tap on exit:
  // nobody may not write there, and its failure would add a stack to the output. Point it at a
  // folder nobody may write.
  const tapDir = mkdtempSync(join(tmpdir(), 'authservice-tap-'));
  chmodSync(tapDir, 0o777);
  t.teardown(() => rmSync(tapDir, { recursive: true, force: true }));
  const asNobody = { HOME: '/tmp', _TAPJS_PROCESSINFO_CWD_: tapDir };
  const r = await failedStart({ DATA_DIR: join(dir, 'data'), ...asNobody }, { uid: nobody, gid: nobody, cwd: process.cwd() });
  assertOneLine(t, r, /DATA_DIR .*data cannot be created \(permission denied\)/);
  const made = mkdtempSync(join(dir, 'ro-'));
  chownSync(made, 0, 0);
  chmodSync(made, 0o555);
  const r2 = await failedStart({ DATA_DIR: made, ...asNobody }, { uid: nobody, gid: nobody });
  assertOneLine(t, r2, /DATA_DIR .* is not writable by this process \(permission denied\)/);
});

t.test('two processes on one DATA_DIR: the second is refused with a clear line; after a kill -9 the next start takes over', async (t) => {
  const dataDir = tempDir(t);
  const first = await startServer(t, { DATA_DIR: dataDir });
  const r = await failedStart({ DATA_DIR: dataDir });
  assertOneLine(t, r, new RegExp(`DATA_DIR .* is in use by another process \\(pid ${first.child.pid} on .*\\); the embedded database has one owner`));
  t.equal((await call(first.url, 'GET', '/health')).status, 200, 'the owner is undisturbed');

  first.child.kill('SIGKILL');
  await first.exited;
  const next = await startServer(t, { DATA_DIR: dataDir });
  t.equal((await call(next.url, 'GET', '/health')).status, 200, 'the stale lock of a dead process is taken over');
  t.equal(await stopServer(next), 0);
  const after = await startServer(t, { DATA_DIR: dataDir });
  t.equal(await stopServer(after), 0, 'a clean exit releases the lock');
});

t.test('the embedded database, kill -9 during registrations: every queued email goes out right after the restart', async (t) => {
  const dataDir = tempDir(t);
  // A slow mail server: at each crash, sends are in flight and rows are claimed.
  const mail = await smtpSink(t, { delay: () => 700 });
  const registered: string[] = [];
  for (let round = 0; round < 4; round++) {
    const server = await startServer(t, { DATA_DIR: dataDir, SMTP_URL: mail.url });
    const batch = Array.from({ length: 8 }, () => uniqueUser('crash'));
    const answers = await Promise.all(batch.map((u) => call(server.url, 'POST', '/register', { ...u, password1: PASSWORD, password2: PASSWORD })));
    for (const [i, a] of answers.entries()) if (a.status === 201) registered.push(batch[i].email);
    await new Promise((r) => setTimeout(r, 300));
    server.child.kill('SIGKILL');
    await server.exited;
  }
  const last = await startServer(t, { DATA_DIR: dataDir, SMTP_URL: mail.url });
  // Measured from when the restarted process listens: its start-up time (PGlite reopening a folder
  // is seconds on a loaded machine) is not the outbox's doing.
  const started = Date.now();
  for (const email of registered) await mail.waitFor(email, 1, 30_000);
  const took = Date.now() - started;
  t.equal(registered.length, 32, 'every registration was acknowledged');
  // 32 messages at 0.7 s over 5 connections is ~4.5 s of sending.
  t.ok(took < 25_000, `all ${registered.length} activation emails out ${took} ms after the restart`);
  t.equal(await stopServer(last), 0);
});

t.test('a new DATA_DIR starts from the build\'s template (no initdb), and a broken copy is made again', async (t) => {
  // The template `npm run build` made (scripts/pglite-template.mjs), as .ci/run's build does.
  const template = templateFolder();
  t.ok(existsSync(join(template, 'PG_VERSION')), `the build made a template (${template})`);

  const dataDir = tempDir(t);
  // A crash during an earlier copy left half a database beside where it goes: it is not used.
  mkdirSync(join(dataDir, 'pgdata.from-template', 'base'), { recursive: true });
  writeFileSync(join(dataDir, 'pgdata.from-template', 'PG_VERSION'), 'half');
  const started = performance.now();
  const server = await startServer(t, { DATA_DIR: dataDir });
  const seconds = (performance.now() - started) / 1000;
  t.ok(existsSync(join(dataDir, 'pgdata', 'PG_VERSION')), 'the database is in DATA_DIR/pgdata');
  t.notOk(existsSync(join(dataDir, 'pgdata.from-template')), 'the partial copy is gone');
  const user = uniqueUser('tpl');
  const reg = await call(server.url, 'POST', '/register', { ...user, password1: PASSWORD, password2: PASSWORD });
  t.equal(reg.status, 201, 'it registers');
  t.equal(await stopServer(server), 0);
  t.comment(`first start from the template: ${seconds.toFixed(2)} s to a first 200 on /health`);

  // The template is a copy: what this database holds is not in it, and the next new DATA_DIR is empty.
  const other = await startServer(t, { DATA_DIR: tempDir(t) });
  const login = await call(other.url, 'POST', '/token', { username: user.username, password: PASSWORD });
  t.equal(login.status, 401, 'another new DATA_DIR does not hold the first one\'s account');
  t.equal(await stopServer(other), 0);
});

t.test('seedFromTemplate: copies only into a folder that does not exist, and only from a template that does', async (t) => {
  const dir = tempDir(t);
  const template = join(dir, 'template');
  mkdirSync(template);
  writeFileSync(join(template, 'PG_VERSION'), '17');
  t.equal(seedFromTemplate(join(dir, 'a'), join(dir, 'missing')), false, 'no template: initdb will run');
  t.notOk(existsSync(join(dir, 'a')));
  t.equal(seedFromTemplate(join(dir, 'a'), template), true, 'copied');
  t.equal(readFileSync(join(dir, 'a', 'PG_VERSION'), 'utf8'), '17');
  writeFileSync(join(dir, 'a', 'PG_VERSION'), 'mine');
  t.equal(seedFromTemplate(join(dir, 'a'), template), false, 'an existing database is never overwritten');
  t.equal(readFileSync(join(dir, 'a', 'PG_VERSION'), 'utf8'), 'mine');
});
