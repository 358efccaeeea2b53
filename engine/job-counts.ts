/**
 * The job counts the store maintains (`JobStore.jobCounts()`) as `Stats`:
 * pure, so a reader that has the counts already (`GET /v1/stats`, which also
 * needs them per type and queue) makes no second read.
 */
import { JOB_STATES, type JobState } from '../machines/job.machine.js';
import type { JobCount, Stats } from './ports.js';

const STATES: ReadonlySet<string> = new Set(JOB_STATES);

/**
 * Counts into `Stats`. `byState` lists every state (0 when none); `byType` and
 * `byQueue` are keyed by user-chosen names, so they and their entries have no
 * prototype: a queue named `__proto__` is a key like any other.
 */
export function statsOf(counts: readonly JobCount[]): Stats {
  const byState = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  const byType: Stats['byType'] = Object.create(null);
  const byQueue: Stats['byQueue'] = Object.create(null);
  const add = (into: Stats['byType'], name: string, state: JobState, n: number) => {
    const entry = (into[name] ??= Object.create(null) as Partial<Record<JobState, number>>);
    entry[state] = (entry[state] ?? 0) + n;
  };
  for (const c of counts) {
    if (!STATES.has(c.state)) continue;
    byState[c.state] += c.n;
    add(byType, c.type, c.state, c.n);
    add(byQueue, c.queue, c.state, c.n);
  }
  return { byState, byType, byQueue };
}
