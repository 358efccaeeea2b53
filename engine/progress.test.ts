/**
 * Handler progress: what counts as progress, how often it is written, and the
 * whole path on the embedded default (a handler's `ctx.progress` → the job's
 * stored progress → a `progress` message on the stream), plus the store's
 * fencing on both SQL stores.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { monotonicFactory } from 'ulid';
import { compose } from '../cli/compose.js';
import { compileConfig } from '../cli/config.js';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { STORE_BACKENDS } from '../tests/helpers/stores.js';
import { TestClient } from '../tests/helpers/stream.js';
import { HandlerRegistry } from './handlers.js';
import { silentLogger } from './logger.js';
import type { Clock, JobSpec } from './ports.js';
import { MAX_PROGRESS_BYTES, PROGRESS_INTERVAL_MS, progressJson, ProgressReporter } from './progress.js';
import { TransitionService } from './transitions.js';

describe('progressJson', () => {
  it('takes a number from 0 to 100 or a JSON object of at most 1 KiB', () => {
    assert.equal(progressJson(0), '0');
    assert.equal(progressJson(42.5), '42.5');
    assert.equal(progressJson(100), '100');
    assert.equal(progressJson({ step: 'upload', done: 3, of: 10, tags: ['a', null, true] }), '{"step":"upload","done":3,"of":10,"tags":["a",null,true]}');
    assert.equal(progressJson({ s: 'x'.repeat(MAX_PROGRESS_BYTES - 8) }).length, MAX_PROGRESS_BYTES);
  });

  it('refuses anything else at once, saying why', () => {
    const refused: Array<[unknown, RegExp]> = [
      [-1, /from 0 to 100/], [100.01, /from 0 to 100/], [Number.NaN, /from 0 to 100/], [Number.POSITIVE_INFINITY, /from 0 to 100/],
      ['50', /not string/], [null, /not null/], [[1, 2], /not an array/], [undefined, /not undefined/],
      [{ s: 'x'.repeat(MAX_PROGRESS_BYTES) }, /bytes of JSON/], [{ s: 'é'.repeat(600) }, /bytes of JSON/],
      [{ at: new Date() }, /not plain JSON/], [{ n: 10n }, /bigint/], [{ f: () => 1 }, /function/], [{ u: undefined }, /undefined/],
      [{ n: Number.NaN }, /JSON cannot carry/], [JSON.parse('{"a":'.repeat(12) + '1' + '}'.repeat(12)), /deeper/],
    ];
    for (const [value, why] of refused) assert.throws(() => progressJson(value), why, `refused ${String(value)}`);
  });
});

describe('ProgressReporter', () => {
  const manual = () => {
    let t = 1_000_000;
    const sleepers: Array<{ until: number; resolve: () => void }> = [];
    const clock: Clock & { advance(ms: number): Promise<void> } = {
      now: () => t,
      sleep: (ms) => new Promise<void>((resolve) => sleepers.push({ until: t + ms, resolve })),
      advance: async (ms) => {
        t += ms;
        for (const s of sleepers.splice(0)) if (s.until <= t) s.resolve(); else sleepers.push(s);
        await new Promise((r) => setImmediate(r));
      },
    };
    return clock;
  };

  it(`writes the first value at once, then the newest at most every ${PROGRESS_INTERVAL_MS} ms, and the last on flush`, async () => {
    const clock = manual();
    const writes: Array<{ json: string; at: number }> = [];
    const store = { setProgress: async (_id: string, _attempt: number, json: string, at: number) => (writes.push({ json, at }), true) };
    const r = new ProgressReporter({ store, clock, log: silentLogger }, 'job', 1);
    const first = r.report(1);
    await first;
    assert.deepEqual(writes.map((w) => w.json), ['1']);
    const later = [r.report(2), r.report(3), r.report(4)];
    await clock.advance(PROGRESS_INTERVAL_MS - 1);
    assert.equal(writes.length, 1, 'nothing before the interval');
    await clock.advance(1);
    await Promise.all(later);
    assert.deepEqual(writes.map((w) => w.json), ['1', '4']);
    assert.equal(writes[1]!.at - writes[0]!.at, PROGRESS_INTERVAL_MS);
    const last = r.report({ phase: 'done' });
    await r.flush();
    await last;
    assert.deepEqual(writes.map((w) => w.json), ['1', '4', '{"phase":"done"}']);
    await r.report(99); // after the flush: checked, not written
    assert.equal(writes.length, 3);
    assert.throws(() => r.report(101), RangeError);
  });

  for (const end of ['close', 'flush'] as const) {
    it(`once the attempt's signal aborted, no value waits out the interval: ${end} ${end === 'close' ? 'drops' : 'writes'} the pending one`, async () => {
      const clock = manual();
      const writes: string[] = [];
      const store = { setProgress: async (_id: string, _attempt: number, json: string) => (writes.push(json), true) };
      const attempt = new AbortController();
      const r = new ProgressReporter({ store, clock, log: silentLogger, signal: attempt.signal }, 'job', 1);
      await r.report(1);
      const pending = r.report(2);
      attempt.abort(); // the attempt was given up (a crash, a cancel) or ends (a timeout)
      await clock.advance(PROGRESS_INTERVAL_MS);
      assert.deepEqual(writes, ['1'], 'not written when the interval passed');
      // A handler awaiting its report in its abort path goes on at once: it need not wait for the worker's flush.
      const soon = () => new Promise((resolve) => setImmediate(resolve, 'held'));
      assert.equal(await Promise.race([pending.then(() => 'resolved'), soon()]), 'resolved');
      assert.equal(await Promise.race([r.report(3).then(() => 'resolved'), soon()]), 'resolved', 'also a report made after the abort');
      await r[end]();
      await pending;
      assert.deepEqual(writes, end === 'close' ? ['1'] : ['1', '3'], 'flush writes the newest value');
      await r.report(4); // after it: checked, not written
      await clock.advance(PROGRESS_INTERVAL_MS);
      assert.deepEqual(writes, end === 'close' ? ['1'] : ['1', '3']);
    });
  }

  it('reports that wait for one write share one promise: a handler reporting in a tight loop, not awaiting, holds nothing per report while a write is slow', async () => {
    const clock = manual();
    const writes: string[] = [];
    let answer!: () => void;
    const store = {
      setProgress: async (_id: string, _attempt: number, json: string) => {
        writes.push(json);
        await new Promise<void>((r) => (answer = r)); // the store is slow to answer
        return true;
      },
    };
    const r = new ProgressReporter({ store, clock, log: silentLogger }, 'job', 1);
    const first = r.report(0);
    await clock.advance(0); // its write is sent; the store has not answered
    assert.deepEqual(writes, ['0']);
    const waiting = new Set<Promise<void>>();
    for (let i = 1; i <= 100_000; i++) waiting.add(r.report({ n: i }));
    assert.equal(waiting.size, 1, 'one promise for every report waiting for the next write');
    assert.ok(!waiting.has(first), 'not the promise of the write in flight');
    answer();
    await first;
    await clock.advance(PROGRESS_INTERVAL_MS);
    answer();
    await Promise.all(waiting);
    assert.deepEqual(writes, ['0', '{"n":100000}']);
  });

  it('a failed write is logged, not thrown: the handler goes on', async () => {
    const clock = manual();
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (m: string) => void warned.push(m) };
    const store = { setProgress: async () => { throw new Error('database gone'); } };
    await new ProgressReporter({ store, clock, log }, 'job', 1).report(5);
    assert.deepEqual(warned, ['worker: progress not stored']);
  });
});

const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
  type: 'demo.echo', payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0, ...o,
});

for (const backend of STORE_BACKENDS) {
  it(`${backend.name}: progress is stored only for the attempt the job runs, replaced at each report, and deleted with the job`, async () => {
    const { store, cleanup } = await backend.open();
    try {
      await store.migrate();
      let t = 5_000_000;
      const clock: Clock = { now: () => t, sleep: () => Promise.resolve() };
      const ulid = monotonicFactory();
      const transitions = new TransitionService({ store, clock, random: { next: () => 0.5 }, ids: { jobId: () => ulid() } });
      const { job } = await transitions.submit(spec({ type: 'p.job', queue: 'q' }));
      assert.equal(await store.setProgress(job.id, 1, '10', t), false, 'not running yet');
      assert.ok((await transitions.apply(job.id, { type: 'STARTED', attempt: 1, leaseUntil: t + 30_000, workerId: 'w' })).ok);
      assert.equal(await store.setProgress(job.id, 1, '10', ++t), true);
      assert.equal(await store.setProgress(job.id, 1, '{"step":"b"}', ++t), true);
      assert.equal(await store.setProgress(job.id, 2, '99', ++t), false, 'another attempt');
      assert.deepEqual(await store.getProgress(job.id), { jobId: job.id, tenant: 'default', type: 'p.job', queue: 'q', attempt: 1, value: { step: 'b' }, at: t - 1 });
      assert.deepEqual((await store.readProgressSince(t - 1, 10)).map((p) => p.jobId), [job.id]);
      assert.deepEqual(await store.readProgressSince(t, 10), []);
      assert.ok((await transitions.apply(job.id, { type: 'SUCCEEDED', attempt: 1, result: null })).ok);
      assert.equal(await store.setProgress(job.id, 1, '100', ++t), false, 'the attempt ended');
      assert.deepEqual((await store.deleteJob(job.id)).ok, true);
      assert.equal(await store.getProgress(job.id), null);
    } finally {
      await cleanup();
    }
  });
}

it('embedded: a handler\'s progress reaches the job and the stream, and bad progress is refused to the handler', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-progress-'));
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const refusals: string[] = [];
  const registry = new HandlerRegistry().register('p.steps', async (_payload, ctx) => {
    await ctx.progress(25);
    for (const bad of [250, 'half', [1]]) {
      try {
        await ctx.progress(bad as never);
      } catch (e) {
        refusals.push((e as Error).message);
      }
    }
    await ctx.progress({ step: 'upload', done: 3, of: 4 });
    await released;
    return 'ok';
  });
  const system = await compose(compileConfig({ dataDir: dir, port: 0, logLevel: 'silent', relayPollMs: 20, timersPollMs: 50 }), { registry, logger: silentLogger });
  const { url } = (await system.start()) as { url: string };
  const client = await TestClient.connect(`${url.replace(/^http/, 'ws')}/v1/stream`);
  try {
    await client.subscribe({ type: 'p.steps' });
    const { job } = await system.transitions.submit(spec({ type: 'p.steps' }));
    const seen = await client.waitFor((ms) => {
      const p = ms.filter((m) => m.kind === 'progress');
      return p.some((m) => JSON.stringify(m.progress) === '{"step":"upload","done":3,"of":4}') ? p : undefined;
    }, 20_000);
    assert.ok(seen.every((m) => m.jobId === job.id && m.jobType === 'p.steps' && m.queue === 'default' && m.attempt === 1));
    assert.equal(typeof seen[0]!.at, 'string');
    assert.deepEqual((await system.store.getProgress(job.id))?.value, { step: 'upload', done: 3, of: 4 });
    assert.deepEqual(refusals, [
      'progress must be a number from 0 to 100, not 250',
      'progress must be a number from 0 to 100 or a JSON object, not string',
      'progress must be a number from 0 to 100 or a JSON object, not an array',
    ]);
    release();
  } finally {
    release();
    await client.close();
    await system.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
