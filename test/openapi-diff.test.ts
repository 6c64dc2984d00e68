// The breaking-change check (scripts/openapi-diff.ts): what it refuses, what it lets through,
// the major-version escape, and the real documents: the committed one against the baseline, and
// every served (narrowed) document inside the committed one.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { breakingChanges, check } from '../scripts/openapi-diff.js';
import { buildTestApp, get } from './helpers.js';

const body = (properties: Record<string, unknown>, required: string[]) => ({
  content: { 'application/json': { schema: { type: 'object', properties, required, additionalProperties: false } } },
});
const doc = (version: string, op: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  openapi: '3.1.0',
  info: { title: 'x', version },
  paths: { '/token': { post: op }, ...extra },
});
const LOGIN = {
  requestBody: body({ email: { type: 'string', maxLength: 254 }, password: { type: 'string' }, remember: { type: 'boolean' } }, ['email', 'password']),
  responses: {
    '200': body({ token: { type: 'string' }, user: { type: 'object' }, kind: { enum: ['a', 'b'] } }, ['token', 'user']),
    '401': body({ code: { enum: ['invalid_credentials'] } }, ['code']),
  },
};
const base = doc('1.0.0', LOGIN, { '/me': { get: { responses: { '200': body({}, []) } } } });
const clone = () => JSON.parse(JSON.stringify(base));
const messages = (after: unknown) => breakingChanges(base, after as typeof base).map((c) => `${c.where}: ${c.message}`);

t.test('an identical document, or one that only adds, passes', async (t) => {
  t.same(messages(clone()), []);
  const added = clone();
  added.paths['/new'] = { get: { responses: { '200': body({}, []) } } };
  added.paths['/token'].post.requestBody.content['application/json'].schema.properties.extra = { type: 'string' }; // optional request field
  added.paths['/token'].post.requestBody.content['application/json'].schema.properties.email.maxLength = 320; // widened request
  added.paths['/token'].post.responses['200'].content['application/json'].schema.required.push('kind'); // newly always present
  added.paths['/token'].post.responses['429'] = body({}, []);
  t.same(messages(added), [], 'additions and widened requests are not breaking');
});

t.test('each kind of breaking change is reported', async (t) => {
  const cases: [string, (d: any) => void, RegExp][] = [
    ['a removed path', (d) => delete d.paths['/me'], /\/me: path removed/],
    ['a removed operation', (d) => (d.paths['/me'] = { put: d.paths['/me'].get }), /GET \/me: operation removed/],
    ['a removed response', (d) => delete d.paths['/token'].post.responses['401'], /401: response removed/],
    ['a removed request field', (d) => delete d.paths['/token'].post.requestBody.content['application/json'].schema.properties.remember, /remember.*no longer accepted/],
    ['a new required request field', (d) => d.paths['/token'].post.requestBody.content['application/json'].schema.required.push('remember'), /remember.*became required/],
    ['a narrowed request type', (d) => (d.paths['/token'].post.requestBody.content['application/json'].schema.properties.email.maxLength = 100), /maxLength/],
    ['a request type changed', (d) => (d.paths['/token'].post.requestBody.content['application/json'].schema.properties.remember.type = 'string'), /type/],
    ['a removed required response field', (d) => d.paths['/token'].post.responses['200'].content['application/json'].schema.required.splice(1, 1), /user.*no longer always present/],
    ['a widened response enum', (d) => d.paths['/token'].post.responses['200'].content['application/json'].schema.properties.kind.enum.push('c'), /value "c"/],
    ['a new member in a closed response', (d) => (d.paths['/token'].post.responses['200'].content['application/json'].schema.properties.extra = { type: 'string' }), /extra.*closed shape/],
  ];
  for (const [name, change, expected] of cases) {
    const after = clone();
    change(after);
    const found = messages(after);
    t.ok(found.some((m) => expected.test(m)), `${name}: ${found.join('; ') || 'nothing reported'}`);
    t.equal(check(base, after).ok, false, `${name} fails the check`);
    after.info.version = '2.0.0';
    t.equal(check(base, after).ok, true, `${name} passes with a new major version`);
  }
  const minor = clone();
  delete minor.paths['/me'];
  minor.info.version = '1.5.0';
  t.equal(check(base, minor).ok, false, 'a minor version does not allow it');
});

const committed = JSON.parse(readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8'));
const baseline = JSON.parse(readFileSync(new URL('../openapi/baseline.json', import.meta.url), 'utf8'));

t.test('the committed document breaks nothing of the baseline (npm run openapi:diff)', async (t) => {
  const verdict = check(baseline, committed);
  t.same(verdict.changes, [], 'no breaking change');
});

for (const env of [
  {},
  { ALLOW_PASSWORDLESS_REGISTRATION: 'true', LOGIN_ALLOWED_FIELDS: 'username', UPDATE_FIELDS: 'email,username,firstName,lastName' },
  { JWT_LONG_RUNNING_REFRESH_TOKEN: 'false', ALLOW_LOGIN_NOT_VERIFIED: 'false', REGISTER_FIELDS: 'email,firstName,lastName', LOGIN_ALLOWED_FIELDS: 'email' },
  { ADMIN_API_KEYS: `ops:${'k'.repeat(32)}` },
] as Record<string, string>[]) {
  t.test(`the committed document covers the served one (${JSON.stringify(env)})`, async (t) => {
    const h = await buildTestApp(t, { env });
    const served = (await get(h.app, '/openapi.json')).body;
    // What this deployment accepts, the committed document accepts; what it answers, the
    // committed document allows: a client generated from the file works against it.
    const requests = breakingChanges(served, committed).filter((c) => !/response widened/.test(c.message));
    const responses = breakingChanges(committed, served).filter((c) => /response widened/.test(c.message));
    t.same(requests, [], 'every request the deployment accepts fits the committed document');
    t.same(responses, [], 'every answer of the deployment fits the committed document');
  });
}
