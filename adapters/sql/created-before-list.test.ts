/**
 * A tenant's page of jobs created before some time (`GET /v1/jobs?createdBefore=…`)
 * reads the index from an id above that time's (job-ids.ts `jobIdAbove`):
 * filtered on `created_at` alone, the page walked every newer job of the
 * tenant down to that time (on a tenant of a million jobs, a page a
 * fortnight back read 968,000 index entries and took 7 s, one before every
 * job read all of them to answer none).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeTime, encodeTime } from 'ulid';
import type { MysqlStore } from '../mysql/index.js';
import { createSqliteStore, type SqliteStore } from '../sqlite/index.js';
import { createTestStore } from '../../tests/helpers/mysql.js';
import { newJobWrite } from '../../tests/contracts/store.contract.js';
import { JOB_ID_LATE_MARGIN_MS, jobIdAbove, ulidIds } from '../../engine/job-ids.js';
import { MYSQL_DIALECT, SQLITE_DIALECT } from './dialect.js';
import { listJobSizes } from './statements.js';

const N = 20_000;
const DAY = 86_400_000;
const COLUMNS = 'type, queue, state, version, attempt, due_at, lease_until, priority, timeout_ms, payload, snapshot, updated_at, tenant';

describe('a tenant\'s page of jobs created before a time', () => {
  it('the id above a time sorts above every id drawn up to the margin after it', () => {
    const at = Date.UTC(2031, 4, 6, 7, 8, 9, 10);
    const above = jobIdAbove(at);
    assert.equal(decodeTime(above), at + JOB_ID_LATE_MARGIN_MS);
    const late = ulidIds({ now: () => at + JOB_ID_LATE_MARGIN_MS - 1 });
    assert.ok(Array.from({ length: 100 }, () => late.jobId()).every((id) => id < above));
    // Out of a ULID's range: clamped, never a throw; past its end, above every id.
    assert.equal(jobIdAbove(-5 * DAY), '0'.repeat(26));
    assert.ok(jobIdAbove(8.64e15) > `${encodeTime(2 ** 48 - 1, 10)}${'Z'.repeat(16)}`);
  });

  it('on SQLite, the query plan bounds the id from above', async () => {
    const store = createSqliteStore({ file: ':memory:' }) as SqliteStore;
    try {
      await store.migrate();
      const q = listJobSizes(SQLITE_DIALECT, { tenant: 'acme', createdBefore: Date.now() - DAY, limit: 501 });
      const plan = store.db.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...q.params) as { detail: string }[];
      const details = plan.map((p) => p.detail).join(' | ');
      assert.match(details, /USING INDEX ix_jobs_tenant_id \(tenant=\? AND id<\?\)/, details);
    } finally {
      await store.close();
    }
  });

  it(`on MariaDB, the page before a time reads none of the tenant's ${N} newer jobs`, async () => {
    const { store, cleanup } = await createTestStore();
    const { pool } = store as unknown as MysqlStore;
    try {
      const now = Date.now();
      const old = now - DAY;
      const [first] = await store.insert([newJobWrite({ tenant: 'acme', at: old })]);
      assert.ok(first!.ok);
      const source = (await store.listJobs({ limit: 1, tenant: 'acme' }))[0]!.id;
      // The tenant's newer jobs: of now, ids of now.
      await pool.query(
        `INSERT INTO jobs (id, created_at, ${COLUMNS}) SELECT CONCAT(?, LPAD(s.seq, 16, '0')), ?, ${COLUMNS} FROM jobs j JOIN seq_1_to_${N} s WHERE j.id = ?`,
        [encodeTime(now, 10), now, source],
      );
      await pool.query('ANALYZE TABLE jobs');
      const filter = { tenant: 'acme', createdBefore: old + 3_600_000, limit: 500 };
      const page = await store.listJobPage(filter, 1 << 20);
      assert.deepEqual(page.jobs.map((j) => j.id), [source]);
      assert.equal(page.nextAfterId, null);
      assert.equal((await store.listJobPage({ ...filter, createdBefore: now + 1, limit: N + 10 }, 1 << 30)).jobs.length, N + 1);
      assert.equal((await store.listJobPage({ ...filter, createdBefore: now, limit: N + 10 }, 1 << 30)).jobs.length, 1);
      assert.equal((await store.listJobPage({ ...filter, createdBefore: old }, 1 << 20)).jobs.length, 0);
      const q = listJobSizes(MYSQL_DIALECT, { ...filter, limit: 501 });
      let text = q.sql;
      for (const p of q.params) text = text.replace('?', typeof p === 'number' ? String(p) : `'${String(p)}'`);
      const [rows] = await pool.query(`ANALYZE FORMAT=JSON ${text}`);
      const analyzed = JSON.stringify(JSON.parse((rows as { ANALYZE: string }[])[0]!.ANALYZE));
      const read = [...analyzed.matchAll(/"r_rows":\s*([\d.]+)/g)].map((m) => Number(m[1]));
      assert.ok(read.length > 0 && read.every((n) => n <= 1), `rows read: ${read.join(', ')}`);
    } finally {
      await cleanup();
    }
  });
});
