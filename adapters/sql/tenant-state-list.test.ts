/**
 * A tenant's page of jobs by state alone (`GET /v1/jobs?state=…`, no type or
 * queue) reads that tenant's jobs of the state only, however many another
 * tenant has (migration 0025: the index `(state, tenant, id)`). Through
 * `(state, id)` it walked every other tenant's jobs of the state to fill its
 * page: a small tenant's list cost as much as the largest tenant's history.
 * `(state, id)` stays for the advisor's count of the jobs waiting ahead of
 * one (created before it, every tenant's): through the new index its range
 * on the id would be lost, and the count would walk every waiting job.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MysqlStore } from '../mysql/index.js';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { analyzeOn as analyze, createTestStore } from '../../tests/helpers/mysql.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { MYSQL_DIALECT, SQLITE_DIALECT } from './dialect.js';
import { BAND_PRIORITIES, countWaitingAhead, listJobSizes } from './statements.js';

const N = 20_000;
const COLUMNS = 'type, queue, state, version, attempt, due_at, lease_until, priority, timeout_ms, payload, snapshot, created_at, updated_at, tenant';


describe('a tenant\'s page of jobs by state', () => {
  it('on SQLite, the query plan holds the state, the tenant and the cursor in the index', async () => {
    const store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    try {
      await store.migrate();
      const q = listJobSizes(SQLITE_DIALECT, { tenant: 'acme', state: 'pending', afterId: '01ZZ', limit: 501 });
      const plan = store.db.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...q.params) as { detail: string }[];
      const details = plan.map((p) => p.detail).join(' | ');
      assert.match(details, /USING INDEX ix_jobs_state_tenant_id \(state=\? AND tenant=\? AND id<\?\)/, details);
      assert.doesNotMatch(details, /TEMP B-TREE/, 'no sort');
    } finally {
      await store.close();
    }
  });

  it(`on MariaDB, reads none of another tenant's ${N} jobs of that state, nor does the count of the jobs of its band waiting ahead of the oldest`, async () => {
    const { store, cleanup } = await createTestStore();
    const { pool } = store as unknown as MysqlStore;
    try {
      const acmeWrite = newJobWrite({ tenant: 'acme' });
      const acmeId = acmeWrite.job.id;
      const [own] = await store.insert([acmeWrite]);
      const [other] = await store.insert([newJobWrite({ tenant: 'other' })]);
      assert.ok(own!.ok && other!.ok);
      const source = (await store.listJobs({ limit: 1, tenant: 'other' }))[0]!.id;
      // Newer than acme's job: a page of acme's, newest first, meets them first through (state, id).
      await pool.query(`INSERT INTO jobs (id, ${COLUMNS}) SELECT CONCAT('7Z', LPAD(s.seq, 24, '0')), ${COLUMNS} FROM jobs j JOIN seq_1_to_${N} s WHERE j.id = ?`, [source]);
      await pool.query('ANALYZE TABLE jobs');
      const page = await store.listJobPage({ tenant: 'acme', state: 'pending', limit: 500 }, 1 << 20);
      assert.equal(page.jobs.length, 1);
      const q = listJobSizes(MYSQL_DIALECT, { tenant: 'acme', state: 'pending', limit: 501 });
      const list = await analyze(pool, q.sql, q.params);
      assert.ok(list.read.length > 0 && list.read.every((n) => n <= 1), `rows read: ${list.read.join(', ')}`);
      assert.deepEqual(list.keyParts, [['state', 'tenant']]);
      // The count of the jobs waiting ahead of acme's (older than all the others): none.
      assert.equal((await store.countWaitingAhead('default', acmeId, 0, 1000, Date.now())).ahead, 0);
      // Its own band's count (created before it) reads by a range on the id; the bands' above read any 1,000.
      const ahead = await analyze(pool, countWaitingAhead(MYSQL_DIALECT, BAND_PRIORITIES.get('normal')!.same, true), ['default', Date.now(), acmeId, 1000]);
      assert.deepEqual(ahead.keyParts, [['state', 'id']], 'a range on the state and the id: no walk over the waiting jobs created after it');
      // A job joining its lane when due (a retry, a delayed job) counts its band's jobs of any age but
      // its own: a range on the state of the same index, stopped at the limit.
      const joining = await analyze(pool, countWaitingAhead(MYSQL_DIALECT, BAND_PRIORITIES.get('normal')!.same, true, true), ['default', Date.now(), acmeId, 1000]);
      assert.deepEqual([joining.keys, joining.keyParts], [['ix_jobs_state_id'], [['state']]]);
      assert.ok(joining.read.every((n) => n <= 1000), `rows read: ${joining.read.join(', ')}`);
    } finally {
      await cleanup();
    }
  });
});
