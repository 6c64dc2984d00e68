// Work that runs after the response is sent, so that the response cannot reveal what the work
// found (send-password-reset-email and resend-activation-email answer in the same time whether
// the account exists or not). Tracked, so that a graceful shutdown finishes it first.
export interface Tasks {
  run(name: string, work: () => Promise<void>): void;
  /** Resolves when every task started so far has finished. */
  idle(): Promise<void>;
}

export function createTasks(onError: (name: string, err: unknown) => void): Tasks {
  const running = new Set<Promise<void>>();
  return {
    run(name, work) {
      const p: Promise<void> = Promise.resolve()
        .then(work)
        .catch((err) => onError(name, err))
        .finally(() => running.delete(p));
      running.add(p);
    },
    async idle() {
      while (running.size) await Promise.all(running);
    },
  };
}
