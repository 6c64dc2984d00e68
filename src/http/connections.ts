// Slow and idle clients. Node's HTTP server keeps a socket as long as the client likes unless told
// otherwise: a body trickled a byte at a time, a connection that never sends a request, a kept-alive
// socket left idle, and enough of them to exhaust file descriptors. Each has a bound here:
// - HEADERS_TIMEOUT: the request line and headers must arrive within it (this also closes a socket
//   that connects and sends nothing);
// - REQUEST_TIMEOUT: the whole request, body included, must arrive within it;
// - KEEP_ALIVE_TIMEOUT: an idle kept-alive socket is closed after it;
// - MAX_CONNECTIONS: sockets beyond it are closed at once, so the rest keep being served.
// Node checks the two timeouts on a timer (connectionsCheckingInterval, 30 s by default, which
// would let a 15 s timeout run to 45 s); it is set to one second here.
// Refusals at this level never reach Fastify's error handler: they are written here as problem
// documents too.
import { randomUUID } from 'node:crypto';
import type { ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyServerOptions } from 'fastify';
import type { Config } from '../config.js';
import { AppError, type ErrorCode, toProblem } from '../errors.js';

export const CONNECTIONS_CHECKING_INTERVAL_MS = 1_000;

/** The Fastify options that bound slow and idle clients. */
export function connectionOptions(config: Readonly<Config>): Partial<FastifyServerOptions> & { http: ServerOptions } {
  const { requestTimeout, headersTimeout, keepAliveTimeout } = config.connections;
  return {
    requestTimeout: requestTimeout * 1000,
    keepAliveTimeout: keepAliveTimeout * 1000,
    http: {
      headersTimeout: headersTimeout * 1000,
      requestTimeout: requestTimeout * 1000,
      connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS,
    },
    clientErrorHandler: clientErrorHandler(config.publicUrl),
  };
}

/** Node's `clientError`: a timeout, oversized headers or unparsable HTTP, answered as a problem document. */
function clientErrorHandler(publicUrl: string) {
  return function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    // A response already under way (a handler was answering) cannot be replaced: just close.
    const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (socket.writable && !started) {
      const code: ErrorCode =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'validation_failed';
      const detail = code === 'validation_failed' ? 'The request is not valid HTTP.' : undefined;
      const problem = toProblem(new AppError(code, { detail }), randomUUID(), publicUrl);
      const body = JSON.stringify(problem);
      // Flushed, then closed whatever the client does (it may never read nor close its side).
      socket.end(
        `HTTP/1.1 ${problem.status} ${problem.title}\r\nContent-Type: application/problem+json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n` +
          `Connection: close\r\n\r\n${body}`,
        () => socket.destroy(),
      );
      setTimeout(() => socket.destroy(), 1_000).unref();
      return;
    }
    socket.destroy();
  };
}
