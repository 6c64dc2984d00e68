// The per-turn batching of the hot statements (lib/turn-batch.ts): the bearer check's session
// lookup and the throttle's counters. Requests made at once share one statement; each must still
// get its own answer, as if it had been alone: its own account, its session's revocation, its own
// count against the limit, on one instance or several over one database.
import { generateKeyPairSync, sign } from 'node:crypto';
import t from 'tap';
import { anotherPool, buildSiblingApp, buildTestApp, get, PASSWORD, post, registerUser, type Res, verifiedUser } from './helpers.js';

const { privateKey } = generateKeyPairSync('ed25519');
const KEY_ENV = { JWT_PRIVATE_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };

const b64u = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const partsOf = (token: string) => token.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8')));
/** The token re-signed with the service's key after `change` rewrote its claims. */
function resigned(token: string, change: (claims: Record<string, any>) => Record<string, any>): string {
  const [header, claims] = partsOf(token);
  const input = `${b64u(header)}.${b64u(change(claims))}`;
  return `${input}.${sign(null, Buffer.from(input), privateKey).toString('base64url')}`;
}

const count = (answers: Res[], status: number) => answers.filter((a) => a.status === status).length;

t.test('bearer checks made at once: each gets its own account, and a revoked session is refused', async (t) => {
  const h = await buildTestApp(t, { env: KEY_ENV });
  const users = [];
  for (let i = 0; i < 22; i++) users.push(await registerUser(h.app));
  for (let i = 0; i < 2; i++) users.push(await verifiedUser(h));
  // Every third session ends before the burst by logout; the last two by a password change (which
  // ends every session of the account) and by deactivation.
  const ended = new Set<number>();
  for (let i = 0; i < 22; i += 3) {
    t.equal((await post(h.app, '/token/revoke', { refreshToken: users[i].refreshToken })).status, 200);
    ended.add(i);
  }
  const newPassword = `${PASSWORD} and more`;
  t.equal((await post(h.app, '/password-change', { oldPassword: PASSWORD, newPassword1: newPassword, newPassword2: newPassword }, users[22].token)).status, 200);
  t.equal((await post(h.app, '/delete-account', { password: PASSWORD }, users[23].token)).status, 204);
  ended.add(22).add(23);
  const [a, b] = [users[1], users[2]];
  const cases: { label: string; token: string; userId?: string }[] = [
    ...users.map((u, i) => ({ label: `account ${i}${ended.has(i) ? ' (ended)' : ''}`, token: u.token, userId: ended.has(i) ? undefined : u.user.id })),
    // The same token twice in one batch, and ids written in capitals (a uuid in either case is the same uuid).
    { label: 'account 1 again', token: a.token, userId: a.user.id },
    { label: 'account 2, ids in capitals', token: resigned(b.token, (c) => ({ ...c, sid: c.sid.toUpperCase(), sub: c.sub.toUpperCase() })), userId: b.user.id },
    // A well-signed token pairing one account's session with another account is nobody's.
    { label: "account 1's session, account 2's id", token: resigned(a.token, (c) => ({ ...c, sub: b.user.id })) },
    { label: 'a session that does not exist', token: resigned(a.token, (c) => ({ ...c, sid: '00000000-0000-4000-8000-000000000000' })) },
  ];
  for (let round = 0; round < 3; round++) {
    const order = round === 1 ? [...cases].reverse() : cases;
    const answers = await Promise.all(order.map((c) => (round === 2 ? post(h.app, '/token/verify', { token: c.token }) : get(h.app, '/me', c.token))));
    order.forEach((c, i) => {
      const res = answers[i];
      if (round === 2) {
        if (c.userId) t.equal(res.body?.payload?.sub?.toLowerCase(), c.userId, `verify, ${c.label}: its own claims`);
        else t.equal(res.body?.code, 'invalid_token', `verify, ${c.label}: invalid_token`);
      } else if (c.userId) {
        t.equal(res.status, 200, `/me round ${round}, ${c.label}: 200`);
        t.equal(res.body?.user?.id, c.userId, `/me round ${round}, ${c.label}: its own account`);
      } else {
        t.equal(res.status, 401, `/me round ${round}, ${c.label}: 401`);
      }
    });
  }
});

t.test('a logout is seen by every bearer check that starts after it, in the same burst', async (t) => {
  const h = await buildTestApp(t);
  const u = await registerUser(h.app);
  const before = get(h.app, '/me', u.token);
  const revoked = await post(h.app, '/token/revoke', { refreshToken: u.refreshToken });
  t.equal(revoked.status, 200);
  const after = await Promise.all(Array.from({ length: 10 }, () => get(h.app, '/me', u.token)));
  t.same(after.map((r) => r.status), Array(10).fill(401), 'every check made after the logout answered is refused');
  t.ok([200, 401].includes((await before).status), 'the check made before it may go either way');
});

t.test('throttle hits made at once: each is counted once, and the limit holds exactly', async (t) => {
  const h = await buildTestApp(t, { env: { RATE_LIMIT_TOKEN_MAX: '5', RATE_LIMIT_WINDOW: '1m' } });
  const verify = (ip: string) => h.app.inject({ method: 'POST', url: '/token/verify', payload: { token: 'not-a-token' }, remoteAddress: ip });
  const burst = await Promise.all([...Array(12).fill('198.51.100.1'), ...Array(3).fill('198.51.100.2')].map(verify));
  const first = burst.slice(0, 12);
  t.equal(first.filter((r) => r.statusCode === 400).length, 5, 'five of twelve from one address are answered');
  t.equal(first.filter((r) => r.statusCode === 429).length, 7, 'the other seven are 429');
  t.same(
    first.filter((r) => r.statusCode === 400).map((r) => r.headers['ratelimit-remaining']).sort(),
    ['0', '1', '2', '3', '4'],
    'each answered request got its own count',
  );
  t.same(burst.slice(12).map((r) => r.headers['ratelimit-remaining']).sort(), ['2', '3', '4'], 'another address in the same burst has its own count');
  t.equal((await verify('198.51.100.1')).statusCode, 429, 'the count stays after the burst');
});

t.test('a turn of more hits than one statement takes (200) is split, and the counts stay exact', async (t) => {
  const h = await buildTestApp(t, { env: { RATE_LIMIT_TOKEN_MAX: '230', RATE_LIMIT_WINDOW: '1m' } });
  const burst = await Promise.all(
    Array.from({ length: 250 }, () => h.app.inject({ method: 'POST', url: '/token/verify', payload: { token: 'x' }, remoteAddress: '198.51.100.7' })),
  );
  const answered = burst.filter((r) => r.statusCode === 400);
  t.equal(answered.length, 230, '230 of 250 are answered');
  t.equal(burst.filter((r) => r.statusCode === 429).length, 20, 'the other 20 are 429');
  t.equal(new Set(answered.map((r) => r.headers['ratelimit-remaining'])).size, 230, 'each answered request got its own count');
});

t.test('failed logins made at once: exactly LOGIN_FAILURE_LIMIT are checked', async (t) => {
  const h = await buildTestApp(t, { env: { LOGIN_FAILURE_LIMIT: '3', RATE_LIMIT_MAX: '1000' } });
  const u = await registerUser(h.app);
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => post(h.app, '/token', { email: u.email, password: `wrong ${i} ${PASSWORD}` })));
  t.equal(count(answers, 401), 3, 'three wrong passwords are checked (invalid_credentials)');
  t.equal(count(answers, 429), 7, 'the rest are locked out');
});

t.test('two instances on one database: bursts over the same keys in opposite orders share one count', async (t) => {
  const h = await buildTestApp(t, { env: { RATE_LIMIT_TOKEN_MAX: '40', RATE_LIMIT_WINDOW: '1m' } });
  // On PostgreSQL the sibling has its own pool, so its batches are statements of their own.
  const sibling = await buildSiblingApp(t, h, { RATE_LIMIT_TOKEN_MAX: '40', RATE_LIMIT_WINDOW: '1m' }, undefined, await anotherPool(t, h));
  const ips = Array.from({ length: 8 }, (_, i) => `192.0.2.${i + 1}`);
  const verify = (app: typeof h.app, ip: string) => app.inject({ method: 'POST', url: '/token/verify', payload: { token: 'x' }, remoteAddress: ip });
  // Each round, both instances hit every address at once, one in ascending and one in descending
  // order: batches that locked keys in arrival order could deadlock here.
  const answers = [];
  for (let round = 0; round < 6; round++) {
    answers.push(...(await Promise.all([...ips.map((ip) => verify(h.app, ip)), ...[...ips].reverse().map((ip) => verify(sibling, ip))])));
  }
  t.equal(answers.filter((r) => r.statusCode >= 500).length, 0, 'no statement failed');
  t.equal(answers.filter((r) => r.statusCode === 400).length, 96, 'every hit counted, none refused below the limit');
  const more = await Promise.all(ips.flatMap((ip) => [...Array(40 - 12 + 2)].map((_, i) => verify(i % 2 ? sibling : h.app, ip))));
  t.equal(more.filter((r) => r.statusCode === 400).length, 8 * 28, 'each address reaches its 40 exactly, across both instances');
  t.equal(more.filter((r) => r.statusCode === 429).length, 8 * 2, 'and the rest are refused');
});
