// Security headers on every answer (issue 7 item 16) and request URLs logged without their query
// string (item 17, first half: the production-without-SMTP refusal is the operations issue's).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { InjectOptions } from 'fastify';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { DOCS_CSP } from '../src/http/security-headers.js';
import { buildTestApp, makeDatabase, PASSWORD, registerUser, smtpSink } from './helpers.js';

/** The directives of a Content-Security-Policy header, by name. */
function directives(header: unknown): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const part of String(header ?? '').split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) map.set(name.toLowerCase(), values);
  }
  return map;
}

t.test('security headers (item 16)', async (t) => {
  const h = await buildTestApp(t);
  const u = await registerUser(h.app);
  const answers: [string, InjectOptions][] = [
    ['GET /health (200)', { method: 'GET', url: '/health' }],
    ['GET /me with a token (200)', { method: 'GET', url: '/me', headers: { authorization: `Bearer ${u.token}` } }],
    ['GET /me without a token (401)', { method: 'GET', url: '/me' }],
    ['POST /token, wrong password (401)', { method: 'POST', url: '/token', payload: { email: u.email, password: 'not the password' } }],
    ['POST /token, bad body (400)', { method: 'POST', url: '/token', payload: { nope: 1 } }],
    ['POST /token, text/plain (415)', { method: 'POST', url: '/token', payload: 'x', headers: { 'content-type': 'text/plain' } }],
    ['POST /token, too large (413)', { method: 'POST', url: '/token', payload: `{"password":"${'x'.repeat(70_000)}"}`, headers: { 'content-type': 'application/json' } }],
    ['GET /nowhere (404)', { method: 'GET', url: '/nowhere' }],
    ['DELETE /token (405)', { method: 'DELETE', url: '/token' }],
    ['POST /resend-activation-email (202)', { method: 'POST', url: '/resend-activation-email', payload: { email: u.email } }],
    ['GET /.well-known/jwks.json', { method: 'GET', url: '/.well-known/jwks.json' }],
    ['GET /openapi.json', { method: 'GET', url: '/openapi.json' }],
    ['GET /docs', { method: 'GET', url: '/docs' }],
    ['GET /docs/', { method: 'GET', url: '/docs/' }],
    ['GET /docs/json', { method: 'GET', url: '/docs/json' }],
    ['GET /docs/static/swagger-ui-bundle.js', { method: 'GET', url: '/docs/static/swagger-ui-bundle.js' }],
    ['GET /docs/static/swagger-initializer.js', { method: 'GET', url: '/docs/static/swagger-initializer.js' }],
    ['GET /docs/static/swagger-ui.css', { method: 'GET', url: '/docs/static/swagger-ui.css' }],
  ];
  for (const [name, request] of answers) {
    const res = await h.app.inject(request);
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${name}: X-Content-Type-Options: nosniff (status ${res.statusCode})`);
    t.equal(res.headers['x-frame-options'], 'DENY', `${name}: X-Frame-Options: DENY`);
    t.equal(res.headers['referrer-policy'], 'no-referrer', `${name}: Referrer-Policy: no-referrer`);
    t.equal(res.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains', `${name}: Strict-Transport-Security`);
    t.equal(res.headers['cross-origin-opener-policy'], 'same-origin', `${name}: Cross-Origin-Opener-Policy`);
    t.equal(res.headers['x-permitted-cross-domain-policies'], 'none', `${name}: X-Permitted-Cross-Domain-Policies`);
    const csp = directives(res.headers['content-security-policy']);
    t.same(csp.get('frame-ancestors'), ["'none'"], `${name}: CSP frame-ancestors 'none'`);
    if (!name.includes('/docs')) t.same(csp.get('default-src'), ["'none'"], `${name}: the API's CSP allows nothing to load`);
  }
});

t.test("/docs has a CSP that Swagger UI works under: no inline script, everything from 'self'", async (t) => {
  const h = await buildTestApp(t);
  const res = await h.app.inject({ method: 'GET', url: '/docs/' });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-security-policy'], DOCS_CSP, 'the documented policy');
  const csp = directives(res.headers['content-security-policy']);
  t.same(csp.get('script-src'), ["'self'"], 'scripts from this origin only: no unsafe-inline, no unsafe-eval');
  t.same(csp.get('frame-ancestors'), ["'none'"]);
  t.same(csp.get('object-src'), ["'none'"]);
  t.notOk(csp.has('upgrade-insecure-requests'), 'no upgrade-insecure-requests (it would break /docs over plain HTTP)');
  // Every script the page runs is a file of this origin, served with a JavaScript type (nosniff
  // refuses a script of any other type), and the page has no inline script or style.
  const scripts = [...res.body.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
  t.ok(scripts.length >= 3, 'the page loads its scripts');
  for (const [, attrs, inline] of scripts) {
    const src = /src="([^"]+)"/.exec(attrs)?.[1];
    t.ok(src && !/^[a-z]+:/i.test(src), `a same-origin script file (${src})`);
    t.equal(inline.trim(), '', 'no inline script');
    const file = await h.app.inject({ method: 'GET', url: new URL(src!, 'http://x/docs/').pathname });
    t.equal(file.statusCode, 200, `${src}: served`);
    t.match(String(file.headers['content-type']), /^application\/javascript/, `${src}: a JavaScript type`);
  }
  t.notMatch(res.body, /<style|style="/, 'no inline style');
  t.notMatch(res.body, /\son[a-z]+=/i, 'no inline event handler');
});

// A real browser, when the machine has one: Swagger UI renders the operations under the policy and
// the browser reports no violation. (The structural test above runs everywhere.)
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
t.test('Swagger UI renders under its CSP in headless Chromium, with no CSP violation', { skip: chromium ? false : 'no chromium on this machine' }, async (t) => {
  const h = await buildTestApp(t);
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = h.app.server.address() as { port: number };
  const profile = mkdtempSync(join(tmpdir(), 'authservice-chromium-'));
  t.teardown(() => rmSync(profile, { recursive: true, force: true }));
  const child = spawn(
    chromium!,
    [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
      `--user-data-dir=${profile}`, '--enable-logging=stderr', '--v=0', '--virtual-time-budget=15000',
      '--dump-dom', `http://127.0.0.1:${port}/docs/`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let dom = '';
  let log = '';
  child.stdout.on('data', (d) => (dom += d));
  child.stderr.on('data', (d) => (log += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  await new Promise((resolve) => child.on('close', resolve));
  clearTimeout(killer);
  t.match(dom, /class="[^"]*opblock/, 'Swagger UI rendered the operations', { log: log.slice(-2000) });
  t.match(dom, /\/token\/refresh/, 'including /token/refresh');
  t.notMatch(log, /Content Security Policy|Refused to (load|execute|apply|connect)/i, 'no CSP violation reported');
});

t.test('request URLs are logged without their query string (item 17)', async (t) => {
  const [database, mail] = await Promise.all([makeDatabase(t), smtpSink(t)]);
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-test-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({ DATA_DIR: dataDir, SMTP_URL: mail.url, LOG_LEVEL: 'info', ARGON2_MEMORY_KIB: '1024', ARGON2_ITERATIONS: '1', RATE_LIMIT_MAX: '0' });
  const stream = new PassThrough();
  let logged = '';
  stream.on('data', (d) => (logged += d));
  const app = await buildApp(config, database, { logStream: stream });
  t.teardown(() => app.close());
  await app.ready();
  const secret = 'eyJsecretTokenInTheQuery';
  await app.inject({ method: 'GET', url: `/health?token=${secret}` });
  await app.inject({ method: 'GET', url: `/me?access_token=${secret}`, headers: { authorization: `Bearer ${secret}` } });
  await app.inject({ method: 'POST', url: `/token?password=${secret}`, payload: { email: 'nobody@example.com', password: PASSWORD } });
  await app.inject({ method: 'GET', url: `/nowhere?refresh=${secret}` });
  await app.inject({ method: 'GET', url: `/verify-account?token=${secret}` });
  t.match(logged, /"url":"\/health\?…"/, 'the path is logged, and that a query was there');
  t.match(logged, /"url":"\/me\?…"/);
  t.notMatch(logged, new RegExp(secret), 'the query string is never logged, nor the Authorization header');
  t.ok(logged.split('\n').filter(Boolean).length >= 10, 'requests were logged');
});

