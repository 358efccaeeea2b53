/**
 * The advisor's learning core: policies learned from each (job type, queue)
 * pair's own history, fed committed job events in id order. Pure: no clock,
 * no randomness, no I/O (time is each event's `at`, or the query's `at` /
 * `now`), and bounded memory (see `ModelOptions`).
 *
 * What it learns per pair:
 * - Runs. A run begins at SUBMITTED or REDRIVE and ends at done, dead or
 *   cancelled. Each live job is tracked (LRU, at most `maxTrackedJobs`): its
 *   current attempt's start, the signatures of its run's retried failures and
 *   the failure whose retry has not ended yet.
 * - Hopeless signatures. A failure whose event went to `retrying` is a retried
 *   failure of its signature (signature.ts; a lease expiry has a fixed one).
 *   Each retry is one piece of evidence, counted when it ends (per retry, not
 *   per run: the question the advisor answers at a failure is whether the
 *   retry it would make recovers): a retry that succeeds counts one
 *   `recovered`, one that fails again (a lease expiry included) one
 *   `hopeless` for the signature of the failure it retried, but only if an
 *   attempt of its pair succeeded since that failure (while the whole type
 *   fails, an outage of a dependency, a failed retry says nothing of the
 *   signature on a healthy day: the retries after the outage recover). A
 *   retry whose run is cancelled before it ends counts nothing. A failure
 *   the advisor decided (`error.decidedBy === 'advisor'`) is never evidence,
 *   nor does it count against the retry before it. Evidence fades
 *   (`evidenceHalfLifeMs`) and is capped (`maxEvidence`). Verdict on
 *   Beta(1 + recovered, 1 + hopeless): `learning` below `minEvidence`
 *   retries, `hopeless` when P(chance of recovery < hopelessBelow) >=
 *   credibility and no retry recovered within one half-life
 *   (`recoveredLately`, from the time of its last recovery, not the counts:
 *   the cap scales those down), else `transient`. Only `hopeless` stops
 *   retries.
 * - Recovery times: from a run's first failure to the start of the attempt
 *   that succeeded, per signature retried in the run (the last
 *   `maxRecoverySamples`). Runs whose retry delay the advisor chose (a FAILED
 *   with `delayMs`) or that were tracked from the middle give no sample: the
 *   advisor must not learn its own delays back.
 * - Run times (SUCCEEDED or FAILED minus STARTED; a lease expiry is a crash,
 *   not a run time, nor is an attempt its worker cut short at shutdown) in a
 *   t-digest whose weights halve every `RUN_WINDOW`
 *   samples (recent attempts count most), compressed deterministically (the
 *   library's own compression shuffles with Math.random).
 * - Per queue, for ETAs: an exponentially weighted rate of STARTED events
 *   (time constant 60 s of event time), and the attempts running with the
 *   rate they free their slots (each one start per mean run time of its pair).
 * - Anomalies: failure-rate and run-time change detectors (anomaly.ts).
 *
 * The retry-delay rule (`adviseFailure`), for a `transient` signature with at
 * least `minRecoveries` recovery samples and an exponential policy: aim the
 * retry at the run's first failure + the p75 recovery time, capped at the
 * policy's `maxMs`; advise it only when that delay is at least the static
 * policy's ceiling for this retry (`min(maxMs, baseMs * 2^(n-1))`, the
 * longest the static draw could be). So an advised retry is never earlier
 * than the static one would be: while a failure persists, a job never uses
 * up its attempts faster than under its own policy. Otherwise (the recovery
 * is usually quicker than the curve, a fixed policy, attempts exhausted, too
 * little evidence) `delayMs` is left out and the static policy stands.
 */
import { TDigest } from 'tdigest';
import { betaCdf } from './beta.js';
import type { BackoffPolicy } from '../../machines/backoff.js';
import { TERMINAL_STATES, type FailureError, type JobEvent, type JobInput, type JobState } from '../../machines/job.machine.js';
import type { StreamEventRecord } from '../ports.js';
import { attemptsToEnd } from '../limits.js';
import { DurationDetector, FailureRateDetector } from './anomaly.js';
import { errorSignature, LEASE_EXPIRED_SIGNATURE, WORKER_SHUTDOWN_ERROR_NAME, WORKER_SHUTDOWN_SIGNATURE } from './signature.js';
import type {
  AdvisorMode, Anomaly, Eta, EtaHold, EtaQuery, FailureAdvice, FailureQuery, Insights, LeaseAdvice, ModelOptions,
  SignatureInsight, SignatureVerdict, TypeInsight,
} from './types.js';

export const DEFAULT_MODEL_OPTIONS: Readonly<Required<ModelOptions>> = Object.freeze({
  // 20 retries before any verdict; with hopelessBelow 10% and credibility
  // 95%, a signature that never recovers is hopeless after 28 retries that
  // failed while others of their type succeeded (0 of 28: P(p < 10%) =
  // 1 - 0.9^29 = 95.3%): 4 jobs of 8 attempts, 14 of 3. A retry that recovers
  // 30% of the time is judged hopeless with a chance of 0.7^28 (5 in
  // 100,000), one that recovers 10% with 0.9^28 (5%): the bar is for failures
  // that do not recover. At 58 (5%) the simulator's permanent failures took
  // 50-80 simulated minutes each to learn (bench/ADVISOR.md), too slow to
  // halve the wasted attempts; so did 28 counted per run (one per job,
  // however many retries it failed: 28 jobs before the first stop).
  minEvidence: 20,
  hopelessBelow: 0.1,
  credibility: 0.95,
  // A p75 from fewer than 20 recoveries would mostly be noise.
  minRecoveries: 20,
  // A p99 from 50 samples is about their maximum; the lease is 4 × that, and a
  // longer run still keeps its lease by heartbeating. At 200 a type running a
  // few jobs a minute took nearly two simulated hours to get a lease.
  minRunSamples: 50,
  // Lease = 4 × p99 run time, at least 5 s (a heartbeat every 1.6 s rides out
  // event-loop stalls and clock steps), at most a third of the configured
  // lease (leaseFor), with a heartbeat at a third of the lease.
  leaseMultiple: 4,
  minLeaseMs: 5_000,
  staticLeaseMs: 30_000,
  staticHeartbeatMs: 10_000,
  // Memory, worst case: ~350 bytes per tracked job (35 MB), and per pair
  // ~110 KB (a digest of ≤ 500 centroids, 50 signatures of ≤ 200 characters
  // with 100 recovery times each), 55 MB for 500 pairs; typically far less.
  maxTrackedJobs: 100_000,
  maxKeys: 500,
  maxSignaturesPerKey: 50,
  // Six hours: evidence fades by 11% an hour, so a verdict follows a change
  // of cause within hours; once enforced (a hopeless signature is no longer
  // retried, so no new evidence comes), it drops back below the bar and the
  // static policy is tried on a few retries (~3 an hour at the bar of 28),
  // testing whether the cause is gone. The cap of 100 retries keeps a verdict
  // from outliving its cause by more than ~11 h (100 fade to 28).
  evidenceHalfLifeMs: 6 * 3_600_000,
  maxEvidence: 100,
  maxRecoverySamples: 100,
}) as Required<ModelOptions>;

/** Run-time samples after which the digest's weights halve. */
export const RUN_WINDOW = 10_000;
/**
 * A pair (or a queue's start rate) without an event for this long (event time)
 * gives its place to a new one once `maxKeys` are taken: the set of job types
 * changes over months, and a process must not stop learning new ones. Busy
 * pairs are never pushed out (a new pair waits), so they never lose what they
 * learned to churn.
 */
export const PAIR_IDLE_MS = 3_600_000;
/** The time constant of a queue's start rate (ms of event time). */
export const START_RATE_TAU_MS = 60_000;
/** Start latencies kept per queue (the newest), and how many before an ETA uses their median. */
const START_LATENCY_SAMPLES = 200;
const MIN_START_LATENCY_SAMPLES = 10;
/** Anomalies kept per pair, and waiting for `takeAnomalies`. */
const RECENT_ANOMALIES = 10;
const PENDING_ANOMALIES = 1_000;
/** Jobs whose run ended remembered (with their last seq) to ignore a repeated event. */
const RECENTLY_ENDED = 10_000;
/** Distinct retried signatures remembered per run. */
const RUN_SIGNATURES = 16;
const DIGEST_DELTA = 0.02;
/** A digest is re-compressed above this many centroids (at delta 0.02 it settles at 250-400), at most every 100 samples. */
const DIGEST_MAX_CENTROIDS = 500;
/** From the machine (its `terminal` tag), not restated. */
const TERMINAL: ReadonlySet<JobState> = new Set<JobState>(TERMINAL_STATES);
const WAITING: ReadonlySet<JobState> = new Set<JobState>(['pending', 'published', 'retrying']);

interface SignatureStats {
  /** The signature (one string shared by every run that retried it). */
  signature: string;
  failures: number;
  /** Decayed retry counts (recovered, failed again), as of `evidenceAt`. */
  recovered: number;
  hopeless: number;
  evidenceAt: number;
  /** When a retry of it last recovered; null before any. */
  lastRecoveryAt: number | null;
  /** Recovery times (ms), a ring of the most recent. */
  recovery: number[];
  recoveryNext: number;
}

interface Pair {
  type: string;
  queue: string;
  /** Attempts ended (succeeded, failed, lease expired, cut short at shutdown), and of them failed. */
  ended: number;
  failures: number;
  runTimes: RunTimes;
  signatures: Map<string, SignatureStats>;
  failureRate: FailureRateDetector;
  duration: DurationDetector;
  anomalies: Anomaly[];
  /** The backoff policy of the pair's last submitted job (for insights). */
  backoff: BackoffPolicy | null;
  /** When an attempt of the pair last succeeded (-Infinity before any). */
  lastSuccessAt: number;
  /** The newest job of the pair seen in the events (the greatest id: ids sort by creation time). */
  newestJobId: string;
  /** The latest event time of the pair (an idle pair gives its place to a new one, PAIR_IDLE_MS). */
  lastAt: number;
}

/** A live job between its events: its current attempt and what its current run did so far. */
interface TrackedJob {
  pair: Pair;
  seq: number;
  attempt: number;
  startedAt: number | null;
  /** The run's first failure. */
  firstFailureAt: number | null;
  /** The run's retried signatures (for recovery times), distinct; null before any. */
  retried: string[] | null;
  /** No recovery-time sample from this run: tracked from its middle, or a delay the advisor chose. */
  untimed: boolean;
  /** The retried failure whose retry has not ended yet: its signature and when it failed. */
  awaiting: { signature: string; at: number } | null;
  /** When its run became due (submitted, or its runAt), until its first start: the start latency's sample. */
  dueAt: number | null;
  /** While an attempt runs: the starts a second its slot gives its queue (1 / its pair's mean run time), else 0. */
  slotRate: number;
  /** The queue rate that counts its slot (the one of when it started, made again since if idle), else null. */
  slotOf: StartRate | null;
}

interface StartRate {
  weight: number;
  last: number;
  /** The last `START_LATENCY_SAMPLES` waits from a run's due time to its first start (of runs none started ahead of), a ring. */
  latencies: number[];
  latencyNext: number;
  /**
   * The queue's running attempts tracked, and the starts a second they give it as they end (the
   * sum of their `slotRate`s): Little's law, for a backlog that formed faster than `weight` follows.
   */
  running: number;
  slotsPerSecond: number;
}

export class AdvisorModel {
  private readonly opts: Required<ModelOptions>;
  private readonly pairs = new Map<string, Pair>();
  private readonly jobs = new Map<string, TrackedJob>();
  /** The last seq of jobs whose run ended lately, so a repeated final event is not learned twice. */
  private readonly ended = new Map<string, number>();
  private readonly startRates = new Map<string, StartRate>();
  private pending: Anomaly[] = [];
  private seen = 0;
  /** The latest event time seen (insights judge evidence as of then). */
  private lastAt = 0;

  constructor(opts?: Partial<ModelOptions>) {
    this.opts = { ...DEFAULT_MODEL_OPTIONS };
    for (const [k, v] of Object.entries(opts ?? {})) if (v !== undefined) (this.opts as unknown as Record<string, unknown>)[k] = v;
  }

  get eventsSeen(): number {
    return this.seen;
  }

  /** How many jobs are tracked between their events (at most `maxTrackedJobs`). */
  get trackedJobs(): number {
    return this.jobs.size;
  }

  /** Learn from one committed event; events arrive in id order (a job's in seq order). */
  observe(e: StreamEventRecord): void {
    let job = this.jobs.get(e.jobId);
    if (e.seq <= (job?.seq ?? this.ended.get(e.jobId) ?? 0)) return; // seen already
    this.seen += 1;
    if (e.at > this.lastAt) this.lastAt = e.at;
    // The queue's latest start before this one: a job due before it waited behind the jobs started meanwhile.
    const startedBefore = e.type === 'STARTED' ? (this.startRates.get(e.queue)?.last ?? -Infinity) : -Infinity;
    if (e.type === 'STARTED') this.countStart(e.queue, e.at);
    const pair = this.pairOf(e.jobType, e.queue, e.at);
    if (job && job.pair !== pair) {
      // Its pair, idle, gave its place to another meanwhile: what was tracked of the job went with it.
      this.release(job);
      this.jobs.delete(e.jobId);
      job = undefined;
    }
    if (!pair) return;
    if (e.jobId > pair.newestJobId) pair.newestJobId = e.jobId;

    if (e.type === 'SUBMITTED' || e.type === 'REDRIVE') {
      const input = e.type === 'SUBMITTED' ? (e.data as JobInput) : null;
      if (input) pair.backoff = input.backoff ?? null;
      const dueAt = input ? Math.max(e.at, input.runAt ?? e.at) : null;
      if (job) this.release(job);
      job = { pair, seq: e.seq, attempt: 0, startedAt: null, firstFailureAt: null, retried: null, untimed: false, awaiting: null, dueAt, slotRate: 0, slotOf: null };
    } else if (!job && !TERMINAL.has(e.to)) {
      // Tracked from the middle of a run (evicted, or before the history read).
      job = { pair, seq: e.seq, attempt: 0, startedAt: null, firstFailureAt: null, retried: null, untimed: true, awaiting: null, dueAt: null, slotRate: 0, slotOf: null };
    }

    const data = e.data as JobEvent;
    switch (data.type) {
      case 'STARTED':
        if (job) {
          job.attempt = data.attempt;
          job.startedAt = e.at;
          // A wait from due to start only of a job none started ahead of (no start of its queue since it was due): a
          // wait behind other jobs is the jobs ahead's (a burst's last job waits for the whole burst), counted as such.
          if (job.dueAt !== null && !(startedBefore > job.dueAt)) this.countStartLatency(e.queue, Math.max(0, e.at - job.dueAt));
          job.dueAt = null;
          this.hold(job);
        }
        break;
      case 'SUCCEEDED':
        this.attemptEnded(pair, job, data.attempt, e.at, false, true);
        if (job?.awaiting) this.retryEnded(pair, job, true, e.at);
        break;
      case 'FAILED': {
        const error: Partial<FailureError> = data.error ?? {};
        if (error.name === WORKER_SHUTDOWN_ERROR_NAME) {
          this.interrupted(pair, e.at);
          break;
        }
        this.attemptEnded(pair, job, data.attempt, e.at, true, true);
        this.failed(pair, job, e, errorSignature({ name: error.name, message: String(error.message ?? '') }), error.decidedBy === 'advisor', data.delayMs !== undefined);
        break;
      }
      case 'LEASE_EXPIRED':
        this.attemptEnded(pair, job, data.attempt, e.at, true, false);
        this.failed(pair, job, e, LEASE_EXPIRED_SIGNATURE, false, false);
        break;
    }

    if (job && e.to !== 'running') this.release(job);
    if (TERMINAL.has(e.to)) {
      if (job) this.runEnded(job, e);
      this.jobs.delete(e.jobId);
      this.ended.delete(e.jobId);
      this.ended.set(e.jobId, e.seq);
      if (this.ended.size > RECENTLY_ENDED) this.ended.delete(this.ended.keys().next().value!);
    } else if (job) {
      this.ended.delete(e.jobId);
      job.seq = e.seq;
      this.jobs.delete(e.jobId); // re-inserted last: the map's order is least recently seen first
      this.jobs.set(e.jobId, job);
      if (this.jobs.size > this.opts.maxTrackedJobs) {
        const [oldest, evicted] = this.jobs.entries().next().value!;
        this.release(evicted);
        this.jobs.delete(oldest);
      }
    }
  }

  /** A started attempt takes a slot of its queue: its turnover, from its pair's mean run time. */
  private hold(job: TrackedJob): void {
    this.release(job);
    const r = this.startRates.get(job.pair.queue);
    const meanMs = job.pair.runTimes.mean();
    if (!r || !(meanMs > 0)) return;
    job.slotRate = 1000 / Math.max(meanMs, 1);
    job.slotOf = r;
    r.running += 1;
    r.slotsPerSecond += job.slotRate;
  }

  /** The attempt ended (or the job is no longer tracked): its slot is free. */
  private release(job: TrackedJob): void {
    const rate = job.slotRate;
    const r = job.slotOf;
    if (r === null) return;
    job.slotRate = 0;
    job.slotOf = null;
    // Freed where it was counted: a rate pushed out meanwhile is no longer read, one made again for
    // the queue since counts only the attempts started after.
    r.running -= 1;
    r.slotsPerSecond = r.running === 0 ? 0 : Math.max(0, r.slotsPerSecond - rate);
  }

  /** Advice for a failure about to be recorded (does not change the model). */
  adviseFailure(q: FailureQuery): FailureAdvice {
    const signature = errorSignature(q.error);
    const stats = this.pairs.get(pairKey(q.type, q.queue))?.signatures.get(signature);
    // No retry would follow anyway: nothing to advise.
    if (!stats || q.attemptInRun >= q.maxAttempts) return { signature };
    const judged = this.judge(stats, q.at);
    if (judged.verdict === 'hopeless') {
      return {
        signature,
        retryable: false,
        reason: `no retry after \`${signature}\`: recovered in ${count(judged.recovered)} of ${count(judged.recovered + judged.hopeless)} retries`,
      };
    }
    if (judged.verdict !== 'transient' || stats.recovery.length < this.opts.minRecoveries) return { signature };
    const p75 = quantile(stats.recovery, 0.75);
    const tracked = this.jobs.get(q.jobId);
    const firstFailureAt = tracked?.firstFailureAt ?? q.at;
    const delayMs = recoveryDelay(q.backoff, q.attemptInRun, firstFailureAt + p75 - q.at);
    if (delayMs === null) return { signature };
    return {
      signature,
      delayMs,
      reason: `retry after ${ms(delayMs)}: \`${signature}\` recovered within ${ms(p75)} of the first failure in 75% of ${stats.recovery.length} runs`,
    };
  }

  /** A lease sized from the pair's run times; null until `minRunSamples` attempts were timed. */
  leaseFor(type: string, queue: string): LeaseAdvice | null {
    const pair = this.pairs.get(pairKey(type, queue));
    if (!pair || pair.runTimes.count < this.opts.minRunSamples) return null;
    const p99Ms = pair.runTimes.quantile(0.99);
    const { leaseMultiple, minLeaseMs, staticLeaseMs, staticHeartbeatMs } = this.opts;
    // At most a third of the static lease: a type whose runs outlast it keeps it by heartbeating
    // (every third of the lease), so even the longest types are recovered 3× sooner after a crash.
    // Never below minLeaseMs (a static lease under 3 × minLeaseMs then gets minLeaseMs), nor above the static one.
    const leaseMs = Math.ceil(Math.min(staticLeaseMs, Math.max(minLeaseMs, Math.min(staticLeaseMs / 3, leaseMultiple * p99Ms))));
    return { leaseMs, heartbeatMs: Math.min(staticHeartbeatMs, Math.floor(leaseMs / 3)), p99Ms, samples: Math.round(pair.runTimes.count) };
  }

  /** A live job's predicted start and finish; null without run times for its pair (or a start rate, when jobs are ahead). */
  eta(q: EtaQuery): Eta | null {
    const pair = this.pairs.get(pairKey(q.type, q.queue));
    if (!pair || pair.runTimes.count === 0 || TERMINAL.has(q.state)) return null;
    const medianRunMs = pair.runTimes.quantile(0.5);
    const startsPerSecond = this.startRate(q.queue, q.now);
    const startLatencyMs = this.startLatency(q.queue);
    const basis = { startsPerSecond, medianRunMs, ahead: q.ahead, startLatencyMs };
    if (q.state === 'running') {
      const start = q.startedAt ?? q.now;
      // The median of the run times longer than what this attempt has run already.
      return { start, finish: Math.max(q.now, Math.round(start + pair.runTimes.medianBeyond(q.now - start))), basis, lowerBound: false };
    }
    if (!WAITING.has(q.state)) return null;
    // After the jobs ahead of it have started (at the queue's rate from now), and not before it is due.
    // For a job due later (a retry, a delayed job) whose `ahead` are the jobs it will find in its lane
    // when due, the same: the backlog it meets is those less the ones started by its due time, never
    // below zero, max(0, ahead - rate × (runAt - now)), which take (that / rate) after it:
    // runAt + max(0, ahead / rate - (runAt - now)) = max(runAt, now + ahead / rate). Jobs that come
    // meanwhile (submitted, or due before it) are not foreseen, as for a job due now.
    // A job its limit holds: the limit decides, not the queue. The queue's jobs ahead may be the key's
    // own, held too, and the queue's start rate is what the limit holds it down to: a start predicted from
    // them slides later at every read while the limit holds (and came after the real start).
    const hold = q.hold ?? null;
    let start = Math.max(q.runAt, q.now);
    if (hold) start = Math.max(start, this.heldUntil(hold, medianRunMs, q.now));
    else if (q.ahead > 0) {
      if (!startsPerSecond) return null;
      start = Math.max(start, q.now + Math.round((q.ahead / startsPerSecond) * 1000));
    }
    // No sooner than the queue's usual wait from due to start (dispatch, a worker taking it): with
    // nothing ahead, that wait is most of a short job's time to finish.
    if (startLatencyMs !== null) start = Math.max(start, Math.round(q.runAt + startLatencyMs));
    // A lower bound: the count of the jobs ahead stopped at its bound; or the job's rate holds it, which allows no
    // start before `until`, and may give the key's own jobs waiting ahead of it (not counted) the starts after.
    // Not for a concurrency hold: when a slot frees is an estimate, which may come sooner or later.
    const lowerBound = hold ? hold.reason === 'rate' : q.aheadAtLeast === true;
    return { start, finish: Math.round(start + medianRunMs), basis: hold ? { ...basis, held: hold.reason } : basis, lowerBound };
  }

  /**
   * When its limit lets a held job start. Its rate: at `until`, the next
   * start the rate allows (the limit's own answer). Its concurrency: once
   * enough of the key's `running` attempts end to leave a slot (one; more when
   * the limit was lowered below what runs), and not before its rate allows
   * (`notBefore`). Each attempt is taken to run a median run time of the job's
   * type (the key's attempts may be of other types: this one's is what was
   * learned), so they end in the order they started: the last of those that
   * must end is the `toEnd`-th started, ending a median after its start (`startedAt`),
   * or now if that is past (it overran: it may end any moment). When the
   * starts were not read, the `running` attempts end one every median /
   * running from now, the rule the queue's slots follow (later at each read).
   * An estimate (an attempt may end sooner or later), not a bound. Either way
   * the key's jobs waiting ahead of it, which would take that start first,
   * are not counted.
   */
  private heldUntil(hold: EtaHold, medianRunMs: number, now: number): number {
    if (hold.reason === 'rate') return hold.until;
    const running = Math.max(1, hold.running);
    const toEnd = attemptsToEnd(running, hold.concurrency);
    const last = hold.startedAt?.[toEnd - 1];
    const frees = last !== undefined ? Math.max(now, Math.round(last + medianRunMs)) : now + Math.round((toEnd * medianRunMs) / running);
    return Math.max(hold.notBefore ?? now, frees);
  }

  /** Anomalies detected since the last call (each reported once). */
  takeAnomalies(): Anomaly[] {
    const taken = this.pending;
    this.pending = [];
    return taken;
  }

  /** The pairs learned so far (type, queue), each with the id of its newest job seen. */
  pairList(): Array<{ type: string; queue: string; newestJobId: string }> {
    return [...this.pairs.values()].map((p) => ({ type: p.type, queue: p.queue, newestJobId: p.newestJobId }));
  }

  /**
   * What was learned, per pair. `timeoutOf` gives a pair's handler timeout
   * (the jobs carry it, the events do not), to flag one far from the run times.
   */
  insights(mode: AdvisorMode, timeoutOf: (type: string, queue: string) => number | null = () => null): Insights {
    const types: TypeInsight[] = [];
    for (const pair of this.pairs.values()) types.push(this.typeInsight(pair, mode, timeoutOf(pair.type, pair.queue)));
    types.sort((a, b) => compare(a.type, b.type) || compare(a.queue, b.queue));
    return { mode, events: this.seen, types };
  }

  // ------------------------------------------------------------ learning

  /**
   * The pair's state, seen at `at`; created when new. Once `maxKeys` pairs exist, a new one takes
   * the place of the least recently seen if that one is idle (PAIR_IDLE_MS), else it is not learned (null).
   */
  private pairOf(type: string, queue: string, at: number): Pair | null {
    const key = pairKey(type, queue);
    let pair = this.pairs.get(key);
    if (pair) {
      this.pairs.delete(key); // re-inserted last: the map's order is least recently seen first
    } else {
      if (this.pairs.size >= this.opts.maxKeys) {
        const idle = evictIdle(this.pairs, at, (p) => p.lastAt);
        if (!idle) return null;
        // A job of it tracked still holds it until its next event: only what is small stays.
        idle.signatures.clear();
        idle.runTimes = new RunTimes();
        idle.anomalies = [];
      }
      pair = {
        type, queue, ended: 0, failures: 0, runTimes: new RunTimes(), signatures: new Map(),
        failureRate: new FailureRateDetector(), duration: new DurationDetector(), anomalies: [], backoff: null, lastSuccessAt: -Infinity,
        newestJobId: '', lastAt: at,
      };
    }
    if (at > pair.lastAt) pair.lastAt = at;
    this.pairs.set(key, pair);
    return pair;
  }

  /** A STARTED of the queue at `at` (a new queue, once `maxKeys` exist, as a new pair in `pairOf`). */
  private countStart(queue: string, at: number): void {
    const r = this.startRates.get(queue);
    if (!r) {
      if (this.startRates.size < this.opts.maxKeys || evictIdle(this.startRates, at, (q) => q.last) !== undefined) {
        this.startRates.set(queue, { weight: 1, last: at, latencies: [], latencyNext: 0, running: 0, slotsPerSecond: 0 });
      }
      return;
    }
    if (at >= r.last) {
      r.weight = r.weight * Math.exp(-(at - r.last) / START_RATE_TAU_MS) + 1;
      r.last = at;
    } else {
      r.weight += Math.exp(-(r.last - at) / START_RATE_TAU_MS); // committed out of time order
    }
    this.startRates.delete(queue); // re-inserted last: least recently started first
    this.startRates.set(queue, r);
  }

  /** A submitted job's wait from its due time to its first start (after `countStart` of the same event). */
  private countStartLatency(queue: string, ms: number): void {
    const r = this.startRates.get(queue);
    if (!r) return;
    r.latencyNext = ringPush(r.latencies, r.latencyNext, ms, START_LATENCY_SAMPLES);
  }

  /** The queue's median start latency lately; null before `MIN_START_LATENCY_SAMPLES` starts. */
  private startLatency(queue: string): number | null {
    const r = this.startRates.get(queue);
    return r && r.latencies.length >= MIN_START_LATENCY_SAMPLES ? quantile(r.latencies, 0.5) : null;
  }

  /**
   * Starts per second at `now`; null for a queue never seen starting. The larger of two: the
   * queue's recent start rate (an average over about a minute, which a backlog that just formed,
   * a burst submitted at once, has not reached yet), and the rate its running attempts free their
   * slots (each one start per mean run time of its type), which a backlog's starts follow.
   */
  private startRate(queue: string, now: number): number | null {
    const r = this.startRates.get(queue);
    if (!r) return null;
    const recent = (r.weight * Math.exp(-Math.max(0, now - r.last) / START_RATE_TAU_MS)) / (START_RATE_TAU_MS / 1000);
    const rate = Math.max(recent, r.slotsPerSecond);
    return rate < 1e-6 ? 0 : rate;
  }

  private attemptEnded(pair: Pair, job: TrackedJob | undefined, attempt: number, at: number, failed: boolean, timed: boolean): void {
    pair.ended += 1;
    if (failed) pair.failures += 1;
    else pair.lastSuccessAt = Math.max(pair.lastSuccessAt, at);
    // The failure rate is that of runs' first attempts: a job failing for good fails every retry
    // within a minute, which would look like a rise; one point per job does not.
    if (job && job.firstFailureAt === null) {
      const rate = pair.failureRate.observe(failed);
      if (rate) this.anomaly(pair, 'failure-rate', rate.baseline, rate.observed, at);
    }
    if (!timed || !job || job.startedAt === null || job.attempt !== attempt) return;
    const runMs = Math.max(0, at - job.startedAt);
    pair.runTimes.push(runMs);
    const duration = pair.duration.observe(runMs);
    if (duration) this.anomaly(pair, 'duration', duration.baseline, duration.observed, at);
  }

  private anomaly(pair: Pair, metric: Anomaly['metric'], baseline: number, observed: number, at: number): void {
    const a: Anomaly = { type: pair.type, queue: pair.queue, metric, baseline, observed, at };
    pair.anomalies.push(a);
    if (pair.anomalies.length > RECENT_ANOMALIES) pair.anomalies.shift();
    this.pending.push(a);
    if (this.pending.length > PENDING_ANOMALIES) this.pending.shift();
  }

  private failed(pair: Pair, job: TrackedJob | undefined, e: StreamEventRecord, signature: string, byAdvisor: boolean, advisorDelay: boolean): void {
    const stats = this.signature(pair, signature, e.at);
    stats.failures += 1;
    if (!job) return;
    job.firstFailureAt ??= e.at;
    if (advisorDelay) job.untimed = true;
    // The retry of the previous failure failed too (a lease expiry included): evidence, unless
    // the advisor decided this failure (it never feeds on its own decisions).
    if (job.awaiting && !byAdvisor) this.retryEnded(pair, job, false, e.at);
    job.awaiting = null;
    if (byAdvisor || e.to !== 'retrying') return;
    job.awaiting = { signature: stats.signature, at: e.at };
    job.retried ??= [];
    if (!job.retried.includes(stats.signature) && job.retried.length < RUN_SIGNATURES) job.retried.push(stats.signature);
  }

  /**
   * An attempt its worker cut short at shutdown (a deploy): counted as a
   * failure of its pair and of one signature, whichever worker it was, but no
   * evidence of anything: not a run time, not a point of the failure rate,
   * and the retry it interrupted still awaits its verdict (the next attempt
   * gives it), as a cancelled run gives none.
   */
  private interrupted(pair: Pair, at: number): void {
    pair.ended += 1;
    pair.failures += 1;
    this.signature(pair, WORKER_SHUTDOWN_SIGNATURE, at).failures += 1;
  }

  /** The stats of a signature, created (evicting the least recently failed one) when new. */
  private signature(pair: Pair, signature: string, at: number): SignatureStats {
    let stats = pair.signatures.get(signature);
    if (stats) {
      pair.signatures.delete(signature); // re-inserted last: least recently failed first
    } else {
      stats = { signature, failures: 0, recovered: 0, hopeless: 0, evidenceAt: at, lastRecoveryAt: null, recovery: [], recoveryNext: 0 };
      if (pair.signatures.size >= this.opts.maxSignaturesPerKey) pair.signatures.delete(pair.signatures.keys().next().value!);
    }
    pair.signatures.set(stats.signature, stats);
    return stats;
  }

  /** A run ended: a recovered one gives its recovery time to each signature it retried (the evidence is counted per retry). */
  private runEnded(job: TrackedJob, e: StreamEventRecord): void {
    const { retried, pair } = job;
    if (e.to !== 'done' || !retried || job.untimed || job.firstFailureAt === null || job.startedAt === null) return;
    const recoveryMs = Math.max(0, job.startedAt - job.firstFailureAt);
    for (const signature of retried) {
      const stats = pair.signatures.get(signature) ?? this.signature(pair, signature, e.at);
      stats.recoveryNext = ringPush(stats.recovery, stats.recoveryNext, recoveryMs, this.opts.maxRecoverySamples);
    }
  }

  /**
   * The retry of the job's awaited failure ended: recovered, or failed again. A failed retry is
   * hopeless evidence only if another attempt of its pair succeeded since the failure it retried:
   * while the whole type fails (a dependency's outage), a failed retry says nothing of the failure.
   */
  private retryEnded(pair: Pair, job: TrackedJob, recovered: boolean, at: number): void {
    const awaited = job.awaiting!;
    job.awaiting = null;
    if (!recovered && pair.lastSuccessAt <= awaited.at) return;
    const stats = pair.signatures.get(awaited.signature) ?? this.signature(pair, awaited.signature, at);
    this.addEvidence(stats, recovered, at);
  }

  private addEvidence(stats: SignatureStats, recovered: boolean, at: number): void {
    const f = this.decay(at - stats.evidenceAt);
    stats.recovered = stats.recovered * f + (recovered ? 1 : 0);
    stats.hopeless = stats.hopeless * f + (recovered ? 0 : 1);
    stats.evidenceAt = Math.max(at, stats.evidenceAt);
    if (recovered) stats.lastRecoveryAt = Math.max(at, stats.lastRecoveryAt ?? at);
    const total = stats.recovered + stats.hopeless;
    if (total > this.opts.maxEvidence) {
      stats.recovered *= this.opts.maxEvidence / total;
      stats.hopeless *= this.opts.maxEvidence / total;
    }
  }

  private decay(elapsedMs: number): number {
    const h = this.opts.evidenceHalfLifeMs;
    return elapsedMs <= 0 || !(h > 0) || h === Infinity ? 1 : 0.5 ** (elapsedMs / h);
  }

  /**
   * A retry of the signature recovered within one evidence half-life of `at` (ever, when evidence
   * is never forgotten): then it is not hopeless, whatever the bar says. Counted per retry, the bar
   * judges the chance that the next retry recovers; a failure whose retries recover a few percent
   * each can pass it while, over the job's remaining attempts, many of its runs still end done.
   * Only a failure that has not recovered lately is stopped. Judged by the time of the recovery,
   * not by the decayed count: the `maxEvidence` cap scales that count down with every failed retry,
   * so a busy signature would forget a recovery of a minute ago.
   */
  private recoveredLately(stats: SignatureStats, at: number): boolean {
    if (stats.lastRecoveryAt === null) return false;
    const h = this.opts.evidenceHalfLifeMs;
    return !(h > 0) || h === Infinity || at - stats.lastRecoveryAt <= h;
  }

  // ------------------------------------------------------------ judging

  private judge(stats: SignatureStats, at: number): { recovered: number; hopeless: number; pRecover: number; verdict: SignatureVerdict } {
    const f = this.decay(at - stats.evidenceAt);
    const recovered = stats.recovered * f;
    const hopeless = stats.hopeless * f;
    const pRecover = (1 + recovered) / (2 + recovered + hopeless);
    const verdict: SignatureVerdict =
      recovered + hopeless < this.opts.minEvidence
        ? 'learning'
        : !this.recoveredLately(stats, at) && betaCdf(this.opts.hopelessBelow, 1 + recovered, 1 + hopeless) >= this.opts.credibility
          ? 'hopeless'
          // Transient says retries help: not before one did (as counted for people, or lately: the
          // cap on counted retries scales a recovery below one with every failed retry, and a
          // recovery within one half-life keeps its recovery times in use). Short of the bar with
          // none recovered, the evidence is still out.
          : count(recovered) > 0 || this.recoveredLately(stats, at)
            ? 'transient'
            : 'learning';
    return { recovered, hopeless, pRecover, verdict };
  }

  private typeInsight(pair: Pair, mode: AdvisorMode, timeoutMs: number | null): TypeInsight {
    const changes: string[] = [];
    const signatures: SignatureInsight[] = [];
    for (const [signature, stats] of pair.signatures) {
      const j = this.judge(stats, this.lastAt);
      const recoveryMs = stats.recovery.length === 0 ? null : {
        count: stats.recovery.length, p50: Math.round(quantile(stats.recovery, 0.5)), p90: Math.round(quantile(stats.recovery, 0.9)),
      };
      signatures.push({
        signature, failures: stats.failures, recovered: count(j.recovered), hopeless: count(j.hopeless),
        pRecover: j.pRecover, verdict: j.verdict, recoveryMs,
      });
      if (j.verdict === 'hopeless') {
        changes.push(`stop retrying \`${signature}\` (${count(j.recovered)} of ${count(j.recovered + j.hopeless)} retries recovered)`);
      } else if (j.verdict === 'transient' && stats.recovery.length >= this.opts.minRecoveries && pair.backoff?.kind === 'exponential') {
        const p75 = quantile(stats.recovery, 0.75);
        const delay = recoveryDelay(pair.backoff, 1, p75);
        if (delay !== null) {
          changes.push(`retry \`${signature}\` after ~${ms(delay)} (p75 recovery over ${stats.recovery.length} runs) instead of the exponential curve`);
        }
      }
    }
    signatures.sort((a, b) => b.failures - a.failures || compare(a.signature, b.signature));
    const lease = this.leaseFor(pair.type, pair.queue);
    if (lease && lease.leaseMs < this.opts.staticLeaseMs) {
      changes.unshift(
        `lease ${thousands(lease.leaseMs)} ms instead of ${thousands(this.opts.staticLeaseMs)} ms, heartbeat every ${thousands(lease.heartbeatMs)} ms ` +
        `(p99 run time ${ms(lease.p99Ms)} over ${thousands(lease.samples)} attempts)`,
      );
    }
    const rt = pair.runTimes;
    const timeoutFlag = timeoutMs === null || rt.count < this.opts.minRunSamples ? null : timeoutNote(timeoutMs, rt.quantile(0.99));
    if (timeoutFlag) changes.push(timeoutFlag);
    return {
      type: pair.type,
      queue: pair.queue,
      timeoutMs,
      // Failures are of every ended attempt, untimed ones included (lease expiries, attempts cut
      // short or tracked from their middle): the run times' count is the timed ones.
      attempts: pair.ended,
      failures: pair.failures,
      runMs: rt.count === 0 ? null : { count: Math.round(rt.count), p50: rt.quantile(0.5), p90: rt.quantile(0.9), p99: rt.quantile(0.99) },
      lease,
      signatures,
      anomalies: [...pair.anomalies],
      changes: mode === 'off' ? [] : changes,
    };
  }
}

/** Timeouts are flagged when they are this many times the p99 run time, or more. */
export const TIMEOUT_FAR_ABOVE = 20;

/**
 * A note on a handler timeout far from the observed run times: below the p99
 * (healthy attempts time out), or `TIMEOUT_FAR_ABOVE` × p99 and more (a hung
 * attempt holds its slot that long). Null when it fits.
 */
export function timeoutNote(timeoutMs: number, p99Ms: number): string | null {
  if (timeoutMs < p99Ms) {
    return `timeout ${thousands(timeoutMs)} ms is below the p99 run time (${ms(p99Ms)}): more than 1% of healthy attempts time out`;
  }
  if (p99Ms > 0 && timeoutMs >= TIMEOUT_FAR_ABOVE * p99Ms) {
    return `timeout ${thousands(timeoutMs)} ms is ${Math.round(timeoutMs / p99Ms)}× the p99 run time (${ms(p99Ms)}): a hung attempt holds its slot that long; ` +
      `about ${ms(Math.ceil(10 * p99Ms))} would do`;
  }
  return null;
}

/**
 * The delay that lands a retry `untilRecoveryMs` from now, capped at the
 * policy's longest delay; null unless it is at least the static ceiling for
 * retry `attemptInRun` (so never earlier than the static policy), or for a
 * fixed policy (nothing to move: its one delay is its ceiling).
 */
function recoveryDelay(policy: BackoffPolicy, attemptInRun: number, untilRecoveryMs: number): number | null {
  if (policy.kind !== 'exponential' || !Number.isFinite(policy.maxMs) || !Number.isFinite(policy.baseMs)) return null;
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(attemptInRun - 1, 0), 52));
  const delay = Math.ceil(Math.min(policy.maxMs, untilRecoveryMs));
  return delay > 0 && delay >= ceiling ? delay : null;
}

/** Run times in a t-digest whose weights halve every RUN_WINDOW samples. */
class RunTimes {
  private digest = new TDigest(DIGEST_DELTA, 0);
  private sinceHalving = 0;
  private sinceRebuild = 0;
  /** The (decayed) weight of the samples, and their weighted sum. */
  count = 0;
  private sum = 0;

  push(ms: number): void {
    this.digest.push(ms);
    this.count += 1;
    this.sum += ms;
    this.sinceHalving += 1;
    this.sinceRebuild += 1;
    if (this.sinceHalving >= RUN_WINDOW) {
      this.sinceHalving = 0;
      this.rebuild(0.5);
    } else if (this.digest.size() > DIGEST_MAX_CENTROIDS && this.sinceRebuild >= 100) {
      this.rebuild(1);
    }
  }

  quantile(p: number): number {
    return this.digest.percentile(p) ?? 0;
  }

  /** The (decayed) mean; 0 before any sample. */
  mean(): number {
    return this.count > 0 ? this.sum / this.count : 0;
  }

  /** The median of the run times longer than `elapsedMs` (the conditional median of a running attempt). */
  medianBeyond(elapsedMs: number): number {
    const median = this.quantile(0.5);
    if (elapsedMs <= 0 || elapsedMs < median) return median;
    const below = this.digest.p_rank(elapsedMs) ?? 1;
    // Beyond every run seen: no better guess than a little longer than now.
    if (below >= 0.999) return elapsedMs * 1.1;
    return Math.max(elapsedMs, this.quantile(below + (1 - below) / 2));
  }

  /**
   * Re-digests the centroids (weights times `factor`) in a fixed scattered
   * order: what TDigest.compress does with a Math.random shuffle.
   */
  private rebuild(factor: number): void {
    const centroids = this.digest.toArray();
    const n = centroids.length;
    this.digest = new TDigest(DIGEST_DELTA, 0);
    this.count *= factor;
    this.sum *= factor;
    this.sinceRebuild = 0;
    let stride = Math.max(1, Math.round(n * 0.618));
    while (gcd(stride, n) !== 1) stride += 1;
    for (let i = 0, j = 0; i < n; i += 1, j = (j + stride) % n) {
      this.digest.push_centroid({ mean: centroids[j].mean, n: centroids[j].n * factor });
    }
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Removes the first (least recently seen) entry of `map` if it has been idle
 * for `PAIR_IDLE_MS` at `at` (`lastAt`: its latest event time); returns it.
 */
function evictIdle<V>(map: Map<string, V>, at: number, lastAt: (v: V) => number): V | undefined {
  const first = map.entries().next().value;
  if (!first || at - lastAt(first[1]) < PAIR_IDLE_MS) return undefined;
  map.delete(first[0]);
  return first[1];
}

/** A (type, queue) pair as one Map key: NUL cannot occur in a type or a queue name. */
export function pairKey(type: string, queue: string): string {
  return `${type}\u0000${queue}`;
}

/**
 * Adds `value` to `ring`, a buffer of at most `max` samples written at `next`
 * (the oldest replaced once full); returns the next write position.
 */
function ringPush(ring: number[], next: number, value: number, max: number): number {
  if (ring.length < max) ring.push(value);
  else ring[next] = value;
  return (next + 1) % max;
}

/** The p-quantile of `xs`, not empty (linear between order statistics). */
export function quantile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  return sorted[lo] + (h - lo) * ((sorted[Math.min(lo + 1, sorted.length - 1)] ?? sorted[lo]) - sorted[lo]);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A decayed run count, for people. */
function count(x: number): number {
  return Math.round(x);
}

function thousands(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A duration for people: `600 ms`, `8 s`, `2.5 min`, `3 h`. */
function ms(x: number): string {
  const one = (v: number) => (v < 10 ? String(Math.round(v * 10) / 10) : thousands(v));
  if (x < 1_000) return `${Math.round(x)} ms`;
  if (x < 60_000) return `${one(x / 1_000)} s`;
  if (x < 3_600_000) return `${one(x / 60_000)} min`;
  return `${one(x / 3_600_000)} h`;
}
