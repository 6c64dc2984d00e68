// lib/turn-batch.ts on its own, with a `send` the test answers by hand: which calls go together,
// and when. (test/batching.test.ts checks the answers of the batched statements over HTTP.)
import t from 'tap';
import { turnBatcher } from '../src/lib/turn-batch.js';

const nextTurn = () => new Promise((r) => setImmediate(r));

/** A `send` that records each batch and leaves it out until the test answers it. */
function handSend() {
  const batches: { inputs: number[]; answer(): void; fail(err: Error): void }[] = [];
  const send = (inputs: number[]) =>
    new Promise<number[]>((resolve, reject) => {
      batches.push({ inputs, answer: () => resolve(inputs.map((n) => n * 10)), fail: reject });
    });
  return { batches, send };
}

t.test('the calls of one turn are one batch; each gets its own result', async (t) => {
  const { batches, send } = handSend();
  const call = turnBatcher(send);
  const results = Promise.all([call(1), call(2), call(3)]);
  t.equal(batches.length, 0, 'nothing is sent in the turn of the calls');
  await nextTurn();
  t.same(batches.map((b) => b.inputs), [[1, 2, 3]]);
  batches[0].answer();
  t.same(await results, [10, 20, 30]);
});

t.test('without a bound, each turn sends its batch while earlier ones are out', async (t) => {
  const { batches, send } = handSend();
  const call = turnBatcher(send);
  const first = call(1);
  await nextTurn();
  const second = call(2);
  await nextTurn();
  t.same(batches.map((b) => b.inputs), [[1], [2]], 'two batches out at once');
  batches[1].answer();
  batches[0].answer();
  t.same(await Promise.all([first, second]), [10, 20]);
});

t.test('inFlight 1: the calls made while a batch is out wait for its answer, then go together', async (t) => {
  const { batches, send } = handSend();
  const call = turnBatcher(send, { inFlight: 1 });
  const first = call(1);
  await nextTurn();
  const later = [call(2)];
  await nextTurn();
  later.push(call(3), call(4));
  await nextTurn();
  t.same(batches.map((b) => b.inputs), [[1]], 'nothing else is sent while the first is out');
  batches[0].answer();
  t.equal(await first, 10);
  await nextTurn();
  t.same(batches.map((b) => b.inputs), [[1], [2, 3, 4]], 'the calls of three turns in one batch, sent after the answer');
  batches[1].answer();
  t.same(await Promise.all(later), [20, 30, 40]);
  call(5);
  await nextTurn();
  t.same(batches.at(-1)!.inputs, [5], 'with nothing out, a call goes on the next turn');
});

t.test('inFlight 1: a failed batch fails each of its calls and frees its place', async (t) => {
  const { batches, send } = handSend();
  const call = turnBatcher(send, { inFlight: 1 });
  const failing = [call(1), call(2)].map((p) => p.then(() => 'answered', (err: Error) => err.message));
  await nextTurn();
  const waiting = call(3);
  await nextTurn();
  batches[0].fail(new Error('connection lost'));
  t.same(await Promise.all(failing), ['connection lost', 'connection lost']);
  await nextTurn();
  t.same(batches.map((b) => b.inputs), [[1, 2], [3]], 'the waiting call is sent after the failure');
  batches[1].answer();
  t.equal(await waiting, 30);
});

t.test('max splits a turn into batches of at most that many, each counted against inFlight', async (t) => {
  const { batches, send } = handSend();
  const call = turnBatcher(send, { max: 2, inFlight: 2 });
  const all = Promise.all([1, 2, 3, 4, 5].map((n) => call(n)));
  await nextTurn();
  t.same(batches.map((b) => b.inputs), [[1, 2], [3, 4]], 'two batches out, the fifth call waits');
  batches[0].answer();
  await nextTurn();
  await nextTurn();
  t.same(batches.map((b) => b.inputs), [[1, 2], [3, 4], [5]]);
  batches[1].answer();
  batches[2].answer();
  t.same(await all, [10, 20, 30, 40, 50]);
});

t.test('inFlight 1: calls do not wait longer than patienceMs behind a batch that is not answered', async (t) => {
  const { batches, send } = handSend();
  const call = turnBatcher(send, { inFlight: 1, patienceMs: 30 });
  void call(1); // never answered: a database that stopped answering
  await nextTurn();
  const started = Date.now();
  const second = call(2);
  await nextTurn();
  t.equal(batches.length, 1, 'the second call waits for a place');
  await new Promise((r) => setTimeout(r, 60));
  t.same(batches.map((b) => b.inputs), [[1], [2]], 'then goes after its patience, beside the first');
  t.ok(Date.now() - started >= 30);
  batches[1].answer();
  t.equal(await second, 20);
  const third = call(3);
  await new Promise((r) => setTimeout(r, 60));
  t.same(batches.at(-1)!.inputs, [3], 'the first still out: each later wave goes after its own patience');
  batches[2].answer();
  t.equal(await third, 30);
});
