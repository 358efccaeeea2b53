/**
 * The commands of the model-based suite. Each drives the real system (World)
 * one step: submit, run the relay (or crash it), deliver, inject delivery
 * faults, crash or pause workers, send zombie outcomes, advance the clock,
 * run the timers, cancel, redrive. The model only tracks what decides which
 * commands apply and what a repeated submit must return.
 */
import fc from 'fast-check';
import type { BackoffPolicy } from '../machines/backoff.js';
import { isTerminal } from '../machines/lifecycle.js';
import type { JobRecord, JobSpec, LogMessage } from '../engine/ports.js';
import type { EventInput } from '../engine/transitions.js';
import { INVARIANTS, REDRIVABLE, violated, type InvariantChecker } from './invariants.js';
import { InjectedFault } from './tracked-log.js';
import { MAX_LIMITS_LISTED } from '../adapters/sql/limits.js';
import type { LimitSpec } from '../engine/limits.js';
import { AWKWARD_NAMES, LIMIT_KEYS, QUEUE, TASK_TYPE, describeLimit, type DeliveryFault, type LimitPlan, type Plan, type TaskPayload, type World } from './world.js';

/** Jobs per run: small runs shrink to readable counterexamples and keep 1,000 runs fast. */
export const MAX_JOBS = 8;
export const MAX_COMMANDS = 30;

export interface Model {
  jobs: number;
  keys: Map<string, { variant: number; spec: JobSpec; jobIndex: number }>;
}

export interface Real {
  world: World;
  checker: InvariantChecker;
}

export const newModel = (): Model => ({ jobs: 0, keys: new Map() });

abstract class Command implements fc.AsyncCommand<Model, Real> {
  check(m: Readonly<Model>): boolean {
    return this.needsJob ? m.jobs > 0 : true;
  }

  async run(m: Model, r: Real): Promise<void> {
    r.world.note(`> ${this.toString()}`);
    await r.world.openLateGates();
    await this.act(m, r.world);
    r.world.stats.commands++;
    await r.checker.afterCommand();
  }

  protected get needsJob(): boolean {
    return false;
  }

  abstract act(m: Model, w: World): Promise<void>;
  abstract toString(): string;
}

/** A job picked by a generated number (stable under shrinking of other commands). */
const pickJob = (w: World, pick: number): string => w.jobIds[pick % w.jobIds.length]!;

// ------------------------------------------------------------------ submit

export interface SubmitParams {
  /** Queue and type: usually the plain ones, sometimes a name like `__proto__`. */
  queue: string;
  type: string;
  key: string | null;
  /** One of `LIMIT_KEYS` (each limited), or none. */
  concurrencyKey: string | null;
  variant: number;
  delayMs: number;
  maxAttempts: number;
  plan: Plan[];
  backoff: BackoffPolicy;
  timeoutMs: number;
  /** A keyed submit sent twice in one batch (submitMany). */
  twice: boolean;
}

class Submit extends Command {
  constructor(private readonly p: SubmitParams) {
    super();
  }

  override check(m: Readonly<Model>): boolean {
    return m.jobs < MAX_JOBS || (this.p.key !== null && m.keys.has(this.modelKey));
  }

  /** An idempotency key is unique per queue. */
  private get modelKey(): string {
    return `${this.p.queue}\u0000${this.p.key}`;
  }

  async act(m: Model, w: World): Promise<void> {
    const known = this.p.key === null ? undefined : m.keys.get(this.modelKey);
    if (known) return this.resubmit(w, known);
    const spec = w.spec({ ...this.p, payload: { plan: this.p.plan, variant: this.p.variant } });
    const specs = this.p.twice && this.p.key !== null ? [spec, spec] : [spec];
    const [first, second] = await w.transitions.submitMany(specs);
    if (!first!.ok || !first!.created) violated(INVARIANTS.submitOnce, `a new submit was not created: ${JSON.stringify(first)}`);
    if (second && (!second.ok || second.created || second.job.id !== first!.job.id)) {
      violated(INVARIANTS.submitOnce, `the same key twice in one batch gave ${first!.job.id} and ${second.ok ? `${second.job.id} (created ${second.created})` : second.reason}`);
    }
    w.jobIds.push(first!.job.id);
    m.jobs++;
    if (this.p.concurrencyKey !== null) w.stats.limitedJobs++;
    if (this.p.key !== null) m.keys.set(this.modelKey, { variant: this.p.variant, spec, jobIndex: w.jobIds.length - 1 });
    w.note(`submitted ${first!.job.id} (${first!.job.snapshot.value})`);
  }

  /** The key is taken: the same body must return that job, another body a conflict naming it. */
  private async resubmit(w: World, known: { variant: number; spec: JobSpec; jobIndex: number }): Promise<void> {
    const same = known.variant === this.p.variant;
    const payload = known.spec.payload as TaskPayload;
    const spec = same ? known.spec : { ...known.spec, payload: { ...payload, variant: this.p.variant } };
    const r = await w.transitions.submit(spec);
    const expected = w.jobIds[known.jobIndex];
    const got = r.ok ? `ok, job ${r.job.id}, created ${r.created}` : `${r.reason}, job ${r.job.id}`;
    if (same && (!r.ok || r.created || r.job.id !== expected)) {
      violated(INVARIANTS.submitOnce, `key ${this.p.key} again with the same body: expected job ${expected} (not created), got ${got}`);
    }
    if (!same && (r.ok || r.reason !== 'idempotency-conflict' || r.job.id !== expected)) {
      violated(INVARIANTS.submitOnce, `key ${this.p.key} with another body: expected a conflict naming ${expected}, got ${got}`);
    }
    w.note(`resubmit key ${this.p.key}: ${got}`);
  }

  toString(): string {
    const p = this.p;
    const key = `${p.key === null ? 'no key' : `key ${p.key}${p.twice ? ' twice' : ''}`}${p.concurrencyKey === null ? '' : `, limited by ${p.concurrencyKey}`}`;
    const names = `${p.queue === QUEUE ? '' : `queue ${p.queue}, `}${p.type === TASK_TYPE ? '' : `type ${p.type}, `}`;
    const backoff = p.backoff.kind === 'fixed' ? `fixed ${p.backoff.delayMs}` : `exp ${p.backoff.baseMs}..${p.backoff.maxMs}`;
    return `submit(${names}${key}, body ${p.variant}, plan [${p.plan.join(',')}], max ${p.maxAttempts}, ${p.delayMs ? `runAt +${p.delayMs}ms, ` : ''}${backoff}, timeout ${p.timeoutMs})`;
  }
}

// ------------------------------------------------------------------ relay and delivery

type RelayMode = 'small' | 'all' | 'crash-after-produce' | 'fail-produce' | 'half-produce' | 'die-after-mark' | 'published-fails';

/** Modes that set the log's publish fault themselves (a lost batch cannot also fail). */
const PRODUCE_FAULTS: ReadonlySet<RelayMode> = new Set(['fail-produce', 'half-produce']);

/**
 * One relay batch (`runOnce`), maybe with a fault: killed between produce and
 * mark, dying while producing, dying after the rows were marked published and
 * before PUBLISHED was recorded, or the PUBLISHED write failing. `lose`: the
 * log acks the batch but loses its dispatch messages.
 */
class RunRelay extends Command {
  constructor(private readonly mode: RelayMode, private readonly lose = false) {
    super();
  }

  async act(_m: Model, w: World): Promise<void> {
    const relay = this.mode === 'small' ? w.relays.small
      : this.mode === 'crash-after-produce' ? w.relays.crashing
        : this.mode === 'die-after-mark' ? w.relays.diesAfterMark
          : this.mode === 'published-fails' ? w.relays.publishedFails
            : w.relays.all;
    if (this.mode === 'fail-produce') w.log.publishFault = 'fail';
    if (this.mode === 'half-produce') w.log.publishFault = 'half';
    if (this.lose && !PRODUCE_FAULTS.has(this.mode)) w.log.publishFault = 'lose';
    const lostBefore = w.log.lostDispatches;
    try {
      w.note(`relay published ${await relay.runOnce()} rows`);
    } catch (err) {
      if (!(err instanceof InjectedFault)) throw err;
      w.stats.relayFaults++;
      w.note(`relay: ${err.message}`);
    } finally {
      w.log.publishFault = 'none';
      if (w.log.lostDispatches > lostBefore) w.note(`the log lost ${w.log.lostDispatches - lostBefore} dispatch messages after acking them`);
    }
  }

  toString(): string {
    return `relay(${this.mode}${this.lose ? ', log loses its dispatches' : ''})`;
  }
}

/**
 * The real background loops (relay woken by commits, timers) while simulated
 * time passes; `during`, a submit, cancel or redrive, commits halfway through
 * (its commit alone must wake the relay).
 */
class RunLoops extends Command {
  constructor(private readonly ms: number, private readonly during: Submit | UserEvent | null) {
    super();
  }

  async act(m: Model, w: World): Promise<void> {
    // Its own conditions, as when drawn on its own (no job to cancel yet: the loops run without it).
    const during = this.during?.check(m) ? this.during : null;
    await w.runLoops(this.ms, during && { what: during.toString(), commit: () => during.act(m, w) });
    w.stats.loopRuns++;
    if (during) w.stats.loopCommits++;
  }

  toString(): string {
    return `loops(${this.ms}ms${this.during ? `, ${this.during.toString()} halfway` : ''})`;
  }
}

class Deliver extends Command {
  constructor(private readonly all: boolean) {
    super();
  }

  async act(_m: Model, w: World): Promise<void> {
    if (this.all) await w.settle();
    else await new Promise<void>((resolve) => setImmediate(resolve));
  }

  toString(): string {
    return this.all ? 'deliver(all)' : 'deliver(one turn)';
  }
}

/** The same dispatch message again (a producer retry, a relay that re-published). */
class Duplicate extends Command {
  constructor(private readonly pick: number) {
    super();
  }

  async act(_m: Model, w: World): Promise<void> {
    const all = w.log.dispatches;
    if (all.length === 0) return;
    const m = all[this.pick % all.length]!;
    await w.log.publish([copyMessage(m)]);
    w.stats.duplicatesInjected++;
    w.note(`duplicated dispatch ${m.value}`);
  }

  toString(): string {
    return `duplicate(message ${this.pick})`;
  }
}

/** A stale dispatch arriving after a newer one of the same job (out of order). */
class Reorder extends Command {
  constructor(private readonly pick: number) {
    super();
  }

  protected override get needsJob(): boolean {
    return true;
  }

  async act(_m: Model, w: World): Promise<void> {
    const id = pickJob(w, this.pick);
    const mine = w.log.dispatches.filter((m) => m.key === id);
    if (mine.length === 0) return;
    const newest = mine[mine.length - 1]!;
    const oldest = mine[0]!;
    await w.log.publish([copyMessage(newest), copyMessage(oldest)]);
    w.stats.duplicatesInjected += 2;
    w.note(`re-sent ${id}'s dispatches newest first: ${newest.value} then ${oldest.value}`);
  }

  toString(): string {
    return `reorder(job ${this.pick})`;
  }
}

const copyMessage = (m: LogMessage): LogMessage => ({ ...m, headers: { ...m.headers } });

// ------------------------------------------------------------------ workers

type WorkerFault = DeliveryFault | 'crash-now';

class FaultWorker extends Command {
  constructor(private readonly slot: number, private readonly fault: WorkerFault) {
    super();
  }

  async act(_m: Model, w: World): Promise<void> {
    const run = w.workers[this.slot]!;
    if (this.fault === 'crash-now') w.crash(run, 'killed');
    else run.fault = this.fault;
  }

  toString(): string {
    return this.fault === 'crash-now' ? `crash(worker ${this.slot})` : `arm(worker ${this.slot}, ${this.fault} on its next delivery)`;
  }
}

/**
 * A stalled worker (GC pause, partition): its heartbeats and timeouts stop
 * while its handlers run on. Stalls the worker holding the picked job's
 * lease (a zombie in the making), or resumes a slot's worker.
 */
class PauseWorker extends Command {
  constructor(private readonly target: { job: number } | { slot: number }) {
    super();
  }

  protected override get needsJob(): boolean {
    return 'job' in this.target;
  }

  async act(_m: Model, w: World): Promise<void> {
    if ('slot' in this.target) {
      w.clock.resume(w.workers[this.target.slot]!.id);
      return w.clock.wakeDue(() => w.settle());
    }
    const job = await w.store.getJob(pickJob(w, this.target.job));
    const holder = job?.snapshot.value === 'running' ? job.snapshot.context.workerId : null;
    if (!holder) return;
    w.clock.pause(holder);
    w.note(`stalled ${holder} (holds ${job!.id}#${job!.snapshot.context.attempt})`);
  }

  toString(): string {
    return 'job' in this.target ? `stall(lease holder of job ${this.target.job})` : `resume(worker ${this.target.slot})`;
  }
}

type StaleType = 'SUCCEEDED' | 'FAILED' | 'LEASE_EXPIRED' | 'HEARTBEAT';

/**
 * A zombie reports on an attempt that is no longer current: rejected, nothing
 * written. It reports for a job with an attempt that ran and ended when there
 * is one (for an even pick, a job running a later attempt), on such an
 * attempt (the newest most often): a worker that held it could still be
 * around. A job without one gets attempt 0, which never ran.
 */
class Zombie extends Command {
  constructor(private readonly pick: number, private readonly type: StaleType) {
    super();
  }

  protected override get needsJob(): boolean {
    return true;
  }

  private async target(w: World): Promise<JobRecord> {
    const jobs = (await Promise.all(w.jobIds.map((id) => w.store.getJob(id)))).map((j) => j!);
    const stale = jobs.filter((j) => endedAttempts(j) > 0);
    const runningLater = stale.filter((j) => j.snapshot.value === 'running');
    const pool = this.pick % 2 === 0 && runningLater.length > 0 ? runningLater : stale.length > 0 ? stale : jobs;
    return pool[Math.floor(this.pick / 2) % pool.length]!;
  }

  async act(_m: Model, w: World): Promise<void> {
    const job = await this.target(w);
    const id = job.id;
    const current = job.snapshot.context.attempt;
    const ended = endedAttempts(job);
    const attempt = ended > 0 ? ended - (Math.floor(this.pick / 8) % ended) : 0;
    const count = async () => (await w.store.getEvents(id))
      .filter((e) => e.type === this.type && (e.data as { attempt?: number }).attempt === attempt).length;
    const before = await count();
    const r = await w.transitions.apply(id, this.event(attempt, w.clock.now()));
    if (r.ok || (await count()) !== before) {
      violated(INVARIANTS.stale, `${this.type}(${attempt}) on job ${id} (${job!.snapshot.value}, attempt ${job!.snapshot.context.attempt}) was accepted`);
    }
    w.stats.zombiesRejected++;
    if (attempt > 0) w.stats.staleZombiesRejected++;
    w.note(`zombie ${this.type}(${attempt}) on ${id} (${job.snapshot.value}, attempt ${current}): rejected`);
  }

  private event(attempt: number, now: number): EventInput {
    switch (this.type) {
      case 'SUCCEEDED': return { type: 'SUCCEEDED', attempt, result: 'from a zombie' };
      case 'FAILED': return { type: 'FAILED', attempt, error: { message: 'from a zombie', retryable: true } };
      case 'LEASE_EXPIRED': return { type: 'LEASE_EXPIRED', attempt };
      case 'HEARTBEAT': return { type: 'HEARTBEAT', attempt, leaseUntil: now + 60_000 };
    }
  }

  toString(): string {
    return `zombie(job ${this.pick}, stale ${this.type})`;
  }
}

/** The attempts of a job that ran and are over (1..this): all it started but the one it runs now. */
const endedAttempts = (job: JobRecord): number =>
  job.snapshot.value === 'running' ? job.snapshot.context.attempt - 1 : job.snapshot.context.attempt;

// ------------------------------------------------------------------ time, timers, users

class Advance extends Command {
  constructor(private readonly ms: number, private readonly thenTimers: boolean) {
    super();
  }

  async act(_m: Model, w: World): Promise<void> {
    await w.advance(this.ms);
    if (this.thenTimers) w.note(`timers accepted ${await w.timers.runOnce()} events`);
  }

  toString(): string {
    return `advance(${this.ms}ms${this.thenTimers ? ', then timers' : ''})`;
  }
}

class RunTimers extends Command {
  async act(_m: Model, w: World): Promise<void> {
    w.note(`timers accepted ${await w.timers.runOnce()} events`);
  }

  toString(): string {
    return 'timers()';
  }
}

/** What the embedded mode does after a restart: dispatch every published job again. */
class RepairStale extends Command {
  async act(_m: Model, w: World): Promise<void> {
    const stale = await w.store.findLostDispatches(w.clock.now() + 1, 100);
    w.note(`re-dispatched ${await w.timers.redispatch(stale)} published jobs`);
  }

  toString(): string {
    return 'redispatchPublished()';
  }
}

class UserEvent extends Command {
  constructor(private readonly pick: number, private readonly type: 'CANCEL' | 'REDRIVE') {
    super();
  }

  protected override get needsJob(): boolean {
    return true;
  }

  async act(_m: Model, w: World): Promise<void> {
    const id = pickJob(w, this.pick);
    const r = await w.transitions.apply(id, this.type === 'CANCEL' ? { type: 'CANCEL', reason: 'property test' } : { type: 'REDRIVE' });
    if (r.ok) {
      const from = r.event.from!;
      const allowed = this.type === 'CANCEL' ? !isTerminal(from) : REDRIVABLE.has(from);
      if (!allowed) violated(INVARIANTS.userEvents, `${this.type} of ${id} was accepted in state ${from} (→ ${r.event.to})`);
      return w.note(`${this.type} ${id}: ${from} → ${r.event.to}`);
    }
    if (r.reason === 'not-found') violated(INVARIANTS.lost, `job ${id} not found`);
    const state = r.job.snapshot.value;
    const allowed = this.type === 'CANCEL' ? isTerminal(state) : !REDRIVABLE.has(state);
    if (!allowed) violated(INVARIANTS.userEvents, `${this.type} of ${id} was rejected in state ${state}`);
    w.note(`${this.type} ${id}: rejected in ${state}`);
  }

  toString(): string {
    return `${this.type.toLowerCase()}(job ${this.pick})`;
  }
}

// ------------------------------------------------------------------ limits

/**
 * How a limit change moves a key's limit, applied to the limit the key has
 * when it runs (so that most changes move one field and keep the other, a
 * rate's state with it): its concurrency set (raised or lowered, maybe below
 * the attempts it counts, or 0: paused) or lifted, its rate set (or changed) or lifted, the
 * whole limit replaced (set again, after a delete), or deleted.
 */
export type LimitChange =
  | { kind: 'cap'; concurrency: number }
  /** The cap set to the attempts the key runs now (as `GET /v1/limits` shows them), 1 at least. */
  | { kind: 'cap-to-running' }
  | { kind: 'lift-cap' }
  | { kind: 'rate'; rate: { max: number; intervalMs: number } }
  | { kind: 'lift-rate' }
  | { kind: 'put'; spec: LimitSpec }
  | { kind: 'delete' }
  /** Deleted, then set again as it was (the attempts running are no longer counted). */
  | { kind: 'reset' };

/** The key's limit after `change` (null: deleted); a limit needs one of the two caps, as the API requires (a lift of the only one sets a cap of 1). */
function changed(current: LimitSpec | undefined, change: LimitChange, running: number): LimitSpec | null {
  const base: LimitSpec = current ?? { concurrency: null, rate: null };
  const spec = ((): LimitSpec | null => {
    switch (change.kind) {
      case 'cap': return { ...base, concurrency: change.concurrency };
      case 'cap-to-running': return { ...base, concurrency: Math.max(1, running) };
      case 'reset': return current ?? null;
      case 'lift-cap': return { ...base, concurrency: null };
      case 'rate': return { ...base, rate: change.rate };
      case 'lift-rate': return { ...base, rate: null };
      case 'put': return change.spec;
      case 'delete': return null;
    }
  })();
  return spec && spec.concurrency === null && spec.rate === null ? { ...spec, concurrency: 1 } : spec;
}

/**
 * A key's limit changed while the run goes on, as `PUT /v1/limits/{key}` and
 * `DELETE /v1/limits/{key}` change it (the store calls those routes make).
 */
class ChangeLimit extends Command {
  /** @param atNextStart made just after the key's next admitted claim commits (before its handler runs), not now */
  constructor(private readonly key: string, private readonly change: LimitChange, private readonly atNextStart: boolean) {
    super();
  }

  async act(_m: Model, w: World): Promise<void> {
    if (!this.atNextStart) return this.apply(w);
    w.armedLimitChange = { key: this.key, apply: () => this.apply(w) };
    w.note(`${this.toString()} armed`);
  }

  private apply(w: World): Promise<void> {
    return w.limitWrites.run(() => this.write(w));
  }

  private async write(w: World): Promise<void> {
    w.stats.limitChanges++;
    const running = this.change.kind === 'cap-to-running' ? (await w.backend.store.runningByKey([this.key], w.clock.now())).get(this.key) ?? 0 : 0;
    const spec = changed(w.currentLimits.get(this.key), this.change, running);
    if (this.change.kind === 'reset' && spec !== null) {
      await w.backend.store.deleteLimit(this.key);
      w.note(`limit of ${this.key} deleted, to be set again`);
    }
    if (spec === null) {
      const deleted = await w.backend.store.deleteLimit(this.key);
      w.currentLimits.delete(this.key);
      return w.note(`limit of ${this.key} ${deleted ? 'deleted' : 'not there to delete'}`);
    }
    await w.backend.store.putLimit(this.key, spec, w.clock.now(), MAX_LIMITS_LISTED);
    // The run's limit writes go one at a time (`World.limitWrites`), and claims change only the rate state: the store holds this one.
    const limit = await w.backend.store.getLimit(this.key);
    if (!limit || limit.concurrency !== spec.concurrency || limit.rate?.max !== spec.rate?.max || limit.rate?.intervalMs !== spec.rate?.intervalMs) {
      throw new Error(`PUT of ${this.key} (${describeLimit(spec)}) left ${limit ? describeLimit(limit) : 'no limit'}`);
    }
    w.currentLimits.set(this.key, spec);
    w.note(`limit of ${this.key} now ${describeLimit(spec)}`);
  }

  toString(): string {
    const c = this.change;
    const what = c.kind === 'cap' ? `concurrency ${c.concurrency}` : c.kind === 'rate' ? `rate ${c.rate.max}/${c.rate.intervalMs}ms`
      : c.kind === 'put' ? `put ${describeLimit(c.spec)}` : c.kind;
    return `limit(${this.key}, ${what}${this.atNextStart ? ', at its next start' : ''})`;
  }
}

// ------------------------------------------------------------------ arbitraries

const planArb: fc.Arbitrary<Plan> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Plan>('ok') },
  { weight: 4, arbitrary: fc.constant<Plan>('fail') },
  { weight: 1, arbitrary: fc.constant<Plan>('fatal') },
  { weight: 2, arbitrary: fc.constant<Plan>('hang') },
  { weight: 3, arbitrary: fc.constant<Plan>('crash') },
  { weight: 2, arbitrary: fc.constant<Plan>('stall') },
);

const backoffArb: fc.Arbitrary<BackoffPolicy> = fc.oneof(
  fc.record({ kind: fc.constant('fixed' as const), delayMs: fc.constantFrom(0, 500, 2000) }),
  fc.record({
    kind: fc.constant('exponential' as const), baseMs: fc.constantFrom(100, 1000), maxMs: fc.constant(4000),
    jitter: fc.constantFrom('full' as const, 'equal' as const, 'none' as const),
  }),
);

/** Mostly the plain name, sometimes one that breaks a plain object used as a map. */
const nameArb = (plain: string): fc.Arbitrary<string> =>
  fc.oneof({ weight: 4, arbitrary: fc.constant(plain) }, { weight: 1, arbitrary: fc.constantFrom(...AWKWARD_NAMES) });

const submitArb: fc.Arbitrary<SubmitParams> = fc.record({
  queue: nameArb(QUEUE),
  type: nameArb(TASK_TYPE),
  key: fc.option(fc.oneof({ weight: 3, arbitrary: fc.constant('k0') }, { weight: 1, arbitrary: fc.constantFrom(...AWKWARD_NAMES) }), { nil: null, freq: 2 }),
  // Mostly the first key, so that a run's limited jobs meet on one key often.
  concurrencyKey: fc.option(fc.oneof({ weight: 4, arbitrary: fc.constant(LIMIT_KEYS[0]!) }, { weight: 1, arbitrary: fc.constantFrom(...LIMIT_KEYS.slice(1)) }), { nil: null, freq: 2 }),
  variant: fc.constantFrom(0, 1),
  delayMs: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }) }),
  maxAttempts: fc.integer({ min: 1, max: 5 }),
  plan: fc.array(planArb, { maxLength: 4 }),
  backoff: backoffArb,
  timeoutMs: fc.integer({ min: 1000, max: 5000 }),
  twice: fc.boolean(),
});

const slotArb = fc.constantFrom(0, 1);
const pickArb = fc.nat({ max: 63 });
const msArb = fc.constantFrom(100, 1000, 2999, 3001, 5000, 10_000, 30_000);

/** A rate whose step (docs/limits.md: one start every ⌈intervalMs / max⌉ ms) is a fraction of a lease to most of one. */
const rateArb = fc.record({ max: fc.integer({ min: 1, max: 3 }), intervalMs: fc.constantFrom(300, 1000, 2500) });

/** A limit change (`LimitChange`), mostly of the first key's, which most limited jobs carry. */
const limitChangeArb: fc.Arbitrary<ChangeLimit> = fc.tuple(
  fc.oneof({ weight: 3, arbitrary: fc.constant(LIMIT_KEYS[0]!) }, { weight: 1, arbitrary: fc.constantFrom(...LIMIT_KEYS.slice(1)) }),
  fc.oneof(
    // 0 pauses the key (the faults' end resumes it: World.stopFaults).
    { weight: 3, arbitrary: fc.integer({ min: 0, max: 3 }).map((concurrency): LimitChange => ({ kind: 'cap', concurrency })) },
    { weight: 2, arbitrary: fc.constant<LimitChange>({ kind: 'cap-to-running' }) },
    { weight: 1, arbitrary: fc.constant<LimitChange>({ kind: 'lift-cap' }) },
    { weight: 3, arbitrary: rateArb.map((rate): LimitChange => ({ kind: 'rate', rate })) },
    { weight: 1, arbitrary: fc.constant<LimitChange>({ kind: 'lift-rate' }) },
    {
      weight: 1,
      arbitrary: fc.record({ concurrency: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null, freq: 3 }), rate: fc.option(rateArb, { nil: null, freq: 2 }) })
        .map((spec): LimitChange => ({ kind: 'put', spec })),
    },
    { weight: 1, arbitrary: fc.constant<LimitChange>({ kind: 'delete' }) },
    { weight: 1, arbitrary: fc.constant<LimitChange>({ kind: 'reset' }) },
  ),
).chain(([key, change]) => fc.boolean().map((atNextStart) => new ChangeLimit(key, change, atNextStart)));

/**
 * What commits while the loops run: mostly a submit, else a cancel or a
 * redrive, of the kinds not `exclude`d (a quarter of the loops: nothing).
 */
function duringLoopsArb(exclude: ReadonlySet<string>): fc.Arbitrary<Submit | UserEvent | null> {
  const commits = [
    { kind: 'submit', weight: 3, arbitrary: submitArb.map((p): Submit | UserEvent => new Submit(p)) },
    { kind: 'cancel', weight: 1, arbitrary: pickArb.map((n): Submit | UserEvent => new UserEvent(n, 'CANCEL')) },
    { kind: 'redrive', weight: 1, arbitrary: pickArb.map((n): Submit | UserEvent => new UserEvent(n, 'REDRIVE')) },
  ].filter((c) => !exclude.has(c.kind));
  return commits.length === 0 ? fc.constant(null) : fc.option(fc.oneof(...commits), { nil: null, freq: 4 });
}

/** Every kind of command with its weight; PROPERTY_EXCLUDE may drop kinds by name. */
const kinds = (exclude: ReadonlySet<string>): Record<string, { weight: number; arbitrary: fc.Arbitrary<Command> }> => ({
  submit: { weight: 10, arbitrary: submitArb.map((p) => new Submit(p)) },
  relay: { weight: 4, arbitrary: fc.constantFrom<RelayMode>('small', 'all', 'all').map((m) => new RunRelay(m)) },
  relayFault: {
    weight: 3,
    arbitrary: fc.constantFrom<RelayMode>('crash-after-produce', 'fail-produce', 'half-produce', 'die-after-mark', 'published-fails')
      .map((m) => new RunRelay(m)),
  },
  /** A relay batch whose dispatch messages the log loses after acking them (with or without a relay fault). */
  lose: {
    weight: 1,
    arbitrary: fc.constantFrom<RelayMode>('all', 'die-after-mark', 'published-fails').map((m) => new RunRelay(m, true)),
  },
  loops: {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(0, 250, 1000, 3001), duringLoopsArb(exclude)).map(([ms, during]) => new RunLoops(ms, during)),
  },
  deliver: { weight: 4, arbitrary: fc.boolean().map((all) => new Deliver(all)) },
  duplicate: { weight: 1, arbitrary: pickArb.map((n) => new Duplicate(n)) },
  reorder: { weight: 1, arbitrary: pickArb.map((n) => new Reorder(n)) },
  workerFault: {
    weight: 3,
    arbitrary: fc.tuple(slotArb, fc.constantFrom<WorkerFault>('drop', 'crash-before-claim', 'crash-after-claim', 'crash-now'))
      .map(([s, f]) => new FaultWorker(s, f)),
  },
  stall: { weight: 2, arbitrary: pickArb.map((n) => new PauseWorker({ job: n })) },
  resume: { weight: 1, arbitrary: slotArb.map((slot) => new PauseWorker({ slot })) },
  zombie: {
    weight: 1,
    arbitrary: fc.tuple(pickArb, fc.constantFrom<StaleType>('SUCCEEDED', 'FAILED', 'LEASE_EXPIRED', 'HEARTBEAT'))
      .map(([n, t]) => new Zombie(n, t)),
  },
  advance: { weight: 3, arbitrary: msArb.map((ms) => new Advance(ms, false)) },
  advanceTimers: { weight: 3, arbitrary: msArb.map((ms) => new Advance(ms, true)) },
  timers: { weight: 3, arbitrary: fc.constant(new RunTimers()) },
  redispatch: { weight: 1, arbitrary: fc.constant(new RepairStale()) },
  cancel: { weight: 2, arbitrary: pickArb.map((n) => new UserEvent(n, 'CANCEL')) },
  redrive: { weight: 1, arbitrary: pickArb.map((n) => new UserEvent(n, 'REDRIVE')) },
  limit: { weight: 5, arbitrary: limitChangeArb },
});

export const COMMAND_KINDS = Object.keys(kinds(new Set()));

/** Commands, weighted, without the `exclude`d kinds; `fc.commands` draws runs of them. */
export function commandArb(exclude: ReadonlySet<string> = new Set()): fc.Arbitrary<fc.AsyncCommand<Model, Real>> {
  const all = kinds(exclude);
  for (const k of exclude) if (!Object.hasOwn(all, k)) throw new Error(`unknown command kind "${k}" (kinds: ${COMMAND_KINDS.join(', ')})`);
  return fc.oneof(...Object.entries(all).filter(([k]) => !exclude.has(k)).map(([, v]) => v));
}

/**
 * Each key's limit for one run: a concurrency of 1 to 3, and for about half
 * the keys a rate too, its step (docs/limits.md: one start every
 * ⌈intervalMs / max⌉ ms) from a fraction of a lease to most of one.
 */
export const limitPlanArb: fc.Arbitrary<LimitPlan> = fc.tuple(...LIMIT_KEYS.map(() => fc.record({
  concurrency: fc.integer({ min: 1, max: 3 }),
  rate: fc.option(rateArb, { nil: null, freq: 2 }),
}))).map((specs) => new Map(specs.map((spec, i) => [LIMIT_KEYS[i]!, spec])));

export const commandsArb = (opts: { replayPath?: string; exclude?: ReadonlySet<string> } = {}) =>
  fc.commands([commandArb(opts.exclude)], { maxCommands: MAX_COMMANDS, size: 'max', ...(opts.replayPath ? { replayPath: opts.replayPath } : {}) });

