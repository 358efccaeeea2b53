import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { Semaphore } from './semaphore.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Semaphore', () => {
  it('hands out its free slots at once, then makes callers wait', async () => {
    const s = new Semaphore(2);
    await s.acquire();
    await s.acquire();
    assert.equal(s.available, 0);
    let got = false;
    void s.acquire().then(() => { got = true; });
    await tick();
    assert.equal(got, false);
    s.release();
    await tick();
    assert.equal(got, true);
    assert.equal(s.available, 0, 'a release handed to a waiter does not free a slot');
  });

  it('resumes waiters first in, first out', async () => {
    const s = new Semaphore(1);
    await s.acquire();
    const order: number[] = [];
    const all = [1, 2, 3].map((i) => s.acquire().then(() => order.push(i)));
    for (let i = 0; i < 3; i++) s.release();
    await Promise.all(all);
    assert.deepEqual(order, [1, 2, 3]);
  });

  it('gives a freed slot to the highest priority waiting, first in first out within a priority', async () => {
    const s = new Semaphore(1);
    await s.acquire();
    const order: string[] = [];
    const all = ([['a', 0], ['b', -5], ['c', 10], ['d', 0], ['e', 10], ['f', 3]] as const)
      .map(([name, priority]) => s.acquire(undefined, priority).then(() => order.push(name)));
    await tick();
    for (let i = 0; i < 6; i++) s.release();
    await Promise.all(all);
    assert.deepEqual(order, ['c', 'e', 'f', 'a', 'd', 'b']);
  });

  it('an aborted waiter of a high priority leaves the queue to the others', async () => {
    const s = new Semaphore(1);
    await s.acquire();
    const abort = new AbortController();
    const high = s.acquire(abort.signal, 10);
    const low = s.acquire(undefined, 0);
    abort.abort(new Error('gone'));
    await assert.rejects(high, /gone/);
    assert.equal(s.waiting, 1);
    s.release();
    await low;
    assert.equal(s.available, 0);
  });

  it('gives no slot, not even a free one, to a lower priority while higher work is announced', async () => {
    const s = new Semaphore(2);
    s.announce(0, 2);
    assert.equal(s.tryAcquire(-5), false, 'a free slot is not taken past announced work of a higher priority');
    let low = false;
    const lowGot = s.acquire(undefined, -5).then(() => { low = true; });
    assert.equal(s.tryAcquire(0), true, 'the announced priority itself may take one');
    s.settle(0);
    await tick();
    assert.equal(low, false, 'one piece of priority 0 is still announced');
    assert.equal(s.tryAcquire(3), true, 'a higher priority than any announced may take one');
    s.release();
    await tick();
    assert.equal(low, false);
    s.settle(0);
    await lowGot;
    assert.equal(s.available, 0);
  });

  it('a settle below zero, or of a priority never announced, leaves nothing announced', () => {
    const s = new Semaphore(1);
    s.settle(7);
    s.announce(1);
    s.settle(1, 5);
    assert.equal(s.tryAcquire(-1000), true);
  });

  it('a release with nobody waiting frees a slot', async () => {
    const s = new Semaphore(1);
    await s.acquire();
    s.release();
    assert.equal(s.available, 1);
  });

  it('rejects an aborted waiter, drops it from the queue, and gives the slot to the next one', async () => {
    const s = new Semaphore(1);
    await s.acquire();
    const stop = new AbortController();
    const aborted = s.acquire(stop.signal);
    let second = false;
    void s.acquire().then(() => { second = true; });
    stop.abort(new Error('stopping'));
    await assert.rejects(aborted, /stopping/);
    assert.equal(s.waiting, 1);
    s.release();
    await tick();
    assert.equal(second, true);
    assert.equal(s.waiting, 0);
  });

  it('rejects at once on an already aborted signal, taking no slot', async () => {
    const s = new Semaphore(1);
    const stop = new AbortController();
    stop.abort(new Error('gone'));
    await assert.rejects(s.acquire(stop.signal), /gone/);
    assert.equal(s.available, 1);
  });

  it('leaves no abort listener behind on a long-lived signal', async () => {
    const s = new Semaphore(1);
    const signal = new AbortController().signal;
    for (let i = 0; i < 100; i++) {
      const p = s.acquire(signal);
      s.release();
      await p;
      s.release();
    }
    await s.acquire(signal);
    const waiting = s.acquire(signal);
    s.release();
    await waiting;
    assert.equal(getEventListeners(signal, 'abort').length, 0);
  });
});
