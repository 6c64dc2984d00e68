// Instances whose clocks disagree (+30 s ahead, −90 s behind, as seen in the field) over one
// database: every time one instance writes and another compares is on the database's clock
// (src/db/now.ts), so the answers do not depend on which instance a request reaches. The skewed
// instances move only what Node reads (test/helpers.ts buildSkewedSibling); the database keeps the
// test clock's time.
import t from 'tap';
import { assertProblem, buildSkewedSibling, buildTestApp, PASSWORD, post, tokenIn, uniqueUser } from './helpers.js';
import type { App } from '../src/routes/types.js';

const AHEAD = 30;
const BEHIND = -90;
const DAY = 86_400;
const WEEK = 7 * DAY; // JWT_REFRESH_EXPIRATION_DELTA and EXPIRATION_ACTIVATION_TOKEN default to 7 days

async function register(app: App) {
  const u = uniqueUser('skew');
  const res = await post(app, '/register', { ...u, password1: PASSWORD, password2: PASSWORD });
  if (res.status !== 201) throw new Error(`register: ${res.status} ${res.raw}`);
  return { ...u, refreshToken: res.body.refreshToken as string };
}

t.test('refresh: a retry within the reuse interval on a clock-ahead instance keeps the session', async (t) => {
  const h = await buildTestApp(t);
  const [ahead, behind] = [await buildSkewedSibling(t, h, AHEAD), await buildSkewedSibling(t, h, BEHIND)];
  const u = await register(h.app);
  const first = await post(behind, '/token/refresh', { refreshToken: u.refreshToken });
  t.equal(first.status, 200, 'rotated on the instance 90 s behind');
  h.clock.advance(2);
  const retry = await post(ahead, '/token/refresh', { refreshToken: u.refreshToken });
  t.equal(retry.status, 200, 'the retry 2 s later on the instance 30 s ahead is within the 10 s interval');
  t.equal(retry.body.refreshToken, first.body.refreshToken, 'and gets the same new token');
  const next = await post(h.app, '/token/refresh', { refreshToken: retry.body.refreshToken });
  t.equal(next.status, 200, 'the session lives on');
});

t.test('refresh: a replay after the reuse interval on a clock-behind instance is detected', async (t) => {
  const h = await buildTestApp(t);
  const [ahead, behind] = [await buildSkewedSibling(t, h, AHEAD), await buildSkewedSibling(t, h, BEHIND)];
  const u = await register(h.app);
  const first = await post(ahead, '/token/refresh', { refreshToken: u.refreshToken });
  t.equal(first.status, 200, 'rotated on the instance 30 s ahead');
  h.clock.advance(15);
  const replay = await post(behind, '/token/refresh', { refreshToken: u.refreshToken });
  assertProblem(t, replay, 'invalid_token', { label: 'the replay 15 s later on the instance 90 s behind' });
  const newest = await post(h.app, '/token/refresh', { refreshToken: first.body.refreshToken });
  assertProblem(t, newest, 'invalid_token', { label: 'ended the session: its newest token is dead too' });
});

t.test('refresh: a session ends at its expiry on every instance, whichever started it', async (t) => {
  const h = await buildTestApp(t);
  const [ahead, behind] = [await buildSkewedSibling(t, h, AHEAD), await buildSkewedSibling(t, h, BEHIND)];
  const early = await register(ahead);
  const late = await register(behind);
  h.clock.advance(WEEK - 10);
  t.equal((await post(ahead, '/token/refresh', { refreshToken: late.refreshToken })).status, 200, '10 s before its expiry, started 90 s behind, refreshed 30 s ahead');
  h.clock.advance(20);
  assertProblem(t, await post(behind, '/token/refresh', { refreshToken: early.refreshToken }), 'expired_token', { label: '10 s after its expiry, started 30 s ahead, refused 90 s behind' });
});

t.test('email tokens: a link expires at its lifetime on every instance, whichever made it', async (t) => {
  const h = await buildTestApp(t);
  const [ahead, behind] = [await buildSkewedSibling(t, h, AHEAD), await buildSkewedSibling(t, h, BEHIND)];
  const early = await register(ahead);
  const late = await register(behind);
  const [earlyLink, lateLink] = [tokenIn(await h.mail.waitFor(early.email)), tokenIn(await h.mail.waitFor(late.email))];
  h.clock.advance(WEEK - 10);
  t.equal((await post(ahead, '/verify-account', { token: lateLink })).status, 204, '10 s before its expiry, made 90 s behind, used 30 s ahead');
  h.clock.advance(20);
  assertProblem(t, await post(behind, '/verify-account', { token: earlyLink }), 'expired_token', { label: '10 s after its expiry, made 30 s ahead, refused 90 s behind' });
});

t.test('email: what a clock-ahead instance queues, a clock-behind instance sends at once', async (t) => {
  // Only the instance 90 s behind delivers: the others claim nothing.
  const h = await buildTestApp(t, { outbox: { concurrency: 0 } });
  const ahead = await buildSkewedSibling(t, h, AHEAD, { concurrency: 0 });
  await buildSkewedSibling(t, h, BEHIND);
  const started = Date.now();
  const u = await register(ahead);
  await h.mail.waitFor(u.email, 1, 5_000);
  t.ok(Date.now() - started < 5_000, `sent within ${Date.now() - started} ms, not after the 90 s the clocks differ by`);
});
