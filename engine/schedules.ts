/**
 * Cron schedules: a named cron expression (in an IANA time zone) and the job
 * it submits at each tick.
 *
 * Exactly one job per tick: the tick's job carries an idempotency key made of
 * the schedule's name, its creation time and the tick's time
 * (`scheduleTickKey`), and the store inserts a job only where its (queue,
 * idempotency key) is free, in the job's own transaction. Two timers
 * instances firing the same tick, or one firing it again after a crash before
 * it recorded the tick, get the job the first one created. A tick such a crash
 * left unrecorded until it is too late to fire (catch-up) is not missed: the
 * next pass finds its job by its key and records it (`ScheduleRunner.fire`).
 *
 * A schedule belongs to a tenant (engine/auth.ts): it is named within it
 * (two tenants may each have a `nightly`), read, changed and deleted only by
 * it, and its ticks submit their jobs into it. Idempotency keys are per
 * tenant (the store's), so the tick key needs no tenant in it.
 *
 * Parsing and next-run computation are croner's: time zones and daylight
 * saving time as croner defines them (docs/scheduling.md says what that gives
 * around a change). The rest is pure: `ticksToFire` decides what a pass does.
 */
import { Cron } from 'croner';
import { isTerminal } from '../machines/lifecycle.js';
import { LAST_INSTANT_MS } from '../machines/job-bounds.js';
import { AtsError, cutText, isAtsError } from './errors.js';
import type { QueueRegistry } from './queue-registry.js';
import { ErrorBackoff } from './error-backoff.js';
import { POLLING_ERROR_BACKOFF } from './loop.js';
import type {
  CatchUp, Clock, JobSpec, JobStore, JobTemplate, Logger, Overlap, ScheduleRecord, ScheduleStore, ScheduleTick,
} from './ports.js';
import { ATTR, withSubmitterSpan, type Tracer } from './tracing.js';
import type { TransitionService } from './transitions.js';

export type { CatchUp, JobTemplate, Overlap, ScheduleRecord, ScheduleTick } from './ports.js';

export const OVERLAPS: readonly Overlap[] = Object.freeze(['skip', 'allow']);
export const CATCH_UPS: readonly CatchUp[] = Object.freeze(['none', 'latest', 'all']);

/** Longest schedule name. */
export const MAX_SCHEDULE_NAME = 100;
/** Longest cron expression (a real one is under 100 characters). */
export const MAX_CRON_CHARS = 200;
/** A tick later than this is missed (`catchUp: none` drops it); a pass a little late still fires it. */
export const MISSED_AFTER_MS = 60_000;
/** Most ticks of one schedule a pass fires (`catchUp: all` after a long downtime continues at the next pass). */
export const MAX_TICKS_PER_PASS = 100;
/**
 * Most schedules of one tenant, as many as `GET /v1/schedules` lists: a creation beyond is
 * ATS_ERR_TOO_MANY_SCHEDULES (409), so no schedule fires unseen past the end of the list.
 */
export const MAX_SCHEDULES = 1000;
/**
 * Most bytes of JSON of a schedule's job payload. A tenant's schedules (up to MAX_SCHEDULES) are listed
 * in one answer, and the timers read due ones a page of 100 at a time, each with its template: at
 * most 64 MiB and 6.4 MiB so. A payload of the body limit (1 MiB, up to 4 MiB) each made the list a
 * string longer than V8 can make (a 500) from about 520 schedules on. A large input belongs in the
 * handler's own store, the payload naming it.
 */
export const MAX_TEMPLATE_PAYLOAD_BYTES = 65_536;
/** Ticks kept per schedule (older ones are deleted as new ones are recorded). */
export const TICKS_KEPT = 50;

export interface ScheduleInput {
  name: string;
  cron: string;
  /** IANA time zone. @defaultValue 'UTC' */
  timezone?: string;
  /** @defaultValue 'skip' */
  overlap?: Overlap;
  /** @defaultValue 'none' */
  catchUp?: CatchUp;
  /** @defaultValue false */
  paused?: boolean;
  job: JobTemplate;
}

export type SchedulePatch = Partial<Pick<ScheduleRecord, 'cron' | 'timezone' | 'overlap' | 'catchUp' | 'paused' | 'job'>>;

/** The croner instance for an expression, or AtsError 400 naming the problem. */
export function parseCron(cron: string, timezone: string): Cron {
  checkTimezone(timezone);
  if (cron.length > MAX_CRON_CHARS) throw new AtsError('ATS_ERR_INVALID_CRON', `The cron expression is longer than ${MAX_CRON_CHARS} characters`);
  let c: Cron;
  try {
    c = new Cron(cron, { timezone, paused: true });
  } catch (err) {
    throw new AtsError('ATS_ERR_INVALID_CRON', `The cron expression is not valid: ${cutText(String((err as Error).message), 200)}`);
  }
  return c;
}

/**
 * The last moment a tick may be at: a time the API's date-times (four-digit years) can write. Only a
 * one-off ISO date has a later tick (croner's year field stops at 9999): refused where a schedule is
 * created or its expression changed (`parseLiveCron`), and no tick at all (`nextTick`) for one stored
 * before it was, which so fires no more (`readable`).
 */
export const LAST_TICK = LAST_INSTANT_MS;

/**
 * `parseCron`, and 400 too for an expression with no tick after `now` (February 30, a year gone by), or whose
 * next tick is after the year 9999 (croner takes an ISO date as a one-off, `+200000-01-01T00:00:00Z` too).
 */
export function parseLiveCron(cron: string, timezone: string, now: number): Cron {
  const c = parseCron(cron, timezone);
  const next = c.nextRun(new Date(now))?.getTime() ?? null;
  if (next === null) throw new AtsError('ATS_ERR_INVALID_CRON', 'The cron expression never fires after now (a date that does not exist, or a year gone by)');
  if (next > LAST_TICK) throw new AtsError('ATS_ERR_INVALID_CRON', 'The cron expression fires first after the year 9999');
  return c;
}

/** Throws AtsError ATS_ERR_INVALID_TIMEZONE unless `tz` is an IANA time zone this runtime knows. */
export function checkTimezone(tz: string): void {
  try {
    if (tz.length === 0 || tz.length > 64) throw new RangeError('length');
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new AtsError('ATS_ERR_INVALID_TIMEZONE', `'${cutText(tz, 64)}' is not an IANA time zone (for example UTC or Europe/Berlin)`);
  }
}

/** The first tick after `after` (epoch ms), or null when the expression never fires again (before the year 10000: LAST_TICK). */
export function nextTick(cron: Cron, after: number): number | null {
  const t = cron.nextRun(new Date(after))?.getTime();
  return t === undefined || t > LAST_TICK ? null : t;
}

/** The next `n` ticks after `after` (those up to LAST_TICK). */
export function nextTicks(cron: Cron, n: number, after: number): number[] {
  return cron.nextRuns(n, new Date(after)).map((d) => d.getTime()).filter((t) => t <= LAST_TICK);
}

/**
 * A stored schedule as the service answers it: a next tick after LAST_TICK (a one-off date stored
 * before those were refused) is none. It fires no more, as its expression has no tick the API can
 * write, and it reads as a schedule whose expression fires no more (`nextAt` null), not as a time no
 * answer can carry. A change stores it so; a new expression sets it right.
 */
export function readable(s: ScheduleRecord): ScheduleRecord {
  return s.nextAt !== null && s.nextAt > LAST_TICK ? { ...s, nextAt: null } : s;
}

/** What one pass does with a due schedule. */
export interface TickPlan {
  /** The ticks to fire now, oldest first. */
  fire: number[];
  /** Ticks passed over (missed by more than MISSED_AFTER_MS with `catchUp` none, or all but the latest with latest). */
  missed: number;
  /** The schedule's next due tick after this pass (null: it never fires again). */
  nextAt: number | null;
}

/**
 * The ticks from `nextAt` up to `now`, and which of them fire: `all` fires
 * each (at most MAX_TICKS_PER_PASS a pass; the rest at the next); `latest`
 * fires the newest; `none` fires those at most MISSED_AFTER_MS late.
 */
export function ticksToFire(cron: Cron, nextAt: number, catchUp: CatchUp, now: number): TickPlan {
  if (catchUp === 'all') {
    const fire = walk(cron, nextAt, now, MAX_TICKS_PER_PASS);
    return { fire, missed: 0, nextAt: nextAfter(cron, fire, now) };
  }
  const windowStart = Math.max(nextAt, now - MISSED_AFTER_MS);
  const inWindow = walk(cron, windowStart === nextAt ? nextAt : nextTick(cron, windowStart - 1), now, MAX_TICKS_PER_PASS);
  const late = windowStart > nextAt ? countTicks(cron, nextAt, windowStart) : 0;
  if (catchUp === 'latest') {
    const next = nextAfter(cron, inWindow, now);
    if (inWindow.length > 0) return { fire: inWindow.slice(-1), missed: late + inWindow.length - 1, nextAt: next };
    const newest = newestMissed(cron, nextAt, now);
    return newest === null ? { fire: [], missed: late, nextAt: next } : { fire: [newest], missed: Math.max(0, late - 1), nextAt: next };
  }
  return { fire: inWindow, missed: late, nextAt: nextAfter(cron, inWindow, now) };
}

/** Ticks from `from` (itself a tick, or null) up to `to`, at most `max`. */
function walk(cron: Cron, from: number | null, to: number, max: number): number[] {
  const out: number[] = [];
  for (let t = from; t !== null && t <= to && out.length < max; t = nextTick(cron, t)) out.push(t);
  return out;
}

/** The next tick once `fired` are done: after the last of them when a pass stopped at its cap, else after `now`. */
function nextAfter(cron: Cron, fired: readonly number[], now: number): number | null {
  return fired.length >= MAX_TICKS_PER_PASS ? nextTick(cron, fired.at(-1)!) : nextTick(cron, now);
}

/** The newest tick at or before `now` and at or after `from`, or null. */
function newestMissed(cron: Cron, from: number, now: number): number | null {
  const [prev] = cron.previousRuns(1, new Date(now + 1));
  const t = prev?.getTime();
  return t !== undefined && t >= from && t <= now ? t : null;
}

/**
 * Most ticks counted as missed in one pass: past it the count is a lower bound (a per-second
 * expression a day behind adds this many, not 86,400), and the pass's CPU stays short (each tick
 * counted is a croner step, about 50 µs).
 */
export const MAX_COUNTED = 1_000;

/** Ticks from `from` (a tick) up to before `to`, counted up to MAX_COUNTED. */
function countTicks(cron: Cron, from: number, to: number): number {
  let n = 0;
  for (let t: number | null = from; t !== null && t < to && n < MAX_COUNTED; t = nextTick(cron, t)) n++;
  return n;
}

/**
 * The idempotency key of a tick's job: unique per (schedule incarnation,
 * tick), so a schedule deleted and created again under the same name does not
 * find the old one's jobs.
 */
export function scheduleTickKey(s: Pick<ScheduleRecord, 'name' | 'createdAt'>, tickAt: number): string {
  return `${scheduleTickKeyPrefix(s)}${tickAt}`;
}

/** What the keys of a schedule incarnation's ticks begin with: the tick's time follows. */
export function scheduleTickKeyPrefix(s: Pick<ScheduleRecord, 'name' | 'createdAt'>): string {
  return `ats:schedule:${s.name}:${s.createdAt}:`;
}

/** The spec of a tick's job: in the schedule's tenant, and in the queue its due ticks were pinned to (`firingQueue`). */
export function tickJobSpec(s: ScheduleRecord, tickAt: number): JobSpec {
  const j = s.job;
  return {
    tenant: s.tenant, type: j.type, payload: j.payload, queue: s.firingQueue ?? j.queue, maxAttempts: j.maxAttempts, backoff: j.backoff,
    timeoutMs: j.timeoutMs, priority: j.priority, idempotencyKey: scheduleTickKey(s, tickAt),
  };
}

// ---------------------------------------------------------------- the service (API side)

export interface ScheduleServiceDeps {
  store: ScheduleStore;
  clock: Clock;
  /** The queues jobs may name (engine/queue-registry.ts): a schedule's queue is admitted when it is set. @defaultValue none: any queue */
  queues?: Pick<QueueRegistry, 'admit'>;
}

/** Compare-and-set tries of one change before ATS_ERR_CONCURRENT_UPDATE. */
const MAX_TRIES = 5;

/**
 * Create, read, change and delete schedules (the API's side); the timers fire
 * them (ScheduleRunner). Every method acts within the `tenant` it is given
 * (the caller's): another tenant's schedule of the same name is not there (404).
 */
export class ScheduleService {
  constructor(private readonly deps: ScheduleServiceDeps) {}

  /**
   * 409 ATS_ERR_SCHEDULE_EXISTS when the tenant has a schedule of that name, ATS_ERR_TOO_MANY_SCHEDULES when it
   * has MAX_SCHEDULES, ATS_ERR_QUEUE_LIMIT when its jobs' queue is new and no more may be; 400 for a bad
   * expression or time zone.
   */
  async create(tenant: string, input: ScheduleInput): Promise<ScheduleRecord> {
    const now = this.deps.clock.now();
    const timezone = input.timezone ?? 'UTC';
    const paused = input.paused ?? false;
    const cron = parseLiveCron(input.cron, timezone, now);
    // Only once nothing else refuses it: a queue admitted is listed for good.
    if (this.deps.queues) {
      if (await this.deps.store.getSchedule(tenant, input.name)) throw exists(input.name);
      // The store checks the cap again as it inserts (creations at once); this is so a refusal lists no queue.
      if ((await this.deps.store.countSchedules(tenant)) >= MAX_SCHEDULES) throw tooManySchedules();
      await this.deps.queues.admit([input.job.queue], tenant);
    }
    const record: ScheduleRecord = {
      tenant, name: input.name, cron: input.cron, timezone, overlap: input.overlap ?? 'skip', catchUp: input.catchUp ?? 'none', paused,
      job: input.job, nextAt: paused ? null : nextTick(cron, now), lastTickAt: null, lastJobId: null,
      submitted: 0, skipped: 0, missed: 0, version: 1, createdAt: now, updatedAt: now,
    };
    if (!(await this.deps.store.createSchedule(record, MAX_SCHEDULES))) throw exists(input.name);
    return record;
  }

  /** 404 ATS_ERR_SCHEDULE_NOT_FOUND when the tenant has none of that name. */
  async get(tenant: string, name: string): Promise<ScheduleRecord> {
    const s = await this.deps.store.getSchedule(tenant, name);
    if (!s) throw notFound(name);
    return readable(s);
  }

  /** The tenant's schedules, by name. */
  async list(tenant: string): Promise<ScheduleRecord[]> {
    return (await this.deps.store.listSchedules(tenant)).map(readable);
  }

  /** The schedule's recent ticks, newest first. */
  ticks(tenant: string, name: string, limit = TICKS_KEPT): Promise<ScheduleTick[]> {
    return this.deps.store.listTicks(tenant, name, limit);
  }

  /**
   * Change a schedule. A new expression or time zone, or a resume, computes
   * the next tick from now: ticks of a pause are not caught up, and a queue
   * pinned by a pass firing meanwhile is dropped with the ticks it was for. `patch` may
   * be a function of the schedule as read, so a change that builds on it (a
   * job template merged with new fields) is made again on fresh data when
   * another change won the compare-and-set.
   */
  async update(tenant: string, name: string, patch: SchedulePatch | ((current: ScheduleRecord) => SchedulePatch)): Promise<ScheduleRecord> {
    for (let i = 0; i < MAX_TRIES; i++) {
      const s = await this.get(tenant, name);
      const changes = typeof patch === 'function' ? patch(s) : patch;
      const next: ScheduleRecord = { ...s, ...definedOf(changes), version: s.version + 1, updatedAt: this.deps.clock.now() };
      const retimed = next.cron !== s.cron || next.timezone !== s.timezone || next.paused !== s.paused;
      const cron = next.cron !== s.cron || next.timezone !== s.timezone ? parseLiveCron(next.cron, next.timezone, next.updatedAt) : parseCron(next.cron, next.timezone);
      if (next.paused) next.nextAt = null;
      else if (retimed) next.nextAt = nextTick(cron, next.updatedAt);
      // The ticks a pass pinned a queue for are all before now, and the next one is after it: none is pinned.
      if (retimed) delete next.firingQueue;
      // A new queue once nothing else refuses the change (a queue admitted is listed for good).
      if (next.job.queue !== s.job.queue) await this.deps.queues?.admit([next.job.queue], next.tenant);
      if (await this.deps.store.replaceSchedule(next, s.version)) return next;
    }
    throw new AtsError('ATS_ERR_CONCURRENT_UPDATE', `The schedule '${name}' changed concurrently too many times; try again`);
  }

  /** 404 when the tenant has none of that name. Jobs it submitted stay. */
  async remove(tenant: string, name: string): Promise<void> {
    if (!(await this.deps.store.deleteSchedule(tenant, name))) throw notFound(name);
  }

  /**
   * The next `n` run times of a schedule: none while paused, nor when this
   * process cannot read its expression or time zone (stored by a runtime
   * that knew it); a change that sets them right makes it fire again.
   */
  nextRuns(s: ScheduleRecord, n: number): number[] {
    if (s.paused) return [];
    const from = s.nextAt === null ? this.deps.clock.now() : s.nextAt - 1;
    let cron: Cron;
    try {
      cron = parseCron(s.cron, s.timezone);
    } catch (err) {
      if (isAtsError(err)) return [];
      throw err;
    }
    return nextTicks(cron, n, from);
  }
}

const notFound = (name: string) => new AtsError('ATS_ERR_SCHEDULE_NOT_FOUND', `No schedule is named '${cutText(name, MAX_SCHEDULE_NAME)}'`);
/** A tenant's schedules at their cap (`max`, MAX_SCHEDULES): the service's refusal, and the store's. */
export const tooManySchedules = (max = MAX_SCHEDULES) =>
  new AtsError('ATS_ERR_TOO_MANY_SCHEDULES', `The tenant has ${max} schedules, the most it may: delete one before creating another`);
const exists = (name: string) => new AtsError('ATS_ERR_SCHEDULE_EXISTS', `A schedule named '${name}' exists`);

function definedOf(patch: SchedulePatch): SchedulePatch {
  const out: SchedulePatch = {};
  if (patch.cron !== undefined) out.cron = patch.cron;
  if (patch.timezone !== undefined) out.timezone = patch.timezone;
  if (patch.overlap !== undefined) out.overlap = patch.overlap;
  if (patch.catchUp !== undefined) out.catchUp = patch.catchUp;
  if (patch.paused !== undefined) out.paused = patch.paused;
  if (patch.job !== undefined) out.job = patch.job;
  return out;
}

// ---------------------------------------------------------------- the runner (timers side)

export interface ScheduleRunnerDeps {
  store: ScheduleStore & Pick<JobStore, 'getJob'>;
  transitions: Pick<TransitionService, 'submit'>;
  clock: Clock;
  logger: Logger;
  /** Told of each pass's ticks per outcome (metrics). @defaultValue none */
  onTicks?: (outcome: keyof ScheduleCounters, n: number) => void;
  /** Traces each tick's job from a span of its own, `schedule <name>` (engine/tracing.ts). @defaultValue none: no tracing */
  tracer?: Tracer;
}

export interface ScheduleCounters {
  submitted: number;
  skipped: number;
  missed: number;
}

/** Most schedules a pass tries, and the rows of one page of its due read. */
export const DUE_BATCH = 100;
/**
 * Pages of due schedules one pass reads at most: past schedules held back
 * after a failure, however many, it reads on, and the next pass goes on from
 * where it stopped.
 */
export const DUE_PAGES_PER_PASS = 10;
/**
 * Most failing schedules remembered with their pause (a few hundred bytes
 * each). Beyond, the one whose last failure is oldest is forgotten: it is
 * tried again when the scan next reaches it, as a new failure. Only the
 * pauses depend on it: the scan reads on past failing schedules however many.
 */
const MAX_HELD = 10_000;

/** A schedule whose last try failed: not tried again before `until` unless it changed meanwhile (another `updatedAt`). */
interface Failing {
  updatedAt: number;
  backoff: ErrorBackoff;
  until: number;
}

/** How much one pass does; the defaults are the constants above (a test sets them small). */
export interface ScheduleRunnerOptions {
  /** Most schedules a pass tries, and the rows of a page. @defaultValue DUE_BATCH */
  batchSize?: number;
  /** Most pages a pass reads. @defaultValue DUE_PAGES_PER_PASS */
  pagesPerPass?: number;
  /** Most failing schedules remembered with their pause. @defaultValue 10000 */
  maxHeld?: number;
}

/** A due schedule's place in the due read's order. */
type DueKey = Pick<ScheduleRecord, 'tenant' | 'name'> & { nextAt: number };

/**
 * Fires due ticks; runs in the timers role. Safe with many instances: a tick's
 * job is unique by its idempotency key, and the schedule's row moves on by
 * compare-and-set, so the instance that loses the race writes nothing more. A
 * pass that submits claims the row (a compare-and-set) before its first submit
 * and after deciding what its ticks do (`overlap: skip`), so the pass recorded
 * is one that submitted every job the others did (`fire`).
 */
export class ScheduleRunner {
  readonly counters: ScheduleCounters = { submitted: 0, skipped: 0, missed: 0 };
  /**
   * Schedules whose last try failed, by tenant and name: tried again after a
   * pause that grows, as a failing loop is. In the order of their last
   * failure (the oldest first), at most `maxHeld`.
   */
  private readonly failing = new Map<string, Failing>();
  /** Where the next pass reads on from: the last due schedule a pass looked at; undefined: from the soonest. */
  private scan: DueKey | undefined;
  /**
   * The last pass stopped at its cap of schedules tried (`batchSize`) with more due ones possibly
   * behind them: the timers run the next pass at once, not a poll later (engine/timers.ts), so a
   * burst of schedules due at once (1000 at the top of an hour) is reached in passes back to back.
   */
  get leftDue(): boolean {
    return this.stoppedAtCap;
  }
  private stoppedAtCap = false;

  private readonly opts: Required<ScheduleRunnerOptions>;

  constructor(private readonly deps: ScheduleRunnerDeps, opts: ScheduleRunnerOptions = {}) {
    this.opts = { batchSize: opts.batchSize ?? DUE_BATCH, pagesPerPass: opts.pagesPerPass ?? DUE_PAGES_PER_PASS, maxHeld: opts.maxHeld ?? MAX_HELD };
  }

  /**
   * One pass: returns how many ticks it fired or skipped. A schedule whose
   * try fails (the database, or an expression or time zone this process
   * cannot read) is logged and tried again after 1 s, doubling to 10 s, or
   * at once when it is changed; meanwhile the schedules due behind it fire.
   *
   * The due schedules are read in pages in (nextAt, tenant, name) order, each
   * after the last row looked at, passing over those held back. A pass tries
   * at most `batchSize` and reads at most `pagesPerPass` pages; the next
   * one goes on from where it stopped, and from the soonest once it reached
   * the end. So however many schedules fail, a due one is tried within a round
   * of passes over the due ones ahead of it.
   *
   * `signal` aborted (the timers stopping), it gives up before its next read
   * or schedule: the schedules it fired stay fired (each moved on in writes of
   * its own), those it had not reached stay due, and the next pass here goes
   * on from the last one it looked at (another process finds them as due anyway).
   */
  async runOnce(signal?: AbortSignal): Promise<number> {
    const now = this.deps.clock.now();
    this.stoppedAtCap = false;
    for (const [key, f] of this.failing) if (f.until + MISSED_AFTER_MS < now) this.failing.delete(key); // deleted, paused or moved on elsewhere
    const { batchSize, pagesPerPass } = this.opts;
    let n = 0;
    let tried = 0;
    // Tried in this pass: one far behind moves on by at most MAX_TICKS_PER_PASS and may be read again further on.
    const seen = new Set<string>();
    let after = this.scan;
    for (let page = 0; page < pagesPerPass; page++) {
      if (signal?.aborted) return this.stoppedAt(after, n);
      const due = await this.deps.store.dueSchedules(now, batchSize, after);
      for (const s of due) {
        if (signal?.aborted) return this.stoppedAt(after, n);
        if (tried >= batchSize) {
          // Its tries spent: the next pass goes on from the last one looked at (those tried are gone or held), at once.
          this.scan = after;
          this.stoppedAtCap = true;
          return n;
        }
        after = { nextAt: s.nextAt!, tenant: s.tenant, name: s.name };
        const key = `${s.tenant}\u0000${s.name}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const held = this.failing.get(key);
        const same = held !== undefined && held.updatedAt === s.updatedAt;
        if (same && now < held.until) continue;
        tried++;
        try {
          n += await this.fire(s, now);
          this.failing.delete(key);
        } catch (err) {
          const backoff = same ? held.backoff : new ErrorBackoff(POLLING_ERROR_BACKOFF.baseMs, POLLING_ERROR_BACKOFF.maxMs);
          const retryInMs = backoff.failed();
          this.hold(key, { updatedAt: s.updatedAt, backoff, until: now + retryInMs });
          this.deps.logger.warn('schedules: tick failed; tried again soon', {
            tenant: s.tenant, schedule: s.name, error: String((err as Error)?.message ?? err), failures: backoff.consecutiveFailures, retryInMs,
          });
        }
      }
      if (due.length < batchSize) {
        this.scan = undefined;
        return n;
      }
      if (tried >= batchSize) {
        this.stoppedAtCap = true;
        break;
      }
    }
    // Its pages read or its tries spent: the next pass goes on from the last one looked at.
    this.scan = after;
    return n;
  }

  /** A pass given up after the schedule `after` (undefined: before any): the next pass reads on from there. */
  private stoppedAt(after: DueKey | undefined, n: number): number {
    this.scan = after;
    return n;
  }

  /** Remembers a failure, last in the order; beyond `maxHeld`, the oldest is forgotten. */
  private hold(key: string, f: Failing): void {
    this.failing.delete(key);
    if (this.failing.size >= this.opts.maxHeld) this.failing.delete(this.failing.keys().next().value!);
    this.failing.set(key, f);
  }

  private count(outcome: keyof ScheduleCounters, n: number): void {
    if (n === 0) return;
    this.counters[outcome] += n;
    (this.deps.onTicks ?? noop)(outcome, n);
  }

  /** A tick's job; traced, it is a trace of its own from the tick's span (a tick has no caller to join). */
  private submitTick(s: ScheduleRecord, tickAt: number): ReturnType<TransitionService['submit']> {
    const { tracer, transitions } = this.deps;
    const spec = tickJobSpec(s, tickAt);
    // Its queue was admitted when the schedule was set (or listed by the upgrade): a tick is never refused for it.
    const admitted = { queueAdmitted: true };
    if (!tracer) return transitions.submit(spec, admitted);
    const attributes = { [ATTR.scheduleName]: s.name, [ATTR.jobType]: spec.type, [ATTR.jobQueue]: spec.queue };
    return withSubmitterSpan(tracer, `schedule ${s.name}`, attributes, (traceContext) => transitions.submit(traceContext ? { ...spec, traceContext } : spec, admitted));
  }

  private async fire(due: ScheduleRecord, now: number): Promise<number> {
    const { store, transitions, logger } = this.deps;
    if (due.nextAt === null) return 0;
    const plan = ticksToFire(parseCron(due.cron, due.timezone), due.nextAt, due.catchUp, now);
    // A pinned queue says a pass began to fire these ticks and never moved the schedule on (it crashed, or a
    // write failed): the jobs it submitted for ticks this plan takes for missed (too late now) are theirs all the
    // same, found by their keys where it submitted them; the newest MAX_TICKS_PER_PASS, as a pass fires no more.
    // Unpinned, no pass left a job unrecorded: a normal pass does not look.
    const found = due.firingQueue !== undefined && plan.missed > 0
      ? (await store.tickJobs(due, due.firingQueue, due.nextAt, missedBefore(plan, now), MAX_TICKS_PER_PASS)).reverse()
      : [];
    // What each tick does is decided before the row is claimed (below), from what was read before it. The last
    // job's state only moves one way (a live job ends, an ended one stays so): of two instances firing the same
    // pass, the one whose claim comes later read later, so it submits every tick's job the other submitted,
    // and it is the one whose pass is recorded (the other's last write fails on the claim). With `skip`, the first
    // tick submits unless the last job is live, and the job it submits is live for the rest of the pass.
    const newestFound = found.at(-1)?.job;
    const lastLive = due.overlap === 'skip' && plan.fire.length > 0
      && (newestFound ? !isTerminal(newestFound.snapshot.value) : due.lastJobId !== null && await isLive(store, due.lastJobId));
    const submitting = due.overlap === 'allow' ? plan.fire.length : lastLive ? 0 : Math.min(1, plan.fire.length);
    let s = due;
    if (submitting > 0) {
      // The claim: the row moves on by compare-and-set before any job is submitted, so a pass that read it before
      // (and decided on older reads) cannot record its own outcome over this one's. Unpinned, it pins the queue
      // first: a tick's job is unique by its key within a queue, so one submitted here and then (a crash, or the
      // template's queue changed before this pass moves the schedule on) submitted again into another queue would
      // be a second job. Pinned, the ticks go where their first try went.
      const claimed: ScheduleRecord = { ...s, firingQueue: s.firingQueue ?? s.job.queue, version: s.version + 1 };
      if (!(await store.replaceSchedule(claimed, s.version))) return 0; // changed meanwhile: a later pass reads it again
      s = claimed;
    }
    // The ticks found with their jobs come before those the plan fires, and are recorded as the pass that submitted them would have.
    const ticks: ScheduleTick[] = found.map(({ tickAt, job }) => ({ tenant: s.tenant, schedule: s.name, tickAt, outcome: 'submitted', jobId: job.id, at: job.createdAt }));
    let lastJobId = newestFound?.id ?? s.lastJobId;
    for (const [i, tickAt] of plan.fire.entries()) {
      if (i >= submitting) {
        ticks.push({ tenant: s.tenant, schedule: s.name, tickAt, outcome: 'skipped', jobId: null, at: now });
        continue;
      }
      // A pause, a change or a delete that landed since the claim (or another pass's claim) ends this pass: no tick's
      // job is submitted after a change answered, and the ticks fired so far are recorded as keepUnrecorded says.
      if (i > 0 && (await store.getSchedule(s.tenant, s.name))?.version !== s.version) return this.keepUnrecorded(s, ticks);
      const r = await this.submitTick(s, tickAt);
      // A conflict means the key holds this tick's job from before a change of the template: it is the tick's job all the same.
      lastJobId = r.job.id;
      ticks.push({ tenant: s.tenant, schedule: s.name, tickAt, outcome: 'submitted', jobId: r.job.id, at: now });
    }
    const submitted = ticks.filter((t) => t.outcome === 'submitted').length;
    const skipped = ticks.length - submitted;
    // Past MAX_COUNTED the plan's count is a lower bound, and the ticks found may be beyond those it counted: so it stays one.
    const missed = Math.max(0, plan.missed - found.length);
    const { firingQueue: _, ...moved } = s;
    const next: ScheduleRecord = {
      ...moved, nextAt: plan.nextAt, lastTickAt: ticks.at(-1)?.tickAt ?? s.lastTickAt, lastJobId,
      submitted: s.submitted + submitted, skipped: s.skipped + skipped, missed: s.missed + missed, version: s.version + 1,
    };
    // Another instance moved it on (its jobs are these same ones), or a change landed: see keepUnrecorded.
    if (!(await store.replaceSchedule(next, s.version))) return this.keepUnrecorded(s, ticks);
    // The pass is done: its jobs are submitted and the schedule moved on. Failing to write the tick list (the
    // database, for a moment) loses those ticks from it, and is no failure of the pass: counted, not held back.
    await this.recordTicks(s, ticks);
    this.count('submitted', submitted);
    this.count('skipped', skipped);
    this.count('missed', missed);
    if (missed > 0) logger.info('schedules: ticks missed (catchUp)', { tenant: s.tenant, schedule: s.name, missed, catchUp: s.catchUp });
    if (plan.nextAt === null) logger.info('schedules: the expression fires no more', { tenant: s.tenant, schedule: s.name });
    return ticks.length;
  }

  /** The tick list after the row moved on; failing to write it (the database, for a moment) is no failure of the pass. */
  private async recordTicks(s: ScheduleRecord, ticks: ScheduleTick[]): Promise<void> {
    const { store, logger } = this.deps;
    if (ticks.length > 0) {
      try {
        await store.recordTicks(ticks, TICKS_KEPT);
      } catch (err) {
        logger.warn('schedules: ticks not recorded in the tick list', {
          tenant: s.tenant, schedule: s.name, ticks: ticks.length, error: String((err as Error)?.message ?? err),
        });
      }
    }
  }

  /**
   * The pass's row `s` (claimed) changed before its last write: its `ticks` (jobs submitted, or skipped) are
   * recorded on the row as it is now, when nothing else will record them. A row still pinned is either another
   * pass's claim (that pass submits the same ticks' jobs and records them) or a change that kept the pin (the next
   * pass fires these ticks again and finds their jobs by key). A row unpinned had its pin dropped by a change that
   * computed the next run again (a new expression or time zone, a pause, a resume), or was moved on by another
   * pass: the ticks after its `lastTickAt` and before its `nextAt` are the ones no pass recorded and none will
   * fire again, and without them `submitted`, `lastJobId` and the tick list would miss jobs that exist (and
   * `overlap: skip` would not see a live one). The change's own fields (its next run, its pause) stand.
   * Deleted, or deleted and created again: nothing.
   */
  private async keepUnrecorded(s: ScheduleRecord, ticks: readonly ScheduleTick[]): Promise<number> {
    const { store } = this.deps;
    for (let i = 0; i < MAX_TRIES; i++) {
      const now = await store.getSchedule(s.tenant, s.name);
      if (!now || now.createdAt !== s.createdAt || now.firingQueue !== undefined) return 0;
      // Before the row's next run too: one at or past it (another pass, with an earlier `now`, moved the row on
      // short of it; a change that kept the next run, of the template only) is the next pass's to fire and record.
      const mine = ticks.filter((t) => (now.lastTickAt === null || t.tickAt > now.lastTickAt) && (now.nextAt === null || t.tickAt < now.nextAt));
      if (mine.length === 0) return 0;
      const submitted = mine.filter((t) => t.outcome === 'submitted');
      const next: ScheduleRecord = {
        ...now, lastTickAt: mine.at(-1)!.tickAt, lastJobId: submitted.at(-1)?.jobId ?? now.lastJobId,
        submitted: now.submitted + submitted.length, skipped: now.skipped + mine.length - submitted.length, version: now.version + 1,
      };
      if (await store.replaceSchedule(next, now.version)) {
        await this.recordTicks(next, mine);
        this.count('submitted', submitted.length);
        this.count('skipped', mine.length - submitted.length);
        return mine.length;
      }
    }
    return 0;
  }
}

function noop(): void {}

/**
 * The ticks a plan takes for missed are at or after the schedule's next tick and before this: the first
 * tick it fires, or, firing none, its next tick (none: any after now).
 */
function missedBefore(plan: TickPlan, now: number): number {
  return plan.fire[0] ?? plan.nextAt ?? now + 1;
}

async function isLive(store: Pick<JobStore, 'getJob'>, id: string): Promise<boolean> {
  const job = await store.getJob(id);
  return !!job && !isTerminal(job.snapshot.value);
}
