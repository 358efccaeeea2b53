/**
 * The system under test for one property run: the REAL TransitionService,
 * Relay, Timers and two Worker processes (simulated: a crash drops one and a
 * fresh instance joins) on a backend's store and log, all on a simulated
 * clock. The commands (commands.ts) drive it; nothing of the engine is
 * re-implemented here, so a broken engine fails the invariants.
 *
 * The test handler follows a plan carried in each job's payload, one entry
 * per attempt: succeed (after an idempotent effect keyed by
 * ctx.idempotencyKey), fail retryably, fail for good, hang until aborted,
 * perform the effect and crash its worker before the outcome is written, or
 * stall: perform the effect, freeze its worker (no heartbeat, no timeout: a
 * GC pause) until the job has moved on to a later attempt or ended, then
 * report success late, as a zombie.
 */
import type { Scheduler } from 'fast-check';
import { isTerminal } from '../machines/lifecycle.js';
import { NonRetryableError } from '../engine/errors.js';
import { HandlerRegistry } from '../engine/handlers.js';
import { silentLogger } from '../engine/logger.js';
import { type Handler, type HandlerContext, type JobSpec, type JobStore, type LogRecord } from '../engine/ports.js';
import { isLane } from '../engine/lanes.js';
import { MAX_LIMITS_LISTED } from '../adapters/sql/limits.js';
import { Mutex } from '../adapters/sqlite/mutex.js';
import { rateStep, type LimitSpec } from '../engine/limits.js';
import { Relay, type RelayOptions } from '../engine/relay.js';
import { Timers } from '../engine/timers.js';
import { PackingLog } from '../engine/transition-records.js';
import { TransitionService } from '../engine/transitions.js';
import { Waker } from '../engine/wake.js';
import { Worker, type WorkerOptions } from '../engine/worker.js';
import type { Backend, RunBackend } from './backends.js';
import { SIM_EPOCH, SimClock, seededRandom } from './sim-clock.js';
import { INVARIANTS, violated } from './invariants.js';
import { countingStore, describeDispatch, InjectedFault, TrackedLog, type CountingStore } from './tracked-log.js';

/** What the handler does on one attempt. */
export type Plan = 'ok' | 'fail' | 'fatal' | 'hang' | 'crash' | 'stall';

/** The payload of every test job: its plan per attempt (beyond the list: ok) and a body variant. */
export interface TaskPayload {
  plan: Plan[];
  variant: number;
}

export const TASK_TYPE = 'prop.task';
export const QUEUE = 'prop';
/** User-chosen names that break a plain object used as a map: every job type and queue may be one. */
export const AWKWARD_NAMES = Object.freeze(['__proto__', 'constructor', 'toString', 'hasOwnProperty']);
/** The job types the workers handle (the test handler under each). */
export const TASK_TYPES = Object.freeze([TASK_TYPE, ...AWKWARD_NAMES]);

/**
 * The concurrency keys some jobs carry (docs/limits.md); each run sets a limit
 * on each before it starts (`LimitPlan`). One is a name that breaks a plain object used as a map.
 */
export const LIMIT_KEYS = Object.freeze(['lk-a', 'lk-b', 'constructor']);
/** Each key's limit in one run, set through the store's `putLimit` (as `PUT /v1/limits/{key}` does). */
export type LimitPlan = ReadonlyMap<string, LimitSpec>;

/**
 * One call of a worker's claims (`applyMany` with a STARTED), where the store
 * runs its transactions whole and one at a time (`RunBackend.ledgerHead`): the
 * event ledger's heads before and after it bound where its transaction fell,
 * and the claims its limits refused are checked against every point between
 * (invariants.ts, I17).
 */
export interface ClaimWindow {
  /** The ledger's head before the call. */
  from: number;
  /** Its stamp (the claims' `at`: the time the store counts leases and the rate at). */
  at: number;
  /** Once it returned: the ledger's head then, and the claims refused, with their key and why. */
  done: { to: number; refused: Array<{ jobId: string; key: string; why: 'paused' | 'concurrency' | 'rate' }> } | null;
}

/** Engine timings of every run (simulated ms). */
export const TIMING = Object.freeze({
  leaseMs: 3000,
  heartbeatMs: 1000,
  /** Large on purpose: the quiesce phase never needs the lost-dispatch repair, so a lost message shows. */
  publishedTimeoutMs: 3_600_000,
  /** One quiesce step: beyond a lease, a handler timeout and a backoff. */
  quiesceStepMs: 10_000,
  quiesceRounds: 60,
  /** Poll intervals of the background loops (the loops command): a relay woken by commits never needs its poll. */
  relayPollMs: 250,
  timersPollMs: 500,
});

/** A fault armed on a worker's next dispatch delivery. */
export type DeliveryFault = 'drop' | 'crash-before-claim' | 'crash-after-claim';

/** One worker process: a slot (0 or 1) and its incarnation. */
export interface WorkerRun {
  id: string;
  slot: number;
  worker: Worker;
  /** `start()` of this incarnation: a crash waits for it (a half-joined consumer would outlive the crash). */
  ready: Promise<void>;
  crashed: boolean;
  fault: DeliveryFault | null;
  /**
   * Jobs whose last claim here its limit refused: the worker holds their
   * dispatch to claim it again (engine/worker.ts), its offset committed.
   */
  held: Set<string>;
}

export interface Invocation {
  jobId: string;
  attempt: number;
  worker: string;
  plan: Plan;
  status: 'running' | 'resolved' | 'rejected' | 'aborted' | 'crashed';
}

/** Counts across a run, summed over runs for the suite's report. */
export interface WorldStats {
  commands: number;
  jobs: number;
  crashes: number;
  invocations: number;
  effectCalls: number;
  effectsSuppressed: number;
  skippedDispatches: number;
  lateOutcomes: number;
  duplicatesInjected: number;
  zombiesRejected: number;
  /** Zombie outcomes and heartbeats on a real earlier attempt (not attempt 0, which never ran). */
  staleZombiesRejected: number;
  /** Heartbeats of stalled workers as they woke, their job gone on without them. */
  lateHeartbeats: number;
  relayFaults: number;
  dropped: number;
  loopRuns: number;
  /** Submits, cancels and redrives committed while the loops ran. */
  loopCommits: number;
  lostDispatches: number;
  /** Jobs submitted with a concurrency key (every key has a limit). */
  limitedJobs: number;
  /** Claims a limit refused (the workers' `throttled`). */
  throttled: number;
  /** Claims of a limited key (STARTED in the event ledger). */
  limitedStarts: number;
  /** Claims that took a key with a cap of 2 or 3 to its cap. */
  capReached: number;
  /** Claims admitted beside an attempt of their key still running in the store, its lease over (a dead or stalled worker's slot). */
  leaseFreedClaims: number;
  /** Consecutive starts of a rate-limited key exactly one step apart (the rate held them back to the ms). */
  rateSpacedStarts: number;
  /** Limits changed during the run (`PUT` of a key's new limit, or `DELETE`). */
  limitChanges: number;
  /** Concurrency caps lowered to no more than the attempts the key's limit counted then. */
  capsLoweredBelowRunning: number;
  /** Starts of a key spaced by a rate that changed since the key's last start (its new step). */
  rateChangedStarts: number;
  /** Limits set on a key again after a `DELETE`, with an attempt started before still running. */
  limitsRecreatedBesideRunning: number;
  /** Claims a limit refused, checked against the leases and rate state of the ledger (fast speed). */
  refusalsChecked: number;
  /** Claims refused because their key was paused (a concurrency of 0). */
  pausedRefusals: number;
  /** Dispatches held back by limits in a worker that crashed (only the timers' lost-dispatch repair brings them back). */
  orphanedHolds: number;
  done: number;
  dead: number;
  cancelled: number;
}

export const emptyStats = (): WorldStats => ({
  commands: 0, jobs: 0, crashes: 0, invocations: 0, effectCalls: 0, effectsSuppressed: 0, skippedDispatches: 0,
  lateOutcomes: 0, duplicatesInjected: 0, zombiesRejected: 0, staleZombiesRejected: 0, lateHeartbeats: 0, relayFaults: 0, dropped: 0,
  loopRuns: 0, loopCommits: 0, lostDispatches: 0, limitedJobs: 0, throttled: 0, limitedStarts: 0, capReached: 0, leaseFreedClaims: 0,
  rateSpacedStarts: 0, limitChanges: 0, capsLoweredBelowRunning: 0, rateChangedStarts: 0, limitsRecreatedBesideRunning: 0, refusalsChecked: 0,
  pausedRefusals: 0, orphanedHolds: 0, done: 0, dead: 0, cancelled: 0,
});

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A store whose `relayOutbox` commits (rows marked published), then dies: the relay never records PUBLISHED. */
function dieAfterMark(store: JobStore): JobStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop !== 'relayOutbox') return Reflect.get(target, prop, receiver) as unknown;
      return async (...args: Parameters<JobStore['relayOutbox']>) => {
        const n = await target.relayOutbox(...args);
        if (n > 0) throw new InjectedFault(`relay died after marking ${n} rows published, before recording PUBLISHED`);
        return n;
      };
    },
  });
}

/** Transitions whose batch writes (the relay's PUBLISHED) fail: the relay's loop swallows that, `runOnce` throws it. */
function failingPublished(transitions: TransitionService): TransitionService {
  return new Proxy(transitions, {
    get(target, prop, receiver) {
      if (prop !== 'applyMany') return Reflect.get(target, prop, receiver) as unknown;
      return async () => { throw new InjectedFault('the PUBLISHED write failed'); };
    },
  });
}

/**
 * `world` once two workers started in it (together: on Kafka each join costs a
 * rebalance); closed again if either fails to start.
 */
export async function withTwoWorkers<W extends { close(): Promise<void> }>(world: W, startWorker: (slot: number) => Promise<void>): Promise<W> {
  try {
    await Promise.all([startWorker(0), startWorker(1)]);
  } catch (err) {
    await world.close();
    throw err;
  }
  return world;
}

export class World {
  readonly store: CountingStore;
  readonly log: TrackedLog;
  readonly transitions: TransitionService;
  readonly relays: { small: Relay; all: Relay; crashing: Relay; diesAfterMark: Relay; publishedFails: Relay; looping: Relay };
  /** The relay's wake-up, notified by every commit (its background loop waits on it). */
  readonly waker = new Waker();
  readonly timers: Timers;
  /** The live worker of each slot. */
  readonly workers: WorkerRun[] = [];
  readonly allWorkers: WorkerRun[] = [];
  /** Job ids in creation order (the model refers to jobs by this index). */
  readonly jobIds: string[] = [];
  /** The effect ledger: idempotency key → the first (job, attempt) that recorded it (set semantics). */
  readonly ledger = new Map<string, { jobId: string; attempt: number }>();
  readonly invocations: Invocation[] = [];
  /** Broken invariants noticed inside callbacks (a handler cannot fail the test by throwing). */
  readonly violations: string[] = [];
  /** What happened, for the failure report. */
  readonly trace: string[] = [];
  readonly stats = emptyStats();
  phase: 'faults' | 'quiesce' = 'faults';
  private readonly restarts = new Set<Promise<void>>();
  /** Stalled handlers waiting for their job to move past their attempt. */
  private readonly lateGates: Array<{ jobId: string; attempt: number; release(): void }> = [];
  /** Workers frozen by stalled handlers (how many each): they stay frozen until those wake. */
  private readonly stalls = new Map<string, number>();
  private gen = 0;
  /** Batches of the loop's relay between their claim and their return (settling waits for them). */
  private heldRelayBatches = 0;
  /** Jobs whose dispatch a worker held back for its limit when it crashed, or as it crashed (see `WorkerRun.held`). */
  readonly orphanedHolds = new Set<string>();
  /** The limit of each key now: the plan's, as the run's limit changes left it (a deleted one is absent). */
  readonly currentLimits: Map<string, LimitSpec>;
  /** A limit change to make just after the next admitted claim of its key commits (the `limit` command's, at its next start). */
  armedLimitChange: { key: string; apply(): Promise<void> } | null = null;
  /**
   * The run's limit writes (changes, armed or not, and resumes), one at a time: two PUTs of a key at
   * once leave either in the store, and `currentLimits` must say which.
   */
  readonly limitWrites = new Mutex();
  /** The workers' claim calls, where the backend places them in the ledger (`ClaimWindow`); the checker takes them. */
  readonly claimWindows: ClaimWindow[] = [];

  private constructor(
    readonly clock: SimClock,
    readonly backend: RunBackend,
    readonly scheduler: Scheduler | null,
    randomSeed: number,
    /** The limit of each key in `LIMIT_KEYS` for this run. */
    readonly limits: LimitPlan,
  ) {
    this.store = countingStore(backend.store);
    this.currentLimits = new Map(limits);
    // Below what the test tracks, transitions are packed, as `npm start` publishes them (ATS_EVENTS_FORMAT=batch).
    this.log = new TrackedLog(new PackingLog(backend.log));
    let n = 0;
    const ids = { jobId: () => `${backend.idPrefix}j${String(++n).padStart(3, '0')}` };
    // Commits wake the relay's loop, as in cli/compose.ts (the loops command depends on it).
    this.transitions = new TransitionService({
      store: this.store, clock: this.clock, random: seededRandom(randomSeed), ids, onCommit: () => this.waker.notify(),
    });
    const relayDeps = { store: this.store, log: this.log, transitions: this.transitions, clock: this.clock, logger: silentLogger, waker: this.waker };
    const relayOpts = (batchSize: number): RelayOptions => ({ batchSize, pollMs: TIMING.relayPollMs, errorBackoffMs: 100 });
    this.relays = {
      small: new Relay(relayDeps, relayOpts(2)),
      all: new Relay(relayDeps, relayOpts(500)),
      crashing: new Relay({
        ...relayDeps,
        afterPublish: () => { throw new InjectedFault('relay killed between produce and mark'); },
      }, relayOpts(500)),
      diesAfterMark: new Relay({ ...relayDeps, store: dieAfterMark(this.store) }, relayOpts(500)),
      // The background loop's relay: each batch ends on a point the scheduler orders against the rest (its I/O
      // takes time), so commits land between its claim and its next wait, as they do on a real database.
      looping: new Relay({ ...relayDeps, store: this.heldAfterBatch(this.store) }, relayOpts(500)),
      publishedFails: new Relay({ ...relayDeps, transitions: failingPublished(this.transitions) }, relayOpts(500)),
    };
    this.timers = new Timers(
      { store: this.store, transitions: this.transitions, clock: this.clock, logger: silentLogger },
      { pollMs: TIMING.timersPollMs, batchSize: 500, publishedTimeoutMs: TIMING.publishedTimeoutMs },
    );
  }

  static async create(backend: Backend, scheduler: Scheduler | null, randomSeed: number, limits: LimitPlan = new Map()): Promise<World> {
    const clock = new SimClock();
    const run = await backend.open(clock);
    // Before anything runs, through the store's own API for limits (what PUT /v1/limits/{key} calls).
    try {
      for (const [key, spec] of limits) await run.store.putLimit(key, spec, clock.now());
    } catch (err) {
      await run.close();
      throw err;
    }
    // The store stamps published_at with the run's clock too.
    const world = new World(clock, run, scheduler, randomSeed, limits);
    for (const [key, spec] of limits) world.note(`limit ${key}: ${describeLimit(spec)}`);
    return withTwoWorkers(world, (slot) => world.startWorker(slot));
  }

  note(line: string): void {
    this.trace.push(`[t+${this.clock.now() - SIM_EPOCH}ms] ${line}`);
  }

  // ------------------------------------------------------------ workers

  private async startWorker(slot: number): Promise<void> {
    const id = `w${slot}.${++this.gen}`;
    const registry = new HandlerRegistry();
    const run: WorkerRun = { id, slot, worker: null as unknown as Worker, ready: Promise.resolve(), crashed: false, fault: null, held: new Set() };
    for (const type of TASK_TYPES) registry.register(type, this.handlerFor(run));
    const opts: WorkerOptions = {
      workerId: id, groupId: 'prop-workers', concurrency: 1000,
      leaseMs: TIMING.leaseMs, heartbeatMs: TIMING.heartbeatMs, shutdownGraceMs: 0,
      // Every queue the jobs use, named: a worker serving every queue finds a new queue's lane on
      // its next look (a sleep on the simulated clock), which a settle, advancing no time, never reaches.
      queues: [QUEUE, ...AWKWARD_NAMES],
      // As `ats start` does (cli/config.ts): a third of the timers' published timeout.
      keepHeldMs: Math.floor(TIMING.publishedTimeoutMs / 3),
    };
    const log = this.log.forWorker({
      before: (records) => this.beforeDelivery(run, records),
      after: () => this.afterDelivery(run),
    });
    run.worker = new Worker({
      log, transitions: this.watchHolds(run), clock: this.clock.view(id), logger: silentLogger, registry, store: this.store,
    }, opts);
    this.workers[slot] = run;
    this.allWorkers.push(run);
    run.ready = run.worker.start();
    await run.ready;
    this.note(`worker ${id} started`);
  }

  /**
   * Crash a worker as SIGKILL would (no outcome written after this), then
   * start its replacement. Never awaited inside a delivery: the crash waits
   * for that very delivery to end.
   */
  crash(run: WorkerRun, why: string): void {
    if (run.crashed) return;
    run.crashed = true;
    this.stats.crashes++;
    this.note(`worker ${run.id} crashed (${why})`);
    if (run.held.size > 0) this.note(`${run.id} held ${[...run.held].join(',')} back for their limits: only the lost-dispatch repair dispatches them again`);
    for (const jobId of run.held) this.orphanedHolds.add(jobId);
    const restart = run.ready.catch(() => undefined)
      .then(() => run.worker.crash())
      .then(() => this.startWorker(run.slot));
    const tracked = restart.finally(() => this.restarts.delete(tracked));
    this.restarts.add(tracked);
  }

  /**
   * The worker's transitions, watched for the claims its limits refuse: it
   * holds those dispatches (their offsets committed), until a later claim of
   * the job, its own or another worker's, is answered.
   */
  private watchHolds(run: WorkerRun): TransitionService {
    return new Proxy(this.transitions, {
      get: (target, prop, receiver) => {
        if (prop !== 'applyMany') return Reflect.get(target, prop, receiver) as unknown;
        return async (items: Parameters<TransitionService['applyMany']>[0]) => {
          const head = this.backend.ledgerHead;
          // The head and the stamp in one turn with the call's start (its transaction cannot fall before).
          const window: ClaimWindow | null = head && items.some((it) => it.event.type === 'STARTED')
            ? { from: head(), at: this.clock.now(), done: null } : null;
          if (window) this.claimWindows.push(window);
          const results = await target.applyMany(items);
          if (window) {
            window.done = { to: head!(), refused: [] };
            results.forEach((r, k) => {
              if (!r.ok && r.reason === 'throttled') window.done!.refused.push({ jobId: items[k]!.jobId, key: r.key, why: r.why });
            });
          }
          const armed = this.armedLimitChange;
          if (armed && this.phase === 'faults' && results.some((r, k) => r.ok && items[k]!.event.type === 'STARTED' && r.job.concurrencyKey === armed.key)) {
            // Its attempt runs in the store, holding a slot: the PUT or DELETE lands beside it.
            this.armedLimitChange = null;
            await armed.apply();
          }
          results.forEach((r, k) => {
            if (items[k]!.event.type !== 'STARTED') return;
            if (!r.ok && r.reason === 'throttled') {
              if (r.why === 'paused') this.stats.pausedRefusals++;
              run.held.add(items[k]!.jobId);
              this.note(`${run.id}: the limit of ${r.key} refused the claim of ${items[k]!.jobId} (retry after ${r.retryAfterMs ?? 'an attempt ends'})`);
              // A crash waits for the delivery in progress: a claim of it refused after the crash was called is
              // held by a worker about to die, as those it held before.
              if (run.crashed) {
                this.orphanedHolds.add(items[k]!.jobId);
                this.note(`${run.id} is crashing: only the lost-dispatch repair dispatches ${items[k]!.jobId} again`);
              }
            } else {
              run.held.delete(items[k]!.jobId);
            }
          });
          return results;
        };
      },
    });
  }

  private async beforeDelivery(run: WorkerRun, records: readonly LogRecord[]): Promise<void> {
    if (this.phase === 'faults' && this.scheduler) {
      // The scheduler decides when this delivery is claimed, relative to everything else it holds.
      await this.scheduler.schedule(Promise.resolve(), `deliver ${describeRecords(records)} to ${run.id}`);
    }
    const fault = this.phase === 'faults' && !run.crashed ? run.fault : null;
    if (fault === 'drop') {
      run.fault = null;
      this.stats.dropped++;
      this.note(`dropped delivery of ${describeRecords(records)} to ${run.id} (redelivered later)`);
      throw new InjectedFault('delivery dropped');
    }
    if (fault === 'crash-before-claim') {
      run.fault = null;
      this.crash(run, `before claiming ${describeRecords(records)}`);
      throw new InjectedFault('worker died before the claim');
    }
  }

  private afterDelivery(run: WorkerRun): void {
    if (this.phase !== 'faults' || run.crashed || run.fault !== 'crash-after-claim') return;
    run.fault = null;
    this.crash(run, 'after the claim, before the offset commit');
    throw new InjectedFault('worker died after the claim');
  }

  // ------------------------------------------------------------ handler

  private handlerFor(run: WorkerRun): Handler<TaskPayload> {
    return async (payload, ctx) => {
      const plan = this.planFor(payload, ctx.attempt);
      const inv: Invocation = { jobId: ctx.jobId, attempt: ctx.attempt, worker: run.id, plan, status: 'running' };
      const twice = this.invocations.find((i) => i.jobId === ctx.jobId && i.attempt === ctx.attempt);
      if (twice) this.violations.push(`claim at most once: job ${ctx.jobId} attempt ${ctx.attempt} invoked on ${twice.worker} and again on ${run.id}`);
      this.invocations.push(inv);
      this.stats.invocations++;
      switch (plan) {
        case 'ok':
          this.effect(ctx);
          await this.completion(inv);
          inv.status = 'resolved';
          return { attempt: ctx.attempt };
        case 'fail':
          await this.completion(inv);
          inv.status = 'rejected';
          throw new Error(`planned failure of attempt ${ctx.attempt}`);
        case 'fatal':
          await this.completion(inv);
          inv.status = 'rejected';
          throw new NonRetryableError(`planned non-retryable failure of attempt ${ctx.attempt}`);
        case 'hang':
          return new Promise((_resolve, reject) => {
            ctx.signal.addEventListener('abort', () => {
              inv.status = 'aborted';
              reject(ctx.signal.reason);
            }, { once: true });
          });
        case 'stall':
          this.effect(ctx);
          await this.stallUntilMovedOn(run, ctx);
          this.lateHeartbeat(ctx);
          inv.status = 'resolved';
          return { attempt: ctx.attempt, late: true };
        case 'crash':
          this.effect(ctx);
          inv.status = 'crashed';
          this.crash(run, `after the effect of ${ctx.jobId}#${ctx.attempt}, before its outcome`);
          throw new Error('the process died');
      }
    };
  }

  /** Freeze the worker (a GC pause) until the job runs a later attempt or ends; then it reports, late. */
  private async stallUntilMovedOn(run: WorkerRun, ctx: HandlerContext): Promise<void> {
    this.stall(run.id, +1);
    this.note(`${run.id} stalls inside ${ctx.jobId}#${ctx.attempt}`);
    await new Promise<void>((release) => this.lateGates.push({ jobId: ctx.jobId, attempt: ctx.attempt, release }));
    this.stall(run.id, -1);
    this.note(`${run.id} wakes up and reports ${ctx.jobId}#${ctx.attempt} done, late`);
  }

  /**
   * A worker waking from a pause finds its heartbeat overdue: it sends one for
   * its attempt, which the job has left (I11: rejected, nothing written),
   * beside the late outcome. Not awaited: the two writes race, as they would.
   */
  private lateHeartbeat(ctx: HandlerContext): void {
    this.stats.lateHeartbeats++;
    this.note(`${ctx.jobId}#${ctx.attempt}: the woken worker heartbeats its stale attempt`);
    ctx.heartbeat().catch(() => undefined);
  }

  private stall(workerId: string, delta: number): void {
    const n = (this.stalls.get(workerId) ?? 0) + delta;
    this.stalls.set(workerId, n);
    if (n > 0) this.clock.pause(workerId);
    else this.clock.resume(workerId);
  }

  /** Planned outcome of an attempt; once faults stop, a planned crash or stall is a plain success. */
  private planFor(payload: TaskPayload, attempt: number): Plan {
    const plan = payload.plan[attempt - 1] ?? 'ok';
    return (plan === 'crash' || plan === 'stall') && this.phase === 'quiesce' ? 'ok' : plan;
  }

  /** While faults run, the scheduler picks when a handler returns (interleaving it with the rest). */
  private async completion(inv: Invocation): Promise<void> {
    if (this.phase === 'faults' && this.scheduler) {
      await this.scheduler.schedule(Promise.resolve(), `handler ${inv.jobId}#${inv.attempt} ${inv.plan} on ${inv.worker}`);
    }
  }

  /** The idempotent effect: insert-if-absent keyed by ctx.idempotencyKey. */
  private effect(ctx: HandlerContext): void {
    this.stats.effectCalls++;
    if (this.ledger.has(ctx.idempotencyKey)) {
      this.stats.effectsSuppressed++;
      return;
    }
    this.ledger.set(ctx.idempotencyKey, { jobId: ctx.jobId, attempt: ctx.attempt });
  }

  // ------------------------------------------------------------ time and settling

  /**
   * Wait until nothing moves: no store call or publish in flight, every
   * dispatch message handled, no worker restarting, the in-process log
   * drained; three quiet turns of the event loop in a row.
   */
  async settle(): Promise<void> {
    const deadline = Date.now() + this.backend.settleTimeoutMs;
    for (let quiet = 0; quiet < 3;) {
      await tick();
      await this.openLateGates();
      const idle = await this.logIdle();
      const otherWork = this.store.inFlight + this.log.inFlight + this.restarts.size + this.heldRelayBatches;
      const busy = !idle || otherWork + this.log.unhandled.size > 0;
      if (idle && otherWork === 0) this.checkNothingLost();
      if (!busy) {
        quiet++;
        continue;
      }
      quiet = 0;
      // A command runs as one scheduler task, so the scheduler releases nothing else meanwhile:
      // a delivery it holds would wait forever. Release held tasks one at a time, in its order.
      if (this.scheduler && this.scheduler.count() > 0) await this.scheduler.waitOne();
      else if (!this.backend.memory) await realSleep(2);
      if (Date.now() > deadline) {
        throw new Error(`the system did not settle within ${this.backend.settleTimeoutMs} ms (store calls ${this.store.inFlight}, `
          + `publishes ${this.log.inFlight}, unhandled dispatches ${[...this.log.unhandled.values()].map((u) => u.what).join(',') || 0}, `
          + `restarts ${this.restarts.size})`);
      }
    }
  }

  /**
   * Dispatch messages that no worker handled although nothing else is in
   * flight: on the in-process log, once it is drained (it committed them, so
   * they are gone); on Kafka, after `lostAfterMs` of real time.
   */
  private checkNothingLost(): void {
    if (this.scheduler && this.scheduler.count() > 0) return; // a held delivery is not a lost one
    const limit = this.backend.memory ? 0 : this.backend.lostAfterMs;
    const lost = [...this.log.unhandled.values()].filter((u) => Date.now() - u.since >= limit);
    if (lost.length === 0) return;
    violated(INVARIANTS.lost, `the log committed dispatch messages that no worker handled: ${lost.map((u) => u.what).join(', ')}`);
  }

  /** Wake stalled handlers whose job is now running a later attempt, or has ended. */
  async openLateGates(): Promise<void> {
    for (const gate of [...this.lateGates]) {
      const job = await this.store.getJob(gate.jobId);
      const s = job?.snapshot;
      const movedOn = !s || isTerminal(s.value) || (s.value === 'running' && s.context.attempt > gate.attempt);
      // Its attempt over (a published job runs none, nor one whose PUBLISHED a dying relay did not record: still
      // pending), the next one's claim, refused by the job's limit, is held by a frozen worker (its retry is a sleep,
      // frozen too): a pause that lasted until the job ran that attempt would last for ever. Once faults stop, it ends.
      const heldFrozen = this.phase === 'quiesce' && (s?.value === 'published' || s?.value === 'pending')
        && this.workers.some((r) => r.held.has(gate.jobId) && this.clock.isPaused(r.id));
      if (!movedOn && !heldFrozen) continue;
      this.lateGates.splice(this.lateGates.indexOf(gate), 1);
      gate.release();
    }
  }

  /** The in-process log has nothing in flight (always true for Kafka: `unhandled` covers it). */
  private async logIdle(): Promise<boolean> {
    const memory = this.backend.memory;
    if (!memory) return true;
    return memory.drain({ timeoutMs: 0 }).then(() => true, () => false);
  }

  advance(ms: number): Promise<void> {
    return this.clock.advance(ms, () => this.settle());
  }

  /**
   * Run the real background loops (the relay's, woken by commits, and the
   * timers') while `ms` of simulated time passes, then stop them. Nothing
   * else runs the relay meanwhile, so whenever the system has settled, every
   * committed outbox row must have gone out without time passing: a commit's
   * wake-up that got lost leaves its rows waiting for the relay's poll.
   * `during` commits halfway through (a submit, cancel or redrive: each
   * commit must wake the relay itself, not only the workers' writes).
   */
  async runLoops(ms: number, during: { what: string; commit(): Promise<void> } | null = null): Promise<void> {
    const relay = this.relays.looping;
    relay.start();
    this.timers.start();
    try {
      await this.settle();
      await this.checkRelayCaughtUp('after the loops started');
      const first = during ? Math.floor(ms / 2) : ms;
      if (during) {
        await this.advance(first);
        this.note(`while the loops run: ${during.what}`);
        await during.commit();
        await this.settle();
        await this.checkRelayCaughtUp(`after ${during.what} committed while the loops ran`);
      }
      await this.advance(ms - first);
      await this.checkRelayCaughtUp(`after ${ms} ms of loops`);
    } finally {
      await this.untilDone(Promise.all([relay.stop(), this.timers.stop()]));
    }
    await this.settle();
    if (this.waker.waiting > 0) violated(INVARIANTS.wakeUps, `${this.waker.waiting} waits still registered with the relay's waker after its loop stopped`);
  }

  /** `store` whose `relayOutbox` waits, after its batch, for the scheduler to let it go on (faults phase only). */
  private heldAfterBatch(store: JobStore): JobStore {
    return new Proxy(store, {
      get: (target, prop, receiver) => {
        if (prop !== 'relayOutbox') return Reflect.get(target, prop, receiver) as unknown;
        return async (...args: Parameters<JobStore['relayOutbox']>) => {
          this.heldRelayBatches++;
          try {
            const n = await target.relayOutbox(...args);
            if (this.phase === 'faults' && this.scheduler) await this.scheduler.schedule(Promise.resolve(), `relay loop's batch of ${n} rows returns`);
            return n;
          } finally {
            this.heldRelayBatches--;
          }
        };
      },
    });
  }

  /** Await `p`, releasing what the scheduler holds meanwhile (a loop stopping waits for its batch). */
  private async untilDone(p: Promise<unknown>): Promise<void> {
    let done = false;
    const settled = p.finally(() => { done = true; });
    while (!done) {
      if (this.scheduler && this.scheduler.count() > 0) await this.scheduler.waitOne();
      else await tick();
    }
    await settled;
  }

  private async checkRelayCaughtUp(when: string): Promise<void> {
    const unpublished = (await this.backend.outbox()).filter((r) => !r.published);
    if (unpublished.length === 0) return;
    violated(INVARIANTS.wakeUps, `${when}, the system settled with the relay's loop running, yet ${unpublished.length} committed outbox rows `
      + `wait for its ${TIMING.relayPollMs} ms poll: ids ${unpublished.map((r) => `#${r.id} ${r.topic}`).join(', ')}`);
  }

  // ------------------------------------------------------------ actions used by commands

  spec(p: {
    payload: TaskPayload; type: string; queue: string; delayMs: number; maxAttempts: number; backoff: JobSpec['backoff']; timeoutMs: number; key: string | null;
    concurrencyKey: string | null;
  }): JobSpec {
    const spec: JobSpec = {
      type: p.type, payload: p.payload, queue: p.queue, maxAttempts: p.maxAttempts, backoff: p.backoff,
      timeoutMs: p.timeoutMs, priority: 0,
    };
    if (p.delayMs > 0) spec.runAt = this.clock.now() + p.delayMs;
    if (p.key !== null) spec.idempotencyKey = p.key;
    if (p.concurrencyKey !== null) spec.concurrencyKey = p.concurrencyKey;
    return spec;
  }

  /** Stop the faults: disarm everything, wake paused workers, release what the scheduler holds. */
  async stopFaults(): Promise<void> {
    this.phase = 'quiesce';
    this.note('faults stop; quiescing (relay, timers, time in steps)');
    this.log.publishFault = 'none';
    for (const run of this.workers) {
      run.fault = null;
      // A stalled handler keeps its worker frozen until its job moves on: that is how a zombie reports late.
      if (!this.stalls.get(run.id)) this.clock.resume(run.id);
    }
    if (this.scheduler) await this.scheduler.waitAll();
    await this.resumePaused();
    await this.clock.wakeDue(() => this.settle());
    await this.settle();
  }

  /**
   * A paused key (concurrency 0) resumed at 1, as an operator would, so that its jobs can end; its rate kept.
   * Run when the faults stop and at each quiesce round: a change armed for a key's next start may have begun
   * its PUT just before the faults stopped, and land after.
   */
  private resumePaused(): Promise<void> {
    return this.limitWrites.run(async () => {
      for (const [key, spec] of this.currentLimits) {
        if (spec.concurrency !== 0) continue;
        const resumed = { ...spec, concurrency: 1 };
        await this.backend.store.putLimit(key, resumed, this.clock.now(), MAX_LIMITS_LISTED);
        this.currentLimits.set(key, resumed);
        this.note(`limit of ${key} resumed: concurrency 1`);
      }
    });
  }

  /**
   * Faults stopped: let time pass in lease/backoff-sized steps, running the
   * relay and the timers between steps, until every job is terminal and the
   * outbox is empty. Returns false if that never happens.
   */
  async quiesce(): Promise<boolean> {
    await this.stopFaults();
    for (let round = 0; round < TIMING.quiesceRounds; round++) {
      await this.resumePaused();
      await this.drainOutbox();
      const n = await this.timers.runOnce();
      if (n > 0) this.note(`quiesce round ${round}: timers accepted ${n} events`);
      await this.settle();
      await this.drainOutbox();
      if ((await this.allTerminal()) && (await this.store.countUnpublished()) === 0) return true;
      // A dispatch the log lost on purpose, or one a crashed worker held back for its limit (its offset committed), is
      // repaired only after the lost-dispatch timeout: let it pass now and then.
      const repair = round % 10 === 9 && (this.log.lostDispatches > 0 || (await this.orphanStillWaits()));
      await this.advance(repair ? TIMING.publishedTimeoutMs + TIMING.quiesceStepMs : TIMING.quiesceStepMs);
    }
    return false;
  }

  /**
   * Once every job has ended: a new job on each limited key the run's jobs used (the plan: ok),
   * published, delivered, and time moved on by the longest rate step, the
   * longest a key with no attempt running may hold a claim back. The probes'
   * ids by key (not among `jobIds`: the run's checks are over).
   */
  async probeLimits(): Promise<Map<string, string>> {
    const probes = new Map<string, string>();
    let wait = 0;
    const used = new Set((await Promise.all(this.jobIds.map((id) => this.store.getJob(id)))).map((j) => j?.concurrencyKey));
    for (const key of this.limits.keys()) {
      // A key no job carried has no slot to leak.
      if (!used.has(key)) continue;
      const limit = this.currentLimits.get(key);
      const spec: JobSpec = {
        type: TASK_TYPE, queue: QUEUE, payload: { plan: [], variant: 0 } satisfies TaskPayload, maxAttempts: 1,
        backoff: { kind: 'fixed', delayMs: 0 }, timeoutMs: 5000, priority: 0, concurrencyKey: key,
      };
      const r = await this.transitions.submit(spec);
      if (!r.ok) throw new Error(`the probe of ${key} was not submitted: ${r.reason}`);
      probes.set(key, r.job.id);
      this.note(`probe ${r.job.id} of key ${key}`);
      if (limit?.rate) wait = Math.max(wait, rateStep(limit.rate));
    }
    await this.drainOutbox();
    await this.advance(wait);
    await this.drainOutbox();
    return probes;
  }

  /**
   * A job a crashed worker held back for its limit still waits for its dispatch: published, or pending when the relay
   * died after sending it and before recording PUBLISHED (the lost-dispatch repair takes both).
   */
  private async orphanStillWaits(): Promise<boolean> {
    for (const id of this.orphanedHolds) {
      const state = (await this.store.getJob(id))?.snapshot.value;
      if (state === 'published' || state === 'pending') return true;
    }
    return false;
  }

  private async drainOutbox(): Promise<void> {
    await this.settle();
    while ((await this.relays.all.runOnce()) > 0) await this.settle();
  }

  private async allTerminal(): Promise<boolean> {
    for (const id of this.jobIds) {
      const job = await this.store.getJob(id);
      if (!job || !['done', 'dead', 'cancelled'].includes(job.snapshot.value)) return false;
    }
    return true;
  }

  /** Counters gathered from the workers. */
  collectStats(): WorldStats {
    this.stats.jobs = this.jobIds.length;
    this.stats.lostDispatches = this.log.lostDispatches;
    this.stats.skippedDispatches = this.allWorkers.reduce((n, r) => n + r.worker.counters.skipped, 0);
    this.stats.lateOutcomes = this.allWorkers.reduce((n, r) => n + r.worker.counters.lateOutcomes, 0);
    this.stats.throttled = this.allWorkers.reduce((n, r) => n + r.worker.counters.throttled, 0);
    this.stats.orphanedHolds = this.orphanedHolds.size;
    return this.stats;
  }

  /** Tear down: stop every worker as a crash would, release what is held, close the adapters. */
  async close(): Promise<void> {
    this.phase = 'quiesce';
    for (const gate of this.lateGates.splice(0)) gate.release();
    // Held deliveries first: a worker stopping waits for the delivery in progress.
    if (this.scheduler && this.scheduler.count() > 0) await this.scheduler.waitAll().catch(() => undefined);
    await Promise.allSettled([...this.restarts]);
    await Promise.allSettled(this.workers.filter(Boolean).map((r) => r.ready.then(() => r.worker.crash())));
    await this.backend.close();
  }
}

export function describeLimit(spec: LimitSpec): string {
  const rate = spec.rate ? `, rate ${spec.rate.max}/${spec.rate.intervalMs}ms (one start every ${rateStep(spec.rate)} ms)` : '';
  return `concurrency ${spec.concurrency ?? 'none'}${rate}`;
}

/** `j001#1` per dispatch record, for traces and scheduler labels. */
export function describeRecords(records: readonly LogRecord[]): string {
  return records.filter((r) => isLane(r.topic)).map((r) => describeDispatch(r.value)).join(',');
}
