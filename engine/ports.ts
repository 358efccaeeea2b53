/**
 * The engine's ports: what it needs from the world, in the words of jobs and
 * events (never SQL, connections or Kafka types). Adapters implement them;
 * only the composition root (`cli/compose.ts`) picks which.
 *
 * Glossary
 * - job: one unit of work of a `type`, with a JSON `payload`, living in a `queue`.
 *   Its lifecycle is the job machine (`machines/job.machine.ts`).
 * - event: one accepted machine transition; `job_events` keeps them per job as
 *   `seq` 1, 2, 3... (seq 1 is the submit), gap-free. `version` = the last seq.
 * - attempt: one run of the handler, numbered from 1, the fence for outcomes.
 * - lease: a worker holds its attempt until `leaseUntil`; heartbeats extend it;
 *   the timers expire it (LEASE_EXPIRED counts as a failed attempt).
 *   Leases and due times are epoch ms of one clock for all processes: the
 *   database's on MySQL (engine/db-clock.ts), the process's own on SQLite.
 * - dispatch: a message on `ats.dispatch` asking a worker to start an attempt.
 *   The same topic carries cancel control messages (`ats-kind: cancel`), keyed
 *   by job id, for the worker running the cancelled attempt.
 * - outbox row: a message written in the same transaction as the transition
 *   that caused it; the relay publishes it to the log, then deletes it.
 */
import type { PersistedJob } from '../machines/lifecycle.js';
import type { JobEvent, JobInput, JobState } from '../machines/job.machine.js';
import type { LimitRecord, LimitSpec, LimitState } from './limits.js';
import type { BackoffPolicy } from '../machines/backoff.js';
import type { ApiKeyRecord, StoredApiKey } from './auth.js';
import type { PersistedWorkflow, WorkflowStatus } from '../machines/workflow.js';

// ---------------------------------------------------------------- time, ids

/** Every "now", sleep and timer goes through the clock, so tests can drive time. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /**
   * Milliseconds from an arbitrary origin, on a clock that a change of the host's time of day (an
   * NTP step) does not move: what the database clock's offset is measured against
   * (engine/db-clock.ts). A clock without it is read through `now()` there.
   */
  elapsed?(): number;
  /** Resolves after `ms` (or rejects with the signal's reason when aborted). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The random source, in [0, 1). */
export interface Random {
  next(): number;
}

export interface IdGenerator {
  /** A new job id: a ULID of the clock's time when drawn (job-ids.ts), sorting by creation time. */
  jobId(): string;
}

// ---------------------------------------------------------------- records

export type Topic = 'ats.dispatch' | 'ats.events' | 'ats.dlq' | 'ats.workflows';
export const TOPICS = Object.freeze({
  dispatch: 'ats.dispatch',
  events: 'ats.events',
  dlq: 'ats.dlq',
  /** Ends of jobs that workflows started, keyed by workflow id, for the workflow driver (engine/workflows.ts). */
  workflows: 'ats.workflows',
} as const satisfies Record<string, Topic>);

/** The header carrying the outbox row id: the dedupe key of every message. */
export const OUTBOX_ID_HEADER = 'ats-outbox-id';

/**
 * A W3C Trace Context (the `traceparent` and `tracestate` header values):
 * the span a job's later spans continue, kept with the job when it is
 * submitted while tracing is on. See engine/tracing.ts.
 */
export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

/** A job as stored: the machine's persisted snapshot plus what the API shows. */
export interface JobRecord {
  id: string;
  /**
   * The tenant of the key that submitted it (engine/auth.ts): the job, its
   * events, its idempotency key and its stream are that tenant's only. Never
   * changes. `default` for jobs made before tenants existed or in the open mode.
   */
  tenant: string;
  type: string;
  queue: string;
  payload: unknown;
  priority: number;
  timeoutMs: number;
  idempotencyKey: string | null;
  /** sha256 of the submitted body, to tell a repeated submit from a conflicting one. */
  requestHash: string | null;
  /** The last event's seq. */
  version: number;
  snapshot: PersistedJob;
  createdAt: number;
  updatedAt: number;
  /**
   * The submit's trace context, when it was traced: every dispatch of the job
   * (retries and re-dispatches too) carries it, so its attempts join the
   * submit's trace. Absent when tracing was off.
   */
  traceContext?: TraceContext;
  /** The key whose concurrency and rate limit (engine/limits.ts) the job's attempts count against; none when absent. */
  concurrencyKey?: string;
  /** The workflow instance that started the job, and the invocation it runs (engine/workflows.ts); absent for a job submitted on its own. */
  parent?: JobParent;
}

/** Which workflow invocation a job runs. */
export interface JobParent {
  workflowId: string;
  invokeId: string;
}

/** The submit is stored as event seq 1 of type SUBMITTED whose data is the machine input. */
export type StoredEventType = JobEvent['type'] | 'SUBMITTED';

export interface JobEventRecord {
  jobId: string;
  seq: number;
  type: StoredEventType;
  from: JobState | null;
  to: JobState;
  at: number;
  /** The machine event (or, for SUBMITTED, the machine input). */
  data: JobEvent | JobInput;
}

/**
 * A job event with its global position, as the WebSocket stream reads it:
 * `id` is `job_events.id`, allocated when the row is inserted but visible only
 * once its transaction commits (so a higher id can be seen before a lower one;
 * see `server/stream/cursor.ts`), plus the type and queue of its job.
 */
export interface StreamEventRecord extends JobEventRecord {
  id: number;
  jobType: string;
  queue: string;
  /**
   * The job's tenant: a stream client gets only its own tenant's events. The
   * store always sets it; a record without one (made by hand) goes to no client.
   */
  tenant?: string;
}

/**
 * At most this many messages in one outbox row: a relay step may publish up
 * to this many more than its limit (a row is never split).
 */
export const OUTBOX_ROW_MAX_MESSAGES = 500;

/** A message to publish, as the outbox keeps it. */
export interface OutboxMessage {
  /** One of {@link TOPICS}, or a dispatch lane (engine/lanes.ts). */
  topic: string;
  key: string;
  payload: unknown;
  headers: Record<string, string>;
}

/** A message as the outbox hands it to the relay. */
export interface OutboxRow extends OutboxMessage {
  /** The message's unique, stable id (the `ats-outbox-id` header): see adapters/sql/outbox.ts. */
  id: number;
  createdAt: number;
  publishedAt: number | null;
  /** The payload's JSON text as the store keeps it: published as is, not parsed and written again. */
  value?: string;
}

/** One transition to commit: the new job row, its event and its outbox rows. */
export interface TransitionWrite {
  job: JobRecord;
  /** The version the job had when read (compare-and-set); null for a new job. */
  expectedVersion: number | null;
  event: JobEventRecord;
  outbox: OutboxMessage[];
  /**
   * Set on a heartbeat that follows a heartbeat of the same attempt: instead
   * of appending, the write replaces the job's last event (seq
   * `expectedVersion`, a HEARTBEAT whose `at` is `previousAt`) with `event`;
   * the version stays, and there are no outbox rows. Replaying the events
   * gives the same job: consecutive heartbeats of one attempt are
   * replay-equivalent to the last one.
   */
  coalesce?: { previousAt: number };
}

export interface JobFilter {
  /** Only this tenant's jobs (every API list names one); absent: every tenant's (engine-internal reads). */
  tenant?: string;
  state?: JobState;
  type?: string;
  queue?: string;
  limit: number;
  /** Opaque to callers: the id of the last job of the previous page. */
  afterId?: string;
  /** Only jobs created at or after this time (epoch ms). */
  createdAfter?: number;
  /** Only jobs created before this time (epoch ms). */
  createdBefore?: number;
}

/** One page of `JobStore.listJobPage`. */
export interface JobRecordPage {
  jobs: JobRecord[];
  /**
   * The next page's `afterId`, or null when no matching job follows. (Not
   * always the last job's id: a job deleted while the page was read is missing.)
   */
  nextAfterId: string | null;
}

export interface Stats {
  byState: Record<JobState, number>;
  byType: Record<string, Partial<Record<JobState, number>>>;
  byQueue: Record<string, Partial<Record<JobState, number>>>;
}

/** Jobs of one queue and type in one state, as the store counts them. */
export interface JobCount {
  queue: string;
  type: string;
  state: JobState;
  n: number;
}

/**
 * What deleting one job did: `live` when it is not terminal; `awaited` when it
 * is a workflow's finished child whose instance (`workflowId`) has not taken
 * its end yet (deleted, the end would reach it as "the job is gone"). Nothing
 * is deleted then.
 */
export type DeleteResult =
  | { ok: true }
  | { ok: false; reason: 'not-found' }
  | { ok: false; reason: 'live'; state: JobState }
  | { ok: false; reason: 'awaited'; state: JobState; workflowId: string };

/** The outbox's backlog: rows (and their messages) waiting for the relay and when the oldest one was written. */
export interface OutboxBacklog {
  rows: number;
  /** The messages those rows hold (a row may hold many). */
  messages: number;
  /** `created_at` of the oldest row (epoch ms), null when the outbox is empty. */
  oldestAt: number | null;
}

/** One edge of the job machine as recent transitions took it. */
export interface EdgeStat {
  /** null for the submit. */
  from: JobState | null;
  to: JobState;
  event: StoredEventType;
  /** Transitions along this edge among the events read. */
  count: number;
  /**
   * Median of the time the job spent in `from` before taking this edge (this
   * event's `at` minus the job's previous event's), ms; null without a sample
   * (the submit, or previous events deleted).
   */
  medianDwellMs: number | null;
}

export interface EdgeStats {
  edges: EdgeStat[];
  /** Events of the window were left out: more than the cap were written in it (only the newest were read). */
  truncated: boolean;
}

/** A job the timers must look at. */
export interface DueJob {
  id: string;
  state: JobState;
  attempt: number;
  /**
   * The row's version as the scan read it: the timers act on the job only if
   * it is still at this version, so two instances that read it before either
   * wrote issue one repair, not two.
   */
  version: number;
}

/** A job the lost-dispatch scan found: with what names the lane its dispatch travels on (engine/lanes.ts), and its type. */
export interface LostDispatch extends DueJob {
  type: string;
  queue: string;
  priority: number;
  /** Its last transition (the snapshot's `updatedAt`: its dispatch, or PUBLISHED), which a keep does not move. */
  lastTransitionAt: number;
}

// ---------------------------------------------------------------- store

export type InsertResult = { ok: true } | { ok: false; reason: 'duplicate-key' };

/**
 * Decides the writes from the jobs as read, and the type of each one's last
 * event (whether a heartbeat may coalesce). Pure and synchronous: no I/O, no
 * await. The store may call it more than once (after a lost race).
 */
export type Decide<T> = (
  jobs: ReadonlyMap<string, JobRecord>,
  lastEventTypes: ReadonlyMap<string, StoredEventType>,
  /** The limits of the keys `limitKeys` asked for (keys without a limit are absent). */
  limits: ReadonlyMap<string, LimitState>,
  /**
   * With `Decision.awaited`: the finished jobs read that a workflow instance
   * still waits on (it has not taken their end), each with the instance's id.
   */
  awaited: ReadonlyMap<string, string>,
) => { writes: TransitionWrite[]; result: T; claims?: LimitClaim[] };

/**
 * What `update` decides with: `decide`, and optionally which concurrency keys
 * it needs the limits of, from the jobs as read (the store then reads and
 * locks those limits' rows, and counts their running attempts, before
 * calling `decide`).
 */
export interface Decision<T> {
  decide: Decide<T>;
  limitKeys?: (jobs: ReadonlyMap<string, JobRecord>) => readonly string[];
  /**
   * Read which finished jobs among those read a workflow instance still waits
   * on (the rule that keeps such a child from being deleted too), for `decide`
   * to refuse their redrive. @defaultValue false: `awaited` is empty
   */
  awaited?: boolean;
  /** When the leases of the keys' running attempts are judged (the events' time). */
  now: number;
}

/** A start a limit admitted: the limit's new rate state, and the attempt that now counts against it. */
export interface LimitClaim {
  key: string;
  tat: number;
  jobId: string;
  attempt: number;
}

/** What `countWaitingAhead` counted. */
export interface WaitingAhead {
  /** The jobs ahead found among those read. */
  ahead: number;
  /** Every waiting job that could be ahead was read: `ahead` is exact. Otherwise a read stopped at its bound: at least `ahead`. */
  complete: boolean;
}

export interface JobStore {
  /**
   * Apply pending migrations; safe when several processes start at once (one
   * that starts while another migrates waits, telling `logger` so, for up to
   * 15 minutes: adapters/sql/migration-wait.ts). @defaultValue logger: JSON lines on stdout
   */
  migrate(opts?: { logger?: Logger }): Promise<void>;

  /**
   * Insert new jobs (version 1) with their SUBMITTED events and outbox rows,
   * all in one transaction. A job whose (tenant, queue, idempotencyKey) exists is not
   * inserted and reports `duplicate-key`; the others still commit.
   */
  insert(writes: TransitionWrite[]): Promise<InsertResult[]>;

  /**
   * Read the jobs `ids` as of a lock (or a version check), let `decide` compute
   * the transitions, and commit job rows + events + outbox rows in one
   * transaction. A job changed by someone else meanwhile means `decide` runs
   * again on fresh rows; after a few tries the store throws
   * `ATS_ERR_CONCURRENT_UPDATE`.
   */
  update<T>(ids: readonly string[], decide: Decide<T> | Decision<T>): Promise<T>;

  getJob(id: string): Promise<JobRecord | null>;
  /** The job of `tenant` holding `key` in `queue` (a key is the tenant's own: two tenants may each hold one). */
  findByIdempotencyKey(queue: string, key: string, tenant: string): Promise<JobRecord | null>;
  /** A job's events in seq order, from `afterSeq + 1`. */
  getEvents(jobId: string, afterSeq?: number): Promise<JobEventRecord[]>;
  /**
   * Events of every job with `id > afterId`, in id order, at most `limit`
   * (the stream's tail and replay). Committed rows only, so ids may have
   * gaps: a transaction still committing, or one rolled back. With
   * `throughId`, none with `id > throughId`: the stream reads no row past
   * the last whose size it read (engine/event-tail.ts `readWithin`).
   */
  readEventsAfter(afterId: number, limit: number, throughId?: number): Promise<StreamEventRecord[]>;
  /**
   * One job's events with `id > afterId` (and, with `throughId`, none above
   * it), in id order, at most `limit`: `readEventsAfter` of that job alone.
   * A job's events are numbered in seq order (server/stream/cursor.ts), so
   * this is its history from some seq on, each event with its stream position.
   */
  readJobEventsAfter(jobId: string, afterId: number, limit: number, throughId?: number): Promise<StreamEventRecord[]>;
  /**
   * The id of each row `readEventsAfter` would read, with the bytes its data
   * takes, without reading it (the primary key range of `job_events` alone):
   * the stream reads these first, then only the rows that fit its bytes (a
   * SUCCEEDED event carries the handler's result, up to 256 KiB).
   */
  eventSizesAfter(afterId: number, limit: number): Promise<{ id: number; bytes: number }[]>;
  /** The highest committed `job_events.id` (0 for none). Lower ids may still be committing. */
  lastEventId(): Promise<number>;
  /**
   * The highest `job_events.id` ever handed out (0 for none), committed or not:
   * deleting events (a job deleted, retention) does not lower it. Tells a
   * stream cursor some server issued from one none did.
   */
  lastIssuedEventId(): Promise<number>;
  /**
   * Jobs of `queue` waiting to start ahead of job `id` of `priority` (pending
   * or published and due by `now`: a job scheduled for later is not ahead;
   * and of a higher priority band, or of its band and created before it, as
   * workers start them: engine/lanes.ts), for the advisor's ETA. Counted
   * among at most `maxRead` waiting jobs (of every queue) per read, and two
   * reads at most (the bands above, its own band before it): its cost is
   * bounded by `maxRead`, never by the jobs waiting nor the history kept.
   * `joining`: the job has no place in its lane yet (a retry, or a delayed
   * job whose dispatch is not issued): it joins the end of its lane when due,
   * behind every job of its band waiting then, so those of its band count
   * whenever created (all but the job itself). @defaultValue false
   */
  countWaitingAhead(queue: string, id: string, priority: number, maxRead: number, now: number, joining?: boolean): Promise<WaitingAhead>;
  /** Newest first (by id, which sorts by creation time). */
  listJobs(filter: JobFilter): Promise<JobRecord[]>;
  /**
   * `listJobs`, bounded in bytes too (the API's pages): the jobs stop before
   * the one whose stored payload and snapshot (result, last error) would take
   * the page past `maxBytes`; the first job always comes, whatever its size.
   * The sizes are read first, so a page never loads more than about
   * `maxBytes` of rows.
   */
  listJobPage(filter: JobFilter, maxBytes: number): Promise<JobRecordPage>;
  /**
   * Counts per state, type and queue, from counters every insert, transition
   * and delete maintains in its own transaction (its cost does not grow with
   * the number of jobs). `byType` and `byQueue` have no prototype. Only
   * `tenant`'s jobs when given (the API's), else every tenant's summed.
   */
  stats(tenant?: string): Promise<Stats>;
  /** The maintained counters behind `stats()`, keys with a count of 0 left out; only `tenant`'s when given, else summed over tenants. */
  jobCounts(tenant?: string): Promise<JobCount[]>;
  /** The same counts recounted from the jobs themselves, `tenant`'s when given, else summed over tenants: a full scan, for `verify` and tests. */
  recountJobs(tenant?: string): Promise<JobCount[]>;

  /**
   * Delete a terminal job (done, dead, cancelled) with its events, now; a job
   * in any other state is left alone (`live`). Its outbox rows stay for the relay.
   */
  deleteJob(id: string): Promise<DeleteResult>;
  /**
   * Retention: delete up to `limit` jobs in the terminal `state` whose last
   * transition is at or before `updatedBefore`, oldest first, with their
   * events, in short transactions of at most 10,000 events each (a single
   * job with a longer history goes whole, in one). Returns how many were
   * deleted. Rejects a state that is not terminal. A batch whose histories
   * take several transactions gives up after the one in flight once `signal`
   * aborts (retention stopping): what went stays gone, the rest waits.
   */
  purgeJobs(state: JobState, updatedBefore: number, limit: number, signal?: AbortSignal): Promise<number>;

  /**
   * Relay step: pick unpublished outbox rows, oldest first, until they hold
   * at least `limit` messages (a row, which may hold many, is never split: a
   * step may give up to `OUTBOX_ROW_MAX_MESSAGES` more), and take those of
   * them no other relay holds; call
   * `publish` with their messages in order; when it resolves, delete the
   * rows. If `publish` throws (or the process dies) they stay in the outbox
   * and are taken again: a message may be published twice, never lost. While
   * `publish` runs, other writers (which insert outbox rows) are not blocked.
   * Returns how many messages were published: fewer than `limit` means the
   * outbox had no more, or another relay held some of the rows picked.
   */
  relayOutbox(limit: number, publish: (rows: OutboxRow[]) => Promise<void>): Promise<number>;
  /** Outbox messages waiting for the relay: those of every row left (for tests, `verify` and metrics). */
  countUnpublished(): Promise<number>;
  /** The outbox's row count and oldest row (metrics; the outbox is small: the relay deletes what it sent). */
  outboxBacklog(): Promise<OutboxBacklog>;
  /**
   * Per edge (from, to, event), the transitions of `job_events` at or after
   * `since` (epoch ms), from the newest `maxEvents` events at most (a bounded
   * range of an index, never a scan of the history); `truncated` when an
   * older one of them is in the window too. With `tenant`, its newest events
   * only: the cap and `truncated` are of its events, and no other tenant's
   * event is read.
   */
  edgeStats(since: number, maxEvents: number, tenant?: string): Promise<EdgeStats>;

  /** Jobs in pending/retrying whose due time has come (delayed jobs, retries). */
  findDue(now: number, limit: number): Promise<DueJob[]>;
  /** Running jobs whose lease ended before `now`. */
  findExpiredLeases(now: number, limit: number): Promise<DueJob[]>;
  /**
   * Jobs dispatched and not started since `before`, whose dispatch may be
   * lost: published, or pending with their dispatch issued (PUBLISHED not
   * recorded). Delayed jobs and retries not yet due are not among them.
   */
  findLostDispatches(before: number, limit: number): Promise<LostDispatch[]>;
  /**
   * These jobs' dispatches are not lost (a live worker holds them because
   * their limit refused the claim; or the timers found them waiting unread in
   * the log, or of a type and queue no live worker can run): those still
   * waiting for a worker (pending with the dispatch issued, or published)
   * get `at` as their update time, unless it is later already, so
   * `findLostDispatches` does not take them for lost. Answers how many
   * changed. Nothing else of the job changes: no version, no event.
   */
  keepDispatches(jobIds: readonly string[], at: number): Promise<number>;
  /** `created_at` of the oldest row still in the outbox (epoch ms), null when it is empty: one primary-key read. */
  oldestOutboxAt(): Promise<number | null>;

  /** Reachability, for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- schedules

/** With `skip`, a tick whose previous job is still live records a skipped tick instead of a job. */
export type Overlap = 'skip' | 'allow';
/** What a schedule does with ticks missed while no timers ran (engine/schedules.ts). */
export type CatchUp = 'none' | 'latest' | 'all';

/** The job a schedule submits at each tick: a submit's fields, validated and defaulted. */
export interface JobTemplate {
  type: string;
  payload: unknown;
  queue: string;
  maxAttempts: number;
  backoff: BackoffPolicy;
  timeoutMs: number;
  priority: number;
}

/** A cron schedule as stored. */
export interface ScheduleRecord {
  /** The tenant it belongs to (engine/auth.ts): its ticks submit their jobs there. */
  tenant: string;
  /** Unique within its tenant. */
  name: string;
  cron: string;
  /** IANA time zone the expression is read in. */
  timezone: string;
  overlap: Overlap;
  catchUp: CatchUp;
  paused: boolean;
  job: JobTemplate;
  /** The next tick to fire (epoch ms); null while paused, or when the expression fires no more. */
  nextAt: number | null;
  lastTickAt: number | null;
  /** The job of the last tick that submitted one. */
  lastJobId: string | null;
  /** Ticks that submitted a job, were skipped (overlap), were missed (catch-up). */
  submitted: number;
  skipped: number;
  missed: number;
  /** Bumped by every change (compare-and-set). */
  version: number;
  createdAt: number;
  updatedAt: number;
  /**
   * The queue the due ticks submit into, from before the first of them is
   * submitted until the schedule moves on past them (absent otherwise): a
   * change of the template's queue meanwhile, or a crash, must not submit a
   * tick's job again under its key in another queue.
   */
  firingQueue?: string;
}

/** A tick's job, found by its tick key. */
export interface TickJob {
  tickAt: number;
  job: JobRecord;
}

/** One fired tick. */
export interface ScheduleTick {
  /** The schedule's tenant. */
  tenant: string;
  schedule: string;
  tickAt: number;
  outcome: 'submitted' | 'skipped';
  jobId: string | null;
  /** When it was fired. */
  at: number;
}

/**
 * Concurrency and rate limits by key (engine/limits.ts); the claim's side is in `JobStore.update`.
 * Every key here is a stored key: tenant-qualified (`storedLimitKey`), the default tenant's bare.
 */
export interface LimitStore {
  /**
   * Creates or replaces the limit of `key` (its rate state kept, moved by a change of rate: engine/limits.ts `rateChangeShift`).
   * With `maxPerTenant`, a new key of a tenant that has that many limits is ATS_ERR_TOO_MANY_LIMITS, and nothing is written.
   */
  putLimit(key: string, spec: LimitSpec, now: number, maxPerTenant?: number): Promise<{ limit: LimitRecord; created: boolean }>;
  getLimit(key: string): Promise<LimitRecord | null>;
  /** The limits by stored key, at most `limit`: only `tenant`'s when given, else every tenant's. */
  listLimits(limit: number, tenant?: string): Promise<LimitRecord[]>;
  /** The stored keys of the default limits (`type:…`, `queue:…`) of every tenant, in key order after `after`, at most `limit`. */
  defaultLimitKeys(limit: number, after?: string): Promise<string[]>;
  /** False when there was none. */
  deleteLimit(key: string): Promise<boolean>;
  /** Per key, its attempts running with a lease that holds at `now` (keys with none are absent). */
  runningByKey(keys: readonly string[], now: number): Promise<Map<string, number>>;
  /**
   * When the key's attempts running at `now` (as `runningByKey` counts them) started, each its
   * latest STARTED event's time: the earliest `first`, earliest first.
   */
  runningStarts(key: string, now: number, first: number): Promise<number[]>;
}

/**
 * API keys (engine/auth.ts): stored hashed, read by id. A change of a key and
 * its audit entry are written in one transaction, to the audit log of the
 * same database (the one `AuditStore` reads): a key that exists or is revoked
 * is never missing from the log, and one that could not be recorded is not
 * made (or not revoked).
 */
export interface KeyStore {
  /**
   * Stores a new key (its id is fresh: never taken), and `audit` (its `key.create` entry) when given: both or neither.
   * With `maxPerTenant`, a tenant that has that many keys not revoked is ATS_ERR_TOO_MANY_KEYS, and nothing is
   * written (`whenFull` 'refuse', the default; with 'create' the key is made all the same: the operator's way
   * in); otherwise, should its keys, revoked ones too, be more than that with the new one, its keys revoked
   * longest ago are deleted, in the same transaction, to leave that many.
   */
  createKey(key: StoredApiKey, audit?: AuditEntry, maxPerTenant?: number, whenFull?: 'refuse' | 'create'): Promise<void>;
  /** The key of this id, revoked or not; null when there is none. */
  getKey(id: string): Promise<StoredApiKey | null>;
  /** Keys by creation, newest first, at most `limit`; only `tenant`'s when given. */
  listKeys(limit: number, tenant?: string): Promise<ApiKeyRecord[]>;
  /**
   * Marks the key revoked at `now`, and records `audit` (its `key.revoke`
   * entry) when given: both or neither. False when there is none or it was
   * revoked already (then nothing is recorded).
   */
  revokeKey(id: string, now: number, audit?: AuditEntry): Promise<boolean>;
  /** How many keys are not revoked. */
  countActiveKeys(): Promise<number>;
}

/** What an operator did, and with which key: cancel, redrive, delete, workflow cancel, key changes (`GET /v1/audit`). */
export interface AuditEntry {
  /** Epoch ms. */
  at: number;
  /** The key that did it; null in the open mode or from the CLI. */
  keyId: string | null;
  tenant: string;
  /** `job.cancel`, `job.redrive`, `job.delete`, `workflow.cancel`, `workflow.delete`, `key.create`, `key.revoke`. */
  action: string;
  /** What it was done to: a job, workflow instance or key id. */
  target: string;
}

export interface AuditStore {
  recordAudit(entry: AuditEntry): Promise<void>;
  /** The tenant's entries, newest first, at most `limit`. */
  listAudit(tenant: string, limit: number): Promise<AuditEntry[]>;
  /** Deletes at most `limit` entries recorded before `before` (every tenant's), the oldest first; returns how many went. */
  purgeAudit(before: number, limit: number): Promise<number>;
}

/**
 * The queues jobs may name (engine/queue-registry.ts): each one named is
 * listed for good, as its lane topics stay for good.
 */
/** A tenant's part of the queue list: at most `max` of the queues listed may be its own. */
export interface QueueShare {
  tenant: string;
  max: number;
}

export interface QueueStore {
  /**
   * Lists the queues of `names` not listed yet, in order, while fewer than
   * `max` are listed (at `at`), and, with `share`, fewer than `share.max` by
   * `share.tenant` (each queue keeps the tenant that listed it); returns those
   * refused for want of a place. A queue listed already is never refused.
   */
  admitQueues(names: readonly string[], max: number, at: number, share?: QueueShare): Promise<string[]>;
  /** How many queues are listed. */
  countQueues(): Promise<number>;
}

/** Schedules are keyed by (tenant, name): every read or change of one names its tenant. */
export interface ScheduleStore {
  /**
   * false when the tenant has a schedule of this name (nothing written). With `maxPerTenant`, a tenant that
   * has that many schedules is ATS_ERR_TOO_MANY_SCHEDULES, and nothing is written: the count and the insert
   * are one transaction, so creations at once never pass it.
   */
  createSchedule(s: ScheduleRecord, maxPerTenant?: number): Promise<boolean>;
  getSchedule(tenant: string, name: string): Promise<ScheduleRecord | null>;
  /** How many schedules the tenant has. */
  countSchedules(tenant: string): Promise<number>;
  /** The tenant's schedules, by name; absent: every tenant's, by tenant and name (engine-internal reads). */
  listSchedules(tenant?: string): Promise<ScheduleRecord[]>;
  /**
   * Replaces the schedule (`s.tenant`, `s.name`) if its version is still `expectedVersion` and it is the one
   * created at `s.createdAt`; false otherwise (or gone, or deleted and created again under its name).
   */
  replaceSchedule(s: ScheduleRecord, expectedVersion: number): Promise<boolean>;
  /** Deletes the schedule and its ticks; false when there was none. */
  deleteSchedule(tenant: string, name: string): Promise<boolean>;
  /**
   * Schedules of every tenant not paused whose next tick is at or before
   * `now`, at most `limit`, soonest first and then by tenant and name (the
   * timers'): a total order, so a reader pages through them, each page after
   * the (nextAt, tenant, name) of the last row of the page before (`after`).
   */
  dueSchedules(now: number, limit: number, after?: Pick<ScheduleRecord, 'tenant' | 'name'> & { nextAt: number }): Promise<ScheduleRecord[]>;
  /**
   * The jobs in `queue` of the schedule's ticks at or after `from` and before `to` (epoch ms), found by
   * their tick keys (engine/schedules.ts `scheduleTickKey`): newest tick first, at most `limit`. One
   * range of the jobs' unique key (tenant, queue, idempotency key) per number of digits of the
   * ticks' times (one until the year 2286), read where a pass that submitted
   * ticks' jobs may have ended before it recorded them.
   */
  tickJobs(s: Pick<ScheduleRecord, 'tenant' | 'name' | 'createdAt'>, queue: string, from: number, to: number, limit: number): Promise<TickJob[]>;
  /** Records fired ticks (a tick recorded already is left as it is), keeping the newest `keep` per schedule. */
  recordTicks(ticks: readonly ScheduleTick[], keep: number): Promise<void>;
  /** A schedule's ticks, newest first. */
  listTicks(tenant: string, name: string, limit: number): Promise<ScheduleTick[]>;
}

// ---------------------------------------------------------------- workflows

/**
 * A workflow instance as stored (engine/workflows.ts): the state of the
 * user's machine (machines/workflow.ts) plus what the API shows. Like a job,
 * it has a gap-free history (`workflow_events`, seq 1 is the start) and
 * `version` is its last seq.
 */
export interface WorkflowRecord {
  /** A ULID. */
  id: string;
  tenant: string;
  /** The registered workflow's name. */
  name: string;
  /** The definition version the instance started with; it keeps it until it ends. */
  definitionVersion: number;
  input: unknown;
  state: PersistedWorkflow;
  /** The last event's seq (compare-and-set). */
  version: number;
  idempotencyKey: string | null;
  /** sha256 of the start request, to tell a repeated start from a conflicting one. */
  requestHash: string | null;
  createdAt: number;
  updatedAt: number;
}

/** What entered the instance: seq 1 is START; each later one is one accepted step. */
export type WorkflowEventType = 'START' | 'SIGNAL' | 'CHILD' | 'TIMER' | 'CANCEL' | 'MIGRATE' | 'MESSAGE';

export interface WorkflowEventRecord {
  workflowId: string;
  seq: number;
  type: WorkflowEventType;
  at: number;
  /**
   * What replay needs: START `{input, jobIds}`; otherwise the event as it
   * entered (machines/workflow.ts `WorkflowInputEvent`: SIGNAL `{type, event}`,
   * CHILD `{type, jobId, outcome}`, TIMER `{type, timerId}`, CANCEL
   * `{type, reason?}`) plus `jobIds`: the ids drawn for the step's
   * invocations, in order (one entered and left within the step got an id
   * but started no job). A SIGNAL sent with an Idempotency-Key also has
   * `idempotencyKey` (see `signalKeyOf`).
   */
  data: unknown;
  /** The instance's status after the event. */
  status: WorkflowStatus;
  /** The machine's state value after the event: present as read (the store writes the step's own). */
  value?: unknown;
}

/**
 * One step of an instance's history as the console's graph draws it: the
 * event without its data, except a MIGRATE's (`{type, from, to, ...}`, a few
 * numbers), which says the version before it; any other event's `data` is null.
 */
export type WorkflowHistoryStep = Pick<WorkflowEventRecord, 'seq' | 'type' | 'status' | 'data' | 'value'>;

/**
 * A workflow event with its global position, as the WebSocket stream reads
 * it: `id` is `workflow_events.id`, allocated when the row is inserted but
 * visible only once its transaction commits (as `StreamEventRecord.id`; see
 * `server/stream/cursor.ts`), plus the instance's name and tenant and the
 * machine's state value after the event.
 */
export interface WorkflowStreamEventRecord extends WorkflowEventRecord {
  id: number;
  /** The instance's workflow name. */
  name: string;
  /** The instance's tenant: a stream client gets only its own tenant's events. */
  tenant: string;
  /** The machine's state value after the event (`state.value` of the step's write). */
  value: unknown;
}

/** One step of an instance to commit, with everything it does to jobs, in one transaction. */
export interface WorkflowWrite {
  workflow: WorkflowRecord;
  /** The version read (compare-and-set); null for a new instance. */
  expectedVersion: number | null;
  event: WorkflowEventRecord;
  /** Child jobs to submit (each with `job.parent` set), as `JobStore.insert` would. */
  jobs: TransitionWrite[];
  /**
   * Child jobs to cancel: the store reads and locks them and lets `decide`
   * write their CANCEL transitions (jobs already ended get none), as
   * `JobStore.update` would, in the same transaction.
   */
  cancel: { ids: readonly string[]; decide: Decide<unknown> } | null;
  /** Messages the step sends other instances (`workflow_messages`), with the outbox rows that tell the driver of them. */
  messages?: { rows: WorkflowMessageRecord[]; outbox: OutboxMessage[] };
}

/**
 * A message from one instance to another (`sendToWorkflow`), stored with
 * the sender's step until the target's step takes it (and deletes it).
 */
export interface WorkflowMessageRecord {
  /** `<sender id>:<sender seq>:<n>`: unique, so a message is stored once. */
  messageId: string;
  targetId: string;
  /** The sender's tenant: only an instance of the same tenant takes it. */
  tenant: string;
  senderId: string;
  event: { type: string; [key: string]: unknown };
  createdAt: number;
}

/** What `updateWorkflow` reads with the locked instance, beside it. */
export interface WorkflowStepRead {
  /** A message waiting for the instance, given to `decide` (null when it is gone). */
  messageId?: string;
  /** The instance's event recorded by a signal with this Idempotency-Key, given to `decide` (null when none is). */
  signalKey?: string;
}

/** `updateWorkflow`'s decision on the instance as read (null: it does not exist), with what it read beside it. */
export type WorkflowDecide<T> = (
  workflow: WorkflowRecord | null, message: WorkflowMessageRecord | null, signalled: WorkflowEventRecord | null,
) => WorkflowDecision<T>;

/** The Idempotency-Key of a SIGNAL event's data, if it was sent with one (the store indexes it). */
export function signalKeyOf(e: Pick<WorkflowEventRecord, 'type' | 'data'>): string | null {
  if (e.type !== 'SIGNAL') return null;
  const key = (e.data as { idempotencyKey?: unknown } | null)?.idempotencyKey;
  return typeof key === 'string' ? key : null;
}

/** What `updateWorkflow`'s decide returns: the step to commit (or none), the caller's result, and whether the message read with it is taken. */
export interface WorkflowDecision<T> {
  write: WorkflowWrite | null;
  result: T;
  /** Delete the message read with the instance (`updateWorkflow`'s `messageId`), with or without a write. */
  consumeMessage?: boolean;
}

/** One page of `WorkflowStore.listWorkflowPage`. */
export interface WorkflowRecordPage {
  workflows: WorkflowRecord[];
  /** The next page's `afterId`, or null when no matching instance follows. */
  nextAfterId: string | null;
}

export interface WorkflowFilter {
  tenant: string;
  name?: string;
  status?: WorkflowStatus;
  limit: number;
  /** The id of the last instance of the previous page (newest first). */
  afterId?: string;
}

/** A workflow timer whose time has come. */
export interface DueWorkflowTimer {
  workflowId: string;
  timerId: string;
  dueAt: number;
}

export interface WorkflowStore {
  /**
   * Insert a new instance (version 1), its START event, its child jobs (with
   * their events, outbox rows and counts) and its timers in one transaction.
   * An instance whose (tenant, name, idempotencyKey) is taken is not inserted
   * (`duplicate-key`), and nothing else is written.
   */
  insertWorkflow(write: WorkflowWrite): Promise<InsertResult>;
  /**
   * Lock instance `id`, let `decide` compute the step from it (null when
   * there is no such instance; a null write: nothing to commit), and commit
   * the instance (compare-and-set), its event, its child jobs, the cancels
   * and its timers (the rows of `workflow_timers` become `state.timers`) in
   * one transaction. `decide` is pure and may run again after a lost race.
   * With `read.messageId`, that message is read and locked after the instance and
   * given to `decide` (null when it is gone: taken already, or never asked
   * for); `consumeMessage` deletes it in the same transaction. With
   * `read.signalKey`, the instance's event recorded by a signal with that
   * Idempotency-Key is read after the instance and given to `decide` (null
   * when there is none); a key is recorded once per instance.
   */
  updateWorkflow<T>(id: string, decide: WorkflowDecide<T>, read?: WorkflowStepRead): Promise<T>;
  /** The ids of messages waiting for instance `targetId`, in the order they were sent, at most `limit`. */
  pendingWorkflowMessages(targetId: string, limit: number): Promise<string[]>;
  /**
   * Targets of messages stored at or before `createdBefore` and still waiting
   * (ones the log lost), in id order after `afterTarget`, at most `limit`.
   */
  staleWorkflowMessageTargets(createdBefore: number, limit: number, afterTarget?: string): Promise<string[]>;
  /** The state values of a tenant's active instances of one definition version, at most `limit` (the console's counts per state). */
  activeWorkflowValues(tenant: string, name: string, definitionVersion: number, limit: number): Promise<unknown[]>;
  getWorkflow(id: string): Promise<WorkflowRecord | null>;
  findWorkflowByIdempotencyKey(tenant: string, name: string, key: string): Promise<WorkflowRecord | null>;
  /** An instance's events in seq order, from `afterSeq + 1`; at most `limit` when given. */
  getWorkflowEvents(id: string, afterSeq?: number, limit?: number): Promise<WorkflowEventRecord[]>;
  /** The seq of each of an instance's events from `afterSeq + 1`, in seq order, with the bytes its data and state value take; at most `limit` when given. */
  workflowEventSizes(id: string, afterSeq: number, limit?: number): Promise<{ seq: number; bytes: number }[]>;
  /**
   * The steps of an instance's history from `afterSeq + 1`, in seq order: each event's seq, type, status and the
   * state value after it, without its data (a signal's may be a megabyte) but a MIGRATE's; at most `limit` when given.
   */
  workflowEventSteps(id: string, afterSeq: number, limit?: number): Promise<WorkflowHistoryStep[]>;
  /** Newest first. */
  listWorkflows(filter: WorkflowFilter): Promise<WorkflowRecord[]>;
  /**
   * `listWorkflows`, bounded in bytes too (the API's pages), as
   * `JobStore.listJobPage`: the instances stop before the one whose stored
   * input and state would take the page past `maxBytes`, the first always comes.
   */
  listWorkflowPage(filter: WorkflowFilter, maxBytes: number): Promise<WorkflowRecordPage>;
  /** Timers of every instance due at or before `now`, soonest first (by dueAt, workflowId, timerId), after the timer `after`. */
  dueWorkflowTimers(now: number, limit: number, after?: DueWorkflowTimer): Promise<DueWorkflowTimer[]>;
  /** The ids of every tenant's active instances in id order, after `afterId`, at most `limit`. */
  activeWorkflowIds(limit: number, afterId?: string): Promise<string[]>;
  /** The state of each of these jobs now (a job that does not exist is absent): an instance's children in a few queries. */
  jobStates(ids: readonly string[]): Promise<Map<string, JobState>>;
  /**
   * Every instance's events after a global position (`workflow_events.id`),
   * in id order, with their instance's name and tenant (the WebSocket
   * stream's tail and replay). Only committed rows are seen, so the ids may
   * have gaps, as `JobStore.readEventsAfter`'s; with `throughId`, none
   * with `id > throughId`, as its.
   */
  readWorkflowEventsAfter(afterId: number, limit: number, throughId?: number): Promise<WorkflowStreamEventRecord[]>;
  /**
   * The id of each row `readWorkflowEventsAfter` would read, with the bytes
   * its data and state value take, without reading them: the stream reads
   * these first, then only the rows that fit its bytes (a signal's data may
   * be a megabyte).
   */
  workflowEventSizesAfter(afterId: number, limit: number): Promise<{ id: number; bytes: number }[]>;
  /** The highest committed `workflow_events.id` (0 for none). Lower ids may still be committing. */
  lastWorkflowEventId(): Promise<number>;
  /** The highest `workflow_events.id` ever handed out (0 for none), as `JobStore.lastIssuedEventId`. */
  lastIssuedWorkflowEventId(): Promise<number>;
  /**
   * Retention: delete up to `limit` ended instances of `status` whose last
   * step is at or before `updatedBefore`, oldest first, with their events and
   * timer rows, in one short transaction; their idempotency keys are free
   * afterwards. Their child jobs stay (jobs have their own retention).
   * Returns how many were deleted. Rejects `active`. A batch whose histories
   * take several transactions gives up before the next one once `signal`
   * aborts (retention stopping): what went stays gone, the rest waits.
   */
  purgeWorkflows(status: 'done' | 'error' | 'cancelled', updatedBefore: number, limit: number, signal?: AbortSignal): Promise<number>;
  /**
   * Delete one ended instance now (`DELETE /v1/workflows/:id`): what
   * retention deletes of it (its row, its whole history with its signals and
   * their keys, its timer rows), in one transaction, its status read under
   * the row's lock, so a step racing it either commits first (and the delete
   * sees what it left) or finds no instance. An `active` one is left alone.
   * Its idempotency key is free afterwards; its child jobs stay (jobs have
   * their own retention), as do messages it sent that their targets have not
   * taken yet.
   */
  deleteWorkflow(id: string): Promise<WorkflowDeleteResult>;
}

/** What deleting one instance did: `active` when it has not ended; then nothing is deleted. */
export type WorkflowDeleteResult =
  | { ok: true; status: Exclude<WorkflowStatus, 'active'> }
  | { ok: false; reason: 'not-found' }
  | { ok: false; reason: 'active' };

// ---------------------------------------------------------------- progress

/** The latest progress a running attempt reported (`ctx.progress`): not a transition, not kept in the history. */
export interface JobProgress {
  jobId: string;
  /**
   * The job's tenant: the stream sends progress only to that tenant's clients.
   * The store always sets it; a record without one (made by hand) goes to no client.
   */
  tenant?: string;
  type: string;
  queue: string;
  attempt: number;
  /** A number from 0 to 100, or a JSON object (engine/progress.ts). */
  value: unknown;
  /** When it was stored (epoch ms, the store's clock). */
  at: number;
}

export interface ProgressStore {
  /**
   * Stores the attempt's progress, replacing the job's previous one, if the
   * job is running that attempt; false otherwise (a late or zombie attempt:
   * nothing written). `valueJson` is the value's JSON text.
   */
  setProgress(jobId: string, attempt: number, valueJson: string, at: number): Promise<boolean>;
  /** The job's latest progress, or null. */
  getProgress(jobId: string): Promise<JobProgress | null>;
  /** Progress stored at `at` or later, by (at, jobId), at most `limit` (the stream's progress tail). */
  readProgressSince(at: number, limit: number): Promise<JobProgress[]>;
}

// ---------------------------------------------------------------- worker presence

/** A worker process as it registers itself (engine/worker-presence.ts). */
export interface WorkerRecord {
  id: string;
  host: string;
  pid: number;
  /** The queues it serves; `'*'`: every queue. */
  queues: string[];
  /** The job types it has a handler for. */
  types: string[];
  concurrency: number;
  startedAt: number;
  /** Its last heartbeat (epoch ms, the store's clock). */
  lastSeenAt: number;
}

export interface WorkerRegistryStore {
  /** Inserts or replaces the worker's row. */
  upsertWorker(w: WorkerRecord): Promise<void>;
  deleteWorker(id: string): Promise<void>;
  /** Every registered worker, by id (at most 1000). */
  listWorkers(): Promise<WorkerRecord[]>;
  /** Deletes rows last seen before `lastSeenBefore`; returns how many. */
  purgeWorkers(lastSeenBefore: number): Promise<number>;
}

// ---------------------------------------------------------------- log

/** A message read from the log. */
export interface LogRecord {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  value: string;
  headers: Record<string, string>;
}

export interface LogMessage {
  topic: string;
  key: string;
  value: string;
  headers: Record<string, string>;
}

export interface ConsumeOptions {
  topic: string;
  /** Consumers of one group share the partitions; each group gets every message. */
  groupId: string;
  /** Where a group with no committed offset starts. @defaultValue false (latest) */
  fromBeginning?: boolean;
  /**
   * Handle records of one partition, in offset order. Offsets are committed only
   * after it resolves; if it throws, or the process dies, the records are
   * delivered again (at-least-once). `batch` says what is left behind them.
   */
  handle(records: LogRecord[], batch: BatchInfo): Promise<void>;
  /**
   * Gives up the subscribing: aborted before `consume()` resolved (a group
   * join still in progress), the consumer is dropped without waiting for the
   * join to end, and `consume()` rejects with the signal's reason. Nothing
   * is lost: a record it may have been handed is not committed, and comes
   * again. Once `consume()` resolved it changes nothing (`stop()` ends the
   * subscription).
   */
  signal?: AbortSignal;
}

/** What a `handle` call is told beside its records. */
export interface BatchInfo {
  /**
   * Records of the same partition after these that the log held when it
   * fetched them (0: these were the last); newer records are not counted.
   */
  behind: number;
  /**
   * Aborted when the consumer's group rebalances while `handle` runs: the
   * log can hand the partitions over (and the new member join) only once
   * `handle` returned. A `handle` waiting on something of its own (a free
   * handler slot) stops waiting and throws; the records it did not finish
   * are not committed and come again after the rejoin, to whichever member
   * then holds the partition, without the pause that follows a failed
   * `handle`. Absent on a log with no rebalance to tell of.
   */
  signal?: AbortSignal;
}

export interface Subscription {
  /** Stop consuming; resolves once no `handle` call is running. */
  stop(): Promise<void>;
}

/** The delivery channel (Kafka, or the in-process log). At-least-once. */
export interface EventLog {
  /** Create the topics if missing. */
  ensureTopics(): Promise<void>;
  /** Resolves once every message is acknowledged durably (acks: all). Per-key order is kept. */
  publish(messages: LogMessage[]): Promise<void>;
  /**
   * The partition a key maps to on `topic` (logical name), as `publish` picks
   * it: so messages whose keys map to one partition can travel as one record
   * keyed by any of them (engine/transition-records.ts). Creates the topic if
   * missing.
   */
  partitioner(topic: string): Promise<(key: string) => number>;
  consume(options: ConsumeOptions): Promise<Subscription>;
  /**
   * The partitions of `topic` (logical name) on which the consumer group
   * `groupId` (logical name, as given to `consume`) has not yet read a message
   * published at or before `before` (epoch ms): one the group has not
   * committed past, counting from the oldest message the log still holds
   * when the group committed nothing there (where a worker's group starts).
   * Empty for a topic that does not exist (never creates one), and when the
   * group committed on no partition of it: the log cannot tell whether that
   * group is the one that will read it.
   */
  unreadBefore(topic: string, groupId: string, before: number): Promise<ReadonlySet<number>>;
  /** The topics that exist (logical names: without the log's prefix, and only those under it). */
  listTopics(): Promise<string[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- handlers

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Whether a line of this level is written (lets a hot loop skip building lines nobody reads). @defaultValue treat as true */
  isLevelEnabled?(level: 'debug' | 'info' | 'warn' | 'error'): boolean;
}

/**
 * What a handler gets besides its payload. With tracing on (README.md,
 * "Tracing"), the attempt's span is the active OpenTelemetry span while the
 * handler runs: `trace.getActiveSpan()` returns it, and spans the handler
 * starts (`tracer.startActiveSpan(...)`) are its children.
 */
export interface HandlerContext {
  jobId: string;
  /** The tenant whose key submitted the job (`default` without keys). */
  tenant: string;
  type: string;
  queue: string;
  attempt: number;
  /** Stable across attempts and redrives of one job: key idempotent effects by it. */
  idempotencyKey: string;
  /**
   * Aborted on timeout, cancel, a lost lease (heartbeats refused, or none
   * getting through before the lease ends) and shutdown; `signal.reason` says
   * which. The attempt ends then; a handler that ignores it runs on, and
   * keeps its worker's handler slot until it returns. It is not aborted
   * when the attempt ends otherwise (the handler returned or threw).
   */
  signal: AbortSignal;
  /**
   * Extends the lease; rejects if the attempt is no longer this worker's (or
   * the write failed). Not awaited, its rejection is dropped: it does not
   * end the process as an unhandled rejection would.
   */
  heartbeat(): Promise<void>;
  /** The attempt's logger: each line carries `jobId`, `type` and `attempt`. */
  log: Logger;
  /**
   * Reports progress: a number from 0 to 100, or a JSON object of at most
   * 1 KiB. Throws a TypeError or RangeError at once for anything else. The
   * latest value is stored on the job (at most one write every
   * PROGRESS_INTERVAL_MS, the last value always) and sent on the stream; the
   * promise resolves once it is stored, or dropped (a write that failed is
   * logged, never thrown).
   */
  progress(value: number | Record<string, unknown>): Promise<void>;
}

/** A job handler: resolves with the result, or throws (NonRetryableError: no retries). */
export type Handler<P = any, R = unknown> = (payload: P, ctx: HandlerContext) => Promise<R>;

/** What a submit asks for, after validation and defaults. */
export interface JobSpec {
  type: string;
  payload: unknown;
  queue: string;
  runAt?: number;
  maxAttempts: number;
  backoff: BackoffPolicy;
  timeoutMs: number;
  priority: number;
  idempotencyKey?: string;
  /** The trace the job joins (the submit request's span); not part of the idempotency hash. */
  traceContext?: TraceContext;
  /** Counts the job's attempts against this key's limit (engine/limits.ts). */
  concurrencyKey?: string;
  /** The tenant the job belongs to (the submitting key's). @defaultValue DEFAULT_TENANT */
  tenant?: string;
  /** The workflow invocation the job runs (engine/workflows.ts). */
  parent?: JobParent;
  /**
   * The fields the submitter left out, filled in from this server's defaults
   * (`ATS_DEFAULT_*`). A submit sent again with its idempotency key to an
   * instance with other defaults is the same submit: those fields are then
   * taken as the job has them (`TransitionService`). Not stored. @defaultValue none
   */
  defaulted?: readonly DefaultedField[];
}

/** A field of a submit that the server fills in when it is left out (its queue aside: the key is looked up in it). */
export type DefaultedField = 'maxAttempts' | 'backoff' | 'timeoutMs' | 'priority';
