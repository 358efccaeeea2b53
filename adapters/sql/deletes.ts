/**
 * Deleting finished jobs, written once for both stores like the insert and
 * update programs: one job now (`DELETE /v1/jobs/:id`) or a bounded batch of
 * old ones (retention). A job is deleted with its `job_events` rows and
 * uncounted in the same transaction; its outbox rows are the relay's (they
 * go once published). Only terminal jobs are ever deleted: the state is read
 * under the row lock and checked again by the DELETE itself. A workflow's
 * child is never deleted while its instance still waits for the child's end:
 * retention keeps it, and a delete of it is refused.
 */
import { TERMINAL_STATES, type JobState } from '../../machines/job.machine.js';
import type { DeleteResult } from '../../engine/ports.js';
import { CountDeltas, shardOf, uncountProgram } from './counts.js';
import type { Dialect } from './dialect.js';
import type { Program } from './program.js';
import { awaitedBy, candidateOfRow } from './awaited.js';
import { toNum, type Row } from './rows.js';
import { marks, type Sql } from './statements.js';
import { VersionConflict } from './writes.js';

/** What a delete found of one job: its state, whether it is gone, and the instance that kept it. */
export interface Found {
  state: JobState;
  deleted: boolean;
  /** The active instance still waiting on this finished job's end, which kept it; else null. */
  awaitedBy: string | null;
}

const TERMINAL_LIST = TERMINAL_STATES.map((s) => `'${s}'`).join(', ');

/**
 * Jobs in one (terminal) state whose last transition is at or before a time,
 * the oldest first (then by id), with their parent and event count
 * (`version`, the last event's seq: a later heartbeat of an attempt changes
 * its event in place): a range of index
 * `state, due_at, updated_at` (whose entries end with the id) where `due_at`
 * is NULL, as it is for every terminal job (machines/lifecycle.ts `project`;
 * migration 0027 made sure of older rows), read without locks.
 * Params: state, updated_before, limit
 */
export const FIND_EXPIRED_JOBS =
  'SELECT id, updated_at, parent, version FROM jobs WHERE state = ? AND due_at IS NULL AND updated_at <= ? ORDER BY updated_at, id LIMIT ?';

/**
 * The same, after a position (updated_at, id): the next page. `updated_at >= ?`
 * says again what the OR implies, so that SQLite's range starts there too.
 * Params: state, updated_at, updated_before, updated_at, updated_at, id, limit
 */
export const FIND_EXPIRED_JOBS_AFTER =
  'SELECT id, updated_at, parent, version FROM jobs WHERE state = ? AND due_at IS NULL AND updated_at >= ? AND updated_at <= ? AND (updated_at > ? OR (updated_at = ? AND id > ?)) ORDER BY updated_at, id LIMIT ?';

/** Lock the jobs to delete, in id order (as updates lock them), with their parent. Params: the ids, sorted. */
const selectForDelete = (d: Dialect, ids: readonly string[]): Sql => ({
  sql: `SELECT id, tenant, type, queue, state, updated_at, parent FROM jobs WHERE id IN (${marks(ids.length)}) ORDER BY id ${d.forUpdate}`,
  params: [...ids],
});

/** A job's events (index `job_id, seq`). Params: the ids. */
const deleteEvents = (ids: readonly string[]): Sql => ({
  sql: `DELETE FROM job_events WHERE job_id IN (${marks(ids.length)})`,
  params: [...ids],
});

/**
 * The jobs themselves, only if terminal and, for retention, old enough: the
 * WHERE says it again whatever the caller checked.
 * Params: the ids, updated_before
 */
const deleteJobs = (ids: readonly string[], updatedBefore: number): Sql => ({
  sql: `DELETE FROM jobs WHERE id IN (${marks(ids.length)}) AND state IN (${TERMINAL_LIST}) AND updated_at <= ?`,
  params: [...ids, updatedBefore],
});

/**
 * Delete the terminal jobs among `ids` whose last transition is at or before
 * `updatedBefore`, with their events and progress, and uncount them; but not a
 * workflow's child its instance still waits on (awaited.ts): the sweep that
 * would tell the instance the child's end reads the job, and would find it
 * gone. Returns what it found of each id that exists. Throws `VersionConflict`
 * if the DELETE removed other rows than the locked read promised (the caller
 * rolls back and retries).
 */
export function* deleteProgram(d: Dialect, ids: readonly string[], updatedBefore = Number.MAX_SAFE_INTEGER): Program<Map<string, Found>> {
  const found = new Map<string, Found>();
  if (ids.length === 0) return found;
  const sorted = [...new Set(ids)].sort();
  const { rows } = yield selectForDelete(d, sorted);
  // Retention passed over such children as it read its candidates: this is for a delete of one job
  // (no query unless a finished job has a parent).
  const waited = yield* awaitedBy(rows.map(candidateOfRow));
  const doomed: string[] = [];
  const deltas = new CountDeltas();
  for (const r of rows) {
    const state = String(r.state) as JobState;
    const awaited = waited.get(String(r.id)) ?? null;
    const deleted = TERMINAL_STATES.includes(state) && toNum(r.updated_at) <= updatedBefore && awaited === null;
    found.set(String(r.id), { state, deleted, awaitedBy: awaited });
    if (!deleted) continue;
    doomed.push(String(r.id));
    deltas.add(String(r.tenant), String(r.queue), String(r.type), state, -1);
  }
  if (doomed.length === 0) return found;
  yield deleteEvents(doomed);
  yield { sql: `DELETE FROM job_progress WHERE job_id IN (${marks(doomed.length)})`, params: [...doomed] };
  // Stale rows of a limit (adapters/sql/limits.ts) the job's attempts left.
  yield { sql: `DELETE FROM limit_running WHERE job_id IN (${marks(doomed.length)})`, params: [...doomed] };
  const { changes } = yield deleteJobs(doomed, updatedBefore);
  if (changes !== doomed.length) throw new VersionConflict(doomed[0]!, `deleted ${changes} of ${doomed.length} locked jobs`);
  yield* uncountProgram(d, deltas, shardOf(doomed[0]!));
  return found;
}

/**
 * Job events one retention transaction deletes at most, as for workflow
 * instances (`PURGE_MAX_EVENTS`, workflows.ts). A job's history has no cap
 * (up to 100 attempts a run, each of a few events with its error, and a
 * redrive starts another run; a dispatch the timers repair adds one), so a
 * batch of `limit` jobs is bounded by their events too: jobs are taken,
 * oldest first, while their histories fit, and always the first (a job goes
 * whole, in one transaction, however long its own history: a part of it
 * deleted could not be told from a job a redrive made live again).
 */
export const PURGE_MAX_JOB_EVENTS = 10_000;

/** What one purge transaction of jobs did: jobs deleted, and whether it left candidates for want of room (`maxEvents`). */
export interface JobPurgeStep {
  deleted: number;
  full: boolean;
}

/**
 * Retention's transaction: up to `limit` jobs in terminal `state` last changed
 * at or before `updatedBefore`, oldest first, holding at most `maxEvents`
 * events between them (always the first), deleted in one transaction.
 * Returns how many went, and `full` when the events bound left candidates
 * (`purgeJobsInSteps` goes on with another transaction). A workflow's child
 * its instance still waits on is kept: the
 * instance may not have heard of its end yet (the end's message lost, the
 * instance's definition version not deployed here), and the sweep that tells
 * it reads the job (engine/workflows.ts). The candidates are read a page at a
 * time past such kept jobs, without locks, until `limit` may go or none are
 * left: kept jobs, however many and however old, never stop the jobs behind
 * them from going, and are counted nowhere (a batch of only kept jobs deletes
 * nothing and does not make retention go on at once).
 */
export function* purgeProgram(d: Dialect, state: JobState, updatedBefore: number, limit: number, maxEvents = PURGE_MAX_JOB_EVENTS): Program<JobPurgeStep> {
  if (!TERMINAL_STATES.includes(state)) throw new Error(`retention deletes terminal jobs only, not ${state}`);
  const doomed: string[] = [];
  const at = (r: Row): number => toNum(r.updated_at);
  let last: Row | undefined;
  let events = 0;
  let full = false;
  // Pages of `limit` however few are still wanted: a page past many kept jobs costs one query per `limit` of them.
  for (;;) {
    const { rows } = yield last
      ? { sql: FIND_EXPIRED_JOBS_AFTER, params: [state, at(last), updatedBefore, at(last), at(last), String(last.id), limit] }
      : { sql: FIND_EXPIRED_JOBS, params: [state, updatedBefore, limit] };
    // The rows are of the terminal `state`, their own state column not read: `state` is theirs.
    const waited = yield* awaitedBy(rows.map((r) => candidateOfRow({ ...r, state })));
    for (const r of rows) {
      if (doomed.length >= limit) break;
      if (waited.has(String(r.id))) continue;
      const n = toNum(r.version);
      if (doomed.length > 0 && events + n > maxEvents) {
        full = true;
        break;
      }
      doomed.push(String(r.id));
      events += n;
    }
    if (full || rows.length < limit || doomed.length >= limit) break;
    last = rows.at(-1);
  }
  const found = yield* deleteProgram(d, doomed, updatedBefore);
  let deleted = 0;
  for (const f of found.values()) if (f.deleted) deleted++;
  return { deleted, full };
}

/**
 * Retention's batch of jobs (`JobStore.purgeJobs`): up to `limit` of them, in
 * as many `purgeProgram` transactions as their histories need (each at most
 * `maxEvents` events, but for a single longer job), each run by `transaction`
 * (the store's, with its retries). It stops at `limit` jobs, at a transaction
 * that left nothing for want of room or deleted nothing, and gives up after
 * the transaction in flight once `signal` aborts (retention stopping): what
 * went stays gone. Between two, the event loop runs: a SQLite store's transactions
 * block it while they last. Returns how many jobs went.
 */
export async function purgeJobsInSteps(
  transaction: (program: () => Program<JobPurgeStep>) => Promise<JobPurgeStep>,
  d: Dialect, state: JobState, updatedBefore: number, limit: number, maxEvents = PURGE_MAX_JOB_EVENTS, signal?: AbortSignal,
): Promise<number> {
  let deleted = 0;
  while (deleted < limit) {
    // The first transaction goes whatever the signal: a batch begun is a batch in flight.
    const step = await transaction(() => purgeProgram(d, state, updatedBefore, limit - deleted, maxEvents));
    deleted += step.deleted;
    if (!step.full || step.deleted === 0 || signal?.aborted) break;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return deleted;
}

/** `deleteJob`'s answer from what `deleteProgram` found of one id. */
export function deleteResult(found: ReadonlyMap<string, Found>, id: string): DeleteResult {
  const f = found.get(id);
  if (!f) return { ok: false, reason: 'not-found' };
  if (f.awaitedBy !== null) return { ok: false, reason: 'awaited', state: f.state, workflowId: f.awaitedBy };
  return f.deleted ? { ok: true } : { ok: false, reason: 'live', state: f.state };
}
