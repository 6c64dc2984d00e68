// One database statement for the requests of one turn of the event loop. Under load, the hot
// statements that every request runs (the bearer check's session lookup, the throttle's counter)
// cost a socket write, a read and a backend's parse and execute each, or on PGlite a call into its
// WebAssembly each: more than the work they do. A batcher collects the calls made in one turn and
// sends them as one statement on the next (setImmediate), whose answer carries one result per call.
//
// This is not a cache: each call's statement is sent after the call was made and starts after
// it, so it sees every change committed before the call (on any instance), as a statement of its
// own would. No answer is kept for a later call. If the statement fails, every call of its batch
// fails with its error.

/** Sends a batch (an async function: it rejects, never throws); one result per input, in order. */
export type SendBatch<In, Out> = (inputs: In[]) => Promise<Out[]>;

interface Waiter<In, Out> {
  input: In;
  resolve(out: Out): void;
  reject(err: unknown): void;
}

/**
 * A function that batches its calls of one turn into calls of `send`, at most `max` inputs each.
 *
 * `inFlight` bounds the batches sent and not answered yet: the calls made while that many are out
 * wait (together) for the first answer, then go on the next turn. For a read that no lock can hold
 * back (the session lookup), this trades a round trip of latency under load for larger batches,
 * each a backend's wakeup shared by more calls. A statement that can wait on a lock (the
 * throttle's counters) keeps the default, so that a lock held by one transaction holds back only
 * the batch that needs it. Nor may one batch out hold back the others for long (a database that
 * stops answering, whose statements end only at their timeout): calls that have waited
 * `patienceMs` for a place go anyway, each wave with its own statement, its own timeout.
 */
export function turnBatcher<In, Out>(
  send: SendBatch<In, Out>,
  { max = 200, inFlight = Infinity, patienceMs = 10 } = {},
): (input: In) => Promise<Out> {
  const pending: Waiter<In, Out>[] = [];
  let out = 0;
  let immediate: NodeJS.Immediate | undefined;
  let timer: NodeJS.Timeout | undefined;

  // The place is given back before the waiters hear, so the next batch is due before they go on.
  // `send` is an async function: whatever goes wrong in it is a rejection, given to each waiter.
  const dispatch = (batch: Waiter<In, Out>[]): void => {
    out++;
    const done = () => {
      out--;
      schedule();
    };
    send(batch.map((w) => w.input)).then(
      (outs) => {
        done();
        batch.forEach((w, i) => w.resolve(outs[i]));
      },
      (err: unknown) => {
        done();
        batch.forEach((w) => w.reject(err));
      },
    );
  };

  // `force`: the patience ran out, so the bound does not apply to the calls waiting now.
  const flush = (force: boolean): void => {
    clearTimeout(timer);
    immediate = timer = undefined;
    while (pending.length > 0 && (force || out < inFlight)) dispatch(pending.splice(0, max));
    schedule();
  };

  // On the next turn (so that every call of this one is in the batch) when there is a place, or
  // else when one is given back, or when the patience runs out.
  const schedule = (): void => {
    if (immediate || pending.length === 0) return;
    if (out < inFlight) {
      clearTimeout(timer);
      timer = undefined;
      immediate = setImmediate(flush, false);
    } else {
      timer ??= setTimeout(flush, patienceMs, true);
    }
  };

  return (input) =>
    new Promise<Out>((resolve, reject) => {
      pending.push({ input, resolve, reject });
      schedule();
    });
}
