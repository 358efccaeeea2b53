/** The console's in-memory series (server/ui/client/console-data.ts), under node. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BUCKETS, BUCKET_MS, QueueWait, Throughput, WINDOW_MS, WorkerSeen, median, type LiveEvent } from './client/console-data.js';

const NOW = 1_800_000_000_000 - 1; // the last ms of a bucket
const iso = (t: number) => new Date(t).toISOString();
const ev = (jobId: string, type: string, from: string | null, to: string, t: number, data: object = {}): LiveEvent =>
  ({ jobId, type, from, to, at: iso(t), data });
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

describe('Throughput', () => {
  test('counts submits, done and dead per 30 s bucket over the last 15 minutes, oldest first', () => {
    const t = new Throughput();
    t.addEvent(ev('a', 'SUBMITTED', null, 'pending', NOW - 10), NOW);
    t.addEvent(ev('a', 'SUCCEEDED', 'running', 'done', NOW - 5), NOW);
    t.addEvent(ev('b', 'FAILED', 'running', 'dead', NOW - BUCKET_MS - 5), NOW);
    t.addEvent(ev('c', 'FAILED', 'running', 'retrying', NOW - 5), NOW); // a retry is not dead
    const done = t.series('done', NOW);
    assert.equal(done.length, BUCKETS);
    assert.deepEqual(done.slice(-2), [0, 1]);
    assert.deepEqual(t.series('dead', NOW).slice(-2), [1, 0]);
    assert.equal(sum(t.series('submitted', NOW)), 1);
  });

  test('a job listed at load and the same transition seen on the stream count once', () => {
    const t = new Throughput();
    const created = NOW - 60_000;
    const finished = NOW - 30_000;
    t.addJob({ id: 'a', state: 'done', createdAt: iso(created), updatedAt: iso(finished) }, NOW);
    t.addEvent(ev('a', 'SUBMITTED', null, 'pending', created), NOW);
    t.addEvent(ev('a', 'SUCCEEDED', 'running', 'done', finished), NOW);
    assert.equal(sum(t.series('submitted', NOW)), 1);
    assert.equal(sum(t.series('done', NOW)), 1);
    // A job redriven and dead again is dead twice, at two times.
    t.addJob({ id: 'b', state: 'dead', createdAt: iso(created), updatedAt: iso(finished) }, NOW);
    t.addEvent(ev('b', 'FAILED', 'running', 'dead', finished + 1000), NOW);
    assert.equal(sum(t.series('dead', NOW)), 2);
  });

  test('what is older than the window is left out, and pruned as time moves on', () => {
    const t = new Throughput();
    assert.equal(t.add('done', 'old', NOW - WINDOW_MS - BUCKET_MS, NOW), false);
    assert.equal(t.add('done', 'a', NOW - 1000, NOW), true);
    assert.equal(t.add('done', 'a', NOW - 1000, NOW), false, 'a repeat');
    const later = NOW + WINDOW_MS + BUCKET_MS;
    t.prune(later);
    assert.equal(sum(t.series('done', later)), 0);
    assert.equal(t.add('done', 'a', NOW - 1000, NOW), true, 'forgotten once pruned');
  });
});

describe('QueueWait', () => {
  test('the wait runs from due (submit, a later runAt, a retry or a redrive coming due) to STARTED', () => {
    const w = new QueueWait();
    w.addEvent(ev('a', 'SUBMITTED', null, 'pending', NOW - 5000));
    assert.equal(w.addEvent(ev('a', 'STARTED', 'published', 'running', NOW - 4000, { attempt: 1 })), 1000);
    w.addEvent(ev('b', 'SUBMITTED', null, 'pending', NOW - 60_000, { runAt: NOW - 3000 }));
    assert.equal(w.addEvent(ev('b', 'STARTED', 'pending', 'running', NOW - 2000, { attempt: 1 })), 1000);
    w.addEvent(ev('a', 'RETRY_DUE', 'retrying', 'pending', NOW - 2000));
    assert.equal(w.addEvent(ev('a', 'STARTED', 'published', 'running', NOW - 1000, { attempt: 2 })), 1000);
    // A start whose becoming due the page did not see: unknown, not counted.
    assert.equal(w.addEvent(ev('z', 'STARTED', 'published', 'running', NOW - 1000, { attempt: 1 })), null);
    const last = w.series(NOW).at(-1)!;
    assert.deepEqual(last, { n: 3, median: 1000, max: 1000 });
    assert.equal(w.series(NOW).filter((p) => p.n === 0).every((p) => p.median === null), true);
  });

  test('a busy bucket: every wait counted and the longest kept, in bounded memory (no spread of 150,000 values)', () => {
    const w = new QueueWait();
    const at = NOW - 1000;
    for (let i = 0; i < 150_000; i++) {
      w.addEvent(ev(`j${i}`, 'SUBMITTED', null, 'pending', at - 1 - (i === 77 ? 900 : 10)));
      w.addEvent(ev(`j${i}`, 'STARTED', 'published', 'running', at, { attempt: 1 }));
    }
    const last = w.series(NOW).at(-1)!;
    assert.deepEqual(last, { n: 150_000, median: 11, max: 901 });
  });

  test('median', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
  });
});

describe('WorkerSeen', () => {
  test('lists the workers that started attempts, what they run, their last activity and lost leases', () => {
    const w = new WorkerSeen();
    w.addEvent(ev('a', 'STARTED', 'published', 'running', NOW - 9000, { attempt: 1, workerId: 'w1' }));
    w.addEvent(ev('b', 'STARTED', 'published', 'running', NOW - 8000, { attempt: 1, workerId: 'w1' }));
    w.addEvent(ev('c', 'STARTED', 'published', 'running', NOW - 7000, { attempt: 1, workerId: 'w2' }));
    w.addEvent(ev('a', 'HEARTBEAT', 'running', 'running', NOW - 1000, { attempt: 1 }));
    w.addEvent(ev('b', 'SUCCEEDED', 'running', 'done', NOW - 6000, { attempt: 1 }));
    w.addEvent(ev('c', 'LEASE_EXPIRED', 'running', 'retrying', NOW - 500, { attempt: 1 }));
    assert.deepEqual(w.list(), [
      { workerId: 'w1', started: 2, running: 1, lastSeen: NOW - 1000, leasesLost: 0 },
      { workerId: 'w2', started: 1, running: 0, lastSeen: NOW - 7000, leasesLost: 1 },
    ]);
  });
});
