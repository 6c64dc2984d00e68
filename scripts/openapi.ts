// Writes openapi/openapi.json: the document of every configuration (src/openapi/surface.ts
// ALL_CONFIGURATIONS), from the routes' own schemas, and the TypeScript client's generated files
// (clients/typescript/src/schema.ts by openapi-typescript, operations.ts). `npm run openapi`;
// test/openapi.test.ts and test/client.test.ts fail when a committed file differs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { type Database, openDatabase } from '../src/db/index.js';
import { generateClient } from './client-gen.js';

/** The committed document, as JSON text. Pass a database to reuse one (tests); none is written to. */
export async function generateOpenApi(database?: Database): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-openapi-'));
  // Every route exists under the defaults (refresh tokens on) and an admin key; the surface makes
  // the rest cover every configuration. Nothing else of this configuration shows in the document.
  const config = loadConfig({ DATABASE_URL: 'memory://', DATA_DIR: dataDir, LOG_LEVEL: 'silent', ADMIN_API_KEYS: `doc:${'x'.repeat(32)}` });
  const db = database ?? (await openDatabase(config.databaseUrl, dataDir));
  try {
    const app = await buildApp(config, db, { logger: false, documentAllConfigurations: true });
    await app.ready();
    const document = `${JSON.stringify(app.swagger(), null, 2)}\n`;
    await app.close();
    return document;
  } finally {
    if (!database) await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const document = await generateOpenApi();
  writeFileSync(new URL('../openapi/openapi.json', import.meta.url), document);
  for (const [name, text] of Object.entries(await generateClient(document))) {
    writeFileSync(new URL(`../clients/typescript/src/${name}`, import.meta.url), text);
  }
  console.log('wrote openapi/openapi.json and clients/typescript/src/{schema,operations}.ts');
}
