/**
 * The `ats` commands' client: the typed client package (`client/`), plus what
 * only the commands need — the machine's states, and jobs typed by the
 * fields the commands read (the wire types, with states as plain text).
 */
import { JOB_STATES, TERMINAL_STATES, type JobState } from '../machines/job.machine.js';
import type { EventView, JobDetail as WireJobDetail, JobView } from '../client/index.js';

export {
  ApiError, AtsClient, compareProgress, MAX_BATCH, UnreachableError,
  type BatchItem, type BatchResult, type Insights, type Limit, type LimitSpec, type ListQuery, type Schedule, type ScheduleDetail, type ScheduleRequest,
  type SubmitRequest, type Worker, heldText, waitingText,
} from '../client/index.js';
/** Whether a try before this error, in the same call, may have gone through (the client sent the request again). */
export { outcomeWasUnknown } from '../client/http.js';
export { JOB_STATES, TERMINAL_STATES };

/** A state the job leaves only by REDRIVE (from the machine, not a list kept here). */
export const isTerminal = (state: string): boolean => (TERMINAL_STATES as readonly string[]).includes(state as JobState);

/** One entry of a job's history, as the commands read it. */
export type JobEvent = Omit<EventView, 'from' | 'to'> & { from: string | null; to: string };

/** A job as the commands read it: `JobView`'s fields they print (the rest optional). */
export type Job = Pick<JobView, 'id' | 'type' | 'queue' | 'attempt' | 'maxAttempts' | 'payload' | 'result' | 'lastError' | 'runAt' | 'createdAt' | 'updatedAt'>
  & Partial<Pick<JobView, 'cancelReason' | 'version' | 'allowed' | 'attemptBase' | 'priority' | 'backoff' | 'timeoutMs' | 'concurrencyKey'>>
  & { state: string };

/** A job's latest progress as the commands read it (from `GET /v1/jobs/:id` or a stream `progress` message). */
export interface JobProgress {
  /** A number from 0 to 100, or a JSON object. */
  value: unknown;
  attempt: number;
  /** ISO 8601. */
  at: string;
}

/** A job with its history (`GET /v1/jobs/:id`), its stream cursor, the advisor's ETA, the job's progress and what it waits for when the server sent them. */
export interface JobDetail extends Job {
  events: JobEvent[];
  /** The stream position of the newest event in `events` (absent from a server older than the field). */
  streamCursor?: WireJobDetail['streamCursor'];
  eta?: WireJobDetail['eta'];
  progress?: JobProgress | null;
  waiting?: WireJobDetail['waiting'];
}
