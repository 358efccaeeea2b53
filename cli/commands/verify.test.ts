/** How `ats verify` prints a verification: one line when ok; else each problem on its own line, escaped and cut. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jobVerifyText } from './verify.js';

test('ok is one line; not ok names the events checked and each problem on its own line, control characters escaped, cut at 500', () => {
  assert.equal(jobVerifyText({ ok: true, events: 4, problems: [] }), 'ok: 4 events replayed');
  const long = `replay gives done {"result":"${'x'.repeat(600)}"}`;
  const lines = jobVerifyText({ ok: false, events: 3, problems: ['gap: event #2 has seq 3', 'replay gives failed {"lastError":"a\nb\u001b[2J"}', long] }).split('\n');
  assert.deepEqual(lines.slice(0, 3), ['not ok: 3 events checked', '  gap: event #2 has seq 3', '  replay gives failed {"lastError":"a\\nb\\u001b[2J"}']);
  assert.equal(lines.length, 4);
  assert.equal(lines[3], `  ${long.slice(0, 500)}…`);
});
