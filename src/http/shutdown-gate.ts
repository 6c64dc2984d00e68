// While shutting down, requests on kept-alive connections get a 503 problem document (not
// Fastify's own 503 body), and the readiness probe says so, so that a load balancer takes this
// instance out of rotation while it drains.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../errors.js';

export const shutdownGatePlugin = fp(
  async (app: FastifyInstance) => {
    let closing = false;
    app.addHook('preClose', async () => {
      closing = true;
    });
    app.addHook('onRequest', async () => {
      if (closing) throw new AppError('service_unavailable', { detail: 'The service is shutting down.' });
    });
  },
  { name: 'shutdown-gate' },
);
