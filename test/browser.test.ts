// In a real browser (Debian's chromium, driven by playwright-core): a front end served from another
// origin registers, logs in and calls /me through CORS; and Swagger UI at /docs executes register
// and login ("Try it out"), opened on 127.0.0.1 and on localhost. Screenshots go to
// artifacts/browser/ (git-ignored).
//
// Without Chromium the tests are skipped, saying why; with REQUIRE_BROWSER=1 (set by .ci/run,
// which installs Chromium) a missing browser is a failure, so CI always runs them.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts', 'browser');

if (!existsSync(CHROMIUM)) {
  const reason = `not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
  if (process.env.REQUIRE_BROWSER === '1') t.fail(`the browser tests are required (REQUIRE_BROWSER=1) but Chromium is ${reason}`);
  else t.plan(0, `the browser tests need Chromium: ${reason}`);
} else {
  await run();
}

/** The front end: a page on its own origin that calls the API with fetch, as an SPA would. */
const FRONT_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Front end</title>
<style>body{font-family:sans-serif;margin:2em} pre{background:#f4f4f4;padding:1em;white-space:pre-wrap}</style></head>
<body><h1>A front end on another origin</h1><p id="origin"></p><pre id="log"></pre>
<script>
const api = new URLSearchParams(location.search).get('api');
document.getElementById('origin').textContent = 'This page: ' + location.origin + ' → API: ' + api;
const log = (line) => (document.getElementById('log').textContent += line + '\\n');
async function call(method, path, body, token) {
  const headers = {};
  if (body) headers['content-type'] = 'application/json';
  if (token) headers.authorization = 'Bearer ' + token;
  const res = await fetch(api + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const json = await res.json();
  log(method + ' ' + path + ' → ' + res.status + (res.headers.get('x-request-id') ? ' (X-Request-Id readable)' : ''));
  return { status: res.status, json, requestId: res.headers.get('x-request-id'), challenge: res.headers.get('www-authenticate') };
}
(async () => {
  const id = 'browser' + Date.now();
  const password = 'correct horse battery staple';
  const results = {};
  try {
    results.register = await call('POST', '/register', { email: id + '@example.com', username: id, password1: password, password2: password });
    results.login = await call('POST', '/token', { username: id, password });
    results.me = await call('GET', '/me', null, results.login.json.token);
    results.unauthenticated = await call('GET', '/me');
  } catch (err) {
    results.error = String(err);
    log('error: ' + err);
  }
  window.results = results;
  document.body.dataset.done = 'yes';
})();
</script></body></html>`;

async function run() {
  const { chromium } = await import('playwright-core');
  mkdirSync(ARTIFACTS, { recursive: true });

  const front = await listen(createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(FRONT_PAGE)));
  t.teardown(() => new Promise((resolve) => front.close(resolve)));
  const frontOrigin = `http://localhost:${(front.address() as AddressInfo).port}`;

  const api = await startService({ CORS_ORIGINS: frontOrigin });
  t.teardown(() => api.child.kill('SIGKILL'));

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  t.teardown(() => browser.close());

  t.test('a page on another origin registers, logs in and calls /me', async (t) => {
    const page = await browser.newPage();
    const failures: string[] = [];
    page.on('console', (m) => m.type() === 'error' && failures.push(m.text()));
    await page.goto(`${frontOrigin}/?api=${encodeURIComponent(api.url)}`);
    await page.waitForSelector('body[data-done="yes"]', { timeout: 120_000 });
    const results = await page.evaluate(() => (window as unknown as { results: any }).results);
    await page.screenshot({ path: join(ARTIFACTS, 'front-end-cors.png'), fullPage: true });
    t.notOk(results.error, `no fetch failure (${results.error ?? ''}) ${failures.join('; ')}`);
    t.equal(results.register?.status, 201, 'register: 201');
    t.equal(results.login?.status, 200, 'login: 200');
    t.equal(results.me?.status, 200, '/me: 200');
    t.equal(results.me?.json.user.username, results.register?.json.user.username, '/me is the registered account');
    t.match(results.me?.requestId, /^[0-9a-f-]{36}$/, 'X-Request-Id is readable by the page (exposed)');
    t.equal(results.unauthenticated?.status, 401, 'an error answer is readable too');
    t.match(results.unauthenticated?.challenge, /^Bearer/, 'WWW-Authenticate is exposed');
    await page.close();
  });

  t.test('a page on an origin not in CORS_ORIGINS cannot read the answers', async (t) => {
    const page = await browser.newPage();
    // The same page, from 127.0.0.1 instead of localhost: another origin.
    await page.goto(`${frontOrigin.replace('localhost', '127.0.0.1')}/?api=${encodeURIComponent(api.url)}`);
    await page.waitForSelector('body[data-done="yes"]', { timeout: 120_000 });
    const results = await page.evaluate(() => (window as unknown as { results: any }).results);
    await page.screenshot({ path: join(ARTIFACTS, 'front-end-refused.png'), fullPage: true });
    t.match(results.error, /Failed to fetch/, 'the browser refuses: Failed to fetch');
    await page.close();
  });

  for (const host of ['127.0.0.1', 'localhost']) {
    t.test(`Swagger UI at http://${host}:…/docs executes register and login ("Try it out")`, async (t) => {
      const docs = api.url.replace('127.0.0.1', host);
      const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
      await page.goto(`${docs}/docs`);
      const id = `swagger${host.replace(/\W/g, '')}${Date.now()}`;
      const password = 'correct horse battery staple';
      // On the first host, the documented examples exactly as Swagger UI shows them (the first
      // "Execute" a newcomer makes must work); on the second, fresh values (the example's
      // account exists by then).
      const asDocumented = host === '127.0.0.1';
      const register = await tryItOut(
        page,
        'operations-Account-register',
        asDocumented ? undefined : { email: `${id}@example.com`, username: id, password1: password, password2: password },
      );
      await page.screenshot({ path: join(ARTIFACTS, `swagger-register-${host}.png`), fullPage: false });
      t.equal(register.status, '201', 'register executed: 201');
      t.match(register.body, asDocumented ? /"username": / : /"username": "swagger/, 'the response body is shown');
      const login = await tryItOut(page, 'operations-Token-obtainToken', asDocumented ? undefined : { username: id, password });
      await page.screenshot({ path: join(ARTIFACTS, `swagger-login-${host}.png`), fullPage: false });
      t.equal(login.status, '200', 'login executed: 200');
      t.match(login.body, /"tokenType": "Bearer"/);
      t.match(login.url, `${docs}/token`, 'called the host the UI was opened on');
      await page.close();
    });
  }
}

/** Opens an operation in Swagger UI, fills its body (or keeps the documented example), executes it, and reads the live response. */
async function tryItOut(page: import('playwright-core').Page, operationId: string, body: object | undefined) {
  const op = page.locator(`#${operationId}`);
  await op.locator('.opblock-summary').first().click();
  await op.locator('button.try-out__btn').click();
  const textarea = op.locator('textarea.body-param__text');
  if (body) await textarea.fill(JSON.stringify(body, null, 2));
  else await textarea.waitFor();
  await op.locator('button.execute').click();
  const status = op.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor({ timeout: 120_000 });
  await op.scrollIntoViewIfNeeded();
  return {
    status: (await status.innerText()).trim().split(/\s/)[0],
    body: await op.locator('.live-responses-table .response-col_description pre').first().innerText(),
    url: await op.locator('.request-url pre').first().innerText(),
  };
}

function listen(server: Server): Promise<Server> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

interface Service {
  child: ChildProcess;
  url: string;
}

async function startService(env: Record<string, string>): Promise<Service> {
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-browser-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: {
      ...process.env,
      PORT: '0',
      DATABASE_URL: 'memory://',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      ARGON2_MEMORY_KIB: '1024',
      ARGON2_ITERATIONS: '1',
      RATE_LIMIT_MAX: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const deadline = Date.now() + 240_000; // generous: a loaded CI machine starts slowly
  for (;;) {
    const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
    if (m) return { child, url: m[1] };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start (exit code ${child.exitCode}): ${output.slice(-1500).replace(/\n/g, " | ")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
