/**
 * `sharedFor`: one read for every caller, while it runs and for `ms` after
 * its answer came; a failed read is not kept.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock, settle } from '../tests/helpers/manual-clock.js';
import { sharedFor } from './answer-cache.js';

/** A read the test ends by hand, counting how often it was started. */
function slowRead() {
  const pending: Array<{ resolve(v: number): void; reject(e: Error): void }> = [];
  let started = 0;
  const read = () => {
    started += 1;
    return new Promise<number>((resolve, reject) => pending.push({ resolve, reject }));
  };
  return { read, pending, started: () => started };
}

describe('sharedFor', () => {
  it('hands the running read to every caller until it settles, however long it takes', async () => {
    const clock = new ManualClock();
    const r = slowRead();
    const shared = sharedFor(1000, clock, r.read);
    const first = shared();
    await clock.advance(5_000); // a console polls again while the read is still running
    const second = shared();
    await clock.advance(5_000);
    const third = shared();
    assert.equal(r.started(), 1, 'one read in flight, not one per caller');
    r.pending[0]!.resolve(42);
    assert.deepEqual(await Promise.all([first, second, third]), [42, 42, 42]);
  });

  it('reuses the answer for `ms` after it came, then reads again', async () => {
    const clock = new ManualClock();
    const r = slowRead();
    const shared = sharedFor(1000, clock, r.read);
    const first = shared();
    await clock.advance(3_000);
    r.pending[0]!.resolve(1);
    await first;
    await settle();
    await clock.advance(999);
    assert.equal(await Promise.race([shared(), settle().then(() => 'pending')]), 1, 'within the window after the answer came');
    assert.equal(r.started(), 1);
    await clock.advance(1);
    const next = shared();
    assert.equal(r.started(), 2, 'the window is over: a new read');
    r.pending[1]!.resolve(2);
    assert.equal(await next, 2);
  });

  it('keeps no failed read: the next caller reads again', async () => {
    const clock = new ManualClock();
    const r = slowRead();
    const shared = sharedFor(1000, clock, r.read);
    const first = shared();
    const joined = shared();
    r.pending[0]!.reject(new Error('the store blinked'));
    await assert.rejects(first, /blinked/);
    await assert.rejects(joined, /blinked/, 'a caller that joined the read gets its failure');
    await settle();
    const retry = shared();
    assert.equal(r.started(), 2);
    r.pending[1]!.resolve(7);
    assert.equal(await retry, 7);
  });
});
