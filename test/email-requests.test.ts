// Email requests (issue 7 item 18, issue 9 item 4): /resend-activation-email and
// /send-password-reset-email write one request row — the same insert for every address — before
// answering 202 (503 when it cannot be written), and do nothing else on the request's path; the
// outbox worker resolves the row later. A paired, interleaved timing test shows that the request
// *following* one of these on the same connection takes the same time whether the address had an
// account or not.
import { Worker } from 'node:worker_threads';
import type { AddressInfo } from 'node:net';
import { eq, like } from 'drizzle-orm';
import t from 'tap';
import { outbox } from '../src/db/schema.js';
import { DEFAULT_WORKER } from '../src/outbox/worker.js';
import { assertProblem, buildSiblingApp, buildTestApp, outboxSettled, post, registerUser, uniqueUser, verifiedUser } from './helpers.js';

const RESET_SUBJECT = 'Reset your password';
const ACTIVATION_SUBJECT = 'Activate your account';

t.test('the 202 follows one durable request row, the same for every address; the worker resolves it later', async (t) => {
  // A worker that never polls on its own: the rows stay as the request left them until a sibling resolves them.
  const h = await buildTestApp(t, { outbox: { pollInterval: 3_600_000 } });
  const verified = await verifiedUser(h);
  const unverified = await registerUser(h.app);
  await h.mail.waitForSubject(unverified.email, ACTIVATION_SUBJECT);
  const ghost = uniqueUser('ghost').email;

  const requests: [string, string][] = [
    ['/send-password-reset-email', verified.email],
    ['/send-password-reset-email', unverified.email],
    ['/send-password-reset-email', ghost],
    ['/resend-activation-email', unverified.email],
    ['/resend-activation-email', verified.email],
    ['/resend-activation-email', ghost],
  ];
  for (const [url, email] of requests) {
    const res = await post(h.app, url, { email });
    t.equal(res.status, 202, `${url} ${email === ghost ? 'unknown' : 'known'}: 202`);
  }
  const rows = await h.db.db.select().from(outbox).where(like(outbox.kind, 'request:%')).orderBy(outbox.id);
  t.equal(rows.length, requests.length, 'one request row per request, written before the answer');
  const shape = (r: (typeof rows)[number]) => ({ ...r, id: 0, recipient: '', createdAt: 0, nextAttemptAt: 0 });
  for (const r of rows) {
    t.same(shape(r), shape(rows[r.kind === rows[0].kind ? 0 : 3]), `row ${r.id}: the same insert whatever the address (${r.kind})`);
    t.equal(r.status, 'pending');
    t.equal(r.userId, null, 'no account is looked up before the answer');
  }
  t.same(rows.map((r) => r.recipient), requests.map(([, email]) => email), 'the address as given');
  t.equal((await h.db.db.select().from(outbox).where(eq(outbox.kind, 'password_reset'))).length, 0, 'no email was made on the request path');

  // Another instance's worker resolves them: looked up, token made, email queued and sent.
  await buildSiblingApp(t, h);
  t.ok(await h.mail.waitForSubject(verified.email, RESET_SUBJECT), 'verified account: a reset link');
  await h.mail.waitForSubject(unverified.email, ACTIVATION_SUBJECT, 3); // register, reset (unverified → activation), resend
  const resolved = await h.db.db.select().from(outbox).where(like(outbox.kind, 'request:%'));
  t.ok(resolved.every((r) => r.status === 'sent' && r.recipient === ''), 'every request resolved once, its address blanked');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(h.mail.to(verified.email, ACTIVATION_SUBJECT).length, 1, 'a verified account gets no activation email from resend');
  t.equal(h.mail.to(verified.email, RESET_SUBJECT).length, 1, 'exactly one reset email');
  t.equal(h.mail.to(ghost).length, 0, 'an unknown address gets nothing');
});

t.test('when the request cannot be written the answer is 503, never 202 (issue 9 item 4)', async (t) => {
  const h = await buildTestApp(t);
  const u = await verifiedUser(h);
  await h.db.close(); // the database goes away
  for (const url of ['/send-password-reset-email', '/resend-activation-email']) {
    for (const email of [u.email, uniqueUser('ghost').email]) {
      assertProblem(t, await post(h.app, url, { email }), 'service_unavailable', { label: url, detail: /./ });
    }
  }
});

// --- The paired, interleaved timing test -------------------------------------------------------

// A client on its own thread, over one kept-alive connection: for each probe, the request under
// test, then GET /health timed. What a client outside sees, and the server's thread is not the
// client's.
const CLIENT = `
const { parentPort } = require('node:worker_threads');
parentPort.once('message', async ({ base, url, probes }) => {
  const following = [];
  const t0 = performance.now();
  let i = 0;
  try {
  for (const email of probes) {
    i++;
    const r = await fetch(base + url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }) });
    await r.arrayBuffer();
    if (r.status !== 202) throw new Error('status ' + r.status);
    const start = performance.now();
    const h = await fetch(base + '/health');
    await h.arrayBuffer();
    following.push(performance.now() - start);
  }
  } catch (err) {
    throw new Error('probe ' + i + ' at ' + Math.round(performance.now() - t0) + ' ms: ' + err.message + ' ' + (err.cause && err.cause.code));
  }
  parentPort.postMessage(following);
});
`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * A paired sign-flip permutation test on the median of the within-pair differences: the share of
 * random sign flips of the pairs whose |median| is at least the observed one. Under "the same
 * work", each pair's difference is as likely positive as negative (the order within a pair is
 * random), so p is uniform; a real difference makes it tiny.
 */
function signFlipP(diffs: number[], rounds = 4_000): number {
  const observed = Math.abs(median(diffs));
  let atLeast = 0;
  for (let i = 0; i < rounds; i++) {
    if (Math.abs(median(diffs.map((d) => (Math.random() < 0.5 ? -d : d)))) >= observed) atLeast++;
  }
  return atLeast / rounds;
}

// Within noise: a median paired difference below NOISE_MS whatever its significance, or one that
// random sign flips reach easily (p > P_MIN). Failing needs both a difference above a quarter of a
// millisecond and a systematic one, which load on a shared machine does not make (it falls on both
// members of a pair alike). Before this change the request after a known address was slower by
// 1.4–2.7 ms on PGlite, every time: that fails. (PostgreSQL's 0.15 ms was below the bound.)
const NOISE_MS = 0.25;
const P_MIN = 0.001;

t.test('the request after resend/reset takes the same time for a known and an unknown address (paired, interleaved)', async (t) => {
  // The production poll interval: the worker resolves requests on its own schedule.
  const h = await buildTestApp(t, { outbox: { pollInterval: DEFAULT_WORKER.pollInterval } });
  const verified = await verifiedUser(h);
  const unverified = await registerUser(h.app);
  await outboxSettled(h, 20_000);
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = h.app.server.address() as AddressInfo;

  const cases: [string, string][] = [
    ['/send-password-reset-email', verified.email], // gets a reset link
    ['/resend-activation-email', unverified.email], // gets an activation link
  ];
  for (const [url, known] of cases) {
    const unknown = `${'g'.repeat(known.indexOf('@'))}${known.slice(known.indexOf('@'))}`; // the same length
    // Pairs in random order, so that drift of the machine's load falls on both sides alike.
    const probes: string[] = [];
    const labels: boolean[] = [];
    for (let i = 0; i < 100; i++) {
      const knownFirst = Math.random() < 0.5;
      probes.push(knownFirst ? known : unknown, knownFirst ? unknown : known);
      labels.push(knownFirst, !knownFirst);
    }
    const client = new Worker(CLIENT, { eval: true });
    const following = await new Promise<number[]>((resolve, reject) => {
      client.once('message', resolve);
      client.once('error', reject);
      client.postMessage({ base: `http://127.0.0.1:${port}`, url, probes: [known, unknown, ...probes] });
    });
    await client.terminate();
    const measured = following.slice(2); // the first two warm up
    // Pair i is probes 2i and 2i+1 (random order within it): its difference, after known − after unknown.
    const diffs: number[] = [];
    for (let i = 0; i < labels.length; i += 2) diffs.push(labels[i] ? measured[i] - measured[i + 1] : measured[i + 1] - measured[i]);
    const afterKnown = measured.filter((_, i) => labels[i]);
    const afterUnknown = measured.filter((_, i) => !labels[i]);
    const diff = median(diffs);
    const p = signFlipP(diffs);
    t.ok(
      Math.abs(diff) < NOISE_MS || p > P_MIN,
      `${url}: median after known ${median(afterKnown).toFixed(3)} ms, after unknown ${median(afterUnknown).toFixed(3)} ms; ` +
        `median paired difference ${diff.toFixed(3)} ms (sign-flip p = ${p.toFixed(3)}, ${diffs.length} pairs)`,
    );
  }
  // And the requests were honoured, by the worker's own poll.
  t.ok(await h.mail.waitForSubject(verified.email, RESET_SUBJECT, 1, 30_000), 'the known address got its reset email');
});
