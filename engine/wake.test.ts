import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock, settle } from '../tests/helpers/manual-clock.js';
import { Waker } from './wake.js';

/** Resolves to 'woken' or stays 'waiting' after the microtasks ran. */
async function state(p: Promise<void>): Promise<'woken' | 'waiting'> {
  let done = false;
  void p.then(() => { done = true; });
  await settle();
  return done ? 'woken' : 'waiting';
}

describe('Waker', () => {
  it('wakes a waiter on notify, before its poll interval', async () => {
    const clock = new ManualClock();
    const waker = new Waker();
    const w = waker.wait(clock, 1000);
    assert.equal(await state(w), 'waiting');
    waker.notify();
    assert.equal(await state(w), 'woken');
    assert.equal(waker.waiting, 0);
    assert.equal(clock.sleeping, 0, 'the fallback sleep is cancelled');
  });

  it('wakes every current waiter on one notify', async () => {
    const clock = new ManualClock();
    const waker = new Waker();
    const a = waker.wait(clock, 1000);
    const b = waker.wait(clock, 1000);
    waker.notify();
    assert.deepEqual([await state(a), await state(b)], ['woken', 'woken']);
  });

  it('returns after the poll interval when nobody notifies', async () => {
    const clock = new ManualClock();
    const waker = new Waker();
    const w = waker.wait(clock, 1000);
    await clock.advance(999);
    assert.equal(await state(w), 'waiting');
    await clock.advance(1);
    assert.equal(await state(w), 'woken');
  });

  it('keeps a notify made while nobody waits for the next wait', async () => {
    const clock = new ManualClock();
    const waker = new Waker();
    waker.notify();
    assert.equal(await state(waker.wait(clock, 1000)), 'woken');
    // One notify, one wake-up: the next wait sleeps again.
    assert.equal(await state(waker.wait(clock, 1000)), 'waiting');
  });

  it('keeps a notify made between two waits after one timed out (the relay busy with a batch)', async () => {
    const clock = new ManualClock();
    const waker = new Waker();
    const first = waker.wait(clock, 1000);
    await clock.advance(1000);
    assert.equal(await state(first), 'woken');
    waker.notify(); // a commit while the relay publishes
    assert.equal(await state(waker.wait(clock, 1000)), 'woken', 'the commit made while nobody waited was forgotten');
  });

  it('keeps nothing of a wait that timed out or was aborted (no leak over many polls)', async () => {
    const clock = new ManualClock();
    const waker = new Waker();
    for (let i = 0; i < 1000; i++) {
      const w = waker.wait(clock, 10);
      await clock.advance(10);
      await w;
    }
    assert.equal(waker.waiting, 0, 'a timed-out wait left its resolver behind');
    const stop = new AbortController();
    const w = waker.wait(clock, 1000, stop.signal);
    stop.abort();
    await w;
    assert.equal(waker.waiting, 0, 'an aborted wait left its resolver behind');
    assert.equal(clock.sleeping, 0);
  });

  it('returns at once when the signal aborts, and when it was already aborted', async () => {
    const clock = new ManualClock();
    const waker = new Waker();
    const stop = new AbortController();
    const w = waker.wait(clock, 60_000, stop.signal);
    assert.equal(await state(w), 'waiting');
    stop.abort();
    assert.equal(await state(w), 'woken');
    assert.equal(await state(waker.wait(clock, 60_000, stop.signal)), 'woken', 'a wait on an aborted signal slept');
    assert.equal(clock.sleeping, 0);
  });
});
