/**
 * The job row mapping: a snapshot goes into `jobs.snapshot` with its machine
 * version, and one stored before snapshots carried a version reads as 1.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobRecord } from '../../engine/ports.js';
import { JOB_MACHINE_VERSION } from '../../machines/job.machine.js';
import { start } from '../../machines/lifecycle.js';
import { JOB_COLUMNS, jobValues, rowToJob, type Row } from './rows.js';

const AT = 1_764_556_800_000;

function job(): JobRecord {
  const { next } = start({ at: AT, maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 0 } });
  return {
    id: '01A', tenant: 'default', type: 'demo.echo', queue: 'default', payload: { n: 1 }, priority: 0, timeoutMs: 30_000,
    idempotencyKey: null, requestHash: null, version: 1, snapshot: next, createdAt: AT, updatedAt: AT,
  };
}

/** The row a store reads back for what `jobValues` wrote, its snapshot text changed by `edit`. */
function stored(j: JobRecord, edit: (snapshot: Record<string, unknown>) => Record<string, unknown> = (s) => s): Row {
  const values = jobValues(j);
  const row: Row = Object.fromEntries(JOB_COLUMNS.map((c, i) => [c, values[i]]));
  row.snapshot = JSON.stringify(edit(JSON.parse(String(row.snapshot)) as Record<string, unknown>));
  return row;
}

describe('job rows and the machine version', () => {
  it('the snapshot column holds the machine version, and reads back equal', () => {
    const j = job();
    const row = stored(j);
    assert.equal((JSON.parse(String(row.snapshot)) as { machine: number }).machine, JOB_MACHINE_VERSION);
    assert.deepEqual(rowToJob(row), j);
  });

  it('a snapshot stored without a version reads as version 1, the rest as stored', () => {
    const j = job();
    const read = rowToJob(stored(j, ({ machine: _, ...rest }) => rest));
    assert.equal(read.snapshot.machine, 1);
    assert.deepEqual(read, { ...j, snapshot: { ...j.snapshot, machine: 1 } });
  });

  it('a snapshot of another version reads as that version (stepping it is what refuses it)', () => {
    assert.equal(rowToJob(stored(job(), (s) => ({ ...s, machine: JOB_MACHINE_VERSION + 1 }))).snapshot.machine, JOB_MACHINE_VERSION + 1);
  });
});
