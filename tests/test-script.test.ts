/**
 * `npm test` (scripts/test.sh) ends with its failures: a long run is often
 * read from its end, and the failing test's name and error must be there, not
 * only somewhere in thousands of lines above.
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

it('a failing run ends with each failing test, its error and where it was thrown, then the counts', { timeout: 150_000 }, async () => {
  const file = join(dir, 'sample.test.ts');
  writeFileSync(file, [
    "import assert from 'node:assert/strict';",
    "import { describe, it } from 'node:test';",
    "describe('a suite', () => {",
    "  it('passes', () => {});",
    "  it('breaks on purpose', () => assert.equal(1 + 1, 3, 'the sum marker-7f3a'));",
    "  it('passes after it', () => {});",
    '});',
    '',
  ].join('\n'));
  const { code, stdout } = await testSh([file]);
  assert.equal(code, 1, stdout);
  const tail = stdout.slice(stdout.lastIndexOf('test: the failures'));
  assert.ok(tail.startsWith('test: the failures'), stdout);
  assert.match(tail, /not ok \d+ - breaks on purpose/);
  assert.match(tail, /the sum marker-7f3a/);
  assert.match(tail, /sample\.test\.ts:5/);
  assert.doesNotMatch(tail, /passes/);
  assert.match(tail, /\ntest: 2 passed, 1 failed\n$/);
});

it('a passing run prints no failures section', { timeout: 150_000 }, async () => {
  const file = join(dir, 'fine.test.ts');
  writeFileSync(file, "import { it } from 'node:test';\nit('passes', () => {});\n");
  const { code, stdout } = await testSh([file]);
  assert.equal(code, 0, stdout);
  assert.doesNotMatch(stdout, /test: the failures/);
  assert.match(stdout, /\ntest: 1 passed, 0 failed\n$/);
});
