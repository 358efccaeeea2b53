/**
 * Which finished jobs a workflow instance still waits on: the one rule that
 * keeps a workflow's child from being deleted (a delete, retention:
 * deletes.ts) or redriven (writes.ts `updateProgram`, for a REDRIVE) before
 * its instance has taken its end. Deleted, the end would reach the instance
 * as "the job is gone" (cancelled, whatever it was); redriven, the instance
 * would still take the end it has not taken yet, while the new run's end
 * would be dropped (the instance lets go of a child at its first end).
 */
import { TERMINAL_STATES, type JobState } from '../../machines/job.machine.js';
import type { JobRecord } from '../../engine/ports.js';
import type { Program } from './program.js';
import { toParent, type Row } from './rows.js';
import { marks, type Sql } from './statements.js';

/** A job as the rule reads it: its id, its state, and the instance that started it (null for a job of its own). */
export interface AwaitCandidate {
  id: string;
  state: JobState;
  parent: string | null;
}

/** A job row (with its `state` and `parent` columns) as the rule reads it. */
export const candidateOfRow = (r: Row): AwaitCandidate => ({
  id: String(r.id),
  state: String(r.state) as JobState,
  // The instance the `parent` column names, as `rowToJob` reads it.
  parent: r.parent === null || r.parent === undefined ? null : toParent(String(r.parent)).workflowId,
});

/** A job read whole as the rule reads it. */
export const candidateOfJob = (job: JobRecord): AwaitCandidate => ({ id: job.id, state: job.snapshot.value, parent: job.parent?.workflowId ?? null });

/**
 * The active instances among some ids, with their states: the children each
 * still waits on are in it (`state.children`). Params: the instance ids.
 */
const selectActiveParents = (ids: readonly string[]): Sql => ({
  sql: `SELECT id, state FROM workflows WHERE id IN (${marks(ids.length)}) AND status = 'active'`,
  params: [...ids],
});

/**
 * The finished jobs among `jobs` that an instance still waits on, each with
 * that instance: the job is done, dead or cancelled, its instance is active,
 * and the instance's state lists the job among its children (it has not
 * taken the job's end). No query unless a finished job has a parent. Read
 * without locks on the instances, which is enough: an instance stops waiting
 * on a job once and never waits on it again (a new invocation gets a new
 * job), so a job seen not waited on stays so, and one seen waited on is only
 * refused (kept, not redriven) for now: the caller tries again later.
 */
export function* awaitedBy(jobs: readonly AwaitCandidate[]): Program<Map<string, string>> {
  const ended = jobs.filter((j) => j.parent !== null && TERMINAL_STATES.includes(j.state));
  const awaited = new Map<string, string>();
  if (ended.length === 0) return awaited;
  const parents = [...new Set(ended.map((j) => j.parent!))].sort();
  const { rows } = yield selectActiveParents(parents);
  const waiting = new Map<string, string>();
  for (const r of rows) {
    const { children } = JSON.parse(String(r.state)) as { children: { jobId: string }[] };
    for (const c of children) waiting.set(c.jobId, String(r.id));
  }
  for (const j of ended) {
    const instance = waiting.get(j.id);
    if (instance !== undefined) awaited.set(j.id, instance);
  }
  return awaited;
}
