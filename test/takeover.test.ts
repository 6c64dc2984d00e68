// Account takeover (issue 7 items 1-3, 7): an email change needs the password and a token mailed to
// the new address; verification ends the sessions a pre-hijacker opened; archive and deactivation
// kill unused email links; mail to an unproven address carries nothing its registrant chose.
import { and, eq, isNull } from 'drizzle-orm';
import t from 'tap';
import { emailTokens, outbox } from '../src/db/schema.js';
import { displayName } from '../src/mail/templates.js';
import {
  assertProblem,
  buildSiblingApp,
  buildTestApp,
  get,
  outboxSettled,
  PASSWORD,
  post,
  type TestApp,
  tokenIn,
  uniqueUser,
  userRow,
  verifiedUser,
} from './helpers.js';

const CONFIRM_SUBJECT = 'Confirm your new email address';
const REQUESTED_SUBJECT = 'Your email address is being changed';
const CHANGED_SUBJECT = 'Your email address was changed';

const resetToken = async (h: TestApp, email: string, n: number) => {
  const res = await post(h.app, '/send-password-reset-email', { email });
  if (res.status !== 202) throw new Error(`send-password-reset-email: ${res.status}`);
  await h.app.backgroundIdle();
  return tokenIn(await h.mail.waitForSubject(email, 'Reset your password', n));
};

t.test('email change (UPDATE_FIELDS with email)', async (t) => {
  const h = await buildTestApp(t, { env: { UPDATE_FIELDS: 'firstName,lastName,email', REGISTER_FIELDS: 'email,username,firstName' } });
  const member = () => verifiedUser(h, { firstName: 'Sam' });

  await t.test('a stolen access token alone cannot change the email: the current password is required', async (t) => {
    const u = await member();
    const target = uniqueUser('attacker').email;
    assertProblem(t, await post(h.app, '/update-account', { email: target }, u.token), 'validation_failed', {
      errors: { password: [{ message: 'The current password is required to change the email address.', code: 'required' }] },
    });
    assertProblem(t, await post(h.app, '/update-account', { email: target, password: 'not the password' }, u.token), 'invalid_password', {
      errors: { password: [{ message: 'Invalid password.', code: 'invalid_password' }] },
    });
    const row = await userRow(h, u.user.id);
    t.equal(row.email, u.email, 'the address is unchanged');
    await outboxSettled(h);
    t.equal(h.mail.to(target).length, 0, 'nothing was sent to the new address');
  });

  await t.test('the new address is pending until its token comes back; the old one is told, then told again', async (t) => {
    const u = await verifiedUser(h, { firstName: 'Nina' });
    const newEmail = uniqueUser('nina').email;
    const res = await post(h.app, '/update-account', { email: newEmail, password: PASSWORD, firstName: 'Nina B.' }, u.token);
    t.equal(res.status, 200, res.raw);
    t.match(res.body.user, { email: u.email, verified: true, firstName: 'Nina B.' }, 'the account keeps its address and stays verified; other fields apply');
    t.match(await userRow(h, u.user.id), { email: u.email, verified: true });
    t.equal((await post(h.app, '/token', { email: u.email, password: PASSWORD })).status, 200, 'the old address still logs in');

    const confirm = await h.mail.waitForSubject(newEmail, CONFIRM_SUBJECT);
    t.notMatch(confirm.text, /Nina/, 'the mail to the unproven new address carries no name');
    const notice = await h.mail.waitForSubject(u.email, REQUESTED_SUBJECT);
    const masked = `${newEmail[0]}***@${newEmail.split('@')[1]}`;
    t.ok(notice.text!.replaceAll('\u200b', '').includes(masked), `the old address is told the masked new one (${masked})`);
    t.match(notice.text, /If this was not you/);
    t.notOk(notice.text!.includes(newEmail), 'not the full new address');

    t.equal((await post(h.app, '/confirm-email-change', { token: tokenIn(confirm) })).status, 204);
    const row = await userRow(h, u.user.id);
    t.match(row, { email: newEmail, verified: true }, 'moved, and verified: the new inbox is proven');
    t.equal((await post(h.app, '/token', { email: newEmail, password: PASSWORD })).status, 200, 'logs in with the new address');
    assertProblem(t, await post(h.app, '/token', { email: u.email, password: PASSWORD }), 'invalid_credentials');
    const changed = await h.mail.waitForSubject(u.email, CHANGED_SUBJECT);
    t.ok(changed.text!.replaceAll('\u200b', '').includes(masked), 'the old address is told when it takes effect');
    assertProblem(t, await post(h.app, '/confirm-email-change', { token: tokenIn(confirm) }), 'invalid_token', { label: 'the token works once' });
  });

  await t.test('links mailed to the old address die when the change takes effect; a password change cancels a pending change', async (t) => {
    const u = await member();
    const oldReset = await resetToken(h, u.email, 1);
    const first = uniqueUser('first').email;
    t.equal((await post(h.app, '/update-account', { email: first, password: PASSWORD }, u.token)).status, 200);
    const firstToken = tokenIn(await h.mail.waitForSubject(first, CONFIRM_SUBJECT));
    t.equal((await post(h.app, '/confirm-email-change', { token: firstToken })).status, 204);
    assertProblem(t, await post(h.app, '/password-reset', { token: oldReset, newPassword1: 'an old link in a mailbox', newPassword2: 'an old link in a mailbox' }), 'invalid_token');

    const second = uniqueUser('second').email;
    const login = await post(h.app, '/token', { email: first, password: PASSWORD });
    t.equal((await post(h.app, '/update-account', { email: second, password: PASSWORD }, login.body.token)).status, 200);
    const secondToken = tokenIn(await h.mail.waitForSubject(second, CONFIRM_SUBJECT));
    const change = await post(h.app, '/password-change', { oldPassword: PASSWORD, newPassword1: 'the owner took it back', newPassword2: 'the owner took it back' }, login.body.token);
    t.equal(change.status, 200);
    assertProblem(t, await post(h.app, '/confirm-email-change', { token: secondToken }), 'invalid_token', { label: 'cancelled by the password change' });
    t.equal((await userRow(h, u.user.id)).email, first);
  });

  await t.test('a taken new address answers exactly as a free one, and its owner gets nothing', async (t) => {
    const owner = await member();
    const u = await member();
    const free = uniqueUser('free').email;
    const taken = await post(h.app, '/update-account', { email: owner.email.toUpperCase(), password: PASSWORD }, u.token);
    const freeRes = await post(h.app, '/update-account', { email: free, password: PASSWORD }, u.token);
    t.equal(taken.status, 200);
    t.strictSame(taken.body, freeRes.body, 'the same body for a taken and a free address');
    await outboxSettled(h);
    t.strictSame(h.mail.to(owner.email).map((m) => m.subject), ['Activate your account'], 'the taken address got nothing new');
    t.equal(h.mail.to(u.email, REQUESTED_SUBJECT).length, 2, 'the requester’s own address is told both times');
    t.equal((await userRow(h, owner.user.id)).email, owner.email);
  });

  await t.test('concurrent changes: the last confirmed wins; two accounts confirming one address, one wins', async (t) => {
    const u = await member();
    const [a, b] = [uniqueUser('a').email, uniqueUser('b').email];
    for (const email of [a, b]) t.equal((await post(h.app, '/update-account', { email, password: PASSWORD }, u.token)).status, 200);
    const tokenA = tokenIn(await h.mail.waitForSubject(a, CONFIRM_SUBJECT));
    const tokenB = tokenIn(await h.mail.waitForSubject(b, CONFIRM_SUBJECT));
    t.equal((await post(h.app, '/confirm-email-change', { token: tokenB })).status, 204);
    t.equal((await post(h.app, '/confirm-email-change', { token: tokenA })).status, 204);
    t.equal((await userRow(h, u.user.id)).email, a, 'the last confirmed (a) wins');

    // Two accounts ask for one free address; both confirm at once: exactly one gets it.
    const x = await member();
    const y = await member();
    const contested = uniqueUser('contested').email;
    for (const v of [x, y]) t.equal((await post(h.app, '/update-account', { email: contested, password: PASSWORD }, v.token)).status, 200);
    await outboxSettled(h);
    const tokens = h.mail.to(contested, CONFIRM_SUBJECT).map(tokenIn);
    t.equal(tokens.length, 2);
    const results = await Promise.all(tokens.map((token) => post(h.app, '/confirm-email-change', { token })));
    t.strictSame(results.map((r) => r.status).sort(), [204, 409], 'one 204, one 409');
    assertProblem(t, results.find((r) => r.status === 409)!, 'unique', { detail: 'A user with that email already exists.', fields: ['email'] });
    const owners = [await userRow(h, x.user.id), await userRow(h, y.user.id)].filter((r) => r.email === contested);
    t.equal(owners.length, 1, 'exactly one account has the address');
  });

  await t.test('an unknown or forged token is invalid_token', async (t) => {
    assertProblem(t, await post(h.app, '/confirm-email-change', { token: 'x'.repeat(43) }), 'invalid_token');
  });
});

t.test('account pre-hijacking: verification ends every earlier session', async (t) => {
  for (const allow of ['true', 'false']) {
    await t.test(`ALLOW_LOGIN_NOT_VERIFIED=${allow}`, async (t) => {
      const h = await buildTestApp(t, { env: { ALLOW_LOGIN_NOT_VERIFIED: allow } });
      // The attacker registers the victim's address with a password of their choosing and logs in
      // (through an instance that lets unverified accounts in, when this one does not).
      const attackerSide = allow === 'true' ? h.app : await buildSiblingApp(t, h, { ALLOW_LOGIN_NOT_VERIFIED: 'true' });
      const victim = uniqueUser('victim');
      const reg = await post(attackerSide, '/register', { ...victim, password1: PASSWORD, password2: PASSWORD });
      t.equal(reg.status, 201);
      const login = await post(attackerSide, '/token', { email: victim.email, password: PASSWORD });
      t.equal(login.status, 200);
      t.equal((await get(h.app, '/me', login.body.token)).status, 200, 'the attacker is in');

      const activation = await h.mail.waitForSubject(victim.email, 'Activate your account');
      t.match(activation.text, /If you did not create this account/, 'the activation email tells the reader how to take the account over');
      t.match(activation.text, /Forgot password/);
      t.equal((await post(h.app, '/verify-account', { token: tokenIn(activation) })).status, 204, 'the victim verifies');

      assertProblem(t, await get(h.app, '/me', login.body.token), 'unauthenticated', { label: 'the access token is dead' });
      assertProblem(t, await post(h.app, '/token/verify', { token: login.body.token }), 'invalid_token');
      assertProblem(t, await post(h.app, '/token/refresh', { refreshToken: login.body.refreshToken }), 'invalid_token', { label: 'the refresh token is dead' });
      if (reg.body.token) assertProblem(t, await get(h.app, '/me', reg.body.token), 'unauthenticated', { label: 'the registration token is dead' });
    });
  }
});

t.test('archive and deactivation kill every unused email token', async (t) => {
  const h = await buildTestApp(t);

  await t.test('an archived account’s reset link no longer works, not even after it is un-archived', async (t) => {
    const u = await verifiedUser(h);
    const token = await resetToken(h, u.email, 1);
    t.equal((await post(h.app, '/archive-account', { password: PASSWORD }, u.token)).status, 204);
    assertProblem(t, await post(h.app, '/password-reset', { token, newPassword1: 'stolen from a mailbox', newPassword2: 'stolen from a mailbox' }), 'invalid_token');
    const back = await post(h.app, '/token', { email: u.email, password: PASSWORD });
    t.equal(back.body.unarchiving, true, 'the owner un-archives by logging in');
    assertProblem(t, await post(h.app, '/password-reset', { token, newPassword1: 'stolen from a mailbox', newPassword2: 'stolen from a mailbox' }), 'invalid_token', { label: 'still dead' });
    t.equal((await post(h.app, '/token', { email: u.email, password: PASSWORD })).status, 200, 'the password is unchanged');
  });

  await t.test('deactivation (ALLOW_DELETE_ACCOUNT=false) marks every unused token used', async (t) => {
    const u = await verifiedUser(h);
    await resetToken(h, u.email, 1);
    t.equal((await post(h.app, '/delete-account', { password: PASSWORD }, u.token)).status, 204);
    const live = await h.db.db.select().from(emailTokens).where(and(eq(emailTokens.userId, u.user.id), isNull(emailTokens.usedAt)));
    t.equal(live.length, 0, 'no live token left');
  });
});

t.test('no registrant-chosen text in mail to an unproven address; names inert later', async (t) => {
  const h = await buildTestApp(t, { env: { REGISTER_FIELDS: 'email,username,firstName' } });
  const lure = 'www.evil-unlock.test';

  await t.test('the activation email carries neither the firstName nor the username', async (t) => {
    const u = uniqueUser('www.evil-unlock.test.');
    t.equal((await post(h.app, '/register', { ...u, firstName: `Visit ${lure} <b>now</b>`, password1: PASSWORD, password2: PASSWORD })).status, 201);
    const mail = await h.mail.waitFor(u.email);
    for (const part of [mail.text!, String(mail.html)]) {
      t.notOk(part.includes('evil-unlock'), 'no registrant-chosen text');
    }
    // The reset request of an unverified account sends the activation email again: no name either.
    await post(h.app, '/send-password-reset-email', { email: u.email });
    await h.app.backgroundIdle();
    const again = await h.mail.waitFor(u.email, 2);
    t.notOk(again.text!.includes('evil-unlock'), 'nor in the activation email sent for a reset request');
  });

  await t.test('once the address is proven, names are escaped text that no mail client can link', async (t) => {
    const u = await verifiedUser(h, { firstName: `${lure} <script>` });
    await resetToken(h, u.email, 1);
    await outboxSettled(h);
    const [row] = await h.db.db.select().from(outbox).where(and(eq(outbox.userId, u.user.id), eq(outbox.kind, 'password_reset')));
    const mail = h.mail.to(u.email, 'Reset your password')[0];
    t.ok(mail.text!.includes(displayName(`${lure} <script>`)!), 'the name is there, broken up');
    t.notOk(/www\.evil/.test(mail.text!) || /evil-unlock\.test/.test(mail.text!), 'no linkable host name in the text part');
    t.notOk(/<script>/.test(String(mail.html)), 'HTML-escaped');
    t.notOk(/evil-unlock\.test/.test(String(mail.html)), 'no linkable host name in the HTML part');
    t.ok(row, 'an outbox row of kind password_reset');
  });
});
