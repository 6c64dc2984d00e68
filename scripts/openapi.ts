// Writes openapi/openapi.json from the routes' schemas, with the default configuration.
// `npm run openapi`; test/service.test.ts fails when the committed file differs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/index.js';

export async function generateOpenApi(): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-openapi-'));
  const config = loadConfig({ DATABASE_URL: 'memory://', DATA_DIR: dataDir, LOG_LEVEL: 'silent' });
  const database = await openDatabase(config.databaseUrl, dataDir);
  try {
    const app = await buildApp(config, database, { logger: false });
    await app.ready();
    const document = `${JSON.stringify(app.swagger(), null, 2)}\n`;
    await app.close();
    return document;
  } finally {
    await database.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(new URL('../openapi/openapi.json', import.meta.url), await generateOpenApi());
  console.log('wrote openapi/openapi.json');
}
