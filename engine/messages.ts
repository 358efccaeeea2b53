/**
 * The shape of every message the engine publishes. Built when a transition
 * commits (into the outbox), so they are final here; the relay only adds the
 * outbox id header.
 */
import type { Effects } from '../machines/lifecycle.js';
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
}

/** On `ats.dispatch`: start attempt `attempt` of the job. */
export interface DispatchMessage {
  jobId: string;
  attempt: number;
  type: string;
  queue: string;
  priority: number;
  /** Which dispatch of the job this is (1, 2, ...): a re-dispatch has a higher number. */
  dispatch: number;
}

/**
 * On `ats.dispatch` too (header `ats-kind: cancel`): attempt `attempt` of the
 * job was cancelled while running. Keyed by job id like the job's dispatches,
 * so it lands on the partition, and normally the worker, that took them; the
 * worker aborts the handler only if that very attempt runs there.
 */
export interface CancelMessage {
  kind: 'cancel';
  jobId: string;
  attempt: number;
  reason: string;
}

/** On `ats.dlq`: a job that became dead. */
export interface DeadLetterMessage {
  jobId: string;
  type: string;
  queue: string;
  payload: unknown;
  attempts: number;
  maxAttempts: number;
  lastError: JobRecord['snapshot']['context']['lastError'];
  deadAt: number;
}

const headers = (kind: string): Record<string, string> => ({ 'content-type': 'application/json', 'ats-kind': kind });

export function transitionMessage(job: JobRecord, event: JobEventRecord): TransitionMessage {
  const { jobId, seq, type, from, to, at, data } = event;
  return { jobId, seq, type, from, to, at, data, jobType: job.type, queue: job.queue };
}

/**
 * The outbox rows one transition writes: always its event on `ats.events`;
 * a dispatch when the machine asks for one; a cancel control message when a
 * running attempt is cancelled; a dead letter when the job became dead.
 */
export function outboxFor(job: JobRecord, event: JobEventRecord, effects: Effects): OutboxMessage[] {
  const c = job.snapshot.context;
  const rows: OutboxMessage[] = [
    { topic: TOPICS.events, key: job.id, payload: transitionMessage(job, event), headers: headers('transition') },
  ];
  if (effects.dispatch) {
    const payload: DispatchMessage = {
      jobId: job.id, attempt: c.attempt + 1, type: job.type, queue: job.queue,
      priority: job.priority, dispatch: c.dispatches,
    };
    rows.push({ topic: TOPICS.dispatch, key: job.id, payload, headers: headers('dispatch') });
  }
  if (event.type === 'CANCEL' && event.from === 'running') {
    const payload: CancelMessage = { kind: 'cancel', jobId: job.id, attempt: c.attempt, reason: c.cancelReason ?? 'cancelled' };
    rows.push({ topic: TOPICS.dispatch, key: job.id, payload, headers: headers('cancel') });
  }
  if (effects.deadLetter) {
    const payload: DeadLetterMessage = {
      jobId: job.id, type: job.type, queue: job.queue, payload: job.payload,
      attempts: c.attempt - c.attemptBase, maxAttempts: c.maxAttempts, lastError: c.lastError, deadAt: event.at,
    };
    rows.push({ topic: TOPICS.dlq, key: job.id, payload, headers: headers('dead-letter') });
  }
  return rows;
}
