/**
 * `insert` and `update` of the JobStore port as SQL programs (see program.ts),
 * shared by the MySQL and the SQLite store. The caller runs each one inside
 * a transaction and commits only if it returns; on MySQL the COMMIT goes with
 * the program's last group of writes (`Sql.final`), whose checks then also
 * run in SQL.
 */
import type { LimitState } from '../../engine/limits.js';
import type { Decide, Decision, InsertResult, JobRecord, StoredEventType, TransitionWrite } from '../../engine/ports.js';
import { awaitedBy, candidateOfJob } from './awaited.js';
import { chunkRows, groupBySize, slices } from './batches.js';
import { countStepsOf } from './counts.js';
import type { Dialect } from './dialect.js';
import { limitReadSteps, limitWriteSteps, rowToLimit } from './limits.js';
import type { Program } from './program.js';
import { insertOutboxSteps } from './outbox.js';
import { eventValues, jobValues, projectionValues, rowToJob, toJson, toNum } from './rows.js';
import {
  COALESCE_HEARTBEAT, UPDATE_JOB_CAS, guardChangedRows, insertEvents, insertJobs, multiStatement, selectJobIds, selectJobsForUpdate, updateJobsCas,
  type Sql,
} from './statements.js';

/**
 * A job was not at the version a write expected: the transaction must roll
 * back and the store read again (or give up with ATS_ERR_CONCURRENT_UPDATE).
 */
export class VersionConflict extends Error {
  /** `jobId` null: a check made in SQL (`guardChangedRows`), which cannot tell which job moved. */
  constructor(readonly jobId: string | null, detail: string, options?: ErrorOptions) {
    super(jobId === null ? detail : `job ${jobId}: ${detail}`, options);
    this.name = 'VersionConflict';
  }
}

const DUPLICATE: InsertResult = Object.freeze({ ok: false, reason: 'duplicate-key' });
const OK: InsertResult = Object.freeze({ ok: true });

/** A key is unique per tenant and queue (migration 0013). */
const keyOf = (job: JobRecord): string | null =>
  job.idempotencyKey === null ? null : JSON.stringify([job.tenant, job.queue, job.idempotencyKey]);

/**
 * Insert new jobs with their events and outbox rows. Jobs without a key are
 * inserted plainly (an id collision must fail loudly); jobs with one skip a
 * taken key, then one SELECT tells which got in. Within the batch the first
 * write of a key wins. Only inserted jobs get their events and outbox rows,
 * and only they are counted.
 */
export function* insertProgram(d: Dialect, writes: readonly TransitionWrite[]): Program<InsertResult[]> {
  const results: InsertResult[] = writes.map(() => OK);
  const seen = new Set<string>();
  const plain: TransitionWrite[] = [];
  const keyed: TransitionWrite[] = [];
  writes.forEach((w, i) => {
    const key = keyOf(w.job);
    if (key === null) return void plain.push(w);
    if (seen.has(key)) return void (results[i] = DUPLICATE);
    seen.add(key);
    keyed.push(w);
  });
  const plainInserts = chunkRows(plain.map((w) => jobValues(w.job))).map((rows) => insertJobs(d, rows, false));
  if (keyed.length === 0) {
    // Nothing to check between the statements: jobs, events, outbox rows and counts go together.
    yield* runSteps(d, unchecked([...plainInserts, ...logSteps(writes), ...countStepsOf(d, writes)]), true);
    return results;
  }
  yield* runSteps(d, unchecked(plainInserts), false);
  for (const rows of chunkRows(keyed.map((w) => jobValues(w.job)))) yield insertJobs(d, rows, true);
  const present = new Set<string>();
  for (const ids of slices(keyed.map((w) => w.job.id))) {
    for (const r of (yield selectJobIds(ids)).rows) present.add(String(r.id));
  }
  writes.forEach((w, i) => {
    if (keyOf(w.job) !== null && !present.has(w.job.id)) results[i] = DUPLICATE;
  });
  const inserted = writes.filter((_, i) => results[i]!.ok);
  yield* runSteps(d, unchecked([...logSteps(inserted), ...countStepsOf(d, inserted)]), true);
  return results;
}

/**
 * Read the jobs locked (in id order), let `decide` compute the writes, then
 * compare-and-set each job once (a chain of writes on one job collapses into
 * its last; where the dialect allows, all of them in one statement), append
 * events and outbox rows, and add the state changes to the job counts
 * (counts.ts). With `awaited`, `decide` is also told which finished jobs read
 * a workflow instance still waits on (awaited.ts), read once they are locked.
 * Throws `VersionConflict` when a job moved underneath, so the caller rolls
 * back and retries.
 */
export function* updateProgram<T>(d: Dialect, ids: readonly string[], decision: Decide<T> | Decision<T>): Program<T> {
  const { decide, limitKeys, awaited, now } = typeof decision === 'function' ? { decide: decision, limitKeys: undefined, awaited: false, now: 0 } : decision;
  const jobs = new Map<string, JobRecord>();
  const lastEventTypes = new Map<string, StoredEventType>();
  const sorted = [...new Set(ids)].sort();
  for (const part of slices(sorted)) {
    for (const r of (yield selectJobsForUpdate(d, part)).rows) {
      jobs.set(String(r.id), rowToJob(r));
      if (r.last_event_type != null) lastEventTypes.set(String(r.id), r.last_event_type as StoredEventType);
    }
  }
  const limits = new Map<string, LimitState>();
  const keys = limitKeys ? [...new Set(limitKeys(jobs))].sort() : [];
  if (keys.length > 0) {
    // After the job rows, in key order: every claim locks in the same order.
    const steps = limitReadSteps(d, keys, now);
    const locked = (yield steps.lock).rows.map(rowToLimit);
    if (locked.length > 0) {
      yield steps.prune;
      const running = new Map((yield steps.count).rows.map((r) => [String(r.limit_key), toNum(r.n)] as const));
      for (const limit of locked) limits.set(limit.key, { limit, running: running.get(limit.key) ?? 0 });
    }
  }
  // Read after the job rows are locked: a finished job stays finished until this transaction commits.
  const waited = awaited ? yield* awaitedBy([...jobs.values()].map(candidateOfJob)) : new Map<string, string>();
  const { writes, result, claims = [] } = decide(jobs, lastEventTypes, limits, waited);
  const updates = [...collapseChains(writes)].map(([id, { job, expectedVersion }]) => ({
    id, expectedVersion, params: [...projectionValues(job), JSON.stringify(job.snapshot), job.updatedAt, id, expectedVersion],
  }));
  const checked: Step[] = d.batchUpdate
    ? chunkRows(updates.map((u) => u.params)).map((rows) => {
      const id = String(rows[0]![7]); // the first job's id (params: ..., id, expected_version)
      return {
        sql: { sql: updateJobsCas(rows.length), params: rows.flat() },
        expect: { changes: rows.length, conflict: () => new VersionConflict(id, `one of ${rows.length} jobs updated together is not at its expected version any more`) },
      };
    })
    : updates.map((u) => ({
      sql: { sql: UPDATE_JOB_CAS, params: u.params },
      expect: { changes: 1, conflict: () => new VersionConflict(u.id, `not at version ${u.expectedVersion} any more`) },
    }));
  // After the event inserts: a chain may insert a job's first heartbeat and coalesce the next into it.
  const coalesced = writes.filter((w) => w.coalesce).map((w): Step => ({
    sql: { sql: COALESCE_HEARTBEAT, params: [w.event.at, toJson(w.event.data), w.job.id, w.event.seq, w.coalesce!.previousAt] },
    expect: { changes: 1, conflict: () => new VersionConflict(w.job.id, `event ${w.event.seq} is not the heartbeat at ${w.coalesce!.previousAt} any more`) },
  }));
  // Last: the counter rows' locks are held for the shortest time.
  yield* runSteps(d, [
    ...checked, ...unchecked(logSteps(writes)), ...coalesced, ...unchecked(limitWriteSteps(d, claims)), ...unchecked(countStepsOf(d, writes)),
  ], true);
  return result;
}

/**
 * Per job, the final row and the version the first write expected. Checks
 * the chain: each later write must expect the version the previous one wrote.
 */
export function collapseChains(writes: readonly TransitionWrite[]): Map<string, { job: JobRecord; expectedVersion: number }> {
  const out = new Map<string, { job: JobRecord; expectedVersion: number }>();
  for (const w of writes) {
    const prev = out.get(w.job.id);
    if (w.expectedVersion === null) throw new VersionConflict(w.job.id, 'update() got a new job (expectedVersion null); use insert()');
    if (prev && prev.job.version !== w.expectedVersion) {
      throw new VersionConflict(w.job.id, `write expects version ${w.expectedVersion} after a write of version ${prev.job.version}`);
    }
    out.set(w.job.id, { job: w.job, expectedVersion: prev?.expectedVersion ?? w.expectedVersion });
  }
  return out;
}

/**
 * The events and outbox rows of committed-together writes, as multi-row
 * INSERTs (their messages as few outbox rows as fit: outbox.ts). A coalesced
 * heartbeat inserts nothing (it updates its event: see `updateProgram`).
 */
function logSteps(writes: readonly TransitionWrite[]): Sql[] {
  const appended = writes.filter((w) => !w.coalesce);
  const outbox = appended.flatMap((w) => w.outbox.map((message) => ({ message, at: w.event.at })));
  return [...chunkRows(appended.map((w) => eventValues(w.event, w.job.tenant))).map(insertEvents), ...insertOutboxSteps(outbox)];
}

/** A statement of a write group, with the changed rows it must report, if any. */
interface Step {
  sql: Sql;
  expect?: { changes: number; conflict: () => VersionConflict };
}

const unchecked = (sqls: readonly Sql[]): Step[] => sqls.map((sql) => ({ sql }));

/**
 * Run statements whose outcomes nothing in between depends on, in order, and
 * check each one's changed rows against its `expect` (a mismatch throws its
 * conflict, and the caller's transaction rolls back). Where the dialect
 * allows (`multiStatement`), they go as few multi-statements as the size
 * limit allows: one round trip instead of one per statement, each statement
 * the same as alone. With `final` (nothing follows in the transaction), the
 * last group is marked `Sql.final`, so the store may send COMMIT with it;
 * then each check also runs in SQL (`guardChecks` dialects), because a check
 * made here after that round trip would come after the COMMIT.
 */
function* runSteps(d: Dialect, steps: readonly Step[], final: boolean): Program<void> {
  const flat = d.guardChecks
    ? steps.flatMap((s): Step[] => (s.expect ? [s, { sql: guardChangedRows(s.expect.changes) }] : [s]))
    : steps;
  const groups = d.multiStatement ? groupBySize(flat.map((s) => s.sql)) : flat.map((s) => [s.sql]);
  let k = 0;
  for (const [g, group] of groups.entries()) {
    const sql = group.length === 1 ? group[0]! : multiStatement(group);
    const outcome = yield final && g === groups.length - 1 && d.guardChecks ? { ...sql, final: true } : sql;
    const each = group.length === 1 ? [outcome.changes] : outcome.each ?? [];
    if (each.length !== group.length) throw new Error(`a multi-statement of ${group.length} statements reported ${each.length} outcomes`);
    for (const changes of each) {
      const expect = flat[k++]!.expect;
      if (expect && changes !== expect.changes) throw expect.conflict();
    }
  }
}
