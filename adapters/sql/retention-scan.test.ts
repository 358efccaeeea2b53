/**
 * Retention's scan of a terminal state by last change (`FIND_EXPIRED_JOBS`)
 * reads the index (state, due_at, updated_at) where due_at is NULL, as it is
 * for every terminal job: migration 0027 dropped (state, updated_at), one
 * index fewer rewritten at each transition. Without the `due_at IS NULL`
 * the scan sorted every job of the state at each batch; and a terminal row
 * holding a due time (none is written so) would never go: the migration
 * clears such times.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobStore } from '../../engine/ports.js';
import type { MysqlStore } from '../mysql/index.js';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { createTestStore, rowsReadBy } from '../../tests/helpers/mysql.js';
import { runSql, STORE_BACKENDS, withMigratedStore } from '../../tests/helpers/stores.js';
import { FIND_EXPIRED_JOBS, FIND_EXPIRED_JOBS_AFTER } from './deletes.js';

const N = 20_000;
const T0 = Date.UTC(2031, 0, 1);
const COLUMNS = 'tenant, type, queue, version, attempt, lease_until, priority, timeout_ms, payload, snapshot, created_at';
const DAY = 86_400_000;

/** A job done at `at`: its row as the store writes it, then its state and time set (the snapshot is not read here). */
async function doneJob(store: JobStore, at: number, dueAt: number | null = null): Promise<string> {
  const w = newJobWrite({ at });
  assert.ok((await store.insert([w]))[0]!.ok);
  await runSql(store, "UPDATE jobs SET state = 'done', due_at = ?, updated_at = ? WHERE id = ?", [dueAt, at, w.job.id]);
  return w.job.id;
}

describe('retention\'s scan of a terminal state', () => {
  it('on SQLite, the query plan reads the index (state, due_at, updated_at) in its order, sorting ties only', async () => {
    const store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    try {
      await store.migrate();
      const names = store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'ix_jobs_state_updated'").all();
      assert.deepEqual(names, [], 'the index (state, updated_at) is gone');
      for (const [sql, params] of [[FIND_EXPIRED_JOBS, ['done', T0, 500]], [FIND_EXPIRED_JOBS_AFTER, ['done', T0, T0 + DAY, T0, T0, 'x', 500]]] as const) {
        const details = (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((p) => p.detail).join(' | ');
        assert.match(details, /USING (COVERING )?INDEX ix_jobs_state_due_updated \(state=\? AND due_at=\? AND updated_at[<>]/, details);
        // Ties of updated_at are put in id order (the index ends with the rowid), not the whole range.
        assert.doesNotMatch(details, /TEMP B-TREE FOR ORDER BY/, 'no sort of the range');
      }
    } finally {
      await store.close();
    }
  });

  it(`on MariaDB, reads at most a batch among ${N} done jobs still kept, and deletes the expired ones`, async () => {
    const { store, cleanup } = await createTestStore();
    const { pool } = store as unknown as MysqlStore;
    try {
      const expired = [await doneJob(store, T0), await doneJob(store, T0 + 1)];
      const source = await doneJob(store, T0 + 2 * DAY);
      await pool.query(
        `INSERT INTO jobs (id, state, due_at, updated_at, ${COLUMNS}) SELECT CONCAT('0K', LPAD(s.seq, 24, '0')), 'done', NULL, ? + s.seq, ${COLUMNS} FROM jobs j JOIN seq_1_to_${N} s WHERE j.id = ?`,
        [T0 + DAY, source],
      );
      await pool.query('ANALYZE TABLE jobs');
      const read = await rowsReadBy(pool, FIND_EXPIRED_JOBS, ['done', T0 + 1000, 100]);
      assert.ok(read.length > 0 && read.every((n) => n <= 3), `rows read: ${read.join(', ')}`);
      const batch = await rowsReadBy(pool, FIND_EXPIRED_JOBS, ['done', T0 + 3 * DAY, 100]);
      assert.ok(batch.every((n) => n <= 101), `rows read: ${batch.join(', ')}`);
      assert.equal(await store.purgeJobs('done', T0 + 1000, 100), 2);
      for (const id of expired) assert.equal(await store.getJob(id), null);
      assert.ok(await store.getJob(source), 'a job still kept stays');
    } finally {
      await cleanup();
    }
  });

  for (const backend of STORE_BACKENDS) {
    it(`on ${backend.name}, migration 0027 clears a terminal job's due time, so retention finds it`, () => withMigratedStore(backend, async (store) => {
      const odd = await doneJob(store, T0, T0 + 5);
      const plain = await doneJob(store, T0 + 1);
      assert.equal(await store.purgeJobs('done', T0 + 1000, 100), 1, 'the job holding a due time is not found');
      assert.ok(await store.getJob(odd));
      assert.equal(await store.getJob(plain), null);
      await runSql(store, 'DELETE FROM schema_migrations WHERE version = ?', [27]);
      await store.migrate();
      assert.equal(await store.purgeJobs('done', T0 + 1000, 100), 1);
      assert.equal(await store.getJob(odd), null);
    }));
  }
});
