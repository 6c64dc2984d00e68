// GET /sessions, DELETE /sessions/{id}, POST /sessions/revoke: the owner sees and ends sessions.
import { eq } from 'drizzle-orm';
import t from 'tap';
import { sessions } from '../src/db/schema.js';
import { assertProblem, buildTestApp, get, PASSWORD, post, type Res, safeJson, type TestApp, verifiedUser } from './helpers.js';

async function login(h: TestApp, email: string, userAgent: string) {
  const res = await h.app.inject({ method: 'POST', url: '/token', payload: { email, password: PASSWORD }, headers: { 'user-agent': userAgent } });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`);
  const body = JSON.parse(res.body);
  return { token: body.token as string, refreshToken: body.refreshToken as string, sid: body.payload.sid as string };
}

async function del(h: TestApp, url: string, token: string): Promise<Res> {
  const res = await h.app.inject({ method: 'DELETE', url, headers: { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, headers: res.headers, body: res.body ? safeJson(res.body) : undefined, raw: res.body };
}

async function alive(h: TestApp, s: { token: string; refreshToken?: string }) {
  return (await get(h.app, '/me', s.token)).status === 200;
}

t.test('GET /sessions lists live sessions, never tokens, and tracks the last refresh', async (t) => {
  const h = await buildTestApp(t);
  // One session already: verifiedUser's login (verifying ended register's: an unverified
  // account may log in by default, and verification ends the sessions started before it).
  const user = await verifiedUser(h);
  h.clock.advance(5);
  const laptop = await login(h, user.email, 'Mozilla/5.0 (Laptop)');
  h.clock.advance(5);
  const phone = await login(h, user.email, 'MyApp/2.1 (Phone)');

  const res = await get(h.app, '/sessions', laptop.token);
  t.equal(res.status, 200, res.raw);
  const list = res.body.sessions as Record<string, unknown>[];
  t.equal(list.length, 3, 'three live logins, three sessions');
  t.same(list.map((s) => s.id), [phone.sid, laptop.sid, user.login.payload.sid], 'most recently used first');
  t.same(Object.keys(list[0]).sort(), ['createdAt', 'current', 'expiresAt', 'id', 'ipAddress', 'lastUsedAt', 'userAgent']);
  t.same(list.map((s) => s.current), [false, true, false], 'current marks the caller');
  t.match(list[1], { userAgent: 'Mozilla/5.0 (Laptop)', ipAddress: '127.0.0.1' });
  t.equal(list[0].userAgent, 'MyApp/2.1 (Phone)');
  for (const token of [laptop.token, laptop.refreshToken, phone.refreshToken]) t.notOk(res.raw.includes(token), 'no token material');
  t.equal(list[1].lastUsedAt, list[1].createdAt, 'never refreshed: last used at its login');

  // A refresh moves lastUsedAt (and so the order); a bearer request does not write anything.
  h.clock.advance(60);
  const refreshed = await post(h.app, '/token/refresh', { refreshToken: user.refreshToken });
  t.equal(refreshed.status, 200);
  const after = (await get(h.app, '/sessions', phone.token)).body.sessions;
  t.equal(after[0].id, user.login.payload.sid, 'the refreshed session is now the most recently used');
  t.ok(Date.parse(after[0].lastUsedAt) > Date.parse(after[0].createdAt), 'lastUsedAt is the refresh');
  t.same(after.map((s: { current: boolean }) => s.current), [false, true, false]);

  // Only this account's, only live ones.
  const other = await verifiedUser(h);
  t.equal((await get(h.app, '/sessions', other.token)).body.sessions.length, 1, "another account's sessions are not listed");
  await post(h.app, '/token/revoke', { refreshToken: phone.refreshToken });
  const ids = (await get(h.app, '/sessions', laptop.token)).body.sessions.map((s: { id: string }) => s.id);
  t.notOk(ids.includes(phone.sid), 'a logged-out session is gone');
  h.clock.advance(8 * 86400);
  assertProblem(t, await get(h.app, '/sessions', laptop.token), 'unauthenticated', { label: 'expired access token' });
  assertProblem(t, await get(h.app, '/sessions'), 'unauthenticated', { label: 'no token' });
});

t.test('a long user agent is stored cut to 256 characters', async (t) => {
  const h = await buildTestApp(t);
  const user = await verifiedUser(h);
  const s = await login(h, user.email, `Agent/${'x'.repeat(2000)}`);
  const [row] = await h.db.db.select().from(sessions).where(eq(sessions.id, s.sid));
  t.equal(row.userAgent?.length, 256);
});

t.test('DELETE /sessions/{id} ends one session at once', async (t) => {
  const h = await buildTestApp(t);
  const user = await verifiedUser(h);
  const a = await login(h, user.email, 'A');
  const b = await login(h, user.email, 'B');
  const res = await del(h, `/sessions/${b.sid}`, a.token);
  t.equal(res.status, 204);
  t.notOk(await alive(h, b), "its access token is dead");
  assertProblem(t, await post(h.app, '/token/refresh', { refreshToken: b.refreshToken }), 'invalid_token', { label: 'its refresh token is dead' });
  t.ok(await alive(h, a), 'the caller lives on');
  assertProblem(t, await del(h, `/sessions/${b.sid}`, a.token), 'session_not_found', { label: 'already ended' });
  assertProblem(t, await del(h, '/sessions/00000000-0000-4000-8000-000000000000', a.token), 'session_not_found', { label: 'unknown' });
  assertProblem(t, await del(h, '/sessions/not-a-uuid', a.token), 'session_not_found', { label: 'malformed' });
  const other = await verifiedUser(h);
  assertProblem(t, await del(h, `/sessions/${a.sid}`, other.token), 'session_not_found', { label: "another account's" });
  t.ok(await alive(h, a), "another account cannot end it");
  // Ending the current session is a logout.
  t.equal((await del(h, `/sessions/${a.sid}`, a.token)).status, 204);
  t.notOk(await alive(h, a));
  assertProblem(t, await del(h, `/sessions/${user.login.payload.sid}`, a.token), 'unauthenticated', { label: 'with the ended token' });
});

t.test('POST /sessions/revoke: others and all', async (t) => {
  const h = await buildTestApp(t);
  const user = await verifiedUser(h);
  const a = await login(h, user.email, 'A');
  const b = await login(h, user.email, 'B');
  const other = await verifiedUser(h);

  const res = await post(h.app, '/sessions/revoke', { scope: 'others' }, a.token);
  t.equal(res.status, 204, res.raw);
  t.ok(await alive(h, a), 'the caller lives on');
  t.notOk(await alive(h, b));
  t.notOk(await alive(h, { token: user.token }));
  assertProblem(t, await post(h.app, '/token/refresh', { refreshToken: b.refreshToken }), 'invalid_token');
  t.ok(await alive(h, { token: other.token }), "another account's sessions are untouched");
  t.same((await get(h.app, '/sessions', a.token)).body.sessions.map((s: { id: string }) => s.id), [a.sid]);

  const c = await login(h, user.email, 'C');
  t.equal((await post(h.app, '/sessions/revoke', { scope: 'all' }, a.token)).status, 204);
  t.notOk(await alive(h, a), 'all: the caller too');
  t.notOk(await alive(h, c));
  assertProblem(t, await post(h.app, '/token/refresh', { refreshToken: a.refreshToken }), 'invalid_token');
  t.ok(await alive(h, { token: other.token }));

  const d = await login(h, user.email, 'D');
  for (const body of [{}, { scope: 'local' }, { scope: 'all', extra: 1 }, { scope: ['all'] }]) {
    assertProblem(t, await post(h.app, '/sessions/revoke', body, d.token), 'validation_failed', { label: JSON.stringify(body) });
  }
  assertProblem(t, await post(h.app, '/sessions/revoke', { scope: 'all' }), 'unauthenticated');
  assertProblem(t, await post(h.app, '/sessions/revoke', { bogus: 1 }), 'unauthenticated', { label: '401 before 400' });
});

t.test('without refresh tokens a session lives as long as its access token', async (t) => {
  const h = await buildTestApp(t, { env: { JWT_LONG_RUNNING_REFRESH_TOKEN: 'false' } });
  const user = await verifiedUser(h);
  const s = await login(h, user.email, 'A');
  const list = (await get(h.app, '/sessions', s.token)).body.sessions;
  t.equal(list.length, 2, "verifiedUser's login and this one (verifying ended register's)");
  t.equal(Date.parse(list[0].expiresAt) - Date.parse(list[0].createdAt), 300_000, 'ends with its access token');
  h.clock.advance(200);
  const s2 = await login(h, user.email, 'B');
  h.clock.advance(200);
  t.same((await get(h.app, '/sessions', s2.token)).body.sessions.map((x: { id: string }) => x.id), [s2.sid], 'the first two have expired');
});

