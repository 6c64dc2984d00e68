// The README's curl walk-through runs top to bottom as written: its sh blocks, in order, with
// bash -e, against the real service started as the README says (its log in service.log), with
// every curl made to fail on an error status.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

const readme = readFileSync('README.md', 'utf8');
const section = /<!-- walkthrough[^>]*-->([\s\S]*?)<!-- \/walkthrough -->/.exec(readme)?.[1] ?? '';
const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
const jq = spawnSync('jq', ['--version']).status === 0;

t.test('the walk-through is marked and has its blocks', async (t) => {
  t.ok(blocks.length >= 5, `${blocks.length} sh blocks between the markers`);
  t.match(blocks[0], /^API=http:\/\/127\.0\.0\.1:3000$/m, 'it starts by naming the API');
});

t.test('the README walk-through runs top to bottom as written', { skip: !jq && 'needs jq' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'authservice-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = createWriteStream(join(dir, 'service.log'));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: '0', DATA_DIR: join(dir, 'data'), DATABASE_URL: 'memory://', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let output = '';
  child.stdout!.on('data', (d) => {
    output += d;
    log.write(d);
  });
  child.stderr!.on('data', (d) => (output += d));
  let url: string | undefined;
  for (const deadline = Date.now() + 240_000; !url && Date.now() < deadline; ) {
    url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
    if (!url) await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(url, 'the service started');

  // As written, except the port (the README's 3000 is whatever the test got) and curl failing on
  // an error status, so that a step that answers 4xx stops the run.
  const script = [
    'set -euo pipefail',
    'curl() { command curl --fail-with-body "$@"; }',
    ...blocks.map((b) => b.replace('API=http://127.0.0.1:3000', `API=${url}`)),
    'echo WALKTHROUGH-DONE',
  ].join('\n');
  writeFileSync(join(dir, 'walkthrough.sh'), script);
  // Asynchronously: this process must keep copying the service's output into service.log meanwhile.
  const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const bash = spawn('bash', ['walkthrough.sh'], { cwd: dir, timeout: 120_000 });
    let stdout = '';
    let stderr = '';
    bash.stdout.on('data', (d) => (stdout += d));
    bash.stderr.on('data', (d) => (stderr += d));
    bash.on('close', (status) => resolve({ status, stdout, stderr }));
  });
  t.equal(run.status, 0, 'bash -e ran every step', {
    stdout: run.stdout.slice(-2000),
    stderr: run.stderr.slice(-2000),
    log: readFileSync(join(dir, 'service.log'), 'utf8').slice(-3000),
  });
  t.match(run.stdout, /WALKTHROUGH-DONE/);
  t.match(run.stdout, /"firstName":"Ada"/, 'update-account answered with the new name');
  child.kill('SIGTERM');
});
