// Opaque cursors for keyset pagination: base64url of a small JSON array. Opaque so that clients
// do not build them (the ordering can change without breaking anyone); checked on the way in so
// that a tampered cursor is a 400, never a 500 from the database.
import { fieldError } from '../errors.js';

export function encodeCursor(values: (string | number)[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url');
}

/** The values of a cursor made by encodeCursor, checked against `shape` (a test per position). */
export function decodeCursor(cursor: string, shape: ((v: unknown) => boolean)[]): unknown[] {
  let values: unknown;
  try {
    values = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    values = undefined;
  }
  if (!Array.isArray(values) || values.length !== shape.length || !shape.every((ok, i) => ok(values[i]))) {
    throw fieldError('validation_failed', 'cursor', 'invalid', 'The cursor is not one this API returned.');
  }
  return values;
}

export const isUuid = (v: unknown): v is string =>
  typeof v === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v);
// A timestamp as PostgreSQL prints it with microseconds (see timestampText in the services).
export const isTimestampText = (v: unknown): v is string =>
  typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(v);
