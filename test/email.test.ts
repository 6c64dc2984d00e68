// Emails end to end: written to the outbox with the change that causes them, sent after commit
// to a real SMTP server, retried, failed for good, never sent twice, never holding a token in
// clear longer than needed.
import { createHash } from 'node:crypto';
import { eq, inArray } from 'drizzle-orm';
import type { ParsedMail } from 'mailparser';
import t from 'tap';
import { emailTokens, outbox, users } from '../src/db/schema.js';
import { buildSiblingApp, buildTestApp, get, PASSWORD, post, recipientOf, registerUser, sleep, smtpSink, type TestApp, tokenIn, uniqueUser } from './helpers.js';

const fromOf = (m: ParsedMail) => m.from?.value[0]?.address;

const outboxRows = (h: TestApp, recipient: string) => h.db.db.select().from(outbox).where(eq(outbox.recipient, recipient)).orderBy(outbox.id);

/** Polls until `check` returns a value, or fails the test after `timeoutMs`. */
async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// =============================================================================================
t.test('emails with default settings', async (t) => {
  const h = await buildTestApp(t);

  t.test('the activation email: text and HTML parts, to the registered address, ACTIVATION_URL link; its token verifies', async (t) => {
    const reg = await registerUser(h.app);
    const mail = await h.mail.waitFor(reg.email);
    t.equal(recipientOf(mail), reg.email, 'to the registered address');
    t.equal(fromOf(mail), 'no-reply@localhost', 'from EMAIL_FROM (default)');
    t.equal(mail.subject, 'Activate your account');
    t.ok(mail.text && mail.text.length > 0, 'a text part');
    t.ok(typeof mail.html === 'string' && mail.html.length > 0, 'an HTML part');
    const token = tokenIn(mail);
    t.match(token, /^[A-Za-z0-9_-]{43,}$/, 'base64url, at least 256 bits');
    const link = `https://app.example.com/activate/${token}`;
    t.ok(mail.text!.includes(link), 'the text part carries FRONTEND_URL/activate/{token}');
    t.ok((mail.html as string).includes(`href="${link}"`), 'the HTML part links to the same URL');
    t.notOk(token.includes(reg.username) || token.includes(reg.email), 'nothing personal in the token');

    const res = await post(h.app, '/verify-account', { token });
    t.equal(res.status, 204);
    // Verification ended the registration's session (account pre-hijacking): log in again.
    t.equal((await get(h.app, '/me', (await post(h.app, '/token', { email: reg.email, password: PASSWORD })).body.token)).body.user.verified, true);
  });

  t.test('a registration that fails with 409 unique leaves no outbox row (email and account share a transaction)', async (t) => {
    const reg = await registerUser(h.app);
    await h.mail.waitFor(reg.email);
    const before = await h.db.db.select().from(outbox);

    // Same email, new username: nothing new for that address.
    const sameEmail = await post(h.app, '/register', { email: reg.email.toUpperCase(), username: uniqueUser().username, password1: PASSWORD, password2: PASSWORD });
    t.equal(sameEmail.status, 409);
    t.equal(sameEmail.body.code, 'unique');
    // Same username, new email: no row, no email for the new address.
    const other = uniqueUser().email;
    const sameName = await post(h.app, '/register', { email: other, username: reg.username, password1: PASSWORD, password2: PASSWORD });
    t.equal(sameName.status, 409);
    t.equal(sameName.body.code, 'unique');

    const after = await h.db.db.select().from(outbox);
    t.equal(after.length, before.length, 'no outbox row was added');
    t.equal((await outboxRows(h, other)).length, 0, 'nothing queued for the refused address');
    t.equal((await h.db.db.select().from(users).where(eq(users.email, other))).length, 0, 'no account');
    await sleep(400);
    t.equal(h.mail.to(other).length, 0, 'no email to the refused address');
    t.equal(h.mail.to(reg.email).length, 1, 'the existing account got no second email');
  });

  t.test('five concurrent registrations: each address gets exactly one activation email', async (t) => {
    const people = Array.from({ length: 5 }, () => uniqueUser());
    const results = await Promise.all(people.map((p) => post(h.app, '/register', { ...p, password1: PASSWORD, password2: PASSWORD })));
    t.same(results.map((r) => r.status), [201, 201, 201, 201, 201]);
    for (const p of people) await h.mail.waitFor(p.email);
    await sleep(500);
    for (const p of people) t.equal(h.mail.to(p.email).length, 1, `one email to ${p.email}`);
    const rows = await h.db.db.select().from(outbox).where(inArray(outbox.recipient, people.map((p) => p.email)));
    t.equal(rows.length, 5, 'five outbox rows');
    await until('the rows to be marked sent', async () => {
      const now = await h.db.db.select().from(outbox).where(inArray(outbox.recipient, people.map((p) => p.email)));
      return now.every((r) => r.status === 'sent');
    });
    const sent = await h.db.db.select().from(outbox).where(inArray(outbox.recipient, people.map((p) => p.email)));
    t.same(sent.map((r) => r.attempts), [1, 1, 1, 1, 1], 'each sent on its first attempt');
  });

  t.test('two instances on one database send each email exactly once', async (t) => {
    const second = await buildSiblingApp(t, h, {}, { pollInterval: 10 });
    const people = Array.from({ length: 6 }, () => uniqueUser());
    // Half through each instance, all at once: both workers race for the same rows.
    const results = await Promise.all(
      people.map((p, i) => post(i % 2 ? second : h.app, '/register', { ...p, password1: PASSWORD, password2: PASSWORD })),
    );
    t.same(results.map((r) => r.status), people.map(() => 201));
    for (const p of people) await h.mail.waitFor(p.email);
    await sleep(500);
    for (const p of people) t.equal(h.mail.to(p.email).length, 1, `one email to ${p.email}`);
  });

  t.test('no email token is stored in clear: only its SHA-256', async (t) => {
    const reg = await registerUser(h.app);
    const token = tokenIn(await h.mail.waitFor(reg.email));
    const rows = await h.db.db.select().from(emailTokens).where(eq(emailTokens.userId, reg.user.id));
    t.equal(rows.length, 1, 'one token for the account');
    t.notOk(JSON.stringify(rows).includes(token), 'the token appears in no column');
    const digest = createHash('sha256').update(token).digest();
    t.ok([digest.toString('hex'), digest.toString('base64url'), digest.toString('base64')].includes(rows[0].tokenHash), 'the stored value is the SHA-256 of the token');
    t.equal(rows[0].purpose, 'activation');
    // Once sent, the outbox keeps no copy of the link either.
    const sent = await until('the row to be marked sent', async () => {
      const [row] = await outboxRows(h, reg.email);
      return row?.status === 'sent' ? row : undefined;
    });
    t.notOk(JSON.stringify(sent).includes(token), 'the sent outbox row holds no token');
    const all = await h.db.db.select().from(outbox);
    t.notOk(JSON.stringify(all).includes(token), 'no outbox row holds the token');
  });
});

// =============================================================================================
t.test('ACTIVATION_URL and EMAIL_FROM are honoured', async (t) => {
  const h = await buildTestApp(t, { env: { ACTIVATION_URL: 'https://auth.example.org/confirm?token={token}', EMAIL_FROM: 'accounts@example.org' } });
  const reg = await registerUser(h.app);
  const mail = await h.mail.waitFor(reg.email);
  t.equal(fromOf(mail), 'accounts@example.org');
  const m = /https:\/\/auth\.example\.org\/confirm\?token=([A-Za-z0-9_-]{43,})/.exec(mail.text ?? '');
  t.ok(m, 'the link follows ACTIVATION_URL');
  t.ok((mail.html as string).includes(`https://auth.example.org/confirm?token=${m![1]}`), 'in the HTML part too');
  t.notOk((mail.text ?? '').includes('https://app.example.com/activate/'), 'not the default link');
  t.equal((await post(h.app, '/verify-account', { token: m![1] })).status, 204);
});

// =============================================================================================
t.test('SMTP down: register answers at once, the email is retried and arrives when the server is back', async (t) => {
  const h = await buildTestApp(t);
  await h.mail.stop();
  const user = uniqueUser();
  const started = Date.now();
  const res = await post(h.app, '/register', { ...user, password1: PASSWORD, password2: PASSWORD });
  const took = Date.now() - started;
  t.equal(res.status, 201, 'the registration succeeds');
  t.ok(took < 2_000, `the answer does not wait for the mail server (${took} ms)`);

  const retrying = await until('the outbox to retry', async () => {
    const [row] = await outboxRows(h, user.email);
    return row && row.attempts >= 2 ? row : undefined;
  });
  t.equal(retrying.status, 'pending', 'still pending while the server is down');
  t.ok(retrying.lastError, 'the failure is recorded');
  t.equal(h.mail.to(user.email).length, 0);

  await h.mail.start();
  const mail = await h.mail.waitFor(user.email);
  t.equal(mail.subject, 'Activate your account');
  const row = await until('the row to be marked sent', async () => {
    const [r] = await outboxRows(h, user.email);
    return r?.status === 'sent' ? r : undefined;
  });
  t.equal(row.text, '', 'text body blanked once sent');
  t.equal(row.html, '', 'HTML body blanked once sent');
  t.ok(row.sentAt, 'sentAt set');
  t.ok(row.attempts >= 2, `sent after retries (${row.attempts} attempts)`);
  await sleep(300);
  t.equal(h.mail.to(user.email).length, 1, 'delivered once');
  t.equal((await post(h.app, '/verify-account', { token: tokenIn(mail) })).status, 204, 'the delayed token verifies');
});

// =============================================================================================
t.test('SMTP errors: 5xx fails for good, 4xx is retried (maxAttempts 4)', async (t) => {
  const busy = new Set<string>();
  const smtp = await smtpSink(t, {
    reply: (address) => {
      if (address.startsWith('perm')) return 550;
      if (address.startsWith('forever')) return 451;
      if (busy.has(address.toLowerCase())) return 451;
      return undefined;
    },
  });
  const h = await buildTestApp(t, { env: { SMTP_URL: smtp.url }, outbox: { maxAttempts: 4 } });

  t.test('a permanent failure (550) marks the row failed without retrying', async (t) => {
    const user = uniqueUser('perm');
    const res = await post(h.app, '/register', { ...user, password1: PASSWORD, password2: PASSWORD });
    t.equal(res.status, 201, 'the registration does not depend on the mail server');
    const row = await until('the row to fail', async () => {
      const [r] = await outboxRows(h, user.email);
      return r?.status === 'failed' ? r : undefined;
    });
    t.equal(row.attempts, 1, 'one attempt only');
    t.match(row.lastError ?? '', /550|no such user/, 'the error is recorded');
    await sleep(500);
    const [later] = await outboxRows(h, user.email);
    t.equal(later.status, 'failed');
    t.equal(later.attempts, 1, 'no retries afterwards');
    t.equal(smtp.to(user.email).length, 0);
  });

  t.test('a temporary failure (451) is retried, then delivered once the server accepts', async (t) => {
    const user = uniqueUser('busy');
    busy.add(user.email.toLowerCase());
    t.equal((await post(h.app, '/register', { ...user, password1: PASSWORD, password2: PASSWORD })).status, 201);
    const retried = await until('a retry', async () => {
      const [r] = await outboxRows(h, user.email);
      return r && r.attempts >= 2 ? r : undefined;
    });
    t.equal(retried.status, 'pending', 'still pending: it will be tried again');
    t.match(retried.lastError ?? '', /451|busy/, 'the error is recorded');
    busy.delete(user.email.toLowerCase());
    const sent = await until('delivery', async () => {
      const [r] = await outboxRows(h, user.email);
      return r?.status === 'sent' ? r : undefined;
    });
    t.ok(sent.attempts >= 2, `attempts grew (${sent.attempts})`);
    t.equal(smtp.to(user.email).length, 1, 'delivered once');
    t.equal(sent.text, '');
    t.equal(sent.html, '');
  });

  t.test('a temporary failure that never ends is failed after a bounded number of attempts', async (t) => {
    const user = uniqueUser('forever');
    t.equal((await post(h.app, '/register', { ...user, password1: PASSWORD, password2: PASSWORD })).status, 201);
    const row = await until('the row to fail', async () => {
      const [r] = await outboxRows(h, user.email);
      return r?.status === 'failed' ? r : undefined;
    });
    t.equal(row.attempts, 4, 'stopped at maxAttempts');
    await sleep(500);
    const [later] = await outboxRows(h, user.email);
    t.equal(later.attempts, 4, 'no attempt after failing');
    t.equal(smtp.to(user.email).length, 0);
  });
});
