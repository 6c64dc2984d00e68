// The one body parser: JSON in UTF-8, and nothing that is not.
// - RFC 8259 §8.1: JSON exchanged between systems is UTF-8. A body labelled with another charset
//   (utf-16, utf-32, latin1…) is 415, not decoded as UTF-8 and silently misread.
// - Bytes that are not UTF-8 are a 400, not turned into U+FFFD (two different byte strings would
//   otherwise become one password).
// - A string with a lone surrogate (`"\ud800"`, legal JSON escape, ill-formed Unicode) is a 400 in
//   every field: argon2, NFC and PostgreSQL each turn it into U+FFFD or refuse it in their own way,
//   so `lone-\udbff` and `lone-\ud800` would otherwise be the same password.
// - `__proto__` and `constructor.prototype` keys are refused by secure-json-parse (Fastify's own).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError, type FieldErrors } from '../errors.js';

const UTF8 = new TextDecoder('utf-8', { fatal: true });
// In a `u` regex a well-formed surrogate pair is one code point; only a lone surrogate is \p{Cs}.
const LONE_SURROGATE = /\p{Cs}/u;
const isWellFormed = (s: string) => !LONE_SURROGATE.test(s);

export function jsonBody(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request: FastifyRequest, body: Buffer, done) => {
    const charset = charsetOf(request.headers['content-type']);
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      return done(new AppError('unsupported_media_type', { detail: 'Send the body as application/json in UTF-8 (RFC 8259).' }), undefined);
    }
    let text: string;
    try {
      text = UTF8.decode(body);
    } catch (cause) {
      return done(new AppError('validation_failed', { detail: 'The request body is not valid UTF-8.', cause }), undefined);
    }
    parse(request, text, (err: Error | null, value?: unknown) => {
      if (err) return done(err, undefined);
      const errors = illFormedStrings(value);
      if (errors) {
        const fields = Object.keys(errors);
        return done(new AppError('validation_failed', { detail: `Invalid field${fields.length > 1 ? 's' : ''}: ${fields.join(', ')}.`, errors }), undefined);
      }
      done(null, value);
    });
  });
}

/** The charset parameter of a Content-Type, lower-cased and unquoted; undefined when absent. */
function charsetOf(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  for (const param of contentType.split(';').slice(1)) {
    const eq = param.indexOf('=');
    if (eq < 0) continue;
    if (param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    return param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
  }
  return undefined;
}

const ILL_FORMED = { message: 'This value is not well-formed Unicode (it holds a lone surrogate).', code: 'invalid' };

/**
 * Field errors for every top-level field whose value holds an ill-formed string (anywhere inside
 * it), or whose name is ill-formed; undefined when every string is well-formed.
 */
function illFormedStrings(value: unknown): FieldErrors | undefined {
  // A Map, not an object: field names are the client's (item: no Object.prototype lookups).
  const bad = new Map<string, typeof ILL_FORMED[]>();
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, v] of Object.entries(value)) {
      if (!isWellFormed(key)) bad.set('nonFieldErrors', [ILL_FORMED]);
      else if (!wellFormed(v)) bad.set(key, [ILL_FORMED]);
    }
  } else if (!wellFormed(value)) {
    bad.set('nonFieldErrors', [ILL_FORMED]);
  }
  return bad.size ? Object.fromEntries(bad) : undefined;
}

function wellFormed(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return isWellFormed(value);
  if (value === null || typeof value !== 'object' || depth > 64) return true;
  if (Array.isArray(value)) return value.every((v) => wellFormed(v, depth + 1));
  return Object.entries(value).every(([k, v]) => isWellFormed(k) && wellFormed(v, depth + 1));
}
