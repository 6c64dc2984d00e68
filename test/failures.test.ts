// When the database cannot be reached, every endpoint answers 503 service_unavailable with a
// problem document (never a 500, never a stack trace), and /health says so.
import t from 'tap';
import { ERRORS } from '../src/errors.js';
import { buildTestApp, get, PASSWORD, post, verifiedUser } from './helpers.js';

t.test('the database goes away: 503 service_unavailable everywhere, nothing internal leaks', async (t) => {
  const h = await buildTestApp(t);
  const u = await verifiedUser(h);
  t.equal((await get(h.app, '/health')).status, 200);

  await h.db.close(); // the real database, really gone

  const calls = [
    await get(h.app, '/health'),
    await post(h.app, '/token', { email: u.email, password: PASSWORD }),
    await post(h.app, '/register', { email: 'late@example.com', username: 'late', password1: PASSWORD, password2: PASSWORD }),
    await get(h.app, '/me', u.token),
    await post(h.app, '/token/refresh', { refreshToken: u.refreshToken }),
  ];
  for (const res of calls) {
    t.equal(res.status, 503);
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
    t.equal(res.body.code, 'service_unavailable');
    t.equal(res.body.title, ERRORS.service_unavailable.title);
    t.match(res.body.type, /\/service_unavailable$/);
    t.type(res.body.requestId, 'string');
    t.notMatch(res.raw, /stack|at .*\.ts|postgres|pglite|select|insert/i, 'no internals in the answer');
  }
  t.equal(calls[0].body.detail, 'The database does not answer.');
  t.equal(calls[1].body.detail, ERRORS.service_unavailable.detail);
});
