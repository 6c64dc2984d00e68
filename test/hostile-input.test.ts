// Hostile bodies (issue 7, "Protocol and input"): keys named like Object.prototype members, JSON in
// another charset or in bytes that are not UTF-8, ill-formed Unicode in any field, addresses beyond
// RFC 5321's limits, and passwords made of the service's own name. Each is a 4xx problem document
// with a code of the error table, never a 5xx, and never silently accepted.
import t from 'tap';
import type { App } from '../src/routes/types.js';
import {
  assertProblem,
  buildTestApp,
  outboxSettled,
  PASSWORD,
  post,
  problemIssues,
  registerUser,
  safeJson,
  type TestApp,
  uniqueUser,
  verifiedUser,
} from './helpers.js';

/** A POST with a raw body and content type, exactly as given. */
async function raw(app: App, url: string, payload: string | Buffer, contentType = 'application/json', token?: string) {
  const res = await app.inject({
    method: 'POST',
    url,
    payload,
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  return { status: res.statusCode, headers: res.headers, body: safeJson(res.body), raw: res.body };
}

const NEW = 'a new long passphrase';

/** Every POST route with a body that passes its schema (the values need not be right). */
function routes(token: string): { url: string; body: Record<string, string>; token?: string }[] {
  return [
    { url: '/register', body: { ...uniqueUser(), password1: PASSWORD, password2: PASSWORD } },
    { url: '/verify-account', body: { token: 'x'.repeat(43) } },
    { url: '/resend-activation-email', body: { email: 'someone@example.com' } },
    { url: '/token', body: { email: 'someone@example.com', password: PASSWORD } },
    { url: '/send-password-reset-email', body: { email: 'someone@example.com' } },
    { url: '/password-reset', body: { token: 'x'.repeat(43), newPassword1: NEW, newPassword2: NEW } },
    { url: '/password-set', body: { token: 'x'.repeat(43), newPassword1: NEW, newPassword2: NEW } },
    { url: '/token/verify', body: { token: 'x' } },
    { url: '/token/refresh', body: { refreshToken: 'x'.repeat(43) } },
    { url: '/token/revoke', body: { refreshToken: 'x'.repeat(43) } },
    { url: '/password-change', body: { oldPassword: PASSWORD, newPassword1: NEW, newPassword2: NEW }, token },
    { url: '/archive-account', body: { password: 'wrong password here' }, token },
    { url: '/delete-account', body: { password: 'wrong password here' }, token },
    { url: '/update-account', body: { firstName: 'Ada' }, token },
  ];
}

const PROTOTYPE_KEYS = [
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
  '__defineGetter__',
  '__lookupGetter__',
];

t.test('hostile input with default settings', async (t) => {
  const h = await buildTestApp(t, { env: { UPDATE_FIELDS: 'firstName,lastName,username' } });
  const owner = await verifiedUser(h);

  t.test('a body key named like an Object.prototype member is a 400 validation_failed naming it, on every POST route (item 8)', async (t) => {
    for (const route of routes(owner.token)) {
      for (const key of PROTOTYPE_KEYS) {
        const res = await raw(h.app, route.url, JSON.stringify({ ...route.body, [key]: 'x' }), 'application/json', route.token);
        assertProblem(t, res, 'validation_failed', { label: `${route.url} ${key}`, fields: [key], fieldCodes: { [key]: 'invalid' } });
        // Compared as text: tap's deep equality reads `constructor` as the object's constructor.
        t.equal(JSON.stringify(res.body.errors), JSON.stringify({ [key]: [{ message: 'Unknown field.', code: 'invalid' }] }), `${route.url} ${key}: errors`);
      }
    }
  });

  t.test('a prototype-named key alone, and with every other field error at once (register merges its errors)', async (t) => {
    const res = await raw(h.app, '/register', JSON.stringify({ constructor: {}, toString: 1, password1: 'abc', password2: 'abd' }));
    assertProblem(t, res, 'validation_failed', { fieldCodes: { constructor: 'invalid', toString: 'invalid', email: 'required', password2: 'password_mismatch' } });
    assertProblem(t, await raw(h.app, '/token', '{"constructor":{"prototype":{"x":1}}}'), 'validation_failed', { label: 'constructor.prototype' });
    assertProblem(t, await raw(h.app, '/token', '{"__proto__":{"x":1},"password":"p"}'), 'validation_failed', { label: '__proto__' });
  });

  t.test('a JSON body labelled with a charset other than UTF-8 is 415 (item 9, RFC 8259 §8.1)', async (t) => {
    const body = JSON.stringify({ email: 'someone@example.com' });
    for (const charset of ['utf-16', 'UTF-16LE', 'utf-16be', 'utf-32', 'iso-8859-1', 'us-ascii', '"utf-16"', 'x-unknown']) {
      const res = await raw(h.app, '/send-password-reset-email', body, `application/json; charset=${charset}`);
      assertProblem(t, res, 'unsupported_media_type', { label: charset, detail: 'Send the body as application/json in UTF-8 (RFC 8259).' });
    }
    // The same body really encoded in UTF-16 is refused too, not misread.
    const utf16 = await raw(h.app, '/send-password-reset-email', Buffer.from(`\ufeff${body}`, 'utf16le'), 'application/json; charset=utf-16');
    assertProblem(t, utf16, 'unsupported_media_type', { label: 'UTF-16 bytes', detail: 'Send the body as application/json in UTF-8 (RFC 8259).' });
    for (const ct of ['application/json', 'application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/json; charset="utf-8"', 'application/json; charset=utf8']) {
      t.equal((await raw(h.app, '/send-password-reset-email', body, ct)).status, 202, `${ct}: accepted`);
    }
  });

  t.test('a body that is not valid UTF-8 is a 400, not decoded with replacement characters', async (t) => {
    for (const [name, bytes] of [
      ['a lone continuation byte', Buffer.from([0x80])],
      ['an encoded surrogate (CESU-8)', Buffer.from([0xed, 0xa0, 0x80])],
      ['an overlong encoding', Buffer.from([0xc0, 0xaf])],
      ['a latin-1 é', Buffer.from([0xe9])],
    ] as const) {
      const payload = Buffer.concat([Buffer.from('{"email":"someone@example.com","password":"pass'), bytes, Buffer.from('word!"}')]);
      assertProblem(t, await raw(h.app, '/token', payload), 'validation_failed', { label: name, detail: 'The request body is not valid UTF-8.' });
    }
  });

  t.test('a lone surrogate is a 400 in every field of every route, passwords included (item 10)', async (t) => {
    for (const route of routes(owner.token)) {
      for (const field of Object.keys(route.body)) {
        for (const lone of ['\\ud800', '\\udbff', '\\udc00', '\\udfff']) {
          // Written into the JSON text as an escape: JSON allows it, Unicode does not.
          const text = JSON.stringify(route.body).replace(`"${field}":"`, `"${field}":"lone-${lone}-`);
          const res = await raw(h.app, route.url, text, 'application/json', route.token);
          assertProblem(t, res, 'validation_failed', {
            label: `${route.url} ${field} ${lone}`,
            errors: { [field]: [{ message: 'This value is not well-formed Unicode (it holds a lone surrogate).', code: 'invalid' }] },
          });
        }
      }
    }
    // In a key, and nested in a value of the wrong type, too.
    assertProblem(t, await raw(h.app, '/token', '{"x\\ud800":"a","password":"p"}'), 'validation_failed', { fieldCodes: { nonFieldErrors: 'invalid' } });
    assertProblem(t, await raw(h.app, '/token', '{"email":["\\udfff"],"password":"p"}'), 'validation_failed', { fieldCodes: { email: 'invalid' } });
    // A well-formed pair (an emoji) is a character like any other.
    const emoji = await raw(h.app, '/update-account', '{"firstName":"Ada \\ud83d\\ude00"}', 'application/json', owner.token);
    t.equal(emoji.status, 200, 'a surrogate pair is accepted');
    t.equal(emoji.body.user.firstName, 'Ada 😀');
  });

  t.test('passwords with different lone surrogates are not one password: both are refused (item 10, the reported case)', async (t) => {
    const u = uniqueUser();
    const reg = await raw(h.app, '/register', `{"email":"${u.email}","username":"${u.username}","password1":"lone-\\udbff-passphrase","password2":"lone-\\udbff-passphrase"}`);
    assertProblem(t, reg, 'validation_failed', { fieldCodes: { password1: 'invalid', password2: 'invalid' } });
    const login = await raw(h.app, '/token', `{"email":"${owner.email}","password":"lone-\\ud800-${PASSWORD}"}`);
    assertProblem(t, login, 'validation_failed', { fieldCodes: { password: 'invalid' } });
  });

  t.test('addresses beyond RFC 5321 §4.5.3.1 are a 400 on every route that takes one (item 11)', async (t) => {
    const label63 = 'd'.repeat(63);
    const longest = `${'l'.repeat(64)}@${label63}.${label63}.${'e'.repeat(61)}`; // 64 + 1 + 189 = 254
    t.equal(longest.length, 254);
    const refused: [string, string][] = [
      ['a local part of 65 characters', `${'l'.repeat(65)}@example.com`],
      ['a domain label of 64 characters', `ada@${'d'.repeat(64)}.example.com`],
      ['a top-level label of 64 characters', `ada@example.${'c'.repeat(64)}`],
      ['an address of 255 characters', `${'l'.repeat(64)}@${label63}.${label63}.${'e'.repeat(62)}`],
    ];
    const bodies = (email: string): [string, Record<string, string>][] => [
      ['/resend-activation-email', { email }],
      ['/send-password-reset-email', { email }],
      ['/token', { email, password: PASSWORD }],
      ['/register', { email, username: uniqueUser().username, password1: PASSWORD, password2: PASSWORD }],
    ];
    for (const [name, email] of refused) {
      for (const [url, body] of bodies(email)) {
        assertProblem(t, await post(h.app, url, body), 'validation_failed', {
          label: `${url}: ${name}`,
          fieldCodes: { email: email.length > 254 ? 'max_length' : 'invalid' },
        });
      }
    }
    // At the limits exactly: accepted.
    t.equal((await post(h.app, '/resend-activation-email', { email: longest })).status, 202, '254 characters, 64-character local part, 63-character labels');
    const reg = await post(h.app, '/register', { email: longest, username: uniqueUser().username, password1: PASSWORD, password2: PASSWORD });
    t.equal(reg.status, 201, 'an account at the limits registers');
    await outboxSettled(h);
  });

  t.test('a password containing the service name is password_too_similar (item 13, SERVICE_NAME defaults to the OpenAPI title)', async (t) => {
    const doc = (await h.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    t.equal(doc.info.title, 'Auth service', 'the default service name is the OpenAPI title');
    for (const pw of ['MyAuthService2024!', 'auth service forever', 'AUTH-SERVICE-pass', 'the.auth_service.1']) {
      const res = await post(h.app, '/register', { ...uniqueUser(), password1: pw, password2: pw });
      assertProblem(t, res, 'validation_failed', {
        label: pw,
        errors: { password2: [{ message: 'The password is too similar to the service name.', code: 'password_too_similar' }] },
      });
    }
    // On a password change too (and reset and set share the same rules).
    const change = await post(h.app, '/password-change', { oldPassword: PASSWORD, newPassword1: 'authservice rocks', newPassword2: 'authservice rocks' }, owner.token);
    assertProblem(t, change, 'validation_failed', { fieldCodes: { newPassword2: 'password_too_similar' } });
    // The words of the name alone are ordinary words.
    t.equal((await post(h.app, '/register', { ...uniqueUser(), password1: 'customer service desk', password2: 'customer service desk' })).status, 201);
  });
});

t.test('SERVICE_NAME and PASSWORD_CONTEXT_WORDS set the context words (item 13)', async (t) => {
  const h = await buildTestApp(t, { env: { SERVICE_NAME: 'Acme Login', PASSWORD_CONTEXT_WORDS: 'Globex, initech' } });
  const tryPassword = (pw: string) => post(h.app, '/register', { ...uniqueUser(), password1: pw, password2: pw });
  assertProblem(t, await tryPassword('acme-login-2024!'), 'validation_failed', {
    errors: { password2: [{ message: 'The password is too similar to the service name.', code: 'password_too_similar' }] },
  });
  for (const pw of ['globex corporation', 'I love Initech!']) {
    assertProblem(t, await tryPassword(pw), 'validation_failed', {
      label: pw,
      errors: { password2: [{ message: 'The password is too similar to the name of something specific to this service.', code: 'password_too_similar' }] },
    });
  }
  t.equal((await tryPassword('MyAuthService2024!')).status, 201, 'the default name is no longer a context word');
});

t.test('no hostile body gets a 5xx (a sweep of the cases above on one route family)', async (t) => {
  const h: TestApp = await buildTestApp(t);
  const u = await registerUser(h.app);
  const bodies = [
    '{"constructor":{"prototype":{"polluted":true}}}',
    '{"toString":"x","valueOf":"y","email":"a@b.co"}',
    '{"email":"\\ud800@b.co"}',
    '[{"email":"a@b.co"}]',
    '"\\ud800"',
    '{"email":{"toString":"a@b.co"}}',
    `{"email":"${'a'.repeat(70)}@b.co"}`,
  ];
  for (const url of ['/register', '/token', '/resend-activation-email', '/send-password-reset-email', '/update-account']) {
    for (const body of bodies) {
      const res = await raw(h.app, url, body, 'application/json', url === '/update-account' ? u.token : undefined);
      t.ok(res.status >= 400 && res.status < 500, `${url} ${body.slice(0, 40)}: 4xx (got ${res.status})`);
      t.same(problemIssues(res), [], `${url} ${body.slice(0, 40)}: a problem document`);
    }
  }
  t.notOk(({} as Record<string, unknown>).polluted, 'Object.prototype is untouched');
  t.equal((await post(h.app, '/token', { email: u.email, password: PASSWORD })).status, 200, 'the service still works');
});

