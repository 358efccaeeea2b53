/**
 * The shape of every message the engine publishes. Built when a transition
 * commits (into the outbox), so they are final here; the relay only adds the
 * outbox id header. The contract for other consumers is docs/asyncapi.yaml
 * (prose: docs/kafka-messages.md); the tests check every message against it.
 */
import type { Effects } from '../machines/lifecycle.js';
import { laneTopic } from './lanes.js';
import { TOPICS, type JobEventRecord, type JobRecord, type OutboxMessage } from './ports.js';

/** On `ats.events`: one accepted transition. */
export interface TransitionMessage {
  jobId: string;
  seq: number;
  type: JobEventRecord['type'];
  from: JobEventRecord['from'];
  to: JobEventRecord['to'];
  at: number;
  data: JobEventRecord['data'];
  jobType: string;
  queue: string;
  /** The job's tenant (engine/auth.ts). Absent in messages written before tenants existed: read as `default`. */
  tenant: string;
}

/**
 * On `ats.events` (`ats-kind: transitions`, the default format): the
 * transitions of one publish whose jobs map to one partition, in commit
 * order (engine/transition-records.ts).
 */
export interface TransitionsMessage {
  transitions: TransitionMessage[];
}

/**
 * On the job's dispatch lane (`ats.dispatch`, or another lane of its queue and
 * priority: engine/lanes.ts): start attempt `attempt` of the job.
 */
export interface DispatchMessage {
  jobId: string;
  attempt: number;
  type: string;
  queue: string;
  /** The job's tenant. Absent in messages written before tenants existed: read as `default`. */
  tenant?: string;
  priority: number;
  /** Which dispatch of the job this is (1, 2, ...): a re-dispatch has a higher number. */
  dispatch: number;
}

/** A dispatch's priority; 0 when it carries none that is a number. */
export const dispatchPriority = (m: Pick<DispatchMessage, 'priority'>): number => (Number.isFinite(m.priority) ? m.priority : 0);

/**
 * On the job's dispatch lane too (header `ats-kind: cancel`): attempt `attempt`
 * of the job was cancelled while running. On the lane and keyed by job id like
 * the job's dispatches, so it lands on the partition, and normally the worker,
 * that took them; the
 * worker aborts the handler only if that very attempt runs there.
 */
export interface CancelMessage {
  kind: 'cancel';
  jobId: string;
  attempt: number;
  reason: string;
}

/**
 * Longest payload (in characters of JSON) a dead letter carries. A larger one
 * (a payload near the API's 1 MiB request limit) would make a message Kafka
 * refuses by default, which would stop the relay at it; the message then
 * carries `payload: null` and `payloadOmitted: true` (the job still has it).
 */
export const MAX_DEAD_LETTER_PAYLOAD_CHARS = 256 * 1024;

/** On `ats.dlq`: a job that became dead. */
export interface DeadLetterMessage {
  jobId: string;
  type: string;
  queue: string;
  /** The job's tenant. */
  tenant: string;
  payload: unknown;
  attempts: number;
  maxAttempts: number;
  lastError: JobRecord['snapshot']['context']['lastError'];
  deadAt: number;
  /** Present (true) when the payload was over MAX_DEAD_LETTER_PAYLOAD_CHARS and left out: `payload` is then null. */
  payloadOmitted?: true;
}

/**
 * On `ats.workflows` (`ats-kind: child-ended`), keyed by workflow id: a job
 * that a workflow started ended (done, dead or cancelled).
 * The workflow driver (engine/workflows.ts) delivers it to the instance.
 */
export interface ChildEndedMessage {
  workflowId: string;
  invokeId: string;
  jobId: string;
  state: 'done' | 'dead' | 'cancelled';
  /** The job's result (done). */
  result?: unknown;
  /** Its last error (dead), or `{message: reason}` (cancelled). */
  error?: unknown;
  at: number;
  tenant: string;
}

/** `ats-kind` of a {@link ChildEndedMessage}. */
export const CHILD_ENDED_KIND = 'child-ended';

/**
 * On `ats.workflows` (`ats-kind: workflow-message`), keyed by the target's
 * id: an instance sent another a message (`sendToWorkflow`). The message
 * itself waits in the store (`workflow_messages`) until the target's step
 * takes it; this tells the workflow driver to deliver what waits for the target.
 */
export interface WorkflowMessageNotice {
  /** The target instance's id. */
  workflowId: string;
  messageId: string;
  tenant: string;
}

/** `ats-kind` of a {@link WorkflowMessageNotice}. */
export const WORKFLOW_MESSAGE_KIND = 'workflow-message';

/** The outbox row telling the driver that a message waits for `notice.workflowId`. */
export function workflowMessageNotice(notice: WorkflowMessageNotice): OutboxMessage {
  return { topic: TOPICS.workflows, key: notice.workflowId, payload: notice, headers: headers(WORKFLOW_MESSAGE_KIND) };
}

/** The header saying what a message is: `dispatch`, `cancel`, `transition`, `transitions`, `dead-letter`, `child-ended` or `workflow-message`. */
export const KIND_HEADER = 'ats-kind';
/** `ats-kind` of one transition. */
export const TRANSITION_KIND = 'transition';
/** `ats-kind` of transitions packed into one record. */
export const TRANSITIONS_KIND = 'transitions';
/** Every message's `content-type` header. */
export const CONTENT_TYPE = 'application/json';

/**
 * The header carrying the message's major schema version. Additive changes (a
 * new optional field or header) keep it; a field removed, renamed or changed
 * in type or meaning bumps it.
 */
export const SCHEMA_HEADER = 'ats-schema';
/** The major schema version this code writes, and the highest it reads. */
export const SCHEMA_VERSION = 1;

/**
 * The W3C Trace Context headers: a dispatch of a job submitted while tracing
 * was on carries the job's trace (see engine/tracing.ts); other messages, and
 * every message when tracing is off, carry neither.
 */
export const TRACEPARENT_HEADER = 'traceparent';
export const TRACESTATE_HEADER = 'tracestate';

const headers = (kind: string): Record<string, string> => ({
  'content-type': CONTENT_TYPE, [KIND_HEADER]: kind, [SCHEMA_HEADER]: String(SCHEMA_VERSION),
});

/**
 * The major schema version of a message by its headers: the header's leading
 * integer (`2`, or `2` of `2.1`), or 1 when there is none (a producer older
 * than the header wrote version 1). NaN for a value that is not a version.
 */
export function schemaMajor(headers: Readonly<Record<string, string>>): number {
  const raw = Object.hasOwn(headers, SCHEMA_HEADER) ? headers[SCHEMA_HEADER] : undefined;
  if (raw === undefined) return 1;
  const m = /^\s*(\d{1,9})(?:\.\d+)*\s*$/.exec(raw);
  return m ? Number(m[1]) : Number.NaN;
}

/** Can this code read the message? Versions up to {@link SCHEMA_VERSION}; absent counts as 1. */
export const readableSchema = (headers: Readonly<Record<string, string>>): boolean => {
  const major = schemaMajor(headers);
  return major >= 1 && major <= SCHEMA_VERSION;
};

export function transitionMessage(job: JobRecord, event: JobEventRecord): TransitionMessage {
  const { jobId, seq, type, from, to, at, data } = event;
  return { jobId, seq, type, from, to, at, data, jobType: job.type, queue: job.queue, tenant: job.tenant };
}

/**
 * The outbox rows one transition writes: always its event on `ats.events`;
 * a dispatch when the machine asks for one (carrying the job's trace
 * context, when it has one); a cancel control message when a running
 * attempt is cancelled; a dead letter when the job became dead.
 */
export function outboxFor(job: JobRecord, event: JobEventRecord, effects: Effects): OutboxMessage[] {
  const c = job.snapshot.context;
  const rows: OutboxMessage[] = [
    { topic: TOPICS.events, key: job.id, payload: transitionMessage(job, event), headers: headers(TRANSITION_KIND) },
  ];
  const lane = effects.dispatch || event.type === 'CANCEL' ? laneTopic(job.queue, job.priority) : '';
  if (effects.dispatch) {
    const payload: DispatchMessage = {
      jobId: job.id, attempt: c.attempt + 1, type: job.type, queue: job.queue, tenant: job.tenant,
      priority: job.priority, dispatch: c.dispatches,
    };
    const h = headers('dispatch');
    const trace = job.traceContext;
    if (trace) {
      h[TRACEPARENT_HEADER] = trace.traceparent;
      if (trace.tracestate) h[TRACESTATE_HEADER] = trace.tracestate;
    }
    rows.push({ topic: lane, key: job.id, payload, headers: h });
  }
  if (event.type === 'CANCEL' && event.from === 'running') {
    const payload: CancelMessage = { kind: 'cancel', jobId: job.id, attempt: c.attempt, reason: c.cancelReason ?? 'cancelled' };
    rows.push({ topic: lane, key: job.id, payload, headers: headers('cancel') });
  }
  if (effects.deadLetter) {
    const omitted = (JSON.stringify(job.payload) ?? '').length > MAX_DEAD_LETTER_PAYLOAD_CHARS;
    const payload: DeadLetterMessage = {
      jobId: job.id, type: job.type, queue: job.queue, tenant: job.tenant, payload: omitted ? null : job.payload,
      attempts: c.attempt - c.attemptBase, maxAttempts: c.maxAttempts, lastError: c.lastError, deadAt: event.at,
      ...(omitted ? { payloadOmitted: true as const } : {}),
    };
    rows.push({ topic: TOPICS.dlq, key: job.id, payload, headers: headers('dead-letter') });
  }
  if (job.parent && isEnd(event)) rows.push(childEnded(job, job.parent, event));
  return rows;
}

const ENDS: ReadonlySet<string> = new Set(['done', 'dead', 'cancelled']);
/**
 * The job just ended: it was live before this event. A child redriven after
 * it ended ends again and writes another message, which its workflow drops:
 * the instance let go of the job at its first end (fenced by job id).
 */
const isEnd = (event: JobEventRecord): boolean => ENDS.has(event.to) && event.from !== null && !ENDS.has(event.from);

function childEnded(job: JobRecord, parent: NonNullable<JobRecord['parent']>, event: JobEventRecord): OutboxMessage {
  const payload = childEndedMessage(job, parent, event.to as ChildEndedMessage['state'], event.at);
  return { topic: TOPICS.workflows, key: parent.workflowId, payload, headers: headers(CHILD_ENDED_KIND) };
}

/**
 * What a child job that ended in `state` at `at` tells its workflow: its
 * result (done), its last error (dead) or the cancel's reason (cancelled).
 * The outbox's message, and the workflow driver's sweep for ends a log lost.
 */
export function childEndedMessage(
  job: JobRecord, parent: NonNullable<JobRecord['parent']>, state: ChildEndedMessage['state'], at: number,
): ChildEndedMessage {
  const c = job.snapshot.context;
  return {
    workflowId: parent.workflowId, invokeId: parent.invokeId, jobId: job.id, state, at, tenant: job.tenant,
    ...(state === 'done' ? { result: c.result ?? null } : { error: state === 'dead' ? c.lastError : { message: c.cancelReason ?? 'cancelled', name: 'Cancelled' } }),
  };
}
