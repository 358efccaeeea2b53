/**
 * The advisor's vocabulary: what it learns from each job type's history and
 * what it decides. The learning itself is pure (`model.ts`: fed committed
 * events in id order, time given by each event's `at` or by the caller); the
 * service (`advisor.ts`) feeds it from the store and answers the engine.
 */
import type { BackoffPolicy } from '../../machines/backoff.js';
import type { JobState } from '../../machines/job.machine.js';

/** `off`: nothing learned, nothing decided. `advise`: learned and shown, behaviour unchanged. `enforce`: decisions change behaviour. */
export type AdvisorMode = 'off' | 'advise' | 'enforce';
export const ADVISOR_MODES: readonly AdvisorMode[] = Object.freeze(['off', 'advise', 'enforce']);

/** What the advisor is told of a failed attempt, before its FAILED is written. */
export interface FailureQuery {
  jobId: string;
  type: string;
  queue: string;
  error: { name?: string; message: string };
  /** The failed attempt's number within the current run (1 = the run's first attempt). */
  attemptInRun: number;
  maxAttempts: number;
  backoff: BackoffPolicy;
  /** When the attempt failed (epoch ms). */
  at: number;
}

/**
 * The advice on one failure. `retryable: false` stops retrying (only ever
 * for a signature proven hopeless); `delayMs`, when set, replaces the static
 * backoff draw (already bounded by the job's policy). A field left out keeps
 * the static policy.
 */
export interface FailureAdvice {
  signature: string;
  retryable?: false;
  delayMs?: number;
  /** Why, in one line (recorded on the event when enforced). */
  reason?: string;
}

/** A lease sized from a type's observed run times. */
export interface LeaseAdvice {
  leaseMs: number;
  heartbeatMs: number;
  /** The p99 run time it was sized from, and over how many attempts. */
  p99Ms: number;
  samples: number;
}

/**
 * A lease the worker can claim with: whole milliseconds, and a heartbeat of
 * at least 1 ms that comes before the lease ends. The worker claims with the
 * static lease instead of one that is not (engine/worker.ts).
 */
export function usableLease(lease: Pick<LeaseAdvice, 'leaseMs' | 'heartbeatMs'>): boolean {
  return Number.isSafeInteger(lease.leaseMs) && Number.isSafeInteger(lease.heartbeatMs) && lease.heartbeatMs >= 1 && lease.heartbeatMs < lease.leaseMs;
}

/** What the ETA of one live job is computed from. */
export interface EtaQuery {
  type: string;
  queue: string;
  state: JobState;
  /** When its current attempt started (running jobs). */
  startedAt: number | null;
  /** When it is due (pending, retrying). */
  runAt: number;
  /**
   * Live jobs of its queue ahead of it (waiting to start before it). For a job due later that joins
   * its lane when due (a retry, a delayed job), those waiting now that it will find there if none
   * started meanwhile: the model takes off those the queue starts by its due time.
   */
  ahead: number;
  /** `ahead` is a lower bound: the count stopped at its bound (more may wait ahead). @defaultValue false */
  aheadAtLeast?: boolean;
  /** What its limit holds it back for, as read with the job; null or absent: nothing (or not read). */
  hold?: EtaHold | null;
  now: number;
}

/**
 * A job that its limit holds back, which then decides its ETA in place of the
 * queue's jobs ahead (model.ts `eta`; server/routes/jobs-read.ts `holdOf`
 * reads it from the job's `waiting`): its rate, which allows the next start
 * of its key at `until` (epoch ms), for a due job or one not due yet whose
 * run time comes before that; or, for a due job, its concurrency, taken by the
 * `running` attempts of its key (as many as its `concurrency` allows, or more
 * when the limit was lowered while they ran), and then its rate too, which
 * allows no start before `notBefore` (null: no rate, or one that allows a
 * start now); `startedAt`, when those attempts started, earliest first (as
 * many as must end to leave a slot; absent, or fewer, when not read).
 */
export type EtaHold =
  | { reason: 'rate'; until: number }
  | { reason: 'concurrency'; running: number; concurrency: number; notBefore: number | null; startedAt?: readonly number[] };

export interface Eta {
  /** Predicted (or, when running, actual) start, epoch ms. */
  start: number;
  /** Predicted finish, epoch ms. */
  finish: number;
  /**
   * What it rests on: the queue's start rate (jobs/s: its recent rate, or the rate its running
   * attempts free their slots when that is higher), the type's
   * median run time, the jobs ahead, and the queue's median wait from a job's
   * due time to its first start lately, of jobs none started ahead of (null before enough starts).
   */
  basis: {
    startsPerSecond: number | null; medianRunMs: number; ahead: number; startLatencyMs: number | null;
    /** The job's limit holds it (`EtaQuery.hold`), and decides its start: its rate, or its concurrency. Absent: not held. */
    held?: EtaHold['reason'];
  };
  /**
   * `start` and `finish` are the earliest the job can start and finish: the
   * jobs ahead were not all counted (the count stops at a bound, the
   * advisor's AHEAD_READ_LIMIT: at least `basis.ahead` wait ahead), or its
   * limit's rate holds it (`basis.held` 'rate': no start before the next the
   * rate allows, and the key's own jobs waiting ahead of it, not counted, may
   * take the starts after).
   */
  lowerBound: boolean;
}

export type AnomalyMetric = 'failure-rate' | 'duration';

/** A change in a type's failure rate or run time. */
export interface Anomaly {
  type: string;
  queue: string;
  metric: AnomalyMetric;
  /** The level before (failure fraction, or ms) and the level now. */
  baseline: number;
  observed: number;
  /** When it was detected (the `at` of the event that tipped it). */
  at: number;
}

export type SignatureVerdict = 'learning' | 'hopeless' | 'transient';

export interface SignatureInsight {
  signature: string;
  /** Failures seen with this signature. */
  failures: number;
  /** Of those retried: how many retries then succeeded, and how many failed again while other jobs of the type succeeded (decayed counts). */
  recovered: number;
  hopeless: number;
  /** The posterior mean chance that a retry after this failure succeeds. */
  pRecover: number;
  verdict: SignatureVerdict;
  /** Time from the run's first failure to the start of the attempt that succeeded. */
  recoveryMs: { count: number; p50: number; p90: number } | null;
}

export interface TypeInsight {
  type: string;
  queue: string;
  /** The handler timeout of the pair's newest job seen (null: that job is gone). */
  timeoutMs: number | null;
  /** Attempts that ended: succeeded, failed, lease expired or cut short at a worker's shutdown (timed or not: `runMs.count` are the timed). */
  attempts: number;
  /** Of those, attempts that failed (a lease expiry and a shutdown's cut included). */
  failures: number;
  /** Run times of the timed attempts (not lease expiries nor shutdown cuts). */
  runMs: { count: number; p50: number; p90: number; p99: number } | null;
  lease: LeaseAdvice | null;
  signatures: SignatureInsight[];
  anomalies: Anomaly[];
  /** What the advisor would change (advise) or changes (enforce), in words. */
  changes: string[];
}

export interface Insights {
  mode: AdvisorMode;
  /** Committed events learned from. */
  events: number;
  types: TypeInsight[];
}

/** The learning settings (defaults in model.ts). */
export interface ModelOptions {
  /** Retried failures of a signature needed before any verdict. */
  minEvidence: number;
  /** A signature is hopeless when P(chance of recovery > hopelessBelow) < 1 - credibility. */
  hopelessBelow: number;
  credibility: number;
  /** Recovered runs needed before retries are scheduled from recovery times. */
  minRecoveries: number;
  /** Timed attempts needed before a lease is suggested. */
  minRunSamples: number;
  /** The suggested lease is this multiple of the p99 run time... */
  leaseMultiple: number;
  /** ...and at least this, and never more than the static lease. */
  minLeaseMs: number;
  staticLeaseMs: number;
  staticHeartbeatMs: number;
  /** Bounds on memory: jobs tracked between their events, type/queue pairs, signatures per pair. */
  maxTrackedJobs: number;
  maxKeys: number;
  maxSignaturesPerKey: number;
  /**
   * A signature's evidence (retries that recovered or failed again) halves every this
   * many ms of event time, so a verdict follows a change of cause, and a
   * hopeless signature, no longer retried (its failures are then the
   * advisor's own decisions, never evidence), falls back to the static
   * policy now and then to be tested again. A retry that recovered within this
   * long keeps its signature from being hopeless. 0 or Infinity: never forgotten.
   */
  evidenceHalfLifeMs?: number;
  /** A signature's evidence is scaled down to at most this many retries (one long outage cannot outweigh everything after it). */
  maxEvidence?: number;
  /** Recovery times kept per signature (the most recent). */
  maxRecoverySamples?: number;
}
