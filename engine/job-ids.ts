/**
 * Job ids: ULIDs whose first ten characters are the time they were drawn,
 * read from the scheduler's clock, so a job's id sorts with its creation
 * time. A job's row is written with a creation time read before its id is
 * drawn (a submit's batch, a workflow step), so its id's time is at or after
 * its `created_at`, and at most `JOB_ID_LATE_MARGIN_MS` after it. A page of
 * jobs created after some time (`createdAfter`) reads its index from the
 * first id of that time, less `JOB_ID_CLOCK_MARGIN_MS`, instead of walking the
 * tenant's whole history down to its first job; one created before a time
 * (`createdBefore`) from below the first id of that time plus
 * `JOB_ID_LATE_MARGIN_MS`, instead of from the tenant's newest job.
 */
import { encodeTime, monotonicFactory } from 'ulid';
import type { Clock, IdGenerator } from './ports.js';

/**
 * How far a job's id may be older than its creation time and still be listed
 * by `createdAfter`: a step of the clock back between the two reads.
 */
export const JOB_ID_CLOCK_MARGIN_MS = 60_000;

/**
 * How much later than its creation time a job's id may be drawn and still be
 * listed by `createdBefore`: a workflow step reads its time, then draws its
 * jobs' ids in its transaction once it holds the instance's row (a lock wait
 * of up to `innodb_lock_wait_timeout`, 50 s by default), and a clock stepped
 * back keeps the last id's time until it catches up. A page before a time
 * reads the index from that time's ids plus this margin down, not from the
 * tenant's newest job.
 */
export const JOB_ID_LATE_MARGIN_MS = 600_000;

/** The largest time a ULID holds (48 bits of milliseconds). */
const MAX_ULID_TIME = 2 ** 48 - 1;

/**
 * ULIDs at `clock`'s time (the scheduler's, where it is wired), monotonic
 * within this process: ids drawn in one ms still sort, and a clock stepped
 * back keeps the last id's time until it catches up.
 */
export function ulidIds(clock: Pick<Clock, 'now'> = { now: () => Date.now() }): IdGenerator {
  const next = monotonicFactory();
  return { jobId: () => next(Math.min(Math.max(clock.now(), 0), MAX_ULID_TIME)) };
}

/**
 * The lowest job id of a job created at or after `at`: the first id of
 * `at - JOB_ID_CLOCK_MARGIN_MS` (every id sorts at or above it).
 */
export function firstJobIdAt(at: number): string {
  const t = Math.min(Math.max(Math.floor(at - JOB_ID_CLOCK_MARGIN_MS), 0), MAX_ULID_TIME);
  return `${encodeTime(t, 10)}${'0'.repeat(16)}`;
}

/**
 * An id above every id drawn for a job created before `at`: the first id of
 * `at + JOB_ID_LATE_MARGIN_MS` (a job created before `at` has an id below it).
 */
export function jobIdAbove(at: number): string {
  const t = Math.max(Math.ceil(at + JOB_ID_LATE_MARGIN_MS), 0);
  // Past a ULID's range: above every id (a ULID's first character is at most 7).
  return t > MAX_ULID_TIME ? `8${'0'.repeat(25)}` : `${encodeTime(t, 10)}${'0'.repeat(16)}`;
}
