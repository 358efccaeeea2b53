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
 * Nor a job whose dispatch still waits in the log, unread by its lane's
 * workers (a backlog longer than the timeout, or a worker that reads
 * nothing): it is queued, not lost, and a new dispatch, keyed by the job id,
 * would only queue behind it on the same partition (`EventLog.unreadBefore`,
 * asked of the lanes of the jobs the scan found). Such a job is kept as a
 * worker keeps the dispatches it holds (`JobStore.keepDispatches`: its update
 * time moves, no event), so the scan looks at it again a timeout later and
 * the jobs behind it come to the head; for {@link MAX_QUEUED_TIMEOUTS}
 * timeouts after its last transition at most. Nor, kept alike and as long, a
 * job that no live worker can run (none lists its type among its handlers
 * and serves its queue: engine/worker-presence.ts): a new dispatch would only
 * be read and skipped, or wait unread beside the first, one more event,
 * outbox row and message at every timeout for as long as the job waits. The
 * bound holds for it too, because a presence row can be missing for a worker
 * that runs (its writes fail): a lost dispatch is repaired within
 * {@link MAX_QUEUED_TIMEOUTS} timeouts whatever the rows say. Once a worker
 * that can run it is up, it is dispatched again at once: the process that
 * kept it reads the presence rows again every {@link WAITING_RECHECK_MS}
 * while it remembers such jobs (up to {@link MAX_WAITING_REMEMBERED}). One it
 * does not remember (kept by another process, before a restart, or past the
 * bound) waits for the next scan, a timeout after its last keep at most.
 *
 * Safe with many instances: each step is a machine event applied under the
 * store's compare-and-set, and only to the job as the scan read it (its
 * version): when two instances read one job and race, one wins and the
 * other's event is refused (the job moved on), which writes nothing. The
 * machine could not tell: it accepts a DISPATCH on any job due.
 *
 * A job of a job machine version this process does not run (a newer
 * deployment wrote it) is left as it is, for a server that runs it. The
 * scans read past such jobs (they stay at the head of their order, untouched)
 * so that they do not take the batch of every later pass.
 */
import type { Clock, DueJob, EventLog, JobRecord, JobStore, Logger, LostDispatch, WorkerRegistryStore } from './ports.js';
import { laneGroup, laneTopic } from './lanes.js';
import type { ApplyResult, EventInput, TransitionService } from './transitions.js';
import { BackgroundLoop, pollUntilAborted } from './loop.js';
import { settleAll } from './in-parallel.js';
import { untilAborted, withTimeout } from './with-timeout.js';
import type { ScheduleRunner } from './schedules.js';
import { MAX_WORKERS_LISTED, servedBy } from './worker-presence.js';
import { errorFields } from './logger.js';

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
  /**
   * Fires the cron schedules' due ticks at each pass; a pass that stopped at its cap with schedules
   * still due (`leftDue`) is followed by the next at once. @defaultValue none
   */
  schedules?: Pick<ScheduleRunner, 'runOnce'> & Partial<Pick<ScheduleRunner, 'leftDue'>>;
  /**
   * The log the dispatches travel on and the workers' group id (`ATS_WORKER_GROUP`):
   * a job whose dispatch its lane's workers have not read yet is not taken for lost.
   * @defaultValue none: every job the scan finds is dispatched again
   */
  dispatches?: { log: Pick<EventLog, 'unreadBefore' | 'partitioner'>; groupId: string };
  /**
   * The workers' presence rows (engine/worker-presence.ts): a job whose type and
   * queue no live worker handles is kept, not dispatched again. Give it only
   * where every worker keeps a presence row (each `ats start` worker does).
   * @defaultValue none: every job the scan finds is dispatched again
   */
  presence?: Pick<WorkerRegistryStore, 'listWorkers'>;
}

export interface TimersCounters {
  dispatched: number;
  retried: number;
  expired: number;
  redispatched: number;
  /** Jobs the lost-dispatch scan found whose dispatch waited unread in the log: kept, not dispatched again. */
  queued: number;
  /** Jobs the lost-dispatch scan found that no live worker can run: kept, not dispatched again. */
  unserved: number;
}

/** How many jobs of another job machine version each scan reads past, in batches: beyond, the repairs behind them wait. */
const PASSED_OVER_BATCHES = 10;
/** The jobs passed over are logged at most this often. */
const PASSED_OVER_LOG_EVERY_MS = 60_000;
/** How many of their ids a log line names. */
const PASSED_OVER_LOGGED_IDS = 10;

/** A summary line's jobs by type, the most first, at most PASSED_OVER_LOGGED_IDS types. */
function typeCounts(byType: ReadonlyMap<string, number>): Array<{ type: string; count: number }> {
  return [...byType].sort((a, b) => b[1] - a[1]).slice(0, PASSED_OVER_LOGGED_IDS).map(([type, count]) => ({ type, count }));
}
/** Longest wait for the log's answer about one lane. */
const LOG_ANSWER_TIMEOUT_MS = 10_000;
/** A job queued this many published timeouts after its last transition is dispatched again all the same. */
export const MAX_QUEUED_TIMEOUTS = 12;
/** While jobs kept for want of a worker are remembered, the workers' presence is read again this often for one that can run them (a worker's presence is written every 5 s). */
export const WAITING_RECHECK_MS = 5_000;
/** Most jobs kept for want of a worker that a process remembers: beyond, one waits for the scan, a timeout after its keep. */
export const MAX_WAITING_REMEMBERED = 10_000;

/**
 * The jobs a scan returned that this process cannot step (their snapshot is
 * of a job machine version it does not run): the next reads ask for that
 * many rows more and leave them out. An id the scan no longer returns is
 * forgotten (the job left it: a server that runs its version moved it on),
 * so the set holds at most what one read returns, and never more than `max`.
 */
class PassedOver {
  private ids = new Set<string>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.ids.size;
  }

  /** No more ids are taken: the scan's repairs behind the ones held may wait. */
  get full(): boolean {
    return this.ids.size >= this.max;
  }

  /** The first `limit` of `rows` not passed over; forgets the ids not among `rows`. */
  keep<J extends DueJob>(rows: readonly J[], limit: number): J[] {
    const still = new Set<string>();
    const kept: J[] = [];
    for (const j of rows) {
      if (this.ids.has(j.id)) still.add(j.id);
      else if (kept.length < limit) kept.push(j);
    }
    this.ids = still;
    return kept;
  }

  add(id: string): void {
    if (!this.full) this.ids.add(id);
  }

  /** Up to `n` of the ids held. */
  some(n: number): string[] {
    return [...this.ids].slice(0, n);
  }
}

export class Timers {
  private readonly loop = new BackgroundLoop((signal) => this.run(signal));
  readonly counters: TimersCounters = { dispatched: 0, retried: 0, expired: 0, redispatched: 0, queued: 0, unserved: 0 };
  /** The last pass found the relay stuck (its lost-dispatch repair skipped). */
  private relayStuck = false;
  /** The last lost-dispatch scan could not ask the log (its repair skipped). */
  private logUnanswered = false;
  /** While the log does not answer, the lost-dispatch scan runs at most once a tenth of the timeout: not before this time. */
  private lostScanNotBefore = -Infinity;
  /** When the jobs kept for their dispatch waiting unread were last logged (at most once a minute). */
  private queuedLoggedAt = -Infinity;
  /** When the jobs kept for no live worker can run them were last logged (at most once a minute). */
  private unservedLoggedAt = -Infinity;
  /** The last read of the workers' presence failed (logged once as it starts and once as it ends). */
  private presenceUnread = false;
  /**
   * Jobs this process kept because no live worker could run them, as the scan
   * read them, with when: dispatched again once one that can is up. Each is
   * forgotten a timeout after its keep, when the scan finds it again if it
   * still waits (one that moved on, cancelled say, is not found again).
   */
  private readonly waitingForWorker = new Map<string, { job: LostDispatch; keptAt: number }>();
  /** When the presence was last read for them. */
  private waitingCheckedAt = -Infinity;
  /** The last pass's schedules' pass stopped at its cap with schedules still due: the next pass runs at once. */
  private schedulesLeftDue = false;
  /** The passes run so far: the presence rows are read once a pass at most. */
  private passes = 0;
  /** The presence rows' answer, and the pass that read it. */
  private presenceRead: { pass: number; serves: ((type: string, queue: string) => boolean) | null } | undefined;
  /** Per scan, the jobs of another job machine version it reads past. */
  private readonly passedOver: { due: PassedOver; expired: PassedOver; lost: PassedOver };
  /** The job machine versions of the jobs passed over, for the log. */
  private readonly unknownMachines = new Set<number>();
  private passedOverLoggedAt = -Infinity;

  constructor(private readonly deps: TimersDeps, private readonly opts: TimersOptions) {
    const max = opts.batchSize * PASSED_OVER_BATCHES;
    this.passedOver = { due: new PassedOver(max), expired: new PassedOver(max), lost: new PassedOver(max) };
  }

  /**
   * One pass over the three queries, then the schedules'; returns how many events were accepted.
   * `signal` aborted (the timers stopping), it gives up before its next read or step: what it wrote
   * stays (each repair is its own transaction, each schedule's tick a job of its own), and the jobs
   * and schedules it had not reached are still due, for the next pass here or in another process.
   */
  async runOnce(signal?: AbortSignal): Promise<number> {
    const { store, clock } = this.deps;
    const now = clock.now();
    this.passes++;
    this.schedulesLeftDue = false;
    const over = this.passedOver;
    const due = await this.scan(over.due, (limit) => store.findDue(now, limit));
    if (signal?.aborted) return 0;
    const expired = await this.scan(over.expired, (limit) => store.findExpiredLeases(now, limit));
    // Stopped during the scans: what they read is repaired by the next pass.
    if (signal?.aborted) return 0;
    const { logger } = this.deps;
    const debug = logger.isLevelEnabled?.('debug') ?? true;
    // Every repair of the pass ends before the pass does, also when one fails: no write lands after it.
    // The lost dispatches' may wait on the log: the others do not wait for it.
    const [a, b, c] = await settleAll([
      this.applyAll(due, over.due, (j) => (j.state === 'retrying' ? { type: 'RETRY_DUE' } : { type: 'DISPATCH' }),
        debug ? (j, job) => logger.debug(j.state === 'retrying' ? 'timers: retry due' : 'timers: delayed job due', { jobId: j.id, type: job.type, attempt: j.attempt }) : undefined),
      this.applyAll(expired, over.expired, (j) => ({ type: 'LEASE_EXPIRED', attempt: j.attempt }),
        (j, job) => logger.debug('timers: lease expired (no heartbeat of its worker reached the store); the attempt counts as failed', { jobId: j.id, type: job.type, attempt: j.attempt }))
        .then((c) => {
          if (c.all > 0) logger.warn('timers: leases expired (no heartbeat of their workers reached the store); the attempts count as failed', { count: c.all, types: typeCounts(c.byType), jobIds: c.ids });
          return c;
        }),
      this.repairLost(now, signal).then(async (lost) => ({ all: lost.all + (signal?.aborted ? 0 : await this.dispatchNowServed(now)) })),
    ]);
    this.logPassedOver(now);
    this.counters.dispatched += a.pending;
    this.counters.retried += a.retrying;
    this.counters.expired += b.all;
    const repaired = a.all + b.all + c.all;
    if (signal?.aborted) return repaired;
    // A stop tells the schedules' pass too: it gives up at its next schedule.
    const ticks = (await this.deps.schedules?.runOnce(signal)) ?? 0;
    this.schedulesLeftDue = this.deps.schedules?.leftDue === true;
    return repaired + ticks;
  }

  /** A batch of one scan, read past the jobs it passes over. */
  private async scan<J extends DueJob>(over: PassedOver, read: (limit: number) => Promise<J[]>): Promise<J[]> {
    const n = this.opts.batchSize;
    return over.keep(await read(n + over.size), n);
  }

  /** While jobs are passed over, says so once a minute: they wait for a server that runs their machine version. */
  private logPassedOver(now: number): void {
    const scans = Object.values(this.passedOver);
    const count = scans.reduce((sum, over) => sum + over.size, 0);
    if (count === 0 || now < this.passedOverLoggedAt + PASSED_OVER_LOG_EVERY_MS) return;
    this.passedOverLoggedAt = now;
    this.deps.logger.warn('timers: jobs of a job machine version this process does not run are left for a server that runs it', {
      count, machines: [...this.unknownMachines].sort((x, y) => x - y),
      jobIds: scans.flatMap((over) => over.some(PASSED_OVER_LOGGED_IDS)).slice(0, PASSED_OVER_LOGGED_IDS),
      // Past the bound, more such jobs take batch places again: the other repairs of that scan may wait behind them.
      ...(scans.some((over) => over.full) ? { boundReached: true } : {}),
    });
  }

  /**
   * The jobs dispatched and not started since `before`, unless the outbox
   * still holds a row written by then: the relay has not published since, so
   * their dispatches may wait there (logged once as it starts and once as it ends).
   */
  private async lostDispatches(before: number): Promise<LostDispatch[]> {
    const { store, logger } = this.deps;
    const oldest = await store.oldestOutboxAt();
    const stuck = oldest !== null && oldest <= before;
    if (stuck !== this.relayStuck) {
      this.relayStuck = stuck;
      if (stuck) logger.warn('timers: the outbox holds rows older than the published timeout (the relay cannot publish); jobs not started are not dispatched again until it can', { oldestAt: oldest });
      else logger.info('timers: the relay publishes again; lost dispatches are repaired again');
    }
    return stuck ? [] : this.scan(this.passedOver.lost, (limit) => store.findLostDispatches(before, limit));
  }

  /**
   * Of `jobs`, those whose dispatch the workers of its lane have not read
   * yet (`queued`: the log's partition their id maps to holds a message
   * published by `before` that the lane's group has not read), and those of
   * the lanes the log did not answer for (`unanswered`: logged once as it
   * starts and once as it ends; meanwhile the scan runs once a tenth of the
   * timeout). The lanes are asked at once. A job whose last transition is
   * {@link MAX_QUEUED_TIMEOUTS} timeouts old or more is not asked about: its
   * dispatch is issued again, queued or not, so that a group whose position
   * tells nothing true (one the workers left for another name) or a lane that
   * lags that long holds no job back for longer. Null once `signal` is
   * aborted (the timers stopping): the stop does not wait for the log's answer.
   */
  private async unreadInLog(jobs: readonly LostDispatch[], now: number, before: number, signal?: AbortSignal): Promise<{ queued: Set<string>; unanswered: Set<string> } | null> {
    const queued = new Set<string>();
    const unanswered = new Set<string>();
    const { dispatches, logger } = this.deps;
    const asked = dispatches ? jobs.filter((j) => this.mayKeep(j, now)) : [];
    if (!dispatches || asked.length === 0) return { queued, unanswered };
    if (signal?.aborted) return null;
    const byLane = new Map<string, LostDispatch[]>();
    for (const j of asked) {
      const lane = laneTopic(j.queue, j.priority);
      const of = byLane.get(lane);
      if (of) of.push(j);
      else byLane.set(lane, [j]);
    }
    const answers = await untilAborted(Promise.allSettled([...byLane].map(([lane, of]) => withTimeout((async () => {
      const partitions = await dispatches.log.unreadBefore(lane, laneGroup(dispatches.groupId, lane), before);
      if (partitions.size === 0) return [];
      const partitionOf = await dispatches.log.partitioner(lane);
      return of.filter((j) => partitions.has(partitionOf(j.id)));
    })(), LOG_ANSWER_TIMEOUT_MS))), signal);
    if (!answers) return null;
    for (const a of answers) if (a.status === 'fulfilled') for (const j of a.value) queued.add(j.id);
    const failed = [...byLane.values()].filter((_, i) => answers[i]!.status === 'rejected');
    if (failed.length > 0) {
      for (const j of failed.flat()) unanswered.add(j.id);
      const error = (answers.find((a) => a.status === 'rejected') as PromiseRejectedResult).reason;
      if (!this.logUnanswered) logger.warn('timers: the log did not say which dispatches its workers have not read; the jobs of those lanes are not dispatched again until it does', { lanes: failed.length, ...errorFields(error) });
      this.logUnanswered = true;
      this.lostScanNotBefore = now + this.opts.publishedTimeoutMs / 10;
    } else {
      if (this.logUnanswered) logger.info('timers: the log answers again; lost dispatches are repaired again');
      this.logUnanswered = false;
    }
    if (queued.size > 0 && now >= this.queuedLoggedAt + PASSED_OVER_LOG_EVERY_MS) {
      this.queuedLoggedAt = now;
      logger.warn('timers: dispatches older than the published timeout wait unread in the log (the workers of their lane lag behind, or read nothing); their jobs are kept, not dispatched again', { count: queued.size, jobIds: [...queued].slice(0, PASSED_OVER_LOGGED_IDS) });
    }
    return { queued, unanswered };
  }

  /** Whether a job the scan found may be kept (queued or unserved): its last transition is less than {@link MAX_QUEUED_TIMEOUTS} timeouts old. */
  private mayKeep(j: LostDispatch, now: number): boolean {
    return j.lastTransitionAt > now - MAX_QUEUED_TIMEOUTS * this.opts.publishedTimeoutMs;
  }

  /** The lost-dispatch scan's repairs: jobs dispatched again, and jobs kept (no live worker can run them, or their dispatch waits unread), counted alike. */
  private async repairLost(now: number, signal?: AbortSignal): Promise<{ all: number }> {
    // While the log does not answer, once a tenth of the timeout.
    if (now < this.lostScanNotBefore) return { all: 0 };
    const before = now - this.opts.publishedTimeoutMs;
    const found = await this.lostDispatches(before);
    const unserved = await this.unservedOf(found.filter((j) => this.mayKeep(j, now)), now);
    const kept = new Set(unserved);
    const served = kept.size > 0 ? found.filter((j) => !kept.has(j)) : found;
    const unread = await this.unreadInLog(served, now, before, signal);
    // Stopped while the log was asked: what was found is repaired by the next pass.
    if (!unread) return { all: 0 };
    const { queued, unanswered } = unread;
    const { store } = this.deps;
    const keptUnserved = unserved.length > 0 ? await store.keepDispatches(unserved.map((j) => j.id), now) : 0;
    for (const j of served) this.waitingForWorker.delete(j.id);
    this.remember(unserved, now);
    const keptQueued = queued.size > 0 ? await store.keepDispatches([...queued], now) : 0;
    this.counters.unserved += keptUnserved;
    this.counters.queued += keptQueued;
    const redispatched = await this.applyRedispatch(served.filter((j) => !queued.has(j.id) && !unanswered.has(j.id)));
    if (redispatched.all > 0) {
      this.deps.logger.info('timers: dispatched again jobs no worker started within the published timeout (their dispatch may be lost)', {
        count: redispatched.all, types: typeCounts(redispatched.byType), jobIds: redispatched.ids,
      });
    }
    return { all: keptUnserved + keptQueued + redispatched.all };
  }

  /**
   * Of `jobs`, those no live worker can run (their type and queue: see
   * `presence`), logged at most once a minute; the log is not asked about
   * them. None when the presence rows cannot tell: not given, not read
   * (logged once as it starts and once as it ends), or as many as a store
   * lists at most (one that can run them may be left out).
   */
  private async unservedOf(jobs: readonly LostDispatch[], now: number): Promise<LostDispatch[]> {
    const { logger } = this.deps;
    if (jobs.length === 0) return [];
    const serves = await this.readPresence(now);
    if (!serves) return [];
    const unserved = jobs.filter((j) => !serves(j.type, j.queue));
    if (unserved.length > 0 && now >= this.unservedLoggedAt + PASSED_OVER_LOG_EVERY_MS) {
      this.unservedLoggedAt = now;
      const pairs = new Map(unserved.map((j) => [JSON.stringify([j.type, j.queue]), { type: j.type, queue: j.queue }]));
      logger.warn('timers: jobs wait that no live worker can run (none has a handler for their type and serves their queue); they are kept, not dispatched again meanwhile', {
        count: unserved.length, waiting: [...pairs.values()].slice(0, PASSED_OVER_LOGGED_IDS), jobIds: unserved.slice(0, PASSED_OVER_LOGGED_IDS).map((j) => j.id),
      });
    }
    return unserved;
  }

  /**
   * Whether a live worker can run a job of a type and queue, per the
   * presence rows read once a pass at most; null when the rows cannot tell:
   * not given, not read (logged once as it starts and once as it ends), or as
   * many as a store lists at most (one that can run it may be left out).
   */
  private async readPresence(now: number): Promise<((type: string, queue: string) => boolean) | null> {
    const { presence, logger } = this.deps;
    if (!presence) return null;
    if (this.presenceRead?.pass === this.passes) return this.presenceRead.serves;
    let serves: ((type: string, queue: string) => boolean) | null;
    try {
      const workers = await presence.listWorkers();
      if (this.presenceUnread) logger.info('timers: the workers\' presence is read again; jobs no live worker can run are kept again');
      this.presenceUnread = false;
      serves = workers.length >= MAX_WORKERS_LISTED ? null : servedBy(workers, now);
    } catch (err) {
      if (!this.presenceUnread) logger.warn('timers: the workers\' presence could not be read; every lost dispatch found is dispatched again meanwhile', errorFields(err));
      this.presenceUnread = true;
      serves = null;
    }
    this.presenceRead = { pass: this.passes, serves };
    return serves;
  }

  /**
   * Remembers jobs kept for want of a worker, with the time of their keep,
   * in the order of their keeps: past {@link MAX_WAITING_REMEMBERED}, the one
   * kept longest ago is forgotten (it waits for the scan).
   */
  private remember(jobs: readonly LostDispatch[], now: number): void {
    for (const j of jobs) {
      this.waitingForWorker.delete(j.id);
      if (this.waitingForWorker.size >= MAX_WAITING_REMEMBERED) this.waitingForWorker.delete(this.waitingForWorker.keys().next().value!);
      this.waitingForWorker.set(j.id, { job: j, keptAt: now });
    }
  }

  /**
   * The jobs this process kept for want of a worker, dispatched again as soon
   * as the workers' presence (read every {@link WAITING_RECHECK_MS} while it
   * remembers any) lists one that can run them, instead of a timeout after
   * their keep: its dispatch was read and skipped by the workers before it,
   * or waits unread (then the first of the two read is claimed, and the
   * other skipped). Each only if still at the version the scan read (a keep
   * leaves it): one that moved on meanwhile is refused. Not while the lost
   * dispatches are not repaired (the relay stuck, the log not answering):
   * then they wait as the others do.
   */
  private async dispatchNowServed(now: number): Promise<number> {
    if (this.waitingForWorker.size === 0 || now < this.waitingCheckedAt + WAITING_RECHECK_MS) return 0;
    if (this.relayStuck || now < this.lostScanNotBefore) return 0;
    this.waitingCheckedAt = now;
    for (const [id, { keptAt }] of this.waitingForWorker) if (keptAt <= now - this.opts.publishedTimeoutMs) this.waitingForWorker.delete(id);
    if (this.waitingForWorker.size === 0) return 0;
    const serves = await this.readPresence(now);
    if (!serves) return 0;
    const ready = [...this.waitingForWorker.values()].map((w) => w.job).filter((j) => serves(j.type, j.queue));
    if (ready.length === 0) return 0;
    const batch = ready.slice(0, this.opts.batchSize);
    // More than a batch: the rest at the next pass.
    if (ready.length > batch.length) this.waitingCheckedAt = -Infinity;
    const dispatched = await this.redispatch(batch);
    // Forgotten once written (dispatched, or refused: moved on); a write that failed is tried again at the next check.
    for (const j of batch) this.waitingForWorker.delete(j.id);
    if (dispatched > 0) this.deps.logger.info('timers: a worker that can run jobs kept for want of one is up; they were dispatched again at once', { count: dispatched });
    return dispatched;
  }

  /**
   * Send a new dispatch for these dispatched jobs (their message may be lost), each if still at the version read;
   * returns how many were. Each job's line is at `debug`: the caller says how many in one line of its own.
   */
  async redispatch(jobs: readonly DueJob[]): Promise<number> {
    return (await this.applyRedispatch(jobs)).all;
  }

  private async applyRedispatch(jobs: readonly DueJob[]) {
    const c = await this.applyAll(jobs, this.passedOver.lost, () => ({ type: 'DISPATCH' }),
      (j, job) => this.deps.logger.debug('timers: dispatched again (no worker started it)', { jobId: j.id, type: job.type, attempt: j.attempt, state: j.state }));
    this.counters.redispatched += c.all;
    return c;
  }

  /**
   * Ends at once the leases of `jobs`, found running where the process that
   * held them is known to have ended (the embedded scheduler's restart: its
   * folder lock holds out every other process): LEASE_EXPIRED with
   * `holderGone`, a failed attempt, retried or dead as at any lease's end,
   * without waiting for the lease. Returns how many were accepted.
   */
  async expireHeld(jobs: readonly DueJob[], level: 'info' | 'debug' = 'info'): Promise<number> {
    const c = await this.applyAll(jobs, this.passedOver.expired, (j) => ({ type: 'LEASE_EXPIRED', attempt: j.attempt, holderGone: true }),
      (j, job) => this.deps.logger[level]('timers: lease ended at once (the process that ran it had ended); the attempt counts as failed', { jobId: j.id, type: job.type, attempt: j.attempt }));
    this.counters.expired += c.all;
    return c.all;
  }

  /**
   * Applies each job's event, to the job as the scan read it (its version);
   * `applied` hears of each one accepted (with the job after it). A job of
   * another machine version is passed over by `over`'s scan from now on.
   * Counts the jobs applied, in all and by type, and keeps the ids of the
   * first ones (what a summary line names).
   */
  private async applyAll(
    jobs: readonly DueJob[], over: PassedOver, eventOf: (j: DueJob) => EventInput, applied?: (j: DueJob, job: JobRecord) => void,
  ) {
    const counts = { all: 0, pending: 0, retrying: 0, ids: [] as string[], byType: new Map<string, number>() };
    if (jobs.length === 0) return counts;
    const results = await this.deps.transitions.applyMany(jobs.map((j) => ({ jobId: j.id, event: eventOf(j), ifVersion: j.version })));
    results.forEach((r, i) => {
      if (!r.ok) return this.passOverUnknown(r, over);
      applied?.(jobs[i]!, r.job);
      counts.all++;
      // The first ones only: what a log line names of them.
      if (counts.ids.length < PASSED_OVER_LOGGED_IDS) counts.ids.push(jobs[i]!.id);
      counts.byType.set(r.job.type, (counts.byType.get(r.job.type) ?? 0) + 1);
      const s = jobs[i]!.state;
      if (s === 'pending' || s === 'retrying') counts[s]++;
    });
    return counts;
  }

  private passOverUnknown(r: Extract<ApplyResult, { ok: false }>, over: PassedOver): void {
    if (r.reason !== 'machine-unknown') return;
    over.add(r.job.id);
    this.unknownMachines.add(r.job.snapshot.machine);
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
      // Again at once after a full batch, or while schedules due wait behind the schedules' cap (a poll later, the last of
      // a burst of them, 1000 due at the top of an hour with 100 tried a pass, would be reached ten polls late, or missed).
      // A stop tells the pass: it gives up at its next step, and the stop waits only for the step in flight.
      pass: async () => (await this.runOnce(signal)) >= this.opts.batchSize || this.schedulesLeftDue,
    });
  }
}
