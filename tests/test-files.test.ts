/**
 * `npm test` runs each file with --test-force-exit: once every test a file
 * has declared has ended, the file exits. A test declared after a top-level
 * `await` (`const up = await requireMysql()`) is declared only when that
 * await settles; should the tests declared before it have ended by then,
 * the later ones are never run nor reported, and nothing fails. So in every
 * test file, the top-level awaits come before the first test.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * The first top-level `await` after the first top-level test declaration (`test(`, `it(`, `describe(`,
 * with or without a modifier, or such a call in a top-level `if`/`for`), as `line N: text`; null when none.
 * Top level is read from indentation (the code's own style: two spaces a block); text inside template
 * literals (a child process's script) is skipped.
 */
function awaitAfterTests(source: string): string | null {
  let inTemplate = false;
  let declared = false;
  for (const [i, line] of source.split('\n').entries()) {
    const wasInTemplate = inTemplate;
    // Backticks not escaped flip the state (the code keeps `${...}` with backticks inside on one line).
    for (const m of line.matchAll(/\\?`/g)) if (m[0] === '`') inTemplate = !inTemplate;
    if (wasInTemplate) continue;
    const topLevel = /^\S/.test(line) && !/^(\/\/|\/\*|\*)/.test(line);
    const blockTop = /^ {2}\S/.test(line);
    if (!declared && (topLevel || blockTop) && /^\s*(describe|test|it)(\.\w+)?\(/.test(line)) declared = true;
    else if (declared && topLevel && /\bawait\b/.test(line) && !/=>|\basync\b|\bfunction\b/.test(line)) return `line ${i + 1}: ${line.trim()}`;
  }
  return null;
}

test('the check finds a top-level await after a declared test, not one before, in a function, or in a template', () => {
  assert.equal(awaitAfterTests("test('a', () => {});\nconst up = await requireKafka();\n"), "line 2: const up = await requireKafka();");
  assert.equal(awaitAfterTests("for (const b of BACKENDS) {\n  describe(b, () => {});\n}\nif (await up()) {\n"), 'line 4: if (await up()) {');
  assert.equal(awaitAfterTests("const up = await requireKafka();\ntest('a', async () => {\n  await x();\n});\n"), null);
  assert.equal(awaitAfterTests("test('a', () => {});\nconst script = `\nconst code = await main();\n`;\n"), null);
  assert.equal(awaitAfterTests("test('a', () => {});\nconst f = async () => await x();\n"), null);
});

test('no test file awaits at its top level after its first test is declared', () => {
  const files = execFileSync('git', ['ls-files', '*.test.ts'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
  assert.ok(files.length > 100, `${files.length} test files found`);
  const wrong = files.flatMap((f) => {
    const at = awaitAfterTests(readFileSync(join(root, f), 'utf8'));
    return at ? [`${f} ${at}`] : [];
  });
  assert.deepEqual(wrong, [], 'move these awaits above the first test of their file');
});
