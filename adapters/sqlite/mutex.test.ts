import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Mutex } from './mutex.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Mutex', () => {
  it('runs calls one at a time, in the order they were made', async () => {
    const m = new Mutex();
    const log: string[] = [];
    let live = 0;
    const job = (name: string) => async () => {
      live++;
      assert.equal(live, 1, 'two calls ran at once');
      log.push(`${name} in`);
      await tick();
      log.push(`${name} out`);
      live--;
      return name;
    };
    const results = await Promise.all([m.run(job('a')), m.run(job('b')), m.run(job('c'))]);
    assert.deepEqual(results, ['a', 'b', 'c']);
    assert.deepEqual(log, ['a in', 'a out', 'b in', 'b out', 'c in', 'c out']);
  });

  it('passes a failure to its caller only, and the next call still runs', async () => {
    const m = new Mutex();
    const failed = m.run(async () => { throw new Error('boom'); });
    const next = m.run(async () => 'ok');
    await assert.rejects(failed, /boom/);
    assert.equal(await next, 'ok');
  });

  it('a function that throws synchronously rejects its call without wedging the queue', async () => {
    const m = new Mutex();
    const failed = m.run((() => { throw new Error('sync'); }) as () => Promise<never>);
    await assert.rejects(failed, /sync/);
    assert.equal(await m.run(async () => 1), 1);
  });

  it('holds on to nothing once idle (no chain of settled calls grows)', async () => {
    const m = new Mutex();
    for (let i = 0; i < 1000; i++) await m.run(async () => i);
    assert.equal(m.queued, 0);
    const held = m.run(() => new Promise<void>(() => {}));
    void m.run(async () => undefined);
    await tick();
    assert.equal(m.queued, 2);
    void held;
  });
});
