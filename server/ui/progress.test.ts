/** A job's progress as the inspector shows it (server/ui/client/progress.ts), under node. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { progressJson } from '../../engine/progress.js';
import type { JobProgress } from '../../engine/ports.js';
import { progressMessage } from '../stream/protocol.js';
import {
  newerProgress, percentText, progressAttemptText, progressFromMessage, progressOfJob, progressShown, type Progress, type StreamProgressMessage,
} from './client/progress.js';
import type { RunEvent } from '../../machines/runs.js';

const AT = '2026-12-01T04:30:00.000Z';
const later = (ms: number) => new Date(Date.parse(AT) + ms).toISOString();
const p = (value: unknown, attempt = 1, at = AT): Progress => ({ value, attempt, at });
const ev = (type: string, attempt?: number): RunEvent => ({ type, data: attempt === undefined ? { type } : { type, attempt } });
const JOB = '01JD3W7Z9Q4X2M8K5N6P0R1S2T';

describe('progress of GET /v1/jobs/:id', () => {
  test('read from `progress`; null when none, when absent (an older server), or not of the shape', () => {
    assert.deepEqual(progressOfJob({ id: JOB, progress: { value: 42, attempt: 2, at: AT } }), p(42, 2));
    assert.deepEqual(progressOfJob({ progress: { value: { stage: 'copy' }, attempt: 1, at: AT } }), p({ stage: 'copy' }));
    assert.equal(progressOfJob({ id: JOB, progress: null }), null);
    assert.equal(progressOfJob({ id: JOB }), null, 'an older server has no progress field');
    assert.equal(progressOfJob(null), null);
    for (const bad of [42, 'x', { value: 1, attempt: 0, at: AT }, { value: 1, attempt: 1 }, { attempt: 1, at: AT }, { value: 1, attempt: '1', at: AT }]) {
      assert.equal(progressOfJob({ progress: bad }), null, JSON.stringify(bad));
    }
  });
});

describe('progress messages of the stream', () => {
  const record = (value: unknown, attempt = 1): JobProgress =>
    ({ jobId: JOB, type: 'media.transcode', queue: 'default', attempt, value: JSON.parse(progressJson(value)), at: Date.parse(AT) });
  const received = (p: JobProgress) => JSON.parse(progressMessage(p)) as StreamProgressMessage;

  test('the messages the server builds, a number and an object, read as the job\'s progress reads', () => {
    const n = received(record(42.5, 2));
    assert.deepEqual(n, { kind: 'progress', jobId: JOB, jobType: 'media.transcode', queue: 'default', attempt: 2, progress: 42.5, at: AT });
    assert.deepEqual(progressFromMessage(n), p(42.5, 2));
    assert.deepEqual(progressFromMessage(n), progressOfJob({ progress: { value: 42.5, attempt: 2, at: AT } }), 'the same as from the job');
    const o = received(record({ stage: 'upload', done: 3, of: 4 }));
    assert.deepEqual(progressFromMessage(o), p({ stage: 'upload', done: 3, of: 4 }));
  });
});

describe('the newer progress wins', () => {
  test('a later attempt, then a later or equal time; nothing older put back', () => {
    assert.equal(newerProgress(null, null), null);
    const a = p(10, 1, AT);
    assert.equal(newerProgress(null, a), a);
    assert.equal(newerProgress(a, null), a, 'a reload with no progress keeps what the stream showed');
    const b = p(20, 1, later(500));
    assert.equal(newerProgress(a, b), b);
    assert.equal(newerProgress(b, a), b, 'a reload that read before the last message does not go back');
    const same = p(10, 1, AT);
    assert.equal(newerProgress(a, same), same, 'the same time: the newer read');
    const retry = p(5, 2, AT);
    assert.equal(newerProgress(b, retry), retry, 'the next attempt, even stamped earlier (another worker\'s clock)');
    assert.equal(newerProgress(retry, b), retry);
  });
});

describe('how it shows', () => {
  test('a number is a bar, clamped, with at most one decimal', () => {
    assert.deepEqual(progressShown(42), { kind: 'bar', percent: 42, text: '42%' });
    assert.deepEqual(progressShown(12.345), { kind: 'bar', percent: 12.345, text: '12.3%' });
    assert.deepEqual(progressShown(0), { kind: 'bar', percent: 0, text: '0%' });
    assert.deepEqual(progressShown(100), { kind: 'bar', percent: 100, text: '100%' });
    assert.deepEqual(progressShown(140), { kind: 'bar', percent: 100, text: '100%' });
    assert.equal(percentText(99.96), '100%');
  });

  test('an object is its indented JSON, as text (markup stays text on the page)', () => {
    assert.deepEqual(progressShown({ stage: 'copy', done: 3, of: 4 }), { kind: 'json', text: '{\n  "stage": "copy",\n  "done": 3,\n  "of": 4\n}' });
    assert.equal(progressShown({ note: '<img onerror=alert(1)>' }).text.includes('<img onerror=alert(1)>'), true);
    assert.deepEqual(progressShown({}), { kind: 'json', text: '{}' });
  });

  test('the attempt as the inspector names it: within its run after a redrive; an earlier one said so', () => {
    const oneRun = [ev('SUBMITTED'), ev('PUBLISHED', 1), ev('STARTED', 1)];
    assert.equal(progressAttemptText(p(5, 1), oneRun, 1), 'attempt 1');
    const retried = [...oneRun, ev('FAILED', 1), ev('RETRY_DUE'), ev('PUBLISHED', 2), ev('STARTED', 2)];
    assert.equal(progressAttemptText(p(5, 1), retried, 2), 'attempt 1 (an earlier attempt)');
    assert.equal(progressAttemptText(p(5, 2), retried, 2), 'attempt 2');
    const redriven = [...retried, ev('FAILED', 2), ev('REDRIVE'), ev('PUBLISHED', 3), ev('STARTED', 3)];
    assert.equal(progressAttemptText(p(5, 3), redriven, 3), 'run 2 · attempt 1');
    // A message ahead of the events the page has loaded (its STARTED not read yet): the machine's number.
    assert.equal(progressAttemptText(p(5, 4), redriven, 3), 'attempt 4');
  });
});
