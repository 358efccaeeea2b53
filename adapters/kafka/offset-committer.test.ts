import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { offsetCommitter, type CommitOffsets } from './offset-committer.js';

/** A commit function whose calls stay open until released, one by one. */
function gate() {
  const calls: { partitions: { partition: number; offset: string }[]; release: (error?: Error) => void }[] = [];
  const commit: CommitOffsets = (partitions) => new Promise<void>((resolve, reject) => {
    calls.push({ partitions, release: (error) => (error ? reject(error) : resolve()) });
  });
  return { calls, commit };
}

const tick = () => new Promise((r) => setImmediate(r));

async function until(what: string, ok: () => boolean, timeoutMs = 1000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('offsetCommitter', () => {
  it('keeps one commit in flight and coalesces what comes meanwhile, the latest offset of each partition', async () => {
    const { calls, commit } = gate();
    const c = offsetCommitter(() => assert.fail('no commit fails here'));
    c.add(commit, 0, '5');
    c.add(commit, 1, '3');
    c.add(commit, 0, '9');
    c.add(commit, 0, '12');
    assert.equal(calls.length, 1, 'the first offset goes at once, the rest wait for it');
    assert.deepEqual(calls[0]!.partitions, [{ partition: 0, offset: '5' }]);
    let settled = false;
    const done = c.settled().then(() => { settled = true; });
    calls[0]!.release();
    await tick();
    assert.equal(calls.length, 2);
    assert.deepEqual(calls[1]!.partitions, [{ partition: 1, offset: '3' }, { partition: 0, offset: '12' }]);
    assert.equal(settled, false, 'settled waits for the second commit');
    calls[1]!.release();
    await done;
    assert.equal(calls.length, 2);
  });

  it('drops the offsets not sent yet on clear (a rebalance), and commits what comes after', async () => {
    const { calls, commit } = gate();
    const c = offsetCommitter(() => assert.fail('no commit fails here'));
    c.add(commit, 0, '4');
    c.add(commit, 1, '6');
    c.clear();
    calls[0]!.release();
    await c.settled();
    assert.equal(calls.length, 1, 'the offset waiting at the rebalance was not committed');
    c.add(commit, 1, '8');
    assert.deepEqual(calls[1]!.partitions, [{ partition: 1, offset: '8' }]);
    calls[1]!.release();
    await c.settled();
  });

  it('reports a failed commit and goes on with the next offsets', async () => {
    const { calls, commit } = gate();
    const errors: unknown[] = [];
    const c = offsetCommitter((e) => errors.push(e));
    c.add(commit, 2, '7');
    c.add(commit, 2, '8');
    calls[0]!.release(new Error('REBALANCE_IN_PROGRESS'));
    await tick();
    assert.equal(errors.length, 1);
    assert.deepEqual(calls[1]!.partitions, [{ partition: 2, offset: '8' }]);
    calls[1]!.release();
    await c.settled();
    c.add(commit, 2, '9');
    assert.equal(calls.length, 3, 'an offset after everything settled starts a commit at once');
    calls[2]!.release();
    await c.settled();
  });

  it('tries a failed commit again after a pause, though no later offset of its partition comes (a coordinator blip, no rebalance)', async () => {
    const { calls, commit } = gate();
    const errors: unknown[] = [];
    const c = offsetCommitter((e) => errors.push(e), { retryDelayMs: 10 });
    c.add(commit, 3, '42');
    calls[0]!.release(new Error('NOT_COORDINATOR'));
    await until('the commit tried again', () => calls.length === 2);
    assert.equal(errors.length, 1);
    assert.deepEqual(calls[1]!.partitions, [{ partition: 3, offset: '42' }]);
    calls[1]!.release();
    await c.settled();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(calls.length, 2, 'nothing more once it landed');
  });

  it('does not try a failed commit again once the consumer rejoined its group (clear)', async () => {
    const { calls, commit } = gate();
    const c = offsetCommitter(() => {}, { retryDelayMs: 10 });
    c.add(commit, 3, '42');
    calls[0]!.release(new Error('REBALANCE_IN_PROGRESS'));
    await tick();
    c.clear();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(calls.length, 1, 'the offset of the old generation is not committed in the new one');
  });
});


describe('offsetCommitter: a commit that fails across a rejoin', () => {
  it('is not tried again when the consumer rejoined while it was in flight (its generation is gone)', async () => {
    const { calls, commit } = gate();
    const c = offsetCommitter(() => {}, { retryDelayMs: 10 });
    c.add(commit, 3, '42');
    c.clear();
    calls[0]!.release(new Error('REBALANCE_IN_PROGRESS'));
    await c.settled();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(calls.length, 1, 'the offset of the old generation is not committed in the new one');
  });
});
