/**
 * The advisor benchmark's driver: one seed's workload (workload.ts) through
 * the REAL engine (TransitionService, Relay and Timers with their background
 * loops, two Worker processes, and in the advisor run the Advisor) on the
 * embedded store (SQLite in memory) and the in-process log, all on a
 * simulated clock: hours of traffic in seconds.
 *
 * How time moves (as in property-tests/world.ts): `SimClock.advance` wakes
 * every due sleeper in order and lets the system settle after each one
 * (nothing in flight at the store, no new store call, the log's backlog
 * unchanged, over three turns of the event loop). The driver's own work
 * (arrivals, crashes, stalls, the advisor's reads, ETA samples) runs as
 * tasks sleeping on the same clock, so it interleaves with the engine's
 * sleepers in time order. Nothing reads the wall clock or Math.random: a
 * seed gives the same run every time.
 *
 * The engine's one random draw, the `rand` of a FAILED or LEASE_EXPIRED
 * (the backoff jitter), comes from the injected Random. Here it is a pure
 * function of the seed, the job and the attempt ({@link PerJobJitter}), not
 * the next number of one stream shared by every job: with a shared stream
 * the static and the advisor runs hand each job other draws (the order of
 * draws differs between them), and a job retrying through an outage would
 * live or die by that alone. With the draw tied to the job and the attempt,
 * a job's retries are timed alike in both runs unless the advisor chose
 * otherwise, so what differs between the runs is the advisor's doing.
 *
 * The engine runs with its defaults (cli/config.ts): lease 30 s, heartbeat
 * 10 s, concurrency 10 per worker, timers every 250 ms, published timeout
 * 5 min; the relay's poll is 1 s instead of 50 ms (every commit here is in
 * process and wakes it at once; the poll only catches other processes'
 * commits, and would cost 72,000 wake-ups per simulated hour).
 *
 * What it returns is read from the store's events (outcomes, attempts,
 * lease expiries, finish times) and from the handler's own records (which
 * attempts ran on a worker when it crashed), never from the advisor; only
 * the anomalies and ETAs are the advisor's (they are what is measured).
 */
import { createMemoryLog } from '../../adapters/memory/index.js';
import { createSqliteStore } from '../../adapters/sqlite/index.js';
import type { Advisor, DecisionKind } from '../../engine/advisor/advisor.js';
import type { Anomaly, Insights, ModelOptions } from '../../engine/advisor/types.js';
import { HandlerRegistry } from '../../engine/handlers.js';
import { silentLogger } from '../../engine/logger.js';
import type { Clock, Handler, JobRecord, JobSpec, JobStore, StreamEventRecord } from '../../engine/ports.js';
import { Relay } from '../../engine/relay.js';
import { Timers } from '../../engine/timers.js';
import { TransitionService } from '../../engine/transitions.js';
import { Waker } from '../../engine/wake.js';
import { Worker, type WorkerCounters } from '../../engine/worker.js';
import type { JobState } from '../../machines/job.machine.js';
import { SimClock, seededRandom } from '../../property-tests/sim-clock.js';
import { countingStore, type CountingStore } from '../../property-tests/tracked-log.js';
import { attemptOutcome, mix, profileOf, type Fate, type Workload } from './workload.js';

export type SimMode = 'off' | 'advise' | 'enforce';

/** The engine's settings in every run (the shipped defaults, see the header). */
export const ENGINE = Object.freeze({
  concurrency: 10,
  leaseMs: 30_000,
  heartbeatMs: 10_000,
  shutdownGraceMs: 10_000,
  relayPollMs: 1000,
  relayPublishedDelayMs: 200,
  timersPollMs: 250,
  publishedTimeoutMs: 300_000,
  advisorPollMs: 1000,
  advisorHistoryEvents: 100_000,
});

export interface SimOptions {
  mode: SimMode;
  /** Learning settings passed to the advisor (defaults: model.ts's). */
  model?: Partial<ModelOptions>;
  /**
   * Changes the engine's random draws (the backoff jitter of every job and
   * attempt) and nothing else: two static runs differing only in it show how
   * many outcomes differ by chance alone. @defaultValue 0
   */
  jitterSeed?: number;
  /** How long after the last arrival the run may go on for jobs to end. @defaultValue 2 h */
  drainMs?: number;
  /**
   * ETA at submit for every this-many-th job (by index). Each answer costs a
   * count of the jobs waiting ahead (up to two reads of AHEAD_READ_LIMIT
   * waiting jobs, engine/advisor/advisor.ts): asking it of every job would
   * slow the run. @defaultValue 10
   */
  etaSubmitEvery?: number;
  /** ETA samples of live jobs: every this many ms, up to `etaLivePerState` jobs of each live state. @defaultValue 60 s, 5 */
  etaLiveEveryMs?: number;
  etaLivePerState?: number;
  /** Told of the simulated progress (0..1) now and then. */
  onProgress?(fraction: number): void;
  /** Told of every stored event at the end, in id order (diagnostics). */
  onEvent?(e: StreamEventRecord): void;
}

/** How one job ended, from its events. */
export interface JobResult {
  type: string;
  state: JobState;
  /** STARTED events: attempts made. */
  attempts: number;
  /** FAILED events the advisor made non-retryable. */
  advisorStops: number;
  /** The signature of the advisor's stop (from its reason), when it stopped the job. */
  stoppedOn?: string;
  /** When it reached its terminal state (null: still live at the end). */
  finishedAt: number | null;
}

/** One attempt a crash interrupted, and when the system took it back. */
export interface Recovery {
  crashAt: number;
  workerId: string;
  i: number;
  type: string;
  attempt: number;
  /** The LEASE_EXPIRED of that attempt (null: never, e.g. the job was cancelled or the run ended). */
  expiredAt: number | null;
  /** The next attempt's STARTED. */
  restartedAt: number | null;
  /** The lease the attempt was claimed (or last heartbeated) with: its `leaseUntil` minus the event's time. */
  leaseMs: number | null;
}

export interface EtaSample {
  i: number;
  type: string;
  kind: 'submit' | 'live';
  state: JobState;
  /** When the prediction was made. */
  at: number;
  finish: number;
}

export interface SeenAnomaly extends Anomaly {
  /** When the advisor told of it (the clock then). */
  seenAt: number;
}

export interface RunRecord {
  seed: number;
  mode: SimMode;
  /** Simulated time from the start to the end of the run (arrivals and drain). */
  simulatedMs: number;
  /** Wall-clock time the run took. */
  realMs: number;
  events: number;
  jobs: JobResult[];
  /** STARTED events over every job. */
  attempts: number;
  recoveries: Recovery[];
  /** LEASE_EXPIRED of attempts whose worker did not crash. */
  healthyExpiries: Array<{ i: number; type: string; attempt: number; at: number; workerId: string }>;
  /** Every LEASE_EXPIRED. */
  leaseExpiries: number;
  eta: EtaSample[];
  /** `eta()` calls that answered null (no history yet). */
  etaNull: number;
  anomalies: SeenAnomaly[];
  decisions: Record<DecisionKind, { applied: number; advised: number }>;
  workers: WorkerCounters;
  /** The lease of each claim as recorded: how many attempts per lease length (ms, rounded to 100). */
  leases: Map<number, number>;
  insights: Insights | null;
  /** Live jobs left when the run stopped (should be 0). */
  unfinished: number;
  /** Write transactions (submits, transitions, heartbeats; a heartbeat batch or a coalesced one is one). */
  writes: number;
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Job ids sort by submit order (the store's "ahead of" relies on it) and name the job's index. */
export const jobIdOf = (i: number) => `j${String(i).padStart(7, '0')}`;
const indexOf = (jobId: string) => Number.parseInt(jobId.slice(1), 10);

/** Attempts are keyed `${job index}#${attempt}`. */
export interface ExpiryFacts {
  /** Each crash: when, which worker, and the attempts its handler records show running then. */
  crashes: ReadonlyArray<{ at: number; workerId: string; attempts: ReadonlyArray<{ key: string; type: string }> }>;
  /** Per attempt: the worker that started it and its lease as last written; when it started; when its lease expired. */
  startedBy: ReadonlyMap<string, { workerId: string; leaseMs: number }>;
  startedAt: ReadonlyMap<string, number>;
  expired: ReadonlyMap<string, number>;
  typeOf(i: number): string;
}

/**
 * Splits the lease expiries: those of attempts a crash interrupted (its
 * handler records show them running then, or another attempt of the crashed
 * worker expired after the crash: a handler that had returned, its outcome
 * not written), and the others, false expiries of healthy workers. An attempt
 * whose lease expired before its worker crashed was not the crash's (a
 * stall's): it is a false expiry.
 */
export function classifyExpiries(f: ExpiryFacts): Pick<RunRecord, 'recoveries' | 'healthyExpiries'> {
  const crashAt = new Map(f.crashes.map((c) => [c.workerId, c.at]));
  const parse = (key: string) => key.split('#').map(Number) as [number, number];
  const byCrash = (key: string): boolean => {
    const at = crashAt.get(f.startedBy.get(key)?.workerId ?? '');
    const e = f.expired.get(key);
    return at !== undefined && e !== undefined && e >= at;
  };
  const interrupted = new Map<string, { workerId: string; type: string }>();
  for (const c of f.crashes) {
    for (const r of c.attempts) {
      const e = f.expired.get(r.key);
      if (e === undefined || e >= c.at) interrupted.set(r.key, { workerId: c.workerId, type: r.type });
    }
  }
  for (const key of f.expired.keys()) {
    if (byCrash(key) && !interrupted.has(key)) interrupted.set(key, { workerId: f.startedBy.get(key)!.workerId, type: f.typeOf(parse(key)[0]) });
  }
  const recoveries: Recovery[] = [...interrupted].map(([key, r]) => {
    const [i, attempt] = parse(key);
    return {
      crashAt: crashAt.get(r.workerId)!, workerId: r.workerId, i, type: r.type, attempt,
      expiredAt: f.expired.get(key) ?? null,
      restartedAt: f.startedAt.get(`${i}#${attempt + 1}`) ?? null,
      leaseMs: f.startedBy.get(key)?.leaseMs ?? null,
    };
  }).sort((a, b) => a.crashAt - b.crashAt || a.i - b.i || a.attempt - b.attempt);
  const healthyExpiries: RunRecord['healthyExpiries'] = [];
  for (const [key, at] of f.expired) {
    if (interrupted.has(key)) continue;
    const [i, attempt] = parse(key);
    healthyExpiries.push({ i, type: f.typeOf(i), attempt, at, workerId: f.startedBy.get(key)?.workerId ?? '?' });
  }
  return { recoveries, healthyExpiries };
}

interface Slot {
  id: string;
  worker: Worker;
}

interface RunningAttempt {
  jobId: string;
  i: number;
  type: string;
  attempt: number;
  workerId: string;
}

/** The (job, attempt) of an event the engine draws a `rand` for. */
type Draw = { jobId: string; attempt: number };

/**
 * The backoff jitter as a pure function of (seed, job, attempt): the engine's
 * Random, told by {@link JitteredTransitions} whose events it is drawing for
 * (the engine draws one number per FAILED or LEASE_EXPIRED, in the order of
 * the events it applies, before its first await).
 */
export class PerJobJitter {
  private queue: Draw[] = [];

  constructor(private readonly seed: number) {}

  /** The draw of attempt `attempt` of job `jobId`, in [0, 1). */
  draw(jobId: string, attempt: number): number {
    return seededRandom(mix(mix(this.seed, indexOf(jobId)), attempt)).next();
  }

  /** The events the next draws are for, in order. */
  expect(draws: Draw[]): void {
    this.queue = draws;
  }

  /** Throws when a draw is made that no event was announced for, or one announced was not drawn. */
  done(): void {
    if (this.queue.length > 0) throw new Error(`PerJobJitter: ${this.queue.length} draws announced and not made`);
  }

  next(): number {
    const d = this.queue.shift();
    if (!d) throw new Error('PerJobJitter: a random draw for no announced event');
    return this.draw(d.jobId, d.attempt);
  }
}

/** The engine's TransitionService, announcing to the jitter the events it is about to draw for. */
class JitteredTransitions extends TransitionService {
  constructor(private readonly jitter: PerJobJitter, deps: ConstructorParameters<typeof TransitionService>[0]) {
    super(deps);
  }

  override applyMany(items: Parameters<TransitionService['applyMany']>[0]): ReturnType<TransitionService['applyMany']> {
    this.jitter.expect(items.flatMap(({ jobId, event }) =>
      event.type === 'FAILED' || event.type === 'LEASE_EXPIRED' ? [{ jobId, attempt: event.attempt }] : []));
    // The draws are made synchronously, before the service's first await.
    const result = super.applyMany(items);
    this.jitter.done();
    return result;
  }
}

/** Runs one seed's workload in one mode; see the file header. */
export async function simulate(w: Workload, opts: SimOptions): Promise<RunRecord> {
  const sim = new Simulation(w, opts);
  try {
    return await sim.run();
  } finally {
    await sim.close();
  }
}

class Simulation {
  private readonly clock: SimClock;
  private readonly sqlite: ReturnType<typeof createSqliteStore>;
  /** The store, counting its calls (started, and in flight): settling waits for quiet. */
  private readonly io: CountingStore;
  private readonly log = createMemoryLog({ partitions: 3, redeliveryDelayMs: 0 });
  private readonly waker = new Waker();
  private readonly transitions: TransitionService;
  private readonly relay: Relay;
  private readonly timers: Timers;
  private advisor: Advisor | null = null;
  private readonly slots: Array<Slot | null> = [null, null];
  private readonly allWorkers: Worker[] = [];
  private gen = 0;
  private readonly running = new Map<string, RunningAttempt>();
  private readonly crashed: Array<{ at: number; workerId: string; attempts: RunningAttempt[] }> = [];
  private readonly stopping = new AbortController();
  private readonly tasks: Array<Promise<void>> = [];
  private readonly eta: EtaSample[] = [];
  private etaNull = 0;
  private readonly anomalies: SeenAnomaly[] = [];
  private readonly decisions: RunRecord['decisions'] = {
    'no-retry': { applied: 0, advised: 0 }, 'retry-delay': { applied: 0, advised: 0 }, lease: { applied: 0, advised: 0 },
  };
  private taskError: unknown = null;
  private closed = false;

  constructor(private readonly w: Workload, private readonly opts: SimOptions) {
    this.clock = new SimClock(w.start);
    this.sqlite = createSqliteStore({ file: ':memory:', clock: this.clock });
    this.io = countingStore(this.sqlite);
    const store = this.io;
    const jitter = new PerJobJitter(mix(w.seed, 99 + (opts.jitterSeed ?? 0)));
    this.transitions = new JitteredTransitions(jitter, {
      store, clock: this.clock, random: jitter,
      ids: { jobId: (() => { let n = 0; return () => jobIdOf(n++); })() },
      onCommit: () => this.waker.notify(),
    });
    this.relay = new Relay(
      { store, log: this.log, transitions: this.transitions, clock: this.clock, logger: silentLogger, waker: this.waker },
      { batchSize: 500, pollMs: ENGINE.relayPollMs, errorBackoffMs: 1000, publishedDelayMs: ENGINE.relayPublishedDelayMs },
    );
    this.timers = new Timers(
      { store, transitions: this.transitions, clock: this.clock, logger: silentLogger },
      { pollMs: ENGINE.timersPollMs, batchSize: 500, publishedTimeoutMs: ENGINE.publishedTimeoutMs },
    );
  }

  async run(): Promise<RunRecord> {
    const started = Date.now();
    await this.sqlite.migrate();
    await this.log.ensureTopics();
    if (this.opts.mode !== 'off') await this.createAdvisor();
    await Promise.all([this.startWorker(0), this.startWorker(1)]);
    this.relay.start();
    this.timers.start();
    this.spawn(() => this.arrivals());
    this.spawn(() => this.faults());
    if (this.advisor) {
      this.spawn(() => this.every(ENGINE.advisorPollMs, () => this.advisor!.catchUp()));
      this.spawn(() => this.every(this.opts.etaLiveEveryMs ?? 60_000, () => this.sampleLive()));
    }
    const { start } = this.w;
    const end = start + this.w.options.durationMs;
    while (this.clock.now() < end) {
      await this.advance(Math.min(60_000, end - this.clock.now()));
      this.opts.onProgress?.((this.clock.now() - start) / (end - start));
    }
    const cap = end + (this.opts.drainMs ?? 2 * 3_600_000);
    while (this.clock.now() < cap && (await this.liveJobs()) > 0) await this.advance(10_000);
    const unfinished = await this.liveJobs();
    const simulatedMs = this.clock.now() - start;
    await this.stopAll();
    if (this.advisor) await this.advisor.catchUp();
    const record = await this.collect(simulatedMs, unfinished);
    record.realMs = Date.now() - started;
    return record;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopping.abort();
    await Promise.allSettled(this.allWorkers.map((wk) => wk.crash()));
    await Promise.allSettled([this.relay.stop(), this.timers.stop(), this.advisor?.stop()]);
    await Promise.allSettled(this.tasks);
    await this.log.close();
    await this.sqlite.close();
  }

  // ------------------------------------------------------------ wiring

  private async createAdvisor(): Promise<void> {
    // Imported only when used: the static run needs no model.
    const { Advisor } = await import('../../engine/advisor/advisor.js');
    this.advisor = new Advisor({
      store: this.io, clock: this.clock, logger: silentLogger,
      onAnomaly: (a) => this.anomalies.push({ ...a, seenAt: this.clock.now() }),
      onDecision: (kind, applied) => { this.decisions[kind][applied ? 'applied' : 'advised']++; },
    }, {
      mode: this.opts.mode, pollMs: ENGINE.advisorPollMs, historyEvents: ENGINE.advisorHistoryEvents,
      ...(this.opts.model ? { model: this.opts.model } : {}),
    });
    await this.advisor.init();
  }

  private async startWorker(slot: number): Promise<void> {
    const id = `w${slot}.${++this.gen}`;
    const view = this.clock.view(id);
    const registry = new HandlerRegistry();
    for (const p of this.w.profiles) registry.register(p.type, this.handler(id, view));
    const worker = new Worker(
      { log: this.log, transitions: this.transitions, clock: view, logger: silentLogger, registry, ...(this.advisor ? { advisor: this.advisor } : {}) },
      { workerId: id, groupId: 'ats-workers', concurrency: ENGINE.concurrency, leaseMs: ENGINE.leaseMs, heartbeatMs: ENGINE.heartbeatMs, shutdownGraceMs: ENGINE.shutdownGraceMs },
    );
    this.allWorkers.push(worker);
    await worker.start();
    this.slots[slot] = { id, worker };
  }

  /**
   * The test handler: does what the job's fate says for this attempt at this
   * time (workload.ts), sleeping on its worker's clock (a stalled worker's
   * handlers freeze with it) and giving up when its signal aborts.
   */
  private handler(workerId: string, view: Clock): Handler<Fate> {
    return async (fate, ctx) => {
      const outcome = attemptOutcome(this.w, ctx.type, fate, ctx.attempt, this.clock.now());
      const key = `${ctx.jobId}#${ctx.attempt}`;
      this.running.set(key, { jobId: ctx.jobId, i: fate.i, type: ctx.type, attempt: ctx.attempt, workerId });
      try {
        await view.sleep(outcome.runMs, ctx.signal);
      } finally {
        this.running.delete(key);
      }
      if (outcome.error) {
        const e = new Error(outcome.error.message);
        e.name = outcome.error.name;
        e.stack = `${e.name}: ${e.message}\n    at handler (bench/advisor/simulate.ts)`;
        throw e;
      }
      return null;
    };
  }

  // ------------------------------------------------------------ driver tasks

  private spawn(task: () => Promise<void>): void {
    this.tasks.push(task().catch((err) => {
      if (this.stopping.signal.aborted) return;
      this.taskError ??= err;
    }));
  }

  private sleepUntil(at: number): Promise<void> {
    return this.clock.sleep(Math.max(0, at - this.clock.now()), this.stopping.signal);
  }

  private async every(ms: number, body: () => Promise<void>): Promise<void> {
    for (;;) {
      await this.clock.sleep(ms, this.stopping.signal);
      await body();
    }
  }

  /** Submits each instant's arrivals in one call, and (advisor runs) asks each new job's ETA. */
  private async arrivals(): Promise<void> {
    const list = this.w.arrivals;
    for (let k = 0; k < list.length;) {
      const at = list[k]!.at;
      let n = k;
      while (n < list.length && list[n]!.at === at) n++;
      await this.sleepUntil(at);
      const group = list.slice(k, n);
      const results = await this.transitions.submitMany(group.map((a) => this.spec(a.type, a.fate)));
      if (this.advisor) {
        const every = this.opts.etaSubmitEvery ?? 10;
        for (const [k2, r] of results.entries()) if (r.ok && group[k2]!.fate.i % every === 0) await this.sampleEta(r.job, 'submit');
      }
      k = n;
    }
  }

  private spec(type: string, fate: Fate): JobSpec {
    const p = profileOf(this.w, type);
    return { type, payload: fate, queue: p.queue, maxAttempts: p.maxAttempts, backoff: p.backoff, timeoutMs: p.timeoutMs, priority: 0 };
  }

  /** Crashes (a fresh worker joins after a while) and stalls, in time order. */
  private async faults(): Promise<void> {
    type Action = { at: number; order: number; run: () => Promise<void> | void };
    const actions: Action[] = [];
    for (const c of this.w.crashes) {
      actions.push({ at: c.at, order: 0, run: () => this.crash(c.slot) });
      actions.push({ at: c.at + c.restartAfterMs, order: 1, run: () => this.restart(c.slot) });
    }
    for (const s of this.w.stalls) {
      let stalled: string | null = null;
      actions.push({ at: s.at, order: 2, run: () => { stalled = this.slots[s.slot]?.id ?? null; if (stalled) this.clock.pause(stalled); } });
      actions.push({ at: s.at + s.ms, order: 3, run: () => { if (stalled) this.clock.resume(stalled); } });
    }
    actions.sort((a, b) => a.at - b.at || a.order - b.order);
    for (const a of actions) {
      await this.sleepUntil(a.at);
      await a.run();
    }
  }

  private async crash(slot: number): Promise<void> {
    const s = this.slots[slot];
    if (!s) return;
    this.slots[slot] = null;
    const attempts = [...this.running.values()].filter((r) => r.workerId === s.id);
    this.crashed.push({ at: this.clock.now(), workerId: s.id, attempts });
    this.clock.resume(s.id);
    await s.worker.crash();
  }

  private async restart(slot: number): Promise<void> {
    if (!this.slots[slot]) await this.startWorker(slot);
  }

  /** The advisor's ETA of a job now; a running job's start is its last STARTED, as `GET /v1/jobs/:id` gives it. */
  private async sampleEta(job: JobRecord, kind: EtaSample['kind']): Promise<void> {
    let startedAt: number | null = null;
    if (job.snapshot.value === 'running') {
      const events = await this.io.getEvents(job.id);
      startedAt = events.findLast((e) => e.type === 'STARTED')?.at ?? null;
    }
    const eta = await this.advisor!.eta(job, startedAt);
    if (!eta) {
      this.etaNull++;
      return;
    }
    this.eta.push({ i: indexOf(job.id), type: job.type, kind, state: job.snapshot.value, at: this.clock.now(), finish: eta.finish });
  }

  /** ETAs of a few live jobs of each live state, now. */
  private async sampleLive(): Promise<void> {
    const n = this.opts.etaLivePerState ?? 5;
    for (const state of ['pending', 'published', 'running', 'retrying'] as const) {
      for (const job of await this.io.listJobs({ state, limit: n })) await this.sampleEta(job, 'live');
    }
  }

  // ------------------------------------------------------------ time

  private advance(ms: number): Promise<void> {
    return this.clock.advance(ms, () => this.settle()).then(() => {
      if (this.taskError) throw this.taskError;
    });
  }

  /**
   * Settled: nothing in flight at the store, no store call started and the
   * log's backlog unchanged, over three turns of the event loop (a chain
   * through the batchers and the log's delivery takes a turn or two between
   * store calls). A worker waiting for a free slot holds records without
   * moving: that is quiet too.
   */
  private async settle(): Promise<void> {
    let calls = -1;
    let pending = -1;
    for (let quiet = 0; quiet < 3;) {
      await tick();
      const c = this.io.calls;
      const p = this.log.pendingCount();
      if (this.io.inFlight === 0 && c === calls && p === pending) quiet++;
      else quiet = 0;
      calls = c;
      pending = p;
    }
  }

  private async liveJobs(): Promise<number> {
    const { byState } = await this.io.stats();
    return byState.pending + byState.published + byState.running + byState.retrying;
  }

  private async stopAll(): Promise<void> {
    this.stopping.abort();
    await Promise.allSettled(this.tasks);
    await Promise.all([this.relay.stop(), this.timers.stop()]);
    for (const s of this.slots) if (s) this.clock.resume(s.id);
    await Promise.all(this.allWorkers.map((wk) => wk.crash()));
    this.slots.fill(null);
  }

  // ------------------------------------------------------------ results

  /** Every event, in id order, folded into per-job results and the crash and lease figures. */
  private async collect(simulatedMs: number, unfinished: number): Promise<RunRecord> {
    const jobs: JobResult[] = this.w.arrivals.map((a) => ({ type: a.type, state: 'pending', attempts: 0, advisorStops: 0, finishedAt: null }));
    // Per attempt: who started it, with what lease, when it expired; per job: the STARTED times by attempt.
    const startedBy = new Map<string, { workerId: string; leaseMs: number }>();
    const expired = new Map<string, number>();
    const startedAt = new Map<string, number>();
    const leases = new Map<number, number>();
    let events = 0;
    let attempts = 0;
    let leaseExpiries = 0;
    for (let after = 0; ;) {
      const batch: StreamEventRecord[] = await this.sqlite.readEventsAfter(after, 5000);
      if (batch.length === 0) break;
      after = batch[batch.length - 1]!.id;
      for (const e of batch) {
        events++;
        this.opts.onEvent?.(e);
        const i = indexOf(e.jobId);
        const job = jobs[i]!;
        job.state = e.to;
        if (e.to === 'done' || e.to === 'dead' || e.to === 'cancelled') job.finishedAt = e.at;
        const d = e.data as { attempt?: number; leaseUntil?: number; workerId?: string; error?: { name?: string; decidedBy?: string; advice?: string } };
        if (e.type === 'STARTED' || e.type === 'HEARTBEAT') {
          const key = `${i}#${d.attempt}`;
          const leaseMs = d.leaseUntil! - e.at;
          if (e.type === 'STARTED') {
            attempts++;
            job.attempts++;
            startedBy.set(key, { workerId: d.workerId!, leaseMs });
            startedAt.set(key, e.at);
            const bucket = Math.round(leaseMs / 100) * 100;
            leases.set(bucket, (leases.get(bucket) ?? 0) + 1);
          } else {
            startedBy.get(key)!.leaseMs = leaseMs;
          }
        } else if (e.type === 'LEASE_EXPIRED') {
          leaseExpiries++;
          expired.set(`${i}#${d.attempt}`, e.at);
        } else if (e.type === 'FAILED' && d.error?.decidedBy === 'advisor') {
          job.advisorStops++;
          job.stoppedOn = /`([^`]+)`/.exec(d.error.advice ?? '')?.[1] ?? d.error.name ?? 'Error';
        }
      }
    }
    const crashes = this.crashed.map((c) => ({ at: c.at, workerId: c.workerId, attempts: c.attempts.map((r) => ({ key: `${indexOf(r.jobId)}#${r.attempt}`, type: r.type })) }));
    const { recoveries, healthyExpiries } = classifyExpiries({ crashes, startedBy, startedAt, expired, typeOf: (i) => jobs[i]!.type });
    const workers = this.allWorkers.reduce<WorkerCounters>((sum, wk) => {
      for (const [k, v] of Object.entries(wk.counters)) sum[k as keyof WorkerCounters] += v;
      return sum;
    }, { claimed: 0, skipped: 0, succeeded: 0, failed: 0, lateOutcomes: 0, outcomeRetries: 0, cancelsIgnored: 0, unknownSchema: 0, unhandled: 0, throttled: 0 });
    return {
      seed: this.w.seed, mode: this.opts.mode, simulatedMs, realMs: 0, events, jobs, attempts, recoveries, healthyExpiries, leaseExpiries,
      eta: this.eta, etaNull: this.etaNull, anomalies: this.anomalies, decisions: this.decisions, workers, leases,
      insights: this.advisor ? await this.advisor.insights() : null, unfinished, writes: this.io.writes,
    };
  }
}
