import t from 'tap';
import { buildTestApp, get, post, registerUser, tokenIn } from './helpers.js';

t.test('harness: register, read the activation email over SMTP, verify', async (t) => {
  const h = await buildTestApp(t);
  const reg = await registerUser(h.app);
  const mail = await h.mail.waitFor(reg.email);
  t.equal(mail.subject, 'Activate your account');
  const res = await post(h.app, '/verify-account', { token: tokenIn(mail) });
  t.equal(res.status, 204);
  const me = await get(h.app, '/me', reg.token);
  t.equal(me.body.user.verified, true);
});
