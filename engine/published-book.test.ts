/**
 * The relay's delayed PUBLISHED bookkeeping: items wait for their time, go in
 * order and in bounded record calls, a backlog is recorded without waiting,
 * a stop records what is left, and a failed record is logged, not fatal.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock, settle } from '../tests/helpers/manual-clock.js';
import { silentLogger } from './logger.js';
import { DueQueue, PublishedRecorder, type RecorderOptions } from './published-book.js';

describe('DueQueue', () => {
  it('gives the items of due batches, oldest first, at most max per take, splitting a batch', () => {
    const q = new DueQueue<number>();
    q.push([1, 2, 3], 10);
    q.push([], 15);
    q.push([4, 5], 20);
    assert.equal(q.size, 5);
    assert.equal(q.nextDue(), 10);
    assert.deepEqual(q.take(9, 10), [], 'nothing is due before its time');
    assert.deepEqual(q.take(10, 2), [1, 2]);
    assert.deepEqual(q.take(19, 10), [3], 'the rest of a split batch, not the next one before its time');
    assert.equal(q.nextDue(), 20);
    assert.deepEqual(q.take(0, 10, true), [4, 5], '`all` takes regardless of time');
    assert.equal(q.size, 0);
    assert.equal(q.nextDue(), null);
  });
});

function recorder(opts: Partial<RecorderOptions> = {}, fail?: (items: number[]) => boolean) {
  const clock = new ManualClock();
  const calls: number[][] = [];
  const errors: string[] = [];
  const logger = { ...silentLogger, error: (msg: string) => void errors.push(msg) };
  const r = new PublishedRecorder<number>({
    clock, logger,
    record: async (items) => {
      calls.push(items);
      if (fail?.(items)) throw new Error('database down');
    },
  }, { delayMs: 200, maxPerRecord: 3, limit: 100, ...opts });
  const ac = new AbortController();
  r.start();
  return { r, clock, calls, errors, ac };
}

describe('PublishedRecorder', () => {
  it('records each batch once its delay passed, in order, in calls of at most maxPerRecord', async () => {
    const { r, clock, calls, ac } = recorder();
    r.add([1, 2]);
    await clock.advance(100);
    r.add([3, 4, 5]);
    await clock.advance(99);
    assert.deepEqual(calls, [], 'nothing before the first batch is 200 ms old');
    await clock.advance(1);
    assert.deepEqual(calls, [[1, 2]]);
    await clock.advance(100);
    assert.deepEqual(calls, [[1, 2], [3, 4, 5]]);
    assert.equal(r.size, 0);
    ac.abort();
    await r.stop();
  });

  it('records a backlog over its limit at once, and room() holds the caller until it is under', async () => {
    const { r, clock, calls, ac } = recorder({ limit: 4 });
    r.add([1, 2, 3, 4, 5]);
    let roomy = false;
    const room = r.room(ac.signal).then(() => { roomy = true; });
    await settle();
    assert.deepEqual(calls, [[1, 2, 3]], 'over the limit: recorded without waiting for its time');
    await room;
    assert.ok(roomy);
    assert.equal(r.size, 2, 'under the limit again, the rest waits for its time');
    await clock.advance(200);
    assert.deepEqual(calls, [[1, 2, 3], [4, 5]]);
    ac.abort();
    await r.stop();
  });

  it('on stop records everything left at once, then resolves', async () => {
    const { r, calls, ac } = recorder();
    r.add([1, 2, 3, 4]);
    r.add([5]);
    ac.abort();
    await r.stop();
    assert.deepEqual(calls, [[1, 2, 3], [4, 5]]);
    assert.equal(r.size, 0);
  });

  it('records what is added after the caller began stopping, once stop() is called', async () => {
    const { r, calls, ac } = recorder();
    r.add([1]);
    ac.abort(); // the relay's loop is stopping, a publish still in flight
    await settle();
    r.add([2]); // that publish's dispatches
    await r.room(ac.signal);
    await r.stop();
    assert.deepEqual(calls.flat(), [1, 2]);
  });

  it('logs a failed record and goes on with the next', async () => {
    const { r, clock, calls, errors, ac } = recorder({}, (items) => items.includes(1));
    r.add([1]);
    r.add([2]);
    await clock.advance(200);
    await settle();
    assert.deepEqual(calls, [[1, 2]]);
    r.add([3]);
    await clock.advance(200);
    assert.deepEqual(calls, [[1, 2], [3]]);
    assert.equal(errors.length, 1);
    ac.abort();
    await r.stop();
  });
});
