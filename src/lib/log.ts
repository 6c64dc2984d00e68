// How errors are logged. Drizzle's query errors carry the query's parameters in their message and
// in `params`, and those can be password hashes, token hashes or email addresses: log the query
// text and the driver's error, never the parameters.
import { DrizzleQueryError } from 'drizzle-orm/errors';

export interface LoggedError {
  [member: string]: unknown;
  type: string;
  message: string;
  stack: string;
}

export function serializeError(err: Error): LoggedError {
  const cause = err.cause instanceof Error ? { cause: serializeError(err.cause) } : {};
  if (err instanceof DrizzleQueryError) {
    return { type: 'DrizzleQueryError', message: 'Failed query', query: err.query, stack: '', ...cause };
  }
  const { code } = err as { code?: unknown };
  return { type: err.name, message: err.message, stack: err.stack ?? '', ...(code !== undefined ? { code } : {}), ...cause };
}

/**
 * The request as logged: the path without its query string (a client that wrongly puts a token
 * or an email in the URL must not have it written to the log), and no headers.
 */
export function serializeRequest(request: { method: string; url: string; host?: string; ip?: string; socket?: { remotePort?: number } }) {
  const q = request.url.indexOf('?');
  return {
    method: request.method,
    url: q < 0 ? request.url : `${request.url.slice(0, q)}?…`,
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}
