import { defineConfig } from 'drizzle-kit';

// Migrations are generated from src/db/schema.ts and applied by the service at start
// (src/db/index.ts); drizzle-kit is only used to generate them.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './migrations',
});
