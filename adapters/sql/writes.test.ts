/**
 * The update program's statements, driven by a scripted executor: on MySQL a
 * batch of jobs is compare-and-set by one statement, and a changed-row count
 * short of the batch is a version conflict (the store rolls back and reads
 * again); on SQLite each job gets its own prepared UPDATE.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { start } from '../../machines/lifecycle.js';
import { JOB_MACHINE_VERSION } from '../../machines/job.machine.js';
import { isAtsError } from '../../engine/errors.js';
import type { JobRecord } from '../../engine/ports.js';
import { transitionWrite } from '../../engine/transitions.js';
import { MYSQL_DIALECT, SQLITE_DIALECT, type Dialect } from './dialect.js';
import { runSync, type Outcome } from './program.js';
import { guardChangedRows, type Sql } from './statements.js';
import { VersionConflict, updateProgram } from './writes.js';

const AT = 1_764_556_800_000;

/** A stored row of a pending job, as `selectJobsForUpdate` returns it; `snapshot` edits its stored JSON. */
function row(id: string, snapshot: (s: Record<string, unknown>) => Record<string, unknown> = (s) => s): Record<string, unknown> {
  const { next } = start({ at: AT, maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 0 } });
  return {
    id, type: 'demo.echo', queue: 'default', version: 1, priority: 0, timeout_ms: 30_000, idempotency_key: null, request_hash: null,
    payload: '{}', snapshot: JSON.stringify(snapshot({ ...next })), created_at: AT, updated_at: AT, trace_context: null, last_event_type: 'SUBMITTED',
  };
}

/**
 * Starts attempt 1 of each job; `changed(step)` says how many rows each UPDATE of jobs reports;
 * `snapshot` edits the stored snapshots the SELECT returns.
 */
function startAll(d: Dialect, ids: string[], changed: (step: Sql) => number, snapshot?: (s: Record<string, unknown>) => Record<string, unknown>): Sql[] {
  const seen: Sql[] = [];
  const exec = (step: Sql): Outcome => {
    seen.push(step);
    if (step.sql.startsWith('SELECT')) return { rows: ids.map((id) => row(id, snapshot)), changes: 0 };
    const parts = step.multi ? step.sql.split(';\n') : [step.sql];
    const each = parts.map((sql) => (sql.startsWith('UPDATE jobs') ? changed({ sql, params: step.params }) : 1));
    return { rows: [], changes: each.reduce((a, b) => a + b, 0), each };
  };
  runSync(updateProgram(d, ids, (jobs: ReadonlyMap<string, JobRecord>) => ({
    writes: [...jobs.values()].map((job) => transitionWrite(job, { type: 'STARTED', attempt: 1, leaseUntil: AT + 30_000, workerId: 'w', at: AT })!),
    result: null,
  })), exec);
  return seen;
}

const jobUpdates = (steps: Sql[]): string[] => steps.flatMap((s) => (s.multi ? s.sql.split(';\n') : [s.sql])).filter((sql) => sql.startsWith('UPDATE jobs'));

describe('updateProgram', () => {
  const ids = ['01A', '01B', '01C'];

  it('on MySQL compare-and-sets a batch of jobs in one statement', () => {
    const updates = jobUpdates(startAll(MYSQL_DIALECT, ids, () => ids.length));
    assert.equal(updates.length, 1);
    assert.equal(updates[0]!.match(/UNION ALL/g)?.length, ids.length - 1);
  });

  it('on MySQL a batch of more jobs than a statement takes goes as several, each checked', () => {
    const many = Array.from({ length: 501 }, (_, i) => `01${String(i).padStart(4, '0')}`);
    const rowsIn = (s: Sql) => (s.sql.match(/UNION ALL/g)?.length ?? 0) + 1;
    assert.equal(jobUpdates(startAll(MYSQL_DIALECT, many, rowsIn)).length, 2);
    assert.throws(() => startAll(MYSQL_DIALECT, many, (s) => (rowsIn(s) === 1 ? 0 : rowsIn(s))),
      (err: unknown) => err instanceof VersionConflict && err.jobId === many[500]);
  });

  it('locks the jobs in id order whatever order they were given in, across statements, so two updates never lock each other\'s jobs crosswise', () => {
    const many = Array.from({ length: 501 }, (_, i) => `01${String(i).padStart(4, '0')}`);
    const given = [...many].reverse();
    const selects = startAll(MYSQL_DIALECT, given, (s) => (s.sql.match(/UNION ALL/g)?.length ?? 0) + 1).filter((s) => s.sql.startsWith('SELECT'));
    assert.equal(selects.length, 2, 'more ids than one statement takes');
    assert.deepEqual(selects.flatMap((s) => s.params), many);
  });

  it('on MySQL a batch that changed fewer rows than it holds is a version conflict', () => {
    assert.throws(() => startAll(MYSQL_DIALECT, ids, () => ids.length - 1), (err: unknown) => err instanceof VersionConflict && err.jobId === '01A');
  });

  it('on MySQL the write group is the final step, each compare-and-set guarded in SQL, so COMMIT can go with it', () => {
    const steps = startAll(MYSQL_DIALECT, ids, () => ids.length);
    assert.deepEqual(steps.map((s) => s.final === true), [false, true]);
    const statements = steps[1]!.sql.split(';\n');
    const cas = statements.findIndex((sql) => sql.startsWith('UPDATE jobs'));
    assert.equal(statements[cas + 1], guardChangedRows(ids.length).sql);
  });

  it('on SQLite updates each job with its own statement, each checked', () => {
    assert.equal(jobUpdates(startAll(SQLITE_DIALECT, ids, () => 1)).length, ids.length);
    let n = 0;
    assert.throws(() => startAll(SQLITE_DIALECT, ids, () => (++n === 2 ? 0 : 1)), (err: unknown) => err instanceof VersionConflict && err.jobId === '01B');
    assert.ok(startAll(SQLITE_DIALECT, ids, () => 1).every((s) => !s.final && !s.sql.includes('ROW_COUNT()')));
  });
});

describe('updateProgram and the job machine version', () => {
  /** The snapshot each per-job UPDATE (SQLite) writes: params state, version, attempt, due_at, lease_until, snapshot, ... */
  const written = (steps: Sql[]) => steps.filter((s) => s.sql.startsWith('UPDATE jobs')).map((s) => JSON.parse(String(s.params[5])) as { machine: number });

  it('a row stored before snapshots carried a version steps on, and its write stores the version', () => {
    const steps = startAll(SQLITE_DIALECT, ['01A'], () => 1, ({ machine: _, ...rest }) => rest);
    assert.deepEqual(written(steps).map((s) => s.machine), [JOB_MACHINE_VERSION]);
  });

  it('a row a newer machine version wrote is refused before any write', () => {
    const seen: Sql[] = [];
    assert.throws(() => {
      startAll(SQLITE_DIALECT, ['01A'], (s) => (seen.push(s), 1), (s) => ({ ...s, machine: JOB_MACHINE_VERSION + 1 }));
    }, (err: unknown) => isAtsError(err) && err.code === 'ATS_ERR_JOB_MACHINE_UNKNOWN');
    assert.deepEqual(seen, [], 'no UPDATE of jobs was issued');
  });
});
