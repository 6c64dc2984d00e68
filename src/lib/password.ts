// Password hashing with argon2id at the configured cost (OWASP: 19 MiB, t=2, p=1).
// Passwords are NFC-normalised first, so the same password typed on two keyboards (é as one code
// point or as e + accent) hashes the same; they are never trimmed or case-folded.
import argon2 from 'argon2';
import { AppError } from '../errors.js';

export interface Argon2Cost {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/**
 * How many hashes run at once, and how many more may wait. Running as many as there are cores
 * (not libuv's 4 threads, which on 2 cores would make 4 hashes time-slice against each other and
 * the event loop) keeps each hash at its own cost and leaves libuv's other threads to file and DNS
 * work. Beyond the waiting bound a request gets 503 service_unavailable with Retry-After at once:
 * under a login storm the wait would otherwise grow without limit.
 */
export interface HashLimits {
  concurrency: number;
  maxWaiting: number;
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** False for a wrong password; also runs (against a dummy hash) when there is no hash, so the time is the same. */
  verify(hash: string | null, password: string): Promise<boolean>;
  /** True when the hash was made at a lower cost than the configured one. */
  needsUpgrade(hash: string): boolean;
  /**
   * Throws the 503 a hash would get now if the waiting queue is full. Login and the password
   * confirmations call it before counting the attempt (services/throttle.ts), so that a refusal
   * for load never counts as a failed password attempt.
   */
  admit(): void;
}

/** Called when a hash or verify starts; the function it returns when it ends (the metrics' timer). */
export type HashObserver = (operation: 'hash' | 'verify') => () => void;

export async function createHasher(
  cost: Argon2Cost,
  limits: HashLimits = { concurrency: 2, maxWaiting: Infinity },
  observe: HashObserver = () => () => {},
): Promise<PasswordHasher> {
  const options = { type: argon2.argon2id, ...cost };
  const timed = async <T>(operation: 'hash' | 'verify', work: () => Promise<T>): Promise<T> => {
    const end = observe(operation);
    try {
      return await work();
    } finally {
      end();
    }
  };
  // Made once at start with the configured cost: verifying against it costs what a real check costs.
  const dummy = await argon2.hash('dummy password for unknown accounts', options);
  let running = 0;
  const waiting: (() => void)[] = [];
  // One bound for a hash, a verify and the dummy verify of an unknown account, so that a full
  // queue tells nothing about whether an account exists.
  const full = () => running >= limits.concurrency && waiting.length >= limits.maxWaiting;
  const refusal = () => new AppError('service_unavailable', { detail: 'Too many password checks are waiting; try again in a moment.', retryAfter: 1 });
  async function bounded<T>(work: () => Promise<T>): Promise<T> {
    if (running >= limits.concurrency) {
      if (full()) throw refusal();
      await new Promise<void>((resolve) => waiting.push(resolve));
    } else {
      running++;
    }
    try {
      return await work();
    } finally {
      // Hand the slot straight to the next in line (running stays the same), or free it.
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  }
  return {
    hash: (password) => bounded(() => timed('hash', () => argon2.hash(password.normalize('NFC'), options))),
    async verify(hash, password) {
      const ok = await bounded(() => timed('verify', () => argon2.verify(hash ?? dummy, password.normalize('NFC')).catch(() => false)));
      return ok && hash !== null;
    },
    admit() {
      if (full()) throw refusal();
    },
    needsUpgrade(hash) {
      const m = /\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(hash);
      if (!m) return true;
      return Number(m[1]) < cost.memoryCost || Number(m[2]) < cost.timeCost || Number(m[3]) < cost.parallelism;
    },
  };
}
