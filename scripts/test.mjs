// Runs the test suite with tap and prints what a reader needs: one line per test file (passed,
// failed, skipped, time), every failure with its assertion, diff and location, the reasons of
// skipped tests, one coverage line, and finally the plain "N passed, N failed" line that CI reads.
// tap's exit code is kept. Extra arguments go to tap (e.g. a test file); TAP_RAW=1 prints tap's
// own TAP stream instead.
import { spawn } from 'node:child_process';

const raw = process.env.TAP_RAW === '1';
const child = spawn('npx', ['tap', '--reporter=tap', ...process.argv.slice(2)], { stdio: ['inherit', 'pipe', 'pipe'] });

let summary;
const coverage = [];
/** tap found no coverage: files whose code runs only in child processes (test/readme.test.ts alone). */
let noCoverage = false;
/** Files skipped as a whole, with why: repeated above the final line so nobody misses them. */
const skippedFiles = [];
/** The file being read: its lines (indented TAP), collected until its top-level result. */
let block = [];
let buffered = '';

function onLine(line) {
  if (raw) process.stdout.write(`${line}\n`);
  const total = /^# \{ total: (\d+)(.*)\}/.exec(line);
  if (total) summary = { total: Number(total[1]), rest: total[2] };
  const cov = /^(Statements|Branches|Functions|Lines)\s*: ([\d.]+%)/.exec(line);
  if (cov) coverage.push(`${cov[1].toLowerCase()} ${cov[2]}`);
  if (line === '# No coverage generated') noCoverage = true;
  const top = /^(not )?ok \d+ - (\S+)(?: # (.*))?$/.exec(line);
  if (top) {
    if (!raw) report(top[2], !top[1], top[3] ?? '', block);
    block = [];
  } else if (/^\s/.test(line) || line.startsWith('# Subtest')) {
    block.push(line);
  }
}

/** One line for a file, then its failures and skip reasons. */
function report(file, ok, directive, lines) {
  const points = lines.filter((l) => /^\s+(not )?ok \d+ /.test(l) && !/^\s+(not )?ok \d+ - .* # time=/.test(l));
  const failed = points.filter((l) => /^\s+not ok /.test(l) && !/# TODO/.test(l));
  const skips = points.filter((l) => /# SKIP/.test(l));
  const time = /time=([\d.]+)ms/.exec(directive)?.[1];
  const seconds = time ? ` (${(Number(time) / 1000).toFixed(1)} s)` : '';
  const counts = [`${points.length - failed.length - skips.length} passed`];
  if (failed.length) counts.push(`${failed.length} failed`);
  if (skips.length) counts.push(`${skips.length} skipped`);
  const whole = /^SKIP/.test(directive) ? `skipped: ${directive.replace(/^SKIP\s*/, '')}` : counts.join(', ');
  if (/^SKIP/.test(directive)) skippedFiles.push(`${file}: ${directive.replace(/^SKIP\s*/, '')}`);
  else if (points.length > 0 && skips.length === points.length) {
    skippedFiles.push(`${file}: ${skips[0].replace(/^\s+ok \d+ - /, '').replace(/\s*# SKIP.*$/, '')}`);
  }
  console.log(`${ok ? '✓' : '✗'} ${file}  ${whole}${seconds}`);
  const reasons = [...new Set(skips.map((l) => l.replace(/^\s+ok \d+ - /, '').replace(/\s*# SKIP\s*/, ': ').replace(/: $/, '')))];
  for (const reason of reasons.slice(0, 5)) console.log(`    skipped: ${reason}`);
  if (reasons.length > 5) console.log(`    … and ${reasons.length - 5} more skipped`);
  if (!ok) printFailures(lines);
}

/** Each failing assertion with the names of the subtests around it and its YAML diagnostic. */
function printFailures(lines) {
  const stack = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const depth = line.search(/\S/);
    const sub = /^\s*# Subtest: (.*)$/.exec(line);
    if (sub) {
      stack.length = depth / 4;
      stack.push(sub[1]);
      continue;
    }
    const failure = /^\s+not ok \d+ - (.*)$/.exec(line);
    if (!failure || /# (TODO|time=)/.test(line)) continue;
    // A failing subtest is reported through its failing assertions; a failed assertion (or a
    // subtest that failed without one, e.g. a thrown error) is printed with its diagnostic.
    const diag = [];
    if (lines[i + 1]?.trim() === '---') {
      for (let j = i + 2; j < lines.length && lines[j].trim() !== '...'; j++) diag.push(lines[j]);
    }
    const isSubtestResult = stack.length > depth / 4 && stack[depth / 4] === failure[1];
    if (isSubtestResult && diag.every((l) => !/^\s+(diff|found|wanted|stack|message|error)/.test(l))) continue;
    const path = stack.slice(1, depth / 4).filter(Boolean); // [0] is the file, printed above
    console.log(`\n    ✗ ${[...path, failure[1]].join(' › ')}`);
    const indent = Math.min(...diag.filter((l) => l.trim()).map((l) => l.search(/\S/)));
    for (const l of diag.slice(0, 40)) console.log(`        ${l.slice(indent)}`);
    if (diag.length > 40) console.log('        …');
  }
  console.log('');
}

child.stdout.on('data', (chunk) => {
  buffered += chunk.toString();
  const lines = buffered.split('\n');
  buffered = lines.pop();
  for (const line of lines) onLine(line);
});
// tap's own complaints (a crashed file) go to stderr: pass them through.
child.stderr.on('data', (chunk) => process.stderr.write(chunk));

child.on('close', (code) => {
  if (buffered) onLine(buffered);
  const count = (name) => Number(new RegExp(`${name}: (\\d+)`).exec(summary?.rest ?? '')?.[1] ?? 0);
  if (coverage.length) console.log(`\ncoverage: ${coverage.join(', ')}`);
  for (const note of skippedFiles) console.log(`skipped: ${note}`);
  if (summary) {
    const failed = count('fail');
    const skipped = count('skip') + count('todo');
    console.log(`\n${count('pass')} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
    // tap exits 1 when nothing generated coverage, even with every test passed and
    // allow-incomplete-coverage: not a failure of the tests.
    if (code === 1 && noCoverage && failed === 0 && count('pass') > 0) {
      console.log('coverage: none (the code ran only in child processes)');
      process.exit(0);
    }
  } else {
    console.log('\n0 passed, 1 failed');
  }
  process.exit(code ?? 1);
});
