#!/usr/bin/env node
// `npx authservice <command>`: the CLI (src/cli.ts). In a checkout with the dev dependencies it
// runs the TypeScript sources through tsx (always current); in a production install, which has no
// TypeScript tooling, the compiled dist/cli.js.
import { existsSync } from 'node:fs';

const root = new URL('..', import.meta.url);
let useSources = existsSync(new URL('src/cli.ts', root));
if (useSources) {
  try {
    const tsx = await import('tsx/esm/api');
    tsx.register();
  } catch {
    useSources = false;
  }
}
if (!useSources && !existsSync(new URL('dist/cli.js', root))) {
  console.error('authservice: dist/cli.js is missing: run `npm run build` (or install the dev dependencies)');
  process.exit(1);
}
const cli = await import(new URL(useSources ? 'src/cli.ts' : 'dist/cli.js', root).href);
await cli.runFromProcess();
