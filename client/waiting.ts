/**
 * What a job that has not started waits for (`waiting` of `GET /v1/jobs/:id`),
 * for a person: `concurrency: limit smtp runs 5 of 5`. `shown` renders the
 * strings the server sent (its type, queue, limit key, and a reason newer than
 * this client): a terminal escapes them, a page's text node needs nothing.
 */
import type { JobDetail } from './types.js';

export function waitingText(job: Pick<JobDetail, 'type' | 'queue'>, w: NonNullable<JobDetail['waiting']>, shown: (s: string) => string = String): string {
  const key = w.limit ? shown(w.limit.key) : '';
  // A time past the last one the API writes (the year 9999) is null.
  const at = w.until ?? 'a time too far to tell';
  switch (w.reason) {
    case 'scheduled': return `scheduled: runs at ${at}`;
    case 'backoff': return `backoff: retries at ${at}`;
    case 'dispatching': return 'dispatching: due, its dispatch on its way to the workers';
    case 'no-worker': return `no-worker: no live worker runs ${shown(job.type)} on queue ${shown(job.queue)}`;
    case 'paused': return `paused: limit ${key} is paused (concurrency 0)`;
    case 'concurrency': return `concurrency: limit ${key} runs ${w.limit?.running} of ${w.limit?.concurrency}`;
    case 'rate': return `rate: limit ${key} allows the next start at ${at}`;
    case 'queued': return `queued: for a worker's free slot${w.limit ? ` (limit ${key}: ${w.limit.running} running)` : ''}`;
    default: return shown(String((w as { reason: unknown }).reason));
  }
}

/**
 * What the ETA of a job its limit holds rests on (`eta.basis.held`), for a
 * person: `held by its limit's rate: the next start it allows`. A reason
 * newer than this client is named through `shown`, as in `waitingText`.
 */
export function heldText(held: string, shown: (s: string) => string = String): string {
  if (held === 'rate') return 'held by its limit\'s rate: the next start it allows';
  if (held === 'concurrency') return 'held by its limit\'s concurrency: when a slot of its key frees, estimated';
  return `held by its limit (${shown(held)})`;
}
