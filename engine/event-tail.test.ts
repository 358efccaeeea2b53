/**
 * The tail reader's horizon over a fake `readEventsAfter` whose rows the test
 * makes "commit" in any order: gaps are waited for, given up only after the
 * timeout, and nothing is handed on twice or out of id order.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from './logger.js';
import type { Clock, StreamEventRecord } from './ports.js';
import { settlesWithin } from './loop.js';
import { findLastId, readWithin, safePrefix, SeenMarks, TailReader, type TailOptions } from './event-tail.js';

/** A table of committed events; `read` is `readEventsAfter`. */
function table(ids: number[] = []) {
  const rows = new Set(ids);
  const row = (id: number): StreamEventRecord => ({
    id, jobId: `job-${id}`, seq: 1, type: 'SUBMITTED', from: null, to: 'pending', at: 0,
    data: { at: 0, maxAttempts: 1, backoff: { kind: 'fixed', delayMs: 1 } }, jobType: 't', queue: 'q',
  });
  let reads = 0;
  return {
    commit: (...more: number[]) => more.forEach((id) => rows.add(id)),
    reads: () => reads,
    read: async (afterId: number, limit: number) => {
      reads++;
      return [...rows].filter((id) => id > afterId).sort((a, b) => a - b).slice(0, limit).map(row);
    },
  };
}

/** A clock the test moves by hand; sleeps never resolve on their own (the tests call `step()`). */
function manualClock(start = 1000): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    advance: (ms) => void (now += ms),
    sleep: (_ms, signal) => new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true })),
  };
}

const OPTS: TailOptions = { tailBatchSize: 100, pollMs: 500, idlePollMs: 5000, gapTimeoutMs: 3000, gapPollMs: 50, startupRewindIds: 0, errorBackoffMs: 10 };

function tail(t: ReturnType<typeof table>, clock: Clock, opts: Partial<TailOptions> = {}) {
  const got: number[] = [];
  const reader = new TailReader({ read: t.read, clock, logger: silentLogger, onEvents: (es) => got.push(...es.map((e) => e.id)) }, { ...OPTS, ...opts });
  return { reader, got };
}

describe('safePrefix', () => {
  it('delivers a contiguous run and stops at the first missing id', () => {
    const seen = new SeenMarks();
    assert.deepEqual(safePrefix(10, [{ id: 11 }, { id: 12 }, { id: 14 }], seen, 0, 3000), {
      count: 2, skipped: [], waiting: { from: 13, to: 13, until: 3000 },
    });
    assert.equal(seen.since(13), 0);
    assert.deepEqual(safePrefix(10, [{ id: 13 }], new SeenMarks(), 0, 3000).count, 0, 'a gap right after the horizon blocks everything');
  });

  it('gives a gap up once the timeout passed since an id above it was first seen', () => {
    const seen = new SeenMarks();
    safePrefix(12, [{ id: 14 }, { id: 17 }], seen, 100, 1000);
    assert.equal(safePrefix(12, [{ id: 14 }, { id: 17 }], seen, 1099, 1000).count, 0);
    // 17 was visible at 100, so 15 and 16 were allocated by then: both gaps are final at 1100.
    assert.deepEqual(safePrefix(12, [{ id: 14 }, { id: 17 }], seen, 1100, 1000), { count: 2, skipped: [[13, 13], [15, 16]], waiting: null });
  });

  it('times a gap below a newly seen id from now, not from an older mark below it', () => {
    const seen = new SeenMarks();
    safePrefix(10, [{ id: 12 }], seen, 0, 1000); // 11 missing, 12 seen at 0
    const later = safePrefix(10, [{ id: 12 }, { id: 20 }], seen, 1000, 1000);
    // 11 is final (12 seen at 0); 13..19 only since 20 was seen, now.
    assert.deepEqual(later, { count: 1, skipped: [[11, 11]], waiting: { from: 13, to: 19, until: 2000 } });
  });

  it('keeps one mark per new highest id and forgets those the horizon passed', () => {
    const seen = new SeenMarks();
    seen.saw(5, 1);
    seen.saw(5, 2);
    seen.saw(3, 3);
    seen.saw(9, 4);
    assert.equal(seen.size, 2);
    assert.deepEqual([seen.since(1), seen.since(5), seen.since(6), seen.since(10)], [1, 1, 4, null]);
    seen.prune(5);
    assert.deepEqual([seen.size, seen.since(1)], [1, 4]);
  });
});

describe('findLastId', () => {
  it('finds the newest id with forward reads only, gaps or not', async () => {
    assert.equal(await findLastId(table().read), 0);
    for (const ids of [[1], [5], [1, 2, 3], [3, 7, 8, 1000], [2, 4, 1 << 20], Array.from({ length: 300 }, (_, i) => i * 3 + 1)]) {
      const t = table(ids);
      assert.equal(await findLastId(t.read), Math.max(...ids), `ids ${ids.slice(-3)}`);
      assert.ok(t.reads() < 60, `${t.reads()} reads`);
    }
  });
});

describe('TailReader', () => {
  it('holds back a later id until the earlier one commits, then hands both on in id order', async () => {
    const t = table([1, 2]);
    const clock = manualClock();
    const { reader, got } = tail(t, clock);
    await reader.init(); // begins at the newest id (startupRewindIds 0); the test drives step() by hand
    assert.equal(reader.horizon, 2);
    t.commit(4, 5); // 3 still committing
    assert.deepEqual(await reader.step(), { again: false, gapUntil: clock.now() + 3000 });
    assert.deepEqual(got, []);
    clock.advance(2999);
    await reader.step();
    assert.deepEqual(got, [], 'still within gapTimeoutMs');
    t.commit(3);
    await reader.step();
    assert.deepEqual(got, [3, 4, 5]);
    assert.equal(reader.horizon, 5);
    await reader.stop();
  });

  it('moves past an id that never appears (a rollback) after gapTimeoutMs, and not before', async () => {
    const t = table([1]);
    const clock = manualClock();
    const { reader, got } = tail(t, clock, { startupRewindIds: 5 });
    await reader.init();
    assert.equal(reader.horizon, 0, 'rewound below the newest id at start');
    await reader.step();
    assert.deepEqual(got, [1]);
    t.commit(3, 4);
    await reader.step();
    clock.advance(2999);
    await reader.step();
    assert.deepEqual(got, [1]);
    clock.advance(1);
    await reader.step();
    assert.deepEqual(got, [1, 3, 4]);
    t.commit(2); // committed after it was given up: too late for the live stream (a replay would still find it)
    t.commit(5);
    await reader.step();
    assert.deepEqual(got, [1, 3, 4, 5]);
    await reader.stop();
  });

  it('passes many runs of deleted ids below the newest id at start after one gapTimeoutMs in all', async () => {
    // Retention deleted every other event (and a long run) long ago; the process starts now.
    const ids = Array.from({ length: 400 }, (_, i) => i + 1).filter((id) => id % 2 === 1 && (id < 100 || id > 300));
    const t = table(ids);
    const clock = manualClock();
    const { reader, got } = tail(t, clock, { startupRewindIds: 10_000, tailBatchSize: 500 });
    await reader.init();
    await reader.step();
    assert.deepEqual(got, [1], 'the first run blocks until the ids are final');
    clock.advance(3000);
    await reader.step();
    assert.deepEqual(got, ids, 'every run passed at once');
    assert.equal(reader.horizon, 399);
    await reader.stop();
  });

  it('is starting until its horizon reaches the newest id of its start, or for twice gapTimeoutMs at most', async () => {
    const t = table([1, 2, 3, 4, 5, 6]);
    const clock = manualClock();
    const { reader } = tail(t, clock, { startupRewindIds: 10_000, tailBatchSize: 4 });
    assert.equal(reader.starting(clock.now()), false, 'not before init');
    await reader.init();
    t.commit(7); // committed after the start: news, and not waited for
    assert.equal(reader.starting(clock.now()), true);
    await reader.step();
    assert.equal(reader.starting(clock.now()), true, 'at 4 of 6');
    await reader.step();
    assert.equal(reader.horizon, 7);
    assert.equal(reader.starting(clock.now()), false);

    // A reader that cannot reach it (its reads fail, or the newest rows are gone) is starting for twice gapTimeoutMs at most.
    const { reader: behind } = tail(table([1, 2, 3]), clock, { startupRewindIds: 10_000 });
    await behind.init();
    assert.equal(behind.starting(clock.now()), true);
    clock.advance(5999);
    assert.equal(behind.starting(clock.now()), true);
    clock.advance(1);
    assert.equal(behind.starting(clock.now()), false, 'twice gapTimeoutMs after the start');
  });

  it('reads again at once after a full batch, and stops its loop on stop()', async () => {
    const t = table(Array.from({ length: 250 }, (_, i) => i + 1));
    const clock = manualClock();
    const { reader, got } = tail(t, clock, { startupRewindIds: 1000 });
    await reader.start();
    for (let i = 0; i < 50 && got.length < 250; i++) await new Promise((r) => setImmediate(r));
    assert.equal(got.length, 250);
    assert.deepEqual(got, [...got].sort((a, b) => a - b));
    t.commit(251);
    reader.wake();
    for (let i = 0; i < 50 && got.length < 251; i++) await new Promise((r) => setImmediate(r));
    assert.equal(got.at(-1), 251, 'a wake-up reads without waiting for the poll');
    await reader.stop();
  });
});

describe('TailReader with no client connected', () => {
  /** A tail whose `busy()` the test sets, with `last()` from the fake table. */
  function idleTail(t: ReturnType<typeof table>, clock: Clock) {
    const got: number[] = [];
    const state = { busy: false, lastCalls: 0 };
    const last = async () => {
      state.lastCalls++;
      return (await t.read(0, Number.MAX_SAFE_INTEGER)).at(-1)?.id ?? 0;
    };
    const reader = new TailReader({
      read: t.read, clock, logger: silentLogger, onEvents: (es) => got.push(...es.map((e) => e.id)), busy: () => state.busy, last,
    }, OPTS);
    return { reader, got, state };
  }

  it('reads no rows and moves its horizon only up to ids that are final', async () => {
    const t = table([1, 2, 3]);
    const clock = manualClock();
    const { reader, got } = idleTail(t, clock);
    await reader.init(); // horizon 3, newest id marked now
    t.commit(5, 6); // 4 still committing
    const reads = t.reads();
    await reader.skipAhead();
    assert.equal(reader.horizon, 3, '6 was first seen just now: 4 may still commit');
    clock.advance(OPTS.gapTimeoutMs);
    await reader.skipAhead();
    assert.equal(reader.horizon, 6, 'every id up to 6 is final gapTimeoutMs after 6 was seen');
    assert.deepEqual(got, [], 'nothing is handed on while no one listens');
    assert.equal(t.reads(), reads + 2, 'only the newest-id reads of the test double, no page of rows');
  });

  it('does not move its horizon past what a client that arrived meanwhile has been given', async () => {
    const t = table([1, 2, 3]);
    const clock = manualClock();
    const { reader, got, state } = idleTail(t, clock);
    await reader.init();
    clock.advance(OPTS.gapTimeoutMs);
    t.commit(4, 5);
    // The client arrives while the newest-id read is in flight.
    const skipping = reader.skipAhead();
    state.busy = true;
    await skipping;
    assert.equal(reader.horizon, 3, 'a client connected: the horizon moves only by reading and handing on');
    await reader.step();
    assert.deepEqual(got, [4, 5]);
    assert.equal(reader.horizon, 5);
  });

  it('ignores commit wake-ups while idle, and reads on from its horizon once a client is connected', async () => {
    const t = table([1, 2, 3]);
    const clock = manualClock();
    const { reader, got, state } = idleTail(t, clock);
    await reader.start();
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    const calls = state.lastCalls;
    t.commit(4, 5);
    for (let k = 0; k < 5; k++) reader.wake();
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(state.lastCalls, calls, 'a commit does not wake an idle tail');
    assert.deepEqual(got, []);
    state.busy = true;
    reader.wake();
    for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(got, [4, 5], 'events above the horizon go to the client that arrived');
    await reader.stop();
  });
});

describe('TailReader over a store that stops answering', () => {
  const never = <T>() => new Promise<T>(() => undefined);

  it('stops without waiting for a read of rows in flight, and hands nothing on after', async () => {
    let answer: ((rows: StreamEventRecord[]) => void) | null = null;
    const got: number[] = [];
    const reader = new TailReader({
      read: () => new Promise((resolve) => { answer = resolve; }), last: async () => 0,
      clock: manualClock(), logger: silentLogger, onEvents: (es) => got.push(...es.map((e) => e.id)),
    }, OPTS);
    await reader.start();
    for (let i = 0; i < 20 && !answer; i++) await new Promise((r) => setImmediate(r));
    assert.ok(answer, 'a read is in flight');
    assert.equal(await settlesWithin(reader.stop(), 2000), true, 'stop() resolves while the read does not answer');
    answer!([{ ...(await table([1]).read(0, 1))[0]! }]);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(got, [], 'the late answer is dropped');
    assert.equal(reader.horizon, 0);
  });

  it('stops without waiting for an idle newest-id read in flight', async () => {
    let calls = 0;
    const reader = new TailReader({
      read: () => never(), last: () => (++calls === 1 ? Promise.resolve(7) : never()), busy: () => false,
      clock: manualClock(), logger: silentLogger, onEvents: () => undefined,
    }, OPTS);
    await reader.start();
    for (let i = 0; i < 20 && calls < 2; i++) await new Promise((r) => setImmediate(r));
    assert.equal(calls, 2, 'the idle newest-id read is in flight');
    assert.equal(await settlesWithin(reader.stop(), 2000), true, 'stop() resolves while the read does not answer');
  });
});

describe('readWithin', () => {
  /** Rows 1..6 of these sizes, and the calls made of each read. */
  const sized = (bytes: number[]) => {
    const calls: string[] = [];
    return {
      calls,
      sizes: async (afterId: number, limit: number) => {
        calls.push(`sizes ${afterId} ${limit}`);
        return bytes.map((b, i) => ({ id: i + 1, bytes: b })).filter((r) => r.id > afterId).slice(0, limit);
      },
      read: async (afterId: number, limit: number) => {
        calls.push(`read ${afterId} ${limit}`);
        return bytes.map((_, i) => i + 1).filter((id) => id > afterId).slice(0, limit);
      },
    };
  };

  it('takes the rows that fit, the first whatever its size, and says when it stopped at its bytes', async () => {
    const t = sized([40, 40, 40, 200, 10, 10]);
    assert.deepEqual(await readWithin(t.sizes, t.read, 0, 10, 100), { rows: [1, 2], cut: true });
    assert.deepEqual(await readWithin(t.sizes, t.read, 3, 10, 100), { rows: [4], cut: true }, 'the first comes over the bytes');
    assert.deepEqual(await readWithin(t.sizes, t.read, 4, 10, 100), { rows: [5, 6], cut: false }, 'the end of the table');
    assert.deepEqual(await readWithin(t.sizes, t.read, 0, 2, 1000), { rows: [1, 2], cut: false }, 'the limit, not the bytes');
    assert.deepEqual(await readWithin(t.sizes, t.read, 6, 10, 100), { rows: [], cut: false });
    assert.deepEqual(t.calls.filter((c) => c.startsWith('read')), ['read 0 2', 'read 3 1', 'read 4 2', 'read 0 2'], 'no read of nothing');
  });

  /**
   * A table of rows (id → bytes) that `between` changes after the sizes are read and before the rows are: retention
   * deleting events, or a lower id committing. `read` honours its `throughId`, as the stores do.
   */
  const racing = (rows: Array<[number, number]>, between: (table: Map<number, number>) => void) => {
    const table = new Map(rows);
    const ids = () => [...table.keys()].sort((a, b) => a - b);
    return {
      table,
      sizes: async (afterId: number, limit: number) => {
        const counted = ids().filter((id) => id > afterId).slice(0, limit).map((id) => ({ id, bytes: table.get(id)! }));
        between(table);
        return counted;
      },
      read: async (afterId: number, limit: number, throughId = Number.MAX_SAFE_INTEGER) =>
        ids().filter((id) => id > afterId && id <= throughId).slice(0, limit),
    };
  };

  it('reads no row past the last it sized when sized rows are deleted between its two reads', async () => {
    // 1 and 2 fit in 100 bytes, 3 does not; 1 is deleted before the rows are read: 3 must not take its place.
    const one = racing([[1, 40], [2, 40], [3, 500], [4, 500]], (t) => t.delete(1));
    assert.deepEqual(await readWithin(one.sizes, one.read, 0, 10, 100), { rows: [2], cut: true }, 'a short page, and more to read');
    // Every row sized is gone: the next row comes alone, whatever its size (as a first row always does), not nothing.
    const both = racing([[1, 40], [2, 40], [3, 500], [4, 500]], (t) => { t.delete(1); t.delete(2); });
    assert.deepEqual(await readWithin(both.sizes, both.read, 0, 10, 100), { rows: [3], cut: true }, 'an empty page would say the table ended');
    // A full read counted, one of it gone: short of the limit, but rows may follow (as after a full read).
    const full = racing([[1, 10], [2, 10], [3, 10], [4, 10]], (t) => t.delete(2));
    assert.deepEqual(await readWithin(full.sizes, full.read, 0, 3, 100), { rows: [1, 3], cut: true });
    const last = racing([[1, 10], [2, 10], [3, 10]], (t) => t.delete(2));
    assert.deepEqual(await readWithin(last.sizes, last.read, 0, 10, 100), { rows: [1, 3], cut: false }, 'fewer than the limit counted: the end');
    // Nothing after them: the end of the table.
    const all = racing([[1, 40], [2, 40]], (t) => t.clear());
    assert.deepEqual(await readWithin(all.sizes, all.read, 0, 10, 100), { rows: [], cut: false });
    // A lower id committed meanwhile: it takes the place of a row counted (as any read may see it), nothing past them comes.
    const late = racing([[2, 40], [3, 40], [4, 500]], (t) => t.set(1, 40));
    assert.deepEqual(await readWithin(late.sizes, late.read, 0, 10, 100), { rows: [1, 2], cut: true });
  });

  it('reads one row (a cursor check) at once, without its size', async () => {
    const t = sized([500, 10]);
    assert.deepEqual(await readWithin(t.sizes, t.read, 0, 1, 100), { rows: [1], cut: false });
    assert.deepEqual(t.calls, ['read 0 1']);
  });
});
