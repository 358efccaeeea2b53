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

describe('in-process log retention', () => {
  const publishMany = async (log: ReturnType<typeof createMemoryLog>, topic: string, n: number, from = 0) => {
    for (let i = 0; i < n; i += 500) {
      await log.publish(Array.from({ length: Math.min(500, n - i) }, (_, j) => msg(`key-${(from + i + j) % 97}`, String(from + i + j), topic)));
    }
  };

  it('releases what every subscribed group committed: the retained count stays bounded over 50,000 messages', async () => {
    const log = createMemoryLog();
    let handled = 0;
    await log.consume({ topic: 't', groupId: 'a', handle: async (rs) => { handled += rs.length; } });
    await log.consume({ topic: 't', groupId: 'b', handle: async () => {} });
    let most = 0;
    for (let round = 0; round < 10; round++) {
      await publishMany(log, 't', 5000, round * 5000);
      most = Math.max(most, log.retainedCount('t'));
      await log.drain();
      most = Math.max(most, log.retainedCount('t'));
    }
    assert.equal(handled, 50_000);
    assert.ok(most <= 5000, `retained up to ${most} records`);
    assert.equal(log.retainedCount('t'), 0, 'records every group committed are still held');
    await log.close();
  });

  it('keeps what the slowest group has not committed', async () => {
    const log = createMemoryLog({ partitions: 1 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    await log.consume({ topic: 't', groupId: 'fast', handle: async () => {} });
    await log.consume({ topic: 't', groupId: 'slow', handle: () => gate });
    await publishMany(log, 't', 10);
    await tick();
    await tick();
    assert.equal(log.pendingCount('fast'), 0);
    assert.equal(log.retainedCount('t'), 10);
    release();
    await log.drain();
    assert.equal(log.retainedCount('t'), 0);
    await log.close();
  });

  it('redelivers after a failed handle (the uncommitted records are kept), with the same offsets', async () => {
    const log = createMemoryLog({ partitions: 1, redeliveryDelayMs: 0 });
    const seen: string[] = [];
    let failures = 0;
    await log.consume({
      topic: 't', groupId: 'g', handle: async (rs) => {
        if (rs.some((r) => r.value === '7') && failures++ < 2) throw new Error('not yet');
        for (const r of rs) seen.push(`${r.offset}:${r.value}`);
      },
    });
    await publishMany(log, 't', 5);
    await log.drain();
    await publishMany(log, 't', 5, 5);
    await log.drain();
    assert.equal(failures, 3);
    assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => `${i}:${i}`));
    assert.equal(log.retainedCount('t'), 0);
    await log.close();
  });

  it('keeps only a bounded tail of a topic nobody consumes, with offsets still counting up', async () => {
    const log = createMemoryLog({ partitions: 1, retainUnconsumed: 100 });
    await publishMany(log, TOPICS.dlq, 5000);
    assert.equal(log.retainedCount(TOPICS.dlq), 100);
    const kept = log.messages(TOPICS.dlq);
    assert.deepEqual([kept[0]!.offset, kept[99]!.offset], ['4900', '4999']);
    await log.close();
  });

  it('starts a group joining later from the beginning at the oldest retained record', async () => {
    const log = createMemoryLog({ partitions: 1, retainUnconsumed: 10 });
    await publishMany(log, 't', 50);
    const offsets: string[] = [];
    await log.consume({ topic: 't', groupId: 'late', fromBeginning: true, handle: async (rs) => { offsets.push(...rs.map((r) => r.offset)); } });
    await log.drain();
    assert.deepEqual(offsets, Array.from({ length: 10 }, (_, i) => String(40 + i)));
    await publishMany(log, 't', 1, 50);
    await log.drain();
    assert.equal(offsets.at(-1), '50');
    await log.close();
  });

  it('a group whose members all left holds back only the bounded tail', async () => {
    const log = createMemoryLog({ partitions: 1, retainUnconsumed: 20 });
    const sub = await log.consume({ topic: 't', groupId: 'gone', handle: async () => {} });
    await sub.stop();
    await publishMany(log, 't', 1000);
    assert.equal(log.retainedCount('t'), 20);
    // It comes back: it resumes at the oldest record still there (Kafka's offset reset to earliest).
    const got: string[] = [];
    await log.consume({ topic: 't', groupId: 'gone', handle: async (rs) => { got.push(...rs.map((r) => r.offset)); } });
    await log.drain();
    assert.deepEqual([got.length, got[0]], [20, '980']);
    await log.close();
  });

  it('bounds the kept tail of a topic nobody consumes in size too: large records are kept fewer', async () => {
    const log = createMemoryLog({ partitions: 1 }); // the defaults: 10,000 records, 16 MiB
    const big = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 1000; i++) await log.publish([msg(`job-${i}`, big, TOPICS.events)]);
    const kept = log.messages(TOPICS.events);
    assert.ok(log.retainedBytes(TOPICS.events) <= 16 * 1024 * 1024, `${log.retainedBytes(TOPICS.events)} characters kept`);
    assert.equal(kept.length, Math.floor((16 * 1024 * 1024) / (64 * 1024 + 'job-999'.length)));
    assert.equal(kept.at(-1)!.offset, '999', 'the newest records are the ones kept');
    await log.close();
  });

  it('counts a record\'s key, value and headers once, when it is published', async () => {
    const log = createMemoryLog({ partitions: 1 });
    await log.publish([{ topic: 't', key: 'k1', value: 'abcd', headers: { h: 'vv' } }, msg('k2', 'xyz', 't')]);
    assert.equal(log.retainedBytes('t'), 2 + 4 + 1 + 2 + (2 + 3));
    await log.consume({ topic: 't', groupId: 'g', fromBeginning: true, handle: async () => {} });
    await log.drain();
    assert.equal(log.retainedBytes('t'), 0);
    await log.close();
  });

  it('never drops for the size bound what a group with members has not committed (its backlog)', async () => {
    const log = createMemoryLog({ partitions: 1, retainUnconsumedBytes: 1000, maxBatch: 10 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const got: string[] = [];
    await log.consume({ topic: 't', groupId: 'g', handle: async (rs) => { await gate; got.push(...rs.map((r) => r.value)); } });
    await publishMany(log, 't', 500);
    assert.equal(log.retainedCount('t'), 500);
    release();
    await log.drain();
    assert.equal(got.length, 500);
    await log.close();
  });

  it('a topic retained as { records: 0 } keeps nothing for later, all for a group already reading', async () => {
    const log = createMemoryLog({ partitions: 1, retainUnconsumedByTopic: { [TOPICS.events]: { records: 0 }, [TOPICS.dlq]: { bytes: 0 } } });
    await publishMany(log, TOPICS.events, 100);
    await publishMany(log, TOPICS.dlq, 100);
    await publishMany(log, TOPICS.dispatch, 100); // a lane nobody reads yet keeps its tail for the worker to come
    assert.deepEqual([TOPICS.events, TOPICS.dlq, TOPICS.dispatch].map((t) => log.retainedCount(t)), [0, 0, 100]);
    const got: string[] = [];
    const sub = await log.consume({ topic: TOPICS.events, groupId: 'reader', fromBeginning: true, handle: async (rs) => { got.push(...rs.map((r) => r.offset)); } });
    await publishMany(log, TOPICS.events, 10, 100);
    await log.drain();
    assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => String(100 + i)));
    await sub.stop();
    await publishMany(log, TOPICS.events, 10, 110);
    assert.equal(log.retainedCount(TOPICS.events), 0, 'a group whose members left holds nothing back either');
    await log.close();
  });

  it('retainAll keeps every record (tests that read the whole history)', async () => {
    const log = createMemoryLog({ partitions: 1, retainAll: true, retainUnconsumed: 5 });
    await log.consume({ topic: 't', groupId: 'g', handle: async () => {} });
    await publishMany(log, 't', 50);
    await publishMany(log, 'u', 50);
    await log.drain();
    assert.equal(log.messages('t').length, 50);
    assert.equal(log.messages('u').length, 50);
    await log.close();
  });

  it('validates the retention options', () => {
    assert.throws(() => createMemoryLog({ retainUnconsumed: -1 }), { code: 'ATS_ERR_CONFIG' });
    assert.throws(() => createMemoryLog({ retainUnconsumed: 1.5 }), { code: 'ATS_ERR_CONFIG' });
    assert.throws(() => createMemoryLog({ retainUnconsumedBytes: -1 }), { code: 'ATS_ERR_CONFIG' });
    assert.throws(() => createMemoryLog({ retainUnconsumedByTopic: { t: { records: -1 } } }), { code: 'ATS_ERR_CONFIG' });
    assert.throws(() => createMemoryLog({ retainUnconsumedByTopic: { t: { bytes: Number.NaN } } }), { code: 'ATS_ERR_CONFIG' });
  });
});

/** Lines a test logger got: level, message, fields. */
function captureLog(): { logger: Record<'error' | 'warn' | 'info', (m: string, f?: Record<string, unknown>) => void>; lines: Array<[string, string, Record<string, unknown> | undefined]> } {
  const lines: Array<[string, string, Record<string, unknown> | undefined]> = [];
  return {
    logger: { error: (m, f) => void lines.push(['error', m, f]), warn: (m, f) => void lines.push(['warn', m, f]), info: (m, f) => void lines.push(['info', m, f]) },
    lines,
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** A timer may fire up to a millisecond before its time (rounding): the lower bounds below allow that. */
const EARLY_MS = 2;

describe('in-process log redelivery pause', () => {
  it('pauses longer after each failed handle of a partition in a row, doubling up to the cap, and logs the first failure only', async () => {
    const { logger, lines } = captureLog();
    const log = createMemoryLog({ partitions: 1, redeliveryDelayMs: 5, maxRedeliveryDelayMs: 40, logger });
    const calls: number[] = [];
    await log.consume({ topic: 't', groupId: 'g', handle: async () => { calls.push(performance.now()); throw new Error('database down'); } });
    await log.publish([msg('k', 'v', 't')]);
    await sleep(1200);
    await log.close();
    const gaps = calls.slice(1).map((t, i) => t - calls[i]);
    assert.ok(gaps.length >= 5, `only ${calls.length} handle calls`);
    // Lower bounds only (a slow machine makes gaps longer, never shorter): 5, 10, 20, 40, then 40 each.
    gaps.forEach((gap, i) => {
      const pause = Math.min(5 * 2 ** i, 40);
      assert.ok(gap >= pause - EARLY_MS, `gap ${i} was ${gap.toFixed(1)} ms, below the pause of ${pause} ms: ${gaps.map((g) => g.toFixed(0)).join(', ')}`);
    });
    // The cap holds: still doubling, 1.2 s would hold 8 calls (5 + 10 + ... + 640 ms); at 40 ms, about 30.
    assert.ok(calls.length >= 16, `only ${calls.length} handle calls in 1.2 s: the pause did not stop growing at 40 ms`);
    assert.deepEqual(lines.map(([level, m, f]) => [level, m, f?.failures, f?.err]), [
      ['warn', 'in-process log: handle of t partition 0 (group g) failed, will retry', 1, 'database down'],
    ]);
  });

  it('pauses the base delay again after a handle that resolved: the next failure is redelivered promptly', async () => {
    const { logger, lines } = captureLog();
    const log = createMemoryLog({ partitions: 1, redeliveryDelayMs: 5, maxRedeliveryDelayMs: 60_000, logger });
    const calls: Array<{ at: number; value: string }> = [];
    let bFailed = false;
    await log.consume({
      topic: 't', groupId: 'g',
      handle: async (records) => {
        calls.push({ at: performance.now(), value: records[0].value });
        if (calls.length <= 8) throw new Error('database down');
        if (records[0].value === 'b' && !bFailed) {
          bFailed = true;
          throw new Error('database down again');
        }
      },
    });
    await log.publish([msg('k', 'a', 't')]);
    await log.drain();
    await log.publish([msg('k', 'b', 't')]);
    await log.drain();
    await log.close();
    assert.deepEqual(calls.map((c) => c.value), ['a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'b', 'b']);
    // Eight failures in a row: the last pause was 5 × 2⁷ = 640 ms (and the next would have been 1280 ms).
    const lastPause = calls[8].at - calls[7].at;
    assert.ok(lastPause >= 640 - EARLY_MS, `the 8th pause was ${lastPause.toFixed(1)} ms`);
    const afterReset = calls[10].at - calls[9].at;
    assert.ok(afterReset < lastPause, `b's redelivery waited ${afterReset.toFixed(1)} ms after a handle that resolved (the pause did not reset)`);
    assert.deepEqual(lines.map(([level, m, f]) => [level, m.replace(/^in-process log: handle of t partition 0 \(group g\) /, ''), f?.failures]), [
      ['warn', 'failed, will retry', 1],
      ['info', 'works again', 8],
      ['warn', 'failed, will retry', 1],
      ['info', 'works again', 1],
    ]);
  });

  it('a partition that moves to another member is delivered to it without the pause left by the member before', async () => {
    const { logger, lines } = captureLog();
    const log = createMemoryLog({ partitions: 1, redeliveryDelayMs: 3000, logger });
    let failed!: () => void;
    const first = new Promise<void>((resolve) => { failed = resolve; });
    const a = await log.consume({ topic: 't', groupId: 'g', handle: async () => { failed(); throw new Error('a is going away'); } });
    const got: string[] = [];
    await log.publish([msg('k', 'v', 't')]);
    await first;
    await a.stop();
    await log.consume({ topic: 't', groupId: 'g', handle: async (records) => { got.push(...records.map((r) => r.value)); } });
    // Within a third of the 3 s pause a's failure set: b's delivery did not wait it out.
    await log.drain({ timeoutMs: 1000 });
    assert.deepEqual(got, ['v']);
    assert.deepEqual(lines, [], 'a failure broken off by a stop is not logged');
    await log.close();
  });

  it('a handle that fails after its member began to stop leaves no pause and no warning to the next member', async () => {
    const { logger, lines } = captureLog();
    const log = createMemoryLog({ partitions: 1, redeliveryDelayMs: 3000, logger });
    let entered!: () => void;
    const inHandle = new Promise<void>((resolve) => { entered = resolve; });
    let breakOff!: () => void;
    const brokenOff = new Promise<void>((resolve) => { breakOff = resolve; });
    const a = await log.consume({
      topic: 't', groupId: 'g',
      handle: async () => { entered(); await brokenOff; throw new Error('a stopped mid-handle'); },
    });
    await log.publish([msg('k', 'v', 't')]);
    await inHandle;
    const stopped = a.stop();
    const got: string[] = [];
    await log.consume({ topic: 't', groupId: 'g', handle: async (records) => { got.push(...records.map((r) => r.value)); } });
    breakOff();
    await stopped;
    // Within a third of the 3 s pause: the next member did not wait out a pause set by a's last handle.
    await log.drain({ timeoutMs: 1000 });
    assert.deepEqual(got, ['v']);
    assert.deepEqual(lines, [], 'a failure broken off by a stop is not logged');
    await log.close();
  });

  it('validates the cap, and never pauses less than the base', async () => {
    assert.throws(() => createMemoryLog({ maxRedeliveryDelayMs: -1 }), { code: 'ATS_ERR_CONFIG' });
    // Beyond a Node timer's longest pause, a timer fires after 1 ms: the pause would be none.
    assert.throws(() => createMemoryLog({ maxRedeliveryDelayMs: 2 ** 31 }), { code: 'ATS_ERR_CONFIG' });
    assert.throws(() => createMemoryLog({ redeliveryDelayMs: 1.5 }), { code: 'ATS_ERR_CONFIG' });
    await createMemoryLog({ maxRedeliveryDelayMs: 2 ** 31 - 1 }).close();
    const log = createMemoryLog({ partitions: 1, redeliveryDelayMs: 40, maxRedeliveryDelayMs: 10 });
    const calls: number[] = [];
    await log.consume({ topic: 't', groupId: 'g', handle: async () => { calls.push(performance.now()); throw new Error('down'); } });
    await log.publish([msg('k', 'v', 't')]);
    // Three calls, however late the first (a cold process): two pauses to measure.
    for (const deadline = Date.now() + 5000; calls.length < 3 && Date.now() < deadline;) await sleep(10);
    await log.close();
    assert.ok(calls.length >= 3, `only ${calls.length} handle calls`);
    calls.slice(1).forEach((t, i) => assert.ok(t - calls[i] >= 40 - EARLY_MS, `a pause of ${(t - calls[i]).toFixed(1)} ms, below the base`));
  });
});
