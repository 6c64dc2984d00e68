// Look-alike usernames (issue 7 item 12): default-ignorable (invisible) code points are refused,
// and a username whose UTS #39 confusable skeleton equals a taken one's is 409 `unique` — on
// register, on update-account and through the admin API, and under concurrency (a unique index on
// the stored skeleton decides, not a check-then-insert).
import { sql } from 'drizzle-orm';
import t from 'tap';
import { users } from '../src/db/schema.js';
import { usernameSkeleton } from '../src/lib/skeleton.js';
import { assertProblem, buildSiblingApp, buildTestApp, PASSWORD, post, registerUser, uniqueUser, verifiedUser } from './helpers.js';

const UNIQUE_USERNAME = { username: [{ message: 'A user with that username already exists.', code: 'unique' }] };

/** A registration body with that username (and a fresh email). */
const body = (username: string) => ({ email: uniqueUser().email, username, password1: PASSWORD, password2: PASSWORD });

t.test('look-alike usernames with default settings', async (t) => {
  const h = await buildTestApp(t, { env: { UPDATE_FIELDS: 'firstName,lastName,username', ADMIN_API_KEYS: `ops:${'k'.repeat(40)}` } });

  t.test('default-ignorable code points are refused in usernames (U+3164, U+115F, U+FFA0, …)', async (t) => {
    for (const [name, username] of [
      ['HANGUL FILLER after the name', 'eve\u3164'],
      ['HANGUL FILLER alone', '\u3164'],
      ['HANGUL CHOSEONG FILLER before the name', '\u115feve'],
      ['HANGUL JUNGSEONG FILLER inside', 'e\u1160ve'],
      ['HALFWIDTH HANGUL FILLER', 'eve\uffa0'],
      ['ZERO WIDTH SPACE', 'e\u200bve'],
      ['ZERO WIDTH JOINER', 'e\u200dve'],
      ['COMBINING GRAPHEME JOINER', 'e\u034fve'],
      ['a variation selector', 'eve\ufe0f'],
      ['SOFT HYPHEN', 'e\u00adve'],
    ]) {
      assertProblem(t, await post(h.app, '/register', body(username)), 'validation_failed', { label: name, fieldCodes: { username: 'invalid' } });
    }
  });

  t.test('a username whose confusable skeleton is taken is 409 unique (Cyrillic еve next to eve)', async (t) => {
    const pairs: [string, string, string][] = [
      ['eve', '\u0435ve', 'Cyrillic е for Latin e'],
      ['paypal', 'p\u0430yp\u0430l', 'Cyrillic а for Latin a'],
      ['scope', '\u0455\u0441\u043e\u0440\u0435', 'all Cyrillic'],
      ['Ian', 'lan', 'capital I and small L'],
      ['b0b', 'bob', 'digit zero and letter o'],
      ['modern', 'rnodern', 'm and rn'],
      ['alpha', '\u03b1lpha', 'Greek alpha'],
      ['nina', '\uff4e\uff49\uff4e\uff41', 'full-width forms (NFKC first)'],
    ];
    for (const [first, second, what] of pairs) {
      const a = `${first}${process.pid}`;
      const b = `${second}${process.pid}`;
      t.equal((await post(h.app, '/register', body(a))).status, 201, `${what}: ${a} registers`);
      assertProblem(t, await post(h.app, '/register', body(b)), 'unique', { label: `${what}: ${b}`, detail: 'A user with that username already exists.', errors: UNIQUE_USERNAME });
    }
    // Accents are not look-alikes: Ève is not Eve.
    t.equal((await post(h.app, '/register', body(`\u00c8ve${process.pid}`))).status, 201, 'È is its own letter');
  });

  t.test('logging in with a look-alike of a username is not logging in as it', async (t) => {
    const u = await registerUser(h.app, { username: `victor${process.pid}` });
    const res = await post(h.app, '/token', { username: `vict\u043er${process.pid}`, password: u.password });
    assertProblem(t, res, 'invalid_credentials');
  });

  t.test('update-account to a look-alike of another account is 409 unique; of its own name is allowed', async (t) => {
    const taken = `walter${process.pid}`;
    await registerUser(h.app, { username: taken });
    const u = await verifiedUser(h);
    assertProblem(t, await post(h.app, '/update-account', { username: `w\u0430lter${process.pid}` }, u.token), 'unique', {
      detail: 'A user with that username already exists.',
      errors: UNIQUE_USERNAME,
    });
    const own = u.username.replace('u', '\u0446').replace('e', '\u0435'); // still looks like their own
    t.equal((await post(h.app, '/update-account', { username: own }, u.token)).status, 200, 'a name that only looks like their own is theirs');
  });

  t.test('the admin API refuses look-alikes too', async (t) => {
    const key = 'k'.repeat(40);
    const create = (username: string) =>
      h.app.inject({ method: 'POST', url: '/admin/users', headers: { authorization: `Bearer ${key}` }, payload: { username, email: uniqueUser().email } });
    t.equal((await create(`oscar${process.pid}`)).statusCode, 201);
    const res = await create(`\u043esc\u0430r${process.pid}`);
    t.equal(res.statusCode, 409, 'admin create of a look-alike: 409');
    t.equal(res.json().code, 'unique');
  });

  t.test('concurrent registrations of look-alikes: exactly one wins (the unique index decides)', async (t) => {
    const id = String(process.pid);
    const variants = ['mallory', 'MALLORY', 'rnallory', 'ma11ory', 'm\u0430llory', 'mall\u043ery', 'Mallory', 'mallor\u0443'].map((v) => v + id);
    t.equal(new Set(variants.map(usernameSkeleton)).size, 1, 'eight spellings, one skeleton');
    const results = await Promise.all(variants.map((v) => post(h.app, '/register', body(v))));
    t.equal(results.filter((r) => r.status === 201).length, 1, `one 201 (${results.map((r) => r.status).join(',')})`);
    for (const r of results.filter((x) => x.status !== 201)) {
      assertProblem(t, r, 'unique', { label: 'a loser', detail: 'A user with that username already exists.', errors: UNIQUE_USERNAME });
    }
    const rows = await h.db.db.select({ username: users.username }).from(users).where(sql`${users.usernameSkeleton} = ${usernameSkeleton(variants[0])}`);
    t.equal(rows.length, 1, 'one account holds the skeleton');
  });

  t.test('accounts made before skeletons existed get theirs at start; an old look-alike pair is reported', async (t) => {
    const id = String(process.pid);
    // As an older version wrote them: no skeleton.
    await h.db.db.insert(users).values([
      { username: `trent${id}`, email: uniqueUser().email, dateJoined: new Date(Date.now() - 2000) },
      { username: `tr\u0435nt${id}`, email: uniqueUser().email, dateJoined: new Date(Date.now() - 1000) },
    ]);
    await buildSiblingApp(t, h); // its start runs the backfill
    const rows = await h.db.db
      .select({ username: users.username, skeleton: users.usernameSkeleton })
      .from(users)
      .where(sql`${users.username} in (${`trent${id}`}, ${`tr\u0435nt${id}`})`)
      .orderBy(users.dateJoined);
    t.equal(rows[0].skeleton, usernameSkeleton(`trent${id}`), 'the older account got its skeleton');
    t.equal(rows[1].skeleton, null, 'the later look-alike is left without (reported for renaming)');
    assertProblem(t, await post(h.app, '/register', body(`tr\u0435nt${id}`.toUpperCase())), 'unique', { label: 'a new look-alike', detail: 'A user with that username already exists.', errors: UNIQUE_USERNAME });
  });
});
