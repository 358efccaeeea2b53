import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batcher } from './batcher.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A batch function whose calls the test resolves by hand. */
function manual() {
  const calls: Array<{ items: number[]; resolve(r: string[]): void; reject(e: unknown): void }> = [];
  const run = (items: number[]) => new Promise<string[]>((resolve, reject) => calls.push({ items, resolve, reject }));
  return { calls, run };
}

describe('Batcher', () => {
  it('runs the items added in one tick as one batch, each caller getting its own result in order', async () => {
    const batches: number[][] = [];
    const b = new Batcher(async (items: number[]) => {
      batches.push(items);
      return items.map((i) => `r${i}`);
    });
    const results = await Promise.all([b.add(1), b.add(2), b.add(3)]);
    assert.deepEqual(results, ['r1', 'r2', 'r3']);
    assert.deepEqual(batches, [[1, 2, 3]]);
  });

  it('takes what was added while a batch is in flight as the next batch, after it', async () => {
    const { calls, run } = manual();
    const b = new Batcher(run);
    const first = b.add(1);
    await tick();
    assert.equal(calls.length, 1);
    const later = [b.add(2), b.add(3)];
    await tick();
    assert.equal(calls.length, 1, 'a second batch started while one was in flight');
    calls[0]!.resolve(['a']);
    assert.equal(await first, 'a');
    await tick();
    assert.deepEqual(calls[1]!.items, [2, 3]);
    calls[1]!.resolve(['b', 'c']);
    assert.deepEqual(await Promise.all(later), ['b', 'c']);
  });

  it('splits at maxBatch', async () => {
    const batches: number[][] = [];
    const b = new Batcher(async (items: number[]) => {
      batches.push(items);
      return items.map(String);
    }, 2);
    await Promise.all([1, 2, 3, 4, 5].map((i) => b.add(i)));
    assert.deepEqual(batches, [[1, 2], [3, 4], [5]]);
  });

  it('rejects every item of a failed batch, and runs the next batch anyway', async () => {
    let n = 0;
    const b = new Batcher(async (items: number[]) => {
      if (n++ === 0) throw new Error('boom');
      return items.map(String);
    });
    const failed = await Promise.allSettled([b.add(1), b.add(2)]);
    assert.deepEqual(failed.map((r) => r.status), ['rejected', 'rejected']);
    assert.equal(await b.add(3), '3');
  });

  it('rejects the batch when the function returns fewer results than items (never resolves undefined)', async () => {
    const b = new Batcher(async (items: number[]) => items.slice(1).map(String));
    const settled = await Promise.allSettled([b.add(1), b.add(2)]);
    assert.deepEqual(settled.map((r) => r.status), ['rejected', 'rejected']);
  });

  it('flush resolves once everything added so far has run, and nothing stays queued', async () => {
    const { calls, run } = manual();
    const b = new Batcher(run);
    void b.add(1);
    let flushed = false;
    const flushing = b.flush().then(() => { flushed = true; });
    await tick();
    await tick();
    assert.equal(flushed, false);
    calls[0]!.resolve(['x']);
    await flushing;
    assert.equal(b.size, 0);
  });
});
