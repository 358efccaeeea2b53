/** The production clock's sleep: resolves after its time, or rejects with the abort reason itself. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { systemClock } from './system.js';

describe('systemClock.sleep', () => {
  it('resolves after the time, with or without a signal, and leaves no abort listener behind', async () => {
    const t0 = Date.now();
    await systemClock.sleep(20);
    const ac = new AbortController();
    let listeners = 0;
    const add = ac.signal.addEventListener.bind(ac.signal);
    const remove = ac.signal.removeEventListener.bind(ac.signal);
    ac.signal.addEventListener = ((...a: Parameters<typeof add>) => (listeners++, add(...a))) as typeof add;
    ac.signal.removeEventListener = ((...a: Parameters<typeof remove>) => (listeners--, remove(...a))) as typeof remove;
    await systemClock.sleep(20, ac.signal);
    assert.ok(Date.now() - t0 >= 38, `slept ${Date.now() - t0} ms`);
    assert.equal(listeners, 0);
  });

  it('rejects with the signal\'s own reason when aborted, before or during the sleep', async () => {
    const reason = new Error('stop');
    const during = new AbortController();
    const sleeping = systemClock.sleep(60_000, during.signal);
    during.abort(reason);
    await assert.rejects(sleeping, (err) => err === reason);
    await assert.rejects(systemClock.sleep(60_000, during.signal), (err) => err === reason);
  });
});
