/**
 * The stream's progress tail: each stored value delivered once, a value
 * committed late within the look-back still delivered, pages read on, and
 * nothing read while no client listens.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { silentLogger } from '../../engine/logger.js';
import { settlesWithin } from '../../engine/loop.js';
import type { Clock, JobProgress } from '../../engine/ports.js';
import { LOOK_BACK_MS, ProgressTail } from './progress-tail.js';

function world() {
  let t = 1_000_000;
  const clock: Clock & { advance(ms: number): void } = { now: () => t, sleep: () => Promise.resolve(), advance: (ms) => { t += ms; } };
  // The committed rows, one per job (a report replaces the job's row).
  const rows = new Map<string, JobProgress>();
  const put = (jobId: string, value: unknown, at = t) => rows.set(jobId, { jobId, type: 't', queue: 'q', attempt: 1, value, at });
  let reads = 0;
  const store = {
    readProgressSince: async (since: number, limit: number) => {
      reads++;
      return [...rows.values()].filter((p) => p.at >= since).sort((a, b) => a.at - b.at || a.jobId.localeCompare(b.jobId)).slice(0, limit);
    },
  };
  let listening = true;
  const delivered: JobProgress[] = [];
  const tail = new ProgressTail({ store, clock, logger: silentLogger, busy: () => listening, onProgress: (p) => void delivered.push(p) }, 200);
  return { clock, put, tail, delivered, reads: () => reads, listen: (on: boolean) => { listening = on; } };
}

it('delivers each stored value once, and a later value of the same job again', async () => {
  const w = world();
  w.put('a', 10);
  w.put('b', { step: 1 });
  assert.equal(await w.tail.readOnce(), 2);
  assert.equal(await w.tail.readOnce(), 0, 'nothing new: nothing again');
  w.clock.advance(100);
  w.put('a', 20);
  assert.equal(await w.tail.readOnce(), 1);
  assert.deepEqual(w.delivered.map((p) => [p.jobId, p.value]), [['a', 10], ['b', { step: 1 }], ['a', 20]]);
});

it('a value stamped before the newest one seen but committed after it is still delivered, within the look-back', async () => {
  const w = world();
  const stampedEarly = w.clock.now();
  w.clock.advance(500);
  w.put('late-writer-done', 1); // seen first, stamped later
  await w.tail.readOnce();
  w.put('slow-commit', 50, stampedEarly); // commits now with its earlier stamp
  assert.equal(await w.tail.readOnce(), 1);
  assert.equal(w.delivered.at(-1)!.jobId, 'slow-commit');
  // Beyond the look-back it is not (its next report is).
  w.clock.advance(LOOK_BACK_MS * 3);
  w.put('newest', 1);
  await w.tail.readOnce();
  w.put('too-late', 1, w.clock.now() - LOOK_BACK_MS - 1);
  assert.equal(await w.tail.readOnce(), 0);
});

it('reads on past a full page', async () => {
  const w = world();
  for (let i = 0; i < 1200; i++) {
    w.clock.advance(1);
    w.put(`job-${String(i).padStart(4, '0')}`, i % 101);
  }
  assert.equal(await w.tail.readOnce(), 1200);
  assert.equal(new Set(w.delivered.map((p) => p.jobId)).size, 1200);
});

it('delivers every value of one millisecond, also more of them than a page holds', async () => {
  const w = world();
  // 600 jobs reporting stamped in the same millisecond (many workers): pages by `at` alone cannot step past it.
  for (let i = 0; i < 600; i++) w.put(`job-${String(i).padStart(4, '0')}`, i % 101);
  w.clock.advance(1);
  w.put('after', 1);
  assert.equal(await w.tail.readOnce(), 601);
  assert.equal(new Set(w.delivered.map((p) => p.jobId)).size, 601);
  assert.equal(await w.tail.readOnce(), 0, 'each once');
});

it('reads nothing while no client listens, and what was stored then is not news to the next client', async () => {
  const w = world();
  w.listen(false);
  w.put('a', 1);
  assert.equal(await w.tail.readOnce(), 0);
  assert.equal(w.reads(), 0);
  w.clock.advance(LOOK_BACK_MS + 1);
  w.listen(true);
  assert.equal(await w.tail.readOnce(), 0);
  w.put('b', 2);
  assert.equal(await w.tail.readOnce(), 1);
});

it('a value stamped ahead of this process\'s clock (its worker\'s clock runs fast) does not hold back the other jobs\' values', async () => {
  const w = world();
  await w.tail.readOnce();
  w.put('fast-clock', 1, w.clock.now() + 60_000);
  assert.equal(await w.tail.readOnce(), 1);
  for (let i = 0; i < 10; i++) {
    w.clock.advance(500);
    w.put(`on-time-${i}`, i);
    assert.equal(await w.tail.readOnce(), 1, `the value reported ${(i + 1) * 500} ms later`);
  }
  w.clock.advance(500);
  w.put('fast-clock', 2, w.clock.now() + 60_000);
  assert.equal(await w.tail.readOnce(), 1, 'the fast one\'s next value');
  assert.equal(w.delivered.filter((p) => p.jobId === 'fast-clock').length, 2, 'each of its values once');
});

it('stops without waiting for a read in flight, and delivers nothing of its late answer', async () => {
  const clock: Clock = { now: () => 1_000_000, sleep: () => new Promise(() => undefined) };
  let answer: ((rows: JobProgress[]) => void) | null = null;
  const delivered: JobProgress[] = [];
  const tail = new ProgressTail({
    store: { readProgressSince: () => new Promise((resolve) => { answer = resolve; }) },
    clock, logger: silentLogger, busy: () => true, onProgress: (p) => void delivered.push(p),
  }, 200);
  tail.start();
  for (let i = 0; i < 20 && !answer; i++) await new Promise((r) => setImmediate(r));
  assert.ok(answer, 'a read is in flight');
  assert.equal(await settlesWithin(tail.stop(), 2000), true, 'stop() resolves while the read does not answer');
  answer!([{ jobId: 'a', type: 't', queue: 'q', attempt: 1, value: 1, at: 1_000_000 }]);
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual(delivered, [], 'the late answer is dropped');
});
