/**
 * Job ids: ULIDs whose first ten characters are the time they were drawn,
 * read from the scheduler's clock (on MySQL the database's, as the jobs'
 * creation times are), so a job's id sorts with its creation time.
 */
import { monotonicFactory } from 'ulid';
import type { Clock, IdGenerator } from './ports.js';

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
