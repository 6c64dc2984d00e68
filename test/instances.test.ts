// Three instances of the real service on one PostgreSQL (a throwaway cluster), a slow SMTP server
// and a lease shorter than one message: every email is sent exactly once (issue 9 item 5's double
// sends came from a batch outliving its lease).
import t from 'tap';
import { PASSWORD, smtpSink, uniqueUser } from './helpers.js';
import { canRunCluster, startCluster } from './pg-cluster.js';
import { call, startServer, stopServer } from './process.js';

t.test('three instances, 9 s a message, an 8 s lease: no email is sent twice', { skip: !canRunCluster && 'needs PostgreSQL 15 binaries and root' }, async (t) => {
  const cluster = await startCluster(t);
  const mail = await smtpSink(t, { delay: () => 9_000 });
  const env = { DATABASE_URL: cluster.url, SMTP_URL: mail.url, OUTBOX_LEASE: '8s', OUTBOX_CONCURRENCY: '3' };
  const instances = await Promise.all([startServer(t, env), startServer(t, env), startServer(t, env)]);
  const people = Array.from({ length: 15 }, () => uniqueUser('multi'));
  const answers = await Promise.all(
    people.map((p, i) => call(instances[i % 3].url, 'POST', '/register', { ...p, password1: PASSWORD, password2: PASSWORD })),
  );
  t.same(answers.map((a) => a.status), people.map(() => 201));
  for (const p of people) await mail.waitFor(p.email, 1, 60_000);
  // A duplicate would be claimed once a lease ran out (8 s) and take another 9 s to arrive.
  await new Promise((r) => setTimeout(r, 12_000));
  for (const p of people) t.equal(mail.to(p.email).length, 1, `${p.username}: exactly one email`);
  t.equal(mail.started, people.length, 'the SMTP server was handed each message once');
  const sent = cluster.psql("select count(*) from email_outbox where status = 'sent' and attempts = 1").trim();
  t.equal(sent, String(people.length), 'each row sent at its first attempt');
  for (const s of instances) t.equal(await stopServer(s), 0);
});
