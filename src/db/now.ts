// One clock for times that several instances compare: the database's. An instance's own clock may
// be ahead or behind (seen: +30 s / −90 s), so a time written by one instance and compared by
// another must come from `now()` in the SQL, never from `new Date()` in Node.
//
// The tests' movable clock still works: an injected clock is fed into the SQL here, as an offset
// from the database's now(), so that moving it moves every comparison that goes through this one
// function, and a comparison never mixes two clocks.
import { type SQL, sql } from 'drizzle-orm';
import { type Clock, systemClock } from '../lib/clock.js';

/** The current time as the database sees it (shifted by an injected test clock's offset). */
export function dbNow(clock: Clock = systemClock): SQL {
  if (clock === systemClock) return sql`now()`;
  const offset = clock().getTime() - Date.now();
  return sql`(now() + ${offset}::float8 * interval '1 millisecond')`;
}

/** The database's now() plus `ms` milliseconds (shifted by an injected clock's offset, when given). */
export function dbNowPlus(ms: number, clock: Clock = systemClock): SQL {
  return sql`(${dbNow(clock)} + ${Math.round(ms)}::float8 * interval '1 millisecond')`;
}
