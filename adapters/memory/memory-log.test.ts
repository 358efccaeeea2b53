import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TOPICS, type LogRecord } from '../../engine/ports.js';
import { logContract } from '../../tests/contracts/log.contract.js';
import { createMemoryLog, partitionForKey } from './index.js';

logContract('in-process log', async () => {
  const log = createMemoryLog();
  return { log, cleanup: () => log.close() };
}, { timeoutMs: 5000, settleMs: 100 });

const msg = (key: string, value: string, topic: string = TOPICS.dispatch) => ({ topic, key, value, headers: {} });
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('in-process log specifics', () => {
  it('maps a key to the same partition every time, and spreads keys', () => {
    assert.equal(partitionForKey('job-42', 3), partitionForKey('job-42', 3));
    const used = new Set(Array.from({ length: 30 }, (_, i) => partitionForKey(`key-${i}`, 3)));
    assert.deepEqual([...used].sort(), [0, 1, 2]);
    const log = createMemoryLog();
    return log.publish([msg('job-42', 'x')]).then(() => {
      assert.equal(log.messages(TOPICS.dispatch)[0].partition, partitionForKey('job-42', 3));
    });
  });

  it('never calls handle synchronously inside publish', async () => {
    const log = createMemoryLog();
    let calls = 0;
    await log.consume({ topic: 't', groupId: 'g', handle: async () => { calls += 1; } });
    const publishing = log.publish([msg('k', 'v', 't')]);
    assert.equal(calls, 0);
    await publishing;
    await log.drain();
    assert.equal(calls, 1);
    await log.close();
  });

  it('counts pending records per group and drains them', async () => {
    const log = createMemoryLog({ partitions: 2 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    await log.consume({ topic: 't', groupId: 'slow', handle: () => gate });
    await log.consume({ topic: 't', groupId: 'fast', handle: async () => {} });
    await log.publish([msg('a', '1', 't'), msg('b', '2', 't'), msg('a', '3', 't')]);
    assert.equal(log.pendingCount('slow'), 3);
    assert.equal(log.pendingCount(), 6);
    assert.equal(log.pendingCount('nobody'), 0);
    await tick();
    await tick();
    assert.equal(log.pendingCount('fast'), 0);
    assert.equal(log.pendingCount('slow'), 3, 'committed before handle resolved');
    release();
    await log.drain();
    assert.equal(log.pendingCount(), 0);
    await log.close();
  });

  it('rejects drain after its timeout when a handle keeps throwing', async () => {
    const errors: unknown[] = [];
    const log = createMemoryLog({ redeliveryDelayMs: 5, onHandleError: (e) => errors.push(e) });
    await log.consume({ topic: 't', groupId: 'g', handle: async () => { throw new Error('boom'); } });
    await log.publish([msg('k', 'v', 't')]);
    await assert.rejects(log.drain({ timeoutMs: 100 }), /1 records pending/);
    assert.ok(errors.length >= 2, `redelivered ${errors.length} times`);
    await log.close();
  });

  it('moves partitions to the remaining members and gives a surplus member nothing', async () => {
    const log = createMemoryLog({ partitions: 3 });
    const seen = new Map<string, Set<number>>();
    const member = (name: string) => async (records: LogRecord[]) => {
      for (const r of records) seen.set(name, (seen.get(name) ?? new Set()).add(r.partition));
    };
    const subs = await Promise.all(['a', 'b', 'c', 'd'].map((n) => log.consume({ topic: 't', groupId: 'g', handle: member(n) })));
    const keys = Array.from({ length: 30 }, (_, i) => msg(`key-${i}`, String(i), 't'));
    await log.publish(keys);
    await log.drain();
    assert.equal(seen.get('d'), undefined, 'a fourth member of a 3-partition topic got records');
    assert.deepEqual([...seen.values()].map((s) => s.size), [1, 1, 1]);
    await subs[0].stop();
    await subs[1].stop();
    await subs[2].stop();
    seen.clear();
    await log.publish(keys);
    await log.drain();
    assert.deepEqual([...seen.keys()], ['d']);
    assert.equal(seen.get('d')?.size, 3);
    await log.close();
  });

  it('refuses work once closed, and stops delivering', async () => {
    const log = createMemoryLog();
    let calls = 0;
    await log.consume({ topic: 't', groupId: 'g', handle: async () => { calls += 1; } });
    await log.close();
    await assert.rejects(log.publish([msg('k', 'v', 't')]), { code: 'ATS_ERR_NOT_READY' });
    await assert.rejects(log.ping(), { code: 'ATS_ERR_NOT_READY' });
    await tick();
    assert.equal(calls, 0);
  });

  it('validates its options', () => {
    assert.throws(() => createMemoryLog({ partitions: 0 }), { code: 'ATS_ERR_CONFIG' });
    assert.throws(() => createMemoryLog({ maxBatch: 1.5 }), { code: 'ATS_ERR_CONFIG' });
  });

  it('hands at most maxBatch records to one handle call', async () => {
    const log = createMemoryLog({ partitions: 1, maxBatch: 4 });
    const sizes: number[] = [];
    await log.consume({ topic: 't', groupId: 'g', handle: async (rs) => { sizes.push(rs.length); } });
    await log.publish(Array.from({ length: 10 }, (_, i) => msg('k', String(i), 't')));
    await log.drain();
    assert.deepEqual(sizes, [4, 4, 2]);
    await log.close();
  });
});
