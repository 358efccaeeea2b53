/** Runs and attempts read back from a job's events (machines/runs.ts), under node. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { currentRun, runsOf, type RunEvent } from '../../machines/runs.js';

const ev = (type: string, attempt?: number): RunEvent => ({ type, data: attempt === undefined ? { type } : { type, attempt } });

describe('runsOf / currentRun', () => {
  test('one run: attempts as the machine numbers them', () => {
    const events = [ev('SUBMITTED'), ev('PUBLISHED', 1), ev('STARTED', 1), ev('FAILED', 1), ev('RETRY_DUE'), ev('STARTED', 2), ev('SUCCEEDED', 2)];
    assert.deepEqual(runsOf(events).map((r) => [r.run, r.attempt]), [[1, null], [1, 1], [1, 1], [1, 1], [1, null], [1, 2], [1, 2]]);
    assert.deepEqual(currentRun(events, 2), { run: 1, attempt: 2 });
  });

  test('after a redrive, attempt 3 of the job is attempt 1 of run 2', () => {
    const events = [
      ev('SUBMITTED'), ev('STARTED', 1), ev('FAILED', 1), ev('RETRY_DUE'), ev('STARTED', 2), ev('FAILED', 2),
      ev('REDRIVE'), ev('PUBLISHED', 3), ev('STARTED', 3), ev('FAILED', 3),
    ];
    const runs = runsOf(events);
    assert.deepEqual(runs.slice(6).map((r) => [r.run, r.attempt]), [[2, null], [2, 1], [2, 1], [2, 1]]);
    assert.deepEqual(currentRun(events, 3), { run: 2, attempt: 1 });
    // Redriven again before any attempt of run 2 started (cancelled while pending): run 3 starts from the same base.
    const again = [...events.slice(0, 7), ev('CANCEL'), ev('REDRIVE'), ev('STARTED', 3)];
    assert.deepEqual(runsOf(again).at(-1), { run: 3, attempt: 1 });
    assert.deepEqual(currentRun(again, 3), { run: 3, attempt: 1 });
  });

  test('a redriven job with no attempt yet in its new run is at attempt 0', () => {
    const events = [ev('SUBMITTED'), ev('STARTED', 1), ev('FAILED', 1), ev('REDRIVE')];
    assert.deepEqual(currentRun(events, 1), { run: 2, attempt: 0 });
  });
});
