// The OpenAPI document as a contract (issue 11): named components with descriptions and working
// examples, per-status problem codes, 500/503 everywhere, documented headers, explicit security,
// the committed document covering every configuration and the served one narrowed to the running
// configuration. The contract: README "The OpenAPI document".
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ERRORS, type ErrorCode } from '../src/errors.js';
import { generateOpenApi } from '../scripts/openapi.js';
import { buildTestApp, get, makeDatabase, post, uniqueUser } from './helpers.js';

type Doc = any;

// Every endpoint of the API but the two that serve the documentation itself.
const API_ENDPOINTS: [method: 'get' | 'post', path: string][] = [
  ['post', '/register'],
  ['post', '/verify-account'],
  ['post', '/resend-activation-email'],
  ['post', '/send-password-reset-email'],
  ['post', '/password-reset'],
  ['post', '/password-set'],
  ['post', '/token'],
  ['post', '/token/verify'],
  ['post', '/token/refresh'],
  ['post', '/token/revoke'],
  ['post', '/archive-account'],
  ['post', '/delete-account'],
  ['post', '/password-change'],
  ['post', '/update-account'],
  ['get', '/me'],
  ['get', '/.well-known/jwks.json'],
  ['get', '/health'],
];
const BEARER = new Set(['/archive-account', '/delete-account', '/password-change', '/update-account', '/me']);

/** Follows a local $ref ("#/components/schemas/X"). */
function deref(doc: Doc, node: any): any {
  let n = node;
  for (let i = 0; n && typeof n.$ref === 'string' && i < 20; i++) {
    n = n.$ref
      .replace(/^#\//, '')
      .split('/')
      .reduce((o: any, part: string) => o?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  }
  return n;
}
const schemaOf = (doc: Doc, name: string) => doc.components?.schemas?.[name];
const operations = (doc: Doc) =>
  Object.entries<any>(doc.paths ?? {}).flatMap(([path, ops]) => Object.entries<any>(ops).map(([method, op]) => ({ path, method, op })));

const h = await buildTestApp(t);
const served: Doc = (await get(h.app, '/openapi.json')).body;
const committedFile = fileURLToPath(new URL('../openapi/openapi.json', import.meta.url));

t.test('the committed openapi/openapi.json is what the code generates (npm run openapi)', async (t) => {
  if (!existsSync(committedFile)) return void t.fail('openapi/openapi.json does not exist: run `npm run openapi` and commit the file');
  let committed: unknown;
  try {
    committed = JSON.parse(readFileSync(committedFile, 'utf8'));
  } catch (err) {
    return void t.fail(`openapi/openapi.json is not valid JSON: ${(err as Error).message}`);
  }
  t.strictSame(committed, JSON.parse(await generateOpenApi(await makeDatabase(t))), 'openapi/openapi.json is stale: run `npm run openapi`');
});

const committed: Doc = JSON.parse(readFileSync(committedFile, 'utf8'));

for (const [label, doc] of [
  ['served (default configuration)', served],
  ['committed (every configuration)', committed],
] as const) {
  t.test(`${label}: the document's frame`, async (t) => {
    t.match(doc.openapi, /^3\.1\.\d+$/, 'OpenAPI 3.1');
    t.type(doc.info?.title, 'string');
    t.match(doc.info?.version, /^\d+\.\d+\.\d+$/, 'a semantic version');
    t.same(doc.info?.license, { name: 'MIT', identifier: 'MIT' }, 'license');
    t.type(doc.info?.contact?.name, 'string', 'contact');
    t.same(doc.servers?.map((s: any) => s.url), ['/'], 'one relative server: works from any host');
    const declared = new Map((doc.tags ?? []).map((tag: any) => [tag.name, tag.description]));
    for (const [name, description] of declared) t.ok(typeof description === 'string' && description.length > 0, `tag ${name} has a description`);
    for (const { path, method, op } of operations(doc)) {
      t.ok(op.tags?.length && op.tags.every((tag: string) => declared.has(tag)), `${method} ${path}: its tags are declared`);
    }
  });

  t.test(`${label}: every endpoint, with operationId, summary, description, explicit security`, async (t) => {
    for (const [method, path] of API_ENDPOINTS) {
      const op = doc.paths?.[path]?.[method];
      if (!t.ok(op, `${method.toUpperCase()} ${path} is listed`)) continue;
      if (method === 'post') t.ok(op.requestBody, `${path}: a request body`);
      t.ok(typeof op.operationId === 'string' && op.operationId.length > 0, `${path}: an operationId`);
      t.ok(typeof op.summary === 'string' && op.summary.length > 0, `${path}: a summary`);
      t.ok(typeof op.description === 'string' && op.description.length > 0, `${path}: a description`);
      t.same(op.security, BEARER.has(path) ? [{ bearerAuth: [] }] : [], `${path}: security ${BEARER.has(path) ? 'bearer' : '[] (public)'}`);
    }
    for (const { path, method, op } of operations(doc)) t.ok(Array.isArray(op.security), `${method} ${path}: security is explicit`);
    const ids = operations(doc).map(({ op }) => op.operationId);
    t.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    t.has(doc.components?.securitySchemes?.bearerAuth ?? {}, { type: 'http', scheme: 'bearer' }, 'the bearer scheme');
  });

  t.test(`${label}: bodies are named components with a description and an example`, async (t) => {
    const issues: string[] = [];
    for (const { path, method, op } of operations(doc)) {
      const where = `${method} ${path}`;
      const body = op.requestBody?.content?.['application/json']?.schema;
      if (op.requestBody) {
        if (!body?.$ref) issues.push(`${where}: the request body is not a named component`);
        const target = deref(doc, body);
        for (const alt of target?.oneOf?.map((a: any) => deref(doc, a)) ?? [target]) {
          if (alt?.additionalProperties !== false) issues.push(`${where}: unknown properties are not refused`);
        }
      }
      for (const [status, response] of Object.entries<any>(op.responses ?? {})) {
        if (response.description === 'Default Response' || !response.description) issues.push(`${where} ${status}: no description`);
        if (!/^2/.test(status) || !response.content) continue;
        const schema = response.content['application/json']?.schema;
        if (!schema?.$ref) issues.push(`${where} ${status}: the response is not a named component`);
      }
    }
    for (const [name, schema] of Object.entries<any>(doc.components?.schemas ?? {})) {
      if (!schema.description) issues.push(`components.schemas.${name}: no description`);
      if (schema.example === undefined) issues.push(`components.schemas.${name}: no example`);
    }
    t.same(issues, [], 'named, described, with examples');
    const broken: string[] = [];
    const walk = (node: unknown) => {
      if (Array.isArray(node)) return node.forEach(walk);
      if (!node || typeof node !== 'object') return;
      for (const [k, v] of Object.entries(node)) {
        if (k === '$ref' && typeof v === 'string') {
          if (!v.startsWith('#/') || deref(doc, { $ref: v }) === undefined) broken.push(v);
        } else walk(v);
      }
    };
    walk(doc);
    t.same(broken, [], 'no dangling $ref');
  });

  t.test(`${label}: errors are Problem documents with the operation's codes; 500 and 503 everywhere; headers`, async (t) => {
    t.same(schemaOf(doc, 'Problem')?.properties?.code?.enum, Object.keys(ERRORS), 'Problem.code is the enum of the error table');
    t.has(schemaOf(doc, 'Problem')?.properties ?? {}, { type: {}, title: {}, status: {}, detail: {}, code: {}, errors: {}, retryAfter: {}, requestId: {} });
    const issues: string[] = [];
    for (const { path, method, op } of operations(doc)) {
      const where = `${method} ${path}`;
      for (const status of ['500', '503']) if (!op.responses?.[status]) issues.push(`${where}: no ${status}`);
      for (const [status, response] of Object.entries<any>(op.responses ?? {})) {
        if (!/^[45]/.test(status)) continue;
        const types = Object.keys(response.content ?? {});
        if (types.join() !== 'application/problem+json') issues.push(`${where} ${status}: media types ${types.join(', ') || 'none'}`);
        const schema = response.content?.['application/problem+json']?.schema;
        if (schema?.allOf?.[0]?.$ref !== '#/components/schemas/Problem') issues.push(`${where} ${status}: not a Problem`);
        const codes: ErrorCode[] = schema?.allOf?.[1]?.properties?.code?.enum ?? [];
        if (!codes.length) issues.push(`${where} ${status}: no code enum`);
        for (const code of codes) if (ERRORS[code]?.status !== Number(status)) issues.push(`${where} ${status}: ${code} is not a ${status}`);
        const headers = Object.keys(response.headers ?? {});
        // A 429 always says when to retry; the RateLimit-* fields come with a per-client limit, whose
        // answers (the success too) all carry them. A per-account refusal alone has Retry-After only.
        const okHeaders = Object.entries<any>(op.responses ?? {}).find(([s]) => /^2/.test(s))?.[1]?.headers ?? {};
        const perClient = 'RateLimit-Remaining' in okHeaders;
        const expected429 = ['Retry-After', ...(perClient ? ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'] : [])];
        if (status === '429' && headers.sort().join() !== expected429.sort().join()) {
          issues.push(`${where} 429: headers ${headers.join(', ')}`);
        }
        if (codes.includes('unauthenticated') && !headers.includes('WWW-Authenticate')) issues.push(`${where} 401: no WWW-Authenticate`);
        if (status === '503' && !headers.includes('Retry-After')) issues.push(`${where} 503: no Retry-After`);
      }
      const ok = Object.entries<any>(op.responses ?? {}).find(([s]) => /^2/.test(s))?.[1];
      if (ok?.headers?.['RateLimit-Remaining'] && !op.responses?.['429']) issues.push(`${where}: throttled per client, but no 429`);
    }
    t.same(issues, [], 'every operation');
    const login = doc.paths['/token'].post.responses;
    t.same(login['401'].content['application/problem+json'].schema.allOf[1].properties.code.enum, ['invalid_credentials'], '/token 401: invalid_credentials');
    t.same(doc.paths['/me'].get.responses['401'].content['application/problem+json'].schema.allOf[1].properties.code.enum, ['unauthenticated']);
    t.same(
      doc.paths['/verify-account'].post.responses['400'].content['application/problem+json'].schema.allOf[1].properties.code.enum.sort(),
      ['expired_token', 'invalid_token', 'validation_failed'],
      '/verify-account 400: its three codes',
    );
  });

  t.test(`${label}: typed claims, per-operation token answers`, async (t) => {
    const claims = schemaOf(doc, 'AccessTokenClaims');
    t.same(claims?.required?.sort(), ['email', 'exp', 'iat', 'jti', 'origIat', 'sid', 'sub', 'username'], 'claims: required');
    t.same(Object.keys(claims?.properties ?? {}).sort(), ['aud', 'email', 'exp', 'iat', 'iss', 'jti', 'origIat', 'sid', 'sub', 'username'], 'claims: iss/aud optional');
    for (const name of ['LoginResponse', 'RefreshResponse', 'PasswordChangeResponse', 'VerifyTokenResponse']) {
      t.equal(schemaOf(doc, name)?.properties?.payload?.$ref, '#/components/schemas/AccessTokenClaims', `${name}.payload: AccessTokenClaims`);
    }
    t.same(schemaOf(doc, 'LoginResponse').required.filter((f: string) => ['user', 'unarchiving', 'token'].includes(f)).sort(), ['token', 'unarchiving', 'user'], 'login: user and unarchiving required');
    t.notOk('user' in schemaOf(doc, 'RefreshResponse').properties, 'refresh answers no user');
    t.same(schemaOf(doc, 'RefreshResponse').required.sort(), ['expiresIn', 'payload', 'refreshExpiresIn', 'refreshToken', 'token', 'tokenType'], 'refresh: all required');
    t.notOk('unarchiving' in schemaOf(doc, 'PasswordChangeResponse').properties, 'password-change answers no unarchiving');
    t.ok(schemaOf(doc, 'PasswordChangeResponse').required.includes('user'), 'password-change: user required');
  });
}

// ---------------------------------------------------------------------------------------------
// What configuration decides

t.test('committed: covers every configuration (optional where a setting decides)', async (t) => {
  const register = schemaOf(committed, 'RegisterRequest');
  t.same(register.required ?? [], [], 'register: nothing is required by every configuration');
  t.same(Object.keys(register.properties).sort(), ['email', 'firstName', 'lastName', 'password1', 'password2', 'username'], 'register: every field some configuration accepts');
  t.same(
    schemaOf(committed, 'LoginRequest').oneOf.map((a: any) => a.$ref),
    ['#/components/schemas/LoginWithEmail', '#/components/schemas/LoginWithUsername'],
    'login: a oneOf of the identifier shapes',
  );
  for (const [name, field] of [['LoginWithEmail', 'email'], ['LoginWithUsername', 'username']]) {
    t.same(schemaOf(committed, name).required.sort(), [field, 'password'].sort(), `${name}: ${field} and password, required`);
  }
  t.same(
    schemaOf(committed, 'RegisterResponse').oneOf.map((a: any) => a.$ref),
    ['#/components/schemas/RegisterResponseUserOnly', '#/components/schemas/RegisterResponseWithTokens'],
    'register answers a oneOf: user only, or user with tokens',
  );
  t.same(schemaOf(committed, 'RegisterResponseUserOnly').required, ['user']);
  t.same(schemaOf(committed, 'RegisterResponseWithTokens').required.sort(), ['expiresIn', 'payload', 'token', 'tokenType', 'user']);
  t.same(Object.keys(schemaOf(committed, 'UpdateAccountRequest').properties).sort(), ['email', 'firstName', 'lastName', 'password', 'username'], 'update: every UPDATE_FIELDS (and the password an email change needs)');
  for (const name of ['LoginResponse', 'PasswordChangeResponse', 'RegisterResponseWithTokens']) {
    const s = schemaOf(committed, name);
    t.ok('refreshToken' in s.properties && !s.required.includes('refreshToken'), `${name}: refreshToken optional (JWT_LONG_RUNNING_REFRESH_TOKEN)`);
  }
  t.ok(committed.paths['/token/refresh'] && committed.paths['/token/revoke'], 'refresh and revoke are documented');
});

t.test('served: narrowed to the running configuration', async (t) => {
  await t.test('defaults', async (t) => {
    const register = schemaOf(served, 'RegisterRequest');
    t.same(register.required.sort(), ['email', 'password1', 'password2', 'username'], 'register: REGISTER_FIELDS and the passwords, required');
    t.same(Object.keys(register.properties).sort(), ['email', 'password1', 'password2', 'username']);
    t.notOk(schemaOf(served, 'RegisterResponse').oneOf, 'register always answers tokens');
    t.ok(schemaOf(served, 'RegisterResponse').required.includes('token'));
    t.ok(schemaOf(served, 'RegisterResponse').required.includes('refreshToken'));
    t.ok(schemaOf(served, 'LoginResponse').required.includes('refreshToken'), 'login: refreshToken required');
    t.same(Object.keys(schemaOf(served, 'UpdateAccountRequest').properties).sort(), ['firstName', 'lastName'], 'update: UPDATE_FIELDS');
  });

  await t.test('ALLOW_PASSWORDLESS_REGISTRATION, LOGIN_ALLOWED_FIELDS=email, UPDATE_FIELDS=email,username, no refresh tokens', async (t) => {
    const hc = await buildTestApp(t, {
      env: { ALLOW_PASSWORDLESS_REGISTRATION: 'true', LOGIN_ALLOWED_FIELDS: 'email', UPDATE_FIELDS: 'email,username', JWT_LONG_RUNNING_REFRESH_TOKEN: 'false' },
    });
    const doc = (await get(hc.app, '/openapi.json')).body;
    const register = schemaOf(doc, 'RegisterRequest');
    t.same(register.required.sort(), ['email', 'username'], 'register: the passwords are optional');
    t.ok(register.properties.password1 && register.properties.password2);
    t.ok(schemaOf(doc, 'RegisterResponse').oneOf, 'register: user only or with tokens');
    const login = schemaOf(doc, 'LoginRequest');
    t.notOk(login.oneOf, 'login: one shape');
    t.same(Object.keys(login.properties).sort(), ['email', 'password']);
    t.notOk(schemaOf(doc, 'LoginWithUsername'), 'no username shape');
    t.same(Object.keys(schemaOf(doc, 'UpdateAccountRequest').properties).sort(), ['email', 'password', 'username']);
    t.notOk('refreshToken' in schemaOf(doc, 'LoginResponse').properties, 'login: no refresh token');
    t.notOk(doc.paths['/token/refresh'] || doc.paths['/token/revoke'], 'no refresh or revoke');
  });

  await t.test('ALLOW_LOGIN_NOT_VERIFIED=false: register answers the user only', async (t) => {
    const hc = await buildTestApp(t, { env: { ALLOW_LOGIN_NOT_VERIFIED: 'false' } });
    const doc = (await get(hc.app, '/openapi.json')).body;
    t.same(schemaOf(doc, 'RegisterResponse').required, ['user']);
    t.same(Object.keys(schemaOf(doc, 'RegisterResponse').properties), ['user']);
  });
});

// 429 exactly where a limit can answer it (issue 7 item 5), also when an operator turns one off.

// The public routes by the limits that can refuse them (routes/limits.ts): per client ("guess",
// RATE_LIMIT_MAX; "token", RATE_LIMIT_TOKEN_MAX), and per account where a password is checked
// (LOGIN_FAILURE_LIMIT).
const GUESS = ['/register', '/verify-account', '/resend-activation-email', '/send-password-reset-email', '/password-reset', '/password-set', '/confirm-email-change'];
const PASSWORD_CHECKS = ['/token', '/archive-account', '/delete-account', '/password-change', '/update-account'];
const TOKEN = ['/token/verify', '/token/refresh', '/token/revoke'];

/** The public operations that document 429, and those whose success documents the RateLimit-* headers. */
function throttledIn(doc: Doc) {
  const ops = operations(doc).filter(({ path }) => !path.startsWith('/admin'));
  const with429 = ops.filter(({ op }) => op.responses?.['429']).map(({ path }) => path).sort();
  const withHeaders = ops
    .filter(({ op }) => Object.entries<any>(op.responses ?? {}).some(([s, r]) => /^2/.test(s) && r.headers?.['RateLimit-Remaining']))
    .map(({ path }) => path)
    .sort();
  return { with429, withHeaders };
}

t.test('429 is listed exactly on the routes whose limits can answer it, in every configuration', async (t) => {
  const all = [...GUESS, ...PASSWORD_CHECKS, ...TOKEN].sort();
  t.same(throttledIn(committed), { with429: all, withHeaders: all }, 'committed: every throttled route (some configuration throttles it)');
  const cases: [string, Record<string, string>, string[], string[]][] = [
    ['the limits at their defaults', { RATE_LIMIT_MAX: '20', RATE_LIMIT_TOKEN_MAX: '600', LOGIN_FAILURE_LIMIT: '10' }, all, all],
    ['RATE_LIMIT_MAX=0 (the per-account count still refuses password checks)', { RATE_LIMIT_MAX: '0', RATE_LIMIT_TOKEN_MAX: '600', LOGIN_FAILURE_LIMIT: '10' }, [...PASSWORD_CHECKS, ...TOKEN], TOKEN],
    ['RATE_LIMIT_TOKEN_MAX=0', { RATE_LIMIT_MAX: '20', RATE_LIMIT_TOKEN_MAX: '0', LOGIN_FAILURE_LIMIT: '10' }, [...GUESS, ...PASSWORD_CHECKS], [...GUESS, ...PASSWORD_CHECKS]],
    ['every limit 0', { RATE_LIMIT_MAX: '0', RATE_LIMIT_TOKEN_MAX: '0', LOGIN_FAILURE_LIMIT: '0' }, [], []],
  ];
  for (const [label, env, with429, withHeaders] of cases) {
    const hc = await buildTestApp(t, { env });
    const doc = (await get(hc.app, '/openapi.json')).body;
    t.same(throttledIn(doc), { with429: [...with429].sort(), withHeaders: [...withHeaders].sort() }, `served, ${label}`);
  }
});

t.test('admin routes: 429 and the RateLimit-* headers while ADMIN_RATE_LIMIT_MAX is on, none at 0', async (t) => {
  for (const [max, expected] of [['300', true], ['0', false]] as const) {
    const hc = await buildTestApp(t, { env: { ADMIN_API_KEYS: `doc:${'x'.repeat(32)}`, ADMIN_RATE_LIMIT_MAX: max } });
    const doc = (await get(hc.app, '/openapi.json')).body;
    const admin = operations(doc).filter(({ path }) => path.startsWith('/admin'));
    t.ok(admin.length > 5, `ADMIN_RATE_LIMIT_MAX=${max}: the admin routes are documented`);
    t.same(
      admin.filter(({ op }) => Boolean(op.responses?.['429']) !== expected).map(({ method, path }) => `${method} ${path}`),
      [],
      `ADMIN_RATE_LIMIT_MAX=${max}: 429 ${expected ? 'on every' : 'on no'} admin route`,
    );
    t.same(
      admin
        .filter(({ op }) => Object.entries<any>(op.responses ?? {}).some(([s, r]) => /^2/.test(s) && Boolean(r.headers?.['RateLimit-Remaining']) !== expected))
        .map(({ method, path }) => `${method} ${path}`),
      [],
      `ADMIN_RATE_LIMIT_MAX=${max}: the RateLimit-* headers ${expected ? 'on every' : 'on no'} admin success`,
    );
  }
});

t.test('with only the per-account count on, a refused login is a documented 429 (Retry-After, no RateLimit-* fields)', async (t) => {
  const hc = await buildTestApp(t, { env: { RATE_LIMIT_MAX: '0', LOGIN_FAILURE_LIMIT: '2' } });
  const doc = (await get(hc.app, '/openapi.json')).body;
  t.same(Object.keys(doc.paths['/token'].post.responses['429'].headers), ['Retry-After']);
  const email = uniqueUser().email;
  const answers = [];
  for (let i = 0; i < 3; i++) answers.push(await post(hc.app, '/token', { email, password: 'not the password' }));
  t.same(answers.map((a) => a.status), [401, 401, 429], 'the third attempt is refused (documented: the test harness turns an undocumented problem into a 500)');
  t.ok(answers[2].headers['retry-after'], 'Retry-After');
  t.notOk(answers[2].headers['ratelimit-remaining'], 'no RateLimit-* fields: no per-client limit on this route');
});

// ---------------------------------------------------------------------------------------------
// The examples work as they are (Swagger UI's "Try it out")

for (const env of [{}, { REGISTER_FIELDS: 'email,firstName', LOGIN_ALLOWED_FIELDS: 'email' }, { REGISTER_FIELDS: 'username', LOGIN_ALLOWED_FIELDS: 'username' }] as Record<string, string>[]) {
  t.test(`the served examples of register, then login, succeed as they are (${JSON.stringify(env)})`, async (t) => {
    const hc = Object.keys(env).length ? await buildTestApp(t, { env }) : h;
    const doc = (await get(hc.app, '/openapi.json')).body;
    const example = (name: string) => deref(doc, doc.paths[name].post.requestBody.content['application/json'].schema).example;
    const registered = await post(hc.app, '/register', example('/register'));
    t.equal(registered.status, 201, 'register with its example', { body: registered.body });
    const login = await post(hc.app, '/token', example('/token'));
    t.equal(login.status, 200, 'login with its example', { body: login.body });
    t.type(login.body?.token, 'string');
    const update = await post(hc.app, '/update-account', deref(doc, schemaOf(doc, 'UpdateAccountRequest')).example, login.body?.token);
    t.equal(update.status, 403, 'update-account example is well-formed (the account is not verified yet)', { body: update.body });
  });
}

t.test('the committed examples of register and login work against the defaults', async (t) => {
  const user = uniqueUser();
  const example = (name: string) => schemaOf(committed, name).example;
  const body = { ...example('RegisterRequest'), email: user.email, username: user.username };
  t.equal((await post(h.app, '/register', body)).status, 201);
  t.equal((await post(h.app, '/token', { ...example('LoginWithEmail'), email: user.email })).status, 200);
  t.equal((await post(h.app, '/token', { ...example('LoginWithUsername'), username: user.username })).status, 200);
});
