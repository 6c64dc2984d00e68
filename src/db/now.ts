// One clock for times that several instances compare: the database's. An instance's own clock may
// be ahead or behind (seen: +30 s / −90 s), so a time written by one instance and compared by
// another must come from `now()` in the SQL, never from `new Date()` in Node: session and email
// token expiries, rotation and revocation times, outbox due times, limit windows.
//
// The tests' movable clock still works: an injected clock is fed into the SQL here, as an offset
// from the database's now(), so that moving it moves every comparison that goes through this one
// function, and a comparison never mixes two clocks. A skewed test clock (lib/clock.ts) moves only
// what Node reads, as a wrong instance clock would.
import { type SQL, sql } from 'drizzle-orm';
import { type Clock, databaseClock, systemClock } from '../lib/clock.js';

/** Milliseconds an injected clock puts between the database's now() and its time (0 in production). */
export function dbOffsetMs(clock: Clock = systemClock): number {
  const db = databaseClock(clock);
  return db === systemClock ? 0 : db().getTime() - Date.now();
}

/**
 * The database's now() shifted by `offsetMs` (a value, or a placeholder in a statement prepared
 * once: its offset is then a parameter of each execution, from dbOffsetMs).
 */
export function shiftedNow(offsetMs: unknown): SQL {
  return sql`(now() + ${offsetMs}::float8 * interval '1 millisecond')`;
}

/** The current time as the database sees it (shifted by an injected test clock's offset). */
export function dbNow(clock: Clock = systemClock): SQL {
  if (databaseClock(clock) === systemClock) return sql`now()`;
  return shiftedNow(dbOffsetMs(clock));
}

/** The database's now() plus `ms` milliseconds (shifted by an injected clock's offset, when given). */
export function dbNowPlus(ms: number, clock: Clock = systemClock): SQL {
  return sql`(${dbNow(clock)} + ${Math.round(ms)}::float8 * interval '1 millisecond')`;
}
