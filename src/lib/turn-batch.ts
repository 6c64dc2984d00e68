// One database statement for the requests of one turn of the event loop. Under load, the hot
// statements that every request runs (the bearer check's session lookup, the throttle's counter)
// cost a socket write, a read and a backend's parse and execute each, or on PGlite a call into its
// WebAssembly each: more than the work they do. A batcher collects the calls made in one turn and
// sends them as one statement on the next (setImmediate), whose answer carries one result per call.
//
// This is not a cache: each call's statement is sent after the call was made and starts after
// it, so it sees every change committed before the call (on any instance), as a statement of its
// own would. Nothing is kept between turns. If the statement fails, every call of its batch fails
// with its error.

/** Sends a batch (an async function: it rejects, never throws); one result per input, in order. */
export type SendBatch<In, Out> = (inputs: In[]) => Promise<Out[]>;

interface Waiter<In, Out> {
  input: In;
  resolve(out: Out): void;
  reject(err: unknown): void;
}

/** A function that batches its calls of one turn into calls of `send`, at most `max` inputs each. */
export function turnBatcher<In, Out>(send: SendBatch<In, Out>, max = 200): (input: In) => Promise<Out> {
  let pending: Waiter<In, Out>[] = [];

  // `send` is an async function: whatever goes wrong in it is a rejection, given to each waiter.
  const dispatch = (batch: Waiter<In, Out>[]): void => {
    send(batch.map((w) => w.input)).then(
      (outs) => batch.forEach((w, i) => w.resolve(outs[i])),
      (err: unknown) => batch.forEach((w) => w.reject(err)),
    );
  };

  const flush = (): void => {
    const waiting = pending;
    pending = [];
    for (let i = 0; i < waiting.length; i += max) dispatch(waiting.slice(i, i + max));
  };

  return (input) =>
    new Promise<Out>((resolve, reject) => {
      if (pending.push({ input, resolve, reject }) === 1) setImmediate(flush);
    });
}
