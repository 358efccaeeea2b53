/**
 * The one mapping between engine records and SQL rows, for both dialects.
 * JSON is stored as text everywhere (MySQL returns JSON columns as objects,
 * MariaDB as strings: text avoids the difference).
 */
import { fromStored, project } from '../../machines/lifecycle.js';
import type { JobState } from '../../machines/job.machine.js';
import type {
  DueJob, LostDispatch, JobEventRecord, JobParent, JobRecord, OutboxRow, StoredEventType, StreamEventRecord, TraceContext,
} from '../../engine/ports.js';

/** A row as a driver returns it: column name to value. */
export type Row = Record<string, unknown>;

/**
 * Columns of `jobs` a new job writes, in the order `jobValues` gives them.
 * Not `result` and `last_error`: the snapshot holds both (a job's result is
 * stored once there, besides its history event), and nothing reads those
 * columns; they stay NULL for jobs written since.
 */
export const JOB_COLUMNS = [
  'id', 'type', 'queue', 'state', 'version', 'attempt', 'due_at', 'lease_until', 'priority', 'timeout_ms',
  'idempotency_key', 'request_hash', 'payload', 'snapshot', 'created_at', 'updated_at', 'trace_context', 'concurrency_key', 'tenant',
  'parent',
] as const;

/** Columns read back to build a `JobRecord` (the projections live in the snapshot too). */
export const JOB_SELECT =
  'id, tenant, type, queue, version, priority, timeout_ms, idempotency_key, request_hash, payload, snapshot, created_at, updated_at, trace_context, concurrency_key, parent';

/** Columns of `job_events` an event writes, in the order `eventValues` gives them (`tenant`, its job's: migration 0028). */
export const EVENT_COLUMNS = ['job_id', 'seq', 'type', 'from_state', 'to_state', 'at', 'data', 'tenant'] as const;
export const EVENT_SELECT = 'job_id, seq, type, from_state, to_state, at, data';

/** JSON text of a value; `undefined` is stored as `null` (it has no JSON form). */
export const toJson = (v: unknown): string => JSON.stringify(v ?? null);

/** BIGINT columns may come back as strings (mysql2 beyond 2^53, or COUNT on some servers). */
export const toNum = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const toNumOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : toNum(v));

/** The projection columns of a job, as `UPDATE_JOB_CAS` sets them: state, version, attempt, due_at, lease_until. */
export function projectionValues(job: JobRecord): unknown[] {
  const p = project(job.snapshot);
  return [p.state, job.version, p.attempt, p.dueAt, p.leaseUntil];
}

/** All `jobs` columns of a new job, in `JOB_COLUMNS` order. */
export function jobValues(job: JobRecord): unknown[] {
  const [state, version, attempt, dueAt, leaseUntil] = projectionValues(job);
  return [
    job.id, job.type, job.queue, state, version, attempt, dueAt, leaseUntil, job.priority, job.timeoutMs,
    job.idempotencyKey, job.requestHash, toJson(job.payload), JSON.stringify(job.snapshot), job.createdAt, job.updatedAt,
    job.traceContext ? JSON.stringify(job.traceContext) : null, job.concurrencyKey ?? null, job.tenant,
    job.parent ? JSON.stringify({ workflowId: job.parent.workflowId, invokeId: job.parent.invokeId }) : null,
  ];
}

export function rowToJob(r: Row): JobRecord {
  const job: JobRecord = {
    id: String(r.id),
    tenant: String(r.tenant),
    type: String(r.type),
    queue: String(r.queue),
    payload: JSON.parse(String(r.payload)),
    priority: toNum(r.priority),
    timeoutMs: toNum(r.timeout_ms),
    idempotencyKey: (r.idempotency_key as string | null) ?? null,
    requestHash: (r.request_hash as string | null) ?? null,
    version: toNum(r.version),
    // A snapshot stored before snapshots carried their machine version reads as version 1.
    snapshot: fromStored(JSON.parse(String(r.snapshot))),
    createdAt: toNum(r.created_at),
    updatedAt: toNum(r.updated_at),
  };
  // NULL unless the job was submitted with a concurrency key (migration 0011).
  if (r.concurrency_key !== null && r.concurrency_key !== undefined) job.concurrencyKey = String(r.concurrency_key);
  // NULL unless a workflow started the job (migration 0015).
  if (r.parent !== null && r.parent !== undefined) job.parent = toParent(String(r.parent));
  // NULL unless the job was submitted while tracing was on (migration 0006).
  if (r.trace_context !== null && r.trace_context !== undefined) {
    const trace = toTraceContext(String(r.trace_context));
    if (trace) job.traceContext = trace;
  }
  return job;
}

/** The stored trace context, or undefined when the text is not one (the job then simply starts a new trace). */
function toTraceContext(text: string): TraceContext | undefined {
  let v: { traceparent?: unknown; tracestate?: unknown } | null;
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    return undefined;
  }
  if (!v || typeof v.traceparent !== 'string') return undefined;
  return typeof v.tracestate === 'string' ? { traceparent: v.traceparent, tracestate: v.tracestate } : { traceparent: v.traceparent };
}

/** The stored parent: written by `jobValues` only, so always the two ids. */
export function toParent(text: string): JobParent {
  const v = JSON.parse(text) as { workflowId: unknown; invokeId: unknown };
  return { workflowId: String(v.workflowId), invokeId: String(v.invokeId) };
}

/** The `EVENT_COLUMNS` values of an event of a job of `tenant`. */
export function eventValues(e: JobEventRecord, tenant: string): unknown[] {
  return [e.jobId, e.seq, e.type, e.from, e.to, e.at, toJson(e.data), tenant];
}

export function rowToEvent(r: Row): JobEventRecord {
  return {
    jobId: String(r.job_id),
    seq: toNum(r.seq),
    type: r.type as StoredEventType,
    from: (r.from_state as JobState | null) ?? null,
    to: r.to_state as JobState,
    at: toNum(r.at),
    data: JSON.parse(String(r.data)),
  };
}

/** A row of `SELECT_EVENTS_AFTER`: the event, its global id, its job's type, queue and tenant. */
export function rowToStreamEvent(r: Row): StreamEventRecord {
  return { id: toNum(r.id), ...rowToEvent(r), jobType: String(r.job_type), queue: String(r.job_queue), tenant: String(r.job_tenant) };
}

const UNPARSED = Symbol('unparsed');

/**
 * A message as read for the relay (see outbox.ts): the payload stays JSON
 * text (`value`), which is what the log gets, and is parsed only if someone
 * reads `payload` (the relay does for dispatches, for their job ids).
 */
export class StoredOutboxRow implements OutboxRow {
  private parsed: unknown = UNPARSED;
  constructor(
    readonly id: number, readonly topic: string, readonly key: string, readonly value: string,
    readonly headers: Record<string, string>, readonly createdAt: number, readonly publishedAt: number | null,
  ) {}

  get payload(): unknown {
    if (this.parsed === UNPARSED) this.parsed = JSON.parse(this.value);
    return this.parsed;
  }
}

/** Parsed header objects by their text: the engine writes a handful of distinct ones. Shared, so frozen. */
const headerCache = new Map<string, Readonly<Record<string, string>>>();
const HEADER_CACHE_MAX = 64;

export function parseHeaders(text: string): Record<string, string> {
  let h = headerCache.get(text);
  if (!h) {
    h = Object.freeze(JSON.parse(text) as Record<string, string>);
    if (headerCache.size < HEADER_CACHE_MAX) headerCache.set(text, h);
  }
  return h as Record<string, string>;
}

export function rowToOutbox(r: Row): OutboxRow {
  return new StoredOutboxRow(
    toNum(r.id), String(r.topic), String(r.msg_key), String(r.payload), parseHeaders(String(r.headers)),
    toNum(r.created_at), toNumOrNull(r.published_at),
  );
}

export function rowToDue(r: Row): DueJob {
  return { id: String(r.id), state: r.state as JobState, attempt: toNum(r.attempt), version: toNum(r.version) };
}

export function rowToLostDispatch(r: Row): LostDispatch {
  return { ...rowToDue(r), type: String(r.type), queue: String(r.queue), priority: toNum(r.priority), lastTransitionAt: toNum(r.last_transition_at) };
}
