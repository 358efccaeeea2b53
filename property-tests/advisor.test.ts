/**
 * Properties of the advisor (engine/advisor/, docs/advisor.md), with fast-check:
 *
 * P1 (the model, pure): the advisor never turns a retryable failure into a
 *    non-retryable one without evidence. Arbitrary interleaved histories of
 *    jobs of a few (type, queue) pairs (names like `__proto__` included), runs
 *    ending done, dead, cancelled or left live, outages (a pair whose jobs
 *    all fail and die while none of it succeeds), failures the advisor
 *    decided, retries it timed. The test counts, from the generated history
 *    and without the model, each signature's *job-specific failed retries*
 *    (a retry of that failure failed again while another attempt of its pair
 *    succeeded after the failure it retried; a failure the advisor decided
 *    counts nothing, nor does it end the retry before it) and recovered
 *    retries (a retry of it succeeded). Whenever `adviseFailure` says
 *    `retryable: false` (asked before each FAILED, as the worker does, and for
 *    every pair and cause at the end and a day later), that pair and cause
 *    has at least one such retry, at least minEvidence of them with the
 *    test's usual options (minEvidence 5, hopelessBelow 0.3, credibility 0.95),
 *    and whatever the options: counted retries >= minEvidence, and failed
 *    retries >= the fewest any Beta verdict needs. A timed retry (`delayMs`)
 *    is never earlier than the static policy's ceiling nor later than its
 *    maxMs, and rests on recovered runs.
 * P2 (the real engine, both speeds): with a chaotic advisor (answers drawn
 *    per call), every job's events replay to its stored state (the engine's
 *    table and XState's own `transition()`), each decision is what the events
 *    record (a stop: `retryable: false, decidedBy: 'advisor'`, the job dead; a
 *    timed retry: `runAt === FAILED.at + delayMs`, and no retry before it; no
 *    answer: the static backoff draw; a lease: the STARTED and HEARTBEAT
 *    leases), each retryable failure is put to the advisor exactly once, at
 *    its time, and a non-retryable one never. Handlers fail, succeed, fail
 *    for good, hang until their timeout, or crash their worker (its leases
 *    expire) per a generated plan.
 * P3 (fast speed): `off` behaves exactly as no advisor: the same workload on the
 *    simulated clock, with a seeded Random and deterministic job ids, once
 *    without an advisor and once with `new Advisor(..., { mode: 'off' })`,
 *    gives identical event histories (and the advisor reads nothing).
 *
 * Environment, as run-property.ts: PROPERTY_RUNS scales the runs of each
 * fast-speed property from its default (1000 / 300 / 150) as it scales the
 * delivery property's 1,000 (`PROPERTY_RUNS=20000`: 20,000 / 6,000 / 3,000),
 * and each test's timeout with its runs; PROPERTY_REAL_RUNS (real speed,
 * default 8), PROPERTY_SEED + PROPERTY_PATH to replay one failure (the report prints the
 * exact command, with the test name pattern that picks the property). At the real
 * speed a missing MariaDB or Kafka fails the test (skips only with
 * ATS_ALLOW_SKIP=1 outside CI), as in delivery-real.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Advisor } from '../engine/advisor/advisor.js';
import { AdvisorModel } from '../engine/advisor/model.js';
import { errorSignature, LEASE_EXPIRED_SIGNATURE } from '../engine/advisor/signature.js';
import type { FailureAdvice, LeaseAdvice, ModelOptions } from '../engine/advisor/types.js';
import { NonRetryableError } from '../engine/errors.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import type { Handler, JobEventRecord, JobRecord, JobSpec, JobStore, StreamEventRecord } from '../engine/ports.js';
import { Relay } from '../engine/relay.js';
import { Timers } from '../engine/timers.js';
import { canonicalJson, TransitionService } from '../engine/transitions.js';
import { verifyJob } from '../engine/verify.js';
import { Waker } from '../engine/wake.js';
import { Worker, type WorkerDeps } from '../engine/worker.js';
import { backoffDelay, type BackoffPolicy } from '../machines/backoff.js';
import type { FailureError, JobEvent, JobInput, JobState } from '../machines/job.machine.js';
import { isTerminal, startXState, stepXState, type PersistedJob } from '../machines/lifecycle.js';
import { fastBackend, realBackend, type Backend, type RunBackend } from './backends.js';
import { SimClock, seededRandom } from './sim-clock.js';
import { countingStore, TrackedLog, type CountingStore } from './tracked-log.js';
import { withTwoWorkers } from './world.js';

const FILE = 'property-tests/advisor.test.ts';

// ============================================================ running a property

interface RunSettings {
  numRuns: number;
  seed?: number;
  path?: string;
}

/** The delivery property's default runs (delivery.test.ts): PROPERTY_RUNS scales the fast properties here against it. */
const DELIVERY_DEFAULT_RUNS = 1000;

/**
 * The runs of a property: PROPERTY_REAL_RUNS as given; PROPERTY_RUNS scales
 * `defaultRuns` as it scales the delivery property's (each fast property here
 * costs more per run, so its default is smaller).
 */
function runsOf(defaultRuns: number, runsEnv: 'PROPERTY_RUNS' | 'PROPERTY_REAL_RUNS'): number {
  const raw = process.env[runsEnv];
  if (raw === undefined) return defaultRuns;
  const runs = Number(raw);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`${runsEnv} must be a positive integer, got ${raw}`);
  return runsEnv === 'PROPERTY_RUNS' ? Math.max(1, Math.round((defaultRuns * runs) / DELIVERY_DEFAULT_RUNS)) : runs;
}

/**
 * A fast property's test timeout: 10 minutes, or `msPerRun` for each of its
 * runs when PROPERTY_RUNS asks for more (a bad value fails in `check`, with its message).
 */
function timeoutFor(defaultRuns: number, msPerRun: number): number {
  let runs = defaultRuns;
  try {
    runs = runsOf(defaultRuns, 'PROPERTY_RUNS');
  } catch {
    // reported by the property's own check
  }
  return Math.max(600_000, runs * msPerRun);
}

/** PROPERTY_RUNS / PROPERTY_REAL_RUNS, PROPERTY_SEED, PROPERTY_PATH, as run-property.ts reads them. */
function settings(defaultRuns: number, runsEnv: 'PROPERTY_RUNS' | 'PROPERTY_REAL_RUNS'): RunSettings {
  const env = process.env;
  return {
    numRuns: runsOf(defaultRuns, runsEnv),
    ...(env.PROPERTY_SEED ? { seed: Number(env.PROPERTY_SEED) } : {}),
    ...(env.PROPERTY_PATH ? { path: env.PROPERTY_PATH } : {}),
  };
}

/** Runs a property; throws a report with the command that replays the failing run. */
async function check<Ts extends [unknown, ...unknown[]]>(
  testName: string,
  property: fc.IAsyncPropertyWithHooks<Ts> | fc.IPropertyWithHooks<Ts>,
  opts: { defaultRuns: number; runsEnv: 'PROPERTY_RUNS' | 'PROPERTY_REAL_RUNS'; runTimeoutMs?: number },
): Promise<{ runs: number; ms: number }> {
  const s = settings(opts.defaultRuns, opts.runsEnv);
  const started = Date.now();
  const details = await fc.check(property as fc.IAsyncProperty<Ts>, {
    numRuns: s.numRuns,
    ...(opts.runTimeoutMs ? { timeout: opts.runTimeoutMs } : {}),
    ...(s.seed !== undefined ? { seed: s.seed } : {}),
    ...(s.path !== undefined ? { path: s.path } : {}),
  });
  if (details.failed) {
    const pattern = testName.split(':')[0];
    const command = `PROPERTY_SEED=${details.seed} PROPERTY_PATH=${details.counterexamplePath ?? ''} `
      + `node --import tsx --test --test-name-pattern='^${pattern}' ${FILE}`;
    const err = details.errorInstance;
    throw new Error([
      `${testName} failed. Replay this exact run with:`, `  ${command}`, '',
      fc.defaultReportMessage(details) ?? 'property failed', '',
      'The error of the last failing run:', `  ${err instanceof Error ? err.message : String(err)}`,
    ].join('\n'));
  }
  return { runs: details.numRuns, ms: Date.now() - started };
}

const AWKWARD = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'] as const;

// ============================================================ P1: the model needs job-specific evidence

/** Error families: every message of one family normalises to one signature (checked below), each family its own. */
const FAMILIES: ReadonlyArray<(n: number) => { name: string; message: string }> = [
  (n) => ({ name: 'Error', message: `order ${n} not found` }),
  (n) => ({ name: 'TypeError', message: `cannot read 'x${n}' of undefined` }),
  (n) => ({ name: '__proto__', message: `upstream ${n} refused` }),
  (n) => ({ name: 'constructor', message: `hasOwnProperty failed after ${n} ms` }),
];
/** The test's own key of a failure's cause: a family index, or the lease expiry. */
type Cause = number | 'lease';
const causeKey = (c: Cause) => (c === 'lease' ? 'lease' : `f${c}`);
const LEASE_ERROR = { name: 'LeaseExpired', message: 'lease expired' };

/** `arb` in `some` of `some + none` cases, else null. */
const sometimes = <T>(arb: fc.Arbitrary<T>, some: number, none: number): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: none, arbitrary: fc.constant(null) }, { weight: some, arbitrary: arb });

type AttemptEnd =
  | { kind: 'ok' }
  | { kind: 'fail'; family: number; how: 'retryable' | 'fatal' | 'advisor'; delayMs: number | null }
  | { kind: 'lease' };

interface AttemptScript {
  /** From the previous event to STARTED. */
  wait: number;
  ms: number;
  end: AttemptEnd;
  heartbeat: boolean;
  published: boolean;
  /** From a retried failure to RETRY_DUE. */
  retryAfter: number;
  /** The number in the error's message (it varies; the signature does not). */
  n: number;
}

interface RunScript {
  attempts: AttemptScript[];
  /** `live`: the run's events stop after `cut` of them (the job stays live for good); `cancel`: a CANCEL replaces them. */
  stop: null | { how: 'live' | 'cancel'; cut: number };
}

interface JobScript {
  pair: number;
  start: number;
  maxAttempts: number;
  /** A second run starts with REDRIVE if the first ended dead or cancelled. */
  runs: RunScript[];
}

interface Block {
  gap: number;
  /** A pair whose every attempt in this block fails (an outage of the whole type). */
  outage: number | null;
  jobs: JobScript[];
}

interface History {
  pairs: Array<{ type: string; queue: string }>;
  /** Event times are floored to this many ms: coarse clocks make ties (a success at the very ms of a failure). */
  grain: number;
  options: Partial<ModelOptions>;
  blocks: Block[];
  queryBackoff: { baseMs: number; maxMs: number };
}

/** The test's usual evidence parameters (minEvidence 5, hopelessBelow 0.3) most of the time; others now and then. */
const verdictOptionsArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ minEvidence: 5, hopelessBelow: 0.3, credibility: 0.95 }) },
  {
    weight: 1,
    arbitrary: fc.record({
      minEvidence: fc.integer({ min: 1, max: 8 }),
      hopelessBelow: fc.constantFrom(0.1, 0.2, 0.3, 0.5),
      credibility: fc.constantFrom(0.6, 0.8, 0.9, 0.95),
    }),
  },
);

const modelOptionsArb: fc.Arbitrary<Partial<ModelOptions>> = fc.record({
  verdict: verdictOptionsArb,
  minRecoveries: fc.integer({ min: 1, max: 5 }),
  // Memory bounds small enough to bite: eviction may only lose evidence, never invent it.
  maxTrackedJobs: fc.constantFrom(100_000, 100_000, 4),
  maxSignaturesPerKey: fc.constantFrom(50, 50, 2),
  maxKeys: fc.constantFrom(500, 500, 2),
  evidenceHalfLifeMs: fc.constantFrom(0, Infinity, 6 * 3_600_000, 6 * 3_600_000, 600_000),
  maxEvidence: fc.constantFrom(100, 100, 6),
}).map(({ verdict, ...rest }) => ({ ...verdict, ...rest }));

const attemptArb: fc.Arbitrary<AttemptScript> = fc.record({
  wait: fc.integer({ min: 0, max: 1500 }),
  ms: fc.integer({ min: 0, max: 2000 }),
  end: fc.oneof(
    { weight: 3, arbitrary: fc.constant<AttemptEnd>({ kind: 'ok' }) },
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('fail' as const),
        family: fc.integer({ min: 0, max: FAMILIES.length - 1 }),
        how: fc.constantFrom('retryable', 'retryable', 'retryable', 'retryable', 'fatal', 'advisor', 'advisor'),
        delayMs: sometimes(fc.integer({ min: 0, max: 60_000 }), 1, 3),
      }),
    },
    { weight: 1, arbitrary: fc.constant<AttemptEnd>({ kind: 'lease' }) },
  ),
  heartbeat: fc.boolean(),
  published: fc.boolean(),
  retryAfter: fc.integer({ min: 0, max: 3000 }),
  n: fc.integer({ min: 1, max: 99_999 }),
});

/**
 * A job that fails every attempt with one cause, retryably, early in its
 * block: the makings of job-specific evidence when its pair's healthy jobs
 * succeed later in the block, of an outage's when none does.
 */
const poisonArb = (pairArb: fc.Arbitrary<number>, familyArb: fc.Arbitrary<number>): fc.Arbitrary<JobScript> =>
  fc.record({
    pair: pairArb,
    start: fc.integer({ min: 0, max: 2000 }),
    maxAttempts: fc.integer({ min: 2, max: 3 }),
    family: familyArb,
    // Now and then the advisor ends the run on its last attempt: such a run is no evidence.
    advisorEnds: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    attempts: fc.array(attemptArb, { minLength: 3, maxLength: 3 }),
  }).map(({ pair, start, maxAttempts, family, advisorEnds, attempts }) => ({
    pair, start, maxAttempts,
    runs: [{
      stop: null,
      attempts: attempts.map((a, i) => ({
        ...a, wait: Math.min(a.wait, 300), ms: Math.min(a.ms, 300),
        end: {
          kind: 'fail' as const, family, how: advisorEnds && i === maxAttempts - 1 ? 'advisor' as const : 'retryable' as const,
          delayMs: a.end.kind === 'fail' ? a.end.delayMs : null,
        },
      })),
    }],
  }));

const randomJobArb = (pairs: number): fc.Arbitrary<JobScript> =>
  fc.record({
    pair: fc.integer({ min: 0, max: pairs - 1 }),
    start: fc.integer({ min: 0, max: 4000 }),
    maxAttempts: fc.integer({ min: 1, max: 4 }),
    runs: fc.array(
      fc.record({
        attempts: fc.array(attemptArb, { minLength: 0, maxLength: 5 }),
        stop: sometimes(fc.record({ how: fc.constantFrom('live' as const, 'cancel' as const), cut: fc.integer({ min: 1, max: 12 }) }), 1, 3),
      }),
      { minLength: 1, maxLength: 2 },
    ),
  });

/** A healthy job: succeeds at once (its pair's successes make other runs' deaths job-specific). */
const healthyArb = (pairArb: fc.Arbitrary<number>): fc.Arbitrary<JobScript> =>
  fc.record({ pair: pairArb, start: fc.integer({ min: 1000, max: 5000 }), a: attemptArb })
    .map(({ pair, start, a }) => ({
      pair, start, maxAttempts: 3,
      runs: [{ stop: null, attempts: [{ ...a, wait: Math.min(a.wait, 300), ms: Math.min(a.ms, 300), end: { kind: 'ok' as const } }] }],
    }));

const historyArb: fc.Arbitrary<History> = fc
  .uniqueArray(fc.record({ type: fc.constantFrom('email', ...AWKWARD), queue: fc.constantFrom('default', ...AWKWARD) }), {
    minLength: 1, maxLength: 3, selector: (p) => `${p.type}\u0000${p.queue}`,
  })
  .chain((pairs) => fc.record({
    pairs: fc.constant(pairs),
    grain: fc.constantFrom(1, 1, 100, 1000),
    options: modelOptionsArb,
    queryBackoff: fc.record({ baseMs: fc.integer({ min: 1, max: 2000 }), maxMs: fc.integer({ min: 2000, max: 120_000 }) }),
    blocks: fc.array(
      fc.record({
        // Mostly close together; now and then hours apart (evidence fades).
        gap: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 10_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 10_000, max: 7_200_000 }) }),
        outage: sometimes(fc.integer({ min: 0, max: pairs.length - 1 }), 1, 4),
        // The block's poison: most poisoned jobs share a pair and a cause.
        focus: fc.record({ pair: fc.integer({ min: 0, max: pairs.length - 1 }), family: fc.integer({ min: 0, max: 1 }) }),
        // Healthy jobs of the focus pair, spread over the block (a day when only some jobs fail).
        neighbours: fc.integer({ min: 0, max: 12 }),
      }).chain(({ gap, outage, focus, neighbours }) => {
        const anyPair = fc.integer({ min: 0, max: pairs.length - 1 });
        return fc.record({
          gap: fc.constant(gap),
          outage: fc.constant(outage),
          neighbours: fc.array(healthyArb(fc.constant(focus.pair)), { minLength: neighbours, maxLength: neighbours })
            .map((js) => js.map((j, k) => ({ ...j, start: Math.round(((k + 1) * 8000) / (js.length + 1)) }))),
          jobs: fc.array(
            fc.oneof(
              { weight: 4, arbitrary: poisonArb(fc.constant(focus.pair), fc.constant(focus.family)) },
              { weight: 1, arbitrary: poisonArb(anyPair, fc.integer({ min: 0, max: FAMILIES.length - 1 })) },
              { weight: 3, arbitrary: randomJobArb(pairs.length) },
              { weight: 4, arbitrary: healthyArb(fc.oneof({ weight: 2, arbitrary: fc.constant(focus.pair) }, { weight: 1, arbitrary: anyPair })) },
            ),
            { minLength: 1, maxLength: 24 },
          ),
        }).map(({ neighbours: n, ...b }) => ({ ...b, jobs: [...b.jobs, ...n] }));
      }),
      { minLength: 1, maxLength: 12 },
    ),
  }));

/** One generated event, with the test's own facts about it (the model sees only `record`). */
interface GenEvent {
  record: StreamEventRecord;
  pair: number;
  /** FAILED / LEASE_EXPIRED: the cause, and the attempt's number within its run. */
  cause?: Cause;
  attemptInRun?: number;
  maxAttempts: number;
  order: number;
}

/** The events of one job script from `t0`; `outage`: its pair is down, every attempt fails. */
function jobEvents(job: JobScript, jobId: string, h: History, t0: number, outage: boolean): Array<Omit<GenEvent, 'order'>> {
  const out: Array<Omit<GenEvent, 'order'>> = [];
  const { type: jobType, queue } = h.pairs[job.pair];
  let seq = 0;
  let state: JobState | null = null;
  let base = 0;
  const emit = (to: JobState, time: number, event: JobEvent | JobInput, type?: 'SUBMITTED', cause?: Cause) => {
    const at = time - (time % h.grain);
    const data = { ...event, at };
    seq += 1;
    out.push({
      record: { id: 0, jobId, seq, type: type ?? (data as JobEvent).type, from: state, to, at, data, jobType, queue },
      pair: job.pair, maxAttempts: job.maxAttempts, ...(cause !== undefined ? { cause, attemptInRun: attempt - base } : {}),
    });
    state = to;
  };
  let t = t0;
  let attempt = 0;
  const backoff: BackoffPolicy = { kind: 'exponential', baseMs: 1000, maxMs: 60_000, jitter: 'full' };
  for (const [r, run] of job.runs.entries()) {
    if (r === 0) emit('pending', t, { at: t, maxAttempts: job.maxAttempts, backoff }, 'SUBMITTED');
    else if (state === 'dead' || state === 'cancelled') emit('pending', t, { type: 'REDRIVE', at: t });
    else break;
    base = attempt;
    const before = out.length;
    for (const a of run.attempts) {
      if (attempt - base >= job.maxAttempts) break;
      attempt += 1;
      if (a.published) emit('published', t, { type: 'PUBLISHED', at: t, attempt });
      t += a.wait;
      emit('running', t, { type: 'STARTED', at: t, attempt, leaseUntil: t + 30_000, workerId: 'w' });
      if (a.heartbeat) emit('running', t + Math.floor(a.ms / 2), { type: 'HEARTBEAT', at: t + Math.floor(a.ms / 2), attempt, leaseUntil: t + 60_000 });
      t += a.ms;
      let end = a.end;
      if (outage && end.kind === 'ok') end = { kind: 'fail', family: 0, how: 'retryable', delayMs: null };
      if (end.kind === 'ok') {
        emit('done', t, { type: 'SUCCEEDED', at: t, attempt });
        break;
      }
      const left = attempt - base < job.maxAttempts;
      if (end.kind === 'lease') {
        emit(left ? 'retrying' : 'dead', t, { type: 'LEASE_EXPIRED', at: t, attempt, rand: 0.5 }, undefined, 'lease');
      } else {
        const error: FailureError = {
          ...FAMILIES[end.family](a.n), retryable: end.how === 'retryable',
          ...(end.how === 'advisor' ? { decidedBy: 'advisor' as const, advice: 'no retry (generated)' } : {}),
        };
        const to = end.how === 'retryable' && left ? 'retrying' : 'dead';
        emit(to, t, { type: 'FAILED', at: t, attempt, rand: 0.5, error, ...(end.delayMs !== null ? { delayMs: end.delayMs } : {}) }, undefined, end.family);
      }
      if (state === 'dead') break;
      t += a.retryAfter;
      emit('pending', t, { type: 'RETRY_DUE', at: t });
    }
    const runEvents = out.length - before;
    if (run.stop && run.stop.cut <= runEvents) {
      // Drop the run's events from the cut on (seq and state as they were there).
      const kept = out.splice(before + run.stop.cut);
      seq -= kept.length;
      state = out[out.length - 1]!.record.to;
      attempt = Math.max(base, ...out.slice(before).flatMap((e) => (e.record.type === 'STARTED' ? [(e.record.data as { attempt: number }).attempt] : [])));
      if (run.stop.how === 'live' || isTerminal(state)) break;
      t = out[out.length - 1]!.record.at + 1;
      emit('cancelled', t, { type: 'CANCEL', at: t, reason: 'generated' });
    }
    if (!isTerminal(state!)) break; // left live: nothing more of this job
    t += 100;
  }
  return out;
}

/** The whole history in commit (id) order: blocks one after the other, jobs interleaved by time within a block. */
function historyEvents(h: History): GenEvent[] {
  const all: GenEvent[] = [];
  let t = 1_000_000;
  let jobNo = 0;
  for (const block of h.blocks) {
    t += block.gap;
    const evs: GenEvent[] = [];
    for (const job of block.jobs) {
      const id = jobNo++ === 0 ? '__proto__' : `j${jobNo}`;
      const order = evs.length;
      for (const [k, e] of jobEvents(job, id, h, t + job.start, block.outage === job.pair).entries()) evs.push({ ...e, order: order + k });
    }
    // By time; a tie keeps the order events were made in (a job's own events stay in seq order).
    evs.sort((a, b) => a.record.at - b.record.at || a.order - b.order);
    for (const e of evs) {
      e.record.id = all.length + 1;
      all.push(e);
    }
    t = Math.max(t, ...evs.map((e) => e.record.at)) + 1;
  }
  return all;
}

/**
 * The evidence, counted from the history by the definition in docs/advisor.md, without
 * the model: per pair and cause, retries of that failure that succeeded
 * (recovered), and retries of it that failed again (a lease expiry included)
 * while another attempt of the pair succeeded after the failure retried
 * (job-specific failed retries). A failure the advisor decided counts nothing
 * and does not end the retry before it as failed; a retry still running, or
 * whose run was cancelled, counts nothing. Also, per pair and cause, the runs
 * that retried it and ended done (recovered runs: what recovery times come from).
 */
class EvidenceCounter {
  private readonly counts = new Map<string, { failed: number; recovered: number; recoveredRuns: number }>();
  private readonly lastSuccess = new Map<number, number>();
  private readonly runs = new Map<string, { firstFailureAt: number | null; retried: Set<string>; awaiting: { cause: string; at: number } | null }>();
  /** Runs that retried a failure and died while nothing of their pair succeeded (no evidence). */
  outageDeaths = 0;

  observe(e: GenEvent): void {
    const r = e.record;
    const data = r.data as JobEvent;
    if (r.type === 'SUBMITTED' || r.type === 'REDRIVE') this.runs.set(r.jobId, { firstFailureAt: null, retried: new Set(), awaiting: null });
    const run = this.runs.get(r.jobId)!;
    if (data.type === 'SUCCEEDED') {
      this.lastSuccess.set(e.pair, Math.max(this.lastSuccess.get(e.pair) ?? -Infinity, r.at));
      if (run.awaiting) this.of(e.pair, run.awaiting.cause).recovered += 1;
      run.awaiting = null;
    }
    if (data.type === 'FAILED' || data.type === 'LEASE_EXPIRED') {
      run.firstFailureAt ??= r.at;
      const byAdvisor = data.type === 'FAILED' && data.error.decidedBy === 'advisor';
      if (run.awaiting && !byAdvisor && (this.lastSuccess.get(e.pair) ?? -Infinity) > run.awaiting.at) this.of(e.pair, run.awaiting.cause).failed += 1;
      run.awaiting = null;
      if (r.to === 'retrying' && !byAdvisor) {
        run.retried.add(causeKey(e.cause!));
        run.awaiting = { cause: causeKey(e.cause!), at: r.at };
      }
    }
    if (r.to === 'done' || r.to === 'dead') {
      const endedByAdvisor = data.type === 'FAILED' && data.error.decidedBy === 'advisor';
      const jobSpecific = run.firstFailureAt !== null && (this.lastSuccess.get(e.pair) ?? -Infinity) > run.firstFailureAt;
      if (r.to === 'dead' && !endedByAdvisor && !jobSpecific && run.retried.size > 0) this.outageDeaths++;
      if (r.to === 'done') for (const cause of run.retried) this.of(e.pair, cause).recoveredRuns += 1;
    }
  }

  of(pair: number, cause: string): { failed: number; recovered: number; recoveredRuns: number } {
    const key = `${pair}/${cause}`;
    let c = this.counts.get(key);
    if (!c) this.counts.set(key, (c = { failed: 0, recovered: 0, recoveredRuns: 0 }));
    return c;
  }
}

/**
 * The fewest failed retries any hopeless verdict needs: P(p < x) under
 * Beta(1 + r, 1 + h) is at most its value at r = 0, 1 - (1 - x)^(1 + h), and
 * decayed counts are never above the raw ones.
 */
function fewestDeadRuns(o: { hopelessBelow: number; credibility: number }): number {
  return Math.max(0, Math.ceil(Math.log(1 - o.credibility) / Math.log(1 - o.hopelessBelow) - 1 - 1e-9));
}

interface P1Stats {
  runs: number;
  runsWithHopeless: number;
  hopeless: number;
  delays: number;
  queries: number;
  advisorEnded: number;
  outageDeaths: number;
}

function checkHistory(h: History, stats: P1Stats): void {
  const o = h.options as Required<Pick<ModelOptions, 'minEvidence' | 'hopelessBelow' | 'credibility' | 'minRecoveries'>>;
  const model = new AdvisorModel(h.options);
  const counter = new EvidenceCounter();
  const leastDead = Math.max(1, fewestDeadRuns(o));
  const backoff: BackoffPolicy = { kind: 'exponential', ...h.queryBackoff, jitter: 'full' };
  const causes: Cause[] = [...FAMILIES.keys(), 'lease'];
  let hopelessHere = 0;
  let probe = 0;

  const ask = (pair: number, cause: Cause, jobId: string, at: number, attemptInRun: number, maxAttempts: number, where: string) => {
    const { type, queue } = h.pairs[pair];
    const error = cause === 'lease' ? LEASE_ERROR : FAMILIES[cause](++probe);
    const advice = model.adviseFailure({ jobId, type, queue, error, attemptInRun, maxAttempts, backoff, at });
    stats.queries++;
    const c = counter.of(pair, causeKey(cause));
    const what = `${where}: ${type}/${queue} \`${advice.signature}\` at ${at} (attempt ${attemptInRun} of ${maxAttempts}); `
      + `the history holds ${c.failed} job-specific failed retries, ${c.recovered} recovered retries and ${c.recoveredRuns} recovered runs of it; `
      + `options ${JSON.stringify(h.options)}`;
    if (advice.retryable === false) {
      hopelessHere++;
      stats.hopeless++;
      assert.ok(c.failed > 0, `no retry without a single job-specific failed retry: ${what}`);
      assert.ok(c.failed >= leastDead, `no retry with fewer than the ${leastDead} failed retries any verdict needs: ${what}`);
      assert.ok(c.failed + c.recovered >= o.minEvidence, `no retry below minEvidence (${o.minEvidence}) counted retries: ${what}`);
      if (leastDead >= o.minEvidence) {
        assert.ok(c.failed >= o.minEvidence, `no retry without minEvidence (${o.minEvidence}) job-specific failed retries: ${what}`);
      }
      assert.equal(advice.delayMs, undefined, `a stop carries no delay: ${what}`);
      assert.ok(typeof advice.reason === 'string' && advice.reason.length > 0, `a stop says why: ${what}`);
      assert.ok(attemptInRun < maxAttempts, `no advice when no retry would follow: ${what}`);
    }
    if (advice.delayMs !== undefined) {
      stats.delays++;
      const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** (attemptInRun - 1));
      assert.ok(Number.isInteger(advice.delayMs) && advice.delayMs >= ceiling && advice.delayMs <= backoff.maxMs,
        `a timed retry is never earlier than the static policy's ceiling (${ceiling}) nor later than its maxMs: ${advice.delayMs}; ${what}`);
      assert.ok(c.recoveredRuns >= o.minRecoveries && c.failed + c.recovered >= o.minEvidence, `a timed retry rests on recovered runs: ${what}`);
    }
  };

  let last = 0;
  for (const e of historyEvents(h)) {
    last = Math.max(last, e.record.at);
    const data = e.record.data as JobEvent;
    if (data.type === 'FAILED') {
      // What the worker asks just before it writes this FAILED.
      ask(e.pair, e.cause!, e.record.jobId, e.record.at, e.attemptInRun!, e.maxAttempts, `before event #${e.record.id}`);
      if (data.error.decidedBy === 'advisor') stats.advisorEnded++;
    }
    model.observe(e.record);
    counter.observe(e);
  }
  stats.outageDeaths += counter.outageDeaths;
  // Every pair and cause, at the end and a day later (evidence fades, never grows, with time).
  for (const at of [last, last + 86_400_000]) {
    for (const pair of h.pairs.keys()) for (const cause of causes) ask(pair, cause, 'probe', at, 1, 3, 'at the end');
  }
  stats.runs++;
  if (hopelessHere > 0) stats.runsWithHopeless++;
}

// Per-run budgets of the test timeouts: about 20 times what a run takes (P1 2.5 ms, P2 fast 22 ms, P3 44 ms).
test('P1 model: no retry is stopped without job-specific evidence (AdvisorModel, generated histories)', { timeout: timeoutFor(1000, 50) }, async (t) => {
  // The families are what the test says they are: one signature each, all distinct.
  const sigs = FAMILIES.map((f) => new Set([1, 22, 333_333, 4.5].map((n) => errorSignature(f(n)))));
  assert.ok(sigs.every((s) => s.size === 1), `one signature per family: ${sigs.map((s) => [...s].join(' | ')).join('; ')}`);
  assert.equal(new Set([...sigs.map((s) => [...s][0]), errorSignature(LEASE_ERROR)]).size, FAMILIES.length + 1);
  assert.equal(errorSignature(LEASE_ERROR), LEASE_EXPIRED_SIGNATURE);

  const stats: P1Stats = { runs: 0, runsWithHopeless: 0, hopeless: 0, delays: 0, queries: 0, advisorEnded: 0, outageDeaths: 0 };
  const r = await check(t.name, fc.property(historyArb, (h) => checkHistory(h, stats)), { defaultRuns: 1000, runsEnv: 'PROPERTY_RUNS' });
  t.diagnostic(`${r.runs} runs in ${(r.ms / 1000).toFixed(1)} s: ${JSON.stringify(stats)}`);
  // The property must be able to fail: verdicts happen in the generated histories.
  if (r.runs >= 50) {
    assert.ok(stats.runsWithHopeless >= r.runs / 50, `too few runs reached a hopeless verdict: ${JSON.stringify(stats)}`);
    assert.ok(stats.delays > 0 && stats.advisorEnded > 0 && stats.outageDeaths > 0, `the histories exercised timed retries, advisor-ended runs and outages: ${JSON.stringify(stats)}`);
  }
});

// ============================================================ the engine on the simulated clock (P2, P3)

/** What the test handler does on one attempt. */
type Plan = 'ok' | 'fail' | 'fatal' | 'hang' | 'crash';

interface JobPlan {
  type: string;
  queue: string;
  plan: Plan[];
  maxAttempts: number;
  backoff: BackoffPolicy;
  timeoutMs: number;
  /** > 0: submitted with a runAt this far ahead. */
  delayMs: number;
}

interface Workload {
  jobs: JobPlan[];
  randomSeed: number;
}

const TASK_TYPES = ['prop.task', ...AWKWARD] as const;
/** The queues of the jobs, which the workers serve by name (see the world's workers). */
const JOB_QUEUES = ['prop', '__proto__', 'hasOwnProperty'] as const;
/** The worker's own lease settings (the advisor's null answer). */
const STATIC_LEASE = { leaseMs: 3000, heartbeatMs: 1000 };
/** Simulated time after which a run that has not settled is called stuck. */
const MAX_SIM_MS = 3_600_000;
/** The longest single advance (the quiesce steps are shorter when something is due sooner). */
const MAX_STEP_MS = 10_000;

const planArb: fc.Arbitrary<Plan> = fc.oneof(
  { weight: 6, arbitrary: fc.constant('fail' as const) },
  { weight: 3, arbitrary: fc.constant('ok' as const) },
  { weight: 1, arbitrary: fc.constant('fatal' as const) },
  { weight: 2, arbitrary: fc.constant('hang' as const) },
  { weight: 1, arbitrary: fc.constant('crash' as const) },
);

const backoffArb: fc.Arbitrary<BackoffPolicy> = fc.oneof(
  fc.record({
    kind: fc.constant('exponential' as const),
    baseMs: fc.integer({ min: 0, max: 2000 }),
    maxMs: fc.integer({ min: 0, max: 20_000 }),
    jitter: fc.constantFrom('full' as const, 'equal' as const, 'none' as const),
  }),
  fc.record({ kind: fc.constant('fixed' as const), delayMs: fc.integer({ min: 0, max: 10_000 }) }),
);

const jobPlanArb: fc.Arbitrary<JobPlan> = fc.record({
  type: fc.constantFrom(...TASK_TYPES),
  queue: fc.constantFrom(...JOB_QUEUES),
  plan: fc.array(planArb, { minLength: 1, maxLength: 5 }),
  maxAttempts: fc.integer({ min: 1, max: 4 }),
  backoff: backoffArb,
  timeoutMs: fc.integer({ min: 500, max: 8000 }),
  delayMs: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }) }),
});

const workloadArb = (maxJobs: number): fc.Arbitrary<Workload> =>
  fc.record({ jobs: fc.array(jobPlanArb, { minLength: 1, maxLength: maxJobs }), randomSeed: fc.nat() });

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface WorkerRun {
  id: string;
  worker: Worker;
  ready: Promise<void>;
  crashed: boolean;
}

/**
 * One run: the real TransitionService, Relay, Timers and two Workers (a
 * crash drops one and a fresh instance joins) on a backend's store and log,
 * on the simulated clock; every worker incarnation gets `advisor`.
 */
class AdvisorWorld {
  readonly store: CountingStore;
  readonly log: TrackedLog;
  readonly transitions: TransitionService;
  readonly relay: Relay;
  readonly timers: Timers;
  readonly waker = new Waker();
  readonly workers: WorkerRun[] = [];
  readonly jobIds: string[] = [];
  readonly counts = { crashes: 0, invocations: 0 };
  private readonly restarts = new Set<Promise<void>>();
  private gen = 0;

  private constructor(
    readonly clock: SimClock,
    readonly backend: RunBackend,
    randomSeed: number,
    private readonly advisor: WorkerDeps['advisor'] | undefined,
  ) {
    this.store = countingStore(backend.store);
    this.log = new TrackedLog(backend.log);
    let n = 0;
    const ids = { jobId: () => `${backend.idPrefix}j${String(++n).padStart(3, '0')}` };
    this.transitions = new TransitionService({
      store: this.store, clock, random: seededRandom(randomSeed), ids, onCommit: () => this.waker.notify(),
    });
    this.relay = new Relay(
      { store: this.store, log: this.log, transitions: this.transitions, clock, logger: silentLogger, waker: this.waker },
      { batchSize: 500, pollMs: 250, errorBackoffMs: 100 },
    );
    this.timers = new Timers(
      { store: this.store, transitions: this.transitions, clock, logger: silentLogger },
      // Large: nothing here loses a dispatch, so the lost-dispatch repair must never be needed.
      { pollMs: 500, batchSize: 500, publishedTimeoutMs: 24 * 3_600_000 },
    );
  }

  /** `advisorOf` builds the advisor from the run's store and clock (or gives none). */
  static async create(
    backend: Backend, randomSeed: number,
    advisorOf: (store: JobStore, clock: SimClock) => WorkerDeps['advisor'] | undefined = () => undefined,
  ): Promise<AdvisorWorld> {
    const clock = new SimClock();
    const run = await backend.open(clock);
    const world = new AdvisorWorld(clock, run, randomSeed, advisorOf(run.store, clock));
    return withTwoWorkers(world, (slot) => world.startWorker(slot));
  }

  private async startWorker(slot: number): Promise<void> {
    const id = `w${slot}.${++this.gen}`;
    const run: WorkerRun = { id, worker: null as unknown as Worker, ready: Promise.resolve(), crashed: false };
    const registry = new HandlerRegistry();
    for (const type of TASK_TYPES) registry.register(type, this.handlerFor(run));
    const log = this.log.forWorker({ before: async () => undefined, after: () => undefined });
    run.worker = new Worker(
      { log, transitions: this.transitions, clock: this.clock.view(id), logger: silentLogger, registry, ...(this.advisor ? { advisor: this.advisor } : {}) },
      { workerId: id, groupId: 'prop-advisor-workers', concurrency: 1000, ...STATIC_LEASE, shutdownGraceMs: 0, queues: JOB_QUEUES },
    );
    this.workers[slot] = run;
    run.ready = run.worker.start();
    await run.ready;
  }

  /** As SIGKILL would: no outcome written after this; a fresh worker takes the slot. */
  private crash(run: WorkerRun): void {
    if (run.crashed) return;
    run.crashed = true;
    this.counts.crashes++;
    const slot = this.workers.indexOf(run);
    const restart = run.ready.catch(() => undefined).then(() => run.worker.crash()).then(() => this.startWorker(slot));
    const tracked = restart.finally(() => this.restarts.delete(tracked));
    this.restarts.add(tracked);
  }

  private handlerFor(run: WorkerRun): Handler<{ plan: Plan[] }> {
    return async (payload, ctx) => {
      this.counts.invocations++;
      switch (payload.plan[ctx.attempt - 1] ?? 'ok') {
        case 'ok':
          return { attempt: ctx.attempt };
        case 'fail':
          throw new Error(`order ${ctx.attempt} of ${ctx.jobId} not found`);
        case 'fatal':
          throw new NonRetryableError(`bad payload at attempt ${ctx.attempt}`);
        case 'hang':
          return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
        case 'crash':
          this.crash(run);
          throw new Error('the process died');
      }
    };
  }

  /** Nothing moves: no store call or publish in flight, every dispatch handled, no worker restarting; three quiet turns in a row. */
  async settle(): Promise<void> {
    const deadline = Date.now() + this.backend.settleTimeoutMs;
    for (let quiet = 0; quiet < 3;) {
      await tick();
      const memory = this.backend.memory;
      const idle = !memory || (await memory.drain({ timeoutMs: 0 }).then(() => true, () => false));
      const busy = !idle || this.store.inFlight + this.log.inFlight + this.restarts.size + this.log.unhandled.size > 0;
      if (!busy) {
        quiet++;
        continue;
      }
      quiet = 0;
      if (!memory) await realSleep(2);
      if (Date.now() > deadline) {
        throw new Error(`the system did not settle within ${this.backend.settleTimeoutMs} ms (store calls ${this.store.inFlight}, `
          + `publishes ${this.log.inFlight}, unhandled dispatches ${this.log.unhandled.size}, restarts ${this.restarts.size})`);
      }
    }
  }

  async submit(jobs: readonly JobPlan[]): Promise<void> {
    const specs: JobSpec[] = jobs.map((j) => ({
      type: j.type, queue: j.queue, payload: { plan: j.plan }, maxAttempts: j.maxAttempts, backoff: j.backoff, timeoutMs: j.timeoutMs, priority: 0,
      ...(j.delayMs > 0 ? { runAt: this.clock.now() + j.delayMs } : {}),
    }));
    for (const r of await this.transitions.submitMany(specs)) {
      assert.ok(r.ok);
      this.jobIds.push(r.job.id);
    }
  }

  /**
   * Let time pass until every job is terminal and the outbox is empty: the
   * relay and the timers run between steps; a step ends at the next lease
   * end, retry or delayed start (at most MAX_STEP_MS), so heartbeats, handler
   * timeouts, leases and retries all happen. False if that never comes.
   */
  async quiesce(between: () => Promise<void> = async () => undefined): Promise<boolean> {
    const end = this.clock.now() + MAX_SIM_MS;
    while (this.clock.now() < end) {
      await this.drainOutbox();
      await this.timers.runOnce();
      await this.settle();
      await this.drainOutbox();
      await between();
      const jobs = await Promise.all(this.jobIds.map((id) => this.store.getJob(id)));
      if (jobs.every((j) => j && isTerminal(j.snapshot.value)) && (await this.store.countUnpublished()) === 0) return true;
      const now = this.clock.now();
      let next = now + MAX_STEP_MS;
      for (const j of jobs) {
        const c = j!.snapshot.context;
        const due = j!.snapshot.value === 'running' ? c.leaseUntil : isTerminal(j!.snapshot.value) ? null : c.runAt;
        if (due !== null && due > now) next = Math.min(next, due);
      }
      await this.clock.advance(Math.max(1, next - now), () => this.settle());
    }
    return false;
  }

  private async drainOutbox(): Promise<void> {
    await this.settle();
    while ((await this.relay.runOnce()) > 0) await this.settle();
  }

  async histories(): Promise<Array<{ job: JobRecord; events: JobEventRecord[] }>> {
    return Promise.all(this.jobIds.map(async (id) => ({ job: (await this.store.getJob(id))!, events: await this.store.getEvents(id) })));
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.restarts]);
    await Promise.allSettled(this.workers.filter(Boolean).map((r) => r.ready.then(() => r.worker.crash())));
    await this.backend.close();
  }
}

// ============================================================ P2: replay with a chaotic advisor's decisions

type FailureAnswer =
  | null
  | { kind: 'stop'; reason: string }
  | { kind: 'delay'; delayMs: number; reason: string | null }
  /** An answer that changes nothing (a FailureAdvice with only its signature). */
  | { kind: 'keep' };

const failureAnswerArb: fc.Arbitrary<FailureAnswer> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('stop' as const), reason: fc.string({ unit: 'grapheme', maxLength: 24 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('delay' as const),
      delayMs: fc.oneof(fc.constant(0), fc.constant(60_000), fc.integer({ min: 0, max: 60_000 })),
      reason: fc.option(fc.string({ maxLength: 24 }), { nil: null }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'keep' as const }) },
);

const leaseAnswerArb: fc.Arbitrary<{ leaseMs: number; heartbeatMs: number } | null> = fc.option(
  fc.integer({ min: 1000, max: 30_000 }).chain((leaseMs) =>
    fc.record({ leaseMs: fc.constant(leaseMs), heartbeatMs: fc.integer({ min: Math.ceil(leaseMs / 10), max: leaseMs - 1 }) })),
  { nil: null },
);

interface Asked {
  jobId: string;
  type: string;
  queue: string;
  error: { name?: string; message: string };
  attempt: number;
  at: number;
  /** The clock when the worker asked. */
  now: number;
  answer: FailureAdvice | null;
}

/** A fake advisor whose every answer fast-check draws, and which records what it was asked. */
class ChaoticAdvisor implements NonNullable<WorkerDeps['advisor']> {
  readonly asked: Asked[] = [];
  /** Every lease it answered (ms). */
  readonly leases = new Set<number>();
  leaseAnswers = 0;

  constructor(
    private readonly failures: fc.Stream<FailureAnswer>,
    private readonly leaseStream: fc.Stream<{ leaseMs: number; heartbeatMs: number } | null>,
    private readonly clock: SimClock,
  ) {}

  adviseFailure(job: JobRecord, error: { name?: string; message: string }, attempt: number, at: number): FailureAdvice | null {
    const a = this.failures.next().value as FailureAnswer;
    const signature = 'chaos: drawn by fast-check';
    const answer: FailureAdvice | null =
      a === null ? null
        : a.kind === 'stop' ? { signature, retryable: false, reason: a.reason }
          : a.kind === 'delay' ? { signature, delayMs: a.delayMs, ...(a.reason !== null ? { reason: a.reason } : {}) }
            : { signature };
    this.asked.push({ jobId: job.id, type: job.type, queue: job.queue, error: { ...error }, attempt, at, now: this.clock.now(), answer });
    return answer;
  }

  leaseFor(_type: string, _queue: string): LeaseAdvice | null {
    const l = this.leaseStream.next().value as { leaseMs: number; heartbeatMs: number } | null;
    if (!l) return null;
    this.leases.add(l.leaseMs);
    this.leaseAnswers++;
    return { ...l, p99Ms: l.leaseMs / 4, samples: 1000 };
  }
}

interface P2Stats {
  runs: number;
  jobs: number;
  asked: number;
  stops: number;
  stopsWithAttemptsLeft: number;
  timedRetries: number;
  delayZero: number;
  keptPolicy: number;
  advisorLeases: number;
  heartbeatsOnAdvisorLease: number;
  leaseExpiries: number;
  timeouts: number;
  crashes: number;
  done: number;
  dead: number;
}

const emptyP2 = (): P2Stats => ({
  runs: 0, jobs: 0, asked: 0, stops: 0, stopsWithAttemptsLeft: 0, timedRetries: 0, delayZero: 0, keptPolicy: 0,
  advisorLeases: 0, heartbeatsOnAdvisorLease: 0, leaseExpiries: 0, timeouts: 0, crashes: 0, done: 0, dead: 0,
});

/** Replays a job through XState's own `transition()` (the reference the engine's table is tested against): each state after each event. */
function replayXState(events: readonly JobEventRecord[]): PersistedJob[] {
  const [first, ...rest] = events;
  assert.equal(first?.type, 'SUBMITTED');
  const states = [startXState(first!.data as JobInput).next];
  for (const e of rest) {
    const r = stepXState(states[states.length - 1]!, e.data as JobEvent);
    assert.ok(r.ok, `XState rejects event #${e.seq} (${e.type}) in state ${states[states.length - 1]!.value}`);
    states.push(r.next);
  }
  return states;
}

/** Every check of one job's history against the advisor's answers. */
async function checkJobP2(world: AdvisorWorld, job: JobRecord, events: JobEventRecord[], asked: Asked[], advisor: ChaoticAdvisor, stats: P2Stats): Promise<void> {
  const id = job.id;
  const v = await verifyJob(world.store, id);
  assert.ok(v.ok, `job ${id}: its events do not replay to its stored state: ${v.problems.join('; ')}`);
  const states = replayXState(events);
  assert.equal(canonicalJson(states[states.length - 1]), canonicalJson(job.snapshot), `job ${id}: XState's replay differs from the stored state`);
  assert.ok(isTerminal(job.snapshot.value), `job ${id} settled in ${job.snapshot.value}`);
  stats[job.snapshot.value as 'done' | 'dead']++;

  const askedFor = new Map<number, Asked[]>();
  for (const a of asked) askedFor.set(a.attempt, [...(askedFor.get(a.attempt) ?? []), a]);
  const failedAttempts = new Set<number>();
  let lease: number | null = null;
  for (const [i, e] of events.entries()) {
    const before = states[i - 1];
    const after = states[i]!;
    const data = e.data as JobEvent;
    const where = `job ${id} event #${e.seq} ${e.type} (${e.from} → ${e.to})`;
    switch (data.type) {
      case 'STARTED': {
        lease = data.leaseUntil - data.at;
        const ok = lease === STATIC_LEASE.leaseMs || advisor.leases.has(lease);
        assert.ok(ok, `${where}: a lease of ${lease} ms, neither the worker's ${STATIC_LEASE.leaseMs} nor one the advisor answered`);
        if (lease !== STATIC_LEASE.leaseMs) stats.advisorLeases++;
        // The retry of an attempt whose lease expired runs on the worker's lease (extended to it before its handler).
        if (lease < STATIC_LEASE.leaseMs && before?.context.lastError?.name === 'LeaseExpired' && before.context.lastError.attempt === data.attempt - 1) {
          lease = STATIC_LEASE.leaseMs;
        }
        break;
      }
      case 'HEARTBEAT':
        assert.equal(data.leaseUntil - data.at, lease, `${where}: a heartbeat extends by the attempt's own lease (the worker's, for a retry after a lease expiry)`);
        if (lease !== STATIC_LEASE.leaseMs) stats.heartbeatsOnAdvisorLease++;
        break;
      case 'LEASE_EXPIRED':
        stats.leaseExpiries++;
        break;
      case 'FAILED': {
        failedAttempts.add(data.attempt);
        const asks = askedFor.get(data.attempt) ?? [];
        if (data.error.name === 'TimeoutError') stats.timeouts++;
        if (data.error.name === 'NonRetryableError') {
          assert.equal(asks.length, 0, `${where}: a non-retryable failure is not put to the advisor`);
          assert.equal(data.error.retryable, false);
          assert.equal(data.error.decidedBy, undefined, `${where}: the handler decided, not the advisor`);
          assert.equal(data.delayMs, undefined);
          assert.equal(e.to, 'dead');
          break;
        }
        assert.equal(asks.length, 1, `${where}: a retryable failure is put to the advisor exactly once (asked ${asks.length} times)`);
        const a = asks[0]!;
        assert.equal(a.at, data.at, `${where}: the advisor was asked at the failure's time`);
        assert.equal(a.now, a.at);
        assert.equal(a.error.message, data.error.message, `${where}: the advisor was asked about this error`);
        assert.equal(a.error.name, data.error.name);
        assert.deepEqual([a.type, a.queue], [job.type, job.queue]);
        const answer = a.answer;
        if (answer?.retryable === false) {
          stats.stops++;
          if (before!.context.attempt - before!.context.attemptBase < before!.context.maxAttempts) stats.stopsWithAttemptsLeft++;
          assert.equal(data.error.retryable, false, `${where}: the advisor stopped it: not retryable`);
          assert.equal(data.error.decidedBy, 'advisor', `${where}: the advisor stopped it: decidedBy advisor`);
          assert.equal(data.error.advice, answer.reason || undefined, `${where}: the advisor's reason is recorded`);
          assert.equal(e.to, 'dead', `${where}: a stopped job goes dead`);
          assert.equal(i, events.length - 1, `${where}: nothing follows a stop`);
          assert.equal(job.snapshot.value, 'dead');
          assert.equal(job.snapshot.context.lastError?.decidedBy, 'advisor');
          break;
        }
        assert.equal(data.error.retryable, true, `${where}: a retryable failure the advisor did not stop stays retryable`);
        assert.ok(!('decidedBy' in data.error) && !('advice' in data.error), `${where}: no advisor's mark on a failure it did not stop`);
        const retried = e.to === 'retrying';
        assert.equal(retried, before!.context.attempt - before!.context.attemptBase < before!.context.maxAttempts, `${where}: retried iff attempts are left`);
        if (answer?.delayMs !== undefined) {
          assert.equal(data.delayMs, answer.delayMs, `${where}: the advisor's delay is recorded on the FAILED`);
          if (retried) {
            stats.timedRetries++;
            if (answer.delayMs === 0) stats.delayZero++;
            const due = data.at + answer.delayMs;
            assert.equal(after.context.runAt, due, `${where}: runAt is FAILED.at + delayMs`);
            const next = events.slice(i + 1);
            const retryDue = next.find((n) => n.type === 'RETRY_DUE');
            const started = next.find((n) => n.type === 'STARTED');
            assert.ok(!retryDue || retryDue.at >= due, `${where}: RETRY_DUE at ${retryDue?.at}, before the advisor's time ${due}`);
            assert.ok(!started || started.at >= due, `${where}: the retry started at ${started?.at}, before the advisor's time ${due}`);
          }
        } else {
          assert.ok(!('delayMs' in data), `${where}: no delay recorded when the advisor gave none`);
          if (retried) {
            stats.keptPolicy++;
            const n = before!.context.attempt - before!.context.attemptBase;
            assert.equal(after.context.runAt, data.at + backoffDelay(before!.context.backoff, n, data.rand), `${where}: the static policy's draw`);
          }
        }
        break;
      }
      default:
        break;
    }
  }
  // Asked, then recorded: unless the worker crashed in between (then nothing of it is written and its lease expires).
  const expired = new Set(events.flatMap((e) => (e.type === 'LEASE_EXPIRED' ? [(e.data as { attempt: number }).attempt] : [])));
  for (const attempt of askedFor.keys()) {
    assert.ok(failedAttempts.has(attempt) || (expired.has(attempt) && world.counts.crashes > 0),
      `job ${id}: the advisor was asked about attempt ${attempt}, whose FAILED was never recorded (and no crash explains it)`);
  }
}

async function p2Run(backend: Backend, w: Workload, failures: fc.Stream<FailureAnswer>, leases: fc.Stream<{ leaseMs: number; heartbeatMs: number } | null>, stats: P2Stats): Promise<void> {
  let advisor: ChaoticAdvisor | null = null;
  const world = await AdvisorWorld.create(backend, w.randomSeed, (_store, clock) => (advisor = new ChaoticAdvisor(failures, leases, clock)));
  try {
    await world.submit(w.jobs);
    assert.ok(await world.quiesce(), 'the jobs settled (every job terminal, the outbox empty)');
    const a = advisor!;
    const byJob = new Map<string, Asked[]>();
    for (const q of a.asked) {
      assert.ok(world.jobIds.includes(q.jobId), `the advisor was asked about an unknown job ${q.jobId}`);
      byJob.set(q.jobId, [...(byJob.get(q.jobId) ?? []), q]);
    }
    for (const { job, events } of await world.histories()) await checkJobP2(world, job, events, byJob.get(job.id) ?? [], a, stats);
    stats.runs++;
    stats.jobs += world.jobIds.length;
    stats.asked += a.asked.length;
    stats.crashes += world.counts.crashes;
  } finally {
    await world.close();
  }
}

function p2Property(backend: Backend, stats: P2Stats) {
  return fc.asyncProperty(
    workloadArb(6), fc.infiniteStream(failureAnswerArb), fc.infiniteStream(leaseAnswerArb),
    (w, failures, leases) => p2Run(backend, w, failures, leases, stats),
  );
}

test('P2 fast: replay with a chaotic advisor\'s decisions equals the stored state (SQLite + in-process log, simulated clock)', { timeout: timeoutFor(300, 400) }, async (t) => {
  const stats = emptyP2();
  const r = await check(t.name, p2Property(fastBackend(), stats), { defaultRuns: 300, runsEnv: 'PROPERTY_RUNS', runTimeoutMs: 60_000 });
  t.diagnostic(`${r.runs} runs in ${(r.ms / 1000).toFixed(1)} s: ${JSON.stringify(stats)}`);
  if (r.runs >= 50) {
    for (const k of ['stops', 'stopsWithAttemptsLeft', 'timedRetries', 'keptPolicy', 'advisorLeases', 'heartbeatsOnAdvisorLease', 'leaseExpiries', 'timeouts', 'crashes', 'done', 'dead'] as const) {
      assert.ok(stats[k] > 0, `no run exercised ${k}: ${JSON.stringify(stats)}`);
    }
  }
});

test('P2 real: replay with a chaotic advisor\'s decisions equals the stored state (MariaDB + Kafka, simulated clock)', { timeout: 1_800_000 }, async (t) => {
  const backend = realBackend();
  if (!(await backend.setUp())) return t.skip('MariaDB or Kafka is not reachable (ATS_ALLOW_SKIP=1)');
  try {
    const stats = emptyP2();
    const r = await check(t.name, p2Property(backend, stats), { defaultRuns: 8, runsEnv: 'PROPERTY_REAL_RUNS', runTimeoutMs: 240_000 });
    t.diagnostic(`${r.runs} runs in ${(r.ms / 1000).toFixed(1)} s: ${JSON.stringify(stats)}`);
    assert.ok(stats.jobs > 0 && stats.asked > 0, `the runs ran jobs and asked the advisor: ${JSON.stringify(stats)}`);
  } finally {
    await backend.tearDown();
  }
});

// ============================================================ P3: `off` is no advisor at all

interface History3 {
  jobs: Array<{ id: string; state: string; events: Array<Pick<JobEventRecord, 'type' | 'from' | 'to' | 'at' | 'data'>> }>;
}

async function runWorkload(w: Workload, mode: 'none' | 'off'): Promise<History3 & { advisorCalls: string[] }> {
  const advisorCalls: string[] = [];
  let advisor: Advisor | null = null;
  const world = await AdvisorWorld.create(fastBackend(), w.randomSeed, (store, clock) => {
    if (mode === 'none') return undefined;
    // Every use of the store by the advisor is seen: `off` reads nothing.
    const watched = new Proxy(store, {
      get(target, prop, receiver) {
        advisorCalls.push(`store.${String(prop)}`);
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    advisor = new Advisor({
      store: watched, clock, logger: silentLogger,
      onDecision: (kind, applied) => advisorCalls.push(`decision ${kind} ${applied}`),
      onAnomaly: (a) => advisorCalls.push(`anomaly ${a.metric}`),
    }, {
      mode: 'off', pollMs: 1000, historyEvents: 100_000,
      // Eager settings (as compose.ts sizes leases from the worker's): were it to learn and act, it would show.
      model: { minEvidence: 1, minRecoveries: 1, minRunSamples: 1, staticLeaseMs: STATIC_LEASE.leaseMs, staticHeartbeatMs: STATIC_LEASE.heartbeatMs, minLeaseMs: 500 },
    });
    return advisor;
  });
  try {
    const a = advisor as Advisor | null;
    await a?.init();
    await a?.start();
    await world.submit(w.jobs);
    // As a process would use it: started, and read between steps (nothing, in `off`).
    assert.ok(await world.quiesce(async () => {
      await a?.catchUp();
    }), 'the jobs settled');
    await a?.stop();
    const histories = await world.histories();
    return {
      advisorCalls,
      jobs: histories.map(({ job, events }) => ({
        id: job.id, state: canonicalJson(job.snapshot), events: events.map((e) => ({ type: e.type, from: e.from, to: e.to, at: e.at, data: e.data })),
      })),
    };
  } finally {
    await world.close();
  }
}

/** The first difference between two histories, in words. */
function firstDifference(a: History3, b: History3): string {
  if (a.jobs.length !== b.jobs.length) return `${a.jobs.length} jobs against ${b.jobs.length}`;
  for (const [k, ja] of a.jobs.entries()) {
    const jb = b.jobs[k]!;
    if (ja.id !== jb.id) return `job #${k}: id ${ja.id} against ${jb.id}`;
    const n = Math.max(ja.events.length, jb.events.length);
    for (let i = 0; i < n; i++) {
      const x = canonicalJson(ja.events[i] ?? null);
      const y = canonicalJson(jb.events[i] ?? null);
      if (x !== y) return `job ${ja.id} event #${i + 1}:\n    without an advisor: ${x}\n    with it off:        ${y}`;
    }
    if (ja.state !== jb.state) return `job ${ja.id} state: ${ja.state} against ${jb.state}`;
  }
  return 'none';
}

test('P3 off: an advisor in mode `off` changes nothing (the same workload, identical event histories)', { timeout: timeoutFor(150, 800) }, async (t) => {
  let events = 0;
  let jobs = 0;
  const r = await check(t.name, fc.asyncProperty(workloadArb(6), async (w) => {
    const without = await runWorkload(w, 'none');
    const off = await runWorkload(w, 'off');
    assert.deepEqual(off.advisorCalls, [], `the advisor in \`off\` used nothing: ${off.advisorCalls.join(', ')}`);
    const diff = firstDifference(without, off);
    assert.equal(diff, 'none', `the histories differ: ${diff}`);
    jobs += without.jobs.length;
    events += without.jobs.reduce((n, j) => n + j.events.length, 0);
  }), { defaultRuns: 150, runsEnv: 'PROPERTY_RUNS', runTimeoutMs: 60_000 });
  t.diagnostic(`${r.runs} runs in ${(r.ms / 1000).toFixed(1)} s: ${jobs} jobs, ${events} events compared`);
});
