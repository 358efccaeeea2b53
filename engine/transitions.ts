/**
 * The transition service: the only writer of jobs. Each submit and each
 * applied event is one store transaction holding the job row (compare-and-set
 * on its version), one `job_events` row and the outbox rows the transition
 * asks for. An event the machine rejects writes nothing.
 */
import { createHash } from 'node:crypto';
import { runsMachineOf, start, step, UnknownJobMachineError } from '../machines/lifecycle.js';
import { leaseOver, type JobEvent, type JobInput } from '../machines/job.machine.js';
import { DEFAULT_TENANT } from './auth.js';
import { Batcher } from './batcher.js';
import { AtsError, isAtsError } from './errors.js';
import { valuesOrFirstFailure } from './in-parallel.js';
import { outboxFor } from './messages.js';
import { admit, limitKeyOf, type LimitState } from './limits.js';
import type { Metrics } from './metrics.js';
import type { QueueRegistry } from './queue-registry.js';
import type {
  Clock, IdGenerator, InsertResult, JobEventRecord, JobRecord, JobSpec, JobStore, LimitClaim, Random, StoredEventType, TransitionWrite,
} from './ports.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** An event as callers give it: the service stamps `at` (and `rand` where a retry delay is drawn). */
export type EventInput = DistributiveOmit<JobEvent, 'at' | 'rand'>;

export type SubmitResult =
  | { ok: true; job: JobRecord; created: boolean }
  | { ok: false; reason: 'idempotency-conflict'; job: JobRecord };

export type ApplyResult =
  | { ok: true; job: JobRecord; event: JobEventRecord }
  | { ok: false; reason: 'not-found' }
  | { ok: false; reason: 'not-allowed'; job: JobRecord }
  /**
   * A STARTED over its concurrency key's limit (engine/limits.ts): nothing was
   * written, the attempt is not started. `why`: the key is paused, at its
   * concurrency, or waits for its rate; `retryAfterMs`: when to claim again
   * (null when the key waits for a running attempt to end).
   */
  | { ok: false; reason: 'throttled'; job: JobRecord; key: string; why: 'paused' | 'concurrency' | 'rate'; retryAfterMs: number | null }
  /**
   * A HEARTBEAT at or after the end of the lease it would extend: nothing is
   * written. Once its lease has ended an attempt is over for the concurrency
   * limits (engine/limits.ts) and for the timers, which take the job back;
   * extending it then would let it run beside the attempt that took its place.
   */
  | { ok: false; reason: 'lease-ended'; job: JobRecord }
  /**
   * The job's snapshot was written by a job machine version this code does not
   * run (a newer deployment, during a rolling one): nothing was written for it,
   * and the other items of the batch are decided as usual. `error` is the 503
   * `ATS_ERR_JOB_MACHINE_UNKNOWN` that `apply` throws for it.
   */
  | { ok: false; reason: 'machine-unknown'; job: JobRecord; error: AtsError }
  /**
   * The job is no longer at the version the caller read it at (`ifVersion`):
   * something moved it on since, and nothing was written. A caller that acts
   * on what it read (the timers' scans) reads again rather than act on a job
   * it did not see: two timers that read one due job would otherwise both
   * dispatch it, as the machine accepts a DISPATCH on any due job.
   */
  | { ok: false; reason: 'moved-on'; job: JobRecord }
  /**
   * A REDRIVE of a workflow's finished child whose instance (`workflowId`)
   * has not taken its end yet: nothing was written. Redriven, the instance
   * would still take the end it missed (and run its onError for a dead
   * child), while the new run's end would be dropped. The rule is the one
   * that keeps such a child from being deleted (adapters/sql/awaited.ts).
   */
  | { ok: false; reason: 'awaited'; job: JobRecord; workflowId: string };

/**
 * One event for one job; with `ifVersion`, applied only while the job is at
 * that version (a compare-and-set on what the caller read, as the store's is
 * on what the transaction read).
 */
export interface ApplyItem {
  jobId: string;
  event: EventInput;
  ifVersion?: number;
}

export interface TransitionDeps {
  store: JobStore;
  clock: Clock;
  random: Random;
  ids: IdGenerator;
  /** Called after each commit that wrote outbox rows (wakes the relay in process). */
  onCommit?: () => void;
  /** Told what each commit wrote (engine/metrics.ts). @defaultValue none */
  metrics?: Pick<Metrics, 'transitionsCommitted'>;
  /**
   * Which limits exist, for the default limits of jobs without a concurrency
   * key (engine/limit-directory.ts). @defaultValue none: only jobs' own keys are limited
   */
  limits?: { has(key: string): boolean };
  /** The queues jobs may name (engine/queue-registry.ts). @defaultValue none: any queue */
  queues?: Pick<QueueRegistry, 'admit' | 'refused' | 'list'>;
}

/** sha256 of the submit as given, to tell a repeated submit from a conflicting one. */
export function requestHash(spec: JobSpec): string {
  const { type, payload, queue, runAt, maxAttempts, backoff, timeoutMs, priority, concurrencyKey } = spec;
  // The key only when given: the hashes of submits without one stay what they were before keys existed.
  const keyed = concurrencyKey === undefined ? {} : { concurrencyKey };
  return createHash('sha256')
    .update(canonicalJson({ type, payload, queue, runAt: runAt ?? null, maxAttempts, backoff, timeoutMs, priority, ...keyed }))
    .digest('hex');
}

/**
 * Whether `spec` is the submit that made `existing` but for the fields this
 * server filled in from its defaults (`spec.defaulted`): with those taken as
 * the job has them, it hashes as the job's submit did. So a client's retry
 * that lands on an instance whose `ATS_DEFAULT_*` differ (a rolling deploy
 * that changes one) gets its job, not a 409; a field it gives must still be
 * what the job has. Only reached when the hashes differ.
 */
function sameSubmitButDefaults(existing: JobRecord, spec: JobSpec): boolean {
  if (!spec.defaulted || existing.requestHash === null) return false;
  const { maxAttempts, backoff } = existing.snapshot.context;
  const asJob: JobSpec = { ...spec };
  for (const field of spec.defaulted) {
    if (field === 'maxAttempts') asJob.maxAttempts = maxAttempts;
    else if (field === 'backoff') asJob.backoff = backoff;
    else asJob[field] = existing[field];
  }
  return requestHash(asJob) === existing.requestHash;
}

/** JSON with object keys sorted, so equal values hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

export class TransitionService {
  /** Single submits made close together (concurrent API requests) share one transaction. */
  private readonly submits = new Batcher<JobSpec, PromiseSettledResult<SubmitResult>>((specs) => this.submitGroup(specs));

  /** Whether a default limit (`type:…`, `queue:…`) exists; none without a directory. */
  private readonly limitExists: (key: string) => boolean;

  constructor(private readonly deps: TransitionDeps) {
    const directory = deps.limits;
    this.limitExists = directory ? (key) => directory.has(key) : () => false;
  }

  /**
   * A job of a queue the registry refuses is ATS_ERR_QUEUE_LIMIT (409), and nothing is written; with
   * `queueAdmitted` (a stored schedule's tick: its queue was admitted when the schedule was set), its queue
   * is listed whatever the limit.
   */
  async submit(spec: JobSpec, options: { queueAdmitted?: boolean } = {}): Promise<SubmitResult> {
    const { queues } = this.deps;
    if (queues) await (options.queueAdmitted ? queues.list(spec.queue) : queues.admit([spec.queue], spec.tenant));
    const r = await this.submits.add(spec);
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  }

  /**
   * One transaction for a group of single submits. If that transaction fails
   * and was rolled back, each is tried alone, so a submit fails only for its
   * own reasons. Only the insert is retried: once it committed, retrying would
   * create jobs twice. So an error that leaves open whether it committed (the
   * database unreachable or silent when the commit was sent: its answer may
   * be all that was lost; a check failed after the commit) fails every submit
   * of the group with it, as it would a submit alone: a client retrying with
   * its Idempotency-Key then finds its job.
   */
  private async submitGroup(specs: JobSpec[]): Promise<PromiseSettledResult<SubmitResult>[]> {
    let group: { writes: TransitionWrite[]; inserted: InsertResult[] };
    try {
      group = await this.insertSubmits(specs);
    } catch (err) {
      if (specs.length === 1 || mayHaveCommitted(err)) return specs.map(() => ({ status: 'rejected', reason: err }));
      return Promise.allSettled(specs.map(async (spec) => (await this.submitMany([spec]))[0]!));
    }
    return this.answerSubmits(group, specs);
  }

  /** Each inserted submit's answer, on its own (see `submitResult`). */
  private answerSubmits(group: { writes: TransitionWrite[]; inserted: InsertResult[] }, specs: readonly JobSpec[]): Promise<PromiseSettledResult<SubmitResult>[]> {
    return Promise.allSettled(group.inserted.map((r, i) => this.submitResult(r, group.writes[i]!, specs[i]!)));
  }

  /**
   * Submit many jobs in one transaction. If an item's key lookup fails, the
   * call throws once the other items are answered: none still writes (a
   * re-insert) after it failed.
   */
  async submitMany(specs: readonly JobSpec[]): Promise<SubmitResult[]> {
    return valuesOrFirstFailure(await this.submitManySettled(specs));
  }

  /**
   * `submitMany`, each item answered on its own once the transaction
   * committed: an item whose key's holder could not be read (the database
   * went away after the commit) is its own failure, while the other items
   * stand, written. Only the transaction's failure rejects the call (and then
   * nothing was written, or it is unknown whether it was: see `mayHaveCommitted`).
   */
  async submitManySettled(specs: readonly JobSpec[]): Promise<PromiseSettledResult<SubmitResult>[]> {
    const { queues } = this.deps;
    const refused = queues ? await refusedSpecs(queues, specs) : undefined;
    if (!refused || refused.size === 0) return this.answerSubmits(await this.insertSubmits(specs), specs);
    // An item of a queue refused is its own ATS_ERR_QUEUE_LIMIT; the others go in.
    const kept = specs.filter((s) => !refused.has(s));
    const answers = kept.length > 0 ? await this.answerSubmits(await this.insertSubmits(kept), kept) : [];
    let k = 0;
    return specs.map((s) => {
      const reason = refused.get(s);
      return reason ? { status: 'rejected', reason } : answers[k++]!;
    });
  }

  private async insertSubmits(specs: readonly JobSpec[]): Promise<{ writes: TransitionWrite[]; inserted: InsertResult[] }> {
    const { store, clock, ids } = this.deps;
    const at = clock.now();
    const first = firstStates();
    const writes = specs.map((spec) => newJobWrite(spec, ids.jobId(), at, first));
    const inserted = await store.insert(writes);
    this.deps.onCommit?.();
    if (this.deps.metrics) reportSubmits(this.deps.metrics, writes, inserted);
    return { writes, inserted };
  }

  /**
   * A submit whose idempotency key was taken returns the job holding it, or a
   * conflict. If that job is gone by the time it is looked up (deleted, or
   * purged by retention, just after the insert found the key taken), the key
   * is free again: the submit is inserted anew, on its own (a few times at most).
   */
  private async submitResult(r: InsertResult, w: TransitionWrite, spec: JobSpec, tries = KEY_HOLDER_GONE_TRIES): Promise<SubmitResult> {
    if (r.ok) return { ok: true, job: w.job, created: true };
    const existing = await this.deps.store.findByIdempotencyKey(w.job.queue, w.job.idempotencyKey!, w.job.tenant);
    if (!existing && tries > 0) {
      const again = await this.insertSubmits([spec]);
      return this.submitResult(again.inserted[0]!, again.writes[0]!, spec, tries - 1);
    }
    if (!existing) throw new AtsError('ATS_ERR_INTERNAL', 'idempotency key reported taken but no job holds it');
    return existing.requestHash === w.job.requestHash || sameSubmitButDefaults(existing, spec)
      ? { ok: true, job: existing, created: false }
      : { ok: false, reason: 'idempotency-conflict', job: existing };
  }

  /** One event; a job of a machine version this code does not run throws `ATS_ERR_JOB_MACHINE_UNKNOWN` (503). */
  async apply(jobId: string, event: EventInput): Promise<ApplyResult> {
    const r = (await this.applyMany([{ jobId, event }]))[0]!;
    if (!r.ok && r.reason === 'machine-unknown') throw r.error;
    return r;
  }

  /**
   * Apply events to jobs in one transaction. Items for the same job are applied
   * in order. Each item is accepted or rejected on its own: a job of a machine
   * version this code does not run is `machine-unknown`, and does not hold
   * back the rest of the batch (a worker's claims, the timers' repairs); one
   * no longer at its item's `ifVersion` is `moved-on`.
   */
  async applyMany(items: readonly ApplyItem[]): Promise<ApplyResult[]> {
    if (items.length === 0) return [];
    const at = this.deps.clock.now();
    // Drawn once, outside `decide` (which may run again after a lost race).
    const events = items.map((it) => stamp(it.event, at, this.deps.random));
    const ids = [...new Set(items.map((it) => it.jobId))];
    // The last decision is what committed (the store decides again only after a lost race).
    const last: { decision?: Decision } = {};
    // Claims of jobs with a concurrency key need the keys' limits, read and locked with the jobs.
    const claims = items.some((it) => it.event.type === 'STARTED');
    // A redrive needs to know whether a workflow instance still waits on the job's end.
    const awaited = items.some((it) => it.event.type === 'REDRIVE');
    const keyOf = (job: JobRecord) => limitKeyOf(job, this.limitExists);
    const results = await this.deps.store.update(ids, {
      now: at,
      decide: (jobs, lastEventTypes, limits, waited) => (last.decision = decideMany(jobs, lastEventTypes, items, events, limits, keyOf, waited)),
      ...(claims ? { limitKeys: (jobs: ReadonlyMap<string, JobRecord>) => startedKeys(jobs, items, events, keyOf) } : {}),
      ...(awaited ? { awaited } : {}),
    });
    if (results.some((r) => r.ok)) this.deps.onCommit?.();
    if (this.deps.metrics && last.decision && last.decision.writes.length > 0) {
      this.deps.metrics.transitionsCommitted(last.decision.writes, last.decision.before);
    }
    return results;
  }
}

function stamp(input: EventInput, at: number, random: Random): JobEvent {
  const needsRand = input.type === 'FAILED' || input.type === 'LEASE_EXPIRED';
  return (needsRand ? { ...input, at, rand: random.next() } : { ...input, at }) as JobEvent;
}

/** Submits that were inserted, for the metrics (a duplicate key wrote nothing). */
function reportSubmits(metrics: Pick<Metrics, 'transitionsCommitted'>, writes: readonly TransitionWrite[], inserted: readonly InsertResult[]): void {
  const ok = inserted.every((r) => r.ok) ? writes : writes.filter((_, i) => inserted[i]!.ok);
  if (ok.length > 0) metrics.transitionsCommitted(ok, ok.map(() => null));
}

/** The limit keys of the jobs that STARTED events claim. */
function startedKeys(
  jobs: ReadonlyMap<string, JobRecord>, items: readonly { jobId: string }[], events: readonly JobEvent[], keyOf: (job: JobRecord) => string | undefined,
): string[] {
  const keys: string[] = [];
  items.forEach((it, i) => {
    const job = events[i]!.type === 'STARTED' ? jobs.get(it.jobId) : undefined;
    const key = job && keyOf(job);
    if (key !== undefined) keys.push(key);
  });
  return keys;
}

/**
 * Whether a failed write may still have committed: an outage (the store's
 * answer did not come: it may be the answer alone that was lost) or a failure
 * after the commit. Any other error was raised inside the transaction, which
 * was rolled back.
 */
function mayHaveCommitted(err: unknown): boolean {
  return isAtsError(err) && (err.code === 'ATS_ERR_STORE_UNAVAILABLE' || err.code === 'ATS_ERR_INTERNAL');
}

/** The writes for a group of events, each with the job as it was before it (`before`, for the metrics). */
type Decision = { writes: TransitionWrite[]; before: JobRecord[]; result: ApplyResult[]; claims: LimitClaim[] };

function decideMany(
  jobs: ReadonlyMap<string, JobRecord>,
  lastEventTypes: ReadonlyMap<string, StoredEventType>,
  items: readonly Pick<ApplyItem, 'jobId' | 'ifVersion'>[],
  events: readonly JobEvent[],
  limits: ReadonlyMap<string, LimitState> = new Map(),
  keyOf: (job: JobRecord) => string | undefined = (job) => limitKeyOf(job, () => false),
  awaited: ReadonlyMap<string, string> = new Map(),
): Decision {
  const current = new Map(jobs);
  const last = new Map(lastEventTypes);
  const writes: TransitionWrite[] = [];
  const before: JobRecord[] = [];
  const claims: LimitClaim[] = [];
  // Each key's state as this decision moves it on (a batch may claim several of one key).
  const keyState = new Map<string, { tat: number; running: number }>();
  const result = items.map((item, i): ApplyResult => {
    const job = current.get(item.jobId);
    if (!job) return { ok: false, reason: 'not-found' };
    if (item.ifVersion !== undefined && job.version !== item.ifVersion) return { ok: false, reason: 'moved-on', job };
    const event = events[i]!;
    if (!runsMachineOf(job.snapshot)) return { ok: false, reason: 'machine-unknown', job, error: unknownMachine(job) };
    if (event.type === 'HEARTBEAT' && job.snapshot.value === 'running' && leaseOver(job.snapshot.context, event.at)) {
      return { ok: false, reason: 'lease-ended', job };
    }
    // Only a REDRIVE leaves a finished state, and `awaited` holds finished jobs only (as read: an earlier
    // item can have moved a job only if it was a REDRIVE, itself refused then).
    const waitedBy = event.type === 'REDRIVE' ? awaited.get(job.id) : undefined;
    if (waitedBy !== undefined) return { ok: false, reason: 'awaited', job, workflowId: waitedBy };
    const write = transitionWrite(job, event, last.get(job.id));
    if (!write) return { ok: false, reason: 'not-allowed', job };
    const key = event.type === 'STARTED' && limits.size > 0 ? keyOf(job) : undefined;
    const limited = key === undefined ? undefined : limits.get(key);
    if (limited && event.type === 'STARTED') {
      let state = keyState.get(limited.limit.key);
      if (!state) keyState.set(limited.limit.key, (state = { tat: limited.limit.tat, running: limited.running }));
      const admission = admit({ ...limited.limit, tat: state.tat }, state.running, event.at);
      if (!admission.ok) return { ok: false, reason: 'throttled', job, key: limited.limit.key, why: admission.why, retryAfterMs: admission.retryAfterMs };
      state.tat = admission.tat;
      state.running++;
      claims.push({ key: limited.limit.key, tat: admission.tat, jobId: job.id, attempt: event.attempt });
    }
    current.set(job.id, write.job);
    last.set(job.id, write.event.type);
    writes.push(write);
    before.push(job);
    return { ok: true, job: write.job, event: write.event };
  });
  return { writes, before, result, claims };
}

/** How often a submit is inserted again when the job holding its idempotency key vanished meanwhile. */
const KEY_HOLDER_GONE_TRIES = 3;

/**
 * A job whose snapshot another job machine version wrote (a newer deployment
 * during a rolling one): nothing is written for it, and the caller (a worker's
 * outcome, the timers, an API request: 503) tries again, later or on a server
 * that runs that version. Not a rejection (`not-allowed`): that is a verdict
 * of this machine on the event, which it cannot give on a state it may misread.
 */
function unknownMachine(job: JobRecord): AtsError {
  const cause = new UnknownJobMachineError(job.snapshot.machine);
  return new AtsError('ATS_ERR_JOB_MACHINE_UNKNOWN', `job ${job.id}: its snapshot was ${cause.detail}; retry on a server that runs it`, {
    cause, details: { jobId: job.id, machine: job.snapshot.machine },
  });
}

/**
 * The write for one event on one job, or null when the machine rejects it
 * (and `ATS_ERR_JOB_MACHINE_UNKNOWN` thrown for a snapshot of a machine
 * version this code does not run).
 * A heartbeat whose job's last event (`lastEventType`) is a heartbeat
 * coalesces into it: a running job's lease is extended every few seconds,
 * and a history row (and a transition message) for each would make a long
 * job's history mostly heartbeats. The last event of a running job that is a
 * HEARTBEAT belongs to the current attempt (a new attempt starts with
 * STARTED), and the machine accepted this one (fenced): same attempt.
 */
export function transitionWrite(job: JobRecord, event: JobEvent, lastEventType?: StoredEventType): TransitionWrite | null {
  if (!runsMachineOf(job.snapshot)) throw unknownMachine(job);
  const r = step(job.snapshot, event);
  if (!r.ok) return null;
  if (event.type === 'HEARTBEAT' && lastEventType === 'HEARTBEAT') {
    const next: JobRecord = { ...job, snapshot: r.next, updatedAt: event.at };
    const record: JobEventRecord = {
      jobId: job.id, seq: job.version, type: event.type, from: r.next.value, to: r.next.value, at: event.at, data: event,
    };
    return { job: next, expectedVersion: job.version, event: record, outbox: [], coalesce: { previousAt: job.updatedAt } };
  }
  const version = job.version + 1;
  const next: JobRecord = { ...job, snapshot: r.next, version, updatedAt: event.at };
  const record: JobEventRecord = {
    jobId: job.id, seq: version, type: event.type, from: job.snapshot.value, to: r.next.value, at: event.at, data: event,
  };
  return { job: next, expectedVersion: job.version, event: record, outbox: outboxFor(next, record, r.effects) };
}

/**
 * `start(input)` for one batch of submits, run once per distinct input: the
 * jobs of one `submitMany` share `at`, and mostly runAt, maxAttempts and
 * backoff, and the machine's first step is most of a submit's CPU. The
 * machine is pure, so equal inputs give equal states; each job gets its own
 * copy of the state.
 */
function firstStates(): (input: JobInput) => ReturnType<typeof start> {
  const seen = new Map<string, ReturnType<typeof start>>();
  return (input) => {
    const key = JSON.stringify(input);
    let first = seen.get(key);
    if (!first) seen.set(key, (first = start(input)));
    return { next: structuredClone(first.next), effects: { ...first.effects } };
  };
}

/** The write that submits `spec` as job `id` at `at` (a workflow's child jobs go into its own transaction). */
export function submitWrite(spec: JobSpec, id: string, at: number): TransitionWrite {
  return newJobWrite(spec, id, at, firstStates());
}

function newJobWrite(spec: JobSpec, id: string, at: number, first: (input: JobInput) => ReturnType<typeof start>): TransitionWrite {
  const input = { at, runAt: spec.runAt, maxAttempts: spec.maxAttempts, backoff: spec.backoff };
  if (input.runAt === undefined) delete input.runAt;
  const { next, effects } = first(input);
  const job: JobRecord = {
    id, tenant: spec.tenant ?? DEFAULT_TENANT, type: spec.type, queue: spec.queue, payload: spec.payload, priority: spec.priority,
    timeoutMs: spec.timeoutMs, idempotencyKey: spec.idempotencyKey ?? null,
    requestHash: spec.idempotencyKey ? requestHash(spec) : null,
    version: 1, snapshot: next, createdAt: at, updatedAt: at,
  };
  if (spec.traceContext) job.traceContext = spec.traceContext;
  if (spec.concurrencyKey !== undefined) job.concurrencyKey = spec.concurrencyKey;
  if (spec.parent) job.parent = spec.parent;
  const event: JobEventRecord = { jobId: id, seq: 1, type: 'SUBMITTED', from: null, to: next.value, at, data: input };
  return { job, expectedVersion: null, event, outbox: outboxFor(job, event, effects) };
}

/** The items of `specs` whose queue the registry refuses for their tenant, with the error each is answered (asked once per tenant). */
async function refusedSpecs(queues: Pick<QueueRegistry, 'refused'>, specs: readonly JobSpec[]): Promise<ReadonlyMap<JobSpec, AtsError>> {
  const byTenant = new Map<string, JobSpec[]>();
  for (const spec of specs) {
    const tenant = spec.tenant ?? DEFAULT_TENANT;
    const group = byTenant.get(tenant);
    if (group) group.push(spec);
    else byTenant.set(tenant, [spec]);
  }
  const refused = new Map<JobSpec, AtsError>();
  for (const [tenant, group] of byTenant) {
    const names = await queues.refused(group.map((s) => s.queue), tenant);
    for (const spec of group) {
      const error = names.get(spec.queue);
      if (error) refused.set(spec, error);
    }
  }
  return refused;
}
