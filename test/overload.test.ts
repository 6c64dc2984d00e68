// Overload: password hashing is bounded. Beyond the hashes running (PASSWORD_HASH_CONCURRENCY, the core count) and
// PASSWORD_HASH_QUEUE waiting, a request needing a hash is answered 503 with Retry-After at once,
// instead of waiting behind an unbounded queue.
import t from 'tap';
import { assertProblem, buildTestApp, post, registerUser } from './helpers.js';

t.test('a login beyond the hash queue gets 503 service_unavailable with Retry-After, at once', async (t) => {
  // One hash at a time, none waiting, and a cost high enough that the hashes overlap.
  const h = await buildTestApp(t, { env: { PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE: '0', ARGON2_MEMORY_KIB: '32768', ARGON2_ITERATIONS: '2' } });
  const user = await registerUser(h.app);
  const answers = await Promise.all(Array.from({ length: 6 }, () => post(h.app, '/token', { email: user.email, password: user.password })));
  const refused = answers.filter((a) => a.status === 503);
  t.ok(answers.some((a) => a.status === 200), 'the login that got the hasher succeeded');
  t.ok(refused.length >= 1, `some logins were refused (${refused.length} of 6)`);
  for (const a of refused) {
    assertProblem(t, a, 'service_unavailable', { detail: 'Too many password checks are waiting; try again in a moment.' });
    t.equal(a.headers['retry-after'], '1', 'Retry-After');
  }
  t.equal(answers.filter((a) => a.status !== 200 && a.status !== 503).length, 0, 'nothing else');
  // An unknown account is refused the same way (the dummy hash is bounded too): no enumeration.
  const unknown = await Promise.all(Array.from({ length: 4 }, () => post(h.app, '/token', { email: 'nobody@example.com', password: 'whatever pass' })));
  t.ok(unknown.some((a) => a.status === 503), 'an unknown account also meets the bound');
  t.ok(unknown.every((a) => a.status === 503 || a.status === 401));
  // The bound frees up: once the storm is over, a login works.
  t.equal((await post(h.app, '/token', { email: user.email, password: user.password })).status, 200);
});

t.test('within the hash queue nothing is refused', async (t) => {
  const h = await buildTestApp(t, { env: { PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE: '8' } });
  const user = await registerUser(h.app);
  const answers = await Promise.all(Array.from({ length: 6 }, () => post(h.app, '/token', { email: user.email, password: user.password })));
  t.same(answers.map((a) => a.status), [200, 200, 200, 200, 200, 200]);
});
