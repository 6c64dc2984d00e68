// The admin API under /admin: operator access with a service credential (ADMIN_API_KEYS), over the
// same services as the public API. Every route module of the admin API is registered here, inside
// one encapsulated context whose hooks guard all of them, in this order:
//   onRequest   the per-client admin rate limit (ADMIN_RATE_LIMIT_MAX per ADMIN_RATE_LIMIT_WINDOW)
//   preParsing  the admin key (auth.ts), before the body is read
//   preValidation  typed query strings (query.ts)
//   preSerialization, onSend  the audit event admin.<action> of every authenticated call (audit.ts)
// With ADMIN_API_KEYS unset nothing is registered: the routes do not exist (404).
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Context } from '../../services/context.js';
import type { App } from '../types.js';
import { auditAdminCall, noteAuditTarget } from './audit.js';
import { adminGuard } from './auth.js';
import { adminEventRoutes, adminEventSchemas } from './events.js';
import { adminKeyRoutes } from './keys.js';
import { adminKeySchemas } from './keys.js';
import { adminOutboxRoutes, adminOutboxSchemas } from './outbox.js';
import { coerceQuery } from './query.js';
import { adminUserRoutes, adminUserSchemas } from './users.js';

/** The admin API's named shapes, registered at the root (app.ts) so the document lists them. */
export const adminSchemas = [...adminUserSchemas, ...adminOutboxSchemas, ...adminKeySchemas, ...adminEventSchemas];

export function adminRoutes(app: App, ctx: Context): void {
  const { adminApiKeys, adminRateLimit } = ctx.config;
  if (adminApiKeys.length === 0) return;
  app.register(
    async (instance) => {
      const admin = instance.withTypeProvider<TypeBoxTypeProvider>() as App;
      if (adminRateLimit.max > 0) {
        admin.addHook('onRequest', admin.rateLimit({ max: adminRateLimit.max, timeWindow: adminRateLimit.window * 1000 }));
      }
      admin.addHook('preParsing', adminGuard(adminApiKeys));
      admin.addHook('preValidation', coerceQuery);
      admin.addHook('preSerialization', noteAuditTarget);
      admin.addHook('onSend', auditAdminCall(ctx));
      adminUserRoutes(admin, ctx);
      adminOutboxRoutes(admin, ctx);
      adminKeyRoutes(admin, ctx);
      adminEventRoutes(admin, ctx);
    },
    { prefix: '/admin' },
  );
}
