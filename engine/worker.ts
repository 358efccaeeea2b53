/**
 * The worker runtime: consumes `ats.dispatch`, claims attempts (STARTED,
 * fenced), runs handlers with an AbortSignal and a heartbeat, and writes
 * outcomes fenced by attempt.
 *
 * What must hold: a Kafka offset is committed only after the claims of the
 * records it covers are durable (the handle callback resolves after them). A
 * claimed job whose worker dies is not lost: its lease expires and the timers
 * record LEASE_EXPIRED, which retries it. Duplicate and stale dispatch messages
 * fail the claim (the machine rejects STARTED) and are skipped.
 */
import { Batcher } from './batcher.js';
import { NonRetryableError } from './errors.js';
import type { HandlerRegistry } from './handlers.js';
import { errorFields } from './logger.js';
import type { DispatchMessage, TransitionMessage } from './messages.js';
import {
  TOPICS, type Clock, type EventLog, type HandlerContext, type JobRecord, type LogRecord, type Logger, type Subscription,
} from './ports.js';
import { Semaphore } from './semaphore.js';
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
}

export interface WorkerDeps {
  log: EventLog;
  transitions: TransitionService;
  clock: Clock;
  logger: Logger;
  registry: HandlerRegistry;
}

/** Why a handler's signal was aborted. */
export type AbortKind = 'timeout' | 'cancelled' | 'lease-lost' | 'shutdown';
export class AbortReason extends Error {
  constructor(readonly kind: AbortKind, message: string) {
    super(message);
    this.name = kind === 'timeout' ? 'TimeoutError' : 'AbortError';
  }
}

export interface WorkerCounters {
  claimed: number;
  /** Dispatch messages whose claim the machine rejected (duplicate or stale). */
  skipped: number;
  succeeded: number;
  failed: number;
  /** Outcomes the machine rejected (a zombie reporting late). */
  lateOutcomes: number;
}

interface Running {
  attempt: number;
  abort: AbortController;
  done: Promise<void>;
}

export class Worker {
  private readonly slots: Semaphore;
  private readonly running = new Map<string, Running>();
  private readonly outcomes: Batcher<{ jobId: string; event: EventInput }, ApplyResult>;
  private subscriptions: Subscription[] = [];
  private stopping = new AbortController();
  private crashed = false;
  readonly counters: WorkerCounters = { claimed: 0, skipped: 0, succeeded: 0, failed: 0, lateOutcomes: 0 };

  constructor(private readonly deps: WorkerDeps, private readonly opts: WorkerOptions) {
    this.slots = new Semaphore(opts.concurrency);
    this.outcomes = new Batcher((items) => deps.transitions.applyMany(items));
  }

  async start(): Promise<void> {
    this.stopping = new AbortController();
    const { log } = this.deps;
    // Cancels reach running handlers through the events topic; a group of our own sees them all.
    this.subscriptions.push(await log.consume({
      topic: TOPICS.events, groupId: `${this.opts.groupId}.cancels.${this.opts.workerId}`, fromBeginning: false,
      handle: async (records) => this.watchCancels(records),
    }));
    this.subscriptions.push(await log.consume({
      topic: TOPICS.dispatch, groupId: this.opts.groupId, fromBeginning: true,
      handle: (records) => this.handleDispatches(records),
    }));
  }

  /** Stop taking work, let handlers finish up to the grace period, abort the rest. */
  async stop(): Promise<void> {
    this.stopping.abort(new AbortReason('shutdown', 'worker shutting down'));
    await Promise.all(this.subscriptions.map((s) => s.stop()));
    this.subscriptions = [];
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    const grace = this.deps.clock.sleep(this.opts.shutdownGraceMs).then(() => 'timeout' as const);
    if ((await Promise.race([all().then(() => 'done' as const), grace])) === 'timeout') {
      for (const r of this.running.values()) r.abort.abort(new AbortReason('shutdown', 'worker shut down before the handler finished'));
      await all();
    }
    await this.outcomes.flush();
  }

  /**
   * Simulate a crash (tests): drop the subscriptions without committing, abandon
   * running handlers and write nothing more, as a SIGKILL would. Their leases
   * expire and the timers retry them; uncommitted records go to another member.
   */
  async crash(): Promise<void> {
    this.crashed = true;
    this.stopping.abort(new AbortReason('shutdown', 'worker crashed'));
    for (const r of this.running.values()) r.abort.abort(new AbortReason('shutdown', 'worker crashed'));
    await Promise.all(this.subscriptions.map((s) => s.stop()));
    this.subscriptions = [];
  }

  get activeCount(): number {
    return this.running.size;
  }

  private watchCancels(records: readonly LogRecord[]): void {
    for (const r of records) {
      const m = safeParse<TransitionMessage>(r.value);
      if (m?.type !== 'CANCEL') continue;
      this.running.get(m.jobId)?.abort.abort(new AbortReason('cancelled', 'the job was cancelled'));
    }
  }

  /**
   * Claims every record before resolving, waiting for free slots: Kafka's
   * offset commit follows, and must only cover claims that are durable.
   */
  private async handleDispatches(records: readonly LogRecord[]): Promise<void> {
    const messages = records.map((r) => safeParse<DispatchMessage>(r.value)).filter(isDispatch);
    let i = 0;
    while (i < messages.length) {
      await this.slots.acquire(this.stopping.signal);
      let n = 1;
      while (i + n < messages.length && this.slots.available > 0) {
        await this.slots.acquire();
        n++;
      }
      await this.claim(messages.slice(i, i + n));
      i += n;
    }
  }

  /** Claim up to one slot per message (the slots are held); release the slots of rejected claims. */
  private async claim(messages: readonly DispatchMessage[]): Promise<void> {
    const { transitions, clock, logger } = this.deps;
    if (this.crashed) throw new AbortReason('shutdown', 'worker crashed');
    const leaseUntil = clock.now() + this.opts.leaseMs;
    let results: ApplyResult[];
    try {
      results = await transitions.applyMany(messages.map((m) => ({
        jobId: m.jobId,
        event: { type: 'STARTED' as const, attempt: m.attempt, leaseUntil, workerId: this.opts.workerId },
      })));
    } catch (err) {
      for (const _ of messages) this.slots.release();
      throw err;
    }
    results.forEach((r, k) => {
      if (!r.ok) {
        this.counters.skipped++;
        this.slots.release();
        logger.debug('worker: dispatch skipped (duplicate or stale)', { jobId: messages[k]!.jobId, attempt: messages[k]!.attempt, reason: r.reason });
        return;
      }
      this.counters.claimed++;
      this.launch(r.job, messages[k]!.attempt);
    });
  }

  private launch(job: JobRecord, attempt: number): void {
    const abort = new AbortController();
    // The slot is the handler's: it is given back once the handler settled, so the
    // next claims need not wait for this outcome's write (the outcome batcher
    // groups those). The attempt stays in `running` until its outcome is durable.
    let holding = true;
    const releaseSlot = () => {
      if (!holding) return;
      holding = false;
      this.slots.release();
    };
    const done = this.execute(job, attempt, abort, releaseSlot)
      .catch((err) => this.deps.logger.error('worker: attempt bookkeeping failed', { jobId: job.id, attempt, ...errorFields(err) }))
      .finally(() => {
        abort.abort(new AbortReason('shutdown', 'attempt finished'));
        // A late attempt n must not drop the entry of attempt n+1 of the same job.
        if (this.running.get(job.id)?.attempt === attempt) this.running.delete(job.id);
        releaseSlot();
      });
    this.running.set(job.id, { attempt, abort, done });
  }

  private async execute(job: JobRecord, attempt: number, abort: AbortController, handlerSettled: () => void): Promise<void> {
    const { clock, registry, logger } = this.deps;
    const log = ('child' in logger ? (logger as Logger & { child(f: object): Logger }).child({ jobId: job.id, attempt }) : logger);
    void clock.sleep(job.timeoutMs, abort.signal).then(
      () => abort.abort(new AbortReason('timeout', `timed out after ${job.timeoutMs} ms`)),
      () => undefined,
    );
    void this.heartbeatLoop(job.id, attempt, abort);
    const handler = registry.get(job.type);
    const ctx: HandlerContext = {
      jobId: job.id, type: job.type, queue: job.queue, attempt, idempotencyKey: job.id,
      signal: abort.signal, heartbeat: () => this.heartbeat(job.id, attempt, abort), log,
    };
    let event: EventInput;
    try {
      if (!handler) throw new NonRetryableError(`no handler is registered for job type ${job.type}`);
      const result = await raceAbort(handler(job.payload, ctx), abort.signal);
      event = { type: 'SUCCEEDED', attempt, result: result ?? null };
    } catch (err) {
      const reason = abort.signal.reason as unknown;
      if (reason instanceof AbortReason && reason.kind !== 'timeout') {
        log.info(`worker: attempt abandoned (${reason.kind})`, { reason: reason.message });
        return; // cancelled, lease lost or shutdown: nothing to record; the lease or the cancel covers it.
      }
      const e = reason instanceof AbortReason ? reason : (err as Error);
      event = { type: 'FAILED', attempt, error: { message: String(e?.message ?? e), name: e?.name, retryable: !isNonRetryable(e) } };
    }
    handlerSettled();
    await this.recordOutcome(job.id, event);
  }

  private async recordOutcome(jobId: string, event: EventInput): Promise<void> {
    if (this.crashed) return;
    const r = await this.outcomes.add({ jobId, event });
    if (r.ok) {
      if (event.type === 'SUCCEEDED') this.counters.succeeded++;
      else this.counters.failed++;
      return;
    }
    this.counters.lateOutcomes++;
    this.deps.logger.warn('worker: late outcome ignored (the attempt is no longer current)', { jobId, event: event.type, reason: r.reason });
  }

  private async heartbeat(jobId: string, attempt: number, abort: AbortController): Promise<void> {
    if (this.crashed) throw new AbortReason('shutdown', 'worker crashed');
    const r = await this.deps.transitions.apply(jobId, { type: 'HEARTBEAT', attempt, leaseUntil: this.deps.clock.now() + this.opts.leaseMs });
    if (!r.ok) {
      const state = r.reason === 'not-allowed' ? r.job.snapshot.value : 'gone';
      abort.abort(new AbortReason(state === 'cancelled' ? 'cancelled' : 'lease-lost', `heartbeat rejected: the job is ${state}`));
      throw abort.signal.reason;
    }
  }

  private async heartbeatLoop(jobId: string, attempt: number, abort: AbortController): Promise<void> {
    while (!abort.signal.aborted) {
      try {
        await this.deps.clock.sleep(this.opts.heartbeatMs, abort.signal);
        await this.heartbeat(jobId, attempt, abort);
      } catch (err) {
        if (abort.signal.aborted) return;
        this.deps.logger.warn('worker: heartbeat failed, will retry', { jobId, attempt, ...errorFields(err) });
      }
    }
  }
}

function isNonRetryable(e: unknown): boolean {
  return e instanceof NonRetryableError || (e as Error | undefined)?.name === 'NonRetryableError';
}

function isDispatch(m: DispatchMessage | null): m is DispatchMessage {
  return !!m && typeof m.jobId === 'string' && Number.isInteger(m.attempt);
}

function safeParse<T>(value: string): T | null {
  try {
    return JSON.parse(value) as T;
  } catch {
    return null;
  }
}

/** Settles with the handler, or rejects as soon as the signal aborts (a handler may ignore its signal). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
