/**
 * The timers' scans over two states (`FIND_DUE`: pending and retrying;
 * `FIND_LOST_DISPATCHES`: pending and published) beside a backlog of
 * candidates: each reads the first `limit` rows of each state's range of the
 * index, in its order, and merges them. `state IN (…) ORDER BY` sorted every
 * candidate of both states at each pass (every 250 ms: a million delayed
 * jobs come due at once, or a million dispatches waiting for slow workers).
 * The merge still gives the most overdue first, whichever its state.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MysqlStore } from '../mysql/index.js';
import { createTestStore, rowsReadBy } from '../../tests/helpers/mysql.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { MYSQL_DIALECT } from './dialect.js';
import { findDue, findLostDispatches } from './statements.js';

const N = 20_000;
const T0 = Date.UTC(2031, 0, 1);
const COLUMNS = 'tenant, type, queue, version, attempt, lease_until, priority, timeout_ms, payload, snapshot, created_at';

describe('the timers\' scans over two states', () => {
  it(`on MariaDB, read at most the first of each state among ${N} candidates, most overdue first`, async () => {
    const { store, cleanup } = await createTestStore();
    const { pool } = store as unknown as MysqlStore;
    try {
      const w = newJobWrite({ at: T0 });
      assert.ok((await store.insert([w]))[0]!.ok);
      // Candidates of both states, their times interleaved: pending ones at even ms, the others at odd ms.
      const copies = async (prefix: string, state: string, dueAt: string, updatedAt: string) => pool.query(
        `INSERT INTO jobs (id, state, due_at, updated_at, ${COLUMNS}) SELECT CONCAT(?, LPAD(s.seq, 24, '0')), ?, ${dueAt}, ${updatedAt}, ${COLUMNS} FROM jobs j JOIN seq_1_to_${N} s WHERE j.id = ?`,
        [prefix, state, w.job.id],
      );
      await copies('0P', 'pending', `${T0} + 2 * s.seq`, `${T0}`);
      await copies('0R', 'retrying', `${T0} + 2 * s.seq + 1`, `${T0}`);
      await copies('0L', 'pending', 'NULL', `${T0} + 2 * s.seq`);
      await copies('0U', 'published', 'NULL', `${T0} + 2 * s.seq + 1`);
      await pool.query('ANALYZE TABLE jobs');
      const now = T0 + 10 * N;
      const due = await store.findDue(now, 100);
      assert.deepEqual(due.slice(0, 4).map((j) => `${j.id.slice(0, 2)}:${j.state}`), ['0P:pending', '0R:retrying', '0P:pending', '0R:retrying']);
      assert.equal(due.length, 100);
      const lost = await store.findLostDispatches(now, 100);
      // The submitted source job (updated at T0) first, then the two states' candidates in turn.
      assert.deepEqual(lost.slice(0, 5).map((j) => j.id.slice(0, 2)), [w.job.id.slice(0, 2), '0L', '0U', '0L', '0U']);
      assert.equal(lost.length, 100);
      for (const { sql, params } of [findDue(MYSQL_DIALECT)(now, 100), findLostDispatches(MYSQL_DIALECT)(now, 100)]) {
        const read = await rowsReadBy(pool, sql, params);
        assert.ok(read.length > 0 && read.every((n) => n <= 200), `rows read: ${read.join(', ')}`);
      }
    } finally {
      await cleanup();
    }
  });
});
