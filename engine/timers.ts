/**
 * Timers: the repair loop. Starts delayed jobs when due, fires cron schedules' ticks
 * (engine/schedules.ts), moves retries back to
 * pending when their backoff elapsed, expires leases of dead workers, and
 * re-dispatches jobs dispatched but not started for too long (a lost message),
 * whether PUBLISHED was recorded for them (`published`) or not (`pending`:
 * the relay's bookkeeping write may fail, or the relay die before it).
 * Not while the relay is stuck (the outbox holds a row older than the
 * published timeout: the log is down, say): a job's dispatch may still be in
 * the outbox then, not lost, and a new one would only wait behind it, one
 * more row and message per job at every timeout for as long as it lasts.
 *
 * Safe with many instances: each step is a machine event applied under the
 * store's compare-and-set; when two instances race, one wins and the other's
 * event is rejected by the machine (the job moved on), which writes nothing.
 */
import type { Clock, DueJob, JobRecord, JobStore, Logger } from './ports.js';
import type { EventInput, TransitionService } from './transitions.js';
import { BackgroundLoop, pollUntilAborted } from './loop.js';
import { settleAll } from './in-parallel.js';
import type { ScheduleRunner } from './schedules.js';

export interface TimersOptions {
  /** How often to look. @defaultValue 250 */
  pollMs: number;
  /** Jobs handled per query. @defaultValue 500 */
  batchSize: number;
  /** A job dispatched this long ago and not started is dispatched again. @defaultValue 300000 */
  publishedTimeoutMs: number;
}

export interface TimersDeps {
  store: JobStore;
  transitions: TransitionService;
  clock: Clock;
  logger: Logger;
  /** Fires the cron schedules' due ticks at each pass. @defaultValue none */
  schedules?: Pick<ScheduleRunner, 'runOnce'>;
}

export interface TimersCounters {
  dispatched: number;
  retried: number;
  expired: number;
  redispatched: number;
}

export class Timers {
  private readonly loop = new BackgroundLoop((signal) => this.run(signal));
  readonly counters: TimersCounters = { dispatched: 0, retried: 0, expired: 0, redispatched: 0 };
  /** The last pass found the relay stuck (its lost-dispatch repair skipped). */
  private relayStuck = false;

  constructor(private readonly deps: TimersDeps, private readonly opts: TimersOptions) {}

  /** One pass over the three queries; returns how many events were accepted. */
  async runOnce(): Promise<number> {
    const { store, clock } = this.deps;
    const now = clock.now();
    const n = this.opts.batchSize;
    const due = await store.findDue(now, n);
    const expired = await store.findExpiredLeases(now, n);
    const stale = await this.lostDispatches(now - this.opts.publishedTimeoutMs, n);
    const { logger } = this.deps;
    const debug = logger.isLevelEnabled?.('debug') ?? true;
    // Every repair of the pass ends before the pass does, also when one fails: no write lands after it.
    const [a, b, c] = await settleAll([
      this.applyAll(due, (j) => (j.state === 'retrying' ? { type: 'RETRY_DUE' } : { type: 'DISPATCH' }),
        debug ? (j, job) => logger.debug(j.state === 'retrying' ? 'timers: retry due' : 'timers: delayed job due', { jobId: j.id, type: job.type, attempt: j.attempt }) : undefined),
      this.applyAll(expired, (j) => ({ type: 'LEASE_EXPIRED', attempt: j.attempt }),
        (j, job) => logger.warn('timers: lease expired (its worker stopped heartbeating); the attempt counts as failed', { jobId: j.id, type: job.type, attempt: j.attempt })),
      this.redispatch(stale).then((all) => ({ all })),
    ]);
    const ticks = (await this.deps.schedules?.runOnce()) ?? 0;
    this.counters.dispatched += a.pending;
    this.counters.retried += a.retrying;
    this.counters.expired += b.all;
    return a.all + b.all + c.all + ticks;
  }

  /**
   * The jobs dispatched and not started since `before`, unless the outbox
   * still holds a row written by then: the relay has not published since, so
   * their dispatches may wait there (logged once as it starts and once as it ends).
   */
  private async lostDispatches(before: number, limit: number): Promise<DueJob[]> {
    const { store, logger } = this.deps;
    const oldest = await store.oldestOutboxAt();
    const stuck = oldest !== null && oldest <= before;
    if (stuck !== this.relayStuck) {
      this.relayStuck = stuck;
      if (stuck) logger.warn('timers: the outbox holds rows older than the published timeout (the relay cannot publish); jobs not started are not dispatched again until it can', { oldestAt: oldest });
      else logger.info('timers: the relay publishes again; lost dispatches are repaired again');
    }
    return stuck ? [] : store.findLostDispatches(before, limit);
  }

  /** Issue a new dispatch for these dispatched jobs (their message may be lost). */
  async redispatch(jobs: readonly DueJob[]): Promise<number> {
    const c = await this.applyAll(jobs, () => ({ type: 'DISPATCH' }),
      (j, job) => this.deps.logger.info('timers: dispatched again (no worker started it)', { jobId: j.id, type: job.type, attempt: j.attempt, state: j.state }));
    this.counters.redispatched += c.all;
    return c.all;
  }

  /** Applies each job's event; `applied` hears of each one accepted (with the job after it). */
  private async applyAll(jobs: readonly DueJob[], eventOf: (j: DueJob) => EventInput, applied?: (j: DueJob, job: JobRecord) => void) {
    const counts = { all: 0, pending: 0, retrying: 0 };
    if (jobs.length === 0) return counts;
    const results = await this.deps.transitions.applyMany(jobs.map((j) => ({ jobId: j.id, event: eventOf(j) })));
    results.forEach((r, i) => {
      if (!r.ok) return;
      applied?.(jobs[i]!, r.job);
      counts.all++;
      const s = jobs[i]!.state;
      if (s === 'pending' || s === 'retrying') counts[s]++;
    });
    return counts;
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private run(signal: AbortSignal): Promise<void> {
    const { clock, logger } = this.deps;
    return pollUntilAborted(signal, {
      clock, logger, failure: 'timers: pass failed', pollMs: this.opts.pollMs,
      pass: async () => (await this.runOnce()) >= this.opts.batchSize,
    });
  }
}
