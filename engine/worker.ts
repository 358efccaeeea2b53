/**
 * The worker runtime: consumes `ats.dispatch`, claims attempts (STARTED,
 * fenced), runs handlers with an AbortSignal and a heartbeat, and writes
 * outcomes fenced by attempt.
 *
 * What must hold: a Kafka offset is committed only after the claims of the
 * records it covers are durable (the handle callback resolves after them). A
 * claimed job whose worker dies is not lost: its lease expires and the timers
 * record LEASE_EXPIRED, which retries it. Duplicate and stale dispatch messages
 * fail the claim (the machine rejects STARTED) and are skipped, except the
 * dispatch of a claim sent from here that committed although its write seemed
 * to fail (`adoptable`): its attempt runs then.
 *
 * Dispatches travel on lanes, a topic per (queue, priority band)
 * (engine/lanes.ts). A worker subscribes to the three lanes of each queue it
 * serves, each in its lane's own consumer group; one serving every queue
 * finds the lanes in the log as they appear (every `laneDiscoveryMs`). All
 * lanes share the handler slots (engine/semaphore.ts): each batch is claimed
 * highest priority first, and while a batch holds dispatches not claimed
 * yet, or Kafka holds more of a `high` or `normal` lane behind the last
 * batch of a partition read here, no dispatch of a lower priority gets a
 * slot; so a `high` lane's job starts ahead of the `normal` ones, and a
 * `low` one waits for them. The lanes of a band are joined before those of the
 * next band, so at start too the high ones go first. A batch waiting for a
 * slot stops waiting when its group rebalances (`BatchInfo.signal`): the
 * group would wait for it up to its rebalance timeout, and a worker joining
 * with it; the dispatches not claimed come again after the rejoin.
 *
 * Cancels arrive on the job's lane, keyed by job id (see `CancelMessage`), and
 * are fenced like every other event: only the running entry of the cancelled
 * attempt is aborted, so a stale or redelivered cancel cannot touch a later
 * attempt. A cancel read by a worker that does not run that attempt (after a
 * rebalance) is ignored there; the worker that runs it learns it at its next
 * heartbeat, which the machine rejects. Workers read no other topic, so they
 * need no consumer group of their own.
 *
 * An outcome write that fails (a database blip) is retried with backoff while
 * the attempt's lease holds; once the lease is over the timers own the job.
 * Heartbeats that fail are tried again as the lease runs out; should none
 * extend it, the attempt is given up (its handler aborted, `lease-lost`)
 * LEASE_MARGIN_MS before the lease ends, ahead of the timers' LEASE_EXPIRED.
 *
 * An attempt ends as soon as its handler's signal aborts (its timeout, a
 * cancel, a lost lease), but its handler's slot is given back only once the
 * handler itself returns: one that ignores its signal runs on, and holds its
 * slot meanwhile, so no more handlers run at once than `concurrency`. Such a
 * handler counts as lingering (`slotUsage`), and is logged once it still runs
 * LINGERING_WARN_MS after its abort.
 *
 * A worker that stops (`stop()`, on SIGTERM) lets its handlers finish for the
 * shutdown grace, then aborts those still running and, once each handler has
 * stopped, records its attempt as a retryable failure of its own
 * (`WorkerShutdown`): the job retries after its backoff, or goes dead with
 * that reason, without waiting for its lease. A handler that does not stop,
 * or a store that does not take the write, within SHUTDOWN_WRITE_MS leaves
 * the attempt to the lease expiry, as a crash's are: a retry never starts
 * beside a handler still running. Once `stop()` (or `crash()`) returned, the
 * worker writes nothing more (see `stop()` for the one exception: a write
 * the store had not answered yet).
 *
 * A message whose `ats-schema` major version this code does not know (a newer
 * producer) is not read: it is logged (a warning a minute per version), counted (`unknownSchema`) and committed
 * past, so it neither crashes the worker nor stalls its partition. The job is
 * not lost: a dispatch no worker started is dispatched again by the timers
 * after the published timeout (`findLostDispatches`), and a cancel not applied
 * here reaches the handler through its next heartbeat. A message without the
 * header (an older producer) is version 1.
 */
import { setMaxListeners } from 'node:events';
import { AbortReason } from './abort-reason.js';
import { isBoxedPrimitive, MAX_NESTING_DEPTH } from '../machines/json-integers.js';
import { jsonSize } from '../machines/json-size.js';
import type { Advisor } from './advisor/advisor.js';
import { WORKER_SHUTDOWN_ERROR_NAME } from './advisor/signature.js';
import { usableLease, type LeaseAdvice } from './advisor/types.js';
import { Batcher } from './batcher.js';
import { HeldDispatches, THROTTLE_RETRY_MAX_MS, THROTTLED_KEPT, type RefusedWhy } from './held-dispatches.js';
import { NonRetryableError, quoteCut } from './errors.js';
import type { HandlerRegistry } from './handlers.js';
import { settleAll } from './in-parallel.js';
import { OutageLog } from './error-backoff.js';
import { errorFields, withFields } from './logger.js';
import { BANDS, LEGACY_QUEUE, laneGroup, lanesOf, lanesOfSegment, parseLane } from './lanes.js';
import { dispatchPriority, KIND_HEADER, SCHEMA_HEADER, readableSchema, type CancelMessage, type DispatchMessage } from './messages.js';
import type { Metrics } from './metrics.js';
import {
  type BatchInfo, type Clock, type EventLog, type HandlerContext, type JobRecord, type JobStore, type LogRecord, type Logger, type ProgressStore, type Subscription,
} from './ports.js';
import { progressJson, ProgressReporter } from './progress.js';
import { storedLimitKey } from './limits.js';
import { unlessStopped } from './loop.js';
import { Semaphore } from './semaphore.js';
import { RepeatedLines } from './repeated-lines.js';
import { describeThrown, isInstance, thrownField } from './thrown.js';
import { endAttemptSpan, inSpan, startAttemptSpan, type Span, type Tracer } from './tracing.js';
import type { ApplyResult, EventInput, TransitionService } from './transitions.js';

export interface WorkerOptions {
  /** Names this worker in STARTED events and logs. */
  workerId: string;
  /** The consumer group all workers share. @defaultValue 'ats-workers' */
  groupId: string;
  /** Handlers running at once. @defaultValue 10 */
  concurrency: number;
  /** How long a claim holds without a heartbeat. @defaultValue 30000 */
  leaseMs: number;
  /** Automatic heartbeat period. @defaultValue 10000 */
  heartbeatMs: number;
  /** On stop, how long running handlers may finish before they are aborted. @defaultValue 10000 */
  shutdownGraceMs: number;
  /** The queues this worker serves; none (or empty) serves every queue, finding their lanes as they appear. @defaultValue every queue */
  queues?: readonly string[];
  /** How often a worker serving every queue looks for lanes it does not read yet. @defaultValue 2000 */
  laneDiscoveryMs?: number;
  /**
   * How often the dispatches held back by limits are kept (`deps.store`):
   * well under the timers' published timeout (cli/config.ts uses a third of
   * it). @defaultValue 60000
   */
  keepHeldMs?: number;
}

/** How long a lane partition's backlog holds lower bands back after its batch was handled, unless a next batch renews it. */
export const BACKLOG_HELD_MS = 1000;

interface Backlog {
  priority: number;
  n: number;
  /** Ends the wait that drops it, once its batch was handled. */
  expire: AbortController | null;
}

/** `WorkerOptions.keepHeldMs` when not given. */
export const KEEP_HELD_MS = 60_000;
/** After a failed keep, the next try comes this soon (or at `keepHeldMs`, if sooner). */
const KEEP_HELD_RETRY_MS = 5_000;
/** How long the loop of held dispatches sleeps with none held (a hold wakes it sooner). */
const HELD_IDLE_MS = 60_000;

/** How often a worker serving every queue looks for new lanes, unless told otherwise. */
export const LANE_DISCOVERY_MS = 2000;

export interface WorkerDeps {
  log: EventLog;
  transitions: TransitionService;
  clock: Clock;
  logger: Logger;
  registry: HandlerRegistry;
  /** Traces each attempt (engine/tracing.ts); omit for no tracing work at all. */
  tracer?: Tracer;
  /** Told how long each handler ran (engine/metrics.ts). @defaultValue none */
  metrics?: Pick<Metrics, 'attemptRan'>;
  /**
   * Sizes leases and judges failures from each type's history (enforce mode;
   * in the others it answers null and the static settings hold). @defaultValue none
   */
  advisor?: Pick<Advisor, 'adviseFailure' | 'leaseFor'> & Partial<Pick<Advisor, 'claimed'>>;
  /** Stores handlers' progress (`ctx.progress`); without it progress is checked and dropped. @defaultValue none */
  progress?: Pick<ProgressStore, 'setProgress'>;
  /**
   * Told every `keepHeldMs` which dispatches this worker holds back for their
   * limit, so the timers do not dispatch those jobs again as lost; without
   * it they do, every published timeout. @defaultValue none
   */
  store?: Pick<JobStore, 'keepDispatches'>;
}

export { AbortReason, type AbortKind } from './abort-reason.js';

export interface WorkerCounters {
  claimed: number;
  /** Dispatch messages whose claim the machine rejected (duplicate or stale). */
  skipped: number;
  succeeded: number;
  failed: number;
  /** Outcomes the machine rejected (a zombie reporting late). */
  lateOutcomes: number;
  /** Outcome writes that failed and were tried again. */
  outcomeRetries: number;
  /** Cancel messages for an attempt this worker does not run (stale, duplicate, or another worker's). */
  cancelsIgnored: number;
  /** Messages skipped because their `ats-schema` major version is one this code does not know. */
  unknownSchema: number;
  /** Dispatches skipped because this worker has no handler for their type (the job waits for one that has). */
  unhandled: number;
  /** Claims refused by their concurrency key's limit (engine/limits.ts): the dispatch waits here and is tried again. */
  throttled: number;
}

/** Types without a handler here whose last warning is remembered (a bound, should a producer send endless types). */
const UNHANDLED_TYPES_TRACKED = 1000;

/**
 * The reason an attempt's signal aborts once the attempt is over, ending the
 * worker's waits (one shared, frozen value: no stack built per job). The
 * handler's signal is not aborted for it (`handlerSignal`).
 */
const ATTEMPT_FINISHED = Object.freeze(new AbortReason('shutdown', 'attempt finished'));

/**
 * Once the shutdown grace ran out, how long the worker waits for the
 * outcomes of the attempts it interrupted (and of any still being written)
 * before it gives them up to the lease expiry. A store that answers takes
 * milliseconds, with room for a few tries; the bound keeps `stop()` short
 * when it does not, well within the 5 s the process allows beyond the grace
 * (cli/start.ts) for the API's drain, the relay, the log and the store.
 */
export const SHUTDOWN_WRITE_MS = 1000;

/**
 * Once its attempts ended (or {@link SHUTDOWN_WRITE_MS} passed), `stop()`
 * sends nothing more to the store; how long it then waits for the writes
 * already sent (an outcome batch, a heartbeat, a progress write), so that one
 * the store takes lands before `stop()` returns. One the store has still not
 * answered by then may land later (nothing can call it back), or not. The
 * process's 5 s beyond the grace (cli/start.ts) has room for it.
 */
export const SHUTDOWN_IN_FLIGHT_MS = 250;

/** The first pause between tries of an outcome write; it doubles up to {@link OUTCOME_RETRY_MAX_MS}. */
export const OUTCOME_RETRY_FIRST_MS = 100;
export const OUTCOME_RETRY_MAX_MS = 2000;

/**
 * How long before its lease ends an attempt whose lease no heartbeat extended
 * is given up (its signal aborted, `lease-lost`): at most this, and a tenth of
 * the lease (`giveUpAt`). The lease is written in the worker's clock and
 * judged by the timers' (both the database's, read through a measured
 * offset: engine/db-clock.ts), which agree within a few milliseconds; the
 * margin covers that, so the handler is told before the timers can record
 * LEASE_EXPIRED, and a retry never starts beside it.
 */
export const LEASE_MARGIN_MS = 1000;
/** The shortest pause between heartbeat tries as the give-up time nears (see `heartbeatLoop`). */
export const HEARTBEAT_MIN_PAUSE_MS = 10;

/**
 * How long a handler may go on after its attempt was given up (a timeout, a
 * cancel, a lost lease) before the worker warns that it ignores its abort
 * signal: its slot stays taken until it returns (`holdSlot`). A handler that
 * heeds its signal stops within milliseconds, or cleans up for a moment; a
 * few seconds tell those apart from one that waits on what the abort cannot
 * end (a dead connection without a timeout of its own).
 */
export const LINGERING_WARN_MS = 5000;
/** The longest error text the log line of a job gone dead carries. */
const DEAD_ERROR_LOGGED_CHARS = 300;
/** The handlers a stop that leaves some running names in its log line (the count says how many in all). */
const LINGERING_LOGGED = 20;

/**
 * A handler whose call runs this long or longer before it returns its promise
 * (CPU work before its first await) is named in a warning: it held the event
 * loop, so no heartbeat, timeout, cancel, Kafka heartbeat or other handler of
 * the process ran meanwhile, and a hold longer than a lease loses the
 * attempts running here (LEASE_EXPIRED, `lease-lost`) however healthy.
 */
export const BLOCKING_WARN_MS = 1000;

interface Running {
  attempt: number;
  /** The job's type (for `runningAttempts`). */
  type: string;
  /** Aborted when the attempt is given up (its timeout, a cancel, a lost lease, the shutdown, a crash), and once it is over (ATTEMPT_FINISHED): ends the worker's own waits. */
  abort: AbortController;
  /** The handler's `ctx.signal` (see `handlerSignal`), and what stops it following `abort` once the handler returned or threw. */
  handler: { signal: AbortSignal; ended: () => void };
  done: Promise<void>;
  /** The lease as last written (claim or heartbeat), in the clock's time; the attempt is given up a margin before it (`giveUpAt`). */
  leaseUntil: number;
  /** This attempt's lease length and heartbeat period (the advisor's, or the worker's settings). */
  leaseMs: number;
  heartbeatMs: number;
  /** The handler settled: heartbeats stop, the outcome write has what is left of the lease. */
  settled: boolean;
  /** How late the heartbeat loop's last pause ended: the event loop held that long (CPU work of a handler) sent no heartbeat. */
  heartbeatLateMs: number;
  /** The heartbeat write in flight, and the one to follow it that the calls made meanwhile share (`beat`). */
  beats: { inFlight: Promise<void> | null; next: Promise<void> | null };
  /** The attempt's logger (`jobId`, `type`, `attempt` on each line): the handler's `ctx.log`. */
  log: Logger;
  /** The handler was called: its slot is given back once its own promise settles (`holdSlot`), not before. */
  handlerCalled: boolean;
}

/** A handler still running after its attempt was given up: it holds its slot until it settles. */
interface Lingering {
  /** The attempt it ran, and what gave the attempt up (for the log of a stop that leaves it running). */
  jobId: string;
  type: string;
  attempt: number;
  abortedBy: string;
  /** Ends the wait before the warning (the handler settled, or the worker crashed). */
  watch: AbortController;
  /** The warning was logged (once per attempt). */
  warned: boolean;
}

/** A lease an attempt is claimed with: its length and heartbeat period, and the advisor's advice it came from (null: the static one). */
interface Lease {
  leaseMs: number;
  heartbeatMs: number;
  advised: LeaseAdvice | null;
}

/** A claim this worker sent whose write failed: it may have committed all the same (its answer lost). */
interface LostClaim {
  jobId: string;
  attempt: number;
  leaseUntil: number;
  lease: Lease;
}

/** Claims whose write failed a worker remembers (each for its lease at most); beyond, the oldest are forgotten. */
export const LOST_CLAIMS_KEPT = 10_000;

/** An attempt's progress reporting: its reporter (made at the first report), and whether the attempt is over here. */
interface Progress {
  reporter: ProgressReporter | null;
  over: boolean;
}

export class Worker {
  private readonly slots: Semaphore;
  private readonly running = new Map<string, Running>();
  /** Handlers still running after their attempts were given up (`holdSlot`): each holds its slot. */
  private readonly lingering = new Set<Lingering>();
  /** Claims sent from here whose write failed, by job id and lease (`lostClaimKey`), oldest first: see `adoptable`. */
  private readonly lostClaims = new Map<string, LostClaim>();
  private readonly outcomes: Batcher<{ jobId: string; event: EventInput }, Settled<ApplyResult>>;
  private subscriptions: Subscription[] = [];
  /** The lanes subscribed to (or being subscribed to). */
  private readonly lanes = new Set<string>();
  /** Per lane partition read here (`<lane>#<partition>`): the dispatches Kafka held behind its last batch. */
  private readonly backlogs = new Map<string, Backlog>();
  /** Dispatches held back by their key's limit, and when to claim which again. */
  private readonly held = new HeldDispatches();
  /** Wakes the loop that claims held dispatches again (a due time came closer, or a job of a held key ended here). */
  private wakeHeld: () => void = () => {};
  private heldLoop: Promise<void> = Promise.resolve();
  /** When the held dispatches are next kept (`keepHeld`). */
  private keepHeldAt = -Infinity;
  /** The lane discovery loop of a worker serving every queue; resolves once it ended. */
  private discovery: Promise<void> = Promise.resolve();
  private stopping = new AbortController();
  /** Aborted when outcome writes must stop being retried (shutdown grace over, or a crash). */
  private abandon = new AbortController();
  private crashed = false;
  /** Why the worker sends nothing more to the store (a crash, or a stop past its bound); null while it writes. */
  private writesClosed: AbortReason | null = null;
  /** The store writes in flight (claims, outcome batches, heartbeats, progress): what a crash or a stop waits for. */
  private readonly writes = new Set<Promise<unknown>>();
  readonly counters: WorkerCounters = {
    claimed: 0, skipped: 0, succeeded: 0, failed: 0, lateOutcomes: 0, outcomeRetries: 0, cancelsIgnored: 0, unknownSchema: 0, unhandled: 0, throttled: 0,
  };
  /** The types without a handler here said within the last minute: a warning once a minute each, the rest at debug. */
  private readonly unhandledLogged = new RepeatedLines(() => this.deps.clock.now(), UNHANDLED_TYPES_TRACKED);
  /** The types whose jobs went dead within the last minute, said at warn once a minute each (`logDead`). */
  private readonly deadLogged = new RepeatedLines(() => this.deps.clock.now());
  /** The dispatches dropped past THROTTLED_KEPT held ones. */
  private readonly heldDropLogged = new RepeatedLines(() => this.deps.clock.now());
  /** While held dispatches are claimed again: their job ids, and the attempt of each that started. */
  private reclaiming: { ids: ReadonlySet<string>; started: Map<string, number> } | null = null;
  /** The schema versions of records skipped within the last minute: a warning once a minute each, the rest at debug. */
  private readonly schemaLogged = new RepeatedLines(() => this.deps.clock.now());

  constructor(private readonly deps: WorkerDeps, private readonly opts: WorkerOptions) {
    this.slots = new Semaphore(opts.concurrency);
    // Each call goes through `write`: once the writes are closed, what is still queued is refused, not sent.
    this.outcomes = new Batcher((items) => eachAloneOnFailure(items, (batch) => this.write(() => deps.transitions.applyMany(batch))));
  }

  /** Subscribes to the lanes of the queues served (those found in the log, when it serves every queue). */
  async start(): Promise<void> {
    this.stopping = new AbortController();
    // Every batch waiting for a handler slot listens on it (one per lane partition read here, and the
    // held dispatches' loop), each listener gone once its wait ends: no leak, only more than Node's 10
    // with a dozen lane partitions, which would print a "possible memory leak" warning.
    setMaxListeners(0, this.stopping.signal);
    this.abandon = new AbortController();
    if (!this.crashed) this.writesClosed = null;
    this.lanes.clear();
    this.heldLoop = this.retryHeld(this.stopping.signal);
    const { queues } = this.opts;
    if (queues && queues.length > 0) {
      await this.subscribe(queues.flatMap(lanesOf));
      return;
    }
    // A log that cannot list its topics fails the start; a lane that fails to subscribe is left for the next discovery.
    const found = await this.lanesInLog();
    await this.subscribe(found).catch((err: unknown) => {
      this.deps.logger.warn('worker: subscribing to dispatch lanes failed; will try again', errorFields(err));
    });
    const signal = this.stopping.signal;
    this.discovery = this.discoverUntil(signal);
  }

  /**
   * The lanes of every queue with a lane in the log (and of the default
   * queue): all three lanes of each, so a queue's first high job finds its
   * lane read.
   */
  private async lanesInLog(): Promise<string[]> {
    const found = new Set(lanesOf(LEGACY_QUEUE));
    for (const topic of await this.deps.log.listTopics()) {
      const lane = parseLane(topic);
      if (lane) for (const t of lanesOfSegment(lane.segment)) found.add(t);
    }
    return [...found];
  }

  /** Subscribes to the lanes in the log not read yet (see `lanesInLog`). */
  private async discoverLanes(): Promise<void> {
    await this.subscribe(await this.lanesInLog());
  }

  private async discoverUntil(signal: AbortSignal): Promise<void> {
    const every = this.opts.laneDiscoveryMs ?? LANE_DISCOVERY_MS;
    // A broker outage fails every round: logged as an outage (the first, a line a minute, the end), not each round.
    const outage = new OutageLog(this.deps.logger, 'worker: looking for new dispatch lanes', {
      level: 'warn', failedMessage: 'worker: looking for new dispatch lanes failed; will look again',
    });
    while (await this.deps.clock.sleep(every, signal).then(() => true, () => false)) {
      try {
        await this.discoverLanes();
        outage.succeeded();
      } catch (err) {
        if (!signal.aborted) outage.failed(err, this.deps.clock.now());
      }
    }
  }

  /**
   * Subscribes to the lanes not read yet, band by band (high first: a band's
   * lanes are joined before the next band's, so the high ones run first at
   * start). A lane that fails to subscribe is left for the next discovery
   * (or, with a fixed queue list, fails the start); the lanes of the next
   * bands are subscribed all the same, so a lane that always fails holds no
   * other lane back. Throws the first failure, once every band was tried.
   * Once the worker stops, the bands not begun yet are not joined.
   */
  private async subscribe(topics: readonly string[]): Promise<void> {
    const { log } = this.deps;
    const fresh = [...new Set(topics)].filter((t) => !this.lanes.has(t));
    let firstFailure: PromiseRejectedResult | undefined;
    for (const band of BANDS) {
      // Stopped meanwhile (a stop no longer waits for this round first): no more lanes joined only to be left.
      if (this.stopping.signal.aborted) break;
      const ofBand = fresh.filter((t) => (parseLane(t)?.band ?? 'normal') === band);
      const results = await Promise.allSettled(ofBand.map(async (topic) => {
        this.lanes.add(topic);
        try {
          const sub = await log.consume({
            topic, groupId: laneGroup(this.opts.groupId, topic), fromBeginning: true,
            handle: (records, batch) => this.handleDispatches(records, batch, topic),
            // A stop gives up a join still in progress (up to the log's ready timeout, 30 s on Kafka).
            signal: this.stopping.signal,
          });
          if (this.stopping.signal.aborted) await sub.stop();
          else this.subscriptions.push(sub);
        } catch (err) {
          this.lanes.delete(topic);
          throw err;
        }
      }));
      firstFailure ??= results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    }
    if (firstFailure) throw firstFailure.reason;
  }

  /**
   * Stop taking work and let running handlers finish, up to the grace period.
   * Past it, the handlers still running are aborted and their attempts end
   * here: once its handler has stopped, each is recorded as a retryable
   * failure saying the worker shut down before the handler finished. The
   * attempt counts (its handler may have had side effects), so the job
   * retries after its backoff, or goes dead with that reason if it has no
   * attempt left. The handlers' stopping and these last writes (and those of
   * attempts whose outcome was still being written) get
   * {@link SHUTDOWN_WRITE_MS}; past that the worker gives up on them, and the
   * leases of the attempts not recorded expire and the timers retry them.
   * Then nothing more is sent to the store (an outcome still queued is
   * dropped, and so is what a handler that goes on reports), and the writes
   * already sent get {@link SHUTDOWN_IN_FLIGHT_MS} to land before `stop()`
   * returns: only one the store has still not answered may land after it.
   *
   * Should a subscription fail to stop, all the rest happens all the same
   * (the other subscriptions stop, the running attempts end as above), and
   * `stop()` then throws that failure.
   */
  async stop(): Promise<void> {
    this.stopping.abort(new AbortReason('shutdown', 'worker shutting down'));
    try {
      // Not the discovery round in progress first: a lane it is still joining (seconds on Kafka) would
      // hold back the grace, and the process's deadline does not wait. That join is given up (the stop
      // signal aborts its `consume`); one that ended meanwhile is stopped at once (`subscribe`), and
      // claims nothing meanwhile (no slot is given after the stop).
      await settleAll(this.subscriptions.map((s) => s.stop()));
    } finally {
      this.subscriptions = [];
      try {
        await this.endWork();
      } finally {
        await this.discovery;
        // What a lane joined after the stop noted of its partitions' backlog.
        this.dropBacklogs();
        this.logLingeringAtStop();
      }
    }
  }

  /** The rest of stop(), once no dispatch is read any more: hand back the held ones, then end the running attempts. */
  private async endWork(): Promise<void> {
    this.dropBacklogs();
    await this.heldLoop;
    await this.releaseHeld();
    const { logger } = this.deps;
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    try {
      if (await this.within(all(), this.opts.shutdownGraceMs)) {
        await this.outcomes.flush();
        return;
      }
      const interrupted = new AbortReason(
        'shutdown', `the worker ${this.opts.workerId} shut down before the handler finished (its ${this.opts.shutdownGraceMs} ms shutdown grace ran out)`,
      );
      // Each interrupted attempt records its failure once its handler stopped (execute), within the bound.
      for (const r of this.running.values()) r.abort.abort(interrupted);
      if (!(await this.within(all().then(() => this.outcomes.flush()), SHUTDOWN_WRITE_MS))) {
        logger.warn('worker: attempts not ended in time at shutdown (a handler still running, or the store not answering); the timers take these jobs over when their leases end', {
          attempts: this.running.size, waitedMs: SHUTDOWN_WRITE_MS,
        });
      }
    } finally {
      // Nothing more is sent (an outcome still queued is dropped), even for a handler that goes on.
      this.closeWrites(new AbortReason('shutdown', 'the worker stopped'));
      this.abandon.abort(new AbortReason('shutdown', 'worker shut down before the outcome was written'));
    }
    // The writes already sent (past the bound an outcome batch, or a heartbeat) get a short wait to land before stop() returns.
    if (!(await this.writesSettled(SHUTDOWN_IN_FLIGHT_MS))) {
      logger.warn('worker: store writes still unanswered at shutdown; they may land after the worker stopped', {
        writes: this.writes.size, waitedMs: SHUTDOWN_IN_FLIGHT_MS,
      });
    }
  }

  /**
   * Says which handlers the stop leaves running: they outlived their
   * attempts (a timeout, a cancel, a lost lease, or the shutdown's own
   * abort), which are recorded or left to their leases, and the process's
   * exit cuts them off wherever they are.
   */
  private logLingeringAtStop(): void {
    if (this.lingering.size === 0) return;
    const handlers = [...this.lingering].slice(0, LINGERING_LOGGED).map(({ jobId, type, attempt, abortedBy }) => ({ jobId, type, attempt, abortedBy }));
    this.deps.logger.warn('worker: stopped with handlers still running after their attempts were given up (they ignore their abort signal): the exit cuts them off wherever they are', {
      count: this.lingering.size, handlers,
    });
  }

  /**
   * Simulate a crash (tests): drop the subscriptions without committing, abandon
   * running handlers and write nothing more, as a SIGKILL would. Their leases
   * expire and the timers retry them; uncommitted records go to another member.
   * From the call on nothing more is sent to the store (a claim in flight
   * that lands starts no handler, a queued outcome is dropped), and it returns
   * once the writes already sent have settled: none lands after it returned.
   */
  async crash(): Promise<void> {
    this.crashed = true;
    const reason = new AbortReason('shutdown', 'worker crashed');
    this.closeWrites(reason);
    this.stopping.abort(reason);
    this.abandon.abort(reason);
    for (const r of this.running.values()) r.abort.abort(reason);
    // A dead process says nothing more of the handlers that outlived their attempts.
    for (const l of this.lingering) l.watch.abort();
    try {
      await this.discovery;
      await settleAll(this.subscriptions.map((s) => s.stop()));
    } finally {
      this.subscriptions = [];
      this.dropBacklogs();
      await this.heldLoop;
      this.held.clear();
      await this.writesSettled();
    }
  }

  /** Sends a store write unless the worker's writes are closed (it then rejects with why), tracked until it settles. */
  private write<T>(send: () => Promise<T>): Promise<T> {
    if (this.writesClosed) return Promise.reject(this.writesClosed);
    const p = send();
    this.writes.add(p);
    const forget = () => void this.writes.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** From now on nothing more is sent to the store. */
  private closeWrites(reason: AbortReason): void {
    this.writesClosed ??= reason;
  }

  /** True once the writes in flight have settled (none starts after closeWrites); false if `ms` passed first. */
  private async writesSettled(ms?: number): Promise<boolean> {
    if (this.writes.size === 0) return true;
    const settled = (async () => {
      while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
    })();
    if (ms === undefined) return settled.then(() => true);
    return this.within(settled, ms);
  }

  /** True when `work` resolves within `ms` of the worker's clock, false when the time passes first (the wait is then dropped). */
  private async within(work: Promise<unknown>, ms: number): Promise<boolean> {
    const waits = new AbortController();
    try {
      return await Promise.race([work.then(() => true), this.deps.clock.sleep(ms, waits.signal).then(() => false, () => false)]);
    } finally {
      waits.abort();
    }
  }

  private dropBacklogs(): void {
    for (const b of this.backlogs.values()) this.dropBacklog(b);
    this.backlogs.clear();
  }

  get activeCount(): number {
    return this.running.size;
  }

  /**
   * Handler slots taken and free now (a slot is given back once its handler
   * settled, even one that went on after its attempt was given up), of the
   * busy ones those whose handler still runs after its attempt was given up
   * (`lingering`: see `holdSlot`), and dispatches read here waiting for one
   * (one per lane partition at most: a batch asks for its next slot once it
   * got the last).
   */
  slotUsage(): { busy: number; free: number; lingering: number; waiting: number } {
    const free = this.slots.available;
    return { busy: this.opts.concurrency - free, free, lingering: this.lingering.size, waiting: this.slots.waiting };
  }

  /**
   * The attempts this worker runs now (claimed, their outcome not written yet), oldest first: what an
   * exit the worker did not decide leaves to their leases (cli/start.ts says which).
   */
  runningAttempts(): Array<{ jobId: string; type: string; attempt: number }> {
    return [...this.running].map(([jobId, r]) => ({ jobId, type: r.type, attempt: r.attempt }));
  }

  /** Abort the handler of the cancelled attempt, if it runs here; any other attempt is left alone. */
  private cancel(m: CancelMessage): void {
    const r = this.running.get(m.jobId);
    if (r?.attempt !== m.attempt) {
      this.counters.cancelsIgnored++;
      return;
    }
    r.abort.abort(new AbortReason('cancelled', `the job was cancelled: ${m.reason ?? 'cancelled'}`));
  }

  /**
   * Applies the batch's cancels first (they need no slot, and must not wait
   * behind claims), then claims every dispatch before resolving, waiting for
   * free slots: Kafka's offset commit follows, and must only cover claims that
   * are durable.
   */
  private async handleDispatches(records: readonly LogRecord[], batch?: BatchInfo, lane?: string): Promise<void> {
    const { messages, read, priorities } = this.readDispatches(records);
    // Held here until claimed: while they are, no dispatch of a lower priority (another lane's) takes a slot.
    for (const p of priorities) this.slots.announce(p);
    // Announced before the partition's previous backlog figure goes, so no lower waiter slips through in between.
    const backlogHeld = lane !== undefined && records.length > 0 ? this.noteBacklog(lane, records[0]!.partition, batch?.behind ?? 0) : null;
    try {
      // A rebalance ends the wait for slots: the dispatches not claimed come again after the rejoin (see BatchInfo.signal).
      await this.claimDispatches(messages, read, priorities, batch?.signal);
    } finally {
      backlogHeld?.();
    }
  }

  /**
   * The dispatches left in Kafka behind a batch of a `high` or `normal` lane
   * count as announced work of the band's lowest priority (1 or 0), so a
   * lower band takes no slot while this worker's partitions of a higher lane
   * still hold some. Each batch replaces its partition's figure; one that is
   * not renewed within {@link BACKLOG_HELD_MS} of its batch's end (the
   * partition went to another worker, or its records are gone) is dropped.
   * Returns what to call when the batch is handled.
   */
  private noteBacklog(lane: string, partition: number, behind: number): () => void {
    const band = parseLane(lane)?.band;
    const floor = band === 'high' ? 1 : band === 'normal' ? 0 : null;
    if (floor === null) return () => {};
    const key = `${lane}#${partition}`;
    const old = this.backlogs.get(key);
    const entry: Backlog = { priority: floor, n: Math.max(0, behind), expire: null };
    // The new figure before the old one goes, so no lower waiter slips through in between.
    if (entry.n > 0) {
      this.slots.announce(entry.priority, entry.n);
      this.backlogs.set(key, entry);
    } else this.backlogs.delete(key);
    if (old) this.dropBacklog(old);
    return () => {
      if (this.backlogs.get(key) !== entry) return;
      const expire = (entry.expire = new AbortController());
      void this.deps.clock.sleep(BACKLOG_HELD_MS, expire.signal).then(() => {
        if (this.backlogs.get(key) !== entry) return;
        this.backlogs.delete(key);
        this.dropBacklog(entry);
      }, () => undefined);
    };
  }

  private dropBacklog(b: Backlog): void {
    b.expire?.abort();
    this.slots.settle(b.priority, b.n);
  }

  /**
   * The batch's dispatches this worker can run, highest priority first (a
   * stable sort; most batches are of one priority and need none), with their
   * records (when traced) and priorities. Applies the batch's cancels on the
   * way, and skips what it cannot read or has no handler for.
   */
  private readDispatches(records: readonly LogRecord[]): { messages: DispatchMessage[]; read: LogRecord[] | null; priorities: number[] } {
    const messages: DispatchMessage[] = [];
    // Traced: each dispatch's record, for its trace headers and the attempt span's attributes.
    const read: LogRecord[] | null = this.deps.tracer ? [] : null;
    for (const r of records) {
      if (!readableSchema(r.headers)) {
        this.counters.unknownSchema++;
        // A newer producer's records come by the thousand (a rolling upgrade): a line a minute per version.
        this.schemaLogged.warn(this.deps.logger, String(r.headers[SCHEMA_HEADER]), 'worker: message of an unknown schema version skipped (the timers dispatch a job again if nothing started it)', {
          schema: r.headers[SCHEMA_HEADER], kind: r.headers[KIND_HEADER], key: r.key, partition: r.partition, offset: r.offset,
          skippedSoFar: this.counters.unknownSchema,
        });
        continue;
      }
      const m = safeParse<unknown>(r.value);
      if (isCancel(r, m)) this.cancel(m);
      else if (isDispatch(m)) {
        if (!this.deps.registry.get(m.type)) {
          this.unhandled(m);
          continue;
        }
        messages.push(m);
        read?.push(r);
      }
    }
    return highestFirst(messages, read);
  }

  /**
   * Claims the announced dispatches, each once a slot is free for it, several
   * in one transaction when several slots are; each is settled once its
   * claim is written or given up. Throws, the rest not claimed, should the
   * worker stop or `giveUp` abort while it waits for a slot.
   */
  private async claimDispatches(
    messages: readonly DispatchMessage[], read: readonly LogRecord[] | null, priorities: readonly number[], giveUp?: AbortSignal,
  ): Promise<void> {
    const either = giveUp ? eitherAborted(this.stopping.signal, giveUp) : null;
    const waits = either?.signal ?? this.stopping.signal;
    let i = 0;
    try {
      while (i < messages.length) {
        await this.slots.acquire(waits, priorities[i]!);
        let n = 1;
        while (i + n < messages.length && this.slots.tryAcquire(priorities[i + n])) n++;
        try {
          await this.claim(messages.slice(i, i + n), read?.slice(i, i + n));
        } finally {
          for (let k = i; k < i + n; k++) this.slots.settle(priorities[k]!);
          i += n;
        }
      }
    } finally {
      either?.dispose();
      for (let k = i; k < messages.length; k++) this.slots.settle(priorities[k]!);
    }
  }

  /**
   * A dispatch of a type this worker has no handler for: not claimed, so the
   * job is not failed for it. It stays dispatched; the timers dispatch it
   * again once a live worker has the handler
   * (engine/timers.ts), and `/v1/stats` lists it as unserved while none
   * does (engine/worker-presence.ts). Logged at warn at most once a minute
   * per type (the rest at debug, counted by the next warning's `repeated`).
   */
  private unhandled(m: DispatchMessage): void {
    this.counters.unhandled++;
    this.unhandledLogged.warn(this.deps.logger, m.type, 'worker: dispatch skipped: no handler is registered here for its type (the job waits; the timers dispatch it again once a live worker has the handler)', {
      jobId: m.jobId, type: m.type, queue: m.queue, attempt: m.attempt, skippedSoFar: this.counters.unhandled,
    });
  }

  /** Claim up to one slot per message (the slots are held); release the slots of rejected claims. */
  private async claim(messages: readonly DispatchMessage[], records?: readonly LogRecord[]): Promise<void> {
    const { transitions, clock, logger } = this.deps;
    if (this.crashed) throw new AbortReason('shutdown', 'worker crashed');
    const now = clock.now();
    const leases = messages.map((m) => this.leaseOf(m));
    let results: ApplyResult[];
    try {
      results = await this.write(() => transitions.applyMany(messages.map((m, k) => ({
        jobId: m.jobId,
        event: { type: 'STARTED' as const, attempt: m.attempt, leaseUntil: now + leases[k]!.leaseMs, workerId: this.opts.workerId },
      }))));
    } catch (err) {
      for (const _ of messages) this.slots.release();
      // Delivered again, since the batch is not handled; should this claim have committed, that dispatch adopts it.
      this.rememberLostClaims(messages.map((m, k) => ({ jobId: m.jobId, attempt: m.attempt, leaseUntil: now + leases[k]!.leaseMs, lease: leases[k]! })), now);
      throw err;
    }
    results.forEach((r, k) => {
      if (!r.ok && r.reason === 'throttled') {
        this.slots.release();
        this.hold(messages[k]!, records?.[k], r.key, r.why, r.retryAfterMs, now);
        return;
      }
      // Our own claim, committed although its write seemed to fail: run it (the slot stays the handler's).
      const lost = !r.ok && r.reason === 'not-allowed' ? this.adoptable(messages[k]!, r.job, now) : null;
      if (lost) {
        const m = messages[k]!;
        this.counters.claimed++;
        logger.info('worker: a claim whose answer was lost had committed: its attempt runs', { jobId: m.jobId, type: m.type, attempt: m.attempt });
        this.ask(() => this.deps.advisor?.claimed?.(m.type, m.queue, lost.lease.advised));
        if (this.reclaiming?.ids.has(m.jobId)) this.reclaiming.started.set(m.jobId, m.attempt);
        this.launch(lost.job, m.attempt, lost.leaseUntil, lost.lease, records?.[k]);
        return;
      }
      if (!r.ok) {
        this.counters.skipped++;
        this.slots.release();
        if (r.reason === 'machine-unknown') {
          logger.warn('worker: dispatch skipped: a job machine version this worker does not run wrote the job; the timers dispatch it again later',
            { jobId: messages[k]!.jobId, type: messages[k]!.type, attempt: messages[k]!.attempt, ...errorFields(r.error) });
          return;
        }
        logger.debug('worker: dispatch skipped (duplicate or stale)', { jobId: messages[k]!.jobId, type: messages[k]!.type, attempt: messages[k]!.attempt, reason: r.reason });
        return;
      }
      this.counters.claimed++;
      const m = messages[k]!;
      // The lease this claim took: the advisor's, or null for the static one (its own was not usable).
      this.ask(() => this.deps.advisor?.claimed?.(m.type, m.queue, leases[k]!.advised));
      if (this.reclaiming?.ids.has(m.jobId)) this.reclaiming.started.set(m.jobId, m.attempt);
      this.launch(r.job, m.attempt, now + leases[k]!.leaseMs, leases[k]!, records?.[k]);
    });
  }

  /**
   * Remembers the claims of a write that failed: a transaction whose answer
   * was lost may have committed (the job then runs the attempt under this
   * worker's id, and nothing runs its handler). Each is kept until its lease
   * ends; the expired ones are forgotten here.
   */
  private rememberLostClaims(claims: readonly LostClaim[], now: number): void {
    for (const [key, c] of this.lostClaims) if (c.leaseUntil <= now) this.lostClaims.delete(key);
    for (const c of claims) this.lostClaims.set(lostClaimKey(c.jobId, c.leaseUntil), c);
    for (const key of this.lostClaims.keys()) {
      if (this.lostClaims.size <= LOST_CLAIMS_KEPT) break;
      this.lostClaims.delete(key);
    }
  }

  /**
   * The claim to adopt for a dispatch whose STARTED the machine rejected, or
   * null (a duplicate or stale dispatch, skipped). One is adopted when the
   * job runs the dispatch's attempt as this very claim left it: under this
   * worker's id, with the lease a claim sent from here whose write failed
   * asked for (so it committed, its answer lost, and no heartbeat moved it
   * since). Only a claim this process sent and remembers is adopted: a
   * process restarted with the same worker id (an id is the host name and
   * the pid unless set), or another one given it, never runs an attempt it
   * did not claim itself (the lease's expiry retries it). Each is adopted
   * once, and not while the attempt runs here; nor when too little of its
   * lease is left to run (`giveUpAt`): the timers take the job back.
   */
  private adoptable(m: DispatchMessage, job: JobRecord, now: number): (LostClaim & { job: JobRecord }) | null {
    const { value, context } = job.snapshot;
    if (value !== 'running' || context.attempt !== m.attempt || context.workerId !== this.opts.workerId || context.leaseUntil === null) return null;
    const key = lostClaimKey(job.id, context.leaseUntil);
    const lost = this.lostClaims.get(key);
    if (!lost || lost.attempt !== m.attempt) return null;
    this.lostClaims.delete(key);
    if (this.running.has(job.id) || now >= giveUpAt({ leaseUntil: lost.leaseUntil, leaseMs: lost.lease.leaseMs })) return null;
    return { ...lost, job };
  }

  /**
   * Keeps a dispatch its key's limit refused, to claim it again when
   * engine/held-dispatches.ts says. The job stays `published` meanwhile;
   * nothing is written and no attempt is spent. Its offset is committed like
   * the rest of the batch, so the jobs behind it in the partition go on:
   * should this worker die, the timers dispatch the job again after the
   * published timeout.
   */
  private hold(
    message: DispatchMessage, record: LogRecord | undefined, key: string, why: RefusedWhy, retryAfterMs: number | null, now: number,
  ): void {
    this.counters.throttled++;
    const dropped = this.held.hold(message, record, key, why, retryAfterMs, now);
    if (dropped !== null) {
      // One warning a window (a paused key's backlog drops one a dispatch): the rest at debug, counted by the next.
      this.heldDropLogged.warn(this.deps.logger, 'dropped', 'worker: too many dispatches held back by limits; the oldest is left to the timers\' re-dispatch', { jobId: dropped, kept: THROTTLED_KEPT });
    }
    this.wakeHeld();
  }

  /**
   * An attempt of this job ended here: the limit it may have counted against
   * (its own key; without one, its type's or queue's default, engine/limits.ts
   * `limitKeyOf`) lets one more of its held dispatches go now.
   */
  private keysFreed(job: JobRecord): void {
    // As stored: qualified by the job's tenant (engine/limits.ts), as a throttled claim names its key.
    const keys = job.concurrencyKey !== undefined
      ? [storedLimitKey(job.tenant, job.concurrencyKey)]
      : [storedLimitKey(job.tenant, `type:${job.type}`), storedLimitKey(job.tenant, `queue:${job.queue}`)];
    if (this.held.freed(keys)) this.wakeHeld();
  }

  /** Claims held dispatches again as they come due, until the signal aborts. */
  private async retryHeld(signal: AbortSignal): Promise<void> {
    const { clock } = this.deps;
    while (!signal.aborted) {
      if (this.held.size > 0 && clock.now() >= this.keepHeldAt) await this.keepHeld();
      const now = clock.now();
      const round = this.held.take(now);
      if (round) {
        // Traced: each dispatch's record (a worker keeps them all, or none).
        const traced = round.due.every((h) => h.record) ? round.due.map((h) => h.record!) : null;
        const { messages, read, priorities } = highestFirst(round.due.map((h) => h.message), traced);
        for (const p of priorities) this.slots.announce(p);
        const started = new Map<string, number>();
        this.reclaiming = { ids: new Set(messages.map((m) => m.jobId)), started };
        try {
          await this.claimDispatches(messages, read, priorities);
          this.held.settle(round, started);
        } catch (err) {
          // Not all claimed (stopping, or a database blip): held again (a claimed one's DISPATCH is refused later, harmlessly).
          this.held.restore(round, clock.now() + THROTTLE_RETRY_MAX_MS);
          if (signal.aborted) return;
          this.deps.logger.warn('worker: claiming dispatches held back by limits failed; will try again', errorFields(err));
        } finally {
          this.reclaiming = null;
        }
        continue;
      }
      const next = Math.min(this.held.size > 0 ? this.keepHeldAt : Infinity, this.held.nextAt());
      // Until the next is due (or a while, with none held), a wake, or the stop.
      const wake = new AbortController();
      const onAbort = () => wake.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      // A stop that came while this pass kept or claimed: its abort fired before the listener, so the wait ends now.
      if (signal.aborted) wake.abort();
      this.wakeHeld = () => wake.abort();
      await clock.sleep(next === Infinity ? HELD_IDLE_MS : Math.max(1, next - now), wake.signal).catch(() => undefined);
      signal.removeEventListener('abort', onAbort);
      this.wakeHeld = () => {};
    }
  }

  /**
   * Tells the store which dispatches this worker holds, so the timers do not
   * take them for lost while it does: once every `keepHeldMs` (after a
   * failure, again within KEEP_HELD_RETRY_MS). Should
   * the worker die, the timers dispatch them again one published timeout
   * after the last time they were kept.
   */
  private async keepHeld(): Promise<void> {
    const { clock, store, logger } = this.deps;
    const every = this.opts.keepHeldMs ?? KEEP_HELD_MS;
    if (!store) {
      this.keepHeldAt = Infinity;
      return;
    }
    const now = clock.now();
    try {
      await this.write(() => store.keepDispatches(this.held.jobIds(), now));
      this.keepHeldAt = now + every;
    } catch (err) {
      this.keepHeldAt = now + Math.min(every, KEEP_HELD_RETRY_MS);
      if (!this.stopping.signal.aborted) logger.warn('worker: could not tell the store which dispatches wait here for their limits; will try again', errorFields(err));
    }
  }

  /**
   * On a graceful stop: the held dispatches are issued again (DISPATCH, as
   * the timers do for a lost one), so another worker reads them now rather
   * than after the published timeout.
   */
  private async releaseHeld(): Promise<void> {
    const jobs = this.held.jobIds();
    this.held.clear();
    if (jobs.length === 0) return;
    try {
      await this.write(() => this.deps.transitions.applyMany(jobs.map((jobId) => ({ jobId, event: { type: 'DISPATCH' as const } }))));
    } catch (err) {
      this.deps.logger.warn('worker: dispatches held back by limits not handed back; the timers dispatch them again later', errorFields(err));
    }
  }

  /**
   * The lease and heartbeat period to claim this dispatch with: the advisor's
   * when it gives one the worker can use (`advised`), else the static ones
   * (`advised` null).
   */
  private leaseOf(m: DispatchMessage): Lease {
    const lease = this.ask(() => this.deps.advisor?.leaseFor(m.type, m.queue));
    return lease && usableLease(lease)
      ? { leaseMs: lease.leaseMs, heartbeatMs: lease.heartbeatMs, advised: lease }
      : { leaseMs: this.opts.leaseMs, heartbeatMs: this.opts.heartbeatMs, advised: null };
  }

  /** Runs the claimed attempt, its lease (as the claim wrote it) until `leaseUntil`. */
  private launch(job: JobRecord, attempt: number, leaseUntil: number, lease: Pick<Lease, 'leaseMs' | 'heartbeatMs'>, record?: LogRecord): void {
    if (this.crashed) {
      // Claimed as the worker crashed (the claim was in flight): a dead process starts nothing; the lease covers the job.
      this.slots.release();
      return;
    }
    const abort = new AbortController();
    // The slot is the handler's: it is given back once the handler's own promise
    // settled (`holdSlot`), so the next claims need not wait for this outcome's
    // write (the outcome batcher groups those), and a handler that goes on after
    // its attempt was given up keeps it. The attempt stays in `running` until its
    // outcome is durable.
    let holding = true;
    const releaseSlot = () => {
      if (!holding) return;
      holding = false;
      this.slots.release();
    };
    const log = withFields(this.deps.logger, { jobId: job.id, type: job.type, attempt });
    const entry: Running = {
      attempt, type: job.type, abort, handler: handlerSignal(abort.signal), done: Promise.resolve(), leaseUntil, leaseMs: lease.leaseMs, heartbeatMs: lease.heartbeatMs, settled: false, log, handlerCalled: false,
      heartbeatLateMs: 0, beats: { inFlight: null, next: null },
    };
    entry.done = this.execute(job, entry, releaseSlot, record)
      .catch((err) => log.error('worker: attempt bookkeeping failed', errorFields(err)))
      .finally(() => {
        abort.abort(ATTEMPT_FINISHED);
        // A late attempt n must not drop the entry of attempt n+1 of the same job.
        if (this.running.get(job.id)?.attempt === attempt) this.running.delete(job.id);
        // A handler that was called gives its slot back itself, once it settled (it may still run).
        if (!entry.handlerCalled) releaseSlot();
        // Its outcome is written: a dispatch held back here by the limit it counted against may start now.
        if (this.held.size > 0) this.keysFreed(job);
      });
    this.running.set(job.id, entry);
  }

  private async execute(job: JobRecord, entry: Running, releaseSlot: () => void, record?: LogRecord): Promise<void> {
    // The reporter is made at the first report (most handlers report none), and closed once the attempt is over here.
    const progress: Progress = { reporter: null, over: false };
    let event: Extract<EventInput, { type: 'SUCCEEDED' | 'FAILED' }> | null;
    try {
      event = await this.runHandler(job, entry, releaseSlot, progress, record);
    } finally {
      // Over here (recorded next, or given up: crashed, cancelled, lease lost, left to its lease): later reports are dropped.
      progress.over = true;
      await progress.reporter?.close();
    }
    if (event) await this.recordOutcome(job.id, entry, event);
  }

  /**
   * Runs the handler; the outcome to record, or null when the attempt is
   * given up (nothing to record). The slot is given back once the handler
   * settled (`holdSlot`), or here when it was not called.
   */
  private async runHandler(job: JobRecord, entry: Running, releaseSlot: () => void, progress: Progress, record?: LogRecord): Promise<Extract<EventInput, { type: 'SUCCEEDED' | 'FAILED' }> | null> {
    const { clock, registry, tracer } = this.deps;
    const { attempt, abort, log } = entry;
    void clock.sleep(job.timeoutMs, abort.signal).then(
      () => abort.abort(new AbortReason('timeout', `timed out after ${job.timeoutMs} ms`)),
      () => undefined,
    );
    await this.leaseAfterExpiry(job, entry);
    void this.heartbeatLoop(job.id, entry);
    void this.watchLease(entry);
    const handler = registry.get(job.type);
    const stored = this.deps.progress;
    const store: Pick<ProgressStore, 'setProgress'> | undefined = stored && {
      setProgress: (...args) => (this.writesClosed ? Promise.resolve(false) : this.write(() => stored.setProgress(...args))),
    };
    const ctx: HandlerContext = {
      jobId: job.id, tenant: job.tenant, type: job.type, queue: job.queue, attempt, idempotencyKey: job.id,
      signal: entry.handler.signal, heartbeat: () => this.beat(job.id, entry), log,
      progress: (value) => {
        // Checked, and dropped once the attempt is over here (a handler going on after it was given up).
        if (!store || progress.over) return Promise.resolve(void progressJson(value));
        progress.reporter ??= new ProgressReporter({ store, clock, log, signal: abort.signal }, job.id, attempt);
        return progress.reporter.report(value);
      },
    };
    // Traced: the attempt's span, the active span while the handler runs (its spans nest under it).
    const span: Span | undefined = tracer && startAttemptSpan(tracer, {
      jobId: job.id, type: job.type, queue: job.queue, attempt, traceContext: job.traceContext, record, groupId: this.opts.groupId,
    });
    let event: Extract<EventInput, { type: 'SUCCEEDED' | 'FAILED' }>;
    const startedAt = clock.now();
    /** The handler's own run, which an abort does not end. */
    let work: Promise<unknown> | undefined;
    try {
      if (!handler) throw new NonRetryableError(`no handler is registered for job type ${job.type}`);
      // Given up before it could start (its lease ended while the claim was written): the handler is not called.
      if (abort.signal.aborted) throw abort.signal.reason;
      const calledAt = clock.now();
      // A handler that is not async (as JavaScript may register one) returns its value, not a promise.
      work = Promise.resolve(span ? inSpan(span, () => handler(job.payload, ctx)) : handler(job.payload, ctx));
      this.warnIfBlocked(entry, clock.now() - calledAt);
      // Its signal follows the attempt's until it settled.
      work.then(entry.handler.ended, entry.handler.ended);
      // It returned (one that threw instead runs no more: its slot is given back below, as when none is called).
      entry.handlerCalled = true;
      // Before the race is set up, so the slot's bookkeeping sees the handler settle first.
      this.holdSlot(job.id, entry, work, releaseSlot);
      const stored = storedResult(await unlessStopped(work, abort.signal));
      if ('unstorable' in stored) throw new NonRetryableError(stored.unstorable);
      this.deps.metrics?.attemptRan(job.type, job.queue, clock.now() - startedAt);
      event = { type: 'SUCCEEDED', attempt, result: stored.result };
      if (span) endAttemptSpan(span, 'succeeded');
    } catch (err) {
      this.deps.metrics?.attemptRan(job.type, job.queue, clock.now() - startedAt);
      const reason = abort.signal.reason as unknown;
      if (reason instanceof AbortReason && reason.kind === 'shutdown' && !this.crashed) {
        // Stopped past the grace (stop()): the attempt ends here, and counts, but only once its
        // handler has stopped: a retry, or another attempt taking its limit's slot, must not start
        // beside it. One that does not stop within the last writes' bound is left to its lease.
        if (work && !(await this.stoppedBeforeAbandon(work))) {
          if (span) endAttemptSpan(span, 'shutdown');
          log.warn('worker: the handler did not stop when aborted at shutdown; its attempt is left to its lease', { reason: reason.message });
          return null;
        }
        // A retryable failure of the worker's, not the handler's: the advisor does not judge it,
        // the policy's backoff times the retry.
        event = { type: 'FAILED', attempt, error: { message: reason.message, name: WORKER_SHUTDOWN_ERROR_NAME, retryable: true } };
        if (span) endAttemptSpan(span, 'shutdown');
        log.warn('worker: attempt interrupted by the shutdown; recording it as failed', { reason: reason.message });
      } else if (reason instanceof AbortReason && reason.kind !== 'timeout') {
        if (span) endAttemptSpan(span, reason.kind);
        log.info(`worker: attempt abandoned (${reason.kind})`, { reason: reason.message });
        return null; // cancelled, lease lost or crashed: nothing to record; the lease or the cancel covers it.
      } else {
        // The job's own timeout (the only abort left here), told apart from a handler's error of the same name.
        const timedOut = reason instanceof AbortReason;
        const e: unknown = timedOut ? reason : err;
        // Whatever was thrown (a string, undefined, an object with cycles or without a prototype), read without throwing.
        const { message, name, stack } = describeThrown(e, { message: MAX_ERROR_MESSAGE_CHARS, name: MAX_ERROR_NAME_CHARS, stack: MAX_STACK_CHARS });
        event = {
          type: 'FAILED', attempt,
          error: {
            message, name,
            ...(stack && !timedOut ? { stack } : {}), retryable: !isNonRetryable(e), ...(timedOut ? { timedOut: true as const } : {}),
          },
        };
        if (event.error.retryable) event = this.advised(job, event, clock.now());
        if (span) endAttemptSpan(span, timedOut ? 'timeout' : 'failed', e);
      }
    }
    entry.settled = true;
    // Not called, or it threw instead of returning a promise: it runs no more.
    if (!work) entry.handler.ended();
    if (!entry.handlerCalled) releaseSlot();
    // The last progress reported is written while the attempt still runs (the outcome ends its right to write).
    await progress.reporter?.flush();
    return event;
  }

  /**
   * Gives the handler's slot back once its own promise (`work`) settled,
   * whatever ended its attempt: the attempt's outcome is decided as soon as
   * its signal aborts (a timeout's FAILED, a cancel, a lost lease), but a
   * handler that ignores its signal runs on, and one started in its slot
   * meanwhile would run beside it, more than `concurrency` at once. From the
   * abort until it settles the handler counts as lingering (`slotUsage`); one
   * still running LINGERING_WARN_MS after the abort is logged, once.
   */
  private holdSlot(jobId: string, entry: Running, work: Promise<unknown>, releaseSlot: () => void): void {
    const { signal } = entry.abort;
    let lingering: Lingering | null = null;
    const onAbort = () => {
      // The attempt's own end (its outcome written) comes after the handler settled.
      if (signal.reason === ATTEMPT_FINISHED) return;
      const reason = signal.reason as unknown;
      lingering = {
        jobId, type: entry.type, attempt: entry.attempt, abortedBy: reason instanceof AbortReason ? reason.kind : String(reason),
        watch: new AbortController(), warned: false,
      };
      this.lingering.add(lingering);
      void this.warnIfLingering(entry, lingering, signal.reason);
    };
    const settled = () => {
      signal.removeEventListener('abort', onAbort);
      if (lingering) {
        this.lingering.delete(lingering);
        lingering.watch.abort();
        if (lingering.warned) entry.log.info('worker: a handler that went on after its attempt was given up has returned; its slot is free again');
      }
      releaseSlot();
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(settled, settled);
  }

  /**
   * Warns once that a handler given up `reason` ago still runs, if it does
   * after LINGERING_WARN_MS. Not for the shutdown's aborts: a stop says of
   * each handler that did not stop in time itself, and a crashed worker says
   * nothing.
   */
  private async warnIfLingering(entry: Running, lingering: Lingering, reason: unknown): Promise<void> {
    if (!(reason instanceof AbortReason) || reason.kind === 'shutdown') return;
    if (!(await this.deps.clock.sleep(LINGERING_WARN_MS, lingering.watch.signal).then(() => true, () => false))) return;
    lingering.warned = true;
    entry.log.warn('worker: a handler ignores its abort signal: it still runs after its attempt was given up, and holds its handler slot until it returns', {
      abortedBy: reason.kind, reason: reason.message, abortedMsAgo: LINGERING_WARN_MS, lingering: this.lingering.size, concurrency: this.opts.concurrency,
    });
  }

  /**
   * Warns when the handler's call held the event loop {@link BLOCKING_WARN_MS}
   * or more before returning its promise: the reason for the lease expiries
   * and lost leases that follow it here would otherwise read as heartbeats
   * that failed.
   */
  private warnIfBlocked(entry: Running, blockedMs: number): void {
    if (blockedMs < BLOCKING_WARN_MS) return;
    entry.log.warn('worker: a handler blocked the event loop: it ran synchronously before returning its promise, and meanwhile no heartbeat, timeout, cancel, Kafka heartbeat or other handler of this process could run (a block longer than the lease loses the attempts running here); await between CPU-heavy steps, or move them to a worker thread', {
      blockedMs, leaseMs: entry.leaseMs, heartbeatMs: entry.heartbeatMs, running: this.running.size,
    });
  }

  /** Whether `work` settles before the worker gives up its last writes at shutdown (`abandon`). */
  private stoppedBeforeAbandon(work: Promise<unknown>): Promise<boolean> {
    const settled = work.then(() => undefined, () => undefined);
    return unlessStopped(settled, this.abandon.signal).then(() => true, () => false);
  }

  /** A retryable failure as the advisor would have it recorded (enforce): not retried, or retried after its delay. */
  private advised(job: JobRecord, event: Extract<EventInput, { type: 'FAILED' }>, at: number): Extract<EventInput, { type: 'FAILED' }> {
    const advice = this.ask(() => this.deps.advisor?.adviseFailure(job, event.error, event.attempt, at));
    if (!advice) return event;
    if (advice.retryable === false) {
      return { ...event, error: { ...event.error, retryable: false, decidedBy: 'advisor', ...(advice.reason ? { advice: advice.reason } : {}) } };
    }
    // A delay the store and the machine can take, or none (the policy's backoff).
    const { delayMs } = advice;
    return delayMs === undefined || !Number.isSafeInteger(delayMs) || delayMs < 0 ? event : { ...event, delayMs };
  }

  /** An answer of the advisor, or none if it threw: advice must never cost a claim or an outcome. */
  private ask<T>(question: () => T | null | undefined): T | null {
    try {
      return question() ?? null;
    } catch (err) {
      this.deps.logger.warn('worker: the advisor failed to answer; the static policy stands', errorFields(err));
      return null;
    }
  }

  /**
   * Writes the outcome, trying again with backoff while the lease holds: a
   * failed write (a database blip) must not turn a finished attempt into a
   * LEASE_EXPIRED. A try is only made if it can land before the lease ends;
   * after that the timers own the job, and a late write would be rejected
   * anyway. A try that failed may still have committed: the machine then
   * rejects the next one, and the job shows the outcome as ours.
   */
  private async recordOutcome(jobId: string, entry: Running, event: Extract<EventInput, { type: 'SUCCEEDED' | 'FAILED' }>): Promise<void> {
    const { clock } = this.deps;
    const { log } = entry;
    let pause = OUTCOME_RETRY_FIRST_MS;
    let tried = false;
    // Tries that failed: the first is a warning, the others debug lines, and a write that then lands says so once.
    let failures = 0;
    for (;;) {
      if (this.crashed) return;
      let r: ApplyResult;
      try {
        const settled = await this.outcomes.add({ jobId, event });
        // Written alone after its batch's write failed: that write may have committed it.
        if (settled.afterFailure) tried = true;
        if (settled.status === 'rejected') throw settled.reason;
        r = settled.value;
        // Written by a newer machine version meanwhile: tried again as a failed write is.
        if (!r.ok && r.reason === 'machine-unknown') throw r.error;
      } catch (err) {
        if (this.crashed) return;
        const fields = { event: event.type, ...errorFields(err) };
        if (this.writesClosed) {
          log.warn('worker: outcome not written before the worker stopped; the timers take the job over when its lease ends', fields);
          return;
        }
        if (this.abandon.signal.aborted || clock.now() + pause >= entry.leaseUntil) {
          log.warn('worker: outcome not written before the lease ended; the timers take the job over', fields);
          return;
        }
        failures++;
        if (failures === 1) log.warn('worker: outcome write failed, will retry', { ...fields, retryInMs: pause });
        else log.debug('worker: outcome write failed again, will retry', { ...fields, failures, retryInMs: pause });
        if (!(await clock.sleep(pause, this.abandon.signal).then(() => true, () => false))) return;
        this.counters.outcomeRetries++;
        pause = Math.min(pause * 2, OUTCOME_RETRY_MAX_MS);
        tried = true;
        continue;
      }
      if (r.ok || (tried && r.reason === 'not-allowed' && recorded(r.job, event))) {
        if (failures > 0) log.info('worker: outcome written after failed tries', { event: event.type, failures });
        if (event.type === 'FAILED' && r.job.snapshot.value === 'dead') this.logDead(r.job, event);
        if (event.type === 'SUCCEEDED') this.counters.succeeded++;
        else this.counters.failed++;
        return;
      }
      this.counters.lateOutcomes++;
      // A cancel that beat the outcome to the store is a user's doing, as expected as the cancel itself: no warning.
      if (r.reason === 'not-allowed' && r.job.snapshot.value === 'cancelled') {
        log.info('worker: outcome dropped: the job was cancelled before it was written', { event: event.type });
        return;
      }
      log.warn('worker: late outcome ignored (the attempt is no longer current)', { event: event.type, reason: r.reason });
      return;
    }
  }

  /**
   * A job this worker's outcome ended dead: a warning, the first of its type
   * in a minute (`repeated`: how many of the type went dead since the last
   * one, said at debug), so that jobs dying show in the log without a line
   * each when a type fails wholesale. Its error is cut to
   * DEAD_ERROR_LOGGED_CHARS (the job's history has it whole).
   */
  private logDead(job: JobRecord, event: Extract<EventInput, { type: 'FAILED' }>): void {
    const { error } = event;
    this.deadLogged.warn(this.deps.logger, job.type, 'worker: job dead (its failure is not retryable, or its attempts are used up): `ats redrive` runs it again', {
      jobId: job.id, type: job.type, queue: job.queue, attempt: event.attempt, maxAttempts: job.snapshot.context.maxAttempts,
      error: quoteCut(`${error.name ?? 'Error'}: ${error.message}`, DEAD_ERROR_LOGGED_CHARS), retryable: error.retryable,
      ...(error.decidedBy ? { decidedBy: error.decidedBy } : {}),
    });
  }

  /**
   * The retry of an attempt whose lease expired runs on the configured lease,
   * not on a shorter one the advisor learned: the expiry may have been no
   * crash but a run that outgrew the learned lease (a synchronous step
   * blocking the event loop, so that no heartbeat went out), and the advisor
   * never learns that run time (a lease expiry is none): on the learned lease
   * each retry would expire the same way until the job is dead. The claim
   * took the learned lease (a dispatch does not tell why the attempt before
   * ended), so it is extended by a heartbeat before the handler starts. A
   * heartbeat that fails leaves the claim's lease, as the heartbeat loop would.
   */
  private async leaseAfterExpiry(job: JobRecord, entry: Running): Promise<void> {
    const last = job.snapshot.context.lastError;
    if (entry.leaseMs >= this.opts.leaseMs || last?.name !== 'LeaseExpired' || last.attempt !== entry.attempt - 1) return;
    entry.leaseMs = this.opts.leaseMs;
    entry.heartbeatMs = this.opts.heartbeatMs;
    try {
      await this.beat(job.id, entry);
    } catch (err) {
      if (!entry.abort.signal.aborted) entry.log.warn('worker: heartbeat failed, will retry', { ...errorFields(err), leaseUntil: entry.leaseUntil });
    }
  }

  /**
   * A heartbeat, one write at a time per attempt: a call made while one is in
   * flight shares the next, which starts once that one settled, so each call
   * is answered by a write sent after it, and a handler calling
   * `ctx.heartbeat()` in a tight loop sends writes one after another, not
   * thousands at once (which queued on the job's row, and on the store's
   * connections, would extend the lease too late for the lease to hold).
   * Each write's rejection is marked handled once, as it is made (a call not
   * awaited must not end the process), not once per call that shares it.
   */
  private beat(jobId: string, entry: Running): Promise<void> {
    const { beats } = entry;
    if (beats.next) return beats.next;
    if (!beats.inFlight) {
      const write = handledRejection(this.heartbeat(jobId, entry));
      beats.inFlight = write;
      const done = () => {
        if (beats.inFlight === write) beats.inFlight = null;
      };
      write.then(done, done);
      return write;
    }
    const next = handledRejection(beats.inFlight.then(() => undefined, () => undefined).then(() => {
      beats.next = null;
      return this.beat(jobId, entry);
    }));
    beats.next = next;
    return next;
  }

  private async heartbeat(jobId: string, entry: Running): Promise<void> {
    if (this.crashed) throw new AbortReason('shutdown', 'worker crashed');
    const { attempt, abort } = entry;
    const leaseUntil = this.deps.clock.now() + entry.leaseMs;
    const r = await this.write(() => this.deps.transitions.apply(jobId, { type: 'HEARTBEAT', attempt, leaseUntil }));
    if (r.ok) {
      entry.leaseUntil = leaseUntil;
    } else if (r.reason === 'lease-ended') {
      abort.abort(new AbortReason('lease-lost', 'heartbeat refused: the lease had already ended (the timers take the job back)'));
      throw abort.signal.reason;
    } else {
      const state = r.reason === 'not-allowed' ? r.job.snapshot.value : 'gone';
      abort.abort(new AbortReason(state === 'cancelled' ? 'cancelled' : 'lease-lost', `heartbeat rejected: the job is ${state}`));
      throw abort.signal.reason;
    }
  }

  /**
   * Heartbeats until the handler settles (the outcome write then has what is
   * left of the lease). Each comes after the heartbeat period, or half the
   * time left until the attempt is given up (`giveUpAt`), whichever is sooner
   * (at least HEARTBEAT_MIN_PAUSE_MS): so after a failed one the tries come
   * closer as the lease runs out, and one is made before the end.
   */
  private async heartbeatLoop(jobId: string, entry: Running): Promise<void> {
    const { clock } = this.deps;
    const { abort } = entry;
    while (!abort.signal.aborted && !entry.settled) {
      try {
        const pausedAt = clock.now();
        const pause = Math.max(HEARTBEAT_MIN_PAUSE_MS, Math.min(entry.heartbeatMs, Math.floor((giveUpAt(entry) - pausedAt) / 2)));
        await clock.sleep(pause, abort.signal);
        entry.heartbeatLateMs = clock.now() - pausedAt - pause;
        if (entry.settled) return;
        // Past it the lease is given up (watchLease), not extended.
        if (clock.now() >= giveUpAt(entry)) continue;
        await this.beat(jobId, entry);
      } catch (err) {
        if (abort.signal.aborted) return;
        entry.log.warn('worker: heartbeat failed, will retry', { ...errorFields(err), leaseUntil: entry.leaseUntil });
      }
    }
  }

  /**
   * Gives the attempt up, aborting its handler (`lease-lost`), once its lease
   * as last written is about to end (`giveUpAt`) without a heartbeat having
   * extended it: heartbeats failing (the store unreachable), or one not
   * answered. Nothing is recorded; the timers take the job back when the
   * lease ends, so a retry never starts beside a handler still told to run.
   * Ends once the handler settled (the outcome write keeps to the lease itself).
   */
  private async watchLease(entry: Running): Promise<void> {
    const { clock } = this.deps;
    const { abort } = entry;
    while (!abort.signal.aborted && !entry.settled) {
      const left = giveUpAt(entry) - clock.now();
      if (left <= 0) {
        // Its heartbeat came too late for the margin: the event loop was held (a heartbeat that failed or hung comes on time).
        const held = entry.heartbeatLateMs >= leaseMargin(entry)
          ? ` (the event loop was held ${entry.heartbeatLateMs} ms, so none could be sent: CPU work of a handler of this process that did not await, or the process was paused)`
          : '';
        abort.abort(new AbortReason('lease-lost', `the lease (until ${new Date(entry.leaseUntil).toISOString()}) is ending and no heartbeat extended it${held}: the attempt is given up before the timers take the job back`));
        return;
      }
      await clock.sleep(left, abort.signal).catch(() => undefined);
    }
  }
}

/**
 * The signal a handler is given: aborted, with the same reason, when the
 * attempt's own signal is (its timeout, a cancel, a lost lease, the shutdown,
 * a crash) while the handler runs; not once it returned or threw (`ended`),
 * and never by the attempt's end (ATTEMPT_FINISHED, which ends the worker's
 * own waits). So an abort listener a handler leaves behind (a cleanup, a
 * compensation) does not run after it finished: not when its outcome has been
 * written, nor for a cancel or a shutdown that comes while it is written.
 */
function handlerSignal(attempt: AbortSignal): { signal: AbortSignal; ended: () => void } {
  const told = new AbortController();
  const follow = () => {
    if (attempt.reason !== ATTEMPT_FINISHED) told.abort(attempt.reason);
  };
  attempt.addEventListener('abort', follow, { once: true });
  return { signal: told.signal, ended: () => attempt.removeEventListener('abort', follow) };
}

/** When an attempt whose lease was last written until `leaseUntil` is given up: LEASE_MARGIN_MS before, or a tenth of the lease for a short one. */
const giveUpAt = (entry: Pick<Running, 'leaseUntil' | 'leaseMs'>): number => entry.leaseUntil - leaseMargin(entry);
/** How long before its lease ends an attempt is given up: LEASE_MARGIN_MS, or a tenth of a short lease. */
const leaseMargin = (entry: Pick<Running, 'leaseMs'>): number => Math.min(LEASE_MARGIN_MS, Math.floor(entry.leaseMs / 10));

/** A lost claim's key: the job and the lease the claim asked for. */
const lostClaimKey = (jobId: string, leaseUntil: number): string => `${jobId}@${leaseUntil}`;

/**
 * A signal aborted (with its reason) once `a` or `b` is, until `dispose`
 * takes its listeners off them (the worker's stop signal lives as long as
 * the worker, and a batch's wait does not).
 */
function eitherAborted(a: AbortSignal, b: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  const either = new AbortController();
  const first = [a, b].find((s) => s.aborted);
  if (first) either.abort(first.reason);
  const onA = () => either.abort(a.reason);
  const onB = () => either.abort(b.reason);
  a.addEventListener('abort', onA, { once: true });
  b.addEventListener('abort', onB, { once: true });
  return {
    signal: either.signal,
    dispose: () => {
      a.removeEventListener('abort', onA);
      b.removeEventListener('abort', onB);
    },
  };
}


/**
 * Dispatches (and their records, when traced) sorted highest priority first,
 * stably, with their priorities: the order the slots require of announced
 * work (a lower one asked for first would wait on the higher ones behind it).
 * Most batches are of one priority and need no sort.
 */
function highestFirst(messages: DispatchMessage[], read: LogRecord[] | null): { messages: DispatchMessage[]; read: LogRecord[] | null; priorities: number[] } {
  const priorities = messages.map(dispatchPriority);
  if (priorities.some((p) => p !== priorities[0])) {
    const order = priorities.map((_, k) => k).sort((a, b) => priorities[b]! - priorities[a]!);
    for (const list of [messages, read, priorities] as Array<unknown[] | null>) {
      if (list) list.splice(0, list.length, ...order.map((k) => list[k]));
    }
  }
  return { messages, read, priorities };
}

function isNonRetryable(e: unknown): boolean {
  // A name that throws when read is undefined here.
  return isInstance(e, NonRetryableError) || thrownField(e, 'name') === 'NonRetryableError';
}

/** The job shows this outcome of this attempt (an earlier try committed after all). */
function recorded(job: JobRecord, event: Extract<EventInput, { type: 'SUCCEEDED' | 'FAILED' }>): boolean {
  const { value, context } = job.snapshot;
  if (event.type === 'SUCCEEDED') return value === 'done' && context.attempt === event.attempt;
  return event.type === 'FAILED' && context.lastError?.attempt === event.attempt && context.lastError.message === event.error.message;
}

function isDispatch(m: unknown): m is DispatchMessage {
  const d = m as DispatchMessage | null;
  return !!d && typeof d === 'object' && typeof d.jobId === 'string' && Number.isInteger(d.attempt);
}

/** Longest stack trace a FAILED event keeps (it is stored in the event, the job and the Kafka messages). */
export const MAX_STACK_CHARS = 4000;

/** An item's result; `afterFailure` when it came from a call of the item alone, after the call of its batch failed (which may have committed). */
type Settled<R> = PromiseSettledResult<R> & { afterFailure?: true };

/**
 * `run` of the items in one call (one transaction); if that fails, of each
 * item alone, so one outcome the store keeps refusing (a write larger than
 * the database takes in one packet, say) does not hold back the outcomes
 * batched with it until their leases end. A failure of every call (the
 * database down) costs one call per item more, once.
 */
async function eachAloneOnFailure<I, R>(items: I[], run: (items: I[]) => Promise<R[]>): Promise<Settled<R>[]> {
  try {
    return (await run(items)).map((value) => ({ status: 'fulfilled' as const, value }));
  } catch (err) {
    if (items.length === 1) return [{ status: 'rejected', reason: err }];
    const alone = await Promise.allSettled(items.map(async (item) => (await run([item]))[0]!));
    return alone.map((r) => ({ ...r, afterFailure: true as const }));
  }
}

/** Longest error message a FAILED event keeps, and longest error name (stored like the stack). */
export const MAX_ERROR_MESSAGE_CHARS = 8000;
const MAX_ERROR_NAME_CHARS = 200;

/**
 * Largest handler result a SUCCEEDED event keeps, in bytes of JSON. The result
 * is stored in the event and the job, and travels in the transition message on
 * `ats.events`, whose records Kafka refuses above 1 MiB by default: a larger
 * one would stop the relay at that message.
 */
export const MAX_RESULT_BYTES = 256 * 1024;

/**
 * The handler's result as the job keeps it: its JSON text, written once as
 * the handler returned and read back (so the outcome's writes, tried again
 * or not, store what it was then, whatever the handler does with its object
 * later, and however its getters or `toJSON` answer a second time; and what
 * JSON writes nothing for, a function or a symbol, is `null`, as `undefined`
 * is). Or why it cannot be kept: not JSON, over MAX_RESULT_BYTES, or nested
 * deeper than MAX_NESTING_DEPTH levels (as a payload may not be).
 */
function storedResult(result: unknown): { result: unknown } | { unstorable: string } {
  const tooBig = (bytes: string) => ({
    unstorable: `the handler's result is ${bytes} bytes of JSON, more than the ${MAX_RESULT_BYTES} a job keeps: store it elsewhere and return a reference`,
  });
  // Returned alone, a Buffer's own toJSON would run before JSON asks the replacer about it (held, `heldValues` sees it first).
  if (isLargeView(result)) return tooBig(`over ${RESULT_WRITTEN_CHARS}`);
  let written = 0;
  let stopped: 'too big' | 'too deep' | null = null;
  const guarded = new WeakMap<object, object>();
  // The level of each array or object JSON is writing (the top one 0), as the holder of the values it asks about next.
  // Checked as JSON comes to each, so a deep one is refused before its recursion nears the stack's end: the
  // reason does not depend on how deep the worker's own stack was, nor which frame overflowed.
  const levels = new WeakMap<object, number>();
  const json = jsonSize(result ?? null, function bounded(this: unknown, key, value) {
    // Characters this value takes at least (its key, in an object; a string's characters; one for anything else;
    // none for what JSON leaves out), each at least a byte: once past the bound, the rest is not written.
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return value;
    written += (Array.isArray(this) ? 0 : key.length) + (typeof value === 'string' ? value.length : 1);
    const held = heldValues(value);
    if (written > RESULT_WRITTEN_CHARS || held === 'large view') {
      stopped = 'too big';
      throw OVER_WRITTEN;
    }
    // A boxed number, string or boolean is written as the value it holds: no level of its own.
    if (typeof value !== 'object' || value === null || isBoxedPrimitive(value)) return value;
    const level = (levels.get(this as object) ?? -1) + 1;
    if (level >= MAX_NESTING_DEPTH) {
      stopped = 'too deep';
      throw OVER_WRITTEN;
    }
    const kept = held === 'getters' ? guardedGetters(value, guarded, () => (stopped = 'too big')) : value;
    levels.set(kept, level);
    return kept;
  });
  if ('error' in json) {
    if (stopped === 'too deep') return { unstorable: TOO_DEEP };
    return stopped ? tooBig(`over ${RESULT_WRITTEN_CHARS}`) : { unstorable: `the handler's result cannot be stored as JSON: ${json.error}` };
  }
  if (json.bytes > MAX_RESULT_BYTES) return tooBig(String(json.bytes));
  return { result: JSON.parse(json.text) as unknown };
}

/**
 * How much of a result's JSON is written before it is refused as over
 * MAX_RESULT_BYTES without writing the rest: a few times the bound, so one
 * a little over it is told its size, and one of megabytes costs no more.
 */
const RESULT_WRITTEN_CHARS = 4 * MAX_RESULT_BYTES;
/** Why a result nested deeper than MAX_NESTING_DEPTH fails its attempt: one text, however deep it is. */
const TOO_DEEP = `the handler's result nests deeper than ${MAX_NESTING_DEPTH} levels of arrays and objects, more than a job keeps: `
  + 'flatten it, or store it elsewhere and return a reference';
/** Stops the writing of a result's JSON past RESULT_WRITTEN_CHARS or MAX_NESTING_DEPTH (one value: no stack built per result). */
const OVER_WRITTEN = new Error(`a result's JSON was written past ${RESULT_WRITTEN_CHARS} characters`);

/** A Buffer or typed array (a DataView's JSON is `{}`), whose JSON has an entry per element. */
const isElementView = (v: unknown): v is ArrayLike<unknown> => ArrayBuffer.isView(v) && !(v instanceof DataView);

/** A Buffer or typed array whose JSON alone would be past RESULT_WRITTEN_CHARS (two characters an element at least). */
const isLargeView = (v: unknown): boolean => isElementView(v) && v.length * 2 > RESULT_WRITTEN_CHARS;

/**
 * What this array or object holds that JSON is not to write blindly: a large
 * view as an element or a data property (`large view`), or else a getter of
 * its own, which could return one (`getters`). Asked as JSON comes to the
 * holder, before it writes the view, whose own toJSON would first make an
 * array of every byte (`{ file: buf }`, `[buf]`). A property's value is read
 * from its descriptor, so no getter runs more often than JSON runs it.
 */
function heldValues(value: unknown): 'large view' | 'getters' | null {
  if (typeof value !== 'object' || value === null || isElementView(value)) return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (isLargeView(value[i])) return 'large view';
    return null;
  }
  let getters = false;
  for (const key of Object.keys(value)) {
    const d = Object.getOwnPropertyDescriptor(value, key);
    if (!d) continue;
    if (!('value' in d)) getters = true;
    else if (isLargeView(d.value)) return 'large view';
  }
  return getters ? 'getters' : null;
}

/**
 * `value` as JSON is to write it when it has getters of its own: each
 * property read once, when JSON reads it, and a large view a getter returns
 * refused before JSON runs the view's toJSON (`{ get file() { return buf } }`).
 * One stand-in per object (`guarded`), so JSON still finds a cycle through it.
 */
function guardedGetters(value: object, guarded: WeakMap<object, object>, onStop: () => void): object {
  let proxy = guarded.get(value);
  if (!proxy) {
    proxy = new Proxy(value, {
      get(target, key) {
        const v: unknown = Reflect.get(target, key, target);
        if (isLargeView(v)) {
          onStop();
          throw OVER_WRITTEN;
        }
        return v;
      },
    });
    guarded.set(value, proxy);
  }
  return proxy;
}

/** A cancel control message: `ats-kind: cancel`, or a payload of kind cancel. */
function isCancel(r: LogRecord, m: unknown): m is CancelMessage {
  const c = m as CancelMessage | null;
  return (r.headers[KIND_HEADER] === 'cancel' || c?.kind === 'cancel') && isDispatch(c);
}

function safeParse<T>(value: string): T | null {
  try {
    return JSON.parse(value) as T;
  } catch {
    return null;
  }
}


/**
 * `promise`, its rejection marked handled: a handler that awaits it still
 * gets the rejection, while one that does not (a heartbeat fired and
 * forgotten, rejected once its attempt has ended) leaves no unhandled
 * rejection, which would end the whole process (every role in it).
 */
function handledRejection<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}
