/**
 * What a job that has not started yet waits for, from its state and what the
 * caller read about it: the answer to "why is my job not running?" that
 * `GET /v1/jobs/:id` gives as `waiting`. Pure: the limit is judged by the
 * claim's own rule (`admit`), so the answer is the one a claim made now would
 * get.
 */
import { admit, type LimitRecord } from './limits.js';
import type { JobRecord } from './ports.js';

export type WaitingReason =
  /** Submitted to run later: due at `until`. */
  | 'scheduled'
  /** Failed, its retry due at `until`. */
  | 'backoff'
  /** Due, none of the below in its way: its dispatch is being handed to the workers (the relay, or the timers for a due retry or run). */
  | 'dispatching'
  /** Due, and no live worker runs its type on its queue. */
  | 'no-worker'
  /** Due, and its limit's concurrency is 0: none of the key starts until it is raised or deleted. */
  | 'paused'
  /** Due, and its limit's concurrency is taken: as many of the key run as it allows. */
  | 'concurrency'
  /** Due, and its limit's rate allows the next start at `until`. */
  | 'rate'
  /** Dispatched, none of the above in its way: waits for a worker's free slot, behind the jobs before it in its queue. */
  | 'queued';

export interface Waiting {
  reason: WaitingReason;
  /** When the wait ends by itself, epoch ms: `scheduled`, `backoff`, `rate`; else null. */
  until: number | null;
  /** The limit the job's attempts count against, and the attempts of its key running; null when none applies, or the job is not due. */
  limit: AppliedLimit | null;
}

export interface AppliedLimit {
  limit: LimitRecord;
  running: number;
}

/** What the caller read of the job: whether a live worker runs its type on its queue (null: not known), and its limit. */
export interface WaitingFacts {
  served: boolean | null;
  limit: AppliedLimit | null;
}

/** Whether the job is waiting to start (pending, published, retrying): the states `waitingOf` answers for. */
export const isWaiting = (job: Pick<JobRecord, 'snapshot'>): boolean =>
  job.snapshot.value === 'pending' || job.snapshot.value === 'published' || job.snapshot.value === 'retrying';

/** Whether the job is due: dispatched, or its run or retry time come. Before, it waits for that time alone. */
export const isDue = (job: Pick<JobRecord, 'snapshot'>, now: number): boolean =>
  job.snapshot.value === 'published' || job.snapshot.context.runAt <= now;

/**
 * The job's wait at `now`, or null when it is not waiting (running, or
 * ended). A job due (its dispatch on its way, or dispatched) waits for a
 * live worker, then for its limit, as `facts` say; with neither in its way,
 * for its dispatch, or (dispatched) a free slot. `facts` are not asked of a
 * job that is not due.
 */
export function waitingOf(job: Pick<JobRecord, 'snapshot'>, facts: WaitingFacts, now: number): Waiting | null {
  const { value, context } = job.snapshot;
  if (!isWaiting(job)) return null;
  if (!isDue(job, now)) return { reason: value === 'pending' ? 'scheduled' : 'backoff', until: context.runAt, limit: null };
  const { served, limit } = facts;
  if (served === false) return { reason: 'no-worker', until: null, limit };
  if (limit) {
    const a = admit(limit.limit, limit.running, now);
    if (!a.ok) return { reason: a.why, until: a.why === 'rate' && a.retryAfterMs !== null ? now + a.retryAfterMs : null, limit };
  }
  return { reason: value === 'published' ? 'queued' : 'dispatching', until: null, limit };
}
