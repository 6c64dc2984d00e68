// While shutting down, requests on kept-alive connections get a 503 problem document (not
// Fastify's own 503 body), and the readiness probe says so, so that a load balancer takes this
// instance out of rotation while it drains. Every answer from then on closes its connection: a
// kept-alive connection would otherwise hold the server's close (and so the shutdown) open until
// the client let go or keepAliveTimeout ran out (the hang after refresh traffic: requests in
// flight at SIGTERM left their connections idle but open).
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../errors.js';

export const shutdownGatePlugin = fp(
  async (app: FastifyInstance) => {
    let closing = false;
    app.addHook('preClose', async () => {
      closing = true;
    });
    // Synchronous: it runs on every request, and an async hook costs a promise and a tick each time.
    app.addHook('onRequest', (_request, _reply, done) => {
      done(closing ? new AppError('service_unavailable', { detail: 'The service is shutting down.' }) : undefined);
    });
    app.addHook('onSend', async (_request, reply, payload) => {
      if (closing) reply.header('connection', 'close');
      return payload;
    });
  },
  { name: 'shutdown-gate' },
);
