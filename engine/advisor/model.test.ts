import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { betaCdf } from './beta.js';
import type { BackoffPolicy } from '../../machines/backoff.js';
import type { JobEvent, JobInput, JobState } from '../../machines/job.machine.js';
import type { StreamEventRecord } from '../ports.js';
import { attemptsToEnd } from '../limits.js';
import { AdvisorModel, DEFAULT_MODEL_OPTIONS, PAIR_IDLE_MS, timeoutNote } from './model.js';
import { errorSignature } from './signature.js';
import type { FailureQuery, ModelOptions } from './types.js';

/** A seeded pseudo-random generator (mulberry32), in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EXP: BackoffPolicy = { kind: 'exponential', baseMs: 1000, maxMs: 60_000, jitter: 'full' };

/** One attempt of a scripted job: how long it runs, and how it ends (success without `error` or `lease`). */
interface Attempt {
  ms: number;
  error?: { name?: string; message: string };
  lease?: true;
  /** The advisor stopped the retries (the FAILED is non-retryable, decided by the advisor). */
  advisorStop?: true;
  /** The advisor chose the retry's delay. */
  delayMs?: number;
  /** From this failure to the next start. */
  retryAfterMs?: number;
}

interface JobScript {
  id: string;
  type?: string;
  queue?: string;
  at: number;
  maxAttempts?: number;
  backoff?: BackoffPolicy;
  attempts: Attempt[];
  /**
   * The job's type is down as a whole while it fails (an outage): no healthy neighbour succeeds
   * meanwhile, even on a feed that adds them.
   */
  outage?: true;
}

/** Feeds scripted jobs to a model as committed events, in id order. */
class Feed {
  private id = 0;
  private readonly seqs = new Map<string, number>();
  private readonly states = new Map<string, JobState>();
  readonly events: StreamEventRecord[] = [];

  /**
   * `neighbours`: a healthy job of the same type and queue succeeds right after each failure of a
   * scripted job (unless it is an `outage`), as on a day when only some jobs of a type fail.
   */
  constructor(readonly model: AdvisorModel, private readonly opts: { neighbours?: boolean } = {}) {}

  emit(job: { id: string; type?: string; queue?: string }, to: JobState, at: number, data: JobEvent | JobInput, type?: 'SUBMITTED'): void {
    const seq = (this.seqs.get(job.id) ?? 0) + 1;
    this.seqs.set(job.id, seq);
    const e: StreamEventRecord = {
      id: ++this.id, jobId: job.id, seq, type: type ?? (data as JobEvent).type, from: this.states.get(job.id) ?? null, to, at, data,
      jobType: job.type ?? 'email', queue: job.queue ?? 'default',
    };
    this.states.set(job.id, to);
    this.events.push(e);
    this.model.observe(e);
  }

  /** Plays a job's script; returns the time of its last event. A script that ends early leaves the job live. */
  job(s: JobScript): number {
    const maxAttempts = s.maxAttempts ?? 3;
    let t = s.at;
    this.emit(s, 'pending', t, { at: t, maxAttempts, backoff: s.backoff ?? EXP }, 'SUBMITTED');
    for (let k = 0; k < s.attempts.length; k++) {
      const a = s.attempts[k];
      const attempt = k + 1;
      t += 10;
      this.emit(s, 'running', t, { type: 'STARTED', at: t, attempt, leaseUntil: t + 30_000, workerId: 'w1' });
      t += a.ms;
      if (!a.error && !a.lease) {
        this.emit(s, 'done', t, { type: 'SUCCEEDED', at: t, attempt });
        return t;
      }
      const last = attempt >= maxAttempts || a.advisorStop === true;
      const to: JobState = last ? 'dead' : 'retrying';
      if (this.opts.neighbours && !s.outage) this.neighbour(s, t);
      if (a.lease) {
        this.emit(s, to, t, { type: 'LEASE_EXPIRED', at: t, attempt, rand: 0.5 });
      } else {
        const error = { ...a.error!, retryable: !a.advisorStop, ...(a.advisorStop ? { decidedBy: 'advisor' as const } : {}) };
        this.emit(s, to, t, { type: 'FAILED', at: t, attempt, rand: 0.5, error, ...(a.delayMs !== undefined ? { delayMs: a.delayMs } : {}) });
      }
      if (last) return t;
      t += a.retryAfterMs ?? 1000;
      this.emit(s, 'pending', t, { type: 'RETRY_DUE', at: t });
    }
    return t;
  }

  /** A job of the same type and queue that runs 1 ms and succeeds at `at`. */
  private neighbour(s: { type?: string; queue?: string }, at: number): void {
    const job = { id: `neighbour-${++this.neighbours}`, type: s.type, queue: s.queue };
    this.emit(job, 'pending', at - 1, { at: at - 1, maxAttempts: 1, backoff: EXP }, 'SUBMITTED');
    this.emit(job, 'running', at - 1, { type: 'STARTED', at: at - 1, attempt: 1, leaseUntil: at + 30_000, workerId: 'w2' });
    this.emit(job, 'done', at, { type: 'SUCCEEDED', at, attempt: 1 });
  }

  private neighbours = 0;

  /** An event for a job already fed (e.g. CANCEL, REDRIVE). */
  event(job: { id: string; type?: string; queue?: string }, to: JobState, data: JobEvent): void {
    this.emit(job, to, data.at, data);
  }
}

const BAD = { name: 'ValidationError', message: 'payload field "email" is invalid' };
const FLAKY = { name: 'HttpError', message: 'upstream returned 503' };

function query(over: Partial<FailureQuery> = {}): FailureQuery {
  return { jobId: 'new-job', type: 'email', queue: 'default', error: BAD, attemptInRun: 1, maxAttempts: 3, backoff: EXP, at: 0, ...over };
}

/** Failed retries needed for a never-recovering signature to be hopeless under `o`. */
function retriesToHopeless(o: ModelOptions): number {
  for (let n = o.minEvidence; ; n++) if (betaCdf(o.hopelessBelow, 1, 1 + n) >= o.credibility) return n;
}

describe('AdvisorModel: hopeless retries', () => {
  it('judges a signature that never recovers hopeless once the evidence is credible, and not before', () => {
    const model = new AdvisorModel({ evidenceHalfLifeMs: Infinity });
    const feed = new Feed(model, { neighbours: true });
    const needed = retriesToHopeless(DEFAULT_MODEL_OPTIONS);
    assert.equal(needed, 28, 'the defaults need 0 recoveries in 28 retries');
    let t = 0;
    // Runs of 3 attempts: 2 failed retries each, 14 runs to the bar.
    const runs = needed / 2;
    for (let run = 1; run <= runs + 3; run++) {
      // Every run: the same cause, each message with its own job id and numbers.
      const err = { name: BAD.name, message: `payload field "email" is invalid (job ${run}, value ${run * 7})` };
      t = feed.job({ id: `j${run}`, at: t + 1000, attempts: [{ ms: 50, error: err }, { ms: 50, error: err }, { ms: 50, error: err }] });
      const advice = model.adviseFailure(query({ at: t, error: err }));
      assert.equal(advice.signature, 'ValidationError: payload field ? is invalid (job #, value #)');
      if (run < runs) assert.equal(advice.retryable, undefined, `hopeless after only ${run} runs`);
      else {
        assert.equal(advice.retryable, false, `not hopeless after ${run} runs`);
        assert.match(advice.reason!, new RegExp(`recovered in 0 of ${run * 2} retries`));
      }
    }
    const sig = model.insights('advise').types[0].signatures[0];
    assert.equal(sig.verdict, 'hopeless');
    assert.equal(sig.failures, (runs + 3) * 3);
    assert.equal(sig.hopeless, (runs + 3) * 2);
    assert.equal(sig.recovered, 0);
  });

  it('counts each retry: one that succeeds recovered, one that fails again hopeless, for the failure it retried', () => {
    const model = new AdvisorModel({ evidenceHalfLifeMs: Infinity });
    const feed = new Feed(model, { neighbours: true });
    // FLAKY, retried: fails again with FLAKY, retried: fails with BAD, retried: succeeds.
    feed.job({ id: 'a', at: 1000, maxAttempts: 4, attempts: [{ ms: 5, error: FLAKY }, { ms: 5, error: FLAKY }, { ms: 5, error: BAD }, { ms: 5 }] });
    const sigs = new Map(model.insights('advise').types[0].signatures.map((s) => [s.signature, s]));
    assert.deepEqual([sigs.get(errorSignature(FLAKY))!.recovered, sigs.get(errorSignature(FLAKY))!.hopeless], [0, 2]);
    assert.deepEqual([sigs.get(errorSignature(BAD))!.recovered, sigs.get(errorSignature(BAD))!.hopeless], [1, 0]);
    // The last failure of a dead run was not retried: it ends the retry before it, and counts nothing itself.
    feed.job({ id: 'b', at: 100_000, maxAttempts: 2, attempts: [{ ms: 5, error: BAD }, { ms: 5, error: FLAKY }] });
    const after = new Map(model.insights('advise').types[0].signatures.map((s) => [s.signature, s]));
    assert.deepEqual([after.get(errorSignature(BAD))!.recovered, after.get(errorSignature(BAD))!.hopeless], [1, 1]);
    assert.equal(after.get(errorSignature(FLAKY))!.hopeless, 2);
  });

  it('gives no verdict before minEvidence runs, however one-sided', () => {
    const model = new AdvisorModel({ minEvidence: 30, hopelessBelow: 0.5, credibility: 0.5, evidenceHalfLifeMs: 0 });
    const feed = new Feed(model, { neighbours: true });
    for (let run = 1; run <= 31; run++) {
      const t = feed.job({ id: `j${run}`, at: run * 10_000, maxAttempts: 2, attempts: [{ ms: 5, error: BAD }, { ms: 5, error: BAD }] });
      const verdict = model.insights('advise').types[0].signatures[0].verdict;
      assert.equal(verdict, run < 30 ? 'learning' : 'hopeless', `run ${run}`);
      assert.equal(model.adviseFailure(query({ at: t })).retryable, run < 30 ? undefined : false);
    }
  });

  it('calls a signature transient only once a retry after it recovered: enough failed retries short of the bar are still learning', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model, { neighbours: true });
    const verdicts = new Set<string>();
    for (let run = 1; run <= 28; run++) {
      feed.job({ id: `j${run}`, at: run * 10_000, maxAttempts: 2, attempts: [{ ms: 5, error: BAD }, { ms: 5, error: BAD }] });
      const sig = model.insights('advise').types[0].signatures[0];
      assert.equal(sig.recovered, 0);
      assert.equal(sig.verdict, run < 28 ? 'learning' : 'hopeless', `run ${run}: ${sig.hopeless} failed retries`);
      verdicts.add(sig.verdict);
    }
    assert.deepEqual([...verdicts], ['learning', 'hopeless']);
  });

  it('never judges hopeless a failure whose retries recover a few percent each, while its runs still end done', () => {
    // 5% of retries recover: the next retry rarely helps, but over seven retries a quarter of the runs end done.
    const model = new AdvisorModel();
    const feed = new Feed(model, { neighbours: true });
    const random = rng(5);
    let t = 0;
    let recoveredRuns = 0;
    for (let run = 1; run <= 300; run++) {
      const attempts: Array<{ ms: number; error?: typeof FLAKY }> = [{ ms: 20, error: FLAKY }];
      for (let retry = 0; retry < 7 && attempts[attempts.length - 1]!.error; retry++) attempts.push(random() < 0.05 ? { ms: 20 } : { ms: 20, error: FLAKY });
      if (!attempts[attempts.length - 1]!.error) recoveredRuns++;
      t = feed.job({ id: `j${run}`, at: t + 60_000, maxAttempts: 8, attempts });
      assert.equal(model.adviseFailure(query({ at: t, error: FLAKY })).retryable, undefined, `hopeless after run ${run}`);
    }
    assert.ok(recoveredRuns > 30, `${recoveredRuns} of 300 runs recovered`);
    const sig = model.insights('advise').types[0].signatures[0];
    assert.equal(sig.verdict, 'transient');
    assert.ok(sig.pRecover < 0.1, `pRecover ${sig.pRecover}: the retries alone would pass the bar`);
  });

  it('never judges a signature that recovers 30% of the time hopeless', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model, { neighbours: true });
    const random = rng(30);
    let t = 0;
    for (let run = 1; run <= 600; run++) {
      const recovers = random() < 0.3;
      t = feed.job({ id: `j${run}`, at: t + 2000, maxAttempts: 2, attempts: [{ ms: 20, error: FLAKY }, recovers ? { ms: 20 } : { ms: 20, error: FLAKY }] });
      assert.equal(model.adviseFailure(query({ at: t, error: FLAKY })).retryable, undefined, `hopeless after run ${run}`);
    }
    const sig = model.insights('advise').types[0].signatures[0];
    assert.equal(sig.verdict, 'transient');
    assert.ok(sig.pRecover > 0.2 && sig.pRecover < 0.4, `pRecover ${sig.pRecover}`);
  });

  it('takes no evidence from failures the advisor decided, nor from runs it ended', () => {
    const model = new AdvisorModel({ evidenceHalfLifeMs: Infinity });
    const feed = new Feed(model, { neighbours: true });
    let t = 0;
    // Stopped by the advisor at the first failure: never evidence.
    for (let run = 1; run <= 100; run++) t = feed.job({ id: `a${run}`, at: t + 1000, attempts: [{ ms: 5, error: BAD, advisorStop: true }] });
    // A retried failure, then the advisor stops the run on another signature: the run carries no evidence.
    for (let run = 1; run <= 100; run++) {
      t = feed.job({ id: `b${run}`, at: t + 1000, attempts: [{ ms: 5, error: FLAKY }, { ms: 5, error: BAD, advisorStop: true }] });
    }
    const sigs = new Map(model.insights('advise').types[0].signatures.map((s) => [s.signature, s]));
    const bad = sigs.get(errorSignature(BAD))!;
    const flaky = sigs.get(errorSignature(FLAKY))!;
    assert.deepEqual([bad.failures, bad.recovered, bad.hopeless, bad.verdict], [200, 0, 0, 'learning']);
    assert.deepEqual([flaky.failures, flaky.recovered, flaky.hopeless, flaky.verdict], [100, 0, 0, 'learning']);
    assert.equal(model.adviseFailure(query({ at: t })).retryable, undefined);
    assert.equal(model.adviseFailure(query({ at: t, error: FLAKY })).retryable, undefined);
  });

  it('takes no evidence from cancelled runs nor from failures that were not retried', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model, { neighbours: true });
    let t = 0;
    for (let run = 1; run <= 100; run++) {
      t = feed.job({ id: `n${run}`, at: t + 1000, maxAttempts: 1, attempts: [{ ms: 5, error: BAD }] });
      const id = `c${run}`;
      t = feed.job({ id, at: t + 1000, attempts: [{ ms: 5, error: BAD }] });
      feed.event({ id }, 'cancelled', { type: 'CANCEL', at: t + 1 });
    }
    const sig = model.insights('advise').types[0].signatures[0];
    assert.deepEqual([sig.failures, sig.recovered, sig.hopeless, sig.verdict], [200, 0, 0, 'learning']);
  });

  it('takes retries that failed in an outage of their type (no other job of it succeeded meanwhile) as no evidence', () => {
    const model = new AdvisorModel({ evidenceHalfLifeMs: Infinity });
    const feed = new Feed(model, { neighbours: true });
    const down = { name: 'UpstreamUnavailable', message: 'payments api 503 after 1234 ms' };
    for (let run = 1; run <= 80; run++) feed.job({ id: `o${run}`, at: run * 100_000, outage: true, attempts: [{ ms: 5, error: down }, { ms: 5, error: down }, { ms: 5, error: down }] });
    let sig = model.insights('advise').types[0].signatures[0];
    assert.deepEqual([sig.failures, sig.hopeless, sig.verdict], [240, 0, 'learning'], 'the whole type was down: a retry after the outage may well succeed');
    // The same failures while the type's other jobs succeed are the job's own: evidence.
    for (let run = 1; run <= 40; run++) feed.job({ id: `h${run}`, at: 10_000_000 + run * 100_000, attempts: [{ ms: 5, error: down }, { ms: 5, error: down }, { ms: 5, error: down }] });
    sig = model.insights('advise').types[0].signatures[0];
    assert.deepEqual([sig.hopeless, sig.verdict], [80, 'hopeless'], 'two failed retries a run');
  });

  it('counts a lease expiry under its fixed signature', () => {
    const model = new AdvisorModel({ evidenceHalfLifeMs: Infinity });
    const feed = new Feed(model, { neighbours: true });
    for (let run = 1; run <= 60; run++) feed.job({ id: `j${run}`, at: run * 100_000, maxAttempts: 2, attempts: [{ ms: 30_000, lease: true }, { ms: 30_000, lease: true }] });
    const sig = model.insights('advise').types[0].signatures[0];
    assert.equal(sig.signature, 'LeaseExpired: lease expired');
    assert.equal(sig.verdict, 'hopeless');
    const type = model.insights('advise').types[0];
    assert.equal(type.runMs!.count, 120, 'the run times are the 120 neighbours\' only: a lease expiry is not one');
    assert.deepEqual([type.attempts, type.failures], [240, 120], 'but it is an attempt that ended, and failed');
  });

  it('forgets evidence over time, so a hopeless verdict is tested again', () => {
    const model = new AdvisorModel(); // half-life 6 h, evidence capped at 100 runs
    const feed = new Feed(model, { neighbours: true });
    let t = 0;
    for (let run = 1; run <= 150; run++) t = feed.job({ id: `j${run}`, at: t + 1000, maxAttempts: 2, attempts: [{ ms: 5, error: BAD }, { ms: 5, error: BAD }] });
    assert.equal(model.insights('advise').types[0].signatures[0].hopeless, 100, 'capped');
    assert.equal(model.adviseFailure(query({ at: t + 3_600_000 })).retryable, false, 'still hopeless an hour later (89 runs)');
    assert.equal(model.adviseFailure(query({ at: t + 6 * 3_600_000 })).retryable, false, 'still hopeless after a half-life (50 runs)');
    assert.equal(model.adviseFailure(query({ at: t + 12 * 3_600_000 })).retryable, undefined, 'tested again after two (25 runs, below the bar of 28)');
  });

  it('never judges hopeless a signature with a retry that recovered within one half-life, however many retries failed since', () => {
    const model = new AdvisorModel(); // half-life 6 h, evidence capped at 100 retries
    const feed = new Feed(model, { neighbours: true });
    let t = 0;
    for (let run = 1; run <= 150; run++) t = feed.job({ id: `a${run}`, at: t + 1000, maxAttempts: 2, attempts: [{ ms: 5, error: BAD }, { ms: 5, error: BAD }] });
    assert.equal(model.adviseFailure(query({ at: t })).retryable, false, 'hopeless: no retry recovered');
    t = feed.job({ id: 'recovers', at: t + 1000, maxAttempts: 2, attempts: [{ ms: 5, error: BAD }, { ms: 5 }] });
    const recoveredAt = t;
    // A retry a second fails again, well past the cap: the one that recovered is scaled out of the counts, not out of mind.
    for (let run = 1; run <= 200; run++) {
      t = feed.job({ id: `b${run}`, at: t + 1000, maxAttempts: 2, attempts: [{ ms: 5, error: BAD }, { ms: 5, error: BAD }] });
      assert.equal(model.adviseFailure(query({ at: t })).retryable, undefined, `hopeless ${run} failed retries after one recovered`);
      assert.notEqual(model.insights('advise').types[0].signatures[0].verdict, 'hopeless', `after ${run} failed retries`);
    }
    const halfLife = DEFAULT_MODEL_OPTIONS.evidenceHalfLifeMs;
    assert.equal(model.adviseFailure(query({ at: recoveredAt + halfLife })).retryable, undefined, 'still within one half-life');
    assert.equal(model.adviseFailure(query({ at: recoveredAt + halfLife + 60_000 })).retryable, false, 'no retry recovered for over a half-life: hopeless again');
  });

  it('a 404 learned hopeless does not stop the 503 of the same client, which recovers', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model, { neighbours: true });
    const status = (code: number) => ({ name: 'AxiosError', message: `Request failed with status code ${code}` });
    let t = 0;
    for (let run = 1; run <= 20; run++) t = feed.job({ id: `gone${run}`, at: t + 1000, attempts: [{ ms: 5, error: status(404) }, { ms: 5, error: status(404) }, { ms: 5, error: status(404) }] });
    assert.equal(model.adviseFailure(query({ at: t, error: status(404) })).retryable, false, 'the 404 never recovers');
    assert.equal(model.adviseFailure(query({ at: t, error: status(503) })).retryable, undefined, 'a 503 was never seen: the static policy');
  });

  it('does not advise when no retry would follow anyway', () => {
    const model = new AdvisorModel({ evidenceHalfLifeMs: Infinity });
    const feed = new Feed(model, { neighbours: true });
    for (let run = 1; run <= 60; run++) feed.job({ id: `j${run}`, at: run * 1000, maxAttempts: 2, attempts: [{ ms: 5, error: BAD }, { ms: 5, error: BAD }] });
    assert.equal(model.adviseFailure(query({ at: 100_000, attemptInRun: 1, maxAttempts: 2 })).retryable, false);
    assert.deepEqual(model.adviseFailure(query({ at: 100_000, attemptInRun: 2, maxAttempts: 2 })), { signature: errorSignature(BAD) });
  });
});

describe('AdvisorModel: retry delay from recovery times', () => {
  /** 40 runs that fail once with FLAKY and recover 10.01 s, 10.51 s, ... 29.51 s after the failure: p75 = 24,635 ms. */
  function recovering(opts?: Partial<ModelOptions>, advisorDelay = false) {
    const model = new AdvisorModel({ evidenceHalfLifeMs: Infinity, ...opts });
    const feed = new Feed(model);
    let t = 0;
    for (let i = 0; i < 40; i++) {
      const retryAfterMs = 10_000 + 500 * i; // the next start is 10 ms after RETRY_DUE
      t = feed.job({ id: `r${i}`, at: t + 1000, attempts: [{ ms: 5, error: FLAKY, retryAfterMs, ...(advisorDelay ? { delayMs: retryAfterMs } : {}) }, { ms: 5 }] });
    }
    return { model, feed, t };
  }
  const P75 = 24_635;

  it('lands the retry at the p75 recovery time', () => {
    const { model, t } = recovering();
    const advice = model.adviseFailure(query({ at: t, error: FLAKY }));
    assert.equal(advice.delayMs, P75);
    assert.equal(advice.retryable, undefined);
    assert.match(advice.reason!, /75% of 40 runs/);
    const sig = model.insights('advise').types[0].signatures[0];
    assert.deepEqual([sig.verdict, sig.recovered, sig.recoveryMs?.count], ['transient', 40, 40]);
  });

  it('bounds the delay by the policy: at most its largest delay, never below its ceiling for this retry', () => {
    const { model, t } = recovering();
    const q = (backoff: BackoffPolicy, over: Partial<FailureQuery> = {}) => model.adviseFailure(query({ at: t, error: FLAKY, backoff, ...over })).delayMs;
    assert.equal(q({ kind: 'exponential', baseMs: 1000, maxMs: 10_000, jitter: 'full' }), 10_000, 'capped at maxMs');
    assert.equal(q({ kind: 'exponential', baseMs: 30_000, maxMs: 60_000, jitter: 'equal' }), undefined, 'the static retry is later anyway');
    assert.equal(q({ kind: 'exponential', baseMs: 1000, maxMs: 60_000, jitter: 'none' }, { attemptInRun: 6, maxAttempts: 10 }), undefined, 'ceiling 32 s');
    assert.equal(q({ kind: 'fixed', delayMs: 5000 }), undefined, 'a fixed policy is left alone');
    for (const maxMs of [0, 1, 999, 5000, 24_634, 24_635, 100_000]) {
      const backoff: BackoffPolicy = { kind: 'exponential', baseMs: 1000, maxMs, jitter: 'full' };
      for (let attemptInRun = 1; attemptInRun <= 8; attemptInRun++) {
        const d = q(backoff, { attemptInRun, maxAttempts: 9 });
        if (d === undefined) continue;
        assert.ok(d > 0 && d <= maxMs, `delay ${d} outside (0, ${maxMs}]`);
        assert.ok(d >= Math.min(maxMs, 1000 * 2 ** (attemptInRun - 1)), `delay ${d} below the static ceiling of retry ${attemptInRun}`);
      }
    }
  });

  it("counts from the run's first failure when the job is tracked", () => {
    const { model, feed, t } = recovering();
    // Left pending after its first failure (the script ends with its RETRY_DUE, 15 s after the failure).
    const first = feed.job({ id: 'live', at: t + 1000, attempts: [{ ms: 5, error: FLAKY, retryAfterMs: 15_000 }] }) - 15_000;
    // Its second attempt fails 20 s after the first failure: 4,635 ms to go, above the 2 s ceiling.
    assert.equal(model.adviseFailure(query({ jobId: 'live', at: first + 20_000, error: FLAKY, attemptInRun: 2 })).delayMs, P75 - 20_000);
    // 23 s after: 1,635 ms to go, under the static ceiling (2 s): the static policy stands.
    assert.equal(model.adviseFailure(query({ jobId: 'live', at: first + 23_000, error: FLAKY, attemptInRun: 2 })).delayMs, undefined);
  });

  it('keeps timing retries through a long run of failed ones, while a retry recovered within one half-life', () => {
    // The cap on counted retries scales the 40 recoveries down with every failed retry, below one
    // counted; the recovery is not forgotten for that (it keeps the signature from being hopeless),
    // nor are its recovery times: the signature is still transient, and its retries still timed.
    const { model, t: recoveredAt } = recovering({ evidenceHalfLifeMs: DEFAULT_MODEL_OPTIONS.evidenceHalfLifeMs });
    const feed = new Feed(model, { neighbours: true });
    let t = recoveredAt;
    for (let run = 1; run <= 600; run++) t = feed.job({ id: `down${run}`, at: t + 1000, maxAttempts: 2, attempts: [{ ms: 5, error: FLAKY }, { ms: 5, error: FLAKY }] });
    assert.ok(t - recoveredAt < DEFAULT_MODEL_OPTIONS.evidenceHalfLifeMs);
    const sig = model.insights('advise').types[0].signatures[0];
    assert.deepEqual([sig.recovered, sig.verdict], [0, 'transient']);
    assert.equal(model.adviseFailure(query({ at: t, error: FLAKY })).delayMs, P75);
  });

  it('needs minRecoveries recovered runs and a transient verdict', () => {
    assert.equal(recovering({ minRecoveries: 41 }).model.adviseFailure(query({ error: FLAKY })).delayMs, undefined);
    assert.equal(recovering({ minEvidence: 41 }).model.adviseFailure(query({ error: FLAKY })).delayMs, undefined);
  });

  it('does not learn recovery times from runs whose delay it chose', () => {
    const { model, t } = recovering(undefined, true);
    const sig = model.insights('advise').types[0].signatures[0];
    assert.equal(sig.verdict, 'transient');
    assert.equal(sig.recoveryMs, null);
    assert.equal(model.adviseFailure(query({ at: t, error: FLAKY })).delayMs, undefined);
  });

  it('says so in the insights', () => {
    const changes = recovering().model.insights('advise').types[0].changes;
    assert.ok(changes.includes('retry `HttpError: upstream returned #` after ~25 s (p75 recovery over 40 runs) instead of the exponential curve'), changes.join('\n'));
    assert.deepEqual(recovering().model.insights('off').types[0].changes, []);
  });
});

describe('AdvisorModel: leases', () => {
  function timed(ms: number, n: number, opts?: Partial<ModelOptions>) {
    const model = new AdvisorModel(opts);
    const feed = new Feed(model);
    for (let i = 0; i < n; i++) feed.job({ id: `j${i}`, at: i * 100_000, attempts: [{ ms }] });
    return model;
  }

  it('suggests none before minRunSamples attempts', () => {
    assert.equal(timed(100, 49).leaseFor('email', 'default'), null);
    assert.notEqual(timed(100, 50).leaseFor('email', 'default'), null);
    assert.equal(timed(100, 500).leaseFor('email', 'other'), null);
  });

  it('is leaseMultiple × p99, clamped between minLeaseMs and a third of the static lease', () => {
    assert.deepEqual(timed(100, 300).leaseFor('email', 'default'), { leaseMs: 5000, heartbeatMs: 1666, p99Ms: 100, samples: 300 });
    assert.deepEqual(timed(1500, 300).leaseFor('email', 'default'), { leaseMs: 6000, heartbeatMs: 2000, p99Ms: 1500, samples: 300 });
    // Runs longer than the lease keep it by heartbeating: a third of the static lease at most, so 3× sooner after a crash.
    assert.deepEqual(timed(10_000, 300).leaseFor('email', 'default'), { leaseMs: 10_000, heartbeatMs: 3333, p99Ms: 10_000, samples: 300 });
    assert.deepEqual(
      timed(333, 300, { minLeaseMs: 100, staticLeaseMs: 20_000, staticHeartbeatMs: 5000 }).leaseFor('email', 'default'),
      { leaseMs: 1332, heartbeatMs: 444, p99Ms: 333, samples: 300 },
    );
    assert.deepEqual(
      timed(3000, 300, { minLeaseMs: 100, staticLeaseMs: 20_000, staticHeartbeatMs: 5000 }).leaseFor('email', 'default'),
      { leaseMs: 6667, heartbeatMs: 2222, p99Ms: 3000, samples: 300 },
    );
    // A third of a short static lease would fall under minLeaseMs: minLeaseMs wins, never above the static lease.
    assert.equal(timed(100, 300, { minLeaseMs: 5000, staticLeaseMs: 9000 }).leaseFor('email', 'default')?.leaseMs, 5000);
    assert.equal(timed(100, 300, { minLeaseMs: 5000, staticLeaseMs: 4000 }).leaseFor('email', 'default')?.leaseMs, 4000);
  });

  it('follows the p99, not the mean', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model);
    for (let i = 0; i < 1000; i++) feed.job({ id: `j${i}`, at: i * 100_000, attempts: [{ ms: i % 50 === 0 ? 4000 : 100 }] });
    const lease = model.leaseFor('email', 'default')!;
    assert.ok(lease.p99Ms > 1000, `p99 ${lease.p99Ms}`);
    assert.equal(lease.leaseMs, Math.ceil(Math.min(10_000, 4 * lease.p99Ms)));
  });

  it('weighs recent run times most', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model);
    const random = rng(5);
    // 20,000 attempts of ~100 ms, then 12,000 of ~2 s: the older ones are the majority, but weigh less.
    for (let i = 0; i < 32_000; i++) feed.job({ id: `j${i}`, at: i * 10_000, attempts: [{ ms: (i < 20_000 ? 90 : 1900) + Math.round(20 * random()) }] });
    const runMs = model.insights('advise').types[0].runMs!;
    assert.ok(runMs.p50 > 1800, `p50 ${runMs.p50}`);
    assert.ok(runMs.count < 32_000, `weight ${runMs.count}`);
    assert.equal(model.leaseFor('email', 'default')!.leaseMs, Math.ceil(4 * runMs.p99));
  });

  it('times failed attempts too, not lease expiries', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model);
    feed.job({ id: 'a', at: 0, attempts: [{ ms: 70, error: FLAKY }, { ms: 30_000, lease: true }, { ms: 90 }] });
    const type = model.insights('advise').types[0];
    assert.equal(type.attempts, 3, 'every attempt that ended');
    assert.equal(type.failures, 2);
    assert.equal(type.runMs!.count, 2);
  });

  it('counts the failures among every ended attempt, timed or not, so they are a share of the attempts', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model);
    // Two lease expiries, then a success: one timed attempt, three ended, two failed.
    for (let i = 0; i < 10; i++) feed.job({ id: `j${i}`, at: i * 100_000, attempts: [{ ms: 30_000, lease: true }, { ms: 30_000, lease: true }, { ms: 100 }] });
    // Picked up mid-run (its STARTED came before the history read): it ends, failed, untimed.
    feed.emit({ id: 'mid' }, 'retrying', 2_000_000, { type: 'FAILED', at: 2_000_000, attempt: 1, rand: 0.5, error: { ...FLAKY, retryable: true } });
    const type = model.insights('advise').types[0];
    assert.deepEqual([type.attempts, type.failures, type.runMs!.count], [31, 21, 10]);
    assert.ok(type.failures <= type.attempts);
  });

  it('nor attempts a worker cut short at shutdown, which share one signature whichever worker it was', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model);
    const shutdown = (worker: string) => ({ name: 'WorkerShutdown', message: `the worker ${worker} shut down before the handler finished (its 10000 ms shutdown grace ran out)` });
    feed.job({ id: 'a', at: 0, attempts: [{ ms: 70, error: FLAKY }, { ms: 10_000, error: shutdown('host-a') }, { ms: 90 }] });
    feed.job({ id: 'b', at: 100_000, attempts: [{ ms: 10_000, error: shutdown('host-b') }, { ms: 80 }] });
    const type = model.insights('advise').types[0];
    assert.deepEqual([type.attempts, type.failures], [5, 3]);
    assert.equal(type.runMs!.count, 3, 'the failed and the succeeded attempts, not the two cut short');
    assert.ok(type.runMs!.p99 < 1000, `p99 ${type.runMs!.p99}`);
    assert.deepEqual(type.signatures.map((s) => s.signature).sort(), ['HttpError: upstream returned #', 'WorkerShutdown: the worker shut down']);
  });

  it('a retry cut short at shutdown is no evidence: the retry after it tells whether the first failure recovers', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model, { neighbours: true });
    const shutdown = { name: 'WorkerShutdown', message: 'the worker w1 shut down before the handler finished (its 10000 ms shutdown grace ran out)' };
    feed.job({ id: 'a', at: 0, maxAttempts: 5, attempts: [{ ms: 50, error: FLAKY }, { ms: 10_000, error: shutdown }, { ms: 60 }] });
    const flaky = model.insights('advise').types[0].signatures.find((s) => s.signature === 'HttpError: upstream returned #')!;
    assert.deepEqual([flaky.recovered, flaky.hopeless], [1, 0], 'the deploy did not make the 503 look hopeless; its retry that ran recovered');
  });

  it('says so in the insights', () => {
    const changes = timed(600, 412, { minLeaseMs: 2000 }).insights('enforce').types[0].changes;
    assert.deepEqual(changes, ['lease 2,400 ms instead of 30,000 ms, heartbeat every 800 ms (p99 run time 600 ms over 412 attempts)']);
  });
});

describe('AdvisorModel: ETA', () => {
  const HOUR_MS = 3_600_000;
  /** Jobs of 100 ms starting twice a second for 10 minutes on queue q. */
  function busy() {
    const model = new AdvisorModel();
    const feed = new Feed(model);
    let t = 0;
    for (let i = 0; i < 1200; i++) t = feed.job({ id: `j${i}`, queue: 'q', at: i * 500, attempts: [{ ms: 100 }] });
    return { model, now: t };
  }
  const base = { type: 'email', queue: 'q', startedAt: null, runAt: 0, ahead: 0 };

  it('predicts a running job to finish a median run time after its start, or, past it, the median of the longer runs', () => {
    const { model, now } = busy();
    const eta = model.eta({ ...base, state: 'running', startedAt: now - 30, now })!;
    assert.deepEqual([eta.start, eta.finish, eta.basis.medianRunMs, eta.basis.ahead], [now - 30, now + 70, 100, 0]);
    // Running longer than any run seen: a little longer than it has run so far, never before now.
    assert.equal(model.eta({ ...base, state: 'running', startedAt: now - 5000, now })!.finish, now + 500);
  });

  it('past the median, a running job is predicted at the median of the runs that lasted longer', () => {
    const model = new AdvisorModel();
    const feed = new Feed(model);
    // Run times spread evenly over 0-2,000 ms: the median is 1,000; of the runs longer than 1,500 ms, 1,750.
    for (let i = 0; i < 2000; i++) feed.job({ id: `j${i}`, at: i * 10_000, attempts: [{ ms: (i * 7) % 2000 }] });
    const now = 30_000_000;
    const eta = model.eta({ type: 'email', queue: 'default', state: 'running', startedAt: now - 1500, runAt: 0, ahead: 0, now })!;
    const ranFor = eta.finish - (now - 1500);
    assert.ok(ranFor > 1700 && ranFor < 1800, `about 1,750 ms in all, got ${ranFor}`);
  });

  it('predicts a waiting job to start after the jobs ahead of it, at the queue start rate', () => {
    const { model, now } = busy();
    const eta = model.eta({ ...base, state: 'pending', ahead: 10, runAt: now - 1000, now })!;
    const rate = eta.basis.startsPerSecond!;
    assert.ok(Math.abs(rate - 2) < 0.05, `rate ${rate}`);
    assert.ok(Math.abs(eta.start - (now + 5000)) < 150, `start in ${eta.start - now} ms`);
    assert.equal(eta.finish, eta.start + 100);
    // Due later: from its runAt, and the queue's usual 10 ms from due to start.
    const later = model.eta({ ...base, state: 'retrying', ahead: 0, runAt: now + 60_000, now })!;
    assert.deepEqual([later.start, later.finish], [now + 60_010, now + 60_110]);
  });

  it('a burst on a quiet queue: jobs ahead start as the running ones free their slots, not at the quiet minute\'s rate', () => {
    // A job of 2 s every 5 minutes for a day: the type's run time is known, the queue's start rate is low.
    const model = new AdvisorModel();
    const feed = new Feed(model);
    let t = 0;
    for (let i = 0; i < 288; i++) t = feed.job({ id: `quiet${i}`, type: 'render', queue: 'r', at: i * 300_000, attempts: [{ ms: 2000 }] });
    // Then 60 at once on 10 slots: 10 start, 50 wait. Slots free every 2 s: 5 starts a second.
    const burstAt = t + 300_000;
    for (let i = 0; i < 60; i++) feed.emit({ id: `b${i}`, type: 'render', queue: 'r' }, 'pending', burstAt, { at: burstAt, maxAttempts: 3, backoff: EXP }, 'SUBMITTED');
    for (let i = 0; i < 10; i++) {
      feed.emit({ id: `b${i}`, type: 'render', queue: 'r' }, 'running', burstAt + 20, { type: 'STARTED', at: burstAt + 20, attempt: 1, leaseUntil: burstAt + 30_020, workerId: 'w1' });
    }
    const now = burstAt + 100;
    const last = model.eta({ type: 'render', queue: 'r', state: 'pending', startedAt: null, runAt: burstAt, ahead: 49, now })!;
    const rate = last.basis.startsPerSecond!;
    assert.ok(Math.abs(rate - 5) < 0.1, `5 starts a second from 10 slots of 2 s, got ${rate}`);
    assert.ok(Math.abs(last.start - (now + 9800)) < 200, `the 50th waiting job starts in about 10 s, got ${last.start - now} ms`);
    // As the attempts end, their slots no longer count: an idle queue is back to its recent rate.
    for (let i = 0; i < 10; i++) feed.emit({ id: `b${i}`, type: 'render', queue: 'r' }, 'done', burstAt + 2020, { type: 'SUCCEEDED', at: burstAt + 2020, attempt: 1 });
    const after = model.eta({ type: 'render', queue: 'r', state: 'pending', startedAt: null, runAt: burstAt, ahead: 49, now: burstAt + 2100 })!;
    assert.ok(after.basis.startsPerSecond! < 0.5, `no slot held: the recent rate, got ${after.basis.startsPerSecond}`);
  });

  it('a running attempt\'s slot is freed from the queue rate it was counted in, not from one made again for the queue meanwhile', () => {
    // Two places for queues: a queue idle for an hour gives its place to a new one and takes another's back.
    const model = new AdvisorModel({ maxKeys: 2 });
    const feed = new Feed(model);
    let t = 0;
    for (let i = 0; i < 10; i++) t = feed.job({ id: `learn${i}`, type: 'render', queue: 'r', at: t + 10_000, attempts: [{ ms: 2000 }] });
    const T0 = t + 10_000;
    const start = (id: string, type: string, queue: string, at: number) => {
      feed.emit({ id, type, queue }, 'pending', at, { at, maxAttempts: 1, backoff: EXP }, 'SUBMITTED');
      feed.emit({ id, type, queue }, 'running', at, { type: 'STARTED', at, attempt: 1, leaseUntil: at + 30_000, workerId: 'w1' });
    };
    start('long', 'render', 'r', T0); // runs over an hour: its slot counts in r's rate
    start('q2-job', 'other', 'q2', T0 + 1);
    const later = T0 + PAIR_IDLE_MS + 1;
    feed.emit({ id: 'next', type: 'render', queue: 'r' }, 'pending', later, { at: later, maxAttempts: 1, backoff: EXP }, 'SUBMITTED');
    start('q3-job', 'other', 'q3', later + 1); // r, idle for an hour, gives its place to q3
    feed.emit({ id: 'next', type: 'render', queue: 'r' }, 'running', later + 2, { type: 'STARTED', at: later + 2, attempt: 1, leaseUntil: later + 30_002, workerId: 'w1' }); // r again, in q2's place
    feed.emit({ id: 'long', type: 'render', queue: 'r' }, 'done', later + 3, { type: 'SUCCEEDED', at: later + 3, attempt: 1 });
    // 'next' still runs: its slot (one start per 2 s) is r's rate, whatever 'long' freed.
    const eta = model.eta({ type: 'render', queue: 'r', state: 'pending', startedAt: null, runAt: later, ahead: 5, now: later + 4 })!;
    assert.ok(Math.abs(eta.basis.startsPerSecond! - 0.5) < 0.01, `one slot of 2 s: 0.5 starts a second, got ${eta.basis.startsPerSecond}`);
  });

  it('a count of the jobs ahead that stopped at its bound makes the ETA a lower bound, from the jobs counted', () => {
    const { model, now } = busy();
    const counted = model.eta({ ...base, state: 'pending', ahead: 10, runAt: now - 1000, now })!;
    const atLeast = model.eta({ ...base, state: 'pending', ahead: 10, aheadAtLeast: true, runAt: now - 1000, now })!;
    assert.equal(counted.lowerBound, false);
    assert.equal(atLeast.lowerBound, true);
    assert.deepEqual([atLeast.start, atLeast.finish, atLeast.basis.ahead], [counted.start, counted.finish, 10]);
    assert.equal(model.eta({ ...base, state: 'running', startedAt: now - 30, now })!.lowerBound, false);
  });

  it('a job due after the jobs ahead of it can have started starts at its due time, not that long after it', () => {
    const { model, now } = busy(); // 2 starts a second: 10 jobs ahead start within 5 s
    const later = model.eta({ ...base, state: 'pending', ahead: 10, runAt: now + 60_000, now })!;
    assert.deepEqual([later.start, later.finish], [now + 60_010, now + 60_110], 'its due time and the queue\'s usual 10 ms');
    const soon = model.eta({ ...base, state: 'pending', ahead: 10, runAt: now + 1_000, now })!;
    assert.ok(Math.abs(soon.start - (now + 5000)) < 150, `due before the jobs ahead have started: after them, in ${soon.start - now} ms`);
  });

  it('a job with nothing ahead starts the queue\'s median wait after it was due, or now if it waited longer', () => {
    const { model, now } = busy(); // every job started 10 ms after its submit
    const fresh = model.eta({ ...base, state: 'pending', ahead: 0, runAt: now, now })!;
    assert.deepEqual([fresh.start, fresh.finish, fresh.basis.startLatencyMs], [now + 10, now + 110, 10]);
    assert.equal(model.eta({ ...base, state: 'pending', ahead: 0, runAt: now - 1000, now })!.start, now);
    // A queue whose jobs start 400 ms after their submit: a short job's finish is mostly that wait.
    const slow = new AdvisorModel();
    const feed = new Feed(slow);
    for (let i = 0; i < 30; i++) {
      const at = i * 1000;
      feed.emit({ id: `s${i}` }, 'pending', at, { at, maxAttempts: 1, backoff: EXP }, 'SUBMITTED');
      feed.emit({ id: `s${i}` }, 'running', at + 400, { type: 'STARTED', at: at + 400, attempt: 1, leaseUntil: at + 30_400, workerId: 'w1' });
      feed.emit({ id: `s${i}` }, 'done', at + 450, { type: 'SUCCEEDED', at: at + 450, attempt: 1 });
    }
    const eta = slow.eta({ ...base, queue: 'default', state: 'pending', ahead: 0, runAt: 40_000, now: 40_000 })!;
    assert.deepEqual([eta.start, eta.finish], [40_400, 40_450]);
  });

  it('the queue\'s wait from due to start is that of jobs with none started ahead of them: a burst\'s wait behind its own jobs is not it', () => {
    // A queue whose jobs start 50 ms after their submit, one at a time.
    const model = new AdvisorModel();
    const feed = new Feed(model);
    const job = (id: string) => ({ id, type: 'render', queue: 'r' });
    let t = 0;
    for (let i = 0; i < 20; i++) {
      t = i * 10_000;
      feed.emit(job(`lone${i}`), 'pending', t, { at: t, maxAttempts: 1, backoff: EXP }, 'SUBMITTED');
      feed.emit(job(`lone${i}`), 'running', t + 50, { type: 'STARTED', at: t + 50, attempt: 1, leaseUntil: t + 30_050, workerId: 'w1' });
      feed.emit(job(`lone${i}`), 'done', t + 1050, { type: 'SUCCEEDED', at: t + 1050, attempt: 1 });
    }
    // Then 60 at once on 10 slots of 1 s: they start over 6 s, each after the ones before it.
    const burstAt = t + 10_000;
    for (let i = 0; i < 60; i++) feed.emit(job(`b${i}`), 'pending', burstAt, { at: burstAt, maxAttempts: 1, backoff: EXP }, 'SUBMITTED');
    for (let i = 0; i < 60; i++) {
      const at = burstAt + 50 + Math.floor(i / 10) * 1000 + (i % 10);
      feed.emit(job(`b${i}`), 'running', at, { type: 'STARTED', at, attempt: 1, leaseUntil: at + 30_000, workerId: 'w1' });
      feed.emit(job(`b${i}`), 'done', at + 1000, { type: 'SUCCEEDED', at: at + 1000, attempt: 1 });
    }
    // A minute later, a job due now with nothing ahead starts as the queue's lone jobs do: in about 50 ms.
    const now = burstAt + 60_000;
    const eta = model.eta({ type: 'render', queue: 'r', state: 'pending', startedAt: null, runAt: now, ahead: 0, now })!;
    assert.equal(eta.basis.startLatencyMs, 50, `the wait of jobs with none ahead, got ${eta.basis.startLatencyMs}`);
    assert.equal(eta.start, now + 50);
  });

  it('a job its limit\'s rate holds starts no sooner than the next start the rate allows, as a lower bound', () => {
    const { model, now } = busy(); // 2 starts a second, runs of 100 ms, 10 ms from due to start
    const query = { ...base, state: 'published' as const, runAt: now - 1000, now };
    const free = model.eta({ ...query, ahead: 0 })!;
    assert.deepEqual([free.start, free.lowerBound], [now, false], 'nothing ahead: now');
    const held = model.eta({ ...query, ahead: 0, hold: { reason: 'rate', until: now + 60_000 } })!;
    assert.deepEqual([held.start, held.finish], [now + 60_000, now + 60_100], 'the rate allows its start in a minute, and it runs for the median');
    assert.equal(held.lowerBound, true, 'no start before it; the key\'s jobs waiting ahead of it, not counted, may take the starts after');
    assert.equal(held.basis.held, 'rate');
    assert.equal(free.basis.held, undefined, 'not held: not said');
    // The queue's jobs ahead may be the key's own, held as well, and its start rate is what the limit holds it
    // down to: the limit decides, and reads later do not slide the start forward.
    const behind = model.eta({ ...query, ahead: 10, hold: { reason: 'rate', until: now + 1000 } })!;
    assert.equal(behind.start, now + 1000, 'the rate\'s next start, whatever the queue holds ahead');
  });

  it('a job its limit\'s concurrency holds starts once a slot of its key frees: its running attempts free one each median run time', () => {
    const { model, now } = busy(); // runs of 100 ms
    const query = { ...base, state: 'published' as const, runAt: now - 1000, ahead: 0, now };
    const taken = (running: number, concurrency = running, notBefore: number | null = null) => ({ reason: 'concurrency' as const, running, concurrency, notBefore });
    const one = model.eta({ ...query, hold: taken(1) })!;
    assert.deepEqual([one.start, one.finish, one.lowerBound], [now + 100, now + 200, false], 'one attempt of the key runs: a median run from now, an estimate (it may end sooner), not a bound');
    assert.equal(one.basis.held, 'concurrency');
    const four = model.eta({ ...query, hold: taken(4) })!;
    assert.deepEqual([four.start, four.finish], [now + 25, now + 125], 'four run: a slot frees four times as often');
    assert.equal(model.eta({ ...query, ahead: 10, hold: taken(1) })!.start, now + 100, 'the limit decides, not the queue\'s jobs ahead');
    assert.equal(model.eta({ ...query, ahead: 10, aheadAtLeast: true, hold: taken(1) })!.lowerBound, false, 'nor the count of them');
    assert.equal(model.eta({ ...query, hold: null })!.lowerBound, false, 'no hold: as before');
  });

  it('a job its limit\'s concurrency holds whose rate allows no start yet starts no sooner than the rate allows', () => {
    const { model, now } = busy(); // runs of 100 ms
    const query = { ...base, state: 'published' as const, runAt: now - 1000, ahead: 0, now };
    // The claim asks the rate only once a slot is free: with both taken, the wait says concurrency, and the rate's next start is an hour away.
    const held = model.eta({ ...query, hold: { reason: 'concurrency', running: 1, concurrency: 1, notBefore: now + 3_600_000 } })!;
    assert.deepEqual([held.start, held.finish], [now + 3_600_000, now + 3_600_100], 'the rate\'s next start, not a median run from now');
    const soon = model.eta({ ...query, hold: { reason: 'concurrency', running: 1, concurrency: 1, notBefore: now + 10 } })!;
    assert.equal(soon.start, now + 100, 'a rate that allows a start before the slot frees: the slot');
  });

  it('a job held by a concurrency lowered below what runs waits for as many of those attempts to end as leave a slot', () => {
    const { model, now } = busy(); // runs of 100 ms
    const query = { ...base, state: 'published' as const, runAt: now - 1000, ahead: 0, now };
    // 10 run, the limit lowered to 2: 9 must end, one each 10 ms.
    const lowered = model.eta({ ...query, hold: { reason: 'concurrency', running: 10, concurrency: 2, notBefore: null } })!;
    assert.equal(lowered.start, now + 90);
  });

  it('a concurrency hold whose attempts\' starts were read: the slot frees a median run after the start of the last that must end, the same at every read', () => {
    const { model, now } = busy(); // runs of 100 ms
    const query = { ...base, state: 'published' as const, runAt: now - 1000, ahead: 0, now };
    const hold = { reason: 'concurrency' as const, running: 1, concurrency: 1, notBefore: null, startedAt: [now - 30] };
    const first = model.eta({ ...query, hold })!;
    assert.deepEqual([first.start, first.finish, first.lowerBound], [now + 70, now + 170, false], 'started 30 ms ago: ends in 70');
    assert.equal(model.eta({ ...query, now: now + 50, hold })!.start, now + 70, 'read 50 ms later: the same start, not a median from the read');
    assert.equal(model.eta({ ...query, now: now + 500, hold })!.start, now + 500, 'past its median and still running: it may end any moment, now');
    // 10 run under a limit lowered to 2: 9 must end, the 9th started ends last.
    const starts = Array.from({ length: 9 }, (_, i) => now - 90 + i);
    assert.equal(model.eta({ ...query, hold: { reason: 'concurrency', running: 10, concurrency: 2, notBefore: null, startedAt: starts } })!.start, now + 18);
    assert.equal(model.eta({ ...query, hold: { ...hold, notBefore: now + 3_600_000 } })!.start, now + 3_600_000, 'and not before its rate allows');
    assert.equal(model.eta({ ...query, hold: { reason: 'concurrency', running: 10, concurrency: 2, notBefore: null, startedAt: starts.slice(0, 3) } })!.start,
      now + 90, 'fewer starts than must end: from now, as when none were read');
  });

  it('a held job\'s ETA, for any query: no start before now, its due time or what its limit allows, whatever the queue holds ahead, a finish a median run after; a lower bound when its rate holds it', () => {
    const { model, now } = busy(); // runs of 100 ms
    const offset = fc.integer({ min: -HOUR_MS, max: HOUR_MS });
    const hold = fc.oneof(
      fc.record({ reason: fc.constant('rate' as const), until: offset.map((d) => now + d) }),
      fc.record({
        reason: fc.constant('concurrency' as const), running: fc.integer({ min: 0, max: 50 }), concurrency: fc.integer({ min: 1, max: 50 }),
        notBefore: fc.option(offset.map((d) => now + d)),
        startedAt: fc.option(fc.array(fc.integer({ min: -HOUR_MS, max: 0 }).map((d) => now + d), { maxLength: 60 }).map((a) => a.sort((x, y) => x - y)), { nil: undefined }),
      }),
    );
    fc.assert(fc.property(
      fc.constantFrom('pending' as const, 'published' as const, 'retrying' as const), offset, fc.integer({ min: 0, max: 5000 }), fc.boolean(), hold,
      (state, due, ahead, aheadAtLeast, h) => {
        const query = { ...base, state, runAt: now + due, ahead, aheadAtLeast, now };
        const held = model.eta({ ...query, hold: h })!;
        assert.ok(held, 'the type has history: an ETA');
        assert.ok(held.start >= Math.max(now, now + due), 'not before now, nor before it is due');
        assert.equal(model.eta({ ...query, ahead: 0, aheadAtLeast: false, hold: h })!.start, held.start, 'the limit decides, not the queue\'s jobs ahead');
        if (h.reason === 'rate') assert.ok(held.start >= h.until, 'not before the rate allows');
        else {
          if (h.notBefore !== null) assert.ok(held.start >= h.notBefore, 'not before its rate allows');
          const last = h.startedAt?.[attemptsToEnd(Math.max(1, h.running), h.concurrency) - 1];
          if (last !== undefined) assert.ok(held.start >= last + 100, 'a slot frees no sooner than the last of the attempts that must end does');
          else if (h.running >= h.concurrency) assert.ok(held.start >= now + Math.round(100 / Math.max(1, h.running)) - 1, 'a slot frees no sooner than one of its attempts ends');
        }
        assert.equal(held.finish, held.start + 100, 'then it runs for the median');
        assert.equal(held.lowerBound, h.reason === 'rate');
        assert.equal(held.basis.held, h.reason);
      },
    ), { numRuns: Number(process.env.PROPERTY_RUNS ?? 1000) });
  });

  it('a hold never puts a start before now, nor before the job is due', () => {
    const { model, now } = busy();
    const due = { ...base, state: 'published' as const, runAt: now - 1000, ahead: 0, now };
    assert.equal(model.eta({ ...due, hold: { reason: 'rate', until: now - 500 } })!.start, now, 'a rate whose next start has passed (read a moment ago): now');
    const later = { ...base, state: 'pending' as const, runAt: now + 60_000, ahead: 0, now };
    assert.ok(model.eta({ ...later, hold: { reason: 'rate', until: now + 1000 } })!.start >= now + 60_000, 'a job due in a minute: not before it is due');
    assert.ok(model.eta({ ...later, hold: { reason: 'concurrency', running: 1, concurrency: 1, notBefore: null } })!.start >= now + 60_000);
  });

  it('has none without run times, or with jobs ahead and no start rate', () => {
    const { model, now } = busy();
    assert.equal(model.eta({ ...base, type: 'other', state: 'pending', now }), null);
    assert.equal(model.eta({ ...base, state: 'pending', ahead: 3, now: now + 3_600_000 }), null, 'an hour idle: rate 0');
    assert.notEqual(model.eta({ ...base, state: 'pending', ahead: 0, now: now + 3_600_000 }), null);
    assert.equal(model.eta({ ...base, state: 'done', now }), null);
    const fresh = new AdvisorModel();
    new Feed(fresh).job({ id: 'x', queue: 'q', at: 0, attempts: [{ ms: 100 }] });
    assert.equal(fresh.eta({ ...base, queue: 'q', state: 'pending', ahead: 0, runAt: 500, now: 200 })!.start, 500);
  });
});

describe('AdvisorModel: anomalies', () => {
  /** Single-attempt jobs at 2 attempts a second; `failP(i)` and `ms(i)` shape attempt i. */
  function stream(model: AdvisorModel, n: number, failP: (i: number) => number, ms: (i: number, r: number) => number, seed: number): Feed {
    const feed = new Feed(model);
    const random = rng(seed);
    for (let i = 0; i < n; i++) {
      const fail = random() < failP(i);
      const runMs = Math.round(ms(i, random()));
      feed.job({ id: `j${i}`, at: i * 500, maxAttempts: 1, attempts: [fail ? { ms: runMs, error: FLAKY } : { ms: runMs }] });
    }
    return feed;
  }
  const lognormal = (random: () => number) => (_i: number, r: number) => 200 * Math.exp(0.5 * Math.sqrt(-2 * Math.log(1 - r)) * Math.cos(2 * Math.PI * random()));

  it('detects a failure-rate spike (2% → 30%) within 2 simulated minutes, as one anomaly', () => {
    const model = new AdvisorModel();
    const spikeAt = 5000; // attempt index: 2,500 s in
    stream(model, spikeAt + 2400, (i) => (i < spikeAt ? 0.02 : 0.3), lognormal(rng(7)), 1);
    const anomalies = model.takeAnomalies();
    assert.equal(anomalies.length, 1, JSON.stringify(anomalies));
    const [a] = anomalies;
    assert.equal(a.metric, 'failure-rate');
    assert.deepEqual([a.type, a.queue], ['email', 'default']);
    const detectedAfterMs = a.at - spikeAt * 500;
    assert.ok(detectedAfterMs > 0 && detectedAfterMs <= 120_000, `detected ${detectedAfterMs} ms after the spike`);
    assert.ok(a.baseline > 0.01 && a.baseline < 0.04, `baseline ${a.baseline}`);
    assert.ok(a.observed > 0.15, `observed ${a.observed}`);
    assert.deepEqual(model.takeAnomalies(), [], 'each reported once');
    assert.deepEqual(model.insights('advise').types[0].anomalies, [a]);
  });

  it('detects run times doubling', () => {
    const model = new AdvisorModel();
    const shape = lognormal(rng(8));
    stream(model, 6000, () => 0.02, (i, r) => shape(i, r) * (i < 5000 ? 1 : 2), 2);
    const anomalies = model.takeAnomalies();
    assert.equal(anomalies.length, 1, JSON.stringify(anomalies));
    assert.equal(anomalies[0].metric, 'duration');
    assert.ok(anomalies[0].at - 5000 * 500 <= 120_000);
    assert.ok(anomalies[0].observed > 1.5 * anomalies[0].baseline, JSON.stringify(anomalies[0]));
  });

  it('raises none when a type of a few ms takes a few ms more, and one when it takes tens of ms more', () => {
    // 1-3 ms runs (p75 about 2 ms), then 5-8 ms: four times as long, and nothing a user would look into.
    const fast = (i: number, r: number) => (i < 3000 ? 1 + 2 * r : 5 + 3 * r);
    const few = new AdvisorModel();
    stream(few, 6000, () => 0.02, fast, 3);
    assert.deepEqual(few.takeAnomalies().filter((a) => a.metric === 'duration'), []);
    // The same type, then 20-30 ms: an anomaly.
    const tens = new AdvisorModel();
    stream(tens, 6000, () => 0.02, (i, r) => (i < 3000 ? 1 + 2 * r : 20 + 10 * r), 3);
    const anomalies = tens.takeAnomalies().filter((a) => a.metric === 'duration');
    assert.equal(anomalies.length, 1, JSON.stringify(anomalies));
    assert.ok(anomalies[0].observed >= 20, JSON.stringify(anomalies[0]));
  });

  it('raises none over a long steady stream', () => {
    const model = new AdvisorModel();
    // 100,000 attempts: 2 a second for 14 hours, 2% failing, log-normal run times.
    stream(model, 100_000, () => 0.02, lognormal(rng(9)), 3);
    assert.deepEqual(model.takeAnomalies(), []);
    assert.equal(model.eventsSeen, 300_000);
  });

  it('raises none before the warm-up', () => {
    const model = new AdvisorModel();
    stream(model, 99, () => 1, () => 100, 4);
    assert.deepEqual(model.takeAnomalies(), []);
  });
});

describe('AdvisorModel: bounds and keys', () => {
  it('takes user-chosen names like __proto__ as plain keys', () => {
    const model = new AdvisorModel({ evidenceHalfLifeMs: Infinity });
    const feed = new Feed(model, { neighbours: true });
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    let n = 0;
    for (const type of names) {
      for (const queue of names) {
        for (let i = 0; i < 60; i++) {
          feed.job({ id: `${type}/${queue}/${i}`, type, queue, at: n++ * 1000, maxAttempts: 2, attempts: [{ ms: 10, error: { name: '__proto__', message: 'constructor' } }, { ms: 10, error: { name: '__proto__', message: 'constructor' } }] });
        }
      }
    }
    const types = model.insights('advise').types;
    assert.equal(types.length, 16);
    for (const t of types) {
      assert.equal(t.failures, 120);
      assert.equal(t.signatures[0].signature, '__proto__: constructor');
      assert.equal(t.signatures[0].verdict, 'hopeless');
    }
    const advice = model.adviseFailure(query({ type: '__proto__', queue: 'constructor', error: { name: '__proto__', message: 'constructor' }, at: n * 1000 }));
    assert.equal(advice.retryable, false);
    assert.equal(model.leaseFor('__proto__', '__proto__')?.leaseMs, 5000, '240 timed attempts of 10 ms (the neighbours included)');
    assert.notEqual(model.eta({ type: 'toString', queue: '__proto__', state: 'running', startedAt: 0, runAt: 0, ahead: 0, now: 5 }), null);
    assert.equal(({} as Record<string, unknown>).constructor, Object, 'Object.prototype untouched');
  });

  it('tracks at most maxTrackedJobs live jobs, evicting the least recently seen', () => {
    const model = new AdvisorModel({ maxTrackedJobs: 10 });
    const feed = new Feed(model);
    for (let i = 0; i < 100; i++) feed.job({ id: `j${i}`, at: i, attempts: [{ ms: 5, error: FLAKY }] }); // left retrying
    assert.equal(model.trackedJobs, 10);
    // An evicted job's later events are learned from as far as they can be.
    feed.event({ id: 'j0' }, 'pending', { type: 'RETRY_DUE', at: 2000 });
    feed.event({ id: 'j0' }, 'running', { type: 'STARTED', at: 2010, attempt: 2, leaseUntil: 9999, workerId: 'w' });
    assert.equal(model.trackedJobs, 10);
    feed.event({ id: 'j0' }, 'done', { type: 'SUCCEEDED', at: 2050, attempt: 2 });
    assert.equal(model.trackedJobs, 9, 'a finished job is no longer tracked');
    const type = model.insights('advise').types[0];
    assert.equal(type.attempts, 101, 'the evicted job timed again from its next start');
    assert.equal(type.signatures[0].recoveryMs, null, 'no recovery time for a run seen from the middle');
  });

  it('keeps at most maxKeys pairs and maxSignaturesPerKey signatures per pair', () => {
    const model = new AdvisorModel({ maxKeys: 3, maxSignaturesPerKey: 5 });
    const feed = new Feed(model);
    for (let i = 0; i < 10; i++) feed.job({ id: `t${i}`, type: `type${i}`, at: i, attempts: [{ ms: 5 }] });
    assert.deepEqual(model.insights('advise').types.map((t) => t.type), ['type0', 'type1', 'type2']);
    const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
    for (const [i, w] of words.entries()) feed.job({ id: `s${i}`, type: 'type0', at: 100 + i, maxAttempts: 1, attempts: [{ ms: 5, error: { message: w } }] });
    const sigs = model.insights('advise').types[0].signatures.map((s) => s.signature).sort();
    assert.deepEqual(sigs, ['Error: foxtrot', 'Error: golf', 'Error: hotel', 'Error: india', 'Error: juliet'], 'the most recent kept');
  });

  it('gives the place of a pair (and of a queue) idle for PAIR_IDLE_MS to a new one once maxKeys are taken, and no busy one\'s', () => {
    const model = new AdvisorModel({ maxKeys: 3 });
    const feed = new Feed(model);
    for (let i = 0; i < 3; i++) feed.job({ id: `old${i}`, type: `type${i}`, queue: `q${i}`, at: i, attempts: [{ ms: 5 }] });
    const later = PAIR_IDLE_MS + 10_000;
    // type1 and type2 (and their queues) stay busy; type0 on q0 has been idle for PAIR_IDLE_MS.
    feed.job({ id: 'busy1', type: 'type1', queue: 'q1', at: later - 1_000, attempts: [{ ms: 5 }] });
    feed.job({ id: 'busy2', type: 'type2', queue: 'q2', at: later - 1_000, attempts: [{ ms: 5 }] });
    for (let i = 0; i < 5; i++) feed.job({ id: `new${i}`, type: 'type3', queue: 'q3', at: later + i * 100, attempts: [{ ms: 40 }] });
    assert.deepEqual(model.insights('advise').types.map((t) => t.type), ['type1', 'type2', 'type3'], 'the idle pair made room for the new one');
    const eta = model.eta({ type: 'type3', queue: 'q3', state: 'pending', startedAt: null, runAt: later + 500, ahead: 2, now: later + 500 });
    assert.ok(eta && eta.basis.medianRunMs === 40 && (eta.basis.startsPerSecond ?? 0) > 0, `an ETA from the new pair and queue: ${JSON.stringify(eta)}`);
    // Every place busy: a newer pair waits, rather than pushing out a pair still learning.
    feed.job({ id: 'newest', type: 'type4', queue: 'q4', at: later + 1_000, attempts: [{ ms: 5 }] });
    assert.deepEqual(model.insights('advise').types.map((t) => t.type), ['type1', 'type2', 'type3']);
  });

  it('ignores an event seen twice', () => {
    const once = new AdvisorModel();
    const twice = new AdvisorModel();
    const feed = new Feed(once);
    for (let i = 0; i < 50; i++) feed.job({ id: `j${i}`, at: i * 1000, attempts: [{ ms: 5, error: FLAKY }, { ms: 7 }] });
    for (const e of feed.events) {
      twice.observe(e);
      twice.observe(e);
    }
    const strip = (m: AdvisorModel) => ({ ...m.insights('advise'), events: 0 });
    assert.deepEqual(strip(twice), strip(once));
  });

  it('is deterministic: the same events give the same model', () => {
    const build = () => {
      const model = new AdvisorModel();
      const feed = new Feed(model);
      const random = rng(11);
      for (let i = 0; i < 30_000; i++) {
        const runMs = Math.round(50 + 500 * random() ** 3) + (i > 25_000 ? 400 : 0);
        feed.job({ id: `j${i}`, at: i * 200, attempts: [random() < 0.1 ? { ms: runMs, error: FLAKY } : { ms: runMs }, { ms: runMs }] });
      }
      return model;
    };
    const a = build();
    const b = build();
    assert.deepEqual(a.insights('enforce'), b.insights('enforce'));
    assert.deepEqual(a.leaseFor('email', 'default'), b.leaseFor('email', 'default'));
  });
});

describe('timeoutNote', () => {
  it('flags a timeout below the p99 run time, or 20× it and more; a timeout in between fits', () => {
    assert.match(timeoutNote(500, 800) ?? '', /^timeout 500 ms is below the p99 run time/);
    assert.equal(timeoutNote(60_000, 200), 'timeout 60,000 ms is 300× the p99 run time (200 ms): a hung attempt holds its slot that long; about 2 s would do');
    assert.equal(timeoutNote(3_000, 200), null);
    assert.equal(timeoutNote(800, 800), null, 'equal to the p99 is not below it');
  });
});
