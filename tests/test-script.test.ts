/**
 * `npm test` (scripts/test.sh) ends with its failures: a long run is often
 * read from its end, and the failing test's name and error must be there, not
 * only somewhere in thousands of lines above. And a file's whole report
 * arrives, however long: a report cut short at the file's exit lost tests from
 * the counts and the name of a failure.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, it } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ats-test-script-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs scripts/test.sh on `files`; resolves its exit code and standard output. */
function testSh(files: string[]): Promise<{ code: number; stdout: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, KAFKA_BROKERS: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092' };
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve) => {
    execFile('bash', ['scripts/test.sh', ...files], { cwd: root, env, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout });
    });
  });
}

/** The failures section a failing run ends with (asserted to be there), to its last line. */
function failuresSection(stdout: string): string {
  const tail = stdout.slice(stdout.lastIndexOf('test: the failures'));
  assert.ok(tail.startsWith('test: the failures'), stdout.slice(-3000));
  return tail;
}

/** Writes `name` in the scratch folder with `lines`, runs scripts/test.sh on it, asserts it failed (exit 1): its failures section. */
async function failingRun(name: string, lines: string[]): Promise<string> {
  const file = join(dir, name);
  writeFileSync(file, [...lines, ''].join('\n'));
  const { code, stdout } = await testSh([file]);
  assert.equal(code, 1, stdout);
  return failuresSection(stdout);
}

it('a failing run ends with each failing test, its error and where it was thrown, then the counts', { timeout: 150_000 }, async () => {
  const tail = await failingRun('sample.test.ts', [
    "import assert from 'node:assert/strict';",
    "import { describe, it } from 'node:test';",
    "describe('a suite', () => {",
    "  it('passes', () => {});",
    "  it('breaks on purpose', () => assert.equal(1 + 1, 3, 'the sum marker-7f3a'));",
    "  it('passes after it', () => {});",
    '});',
  ]);
  assert.match(tail, /not ok \d+ - breaks on purpose/);
  assert.match(tail, /the sum marker-7f3a/);
  assert.match(tail, /sample\.test\.ts:5/);
  assert.doesNotMatch(tail, /passes/);
  assert.match(tail, /\ntest: 2 passed, 1 failed, 0 cancelled\n$/);
});

it('a run with more failures than the section shows ends with the counts and exits 1, not cut off by its own cut', { timeout: 150_000 }, async () => {
  // 200 failures, each with its error block: far past the section's 400 lines. The section was cut by a
  // pipe to `head`, and under pipefail the writer's SIGPIPE ended the script (exit 141) before the counts.
  const tail = await failingRun('many.test.ts', [
    "import assert from 'node:assert/strict';",
    "import { it } from 'node:test';",
    "for (let i = 0; i < 200; i++) it(`breaks ${i} marker-9b2d`, () => assert.deepEqual({ i, list: [1, 2, 3] }, { i: -1, list: [3, 2, 1] }));",
  ]);
  assert.match(tail, /not ok \d+ - breaks 0 marker-9b2d/);
  assert.ok(tail.split('\n').length < 420, `the section is cut: ${tail.split('\n').length} lines`);
  assert.match(tail, /\(the failures section is cut at 400 lines; the whole report is above it\)\n/);
  assert.match(tail, /\ntest: 0 passed, 200 failed, 0 cancelled\n$/);
});

it('a passing run prints no failures section', { timeout: 150_000 }, async () => {
  const file = join(dir, 'fine.test.ts');
  writeFileSync(file, "import { it } from 'node:test';\nit('passes', () => {});\n");
  const { code, stdout } = await testSh([file]);
  assert.equal(code, 0, stdout);
  assert.doesNotMatch(stdout, /test: the failures/);
  assert.match(stdout, /\ntest: 1 passed, 0 failed, 0 cancelled\n$/);
});

it('a run whose suite ran out of time ends with that test and counts it cancelled, not "0 failed"', { timeout: 150_000 }, async () => {
  const tail = await failingRun('slow.test.ts', [
    "import { describe, it } from 'node:test';",
    "describe('a suite out of time', { timeout: 200 }, () => {",
    "  it('passes', () => {});",
    "  it('waits past the suite marker-c4e1', () => new Promise((r) => setTimeout(r, 2000)));",
    '});',
  ]);
  assert.match(tail, /not ok \d+ - waits past the suite marker-c4e1/);
  assert.match(tail, /\ntest: 1 passed, 0 failed, 1 cancelled\n$/);
});

it('a process given the preload of every test process writes all it wrote before it exits, while nobody reads its pipe yet', { timeout: 60_000 }, async (t) => {
  // What a test file's process does at its end under --test-force-exit: write its report, then exit at once.
  const bytesRead = (preload: string) => new Promise<number>((resolve, reject) => {
    const writeThenExit = `node --import tsx ${preload} -e "process.stdout.write('x'.repeat(4 << 20)); process.exit(0)"`;
    execFile('bash', ['-c', `${writeThenExit} | (sleep 1; wc -c)`], { cwd: root }, (err, stdout) => (err ? reject(err) : resolve(Number(stdout.trim()))));
  });
  // Without it, on Node 20, what the pipe did not take is lost at the exit (65,536 bytes arrive): Node's doing, not asserted.
  t.diagnostic(`without the preload: ${await bytesRead('')} of ${4 << 20} bytes`);
  assert.equal(await bytesRead('--import ./tests/helpers/blocking-stdout.ts'), 4 << 20);
});

it('long reports arrive whole: every test counted, and a failure at the end of each file named', { timeout: 150_000 }, async () => {
  // Each file one suite, whose tests are reported together when it ends, right before its process exits;
  // three at once (two run side by side), as the files of the whole suite run.
  const n = 6000;
  const files = ['long-a', 'long-b', 'long-c'].map((name) => {
    const file = join(dir, `${name}.test.ts`);
    writeFileSync(file, [
      "import assert from 'node:assert/strict';",
      "import { describe, it } from 'node:test';",
      "describe('one suite whose report comes at once, at the end', () => {",
      `  for (let t = 0; t < ${n}; t++) it(\`test \${t}, with a name long enough to fill the pipe to the runner${'-'.repeat(150)}\`, () => {});`,
      `  it('breaks at the end of ${name}', () => assert.fail('the last one'));`,
      '});',
      '',
    ].join('\n'));
    return file;
  });
  const { code, stdout } = await testSh(files);
  assert.equal(code, 1, stdout.slice(-3000));
  const tail = failuresSection(stdout);
  for (const name of ['long-a', 'long-b', 'long-c']) assert.match(tail, new RegExp(`not ok \\d+ - breaks at the end of ${name}`), stdout.slice(-3000));
  assert.match(tail, new RegExp(`\ntest: ${3 * n} passed, 3 failed, 0 cancelled\n$`));
});
