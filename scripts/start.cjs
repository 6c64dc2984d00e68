// `npm start`: compiles src/ to dist/ when dist/ is missing or older than the sources, then runs
// the service's entry (dist/main.cjs) in this same process (so SIGTERM and Ctrl-C reach the server
// directly). This keeps a fresh clone's `npm install && npm start` one line, while production runs
// the compiled `node dist/main.cjs` with no TypeScript tooling installed at all. CommonJS, like
// dist/main.cjs, so that nothing uses libuv's thread pool before that entry sizes it.
const { spawn, spawnSync } = require('node:child_process');
const { existsSync, readdirSync, statSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const stamp = join(root, 'dist', '.build-stamp');

function newest(path) {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

const sources = Math.max(newest(join(root, 'src')), newest(join(root, 'tsconfig.json')), newest(join(root, 'tsconfig.build.json')));
async function compileIfStale() {
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= sources) return;
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc');
  } catch {
    if (!existsSync(join(root, 'dist', 'main.cjs'))) {
      console.error('npm start: dist/ is missing and TypeScript is not installed: run `npm install` (with dev dependencies) or `npm run build`');
      process.exit(1);
    }
  }
  if (tsc) {
    const started = Date.now();
    // The embedded database's template (as `npm run build` makes it) in parallel with the compile:
    // the first start then copies it instead of running initdb.
    const template = spawn(process.execPath, [join(root, 'scripts', 'pglite-template.mjs')], { stdio: 'inherit', cwd: root });
    const templateDone = new Promise((resolve) => template.on('close', resolve).on('error', resolve));
    const build = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
    await templateDone;
    if (build.status !== 0) process.exit(build.status ?? 1);
    writeFileSync(stamp, `${new Date().toISOString()}\n`);
    console.error(`npm start: compiled src/ to dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}
compileIfStale().then(() => require('../dist/main.cjs'));
