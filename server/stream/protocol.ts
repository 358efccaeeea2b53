/**
 * The stream protocol v1 (docs/stream.md): parsing what clients send, and
 * the shape of what the server sends. Parsing never throws: a bad message
 * becomes an `error` message for that client, never a crash.
 */
import { JOB_STATES, type JobState } from '../../machines/job.machine.js';
import { isName, MAX_NAME_CHARS } from '../../machines/job-bounds.js';
import { ERRORS, isAtsError, quoteCut, type ErrorCode } from '../../engine/errors.js';
import type { JobProgress, Stats, StreamEventRecord, WorkflowStreamEventRecord } from '../../engine/ports.js';
import type { WorkflowStatus } from '../../machines/workflow.js';
import { MAX_WORKFLOW_NAME, ULID_PATTERN } from '../schemas.js';
import { decodeCursorPosition, encodeStreamCursor, type CursorSource } from './cursor.js';

/**
 * Which transitions a subscription wants; absent fields match everything.
 * A subscription follows job transitions (`event` messages) or workflow
 * transitions (`workflow` messages), never both: the workflow fields
 * (`workflows`, `workflowId`, `workflowName`) choose the second, and cannot
 * be mixed with the job fields (`jobId`, `type`, `queue`, `states`). A client
 * that never names a workflow field gets no workflow message.
 */
export interface StreamFilter {
  jobId?: string;
  /** The job's type (`jobType` in event messages). */
  type?: string;
  queue?: string;
  /** Transitions into one of these states. */
  states?: readonly JobState[];
  /** Workflow transitions instead of job transitions; set by the parser whenever `workflowId` or `workflowName` is. */
  workflows?: true;
  /** One workflow instance. */
  workflowId?: string;
  /** Instances of this workflow name (`name` in workflow messages). */
  workflowName?: string;
}

/** The table a filter's subscription follows (and its cursors name positions in). */
export const sourceOf = (filter: StreamFilter): CursorSource => (filter.workflows === true ? 'workflows' : 'jobs');

/**
 * `{"kind":"event",...}`: one transition as the server sends it (the wire
 * shape; the CLI, the UI and the tests import this type).
 */
export interface StreamEventMessage {
  kind: 'event';
  cursor: string;
  jobId: string;
  seq: number;
  type: string;
  from: string | null;
  to: string;
  /** ISO 8601. */
  at: string;
  data: unknown;
  jobType: string;
  queue: string;
}

/**
 * `{"kind":"workflow",...}`: one step of a workflow instance (one
 * `workflow_events` row), sent to subscriptions with a workflow filter.
 */
export interface StreamWorkflowMessage {
  kind: 'workflow';
  cursor: string;
  workflowId: string;
  /** The instance's workflow name. */
  name: string;
  /** The event's number in the instance's history (1 is the start, then 2, 3… without a gap). */
  seq: number;
  /** `START`, `SIGNAL`, `MESSAGE`, `CHILD`, `TIMER`, `CANCEL` or `MIGRATE`. */
  type: string;
  /** ISO 8601. */
  at: string;
  /** The instance's status after the event. */
  status: WorkflowStatus;
  /** The machine's state value after the event. */
  value: unknown;
  /** The event as the history records it (`GET /v1/workflows/:id/events`). */
  data: unknown;
}

/** `{"kind":"subscribed",cursor}`: the subscription holds from `cursor` on. */
export interface StreamSubscribedMessage {
  kind: 'subscribed';
  cursor: string;
}

/** `{"kind":"stats",...}`: job counts, on request and every `everyMs`. */
export interface StreamStatsMessage {
  kind: 'stats';
  byState: Stats['byState'];
  byType: Stats['byType'];
  byQueue: Stats['byQueue'];
  /** ISO 8601. */
  at: string | null;
}

/** `{"kind":"error",code,message}`: a refused message (the subscription in force stays). */
export interface StreamErrorMessage {
  kind: 'error';
  code: ErrorCode;
  message: string;
}

/**
 * `{"kind":"insight",...}`: the advisor detected a change in a job type's
 * failure rate or run time (docs/advisor.md). Sent live to subscribed clients
 * whose filter's `type` and `queue` (if any) match; not replayed.
 */
export interface StreamInsightMessage {
  kind: 'insight';
  insight: 'anomaly';
  type: string;
  queue: string;
  metric: 'failure-rate' | 'duration';
  /** The level before and now: a failure fraction, or a run time in ms. */
  baseline: number;
  observed: number;
  /** ISO 8601. */
  at: string;
}

/**
 * `{"kind":"progress",...}`: the latest progress a running attempt reported
 * (`ctx.progress`); not a transition, so it carries no cursor and is not
 * replayed.
 */
export interface StreamProgressMessage {
  kind: 'progress';
  jobId: string;
  jobType: string;
  queue: string;
  attempt: number;
  /** A number from 0 to 100, or a JSON object. */
  progress: unknown;
  /** ISO 8601. */
  at: string;
}

/** Everything the server sends. */
export type StreamServerMessage =
  | StreamEventMessage | StreamWorkflowMessage | StreamSubscribedMessage | StreamStatsMessage | StreamErrorMessage | StreamInsightMessage | StreamProgressMessage
  | { kind: 'pong' };

/**
 * What a client may send. `subscribe.after` is the position its cursor stands
 * for, in the table its filter follows (`sourceOf`). A cursor is refused with ATS_ERR_BAD_CURSOR when it is not of the
 * server's format (here) or when it lies beyond every event issued so far
 * (the session checks that against the table), or when it is a position in
 * the other table: a forged cursor never
 * subscribes at a position that live events would silently wait behind.
 * After a refusal the subscription in force, if any, stays.
 */
export type ClientMessage =
  | { op: 'subscribe'; filter: StreamFilter; after?: number }
  | { op: 'stats'; everyMs?: number }
  | { op: 'ping' };

/** A client mistake, sent back as `{"kind":"error",code,message}`. */
export interface ProtocolError {
  code: ErrorCode;
  message: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: ProtocolError };

/** Shortest `everyMs` for periodic stats; 0 stops them. */
export const MIN_STATS_EVERY_MS = 250;
/** Longest `everyMs` for periodic stats (an hour). */
export const MAX_STATS_EVERY_MS = 3_600_000;
/**
 * A type or queue is 1 to MAX_NAME_CHARS of NAME_PATTERN (isName), a workflow's name 1 to
 * MAX_WORKFLOW_NAME of it, as REST's filters take them (server/schemas.ts): a
 * name no job or instance can have would subscribe to nothing, unseen.
 */
const nameProblem = (field: string, what: string, v: unknown, max: number): string | null =>
  isName(v, max) ? null : `${field} must be ${what}: 1 to ${max} of A-Z a-z 0-9 . _ : -`;
/** The most of a message's own text an error quotes: a frame may hold 16 KiB of it. */
const MAX_QUOTED = 50;
const quoted = (text: string): string => quoteCut(text, MAX_QUOTED);
const ULID = new RegExp(ULID_PATTERN);

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = (code: ErrorCode, message: string): { ok: false; error: ProtocolError } => ({ ok: false, error: { code, message } });
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One client frame → a message, or the error to answer. `bytes` is the frame's size. */
export function parseClientMessage(text: string, bytes: number, maxBytes: number): Parsed<ClientMessage> {
  if (bytes > maxBytes) return fail('ATS_ERR_VALIDATION', `message of ${bytes} bytes is larger than the limit of ${maxBytes}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail('ATS_ERR_MALFORMED_JSON', 'message is not valid JSON');
  }
  if (!isObject(raw)) return fail('ATS_ERR_VALIDATION', 'message must be a JSON object with an "op"');
  switch (raw.op) {
    case 'subscribe':
      return parseSubscribe(raw);
    case 'stats':
      return parseStats(raw);
    case 'ping':
      return onlyKeys(raw, ['op']) ?? ok({ op: 'ping' });
    default:
      return fail('ATS_ERR_VALIDATION', `unknown op ${quoted(String(JSON.stringify(raw.op)))}: expected subscribe, stats or ping`);
  }
}

function parseSubscribe(raw: Record<string, unknown>): Parsed<ClientMessage> {
  const bad = onlyKeys(raw, ['op', 'filter', 'cursor']);
  if (bad) return bad;
  const filter = parseFilter(raw.filter ?? {});
  if (!filter.ok) return filter;
  if (raw.cursor === undefined || raw.cursor === null) return ok({ op: 'subscribe', filter: filter.value });
  if (typeof raw.cursor !== 'string') return fail('ATS_ERR_VALIDATION', 'cursor must be a string');
  const after = decodeCursor(raw.cursor, sourceOf(filter.value));
  return after.ok ? ok({ op: 'subscribe', filter: filter.value, after: after.value }) : after;
}

function parseStats(raw: Record<string, unknown>): Parsed<ClientMessage> {
  const bad = onlyKeys(raw, ['op', 'everyMs']);
  if (bad) return bad;
  const every = raw.everyMs;
  if (every === undefined) return ok({ op: 'stats' });
  const valid = typeof every === 'number' && Number.isInteger(every) && (every === 0 || (every >= MIN_STATS_EVERY_MS && every <= MAX_STATS_EVERY_MS));
  if (!valid) return fail('ATS_ERR_VALIDATION', `everyMs must be 0 (stop) or an integer from ${MIN_STATS_EVERY_MS} to ${MAX_STATS_EVERY_MS}`);
  return ok({ op: 'stats', everyMs: every });
}

const JOB_FIELDS = ['jobId', 'type', 'queue', 'states'] as const;
const WORKFLOW_FIELDS = ['workflows', 'workflowId', 'workflowName'] as const;
/** What the stream's query string takes: a subscribe's fields (docs/asyncapi.yaml names them too). */
export const QUERY_KEYS = [...JOB_FIELDS, ...WORKFLOW_FIELDS, 'cursor'] as const;

/** A filter object as sent in a subscribe message. */
export function parseFilter(raw: unknown): Parsed<StreamFilter> {
  if (!isObject(raw)) return fail('ATS_ERR_VALIDATION', 'filter must be an object');
  const bad = onlyKeys(raw, [...JOB_FIELDS, ...WORKFLOW_FIELDS], 'filter');
  if (bad) return bad;
  const has = (k: string) => raw[k] !== undefined;
  if (WORKFLOW_FIELDS.some(has)) {
    if (JOB_FIELDS.some(has)) {
      return fail('ATS_ERR_VALIDATION', `a filter is of job transitions (${JOB_FIELDS.join(', ')}) or of workflow transitions (${WORKFLOW_FIELDS.join(', ')}), not both: subscribe on another connection for the other`);
    }
    return parseWorkflowFilter(raw);
  }
  const filter: StreamFilter = {};
  if (raw.jobId !== undefined) {
    if (typeof raw.jobId !== 'string' || !ULID.test(raw.jobId)) return fail('ATS_ERR_VALIDATION', 'filter.jobId must be a job id (ULID)');
    filter.jobId = raw.jobId;
  }
  for (const key of ['type', 'queue'] as const) {
    const v = raw[key];
    if (v === undefined) continue;
    const problem = nameProblem(`filter.${key}`, key === 'type' ? 'a job type' : 'a queue name', v, MAX_NAME_CHARS);
    if (problem !== null) return fail('ATS_ERR_VALIDATION', problem);
    filter[key] = v as string;
  }
  if (raw.states !== undefined) {
    const states = raw.states;
    const known = (s: unknown): s is JobState => typeof s === 'string' && (JOB_STATES as readonly string[]).includes(s);
    if (!Array.isArray(states) || states.length === 0 || !states.every(known)) {
      return fail('ATS_ERR_VALIDATION', `filter.states must be a non-empty list of: ${JOB_STATES.join(', ')}`);
    }
    filter.states = [...new Set(states)];
  }
  return ok(filter);
}

/** The workflow fields of a filter: `workflows: true` (implied by the others), `workflowId`, `workflowName`. */
function parseWorkflowFilter(raw: Record<string, unknown>): Parsed<StreamFilter> {
  if (raw.workflows !== undefined && raw.workflows !== true) {
    return fail('ATS_ERR_VALIDATION', 'filter.workflows must be true (leave it out for job transitions)');
  }
  const filter: StreamFilter = { workflows: true };
  if (raw.workflowId !== undefined) {
    if (typeof raw.workflowId !== 'string' || !ULID.test(raw.workflowId)) return fail('ATS_ERR_VALIDATION', 'filter.workflowId must be a workflow id (ULID)');
    filter.workflowId = raw.workflowId;
  }
  const name = raw.workflowName;
  if (name !== undefined) {
    const problem = nameProblem('filter.workflowName', 'a workflow name', name, MAX_WORKFLOW_NAME);
    if (problem !== null) return fail('ATS_ERR_VALIDATION', problem);
    filter.workflowName = name as string;
  }
  return ok(filter);
}

/**
 * A subscription in the query string (`?jobId=&type=&queue=&states=a,b&cursor=`,
 * or `?workflows=true&workflowId=&workflowName=&cursor=`):
 * null when none of those keys is there with a value (then the client
 * subscribes by message). Empty values count as absent; any other key is
 * refused, as REST refuses an unknown query parameter (a misspelt `state`
 * would otherwise widen the subscription unseen).
 */
export function parseQuerySubscribe(query: Record<string, unknown>): Parsed<Extract<ClientMessage, { op: 'subscribe' }>> | null {
  const keys = QUERY_KEYS;
  const unknown = Object.keys(query).find((k) => !(keys as readonly string[]).includes(k));
  if (unknown !== undefined) {
    const name = unknown.length > 64 ? `${unknown.slice(0, 64)}…` : unknown;
    return fail('ATS_ERR_VALIDATION', `unknown query parameter ${JSON.stringify(name)}: the stream takes ${keys.slice(0, -1).join(', ')} and ${keys.at(-1)}`);
  }
  const given: Record<string, unknown> = {};
  for (const k of keys) {
    const v = query[k];
    if (Array.isArray(v)) return fail('ATS_ERR_VALIDATION', `query parameter ${k} is given more than once`);
    if (typeof v === 'string' && v !== '') given[k] = queryValue(k, v);
  }
  // Only empty values (`?type=`): as if none was given.
  if (Object.keys(given).length === 0) return null;
  const { cursor, ...filter } = given;
  return parseSubscribe({ op: 'subscribe', filter, cursor }) as Parsed<Extract<ClientMessage, { op: 'subscribe' }>>;
}

/** `states` is a comma-separated list; `workflows=true` is the filter's `true` (any other text is refused by the filter's check). */
const queryValue = (key: string, v: string): unknown => {
  if (key === 'states') return v.split(',').map((s) => s.trim());
  if (key === 'workflows') return v === 'true' ? true : v;
  return v;
};

/** A cursor's position, if it is one of `source`'s table. */
function decodeCursor(cursor: string, source: CursorSource): Parsed<number> {
  try {
    const position = decodeCursorPosition(cursor);
    if (position.source !== source) {
      const [of, by] = source === 'jobs' ? ['workflow', 'job'] : ['job', 'workflow'];
      return fail('ATS_ERR_BAD_CURSOR', `The stream cursor is one of ${of} transitions; it cannot resume a subscription to ${by} transitions`);
    }
    return ok(position.id);
  } catch (err) {
    if (isAtsError(err)) return fail(err.code, err.message);
    throw err;
  }
}

function onlyKeys(raw: Record<string, unknown>, allowed: readonly string[], where = 'message'): { ok: false; error: ProtocolError } | null {
  const extra = Object.keys(raw).filter((k) => !allowed.includes(k));
  return extra.length === 0 ? null : fail('ATS_ERR_VALIDATION', `unknown ${where} field(s) ${quoted(extra.join(', '))}; allowed: ${allowed.join(', ')}`);
}

/** Does the job event pass the filter? Never for a filter of workflow transitions. */
export function matches(filter: StreamFilter, e: StreamEventRecord): boolean {
  return filter.workflows !== true
    && (filter.jobId === undefined || filter.jobId === e.jobId)
    && wantsTypeAndQueue(filter, e.jobType, e.queue)
    && (filter.states === undefined || filter.states.includes(e.to));
}

/** Does the workflow event pass the filter? Only a filter of workflow transitions wants any. */
export function matchesWorkflow(filter: StreamFilter, e: WorkflowStreamEventRecord): boolean {
  return filter.workflows === true
    && (filter.workflowId === undefined || filter.workflowId === e.workflowId)
    && (filter.workflowName === undefined || filter.workflowName === e.name);
}

const wantsTypeAndQueue = (filter: StreamFilter, type: string, queue: string): boolean =>
  (filter.type === undefined || filter.type === type) && (filter.queue === undefined || filter.queue === queue);

// ---------------------------------------------------------------- server → client

/** `{"kind":"event",...}` as text: built once per event, sent to every client that wants it. */
export function eventMessage(e: StreamEventRecord): string {
  const message: StreamEventMessage = {
    kind: 'event', cursor: encodeStreamCursor(e.id), jobId: e.jobId, seq: e.seq, type: e.type, from: e.from, to: e.to,
    at: isoTime(e.at) as string, data: e.data, jobType: e.jobType, queue: e.queue,
  };
  return JSON.stringify(message);
}

/** `{"kind":"workflow",...}` as text: built once per event, sent to every client that wants it. */
export function workflowMessage(e: WorkflowStreamEventRecord): string {
  const message: StreamWorkflowMessage = {
    kind: 'workflow', cursor: encodeStreamCursor(e.id, 'workflows'), workflowId: e.workflowId, name: e.name, seq: e.seq, type: e.type,
    at: isoTime(e.at) as string, status: e.status, value: e.value, data: e.data,
  };
  return JSON.stringify(message);
}

/** ISO 8601 of epoch ms; a value out of Date's range (a corrupt row) gives null instead of a throw mid fan-out. */
const isoTime = (ms: number): string | null => (Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : null);

const message = (m: StreamServerMessage): string => JSON.stringify(m);

/** `{"kind":"insight",...}` as text, built once for every client that wants it. */
export function insightMessage(a: Omit<StreamInsightMessage, 'kind' | 'insight' | 'at'> & { at: number }): string {
  const m: StreamInsightMessage = {
    kind: 'insight', insight: 'anomaly', type: a.type, queue: a.queue, metric: a.metric, baseline: a.baseline, observed: a.observed, at: isoTime(a.at) as string,
  };
  return message(m);
}

/** An insight is about a type and queue, not a job: a subscription to one job (or to workflows) gets none. */
export function wantsInsight(filter: StreamFilter, a: { type: string; queue: string }): boolean {
  return filter.workflows !== true && filter.jobId === undefined && wantsTypeAndQueue(filter, a.type, a.queue);
}

export function progressMessage(p: JobProgress): string {
  const m: StreamProgressMessage = {
    kind: 'progress', jobId: p.jobId, jobType: p.type, queue: p.queue, attempt: p.attempt, progress: p.value, at: isoTime(p.at) as string,
  };
  return message(m);
}

/** Progress is of a running job: a filter on states gets it only when it names `running`; a filter of workflows none. */
export function wantsProgress(filter: StreamFilter, p: JobProgress): boolean {
  return filter.workflows !== true
    && (filter.jobId === undefined || filter.jobId === p.jobId)
    && wantsTypeAndQueue(filter, p.type, p.queue)
    && (filter.states === undefined || filter.states.includes('running'));
}

export const subscribedMessage = (position: number, source: CursorSource = 'jobs'): string =>
  message({ kind: 'subscribed', cursor: encodeStreamCursor(position, source) });

export const statsMessage = (s: Stats, at: number): string =>
  message({ kind: 'stats', byState: s.byState, byType: s.byType, byQueue: s.byQueue, at: isoTime(at) });

export const errorMessage = (e: ProtocolError): string => message({ kind: 'error', code: e.code, message: e.message });

export const PONG_MESSAGE = message({ kind: 'pong' });

/** An error message with the registry's text, for failures that are ours, not the client's. */
export const serverErrorMessage = (code: ErrorCode): string => errorMessage({ code, message: ERRORS[code].message });
