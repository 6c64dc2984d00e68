// Runs the test suite with tap and ends with a plain "N passed, N failed" line (what CI reads),
// keeping tap's exit code. Extra arguments go to tap (e.g. a test file).
import { spawn } from 'node:child_process';

const child = spawn('npx', ['tap', ...process.argv.slice(2)], { stdio: ['inherit', 'pipe', 'inherit'] });
let summary;
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  for (const line of chunk.toString().split('\n')) {
    const m = /^# \{ total: (\d+)(.*)\}/.exec(line);
    if (m) summary = { total: Number(m[1]), rest: m[2] };
  }
});
child.on('close', (code) => {
  const count = (name) => Number(new RegExp(`${name}: (\\d+)`).exec(summary?.rest ?? '')?.[1] ?? 0);
  if (summary) {
    const failed = count('fail');
    const skipped = count('skip') + count('todo');
    console.log(`\n${count('pass')} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  } else {
    console.log('\n0 passed, 1 failed');
  }
  process.exit(code ?? 1);
});
