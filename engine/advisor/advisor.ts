/**
 * The advisor service: feeds the pure model (model.ts) with every committed
 * job event, read from the store in id order by a tail reader
 * (engine/event-tail.ts), and answers the engine.
 *
 * - Where it learns from: `job_events`, the source of truth, so every process
 *   that runs an advisor (api, worker) learns the same thing whatever process
 *   recorded an event. At start it re-reads the events among the newest `historyEvents` ids:
 *   what was learned is rebuilt after a restart, and bounded by that window.
 * - What it changes, by mode: `off` reads nothing and decides nothing;
 *   `advise` learns, shows (`insights`, `eta`, anomalies) and counts what it
 *   would change, but every decision returned to the engine is null;
 *   `enforce` returns its decisions, which the worker writes into the events
 *   the machine takes (engine/worker.ts), so replay stays exact.
 */
import { TailReader, type TailOptions } from '../event-tail.js';
import { isTerminal } from '../../machines/lifecycle.js';
import type { Clock, JobRecord, JobStore, Logger } from '../ports.js';
import { AdvisorModel, DEFAULT_MODEL_OPTIONS, pairKey } from './model.js';
import { usableLease, type AdvisorMode, type Anomaly, type Eta, type EtaHold, type FailureAdvice, type Insights, type LeaseAdvice, type ModelOptions } from './types.js';

export interface AdvisorOptions {
  mode: AdvisorMode;
  /** How often new committed events are read (ATS_ADVISOR_POLL_MS). */
  pollMs: number;
  /** The newest event ids whose events are re-read at start (that many events at most), to rebuild what was learned (ATS_ADVISOR_HISTORY). */
  historyEvents: number;
  /** The learning settings (model.ts has the defaults). */
  model?: Partial<ModelOptions>;
}

/** A decision the advisor made (enforce) or would have made (advise). */
export type DecisionKind = 'no-retry' | 'retry-delay' | 'lease';

export interface AdvisorDeps {
  store: Pick<JobStore, 'readEventsAfter' | 'eventSizesAfter' | 'lastEventId' | 'countWaitingAhead' | 'getJob'>;
  clock: Clock;
  logger: Logger;
  /**
   * Told of each anomaly, once (the stream, metrics, the log); not of those
   * found again in the history re-read at start (they were told before).
   */
  onAnomaly?(anomaly: Anomaly): void;
  /** Told of each decision, applied or not (metrics). */
  onDecision?(kind: DecisionKind, applied: boolean): void;
}

/**
 * ETA: the waiting jobs ahead of a job are counted among at most this many
 * waiting jobs (of every queue) per read of the store, two reads at most
 * (`JobStore.countWaitingAhead`); past it the ETA is a lower bound. It bounds
 * the cost of each `GET /v1/jobs/:id` (on MariaDB, about 1.5 ms a read of
 * 1,000); a client polling many jobs makes one such count per job.
 */
export const AHEAD_READ_LIMIT = 1_000;

/** How long a pair's handler timeout, read for the insights, is kept at least (even when a newer job of the pair was seen). */
const TIMEOUT_CACHE_MS = 60_000;

/**
 * Bytes of events' data one read of them takes at most (the first always
 * comes): a SUCCEEDED event carries its job's result (up to 256 KiB), and
 * the advisor reads up to 1,000 rows at a time (its history at start, and any
 * backlog after) in every api and worker process. The sizes are read first,
 * then only the rows that fit (engine/event-tail.ts `readWithin`).
 */
export const ADVISOR_READ_BYTES = 8 * 1024 * 1024;

/** Leases cached between reads, at most (one per type and queue pair). */
const MAX_CACHED_LEASES = 10_000;

export class Advisor {
  private readonly model: AdvisorModel;
  private readonly tail: TailReader;
  /** Handler timeouts per (type, queue), as last read (insights), with the job they were read from. */
  private readonly timeouts = new Map<string, { at: number; jobId: string; timeoutMs: number | null }>();
  /** The newest event id at start: anomalies found up to it are history, not news. */
  private historyUntil = 0;
  /** Leases per (type, queue) as of the last read: a claim asks per job, the model changes only when events are read. */
  private readonly leases = new Map<string, LeaseAdvice | null>();

  constructor(private readonly deps: AdvisorDeps, private readonly opts: AdvisorOptions) {
    this.model = new AdvisorModel(opts.model);
    const tailOpts: TailOptions = {
      tailBatchSize: 1000, pollMs: opts.pollMs, idlePollMs: opts.pollMs, gapTimeoutMs: 3000, gapPollMs: 50,
      startupRewindIds: opts.historyEvents, errorBackoffMs: 1000, readBytes: ADVISOR_READ_BYTES,
    };
    const { store } = deps;
    this.tail = new TailReader({
      name: 'advisor',
      read: (afterId, limit, throughId) => store.readEventsAfter(afterId, limit, throughId),
      last: () => store.lastEventId(),
      // Read only when the tail runs: an advisor `off` touches nothing of the store.
      sizes: (afterId, limit) => store.eventSizesAfter(afterId, limit),
      clock: deps.clock,
      logger: deps.logger,
      onEvents: (events) => {
        for (const e of events) {
          this.model.observe(e);
          // Found up to the newest event at start: history, told before the restart (a read may end past it).
          if (e.id <= this.historyUntil) this.model.takeAnomalies();
        }
        this.leases.clear();
        for (const a of this.model.takeAnomalies()) this.anomaly(a);
      },
    }, tailOpts);
  }

  private get staticLeaseMs(): number {
    return this.opts.model?.staticLeaseMs ?? DEFAULT_MODEL_OPTIONS.staticLeaseMs;
  }

  get mode(): AdvisorMode {
    return this.opts.mode;
  }

  /** Rebuilds from the events among the newest `historyEvents` ids, then follows new ones. */
  async start(): Promise<void> {
    if (this.opts.mode === 'off') return;
    this.historyUntil = await this.deps.store.lastEventId();
    await this.tail.start();
  }

  async stop(): Promise<void> {
    await this.tail.stop();
  }

  /**
   * Reads every committed event now (tests and the simulator, which drive a
   * simulated clock and want what was just committed learned at once).
   */
  async catchUp(): Promise<void> {
    if (this.opts.mode === 'off') return;
    for (;;) {
      const { again } = await this.tail.step();
      if (!again) return;
    }
  }

  /** Sets the starting point without a background loop (with `catchUp`, for tests and the simulator). */
  async init(): Promise<void> {
    if (this.opts.mode === 'off') return;
    this.historyUntil = await this.deps.store.lastEventId();
    await this.tail.init();
  }

  /**
   * Advice on a failed attempt before its FAILED is written: in `enforce`
   * what to record (no retry, or the retry's delay); null when the static
   * policy stands (always in `off` and `advise`).
   */
  adviseFailure(job: JobRecord, error: { name?: string; message: string }, attempt: number, at: number): FailureAdvice | null {
    if (this.opts.mode === 'off' || !this.historyRead()) return null;
    const { context } = job.snapshot;
    const advice = this.model.adviseFailure({
      jobId: job.id, type: job.type, queue: job.queue, error, at,
      attemptInRun: attempt - context.attemptBase, maxAttempts: context.maxAttempts, backoff: context.backoff,
    });
    const kind: DecisionKind | null = advice.retryable === false ? 'no-retry' : advice.delayMs !== undefined ? 'retry-delay' : null;
    if (kind === null) return null;
    const applied = this.opts.mode === 'enforce';
    this.deps.onDecision?.(kind, applied);
    return applied ? advice : null;
  }

  /**
   * The lease to claim a job of this type and queue with (`enforce` only);
   * null: the static lease (also when the learned one would be no shorter).
   */
  leaseFor(type: string, queue: string): LeaseAdvice | null {
    return this.opts.mode === 'enforce' && this.historyRead() ? this.learnedLease(type, queue) : null;
  }

  /**
   * The history re-read at start has been read, up to the newest event of the
   * start. Before, the model knows a part of it only (the oldest part: a
   * large history takes many reads, and a gap in the ids a wait), and a
   * verdict from that part may be one the rest overturns (a signature hopeless
   * on old evidence whose retries recover lately): no decision is made from
   * it, the static policy stands. Should the newest event of the start be
   * deleted before it is read, the first newer event ends the wait.
   */
  private historyRead(): boolean {
    return this.tail.horizon >= this.historyUntil;
  }

  /**
   * Tells the advisor a claim of this type and queue was made, with `lease`:
   * the advisor's lease the claim took (what `leaseFor` answered, when the
   * worker could use it), or null when it took the static one. Counted as a
   * lease decision (`onDecision`): in `enforce`, applied, when the claim took
   * the advisor's lease; in `advise` (the claim always takes the static one),
   * not applied, when the learned lease is shorter than the static one and
   * the worker could have used it. Called for claims made, not for each
   * `leaseFor`: a claim a limit holds back is tried again and again.
   */
  claimed(type: string, queue: string, lease: LeaseAdvice | null): void {
    if (this.opts.mode === 'enforce') {
      if (lease) this.deps.onDecision?.('lease', true);
    } else if (this.opts.mode === 'advise' && this.historyRead()) {
      const learned = this.learnedLease(type, queue);
      if (learned && usableLease(learned)) this.deps.onDecision?.('lease', false);
    }
  }

  /** The learned lease of the pair when shorter than the static one, else null. */
  private learnedLease(type: string, queue: string): LeaseAdvice | null {
    const key = pairKey(type, queue);
    let lease = this.leases.get(key);
    if (lease === undefined) {
      if (this.leases.size >= MAX_CACHED_LEASES) this.leases.clear();
      this.leases.set(key, (lease = this.model.leaseFor(type, queue)));
    }
    return lease && lease.leaseMs < this.staticLeaseMs ? lease : null;
  }

  /**
   * A live job's predicted start and finish; null for a finished job or
   * without enough history. `startedAt`: when its running attempt started
   * (its last STARTED event), if the caller has it.
   *
   * The jobs ahead of a waiting job: those of its lane waiting now (due by
   * now). A job already dispatched (or due now at its submit) has its place
   * in the lane: those of its band created before it. A retry, or a delayed
   * job whose dispatch is not issued yet, has none: its dispatch is issued
   * when it is due and joins the end of the lane, behind every job of its
   * band waiting then, whenever created; so all of them count (`joining`),
   * and the model takes off those the queue starts by its due time.
   *
   * `hold`: what its limit holds it back for, when the caller read it
   * (`GET /v1/jobs/:id` reads it with `waiting`, engine/waiting.ts): the
   * limit then decides its start, in place of the jobs ahead (model.ts
   * `eta`). A promise of it is awaited with the count of the jobs ahead, so
   * that the two reads run at once (the count, read before the hold is known,
   * goes unused for a held job).
   */
  async eta(job: JobRecord, startedAt: number | null = null, hold: EtaHold | null | Promise<EtaHold | null> = null): Promise<Eta | null> {
    // Taken at once, so that a hold that fails while this returns early (no ETA to give) is not left unhandled.
    const holdRead = Promise.resolve(hold);
    holdRead.catch(() => undefined);
    if (this.opts.mode === 'off') return null;
    const { value: state, context } = job.snapshot;
    if (isTerminal(state)) return null;
    const joining = state === 'retrying' || (state === 'pending' && context.dispatchedFor !== context.attempt + 1);
    const waiting = joining || state === 'pending' || state === 'published';
    const now = this.deps.clock.now();
    const [{ ahead, complete }, held] = await Promise.all([
      waiting ? this.deps.store.countWaitingAhead(job.queue, job.id, job.priority, AHEAD_READ_LIMIT, now, joining) : { ahead: 0, complete: true },
      holdRead,
    ]);
    return this.model.eta({
      type: job.type, queue: job.queue, state, ahead, aheadAtLeast: !complete, hold: waiting ? held : null, now, runAt: context.runAt,
      startedAt: state === 'running' ? (startedAt ?? context.updatedAt) : null,
    });
  }

  /**
   * What was learned per type and queue. Each pair's handler timeout is read
   * from its newest job seen in the events, by id (the primary key: a list
   * of the jobs by type and queue has no index and would scan them), to flag
   * a timeout far from the run times. A job's timeout never changes, so a
   * pair is read again only once a newer job of it was seen, and at most once
   * per `TIMEOUT_CACHE_MS`. A job deleted since gives no timeout (null).
   */
  async insights(): Promise<Insights> {
    const now = this.deps.clock.now();
    const timeouts = new Map<string, number | null>();
    const pairs = this.model.pairList().map((p) => ({ ...p, key: pairKey(p.type, p.queue) }));
    // Pairs the model let go (idle, for a new one) are forgotten here too.
    const current = new Set(pairs.map((p) => p.key));
    for (const key of [...this.timeouts.keys()]) if (!current.has(key)) this.timeouts.delete(key);
    // One read at a time: at most `maxKeys` pairs.
    for (const { key, newestJobId } of pairs) {
      let known = this.timeouts.get(key);
      if (!known || (known.jobId !== newestJobId && now - known.at >= TIMEOUT_CACHE_MS)) {
        const job = await this.deps.store.getJob(newestJobId);
        known = { at: now, jobId: newestJobId, timeoutMs: job?.timeoutMs ?? null };
        this.timeouts.set(key, known);
      }
      timeouts.set(key, known.timeoutMs);
    }
    return this.model.insights(this.opts.mode, (type, queue) => timeouts.get(pairKey(type, queue)) ?? null);
  }

  private anomaly(a: Anomaly): void {
    this.deps.logger.warn('advisor: anomaly', { ...a });
    this.deps.onAnomaly?.(a);
  }
}
