/**
 * The timers' lost-dispatch scan beside large backlogs: many delayed jobs
 * submitted long ago (not due yet), and many jobs dispatched lately and
 * waiting for a worker. Neither kind is a lost dispatch; the scan's index
 * (migration 0021) must lead it past both without reading them, on each store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SqliteStore } from '../sqlite/index.js';
import type { MysqlStore } from '../mysql/index.js';
import { createSqliteStore } from '../sqlite/index.js';
import { analyzeOn, createTestStore } from '../../tests/helpers/mysql.js';
import { DEFAULT_BACKOFF } from '../../machines/backoff.js';
import type { Clock, JobSpec, JobStore } from '../../engine/ports.js';
import { TransitionService } from '../../engine/transitions.js';
import { MYSQL_DIALECT, SQLITE_DIALECT } from './dialect.js';
import { findLostDispatches } from './statements.js';

const T0 = Date.UTC(2031, 0, 1);
const TIMEOUT_MS = 300_000;
const N = 20_000;
const COLUMNS = 'type, queue, state, version, attempt, due_at, lease_until, priority, timeout_ms, payload, snapshot, created_at, updated_at, tenant';
const spec: JobSpec = { type: 'demo.echo', payload: {}, queue: 'default', maxAttempts: 3, backoff: DEFAULT_BACKOFF, timeoutMs: 30_000, priority: 0 };

/** Submits one job at `at` (delayed by a day, or due at once) and `N` copies of its row with ids `<prefix>…`. */
async function backlog(store: JobStore, clone: (sourceId: string, prefix: string) => Promise<void>, clock: { t: number }, delayed: boolean, prefix: string) {
  const c: Clock = { now: () => clock.t, sleep: () => Promise.resolve() };
  let i = 0;
  const transitions = new TransitionService({ store, clock: c, random: { next: () => 0.5 }, ids: { jobId: () => `${prefix}${String(++i).padStart(24, '0')}` } });
  const r = await transitions.submit(delayed ? { ...spec, runAt: T0 + 86_400_000 } : spec);
  assert.ok(r.ok);
  await clone(r.job.id, prefix);
}

describe('the lost-dispatch scan beside large backlogs', () => {
  it('on SQLite, the query plan holds all three conditions in the index', async () => {
    const clock = { t: T0 };
    const store = createSqliteStore({ file: ':memory:', clock: { now: () => clock.t } }) as SqliteStore;
    try {
      await store.migrate();
      const plan = (({ sql, params }) => store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params))(findLostDispatches(SQLITE_DIALECT)(T0, 500)) as { detail: string }[];
      const details = plan.map((p) => p.detail).join(' | ');
      assert.match(details, /USING INDEX ix_jobs_state_due_updated \(state=\? AND due_at=\? AND updated_at<\?\)/, details);
    } finally {
      await store.close();
    }
  });

  it(`on MariaDB, reads no row of ${N} delayed jobs submitted long ago and ${N} jobs waiting lately for a worker`, async () => {
    const { store, cleanup } = await createTestStore();
    const { pool } = store as unknown as MysqlStore;
    try {
      const clone = async (sourceId: string, prefix: string) => {
        await pool.query(`INSERT INTO jobs (id, ${COLUMNS}) SELECT CONCAT(?, LPAD(s.seq, 24, '0')), ${COLUMNS} FROM jobs j JOIN seq_2_to_${N + 1} s WHERE j.id = ?`, [prefix, sourceId]);
      };
      const clock = { t: T0 };
      await backlog(store, clone, clock, true, '0D');
      clock.t = T0 + 2 * TIMEOUT_MS;
      await backlog(store, clone, clock, false, '0W');
      await pool.query('ANALYZE TABLE jobs');
      const before = clock.t - TIMEOUT_MS;
      assert.deepEqual(await store.findLostDispatches(before, 500), []);
      const q = findLostDispatches(MYSQL_DIALECT)(before, 500);
      const { read, json } = await analyzeOn(pool, q.sql, q.params);
      assert.ok(read.length > 0 && read.every((n) => n <= 1), `rows read: ${read.join(', ')} (${json.slice(0, 600)})`);
    } finally {
      await cleanup();
    }
  });
});
