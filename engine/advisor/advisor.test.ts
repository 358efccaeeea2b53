/**
 * The advisor service on the embedded store: it learns from the committed
 * events (job_events), rebuilds what it learned after a restart, and its
 * mode decides whether its decisions reach the engine.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import { ManualClock } from '../../tests/helpers/manual-clock.js';
import { silentLogger } from '../logger.js';
import type { JobRecord, JobSpec, JobStore, StreamEventRecord } from '../ports.js';
import { mathRandom, ulidIds } from '../system.js';
import { TransitionService } from '../transitions.js';
import { Advisor, AHEAD_READ_LIMIT, type DecisionKind } from './advisor.js';
import type { AdvisorMode, ModelOptions } from './types.js';

const spec = (type: string, extra: Partial<JobSpec> = {}): JobSpec => ({
  type, payload: {}, queue: 'default', maxAttempts: 2, backoff: { kind: 'exponential', baseMs: 1000, maxMs: 60_000, jitter: 'full' },
  timeoutMs: 60_000, priority: 0, ...extra,
});

/** Small evidence thresholds, so a test's history is enough for a verdict. */
const SMALL: Partial<ModelOptions> = { minEvidence: 10, hopelessBelow: 0.3, minRunSamples: 10 };

async function world() {
  const clock = new ManualClock();
  await clock.advance(1_000_000);
  const store = createSqliteStore({ file: ':memory:', clock });
  await store.migrate();
  const transitions = new TransitionService({ store, clock, random: mathRandom, ids: ulidIds() });
  return { clock, store, transitions };
}

type World = Awaited<ReturnType<typeof world>>;

/** One attempt of a job: STARTED, then after `runMs` SUCCEEDED or FAILED with `message`. */
async function attempt(w: World, job: JobRecord, n: number, runMs: number, message: string | null): Promise<JobRecord> {
  const started = await w.transitions.apply(job.id, { type: 'STARTED', attempt: n, leaseUntil: w.clock.now() + 30_000, workerId: 'w' });
  assert.ok(started.ok, `STARTED ${n}`);
  await w.clock.advance(runMs);
  const ended = await w.transitions.apply(job.id, message === null
    ? { type: 'SUCCEEDED', attempt: n, result: null }
    : { type: 'FAILED', attempt: n, error: { message, name: 'Error', retryable: true } });
  assert.ok(ended.ok, `outcome ${n}`);
  return ended.job;
}

/** Twelve report.build jobs of queue `reports`, submitted half a second apart, each done after a 2 s run: run times to learn from. */
async function reportRuns(w: World): Promise<void> {
  for (let i = 0; i < 12; i++) {
    const s = await w.transitions.submit(spec('report.build', { queue: 'reports' }));
    assert.ok(s.ok);
    await w.clock.advance(500);
    await attempt(w, s.job, 1, 2_000, null);
  }
}

/**
 * A job whose every attempt fails with `message` until it is dead (2 attempts), while another job of
 * its type succeeds: the failure is the job's own, not an outage of the type (which is no evidence).
 */
async function hopelessJob(w: World, message: string): Promise<void> {
  const s = await w.transitions.submit(spec('orders.sync'));
  assert.ok(s.ok);
  let job = await attempt(w, s.job, 1, 100, message);
  const healthy = await w.transitions.submit(spec('orders.sync'));
  assert.ok(healthy.ok);
  await attempt(w, healthy.job, 1, 50, null);
  await w.clock.advance(job.snapshot.context.runAt - w.clock.now());
  const due = await w.transitions.apply(job.id, { type: 'RETRY_DUE' });
  assert.ok(due.ok);
  job = await attempt(w, due.job, 2, 100, message);
  assert.equal(job.snapshot.value, 'dead');
}

function advisor(store: JobStore, clock: ManualClock, mode: AdvisorMode, extra: { historyEvents?: number; model?: Partial<ModelOptions> } = {}) {
  const decisions: Array<[DecisionKind, boolean]> = [];
  const a = new Advisor(
    { store, clock, logger: silentLogger, onDecision: (kind, applied) => decisions.push([kind, applied]) },
    { mode, pollMs: 1000, historyEvents: extra.historyEvents ?? 100_000, model: { ...SMALL, ...extra.model } },
  );
  return { a, decisions };
}

describe('advisor service', () => {
  it('learns a hopeless signature from the committed history: enforce returns the decision, advise only counts it, off learns nothing', async () => {
    const w = await world();
    for (let i = 0; i < 12; i++) await hopelessJob(w, `order ${1000 + i} not found`);
    const fresh = (await w.transitions.submit(spec('orders.sync'))).job;

    const enforce = advisor(w.store, w.clock, 'enforce');
    await enforce.a.init();
    await enforce.a.catchUp();
    const decision = enforce.a.adviseFailure(fresh, { name: 'Error', message: 'order 77 not found' }, 1, w.clock.now());
    assert.equal(decision?.retryable, false);
    assert.equal(decision?.signature, 'Error: order # not found');
    assert.deepEqual(enforce.decisions, [['no-retry', true]]);
    const sig = (await enforce.a.insights()).types.find((t) => t.type === 'orders.sync')?.signatures[0];
    assert.equal(sig?.verdict, 'hopeless');
    assert.equal(enforce.a.adviseFailure(fresh, { name: 'Error', message: 'disk full' }, 1, w.clock.now()), null, 'a signature never seen keeps the static policy');

    const advise = advisor(w.store, w.clock, 'advise');
    await advise.a.init();
    await advise.a.catchUp();
    assert.equal(advise.a.adviseFailure(fresh, { name: 'Error', message: 'order 78 not found' }, 1, w.clock.now()), null);
    assert.deepEqual(advise.decisions, [['no-retry', false]], 'counted as advised, not applied');
    assert.equal((await advise.a.insights()).mode, 'advise');

    const off = advisor(w.store, w.clock, 'off');
    await off.a.init();
    await off.a.catchUp();
    assert.equal((await off.a.insights()).events, 0);
    assert.equal(off.a.adviseFailure(fresh, { name: 'Error', message: 'order 79 not found' }, 1, w.clock.now()), null);
    assert.equal(await off.a.eta(fresh), null);
    assert.deepEqual(off.decisions, []);
    await w.store.close();
  });

  it('rebuilds what it learned from the newest events after a restart, and no further back than historyEvents', async () => {
    const w = await world();
    for (let i = 0; i < 12; i++) await hopelessJob(w, `order ${i} not found`);
    const fresh = (await w.transitions.submit(spec('orders.sync'))).job;
    const total = await w.store.lastEventId();

    const restarted = advisor(w.store, w.clock, 'enforce', { historyEvents: total });
    await restarted.a.init();
    await restarted.a.catchUp();
    assert.equal((await restarted.a.insights()).events, total);
    assert.equal(restarted.a.adviseFailure(fresh, { message: 'order 5 not found', name: 'Error' }, 1, w.clock.now())?.retryable, false);

    const shortMemory = advisor(w.store, w.clock, 'enforce', { historyEvents: 20 });
    await shortMemory.a.init();
    await shortMemory.a.catchUp();
    assert.equal((await shortMemory.a.insights()).events, 20);
    assert.equal(shortMemory.a.adviseFailure(fresh, { message: 'order 5 not found', name: 'Error' }, 1, w.clock.now()), null, 'too little evidence in 20 events');
    await w.store.close();
  });

  it('reads the history about 8 MiB of event data at a time, not 1,000 rows whole, and learns from every event', async () => {
    const w = await world();
    // Forty runs, each with a result of 250 KB (a handler may return up to 256 KiB): 10 MB of SUCCEEDED events.
    for (let i = 0; i < 40; i++) {
      const s = await w.transitions.submit(spec('report.build', { queue: 'reports' }));
      assert.ok(s.ok);
      const started = await w.transitions.apply(s.job.id, { type: 'STARTED', attempt: 1, leaseUntil: w.clock.now() + 30_000, workerId: 'w' });
      assert.ok(started.ok);
      await w.clock.advance(2_000);
      assert.ok((await w.transitions.apply(s.job.id, { type: 'SUCCEEDED', attempt: 1, result: String(i % 10).repeat(250_000) })).ok);
    }
    const total = await w.store.lastEventId();
    const reads: number[][] = [];
    const read = w.store.readEventsAfter.bind(w.store);
    const counted: JobStore = Object.assign(Object.create(w.store) as JobStore, {
      readEventsAfter: async (afterId: number, limit: number, throughId?: number) => {
        const rows = await read(afterId, limit, throughId);
        reads.push(rows.map((e: StreamEventRecord) => Buffer.byteLength(JSON.stringify(e.data))));
        return rows;
      },
    });
    const restarted = advisor(counted, w.clock, 'advise');
    await restarted.a.init();
    await restarted.a.catchUp();
    assert.equal((await restarted.a.insights()).events, total, 'every event learned from');
    const budget = 8 * 1024 * 1024;
    const over = reads.filter((r) => r.length > 1 && r.reduce((a, b) => a + b, 0) > budget);
    assert.deepEqual(over.map((r) => `${r.length} rows, ${r.reduce((a, b) => a + b, 0)} bytes`), [], `reads past ${budget} bytes`);
    await w.store.close();
  });

  it('decides nothing from a half-read history: until the events up to the newest at start are read, the static policy stands', async () => {
    const w = await world();
    // Earlier: a signature whose retries failed while others of its type succeeded (hopeless on that evidence)...
    for (let i = 0; i < 14; i++) await hopelessJob(w, `order ${i} not found`);
    await w.clock.advance(600_000);
    // ...then, lately, its retries recover: the whole history says transient (a retry recovered within a half-life).
    for (let i = 0; i < 2; i++) {
      const s = await w.transitions.submit(spec('orders.sync'));
      assert.ok(s.ok);
      const failed = await attempt(w, s.job, 1, 100, `order ${100 + i} not found`);
      await w.clock.advance(failed.snapshot.context.runAt - w.clock.now());
      const due = await w.transitions.apply(failed.id, { type: 'RETRY_DUE' });
      assert.ok(due.ok);
      assert.equal((await attempt(w, due.job, 2, 100, null)).snapshot.value, 'done');
    }
    const fresh = (await w.transitions.submit(spec('orders.sync'))).job;
    const total = await w.store.lastEventId();
    const oldPart = total - 14;

    // The history read at start comes in slowly (a large history, a gap waited for): a read brings the old part first.
    let perRead = oldPart;
    const slow = { ...w.store, readEventsAfter: (afterId: number, limit: number, throughId?: number) => w.store.readEventsAfter(afterId, Math.min(limit, perRead), throughId) } as JobStore;
    const { a, decisions } = advisor(slow, w.clock, 'enforce');
    await a.init();
    await a.catchUp();
    assert.equal((await a.insights()).events, oldPart, 'only the old part is read yet');
    const error = { name: 'Error', message: 'order 5 not found' };
    assert.equal(a.adviseFailure(fresh, error, 1, w.clock.now()), null, 'no stop decided from a half-read history');
    assert.deepEqual(decisions, [], 'nor counted');

    perRead = 1000;
    await a.catchUp();
    assert.equal((await a.insights()).events, total);
    assert.equal(a.adviseFailure(fresh, error, 1, w.clock.now())?.retryable, undefined, 'the whole history: its retries recover lately, not hopeless');

    // A control: with the whole history the old part alone (no recoveries yet) is judged hopeless.
    const w2 = await world();
    for (let i = 0; i < 14; i++) await hopelessJob(w2, `order ${i} not found`);
    const control = advisor(w2.store, w2.clock, 'enforce');
    await control.a.init();
    await control.a.catchUp();
    assert.equal(control.a.adviseFailure((await w2.transitions.submit(spec('orders.sync'))).job, error, 1, w2.clock.now())?.retryable, false);
    await w.store.close();
    await w2.store.close();
  });

  it('an ETA counts the waiting jobs of the queue ahead of the job; a lease is sized from run times (enforce only); a far timeout is flagged', async () => {
    const w = await world();
    await reportRuns(w);
    const waiting: JobRecord[] = [];
    for (let i = 0; i < 4; i++) waiting.push((await w.transitions.submit(spec('report.build', { queue: 'reports' }))).job);
    await w.transitions.submit(spec('report.build', { queue: 'other' }));

    const { a } = advisor(w.store, w.clock, 'enforce');
    await a.init();
    await a.catchUp();
    const eta = await a.eta(waiting[3]!);
    assert.ok(eta, 'an ETA once the type has run times');
    assert.equal(eta.basis.ahead, 3, 'three jobs of its queue wait ahead of it (not the other queue\'s)');
    assert.equal(eta.lowerBound, false, 'every job ahead counted');
    assert.ok(Math.abs(eta.basis.medianRunMs - 2_000) < 100, `median run time ${eta.basis.medianRunMs}`);
    assert.ok(eta.finish >= eta.start + 1_900);
    assert.equal(await a.eta((await w.store.getJob((await w.store.listJobs({ state: 'done', limit: 1 }))[0]!.id))!), null, 'none for a finished job');

    const report = (await a.insights()).types.find((t) => t.type === 'report.build' && t.queue === 'reports');
    assert.equal(report?.timeoutMs, 60_000, 'read from the newest job of the pair');
    assert.ok(report?.changes.some((c) => c.startsWith('timeout 60,000 ms is 30× the p99 run time')), JSON.stringify(report?.changes));

    const lease = a.leaseFor('report.build', 'reports');
    assert.ok(lease && lease.leaseMs < 30_000 && lease.heartbeatMs < lease.leaseMs, JSON.stringify(lease));
    const advise = advisor(w.store, w.clock, 'advise');
    await advise.a.init();
    await advise.a.catchUp();
    assert.equal(advise.a.leaseFor('report.build', 'reports'), null, 'advise keeps the static lease');
    assert.deepEqual(advise.decisions, [], 'asking is no decision: a claim is');
    advise.a.claimed('report.build', 'reports', null);
    assert.deepEqual(advise.decisions, [['lease', false]], 'advise: the learned lease would have been used');
    await w.store.close();
  });

  it('a retry or a delayed job joins the end of its lane when due: its ETA counts the jobs waiting there now, whenever they came, less those started by then', async () => {
    const w = await world();
    await reportRuns(w);
    const fixed = (delayMs: number) => spec('report.build', { queue: 'reports', backoff: { kind: 'fixed', delayMs } });
    // A retry due in 1 s and a job delayed by a minute, both created before the jobs that wait now.
    const retry = await attempt(w, (await w.transitions.submit(fixed(1_000))).job, 1, 2_000, 'upstream 503');
    assert.equal(retry.snapshot.value, 'retrying');
    const delayed = (await w.transitions.submit({ ...fixed(1_000), runAt: w.clock.now() + 60_000 })).job;
    for (let i = 0; i < 4; i++) assert.ok((await w.transitions.submit(spec('report.build', { queue: 'reports' }))).ok);
    assert.ok((await w.transitions.submit(spec('report.build', { queue: 'other' }))).ok);
    // Due after the retry: not ahead of the jobs waiting now, not counted by them.
    const later = (await w.transitions.submit({ ...fixed(1_000), runAt: w.clock.now() + 30_000 })).job;

    const { a } = advisor(w.store, w.clock, 'advise');
    await a.init();
    await a.catchUp();
    const now = w.clock.now();
    const ofRetry = (await a.eta(retry))!;
    assert.equal(ofRetry.basis.ahead, 4, 'the four jobs of its queue waiting now (created after it), not the other queue\'s, not the delayed ones');
    assert.equal(ofRetry.lowerBound, false);
    // The queue starts about 0.15 jobs a second: the four take about 25 s, far past its due time.
    const rate = ofRetry.basis.startsPerSecond!;
    assert.ok(rate > 0.05 && rate < 0.5, `rate ${rate}`);
    assert.ok(Math.abs(ofRetry.start - (now + (4 / rate) * 1000)) < 50, `starts after the four: in ${ofRetry.start - now} ms, due in ${retry.snapshot.context.runAt - now}`);
    // Due in a minute: the four have started by then, it starts when due (and the queue's usual wait).
    const ofDelayed = (await a.eta(delayed))!;
    assert.equal(ofDelayed.basis.ahead, 4, 'the four created after it are ahead of it once it is dispatched');
    assert.equal(ofDelayed.start, delayed.snapshot.context.runAt + ofDelayed.basis.startLatencyMs!);
    assert.equal((await a.eta(later))!.basis.ahead, 4);
    await w.store.close();
  });

  it('an ETA reads at most AHEAD_READ_LIMIT waiting jobs a read: past them, it is a lower bound', async () => {
    const w = await world();
    await reportRuns(w);
    // More waiting jobs than one read takes: most of another queue's, then the job's own queue's.
    for (let i = 0; i < AHEAD_READ_LIMIT; i++) assert.ok((await w.transitions.submit(spec('report.build', { queue: 'busy' }))).ok);
    for (let i = 0; i < 20; i++) assert.ok((await w.transitions.submit(spec('report.build', { queue: 'reports' }))).ok);
    const job = (await w.transitions.submit(spec('report.build', { queue: 'reports' }))).job;

    const maxReads: number[] = [];
    const store = new Proxy(w.store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (prop !== 'countWaitingAhead' || typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          maxReads.push(args[3] as number);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const a = new Advisor({ store, clock: w.clock, logger: silentLogger }, { mode: 'advise', pollMs: 1000, historyEvents: 100_000, model: SMALL });
    await a.init();
    await a.catchUp();
    const eta = await a.eta(job);
    assert.ok(eta);
    assert.deepEqual(maxReads, [AHEAD_READ_LIMIT]);
    assert.equal(eta.lowerBound, true, 'not every job ahead was read');
    assert.ok(eta.basis.ahead < 20, `at least ${eta.basis.ahead} ahead: those found among the jobs read`);
    await w.store.close();
  });

  it('enforce counts a lease decision for a claim made with its lease, none for one made with the static lease', async () => {
    const w = await world();
    for (let i = 0; i < 12; i++) {
      const s = await w.transitions.submit(spec('report.build', { queue: 'reports' }));
      assert.ok(s.ok);
      await attempt(w, s.job, 1, 2_000, null);
    }
    const { a, decisions } = advisor(w.store, w.clock, 'enforce');
    await a.init();
    await a.catchUp();
    const lease = a.leaseFor('report.build', 'reports');
    assert.ok(lease);
    a.claimed('report.build', 'reports', lease);
    assert.deepEqual(decisions, [['lease', true]]);
    a.claimed('report.build', 'reports', null);
    assert.deepEqual(decisions, [['lease', true]], 'a claim made with the static lease (the worker could not use the advisor\'s) is no decision');

    // advise: a learned lease the worker could not use (a heartbeat of 0 ms) would not have been used either.
    const unusable = advisor(w.store, w.clock, 'advise', { model: { staticHeartbeatMs: 0 } });
    await unusable.a.init();
    await unusable.a.catchUp();
    const learned = (await unusable.a.insights()).types.find((t) => t.type === 'report.build')?.lease;
    assert.equal(learned?.heartbeatMs, 0, JSON.stringify(learned));
    unusable.a.claimed('report.build', 'reports', null);
    assert.deepEqual(unusable.decisions, []);
    await w.store.close();
  });
});

describe('advisor service: insights', () => {
  /** The store as the advisor sees it, each call counted by method name. */
  function counted(store: JobStore) {
    const calls = new Map<string, number>();
    const watched = new Proxy(store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    return { watched, calls };
  }

  it('reads a pair\'s handler timeout from its newest job by id, not by listing the jobs, and once while that job stays the newest', async () => {
    const w = await world();
    for (let i = 0; i < 3; i++) {
      const s = await w.transitions.submit(spec('mail.send', { queue: 'mail', timeoutMs: 60_000 }));
      assert.ok(s.ok);
      await attempt(w, s.job, 1, 100, null);
    }
    const newest = await w.transitions.submit(spec('mail.send', { queue: 'mail', timeoutMs: 5_000 }));
    assert.ok(newest.ok);
    await w.transitions.submit(spec('mail.bounce', { queue: 'mail', timeoutMs: 7_000 }));

    const { watched, calls } = counted(w.store);
    const a = new Advisor({ store: watched, clock: w.clock, logger: silentLogger }, { mode: 'advise', pollMs: 1000, historyEvents: 100_000, model: SMALL });
    await a.init();
    await a.catchUp();
    calls.clear();
    const first = await a.insights();
    const timeoutOf = (type: string) => first.types.find((t) => t.type === type && t.queue === 'mail')?.timeoutMs;
    assert.equal(timeoutOf('mail.send'), 5_000, 'the newest job\'s timeout');
    assert.equal(timeoutOf('mail.bounce'), 7_000);
    assert.equal(calls.get('listJobs') ?? 0, 0, 'no jobs listed (a list by type and queue has no index: it scans the jobs)');
    assert.equal(calls.get('getJob'), 2, 'one read by primary key per pair');

    calls.clear();
    await w.clock.advance(120_000);
    await a.insights();
    assert.deepEqual([...calls.keys()], [], 'a job\'s timeout never changes: not read again while it is the pair\'s newest');

    const newer = await w.transitions.submit(spec('mail.send', { queue: 'mail', timeoutMs: 9_000 }));
    assert.ok(newer.ok);
    await a.catchUp();
    calls.clear();
    assert.equal((await a.insights()).types.find((t) => t.type === 'mail.send')?.timeoutMs, 9_000, 'a newer job of the pair is read');
    assert.deepEqual(Object.fromEntries(calls), { getJob: 1 });
    await w.store.close();
  });
});

describe('advisor service: anomalies', () => {
  /** Jobs of one attempt each: every 50th fails, then (from job `spikeFrom`) every 2nd. */
  function events(n: number, spikeFrom: number): StreamEventRecord[] {
    const out: StreamEventRecord[] = [];
    let id = 0;
    for (let i = 0; i < n; i++) {
      const jobId = `j${String(i).padStart(5, '0')}`;
      const at = 1_000_000 + i * 1000;
      const fails = i >= spikeFrom ? i % 2 === 0 : i % 50 === 0;
      const base = { jobId, jobType: 'thumbnail.make', queue: 'default' };
      out.push({ ...base, id: ++id, seq: 1, type: 'SUBMITTED', from: null, to: 'pending', at, data: { at, maxAttempts: 1, backoff: spec('x').backoff } });
      out.push({ ...base, id: ++id, seq: 2, type: 'STARTED', from: 'pending', to: 'running', at: at + 1, data: { type: 'STARTED', at: at + 1, attempt: 1, leaseUntil: at + 30_001, workerId: 'w' } });
      out.push(fails
        ? { ...base, id: ++id, seq: 3, type: 'FAILED', from: 'running', to: 'dead', at: at + 100, data: { type: 'FAILED', at: at + 100, attempt: 1, rand: 0.5, error: { message: 'busy', retryable: true } } }
        : { ...base, id: ++id, seq: 3, type: 'SUCCEEDED', from: 'running', to: 'done', at: at + 100, data: { type: 'SUCCEEDED', at: at + 100, attempt: 1, result: null } });
    }
    return out;
  }

  /** A store that holds `visible` of the events (tests move it on). */
  function store(all: StreamEventRecord[]) {
    const s = {
      visible: 0,
      readEventsAfter: async (afterId: number, limit: number) => all.slice(0, s.visible).filter((e) => e.id > afterId).slice(0, limit),
      eventSizesAfter: async (afterId: number, limit: number) =>
        (await s.readEventsAfter(afterId, limit)).map((e) => ({ id: e.id, bytes: JSON.stringify(e.data).length })),
      lastEventId: async () => all[s.visible - 1]?.id ?? 0,
      countWaitingAhead: async () => ({ ahead: 0, complete: true }),
      getJob: async () => null,
    };
    return s;
  }

  it('tells of an anomaly found in new events, and not of one found again in the history re-read at start', async () => {
    const all = events(500, 350);
    const clock = new ManualClock();
    const told: string[] = [];
    const start = async (s: ReturnType<typeof store>) => {
      const a = new Advisor({ store: s, clock, logger: silentLogger, onAnomaly: (x) => told.push(`${x.metric} at ${x.at}`) }, { mode: 'advise', pollMs: 1000, historyEvents: 100_000 });
      await a.init();
      await a.catchUp();
      return a;
    };
    // Live: the spike arrives after the advisor started.
    const live = store(all);
    const first = await start(live);
    live.visible = all.length;
    await first.catchUp();
    assert.equal(told.length, 1, `one anomaly told: ${told.join(', ')}`);
    assert.match(told[0]!, /^failure-rate at /);
    // A restart re-reads the same history: the anomaly is learned again (insights keep it) but not told again.
    const restarted = store(all);
    restarted.visible = all.length;
    const second = await start(restarted);
    assert.equal(told.length, 1, 'not told again');
    assert.equal((await second.insights()).types[0]?.anomalies.length, 1, 'still in the insights');
  });

  it('does not tell again an anomaly of the history when the read that ends the history also brings new events', async () => {
    const all = events(500, 350); // the spike is detected around event 1,200: in the second read of 1,000
    const clock = new ManualClock();
    const told: string[] = [];
    const s = store(all);
    s.visible = all.length - 3; // the history at start: all but the last job
    const a = new Advisor({ store: s, clock, logger: silentLogger, onAnomaly: (x) => told.push(`${x.metric} at ${x.at}`) }, { mode: 'advise', pollMs: 1000, historyEvents: 100_000 });
    await a.init();
    s.visible = all.length; // a job committed while the advisor started
    await a.catchUp();
    assert.equal((await a.insights()).types[0]?.anomalies.length, 1, 'the anomaly is learned');
    assert.deepEqual(told, [], 'but it was found in the history: not told again');
  });
});
