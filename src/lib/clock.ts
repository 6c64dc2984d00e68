// Time is injected (buildApp's `now`), so expiry tests move a clock instead of sleeping.
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();

/**
 * An instance whose own clock is `skewMs` off `base` (ahead when positive), beside a database that
 * keeps `base`'s time: for tests of instances that disagree on the time. Times read in Node (JWT
 * iat/exp, log lines) move with the skew; times compared in SQL (db/now.ts) do not.
 */
export function skewedClock(base: Clock, skewMs: number): Clock {
  return Object.assign(() => new Date(base().getTime() + skewMs), { database: base });
}

/** The clock the database's now() stands for under `clock`: itself, unless it is skewed. */
export const databaseClock = (clock: Clock): Clock => (clock as { database?: Clock }).database ?? clock;

export const addSeconds = (d: Date, seconds: number): Date => new Date(d.getTime() + seconds * 1000);

export const unixSeconds = (d: Date): number => Math.floor(d.getTime() / 1000);
