// The real process, as `npm start` runs it: listens, answers over a socket, shuts down cleanly on
// SIGTERM, and keeps queued email across a restart (the outbox lives in the database).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { PASSWORD, smtpSink, uniqueUser } from './helpers.js';

interface Running {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts src/server.ts with the given environment and waits until it listens. */
async function start(env: Record<string, string>): Promise<Running> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 180_000; // a fresh PGlite folder took 73 s to open at a load average of 30
  for (;;) {
    const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
    if (m) return { child, url: m[1], output: () => output, exited };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stop(server: Running): Promise<number | null> {
  server.child.kill('SIGTERM');
  return server.exited;
}

t.test('the service answers over a socket and exits 0 on SIGTERM', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-server-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const server = await start({ DATA_DIR: dataDir });
  t.teardown(() => server.child.kill('SIGKILL'));

  const health = await fetch(`${server.url}/health`);
  t.equal(health.status, 200);
  t.same(await health.json(), { status: 'ok' });
  const docs = await fetch(`${server.url}/docs`);
  t.equal(docs.status, 200, 'Swagger UI');

  t.equal(await stop(server), 0, 'clean exit');
  t.match(server.output(), /shutting down/);
  t.notMatch(server.output(), /"level":50/, 'no error was logged');
});

t.test('a queued email survives a restart of the service (PGlite in DATA_DIR)', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-server-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const mail = await smtpSink(t);
  await mail.stop(); // the mail server is down while the account registers

  const first = await start({ DATA_DIR: dataDir, SMTP_URL: mail.url });
  t.teardown(() => first.child.kill('SIGKILL'));
  const user = uniqueUser();
  const res = await fetch(`${first.url}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...user, password1: PASSWORD, password2: PASSWORD }),
  });
  t.equal(res.status, 201, 'registration does not wait for the mail server');
  t.equal(await stop(first), 0);

  await mail.start();
  const second = await start({ DATA_DIR: dataDir, SMTP_URL: mail.url });
  t.teardown(() => second.child.kill('SIGKILL'));
  // The retry was scheduled with backoff before the restart; the next instance sends it when due.
  const email = await mail.waitFor(user.email, 1, 30_000);
  t.equal(email.subject, 'Activate your account');
  t.equal(await stop(second), 0);
  t.notMatch(first.output() + second.output(), new RegExp(PASSWORD), 'no password in the logs');
});

t.test('SIGTERM with a stalled SMTP server: exit 0 within the drain bound, the email stays queued', async (t) => {
  // Issue 9 item 6: the stalled send held shutdown for 15 s and the exit code was 1.
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-server-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const stalled = await smtpSink(t, { delay: () => Infinity });
  const server = await start({ DATA_DIR: dataDir, SMTP_URL: stalled.url, SHUTDOWN_TIMEOUT: '5s' });
  t.teardown(() => server.child.kill('SIGKILL'));
  const user = uniqueUser();
  const res = await fetch(`${server.url}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...user, password1: PASSWORD, password2: PASSWORD }),
  });
  t.equal(res.status, 201);
  for (let i = 0; stalled.started === 0 && i < 200; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(stalled.started, 1, 'the send is in flight, stalled');

  const stopping = Date.now();
  t.equal(await stop(server), 0, 'exit 0');
  const took = Date.now() - stopping;
  t.ok(took < 5_000, `within the 5 s bound (${took} ms)`);
  t.match(server.output(), /delivery aborted, queued for a retry/);
  t.notMatch(server.output(), /"level":50/, 'no error was logged');

  // The next start sends it.
  const good = await smtpSink(t);
  const next = await start({ DATA_DIR: dataDir, SMTP_URL: good.url });
  t.teardown(() => next.child.kill('SIGKILL'));
  t.equal((await good.waitFor(user.email, 1, 20_000)).subject, 'Activate your account');
  t.equal(await stop(next), 0);
});

t.test('SIGTERM while refreshes are in flight on kept-alive connections: the process still exits 0 within its bound', async (t) => {
  // Issue 10 item 3: connections whose request was in flight at SIGTERM went idle but stayed open
  // (keep-alive), holding the server's close, so shutdown never ended.
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-server-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const server = await start({ DATA_DIR: dataDir, RATE_LIMIT_MAX: '0', SHUTDOWN_TIMEOUT: '8s' });
  t.teardown(() => server.child.kill('SIGKILL'));
  const json = (path: string, body: unknown) =>
    fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      .then(async (r) => ({ status: r.status, body: (await r.json()) as any }))
      .catch(() => ({ status: 0, body: {} as any }));
  const user = uniqueUser();
  await json('/register', { ...user, password1: PASSWORD, password2: PASSWORD });
  const chains: string[] = [];
  for (let i = 0; i < 30; i++) chains.push((await json('/token', { email: user.email, password: PASSWORD })).body.refreshToken);
  let stopping = false;
  const burst = Promise.all(
    chains.map(async (token) => {
      while (!stopping) {
        const r = await json('/token/refresh', { refreshToken: token });
        if (r.status !== 200) return;
        token = r.body.refreshToken;
      }
    }),
  );
  await new Promise((r) => setTimeout(r, 500)); // refreshes in flight on kept-alive connections
  const started = Date.now();
  server.child.kill('SIGTERM');
  const code = await server.exited;
  stopping = true;
  await burst;
  const took = Date.now() - started;
  t.equal(code, 0, 'exit 0');
  t.ok(took < 8_000, `exited ${took} ms after SIGTERM`);
  t.notMatch(server.output(), /did not finish in time|kept the process alive/, 'closed by itself, not by the timer');
});
