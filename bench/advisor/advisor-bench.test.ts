/**
 * The advisor benchmark's own checks: the workload and a short simulation
 * are deterministic per seed, an attempt does what its fate says, and the
 * measures compute what they claim on hand-made runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { anomalyMeasures, bestConstantShare, etaStats, falseExpiries, lostSuccesses, measureSeed, recoveryStats, summarize, wastedAttempts } from './goals.js';
import { classifyExpiries, PerJobJitter, simulate, type JobResult, type RunRecord } from './simulate.js';
import { attemptOutcome, generate, mix, SPIKE_TYPE, type Workload } from './workload.js';

const MIN = 60_000;
/** A few simulated minutes with crashes, stalls and the spike in them. */
const SHORT = {
  durationMs: 4 * MIN, burstSize: 0, crashEveryMs: 2 * MIN, crashAfterMs: 1 * MIN, stallEveryMs: 2 * MIN, spikeAt: 0.5, spikeMs: 1 * MIN,
};

/** A record's figures without the wall-clock time. */
const figures = (r: RunRecord) => ({ ...r, realMs: 0 });

describe('advisor bench: workload', () => {
  it('is the same for the same seed, and differs between seeds', () => {
    assert.deepEqual(generate(5, SHORT), generate(5, SHORT));
    assert.notDeepEqual(generate(5, SHORT).arrivals, generate(6, SHORT).arrivals);
  });

  it('submits a few jobs per second, in time order, with permanent fates among them', () => {
    const w = generate(3, { durationMs: 30 * MIN });
    const perSecond = w.arrivals.length / (30 * 60);
    assert.ok(perSecond > 2 && perSecond < 4, `${perSecond} jobs/s`);
    assert.ok(w.arrivals.every((a, i) => i === 0 || a.at >= w.arrivals[i - 1]!.at));
    assert.ok(w.arrivals.every((a, i) => a.fate.i === i));
    assert.ok(w.arrivals.some((a) => a.fate.permanent?.name === 'ValidationError'));
  });

  it('an attempt does what the fate, the attempt and the time say', () => {
    const w = generate(9, { durationMs: 3 * 3_600_000 });
    const payment = w.arrivals.find((a) => a.type === 'payment.capture' && !a.fate.permanent)!;
    const outage = w.outages.get('payment.capture')![0]!;
    // The same inputs, the same outcome.
    assert.deepEqual(attemptOutcome(w, payment.type, payment.fate, 2, outage.start - 1), attemptOutcome(w, payment.type, payment.fate, 2, outage.start - 1));
    // In the outage every attempt fails with the upstream's error; after it, it succeeds.
    const inside = attemptOutcome(w, payment.type, payment.fate, 1, outage.start + 1000);
    assert.equal(inside.cause, 'outage');
    assert.match(`${inside.error!.name}: ${inside.error!.message}`, /^UpstreamUnavailable: payments api 503 after \d+ ms$/);
    assert.equal(attemptOutcome(w, payment.type, payment.fate, 1, outage.end).error, undefined);
    // A permanent failure fails every attempt with the same message.
    const bad = w.arrivals.find((a) => a.type === 'payment.capture' && a.fate.permanent)!;
    const errors = [1, 2, 3].map((n) => attemptOutcome(w, bad.type, bad.fate, n, w.start + n).error);
    assert.ok(errors.every((e) => e?.message === bad.fate.permanent!.message && /^order 01HX[0-9A-Z]{22} not found$/.test(e.message)));
    // The spike raises the type's failure rate from 2% to 30%.
    const thumbs = w.arrivals.filter((a) => a.type === SPIKE_TYPE && !a.fate.permanent).slice(0, 2000);
    const rate = (at: number) => thumbs.filter((a) => attemptOutcome(w, a.type, a.fate, 1, at).error).length / thumbs.length;
    assert.ok(rate(w.spike!.start - 1) < 0.04, `before the spike: ${rate(w.spike!.start - 1)}`);
    assert.ok(Math.abs(rate(w.spike!.start) - 0.3) < 0.04, `in the spike: ${rate(w.spike!.start)}`);
  });
});

describe('advisor bench: simulation', () => {
  it('a short run is the same for the same seed, static and with the advisor', async () => {
    const w = generate(11, SHORT);
    const [a, b] = [await simulate(w, { mode: 'enforce' }), await simulate(w, { mode: 'enforce' })];
    assert.deepEqual(figures(a), figures(b));
    const off = await simulate(w, { mode: 'off' });
    assert.deepEqual(figures(off), figures(await simulate(w, { mode: 'off' })));
    // Every job ended, each once per arrival; the crash interrupted attempts that were taken back.
    assert.equal(off.unfinished, 0);
    assert.equal(off.jobs.length, w.arrivals.length);
    assert.ok(off.jobs.every((j) => j.state === 'done' || j.state === 'dead'));
    assert.ok(off.recoveries.length > 0, 'the crash interrupted attempts');
    assert.ok(off.recoveries.every((r) => r.expiredAt !== null && r.expiredAt - r.crashAt <= 30_000 + 1000), JSON.stringify(off.recoveries));
    assert.equal(off.anomalies.length + off.eta.length, 0, 'the advisor off answers nothing');
    assert.ok(a.eta.length > 0);
    const other = await simulate(generate(12, SHORT), { mode: 'off' });
    assert.notDeepEqual(figures(other).jobs, figures(off).jobs);
  });

  it("draws each job's backoff jitter from the seed, the job and the attempt, in both runs alike", async () => {
    const w = generate(11, SHORT);
    const rands = async (mode: 'off' | 'enforce', jitterSeed = 0) => {
      const seen = new Map<string, number>();
      await simulate(w, {
        mode, jitterSeed,
        onEvent: (e) => {
          const d = e.data as { attempt?: number; rand?: number };
          if (e.type === 'FAILED' || e.type === 'LEASE_EXPIRED') seen.set(`${e.jobId}#${d.attempt}`, d.rand!);
        },
      });
      return seen;
    };
    const off = await rands('off');
    const jitter = new PerJobJitter(mix(w.seed, 99));
    assert.ok(off.size > 20, `${off.size} draws`);
    for (const [key, rand] of off) {
      const [jobId, attempt] = key.split('#');
      assert.equal(rand, jitter.draw(jobId!, Number(attempt)), key);
    }
    // The advisor run draws the same number for every attempt both runs failed.
    const on = await rands('enforce');
    const shared = [...on.keys()].filter((k) => off.has(k));
    assert.ok(shared.length > 20);
    for (const k of shared) assert.equal(on.get(k), off.get(k), k);
    // Another jitter seed, other draws.
    const noise = await rands('off', 1);
    assert.ok([...noise].some(([k, r]) => off.has(k) && off.get(k) !== r));
  });

  it('the jitter refuses a draw no event was announced for, and an announced draw not made', () => {
    const jitter = new PerJobJitter(1);
    assert.throws(() => jitter.next(), /no announced event/);
    jitter.expect([{ jobId: 'j0000001', attempt: 2 }]);
    assert.throws(() => jitter.done(), /announced and not made/);
    assert.equal(jitter.next(), jitter.draw('j0000001', 2));
    jitter.done();
  });
});

// ------------------------------------------------------------------ measures on hand-made runs

const job = (state: JobResult['state'], attempts: number, finishedAt: number | null = 1000, type = 't'): JobResult =>
  ({ type, state, attempts, advisorStops: 0, finishedAt });

function run(over: Partial<RunRecord>): RunRecord {
  return {
    seed: 1, mode: 'off', simulatedMs: 12 * 3_600_000, realMs: 0, events: 0, jobs: [], attempts: 0, recoveries: [], healthyExpiries: [],
    leaseExpiries: 0, eta: [], etaNull: 0, anomalies: [],
    decisions: { 'no-retry': { applied: 0, advised: 0 }, 'retry-delay': { applied: 0, advised: 0 }, lease: { applied: 0, advised: 0 } },
    workers: { claimed: 0, skipped: 0, succeeded: 0, failed: 0, lateOutcomes: 0, outcomeRetries: 0, cancelsIgnored: 0, unknownSchema: 0, unhandled: 0, throttled: 0 },
    leases: new Map(), insights: null, unfinished: 0, writes: 0, ...over,
  };
}

describe('advisor bench: measures', () => {
  it('wasted attempts count the attempts of dead jobs only; lost successes are done → dead', () => {
    const off = run({ jobs: [job('dead', 5), job('done', 3), job('dead', 5), job('done', 1), job('dead', 8)] });
    const on = run({ jobs: [job('dead', 1), job('dead', 2), job('done', 4), job('done', 1), job('dead', 8)] });
    assert.equal(wastedAttempts(off), 18);
    assert.equal(wastedAttempts(on), 1 + 2 + 8);
    assert.deepEqual(lostSuccesses(off, on), [1]);
    assert.deepEqual(lostSuccesses(on, off), [2]);
  });

  it('crash recovery is crash → LEASE_EXPIRED of each interrupted attempt; false expiries are the others', () => {
    const r = run({
      attempts: 2000,
      recoveries: [
        { crashAt: 0, workerId: 'w0.1', i: 0, type: 'a', attempt: 1, expiredAt: 20_000, restartedAt: 21_000, leaseMs: 30_000 },
        { crashAt: 0, workerId: 'w0.1', i: 1, type: 'b', attempt: 2, expiredAt: 4_000, restartedAt: 9_000, leaseMs: 5_000 },
        { crashAt: 0, workerId: 'w0.1', i: 2, type: 'b', attempt: 1, expiredAt: null, restartedAt: null, leaseMs: 5_000 },
      ],
      healthyExpiries: [{ i: 7, type: 'a', attempt: 1, at: 5, workerId: 'w1.2' }],
    });
    const s = recoveryStats(r);
    assert.equal(s.n, 2);
    assert.equal(s.meanMs, 12_000);
    assert.equal(s.restartMeanMs, 15_000);
    assert.deepEqual(s.byType, new Map([['a', { n: 1, meanMs: 20_000, restarts: 1, restartMeanMs: 21_000 }], ['b', { n: 1, meanMs: 4_000, restarts: 1, restartMeanMs: 9_000 }]]));
    assert.deepEqual(falseExpiries(r), { n: 1, attempts: 2000, rate: 0.0005 });
  });

  it('an expiry is the crash\'s only if its worker crashed before it; any other is a false expiry', () => {
    const started = (workerId: string) => ({ workerId, leaseMs: 5000 });
    const { recoveries, healthyExpiries } = classifyExpiries({
      crashes: [{ at: 100_000, workerId: 'w0.1', attempts: [{ key: '1#1', type: 'a' }, { key: '4#2', type: 'a' }] }],
      startedBy: new Map([['1#1', started('w0.1')], ['2#1', started('w0.1')], ['3#1', started('w0.1')], ['4#2', started('w0.1')], ['5#1', started('w1.2')]]),
      startedAt: new Map([['1#2', 110_000]]),
      expired: new Map([
        ['1#1', 104_000], // running at the crash (handler records)
        ['2#1', 105_000], // its handler had returned, the outcome not written: the crash's too
        ['3#1', 60_000], // expired before its worker crashed (a stall): false
        ['4#2', 90_000], // still frozen in a stall at the crash, but expired before it: false
        ['5#1', 70_000], // a worker that never crashed: false
      ]),
      typeOf: (i) => (i === 2 ? 'b' : 'a'),
    });
    assert.deepEqual(recoveries.map((r) => [r.i, r.type, r.expiredAt! - r.crashAt, r.restartedAt]), [[1, 'a', 4000, 110_000], [2, 'b', 5000, null]]);
    assert.deepEqual(healthyExpiries.map((h) => h.i).sort(), [3, 4, 5]);
  });

  it('the best one time per type puts within ±20% the most times a window of ratio 1.5 holds', () => {
    assert.equal(bestConstantShare([100, 140, 160, 1000], 0.2), 0.5);
    // 120 is 20% off both: the window's ends count.
    assert.equal(bestConstantShare([150, 100], 0.2), 1);
    assert.equal(bestConstantShare([100, 151], 0.2), 0.5);
    assert.equal(bestConstantShare([], 0.2), 0);
  });

  it('the ETA error is relative to the time left from the prediction to the finish', () => {
    const r = run({
      jobs: [job('done', 1, 10_000), job('done', 1, 20_000), job('dead', 2, 5_000), job('done', 1, null)],
      eta: [
        { i: 0, type: 't', kind: 'submit', state: 'pending', at: 0, finish: 11_000 }, // 10%
        { i: 1, type: 't', kind: 'submit', state: 'pending', at: 10_000, finish: 15_000 }, // 50%
        { i: 2, type: 'u', kind: 'submit', state: 'pending', at: 4_000, finish: 5_200 }, // 20%
        { i: 3, type: 't', kind: 'submit', state: 'pending', at: 0, finish: 1 }, // never finished: not counted
        { i: 0, type: 't', kind: 'live', state: 'running', at: 9_000, finish: 9_000 }, // 100%
      ],
    });
    const s = etaStats(r, 'submit');
    assert.equal(s.n, 3);
    assert.ok(Math.abs(s.p50! - 0.2) < 1e-9);
    assert.ok(Math.abs(s.within20! - 2 / 3) < 1e-9);
    // One time per type after the fact: t's two jobs both took 10 s, u's one 1 s.
    assert.equal(s.hindsightWithin20, 1);
    assert.equal(s.firstTry.n, 2);
    assert.ok(Math.abs(s.firstTry.p50! - 0.3) < 1e-9);
    assert.deepEqual(s.retried.n, 1);
    assert.equal(etaStats(r, 'live').p50, 1);
  });

  it('anomalies: the spike is detected from its start; one outside every change is a false alarm', () => {
    const w = {
      start: 0,
      spike: { type: 'x', start: 60 * MIN, end: 80 * MIN, rate: 0.3 },
      changes: [
        { kind: 'outage' as const, type: 'p', start: 10 * MIN, end: 15 * MIN },
        { kind: 'spike' as const, type: 'x', start: 60 * MIN, end: 80 * MIN },
      ],
    };
    const a = (type: string, seenAt: number) => ({ type, queue: 'q', metric: 'failure-rate' as const, baseline: 0.02, observed: 0.3, at: seenAt, seenAt });
    const m = anomalyMeasures(w, run({
      anomalies: [a('x', 30 * MIN), a('p', 12 * MIN), a('p', 24 * MIN), a('p', 26 * MIN), a('x', 61.5 * MIN)],
    }));
    assert.equal(m.detectionMs, 1.5 * MIN);
    // x at 30 min (before its spike) and p at 26 min (beyond the 10 min grace after its outage) are false; p at 24 min is not.
    assert.equal(m.falseAlarms, 2);
    assert.equal(m.hours, 12);
  });

  it('a seed and the summary over seeds judge each goal as stated', () => {
    const w = generate(1, { durationMs: 10 * MIN, spikeAt: null, crashEveryMs: 0, stallEveryMs: 0 }) as Workload;
    const n = w.arrivals.length;
    const jobs = (f: (i: number) => JobResult) => Array.from({ length: n }, (_, i) => f(i));
    const off = run({ jobs: jobs((i) => (i < 10 ? job('dead', 5) : job('done', 1))), attempts: n + 40 });
    const on = run({ mode: 'enforce', jobs: jobs((i) => (i < 10 ? job('dead', 1) : job('done', 1))), attempts: n });
    const m = measureSeed(w, off, on);
    assert.deepEqual(m.wasted, { static: 50, advisor: 10, reduction: 0.8 });
    assert.equal(m.lostSuccesses, 0);
    const rows = summarize([m, { ...m, seed: 2, wasted: { static: 50, advisor: 30, reduction: 0.4 }, lostSuccesses: 1 }]);
    const row = (prefix: string) => rows.find((r) => r.goal.startsWith(prefix))!;
    assert.ok(Math.abs(row('Wasted').judged! - 0.6) < 1e-9);
    assert.equal(row('Wasted').met, true);
    assert.equal(row('Wasted').metEverySeed, false);
    assert.equal(row('Lost').met, false);
    assert.equal(row('Lost').advisorWorst, 1);
    assert.equal(row('False alarms').judged, 0);
  });
});
