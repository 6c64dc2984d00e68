// The bearer check's session lookup (every /me, /token/verify and bearer route), batched per turn
// of the event loop (lib/turn-batch.ts): the lookups of one turn are one statement,
// `where sessions.id = any($1)`. A revocation committed before a request arrived is always seen by
// its lookup, on any instance: the statement starts after the request.
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/index.js';
import { sessions, type UserRow, users } from '../db/schema.js';
import { turnBatcher } from '../lib/turn-batch.js';

export interface SessionUser {
  user: UserRow;
  revokedAt: Date | null;
}

interface Lookup {
  sid: string;
  sub: string;
}

// Built once per database (Drizzle's per-call query building costs more than the query). The ids
// are UUIDs (resolveAccessToken checks them), sent as one uuid[] literal.
const buildQuery = (db: Db) =>
  db
    .select({ sid: sessions.id, userId: sessions.userId, user: users, revokedAt: sessions.revokedAt })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(sql`${sessions.id} = any(${sql.placeholder('sids')}::uuid[])`)
    .prepare('session_users');

// At most this many lookup statements at once: under load, the requests that arrive meanwhile wait
// for one of them to answer and then share the next (a read, which no lock can hold back).
const LOOKUPS_IN_FLIGHT = 1;

function batchedLookup(db: Db) {
  const query = buildQuery(db);
  return turnBatcher<Lookup, SessionUser | undefined>(async (lookups) => {
    const rows = await query.execute({ sids: `{${[...new Set(lookups.map((l) => l.sid))].join(',')}}` });
    const bySid = new Map(rows.map((row) => [row.sid, row]));
    // The database answers uuids in lower case; a token's may be in either.
    return lookups.map(({ sid, sub }) => {
      const row = bySid.get(sid.toLowerCase());
      return row && row.userId === sub.toLowerCase() ? { user: row.user, revokedAt: row.revokedAt } : undefined;
    });
  }, { inFlight: LOOKUPS_IN_FLIGHT });
}

const lookups = new WeakMap<Db, ReturnType<typeof batchedLookup>>();

/** The session `sid` with its account, if that account is `sub`; undefined if there is none. */
export function findSessionUser(db: Db, sid: string, sub: string): Promise<SessionUser | undefined> {
  let lookup = lookups.get(db);
  if (!lookup) lookups.set(db, (lookup = batchedLookup(db)));
  return lookup({ sid, sub });
}
