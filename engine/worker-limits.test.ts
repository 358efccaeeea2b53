/**
 * Workers and concurrency limits, in process: a dispatch over its key's limit
 * waits in the worker (no attempt spent, nothing failed) and starts once the
 * limit allows; the jobs behind it, limited or not, are not held up.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { DEFAULT_BACKOFF } from '../machines/backoff.js';
import { waitForJob } from '../tests/helpers/system.js';
import { workerHarness } from '../tests/helpers/worker-harness.js';
import { HandlerRegistry } from './handlers.js';
import { silentLogger } from './logger.js';
import { systemClock } from './system.js';
import { Timers } from './timers.js';
import { THROTTLED_KEPT } from './held-dispatches.js';
import type { Clock, JobSpec, JobStore } from './ports.js';

const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
  type: 'test.limited', payload: {}, queue: 'default', maxAttempts: 1, backoff: DEFAULT_BACKOFF, timeoutMs: 60_000, priority: 0, ...o,
});

/** Handlers that take `ms` and record how many of each key ran at once, and when each started. */
function measuring(ms: number) {
  const running = new Map<string, number>();
  const most = new Map<string, number>();
  const starts = new Map<string, number[]>();
  /** Every start's key, in order. */
  const order: string[] = [];
  const registry = new HandlerRegistry().register('test.limited', async (payload) => {
    const key = (payload as { key: string }).key;
    const now = (running.get(key) ?? 0) + 1;
    running.set(key, now);
    most.set(key, Math.max(most.get(key) ?? 0, now));
    starts.set(key, [...(starts.get(key) ?? []), Date.now()]);
    order.push(key);
    await sleep(ms);
    running.set(key, running.get(key)! - 1);
    return null;
  });
  return { registry, most, starts, order };
}

describe('workers under concurrency and rate limits', () => {
  it('never run more attempts of a key at once than its limit, across workers; every job done on its first attempt', async () => {
    const m = measuring(50);
    const h = await workerHarness(m.registry);
    try {
      await h.store.putLimit('mail', { concurrency: 2, rate: null }, Date.now());
      const workers = [await h.worker('w1', { concurrency: 5 }), await h.worker('w2', { concurrency: 5 })];
      const limited = [];
      for (let i = 0; i < 16; i++) limited.push(await h.submit(spec({ concurrencyKey: 'mail', payload: { key: 'mail' } })));
      const free = [];
      for (let i = 0; i < 20; i++) free.push(await h.submit(spec({ payload: { key: 'free' } })));
      for (const id of free) await waitForJob(h.store, id, (j) => j.snapshot.value === 'done', 10_000, 'done');
      for (const id of limited) {
        const done = await waitForJob(h.store, id, (j) => j.snapshot.value === 'done', 20_000, 'done');
        assert.equal(done.snapshot.context.attempt, 1, 'no attempt spent waiting');
      }
      assert.equal(m.most.get('mail'), 2, 'at most two at once, and the limit was reached');
      // Submitted after the limited jobs, the unlimited ones started while limited ones still waited: not held behind them.
      assert.ok(m.order.indexOf('free') < m.order.lastIndexOf('mail'), `start order: ${m.order.join(' ')}`);
      assert.ok((m.most.get('free') ?? 0) > 2, 'unlimited jobs ran several at once');
      assert.ok(workers.reduce((n, w) => n + w.counters.throttled, 0) > 0, 'claims were refused and held');
    } finally {
      await h.stop();
    }
  });

  it('a key limited to one at a time, with a backlog held here, claims one held dispatch per attempt that ends, not every one', async () => {
    const m = measuring(2);
    const h = await workerHarness(m.registry);
    try {
      await h.store.putLimit('one', { concurrency: 1, rate: null }, Date.now());
      const w = await h.worker('w1', { concurrency: 8 });
      const n = 150;
      const results = await h.transitions.submitMany(Array.from({ length: n }, () => spec({ concurrencyKey: 'one', payload: { key: 'one' } })));
      assert.ok(results.every((r) => r.ok));
      for (const r of results) {
        if (r.ok) assert.equal((await waitForJob(h.store, r.job.id, (j) => j.snapshot.value === 'done', 60_000, 'done')).snapshot.context.attempt, 1);
      }
      assert.equal(m.most.get('one'), 1, 'one at a time');
      // Each dispatch is refused once as it comes (the slot is taken), then claimed when an attempt ends here, with
      // a few refused probes between; waking the whole backlog at each end refused about n * n / 2 claims.
      assert.ok(w.counters.throttled <= 2 * n, `${w.counters.throttled} refused claims for ${n} jobs`);
    } finally {
      await h.stop();
    }
  });

  it('a rated key with a backlog held here asks about it a few times a window, not once per dispatch; lifted, the backlog starts at once', async () => {
    const m = measuring(1);
    const h = await workerHarness(m.registry);
    try {
      await h.store.putLimit('api', { concurrency: null, rate: { max: 2, intervalMs: 1000 } }, Date.now());
      const w = await h.worker('w1', { concurrency: 8 });
      const n = 80;
      const results = await h.transitions.submitMany(Array.from({ length: n }, () => spec({ concurrencyKey: 'api', payload: { key: 'api' } })));
      assert.ok(results.every((r) => r.ok));
      const deadline = Date.now() + 10_000;
      while (w.counters.throttled < n - 2 && Date.now() < deadline) await sleep(5);
      const before = w.counters.throttled;
      const from = Date.now();
      await sleep(3000);
      const refusals = w.counters.throttled - before;
      const seconds = (Date.now() - from) / 1000;
      // Each start of the rate (two a second): its best held dispatch asks, and starts; two ask next, refused until the
      // next (about 4 refusals a second). Claiming all the held ones whenever the rate's wait ended refused about n a second.
      assert.ok(refusals <= 8 * Math.ceil(seconds), `${refusals} refusals of a backlog of ${n} in ${seconds} s`);
      assert.equal(await h.store.deleteLimit('api'), true);
      for (const r of results) {
        if (r.ok) assert.equal((await waitForJob(h.store, r.job.id, (j) => j.snapshot.value === 'done', 10_000, 'done')).snapshot.context.attempt, 1);
      }
    } finally {
      await h.stop();
    }
  });

  it('spaces the starts of a rated key', async () => {
    const m = measuring(1);
    const h = await workerHarness(m.registry);
    try {
      await h.store.putLimit('api', { concurrency: null, rate: { max: 4, intervalMs: 400 } }, Date.now());
      await h.worker('w1', { concurrency: 10 });
      const ids = [];
      for (let i = 0; i < 8; i++) ids.push(await h.submit(spec({ concurrencyKey: 'api', payload: { key: 'api' } })));
      for (const id of ids) await waitForJob(h.store, id, (j) => j.snapshot.value === 'done', 10_000, 'done');
      const starts = m.starts.get('api')!;
      assert.equal(starts.length, 8);
      // One every 100 ms at most (the handler records its start a little after the claim: allow 20 ms).
      for (let i = 1; i < starts.length; i++) assert.ok(starts[i]! - starts[i - 1]! >= 80, `starts ${i - 1} and ${i}: ${starts[i]! - starts[i - 1]!} ms apart`);
    } finally {
      await h.stop();
    }
  });

  it('dispatches held for a long rate wait start soon once the limit is lifted, or its rate raised', async () => {
    const registry = new HandlerRegistry().register('test.limited', async () => null);
    const h = await workerHarness(registry);
    try {
      // One start an hour: the first of each key starts, the second is held for the hour.
      for (const key of ['lifted', 'raised']) await h.store.putLimit(key, { concurrency: null, rate: { max: 1, intervalMs: 3_600_000 } }, Date.now());
      const w = await h.worker('w1', { concurrency: 4 });
      const firsts = [await h.submit(spec({ concurrencyKey: 'lifted' })), await h.submit(spec({ concurrencyKey: 'raised' }))];
      for (const id of firsts) await waitForJob(h.store, id, (j) => j.snapshot.value === 'done', 5000, 'done');
      const lifted = await h.submit(spec({ concurrencyKey: 'lifted' }));
      const raised = await h.submit(spec({ concurrencyKey: 'raised' }));
      const deadline = Date.now() + 5000;
      while (w.counters.throttled < 2 && Date.now() < deadline) await sleep(5);
      assert.equal(w.counters.throttled, 2, 'both held back by their rate');
      assert.equal(await h.store.deleteLimit('lifted'), true);
      await h.store.putLimit('raised', { concurrency: null, rate: { max: 100, intervalMs: 1000 } }, Date.now());
      // Neither waits out the hour (the harness has no timers to dispatch them again).
      for (const id of [lifted, raised]) assert.equal((await waitForJob(h.store, id, (j) => j.snapshot.value === 'done', 10_000, 'done')).snapshot.context.attempt, 1);
    } finally {
      await h.stop();
    }
  });

  it('a paused key (concurrency 0) starts none of its jobs, lets the running ones finish, holds the rest without spending an attempt, and runs them once raised', async () => {
    const gates = new Map<string, () => void>();
    const blocked = new Set<string>();
    const registry = new HandlerRegistry().register('test.limited', async (_p, ctx) => {
      if (blocked.has(ctx.jobId)) await new Promise<void>((resolve) => gates.set(ctx.jobId, resolve));
      return null;
    });
    const h = await workerHarness(registry);
    const releaseAll = () => { for (const open of gates.values()) open(); };
    try {
      await h.store.putLimit('smtp', { concurrency: 3, rate: null }, Date.now());
      const w = await h.worker('w1', { concurrency: 8 });
      const running = [];
      for (let i = 0; i < 3; i++) {
        const id = await h.transitions.submit(spec({ concurrencyKey: 'smtp' }));
        assert.ok(id.ok);
        blocked.add(id.job.id);
        running.push(id.job.id);
      }
      for (const id of running) await waitForJob(h.store, id, (j) => j.snapshot.value === 'running', 5000, 'running');
      await h.store.putLimit('smtp', { concurrency: 0, rate: null }, Date.now());
      const paused = [];
      for (let i = 0; i < 3; i++) paused.push(await h.submit(spec({ concurrencyKey: 'smtp' })));
      const free = await h.submit(spec());
      await waitForJob(h.store, free, (j) => j.snapshot.value === 'done', 5000, 'done');
      const deadline = Date.now() + 5000;
      while (w.counters.throttled < 3 && Date.now() < deadline) await sleep(5);
      assert.equal(w.counters.throttled, 3, 'the three held back');
      // From here: the attempts started before the pause end one by one, each waking no paused dispatch (no attempt
      // ending lets one start), and the three are asked about once a second, by one of them (PAUSED_RECHECK_MS).
      const heldFrom = Date.now();
      const before = w.counters.throttled;
      for (const id of running) {
        await sleep(700);
        gates.get(id)!();
        await waitForJob(h.store, id, (j) => j.snapshot.value === 'done', 5000, 'the attempt started before the pause goes on');
      }
      await sleep(Math.max(0, 3000 - (Date.now() - heldFrom)));
      const refusals = w.counters.throttled - before;
      const seconds = (Date.now() - heldFrom) / 1000;
      for (const id of paused) {
        const job = await h.store.getJob(id);
        assert.equal(job!.snapshot.value, 'published', 'held: not started, not failed');
        assert.equal(job!.snapshot.context.attempt, 0, 'no attempt spent');
      }
      // A loaded machine claims less often, never more.
      assert.ok(refusals <= Math.ceil(seconds) + 1, `${refusals} refusals of 3 paused dispatches in ${seconds} s`);
      await h.store.putLimit('smtp', { concurrency: 2, rate: null }, Date.now());
      for (const id of paused) assert.equal((await waitForJob(h.store, id, (j) => j.snapshot.value === 'done', 5000, 'done')).snapshot.context.attempt, 1);
    } finally {
      releaseAll();
      await h.stop();
    }
  });

  it('a paused key\'s probe whose job was cancelled meanwhile wakes none of the others: the next one asks instead', async () => {
    const registry = new HandlerRegistry().register('test.limited', async () => null);
    const h = await workerHarness(registry);
    try {
      await h.store.putLimit('smtp', { concurrency: 0, rate: null }, Date.now());
      const w = await h.worker('w1', { concurrency: 8 });
      const ids = [];
      for (let i = 0; i < 8; i++) ids.push(await h.submit(spec({ concurrencyKey: 'smtp' })));
      const deadline = Date.now() + 5000;
      while (w.counters.throttled < 8 && Date.now() < deadline) await sleep(5);
      assert.equal(w.counters.throttled, 8, 'the eight held back');
      // The longest held ask first: the first two are cancelled, so two probes in a row find no job to claim.
      const before = w.counters.throttled;
      const from = Date.now();
      for (const id of ids.slice(0, 2)) assert.ok((await h.transitions.apply(id, { type: 'CANCEL', reason: 'test' })).ok);
      await sleep(3500);
      const refusals = w.counters.throttled - before;
      const seconds = (Date.now() - from) / 1000;
      // A probe that finds its job gone passes the asking on to the next at once (its refusal in that second's
      // stead), never wakes the six others: one refusal a second.
      assert.ok(refusals <= Math.ceil(seconds), `${refusals} refusals of 6 paused dispatches in ${seconds} s`);
      for (const id of ids.slice(2)) assert.equal((await h.store.getJob(id))!.snapshot.value, 'published');
      await h.store.putLimit('smtp', { concurrency: 6, rate: null }, Date.now());
      for (const id of ids.slice(2)) assert.equal((await waitForJob(h.store, id, (j) => j.snapshot.value === 'done', 5000, 'done')).snapshot.context.attempt, 1);
    } finally {
      await h.stop();
    }
  });

  it('a worker holding more dispatches than it keeps warns once for those it drops, not once for each', { timeout: 120_000 }, async () => {
    const registry = new HandlerRegistry().register('test.limited', async () => null);
    const h = await workerHarness(registry);
    const lines: Array<{ level: string; msg: string; repeated?: unknown }> = [];
    const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => { lines.push({ level, msg, repeated: fields?.repeated }); };
    const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    try {
      await h.store.putLimit('paused', { concurrency: 0, rate: null }, Date.now());
      const w = await h.worker('w1', { concurrency: 8 }, { logger });
      const extra = 40;
      for (let n = 0; n < THROTTLED_KEPT + extra; n += 1000) {
        const results = await h.transitions.submitMany(Array.from({ length: Math.min(1000, THROTTLED_KEPT + extra - n) }, () => spec({ concurrencyKey: 'paused' })));
        assert.ok(results.every((r) => r.ok));
      }
      const isDrop = (l: { msg: string }) => l.msg.startsWith('worker: too many dispatches held back by limits');
      const deadline = Date.now() + 90_000;
      while (lines.filter(isDrop).length < extra && Date.now() < deadline) await sleep(20);
      const dropped = lines.filter(isDrop);
      assert.equal(dropped.length, extra, 'each drop is said');
      assert.equal(dropped.filter((l) => l.level === 'warn').length, 1, 'one warning; the rest at debug, counted by the next warning');
    } finally {
      await h.stop();
    }
  });

  it('held dispatches of different priorities that come due together are claimed highest first, none left waiting', async () => {
    const registry = new HandlerRegistry().register('test.limited', async () => null);
    const h = await workerHarness(registry);
    try {
      // One start per 1.5 s: the first starts, the next two are refused until the same moment.
      await h.store.putLimit('k', { concurrency: null, rate: { max: 1, intervalMs: 1500 } }, Date.now());
      const w = await h.worker('w1', { concurrency: 4 });
      const first = await h.submit(spec({ concurrencyKey: 'k' }));
      await waitForJob(h.store, first, (j) => j.snapshot.value === 'done', 5000, 'done');
      // Held in this order, the lower first; both come due when the rate allows the next start.
      const low = await h.submit(spec({ concurrencyKey: 'k' }));
      const deadline = Date.now() + 5000;
      while (w.counters.throttled < 1 && Date.now() < deadline) await sleep(5);
      const high = await h.submit(spec({ concurrencyKey: 'k', priority: 5 }));
      while (w.counters.throttled < 2 && Date.now() < deadline) await sleep(5);
      const done = await waitForJob(h.store, high, (j) => j.snapshot.value === 'done', 5000, 'done');
      const lowDone = await waitForJob(h.store, low, (j) => j.snapshot.value === 'done', 5000, 'done');
      assert.ok(done.updatedAt <= lowDone.updatedAt, 'the higher priority started first');
    } finally {
      await h.stop();
    }
  });

  it('a worker stopping with dispatches held back hands them back at once, and another worker runs them', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const registry = new HandlerRegistry().register('test.limited', async (_p, ctx) => {
      if (ctx.attempt === 1 && (ctx.jobId === blocker)) await gate;
      return null;
    });
    let blocker = '';
    const h = await workerHarness(registry);
    try {
      await h.store.putLimit('one', { concurrency: 1, rate: null }, Date.now());
      // A short lease: the blocker's worker stops without finishing it, and its slot frees when the lease ends.
      const first = await h.worker('w1', { concurrency: 4, leaseMs: 1000, heartbeatMs: 200 });
      blocker = await h.submit(spec({ concurrencyKey: 'one' }));
      await waitForJob(h.store, blocker, (j) => j.snapshot.value === 'running', 5000, 'running');
      const waiting = await h.submit(spec({ concurrencyKey: 'one' }));
      const deadline = Date.now() + 5000;
      while (first.counters.throttled === 0 && Date.now() < deadline) await sleep(5);
      assert.ok(first.counters.throttled > 0, 'the second job was held back by the limit');
      const second = await h.worker('w2', { concurrency: 4 });
      await first.stop();
      release();
      const done = await waitForJob(h.store, waiting, (j) => j.snapshot.value === 'done', 10_000, 'done');
      const events = await h.store.getEvents(waiting);
      assert.ok(events.some((e) => e.type === 'DISPATCH'), 'dispatched again by the stopping worker');
      assert.equal((events.find((e) => e.type === 'STARTED')!.data as { workerId: string }).workerId, 'w2');
      assert.equal(done.snapshot.context.attempt, 1);
      assert.equal(second.counters.claimed, 1);
    } finally {
      release();
      await h.stop();
    }
  });

  // Found by the delivery property (property-tests: a worker crashed just after a claim its key's rate refused).
  for (const end of ['crash', 'stop'] as const) {
    it(`a worker's ${end} that lands while it keeps its held dispatches does not wait for their next claim`, async () => {
      const registry = new HandlerRegistry().register('test.limited', async () => null);
      const h = await workerHarness(registry);
      // Sleeps that end only when aborted (or the test ends them): a wait the worker does not cut short when it stops never ends.
      const sleeping = new Set<() => void>();
      const clock: Clock = {
        now: () => Date.now(),
        sleep: (_ms, signal) => new Promise<void>((resolve, reject) => {
          if (signal?.aborted) return reject(signal.reason);
          sleeping.add(resolve);
          signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
      };
      let keeping!: () => void;
      const kept = new Promise<void>((resolve) => { keeping = resolve; });
      let letKeep!: () => void;
      const keepGate = new Promise<void>((resolve) => { letKeep = resolve; });
      const store: Pick<JobStore, 'keepDispatches'> = {
        keepDispatches: async (jobIds, at) => {
          keeping();
          await keepGate;
          return h.store.keepDispatches(jobIds, at);
        },
      };
      try {
        // One start an hour: the second job's claim is refused, held (its next claim a second away), and kept at once.
        await h.store.putLimit('hourly', { concurrency: null, rate: { max: 1, intervalMs: 3_600_000 } }, Date.now());
        const w = await h.worker('w1', {}, { clock, store });
        await waitForJob(h.store, await h.submit(spec({ concurrencyKey: 'hourly' })), (j) => j.snapshot.value === 'done', 5000, 'done');
        await h.submit(spec({ concurrencyKey: 'hourly' }));
        await kept;
        assert.equal(w.counters.throttled, 1, 'the second job was held back by the rate');
        const ended = end === 'crash' ? w.crash() : w.stop();
        letKeep();
        const outcome = await Promise.race([ended.then(() => 'ended'), sleep(2000).then(() => 'still waiting after 2 s')]);
        assert.equal(outcome, 'ended', `the worker's ${end}() returns once its keep is written`);
      } finally {
        letKeep();
        for (const wake of sleeping) wake();
        await h.stop();
      }
    });
  }

  it('keeps a dispatch it holds from the timers\' re-dispatch past the published timeout; once the worker is gone, the timers dispatch it again', async () => {
    const h = await workerHarness(new HandlerRegistry().register('test.limited', async () => null));
    const timers = new Timers({ store: h.store, transitions: h.transitions, clock: systemClock, logger: silentLogger }, { pollMs: 50, batchSize: 100, publishedTimeoutMs: 400 });
    try {
      // One start an hour: the second job waits in the worker.
      await h.store.putLimit('hourly', { concurrency: null, rate: { max: 1, intervalMs: 3_600_000 } }, Date.now());
      const first = await h.worker('w1', { keepHeldMs: 100 });
      await waitForJob(h.store, await h.submit(spec({ concurrencyKey: 'hourly' })), (j) => j.snapshot.value === 'done', 5000, 'done');
      const waiting = await h.submit(spec({ concurrencyKey: 'hourly' }));
      const deadline = Date.now() + 5000;
      while (first.counters.throttled === 0 && Date.now() < deadline) await sleep(5);
      assert.ok(first.counters.throttled > 0, 'the second job was held back by the limit');
      timers.start();
      await sleep(1500); // over three published timeouts
      const types = (await h.store.getEvents(waiting)).map((e) => e.type);
      assert.deepEqual(types, ['SUBMITTED', 'PUBLISHED'], 'dispatched once, not again while the worker holds it');
      assert.equal(timers.counters.redispatched, 0);
      // The worker dies: nothing keeps the dispatch any more, and the timers dispatch it again for another worker.
      await first.crash();
      assert.equal(await h.store.deleteLimit('hourly'), true);
      const second = await h.worker('w2');
      const done = await waitForJob(h.store, waiting, (j) => j.snapshot.value === 'done', 5000, 'done');
      const events = await h.store.getEvents(waiting);
      assert.ok(events.some((e) => e.type === 'DISPATCH'), `dispatched again by the timers: ${events.map((e) => e.type)}`);
      assert.equal((events.find((e) => e.type === 'STARTED')!.data as { workerId: string }).workerId, 'w2');
      assert.equal(done.snapshot.context.attempt, 1);
      assert.equal(second.counters.claimed, 1);
    } finally {
      await timers.stop();
      await h.stop();
    }
  });
});
